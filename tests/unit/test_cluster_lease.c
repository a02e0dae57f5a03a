// SPDX-License-Identifier: MIT
/*
 * Tenant leases (enrolld/cluster/lease.h) against a real PostgreSQL: STORE_TEST_PG is its
 * libpq connection string (tests/run.sh starts a throw-away server, tests/pg_lib.sh);
 * without it only the tests that need no database run. Two "nodes" are two connections
 * with two names.
 */
#include <errno.h>
#include <pthread.h>
#include <poll.h>
#include <signal.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "enrolld/cluster/lease.h"
#include "enrolld/cluster/owner.h"
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
	char cidr[32];

	snprintf(t.name, sizeof(t.name), "%s", name);

	snprintf(cidr, sizeof(cidr), "10.0.%d.0/24", n);
	assert_int_equal(addr_prefix_parse(&t.prefix4, cidr), 0);
	snprintf(t.ifname, sizeof(t.ifname), "lease%u", (unsigned int)n % 1000);
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

	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la, NULL), 0);
	assert_int_equal(la.epoch, 1);
	assert_true(lease_valid(&la, NULL));
	assert_int_equal(lease_acquire(f->b, &f->cb, "t1", &lb, NULL), -EBUSY);
	/* another tenant is free */
	assert_int_equal(lease_acquire(f->b, &f->cb, "t2", &lb, NULL), 0);
	assert_int_equal(lease_holder(f->b, "t1", node, &epoch, NULL), 0);
	assert_string_equal(node, "node-a");
	assert_int_equal(epoch, 1);
	d0 = la.deadline;
	usleep(50 * 1000);
	assert_int_equal(lease_renew(f->a, &f->ca, &la, NULL), 0);
	assert_int_equal(la.epoch, 1);
	assert_true(ms_between(&d0, &la.deadline) >= 40);
	/* acquiring what it holds is a renewal: same epoch */
	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la2, NULL), 0);
	assert_int_equal(la2.epoch, 1);
	/* no such tenant */
	assert_int_equal(lease_acquire(f->a, &f->ca, "nope", &la2, NULL), -ENOENT);
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

	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la, NULL), 0);
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		r = lease_acquire(f->b, &f->cb, "t1", &lb, NULL);
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
	assert_int_equal(lease_renew(f->a, &f->ca, &la, NULL), -ESTALE);
	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la, NULL), -EBUSY);
	assert_int_equal(lease_renew(f->b, &f->cb, &lb, NULL), 0);
}

/* A renewal after its lease expired fails even if nobody took it; a new take bumps epoch. */
static void
test_expired_renewal(void **state)
{
	struct fixture *f = *state;
	struct lease la;

	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la, NULL), 0);
	usleep((f->ca.lease_ms + 100) * 1000);
	assert_false(lease_valid(&la, NULL));
	assert_int_equal(lease_renew(f->a, &f->ca, &la, NULL), -ESTALE);
	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la, NULL), 0);
	assert_int_equal(la.epoch, 2);
}

/* A release hands the tenant over at once. */
static void
test_release(void **state)
{
	struct fixture *f = *state;
	struct lease la, lb;
	char node[LEASE_NODE_MAX];

	assert_int_equal(lease_acquire(f->a, &f->ca, "t1", &la, NULL), 0);
	assert_int_equal(lease_release(f->a, &f->ca, &la, NULL), 0);
	assert_false(lease_valid(&la, NULL));
	assert_int_equal(lease_holder(f->a, "t1", node, NULL, NULL), -ENOENT);
	assert_int_equal(lease_acquire(f->b, &f->cb, "t1", &lb, NULL), 0);
	assert_int_equal(lb.epoch, 2);
	/* releasing what another node holds now changes nothing */
	assert_int_equal(lease_release(f->a, &f->ca, &la, NULL), -ESTALE);
	assert_int_equal(lease_holder(f->a, "t1", node, NULL, NULL), 0);
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
	rc->ret = lease_acquire(rc->c, rc->cf, rc->tenant, &l, NULL);
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

/*
 * A cuttable path to the database, as a network partition would be: a unix-socket proxy in
 * front of the server's socket. Cut, it forwards nothing in either direction and holds new
 * connections without answering — the server still runs every statement it has received
 * (and commits it), only the node never hears back.
 */
struct proxy {
	char dir[64];    /* the node's "host=" */
	char target[108]; /* sun_path */
	int lfd;
	bool cut, stop; /* atomics */
	pthread_t thread;
};

static int
unix_connect(const char path[108])
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	if (fd >= 0 && connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

static void *
proxy_main(void *arg)
{
	struct proxy *p = arg;
	int pairs[64][2], n = 0;

	while (!__atomic_load_n(&p->stop, __ATOMIC_RELAXED)) {
		struct pollfd pfd[129];
		bool cut = __atomic_load_n(&p->cut, __ATOMIC_RELAXED);
		int k = 0;

		pfd[k++] = (struct pollfd){ .fd = p->lfd, .events = POLLIN };
		for (int i = 0; i < n && !cut; i++) {
			pfd[k++] = (struct pollfd){ .fd = pairs[i][0], .events = POLLIN };
			pfd[k++] = (struct pollfd){ .fd = pairs[i][1], .events = POLLIN };
		}
		if (poll(pfd, (nfds_t)k, 20) <= 0)
			continue;
		if ((pfd[0].revents & POLLIN) && n < 64) {
			int cfd = accept4(p->lfd, NULL, NULL, SOCK_CLOEXEC);
			int sfd = cfd >= 0 ? unix_connect(p->target) : -1;

			if (sfd >= 0) {
				pairs[n][0] = cfd;
				pairs[n++][1] = sfd;
			} else if (cfd >= 0) {
				close(cfd);
			}
		}
		for (int i = 0, j = 1; i < n && !cut; i++, j += 2) {
			for (int d = 0; d < 2; d++) {
				char buf[8192];
				ssize_t r;

				if (!(pfd[j + d].revents & (POLLIN | POLLHUP | POLLERR)))
					continue;
				r = read(pairs[i][d], buf, sizeof(buf));
				if (r <= 0 || write(pairs[i][1 - d], buf, (size_t)r) != r) {
					shutdown(pairs[i][1 - d], SHUT_RDWR);
					shutdown(pairs[i][d], SHUT_RDWR);
				}
			}
		}
	}
	for (int i = 0; i < n; i++) {
		close(pairs[i][0]);
		close(pairs[i][1]);
	}
	return NULL;
}

static void
proxy_start(struct proxy *p, const char *server_dir)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	snprintf(p->dir, sizeof(p->dir), "/tmp/lease-proxy.XXXXXX");
	assert_non_null(mkdtemp(p->dir));
	snprintf(p->target, sizeof(p->target), "%s/.s.PGSQL.5432", server_dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s/.s.PGSQL.5432", p->dir);
	p->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(p->lfd >= 0);
	assert_int_equal(bind(p->lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(p->lfd, 16), 0);
	assert_int_equal(pthread_create(&p->thread, NULL, proxy_main, p), 0);
}

static void
proxy_stop(struct proxy *p)
{
	char path[128];

	__atomic_store_n(&p->stop, true, __ATOMIC_RELAXED);
	pthread_join(p->thread, NULL);
	close(p->lfd);
	snprintf(path, sizeof(path), "%s/.s.PGSQL.5432", p->dir);
	unlink(path);
	rmdir(p->dir);
}

/* ---- the ownership loop: two nodes, callbacks that log every up and down ---------------- */

#define LOG_MAX 4096

struct ev {
	char node;
	bool up;
	char tenant[STORE_NAME_MAX];
	struct timespec at;
};

static struct {
	pthread_mutex_t lock;
	struct ev ev[LOG_MAX];
	size_t n;
} evlog = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void
log_ev(char node, bool up, const char *tenant)
{
	pthread_mutex_lock(&evlog.lock);
	if (evlog.n < LOG_MAX) {
		struct ev *e = &evlog.ev[evlog.n++];

		e->node = node;
		e->up = up;
		snprintf(e->tenant, sizeof(e->tenant), "%s", tenant);
		clock_gettime(CLOCK_MONOTONIC, &e->at);
	}
	pthread_mutex_unlock(&evlog.lock);
}

static int
up_cb(void *ctx, const char *tenant, int64_t epoch)
{
	(void)epoch;
	log_ev(*(const char *)ctx, true, tenant);
	return 0;
}

static void
down_cb(void *ctx, const char *tenant)
{
	log_ev(*(const char *)ctx, false, tenant);
}

/* Replayed in order: never two nodes up for one tenant; returns how many ups it saw. */
static size_t
check_never_two(void)
{
	size_t ups = 0;

	pthread_mutex_lock(&evlog.lock);
	for (size_t i = 0; i < evlog.n; i++) {
		const struct ev *e = &evlog.ev[i];
		char holder = 0;

		if (!e->up)
			continue;
		ups++;
		/* who is up for this tenant just before this up */
		for (size_t j = 0; j < i; j++) {
			const struct ev *p = &evlog.ev[j];

			if (strcmp(p->tenant, e->tenant) != 0)
				continue;
			if (p->up)
				holder = p->node;
			else if (holder == p->node)
				holder = 0;
		}
		if (holder != 0)
			fail_msg("tenant %s: node %c up while node %c still was", e->tenant,
				e->node, holder);
	}
	pthread_mutex_unlock(&evlog.lock);
	return ups;
}

static bool
wait_for(struct owner *o, size_t n, int ms)
{
	for (int i = 0; i < ms / 10; i++) {
		if (owner_count(o) == n)
			return true;
		usleep(10 * 1000);
	}
	return owner_count(o) == n;
}

static struct owner *
start_node(const char *conn, char *name)
{
	struct owner_conf oc = { .tick_ms = 150 };
	struct owner_ops ops = { .up = up_cb, .down = down_cb, .ctx = name };
	struct owner *o = NULL;

	snprintf(oc.lease.node, sizeof(oc.lease.node), "node-%c", *name);
	oc.lease.lease_ms = 900;
	oc.lease.margin_ms = 250;
	assert_int_equal(owner_start(&o, conn, &oc, &ops), 0);
	return o;
}

static void
more_tenants(struct fixture *f)
{
	make_tenant(f->s, "t3", 3);
	make_tenant(f->s, "t4", 4);
	make_tenant(f->s, "t5", 5);
	make_tenant(f->s, "t6", 6);
	evlog.n = 0;
}

/* Every tenant on exactly one node; a clean stop hands them over to the other. */
static void
test_owner_share(void **state)
{
	struct fixture *f = *state;
	static char a = 'a', b = 'b';
	struct owner *oa, *ob;

	more_tenants(f);
	oa = start_node(f->conn, &a);
	ob = start_node(f->conn, &b);
	for (int i = 0; i < 500 && owner_count(oa) + owner_count(ob) != 6; i++)
		usleep(10 * 1000);
	assert_int_equal(owner_count(oa) + owner_count(ob), 6);
	print_message("node a holds %zu, node b %zu\n", owner_count(oa), owner_count(ob));
	owner_stop(oa);
	assert_true(wait_for(ob, 6, 3000));
	assert_true(check_never_two() >= 6);
	owner_stop(ob);
}

/*
 * A bring-up that fails later, on another thread: owner_give_back() makes the loop down
 * and release the tenant at its next tick (the other node takes it then, not node a again:
 * it cools down), and ignores a tenant it does not hold.
 */
static void
test_owner_give_back(void **state)
{
	struct fixture *f = *state;
	static char a = 'a', b = 'b';
	struct owner *oa, *ob;
	bool b_took = false;

	evlog.n = 0;
	oa = start_node(f->conn, &a);
	assert_true(wait_for(oa, 2, 3000));
	ob = start_node(f->conn, &b);
	owner_give_back(oa, "nope");
	owner_give_back(oa, "t1");
	assert_true(wait_for(oa, 1, 3000));
	assert_true(wait_for(ob, 1, 3000));
	pthread_mutex_lock(&evlog.lock);
	for (size_t i = 0; i < evlog.n; i++)
		if (evlog.ev[i].node == 'b' && evlog.ev[i].up &&
		    strcmp(evlog.ev[i].tenant, "t1") == 0)
			b_took = true;
	pthread_mutex_unlock(&evlog.lock);
	assert_true(b_took);
	/* still one each a while later: a does not take t1 back while it cools down */
	usleep(600 * 1000);
	assert_int_equal(owner_count(oa), 1);
	assert_int_equal(owner_count(ob), 1);
	assert_true(check_never_two() >= 3);
	owner_stop(ob);
	owner_stop(oa);
}

/*
 * Node a loses the database (the path to it is cut: statements reach the server and commit,
 * answers never come back, new connections hang). It must bring every tenant down before
 * node b brings it up.
 */
static void
test_owner_partition(void **state)
{
	struct fixture *f = *state;
	static char a = 'a', b = 'b';
	struct proxy px = { 0 };
	struct timespec cut, now;
	struct owner *oa, *ob;
	char conn_a[1200], server_dir[80];
	const char *h = strstr(pg_base, "host=");

	assert_non_null(h);
	assert_int_equal(sscanf(h + 5, "%79s", server_dir), 1);
	proxy_start(&px, server_dir);
	snprintf(conn_a, sizeof(conn_a), "%s host=%s connect_timeout=2", f->conn, px.dir);
	more_tenants(f);
	oa = start_node(conn_a, &a);
	assert_true(wait_for(oa, 6, 5000));
	ob = start_node(f->conn, &b);
	usleep(500 * 1000);
	assert_int_equal(owner_count(ob), 0);
	clock_gettime(CLOCK_MONOTONIC, &cut);
	__atomic_store_n(&px.cut, true, __ATOMIC_RELAXED);
	assert_true(wait_for(ob, 6, 5000));
	clock_gettime(CLOCK_MONOTONIC, &now);
	assert_int_equal(owner_count(oa), 0);
	print_message("node b had all 6 tenants %.0f ms after node a was cut off\n",
		ms_between(&cut, &now));
	/* and for each, a's down came before b's up */
	assert_int_equal(check_never_two(), 12);
	owner_stop(ob);
	owner_stop(oa);
	proxy_stop(&px);
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
		cmocka_unit_test_setup_teardown(test_owner_share, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_give_back, setup, teardown),
		cmocka_unit_test_setup_teardown(test_owner_partition, setup, teardown),
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
