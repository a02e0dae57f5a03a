// SPDX-License-Identifier: MIT
/*
 * rtnetlink around WireGuard: links (wireguard, vrf), up/down, MTU, VRF enslavement,
 * addresses, routes. Every request asks for an ACK; failures keep the kernel's
 * extended-ack text (rtnl_last_error). See rtnl.h.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <net/if.h>
#include <linux/if_addr.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "common/nl.h"
#include "common/rtnl.h"

struct rtnl {
	struct nl_sock nl;
	uint8_t buf[NL_SEND_BUF];
};

int
rtnl_open(struct rtnl **ret)
{
	struct rtnl *rtnl = calloc(1, sizeof(*rtnl));
	int r;

	if (rtnl == NULL)
		return -ENOMEM;
	r = nl_sock_open(&rtnl->nl, NETLINK_ROUTE);
	if (r < 0) {
		free(rtnl);
		return r;
	}
	*ret = rtnl;
	return 0;
}

void
rtnl_close(struct rtnl *rtnl)
{
	if (rtnl == NULL)
		return;
	nl_sock_close(&rtnl->nl);
	free(rtnl);
}

const char *
rtnl_last_error(const struct rtnl *rtnl)
{
	return rtnl != NULL ? rtnl->nl.err : "";
}

static int
check_name(const char *ifname)
{
	if (ifname == NULL || ifname[0] == '\0')
		return -EINVAL;
	if (strnlen(ifname, IFNAMSIZ) == IFNAMSIZ)
		return -ENAMETOOLONG;
	return 0;
}

static struct nlmsghdr *
msg_start(struct rtnl *rtnl, uint16_t type, uint16_t flags)
{
	struct nlmsghdr *nlh;

	memset(rtnl->buf, 0, sizeof(rtnl->buf));
	nlh = mnl_nlmsg_put_header(rtnl->buf);
	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | flags;
	return nlh;
}

static int
talk(struct rtnl *rtnl, struct nlmsghdr *nlh, nl_msg_cb cb, void *data)
{
	nl_sock_prepare(&rtnl->nl, nlh);
	return nl_sock_talk(&rtnl->nl, nlh, cb, data, NULL);
}

/* ---- links ---- */

static int
link_index_cb(const struct nlmsghdr *nlh, void *data)
{
	const struct ifinfomsg *ifi;

	if (nlh->nlmsg_type != RTM_NEWLINK || nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(*ifi))
		return -EPROTO;
	ifi = mnl_nlmsg_get_payload(nlh);
	if (ifi->ifi_index <= 0)
		return -EPROTO;
	*(uint32_t *)data = (uint32_t)ifi->ifi_index;
	return 0;
}

int
rtnl_link_index(struct rtnl *rtnl, const char *ifname, uint32_t *ret_index)
{
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	uint32_t index = 0;
	int r;

	r = check_name(ifname);
	if (r < 0)
		return r;
	nlh = msg_start(rtnl, RTM_GETLINK, 0);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_u32(nlh, IFLA_EXT_MASK, RTEXT_FILTER_SKIP_STATS);
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	r = talk(rtnl, nlh, link_index_cb, &index);
	if (r < 0)
		return r;
	if (index == 0)
		return -ENODEV;
	*ret_index = index;
	return 0;
}

static int
link_add(struct rtnl *rtnl, const char *ifname, const char *kind, uint32_t vrf_table)
{
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	struct nlattr *linkinfo, *data;
	int r;

	r = check_name(ifname);
	if (r < 0)
		return r;
	nlh = msg_start(rtnl, RTM_NEWLINK, NLM_F_CREATE | NLM_F_EXCL);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	linkinfo = mnl_attr_nest_start(nlh, IFLA_LINKINFO);
	mnl_attr_put_strz(nlh, IFLA_INFO_KIND, kind);
	if (!strcmp(kind, "vrf")) {
		data = mnl_attr_nest_start(nlh, IFLA_INFO_DATA);
		mnl_attr_put_u32(nlh, IFLA_VRF_TABLE, vrf_table);
		mnl_attr_nest_end(nlh, data);
	}
	mnl_attr_nest_end(nlh, linkinfo);
	return talk(rtnl, nlh, NULL, NULL);
}

int
rtnl_link_add_wireguard(struct rtnl *rtnl, const char *ifname)
{
	return link_add(rtnl, ifname, "wireguard", 0);
}

int
rtnl_link_add_vrf(struct rtnl *rtnl, const char *ifname, uint32_t table)
{
	if (table == 0)
		return -EINVAL;
	return link_add(rtnl, ifname, "vrf", table);
}

int
rtnl_link_del(struct rtnl *rtnl, const char *ifname)
{
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	int r;

	r = check_name(ifname);
	if (r < 0)
		return r;
	nlh = msg_start(rtnl, RTM_DELLINK, 0);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	mnl_attr_put_strz(nlh, IFLA_IFNAME, ifname);
	return talk(rtnl, nlh, NULL, NULL);
}

/* RTM_NEWLINK on an existing link, addressed by index; @fill adds what changes. */
static int
link_change(struct rtnl *rtnl, const char *ifname, unsigned int flags, unsigned int change,
	int attr, uint32_t value)
{
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifi;
	uint32_t index;
	int r;

	r = rtnl_link_index(rtnl, ifname, &index);
	if (r < 0)
		return r;
	nlh = msg_start(rtnl, RTM_NEWLINK, 0);
	ifi = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifi));
	ifi->ifi_family = AF_UNSPEC;
	ifi->ifi_index = (int)index;
	ifi->ifi_flags = flags;
	ifi->ifi_change = change;
	if (attr >= 0)
		mnl_attr_put_u32(nlh, (uint16_t)attr, value);
	return talk(rtnl, nlh, NULL, NULL);
}

int
rtnl_link_set_up(struct rtnl *rtnl, const char *ifname, bool up)
{
	return link_change(rtnl, ifname, up ? IFF_UP : 0, IFF_UP, -1, 0);
}

int
rtnl_link_set_mtu(struct rtnl *rtnl, const char *ifname, uint32_t mtu)
{
	if (mtu < 68)
		return -EINVAL;
	return link_change(rtnl, ifname, 0, 0, IFLA_MTU, mtu);
}

int
rtnl_link_set_master(struct rtnl *rtnl, const char *ifname, const char *master)
{
	uint32_t master_index = 0;
	int r;

	if (master != NULL) {
		r = rtnl_link_index(rtnl, master, &master_index);
		if (r < 0)
			return r;
	}
	return link_change(rtnl, ifname, 0, 0, IFLA_MASTER, master_index);
}

/* ---- addresses and routes ---- */

static int
addr_check(int family, uint8_t prefixlen, size_t *ret_len)
{
	if (family == AF_INET && prefixlen <= 32)
		*ret_len = 4;
	else if (family == AF_INET6 && prefixlen <= 128)
		*ret_len = 16;
	else
		return -EINVAL;
	return 0;
}

int
rtnl_addr_add(struct rtnl *rtnl, const char *ifname, int family, const void *addr,
	uint8_t prefixlen)
{
	struct nlmsghdr *nlh;
	struct ifaddrmsg *ifa;
	uint32_t index;
	size_t alen;
	int r;

	r = addr_check(family, prefixlen, &alen);
	if (r < 0)
		return r;
	r = rtnl_link_index(rtnl, ifname, &index);
	if (r < 0)
		return r;
	nlh = msg_start(rtnl, RTM_NEWADDR, NLM_F_CREATE | NLM_F_REPLACE);
	ifa = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifa));
	ifa->ifa_family = (uint8_t)family;
	ifa->ifa_prefixlen = prefixlen;
	ifa->ifa_scope = RT_SCOPE_UNIVERSE;
	ifa->ifa_index = index;
	mnl_attr_put(nlh, IFA_LOCAL, alen, addr);
	mnl_attr_put(nlh, IFA_ADDRESS, alen, addr);
	return talk(rtnl, nlh, NULL, NULL);
}

static int
route_msg(struct rtnl *rtnl, uint16_t type, uint16_t flags, const char *ifname, int family,
	const void *dst, uint8_t prefixlen, uint32_t table)
{
	struct nlmsghdr *nlh;
	struct rtmsg *rtm;
	uint32_t index;
	size_t alen;
	int r;

	r = addr_check(family, prefixlen, &alen);
	if (r < 0)
		return r;
	r = rtnl_link_index(rtnl, ifname, &index);
	if (r < 0)
		return r;
	if (table == 0)
		table = RT_TABLE_MAIN;
	nlh = msg_start(rtnl, type, flags);
	rtm = mnl_nlmsg_put_extra_header(nlh, sizeof(*rtm));
	rtm->rtm_family = (uint8_t)family;
	rtm->rtm_dst_len = prefixlen;
	rtm->rtm_table = table < 256 ? (uint8_t)table : RT_TABLE_UNSPEC;
	rtm->rtm_protocol = RTPROT_BOOT;
	rtm->rtm_scope = RT_SCOPE_LINK;
	rtm->rtm_type = RTN_UNICAST;
	mnl_attr_put_u32(nlh, RTA_TABLE, table);
	mnl_attr_put(nlh, RTA_DST, alen, dst);
	mnl_attr_put_u32(nlh, RTA_OIF, index);
	return talk(rtnl, nlh, NULL, NULL);
}

int
rtnl_route_add(struct rtnl *rtnl, const char *ifname, int family, const void *dst,
	uint8_t prefixlen, uint32_t table)
{
	return route_msg(rtnl, RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, ifname, family, dst,
		prefixlen, table);
}

int
rtnl_route_del(struct rtnl *rtnl, const char *ifname, int family, const void *dst,
	uint8_t prefixlen, uint32_t table)
{
	return route_msg(rtnl, RTM_DELROUTE, 0, ifname, family, dst, prefixlen, table);
}
