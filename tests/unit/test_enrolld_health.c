// SPDX-License-Identifier: MIT
/*
 * Unit tests for enrolld/health.c against a real store: the monitor loads the devices once
 * and then follows the store's event log, so a device enrolled, revoked or rotated after a
 * tick must be judged by its current key and state at the next tick. The interface is
 * faked: plane_peer_stats is replaced (--wrap) by a list of peers the test sets.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/wg.h"
#include "enrolld/enrolld.h"

#define MAX_FAKE 8

static struct wg_peer_stats fake_peers[MAX_FAKE];
static size_t n_fake;

int __wrap_plane_peer_stats(struct plane *p, const struct store_tenant *t,
	struct wg_peer_stats **ret, size_t *ret_n);

int
__wrap_plane_peer_stats(struct plane *p, const struct store_tenant *t,
	struct wg_peer_stats **ret, size_t *ret_n)
{
	*ret = NULL;
	*ret_n = n_fake;
	if (n_fake > 0) {
		*ret = malloc(n_fake * sizeof(**ret));
		assert_non_null(*ret);
		memcpy(*ret, fake_peers, n_fake * sizeof(**ret));
	}
	return 0;
}

/* The interface shows @key with traffic (a handshake now, @rx bytes received). */
static void
fake_peer(const uint8_t key[32], uint64_t rx)
{
	assert_true(n_fake < MAX_FAKE);
	memset(&fake_peers[n_fake], 0, sizeof(fake_peers[n_fake]));
	memcpy(fake_peers[n_fake].public_key, key, 32);
	fake_peers[n_fake].last_handshake_sec = (int64_t)time(NULL);
	fake_peers[n_fake].rx_bytes = rx;
	n_fake++;
}

static void
fill(uint8_t out[32], uint8_t tag, uint8_t n)
{
	memset(out, tag, 32);
	out[0] = n;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void
enroll(struct store *s, uint8_t ek, uint8_t key, struct store_device *d)
{
	struct store_enroll_req req = { 0 };

	strcpy(req.tenant, "acme");
	req.kind = STORE_ATTEST_TPM;
	req.has_token = true;
	fill(req.token_hash, 0x70, 0);
	fill(req.ek_hash, 0xe0, ek);
	fill(req.wg_pubkey, 0x40, key);
	assert_true(store_enroll(s, &req, d) > 0);
}

/* a store in DIR with tenant acme (keepalive 25), a token and two enrolled devices */
static struct store *
open_fleet(char *dir, struct store_device *d1, struct store_device *d2)
{
	struct store_tenant t = { 0 };
	struct store_token tok = { 0 };
	struct store *s = NULL;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(store_open(&s, dir, NULL), 0);
	strcpy(t.name, "acme");
	strcpy(t.ifname, "wg-acme");
	strcpy(t.endpoint, "vpn.example.com:51820");
	assert_int_equal(addr_prefix_parse(&t.prefix4, "10.20.0.0/24"), 0);
	t.listen_port = 51820;
	t.keepalive = 25;
	assert_int_equal(store_tenant_create(s, &t), 0);
	fill(tok.hash, 0x70, 0);
	strcpy(tok.tenant, "acme");
	tok.uses_left = 100;
	assert_int_equal(store_token_create(s, &tok), 0);
	enroll(s, 1, 1, d1);
	enroll(s, 2, 2, d2);
	return s;
}

/* a monitor on S whose first tick (in its thread) has judged device LAST */
static struct health *
start_monitor(struct store *s, uint64_t last)
{
	struct health_peer hp;
	struct health *h = NULL;
	int i;

	assert_int_equal(health_new(&h, s, NULL, 3600, 25), 0);
	for (i = 0; i < 5000 && health_peer_get(h, last, &hp) != 0; i++)
		usleep(1000);
	return h;
}

static void
test_follows_the_store(void **state)
{
	char dir[] = "/tmp/test_enrolld_health.XXXXXX";
	struct store_device d1, d2, d3, d;
	struct health_peer hp;
	struct store_health sh;
	struct health *h;
	struct store *s;

	s = open_fleet(dir, &d1, &d2);

	/* d1 talks, d2 is silent; the monitor's first tick runs in its thread */
	n_fake = 0;
	fake_peer(d1.wg_pubkey, 100);
	h = start_monitor(s, d2.id);
	assert_int_equal(health_peer_get(h, d1.id, &hp), 0);
	assert_true(hp.seen);
	assert_int_equal(hp.state, STORE_HEALTH_UP);
	assert_int_equal(hp.rx_bytes, 100);
	assert_int_equal(health_peer_get(h, d2.id, &hp), 0);
	assert_false(hp.seen);
	assert_int_equal(hp.state, STORE_HEALTH_NEVER);
	assert_int_equal(store_health_get(s, d1.id, &sh), 0);
	assert_int_equal(sh.state, STORE_HEALTH_UP);

	/* enrolled after the first tick: seen at the next one */
	enroll(s, 3, 3, &d3);
	fake_peer(d3.wg_pubkey, 7);
	assert_int_equal(health_peer_get(h, d3.id, &hp), -ENOENT);
	assert_true(health_tick(h) >= 0);
	assert_int_equal(health_peer_get(h, d3.id, &hp), 0);
	assert_true(hp.seen);
	assert_int_equal(hp.state, STORE_HEALTH_UP);

	/* revoked: no longer judged, though its key is still on the interface */
	assert_int_equal(store_device_revoke(s, d1.id, &d), 0);
	assert_true(health_tick(h) >= 0);
	assert_int_equal(health_peer_get(h, d1.id, &hp), 0);
	assert_false(hp.seen);

	/* d2 rotates to a new key, which talks: judged by the new key */
	enroll(s, 2, 9, &d);
	assert_int_equal(d.id, d2.id);
	fake_peer(d.wg_pubkey, 5);
	assert_true(health_tick(h) >= 0);
	assert_int_equal(health_peer_get(h, d2.id, &hp), 0);
	assert_true(hp.seen);
	assert_int_equal(hp.state, STORE_HEALTH_UP);
	assert_int_equal(hp.rx_bytes, 5);

	/* d3's key leaves the interface: not seen any more, and still up within 3 x 25 s */
	n_fake = 0;
	fake_peer(d.wg_pubkey, 5);
	assert_true(health_tick(h) >= 0);
	assert_int_equal(health_peer_get(h, d3.id, &hp), 0);
	assert_false(hp.seen);
	assert_int_equal(hp.state, STORE_HEALTH_UP);

	health_free(h);
	store_free(s);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * enrolld restarts: the store says d1 was up and d2 down, and their handshakes are older than
 * the window (they renew every two minutes). The first tick of a new monitor keeps d1 up (no
 * false "down" event for every device on each restart) and d2 down; d2 is up again when its
 * counter moves.
 */
static void
test_restart_keeps_state(void **state)
{
	char dir[] = "/tmp/test_enrolld_health.XXXXXX";
	struct store_device d1, d2;
	struct store_health sh[2];
	struct health_peer hp;
	struct health *h;
	struct store *s;
	int64_t now = (int64_t)time(NULL);

	s = open_fleet(dir, &d1, &d2);
	sh[0] = (struct store_health){ .device = d1.id, .state = STORE_HEALTH_UP, .since = now - 600 };
	sh[1] = (struct store_health){ .device = d2.id, .state = STORE_HEALTH_DOWN, .since = now - 600 };
	assert_true(store_health_update(s, sh, 2) >= 0);

	n_fake = 0;
	fake_peer(d1.wg_pubkey, 100);
	fake_peer(d2.wg_pubkey, 200);
	fake_peers[0].last_handshake_sec = now - 110; /* older than 3 x 25 s */
	fake_peers[1].last_handshake_sec = now - 110;
	h = start_monitor(s, d2.id);
	assert_int_equal(health_peer_get(h, d1.id, &hp), 0);
	assert_int_equal(hp.state, STORE_HEALTH_UP);
	assert_int_equal(store_health_get(s, d1.id, &sh[0]), 0);
	assert_int_equal(sh[0].state, STORE_HEALTH_UP);
	assert_int_equal(sh[0].since, now - 600);
	assert_int_equal(health_peer_get(h, d2.id, &hp), 0);
	assert_int_equal(hp.state, STORE_HEALTH_DOWN);

	/* the next tick: d1's counter moved, d2's too: both up */
	fake_peers[0].rx_bytes = 132;
	fake_peers[1].rx_bytes = 232;
	assert_true(health_tick(h) >= 0);
	assert_int_equal(health_peer_get(h, d1.id, &hp), 0);
	assert_int_equal(hp.state, STORE_HEALTH_UP);
	assert_int_equal(health_peer_get(h, d2.id, &hp), 0);
	assert_int_equal(hp.state, STORE_HEALTH_UP);

	health_free(h);
	store_free(s);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/*
 * The first tick reads the stored health of the whole fleet at once (store_health_list) and
 * merges it by id: each device starts from its own record, or NEVER without one (records
 * of every third device missing, so the merge has gaps). One device enrolled later, an
 * eighth of the fleet or fewer, is read alone (store_health_get), as before.
 */
static void
test_first_tick_reads_all(void **state)
{
	char dir[] = "/tmp/test_enrolld_health.XXXXXX";
	struct store_device d[16], late;
	struct store_health sh[16];
	struct health_peer hp;
	struct health *h;
	struct store *s;
	int64_t now = (int64_t)time(NULL);
	size_t n_sh = 0;
	uint8_t want[16];

	s = open_fleet(dir, &d[0], &d[1]);
	for (uint8_t i = 2; i < 16; i++)
		enroll(s, 10 + i, 10 + i, &d[i]);
	for (size_t i = 0; i < 16; i++) {
		want[i] = i % 3 == 2 ? STORE_HEALTH_NEVER :
			  i % 2 ? STORE_HEALTH_DOWN : STORE_HEALTH_UP;
		if (want[i] != STORE_HEALTH_NEVER)
			sh[n_sh++] = (struct store_health){ .device = d[i].id, .state = want[i],
				.since = now - 600 - (int64_t)i };
	}
	assert_true(store_health_update(s, sh, n_sh) >= 0);

	n_fake = 0; /* nothing on the interface: each keeps its stored state at the first tick */
	h = start_monitor(s, d[15].id);
	for (size_t i = 0; i < 16; i++) {
		assert_int_equal(health_peer_get(h, d[i].id, &hp), 0);
		if (hp.state != want[i])
			fail_msg("device %zu: state %u, stored %u", i, hp.state, want[i]);
		if (want[i] != STORE_HEALTH_NEVER)
			assert_int_equal(hp.since, now - 600 - (int64_t)i);
	}

	/* one new device among 17: read alone; it talks, so it is up */
	enroll(s, 40, 40, &late);
	fake_peer(late.wg_pubkey, 9);
	assert_true(health_tick(h) >= 0);
	assert_int_equal(health_peer_get(h, late.id, &hp), 0);
	assert_true(hp.seen);
	assert_int_equal(hp.state, STORE_HEALTH_UP);
	assert_int_equal(health_peer_get(h, d[1].id, &hp), 0);
	assert_int_equal(hp.state, STORE_HEALTH_DOWN);

	health_free(h);
	store_free(s);
	nftw(dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_follows_the_store),
		cmocka_unit_test(test_restart_keeps_state),
		cmocka_unit_test(test_first_tick_reads_all),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
