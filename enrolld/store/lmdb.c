// SPDX-License-Identifier: MIT
/*
 * enrolld's durable state in LMDB. docs/state.md describes the data model; in short:
 *
 *   meta          "format" -> u32, "next_device" -> u64, "event_seq" -> u64,
 *                 "session_key" -> 32 bytes (the session ids' tags: lmdb_session.c)
 *   tenants       name -> struct store_tenant
 *   devices       id (u64 BE) -> struct store_device
 *   dev_pubkey    WireGuard public key (32) -> id
 *   dev_ek        EK hash (32) -> id
 *   dev_addr      tenant NUL family(4|6) address(4|16) -> id   (per-tenant address index)
 *   dev_tenant    tenant NUL id (u64 BE) -> ""                 (devices of a tenant, in order)
 *   addr_hint     tenant NUL family -> u64 offset: every usable offset below it is taken
 *   registrations tenant NUL EK hash -> struct store_registration
 *   tokens        SHA-256(token) -> struct store_token
 *   sessions      nothing since sessions are kept in memory (lmdb_session.c); records
 *                 an older version wrote are dropped at open
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
 *
 * The backend's files: this one (environment, keys, transactions, the writer, open/free/
 * backup/stats, store_lmdb_ops), lmdb_internal.h (what they share), lmdb_tenant.c (tenants,
 * device CAs, device CRLs, revoked X.509 serials), lmdb_device.c (enrollment, devices,
 * address allocation, revoke/reinstate/delete), lmdb_token.c (tokens, registrations),
 * lmdb_session.c, lmdb_event.c (events, health), lmdb_verify.c. The front (store.c)
 * validates the input of every op before it gets here (backend.h).
 */
#include <errno.h>
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
#include "enrolld/store/lmdb_internal.h"

/* Pin the on-disk layouts (x86-64 / aarch64 LP64): changing one needs a format bump. */
_Static_assert(sizeof(struct store_tenant) == 1184, "tenant record layout changed");
_Static_assert(sizeof(struct store_device) == 168, "device record layout changed");
_Static_assert(sizeof(struct store_registration) == 136, "registration record layout changed");
_Static_assert(sizeof(struct store_token) == 160, "token record layout changed");
_Static_assert(sizeof(struct store_event) == 64, "event record layout changed");
_Static_assert(sizeof(struct store_health) == 24, "health record layout changed");
_Static_assert(sizeof(struct store_device_ca) == 8464, "device CA record layout changed");
_Static_assert(sizeof(struct store_x509_revoked) == 144, "x509 revocation layout changed");
_Static_assert(sizeof(struct store_device_crl) == 248, "device CRL record layout changed");

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

/* The one place MDB_* codes become errnos. */
int
lm_errno(int rc)
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
	int r = lm_errno(rc);

	if ((rc == EIO || rc == ENOSPC) && mdb_env_get_fd(s->env, &fd) == 0 &&
		fstatvfs(fd, &st) == 0 && (uint64_t)st.f_bavail * st.f_frsize < STORE_FULL_MARGIN) {
		store_set_errmsg("the file system is full");
		r = -ENOSPC;
	}
	return r;
}

int64_t
lmdb_now(const struct lmdb_store *s)
{
	if (s->opts.clock != NULL)
		return s->opts.clock(s->opts.clock_ctx);
	return (int64_t)time(NULL);
}

/* ---- transaction helpers ------------------------------------------------------------------ */

/* Read @db[@k] into @v of exactly @vlen bytes: -ENOENT, or -EUCLEAN if the size is wrong. */
int
lm_t_get(struct lmdb_store *s, MDB_txn *txn, int db, const struct key *k, void *v, size_t vlen)
{
	MDB_val key = kval(k), val;
	int rc;

	rc = mdb_get(txn, s->dbi[db], &key, &val);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0)
		return lm_errno(rc);
	if (val.mv_size != vlen) {
		store_set_errmsg("%s: record of %zu bytes, want %zu", db_names[db],
			val.mv_size, vlen);
		return -EUCLEAN;
	}
	if (vlen > 0)
		memcpy(v, val.mv_data, vlen);
	return 0;
}

int
lm_t_get_u64(struct lmdb_store *s, MDB_txn *txn, int db, const struct key *k, uint64_t *ret)
{
	uint8_t b[8];
	int r;

	r = lm_t_get(s, txn, db, k, b, sizeof(b));
	if (r == 0)
		*ret = be64_get(b);
	return r;
}

int
lm_w_put(struct wtx *w, int db, const struct key *k, const void *v, size_t vlen, unsigned int flags)
{
	MDB_val key = kval(k), val = { .mv_size = vlen, .mv_data = (void *)v };
	int rc;

	rc = mdb_put(w->txn, w->s->dbi[db], &key, &val, flags);
	if (rc == MDB_MAP_FULL)
		w->map_full = true;
	return lm_errno(rc);
}

int
lm_w_put_u64(struct wtx *w, int db, const struct key *k, uint64_t v, unsigned int flags)
{
	uint8_t b[8];

	be64_put(b, v);
	return lm_w_put(w, db, k, b, sizeof(b), flags);
}

int
lm_w_del(struct wtx *w, int db, const struct key *k)
{
	MDB_val key = kval(k);
	int rc;

	rc = mdb_del(w->txn, w->s->dbi[db], &key, NULL);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	return lm_errno(rc);
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
	return lm_errno(rc);
}

/* A read transaction, holding map_lock shared until lm_rtxn_end(). */
int
lm_rtxn_begin(struct lmdb_store *s, MDB_txn **ret)
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
	return lm_errno(rc);
}

void
lm_rtxn_end(struct lmdb_store *s, MDB_txn *txn)
{
	mdb_txn_abort(txn);
	pthread_rwlock_unlock(&s->map_lock);
}

/* One record by key in its own read transaction; @v is written only on success. */
int
lm_r_get(struct lmdb_store *s, int db, const struct key *k, void *v, size_t vlen)
{
	MDB_txn *txn;
	int r;

	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = lm_t_get(s, txn, db, k, v, vlen);
	lm_rtxn_end(s, txn);
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
		return lm_errno(rc);
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
	return lm_errno(rc);
}

/*
 * Run @batch (@n operations) in one write transaction; sets every op->ret. Sessions the
 * batch's enrollments claimed are used if it commits, open again if not.
 */
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
				op->ret = lm_errno(rc);
				continue;
			}
			w.txn = child;
			uint64_t ev_before = w.last_event;
			struct lm_sess *claimed_before = w.claimed;

			r = op->apply(&w, op->arg);
			if (r < 0 || w.map_full) {
				mdb_txn_abort(child);
				w.last_event = ev_before;
				lm_sessions_settle(s, &w.claimed, claimed_before, false);
			} else {
				rc = mdb_txn_commit(child);
				if (rc == MDB_MAP_FULL)
					w.map_full = true;
				if (rc != 0) {
					r = lm_errno(rc);
					w.last_event = ev_before;
					lm_sessions_settle(s, &w.claimed, claimed_before, false);
				}
			}
			op->ret = r;
		}
		if (!w.map_full) {
			rc = mdb_txn_commit(txn);
			lm_sessions_settle(s, &w.claimed, NULL, rc == 0);
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
			lm_sessions_settle(s, &w.claimed, NULL, false);
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
		/*
		 * Wake this batch's callers only, each on its own condition (a broadcast woke
		 * every waiting caller at each commit). Under the lock: an op lives on its
		 * caller's stack, which it leaves as soon as it sees done.
		 */
		for (struct op *op = batch, *next; op; op = next) {
			next = op->next;
			op->done = true;
			pthread_cond_signal(&op->wake);
		}
		if (last_event > s->last_event) {
			s->last_event = last_event;
			pthread_cond_broadcast(&s->event);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Queue an operation and wait until the commit holding it is durable (or it failed). */
int
lm_submit(struct lmdb_store *s, apply_fn apply, void *arg)
{
	struct op op = { .apply = apply, .arg = arg };

	pthread_cond_init(&op.wake, NULL);
	pthread_mutex_lock(&s->lock);
	if (s->stopping) {
		pthread_mutex_unlock(&s->lock);
		pthread_cond_destroy(&op.wake);
		return -ESHUTDOWN;
	}
	if (s->tail != NULL)
		s->tail->next = &op;
	else
		s->head = &op;
	s->tail = &op;
	pthread_cond_signal(&s->work);
	while (!op.done)
		pthread_cond_wait(&op.wake, &s->lock);
	pthread_mutex_unlock(&s->lock);
	pthread_cond_destroy(&op.wake);
	return op.ret;
}

/* ---- meta keys ------------------------------------------------------------------------------- */

static const struct key lm_meta_format = { .b = "format", .len = 6 };
const struct key lm_meta_next_device = { .b = "next_device", .len = 11 };
const struct key lm_meta_event_seq = { .b = "event_seq", .len = 9 };
const struct key lm_meta_session_key = { .b = "session_key", .len = 11 };

/* ---- open / close ------------------------------------------------------------------------- */

/*
 * The session ids' key (made at the first open), and no session records: an older version
 * wrote open sessions here; they cannot complete after a restart, and now nothing reads them.
 */
static int
open_sessions(struct lmdb_store *s, MDB_txn *txn, uint8_t key[static LM_SESSION_KEY_LEN])
{
	MDB_val k = kval(&lm_meta_session_key), v = { .mv_size = LM_SESSION_KEY_LEN };
	MDB_stat st;
	int rc, r;

	r = lm_t_get(s, txn, DB_META, &lm_meta_session_key, key, LM_SESSION_KEY_LEN);
	if (r == -ENOENT) {
		if (getrandom(key, LM_SESSION_KEY_LEN, 0) != LM_SESSION_KEY_LEN)
			return -EIO;
		v.mv_data = key;
		rc = mdb_put(txn, s->dbi[DB_META], &k, &v, 0);
		if (rc != 0)
			return lm_errno(rc);
	} else if (r < 0) {
		return r;
	}
	rc = mdb_stat(txn, s->dbi[DB_SESSIONS], &st);
	if (rc == 0 && st.ms_entries > 0)
		rc = mdb_drop(txn, s->dbi[DB_SESSIONS], 0);
	return lm_errno(rc);
}

static int
open_dbs(struct lmdb_store *s, uint8_t session_key[static LM_SESSION_KEY_LEN])
{
	MDB_txn *txn = NULL;
	uint8_t b[4];
	uint32_t version;
	uint64_t seq = 0;
	int rc, r;

	rc = mdb_txn_begin(s->env, NULL, 0, &txn);
	if (rc != 0)
		return lm_errno(rc);
	for (int i = 0; i < DB_COUNT; i++) {
		rc = mdb_dbi_open(txn, db_names[i], MDB_CREATE, &s->dbi[i]);
		if (rc != 0) {
			r = lm_errno(rc);
			goto err;
		}
	}
	r = lm_t_get(s, txn, DB_META, &lm_meta_format, b, sizeof(b));
	if (r == -ENOENT) {
		MDB_val key = kval(&lm_meta_format), val = { .mv_size = 4, .mv_data = b };

		version = STORE_FORMAT_VERSION;
		memcpy(b, &version, 4);
		rc = mdb_put(txn, s->dbi[DB_META], &key, &val, 0);
		if (rc != 0) {
			r = lm_errno(rc);
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
	r = lm_t_get_u64(s, txn, DB_META, &lm_meta_event_seq, &seq);
	if (r < 0 && r != -ENOENT)
		goto err;
	s->last_event = seq;
	r = open_sessions(s, txn, session_key);
	if (r < 0)
		goto err;
	rc = mdb_txn_commit(txn);
	return lm_errno(rc);
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
	uint8_t session_key[LM_SESSION_KEY_LEN];
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
		r = lm_errno(rc);
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
		r = lm_errno(rc);
		goto err;
	}
	/* An existing environment may be larger than asked for. */
	if (mdb_env_info(s->env, &info) == 0 && info.me_mapsize > s->map_size) {
		s->map_size = info.me_mapsize;
		if (s->map_size_max < s->map_size)
			s->map_size_max = s->map_size;
	}
	r = open_dbs(s, session_key);
	if (r == 0)
		r = lm_sessions_new(&s->sessions, session_key);
	explicit_bzero(session_key, sizeof(session_key));
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
	lm_sessions_free(s->sessions);
	pthread_cond_destroy(&s->event);
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
	return lm_errno(rc);
}

/*
 * Collect records of @db whose key starts with @prefix (NULL = all) into a malloc()ed
 * array of @size-byte elements; @keep (may be NULL) filters.
 */
int
lm_collect(struct lmdb_store *s, int db, const struct key *prefix, size_t size,
	bool (*keep)(const void *rec, const void *ctx), const void *ctx, void **ret,
	size_t *ret_n)
{
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k = { 0 }, v;
	uint8_t *arr = NULL, *tmp;
	size_t n = 0, cap = 0;
	int rc, r;

	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	rc = mdb_cursor_open(txn, s->dbi[db], &cur);
	if (rc != 0) {
		r = lm_errno(rc);
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
		r = lm_errno(rc);
		goto out;
	}
	*ret = arr;
	*ret_n = n;
	arr = NULL;
	r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	lm_rtxn_end(s, txn);
	free(arr);
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
	.health_list = lmdb_health_list,
	.events_read = lmdb_events_read,
	.events_last = lmdb_events_last,
	.events_wait = lmdb_events_wait,
	.get_stats = lmdb_get_stats,
	.export_raw = lmdb_export_raw,
	.import = lmdb_import,
};
