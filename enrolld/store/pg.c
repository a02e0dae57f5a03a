// SPDX-License-Identifier: MIT
/*
 * The PostgreSQL backend: the connection pool, one transaction per op, SQLSTATE -> errno,
 * secrets sealed under the KEK, the event log's waiter (LISTEN/NOTIFY), open and close.
 * The ops themselves are in pg_ops.c (tenants .. sessions) and pg_dev.c (devices).
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "common/secmem.h"
#include "enrolld/store/pg.h"

/* ---- parameters and results ---------------------------------------------------------------- */

static void
be64_put(uint8_t *b, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

void
pa_i64(struct pg_args *a, int64_t v)
{
	int i = a->n++;

	be64_put(a->num[i], (uint64_t)v);
	a->val[i] = (const char *)a->num[i];
	a->len[i] = 8;
	a->fmt[i] = 1;
}

void
pa_bytes(struct pg_args *a, const void *p, size_t n)
{
	int i = a->n++;

	/* libpq wants a non-NULL pointer for an empty value */
	a->val[i] = n ? (const char *)p : "";
	a->len[i] = (int)n;
	a->fmt[i] = 1;
}

void
pa_text(struct pg_args *a, const char *s)
{
	if (s == NULL) {
		pa_null(a);
		return;
	}
	pa_bytes(a, s, strlen(s));
}

void
pa_null(struct pg_args *a)
{
	int i = a->n++;

	a->val[i] = NULL;
	a->len[i] = 0;
	a->fmt[i] = 1;
}

int64_t
rv_i64(const PGresult *res, int row, int col)
{
	const uint8_t *p = (const uint8_t *)PQgetvalue(res, row, col);
	uint64_t v = 0;

	if (PQgetisnull(res, row, col) || PQgetlength(res, row, col) != 8)
		return 0;
	for (int i = 0; i < 8; i++)
		v = v << 8 | p[i];
	return (int64_t)v;
}

bool
rv_null(const PGresult *res, int row, int col)
{
	return PQgetisnull(res, row, col);
}

int
rv_bytes(const PGresult *res, int row, int col, void *out, size_t max)
{
	int len = PQgetlength(res, row, col);

	if (PQgetisnull(res, row, col))
		return 0;
	if (len < 0 || (size_t)len > max)
		return -EUCLEAN;
	memcpy(out, PQgetvalue(res, row, col), (size_t)len);
	return len;
}

int
rv_text(const PGresult *res, int row, int col, char *out, size_t max)
{
	int len = PQgetlength(res, row, col);

	memset(out, 0, max);
	if (PQgetisnull(res, row, col))
		return 0;
	if (len < 0 || (size_t)len >= max)
		return -EUCLEAN;
	memcpy(out, PQgetvalue(res, row, col), (size_t)len);
	return len;
}

/* ---- errors ---------------------------------------------------------------------------------- */

/* Internal: a deadlock or serialization failure, retried by pg_txn. */
#define PG_RETRY (-EDEADLK)

int
pg_errno(PGconn *c, const PGresult *res)
{
	const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
	const char *msg = res ? PQresultErrorMessage(res) : PQerrorMessage(c);
	size_t n = strcspn(msg ? msg : "", "\n");

	store_set_errmsg("postgresql: %.*s", (int)n, msg ? msg : "");
	if (PQstatus(c) != CONNECTION_OK || state == NULL)
		return -EIO;
	if (strcmp(state, "23505") == 0 || strcmp(state, "23P01") == 0) /* unique, exclusion */
		return -EEXIST;
	if (strcmp(state, "23503") == 0) /* foreign key: the tenant (or device) is gone */
		return -ENOENT;
	if (strcmp(state, "23514") == 0 || strcmp(state, "23502") == 0 ||
	    strncmp(state, "22", 2) == 0) /* check, not null, data exceptions */
		return -EINVAL;
	if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
		return PG_RETRY;
	if (strcmp(state, "53100") == 0) /* disk full */
		return -ENOSPC;
	if (strncmp(state, "53", 2) == 0) /* out of memory, too many connections */
		return -EAGAIN;
	return -EIO;
}

int
pg_q(PGconn *c, const char *sql, const struct pg_args *a, PGresult **ret)
{
	PGresult *res;
	int r = 0;

	res = PQexecParams(c, sql, a ? a->n : 0, NULL, a ? a->val : NULL, a ? a->len : NULL,
		a ? a->fmt : NULL, 1);
	switch (PQresultStatus(res)) {
	case PGRES_COMMAND_OK:
	case PGRES_TUPLES_OK:
		break;
	default:
		r = pg_errno(c, res);
		PQclear(res);
		return r;
	}
	if (ret != NULL)
		*ret = res;
	else
		PQclear(res);
	return 0;
}

int
pg_exec(PGconn *c, const char *sql, const struct pg_args *a)
{
	PGresult *res = NULL;
	const char *n;
	int r;

	r = pg_q(c, sql, a, &res);
	if (r < 0)
		return r;
	if (PQresultStatus(res) == PGRES_TUPLES_OK)
		r = PQntuples(res);
	else
		r = (n = PQcmdTuples(res)) && *n ? atoi(n) : 0;
	PQclear(res);
	return r;
}

/* ---- the pool and transactions --------------------------------------------------------------- */

int64_t
pg_now(const struct store_backend *b)
{
	return b->clock ? b->clock(b->clock_ctx) : (int64_t)time(NULL);
}

/* The server's NOTICEs ("relation ... already exists, skipping") are not ours to print. */
static void
notice_ignore(void *arg, const char *message)
{
}

static PGconn *
pg_connect(const char *conninfo)
{
	PGconn *c = PQconnectdb(conninfo);

	if (c != NULL && PQstatus(c) == CONNECTION_OK) {
		PQsetNoticeProcessor(c, notice_ignore, NULL);
		return c;
	}
	store_set_errmsg("postgresql: %s", c ? PQerrorMessage(c) : "out of memory");
	PQfinish(c);
	return NULL;
}

/* A connection of the pool for this thread (waits for a free one), connected. */
static int
pool_get(struct store_backend *b, size_t *ret_i)
{
	size_t i;
	PGconn *c;

	pthread_mutex_lock(&b->pool_lock);
	for (;;) {
		for (i = 0; i < b->n_conns && b->busy[i]; i++)
			;
		if (i < b->n_conns)
			break;
		pthread_cond_wait(&b->pool_cond, &b->pool_lock);
	}
	b->busy[i] = true;
	pthread_mutex_unlock(&b->pool_lock);
	if (b->conns[i] != NULL && PQstatus(b->conns[i]) != CONNECTION_OK) {
		PQfinish(b->conns[i]);
		b->conns[i] = NULL;
	}
	if (b->conns[i] == NULL) {
		c = pg_connect(b->conninfo);
		if (c == NULL) {
			pthread_mutex_lock(&b->pool_lock);
			b->busy[i] = false;
			pthread_cond_signal(&b->pool_cond);
			pthread_mutex_unlock(&b->pool_lock);
			return -ENOTCONN; /* the database cannot be reached: nothing was done */
		}
		b->conns[i] = c;
	}
	*ret_i = i;
	return 0;
}

/* Give a connection back; @broken: close it, the next op on this slot reconnects. */
static void
pool_put(struct store_backend *b, size_t i, bool broken)
{
	if (broken || PQstatus(b->conns[i]) != CONNECTION_OK ||
	    PQtransactionStatus(b->conns[i]) != PQTRANS_IDLE) {
		PQfinish(b->conns[i]);
		b->conns[i] = NULL;
	}
	pthread_mutex_lock(&b->pool_lock);
	b->busy[i] = false;
	pthread_cond_signal(&b->pool_cond);
	pthread_mutex_unlock(&b->pool_lock);
}

/* The events a transaction appended: the newest, published after its COMMIT. */
static __thread uint64_t txn_last_event;

static void
events_seen(struct store_backend *b, uint64_t seq)
{
	pthread_mutex_lock(&b->ev_lock);
	if (seq > b->last_event) {
		b->last_event = seq;
		pthread_cond_broadcast(&b->ev_cond);
	}
	pthread_mutex_unlock(&b->ev_lock);
}

int
pg_txn(struct store_backend *b, bool write, pg_fn fn, void *arg)
{
	PGresult *res;
	PGconn *c;
	size_t i;
	int r = -EIO, attempt;

	for (attempt = 0; attempt < 8; attempt++) {
		bool broken = false;

		r = pool_get(b, &i);
		if (r < 0)
			break;
		c = b->conns[i];
		txn_last_event = 0;
		r = pg_exec(c, "BEGIN", NULL);
		if (r >= 0)
			r = fn(b, c, arg);
		if (r < 0) {
			broken = PQstatus(c) != CONNECTION_OK;
			if (!broken)
				pg_exec(c, "ROLLBACK", NULL);
			pool_put(b, i, broken);
			/* Nothing was committed: a broken connection or a deadlock is tried again. */
			if (broken && attempt == 0)
				continue;
			if (broken)
				r = -ENOTCONN; /* twice: the database is gone; nothing was committed */
			if (r == PG_RETRY)
				continue;
			break;
		}
		res = PQexec(c, "COMMIT");
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			/* An error answer: not committed. No answer: the outcome is unknown. */
			broken = PQstatus(c) != CONNECTION_OK || res == NULL;
			r = broken ? -EIO : pg_errno(c, res);
			if (broken)
				store_set_errmsg("postgresql: connection lost at COMMIT, outcome unknown");
			PQclear(res);
			pool_put(b, i, broken);
			if (r == PG_RETRY)
				continue;
			break;
		}
		if (strcmp(PQcmdStatus(res), "COMMIT") != 0) {
			/* "ROLLBACK": the transaction had failed; never report that as done */
			PQclear(res);
			pool_put(b, i, false);
			r = -EIO;
			break;
		}
		PQclear(res);
		pool_put(b, i, false);
		if (write)
			__atomic_add_fetch(&b->commits, 1, __ATOMIC_RELAXED);
		if (txn_last_event)
			events_seen(b, txn_last_event);
		break;
	}
	if (r == PG_RETRY)
		r = -EAGAIN;
	if (write)
		__atomic_add_fetch(&b->operations, 1, __ATOMIC_RELAXED);
	return r;
}

int
pg_read(struct store_backend *b, const char *sql, const struct pg_args *a, PGresult **ret)
{
	size_t i;
	int r = -EIO;

	for (int attempt = 0; attempt < 2; attempt++) {
		bool broken;

		r = pool_get(b, &i);
		if (r < 0)
			return r;
		r = pg_q(b->conns[i], sql, a, ret);
		broken = PQstatus(b->conns[i]) != CONNECTION_OK;
		pool_put(b, i, broken);
		/* a read is safe to repeat on a fresh connection */
		if (r >= 0 || !broken)
			break;
		r = -ENOTCONN;
	}
	return r == PG_RETRY ? -EAGAIN : r;
}

int
pg_list(struct store_backend *b, const char *sql, const struct pg_args *a, size_t size,
	int (*row)(const PGresult *res, int i, void *out), void **ret, size_t *ret_n)
{
	PGresult *res = NULL;
	uint8_t *arr = NULL;
	int r, n;

	r = pg_read(b, sql, a, &res);
	if (r < 0)
		return r;
	n = PQntuples(res);
	arr = calloc(n ? (size_t)n : 1, size);
	if (arr == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		r = row(res, i, arr + (size_t)i * size);
		if (r < 0)
			goto out;
	}
	*ret = arr;
	*ret_n = (size_t)n;
	arr = NULL;
	r = 0;
out:
	free(arr);
	PQclear(res);
	return r;
}

/* ---- events ---------------------------------------------------------------------------------- */

int
pg_event_append(struct store_backend *b, PGconn *c, int kind, uint64_t device,
	const char *tenant)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	char seq_s[24];
	int64_t seq;
	int r;

	/*
	 * The one-row counter, not a sequence: its row lock is held to COMMIT, so event
	 * writers commit one after the other and seq order is commit order (a sequence's
	 * values commit out of order, and a reader past N would miss a later-committed N-1).
	 */
	r = pg_q(c, "UPDATE meta SET event_seq = event_seq + 1 RETURNING event_seq", NULL, &res);
	if (r < 0)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return -EUCLEAN;
	}
	seq = rv_i64(res, 0, 0);
	PQclear(res);
	pa_i64(&a, seq);
	pa_i64(&a, pg_now(b));
	pa_i64(&a, kind);
	pa_i64(&a, (int64_t)device);
	pa_text(&a, tenant);
	r = pg_exec(c, "INSERT INTO events (seq, time, kind, device, tenant) "
		"VALUES ($1::int8, $2::int8, $3::int8, $4::int8, $5::text)", &a);
	if (r < 0)
		return r;
	/* delivered at COMMIT, to every node's listener */
	snprintf(seq_s, sizeof(seq_s), "%lld", (long long)seq);
	memset(&a, 0, sizeof(a));
	pa_text(&a, seq_s);
	r = pg_exec(c, "SELECT pg_notify('" PG_EVENTS_CHANNEL "', $1::text)", &a);
	if (r < 0)
		return r;
	txn_last_event = (uint64_t)seq;
	return 0;
}

static int
q_events_last(PGconn *c, uint64_t *ret)
{
	PGresult *res = NULL;
	int r;

	r = pg_q(c, "SELECT event_seq FROM meta", NULL, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) == 1 ? 0 : -EUCLEAN;
	if (r == 0)
		*ret = (uint64_t)rv_i64(res, 0, 0);
	PQclear(res);
	return r;
}

/*
 * The listener: one connection of its own, LISTENing; each NOTIFY raises last_event and
 * wakes the waiters of store_events_wait. After a lost connection it reconnects and reads
 * the counter again (notifications sent meanwhile are not queued for it).
 */
static void *
listener_main(void *arg)
{
	struct store_backend *b = arg;
	PGconn *c = NULL;
	PGnotify *n;
	uint64_t seq;

	while (!__atomic_load_n(&b->stopping, __ATOMIC_SEQ_CST)) {
		struct pollfd pfd;

		if (c == NULL) {
			c = pg_connect(b->conninfo);
			if (c == NULL || pg_exec(c, "LISTEN " PG_EVENTS_CHANNEL, NULL) < 0 ||
			    q_events_last(c, &seq) < 0) {
				PQfinish(c);
				c = NULL;
				poll(NULL, 0, 250);
				continue;
			}
			events_seen(b, seq);
		}
		pfd = (struct pollfd){ .fd = PQsocket(c), .events = POLLIN };
		if (poll(&pfd, 1, 200) < 0)
			continue;
		if (!PQconsumeInput(c) || PQstatus(c) != CONNECTION_OK) {
			PQfinish(c);
			c = NULL;
			continue;
		}
		while ((n = PQnotifies(c)) != NULL) {
			seq = strtoull(n->extra, NULL, 10);
			PQfreemem(n);
			events_seen(b, seq);
		}
	}
	PQfinish(c);
	return NULL;
}

static int
fn_events_last(struct store_backend *b, PGconn *c, void *arg)
{
	return q_events_last(c, arg);
}

int
pg_events_last(struct store_backend *b, uint64_t *ret_seq)
{
	uint64_t seq = 0;
	int r;

	r = pg_txn(b, false, fn_events_last, &seq);
	if (r < 0)
		return r;
	*ret_seq = seq;
	events_seen(b, seq);
	return 0;
}

int
pg_events_wait(struct store_backend *b, uint64_t after, int timeout_ms)
{
	struct timespec deadline;
	uint64_t seq;
	int r, rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	/* Not seen yet: ask the database once (a NOTIFY may have been lost with a connection). */
	pthread_mutex_lock(&b->ev_lock);
	seq = b->last_event;
	pthread_mutex_unlock(&b->ev_lock);
	if (seq <= after)
		pg_events_last(b, &seq);
	pthread_mutex_lock(&b->ev_lock);
	while (b->last_event <= after && rc != ETIMEDOUT &&
	       !__atomic_load_n(&b->stopping, __ATOMIC_SEQ_CST))
		rc = pthread_cond_timedwait(&b->ev_cond, &b->ev_lock, &deadline);
	r = b->last_event > after;
	pthread_mutex_unlock(&b->ev_lock);
	return r;
}

/* ---- secrets under the KEK ------------------------------------------------------------------- */

int
pg_seal(const struct store_backend *b, const uint8_t *id, size_t id_len, const uint8_t *in,
	size_t len, uint8_t *out)
{
	EVP_CIPHER_CTX *ctx = NULL;
	int n, r = -EIO;

	if (RAND_bytes(out, 12) != 1)
		return -EIO;
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		return -ENOMEM;
	if (EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, b->kek, out) != 1 ||
	    EVP_EncryptUpdate(ctx, NULL, &n, id, (int)id_len) != 1 ||
	    EVP_EncryptUpdate(ctx, out + 12, &n, in, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, out + 12 + n, &n) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_GET_TAG, 16, out + 12 + len) != 1)
		goto out;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

int
pg_unseal(const struct store_backend *b, const uint8_t *id, size_t id_len, const uint8_t *in,
	size_t len, uint8_t *out, size_t out_max, size_t *ret_len)
{
	EVP_CIPHER_CTX *ctx = NULL;
	size_t pt_len;
	uint8_t tag[16];
	int n, r = -EBADMSG;

	if (len < PG_SEAL_OVERHEAD || len - PG_SEAL_OVERHEAD > out_max)
		return -EBADMSG;
	pt_len = len - PG_SEAL_OVERHEAD;
	memcpy(tag, in + 12 + pt_len, 16);
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL)
		return -ENOMEM;
	if (EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), NULL, b->kek, in) != 1 ||
	    EVP_DecryptUpdate(ctx, NULL, &n, id, (int)id_len) != 1 ||
	    EVP_DecryptUpdate(ctx, out, &n, in + 12, (int)pt_len) != 1 ||
	    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1 ||
	    EVP_DecryptFinal_ex(ctx, out + n, &n) != 1) {
		OPENSSL_cleanse(out, out_max);
		store_set_errmsg("postgresql: a sealed secret does not open under this KEK");
		goto out;
	}
	*ret_len = pt_len;
	r = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return r;
}

/* ---- open, close, stats, backup ------------------------------------------------------------- */

static void
pg_free(struct store_backend *b)
{
	if (b == NULL)
		return;
	__atomic_store_n(&b->stopping, true, __ATOMIC_SEQ_CST);
	pthread_mutex_lock(&b->ev_lock);
	pthread_cond_broadcast(&b->ev_cond);
	pthread_mutex_unlock(&b->ev_lock);
	if (b->listener_started)
		pthread_join(b->listener, NULL);
	for (size_t i = 0; i < b->n_conns; i++)
		PQfinish(b->conns[i]);
	free(b->conns);
	free(b->busy);
	secmem_free(b->kek, STORE_KEK_LEN);
	if (b->conninfo != NULL) {
		/* the connection string may hold a password */
		OPENSSL_cleanse(b->conninfo, strlen(b->conninfo));
		free(b->conninfo);
	}
	pthread_mutex_destroy(&b->pool_lock);
	pthread_cond_destroy(&b->pool_cond);
	pthread_mutex_destroy(&b->ev_lock);
	pthread_cond_destroy(&b->ev_cond);
	free(b);
}

static int
pg_open(struct store_backend **ret, const char *where, const struct store_options *opts)
{
	struct store_backend *b;
	pthread_condattr_t ca;
	uint64_t seq = 0;
	int r;

	if (opts == NULL || opts->kek == NULL) {
		store_set_errmsg("postgresql: a key-encryption key (kek_file) is required");
		return -EINVAL;
	}
	b = calloc(1, sizeof(*b));
	if (b == NULL)
		return -ENOMEM;
	pthread_mutex_init(&b->pool_lock, NULL);
	pthread_cond_init(&b->pool_cond, NULL);
	pthread_mutex_init(&b->ev_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&b->ev_cond, &ca);
	pthread_condattr_destroy(&ca);
	b->clock = opts->clock;
	b->clock_ctx = opts->clock_ctx;
	b->n_conns = PG_POOL_DEFAULT;
	b->conninfo = strdup(where);
	b->conns = calloc(b->n_conns, sizeof(*b->conns));
	b->busy = calloc(b->n_conns, sizeof(*b->busy));
	b->kek = secmem_alloc(STORE_KEK_LEN);
	if (b->conninfo == NULL || b->conns == NULL || b->busy == NULL || b->kek == NULL) {
		r = -ENOMEM;
		goto err;
	}
	memcpy(b->kek, opts->kek, STORE_KEK_LEN);
	/* The first connection: the server is there, and the schema is current. */
	b->conns[0] = pg_connect(where);
	if (b->conns[0] == NULL) {
		r = -EIO;
		goto err;
	}
	r = pg_migrate(b->conns[0]);
	if (r < 0)
		goto err;
	r = q_events_last(b->conns[0], &seq);
	if (r < 0)
		goto err;
	b->last_event = seq;
	r = -pthread_create(&b->listener, NULL, listener_main, b);
	if (r < 0)
		goto err;
	b->listener_started = true;
	*ret = b;
	return 0;
err:
	pg_free(b);
	return r;
}

static void
pg_get_stats(struct store_backend *b, struct store_stats *ret)
{
	memset(ret, 0, sizeof(*ret));
	ret->commits = __atomic_load_n(&b->commits, __ATOMIC_RELAXED);
	ret->lazy_commits = __atomic_load_n(&b->lazy_commits, __ATOMIC_RELAXED);
	ret->operations = __atomic_load_n(&b->operations, __ATOMIC_RELAXED);
}

/* A consistent copy is pg_dump's job (docs/state.md). */
static int
pg_backup(struct store_backend *b, const char *dir)
{
	store_set_errmsg("postgresql: use pg_dump for backups");
	return -EOPNOTSUPP;
}

const struct store_ops store_pg_ops = {
	.name = "postgresql",
	.open = pg_open,
	.free = pg_free,
	.backup = pg_backup,
	.verify = pg_verify,
	.tenant_create = pg_tenant_create,
	.tenant_get = pg_tenant_get,
	.tenant_list = pg_tenant_list,
	.tenant_set_require_tpm = pg_tenant_set_require_tpm,
	.tenant_key_get = pg_tenant_key_get,
	.tenant_key_put = pg_tenant_key_put,
	.device_ca_add = pg_device_ca_add,
	.device_ca_remove = pg_device_ca_remove,
	.device_ca_list = pg_device_ca_list,
	.device_crl_put = pg_device_crl_put,
	.device_crl_remove = pg_device_crl_remove,
	.device_crl_list = pg_device_crl_list,
	.device_crl_each = pg_device_crl_each,
	.x509_revoke = pg_x509_revoke,
	.x509_unrevoke = pg_x509_unrevoke,
	.x509_revoked_list = pg_x509_revoked_list,
	.x509_is_revoked = pg_x509_is_revoked,
	.registration_add = pg_registration_add,
	.registration_remove = pg_registration_remove,
	.registration_get = pg_registration_get,
	.registration_list = pg_registration_list,
	.token_create = pg_token_create,
	.token_list = pg_token_list,
	.token_get = pg_token_get,
	.token_revoke = pg_token_revoke,
	.session_create = pg_session_create,
	.session_get = pg_session_get,
	.session_use = pg_session_use,
	.session_purge = pg_session_purge,
	.enroll_prev = pg_enroll_prev,
	.device_get = pg_device_get,
	.device_by_pubkey = pg_device_by_pubkey,
	.device_by_ek = pg_device_by_ek,
	.device_by_addr = pg_device_by_addr,
	.device_list = pg_device_list,
	.device_list_all = pg_device_list_all,
	.device_revoke = pg_device_revoke,
	.device_reinstate = pg_device_reinstate,
	.device_delete = pg_device_delete,
	.ek_revoked = pg_ek_revoked,
	.health_update = pg_health_update,
	.health_get = pg_health_get,
	.health_list = pg_health_list,
	.events_read = pg_events_read,
	.events_last = pg_events_last,
	.events_wait = pg_events_wait,
	.get_stats = pg_get_stats,
	.export_raw = pg_export_raw,
	.import = pg_import,
};
