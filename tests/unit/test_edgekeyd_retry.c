// SPDX-License-Identifier: MIT
/*
 * edge-keyd's wait after a busy control plane (ekd_backoff_retry_after, edge-keyd/state.c):
 * never shorter than Retry-After nor than the backoff, at most a tenth longer than
 * Retry-After when that is the longer.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "edge-keyd/edge-keyd.h"

static void
test_retry_after_bounds(void **state)
{
	static const unsigned int afters[] = { 1, 2, 9, 10, 17, 60, 600, 3600 };
	static const uint32_t randoms[] = { 0, 1, 7, 12345, 0x7fffffff, 0xffffffff };

	for (size_t a = 0; a < sizeof(afters) / sizeof(afters[0]); a++) {
		for (size_t r = 0; r < sizeof(randoms) / sizeof(randoms[0]); r++) {
			unsigned int ra = afters[a], d = ekd_backoff_retry_after(3, ra, randoms[r]);

			assert_true(d >= ra);
			assert_true(d >= 3);
			assert_true(d <= (ra > 3 ? ra + ra / 10 : 3));
		}
	}
	/* the backoff is longer: it stands */
	assert_int_equal(ekd_backoff_retry_after(40, 17, 0xffffffff), 40);
	/* jitter is there */
	assert_int_equal(ekd_backoff_retry_after(1, 600, 0), 600);
	assert_int_equal(ekd_backoff_retry_after(1, 600, 60), 660);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_after_bounds),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
