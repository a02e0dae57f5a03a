/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_STORE_LMDB_INTERNAL_H
#define ENROLLD_STORE_LMDB_INTERNAL_H

/*
 * Shared by the files of the LMDB backend (enrolld/store/lmdb*.c) and nothing else:
 * lmdb.c has the layout, the environment, the writer thread and the helpers below;
 * lmdb_<kind>.c the operations on one kind of record, as the ops of store_lmdb_ops.
 */

#include <lmdb.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>

#include "enrolld/store.h"
#include "enrolld/store/backend.h"

enum {
	DB_META,
	DB_TENANTS,
	DB_DEVICES,
	DB_DEV_PUBKEY,
	DB_DEV_EK,
	DB_DEV_ADDR,
	DB_DEV_TENANT,
	DB_ADDR_HINT,
	DB_REGISTRATIONS,
	DB_TOKENS,
	DB_SESSIONS,
	DB_REVOCATIONS,
	DB_EVENTS,
	DB_HEALTH,
	DB_DEVICE_CAS,
	DB_X509_REVOKED,
	DB_DEVICE_CRLS,
	DB_COUNT,
};

struct revocation {
	int64_t time;
	uint64_t device;
};

struct wtx;
struct lm_sess;
struct lm_sessions;
typedef int (*apply_fn)(struct wtx *w, void *arg);

struct op {
	apply_fn apply;
	void *arg;
	int ret;
	bool done;
	pthread_cond_t wake; /* its caller waits on it: a commit wakes only its own callers */
	struct op *next;
};

struct lmdb_store {
	MDB_env *env;
	MDB_dbi dbi[DB_COUNT];
	struct store_options opts;
	uint64_t map_size;
	uint64_t map_size_max;
	/*
	 * Shared by every transaction of this process, exclusive only to change the map size
	 * (LMDB requires that no transaction be active then). Writer-preferring, so a stream of
	 * readers cannot starve a resize.
	 */
	pthread_rwlock_t map_lock;
	pthread_mutex_t lock; /* the queue, stats and last_event below */
	pthread_cond_t work;  /* the writer waits for operations */
	pthread_cond_t event; /* SSE readers wait for events */
	struct op *head, *tail;
	bool stopping;
	bool writer_started;
	pthread_t writer;
	uint64_t last_event;
	struct store_stats stats;
	struct lm_sessions *sessions; /* open attestation sessions: lmdb_session.c */
};

/* What the front holds as its struct store_backend. */
static inline struct lmdb_store *
lmdb_of(struct store_backend *b)
{
	return (struct lmdb_store *)b;
}

struct wtx {
	struct lmdb_store *s;
	MDB_txn *txn;
	int64_t now;
	bool map_full;
	uint64_t last_event; /* highest event seq written in this batch */
	struct lm_sess *claimed; /* sessions claimed by this batch's enrollments, newest first */
};

/* ---- keys (lmdb.c has their layout per database) ------------------------------------ */

struct key {
	uint8_t b[STORE_NAME_MAX + 1 + 32];
	size_t len;
};

static inline void
be64_put(uint8_t *b, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

static inline uint64_t
be64_get(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | b[i];
	return v;
}

static inline void
key_u64(struct key *k, uint64_t v)
{
	be64_put(k->b, v);
	k->len = 8;
}

static inline void
key_bytes(struct key *k, const void *p, size_t n)
{
	memcpy(k->b, p, n);
	k->len = n;
}

/* "tenant NUL": NUL sorts below every name character, so one tenant's keys are contiguous. */
static inline void
key_tenant(struct key *k, const char *tenant)
{
	size_t n = strnlen(tenant, STORE_NAME_MAX - 1);

	memcpy(k->b, tenant, n);
	k->b[n] = '\0';
	k->len = n + 1;
}

static inline void
key_tenant_id(struct key *k, const char *tenant, uint64_t id)
{
	key_tenant(k, tenant);
	be64_put(k->b + k->len, id);
	k->len += 8;
}

static inline void
key_tenant_family(struct key *k, const char *tenant, int family)
{
	key_tenant(k, tenant);
	k->b[k->len++] = family == AF_INET ? 4 : 6;
}

static inline void
key_tenant_addr(struct key *k, const char *tenant, int family, const uint8_t addr[static 16])
{
	key_tenant_family(k, tenant, family);
	memcpy(k->b + k->len, addr, addr_len(family));
	k->len += addr_len(family);
}

static inline void
key_tenant_hash(struct key *k, const char *tenant, const uint8_t hash[static 32])
{
	key_tenant(k, tenant);
	memcpy(k->b + k->len, hash, 32);
	k->len += 32;
}

/* "tenant NUL len serial" (31 + 1 + 1 + 32 bytes at most: fits struct key) */
static inline void
key_tenant_serial(struct key *k, const char *tenant, const uint8_t *serial, size_t n)
{
	key_tenant(k, tenant);
	k->b[k->len++] = (uint8_t)n;
	memcpy(k->b + k->len, serial, n);
	k->len += n;
}

static inline MDB_val
kval(const struct key *k)
{
	return (MDB_val){ .mv_size = k->len, .mv_data = (void *)k->b };
}

/* ---- lmdb.c: errors, clock, transactions, the writer ------------------------------------ */

extern const struct key lm_meta_next_device, lm_meta_event_seq;

/* The one place MDB_* codes become errnos (and the error text of store_errmsg()). */
int lm_errno(int rc);
int64_t lmdb_now(const struct lmdb_store *s);
/* Read @db[@k] into @v of exactly @vlen bytes: -ENOENT, or -EUCLEAN if the size is wrong. */
int lm_t_get(struct lmdb_store *s, MDB_txn *txn, int db, const struct key *k, void *v, size_t vlen);
int lm_t_get_u64(struct lmdb_store *s, MDB_txn *txn, int db, const struct key *k, uint64_t *ret);
int lm_w_put(struct wtx *w, int db, const struct key *k, const void *v, size_t vlen,
	unsigned int flags);
int lm_w_put_u64(struct wtx *w, int db, const struct key *k, uint64_t v, unsigned int flags);
int lm_w_del(struct wtx *w, int db, const struct key *k);
/* A read transaction, holding map_lock shared until lm_rtxn_end(). */
int lm_rtxn_begin(struct lmdb_store *s, MDB_txn **ret);
void lm_rtxn_end(struct lmdb_store *s, MDB_txn *txn);
/* One record by key in its own read transaction; @v is written only on success. */
int lm_r_get(struct lmdb_store *s, int db, const struct key *k, void *v, size_t vlen);
/* Queue an operation and wait until the commit holding it is durable (or it failed). */
int lm_submit(struct lmdb_store *s, apply_fn apply, void *arg);
/*
 * Collect records of @db whose key starts with @prefix (NULL = all) into a malloc()ed
 * array of @size-byte elements; @keep (may be NULL) filters.
 */
int lm_collect(struct lmdb_store *s, int db, const struct key *prefix, size_t size,
	bool (*keep)(const void *rec, const void *ctx), const void *ctx, void **ret,
	size_t *ret_n);

/* ---- used across the record kinds --------------------------------------------------------- */

/* lmdb_tenant.c */
int lm_get_tenant(struct lmdb_store *s, MDB_txn *txn, const char *name, struct store_tenant *ret);
int lm_x509_revoked_in(struct lmdb_store *s, MDB_txn *txn, const char *tenant,
	const uint8_t *serial, size_t serial_len);
/*
 * lmdb_session.c: the table of open sessions (in memory only; the key makes the ids' tags,
 * kept in the meta database as "session_key").
 */
#define LM_SESSION_KEY_LEN 32
extern const struct key lm_meta_session_key;
int lm_sessions_new(struct lm_sessions **ret, const uint8_t key[static LM_SESSION_KEY_LEN]);
void lm_sessions_free(struct lm_sessions *t);
/*
 * In an enrollment's transaction: the session of @req exists, is open, fresh and matches
 * (-ENOENT, -EALREADY, -ETIMEDOUT, -EINVAL); it is claimed, on w->claimed.
 */
int lm_session_claim(struct wtx *w, const struct store_enroll_req *req);
/*
 * Settle the claims on @list down to @until (not included): used if @committed, open again
 * otherwise (the transaction or the enrollment's nested one was aborted).
 */
void lm_sessions_settle(struct lmdb_store *s, struct lm_sess **list, struct lm_sess *until,
	bool committed);
/* lmdb_device.c; lm_device_put: a device record and its indexes, in @w */
int lm_get_device(struct lmdb_store *s, MDB_txn *txn, uint64_t id, struct store_device *ret);
int lm_device_put(struct wtx *w, const struct store_device *d);
/* lmdb_event.c: append an event in the write transaction of @w. */
int lm_append_event(struct wtx *w, int kind, uint64_t device, const char *tenant);

/* ---- the ops (store_lmdb_ops in lmdb.c), by file ------------------------------------------ */

/* lmdb_tenant.c */
int lmdb_tenant_create(struct store_backend *b, const struct store_tenant *t);
int lmdb_tenant_get(struct store_backend *b, const char *name, struct store_tenant *ret);
int lmdb_tenant_list(struct store_backend *b, struct store_tenant **ret, size_t *ret_n);
int lmdb_tenant_set_require_tpm(struct store_backend *b, const char *name, bool on);
int lmdb_device_ca_add(struct store_backend *b, const struct store_device_ca *ca);
int lmdb_device_ca_remove(struct store_backend *b, const char *tenant,
	const uint8_t fp[static STORE_HASH_LEN]);
int lmdb_device_ca_list(struct store_backend *b, const char *tenant,
	struct store_device_ca **ret, size_t *ret_n);
int lmdb_device_crl_put(struct store_backend *b, const struct store_device_crl *crl,
	const uint8_t *der);
int lmdb_device_crl_remove(struct store_backend *b, const char *tenant,
	const uint8_t issuer_hash[static STORE_HASH_LEN]);
int lmdb_device_crl_each(struct store_backend *b, const char *tenant,
	int (*fn)(void *ctx, const struct store_device_crl *crl, const uint8_t *der), void *ctx);
int lmdb_device_crl_list(struct store_backend *b, const char *tenant,
	struct store_device_crl **ret, size_t *ret_n);
int lmdb_x509_revoke(struct store_backend *b, const struct store_x509_revoked *rv);
int lmdb_x509_unrevoke(struct store_backend *b, const char *tenant, const uint8_t *serial,
	size_t serial_len);
int lmdb_x509_revoked_list(struct store_backend *b, const char *tenant,
	struct store_x509_revoked **ret, size_t *ret_n);
int lmdb_x509_is_revoked(struct store_backend *b, const char *tenant, const uint8_t *serial,
	size_t serial_len);

/* lmdb_token.c */
int lmdb_registration_add(struct store_backend *b, const struct store_registration *reg);
int lmdb_registration_remove(struct store_backend *b, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN]);
int lmdb_registration_get(struct store_backend *b, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN], struct store_registration *ret);
int lmdb_registration_list(struct store_backend *b, const char *tenant,
	struct store_registration **ret, size_t *ret_n);
int lmdb_token_create(struct store_backend *b, const struct store_token *tok);
int lmdb_token_list(struct store_backend *b, const char *tenant, struct store_token **ret,
	size_t *ret_n);
int lmdb_token_get(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN],
	struct store_token *ret);
int lmdb_token_revoke(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN]);

/* lmdb_session.c */
int lmdb_session_create(struct store_backend *b, const struct store_session *sess,
	uint8_t ret_id[static STORE_SESSION_ID_LEN]);
int lmdb_session_get(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN],
	struct store_session *ret);
int lmdb_session_use(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN]);
int lmdb_session_purge(struct store_backend *b);

/* lmdb_device.c */
int lmdb_enroll_prev(struct store_backend *b, const struct store_enroll_req *req,
	struct store_device *ret_dev, struct store_device *ret_prev);
int lmdb_device_get(struct store_backend *b, uint64_t id, struct store_device *ret);
int lmdb_device_by_pubkey(struct store_backend *b, const uint8_t key[static STORE_KEY_LEN],
	struct store_device *ret);
int lmdb_device_by_ek(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN],
	struct store_device *ret);
int lmdb_device_by_addr(struct store_backend *b, const char *tenant, int family,
	const uint8_t addr[static 16], struct store_device *ret);
int lmdb_device_list(struct store_backend *b, const struct store_device_filter *f,
	struct store_device **ret, size_t *ret_n, uint64_t *ret_next);
int lmdb_device_list_all(struct store_backend *b, const char *tenant, uint8_t state,
	struct store_device **ret, size_t *ret_n);
int lmdb_device_revoke(struct store_backend *b, uint64_t id, struct store_device *ret_dev);
int lmdb_device_reinstate(struct store_backend *b, uint64_t id);
int lmdb_device_delete(struct store_backend *b, uint64_t id);
int lmdb_ek_revoked(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN]);

/* lmdb_event.c */
int lmdb_events_read(struct store_backend *b, uint64_t after, size_t max,
	struct store_event **ret, size_t *ret_n);
int lmdb_events_last(struct store_backend *b, uint64_t *ret_seq);
int lmdb_events_wait(struct store_backend *b, uint64_t after, int timeout_ms);
int lmdb_health_update(struct store_backend *b, const struct store_health *h, size_t n);
int lmdb_health_get(struct store_backend *b, uint64_t device, struct store_health *ret);
int lmdb_health_list(struct store_backend *b, struct store_health **ret, size_t *ret_n);

/* lmdb_verify.c */
int lmdb_verify(struct store_backend *b, char *why, size_t why_len);

/* lmdb_import.c */
int lmdb_export_raw(struct store_backend *b, struct store_dump *d);
int lmdb_import(struct store_backend *b, const struct store_dump *d);

#endif
