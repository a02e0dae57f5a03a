// SPDX-License-Identifier: MIT
/*
 * Benchmark of the store's enrollments (enrolld/store/, LMDB backend): N threads enrolling,
 * with group commit (one writer batches what is queued into one durable commit) and without
 * (one durable commit per enrollment). Not a test: it prints enrollments/s and the ratio.
 *
 *   store_bench [-d DIR] [-n ENROLLMENTS_PER_RUN] [THREADS ...]   (default 1 4 16 64)
 *
 * DIR (default /var/tmp) must be on the disk being measured, not tmpfs.
 */
#include <errno.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "enrolld/store.h"

struct worker {
	struct store *s;
	pthread_barrier_t *start;
	uint32_t first, count;
	int err;
};

static void
fill(uint8_t out[32], uint8_t tag, uint32_t n)
{
	memset(out, 0x33, 32);
	out[0] = tag;
	memcpy(out + 1, &n, 4);
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	struct store_enroll_req req = { 0 };

	strcpy(req.tenant, "bench");
	req.kind = STORE_ATTEST_TPM;
	req.has_token = true;
	fill(req.token_hash, 0x70, 0);
	pthread_barrier_wait(w->start);
	for (uint32_t i = 0; i < w->count; i++) {
		int r;

		fill(req.ek_hash, 0xe0, w->first + i);
		fill(req.wg_pubkey, 0x40, w->first + i);
		r = store_enroll(w->s, &req, NULL);
		if (r < 0) {
			w->err = r;
			break;
		}
	}
	return NULL;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static double
now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

/* One run; returns enrollments per second, or a negative value on error. */
static double
run(const char *base, unsigned int threads, unsigned int total, bool group,
	struct store_stats *ret_stats)
{
	struct store_options o = { .no_group_commit = !group };
	struct store_tenant t = { 0 };
	struct store_token tok = { 0 };
	struct worker *w = calloc(threads, sizeof(*w));
	pthread_t *th = calloc(threads, sizeof(*th));
	pthread_barrier_t start;
	struct store *s = NULL;
	char dir[256];
	double t0, t1, rate = -1;
	int r;

	snprintf(dir, sizeof(dir), "%s/store_bench.XXXXXX", base);
	if (w == NULL || th == NULL || mkdtemp(dir) == NULL)
		goto out;
	r = store_open(&s, dir, &o);
	if (r < 0)
		goto out;
	strcpy(t.name, "bench");
	strcpy(t.ifname, "wg-bench");
	t.listen_port = 51820;
	addr_prefix_parse(&t.prefix4, "10.0.0.0/8");
	strcpy(tok.tenant, "bench");
	fill(tok.hash, 0x70, 0);
	tok.uses_left = UINT32_MAX;
	if (store_tenant_create(s, &t) < 0 || store_token_create(s, &tok) < 0)
		goto out;
	pthread_barrier_init(&start, NULL, threads + 1);
	for (unsigned int i = 0; i < threads; i++) {
		w[i] = (struct worker){ .s = s, .start = &start, .first = i * 10000000 + 1,
			.count = total / threads };
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	store_get_stats(s, ret_stats);
	pthread_barrier_wait(&start);
	t0 = now_s();
	for (unsigned int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	t1 = now_s();
	pthread_barrier_destroy(&start);
	{
		struct store_stats after;

		store_get_stats(s, &after);
		ret_stats->commits = after.commits - ret_stats->commits;
		ret_stats->operations = after.operations - ret_stats->operations;
	}
	rate = (double)(total / threads * threads) / (t1 - t0);
	for (unsigned int i = 0; i < threads; i++)
		if (w[i].err < 0) {
			fprintf(stderr, "enroll: %s\n", strerror(-w[i].err));
			rate = -1;
		}
out:
	store_free(s);
	nftw(dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
	free(w);
	free(th);
	return rate;
}

int
main(int argc, char **argv)
{
	const char *base = "/var/tmp";
	unsigned int total = 3000;
	unsigned int def[] = { 1, 4, 16, 64 }, list[32], n = 0;
	int c;

	while ((c = getopt(argc, argv, "d:n:")) != -1) {
		switch (c) {
		case 'd':
			base = optarg;
			break;
		case 'n':
			total = strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: store_bench [-d DIR] [-n N] [THREADS ...]\n");
			return 2;
		}
	}
	for (int i = optind; i < argc && n < 32; i++)
		list[n++] = strtoul(argv[i], NULL, 10);
	if (n == 0) {
		memcpy(list, def, sizeof(def));
		n = 4;
	}
	printf("%-8s %-14s %-14s %-9s %-16s %s\n", "threads", "group enr/s", "single enr/s",
		"ratio", "ops/commit(grp)", "enrollments");
	for (unsigned int i = 0; i < n; i++) {
		struct store_stats sg, ss;
		double g, one;

		if (list[i] == 0 || list[i] > 1024)
			continue;
		g = run(base, list[i], total, true, &sg);
		one = run(base, list[i], total, false, &ss);
		if (g < 0 || one < 0) {
			fprintf(stderr, "run with %u threads failed\n", list[i]);
			return 1;
		}
		printf("%-8u %-14.0f %-14.0f %-9.2f %-16.1f %u\n", list[i], g, one, g / one,
			sg.commits ? (double)sg.operations / sg.commits : 0, total / list[i] * list[i]);
		fflush(stdout);
	}
	return 0;
}
