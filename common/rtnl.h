/* SPDX-License-Identifier: MIT */
#ifndef COMMON_RTNL_H
#define COMMON_RTNL_H

/*
 * rtnetlink for what WireGuard needs around it: links of type "wireguard" and "vrf",
 * up/down, addresses, routes, VRF enslavement. Every socket sets NETLINK_CAP_ACK and
 * NETLINK_EXT_ACK; on failure the kernel's extended-ack text is kept and returned by
 * rtnl_last_error(). Functions return 0 or a negative errno and never log above debug.
 */

#include <stdbool.h>
#include <stdint.h>

struct rtnl;

int rtnl_open(struct rtnl **ret);
void rtnl_close(struct rtnl *rtnl);
/* The kernel's extended-ack message for the last failure, or "". */
const char *rtnl_last_error(const struct rtnl *rtnl);

/* 0 if absent is not an error: returns -ENODEV. */
int rtnl_link_index(struct rtnl *rtnl, const char *ifname, uint32_t *ret_index);
int rtnl_link_add_wireguard(struct rtnl *rtnl, const char *ifname);
int rtnl_link_add_vrf(struct rtnl *rtnl, const char *ifname, uint32_t table);
int rtnl_link_del(struct rtnl *rtnl, const char *ifname);
int rtnl_link_set_up(struct rtnl *rtnl, const char *ifname, bool up);
int rtnl_link_set_mtu(struct rtnl *rtnl, const char *ifname, uint32_t mtu);
/* Enslave @ifname to @master (a VRF); master NULL releases it. */
int rtnl_link_set_master(struct rtnl *rtnl, const char *ifname, const char *master);
/* @addr is struct in_addr or struct in6_addr according to @family. */
int rtnl_addr_add(struct rtnl *rtnl, const char *ifname, int family, const void *addr,
	uint8_t prefixlen);
/* A route to @dst/@prefixlen through @ifname, in @table (0: main). Replaces an existing one. */
int rtnl_route_add(struct rtnl *rtnl, const char *ifname, int family, const void *dst,
	uint8_t prefixlen, uint32_t table);
int rtnl_route_del(struct rtnl *rtnl, const char *ifname, int family, const void *dst,
	uint8_t prefixlen, uint32_t table);

/*
 * Pure helper exposed for unit and fuzz tests: extract errno and the extended-ack
 * message (NLMSGERR_ATTR_MSG) from an NLMSG_ERROR message of @len bytes.
 * Returns the (negative) error, 0 for an ACK, -EPROTO if malformed.
 */
struct nlmsghdr;
int nl_parse_error(const struct nlmsghdr *nlh, size_t len, char *msgbuf, size_t msglen);

#endif
