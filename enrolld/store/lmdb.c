// SPDX-License-Identifier: MIT
/*
 * enrolld's durable state in LMDB. docs/state.md describes the data model; in short:
 *
 *   meta          "format" -> u32, "next_device" -> u64, "event_seq" -> u64
 *   tenants       name -> struct store_tenant
 *   devices       id (u64 BE) -> struct store_device
 *   dev_pubkey    WireGuard public key (32) -> id
 *   dev_ek        EK hash (32) -> id
 *   dev_addr      tenant NUL family(4|6) address(4|16) -> id   (per-tenant address index)
 *   dev_tenant    tenant NUL id (u64 BE) -> ""                 (devices of a tenant, in order)
 *   addr_hint     tenant NUL family -> u64 offset: every usable offset below it is taken
 *   registrations tenant NUL EK hash -> struct store_registration
 *   tokens        SHA-256(token) -> struct store_token
 *   sessions      id (16) -> struct store_session
 *   revocations   EK hash -> struct revocation
 *   events        seq (u64 BE) -> struct store_event
 *   health        id (u64 BE) -> struct store_health
 *   device_cas    tenant NUL SHA-256(CA DER) -> struct store_device_ca     (X.509 path)
 *   x509_revoked  tenant NUL len serial -> struct store_x509_revoked        (X.509 path)
 *   device_crls   tenant NUL SHA-256(issuer Name DER) -> struct store_device_crl || DER
 *
 * device_cas, x509_revoked and device_crls came after format 1 shipped: they are new databases, created
 * empty when an older environment is opened, so format 1 stays readable without a bump.
 *
 * Values are the fixed-layout structs of store.h; their sizes are pinned below so a layout
 * change cannot slip in without a format version bump (STORE_FORMAT_VERSION) and a migration.
 *
 * Writes: callers queue an operation (an apply function and its argument) and sleep; one
 * writer thread takes everything queued, runs each operation in a nested transaction of one
 * write transaction, commits once (fsync), then wakes the callers. An operation returning
 * an error has its nested transaction aborted, so it leaves no trace and does not disturb
 * the others. MDB_MAP_FULL anywhere aborts the batch, grows the map and runs it again (apply
 * functions depend only on the transaction and their input, so a rerun is safe).
 */
#include <errno.h>
#include <limits.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <time.h>

#include "common/log.h"
#include "enrolld/store.h"
#include "enrolld/store/backend.h"

/* Pin the on-disk layouts (x86-64 / aarch64 LP64): changing one needs a format bump. */
_Static_assert(sizeof(struct store_tenant) == 1184, "tenant record layout changed");
_Static_assert(sizeof(struct store_device) == 168, "device record layout changed");
_Static_assert(sizeof(struct store_registration) == 136, "registration record layout changed");
_Static_assert(sizeof(struct store_token) == 160, "token record layout changed");
_Static_assert(sizeof(struct store_session) == 360, "session record layout changed");
_Static_assert(sizeof(struct store_event) == 64, "event record layout changed");
_Static_assert(sizeof(struct store_health) == 24, "health record layout changed");
_Static_assert(sizeof(struct store_device_ca) == 8464, "device CA record layout changed");
_Static_assert(sizeof(struct store_x509_revoked) == 144, "x509 revocation layout changed");
_Static_assert(sizeof(struct store_device_crl) == 248, "device CRL record layout changed");

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

static const char *const db_names[DB_COUNT] = {
	[DB_META] = "meta",
	[DB_TENANTS] = "tenants",
	[DB_DEVICES] = "devices",
	[DB_DEV_PUBKEY] = "dev_pubkey",
	[DB_DEV_EK] = "dev_ek",
	[DB_DEV_ADDR] = "dev_addr",
	[DB_DEV_TENANT] = "dev_tenant",
	[DB_ADDR_HINT] = "addr_hint",
	[DB_REGISTRATIONS] = "registrations",
	[DB_TOKENS] = "tokens",
	[DB_SESSIONS] = "sessions",
	[DB_REVOCATIONS] = "revocations",
	[DB_EVENTS] = "events",
	[DB_HEALTH] = "health",
	[DB_DEVICE_CAS] = "device_cas",
	[DB_X509_REVOKED] = "x509_revoked",
	[DB_DEVICE_CRLS] = "device_crls",
};

struct revocation {
	int64_t time;
	uint64_t device;
};

struct wtx;
typedef int (*apply_fn)(struct wtx *w, void *arg);

struct op {
	apply_fn apply;
	void *arg;
	int ret;
	bool done;
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
	pthread_cond_t done;  /* callers wait for their operation */
	pthread_cond_t event; /* SSE readers wait for events */
	struct op *head, *tail;
	bool stopping;
	bool writer_started;
	pthread_t writer;
	uint64_t last_event;
	struct store_stats stats;
	int64_t sessions_purged; /* writer only: the second of the last purge at a creation */
};

/* What the front holds as its struct store_backend. */
static struct lmdb_store *
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
};

/* The one place MDB_* codes become errnos. */
static int
mdb_errno(int rc)
{
	if (rc == 0)
		return 0;
	store_set_errmsg("%s", mdb_strerror(rc));
	switch (rc) {
	case MDB_NOTFOUND:
		return -ENOENT;
	case MDB_KEYEXIST:
		return -EEXIST;
	case MDB_MAP_FULL:
		return -ENOSPC;
	case MDB_TXN_FULL:
		return -E2BIG;
	case MDB_DBS_FULL:
	case MDB_READERS_FULL:
	case MDB_TLS_FULL:
		return -EAGAIN;
	case MDB_MAP_RESIZED:
		return -ESTALE;
	case MDB_CORRUPTED:
	case MDB_PAGE_NOTFOUND:
	case MDB_BAD_RSLOT:
	case MDB_BAD_TXN:
	case MDB_BAD_VALSIZE:
	case MDB_BAD_DBI:
	case MDB_CURSOR_FULL:
	case MDB_PAGE_FULL:
	case MDB_INCOMPATIBLE:
		return -EUCLEAN;
	case MDB_VERSION_MISMATCH:
	case MDB_INVALID:
		return -EPROTO;
	case MDB_PANIC:
		return -EIO;
	default:
		return rc > 0 ? -rc : -EIO;
	}
}

/*
 * A commit that could not write. LMDB reports a full file system as ENOSPC, or as EIO when
 * a write came up short ("filesystem full?" in mdb_page_flush); nothing of the transaction
 * counts then and the environment stays usable. Either, with less than STORE_FULL_MARGIN
 * left on the file system, is -ENOSPC: storage full, like a map that may not grow.
 */
#define STORE_FULL_MARGIN (UINT64_C(1) << 20)

static int
commit_error(struct lmdb_store *s, int rc)
{
	mdb_filehandle_t fd;
	struct statvfs st;
	int r = mdb_errno(rc);

	if ((rc == EIO || rc == ENOSPC) && mdb_env_get_fd(s->env, &fd) == 0 &&
		fstatvfs(fd, &st) == 0 && (uint64_t)st.f_bavail * st.f_frsize < STORE_FULL_MARGIN) {
		store_set_errmsg("the file system is full");
		r = -ENOSPC;
	}
	return r;
}

static int64_t
lmdb_now(const struct lmdb_store *s)
{
	if (s->opts.clock != NULL)
		return s->opts.clock(s->opts.clock_ctx);
	return (int64_t)time(NULL);
}

/* ---- keys ------------------------------------------------------------------------------ */

struct key {
	uint8_t b[STORE_NAME_MAX + 1 + 32];
	size_t len;
};

static void
be64_put(uint8_t *b, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

static uint64_t
be64_get(const uint8_t *b)
{
	uint64_t v = 0;

	for (int i = 0; i < 8; i++)
		v = (v << 8) | b[i];
	return v;
}

static void
key_u64(struct key *k, uint64_t v)
{
	be64_put(k->b, v);
	k->len = 8;
}

static void
key_bytes(struct key *k, const void *p, size_t n)
{
	memcpy(k->b, p, n);
	k->len = n;
}

/* "tenant NUL": NUL sorts below every name character, so one tenant's keys are contiguous. */
static void
key_tenant(struct key *k, const char *tenant)
{
	size_t n = strnlen(tenant, STORE_NAME_MAX - 1);

	memcpy(k->b, tenant, n);
	k->b[n] = '\0';
	k->len = n + 1;
}

static void
key_tenant_id(struct key *k, const char *tenant, uint64_t id)
{
	key_tenant(k, tenant);
	be64_put(k->b + k->len, id);
	k->len += 8;
}

static void
key_tenant_family(struct key *k, const char *tenant, int family)
{
	key_tenant(k, tenant);
	k->b[k->len++] = family == AF_INET ? 4 : 6;
}

static void
key_tenant_addr(struct key *k, const char *tenant, int family, const uint8_t addr[static 16])
{
	key_tenant_family(k, tenant, family);
	memcpy(k->b + k->len, addr, addr_len(family));
	k->len += addr_len(family);
}

static void
key_tenant_hash(struct key *k, const char *tenant, const uint8_t hash[static 32])
{
	key_tenant(k, tenant);
	memcpy(k->b + k->len, hash, 32);
	k->len += 32;
}

/* "tenant NUL len serial" (31 + 1 + 1 + 32 bytes at most: fits struct key) */
static void
key_tenant_serial(struct key *k, const char *tenant, const uint8_t *serial, size_t n)
{
	key_tenant(k, tenant);
	k->b[k->len++] = (uint8_t)n;
	memcpy(k->b + k->len, serial, n);
	k->len += n;
}

static MDB_val
kval(const struct key *k)
{
	return (MDB_val){ .mv_size = k->len, .mv_data = (void *)k->b };
}

/* ---- transaction helpers ------------------------------------------------------------------ */

/* Read @db[@k] into @v of exactly @vlen bytes: -ENOENT, or -EUCLEAN if the size is wrong. */
static int
t_get(struct lmdb_store *s, MDB_txn *txn, int db, const struct key *k, void *v, size_t vlen)
{
	MDB_val key = kval(k), val;
	int rc;

	rc = mdb_get(txn, s->dbi[db], &key, &val);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0)
		return mdb_errno(rc);
	if (val.mv_size != vlen) {
		store_set_errmsg("%s: record of %zu bytes, want %zu", db_names[db],
			val.mv_size, vlen);
		return -EUCLEAN;
	}
	if (vlen > 0)
		memcpy(v, val.mv_data, vlen);
	return 0;
}

static int
t_get_u64(struct lmdb_store *s, MDB_txn *txn, int db, const struct key *k, uint64_t *ret)
{
	uint8_t b[8];
	int r;

	r = t_get(s, txn, db, k, b, sizeof(b));
	if (r == 0)
		*ret = be64_get(b);
	return r;
}

static int
w_put(struct wtx *w, int db, const struct key *k, const void *v, size_t vlen, unsigned int flags)
{
	MDB_val key = kval(k), val = { .mv_size = vlen, .mv_data = (void *)v };
	int rc;

	rc = mdb_put(w->txn, w->s->dbi[db], &key, &val, flags);
	if (rc == MDB_MAP_FULL)
		w->map_full = true;
	return mdb_errno(rc);
}

static int
w_put_u64(struct wtx *w, int db, const struct key *k, uint64_t v, unsigned int flags)
{
	uint8_t b[8];

	be64_put(b, v);
	return w_put(w, db, k, b, sizeof(b), flags);
}

static int
w_del(struct wtx *w, int db, const struct key *k)
{
	MDB_val key = kval(k);
	int rc;

	rc = mdb_del(w->txn, w->s->dbi[db], &key, NULL);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	return mdb_errno(rc);
}

/*
 * Another process (mdb_copy, an old instance) grew the map: adopt the new size. LMDB wants
 * no transaction of ours active, hence the exclusive lock.
 */
static int
adopt_map_resize(struct lmdb_store *s)
{
	int rc;

	pthread_rwlock_wrlock(&s->map_lock);
	rc = mdb_env_set_mapsize(s->env, 0);
	pthread_rwlock_unlock(&s->map_lock);
	return mdb_errno(rc);
}

/* A read transaction, holding map_lock shared until rtxn_end(). */
static int
rtxn_begin(struct lmdb_store *s, MDB_txn **ret)
{
	int rc;

	for (int tries = 0; tries < 3; tries++) {
		pthread_rwlock_rdlock(&s->map_lock);
		rc = mdb_txn_begin(s->env, NULL, MDB_RDONLY, ret);
		if (rc == 0)
			return 0;
		pthread_rwlock_unlock(&s->map_lock);
		if (rc != MDB_MAP_RESIZED)
			break;
		if (adopt_map_resize(s) < 0)
			break;
	}
	return mdb_errno(rc);
}

static void
rtxn_end(struct lmdb_store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->map_lock);
}

/* One record by key in its own read transaction; @v is written only on success. */
static int
r_get(struct lmdb_store *s, int db, const struct key *k, void *v, size_t vlen)
{
	MDB_txn *txn;
	int r;

	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = t_get(s, txn, db, k, v, vlen);
	rtxn_end(s, txn);
	return r;
}

/* ---- the writer ---------------------------------------------------------------------------- */

static int
grow_map(struct lmdb_store *s)
{
	uint64_t want = s->map_size * 2;
	int rc;

	if (s->map_size >= s->map_size_max)
		return -ENOSPC;
	if (want > s->map_size_max)
		want = s->map_size_max;
	pthread_rwlock_wrlock(&s->map_lock);
	rc = mdb_env_set_mapsize(s->env, want);
	pthread_rwlock_unlock(&s->map_lock);
	if (rc != 0)
		return mdb_errno(rc);
	log_debug("store: map grown to %llu bytes", (unsigned long long)want);
	s->map_size = want;
	return 0;
}

static int
wtxn_begin(struct lmdb_store *s, MDB_txn **ret)
{
	int rc;

	for (int tries = 0; tries < 3; tries++) {
		rc = mdb_txn_begin(s->env, NULL, 0, ret);
		if (rc != MDB_MAP_RESIZED)
			break;
		pthread_rwlock_unlock(&s->map_lock);
		adopt_map_resize(s);
		pthread_rwlock_rdlock(&s->map_lock);
	}
	return mdb_errno(rc);
}

/* Run @batch (@n operations) in one write transaction; sets every op->ret. */
static void
run_batch(struct lmdb_store *s, struct op *batch, size_t n, uint64_t *ret_last_event)
{
	struct wtx w;
	struct op *op;
	MDB_txn *txn = NULL, *child;
	int rc, r;

	for (;;) {
		memset(&w, 0, sizeof(w));
		w.s = s;
		w.now = lmdb_now(s);
		pthread_rwlock_rdlock(&s->map_lock);
		r = wtxn_begin(s, &txn);
		if (r < 0) {
			pthread_rwlock_unlock(&s->map_lock);
			for (op = batch; op; op = op->next)
				op->ret = r;
			return;
		}
		for (op = batch; op && !w.map_full; op = op->next) {
			rc = mdb_txn_begin(s->env, txn, 0, &child);
			if (rc != 0) {
				op->ret = mdb_errno(rc);
				continue;
			}
			w.txn = child;
			uint64_t ev_before = w.last_event;
			r = op->apply(&w, op->arg);
			if (r < 0 || w.map_full) {
				mdb_txn_abort(child);
				w.last_event = ev_before;
			} else {
				rc = mdb_txn_commit(child);
				if (rc == MDB_MAP_FULL)
					w.map_full = true;
				if (rc != 0) {
					r = mdb_errno(rc);
					w.last_event = ev_before;
				}
			}
			op->ret = r;
		}
		if (!w.map_full) {
			rc = mdb_txn_commit(txn);
			if (rc == MDB_MAP_FULL) {
				w.map_full = true;
			} else if (rc != 0) {
				r = commit_error(s, rc);
				for (op = batch; op; op = op->next)
					if (op->ret >= 0)
						op->ret = r;
				w.last_event = 0;
			}
		} else {
			mdb_txn_abort(txn);
		}
		pthread_rwlock_unlock(&s->map_lock);
		if (!w.map_full)
			break;
		/* Nothing of this batch was committed: grow and run all of it again. */
		r = grow_map(s);
		if (r < 0) {
			store_set_errmsg("%s", mdb_strerror(MDB_MAP_FULL));
			for (op = batch; op; op = op->next)
				op->ret = r;
			w.last_event = 0;
			break;
		}
	}
	(void)n;
	*ret_last_event = w.last_event;
}

static void *
writer_main(void *arg)
{
	struct lmdb_store *s = arg;
	unsigned int max = s->opts.no_group_commit ? 1 : s->opts.max_batch;

	pthread_mutex_lock(&s->lock);
	for (;;) {
		struct op *batch, *last;
		uint64_t last_event = 0;
		size_t n = 1;

		while (s->head == NULL && !s->stopping)
			pthread_cond_wait(&s->work, &s->lock);
		if (s->head == NULL)
			break;
		batch = last = s->head;
		while (last->next != NULL && n < max) {
			last = last->next;
			n++;
		}
		s->head = last->next;
		if (s->head == NULL)
			s->tail = NULL;
		last->next = NULL;
		pthread_mutex_unlock(&s->lock);

		run_batch(s, batch, n, &last_event);

		pthread_mutex_lock(&s->lock);
		s->stats.commits++;
		s->stats.operations += n;
		for (struct op *op = batch, *next; op; op = next) {
			next = op->next;
			op->done = true;
		}
		if (last_event > s->last_event) {
			s->last_event = last_event;
			pthread_cond_broadcast(&s->event);
		}
		pthread_cond_broadcast(&s->done);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Queue an operation and wait until the commit holding it is durable (or it failed). */
static int
submit(struct lmdb_store *s, apply_fn apply, void *arg)
{
	struct op op = { .apply = apply, .arg = arg };

	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		return -ESHUTDOWN;
	}
	if (s->tail != NULL)
		s->tail->next = &op;
	else
		s->head = &op;
	s->tail = &op;
	pthread_cond_signal(&s->work);
	while (!op.done)
		pthread_cond_wait(&s->done, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return op.ret;
}

/* ---- events ------------------------------------------------------------------------------- */

static const struct key meta_format = { .b = "format", .len = 6 };
static const struct key meta_next_device = { .b = "next_device", .len = 11 };
static const struct key meta_event_seq = { .b = "event_seq", .len = 9 };

/*
 * Append an event. The sequence counter lives in meta rather than being derived from the
 * last key, so trimming old events later can never make a number come back.
 */
static int
append_event(struct wtx *w, int kind, uint64_t device, const char *tenant)
{
	struct store_event ev;
	struct key k;
	uint64_t seq = 0;
	int r;

	r = t_get_u64(w->s, w->txn, DB_META, &meta_event_seq, &seq);
	if (r < 0 && r != -ENOENT)
		return r;
	memset(&ev, 0, sizeof(ev));
	ev.seq = seq + 1;
	ev.time = w->now;
	ev.kind = kind;
	ev.device = device;
	snprintf(ev.tenant, sizeof(ev.tenant), "%s", tenant);
	key_u64(&k, ev.seq);
	r = w_put(w, DB_EVENTS, &k, &ev, sizeof(ev), MDB_APPEND);
	if (r < 0)
		return r;
	r = w_put_u64(w, DB_META, &meta_event_seq, ev.seq, 0);
	if (r < 0)
		return r;
	w->last_event = ev.seq;
	return 0;
}

/* ---- open / close ------------------------------------------------------------------------- */

static int
open_dbs(struct lmdb_store *s)
{
	MDB_txn *txn = NULL;
	uint8_t b[4];
	uint32_t version;
	uint64_t seq = 0;
	int rc, r;

	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0)
		return mdb_errno(rc);
	for (int i = 0; i < DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]);
		if (rc != 0) {
			r = mdb_errno(rc);
			goto err;
		}
	}
	r = t_get(s, txn, DB_META, &meta_format, b, sizeof(b));
	if (r == -ENOENT) {
		MDB_val key = kval(&meta_format), val = { .mv_size = 4, .mv_data = b };

		version = STORE_FORMAT_VERSION;
		memcpy(b, &version, 4);
		rc = mdb_put(txn, s->dbi[DB_META], &key, &val, 0);
		if (rc != 0) {
			r = mdb_errno(rc);
			goto err;
		}
	} else if (r < 0) {
		goto err;
	} else {
		memcpy(&version, b, 4);
		/* Version 1 is the only one so far; a later one migrates older formats here. */
		if (version != STORE_FORMAT_VERSION) {
			store_set_errmsg("on-disk format %u, this build reads %u",
				version, STORE_FORMAT_VERSION);
			r = -EPROTO;
			goto err;
		}
	}
	r = t_get_u64(s, txn, DB_META, &meta_event_seq, &seq);
	if (r < 0 && r != -ENOENT)
		goto err;
	s->last_event = seq;
	rc = mdb_txn_commit(txn);
	return mdb_errno(rc);
err:
	mdb_txn_abort(txn);
	return r;
}

static void lmdb_free(struct store_backend *b);

static int
lmdb_open(struct store_backend **ret, const char *path, const struct store_options *opts)
{
	struct lmdb_store *s;
	pthread_rwlockattr_t attr;
	MDB_envinfo info;
	int rc, r;

	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	if (opts != NULL)
		s->opts = *opts;
	if (s->opts.max_batch == 0)
		s->opts.max_batch = 128;
	s->map_size = s->opts.map_size ? s->opts.map_size : STORE_DEFAULT_MAP_SIZE;
	s->map_size_max = s->opts.map_size_max ? s->opts.map_size_max : s->map_size * 64;
	if (s->map_size_max < s->map_size)
		s->map_size_max = s->map_size;
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&s->map_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->work, NULL);
	pthread_cond_init(&s->done, NULL);
	{
		pthread_condattr_t ca;

		/* store_events_wait() computes deadlines on CLOCK_MONOTONIC. */
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&s->event, &ca);
		pthread_condattr_destroy(&ca);
	}

	if (mkdir(path, 0700) < 0 && errno != EEXIST) {
		r = -errno;
		goto err;
	}
	rc = mdb_env_create(&s->env);
	if (rc != 0) {
		r = mdb_errno(rc);
		s->env = NULL;
		goto err;
	}
	mdb_env_set_maxdbs(s->env, DB_COUNT + 2);
	mdb_env_set_maxreaders(s->env, 512);
	mdb_env_set_mapsize(s->env, s->map_size);
	/*
	 * MDB_NOTLS: read transactions are not tied to threads (HTTP worker pools). No
	 * MDB_NOSYNC / MDB_NOMETASYNC: an acknowledged write must survive a crash.
	 */
	rc = mdb_env_open(s->env, path, MDB_NOTLS, 0600);
	if (rc != 0) {
		r = mdb_errno(rc);
		goto err;
	}
	/* An existing environment may be larger than asked for. */
	if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_size) {
		s->map_size = info.me_mapsize;
		if (s->map_size_max < s->map_size)
			s->map_size_max = s->map_size;
	}
	r = open_dbs(s);
	if (r < 0)
		goto err;
	rc = pthread_create(&s->writer, NULL, writer_main, s);
	if (rc != 0) {
		r = -rc;
		goto err;
	}
	s->writer_started = true;
	*ret = (struct store_backend *)s;
	return 0;
err:
	lmdb_free((struct store_backend *)s);
	return r;
}

static void
lmdb_free(struct store_backend *b)
{
	struct lmdb_store *s = lmdb_of(b);

	if (s == NULL)
		return;
	if (s->writer_started) {
		pthread_mutex_lock(&s->lock);
		s->stopping = true;
		pthread_cond_signal(&s->work);
		pthread_mutex_unlock(&s->lock);
		pthread_join(s->writer, NULL);
	}
	if (s->env != NULL)
		mdb_env_close(s->env);
	pthread_cond_destroy(&s->event);
	pthread_cond_destroy(&s->done);
	pthread_cond_destroy(&s->work);
	pthread_mutex_destroy(&s->lock);
	pthread_rwlock_destroy(&s->map_lock);
	free(s);
}

static void
lmdb_get_stats(struct store_backend *b, struct store_stats *ret)
{
	struct lmdb_store *s = lmdb_of(b);

	pthread_mutex_lock(&s->lock);
	*ret = s->stats;
	ret->map_size = s->map_size;
	pthread_mutex_unlock(&s->lock);
}

static int
lmdb_backup(struct store_backend *b, const char *dir)
{
	struct lmdb_store *s = lmdb_of(b);
	int rc;

	/* mdb_env_copy2 runs its own read transaction: the map must not change under it. */
	pthread_rwlock_rdlock(&s->map_lock);
	rc = mdb_env_copy2(s->env, dir, MDB_CP_COMPACT);
	pthread_rwlock_unlock(&s->map_lock);
	return mdb_errno(rc);
}

/* ---- tenants ----------------------------------------------------------------------------- */

static int
apply_tenant_create(struct wtx *w, void *arg)
{
	const struct store_tenant *t = arg;
	struct store_tenant other;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct key key;
	int rc, r = 0;

	key_bytes(&key, t->name, strlen(t->name));
	r = t_get(w->s, w->txn, DB_TENANTS, &key, &other, sizeof(other));
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	/* Tenants are few: a scan for a shared interface, port or prefix is cheap. */
	rc = mdb_cursor_open(w->txn, w->s->dbi[DB_TENANTS], &cur);
	if (rc != 0)
		return mdb_errno(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (v.mv_size != sizeof(other)) {
			r = -EUCLEAN;
			goto out;
		}
		memcpy(&other, v.mv_data, sizeof(other));
		if (strcmp(other.ifname, t->ifname) == 0 ||
		    (t->listen_port != 0 && other.listen_port == t->listen_port) ||
		    addr_prefix_overlap(&other.prefix4, &t->prefix4) ||
		    (t->prefix6.family && other.prefix6.family &&
			    addr_prefix_overlap(&other.prefix6, &t->prefix6))) {
			r = -EEXIST;
			goto out;
		}
	}
	if (rc != MDB_NOTFOUND) {
		r = mdb_errno(rc);
		goto out;
	}
	r = w_put(w, DB_TENANTS, &key, t, sizeof(*t), MDB_NOOVERWRITE);
out:
	mdb_cursor_close(cur);
	return r;
}

static int
lmdb_tenant_create(struct store_backend *b, const struct store_tenant *t)
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_tenant_create, (void *)t);
}

static int
get_tenant(struct lmdb_store *s, MDB_txn *txn, const char *name, struct store_tenant *ret)
{
	struct key key;

	/* The front checked the names of callers; store_verify() passes names read from disk. */
	if (!store_tenant_name_ok(name))
		return -ENOENT;
	key_bytes(&key, name, strlen(name));
	return t_get(s, txn, DB_TENANTS, &key, ret, sizeof(*ret));
}

static int
lmdb_tenant_get(struct store_backend *b, const char *name, struct store_tenant *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_tenant t;
	MDB_txn *txn;
	int r;

	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = get_tenant(s, txn, name, &t);
	rtxn_end(s, txn);
	if (r == 0)
		*ret = t;
	return r;
}

/*
 * Collect records of @db whose key starts with @prefix (NULL = all) into a malloc()ed
 * array of @size-byte elements; @keep (may be NULL) filters.
 */
static int
collect(struct lmdb_store *s, int db, const struct key *prefix, size_t size,
	bool (*keep)(const void *rec, const void *ctx), const void *ctx, void **ret,
	size_t *ret_n)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k = { 0 }, v;
	uint8_t *arr = NULL, *tmp;
	size_t n = 0, cap = 0;
	int rc, r;

	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	rc = mdb_cursor_open(txn, s->dbi[db], &cur);
	if (rc != 0) {
		r = mdb_errno(rc);
		goto out;
	}
	if (prefix != NULL)
		k = kval(prefix);
	for (rc = mdb_cursor_get(cur, &k, &v, prefix ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (prefix != NULL &&
		    (k.mv_size < prefix->len || memcmp(k.mv_data, prefix->b, prefix->len) != 0))
			break;
		if (v.mv_size != size) {
			r = -EUCLEAN;
			goto out;
		}
		if (keep != NULL && !keep(v.mv_data, ctx))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			tmp = realloc(arr, cap * size);
			if (tmp == NULL) {
				r = -ENOMEM;
				goto out;
			}
			arr = tmp;
		}
		memcpy(arr + n * size, v.mv_data, size);
		n++;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		r = mdb_errno(rc);
		goto out;
	}
	*ret = arr;
	*ret_n = n;
	arr = NULL;
	r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	rtxn_end(s, txn);
	free(arr);
	return r;
}

static int
lmdb_tenant_list(struct store_backend *b, struct store_tenant **ret, size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);

	return collect(s, DB_TENANTS, NULL, sizeof(**ret), NULL, NULL, (void **)ret, ret_n);
}

/* ---- tenant policy ------------------------------------------------------------------------ */

struct policy_op {
	const char *name;
	bool on;
};

static int
apply_require_tpm(struct wtx *w, void *arg)
{
	const struct policy_op *o = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, o->name, &t);
	if (r < 0)
		return r;
	t.require_tpm = o->on ? 1 : 0;
	key_bytes(&key, t.name, strlen(t.name));
	return w_put(w, DB_TENANTS, &key, &t, sizeof(t), 0);
}

static int
lmdb_tenant_set_require_tpm(struct store_backend *b, const char *name, bool on)
{
	struct lmdb_store *s = lmdb_of(b);
	struct policy_op o = { name, on };

	return submit(s, apply_require_tpm, &o);
}

/* ---- device CAs ------------------------------------------------------------------------------ */

static int
apply_device_ca_add(struct wtx *w, void *arg)
{
	const struct store_device_ca *ca = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, ca->tenant, &t);
	if (r < 0)
		return r;
	key_tenant_hash(&key, ca->tenant, ca->fp);
	return w_put(w, DB_DEVICE_CAS, &key, ca, sizeof(*ca), MDB_NOOVERWRITE);
}

static int
lmdb_device_ca_add(struct store_backend *b, const struct store_device_ca *ca)
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_device_ca_add, (void *)ca);
}

struct hash_key {
	const char *tenant;
	const uint8_t *hash;
};

static int
apply_device_ca_remove(struct wtx *w, void *arg)
{
	const struct hash_key *hk = arg;
	struct key key;

	key_tenant_hash(&key, hk->tenant, hk->hash);
	return w_del(w, DB_DEVICE_CAS, &key);
}

static int
lmdb_device_ca_remove(struct store_backend *b, const char *tenant, const uint8_t fp[static STORE_HASH_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	struct hash_key hk = { tenant, fp };

	return submit(s, apply_device_ca_remove, &hk);
}

static int
lmdb_device_ca_list(struct store_backend *b, const char *tenant, struct store_device_ca **ret,
	size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key prefix;

	if (tenant == NULL)
		return collect(s, DB_DEVICE_CAS, NULL, sizeof(**ret), NULL, NULL, (void **)ret,
			ret_n);
	key_tenant(&prefix, tenant);
	return collect(s, DB_DEVICE_CAS, &prefix, sizeof(**ret), NULL, NULL, (void **)ret, ret_n);
}

/* ---- device CA revocation lists ------------------------------------------------------------ */

/* Is @a newer than @b? crlNumber if both have one, else thisUpdate. */
static bool
crl_newer(const struct store_device_crl *a, const struct store_device_crl *b)
{
	if (a->number_len > 0 && b->number_len > 0) {
		if (a->number_len != b->number_len)
			return a->number_len > b->number_len;
		return memcmp(a->number, b->number, a->number_len) > 0;
	}
	return a->this_update > b->this_update;
}

static int
apply_device_crl_put(struct wtx *w, void *arg)
{
	const struct store_device_crl *crl = arg;
	struct store_device_crl old;
	struct store_tenant t;
	struct key key;
	MDB_val k, v;
	int rc, r, replaced = 0;

	r = get_tenant(w->s, w->txn, crl->tenant, &t);
	if (r < 0)
		return r;
	key_tenant_hash(&key, crl->tenant, crl->issuer_hash);
	k = kval(&key);
	rc = mdb_get(w->txn, w->s->dbi[DB_DEVICE_CRLS], &k, &v);
	if (rc == 0) {
		if (v.mv_size < sizeof(old))
			return -EUCLEAN;
		memcpy(&old, v.mv_data, sizeof(old));
		if (!crl_newer(crl, &old))
			return -ESTALE;
		replaced = 1;
	} else if (rc != MDB_NOTFOUND) {
		return mdb_errno(rc);
	}
	r = w_put(w, DB_DEVICE_CRLS, &key, crl, sizeof(*crl) + crl->der_len, 0);
	return r < 0 ? r : replaced;
}

static int
lmdb_device_crl_put(struct store_backend *b, const struct store_device_crl *crl, const uint8_t *der)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_device_crl *rec;
	int r;

	/* the record and the DER, contiguous: the value as stored */
	rec = malloc(sizeof(*rec) + crl->der_len);
	if (rec == NULL)
		return -ENOMEM;
	memcpy(rec, crl, sizeof(*rec));
	memcpy((uint8_t *)(rec + 1), der, crl->der_len);
	r = submit(s, apply_device_crl_put, rec);
	free(rec);
	return r;
}

static int
apply_device_crl_remove(struct wtx *w, void *arg)
{
	const struct hash_key *hk = arg;
	struct key key;

	key_tenant_hash(&key, hk->tenant, hk->hash);
	return w_del(w, DB_DEVICE_CRLS, &key);
}

static int
lmdb_device_crl_remove(struct store_backend *b, const char *tenant,
	const uint8_t issuer_hash[static STORE_HASH_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	struct hash_key hk = { tenant, issuer_hash };

	return submit(s, apply_device_crl_remove, &hk);
}

/* Visit the CRL records of @tenant (NULL: all) in one read transaction. */
static int
lmdb_device_crl_each(struct store_backend *b, const char *tenant,
	int (*fn)(void *ctx, const struct store_device_crl *crl, const uint8_t *der), void *ctx)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_device_crl rec;
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	MDB_val k = { 0 }, v;
	struct key prefix;
	int rc, r;

	if (tenant != NULL) {
		key_tenant(&prefix, tenant);
		k = kval(&prefix);
	}
	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	rc = mdb_cursor_open(txn, s->dbi[DB_DEVICE_CRLS], &cur);
	if (rc != 0) {
		r = mdb_errno(rc);
		goto out;
	}
	r = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, tenant ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (tenant != NULL && (k.mv_size < prefix.len ||
					      memcmp(k.mv_data, prefix.b, prefix.len) != 0))
			break;
		if (v.mv_size < sizeof(rec)) {
			r = -EUCLEAN;
			goto out;
		}
		memcpy(&rec, v.mv_data, sizeof(rec));
		if (v.mv_size != sizeof(rec) + rec.der_len) {
			r = -EUCLEAN;
			goto out;
		}
		r = fn(ctx, &rec, (const uint8_t *)v.mv_data + sizeof(rec));
		if (r < 0)
			goto out;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		r = mdb_errno(rc);
	else
		r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	rtxn_end(s, txn);
	return r;
}

struct crl_list {
	struct store_device_crl *arr;
	size_t n, cap;
};

static int
crl_list_add(void *ctx, const struct store_device_crl *crl, const uint8_t *der)
{
	struct crl_list *l = ctx;
	struct store_device_crl *tmp;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		tmp = realloc(l->arr, l->cap * sizeof(*tmp));
		if (tmp == NULL)
			return -ENOMEM;
		l->arr = tmp;
	}
	l->arr[l->n++] = *crl;
	return 0;
}

static int
lmdb_device_crl_list(struct store_backend *b, const char *tenant, struct store_device_crl **ret,
	size_t *ret_n)
{
	struct crl_list l = { 0 };
	int r;

	r = lmdb_device_crl_each(b, tenant, crl_list_add, &l);
	if (r < 0) {
		free(l.arr);
		return r;
	}
	*ret = l.arr;
	*ret_n = l.n;
	return 0;
}

/* ---- revoked certificate serials ------------------------------------------------------------ */

static int
apply_x509_revoke(struct wtx *w, void *arg)
{
	const struct store_x509_revoked *rv = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, rv->tenant, &t);
	if (r < 0)
		return r;
	key_tenant_serial(&key, rv->tenant, rv->serial, rv->serial_len);
	return w_put(w, DB_X509_REVOKED, &key, rv, sizeof(*rv), MDB_NOOVERWRITE);
}

static int
lmdb_x509_revoke(struct store_backend *b, const struct store_x509_revoked *rv)
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_x509_revoke, (void *)rv);
}

struct serial_key {
	const char *tenant;
	const uint8_t *serial;
	size_t len;
};

static int
apply_x509_unrevoke(struct wtx *w, void *arg)
{
	const struct serial_key *sk = arg;
	struct key key;

	key_tenant_serial(&key, sk->tenant, sk->serial, sk->len);
	return w_del(w, DB_X509_REVOKED, &key);
}

static int
lmdb_x509_unrevoke(struct store_backend *b, const char *tenant, const uint8_t *serial, size_t serial_len)
{
	struct lmdb_store *s = lmdb_of(b);
	struct serial_key sk = { tenant, serial, serial_len };

	return submit(s, apply_x509_unrevoke, &sk);
}

static int
lmdb_x509_revoked_list(struct store_backend *b, const char *tenant, struct store_x509_revoked **ret,
	size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key prefix;

	key_tenant(&prefix, tenant);
	return collect(s, DB_X509_REVOKED, &prefix, sizeof(**ret), NULL, NULL, (void **)ret,
		ret_n);
}

static int
x509_revoked_in(struct lmdb_store *s, MDB_txn *txn, const char *tenant, const uint8_t *serial,
	size_t serial_len)
{
	struct store_x509_revoked rv;
	struct key key;
	int r;

	key_tenant_serial(&key, tenant, serial, serial_len);
	r = t_get(s, txn, DB_X509_REVOKED, &key, &rv, sizeof(rv));
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

static int
lmdb_x509_is_revoked(struct store_backend *b, const char *tenant, const uint8_t *serial,
	size_t serial_len)
{
	struct lmdb_store *s = lmdb_of(b);
	MDB_txn *txn;
	int r;

	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = x509_revoked_in(s, txn, tenant, serial, serial_len);
	rtxn_end(s, txn);
	return r;
}

/* ---- registrations ------------------------------------------------------------------------ */

static int
apply_registration_add(struct wtx *w, void *arg)
{
	const struct store_registration *reg = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, reg->tenant, &t);
	if (r < 0)
		return r;
	key_tenant_hash(&key, reg->tenant, reg->ek_hash);
	return w_put(w, DB_REGISTRATIONS, &key, reg, sizeof(*reg), MDB_NOOVERWRITE);
}

static int
lmdb_registration_add(struct store_backend *b, const struct store_registration *reg)
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_registration_add, (void *)reg);
}

struct reg_key {
	const char *tenant;
	const uint8_t *ek_hash;
};

static int
apply_registration_remove(struct wtx *w, void *arg)
{
	const struct reg_key *rk = arg;
	struct key key;

	key_tenant_hash(&key, rk->tenant, rk->ek_hash);
	return w_del(w, DB_REGISTRATIONS, &key);
}

static int
lmdb_registration_remove(struct store_backend *b, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	struct reg_key rk = { tenant, ek_hash };

	return submit(s, apply_registration_remove, &rk);
}

static int
lmdb_registration_get(struct store_backend *b, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN], struct store_registration *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key key;

	key_tenant_hash(&key, tenant, ek_hash);
	return r_get(s, DB_REGISTRATIONS, &key, ret, sizeof(*ret));
}

static int
lmdb_registration_list(struct store_backend *b, const char *tenant, struct store_registration **ret,
	size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key prefix;

	key_tenant(&prefix, tenant);
	return collect(s, DB_REGISTRATIONS, &prefix, sizeof(**ret), NULL, NULL, (void **)ret,
		ret_n);
}

/* ---- tokens ---------------------------------------------------------------------------------- */

static int
apply_token_create(struct wtx *w, void *arg)
{
	const struct store_token *tok = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, tok->tenant, &t);
	if (r < 0)
		return r;
	key_bytes(&key, tok->hash, sizeof(tok->hash));
	return w_put(w, DB_TOKENS, &key, tok, sizeof(*tok), MDB_NOOVERWRITE);
}

static int
lmdb_token_create(struct store_backend *b, const struct store_token *tok)
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_token_create, (void *)tok);
}

static bool
token_of_tenant(const void *rec, const void *ctx)
{
	const struct store_token *t = rec;

	return strncmp(t->tenant, ctx, STORE_NAME_MAX) == 0;
}

static int
lmdb_token_list(struct store_backend *b, const char *tenant, struct store_token **ret, size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);

	return collect(s, DB_TOKENS, NULL, sizeof(**ret), tenant ? token_of_tenant : NULL, tenant,
		(void **)ret, ret_n);
}

static int
lmdb_token_get(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN],
	struct store_token *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key key;

	key_bytes(&key, hash, STORE_HASH_LEN);
	return r_get(s, DB_TOKENS, &key, ret, sizeof(*ret));
}

static int
apply_token_revoke(struct wtx *w, void *arg)
{
	struct store_token t;
	struct key key;
	int r;

	key_bytes(&key, arg, STORE_HASH_LEN);
	r = t_get(w->s, w->txn, DB_TOKENS, &key, &t, sizeof(t));
	if (r < 0)
		return r;
	if (t.revoked)
		return -EALREADY;
	t.revoked = 1;
	return w_put(w, DB_TOKENS, &key, &t, sizeof(t), 0);
}

static int
lmdb_token_revoke(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN])
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_token_revoke, (void *)hash);
}

/* ---- sessions ------------------------------------------------------------------------------ */

/*
 * Delete sessions past their expiry, used or not; returns how many. A used session is kept
 * until then, so that a replay within the session's lifetime is answered 410 session_used,
 * the same every time, and only a session gone for good answers 404 unknown_session.
 */
static int
purge_sessions(struct wtx *w)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc, n = 0;

	rc = mdb_cursor_open(w->txn, w->s->dbi[DB_SESSIONS], &cur);
	if (rc != 0)
		return mdb_errno(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct store_session sess;
		bool keep;

		if (v.mv_size != sizeof(sess))
			continue;
		memcpy(&sess, v.mv_data, sizeof(sess));
		keep = sess.expires > w->now;
		store_session_wipe(&sess);
		if (keep)
			continue;
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0)
			break;
		n++;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_MAP_FULL)
		w->map_full = true;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return mdb_errno(rc);
	return n;
}

static int
apply_session_create(struct wtx *w, void *arg)
{
	const struct store_session *sess = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, sess->tenant, &t);
	if (r < 0)
		return r;
	/*
	 * Expiry is in whole seconds: one purge per second removes exactly what one per
	 * creation would (the scan of every live session was 3-5% of enrolld's CPU under
	 * enrollment load, and grows with session_ttl x rate).
	 */
	if (w->now != w->s->sessions_purged) {
		r = purge_sessions(w);
		if (r < 0)
			return r;
		w->s->sessions_purged = w->now;
	}
	key_bytes(&key, sess->id, sizeof(sess->id));
	return w_put(w, DB_SESSIONS, &key, sess, sizeof(*sess), MDB_NOOVERWRITE);
}

static int
lmdb_session_create(struct store_backend *b, const struct store_session *sess,
	uint8_t ret_id[static STORE_SESSION_ID_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	int r;

	r = submit(s, apply_session_create, (void *)sess);
	if (r == 0)
		memcpy(ret_id, sess->id, sizeof(sess->id));
	return r;
}

static int
lmdb_session_get(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN],
	struct store_session *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_session sess;
	struct key key;
	int r;

	key_bytes(&key, id, STORE_SESSION_ID_LEN);
	r = r_get(s, DB_SESSIONS, &key, &sess, sizeof(sess));
	if (r < 0)
		return r;
	if (sess.used)
		r = -EALREADY;
	else if (sess.expires <= lmdb_now(s))
		r = -ETIMEDOUT;
	else
		*ret = sess;
	store_session_wipe(&sess);
	return r;
}

/* Mark used and wipe the stored secret. @sess is the record, already read. */
static int
use_session(struct wtx *w, const struct key *key, struct store_session *sess)
{
	sess->used = 1;
	explicit_bzero(sess->secret, sizeof(sess->secret));
	sess->secret_len = 0;
	return w_put(w, DB_SESSIONS, key, sess, sizeof(*sess), 0);
}

static int
apply_session_use(struct wtx *w, void *arg)
{
	struct store_session sess;
	struct key key;
	int r;

	key_bytes(&key, arg, STORE_SESSION_ID_LEN);
	r = t_get(w->s, w->txn, DB_SESSIONS, &key, &sess, sizeof(sess));
	if (r == 0)
		r = sess.used ? -EALREADY : use_session(w, &key, &sess);
	store_session_wipe(&sess);
	return r;
}

static int
lmdb_session_use(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_session_use, (void *)id);
}

static int
apply_session_purge(struct wtx *w, void *arg)
{
	return purge_sessions(w);
}

static int
lmdb_session_purge(struct store_backend *b)
{
	return submit(lmdb_of(b), apply_session_purge, NULL);
}

/* ---- devices ------------------------------------------------------------------------------ */

static int
get_device(struct lmdb_store *s, MDB_txn *txn, uint64_t id, struct store_device *ret)
{
	struct key key;

	key_u64(&key, id);
	return t_get(s, txn, DB_DEVICES, &key, ret, sizeof(*ret));
}

static int
put_device(struct wtx *w, const struct store_device *d)
{
	struct key key;

	key_u64(&key, d->id);
	return w_put(w, DB_DEVICES, &key, d, sizeof(*d), 0);
}

/* Look @db[@k] up as a device id, then the device. */
static int
get_device_via(struct lmdb_store *s, MDB_txn *txn, int db, const struct key *k,
	struct store_device *ret)
{
	uint64_t id = 0;
	int r;

	r = t_get_u64(s, txn, db, k, &id);
	if (r < 0)
		return r;
	return get_device(s, txn, id, ret);
}

/*
 * The lowest free usable address of @family in tenant @t: walk the tenant's address index
 * from the low-water mark (addr_hint) upwards, feeding used offsets to the allocator.
 */
static int
alloc_address(struct wtx *w, const struct store_tenant *t, int family, uint8_t ret_addr[16],
	uint64_t *ret_off)
{
	const struct addr_prefix *p = family == AF_INET ? &t->prefix4 : &t->prefix6;
	const uint8_t *self = family == AF_INET ? t->self4 : t->self6;
	struct addr_alloc a;
	struct key hint_key, prefix, start;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t hint = 0, off;
	uint8_t addr[16];
	int rc, r;

	key_tenant_family(&hint_key, t->name, family);
	r = t_get_u64(w->s, w->txn, DB_ADDR_HINT, &hint_key, &hint);
	if (r < 0 && r != -ENOENT)
		return r;
	r = addr_alloc_begin(&a, p, self, hint);
	if (r < 0)
		return r;
	if (addr_alloc_end(&a, &off) == 0) {
		addr_at(p, a.cand, addr);
		key_tenant_family(&prefix, t->name, family);
		key_tenant_addr(&start, t->name, family, addr);
		rc = mdb_cursor_open(w->txn, w->s->dbi[DB_DEV_ADDR], &cur);
		if (rc != 0)
			return mdb_errno(rc);
		k = kval(&start);
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			uint8_t used[16] = { 0 };
			uint64_t used_off;

			if (k.mv_size != prefix.len + addr_len(family) ||
			    memcmp(k.mv_data, prefix.b, prefix.len) != 0)
				break;
			memcpy(used, (const uint8_t *)k.mv_data + prefix.len, addr_len(family));
			if (addr_offset(p, used, &used_off) < 0)
				continue;
			if (addr_alloc_feed(&a, used_off))
				break;
		}
		mdb_cursor_close(cur);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return mdb_errno(rc);
	}
	r = addr_alloc_end(&a, &off);
	if (r < 0) {
		store_set_errmsg("tenant '%s': no free IPv%d address", t->name,
			family == AF_INET ? 4 : 6);
		return r;
	}
	addr_at(p, off, ret_addr);
	*ret_off = off;
	/* Everything below the returned offset was taken, and now it is too. */
	if (off >= hint)
		return w_put_u64(w, DB_ADDR_HINT, &hint_key, off + 1, 0);
	return 0;
}

/* Give an address back: lower the low-water mark if it lies below. */
static int
free_address(struct wtx *w, const struct store_tenant *t, int family, const uint8_t addr[16])
{
	const struct addr_prefix *p = family == AF_INET ? &t->prefix4 : &t->prefix6;
	struct key hint_key, key;
	uint64_t hint = 0, off;
	int r;

	key_tenant_addr(&key, t->name, family, addr);
	r = w_del(w, DB_DEV_ADDR, &key);
	if (r < 0)
		return r;
	if (addr_offset(p, addr, &off) < 0)
		return 0;
	key_tenant_family(&hint_key, t->name, family);
	r = t_get_u64(w->s, w->txn, DB_ADDR_HINT, &hint_key, &hint);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && off < hint)
		return w_put_u64(w, DB_ADDR_HINT, &hint_key, off, 0);
	return 0;
}

struct enroll_op {
	const struct store_enroll_req *req;
	struct store_device dev;
	struct store_device prev; /* the EK's device before this enrollment; id 0 = none */
	int result;
};

/* Session checks of an enrollment: exists, matches the request, fresh, unused -> used. */
static int
enroll_session(struct wtx *w, const struct store_enroll_req *req)
{
	struct store_session sess;
	struct key key;
	int r;

	key_bytes(&key, req->session_id, sizeof(req->session_id));
	r = t_get(w->s, w->txn, DB_SESSIONS, &key, &sess, sizeof(sess));
	if (r < 0)
		goto out;
	if (sess.used)
		r = -EALREADY;
	else if (sess.expires <= w->now)
		r = -ETIMEDOUT;
	else if (strncmp(sess.tenant, req->tenant, STORE_NAME_MAX) != 0 ||
		 memcmp(sess.ek_hash, req->ek_hash, STORE_HASH_LEN) != 0 ||
		 memcmp(sess.wg_pubkey, req->wg_pubkey, STORE_KEY_LEN) != 0)
		r = -EINVAL;
	else
		r = use_session(w, &key, &sess);
out:
	store_session_wipe(&sess);
	return r;
}

/* Authorisation: one use of a token, or a registration of the EK in the tenant. */
static int
enroll_authorise(struct wtx *w, const struct store_enroll_req *req)
{
	struct store_token tok;
	struct store_registration reg;
	struct key key;
	int r;

	if (!req->has_token) {
		key_tenant_hash(&key, req->tenant, req->ek_hash);
		r = t_get(w->s, w->txn, DB_REGISTRATIONS, &key, &reg, sizeof(reg));
		return r == -ENOENT ? -EACCES : r;
	}
	key_bytes(&key, req->token_hash, sizeof(req->token_hash));
	r = t_get(w->s, w->txn, DB_TOKENS, &key, &tok, sizeof(tok));
	if (r < 0)
		return r == -ENOENT ? -EACCES : r;
	if (strncmp(tok.tenant, req->tenant, STORE_NAME_MAX) != 0 || tok.revoked ||
	    tok.uses_left == 0)
		return -EACCES;
	if (tok.expires != 0 && tok.expires <= w->now)
		return -ETIMEDOUT;
	tok.uses_left--;
	return w_put(w, DB_TOKENS, &key, &tok, sizeof(tok), 0);
}

/* An enrollment of an EK that already has a device: same key, rotation, or renewal. */
static int
enroll_existing(struct wtx *w, struct enroll_op *e, uint64_t id)
{
	const struct store_enroll_req *req = e->req;
	struct store_device *d = &e->dev;
	struct key key;
	bool was_revoked;
	int r;

	r = get_device(w->s, w->txn, id, d);
	if (r < 0)
		return r;
	e->prev = *d;
	if (strncmp(d->tenant, req->tenant, STORE_NAME_MAX) != 0) {
		store_set_errmsg("EK enrolled in tenant '%s'", d->tenant);
		return -EEXIST;
	}
	was_revoked = d->state == STORE_DEVICE_REVOKED;
	if (memcmp(d->wg_pubkey, req->wg_pubkey, STORE_KEY_LEN) != 0) {
		key_bytes(&key, req->wg_pubkey, STORE_KEY_LEN);
		r = w_put_u64(w, DB_DEV_PUBKEY, &key, d->id, MDB_NOOVERWRITE);
		if (r < 0)
			return r;
		key_bytes(&key, d->wg_pubkey, STORE_KEY_LEN);
		r = w_del(w, DB_DEV_PUBKEY, &key);
		if (r < 0)
			return r;
		memcpy(d->wg_pubkey, req->wg_pubkey, STORE_KEY_LEN);
		e->result = was_revoked ? STORE_ENROLL_RENEWED : STORE_ENROLL_ROTATED;
	} else if (was_revoked) {
		e->result = STORE_ENROLL_RENEWED;
	} else {
		e->result = STORE_ENROLL_SAME;
		return 0;
	}
	d->state = STORE_DEVICE_ACTIVE;
	d->kind = req->kind;
	d->updated = w->now;
	r = put_device(w, d);
	if (r < 0)
		return r;
	return append_event(w, e->result == STORE_ENROLL_ROTATED ? STORE_EV_ROTATED :
		STORE_EV_ENROLLED, d->id, d->tenant);
}

static int
enroll_new(struct wtx *w, struct enroll_op *e, const struct store_tenant *t)
{
	const struct store_enroll_req *req = e->req;
	struct store_device *d = &e->dev;
	struct key key;
	uint64_t id = 0, off;
	int r;

	memset(d, 0, sizeof(*d));
	r = t_get_u64(w->s, w->txn, DB_META, &meta_next_device, &id);
	if (r < 0 && r != -ENOENT)
		return r;
	d->id = id ? id : 1;
	memcpy(d->tenant, t->name, sizeof(d->tenant));
	r = alloc_address(w, t, AF_INET, d->addr4, &off);
	if (r < 0)
		return r;
	if (t->prefix6.family == AF_INET6) {
		r = alloc_address(w, t, AF_INET6, d->addr6, &off);
		if (r < 0)
			return r;
		d->has_addr6 = 1;
	}
	d->state = STORE_DEVICE_ACTIVE;
	d->kind = req->kind;
	memcpy(d->wg_pubkey, req->wg_pubkey, STORE_KEY_LEN);
	memcpy(d->ek_hash, req->ek_hash, STORE_HASH_LEN);
	d->created = d->updated = w->now;

	/* MDB_NOOVERWRITE everywhere: an index collision is a bug, never an overwrite. */
	key_tenant_addr(&key, t->name, AF_INET, d->addr4);
	r = w_put_u64(w, DB_DEV_ADDR, &key, d->id, MDB_NOOVERWRITE);
	if (r == 0 && d->has_addr6) {
		key_tenant_addr(&key, t->name, AF_INET6, d->addr6);
		r = w_put_u64(w, DB_DEV_ADDR, &key, d->id, MDB_NOOVERWRITE);
	}
	if (r == 0) {
		key_bytes(&key, d->wg_pubkey, STORE_KEY_LEN);
		r = w_put_u64(w, DB_DEV_PUBKEY, &key, d->id, MDB_NOOVERWRITE);
	}
	if (r == 0) {
		key_bytes(&key, d->ek_hash, STORE_HASH_LEN);
		r = w_put_u64(w, DB_DEV_EK, &key, d->id, MDB_NOOVERWRITE);
	}
	if (r == 0) {
		key_tenant_id(&key, t->name, d->id);
		r = w_put(w, DB_DEV_TENANT, &key, "", 0, MDB_NOOVERWRITE);
	}
	if (r == 0) {
		key_u64(&key, d->id);
		r = w_put(w, DB_DEVICES, &key, d, sizeof(*d), MDB_NOOVERWRITE);
	}
	if (r == 0)
		r = w_put_u64(w, DB_META, &meta_next_device, d->id + 1, 0);
	if (r < 0)
		return r;
	e->result = STORE_ENROLL_NEW;
	return append_event(w, STORE_EV_ENROLLED, d->id, d->tenant);
}

static int
apply_enroll(struct wtx *w, void *arg)
{
	struct enroll_op *e = arg;
	const struct store_enroll_req *req = e->req;
	struct store_tenant t;
	struct revocation rev;
	struct key key;
	uint64_t id;
	int r;

	memset(&e->prev, 0, sizeof(e->prev));
	r = get_tenant(w->s, w->txn, req->tenant, &t);
	if (r < 0)
		return r;
	if (req->has_session) {
		r = enroll_session(w, req);
		if (r < 0)
			return r;
	}
	key_bytes(&key, req->ek_hash, STORE_HASH_LEN);
	r = t_get(w->s, w->txn, DB_REVOCATIONS, &key, &rev, sizeof(rev));
	if (r == 0)
		return -EPERM;
	if (r != -ENOENT)
		return r;
	if (req->kind == STORE_ATTEST_X509) {
		/* the certificate is the authorisation; policy and serial checked here, atomically */
		if (t.require_tpm)
			return -EPROTONOSUPPORT;
		r = x509_revoked_in(w->s, w->txn, req->tenant, req->serial, req->serial_len);
		if (r < 0)
			return r;
		if (r == 1)
			return -EKEYREVOKED;
	} else {
		r = enroll_authorise(w, req);
		if (r < 0)
			return r;
	}
	/* The key must not belong to another device (a peer is identified by its key). */
	key_bytes(&key, req->wg_pubkey, STORE_KEY_LEN);
	r = t_get_u64(w->s, w->txn, DB_DEV_PUBKEY, &key, &id);
	if (r == 0) {
		struct store_device other;

		r = get_device(w->s, w->txn, id, &other);
		if (r < 0)
			return r;
		if (memcmp(other.ek_hash, req->ek_hash, STORE_HASH_LEN) != 0)
			return -EEXIST;
	} else if (r != -ENOENT) {
		return r;
	}
	key_bytes(&key, req->ek_hash, STORE_HASH_LEN);
	r = t_get_u64(w->s, w->txn, DB_DEV_EK, &key, &id);
	if (r == 0)
		return enroll_existing(w, e, id);
	if (r != -ENOENT)
		return r;
	return enroll_new(w, e, &t);
}

static int
lmdb_enroll_prev(struct store_backend *b, const struct store_enroll_req *req,
	struct store_device *ret_dev, struct store_device *ret_prev)
{
	struct lmdb_store *s = lmdb_of(b);
	struct enroll_op e = { .req = req };
	int r;

	r = submit(s, apply_enroll, &e);
	if (r < 0)
		return r;
	if (ret_dev != NULL)
		*ret_dev = e.dev;
	if (ret_prev != NULL)
		*ret_prev = e.prev;
	return e.result;
}

static int
lmdb_device_get(struct store_backend *b, uint64_t id, struct store_device *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_device d;
	MDB_txn *txn;
	int r;

	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = get_device(s, txn, id, &d);
	rtxn_end(s, txn);
	if (r == 0)
		*ret = d;
	return r;
}

static int
device_via(struct lmdb_store *s, int db, const struct key *k, struct store_device *ret)
{
	struct store_device d;
	MDB_txn *txn;
	int r;

	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = get_device_via(s, txn, db, k, &d);
	rtxn_end(s, txn);
	if (r == 0)
		*ret = d;
	return r;
}

static int
lmdb_device_by_pubkey(struct store_backend *b, const uint8_t key[static STORE_KEY_LEN],
	struct store_device *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key k;

	key_bytes(&k, key, STORE_KEY_LEN);
	return device_via(s, DB_DEV_PUBKEY, &k, ret);
}

static int
lmdb_device_by_ek(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN],
	struct store_device *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key k;

	key_bytes(&k, ek_hash, STORE_HASH_LEN);
	return device_via(s, DB_DEV_EK, &k, ret);
}

static int
lmdb_device_by_addr(struct store_backend *b, const char *tenant, int family,
	const uint8_t addr[static 16], struct store_device *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key k;

	key_tenant_addr(&k, tenant, family, addr);
	return device_via(s, DB_DEV_ADDR, &k, ret);
}

static int
lmdb_device_list(struct store_backend *b, const struct store_device_filter *f,
	struct store_device **ret, size_t *ret_n, uint64_t *ret_next)
{
	struct lmdb_store *s = lmdb_of(b);
	unsigned int limit = f->limit;
	struct store_device *arr = NULL, d;
	struct key start, prefix;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t next = 0, id;
	size_t n = 0;
	int rc, r;

	arr = calloc(limit, sizeof(*arr));
	if (arr == NULL)
		return -ENOMEM;
	r = rtxn_begin(s, &txn);
	if (r < 0)
		goto out_free;
	/* By tenant: walk that tenant's index; otherwise the devices themselves, both by id. */
	if (f->tenant != NULL) {
		key_tenant(&prefix, f->tenant);
		key_tenant_id(&start, f->tenant, f->after + 1);
		rc = mdb_cursor_open(txn, s->dbi[DB_DEV_TENANT], &cur);
	} else {
		prefix.len = 0;
		key_u64(&start, f->after + 1);
		rc = mdb_cursor_open(txn, s->dbi[DB_DEVICES], &cur);
	}
	if (rc != 0) {
		r = mdb_errno(rc);
		goto out;
	}
	k = kval(&start);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != prefix.len + 8 || memcmp(k.mv_data, prefix.b, prefix.len) != 0)
			break;
		id = be64_get((const uint8_t *)k.mv_data + prefix.len);
		r = get_device(s, txn, id, &d);
		if (r < 0)
			goto out;
		if (f->state != 0 && d.state != f->state)
			continue;
		if (n == limit) {
			/* One more match exists: the page is full and there is a next one. */
			next = arr[n - 1].id;
			break;
		}
		arr[n++] = d;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		r = mdb_errno(rc);
		goto out;
	}
	*ret = arr;
	*ret_n = n;
	*ret_next = next;
	arr = NULL;
	r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	rtxn_end(s, txn);
out_free:
	free(arr);
	return r;
}

struct device_op {
	uint64_t id;
	struct store_device dev;
};

static int
apply_revoke(struct wtx *w, void *arg)
{
	struct device_op *o = arg;
	struct store_device *d = &o->dev;
	struct revocation rev = { 0 };
	struct key key;
	int r;

	r = get_device(w->s, w->txn, o->id, d);
	if (r < 0)
		return r;
	if (d->state == STORE_DEVICE_REVOKED)
		return -EALREADY;
	d->state = STORE_DEVICE_REVOKED;
	d->revoked = d->updated = w->now;
	r = put_device(w, d);
	if (r < 0)
		return r;
	rev.time = w->now;
	rev.device = d->id;
	key_bytes(&key, d->ek_hash, STORE_HASH_LEN);
	r = w_put(w, DB_REVOCATIONS, &key, &rev, sizeof(rev), 0);
	if (r < 0)
		return r;
	return append_event(w, STORE_EV_REVOKED, d->id, d->tenant);
}

static int
lmdb_device_revoke(struct store_backend *b, uint64_t id, struct store_device *ret_dev)
{
	struct lmdb_store *s = lmdb_of(b);
	struct device_op o = { .id = id };
	int r;

	r = submit(s, apply_revoke, &o);
	if (r == 0 && ret_dev != NULL)
		*ret_dev = o.dev;
	return r;
}

static int
apply_reinstate(struct wtx *w, void *arg)
{
	struct device_op *o = arg;
	struct store_device *d = &o->dev;
	struct key key;
	int r;

	r = get_device(w->s, w->txn, o->id, d);
	if (r < 0)
		return r;
	key_bytes(&key, d->ek_hash, STORE_HASH_LEN);
	r = w_del(w, DB_REVOCATIONS, &key);
	if (r == -ENOENT)
		return -EALREADY;
	if (r < 0)
		return r;
	return append_event(w, STORE_EV_REINSTATED, d->id, d->tenant);
}

static int
lmdb_device_reinstate(struct store_backend *b, uint64_t id)
{
	struct lmdb_store *s = lmdb_of(b);
	struct device_op o = { .id = id };

	return submit(s, apply_reinstate, &o);
}

/* Delete index entry @k of @db only if it still points at @id. */
static int
del_if_points(struct wtx *w, int db, const struct key *k, uint64_t id)
{
	uint64_t cur;
	int r;

	r = t_get_u64(w->s, w->txn, db, k, &cur);
	if (r == -ENOENT || (r == 0 && cur != id))
		return 0;
	if (r < 0)
		return r;
	return w_del(w, db, k);
}

static int
apply_delete(struct wtx *w, void *arg)
{
	struct device_op *o = arg;
	struct store_device *d = &o->dev;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_device(w->s, w->txn, o->id, d);
	if (r < 0)
		return r;
	if (d->state != STORE_DEVICE_REVOKED)
		return -EBUSY;
	r = get_tenant(w->s, w->txn, d->tenant, &t);
	if (r < 0)
		return r;
	r = free_address(w, &t, AF_INET, d->addr4);
	if (r == 0 && d->has_addr6)
		r = free_address(w, &t, AF_INET6, d->addr6);
	if (r < 0)
		return r;
	key_bytes(&key, d->wg_pubkey, STORE_KEY_LEN);
	r = del_if_points(w, DB_DEV_PUBKEY, &key, d->id);
	if (r < 0)
		return r;
	key_bytes(&key, d->ek_hash, STORE_HASH_LEN);
	r = del_if_points(w, DB_DEV_EK, &key, d->id);
	if (r < 0)
		return r;
	key_tenant_id(&key, d->tenant, d->id);
	r = w_del(w, DB_DEV_TENANT, &key);
	if (r < 0)
		return r;
	key_u64(&key, d->id);
	r = w_del(w, DB_HEALTH, &key);
	if (r < 0 && r != -ENOENT)
		return r;
	return w_del(w, DB_DEVICES, &key);
}

static int
lmdb_device_delete(struct store_backend *b, uint64_t id)
{
	struct lmdb_store *s = lmdb_of(b);
	struct device_op o = { .id = id };

	return submit(s, apply_delete, &o);
}

static int
lmdb_ek_revoked(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	struct revocation rev;
	struct key key;
	int r;

	key_bytes(&key, ek_hash, STORE_HASH_LEN);
	r = r_get(s, DB_REVOCATIONS, &key, &rev, sizeof(rev));
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

/* ---- health ------------------------------------------------------------------------------- */

struct health_op {
	const struct store_health *h;
	size_t n;
	int transitions;
};

static int
apply_health(struct wtx *w, void *arg)
{
	struct health_op *o = arg;
	int r;

	o->transitions = 0;
	for (size_t i = 0; i < o->n; i++) {
		const struct store_health *h = &o->h[i];
		struct store_health cur = { 0 }, rec = { 0 };
		struct store_device d;
		struct key key;

		r = get_device(w->s, w->txn, h->device, &d);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		key_u64(&key, h->device);
		r = t_get(w->s, w->txn, DB_HEALTH, &key, &cur, sizeof(cur));
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == -ENOENT)
			cur.state = STORE_HEALTH_NEVER;
		if (cur.state == h->state)
			continue;
		rec.device = h->device;
		rec.state = h->state;
		rec.since = h->since ? h->since : w->now;
		r = w_put(w, DB_HEALTH, &key, &rec, sizeof(rec), 0);
		if (r < 0)
			return r;
		if (h->state != STORE_HEALTH_NEVER) {
			r = append_event(w, h->state == STORE_HEALTH_UP ? STORE_EV_UP : STORE_EV_DOWN,
				d.id, d.tenant);
			if (r < 0)
				return r;
		}
		o->transitions++;
	}
	return 0;
}

static int
lmdb_health_update(struct store_backend *b, const struct store_health *h, size_t n)
{
	struct lmdb_store *s = lmdb_of(b);
	struct health_op o = { .h = h, .n = n };
	int r;

	r = submit(s, apply_health, &o);
	return r < 0 ? r : o.transitions;
}

static int
lmdb_health_get(struct store_backend *b, uint64_t device, struct store_health *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_health h = { 0 };
	struct store_device d;
	struct key key;
	MDB_txn *txn;
	int r;

	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = get_device(s, txn, device, &d);
	if (r == 0) {
		key_u64(&key, device);
		r = t_get(s, txn, DB_HEALTH, &key, &h, sizeof(h));
		if (r == -ENOENT) {
			h.device = device;
			h.state = STORE_HEALTH_NEVER;
			r = 0;
		}
	}
	rtxn_end(s, txn);
	if (r == 0)
		*ret = h;
	return r;
}

/* ---- event log ------------------------------------------------------------------------------- */

static int
lmdb_events_read(struct store_backend *b, uint64_t after, size_t max, struct store_event **ret,
	size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_event *arr = NULL;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct key start;
	size_t n = 0;
	int rc, r;

	arr = calloc(max, sizeof(*arr));
	if (arr == NULL)
		return -ENOMEM;
	r = rtxn_begin(s, &txn);
	if (r < 0)
		goto out_free;
	rc = mdb_cursor_open(txn, s->dbi[DB_EVENTS], &cur);
	if (rc != 0) {
		r = mdb_errno(rc);
		goto out;
	}
	key_u64(&start, after + 1);
	k = kval(&start);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && n < max;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (v.mv_size != sizeof(*arr)) {
			r = -EUCLEAN;
			goto out;
		}
		memcpy(&arr[n++], v.mv_data, sizeof(*arr));
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		r = mdb_errno(rc);
		goto out;
	}
	*ret = arr;
	*ret_n = n;
	arr = NULL;
	r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	rtxn_end(s, txn);
out_free:
	free(arr);
	return r;
}

static int
lmdb_events_last(struct store_backend *b, uint64_t *ret_seq)
{
	struct lmdb_store *s = lmdb_of(b);
	uint64_t seq = 0;
	MDB_txn *txn;
	int r;

	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = t_get_u64(s, txn, DB_META, &meta_event_seq, &seq);
	rtxn_end(s, txn);
	if (r < 0 && r != -ENOENT)
		return r;
	*ret_seq = seq;
	return 0;
}

static int
lmdb_events_wait(struct store_backend *b, uint64_t after, int timeout_ms)
{
	struct lmdb_store *s = lmdb_of(b);
	struct timespec deadline;
	int r = 0, rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	while (s->last_event <= after && rc != ETIMEDOUT && !s->stopping)
		rc = pthread_cond_timedwait(&s->event, &s->lock, &deadline);
	r = s->last_event > after;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- consistency check ----------------------------------------------------------------------- */

#define FAIL(...)                                                 \
	do {                                                      \
		snprintf(why, why_len, __VA_ARGS__);              \
		r = -EUCLEAN;                                     \
		goto out;                                         \
	} while (0)

/* @db[@k] must exist and name device @id. */
static bool
index_points(struct lmdb_store *s, MDB_txn *txn, int db, const struct key *k, uint64_t id)
{
	uint64_t v = 0;

	return t_get_u64(s, txn, db, k, &v) == 0 && v == id;
}

static size_t
db_entries(struct lmdb_store *s, MDB_txn *txn, int db)
{
	MDB_stat st;

	if (mdb_stat(txn, s->dbi[db], &st) != 0)
		return SIZE_MAX;
	return st.ms_entries;
}

static int
verify_address(struct lmdb_store *s, MDB_txn *txn, const struct store_tenant *t,
	const struct store_device *d, int family, char *why, size_t why_len)
{
	const struct addr_prefix *p = family == AF_INET ? &t->prefix4 : &t->prefix6;
	const uint8_t *addr = family == AF_INET ? d->addr4 : d->addr6;
	const uint8_t *self = family == AF_INET ? t->self4 : t->self6;
	struct key k;
	char a[ADDR_STR_LEN] = "?";
	int r = 0;

	addr_format(family, addr, a, sizeof(a));
	if (!addr_is_usable(p, addr) || memcmp(addr, self, addr_len(family)) == 0)
		FAIL("device %llu: address %s not usable in tenant '%s'",
			(unsigned long long)d->id, a, t->name);
	key_tenant_addr(&k, t->name, family, addr);
	if (!index_points(s, txn, DB_DEV_ADDR, &k, d->id))
		FAIL("device %llu: address %s not held in the address index",
			(unsigned long long)d->id, a);
out:
	return r;
}

/* Every usable offset below a tenant's low-water mark must be taken. */
static int
verify_hint(struct lmdb_store *s, MDB_txn *txn, const struct store_tenant *t, int family, char *why,
	size_t why_len)
{
	const struct addr_prefix *p = family == AF_INET ? &t->prefix4 : &t->prefix6;
	const uint8_t *self = family == AF_INET ? t->self4 : t->self6;
	uint64_t hint = 0, first, last, self_off = UINT64_MAX, id;
	uint8_t addr[16];
	struct key k;
	int r = 0;

	key_tenant_family(&k, t->name, family);
	if (t_get_u64(s, txn, DB_ADDR_HINT, &k, &hint) < 0)
		return 0;
	if (addr_usable_range(p, &first, &last) < 0)
		return 0;
	addr_offset(p, self, &self_off);
	for (uint64_t off = first; off < hint && off <= last && off - first < (1u << 20); off++) {
		if (off == self_off)
			continue;
		addr_at(p, off, addr);
		key_tenant_addr(&k, t->name, family, addr);
		if (t_get_u64(s, txn, DB_DEV_ADDR, &k, &id) < 0)
			FAIL("tenant '%s': offset %llu below the allocation mark %llu is free",
				t->name, (unsigned long long)off, (unsigned long long)hint);
	}
out:
	return r;
}

static int
lmdb_verify(struct store_backend *b, char *why, size_t why_len)
{
	struct lmdb_store *s = lmdb_of(b);
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct store_device d;
	struct store_tenant t;
	struct key key;
	size_t n_dev = 0, n_addr = 0;
	uint64_t seq = 0;
	int rc, r;

	snprintf(why, why_len, "consistent");
	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	rc = mdb_cursor_open(txn, s->dbi[DB_DEVICES], &cur);
	if (rc != 0) {
		r = mdb_errno(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || v.mv_size != sizeof(d))
			FAIL("devices: record of bad size");
		memcpy(&d, v.mv_data, sizeof(d));
		if (be64_get(k.mv_data) != d.id)
			FAIL("device %llu stored under another id", (unsigned long long)d.id);
		if (d.state != STORE_DEVICE_ACTIVE && d.state != STORE_DEVICE_REVOKED)
			FAIL("device %llu: bad state %u", (unsigned long long)d.id, d.state);
		if (get_tenant(s, txn, d.tenant, &t) < 0)
			FAIL("device %llu: no tenant '%.31s'", (unsigned long long)d.id, d.tenant);
		key_bytes(&key, d.wg_pubkey, STORE_KEY_LEN);
		if (!index_points(s, txn, DB_DEV_PUBKEY, &key, d.id))
			FAIL("device %llu: public key index", (unsigned long long)d.id);
		key_bytes(&key, d.ek_hash, STORE_HASH_LEN);
		if (!index_points(s, txn, DB_DEV_EK, &key, d.id))
			FAIL("device %llu: EK index", (unsigned long long)d.id);
		key_tenant_id(&key, d.tenant, d.id);
		if (t_get(s, txn, DB_DEV_TENANT, &key, NULL, 0) < 0)
			FAIL("device %llu: tenant index", (unsigned long long)d.id);
		r = verify_address(s, txn, &t, &d, AF_INET, why, why_len);
		if (r == 0 && d.has_addr6)
			r = verify_address(s, txn, &t, &d, AF_INET6, why, why_len);
		if (r < 0)
			goto out;
		n_dev++;
		n_addr += 1 + (d.has_addr6 ? 1 : 0);
	}
	/*
	 * Each device was found in each index under its own key; equal counts make the indexes
	 * exactly the devices' entries (no stale entry, hence no address held twice).
	 */
	if (db_entries(s, txn, DB_DEV_PUBKEY) != n_dev || db_entries(s, txn, DB_DEV_EK) != n_dev ||
	    db_entries(s, txn, DB_DEV_TENANT) != n_dev || db_entries(s, txn, DB_DEV_ADDR) != n_addr)
		FAIL("index entry counts differ from %zu devices / %zu addresses", n_dev, n_addr);
	mdb_cursor_close(cur);
	cur = NULL;
	rc = mdb_cursor_open(txn, s->dbi[DB_TENANTS], &cur);
	if (rc != 0) {
		r = mdb_errno(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (v.mv_size != sizeof(t))
			FAIL("tenants: record of bad size");
		memcpy(&t, v.mv_data, sizeof(t));
		r = verify_hint(s, txn, &t, AF_INET, why, why_len);
		if (r == 0 && t.prefix6.family == AF_INET6)
			r = verify_hint(s, txn, &t, AF_INET6, why, why_len);
		if (r < 0)
			goto out;
	}
	t_get_u64(s, txn, DB_META, &meta_event_seq, &seq);
	mdb_cursor_close(cur);
	cur = NULL;
	rc = mdb_cursor_open(txn, s->dbi[DB_EVENTS], &cur);
	if (rc == 0 && mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 &&
	    (k.mv_size != 8 || be64_get(k.mv_data) > seq))
		FAIL("event log ends after the sequence counter %llu", (unsigned long long)seq);
	r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	rtxn_end(s, txn);
	return r;
}

static int
lmdb_device_list_all(struct store_backend *b, const char *tenant, uint8_t state,
	struct store_device **ret, size_t *ret_n)
{
	struct store_device_filter f = { .tenant = tenant, .state = state, .limit = 1000 };
	struct store_device *all = NULL, *page = NULL, *na;
	size_t n = 0, n_page;
	uint64_t next;
	int r;

	do {
		r = lmdb_device_list(b, &f, &page, &n_page, &next);
		if (r < 0)
			goto err;
		if (n_page > 0) {
			na = realloc(all, (n + n_page) * sizeof(*na));
			if (na == NULL) {
				r = -ENOMEM;
				goto err;
			}
			all = na;
			memcpy(all + n, page, n_page * sizeof(*page));
			n += n_page;
		}
		free(page);
		page = NULL;
		f.after = next;
	} while (next != 0);
	*ret = all;
	*ret_n = n;
	return 0;
err:
	free(page);
	free(all);
	return r;
}

const struct store_ops store_lmdb_ops = {
	.name = "lmdb",
	.open = lmdb_open,
	.free = lmdb_free,
	.backup = lmdb_backup,
	.verify = lmdb_verify,
	.tenant_create = lmdb_tenant_create,
	.tenant_get = lmdb_tenant_get,
	.tenant_list = lmdb_tenant_list,
	.tenant_set_require_tpm = lmdb_tenant_set_require_tpm,
	.device_ca_add = lmdb_device_ca_add,
	.device_ca_remove = lmdb_device_ca_remove,
	.device_ca_list = lmdb_device_ca_list,
	.device_crl_put = lmdb_device_crl_put,
	.device_crl_remove = lmdb_device_crl_remove,
	.device_crl_list = lmdb_device_crl_list,
	.device_crl_each = lmdb_device_crl_each,
	.x509_revoke = lmdb_x509_revoke,
	.x509_unrevoke = lmdb_x509_unrevoke,
	.x509_revoked_list = lmdb_x509_revoked_list,
	.x509_is_revoked = lmdb_x509_is_revoked,
	.registration_add = lmdb_registration_add,
	.registration_remove = lmdb_registration_remove,
	.registration_get = lmdb_registration_get,
	.registration_list = lmdb_registration_list,
	.token_create = lmdb_token_create,
	.token_list = lmdb_token_list,
	.token_get = lmdb_token_get,
	.token_revoke = lmdb_token_revoke,
	.session_create = lmdb_session_create,
	.session_get = lmdb_session_get,
	.session_use = lmdb_session_use,
	.session_purge = lmdb_session_purge,
	.enroll_prev = lmdb_enroll_prev,
	.device_get = lmdb_device_get,
	.device_by_pubkey = lmdb_device_by_pubkey,
	.device_by_ek = lmdb_device_by_ek,
	.device_by_addr = lmdb_device_by_addr,
	.device_list = lmdb_device_list,
	.device_list_all = lmdb_device_list_all,
	.device_revoke = lmdb_device_revoke,
	.device_reinstate = lmdb_device_reinstate,
	.device_delete = lmdb_device_delete,
	.ek_revoked = lmdb_ek_revoked,
	.health_update = lmdb_health_update,
	.health_get = lmdb_health_get,
	.events_read = lmdb_events_read,
	.events_last = lmdb_events_last,
	.events_wait = lmdb_events_wait,
	.get_stats = lmdb_get_stats,
};
