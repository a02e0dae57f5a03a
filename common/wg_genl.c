// SPDX-License-Identifier: MIT
/*
 * The kernel backend: generic netlink against the "wireguard" family (libmnl).
 *
 * Reading a device is a dump (WG_CMD_GET_DEVICE with NLM_F_DUMP). The kernel splits a
 * device across messages; a peer whose allowed IPs do not fit continues in the next
 * message, repeating only its public key (linux/wireguard.h). We fold each message into
 * one struct wg_device and merge such a peer. If the device changed while it was being
 * dumped the kernel flags a message NLM_F_DUMP_INTR: we throw the result away and dump
 * again.
 *
 * Setting a device sends as many WG_CMD_SET_DEVICE messages as the peers need, each
 * acknowledged before the next; a peer whose allowed IPs overflow a message continues in
 * the next with its public key only (never repeating REPLACE_ALLOWEDIPS, which would
 * drop what the previous message added). Every request buffer is wiped after it is sent:
 * it may hold the private key or preshared keys.
 *
 * Every attribute is validated (type and exact length) before it is read; unknown
 * attributes are skipped, as newer kernels may add some.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <linux/genetlink.h>
#include <linux/wireguard.h>

#include "common/nl.h"
#include "common/wg.h"

#define WG_GENL_DUMP_RETRIES 16

struct wg_genl {
	struct nl_sock nl;
	uint16_t family;
	uint8_t *sbuf; /* NL_SEND_BUF bytes */
};

/* ---- family resolution ---- */

static int
family_attr_cb(const struct nlattr *attr, void *data)
{
	uint16_t *family = data;

	if (mnl_attr_get_type(attr) == CTRL_ATTR_FAMILY_ID) {
		if (mnl_attr_validate(attr, MNL_TYPE_U16) < 0)
			return MNL_CB_ERROR;
		*family = mnl_attr_get_u16(attr);
	}
	return MNL_CB_OK;
}

static int
family_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	if (nl_attr_parse(nlh, sizeof(struct genlmsghdr), family_attr_cb, data) != MNL_CB_OK)
		return -EPROTO;
	return 0;
}

static struct nlmsghdr *
genl_msg_start(void *buf, uint16_t type, uint16_t flags, uint8_t cmd, uint8_t version)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);
	struct genlmsghdr *g;

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | flags;
	g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));
	g->cmd = cmd;
	g->version = version;
	return nlh;
}

int
wg_genl_open(struct wg_genl **ret)
{
	struct wg_genl *genl;
	struct nlmsghdr *nlh;
	uint16_t family = 0;
	int r;

	genl = calloc(1, sizeof(*genl));
	if (genl == NULL)
		return -ENOMEM;
	genl->sbuf = calloc(1, NL_SEND_BUF);
	if (genl->sbuf == NULL) {
		free(genl);
		return -ENOMEM;
	}
	r = nl_sock_open(&genl->nl, NETLINK_GENERIC);
	if (r < 0) {
		free(genl->sbuf);
		free(genl);
		return r;
	}

	nlh = genl_msg_start(genl->sbuf, GENL_ID_CTRL, NLM_F_ACK, CTRL_CMD_GETFAMILY, 1);
	mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, WG_GENL_NAME);
	nl_sock_prepare(&genl->nl, nlh);
	r = nl_sock_talk(&genl->nl, nlh, family_msg_cb, &family, NULL);
	if (r == 0 && family == 0)
		r = -EPROTO;
	if (r < 0) {
		/* ENOENT: no such family, the module is not loaded */
		wg_genl_close(genl);
		return r == -ENOENT ? -EPROTONOSUPPORT : r;
	}
	genl->family = family;
	*ret = genl;
	return 0;
}

void
wg_genl_close(struct wg_genl *genl)
{
	if (genl == NULL)
		return;
	nl_sock_close(&genl->nl);
	explicit_bzero(genl->sbuf, NL_SEND_BUF);
	free(genl->sbuf);
	free(genl);
}

const char *
wg_genl_last_error(const struct wg_genl *genl)
{
	return genl != NULL ? genl->nl.err : "";
}

/* ---- parsing a dump ---- */

static bool
attr_len_is(const struct nlattr *attr, size_t len)
{
	return mnl_attr_get_payload_len(attr) == len;
}

struct allowedip_parse {
	uint16_t family;
	uint8_t addr[16];
	size_t addr_len; /* 0: not seen */
	int cidr;	 /* -1: not seen */
};

static int
allowedip_attr_cb(const struct nlattr *attr, void *data)
{
	struct allowedip_parse *ip = data;

	switch (mnl_attr_get_type(attr)) {
	case WGALLOWEDIP_A_FAMILY:
		if (mnl_attr_validate(attr, MNL_TYPE_U16) < 0)
			return MNL_CB_ERROR;
		ip->family = mnl_attr_get_u16(attr);
		break;
	case WGALLOWEDIP_A_IPADDR:
		if (!attr_len_is(attr, 4) && !attr_len_is(attr, 16))
			return MNL_CB_ERROR;
		ip->addr_len = mnl_attr_get_payload_len(attr);
		memcpy(ip->addr, mnl_attr_get_payload(attr), ip->addr_len);
		break;
	case WGALLOWEDIP_A_CIDR_MASK:
		if (mnl_attr_validate(attr, MNL_TYPE_U8) < 0)
			return MNL_CB_ERROR;
		ip->cidr = mnl_attr_get_u8(attr);
		break;
	default:
		break; /* unknown: skip */
	}
	return MNL_CB_OK;
}

static int
allowedips_attr_cb(const struct nlattr *attr, void *data)
{
	struct wg_peer *peer = data;
	struct allowedip_parse ip = { .cidr = -1 };

	if (mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0)
		return MNL_CB_ERROR;
	if (nl_attr_parse_nested(attr, allowedip_attr_cb, &ip) != MNL_CB_OK)
		return MNL_CB_ERROR;
	if (ip.cidr < 0)
		return MNL_CB_ERROR;
	if (ip.family == AF_INET && ip.addr_len == 4 && ip.cidr <= 32)
		;
	else if (ip.family == AF_INET6 && ip.addr_len == 16 && ip.cidr <= 128)
		;
	else
		return MNL_CB_ERROR;
	if (wg_peer_add_allowedip(peer, ip.family, ip.addr, (uint8_t)ip.cidr) < 0)
		return MNL_CB_ERROR;
	return MNL_CB_OK;
}

static bool
all_zero(const uint8_t *b, size_t n)
{
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

static int
peer_attr_cb(const struct nlattr *attr, void *data)
{
	struct wg_peer *peer = data;
	const struct sockaddr *sa;
	const int64_t *ts;

	switch (mnl_attr_get_type(attr)) {
	case WGPEER_A_PUBLIC_KEY:
		if (!attr_len_is(attr, WG_KEY_LEN))
			return MNL_CB_ERROR;
		memcpy(peer->public_key, mnl_attr_get_payload(attr), WG_KEY_LEN);
		peer->flags |= WG_PEER_F_HAS_PUBLIC_KEY;
		break;
	case WGPEER_A_PRESHARED_KEY:
		if (!attr_len_is(attr, WG_KEY_LEN))
			return MNL_CB_ERROR;
		memcpy(peer->preshared_key, mnl_attr_get_payload(attr), WG_KEY_LEN);
		if (!all_zero(peer->preshared_key, WG_KEY_LEN))
			peer->flags |= WG_PEER_F_HAS_PRESHARED_KEY;
		break;
	case WGPEER_A_ENDPOINT:
		if (mnl_attr_get_payload_len(attr) < sizeof(struct sockaddr))
			return MNL_CB_ERROR;
		sa = mnl_attr_get_payload(attr);
		if (sa->sa_family == AF_INET && attr_len_is(attr, sizeof(struct sockaddr_in)))
			memcpy(&peer->endpoint.addr4, sa, sizeof(struct sockaddr_in));
		else if (sa->sa_family == AF_INET6 && attr_len_is(attr, sizeof(struct sockaddr_in6)))
			memcpy(&peer->endpoint.addr6, sa, sizeof(struct sockaddr_in6));
		else
			return MNL_CB_ERROR;
		break;
	case WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL:
		if (mnl_attr_validate(attr, MNL_TYPE_U16) < 0)
			return MNL_CB_ERROR;
		peer->persistent_keepalive = mnl_attr_get_u16(attr);
		if (peer->persistent_keepalive)
			peer->flags |= WG_PEER_F_HAS_PERSISTENT_KEEPALIVE;
		break;
	case WGPEER_A_LAST_HANDSHAKE_TIME:
		/* struct __kernel_timespec: two 64-bit fields */
		if (!attr_len_is(attr, 2 * sizeof(int64_t)))
			return MNL_CB_ERROR;
		ts = mnl_attr_get_payload(attr);
		memcpy(&peer->last_handshake_sec, &ts[0], sizeof(int64_t));
		memcpy(&peer->last_handshake_nsec, &ts[1], sizeof(int64_t));
		break;
	case WGPEER_A_RX_BYTES:
		if (mnl_attr_validate(attr, MNL_TYPE_U64) < 0)
			return MNL_CB_ERROR;
		peer->rx_bytes = mnl_attr_get_u64(attr);
		break;
	case WGPEER_A_TX_BYTES:
		if (mnl_attr_validate(attr, MNL_TYPE_U64) < 0)
			return MNL_CB_ERROR;
		peer->tx_bytes = mnl_attr_get_u64(attr);
		break;
	case WGPEER_A_ALLOWEDIPS:
		if (mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0)
			return MNL_CB_ERROR;
		return nl_attr_parse_nested(attr, allowedips_attr_cb, peer);
	case WGPEER_A_FLAGS:
	case WGPEER_A_PROTOCOL_VERSION:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			return MNL_CB_ERROR;
		break;
	default:
		break; /* unknown: skip */
	}
	return MNL_CB_OK;
}

static void
peer_clear(struct wg_peer *p)
{
	explicit_bzero(p->preshared_key, sizeof(p->preshared_key));
	free(p->allowedips);
	memset(p, 0, sizeof(*p));
}

/*
 * One peer of a dump message. A peer with the public key of the device's last peer
 * continues it (its allowed IPs did not fit in the previous message).
 */
static int
peers_attr_cb(const struct nlattr *attr, void *data)
{
	struct wg_device *dev = data;
	struct wg_peer tmp = { 0 };
	struct wg_peer *last, *p;
	int ret = MNL_CB_ERROR;

	if (mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0)
		return MNL_CB_ERROR;
	if (nl_attr_parse_nested(attr, peer_attr_cb, &tmp) != MNL_CB_OK)
		goto out;
	if (!(tmp.flags & WG_PEER_F_HAS_PUBLIC_KEY))
		goto out;

	last = dev->n_peers ? &dev->peers[dev->n_peers - 1] : NULL;
	if (last != NULL && !memcmp(last->public_key, tmp.public_key, WG_KEY_LEN)) {
		for (size_t i = 0; i < tmp.n_allowedips; i++) {
			const struct wg_allowedip *ip = &tmp.allowedips[i];

			if (wg_peer_add_allowedip(last, ip->family, &ip->ip6, ip->cidr) < 0)
				goto out;
		}
		ret = MNL_CB_OK;
		goto out;
	}
	if (wg_device_add_peer(dev, &p) < 0)
		goto out;
	*p = tmp; /* moves the allowed IPs */
	memset(&tmp, 0, sizeof(tmp));
	ret = MNL_CB_OK;
out:
	peer_clear(&tmp);
	return ret;
}

static int
device_attr_cb(const struct nlattr *attr, void *data)
{
	struct wg_device *dev = data;

	switch (mnl_attr_get_type(attr)) {
	case WGDEVICE_A_IFINDEX:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			return MNL_CB_ERROR;
		dev->ifindex = mnl_attr_get_u32(attr);
		break;
	case WGDEVICE_A_IFNAME:
		if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0 ||
			mnl_attr_get_payload_len(attr) > IFNAMSIZ ||
			strnlen(mnl_attr_get_str(attr), IFNAMSIZ) == IFNAMSIZ)
			return MNL_CB_ERROR;
		strcpy(dev->name, mnl_attr_get_str(attr));
		break;
	case WGDEVICE_A_PRIVATE_KEY:
		if (!attr_len_is(attr, WG_KEY_LEN))
			return MNL_CB_ERROR;
		memcpy(dev->private_key, mnl_attr_get_payload(attr), WG_KEY_LEN);
		dev->flags |= WG_DEVICE_F_HAS_PRIVATE_KEY;
		break;
	case WGDEVICE_A_PUBLIC_KEY:
		if (!attr_len_is(attr, WG_KEY_LEN))
			return MNL_CB_ERROR;
		memcpy(dev->public_key, mnl_attr_get_payload(attr), WG_KEY_LEN);
		dev->flags |= WG_DEVICE_F_HAS_PUBLIC_KEY;
		break;
	case WGDEVICE_A_LISTEN_PORT:
		if (mnl_attr_validate(attr, MNL_TYPE_U16) < 0)
			return MNL_CB_ERROR;
		dev->listen_port = mnl_attr_get_u16(attr);
		dev->flags |= WG_DEVICE_F_HAS_LISTEN_PORT;
		break;
	case WGDEVICE_A_FWMARK:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			return MNL_CB_ERROR;
		dev->fwmark = mnl_attr_get_u32(attr);
		dev->flags |= WG_DEVICE_F_HAS_FWMARK;
		break;
	case WGDEVICE_A_PEERS:
		if (mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0)
			return MNL_CB_ERROR;
		return nl_attr_parse_nested(attr, peers_attr_cb, dev);
	case WGDEVICE_A_FLAGS:
		if (mnl_attr_validate(attr, MNL_TYPE_U32) < 0)
			return MNL_CB_ERROR;
		break;
	default:
		break; /* unknown: skip */
	}
	return MNL_CB_OK;
}

int
wg_genl_parse_dump_msg(const struct nlmsghdr *nlh, struct wg_device *dev)
{
	if (nlh->nlmsg_len < NLMSG_HDRLEN + GENL_HDRLEN)
		return -EPROTO;
	if (nl_attr_parse(nlh, GENL_HDRLEN, device_attr_cb, dev) != MNL_CB_OK)
		return -EINVAL;
	return 0;
}

static int
dump_msg_cb(const struct nlmsghdr *nlh, void *data)
{
	return wg_genl_parse_dump_msg(nlh, data);
}

int
wg_genl_get_device(struct wg_genl *genl, const char *ifname, struct wg_device **ret_dev)
{
	struct wg_device *dev = NULL;
	struct nlmsghdr *nlh;
	bool intr;
	int r;

	for (int attempt = 0; attempt < WG_GENL_DUMP_RETRIES; attempt++) {
		r = wg_device_new(&dev, ifname);
		if (r < 0)
			return r;
		nlh = genl_msg_start(genl->sbuf, genl->family, NLM_F_ACK | NLM_F_DUMP,
			WG_CMD_GET_DEVICE, WG_GENL_VERSION);
		mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, ifname);
		nl_sock_prepare(&genl->nl, nlh);
		r = nl_sock_talk(&genl->nl, nlh, dump_msg_cb, dev, &intr);
		if (r == 0 && !intr) {
			*ret_dev = dev;
			return 0;
		}
		wg_device_free(dev);
		dev = NULL;
		if (r < 0)
			return r;
		/* NLM_F_DUMP_INTR: the device changed under the dump; read it again */
	}
	return -EAGAIN;
}

/* ---- setting a device ---- */

static struct nlmsghdr *
set_msg_start(struct wg_genl *genl, const struct wg_device *dev, bool first)
{
	struct nlmsghdr *nlh = genl_msg_start(genl->sbuf, genl->family, NLM_F_ACK,
		WG_CMD_SET_DEVICE, WG_GENL_VERSION);

	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, dev->name);
	if (!first)
		return nlh;
	/* Device attributes go in the first message only (REPLACE_PEERS above all). */
	if (dev->flags & WG_DEVICE_F_REPLACE_PEERS)
		mnl_attr_put_u32(nlh, WGDEVICE_A_FLAGS, WGDEVICE_F_REPLACE_PEERS);
	if (dev->flags & WG_DEVICE_F_HAS_PRIVATE_KEY)
		mnl_attr_put(nlh, WGDEVICE_A_PRIVATE_KEY, WG_KEY_LEN, dev->private_key);
	if (dev->flags & WG_DEVICE_F_HAS_LISTEN_PORT)
		mnl_attr_put_u16(nlh, WGDEVICE_A_LISTEN_PORT, dev->listen_port);
	if (dev->flags & WG_DEVICE_F_HAS_FWMARK)
		mnl_attr_put_u32(nlh, WGDEVICE_A_FWMARK, dev->fwmark);
	return nlh;
}

/* The peer's own attributes: all of them when @head, its public key only otherwise. */
static bool
put_peer_head(struct nlmsghdr *nlh, const struct wg_peer *p, bool head)
{
	uint32_t flags = 0;

	if (!mnl_attr_put_check(nlh, NL_SEND_BUF, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, p->public_key))
		return false;
	if (!head)
		return true;
	if (p->flags & WG_PEER_F_REMOVE_ME)
		flags |= WGPEER_F_REMOVE_ME;
	if (p->flags & WG_PEER_F_REPLACE_ALLOWEDIPS)
		flags |= WGPEER_F_REPLACE_ALLOWEDIPS;
	if (p->flags & WG_PEER_F_UPDATE_ONLY)
		flags |= WGPEER_F_UPDATE_ONLY;
	if (flags && !mnl_attr_put_u32_check(nlh, NL_SEND_BUF, WGPEER_A_FLAGS, flags))
		return false;
	if (p->flags & WG_PEER_F_REMOVE_ME)
		return true;
	if ((p->flags & WG_PEER_F_HAS_PRESHARED_KEY) &&
		!mnl_attr_put_check(nlh, NL_SEND_BUF, WGPEER_A_PRESHARED_KEY, WG_KEY_LEN,
			p->preshared_key))
		return false;
	if (p->endpoint.addr.sa_family == AF_INET &&
		!mnl_attr_put_check(nlh, NL_SEND_BUF, WGPEER_A_ENDPOINT, sizeof(p->endpoint.addr4),
			&p->endpoint.addr4))
		return false;
	if (p->endpoint.addr.sa_family == AF_INET6 &&
		!mnl_attr_put_check(nlh, NL_SEND_BUF, WGPEER_A_ENDPOINT, sizeof(p->endpoint.addr6),
			&p->endpoint.addr6))
		return false;
	if ((p->flags & WG_PEER_F_HAS_PERSISTENT_KEEPALIVE) &&
		!mnl_attr_put_u16_check(nlh, NL_SEND_BUF, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL,
			p->persistent_keepalive))
		return false;
	return true;
}

static bool
put_allowedip(struct nlmsghdr *nlh, const struct wg_allowedip *ip)
{
	struct nlattr *nest = mnl_attr_nest_start_check(nlh, NL_SEND_BUF, 0);
	size_t alen = ip->family == AF_INET ? sizeof(ip->ip4) : sizeof(ip->ip6);

	if (nest == NULL)
		return false;
	if (!mnl_attr_put_u16_check(nlh, NL_SEND_BUF, WGALLOWEDIP_A_FAMILY, ip->family) ||
		!mnl_attr_put_check(nlh, NL_SEND_BUF, WGALLOWEDIP_A_IPADDR, alen, &ip->ip6) ||
		!mnl_attr_put_u8_check(nlh, NL_SEND_BUF, WGALLOWEDIP_A_CIDR_MASK, ip->cidr)) {
		mnl_attr_nest_cancel(nlh, nest);
		return false;
	}
	mnl_attr_nest_end(nlh, nest);
	return true;
}

static int
set_send(struct wg_genl *genl, struct nlmsghdr *nlh)
{
	int r;

	nl_sock_prepare(&genl->nl, nlh);
	r = nl_sock_talk(&genl->nl, nlh, NULL, NULL, NULL);
	/* the request may have carried the private key or preshared keys */
	explicit_bzero(genl->sbuf, NL_SEND_BUF);
	return r;
}

/*
 * Fill one message with as many peers (from peer *pi, allowed IP *ji) as fit. Returns the
 * number of peers (whole or partial) put in, advancing *pi and *ji.
 */
static size_t
fill_peers(struct nlmsghdr *nlh, const struct wg_device *dev, size_t *pi, size_t *ji)
{
	struct nlattr *peers = mnl_attr_nest_start_check(nlh, NL_SEND_BUF, WGDEVICE_A_PEERS);
	size_t n = 0;

	if (peers == NULL)
		return 0;
	while (*pi < dev->n_peers) {
		const struct wg_peer *p = &dev->peers[*pi];
		size_t n_ips = (p->flags & WG_PEER_F_REMOVE_ME) ? 0 : p->n_allowedips;
		struct nlattr *pn = mnl_attr_nest_start_check(nlh, NL_SEND_BUF, 0);
		struct nlattr *an;
		size_t added = 0;

		if (pn == NULL)
			break;
		if (!put_peer_head(nlh, p, *ji == 0)) {
			mnl_attr_nest_cancel(nlh, pn);
			break;
		}
		if (*ji < n_ips) {
			an = mnl_attr_nest_start_check(nlh, NL_SEND_BUF, WGPEER_A_ALLOWEDIPS);
			if (an != NULL) {
				while (*ji + added < n_ips && put_allowedip(nlh, &p->allowedips[*ji + added]))
					added++;
				if (added)
					mnl_attr_nest_end(nlh, an);
				else
					mnl_attr_nest_cancel(nlh, an);
			}
			if (added == 0) {
				/* not even one allowed IP fits: the whole peer goes in the next message */
				mnl_attr_nest_cancel(nlh, pn);
				break;
			}
			*ji += added;
			if (*ji < n_ips) {
				/* continues in the next message, public key first */
				mnl_attr_nest_end(nlh, pn);
				n++;
				break;
			}
		}
		mnl_attr_nest_end(nlh, pn);
		n++;
		(*pi)++;
		*ji = 0;
	}
	if (n)
		mnl_attr_nest_end(nlh, peers);
	else
		mnl_attr_nest_cancel(nlh, peers);
	return n;
}

int
wg_genl_set_device(struct wg_genl *genl, const struct wg_device *dev)
{
	size_t pi = 0, ji = 0;
	bool first = true;
	int r;

	for (;;) {
		struct nlmsghdr *nlh = set_msg_start(genl, dev, first);
		size_t n = fill_peers(nlh, dev, &pi, &ji);

		if (n == 0 && !first && pi < dev->n_peers) {
			/* one peer header alone does not fit in an empty message: cannot happen */
			explicit_bzero(genl->sbuf, NL_SEND_BUF);
			return -EMSGSIZE;
		}
		r = set_send(genl, nlh);
		if (r < 0)
			return r;
		first = false;
		if (pi >= dev->n_peers)
			return 0;
	}
}
