// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: the privileged parent's parser and checks of the network process's
 * requests (enrolld/privsep_msg.c). The input is a sequence of messages, each preceded by
 * its length (2 bytes, little endian), run against one registry that starts with one
 * pinned tenant, as the parent runs them. Whatever is accepted must hold what the parent
 * relies on, checked here again independently:
 *  - a PEERS_SET names a pinned tenant, and every peer it sets has a usable address inside
 *    that tenant's IPv4 prefix that is not the tenant's own;
 *  - no two pinned tenants share an interface or a port, a pinned tenant never changes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "enrolld/privsep.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
seed(struct ps_registry *reg)
{
	struct ps_tenant t;

	memset(&t, 0, sizeof(t));
	strcpy(t.name, "alpha");
	strcpy(t.ifname, "wg-alpha");
	t.listen_port = 51820;
	t.plen4 = 24;
	t.prefix4[0] = 10, t.prefix4[1] = 1;
	memcpy(t.self4, t.prefix4, 4);
	t.self4[3] = 1;
	if (ps_registry_pin(reg, &t) < 0)
		abort();
}

static void
check_accepted(const struct ps_registry *reg, const struct ps_request *req,
	const struct ps_tenant_rec *rec)
{
	uint8_t a[16];

	if (req->type != PS_PEERS_SET)
		return;
	if (rec == NULL || rec < reg->t || rec >= reg->t + reg->n ||
		strcmp(rec->name, req->name->name) != 0)
		abort();
	for (uint32_t i = 0; i < req->count; i++) {
		const struct ps_peer *p = &req->peers[i];

		if (p->op == PS_PEER_REMOVE)
			continue;
		if (p->op != PS_PEER_SET)
			abort();
		memset(a, 0, sizeof(a));
		memcpy(a, p->addr4, 4);
		if (!addr_in_prefix(&rec->prefix4, AF_INET, a) ||
			!addr_is_usable(&rec->prefix4, a) || memcmp(a, rec->self4, 4) == 0)
			abort();
	}
}

static void
check_registry(const struct ps_registry *reg, const struct ps_tenant_rec *first)
{
	if (memcmp(&reg->t[0], first, sizeof(*first)) != 0)
		abort();
	for (size_t i = 0; i < reg->n; i++)
		for (size_t j = i + 1; j < reg->n; j++)
			if (strcmp(reg->t[i].ifname, reg->t[j].ifname) == 0 ||
				strcmp(reg->t[i].name, reg->t[j].name) == 0 ||
				reg->t[i].listen_port == reg->t[j].listen_port ||
				addr_prefix_overlap(&reg->t[i].prefix4, &reg->t[j].prefix4))
				abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ps_registry reg = {0};
	struct ps_tenant_rec first;
	char why[256];

	seed(&reg);
	first = reg.t[0];
	while (size >= 2) {
		size_t len = (size_t)data[0] | (size_t)data[1] << 8;
		const struct ps_tenant_rec *rec;
		struct ps_request req;
		uint8_t *msg;

		data += 2, size -= 2;
		if (len > size)
			len = size;
		/* a copy of exactly len bytes: ASan sees any read past the message */
		msg = malloc(len ? len : 1);
		if (msg == NULL)
			break;
		memcpy(msg, data, len);
		if (ps_parse_request(msg, len, &req, why, sizeof(why)) == 0 &&
			ps_check_request(&reg, &req, &rec, why, sizeof(why)) == 0) {
			check_accepted(&reg, &req, rec);
			if (req.type == PS_TENANT_UP)
				(void)ps_registry_pin(&reg, req.tenant);
		}
		check_registry(&reg, &first);
		free(msg);
		data += len, size -= len;
	}
	ps_registry_clear(&reg);
	return 0;
}
