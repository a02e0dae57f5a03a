/* SPDX-License-Identifier: MIT */
#ifndef EDGE_KEYD_CLIENT_H
#define EDGE_KEYD_CLIENT_H

/*
 * The gateway's only way to talk to the control plane: outbound HTTPS requests with
 * JSON bodies (libcurl). The control plane's CA is pinned: only certificates chaining to
 * @ca_file are accepted, never the system store. Plain http:// is refused unless
 * allow_http is set (tests and loopback deployments only).
 */

#include <stdbool.h>

#include <jansson.h>

struct client_opts {
	const char *ca_file; /* PEM bundle pinned for https:// */
	bool allow_http;
	long timeout_sec; /* whole request; default 30 */
	const char *bearer; /* Authorization: Bearer, or NULL */
};

/*
 * POST @body (may be NULL for GET) to @url. On any HTTP answer returns 0 with the status in
 * *ret_status and the parsed JSON in *ret_json (NULL if the answer was not JSON). Returns
 * a negative errno if no answer was had (-ECONNREFUSED, -ETIMEDOUT, -EHOSTUNREACH,
 * -EPERM for a refused plain http URL, -EBADMSG for a TLS verification failure, -EIO
 * otherwise), with libcurl's explanation in @errbuf.
 */
int client_request(const struct client_opts *opts, const char *method, const char *url,
	json_t *body, long *ret_status, json_t **ret_json, char *errbuf, size_t errlen);

#endif
