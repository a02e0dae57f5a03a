// SPDX-License-Identifier: MIT
/* Unit tests for common/wg_model.c: names, allowed IPs, endpoints, peer arrays. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "common/wg.h"

static void
test_device_new_names(void **state)
{
	struct wg_device *dev = NULL;

	assert_int_equal(wg_device_new(&dev, ""), -EINVAL);
	assert_int_equal(wg_device_new(&dev, "sixteen-chars-xx"), -ENAMETOOLONG);
	assert_null(dev);
	assert_int_equal(wg_device_new(&dev, "fifteen-chars-x"), 0);
	assert_string_equal(dev->name, "fifteen-chars-x");
	assert_int_equal(dev->n_peers, 0);
	wg_device_free(dev);
	wg_device_free(NULL);
}

static void
test_allowedip_parse_good(void **state)
{
	struct wg_allowedip aip;
	struct in6_addr want6;

	assert_int_equal(wg_allowedip_parse(&aip, "10.1.2.0/24"), 0);
	assert_int_equal(aip.family, AF_INET);
	assert_int_equal(aip.cidr, 24);
	assert_int_equal(ntohl(aip.ip4.s_addr), 0x0a010200);

	assert_int_equal(wg_allowedip_parse(&aip, "192.0.2.7"), 0);
	assert_int_equal(aip.cidr, 32);
	assert_int_equal(wg_allowedip_parse(&aip, "0.0.0.0/0"), 0);
	assert_int_equal(aip.cidr, 0);

	assert_int_equal(wg_allowedip_parse(&aip, "fd00:1::/48"), 0);
	assert_int_equal(aip.family, AF_INET6);
	assert_int_equal(aip.cidr, 48);
	inet_pton(AF_INET6, "fd00:1::", &want6);
	assert_memory_equal(&aip.ip6, &want6, sizeof(want6));
	assert_int_equal(wg_allowedip_parse(&aip, "::1"), 0);
	assert_int_equal(aip.cidr, 128);
	assert_int_equal(wg_allowedip_parse(&aip, "::/0"), 0);
	assert_int_equal(aip.cidr, 0);
}

static void
test_allowedip_parse_bad(void **state)
{
	static const char *const bad[] = {
		"", "/24", "10.0.0.0/", "10.0.0.0/33", "10.0.0.0/-1", "10.0.0.0/+8",
		"10.0.0.0/ 8", "10.0.0.0/8x", "10.0.0/8", "10.0.0.256/32", "fd00::/129",
		"fd00:::/64", "host.example/32", "10.0.0.0/99999999999999999999",
		"ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/128/1",
		"ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255/128xxxxxxxxxx", /* too long */
	};
	struct wg_allowedip aip;

	memset(&aip, 0x55, sizeof(aip));
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (wg_allowedip_parse(&aip, bad[i]) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
	}
	assert_int_equal(wg_allowedip_parse(&aip, NULL), -EINVAL);
	assert_int_equal(aip.cidr, 0x55); /* untouched on failure */
}

static void
test_endpoint_parse(void **state)
{
	static const char *const bad[] = {
		"", "192.0.2.1", "192.0.2.1:", "192.0.2.1:0", "192.0.2.1:65536", "192.0.2.1:-1",
		"192.0.2.1:80x", "host.example:80", "fd00::1:51820", "[fd00::1]51820",
		"[fd00::1]:", "[fd00::1", "[192.0.2.1]:80", "[fe80::1%eth0]:80", ":80",
	};
	union wg_endpoint ep;
	struct in6_addr want6;

	assert_int_equal(wg_endpoint_parse(&ep, "192.0.2.1:51820"), 0);
	assert_int_equal(ep.addr.sa_family, AF_INET);
	assert_int_equal(ntohs(ep.addr4.sin_port), 51820);
	assert_int_equal(ntohl(ep.addr4.sin_addr.s_addr), 0xc0000201);

	assert_int_equal(wg_endpoint_parse(&ep, "[2001:db8::5]:1"), 0);
	assert_int_equal(ep.addr.sa_family, AF_INET6);
	assert_int_equal(ntohs(ep.addr6.sin6_port), 1);
	inet_pton(AF_INET6, "2001:db8::5", &want6);
	assert_memory_equal(&ep.addr6.sin6_addr, &want6, sizeof(want6));
	assert_int_equal(wg_endpoint_parse(&ep, "[::ffff:192.0.2.1]:65535"), 0);
	assert_int_equal(ntohs(ep.addr6.sin6_port), 65535);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (wg_endpoint_parse(&ep, bad[i]) != -EINVAL)
			fail_msg("accepted '%s'", bad[i]);
	}
}

static void
key_of(uint8_t key[WG_KEY_LEN], unsigned int i)
{
	memset(key, 0, WG_KEY_LEN);
	memcpy(key, &i, sizeof(i));
	key[31] = 0x42;
}

/* The array moves as it grows: earlier peers must keep their contents. */
static void
test_add_peer_growth_and_find(void **state)
{
	struct wg_device *dev = NULL;
	struct wg_peer *peer;
	uint8_t key[WG_KEY_LEN];
	struct in_addr a;

	assert_int_equal(wg_device_new(&dev, "wgtest0"), 0);
	for (unsigned int i = 0; i < 5000; i++) {
		assert_int_equal(wg_device_add_peer(dev, &peer), 0);
		assert_int_equal(peer->flags, 0);
		assert_int_equal(peer->n_allowedips, 0);
		key_of(peer->public_key, i);
		peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_HAS_PRESHARED_KEY;
		memset(peer->preshared_key, (int)(i & 0xff), WG_KEY_LEN);
		a.s_addr = htonl(0x0a000000 + i);
		assert_int_equal(wg_peer_add_allowedip(peer, AF_INET, &a, 32), 0);
	}
	assert_int_equal(dev->n_peers, 5000);
	assert_true(dev->cap_peers >= 5000);
	for (unsigned int i = 0; i < 5000; i += 97) {
		key_of(key, i);
		peer = wg_device_find_peer(dev, key);
		assert_non_null(peer);
		assert_ptr_equal(peer, &dev->peers[i]);
		assert_int_equal(peer->preshared_key[5], i & 0xff);
		assert_int_equal(ntohl(peer->allowedips[0].ip4.s_addr), 0x0a000000 + i);
	}
	key_of(key, 5000);
	assert_null(wg_device_find_peer(dev, key));
	wg_device_free(dev);
}

/*
 * The first peers live in the rest of the device's locked page (no mapping of their own);
 * past that they move to a mapping, keep their contents, and the page part is wiped.
 */
static void
test_peers_in_device_page(void **state)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	struct wg_device *dev = NULL;
	struct wg_peer *p;
	uint8_t *first;
	size_t n_in;

	assert_int_equal(wg_device_new(&dev, "wg0"), 0);
	if (!dev->locked) {
		/* RLIMIT_MEMLOCK too low here: the plain allocation has no page to share */
		wg_device_free(dev);
		skip();
	}
	for (int i = 0; i < 3; i++) {
		assert_int_equal(wg_device_add_peer(dev, &p), 0);
		memset(p->public_key, 0x10 + i, WG_KEY_LEN);
		memset(p->preshared_key, 0x50 + i, WG_KEY_LEN);
	}
	first = (uint8_t *)dev->peers;
	assert_true(first > (uint8_t *)dev && first + 3 * sizeof(*p) <= (uint8_t *)dev + page);
	n_in = dev->cap_peers;
	assert_true(n_in >= 3);
	while (dev->n_peers <= n_in)
		assert_int_equal(wg_device_add_peer(dev, &p), 0);
	assert_true((uint8_t *)dev->peers < (uint8_t *)dev ||
		(uint8_t *)dev->peers >= (uint8_t *)dev + page);
	for (int i = 0; i < 3; i++) {
		for (size_t k = 0; k < WG_KEY_LEN; k++) {
			assert_int_equal(dev->peers[i].public_key[k], 0x10 + i);
			assert_int_equal(dev->peers[i].preshared_key[k], 0x50 + i);
		}
	}
	for (size_t k = 0; k < n_in * sizeof(*p); k++)
		assert_int_equal(first[k], 0);
	wg_device_free(dev);
}

static void
test_add_allowedip_checks(void **state)
{
	struct wg_peer peer;
	struct in6_addr a6;
	struct in_addr a4;

	memset(&peer, 0, sizeof(peer));
	inet_pton(AF_INET6, "fd00::", &a6);
	inet_pton(AF_INET, "10.0.0.0", &a4);
	assert_int_equal(wg_peer_add_allowedip(&peer, AF_INET, &a4, 33), -EINVAL);
	assert_int_equal(wg_peer_add_allowedip(&peer, AF_INET6, &a6, 129), -EINVAL);
	assert_int_equal(wg_peer_add_allowedip(&peer, AF_UNIX, &a4, 1), -EAFNOSUPPORT);
	assert_int_equal(peer.n_allowedips, 0);
	for (unsigned int i = 0; i <= 128; i++)
		assert_int_equal(wg_peer_add_allowedip(&peer, AF_INET6, &a6, (uint8_t)i), 0);
	assert_int_equal(peer.n_allowedips, 129);
	assert_int_equal(peer.allowedips[128].cidr, 128);
	assert_int_equal(peer.allowedips[128].family, AF_INET6);
	assert_memory_equal(&peer.allowedips[77].ip6, &a6, sizeof(a6));
	free(peer.allowedips);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_device_new_names),
		cmocka_unit_test(test_allowedip_parse_good),
		cmocka_unit_test(test_allowedip_parse_bad),
		cmocka_unit_test(test_endpoint_parse),
		cmocka_unit_test(test_add_peer_growth_and_find),
		cmocka_unit_test(test_peers_in_device_page),
		cmocka_unit_test(test_add_allowedip_checks),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
