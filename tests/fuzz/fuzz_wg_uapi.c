// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the UAPI "get=1" reply parser (untrusted text from whatever listens
 * on the socket). The input is copied to a buffer of exactly its size so ASan catches a
 * read past the end; a successful parse must leave a consistent device.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/wg.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct wg_device *dev = NULL;
	char *text;

	text = malloc(size ? size : 1);
	if (text == NULL || wg_device_new(&dev, "wgfuzz0") < 0) {
		free(text);
		return 0;
	}
	memcpy(text, data, size);
	if (wg_uapi_parse_get(text, size, dev) == 0) {
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
		}
	}
	wg_device_free(dev);
	free(text);
	return 0;
}
