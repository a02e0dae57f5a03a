/* SPDX-License-Identifier: MIT */
#ifndef COMMON_CLIENT_H
#define COMMON_CLIENT_H

/*
 * Outbound HTTPS requests to the control plane with JSON bodies (libcurl), shared by
 * edge-keyd (the gateway) and enrollctl (the operator). The control plane's CA can be
 * pinned: with @ca_file only certificates chaining to it are accepted, never the system
 * store. Plain http:// is refused unless allow_http is set (tests and loopback only).
 */

#include <stdbool.h>
#include <stddef.h>

#include <jansson.h>

/* A Retry-After longer than this is taken as this: a server's mistake must not park a
 * device for days. */
#define CLIENT_RETRY_AFTER_MAX 3600u

/*
 * A connection kept between requests (HTTP keep-alive): several requests to one server
 * pay for one TCP and TLS handshake, e.g. an enrollment's challenge and completion. Give
 * it in client_opts.conn; a server that closed it meanwhile is reconnected to by itself.
 * One request at a time (not thread-safe). client_conn_free(NULL) is allowed.
 */
struct client_conn;

int client_conn_new(struct client_conn **ret);
void client_conn_free(struct client_conn *conn);

struct client_opts {
	struct client_conn *conn; /* NULL: a connection of its own for this request only */
	const char *ca_file; /* PEM bundle pinned for https://, or NULL: the system store */
	bool allow_http;
	long timeout_sec; /* whole request; 0: 30 s; negative: no limit (streams) */
	long idle_sec; /* give up when nothing arrived for this long; 0: never */
	const char *bearer; /* Authorization: Bearer, or NULL */
	const char *accept; /* Accept: header; NULL: application/json */
	/*
	 * Streams: when set, each piece of a 2xx answer's body goes to @on_data as it arrives
	 * (nothing is buffered, *ret_json stays NULL); a negative return stops the transfer
	 * and is what client_request() returns. Answers other than 2xx are buffered and
	 * parsed as usual (they carry the server's error).
	 */
	int (*on_data)(const char *buf, size_t len, void *arg);
	void *arg;
	/*
	 * If set: where the answer's Retry-After goes, in seconds (at most
	 * CLIENT_RETRY_AFTER_MAX); 0 when it had none, or one that client_retry_after_parse()
	 * does not take, or when no answer came.
	 */
	unsigned int *ret_retry_after;
};

/*
 * The value of a Retry-After header (@len bytes, not NUL-terminated, optional whitespace
 * around it): delay-seconds (RFC 9110 10.2.3, 1*DIGIT) into *ret_seconds, capped at
 * CLIENT_RETRY_AFTER_MAX. Returns 0, -ENOTSUP for the other form, an HTTP-date (not used:
 * it needs a clock that agrees with the server's, which a gateway that has not reached its
 * control plane yet may not have; enrolld sends seconds), or -EINVAL for anything else.
 */
int client_retry_after_parse(const char *value, size_t len, unsigned int *ret_seconds);

/*
 * Send @method to @url with @body (NULL: none; else JSON, with Content-Type:
 * application/json). On any HTTP answer returns 0 with the status in *ret_status and the
 * parsed JSON in *ret_json (NULL if the answer was not JSON; the caller frees it).
 * Returns a negative errno if no complete answer was had (-ECONNREFUSED, -ETIMEDOUT also
 * for idle_sec, -EHOSTUNREACH, -EPERM for a refused plain http URL, -EBADMSG for a TLS
 * verification failure, -EMSGSIZE for an answer over 1 MiB, -EIO otherwise), with
 * libcurl's explanation in @errbuf; *ret_status is then the status seen (0 if none).
 */
int client_request(const struct client_opts *opts, const char *method, const char *url,
	json_t *body, long *ret_status, json_t **ret_json, char *errbuf, size_t errlen);

#endif
