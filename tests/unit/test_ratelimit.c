// SPDX-License-Identifier: MIT
/*
 * Unit tests for enrolld/ratelimit.c: bursts, refill, Retry-After, sources kept apart,
 * IPv6 prefixes and IPv4-mapped addresses, the global bucket, a bounded table with its
 * eviction rule, no overflow over long idle times, refused configurations.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/un.h>
#include <cmocka.h>

#include "enrolld/ratelimit.h"

#define SEC 1000000ULL
#define T0 (1000 * SEC)

static struct sockaddr_storage
ip(const char *s)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;

	if (inet_pton(AF_INET, s, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
	} else {
		assert_int_equal(inet_pton(AF_INET6, s, &sin6->sin6_addr), 1);
		sin6->sin6_family = AF_INET6;
	}
	return ss;
}

static int
take(struct ratelimit *rl, const char *src, uint64_t now, unsigned int *after)
{
	struct sockaddr_storage ss;
	unsigned int dummy;

	if (src == NULL)
		return ratelimit_take(rl, NULL, now, after ? after : &dummy);
	ss = ip(src);
	return ratelimit_take(rl, (struct sockaddr *)&ss, now, after ? after : &dummy);
}

static struct ratelimit *
new_rl(uint32_t srate, uint32_t sburst, uint32_t grate, uint32_t gburst, uint32_t sources)
{
	struct ratelimit_config c = { .source_rate = srate, .source_burst = sburst,
		.global_rate = grate, .global_burst = gburst, .sources = sources,
		.ipv6_prefix = 64 };
	struct ratelimit *rl = NULL;

	assert_int_equal(ratelimit_new(&rl, &c), 0);
	return rl;
}

/* A source gets its burst at once, then rate per second; refusals say when to come back. */
static void
test_burst_refill_retry_after(void **state)
{
	struct ratelimit *rl = new_rl(2, 5, 0, 0, 1024);
	unsigned int after = 0;

	for (int i = 0; i < 5; i++)
		assert_int_equal(take(rl, "192.0.2.1", T0, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "192.0.2.1", T0, &after), RATELIMIT_SOURCE);
	assert_int_equal(after, 1); /* half a second to the next token: rounded up */
	/* refused requests take nothing: still one token after half a second */
	for (int i = 0; i < 100; i++)
		assert_int_equal(take(rl, "192.0.2.1", T0, NULL), RATELIMIT_SOURCE);
	assert_int_equal(take(rl, "192.0.2.1", T0 + SEC / 2, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "192.0.2.1", T0 + SEC / 2, NULL), RATELIMIT_SOURCE);
	/* ten seconds idle: the bucket is full again, not fuller */
	for (int i = 0; i < 5; i++)
		assert_int_equal(take(rl, "192.0.2.1", T0 + 11 * SEC, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "192.0.2.1", T0 + 11 * SEC, NULL), RATELIMIT_SOURCE);
	ratelimit_free(rl);

	/* a slow rate: Retry-After in whole seconds, rounded up */
	rl = new_rl(1, 1, 0, 0, 64);
	assert_int_equal(take(rl, "192.0.2.1", T0, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "192.0.2.1", T0 + SEC / 10, &after), RATELIMIT_SOURCE);
	assert_int_equal(after, 1);
	ratelimit_free(rl);
}

/* Over a long run a source is served burst + rate * time, no more, no less. */
static void
test_sustained_rate(void **state)
{
	struct ratelimit *rl = new_rl(10, 20, 0, 0, 64);
	unsigned int ok = 0;

	/* 100 attempts a second for 30 s */
	for (uint64_t t = 0; t < 30 * SEC; t += SEC / 100)
		ok += take(rl, "198.51.100.7", T0 + t, NULL) == RATELIMIT_OK;
	assert_true(ok >= 20 + 10 * 30 - 1 && ok <= 20 + 10 * 30);
	ratelimit_free(rl);
}

/* One source running dry does not touch another's bucket. */
static void
test_sources_apart(void **state)
{
	struct ratelimit *rl = new_rl(1, 3, 0, 0, 1024);

	for (int i = 0; i < 3; i++)
		assert_int_equal(take(rl, "127.0.0.1", T0, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "127.0.0.1", T0, NULL), RATELIMIT_SOURCE);
	for (int i = 0; i < 3; i++)
		assert_int_equal(take(rl, "127.0.0.2", T0, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "127.0.0.2", T0, NULL), RATELIMIT_SOURCE);
	ratelimit_free(rl);
}

/* IPv6: one /64 is one source; an IPv4-mapped address is its IPv4 address. */
static void
test_ipv6_prefix_and_mapped(void **state)
{
	struct ratelimit *rl = new_rl(1, 2, 0, 0, 1024);

	assert_int_equal(take(rl, "2001:db8:1:2::1", T0, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "2001:db8:1:2:ffff:1:2:3", T0, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "2001:db8:1:2::99", T0, NULL), RATELIMIT_SOURCE);
	/* the next /64 is another source */
	assert_int_equal(take(rl, "2001:db8:1:3::1", T0, NULL), RATELIMIT_OK);
	/* ::ffff:192.0.2.9 and 192.0.2.9 share a bucket; ::ffff:192.0.2.10 does not */
	assert_int_equal(take(rl, "192.0.2.9", T0, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "::ffff:192.0.2.9", T0, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "192.0.2.9", T0, NULL), RATELIMIT_SOURCE);
	assert_int_equal(take(rl, "::ffff:192.0.2.10", T0, NULL), RATELIMIT_OK);
	ratelimit_free(rl);

	/* other prefix lengths: whether @a and @b are one source */
	static const struct {
		uint8_t prefix;
		const char *a, *b;
		bool same;
	} cases[] = {
		{ 128, "2001:db8::1", "2001:db8::2", false },
		{ 56, "2001:db8:0:1200::1", "2001:db8:0:12ff::1", true },
		{ 56, "2001:db8:0:1200::1", "2001:db8:0:1300::1", false },
		{ 1, "2001:db8::1", "7fff::1", true },
		{ 1, "2001:db8::1", "8000::1", false },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ratelimit_config c = { .source_rate = 1, .source_burst = 1, .sources = 64,
			.ipv6_prefix = cases[i].prefix };

		assert_int_equal(ratelimit_new(&rl, &c), 0);
		assert_int_equal(take(rl, cases[i].a, T0, NULL), RATELIMIT_OK);
		assert_int_equal(take(rl, cases[i].b, T0, NULL),
			cases[i].same ? RATELIMIT_SOURCE : RATELIMIT_OK);
		ratelimit_free(rl);
	}
}

/* The global bucket bounds everyone; a source it refuses keeps its own token. */
static void
test_global(void **state)
{
	struct ratelimit *rl = new_rl(1, 2, 4, 4, 1024);
	unsigned int after = 0;
	char a[32];

	for (int i = 0; i < 4; i++) {
		snprintf(a, sizeof(a), "10.0.0.%d", i + 1);
		assert_int_equal(take(rl, a, T0, NULL), RATELIMIT_OK);
	}
	assert_int_equal(take(rl, "10.0.0.5", T0, &after), RATELIMIT_GLOBAL);
	assert_int_equal(after, 1);
	/* after a second the global bucket has 4 again; 10.0.0.5 still has both its tokens */
	assert_int_equal(take(rl, "10.0.0.5", T0 + SEC, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "10.0.0.5", T0 + SEC, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "10.0.0.5", T0 + SEC, NULL), RATELIMIT_SOURCE);
	/* not from an IP address (a unix socket, NULL): only the global bucket */
	assert_int_equal(take(rl, NULL, T0 + SEC, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, NULL, T0 + SEC, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, NULL, T0 + SEC, NULL), RATELIMIT_GLOBAL);
	{
		struct sockaddr_un sun = { .sun_family = AF_UNIX };

		assert_int_equal(ratelimit_take(rl, (struct sockaddr *)&sun, T0 + 2 * SEC, &after),
			RATELIMIT_OK);
	}
	ratelimit_free(rl);

	/* global only: sources are not tracked at all */
	rl = new_rl(0, 0, 1, 3, 1024);
	for (int i = 0; i < 3; i++)
		assert_int_equal(take(rl, "10.0.0.1", T0, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "10.0.0.2", T0, &after), RATELIMIT_GLOBAL);
	ratelimit_free(rl);

	/* neither: everything passes */
	rl = new_rl(0, 0, 0, 0, 64);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(take(rl, "10.0.0.1", T0, NULL), RATELIMIT_OK);
	ratelimit_free(rl);
}

/*
 * The table holds at most `sources` entries (one set of 8 here, so all collide). A new
 * source evicts the fullest bucket: a full one when there is one (nothing lost), else the
 * one nearest to full, and that is counted.
 */
static void
test_bounded_table_eviction(void **state)
{
	struct ratelimit *rl = new_rl(1, 4, 0, 0, 8);
	struct ratelimit_stats st;
	char a[32];

	/* eight sources, each takes 1..8 tokens (at most its burst of 4) */
	for (int i = 0; i < 8; i++) {
		snprintf(a, sizeof(a), "10.1.0.%d", i + 1);
		for (int k = 0; k <= i && k < 4; k++)
			assert_int_equal(take(rl, a, T0, NULL), RATELIMIT_OK);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.sources, 8);
	assert_int_equal(st.evicted_active, 0);
	/* a ninth evicts 10.1.0.1 (3 tokens left, the fullest): counted, it was not full */
	assert_int_equal(take(rl, "10.1.0.9", T0, NULL), RATELIMIT_OK);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.sources, 8);
	assert_int_equal(st.evicted_active, 1);
	/* the exhausted sources are still held: 10.1.0.8 is still refused */
	assert_int_equal(take(rl, "10.1.0.8", T0, NULL), RATELIMIT_SOURCE);
	assert_int_equal(take(rl, "10.1.0.5", T0, NULL), RATELIMIT_SOURCE);
	/* ten seconds later every bucket is full: evicting one loses nothing */
	for (int i = 10; i < 40; i++) {
		snprintf(a, sizeof(a), "10.1.1.%d", i);
		assert_int_equal(take(rl, a, T0 + 10 * SEC + (uint64_t)i * SEC * 10, NULL),
			RATELIMIT_OK);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.sources, 8);
	assert_int_equal(st.evicted_active, 1);
	/* twenty thousand sources cannot grow a table of 1024 */
	ratelimit_free(rl);
	rl = new_rl(1, 1, 0, 0, 1024);
	for (int i = 0; i < 20000; i++) {
		snprintf(a, sizeof(a), "10.2.%d.%d", i / 250, i % 250);
		assert_int_equal(take(rl, a, T0, NULL), RATELIMIT_OK);
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.sources, 1024);
	ratelimit_free(rl);
}

/* Extreme values: a huge burst at the slowest rate, days idle, the clock going back. */
static void
test_extremes(void **state)
{
	struct ratelimit *rl = new_rl(1, RATELIMIT_BURST_MAX, RATELIMIT_RATE_MAX,
		RATELIMIT_BURST_MAX, 64);
	unsigned int after = 0;

	for (int i = 0; i < 10; i++)
		assert_int_equal(take(rl, "10.3.0.1", T0, NULL), RATELIMIT_OK);
	/* a year idle */
	assert_int_equal(take(rl, "10.3.0.1", T0 + 365ULL * 86400 * SEC, NULL), RATELIMIT_OK);
	/* an older timestamp (another thread's clock read) changes nothing */
	assert_int_equal(take(rl, "10.3.0.1", T0, NULL), RATELIMIT_OK);
	ratelimit_free(rl);

	rl = new_rl(1, 1, 0, 0, 64);
	assert_int_equal(take(rl, "10.3.0.2", T0, NULL), RATELIMIT_OK);
	assert_int_equal(take(rl, "10.3.0.2", T0 - SEC, &after), RATELIMIT_SOURCE);
	assert_true(after >= 1 && after <= 1);
	ratelimit_free(rl);
}

static void
test_refused_configs(void **state)
{
	const struct ratelimit_config bad[] = {
		{ .source_rate = 1, .source_burst = 0, .sources = 64, .ipv6_prefix = 64 },
		{ .global_rate = 1, .global_burst = 0, .sources = 64, .ipv6_prefix = 64 },
		{ .source_rate = RATELIMIT_RATE_MAX + 1, .source_burst = 1, .sources = 64,
			.ipv6_prefix = 64 },
		{ .source_rate = 1, .source_burst = RATELIMIT_BURST_MAX + 1, .sources = 64,
			.ipv6_prefix = 64 },
		{ .source_rate = 1, .source_burst = 1, .sources = 64, .ipv6_prefix = 0 },
		{ .source_rate = 1, .source_burst = 1, .sources = 64, .ipv6_prefix = 129 },
		{ .source_rate = 1, .source_burst = 1, .sources = RATELIMIT_SOURCES_MAX + 1,
			.ipv6_prefix = 64 },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct ratelimit *rl = NULL;

		assert_int_equal(ratelimit_new(&rl, &bad[i]), -EINVAL);
		assert_null(rl);
	}
	ratelimit_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst_refill_retry_after),
		cmocka_unit_test(test_sustained_rate),
		cmocka_unit_test(test_sources_apart),
		cmocka_unit_test(test_ipv6_prefix_and_mapped),
		cmocka_unit_test(test_global),
		cmocka_unit_test(test_bounded_table_eviction),
		cmocka_unit_test(test_extremes),
		cmocka_unit_test(test_refused_configs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
