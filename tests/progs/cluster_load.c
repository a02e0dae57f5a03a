// SPDX-License-Identifier: MIT
/*
 * cluster_load: enrollment load against several enrolld nodes, for the failover test
 * (tests/integration/cluster_failover.sh). Software TPM devices (tests/bench/softdev, a new
 * device per enrollment), CONC threads, each enrollment's challenge and completion on the
 * same node, the nodes taken in turn. Unlike enroll_bench it records every answer, so that
 * the test can check that each acknowledged enrollment is in the database afterwards.
 *
 *   cluster_load --ca CERT,KEY --token T [--tls-ca FILE] [-c CONC] [-s SECONDS] URL...
 *
 * Runs SECONDS (default 30) or until SIGTERM/SIGINT, then waits for the enrollments under
 * way. One line per enrollment on stdout, flushed:
 *   <unix time> <node index> <HTTP status of the last request> <device id|-> <address|->
 *   <WireGuard public key, base64> <error code|->
 * 0 as status: no answer (connection refused, timeout). The summary on stderr.
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/crypto.h>

#include "common/b64.h"
#include "common/key.h"
#include "tests/bench/softdev/softdev.h"

#define MAX_URLS 8

struct opts {
	const char *urls[MAX_URLS], *token, *tls_ca;
	int n_urls, conc, seconds;
	char ca_cert[1024], ca_key[1024];
};

static atomic_int stop;
static atomic_int next_node, n_ok, n_fail;
static pthread_mutex_t out_lock = PTHREAD_MUTEX_INITIALIZER;
static const struct softdev_ca *g_ca;

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "cluster_load: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

static void
on_signal(int sig)
{
	(void)sig;
	atomic_store(&stop, 1);
}

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

/* POST @body to @url@path; the HTTP status (0: no answer), *ret the parsed answer. */
static long
post(CURL *c, const struct opts *o, const char *url, const char *path, json_t *body,
     json_t **ret)
{
	struct curl_slist *hdr = curl_slist_append(NULL, "Content-Type: application/json");
	struct buf b = { 0 };
	char full[512], *text = json_dumps(body, JSON_COMPACT);
	long status = 0;

	snprintf(full, sizeof(full), "%s%s", url, path);
	curl_easy_setopt(c, CURLOPT_URL, full);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, 3L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 20L);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	if (o->tls_ca != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->tls_ca);
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

/* One enrollment of a new device through node @node; prints its line. */
static void
enroll_one(CURL *c, const struct opts *o, int node)
{
	uint8_t *blob = NULL, *seed = NULL, *nonce = NULL, secret[32];
	size_t blob_len = 0, seed_len = 0, nonce_len = 0;
	char wg_b64[WG_KEY_B64_LEN], code[64] = "-", dev[32] = "-", addr[64] = "-";
	const char *url = o->urls[node], *session, *spec, *s;
	struct softdev *d = NULL;
	struct softdev_quote q;
	TPML_PCR_SELECTION sel;
	json_t *req, *resp = NULL, *v;
	long status;

	if (softdev_new(g_ca, TPM2_EK_ECC_P256, NULL, &d) < 0)
		die("software device");
	key_to_base64(wg_b64, d->wg_pub);
	req = json_pack("{s:o,s:o,s:o,s:s,s:s}", "ek_cert", b64j(d->ek_cert, d->ek_cert_len),
			"ek_public", b64j(d->ek_pub, d->ek_pub_len), "ak_public",
			b64j(d->ak_pub, d->ak_pub_len), "wg_public_key", wg_b64, "token", o->token);
	status = post(c, o, url, "/v1/enroll/challenge", req, &resp);
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
	if (tpm2_pcr_selection_parse(spec[0] ? spec : "sha256:0,1,7", &sel) < 0 ||
	    softdev_quote(d, nonce, d->wg_pub, &sel, &q) < 0)
		die("quote");
	req = json_pack("{s:s,s:o,s:o,s:o,s:o}", "session", session, "secret",
			b64j(secret, sizeof(secret)), "quote", b64j(q.quote, q.quote_len),
			"signature", b64j(q.sig, q.sig_len), "pcrs", b64j(q.pcrs, q.pcrs_len));
	OPENSSL_cleanse(secret, sizeof(secret));
	json_decref(resp);
	resp = NULL;
	status = post(c, o, url, "/v1/enroll/complete", req, &resp);
	json_decref(req);
out:
	if (status == 200 && resp != NULL) {
		v = json_object_get(resp, "device_id");
		if (json_is_string(v))
			snprintf(dev, sizeof(dev), "%s", json_string_value(v));
		else if (json_is_integer(v))
			snprintf(dev, sizeof(dev), "%lld", (long long)json_integer_value(v));
		s = json_string_value(json_object_get(resp, "address"));
		if (s != NULL)
			snprintf(addr, sizeof(addr), "%s", s);
	} else if (resp != NULL) {
		s = json_string_value(json_object_get(json_object_get(resp, "error"), "code"));
		if (s != NULL && s[0])
			snprintf(code, sizeof(code), "%s", s);
	}
	atomic_fetch_add(status == 200 ? &n_ok : &n_fail, 1);
	pthread_mutex_lock(&out_lock);
	printf("%lld %d %ld %s %s %s %s\n", (long long)time(NULL), node, status, dev, addr, wg_b64,
	       code);
	fflush(stdout);
	pthread_mutex_unlock(&out_lock);
	json_decref(resp);
	free(blob);
	free(seed);
	free(nonce);
	softdev_free(d);
}

static void *
run_thread(void *arg)
{
	const struct opts *o = arg;
	CURL *c = curl_easy_init();

	if (c == NULL)
		die("curl_easy_init");
	while (!atomic_load(&stop))
		enroll_one(c, o, atomic_fetch_add(&next_node, 1) % o->n_urls);
	curl_easy_cleanup(c);
	return NULL;
}

int
main(int argc, char **argv)
{
	static const struct option lo[] = {
		{ "ca", required_argument, NULL, 'a' },
		{ "token", required_argument, NULL, 't' },
		{ "tls-ca", required_argument, NULL, 'T' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .conc = 2, .seconds = 30 };
	struct softdev_ca *ca = NULL;
	pthread_t th[64];
	struct sigaction sa = { .sa_handler = on_signal };
	char *comma;
	int ch;

	while ((ch = getopt_long(argc, argv, "c:s:", lo, NULL)) != -1) {
		switch (ch) {
		case 't': o.token = optarg; break;
		case 'T': o.tls_ca = optarg; break;
		case 'c': o.conc = atoi(optarg); break;
		case 's': o.seconds = atoi(optarg); break;
		case 'a':
			comma = strchr(optarg, ',');
			if (comma == NULL)
				die("--ca CERT,KEY");
			snprintf(o.ca_cert, sizeof(o.ca_cert), "%.*s", (int)(comma - optarg), optarg);
			snprintf(o.ca_key, sizeof(o.ca_key), "%s", comma + 1);
			break;
		default:
			die("usage: cluster_load --ca CERT,KEY --token T [--tls-ca F] [-c N] [-s S] URL...");
		}
	}
	for (; optind < argc && o.n_urls < MAX_URLS; optind++)
		o.urls[o.n_urls++] = argv[optind];
	if (!o.ca_cert[0] || o.token == NULL || o.n_urls == 0 || o.conc < 1 || o.conc > 64 ||
	    o.seconds < 1)
		die("--ca, --token, 1 <= -c <= 64, -s >= 1 and at least one URL are needed");
	if (softdev_ca_load(o.ca_cert, o.ca_key, &ca) < 0)
		die("cannot load the CA '%s', '%s'", o.ca_cert, o.ca_key);
	g_ca = ca;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);
	curl_global_init(CURL_GLOBAL_DEFAULT);
	for (int i = 0; i < o.conc; i++)
		if (pthread_create(&th[i], NULL, run_thread, &o) != 0)
			die("pthread_create");
	for (int i = 0; i < o.seconds * 10 && !atomic_load(&stop); i++)
		usleep(100000);
	atomic_store(&stop, 1);
	for (int i = 0; i < o.conc; i++)
		pthread_join(th[i], NULL);
	curl_global_cleanup();
	softdev_ca_free(ca);
	fprintf(stderr, "cluster_load: %d acknowledged, %d not\n", atomic_load(&n_ok),
		atomic_load(&n_fail));
	return 0;
}
