// SPDX-License-Identifier: MIT
/*
 * plane_bench: enrolld's WireGuard work at fleet size, through enrolld's own modules (the
 * LMDB store, plane.c, health.c) against real interfaces. Not a test: it prints figures.
 * Run it inside a network namespace of its own (tests/bench/plane_run.sh does).
 *
 *   plane_bench [-d DIR] [-r ROUNDS] [-T PER_TENANT] tick N
 *       N active devices in the store, split over ceil(N / PER_TENANT) tenants (default
 *       50,000 each: wireguard-go holds at most 65,536 peers per interface), each tenant's
 *       interface a wireguard-go started by plane.c and filled by plane_reconcile() (timed).
 *       Then one health tick as enrolld runs it (health_tick(): the store, one read of
 *       every interface, the transitions), ROUNDS times: wall time, this process's CPU, and
 *       the CPU the wireguard-go daemons spent answering. The first tick of a health
 *       monitor (cold: no state in memory yet) is timed apart.
 *
 *   plane_bench [-d DIR] [-r ROUNDS] [-F -i IFNAME] add N
 *       One tenant whose interface holds N peers (the active devices of the store), then
 *       ROUNDS times one more device: store_enroll() (timed apart) and plane_device_sync(),
 *       the call enrolld's enrollment makes to put the peer on the interface. Medians and
 *       maxima. -F: the interface is served by a null daemon in this program (a thread on
 *       the UAPI socket that takes every set and answers get with no peers) over a dummy
 *       link the caller created with the tenant's name (pbF<pid%10000>); this measures
 *       enrolld's side alone at sizes wireguard-go refuses.
 *
 * DIR (default /dev/shm) holds the store and the keys: setting up a million devices
 * durably on disk would measure the disk, and neither the tick nor an add reads it.
 */
#include <errno.h>
#include <ftw.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/wg.h"
#include "common/wgproc.h"
#include "enrolld/enrolld.h"

#define MAX_ROUNDS 101
#define FILL_THREADS 4

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
thread_cpu(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static double
process_cpu(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
		(double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6;
}

/* utime + stime of @pid in seconds, from /proc/PID/stat; 0 if unreadable. */
static double
pid_cpu(pid_t pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (f == NULL)
		return 0;
	p = fgets(buf, sizeof(buf), f);
	fclose(f);
	if (p == NULL || (p = strrchr(buf, ')')) == NULL)
		return 0;
	/* after ") ": state is field 3; utime and stime are fields 14 and 15 */
	if (sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut, &st) != 2)
		return 0;
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static long
maxrss_mb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024;
}

/* What to stop on the way out of a failed run: the wireguard-go processes and the files. */
static struct plane *fail_plane;
static char fail_dir[256];

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
die(const char *what, int r)
{
	fprintf(stderr, "plane_bench: %s: %s %s\n", what, strerror(r < 0 ? -r : r),
		store_errmsg());
	plane_free(fail_plane);
	if (fail_dir[0] != '\0')
		nftw(fail_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	exit(1);
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double
maximum(const double *v, int n)
{
	double m = v[0];

	for (int i = 1; i < n; i++)
		if (v[i] > m)
			m = v[i];
	return m;
}

/* ---- the fleet in the store ---- */

static void
fill(uint8_t out[32], uint8_t tag, uint32_t n)
{
	/* Public keys must look random to the daemon's hash tables: spread the counter. */
	uint64_t x = ((uint64_t)tag << 32 | n) * 0x9e3779b97f4a7c15ULL;

	for (int i = 0; i < 32; i += 8) {
		x ^= x >> 29;
		x *= 0xbf58476d1ce4e5b9ULL;
		memcpy(out + i, &x, 8);
	}
	out[31] = tag;
}

struct filler {
	struct store *s;
	const char *tenant;
	unsigned int tenant_no;
	uint32_t first, count;
	int err;
};

static void *
filler_main(void *arg)
{
	struct filler *f = arg;
	struct store_enroll_req req = { 0 };

	snprintf(req.tenant, sizeof(req.tenant), "%s", f->tenant);
	req.kind = STORE_ATTEST_TPM;
	req.has_token = true;
	fill(req.token_hash, 0x70, f->tenant_no);
	for (uint32_t i = 0; i < f->count; i++) {
		int r;

		fill(req.ek_hash, 0xe0, f->first + i);
		fill(req.wg_pubkey, 0x40, f->first + i);
		r = store_enroll(f->s, &req, NULL);
		if (r < 0) {
			f->err = r;
			break;
		}
	}
	return NULL;
}

/* Tenant @i: 10.(16 i).0.0/12 (a million addresses), listen port 40000 + i. */
static void
make_tenant(struct store *s, struct store_tenant *t, const char *ifname, unsigned int i)
{
	struct store_token tok = { 0 };
	char prefix[32];
	int r;

	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "bench%u", i);
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifname);
	snprintf(t->endpoint, sizeof(t->endpoint), "192.0.2.1:%u", 40000 + i);
	snprintf(prefix, sizeof(prefix), "10.%u.0.0/12", 16 * i);
	if (addr_prefix_parse(&t->prefix4, prefix) < 0)
		die("prefix", EINVAL);
	t->listen_port = (uint16_t)(40000 + i);
	t->keepalive = 25;
	r = store_tenant_create(s, t);
	if (r < 0)
		die("store_tenant_create", r);
	r = store_tenant_get(s, t->name, t);
	if (r < 0)
		die("store_tenant_get", r);
	fill(tok.hash, 0x70, i); /* one token per tenant */
	snprintf(tok.tenant, sizeof(tok.tenant), "%s", t->name);
	tok.uses_left = UINT32_MAX;
	r = store_token_create(s, &tok);
	if (r < 0)
		die("store_token_create", r);
}

/* @count devices of tenant @i with device numbers from @first, by FILL_THREADS threads. */
static void
enroll_many(struct store *s, const struct store_tenant *t, unsigned int i, uint32_t first,
	uint32_t count)
{
	struct filler f[FILL_THREADS];
	pthread_t th[FILL_THREADS];
	uint32_t per = count / FILL_THREADS;

	for (int k = 0; k < FILL_THREADS; k++) {
		f[k] = (struct filler){ .s = s, .tenant = t->name, .tenant_no = i,
			.first = first + per * k, .count = k == FILL_THREADS - 1 ? count - per * k : per };
		if (pthread_create(&th[k], NULL, filler_main, &f[k]) != 0)
			die("pthread_create", EAGAIN);
	}
	for (int k = 0; k < FILL_THREADS; k++) {
		pthread_join(th[k], NULL);
		if (f[k].err < 0)
			die("store_enroll", f[k].err);
	}
}

/* ---- -F: a null UAPI daemon (takes every set, has no peers) ---- */

struct null_daemon {
	int lfd;
	char path[108];
	pid_t pid;
	unsigned long *sets; /* shared with the child */
};

static void
null_serve(struct null_daemon *nd, int fd)
{
	char buf[65536];
	size_t have = 0;
	bool get = false, first = true;
	ssize_t n;

	for (;;) {
		char *nl;

		n = read(fd, buf + have, sizeof(buf) - have);
		if (n <= 0)
			return;
		have += (size_t)n;
		while ((nl = memchr(buf, '\n', have)) != NULL) {
			size_t len = (size_t)(nl - buf);

			if (first)
				get = len == 5 && !memcmp(buf, "get=1", 5);
			first = false;
			memmove(buf, nl + 1, have - len - 1);
			have -= len + 1;
			if (len == 0) {
				const char *reply = get ? "listen_port=0\nerrno=0\n\n" :
							  "errno=0\n\n";

				if (!get)
					__atomic_add_fetch(nd->sets, 1, __ATOMIC_SEQ_CST);
				if (write(fd, reply, strlen(reply)) < 0)
					return;
				first = true;
			}
		}
		if (have == sizeof(buf))
			return;
	}
}

struct null_conn {
	struct null_daemon *nd;
	int fd;
};

static void *
null_conn_main(void *arg)
{
	struct null_conn c = *(struct null_conn *)arg;

	free(arg);
	null_serve(c.nd, c.fd);
	close(c.fd);
	return NULL;
}

/*
 * One thread per connection: plane.c keeps its UAPI connections open (wg_ctl) and may
 * hold one while it opens another; serving them one after the other would hang it.
 */
static void
null_run(struct null_daemon *nd)
{
	int fd;

	while ((fd = accept(nd->lfd, NULL, NULL)) >= 0) {
		struct null_conn *c = malloc(sizeof(*c));
		pthread_attr_t a;
		pthread_t th;

		if (c == NULL)
			_exit(1);
		*c = (struct null_conn){ .nd = nd, .fd = fd };
		pthread_attr_init(&a);
		pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
		if (pthread_create(&th, &a, null_conn_main, c) != 0)
			_exit(1);
		pthread_attr_destroy(&a);
	}
}

static void
null_start(struct null_daemon *nd, const char *uapi_dir, const char *ifname)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	mkdir(uapi_dir, 0755);
	snprintf(nd->path, sizeof(nd->path), "%s/%s.sock", uapi_dir, ifname);
	memcpy(sun.sun_path, nd->path, sizeof(nd->path));
	unlink(nd->path);
	nd->sets = mmap(NULL, sizeof(*nd->sets), PROT_READ | PROT_WRITE,
		MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (nd->sets == MAP_FAILED)
		die("mmap", errno);
	/*
	 * A process, as wireguard-go is, that listens itself (SO_PEERCRED names the process that
	 * called listen()): plane.c adopts whatever serves the socket and sends it SIGTERM when
	 * it is freed, which must not be this program.
	 */
	nd->pid = fork();
	if (nd->pid < 0)
		die("fork", errno);
	if (nd->pid == 0) {
		nd->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (nd->lfd < 0 || bind(nd->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
			listen(nd->lfd, 16) < 0)
			_exit(1);
		null_run(nd);
		_exit(0);
	}
	for (int i = 0; i < 500 && wgproc_sock_pid(nd->path) != nd->pid; i++)
		usleep(10000);
	if (wgproc_sock_pid(nd->path) != nd->pid)
		die("the null daemon did not start", ETIMEDOUT);
}

static void
null_stop(struct null_daemon *nd)
{
	if (kill(nd->pid, SIGTERM) == 0 || errno != ESRCH)
		waitpid(nd->pid, NULL, 0);
	unlink(nd->path);
}

/* ---- the setup both modes share ---- */

struct bench {
	char dir[256];
	struct store *s;
	struct plane *p;
	struct store_tenant *ts;
	unsigned int n_ts;
	pid_t *wg_pids; /* the wireguard-go of each tenant, 0 for the null daemon */
};

static const char *ifname_opt; /* -i */

static void
setup(struct bench *b, const char *base, size_t n, size_t per_tenant, bool null_daemon,
	struct null_daemon *nd)
{
	struct plane_config pc = { .backend = ENROLLD_WG_USERSPACE, .nftables = false };
	char path[300], ifname[IFNAMSIZ];
	double t;
	int r;

	snprintf(b->dir, sizeof(b->dir), "%s/plane_bench.XXXXXX", base);
	if (mkdtemp(b->dir) == NULL)
		die(b->dir, errno);
	snprintf(fail_dir, sizeof(fail_dir), "%s", b->dir);
	snprintf(path, sizeof(path), "%s/db", b->dir);
	r = store_open(&b->s, path, &(struct store_options){ .map_size = UINT64_C(8) << 30,
		.max_batch = 1024 });
	if (r < 0)
		die("store_open", r);
	b->n_ts = (unsigned int)((n + per_tenant - 1) / per_tenant);
	b->ts = calloc(b->n_ts, sizeof(*b->ts));
	b->wg_pids = calloc(b->n_ts, sizeof(*b->wg_pids));
	if (b->ts == NULL || b->wg_pids == NULL)
		die("calloc", ENOMEM);
	t = now();
	for (unsigned int i = 0; i < b->n_ts; i++) {
		size_t first = per_tenant * i, count = n - first < per_tenant ? n - first :
										 per_tenant;

		if (ifname_opt != NULL && i == 0)
			snprintf(ifname, sizeof(ifname), "%s", ifname_opt);
		else
			snprintf(ifname, sizeof(ifname), "pb%c%ut%u", null_daemon ? 'F' : 'w',
				(unsigned int)getpid() % 10000, i % 1000);
		make_tenant(b->s, &b->ts[i], ifname, i);
		enroll_many(b->s, &b->ts[i], i, (uint32_t)first, (uint32_t)count);
	}
	printf("store: %zu devices in %u tenant(s) enrolled in %.1f s\n", n, b->n_ts, now() - t);

	snprintf(path, sizeof(path), "%s/keys", b->dir);
	pc.key_dir = path;
	pc.uapi_dir = WG_UAPI_DEFAULT_DIR;
	if (null_daemon)
		null_start(nd, WG_UAPI_DEFAULT_DIR, b->ts[0].ifname);
	r = plane_new(&b->p, &pc);
	if (r < 0)
		die("plane_new", r);
	fail_plane = b->p;
	t = now();
	r = plane_reconcile(b->p, b->s);
	if (r < 0)
		die("plane_reconcile", r);
	printf("interfaces filled by plane_reconcile: %d peers in %.2f s\n", r, now() - t);
	for (unsigned int i = 0; i < b->n_ts && !null_daemon; i++) {
		char sock[128];

		if (wgproc_sock_path(NULL, b->ts[i].ifname, sock, sizeof(sock)) == 0)
			b->wg_pids[i] = wgproc_sock_pid(sock);
		if (b->wg_pids[i] < 0)
			b->wg_pids[i] = 0;
	}
}

static void
teardown(struct bench *b)
{
	fail_plane = NULL;
	fail_dir[0] = '\0';
	plane_free(b->p);
	store_free(b->s);
	nftw(b->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
	free(b->ts);
	free(b->wg_pids);
}

static double
daemons_cpu(const struct bench *b)
{
	double sum = 0;

	for (unsigned int i = 0; i < b->n_ts; i++)
		if (b->wg_pids[i] > 0)
			sum += pid_cpu(b->wg_pids[i]);
	return sum;
}

/*
 * $PLANE_BENCH_PERF=FILE: record this process with `perf record -g` while the timed part
 * runs (not the setup), into FILE.
 */
static pid_t
perf_start(void)
{
	const char *out = getenv("PLANE_BENCH_PERF");
	char pid[16];
	pid_t child;

	if (out == NULL || out[0] == '\0')
		return 0;
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	child = fork();
	if (child == 0) {
		execlp("perf", "perf", "record", "-q", "-g", "-o", out, "-p", pid, (char *)NULL);
		_exit(127);
	}
	sleep(1); /* let it attach */
	return child;
}

static void
perf_stop(pid_t child)
{
	if (child <= 0)
		return;
	kill(child, SIGINT);
	waitpid(child, NULL, 0);
}

/* ---- tick ---- */

static void
bench_tick(const char *base, size_t n, size_t per_tenant, int rounds)
{
	double wall[MAX_ROUNDS], cpu[MAX_ROUNDS], pcpu[MAX_ROUNDS], dcpu[MAX_ROUNDS];
	struct health_peer hp;
	struct health *h = NULL;
	struct bench b = { 0 };
	double t, c, pc, dc;
	pid_t perf;
	int r;

	setup(&b, base, n, per_tenant, false, NULL);

	/*
	 * health_new() ticks at once in its own thread (cold: nothing in memory); the interval
	 * is long so that it does not tick again while the ticks below are timed.
	 */
	t = now();
	pc = process_cpu();
	dc = daemons_cpu(&b);
	r = health_new(&h, b.s, b.p, 3600, 25);
	if (r < 0)
		die("health_new", r);
	while (health_peer_get(h, 1, &hp) != 0)
		usleep(1000);
	printf("cold tick (first of a new monitor): %.1f ms wall, %.1f ms CPU (process), "
	       "%.1f ms CPU (wireguard-go)\n",
		(now() - t) * 1e3, (process_cpu() - pc) * 1e3, (daemons_cpu(&b) - dc) * 1e3);

	perf = perf_start();
	for (int k = 0; k < rounds; k++) {
		t = now();
		c = thread_cpu();
		pc = process_cpu();
		dc = daemons_cpu(&b);
		r = health_tick(h);
		wall[k] = now() - t;
		cpu[k] = thread_cpu() - c;
		pcpu[k] = process_cpu() - pc;
		dcpu[k] = daemons_cpu(&b) - dc;
		if (r < 0)
			die("health_tick", r);
	}
	perf_stop(perf);
	if (health_peer_get(h, n, &hp) != 0 || !hp.seen) {
		fprintf(stderr, "plane_bench: device %zu was not seen on its interface\n", n);
		exit(1);
	}
	printf("tick N=%zu (%u interfaces), %d rounds, median (max): wall %.1f ms (%.1f), "
	       "CPU tick thread %.1f ms (%.1f), process %.1f ms, wireguard-go %.1f ms\n",
		n, b.n_ts, rounds, median(wall, rounds) * 1e3, maximum(wall, rounds) * 1e3,
		median(cpu, rounds) * 1e3, maximum(cpu, rounds) * 1e3, median(pcpu, rounds) * 1e3,
		median(dcpu, rounds) * 1e3);
	printf("max RSS of this process: %ld MB\n", maxrss_mb());
	health_free(h);
	teardown(&b);
}

/* ---- add one ---- */

static void
bench_add(const char *base, size_t n, int rounds, bool null_daemon)
{
	double enr[MAX_ROUNDS], sync[MAX_ROUNDS], dcpu[MAX_ROUNDS];
	struct null_daemon nd = { 0 };
	struct bench b = { 0 };
	struct store_enroll_req req = { 0 };
	struct store_device d;
	unsigned long sets0;
	pid_t perf;
	double t, dc;
	int r;

	setup(&b, base, n, n, null_daemon, &nd);
	snprintf(req.tenant, sizeof(req.tenant), "%s", b.ts[0].name);
	req.kind = STORE_ATTEST_TPM;
	req.has_token = true;
	fill(req.token_hash, 0x70, 0);
	sets0 = null_daemon ? __atomic_load_n(nd.sets, __ATOMIC_SEQ_CST) : 0;
	perf = perf_start();
	for (int k = 0; k < rounds; k++) {
		const uint8_t *keys[1];

		fill(req.ek_hash, 0xe0, (uint32_t)(n + k));
		fill(req.wg_pubkey, 0x40, (uint32_t)(n + k));
		t = now();
		r = store_enroll(b.s, &req, &d);
		enr[k] = now() - t;
		if (r != STORE_ENROLL_NEW)
			die("store_enroll", r < 0 ? r : EEXIST);
		keys[0] = d.wg_pubkey;
		dc = daemons_cpu(&b);
		t = now();
		r = plane_device_sync(b.p, b.s, &b.ts[0], d.id, keys, 1);
		sync[k] = now() - t;
		dcpu[k] = daemons_cpu(&b) - dc;
		if (r < 0)
			die("plane_device_sync", r);
	}
	perf_stop(perf);
	if (null_daemon && __atomic_load_n(nd.sets, __ATOMIC_SEQ_CST) - sets0 != (unsigned)rounds) {
		fprintf(stderr, "plane_bench: the null daemon saw %lu sets, want %d\n",
			__atomic_load_n(nd.sets, __ATOMIC_SEQ_CST) - sets0, rounds);
		exit(1);
	}
	if (!null_daemon) {
		struct wg_device *dev = NULL;

		/* check: all N + ROUNDS peers are on the interface */
		r = plane_dump(b.p, &b.ts[0], &dev);
		if (r < 0 || dev->n_peers != n + (size_t)rounds) {
			fprintf(stderr, "plane_bench: the interface holds %zu peers, want %zu\n",
				r < 0 ? 0 : dev->n_peers, n + (size_t)rounds);
			exit(1);
		}
		wg_device_free(dev);
	}
	printf("add one to N=%zu%s, %d rounds, median (max): plane_device_sync %.3f ms (%.3f), "
	       "store_enroll %.3f ms (%.3f), wireguard-go CPU %.3f ms\n",
		n, null_daemon ? " (null daemon)" : "", rounds, median(sync, rounds) * 1e3,
		maximum(sync, rounds) * 1e3, median(enr, rounds) * 1e3, maximum(enr, rounds) * 1e3,
		median(dcpu, rounds) * 1e3);
	teardown(&b);
	if (null_daemon)
		null_stop(&nd);
}

int
main(int argc, char **argv)
{
	const char *base = "/dev/shm";
	size_t per_tenant = 50000, n;
	bool null_daemon = false;
	int c, rounds = 5;

	while ((c = getopt(argc, argv, "d:r:T:Fi:")) != -1) {
		switch (c) {
		case 'i':
			ifname_opt = optarg;
			break;
		case 'd':
			base = optarg;
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'T':
			per_tenant = strtoul(optarg, NULL, 10);
			break;
		case 'F':
			null_daemon = true;
			break;
		default:
			goto usage;
		}
	}
	if (argc - optind != 2 || rounds < 1 || rounds > MAX_ROUNDS || per_tenant == 0 ||
		(null_daemon && ifname_opt == NULL) ||
		(ifname_opt != NULL && strnlen(ifname_opt, IFNAMSIZ) == IFNAMSIZ))
		goto usage;
	n = strtoul(argv[optind + 1], NULL, 10);
	if (n == 0 || n > 16000000)
		goto usage;
	log_init(1, "plane_bench");
	if (!strcmp(argv[optind], "tick") && !null_daemon)
		bench_tick(base, n, per_tenant, rounds);
	else if (!strcmp(argv[optind], "add"))
		bench_add(base, n, rounds, null_daemon);
	else
		goto usage;
	return 0;
usage:
	fprintf(stderr, "usage: plane_bench [-d DIR] [-r ROUNDS] [-T PER_TENANT] tick N\n"
			"       plane_bench [-d DIR] [-r ROUNDS] [-F -i IFNAME] add N\n");
	return 2;
}
