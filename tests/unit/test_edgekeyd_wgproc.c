// SPDX-License-Identifier: MIT
/*
 * Unit tests for common/wgproc.c (the wireguard-go spawner edge-keyd uses): start, keep,
 * adopt, stop, a stale socket, a child that dies or never answers, a missing program.
 *
 * The "wireguard-go" here is this test binary run again: with argv[1] starting with
 * "wgpfake" it plays a userspace WireGuard serving <FAKE_UAPI_DIR>/<argv[1]>.sock
 * ("wgpfake-exit": exits at once; "wgpfake-mute": never opens its socket).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/wgproc.h"

static char self[PATH_MAX];
static char dir[64];

static volatile sig_atomic_t fake_stop;

static void
fake_on_term(int sig)
{
	fake_stop = 1;
}

/* The fake userspace WireGuard. */
static int
fake_main(const char *ifname)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	const char *d = getenv("FAKE_UAPI_DIR");
	const char *fg = getenv("WG_PROCESS_FOREGROUND");
	struct sigaction sa = { .sa_handler = fake_on_term };
	int fd;

	if (fg == NULL || strcmp(fg, "1") != 0 || d == NULL)
		return 3; /* the spawner must ask for the foreground */
	if (strcmp(ifname, "wgpfake-exit") == 0)
		return 4;
	sigaction(SIGTERM, &sa, NULL);
	if (strcmp(ifname, "wgpfake-mute") != 0) {
		snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/%s.sock", d, ifname);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || listen(fd, 8) < 0)
			return 5;
	}
	while (!fake_stop)
		pause();
	if (sun.sun_path[0])
		unlink(sun.sun_path); /* as wireguard-go does on SIGTERM */
	return 0;
}

static struct wgproc_opts
opts(int timeout_ms)
{
	struct wgproc_opts o = { .program = self, .uapi_dir = dir, .timeout_ms = timeout_ms };

	return o;
}

static void
sock_path(const char *ifname, char *buf, size_t len)
{
	assert_int_equal(wgproc_sock_path(dir, ifname, buf, len), 0);
}

static void
test_start_keep_adopt_stop(void **state)
{
	struct wgproc_opts o = opts(3000);
	struct wgproc a = { 0 }, b = { 0 };
	char sock[128];
	pid_t pid;

	sock_path("wgpfake0", sock, sizeof(sock));
	assert_int_equal(wgproc_sock_pid(sock), -ENOENT);
	assert_int_equal(wgproc_ensure(&a, &o, "wgpfake0"), 1);
	assert_true(a.pid > 0);
	assert_true(a.our_child);
	assert_int_equal(wgproc_sock_pid(sock), a.pid);
	pid = a.pid;

	/* still serving: kept */
	assert_int_equal(wgproc_ensure(&a, &o, "wgpfake0"), 0);
	assert_int_equal(a.pid, pid);
	assert_true(wgproc_alive(&a));

	/* another handle (a restarted daemon) adopts it */
	assert_int_equal(wgproc_ensure(&b, &o, "wgpfake0"), 0);
	assert_int_equal(b.pid, pid);
	assert_false(b.our_child);

	/* stop through the adopting handle; the child is reaped through ours */
	assert_int_equal(wgproc_stop(&b, 2000), 0);
	assert_int_equal(b.pid, 0);
	for (int i = 0; i < 100 && wgproc_alive(&a); i++)
		usleep(20000);
	assert_false(wgproc_alive(&a));
	assert_int_equal(a.pid, 0);
	assert_int_not_equal(access(sock, F_OK), 0); /* the fake removed its socket */
	assert_int_equal(wgproc_stop(&a, 0), 0);      /* nothing to stop */
	assert_int_equal(wgproc_stop(NULL, 0), 0);
}

/* A socket file nobody answers on (a dead instance's) is replaced. */
static void
test_stale_socket(void **state)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct wgproc_opts o = opts(3000);
	struct wgproc w = { 0 };
	int fd;

	sock_path("wgpfake1", sun.sun_path, sizeof(sun.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd); /* bound, never listened, closed: connect() is refused */
	assert_int_equal(wgproc_sock_pid(sun.sun_path), -ECONNREFUSED);
	assert_int_equal(wgproc_ensure(&w, &o, "wgpfake1"), 1);
	assert_int_equal(wgproc_sock_pid(sun.sun_path), w.pid);
	assert_int_equal(wgproc_stop(&w, 0), 0);
}

static void
test_child_exits(void **state)
{
	struct wgproc_opts o = opts(3000);
	struct wgproc w = { 0 };

	assert_int_equal(wgproc_ensure(&w, &o, "wgpfake-exit"), -ECHILD);
	assert_int_equal(w.pid, 0);
}

static void
test_child_never_answers(void **state)
{
	struct wgproc_opts o = opts(300);
	struct wgproc w = { 0 };

	assert_int_equal(wgproc_ensure(&w, &o, "wgpfake-mute"), -ETIMEDOUT);
	/* it was stopped and reaped: no child left */
	assert_int_equal(w.pid, 0);
	assert_int_equal(waitpid(-1, NULL, WNOHANG), -1);
	assert_int_equal(errno, ECHILD);
}

static void
test_missing_program(void **state)
{
	struct wgproc_opts o = opts(300);
	struct wgproc w = { 0 };

	o.program = "/nonexistent/wireguard-go";
	assert_int_equal(wgproc_ensure(&w, &o, "wgpfake2"), -ENOENT);
	assert_int_equal(w.pid, 0);
}

static void
test_sock_path(void **state)
{
	char buf[32];
	char longname[200];

	assert_int_equal(wgproc_sock_path("/run/wg", "wg0", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/run/wg/wg0.sock");
	assert_int_equal(wgproc_sock_path(NULL, "wg0", buf, sizeof(buf)), 0);
	assert_string_equal(buf, "/var/run/wireguard/wg0.sock");
	memset(longname, 'a', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(wgproc_sock_path("/run/wg", longname, buf, sizeof(buf)), -ENAMETOOLONG);
	assert_int_equal(wgproc_sock_pid(longname), -ENAMETOOLONG);
}

int
main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sock_path),
		cmocka_unit_test(test_start_keep_adopt_stop),
		cmocka_unit_test(test_stale_socket),
		cmocka_unit_test(test_child_exits),
		cmocka_unit_test(test_child_never_answers),
		cmocka_unit_test(test_missing_program),
	};
	ssize_t n;
	int r;

	if (argc == 2 && strncmp(argv[1], "wgpfake", 7) == 0)
		return fake_main(argv[1]);

	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n <= 0)
		return 1;
	self[n] = '\0';
	snprintf(dir, sizeof(dir), "/tmp/test_wgproc.XXXXXX");
	if (mkdtemp(dir) == NULL)
		return 1;
	setenv("FAKE_UAPI_DIR", dir, 1);
	setenv("WG_PROCESS_FOREGROUND", "0", 1); /* the spawner must override it */
	r = cmocka_run_group_tests(tests, NULL, NULL);
	{
		char p[128];

		snprintf(p, sizeof(p), "%s/wgpfake1.sock", dir);
		unlink(p);
	}
	rmdir(dir);
	return r;
}
