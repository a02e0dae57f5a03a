// SPDX-License-Identifier: MIT
/*
 * The privileged parent's view of the child's requests: layout (ps_parse_request) and
 * meaning (ps_check_request), against what the parent itself has seen (the registry of
 * pinned tenants). Pure: no I/O, no logging; unit-tested and fuzzed. The parent trusts
 * nothing a request says beyond what is checked here.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "enrolld/privsep.h"
#include "enrolld/store.h"

_Static_assert(sizeof(struct ps_hdr) == 16, "ps_hdr layout");
_Static_assert(sizeof(struct ps_name) == 32, "ps_name layout");
_Static_assert(sizeof(struct ps_tenant) == 92, "ps_tenant layout");
_Static_assert(sizeof(struct ps_peer) == 56, "ps_peer layout");
_Static_assert(sizeof(struct ps_stat) == 56, "ps_stat layout");
_Static_assert(sizeof(struct ps_dump_peer) == 40 + PS_DUMP_AIPS * 20, "ps_dump_peer layout");
_Static_assert(
	sizeof(struct ps_hdr) + sizeof(struct ps_name) + PS_PEERS_MAX * sizeof(struct ps_peer) <=
		PS_MSG_MAX,
	"PEERS_SET fits");
_Static_assert(sizeof(struct ps_hdr) + PS_PEERS_MAX * sizeof(struct ps_dump_peer) <= PS_MSG_MAX,
	"DUMP chunk fits");

static int
fail(char *why, size_t whylen, int err, const char *fmt, ...)
{
	va_list ap;

	if (why != NULL && whylen > 0) {
		va_start(ap, fmt);
		vsnprintf(why, whylen, fmt, ap);
		va_end(ap);
	}
	return err;
}

/* Nothing after the terminator: the parent never carries bytes it did not check. */
static bool
tail_zero(const char *name, size_t max)
{
	for (size_t i = strnlen(name, max); i < max; i++)
		if (name[i] != '\0')
			return false;
	return true;
}

/* Tenant names as the store accepts them, zero-padded. */
bool
ps_name_ok(const char name[static PS_NAME_MAX])
{
	return store_tenant_name_ok(name) && tail_zero(name, PS_NAME_MAX);
}

/* Interface names as the store accepts them, not "." or "..", zero-padded. */
static bool
ifname_ok(const char name[static PS_IFNAME_MAX])
{
	return store_ifname_ok(name) && strcmp(name, ".") != 0 && strcmp(name, "..") != 0 &&
	       tail_zero(name, PS_IFNAME_MAX);
}

static bool
all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

void
ps_tenant_to_rec(const struct ps_tenant *t, struct ps_tenant_rec *ret)
{
	memset(ret, 0, sizeof(*ret));
	memcpy(ret->name, t->name, PS_NAME_MAX);
	memcpy(ret->ifname, t->ifname, PS_IFNAME_MAX);
	ret->name[PS_NAME_MAX - 1] = '\0';
	ret->ifname[PS_IFNAME_MAX - 1] = '\0';
	ret->listen_port = t->listen_port;
	ret->prefix4.family = AF_INET;
	ret->prefix4.plen = t->plen4;
	memcpy(ret->prefix4.addr, t->prefix4, 4);
	memcpy(ret->self4, t->self4, 4);
	if (t->plen6 != 0) {
		ret->prefix6.family = AF_INET6;
		ret->prefix6.plen = t->plen6;
		memcpy(ret->prefix6.addr, t->prefix6, 16);
		memcpy(ret->self6, t->self6, 16);
	}
}

static int
parse_tenant(const struct ps_tenant *t, char *why, size_t whylen)
{
	struct ps_tenant_rec r;

	if (!ps_name_ok(t->name))
		return fail(why, whylen, -EBADMSG, "bad tenant name");
	if (!ifname_ok(t->ifname))
		return fail(why, whylen, -EBADMSG, "bad interface name");
	if (t->listen_port == 0)
		return fail(why, whylen, -EBADMSG, "listen port 0");
	/* As the store: room for the control plane's address and at least one device. */
	if (t->plen4 < 1 || t->plen4 > 31)
		return fail(why, whylen, -EBADMSG, "IPv4 prefix length %u", t->plen4);
	if (t->plen6 > 127)
		return fail(why, whylen, -EBADMSG, "IPv6 prefix length %u", t->plen6);
	if (t->plen6 == 0 && (!all_zero(t->prefix6, 16) || !all_zero(t->self6, 16)))
		return fail(why, whylen, -EBADMSG, "IPv6 addresses without an IPv6 prefix");
	ps_tenant_to_rec(t, &r);
	/* A network address: no host bits. */
	for (unsigned int i = 0; i < 2; i++) {
		const struct addr_prefix *p = i ? &r.prefix6 : &r.prefix4;
		const uint8_t *self = i ? r.self6 : r.self4;
		uint64_t first, last;
		uint8_t masked[16];

		if (p->family == 0)
			continue;
		memcpy(masked, p->addr, 16);
		for (unsigned int b = p->plen; b < (p->family == AF_INET ? 32u : 128u); b++)
			masked[b / 8] &= (uint8_t) ~(0x80u >> (b % 8));
		if (memcmp(masked, p->addr, 16) != 0)
			return fail(why, whylen, -EBADMSG, "prefix with host bits set");
		if (addr_usable_range(p, &first, &last) < 0 || first == last)
			return fail(why, whylen, -EBADMSG, "prefix without room for a device");
		if (!addr_is_usable(p, self))
			return fail(why, whylen, -EBADMSG, "own address outside its prefix");
	}
	return 0;
}

int
ps_parse_request(const void *buf, size_t len, struct ps_request *ret, char *why, size_t whylen)
{
	const uint8_t *b = buf;
	struct ps_hdr h;
	size_t want;

	memset(ret, 0, sizeof(*ret));
	if (len < sizeof(h))
		return fail(why, whylen, -EBADMSG, "short message (%zu bytes)", len);
	if (len > PS_MSG_MAX)
		return fail(why, whylen, -EBADMSG, "oversized message (%zu bytes)", len);
	memcpy(&h, b, sizeof(h));
	if (h.flags != 0 || h.status != 0 || h.pad != 0)
		return fail(why, whylen, -EBADMSG, "flags, status or padding set in a request");
	ret->type = h.type;
	ret->count = h.count;
	b += sizeof(h);
	len -= sizeof(h);
	switch (h.type) {
	case PS_TENANT_KEY:
	case PS_DUMP:
	case PS_STATS:
	case PS_PEERS_SET:
		if (len < sizeof(struct ps_name))
			return fail(why, whylen, -EBADMSG, "type %u: %zu bytes", h.type, len);
		ret->name = (const struct ps_name *)b;
		if (!ps_name_ok(ret->name->name))
			return fail(why, whylen, -EBADMSG, "bad tenant name");
		if (h.type != PS_PEERS_SET) {
			if (h.count != 0 || len != sizeof(struct ps_name))
				return fail(why, whylen, -EBADMSG, "type %u: %zu bytes, count %u",
					h.type, len, h.count);
			return 0;
		}
		if (h.count == 0 || h.count > PS_PEERS_MAX)
			return fail(why, whylen, -EBADMSG, "%u peers in one message", h.count);
		want = sizeof(struct ps_name) + (size_t)h.count * sizeof(struct ps_peer);
		if (len != want)
			return fail(why, whylen, -EBADMSG, "%u peers in %zu bytes", h.count, len);
		ret->peers = (const struct ps_peer *)(b + sizeof(struct ps_name));
		for (uint32_t i = 0; i < h.count; i++) {
			const struct ps_peer *p = &ret->peers[i];

			if (p->op != PS_PEER_SET && p->op != PS_PEER_REMOVE)
				return fail(why, whylen, -EBADMSG, "peer %u: op %u", i, p->op);
			if (p->has6 > 1 || !all_zero(p->pad, sizeof(p->pad)))
				return fail(why, whylen, -EBADMSG, "peer %u: bad flags", i);
			if (p->op == PS_PEER_REMOVE &&
				(p->has6 || !all_zero(p->addr4, 4) || !all_zero(p->addr6, 16)))
				return fail(why, whylen, -EBADMSG,
					"peer %u: removal with addresses", i);
			if (p->op == PS_PEER_SET && !p->has6 && !all_zero(p->addr6, 16))
				return fail(
					why, whylen, -EBADMSG, "peer %u: stray IPv6 address", i);
		}
		return 0;
	case PS_TENANT_UP:
		if (h.count != 0 || len != sizeof(struct ps_tenant))
			return fail(why, whylen, -EBADMSG, "TENANT_UP: %zu bytes, count %u", len,
				h.count);
		ret->tenant = (const struct ps_tenant *)b;
		return parse_tenant(ret->tenant, why, whylen);
	case PS_NOTIFY:
		if (len != 0 || h.count < PS_NOTIFY_READY || h.count > PS_NOTIFY_STOPPING)
			return fail(
				why, whylen, -EBADMSG, "NOTIFY: %zu bytes, code %u", len, h.count);
		return 0;
	default:
		return fail(why, whylen, -EBADMSG, "unknown message type %u", h.type);
	}
}

static const struct ps_tenant_rec *
find(const struct ps_registry *reg, const char *name)
{
	for (size_t i = 0; i < reg->n; i++)
		if (strcmp(reg->t[i].name, name) == 0)
			return &reg->t[i];
	return NULL;
}

static bool
same_rec(const struct ps_tenant_rec *a, const struct ps_tenant_rec *b)
{
	return strcmp(a->ifname, b->ifname) == 0 && a->listen_port == b->listen_port &&
	       memcmp(&a->prefix4, &b->prefix4, sizeof(a->prefix4)) == 0 &&
	       memcmp(&a->prefix6, &b->prefix6, sizeof(a->prefix6)) == 0 &&
	       memcmp(a->self4, b->self4, 16) == 0 && memcmp(a->self6, b->self6, 16) == 0;
}

/* @p lies inside one prefix of the registry's address space (none set: anywhere). */
static bool
in_space(const struct ps_registry *reg, const struct addr_prefix *p)
{
	if (reg->space == NULL || reg->n_space == 0)
		return true;
	return addr_prefix_in_set(p, reg->space, reg->n_space);
}

static int
check_up(const struct ps_registry *reg, const struct ps_tenant *t,
	const struct ps_tenant_rec **ret_rec, char *why, size_t whylen)
{
	const struct ps_tenant_rec *known = find(reg, t->name);
	struct ps_tenant_rec want;

	ps_tenant_to_rec(t, &want);
	if (known != NULL) {
		if (!same_rec(known, &want))
			return fail(why, whylen, -EPERM,
				"tenant '%s' is pinned to interface '%s' port %u and its prefixes; "
				"asked for '%s' port %u",
				known->name, known->ifname, known->listen_port, want.ifname,
				want.listen_port);
		*ret_rec = known;
		return 0;
	}
	if (reg->n >= PS_TENANTS_MAX)
		return fail(why, whylen, -EPERM, "too many tenants");
	/* the host's own routes are not the network process's to take (0.0.0.0/1, ...) */
	if (!in_space(reg, &want.prefix4) ||
		(want.prefix6.family != 0 && !in_space(reg, &want.prefix6)))
		return fail(why, whylen, -EPERM, "prefix outside wireguard.tenant_address_space");
	for (size_t i = 0; i < reg->n; i++) {
		const struct ps_tenant_rec *o = &reg->t[i];

		if (strcmp(o->ifname, want.ifname) == 0)
			return fail(why, whylen, -EPERM, "interface '%s' belongs to tenant '%s'",
				want.ifname, o->name);
		if (o->listen_port == want.listen_port)
			return fail(why, whylen, -EPERM, "port %u belongs to tenant '%s'",
				want.listen_port, o->name);
		if (addr_prefix_overlap(&o->prefix4, &want.prefix4) ||
			(want.prefix6.family != 0 &&
				addr_prefix_overlap(&o->prefix6, &want.prefix6)))
			return fail(why, whylen, -EPERM, "prefix overlaps tenant '%s'", o->name);
	}
	*ret_rec = NULL;
	return 0;
}

static int
check_peers(const struct ps_tenant_rec *t, const struct ps_request *req, char *why, size_t whylen)
{
	uint8_t a[16];

	for (uint32_t i = 0; i < req->count; i++) {
		const struct ps_peer *p = &req->peers[i];

		if (p->op != PS_PEER_SET)
			continue;
		memset(a, 0, sizeof(a));
		memcpy(a, p->addr4, 4);
		if (!addr_in_prefix(&t->prefix4, AF_INET, a) || !addr_is_usable(&t->prefix4, a) ||
			memcmp(a, t->self4, 4) == 0)
			return fail(why, whylen, -EINVAL,
				"peer %u: %u.%u.%u.%u/32 is not a device address of tenant '%s'", i,
				a[0], a[1], a[2], a[3], t->name);
		if (!p->has6)
			continue;
		if (t->prefix6.family == 0 || !addr_in_prefix(&t->prefix6, AF_INET6, p->addr6) ||
			!addr_is_usable(&t->prefix6, p->addr6) ||
			memcmp(p->addr6, t->self6, 16) == 0)
			return fail(why, whylen, -EINVAL,
				"peer %u: IPv6 address is not a device address of tenant '%s'", i,
				t->name);
	}
	return 0;
}

int
ps_check_request(const struct ps_registry *reg, const struct ps_request *req,
	const struct ps_tenant_rec **ret_rec, char *why, size_t whylen)
{
	const struct ps_tenant_rec *t;

	*ret_rec = NULL;
	switch (req->type) {
	case PS_NOTIFY:
	case PS_TENANT_KEY:
		/* A key file is named after a well-formed tenant name; nothing else is touched. */
		return 0;
	case PS_TENANT_UP:
		return check_up(reg, req->tenant, ret_rec, why, whylen);
	case PS_PEERS_SET:
	case PS_DUMP:
	case PS_STATS:
		t = find(reg, req->name->name);
		if (t == NULL)
			return fail(why, whylen, -ENOENT, "tenant '%s' was never brought up",
				req->name->name);
		*ret_rec = t;
		return req->type == PS_PEERS_SET ? check_peers(t, req, why, whylen) : 0;
	default:
		return fail(why, whylen, -EBADMSG, "unknown message type %u", req->type);
	}
}

int
ps_registry_pin(struct ps_registry *reg, const struct ps_tenant *t)
{
	struct ps_tenant_rec *nt;

	if (find(reg, t->name) != NULL)
		return 0;
	if (reg->n >= PS_TENANTS_MAX)
		return -EPERM;
	nt = realloc(reg->t, (reg->n + 1) * sizeof(*nt));
	if (nt == NULL)
		return -ENOMEM;
	reg->t = nt;
	ps_tenant_to_rec(t, &reg->t[reg->n++]);
	return 0;
}

void
ps_registry_clear(struct ps_registry *reg)
{
	free(reg->t);
	reg->t = NULL;
	reg->n = 0;
}
