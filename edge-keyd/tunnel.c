// SPDX-License-Identifier: MIT
/*
 * The gateway's WireGuard interface: one interface, one peer (the control plane).
 *
 * Bringing it up: the link (kernel: rtnetlink "wireguard" link; userspace: a wireguard-go
 * through common/wgproc), the private key (unsealed by the TPM into locked memory, handed
 * to WireGuard, wiped), the peer (the control plane's key, its endpoint resolved now, the
 * tenant prefix as allowed IPs, PersistentKeepalive), the address, up, the routes.
 *
 * Watching it (every check_interval): read the device; a missing interface is recreated,
 * an interface that lost our configuration (key, peer) is reconfigured. The gateway only
 * hears from the control plane at handshakes (every 2 minutes while our keepalives flow)
 * and when the control plane talks to it, so:
 *   - no rx progress for 3 x keepalive: re-resolve the endpoint's name and set it again
 *     (a control plane that moved; cheap and harmless when nothing changed);
 *   - no rx progress for REKEY_AFTER_TIME (120 s) + 3 x keepalive: the tunnel is down.
 * docs/edge-keyd.md explains why the gateway cannot use the control plane's 3 x keepalive
 * rule for "down".
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/log.h"
#include "common/rtnl.h"
#include "common/secmem.h"
#include "common/wg.h"
#include "common/wgproc.h"
#include "edge-keyd/edge-keyd.h"

#define REKEY_AFTER_TIME 120
#define DEFAULT_KEEPALIVE 25

struct ekd_tunnel {
	const struct ekd_conf *conf;
	struct wg_ctl *wg;
	struct rtnl *rtnl;
	struct wgproc proc;
	bool have_counters;
	uint64_t last_rx_bytes;
	time_t last_rx;		/* rx last seen advancing, or when we (re)configured */
	time_t down_since;
	time_t last_resolve;
	bool need_resolve;	/* the endpoint did not resolve: try at every check */
	bool broken;		/* healing: say why once, not at every check */
	bool up;
	int64_t last_handshake;
	uint64_t rx_bytes, tx_bytes;
	char last_err[400];	/* say a repeating failure once */
};

static unsigned int
keepalive_of(const struct ekd_conf *conf, const struct ekd_enrollment *e)
{
	if (conf->keepalive > 0)
		return (unsigned int)conf->keepalive;
	if (e->keepalive > 0)
		return e->keepalive;
	return DEFAULT_KEEPALIVE;
}

/* Log a failure once per distinct message (at debug when it repeats). */
static void __attribute__((format(printf, 2, 3)))
tunnel_fail(struct ekd_tunnel *t, const char *fmt, ...)
{
	char msg[sizeof(t->last_err)];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (strcmp(msg, t->last_err) != 0)
		log_warnx("%s", msg);
	else
		log_debug("%s", msg);
	snprintf(t->last_err, sizeof(t->last_err), "%s", msg);
}

int
ekd_tunnel_new(struct ekd_tunnel **ret, const struct ekd_conf *conf)
{
	struct ekd_tunnel *t;
	int r;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->conf = conf;
	r = wg_ctl_new(&t->wg);
	if (r < 0)
		goto err;
	r = wg_ctl_set_uapi_dir(t->wg, conf->uapi_dir);
	if (r < 0)
		goto err;
	wg_ctl_set_backend(t->wg, conf->backend == EKD_BACKEND_USERSPACE ? WG_BACKEND_UAPI :
		WG_BACKEND_KERNEL);
	r = rtnl_open(&t->rtnl);
	if (r < 0)
		goto err;
	*ret = t;
	return 0;
err:
	ekd_tunnel_free(t);
	return r;
}

void
ekd_tunnel_free(struct ekd_tunnel *t)
{
	if (t == NULL)
		return;
	if (t->rtnl != NULL)
		rtnl_close(t->rtnl);
	wg_ctl_free(t->wg);
	free(t);
}

void
ekd_tunnel_set_conf(struct ekd_tunnel *t, const struct ekd_conf *conf)
{
	t->conf = conf;
	(void)wg_ctl_set_uapi_dir(t->wg, conf->uapi_dir);
	wg_ctl_set_backend(t->wg, conf->backend == EKD_BACKEND_USERSPACE ? WG_BACKEND_UAPI :
		WG_BACKEND_KERNEL);
}

void
ekd_tunnel_health(const struct ekd_tunnel *t, struct ekd_tunnel_health *ret)
{
	ret->up = t->up;
	ret->last_rx = t->have_counters ? t->last_rx : 0;
	ret->down_since = t->down_since;
	ret->last_handshake = t->last_handshake;
	ret->rx_bytes = t->rx_bytes;
	ret->tx_bytes = t->tx_bytes;
}

/* ---- endpoint --------------------------------------------------------------------------- */

int
ekd_resolve_endpoint(const char *endpoint, union wg_endpoint *ret, char *errbuf, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_DGRAM, .ai_protocol = IPPROTO_UDP,
		.ai_flags = AI_NUMERICSERV | AI_ADDRCONFIG };
	struct addrinfo *res = NULL, *pick = NULL;
	char host[EKD_ENDPOINT_MAX], port[8];
	uint16_t p;
	int r;

	if (ekd_endpoint_split(endpoint, host, sizeof(host), &p) < 0) {
		snprintf(errbuf, errlen, "endpoint '%s' is not host:port", endpoint);
		return -EINVAL;
	}
	snprintf(port, sizeof(port), "%u", p);
	r = getaddrinfo(host, port, &hints, &res);
	if (r == EAI_ADDRFAMILY || r == EAI_NONAME) {
		/* AI_ADDRCONFIG hides literals of a family without a configured address. */
		hints.ai_flags &= ~AI_ADDRCONFIG;
		r = getaddrinfo(host, port, &hints, &res);
	}
	if (r != 0) {
		snprintf(errbuf, errlen, "cannot resolve '%s': %s", host,
			r == EAI_SYSTEM ? strerror(errno) : gai_strerror(r));
		return r == EAI_AGAIN ? -EAGAIN : -EHOSTUNREACH;
	}
	/* IPv4 first: a gateway's IPv6 is more often half-configured than absent. */
	for (struct addrinfo *a = res; a != NULL && pick == NULL; a = a->ai_next)
		if (a->ai_family == AF_INET)
			pick = a;
	for (struct addrinfo *a = res; a != NULL && pick == NULL; a = a->ai_next)
		if (a->ai_family == AF_INET6)
			pick = a;
	if (pick == NULL || pick->ai_addrlen > sizeof(*ret)) {
		freeaddrinfo(res);
		snprintf(errbuf, errlen, "'%s' has no IPv4 or IPv6 address", host);
		return -EHOSTUNREACH;
	}
	memset(ret, 0, sizeof(*ret));
	memcpy(ret, pick->ai_addr, pick->ai_addrlen);
	freeaddrinfo(res);
	return 0;
}

static void
format_endpoint(const union wg_endpoint *ep, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ep->addr.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->addr4.sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(ep->addr4.sin_port));
	} else if (ep->addr.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &ep->addr6.sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(ep->addr6.sin6_port));
	} else {
		snprintf(buf, len, "(none)");
	}
}

/* ---- the link ----------------------------------------------------------------------------- */

/* Make sure the interface exists (@create false: only find it, -ENODEV if absent). */
static int
ensure_link(struct ekd_tunnel *t, bool create)
{
	const struct ekd_conf *c = t->conf;
	uint32_t idx;
	int r;

	if (c->backend == EKD_BACKEND_USERSPACE) {
		struct wgproc_opts o = { .program = c->wireguard_go, .uapi_dir = c->uapi_dir,
			.keep_stderr = log_getverbose() > 1 };
		char sock[256];
		pid_t pid;

		if (!create) {
			r = wgproc_sock_path(c->uapi_dir, c->ifname, sock, sizeof(sock));
			if (r < 0)
				return r;
			pid = wgproc_sock_pid(sock);
			if (pid <= 0)
				return -ENODEV;
			t->proc.pid = pid;
			t->proc.our_child = false;
			return 0;
		}
		r = wgproc_ensure(&t->proc, &o, c->ifname);
		if (r < 0) {
			tunnel_fail(t, "cannot start '%s %s': %s%s", c->wireguard_go, c->ifname,
				strerror(-r), r == -ENOENT ? " (is wireguard-go installed, or "
				"'wireguard.wireguard_go' right?)" : "");
			return r;
		}
		if (r == 1)
			log_info("started '%s %s' (pid %d)", c->wireguard_go, c->ifname,
				(int)t->proc.pid);
		return 0;
	}

	r = rtnl_link_index(t->rtnl, c->ifname, &idx);
	if (r == 0)
		return 0;
	if (r != -ENODEV || !create)
		return r;
	r = rtnl_link_add_wireguard(t->rtnl, c->ifname);
	if (r == -EEXIST)
		return 0;
	if (r < 0) {
		tunnel_fail(t, "cannot create WireGuard interface '%s': %s%s%s%s", c->ifname,
			strerror(-r), rtnl_last_error(t->rtnl)[0] ? ": " : "",
			rtnl_last_error(t->rtnl),
			r == -EOPNOTSUPP || r == -EAFNOSUPPORT ?
				" (no WireGuard in this kernel: set 'wireguard.backend = userspace')" :
				"");
		return r;
	}
	log_info("created WireGuard interface '%s'", c->ifname);
	return 0;
}

/* Private key, the one peer: the WireGuard half of the configuration. */
static int
set_wireguard(struct ekd_tunnel *t, const struct ekd_enrollment *e,
	const uint8_t key[static WG_KEY_LEN], const union wg_endpoint *ep)
{
	struct wg_device *dev = NULL;
	struct wg_peer *peer;
	int r;

	r = wg_device_new(&dev, t->conf->ifname);
	if (r < 0)
		return r;
	dev->flags = WG_DEVICE_F_HAS_PRIVATE_KEY | WG_DEVICE_F_REPLACE_PEERS;
	memcpy(dev->private_key, key, WG_KEY_LEN);
	r = wg_device_add_peer(dev, &peer);
	if (r < 0)
		goto out;
	peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REPLACE_ALLOWEDIPS |
		WG_PEER_F_HAS_PERSISTENT_KEEPALIVE;
	memcpy(peer->public_key, e->server_public_key, WG_KEY_LEN);
	peer->endpoint = *ep;
	peer->persistent_keepalive = (uint16_t)keepalive_of(t->conf, e);
	for (size_t i = 0; i < e->n_allowed_ips; i++) {
		const struct wg_allowedip *a = &e->allowed_ips[i];

		r = wg_peer_add_allowedip(peer, a->family, a->family == AF_INET ?
			(const void *)&a->ip4 : (const void *)&a->ip6, a->cidr);
		if (r < 0)
			goto out;
	}
	r = wg_set_device(t->wg, dev);
out:
	wg_device_free(dev); /* wipes the key copy */
	return r;
}

/* Address, up, routes: the IP half. */
static int
set_ip(struct ekd_tunnel *t, const struct ekd_enrollment *e)
{
	const char *ifname = t->conf->ifname;
	const struct wg_allowedip *addrs[2] = { &e->address, e->has_address6 ? &e->address6 : NULL };
	char buf[64];
	int r;

	for (size_t i = 0; i < 2 && addrs[i] != NULL; i++) {
		const struct wg_allowedip *a = addrs[i];

		r = rtnl_addr_add(t->rtnl, ifname, a->family, a->family == AF_INET ?
			(const void *)&a->ip4 : (const void *)&a->ip6, a->cidr);
		if (r < 0 && r != -EEXIST) {
			ekd_allowedip_format(a, buf, sizeof(buf));
			tunnel_fail(t, "cannot add address %s to '%s': %s %s", buf, ifname,
				strerror(-r), rtnl_last_error(t->rtnl));
			return r;
		}
	}
	r = rtnl_link_set_up(t->rtnl, ifname, true);
	if (r < 0) {
		tunnel_fail(t, "cannot set '%s' up: %s %s", ifname, strerror(-r),
			rtnl_last_error(t->rtnl));
		return r;
	}
	for (size_t i = 0; i < e->n_allowed_ips; i++) {
		const struct wg_allowedip *a = &e->allowed_ips[i];

		ekd_allowedip_format(a, buf, sizeof(buf));
		if (a->cidr == 0) {
			/* It would also carry the tunnel's own packets to the endpoint. */
			log_warnx("not routing %s through '%s': a default route through the "
				"tunnel needs policy routing, which edge-keyd does not do", buf, ifname);
			continue;
		}
		r = rtnl_route_add(t->rtnl, ifname, a->family, a->family == AF_INET ?
			(const void *)&a->ip4 : (const void *)&a->ip6, a->cidr, 0);
		if (r < 0) {
			tunnel_fail(t, "cannot route %s through '%s': %s %s", buf, ifname,
				strerror(-r), rtnl_last_error(t->rtnl));
			return r;
		}
	}
	return 0;
}

/*
 * The whole configuration. The key is unsealed into locked memory and wiped before this
 * returns, whatever happens.
 */
static int
configure(struct ekd_tunnel *t, const struct ekd_enrollment *e, bool create, time_t now)
{
	const struct ekd_conf *c = t->conf;
	union wg_endpoint ep;
	uint8_t *key = NULL, pub[WG_KEY_LEN];
	char errbuf[400], addr[64], epbuf[INET6_ADDRSTRLEN + 10], fp[WG_KEY_FP_LEN];
	int r;

	r = ensure_link(t, create);
	if (r < 0)
		return r;
	r = ekd_resolve_endpoint(e->endpoint, &ep, errbuf, sizeof(errbuf));
	if (r < 0) {
		/* Keep going without one: the next checks resolve again. */
		tunnel_fail(t, "control plane endpoint: %s", errbuf);
		memset(&ep, 0, sizeof(ep));
	}
	t->need_resolve = r < 0;
	t->last_resolve = now;

	key = secmem_alloc(WG_KEY_LEN);
	if (key == NULL) {
		r = -errno;
		tunnel_fail(t, "cannot lock memory for the key: %s (RLIMIT_MEMLOCK?)", strerror(errno));
		return r;
	}
	r = ekd_unseal_msg(c, key, errbuf, sizeof(errbuf));
	if (r < 0) {
		/* once: the daemon tries at every check, and a changed PCR stays changed */
		tunnel_fail(t, "%s", errbuf);
		goto out;
	}
	r = key_public_from_private(pub, key);
	if (r < 0)
		goto out;
	if (!key_equal(pub, e->wg_public_key)) {
		char fp2[WG_KEY_FP_LEN];

		key_fingerprint(fp, pub);
		key_fingerprint(fp2, e->wg_public_key);
		tunnel_fail(t, "the sealed key (%s) is not the key the control plane enrolled (%s): "
			"re-enrollment needed", fp, fp2);
		r = -EKEYREJECTED;
		goto out;
	}
	r = set_wireguard(t, e, key, &ep);
	secmem_free(key, WG_KEY_LEN);
	key = NULL;
	if (r < 0) {
		tunnel_fail(t, "cannot configure WireGuard on '%s': %s%s%s", c->ifname, strerror(-r),
			wg_ctl_last_error(t->wg)[0] ? ": " : "", wg_ctl_last_error(t->wg));
		goto out;
	}
	r = set_ip(t, e);
	if (r < 0)
		goto out;

	t->have_counters = false;
	t->last_rx = now;
	t->last_err[0] = '\0';
	t->broken = false;
	ekd_allowedip_format(&e->address, addr, sizeof(addr));
	format_endpoint(&ep, epbuf, sizeof(epbuf));
	key_fingerprint(fp, pub);
	log_info("tunnel '%s' configured: %s, control plane %s (%s), keepalive %u s, key %s",
		c->ifname, addr, e->endpoint, epbuf, keepalive_of(c, e), fp);
out:
	/* the next check retries; it should not call a link we never configured "lost" */
	if (r < 0)
		t->broken = true;
	secmem_free(key, WG_KEY_LEN);
	explicit_bzero(pub, sizeof(pub));
	return r;
}

int
ekd_tunnel_up(struct ekd_tunnel *t, const struct ekd_enrollment *e)
{
	return configure(t, e, true, time(NULL));
}

/* Is @dev configured the way @e says (our key, exactly the one peer)? */
static struct wg_peer *
our_peer(const struct wg_device *dev, const struct ekd_enrollment *e)
{
	struct wg_peer *p;

	if (!(dev->flags & WG_DEVICE_F_HAS_PUBLIC_KEY) ||
		!key_equal(dev->public_key, e->wg_public_key) || dev->n_peers != 1)
		return NULL;
	p = wg_device_find_peer(dev, e->server_public_key);
	if (p == NULL || p->n_allowedips != e->n_allowed_ips)
		return NULL;
	return p;
}

/* Set the peer's endpoint again from a fresh resolution. */
static void
reresolve(struct ekd_tunnel *t, const struct ekd_enrollment *e, const struct wg_peer *cur,
	time_t now)
{
	struct wg_device *dev = NULL;
	struct wg_peer *peer;
	union wg_endpoint ep;
	char errbuf[256], a[INET6_ADDRSTRLEN + 10], b[INET6_ADDRSTRLEN + 10];
	int r;

	t->last_resolve = now;
	r = ekd_resolve_endpoint(e->endpoint, &ep, errbuf, sizeof(errbuf));
	if (r < 0) {
		tunnel_fail(t, "control plane endpoint: %s", errbuf);
		return;
	}
	format_endpoint(&cur->endpoint, a, sizeof(a));
	format_endpoint(&ep, b, sizeof(b));
	if (wg_device_new(&dev, t->conf->ifname) < 0 || wg_device_add_peer(dev, &peer) < 0) {
		wg_device_free(dev);
		return;
	}
	peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_UPDATE_ONLY;
	memcpy(peer->public_key, e->server_public_key, WG_KEY_LEN);
	peer->endpoint = ep;
	r = wg_set_device(t->wg, dev);
	wg_device_free(dev);
	if (r == 0)
		t->need_resolve = false;
	if (r < 0)
		tunnel_fail(t, "cannot set the endpoint of '%s': %s %s", t->conf->ifname,
			strerror(-r), wg_ctl_last_error(t->wg));
	else if (strcmp(a, b) != 0)
		log_info("control plane '%s' re-resolved: %s (was %s)", e->endpoint, b, a);
	else
		log_debug("control plane '%s' re-resolved: %s, unchanged", e->endpoint, b);
}

int
ekd_tunnel_check(struct ekd_tunnel *t, const struct ekd_enrollment *e, time_t now)
{
	const struct ekd_conf *c = t->conf;
	unsigned int ka = keepalive_of(c, e);
	time_t stale = 3 * (time_t)ka, down = REKEY_AFTER_TIME + 3 * (time_t)ka;
	struct wg_device *dev = NULL;
	struct wg_peer *peer;
	int r;

	if (c->backend == EKD_BACKEND_USERSPACE && t->proc.pid > 0 && !wgproc_alive(&t->proc))
		log_warnx("wireguard-go serving '%s' is gone", c->ifname);
	r = wg_get_device(t->wg, c->ifname, &dev);
	if (r < 0) {
		if (!t->broken)
			log_warnx("interface '%s' is gone (%s): recreating it", c->ifname,
				strerror(-r));
		t->broken = true;
		t->up = false;
		if (t->down_since == 0)
			t->down_since = now;
		return configure(t, e, true, now);
	}
	peer = our_peer(dev, e);
	if (peer == NULL) {
		wg_device_free(dev);
		if (!t->broken)
			log_warnx("interface '%s' lost its configuration (key or peer): "
				"reconfiguring", c->ifname);
		t->broken = true;
		return configure(t, e, true, now);
	}

	if (t->broken) {
		/* healed, by us or by `edge-keyd rotate` or `enroll` next to us: a new failure
		 * is news again */
		t->broken = false;
		t->last_err[0] = '\0';
	}
	if (!t->have_counters || peer->rx_bytes != t->last_rx_bytes) {
		if (t->have_counters)
			t->last_rx = now;
		t->last_rx_bytes = peer->rx_bytes;
		t->have_counters = true;
	}
	t->last_handshake = peer->last_handshake_sec;
	t->rx_bytes = peer->rx_bytes;
	t->tx_bytes = peer->tx_bytes;

	if (t->need_resolve || (now - t->last_rx > stale && now - t->last_resolve >= stale))
		reresolve(t, e, peer, now);
	if (now - t->last_rx > down) {
		if (t->up || t->down_since == 0) {
			log_warnx("tunnel '%s' down: nothing from the control plane for %lld s",
				c->ifname, (long long)(now - t->last_rx));
			t->down_since = now;
		}
		t->up = false;
	} else if (peer->last_handshake_sec > 0 || t->rx_bytes > 0) {
		if (!t->up)
			log_info("tunnel '%s' up%s", c->ifname, t->down_since ? " again" : "");
		t->up = true;
		t->down_since = 0;
	}
	wg_device_free(dev);
	return 0;
}

int
ekd_tunnel_remove(struct ekd_tunnel *t)
{
	const struct ekd_conf *c = t->conf;
	int r;

	if (c->backend == EKD_BACKEND_USERSPACE) {
		/* Also one we did not start (adopted, or left by a previous run). */
		if (t->proc.pid <= 0)
			(void)ensure_link(t, false);
		if (t->proc.pid <= 0)
			return 0;
		log_info("stopping wireguard-go (pid %d): interface '%s' goes away",
			(int)t->proc.pid, c->ifname);
		return wgproc_stop(&t->proc, 0);
	}
	r = rtnl_link_del(t->rtnl, c->ifname);
	if (r == -ENODEV)
		return 0;
	if (r == 0)
		log_info("removed interface '%s'", c->ifname);
	return r;
}

int
ekd_tunnel_rekey(const struct ekd_conf *conf, const struct ekd_enrollment *e)
{
	struct ekd_tunnel *t = NULL;
	struct wg_device *dev = NULL;
	int r;

	r = ekd_tunnel_new(&t, conf);
	if (r < 0)
		return r;
	r = wg_get_device(t->wg, conf->ifname, &dev);
	wg_device_free(dev);
	if (r < 0) {
		r = -ENODEV;
		goto out;
	}
	r = configure(t, e, false, time(NULL));
out:
	ekd_tunnel_free(t);
	return r;
}
