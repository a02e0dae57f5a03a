// SPDX-License-Identifier: MIT
/*
 * The generic-netlink backend against a scripted kernel: libmnl's socket calls are
 * wrapped (-Wl,--wrap, see the Makefile), so every message we send is captured and
 * every reply is one the test wrote. Covers: family resolution, a dump whose peer's
 * allowed IPs span two messages, NLM_F_DUMP_INTR (the dump is read again), errors with
 * extended ack (capped and uncapped), malformed and truncated attributes, and a large
 * set split across messages without repeating REPLACE_ALLOWEDIPS or the private key.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <arpa/inet.h>
#include <cmocka.h>
#include <libmnl/libmnl.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/wireguard.h>

#include "common/nl.h"
#include "common/rtnl.h"
#include "common/wg.h"

#define FAMILY_ID 0x21
#define MAX_SENT 256
#define MAX_QUEUED 64

/* ---- the scripted kernel ---- */

struct dgram {
	uint8_t *buf;
	size_t len;
};

static struct {
	uint8_t *sent[MAX_SENT];
	size_t n_sent;
	struct dgram queue[MAX_QUEUED];
	size_t q_head, q_tail;
	/* what to answer a WG_CMD_GET_DEVICE dump: a list of scripts, one per dump */
	void (*dump_script[4])(uint32_t seq);
	size_t n_dumps;
	int set_error;		/* errno to fail WG_CMD_SET_DEVICE with (0: ACK) */
	const char *set_error_msg;
	bool set_error_capped;
	bool rtnl;		/* answer every request with an ACK, as rtnetlink would */
} K;

static void
k_reset(void)
{
	for (size_t i = 0; i < K.n_sent; i++)
		free(K.sent[i]);
	for (size_t i = K.q_head; i < K.q_tail; i++)
		free(K.queue[i].buf);
	memset(&K, 0, sizeof(K));
}

static void
k_queue(const void *buf, size_t len)
{
	assert_true(K.q_tail < MAX_QUEUED);
	K.queue[K.q_tail].buf = malloc(len);
	memcpy(K.queue[K.q_tail].buf, buf, len);
	K.queue[K.q_tail].len = len;
	K.q_tail++;
}

static struct nlmsghdr *
k_msg(void *buf, uint16_t type, uint16_t flags, uint32_t seq)
{
	struct nlmsghdr *nlh = mnl_nlmsg_put_header(buf);

	nlh->nlmsg_type = type;
	nlh->nlmsg_flags = flags;
	nlh->nlmsg_seq = seq;
	nlh->nlmsg_pid = 4242;
	return nlh;
}

/* NLMSG_ERROR for the request @req: error 0 is an ACK. */
static void
k_error(const struct nlmsghdr *req, int error, const char *msg, bool capped)
{
	uint8_t buf[8192] = { 0 };
	struct nlmsghdr *nlh = k_msg(buf, NLMSG_ERROR, 0, req->nlmsg_seq);
	struct nlmsgerr *e = mnl_nlmsg_put_extra_header(nlh, sizeof(*e));

	e->error = error;
	e->msg = *req;
	if (!capped) {
		/* the whole request is echoed before the TLVs */
		size_t plen = req->nlmsg_len - sizeof(*req);
		void *p = mnl_nlmsg_put_extra_header(nlh, NLMSG_ALIGN(plen));

		memcpy(p, (const uint8_t *)req + sizeof(*req), plen);
	} else {
		nlh->nlmsg_flags |= NLM_F_CAPPED;
	}
	if (msg != NULL) {
		nlh->nlmsg_flags |= NLM_F_ACK_TLVS;
		mnl_attr_put_strz(nlh, NLMSGERR_ATTR_MSG, msg);
	}
	k_queue(buf, nlh->nlmsg_len);
}

static void
k_done(uint32_t seq, uint16_t flags)
{
	uint8_t buf[64] = { 0 };
	struct nlmsghdr *nlh = k_msg(buf, NLMSG_DONE, NLM_F_MULTI | flags, seq);
	int *err = mnl_nlmsg_put_extra_header(nlh, sizeof(int));

	*err = 0;
	k_queue(buf, nlh->nlmsg_len);
}

static struct nlmsghdr *
k_genl(void *buf, uint16_t type, uint16_t flags, uint32_t seq, uint8_t cmd)
{
	struct nlmsghdr *nlh = k_msg(buf, type, flags, seq);
	struct genlmsghdr *g = mnl_nlmsg_put_extra_header(nlh, sizeof(*g));

	g->cmd = cmd;
	g->version = 1;
	return nlh;
}

int __wrap_mnl_socket_sendto(const struct mnl_socket *nl, const void *buf, size_t len);
ssize_t __wrap_mnl_socket_recvfrom(const struct mnl_socket *nl, void *buf, size_t bufsiz);
struct mnl_socket *__wrap_mnl_socket_open2(int bus, int flags);
int __wrap_mnl_socket_bind(struct mnl_socket *nl, unsigned int groups, pid_t pid);
int __wrap_mnl_socket_setsockopt(const struct mnl_socket *nl, int type, void *buf,
	socklen_t len);
unsigned int __wrap_mnl_socket_get_portid(const struct mnl_socket *nl);
int __wrap_mnl_socket_close(struct mnl_socket *nl);

static int fake_socket;

struct mnl_socket *
__wrap_mnl_socket_open2(int bus, int flags)
{
	return (struct mnl_socket *)&fake_socket;
}

int
__wrap_mnl_socket_bind(struct mnl_socket *nl, unsigned int groups, pid_t pid)
{
	return 0;
}

int
__wrap_mnl_socket_setsockopt(const struct mnl_socket *nl, int type, void *buf, socklen_t len)
{
	return 0;
}

unsigned int
__wrap_mnl_socket_get_portid(const struct mnl_socket *nl)
{
	return 4242;
}

int
__wrap_mnl_socket_close(struct mnl_socket *nl)
{
	return 0;
}

int
__wrap_mnl_socket_sendto(const struct mnl_socket *nl, const void *buf, size_t len)
{
	const struct nlmsghdr *req = buf;
	const struct genlmsghdr *g = mnl_nlmsg_get_payload(req);
	uint8_t out[4096] = { 0 };
	struct nlmsghdr *nlh;

	assert_true(K.n_sent < MAX_SENT);
	K.sent[K.n_sent] = malloc(len);
	memcpy(K.sent[K.n_sent++], buf, len);

	if (K.rtnl) {
		/* rtnetlink: RTM_NEWLINK has the number of GENL_ID_CTRL, so the test says which */
		k_error(req, 0, NULL, true);
	} else if (req->nlmsg_type == GENL_ID_CTRL) {
		nlh = k_genl(out, GENL_ID_CTRL, 0, req->nlmsg_seq, CTRL_CMD_NEWFAMILY);
		mnl_attr_put_strz(nlh, CTRL_ATTR_FAMILY_NAME, "wireguard");
		mnl_attr_put_u16(nlh, CTRL_ATTR_FAMILY_ID, FAMILY_ID);
		k_queue(out, nlh->nlmsg_len);
		k_error(req, 0, NULL, true);
	} else if (g->cmd == WG_CMD_GET_DEVICE) {
		assert_true(K.n_dumps < 4 && K.dump_script[K.n_dumps] != NULL);
		K.dump_script[K.n_dumps++](req->nlmsg_seq);
	} else if (g->cmd == WG_CMD_SET_DEVICE) {
		if (K.set_error)
			k_error(req, -K.set_error, K.set_error_msg, K.set_error_capped);
		else
			k_error(req, 0, NULL, true);
	}
	return (int)len;
}

ssize_t
__wrap_mnl_socket_recvfrom(const struct mnl_socket *nl, void *buf, size_t bufsiz)
{
	struct dgram *d;
	size_t len;

	if (K.q_head == K.q_tail) {
		errno = EAGAIN;
		return -1;
	}
	d = &K.queue[K.q_head++];
	len = d->len < bufsiz ? d->len : bufsiz;
	memcpy(buf, d->buf, len);
	free(d->buf);
	d->buf = NULL;
	return (ssize_t)len;
}

/* ---- building dump replies ---- */

static uint8_t KEY_A[WG_KEY_LEN], KEY_B[WG_KEY_LEN];

static void
put_allowedip4(struct nlmsghdr *nlh, uint32_t host_order, uint8_t cidr)
{
	struct nlattr *n = mnl_attr_nest_start(nlh, 0);
	uint32_t a = htonl(host_order);

	mnl_attr_put_u16(nlh, WGALLOWEDIP_A_FAMILY, AF_INET);
	mnl_attr_put(nlh, WGALLOWEDIP_A_IPADDR, 4, &a);
	mnl_attr_put_u8(nlh, WGALLOWEDIP_A_CIDR_MASK, cidr);
	mnl_attr_nest_end(nlh, n);
}

/* Message 1: device attrs, peer A with 3 allowed IPs; message 2: peer A continued with
 * 2 more, then peer B with 1. */
static void
dump_split(uint32_t seq, uint16_t extra_flags)
{
	uint8_t buf[4096] = { 0 };
	struct nlmsghdr *nlh;
	struct nlattr *peers, *peer, *ips;
	int64_t ts[2] = { 1700000000, 5 };

	nlh = k_genl(buf, FAMILY_ID, NLM_F_MULTI | extra_flags, seq, WG_CMD_GET_DEVICE);
	mnl_attr_put_u32(nlh, WGDEVICE_A_IFINDEX, 7);
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, "wgt0");
	mnl_attr_put_u16(nlh, WGDEVICE_A_LISTEN_PORT, 51820);
	mnl_attr_put(nlh, WGDEVICE_A_PUBLIC_KEY, WG_KEY_LEN, KEY_B);
	mnl_attr_put_u16(nlh, 99, 1); /* an attribute from a future kernel: skipped */
	peers = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
	peer = mnl_attr_nest_start(nlh, 0);
	mnl_attr_put(nlh, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, KEY_A);
	mnl_attr_put(nlh, WGPEER_A_LAST_HANDSHAKE_TIME, sizeof(ts), ts);
	mnl_attr_put_u64(nlh, WGPEER_A_RX_BYTES, 1000);
	mnl_attr_put_u64(nlh, WGPEER_A_TX_BYTES, 2000);
	mnl_attr_put_u16(nlh, WGPEER_A_PERSISTENT_KEEPALIVE_INTERVAL, 25);
	mnl_attr_put_u32(nlh, WGPEER_A_PROTOCOL_VERSION, 1);
	ips = mnl_attr_nest_start(nlh, WGPEER_A_ALLOWEDIPS);
	for (uint32_t i = 1; i <= 3; i++)
		put_allowedip4(nlh, 0x0a000000 + i, 32);
	mnl_attr_nest_end(nlh, ips);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, peers);
	k_queue(buf, nlh->nlmsg_len);

	memset(buf, 0, sizeof(buf));
	nlh = k_genl(buf, FAMILY_ID, NLM_F_MULTI | extra_flags, seq, WG_CMD_GET_DEVICE);
	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, "wgt0");
	peers = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
	peer = mnl_attr_nest_start(nlh, 0);
	mnl_attr_put(nlh, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, KEY_A);
	ips = mnl_attr_nest_start(nlh, WGPEER_A_ALLOWEDIPS);
	for (uint32_t i = 4; i <= 5; i++)
		put_allowedip4(nlh, 0x0a000000 + i, 32);
	mnl_attr_nest_end(nlh, ips);
	mnl_attr_nest_end(nlh, peer);
	peer = mnl_attr_nest_start(nlh, 0);
	mnl_attr_put(nlh, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, KEY_B);
	ips = mnl_attr_nest_start(nlh, WGPEER_A_ALLOWEDIPS);
	put_allowedip4(nlh, 0xc0a80000, 24);
	mnl_attr_nest_end(nlh, ips);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, peers);
	k_queue(buf, nlh->nlmsg_len);
	k_done(seq, extra_flags);
}

static void
dump_split_clean(uint32_t seq)
{
	dump_split(seq, 0);
}

static void
dump_split_intr(uint32_t seq)
{
	dump_split(seq, NLM_F_DUMP_INTR);
}

static void
dump_no_device(uint32_t seq)
{
	uint8_t buf[64] = { 0 };
	struct nlmsghdr req = { .nlmsg_len = NLMSG_HDRLEN, .nlmsg_seq = seq };

	(void)buf;
	k_error(&req, -ENODEV, "No such device", true);
}

static int
setup(void **state)
{
	memset(KEY_A, 0xaa, sizeof(KEY_A));
	memset(KEY_B, 0xbb, sizeof(KEY_B));
	k_reset();
	return 0;
}

static int
teardown(void **state)
{
	k_reset();
	return 0;
}

static void
check_split_device(const struct wg_device *dev)
{
	char s[INET_ADDRSTRLEN];

	assert_string_equal(dev->name, "wgt0");
	assert_int_equal(dev->ifindex, 7);
	assert_int_equal(dev->listen_port, 51820);
	assert_memory_equal(dev->public_key, KEY_B, WG_KEY_LEN);
	assert_false(dev->flags & WG_DEVICE_F_HAS_PRIVATE_KEY);
	assert_int_equal(dev->n_peers, 2);
	assert_memory_equal(dev->peers[0].public_key, KEY_A, WG_KEY_LEN);
	assert_int_equal(dev->peers[0].n_allowedips, 5);
	for (size_t i = 0; i < 5; i++) {
		inet_ntop(AF_INET, &dev->peers[0].allowedips[i].ip4, s, sizeof(s));
		assert_int_equal(ntohl(dev->peers[0].allowedips[i].ip4.s_addr), 0x0a000001 + i);
		assert_int_equal(dev->peers[0].allowedips[i].cidr, 32);
	}
	assert_int_equal(dev->peers[0].last_handshake_sec, 1700000000);
	assert_int_equal(dev->peers[0].last_handshake_nsec, 5);
	assert_int_equal(dev->peers[0].rx_bytes, 1000);
	assert_int_equal(dev->peers[0].tx_bytes, 2000);
	assert_int_equal(dev->peers[0].persistent_keepalive, 25);
	assert_memory_equal(dev->peers[1].public_key, KEY_B, WG_KEY_LEN);
	assert_int_equal(dev->peers[1].n_allowedips, 1);
	assert_int_equal(dev->peers[1].allowedips[0].cidr, 24);
}

/* A peer's allowed IPs spanning two messages come back as one peer. */
static void
test_dump_merges_split_peer(void **state)
{
	struct wg_genl *genl;
	struct wg_device *dev = NULL;

	K.dump_script[0] = dump_split_clean;
	assert_int_equal(wg_genl_open(&genl), 0);
	assert_int_equal(wg_genl_get_device(genl, "wgt0", &dev), 0);
	check_split_device(dev);
	assert_int_equal(K.n_dumps, 1);
	wg_device_free(dev);
	wg_genl_close(genl);
}

/* NLM_F_DUMP_INTR: the result is thrown away and the device dumped again. */
static void
test_dump_intr_retries(void **state)
{
	struct wg_genl *genl;
	struct wg_device *dev = NULL;

	K.dump_script[0] = dump_split_intr;
	K.dump_script[1] = dump_split_intr;
	K.dump_script[2] = dump_split_clean;
	assert_int_equal(wg_genl_open(&genl), 0);
	assert_int_equal(wg_genl_get_device(genl, "wgt0", &dev), 0);
	assert_int_equal(K.n_dumps, 3);
	/* not three copies of the peers: only the clean dump's */
	check_split_device(dev);
	wg_device_free(dev);
	wg_genl_close(genl);
}

static void
test_dump_error_with_ext_ack(void **state)
{
	struct wg_genl *genl;
	struct wg_device *dev = NULL;

	K.dump_script[0] = dump_no_device;
	assert_int_equal(wg_genl_open(&genl), 0);
	assert_int_equal(wg_genl_get_device(genl, "nope0", &dev), -ENODEV);
	assert_null(dev);
	assert_string_equal(wg_genl_last_error(genl), "No such device");
	wg_genl_close(genl);
}

static void
test_set_error_with_ext_ack(void **state)
{
	struct wg_genl *genl;
	struct wg_device *dev;

	assert_int_equal(wg_device_new(&dev, "wgt0"), 0);
	dev->flags |= WG_DEVICE_F_HAS_LISTEN_PORT;
	assert_int_equal(wg_genl_open(&genl), 0);
	for (int capped = 0; capped < 2; capped++) {
		K.set_error = EINVAL;
		K.set_error_msg = "Attribute failed policy validation";
		K.set_error_capped = capped;
		assert_int_equal(wg_genl_set_device(genl, dev), -EINVAL);
		assert_string_equal(wg_genl_last_error(genl), "Attribute failed policy validation");
	}
	K.set_error = 0;
	assert_int_equal(wg_genl_set_device(genl, dev), 0);
	assert_string_equal(wg_genl_last_error(genl), "");
	wg_genl_close(genl);
	wg_device_free(dev);
}

/* nl_parse_error itself: ACK, plain error, TLVs, and garbage. */
static void
test_parse_error(void **state)
{
	uint8_t req_buf[256] = { 0 };
	struct nlmsghdr *req = k_msg(req_buf, FAMILY_ID, NLM_F_REQUEST, 9);
	char msg[64];
	struct nlmsghdr *nlh;

	mnl_attr_put_u32(req, 1, 5);
	k_error(req, -EPERM, "no", false);
	nlh = (struct nlmsghdr *)K.queue[K.q_tail - 1].buf;
	assert_int_equal(nl_parse_error(nlh, nlh->nlmsg_len, msg, sizeof(msg)), -EPERM);
	assert_string_equal(msg, "no");
	/* truncated: the length the caller has is shorter than nlmsg_len */
	assert_int_equal(nl_parse_error(nlh, nlh->nlmsg_len - 4, msg, sizeof(msg)), -EPROTO);
	/* a message too short for struct nlmsgerr */
	nlh->nlmsg_len = NLMSG_HDRLEN + 2;
	assert_int_equal(nl_parse_error(nlh, nlh->nlmsg_len, msg, sizeof(msg)), -EPROTO);
	/* a positive error is not a valid kernel error */
	k_error(req, 5, NULL, true);
	nlh = (struct nlmsghdr *)K.queue[K.q_tail - 1].buf;
	assert_int_equal(nl_parse_error(nlh, nlh->nlmsg_len, msg, sizeof(msg)), -EPROTO);
	/* an ACK */
	k_error(req, 0, NULL, true);
	nlh = (struct nlmsghdr *)K.queue[K.q_tail - 1].buf;
	assert_int_equal(nl_parse_error(nlh, nlh->nlmsg_len, msg, sizeof(msg)), 0);
	assert_string_equal(msg, "");
	/* message text not NUL-terminated: rejected, not read past */
	k_error(req, -EINVAL, "abc", true);
	nlh = (struct nlmsghdr *)K.queue[K.q_tail - 1].buf;
	((uint8_t *)nlh)[nlh->nlmsg_len - 1] = 'x';
	((uint8_t *)nlh)[nlh->nlmsg_len - 2] = 'x';
	((uint8_t *)nlh)[nlh->nlmsg_len - 3] = 'x';
	((uint8_t *)nlh)[nlh->nlmsg_len - 4] = 'x';
	assert_int_equal(nl_parse_error(nlh, nlh->nlmsg_len, msg, sizeof(msg)), -EPROTO);
}

/* ---- malformed dump messages: each rejected, none crashes ---- */

typedef void (*corrupt_fn)(struct nlmsghdr *nlh);

static struct nlmsghdr *
good_msg(uint8_t *buf)
{
	struct nlmsghdr *nlh = k_genl(buf, FAMILY_ID, NLM_F_MULTI, 1, WG_CMD_GET_DEVICE);
	struct nlattr *peers, *peer, *ips;

	mnl_attr_put_strz(nlh, WGDEVICE_A_IFNAME, "wgt0");
	peers = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
	peer = mnl_attr_nest_start(nlh, 0);
	mnl_attr_put(nlh, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, KEY_A);
	ips = mnl_attr_nest_start(nlh, WGPEER_A_ALLOWEDIPS);
	put_allowedip4(nlh, 0x0a000001, 32);
	mnl_attr_nest_end(nlh, ips);
	mnl_attr_nest_end(nlh, peer);
	mnl_attr_nest_end(nlh, peers);
	return nlh;
}

static int
parse_one(struct nlmsghdr *nlh)
{
	struct wg_device *dev;
	int r;

	assert_int_equal(wg_device_new(&dev, "wgt0"), 0);
	r = wg_genl_parse_dump_msg(nlh, dev);
	wg_device_free(dev);
	return r;
}

static void
test_malformed(void **state)
{
	uint8_t buf[4096];
	struct nlmsghdr *nlh;
	struct nlattr *a;

	memset(buf, 0, sizeof(buf));
	nlh = good_msg(buf);
	assert_int_equal(parse_one(nlh), 0);

	/* every truncation of a good message is rejected or parsed, never read past */
	for (uint32_t len = NLMSG_HDRLEN; len < nlh->nlmsg_len; len++) {
		uint8_t *copy = malloc(len);
		struct nlmsghdr *c = (struct nlmsghdr *)copy;

		memcpy(copy, buf, len);
		c->nlmsg_len = len;
		(void)parse_one(c); /* ASan/valgrind catch an overread */
		free(copy);
	}
	/* shorter than the genl header */
	nlh->nlmsg_len = NLMSG_HDRLEN + 2;
	assert_int_equal(parse_one(nlh), -EPROTO);

	/* a public key of 31 bytes */
	memset(buf, 0, sizeof(buf));
	nlh = k_genl(buf, FAMILY_ID, NLM_F_MULTI, 1, WG_CMD_GET_DEVICE);
	mnl_attr_put(nlh, WGDEVICE_A_PUBLIC_KEY, 31, KEY_A);
	assert_true(parse_one(nlh) < 0);

	/* an ifname without its NUL */
	memset(buf, 0, sizeof(buf));
	nlh = k_genl(buf, FAMILY_ID, NLM_F_MULTI, 1, WG_CMD_GET_DEVICE);
	mnl_attr_put(nlh, WGDEVICE_A_IFNAME, 4, "wgt0");
	assert_true(parse_one(nlh) < 0);

	/* a peer without a public key */
	memset(buf, 0, sizeof(buf));
	nlh = k_genl(buf, FAMILY_ID, NLM_F_MULTI, 1, WG_CMD_GET_DEVICE);
	a = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
	{
		struct nlattr *p = mnl_attr_nest_start(nlh, 0);

		mnl_attr_put_u64(nlh, WGPEER_A_RX_BYTES, 1);
		mnl_attr_nest_end(nlh, p);
	}
	mnl_attr_nest_end(nlh, a);
	assert_true(parse_one(nlh) < 0);

	/* an IPv4 family with a 16-byte address, and a /33 */
	for (int variant = 0; variant < 2; variant++) {
		struct nlattr *p, *ips, *ip;
		uint8_t addr[16] = { 10 };

		memset(buf, 0, sizeof(buf));
		nlh = k_genl(buf, FAMILY_ID, NLM_F_MULTI, 1, WG_CMD_GET_DEVICE);
		a = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
		p = mnl_attr_nest_start(nlh, 0);
		mnl_attr_put(nlh, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, KEY_A);
		ips = mnl_attr_nest_start(nlh, WGPEER_A_ALLOWEDIPS);
		ip = mnl_attr_nest_start(nlh, 0);
		mnl_attr_put_u16(nlh, WGALLOWEDIP_A_FAMILY, AF_INET);
		mnl_attr_put(nlh, WGALLOWEDIP_A_IPADDR, variant ? 4 : 16, addr);
		mnl_attr_put_u8(nlh, WGALLOWEDIP_A_CIDR_MASK, variant ? 33 : 32);
		mnl_attr_nest_end(nlh, ip);
		mnl_attr_nest_end(nlh, ips);
		mnl_attr_nest_end(nlh, p);
		mnl_attr_nest_end(nlh, a);
		assert_true(parse_one(nlh) < 0);
	}

	/* an endpoint that says AF_INET6 in the space of a sockaddr_in */
	{
		struct sockaddr_in sin = { .sin_family = AF_INET6 };
		struct nlattr *p;

		memset(buf, 0, sizeof(buf));
		nlh = k_genl(buf, FAMILY_ID, NLM_F_MULTI, 1, WG_CMD_GET_DEVICE);
		a = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
		p = mnl_attr_nest_start(nlh, 0);
		mnl_attr_put(nlh, WGPEER_A_PUBLIC_KEY, WG_KEY_LEN, KEY_A);
		mnl_attr_put(nlh, WGPEER_A_ENDPOINT, sizeof(sin), &sin);
		mnl_attr_nest_end(nlh, p);
		mnl_attr_nest_end(nlh, a);
		assert_true(parse_one(nlh) < 0);
	}

	/* an attribute whose length runs past the message */
	memset(buf, 0, sizeof(buf));
	nlh = good_msg(buf);
	a = (struct nlattr *)((uint8_t *)nlh + NLMSG_HDRLEN + GENL_HDRLEN);
	a->nla_len = 4000;
	assert_true(parse_one(nlh) < 0);

	/* PEERS that is not a nest of nests */
	memset(buf, 0, sizeof(buf));
	nlh = k_genl(buf, FAMILY_ID, NLM_F_MULTI, 1, WG_CMD_GET_DEVICE);
	a = mnl_attr_nest_start(nlh, WGDEVICE_A_PEERS);
	mnl_attr_put_u8(nlh, 0, 1);
	mnl_attr_nest_end(nlh, a);
	assert_true(parse_one(nlh) < 0);
}

/* ---- setting: splitting across messages ---- */

struct decoded {
	size_t n_msgs;
	size_t n_private_key;	/* messages carrying the private key */
	size_t n_replace_peers;	/* messages carrying REPLACE_PEERS */
	size_t n_peer_entries;
	size_t n_replace_aips;	/* peer entries with REPLACE_ALLOWEDIPS */
	size_t n_aips;
	uint8_t last_key[WG_KEY_LEN];
	size_t n_distinct_peers;
};

static int
dec_peer_cb(const struct nlattr *attr, void *data)
{
	struct decoded *d = data;

	switch (mnl_attr_get_type(attr)) {
	case WGPEER_A_PUBLIC_KEY:
		if (memcmp(d->last_key, mnl_attr_get_payload(attr), WG_KEY_LEN))
			d->n_distinct_peers++;
		memcpy(d->last_key, mnl_attr_get_payload(attr), WG_KEY_LEN);
		break;
	case WGPEER_A_FLAGS:
		if (mnl_attr_get_u32(attr) & WGPEER_F_REPLACE_ALLOWEDIPS)
			d->n_replace_aips++;
		break;
	case WGPEER_A_ALLOWEDIPS: {
		const struct nlattr *ip;

		mnl_attr_for_each_nested(ip, attr)
			d->n_aips++;
		break;
	}
	}
	return MNL_CB_OK;
}

static int
dec_dev_cb(const struct nlattr *attr, void *data)
{
	struct decoded *d = data;
	const struct nlattr *peer;

	switch (mnl_attr_get_type(attr)) {
	case WGDEVICE_A_PRIVATE_KEY:
		d->n_private_key++;
		break;
	case WGDEVICE_A_FLAGS:
		if (mnl_attr_get_u32(attr) & WGDEVICE_F_REPLACE_PEERS)
			d->n_replace_peers++;
		break;
	case WGDEVICE_A_PEERS:
		mnl_attr_for_each_nested(peer, attr) {
			d->n_peer_entries++;
			mnl_attr_parse_nested(peer, dec_peer_cb, d);
		}
		break;
	}
	return MNL_CB_OK;
}

static void
decode_sent(struct decoded *d)
{
	memset(d, 0, sizeof(*d));
	for (size_t i = 0; i < K.n_sent; i++) {
		const struct nlmsghdr *nlh = (const struct nlmsghdr *)K.sent[i];
		const struct genlmsghdr *g = mnl_nlmsg_get_payload(nlh);

		if (nlh->nlmsg_type != FAMILY_ID || g->cmd != WG_CMD_SET_DEVICE)
			continue;
		assert_true(nlh->nlmsg_len <= NL_SEND_BUF);
		assert_true(nlh->nlmsg_flags & NLM_F_ACK);
		d->n_msgs++;
		mnl_attr_parse(nlh, sizeof(*g), dec_dev_cb, d);
	}
}

static void
test_set_splits_many_peers(void **state)
{
	struct wg_genl *genl;
	struct wg_device *dev;
	struct decoded d;
	const size_t n = 5000;

	assert_int_equal(wg_device_new(&dev, "wgt0"), 0);
	dev->flags |= WG_DEVICE_F_REPLACE_PEERS | WG_DEVICE_F_HAS_PRIVATE_KEY;
	memset(dev->private_key, 0x11, WG_KEY_LEN);
	for (size_t i = 0; i < n; i++) {
		struct wg_peer *p;
		uint32_t a = htonl(0x0a000000 + (uint32_t)i);

		assert_int_equal(wg_device_add_peer(dev, &p), 0);
		p->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REPLACE_ALLOWEDIPS |
			WG_PEER_F_HAS_PERSISTENT_KEEPALIVE | WG_PEER_F_HAS_PRESHARED_KEY;
		p->persistent_keepalive = 25;
		memcpy(p->public_key, &i, sizeof(i));
		p->public_key[31] = 1;
		memset(p->preshared_key, 0x22, WG_KEY_LEN);
		assert_int_equal(wg_peer_add_allowedip(p, AF_INET, &a, 32), 0);
	}
	assert_int_equal(wg_genl_open(&genl), 0);
	assert_int_equal(wg_genl_set_device(genl, dev), 0);
	decode_sent(&d);
	assert_true(d.n_msgs > 1);
	assert_int_equal(d.n_private_key, 1);
	assert_int_equal(d.n_replace_peers, 1);
	assert_int_equal(d.n_peer_entries, n);
	assert_int_equal(d.n_distinct_peers, n);
	assert_int_equal(d.n_replace_aips, n);
	assert_int_equal(d.n_aips, n);
	wg_genl_close(genl);
	wg_device_free(dev);
}

/* One peer with 3000 allowed IPs: continued across messages, REPLACE_ALLOWEDIPS once. */
static void
test_set_splits_one_peers_allowedips(void **state)
{
	struct wg_genl *genl;
	struct wg_device *dev;
	struct wg_peer *p;
	struct decoded d;
	const size_t n = 3000;

	assert_int_equal(wg_device_new(&dev, "wgt0"), 0);
	assert_int_equal(wg_device_add_peer(dev, &p), 0);
	p->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REPLACE_ALLOWEDIPS;
	memset(p->public_key, 0x33, WG_KEY_LEN);
	for (size_t i = 0; i < n; i++) {
		uint8_t a6[16] = { 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, (uint8_t)(i >> 8),
			(uint8_t)i };

		assert_int_equal(wg_peer_add_allowedip(p, AF_INET6, a6, 128), 0);
	}
	/* and a second peer after it, which must still be sent whole */
	assert_int_equal(wg_device_add_peer(dev, &p), 0);
	p->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REMOVE_ME;
	memset(p->public_key, 0x44, WG_KEY_LEN);

	assert_int_equal(wg_genl_open(&genl), 0);
	assert_int_equal(wg_genl_set_device(genl, dev), 0);
	decode_sent(&d);
	assert_true(d.n_msgs > 1);
	assert_int_equal(d.n_replace_aips, 1);
	assert_int_equal(d.n_aips, n);
	assert_int_equal(d.n_distinct_peers, 2);
	assert_int_equal(d.n_private_key, 0);
	assert_int_equal(d.n_replace_peers, 0);
	wg_genl_close(genl);
	wg_device_free(dev);
}

/*
 * A NEW request with NLM_F_EXCL or NLM_F_REPLACE ends at its ACK: those flags share bits
 * with NLM_F_DUMP, and taking them for a dump waited forever for NLMSG_DONE (found by the
 * kernel test). The scripted kernel sends the ACK and nothing after it.
 */
static void
test_create_excl_is_not_a_dump(void **state)
{
	uint8_t buf[256] = { 0 };
	struct nl_sock s;
	struct nlmsghdr *nlh;

	K.rtnl = true;
	assert_int_equal(nl_sock_open(&s, NETLINK_ROUTE), 0);
	for (int i = 0; i < 2; i++) {
		nlh = mnl_nlmsg_put_header(buf);
		nlh->nlmsg_type = i ? RTM_NEWROUTE : RTM_NEWLINK;
		nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE |
			(i ? NLM_F_REPLACE : NLM_F_EXCL);
		mnl_nlmsg_put_extra_header(nlh, sizeof(struct ifinfomsg));
		nl_sock_prepare(&s, nlh);
		assert_int_equal(nl_sock_talk(&s, nlh, NULL, NULL, NULL), 0);
	}
	nl_sock_close(&s);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_dump_merges_split_peer, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dump_intr_retries, setup, teardown),
		cmocka_unit_test_setup_teardown(test_dump_error_with_ext_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_error_with_ext_ack, setup, teardown),
		cmocka_unit_test_setup_teardown(test_parse_error, setup, teardown),
		cmocka_unit_test_setup_teardown(test_malformed, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_splits_many_peers, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_splits_one_peers_allowedips, setup, teardown),
		cmocka_unit_test_setup_teardown(test_create_excl_is_not_a_dump, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
