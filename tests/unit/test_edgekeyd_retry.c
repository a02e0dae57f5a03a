// SPDX-License-Identifier: MIT
/*
 * edge-keyd's wait after a busy control plane (ekd_backoff_retry_after, edge-keyd/state.c):
 * never shorter than Retry-After nor than the backoff, at most a tenth longer than
 * Retry-After when that is the longer. The wait itself (ekd_sleep_unless_stopping) ends
 * early when a stop signal is pending and not otherwise.
 */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <time.h>
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

static double
mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void
test_sleep_unless_stopping(void **state)
{
	sigset_t set, pend;
	double t;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	assert_int_equal(sigprocmask(SIG_BLOCK, &set, NULL), 0);
	/* nothing pending: the whole sleep */
	t = mono();
	assert_int_equal(ekd_sleep_unless_stopping(1), 0);
	assert_true(mono() - t >= 0.99);
	/* SIGTERM pending: at once, and it stays pending for the daemon's loop */
	assert_int_equal(raise(SIGTERM), 0);
	t = mono();
	assert_int_equal(ekd_sleep_unless_stopping(30), -EINTR);
	assert_true(mono() - t < 5);
	assert_int_equal(sigpending(&pend), 0);
	assert_int_equal(sigismember(&pend, SIGTERM), 1);
	assert_int_equal(sigwait(&set, &sig), 0);
	assert_int_equal(sig, SIGTERM);
	assert_int_equal(sigprocmask(SIG_UNBLOCK, &set, NULL), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_retry_after_bounds),
		cmocka_unit_test(test_sleep_unless_stopping),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
