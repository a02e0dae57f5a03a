// SPDX-License-Identifier: MIT
/*
 * The userspace WireGuard backend: the cross-platform UAPI text protocol
 * (https://www.wireguard.com/xplatform/) over <uapi_dir>/<ifname>.sock, as served by
 * wireguard-go.
 *
 *   get: we send "get=1\n\n"; the daemon answers "key=value\n" lines, device keys first,
 *        then each peer starting with its public_key, then "errno=N\n\n".
 *   set: we send "set=1\n", key=value lines, "\n"; the daemon answers "errno=N\n\n".
 *
 * Keys are lowercase hex in this protocol. The hex of a private or preshared key is as
 * secret as the key, so every buffer that held it (the reply buffer, the line copy, the
 * request chunk) is wiped on every path. A 100,000-peer reply is about 40 MB: it is read
 * in fixed chunks and parsed line by line as it arrives, never accumulated.
 *
 * wireguard-go writes errno as a negative number ("errno=-22"); the protocol text says
 * a positive one. Both are accepted and returned as -N.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/log.h"
#include "common/wg.h"

#define UAPI_SUFFIX ".sock"
/* Longest valid line is an endpoint with a v6 zone: well under this. */
#define UAPI_LINE_MAX 256
#define UAPI_READ_LEN 65536
#define UAPI_WRITE_LEN 16384
/*
 * No progress on the socket for this long means a wedged daemon. It bounds each
 * send/recv, not the whole operation: a 100,000-peer set keeps making progress.
 */
#define UAPI_IO_TIMEOUT_SEC 60

/* ---- small helpers ---- */

static void
set_err(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (errbuf == NULL || errlen == 0)
		return;
	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
}

/* The name becomes part of a path: refuse anything that is not a plain interface name. */
static int
check_ifname(const char *ifname)
{
	if (ifname == NULL || ifname[0] == '\0')
		return -EINVAL;
	if (strnlen(ifname, IFNAMSIZ) == IFNAMSIZ)
		return -ENAMETOOLONG;
	if (strchr(ifname, '/') != NULL || !strcmp(ifname, ".") || !strcmp(ifname, ".."))
		return -EINVAL;
	return 0;
}

static int
sock_path(struct sockaddr_un *sun, const char *dir, const char *ifname)
{
	int n;

	memset(sun, 0, sizeof(*sun));
	sun->sun_family = AF_UNIX;
	n = snprintf(sun->sun_path, sizeof(sun->sun_path), "%s/%s" UAPI_SUFFIX, dir, ifname);
	if (n < 0 || (size_t)n >= sizeof(sun->sun_path))
		return -ENAMETOOLONG;
	return 0;
}

static int
uapi_connect(const char *dir, const char *ifname)
{
	struct timeval tv = { .tv_sec = UAPI_IO_TIMEOUT_SEC };
	struct sockaddr_un sun;
	int fd, ret;

	ret = sock_path(&sun, dir, ifname);
	if (ret < 0)
		return ret;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) < 0 ||
		setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) < 0 ||
		connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	return fd;
}

/* Constant-time hex, after wireguard-tools' encoding.c: no branch or index on key bits. */
static void
key_to_hex(char hex[static 2 * WG_KEY_LEN], const uint8_t key[static WG_KEY_LEN])
{
	for (unsigned int i = 0; i < WG_KEY_LEN; i++) {
		unsigned int hi = key[i] >> 4, lo = key[i] & 0xf;

		hex[i * 2] = (char)(87U + hi + (((hi - 10U) >> 8) & ~38U));
		hex[i * 2 + 1] = (char)(87U + lo + (((lo - 10U) >> 8) & ~38U));
	}
}

/* One hex digit's value; *bad gets bit 0 set if it is not one. No branch on @c. */
static inline unsigned int
hex_nibble(unsigned int c, unsigned int *bad)
{
	unsigned int num, alpha, num_ok, alpha_ok;

	num = c ^ 48U;
	num_ok = ((num - 10U) >> 8) & 0xff;
	alpha = ((c & ~32U) - 55U) & 0xff;
	alpha_ok = (((alpha - 10U) ^ (alpha - 16U)) >> 8) & 0xff;
	*bad |= ((num_ok | alpha_ok) - 1U) >> 8;
	return (num_ok & num) | (alpha_ok & alpha);
}

/*
 * @len bytes of hex into a key, in constant time: no branch or index depends on a digit,
 * and bad digits are gathered into one flag tested at the end (a plain register, hidden
 * from the optimiser by an empty asm, rather than a volatile stored at every digit).
 */
static int
key_from_hex(uint8_t ret_key[static WG_KEY_LEN], const char *hex, size_t len)
{
	uint8_t key[WG_KEY_LEN];
	unsigned int bad = 0;

	if (len != 2 * WG_KEY_LEN)
		return -EINVAL;
	for (unsigned int i = 0; i < WG_KEY_LEN; i++) {
		unsigned int hi = hex_nibble((uint8_t)hex[2 * i], &bad);

		key[i] = (uint8_t)(hi << 4 | hex_nibble((uint8_t)hex[2 * i + 1], &bad));
	}
	__asm__("" : "+r"(bad));
	if (bad & 1) {
		explicit_bzero(key, sizeof(key));
		return -EINVAL;
	}
	memcpy(ret_key, key, WG_KEY_LEN);
	explicit_bzero(key, sizeof(key));
	return 0;
}

/* Decimal, digits only (no sign, no space), at most @max. */
static int
parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (*s == '\0')
		return -EINVAL;
	for (; *s != '\0'; s++) {
		unsigned int d;

		if (*s < '0' || *s > '9')
			return -EINVAL;
		d = (unsigned int)(*s - '0');
		if (v > (max - d) / 10)
			return -EINVAL;
		v = v * 10 + d;
	}
	*ret = v;
	return 0;
}

/*
 * wg_endpoint_parse plus the zone wireguard-go prints for link-local v6 endpoints:
 * "[fe80::1%eth0]:51820" or "[fe80::1%2]:51820".
 */
static int
parse_endpoint(union wg_endpoint *ret, const char *s)
{
	char buf[INET6_ADDRSTRLEN + 16], zone[IFNAMSIZ];
	const char *pct, *close;
	union wg_endpoint ep;
	uint64_t scope;
	size_t hostlen, zonelen;
	int r;

	pct = strchr(s, '%');
	if (pct == NULL)
		return wg_endpoint_parse(ret, s);
	close = strchr(pct, ']');
	if (s[0] != '[' || close == NULL)
		return -EINVAL;
	hostlen = (size_t)(pct - s);
	zonelen = (size_t)(close - pct - 1);
	if (zonelen == 0 || zonelen >= sizeof(zone) || hostlen + strlen(close) >= sizeof(buf))
		return -EINVAL;
	memcpy(zone, pct + 1, zonelen);
	zone[zonelen] = '\0';
	memcpy(buf, s, hostlen);
	strcpy(buf + hostlen, close);
	r = wg_endpoint_parse(&ep, buf);
	if (r < 0)
		return r;
	if (ep.addr.sa_family != AF_INET6)
		return -EINVAL;
	if (parse_u64(zone, UINT32_MAX, &scope) < 0) {
		scope = if_nametoindex(zone);
		if (scope == 0)
			return -EINVAL;
	}
	ep.addr6.sin6_scope_id = (uint32_t)scope;
	*ret = ep;
	return 0;
}

/* ---- the reply parser: one line at a time, so the reader never holds the whole reply ---- */

struct uapi_parser {
	struct wg_device *dev; /* NULL: a set reply, where only errno may appear */
	size_t peer;	       /* 1 + index of the peer being read; 0 in the device section */
	/* a stats read (dev is NULL): the peers' keys and counters only */
	bool stats;
	struct wg_peer_stats *st;
	size_t n_st, cap_st;
	bool have_errno;
	bool done;	     /* the blank line was read */
	bool closed_unread; /* the daemon hung up before sending a byte */
	int err;   /* -N from "errno=N" */
	char *errbuf;
	size_t errlen;
};

static int
parse_errno(struct uapi_parser *p, const char *value)
{
	bool neg = value[0] == '-';
	uint64_t v;

	if (parse_u64(value + neg, INT_MAX, &v) < 0)
		return -EPROTO;
	p->have_errno = true;
	p->err = -(int)v;
	if (v != 0)
		set_err(p->errbuf, p->errlen, "errno=%s", value);
	return 0;
}

/* The keys of a reply, most frequent first (a peer's lines in wireguard-go's order). */
enum uapi_key {
	UK_UNKNOWN = 0,
	UK_PUBLIC_KEY,
	UK_PRESHARED_KEY,
	UK_PROTOCOL_VERSION,
	UK_HANDSHAKE_SEC,
	UK_HANDSHAKE_NSEC,
	UK_TX_BYTES,
	UK_RX_BYTES,
	UK_KEEPALIVE,
	UK_ALLOWED_IP,
	UK_ENDPOINT,
	UK_ERRNO,
	UK_PRIVATE_KEY,
	UK_LISTEN_PORT,
	UK_FWMARK,
};

static const struct {
	const char *name;
	uint8_t len;
} uapi_keys[] = {
#define UK(id, name) [id] = { name, sizeof(name) - 1 }
	UK(UK_PUBLIC_KEY, "public_key"),
	UK(UK_PRESHARED_KEY, "preshared_key"),
	UK(UK_PROTOCOL_VERSION, "protocol_version"),
	UK(UK_HANDSHAKE_SEC, "last_handshake_time_sec"),
	UK(UK_HANDSHAKE_NSEC, "last_handshake_time_nsec"),
	UK(UK_TX_BYTES, "tx_bytes"),
	UK(UK_RX_BYTES, "rx_bytes"),
	UK(UK_KEEPALIVE, "persistent_keepalive_interval"),
	UK(UK_ALLOWED_IP, "allowed_ip"),
	UK(UK_ENDPOINT, "endpoint"),
	UK(UK_ERRNO, "errno"),
	UK(UK_PRIVATE_KEY, "private_key"),
	UK(UK_LISTEN_PORT, "listen_port"),
	UK(UK_FWMARK, "fwmark"),
#undef UK
};

/* Which key @name (@len bytes) is: a length test rejects almost every other entry. */
static enum uapi_key
uapi_key_of(const char *name, size_t len)
{
	for (unsigned int i = 1; i < sizeof(uapi_keys) / sizeof(uapi_keys[0]); i++)
		if (uapi_keys[i].len == len && memcmp(uapi_keys[i].name, name, len) == 0)
			return (enum uapi_key)i;
	return UK_UNKNOWN;
}

static int
parse_device_key(struct uapi_parser *p, enum uapi_key k, const char *value, size_t vlen)
{
	struct wg_device *dev = p->dev;
	uint64_t v;

	if (p->peer != 0)
		return -EPROTO; /* device keys come before the first peer */
	switch (k) {
	case UK_PRIVATE_KEY:
		if (key_from_hex(dev->private_key, value, vlen) < 0)
			return -EINVAL;
		if (!key_is_zero(dev->private_key))
			dev->flags |= WG_DEVICE_F_HAS_PRIVATE_KEY;
		break;
	case UK_LISTEN_PORT:
		if (parse_u64(value, UINT16_MAX, &v) < 0)
			return -EINVAL;
		dev->listen_port = (uint16_t)v;
		dev->flags |= WG_DEVICE_F_HAS_LISTEN_PORT;
		break;
	default: /* UK_FWMARK */
		if (parse_u64(value, UINT32_MAX, &v) < 0)
			return -EINVAL;
		dev->fwmark = (uint32_t)v;
		dev->flags |= WG_DEVICE_F_HAS_FWMARK;
		break;
	}
	return 0;
}

static int
parse_allowedip(struct wg_peer *peer, const char *value)
{
	struct wg_allowedip aip;
	int r;

	/* The protocol always carries the prefix length; wg_allowedip_parse would default it. */
	if (strchr(value, '/') == NULL)
		return -EINVAL;
	r = wg_allowedip_parse(&aip, value);
	if (r < 0)
		return r;
	return wg_peer_add_allowedip(peer, aip.family, aip.family == AF_INET ?
		(const void *)&aip.ip4 : (const void *)&aip.ip6, aip.cidr);
}

static int
parse_peer_key(struct uapi_parser *p, enum uapi_key k, const char *value, size_t vlen)
{
	struct wg_peer *peer;
	uint64_t v;
	int r;

	if (k == UK_PUBLIC_KEY) {
		r = wg_device_add_peer(p->dev, &peer);
		if (r < 0)
			return r;
		p->peer = p->dev->n_peers;
		if (key_from_hex(peer->public_key, value, vlen) < 0)
			return -EINVAL;
		peer->flags |= WG_PEER_F_HAS_PUBLIC_KEY;
		return 0;
	}
	if (p->peer == 0)
		return -EPROTO; /* a peer key before any public_key */
	peer = &p->dev->peers[p->peer - 1];

	switch (k) {
	case UK_PRESHARED_KEY:
		if (key_from_hex(peer->preshared_key, value, vlen) < 0)
			return -EINVAL;
		if (!key_is_zero(peer->preshared_key))
			peer->flags |= WG_PEER_F_HAS_PRESHARED_KEY;
		break;
	case UK_ENDPOINT:
		if (parse_endpoint(&peer->endpoint, value) < 0)
			return -EINVAL;
		break;
	case UK_KEEPALIVE:
		if (parse_u64(value, UINT16_MAX, &v) < 0)
			return -EINVAL;
		peer->persistent_keepalive = (uint16_t)v;
		peer->flags |= WG_PEER_F_HAS_PERSISTENT_KEEPALIVE;
		break;
	case UK_ALLOWED_IP:
		return parse_allowedip(peer, value);
	case UK_HANDSHAKE_SEC:
		if (parse_u64(value, INT64_MAX, &v) < 0)
			return -EINVAL;
		peer->last_handshake_sec = (int64_t)v;
		break;
	case UK_HANDSHAKE_NSEC:
		if (parse_u64(value, 999999999, &v) < 0)
			return -EINVAL;
		peer->last_handshake_nsec = (int64_t)v;
		break;
	case UK_RX_BYTES:
		if (parse_u64(value, UINT64_MAX, &peer->rx_bytes) < 0)
			return -EINVAL;
		break;
	case UK_TX_BYTES:
		if (parse_u64(value, UINT64_MAX, &peer->tx_bytes) < 0)
			return -EINVAL;
		break;
	default: /* UK_PROTOCOL_VERSION */
		if (parse_u64(value, UINT32_MAX, &v) < 0)
			return -EINVAL;
		if (v != 1)
			return -EPROTO; /* a protocol we do not speak */
		break;
	}
	return 0;
}

/*
 * A stats read keeps a peer's key, handshake time and counters. Every other line is
 * checked for its place only: the private and preshared keys are not even decoded.
 */
static int
parse_stats_key(struct uapi_parser *p, enum uapi_key k, const char *value, size_t vlen)
{
	struct wg_peer_stats *ps;
	uint64_t v;

	if (k >= UK_PRIVATE_KEY)
		return p->n_st == 0 ? 0 : -EPROTO; /* device keys come before the first peer */
	if (k == UK_PUBLIC_KEY) {
		if (p->n_st == p->cap_st) {
			size_t cap = p->cap_st ? p->cap_st * 2 : 64;

			ps = realloc(p->st, cap * sizeof(*ps));
			if (ps == NULL)
				return -ENOMEM;
			p->st = ps;
			p->cap_st = cap;
		}
		ps = &p->st[p->n_st++];
		memset(ps, 0, sizeof(*ps));
		return key_from_hex(ps->public_key, value, vlen) < 0 ? -EINVAL : 0;
	}
	if (p->n_st == 0)
		return -EPROTO; /* a peer key before any public_key */
	ps = &p->st[p->n_st - 1];
	switch (k) {
	case UK_HANDSHAKE_SEC:
		if (parse_u64(value, INT64_MAX, &v) < 0)
			return -EINVAL;
		ps->last_handshake_sec = (int64_t)v;
		break;
	case UK_RX_BYTES:
		return parse_u64(value, UINT64_MAX, &ps->rx_bytes) < 0 ? -EINVAL : 0;
	case UK_TX_BYTES:
		return parse_u64(value, UINT64_MAX, &ps->tx_bytes) < 0 ? -EINVAL : 0;
	case UK_PROTOCOL_VERSION:
		if (parse_u64(value, UINT32_MAX, &v) < 0)
			return -EINVAL;
		return v == 1 ? 0 : -EPROTO;
	default:
		break;
	}
	return 0;
}

/*
 * One line, without its '\n', parsed where it lies: @line[@len] (where the '\n' was) must
 * be writable, and the line is cut into key and value with NULs. The caller wipes the
 * buffer, which may have carried a key.
 */
static int
parse_line(struct uapi_parser *p, char *line, size_t len)
{
	enum uapi_key k;
	char *eq;
	int r;

	if (p->done) {
		set_err(p->errbuf, p->errlen, "data after the end of the reply");
		return -EPROTO;
	}
	if (len == 0) {
		if (!p->have_errno) {
			set_err(p->errbuf, p->errlen, "reply ended without an errno line");
			return -EPROTO;
		}
		p->done = true;
		return 0;
	}
	if (p->have_errno) {
		set_err(p->errbuf, p->errlen, "data after the errno line");
		return -EPROTO;
	}
	if (len > UAPI_LINE_MAX || memchr(line, '\0', len) != NULL) {
		set_err(p->errbuf, p->errlen, "malformed reply line");
		return -EPROTO;
	}
	line[len] = '\0';
	eq = memchr(line, '=', len);
	if (eq == NULL || eq == line) {
		set_err(p->errbuf, p->errlen, "malformed reply line");
		return -EPROTO;
	}
	*eq = '\0';
	k = uapi_key_of(line, (size_t)(eq - line));
	if (k == UK_ERRNO) {
		r = parse_errno(p, eq + 1);
	} else if (p->stats) {
		r = k == UK_UNKNOWN ? 0 : parse_stats_key(p, k, eq + 1,
			len - (size_t)(eq + 1 - line));
	} else if (p->dev == NULL) {
		r = -EPROTO; /* a set is answered with errno alone */
	} else if (k == UK_UNKNOWN) {
		log_debug("uapi: ignoring unknown key '%s'", line); /* newer daemons add keys */
		r = 0;
	} else if (k >= UK_PRIVATE_KEY) {
		r = parse_device_key(p, k, eq + 1, len - (size_t)(eq + 1 - line));
	} else {
		r = parse_peer_key(p, k, eq + 1, len - (size_t)(eq + 1 - line));
	}
	/* The key name is safe to report; the value may be a secret. */
	if (r < 0)
		set_err(p->errbuf, p->errlen, "bad '%s' in reply", line);
	return r;
}

/* After a complete get reply: derive what the protocol leaves out. */
static int
parse_finish(struct uapi_parser *p)
{
	struct wg_device *dev = p->dev;

	if (p->err < 0)
		return p->err;
	if (dev != NULL && (dev->flags & WG_DEVICE_F_HAS_PRIVATE_KEY)) {
		if (key_public_from_private(dev->public_key, dev->private_key) < 0)
			return -EINVAL;
		dev->flags |= WG_DEVICE_F_HAS_PUBLIC_KEY;
	}
	return 0;
}

int
wg_uapi_parse_get(const char *buf, size_t len, struct wg_device *dev)
{
	struct uapi_parser p = { .dev = dev };
	char line[UAPI_LINE_MAX + 1];
	size_t off = 0, n;
	int r;

	while (off < len) {
		const char *nl = memchr(buf + off, '\n', len - off);

		if (nl == NULL)
			return -EPROTO; /* truncated: an unterminated line */
		n = (size_t)(nl - (buf + off));
		if (n > UAPI_LINE_MAX)
			return -EPROTO;
		memcpy(line, buf + off, n); /* parse_line cuts the line where it lies */
		r = parse_line(&p, line, n);
		explicit_bzero(line, n + 1);
		if (r < 0)
			return r;
		off = (size_t)(nl - buf) + 1;
	}
	if (!p.done)
		return -EPROTO;
	return parse_finish(&p);
}

/*
 * Read and parse a reply as it arrives. The buffer only ever holds one chunk plus a
 * partial line (moved to the front, at most UAPI_LINE_MAX bytes), so the work is linear
 * in the reply's size.
 */
static int
read_reply(int fd, struct uapi_parser *p)
{
	size_t have = 0, start;
	bool seen = false;
	char *buf;
	ssize_t n;
	int ret = 0;

	buf = malloc(UAPI_READ_LEN);
	if (buf == NULL)
		return -ENOMEM;
	while (!p->done) {
		n = recv(fd, buf + have, UAPI_READ_LEN - have, 0);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = errno == EAGAIN ? -ETIMEDOUT : -errno;
			p->closed_unread = !seen && errno == ECONNRESET;
			goto out;
		}
		if (n == 0) {
			set_err(p->errbuf, p->errlen, "connection closed before the end of the reply");
			p->closed_unread = !seen;
			ret = -EPROTO;
			goto out;
		}
		seen = true;
		have += (size_t)n;
		start = 0;
		while (!p->done) {
			char *nl = memchr(buf + start, '\n', have - start);

			if (nl == NULL)
				break;
			/* parsed in place; the whole buffer is wiped below */
			ret = parse_line(p, buf + start, (size_t)(nl - (buf + start)));
			if (ret < 0)
				goto out;
			start = (size_t)(nl - buf) + 1;
		}
		if (have - start > UAPI_LINE_MAX) {
			set_err(p->errbuf, p->errlen, "reply line too long");
			ret = -EPROTO;
			goto out;
		}
		memmove(buf, buf + start, have - start);
		have -= start;
	}
out:
	explicit_bzero(buf, UAPI_READ_LEN);
	free(buf);
	return ret;
}

static int
send_all(int fd, const char *buf, size_t len)
{
	while (len > 0) {
		/* MSG_NOSIGNAL: a daemon that hangs up must not kill the caller with SIGPIPE. */
		ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return errno == EAGAIN ? -ETIMEDOUT : -errno;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

int
wg_uapi_get_device(const char *uapi_dir, const char *ifname, struct wg_device **ret_dev,
	char *errbuf, size_t errlen)
{
	struct uapi_parser p = { .errbuf = errbuf, .errlen = errlen };
	struct wg_device *dev = NULL;
	int fd = -1, ret;

	set_err(errbuf, errlen, "%s", "");
	ret = check_ifname(ifname);
	if (ret < 0)
		return ret;
	ret = wg_device_new(&dev, ifname);
	if (ret < 0)
		return ret;
	p.dev = dev;
	fd = uapi_connect(uapi_dir, ifname);
	if (fd < 0) {
		ret = fd;
		goto out;
	}
	ret = send_all(fd, "get=1\n\n", 7);
	if (ret < 0)
		goto out;
	ret = read_reply(fd, &p);
	if (ret < 0)
		goto out;
	ret = parse_finish(&p);
	if (ret < 0)
		goto out;
	*ret_dev = dev;
	dev = NULL;
out:
	if (fd >= 0)
		close(fd);
	wg_device_free(dev);
	return ret;
}

int
wg_uapi_get_peer_stats(const char *uapi_dir, const char *ifname, struct wg_peer_stats **ret_st,
	size_t *ret_n, char *errbuf, size_t errlen)
{
	struct uapi_parser p = { .stats = true, .errbuf = errbuf, .errlen = errlen };
	int fd = -1, ret;

	set_err(errbuf, errlen, "%s", "");
	ret = check_ifname(ifname);
	if (ret < 0)
		return ret;
	fd = uapi_connect(uapi_dir, ifname);
	if (fd < 0)
		return fd;
	ret = send_all(fd, "get=1\n\n", 7);
	if (ret == 0)
		ret = read_reply(fd, &p);
	if (ret == 0)
		ret = p.err;
	close(fd);
	if (ret < 0) {
		free(p.st);
		return ret;
	}
	*ret_st = p.st;
	*ret_n = p.n_st;
	return 0;
}

/* ---- set: the request is written in chunks from one buffer that is wiped after each ---- */

struct uapi_writer {
	int fd;
	int err; /* first send error; later writes are skipped */
	size_t len;
	char buf[UAPI_WRITE_LEN];
};

static void
w_flush(struct uapi_writer *w)
{
	if (w->err == 0 && w->len > 0)
		w->err = send_all(w->fd, w->buf, w->len);
	explicit_bzero(w->buf, w->len);
	w->len = 0;
}

static void
w_reserve(struct uapi_writer *w, size_t n)
{
	if (w->len + n > sizeof(w->buf))
		w_flush(w);
}

/* Every line we write is shorter than UAPI_LINE_MAX. */
static void __attribute__((format(printf, 2, 3)))
w_printf(struct uapi_writer *w, const char *fmt, ...)
{
	va_list ap;
	int n;

	w_reserve(w, UAPI_LINE_MAX);
	va_start(ap, fmt);
	n = vsnprintf(w->buf + w->len, sizeof(w->buf) - w->len, fmt, ap);
	va_end(ap);
	if (n > 0)
		w->len += (size_t)n;
}

static void
w_key(struct uapi_writer *w, const char *name, const uint8_t key[static WG_KEY_LEN])
{
	size_t n = strlen(name);

	w_reserve(w, n + 2 * WG_KEY_LEN + 2);
	memcpy(w->buf + w->len, name, n);
	w->buf[w->len + n] = '=';
	key_to_hex(w->buf + w->len + n + 1, key);
	w->buf[w->len + n + 1 + 2 * WG_KEY_LEN] = '\n';
	w->len += n + 2 * WG_KEY_LEN + 2;
}

static int
format_endpoint(char *out, size_t outlen, const union wg_endpoint *ep)
{
	char host[INET6_ADDRSTRLEN];

	if (ep->addr.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->addr4.sin_addr, host, sizeof(host));
		snprintf(out, outlen, "%s:%u", host, ntohs(ep->addr4.sin_port));
	} else if (ep->addr.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &ep->addr6.sin6_addr, host, sizeof(host));
		if (ep->addr6.sin6_scope_id != 0)
			snprintf(out, outlen, "[%s%%%u]:%u", host, ep->addr6.sin6_scope_id,
				ntohs(ep->addr6.sin6_port));
		else
			snprintf(out, outlen, "[%s]:%u", host, ntohs(ep->addr6.sin6_port));
	} else {
		return -EAFNOSUPPORT;
	}
	return 0;
}

/* Everything the daemon would reject is refused before a byte is sent. */
static int
validate_device(const struct wg_device *dev)
{
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *peer = &dev->peers[i];

		if (!(peer->flags & WG_PEER_F_HAS_PUBLIC_KEY))
			return -EINVAL;
		if (peer->endpoint.addr.sa_family != AF_UNSPEC &&
			peer->endpoint.addr.sa_family != AF_INET &&
			peer->endpoint.addr.sa_family != AF_INET6)
			return -EAFNOSUPPORT;
		for (size_t j = 0; j < peer->n_allowedips; j++) {
			const struct wg_allowedip *aip = &peer->allowedips[j];

			if (!(aip->family == AF_INET && aip->cidr <= 32) &&
				!(aip->family == AF_INET6 && aip->cidr <= 128))
				return -EINVAL;
		}
	}
	return 0;
}

static void
write_peer(struct uapi_writer *w, const struct wg_peer *peer)
{
	char text[INET6_ADDRSTRLEN + 32];

	w_key(w, "public_key", peer->public_key);
	/* update_only must come first: it only stops creation before anything is set. */
	if (peer->flags & WG_PEER_F_UPDATE_ONLY)
		w_printf(w, "update_only=true\n");
	if (peer->flags & WG_PEER_F_REMOVE_ME) {
		w_printf(w, "remove=true\n");
		return;
	}
	if (peer->flags & WG_PEER_F_HAS_PRESHARED_KEY)
		w_key(w, "preshared_key", peer->preshared_key);
	if (format_endpoint(text, sizeof(text), &peer->endpoint) == 0)
		w_printf(w, "endpoint=%s\n", text);
	if (peer->flags & WG_PEER_F_HAS_PERSISTENT_KEEPALIVE)
		w_printf(w, "persistent_keepalive_interval=%u\n", peer->persistent_keepalive);
	if (peer->flags & WG_PEER_F_REPLACE_ALLOWEDIPS)
		w_printf(w, "replace_allowed_ips=true\n");
	for (size_t j = 0; j < peer->n_allowedips; j++) {
		const struct wg_allowedip *aip = &peer->allowedips[j];

		inet_ntop(aip->family, aip->family == AF_INET ? (const void *)&aip->ip4 :
			(const void *)&aip->ip6, text, sizeof(text));
		w_printf(w, "allowed_ip=%s/%u\n", text, aip->cidr);
	}
}

/*
 * Connections kept for sets, one per interface, at most UAPI_CONNS (the least recently used
 * goes): wireguard-go serves any number of operations on one connection, and a connection
 * per set cost it an accept and a goroutine each time (28% of its CPU per added peer, and
 * 1.6x the adds per second kept, measured against wireguard-go v0.0.20220316).
 */
#define UAPI_CONNS 8

struct wg_uapi_conns {
	struct uapi_conn {
		char ifname[IFNAMSIZ];
		int fd; /* -1: none */
		uint64_t used;
	} c[UAPI_CONNS];
	uint64_t tick;
};

int
wg_uapi_conns_new(struct wg_uapi_conns **ret)
{
	struct wg_uapi_conns *cs = calloc(1, sizeof(*cs));

	if (cs == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < UAPI_CONNS; i++)
		cs->c[i].fd = -1;
	*ret = cs;
	return 0;
}

void
wg_uapi_conns_free(struct wg_uapi_conns *cs)
{
	if (cs == NULL)
		return;
	for (size_t i = 0; i < UAPI_CONNS; i++)
		if (cs->c[i].fd >= 0)
			close(cs->c[i].fd);
	free(cs);
}

/* The kept connection to @ifname, or NULL. */
static struct uapi_conn *
conn_find(struct wg_uapi_conns *cs, const char *ifname)
{
	for (size_t i = 0; i < UAPI_CONNS; i++)
		if (cs->c[i].fd >= 0 && strcmp(cs->c[i].ifname, ifname) == 0)
			return &cs->c[i];
	return NULL;
}

/* A slot for a new connection to @ifname: a free one, or the least recently used (closed). */
static struct uapi_conn *
conn_slot(struct wg_uapi_conns *cs, const char *ifname)
{
	struct uapi_conn *c = &cs->c[0];

	for (size_t i = 0; i < UAPI_CONNS; i++) {
		if (cs->c[i].fd < 0) {
			c = &cs->c[i];
			break;
		}
		if (cs->c[i].used < c->used)
			c = &cs->c[i];
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
	snprintf(c->ifname, sizeof(c->ifname), "%s", ifname);
	return c;
}

/* Send the set request for @dev on @w->fd and read the answer into @p. */
static int
set_once(struct uapi_writer *w, const struct wg_device *dev, struct uapi_parser *p)
{
	int ret;

	/* The order wg(8) uses; device keys must precede the first public_key. */
	w_printf(w, "set=1\n");
	if (dev->flags & WG_DEVICE_F_HAS_PRIVATE_KEY)
		w_key(w, "private_key", dev->private_key);
	if (dev->flags & WG_DEVICE_F_HAS_LISTEN_PORT)
		w_printf(w, "listen_port=%u\n", dev->listen_port);
	if (dev->flags & WG_DEVICE_F_HAS_FWMARK)
		w_printf(w, "fwmark=%u\n", dev->fwmark);
	if (dev->flags & WG_DEVICE_F_REPLACE_PEERS)
		w_printf(w, "replace_peers=true\n");
	for (size_t i = 0; i < dev->n_peers && w->err == 0; i++)
		write_peer(w, &dev->peers[i]);
	w_printf(w, "\n");
	w_flush(w);

	/*
	 * Read the answer even after a failed send: wireguard-go answers "errno=N" and hangs
	 * up as soon as one line is bad, which shows up here as EPIPE on the rest. Its errno
	 * is the error worth reporting.
	 */
	ret = read_reply(w->fd, p);
	if (ret == 0)
		ret = p->err;
	if (w->err < 0 && (ret == 0 || !p->have_errno))
		ret = w->err;
	return ret;
}

int
wg_uapi_set_device(const char *uapi_dir, struct wg_uapi_conns *cs, const struct wg_device *dev,
	char *errbuf, size_t errlen)
{
	struct uapi_parser p;
	struct uapi_writer *w = NULL;
	struct uapi_conn *c = NULL;
	int ret;

	set_err(errbuf, errlen, "%s", "");
	ret = check_ifname(dev->name);
	if (ret < 0)
		return ret;
	ret = validate_device(dev);
	if (ret < 0)
		return ret;
	w = calloc(1, sizeof(*w));
	if (w == NULL)
		return -ENOMEM;
	for (int attempt = 0;; attempt++) {
		bool kept = false;

		c = cs != NULL ? conn_find(cs, dev->name) : NULL;
		if (c != NULL) {
			w->fd = c->fd;
			kept = true;
		} else {
			w->fd = uapi_connect(uapi_dir, dev->name);
			if (w->fd < 0) {
				ret = w->fd;
				break;
			}
			if (cs != NULL) {
				c = conn_slot(cs, dev->name);
				c->fd = w->fd;
			}
		}
		if (c != NULL)
			c->used = ++cs->tick;
		w->err = 0;
		w->len = 0;
		memset(&p, 0, sizeof(p));
		p.errbuf = errbuf;
		p.errlen = errlen;
		ret = set_once(w, dev, &p);
		/* Only a clean success leaves a connection fit for the next request. */
		if (ret != 0 || w->err != 0 || !p.done) {
			close(w->fd);
			if (c != NULL)
				c->fd = -1;
		} else if (c == NULL) {
			close(w->fd);
		}
		w->fd = -1;
		/*
		 * A kept connection the daemon had already closed (it restarted, or the link was
		 * deleted and made again): it hung up without a byte of answer, so nothing was
		 * applied. Once more on a new connection. (Were it applied and the daemon gone
		 * before answering, the new daemon lost it anyway; sets are idempotent.)
		 */
		if (kept && attempt == 0 && !p.have_errno && p.closed_unread) {
			set_err(errbuf, errlen, "%s", "");
			continue;
		}
		break;
	}
	explicit_bzero(w, sizeof(*w));
	free(w);
	return ret;
}

/* ---- listing ---- */

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * A socket nobody listens on (left behind by a killed daemon) is not an interface, the
 * way wg(8) sees it. Unlike wg(8) we do not unlink it: the library does not delete
 * files it did not create.
 */
static bool
socket_is_live(const char *dir, const char *ifname)
{
	int fd = uapi_connect(dir, ifname);

	if (fd < 0)
		return false;
	close(fd);
	return true;
}

int
wg_uapi_list_devices(const char *uapi_dir, char ***ret_names, size_t *ret_n)
{
	char **names = NULL, **grown;
	size_t n = 0, cap = 0;
	struct dirent *ent;
	struct stat st;
	DIR *dir;
	int ret = 0;

	dir = opendir(uapi_dir);
	if (dir == NULL) {
		if (errno != ENOENT)
			return -errno;
		*ret_names = NULL;
		*ret_n = 0;
		return 0;
	}
	while ((ent = readdir(dir)) != NULL) {
		size_t len = strlen(ent->d_name), slen = strlen(UAPI_SUFFIX);
		char name[IFNAMSIZ];

		if (len <= slen || len - slen >= IFNAMSIZ ||
			strcmp(ent->d_name + len - slen, UAPI_SUFFIX))
			continue;
		memcpy(name, ent->d_name, len - slen);
		name[len - slen] = '\0';
		if (fstatat(dirfd(dir), ent->d_name, &st, 0) < 0 || !S_ISSOCK(st.st_mode) ||
			!socket_is_live(uapi_dir, name))
			continue;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			grown = realloc(names, cap * sizeof(*names));
			if (grown == NULL) {
				ret = -ENOMEM;
				goto out;
			}
			names = grown;
		}
		names[n] = strdup(name);
		if (names[n] == NULL) {
			ret = -ENOMEM;
			goto out;
		}
		n++;
	}
	if (n > 0)
		qsort(names, n, sizeof(*names), cmp_names);
	*ret_names = names;
	*ret_n = n;
	names = NULL;
	n = 0;
out:
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	closedir(dir);
	return ret;
}
