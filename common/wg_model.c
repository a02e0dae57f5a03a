// SPDX-License-Identifier: MIT
/* The WireGuard data model: devices, peers, allowed IPs, endpoints. */
#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/secmem.h"
#include "common/wg.h"

static size_t
page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* The size of a peers mapping that holds @cap peers: whole pages. */
static size_t
peers_bytes(size_t cap)
{
	size_t page = page_size();

	return (cap * sizeof(struct wg_peer) + page - 1) / page * page;
}

/* Where the in-page peers start, after the struct, aligned for a peer. */
static size_t
in_page_offset(void)
{
	size_t a = _Alignof(struct wg_peer);

	return (sizeof(struct wg_device) + a - 1) / a * a;
}

int
wg_device_new(struct wg_device **ret_dev, const char *ifname)
{
	struct wg_device *dev;

	if (ifname == NULL || ifname[0] == '\0')
		return -EINVAL;
	if (strnlen(ifname, IFNAMSIZ) == IFNAMSIZ)
		return -ENAMETOOLONG;
	/*
	 * secmem's memory comes zeroed. The struct takes one locked page; the first peers
	 * live in the rest of it (about twenty: enough for every device a request builds),
	 * so a small device costs no mapping of its own.
	 */
	dev = secmem_alloc(page_size());
	if (dev != NULL) {
		size_t off = in_page_offset();

		dev->locked = true;
		dev->peers_in_page = true;
		dev->peers = (struct wg_peer *)((char *)dev + off);
		dev->cap_peers = (page_size() - off) / sizeof(struct wg_peer);
	} else {
		dev = calloc(1, sizeof(*dev));
		if (dev == NULL)
			return -ENOMEM;
	}
	strcpy(dev->name, ifname);
	*ret_dev = dev;
	return 0;
}

void
wg_device_free(struct wg_device *dev)
{
	if (dev == NULL)
		return;
	for (size_t i = 0; i < dev->n_peers; i++)
		free(dev->peers[i].allowedips);
	if (dev->peers != NULL && !dev->peers_in_page) {
		/* Only peers that were added were ever written: the rest of the mapping is zero. */
		explicit_bzero(dev->peers, dev->n_peers * sizeof(*dev->peers));
		munmap(dev->peers, peers_bytes(dev->cap_peers));
	}
	if (dev->locked) {
		secmem_free(dev, page_size()); /* wipes the page, in-page peers too */
		return;
	}
	explicit_bzero(dev, sizeof(*dev));
	free(dev);
}

int
wg_device_add_peer(struct wg_device *dev, struct wg_peer **ret_peer)
{
	struct wg_peer *peers;

	/*
	 * The array is an anonymous mapping of its own, doubled with mremap(): the kernel
	 * moves the pages instead of copying them, so growing never leaves an unwiped copy
	 * of a preshared key in freed memory (why this is not realloc), and reading 100,000
	 * peers touches each page once instead of allocating, copying and wiping every
	 * smaller array on the way (that was a third of a large read's CPU time).
	 */
	if (dev->n_peers == dev->cap_peers) {
		size_t cap = dev->cap_peers ? dev->cap_peers * 2 : 1;

		if (cap > SIZE_MAX / 2 / sizeof(*peers))
			return -ENOMEM;
		if (dev->peers == NULL || dev->peers_in_page)
			peers = mmap(NULL, peers_bytes(cap), PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		else
			peers = mremap(dev->peers, peers_bytes(dev->cap_peers), peers_bytes(cap),
				MREMAP_MAYMOVE);
		if (peers == MAP_FAILED)
			return -ENOMEM;
		if (dev->peers_in_page) {
			/* out of the device's page: move the peers, wipe what they left */
			memcpy(peers, dev->peers, dev->n_peers * sizeof(*peers));
			explicit_bzero(dev->peers, dev->n_peers * sizeof(*peers));
			dev->peers_in_page = false;
		}
		dev->peers = peers;
		dev->cap_peers = peers_bytes(cap) / sizeof(*peers);
	}
	*ret_peer = &dev->peers[dev->n_peers++];
	memset(*ret_peer, 0, sizeof(**ret_peer));
	return 0;
}

int
wg_peer_add_allowedip(struct wg_peer *peer, uint16_t family, const void *addr, uint8_t cidr)
{
	struct wg_allowedip *aip;

	if (family == AF_INET) {
		if (cidr > 32)
			return -EINVAL;
	} else if (family == AF_INET6) {
		if (cidr > 128)
			return -EINVAL;
	} else {
		return -EAFNOSUPPORT;
	}
	if (peer->n_allowedips == peer->cap_allowedips) {
		size_t cap = peer->cap_allowedips ? peer->cap_allowedips * 2 : 2;

		aip = realloc(peer->allowedips, cap * sizeof(*aip));
		if (aip == NULL)
			return -ENOMEM;
		peer->allowedips = aip;
		peer->cap_allowedips = cap;
	}
	aip = &peer->allowedips[peer->n_allowedips++];
	memset(aip, 0, sizeof(*aip));
	aip->family = family;
	aip->cidr = cidr;
	if (family == AF_INET)
		memcpy(&aip->ip4, addr, sizeof(aip->ip4));
	else
		memcpy(&aip->ip6, addr, sizeof(aip->ip6));
	return 0;
}

struct wg_peer *
wg_device_find_peer(const struct wg_device *dev, const uint8_t public_key[static WG_KEY_LEN])
{
	for (size_t i = 0; i < dev->n_peers; i++)
		if (key_equal(dev->peers[i].public_key, public_key))
			return &dev->peers[i];
	return NULL;
}

static int
parse_cidr(const char *s, unsigned int max, uint8_t *ret)
{
	unsigned long v;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end != '\0' || v > max)
		return -EINVAL;
	*ret = (uint8_t)v;
	return 0;
}

int
wg_allowedip_parse(struct wg_allowedip *ret, const char *s)
{
	char buf[INET6_ADDRSTRLEN + 5];
	struct wg_allowedip aip;
	char *slash;
	int r;

	if (s == NULL || strnlen(s, sizeof(buf)) == sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash++ = '\0';
	memset(&aip, 0, sizeof(aip));
	if (inet_pton(AF_INET, buf, &aip.ip4) == 1) {
		aip.family = AF_INET;
		aip.cidr = 32;
		if (slash != NULL && (r = parse_cidr(slash, 32, &aip.cidr)) < 0)
			return r;
	} else if (inet_pton(AF_INET6, buf, &aip.ip6) == 1) {
		aip.family = AF_INET6;
		aip.cidr = 128;
		if (slash != NULL && (r = parse_cidr(slash, 128, &aip.cidr)) < 0)
			return r;
	} else {
		return -EINVAL;
	}
	*ret = aip;
	return 0;
}

int
wg_endpoint_parse(union wg_endpoint *ret, const char *s)
{
	char buf[INET6_ADDRSTRLEN + 16];
	union wg_endpoint ep;
	const char *host, *port;
	unsigned long p;
	char *end, *colon;

	if (s == NULL || strnlen(s, sizeof(buf)) == sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	memset(&ep, 0, sizeof(ep));
	if (buf[0] == '[') {
		char *close = strchr(buf, ']');

		if (close == NULL || close[1] != ':')
			return -EINVAL;
		*close = '\0';
		host = buf + 1;
		port = close + 2;
		if (inet_pton(AF_INET6, host, &ep.addr6.sin6_addr) != 1)
			return -EINVAL;
		ep.addr6.sin6_family = AF_INET6;
	} else {
		colon = strrchr(buf, ':');
		if (colon == NULL)
			return -EINVAL;
		*colon = '\0';
		host = buf;
		port = colon + 1;
		if (inet_pton(AF_INET, host, &ep.addr4.sin_addr) != 1)
			return -EINVAL;
		ep.addr4.sin_family = AF_INET;
	}
	if (*port < '0' || *port > '9')
		return -EINVAL;
	errno = 0;
	p = strtoul(port, &end, 10);
	if (errno || *end != '\0' || p == 0 || p > 65535)
		return -EINVAL;
	if (ep.addr.sa_family == AF_INET)
		ep.addr4.sin_port = htons((uint16_t)p);
	else
		ep.addr6.sin6_port = htons((uint16_t)p);
	*ret = ep;
	return 0;
}
