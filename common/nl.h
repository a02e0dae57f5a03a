/* SPDX-License-Identifier: MIT */
#ifndef COMMON_NL_H
#define COMMON_NL_H

/*
 * The netlink plumbing under common/wg_genl.c and common/rtnl.c: a libmnl socket with
 * NETLINK_CAP_ACK and NETLINK_EXT_ACK, and one request/response loop that
 *  - checks every message's port id and sequence number,
 *  - hands data messages to a callback,
 *  - stops at the ACK, at NLMSG_DONE, or at an error, keeping the kernel's extended-ack
 *    text,
 *  - reports NLM_F_DUMP_INTR so a dump can be retried whole.
 * Private to common/.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <libmnl/libmnl.h>

/* Room for a dump message: the kernel sizes dump skbs up to 32 KiB, more on big pages. */
#define NL_RECV_BUF 65536
/* Largest request we build: far below the default socket send buffer (212992). */
#define NL_SEND_BUF 32768

struct nl_sock {
	struct mnl_socket *mnl;
	uint32_t portid;
	uint32_t seq;
	char err[256]; /* extended-ack text of the last failure, or "" */
	uint8_t *rbuf; /* NL_RECV_BUF bytes */
};

/*
 * A data message of the reply. Return 0 to go on, a negative errno to fail the request
 * (the rest of the reply is still read and dropped so the socket stays in step).
 */
typedef int (*nl_msg_cb)(const struct nlmsghdr *nlh, void *data);

int nl_sock_open(struct nl_sock *s, int bus);
void nl_sock_close(struct nl_sock *s);
/* Fill in nlmsg_seq and nlmsg_pid of @nlh; returns the sequence number used. */
uint32_t nl_sock_prepare(struct nl_sock *s, struct nlmsghdr *nlh);
/*
 * Send @nlh (prepared with nl_sock_prepare) and read the reply to the end. A dump
 * (NLM_F_DUMP) ends with NLMSG_DONE, a request with NLM_F_ACK with its ACK. *ret_intr
 * (if not NULL) is set when any message carried NLM_F_DUMP_INTR.
 */
int nl_sock_talk(struct nl_sock *s, const struct nlmsghdr *nlh, nl_msg_cb cb, void *data,
	bool *ret_intr);

/*
 * Walk the messages of a datagram: mnl_nlmsg_ok() compares nlmsg_len as an int, so a
 * length above INT_MAX passes it. These compare unsigned.
 */
static inline bool
nl_msg_ok(const struct nlmsghdr *nlh, size_t left)
{
	return left >= sizeof(*nlh) && nlh->nlmsg_len >= sizeof(*nlh) && nlh->nlmsg_len <= left;
}

static inline const struct nlmsghdr *
nl_msg_next(const struct nlmsghdr *nlh, size_t *left)
{
	size_t step = NLMSG_ALIGN(nlh->nlmsg_len);

	*left = step < *left ? *left - step : 0;
	return (const struct nlmsghdr *)((const uint8_t *)nlh + step);
}

/*
 * Strict attribute walks, drop-in for mnl_attr_parse{,_nested,_payload}: libmnl stops
 * silently at an attribute that does not fit and reports success; these return
 * MNL_CB_ERROR for any byte left over that is not a whole attribute. They return
 * MNL_CB_OK (1) or MNL_CB_ERROR (-1), or the callback's MNL_CB_STOP (0).
 */
int nl_attr_parse_payload(const void *payload, size_t len, mnl_attr_cb_t cb, void *data);
int nl_attr_parse(const struct nlmsghdr *nlh, size_t offset, mnl_attr_cb_t cb, void *data);
int nl_attr_parse_nested(const struct nlattr *nested, mnl_attr_cb_t cb, void *data);

#endif
