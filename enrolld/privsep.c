// SPDX-License-Identifier: MIT
/*
 * Privilege separation: the fork, the privileged parent's loop, the child's drop of
 * privileges and its client end of the channels. The message set and its checks are in
 * privsep_msg.c; the design is in privsep.h and docs/security.md.
 *
 * Parent: two threads. The main one serves the "main" channel (every request) and takes
 * the signals (signalfd): SIGTERM/SIGINT/SIGHUP are forwarded to the child. A second one
 * serves the "read" channel (STATS and NOTIFY: neither waits for an interface change).
 * When the child's end closes the parent stops its wireguard-go processes and exits 0 if
 * it had forwarded a stop; otherwise it leaves them running (the next start adopts them,
 * tunnels stay up) and exits 1.
 */
#include <errno.h>
#include <grp.h>
#include <linux/capability.h>
#include <poll.h>
#include <pthread.h>
#include <pwd.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <unistd.h>

#include "common/log.h"
#include "common/sdnotify.h"
#include "common/wg.h"
#include "enrolld/enrolld.h"
#include "enrolld/privsep.h"

enum { CH_MAIN = 0, CH_READ = 1 };

struct privsep {
	int fd[2];
	pthread_mutex_t lock[2];
	uint8_t *buf[2]; /* PS_MSG_MAX each, for replies */
};

/* ---- parent ----------------------------------------------------------------------------- */

static struct {
	struct plane *plane;
	pthread_mutex_t reg_lock;
	struct ps_registry reg;
	pid_t child;
} P = {.reg_lock = PTHREAD_MUTEX_INITIALIZER};

static void
rec_to_store(const struct ps_tenant_rec *r, struct store_tenant *t)
{
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", r->name);
	snprintf(t->ifname, sizeof(t->ifname), "%s", r->ifname);
	t->listen_port = r->listen_port;
	t->prefix4 = r->prefix4;
	t->prefix6 = r->prefix6;
	memcpy(t->self4, r->self4, 16);
	memcpy(t->self6, r->self6, 16);
}

static int
send_msg(int fd, const void *buf, size_t len)
{
	ssize_t n;

	do
		n = send(fd, buf, len, MSG_NOSIGNAL);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return -errno;
	return (size_t)n == len ? 0 : -EMSGSIZE;
}

static int
reply(int fd, int status, uint32_t flags, uint32_t count, const void *body, size_t blen,
	uint8_t *scratch)
{
	struct ps_hdr h = {
		.type = PS_REPLY, .flags = (uint16_t)flags, .count = count, .status = status};

	memcpy(scratch, &h, sizeof(h));
	if (blen > 0)
		memcpy(scratch + sizeof(h), body, blen);
	return send_msg(fd, scratch, sizeof(h) + blen);
}

static int
serve_stats(int fd, const struct store_tenant *t, uint8_t *out)
{
	struct wg_peer_stats *st = NULL;
	size_t n = 0, off = 0;
	int r;

	r = plane_peer_stats(P.plane, t, &st, &n);
	if (r < 0)
		return reply(fd, r, 0, 0, NULL, 0, out);
	do {
		size_t k = n - off > PS_PEERS_MAX ? PS_PEERS_MAX : n - off;
		struct ps_stat *s = (struct ps_stat *)(out + sizeof(struct ps_hdr));
		struct ps_hdr h = {.type = PS_REPLY, .count = (uint32_t)k};

		for (size_t i = 0; i < k; i++) {
			memset(&s[i], 0, sizeof(s[i]));
			memcpy(s[i].key, st[off + i].public_key, WG_KEY_LEN);
			s[i].last_handshake_sec = st[off + i].last_handshake_sec;
			s[i].rx_bytes = st[off + i].rx_bytes;
			s[i].tx_bytes = st[off + i].tx_bytes;
		}
		off += k;
		h.flags = off < n ? PS_F_MORE : 0;
		memcpy(out, &h, sizeof(h));
		r = send_msg(fd, out, sizeof(h) + k * sizeof(*s));
	} while (r == 0 && off < n);
	free(st);
	return r;
}

static int
serve_dump(int fd, const struct store_tenant *t, uint8_t *out)
{
	struct wg_device *dev = NULL;
	size_t off = 0;
	int r;

	r = plane_dump(P.plane, t, &dev);
	if (r < 0)
		return reply(fd, r, 0, 0, NULL, 0, out);
	do {
		size_t k = dev->n_peers - off > PS_PEERS_MAX ? PS_PEERS_MAX : dev->n_peers - off;
		struct ps_dump_peer *d = (struct ps_dump_peer *)(out + sizeof(struct ps_hdr));
		struct ps_hdr h = {.type = PS_REPLY, .count = (uint32_t)k};

		for (size_t i = 0; i < k; i++) {
			const struct wg_peer *p = &dev->peers[off + i];

			memset(&d[i], 0, sizeof(d[i]));
			memcpy(d[i].key, p->public_key, WG_KEY_LEN);
			d[i].truncated = p->n_allowedips > PS_DUMP_AIPS;
			for (size_t j = 0; j < p->n_allowedips && j < PS_DUMP_AIPS; j++) {
				const struct wg_allowedip *a = &p->allowedips[j];
				struct ps_aip *w = &d[i].aips[d[i].n_aips++];

				w->family = a->family == AF_INET ? 4 : 6;
				w->cidr = a->cidr;
				memcpy(w->addr, &a->ip6, a->family == AF_INET ? 4 : 16);
			}
		}
		off += k;
		h.flags = off < dev->n_peers ? PS_F_MORE : 0;
		memcpy(out, &h, sizeof(h));
		r = send_msg(fd, out, sizeof(h) + k * sizeof(*d));
	} while (r == 0 && off < dev->n_peers);
	wg_device_free(dev);
	return r;
}

static int
do_peers(const struct ps_request *req, const struct store_tenant *t)
{
	struct wg_device *dev = NULL;
	struct wg_peer *peer;
	int r;

	r = wg_device_new(&dev, t->ifname);
	for (uint32_t i = 0; r == 0 && i < req->count; i++) {
		const struct ps_peer *p = &req->peers[i];

		r = wg_device_add_peer(dev, &peer);
		if (r < 0)
			break;
		memcpy(peer->public_key, p->key, WG_KEY_LEN);
		if (p->op == PS_PEER_REMOVE) {
			peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REMOVE_ME;
			continue;
		}
		peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REPLACE_ALLOWEDIPS;
		r = wg_peer_add_allowedip(peer, AF_INET, p->addr4, 32);
		if (r == 0 && p->has6)
			r = wg_peer_add_allowedip(peer, AF_INET6, p->addr6, 128);
	}
	if (r == 0)
		r = plane_apply(P.plane, t, dev);
	wg_device_free(dev);
	return r;
}

static const char *const notify_text[] = {
	[PS_NOTIFY_READY] = "READY=1\nSTATUS=serving; tenant interfaces reconciled",
	[PS_NOTIFY_WATCHDOG] = "WATCHDOG=1",
	[PS_NOTIFY_RELOADING] = "RELOADING=1",
	[PS_NOTIFY_STOPPING] = "STOPPING=1",
};

/* One request from the child: parse, check, do, answer. Bad requests are logged. */
static int
serve_one(int fd, int ch, const uint8_t *buf, size_t len, uint8_t *out)
{
	const struct ps_tenant_rec *rec = NULL;
	struct ps_request req;
	struct store_tenant t;
	uint8_t pub[WG_KEY_LEN];
	char why[256] = "";
	int r;

	r = ps_parse_request(buf, len, &req, why, sizeof(why));
	if (r == 0 && ch == CH_READ && req.type != PS_STATS && req.type != PS_NOTIFY) {
		r = -EPERM;
		snprintf(why, sizeof(why), "type %u on the read channel", req.type);
	}
	if (r == 0) {
		pthread_mutex_lock(&P.reg_lock);
		r = ps_check_request(&P.reg, &req, &rec, why, sizeof(why));
		if (rec != NULL)
			rec_to_store(rec, &t);
		pthread_mutex_unlock(&P.reg_lock);
	}
	if (r < 0) {
		log_warnx("privsep: refused a request of the network process: %s", why);
		return reply(fd, r, 0, 0, NULL, 0, out);
	}
	switch (req.type) {
	case PS_NOTIFY:
		(void)sdnotify(notify_text[req.count]);
		return reply(fd, 0, 0, 0, NULL, 0, out);
	case PS_TENANT_KEY:
		r = plane_tenant_pubkey(P.plane, req.name->name, pub);
		return reply(fd, r, 0, 0, pub, r == 0 ? sizeof(pub) : 0, out);
	case PS_TENANT_UP:
		if (rec == NULL) {
			struct ps_tenant_rec nr;

			ps_tenant_to_rec(req.tenant, &nr);
			rec_to_store(&nr, &t);
			/*
			 * Never someone else's interface: eth0 into a VRF, an address on lo, the
			 * host's own wg0 re-keyed.
			 */
			r = plane_interface_claimable(P.plane, &t);
			if (r < 0) {
				log_warnx("privsep: refused a request of the network process: "
					  "interface '%s' exists and is not tenant '%s''s (%s)",
					t.ifname, t.name, strerror(-r));
				return reply(fd, r, 0, 0, NULL, 0, out);
			}
		}
		r = plane_tenant_up(P.plane, &t);
		if (r == 0 && rec == NULL) {
			pthread_mutex_lock(&P.reg_lock);
			r = ps_registry_pin(&P.reg, req.tenant);
			pthread_mutex_unlock(&P.reg_lock);
		}
		return reply(fd, r, 0, 0, NULL, 0, out);
	case PS_PEERS_SET:
		return reply(fd, do_peers(&req, &t), 0, 0, NULL, 0, out);
	case PS_DUMP:
		return serve_dump(fd, &t, out);
	case PS_STATS:
		return serve_stats(fd, &t, out);
	}
	return reply(fd, -EBADMSG, 0, 0, NULL, 0, out);
}

/* Read and serve requests until the child's end closes. */
static void
serve_channel(int fd, int ch)
{
	uint8_t *in = malloc(PS_MSG_MAX + 1), *out = malloc(PS_MSG_MAX);
	ssize_t n;

	if (in == NULL || out == NULL)
		fatalx("privsep: out of memory");
	for (;;) {
		n = recv(fd, in, PS_MSG_MAX + 1, MSG_TRUNC);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (serve_one(fd, ch, in, (size_t)n > PS_MSG_MAX + 1 ? PS_MSG_MAX + 1 : (size_t)n,
			    out) < 0)
			break;
	}
	free(in);
	free(out);
}

static void *
read_channel_main(void *arg)
{
	serve_channel(*(int *)arg, CH_READ);
	return NULL;
}

static void
parent_loop(int fd_main, int fd_read, const struct enrolld_conf *conf)
{
	struct plane_config pc = {0};
	uint8_t *in = malloc(PS_MSG_MAX + 1), *out = malloc(PS_MSG_MAX);
	bool stop_forwarded = false;
	struct signalfd_siginfo si;
	pthread_t reader;
	sigset_t set;
	int sfd, status, r;

	pc.backend = conf->wg_backend;
	pc.key_dir = conf->key_dir;
	pc.wireguard_go = conf->wireguard_go;
	pc.uapi_dir = conf->uapi_dir;
	pc.vrf = conf->vrf;
	pc.vrf_table_base = (uint32_t)conf->vrf_table_base;
	pc.nftables = conf->nftables;
	pc.nft = conf->nft;
	r = in == NULL || out == NULL ? -ENOMEM : plane_new(&P.plane, &pc);
	if (r < 0) {
		kill(P.child, SIGTERM);
		fatalx("WireGuard control: %s", strerror(-r));
	}
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sfd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	if (sfd < 0) {
		kill(P.child, SIGTERM);
		fatal("signalfd");
	}
	r = pthread_create(&reader, NULL, read_channel_main, &fd_read);
	if (r != 0) {
		kill(P.child, SIGTERM);
		fatalx("privsep: thread: %s", strerror(r));
	}
	log_info("privsep: the network process (pid %d) runs as '%s'; this one keeps the keys",
		(int)P.child, conf->user);
	for (;;) {
		struct pollfd pfd[2] = {
			{.fd = fd_main, .events = POLLIN}, {.fd = sfd, .events = POLLIN}};

		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (pfd[1].revents & POLLIN) {
			while (read(sfd, &si, sizeof(si)) == sizeof(si)) {
				if (si.ssi_signo != SIGHUP) {
					stop_forwarded = true;
					(void)sdnotify("STOPPING=1");
				}
				if (kill(P.child, (int)si.ssi_signo) < 0)
					log_warnx("privsep: cannot pass signal %u to the network process: "
						"%s (the service needs CAP_KILL)", si.ssi_signo,
						strerror(errno));
			}
		}
		if (pfd[0].revents & (POLLIN | POLLHUP | POLLERR)) {
			ssize_t n;

			/* MSG_TRUNC: the real length, so an oversized message is refused as such */
			n = recv(fd_main, in, PS_MSG_MAX + 1, MSG_TRUNC | MSG_DONTWAIT);
			if (n > 0)
				r = serve_one(fd_main, CH_MAIN, in,
					(size_t)n > PS_MSG_MAX + 1 ? PS_MSG_MAX + 1 : (size_t)n,
					out);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR) ||
				(n > 0 && r < 0))
				break;
		}
	}
	/* The child's end closed: it exited (or is about to). */
	free(in);
	free(out);
	close(fd_main);
	shutdown(fd_read, SHUT_RDWR);
	pthread_join(reader, NULL);
	while (waitpid(P.child, &status, 0) < 0 && errno == EINTR)
		;
	if (stop_forwarded && WIFEXITED(status) && WEXITSTATUS(status) == 0) {
		/* A stop: as without privilege separation, wireguard-go stops with us. */
		plane_free(P.plane);
		ps_registry_clear(&P.reg);
		log_info("privsep: the network process stopped; exiting");
		exit(0);
	}
	/*
	 * A crash of the network process is a crash of enrolld: the wireguard-go processes
	 * are left running (tunnels stay up) for the next start to adopt, as after a kill -9.
	 */
	if (WIFSIGNALED(status))
		log_warnx("privsep: the network process (pid %d) was killed by signal %d; exiting",
			(int)P.child, WTERMSIG(status));
	else
		log_warnx("privsep: the network process (pid %d) exited with status %d; exiting",
			(int)P.child, WIFEXITED(status) ? WEXITSTATUS(status) : -1);
	exit(1);
}

int
privsep_start(const struct enrolld_conf *conf, struct privsep **ret)
{
	int sp[2][2] = {{-1, -1}, {-1, -1}};
	struct privsep *ps;
	pid_t pid;

	for (int i = 0; i < 2; i++)
		if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp[i]) < 0)
			return -errno;
	for (int i = 0; i < 2; i++)
		for (int j = 0; j < 2; j++) {
			int sz = 4 * PS_MSG_MAX;

			(void)setsockopt(sp[i][j], SOL_SOCKET, SO_SNDBUF, &sz, sizeof(sz));
			(void)setsockopt(sp[i][j], SOL_SOCKET, SO_RCVBUF, &sz, sizeof(sz));
		}
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0) {
		P.child = pid;
		P.reg.space = conf->tenant_space;
		P.reg.n_space = conf->n_tenant_space;
		close(sp[0][1]);
		close(sp[1][1]);
		parent_loop(sp[0][0], sp[1][0], conf); /* does not return */
	}
	close(sp[0][0]);
	close(sp[1][0]);
	/* systemd hears from the parent only (NotifyAccess=main): READY etc. go through it. */
	unsetenv("NOTIFY_SOCKET");
	ps = calloc(1, sizeof(*ps));
	if (ps == NULL)
		return -ENOMEM;
	for (int i = 0; i < 2; i++) {
		ps->fd[i] = sp[i][1];
		pthread_mutex_init(&ps->lock[i], NULL);
		ps->buf[i] = malloc(PS_MSG_MAX);
		if (ps->buf[i] == NULL)
			return -ENOMEM;
	}
	*ret = ps;
	return 0;
}

/* ---- the child's drop ------------------------------------------------------------------- */

static int
drop_bounding_set(void)
{
	for (int c = 0; c < 64; c++) {
		int r = prctl(PR_CAPBSET_READ, c, 0, 0, 0);

		if (r < 0)
			break; /* past the last capability the kernel knows */
		if (r == 1 && prctl(PR_CAPBSET_DROP, c, 0, 0, 0) < 0)
			return -errno; /* no CAP_SETPCAP: see docs/security.md */
	}
	return 0;
}

static int
caps_all_zero(void)
{
	struct __user_cap_header_struct h = {.version = _LINUX_CAPABILITY_VERSION_3};
	struct __user_cap_data_struct d[2] = {0}; /* valgrind 3.19 sees d[1] unwritten */

	if (syscall(SYS_capget, &h, d) < 0)
		return -errno;
	for (int i = 0; i < 2; i++)
		if (d[i].effective || d[i].permitted || d[i].inheritable)
			return -EPERM;
	return 0;
}

int
privsep_drop(const char *user)
{
	struct passwd *pw;
	uid_t uid;
	gid_t gid;
	int r, bset;

	errno = 0;
	pw = getpwnam(user);
	if (pw == NULL) {
		log_warnx("server.user '%s': no such user", user);
		return errno ? -errno : -ENOENT;
	}
	uid = pw->pw_uid;
	gid = pw->pw_gid;
	if (uid == 0 || gid == 0) {
		log_warnx("server.user '%s' is root: no separation", user);
		return -EINVAL;
	}
	/* The bounding set needs CAP_SETPCAP: before the uid changes. */
	bset = drop_bounding_set();
	if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0) < 0 && errno != EINVAL)
		return -errno;
	if (setgroups(1, &gid) < 0 || setresgid(gid, gid, gid) < 0 ||
		setresuid(uid, uid, uid) < 0) {
		r = -errno;
		log_warn("cannot become '%s' (CAP_SETUID and CAP_SETGID are needed)", user);
		return r;
	}
	if (setuid(0) == 0 || getuid() != uid || geteuid() != uid || getgid() != gid) {
		log_warnx("privileges were not dropped");
		return -EPERM;
	}
	r = caps_all_zero();
	if (r < 0) {
		log_warnx("capabilities left after becoming '%s'", user);
		return r;
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0)
		return -errno;
	if (chdir("/") < 0)
		return -errno;
	r = privsep_seccomp_load();
	if (r < 0) {
		log_warnx("seccomp filter: %s", strerror(-r));
		return r;
	}
	if (r == 1)
		log_warnx("privsep: no seccomp(2) here (valgrind, or a kernel before 3.17): the "
			  "filter covers this thread and those it starts, not the store's writer");
	if (bset < 0)
		log_info("privsep: the capability bounding set was left as it is (%s; give "
			 "CAP_SETPCAP to empty it)",
			strerror(-bset));
	return 0;
}

int
privsep_selftest(const char *user, const char *keyfile)
{
	int fails = 0, fd, r;
	pid_t pid;

	r = privsep_drop(user);
	if (r < 0) {
		printf("drop: failed: %s\n", strerror(-r));
		return 1;
	}
	printf("uid %d gid %d\n", (int)getuid(), (int)getgid());
	fd = open(keyfile, O_RDONLY | O_CLOEXEC);
	printf("open key file: %s\n", fd < 0 ? strerror(errno) : "ALLOWED");
	fails += fd >= 0;
	fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, 0);
	printf("netlink socket: %s\n", fd < 0 ? strerror(errno) : "ALLOWED");
	fails += fd >= 0;
	fd = socket(AF_PACKET, SOCK_RAW | SOCK_CLOEXEC, 0);
	printf("packet socket: %s\n", fd < 0 ? strerror(errno) : "ALLOWED");
	fails += fd >= 0;
	r = setuid(0);
	printf("setuid(0): %s\n", r < 0 ? strerror(errno) : "ALLOWED");
	fails += r == 0;
	r = unshare(CLONE_NEWNET);
	printf("unshare(CLONE_NEWNET): %s\n", r < 0 ? strerror(errno) : "ALLOWED");
	fails += r == 0;
	/* What the old deny-list let through and the allow-list refuses. */
	fd = socket(AF_ALG, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	printf("AF_ALG socket: %s\n", fd < 0 ? strerror(errno) : "ALLOWED");
	fails += fd >= 0;
	fd = (int)syscall(SYS_memfd_create, "x", 0U);
	printf("memfd_create: %s\n", fd < 0 ? strerror(errno) : "ALLOWED");
	fails += fd >= 0;
	fflush(stdout);
	pid = fork();
	if (pid == 0)
		_exit(0);
	printf("fork: %s\n", pid < 0 ? strerror(errno) : "ALLOWED");
	fails += pid > 0;
	if (pid > 0)
		(void)waitpid(pid, NULL, 0);
	/* ...and what the network process needs still works (the filter is not deny-all). */
	fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	printf("AF_INET6 socket: %s\n", fd < 0 ? strerror(errno) : "allowed");
	fails += fd < 0;
	if (fd >= 0)
		close(fd);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	printf("AF_UNIX socket: %s\n", fd < 0 ? strerror(errno) : "allowed");
	fails += fd < 0;
	if (fd >= 0)
		close(fd);
	fflush(stdout);
	{
		char *argv[] = {"/bin/false", NULL}; /* exits 1 if exec was allowed */

		execve(argv[0], argv, (char *[]){NULL});
		printf("execve: %s\n", strerror(errno));
		fflush(stdout);
	}
	return fails ? 1 : 0;
}

/* ---- the child's client end --------------------------------------------------------------- */

typedef int (*reply_fn)(void *ctx, const struct ps_hdr *h, const uint8_t *body, size_t len);

/*
 * Send one request on channel @ch and read its reply (chunks while PS_F_MORE). A reply that
 * does not parse is -EPROTO; a closed channel (the parent is gone) -EPIPE.
 */
static int
call(struct privsep *ps, int ch, const void *req, size_t len, reply_fn fn, void *ctx)
{
	struct ps_hdr h;
	ssize_t n;
	int r, first_err = 0;

	pthread_mutex_lock(&ps->lock[ch]);
	r = send_msg(ps->fd[ch], req, len);
	if (r < 0)
		goto out;
	for (;;) {
		n = recv(ps->fd[ch], ps->buf[ch], PS_MSG_MAX, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n == 0 ? -EPIPE : -errno;
			goto out;
		}
		if ((size_t)n < sizeof(h)) {
			r = -EPROTO;
			goto out;
		}
		memcpy(&h, ps->buf[ch], sizeof(h));
		if (h.type != PS_REPLY || h.status > 0) {
			r = -EPROTO;
			goto out;
		}
		if (h.status < 0 && first_err == 0)
			first_err = h.status;
		else if (fn != NULL && first_err == 0) {
			r = fn(ctx, &h, ps->buf[ch] + sizeof(h), (size_t)n - sizeof(h));
			if (r < 0)
				first_err = r;
		}
		if (!(h.flags & PS_F_MORE))
			break;
	}
	r = first_err;
out:
	pthread_mutex_unlock(&ps->lock[ch]);
	if (r == -EPIPE)
		log_warnx("privsep: the privileged process is gone");
	return r;
}

struct name_req {
	struct ps_hdr h;
	struct ps_name n;
};

static void
name_req(struct name_req *q, uint16_t type, const char *tenant)
{
	memset(q, 0, sizeof(*q));
	q->h.type = type;
	snprintf(q->n.name, sizeof(q->n.name), "%s", tenant);
}

static int
key_reply(void *ctx, const struct ps_hdr *h, const uint8_t *body, size_t len)
{
	if (len != WG_KEY_LEN)
		return -EPROTO;
	memcpy(ctx, body, WG_KEY_LEN);
	return 0;
}

int
privsep_tenant_key(struct privsep *ps, const char *tenant, uint8_t ret_pub[static 32])
{
	struct name_req q;

	name_req(&q, PS_TENANT_KEY, tenant);
	return call(ps, CH_MAIN, &q, sizeof(q), key_reply, ret_pub);
}

int
privsep_tenant_up(struct privsep *ps, const struct store_tenant *t)
{
	struct {
		struct ps_hdr h;
		struct ps_tenant t;
	} q;

	memset(&q, 0, sizeof(q));
	q.h.type = PS_TENANT_UP;
	snprintf(q.t.name, sizeof(q.t.name), "%s", t->name);
	snprintf(q.t.ifname, sizeof(q.t.ifname), "%s", t->ifname);
	q.t.listen_port = t->listen_port;
	q.t.plen4 = t->prefix4.plen;
	memcpy(q.t.prefix4, t->prefix4.addr, 4);
	memcpy(q.t.self4, t->self4, 4);
	if (t->prefix6.family == AF_INET6) {
		q.t.plen6 = t->prefix6.plen;
		memcpy(q.t.prefix6, t->prefix6.addr, 16);
		memcpy(q.t.self6, t->self6, 16);
	}
	return call(ps, CH_MAIN, &q, sizeof(q), NULL, NULL);
}

int
privsep_peers_set(struct privsep *ps, const char *tenant, const struct wg_device *dev)
{
	size_t off = 0, cap = sizeof(struct name_req) + PS_PEERS_MAX * sizeof(struct ps_peer);
	uint8_t *buf = malloc(cap);
	int r = 0;

	if (buf == NULL)
		return -ENOMEM;
	while (r == 0 && off < dev->n_peers) {
		size_t k = dev->n_peers - off > PS_PEERS_MAX ? PS_PEERS_MAX : dev->n_peers - off;
		struct name_req *q = (struct name_req *)buf;
		struct ps_peer *pp = (struct ps_peer *)(buf + sizeof(*q));

		name_req(q, PS_PEERS_SET, tenant);
		q->h.count = (uint32_t)k;
		for (size_t i = 0; r == 0 && i < k; i++) {
			const struct wg_peer *p = &dev->peers[off + i];
			bool v4 = false;

			memset(&pp[i], 0, sizeof(pp[i]));
			memcpy(pp[i].key, p->public_key, WG_KEY_LEN);
			if (p->flags & WG_PEER_F_REMOVE_ME) {
				pp[i].op = PS_PEER_REMOVE;
				continue;
			}
			pp[i].op = PS_PEER_SET;
			for (size_t j = 0; j < p->n_allowedips; j++) {
				const struct wg_allowedip *a = &p->allowedips[j];

				if (a->family == AF_INET && a->cidr == 32 && !v4) {
					memcpy(pp[i].addr4, &a->ip4, 4);
					v4 = true;
				} else if (a->family == AF_INET6 && a->cidr == 128 && !pp[i].has6) {
					memcpy(pp[i].addr6, &a->ip6, 16);
					pp[i].has6 = 1;
				} else {
					r = -EINVAL; /* the message set has one /32 and one /128 */
				}
			}
			if (!v4)
				r = -EINVAL;
		}
		if (r == 0)
			r = call(ps, CH_MAIN, buf, sizeof(*q) + k * sizeof(*pp), NULL, NULL);
		off += k;
	}
	free(buf);
	return r;
}

static int
dump_reply(void *ctx, const struct ps_hdr *h, const uint8_t *body, size_t len)
{
	struct wg_device *dev = ctx;
	struct ps_dump_peer d;
	struct wg_peer *peer;
	int r;

	if (h->count > PS_PEERS_MAX || len != h->count * sizeof(d))
		return -EPROTO;
	for (uint32_t i = 0; i < h->count; i++) {
		memcpy(&d, body + i * sizeof(d), sizeof(d));
		if (d.n_aips > PS_DUMP_AIPS)
			return -EPROTO;
		r = wg_device_add_peer(dev, &peer);
		if (r < 0)
			return r;
		memcpy(peer->public_key, d.key, WG_KEY_LEN);
		peer->flags = WG_PEER_F_HAS_PUBLIC_KEY;
		for (uint8_t j = 0; j < d.n_aips; j++) {
			const struct ps_aip *a = &d.aips[j];

			if ((a->family != 4 && a->family != 6) ||
				a->cidr > (a->family == 4 ? 32 : 128))
				return -EPROTO;
			r = wg_peer_add_allowedip(
				peer, a->family == 4 ? AF_INET : AF_INET6, a->addr, a->cidr);
			if (r < 0)
				return r;
		}
		/* More allowed IPs than the message carries: make it differ from any device. */
		if (d.truncated) {
			uint8_t none[16] = {0};

			r = wg_peer_add_allowedip(peer, AF_INET, none, 0);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int
privsep_dump(struct privsep *ps, const char *tenant, const char *ifname, struct wg_device **ret)
{
	struct wg_device *dev = NULL;
	struct name_req q;
	int r;

	r = wg_device_new(&dev, ifname);
	if (r < 0)
		return r;
	name_req(&q, PS_DUMP, tenant);
	r = call(ps, CH_MAIN, &q, sizeof(q), dump_reply, dev);
	if (r < 0) {
		wg_device_free(dev);
		return r;
	}
	*ret = dev;
	return 0;
}

struct stats_acc {
	struct wg_peer_stats *st;
	size_t n;
};

static int
stats_reply(void *ctx, const struct ps_hdr *h, const uint8_t *body, size_t len)
{
	struct stats_acc *acc = ctx;
	struct wg_peer_stats *ns;
	struct ps_stat s;

	if (h->count > PS_PEERS_MAX || len != h->count * sizeof(s))
		return -EPROTO;
	if (h->count == 0)
		return 0;
	ns = realloc(acc->st, (acc->n + h->count) * sizeof(*ns));
	if (ns == NULL)
		return -ENOMEM;
	acc->st = ns;
	for (uint32_t i = 0; i < h->count; i++) {
		memcpy(&s, body + i * sizeof(s), sizeof(s));
		memcpy(ns[acc->n].public_key, s.key, WG_KEY_LEN);
		ns[acc->n].last_handshake_sec = s.last_handshake_sec;
		ns[acc->n].rx_bytes = s.rx_bytes;
		ns[acc->n].tx_bytes = s.tx_bytes;
		acc->n++;
	}
	return 0;
}

int
privsep_stats(struct privsep *ps, const char *tenant, struct wg_peer_stats **ret, size_t *ret_n)
{
	struct stats_acc acc = {0};
	struct name_req q;
	int r;

	name_req(&q, PS_STATS, tenant);
	r = call(ps, CH_READ, &q, sizeof(q), stats_reply, &acc);
	if (r < 0) {
		free(acc.st);
		return r;
	}
	*ret = acc.st;
	*ret_n = acc.n;
	return 0;
}

int
privsep_notify(struct privsep *ps, enum ps_notify what)
{
	struct ps_hdr h = {.type = PS_NOTIFY, .count = what};

	/*
	 * The read channel: the main one may be busy for a minute setting 65,536 peers, and
	 * the watchdog (WatchdogSec=20) must not wait for that.
	 */
	return call(ps, CH_READ, &h, sizeof(h), NULL, NULL);
}

int
privsep_raw_call(struct privsep *ps, const void *msg, size_t len)
{
	return call(ps, CH_MAIN, msg, len, NULL, NULL);
}

void
privsep_free(struct privsep *ps)
{
	if (ps == NULL)
		return;
	for (int i = 0; i < 2; i++) {
		close(ps->fd[i]);
		pthread_mutex_destroy(&ps->lock[i]);
		free(ps->buf[i]);
	}
	free(ps);
}
