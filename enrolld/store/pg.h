/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_STORE_PG_H
#define ENROLLD_STORE_PG_H

/*
 * The PostgreSQL backend's internals (enrolld/store/pg*.c): the connection pool, one
 * transaction per op, parameter and result helpers, SQLSTATE -> errno, secrets sealed
 * under the KEK, the event counter and its LISTEN/NOTIFY waiter. docs/state.md has the
 * schema and the reasons.
 */

#include <libpq-fe.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "enrolld/store/backend.h"

#define PG_POOL_DEFAULT 8
#define PG_ARGS_MAX 24
#define PG_EVENTS_CHANNEL "edgeward_events"
/* sealed secret: 12-byte nonce, ciphertext, 16-byte tag */
#define PG_SEAL_OVERHEAD (12 + 16)

struct store_backend {
	char *conninfo;
	int64_t (*clock)(void *ctx);
	void *clock_ctx;
	uint8_t *kek; /* STORE_KEK_LEN bytes of secmem */

	pthread_mutex_t pool_lock;
	pthread_cond_t pool_cond;
	PGconn **conns; /* NULL: not connected (yet, or again after a broken one) */
	bool *busy;
	size_t n_conns;

	uint64_t commits;    /* atomics */
	uint64_t lazy_commits;
	uint64_t operations;
	int64_t sessions_purged; /* atomic: the second of the last purge at a session's creation */

	/* events: the newest committed seq seen (own commits and NOTIFY), and its waiters */
	pthread_mutex_t ev_lock;
	pthread_cond_t ev_cond; /* CLOCK_MONOTONIC */
	uint64_t last_event;
	pthread_t listener;
	bool listener_started;
	bool stopping; /* atomic */
};

/* Parameters of one statement, all sent in binary format (the SQL casts each: $1::int8). */
struct pg_args {
	int n;
	const char *val[PG_ARGS_MAX];
	int len[PG_ARGS_MAX];
	int fmt[PG_ARGS_MAX];
	uint8_t num[PG_ARGS_MAX][8];
};

void pa_i64(struct pg_args *a, int64_t v);
void pa_bytes(struct pg_args *a, const void *p, size_t n);
void pa_text(struct pg_args *a, const char *s); /* NULL -> SQL NULL */
void pa_null(struct pg_args *a);

/*
 * Run @sql with @a (may be NULL); binary results. 0 (and *ret, the caller PQclear()s it,
 * when @ret is not NULL) or a negative errno from the SQLSTATE (pg_errno).
 */
int pg_q(PGconn *c, const char *sql, const struct pg_args *a, PGresult **ret);
/* The same, returning the number of rows the statement affected (or returned). */
int pg_exec(PGconn *c, const char *sql, const struct pg_args *a);

int64_t rv_i64(const PGresult *res, int row, int col);
bool rv_null(const PGresult *res, int row, int col);
/* Copy a bytea into @out (at most @max bytes); returns its length, -EUCLEAN if longer. */
int rv_bytes(const PGresult *res, int row, int col, void *out, size_t max);
/* Copy a text into @out (NUL-terminated); -EUCLEAN if it does not fit. */
int rv_text(const PGresult *res, int row, int col, char *out, size_t max);

/* An errno for a failed statement: unique/exclusion -> -EEXIST, FK -> -ENOENT, ... */
int pg_errno(PGconn *c, const PGresult *res);

/*
 * One transaction on a pooled connection: BEGIN, @fn, COMMIT. Deadlocks and serialization
 * failures are retried, so is a connection found broken before COMMIT was sent (nothing
 * was committed). A COMMIT whose outcome is unknown returns -EIO. @write counts the op in
 * the statistics. @fn's non-negative return is returned.
 */
/*
 * One statement on a pooled connection outside an explicit transaction (a statement is
 * its own): the reads that need one consistent snapshot of one query only. *ret as pg_q.
 */
int pg_read(struct store_backend *b, const char *sql, const struct pg_args *a, PGresult **ret);

/*
 * Rows of @sql into a malloc()ed array of @size-byte elements, each filled by @row
 * (0 or a negative errno).
 */
int pg_list(struct store_backend *b, const char *sql, const struct pg_args *a, size_t size,
	int (*row)(const PGresult *res, int i, void *out), void **ret, size_t *ret_n);

typedef int (*pg_fn)(struct store_backend *b, PGconn *c, void *arg);
int pg_txn(struct store_backend *b, bool write, pg_fn fn, void *arg);

int64_t pg_now(const struct store_backend *b);

/* Append an event in the current transaction (serialised by the counter row). */
int pg_event_append(struct store_backend *b, PGconn *c, int kind, uint64_t device,
	const char *tenant);

/* AES-256-GCM under the KEK, @id as AAD. @out has @len + PG_SEAL_OVERHEAD bytes. */
int pg_seal(const struct store_backend *b, const uint8_t *id, size_t id_len, const uint8_t *in,
	size_t len, uint8_t *out);
/* -EBADMSG if it was not sealed under this KEK for this id. */
int pg_unseal(const struct store_backend *b, const uint8_t *id, size_t id_len, const uint8_t *in,
	size_t len, uint8_t *out, size_t out_max, size_t *ret_len);

/* Apply the schema migrations this code knows, under a lock (pg_schema.c). -EPROTO: newer. */
int pg_migrate(PGconn *c);

/* The ops of pg.c, pg_ops.c and pg_dev.c, collected in store_pg_ops (pg.c). */
int pg_verify(struct store_backend *b, char *why, size_t why_len);
int pg_tenant_create(struct store_backend *b, const struct store_tenant *t);
int pg_tenant_get(struct store_backend *b, const char *name, struct store_tenant *ret);
int pg_tenant_list(struct store_backend *b, struct store_tenant **ret, size_t *ret_n);
int pg_tenant_set_require_tpm(struct store_backend *b, const char *name, bool on);
int pg_tenant_key_get(struct store_backend *b, const char *tenant, uint8_t ret_priv[static 32]);
int pg_tenant_key_put(struct store_backend *b, const char *tenant, const uint8_t priv[static 32]);
int pg_device_ca_add(struct store_backend *b, const struct store_device_ca *ca);
int pg_device_ca_remove(struct store_backend *b, const char *tenant,
	const uint8_t fp[static STORE_HASH_LEN]);
int pg_device_ca_list(struct store_backend *b, const char *tenant, struct store_device_ca **ret,
	size_t *ret_n);
int pg_device_crl_put(struct store_backend *b, const struct store_device_crl *crl,
	const uint8_t *der);
int pg_device_crl_remove(struct store_backend *b, const char *tenant,
	const uint8_t issuer_hash[static STORE_HASH_LEN]);
int pg_device_crl_list(struct store_backend *b, const char *tenant, struct store_device_crl **ret,
	size_t *ret_n);
int pg_device_crl_each(struct store_backend *b, const char *tenant, int (*fn)(void *ctx,
	const struct store_device_crl *crl, const uint8_t *der), void *ctx);
int pg_x509_revoke(struct store_backend *b, const struct store_x509_revoked *rv);
int pg_x509_unrevoke(struct store_backend *b, const char *tenant, const uint8_t *serial,
	size_t serial_len);
int pg_x509_revoked_list(struct store_backend *b, const char *tenant,
	struct store_x509_revoked **ret, size_t *ret_n);
int pg_x509_is_revoked(struct store_backend *b, const char *tenant, const uint8_t *serial,
	size_t serial_len);
int pg_registration_add(struct store_backend *b, const struct store_registration *r);
int pg_registration_remove(struct store_backend *b, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN]);
int pg_registration_get(struct store_backend *b, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN], struct store_registration *ret);
int pg_registration_list(struct store_backend *b, const char *tenant,
	struct store_registration **ret, size_t *ret_n);
int pg_token_create(struct store_backend *b, const struct store_token *t);
int pg_token_list(struct store_backend *b, const char *tenant, struct store_token **ret,
	size_t *ret_n);
int pg_token_get(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN],
	struct store_token *ret);
int pg_token_revoke(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN]);
int pg_session_create(struct store_backend *b, const struct store_session *sess,
	uint8_t ret_id[static STORE_SESSION_ID_LEN]);
int pg_session_get(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN],
	struct store_session *ret);
int pg_session_use(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN]);
int pg_session_purge(struct store_backend *b);
int pg_enroll_prev(struct store_backend *b, const struct store_enroll_req *req,
	struct store_device *ret_dev, struct store_device *ret_prev);
int pg_device_get(struct store_backend *b, uint64_t id, struct store_device *ret);
int pg_device_by_pubkey(struct store_backend *b, const uint8_t key[static STORE_KEY_LEN],
	struct store_device *ret);
int pg_device_by_ek(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN],
	struct store_device *ret);
int pg_device_by_addr(struct store_backend *b, const char *tenant, int family,
	const uint8_t addr[static 16], struct store_device *ret);
int pg_device_list(struct store_backend *b, const struct store_device_filter *f,
	struct store_device **ret, size_t *ret_n, uint64_t *ret_next);
int pg_device_list_all(struct store_backend *b, const char *tenant, uint8_t state,
	struct store_device **ret, size_t *ret_n);
int pg_device_revoke(struct store_backend *b, uint64_t id, struct store_device *ret_dev);
int pg_device_reinstate(struct store_backend *b, uint64_t id);
int pg_device_delete(struct store_backend *b, uint64_t id);
int pg_ek_revoked(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN]);
int pg_health_update(struct store_backend *b, const struct store_health *h, size_t n);
int pg_health_get(struct store_backend *b, uint64_t device, struct store_health *ret);
int pg_health_list(struct store_backend *b, struct store_health **ret, size_t *ret_n);
int pg_events_read(struct store_backend *b, uint64_t after, size_t max, struct store_event **ret,
	size_t *ret_n);
int pg_events_last(struct store_backend *b, uint64_t *ret_seq);
int pg_events_wait(struct store_backend *b, uint64_t after, int timeout_ms);

/*
 * A session read for update in the current transaction (no secret): 0, -ENOENT,
 * -EALREADY used, -ETIMEDOUT expired. pg_session_mark_used: used, secret dropped.
 */
int pg_session_lock(struct store_backend *b, PGconn *c,
	const uint8_t id[static STORE_SESSION_ID_LEN], struct store_session *ret);
int pg_session_mark_used(PGconn *c, const uint8_t id[static STORE_SESSION_ID_LEN]);

/* pg_import.c: the migration ops (backend.h) */
int pg_export_raw(struct store_backend *b, struct store_dump *d);
int pg_import(struct store_backend *b, const struct store_dump *d);

/* A tenant read in the current transaction (@lock: FOR NO KEY UPDATE). -ENOENT. */
int pg_get_tenant(PGconn *c, const char *name, bool lock, struct store_tenant *ret);

#endif
