// SPDX-License-Identifier: MIT
/* Unit tests for common/config.c: INI via inih, strictness, typed getters. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/config.h"

static const char *const known[] = { "server.listen", "server.port", "server.verbose",
	"tenant:*.prefix", "tenant:*.keepalive", "extra.*", NULL };

static void
test_parse_and_get(void **state)
{
	struct config *cfg = NULL;
	char err[256] = "";
	long port;
	bool verbose;

	assert_int_equal(config_parse_string(&cfg,
				 "# comment\n[server]\nlisten = 127.0.0.1 ; inline\nport=8443\n"
				 "verbose = yes\n\n[tenant:acme]\nprefix = 10.1.0.0/16\n",
				 "t.conf", err, sizeof(err)),
		0);
	assert_string_equal(config_get(cfg, "server", "listen"), "127.0.0.1");
	assert_null(config_get(cfg, "server", "missing"));
	assert_string_equal(config_get_str(cfg, "server", "missing", "dflt"), "dflt");
	assert_int_equal(config_get_long(cfg, "server", "port", 1, 65535, 0, &port, err,
				 sizeof(err)),
		0);
	assert_int_equal(port, 8443);
	assert_int_equal(config_get_bool(cfg, "server", "verbose", false, &verbose, err,
				 sizeof(err)),
		0);
	assert_true(verbose);
	assert_string_equal(config_section(cfg, 0), "server");
	assert_string_equal(config_section(cfg, 1), "tenant:acme");
	assert_null(config_section(cfg, 2));
	assert_int_equal(config_check_known(cfg, known, err, sizeof(err)), 0);
	config_free(cfg);
}

static void
test_ranges_and_types(void **state)
{
	struct config *cfg = NULL;
	char err[256] = "";
	long v = 7;
	bool b;

	assert_int_equal(config_parse_string(&cfg, "[server]\nport=70000\nverbose=maybe\n",
				 "t.conf", err, sizeof(err)),
		0);
	assert_int_equal(config_get_long(cfg, "server", "port", 1, 65535, 0, &v, err, sizeof(err)),
		-EINVAL);
	assert_int_equal(v, 7); /* untouched on error */
	assert_non_null(strstr(err, "t.conf:2:"));
	assert_int_equal(config_get_bool(cfg, "server", "verbose", false, &b, err, sizeof(err)),
		-EINVAL);
	assert_non_null(strstr(err, "t.conf:3:"));
	assert_int_equal(config_get_long(cfg, "server", "absent", 1, 9, 5, &v, err, sizeof(err)),
		0);
	assert_int_equal(v, 5);
	config_free(cfg);
}

static void
test_rejects(void **state)
{
	struct config *cfg = NULL;
	char err[256] = "";

	/* duplicate key, with its line */
	assert_int_equal(config_parse_string(&cfg, "[server]\nport=1\n\nport=2\n", "d.conf", err,
				 sizeof(err)),
		-EINVAL);
	assert_null(cfg);
	assert_non_null(strstr(err, "d.conf:4: duplicate key 'port'"));
	/* syntax error */
	assert_int_equal(config_parse_string(&cfg, "[server\nport=1\n", "s.conf", err, sizeof(err)),
		-EINVAL);
	assert_non_null(strstr(err, "s.conf:1: syntax error"));
	/* an indented line is a key of its own, never glued onto the previous value */
	assert_int_equal(config_parse_string(&cfg, "[server]\nport=1\n  listen=2\n", "c.conf", err,
				 sizeof(err)),
		0);
	assert_string_equal(config_get(cfg, "server", "port"), "1");
	assert_string_equal(config_get(cfg, "server", "listen"), "2");
	config_free(cfg);
	/* unknown key: a typo must not pass silently */
	assert_int_equal(config_parse_string(&cfg, "[server]\nprot=1\n[tenant:x]\nprefix=1\n",
				 "u.conf", err, sizeof(err)),
		0);
	assert_int_equal(config_check_known(cfg, known, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "u.conf:2: unknown key 'server.prot'"));
	config_free(cfg);
	/* "tenant:*" does not match the bare section "tenant:" */
	assert_int_equal(config_parse_string(&cfg, "[tenant:]\nprefix=1\n", "u.conf", err,
				 sizeof(err)),
		0);
	assert_int_equal(config_check_known(cfg, known, err, sizeof(err)), -EINVAL);
	config_free(cfg);
}

static void
test_load_file_and_secret_perms(void **state)
{
	char path[] = "/tmp/test_config_XXXXXX";
	struct config *cfg = NULL;
	char err[256] = "";
	int fd = mkstemp(path);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, "[extra]\nanything = goes\n", 24), 24);
	close(fd);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), 0);
	assert_string_equal(config_get(cfg, "extra", "anything"), "goes");
	assert_int_equal(config_check_known(cfg, known, err, sizeof(err)), 0);
	config_free(cfg);

	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(config_check_secret_file(path), 0);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(config_check_secret_file(path), -EPERM);
	assert_int_equal(chmod(path, 0604), 0);
	assert_int_equal(config_check_secret_file(path), -EPERM);
	unlink(path);
	assert_int_equal(config_check_secret_file(path), -ENOENT);
	assert_int_equal(config_load(&cfg, path, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, path));
}

/* Write @body to a fresh file of mode @mode; its path into @path. */
static void
secret_file(char path[static 32], const char *body, mode_t mode)
{
	int fd;

	snprintf(path, 32, "/tmp/test_secret_XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, body, strlen(body)), (ssize_t)strlen(body));
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
}

static void
test_read_secret(void **state)
{
	char path[32], buf[8];

	(void)state;
	secret_file(path, "tok\r\n", 0600);
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "tok");
	unlink(path);

	/* exactly what fits (7 bytes), and its line end beyond the buffer */
	secret_file(path, "1234567", 0400);
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), 7);
	unlink(path);
	secret_file(path, "1234567\n", 0600);
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), -EMSGSIZE);
	assert_memory_equal(buf, "\0\0\0\0\0\0\0\0", sizeof(buf)); /* wiped */
	unlink(path);

	/* a second line is the caller's business: it is returned */
	secret_file(path, "a\nb\n", 0600);
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "a\nb");
	unlink(path);

	secret_file(path, "\n\n", 0600);
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), -ENODATA);
	unlink(path);

	secret_file(path, "secret", 0640);
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), -EPERM);
	assert_int_equal(buf[0], '\0');
	unlink(path);
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), -ENOENT);
	assert_int_equal(config_read_secret("/tmp", buf, sizeof(buf)), -EINVAL);
}

/*
 * config_secret_group: a secret file may be readable by that one group (root:_enrolld 0640
 * for privilege separation), never writable by it, never by another group or others.
 */
static void
test_secret_group(void **state)
{
	char path[32], buf[8];

	(void)state;
	secret_file(path, "tok\n", 0640);
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), -EPERM);
	config_secret_group(getgid() + 1);
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), -EPERM);
	assert_int_equal(config_check_secret_file(path), -EPERM);
	config_secret_group(getgid());
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), 3);
	assert_string_equal(buf, "tok");
	assert_int_equal(config_check_secret_file(path), 0);
	assert_int_equal(chmod(path, 0660), 0);
	assert_int_equal(config_read_secret(path, buf, sizeof(buf)), -EPERM);
	assert_int_equal(chmod(path, 0644), 0);
	assert_int_equal(config_check_secret_file(path), -EPERM);
	assert_int_equal(chmod(path, 0600), 0);
	assert_int_equal(config_check_secret_file(path), 0);
	config_secret_group((gid_t)-1);
	assert_int_equal(chmod(path, 0640), 0);
	assert_int_equal(config_check_secret_file(path), -EPERM);
	unlink(path);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_get),
		cmocka_unit_test(test_ranges_and_types),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_load_file_and_secret_perms),
		cmocka_unit_test(test_read_secret),
		cmocka_unit_test(test_secret_group),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
