/* SPDX-License-Identifier: MIT */
#ifndef EDGE_KEYD_H
#define EDGE_KEYD_H

/*
 * edge-keyd, the gateway daemon: shared types of its modules.
 *
 *   conf.c       the INI configuration ([device], [server], [wireguard])
 *   state.c      the enrollment record (state_dir/enrollment.json): parse, validate, write
 *   enroll.c     provisioning, pre-registration and the two-round attested enrollment
 *                (device TPM through edge-keyd/tpm/tpmdev.h, HTTP through common/client.h)
 *   tunnel.c     the WireGuard interface: create, configure, check, heal, remove
 *   status.c     `edge-keyd status`: the tunnel and the enrollment, never a key
 *   main.c       the command line, the daemon loop, signals
 *
 * Like the libraries, the modules return 0 or a negative errno; unlike them they may log
 * (they are the daemon), and every error that reaches the operator says what to check.
 */

#include <net/if.h>
#include <stdbool.h>
#include <stdio.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#include "common/key.h"
#include "common/wg.h"

#define EKD_DEFAULT_CONF "/etc/edge-keyd/edge-keyd.conf"
#define EKD_DEFAULT_STATE_DIR "/var/lib/edge-keyd"
#define EKD_DEFAULT_TCTI "device:/dev/tpmrm0"
#define EKD_VERSION "0.1.0"
#define EKD_ENROLLMENT_FILE "enrollment.json"
#define EKD_TOKEN_MAX 256
#define EKD_MAX_ALLOWED_IPS 16
#define EKD_ENDPOINT_MAX 262 /* "[" 253-character name or v6 literal "]:" 5 digits */

enum ekd_backend {
	EKD_BACKEND_KERNEL = 0,
	EKD_BACKEND_USERSPACE,
};

/* ---- conf.c ------------------------------------------------------------------------------- */

struct ekd_conf {
	/* [device] */
	char *state_dir;
	char *tcti;
	char *ek_type;		/* "rsa2048", "p256", "p384" (checked) */
	char *ak_type;		/* "ecc" or "rsa" */
	char *pcr_policy;	/* seal the key to these PCRs ("sha256:0,7"), NULL = none */
	char *label;		/* the device's name in the registration, NULL = hostname */
	/* [server] */
	char *url;		/* base URL, "https://cp.example.net:8443" (no trailing /) */
	char *ca_file;
	bool allow_http;
	char *tenant;
	char *token_file;
	char *provisioning_token_file;
	long timeout;		/* seconds per request */
	/* [wireguard] */
	char *ifname;
	enum ekd_backend backend;
	char *wireguard_go;
	char *uapi_dir;
	long keepalive;		/* 0: as the server says (default 25) */
	long check_interval;	/* seconds between checks of the tunnel */
	long reenroll_after;	/* seconds the tunnel may stay down before re-enrolling, 0 never */
	bool remove_on_exit;	/* remove the interface on SIGTERM */
};

/*
 * Load @path (or parse @text when @path is NULL; @name then names it in messages) into
 * @ret. Unknown keys, bad values and missing required ones are errors with file and line
 * in @errbuf. @ret is written only on success; free with ekd_conf_clear().
 */
int ekd_conf_load(struct ekd_conf *ret, const char *path, char *errbuf, size_t errlen);
int ekd_conf_parse(struct ekd_conf *ret, const char *text, const char *name, char *errbuf,
	size_t errlen);
void ekd_conf_clear(struct ekd_conf *conf);
/* Which settings a command needs: -EINVAL with a message naming the missing key. */
int ekd_conf_require_server(const struct ekd_conf *conf, char *errbuf, size_t errlen);

/*
 * Read a token file: a regular file, mode 0600 or stricter (config_check_secret_file),
 * one line of 1..EKD_TOKEN_MAX-1 printable characters. The buffer is the caller's to wipe.
 */
int ekd_read_token(const char *path, char buf[static EKD_TOKEN_MAX], char *errbuf, size_t errlen);

/* ---- state.c ------------------------------------------------------------------------------ */

struct ekd_enrollment {
	char device_id[64];
	char tenant[64];
	struct wg_allowedip address;	/* our tunnel address: a /32 (or /128) */
	struct wg_allowedip address6;	/* a second one (IPv6 /128) if the tenant has IPv6 */
	bool has_address6;
	uint8_t server_public_key[WG_KEY_LEN];
	uint8_t wg_public_key[WG_KEY_LEN]; /* our key the server accepted */
	char endpoint[EKD_ENDPOINT_MAX];	/* "host:port", "[v6]:port" */
	struct wg_allowedip allowed_ips[EKD_MAX_ALLOWED_IPS];
	size_t n_allowed_ips;
	unsigned int keepalive;		/* the server's persistent_keepalive, 0 if none */
	int64_t enrolled_at;		/* unix time of the last accepted enrollment */
	char server_url[256];
};

/*
 * Fill @ret from the enrollment response (protocol.md "complete" 200 body). Every field is
 * checked (types, address a host prefix, keys, endpoint host:port, allowed IPs);
 * -EBADMSG with the reason in @errbuf otherwise. @wg_pub is the key we enrolled.
 */
int ekd_enrollment_from_response(struct ekd_enrollment *ret, const json_t *resp,
	const uint8_t wg_pub[static WG_KEY_LEN], time_t now, const char *server_url,
	char *errbuf, size_t errlen);
/* The record as JSON (what enrollment.json holds; no secret is part of it). */
json_t *ekd_enrollment_to_json(const struct ekd_enrollment *e);
/* Parse what ekd_enrollment_to_json wrote; -EBADMSG (reason in @errbuf) if invalid. */
int ekd_enrollment_from_json(struct ekd_enrollment *ret, const json_t *j, char *errbuf,
	size_t errlen);

/*
 * <state_dir>/enrollment.json: load (-ENOENT if not enrolled) or store atomically (temp
 * file 0600, fsync, rename, fsync of the directory).
 */
int ekd_enrollment_load(const char *state_dir, struct ekd_enrollment *ret, char *errbuf,
	size_t errlen);
int ekd_enrollment_store(const char *state_dir, const struct ekd_enrollment *e, char *errbuf,
	size_t errlen);

/* Write @data to @path atomically with @mode (temp file, fsync, rename, fsync dir). */
int ekd_write_file_atomic(const char *path, const void *data, size_t len, unsigned int mode);

/*
 * Split an endpoint "host:port" / "[v6]:port" into @host (brackets removed) and @port.
 * -EINVAL if malformed (empty host, port not 1..65535, over-long).
 */
int ekd_endpoint_split(const char *endpoint, char *host, size_t hostlen, uint16_t *ret_port);

/* "a.b.c.d/n" of @ip into @buf (at least INET6_ADDRSTRLEN + 4). */
void ekd_allowedip_format(const struct wg_allowedip *ip, char *buf, size_t len);

/* ---- enroll.c ----------------------------------------------------------------------------- */

/* `edge-keyd provision`: prepare the TPM (idempotent) and pre-register the EK. */
int ekd_provision(const struct ekd_conf *conf, bool offline);
/*
 * The attested enrollment with the sealed key in the state dir (@staged: the key staged
 * by a rotation). On success @ret holds the server's answer (not yet stored). Server
 * errors come back as -EINVAL (400), -EACCES (401/403), -EPERM (403 device_revoked),
 * -ENOENT (404), -EEXIST (409), -ETIME (410), -ENOSPC (pool exhausted), -EAGAIN (429 and
 * other 5xx), -EBADMSG (the server's answer is malformed: it may have accepted); no answer
 * at all is client_request()'s errno. @errbuf holds the server's code and message.
 * *@ret_retry_after: the last answer's Retry-After in seconds (429 rate_limited, 503
 * too_many_sessions; at most CLIENT_RETRY_AFTER_MAX), 0 if it had none.
 */
int ekd_enroll_once(const struct ekd_conf *conf, bool staged, struct ekd_enrollment *ret,
	unsigned int *ret_retry_after, char *errbuf, size_t errlen);
/* `enroll` and `rotate` wait for a busy control plane this often, this long at most. */
#define EKD_BUSY_TRIES 3
#define EKD_BUSY_WAIT_MAX 300
/* `edge-keyd enroll`: ekd_enroll_once, then store enrollment.json. */
int ekd_enroll(const struct ekd_conf *conf);
/*
 * `edge-keyd rotate`: stage a new sealed key, re-enroll with it (same address expected),
 * commit the staged key only after the server accepted it, store enrollment.json, then
 * give the interface the new key if it exists.
 */
int ekd_rotate(const struct ekd_conf *conf);
/*
 * The daemon's start: a rotation that a crash or a power cut interrupted (a staged key,
 * the control plane may hold either key) is finished before a key is used, as `rotate`
 * would (3 tries, 5 and 10 s apart, while the control plane does not answer). 0 if there
 * was none or it is finished.
 */
int ekd_rotate_resume(const struct ekd_conf *conf);
/* Our WireGuard public key (from the state dir, no TPM). */
int ekd_wg_public(const struct ekd_conf *conf, uint8_t ret_pub[static WG_KEY_LEN]);
/* Unseal the private key into @key (caller's locked memory; caller wipes); logs why not. */
int ekd_unseal(const struct ekd_conf *conf, uint8_t key[static WG_KEY_LEN]);
/*
 * The same, not logging: why not in one line in @errbuf (-EKEYEXPIRED: the PCRs of the
 * key's policy changed; the line names them and the remedy).
 */
int ekd_unseal_msg(const struct ekd_conf *conf, uint8_t key[static WG_KEY_LEN], char *errbuf,
	size_t errlen);
/*
 * Would the sealed key unseal now (its PCR policy; nothing is unsealed)? 0 yes; else the
 * reason in one line in @errbuf (-EKEYEXPIRED: the PCRs changed). @pcrs: the key's PCR
 * selection ("sha256:0,9"), "" without a policy.
 */
int ekd_key_check(const struct ekd_conf *conf, char *pcrs, size_t pcrslen, char *errbuf,
	size_t errlen);

/* ---- tunnel.c ----------------------------------------------------------------------------- */

struct ekd_tunnel;

int ekd_tunnel_new(struct ekd_tunnel **ret, const struct ekd_conf *conf);
/* Does not remove the interface (see ekd_tunnel_remove). NULL is a no-op. */
void ekd_tunnel_free(struct ekd_tunnel *t);
/* The configuration changed (SIGHUP): keep the pointer to the new one. */
void ekd_tunnel_set_conf(struct ekd_tunnel *t, const struct ekd_conf *conf);

/*
 * Bring the tunnel up for @e: the interface (kernel link or a wireguard-go), the private
 * key (unsealed into locked memory, wiped right after), the address, the one peer
 * (endpoint resolved now), its allowed IPs and keepalive, up, routes.
 */
int ekd_tunnel_up(struct ekd_tunnel *t, const struct ekd_enrollment *e);
/*
 * One check (every check_interval): returns 0 when healthy or healed; the tunnel's view
 * is in ekd_tunnel_health(). Recreates a vanished interface, reconfigures a wrong one, and
 * re-resolves and sets the endpoint when nothing was received for 3 x keepalive.
 */
int ekd_tunnel_check(struct ekd_tunnel *t, const struct ekd_enrollment *e, time_t now);

struct ekd_tunnel_health {
	bool up;		/* rx advanced within 3 x keepalive */
	time_t last_rx;		/* when rx was last seen advancing (0: never) */
	time_t down_since;	/* 0 while up */
	int64_t last_handshake;	/* unix seconds, 0 never */
	uint64_t rx_bytes, tx_bytes;
};
void ekd_tunnel_health(const struct ekd_tunnel *t, struct ekd_tunnel_health *ret);

/* Remove the interface (stops our wireguard-go, deletes a kernel link). */
int ekd_tunnel_remove(struct ekd_tunnel *t);

/*
 * Give a live interface a new private key (rotation): only if the interface exists;
 * -ENODEV otherwise (the daemon will configure it with the committed key).
 */
int ekd_tunnel_rekey(const struct ekd_conf *conf, const struct ekd_enrollment *e);

/* Resolve "host:port" (getaddrinfo, UDP; IPv4 preferred) into @ret. */
int ekd_resolve_endpoint(const char *endpoint, union wg_endpoint *ret, char *errbuf,
	size_t errlen);

/* ---- status.c ----------------------------------------------------------------------------- */

/* `edge-keyd status [--json]`: 0 if the tunnel is up, 3 if down, 1 on error (exit codes). */
int ekd_status(const struct ekd_conf *conf, bool as_json);

/* ---- wgquick.c: TPM custody under wg-quick / systemd-networkd ---- */
/* Unseal the key and set it on @ifname (never written to a file). */
int ekd_setkey(const struct ekd_conf *conf, const char *ifname);
/* Write the unsealed key to @fd, a socket to systemd-networkd (root or systemd-network). */
int ekd_networkd_key(const struct ekd_conf *conf, int fd);
/* Print the enrolled device's wg-quick file, PostUp = edge-keyd [-c @conf_path] setkey %i. */
int ekd_wgquick(const struct ekd_conf *conf, const char *conf_path, FILE *out);

/* ---- backoff (main.c's loop, tested in unit tests) ------------------------------------- */

struct ekd_backoff {
	unsigned int base, max;	/* seconds */
	unsigned int attempt;
};
/* The delay before attempt n: min(max, base * 2^n), with jitter in [d/2, d]. */
unsigned int ekd_backoff_next(struct ekd_backoff *b, uint32_t random);
/*
 * The delay when the server said Retry-After: @retry_after seconds: at least that, plus up
 * to a tenth more at random (a control plane that turned a fleet away at once told all of
 * it the same time), and never less than the backoff's own @delay.
 */
unsigned int ekd_backoff_retry_after(unsigned int delay, unsigned int retry_after,
	uint32_t random);
/*
 * Sleep @seconds, or return -EINTR early if SIGTERM or SIGINT is pending (blocked by the
 * daemon, which reads them from a signalfd): a stop does not wait out a Retry-After.
 */
int ekd_sleep_unless_stopping(unsigned int seconds);
void ekd_backoff_reset(struct ekd_backoff *b);

#endif
