// SPDX-License-Identifier: MIT
/*
 * Tenant prefixes and the lowest-free allocation rule (see addr.h for the rule itself).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "enrolld/addr.h"

size_t
addr_len(int family)
{
	if (family == AF_INET)
		return 4;
	if (family == AF_INET6)
		return 16;
	return 0;
}

static unsigned int
max_plen(int family)
{
	return family == AF_INET ? 32 : 128;
}

/* Whether bit @i (0 = most significant of byte 0) of @a is set. */
static bool
bit_at(const uint8_t *a, unsigned int i)
{
	return a[i / 8] & (0x80 >> (i % 8));
}

int
addr_parse(int *ret_family, uint8_t ret_addr[static 16], const char *s)
{
	uint8_t buf[16] = { 0 };

	if (s == NULL)
		return -EINVAL;
	if (inet_pton(AF_INET, s, buf) == 1) {
		memcpy(ret_addr, buf, 16);
		*ret_family = AF_INET;
		return 0;
	}
	if (inet_pton(AF_INET6, s, buf) == 1) {
		memcpy(ret_addr, buf, 16);
		*ret_family = AF_INET6;
		return 0;
	}
	return -EINVAL;
}

int
addr_format(int family, const uint8_t addr[static 16], char *buf, size_t len)
{
	if (addr_len(family) == 0)
		return -EAFNOSUPPORT;
	if (inet_ntop(family, addr, buf, len) == NULL)
		return -EADDRNOTAVAIL;
	return 0;
}

int
addr_prefix_parse(struct addr_prefix *ret, const char *cidr)
{
	struct addr_prefix p = { 0 };
	char tmp[ADDR_STR_LEN];
	const char *slash;
	char *end;
	unsigned long plen;
	int family;

	if (cidr == NULL)
		return -EINVAL;
	slash = strchr(cidr, '/');
	if (slash == NULL || (size_t)(slash - cidr) >= sizeof(tmp) || slash[1] == '\0')
		return -EINVAL;
	memcpy(tmp, cidr, slash - cidr);
	tmp[slash - cidr] = '\0';
	if (addr_parse(&family, p.addr, tmp) < 0)
		return -EINVAL;
	/* Digits only: strtoul would accept " 24", "+24" and "0x18". */
	for (const char *c = slash + 1; *c; c++)
		if (*c < '0' || *c > '9')
			return -EINVAL;
	errno = 0;
	plen = strtoul(slash + 1, &end, 10);
	if (errno != 0 || *end != '\0' || plen > max_plen(family) || strlen(slash + 1) > 3)
		return -EINVAL;
	for (unsigned int i = plen; i < max_plen(family); i++)
		if (bit_at(p.addr, i))
			return -EINVAL;
	p.family = family;
	p.plen = plen;
	*ret = p;
	return 0;
}

int
addr_prefix_format(const struct addr_prefix *p, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	int r;

	r = addr_format(p->family, p->addr, a, sizeof(a));
	if (r < 0)
		return r;
	r = snprintf(buf, len, "%s/%u", a, p->plen);
	if (r < 0 || (size_t)r >= len)
		return -EADDRNOTAVAIL;
	return 0;
}

bool
addr_in_prefix(const struct addr_prefix *p, int family, const uint8_t addr[static 16])
{
	if (family != p->family)
		return false;
	for (unsigned int i = 0; i < p->plen; i++)
		if (bit_at(addr, i) != bit_at(p->addr, i))
			return false;
	return true;
}

bool
addr_prefix_overlap(const struct addr_prefix *a, const struct addr_prefix *b)
{
	/* Two prefixes overlap iff the shorter one contains the other's network. */
	if (a->family != b->family)
		return false;
	if (a->plen <= b->plen)
		return addr_in_prefix(a, b->family, b->addr);
	return addr_in_prefix(b, a->family, a->addr);
}

bool
addr_prefix_in_set(const struct addr_prefix *p, const struct addr_prefix *set, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (set[i].family == p->family && set[i].plen <= p->plen &&
			addr_in_prefix(&set[i], p->family, p->addr))
			return true;
	return false;
}

static unsigned int
host_bits(const struct addr_prefix *p)
{
	unsigned int hb = max_plen(p->family) - p->plen;

	return hb > 64 ? 64 : hb;
}

static uint64_t
load_be(const uint8_t *b, size_t n)
{
	uint64_t v = 0;

	for (size_t i = 0; i < n; i++)
		v = (v << 8) | b[i];
	return v;
}

int
addr_offset(const struct addr_prefix *p, const uint8_t addr[static 16], uint64_t *ret_off)
{
	unsigned int hb = host_bits(p);
	uint64_t off;

	if (!addr_in_prefix(p, p->family, addr))
		return -EINVAL;
	if (p->family == AF_INET) {
		off = load_be(addr, 4) - load_be(p->addr, 4);
	} else {
		/* IPv6 host space is limited to the low 64 bits: bits plen..63 must be zero. */
		for (unsigned int i = p->plen; i < 64; i++)
			if (bit_at(addr, i))
				return -EINVAL;
		off = load_be(addr + 8, 8) - load_be(p->addr + 8, 8);
	}
	if (hb < 64 && off >> hb)
		return -EINVAL;
	*ret_off = off;
	return 0;
}

void
addr_at(const struct addr_prefix *p, uint64_t off, uint8_t ret_addr[static 16])
{
	uint8_t out[16];
	size_t start = p->family == AF_INET ? 0 : 8;
	size_t n = p->family == AF_INET ? 4 : 8;
	uint64_t v;

	memcpy(out, p->addr, 16);
	v = load_be(out + start, n) + off;
	for (size_t i = 0; i < n; i++)
		out[start + n - 1 - i] = (uint8_t)(v >> (8 * i));
	memcpy(ret_addr, out, 16);
}

int
addr_usable_range(const struct addr_prefix *p, uint64_t *ret_first, uint64_t *ret_last)
{
	unsigned int hb;

	if (addr_len(p->family) == 0)
		return -EAFNOSUPPORT;
	hb = host_bits(p);
	if (hb == 0)
		return -EADDRNOTAVAIL;
	if (p->family == AF_INET) {
		if (hb == 1) {
			/* RFC 3021: a /31 has no network or broadcast address. */
			*ret_first = 0;
			*ret_last = 1;
		} else {
			*ret_first = 1;
			*ret_last = (UINT64_C(1) << hb) - 2;
		}
		return 0;
	}
	/* IPv6 has no broadcast; offset 0 is the subnet-router anycast address. */
	*ret_first = 1;
	*ret_last = hb == 64 ? UINT64_MAX : (UINT64_C(1) << hb) - 1;
	return 0;
}

bool
addr_is_usable(const struct addr_prefix *p, const uint8_t addr[static 16])
{
	uint64_t off, first, last;

	if (addr_offset(p, addr, &off) < 0 || addr_usable_range(p, &first, &last) < 0)
		return false;
	return off >= first && off <= last;
}

static void
alloc_advance(struct addr_alloc *a)
{
	if (a->cand == a->last)
		a->full = true;
	else
		a->cand++;
}

static void
alloc_skip_self(struct addr_alloc *a)
{
	if (!a->full && a->has_self && a->cand == a->self)
		alloc_advance(a);
}

int
addr_alloc_begin(struct addr_alloc *a, const struct addr_prefix *p, const uint8_t *self,
	uint64_t from)
{
	struct addr_alloc n = { 0 };
	int r;

	r = addr_usable_range(p, &n.cand, &n.last);
	if (r == -EADDRNOTAVAIL)
		n.full = true;
	else if (r < 0)
		return r;
	if (self != NULL && addr_offset(p, self, &n.self) == 0)
		n.has_self = true;
	if (!n.full && from > n.cand) {
		if (from > n.last)
			n.full = true;
		else
			n.cand = from;
	}
	alloc_skip_self(&n);
	*a = n;
	return 0;
}

bool
addr_alloc_feed(struct addr_alloc *a, uint64_t used)
{
	if (a->full)
		return true;
	if (used < a->cand)
		return false;
	if (used > a->cand)
		return true;
	alloc_advance(a);
	alloc_skip_self(a);
	return a->full;
}

int
addr_alloc_end(const struct addr_alloc *a, uint64_t *ret_off)
{
	if (a->full)
		return -EADDRNOTAVAIL;
	*ret_off = a->cand;
	return 0;
}
