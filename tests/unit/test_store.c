// SPDX-License-Identifier: MIT
/*
 * Unit tests for the store (enrolld/store.h) against each backend: every operation, the
 * address rules, authorisation, sessions, revocation, pagination, the event log, and 64
 * threads enrolling into a /26 at once.
 *
 * By default against LMDB in a temporary directory (plus what only LMDB has: map growth,
 * backups, tampering with the raw databases). With STORE_TEST_PG set to a libpq connection
 * string of a PostgreSQL superuser (tests/run.sh starts a throw-away server for
 * unit/test_store_pg), against PostgreSQL: each test gets a database of its own, and two
 * stores on one database play two enrolld nodes (test_two_nodes).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <ftw.h>
#include <libpq-fe.h>
#include <lmdb.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "enrolld/store.h"

static int64_t fake_now = 1700000000;

static int64_t
fake_clock(void *ctx)
{
	return __atomic_load_n(&fake_now, __ATOMIC_SEQ_CST);
}

/* STORE_TEST_PG: the PostgreSQL server to test against; NULL: LMDB. */
static const char *pg_base;
static const uint8_t test_kek[STORE_KEK_LEN] = "0123456789abcdef0123456789abcdef";
static unsigned int pg_dbs;

struct fixture {
	char dir[64];     /* LMDB: the environment */
	char db[64];      /* PostgreSQL: this test's database */
	char where[1024]; /* what store_open gets: dir, or the connection string */
	struct store *s;
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
rm_rf(const char *dir)
{
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

/* Run @sql as the superuser in database @db (NULL: the server's default one). */
static void
pg_sql(const char *db, const char *sql)
{
	char conn[1024];
	PGconn *c;
	PGresult *res;

	snprintf(conn, sizeof(conn), "%s%s%s", pg_base, db ? " dbname=" : "", db ? db : "");
	c = PQconnectdb(conn);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("postgresql: %s", PQerrorMessage(c));
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK && PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("postgresql: %s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(c);
}

/* The first column of the first row of @sql in database @db, as text ("" if none). */
static void
pg_value(const char *db, const char *sql, char *out, size_t len)
{
	char conn[1024];
	PGconn *c;
	PGresult *res;

	snprintf(conn, sizeof(conn), "%s dbname=%s", pg_base, db);
	c = PQconnectdb(conn);
	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("postgresql: %s", PQerrorMessage(c));
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_TUPLES_OK)
		fail_msg("postgresql: %s: %s", sql, PQresultErrorMessage(res));
	snprintf(out, len, "%s", PQntuples(res) ? PQgetvalue(res, 0, 0) : "");
	PQclear(res);
	PQfinish(c);
}

static struct store *
open_store(const char *where, uint64_t map_size, uint64_t map_max)
{
	struct store_options o = { .clock = fake_clock, .map_size = map_size,
		.map_size_max = map_max };
	struct store *s = NULL;
	int r;

	if (pg_base != NULL) {
		o.backend = STORE_BACKEND_POSTGRESQL;
		o.kek = test_kek;
	}
	r = store_open(&s, where, &o);
	if (r != 0)
		fail_msg("store_open: %d %s", r, store_errmsg());
	return s;
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char sql[128];

	fake_now = 1700000000;
	if (pg_base != NULL) {
		snprintf(f->db, sizeof(f->db), "store_test_%d_%u", (int)getpid(), pg_dbs++);
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->db);
		pg_sql(NULL, sql);
		snprintf(f->where, sizeof(f->where), "%s dbname=%s", pg_base, f->db);
	} else {
		snprintf(f->dir, sizeof(f->dir), "/tmp/test_store.XXXXXX");
		if (mkdtemp(f->dir) == NULL)
			return -1;
		snprintf(f->where, sizeof(f->where), "%s", f->dir);
	}
	f->s = open_store(f->where, 0, 0);
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char sql[128];

	store_free(f->s);
	if (pg_base != NULL) {
		snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", f->db);
		pg_sql(NULL, sql);
	} else {
		rm_rf(f->dir);
	}
	free(f);
	return 0;
}

/* A test that does not apply to the backend under test: says why, counts as skipped. */
#define SKIP_IF(cond, why)                                   \
	do {                                                 \
		if (cond) {                                  \
			print_message("skipped: %s\n", why); \
			skip();                              \
		}                                            \
	} while (0)

/* A distinct, non-zero 32-byte value per (tag, n). */
static void
fill(uint8_t out[32], uint8_t tag, uint32_t n)
{
	for (int i = 0; i < 32; i++)
		out[i] = (uint8_t)(tag + i * 7);
	out[0] = tag;
	memcpy(out + 1, &n, sizeof(n));
}

static void
make_tenant(struct store *s, const char *name, const char *p4, const char *p6, uint16_t port)
{
	struct store_tenant t;

	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "%s", name);
	snprintf(t.ifname, sizeof(t.ifname), "wg-%s", name);
	snprintf(t.endpoint, sizeof(t.endpoint), "cp.example:%u", port);
	assert_int_equal(addr_prefix_parse(&t.prefix4, p4), 0);
	if (p6 != NULL)
		assert_int_equal(addr_prefix_parse(&t.prefix6, p6), 0);
	t.listen_port = port;
	t.keepalive = 25;
	assert_int_equal(store_tenant_create(s, &t), 0);
}

static void
registration(struct store *s, const char *tenant, uint32_t ek)
{
	struct store_registration r;

	memset(&r, 0, sizeof(r));
	snprintf(r.tenant, sizeof(r.tenant), "%s", tenant);
	snprintf(r.label, sizeof(r.label), "ek %u", ek);
	fill(r.ek_hash, 0xe0, ek);
	assert_int_equal(store_registration_add(s, &r), 0);
}

static void
req_init(struct store_enroll_req *req, const char *tenant, uint32_t ek, uint32_t key)
{
	memset(req, 0, sizeof(*req));
	snprintf(req->tenant, sizeof(req->tenant), "%s", tenant);
	fill(req->ek_hash, 0xe0, ek);
	fill(req->wg_pubkey, 0x40, key);
	req->kind = STORE_ATTEST_TPM;
}

/* Register EK @ek in @tenant and enroll it with key @key; returns store_enroll's result. */
static int
enroll_reg(struct store *s, const char *tenant, uint32_t ek, uint32_t key,
	struct store_device *ret)
{
	struct store_enroll_req req;

	req_init(&req, tenant, ek, key);
	return store_enroll(s, &req, ret);
}

/* As enroll_reg(), through an attestation session made for it (expires in 60 s). */
static int
enroll_reg_session(struct store *s, const char *tenant, uint32_t ek, uint32_t key,
	struct store_device *ret)
{
	struct store_session sess = { .nonce_len = 32, .expires = fake_now + 60 };
	struct store_enroll_req req;
	int r;

	snprintf(sess.tenant, sizeof(sess.tenant), "%s", tenant);
	fill(sess.ek_hash, 0xe0, ek);
	fill(sess.wg_pubkey, 0x40, key);
	req_init(&req, tenant, ek, key);
	req.has_session = true;
	r = store_session_create(s, &sess, req.session_id);
	if (r < 0)
		return r;
	return store_enroll(s, &req, ret);
}

static const char *
addr4(const struct store_device *d, char *buf)
{
	assert_int_equal(addr_format(AF_INET, d->addr4, buf, ADDR_STR_LEN), 0);
	return buf;
}

static void
assert_consistent(struct store *s)
{
	char why[256];
	int r = store_verify(s, why, sizeof(why));

	if (r != 0)
		fail_msg("store_verify: %d %s", r, why);
}

static uint64_t
last_seq(struct store *s)
{
	uint64_t seq = 99999;

	assert_int_equal(store_events_last(s, &seq), 0);
	return seq;
}

/* ---- tests ------------------------------------------------------------------------------ */

static void
test_format_version(void **state)
{
	struct fixture *f = *state;
	struct store *s = NULL;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	uint32_t v = 99;
	MDB_val k = { 6, "format" }, val = { 4, &v };

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 51820);
	store_free(f->s);
	f->s = open_store(f->where, 0, 0); /* reopens fine, data kept */
	struct store_tenant t;
	assert_int_equal(store_tenant_get(f->s, "a", &t), 0);
	store_free(f->s);
	f->s = NULL;

	if (pg_base != NULL) {
		/* A newer schema is refused, not misread; and no key-encryption key, no store. */
		struct store_options o = { .backend = STORE_BACKEND_POSTGRESQL, .kek = test_kek };

		pg_sql(f->db, "INSERT INTO schema_migrations (version) VALUES (9999)");
		assert_int_equal(store_open(&s, f->where, &o), -EPROTO);
		assert_null(s);
		pg_sql(f->db, "DELETE FROM schema_migrations WHERE version = 9999");
		o.kek = NULL;
		assert_int_equal(store_open(&s, f->where, &o), -EINVAL);
		assert_null(s);
		return;
	}

	/* A newer on-disk format is refused, not misread. */
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 32);
	assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "meta", 0, &dbi), 0);
	assert_int_equal(mdb_put(txn, dbi, &k, &val, 0), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	struct store_options o = { 0 };
	assert_int_equal(store_open(&s, f->dir, &o), -EPROTO);
	assert_null(s);
}

static void
test_tenants(void **state)
{
	struct fixture *f = *state;
	struct store_tenant t, got, *list = NULL;
	size_t n = 0;
	char buf[ADDR_STR_LEN];

	make_tenant(f->s, "acme", "10.10.0.0/24", "fd00:10::/64", 51820);
	assert_int_equal(store_tenant_get(f->s, "acme", &got), 0);
	assert_string_equal(got.ifname, "wg-acme");
	assert_int_equal(got.listen_port, 51820);
	assert_int_equal(got.created, fake_now);
	/* The control plane's own address defaults to the first usable one. */
	assert_int_equal(addr_format(AF_INET, got.self4, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "10.10.0.1");
	assert_int_equal(addr_format(AF_INET6, got.self6, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "fd00:10::1");
	assert_int_equal(store_tenant_get(f->s, "nope", &got), -ENOENT);
	assert_int_equal(store_tenant_get(f->s, "../x", &got), -ENOENT);

	memset(&t, 0, sizeof(t));
	strcpy(t.name, "acme");
	strcpy(t.ifname, "wg-other");
	assert_int_equal(addr_prefix_parse(&t.prefix4, "10.20.0.0/24"), 0);
	t.listen_port = 1;
	assert_int_equal(store_tenant_create(f->s, &t), -EEXIST); /* name */
	strcpy(t.name, "beta");
	strcpy(t.ifname, "wg-acme");
	assert_int_equal(store_tenant_create(f->s, &t), -EEXIST); /* interface */
	strcpy(t.ifname, "wg-beta");
	t.listen_port = 51820;
	assert_int_equal(store_tenant_create(f->s, &t), -EEXIST); /* port */
	t.listen_port = 51821;
	assert_int_equal(addr_prefix_parse(&t.prefix4, "10.10.0.128/25"), 0);
	assert_int_equal(store_tenant_create(f->s, &t), -EEXIST); /* overlapping prefix */
	assert_int_equal(addr_prefix_parse(&t.prefix4, "10.20.0.0/32"), 0);
	assert_int_equal(store_tenant_create(f->s, &t), -EINVAL); /* no room */
	assert_int_equal(addr_prefix_parse(&t.prefix4, "10.20.0.0/24"), 0);
	int fam;
	assert_int_equal(addr_parse(&fam, t.self4, "10.20.0.255"), 0);
	assert_int_equal(store_tenant_create(f->s, &t), -EINVAL); /* self = broadcast */
	assert_int_equal(addr_parse(&fam, t.self4, "10.20.0.9"), 0);
	t.n_pcrs = 2;
	t.pcrs[0].index = 7;
	t.pcrs[1].index = 0;
	assert_int_equal(store_tenant_create(f->s, &t), -EINVAL); /* PCRs not sorted */
	t.pcrs[1].index = 8;
	strcpy(t.name, "Beta");
	assert_int_equal(store_tenant_create(f->s, &t), -EINVAL); /* name characters */
	strcpy(t.name, "beta");
	assert_int_equal(store_tenant_create(f->s, &t), 0);
	assert_int_equal(store_tenant_get(f->s, "beta", &got), 0);
	assert_int_equal(addr_format(AF_INET, got.self4, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "10.20.0.9");
	assert_int_equal(got.n_pcrs, 2);
	assert_int_equal(got.pcrs[1].index, 8);

	assert_int_equal(store_tenant_list(f->s, &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].name, "acme");
	assert_string_equal(list[1].name, "beta");
	free(list);
}

/* test_device_crls: count the DER bytes seen by store_device_crl_each */
static int
crl_seen(void *ctx, const struct store_device_crl *crl, const uint8_t *der)
{
	size_t *sum = ctx;

	for (uint32_t i = 0; i < crl->der_len; i++)
		assert_int_equal(der[i], (uint8_t)(crl->this_update + i));
	*sum += crl->der_len;
	return 0;
}

static int
crl_stop(void *ctx, const struct store_device_crl *crl, const uint8_t *der)
{
	return -ECANCELED;
}

static void
test_device_crls(void **state)
{
	struct fixture *f = *state;
	struct store_device_crl c, *list = NULL;
	uint8_t der[3000];
	size_t n, sum = 0;

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	make_tenant(f->s, "b", "10.1.0.0/24", NULL, 1001);
	memset(&c, 0, sizeof(c));
	strcpy(c.tenant, "a");
	strcpy(c.issuer, "CN=factory A");
	fill(c.issuer_hash, 0xc0, 1);
	c.this_update = 100;
	c.number[0] = 5;
	c.number_len = 1;
	c.der_len = 1000;
	for (size_t i = 0; i < sizeof(der); i++)
		der[i] = (uint8_t)(c.this_update + i);
	assert_int_equal(store_device_crl_put(f->s, &c, der), 0);
	/* the same or an older number: a rollback would un-revoke */
	assert_int_equal(store_device_crl_put(f->s, &c, der), -ESTALE);
	c.number[0] = 4;
	c.this_update = 200;
	assert_int_equal(store_device_crl_put(f->s, &c, der), -ESTALE);
	/* a longer number is larger; a newer one replaces (with its own, larger DER) */
	c.number[0] = 1;
	c.number[1] = 0;
	c.number_len = 2;
	c.this_update = 50;
	for (size_t i = 0; i < sizeof(der); i++)
		der[i] = (uint8_t)(c.this_update + i);
	c.der_len = 3000;
	assert_int_equal(store_device_crl_put(f->s, &c, der), 1);
	/* without numbers, thisUpdate decides */
	fill(c.issuer_hash, 0xc0, 2);
	c.number_len = 0;
	c.der_len = 10;
	assert_int_equal(store_device_crl_put(f->s, &c, der), 0);
	assert_int_equal(store_device_crl_put(f->s, &c, der), -ESTALE);
	c.this_update = 51;
	for (size_t i = 0; i < sizeof(der); i++)
		der[i] = (uint8_t)(c.this_update + i);
	assert_int_equal(store_device_crl_put(f->s, &c, der), 1);
	/* another tenant's, an unknown tenant, bad records */
	strcpy(c.tenant, "b");
	c.der_len = 7;
	assert_int_equal(store_device_crl_put(f->s, &c, der), 0);
	strcpy(c.tenant, "zzz");
	assert_int_equal(store_device_crl_put(f->s, &c, der), -ENOENT);
	strcpy(c.tenant, "a");
	c.der_len = 0;
	assert_int_equal(store_device_crl_put(f->s, &c, der), -EINVAL);

	assert_int_equal(store_device_crl_list(f->s, "a", &list, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(list[0].der_len + list[1].der_len, 3010);
	free(list);
	assert_int_equal(store_device_crl_list(f->s, NULL, &list, &n), 0);
	assert_int_equal(n, 3);
	free(list);
	assert_int_equal(store_device_crl_each(f->s, "a", crl_seen, &sum), 0);
	assert_int_equal(sum, 3010);
	assert_int_equal(store_device_crl_each(f->s, "a", crl_stop, NULL), -ECANCELED);
	fill(c.issuer_hash, 0xc0, 1);
	assert_int_equal(store_device_crl_remove(f->s, "a", c.issuer_hash), 0);
	assert_int_equal(store_device_crl_remove(f->s, "a", c.issuer_hash), -ENOENT);
	assert_int_equal(store_device_crl_list(f->s, "a", &list, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(list[0].der_len, 10);
	free(list);
	/* what a reopen reads back */
	store_free(f->s);
	f->s = open_store(f->where, 0, 0);
	sum = 0;
	assert_int_equal(store_device_crl_each(f->s, NULL, crl_seen, &sum), 0);
	assert_int_equal(sum, 17);
}

static void
test_registrations(void **state)
{
	struct fixture *f = *state;
	struct store_registration r, *list = NULL;
	struct store_device d;
	size_t n;
	uint8_t ek[32];

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	make_tenant(f->s, "b", "10.1.0.0/24", NULL, 1001);
	memset(&r, 0, sizeof(r));
	strcpy(r.tenant, "zzz");
	fill(r.ek_hash, 0xe0, 1);
	assert_int_equal(store_registration_add(f->s, &r), -ENOENT);
	registration(f->s, "a", 1);
	registration(f->s, "a", 2);
	registration(f->s, "b", 3);
	strcpy(r.tenant, "a");
	assert_int_equal(store_registration_add(f->s, &r), -EEXIST);
	assert_int_equal(store_registration_list(f->s, "a", &list, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(list[0].tenant, "a");
	free(list);
	/* point lookups: (a, 2) yes, (b, 2) and (a, 3) no */
	{
		struct store_registration got;

		fill(ek, 0xe0, 2);
		assert_int_equal(store_registration_get(f->s, "a", ek, &got), 0);
		assert_memory_equal(got.ek_hash, ek, sizeof(ek));
		assert_int_equal(store_registration_get(f->s, "b", ek, NULL), -ENOENT);
		fill(ek, 0xe0, 3);
		assert_int_equal(store_registration_get(f->s, "a", ek, NULL), -ENOENT);
		assert_int_equal(store_registration_get(f->s, "nope", ek, NULL), -ENOENT);
	}

	/* Registered in b only: cannot enroll into a. */
	assert_int_equal(enroll_reg(f->s, "a", 3, 3, &d), -EACCES);
	assert_int_equal(enroll_reg(f->s, "b", 3, 3, &d), STORE_ENROLL_NEW);
	assert_int_equal(enroll_reg(f->s, "a", 9, 9, &d), -EACCES);

	fill(ek, 0xe0, 2);
	assert_int_equal(store_registration_remove(f->s, "a", ek), 0);
	assert_int_equal(store_registration_remove(f->s, "a", ek), -ENOENT);
	assert_int_equal(enroll_reg(f->s, "a", 2, 2, &d), -EACCES);
	assert_int_equal(enroll_reg(f->s, "a", 1, 1, &d), STORE_ENROLL_NEW);
	assert_consistent(f->s);
}

static void
test_tokens(void **state)
{
	struct fixture *f = *state;
	struct store_token t, got, *list = NULL;
	struct store_enroll_req req;
	struct store_device d;
	size_t n;
	uint64_t seq;

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	make_tenant(f->s, "b", "10.1.0.0/24", NULL, 1001);
	memset(&t, 0, sizeof(t));
	strcpy(t.tenant, "a");
	fill(t.hash, 0x70, 1);
	t.uses_left = 2;
	t.expires = fake_now + 100;
	assert_int_equal(store_token_create(f->s, &t), 0);
	assert_int_equal(store_token_create(f->s, &t), -EEXIST);
	t.uses_left = 0;
	fill(t.hash, 0x70, 2);
	assert_int_equal(store_token_create(f->s, &t), -EINVAL);

	req_init(&req, "a", 1, 1);
	req.has_token = true;
	fill(req.token_hash, 0x70, 1);
	assert_int_equal(store_enroll(f->s, &req, &d), STORE_ENROLL_NEW);
	assert_int_equal(store_token_get(f->s, req.token_hash, &got), 0);
	assert_int_equal(got.uses_left, 1);

	/* A token of tenant a does not open tenant b. */
	req_init(&req, "b", 2, 2);
	req.has_token = true;
	fill(req.token_hash, 0x70, 1);
	assert_int_equal(store_enroll(f->s, &req, &d), -EACCES);
	/* Unknown token. */
	fill(req.token_hash, 0x70, 77);
	strcpy(req.tenant, "a");
	assert_int_equal(store_enroll(f->s, &req, &d), -EACCES);

	/* Expired: refused and nothing consumed. */
	fill(req.token_hash, 0x70, 1);
	fake_now += 100;
	seq = last_seq(f->s);
	assert_int_equal(store_enroll(f->s, &req, &d), -ETIMEDOUT);
	assert_int_equal(store_token_get(f->s, req.token_hash, &got), 0);
	assert_int_equal(got.uses_left, 1);
	assert_int_equal(last_seq(f->s), seq);
	fake_now -= 1;
	assert_int_equal(store_enroll(f->s, &req, &d), STORE_ENROLL_NEW);
	/* Used up. */
	req_init(&req, "a", 3, 3);
	req.has_token = true;
	fill(req.token_hash, 0x70, 1);
	assert_int_equal(store_enroll(f->s, &req, &d), -EACCES);

	/* Revoked. */
	memset(&t, 0, sizeof(t));
	strcpy(t.tenant, "a");
	fill(t.hash, 0x70, 3);
	t.uses_left = 10;
	assert_int_equal(store_token_create(f->s, &t), 0);
	assert_int_equal(store_token_revoke(f->s, t.hash), 0);
	assert_int_equal(store_token_revoke(f->s, t.hash), -EALREADY);
	fill(req.token_hash, 0x70, 3);
	assert_int_equal(store_enroll(f->s, &req, &d), -EACCES);
	assert_int_equal(store_token_get(f->s, t.hash, &got), 0);
	assert_int_equal(got.uses_left, 10);
	assert_int_equal(got.revoked, 1);

	strcpy(t.tenant, "b");
	fill(t.hash, 0x70, 4);
	assert_int_equal(store_token_create(f->s, &t), 0);
	assert_int_equal(store_token_list(f->s, "a", &list, &n), 0);
	assert_int_equal(n, 2);
	free(list);
	assert_int_equal(store_token_list(f->s, NULL, &list, &n), 0);
	assert_int_equal(n, 3);
	free(list);
	assert_consistent(f->s);
}

static void
test_sessions(void **state)
{
	struct fixture *f = *state;
	struct store_session sess, got;
	struct store_enroll_req req;
	struct store_device d;
	struct store_stats st0, st1;
	uint8_t id[STORE_SESSION_ID_LEN], id2[STORE_SESSION_ID_LEN], zero[16] = { 0 };

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	registration(f->s, "a", 1);
	memset(&sess, 0, sizeof(sess));
	strcpy(sess.tenant, "a");
	fill(sess.ek_hash, 0xe0, 1);
	fill(sess.wg_pubkey, 0x40, 1);
	memset(sess.secret, 0x5a, 32);
	sess.secret_len = 32;
	memset(sess.nonce, 0x11, 32);
	sess.nonce_len = 32;
	sess.ak_name_len = 34;
	memset(sess.ak_name, 0x22, 34);
	/* the AK public area (any node rebuilds the challenge from it), at its largest */
	for (size_t i = 0; i < STORE_AK_PUBLIC_MAX; i++)
		sess.ak_public[i] = (uint8_t)(i * 13 + 1);
	sess.ak_public_len = STORE_AK_PUBLIC_MAX;
	sess.ak_public_len++;
	assert_int_equal(store_session_create(f->s, &sess, id), -EINVAL);
	sess.ak_public_len = STORE_AK_PUBLIC_MAX;
	sess.expires = fake_now + 60;
	store_get_stats(f->s, &st0);
	assert_int_equal(store_session_create(f->s, &sess, id), 0);
	/*
	 * An open session is committed lazily on PostgreSQL (not flushed before answered),
	 * kept in memory only on LMDB (no commit at all); nothing else is lazy.
	 */
	store_get_stats(f->s, &st1);
	assert_int_equal(st1.commits, st0.commits + (pg_base != NULL));
	assert_int_equal(st1.lazy_commits, st0.lazy_commits + (pg_base != NULL));
	assert_memory_not_equal(id, zero, 16);
	assert_int_equal(store_session_get(f->s, id, &got), 0);
	assert_int_equal(got.secret_len, 32);
	assert_memory_equal(got.secret, sess.secret, 32);
	assert_int_equal(got.ak_name_len, 34);
	assert_memory_equal(got.ak_name, sess.ak_name, 34);
	assert_int_equal(got.nonce_len, 32);
	assert_memory_equal(got.nonce, sess.nonce, 32);
	assert_int_equal(got.ak_public_len, STORE_AK_PUBLIC_MAX);
	assert_memory_equal(got.ak_public, sess.ak_public, STORE_AK_PUBLIC_MAX);
	assert_int_equal(got.expires, sess.expires);
	store_session_wipe(&got);
	if (pg_base != NULL) {
		char v[256];
		struct store *other;
		struct store_options o = { .backend = STORE_BACKEND_POSTGRESQL, .kek = test_kek,
			.clock = fake_clock };
		uint8_t kek2[STORE_KEK_LEN];

		/* At rest: nonce, ciphertext, tag; not the secret (32 x 0x5a) in clear. */
		pg_value(f->db, "SELECT length(secret) FROM sessions", v, sizeof(v));
		assert_string_equal(v, "60");
		pg_value(f->db, "SELECT position('\\x5a5a5a5a'::bytea in secret) FROM sessions", v,
			sizeof(v));
		assert_string_equal(v, "0");
		/* Sealed to its session id: moved to another id, it does not open (-EBADMSG). */
		pg_sql(f->db, "INSERT INTO sessions SELECT '\\x00000000000000000000000000000001', "
			      "tenant, ek_hash, ak_name, wg_pubkey, nonce, secret, used, has_token, "
			      "token_hash, expires FROM sessions");
		memset(id2, 0, sizeof(id2));
		id2[15] = 1;
		assert_int_equal(store_session_get(f->s, id2, &got), -EBADMSG);
		pg_sql(f->db, "DELETE FROM sessions WHERE id = '\\x00000000000000000000000000000001'");
		/* Another node with another KEK cannot open it either. */
		memset(kek2, 0x77, sizeof(kek2));
		o.kek = kek2;
		assert_int_equal(store_open(&other, f->where, &o), 0);
		assert_int_equal(store_session_get(other, id, &got), -EBADMSG);
		store_free(other);
	}

	/* A session for another key does not match: refused, and the session stays usable. */
	req_init(&req, "a", 1, 2);
	req.has_session = true;
	memcpy(req.session_id, id, sizeof(id));
	assert_int_equal(store_enroll(f->s, &req, &d), -EINVAL);
	assert_int_equal(store_session_get(f->s, id, &got), 0);
	store_session_wipe(&got);

	req_init(&req, "a", 1, 1);
	req.has_session = true;
	memcpy(req.session_id, id, sizeof(id));
	assert_int_equal(store_enroll(f->s, &req, &d), STORE_ENROLL_NEW);
	store_get_stats(f->s, &st0);
	assert_int_equal(st0.lazy_commits, st1.lazy_commits);
	/* Used once: a replay is refused, the secret is gone. */
	assert_int_equal(store_enroll(f->s, &req, &d), -EALREADY);
	assert_int_equal(store_session_get(f->s, id, &got), -EALREADY);

	/* Expiry. */
	assert_int_equal(store_session_create(f->s, &sess, id2), 0);
	fake_now += 60;
	assert_int_equal(store_session_get(f->s, id2, &got), -ETIMEDOUT);
	memcpy(req.session_id, id2, sizeof(id2));
	assert_int_equal(store_enroll(f->s, &req, &d), -ETIMEDOUT);

	/* store_session_use marks used (a failed attestation burns the session). */
	sess.expires = fake_now + 60;
	sess.ak_public_len = 7; /* short ones too, and the AK public area survives use */
	assert_int_equal(store_session_create(f->s, &sess, id2), 0);
	assert_int_equal(store_session_get(f->s, id2, &got), 0);
	assert_int_equal(got.ak_public_len, 7);
	assert_memory_equal(got.ak_public, sess.ak_public, 7);
	store_session_wipe(&got);
	assert_int_equal(store_session_use(f->s, id2), 0);
	assert_int_equal(store_session_use(f->s, id2), -EALREADY);
	/*
	 * Creating that session already purged the expired ones (used or not); a used one that
	 * has not expired stays, so that a replay keeps getting the same answer, until its
	 * expiry.
	 */
	assert_int_equal(store_session_purge(f->s), 0);
	assert_int_equal(store_session_get(f->s, id2, &got), -EALREADY);
	fake_now += 60;
	assert_int_equal(store_session_purge(f->s), 1);
	assert_int_equal(store_session_purge(f->s), 0);
	/*
	 * Purged: gone on PostgreSQL (-ENOENT, as an id never issued); LMDB recognises the
	 * ids it issued by their tag (test_session_restart) and keeps answering -ETIMEDOUT.
	 */
	assert_int_equal(store_session_get(f->s, id2, &got), pg_base != NULL ? -ENOENT : -ETIMEDOUT);
	assert_int_equal(store_session_get(f->s, id, &got), pg_base != NULL ? -ENOENT : -ETIMEDOUT);
	assert_int_equal(store_session_use(f->s, id), -ENOENT);

	/*
	 * An enrollment refused after its session was checked (the EK is revoked) leaves the
	 * session open, as its aborted transaction left the record on disk before.
	 */
	assert_int_equal(store_device_by_ek(f->s, req.ek_hash, &d), 0);
	assert_int_equal(store_device_revoke(f->s, d.id, NULL), 0);
	sess.expires = fake_now + 60;
	assert_int_equal(store_session_create(f->s, &sess, id2), 0);
	memcpy(req.session_id, id2, sizeof(id2));
	assert_int_equal(store_enroll(f->s, &req, &d), -EPERM);
	assert_int_equal(store_session_get(f->s, id2, &got), 0);
	store_session_wipe(&got);
}

/*
 * LMDB keeps sessions in memory only: after a restart an id it issued is -ETIMEDOUT (410
 * session_expired: the device starts again), one it never issued -ENOENT (404), and so is
 * an issued id with its tag changed. The key behind the tags survives the restart.
 */
static void
test_session_restart(void **state)
{
	struct fixture *f = *state;
	struct store_session sess = { .tenant = "a", .nonce_len = 32 }, got;
	uint8_t id[STORE_SESSION_ID_LEN], forged[STORE_SESSION_ID_LEN];
	uint8_t never[STORE_SESSION_ID_LEN] = { 0 };

	SKIP_IF(pg_base != NULL, "PostgreSQL keeps sessions in the database");
	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	fill(sess.ek_hash, 0xe0, 1);
	fill(sess.wg_pubkey, 0x40, 1);
	sess.expires = fake_now + 60;
	assert_int_equal(store_session_create(f->s, &sess, id), 0);
	assert_int_equal(store_session_get(f->s, id, &got), 0);
	store_session_wipe(&got);
	assert_int_equal(store_session_get(f->s, never, &got), -ENOENT);
	/* a session for a tenant that does not exist is refused, as before */
	strcpy(sess.tenant, "zz");
	assert_int_equal(store_session_create(f->s, &sess, forged), -ENOENT);

	store_free(f->s);
	f->s = open_store(f->where, 0, 0);
	assert_int_equal(store_session_get(f->s, id, &got), -ETIMEDOUT);
	assert_int_equal(store_session_get(f->s, never, &got), -ENOENT);
	memcpy(forged, id, sizeof(id));
	forged[STORE_SESSION_ID_LEN - 1] ^= 1;
	assert_int_equal(store_session_get(f->s, forged, &got), -ENOENT);
	forged[STORE_SESSION_ID_LEN - 1] ^= 1;
	forged[0] ^= 1;
	assert_int_equal(store_session_get(f->s, forged, &got), -ENOENT);
	assert_int_equal(store_session_use(f->s, id), -ENOENT);
}

/*
 * PostgreSQL: a session row from before migration 4 (its ak_public the column's default)
 * still reads, with none, completes an enrollment and is purged. LMDB: session records an
 * older version wrote (360 bytes before the AK public area was kept, or any other) are
 * dropped when the store opens; their ids are unknown.
 */
static void
test_session_old_records(void **state)
{
	struct fixture *f = *state;
	struct store_session sess, got;
	struct store_enroll_req req;
	struct store_device d;
	uint8_t id[STORE_SESSION_ID_LEN] = { 0x0d };
	uint8_t bad[STORE_SESSION_ID_LEN] = { 0x0b };

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	registration(f->s, "a", 1);
	memset(&sess, 0, sizeof(sess));
	memcpy(sess.id, id, sizeof(id));
	strcpy(sess.tenant, "a");
	fill(sess.ek_hash, 0xe0, 1);
	fill(sess.wg_pubkey, 0x40, 1);
	memset(sess.nonce, 0x11, 32);
	sess.nonce_len = 32;
	sess.ak_name_len = 34;
	memset(sess.ak_name, 0x22, 34);
	sess.expires = fake_now + 60;

	if (pg_base != NULL) {
		uint8_t made[STORE_SESSION_ID_LEN];
		char v[64];

		/* a row from before migration 4: ak_public gets the column's default */
		sess.id[0] = 0x0c;
		sess.ak_public_len = 5;
		assert_int_equal(store_session_create(f->s, &sess, made), 0);
		pg_sql(f->db, "INSERT INTO sessions (id, tenant, ek_hash, ak_name, wg_pubkey, "
			      "nonce, secret, used, has_token, token_hash, expires) SELECT "
			      "'\\x0d000000000000000000000000000000', tenant, ek_hash, ak_name, "
			      "wg_pubkey, nonce, NULL, used, has_token, token_hash, expires FROM "
			      "sessions");
		pg_value(f->db, "SELECT length(ak_public) FROM sessions WHERE id = "
				"'\\x0d000000000000000000000000000000'", v, sizeof(v));
		assert_string_equal(v, "0");
		/* the schema refuses an AK public area longer than the store's */
		{
			char conn[1024];
			PGconn *c;
			PGresult *res;

			snprintf(conn, sizeof(conn), "%s dbname=%s", pg_base, f->db);
			c = PQconnectdb(conn);
			res = PQexec(c, "UPDATE sessions SET ak_public = decode(repeat('00', 513), "
					"'hex')");
			assert_int_equal(PQresultStatus(res), PGRES_FATAL_ERROR);
			PQclear(res);
			PQfinish(c);
		}
	} else {
		MDB_env *env;
		MDB_txn *txn;
		MDB_dbi dbi;
		MDB_val k = { sizeof(id), id }, v = { 360, &sess };
		MDB_val kb = { sizeof(bad), bad }, vb = { 361, &sess };

		store_free(f->s);
		f->s = NULL;
		assert_int_equal(mdb_env_create(&env), 0);
		mdb_env_set_maxdbs(env, 32);
		assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
		assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
		assert_int_equal(mdb_dbi_open(txn, "sessions", 0, &dbi), 0);
		/* the head of the struct is the old record, byte for byte */
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
		sess.ak_public_len = 3; /* 361 bytes: neither layout */
		assert_int_equal(mdb_put(txn, dbi, &kb, &vb, 0), 0);
		assert_int_equal(mdb_txn_commit(txn), 0);
		mdb_env_close(env);
		f->s = open_store(f->where, 0, 0);
		assert_int_equal(store_session_get(f->s, id, &got), -ENOENT);
		assert_int_equal(store_session_get(f->s, bad, &got), -ENOENT);
		store_free(f->s);
		f->s = NULL;
		assert_int_equal(mdb_env_create(&env), 0);
		mdb_env_set_maxdbs(env, 32);
		assert_int_equal(mdb_env_open(env, f->dir, 0, 0600), 0);
		assert_int_equal(mdb_txn_begin(env, NULL, MDB_RDONLY, &txn), 0);
		assert_int_equal(mdb_dbi_open(txn, "sessions", 0, &dbi), 0);
		{
			MDB_stat st;

			assert_int_equal(mdb_stat(txn, dbi, &st), 0);
			assert_int_equal(st.ms_entries, 0);
		}
		mdb_txn_abort(txn);
		mdb_env_close(env);
		f->s = open_store(f->where, 0, 0);
		return;
	}
	assert_int_equal(store_session_get(f->s, id, &got), 0);
	assert_int_equal(got.ak_public_len, 0);
	assert_int_equal(got.ak_name_len, 34);
	assert_memory_equal(got.wg_pubkey, sess.wg_pubkey, 32);
	store_session_wipe(&got);

	req_init(&req, "a", 1, 1);
	req.has_session = true;
	memcpy(req.session_id, id, sizeof(id));
	assert_int_equal(store_enroll(f->s, &req, &d), STORE_ENROLL_NEW);
	assert_int_equal(store_session_get(f->s, id, &got), -EALREADY);
	fake_now += 61;
	assert_int_equal(store_session_purge(f->s), 2);
	assert_int_equal(store_session_get(f->s, id, &got), -ENOENT);
}

/* Completions of one session racing, through one store or (PostgreSQL) two nodes. */
struct completer {
	struct store *s;
	pthread_barrier_t *start;
	const uint8_t *sid;
	int ret;
};

static void *
completer_main(void *arg)
{
	struct completer *c = arg;
	struct store_enroll_req req;
	struct store_device d;

	req_init(&req, "a", 1, 1);
	req.has_session = true;
	memcpy(req.session_id, c->sid, STORE_SESSION_ID_LEN);
	pthread_barrier_wait(c->start);
	c->ret = store_enroll(c->s, &req, &d);
	return NULL;
}

/*
 * A session completes once, whatever the number of nodes: 8 enrollments with one session at
 * once (through two stores on one database with PostgreSQL), 20 rounds: exactly one
 * succeeds each round, every other one is -EALREADY.
 */
static void
test_session_complete_race(void **state)
{
	struct fixture *f = *state;
	enum { THREADS = 8, ROUNDS = 20 };
	struct completer cs[THREADS];
	pthread_t th[THREADS];
	pthread_barrier_t start;
	struct store *s2 = pg_base != NULL ? open_store(f->where, 0, 0) : f->s;
	struct store_session sess;
	uint8_t sid[STORE_SESSION_ID_LEN];

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	registration(f->s, "a", 1);
	memset(&sess, 0, sizeof(sess));
	strcpy(sess.tenant, "a");
	fill(sess.ek_hash, 0xe0, 1);
	fill(sess.wg_pubkey, 0x40, 1);
	sess.nonce_len = 32;
	sess.ak_public_len = 100;
	for (int round = 0; round < ROUNDS; round++) {
		int ok = 0, used = 0;

		sess.expires = fake_now + 60;
		assert_int_equal(store_session_create(f->s, &sess, sid), 0);
		pthread_barrier_init(&start, NULL, THREADS);
		for (int i = 0; i < THREADS; i++) {
			cs[i] = (struct completer){ .s = i % 2 ? s2 : f->s, .start = &start,
				.sid = sid };
			assert_int_equal(pthread_create(&th[i], NULL, completer_main, &cs[i]), 0);
		}
		for (int i = 0; i < THREADS; i++) {
			pthread_join(th[i], NULL);
			if (cs[i].ret == STORE_ENROLL_NEW || cs[i].ret == STORE_ENROLL_SAME)
				ok++;
			else if (cs[i].ret == -EALREADY)
				used++;
			else
				fail_msg("round %d: completion %d: %d", round, i, cs[i].ret);
		}
		pthread_barrier_destroy(&start);
		if (ok != 1)
			fail_msg("round %d: %d completions of one session succeeded", round, ok);
		assert_int_equal(used, THREADS - 1);
	}
	assert_consistent(f->s);
	if (s2 != f->s)
		store_free(s2);
}

/* /29 with the control plane on .1: devices get .2 .. .6, then the prefix is full. */
static void
test_address_rules(void **state)
{
	struct fixture *f = *state;
	struct store_device d, dev[6];
	struct store_token tok, got;
	struct store_enroll_req req;
	char buf[ADDR_STR_LEN];
	uint64_t seq;
	int fam;
	uint8_t a[32];

	make_tenant(f->s, "small", "10.9.0.0/29", "fd00:9::/126", 2000);
	memset(&tok, 0, sizeof(tok));
	strcpy(tok.tenant, "small");
	fill(tok.hash, 0x70, 9);
	tok.uses_left = 100;
	assert_int_equal(store_token_create(f->s, &tok), 0);
	/* IPv6 /126 with ::1 for the control plane holds only ::2 and ::3. Use a v4-only one. */
	make_tenant(f->s, "v4", "10.8.0.0/29", NULL, 2001);
	for (uint32_t i = 0; i < 5; i++) {
		req_init(&req, "v4", 100 + i, 100 + i);
		req.has_token = true;
		memcpy(req.token_hash, tok.hash, 32);
		assert_int_equal(store_enroll(f->s, &req, &d), -EACCES); /* token is small's */
		registration(f->s, "v4", 100 + i);
		assert_int_equal(enroll_reg(f->s, "v4", 100 + i, 100 + i, &dev[i]), STORE_ENROLL_NEW);
		snprintf(buf, sizeof(buf), "10.8.0.%u", i + 2);
		assert_string_equal(addr4(&dev[i], buf + 32), buf);
		assert_int_equal(dev[i].has_addr6, 0);
	}
	/* Exhausted: -EADDRNOTAVAIL and nothing written (no device, no event, no token use). */
	registration(f->s, "v4", 200);
	seq = last_seq(f->s);
	assert_int_equal(enroll_reg(f->s, "v4", 200, 200, &d), -EADDRNOTAVAIL);
	assert_int_equal(last_seq(f->s), seq);
	assert_int_equal(store_device_by_ek(f->s, (fill(a, 0xe0, 200), a), &d), -ENOENT);

	/* A revoked device keeps its address reserved... */
	assert_int_equal(store_device_revoke(f->s, dev[1].id, &d), 0);
	assert_int_equal(enroll_reg(f->s, "v4", 200, 200, &d), -EADDRNOTAVAIL);
	/* ...an active one cannot be deleted... */
	assert_int_equal(store_device_delete(f->s, dev[2].id), -EBUSY);
	/* ...and deleting the revoked one frees the lowest address for the next device. */
	assert_int_equal(store_device_delete(f->s, dev[1].id), 0);
	assert_int_equal(store_device_get(f->s, dev[1].id, &d), -ENOENT);
	assert_int_equal(enroll_reg(f->s, "v4", 200, 200, &d), STORE_ENROLL_NEW);
	assert_string_equal(addr4(&d, buf), "10.8.0.3");
	assert_true(d.id > dev[4].id); /* ids are never reused */
	assert_consistent(f->s);

	/* Dual stack: both families allocated, full when either is. */
	for (uint32_t i = 0; i < 2; i++) {
		req_init(&req, "small", 300 + i, 300 + i);
		req.has_token = true;
		memcpy(req.token_hash, tok.hash, 32);
		assert_int_equal(store_enroll(f->s, &req, &d), STORE_ENROLL_NEW);
		assert_int_equal(d.has_addr6, 1);
		assert_int_equal(addr_format(AF_INET6, d.addr6, buf, sizeof(buf)), 0);
		assert_string_equal(buf, i == 0 ? "fd00:9::2" : "fd00:9::3");
		assert_int_equal(store_device_by_addr(f->s, "small", AF_INET6, d.addr6, &d), 0);
	}
	req_init(&req, "small", 302, 302);
	req.has_token = true;
	memcpy(req.token_hash, tok.hash, 32);
	assert_int_equal(store_enroll(f->s, &req, &d), -EADDRNOTAVAIL);
	assert_int_equal(store_token_get(f->s, tok.hash, &got), 0);
	assert_int_equal(got.uses_left, 98);
	assert_int_equal(addr_parse(&fam, a, "10.9.0.2"), 0);
	assert_int_equal(store_device_by_addr(f->s, "small", AF_INET, a, &d), 0);
	assert_int_equal(store_device_by_addr(f->s, "v4", AF_INET, a, &d), -ENOENT);
	assert_consistent(f->s);
}

static void
test_rotation(void **state)
{
	struct fixture *f = *state;
	struct store_device d1, d2, d;
	struct store_event *ev = NULL;
	size_t n;
	uint8_t key[32];
	uint64_t seq;

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	registration(f->s, "a", 1);
	registration(f->s, "a", 2);
	assert_int_equal(enroll_reg(f->s, "a", 1, 1, &d1), STORE_ENROLL_NEW);
	assert_int_equal(enroll_reg(f->s, "a", 2, 2, &d2), STORE_ENROLL_NEW);
	seq = last_seq(f->s);
	fake_now += 10;
	/* Same EK, new key: same device, same address, key swapped in every index. */
	assert_int_equal(enroll_reg(f->s, "a", 1, 11, &d), STORE_ENROLL_ROTATED);
	assert_int_equal(d.id, d1.id);
	assert_memory_equal(d.addr4, d1.addr4, 4);
	assert_int_equal(d.updated, fake_now);
	assert_int_equal(d.created, d1.created);
	fill(key, 0x40, 1);
	assert_int_equal(store_device_by_pubkey(f->s, key, &d), -ENOENT);
	fill(key, 0x40, 11);
	assert_int_equal(store_device_by_pubkey(f->s, key, &d), 0);
	assert_int_equal(d.id, d1.id);
	assert_int_equal(store_events_read(f->s, seq, 0, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, STORE_EV_ROTATED);
	assert_int_equal(ev[0].device, d1.id);
	free(ev);
	/* Same EK and key again: nothing changes. */
	assert_int_equal(enroll_reg(f->s, "a", 1, 11, &d), STORE_ENROLL_SAME);
	assert_int_equal(last_seq(f->s), seq + 1);
	/* Another device's key: refused. */
	assert_int_equal(enroll_reg(f->s, "a", 1, 2, &d), -EEXIST);
	/* The same EK in another tenant: refused. */
	make_tenant(f->s, "b", "10.1.0.0/24", NULL, 1001);
	registration(f->s, "b", 1);
	assert_int_equal(enroll_reg(f->s, "b", 1, 12, &d), -EEXIST);
	assert_consistent(f->s);
}

static void
test_revocation(void **state)
{
	struct fixture *f = *state;
	struct store_device d1, d;
	struct store_event *ev = NULL;
	size_t n;
	uint64_t seq;

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	registration(f->s, "a", 1);
	registration(f->s, "a", 2);
	assert_int_equal(enroll_reg(f->s, "a", 1, 1, &d1), STORE_ENROLL_NEW);
	seq = last_seq(f->s);
	fake_now += 5;
	assert_int_equal(store_device_revoke(f->s, d1.id, &d), 0);
	assert_int_equal(d.state, STORE_DEVICE_REVOKED);
	assert_int_equal(d.revoked, fake_now);
	assert_int_equal(store_device_revoke(f->s, d1.id, &d), -EALREADY);
	assert_int_equal(store_device_revoke(f->s, 999, &d), -ENOENT);
	assert_int_equal(store_ek_revoked(f->s, d1.ek_hash), 1);
	/* A revoked EK cannot enroll, with the old key or a new one. */
	assert_int_equal(enroll_reg(f->s, "a", 1, 1, &d), -EPERM);
	assert_int_equal(enroll_reg(f->s, "a", 1, 5, &d), -EPERM);
	/* The second device takes the next address: the revoked one's stays reserved. */
	assert_int_equal(enroll_reg(f->s, "a", 2, 2, &d), STORE_ENROLL_NEW);
	assert_int_equal(d.addr4[3], d1.addr4[3] + 1);

	assert_int_equal(store_device_reinstate(f->s, d1.id), 0);
	assert_int_equal(store_device_reinstate(f->s, d1.id), -EALREADY);
	assert_int_equal(store_ek_revoked(f->s, d1.ek_hash), 0);
	/* Reinstated: still revoked until it attests again, then back with its address. */
	assert_int_equal(store_device_get(f->s, d1.id, &d), 0);
	assert_int_equal(d.state, STORE_DEVICE_REVOKED);
	assert_int_equal(enroll_reg(f->s, "a", 1, 5, &d), STORE_ENROLL_RENEWED);
	assert_int_equal(d.id, d1.id);
	assert_int_equal(d.state, STORE_DEVICE_ACTIVE);
	assert_memory_equal(d.addr4, d1.addr4, 4);

	assert_int_equal(store_events_read(f->s, seq, 0, &ev, &n), 0);
	assert_int_equal(n, 4);
	assert_int_equal(ev[0].kind, STORE_EV_REVOKED);
	assert_int_equal(ev[1].kind, STORE_EV_ENROLLED);
	assert_int_equal(ev[2].kind, STORE_EV_REINSTATED);
	assert_int_equal(ev[3].kind, STORE_EV_ENROLLED);
	assert_int_equal(ev[3].device, d1.id);
	assert_string_equal(ev[3].tenant, "a");
	free(ev);
	assert_consistent(f->s);
}

static void
test_pagination(void **state)
{
	struct fixture *f = *state;
	struct store_device_filter flt = { 0 };
	struct store_device d, *page = NULL;
	uint64_t a_ids[40], next, cursor = 0;
	size_t na = 0, n, seen = 0;

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	make_tenant(f->s, "b", "10.1.0.0/24", NULL, 1001);
	for (uint32_t i = 0; i < 40; i++) {
		const char *t = i % 3 == 0 ? "b" : "a";

		registration(f->s, t, i);
		assert_int_equal(enroll_reg(f->s, t, i, i, &d), STORE_ENROLL_NEW);
		if (t[0] == 'a')
			a_ids[na++] = d.id;
	}
	assert_int_equal(na, 26);
	flt.tenant = "a";
	flt.limit = 7;
	do {
		flt.after = cursor;
		assert_int_equal(store_device_list(f->s, &flt, &page, &n, &next), 0);
		for (size_t i = 0; i < n; i++) {
			assert_string_equal(page[i].tenant, "a");
			assert_int_equal(page[i].id, a_ids[seen++]);
		}
		assert_true(n == 7 || next == 0);
		free(page);
		cursor = next;
	} while (cursor != 0);
	assert_int_equal(seen, 26);

	/* A page exactly at the end: no cursor. */
	flt.after = 0;
	flt.limit = 26;
	assert_int_equal(store_device_list(f->s, &flt, &page, &n, &next), 0);
	assert_int_equal(n, 26);
	assert_int_equal(next, 0);
	free(page);

	/* State filter, all tenants. */
	assert_int_equal(store_device_revoke(f->s, a_ids[3], NULL), 0);
	assert_int_equal(store_device_revoke(f->s, a_ids[20], NULL), 0);
	flt.tenant = NULL;
	flt.state = STORE_DEVICE_REVOKED;
	flt.limit = 1;
	assert_int_equal(store_device_list(f->s, &flt, &page, &n, &next), 0);
	assert_int_equal(n, 1);
	assert_int_equal(page[0].id, a_ids[3]);
	assert_int_equal(next, a_ids[3]);
	free(page);
	flt.after = next;
	assert_int_equal(store_device_list(f->s, &flt, &page, &n, &next), 0);
	assert_int_equal(n, 1);
	assert_int_equal(page[0].id, a_ids[20]);
	assert_int_equal(next, 0);
	free(page);
	flt.state = 0;
	flt.after = 0;
	flt.limit = 1000;
	assert_int_equal(store_device_list(f->s, &flt, &page, &n, &next), 0);
	assert_int_equal(n, 40);
	free(page);
	flt.tenant = "nobody";
	assert_int_equal(store_device_list(f->s, &flt, &page, &n, &next), 0);
	assert_int_equal(n, 0);
	free(page);
}

static void
test_events_and_health(void **state)
{
	struct fixture *f = *state;
	struct store_device d1, d2;
	struct store_event *ev = NULL;
	struct store_health h[3], got;
	size_t n;
	uint64_t seq;

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	registration(f->s, "a", 1);
	registration(f->s, "a", 2);
	assert_int_equal(last_seq(f->s), 0);
	assert_int_equal(store_events_wait(f->s, 0, 20), 0); /* nothing yet: times out */
	assert_int_equal(enroll_reg(f->s, "a", 1, 1, &d1), STORE_ENROLL_NEW);
	assert_int_equal(enroll_reg(f->s, "a", 2, 2, &d2), STORE_ENROLL_NEW);
	assert_int_equal(store_events_wait(f->s, 1, 1000), 1);
	assert_int_equal(store_events_wait(f->s, 2, 20), 0);

	assert_int_equal(store_health_get(f->s, d1.id, &got), 0);
	assert_int_equal(got.state, STORE_HEALTH_NEVER);
	assert_int_equal(store_health_get(f->s, 4242, &got), -ENOENT);
	h[0] = (struct store_health){ .device = d1.id, .state = STORE_HEALTH_UP, .since = 5 };
	h[1] = (struct store_health){ .device = d2.id, .state = STORE_HEALTH_NEVER };
	h[2] = (struct store_health){ .device = 4242, .state = STORE_HEALTH_UP };
	assert_int_equal(store_health_update(f->s, h, 3), 1);
	assert_int_equal(store_health_update(f->s, h, 3), 0); /* no change, no event */
	h[0].state = STORE_HEALTH_DOWN;
	h[0].since = 0;
	h[1].state = STORE_HEALTH_UP;
	assert_int_equal(store_health_update(f->s, h, 2), 2);
	assert_int_equal(store_health_get(f->s, d1.id, &got), 0);
	assert_int_equal(got.state, STORE_HEALTH_DOWN);
	assert_int_equal(got.since, fake_now);
	h[0].state = 9;
	assert_int_equal(store_health_update(f->s, h, 1), -EINVAL);
	/* Reading from a sequence number onwards (SSE Last-Event-ID). */
	assert_int_equal(store_events_read(f->s, 0, 0, &ev, &n), 0);
	assert_int_equal(n, 5);
	for (size_t i = 0; i < n; i++)
		assert_int_equal(ev[i].seq, i + 1);
	assert_int_equal(ev[2].kind, STORE_EV_UP);
	assert_int_equal(ev[3].kind, STORE_EV_DOWN);
	assert_int_equal(ev[3].device, d1.id);
	assert_int_equal(ev[4].kind, STORE_EV_UP);
	assert_int_equal(ev[4].device, d2.id);
	assert_string_equal(store_event_kind_name(ev[0].kind), "enrolled");
	free(ev);
	assert_int_equal(store_events_read(f->s, 3, 1, &ev, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].seq, 4);
	free(ev);
	assert_int_equal(store_events_read(f->s, 5, 0, &ev, &n), 0);
	assert_int_equal(n, 0);
	free(ev);
	/* Sequence numbers survive a restart. */
	store_free(f->s);
	f->s = open_store(f->where, 0, 0);
	seq = last_seq(f->s);
	assert_int_equal(seq, 5);
	assert_int_equal(store_events_wait(f->s, 4, 0), 1);
	/* All at once (a monitor's first tick): the stored records by id, as health_get has them */
	{
		struct store_health *all = NULL;
		struct store_device d3;
		size_t n_all;

		registration(f->s, "a", 3);
		assert_int_equal(enroll_reg(f->s, "a", 3, 3, &d3), STORE_ENROLL_NEW);
		assert_int_equal(store_health_list(f->s, &all, &n_all), 0);
		assert_int_equal(n_all, 2); /* d3 has none: NEVER, as store_health_get says */
		assert_int_equal(all[0].device, d1.id);
		assert_int_equal(all[0].state, STORE_HEALTH_DOWN);
		assert_int_equal(all[0].since, fake_now);
		assert_int_equal(all[1].device, d2.id);
		assert_int_equal(all[1].state, STORE_HEALTH_UP);
		assert_int_equal(store_health_get(f->s, d2.id, &got), 0);
		assert_int_equal(all[1].since, got.since);
		free(all);
		/* a deleted device's record goes with it */
		assert_int_equal(store_device_revoke(f->s, d1.id, NULL), 0);
		assert_int_equal(store_device_delete(f->s, d1.id), 0);
		assert_int_equal(store_health_list(f->s, &all, &n_all), 0);
		assert_int_equal(n_all, 1);
		assert_int_equal(all[0].device, d2.id);
		free(all);
	}
}

/* ---- 64 threads into a /26 ------------------------------------------------------------------ */

struct racer {
	struct store *s;
	pthread_barrier_t *start;
	uint32_t n;
	bool by_registration; /* else the shared token (whose row lock serialises them) */
	int ret;
	struct store_device dev;
};

static void *
racer_main(void *arg)
{
	struct racer *r = arg;
	struct store_enroll_req req;

	req_init(&req, "race", r->n, r->n);
	req.has_token = !r->by_registration;
	fill(req.token_hash, 0x70, 64);
	pthread_barrier_wait(r->start);
	r->ret = store_enroll(r->s, &req, &r->dev);
	return NULL;
}

static void
test_concurrent_enroll(void **state)
{
	struct fixture *f = *state;
	enum { THREADS = 64 };
	struct racer rs[THREADS];
	pthread_t th[THREADS];
	pthread_barrier_t start;
	struct store_token tok, got;
	struct store_stats st;
	struct store_device_filter flt = { .tenant = "race", .limit = 1000 };
	struct store_device *all = NULL;
	uint64_t next;
	size_t n, ok = 0, full = 0;
	uint8_t seen[64] = { 0 };

	/* 10.64.0.0/26: 62 usable, .1 is the control plane: 61 devices fit. */
	make_tenant(f->s, "race", "10.64.0.0/26", NULL, 3000);
	memset(&tok, 0, sizeof(tok));
	strcpy(tok.tenant, "race");
	fill(tok.hash, 0x70, 64);
	tok.uses_left = 1000;
	assert_int_equal(store_token_create(f->s, &tok), 0);
	pthread_barrier_init(&start, NULL, THREADS);
	for (int i = 0; i < THREADS; i++) {
		rs[i] = (struct racer){ .s = f->s, .start = &start, .n = 1000 + i };
		assert_int_equal(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < THREADS; i++) {
		if (rs[i].ret == -EADDRNOTAVAIL) {
			full++;
			continue;
		}
		assert_int_equal(rs[i].ret, STORE_ENROLL_NEW);
		uint8_t last = rs[i].dev.addr4[3];
		assert_true(last >= 2 && last <= 62);
		assert_int_equal(seen[last], 0); /* distinct */
		seen[last] = 1;
		ok++;
	}
	assert_int_equal(ok, 61);
	assert_int_equal(full, THREADS - 61);
	/* Nothing half-written: exactly 61 devices, 61 token uses, 61 events, indexes agree. */
	assert_int_equal(store_device_list(f->s, &flt, &all, &n, &next), 0);
	assert_int_equal(n, 61);
	free(all);
	assert_int_equal(store_token_get(f->s, tok.hash, &got), 0);
	assert_int_equal(got.uses_left, 1000 - 61);
	assert_int_equal(last_seq(f->s), 61);
	assert_consistent(f->s);
	store_get_stats(f->s, &st);
	print_message("64 racers: %llu operations in %llu commits\n",
		(unsigned long long)st.operations, (unsigned long long)st.commits);
}

/* ---- LMDB: group commit ------------------------------------------------------------------- */

struct writer {
	struct store *s;
	pthread_barrier_t *start;
	uint32_t first, count;
	int failed;
};

/* @count tokens of tenant "c", hashes (0x71, first..first+count-1), one write each */
static void *
writer_main(void *arg)
{
	struct writer *w = arg;
	struct store_token t = { .tenant = "c", .uses_left = 1 };

	pthread_barrier_wait(w->start);
	for (uint32_t i = 0; i < w->count; i++) {
		fill(t.hash, 0x71, w->first + i);
		if (store_token_create(w->s, &t) != 0)
			w->failed++;
	}
	return NULL;
}

/* @threads writers of @per tokens each at once; every token must be there afterwards. */
static void
run_writers(struct store *s, unsigned int threads, uint32_t per, uint32_t base)
{
	struct writer w[32];
	pthread_t th[32];
	pthread_barrier_t start;
	struct store_token got;

	assert_true(threads <= 32);
	pthread_barrier_init(&start, NULL, threads);
	for (unsigned int i = 0; i < threads; i++) {
		w[i] = (struct writer){ .s = s, .start = &start, .first = base + i * per,
			.count = per };
		assert_int_equal(pthread_create(&th[i], NULL, writer_main, &w[i]), 0);
	}
	for (unsigned int i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		assert_int_equal(w[i].failed, 0);
	}
	pthread_barrier_destroy(&start);
	for (uint32_t i = 0; i < threads * per; i++) {
		fill(got.hash, 0x71, base + i);
		assert_int_equal(store_token_get(s, got.hash, &got), 0);
	}
}

/*
 * LMDB: callers that write at once share durable commits (the writer takes what is queued
 * in one transaction); with a batch limit, what is queued beyond a batch waits for the
 * next commit and nothing is left waiting.
 */
static void
test_group_commit(void **state)
{
	struct fixture *f = *state;
	struct store_stats st0, st1;
	struct store_options o = { .clock = fake_clock, .max_batch = 2 };
	struct store *s2 = NULL;
	char dir[64];

	SKIP_IF(pg_base != NULL, "PostgreSQL commits each operation on its caller's connection");
	make_tenant(f->s, "c", "10.9.0.0/24", NULL, 1000);
	snprintf(dir, sizeof(dir), "/tmp/test_store.XXXXXX");
	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(&s2, dir, &o), 0);
	make_tenant(s2, "c", "10.9.0.0/24", NULL, 1000);

	/* 32 writers at once, the default batch: group commits form */
	store_get_stats(f->s, &st0);
	run_writers(f->s, 32, 1, 0);
	store_get_stats(f->s, &st1);
	assert_int_equal(st1.operations - st0.operations, 32);
	print_message("32 writers at once: %llu commits\n",
		(unsigned long long)(st1.commits - st0.commits));
	assert_true(st1.commits - st0.commits < 32);

	/* at most 2 per commit: 16 writers of 25 each */
	store_get_stats(s2, &st0);
	run_writers(s2, 16, 25, 1000);
	store_get_stats(s2, &st1);
	assert_int_equal(st1.operations - st0.operations, 400);
	assert_true(st1.commits - st0.commits >= 200);
	assert_consistent(s2);
	store_free(s2);
	rm_rf(dir);
}

/* ---- map growth, backup, verify ---------------------------------------------------------- */

static const uint8_t *
reg_last(uint32_t i)
{
	static uint8_t h[32];

	fill(h, 0xe0, i);
	return h;
}

struct session_filler {
	struct store *s;
	uint32_t first, n;
	int bad; /* the first result that was not STORE_ENROLL_NEW, 0 if none */
};

static void *
session_filler_main(void *arg)
{
	struct session_filler *sf = arg;
	struct store_device d;

	for (uint32_t i = sf->first; i < sf->first + sf->n && sf->bad == 0; i++) {
		int r = enroll_reg_session(sf->s, "g", i, i, &d);

		if (r != STORE_ENROLL_NEW)
			sf->bad = r < 0 ? r : -1000 - r;
	}
	return NULL;
}

/*
 * Enrollments through sessions from 8 threads at once, in a map that starts small: batches
 * of several enrollments run out of map, are run again after growing, and every session
 * an enrollment of the failed run had claimed must be open again for the rerun.
 */
static void
test_map_growth_sessions(void **state)
{
	struct fixture *f = *state;
	enum { THREADS = 8, EACH = 400 };
	struct session_filler sf[THREADS];
	pthread_t th[THREADS];
	struct store_stats st;

	SKIP_IF(pg_base != NULL, "LMDB's map growth: PostgreSQL has no map");
	store_free(f->s);
	rm_rf(f->dir);
	mkdir(f->dir, 0700);
	f->s = open_store(f->dir, 256 << 10, 16 << 20);
	make_tenant(f->s, "g", "10.128.0.0/16", NULL, 1000);
	for (uint32_t i = 0; i < THREADS * EACH; i++)
		registration(f->s, "g", i);
	store_get_stats(f->s, &st);
	for (int k = 0; k < THREADS; k++) {
		sf[k] = (struct session_filler){ .s = f->s, .first = k * EACH, .n = EACH };
		assert_int_equal(pthread_create(&th[k], NULL, session_filler_main, &sf[k]), 0);
	}
	for (int k = 0; k < THREADS; k++) {
		pthread_join(th[k], NULL);
		if (sf[k].bad != 0)
			fail_msg("thread %d: an enrollment through its session: %d", k, sf[k].bad);
	}
	store_get_stats(f->s, &st);
	assert_true(st.map_size > (256 << 10));
	assert_consistent(f->s);
}

static void
test_map_growth(void **state)
{
	struct fixture *f = *state;
	struct store_device d;
	struct store_stats st;
	uint64_t seq;
	int r = 0;
	uint32_t i;

	SKIP_IF(pg_base != NULL, "LMDB's map growth: PostgreSQL has no map");
	store_free(f->s);
	rm_rf(f->dir);
	mkdir(f->dir, 0700);
	/* 256 KiB, may grow to 4 MiB. */
	f->s = open_store(f->dir, 256 << 10, 4 << 20);
	make_tenant(f->s, "g", "10.128.0.0/16", NULL, 1000);
	/*
	 * Through sessions: a batch that ran out of map is run again after growing, and the
	 * sessions its enrollments had claimed must be open again for that run.
	 */
	for (i = 0; i < 3000; i++) {
		registration(f->s, "g", i);
		assert_int_equal(enroll_reg_session(f->s, "g", i, i, &d), STORE_ENROLL_NEW);
	}
	store_get_stats(f->s, &st);
	assert_true(st.map_size > (256 << 10));
	assert_consistent(f->s);
	store_free(f->s);

	/* A map that may not grow: a clean -ENOSPC, nothing half-written. */
	rm_rf(f->dir);
	mkdir(f->dir, 0700);
	f->s = open_store(f->dir, 256 << 10, 256 << 10);
	make_tenant(f->s, "g", "10.128.0.0/16", NULL, 1000);
	for (i = 0; i < 5000 && r >= 0; i++) {
		struct store_registration reg = { .tenant = "g" };

		seq = last_seq(f->s);
		fill(reg.ek_hash, 0xe0, i);
		r = store_registration_add(f->s, &reg);
		if (r == 0)
			r = enroll_reg(f->s, "g", i, i, &d);
	}
	assert_int_equal(r, -ENOSPC);
	assert_true(last_seq(f->s) == seq);
	assert_int_equal(store_device_by_ek(f->s, reg_last(i - 1), &d), -ENOENT);
	assert_consistent(f->s);
}

static void
test_backup_and_verify(void **state)
{
	struct fixture *f = *state;
	struct store_device d, got;
	char bdir[80];
	struct store *b;
	MDB_env *env;
	MDB_txn *txn;
	MDB_dbi dbi;
	MDB_val k;
	uint8_t key[16] = "a\0\4";
	char why[256];

	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	for (uint32_t i = 0; i < 10; i++) {
		registration(f->s, "a", i);
		assert_int_equal(enroll_reg(f->s, "a", i, i, &d), STORE_ENROLL_NEW);
	}
	if (pg_base != NULL) {
		/* pg_dump is the backup tool; verify sees damage made behind the store's back */
		assert_int_equal(store_backup(f->s, "/nonexistent"), -EOPNOTSUPP);
		assert_consistent(f->s);
		/* an address outside the tenant's prefix */
		pg_sql(f->db, "UPDATE devices SET addr4 = set_byte(addr4, 0, 11) WHERE id = "
			      "(SELECT max(id) FROM devices)");
		assert_int_equal(store_verify(f->s, why, sizeof(why)), -EUCLEAN);
		assert_non_null(strstr(why, "address"));
		pg_sql(f->db, "UPDATE devices SET addr4 = set_byte(addr4, 0, 10) WHERE id = "
			      "(SELECT max(id) FROM devices)");
		assert_consistent(f->s);
		/* one address held twice (the UNIQUE constraint dropped first) */
		pg_sql(f->db, "ALTER TABLE devices DROP CONSTRAINT devices_tenant_addr4_key");
		pg_sql(f->db, "UPDATE devices SET addr4 = (SELECT addr4 FROM devices ORDER BY id "
			      "LIMIT 1) WHERE id = (SELECT max(id) FROM devices)");
		assert_int_equal(store_verify(f->s, why, sizeof(why)), -EUCLEAN);
		assert_non_null(strstr(why, "address"));
		return;
	}
	snprintf(bdir, sizeof(bdir), "%s.bak", f->dir);
	mkdir(bdir, 0700);
	assert_int_equal(store_backup(f->s, bdir), 0);
	b = open_store(bdir, 0, 0);
	assert_int_equal(store_device_get(b, d.id, &got), 0);
	assert_memory_equal(&got, &d, sizeof(d));
	assert_consistent(b);
	store_free(b);

	/* Damage the copy behind the store's back: verify must notice. */
	assert_int_equal(mdb_env_create(&env), 0);
	mdb_env_set_maxdbs(env, 32);
	assert_int_equal(mdb_env_open(env, bdir, 0, 0600), 0);
	assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
	assert_int_equal(mdb_dbi_open(txn, "dev_addr", 0, &dbi), 0);
	memcpy(key + 3, d.addr4, 4);
	k = (MDB_val){ 7, key };
	assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	assert_int_equal(mdb_txn_commit(txn), 0);
	mdb_env_close(env);
	b = open_store(bdir, 0, 0);
	assert_int_equal(store_verify(b, why, sizeof(why)), -EUCLEAN);
	assert_non_null(strstr(why, "address"));
	store_free(b);
	rm_rf(bdir);
}

/*
 * store_verify (LMDB) against each kind of damage, planted behind the store's back in a copy:
 * every index entry missing, in excess, naming another device or carrying a bad value, the
 * device records themselves, the allocation mark and the event log. The check walks the
 * indexes in key order (lmdb_verify.c); each case here is one it must still see.
 */
struct damage {
	const char *what;
	const char *db;
	uint8_t key[64];
	size_t klen;
	const void *val; /* NULL: delete the key */
	size_t vlen;
	const char *db2; /* a second change, or NULL */
	uint8_t key2[64];
	size_t klen2;
	const void *val2;
	size_t vlen2;
	const char *expect; /* in the reason */
};

static void
raw_change(MDB_txn *txn, const char *db, const uint8_t *key, size_t klen, const void *val,
	size_t vlen)
{
	MDB_dbi dbi;
	MDB_val k = { klen, (void *)key }, v = { vlen, (void *)val };

	assert_int_equal(mdb_dbi_open(txn, db, 0, &dbi), 0);
	if (val == NULL)
		assert_int_equal(mdb_del(txn, dbi, &k, NULL), 0);
	else
		assert_int_equal(mdb_put(txn, dbi, &k, &v, 0), 0);
}

static size_t
tkey(uint8_t *out, const char *tenant, int fam, const uint8_t *addr)
{
	size_t n = strlen(tenant) + 1;

	memcpy(out, tenant, n);
	if (fam == 0)
		return n;
	out[n++] = fam == AF_INET ? 4 : 6;
	memcpy(out + n, addr, fam == AF_INET ? 4 : 16);
	return n + (fam == AF_INET ? 4 : 16);
}

static void
be64(uint8_t *b, uint64_t v)
{
	for (int i = 7; i >= 0; i--, v >>= 8)
		b[i] = (uint8_t)v;
}

static void
test_verify_damage(void **state)
{
	struct fixture *f = *state;
	struct store_device da[10], db6[3], rec_addr, rec_self, rec_state, rec_tenant, rec_dup;
	struct store_tenant ta;
	uint8_t id1[8], id2[8], id999[8], seq_far[8], hint_far[8], x = 'x', stray_addr[4];
	uint8_t stray_key[32];
	char bdir[80], why[256];
	struct damage dm[24];
	size_t n = 0;
	MDB_env *env;
	MDB_txn *txn;
	struct store *b;

	SKIP_IF(pg_base != NULL, "LMDB's indexes: PostgreSQL has constraints (tested above)");
	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	make_tenant(f->s, "b", "10.1.0.0/24", "fd00:1::/64", 1001);
	for (uint32_t i = 0; i < 10; i++) {
		registration(f->s, "a", i);
		assert_int_equal(enroll_reg(f->s, "a", i, i, &da[i]), STORE_ENROLL_NEW);
	}
	for (uint32_t i = 0; i < 3; i++) {
		registration(f->s, "b", 100 + i);
		assert_int_equal(enroll_reg(f->s, "b", 100 + i, 100 + i, &db6[i]), STORE_ENROLL_NEW);
		assert_true(db6[i].has_addr6);
	}
	/* b's lowest addresses again, for the newest device: addresses out of id order */
	assert_int_equal(store_device_revoke(f->s, db6[0].id, NULL), 0);
	assert_int_equal(store_device_delete(f->s, db6[0].id), 0);
	registration(f->s, "b", 150);
	assert_int_equal(enroll_reg(f->s, "b", 150, 150, &db6[0]), STORE_ENROLL_NEW);
	assert_true(db6[0].id > db6[2].id);
	assert_true(db6[0].addr4[3] < db6[1].addr4[3] && db6[0].addr6[15] < db6[1].addr6[15]);
	assert_int_equal(store_tenant_get(f->s, "a", &ta), 0);
	assert_consistent(f->s);
	be64(id1, da[1].id);
	be64(id2, da[2].id);
	be64(id999, 999);
	be64(seq_far, last_seq(f->s) + 10);
	be64(hint_far, 40);
	stray_addr[0] = 10, stray_addr[1] = 0, stray_addr[2] = 0, stray_addr[3] = 200;
	fill(stray_key, 0x77, 1);
	rec_addr = da[3];
	rec_addr.addr4[0] = 11;
	rec_self = da[3];
	memcpy(rec_self.addr4, ta.self4, 4);
	rec_state = da[3];
	rec_state.state = 9;
	rec_tenant = da[3];
	snprintf(rec_tenant.tenant, sizeof(rec_tenant.tenant), "zz");
	rec_dup = da[2];
	memcpy(rec_dup.wg_pubkey, da[1].wg_pubkey, sizeof(rec_dup.wg_pubkey));

#define D(...) dm[n++] = (struct damage){ __VA_ARGS__ }
	D(.what = "a public key missing", .db = "dev_pubkey", .klen = 32,
		.expect = "public key index");
	memcpy(dm[n - 1].key, da[1].wg_pubkey, 32);
	D(.what = "a stray public key", .db = "dev_pubkey", .klen = 32, .val = id1, .vlen = 8,
		.expect = "counts differ");
	memcpy(dm[n - 1].key, stray_key, 32);
	D(.what = "an EK naming another device", .db = "dev_ek", .klen = 32, .val = id2, .vlen = 8,
		.expect = "EK index");
	memcpy(dm[n - 1].key, da[1].ek_hash, 32);
	D(.what = "an EK entry of bad size", .db = "dev_ek", .klen = 32, .val = id2, .vlen = 4,
		.expect = "EK index");
	memcpy(dm[n - 1].key, da[1].ek_hash, 32);
	D(.what = "a tenant index entry missing", .db = "dev_tenant", .expect = "tenant index");
	dm[n - 1].klen = tkey(dm[n - 1].key, "a", 0, NULL);
	memcpy(dm[n - 1].key + dm[n - 1].klen, id1, 8), dm[n - 1].klen += 8;
	D(.what = "a stray tenant index entry", .db = "dev_tenant", .val = "", .vlen = 0,
		.expect = "counts differ");
	dm[n - 1].klen = tkey(dm[n - 1].key, "a", 0, NULL);
	memcpy(dm[n - 1].key + dm[n - 1].klen, id999, 8), dm[n - 1].klen += 8;
	D(.what = "a tenant index entry with a value", .db = "dev_tenant", .val = &x, .vlen = 1,
		.expect = "tenant index");
	dm[n - 1].klen = tkey(dm[n - 1].key, "a", 0, NULL);
	memcpy(dm[n - 1].key + dm[n - 1].klen, id1, 8), dm[n - 1].klen += 8;
	D(.what = "an IPv4 address missing", .db = "dev_addr", .expect = "address");
	dm[n - 1].klen = tkey(dm[n - 1].key, "a", AF_INET, da[4].addr4);
	D(.what = "an address naming another device", .db = "dev_addr", .val = id2, .vlen = 8,
		.expect = "address");
	dm[n - 1].klen = tkey(dm[n - 1].key, "a", AF_INET, da[1].addr4);
	D(.what = "a stray address", .db = "dev_addr", .val = id1, .vlen = 8,
		.expect = "counts differ");
	dm[n - 1].klen = tkey(dm[n - 1].key, "a", AF_INET, stray_addr);
	D(.what = "an IPv6 address missing", .db = "dev_addr", .expect = "address");
	dm[n - 1].klen = tkey(dm[n - 1].key, "b", AF_INET6, db6[1].addr6);
	D(.what = "an address outside the prefix", .db = "devices", .klen = 8, .val = &rec_addr,
		.vlen = sizeof(rec_addr), .expect = "not usable");
	be64(dm[n - 1].key, da[3].id);
	D(.what = "the tenant's own address", .db = "devices", .klen = 8, .val = &rec_self,
		.vlen = sizeof(rec_self), .expect = "not usable");
	be64(dm[n - 1].key, da[3].id);
	D(.what = "a bad state", .db = "devices", .klen = 8, .val = &rec_state,
		.vlen = sizeof(rec_state), .expect = "bad state");
	be64(dm[n - 1].key, da[3].id);
	D(.what = "no such tenant", .db = "devices", .klen = 8, .val = &rec_tenant,
		.vlen = sizeof(rec_tenant), .expect = "no tenant");
	be64(dm[n - 1].key, da[3].id);
	D(.what = "two devices with one key", .db = "devices", .klen = 8, .val = &rec_dup,
		.vlen = sizeof(rec_dup), .expect = "public key index");
	be64(dm[n - 1].key, da[2].id);
	D(.what = "a device under another id", .db = "devices", .klen = 8, .val = &da[1],
		.vlen = sizeof(da[1]), .expect = "another id");
	be64(dm[n - 1].key, 500);
	D(.what = "a device record of bad size", .db = "devices", .klen = 8, .val = &da[1],
		.vlen = 16, .expect = "bad size");
	be64(dm[n - 1].key, da[1].id);
	D(.what = "a free address below the allocation mark", .db = "addr_hint",
		.val = hint_far, .vlen = 8, .expect = "allocation mark");
	dm[n - 1].klen = tkey(dm[n - 1].key, "a", 0, NULL);
	dm[n - 1].key[dm[n - 1].klen++] = 4;
	D(.what = "a device gone with its address", .db = "devices", .klen = 8, .db2 = "dev_addr",
		.expect = "allocation mark");
	be64(dm[n - 1].key, da[5].id);
	dm[n - 1].klen2 = tkey(dm[n - 1].key2, "a", AF_INET, da[5].addr4);
	D(.what = "an event after the counter", .db = "events", .klen = 8, .val = id1, .vlen = 8,
		.expect = "event log");
	memcpy(dm[n - 1].key, seq_far, 8);
	D(.what = "a tenant under another name", .db = "tenants", .klen = 1, .val = &ta,
		.vlen = sizeof(ta), .expect = "another name");
	dm[n - 1].key[0] = 'c';
#undef D

	snprintf(bdir, sizeof(bdir), "%s.dmg", f->dir);
	for (size_t i = 0; i < n; i++) {
		const struct damage *g = &dm[i];

		rm_rf(bdir);
		mkdir(bdir, 0700);
		assert_int_equal(store_backup(f->s, bdir), 0);
		assert_int_equal(mdb_env_create(&env), 0);
		mdb_env_set_maxdbs(env, 32);
		assert_int_equal(mdb_env_open(env, bdir, 0, 0600), 0);
		assert_int_equal(mdb_txn_begin(env, NULL, 0, &txn), 0);
		raw_change(txn, g->db, g->key, g->klen, g->val, g->vlen);
		if (g->db2 != NULL)
			raw_change(txn, g->db2, g->key2, g->klen2, g->val2, g->vlen2);
		if (strcmp(g->what, "a device gone with its address") == 0) {
			/* and with the rest of its entries: only the hole below the mark is left */
			uint8_t k[64];
			size_t kl = tkey(k, "a", 0, NULL);

			raw_change(txn, "dev_pubkey", da[5].wg_pubkey, 32, NULL, 0);
			raw_change(txn, "dev_ek", da[5].ek_hash, 32, NULL, 0);
			be64(k + kl, da[5].id);
			raw_change(txn, "dev_tenant", k, kl + 8, NULL, 0);
		}
		assert_int_equal(mdb_txn_commit(txn), 0);
		mdb_env_close(env);
		b = open_store(bdir, 0, 0);
		if (store_verify(b, why, sizeof(why)) != -EUCLEAN || strstr(why, g->expect) == NULL)
			fail_msg("%s: not seen (%s)", g->what, why);
		print_message("%s: %s\n", g->what, why);
		store_free(b);
	}
	rm_rf(bdir);
}

/* ---- two nodes on one PostgreSQL ------------------------------------------------------------ */

struct watcher {
	struct store *s;
	uint64_t want;
	uint64_t max_seen;
	int bad;
	bool *stop;
	char why[128];
};

/*
 * Follow the event log the way an SSE client resuming by Last-Event-ID does: each read
 * starts right after the last seq seen. Commit-ordered seqs mean a read never shows a gap
 * that a later commit fills (the client would have missed that event for good).
 */
static void *
watcher_main(void *arg)
{
	struct watcher *w = arg;

	while (!__atomic_load_n(w->stop, __ATOMIC_SEQ_CST) || w->max_seen < w->want) {
		struct store_event *ev = NULL;
		size_t n = 0;

		if (store_events_read(w->s, w->max_seen, 0, &ev, &n) < 0) {
			snprintf(w->why, sizeof(w->why), "events_read failed");
			w->bad++;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			if (ev[i].seq != w->max_seen + 1) {
				snprintf(w->why, sizeof(w->why), "saw seq %llu after %llu",
					(unsigned long long)ev[i].seq,
					(unsigned long long)w->max_seen);
				w->bad++;
			}
			w->max_seen = ev[i].seq;
		}
		free(ev);
		if (w->bad || (__atomic_load_n(w->stop, __ATOMIC_SEQ_CST) && n == 0))
			break;
		if (n == 0)
			store_events_wait(w->s, w->max_seen, 50);
	}
	return NULL;
}

/* Enrollments into a tenant of one's own: no tenant lock shared, events interleave. */
struct busy {
	struct store *s;
	pthread_barrier_t *start;
	char tenant[STORE_NAME_MAX];
	uint32_t ek;
	int bad;
};

enum { BUSY_THREADS = 16, BUSY_EACH = 8 };

static void *
busy_main(void *arg)
{
	struct busy *bz = arg;
	struct store_device d;

	pthread_barrier_wait(bz->start);
	for (uint32_t k = 0; k < BUSY_EACH; k++)
		if (enroll_reg(bz->s, bz->tenant, bz->ek + k, bz->ek + k, &d) != STORE_ENROLL_NEW)
			bz->bad++;
	return NULL;
}

struct waiter {
	struct store *s;
	uint64_t after;
	int ret;
};

static void *
waiter_main(void *arg)
{
	struct waiter *w = arg;

	w->ret = store_events_wait(w->s, w->after, 10000);
	return NULL;
}

/*
 * Two stores on one database are two enrolld nodes: 64 enrollments into one /26 through
 * both at once never get one address twice; with 16 threads enrolling into tenants of
 * their own meanwhile (no tenant lock in common), a reader resuming after the last seq it
 * saw never finds a gap (event seqs in commit order); and a waiter on one node wakes for an
 * event committed on the other (LISTEN/NOTIFY).
 */
static void
test_two_nodes(void **state)
{
	struct fixture *f = *state;
	enum { THREADS = 64 };
	struct racer rs[THREADS];
	struct busy bz[BUSY_THREADS];
	pthread_t th[THREADS + BUSY_THREADS], wt, ww;
	pthread_barrier_t start;
	struct store *s2;
	struct store_device d;
	struct watcher w = { 0 };
	struct waiter wa;
	struct timespec t0, t1;
	uint8_t seen[64] = { 0 };
	bool stop = false;
	size_t ok = 0;
	double ms;

	SKIP_IF(pg_base == NULL, "two nodes on one database: PostgreSQL only");
	s2 = open_store(f->where, 0, 0);
	make_tenant(f->s, "race", "10.64.0.0/26", NULL, 3000);
	for (int j = 0; j < BUSY_THREADS; j++) {
		char name[16], p4[32];

		snprintf(name, sizeof(name), "busy%d", j);
		snprintf(p4, sizeof(p4), "10.%d.0.0/24", 100 + j);
		make_tenant(f->s, name, p4, NULL, 4000 + j);
		bz[j] = (struct busy){ .s = j % 2 ? f->s : s2, .start = &start,
			.ek = 5000 + j * BUSY_EACH };
		snprintf(bz[j].tenant, sizeof(bz[j].tenant), "%s", name);
		for (uint32_t k = 0; k < BUSY_EACH; k++)
			registration(f->s, name, bz[j].ek + k);
	}

	w.s = s2;
	w.stop = &stop;
	w.want = 61 + BUSY_THREADS * BUSY_EACH;
	assert_int_equal(pthread_create(&wt, NULL, watcher_main, &w), 0);
	pthread_barrier_init(&start, NULL, THREADS + BUSY_THREADS);
	for (int i = 0; i < THREADS; i++) {
		rs[i] = (struct racer){ .s = i % 2 ? s2 : f->s, .start = &start, .n = 1000 + i,
			.by_registration = true };
		registration(f->s, "race", 1000 + i);
		assert_int_equal(pthread_create(&th[i], NULL, racer_main, &rs[i]), 0);
	}
	for (int j = 0; j < BUSY_THREADS; j++)
		assert_int_equal(pthread_create(&th[THREADS + j], NULL, busy_main, &bz[j]), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < THREADS + BUSY_THREADS; i++)
		pthread_join(th[i], NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	print_message("%d enrollments through two stores in %.0f ms (%.0f/s)\n",
		THREADS + BUSY_THREADS * BUSY_EACH, ms,
		(THREADS + BUSY_THREADS * BUSY_EACH) / (ms / 1e3));
	pthread_barrier_destroy(&start);
	__atomic_store_n(&stop, true, __ATOMIC_SEQ_CST);
	pthread_join(wt, NULL);
	if (w.bad)
		fail_msg("event order: %s", w.why);
	assert_int_equal(w.max_seen, w.want);
	for (int j = 0; j < BUSY_THREADS; j++)
		assert_int_equal(bz[j].bad, 0);
	for (int i = 0; i < THREADS; i++) {
		if (rs[i].ret == -EADDRNOTAVAIL)
			continue;
		assert_int_equal(rs[i].ret, STORE_ENROLL_NEW);
		assert_int_equal(seen[rs[i].dev.addr4[3]], 0);
		seen[rs[i].dev.addr4[3]] = 1;
		ok++;
	}
	assert_int_equal(ok, 61);
	assert_int_equal(last_seq(s2), w.want);
	assert_consistent(s2);

	/* A waiter on node 2 wakes for a commit on node 1. */
	wa = (struct waiter){ .s = s2, .after = w.want };
	assert_int_equal(pthread_create(&ww, NULL, waiter_main, &wa), 0);
	usleep(200 * 1000);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (int i = 0; i < THREADS; i++) {
		if (rs[i].ret == STORE_ENROLL_NEW) {
			assert_int_equal(store_device_revoke(f->s, rs[i].dev.id, &d), 0);
			break;
		}
	}
	pthread_join(ww, NULL);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (double)(t1.tv_sec - t0.tv_sec) * 1e3 + (double)(t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_int_equal(wa.ret, 1);
	assert_true(ms < 5000);
	print_message("node 2 saw node 1's event after %.1f ms\n", ms);
	store_free(s2);
}

/*
 * The database drops every connection of both stores (a restart, a failover): the next
 * read and the next write succeed on fresh connections (nothing had been sent, so the
 * write is retried), and a waiter on the other store still wakes for the write (its
 * listener reconnects).
 */
static void
test_reconnect(void **state)
{
	struct fixture *f = *state;
	struct store_tenant t;
	struct store_device d;
	struct waiter wa;
	struct store *s2;
	pthread_t ww;
	char sql[256];

	SKIP_IF(pg_base == NULL, "connections to a database server: PostgreSQL only");
	s2 = open_store(f->where, 0, 0);
	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	registration(f->s, "a", 1);
	registration(f->s, "a", 2);
	assert_int_equal(enroll_reg(f->s, "a", 1, 1, &d), STORE_ENROLL_NEW);
	wa = (struct waiter){ .s = s2, .after = last_seq(s2) };
	assert_int_equal(pthread_create(&ww, NULL, waiter_main, &wa), 0);
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
				   "WHERE datname = '%s' AND pid <> pg_backend_pid()", f->db);
	pg_sql(NULL, sql);
	assert_int_equal(store_tenant_get(f->s, "a", &t), 0);
	assert_int_equal(enroll_reg(f->s, "a", 2, 2, &d), STORE_ENROLL_NEW);
	pthread_join(ww, NULL);
	assert_int_equal(wa.ret, 1);
	assert_int_equal(store_device_by_ek(s2, d.ek_hash, &d), 0);
	assert_consistent(s2);
	store_free(s2);
}

struct reg_adder {
	struct store *s;
	int ret;
};

static void *
reg_adder_main(void *arg)
{
	struct reg_adder *a = arg;
	struct store_registration r = { .tenant = "a" };

	fill(r.ek_hash, 0xe0, 7);
	a->ret = store_registration_add(a->s, &r);
	return NULL;
}

/*
 * The connection is lost while COMMIT runs (a deferred trigger makes COMMIT slow, the test
 * terminates the backend meanwhile): the outcome is unknown to the store, which must answer
 * -EIO, never 0 and never a silent retry; the next op reconnects.
 */
static void
test_commit_unknown(void **state)
{
	struct fixture *f = *state;
	struct reg_adder a;
	pthread_t th;
	char sql[256], v[32];
	uint8_t ek[32];

	SKIP_IF(pg_base == NULL, "a connection lost at COMMIT: PostgreSQL only");
	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	pg_sql(f->db, "CREATE FUNCTION slow() RETURNS trigger LANGUAGE plpgsql AS "
		      "$$ BEGIN PERFORM pg_sleep(3); RETURN NULL; END $$");
	pg_sql(f->db, "CREATE CONSTRAINT TRIGGER slow AFTER INSERT ON registrations "
		      "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow()");
	a = (struct reg_adder){ .s = f->s };
	assert_int_equal(pthread_create(&th, NULL, reg_adder_main, &a), 0);
	for (int i = 0; i < 100; i++) {
		usleep(20 * 1000);
		snprintf(sql, sizeof(sql), "SELECT count(*) FROM pg_stat_activity WHERE datname = '%s' "
					   "AND state = 'active' AND query = 'COMMIT'", f->db);
		pg_value(f->db, sql, v, sizeof(v));
		if (strcmp(v, "1") == 0)
			break;
	}
	assert_string_equal(v, "1");
	snprintf(sql, sizeof(sql), "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
				   "WHERE datname = '%s' AND query = 'COMMIT'", f->db);
	pg_sql(NULL, sql);
	pthread_join(th, NULL);
	assert_int_equal(a.ret, -EIO);
	pg_sql(f->db, "DROP TRIGGER slow ON registrations");
	fill(ek, 0xe0, 7);
	/* (terminated before the commit record: not there; the store could not know) */
	assert_int_equal(store_registration_get(f->s, "a", ek, NULL), -ENOENT);
	registration(f->s, "a", 7);
}

struct opener {
	const char *where;
	pthread_barrier_t *start;
	struct store *s;
	int ret;
	char why[160];
};

static void *
opener_main(void *arg)
{
	struct opener *o = arg;
	struct store_options opts = { .backend = STORE_BACKEND_POSTGRESQL, .kek = test_kek,
		.clock = fake_clock };

	pthread_barrier_wait(o->start);
	o->ret = store_open(&o->s, o->where, &opts);
	snprintf(o->why, sizeof(o->why), "%s", store_errmsg());
	return NULL;
}

/*
 * Tenant interface keys under the KEK (cluster mode): the first put wins, a second is
 * -EEXIST and leaves the first; the database holds only the sealed form; another KEK cannot
 * open it; an unknown tenant is -ENOENT. LMDB keeps keys as files: -EOPNOTSUPP.
 */
static void
test_tenant_keys(void **state)
{
	struct fixture *f = *state;
	uint8_t k1[32], k2[32], got[32];
	char v[96], hex[65];

	fill(k1, 0x4b, 1);
	fill(k2, 0x4b, 2);
	if (pg_base == NULL) {
		assert_int_equal(store_tenant_key_get(f->s, "a", got), -EOPNOTSUPP);
		assert_int_equal(store_tenant_key_put(f->s, "a", k1), -EOPNOTSUPP);
		return;
	}
	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	assert_int_equal(store_tenant_key_get(f->s, "a", got), -ENOENT);
	assert_int_equal(store_tenant_key_put(f->s, "nope", k1), -ENOENT);
	assert_int_equal(store_tenant_key_put(f->s, "a", k1), 0);
	assert_int_equal(store_tenant_key_put(f->s, "a", k2), -EEXIST);
	assert_int_equal(store_tenant_key_get(f->s, "a", got), 0);
	assert_memory_equal(got, k1, 32);
	/* not in clear: the key's bytes appear nowhere in the row */
	for (int i = 0; i < 32; i++)
		snprintf(hex + 2 * i, 3, "%02x", k1[i]);
	{
		char sql[256];

		snprintf(sql, sizeof(sql), "SELECT position('\\x%s'::bytea in sealed) || ':' || "
			"length(sealed) FROM tenant_keys WHERE tenant = 'a'", hex);
		pg_value(f->db, sql, v, sizeof(v));
		assert_string_equal(v, "0:60");
	}
	/* another KEK: the sealed key does not open */
	{
		uint8_t other[STORE_KEK_LEN];
		struct store_options o = { .backend = STORE_BACKEND_POSTGRESQL, .kek = other };
		struct store *s2 = NULL;

		memset(other, 0x33, sizeof(other));
		assert_int_equal(store_open(&s2, f->where, &o), 0);
		assert_int_equal(store_tenant_key_get(s2, "a", got), -EBADMSG);
		store_free(s2);
	}
	explicit_bzero(got, sizeof(got));
}

/*
 * The database out of reach (it refuses new connections, the open ones are gone): reads and
 * writes answer -ENOTCONN (the API's 503 store_unavailable: nothing was done, try later),
 * not -EIO (an unknown outcome); once it is back, the same store works again.
 */
static void
test_unreachable(void **state)
{
	struct fixture *f = *state;
	struct store_tenant t;
	char sql[256];

	SKIP_IF(pg_base == NULL, "a database server out of reach: PostgreSQL only");
	make_tenant(f->s, "a", "10.0.0.0/24", NULL, 1000);
	snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS false", f->db);
	pg_sql(NULL, sql);
	snprintf(sql, sizeof(sql), "SELECT count(pg_terminate_backend(pid)) >= 0 FROM "
		"pg_stat_activity WHERE datname = '%s' AND pid <> pg_backend_pid()", f->db);
	pg_sql(NULL, sql);
	assert_int_equal(store_tenant_get(f->s, "a", &t), -ENOTCONN);
	assert_int_equal(store_tenant_set_require_tpm(f->s, "a", false), -ENOTCONN);
	snprintf(sql, sizeof(sql), "ALTER DATABASE %s ALLOW_CONNECTIONS true", f->db);
	pg_sql(NULL, sql);
	assert_int_equal(store_tenant_set_require_tpm(f->s, "a", false), 0);
	assert_int_equal(store_tenant_get(f->s, "a", &t), 0);
	assert_false(t.require_tpm);
}

/* Several nodes starting at once on an empty database: one migrates, all open. */
static void
test_migrate_race(void **state)
{
	struct fixture *f = *state;
	enum { NODES = 6 };
	struct opener o[NODES];
	pthread_t th[NODES];
	pthread_barrier_t start;
	char db[96], where[1200], sql[160], v[32];

	SKIP_IF(pg_base == NULL, "schema migrations: PostgreSQL only");
	snprintf(db, sizeof(db), "%s_fresh", f->db);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", db);
	pg_sql(NULL, sql);
	snprintf(where, sizeof(where), "%s dbname=%s", pg_base, db);
	pthread_barrier_init(&start, NULL, NODES);
	for (int i = 0; i < NODES; i++) {
		o[i] = (struct opener){ .where = where, .start = &start };
		assert_int_equal(pthread_create(&th[i], NULL, opener_main, &o[i]), 0);
	}
	for (int i = 0; i < NODES; i++)
		pthread_join(th[i], NULL);
	pthread_barrier_destroy(&start);
	for (int i = 0; i < NODES; i++) {
		if (o[i].ret != 0)
			fail_msg("node %d: store_open %d %s", i, o[i].ret, o[i].why);
	}
	/* every migration applied exactly once: versions 1..n, each in one row */
	pg_value(db, "SELECT count(*) = max(version) AND count(*) = count(DISTINCT version) "
		"AND min(version) = 1 FROM schema_migrations", v, sizeof(v));
	assert_string_equal(v, "t");
	make_tenant(o[0].s, "a", "10.0.0.0/24", NULL, 1000);
	assert_consistent(o[NODES - 1].s);
	for (int i = 0; i < NODES; i++)
		store_free(o[i].s);
	snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", db);
	pg_sql(NULL, sql);
}

int
main(void)
{
	pg_base = getenv("STORE_TEST_PG");
	if (pg_base != NULL && *pg_base == '\0')
		pg_base = NULL;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_tenants, setup, teardown),
		cmocka_unit_test_setup_teardown(test_registrations, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tenant_keys, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unreachable, setup, teardown),
		cmocka_unit_test_setup_teardown(test_tokens, setup, teardown),
		cmocka_unit_test_setup_teardown(test_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_old_records, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_restart, setup, teardown),
		cmocka_unit_test_setup_teardown(test_session_complete_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_rules, setup, teardown),
		cmocka_unit_test_setup_teardown(test_rotation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_revocation, setup, teardown),
		cmocka_unit_test_setup_teardown(test_pagination, setup, teardown),
		cmocka_unit_test_setup_teardown(test_events_and_health, setup, teardown),
		cmocka_unit_test_setup_teardown(test_concurrent_enroll, setup, teardown),
		cmocka_unit_test_setup_teardown(test_group_commit, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_growth, setup, teardown),
		cmocka_unit_test_setup_teardown(test_map_growth_sessions, setup, teardown),
		cmocka_unit_test_setup_teardown(test_backup_and_verify, setup, teardown),
		cmocka_unit_test_setup_teardown(test_verify_damage, setup, teardown),
		cmocka_unit_test_setup_teardown(test_format_version, setup, teardown),
		cmocka_unit_test_setup_teardown(test_device_crls, setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_nodes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_reconnect, setup, teardown),
		cmocka_unit_test_setup_teardown(test_migrate_race, setup, teardown),
		cmocka_unit_test_setup_teardown(test_commit_unknown, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
