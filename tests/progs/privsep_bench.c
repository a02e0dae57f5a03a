// SPDX-License-Identifier: MIT
/*
 * privsep_bench UAPI_DIR KEY_DIR IFNAME N ROUNDS: what the privilege-separation channel
 * costs (not a test; run it as root in a network namespace, userspace backend). Forks as
 * enrolld does with server.user (without the drop), brings one tenant up through the
 * channel, sets N peers through it (PEERS_SET, 1024 per message), then reads the peers'
 * stats ROUNDS times through the channel (STATS, in chunks) and directly (wg_get_peer_stats
 * on the same interface), and prints the medians; then removes every peer and sets the same
 * N directly (wg_set_device), for comparison. docs/security.md has the figures.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/wg.h"
#include "enrolld/enrolld.h"
#include "enrolld/privsep.h"

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int
cmp_d(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char **argv)
{
	struct enrolld_conf conf = {0};
	struct store_tenant t = {0};
	struct privsep *ps = NULL;
	struct plane *pl = NULL;
	struct wg_device *dev = NULL;
	struct wg_ctl *ctl = NULL;
	double t0, set_s, direct_set_s, *via, *direct;
	long n, rounds;
	int r;

	if (argc != 6) {
		fprintf(stderr, "usage: privsep_bench UAPI_DIR KEY_DIR IFNAME N ROUNDS\n");
		return 2;
	}
	n = atol(argv[4]);
	rounds = atol(argv[5]);
	if (n < 1 || n > 60000 || rounds < 1 || rounds > 1000) {
		fprintf(stderr, "N 1..60000 (wireguard-go holds 65,536), ROUNDS 1..1000\n");
		return 2;
	}
	log_init(1, "privsep_bench");
	conf.wg_backend = ENROLLD_WG_USERSPACE;
	conf.uapi_dir = argv[1];
	conf.key_dir = argv[2];
	conf.wireguard_go = "wireguard-go";
	conf.nft = "nft";
	conf.user = "(bench: no drop)";
	r = privsep_start(&conf, &ps); /* the parent serves, then exits */
	if (r < 0 || plane_new_remote(&pl, ps) < 0) {
		fprintf(stderr, "privsep_start: %s\n", strerror(-r));
		return 1;
	}
	snprintf(t.name, sizeof(t.name), "bench");
	snprintf(t.ifname, sizeof(t.ifname), "%s", argv[3]);
	t.listen_port = 40999;
	t.prefix4.family = AF_INET;
	t.prefix4.plen = 8;
	t.prefix4.addr[0] = 10;
	t.self4[0] = 10, t.self4[3] = 1;
	if ((r = plane_tenant_up(pl, &t)) < 0) {
		fprintf(stderr, "tenant up: %s\n", strerror(-r));
		return 1;
	}
	if (wg_device_new(&dev, t.ifname) < 0)
		return 1;
	for (long i = 0; i < n; i++) {
		struct wg_peer *p;
		uint8_t a[4] = {
			10, (uint8_t)((i + 2) >> 16), (uint8_t)((i + 2) >> 8), (uint8_t)(i + 2)};

		if (wg_device_add_peer(dev, &p) < 0)
			return 1;
		memset(p->public_key, 0, WG_KEY_LEN);
		memcpy(p->public_key, &i, sizeof(i));
		p->public_key[31] = 0x42;
		p->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REPLACE_ALLOWEDIPS;
		if (wg_peer_add_allowedip(p, AF_INET, a, 32) < 0)
			return 1;
	}
	t0 = now();
	r = plane_apply(pl, &t, dev);
	set_s = now() - t0;
	if (r < 0) {
		fprintf(stderr, "PEERS_SET: %s\n", strerror(-r));
		return 1;
	}
	via = calloc((size_t)rounds, sizeof(*via));
	direct = calloc((size_t)rounds, sizeof(*direct));
	if (via == NULL || direct == NULL || wg_ctl_new(&ctl) < 0 ||
		wg_ctl_set_uapi_dir(ctl, argv[1]) < 0)
		return 1;
	wg_ctl_set_backend(ctl, WG_BACKEND_UAPI);
	for (long k = 0; k < rounds; k++) {
		struct wg_peer_stats *st = NULL;
		size_t got = 0;

		t0 = now();
		r = plane_peer_stats(pl, &t, &st, &got);
		via[k] = now() - t0;
		free(st);
		if (r < 0 || got != (size_t)n) {
			fprintf(stderr, "STATS: %s, %zu peers\n", strerror(-r), got);
			return 1;
		}
		st = NULL;
		t0 = now();
		r = wg_get_peer_stats(ctl, t.ifname, &st, &got);
		direct[k] = now() - t0;
		free(st);
		if (r < 0 || got != (size_t)n)
			return 1;
	}
	{
		struct wg_device *none = NULL;

		if (wg_device_new(&none, t.ifname) < 0)
			return 1;
		none->flags = WG_DEVICE_F_REPLACE_PEERS;
		r = wg_set_device(ctl, none);
		wg_device_free(none);
		if (r < 0)
			return 1;
	}
	t0 = now();
	r = wg_set_device(ctl, dev);
	direct_set_s = now() - t0;
	wg_device_free(dev);
	if (r < 0)
		return 1;
	qsort(via, (size_t)rounds, sizeof(*via), cmp_d);
	qsort(direct, (size_t)rounds, sizeof(*direct), cmp_d);
	printf("peers %ld: set through the channel %.1f ms, direct %.1f ms; stats (median of "
	       "%ld): through the channel %.1f ms, direct %.1f ms\n",
		n, set_s * 1e3, direct_set_s * 1e3, rounds, via[rounds / 2] * 1e3,
		direct[rounds / 2] * 1e3);
	wg_ctl_free(ctl);
	free(via);
	free(direct);
	plane_free(pl);
	privsep_free(ps);
	return 0; /* the parent sees EOF: exits 1 (no stop forwarded) and leaves wireguard-go */
}
