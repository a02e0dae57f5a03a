// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: enrolld's HTTP layer, end to end. The input is raw bytes a client sends
 * (one request or several, pipelined): they go over a socketpair into the real
 * libmicrohttpd daemon that http_server_start() runs for enrolld (same flags, thread pool,
 * callbacks, limits), so libmicrohttpd's parser and ours both see them: the URI log
 * callback, the header and Content-Type rules, body accumulation with its size limit,
 * authentication, the router, and every handler of api_routes[] against a real LMDB store.
 *
 * One daemon serves the whole run. Per input: the store is put back to the state seeded at
 * start (a tenant "acme", tokens, a registration, a device; see seed_store()), the
 * in-memory enrollment sessions are emptied, the input is written, the client's write side
 * shut, the answers read until the server closes, and the target waits until the daemon
 * holds no connection (so per-input leak detection sees every free).
 *
 * Tokens the seeded state accepts (the corpus uses them): "Bearer fuzz-admin-token",
 * "Bearer fuzz-provisioning-token", "Bearer fuzz-acme-token" (tenant acme), enrollment
 * token "fuzz-enroll-token", registration ek_id sha256("fuzz-ek"), device id 1.
 *
 * Nothing privileged runs: the plane's calls the handlers make (plane_tenant_up,
 * plane_device_sync, plane_tenant_key, plane_tenant_is_up) are replaced by the fakes below
 * (-Wl,--wrap, Makefile); e->plane stays NULL, so an unwrapped plane call would crash at
 * once. log_info is wrapped too: formatted, then dropped (the log would grow by a line or
 * two per input). No EK trust anchors (enrollment answers attestation_unavailable after parsing its
 * body), no TLS (no client certificates: /v1/peer stops at no_client_certificate). Rate
 * limits are on with rates no input can exhaust, so ratelimit.c runs and nothing depends
 * on earlier inputs. Needs FUZZING_BUILD_MODE in http.c: http_server_add_connection(),
 * http_server_connections(), and event streams that end instead of waiting.
 *
 * FUZZ_HTTP_ECHO=1 (any value): copy the answers to stderr, to see what a seed gets.
 * FUZZ_HTTP_DIR: where the store lives (default: a new directory under /dev/shm, else
 * $TMPDIR); it is removed at exit.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/sockios.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/sha.h>

#include "common/log.h"
#include "enrolld/addr.h"
#include "enrolld/enrolld.h"
#include "enrolld/store.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* http.c, FUZZING_BUILD_MODE only */
int http_server_add_connection(struct http_server *srv, int fd, const struct sockaddr *addr,
	socklen_t len);
unsigned int http_server_connections(struct http_server *srv);

/* the fakes of the plane (-Wl,--wrap=...) */
int __wrap_plane_tenant_up(struct plane *p, const struct store_tenant *t);
int __wrap_plane_device_sync(struct plane *p, struct store *s, const struct store_tenant *t,
	uint64_t id, const uint8_t *const keys[], size_t n_keys);
int __wrap_plane_tenant_key(struct plane *p, const struct store_tenant *t, uint8_t ret_pub[32]);
bool __wrap_plane_tenant_is_up(struct plane *p, const char *tenant);

#define FUZZ_MAX_BODY 8192 /* small: a seed can exceed it (413) */
#define FUZZ_DRAIN_MS 10000 /* an answer that takes longer is a hang: abort */

static struct enrolld E;
static bool echo; /* FUZZ_HTTP_ECHO=1: the answers go to stderr (checking seeds) */
static char dir[256], db_dir[300], pristine[300], sock_path[300];

/* ---- the fake plane: nothing privileged, nothing spawned ---- */

int
__wrap_plane_tenant_up(struct plane *p, const struct store_tenant *t)
{
	return 0;
}

int
__wrap_plane_device_sync(struct plane *p, struct store *s, const struct store_tenant *t,
	uint64_t id, const uint8_t *const keys[], size_t n_keys)
{
	return 0;
}

int
__wrap_plane_tenant_key(struct plane *p, const struct store_tenant *t, uint8_t ret_pub[32])
{
	/* a stable key per tenant */
	SHA256((const unsigned char *)t->name, strlen(t->name), ret_pub);
	return 0;
}

bool
__wrap_plane_tenant_is_up(struct plane *p, const char *tenant)
{
	return false;
}

/*
 * log_info: formatted (so a bad argument still shows) and dropped, or every input would
 * print a line or two ("tenant 'acme' trusts device CA ...") into the fuzzer's log.
 */
void __wrap_log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

void
__wrap_log_info(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	if (echo)
		fprintf(stderr, "%s\n", buf);
}

/* ---- enrolld's authenticate(), as main.c has it ---- */

static bool
token_equal(const char *a, const char *presented)
{
	size_t la = strlen(a);

	return la > 0 && strlen(presented) == la && memcmp(a, presented, la) == 0;
}

static int
authenticate(void *ctx, const char *token, unsigned int *ret_role, char *ret_tenant,
	size_t tenant_len)
{
	struct enrolld *e = ctx;

	if (token_equal(e->admin_token, token)) {
		*ret_role = HTTP_AUTH_ADMIN;
		return 0;
	}
	if (token_equal(e->provisioning_token, token)) {
		*ret_role = HTTP_AUTH_PROVISION;
		return 0;
	}
	for (size_t i = 0; i < e->n_tenant_tokens; i++)
		if (token_equal(e->tenant_tokens[i].token, token)) {
			*ret_role = HTTP_AUTH_TENANT;
			snprintf(ret_tenant, tenant_len, "%s", e->tenant_tokens[i].tenant);
			return 0;
		}
	return -EACCES;
}

/* ---- the store ---- */

static void
fatal_setup(const char *what, int r)
{
	fprintf(stderr, "fuzz_http: %s: %s\n", what, strerror(r < 0 ? -r : r));
	abort();
}

static int
open_store(struct store **ret)
{
	/* small maps: a 16 MiB file at most, however many tenants an input creates */
	struct store_options o = { .map_size = 4 << 20, .map_size_max = 16 << 20 };

	return store_open(ret, db_dir, &o);
}

static void
seed_store(struct store *s)
{
	struct store_tenant t = { 0 };
	struct store_registration reg = { 0 };
	struct store_token tok = { 0 };
	struct store_enroll_req req = { 0 };
	struct store_device dev;
	int r;

	snprintf(t.name, sizeof(t.name), "acme");
	snprintf(t.ifname, sizeof(t.ifname), "wg-acme");
	snprintf(t.endpoint, sizeof(t.endpoint), "cp.example:51820");
	if (addr_prefix_parse(&t.prefix4, "10.77.0.0/24") < 0 ||
	    addr_prefix_parse(&t.prefix6, "fd77::/64") < 0)
		fatal_setup("prefix", -EINVAL);
	t.listen_port = 51820;
	t.keepalive = 25;
	r = store_tenant_create(s, &t);
	if (r < 0)
		fatal_setup("tenant", r);

	snprintf(reg.tenant, sizeof(reg.tenant), "acme");
	snprintf(reg.label, sizeof(reg.label), "fuzz ek");
	SHA256((const unsigned char *)"fuzz-ek", 7, reg.ek_hash);
	r = store_registration_add(s, &reg);
	if (r < 0)
		fatal_setup("registration", r);

	snprintf(tok.tenant, sizeof(tok.tenant), "acme");
	snprintf(tok.label, sizeof(tok.label), "fuzz");
	SHA256((const unsigned char *)"fuzz-enroll-token", 17, tok.hash);
	tok.uses_left = 1000;
	r = store_token_create(s, &tok);
	if (r < 0)
		fatal_setup("token", r);

	/* device 1: the registered EK with a WireGuard key */
	snprintf(req.tenant, sizeof(req.tenant), "acme");
	memcpy(req.ek_hash, reg.ek_hash, sizeof(req.ek_hash));
	SHA256((const unsigned char *)"fuzz-wg", 7, req.wg_pubkey);
	req.kind = STORE_ATTEST_TPM;
	r = store_enroll(s, &req, &dev);
	if (r < 0)
		fatal_setup("device", r);
}

static int
copy_file(const char *from, const char *to)
{
	static char buf[1 << 16];
	int in, out, r = 0;
	ssize_t n;

	in = open(from, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = open(to, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (out < 0) {
		r = -errno;
		close(in);
		return r;
	}
	while ((n = read(in, buf, sizeof(buf))) > 0)
		if (write(out, buf, (size_t)n) != n) {
			r = -EIO;
			break;
		}
	if (n < 0)
		r = -errno;
	close(in);
	close(out);
	return r;
}

/*
 * LMDB's two meta pages (at the start of data.mdb) name the last committed transaction: if
 * they are as the pristine copy's, no input changed the store since it was put back.
 */
#define FUZZ_META_LEN 8192
static uint8_t pristine_meta[FUZZ_META_LEN];

static int
read_meta(const char *path, uint8_t buf[static FUZZ_META_LEN])
{
	ssize_t n;
	int fd, r = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	n = pread(fd, buf, FUZZ_META_LEN, 0);
	if (n != FUZZ_META_LEN)
		r = n < 0 ? -errno : -EIO;
	close(fd);
	return r;
}

/* Put the store and the sessions back to what seed_store() left. */
static void
reset_state(void)
{
	static uint8_t meta[FUZZ_META_LEN];
	char from[400], to[400];
	int r;

	snprintf(from, sizeof(from), "%s/data.mdb", pristine);
	snprintf(to, sizeof(to), "%s/data.mdb", db_dir);
	if (E.store != NULL && read_meta(to, meta) == 0 &&
	    memcmp(meta, pristine_meta, FUZZ_META_LEN) == 0)
		goto sessions;
	store_free(E.store);
	E.store = NULL;
	r = copy_file(from, to);
	if (r < 0)
		fatal_setup("copy the store", r);
	r = open_store(&E.store);
	if (r < 0)
		fatal_setup("reopen the store", r);
	/* what the pristine copy looks like once opened (opening may write nothing or a meta) */
	r = read_meta(to, pristine_meta);
	if (r < 0)
		fatal_setup("read the store", r);
sessions:
	enroll_sessions_free(E.sessions);
	E.sessions = NULL;
	r = enroll_sessions_new(&E.sessions);
	if (r < 0)
		fatal_setup("sessions", r);
}

static void
remove_dir(void)
{
	char cmd[400];

	if (dir[0] == '\0')
		return;
	/* the directory is ours (mkdtemp), its files are LMDB's two and the socket */
	snprintf(cmd, sizeof(cmd), "%s/data.mdb", db_dir);
	unlink(cmd);
	snprintf(cmd, sizeof(cmd), "%s/lock.mdb", db_dir);
	unlink(cmd);
	rmdir(db_dir);
	snprintf(cmd, sizeof(cmd), "%s/data.mdb", pristine);
	unlink(cmd);
	rmdir(pristine);
	unlink(sock_path);
	rmdir(dir);
}

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	static struct tenant_token tt = { .tenant = "acme", .token = "fuzz-acme-token" };
	struct http_config hc = { 0 };
	const char *base = getenv("FUZZ_HTTP_DIR");
	struct stat st;
	int r;

	signal(SIGPIPE, SIG_IGN);
	echo = getenv("FUZZ_HTTP_ECHO") != NULL;
	log_init(1, "fuzz_http");
	if (base == NULL)
		base = stat("/dev/shm", &st) == 0 && access("/dev/shm", W_OK) == 0 ? "/dev/shm" :
			getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	snprintf(dir, sizeof(dir), "%s/fuzz_http.XXXXXX", base);
	if (mkdtemp(dir) == NULL)
		fatal_setup("mkdtemp", -errno);
	atexit(remove_dir);
	snprintf(db_dir, sizeof(db_dir), "%s/db", dir);
	snprintf(pristine, sizeof(pristine), "%s/pristine", dir);
	snprintf(sock_path, sizeof(sock_path), "%s/http.sock", dir);
	if (mkdir(pristine, 0700) < 0)
		fatal_setup("mkdir", -errno);

	/* the daemon's state as main.c sets it up, without a plane, health monitor or trust */
	pthread_mutex_init(&E.token_lock, NULL);
	pthread_mutex_init(&E.crl_lock, NULL);
	pthread_mutex_init(&E.stop_lock, NULL);
	pthread_cond_init(&E.stop_cond, NULL);
	E.conf.max_body = FUZZ_MAX_BODY;
	E.conf.session_ttl = 60;
	E.conf.max_sessions = 16;
	E.conf.conn_timeout = 5;
	snprintf(E.admin_token, sizeof(E.admin_token), "fuzz-admin-token");
	snprintf(E.provisioning_token, sizeof(E.provisioning_token), "fuzz-provisioning-token");
	E.tenant_tokens = &tt;
	E.n_tenant_tokens = 1;

	r = open_store(&E.store);
	if (r < 0)
		fatal_setup("open the store", r);
	seed_store(E.store);
	r = store_backup(E.store, pristine);
	if (r < 0)
		fatal_setup("copy the seeded store", r);
	reset_state();

	hc.unix_socket = sock_path; /* listened on, never connected to: inputs come by socketpair */
	hc.max_body = FUZZ_MAX_BODY;
	hc.threads = 1;
	hc.max_connections = 64;
	hc.max_connections_per_ip = 0;
	hc.header_timeout = 5;
	hc.conn_timeout = 5;
	hc.body_timeout = 5;
	hc.limits.source_rate = RATELIMIT_RATE_MAX;
	hc.limits.source_burst = RATELIMIT_BURST_MAX;
	hc.limits.global_rate = RATELIMIT_RATE_MAX;
	hc.limits.global_burst = RATELIMIT_BURST_MAX;
	hc.limits.sources = 64;
	hc.limits.ipv6_prefix = 64;
	hc.stream_wait = api_events_wait;
	hc.routes = api_routes;
	hc.n_routes = api_n_routes;
	hc.ctx = &E;
	hc.authenticate = authenticate;
	r = http_server_start(&E.http, &hc);
	if (r < 0)
		fatal_setup("http_server_start", r);
	return 0;
}

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Bytes sent on @fd that the other end has not read yet (unix sockets: SIOCOUTQ). */
static int
unread(int fd)
{
	int n = 0;

	if (ioctl(fd, SIOCOUTQ, &n) < 0)
		return 0;
	return n;
}

/*
 * Send @data on @fd while reading what comes back (a pipelined input's answers may fill the
 * socket before the input is all written), shut the write side, read until the server
 * closes.
 */
static void
converse(int fd, const uint8_t *data, size_t size)
{
	static char sink[1 << 16];
	int64_t deadline = now_ms() + FUZZ_DRAIN_MS;
	size_t off = 0;
	bool shut = false;

	for (;;) {
		struct pollfd pfd = { .fd = fd, .events = POLLIN };
		ssize_t n;

		/*
		 * Shut the write side once the server has read everything: libmicrohttpd's epoll is
		 * edge-triggered and reads once per edge, so an end of stream that arrives with
		 * the last bytes goes unnoticed until a deadline (5 s) cuts the connection.
		 */
		if (!shut && off == size && unread(fd) == 0) {
			shutdown(fd, SHUT_WR);
			shut = true;
		}
		if (!shut && off < size)
			pfd.events |= POLLOUT;
		if (poll(&pfd, 1, shut || off < size ? 100 : 1) < 0 && errno != EINTR)
			abort();
		if (now_ms() > deadline) {
			fprintf(stderr, "fuzz_http: no end of the answer after %d ms\n",
				FUZZ_DRAIN_MS);
			abort();
		}
		if (pfd.revents & POLLOUT) {
			n = send(fd, data + off, size - off, MSG_NOSIGNAL);
			if (n > 0)
				off += (size_t)n;
			else if (n < 0 && errno != EAGAIN && errno != EINTR)
				off = size; /* the server closed: it has said what it will */
		}
		if (pfd.revents & (POLLIN | POLLHUP | POLLERR)) {
			n = recv(fd, sink, sizeof(sink), 0);
			if (n > 0 && echo)
				fwrite(sink, 1, (size_t)n, stderr);
			if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR))
				break;
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct sockaddr_in sin = { .sin_family = AF_INET, .sin_port = htons(40000) };
	int sv[2];
	int64_t deadline;

	reset_state();
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		abort();
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0)
		abort();
	sin.sin_addr.s_addr = htonl(0xc0000201); /* 192.0.2.1 */
	if (http_server_add_connection(E.http, sv[1], (struct sockaddr *)&sin, sizeof(sin)) < 0)
		abort();
	converse(sv[0], data, size);
	close(sv[0]);
	/* the connection's memory is freed after its socket is shut: wait for it */
	deadline = now_ms() + FUZZ_DRAIN_MS;
	while (http_server_connections(E.http) > 0) {
		if (now_ms() > deadline)
			abort();
		usleep(50);
	}
	return 0;
}
