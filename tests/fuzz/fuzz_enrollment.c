// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: what edge-keyd reads as JSON — the control plane's answer to
 * /v1/enroll/complete (untrusted: whoever answers on the pinned connection) and its own
 * enrollment.json (which a damaged disk can garble). The first byte picks which; the rest
 * is parsed with jansson and handed to the parser. Accepted records must be sane.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "edge-keyd/edge-keyd.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t wg_pub[WG_KEY_LEN] = { 1, 2, 3 };
	struct ekd_enrollment e;
	char err[256];
	json_t *j;
	int r;

	if (size < 1)
		return 0;
	j = json_loadb((const char *)data + 1, size - 1, JSON_DECODE_ANY, NULL);
	if (j == NULL)
		return 0;
	memset(&e, 0, sizeof(e));
	if (data[0] & 1)
		r = ekd_enrollment_from_response(&e, j, wg_pub, 1700000000,
			"https://cp.example:8443", err, sizeof(err));
	else
		r = ekd_enrollment_from_json(&e, j, err, sizeof(err));
	if (r == 0) {
		if (e.address.family != AF_INET && e.address.family != AF_INET6)
			abort();
		if (memchr(e.device_id, '\0', sizeof(e.device_id)) == NULL ||
			memchr(e.tenant, '\0', sizeof(e.tenant)) == NULL)
			abort();
	} else if (memchr(err, '\0', sizeof(err)) == NULL) {
		abort();
	}
	json_decref(j);
	return 0;
}
