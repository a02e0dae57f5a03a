// SPDX-License-Identifier: MIT
/*
 * enroll-bench: complete attested enrollments against a running enrolld by software TPM
 * devices (tests/bench/softdev), and the server's cryptography timed alone in-process.
 * Driven by tests/bench/run.sh (`make bench`); results in docs/benchmarks.md.
 *
 *   enroll_bench ca CERT KEY
 *       a new test manufacturer CA: certificate (for enrolld's attestation.ek_ca_dir)
 *       and key
 *   enroll_bench pcr-policy PCR...
 *       the software devices' PCR values as a tenant "pcr_policy" JSON array
 *   enroll_bench run --url U --ca CERT,KEY --token T [--ek rsa2048|p256|p384] [-c CONC]
 *                    [-n COUNT] [--tls-ca FILE] [--keepalive] [--pid PID] [--label L]
 *                    [--pg-pid PID] [--wg-pid PID]
 *       COUNT enrollments (new devices) by CONC threads, each a challenge and a complete
 *       on a new connection (with --keepalive: one connection per thread). One line:
 *       enrollments/s, latency p50/p99/max, and with --pid the server's CPU (utime +
 *       stime of PID) per enrollment. --url and --pid may be repeated (several enrolld
 *       nodes on one database, tests/bench/cluster_run.sh): device i does its challenge
 *       and its completion on node i mod (number of URLs); a URL unix:PATH is plain HTTP
 *       on enrolld's unix socket PATH; the CPU is the sum over the
 *       PIDs. --pg-pid: a PostgreSQL postmaster, whose CPU per enrollment (its own, its
 *       live children's and its reaped children's) is printed too; --wg-pid: the
 *       tenant's wireguard-go, whose CPU per enrollment (adding the peers, reading them for
 *       enrolld's ticks) is printed too.
 *   enroll_bench ceiling --ca CERT,KEY --trust DIR [--ek TYPE] [-n COUNT]
 *                        [--tls-cert CERT --tls-key KEY]
 *       the server's per-enrollment cryptography alone, one thread, in CPU time of that
 *       thread: EK chain and conversion, AK, MakeCredential, secret and quote verification
 *       (attest library). With --tls-cert/--tls-key also the server's side of a TLS
 *       handshake as enrolld makes it (GnuTLS, enrolld's priorities, that certificate; an
 *       OpenSSL client with its defaults, as the devices', in another thread, not counted): a second line,
 *       the ceiling of an enrollment on a new HTTPS connection.
 *   enroll_bench smoke --url U --ca CERT,KEY --token T [--tls-ca FILE]
 *       a few enrollments per EK type, then the negative cross-check (wrong secret,
 *       wrong extraData, edited PCR value): exit 0 if every answer is as expected
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <dirent.h>
#include <sys/resource.h>
#include <unistd.h>

#include <curl/curl.h>
#include <gnutls/gnutls.h>
#include <jansson.h>
#include <openssl/ssl.h>
#include <sys/socket.h>

#include "common/b64.h"
#include "common/key.h"
#include "enrolld/attest/attest.h"
#include "enrolld/enrolld.h"
#include "tests/bench/softdev/softdev.h"

enum fault { F_NONE, F_SECRET, F_EXTRADATA, F_PCR };

#define MAX_NODES 16

struct opts {
	const char *url, *token, *tls_ca, *label, *trust, *tls_cert, *tls_key;
	const char *urls[MAX_NODES]; /* url is urls[0] */
	int pids[MAX_NODES];
	int n_urls, n_pids, pg_pid, wg_pid;
	char ca_cert[1024], ca_key[1024];
	enum tpm2_ek_type ek;
	int conc, count;
	bool keepalive;
};

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "enroll_bench: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the calling thread, in seconds */
static double
thread_cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* utime + stime of @pid in seconds */
static double
proc_cpu(int pid)
{
	char path[64], buf[1024], *p;
	unsigned long ut = 0, st = 0;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", pid);
	f = fopen(path, "r");
	if (f == NULL || fgets(buf, sizeof(buf), f) == NULL)
		die("cannot read %s", path);
	fclose(f);
	p = strrchr(buf, ')');
	/* after the command: state is field 3; utime 14, stime 15 */
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ut,
				&st) != 2)
		die("cannot parse %s", path);
	return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

/*
 * CPU of a PostgreSQL server in seconds: the postmaster's utime + stime, those of its children
 * it has reaped (cutime + cstime: backends of closed connections) and those of its live
 * children (backends, checkpointer, WAL writer, ...).
 */
static double
pg_cpu(int postmaster)
{
	char path[300], buf[1024], *p;
	unsigned long ut, st, cut, cst;
	long total = 0;
	int ppid;
	struct dirent *de;
	DIR *d;
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/stat", postmaster);
	f = fopen(path, "r");
	if (f == NULL || fgets(buf, sizeof(buf), f) == NULL)
		die("cannot read %s", path);
	fclose(f);
	p = strrchr(buf, ')');
	if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu %lu %lu",
				&ut, &st, &cut, &cst) != 4)
		die("cannot parse %s", path);
	total = (long)(ut + st + cut + cst);
	d = opendir("/proc");
	if (d == NULL)
		die("cannot open /proc");
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] < '1' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		f = fopen(path, "r");
		if (f == NULL)
			continue; /* gone meanwhile */
		p = fgets(buf, sizeof(buf), f) ? strrchr(buf, ')') : NULL;
		fclose(f);
		if (p != NULL &&
		    sscanf(p + 2, "%*c %d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &ppid, &ut,
			   &st) == 3 &&
		    ppid == postmaster)
			total += (long)(ut + st);
	}
	closedir(d);
	return (double)total / (double)sysconf(_SC_CLK_TCK);
}

/* the summed CPU of the enrolld nodes given with --pid */
static double
nodes_cpu(const struct opts *o)
{
	double s = 0;

	for (int i = 0; i < o->n_pids; i++)
		s += proc_cpu(o->pids[i]);
	return s;
}

/* user + system time of this process (all its device threads) in seconds */
static double
self_cpu(void)
{
	struct rusage ru;

	if (getrusage(RUSAGE_SELF, &ru) < 0)
		die("getrusage");
	return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
	       (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

/* ---- HTTP ------------------------------------------------------------------------------ */

struct buf {
	char *p;
	size_t n;
};

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;
	char *np = realloc(b->p, b->n + n + 1);

	if (np == NULL)
		return 0;
	memcpy(np + b->n, ptr, n);
	b->p = np;
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

enum conn {
	CONN_ANY,   /* reuse the handle's connection if it has one */
	CONN_FRESH, /* a new connection (the first request of an enrollment) */
	CONN_LAST,  /* close the connection after this request (the last of an enrollment) */
};

/*
 * The devices' trust in enrolld's TLS certificate (--tls-ca), parsed once and shared by
 * every connection: libcurl makes a new SSL_CTX per connection and loaded the CA file into
 * each (X509_STORE_load_file: 14% of the devices' CPU with a new connection per
 * enrollment, so the devices' core ran out before the server's). The chain and host name
 * are checked as before, against this store.
 */
static X509_STORE *tls_trust;

static CURLcode
on_ssl_ctx(CURL *c, void *ssl_ctx, void *arg)
{
	SSL_CTX_set1_cert_store(ssl_ctx, arg);
	return CURLE_OK;
}

/*
 * POST @body on the handle @c; the HTTP status (0: no answer), *ret the parsed answer.
 * Without --keepalive an enrollment opens a new connection (full TLS handshake) for its
 * challenge, reuses it for its completion and closes it, as one device does; the handle
 * itself lives on in its thread (a handle per enrollment had cost the devices 4 ms per
 * enrollment, more than the server's work), and the CA is tls_trust, parsed once.
 */
static long
post(CURL *c, const struct opts *o, const char *base, const char *path, json_t *body,
     json_t **ret, enum conn conn)
{
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	struct buf b = { 0 };
	char url[512], *text = json_dumps(body, JSON_COMPACT);
	long status = 0;

	/* "unix:PATH": HTTP on enrolld's server.unix_socket (a node in another namespace) */
	if (strncmp(base, "unix:", 5) == 0) {
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, base + 5);
		snprintf(url, sizeof(url), "http://localhost%s", path);
	} else {
		curl_easy_setopt(c, CURLOPT_UNIX_SOCKET_PATH, NULL);
		snprintf(url, sizeof(url), "%s%s", base, path);
	}
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 120L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FRESH_CONNECT, conn == CONN_FRESH ? 1L : 0L);
	curl_easy_setopt(c, CURLOPT_FORBID_REUSE, conn == CONN_LAST ? 1L : 0L);
	if (o->tls_ca != NULL) {
		/* no CA file or directory of libcurl's own: tls_trust */
		curl_easy_setopt(c, CURLOPT_CAINFO, NULL);
		curl_easy_setopt(c, CURLOPT_CAPATH, NULL);
		curl_easy_setopt(c, CURLOPT_SSL_CTX_FUNCTION, on_ssl_ctx);
		curl_easy_setopt(c, CURLOPT_SSL_CTX_DATA, tls_trust);
		/* every enrollment a full handshake, as a device that starts afresh */
		curl_easy_setopt(c, CURLOPT_SSL_SESSIONID_CACHE, 0L);
	}
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	free(text);
	*ret = b.p ? json_loads(b.p, 0, NULL) : NULL;
	free(b.p);
	return status;
}

static json_t *
b64j(const uint8_t *p, size_t n)
{
	char *s = NULL;
	json_t *j;

	if (b64_encode(p, n, &s) < 0)
		die("base64");
	j = json_string(s);
	free(s);
	return j;
}

static uint8_t *
b64_member(json_t *j, const char *key, size_t *ret_len)
{
	const char *s = json_string_value(json_object_get(j, key));
	uint8_t *out = NULL;

	if (s == NULL || b64_decode(s, 8192, &out, ret_len) < 0)
		return NULL;
	return out;
}

/*
 * One enrollment of @d on the handle @c against the node at @base (challenge and completion
 * both there), with @fault. Returns the last HTTP status; @code gets the error code of a
 * refusal ("" if none).
 */
static long
enroll(CURL *c, const struct opts *o, const char *base, const struct softdev *d,
       enum fault fault, char code[64])
{
	uint8_t *blob = NULL, *seed = NULL, *nonce = NULL, secret[32];
	size_t blob_len = 0, seed_len = 0, nonce_len = 0;
	struct softdev_quote q;
	TPML_PCR_SELECTION sel;
	char wg_b64[WG_KEY_B64_LEN];
	const char *session, *spec;
	json_t *req, *resp = NULL;
	long status;

	code[0] = '\0';
	key_to_base64(wg_b64, d->wg_pub);
	req = json_pack("{s:o,s:o,s:o,s:s,s:s}", "ek_cert", b64j(d->ek_cert, d->ek_cert_len),
			"ek_public", b64j(d->ek_pub, d->ek_pub_len), "ak_public",
			b64j(d->ak_pub, d->ak_pub_len), "wg_public_key", wg_b64, "token", o->token);
	status = post(c, o, base, "/v1/enroll/challenge", req, &resp,
		      o->keepalive ? CONN_ANY : CONN_FRESH);
	json_decref(req);
	if (status != 200)
		goto out;
	session = json_string_value(json_object_get(resp, "session"));
	spec = json_string_value(json_object_get(resp, "pcr_selection"));
	blob = b64_member(resp, "credential_blob", &blob_len);
	seed = b64_member(resp, "encrypted_seed", &seed_len);
	nonce = b64_member(resp, "nonce", &nonce_len);
	if (session == NULL || spec == NULL || blob == NULL || seed == NULL || nonce_len != 32)
		die("challenge answer incomplete");
	if (softdev_activate(d, blob, blob_len, seed, seed_len, secret) < 0)
		die("ActivateCredential failed on a genuine credential");
	if (fault == F_SECRET)
		secret[0] ^= 1;
	if (fault == F_EXTRADATA)
		nonce[0] ^= 1;
	if (tpm2_pcr_selection_parse(spec[0] ? spec : "sha256:0,1,7", &sel) < 0 ||
	    softdev_quote(d, nonce, d->wg_pub, &sel, &q) < 0)
		die("quote");
	if (fault == F_PCR)
		q.pcrs[q.pcrs_len - 1] ^= 1; /* the last PCR value */
	req = json_pack("{s:s,s:o,s:o,s:o,s:o}", "session", session, "secret",
			b64j(secret, sizeof(secret)), "quote", b64j(q.quote, q.quote_len),
			"signature", b64j(q.sig, q.sig_len), "pcrs", b64j(q.pcrs, q.pcrs_len));
	OPENSSL_cleanse(secret, sizeof(secret));
	json_decref(resp);
	resp = NULL;
	status = post(c, o, base, "/v1/enroll/complete", req, &resp,
		      o->keepalive ? CONN_ANY : CONN_LAST);
	json_decref(req);
out:
	if (status != 200 && resp != NULL) {
		const char *e = json_string_value(json_object_get(json_object_get(resp, "error"),
								  "code"));

		snprintf(code, 64, "%s", e ? e : "");
	}
	json_decref(resp);
	free(blob);
	free(seed);
	free(nonce);
	return status;
}

/* ---- devices ---------------------------------------------------------------------------- */

static struct softdev **
make_devices(const struct opts *o, const struct softdev_ca *ca, enum tpm2_ek_type type, int n)
{
	struct softdev_rsa_pool *pool = NULL;
	struct softdev **devs = calloc((size_t)n, sizeof(*devs));

	if (devs == NULL)
		die("out of memory");
	if (type == TPM2_EK_RSA2048 && softdev_rsa_pool_new((size_t)n, &pool) < 0)
		die("RSA pool");
	for (int i = 0; i < n; i++)
		if (softdev_new(ca, type, pool, &devs[i]) < 0)
			die("software device %d", i);
	softdev_rsa_pool_free(pool);
	return devs;
}

static void
free_devices(struct softdev **devs, int n)
{
	for (int i = 0; i < n; i++)
		softdev_free(devs[i]);
	free(devs);
}

static struct softdev_ca *
load_ca(const struct opts *o)
{
	struct softdev_ca *ca = NULL;

	if (softdev_ca_load(o->ca_cert, o->ca_key, &ca) < 0)
		die("cannot load the CA '%s', '%s'", o->ca_cert, o->ca_key);
	return ca;
}

/* ---- run: N threads, COUNT enrollments --------------------------------------------------- */

struct run {
	const struct opts *o;
	struct softdev **devs;
	double *lat;
	atomic_int next, failed;
	char first_error[128];
	pthread_mutex_t lock;
};

static void *
run_thread(void *arg)
{
	struct run *r = arg;
	CURL *c = curl_easy_init(); /* the connection policy per request: post() */
	char code[64];
	int i;

	if (c == NULL)
		die("curl_easy_init");
	while ((i = atomic_fetch_add(&r->next, 1)) < r->o->count) {
		double t0 = now_s();
		/* devices round-robin over the nodes */
		long st = enroll(c, r->o, r->o->urls[i % r->o->n_urls], r->devs[i], F_NONE, code);

		r->lat[i] = now_s() - t0;
		if (st != 200) {
			pthread_mutex_lock(&r->lock);
			if (atomic_fetch_add(&r->failed, 1) == 0)
				snprintf(r->first_error, sizeof(r->first_error), "HTTP %ld %s", st,
					 code);
			pthread_mutex_unlock(&r->lock);
		}
	}
	curl_easy_cleanup(c);
	return NULL;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int
cmd_run(const struct opts *o)
{
	struct softdev_ca *ca = load_ca(o);
	struct run r = { .o = o };
	pthread_t *th = calloc((size_t)o->conc, sizeof(*th));
	double t0, wall, cpu0 = 0, cpu = 0, pg0 = 0, pg = 0, wg0 = 0, wg = 0, self0, self;

	r.devs = make_devices(o, ca, o->ek, o->count);
	r.lat = calloc((size_t)o->count, sizeof(*r.lat));
	if (th == NULL || r.lat == NULL)
		die("out of memory");
	pthread_mutex_init(&r.lock, NULL);
	if (o->n_pids > 0)
		cpu0 = nodes_cpu(o);
	if (o->pg_pid > 0)
		pg0 = pg_cpu(o->pg_pid);
	if (o->wg_pid > 0)
		wg0 = proc_cpu(o->wg_pid);
	self0 = self_cpu();
	t0 = now_s();
	for (int i = 0; i < o->conc; i++)
		if (pthread_create(&th[i], NULL, run_thread, &r) != 0)
			die("pthread_create");
	for (int i = 0; i < o->conc; i++)
		pthread_join(th[i], NULL);
	wall = now_s() - t0;
	self = self_cpu() - self0;
	if (o->n_pids > 0)
		cpu = nodes_cpu(o) - cpu0;
	if (o->pg_pid > 0)
		pg = pg_cpu(o->pg_pid) - pg0;
	if (o->wg_pid > 0)
		wg = proc_cpu(o->wg_pid) - wg0;
	qsort(r.lat, (size_t)o->count, sizeof(*r.lat), cmp_double);
	printf("%-8s %-7s %-9s conc %3d  n %5d  %7.1f enr/s  p50 %7.2f ms  p99 %7.2f ms  "
	       "max %7.2f ms",
	       o->label ? o->label : "-", tpm2_ek_info(o->ek)->name,
	       o->tls_ca ? (o->keepalive ? "https-ka" : "https") : "http", o->conc, o->count,
	       o->count / wall, r.lat[o->count / 2] * 1e3,
	       r.lat[(size_t)((o->count - 1) * 0.99)] * 1e3, r.lat[o->count - 1] * 1e3);
	/* with several --pid: summed over the nodes */
	if (o->n_pids > 0)
		printf("  server CPU %6.2f ms/enr", cpu * 1e3 / o->count);
	/* the software devices' own work (TLS client, ActivateCredential, quote) on the same cores */
	printf("  devices CPU %6.2f ms/enr", self * 1e3 / o->count);
	if (o->wg_pid > 0)
		printf("  wireguard-go CPU %6.2f ms/enr", wg * 1e3 / o->count);
	if (o->pg_pid > 0)
		printf("  postgres CPU %6.2f ms/enr", pg * 1e3 / o->count);
	printf("  failed %d%s%s\n", atomic_load(&r.failed), r.failed ? ", first: " : "",
	       r.first_error);
	free_devices(r.devs, o->count);
	free(r.lat);
	free(th);
	softdev_ca_free(ca);
	return r.failed ? 1 : 0;
}

/* ---- ceiling: the server's cryptography alone ------------------------------------------- */

/*
 * A TLS client on one end of a socket pair, as the devices' is (OpenSSL 3 with its
 * defaults, through libcurl); no certificate check, it is not the server's work.
 */
static void *
tls_client_main(void *arg)
{
	SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
	SSL *c = ctx ? SSL_new(ctx) : NULL;
	int fd = *(int *)arg, r = -1;

	if (c != NULL && SSL_set_fd(c, fd) == 1)
		r = SSL_connect(c) == 1 ? 0 : -1;
	SSL_free(c);
	SSL_CTX_free(ctx);
	shutdown(fd, SHUT_RDWR);
	return (void *)(intptr_t)(r < 0);
}

/*
 * The server's side of @n TLS handshakes as enrolld makes them (its priorities, the
 * certificate and key it is given), each on a new socket pair with a client thread (OpenSSL):
 * the server thread's CPU time per handshake, in seconds.
 */
static double
tls_server_handshakes(const struct opts *o, int n)
{
	gnutls_certificate_credentials_t cred;
	gnutls_priority_t prio;
	double t = 0;

	if (gnutls_certificate_allocate_credentials(&cred) < 0 ||
	    gnutls_certificate_set_x509_key_file(cred, o->tls_cert, o->tls_key,
						 GNUTLS_X509_FMT_PEM) < 0 ||
	    gnutls_priority_init(&prio, HTTP_TLS_PRIORITIES, NULL) < 0)
		die("TLS: cannot load %s / %s", o->tls_cert, o->tls_key);
	for (int i = 0; i < n; i++) {
		gnutls_session_t s;
		pthread_t th;
		void *client_failed;
		int sv[2], r;
		double t0;

		if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0 ||
		    gnutls_init(&s, GNUTLS_SERVER) < 0 || gnutls_priority_set(s, prio) < 0 ||
		    gnutls_credentials_set(s, GNUTLS_CRD_CERTIFICATE, cred) < 0)
			die("TLS: session");
		gnutls_transport_set_int(s, sv[0]);
		if (pthread_create(&th, NULL, tls_client_main, &sv[1]) != 0)
			die("TLS: thread");
		t0 = thread_cpu_s();
		do
			r = gnutls_handshake(s);
		while (r < 0 && !gnutls_error_is_fatal(r));
		t += thread_cpu_s() - t0;
		if (r < 0)
			die("TLS: handshake: %s", gnutls_strerror(r));
		pthread_join(th, &client_failed);
		if (client_failed != NULL)
			die("TLS: the client's handshake failed");
		gnutls_deinit(s);
		close(sv[0]);
		close(sv[1]);
	}
	gnutls_priority_deinit(prio);
	gnutls_certificate_free_credentials(cred);
	return t / n;
}

static int
cmd_ceiling(const struct opts *o)
{
	struct softdev_ca *ca = load_ca(o);
	struct softdev **devs = make_devices(o, ca, o->ek, o->count);
	struct attest_trust *trust = NULL;
	double t_ek = 0, t_ak = 0, t_mc = 0, t_q = 0, t;
	time_t now = time(NULL);
	enum attest_reason why;

	if (attest_trust_load(o->trust, &trust) < 0)
		die("trust directory '%s'", o->trust);
	for (int i = 0; i < o->count; i++) {
		const struct softdev *d = devs[i];
		struct attest_key *ek = NULL, *ak = NULL;
		struct attest_challenge *c = NULL;
		struct attest_response resp = { 0 };
		struct softdev_quote q;
		TPML_PCR_SELECTION sel;
		const uint8_t *blob, *seed;
		size_t bl, sl;
		uint8_t secret[32], id[32];

		t = thread_cpu_s();
		if (attest_ek_verify(trust, d->ek_cert, d->ek_cert_len, d->ek_pub, d->ek_pub_len,
				     now, &ek, &why) < 0 ||
		    attest_key_id(ek, id) < 0)
			die("EK: %s", attest_reason_code(why));
		t_ek += thread_cpu_s() - t;
		t = thread_cpu_s();
		if (attest_ak_new(d->ak_pub, d->ak_pub_len, &ak, &why) < 0)
			die("AK: %s", attest_reason_code(why));
		t_ak += thread_cpu_s() - t;
		t = thread_cpu_s();
		if (attest_challenge_new_keys(ek, ak, d->wg_pub, now, 60, &c, &why) < 0)
			die("challenge: %s", attest_reason_code(why));
		t_mc += thread_cpu_s() - t;
		attest_challenge_credential(c, &blob, &bl);
		attest_challenge_encrypted_seed(c, &seed, &sl);
		if (softdev_activate(d, blob, bl, seed, sl, secret) < 0 ||
		    tpm2_pcr_selection_parse("sha256:0,1,7", &sel) < 0 ||
		    softdev_quote(d, attest_challenge_nonce(c), d->wg_pub, &sel, &q) < 0)
			die("device");
		resp.secret = secret;
		resp.secret_len = 32;
		resp.quote = q.quote;
		resp.quote_len = q.quote_len;
		resp.signature = q.sig;
		resp.signature_len = q.sig_len;
		resp.pcrs = q.pcrs;
		resp.pcrs_len = q.pcrs_len;
		t = thread_cpu_s();
		if (attest_complete(c, &resp, NULL, now, &why) < 0)
			die("complete: %s", attest_reason_code(why));
		t_q += thread_cpu_s() - t;
		attest_challenge_free(c);
		attest_key_free(ak);
		attest_key_free(ek);
	}
	t = t_ek + t_ak + t_mc + t_q;
	printf("ceiling  %-7s http   n %5d  per enrollment %6.3f ms (EK chain+key %.3f, AK %.3f, "
	       "MakeCredential %.3f, quote %.3f)  = %.0f enr/s per core\n",
	       tpm2_ek_info(o->ek)->name, o->count, t * 1e3 / o->count, t_ek * 1e3 / o->count,
	       t_ak * 1e3 / o->count, t_mc * 1e3 / o->count, t_q * 1e3 / o->count,
	       o->count / t);
	if (o->tls_cert != NULL) {
		double t_tls = tls_server_handshakes(o, o->count);

		t = t / o->count + t_tls;
		printf("ceiling  %-7s https  n %5d  per enrollment %6.3f ms (attestation %.3f, TLS "
		       "handshake %.3f)  = %.0f enr/s per core\n",
		       tpm2_ek_info(o->ek)->name, o->count, t * 1e3, (t - t_tls) * 1e3,
		       t_tls * 1e3, 1 / t);
	}
	attest_trust_free(trust);
	free_devices(devs, o->count);
	softdev_ca_free(ca);
	return 0;
}

/* ---- smoke: enrollments and the negative cross-check ------------------------------------- */

static int
cmd_smoke(const struct opts *o)
{
	static const struct {
		enum fault fault;
		const char *what, *want;
	} neg[] = {
		{ F_SECRET, "wrong secret", "secret_mismatch" },
		{ F_EXTRADATA, "quote over another nonce (extraData)",
		  "quote_qualifying_data_mismatch" },
		{ F_PCR, "PCR value edited after the quote", "pcr_digest_mismatch" },
	};
	struct softdev_ca *ca = load_ca(o);
	int fails = 0;
	char code[64];

	for (int t = 0; t < TPM2_EK_TYPE_COUNT; t++) {
		struct softdev **devs = make_devices(o, ca, (enum tpm2_ek_type)t, 2);

		for (int i = 0; i < 2; i++) {
			CURL *c = curl_easy_init();
			long st = enroll(c, o, o->url, devs[i], F_NONE, code);

			curl_easy_cleanup(c);
			printf("%s %s EK enrolls (HTTP %ld %s)\n", st == 200 ? "ok  " : "FAIL",
			       tpm2_ek_info((enum tpm2_ek_type)t)->name, st, code);
			fails += st != 200;
		}
		free_devices(devs, 2);
	}
	for (size_t k = 0; k < sizeof(neg) / sizeof(neg[0]); k++) {
		struct softdev **devs = make_devices(o, ca, TPM2_EK_ECC_P256, 1);
		CURL *c = curl_easy_init();
		long st = enroll(c, o, o->url, devs[0], neg[k].fault, code);
		bool ok = st == 403 && strcmp(code, neg[k].want) == 0;

		curl_easy_cleanup(c);
		printf("%s %s: HTTP %ld %s (want 403 %s)\n", ok ? "ok  " : "FAIL", neg[k].what, st,
		       code, neg[k].want);
		fails += !ok;
		free_devices(devs, 1);
	}
	softdev_ca_free(ca);
	printf("%d check(s) failed\n", fails);
	return fails ? 1 : 0;
}

static int
cmd_ca(int argc, char **argv)
{
	struct softdev_ca *ca = NULL;

	if (argc != 3)
		die("usage: enroll_bench ca CERT KEY");
	if (softdev_ca_new(&ca) < 0 || softdev_ca_save(ca, argv[1], argv[2]) < 0)
		die("cannot make the CA");
	softdev_ca_free(ca);
	return 0;
}

static int
cmd_pcr_policy(int argc, char **argv)
{
	printf("[");
	for (int i = 1; i < argc; i++) {
		uint8_t v[32];

		softdev_pcr_value((unsigned)atoi(argv[i]), v);
		printf("%s{\"index\":%d,\"sha256\":\"", i > 1 ? "," : "", atoi(argv[i]));
		for (int k = 0; k < 32; k++)
			printf("%02x", v[k]);
		printf("\"}");
	}
	printf("]\n");
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "url", required_argument, NULL, 'u' },   { "ca", required_argument, NULL, 'a' },
		{ "token", required_argument, NULL, 't' }, { "ek", required_argument, NULL, 'e' },
		{ "tls-ca", required_argument, NULL, 's' }, { "keepalive", no_argument, NULL, 'k' },
		{ "pid", required_argument, NULL, 'p' },   { "label", required_argument, NULL, 'l' },
		{ "trust", required_argument, NULL, 'T' }, { "pg-pid", required_argument, NULL, 'P' },
		{ "tls-cert", required_argument, NULL, 'C' }, { "tls-key", required_argument, NULL, 'K' },
		{ "wg-pid", required_argument, NULL, 'W' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .ek = TPM2_EK_ECC_P256, .conc = 1, .count = 100 };
	const char *cmd;
	char *comma;
	int ch, r;

	if (argc < 2)
		die("usage: enroll_bench ca|pcr-policy|run|ceiling|smoke ...");
	cmd = argv[1];
	if (strcmp(cmd, "ca") == 0)
		return cmd_ca(argc - 1, argv + 1);
	if (strcmp(cmd, "pcr-policy") == 0)
		return cmd_pcr_policy(argc - 1, argv + 1);
	optind = 2;
	while ((ch = getopt_long(argc, argv, "c:n:", lo, NULL)) != -1) {
		switch (ch) {
		case 'u':
			if (o.n_urls == MAX_NODES)
				die("at most %d --url", MAX_NODES);
			o.urls[o.n_urls++] = optarg;
			o.url = o.urls[0];
			break;
		case 't': o.token = optarg; break;
		case 's':
			o.tls_ca = optarg;
			tls_trust = X509_STORE_new();
			if (tls_trust == NULL || X509_STORE_load_file(tls_trust, optarg) != 1)
				die("--tls-ca %s: cannot load it", optarg);
			break;
		case 'k': o.keepalive = true; break;
		case 'p':
			if (o.n_pids == MAX_NODES)
				die("at most %d --pid", MAX_NODES);
			o.pids[o.n_pids++] = atoi(optarg);
			break;
		case 'P': o.pg_pid = atoi(optarg); break;
		case 'W': o.wg_pid = atoi(optarg); break;
		case 'l': o.label = optarg; break;
		case 'T': o.trust = optarg; break;
		case 'C': o.tls_cert = optarg; break;
		case 'K': o.tls_key = optarg; break;
		case 'c': o.conc = atoi(optarg); break;
		case 'n': o.count = atoi(optarg); break;
		case 'e':
			if (tpm2_ek_type_parse(optarg, &o.ek) < 0)
				die("--ek rsa2048|p256|p384");
			break;
		case 'a':
			comma = strchr(optarg, ',');
			if (comma == NULL)
				die("--ca CERT,KEY");
			snprintf(o.ca_cert, sizeof(o.ca_cert), "%.*s", (int)(comma - optarg), optarg);
			snprintf(o.ca_key, sizeof(o.ca_key), "%s", comma + 1);
			break;
		default:
			die("bad option");
		}
	}
	if (!o.ca_cert[0] || o.conc < 1 || o.count < 1)
		die("--ca, -c >= 1 and -n >= 1 are needed");
	if (strcmp(cmd, "ceiling") == 0) {
		if (o.trust == NULL)
			die("ceiling needs --trust");
		if ((o.tls_cert == NULL) != (o.tls_key == NULL))
			die("--tls-cert and --tls-key go together");
		return cmd_ceiling(&o);
	}
	if (o.url == NULL || o.token == NULL)
		die("--url and --token are needed");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(cmd, "run") == 0)
		r = cmd_run(&o);
	else if (strcmp(cmd, "smoke") == 0)
		r = cmd_smoke(&o);
	else
		die("unknown command '%s'", cmd);
	curl_global_cleanup();
	return r;
}
