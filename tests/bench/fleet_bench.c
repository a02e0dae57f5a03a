// SPDX-License-Identifier: MIT
/*
 * The 1,000,000-device fleet benchmark's programs (driven by tests/bench/fleet_run.sh; not a
 * test):
 *
 *   fleet_bench populate -d DB -n N -t TENANTS -i IFPREFIX -p PORT [-j THREADS]
 *       Create TENANTS tenants (fleet0.., interfaces IFPREFIX0.., listen ports PORT..,
 *       10.(16 k + 16).0.0/12 each) and an enrollment token, then N active devices spread
 *       evenly over them, enrolled through store_enroll() (the call enrolld's enrollment
 *       makes after attestation: token use, lowest free address, device record and indexes,
 *       an "enrolled" event, in one durable transaction) by THREADS (64) threads, so the
 *       store's writer groups them into commits. Prints the time and enrollments/s.
 *   fleet_bench verify -d DB
 *       Time store_open() and store_verify() (the consistency check enrolld runs before it
 *       serves) on DB apart, as enrolld's start does them.
 *   fleet_bench readall -d DB -T TENANT
 *       Time store_device_list_all() of TENANT's active devices (what a node taking the
 *       tenant over, or reconciling it, reads), three times.
 *   DB "postgresql:CONNINFO" is the PostgreSQL backend on that libpq connection string
 *   (tests/bench/pg_fleet.sh), with a KEK made up for the run (no sealed secret is kept).
 *   fleet_bench list -u URL -a TOKEN [-c CA] [-l LIMIT]
 *       GET /v1/devices?limit=LIMIT (1000), following next_cursor to the end over one
 *       keep-alive connection; prints devices, pages, bytes, total time and per page
 *       (median, p99, max) of the HTTP exchange, and the client's JSON parsing apart.
 *   fleet_bench sse -u URL -a TOKEN [-c CA] -f LAST_EVENT_ID -e UNTIL
 *       GET /v1/events with Last-Event-ID: LAST_EVENT_ID, read until the event UNTIL has
 *       arrived; prints the time to the first byte, to the first event, to UNTIL, the events
 *       and bytes received.
 */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>

#include "enrolld/store.h"

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double
pct(double *v, size_t n, double p)
{
	size_t i;

	if (n == 0)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	i = (size_t)(p * (double)(n - 1) + 0.5);
	return v[i];
}

/* ---- populate ---- */

struct worker {
	struct store *s;
	unsigned int n_tenants;
	uint64_t first, count; /* device numbers first .. first + count - 1 */
	int err;
};

static void
fill(uint8_t out[32], uint8_t tag, uint64_t n)
{
	/* distinct and spread: the number's bytes, then a multiplicative hash of it */
	uint64_t h = (n + 1) * 0x9e3779b97f4a7c15ULL;

	memset(out, tag, 32);
	memcpy(out, &h, 8);
	memcpy(out + 8, &n, 8);
}

/* DB "postgresql:CONNINFO": the PostgreSQL backend; otherwise an LMDB directory */
static const char *
backend_of(const char *db, struct store_options *o, uint8_t kek[STORE_KEK_LEN])
{
	if (strncmp(db, "postgresql:", 11) != 0)
		return db;
	o->backend = STORE_BACKEND_POSTGRESQL;
	for (size_t i = 0; i < STORE_KEK_LEN; i++)
		kek[i] = (uint8_t)(i * 37 + 11); /* guards no secret: the run makes none */
	o->kek = kek;
	return db + 11;
}

static void *
populate_worker(void *arg)
{
	struct worker *w = arg;
	struct store_enroll_req req = { 0 };

	req.kind = STORE_ATTEST_TPM;
	req.has_token = true;
	for (uint64_t i = w->first; i < w->first + w->count; i++) {
		int r;

		snprintf(req.tenant, sizeof(req.tenant), "fleet%u",
			(unsigned int)(i % w->n_tenants));
		fill(req.token_hash, 0x70, i % w->n_tenants); /* the tenant's token */
		fill(req.ek_hash, 0xe0, i);
		fill(req.wg_pubkey, 0x40, i);
		r = store_enroll(w->s, &req, NULL);
		if (r < 0) {
			w->err = r;
			break;
		}
	}
	return NULL;
}

static int
populate(int argc, char **argv)
{
	const char *db = NULL, *ifprefix = "fl";
	unsigned long n = 0, tenants = 4, threads = 64, port = 51900;
	struct store_options o = { .map_size = UINT64_C(1) << 32 };
	uint8_t kek[STORE_KEK_LEN];
	struct store_stats st0, st1;
	struct worker *w = NULL;
	pthread_t *th = NULL;
	struct store *s = NULL;
	double t0, t1;
	int c, r;

	while ((c = getopt(argc, argv, "d:n:t:i:p:j:")) != -1) {
		switch (c) {
		case 'd':
			db = optarg;
			break;
		case 'n':
			n = strtoul(optarg, NULL, 10);
			break;
		case 't':
			tenants = strtoul(optarg, NULL, 10);
			break;
		case 'i':
			ifprefix = optarg;
			break;
		case 'p':
			port = strtoul(optarg, NULL, 10);
			break;
		case 'j':
			threads = strtoul(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (db == NULL || n == 0 || tenants == 0 || tenants > 14 || threads == 0 ||
		threads > 1024) {
		fprintf(stderr, "usage: fleet_bench populate -d DB -n N [-t TENANTS (1-14)] "
				"[-i IFPREFIX] [-p PORT] [-j THREADS]\n");
		return 2;
	}
	r = store_open(&s, backend_of(db, &o, kek), &o);
	if (r < 0) {
		fprintf(stderr, "store_open '%s': %s\n", db, strerror(-r));
		return 1;
	}
	for (unsigned int k = 0; k < tenants; k++) {
		struct store_tenant t = { 0 };
		char p[32];

		snprintf(t.name, sizeof(t.name), "fleet%u", k);
		snprintf(t.ifname, sizeof(t.ifname), "%s%u", ifprefix, k);
		snprintf(t.endpoint, sizeof(t.endpoint), "192.0.2.1:%lu", port + k);
		t.listen_port = (uint16_t)(port + k);
		t.keepalive = 25;
		snprintf(p, sizeof(p), "10.%u.0.0/12", 16 * k + 16);
		addr_prefix_parse(&t.prefix4, p);
		r = store_tenant_create(s, &t);
		if (r == 0) {
			struct store_token tok = { 0 };

			snprintf(tok.tenant, sizeof(tok.tenant), "fleet%u", k);
			fill(tok.hash, 0x70, k);
			tok.uses_left = UINT32_MAX;
			r = store_token_create(s, &tok);
		}
		if (r < 0) {
			fprintf(stderr, "tenant %s: %s\n", t.name, strerror(-r));
			goto out;
		}
	}
	w = calloc(threads, sizeof(*w));
	th = calloc(threads, sizeof(*th));
	if (w == NULL || th == NULL) {
		r = -ENOMEM;
		goto out;
	}
	store_get_stats(s, &st0);
	t0 = now_s();
	for (unsigned long i = 0; i < threads; i++) {
		w[i] = (struct worker){ .s = s,
			.n_tenants = (unsigned int)tenants,
			.first = n * i / threads,
			.count = n * (i + 1) / threads - n * i / threads };
		pthread_create(&th[i], NULL, populate_worker, &w[i]);
	}
	r = 0;
	for (unsigned long i = 0; i < threads; i++) {
		pthread_join(th[i], NULL);
		if (w[i].err < 0 && r == 0)
			r = w[i].err;
	}
	t1 = now_s();
	store_get_stats(s, &st1);
	if (r < 0) {
		fprintf(stderr, "store_enroll: %s\n", strerror(-r));
		goto out;
	}
	printf("populate: %lu devices in %lu tenants by %lu threads: %.1f s, %.0f enrollments/s, "
	       "%.1f per commit (durable commits, store_enroll)\n",
		n, tenants, threads, t1 - t0, (double)n / (t1 - t0),
		(double)(st1.operations - st0.operations) /
			(double)(st1.commits - st0.commits ? st1.commits - st0.commits : 1));
out:
	store_free(s);
	free(w);
	free(th);
	return r < 0 ? 1 : 0;
}

static int
verify(int argc, char **argv)
{
	struct store *s = NULL;
	char why[256];
	double t0, t1, t2;
	int c, r;
	const char *db = NULL;
	struct store_options o = { 0 };
	uint8_t kek[STORE_KEK_LEN];

	while ((c = getopt(argc, argv, "d:")) != -1) {
		if (c != 'd')
			return 2;
		db = optarg;
	}
	if (db == NULL)
		return 2;
	t0 = now_s();
	r = store_open(&s, backend_of(db, &o, kek), &o);
	t1 = now_s();
	if (r == 0)
		r = store_verify(s, why, sizeof(why));
	t2 = now_s();
	store_free(s);
	if (r < 0) {
		fprintf(stderr, "verify '%s': %s (%s)\n", db, strerror(-r), why);
		return 1;
	}
	printf("verify: store_open %.3f s, store_verify %.3f s\n", t1 - t0, t2 - t1);
	printf("TSV\tverify\t%.4f\t%.4f\n", t1 - t0, t2 - t1);
	return 0;
}

static int
readall(int argc, char **argv)
{
	struct store_options o = { 0 };
	uint8_t kek[STORE_KEK_LEN];
	const char *db = NULL, *tenant = NULL;
	struct store *s = NULL;
	int c, r;

	while ((c = getopt(argc, argv, "d:T:")) != -1) {
		if (c == 'd')
			db = optarg;
		else if (c == 'T')
			tenant = optarg;
		else
			return 2;
	}
	if (db == NULL || tenant == NULL)
		return 2;
	r = store_open(&s, backend_of(db, &o, kek), &o);
	for (int k = 0; r == 0 && k < 3; k++) {
		struct store_device *devs = NULL;
		size_t n = 0;
		double t0 = now_s();

		r = store_device_list_all(s, tenant, STORE_DEVICE_ACTIVE, &devs, &n);
		if (r == 0)
			printf("readall: %zu active devices of '%s' in %.3f s\n", n, tenant,
			       now_s() - t0);
		free(devs);
	}
	store_free(s);
	if (r < 0) {
		fprintf(stderr, "readall '%s': %s\n", db, strerror(-r));
		return 1;
	}
	return 0;
}

/* ---- HTTP client ---- */

struct buf {
	char *p;
	size_t len, cap;
};

static size_t
on_data(char *d, size_t sz, size_t nm, void *arg)
{
	struct buf *b = arg;
	size_t n = sz * nm;

	if (b->len + n + 1 > b->cap) {
		size_t nc = (b->len + n + 1) * 2;
		char *np = realloc(b->p, nc);

		if (np == NULL)
			return 0;
		b->p = np;
		b->cap = nc;
	}
	memcpy(b->p + b->len, d, n);
	b->len += n;
	b->p[b->len] = '\0';
	return n;
}

struct client_opts {
	const char *url, *token, *ca;
	unsigned long limit;
	uint64_t from, until;
};

static CURL *
client_new(const struct client_opts *o, struct curl_slist **hdr)
{
	CURL *c = curl_easy_init();
	char auth[512];

	if (c == NULL)
		return NULL;
	snprintf(auth, sizeof(auth), "Authorization: Bearer %s", o->token);
	*hdr = curl_slist_append(*hdr, auth);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hdr);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 600L);
	if (o->ca != NULL)
		curl_easy_setopt(c, CURLOPT_CAINFO, o->ca);
	return c;
}

static int
list(const struct client_opts *o)
{
	struct curl_slist *hdr = NULL;
	CURL *c = client_new(o, &hdr);
	struct buf b = { 0 };
	double *pages = NULL, parse = 0, t0, t_all;
	size_t n_pages = 0, cap_pages = 0, n_dev = 0, bytes = 0;
	char url[1024], cursor[32] = "";
	int rc = 1;

	if (c == NULL)
		return 1;
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	t_all = now_s();
	for (;;) {
		json_t *j, *next;
		long code = 0;
		double t1;

		snprintf(url, sizeof(url), "%s/v1/devices?limit=%lu%s%s", o->url, o->limit,
			cursor[0] ? "&cursor=" : "", cursor);
		curl_easy_setopt(c, CURLOPT_URL, url);
		b.len = 0;
		t0 = now_s();
		if (curl_easy_perform(c) != CURLE_OK)
			goto out;
		t1 = now_s();
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &code);
		if (code != 200 || b.p == NULL) {
			fprintf(stderr, "list: HTTP %ld: %s\n", code, b.p ? b.p : "");
			goto out;
		}
		if (n_pages == cap_pages) {
			double *np;

			cap_pages = cap_pages ? 2 * cap_pages : 1024;
			np = realloc(pages, cap_pages * sizeof(*np));
			if (np == NULL)
				goto out;
			pages = np;
		}
		pages[n_pages++] = t1 - t0;
		bytes += b.len;
		j = json_loads(b.p, 0, NULL);
		if (j == NULL)
			goto out;
		n_dev += json_array_size(json_object_get(j, "devices"));
		next = json_object_get(j, "next_cursor");
		if (json_is_string(next))
			snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
		else
			cursor[0] = '\0';
		json_decref(j);
		parse += now_s() - t1;
		if (cursor[0] == '\0')
			break;
	}
	t_all = now_s() - t_all;
	{
		/* the first and the last tenth of the pages: a cursor far into the table must
		 * cost what one at its start does */
		size_t tenth = n_pages >= 10 ? n_pages / 10 : 1;
		double *head = malloc(tenth * sizeof(*head)), *tail = malloc(tenth * sizeof(*tail));
		double exch = 0, h50, t50;

		if (head == NULL || tail == NULL)
			goto out;
		for (size_t i = 0; i < n_pages; i++)
			exch += pages[i];
		memcpy(head, pages, tenth * sizeof(*head));
		memcpy(tail, pages + n_pages - tenth, tenth * sizeof(*tail));
		h50 = pct(head, tenth, 0.5);
		t50 = pct(tail, tenth, 0.5);
		free(head);
		free(tail);
		printf("list: %zu devices in %zu pages of %lu, %.1f MB, %.2f s (%.0f devices/s), "
		       "of "
		       "which HTTP exchanges %.2f s and the client's JSON parsing %.2f s; per "
		       "page: "
		       "median %.2f ms (first tenth %.2f, last tenth %.2f), p99 %.2f ms, max %.2f "
		       "ms\n",
			n_dev, n_pages, o->limit, bytes / 1e6, t_all, n_dev / t_all, exch, parse,
			pct(pages, n_pages, 0.5) * 1e3, h50 * 1e3, t50 * 1e3,
			pct(pages, n_pages, 0.99) * 1e3, pct(pages, n_pages, 1.0) * 1e3);
		printf("TSV\tlist\t%zu\t%zu\t%.4f\t%.3f\t%.3f\t%.3f\t%zu\t%.4f\t%.3f\t%.3f\n",
			n_dev, n_pages, t_all, pct(pages, n_pages, 0.5) * 1e3,
			pct(pages, n_pages, 0.99) * 1e3, pct(pages, n_pages, 1.0) * 1e3, bytes,
			exch, h50 * 1e3, t50 * 1e3);
	}
	rc = 0;
out:
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	free(b.p);
	free(pages);
	return rc;
}

struct sse {
	const struct client_opts *o;
	double t0, first_byte, first_event, done;
	size_t bytes, events;
	char line[256];
	size_t line_len;
};

static size_t
on_sse(char *d, size_t sz, size_t nm, void *arg)
{
	struct sse *s = arg;
	size_t n = sz * nm;

	if (s->first_byte == 0)
		s->first_byte = now_s() - s->t0;
	s->bytes += n;
	for (size_t i = 0; i < n; i++) {
		if (d[i] != '\n') {
			if (s->line_len < sizeof(s->line) - 1)
				s->line[s->line_len++] = d[i];
			continue;
		}
		s->line[s->line_len] = '\0';
		s->line_len = 0;
		if (strncmp(s->line, "id: ", 4) != 0)
			continue;
		if (s->events++ == 0)
			s->first_event = now_s() - s->t0;
		if (strtoull(s->line + 4, NULL, 10) >= s->o->until) {
			s->done = now_s() - s->t0;
			return 0; /* stop: curl ends the transfer */
		}
	}
	return n;
}

static int
sse(const struct client_opts *o)
{
	struct curl_slist *hdr = NULL;
	struct sse s = { .o = o };
	char url[1024], last[64];
	CURL *c;

	snprintf(last, sizeof(last), "Last-Event-ID: %" PRIu64, o->from);
	hdr = curl_slist_append(hdr, last);
	c = client_new(o, &hdr);
	if (c == NULL)
		return 1;
	snprintf(url, sizeof(url), "%s/v1/events", o->url);
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_sse);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &s);
	s.t0 = now_s();
	curl_easy_perform(c);
	curl_easy_cleanup(c);
	curl_slist_free_all(hdr);
	if (s.done == 0) {
		fprintf(stderr, "sse: the stream ended before event %" PRIu64 "\n", o->until);
		return 1;
	}
	printf("sse: after %" PRIu64 " to %" PRIu64 ": %zu events, %.1f MB; first byte %.2f ms, "
	       "first event %.2f ms, all %.3f s (%.0f events/s)\n",
		o->from, o->until, s.events, s.bytes / 1e6, s.first_byte * 1e3, s.first_event * 1e3,
		s.done, s.events / s.done);
	printf("TSV\tsse\t%" PRIu64 "\t%zu\t%.3f\t%.3f\t%.4f\t%zu\n", o->from, s.events,
		s.first_byte * 1e3, s.first_event * 1e3, s.done, s.bytes);
	return 0;
}

static int
client(int argc, char **argv, bool is_sse)
{
	struct client_opts o = { .limit = 1000 };
	int c;

	while ((c = getopt(argc, argv, "u:a:c:l:f:e:")) != -1) {
		switch (c) {
		case 'u':
			o.url = optarg;
			break;
		case 'a':
			o.token = optarg;
			break;
		case 'c':
			o.ca = optarg;
			break;
		case 'l':
			o.limit = strtoul(optarg, NULL, 10);
			break;
		case 'f':
			o.from = strtoull(optarg, NULL, 10);
			break;
		case 'e':
			o.until = strtoull(optarg, NULL, 10);
			break;
		default:
			return 2;
		}
	}
	if (o.url == NULL || o.token == NULL || (is_sse && o.until == 0)) {
		fprintf(stderr, "usage: fleet_bench list|sse -u URL -a TOKEN [-c CA] [-l LIMIT] "
				"[-f FROM -e UNTIL]\n");
		return 2;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	return is_sse ? sse(&o) : list(&o);
}

int
main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "populate"))
		return populate(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "verify"))
		return verify(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "readall"))
		return readall(argc - 1, argv + 1);
	if (argc >= 2 && !strcmp(argv[1], "list"))
		return client(argc - 1, argv + 1, false);
	if (argc >= 2 && !strcmp(argv[1], "sse"))
		return client(argc - 1, argv + 1, true);
	fprintf(stderr, "usage: fleet_bench populate|list|sse ...\n");
	return 2;
}
