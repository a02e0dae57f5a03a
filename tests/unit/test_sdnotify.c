// SPDX-License-Identifier: MIT
/* Unit tests for common/sdnotify.c: the datagram systemd reads, path and abstract sockets,
 * no socket, the watchdog variables. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/sdnotify.h"

/* A datagram socket bound to @name ("/path" or "@abstract"), as systemd's. */
static int
listener(const char *name)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	size_t len = strlen(name);
	int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);

	assert_true(fd >= 0);
	memcpy(sa.sun_path, name, len);
	if (name[0] == '@')
		sa.sun_path[0] = '\0';
	assert_int_equal(bind(fd, (struct sockaddr *)&sa,
				 (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len)), 0);
	return fd;
}

static void
expect_datagram(int fd, const char *want)
{
	char buf[256];
	ssize_t n = recv(fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);

	assert_true(n >= 0);
	buf[n] = '\0';
	assert_string_equal(buf, want);
}

static void
test_path_socket(void **state)
{
	char dir[] = "/tmp/sdnotify.XXXXXX", path[64];
	int fd;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/notify", dir);
	fd = listener(path);
	setenv("NOTIFY_SOCKET", path, 1);
	assert_int_equal(sdnotify("READY=1\nSTATUS=serving"), 1);
	expect_datagram(fd, "READY=1\nSTATUS=serving");
	assert_int_equal(sdnotify("WATCHDOG=1"), 1);
	expect_datagram(fd, "WATCHDOG=1");
	close(fd);
	unlink(path);
	/* nobody listens any more: an error, not a crash or a hang */
	assert_true(sdnotify("WATCHDOG=1") < 0);
	rmdir(dir);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_abstract_socket(void **state)
{
	char name[64];
	int fd;

	snprintf(name, sizeof(name), "@sdnotify-test-%d", (int)getpid());
	fd = listener(name);
	setenv("NOTIFY_SOCKET", name, 1);
	assert_int_equal(sdnotify("STOPPING=1"), 1);
	expect_datagram(fd, "STOPPING=1");
	close(fd);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_no_socket(void **state)
{
	unsetenv("NOTIFY_SOCKET");
	assert_int_equal(sdnotify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "", 1);
	assert_int_equal(sdnotify("READY=1"), 0);
	setenv("NOTIFY_SOCKET", "relative/path", 1);
	assert_int_equal(sdnotify("READY=1"), -EAFNOSUPPORT);
	unsetenv("NOTIFY_SOCKET");
}

static void
test_watchdog(void **state)
{
	uint64_t usec = 7;
	char pid[32];

	unsetenv("WATCHDOG_USEC");
	unsetenv("WATCHDOG_PID");
	assert_int_equal(sdnotify_watchdog_usec(&usec), 0);
	setenv("WATCHDOG_USEC", "20000000", 1);
	assert_int_equal(sdnotify_watchdog_usec(&usec), 1);
	assert_true(usec == 20000000);
	snprintf(pid, sizeof(pid), "%d", (int)getpid());
	setenv("WATCHDOG_PID", pid, 1);
	usec = 7;
	assert_int_equal(sdnotify_watchdog_usec(&usec), 1);
	assert_true(usec == 20000000);
	/* meant for another process: not ours to ping */
	snprintf(pid, sizeof(pid), "%d", (int)getpid() + 1);
	setenv("WATCHDOG_PID", pid, 1);
	usec = 7;
	assert_int_equal(sdnotify_watchdog_usec(&usec), 0);
	assert_true(usec == 7);
	unsetenv("WATCHDOG_PID");
	setenv("WATCHDOG_USEC", "20s", 1);
	assert_int_equal(sdnotify_watchdog_usec(&usec), -EINVAL);
	setenv("WATCHDOG_USEC", "0", 1);
	assert_int_equal(sdnotify_watchdog_usec(&usec), -EINVAL);
	unsetenv("WATCHDOG_USEC");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_socket),
		cmocka_unit_test(test_abstract_socket),
		cmocka_unit_test(test_no_socket),
		cmocka_unit_test(test_watchdog),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
