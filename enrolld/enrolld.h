/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_H
#define ENROLLD_H

/*
 * enrolld's private header: configuration, the HTTP layer, the API, the WireGuard control
 * plane, the health monitor, metrics. One header of shared types per daemon (OpenBSD
 * style); the store (store.h) and address arithmetic (addr.h) have their own.
 */

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <jansson.h>

#include "enrolld/ratelimit.h"
#include "enrolld/store.h"

#define ENROLLD_DEFAULT_CONF "/etc/enrolld/enrolld.conf"
#define ENROLLD_VERSION "0.1.0"

enum enrolld_wg_backend {
	ENROLLD_WG_KERNEL = 1,
	ENROLLD_WG_USERSPACE = 2,
};

/* wireguard.tenant_address_space: at most this many prefixes */
#define ENROLLD_SPACE_MAX 16
/* its default: private IPv4 (RFC 1918), shared address space (RFC 6598), IPv6 ULA */
#define ENROLLD_SPACE_DEFAULT "10.0.0.0/8 172.16.0.0/12 192.168.0.0/16 100.64.0.0/10 fc00::/7"

struct enrolld_conf {
	/* [server] */
	char *listen;      /* address to bind, e.g. 127.0.0.1 or :: */
	uint16_t port;     /* TCP port (0 with unix_socket set) */
	char *unix_socket; /* path of a unix socket instead of TCP, behind a terminator */
	char *tls_cert;    /* PEM; with tls_key turns HTTPS on */
	char *tls_key;
	long max_body;        /* bytes */
	long max_connections; /* concurrent connections */
	long max_connections_per_ip; /* concurrent connections from one source address */
	long threads;         /* HTTP event-loop threads */
	long header_timeout;  /* seconds a client has to send its request headers */
	long conn_timeout;    /* seconds of inactivity before a connection is closed */
	long body_timeout;    /* seconds from the end of the headers to the end of the body */
	char *user;           /* privilege separation: the network process runs as this user */
	/* [state] */
	char *db_path;
	char *key_dir; /* tenant interface private keys, default <db_path>/keys */
	long max_size_mib; /* the LMDB map may grow to this */
	int store_backend; /* enum store_backend_kind: backend = lmdb (default) | postgresql */
	char *pg_conninfo; /* postgresql = "<libpq connection string>" */
	char *kek_file;    /* key-encryption key: 64 hex digits (32 bytes), a secret file */
	/* [auth] files holding tokens, mode 0600 */
	char *admin_token_file;
	char *provisioning_token_file;
	char *tenant_tokens_dir; /* one file per tenant, named after it */
	/* [attestation] */
	char *ek_ca_dir;
	char *crl_dir;    /* CRLs of EK and device CAs, re-read on SIGHUP */
	long session_ttl; /* seconds a challenge may be completed in */
	long max_sessions; /* open sessions (challenged, neither completed nor expired) */
	/* [ratelimit] the endpoints anyone may call; a rate of 0 turns its limit off */
	long rl_source_rate; /* requests per second from one source */
	long rl_source_burst;
	long rl_global_rate; /* requests per second from everyone */
	long rl_global_burst;
	long rl_sources;     /* sources tracked at once */
	long rl_ipv6_prefix; /* an IPv6 source is this prefix of its address */
	/* [wireguard] */
	int wg_backend; /* enum enrolld_wg_backend */
	char *wireguard_go;
	char *uapi_dir;
	/* privilege separation: where tenant prefixes may lie (the root process checks) */
	struct addr_prefix tenant_space[ENROLLD_SPACE_MAX];
	size_t n_tenant_space;
	long reconcile_interval; /* seconds */
	bool vrf;
	long vrf_table_base;
	bool nftables;
	char *nft;
	/* [cluster] several nodes on one PostgreSQL (docs/cluster.md) */
	bool cluster;           /* enabled = true: tenants by lease, not all on this node */
	char *node_name;        /* node = <name>, default the host name */
	long lease_ms;          /* lease length */
	long margin_ms;         /* what taking a tenant down may take */
	long tick_ms;           /* renewals and takes */
	char *endpoint_hook;    /* endpoint_hook = <program> up|down <tenant> <ifname> <endpoint> */
	long revoke_wait_ms;    /* how long an API change waits for the owner to apply it */
	/* [health] */
	long health_interval; /* seconds between ticks */
	long default_keepalive;
};

/* conf.c */
int conf_load(struct enrolld_conf *ret, const char *path, char *errbuf, size_t errlen);
void conf_clear(struct enrolld_conf *conf);
/* The key-encryption key of state.kek_file (64 hex digits) into @ret; logs why not. */
int conf_read_kek(const char *path, uint8_t ret[static STORE_KEK_LEN]);

/* ---- http.c: the HTTP server and request plumbing shared by every handler ---- */
struct http_server;
struct http_request;

/*
 * A handler fills *ret_body (owned by the caller after return) and returns an HTTP status,
 * or returns a negative errno and sets an error with http_error(), which the server turns
 * into {"error": {"code", "message"}} with the status of the errno table.
 */
typedef int (*http_handler)(struct http_request *req, json_t **ret_body, void *ctx);
/* For non-JSON answers (metrics, streams): *ret_text is freed by the server. */
typedef int (*http_text_handler)(struct http_request *req, char **ret_text,
	const char **ret_content_type, void *ctx);

/*
 * A streamed answer (server-sent events). read() runs on one of the server's pool threads
 * and must not block: it fills at most @max bytes of @buf and returns how many, or
 * HTTP_STREAM_WAIT when it has nothing to send now (the connection is suspended and read()
 * called again after the server's stream_wait hook returns, at the latest half a second
 * later), HTTP_STREAM_END to finish the response, HTTP_STREAM_ERROR to drop the
 * connection. done() is called once, when the connection ends, whatever happened.
 */
#define HTTP_STREAM_WAIT 0
#define HTTP_STREAM_END (-1)
#define HTTP_STREAM_ERROR (-2)
struct http_stream {
	const char *content_type;
	ssize_t (*read)(void *cls, uint64_t pos, char *buf, size_t max);
	void (*done)(void *cls);
	void *cls;
};
/*
 * A text handler answers with a stream instead of text by calling this and returning 200
 * with *ret_text NULL. From then on the server owns the stream (done() is always called).
 */
void http_request_set_stream(struct http_request *req, const struct http_stream *st);
/*
 * Add a header to the answer of a text handler that succeeds (not to streams, JSON answers
 * or errors). @name and @value are not copied: they must live until the handler returns.
 * A Cache-Control given here replaces the default "no-store". -E2BIG when there are too many.
 */
int http_response_header(struct http_request *req, const char *name, const char *value);

struct http_route {
	const char *method;
	const char *pattern; /* "/v1/devices/{id}": {name} matches one path segment */
	http_handler handler;
	unsigned int auth; /* HTTP_AUTH_* that may call it, and HTTP_ROUTE_LIMITED */
	http_text_handler text_handler; /* instead of handler, for non-JSON answers and streams */
};

enum {
	HTTP_AUTH_NONE = 1U << 0,   /* anyone (device-facing, health) */
	HTTP_AUTH_ADMIN = 1U << 1,  /* the admin token */
	HTTP_AUTH_TENANT = 1U << 2, /* a tenant-scoped token */
	HTTP_AUTH_PROVISION = 1U << 3,
	/* not a role: anyone may call it and it costs us, the rate limits (http_config.limits) apply */
	HTTP_ROUTE_LIMITED = 1U << 8,
};

struct http_config {
	const char *listen;
	uint16_t port;
	const char *unix_socket;
	const char *tls_cert_pem; /* contents, not paths */
	const char *tls_key_pem;
	/*
	 * PEM of the CAs whose certificates clients are asked for (the union of the tenants'
	 * device CAs); NULL or "" = no client certificate is requested. Copied.
	 */
	const char *tls_trust_pem;
	size_t max_body;
	unsigned int threads;                /* libmicrohttpd's epoll thread pool */
	unsigned int max_connections;        /* in all */
	unsigned int max_connections_per_ip; /* from one source address (TCP); 0 = no limit */
	unsigned int header_timeout; /* s from accept (or the previous answer) to full headers */
	unsigned int conn_timeout;   /* s of inactivity once the headers are in */
	unsigned int body_timeout;   /* s from the headers to the end of the body (0: conn_timeout) */
	/* token buckets for HTTP_ROUTE_LIMITED routes (both rates 0: none) */
	struct ratelimit_config limits;
	const struct http_route *routes;
	size_t n_routes;
	void *ctx;
	/* Resolve a bearer token to a role (HTTP_AUTH_*) and, for tenant tokens, the tenant. */
	int (*authenticate)(void *ctx, const char *token, unsigned int *ret_role,
		char *ret_tenant, size_t tenant_len);
	/*
	 * Optional: block until something a parked stream waits for may have happened, or
	 * @timeout_ms passed. *cursor is the hook's own state (0 at first). Without it parked
	 * streams are resumed every half second only.
	 */
	int (*stream_wait)(void *ctx, uint64_t *cursor, int timeout_ms);
};

int http_server_start(struct http_server **ret, const struct http_config *cfg);
void http_server_stop(struct http_server *srv);
/*
 * Replace the client-certificate trust (see http_config.tls_trust_pem): the listening socket
 * moves to a new libmicrohttpd daemon; connections of the old one finish undisturbed. Safe
 * to call from a handler. A no-op without TLS or when the trust is unchanged.
 */
int http_server_set_trust(struct http_server *srv, const char *trust_pem);
/*
 * Replace the server's certificate chain (PEM, leaf first) and key (PEM): new handshakes
 * get them, established connections keep theirs and are not disturbed. Nothing changes on
 * failure: -EBADMSG the chain does not parse, -EKEYREJECTED the key does not parse or does
 * not belong to the leaf, -EINVAL the server has no TLS. One identity per process.
 */
int http_server_set_tls(struct http_server *srv, const char *cert_pem, const char *key_pem);
/* The TCP port actually bound (useful with port 0 in tests). */
uint16_t http_server_port(const struct http_server *srv);

const char *http_request_method(const struct http_request *req);
const char *http_request_path(const struct http_request *req);
/* The i-th {name} segment of the matched pattern, or NULL. */
const char *http_request_param(const struct http_request *req, unsigned int i);
/* A query-string argument, or NULL. */
const char *http_request_query(const struct http_request *req, const char *key);
/* A request header, or NULL. */
const char *http_request_header(const struct http_request *req, const char *name);
/*
 * The certificate chain the TLS client presented, parsed (not verified): -ENOENT none (or
 * not TLS), -EBADMSG/-E2BIG malformed. Caller x509_peer_free()s.
 */
struct x509_peer;
int http_request_client_cert(struct http_request *req, struct x509_peer **ret);
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
/* Send Retry-After: @seconds with the error a handler returns (429, 503). */
void http_request_set_retry_after(struct http_request *req, unsigned int seconds);

/* ---- metrics.c ---- */
void metrics_observe_request(const char *route, unsigned int status, double seconds);
/* enrollments by result ("new", "rotated", ..., "rejected", "error") */
void metrics_count_enrollment(const char *result);
/* attestation failures by reason code (attest_reason_code()) */
void metrics_count_attest_failure(const char *reason);
/*
 * requests and connections refused to bound what clients cost, by reason: "source_rate",
 * "global_rate", "sessions", "header_timeout", "body_timeout", "body_too_large"
 */
void metrics_count_refused(const char *reason);
/* devices of @tenant in @state ("up", "down", "never", "revoked"): a gauge set per tick */
void metrics_set_devices(const char *tenant, const char *state, uint64_t n);
/*
 * Per tenant: the longest time in seconds a device has been down now (0 if none is), the
 * devices' IPv4 address pool (usable addresses less the control plane's) and how many of
 * them are held (active and revoked devices).
 */
void metrics_set_tenant(const char *tenant, uint64_t down_longest, uint64_t pool_size,
	uint64_t pool_used);
/*
 * The HTTPS server's GnuTLS priorities (http.c; enroll-bench's crypto ceiling times the
 * same handshake). TLS 1.3 and 1.2 only; forward secrecy (ECDHE) and AEAD ciphers only:
 * no CBC, no RSA key exchange, no SHA-1 or SHA-224 signatures; the server's order of
 * preference. GnuTLS
 * syntax (gnutls-cli --priority '...' -l lists what it allows); docs/security.md.
 * Key exchange groups: X25519 and P-256 first, the key shares TLS 1.3 clients (OpenSSL,
 * curl, GnuTLS) send in their first message. SECURE256's own order put P-384 first: with
 * the server's precedence every such client got a HelloRetryRequest for a P-384 share,
 * one more round trip and a P-384 key on both sides (enroll-bench: 1.5-3 ms of CPU per
 * handshake on each side, more than the whole attestation's cryptography).
 */
#define HTTP_TLS_PRIORITIES                                                               \
	"SECURE256:+SECURE128:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2:-CIPHER-ALL:+AES-256-GCM:" \
	"+CHACHA20-POLY1305:+AES-128-GCM:-MAC-ALL:+AEAD:-KX-ALL:+ECDHE-ECDSA:+ECDHE-RSA:"    \
	"-SIGN-RSA-SHA1:-SIGN-ECDSA-SHA1:-SIGN-RSA-SHA224:-SIGN-ECDSA-SHA224:"                \
	"-GROUP-ALL:+GROUP-X25519:+GROUP-SECP256R1:+GROUP-SECP384R1:+GROUP-SECP521R1:"        \
	"%SERVER_PRECEDENCE"

/* Prometheus text exposition of everything recorded and of @st; caller frees. */
char *metrics_render(const struct store_stats *st);

/* ---- plane.c: the tenants' WireGuard interfaces ---- */
struct plane;
struct wg_device;
struct wg_peer_stats;

struct plane_config {
	int backend;              /* enum enrolld_wg_backend */
	const char *key_dir;      /* <tenant>.key, mode 0600 */
	const char *wireguard_go; /* userspace: the program to spawn */
	const char *uapi_dir;     /* userspace: where its sockets appear */
	bool vrf;                 /* kernel: a VRF per tenant where the kernel has VRF */
	uint32_t vrf_table_base;  /* VRF table = base + listen port */
	bool nftables;            /* table inet enrolld: no forwarding between tenants */
	const char *nft;          /* the nft program */
	/*
	 * Cluster mode (docs/cluster.md): a tenant's interface exists only while this node
	 * holds the tenant (plane_tenant_hold/drop); every other change of an interface not
	 * held is a no-op here, its owner applies it. Keys come from @key_store (under the
	 * KEK, shared by the nodes) instead of key_dir.
	 */
	bool cluster;
	struct store *key_store;
};

int plane_new(struct plane **ret, const struct plane_config *cfg);
/*
 * Privilege separation's child: a plane that asks the privileged process (privsep.c) for
 * every key, interface change and read. @ps is not owned.
 */
struct privsep;
int plane_new_remote(struct plane **ret, struct privsep *ps);
/* Apply @dev's peers to @t's interface, bringing it up first if needed (privileged side). */
int plane_apply(struct plane *p, const struct store_tenant *t, const struct wg_device *dev);
/*
 * Whether @t may take its interface (privileged side): 0 if it does not exist, or is a
 * WireGuard interface without a key or with @t's own (left up by a previous run); -EPERM
 * if it is another kind of interface or another key's WireGuard interface.
 */
int plane_interface_claimable(struct plane *p, const struct store_tenant *t);
/* Stops the wireguard-go processes it runs; kernel interfaces stay (devices keep dialing). */
void plane_free(struct plane *p);
/*
 * Make sure @t's private key exists (generated on first use, 0600 in key_dir) and return
 * its public key. Does not touch any interface.
 */
int plane_tenant_key(struct plane *p, const struct store_tenant *t, uint8_t ret_pub[32]);
/*
 * The same by name, without making @tenant one of the plane's tenants (privileged side of
 * privilege separation: a name alone must not become an interface or an nftables entry).
 */
int plane_tenant_pubkey(struct plane *p, const char *tenant, uint8_t ret_pub[32]);
/*
 * Bring @t's interface up (idempotent): link (kernel) or wireguard-go (userspace), private
 * key, listen port, the control plane's address, the prefix route, VRF, nftables.
 */
int plane_tenant_up(struct plane *p, const struct store_tenant *t);
bool plane_tenant_is_up(struct plane *p, const char *tenant);
/*
 * Cluster mode: this node now holds @t: changes of its interface are made here from now on
 * (the interface itself comes with plane_tenant_reconcile or the first change).
 */
int plane_tenant_hold(struct plane *p, const struct store_tenant *t);
/*
 * Cluster mode: this node does not hold @t (any more): take its interface down if it
 * exists (also one left by an earlier run: a wireguard-go it did not start, a kernel link).
 * If another call holds the interface lock for more than @timeout_ms (0: wait), the
 * interface is taken down without it (its wireguard-go killed, its link deleted) and the
 * plane's state follows when the lock is free: a call stuck on a lost database cannot keep
 * an interface up past its lease.
 */
void plane_tenant_drop(struct plane *p, const struct store_tenant *t, unsigned int timeout_ms);
/* Cluster mode: whether this node holds @tenant (always true outside cluster mode). */
bool plane_tenant_is_held(struct plane *p, const char *tenant);
/* Cluster mode: make @t's interface agree with the store (held tenants only; else 0). */
int plane_tenant_reconcile(struct plane *p, struct store *s, const struct store_tenant *t);
/*
 * Make @t's interface agree with the store about device @id and @keys (the keys the
 * caller's committed change replaced and set: old and new key, or the revoked key), in one
 * change: each of these keys and the device's current key is set with its device's
 * addresses if it is an active device's current key in @t, removed otherwise. Reads the
 * store after taking the interface lock, so concurrent callers may run in any order:
 * once all have returned the interface holds exactly the store's keys for them. Call it
 * after the store change is committed, before answering. Absent keys are not an error.
 */
int plane_device_sync(struct plane *p, struct store *s, const struct store_tenant *t,
	uint64_t id, const uint8_t *const keys[], size_t n_keys);
/*
 * Make every tenant's interface exist and hold exactly the active devices of the store.
 * Returns the number of peers added plus removed, or a negative errno.
 */
int plane_reconcile(struct plane *p, struct store *s);
/* Read @t's interface (peers with handshake and counters); caller wg_device_free()s. */
int plane_dump(struct plane *p, const struct store_tenant *t, struct wg_device **ret);
/*
 * Only the peers' keys, last handshakes and counters of @t's interface (the health
 * monitor's read; caller frees *ret). It does not wait for changes of the interface, nor
 * they for it: a read of 100,000 peers does not hold up an enrollment.
 */
int plane_peer_stats(struct plane *p, const struct store_tenant *t, struct wg_peer_stats **ret,
	size_t *ret_n);
/* Render the device's wg-quick configuration (no PrivateKey line); caller frees. */
char *plane_wg_quick(const struct store_tenant *t, const struct store_device *d,
	const uint8_t server_pub[32]);
/*
 * The same with a "# @comment" line in [Interface] and, if @postup is not NULL, a
 * "PostUp = @postup" line that gives the interface its private key (X.509 path).
 */
char *plane_wg_quick_postup(const struct store_tenant *t, const struct store_device *d,
	const uint8_t server_pub[32], const char *comment, const char *postup);

/* ---- health.c: reachability of the devices ---- */
struct health;

struct health_peer {
	uint8_t state; /* enum store_health_state */
	int64_t since;
	int64_t last_handshake; /* unix seconds, 0 = never */
	uint64_t rx_bytes;
	uint64_t tx_bytes;
	bool seen; /* on the interface at the last tick */
};

int health_new(struct health **ret, struct store *s, struct plane *p, unsigned int interval,
	unsigned int default_keepalive);
void health_free(struct health *h);
/* One tick now (tests, and the thread's loop). Returns the number of transitions. */
int health_tick(struct health *h);
/* The last tick's view of a device; -ENOENT if it was not on an interface. */
int health_peer_get(struct health *h, uint64_t device, struct health_peer *ret);

/* ---- the daemon's shared state (main.c owns it; api_*.c use it) ---- */
#define ENROLLD_TOKEN_MAX 256

struct tenant_token {
	char tenant[STORE_NAME_MAX];
	char token[ENROLLD_TOKEN_MAX];
};

struct attest_trust;
struct crl_set;
struct enroll_sessions;

struct enrolld {
	struct enrolld_conf conf;
	pthread_mutex_t token_lock; /* the tokens below (SIGHUP replaces them) */
	char admin_token[ENROLLD_TOKEN_MAX];
	char provisioning_token[ENROLLD_TOKEN_MAX];
	struct tenant_token *tenant_tokens;
	size_t n_tenant_tokens;
	char *tls_cert_pem;
	char *tls_key_pem;
	struct store *store;
	struct plane *plane;
	struct health *health;
	struct cluster *cluster; /* [cluster] enabled: this node's part (cluster/node.h) */
	struct attest_trust *trust; /* NULL: enrollment is unavailable (no ek_ca_dir) */
	pthread_mutex_t crl_lock;   /* crls (SIGHUP replaces them) */
	struct crl_set *crls;       /* attestation.crl_dir; NULL without it */
	struct enroll_sessions *sessions;
	struct http_server *http;
	struct privsep *ps; /* server.user set: the channel to the privileged process */
	pthread_t reconciler;
	bool reconciler_started;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	bool stopping;
};

/* ---- api.c: the route table and helpers shared by the handlers ---- */
extern const struct http_route api_routes[];
extern const size_t api_n_routes;

/* api_enroll.c: in-memory halves of attestation sessions (the store keeps the other) */
int enroll_sessions_new(struct enroll_sessions **ret);
void enroll_sessions_free(struct enroll_sessions *es);

int api_enroll_challenge(struct http_request *req, json_t **ret_body, void *ctx);
int api_enroll_complete(struct http_request *req, json_t **ret_body, void *ctx);

/* api_peer.c: the X.509 path (device certificates) */
int api_peer_enroll(struct http_request *req, json_t **ret_body, void *ctx);
int api_peer_get(struct http_request *req, json_t **ret_body, void *ctx);
int api_device_ca_add(struct http_request *req, json_t **ret_body, void *ctx);
int api_device_ca_list(struct http_request *req, json_t **ret_body, void *ctx);
int api_device_ca_remove(struct http_request *req, json_t **ret_body, void *ctx);
int api_serial_revoke(struct http_request *req, json_t **ret_body, void *ctx);
int api_serial_list(struct http_request *req, json_t **ret_body, void *ctx);
int api_serial_unrevoke(struct http_request *req, json_t **ret_body, void *ctx);
int api_tenant_policy(struct http_request *req, json_t **ret_body, void *ctx);
/* PEM of every tenant's device CAs (each once), for the listener; *ret NULL if none. */
int api_x509_trust_pem(struct enrolld *e, char **ret);

/* api_ui.c: the fleet dashboard's files (docs/dashboard.md) */
int api_ui_index(struct http_request *req, char **ret_text, const char **ret_content_type,
	void *ctx);
int api_ui_asset(struct http_request *req, char **ret_text, const char **ret_content_type,
	void *ctx);
int api_ui_redirect(struct http_request *req, char **ret_text, const char **ret_content_type,
	void *ctx);

/* api_crl.c: revocation lists of the tenants' device CAs */
int api_device_crl_add(struct http_request *req, json_t **ret_body, void *ctx);
int api_device_crl_list(struct http_request *req, json_t **ret_body, void *ctx);
int api_device_crl_remove(struct http_request *req, json_t **ret_body, void *ctx);
/* Add to @t the CRLs a device certificate of @tenant is checked against (crl_dir's, the tenant's). */
struct x509_trust;
int api_x509_trust_add_crls(struct enrolld *e, const char *tenant, struct x509_trust *t);

/* api_fleet.c */
int api_tenant_create(struct http_request *req, json_t **ret_body, void *ctx);
int api_tenant_list(struct http_request *req, json_t **ret_body, void *ctx);
int api_tenant_get(struct http_request *req, json_t **ret_body, void *ctx);
int api_registration_add(struct http_request *req, json_t **ret_body, void *ctx);
int api_registration_list(struct http_request *req, json_t **ret_body, void *ctx);
int api_registration_remove(struct http_request *req, json_t **ret_body, void *ctx);
int api_token_create(struct http_request *req, json_t **ret_body, void *ctx);
int api_token_list(struct http_request *req, json_t **ret_body, void *ctx);
int api_token_revoke(struct http_request *req, json_t **ret_body, void *ctx);
int api_device_list(struct http_request *req, json_t **ret_body, void *ctx);
int api_device_get(struct http_request *req, json_t **ret_body, void *ctx);
int api_device_revoke(struct http_request *req, json_t **ret_body, void *ctx);
int api_device_reinstate(struct http_request *req, json_t **ret_body, void *ctx);
int api_events(struct http_request *req, char **ret_text, const char **ret_content_type,
	void *ctx);
/* http_config.stream_wait for the event streams: returns when an event is committed. */
int api_events_wait(void *ctx, uint64_t *cursor, int timeout_ms);

/* api.c helpers */
/* The tenant a request may act on: 0, or -EPERM (tenant token naming another tenant). */
int api_check_tenant(struct http_request *req, const char *tenant);
/* A store error as an API error: sets the code and message, returns @err. */
int api_store_error(struct http_request *req, int err, const char *what);
/*
 * plane_device_sync() for a request's committed change, and in cluster mode then the wait
 * until the node holding the tenant has applied it (cluster_wait_applied): when this
 * returns 0 the tenant's interface, wherever it is, agrees with the change.
 */
int api_device_sync(struct enrolld *e, const struct store_tenant *t, uint64_t id,
	const uint8_t *const keys[], size_t n_keys);
/*
 * The tenant named by path parameter 0, if the caller's token may see it; an HTTP error
 * (403 scope, 404 unknown) otherwise.
 */
int api_path_tenant(struct http_request *req, struct enrolld *e, struct store_tenant *ret);
/* STORE_ENROLL_* as a metric label and log word: new, rotated, same, renewed. */
const char *api_enroll_result_name(int result);
void api_hex(const uint8_t *p, size_t n, char *out);
int api_unhex(const char *s, uint8_t *out, size_t n);
/* Optional string/integer members of a JSON body; -EBADMSG with an error set if mistyped. */
int api_json_str(struct http_request *req, json_t *body, const char *key, bool required,
	const char **ret);
int api_json_int(struct http_request *req, json_t *body, const char *key, bool required,
	json_int_t min, json_int_t max, json_int_t *ret);
/* Refuse members not in @known (NULL-terminated): a typo must not be ignored. */
int api_json_known(struct http_request *req, json_t *body, const char *const *known);
json_t *api_device_json(struct enrolld *e, const struct store_device *d);
json_t *api_tenant_json(struct enrolld *e, const struct store_tenant *t);

#endif
