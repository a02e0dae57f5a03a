// SPDX-License-Identifier: MIT
/*
 * Netlink request/response loop shared by the generic-netlink WireGuard backend and
 * rtnetlink. See nl.h.
 */

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <linux/netlink.h>

#include "common/nl.h"
#include "common/rtnl.h"

int
nl_sock_open(struct nl_sock *s, int bus)
{
	int one = 1;
	int r;

	memset(s, 0, sizeof(*s));
	s->rbuf = malloc(NL_RECV_BUF);
	if (s->rbuf == NULL)
		return -ENOMEM;
	s->mnl = mnl_socket_open2(bus, SOCK_CLOEXEC);
	if (s->mnl == NULL) {
		r = -errno;
		goto out;
	}
	/* Errors do not echo our (possibly large) request; they carry the kernel's reason. */
	if (mnl_socket_setsockopt(s->mnl, NETLINK_CAP_ACK, &one, sizeof(one)) < 0 ||
		mnl_socket_setsockopt(s->mnl, NETLINK_EXT_ACK, &one, sizeof(one)) < 0) {
		r = -errno;
		goto out;
	}
	if (mnl_socket_bind(s->mnl, 0, MNL_SOCKET_AUTOPID) < 0) {
		r = -errno;
		goto out;
	}
	s->portid = mnl_socket_get_portid(s->mnl);
	s->seq = (uint32_t)time(NULL);
	return 0;
out:
	nl_sock_close(s);
	return r;
}

void
nl_sock_close(struct nl_sock *s)
{
	if (s->mnl != NULL)
		mnl_socket_close(s->mnl);
	if (s->rbuf != NULL) {
		/* a dump of a device may have carried its private key */
		explicit_bzero(s->rbuf, NL_RECV_BUF);
		free(s->rbuf);
	}
	memset(s, 0, sizeof(*s));
}

uint32_t
nl_sock_prepare(struct nl_sock *s, struct nlmsghdr *nlh)
{
	nlh->nlmsg_seq = ++s->seq;
	nlh->nlmsg_pid = 0;
	return nlh->nlmsg_seq;
}

int
nl_attr_parse_payload(const void *payload, size_t len, mnl_attr_cb_t cb, void *data)
{
	size_t off = 0;

	while (off < len) {
		const struct nlattr *attr = (const struct nlattr *)((const uint8_t *)payload + off);
		int r;

		if (len - off < sizeof(*attr) || attr->nla_len < sizeof(*attr) ||
			attr->nla_len > len - off)
			return MNL_CB_ERROR;
		r = cb(attr, data);
		if (r <= MNL_CB_STOP)
			return r;
		off += MNL_ALIGN(attr->nla_len);
	}
	return MNL_CB_OK;
}

int
nl_attr_parse(const struct nlmsghdr *nlh, size_t offset, mnl_attr_cb_t cb, void *data)
{
	size_t hdr = MNL_NLMSG_HDRLEN + MNL_ALIGN(offset);

	if (nlh->nlmsg_len < hdr)
		return MNL_CB_ERROR;
	return nl_attr_parse_payload((const uint8_t *)nlh + hdr, nlh->nlmsg_len - hdr, cb, data);
}

int
nl_attr_parse_nested(const struct nlattr *nested, mnl_attr_cb_t cb, void *data)
{
	return nl_attr_parse_payload(mnl_attr_get_payload(nested),
		mnl_attr_get_payload_len(nested), cb, data);
}

struct nlerr_msg {
	char *buf;
	size_t len;
};

static int
ext_ack_attr_cb(const struct nlattr *attr, void *data)
{
	struct nlerr_msg *m = data;
	const char *s;
	size_t n;

	if (mnl_attr_get_type(attr) != NLMSGERR_ATTR_MSG)
		return MNL_CB_OK;
	if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0)
		return MNL_CB_ERROR;
	s = mnl_attr_get_str(attr);
	n = strnlen(s, mnl_attr_get_payload_len(attr));
	if (m->len > 0) {
		if (n >= m->len)
			n = m->len - 1;
		memcpy(m->buf, s, n);
		m->buf[n] = '\0';
	}
	return MNL_CB_OK;
}

int
nl_parse_error(const struct nlmsghdr *nlh, size_t len, char *msgbuf, size_t msglen)
{
	const struct nlmsgerr *e;
	struct nlerr_msg m = { msgbuf, msglen };
	size_t off, msg_len;

	if (msglen > 0)
		msgbuf[0] = '\0';
	if (len < NLMSG_HDRLEN || nlh->nlmsg_len < NLMSG_HDRLEN || nlh->nlmsg_len > len)
		return -EPROTO;
	if (nlh->nlmsg_type != NLMSG_ERROR)
		return -EPROTO;
	msg_len = nlh->nlmsg_len;
	if (msg_len < NLMSG_HDRLEN + sizeof(*e))
		return -EPROTO;
	e = mnl_nlmsg_get_payload(nlh);
	if (e->error > 0 || e->error < -4095)
		return -EPROTO;
	if (!(nlh->nlmsg_flags & NLM_F_ACK_TLVS))
		return e->error;

	/* The TLVs follow the error and either the whole request or (capped) its header. */
	off = NLMSG_HDRLEN + sizeof(*e);
	if (!(nlh->nlmsg_flags & NLM_F_CAPPED)) {
		if (e->msg.nlmsg_len < sizeof(struct nlmsghdr))
			return -EPROTO;
		off += NLMSG_ALIGN(e->msg.nlmsg_len - sizeof(struct nlmsghdr));
	}
	if (off > msg_len)
		return -EPROTO;
	if (off < msg_len &&
		nl_attr_parse_payload((const uint8_t *)nlh + off, msg_len - off, ext_ack_attr_cb,
			&m) != MNL_CB_OK)
		return -EPROTO;
	return e->error;
}

/* The error code NLMSG_DONE carries (a dump that failed half way), with its ext-ack text. */
static int
done_error(struct nl_sock *s, const struct nlmsghdr *nlh)
{
	const int *err;
	struct nlerr_msg m = { s->err, sizeof(s->err) };
	size_t off;

	if (nlh->nlmsg_len < NLMSG_HDRLEN + sizeof(int))
		return 0; /* old kernels send an empty DONE */
	err = mnl_nlmsg_get_payload(nlh);
	if (*err > 0 || *err < -4095)
		return -EPROTO;
	off = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(int));
	if ((nlh->nlmsg_flags & NLM_F_ACK_TLVS) && off < nlh->nlmsg_len)
		nl_attr_parse_payload((const uint8_t *)nlh + off, nlh->nlmsg_len - off,
			ext_ack_attr_cb, &m);
	return *err;
}

int
nl_sock_talk(struct nl_sock *s, const struct nlmsghdr *nlh, nl_msg_cb cb, void *data,
	bool *ret_intr)
{
	/* NLM_F_DUMP is two bits, the same as NLM_F_REPLACE and NLM_F_EXCL of a NEW request */
	bool dump = (nlh->nlmsg_flags & NLM_F_DUMP) == NLM_F_DUMP;
	uint32_t seq = nlh->nlmsg_seq;
	int cb_err = 0;
	ssize_t n;

	s->err[0] = '\0';
	if (ret_intr != NULL)
		*ret_intr = false;
	if (mnl_socket_sendto(s->mnl, nlh, nlh->nlmsg_len) < 0)
		return -errno;

	for (;;) {
		const struct nlmsghdr *m;
		size_t left;

		n = mnl_socket_recvfrom(s->mnl, s->rbuf, NL_RECV_BUF);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			/* ENOSPC: a message larger than our buffer (MSG_TRUNC) */
			return errno == ENOSPC ? -EMSGSIZE : -errno;
		}
		left = (size_t)n;
		for (m = (const struct nlmsghdr *)s->rbuf; nl_msg_ok(m, left);
			m = nl_msg_next(m, &left)) {
			int r;

			/* Not ours: a late reply to an earlier request we gave up on. */
			if (m->nlmsg_seq != seq || (m->nlmsg_pid != 0 && m->nlmsg_pid != s->portid))
				continue;
			if ((m->nlmsg_flags & NLM_F_DUMP_INTR) && ret_intr != NULL)
				*ret_intr = true;
			switch (m->nlmsg_type) {
			case NLMSG_NOOP:
				continue;
			case NLMSG_OVERRUN:
				return -ENOBUFS;
			case NLMSG_ERROR:
				r = nl_parse_error(m, left, s->err, sizeof(s->err));
				/* An ACK ends a request; an error ends anything. */
				if (r < 0)
					return r;
				if (!dump)
					return cb_err;
				continue;
			case NLMSG_DONE:
				r = done_error(s, m);
				return r < 0 ? r : cb_err;
			default:
				if (cb != NULL && cb_err == 0)
					cb_err = cb(m, data);
				if (!dump && !(nlh->nlmsg_flags & NLM_F_ACK) && !(m->nlmsg_flags & NLM_F_MULTI))
					return cb_err; /* a single answer without an ACK to wait for */
				continue;
			}
		}
		if (left != 0)
			return -EPROTO; /* a truncated message in the datagram */
	}
}
