// SPDX-License-Identifier: MIT
/*
 * Moving a whole store between backends (enrolld/store/migrate.c, enrolld/migrate.c):
 * every record kind, with its ids, sequence numbers and timestamps, LMDB -> PostgreSQL ->
 * a fresh LMDB, proved equal field by field, and new ids continuing after the copied ones;
 * a destination that is not empty refused with nothing written; a difference found and
 * named; `enrolld --migrate-to` carrying the tenants' interface keys both ways (files <->
 * sealed in the database). With STORE_TEST_PG unset (unit/test_store_migrate) the
 * PostgreSQL legs are skipped and LMDB -> LMDB runs; tests/run.sh runs it again against a
 * throw-away server (unit/test_store_migrate_pg).
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "common/key.h"
#include "enrolld/migrate.h"
#include "enrolld/store.h"
#include "enrolld/store/migrate.h"

static int64_t fake_now = 1700000000;

static int64_t
fake_clock(void *ctx)
{
	return fake_now;
}

static const char *pg_base;
static const uint8_t test_kek[STORE_KEK_LEN] = "0123456789abcdef0123456789abcdef";
static unsigned int n_made;

struct fixture {
	char tmp[64];      /* a temp directory: LMDB environments, key files, the KEK */
	char pg_db[64];    /* PostgreSQL: this test's database ("" without a server) */
	char pg_where[1024];
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

/* Run @sql as the superuser in database @db (NULL: the server's default one). */
static void
pg_sql_in(const char *db, const char *sql)
{
	char conn[1024];
	PGconn *c;
	PGresult *res;

	snprintf(conn, sizeof(conn), "%s%s%s", pg_base, db ? " dbname=" : "", db ? db : "");
	c = PQconnectdb(conn);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("postgresql: %s", PQerrorMessage(c));
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("postgresql: %s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(c);
}

static void
pg_sql(const char *sql)
{
	pg_sql_in(NULL, sql);
}

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	char sql[160];

	fake_now = 1700000000;
	snprintf(f->tmp, sizeof(f->tmp), "/tmp/test_store_migrate.XXXXXX");
	if (mkdtemp(f->tmp) == NULL)
		return -1;
	if (pg_base != NULL) {
		snprintf(f->pg_db, sizeof(f->pg_db), "migrate_%d_%u", (int)getpid(), n_made++);
		snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->pg_db);
		pg_sql(sql);
		snprintf(f->pg_where, sizeof(f->pg_where), "%s dbname=%s", pg_base, f->pg_db);
	}
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char sql[160];

	if (pg_base != NULL) {
		snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", f->pg_db);
		pg_sql(sql);
	}
	nftw(f->tmp, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(f);
	return 0;
}

#define SKIP_UNLESS_PG()                                                       \
	do {                                                                   \
		if (pg_base == NULL) {                                         \
			print_message("skipped: needs STORE_TEST_PG\n");       \
			skip();                                                \
		}                                                              \
	} while (0)

static struct store *
open_lmdb(const struct fixture *f, const char *name)
{
	struct store_options o = { .clock = fake_clock };
	struct store *s = NULL;
	char dir[128];
	int r;

	snprintf(dir, sizeof(dir), "%s/%s", f->tmp, name);
	r = store_open(&s, dir, &o);
	if (r != 0)
		fail_msg("store_open %s: %d %s", dir, r, store_errmsg());
	return s;
}

static struct store *
open_pg(const struct fixture *f)
{
	struct store_options o = { .backend = STORE_BACKEND_POSTGRESQL, .kek = test_kek,
		.clock = fake_clock };
	struct store *s = NULL;
	int r;

	r = store_open(&s, f->pg_where, &o);
	if (r != 0)
		fail_msg("store_open postgresql: %d %s", r, store_errmsg());
	return s;
}

/* ---- a store with every record kind -------------------------------------------------------- */

static void
fill(uint8_t out[32], uint8_t tag, uint32_t n)
{
	for (int i = 0; i < 32; i++)
		out[i] = (uint8_t)(tag + i * 7);
	out[0] = tag;
	memcpy(out + 1, &n, sizeof(n));
}

static void
make_tenant(struct store *s, const char *name, const char *p4, const char *p6, uint16_t port,
	unsigned int n_pcrs)
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
	t.keepalive = (uint16_t)(port % 60);
	t.require_tpm = n_pcrs > 0;
	t.n_pcrs = (uint8_t)n_pcrs;
	for (unsigned int i = 0; i < n_pcrs; i++) {
		t.pcrs[i].index = (uint8_t)(i * 3);
		fill(t.pcrs[i].sha256, 0x90, i);
	}
	assert_int_equal(store_tenant_create(s, &t), 0);
	fake_now += 7;
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

/* Enroll EK @ek with key @key in @tenant, registered first; returns the device. */
static uint64_t
enroll(struct store *s, const char *tenant, uint32_t ek, uint32_t key)
{
	struct store_registration reg;
	struct store_enroll_req req;
	struct store_device d;
	int r;

	memset(&reg, 0, sizeof(reg));
	snprintf(reg.tenant, sizeof(reg.tenant), "%s", tenant);
	snprintf(reg.label, sizeof(reg.label), "ek %u", ek);
	fill(reg.ek_hash, 0xe0, ek);
	r = store_registration_add(s, &reg);
	assert_true(r == 0 || r == -EEXIST);
	req_init(&req, tenant, ek, key);
	r = store_enroll(s, &req, &d);
	if (r < 0)
		fail_msg("enroll %s ek %u: %d %s", tenant, ek, r, store_errmsg());
	fake_now += 3;
	return d.id;
}

/*
 * Three tenants (IPv6, a PCR policy, require_tpm), a device CA, two CRLs, revoked serials,
 * registrations, tokens (fresh, used up, revoked, expiring), devices enrolled by
 * registration, by token and by X.509, rotated, revoked, reinstated, re-enrolled and one
 * deleted (a gap in the ids, its EK revocation kept), health up and down, and the events
 * all of that appended.
 */
static void
fill_store(struct store *s)
{
	struct store_enroll_req req;
	struct store_device d;
	struct store_token tok;
	struct store_device_ca ca;
	struct store_device_crl crl;
	struct store_x509_revoked rv;
	struct store_health h[3];
	uint8_t der[300];
	uint64_t id;

	make_tenant(s, "acme", "10.1.0.0/24", "fd00:1::/64", 51820, 0);
	make_tenant(s, "beta", "10.2.0.0/28", NULL, 51821, 3);
	make_tenant(s, "c-3", "10.3.0.0/16", "fd00:3::/112", 0, 1);

	memset(&ca, 0, sizeof(ca));
	snprintf(ca.tenant, sizeof(ca.tenant), "beta");
	snprintf(ca.subject, sizeof(ca.subject), "CN=Beta Device CA");
	snprintf(ca.label, sizeof(ca.label), "factory");
	fill(ca.fp, 0xca, 1);
	ca.der_len = 200;
	for (int i = 0; i < 200; i++)
		ca.der[i] = (uint8_t)(i * 13);
	assert_int_equal(store_device_ca_add(s, &ca), 0);
	for (int k = 0; k < 2; k++) {
		memset(&crl, 0, sizeof(crl));
		snprintf(crl.tenant, sizeof(crl.tenant), k ? "beta" : "acme");
		snprintf(crl.issuer, sizeof(crl.issuer), "CN=Issuer %d", k);
		fill(crl.issuer_hash, 0xc1, (uint32_t)k);
		crl.this_update = 1690000000 + k;
		crl.next_update = k ? 0 : 1790000000;
		crl.number_len = (uint8_t)(k + 1);
		crl.number[0] = 7;
		crl.der_len = sizeof(der) - (uint32_t)k;
		for (size_t i = 0; i < sizeof(der); i++)
			der[i] = (uint8_t)(i + k);
		assert_int_equal(store_device_crl_put(s, &crl, der), 0);
	}
	for (uint8_t k = 1; k <= 3; k++) {
		memset(&rv, 0, sizeof(rv));
		snprintf(rv.tenant, sizeof(rv.tenant), "beta");
		snprintf(rv.label, sizeof(rv.label), "lost %u", k);
		memset(rv.serial, 0x50 + k, k);
		rv.serial_len = k;
		assert_int_equal(store_x509_revoke(s, &rv), 0);
	}

	/* tokens: one used by two enrollments, one revoked, one with an expiry */
	for (uint32_t k = 0; k < 3; k++) {
		memset(&tok, 0, sizeof(tok));
		fill(tok.hash, 0x70, k);
		snprintf(tok.tenant, sizeof(tok.tenant), k == 2 ? "c-3" : "acme");
		/* COPY's text format must carry any label: tab, backslash, newline */
		snprintf(tok.label, sizeof(tok.label), k == 1 ? "batch\t1 \\N \\x\n\r" : "batch %u", k);
		tok.uses_left = 2 + k;
		tok.expires = k == 2 ? 1800000000 : 0;
		assert_int_equal(store_token_create(s, &tok), 0);
	}
	for (uint32_t k = 0; k < 2; k++) {
		req_init(&req, "acme", 100 + k, 100 + k);
		req.has_token = true;
		fill(req.token_hash, 0x70, 0);
		assert_int_equal(store_enroll(s, &req, &d), STORE_ENROLL_NEW);
		fake_now += 5;
	}
	fill(tok.hash, 0x70, 1);
	assert_int_equal(store_token_revoke(s, tok.hash), 0);

	/* registrations: devices in every tenant */
	for (uint32_t k = 0; k < 5; k++)
		enroll(s, "acme", k, k);
	for (uint32_t k = 10; k < 14; k++)
		enroll(s, "beta", k, k);
	for (uint32_t k = 20; k < 23; k++)
		enroll(s, "c-3", k, k);
	/* a registration never used */
	{
		struct store_registration reg;

		memset(&reg, 0, sizeof(reg));
		snprintf(reg.tenant, sizeof(reg.tenant), "c-3");
		fill(reg.ek_hash, 0xe0, 99);
		assert_int_equal(store_registration_add(s, &reg), 0);
	}
	/* X.509 */
	req_init(&req, "acme", 500, 500);
	req.kind = STORE_ATTEST_X509;
	req.serial_len = 4;
	memset(req.serial, 0x33, 4);
	assert_int_equal(store_enroll(s, &req, &d), STORE_ENROLL_NEW);

	/* rotation, revocation, reinstatement, renewal, deletion */
	id = enroll(s, "acme", 1, 1001); /* ek 1 rotated to key 1001 */
	(void)id;
	assert_int_equal(store_device_by_ek(s, req.ek_hash, &d), 0);
	fill(req.ek_hash, 0xe0, 2);
	assert_int_equal(store_device_by_ek(s, req.ek_hash, &d), 0);
	assert_int_equal(store_device_revoke(s, d.id, NULL), 0); /* ek 2: revoked, stays */
	fake_now += 11;
	fill(req.ek_hash, 0xe0, 3);
	assert_int_equal(store_device_by_ek(s, req.ek_hash, &d), 0);
	assert_int_equal(store_device_revoke(s, d.id, NULL), 0);
	assert_int_equal(store_device_reinstate(s, d.id), 0);
	enroll(s, "acme", 3, 3); /* ek 3: renewed, same address */
	fill(req.ek_hash, 0xe0, 11);
	assert_int_equal(store_device_by_ek(s, req.ek_hash, &d), 0);
	assert_int_equal(store_device_revoke(s, d.id, NULL), 0);
	assert_int_equal(store_device_delete(s, d.id), 0); /* ek 11: gone, its address free */

	/* health: up, down, up again */
	memset(h, 0, sizeof(h));
	for (int k = 0; k < 3; k++) {
		fill(req.ek_hash, 0xe0, (uint32_t)(20 + k));
		assert_int_equal(store_device_by_ek(s, req.ek_hash, &d), 0);
		h[k].device = d.id;
		h[k].state = STORE_HEALTH_UP;
		h[k].since = 1700000100 + k;
	}
	assert_int_equal(store_health_update(s, h, 3), 3);
	h[1].state = STORE_HEALTH_DOWN;
	h[1].since = 0; /* now */
	fake_now += 60;
	assert_int_equal(store_health_update(s, h, 3), 1);
}

static void
dump(struct store *s, struct store_dump *d)
{
	int r = store_dump_read(s, d);

	if (r != 0)
		fail_msg("store_dump_read: %d %s", r, store_errmsg());
}

static void
assert_same(struct store *a, struct store *b)
{
	struct store_dump da, db;
	char why[512];
	int r;

	dump(a, &da);
	dump(b, &db);
	r = store_dump_compare(&da, &db, why, sizeof(why));
	if (r != 0)
		fail_msg("the copy differs: %s", why);
	store_dump_free(&da);
	store_dump_free(&db);
}

static void
migrate(struct store *src, struct store *dst)
{
	char why[512];
	int r = store_migrate(src, dst, NULL, why, sizeof(why));

	if (r != 0)
		fail_msg("store_migrate: %d %s", r, why);
}

/*
 * By hand, besides the comparison: ids, addresses, sequence numbers, counts; then a new
 * enrollment in @copy gets the next id and the lowest free address (the deleted device's),
 * and its event the next sequence number.
 */
static void
check_copy(struct store *orig, struct store *copy)
{
	struct store_device *da = NULL, *db = NULL, d, dn;
	struct store_event *ev = NULL;
	size_t na = 0, nb = 0, ne = 0;
	uint64_t seq_a = 0, seq_b = 0, max_id = 0;
	uint8_t ek[32];
	struct store_health h;
	char a4[ADDR_STR_LEN];

	assert_int_equal(store_device_list_all(orig, NULL, 0, &da, &na), 0);
	assert_int_equal(store_device_list_all(copy, NULL, 0, &db, &nb), 0);
	assert_int_equal(na, 14); /* 15 enrolled (one EK rotated, not new), one deleted */
	assert_int_equal(nb, na);
	for (size_t i = 0; i < na; i++) {
		assert_int_equal(db[i].id, da[i].id);
		assert_memory_equal(db[i].addr4, da[i].addr4, 16);
		assert_memory_equal(db[i].wg_pubkey, da[i].wg_pubkey, 32);
		assert_int_equal(db[i].state, da[i].state);
		assert_int_equal(db[i].updated, da[i].updated);
		if (da[i].id > max_id)
			max_id = da[i].id;
	}
	/* ek 11's device is gone: a gap in the ids */
	assert_int_equal(max_id, na + 1);
	assert_int_equal(store_events_last(orig, &seq_a), 0);
	assert_int_equal(store_events_last(copy, &seq_b), 0);
	assert_true(seq_a > 20);
	assert_int_equal(seq_b, seq_a);
	assert_int_equal(store_events_read(copy, seq_a - 3, 10, &ev, &ne), 0);
	assert_int_equal(ne, 3);
	assert_int_equal(ev[0].seq, seq_a - 2);
	assert_int_equal(ev[2].seq, seq_a);
	assert_int_equal(ev[2].kind, STORE_EV_DOWN);
	free(ev);
	/* the revoked EKs stay revoked, the deleted device's too */
	fill(ek, 0xe0, 2);
	assert_int_equal(store_ek_revoked(copy, ek), 1);
	fill(ek, 0xe0, 11);
	assert_int_equal(store_ek_revoked(copy, ek), 1);
	fill(ek, 0xe0, 3);
	assert_int_equal(store_ek_revoked(copy, ek), 0);
	fill(ek, 0xe0, 21);
	assert_int_equal(store_device_by_ek(copy, ek, &d), 0);
	assert_int_equal(store_health_get(copy, d.id, &h), 0);
	assert_int_equal(h.state, STORE_HEALTH_DOWN);

	/* new ids continue after the copied ones; beta's free address is the deleted one's */
	fill(ek, 0xe0, 11);
	for (size_t i = 0; i < na; i++)
		if (memcmp(da[i].ek_hash, ek, 32) == 0)
			fail_msg("the deleted device is listed");
	{
		struct store_device gone;
		uint64_t gone_id = 0;

		/* the lowest id not listed is the deleted one */
		for (uint64_t id = 1; id <= max_id && gone_id == 0; id++)
			if (store_device_get(orig, id, &gone) == -ENOENT)
				gone_id = id;
		assert_true(gone_id != 0);
	}
	enroll(copy, "beta", 600, 600);
	fill(ek, 0xe0, 600);
	assert_int_equal(store_device_by_ek(copy, ek, &dn), 0);
	assert_int_equal(dn.id, max_id + 1);
	assert_string_equal(addr_format(AF_INET, dn.addr4, a4, sizeof(a4)) == 0 ? a4 : "?",
		"10.2.0.3"); /* .1 the control plane, .2 .4 .5 taken, .3 freed by the deletion */
	assert_int_equal(store_events_last(copy, &seq_b), 0);
	assert_int_equal(seq_b, seq_a + 1);
	free(da);
	free(db);
}

/* ---- tests ----------------------------------------------------------------------------------- */

static void
test_lmdb_to_lmdb(void **state)
{
	struct fixture *f = *state;
	struct store *a = open_lmdb(f, "a"), *b = open_lmdb(f, "b");
	char why[256];

	fill_store(a);
	migrate(a, b);
	assert_int_equal(store_verify(b, why, sizeof(why)), 0);
	assert_same(a, b);
	check_copy(a, b);
	store_free(a);
	store_free(b);
}

static void
test_lmdb_to_pg_and_back(void **state)
{
	struct fixture *f = *state;
	struct store *a, *pg, *c;

	SKIP_UNLESS_PG();
	a = open_lmdb(f, "a");
	pg = open_pg(f);
	c = open_lmdb(f, "c");
	fill_store(a);
	migrate(a, pg);
	assert_same(a, pg);
	/* a node of a cluster still holding a tenant: the source is in use */
	{
		struct store *busy = open_lmdb(f, "busy");
		char why[256];

		pg_sql_in(f->pg_db, "INSERT INTO tenant_leases (tenant, node, epoch, expires) "
				    "VALUES ('acme', 'node-a', 1, now() + interval '1 minute')");
		assert_int_equal(store_migrate(pg, busy, NULL, why, sizeof(why)), -EBUSY);
		print_message("refused: %s\n", why);
		assert_non_null(strstr(why, "stop every enrolld node"));
		pg_sql_in(f->pg_db, "UPDATE tenant_leases SET expires = now() - interval '1 second'");
		store_free(busy);
	}
	migrate(pg, c);
	assert_same(a, c);
	/* the copies' new enrollments go on from the same place */
	check_copy(a, pg);
	check_copy(a, c);
	store_free(a);
	store_free(pg);
	store_free(c);
}

/* A destination holding anything is refused, and nothing is written into it. */
static void
test_destination_not_empty(void **state)
{
	struct fixture *f = *state;
	struct store *a = open_lmdb(f, "a"), *b = open_lmdb(f, "b"), *pg = NULL;
	struct store_tenant *t = NULL;
	size_t n = 0;
	char why[256];

	fill_store(a);
	make_tenant(b, "zeta", "10.9.0.0/24", NULL, 40000, 0);
	assert_int_equal(store_migrate(a, b, NULL, why, sizeof(why)), -ENOTEMPTY);
	assert_int_equal(store_tenant_list(b, &t, &n), 0);
	assert_int_equal(n, 1);
	free(t);
	/* the backend's own check, past the front's: one device id handed out is enough */
	{
		struct store *e = open_lmdb(f, "e");
		struct store_dump d;

		dump(a, &d);
		assert_int_equal(store_import(b, &d), -ENOTEMPTY);
		assert_int_equal(store_import(e, &d), 0);
		assert_int_equal(store_import(e, &d), -ENOTEMPTY);
		store_dump_free(&d);
		store_free(e);
	}
	if (pg_base != NULL) {
		struct store_dump d;

		pg = open_pg(f);
		make_tenant(pg, "zeta", "10.9.0.0/24", NULL, 40000, 0);
		assert_int_equal(store_migrate(a, pg, NULL, why, sizeof(why)), -ENOTEMPTY);
		dump(a, &d);
		assert_int_equal(store_import(pg, &d), -ENOTEMPTY);
		store_dump_free(&d);
		assert_int_equal(store_tenant_list(pg, &t, &n), 0);
		assert_int_equal(n, 1);
		free(t);
		store_free(pg);
	}
	store_free(a);
	store_free(b);
}

/* The comparison finds a difference in any record kind, and names it. */
static void
test_compare_names_difference(void **state)
{
	struct fixture *f = *state;
	struct store *a = open_lmdb(f, "a"), *b = open_lmdb(f, "b");
	struct store_dump da, db;
	struct store_health h = { 0 };
	uint8_t hash[32];
	char why[512];

	fill_store(a);
	migrate(a, b);
	dump(a, &da);

	fill(hash, 0x70, 2);
	assert_int_equal(store_token_revoke(b, hash), 0);
	dump(b, &db);
	assert_int_equal(store_dump_compare(&da, &db, why, sizeof(why)), -EUCLEAN);
	print_message("found: %s\n", why);
	assert_non_null(strstr(why, "token"));
	assert_non_null(strstr(why, "revoked differs"));
	store_dump_free(&db);

	/* one changed field of one record in memory: each kind is compared */
	dump(a, &db);
	db.devices[5].updated++;
	assert_int_equal(store_dump_compare(&da, &db, why, sizeof(why)), -EUCLEAN);
	assert_non_null(strstr(why, "updated differs"));
	db.devices[5].updated--;
	db.events[db.n_events - 1].device++;
	assert_int_equal(store_dump_compare(&da, &db, why, sizeof(why)), -EUCLEAN);
	assert_non_null(strstr(why, "event "));
	db.events[db.n_events - 1].device--;
	db.tenants[1].pcrs[2].sha256[31] ^= 1;
	assert_int_equal(store_dump_compare(&da, &db, why, sizeof(why)), -EUCLEAN);
	assert_non_null(strstr(why, "tenant 'beta'"));
	db.tenants[1].pcrs[2].sha256[31] ^= 1;
	db.crls[0].der[10] ^= 1;
	assert_int_equal(store_dump_compare(&da, &db, why, sizeof(why)), -EUCLEAN);
	assert_non_null(strstr(why, "der differs"));
	db.crls[0].der[10] ^= 1;
	db.next_device++;
	assert_int_equal(store_dump_compare(&da, &db, why, sizeof(why)), -EUCLEAN);
	assert_non_null(strstr(why, "next device id"));
	db.next_device--;
	db.n_revocations--;
	assert_int_equal(store_dump_compare(&da, &db, why, sizeof(why)), -EUCLEAN);
	assert_non_null(strstr(why, "EK revocations: 2 in the source, 1 in the copy"));
	db.n_revocations++;
	assert_int_equal(store_dump_compare(&da, &db, why, sizeof(why)), 0);
	store_dump_free(&db);

	/* health written in the copy only */
	fill(hash, 0xe0, 22);
	{
		struct store_device d;

		assert_int_equal(store_device_by_ek(b, hash, &d), 0);
		h.device = d.id;
	}
	h.state = STORE_HEALTH_DOWN;
	assert_int_equal(store_health_update(b, &h, 1), 1);
	dump(b, &db);
	assert_int_equal(store_dump_compare(&da, &db, why, sizeof(why)), -EUCLEAN);
	assert_non_null(strstr(why, "event counter"));
	store_dump_free(&db);
	store_dump_free(&da);
	store_free(a);
	store_free(b);
}

/* ---- enrolld --migrate-to: the tenants' keys --------------------------------------------------- */

static void
write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
}

static void
test_command_keys(void **state)
{
	struct fixture *f = *state;
	struct enrolld_conf conf;
	struct store *a, *pg, *c;
	uint8_t priv[2][32], got[32];
	char path[256], b64[WG_KEY_B64_LEN + 1], dir[160], kek_file[160], dest[1200];
	char kek_hex[2 * STORE_KEK_LEN + 2];
	struct stat st;

	SKIP_UNLESS_PG();
	a = open_lmdb(f, "a");
	fill_store(a);
	store_free(a);
	/* acme and beta have key files, c-3 none (its interface never came up) */
	snprintf(dir, sizeof(dir), "%s/a/keys", f->tmp);
	assert_int_equal(mkdir(dir, 0700), 0);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(key_generate_private(priv[k]), 0);
		key_to_base64(b64, priv[k]);
		snprintf(path, sizeof(path), "%s/%s.key", dir, k ? "beta" : "acme");
		strcat(b64, "\n");
		write_file(path, b64, 0600);
	}
	for (size_t i = 0; i < STORE_KEK_LEN; i++)
		snprintf(kek_hex + 2 * i, 3, "%02x", test_kek[i]);
	snprintf(kek_file, sizeof(kek_file), "%s/kek", f->tmp);
	write_file(kek_file, kek_hex, 0600);

	memset(&conf, 0, sizeof(conf));
	conf.store_backend = STORE_BACKEND_LMDB;
	snprintf(path, sizeof(path), "%s/a", f->tmp);
	conf.db_path = path;
	conf.key_dir = dir;
	conf.max_size_mib = 64;
	conf.kek_file = kek_file;
	/* no KEK, no PostgreSQL */
	conf.kek_file = NULL;
	snprintf(dest, sizeof(dest), "postgresql:%s", f->pg_where);
	assert_int_equal(enrolld_migrate(&conf, dest), 1);
	conf.kek_file = kek_file;
	assert_int_equal(enrolld_migrate(&conf, "mysql:x"), 2);
	assert_int_equal(enrolld_migrate(&conf, dest), 0);
	/* a second time: the destination is not empty */
	assert_int_equal(enrolld_migrate(&conf, dest), 1);

	pg = open_pg(f);
	for (int k = 0; k < 2; k++) {
		assert_int_equal(store_tenant_key_get(pg, k ? "beta" : "acme", got), 0);
		assert_memory_equal(got, priv[k], 32);
	}
	assert_int_equal(store_tenant_key_get(pg, "c-3", got), -ENOENT);
	store_free(pg);

	/* and back, from the PostgreSQL configuration into a fresh LMDB directory */
	conf.store_backend = STORE_BACKEND_POSTGRESQL;
	conf.pg_conninfo = f->pg_where;
	snprintf(dest, sizeof(dest), "lmdb:%s/c", f->tmp);
	assert_int_equal(enrolld_migrate(&conf, dest), 0);
	for (int k = 0; k < 2; k++) {
		snprintf(path, sizeof(path), "%s/c/keys/%s.key", f->tmp, k ? "beta" : "acme");
		assert_int_equal(stat(path, &st), 0);
		assert_int_equal(st.st_mode & 0777, 0600);
		key_to_base64(b64, priv[k]);
		{
			char buf[64] = { 0 };
			int fd = open(path, O_RDONLY);

			assert_true(fd >= 0);
			assert_true(read(fd, buf, sizeof(buf) - 1) > 0);
			close(fd);
			buf[strcspn(buf, "\n")] = '\0';
			assert_string_equal(buf, b64);
		}
	}
	snprintf(path, sizeof(path), "%s/c/keys/c-3.key", f->tmp);
	assert_int_equal(stat(path, &st), -1);
	a = open_lmdb(f, "a");
	c = open_lmdb(f, "c");
	assert_same(a, c);
	/* an LMDB environment open in another process is refused: this one holds "a" now */
	store_free(c);
	{
		pid_t pid = fork();

		if (pid == 0) {
			struct enrolld_conf c2 = conf;
			char d2[200];

			c2.store_backend = STORE_BACKEND_LMDB;
			snprintf(d2, sizeof(d2), "lmdb:%s/d", f->tmp);
			snprintf(path, sizeof(path), "%s/a", f->tmp);
			c2.db_path = path;
			_exit(enrolld_migrate(&c2, d2));
		}
		int status = 0;

		assert_true(waitpid(pid, &status, 0) == pid);
		assert_true(WIFEXITED(status));
		assert_int_equal(WEXITSTATUS(status), 1);
	}
	store_free(a);
}

int
main(void)
{
	pg_base = getenv("STORE_TEST_PG");
	if (pg_base != NULL && *pg_base == '\0')
		pg_base = NULL;
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_lmdb_to_lmdb, setup, teardown),
		cmocka_unit_test_setup_teardown(test_lmdb_to_pg_and_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_destination_not_empty, setup, teardown),
		cmocka_unit_test_setup_teardown(test_compare_names_difference, setup, teardown),
		cmocka_unit_test_setup_teardown(test_command_keys, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
