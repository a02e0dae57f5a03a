// SPDX-License-Identifier: MIT
/*
 * Tenant leases (enrolld/cluster/lease.h) against a real PostgreSQL: STORE_TEST_PG is its
 * libpq connection string (tests/run.sh starts a throw-away server, tests/pg_lib.sh);
 * without it only the tests that need no database run. Two "nodes" are two connections with two names.
 */
#include <errno.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "enrolld/cluster/lease.h"
#include "enrolld/store.h"

static const char *pg_base;
static const uint8_t test_kek[STORE_KEK_LEN] = "0123456789abcdef0123456789abcdef";
static unsigned int n_dbs;

struct fixture {
	char db[64];
	char conn[1024];
	struct store *s; /* applies the migrations; makes the tenants */
	PGconn *a, *b;   /* node a, node b */
	struct lease_conf ca, cb;
};

static void
admin_sql(const char *sql)
{
	PGconn *c = PQconnectdb(pg_base);
	PGresult *res;

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("postgresql: %s", PQerrorMessage(c));
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COMMAND_OK)
		fail_msg("%s: %s", sql, PQresultErrorMessage(res));
	PQclear(res);
	PQfinish(c);
}

static PGconn *
node_conn(const char *conn)
{
	PGconn *c = PQconnectdb(conn);

	if (PQstatus(c) != CONNECTION_OK)
		fail_msg("postgresql: %s", PQerrorMessage(c));
	return c;
}

static void
make_tenant(struct store *s, const char *name, int n)
{
	struct store_tenant t = { 0 };
	char ifname[16], cidr[32];

	snprintf(t.name, sizeof(t.name), "%s", name);

	snprintf(cidr, sizeof(cidr), "10.0.%d.0/24", n);
	assert_int_equal(addr_prefix_parse(&t.prefix4, cidr), 0);
	snprintf(ifname, sizeof(ifname), "lease%d", n);
	snprintf(t.ifname, sizeof(t.ifname), "%s", ifname);
	snprintf(t.endpoint, sizeof(t.endpoint), "192.0.2.1:%d", 51820 + n);
	t.listen_port = (uint16_t)(51820 + n);
	t.keepalive = 25;
	assert_int_equal(store_tenant_create(s, &t), 0);
}

static int
setup(void **state)
{
	struct fixture *f;
	struct store_options o = { .backend = STORE_BACKEND_POSTGRESQL, .kek = test_kek };
	char sql[128];

	f = calloc(1, sizeof(*f));
	snprintf(f->db, sizeof(f->db), "lease_test_%d_%u", (int)getpid(), n_dbs++);
	snprintf(sql, sizeof(sql), "CREATE DATABASE %s", f->db);
	admin_sql(sql);
	snprintf(f->conn, sizeof(f->conn), "%s dbname=%s", pg_base, f->db);
	if (store_open(&f->s, f->conn, &o) != 0)
		fail_msg("store_open: %s", store_errmsg());
	make_tenant(f->s, "t1", 1);
	make_tenant(f->s, "t2", 2);
	f->a = node_conn(f->conn);
	f->b = node_conn(f->conn);
	f->ca = (struct lease_conf){ .node = "node-a", .lease_ms = 600, .margin_ms = 150 };
	f->cb = (struct lease_conf){ .node = "node-b", .lease_ms = 600, .margin_ms = 150 };
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;
	char sql[128];

	if (f == NULL)
		return 0;
	PQfinish(f->a);
	PQfinish(f->b);
	store_free(f->s);
	snprintf(sql, sizeof(sql), "DROP DATABASE %s WITH (FORCE)", f->db);
	admin_sql(sql);
	free(f);
	return 0;
}

static double
ms_between(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) * 1e3 + (double)(b->tv_nsec - a->tv_nsec) / 1e6;
}

static void
test_conf(void **state)
{
	struct lease_conf c = { .node = "n", .lease_ms = 1000, .margin_ms = 200 };

	(void)state;
	assert_int_equal(lease_conf_check(&c), 0);
	c.margin_ms = 500;
	assert_int_equal(lease_conf_check(&c), -EINVAL);
	c.margin_ms = 0;
	c.node[0] = '\0';
	assert_int_equal(lease_conf_check(&c), -EINVAL);
	memset(c.node, 'x', sizeof(c.node));
	assert_int_equal(lease_conf_check(&c), -EINVAL);
}

/* One holder at a time; a renewal keeps the epoch and moves the deadline. */
static void
test_exclusive(void **state)
{
	struct fixture *f = *state;
	struct lease la, lb, la2;
	struct timespec d0;
	char node[LEASE_NODE_MAX];
	int64_t epoch;

	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la), 0);
	assert_int_equal(la.epoch, 1);
	assert_true(lease_valid(&la, NULL));
	assert_int_equal(lease_acquire(f->b, &f->cb, "t1", &lb), -EBUSY);
	/* another tenant is free */
	assert_int_equal(lease_acquire(f->b, &f->cb, "t2", &lb), 0);
	assert_int_equal(lease_holder(f->b, "t1", node, &epoch), 0);
	assert_string_equal(node, "node-a");
	assert_int_equal(epoch, 1);
	d0 = la.deadline;
	usleep(50 * 1000);
	assert_int_equal(lease_renew(f->a, &f->ca, &la), 0);
	assert_int_equal(la.epoch, 1);
	assert_true(ms_between(&d0, &la.deadline) >= 40);
	/* acquiring what it holds is a renewal: same epoch */
	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la2), 0);
	assert_int_equal(la2.epoch, 1);
	/* no such tenant */
	assert_int_equal(lease_acquire(f->a, &f->ca, "nope", &la2), -ENOENT);
}

/*
 * The holder stops renewing (it died, or lost the database): the other node gets the lease
 * only after the holder's own deadline — the holder's interface is down before anyone else
 * can bring it up. The old holder's renewal then fails.
 */
static void
test_takeover_after_deadline(void **state)
{
	struct fixture *f = *state;
	struct lease la, lb;
	struct timespec start, got;
	int r, tries = 0;

	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la), 0);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		r = lease_acquire(f->b, &f->cb, "t1", &lb);
		clock_gettime(CLOCK_MONOTONIC, &got);
		if (r == 0)
			break;
		assert_int_equal(r, -EBUSY);
		/* while b is refused, a may still be serving... */
		assert_true(ms_between(&start, &got) < 5000);
		tries++;
		usleep(10 * 1000);
	}
	/* ...and once b has it, a's own deadline has passed */
	assert_false(lease_valid(&la, &got));
	print_message("b took over after %.0f ms (%d refusals); a's deadline was %.0f ms before\n",
		ms_between(&start, &got), tries, ms_between(&la.deadline, &got));
	assert_true(tries > 0);
	assert_int_equal(lb.epoch, 2);
	assert_int_equal(lease_renew(f->a, &f->ca, &la), -ESTALE);
	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la), -EBUSY);
	assert_int_equal(lease_renew(f->b, &f->cb, &lb), 0);
}

/* A renewal after its lease expired fails even if nobody took it; a new take bumps epoch. */
static void
test_expired_renewal(void **state)
{
	struct fixture *f = *state;
	struct lease la;

	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la), 0);
	usleep((f->ca.lease_ms + 100) * 1000);
	assert_false(lease_valid(&la, NULL));
	assert_int_equal(lease_renew(f->a, &f->ca, &la), -ESTALE);
	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la), 0);
	assert_int_equal(la.epoch, 2);
}

/* A release hands the tenant over at once. */
static void
test_release(void **state)
{
	struct fixture *f = *state;
	struct lease la, lb;
	char node[LEASE_NODE_MAX];

	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la), 0);
	assert_int_equal(lease_release(f->a, &f->ca, &la), 0);
	assert_false(lease_valid(&la, NULL));
	assert_int_equal(lease_holder(f->a, "t1", node, NULL), -ENOENT);
	assert_int_equal(lease_acquire(f->b, &f->cb, "t1", &lb), 0);
	assert_int_equal(lb.epoch, 2);
	/* releasing what another node holds now changes nothing */
	assert_int_equal(lease_release(f->a, &f->ca, &la), -ESTALE);
	assert_int_equal(lease_holder(f->a, "t1", node, NULL), 0);
	assert_string_equal(node, "node-b");
}

struct racer {
	PGconn *c;
	const struct lease_conf *cf;
	const char *tenant;
	pthread_barrier_t *go;
	int ret;
};

static void *
race_main(void *arg)
{
	struct racer *rc = arg;
	struct lease l;

	pthread_barrier_wait(rc->go);
	rc->ret = lease_acquire(rc->c, rc->cf, rc->tenant, &l);
	return NULL;
}

/* Two nodes asking at the same moment for a free tenant: exactly one gets it, every time. */
static void
test_race(void **state)
{
	struct fixture *f = *state;
	pthread_barrier_t go;
	char tenant[16];

	for (int i = 0; i < 20; i++) {
		struct racer ra = { f->a, &f->ca, tenant, &go, 1 };
		struct racer rb = { f->b, &f->cb, tenant, &go, 1 };
		pthread_t ta, tb;

		snprintf(tenant, sizeof(tenant), "race%d", i);
		make_tenant(f->s, tenant, 10 + i);
		pthread_barrier_init(&go, NULL, 2);
		assert_int_equal(pthread_create(&ta, NULL, race_main, &ra), 0);
		assert_int_equal(pthread_create(&tb, NULL, race_main, &rb), 0);
		pthread_join(ta, NULL);
		pthread_join(tb, NULL);
		pthread_barrier_destroy(&go);
		assert_true((ra.ret == 0 && rb.ret == -EBUSY) || (ra.ret == -EBUSY && rb.ret == 0));
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_conf),
	};
	const struct CMUnitTest tests_pg[] = {
		cmocka_unit_test(test_conf),
		cmocka_unit_test_setup_teardown(test_exclusive, setup, teardown),
		cmocka_unit_test_setup_teardown(test_takeover_after_deadline, setup, teardown),
		cmocka_unit_test_setup_teardown(test_expired_renewal, setup, teardown),
		cmocka_unit_test_setup_teardown(test_release, setup, teardown),
		cmocka_unit_test_setup_teardown(test_race, setup, teardown),
	};

	pg_base = getenv("STORE_TEST_PG");
	if (pg_base != NULL && *pg_base == '\0')
		pg_base = NULL;
	if (pg_base == NULL) {
		/* tests/run.sh runs the rest as unit/test_cluster_lease_pg */
		printf("STORE_TEST_PG not set: only the tests without PostgreSQL\n");
		return cmocka_run_group_tests(tests, NULL, NULL) == 0 ? 0 : 1;
	}
	return cmocka_run_group_tests(tests_pg, NULL, NULL);
}
