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

char *
metrics_render(void)
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
	pthread_mutex_unlock(&metrics_lock);
	if (fclose(f) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}
