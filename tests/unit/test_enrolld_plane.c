// SPDX-License-Identifier: MIT
/*
 * Unit tests for the pure parts of enrolld/plane.c: the wg-quick text a device gets, and
 * the private key file a tenant's interface uses (created 0600 on first use, the same key
 * afterwards, refused when group/other-readable). No interface is touched: the plane is
 * made with the userspace backend and no tenant is brought up.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/key.h"
#include "enrolld/enrolld.h"

static void
tenant(struct store_tenant *t, bool v6)
{
	memset(t, 0, sizeof(*t));
	strcpy(t->name, "acme");
	strcpy(t->ifname, "wg-acme");
	strcpy(t->endpoint, "vpn.example.com:51820");
	assert_int_equal(addr_prefix_parse(&t->prefix4, "10.20.0.0/24"), 0);
	if (v6)
		assert_int_equal(addr_prefix_parse(&t->prefix6, "fd00:20::/64"), 0);
	t->listen_port = 51820;
	t->keepalive = 25;
}

static void
device(struct store_device *d, bool v6)
{
	int fam;

	memset(d, 0, sizeof(*d));
	d->id = 7;
	assert_int_equal(addr_parse(&fam, d->addr4, "10.20.0.7"), 0);
	if (v6) {
		assert_int_equal(addr_parse(&fam, d->addr6, "fd00:20::7"), 0);
		d->has_addr6 = 1;
	}
}

static void
test_wg_quick_v4(void **state)
{
	struct store_tenant t;
	struct store_device d;
	uint8_t pub[32];
	char *text;

	tenant(&t, false);
	device(&d, false);
	memset(pub, 0x11, sizeof(pub));
	text = plane_wg_quick(&t, &d, pub);
	assert_non_null(text);
	assert_string_equal(text,
		"[Interface]\n"
		"# PrivateKey: held by the device's TPM, never written here\n"
		"Address = 10.20.0.7/32\n"
		"\n"
		"[Peer]\n"
		"PublicKey = ERERERERERERERERERERERERERERERERERERERERERE=\n"
		"Endpoint = vpn.example.com:51820\n"
		"AllowedIPs = 10.20.0.0/24\n"
		"PersistentKeepalive = 25\n");
	/* no line may start with PrivateKey: wg-quick would take it */
	assert_null(strstr(text, "\nPrivateKey"));
	free(text);
}

static void
test_wg_quick_v6(void **state)
{
	struct store_tenant t;
	struct store_device d;
	uint8_t pub[32] = { 0 };
	char *text;

	tenant(&t, true);
	device(&d, true);
	text = plane_wg_quick(&t, &d, pub);
	assert_non_null(text);
	assert_non_null(strstr(text, "Address = 10.20.0.7/32, fd00:20::7/128\n"));
	assert_non_null(strstr(text, "AllowedIPs = 10.20.0.0/24, fd00:20::/64\n"));
	free(text);
}

static void
test_tenant_key_file(void **state)
{
	char dir[] = "/tmp/test_enrolld_plane.XXXXXX", path[128];
	struct plane_config pc = { .backend = ENROLLD_WG_USERSPACE, .nftables = false };
	struct plane *p = NULL;
	struct store_tenant t;
	uint8_t pub1[32], pub2[32], zero[32] = { 0 };
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/keys", dir);
	pc.key_dir = path;
	pc.uapi_dir = dir;
	assert_int_equal(plane_new(&p, &pc), 0);
	tenant(&t, false);
	assert_int_equal(plane_tenant_key(p, &t, pub1), 0);
	assert_memory_not_equal(pub1, zero, 32);
	snprintf(path, sizeof(path), "%s/keys/acme.key", dir);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 0777, 0600);
	assert_int_equal(st.st_size, 45); /* base64 and a newline */
	plane_free(p);

	/* another run of the daemon: the same key */
	snprintf(path, sizeof(path), "%s/keys", dir);
	assert_int_equal(plane_new(&p, &pc), 0);
	assert_int_equal(plane_tenant_key(p, &t, pub2), 0);
	assert_memory_equal(pub1, pub2, 32);
	plane_free(p);

	/* a key readable by others is refused, not used */
	snprintf(path, sizeof(path), "%s/keys/acme.key", dir);
	assert_int_equal(chmod(path, 0644), 0);
	snprintf(path, sizeof(path), "%s/keys", dir);
	assert_int_equal(plane_new(&p, &pc), 0);
	assert_int_equal(plane_tenant_key(p, &t, pub2), -EPERM);
	plane_free(p);

	snprintf(path, sizeof(path), "rm -rf '%s'", dir);
	assert_int_equal(system(path), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wg_quick_v4),
		cmocka_unit_test(test_wg_quick_v6),
		cmocka_unit_test(test_tenant_key_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
