// SPDX-License-Identifier: MIT
/*
 * enrolld's HTTP layer on libmicrohttpd: listening (TCP with or without TLS, or a unix
 * socket), body accumulation with a hard size limit, bearer-token authentication,
 * routing, JSON responses and the one errno -> HTTP status table of the API.
 *
 * Handlers never see a request that is too large, unauthenticated or not allowed for
 * their role: those are answered here, before anything can change.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <gnutls/gnutls.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "enrolld/enrolld.h"
#include "enrolld/x509.h"

#define HTTP_MAX_PARAMS 4
#define HTTP_TENANT_LEN 64

#define HTTP_RETIRED_MAX 16

struct http_server {
	pthread_mutex_t lock; /* mhd, retired, trust (http_server_set_trust) */
	struct MHD_Daemon *mhd;
	/* daemons replaced by a trust change: no longer accepting, finishing their connections */
	struct MHD_Daemon *retired[HTTP_RETIRED_MAX];
	char *trust_pem;
	struct http_config cfg;
	int listen_fd;
	char *unix_path;
	uint16_t port;
};

struct http_request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	const char *method;
	char *path;
	char *body;
	size_t body_len;
	bool too_large;
	const struct http_route *route;
	char *params[HTTP_MAX_PARAMS];
	unsigned int n_params;
	unsigned int role;
	char tenant[HTTP_TENANT_LEN];
	/* the error a handler recorded */
	char err_code[48];
	char err_msg[256];
	struct timespec started;
	bool has_stream;
	struct http_stream stream;
};

/* ---- errors ---- */

/* The one table that turns our negative errnos into HTTP statuses. */
unsigned int
http_status_of(int err)
{
	switch (err) {
	case -EINVAL:
	case -EBADMSG:
	case -EPROTO:
	case -ERANGE:
		return MHD_HTTP_BAD_REQUEST;
	case -EACCES:
		return MHD_HTTP_UNAUTHORIZED;
	case -EPERM:
		return MHD_HTTP_FORBIDDEN;
	case -ENOENT:
	case -ENODEV:
		return MHD_HTTP_NOT_FOUND;
	case -EEXIST:
	case -EALREADY:
	case -EBUSY:
		return MHD_HTTP_CONFLICT;
	case -ETIMEDOUT:
	case -ESTALE:
		return MHD_HTTP_GONE;
	case -E2BIG:
	case -EMSGSIZE:
		return MHD_HTTP_CONTENT_TOO_LARGE;
	case -ENOSPC:
		return MHD_HTTP_INSUFFICIENT_STORAGE;
	case -EOPNOTSUPP:
		return MHD_HTTP_METHOD_NOT_ALLOWED;
	case -EAGAIN:
		return MHD_HTTP_SERVICE_UNAVAILABLE;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

int
http_error(struct http_request *req, int err, const char *code, const char *fmt, ...)
{
	va_list ap;

	snprintf(req->err_code, sizeof(req->err_code), "%s", code);
	va_start(ap, fmt);
	vsnprintf(req->err_msg, sizeof(req->err_msg), fmt, ap);
	va_end(ap);
	return err;
}

/* ---- accessors ---- */

const char *
http_request_method(const struct http_request *req)
{
	return req->method;
}

const char *
http_request_path(const struct http_request *req)
{
	return req->path;
}

const char *
http_request_param(const struct http_request *req, unsigned int i)
{
	return i < req->n_params ? req->params[i] : NULL;
}

const char *
http_request_query(const struct http_request *req, const char *key)
{
	return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *
http_request_header(const struct http_request *req, const char *name)
{
	return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

unsigned int
http_request_role(const struct http_request *req)
{
	return req->role;
}

const char *
http_request_tenant(const struct http_request *req)
{
	return req->tenant;
}

int
http_request_client_cert(struct http_request *req, struct x509_peer **ret)
{
	const union MHD_ConnectionInfo *ci;
	const gnutls_datum_t *certs;
	const uint8_t *ders[X509_CHAIN_MAX];
	size_t lens[X509_CHAIN_MAX];
	unsigned int n = 0;

	ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_GNUTLS_SESSION);
	if (ci == NULL || ci->tls_session == NULL)
		return -ENOENT;
	/* GnuTLS did not judge the chain (no verification requested): the caller does. */
	certs = gnutls_certificate_get_peers((gnutls_session_t)ci->tls_session, &n);
	if (certs == NULL || n == 0)
		return -ENOENT;
	if (n > X509_CHAIN_MAX)
		return -E2BIG;
	for (unsigned int i = 0; i < n; i++) {
		ders[i] = certs[i].data;
		lens[i] = certs[i].size;
	}
	return x509_peer_new(ret, ders, lens, n);
}

int
http_request_json(struct http_request *req, json_t **ret_body)
{
	json_error_t jerr;
	json_t *j;

	if (req->body == NULL || req->body_len == 0)
		return http_error(req, -EBADMSG, "invalid_body", "a JSON object body is required");
	j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL)
		return http_error(req, -EBADMSG, "invalid_json", "body is not valid JSON: %s (line %d)",
			jerr.text, jerr.line);
	if (!json_is_object(j)) {
		json_decref(j);
		return http_error(req, -EBADMSG, "invalid_body", "the body must be a JSON object");
	}
	*ret_body = j;
	return 0;
}

/* ---- routing ---- */

static void
request_clear_params(struct http_request *req)
{
	for (unsigned int i = 0; i < req->n_params; i++)
		free(req->params[i]);
	req->n_params = 0;
}

/* Match @path against @pattern, capturing each {name} segment in order. */
static bool
route_match(struct http_request *req, const char *pattern, const char *path)
{
	const char *p = pattern, *s = path;

	request_clear_params(req);
	while (*p && *s) {
		if (p[0] == '{') {
			const char *close = strchr(p, '}');
			size_t n = strcspn(s, "/");

			if (close == NULL)
				return false;

			if (n == 0 || req->n_params == HTTP_MAX_PARAMS)
				return false;
			req->params[req->n_params] = strndup(s, n);
			if (req->params[req->n_params] == NULL)
				return false;
			req->n_params++;
			s += n;
			p = close + 1;
			continue;
		}
		if (*p != *s)
			return false;
		p++;
		s++;
	}
	return *p == '\0' && *s == '\0';
}

/* ---- responses ---- */

static enum MHD_Result
send_text(struct MHD_Connection *conn, unsigned int status, const char *ctype, const char *body,
	size_t len)
{
	struct MHD_Response *resp;
	enum MHD_Result r;

	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static enum MHD_Result
send_json(struct MHD_Connection *conn, unsigned int status, json_t *body)
{
	enum MHD_Result r;
	char *text;

	text = json_dumps(body, JSON_COMPACT | JSON_ENSURE_ASCII);
	if (text == NULL)
		return MHD_NO;
	r = send_text(conn, status, "application/json", text, strlen(text));
	free(text);
	return r;
}

static enum MHD_Result
send_error(struct MHD_Connection *conn, unsigned int status, const char *code, const char *msg)
{
	enum MHD_Result r;
	json_t *j;

	j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	if (j == NULL)
		return MHD_NO;
	r = send_json(conn, status, j);
	json_decref(j);
	return r;
}

/* ---- streams ---- */

void
http_request_set_stream(struct http_request *req, const struct http_stream *st)
{
	req->stream = *st;
	req->has_stream = true;
}

struct stream_ctx {
	struct http_stream st;
};

static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_ctx *sc = cls;
	ssize_t n;

	n = sc->st.read(sc->st.cls, pos, buf, max);
	if (n == HTTP_STREAM_END)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n < 0 || n == 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	return n;
}

static void
stream_free(void *cls)
{
	struct stream_ctx *sc = cls;

	if (sc->st.done != NULL)
		sc->st.done(sc->st.cls);
	free(sc);
}

/*
 * Queue a streamed 200 answer. On failure the stream's done() has been called and
 * MHD_NO is returned (the connection is dropped).
 */
static enum MHD_Result
send_stream(struct MHD_Connection *conn, const struct http_stream *st)
{
	struct MHD_Response *resp;
	struct stream_ctx *sc;
	enum MHD_Result r;

	sc = calloc(1, sizeof(*sc));
	if (sc == NULL) {
		if (st->done != NULL)
			st->done(st->cls);
		return MHD_NO;
	}
	sc->st = *st;
	/* Small blocks: an event goes out as soon as it is read, not when a buffer fills. */
	resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 1024, stream_read, sc,
		stream_free);
	if (resp == NULL) {
		stream_free(sc);
		return MHD_NO;
	}
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE,
		st->content_type ? st->content_type : "text/event-stream");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	MHD_add_response_header(resp, "X-Accel-Buffering", "no");
	r = MHD_queue_response(conn, MHD_HTTP_OK, resp);
	MHD_destroy_response(resp);
	return r;
}

/* ---- authentication ---- */

static int
authenticate(struct http_request *req)
{
	const struct http_config *cfg = &req->srv->cfg;
	const char *auth;
	int r;

	req->role = HTTP_AUTH_NONE;
	req->tenant[0] = '\0';
	auth = MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND,
		MHD_HTTP_HEADER_AUTHORIZATION);
	if (auth == NULL)
		return 0;
	if (strncasecmp(auth, "Bearer ", 7) != 0 || cfg->authenticate == NULL)
		return http_error(req, -EACCES, "unauthorized",
			"the Authorization header must be 'Bearer <token>'");
	r = cfg->authenticate(cfg->ctx, auth + 7, &req->role, req->tenant, sizeof(req->tenant));
	if (r < 0) {
		req->role = HTTP_AUTH_NONE;
		return http_error(req, -EACCES, "unauthorized", "unknown or revoked token");
	}
	return 0;
}

/* ---- the request state machine ---- */

static double
elapsed(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

static enum MHD_Result
dispatch(struct http_request *req)
{
	const struct http_config *cfg = &req->srv->cfg;
	const struct http_route *route = NULL;
	bool path_known = false;
	json_t *body = NULL;
	unsigned int status;
	enum MHD_Result mr;
	int r;

	if (req->too_large) {
		status = MHD_HTTP_CONTENT_TOO_LARGE;
		mr = send_error(req->conn, status, "body_too_large",
			"the request body exceeds the server's limit");
		goto out;
	}
	for (size_t i = 0; i < cfg->n_routes; i++) {
		if (!route_match(req, cfg->routes[i].pattern, req->path))
			continue;
		path_known = true;
		if (strcmp(cfg->routes[i].method, req->method) == 0) {
			route = &cfg->routes[i];
			break;
		}
	}
	if (route == NULL) {
		status = path_known ? MHD_HTTP_METHOD_NOT_ALLOWED : MHD_HTTP_NOT_FOUND;
		mr = send_error(req->conn, status, path_known ? "method_not_allowed" : "not_found",
			path_known ? "this method is not allowed on this path" : "no such endpoint");
		goto out;
	}
	req->route = route;

	r = authenticate(req);
	if (r < 0)
		goto fail;
	/* HTTP_AUTH_NONE routes are open to everyone, whatever token comes along. */
	if (!(route->auth & HTTP_AUTH_NONE) && !(route->auth & req->role)) {
		if (req->role == HTTP_AUTH_NONE)
			r = http_error(req, -EACCES, "unauthorized", "a bearer token is required");
		else
			r = http_error(req, -EPERM, "forbidden",
				"this token may not call this endpoint");
		goto fail;
	}

	if (route->text_handler != NULL) {
		const char *ctype = "text/plain; charset=utf-8";
		char *text = NULL;

		r = route->text_handler(req, &text, &ctype, cfg->ctx);
		if (req->has_stream) {
			req->has_stream = false;
			free(text);
			if (r < 0) {
				if (req->stream.done != NULL)
					req->stream.done(req->stream.cls);
				goto fail;
			}
			status = MHD_HTTP_OK;
			mr = send_stream(req->conn, &req->stream);
			goto out;
		}
		if (r < 0)
			goto fail;
		status = (unsigned int)r;
		mr = send_text(req->conn, status, ctype, text ? text : "", text ? strlen(text) : 0);
		free(text);
		goto out;
	}
	r = route->handler(req, &body, cfg->ctx);
	if (r < 0)
		goto fail;
	status = (unsigned int)r;
	if (body != NULL)
		mr = send_json(req->conn, status, body);
	else
		mr = send_text(req->conn, status, "application/json", "{}", 2);
	json_decref(body);
	goto out;

fail:
	json_decref(body);
	status = http_status_of(r);
	if (req->err_code[0] == '\0')
		http_error(req, r, "internal", "internal error: %s", strerror(-r));
	mr = send_error(req->conn, status, req->err_code, req->err_msg);
out:
	metrics_observe_request(route ? route->pattern : "unmatched", status, elapsed(&req->started));
	return mr;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;

	if (req == NULL) {
		req = calloc(1, sizeof(*req));
		if (req == NULL)
			return MHD_NO;
		req->srv = srv;
		req->conn = conn;
		req->method = method;
		req->path = strdup(url);
		clock_gettime(CLOCK_MONOTONIC, &req->started);
		if (req->path == NULL) {
			free(req);
			return MHD_NO;
		}
		*con_cls = req;
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		/* Keep reading an oversized body (so the client gets our answer), store none. */
		if (!req->too_large && req->body_len + *upload_data_size > srv->cfg.max_body) {
			req->too_large = true;
			free(req->body);
			req->body = NULL;
			req->body_len = 0;
		}
		if (!req->too_large) {
			char *nb = realloc(req->body, req->body_len + *upload_data_size + 1);

			if (nb == NULL)
				return MHD_NO;
			memcpy(nb + req->body_len, upload_data, *upload_data_size);
			req->body = nb;
			req->body_len += *upload_data_size;
			req->body[req->body_len] = '\0';
		}
		*upload_data_size = 0;
		return MHD_YES;
	}
	return dispatch(req);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	enum MHD_RequestTerminationCode toe)
{
	struct http_request *req = *con_cls;

	if (req == NULL)
		return;
	request_clear_params(req);
	/* Bodies carry enrollment tokens and secrets from devices. */
	if (req->body != NULL)
		OPENSSL_cleanse(req->body, req->body_len);
	free(req->body);
	free(req->path);
	free(req);
	*con_cls = NULL;
}

static void __attribute__((format(printf, 2, 0)))
on_mhd_log(void *cls, const char *fmt, va_list ap)
{
	char buf[512];

	vsnprintf(buf, sizeof(buf), fmt, ap);
	buf[strcspn(buf, "\n")] = '\0';
	log_debug("http: %s", buf);
}

/* ---- listening ---- */

static int
listen_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd, r;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)unlink(path);
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 || chmod(path, 0660) < 0 ||
		listen(fd, 128) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int
listen_tcp(const char *addr, uint16_t port, uint16_t *ret_port)
{
	struct sockaddr_storage ss = { 0 };
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, r, one = 1;

	if (strcmp(addr, "localhost") == 0)
		addr = "127.0.0.1";
	if (inet_pton(AF_INET, addr, &sin->sin_addr) == 1) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		len = sizeof(*sin);
	} else if (inet_pton(AF_INET6, addr, &sin6->sin6_addr) == 1) {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		len = sizeof(*sin6);
	} else {
		return -EINVAL;
	}
	fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, 128) < 0 ||
		getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_port = ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port);
	return fd;
}

/*
 * One libmicrohttpd daemon on the listening socket. With TLS and a non-empty @trust, GnuTLS
 * asks every client for a certificate (GNUTLS_CERT_REQUEST, not REQUIRE: token and TPM
 * clients go on without one) and names the trusted CAs in its request; GnuTLS does not
 * verify the chain, the handler does (x509.c) against the CAs current at that moment.
 */
static struct MHD_Daemon *
start_mhd(struct http_server *srv, const char *trust)
{
	const struct http_config *cfg = &srv->cfg;
	unsigned int flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
		MHD_USE_ERROR_LOG | MHD_USE_ITC;
	bool tls = cfg->tls_cert_pem != NULL;

	if (tls)
		flags |= MHD_USE_TLS;
	if (!tls || trust == NULL || trust[0] == '\0')
		trust = NULL;
	/*
	 * Thread per connection: handlers may block on a durable LMDB commit or a WireGuard
	 * change; the connection limit bounds the threads.
	 */
	return MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
		MHD_OPTION_CONNECTION_TIMEOUT, cfg->conn_timeout,
		tls ? MHD_OPTION_HTTPS_MEM_CERT : MHD_OPTION_END, cfg->tls_cert_pem,
		MHD_OPTION_HTTPS_MEM_KEY, cfg->tls_key_pem,
		trust ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, trust,
		MHD_OPTION_END);
}

int
http_server_start(struct http_server **ret, const struct http_config *cfg)
{
	struct http_server *srv;
	int r;

	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return -ENOMEM;
	pthread_mutex_init(&srv->lock, NULL);
	srv->cfg = *cfg;
	srv->listen_fd = -1;
	if (cfg->tls_trust_pem != NULL && cfg->tls_trust_pem[0] != '\0') {
		srv->trust_pem = strdup(cfg->tls_trust_pem);
		if (srv->trust_pem == NULL) {
			r = -ENOMEM;
			goto err;
		}
	}
	srv->cfg.tls_trust_pem = NULL; /* the caller's copy may go away: srv->trust_pem */

	if (cfg->unix_socket != NULL) {
		srv->listen_fd = listen_unix(cfg->unix_socket);
		srv->unix_path = strdup(cfg->unix_socket);
		if (srv->unix_path == NULL) {
			r = -ENOMEM;
			goto err;
		}
	} else {
		srv->listen_fd = listen_tcp(cfg->listen, cfg->port, &srv->port);
	}
	if (srv->listen_fd < 0) {
		r = srv->listen_fd;
		srv->listen_fd = -1;
		goto err;
	}
	srv->mhd = start_mhd(srv, srv->trust_pem);
	if (srv->mhd == NULL) {
		r = -EIO;
		goto err;
	}
	*ret = srv;
	return 0;
err:
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	if (srv->unix_path != NULL)
		unlink(srv->unix_path);
	free(srv->unix_path);
	free(srv->trust_pem);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
	return r;
}

/* Stop retired daemons that have no connection left (none of them runs the caller then). */
static void
reap_retired(struct http_server *srv)
{
	for (unsigned int i = 0; i < HTTP_RETIRED_MAX; i++) {
		const union MHD_DaemonInfo *di;

		if (srv->retired[i] == NULL)
			continue;
		di = MHD_get_daemon_info(srv->retired[i], MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
		if (di != NULL && di->num_connections == 0) {
			MHD_stop_daemon(srv->retired[i]);
			srv->retired[i] = NULL;
		}
	}
}

int
http_server_set_trust(struct http_server *srv, const char *trust_pem)
{
	struct MHD_Daemon *fresh;
	char *copy = NULL;
	unsigned int slot;
	int r = 0;

	if (trust_pem != NULL && trust_pem[0] != '\0') {
		copy = strdup(trust_pem);
		if (copy == NULL)
			return -ENOMEM;
	}
	pthread_mutex_lock(&srv->lock);
	if (srv->cfg.tls_cert_pem == NULL ||
	    ((copy == NULL) == (srv->trust_pem == NULL) &&
		    (copy == NULL || strcmp(copy, srv->trust_pem) == 0))) {
		/* plain HTTP has no client certificates; the same trust needs no restart */
		free(copy);
		goto out;
	}
	reap_retired(srv);
	for (slot = 0; slot < HTTP_RETIRED_MAX && srv->retired[slot] != NULL; slot++)
		;
	if (slot == HTTP_RETIRED_MAX) {
		free(copy);
		r = -EBUSY;
		goto out;
	}
	/*
	 * Hand the listening socket over: the old daemon stops accepting (its connections,
	 * maybe the caller's own, finish normally), a new one with the new trust accepts.
	 */
	if (MHD_quiesce_daemon(srv->mhd) == MHD_INVALID_SOCKET) {
		free(copy);
		r = -EIO;
		goto out;
	}
	fresh = start_mhd(srv, copy);
	if (fresh == NULL) {
		/* Cannot happen short of memory; the old daemon cannot be un-quiesced. */
		srv->retired[slot] = srv->mhd;
		srv->mhd = start_mhd(srv, srv->trust_pem);
		free(copy);
		r = -EIO;
		goto out;
	}
	srv->retired[slot] = srv->mhd;
	srv->mhd = fresh;
	free(srv->trust_pem);
	srv->trust_pem = copy;
out:
	pthread_mutex_unlock(&srv->lock);
	return r;
}

void
http_server_stop(struct http_server *srv)
{
	if (srv == NULL)
		return;
	pthread_mutex_lock(&srv->lock);
	for (unsigned int i = 0; i < HTTP_RETIRED_MAX; i++)
		if (srv->retired[i] != NULL)
			MHD_stop_daemon(srv->retired[i]);
	/* libmicrohttpd closes the listening socket it was given */
	if (srv->mhd != NULL)
		MHD_stop_daemon(srv->mhd);
	else if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	pthread_mutex_unlock(&srv->lock);
	if (srv->unix_path != NULL)
		unlink(srv->unix_path);
	free(srv->unix_path);
	free(srv->trust_pem);
	pthread_mutex_destroy(&srv->lock);
	free(srv);
}

uint16_t
http_server_port(const struct http_server *srv)
{
	return srv->port;
}
