// SPDX-License-Identifier: MIT
/*
 * In-memory metrics in the Prometheus text format. Request latencies are a histogram
 * per route pattern (bounded cardinality: patterns, not paths) and status class.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/enrolld.h"

static const double latency_buckets[] = { 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
	2.5, 5 };
#define N_BUCKETS (sizeof(latency_buckets) / sizeof(latency_buckets[0]))
#define MAX_SERIES 128

struct latency_series {
	char route[96];
	unsigned int status_class; /* 2, 4, 5 */
	uint64_t buckets[N_BUCKETS];
	uint64_t count;
	double sum;
};

static pthread_mutex_t metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static struct latency_series series[MAX_SERIES];
static size_t n_series;

/* Labelled counters and gauges with a bounded number of series each. */
#define MAX_LABELLED 256
struct labelled {
	char a[64]; /* first label value */
	char b[32]; /* second label value ("" if the metric has one label) */
	uint64_t v;
};

static struct labelled enrollments[MAX_LABELLED];
static size_t n_enrollments;
static struct labelled attest_failures[MAX_LABELLED];
static size_t n_attest_failures;
static struct labelled refused[MAX_LABELLED];
static size_t n_refused;
static struct labelled devices[MAX_LABELLED];
static size_t n_devices;
/* per tenant: v = longest current down time; pool size and use in their own tables */
static struct labelled down_longest[MAX_LABELLED], pool_size[MAX_LABELLED],
	pool_used[MAX_LABELLED];
static size_t n_down_longest, n_pool_size, n_pool_used;

/* The series (@a, @b) of @arr, created if needed; NULL when the table is full. */
static struct labelled *
labelled_find(struct labelled *arr, size_t *n, const char *a, const char *b)
{
	for (size_t i = 0; i < *n; i++)
		if (strcmp(arr[i].a, a) == 0 && strcmp(arr[i].b, b) == 0)
			return &arr[i];
	if (*n == MAX_LABELLED)
		return NULL;
	snprintf(arr[*n].a, sizeof(arr[*n].a), "%s", a);
	snprintf(arr[*n].b, sizeof(arr[*n].b), "%s", b);
	arr[*n].v = 0;
	return &arr[(*n)++];
}

/* Count one more of @a in @arr. */
static void
labelled_count(struct labelled *arr, size_t *n, const char *a)
{
	struct labelled *l;

	pthread_mutex_lock(&metrics_lock);
	l = labelled_find(arr, n, a, "");
	if (l != NULL)
		l->v++;
	pthread_mutex_unlock(&metrics_lock);
}

void
metrics_count_enrollment(const char *result)
{
	labelled_count(enrollments, &n_enrollments, result);
}

void
metrics_count_attest_failure(const char *reason)
{
	labelled_count(attest_failures, &n_attest_failures, reason);
}

void
metrics_count_refused(const char *reason)
{
	labelled_count(refused, &n_refused, reason);
}

void
metrics_set_devices(const char *tenant, const char *state, uint64_t n)
{
	struct labelled *l;

	pthread_mutex_lock(&metrics_lock);
	l = labelled_find(devices, &n_devices, tenant, state);
	if (l != NULL)
		l->v = n;
	pthread_mutex_unlock(&metrics_lock);
}

static void
labelled_set(struct labelled *arr, size_t *n, const char *a, uint64_t v)
{
	struct labelled *l = labelled_find(arr, n, a, "");

	if (l != NULL)
		l->v = v;
}

void
metrics_set_tenant(const char *tenant, uint64_t down, uint64_t size, uint64_t used)
{
	pthread_mutex_lock(&metrics_lock);
	labelled_set(down_longest, &n_down_longest, tenant, down);
	labelled_set(pool_size, &n_pool_size, tenant, size);
	labelled_set(pool_used, &n_pool_used, tenant, used);
	pthread_mutex_unlock(&metrics_lock);
}

void
metrics_observe_request(const char *route, unsigned int status, double seconds)
{
	unsigned int cls = status / 100;
	struct latency_series *s = NULL;

	pthread_mutex_lock(&metrics_lock);
	for (size_t i = 0; i < n_series; i++)
		if (series[i].status_class == cls && strcmp(series[i].route, route) == 0) {
			s = &series[i];
			break;
		}
	if (s == NULL && n_series < MAX_SERIES) {
		s = &series[n_series++];
		snprintf(s->route, sizeof(s->route), "%s", route);
		s->status_class = cls;
	}
	if (s != NULL) {
		for (size_t b = 0; b < N_BUCKETS; b++)
			if (seconds <= latency_buckets[b])
				s->buckets[b]++;
		s->count++;
		s->sum += seconds;
	}
	pthread_mutex_unlock(&metrics_lock);
}

static void
render_tenant_gauge(FILE *f, const char *name, const char *help, const struct labelled *arr,
	size_t n)
{
	fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", name, help, name);
	for (size_t i = 0; i < n; i++)
		fprintf(f, "%s{tenant=\"%s\"} %llu\n", name, arr[i].a,
			(unsigned long long)arr[i].v);
}

char *
metrics_render(const struct store_stats *st)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	f = open_memstream(&buf, &len);
	if (f == NULL)
		return NULL;
	fputs("# HELP enrolld_http_request_duration_seconds Time to answer an API request.\n"
	      "# TYPE enrolld_http_request_duration_seconds histogram\n",
		f);
	pthread_mutex_lock(&metrics_lock);
	for (size_t i = 0; i < n_series; i++) {
		const struct latency_series *s = &series[i];

		for (size_t b = 0; b < N_BUCKETS; b++)
			fprintf(f,
				"enrolld_http_request_duration_seconds_bucket{route=\"%s\",code=\"%uxx\","
				"le=\"%g\"} %llu\n",
				s->route, s->status_class, latency_buckets[b],
				(unsigned long long)s->buckets[b]);
		fprintf(f,
			"enrolld_http_request_duration_seconds_bucket{route=\"%s\",code=\"%uxx\","
			"le=\"+Inf\"} %llu\n",
			s->route, s->status_class, (unsigned long long)s->count);
		fprintf(f, "enrolld_http_request_duration_seconds_sum{route=\"%s\",code=\"%uxx\"} %.6f\n",
			s->route, s->status_class, s->sum);
		fprintf(f, "enrolld_http_request_duration_seconds_count{route=\"%s\",code=\"%uxx\"} %llu\n",
			s->route, s->status_class, (unsigned long long)s->count);
	}
	fputs("# HELP enrolld_enrollments_total Enrollment completions by result.\n"
	      "# TYPE enrolld_enrollments_total counter\n",
		f);
	for (size_t i = 0; i < n_enrollments; i++)
		fprintf(f, "enrolld_enrollments_total{result=\"%s\"} %llu\n", enrollments[i].a,
			(unsigned long long)enrollments[i].v);
	fputs("# HELP enrolld_attestation_failures_total Rejected attestations by reason.\n"
	      "# TYPE enrolld_attestation_failures_total counter\n",
		f);
	for (size_t i = 0; i < n_attest_failures; i++)
		fprintf(f, "enrolld_attestation_failures_total{reason=\"%s\"} %llu\n",
			attest_failures[i].a, (unsigned long long)attest_failures[i].v);
	fputs("# HELP enrolld_http_refused_total Requests and connections refused or cut to bound "
	      "what clients cost, by reason.\n"
	      "# TYPE enrolld_http_refused_total counter\n",
		f);
	for (size_t i = 0; i < n_refused; i++)
		fprintf(f, "enrolld_http_refused_total{reason=\"%s\"} %llu\n", refused[i].a,
			(unsigned long long)refused[i].v);
	fputs("# HELP enrolld_devices Devices by tenant and state (up, down, never, revoked).\n"
	      "# TYPE enrolld_devices gauge\n",
		f);
	for (size_t i = 0; i < n_devices; i++)
		fprintf(f, "enrolld_devices{tenant=\"%s\",state=\"%s\"} %llu\n", devices[i].a,
			devices[i].b, (unsigned long long)devices[i].v);
	render_tenant_gauge(f, "enrolld_devices_down_longest_seconds",
		"The longest a device of the tenant has now been down (0: none is down).",
		down_longest, n_down_longest);
	render_tenant_gauge(f, "enrolld_address_pool_size",
		"IPv4 addresses of the tenant's prefix that devices can get.", pool_size,
		n_pool_size);
	render_tenant_gauge(f, "enrolld_address_pool_used",
		"Of those, held by a device (active or revoked).", pool_used, n_pool_used);
	pthread_mutex_unlock(&metrics_lock);
	fprintf(f, "# HELP enrolld_store_commits_total Write transactions the store committed.\n"
	      "# TYPE enrolld_store_commits_total counter\n"
	      "enrolld_store_commits_total %llu\n"
	      "# HELP enrolld_store_lazy_commits_total Of those, committed without waiting "
	      "for the disk (open attestation sessions).\n"
	      "# TYPE enrolld_store_lazy_commits_total counter\n"
	      "enrolld_store_lazy_commits_total %llu\n"
	      "# HELP enrolld_store_writes_total Write operations in them (several "
	      "concurrent ones share a commit).\n"
	      "# TYPE enrolld_store_writes_total counter\n"
	      "enrolld_store_writes_total %llu\n",
		(unsigned long long)st->commits, (unsigned long long)st->lazy_commits,
		(unsigned long long)st->operations);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
