// SPDX-License-Identifier: MIT
/*
 * Unit tests for edge-keyd/wgquick.c's `networkd-key`: the key goes to a connected AF_UNIX
 * stream socket whose peer is root or systemd-network, in the shape of a key file, and to
 * nothing else (a file, a pipe, a datagram socket, another user): those are refused before
 * the TPM is asked. ekd_unseal (the TPM) is faked with --wrap.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/key.h"
#include "edge-keyd/edge-keyd.h"

static int unseal_calls;
static int unseal_result;

int __wrap_ekd_unseal(const struct ekd_conf *conf, uint8_t key[static WG_KEY_LEN]);

int
__wrap_ekd_unseal(const struct ekd_conf *conf, uint8_t key[static WG_KEY_LEN])
{
	(void)conf;
	unseal_calls++;
	if (unseal_result < 0)
		return unseal_result;
	for (int i = 0; i < WG_KEY_LEN; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	return 0;
}

static int
setup(void **state)
{
	(void)state;
	unseal_calls = 0;
	unseal_result = 0;
	return 0;
}

static const struct ekd_conf conf;

/* what a key file of the fake key holds: base64 and a newline */
static void
expected_line(char out[WG_KEY_B64_LEN + 1])
{
	uint8_t key[WG_KEY_LEN];

	for (int i = 0; i < WG_KEY_LEN; i++)
		key[i] = (uint8_t)(i * 7 + 1);
	key_to_base64(out, key);
	strcat(out, "\n");
}

static void
test_refuses_file(void **state)
{
	char path[] = "/tmp/test_networkd_key.XXXXXX";
	struct stat st;
	int fd = mkstemp(path);

	(void)state;
	assert_true(fd >= 0);
	assert_int_equal(ekd_networkd_key(&conf, fd), -ENOTSOCK);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 0);
	assert_int_equal(unseal_calls, 0);
	close(fd);
	unlink(path);
}

static void
test_refuses_pipe(void **state)
{
	int p[2];
	char c;

	(void)state;
	assert_int_equal(pipe(p), 0);
	assert_int_equal(ekd_networkd_key(&conf, p[1]), -ENOTSOCK);
	close(p[1]);
	assert_int_equal(read(p[0], &c, 1), 0);
	close(p[0]);
	assert_int_equal(unseal_calls, 0);
}

static void
test_refuses_datagram(void **state)
{
	int sv[2];

	(void)state;
	assert_int_equal(socketpair(AF_UNIX, SOCK_DGRAM, 0, sv), 0);
	assert_int_equal(ekd_networkd_key(&conf, sv[0]), -ENOTSOCK);
	assert_int_equal(unseal_calls, 0);
	close(sv[0]);
	close(sv[1]);
}

/* a stream socket pair: the peer is this process, so root passes and anyone else not */
static void
test_stream_peer(void **state)
{
	char want[WG_KEY_B64_LEN + 1], got[128];
	int sv[2], r;
	ssize_t n;

	(void)state;
	expected_line(want);
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	r = ekd_networkd_key(&conf, sv[0]);
	close(sv[0]);
	n = read(sv[1], got, sizeof(got));
	close(sv[1]);
	if (geteuid() == 0) {
		assert_int_equal(r, 0);
		assert_int_equal(unseal_calls, 1);
		assert_int_equal(n, (ssize_t)strlen(want));
		assert_memory_equal(got, want, strlen(want));
	} else {
		assert_int_equal(r, -EPERM);
		assert_int_equal(unseal_calls, 0);
		assert_int_equal(n, 0);
	}
}

/* as root: a peer that is another user (nobody) gets nothing, the TPM is not asked */
static void
test_refuses_other_user(void **state)
{
	struct sockaddr_un sa = {.sun_family = AF_UNIX};
	socklen_t len;
	pid_t pid;
	int l, c, st;
	char buf[8];

	(void)state;
	if (geteuid() != 0)
		skip();
	/* abstract address: nothing in the file system, no permission check on connect */
	snprintf(sa.sun_path + 1, sizeof(sa.sun_path) - 1, "test_networkd_key.%d", (int)getpid());
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + 1 + strlen(sa.sun_path + 1));
	l = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(l >= 0);
	assert_int_equal(bind(l, (struct sockaddr *)&sa, len), 0);
	assert_int_equal(listen(l, 1), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		int fd;

		if (setgid(65534) < 0 || setuid(65534) < 0)
			_exit(2);
		fd = socket(AF_UNIX, SOCK_STREAM, 0);
		if (fd < 0 || connect(fd, (struct sockaddr *)&sa, len) < 0)
			_exit(3);
		/* whatever the server does, nothing must arrive */
		_exit(read(fd, buf, sizeof(buf)) == 0 ? 0 : 1);
	}
	c = accept(l, NULL, NULL);
	assert_true(c >= 0);
	assert_int_equal(ekd_networkd_key(&conf, c), -EPERM);
	close(c);
	close(l);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
	assert_int_equal(unseal_calls, 0);
}

static void
test_unseal_fails(void **state)
{
	char got[8];
	int sv[2];

	(void)state;
	if (geteuid() != 0)
		skip();
	unseal_result = -EACCES;
	assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	assert_int_equal(ekd_networkd_key(&conf, sv[0]), -EACCES);
	close(sv[0]);
	assert_int_equal(read(sv[1], got, sizeof(got)), 0);
	close(sv[1]);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_refuses_file, setup),
		cmocka_unit_test_setup(test_refuses_pipe, setup),
		cmocka_unit_test_setup(test_refuses_datagram, setup),
		cmocka_unit_test_setup(test_stream_peer, setup),
		cmocka_unit_test_setup(test_refuses_other_user, setup),
		cmocka_unit_test_setup(test_unseal_fails, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
