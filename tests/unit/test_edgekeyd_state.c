// SPDX-License-Identifier: MIT
/*
 * Unit tests for edge-keyd/state.c: the enrollment answer and enrollment.json (parsing,
 * validation, round trip, atomic 0600 file), endpoints, and the retry backoff.
 */
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

#define SERVER_KEY "HIgo9xNzJMWLKASShiTqIybxZ0U3wGLiUeJ1PKf8ykw="

static const char good_response[] =
	"{\"device_id\": \"17\", \"tenant\": \"acme\", \"address\": \"10.20.0.2/32\","
	" \"server_public_key\": \"" SERVER_KEY "\", \"endpoint\": \"cp.example.net:51820\","
	" \"allowed_ips\": [\"10.20.0.0/24\", \"fd00:20::/64\"], \"persistent_keepalive\": 25,"
	" \"wg_config\": \"[Interface]\\n\", \"result\": \"new\"}";

static json_t *
parse(const char *text)
{
	json_error_t e;
	json_t *j = json_loads(text, JSON_DECODE_ANY, &e);

	if (j == NULL)
		fail_msg("bad test JSON: %s", e.text);
	return j;
}

static void
test_response_good(void **state)
{
	uint8_t pub[WG_KEY_LEN], srv[WG_KEY_LEN];
	struct ekd_enrollment e;
	char err[256] = "", buf[64];
	json_t *j = parse(good_response);

	memset(pub, 7, sizeof(pub));
	assert_int_equal(ekd_enrollment_from_response(&e, j, pub, 1700000000, "https://cp", err,
				 sizeof(err)),
		0);
	assert_string_equal(e.device_id, "17");
	assert_string_equal(e.tenant, "acme");
	ekd_allowedip_format(&e.address, buf, sizeof(buf));
	assert_string_equal(buf, "10.20.0.2/32");
	assert_false(e.has_address6);
	assert_int_equal(key_from_base64(srv, SERVER_KEY), 0);
	assert_memory_equal(e.server_public_key, srv, WG_KEY_LEN);
	assert_memory_equal(e.wg_public_key, pub, WG_KEY_LEN);
	assert_string_equal(e.endpoint, "cp.example.net:51820");
	assert_int_equal(e.n_allowed_ips, 2);
	ekd_allowedip_format(&e.allowed_ips[1], buf, sizeof(buf));
	assert_string_equal(buf, "fd00:20::/64");
	assert_int_equal(e.keepalive, 25);
	assert_int_equal(e.enrolled_at, 1700000000);
	assert_string_equal(e.server_url, "https://cp");
	json_decref(j);

	/* an integer id and an IPv6 address are fine too; keepalive may be absent */
	j = parse("{\"device_id\": 4, \"tenant\": \"b\", \"address\": \"10.1.0.9/32\","
		  " \"address6\": \"fd00:1::9/128\", \"server_public_key\": \"" SERVER_KEY "\","
		  " \"endpoint\": \"[2001:db8::1]:443\", \"allowed_ips\": [\"10.1.0.0/16\"]}");
	assert_int_equal(ekd_enrollment_from_response(&e, j, pub, 1, NULL, err, sizeof(err)), 0);
	assert_string_equal(e.device_id, "4");
	assert_true(e.has_address6);
	assert_int_equal(e.keepalive, 0);
	json_decref(j);
}

/* Each member broken in turn: refused with its name in the message. */
static void
test_response_bad(void **state)
{
	static const struct {
		const char *key, *value, *needle;
	} cases[] = {
		{ "device_id", "null", "device_id" },
		{ "device_id", "\"\"", "device_id" },
		{ "device_id", "\"a b\"", "device_id" },
		{ "device_id", "-3", "device_id" },
		{ "tenant", "5", "tenant" },
		{ "address", "\"10.20.0.2\"", "address" },
		{ "address", "\"10.20.0.0/24\"", "address" },
		{ "address", "\"10.20.0.300/32\"", "address" },
		{ "address6", "\"10.20.0.2/32\"", "address6" },
		{ "server_public_key", "\"abc\"", "server_public_key" },
		{ "server_public_key", "\"AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\"",
			"server_public_key" },
		{ "endpoint", "\"cp.example.net\"", "endpoint" },
		{ "endpoint", "\"cp:0\"", "endpoint" },
		{ "endpoint", "\"cp:65536\"", "endpoint" },
		{ "endpoint", "\"2001:db8::1:443\"", "endpoint" },
		{ "endpoint", "\"[nope]:443\"", "endpoint" },
		{ "endpoint", "\":443\"", "endpoint" },
		{ "endpoint", "\"a b:1\"", "endpoint" },
		{ "allowed_ips", "[]", "allowed_ips" },
		{ "allowed_ips", "\"10.20.0.0/24\"", "allowed_ips" },
		{ "allowed_ips", "[\"10.20.0.1/24\"]", "allowed_ips" },
		{ "allowed_ips", "[5]", "allowed_ips" },
		{ "persistent_keepalive", "-1", "persistent_keepalive" },
		{ "persistent_keepalive", "70000", "persistent_keepalive" },
		{ "persistent_keepalive", "\"25\"", "persistent_keepalive" },
	};
	uint8_t pub[WG_KEY_LEN] = { 1 };

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct ekd_enrollment e;
		json_t *j = parse(good_response), *v = parse(cases[i].value);
		char err[256] = "";
		int r;

		json_object_set_new(j, cases[i].key, v);
		r = ekd_enrollment_from_response(&e, j, pub, 1, NULL, err, sizeof(err));
		json_decref(j);
		if (r != -EBADMSG)
			fail_msg("case %zu (%s = %s): %d", i, cases[i].key, cases[i].value, r);
		if (strstr(err, cases[i].needle) == NULL)
			fail_msg("case %zu: message '%s' lacks '%s'", i, err, cases[i].needle);
	}
	{
		struct ekd_enrollment e;
		char err[256];
		json_t *j = parse("[1]");

		assert_int_equal(ekd_enrollment_from_response(&e, j, pub, 1, NULL, err, sizeof(err)),
			-EBADMSG);
		json_decref(j);
	}
}

static void
test_too_many_allowed_ips(void **state)
{
	uint8_t pub[WG_KEY_LEN] = { 1 };
	struct ekd_enrollment e;
	json_t *j = parse(good_response), *ips = json_array();
	char err[256], buf[32];

	for (int i = 0; i <= EKD_MAX_ALLOWED_IPS; i++) {
		snprintf(buf, sizeof(buf), "10.%d.0.0/16", i);
		json_array_append_new(ips, json_string(buf));
	}
	json_object_set_new(j, "allowed_ips", ips);
	assert_int_equal(ekd_enrollment_from_response(&e, j, pub, 1, NULL, err, sizeof(err)),
		-EBADMSG);
	json_decref(j);
}

static void
test_json_roundtrip(void **state)
{
	uint8_t pub[WG_KEY_LEN];
	struct ekd_enrollment a, b;
	char err[256];
	json_t *j = parse(good_response), *out;

	memset(pub, 9, sizeof(pub));
	assert_int_equal(ekd_enrollment_from_response(&a, j, pub, 1700000001, "https://cp:1", err,
				 sizeof(err)),
		0);
	json_decref(j);
	out = ekd_enrollment_to_json(&a);
	assert_non_null(out);
	/* nothing secret in it, and no wg_config (it would only go stale) */
	assert_null(json_object_get(out, "private_key"));
	assert_null(json_object_get(out, "wg_config"));
	assert_int_equal(ekd_enrollment_from_json(&b, out, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));
	/* a wrong version is refused */
	json_object_set_new(out, "version", json_integer(2));
	assert_int_equal(ekd_enrollment_from_json(&b, out, err, sizeof(err)), -EBADMSG);
	json_decref(out);
}

static void
test_file(void **state)
{
	char dir[] = "/tmp/test_edgekeyd_state.XXXXXX", path[128], err[256];
	struct ekd_enrollment a, b;
	uint8_t pub[WG_KEY_LEN] = { 3 };
	struct stat st;
	json_t *j = parse(good_response);
	mode_t old;
	FILE *f;

	assert_non_null(mkdtemp(dir));
	assert_int_equal(ekd_enrollment_load(dir, &b, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "edge-keyd enroll"));

	assert_int_equal(ekd_enrollment_from_response(&a, j, pub, 5, "https://cp", err,
				 sizeof(err)),
		0);
	json_decref(j);
	old = umask(0); /* a permissive umask must not make the file readable by others */
	assert_int_equal(ekd_enrollment_store(dir, &a, err, sizeof(err)), 0);
	umask(old);
	snprintf(path, sizeof(path), "%s/enrollment.json", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	assert_int_equal(ekd_enrollment_load(dir, &b, err, sizeof(err)), 0);
	assert_memory_equal(&a, &b, sizeof(a));

	/* a second store replaces it (no temp file left behind) */
	a.enrolled_at = 6;
	assert_int_equal(ekd_enrollment_store(dir, &a, err, sizeof(err)), 0);
	assert_int_equal(ekd_enrollment_load(dir, &b, err, sizeof(err)), 0);
	assert_int_equal(b.enrolled_at, 6);

	/* damaged files are refused with the file's name */
	f = fopen(path, "w");
	fputs("{\"version\": 1, \"device_id\": \"1\"", f);
	fclose(f);
	assert_int_equal(ekd_enrollment_load(dir, &b, err, sizeof(err)), -EBADMSG);
	assert_non_null(strstr(err, "enrollment.json"));
	f = fopen(path, "w");
	fputs("{\"version\": 1, \"version\": 1}", f);
	fclose(f);
	assert_int_equal(ekd_enrollment_load(dir, &b, err, sizeof(err)), -EBADMSG);

	unlink(path);
	assert_int_equal(rmdir(dir), 0); /* fails if a temp file was left */
}

/*
 * Root writing into a state directory owned by the daemon's user (provision, rotate by
 * hand): the file is the directory owner's; into root's own directory it stays root's.
 * Not root: nothing to check (the test says so and passes).
 */
static void
test_file_owner(void **state)
{
	char dir[] = "/tmp/test_edgekeyd_owner.XXXXXX", path[128], err[256];
	struct ekd_enrollment a;
	uint8_t pub[WG_KEY_LEN] = { 3 };
	json_t *j = parse(good_response);
	struct stat st;

	assert_int_equal(ekd_enrollment_from_response(&a, j, pub, 5, "https://cp", err,
				 sizeof(err)),
		0);
	json_decref(j);
	if (geteuid() != 0) {
		print_message("not root: ownership of files written by root not tested\n");
		return;
	}
	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/enrollment.json", dir);
	assert_int_equal(ekd_enrollment_store(dir, &a, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 0);
	assert_int_equal(chown(dir, 64001, 64002), 0);
	assert_int_equal(ekd_enrollment_store(dir, &a, err, sizeof(err)), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_uid, 64001);
	assert_int_equal(st.st_gid, 64002);
	assert_int_equal(st.st_mode & 07777, 0600);
	unlink(path);
	assert_int_equal(rmdir(dir), 0);
}

static void
test_endpoint_split(void **state)
{
	char host[EKD_ENDPOINT_MAX];
	uint16_t port;

	assert_int_equal(ekd_endpoint_split("cp.example.net:51820", host, sizeof(host), &port), 0);
	assert_string_equal(host, "cp.example.net");
	assert_int_equal(port, 51820);
	assert_int_equal(ekd_endpoint_split("192.0.2.1:1", host, sizeof(host), &port), 0);
	assert_string_equal(host, "192.0.2.1");
	assert_int_equal(ekd_endpoint_split("[2001:db8::1]:65535", host, sizeof(host), &port), 0);
	assert_string_equal(host, "2001:db8::1");
	assert_int_equal(port, 65535);
	assert_int_equal(ekd_endpoint_split("cp:+1", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(ekd_endpoint_split("cp:1x", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(ekd_endpoint_split("[::1:1", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(ekd_endpoint_split("-cp:1", host, sizeof(host), &port), -EINVAL);
	assert_int_equal(ekd_endpoint_split("cp.example.net:1", host, 5, &port), -EINVAL);
}

static void
test_backoff(void **state)
{
	struct ekd_backoff b = { .base = 5, .max = 300 };
	unsigned int d;

	/* attempt n: between half and all of min(max, base * 2^n) */
	for (unsigned int n = 0; n < 12; n++) {
		unsigned int full = 5u << n > 300 ? 300 : 5u << n;

		d = ekd_backoff_next(&b, n & 1 ? 0 : UINT32_MAX);
		assert_true(d <= full);
		assert_true(d >= full - full / 2);
	}
	/* jitter: different random values give different delays */
	b.attempt = 6;
	d = ekd_backoff_next(&b, 0);
	b.attempt = 6;
	assert_int_not_equal(d, ekd_backoff_next(&b, 77));
	ekd_backoff_reset(&b);
	d = ekd_backoff_next(&b, 0);
	assert_true(d >= 3 && d <= 5);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_response_good),
		cmocka_unit_test(test_response_bad),
		cmocka_unit_test(test_too_many_allowed_ips),
		cmocka_unit_test(test_json_roundtrip),
		cmocka_unit_test(test_file),
		cmocka_unit_test(test_file_owner),
		cmocka_unit_test(test_endpoint_split),
		cmocka_unit_test(test_backoff),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
