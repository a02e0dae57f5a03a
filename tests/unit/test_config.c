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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_and_get),
		cmocka_unit_test(test_ranges_and_types),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_load_file_and_secret_perms),
	};

	return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
