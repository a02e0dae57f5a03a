// SPDX-License-Identifier: MIT
/*
 * wg_bench: program N peers into a WireGuard interface and read them back, through our
 * module (common/wg.h) and through wg(8), and print both times.
 *
 *   wg_bench [-n N] [-r ROUNDS] [-w WG] IF_OURS IF_WG
 *   wg_bench -F [-n N] [-r ROUNDS] [-w WG] IFNAME
 *
 * IF_OURS and IF_WG are two fresh interfaces of the same kind: two wireguard-go instances
 * (tests/bench/run.sh) or two kernel links (tests/kernel/run.sh scenario "bench", in a VM).
 * Per tool:
 *   set     N peers (one random public key, one /32 each), replacing all peers:
 *           ours: wg_set_device() with WG_DEVICE_F_REPLACE_PEERS;
 *           wg:   `wg setconf IF FILE` with a generated config, as an operator would;
 *   get     all peers back: ours: wg_get_device(); wg: `wg show IF dump` to a file,
 *           both from IF_OURS, taking turns at going first;
 *   remove  one peer (a revocation) from N: ours: wg_set_device() with one
 *           WG_PEER_F_REMOVE_ME peer; wg: `wg set IF peer KEY remove`.
 *   add     one new peer with its /32 to an interface holding N (an enrollment), ADDS (5)
 *           times per tool, taking turns, median and max: ours: wg_set_device() with one
 *           peer; wg: `wg set IF peer KEY allowed-ips IP/32`.
 * set and get run ROUNDS times (default 3), interleaved, and the medians are reported;
 * within a round the tools take turns at going first (-W: wg(8) goes first in round 1).
 * Preparing the input (our struct, the config file) is timed apart: an operator has it.
 * The read-backs are checked: N peers, the same keys. The wg side runs as a child
 * process, so its times include exec and its own parsing; that is how it is used.
 *
 * -F serves IFNAME from a null daemon inside this program (a thread on
 * /var/run/wireguard/IFNAME.sock that counts the peers it is sent and answers "get" with
 * a prepared N-peer dump in wireguard-go's format). Both tools then talk to it: this
 * measures the clients alone, at sizes wireguard-go refuses (it stops at 65,536 peers).
 *
 * Exit status: 0 done, 1 error, 3 the daemon refused the N-peer set (both tools tried).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <arpa/inet.h>

#include "common/key.h"
#include "common/wg.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static long
maxrss_mb(void)
{
	struct rusage ru;

	getrusage(RUSAGE_SELF, &ru);
	return ru.ru_maxrss / 1024;
}

static void
die(const char *what, int r)
{
	fprintf(stderr, "wg_bench: %s: %s\n", what, strerror(r < 0 ? -r : r));
	exit(1);
}

/* Run argv with stdout to @out (NULL: inherit); returns its exit status. */
static int
run(char *const argv[], const char *out)
{
	pid_t pid;
	int status;

	pid = fork();
	if (pid < 0)
		die("fork", errno);
	if (pid == 0) {
		if (out != NULL) {
			int fd = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0600);

			if (fd < 0 || dup2(fd, 1) < 0)
				_exit(127);
		}
		execvp(argv[0], argv);
		_exit(127);
	}
	if (waitpid(pid, &status, 0) < 0)
		die("waitpid", errno);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static int
cmp_key(const void *a, const void *b)
{
	return memcmp(a, b, WG_KEY_LEN);
}

/* The device read back must hold exactly @want's peer keys. */
static void
check_same_peers(const uint8_t (*want)[WG_KEY_LEN], size_t n, const struct wg_device *got)
{
	uint8_t (*keys)[WG_KEY_LEN];

	if (got->n_peers != n) {
		fprintf(stderr, "wg_bench: read back %zu peers, want %zu\n", got->n_peers, n);
		exit(1);
	}
	keys = malloc(n * WG_KEY_LEN);
	if (keys == NULL)
		die("malloc", ENOMEM);
	for (size_t i = 0; i < n; i++) {
		if (got->peers[i].n_allowedips != 1) {
			fprintf(stderr, "wg_bench: peer %zu has %zu allowed IPs\n", i,
				got->peers[i].n_allowedips);
			exit(1);
		}
		memcpy(keys[i], got->peers[i].public_key, WG_KEY_LEN);
	}
	qsort(keys, n, WG_KEY_LEN, cmp_key);
	if (memcmp(keys, want, n * WG_KEY_LEN) != 0) {
		fprintf(stderr, "wg_bench: peer keys read back differ\n");
		exit(1);
	}
	free(keys);
}

static size_t
count_lines(const char *path)
{
	FILE *f = fopen(path, "r");
	size_t n = 0;
	int c;

	if (f == NULL)
		die(path, errno);
	while ((c = getc(f)) != EOF)
		n += c == '\n';
	fclose(f);
	return n;
}

static void
report(const char *phase, double ours, double wg)
{
	printf("%-8s ours %9.3f s   wg %9.3f s   wg/ours %6.2f\n", phase, ours, wg,
		ours > 0 ? wg / ours : 0.0);
}

/* ---- -F: a null UAPI daemon, to time the clients alone ---- */

struct null_daemon {
	int lfd;
	char path[108];
	pthread_t thread;
	char *dump; /* the "get" reply */
	size_t dump_len;
	size_t last_set_peers; /* public_key lines in the last set */
};

struct line_reader {
	int fd;
	size_t have, start;
	char buf[65536];
};

/* The next line (without '\n') in *ret; -1 at EOF or on a line longer than 4 KB. */
static int
next_line(struct line_reader *lr, char **ret, size_t *ret_len)
{
	for (;;) {
		char *nl = memchr(lr->buf + lr->start, '\n', lr->have - lr->start);
		ssize_t n;

		if (nl != NULL) {
			*ret = lr->buf + lr->start;
			*ret_len = (size_t)(nl - *ret);
			lr->start = (size_t)(nl - lr->buf) + 1;
			return 0;
		}
		memmove(lr->buf, lr->buf + lr->start, lr->have - lr->start);
		lr->have -= lr->start;
		lr->start = 0;
		if (lr->have > 4096)
			return -1;
		n = read(lr->fd, lr->buf + lr->have, sizeof(lr->buf) - lr->have);
		if (n <= 0)
			return -1;
		lr->have += (size_t)n;
	}
}

static void
null_serve(struct null_daemon *nd, int fd)
{
	struct line_reader *lr = calloc(1, sizeof(*lr));
	size_t len, peers = 0;
	char *line;

	if (lr == NULL)
		return;
	lr->fd = fd;
	if (next_line(lr, &line, &len) < 0)
		goto out;
	if (len == 5 && !memcmp(line, "get=1", 5)) {
		if (next_line(lr, &line, &len) < 0 || len != 0)
			goto out;
		if (write(fd, nd->dump, nd->dump_len) != (ssize_t)nd->dump_len)
			goto out;
	} else if (len == 5 && !memcmp(line, "set=1", 5)) {
		while (next_line(lr, &line, &len) == 0 && len > 0)
			peers += len > 11 && !memcmp(line, "public_key=", 11);
		__atomic_store_n(&nd->last_set_peers, peers, __ATOMIC_SEQ_CST);
		if (write(fd, "errno=0\n\n", 9) != 9)
			goto out;
	}
out:
	explicit_bzero(lr, sizeof(*lr));
	free(lr);
}

static void *
null_run(void *arg)
{
	struct null_daemon *nd = arg;
	int fd;

	/* shutdown() of the listening socket ends accept() */
	while ((fd = accept(nd->lfd, NULL, NULL)) >= 0) {
		null_serve(nd, fd);
		close(fd);
	}
	return NULL;
}

/* The dump wireguard-go would print for these peers (interface down, no traffic). */
static void
null_build_dump(struct null_daemon *nd, const uint8_t (*keys)[WG_KEY_LEN], size_t n)
{
	static const char hex[] = "0123456789abcdef";
	size_t cap = 400 * n + 64, len = 0;
	char *d = malloc(cap);

	if (d == NULL)
		die("malloc", ENOMEM);
	len += (size_t)sprintf(d + len, "listen_port=0\n");
	for (size_t i = 0; i < n; i++) {
		uint32_t a = 0x0a000000 + (uint32_t)i + 1;

		len += (size_t)sprintf(d + len, "public_key=");
		for (int j = 0; j < WG_KEY_LEN; j++) {
			d[len++] = hex[keys[i][j] >> 4];
			d[len++] = hex[keys[i][j] & 15];
		}
		len += (size_t)sprintf(d + len, "\npreshared_key=%064d\nprotocol_version=1\n"
			"last_handshake_time_sec=0\nlast_handshake_time_nsec=0\ntx_bytes=0\n"
			"rx_bytes=0\npersistent_keepalive_interval=0\nallowed_ip=%u.%u.%u.%u/32\n", 0,
			a >> 24, (a >> 16) & 255, (a >> 8) & 255, a & 255);
	}
	len += (size_t)sprintf(d + len, "errno=0\n\n");
	nd->dump = d;
	nd->dump_len = len;
}

static void
null_start(struct null_daemon *nd, const char *ifname)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	mkdir(WG_UAPI_DEFAULT_DIR, 0755);
	snprintf(nd->path, sizeof(nd->path), "%s/%s.sock", WG_UAPI_DEFAULT_DIR, ifname);
	memcpy(sun.sun_path, nd->path, sizeof(nd->path));
	nd->lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (nd->lfd < 0 || bind(nd->lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
		listen(nd->lfd, 16) < 0)
		die(nd->path, errno);
	if (pthread_create(&nd->thread, NULL, null_run, nd) != 0)
		die("pthread_create", EAGAIN);
}

static void
null_stop(struct null_daemon *nd)
{
	shutdown(nd->lfd, SHUT_RDWR);
	pthread_join(nd->thread, NULL);
	close(nd->lfd);
	unlink(nd->path);
	free(nd->dump);
}

/* With the null daemon: did the last set carry @want peers? */
static void
null_check_set(struct null_daemon *nd, size_t want)
{
	size_t got;

	if (nd == NULL)
		return;
	got = __atomic_load_n(&nd->last_set_peers, __ATOMIC_SEQ_CST);
	if (got != want) {
		fprintf(stderr, "wg_bench: the null daemon received %zu peers, want %zu\n", got,
			want);
		exit(1);
	}
}

/* Median of @n timings (sorts them). */
static double
median(double *v, int n)
{
	for (int i = 1; i < n; i++)
		for (int j = i; j > 0 && v[j - 1] > v[j]; j--) {
			double x = v[j];

			v[j] = v[j - 1];
			v[j - 1] = x;
		}
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

#define MAX_ROUNDS 15
#define ADDS 5
#define WG_GO_MAX_PEERS 65536 /* wireguard-go's MaxPeers (1 << 16) */

int
main(int argc, char **argv)
{
	const char *wg = "wg", *uapi_dir = NULL, *if_ours, *if_wg;
	char conf[] = "/tmp/wg_bench.conf.XXXXXX", dump[] = "/tmp/wg_bench.dump.XXXXXX";
	double t, t_build, t_conf, t_rm, t_wgrm, t_add[ADDS], t_wgadd[ADDS], max_add, max_wgadd;
	double t_set[MAX_ROUNDS], t_get[MAX_ROUNDS], t_setconf[MAX_ROUNDS], t_show[MAX_ROUNDS];
	uint8_t (*keys)[WG_KEY_LEN] = NULL, priv[WG_KEY_LEN];
	char b64[WG_KEY_B64_LEN], ip[INET_ADDRSTRLEN + 4];
	struct wg_device *dev = NULL, *got = NULL, *rm = NULL, *add = NULL;
	struct null_daemon *nd = NULL;
	struct wg_ctl *ctl = NULL;
	struct wg_peer *peer;
	size_t n = 10000, lines;
	bool null_mode = false;
	long rss_before, conf_kb;
	int c, r, fd, rounds = 3, wg_first = 0;
	enum wg_backend backend;
	FILE *f;

	while ((c = getopt(argc, argv, "FWn:r:w:d:")) != -1) {
		switch (c) {
		case 'W':
			wg_first = 1;
			break;
		case 'F':
			null_mode = true;
			break;
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 'r':
			rounds = atoi(optarg);
			break;
		case 'w':
			wg = optarg;
			break;
		case 'd':
			uapi_dir = optarg;
			break;
		default:
			goto usage;
		}
	}
	if (argc - optind != (null_mode ? 1 : 2) || n == 0 || n > 1 << 24 || rounds < 1 ||
		rounds > MAX_ROUNDS || (null_mode && uapi_dir != NULL))
		goto usage;
	if_ours = argv[optind];
	if_wg = argv[optind + (null_mode ? 0 : 1)];

	/* N distinct random public keys, kept sorted to check the read-backs. */
	keys = malloc(n * WG_KEY_LEN);
	if (keys == NULL)
		die("malloc", ENOMEM);
	if (getrandom(keys, n * WG_KEY_LEN, 0) != (ssize_t)(n * WG_KEY_LEN))
		die("getrandom", errno);
	qsort(keys, n, WG_KEY_LEN, cmp_key);
	r = key_generate_private(priv);
	if (r < 0)
		die("key", r);

	if (null_mode) {
		nd = calloc(1, sizeof(*nd));
		if (nd == NULL)
			die("calloc", ENOMEM);
		null_build_dump(nd, (const uint8_t (*)[WG_KEY_LEN])keys, n);
		null_start(nd, if_ours);
	}
	if ((r = wg_ctl_new(&ctl)) < 0 || (uapi_dir && (r = wg_ctl_set_uapi_dir(ctl, uapi_dir)) < 0))
		die("wg_ctl_new", r);
	backend = wg_ctl_backend_of(ctl, if_ours);
	if (backend != wg_ctl_backend_of(ctl, if_wg) ||
		(backend != WG_BACKEND_UAPI && backend != WG_BACKEND_KERNEL)) {
		fprintf(stderr, "wg_bench: %s and %s must be interfaces of one kind (both "
			"userspace or both kernel)\n", if_ours, if_wg);
		return 1;
	}
	printf("backend: %s\n", backend == WG_BACKEND_UAPI ? "userspace (UAPI)" :
		"kernel (generic netlink)");

	/* ---- the inputs: our struct, wg's config file ---- */
	rss_before = maxrss_mb();
	t = now();
	if ((r = wg_device_new(&dev, if_ours)) < 0)
		die("wg_device_new", r);
	memcpy(dev->private_key, priv, WG_KEY_LEN);
	dev->flags = WG_DEVICE_F_HAS_PRIVATE_KEY | WG_DEVICE_F_REPLACE_PEERS;
	for (size_t i = 0; i < n; i++) {
		struct in_addr a = { htonl(0x0a000000 + (uint32_t)i + 1) };

		if ((r = wg_device_add_peer(dev, &peer)) < 0 ||
			(r = wg_peer_add_allowedip(peer, AF_INET, &a, 32)) < 0)
			die("build", r);
		memcpy(peer->public_key, keys[i], WG_KEY_LEN);
		peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REPLACE_ALLOWEDIPS;
	}
	t_build = now() - t;

	t = now();
	fd = mkstemp(conf);
	if (fd < 0 || (f = fdopen(fd, "w")) == NULL)
		die("mkstemp", errno);
	key_to_base64(b64, priv);
	fprintf(f, "[Interface]\nPrivateKey = %s\n", b64);
	for (size_t i = 0; i < n; i++) {
		struct in_addr a = { htonl(0x0a000000 + (uint32_t)i + 1) };

		key_to_base64(b64, keys[i]);
		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		fprintf(f, "\n[Peer]\nPublicKey = %s\nAllowedIPs = %s/32\n", b64, ip);
	}
	conf_kb = ftell(f) / 1024;
	if (fclose(f) != 0)
		die("write config", errno);
	explicit_bzero(b64, sizeof(b64));
	t_conf = now() - t;
	fd = mkstemp(dump);
	if (fd < 0)
		die("mkstemp", errno);
	close(fd);

	/*
	 * Interleaved rounds, so neither tool always runs right after the other's work (the
	 * daemons' garbage collector runs in the background). Each set replaces all N peers.
	 */
	for (int k = 0; k < rounds; k++) {
		/* the sets take turns at going first too (-W: wg(8) in the first round) */
		for (int turn = 0; turn < 2; turn++) {
			if ((turn == 0) == ((k + wg_first) % 2 == 0)) {
				t = now();
				r = wg_set_device(ctl, dev);
				t_set[k] = now() - t;
				if (r < 0) {
					/* Say how long the refusal took, then show wg(8) meets
					 * the same wall. */
					printf("set: ours refused after %.3f s: %s (%s)\n", t_set[k],
						strerror(-r), wg_ctl_last_error(ctl));
					t = now();
					r = run((char *const[]){ (char *)wg, "setconf", (char *)if_wg,
							conf, NULL }, NULL);
					printf("set: wg setconf exited %d after %.3f s\n", r, now() - t);
					return 3;
				}
			} else {
				t = now();
				r = run((char *const[]){ (char *)wg, "setconf", (char *)if_wg, conf,
						NULL }, NULL);
				t_setconf[k] = now() - t;
				if (r != 0) {
					fprintf(stderr, "wg_bench: wg setconf exited %d\n", r);
					return 1;
				}
			}
			null_check_set(nd, n);
		}
		/*
		 * Both tools read the same interface (ours), in turns: the first read of a
		 * round pays for the daemon's garbage collection after the sets.
		 */
		for (int turn = 0; turn < 2; turn++) {
			if ((turn == 0) == (k % 2 == 0)) {
				t = now();
				r = wg_get_device(ctl, if_ours, &got);
				t_get[k] = now() - t;
				if (r < 0) {
					fprintf(stderr, "wg_bench: get: %s %s\n", strerror(-r),
						wg_ctl_last_error(ctl));
					return 1;
				}
				check_same_peers((const uint8_t (*)[WG_KEY_LEN])keys, n, got);
				wg_device_free(got);
				got = NULL;
			} else {
				t = now();
				r = run((char *const[]){ (char *)wg, "show", (char *)if_ours, "dump",
						NULL }, dump);
				t_show[k] = now() - t;
				lines = count_lines(dump);
				if (r != 0 || lines != n + 1) {
					fprintf(stderr, "wg_bench: wg show dump exited %d with %zu "
						"lines\n", r, lines);
					return 1;
				}
			}
		}
	}
	printf("ours: max RSS of this process %ld MB (%ld MB before building the device)\n",
		maxrss_mb(), rss_before);
	wg_device_free(dev);

	/* wg's interface read through our module: the same content, checked the same way */
	r = wg_get_device(ctl, if_wg, &got);
	if (r < 0)
		die("get (wg's interface)", r);
	check_same_peers((const uint8_t (*)[WG_KEY_LEN])keys, n, got);
	wg_device_free(got);

	/* revoke one peer (the middle one) from N */
	if ((r = wg_device_new(&rm, if_ours)) < 0 || (r = wg_device_add_peer(rm, &peer)) < 0)
		die("wg_device_new", r);
	memcpy(peer->public_key, keys[n / 2], WG_KEY_LEN);
	peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REMOVE_ME;
	t = now();
	r = wg_set_device(ctl, rm);
	t_rm = now() - t;
	if (r < 0)
		die("remove", r);
	null_check_set(nd, 1);
	key_to_base64(b64, keys[n / 2]);
	t = now();
	r = run((char *const[]){ (char *)wg, "set", (char *)if_wg, "peer", b64, "remove", NULL },
		NULL);
	t_wgrm = now() - t;
	if (r != 0)
		die("wg set remove", EIO);
	null_check_set(nd, 1);

	/*
	 * wireguard-go holds at most 65,536 peers (MaxPeers): at N = 65,536 the adds below
	 * would be refused, so first make room in both interfaces, untimed.
	 */
	if (backend == WG_BACKEND_UAPI && nd == NULL && n - 1 + ADDS > WG_GO_MAX_PEERS) {
		size_t extra = n - 1 + ADDS - WG_GO_MAX_PEERS;

		wg_device_free(rm);
		for (int i = 0; i < 2; i++) {
			if ((r = wg_device_new(&rm, i ? if_wg : if_ours)) < 0)
				die("wg_device_new", r);
			for (size_t j = 0; j < extra; j++) {
				if ((r = wg_device_add_peer(rm, &peer)) < 0)
					die("wg_device_add_peer", r);
				memcpy(peer->public_key, keys[(n / 2 + 1 + j) % n], WG_KEY_LEN);
				peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REMOVE_ME;
			}
			r = wg_set_device(ctl, rm);
			wg_device_free(rm);
			rm = NULL;
			if (r < 0)
				die("make room", r);
		}
		printf("add1: %zu more peers removed first (wireguard-go holds at most %d)\n",
			extra, WG_GO_MAX_PEERS);
	}

	/* enroll ADDS new peers one at a time into each interface holding N, in turns */
	for (int k = 0; k < ADDS; k++) {
		uint8_t nk[WG_KEY_LEN];
		struct in_addr a = { htonl(0x0b000000 + (uint32_t)k + 1) };

		if (getrandom(nk, sizeof(nk), 0) != (ssize_t)sizeof(nk))
			die("getrandom", errno);
		inet_ntop(AF_INET, &a, ip, sizeof(ip));
		strcat(ip, "/32");
		key_to_base64(b64, nk);
		for (int turn = 0; turn < 2; turn++) {
			if ((turn == 0) == (k % 2 == 0)) {
				if ((r = wg_device_new(&add, if_ours)) < 0 ||
					(r = wg_device_add_peer(add, &peer)) < 0 ||
					(r = wg_peer_add_allowedip(peer, AF_INET, &a, 32)) < 0)
					die("build add", r);
				memcpy(peer->public_key, nk, WG_KEY_LEN);
				peer->flags = WG_PEER_F_HAS_PUBLIC_KEY |
					WG_PEER_F_REPLACE_ALLOWEDIPS;
				t = now();
				r = wg_set_device(ctl, add);
				t_add[k] = now() - t;
				wg_device_free(add);
				add = NULL;
				if (r < 0)
					die("add", r);
				null_check_set(nd, 1);
			} else {
				t = now();
				r = run((char *const[]){ (char *)wg, "set", (char *)if_wg, "peer", b64,
						"allowed-ips", ip, NULL }, NULL);
				t_wgadd[k] = now() - t;
				if (r != 0)
					die("wg set add", EIO);
				null_check_set(nd, 1);
			}
		}
	}
	max_add = max_wgadd = 0;
	for (int k = 0; k < ADDS; k++) {
		max_add = t_add[k] > max_add ? t_add[k] : max_add;
		max_wgadd = t_wgadd[k] > max_wgadd ? t_wgadd[k] : max_wgadd;
	}

	printf("N=%zu peers, %d rounds, medians; inputs: ours %.3f s (struct), wg %.3f s "
		"(config file, %ld KB)\n", n, rounds, t_build, t_conf, conf_kb);
	report("set", median(t_set, rounds), median(t_setconf, rounds));
	report("get", median(t_get, rounds), median(t_show, rounds));
	report("remove1", t_rm, t_wgrm);
	report("add1", median(t_add, ADDS), median(t_wgadd, ADDS));
	printf("add1 in ms: median ours %.3f  wg %.3f, max ours %.3f  wg %.3f (of %d each)\n",
		median(t_add, ADDS) * 1e3, median(t_wgadd, ADDS) * 1e3, max_add * 1e3,
		max_wgadd * 1e3, ADDS);
	unlink(conf);
	unlink(dump);
	explicit_bzero(priv, sizeof(priv));
	free(keys);
	wg_device_free(rm);
	wg_ctl_free(ctl);
	if (nd != NULL) {
		null_stop(nd);
		free(nd);
	}
	return 0;
usage:
	fprintf(stderr, "usage: wg_bench [-W] [-n N] [-r ROUNDS] [-w WG] [-d UAPI_DIR] IF_OURS IF_WG\n"
		"       wg_bench -F [-W] [-n N] [-r ROUNDS] [-w WG] IFNAME\n");
	return 2;
}
