// SPDX-License-Identifier: MIT
/* Unit tests for enrolld/conf.c: defaults, every new section, and what is refused. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <cmocka.h>

#include "enrolld/enrolld.h"

static char path[64];

static void
write_conf(const char *text)
{
	FILE *f;

	strcpy(path, "/tmp/test_enrolld_conf.XXXXXX");
	assert_int_not_equal(mkstemp(path), -1);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(text, f);
	fclose(f);
}

static int
load(const char *text, struct enrolld_conf *c, char *err, size_t len)
{
	int r;

	write_conf(text);
	r = conf_load(c, path, err, len);
	unlink(path);
	return r;
}

static void
test_defaults(void **state)
{
	struct enrolld_conf c = { 0 };
	char err[512] = "";

	assert_int_equal(load("[auth]\nadmin_token_file = /etc/enrolld/admin\n", &c, err,
				 sizeof(err)),
		0);
	assert_string_equal(c.listen, "127.0.0.1");
	assert_int_equal(c.port, 8443);
	assert_string_equal(c.db_path, "/var/lib/enrolld");
	assert_string_equal(c.key_dir, "/var/lib/enrolld/keys");
	assert_int_equal(c.wg_backend, ENROLLD_WG_KERNEL);
	assert_string_equal(c.wireguard_go, "wireguard-go");
	assert_string_equal(c.uapi_dir, "/var/run/wireguard");
	assert_string_equal(c.nft, "nft");
	assert_true(c.vrf);
	assert_true(c.nftables);
	assert_int_equal(c.vrf_table_base, 100000);
	assert_int_equal(c.reconcile_interval, 30);
	assert_int_equal(c.session_ttl, 60);
	assert_int_equal(c.health_interval, 5);
	assert_int_equal(c.default_keepalive, 25);
	assert_int_equal(c.max_connections, 1024);
	assert_int_equal(c.max_connections_per_ip, 64);
	assert_int_equal(c.threads, 4);
	assert_int_equal(c.header_timeout, 10);
	assert_int_equal(c.conn_timeout, 30);
	assert_null(c.ek_ca_dir);
	assert_null(c.tenant_tokens_dir);
	assert_int_equal(c.store_backend, STORE_BACKEND_LMDB);
	assert_null(c.pg_conninfo);
	assert_null(c.kek_file);
	conf_clear(&c);
}

/* [state] backend = postgresql: the connection string as written, the KEK's file. */
static void
test_postgresql(void **state)
{
	struct enrolld_conf c = { 0 };
	char err[512] = "";

	assert_int_equal(load("[state]\nbackend = postgresql\n"
			      "postgresql = host=/run/postgresql dbname=enrolld user=enrolld\n"
			      "kek_file = /etc/enrolld/kek\n[auth]\nadmin_token_file = /a\n",
				 &c, err, sizeof(err)),
		0);
	assert_int_equal(c.store_backend, STORE_BACKEND_POSTGRESQL);
	assert_string_equal(c.pg_conninfo, "host=/run/postgresql dbname=enrolld user=enrolld");
	assert_string_equal(c.kek_file, "/etc/enrolld/kek");
	conf_clear(&c);
}

static void
test_every_section(void **state)
{
	struct enrolld_conf c = { 0 };
	char err[512] = "";

	assert_int_equal(load("[server]\nlisten = ::1\nport = 0\nmax_body = 2048\n"
			      "max_connections = 5000\nmax_connections_per_ip = 0\nthreads = 8\n"
			      "header_timeout = 3\nconnection_timeout = 60\n"
			      "[state]\ndb_path = /srv/e/db\nkey_dir = /srv/e/keys\n"
			      "[auth]\nadmin_token_file = /a\nprovisioning_token_file = /p\n"
			      "tenant_tokens_dir = /t\n"
			      "[attestation]\nek_ca_dir = /ca\nsession_ttl = 30\n"
			      "[wireguard]\nbackend = userspace\nwireguard_go = /usr/bin/wg-go\n"
			      "uapi_dir = /run/wg\nreconcile_interval = 7\nvrf = no\n"
			      "vrf_table_base = 5000\nnftables = off\nnft = /sbin/nft\n"
			      "[health]\ninterval = 2\ndefault_keepalive = 10\n",
				 &c, err, sizeof(err)),
		0);
	assert_string_equal(c.listen, "::1");
	assert_int_equal(c.port, 0);
	assert_int_equal(c.max_body, 2048);
	assert_int_equal(c.max_connections, 5000);
	assert_int_equal(c.max_connections_per_ip, 0);
	assert_int_equal(c.threads, 8);
	assert_int_equal(c.header_timeout, 3);
	assert_int_equal(c.conn_timeout, 60);
	assert_string_equal(c.key_dir, "/srv/e/keys");
	assert_string_equal(c.tenant_tokens_dir, "/t");
	assert_string_equal(c.ek_ca_dir, "/ca");
	assert_int_equal(c.session_ttl, 30);
	assert_int_equal(c.wg_backend, ENROLLD_WG_USERSPACE);
	assert_string_equal(c.wireguard_go, "/usr/bin/wg-go");
	assert_string_equal(c.uapi_dir, "/run/wg");
	assert_int_equal(c.reconcile_interval, 7);
	assert_false(c.vrf);
	assert_false(c.nftables);
	assert_int_equal(c.vrf_table_base, 5000);
	assert_string_equal(c.nft, "/sbin/nft");
	assert_int_equal(c.health_interval, 2);
	assert_int_equal(c.default_keepalive, 10);
	conf_clear(&c);
}

static void
test_refused(void **state)
{
	static const struct {
		const char *text;
		const char *says;
	} bad[] = {
		{ "[wireguard]\nbackend = bsd\n[auth]\nadmin_token_file=/a\n", "wireguard.backend" },
		{ "[wireguard]\nbakend = kernel\n[auth]\nadmin_token_file=/a\n", ":2: unknown key" },
		{ "[health]\ninterval = 0\n[auth]\nadmin_token_file=/a\n", "interval" },
		{ "[attestation]\nsession_ttl = 1\n[auth]\nadmin_token_file=/a\n", "session_ttl" },
		{ "[wireguard]\nvrf = maybe\n[auth]\nadmin_token_file=/a\n", "vrf" },
		{ "[state]\ndb_path = relative/db\n[auth]\nadmin_token_file=/a\n", "absolute" },
		{ "[server]\nlisten = 0.0.0.0\n[auth]\nadmin_token_file=/a\n", "loopback" },
		{ "[server]\ntls_cert = /c\n[auth]\nadmin_token_file=/a\n", "go together" },
		{ "[server]\nport = 1\n", "admin_token_file is required" },
		{ "[server]\nthreads = 0\n[auth]\nadmin_token_file=/a\n", "threads" },
		{ "[server]\nthreads = 65\n[auth]\nadmin_token_file=/a\n", "threads" },
		{ "[server]\nheader_timeout = 0\n[auth]\nadmin_token_file=/a\n", "header_timeout" },
		{ "[server]\nmax_connections_per_ip = -1\n[auth]\nadmin_token_file=/a\n",
			"max_connections_per_ip" },
		{ "[state]\nbackend = mysql\n[auth]\nadmin_token_file=/a\n", "state.backend" },
		{ "[state]\nbackend = postgresql\nkek_file = /k\n[auth]\nadmin_token_file=/a\n",
			"needs state.postgresql" },
		{ "[state]\nbackend = postgresql\npostgresql = dbname=x\n[auth]\n"
		  "admin_token_file=/a\n", "state.kek_file" },
		{ "[state]\nbackend = postgresql\npostgresql = dbname=x\nkek_file = k\n[auth]\n"
		  "admin_token_file=/a\n", "absolute" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct enrolld_conf c = { 0 };
		char err[512] = "";

		assert_int_equal(load(bad[i].text, &c, err, sizeof(err)), -EINVAL);
		if (strstr(err, bad[i].says) == NULL)
			fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].says);
		/* on failure nothing was handed out */
		assert_null(c.listen);
		assert_null(c.db_path);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_every_section),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_postgresql),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
