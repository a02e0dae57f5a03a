// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the generic-netlink dump parser and the netlink error parser (what
 * the kernel, or anything that can answer on the socket, sends us). The input is a
 * sequence of netlink messages; each is folded into one device, as a real dump is, so
 * the merge of a peer continued across messages is exercised too. A successful parse
 * must leave a consistent device.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <libmnl/libmnl.h>

#include "common/nl.h"
#include "common/rtnl.h"
#include "common/wg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct wg_device *dev)
{
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *peer = &dev->peers[i];

		if (!(peer->flags & WG_PEER_F_HAS_PUBLIC_KEY) ||
			peer->n_allowedips > peer->cap_allowedips)
			abort();
		for (size_t j = 0; j < peer->n_allowedips; j++) {
			const struct wg_allowedip *aip = &peer->allowedips[j];

			if (!(aip->family == AF_INET && aip->cidr <= 32) &&
				!(aip->family == AF_INET6 && aip->cidr <= 128))
				abort();
		}
		if (i > 0 && !memcmp(peer->public_key, dev->peers[i - 1].public_key, WG_KEY_LEN))
			abort(); /* a continued peer must have been merged */
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_device *dev = NULL;
	const struct nlmsghdr *nlh;
	uint8_t *buf;
	char msg[128];
	size_t left = size;

	if (size > 1 << 20)
		return 0;
	/* an exact-size copy: ASan sees any read past the end */
	buf = malloc(size ? size : 1);
	if (buf == NULL || wg_device_new(&dev, "wgfuzz0") < 0) {
		free(buf);
		return 0;
	}
	memcpy(buf, data, size);
	for (nlh = (const struct nlmsghdr *)buf; nl_msg_ok(nlh, left);
		nlh = nl_msg_next(nlh, &left)) {
		if (nlh->nlmsg_type == NLMSG_ERROR) {
			(void)nl_parse_error(nlh, left, msg, sizeof(msg));
			continue;
		}
		if (wg_genl_parse_dump_msg(nlh, dev) < 0)
			break;
		check(dev);
	}
	wg_device_free(dev);
	free(buf);
	return 0;
}
