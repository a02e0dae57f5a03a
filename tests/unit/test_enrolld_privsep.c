// SPDX-License-Identifier: MIT
/*
 * Unit tests for enrolld/privsep_msg.c: the privileged parent's parsing and checking of
 * what the network process asks. Every forbidden request is refused: unknown tenant, an
 * interface, port or prefix another tenant holds, a pinned tenant asking for another
 * interface, allowed IPs outside the prefix, the network or broadcast address or the
 * control plane's own, truncated, oversized and malformed messages.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <cmocka.h>

#include "enrolld/privsep.h"

static uint8_t msg[PS_MSG_MAX + 64];
static char why[256];

/* A TENANT_UP for @name on @ifname, port, 10.<net>.0.0/24 with .1 the control plane. */
static size_t
up_msg(const char *name, const char *ifname, uint16_t port, uint8_t net)
{
	struct ps_hdr h = {.type = PS_TENANT_UP};
	struct ps_tenant t;

	memset(&t, 0, sizeof(t));
	strcpy(t.name, name);
	strcpy(t.ifname, ifname);
	t.listen_port = port;
	t.plen4 = 24;
	t.prefix4[0] = 10, t.prefix4[1] = net;
	t.self4[0] = 10, t.self4[1] = net, t.self4[3] = 1;
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), &t, sizeof(t));
	return sizeof(h) + sizeof(t);
}

static size_t
name_msg(uint16_t type, const char *name)
{
	struct ps_hdr h = {.type = type};
	struct ps_name n;

	memset(&n, 0, sizeof(n));
	strcpy(n.name, name);
	memcpy(msg, &h, sizeof(h));
	memcpy(msg + sizeof(h), &n, sizeof(n));
	return sizeof(h) + sizeof(n);
}

/* PEERS_SET for @name: @n peers, peer i at 10.<net>.<a3[i]>/32 (op SET). */
static size_t
peers_msg(const char *name, uint8_t net, const uint8_t *a3, uint32_t n)
{
	size_t len = name_msg(PS_PEERS_SET, name);
	struct ps_hdr h = {.type = PS_PEERS_SET, .count = n};

	memcpy(msg, &h, sizeof(h));
	for (uint32_t i = 0; i < n; i++) {
		struct ps_peer p;

		memset(&p, 0, sizeof(p));
		memset(p.key, (int)i + 1, sizeof(p.key));
		p.op = PS_PEER_SET;
		p.addr4[0] = 10, p.addr4[1] = net, p.addr4[3] = a3[i];
		memcpy(msg + len, &p, sizeof(p));
		len += sizeof(p);
	}
	return len;
}

static struct ps_peer *
peer_at(uint32_t i)
{
	return (struct ps_peer *)(msg + sizeof(struct ps_hdr) + sizeof(struct ps_name)) + i;
}

/* Parse and check @len bytes of msg against @reg: the error, 0 if accepted. */
static int
handle(struct ps_registry *reg, size_t len)
{
	const struct ps_tenant_rec *rec;
	struct ps_request req;
	int r;

	why[0] = '\0';
	r = ps_parse_request(msg, len, &req, why, sizeof(why));
	if (r < 0)
		return r;
	r = ps_check_request(reg, &req, &rec, why, sizeof(why));
	if (r == 0 && req.type == PS_TENANT_UP)
		assert_int_equal(ps_registry_pin(reg, req.tenant), 0);
	return r;
}

static int
setup(void **state)
{
	static struct ps_registry reg;

	memset(&reg, 0, sizeof(reg));
	assert_int_equal(handle(&reg, up_msg("alpha", "wg-alpha", 51820, 1)), 0);
	assert_int_equal(reg.n, 1);
	*state = &reg;
	return 0;
}

static int
teardown(void **state)
{
	ps_registry_clear(*state);
	return 0;
}

static void
test_valid_requests(void **state)
{
	struct ps_registry *reg = *state;
	const uint8_t a[] = {2, 3, 254};
	struct ps_hdr h = {.type = PS_NOTIFY, .count = PS_NOTIFY_READY};

	assert_int_equal(handle(reg, peers_msg("alpha", 1, a, 3)), 0);
	assert_int_equal(handle(reg, name_msg(PS_DUMP, "alpha")), 0);
	assert_int_equal(handle(reg, name_msg(PS_STATS, "alpha")), 0);
	/* a key for a tenant not yet up (the API shows the server key before the interface) */
	assert_int_equal(handle(reg, name_msg(PS_TENANT_KEY, "beta")), 0);
	/* the same TENANT_UP again: idempotent */
	assert_int_equal(handle(reg, up_msg("alpha", "wg-alpha", 51820, 1)), 0);
	assert_int_equal(reg->n, 1);
	/* a second tenant of its own */
	assert_int_equal(handle(reg, up_msg("beta", "wg-beta", 51821, 2)), 0);
	assert_int_equal(reg->n, 2);
	/* beta's peers are checked against beta's prefix */
	assert_int_equal(handle(reg, peers_msg("beta", 2, a, 3)), 0);
	assert_int_equal(handle(reg, peers_msg("beta", 1, a, 3)), -EINVAL);
	memcpy(msg, &h, sizeof(h));
	assert_int_equal(handle(reg, sizeof(h)), 0);
}

static void
test_remove_peer(void **state)
{
	struct ps_registry *reg = *state;
	const uint8_t a[] = {2};
	size_t len = peers_msg("alpha", 1, a, 1);

	peer_at(0)->op = PS_PEER_REMOVE;
	/* a removal carries no addresses */
	assert_int_equal(handle(reg, len), -EBADMSG);
	memset(peer_at(0)->addr4, 0, 4);
	assert_int_equal(handle(reg, len), 0);
}

static void
test_unknown_tenant(void **state)
{
	struct ps_registry *reg = *state;
	const uint8_t a[] = {2};

	assert_int_equal(handle(reg, peers_msg("gamma", 1, a, 1)), -ENOENT);
	assert_non_null(strstr(why, "never brought up"));
	assert_int_equal(handle(reg, name_msg(PS_DUMP, "gamma")), -ENOENT);
	assert_int_equal(handle(reg, name_msg(PS_STATS, "gamma")), -ENOENT);
}

static void
test_foreign_interface(void **state)
{
	struct ps_registry *reg = *state;

	/* a new tenant on alpha's interface, port or prefix */
	assert_int_equal(handle(reg, up_msg("evil", "wg-alpha", 51899, 9)), -EPERM);
	assert_non_null(strstr(why, "belongs to tenant 'alpha'"));
	assert_int_equal(handle(reg, up_msg("evil", "wg-evil", 51820, 9)), -EPERM);
	assert_int_equal(handle(reg, up_msg("evil", "wg-evil", 51899, 1)), -EPERM);
	/* alpha moved to another interface (eth0), port or prefix: pinned */
	assert_int_equal(handle(reg, up_msg("alpha", "eth0", 51820, 1)), -EPERM);
	assert_non_null(strstr(why, "pinned"));
	assert_int_equal(handle(reg, up_msg("alpha", "wg-alpha", 51821, 1)), -EPERM);
	assert_int_equal(handle(reg, up_msg("alpha", "wg-alpha", 51820, 7)), -EPERM);
	assert_int_equal(reg->n, 1);
	/* interface names that are paths or empty */
	assert_int_equal(handle(reg, up_msg("x", "../etc", 1, 9)), -EBADMSG);
	assert_int_equal(handle(reg, up_msg("x", "", 1, 9)), -EBADMSG);
	assert_int_equal(handle(reg, up_msg("x", "a b", 1, 9)), -EBADMSG);
	/* tenant names that would be paths of key files */
	assert_int_equal(handle(reg, name_msg(PS_TENANT_KEY, "../../etc/shadow")), -EBADMSG);
	assert_int_equal(handle(reg, name_msg(PS_TENANT_KEY, "")), -EBADMSG);
	assert_int_equal(handle(reg, name_msg(PS_TENANT_KEY, "Alpha")), -EBADMSG);
}

static void
test_allowed_ips(void **state)
{
	struct ps_registry *reg = *state;
	const uint8_t ok[] = {2}, net[] = {0}, bcast[] = {255}, self[] = {1};
	uint8_t other[16] = {10, 2, 0, 5};
	size_t len;

	/* outside the prefix (another tenant's network) */
	len = peers_msg("alpha", 1, ok, 1);
	memcpy(peer_at(0)->addr4, other, 4);
	assert_int_equal(handle(reg, len), -EINVAL);
	assert_non_null(strstr(why, "10.2.0.5/32 is not a device address"));
	/* network, broadcast, the control plane's own */
	assert_int_equal(handle(reg, peers_msg("alpha", 1, net, 1)), -EINVAL);
	assert_int_equal(handle(reg, peers_msg("alpha", 1, bcast, 1)), -EINVAL);
	assert_int_equal(handle(reg, peers_msg("alpha", 1, self, 1)), -EINVAL);
	/* IPv6 for a tenant without an IPv6 prefix */
	len = peers_msg("alpha", 1, ok, 1);
	peer_at(0)->has6 = 1;
	peer_at(0)->addr6[0] = 0xfd;
	assert_int_equal(handle(reg, len), -EINVAL);
	/* an IPv6 address without has6 */
	peer_at(0)->has6 = 0;
	assert_int_equal(handle(reg, len), -EBADMSG);
	/* one bad peer among good ones refuses the whole message */
	{
		const uint8_t mix[] = {2, 3, 0, 4};

		assert_int_equal(handle(reg, peers_msg("alpha", 1, mix, 4)), -EINVAL);
		assert_non_null(strstr(why, "peer 2"));
	}
}

static void
test_bad_prefixes(void **state)
{
	struct ps_registry *reg = *state;
	size_t len = up_msg("delta", "wg-delta", 4000, 4);
	struct ps_tenant *t = (struct ps_tenant *)(msg + sizeof(struct ps_hdr));

	t->plen4 = 32; /* no room for a device */
	assert_int_equal(handle(reg, len), -EBADMSG);
	t->plen4 = 24;
	t->prefix4[3] = 7; /* host bits */
	assert_int_equal(handle(reg, len), -EBADMSG);
	t->prefix4[3] = 0;
	t->self4[1] = 5; /* own address outside */
	assert_int_equal(handle(reg, len), -EBADMSG);
	t->self4[1] = 4;
	t->self6[0] = 0xfd; /* IPv6 without a prefix */
	assert_int_equal(handle(reg, len), -EBADMSG);
	t->self6[0] = 0;
	t->listen_port = 0;
	assert_int_equal(handle(reg, len), -EBADMSG);
	t->listen_port = 4000;
	assert_int_equal(handle(reg, len), 0);
}

static void
test_malformed(void **state)
{
	struct ps_registry *reg = *state;
	const uint8_t a[] = {2, 3};
	struct ps_hdr h;
	size_t len;

	/* truncated: shorter than a header, than its body, than its peers */
	assert_int_equal(handle(reg, 3), -EBADMSG);
	len = name_msg(PS_DUMP, "alpha");
	assert_int_equal(handle(reg, len - 1), -EBADMSG);
	assert_int_equal(handle(reg, len + 1), -EBADMSG);
	len = peers_msg("alpha", 1, a, 2);
	assert_int_equal(handle(reg, len - 1), -EBADMSG);
	assert_int_equal(handle(reg, len - sizeof(struct ps_peer)), -EBADMSG);
	/* a count that lies */
	memcpy(&h, msg, sizeof(h));
	h.count = 3;
	memcpy(msg, &h, sizeof(h));
	assert_int_equal(handle(reg, len), -EBADMSG);
	h.count = PS_PEERS_MAX + 1;
	memcpy(msg, &h, sizeof(h));
	assert_int_equal(handle(reg, sizeof(h) + sizeof(struct ps_name) +
					     (PS_PEERS_MAX + 1) * sizeof(struct ps_peer)),
		-EBADMSG);
	h.count = 0;
	memcpy(msg, &h, sizeof(h));
	assert_int_equal(handle(reg, sizeof(h) + sizeof(struct ps_name)), -EBADMSG);
	/* oversized */
	assert_int_equal(handle(reg, PS_MSG_MAX + 1), -EBADMSG);
	assert_non_null(strstr(why, "oversized"));
	/* unknown type, a reply sent as a request, flags, status */
	len = name_msg(99, "alpha");
	assert_int_equal(handle(reg, len), -EBADMSG);
	len = name_msg(PS_REPLY, "alpha");
	assert_int_equal(handle(reg, len), -EBADMSG);
	len = name_msg(PS_DUMP, "alpha");
	memcpy(&h, msg, sizeof(h));
	h.flags = PS_F_MORE;
	memcpy(msg, &h, sizeof(h));
	assert_int_equal(handle(reg, len), -EBADMSG);
	/* a name without its terminator, bytes after the terminator */
	len = name_msg(PS_DUMP, "alpha");
	memset(msg + sizeof(h), 'a', PS_NAME_MAX);
	assert_int_equal(handle(reg, len), -EBADMSG);
	len = name_msg(PS_DUMP, "alpha");
	msg[sizeof(h) + 10] = 'x';
	assert_int_equal(handle(reg, len), -EBADMSG);
	/* bad op, padding */
	len = peers_msg("alpha", 1, a, 1);
	peer_at(0)->op = 7;
	assert_int_equal(handle(reg, len), -EBADMSG);
	peer_at(0)->op = PS_PEER_SET;
	peer_at(0)->pad[1] = 1;
	assert_int_equal(handle(reg, len), -EBADMSG);
	/* NOTIFY: only the known codes, no body */
	memset(&h, 0, sizeof(h));
	h.type = PS_NOTIFY;
	h.count = 9;
	memcpy(msg, &h, sizeof(h));
	assert_int_equal(handle(reg, sizeof(h)), -EBADMSG);
	h.count = PS_NOTIFY_WATCHDOG;
	memcpy(msg, &h, sizeof(h));
	assert_int_equal(handle(reg, sizeof(h) + 4), -EBADMSG);
	assert_int_equal(reg->n, 1);
}

/* A new tenant's prefix lies inside wireguard.tenant_address_space (the host's routes stay
 * the host's: a network process cannot ask for 0.0.0.0/1). */
static void
test_address_space(void **state)
{
	struct ps_registry *reg = *state;
	struct addr_prefix space[2];
	struct ps_tenant *t = (struct ps_tenant *)(msg + sizeof(struct ps_hdr));
	size_t len;

	assert_int_equal(addr_prefix_parse(&space[0], "10.0.0.0/8"), 0);
	assert_int_equal(addr_prefix_parse(&space[1], "fd00::/8"), 0);
	reg->space = space;
	reg->n_space = 2;
	/* inside: accepted */
	assert_int_equal(handle(reg, up_msg("gamma", "wg-gamma", 51830, 30)), 0);
	/* half of the IPv4 Internet */
	len = up_msg("delta", "wg-delta", 51831, 0);
	memset(t->prefix4, 0, 4);
	memset(t->self4, 0, 4);
	t->self4[3] = 1;
	t->plen4 = 1;
	assert_int_equal(handle(reg, len), -EPERM);
	assert_non_null(strstr(why, "tenant_address_space"));
	/* a private range that is not in the space */
	len = up_msg("delta", "wg-delta", 51831, 0);
	t->prefix4[0] = 192, t->prefix4[1] = 168, t->prefix4[2] = 1, t->prefix4[3] = 0;
	t->self4[0] = 192, t->self4[1] = 168, t->self4[2] = 1, t->self4[3] = 1;
	assert_int_equal(handle(reg, len), -EPERM);
	/* wider than the space it starts in: 10.0.0.0/7 is not inside 10.0.0.0/8 */
	len = up_msg("delta", "wg-delta", 51831, 0);
	t->plen4 = 7;
	assert_int_equal(handle(reg, len), -EPERM);
	/* IPv4 inside, IPv6 outside */
	len = up_msg("delta", "wg-delta", 51831, 31);
	t->plen6 = 64;
	t->prefix6[0] = 0x20, t->prefix6[1] = 0x01, t->prefix6[2] = 0x0d, t->prefix6[3] = 0xb8;
	memcpy(t->self6, t->prefix6, 16);
	t->self6[15] = 1;
	assert_int_equal(handle(reg, len), -EPERM);
	t->prefix6[0] = 0xfd, t->prefix6[1] = 0, t->prefix6[2] = 0, t->prefix6[3] = 0x07;
	memcpy(t->self6, t->prefix6, 16);
	t->self6[15] = 1;
	assert_int_equal(handle(reg, len), 0);
	assert_int_equal(reg->n, 3);
	reg->space = NULL;
	reg->n_space = 0;
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_valid_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_address_space, setup, teardown),
		cmocka_unit_test_setup_teardown(test_remove_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unknown_tenant, setup, teardown),
		cmocka_unit_test_setup_teardown(test_foreign_interface, setup, teardown),
		cmocka_unit_test_setup_teardown(test_allowed_ips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_prefixes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
