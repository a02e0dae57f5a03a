// SPDX-License-Identifier: MIT
/*
 * Crash-test driver for the store, LMDB backend (enrolld/store/; run by
 * tests/integration/store_crash.sh).
 *
 *   store_crash init DIR              a tenant "crash" (10.192.0.0/12) and a token
 *   store_crash run DIR ACKS ROUND N  N threads enroll (and now and then rotate) until
 *                                     killed; after each call returns, one line goes to ACKS
 *   store_crash check DIR ACKS        every acknowledged line must be in the store; no
 *                                     address twice; indexes consistent; token uses equal
 *                                     to the enrollments the event log records
 *
 * An ACKS line: "<ek> <gen> <id> <address>". Keys are numbered (ek, gen): a rotation makes
 * gen + 1, so the store must hold the acknowledged generation or a newer one (a rotation
 * may have committed without its acknowledgement being written before the kill).
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "enrolld/store.h"

#define TENANT "crash"

static void
fill(uint8_t out[32], uint8_t tag, uint32_t ek, uint32_t gen)
{
	memset(out, 0, 32);
	out[0] = tag;
	memcpy(out + 1, &ek, 4);
	memcpy(out + 5, &gen, 4);
	out[31] = 0x5a;
}

static void
token_hash(uint8_t out[32])
{
	fill(out, 0x70, 1, 0);
}

static int
cmd_init(const char *dir)
{
	struct store *s = NULL;
	struct store_tenant t = { 0 };
	struct store_token tok = { 0 };
	int r;

	r = store_open(&s, dir, NULL);
	if (r < 0)
		goto out;
	strcpy(t.name, TENANT);
	strcpy(t.ifname, "wg-crash");
	strcpy(t.endpoint, "127.0.0.1:51820");
	t.listen_port = 51820;
	t.keepalive = 25;
	addr_prefix_parse(&t.prefix4, "10.192.0.0/12");
	r = store_tenant_create(s, &t);
	if (r < 0)
		goto out;
	strcpy(tok.tenant, TENANT);
	token_hash(tok.hash);
	tok.uses_left = 100000000;
	r = store_token_create(s, &tok);
out:
	if (r < 0)
		fprintf(stderr, "init: %s %s\n", strerror(-r), store_errmsg());
	store_free(s);
	return r < 0 ? 1 : 0;
}

struct worker {
	struct store *s;
	int fd;
	uint32_t first, step;
};

static int
enroll(struct worker *w, uint32_t ek, uint32_t gen)
{
	struct store_enroll_req req = { 0 };
	struct store_device d;
	char line[128], a[ADDR_STR_LEN];
	int r, n;

	strcpy(req.tenant, TENANT);
	fill(req.ek_hash, 0xe0, ek, 0);
	fill(req.wg_pubkey, 0x40, ek, gen);
	req.kind = STORE_ATTEST_TPM;
	req.has_token = true;
	token_hash(req.token_hash);
	r = store_enroll(w->s, &req, &d);
	if (r < 0)
		return r;
	addr_format(AF_INET, d.addr4, a, sizeof(a));
	/* One write(2) per line, O_APPEND: lines of concurrent threads never interleave. */
	n = snprintf(line, sizeof(line), "%u %u %llu %s\n", ek, gen, (unsigned long long)d.id, a);
	if (write(w->fd, line, n) != n)
		return -EIO;
	return 0;
}

static void *
worker_main(void *arg)
{
	struct worker *w = arg;
	uint32_t last = 0, gen = 0;
	int r;

	for (uint32_t i = 0; i < 20000; i++) {
		if (i % 5 == 4 && last != 0) {
			/* Rotate the previous device: same EK, next key generation. */
			r = enroll(w, last, ++gen);
		} else {
			last = w->first + i * w->step;
			gen = 0;
			r = enroll(w, last, 0);
		}
		if (r < 0) {
			fprintf(stderr, "enroll: %s %s\n", strerror(-r), store_errmsg());
			exit(1);
		}
	}
	return NULL;
}

static int
cmd_run(const char *dir, const char *acks, unsigned int round, unsigned int threads)
{
	struct worker w[16];
	pthread_t th[16];
	struct store *s = NULL;
	int fd, r;

	if (threads == 0 || threads > 16)
		return 2;
	fd = open(acks, O_WRONLY | O_APPEND | O_CREAT, 0600);
	if (fd < 0) {
		perror(acks);
		return 1;
	}
	r = store_open(&s, dir, NULL);
	if (r < 0) {
		fprintf(stderr, "open: %s %s\n", strerror(-r), store_errmsg());
		return 1;
	}
	for (unsigned int i = 0; i < threads; i++) {
		/* EK numbers unique across rounds and threads. */
		w[i] = (struct worker){ .s = s, .fd = fd, .first = round * 1000000 + i + 1,
			.step = threads };
		pthread_create(&th[i], NULL, worker_main, &w[i]);
	}
	for (unsigned int i = 0; i < threads; i++)
		pthread_join(th[i], NULL);
	store_free(s);
	close(fd);
	return 0;
}

static int
check_acks(struct store *s, const char *acks, size_t *ret_n)
{
	FILE *f = fopen(acks, "r");
	char line[256];
	size_t n = 0;
	int bad = 0;

	if (f == NULL) {
		*ret_n = 0;
		return errno == ENOENT ? 0 : 1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		unsigned int ek, gen, have_gen, have_ek;
		unsigned long long id;
		char a[ADDR_STR_LEN], got[ADDR_STR_LEN];
		uint8_t h[32];
		struct store_device d;

		/* A torn last line cannot be: each line is a single write. */
		if (sscanf(line, "%u %u %llu %63s", &ek, &gen, &id, a) != 4) {
			fprintf(stderr, "bad ack line '%s'\n", line);
			bad++;
			continue;
		}
		n++;
		fill(h, 0xe0, ek, 0);
		if (store_device_by_ek(s, h, &d) < 0) {
			fprintf(stderr, "acknowledged ek %u (device %llu) is missing\n", ek, id);
			bad++;
			continue;
		}
		addr_format(AF_INET, d.addr4, got, sizeof(got));
		memcpy(&have_ek, d.wg_pubkey + 1, 4);
		memcpy(&have_gen, d.wg_pubkey + 5, 4);
		if (d.id != id || strcmp(got, a) != 0 || d.state != STORE_DEVICE_ACTIVE ||
		    have_ek != ek || have_gen < gen) {
			fprintf(stderr, "ek %u: acknowledged device %llu %s gen %u, store has %llu %s "
				"gen %u state %u\n", ek, id, a, gen, (unsigned long long)d.id, got,
				have_gen, d.state);
			bad++;
		}
	}
	fclose(f);
	*ret_n = n;
	return bad;
}

static int
cmd_check(const char *dir, const char *acks)
{
	struct store *s = NULL;
	struct store_device_filter flt = { .tenant = TENANT, .limit = 1000 };
	struct store_device *page = NULL;
	struct store_event *ev = NULL;
	struct store_token tok;
	uint8_t *seen = NULL, th[32];
	uint64_t cursor = 0, next, after = 0, enrolled = 0, rotated = 0;
	size_t n, n_dev = 0, n_acks = 0;
	char why[256];
	int bad = 0, r;

	r = store_open(&s, dir, NULL);
	if (r < 0) {
		fprintf(stderr, "open: %s %s\n", strerror(-r), store_errmsg());
		return 1;
	}
	bad += check_acks(s, acks, &n_acks);
	r = store_verify(s, why, sizeof(why));
	if (r < 0) {
		fprintf(stderr, "verify: %s\n", why);
		bad++;
	}
	/* No address held by two active devices. */
	seen = calloc(1 << 20, 1);
	if (seen == NULL)
		return 1;
	do {
		flt.after = cursor;
		r = store_device_list(s, &flt, &page, &n, &next);
		if (r < 0) {
			bad++;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			unsigned int off = (page[i].addr4[1] & 0x0f) << 16 | page[i].addr4[2] << 8 |
				page[i].addr4[3];

			if (page[i].state == STORE_DEVICE_ACTIVE && seen[off]++) {
				fprintf(stderr, "address offset %u held twice\n", off);
				bad++;
			}
		}
		n_dev += n;
		free(page);
		cursor = next;
	} while (cursor != 0);
	free(seen);
	/* Token uses and events are written in the same transaction as the device. */
	do {
		r = store_events_read(s, after, 1000, &ev, &n);
		if (r < 0) {
			bad++;
			break;
		}
		for (size_t i = 0; i < n; i++) {
			enrolled += ev[i].kind == STORE_EV_ENROLLED;
			rotated += ev[i].kind == STORE_EV_ROTATED;
			after = ev[i].seq;
		}
		free(ev);
	} while (n > 0);
	token_hash(th);
	if (store_token_get(s, th, &tok) < 0 || enrolled != n_dev ||
	    100000000 - tok.uses_left != enrolled + rotated) {
		fprintf(stderr, "counts: %zu devices, %llu enrolled + %llu rotated events, %u uses\n",
			n_dev, (unsigned long long)enrolled, (unsigned long long)rotated,
			100000000 - tok.uses_left);
		bad++;
	}
	printf("check: %zu acknowledged, %zu devices, %llu rotations, %s\n", n_acks, n_dev,
		(unsigned long long)rotated, bad ? "FAILED" : "ok");
	store_free(s);
	return bad ? 1 : 0;
}

int
main(int argc, char **argv)
{
	if (argc == 3 && strcmp(argv[1], "init") == 0)
		return cmd_init(argv[2]);
	if (argc == 6 && strcmp(argv[1], "run") == 0)
		return cmd_run(argv[2], argv[3], atoi(argv[4]), atoi(argv[5]));
	if (argc == 4 && strcmp(argv[1], "check") == 0)
		return cmd_check(argv[2], argv[3]);
	fprintf(stderr, "usage: store_crash init DIR | run DIR ACKS ROUND THREADS | check DIR ACKS\n");
	return 2;
}
