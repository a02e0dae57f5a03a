// SPDX-License-Identifier: MIT
/*
 * enrolld's HTTP layer on libmicrohttpd: listening (TCP with or without TLS, or a unix
 * socket), body accumulation with a hard size limit, bearer-token authentication,
 * routing, JSON responses and the one errno -> HTTP status table of the API.
 *
 * Handlers never see a request that is too large, unauthenticated, not allowed for their
 * role, whose URL decodes to bytes no path or query may hold, or whose body is not JSON:
 * those are answered here, before anything can change.
 *
 * Connections are served event-driven: libmicrohttpd's epoll loop in a small pool of
 * threads (server.threads), so idle or slow connections cost a socket and a little memory,
 * not a thread. Limits: connections per source address, connections in all, a deadline for
 * the request headers and one for the body (enforced by the housekeeping thread below,
 * since libmicrohttpd itself only has an idle timeout), and token buckets per source and
 * in all for the routes anyone may call that cost us (ratelimit.c, limit() below). Streams
 * (SSE) never block a pool thread: a stream with nothing to send is suspended and resumed
 * by the housekeeping thread.
 */
#include <arpa/inet.h>
#include <ctype.h>
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

#include <gnutls/abstract.h>
#include <gnutls/gnutls.h>
#include <gnutls/x509.h>
#include <microhttpd.h>
#include <openssl/crypto.h>

#include "common/log.h"
#include "enrolld/enrolld.h"
#include "enrolld/x509.h"

#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_RESP_HEADERS 10
/*
 * The accept queue: a flood of connections from one source fills it faster than the pool
 * accepts and refuses them (per-source limit), and a full queue drops everyone's SYNs,
 * each costing its client a 1 s retransmission. The kernel caps it at net.core.somaxconn.
 */
#define HTTP_LISTEN_BACKLOG 4096
#define HTTP_TENANT_LEN 64

#define HTTP_RETIRED_MAX 16
/* How often parked streams are resumed (keepalives, shutdown) and header deadlines checked. */
#define HTTP_TICK_MS 500

struct stream_ctx;
struct http_conn;

struct http_server {
	pthread_mutex_t lock; /* mhd, retired, trust (http_server_set_trust) */
	struct MHD_Daemon *mhd;
	/* daemons replaced by a trust change: no longer accepting, finishing their connections */
	struct MHD_Daemon *retired[HTTP_RETIRED_MAX];
	char *trust_pem;
	bool tls; /* HTTPS: the certificate is the current tls_ident (http_server_set_tls) */
	struct http_config cfg;
	int listen_fd;
	char *unix_path;
	uint16_t port;

	/*
	 * The housekeeping thread. park_lock guards parked and stopping; it is taken before
	 * libmicrohttpd's own locks (MHD_suspend/resume_connection), never inside them.
	 * conn_lock guards the connections whose headers are due; nothing else is taken
	 * under it.
	 */
	pthread_t keeper;
	bool keeper_started;
	pthread_mutex_t park_lock;
	pthread_cond_t park_cond;
	struct stream_ctx *parked; /* suspended streams, resumed at the next tick */
	bool stopping;
	uint64_t wait_cursor; /* cfg.stream_wait's own state */
	pthread_mutex_t conn_lock;
	struct http_conn *due; /* connections still owing their request headers or body */
	struct ratelimit *limiter; /* NULL: no rate limit */
};

/*
 * Per TCP connection (libmicrohttpd's socket context): the deadline for the request
 * headers, then for its body. On the server's `due` list from accept (or the end of the
 * previous request on a kept-alive connection) until the headers are in, and again from
 * then until the body is in (if the request has one): a client that drips its headers or
 * its body is cut at the deadline, however often it sends a byte.
 */
struct http_conn {
	struct http_conn *prev, *next;
	struct http_server *srv;
	int fd;
	bool listed;
	bool body; /* the deadline is the body's */
	struct timespec deadline;
};

struct http_request {
	struct http_server *srv;
	struct MHD_Connection *conn;
	struct http_conn *hc;
	bool admitted; /* the headers were seen (first access-handler call) */
	const char *method;
	char *path;
	char *body;
	size_t body_len;
	size_t received; /* body bytes, kept or not */
	bool too_large;
	bool bad_uri; /* percent-decoding yields bytes no path or query may hold */
	const struct http_route *route;
	char *params[HTTP_MAX_PARAMS];
	unsigned int n_params;
	unsigned int role;
	char tenant[HTTP_TENANT_LEN];
	/* the verdict of admit() when the request is refused (its body is then discarded) */
	unsigned int refused;
	unsigned int retry_after; /* seconds, for Retry-After; 0: none */
	/* the error a handler recorded */
	char err_code[48];
	char err_msg[256];
	struct timespec started;
	bool has_stream;
	struct http_stream stream;
	/* what a text handler added to its answer (http_response_header) */
	const char *resp_headers[HTTP_MAX_RESP_HEADERS][2];
	unsigned int n_resp_headers;
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
	case -EMEDIUMTYPE:
		return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
	default:
		return MHD_HTTP_INTERNAL_SERVER_ERROR;
	}
}

void
http_request_set_retry_after(struct http_request *req, unsigned int seconds)
{
	req->retry_after = seconds;
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
http_response_header(struct http_request *req, const char *name, const char *value)
{
	if (req->n_resp_headers == HTTP_MAX_RESP_HEADERS)
		return -E2BIG;
	req->resp_headers[req->n_resp_headers][0] = name;
	req->resp_headers[req->n_resp_headers][1] = value;
	req->n_resp_headers++;
	return 0;
}

/* ---- what a request carries ---- */

/*
 * Whether the raw request target @uri (before libmicrohttpd decodes it) decodes to bytes a
 * path segment or a query argument may hold: every '%' starts a %HH escape; nothing, raw
 * or decoded, is a control byte (NUL included: libmicrohttpd's strings end there, so
 * /v1/devices/1%00x would be routed as /v1/devices/1) or DEL; and in the path no escape
 * decodes to '/' (it would move segment boundaries: /v1/tenants/a%2Fb is not a tenant).
 */
static bool
uri_acceptable(const char *uri)
{
	bool query = false;

	if (uri == NULL)
		return false;
	for (const char *p = uri; *p != '\0'; p++) {
		unsigned char c = (unsigned char)*p;

		if (c == '?')
			query = true;
		if (c == '%') {
			char hex[3] = { p[1], 0, 0 };

			/* isxdigit(p[1]) first: p[2] may be past the end otherwise */
			if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
				return false;
			hex[1] = p[2];
			c = (unsigned char)strtoul(hex, NULL, 16);
			p += 2;
			if (c == '/' && !query)
				return false;
		}
		if (c < 0x20 || c == 0x7f)
			return false;
	}
	return true;
}

/* "application/json" in any case, optionally with parameters ("; charset=utf-8"). */
static bool
media_type_is_json(const char *ct)
{
	static const char json[] = "application/json";

	ct += strspn(ct, " \t");
	if (strncasecmp(ct, json, sizeof(json) - 1) != 0)
		return false;
	ct += sizeof(json) - 1;
	ct += strspn(ct, " \t");
	return *ct == '\0' || *ct == ';';
}

static enum MHD_Result
count_content_type(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
	unsigned int *n = cls;

	if (strcasecmp(key, MHD_HTTP_HEADER_CONTENT_TYPE) == 0)
		(*n)++;
	return MHD_YES;
}

/* How many Content-Type headers came along (two are as bad as a wrong one). */
static unsigned int
content_types(const struct http_request *req)
{
	unsigned int n = 0;

	MHD_get_connection_values(req->conn, MHD_HEADER_KIND, count_content_type, &n);
	return n;
}

/* Exactly one Content-Type, and it is JSON. */
static bool
request_is_json(const struct http_request *req)
{
	const char *ct = http_request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);

	return ct != NULL && content_types(req) == 1 && media_type_is_json(ct);
}

/* Whether the headers announce a body (a length above zero, or chunks). */
static bool
request_has_body(const struct http_request *req)
{
	const char *cl = http_request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);

	if (http_request_header(req, MHD_HTTP_HEADER_TRANSFER_ENCODING) != NULL)
		return true;
	return cl != NULL && cl[strspn(cl, "0")] != '\0';
}

int
http_request_json(struct http_request *req, json_t **ret_body)
{
	json_error_t jerr;
	json_t *j;

	/* Also without a body: an endpoint that takes JSON is only ever sent JSON. */
	if (!request_is_json(req))
		return http_error(req, -EMEDIUMTYPE, "unsupported_media_type",
			"the body must be sent as Content-Type: application/json");
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

/* @req: the headers its handler added (http_response_header), or NULL. */
static enum MHD_Result
send_text(struct MHD_Connection *conn, unsigned int status, const char *ctype, const char *body,
	size_t len, const struct http_request *req)
{
	struct MHD_Response *resp;
	enum MHD_Result r;
	bool cache_set = false;

	resp = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, ctype);
	for (unsigned int i = 0; req != NULL && i < req->n_resp_headers; i++) {
		MHD_add_response_header(resp, req->resp_headers[i][0], req->resp_headers[i][1]);
		cache_set |= strcasecmp(req->resp_headers[i][0], "Cache-Control") == 0;
	}
	if (!cache_set)
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
	r = send_text(conn, status, "application/json", text, strlen(text), NULL);
	free(text);
	return r;
}

/* {"error": {"code", "message"}}, and Retry-After: @retry_after unless it is 0. */
static enum MHD_Result
send_error(struct MHD_Connection *conn, unsigned int status, const char *code, const char *msg,
	unsigned int retry_after)
{
	struct MHD_Response *resp;
	enum MHD_Result r;
	char *text, after[16];
	json_t *j;

	j = json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", msg);
	text = j != NULL ? json_dumps(j, JSON_COMPACT | JSON_ENSURE_ASCII) : NULL;
	json_decref(j);
	if (text == NULL)
		return MHD_NO;
	resp = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_COPY);
	free(text);
	if (resp == NULL)
		return MHD_NO;
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	MHD_add_response_header(resp, "Cache-Control", "no-store");
	if (status == MHD_HTTP_UNAUTHORIZED)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer");
	if (retry_after != 0) {
		snprintf(after, sizeof(after), "%u", retry_after);
		MHD_add_response_header(resp, MHD_HTTP_HEADER_RETRY_AFTER, after);
	}
	r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
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
	struct http_server *srv;
	struct MHD_Connection *conn;
	struct stream_ctx *next_parked;
};

/*
 * libmicrohttpd's content reader. When the stream has nothing to send, the connection is
 * suspended (the pool thread goes on with other connections; returning 0 without
 * suspending would have libmicrohttpd call again at once, a busy loop) and parked; the
 * housekeeping thread resumes it at its next tick or as soon as cfg.stream_wait says
 * something happened. MHD_suspend_connection() may only be called from here or the
 * access handler; MHD_resume_connection() from any thread.
 */
static ssize_t
stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	struct stream_ctx *sc = cls;
	struct http_server *srv = sc->srv;
	ssize_t n;

	n = sc->st.read(sc->st.cls, pos, buf, max);
	if (n == HTTP_STREAM_END)
		return MHD_CONTENT_READER_END_OF_STREAM;
	if (n < 0)
		return MHD_CONTENT_READER_END_WITH_ERROR;
	if (n > 0)
		return n;
#ifdef FUZZING_BUILD_MODE
	/* tests/fuzz/fuzz_http.c: one input, one answer; a stream with nothing to send ends. */
	return MHD_CONTENT_READER_END_OF_STREAM;
#endif
	pthread_mutex_lock(&srv->park_lock);
	if (srv->stopping) {
		/* Nothing would resume it: MHD_stop_daemon() must find no suspended connection. */
		pthread_mutex_unlock(&srv->park_lock);
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
	sc->next_parked = srv->parked;
	srv->parked = sc;
	MHD_suspend_connection(sc->conn);
	pthread_cond_signal(&srv->park_cond);
	pthread_mutex_unlock(&srv->park_lock);
	return 0;
}

/* Resume every parked stream; the caller holds park_lock. */
static void
unpark_all(struct http_server *srv)
{
	struct stream_ctx *sc;

	while ((sc = srv->parked) != NULL) {
		srv->parked = sc->next_parked;
		sc->next_parked = NULL;
		MHD_resume_connection(sc->conn);
	}
}

static void
stream_free(void *cls)
{
	struct stream_ctx *sc = cls;

	/* Never parked here: a suspended connection is not closed until it is resumed. */
	if (sc->st.done != NULL)
		sc->st.done(sc->st.cls);
	free(sc);
}

/*
 * Queue a streamed 200 answer. On failure the stream's done() has been called and
 * MHD_NO is returned (the connection is dropped).
 */
static enum MHD_Result
send_stream(struct http_server *srv, struct MHD_Connection *conn, const struct http_stream *st)
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
	sc->srv = srv;
	sc->conn = conn;
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

/* ---- header deadlines ---- */

static void
timespec_add_ms(struct timespec *ts, long ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

static bool
timespec_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

/* Put @hc on the due list: its headers (or, @body, its body) are due @seconds from now. */
static void
conn_arm(struct http_conn *hc, unsigned int seconds, bool body)
{
	struct http_server *srv = hc->srv;

	pthread_mutex_lock(&srv->conn_lock);
	clock_gettime(CLOCK_MONOTONIC, &hc->deadline);
	timespec_add_ms(&hc->deadline, (long)seconds * 1000);
	hc->body = body;
	if (!hc->listed) {
		hc->prev = NULL;
		hc->next = srv->due;
		if (srv->due != NULL)
			srv->due->prev = hc;
		srv->due = hc;
		hc->listed = true;
	}
	pthread_mutex_unlock(&srv->conn_lock);
}

/* Take @hc off the due list; the caller holds conn_lock. */
static void
conn_unlist(struct http_conn *hc)
{
	struct http_server *srv = hc->srv;

	if (!hc->listed)
		return;
	if (hc->prev != NULL)
		hc->prev->next = hc->next;
	else
		srv->due = hc->next;
	if (hc->next != NULL)
		hc->next->prev = hc->prev;
	hc->prev = hc->next = NULL;
	hc->listed = false;
}

static void
conn_disarm(struct http_conn *hc)
{
	pthread_mutex_lock(&hc->srv->conn_lock);
	conn_unlist(hc);
	pthread_mutex_unlock(&hc->srv->conn_lock);
}

/*
 * Shut down the connections whose request headers or body are overdue. shutdown(), not close():
 * the descriptor stays libmicrohttpd's, which sees the end of the stream and closes the
 * connection itself. It is still this connection's descriptor: libmicrohttpd tells us a
 * connection closed (on_connection, which takes conn_lock) before it closes the socket.
 */
static void
reap_overdue(struct http_server *srv)
{
	struct http_conn *hc, *next;
	struct timespec now;
	unsigned int cut[2] = { 0, 0 }; /* headers, bodies */

	clock_gettime(CLOCK_MONOTONIC, &now);
	pthread_mutex_lock(&srv->conn_lock);
	for (hc = srv->due; hc != NULL; hc = next) {
		next = hc->next;
		if (!timespec_before(&hc->deadline, &now))
			continue;
		(void)shutdown(hc->fd, SHUT_RDWR);
		cut[hc->body]++;
		conn_unlist(hc);
	}
	pthread_mutex_unlock(&srv->conn_lock);
	while (cut[0]-- > 0)
		metrics_count_refused("header_timeout");
	while (cut[1]-- > 0)
		metrics_count_refused("body_timeout");
}

static void
on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
	enum MHD_ConnectionNotificationCode toe)
{
	struct http_server *srv = cls;
	const union MHD_ConnectionInfo *ci;
	struct http_conn *hc = *socket_context;

	if (toe == MHD_CONNECTION_NOTIFY_CLOSED) {
		if (hc != NULL) {
			conn_disarm(hc);
			free(hc);
			*socket_context = NULL;
		}
		return;
	}
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
	hc = calloc(1, sizeof(*hc));
	if (hc == NULL || ci == NULL) {
		/* no deadline then, only the idle timeout */
		free(hc);
		return;
	}
	hc->srv = srv;
	hc->fd = ci->connect_fd;
	*socket_context = hc;
	conn_arm(hc, srv->cfg.header_timeout, false);
}

/*
 * The housekeeping thread: resumes parked streams (at every tick, so they can send
 * keepalives and notice shutdown, and as soon as cfg.stream_wait reports news) and
 * enforces the header deadline.
 */
static void *
keeper_main(void *arg)
{
	struct http_server *srv = arg;
	struct timespec until;

	pthread_mutex_lock(&srv->park_lock);
	while (!srv->stopping) {
		if (srv->parked != NULL && srv->cfg.stream_wait != NULL) {
			pthread_mutex_unlock(&srv->park_lock);
			(void)srv->cfg.stream_wait(srv->cfg.ctx, &srv->wait_cursor, HTTP_TICK_MS);
			pthread_mutex_lock(&srv->park_lock);
		} else {
			clock_gettime(CLOCK_MONOTONIC, &until);
			timespec_add_ms(&until, HTTP_TICK_MS);
			(void)pthread_cond_timedwait(&srv->park_cond, &srv->park_lock, &until);
		}
		unpark_all(srv);
		pthread_mutex_unlock(&srv->park_lock);
		reap_overdue(srv);
		pthread_mutex_lock(&srv->park_lock);
	}
	unpark_all(srv);
	pthread_mutex_unlock(&srv->park_lock);
	return NULL;
}

/* ---- the request state machine ---- */

static double
elapsed(const struct timespec *since)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - since->tv_sec) + (double)(now.tv_nsec - since->tv_nsec) / 1e9;
}

/*
 * The rate limits of a route anyone may call and that costs us (HTTP_ROUTE_LIMITED):
 * 0, or 429 with Retry-After. Decided on the request line and the source address, before
 * any header is looked at or any body read, so a refusal costs next to nothing.
 */
static int
limit(struct http_request *req)
{
	struct http_server *srv = req->srv;
	const union MHD_ConnectionInfo *ci;
	unsigned int after = 1;
	struct timespec now;
	int v;

	if (srv->limiter == NULL || !(req->route->auth & HTTP_ROUTE_LIMITED))
		return 0;
	ci = MHD_get_connection_info(req->conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
	clock_gettime(CLOCK_MONOTONIC, &now);
	v = ratelimit_take(srv->limiter, ci != NULL ? ci->client_addr : NULL,
		(uint64_t)now.tv_sec * 1000000 + (uint64_t)now.tv_nsec / 1000, &after);
	if (v == RATELIMIT_OK)
		return 0;
	metrics_count_refused(v == RATELIMIT_SOURCE ? "source_rate" : "global_rate");
	req->retry_after = after;
	http_error(req, -EAGAIN, "rate_limited",
		v == RATELIMIT_SOURCE ? "too many requests from this address: retry after %u s" :
					"too many requests to this server: retry after %u s",
		after);
	return MHD_HTTP_TOO_MANY_REQUESTS;
}

/*
 * Judge a request on its request line and headers, before its body is read: 0 to serve
 * it, or the HTTP status of the refusal (recorded with http_error; the body is then
 * read and dropped, so the client still gets the answer).
 */
static unsigned int
admit(struct http_request *req)
{
	const struct http_config *cfg = &req->srv->cfg;
	const char *m = req->method;
	bool path_known = false, writes;
	int r;

	if (req->bad_uri) {
		http_error(req, -EINVAL, "invalid_path",
			"the URL holds a malformed escape or one that decodes to a control "
			"character, a NUL or (in the path) a '/'");
		return MHD_HTTP_BAD_REQUEST;
	}
	for (size_t i = 0; i < cfg->n_routes; i++) {
		if (!route_match(req, cfg->routes[i].pattern, req->path))
			continue;
		path_known = true;
		if (strcmp(cfg->routes[i].method, m) == 0) {
			req->route = &cfg->routes[i];
			break;
		}
	}
	if (req->route == NULL) {
		request_clear_params(req);
		if (path_known) {
			http_error(req, -EOPNOTSUPP, "method_not_allowed",
				"this method is not allowed on this path");
			return MHD_HTTP_METHOD_NOT_ALLOWED;
		}
		http_error(req, -ENOENT, "not_found", "no such endpoint");
		return MHD_HTTP_NOT_FOUND;
	}

	r = limit(req);
	if (r != 0)
		return (unsigned int)r;

	r = authenticate(req);
	if (r < 0)
		return http_status_of(r);
	/* HTTP_AUTH_NONE routes are open to everyone, whatever token comes along. */
	if (!(req->route->auth & HTTP_AUTH_NONE) && !(req->route->auth & req->role)) {
		if (req->role == HTTP_AUTH_NONE)
			r = http_error(req, -EACCES, "unauthorized", "a bearer token is required");
		else
			r = http_error(req, -EPERM, "forbidden",
				"this token may not call this endpoint");
		return http_status_of(r);
	}

	/*
	 * The API speaks JSON only. A body must say so; a POST, PUT or PATCH that names a
	 * type must name JSON (no body: revoke and reinstate are plain `curl -X POST`), and
	 * an endpoint that takes a body insists in http_request_json(). A browser's form
	 * or text/plain POST (no preflight) is refused here, before anything changes.
	 */
	writes = strcmp(m, "POST") == 0 || strcmp(m, "PUT") == 0 || strcmp(m, "PATCH") == 0;
	if ((request_has_body(req) || (writes && content_types(req) > 0)) && !request_is_json(req)) {
		http_error(req, -EMEDIUMTYPE, "unsupported_media_type",
			"the body must be sent as Content-Type: application/json");
		return MHD_HTTP_UNSUPPORTED_MEDIA_TYPE;
	}
	return 0;
}

static enum MHD_Result
dispatch(struct http_request *req)
{
	const struct http_config *cfg = &req->srv->cfg;
	const struct http_route *route = req->route;
	json_t *body = NULL;
	unsigned int status;
	enum MHD_Result mr;
	int r;

	if (req->too_large && !req->bad_uri) {
		status = MHD_HTTP_CONTENT_TOO_LARGE;
		metrics_count_refused("body_too_large");
		mr = send_error(req->conn, status, "body_too_large",
			"the request body exceeds the server's limit", 0);
		goto out;
	}
	if (req->refused != 0) {
		status = req->refused;
		mr = send_error(req->conn, status, req->err_code, req->err_msg, req->retry_after);
		goto out;
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
			mr = send_stream(req->srv, req->conn, &req->stream);
			goto out;
		}
		if (r < 0)
			goto fail;
		status = (unsigned int)r;
		mr = send_text(req->conn, status, ctype, text ? text : "", text ? strlen(text) : 0,
			req);
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
		mr = send_text(req->conn, status, "application/json", "{}", 2, NULL);
	json_decref(body);
	goto out;

fail:
	json_decref(body);
	status = http_status_of(r);
	if (req->err_code[0] == '\0')
		http_error(req, r, "internal", "internal error: %s", strerror(-r));
	/* ours, not the client's: the operator must see it (503s are transient, counted) */
	if (status >= 500 && status != MHD_HTTP_SERVICE_UNAVAILABLE)
		log_warnx("%s %s: %u %s: %s", http_request_method(req), route->pattern, status,
			req->err_code, req->err_msg);
	mr = send_error(req->conn, status, req->err_code, req->err_msg, req->retry_after);
out:
	metrics_observe_request(route ? route->pattern : "unmatched", status, elapsed(&req->started));
	return mr;
}

/*
 * libmicrohttpd's URI log callback: called once per request with the request target as
 * the client sent it, before it is split and percent-decoded; what it returns becomes the
 * request's context (*con_cls). The only place that sees the target undecoded.
 */
static void *
on_uri(void *cls, const char *uri, struct MHD_Connection *conn)
{
	const union MHD_ConnectionInfo *ci;
	struct http_request *req;

	req = calloc(1, sizeof(*req));
	if (req == NULL)
		return NULL;
	req->srv = cls;
	req->conn = conn;
	req->bad_uri = !uri_acceptable(uri);
	ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
	req->hc = ci != NULL ? ci->socket_context : NULL;
	clock_gettime(CLOCK_MONOTONIC, &req->started);
	return req;
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
	const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	struct http_server *srv = cls;
	struct http_request *req = *con_cls;

	if (req == NULL)
		return MHD_NO; /* on_uri found no memory */
	if (!req->admitted) {
		/*
		 * The headers are in: the header deadline is met, the idle timeout grows, and
		 * a body is due within body_timeout (kept or not: a refused body is read too).
		 */
		req->admitted = true;
		if (req->hc != NULL) {
			if (request_has_body(req))
				conn_arm(req->hc, srv->cfg.body_timeout, true);
			else
				conn_disarm(req->hc);
		}
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT,
			srv->cfg.conn_timeout);
		req->method = method;
		req->path = strdup(url);
		if (req->path == NULL)
			return MHD_NO;
		req->refused = admit(req);
		return MHD_YES;
	}
	if (*upload_data_size > 0) {
		/* Keep reading an oversized or refused body (so the client gets our answer). */
		req->received += *upload_data_size;
		if (!req->too_large && req->received > srv->cfg.max_body) {
			req->too_large = true;
			if (req->body != NULL)
				OPENSSL_cleanse(req->body, req->body_len);
			free(req->body);
			req->body = NULL;
			req->body_len = 0;
		}
		if (!req->too_large && req->refused == 0) {
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
	/* The body is in: no deadline while the answer is made and sent (streams last). */
	if (req->hc != NULL)
		conn_disarm(req->hc);
	return dispatch(req);
}

static void
on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
	enum MHD_RequestTerminationCode toe)
{
	struct http_request *req = *con_cls;

	if (req == NULL)
		return;
	/* A kept-alive connection owes the next request's headers within the deadline. */
	if (req->hc != NULL && toe == MHD_REQUEST_TERMINATED_COMPLETED_OK)
		conn_arm(req->hc, req->srv->cfg.header_timeout, false);
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
		listen(fd, HTTP_LISTEN_BACKLOG) < 0) {
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
	if (bind(fd, (struct sockaddr *)&ss, len) < 0 || listen(fd, HTTP_LISTEN_BACKLOG) < 0 ||
		getsockname(fd, (struct sockaddr *)&ss, &len) < 0) {
		r = -errno;
		close(fd);
		return r;
	}
	*ret_port = ntohs(ss.ss_family == AF_INET ? sin->sin_port : sin6->sin6_port);
	return fd;
}

/* ---- the server's TLS identity: reloadable without a restart ---- */

#define HTTP_TLS_CHAIN_MAX 8

/* One certificate chain and its key, parsed once; never changed after it is published. */
struct tls_ident {
	gnutls_x509_crt_t crts[HTTP_TLS_CHAIN_MAX];
	unsigned int n_crts;
	gnutls_x509_privkey_t key;
};

/*
 * The identity new handshakes get. GnuTLS's certificate callback has no context pointer,
 * so it is one per process (enrolld runs one server). Each handshake takes its own copy
 * under the lock, which GnuTLS frees with the session: replacing the identity never
 * touches a connection that is already established.
 */
static pthread_mutex_t tls_lock = PTHREAD_MUTEX_INITIALIZER;
static struct tls_ident *tls_current;

static void
tls_ident_free(struct tls_ident *id)
{
	if (id == NULL)
		return;
	for (unsigned int i = 0; i < id->n_crts; i++)
		gnutls_x509_crt_deinit(id->crts[i]);
	/* gnutls_x509_privkey_deinit() zeroes the key material */
	if (id->key != NULL)
		gnutls_x509_privkey_deinit(id->key);
	free(id);
}

/*
 * Parse a PEM chain (leaf first) and its PEM key. -EBADMSG the chain does not parse (or is
 * out of order), -EKEYREJECTED the key does not parse or is not the leaf's.
 */
static int
tls_ident_new(const char *cert_pem, const char *key_pem, struct tls_ident **ret)
{
	gnutls_datum_t c = { (unsigned char *)cert_pem, (unsigned int)strlen(cert_pem) };
	gnutls_datum_t k = { (unsigned char *)key_pem, (unsigned int)strlen(key_pem) };
	unsigned char id_crt[64], id_key[64];
	size_t len_crt = sizeof(id_crt), len_key = sizeof(id_key);
	struct tls_ident *id;
	unsigned int n = HTTP_TLS_CHAIN_MAX;
	int r;

	id = calloc(1, sizeof(*id));
	if (id == NULL)
		return -ENOMEM;
	if (gnutls_x509_crt_list_import(id->crts, &n, &c, GNUTLS_X509_FMT_PEM,
		    GNUTLS_X509_CRT_LIST_FAIL_IF_UNSORTED) < 0 || n == 0) {
		r = -EBADMSG;
		goto err;
	}
	id->n_crts = n;
	if (gnutls_x509_privkey_init(&id->key) < 0) {
		id->key = NULL;
		r = -ENOMEM;
		goto err;
	}
	if (gnutls_x509_privkey_import2(id->key, &k, GNUTLS_X509_FMT_PEM, NULL, 0) < 0 ||
	    gnutls_x509_crt_get_key_id(id->crts[0], 0, id_crt, &len_crt) < 0 ||
	    gnutls_x509_privkey_get_key_id(id->key, 0, id_key, &len_key) < 0 ||
	    len_crt != len_key || memcmp(id_crt, id_key, len_crt) != 0) {
		r = -EKEYREJECTED;
		goto err;
	}
	*ret = id;
	return 0;
err:
	tls_ident_free(id);
	return r;
}

/* GnuTLS asks for the server certificate (possibly more than once per handshake). */
static int
on_tls_cert(gnutls_session_t session, const struct gnutls_cert_retr_st *info,
	gnutls_pcert_st **ret_certs, unsigned int *ret_n, gnutls_ocsp_data_st **ret_ocsp,
	unsigned int *ret_n_ocsp, gnutls_privkey_t *ret_key, unsigned int *ret_flags)
{
	gnutls_pcert_st *pc = NULL;
	gnutls_privkey_t pk = NULL;
	unsigned int n = 0;
	int r = -1;

	*ret_ocsp = NULL;
	*ret_n_ocsp = 0;
	pthread_mutex_lock(&tls_lock);
	if (tls_current == NULL)
		goto out;
	pc = gnutls_calloc(tls_current->n_crts, sizeof(*pc));
	if (pc == NULL)
		goto out;
	for (n = 0; n < tls_current->n_crts; n++)
		if (gnutls_pcert_import_x509(&pc[n], tls_current->crts[n], 0) < 0)
			goto out;
	if (gnutls_privkey_init(&pk) < 0) {
		pk = NULL;
		goto out;
	}
	if (gnutls_privkey_import_x509(pk, tls_current->key, GNUTLS_PRIVKEY_IMPORT_COPY) < 0)
		goto out;
	/* GnuTLS owns the copies now and frees them with the session */
	*ret_certs = pc;
	*ret_n = n;
	*ret_key = pk;
	*ret_flags = GNUTLS_CERT_RETR_DEINIT_ALL;
	pc = NULL;
	pk = NULL;
	r = 0;
out:
	pthread_mutex_unlock(&tls_lock);
	if (pc != NULL) {
		for (unsigned int i = 0; i < n; i++)
			gnutls_pcert_deinit(&pc[i]);
		gnutls_free(pc);
	}
	if (pk != NULL)
		gnutls_privkey_deinit(pk);
	return r;
}

int
http_server_set_tls(struct http_server *srv, const char *cert_pem, const char *key_pem)
{
	struct tls_ident *id = NULL, *old;
	int r;

	if (srv != NULL && !srv->tls)
		return -EINVAL;
	r = tls_ident_new(cert_pem, key_pem, &id);
	if (r < 0)
		return r;
	pthread_mutex_lock(&tls_lock);
	old = tls_current;
	tls_current = id;
	pthread_mutex_unlock(&tls_lock);
	tls_ident_free(old);
	return 0;
}

/*
 * One libmicrohttpd daemon on the listening socket. With TLS and a non-empty @trust, GnuTLS
 * asks every client for a certificate (GNUTLS_CERT_REQUEST, not REQUIRE: token and TPM
 * clients go on without one) and names the trusted CAs in its request; GnuTLS does not
 * verify the chain, the handler does (x509.c) against the CAs current at that moment.
 * The server's own certificate comes from on_tls_cert (the current tls_ident), so
 * http_server_set_tls() changes it without a new daemon.
 *
 * epoll in a pool of cfg.threads threads: a connection costs a socket and its memory pool,
 * not a thread. A handler that blocks (a durable LMDB commit, a WireGuard change: a few
 * milliseconds) holds up the other connections of its pool thread for that long. The
 * connection timeout given here is the short one (header_timeout) that applies until the
 * headers are in; on_request raises it to conn_timeout for the rest of the request.
 */
static struct MHD_Daemon *
start_mhd(struct http_server *srv, const char *trust)
{
	const struct http_config *cfg = &srv->cfg;
	unsigned int flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_USE_ERROR_LOG | MHD_USE_ITC |
		MHD_ALLOW_SUSPEND_RESUME;
	bool tls = srv->tls;

	if (tls)
		flags |= MHD_USE_TLS;
	if (!tls || trust == NULL || trust[0] == '\0')
		trust = NULL;
	return MHD_start_daemon(flags, 0, NULL, NULL, on_request, srv,
		MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, NULL,
		MHD_OPTION_LISTEN_SOCKET, srv->listen_fd,
		MHD_OPTION_THREAD_POOL_SIZE, cfg->threads,
		MHD_OPTION_URI_LOG_CALLBACK, on_uri, srv,
		MHD_OPTION_NOTIFY_CONNECTION, on_connection, srv,
		MHD_OPTION_NOTIFY_COMPLETED, on_completed, srv,
		MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections,
		MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_ip,
		MHD_OPTION_CONNECTION_TIMEOUT, cfg->header_timeout,
		tls ? MHD_OPTION_HTTPS_PRIORITIES : MHD_OPTION_END, HTTP_TLS_PRIORITIES,
		MHD_OPTION_HTTPS_CERT_CALLBACK2, on_tls_cert,
		trust ? MHD_OPTION_HTTPS_MEM_TRUST : MHD_OPTION_END, trust,
		MHD_OPTION_END);
}

static void
server_free(struct http_server *srv)
{
	if (srv->tls) {
		pthread_mutex_lock(&tls_lock);
		tls_ident_free(tls_current);
		tls_current = NULL;
		pthread_mutex_unlock(&tls_lock);
	}
	if (srv->unix_path != NULL)
		unlink(srv->unix_path);
	free(srv->unix_path);
	free(srv->trust_pem);
	ratelimit_free(srv->limiter);
	pthread_mutex_destroy(&srv->lock);
	pthread_mutex_destroy(&srv->park_lock);
	pthread_cond_destroy(&srv->park_cond);
	pthread_mutex_destroy(&srv->conn_lock);
	free(srv);
}

int
http_server_start(struct http_server **ret, const struct http_config *cfg)
{
	struct http_server *srv;
	pthread_condattr_t ca;
	int r;

	srv = calloc(1, sizeof(*srv));
	if (srv == NULL)
		return -ENOMEM;
	pthread_mutex_init(&srv->lock, NULL);
	pthread_mutex_init(&srv->park_lock, NULL);
	pthread_mutex_init(&srv->conn_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&srv->park_cond, &ca);
	pthread_condattr_destroy(&ca);
	srv->cfg = *cfg;
	if (srv->cfg.threads == 0)
		srv->cfg.threads = 1;
	if (srv->cfg.header_timeout == 0)
		srv->cfg.header_timeout = srv->cfg.conn_timeout;
	if (srv->cfg.body_timeout == 0)
		srv->cfg.body_timeout = srv->cfg.conn_timeout;
	srv->listen_fd = -1;
	if (cfg->tls_cert_pem != NULL) {
		srv->tls = true;
		r = http_server_set_tls(srv, cfg->tls_cert_pem,
			cfg->tls_key_pem ? cfg->tls_key_pem : "");
		if (r < 0)
			goto err;
	}
	/* the caller's copies may go away: the identity is parsed */
	srv->cfg.tls_cert_pem = NULL;
	srv->cfg.tls_key_pem = NULL;
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
	if (cfg->limits.source_rate != 0 || cfg->limits.global_rate != 0) {
		r = ratelimit_new(&srv->limiter, &cfg->limits);
		if (r < 0)
			goto err;
	}
	r = -pthread_create(&srv->keeper, NULL, keeper_main, srv);
	if (r < 0)
		goto err;
	srv->keeper_started = true;
	srv->mhd = start_mhd(srv, srv->trust_pem);
	if (srv->mhd == NULL) {
		r = -EIO;
		goto err;
	}
	*ret = srv;
	return 0;
err:
	if (srv->keeper_started) {
		pthread_mutex_lock(&srv->park_lock);
		srv->stopping = true;
		pthread_cond_signal(&srv->park_cond);
		pthread_mutex_unlock(&srv->park_lock);
		pthread_join(srv->keeper, NULL);
	}
	if (srv->listen_fd >= 0)
		close(srv->listen_fd);
	server_free(srv);
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
	if (!srv->tls ||
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
	/*
	 * Streams first: no stream parks any more, every parked one is resumed (and ends);
	 * libmicrohttpd must not be stopped with a connection suspended.
	 */
	pthread_mutex_lock(&srv->park_lock);
	srv->stopping = true;
	unpark_all(srv);
	pthread_cond_signal(&srv->park_cond);
	pthread_mutex_unlock(&srv->park_lock);
	if (srv->keeper_started)
		pthread_join(srv->keeper, NULL);
	srv->keeper_started = false;

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
	server_free(srv);
}

uint16_t
http_server_port(const struct http_server *srv)
{
	return srv->port;
}

#ifdef FUZZING_BUILD_MODE
/*
 * tests/fuzz/fuzz_http.c: hand the daemon a connected socket (one end of a socketpair) as if
 * it had accepted it from @addr (libmicrohttpd owns @fd, also on failure); and how many
 * connections it still holds (the target waits for 0 so every input's memory is freed
 * before the next one starts).
 */
int http_server_add_connection(struct http_server *srv, int fd, const struct sockaddr *addr,
	socklen_t len);
unsigned int http_server_connections(struct http_server *srv);

int
http_server_add_connection(struct http_server *srv, int fd, const struct sockaddr *addr,
	socklen_t len)
{
	enum MHD_Result r;

	pthread_mutex_lock(&srv->lock);
	r = MHD_add_connection(srv->mhd, fd, addr, len);
	pthread_mutex_unlock(&srv->lock);
	return r == MHD_YES ? 0 : -EIO;
}

unsigned int
http_server_connections(struct http_server *srv)
{
	const union MHD_DaemonInfo *di;
	unsigned int n;

	pthread_mutex_lock(&srv->lock);
	di = MHD_get_daemon_info(srv->mhd, MHD_DAEMON_INFO_CURRENT_CONNECTIONS);
	n = di != NULL ? di->num_connections : 0;
	pthread_mutex_unlock(&srv->lock);
	return n;
}
#endif
