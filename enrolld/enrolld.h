/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_H
#define ENROLLD_H

/*
 * enrolld's private header: configuration, the HTTP layer, metrics.
 * One header of shared types per daemon (OpenBSD style).
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define ENROLLD_DEFAULT_CONF "/etc/enrolld/enrolld.conf"
#define ENROLLD_VERSION "0.1.0"

struct enrolld_conf {
	/* [server] */
	char *listen;      /* address to bind, e.g. 127.0.0.1 or :: */
	uint16_t port;     /* TCP port (0 with unix_socket set) */
	char *unix_socket; /* path of a unix socket instead of TCP, behind a terminator */
	char *tls_cert;    /* PEM; with tls_key turns HTTPS on */
	char *tls_key;
	long max_body;        /* bytes */
	long max_connections; /* concurrent connections */
	long conn_timeout;    /* seconds of inactivity before a connection is closed */
	/* [state] */
	char *db_path;
	/* [auth] files holding tokens, mode 0600 */
	char *admin_token_file;
	char *provisioning_token_file;
	/* [attestation] */
	char *ek_ca_dir;
};

/* conf.c */
int conf_load(struct enrolld_conf *ret, const char *path, char *errbuf, size_t errlen);
void conf_clear(struct enrolld_conf *conf);

/* http.c: the HTTP server and request plumbing shared by every handler */
struct http_server;
struct http_request;

/*
 * A handler fills *ret_body (owned by the caller after return) and returns an HTTP status,
 * or returns a negative errno and sets an error with http_error(), which the server turns
 * into {"error": {"code", "message"}} with the status of the errno table.
 */
typedef int (*http_handler)(struct http_request *req, json_t **ret_body, void *ctx);
/* For non-JSON answers (metrics, event streams): *ret_text is freed by the server. */
typedef int (*http_text_handler)(struct http_request *req, char **ret_text,
	const char **ret_content_type, void *ctx);

struct http_route {
	const char *method;
	const char *pattern; /* "/v1/devices/{id}": {name} matches one path segment */
	http_handler handler;
	unsigned int auth; /* HTTP_AUTH_* that may call it */
	http_text_handler text_handler; /* instead of handler, for non-JSON answers */
};

enum {
	HTTP_AUTH_NONE = 1U << 0,   /* anyone (device-facing, health) */
	HTTP_AUTH_ADMIN = 1U << 1,  /* the admin token */
	HTTP_AUTH_TENANT = 1U << 2, /* a tenant-scoped token */
	HTTP_AUTH_PROVISION = 1U << 3,
};

struct http_config {
	const char *listen;
	uint16_t port;
	const char *unix_socket;
	const char *tls_cert_pem; /* contents, not paths */
	const char *tls_key_pem;
	size_t max_body;
	unsigned int max_connections;
	unsigned int conn_timeout;
	const struct http_route *routes;
	size_t n_routes;
	void *ctx;
	/* Resolve a bearer token to a role (HTTP_AUTH_*) and, for tenant tokens, the tenant. */
	int (*authenticate)(void *ctx, const char *token, unsigned int *ret_role,
		char *ret_tenant, size_t tenant_len);
};

int http_server_start(struct http_server **ret, const struct http_config *cfg);
void http_server_stop(struct http_server *srv);
/* The TCP port actually bound (useful with port 0 in tests). */
uint16_t http_server_port(const struct http_server *srv);

const char *http_request_method(const struct http_request *req);
const char *http_request_path(const struct http_request *req);
/* The i-th {name} segment of the matched pattern, or NULL. */
const char *http_request_param(const struct http_request *req, unsigned int i);
/* A query-string argument, or NULL. */
const char *http_request_query(const struct http_request *req, const char *key);
/* The parsed JSON body; -EBADMSG (with an error set) if absent or not a JSON object. */
int http_request_json(struct http_request *req, json_t **ret_body);
unsigned int http_request_role(const struct http_request *req);
/* For HTTP_AUTH_TENANT: the tenant the token is scoped to; "" otherwise. */
const char *http_request_tenant(const struct http_request *req);
/*
 * Record the error a handler returns: a stable machine code ("invalid_body") and a
 * message for a person. Returns @err so a handler can `return http_error(req, -EINVAL, ...)`.
 */
int http_error(struct http_request *req, int err, const char *code, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* The HTTP status for a negative errno (one table for the whole API). */
unsigned int http_status_of(int err);

/* metrics.c */
void metrics_observe_request(const char *route, unsigned int status, double seconds);
/* Prometheus text exposition of everything recorded; caller frees. */
char *metrics_render(void);

#endif
