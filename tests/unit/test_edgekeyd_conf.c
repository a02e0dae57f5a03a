// SPDX-License-Identifier: MIT
/* Unit tests for edge-keyd/conf.c: defaults, every value checked, the example file. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "edge-keyd/edge-keyd.h"

static void
test_defaults(void **state)
{
	struct ekd_conf c;
	char err[256] = "";

	assert_int_equal(ekd_conf_parse(&c, "", "empty.conf", err, sizeof(err)), 0);
	assert_string_equal(c.state_dir, "/var/lib/edge-keyd");
	assert_string_equal(c.tcti, "device:/dev/tpmrm0");
	assert_string_equal(c.ek_type, "rsa2048");
	assert_string_equal(c.ak_type, "ecc");
	assert_null(c.pcr_policy);
	assert_null(c.url);
	assert_null(c.ca_file);
	assert_false(c.allow_http);
	assert_string_equal(c.ifname, "wg0");
	assert_int_equal(c.backend, EKD_BACKEND_KERNEL);
	assert_string_equal(c.wireguard_go, "wireguard-go");
	assert_string_equal(c.uapi_dir, "/var/run/wireguard");
	assert_int_equal(c.keepalive, 0);
	assert_int_equal(c.check_interval, 5);
	assert_int_equal(c.reenroll_after, 900);
	assert_int_equal(c.timeout, 30);
	assert_true(c.remove_on_exit);
	/* enroll/run need a server */
	assert_int_equal(ekd_conf_require_server(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "server.url"));
	ekd_conf_clear(&c);
	ekd_conf_clear(NULL);
}

static void
test_full(void **state)
{
	struct ekd_conf c;
	char err[256] = "";

	assert_int_equal(ekd_conf_parse(&c,
				 "[device]\nstate_dir=/tmp/x\ntcti=swtpm:host=127.0.0.1,port=2321\n"
				 "ek_type=p384\nak_type=rsa\npcr_policy=sha256:0,7\nlabel=gw-1\n"
				 "[server]\nurl=https://cp.example.net:8443///\nca_file=/etc/ca.pem\n"
				 "tenant=acme_1.x\ntoken_file=/t\nprovisioning_token_file=/p\ntimeout=5\n"
				 "[wireguard]\ninterface=ek0\nbackend=userspace\nwireguard_go=/bin/wg-go\n"
				 "uapi_dir=/run/wg\nkeepalive=10\ncheck_interval=1\nreenroll_after=0\n"
				 "remove_on_exit=no\n",
				 "full.conf", err, sizeof(err)),
		0);
	assert_string_equal(c.state_dir, "/tmp/x");
	assert_string_equal(c.tcti, "swtpm:host=127.0.0.1,port=2321");
	assert_string_equal(c.ek_type, "p384");
	assert_string_equal(c.ak_type, "rsa");
	assert_string_equal(c.pcr_policy, "sha256:0,7");
	assert_string_equal(c.label, "gw-1");
	/* trailing slashes go: paths are appended to it */
	assert_string_equal(c.url, "https://cp.example.net:8443");
	assert_string_equal(c.tenant, "acme_1.x");
	assert_int_equal(c.timeout, 5);
	assert_string_equal(c.ifname, "ek0");
	assert_int_equal(c.backend, EKD_BACKEND_USERSPACE);
	assert_string_equal(c.wireguard_go, "/bin/wg-go");
	assert_int_equal(c.keepalive, 10);
	assert_int_equal(c.check_interval, 1);
	assert_int_equal(c.reenroll_after, 0);
	assert_false(c.remove_on_exit);
	assert_int_equal(ekd_conf_require_server(&c, err, sizeof(err)), 0);
	ekd_conf_clear(&c);
}

/* Each bad text is refused, and the message names the key. */
static void
test_rejects(void **state)
{
	static const struct {
		const char *text, *needle;
	} cases[] = {
		{ "[device]\nstat_dir=/x\n", "unknown key 'device.stat_dir'" },
		{ "[devices]\nstate_dir=/x\n", "unknown key" },
		{ "[device]\nstate_dir=relative\n", "device.state_dir" },
		{ "[device]\ntcti=\n", "device.tcti" },
		{ "[device]\nek_type=rsa4096\n", "device.ek_type" },
		{ "[device]\nak_type=dsa\n", "device.ak_type" },
		{ "[device]\npcr_policy=sha256:24\n", "device.pcr_policy" },
		{ "[device]\npcr_policy=md5:1\n", "device.pcr_policy" },
		{ "[device]\npcr_policy=sha256:\n", "device.pcr_policy" },
		{ "[device]\nlabel=0123456789012345678901234567890123456789012345678901234567890123\n",
			"device.label" },
		{ "[server]\nurl=http://cp:80\n", "allow_http" },
		{ "[server]\nurl=ftp://cp\n", "server.url" },
		{ "[server]\nurl=https://\n", "server.url" },
		{ "[server]\nallow_http=perhaps\n", "server.allow_http" },
		{ "[server]\ntenant=a/b\n", "server.tenant" },
		{ "[server]\ntenant=\n", "server.tenant" },
		{ "[server]\ntimeout=0\n", "server.timeout" },
		{ "[wireguard]\ninterface=wg0123456789abcd\n", "wireguard.interface" },
		{ "[wireguard]\ninterface=wg/0\n", "wireguard.interface" },
		{ "[wireguard]\ninterface=wg 0\n", "wireguard.interface" },
		{ "[wireguard]\nbackend=boringtun\n", "wireguard.backend" },
		{ "[wireguard]\nkeepalive=-1\n", "wireguard.keepalive" },
		{ "[wireguard]\ncheck_interval=0\n", "wireguard.check_interval" },
		{ "[wireguard]\ncheck_interval=5s\n", "wireguard.check_interval" },
		{ "[wireguard]\nuapi_dir=run\n", "wireguard.uapi_dir" },
		{ "[wireguard]\nremove_on_exit=2\n", "wireguard.remove_on_exit" },
		{ "[wireguard]\ninterface=a\ninterface=b\n", "" }, /* duplicate key */
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ekd_conf c = { 0 };
		char err[256] = "";

		if (ekd_conf_parse(&c, cases[i].text, "bad.conf", err, sizeof(err)) == 0) {
			ekd_conf_clear(&c);
			fail_msg("accepted: %s", cases[i].text);
		}
		if (strstr(err, cases[i].needle) == NULL || strstr(err, "bad.conf") == NULL)
			fail_msg("case %zu: message '%s' lacks '%s' or the file name", i, err,
				cases[i].needle);
		/* nothing was handed out on failure */
		assert_null(c.state_dir);
	}
}

static void
test_https_needs_ca(void **state)
{
	struct ekd_conf c;
	char err[256] = "";

	assert_int_equal(ekd_conf_parse(&c, "[server]\nurl=https://cp\n", "t.conf", err,
				 sizeof(err)),
		0);
	assert_int_equal(ekd_conf_require_server(&c, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ca_file"));
	ekd_conf_clear(&c);
	/* plain http (tests) needs no CA, but must be allowed explicitly */
	assert_int_equal(ekd_conf_parse(&c, "[server]\nurl=http://127.0.0.1:1\nallow_http=yes\n",
				 "t.conf", err, sizeof(err)),
		0);
	assert_int_equal(ekd_conf_require_server(&c, err, sizeof(err)), 0);
	ekd_conf_clear(&c);
}

/* The shipped example is a valid configuration (golden file). */
static void
test_example_file(void **state)
{
	struct ekd_conf c;
	char err[512] = "";

	if (access("etc/edge-keyd.conf.example", R_OK) < 0)
		fail_msg("run from the repository root: etc/edge-keyd.conf.example not found");
	assert_int_equal(ekd_conf_load(&c, "etc/edge-keyd.conf.example", err, sizeof(err)), 0);
	assert_string_equal(c.url, "https://cp.example.net:8443");
	assert_string_equal(c.tenant, "acme");
	assert_string_equal(c.ifname, "wg0");
	assert_int_equal(c.backend, EKD_BACKEND_KERNEL);
	assert_int_equal(ekd_conf_require_server(&c, err, sizeof(err)), 0);
	ekd_conf_clear(&c);
}

static char tmpdir[64];

static void
write_file(const char *name, const char *text, mode_t mode)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
	assert_int_equal(chmod(path, mode), 0);
}

static void
test_tokens(void **state)
{
	char tok[EKD_TOKEN_MAX], err[256], path[128], big[400];

	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_edgekeyd_conf.XXXXXX");
	assert_non_null(mkdtemp(tmpdir));
	write_file("good", "tok-123\n", 0600);
	write_file("open", "tok-123\n", 0640);
	write_file("empty", "\n", 0600);
	write_file("two", "tok 123\n", 0600);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	write_file("big", big, 0600);

	snprintf(path, sizeof(path), "%s/good", tmpdir);
	assert_int_equal(ekd_read_token(path, tok, err, sizeof(err)), 0);
	assert_string_equal(tok, "tok-123");
	snprintf(path, sizeof(path), "%s/open", tmpdir);
	assert_int_equal(ekd_read_token(path, tok, err, sizeof(err)), -EPERM);
	assert_non_null(strstr(err, "chmod 0600"));
	snprintf(path, sizeof(path), "%s/empty", tmpdir);
	assert_int_equal(ekd_read_token(path, tok, err, sizeof(err)), -EINVAL);
	snprintf(path, sizeof(path), "%s/two", tmpdir);
	assert_int_equal(ekd_read_token(path, tok, err, sizeof(err)), -EINVAL);
	snprintf(path, sizeof(path), "%s/big", tmpdir);
	assert_int_equal(ekd_read_token(path, tok, err, sizeof(err)), -EINVAL);
	snprintf(path, sizeof(path), "%s/missing", tmpdir);
	assert_int_equal(ekd_read_token(path, tok, err, sizeof(err)), -ENOENT);
	assert_int_equal(ekd_read_token(tmpdir, tok, err, sizeof(err)), -EINVAL); /* a dir */

	for (const char *n = "good\0open\0empty\0two\0big\0"; *n; n += strlen(n) + 1) {
		snprintf(path, sizeof(path), "%s/%s", tmpdir, n);
		unlink(path);
	}
	rmdir(tmpdir);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_rejects),
		cmocka_unit_test(test_https_needs_ca),
		cmocka_unit_test(test_example_file),
		cmocka_unit_test(test_tokens),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
