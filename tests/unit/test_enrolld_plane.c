// SPDX-License-Identifier: MIT
/*
 * Unit tests for enrolld/plane.c: the wg-quick text a device gets; the private key file a
 * tenant's interface uses (created 0600 on first use, the same key afterwards, refused when
 * group/other-readable); and plane_device_sync() against a real store, in every order the
 * store commits and the interface changes of concurrent requests can run in (issue 10.1).
 * No interface is touched: wg_set_device is replaced (--wrap) by a fake interface with
 * WireGuard's rules (an allowed IP belongs to one peer; REPLACE_ALLOWEDIPS), and bringing
 * a tenant up (wireguard-go, addresses, route) by no-ops.
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
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/key.h"
#include "common/rtnl.h"
#include "common/wg.h"
#include "common/wgproc.h"
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

/* ---- plane_device_sync() and a fake interface ---------------------------------------------- */

#define FAKE_MAX 16

/* The fake interface: its peers, each with at most one IPv4 allowed IP (the tests use v4). */
static struct {
	uint8_t key[32];
	bool has_ip;
	uint8_t ip[4];
} fake[FAKE_MAX];
static size_t n_fake;

int __wrap_wg_set_device(struct wg_ctl *ctl, const struct wg_device *dev);
int __wrap_wgproc_ensure(struct wgproc *wp, const struct wgproc_opts *opts, const char *ifname);
int __wrap_rtnl_addr_add(struct rtnl *rtnl, const char *ifname, int family, const void *addr,
	uint8_t prefixlen);
int __wrap_rtnl_link_set_up(struct rtnl *rtnl, const char *ifname, bool up);
int __wrap_rtnl_route_add(struct rtnl *rtnl, const char *ifname, int family, const void *dst,
	uint8_t prefixlen, uint32_t table);

static ssize_t
fake_find(const uint8_t key[32])
{
	for (size_t i = 0; i < n_fake; i++)
		if (memcmp(fake[i].key, key, 32) == 0)
			return (ssize_t)i;
	return -1;
}

int
__wrap_wg_set_device(struct wg_ctl *ctl, const struct wg_device *dev)
{
	(void)ctl;
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *p = &dev->peers[i];
		ssize_t at = fake_find(p->public_key);

		assert_true(p->flags & WG_PEER_F_HAS_PUBLIC_KEY);
		if (p->flags & WG_PEER_F_REMOVE_ME) {
			if (at >= 0)
				fake[at] = fake[--n_fake];
			continue;
		}
		if (at < 0) {
			assert_true(n_fake < FAKE_MAX);
			at = (ssize_t)n_fake++;
			memcpy(fake[at].key, p->public_key, 32);
			fake[at].has_ip = false;
		}
		if (p->flags & WG_PEER_F_REPLACE_ALLOWEDIPS)
			fake[at].has_ip = false;
		for (size_t j = 0; j < p->n_allowedips; j++) {
			if (p->allowedips[j].family != AF_INET)
				continue;
			/* an allowed IP moves: it leaves whichever peer had it */
			for (size_t k = 0; k < n_fake; k++)
				if (fake[k].has_ip && memcmp(fake[k].ip, &p->allowedips[j].ip4, 4) == 0)
					fake[k].has_ip = false;
			fake[at].has_ip = true;
			memcpy(fake[at].ip, &p->allowedips[j].ip4, 4);
		}
	}
	return 0;
}

int
__wrap_wgproc_ensure(struct wgproc *wp, const struct wgproc_opts *opts, const char *ifname)
{
	(void)wp, (void)opts, (void)ifname;
	return 0;
}

int
__wrap_rtnl_addr_add(struct rtnl *rtnl, const char *ifname, int family, const void *addr,
	uint8_t prefixlen)
{
	(void)rtnl, (void)ifname, (void)family, (void)addr, (void)prefixlen;
	return 0;
}

int
__wrap_rtnl_link_set_up(struct rtnl *rtnl, const char *ifname, bool up)
{
	(void)rtnl, (void)ifname, (void)up;
	return 0;
}

int
__wrap_rtnl_route_add(struct rtnl *rtnl, const char *ifname, int family, const void *dst,
	uint8_t prefixlen, uint32_t table)
{
	(void)rtnl, (void)ifname, (void)family, (void)dst, (void)prefixlen, (void)table;
	return 0;
}

struct fx {
	char dir[64], keys[80];
	struct store *s;
	struct plane *p;
	struct store_tenant t;
};

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st, (void)flag, (void)ftw;
	return remove(path);
}

static void
fx_new(struct fx *f)
{
	struct plane_config pc = { .backend = ENROLLD_WG_USERSPACE, .nftables = false };
	struct store_registration reg;

	memset(f, 0, sizeof(*f));
	n_fake = 0;
	snprintf(f->dir, sizeof(f->dir), "/tmp/test_enrolld_plane.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	assert_int_equal(store_open(&f->s, f->dir, NULL), 0);
	tenant(&f->t, false);
	assert_int_equal(store_tenant_create(f->s, &f->t), 0);
	assert_int_equal(store_tenant_get(f->s, "acme", &f->t), 0);
	for (uint8_t ek = 1; ek <= 2; ek++) {
		memset(&reg, 0, sizeof(reg));
		strcpy(reg.tenant, "acme");
		memset(reg.ek_hash, ek, sizeof(reg.ek_hash));
		assert_int_equal(store_registration_add(f->s, &reg), 0);
	}
	snprintf(f->keys, sizeof(f->keys), "%s/keys", f->dir);
	pc.key_dir = f->keys;
	pc.uapi_dir = f->dir;
	assert_int_equal(plane_new(&f->p, &pc), 0);
}

static void
fx_free(struct fx *f)
{
	plane_free(f->p);
	store_free(f->s);
	nftw(f->dir, rm_entry, 8, FTW_DEPTH | FTW_PHYS);
}

static const uint8_t *
key(uint8_t n)
{
	static uint8_t k[256][32];

	memset(k[n], 0xa0, 32);
	k[n][0] = n;
	return k[n];
}

/* One request's store commit: EK @ek enrolls with key @n; its keys for the sync. */
struct change {
	uint64_t id;
	const uint8_t *keys[2];
	size_t n_keys;
	struct store_device dev, prev;
};

static void
commit_enroll(struct fx *f, uint8_t ek, uint8_t n, int want, struct change *c)
{
	struct store_enroll_req req;

	memset(&req, 0, sizeof(req));
	strcpy(req.tenant, "acme");
	memset(req.ek_hash, ek, sizeof(req.ek_hash));
	memcpy(req.wg_pubkey, key(n), 32);
	req.kind = STORE_ATTEST_TPM;
	assert_int_equal(store_enroll_prev(f->s, &req, &c->dev, &c->prev), want);
	c->id = c->dev.id;
	c->keys[0] = c->dev.wg_pubkey;
	c->keys[1] = c->prev.wg_pubkey;
	c->n_keys = c->prev.id != 0 ? 2 : 1;
	if (want == STORE_ENROLL_NEW)
		assert_int_equal(c->prev.id, 0);
}

static void
commit_revoke(struct fx *f, uint64_t id, struct change *c)
{
	assert_int_equal(store_device_revoke(f->s, id, &c->dev), 0);
	c->id = id;
	c->keys[0] = c->dev.wg_pubkey;
	c->n_keys = 1;
}

static void
apply_change(struct fx *f, const struct change *c)
{
	assert_int_equal(plane_device_sync(f->p, f->s, &f->t, c->id, c->keys, c->n_keys), 0);
}

/* The interface holds key @n with the device's address (@n 0: nothing of device @id). */
static void
assert_iface(struct fx *f, uint64_t id, uint8_t n)
{
	struct store_device d;
	size_t want = 0;

	assert_int_equal(store_device_get(f->s, id, &d), 0);
	for (size_t i = 0; i < n_fake; i++) {
		/* no peer without an allowed IP, ever */
		assert_true(fake[i].has_ip);
		if (memcmp(fake[i].ip, d.addr4, 4) != 0)
			continue;
		want++;
		assert_int_not_equal(n, 0);
		assert_memory_equal(fake[i].key, key(n), 32);
	}
	assert_int_equal(want, n ? 1 : 0);
}

/*
 * Two rotations of one device, o -> a (A) then a -> b (B) in the store; their interface
 * changes in each order they can run in (each after its own commit).
 */
static void
test_sync_rotations_any_order(void **state)
{
	(void)state;
	for (int order = 0; order < 3; order++) {
		struct change o, a, b;
		struct fx f;

		fx_new(&f);
		commit_enroll(&f, 1, 10, STORE_ENROLL_NEW, &o);
		apply_change(&f, &o);
		assert_iface(&f, o.id, 10);
		commit_enroll(&f, 1, 11, STORE_ENROLL_ROTATED, &a);
		if (order == 0)
			apply_change(&f, &a);
		commit_enroll(&f, 1, 12, STORE_ENROLL_ROTATED, &b);
		/* the key B's commit replaced is a, whatever B could have read before it */
		assert_memory_equal(b.prev.wg_pubkey, key(11), 32);
		if (order == 1)
			apply_change(&f, &a);
		apply_change(&f, &b);
		if (order == 2)
			apply_change(&f, &a); /* A last: must not bring a back, nor drop b */
		assert_iface(&f, o.id, 12);
		assert_int_equal(n_fake, 1);
		fx_free(&f);
	}
}

/* A revocation committed after a rotation; their interface changes in both orders. */
static void
test_sync_revoke_races_rotation(void **state)
{
	(void)state;
	for (int order = 0; order < 2; order++) {
		struct change o, a, r, renew;
		struct fx f;

		fx_new(&f);
		commit_enroll(&f, 1, 10, STORE_ENROLL_NEW, &o);
		apply_change(&f, &o);
		commit_enroll(&f, 1, 11, STORE_ENROLL_ROTATED, &a);
		commit_revoke(&f, o.id, &r);
		assert_memory_equal(r.dev.wg_pubkey, key(11), 32);
		if (order == 0) {
			apply_change(&f, &r);
			apply_change(&f, &a); /* the rotation last must not re-add the revoked key */
		} else {
			apply_change(&f, &a);
			apply_change(&f, &r);
		}
		assert_iface(&f, o.id, 0);
		assert_int_equal(n_fake, 0);
		/* reinstated, then enrolled again with a new key: only that key */
		assert_int_equal(store_device_reinstate(f.s, o.id), 0);
		commit_enroll(&f, 1, 12, STORE_ENROLL_RENEWED, &renew);
		apply_change(&f, &renew);
		assert_iface(&f, o.id, 12);
		assert_int_equal(n_fake, 1);
		fx_free(&f);
	}
}

/*
 * A key one device rotated away from is taken by another device before the first one's
 * interface change runs: that change must not remove it from the device that holds it now.
 */
static void
test_sync_key_moves_to_another_device(void **state)
{
	struct change x, x2, y;
	struct fx f;

	(void)state;
	fx_new(&f);
	commit_enroll(&f, 1, 10, STORE_ENROLL_NEW, &x);
	apply_change(&f, &x);
	commit_enroll(&f, 1, 11, STORE_ENROLL_ROTATED, &x2);
	commit_enroll(&f, 2, 10, STORE_ENROLL_NEW, &y);
	apply_change(&f, &y);
	apply_change(&f, &x2);
	assert_iface(&f, x.id, 11);
	assert_iface(&f, y.id, 10);
	assert_int_equal(n_fake, 2);
	fx_free(&f);
}

/* The device's current key comes back even if the caller knows only an older one. */
static void
test_sync_restores_current_key(void **state)
{
	struct change o, a;
	struct fx f;

	(void)state;
	fx_new(&f);
	commit_enroll(&f, 1, 10, STORE_ENROLL_NEW, &o);
	commit_enroll(&f, 1, 11, STORE_ENROLL_ROTATED, &a);
	apply_change(&f, &o); /* knows only key 10, which is no longer current */
	assert_iface(&f, o.id, 11);
	assert_int_equal(n_fake, 1);
	fx_free(&f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_wg_quick_v4),
		cmocka_unit_test(test_wg_quick_v6),
		cmocka_unit_test(test_tenant_key_file),
		cmocka_unit_test(test_sync_rotations_any_order),
		cmocka_unit_test(test_sync_revoke_races_rotation),
		cmocka_unit_test(test_sync_key_moves_to_another_device),
		cmocka_unit_test(test_sync_restores_current_key),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
