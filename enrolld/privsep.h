/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_PRIVSEP_H
#define ENROLLD_PRIVSEP_H

/*
 * Privilege separation (server.user set; docs/security.md "Privilege separation").
 *
 * enrolld forks once at start. The parent keeps root's CAP_NET_ADMIN and the tenants'
 * private keys and does nothing but WireGuard, rtnetlink and nftables changes, asked for
 * by the child over two SOCK_SEQPACKET socketpairs (one for changes, one for the health
 * monitor's reads and systemd's notifications, so neither a read of 100,000 peers holds up
 * an enrollment nor a long change the watchdog). The child
 * drops to server.user, no capabilities, PR_SET_NO_NEW_PRIVS and a seccomp filter, and
 * does everything else: HTTP, JSON, attestation, the store, health.
 *
 * The message set is fixed and small (struct ps_* below, host byte order: both ends are
 * the same binary on the same host). The parent parses every request with
 * ps_parse_request() (layout: type, exact length, NUL-terminated names, counts, flags) and
 * checks it with ps_check_request() against what it knows (struct ps_registry): only
 * TENANT_UP introduces a tenant, and pins its name to one interface, listen port and
 * prefixes for the life of the parent; every other request names a pinned tenant and never
 * an interface; every peer's allowed IP is one usable /32 (/128) inside the tenant's
 * prefix, not the control plane's own address. Anything else is refused, logged and
 * answered with an error.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/key.h"
#include "enrolld/addr.h"

#define PS_NAME_MAX 32	  /* = STORE_NAME_MAX */
#define PS_IFNAME_MAX 16  /* = STORE_IFNAME_MAX = IFNAMSIZ */
#define PS_PEERS_MAX 1024 /* peers per PEERS_SET message, entries per reply chunk */
#define PS_DUMP_AIPS 4	  /* allowed IPs per peer in a DUMP reply (more: the peer is marked) */
#define PS_TENANTS_MAX 1024
#define PS_MSG_MAX (128 * 1024) /* no message is longer */

enum ps_type {
	PS_TENANT_KEY = 1, /* ps_name -> reply: pub[32] */
	PS_TENANT_UP = 2,  /* ps_tenant -> reply */
	PS_PEERS_SET = 3,  /* ps_name + count x ps_peer -> reply */
	PS_DUMP = 4,	   /* ps_name -> replies: count x ps_dump_peer, PS_F_MORE on all but last */
	PS_STATS = 5,	   /* ps_name -> replies: count x ps_stat, PS_F_MORE on all but last */
	PS_NOTIFY = 6,	   /* hdr.count = enum ps_notify -> reply */
	PS_REPLY = 0x80,
};

enum ps_notify {
	PS_NOTIFY_READY = 1,
	PS_NOTIFY_WATCHDOG = 2,
	PS_NOTIFY_RELOADING = 3,
	PS_NOTIFY_STOPPING = 4,
};

#define PS_F_MORE 1U /* reply: another chunk follows */

struct ps_hdr {
	uint16_t type;
	uint16_t flags;
	uint32_t count; /* entries that follow the fixed body (PEERS_SET, replies) */
	int32_t status; /* replies: 0 or a negative errno */
	uint32_t pad;
};

struct ps_name {
	char name[PS_NAME_MAX];
};

struct ps_tenant {
	char name[PS_NAME_MAX];
	char ifname[PS_IFNAME_MAX];
	uint16_t listen_port;
	uint8_t plen4;
	uint8_t plen6; /* 0 = no IPv6 */
	uint8_t prefix4[4];
	uint8_t self4[4];
	uint8_t prefix6[16];
	uint8_t self6[16];
};

enum ps_peer_op {
	PS_PEER_SET = 1, /* add or update, replacing its allowed IPs */
	PS_PEER_REMOVE = 2,
};

struct ps_peer {
	uint8_t key[WG_KEY_LEN];
	uint8_t op;
	uint8_t has6;
	uint8_t pad[2];
	uint8_t addr4[4];
	uint8_t addr6[16];
};

struct ps_aip {
	uint8_t family; /* 4 or 6 (not AF_*: the wire does not depend on libc) */
	uint8_t cidr;
	uint8_t pad[2];
	uint8_t addr[16];
};

struct ps_dump_peer {
	uint8_t key[WG_KEY_LEN];
	uint8_t n_aips;
	uint8_t truncated; /* the peer has more than PS_DUMP_AIPS allowed IPs */
	uint8_t pad[6];
	struct ps_aip aips[PS_DUMP_AIPS];
};

struct ps_stat {
	uint8_t key[WG_KEY_LEN];
	int64_t last_handshake_sec;
	uint64_t rx_bytes;
	uint64_t tx_bytes;
};

/* A request as parsed by the parent: views into the buffer it was parsed from. */
struct ps_request {
	uint16_t type;
	uint32_t count;
	const struct ps_name *name;	/* KEY, PEERS_SET, DUMP, STATS */
	const struct ps_tenant *tenant; /* TENANT_UP */
	const struct ps_peer *peers;	/* PEERS_SET: count of them */
};

/* What the parent knows: tenants pinned by TENANT_UP. */
struct ps_tenant_rec {
	char name[PS_NAME_MAX];
	char ifname[PS_IFNAME_MAX];
	uint16_t listen_port;
	struct addr_prefix prefix4;
	struct addr_prefix prefix6; /* family 0: none */
	uint8_t self4[16];
	uint8_t self6[16];
};

struct ps_registry {
	struct ps_tenant_rec *t;
	size_t n;
	/* wireguard.tenant_address_space: a new tenant's prefixes must lie inside one of these */
	const struct addr_prefix *space;
	size_t n_space;
};

/* privsep_msg.c: pure, no I/O, no logging (unit and fuzz tested) */

/*
 * Check the layout of the request in @buf: known type, exact length for it, names
 * NUL-terminated and well-formed, counts within PS_PEERS_MAX, peer ops and padding.
 * Returns 0 and fills @ret, or -EBADMSG with a reason in @why.
 */
int ps_parse_request(const void *buf, size_t len, struct ps_request *ret, char *why, size_t whylen);
/*
 * Check a parsed request against @reg: the tenant it names is pinned (all but TENANT_KEY
 * and TENANT_UP); a TENANT_UP of a known tenant repeats its pinned interface, port and
 * prefixes exactly, a new one uses no interface, port or prefix of another and fits
 * PS_TENANTS_MAX; each peer's addresses are usable addresses in the tenant's prefixes, not
 * the tenant's own. Returns 0 (*ret_rec the tenant, NULL for TENANT_KEY, NOTIFY and a new
 * TENANT_UP), -ENOENT unknown tenant, -EPERM against a pin, -EINVAL bad address, with a
 * reason in @why.
 */
int ps_check_request(const struct ps_registry *reg, const struct ps_request *req,
	const struct ps_tenant_rec **ret_rec, char *why, size_t whylen);
/* Pin the tenant of a checked TENANT_UP (no-op when already pinned). -ENOMEM. */
int ps_registry_pin(struct ps_registry *reg, const struct ps_tenant *t);
void ps_registry_clear(struct ps_registry *reg);
/* A TENANT_UP body as a registry record (no checks). */
void ps_tenant_to_rec(const struct ps_tenant *t, struct ps_tenant_rec *ret);
/* Tenant names as the store accepts them: 1..31 of [a-z0-9_-], starting alnum. */
bool ps_name_ok(const char name[static PS_NAME_MAX]);

/* privsep.c */
struct enrolld_conf;
struct privsep;
struct store_tenant;
struct wg_device;
struct wg_peer_stats;

/*
 * Fork. In the parent this never returns: it serves the child until the child exits,
 * then exits itself (0 after a SIGTERM/SIGINT it forwarded, 1 if the child died on its
 * own: systemd's Restart= starts both again). In the child it returns 0 with *ret the
 * client end; the child must then open what it needs as root and call privsep_drop().
 */
int privsep_start(const struct enrolld_conf *conf, struct privsep **ret);
/*
 * Become @user (its uid, gid and supplementary groups), no capabilities in any set,
 * no_new_privs, the seccomp filter. Any failure is fatal (the caller exits).
 */
int privsep_drop(const char *user);
/*
 * The network process's seccomp filter (privsep_filter.c): an allow-list, EPERM for the
 * rest, on every thread of the process. 0, 1 if it could only be loaded on the calling
 * thread (and those it starts later: no seccomp(2), e.g. under valgrind), or a negative
 * errno. Never logs.
 */
int privsep_seccomp_load(void);
/* enrolld --privsep-selftest USER KEYFILE: drop as the child does, then try what it must not. */
int privsep_selftest(const char *user, const char *keyfile);

int privsep_tenant_key(struct privsep *ps, const char *tenant, uint8_t ret_pub[static 32]);
int privsep_tenant_up(struct privsep *ps, const struct store_tenant *t);
/* The peers of @dev (REMOVE_ME or a v4 /32 and optional v6 /128), in chunks. */
int privsep_peers_set(struct privsep *ps, const char *tenant, const struct wg_device *dev);
int privsep_dump(
	struct privsep *ps, const char *tenant, const char *ifname, struct wg_device **ret);
int privsep_stats(
	struct privsep *ps, const char *tenant, struct wg_peer_stats **ret, size_t *ret_n);
int privsep_notify(struct privsep *ps, enum ps_notify what);
/* The child's end: closes both channels (the parent sees EOF). NULL is a no-op. */
void privsep_free(struct privsep *ps);
/* Tests (tests/progs/privsep_probe): send @len raw bytes on the main channel, the status. */
int privsep_raw_call(struct privsep *ps, const void *msg, size_t len);

#endif
