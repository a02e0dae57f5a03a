// SPDX-License-Identifier: MIT
/*
 * A stand-in for wireguard-go that holds any number of peers (wireguard-go refuses more than
 * 65,536 per interface) and moves no packets: the 1,000,000-device fleet benchmark
 * (tests/bench/fleet_run.sh) gives it to enrolld as [wireguard] wireguard_go. Not a test.
 *
 *   fleet_wgd IFNAME        (spawned by enrolld as wireguard-go is: WG_PROCESS_FOREGROUND=1)
 *
 * Environment: FLEET_WGD_DIR, the UAPI socket directory (enrolld's [wireguard] uapi_dir);
 * FLEET_WGD_LOG, a file to which one line per request is appended:
 *   <unix time> <get|set> <peers in the message> <seconds> <peers held>
 *
 * It creates the TUN link IFNAME (enrolld's rtnetlink code gives it an address, a route and
 * brings it up, as with wireguard-go), listens on <dir>/IFNAME.sock and speaks the UAPI
 * (https://www.wireguard.com/xplatform/): a set applies replace_peers, public_key,
 * replace_allowed_ips, allowed_ip, remove and update_only to an in-memory table of peers
 * (a key and up to two allowed IPs each; everything else is taken and forgotten); a get
 * answers every peer in wireguard-go's format (no handshakes, zero counters). One thread
 * per connection, one lock over the table. SIGTERM: remove the socket and exit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct peer {
	uint8_t key[32];
	uint8_t used; /* slot state: 0 empty, 1 live, 2 deleted */
	uint8_t n_ips;
	uint8_t fam[2]; /* AF_INET / AF_INET6 */
	uint8_t cidr[2];
	uint8_t ip[2][16];
};

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static struct peer *tab;
static size_t cap, n_live, n_used; /* n_used: live + deleted slots */
static char sock_path[108];
static FILE *log_fp;
static uint8_t priv[32];
static unsigned int listen_port;

static void
die(const char *what)
{
	fprintf(stderr, "fleet_wgd: %s: %s\n", what, strerror(errno));
	if (sock_path[0])
		unlink(sock_path);
	exit(1);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static size_t
hash_key(const uint8_t k[32])
{
	uint64_t h;

	memcpy(&h, k, 8); /* keys are random */
	return (size_t)(h * 0x9e3779b97f4a7c15ULL);
}

/* The slot of @k, or the empty slot where it would go. */
static struct peer *
slot(const uint8_t k[32])
{
	size_t i = hash_key(k) & (cap - 1);
	struct peer *tomb = NULL;

	for (;; i = (i + 1) & (cap - 1)) {
		struct peer *p = &tab[i];

		if (p->used == 0)
			return tomb ? tomb : p;
		if (p->used == 2) {
			if (tomb == NULL)
				tomb = p;
		} else if (memcmp(p->key, k, 32) == 0) {
			return p;
		}
	}
}

static void
grow(void)
{
	struct peer *old = tab;
	size_t old_cap = cap;

	cap = cap ? cap * 2 : 1024;
	tab = calloc(cap, sizeof(*tab));
	if (tab == NULL)
		die("calloc");
	n_used = n_live;
	for (size_t i = 0; i < old_cap; i++)
		if (old[i].used == 1)
			*slot(old[i].key) = old[i];
	free(old);
}

static struct peer *
peer_get(const uint8_t k[32], bool create)
{
	struct peer *p;

	if ((n_used + 1) * 4 > cap * 3)
		grow();
	p = slot(k);
	if (p->used == 1 || !create)
		return p->used == 1 ? p : NULL;
	if (p->used == 0)
		n_used++;
	memset(p, 0, sizeof(*p));
	memcpy(p->key, k, 32);
	p->used = 1;
	n_live++;
	return p;
}

static void
peer_del(struct peer *p)
{
	p->used = 2;
	n_live--;
}

static int
unhex(const char *s, size_t len, uint8_t out[32])
{
	int bad = 0;

	if (len != 64)
		return -1;
	for (size_t i = 0; i < 64; i++) {
		int c = (unsigned char)s[i], v;

		if (c >= '0' && c <= '9')
			v = c - '0';
		else if (c >= 'a' && c <= 'f')
			v = c - 'a' + 10;
		else
			v = 0, bad = 1;
		if (i % 2 == 0)
			out[i / 2] = (uint8_t)(v << 4);
		else
			out[i / 2] |= (uint8_t)v;
	}
	return bad ? -1 : 0;
}

static void
hex(char *out, const uint8_t k[32])
{
	static const char d[] = "0123456789abcdef";

	for (size_t i = 0; i < 32; i++) {
		out[2 * i] = d[k[i] >> 4];
		out[2 * i + 1] = d[k[i] & 15];
	}
	out[64] = '\0';
}

/* ---- one set message, line by line ---- */

struct set_state {
	struct peer *cur;
	bool skip;    /* update_only for a peer we do not have, or removed */
	size_t peers; /* public_key lines */
	int err;
};

static void
set_line(struct set_state *st, char *line)
{
	char *eq = strchr(line, '='), *val;
	uint8_t k[32];

	if (eq == NULL) {
		st->err = EPROTO;
		return;
	}
	*eq = '\0';
	val = eq + 1;
	if (!strcmp(line, "set")) {
		return;
	} else if (!strcmp(line, "private_key")) {
		if (unhex(val, strlen(val), priv) < 0)
			st->err = EINVAL;
	} else if (!strcmp(line, "listen_port")) {
		listen_port = (unsigned int)strtoul(val, NULL, 10);
	} else if (!strcmp(line, "fwmark") || !strcmp(line, "protocol_version") ||
		   !strcmp(line, "preshared_key") || !strcmp(line, "endpoint") ||
		   !strcmp(line, "persistent_keepalive_interval")) {
		return;
	} else if (!strcmp(line, "replace_peers")) {
		if (!strcmp(val, "true")) {
			memset(tab, 0, cap * sizeof(*tab));
			n_live = n_used = 0;
		}
	} else if (!strcmp(line, "public_key")) {
		if (unhex(val, strlen(val), k) < 0) {
			st->err = EINVAL;
			return;
		}
		st->peers++;
		st->skip = false;
		st->cur = peer_get(k, true);
	} else if (!strcmp(line, "update_only")) {
		/* the peer was just created if it did not exist: undo that */
		if (st->cur != NULL && st->cur->n_ips == 0) {
			peer_del(st->cur);
			st->cur = NULL;
			st->skip = true;
		}
	} else if (!strcmp(line, "remove")) {
		if (st->cur != NULL && !strcmp(val, "true")) {
			peer_del(st->cur);
			st->cur = NULL;
			st->skip = true;
		}
	} else if (!strcmp(line, "replace_allowed_ips")) {
		if (st->cur != NULL)
			st->cur->n_ips = 0;
	} else if (!strcmp(line, "allowed_ip")) {
		char *slash = strchr(val, '/');
		struct peer *p = st->cur;
		int fam;

		if (st->skip)
			return;
		if (p == NULL || slash == NULL) {
			st->err = EINVAL;
			return;
		}
		*slash = '\0';
		fam = strchr(val, ':') ? AF_INET6 : AF_INET;
		if (p->n_ips < 2 && inet_pton(fam, val, p->ip[p->n_ips]) == 1) {
			p->fam[p->n_ips] = (uint8_t)fam;
			p->cidr[p->n_ips] = (uint8_t)atoi(slash + 1);
			p->n_ips++;
		}
	} else {
		st->err = EINVAL;
	}
}

/* The whole table in wireguard-go's format into a malloc()ed buffer (no printf per peer:
 * the daemon's time is not what the benchmark measures). */
static char *
render_get(size_t *ret_len)
{
	static const char zero64[] =
		"0000000000000000000000000000000000000000000000000000000000000000";
	static const char tail[] = "protocol_version=1\nlast_handshake_time_sec=0\n"
				   "last_handshake_time_nsec=0\ntx_bytes=0\nrx_bytes=0\n"
				   "persistent_keepalive_interval=0\n";
	size_t size = 256 + n_live * 400, len = 0;
	char *out = malloc(size), kh[65];

	if (out == NULL)
		die("malloc");
	hex(kh, priv);
	len += (size_t)sprintf(out + len, "private_key=%s\nlisten_port=%u\n", kh, listen_port);
	for (size_t i = 0; i < cap; i++) {
		const struct peer *p = &tab[i];
		char *o;

		if (p->used != 1)
			continue;
		o = out + len;
		memcpy(o, "public_key=", 11);
		hex(o + 11, p->key);
		o[75] = '\n';
		o += 76;
		memcpy(o, "preshared_key=", 14);
		memcpy(o + 14, zero64, 64);
		o[78] = '\n';
		o += 79;
		memcpy(o, tail, sizeof(tail) - 1);
		o += sizeof(tail) - 1;
		for (unsigned int a = 0; a < p->n_ips; a++) {
			char ip[INET6_ADDRSTRLEN];

			inet_ntop(p->fam[a], p->ip[a], ip, sizeof(ip));
			o += sprintf(o, "allowed_ip=%s/%u\n", ip, p->cidr[a]);
		}
		len = (size_t)(o - out);
	}
	len += (size_t)sprintf(out + len, "errno=0\n\n");
	*ret_len = len;
	return out;
}

static int
write_all(int fd, const char *b, size_t n)
{
	while (n > 0) {
		ssize_t w = write(fd, b, n);

		if (w < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		b += w;
		n -= (size_t)w;
	}
	return 0;
}

static void
log_req(const char *op, size_t peers, double secs)
{
	struct timespec ts;

	if (log_fp == NULL)
		return;
	clock_gettime(CLOCK_REALTIME, &ts);
	fprintf(log_fp, "%lld.%03ld %s %zu %.6f %zu\n", (long long)ts.tv_sec, ts.tv_nsec / 1000000,
		op, peers, secs, n_live);
	fflush(log_fp);
}

static void *
serve(void *arg)
{
	int fd = (int)(intptr_t)arg;
	size_t size = 1 << 20, have = 0;
	char *buf = malloc(size);
	enum { IDLE, GET, SET } mode = IDLE;
	struct set_state st = { 0 };
	double t0 = 0;

	if (buf == NULL)
		die("malloc");
	for (;;) {
		ssize_t n = read(fd, buf + have, size - have);
		char *p = buf, *nl;

		if (n <= 0)
			break;
		have += (size_t)n;
		while ((nl = memchr(p, '\n', have - (size_t)(p - buf))) != NULL) {
			*nl = '\0';
			if (mode == IDLE) {
				t0 = now_s();
				pthread_mutex_lock(&lock);
				if (!strcmp(p, "get=1")) {
					mode = GET;
				} else {
					mode = SET;
					memset(&st, 0, sizeof(st));
					set_line(&st, p);
				}
			} else if (*p != '\0') {
				if (mode == SET && st.err == 0)
					set_line(&st, p);
			} else { /* end of the message */
				char reply[32], *out = NULL;
				size_t len;

				if (mode == GET) {
					out = render_get(&len);
					log_req("get", n_live, now_s() - t0);
				} else {
					len = (size_t)snprintf(
						reply, sizeof(reply), "errno=%d\n\n", st.err);
					log_req("set", st.peers, now_s() - t0);
				}
				pthread_mutex_unlock(&lock);
				if (write_all(fd, out ? out : reply, len) < 0) {
					free(out);
					goto out;
				}
				free(out);
				mode = IDLE;
			}
			p = nl + 1;
		}
		have -= (size_t)(p - buf);
		memmove(buf, p, have);
		if (have == size)
			break; /* a line of a megabyte */
	}
out:
	if (mode != IDLE)
		pthread_mutex_unlock(&lock);
	close(fd);
	free(buf);
	return NULL;
}

static void
on_term(int sig)
{
	(void)sig;
	unlink(sock_path);
	_exit(0);
}

int
main(int argc, char **argv)
{
	const char *dir = getenv("FLEET_WGD_DIR"), *logp = getenv("FLEET_WGD_LOG");
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ifreq ifr = { 0 };
	int tun, lfd;

	if (argc != 2 || strlen(argv[1]) >= IFNAMSIZ) {
		fprintf(stderr, "usage: fleet_wgd IFNAME (FLEET_WGD_DIR, FLEET_WGD_LOG)\n");
		return 2;
	}
	if (dir == NULL)
		dir = "/var/run/wireguard";
	if (logp != NULL && (log_fp = fopen(logp, "a")) == NULL)
		die(logp);
	tun = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
	if (tun < 0)
		die("/dev/net/tun");
	ifr.ifr_flags = IFF_TUN | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", argv[1]);
	if (ioctl(tun, TUNSETIFF, &ifr) < 0)
		die("TUNSETIFF");
	mkdir(dir, 0755);
	if (snprintf(sock_path, sizeof(sock_path), "%s/%s.sock", dir, argv[1]) >=
		(int)sizeof(sock_path))
		return 2;
	memcpy(sun.sun_path, sock_path, sizeof(sock_path));
	unlink(sock_path);
	signal(SIGTERM, on_term);
	signal(SIGINT, on_term);
	signal(SIGPIPE, SIG_IGN);
	grow();
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(lfd, 64) < 0)
		die(sock_path);
	for (;;) {
		pthread_t th;
		int fd = accept(lfd, NULL, NULL);

		if (fd < 0) {
			if (errno == EINTR)
				continue;
			die("accept");
		}
		if (pthread_create(&th, NULL, serve, (void *)(intptr_t)fd) != 0)
			die("pthread_create");
		pthread_detach(th);
	}
}
