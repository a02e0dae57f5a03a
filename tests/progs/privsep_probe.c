// SPDX-License-Identifier: MIT
/*
 * privsep_probe UAPI_DIR KEY_DIR IFNAME: play a compromised network process against the
 * real privileged process (tests/integration/enrolld_privsep.sh runs it as root in a
 * namespace, userspace backend). Forks as enrolld does with server.user (the parent is
 * enrolld's own privsep code), brings tenant "probe" up on IFNAME (10.90.0.0/24), then
 * sends forbidden requests as raw messages and one allowed peer. Prints one line per
 * request, "as expected" or "UNEXPECTED": every forbidden one refused with the expected
 * error, the allowed one applied, the interface holding that one peer only. (The exit
 * status seen by the caller is the privileged process's, which outlives this one.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/wg.h"
#include "enrolld/enrolld.h"
#include "enrolld/privsep.h"

static uint8_t buf[PS_MSG_MAX];
static int fails;

static size_t
peers(const char *tenant, const uint8_t addr4[4])
{
	struct ps_hdr h = {.type = PS_PEERS_SET, .count = 1};
	struct ps_name n;
	struct ps_peer p;

	memset(&n, 0, sizeof(n));
	snprintf(n.name, sizeof(n.name), "%s", tenant);
	memset(&p, 0, sizeof(p));
	memset(p.key, 0x5a, sizeof(p.key));
	p.key[0] = addr4[3];
	p.op = PS_PEER_SET;
	memcpy(p.addr4, addr4, 4);
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &n, sizeof(n));
	memcpy(buf + sizeof(h) + sizeof(n), &p, sizeof(p));
	return sizeof(h) + sizeof(n) + sizeof(p);
}

static size_t
up(const char *tenant, const char *ifname, uint16_t port, uint8_t net)
{
	struct ps_hdr h = {.type = PS_TENANT_UP};
	struct ps_tenant t;

	memset(&t, 0, sizeof(t));
	snprintf(t.name, sizeof(t.name), "%s", tenant);
	snprintf(t.ifname, sizeof(t.ifname), "%s", ifname);
	t.listen_port = port;
	t.plen4 = 24;
	t.prefix4[0] = 10, t.prefix4[1] = net;
	t.self4[0] = 10, t.self4[1] = net, t.self4[3] = 1;
	memcpy(buf, &h, sizeof(h));
	memcpy(buf + sizeof(h), &t, sizeof(t));
	return sizeof(h) + sizeof(t);
}

static void
expect(struct privsep *ps, const char *what, size_t len, int want)
{
	int r = privsep_raw_call(ps, buf, len);

	printf("%s: %s (%s)\n", what, r == want ? "as expected" : "UNEXPECTED",
		r == 0 ? "accepted" : strerror(-r));
	fails += r != want;
}

int
main(int argc, char **argv)
{
	struct enrolld_conf conf = {0};
	struct store_tenant t = {0};
	struct wg_device *dev = NULL;
	struct privsep *ps = NULL;
	struct plane *pl = NULL;
	const uint8_t other[4] = {10, 91, 0, 5}, self[4] = {10, 90, 0, 1},
		      bcast[4] = {10, 90, 0, 255}, ok[4] = {10, 90, 0, 7};
	int r;

	if (argc != 4) {
		fprintf(stderr, "usage: privsep_probe UAPI_DIR KEY_DIR IFNAME\n");
		return 2;
	}
	log_init(1, "privsep_probe");
	setvbuf(stdout, NULL, _IOLBF, 0); /* every line out, whatever happens at exit */
	conf.wg_backend = ENROLLD_WG_USERSPACE;
	conf.uapi_dir = argv[1];
	conf.key_dir = argv[2];
	conf.wireguard_go = "wireguard-go";
	conf.nft = "nft";
	conf.user = "(probe: no drop)";
	/* the space a configuration gets by default (conf.c) */
	if (addr_prefix_parse(&conf.tenant_space[0], "10.0.0.0/8") < 0)
		return 1;
	conf.n_tenant_space = 1;
	r = privsep_start(&conf, &ps);
	if (r < 0 || plane_new_remote(&pl, ps) < 0)
		return 1;
	expect(ps, "tenant 'probe' up on its own interface", up("probe", argv[3], 40990, 90), 0);
	expect(ps, "peer outside the tenant's prefix (10.91.0.5/32)", peers("probe", other),
		-EINVAL);
	expect(ps, "peer on the control plane's own address", peers("probe", self), -EINVAL);
	expect(ps, "peer on the broadcast address", peers("probe", bcast), -EINVAL);
	expect(ps, "peer for a tenant never brought up", peers("nosuch", ok), -ENOENT);
	expect(ps, "tenant 'probe' moved to 'lo'", up("probe", "lo", 40990, 90), -EPERM);
	expect(ps, "new tenant on 'lo'", up("evil", "lo", 40991, 92), -EPERM);
	expect(ps, "new tenant on probe's interface", up("evil", argv[3], 40991, 92), -EPERM);
	{
		/* half of the IPv4 Internet: the host's own routes */
		size_t len = up("evil", "evil0", 40992, 93);
		struct ps_tenant *e = (struct ps_tenant *)(buf + sizeof(struct ps_hdr));

		memset(e->prefix4, 0, 4);
		memset(e->self4, 0, 4);
		e->self4[3] = 1;
		e->plen4 = 1;
		expect(ps, "new tenant on 0.0.0.0/1 (outside tenant_address_space)", len, -EPERM);
	}
	expect(ps, "truncated message", 5, -EBADMSG);
	{
		size_t len = peers("probe", ok);

		expect(ps, "message with a lying count", len - 1, -EBADMSG);
	}
	expect(ps, "peer 10.90.0.7/32 (allowed)", peers("probe", ok), 0);

	snprintf(t.name, sizeof(t.name), "probe");
	snprintf(t.ifname, sizeof(t.ifname), "%s", argv[3]);
	t.prefix4.family = AF_INET;
	r = plane_dump(pl, &t, &dev);
	if (r < 0 || dev->n_peers != 1 || dev->peers[0].n_allowedips != 1 ||
	    dev->peers[0].allowedips[0].cidr != 32 ||
	    memcmp(&dev->peers[0].allowedips[0].ip4, ok, 4) != 0) {
		printf("the interface holds %zu peer(s), not just 10.90.0.7/32: UNEXPECTED\n",
			dev ? dev->n_peers : 0);
		fails++;
	} else {
		printf("the interface holds the allowed peer only: as expected\n");
	}
	wg_device_free(dev);
	plane_free(pl);
	privsep_free(ps);
	return fails ? 1 : 0; /* the parent sees EOF and exits */
}
