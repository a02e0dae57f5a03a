/* SPDX-License-Identifier: MIT */
#ifndef COMMON_WG_H
#define COMMON_WG_H

/*
 * Driving WireGuard: one API, two backends.
 *
 *  - kernel: generic netlink against the "wireguard" family (common/wg_genl.c)
 *  - userspace: the cross-platform UAPI text protocol over
 *    <uapi_dir>/<ifname>.sock, as served by wireguard-go (common/wg_uapi.c)
 *
 * The backend is chosen per interface the way wg(8) does: if <uapi_dir>/<ifname>.sock
 * exists the interface is userspace, otherwise it is asked of the kernel.
 *
 * The data model follows wireguard-tools' containers.h, with arrays instead of
 * linked lists because a control plane holds 100,000 peers. Keys are fixed arrays;
 * wg_device_free() wipes the whole device, including every preshared key.
 *
 * Nothing here logs above debug. Functions return 0 (or a count) or a negative errno.
 */

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/key.h"

#define WG_UAPI_DEFAULT_DIR "/var/run/wireguard"

enum wg_backend {
	WG_BACKEND_AUTO = 0,
	WG_BACKEND_KERNEL,
	WG_BACKEND_UAPI,
};

/* struct wg_device.flags */
enum {
	WG_DEVICE_F_REPLACE_PEERS = 1U << 0,
	WG_DEVICE_F_HAS_PRIVATE_KEY = 1U << 1,
	WG_DEVICE_F_HAS_PUBLIC_KEY = 1U << 2,
	WG_DEVICE_F_HAS_LISTEN_PORT = 1U << 3,
	WG_DEVICE_F_HAS_FWMARK = 1U << 4,
};

/* struct wg_peer.flags */
enum {
	WG_PEER_F_REMOVE_ME = 1U << 0,
	WG_PEER_F_REPLACE_ALLOWEDIPS = 1U << 1,
	WG_PEER_F_HAS_PUBLIC_KEY = 1U << 2,
	WG_PEER_F_HAS_PRESHARED_KEY = 1U << 3,
	WG_PEER_F_HAS_PERSISTENT_KEEPALIVE = 1U << 4,
	WG_PEER_F_UPDATE_ONLY = 1U << 5, /* only change an existing peer, never create */
};

struct wg_allowedip {
	uint16_t family; /* AF_INET or AF_INET6 */
	uint8_t cidr;
	union {
		struct in_addr ip4;
		struct in6_addr ip6;
	};
};

union wg_endpoint {
	struct sockaddr addr; /* addr.sa_family == AF_UNSPEC (0): no endpoint */
	struct sockaddr_in addr4;
	struct sockaddr_in6 addr6;
};

struct wg_peer {
	uint32_t flags;
	uint8_t public_key[WG_KEY_LEN];
	uint8_t preshared_key[WG_KEY_LEN];
	union wg_endpoint endpoint;
	int64_t last_handshake_sec; /* 0 and 0: never */
	int64_t last_handshake_nsec;
	uint64_t rx_bytes;
	uint64_t tx_bytes;
	uint16_t persistent_keepalive; /* seconds, 0 = off */
	struct wg_allowedip *allowedips;
	size_t n_allowedips;
	size_t cap_allowedips;
};

struct wg_device {
	char name[IFNAMSIZ];
	uint32_t ifindex;
	uint32_t flags;
	uint8_t public_key[WG_KEY_LEN];
	uint8_t private_key[WG_KEY_LEN];
	uint32_t fwmark;
	uint16_t listen_port;
	struct wg_peer *peers;
	size_t n_peers;
	size_t cap_peers;
	bool locked; /* private: the struct (with private_key) is in locked memory */
	bool peers_in_page; /* private: @peers is the rest of that locked page */
};

/* ---- data model (common/wg_model.c) ---- */

/*
 * A new empty device named @ifname. Free with wg_device_free(). The struct, which holds
 * the private key, is in locked memory (common/secmem.h) when RLIMIT_MEMLOCK allows,
 * ordinary memory otherwise; it is wiped on free either way.
 */
int wg_device_new(struct wg_device **ret_dev, const char *ifname);
/* Wipes every key the device and its peers hold, then frees. NULL is a no-op. */
void wg_device_free(struct wg_device *dev);
/*
 * Append a zeroed peer; returns it in *ret_peer. The pointer is valid until the next
 * wg_device_add_peer() on the same device (the array may move).
 */
int wg_device_add_peer(struct wg_device *dev, struct wg_peer **ret_peer);
int wg_peer_add_allowedip(struct wg_peer *peer, uint16_t family, const void *addr, uint8_t cidr);
/* Find a peer by public key (constant-time compare per peer); NULL if absent. */
struct wg_peer *wg_device_find_peer(const struct wg_device *dev,
	const uint8_t public_key[static WG_KEY_LEN]);
/* Parse "a.b.c.d/n" or "x::y/n" into @ret. -EINVAL on bad input. */
int wg_allowedip_parse(struct wg_allowedip *ret, const char *s);
/* Parse "host:port", "[v6]:port" (numeric only: resolution is the caller's job). */
int wg_endpoint_parse(union wg_endpoint *ret, const char *s);

/* ---- control handle (common/wg.c): picks the backend per interface ---- */

struct wg_ctl;

/* Opens nothing yet: sockets are opened on first use and kept for reuse. */
int wg_ctl_new(struct wg_ctl **ret_ctl);
void wg_ctl_free(struct wg_ctl *ctl);
/* Where userspace implementations keep their sockets; default WG_UAPI_DEFAULT_DIR. */
int wg_ctl_set_uapi_dir(struct wg_ctl *ctl, const char *dir);
/* Force a backend for every interface (tests, benchmarks); AUTO restores wg(8)'s rule. */
void wg_ctl_set_backend(struct wg_ctl *ctl, enum wg_backend backend);
/* Which backend @ifname would use. */
enum wg_backend wg_ctl_backend_of(struct wg_ctl *ctl, const char *ifname);
/*
 * The last error's detail, if the backend gave one (the kernel's extended-ack text,
 * or the UAPI errno line); "" otherwise. Valid until the next call on @ctl.
 */
const char *wg_ctl_last_error(const struct wg_ctl *ctl);

/* Read a device with all its peers. The caller frees *ret_dev with wg_device_free(). */
int wg_get_device(struct wg_ctl *ctl, const char *ifname, struct wg_device **ret_dev);
/*
 * Apply @dev: the device fields whose WG_DEVICE_F_HAS_* flag is set, and every peer in
 * dev->peers with its flags (add or update; WG_PEER_F_REMOVE_ME removes). Large peer
 * sets are split across as many messages as needed. Every buffer that carried a key is
 * wiped.
 */
int wg_set_device(struct wg_ctl *ctl, const struct wg_device *dev);
/* A peer's public key, last handshake and counters: what a health monitor reads. */
struct wg_peer_stats {
	uint8_t public_key[WG_KEY_LEN];
	int64_t last_handshake_sec; /* 0: never */
	uint64_t rx_bytes;
	uint64_t tx_bytes;
};

/*
 * Read only the public key, last handshake and counters of every peer of @ifname, into a
 * malloc()ed array the caller frees (NULL with *ret_n 0 when there are none). For the
 * userspace backend this skips most of a full read's work (allowed IPs, endpoints, the
 * peers array, preshared keys, which are not even decoded); for the kernel it is a full
 * read, converted.
 */
int wg_get_peer_stats(struct wg_ctl *ctl, const char *ifname, struct wg_peer_stats **ret,
	size_t *ret_n);
/* Names of the WireGuard interfaces this host has (both backends). Free each and the array. */
int wg_list_devices(struct wg_ctl *ctl, char ***ret_names, size_t *ret_n);

/* ---- backends: used by wg.c, exposed for tests ---- */

struct wg_genl;
int wg_genl_open(struct wg_genl **ret);
void wg_genl_close(struct wg_genl *genl);
int wg_genl_get_device(struct wg_genl *genl, const char *ifname, struct wg_device **ret_dev);
int wg_genl_set_device(struct wg_genl *genl, const struct wg_device *dev);
const char *wg_genl_last_error(const struct wg_genl *genl);

int wg_uapi_get_device(const char *uapi_dir, const char *ifname, struct wg_device **ret_dev,
	char *errbuf, size_t errlen);
/*
 * Connections kept open for sets (wg_ctl keeps one set of them): NULL to
 * wg_uapi_set_device() connects for that call alone. Not thread-safe, as wg_ctl.
 */
struct wg_uapi_conns;
int wg_uapi_conns_new(struct wg_uapi_conns **ret);
void wg_uapi_conns_free(struct wg_uapi_conns *cs);
int wg_uapi_set_device(const char *uapi_dir, struct wg_uapi_conns *cs, const struct wg_device *dev,
	char *errbuf, size_t errlen);
int wg_uapi_list_devices(const char *uapi_dir, char ***ret_names, size_t *ret_n);
int wg_uapi_get_peer_stats(const char *uapi_dir, const char *ifname, struct wg_peer_stats **ret,
	size_t *ret_n, char *errbuf, size_t errlen);

/*
 * Pure parsers of untrusted input, exposed for unit and fuzz tests.
 *
 * wg_genl_parse_dump_msg: fold one WG_CMD_GET_DEVICE reply message into @dev, merging
 * a peer whose allowed IPs continue from the previous message (same public key as
 * the last peer). Returns 0 or -EINVAL/-EPROTO on a malformed message.
 *
 * wg_uapi_parse_get: parse a complete "get=1" reply (up to and including the blank
 * line; "errno=N" is returned as -N) into @dev.
 */
struct nlmsghdr;
int wg_genl_parse_dump_msg(const struct nlmsghdr *nlh, struct wg_device *dev);
int wg_uapi_parse_get(const char *buf, size_t len, struct wg_device *dev);

#endif
