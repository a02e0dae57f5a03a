// SPDX-License-Identifier: MIT
/* Unit tests for common/secmem.c. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <cmocka.h>

#include "common/secmem.h"

/* The page must be locked: VmLck in /proc/self/status grows while we hold it. */
static long
vmlck_kb(void)
{
	char line[256];
	long kb = -1;
	FILE *f = fopen("/proc/self/status", "r");

	if (f == NULL)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmLck: %ld kB", &kb) == 1)
			break;
	fclose(f);
	return kb;
}

static void
test_alloc_locked_and_free(void **state)
{
	long before = vmlck_kb();
	uint8_t *p = secmem_alloc(32);

	assert_non_null(p);
	memset(p, 0xab, 32);
#ifndef __SANITIZE_ADDRESS__
	/* ASan intercepts mlock() and makes it a no-op, so only check without it. */
	assert_true(vmlck_kb() > before);
#else
	(void)before;
#endif
	secmem_free(p, 32);
	secmem_free(NULL, 32); /* no-op */
	assert_null(secmem_alloc(0));
}

/*
 * A freed one-page region is kept, wiped and locked, for the next one-page allocation:
 * the same page comes back zeroed and nothing new is locked. Larger regions are unlocked
 * and unmapped.
 */
static void
test_page_cache(void **state)
{
	uint8_t *p = secmem_alloc(100), *q, *big;
	long locked;

	assert_non_null(p);
	memset(p, 0xcd, 100);
	secmem_free(p, 100);
	locked = vmlck_kb();
	q = secmem_alloc(64);
	assert_ptr_equal(q, p);
	for (size_t i = 0; i < (size_t)sysconf(_SC_PAGESIZE); i++)
		assert_int_equal(q[i], 0);
	assert_int_equal(vmlck_kb(), locked);
	secmem_free(q, 64);

	big = secmem_alloc(3 * (size_t)sysconf(_SC_PAGESIZE));
	assert_non_null(big);
	memset(big, 0xef, 3 * (size_t)sysconf(_SC_PAGESIZE));
#ifndef __SANITIZE_ADDRESS__
	assert_true(vmlck_kb() > locked);
#endif
	secmem_free(big, 3 * (size_t)sysconf(_SC_PAGESIZE));
	assert_int_equal(vmlck_kb(), locked);
}

/* A forked child does not reuse the cached pages: locks are not inherited by fork. */
static void
test_page_cache_fork(void **state)
{
	uint8_t *p = secmem_alloc(10);
	int status;
	pid_t pid;

	assert_non_null(p);
	secmem_free(p, 10); /* cached */
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		uint8_t *q = secmem_alloc(10);

		/* nothing is locked in a new child: a page it got must have been locked now */
#ifdef __SANITIZE_ADDRESS__
		_exit(q != NULL ? 0 : 1); /* ASan makes mlock() a no-op */
#else
		_exit(q != NULL && vmlck_kb() > 0 ? 0 : 1);
#endif
	}
	assert_int_equal(waitpid(pid, &status, 0), pid);
	assert_true(WIFEXITED(status));
	assert_int_equal(WEXITSTATUS(status), 0);
	assert_ptr_equal(secmem_alloc(10), p); /* the parent still has it */
}

static void
test_wipe(void **state)
{
	uint8_t buf[64];

	memset(buf, 0x5a, sizeof(buf));
	secmem_wipe(buf, sizeof(buf));
	for (size_t i = 0; i < sizeof(buf); i++)
		assert_int_equal(buf[i], 0);
}

static void
test_harden(void **state)
{
	assert_int_equal(secmem_harden_process(), 0);
	assert_int_equal(prctl(PR_GET_DUMPABLE, 0, 0, 0, 0), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_alloc_locked_and_free),
		cmocka_unit_test(test_page_cache),
		cmocka_unit_test(test_page_cache_fork),
		cmocka_unit_test(test_wipe),
		cmocka_unit_test(test_harden),
	};

	return cmocka_run_group_tests_name("secmem", tests, NULL, NULL);
}
