// SPDX-License-Identifier: MIT
/* Unit tests for enrolld/addr.c: prefixes, usable ranges, the lowest-free rule. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "enrolld/addr.h"

static struct addr_prefix
prefix(const char *cidr)
{
	struct addr_prefix p;

	assert_int_equal(addr_prefix_parse(&p, cidr), 0);
	return p;
}

static void
test_prefix_parse(void **state)
{
	struct addr_prefix p;
	char buf[ADDR_STR_LEN];

	p = prefix("10.1.2.0/24");
	assert_int_equal(p.family, AF_INET);
	assert_int_equal(p.plen, 24);
	assert_int_equal(addr_prefix_format(&p, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "10.1.2.0/24");
	p = prefix("fd00:1::/64");
	assert_int_equal(p.family, AF_INET6);
	assert_int_equal(addr_prefix_format(&p, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "fd00:1::/64");

	const char *bad[] = { "10.1.2.1/24", "10.1.2.0/33", "10.1.2.0", "10.1.2.0/", "10.1.2.0/+4",
		"10.1.2.0/ 24", "10.1.2.0/0x18", "fd00::1/64", "fd00::/129", "x/8", "/8",
		"10.1.2.0/24 ", "10.1.2.0/0024" };
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		assert_int_equal(addr_prefix_parse(&p, bad[i]), -EINVAL);
	assert_int_equal(addr_prefix_parse(&p, NULL), -EINVAL);
}

static void
test_usable_range(void **state)
{
	struct addr_prefix p;
	uint64_t first, last;

	p = prefix("10.0.0.0/24");
	assert_int_equal(addr_usable_range(&p, &first, &last), 0);
	assert_int_equal(first, 1);
	assert_int_equal(last, 254);
	p = prefix("10.0.0.0/30");
	assert_int_equal(addr_usable_range(&p, &first, &last), 0);
	assert_int_equal(first, 1);
	assert_int_equal(last, 2);
	p = prefix("10.0.0.0/31");
	assert_int_equal(addr_usable_range(&p, &first, &last), 0);
	assert_int_equal(first, 0);
	assert_int_equal(last, 1);
	p = prefix("10.0.0.1/32");
	assert_int_equal(addr_usable_range(&p, &first, &last), -EADDRNOTAVAIL);
	p = prefix("fd00::/64");
	assert_int_equal(addr_usable_range(&p, &first, &last), 0);
	assert_int_equal(first, 1);
	assert_true(last == UINT64_MAX);
	p = prefix("fd00::/126");
	assert_int_equal(addr_usable_range(&p, &first, &last), 0);
	assert_int_equal(first, 1);
	assert_int_equal(last, 3);
	p = prefix("fd00::/128");
	assert_int_equal(addr_usable_range(&p, &first, &last), -EADDRNOTAVAIL);
}

static void
test_offsets(void **state)
{
	struct addr_prefix p = prefix("10.0.4.0/22");
	uint8_t a[16], b[16];
	uint64_t off;
	int family;
	char buf[ADDR_STR_LEN];

	assert_int_equal(addr_parse(&family, a, "10.0.5.7"), 0);
	assert_int_equal(family, AF_INET);
	assert_int_equal(addr_offset(&p, a, &off), 0);
	assert_int_equal(off, 256 + 7);
	addr_at(&p, off, b);
	assert_memory_equal(a, b, 4);
	assert_true(addr_is_usable(&p, a));
	assert_int_equal(addr_parse(&family, a, "10.0.8.0"), 0);
	assert_int_equal(addr_offset(&p, a, &off), -EINVAL);
	assert_false(addr_is_usable(&p, a));
	assert_int_equal(addr_parse(&family, a, "10.0.7.255"), 0); /* broadcast */
	assert_false(addr_is_usable(&p, a));
	assert_int_equal(addr_parse(&family, a, "10.0.4.0"), 0); /* network */
	assert_false(addr_is_usable(&p, a));

	p = prefix("fd00:0:0:1::/64");
	assert_int_equal(addr_parse(&family, a, "fd00:0:0:1::1:2"), 0);
	assert_int_equal(family, AF_INET6);
	assert_int_equal(addr_offset(&p, a, &off), 0);
	assert_int_equal(off, 0x10002);
	addr_at(&p, 0x10003, b);
	assert_int_equal(addr_format(AF_INET6, b, buf, sizeof(buf)), 0);
	assert_string_equal(buf, "fd00::1:0:0:1:3"); /* RFC 5952: first longest zero run */
	/* Host space is the low 64 bits: an address needing more is refused, not truncated. */
	p = prefix("fd00::/48");
	assert_int_equal(addr_parse(&family, a, "fd00:0:0:1::1"), 0);
	assert_int_equal(addr_offset(&p, a, &off), -EINVAL);
	assert_int_equal(addr_parse(&family, a, "fd00::5"), 0);
	assert_int_equal(addr_offset(&p, a, &off), 0);
	assert_int_equal(off, 5);
}

static void
test_overlap(void **state)
{
	struct addr_prefix a = prefix("10.0.0.0/16"), b = prefix("10.0.3.0/24"),
		c = prefix("10.1.0.0/16"), d = prefix("fd00::/64");

	assert_true(addr_prefix_overlap(&a, &b));
	assert_true(addr_prefix_overlap(&b, &a));
	assert_false(addr_prefix_overlap(&a, &c));
	assert_false(addr_prefix_overlap(&a, &d));
}

/* Run the allocator over a sorted used list. */
static int
alloc(const struct addr_prefix *p, const char *self, const uint64_t *used, size_t n,
	uint64_t from, uint64_t *ret)
{
	struct addr_alloc a;
	uint8_t s[16];
	int family;

	if (self != NULL)
		assert_int_equal(addr_parse(&family, s, self), 0);
	assert_int_equal(addr_alloc_begin(&a, p, self ? s : NULL, from), 0);
	for (size_t i = 0; i < n; i++)
		if (addr_alloc_feed(&a, used[i]))
			break;
	return addr_alloc_end(&a, ret);
}

static void
test_alloc_lowest_free(void **state)
{
	struct addr_prefix p = prefix("10.0.0.0/29"); /* usable 1..6 */
	uint64_t off;
	const uint64_t used1[] = { 1, 2, 4 };
	const uint64_t used_all[] = { 2, 3, 4, 5, 6 };
	const uint64_t used_dup[] = { 0, 1, 1, 2, 7 };

	assert_int_equal(alloc(&p, NULL, NULL, 0, 0, &off), 0);
	assert_int_equal(off, 1);
	/* The control plane's own address is never handed out. */
	assert_int_equal(alloc(&p, "10.0.0.1", NULL, 0, 0, &off), 0);
	assert_int_equal(off, 2);
	assert_int_equal(alloc(&p, "10.0.0.3", used1, 3, 0, &off), 0);
	assert_int_equal(off, 5);
	assert_int_equal(alloc(&p, NULL, used1, 3, 0, &off), 0);
	assert_int_equal(off, 3);
	assert_int_equal(alloc(&p, "10.0.0.1", used_all, 5, 0, &off), -EADDRNOTAVAIL);
	assert_int_equal(alloc(&p, NULL, used_all, 5, 0, &off), 0);
	assert_int_equal(off, 1);
	/* Network (0) and broadcast (7) in the used list change nothing. */
	assert_int_equal(alloc(&p, NULL, used_dup, 5, 0, &off), 0);
	assert_int_equal(off, 3);
	/* A low-water mark starts the search higher; beyond the end is exhaustion. */
	assert_int_equal(alloc(&p, NULL, NULL, 0, 4, &off), 0);
	assert_int_equal(off, 4);
	assert_int_equal(alloc(&p, NULL, NULL, 0, 7, &off), -EADDRNOTAVAIL);
	assert_int_equal(alloc(&p, "10.0.0.6", NULL, 0, 6, &off), -EADDRNOTAVAIL);

	/* /31: both addresses usable; /32: none. */
	p = prefix("10.0.0.0/31");
	assert_int_equal(alloc(&p, "10.0.0.0", NULL, 0, 0, &off), 0);
	assert_int_equal(off, 1);
	p = prefix("10.0.0.9/32");
	assert_int_equal(alloc(&p, NULL, NULL, 0, 0, &off), -EADDRNOTAVAIL);

	/* IPv6 /64: the top of the space does not wrap around. */
	p = prefix("fd00::/64");
	const uint64_t top[] = { UINT64_MAX - 1, UINT64_MAX };
	assert_int_equal(alloc(&p, NULL, top, 2, UINT64_MAX - 1, &off), -EADDRNOTAVAIL);
	assert_int_equal(alloc(&p, NULL, top, 1, UINT64_MAX - 1, &off), 0);
	assert_true(off == UINT64_MAX);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_prefix_parse),
		cmocka_unit_test(test_usable_range),
		cmocka_unit_test(test_offsets),
		cmocka_unit_test(test_overlap),
		cmocka_unit_test(test_alloc_lowest_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
