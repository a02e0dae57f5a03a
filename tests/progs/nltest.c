// SPDX-License-Identifier: MIT
/*
 * nltest: the kernel test of the generic-netlink WireGuard backend (common/wg_genl.c)
 * and of common/rtnl.c. It runs inside a throwaway VM (tests/kernel/run.sh) against the
 * real wireguard.ko, and drives WireGuard only through our module: common/wg.h with the
 * kernel backend forced, common/rtnl.h for links, addresses and routes. The one thing
 * rtnl.h has no call for, a veth pair across two namespaces, is a small local helper.
 *
 * Everything happens in two network namespaces of its own (never in the namespace it
 * was started in), so running it on a host by mistake changes nothing there.
 *
 *  1. tunnel: namespaces A and B joined by a veth pair, a WireGuard link in each, keys,
 *     listen ports, a preshared key, one peer each with endpoint and allowed IPs,
 *     addresses, a route, up; what was set reads back; ICMP and ICMPv6 echo through the
 *     tunnel; the dump shows a handshake time and rx/tx counters; the peer removed
 *     through the module stops the traffic.
 *  2. errors: a bad request whose extended-ack text comes back (rtnl_last_error), and
 *     the generic-netlink errors for a missing or non-WireGuard interface.
 *  3. 20,000 peers on one interface (split across messages by our code, replacing the
 *     peers that were there), dumped back complete and equal: keys, preshared keys,
 *     allowed IPs, keepalive, endpoints; a few removed; dumps while another process
 *     changes the device (NLM_F_DUMP_INTR: each result must be one consistent state).
 *  4. one peer with 1,000 allowed IPs, v4 and v6 mixed (the dump spans several
 *     messages), read back equal; replace-allowed-ips, replace-peers, update-only.
 *  5. wg_list_devices, rtnl_link_del.
 *
 * A small raw libmnl reader (not our module) counts dump messages and continued peers,
 * so the checks know the split paths were really taken.
 *
 * Output: one line per check, "ok - ..." or "not ok - ...", diagnostics as "# ...", and
 * last "KTEST: N passed, N failed". Exit 0 if nothing failed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/icmp6.h>
#include <netinet/ip.h>
#include <netinet/ip_icmp.h>
#include <poll.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>
#include <linux/veth.h>
#include <linux/wireguard.h>
#include <sys/wait.h>

#include "common/key.h"
#include "common/rtnl.h"
#include "common/wg.h"

#define BIG_PEERS 20000
#define MANY_AIPS 1000
#define PING_ID 0x4b54 /* "KT" */

static unsigned int n_pass, n_fail;

__attribute__((format(printf, 2, 3))) static bool
check(bool ok, const char *fmt, ...)
{
	va_list ap;

	fputs(ok ? "ok - " : "not ok - ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	if (ok)
		n_pass++;
	else
		n_fail++;
	return ok;
}

__attribute__((format(printf, 1, 2))) static void
diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
}

static double
now_mono(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* ---- namespaces ---- */

/* A new network namespace, entered; returns an fd that names it. */
static int
netns_new(void)
{
	int fd;

	if (unshare(CLONE_NEWNET) < 0)
		return -errno;
	fd = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

static int
netns_enter(int fd)
{
	return setns(fd, CLONE_NEWNET) < 0 ? -errno : 0;
}

/*
 * A veth pair: @name in the current namespace, @peer in the namespace @peer_nsfd.
 * rtnl.h has no call for this (the daemons never need one), so it is done here.
 */
static int
veth_add(const char *name, const char *peer, int peer_nsfd)
{
	struct mnl_socket *nl = NULL;
	struct nlattr *linfo, *data, *pinfo;
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifm;
	unsigned int seq = (unsigned int)time(NULL), portid;
	char *buf;
	ssize_t n;
	int ret;

	buf = calloc(1, MNL_SOCKET_BUFFER_SIZE);
	if (buf == NULL)
		return -ENOMEM;
	nl = mnl_socket_open(NETLINK_ROUTE);
	if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		ret = -errno;
		goto out;
	}
	portid = mnl_socket_get_portid(nl);
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_NEWLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL;
	nlh->nlmsg_seq = seq;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, name);
	linfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, "veth");
	data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
	pinfo = mnl_attr_nest_start(nlh, VETH_INFO_PEER);
	/* the peer's own struct ifinfomsg, then its attributes */
	mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg));
	mnl_attr_put_strz(nlh, IFLA_IFNAME, peer);
	mnl_attr_put_u32(nlh, IFLA_NET_NS_FD, (uint32_t)peer_nsfd);
	mnl_attr_nest_end(nlh, pinfo);
	mnl_attr_nest_end(nlh, data);
	mnl_attr_nest_end(nlh, linfo);
	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0) {
		ret = -errno;
		goto out;
	}
	n = mnl_socket_recvfrom(nl, buf, MNL_SOCKET_BUFFER_SIZE);
	if (n < 0) {
		ret = -errno;
		goto out;
	}
	errno = 0;
	ret = mnl_cb_run(buf, (size_t)n, seq, portid, NULL, NULL);
	ret = ret < 0 ? (errno ? -errno : -EPROTO) : 0;
out:
	if (nl != NULL)
		mnl_socket_close(nl);
	free(buf);
	return ret;
}

/*
 * An independent look at a dump, not through our module: how many messages the kernel
 * used for @ifname and how many times a peer continued from one message into the next
 * (its allowed IPs did not fit). It tells the checks below that the merge path of
 * wg_genl.c was really taken. The receive buffer is as large as nl.c's, so the kernel
 * sizes its messages the same way for both readers.
 */
struct raw_dump {
	unsigned int msgs, peers, continued;
	bool intr; /* some message carried NLM_F_DUMP_INTR */
	uint8_t last_key[WG_KEY_LEN];
	bool have_last, first_in_msg;
	uint16_t family;
};

static int
raw_family_cb(const struct nlattr *attr, void *data)
{
	struct raw_dump *d = data;

	if (mnl_attr_get_type(attr) == CTRL_ATTR_FAMILY_ID &&
		mnl_attr_validate(attr, MNL_TYPE_U16) == 0)
		d->family = mnl_attr_get_u16(attr);
	return MNL_CB_OK;
}

static int
raw_family_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), raw_family_cb, data);
}

static int
raw_peer_key_cb(const struct nlattr *attr, void *data)
{
	if (mnl_attr_get_type(attr) == WGPEER_A_PUBLIC_KEY &&
		mnl_attr_get_payload_len(attr) == WG_KEY_LEN)
		memcpy(data, mnl_attr_get_payload(attr), WG_KEY_LEN);
	return MNL_CB_OK;
}

static int
raw_peer_cb(const struct nlattr *attr, void *data)
{
	struct raw_dump *d = data;
	uint8_t key[WG_KEY_LEN] = {0};

	if (mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0 ||
		mnl_attr_parse_nested(attr, raw_peer_key_cb, key) < 0)
		return MNL_CB_ERROR;
	if (d->first_in_msg && d->have_last && !memcmp(key, d->last_key, WG_KEY_LEN))
		d->continued++;
	else
		d->peers++;
	d->first_in_msg = false;
	memcpy(d->last_key, key, WG_KEY_LEN);
	d->have_last = true;
	return MNL_CB_OK;
}

static int
raw_dev_cb(const struct nlattr *attr, void *data)
{
	if (mnl_attr_get_type(attr) != WGDEVICE_A_PEERS)
		return MNL_CB_OK;
	if (mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0)
		return MNL_CB_ERROR;
	return mnl_attr_parse_nested(attr, raw_peer_cb, data);
}

static int
raw_dump_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	struct raw_dump *d = data;

	d->msgs++;
	d->first_in_msg = true;
	if (nlh->nlmsg_flags & NLM_F_DUMP_INTR)
		d->intr = true;
	return mnl_attr_parse(nlh, sizeof(struct genlmsghdr), raw_dev_cb, data);
}

static int
raw_talk(
	struct mnl_socket *nl, char *buf, size_t len, struct nlmsghdr *nlh, mnl_cb_t cb, void *data)
{
	unsigned int seq = nlh->nlmsg_seq, portid = mnl_socket_get_portid(nl);
	ssize_t n;
	int r;

	if (mnl_socket_sendto(nl, nlh, nlh->nlmsg_len) < 0)
		return -errno;
	do {
		n = mnl_socket_recvfrom(nl, buf, len);
		if (n < 0)
			return -errno;
		errno = 0;
		r = mnl_cb_run(buf, (size_t)n, seq, portid, cb, data);
	} while (r == MNL_CB_OK);
	return r < 0 ? (errno ? -errno : -EPROTO) : 0;
}

static int
raw_dump(const char *ifname, struct raw_dump *d)
{
	const size_t len = 65536;
	struct mnl_socket *nl = NULL;
	struct genlmsghdr *g;
	struct nlmsghdr *nlh;
	char *buf;
	int r;

	memset(d, 0, sizeof(*d));
	buf = calloc(1, len);
	if (buf == NULL)
		return -ENOMEM;
	nl = mnl_socket_open(NETLINK_GENERIC);
	if (nl == NULL || mnl_socket_bind(nl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = GENL_ID_CTRL;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK;
	nlh->nlmsg_seq = 1;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = CTRL_CMD_GETFAMILY;
	g->version = 1;
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
	r = raw_talk(nl, buf, len, nlh, raw_family_msg_cb, d);
	if (r < 0)
		goto out;
	if (d->family == 0) {
		r = -EPROTO;
		goto out;
	}
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = d->family;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	nlh->nlmsg_seq = 2;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = WG_CMD_GET_DEVICE;
	g->version = WG_GENL_VERSION;
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, ifname);
	r = raw_talk(nl, buf, len, nlh, raw_dump_msg_cb, d);
	if (r == -EINTR)
		d->intr = true; /* libmnl stops at a message flagged NLM_F_DUMP_INTR */
out:
	if (nl != NULL)
		mnl_socket_close(nl);
	explicit_bzero(buf, len); /* the dump carried the private key, if the device has one */
	free(buf);
	return r;
}

/* ---- ICMP echo through the tunnel ---- */

static uint16_t
inet_csum(const void *data, size_t len)
{
	const uint8_t *p = data;
	uint32_t sum = 0;

	for (size_t i = 0; i + 1 < len; i += 2)
		sum += (uint32_t)(p[i] << 8 | p[i + 1]);
	if (len & 1)
		sum += (uint32_t)(p[len - 1] << 8);
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return htons((uint16_t)~sum);
}

/*
 * One echo request to @dst (AF_INET or AF_INET6), from the current namespace.
 * Returns 1 when the reply came within @timeout_ms, 0 when none did, or a negative errno.
 */
static int
ping_once(int family, const void *dst, uint16_t seq, int timeout_ms)
{
	union {
		struct sockaddr_in in4;
		struct sockaddr_in6 in6;
	} to = {0}, from;
	uint8_t pkt[64], rbuf[2048];
	double deadline = now_mono() + timeout_ms / 1000.0;
	socklen_t tolen, fromlen;
	int fd, ret = 0;

	memset(pkt, 0xa5, sizeof(pkt));
	if (family == AF_INET) {
		struct icmphdr *ic = (struct icmphdr *)pkt;

		fd = socket(AF_INET, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMP);
		ic->type = ICMP_ECHO;
		ic->code = 0;
		ic->un.echo.id = htons(PING_ID);
		ic->un.echo.sequence = htons(seq);
		ic->checksum = 0;
		ic->checksum = inet_csum(pkt, sizeof(pkt));
		to.in4.sin_family = AF_INET;
		memcpy(&to.in4.sin_addr, dst, sizeof(struct in_addr));
		tolen = sizeof(to.in4);
	} else {
		struct icmp6_hdr *ic = (struct icmp6_hdr *)pkt;

		/* the kernel computes the ICMPv6 checksum of raw ICMPv6 sockets */
		fd = socket(AF_INET6, SOCK_RAW | SOCK_CLOEXEC, IPPROTO_ICMPV6);
		ic->icmp6_type = ICMP6_ECHO_REQUEST;
		ic->icmp6_code = 0;
		ic->icmp6_id = htons(PING_ID);
		ic->icmp6_seq = htons(seq);
		to.in6.sin6_family = AF_INET6;
		memcpy(&to.in6.sin6_addr, dst, sizeof(struct in6_addr));
		tolen = sizeof(to.in6);
	}
	if (fd < 0)
		return -errno;
	if (sendto(fd, pkt, sizeof(pkt), 0, (struct sockaddr *)&to, tolen) < 0) {
		ret = -errno;
		goto out;
	}
	for (;;) {
		struct pollfd pfd = {.fd = fd, .events = POLLIN};
		int left = (int)((deadline - now_mono()) * 1000);
		const uint8_t *ic;
		ssize_t n;
		size_t off = 0;

		if (left <= 0)
			break;
		if (poll(&pfd, 1, left) <= 0)
			continue;
		fromlen = sizeof(from);
		n = recvfrom(
			fd, rbuf, sizeof(rbuf), MSG_DONTWAIT, (struct sockaddr *)&from, &fromlen);
		if (n < 0)
			continue;
		if (family == AF_INET) {
			/* raw IPv4 sockets see the IP header */
			if (n < 20)
				continue;
			off = (size_t)(rbuf[0] & 0x0f) * 4;
			if ((size_t)n < off + 8 || memcmp(&from.in4.sin_addr, dst, 4) != 0)
				continue;
			ic = rbuf + off;
			if (ic[0] != ICMP_ECHOREPLY)
				continue;
		} else {
			if (n < 8 || memcmp(&from.in6.sin6_addr, dst, 16) != 0)
				continue;
			ic = rbuf;
			if (ic[0] != ICMP6_ECHO_REPLY)
				continue;
		}
		if ((ic[4] << 8 | ic[5]) == PING_ID && (ic[6] << 8 | ic[7]) == seq) {
			ret = 1;
			break;
		}
	}
out:
	close(fd);
	return ret;
}

/* Up to @tries echo requests; 1 as soon as one is answered. */
static int
ping(int family, const void *dst, int tries, int timeout_ms)
{
	static uint16_t seq;
	int r = 0;

	for (int i = 0; i < tries; i++) {
		r = ping_once(family, dst, ++seq, timeout_ms);
		if (r != 0)
			return r;
	}
	return r;
}

/* ---- comparing what was set with what was read ---- */

static int
cmp_aip(const void *a, const void *b)
{
	const struct wg_allowedip *x = a, *y = b;
	int c;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	if (x->family == AF_INET)
		c = memcmp(&x->ip4, &y->ip4, sizeof(x->ip4));
	else
		c = memcmp(&x->ip6, &y->ip6, sizeof(x->ip6));
	if (c)
		return c;
	return (int)x->cidr - (int)y->cidr;
}

static int
cmp_peer(const void *a, const void *b)
{
	const struct wg_peer *x = a, *y = b;

	return memcmp(x->public_key, y->public_key, WG_KEY_LEN);
}

static void
sort_aips(struct wg_peer *p)
{
	if (p->n_allowedips > 1)
		qsort(p->allowedips, p->n_allowedips, sizeof(*p->allowedips), cmp_aip);
}

static bool
endpoint_equal(const union wg_endpoint *a, const union wg_endpoint *b)
{
	if (a->addr.sa_family != b->addr.sa_family)
		return false;
	switch (a->addr.sa_family) {
	case AF_UNSPEC:
		return true;
	case AF_INET:
		return a->addr4.sin_port == b->addr4.sin_port &&
		       a->addr4.sin_addr.s_addr == b->addr4.sin_addr.s_addr;
	case AF_INET6:
		return a->addr6.sin6_port == b->addr6.sin6_port &&
		       !memcmp(&a->addr6.sin6_addr, &b->addr6.sin6_addr, 16);
	default:
		return false;
	}
}

static void
aip_str(char *buf, size_t len, const struct wg_allowedip *a)
{
	char ip[INET6_ADDRSTRLEN];

	inet_ntop(a->family, &a->ip6, ip, sizeof(ip));
	snprintf(buf, len, "%s/%u", ip, a->cidr);
}

/*
 * Do peers @want (as set) and @got (as read) hold the same configuration? Both have
 * their allowed IPs sorted. On a difference, says which in @why.
 */
static bool
peer_equal(const struct wg_peer *want, const struct wg_peer *got, char *why, size_t len)
{
	bool want_psk = want->flags & WG_PEER_F_HAS_PRESHARED_KEY;

	if (!key_equal(want->public_key, got->public_key)) {
		snprintf(why, len, "public key");
		return false;
	}
	if (want_psk ? !key_equal(want->preshared_key, got->preshared_key)
		     : !key_is_zero(got->preshared_key)) {
		snprintf(why, len, "preshared key");
		return false;
	}
	if (!endpoint_equal(&want->endpoint, &got->endpoint)) {
		snprintf(why, len, "endpoint (family %u vs %u)", want->endpoint.addr.sa_family,
			got->endpoint.addr.sa_family);
		return false;
	}
	if (want->persistent_keepalive != got->persistent_keepalive) {
		snprintf(why, len, "keepalive %u vs %u", want->persistent_keepalive,
			got->persistent_keepalive);
		return false;
	}
	if (want->n_allowedips != got->n_allowedips) {
		snprintf(why, len, "%zu allowed IPs vs %zu", want->n_allowedips, got->n_allowedips);
		return false;
	}
	for (size_t i = 0; i < want->n_allowedips; i++) {
		if (cmp_aip(&want->allowedips[i], &got->allowedips[i]) != 0) {
			char a[64], b[64];

			aip_str(a, sizeof(a), &want->allowedips[i]);
			aip_str(b, sizeof(b), &got->allowedips[i]);
			snprintf(why, len, "allowed IP #%zu: %s vs %s", i, a, b);
			return false;
		}
	}
	return true;
}

/* Sorts both devices' peers and allowed IPs, then compares all peers. */
static bool
peers_equal(struct wg_device *want, struct wg_device *got, char *why, size_t len)
{
	char inner[192];

	if (want->n_peers != got->n_peers) {
		snprintf(why, len, "%zu peers read back, %zu set", got->n_peers, want->n_peers);
		return false;
	}
	if (want->n_peers > 1) {
		qsort(want->peers, want->n_peers, sizeof(*want->peers), cmp_peer);
		qsort(got->peers, got->n_peers, sizeof(*got->peers), cmp_peer);
	}
	for (size_t i = 0; i < want->n_peers; i++) {
		sort_aips(&want->peers[i]);
		sort_aips(&got->peers[i]);
		if (!peer_equal(&want->peers[i], &got->peers[i], inner, sizeof(inner))) {
			char fp[WG_KEY_FP_LEN];

			key_fingerprint(fp, want->peers[i].public_key);
			snprintf(why, len, "peer %zu (%s): %s", i, fp, inner);
			return false;
		}
	}
	snprintf(why, len, "equal");
	return true;
}

/* ---- deterministic test data ---- */

static uint64_t
splitmix64(uint64_t *s)
{
	uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* A made-up public key, distinct for each (@tag, @i). The kernel accepts any 32 bytes. */
static void
fake_key(uint8_t key[static WG_KEY_LEN], uint32_t tag, uint32_t i)
{
	uint64_t s = ((uint64_t)tag << 32) | i;

	for (int w = 0; w < 4; w++) {
		uint64_t v = splitmix64(&s);

		memcpy(key + 8 * w, &v, 8);
	}
	/* make distinctness certain, not just likely */
	memcpy(key, &tag, 4);
	memcpy(key + 4, &i, 4);
}

static void
in4(struct in_addr *a, uint8_t b0, uint8_t b1, uint8_t b2, uint8_t b3)
{
	a->s_addr = htonl((uint32_t)b0 << 24 | (uint32_t)b1 << 16 | (uint32_t)b2 << 8 | b3);
}

/* 2001:db8:@hi::@lo */
static void
in6(struct in6_addr *a, uint16_t hi, uint32_t lo)
{
	memset(a, 0, sizeof(*a));
	a->s6_addr[0] = 0x20;
	a->s6_addr[1] = 0x01;
	a->s6_addr[2] = 0x0d;
	a->s6_addr[3] = 0xb8;
	a->s6_addr[4] = (uint8_t)(hi >> 8);
	a->s6_addr[5] = (uint8_t)hi;
	a->s6_addr[12] = (uint8_t)(lo >> 24);
	a->s6_addr[13] = (uint8_t)(lo >> 16);
	a->s6_addr[14] = (uint8_t)(lo >> 8);
	a->s6_addr[15] = (uint8_t)lo;
}

/* ---- the two sides of the tunnel ---- */

struct side {
	const char *label;
	int nsfd;
	struct rtnl *rtnl;
	struct wg_ctl *ctl;
	const char *wg, *veth;
	uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN];
	struct in_addr under; /* on the veth */
	struct in_addr tun;   /* on the WireGuard link */
	struct in6_addr tun6;
	uint16_t port;
};

static uint8_t tunnel_psk[WG_KEY_LEN];

/* Every call for a side runs in its namespace: sockets belong to the one they open in. */
static int
use(const struct side *s)
{
	return netns_enter(s->nsfd);
}

static int
side_open(struct side *s)
{
	int r;

	r = netns_new();
	if (r < 0)
		return r;
	s->nsfd = r;
	r = rtnl_open(&s->rtnl);
	if (r < 0)
		return r;
	r = wg_ctl_new(&s->ctl);
	if (r < 0)
		return r;
	wg_ctl_set_backend(s->ctl, WG_BACKEND_KERNEL);
	r = key_generate_private(s->priv);
	if (r < 0)
		return r;
	r = key_public_from_private(s->pub, s->priv);
	if (r < 0)
		return r;
	return rtnl_link_set_up(s->rtnl, "lo", true);
}

static void
side_close(struct side *s)
{
	wg_ctl_free(s->ctl);
	rtnl_close(s->rtnl);
	if (s->nsfd >= 0)
		close(s->nsfd);
	explicit_bzero(s->priv, sizeof(s->priv));
}

/* @s's WireGuard device: its key and port, @o as its one peer. */
static int
side_set_wg(struct side *s, const struct side *o)
{
	struct wg_device *dev = NULL;
	struct wg_peer *p;
	int r;

	r = wg_device_new(&dev, s->wg);
	if (r < 0)
		return r;
	dev->flags = WG_DEVICE_F_HAS_PRIVATE_KEY | WG_DEVICE_F_HAS_LISTEN_PORT |
		     WG_DEVICE_F_REPLACE_PEERS;
	memcpy(dev->private_key, s->priv, WG_KEY_LEN);
	dev->listen_port = s->port;
	r = wg_device_add_peer(dev, &p);
	if (r < 0)
		goto out;
	p->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_HAS_PRESHARED_KEY |
		   WG_PEER_F_REPLACE_ALLOWEDIPS;
	memcpy(p->public_key, o->pub, WG_KEY_LEN);
	memcpy(p->preshared_key, tunnel_psk, WG_KEY_LEN);
	p->endpoint.addr4.sin_family = AF_INET;
	p->endpoint.addr4.sin_addr = o->under;
	p->endpoint.addr4.sin_port = htons(o->port);
	r = wg_peer_add_allowedip(p, AF_INET, &o->tun, 32);
	if (r == 0)
		r = wg_peer_add_allowedip(p, AF_INET6, &o->tun6, 128);
	if (r == 0)
		r = wg_set_device(s->ctl, dev);
	if (r < 0)
		diag("%s: wg_set_device: %s '%s'", s->wg, strerror(-r), wg_ctl_last_error(s->ctl));
out:
	wg_device_free(dev);
	return r;
}

static bool
setup_step(int r, const char *what, const struct side *s)
{
	if (r >= 0)
		return true;
	check(false, "%s: %s (%s; '%s')", s ? s->label : "setup", what, strerror(-r),
		s ? rtnl_last_error(s->rtnl) : "");
	return false;
}

static bool
setup_tunnel(struct side *a, struct side *b)
{
	struct in_addr net;
	int r;

	r = use(a);
	if (!setup_step(r, "enter namespace", a))
		return false;
	r = veth_add(a->veth, b->veth, b->nsfd);
	if (!setup_step(r, "veth pair", a))
		return false;
	for (int i = 0; i < 2; i++) {
		struct side *s = i ? b : a;

		if (!setup_step(use(s), "enter namespace", s))
			return false;
		r = rtnl_addr_add(s->rtnl, s->veth, AF_INET, &s->under, 24);
		if (!setup_step(r, "rtnl_addr_add veth", s))
			return false;
		r = rtnl_link_set_up(s->rtnl, s->veth, true);
		if (!setup_step(r, "rtnl_link_set_up veth", s))
			return false;
		r = rtnl_link_add_wireguard(s->rtnl, s->wg);
		if (!check(r == 0, "%s: rtnl_link_add_wireguard %s (%s)", s->label, s->wg,
			    strerror(-r)))
			return false;
	}
	for (int i = 0; i < 2; i++) {
		struct side *s = i ? b : a, *o = i ? a : b;

		use(s);
		r = side_set_wg(s, o);
		if (!check(r == 0,
			    "%s: set %s: private key, listen port %u, peer with psk, "
			    "endpoint, 2 allowed IPs",
			    s->label, s->wg, s->port))
			return false;
		/* v4: a /32 and a route to the tunnel's /24; v6: a /64 (connected route) */
		r = rtnl_addr_add(s->rtnl, s->wg, AF_INET, &s->tun, 32);
		if (!setup_step(r, "rtnl_addr_add wg v4", s))
			return false;
		r = rtnl_addr_add(s->rtnl, s->wg, AF_INET6, &s->tun6, 64);
		if (!setup_step(r, "rtnl_addr_add wg v6", s))
			return false;
		r = rtnl_link_set_up(s->rtnl, s->wg, true);
		if (!setup_step(r, "rtnl_link_set_up wg", s))
			return false;
		in4(&net, 10, 9, 0, 0);
		r = rtnl_route_add(s->rtnl, s->wg, AF_INET, &net, 24, 0);
		if (!check(r == 0, "%s: rtnl_route_add 10.9.0.0/24 dev %s (%s '%s')", s->label,
			    s->wg, strerror(-r), rtnl_last_error(s->rtnl)))
			return false;
	}
	return true;
}

/* What we set on @s reads back, before any traffic (no handshake yet). */
static void
check_readback(struct side *s, const struct side *o)
{
	struct wg_device *dev = NULL;
	struct wg_peer *p;
	uint32_t ifindex = 0;
	int r;

	use(s);
	r = wg_get_device(s->ctl, s->wg, &dev);
	if (!check(r == 0, "%s: wg_get_device %s (%s '%s')", s->label, s->wg, strerror(-r),
		    wg_ctl_last_error(s->ctl)))
		return;
	rtnl_link_index(s->rtnl, s->wg, &ifindex);
	check(!strcmp(dev->name, s->wg) && dev->ifindex == ifindex && ifindex != 0,
		"%s: dump names the device (%s, ifindex %u = rtnl %u)", s->label, dev->name,
		dev->ifindex, ifindex);
	check((dev->flags & WG_DEVICE_F_HAS_PRIVATE_KEY) && key_equal(dev->private_key, s->priv),
		"%s: private key reads back", s->label);
	check(key_equal(dev->public_key, s->pub), "%s: public key is the kernel's derivation",
		s->label);
	check(dev->listen_port == s->port, "%s: listen port %u", s->label, dev->listen_port);
	if (!check(dev->n_peers == 1, "%s: one peer (%zu)", s->label, dev->n_peers))
		goto out;
	p = &dev->peers[0];
	sort_aips(p);
	check(key_equal(p->public_key, o->pub), "%s: peer public key", s->label);
	check(key_equal(p->preshared_key, tunnel_psk), "%s: peer preshared key", s->label);
	check(p->endpoint.addr.sa_family == AF_INET &&
			p->endpoint.addr4.sin_addr.s_addr == o->under.s_addr &&
			ntohs(p->endpoint.addr4.sin_port) == o->port,
		"%s: peer endpoint", s->label);
	check(p->n_allowedips == 2 && p->allowedips[0].family == AF_INET &&
			p->allowedips[0].ip4.s_addr == o->tun.s_addr &&
			p->allowedips[0].cidr == 32 && p->allowedips[1].family == AF_INET6 &&
			!memcmp(&p->allowedips[1].ip6, &o->tun6, 16) &&
			p->allowedips[1].cidr == 128,
		"%s: peer allowed IPs (%zu)", s->label, p->n_allowedips);
	check(p->last_handshake_sec == 0 && p->last_handshake_nsec == 0 && p->rx_bytes == 0,
		"%s: no handshake and no traffic yet", s->label);
out:
	wg_device_free(dev);
}

static int
get_peer_counters(struct side *s, int64_t *hs, uint64_t *rx, uint64_t *tx, size_t *n_peers)
{
	struct wg_device *dev = NULL;
	int r;

	use(s);
	r = wg_get_device(s->ctl, s->wg, &dev);
	if (r < 0)
		return r;
	*n_peers = dev->n_peers;
	*hs = dev->n_peers ? dev->peers[0].last_handshake_sec : 0;
	*rx = dev->n_peers ? dev->peers[0].rx_bytes : 0;
	*tx = dev->n_peers ? dev->peers[0].tx_bytes : 0;
	wg_device_free(dev);
	return 0;
}

static void
test_tunnel(struct side *a, struct side *b)
{
	struct wg_device *dev = NULL;
	struct wg_peer *p;
	uint64_t rx = 0, tx = 0, rx2 = 0, tx2 = 0;
	int64_t hs = 0;
	size_t n = 0;
	double t0;
	int r, r2;

	check_readback(a, b);
	check_readback(b, a);

	use(a);
	t0 = now_mono();
	r = ping(AF_INET, &b->tun, 5, 2000);
	check(r == 1,
		"A -> B: ICMP echo through the tunnel (%.2f s, first one does the "
		"handshake)",
		now_mono() - t0);
	r = ping(AF_INET6, &b->tun6, 3, 2000);
	check(r == 1, "A -> B: ICMPv6 echo through the tunnel");
	use(b);
	r = ping(AF_INET, &a->tun, 3, 2000);
	check(r == 1, "B -> A: ICMP echo through the tunnel");

	for (int i = 0; i < 2; i++) {
		struct side *s = i ? b : a;
		struct timespec now;

		clock_gettime(CLOCK_REALTIME, &now);
		r = get_peer_counters(s, &hs, &rx, &tx, &n);
		check(r == 0 && n == 1 && hs > 0 && hs <= now.tv_sec + 1 && now.tv_sec - hs < 600,
			"%s: dump shows a handshake time (%" PRId64 ", now %lld)", s->label, hs,
			(long long)now.tv_sec);
		check(r == 0 && rx > 0 && tx > 0,
			"%s: dump shows rx %" PRIu64 " > 0, tx %" PRIu64 " > 0", s->label, rx, tx);
	}

	/* the counters grow with more traffic */
	r = get_peer_counters(b, &hs, &rx, &tx, &n);
	use(a);
	ping(AF_INET, &b->tun, 1, 2000);
	r2 = get_peer_counters(b, &hs, &rx2, &tx2, &n);
	check(r == 0 && r2 == 0 && rx2 > rx && tx2 > tx,
		"B: rx %" PRIu64 " -> %" PRIu64 ", tx %" PRIu64 " -> %" PRIu64
		" after one more echo",
		rx, rx2, tx, tx2);

	/* remove B from A through the module: the tunnel stops carrying traffic */
	use(a);
	r = wg_device_new(&dev, a->wg);
	if (r == 0)
		r = wg_device_add_peer(dev, &p);
	if (r == 0) {
		p->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REMOVE_ME;
		memcpy(p->public_key, b->pub, WG_KEY_LEN);
		r = wg_set_device(a->ctl, dev);
	}
	wg_device_free(dev);
	dev = NULL;
	check(r == 0, "A: peer B removed through the module (%s)", strerror(-r));
	r = get_peer_counters(a, &hs, &rx, &tx, &n);
	check(r == 0 && n == 0, "A: dump shows no peer (%zu)", n);
	r2 = get_peer_counters(b, &hs, &rx, &tx, &n);
	use(a);
	/* wgA drops the packets (no peer has a matching allowed IP): ENOKEY or silence */
	r = ping(AF_INET, &b->tun, 2, 1500);
	check(r == 0 || r == -ENOKEY, "A -> B: no echo reply once the peer is removed (%s)",
		r < 0 ? strerror(-r)
		: r   ? "a reply came"
		      : "no reply");
	r = ping(AF_INET6, &b->tun6, 1, 1500);
	check(r == 0 || r == -ENOKEY, "A -> B: no ICMPv6 echo reply either (%s)",
		r < 0 ? strerror(-r)
		: r   ? "a reply came"
		      : "no reply");
	r = get_peer_counters(b, &hs, &rx2, &tx2, &n);
	check(r == 0 && r2 == 0 && rx2 == rx,
		"B: rx counter still (%" PRIu64 " -> %" PRIu64 "): nothing arrives", rx, rx2);
	/* B still has A as its peer and sends, but A no longer knows B: no answer */
	use(b);
	r = ping(AF_INET, &a->tun, 1, 2000);
	check(r == 0, "B -> A: no echo reply, A dropped B's packets (%s)",
		r < 0 ? strerror(-r)
		: r   ? "a reply came"
		      : "no reply");
	r = get_peer_counters(b, &hs, &rx, &tx2, &n);
	check(r == 0 && tx2 > tx && rx == rx2,
		"B: tx %" PRIu64 " -> %" PRIu64 " (it sent), rx "
		"still %" PRIu64,
		tx, tx2, rx);
}

/* ---- errors ---- */

static void
test_errors(struct side *a)
{
	struct wg_device *dev = NULL;
	struct in_addr bad;
	const char *msg;
	int r;

	use(a);
	/* bad requests the kernel explains in its extended ack */
	r = rtnl_link_set_mtu(a->rtnl, a->veth, 70000);
	msg = rtnl_last_error(a->rtnl);
	check(r == -EINVAL && strstr(msg, "mtu") != NULL,
		"rtnl: MTU 70000 on a veth refused with its extended ack (%s: '%s')", strerror(-r),
		msg);
	in4(&bad, 10, 77, 1, 1); /* host bits set under a /24 */
	r = rtnl_route_add(a->rtnl, a->wg, AF_INET, &bad, 24, 0);
	msg = rtnl_last_error(a->rtnl);
	check(r == -EINVAL && strstr(msg, "prefix") != NULL,
		"rtnl: route 10.77.1.1/24 refused with its extended ack (%s: '%s')", strerror(-r),
		msg);
	r = rtnl_link_set_mtu(a->rtnl, a->veth, 1400);
	check(r == 0, "rtnl: MTU 1400 on the veth accepted (%s)", strerror(-r));
	r = rtnl_link_add_wireguard(a->rtnl, a->wg);
	check(r == -EEXIST, "rtnl: adding %s twice: %s ('%s')", a->wg, strerror(-r),
		rtnl_last_error(a->rtnl));
	r = rtnl_link_index(a->rtnl, "nosuchlink0", &(uint32_t){0});
	check(r == -ENODEV, "rtnl: index of an absent link: %s", strerror(-r));

	/* generic netlink: the wireguard family validates by policy; these are semantic */
	r = wg_get_device(a->ctl, "nosuchwg0", &dev);
	check(r == -ENODEV, "genl: get of an absent interface: %s ('%s')", strerror(-r),
		wg_ctl_last_error(a->ctl));
	wg_device_free(dev);
	dev = NULL;
	r = wg_device_new(&dev, a->veth);
	if (r == 0) {
		dev->flags = WG_DEVICE_F_HAS_LISTEN_PORT;
		dev->listen_port = 4242;
		r = wg_set_device(a->ctl, dev);
	}
	check(r == -EOPNOTSUPP, "genl: set on a veth (not WireGuard): %s ('%s')", strerror(-r),
		wg_ctl_last_error(a->ctl));
	wg_device_free(dev);
}

/* ---- 20,000 peers ---- */

static int
big_fill(struct wg_device *dev, uint32_t tag, size_t n)
{
	struct wg_peer *p;
	struct in_addr a4;
	struct in6_addr a6;
	int r;

	for (size_t i = 0; i < n; i++) {
		uint32_t k = (uint32_t)i;

		r = wg_device_add_peer(dev, &p);
		if (r < 0)
			return r;
		p->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_HAS_PERSISTENT_KEEPALIVE |
			   WG_PEER_F_REPLACE_ALLOWEDIPS;
		fake_key(p->public_key, tag, k);
		if (k % 10 == 3) {
			p->flags |= WG_PEER_F_HAS_PRESHARED_KEY;
			fake_key(p->preshared_key, tag + 1, k);
		}
		p->persistent_keepalive = (uint16_t)(k % 100); /* 0 (off) for every 100th */
		if (k % 2 == 0) {
			p->endpoint.addr4.sin_family = AF_INET;
			in4(&p->endpoint.addr4.sin_addr, 198, 51, 100, (uint8_t)(k % 254 + 1));
			p->endpoint.addr4.sin_port = htons((uint16_t)(10000 + k % 50000));
		} else if (k % 7 != 0) {
			p->endpoint.addr6.sin6_family = AF_INET6;
			in6(&p->endpoint.addr6.sin6_addr, 0xe0, k);
			p->endpoint.addr6.sin6_port = htons((uint16_t)(20000 + k % 40000));
		} /* else: no endpoint */
		/* a /32 each, a v6 /128 each, and a v4 /24 for every 16th */
		in4(&a4, 10, (uint8_t)(64 + (k >> 16)), (uint8_t)(k >> 8), (uint8_t)k);
		r = wg_peer_add_allowedip(p, AF_INET, &a4, 32);
		if (r < 0)
			return r;
		in6(&a6, 0x64, k);
		r = wg_peer_add_allowedip(p, AF_INET6, &a6, 128);
		if (r < 0)
			return r;
		if (k % 16 == 0) {
			in4(&a4, 172, (uint8_t)(16 + (k >> 12)), (uint8_t)(k >> 4), 0);
			r = wg_peer_add_allowedip(p, AF_INET, &a4, 24);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

#define CONC_ROUNDS 10
#define CONC_KA0 200 /* keepalive of the two watched peers before the writer starts */

/*
 * Set the keepalive of two peers far apart in the dump order (the second and the last
 * of the big set) to @ka, in one request: one message, so the kernel applies it at once.
 */
static int
conc_set_pair(struct wg_ctl *ctl, const char *ifname, uint16_t ka)
{
	struct wg_device *dev = NULL;
	struct wg_peer *p;
	int r;

	r = wg_device_new(&dev, ifname);
	for (int i = 0; r == 0 && i < 2; i++) {
		r = wg_device_add_peer(dev, &p);
		if (r == 0) {
			p->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_HAS_PERSISTENT_KEEPALIVE |
				   WG_PEER_F_UPDATE_ONLY;
			fake_key(p->public_key, 0xb16, i == 0 ? 1 : BIG_PEERS - 1);
			p->persistent_keepalive = ka;
		}
	}
	if (r == 0)
		r = wg_set_device(ctl, dev);
	wg_device_free(dev);
	return r;
}

/* The child of big_concurrent_dump(): CONC_ROUNDS changes of the pair, 25 ms apart. */
static int
conc_writer(const char *ifname)
{
	struct wg_ctl *ctl = NULL;
	int r;

	r = wg_ctl_new(&ctl);
	if (r < 0)
		return r;
	wg_ctl_set_backend(ctl, WG_BACKEND_KERNEL);
	for (int j = 1; r == 0 && j <= CONC_ROUNDS; j++) {
		usleep(j == 1 ? 2000 : 25000);
		r = conc_set_pair(ctl, ifname, (uint16_t)(CONC_KA0 + j));
	}
	wg_ctl_free(ctl);
	return r;
}

/*
 * Dump @ifname (@base peers) while another process changes two of its peers, both in one
 * step. Every change makes the kernel flag a dump in progress NLM_F_DUMP_INTR; a reader
 * that kept such a dump could see the first peer before a change and the last one after
 * it. Our module must read again, so every dump it returns shows both peers with the same
 * keepalive, and all @base peers. An independent reader, dumping in turn with ours, shows
 * that the kernel did flag dumps meanwhile (how many depends on scheduling: not a check).
 */
static void
big_concurrent_dump(struct side *a, const char *ifname, size_t base)
{
	struct wg_device *got = NULL;
	struct raw_dump raw;
	unsigned int dumps = 0, bad = 0, errs = 0, raw_dumps = 0, raw_intr = 0;
	int status = 0, r, last_err = 0;
	uint8_t k1[WG_KEY_LEN], k2[WG_KEY_LEN];
	const struct wg_peer *p1, *p2;
	pid_t pid, w = 0;

	use(a);
	fake_key(k1, 0xb16, 1);
	fake_key(k2, 0xb16, BIG_PEERS - 1);
	r = conc_set_pair(a->ctl, ifname, CONC_KA0);
	if (!check(r == 0, "big: two watched peers set (%s)", strerror(-r)))
		return;
	fflush(stdout);
	pid = fork();
	if (pid < 0) {
		check(false, "big: fork (%s)", strerror(errno));
		return;
	}
	if (pid == 0)
		_exit(conc_writer(ifname) == 0 ? 0 : 1);
	while (w == 0 && dumps < 20) {
		r = raw_dump(ifname, &raw);
		if (r == 0 || r == -EINTR) {
			raw_dumps++;
			raw_intr += raw.intr;
		}
		r = wg_get_device(a->ctl, ifname, &got);
		dumps++;
		if (r < 0) {
			errs++;
			last_err = r;
		} else {
			p1 = wg_device_find_peer(got, k1);
			p2 = wg_device_find_peer(got, k2);
			if (got->n_peers != base || p1 == NULL || p2 == NULL ||
				p1->persistent_keepalive != p2->persistent_keepalive) {
				bad++;
				diag("big: torn dump: %zu peers, keepalive %d and %d", got->n_peers,
					p1 ? p1->persistent_keepalive : -1,
					p2 ? p2->persistent_keepalive : -1);
			}
		}
		wg_device_free(got);
		got = NULL;
		w = waitpid(pid, &status, WNOHANG);
	}
	if (w == 0)
		w = waitpid(pid, &status, 0);
	diag("big: the kernel flagged %u of %u independent dumps NLM_F_DUMP_INTR meanwhile",
		raw_intr, raw_dumps);
	check(w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
		"big: another process changed two peers %d times during the dumps", CONC_ROUNDS);
	check(errs == 0 && bad == 0,
		"big: %u dumps while the device changed, each complete and consistent "
		"(%u errors, last %s; %u torn)",
		dumps, errs, strerror(-last_err), bad);
	r = wg_get_device(a->ctl, ifname, &got);
	p1 = r == 0 ? wg_device_find_peer(got, k1) : NULL;
	p2 = r == 0 ? wg_device_find_peer(got, k2) : NULL;
	check(r == 0 && got->n_peers == base && p1 && p2 &&
			p1->persistent_keepalive == CONC_KA0 + CONC_ROUNDS &&
			p2->persistent_keepalive == CONC_KA0 + CONC_ROUNDS,
		"big: after it, %zu peers and the last change on both", got ? got->n_peers : 0);
	wg_device_free(got);
}

static void
test_big(struct side *a)
{
	static const char ifname[] = "wgbig";
	struct wg_device *want = NULL, *got = NULL, *old = NULL, *rm = NULL;
	struct raw_dump raw;
	struct wg_peer *p;
	char why[320];
	size_t total_aips = 0;
	double t0;
	int r;

	use(a);
	r = rtnl_link_add_wireguard(a->rtnl, ifname);
	if (!check(r == 0, "big: rtnl_link_add_wireguard %s (%s)", ifname, strerror(-r)))
		return;

	/* three peers first, which replace-peers must take away */
	r = wg_device_new(&old, ifname);
	if (r == 0)
		r = big_fill(old, 0x0e1d, 3);
	if (r == 0) {
		old->flags = WG_DEVICE_F_HAS_FWMARK | WG_DEVICE_F_HAS_LISTEN_PORT;
		old->fwmark = 0x5eed;
		old->listen_port = 43210;
		r = wg_set_device(a->ctl, old);
	}
	check(r == 0, "big: 3 peers, fwmark, listen port set (%s)", strerror(-r));

	r = wg_device_new(&want, ifname);
	if (r == 0)
		r = big_fill(want, 0xb16, BIG_PEERS);
	if (!check(r == 0, "big: %d peers built (%s)", BIG_PEERS, strerror(-r)))
		goto out;
	for (size_t i = 0; i < want->n_peers; i++)
		total_aips += want->peers[i].n_allowedips;
	want->flags = WG_DEVICE_F_REPLACE_PEERS;
	t0 = now_mono();
	r = wg_set_device(a->ctl, want);
	check(r == 0, "big: %d peers (%zu allowed IPs) set with replace-peers in %.2f s (%s '%s')",
		BIG_PEERS, total_aips, now_mono() - t0, strerror(-r), wg_ctl_last_error(a->ctl));

	t0 = now_mono();
	r = wg_get_device(a->ctl, ifname, &got);
	if (!check(r == 0, "big: dumped back in %.2f s (%s '%s')", now_mono() - t0, strerror(-r),
		    wg_ctl_last_error(a->ctl)))
		goto out;
	check(got->n_peers == BIG_PEERS, "big: dump complete: %zu peers", got->n_peers);
	check(got->fwmark == 0x5eed && got->listen_port == 43210,
		"big: fwmark 0x%x and listen port %u kept", got->fwmark, got->listen_port);
	check(peers_equal(want, got, why, sizeof(why)),
		"big: every peer equal: keys, preshared keys, endpoints, keepalive, allowed IPs "
		"(%s)",
		why);
	for (size_t i = 0; i < old->n_peers; i++)
		if (wg_device_find_peer(got, old->peers[i].public_key) != NULL)
			r = -EEXIST;
	check(r == 0, "big: replace-peers removed the 3 earlier peers");
	wg_device_free(got);
	got = NULL;

	/* remove 5 of them (each removal waits for RCU in the kernel: keep it small) */
	r = wg_device_new(&rm, ifname);
	for (size_t i = 0; r == 0 && i < 5; i++) {
		size_t victim = i * 4001;

		r = wg_device_add_peer(rm, &p);
		if (r == 0) {
			p->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REMOVE_ME;
			fake_key(p->public_key, 0xb16, (uint32_t)victim);
		}
	}
	if (r == 0)
		r = wg_set_device(a->ctl, rm);
	check(r == 0, "big: 5 peers removed (%s)", strerror(-r));
	r = wg_get_device(a->ctl, ifname, &got);
	if (r == 0) {
		size_t still = 0;

		for (size_t i = 0; i < rm->n_peers; i++)
			if (wg_device_find_peer(got, rm->peers[i].public_key) != NULL)
				still++;
		check(got->n_peers == BIG_PEERS - 5 && still == 0,
			"big: %zu peers left, none of the removed", got->n_peers);
	} else {
		check(false, "big: dump after removal (%s)", strerror(-r));
	}
	r = raw_dump(ifname, &raw);
	check(r == 0 && raw.peers == BIG_PEERS - 5,
		"big: an independent reader counts %u peers in %u messages (%s)", raw.peers,
		raw.msgs, strerror(-r));
	big_concurrent_dump(a, ifname, BIG_PEERS - 5);
out:
	wg_device_free(rm);
	wg_device_free(got);
	wg_device_free(want);
	wg_device_free(old);
}

/* ---- one peer with 1,000 allowed IPs; replace semantics ---- */

static int
aip_peer(struct wg_device **ret, const char *ifname, uint32_t keyidx, uint32_t flags, size_t n_aips,
	uint32_t aip_base)
{
	struct wg_device *dev = NULL;
	struct wg_peer *p;
	int r;

	r = wg_device_new(&dev, ifname);
	if (r == 0)
		r = wg_device_add_peer(dev, &p);
	if (r < 0)
		goto err;
	p->flags = WG_PEER_F_HAS_PUBLIC_KEY | flags;
	fake_key(p->public_key, 0xa1, keyidx);
	for (size_t i = 0; i < n_aips; i++) {
		uint32_t k = aip_base + (uint32_t)i;

		if (k % 2 == 0) {
			struct in_addr a4;

			/* distinct /30s, host bits clear (the kernel stores them masked) */
			in4(&a4, 100, (uint8_t)(64 + (k >> 14)), (uint8_t)(k >> 6),
				(uint8_t)(k << 2));
			r = wg_peer_add_allowedip(p, AF_INET, &a4, 30);
		} else {
			struct in6_addr a6;

			in6(&a6, 0xa1, 0);
			a6.s6_addr[6] = (uint8_t)(k >> 8);
			a6.s6_addr[7] = (uint8_t)k;
			r = wg_peer_add_allowedip(p, AF_INET6, &a6, 64);
		}
		if (r < 0)
			goto err;
	}
	*ret = dev;
	return 0;
err:
	wg_device_free(dev);
	return r;
}

static int
set_and_get(struct side *a, struct wg_device *dev, struct wg_device **ret_got)
{
	int r = wg_set_device(a->ctl, dev);

	if (r < 0) {
		diag("wg_set_device %s: %s '%s'", dev->name, strerror(-r),
			wg_ctl_last_error(a->ctl));
		return r;
	}
	return wg_get_device(a->ctl, dev->name, ret_got);
}

static void
test_many_aips(struct side *a)
{
	static const char ifname[] = "wgaip";
	struct wg_device *want = NULL, *got = NULL, *more = NULL;
	struct raw_dump raw;
	struct wg_peer *p;
	char why[320];
	size_t before;
	int r;

	use(a);
	r = rtnl_link_add_wireguard(a->rtnl, ifname);
	if (!check(r == 0, "aips: rtnl_link_add_wireguard %s (%s)", ifname, strerror(-r)))
		return;

	/* 10 allowed IPs first, which replace-allowed-ips must take away */
	r = aip_peer(&want, ifname, 1, WG_PEER_F_REPLACE_ALLOWEDIPS, 10, 50000);
	if (r == 0)
		r = set_and_get(a, want, &got);
	check(r == 0 && peers_equal(want, got, why, sizeof(why)),
		"aips: a peer with 10 allowed IPs (%s)", r ? strerror(-r) : why);
	wg_device_free(want);
	wg_device_free(got);
	want = got = NULL;

	r = aip_peer(&want, ifname, 1, WG_PEER_F_REPLACE_ALLOWEDIPS, MANY_AIPS, 0);
	if (r == 0)
		r = set_and_get(a, want, &got);
	check(r == 0 && peers_equal(want, got, why, sizeof(why)),
		"aips: %d allowed IPs, v4 and v6 mixed, replace the 10 and read back equal (%s)",
		MANY_AIPS, r ? strerror(-r) : why);
	wg_device_free(got);
	got = NULL;
	r = raw_dump(ifname, &raw);
	check(r == 0 && raw.peers == 1 && raw.continued >= 1,
		"aips: the kernel's dump of it took %u messages, the peer continued %u times "
		"(independent reader; %s)",
		raw.msgs, raw.continued, strerror(-r));

	/* without replace-allowed-ips: added to the list; one already there is not doubled */
	r = aip_peer(&more, ifname, 1, 0, 5, MANY_AIPS - 1);
	if (r == 0)
		r = set_and_get(a, more, &got);
	if (r == 0 && want->n_peers == 1) {
		p = &want->peers[0];
		for (size_t i = 1; i < more->peers[0].n_allowedips && r == 0; i++) {
			const struct wg_allowedip *x = &more->peers[0].allowedips[i];

			r = wg_peer_add_allowedip(p, x->family, &x->ip6, x->cidr);
		}
	}
	check(r == 0 && peers_equal(want, got, why, sizeof(why)),
		"aips: 5 more without replace-allowed-ips (1 already there): %zu (%s)",
		got && got->n_peers ? got->peers[0].n_allowedips : 0, r ? strerror(-r) : why);
	wg_device_free(more);
	wg_device_free(got);
	more = got = NULL;

	/* replace-allowed-ips with an empty list clears it */
	r = aip_peer(&more, ifname, 1, WG_PEER_F_REPLACE_ALLOWEDIPS, 0, 0);
	if (r == 0)
		r = set_and_get(a, more, &got);
	check(r == 0 && got->n_peers == 1 && got->peers[0].n_allowedips == 0,
		"aips: replace-allowed-ips with none clears the list (%s)", strerror(-r));
	wg_device_free(more);
	wg_device_free(got);
	more = got = NULL;

	/* update-only does not create a peer */
	r = aip_peer(&more, ifname, 2, WG_PEER_F_UPDATE_ONLY, 1, 0);
	if (r == 0)
		r = set_and_get(a, more, &got);
	check(r == 0 && got->n_peers == 1 &&
			key_equal(got->peers[0].public_key, want->peers[0].public_key),
		"aips: update-only on an absent peer creates nothing (%zu peers)",
		got ? got->n_peers : 0);
	wg_device_free(more);
	wg_device_free(got);
	more = got = NULL;

	/* without replace-peers a new peer joins; with it, it is the only one left */
	r = aip_peer(&more, ifname, 3, 0, 2, 70000);
	if (r == 0)
		r = set_and_get(a, more, &got);
	before = got ? got->n_peers : 0;
	check(r == 0 && before == 2, "aips: a second peer without replace-peers: %zu peers",
		before);
	wg_device_free(more);
	wg_device_free(got);
	more = got = NULL;
	r = aip_peer(&more, ifname, 4, 0, 3, 80000);
	if (r == 0) {
		more->flags = WG_DEVICE_F_REPLACE_PEERS;
		r = set_and_get(a, more, &got);
	}
	check(r == 0 && peers_equal(more, got, why, sizeof(why)),
		"aips: replace-peers leaves exactly the one peer sent (%s)",
		r ? strerror(-r) : why);

	wg_device_free(more);
	wg_device_free(got);
	wg_device_free(want);
}

/* ---- listing and deleting ---- */

static void
test_list_del(struct side *a)
{
	char **names = NULL;
	size_t n = 0;
	bool wg = false, big = false, aip = false, veth = false;
	uint32_t idx = 0;
	int r;

	use(a);
	r = wg_list_devices(a->ctl, &names, &n);
	for (size_t i = 0; r == 0 && i < n; i++) {
		wg |= !strcmp(names[i], a->wg);
		big |= !strcmp(names[i], "wgbig");
		aip |= !strcmp(names[i], "wgaip");
		veth |= !strcmp(names[i], a->veth);
	}
	check(r == 0 && wg && big && aip && !veth,
		"list: %zu WireGuard links in A, the veth not among them (%s)", n, strerror(-r));
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);

	r = rtnl_link_del(a->rtnl, "wgaip");
	check(r == 0, "rtnl_link_del wgaip (%s)", strerror(-r));
	r = rtnl_link_index(a->rtnl, "wgaip", &idx);
	check(r == -ENODEV, "wgaip is gone (%s)", strerror(-r));
	/*
	 * wgbig stays: deleting it takes the kernel one synchronize_net() per peer (minutes
	 * under TCG). The namespace goes away in the background when we exit.
	 */
}

int
main(void)
{
	struct side a = {
		.label = "A",
		.nsfd = -1,
		.wg = "wgA",
		.veth = "vethA",
		.port = 51820,
	};
	struct side b = {
		.label = "B",
		.nsfd = -1,
		.wg = "wgB",
		.veth = "vethB",
		.port = 51821,
	};
	int orig, r;
	double t0 = now_mono(), t1;

	setvbuf(stdout, NULL, _IOLBF, 0);
	in4(&a.under, 192, 0, 2, 1);
	in4(&b.under, 192, 0, 2, 2);
	in4(&a.tun, 10, 9, 0, 1);
	in4(&b.tun, 10, 9, 0, 2);
	inet_pton(AF_INET6, "fd00:9::1", &a.tun6);
	inet_pton(AF_INET6, "fd00:9::2", &b.tun6);

	orig = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
	if (!check(orig >= 0, "open our network namespace (%s)", strerror(errno)))
		goto done;
	r = side_open(&a);
	if (!check(r == 0, "namespace A: rtnl, wg_ctl (kernel backend), keys (%s)", strerror(-r)))
		goto done;
	r = side_open(&b);
	if (!check(r == 0, "namespace B: rtnl, wg_ctl (kernel backend), keys (%s)", strerror(-r)))
		goto done;
	r = key_generate_private(tunnel_psk); /* any 32 random bytes */
	if (!check(r == 0, "preshared key"))
		goto done;

	t1 = now_mono();
	if (setup_tunnel(&a, &b))
		test_tunnel(&a, &b);
	diag("tunnel: %.1f s", now_mono() - t1);
	t1 = now_mono();
	test_errors(&a);
	diag("errors: %.1f s", now_mono() - t1);
	t1 = now_mono();
	test_big(&a);
	diag("big: %.1f s", now_mono() - t1);
	t1 = now_mono();
	test_many_aips(&a);
	diag("aips: %.1f s", now_mono() - t1);
	t1 = now_mono();
	test_list_del(&a);
	diag("list/del: %.1f s", now_mono() - t1);
done:
	side_close(&a);
	side_close(&b);
	explicit_bzero(tunnel_psk, sizeof(tunnel_psk));
	if (orig >= 0) {
		netns_enter(orig);
		close(orig);
	}
	diag("nltest ran %.1f s", now_mono() - t0);
	printf("KTEST: %u passed, %u failed\n", n_pass, n_fail);
	return n_fail ? 1 : 0;
}
