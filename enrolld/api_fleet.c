// SPDX-License-Identifier: MIT
/*
 * The fleet half of the API: tenants, factory registrations, enrollment tokens, devices,
 * revocation, and the event stream. Who may do what:
 *
 *   admin token        everything, every tenant
 *   tenant token       its own tenant only: another tenant named in a path or query is
 *                      403 forbidden_tenant; another tenant's device (by id) is 404
 *   provisioning token only POST .../registrations (the route table enforces it)
 *
 * Every handler validates everything before the first write; an error never leaves a
 * change behind.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/b64.h"
#include "common/key.h"
#include "common/log.h"
#include "common/tpm2.h"
#include "enrolld/enrolld.h"

/* ---- tenants ------------------------------------------------------------------------------ */

static const char *const tenant_members[] = { "name", "prefix", "prefix6", "address",
	"address6", "interface", "listen_port", "endpoint", "keepalive", "pcr_policy", NULL };

static int
parse_pcr_policy(struct http_request *req, json_t *pol, struct store_tenant *t)
{
	size_t i;
	json_t *it;

	if (pol == NULL || json_is_null(pol))
		return 0;
	if (!json_is_array(pol) || json_array_size(pol) > STORE_PCR_MAX)
		return http_error(req, -EBADMSG, "invalid_body",
			"'pcr_policy' must be an array of at most %d {index, sha256}", STORE_PCR_MAX);
	json_array_foreach(pol, i, it) {
		json_t *idx = json_object_get(it, "index"), *val = json_object_get(it, "sha256");
		struct store_pcr *p = &t->pcrs[i];

		if (!json_is_object(it) || json_object_size(it) != 2 || !json_is_integer(idx) ||
		    json_integer_value(idx) < 0 || json_integer_value(idx) >= STORE_PCR_MAX ||
		    !json_is_string(val) || api_unhex(json_string_value(val), p->sha256, 32) < 0)
			return http_error(req, -EBADMSG, "invalid_body",
				"pcr_policy[%zu] must be {\"index\": 0..23, \"sha256\": 64 hex digits}",
				i);
		p->index = (uint8_t)json_integer_value(idx);
		if (i > 0 && p->index <= t->pcrs[i - 1].index)
			return http_error(req, -EBADMSG, "invalid_body",
				"pcr_policy must list PCR indexes in ascending order, each once");
	}
	t->n_pcrs = (uint8_t)json_array_size(pol);
	return 0;
}

static int
parse_self(struct http_request *req, const char *s, int family, uint8_t out[16], const char *key)
{
	int fam;

	if (s == NULL)
		return 0;
	if (addr_parse(&fam, out, s) < 0 || fam != family)
		return http_error(req, -EBADMSG, "invalid_body", "'%s' is not an IPv%d address", key,
			family == AF_INET ? 4 : 6);
	return 0;
}

int
api_tenant_create(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	const char *name, *prefix, *prefix6, *self4, *self6, *ifname, *endpoint;
	json_int_t port = 0, keepalive = 25;
	struct store_tenant t = { 0 };
	json_t *body = NULL;
	int r;

	r = http_request_json(req, &body);
	if (r < 0)
		return r;
	if ((r = api_json_known(req, body, tenant_members)) < 0 ||
	    (r = api_json_str(req, body, "name", true, &name)) < 0 ||
	    (r = api_json_str(req, body, "prefix", true, &prefix)) < 0 ||
	    (r = api_json_str(req, body, "prefix6", false, &prefix6)) < 0 ||
	    (r = api_json_str(req, body, "address", false, &self4)) < 0 ||
	    (r = api_json_str(req, body, "address6", false, &self6)) < 0 ||
	    (r = api_json_str(req, body, "interface", true, &ifname)) < 0 ||
	    (r = api_json_str(req, body, "endpoint", true, &endpoint)) < 0 ||
	    (r = api_json_int(req, body, "listen_port", true, 1, 65535, &port)) < 0 ||
	    (r = api_json_int(req, body, "keepalive", false, 1, 3600, &keepalive)) < 0 ||
	    (r = parse_pcr_policy(req, json_object_get(body, "pcr_policy"), &t)) < 0)
		goto out;
	r = -EBADMSG;
	if (strlen(name) >= sizeof(t.name) || strlen(ifname) >= sizeof(t.ifname) ||
	    strlen(endpoint) >= sizeof(t.endpoint)) {
		http_error(req, r, "invalid_body", "name, interface or endpoint is too long");
		goto out;
	}
	if (strchr(endpoint, ':') == NULL || endpoint[0] == '\0') {
		http_error(req, r, "invalid_body", "'endpoint' must be host:port");
		goto out;
	}
	snprintf(t.name, sizeof(t.name), "%s", name);
	snprintf(t.ifname, sizeof(t.ifname), "%s", ifname);
	snprintf(t.endpoint, sizeof(t.endpoint), "%s", endpoint);
	if (addr_prefix_parse(&t.prefix4, prefix) < 0 || t.prefix4.family != AF_INET) {
		http_error(req, r, "invalid_body",
			"'prefix' must be an IPv4 prefix with zero host bits, e.g. 10.20.0.0/24");
		goto out;
	}
	if (prefix6 != NULL &&
	    (addr_prefix_parse(&t.prefix6, prefix6) < 0 || t.prefix6.family != AF_INET6)) {
		http_error(req, r, "invalid_body",
			"'prefix6' must be an IPv6 prefix with zero host bits, e.g. fd00:20::/64");
		goto out;
	}
	if (self6 != NULL && prefix6 == NULL) {
		http_error(req, r, "invalid_body", "'address6' needs 'prefix6'");
		goto out;
	}
	/* privilege separation: the root process would refuse to bring it up (privsep_msg.c) */
	if (e->conf.user != NULL &&
	    (!addr_prefix_in_set(&t.prefix4, e->conf.tenant_space, e->conf.n_tenant_space) ||
		    (prefix6 != NULL && !addr_prefix_in_set(&t.prefix6, e->conf.tenant_space,
						e->conf.n_tenant_space)))) {
		http_error(req, r, "invalid_body",
			"the prefixes must lie inside wireguard.tenant_address_space");
		goto out;
	}
	if ((r = parse_self(req, self4, AF_INET, t.self4, "address")) < 0 ||
	    (r = parse_self(req, self6, AF_INET6, t.self6, "address6")) < 0)
		goto out;
	t.listen_port = (uint16_t)port;
	t.keepalive = (uint16_t)keepalive;
	t.require_tpm = 1;

	r = store_tenant_create(e->store, &t);
	if (r == -EINVAL) {
		r = http_error(req, -EBADMSG, "invalid_tenant",
			"bad name (1-31 of a-z 0-9 - _, starting with a letter or digit), "
			"interface name, prefix (IPv4 needs room for the server and a device) or "
			"address");
		goto out;
	}
	if (r == -EEXIST) {
		r = http_error(req, -EEXIST, "conflict",
			"a tenant with this name, interface, listen port or an overlapping prefix "
			"exists");
		goto out;
	}
	if (r < 0) {
		r = api_store_error(req, r, "tenant");
		goto out;
	}
	r = store_tenant_get(e->store, t.name, &t);
	if (r < 0) {
		r = api_store_error(req, r, "tenant");
		goto out;
	}
	log_info("tenant '%s' created: %s, interface '%s', port %u", t.name, prefix, t.ifname,
		(unsigned int)t.listen_port);
	/* The interface: failures are logged and retried by reconciliation. */
	(void)plane_tenant_up(e->plane, &t);
	*ret_body = api_tenant_json(e, &t);
	r = *ret_body ? 201 : -ENOMEM;
out:
	json_decref(body);
	return r;
}

int
api_tenant_list(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_tenant *ts = NULL;
	size_t n = 0;
	json_t *arr;
	int r;

	r = store_tenant_list(e->store, &ts, &n);
	if (r < 0)
		return api_store_error(req, r, "tenants");
	arr = json_array();
	for (size_t i = 0; arr != NULL && i < n; i++) {
		if (http_request_role(req) == HTTP_AUTH_TENANT &&
		    strcmp(ts[i].name, http_request_tenant(req)) != 0)
			continue;
		json_array_append_new(arr, api_tenant_json(e, &ts[i]));
	}
	free(ts);
	*ret_body = json_pack("{s:o}", "tenants", arr);
	return *ret_body ? 200 : -ENOMEM;
}

int
api_tenant_get(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_tenant t;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	*ret_body = api_tenant_json(e, &t);
	return *ret_body ? 200 : -ENOMEM;
}

/* ---- registrations ----------------------------------------------------------------------- */

/* SHA-256 of the EK's public key, as attest_verify_ek() computes it (docs/attestation.md). */
static int
ek_id_of_public(const uint8_t *buf, size_t len, uint8_t out[32])
{
	TPM2B_PUBLIC pub;
	uint8_t xy[2 * 66] = { 0 };
	size_t clen;

	if (tpm2_unmarshal_tpm2b_public(buf, len, &pub) < 0)
		return -EBADMSG;
	if (pub.publicArea.type == TPM2_ALG_RSA)
		return tpm2_hash(TPM2_ALG_SHA256, pub.publicArea.unique.rsa.buffer,
			pub.publicArea.unique.rsa.size, out);
	if (pub.publicArea.type != TPM2_ALG_ECC)
		return -EBADMSG;
	switch (pub.publicArea.parameters.eccDetail.curveID) {
	case TPM2_ECC_NIST_P256:
		clen = 32;
		break;
	case TPM2_ECC_NIST_P384:
		clen = 48;
		break;
	case TPM2_ECC_NIST_P521:
		clen = 66;
		break;
	default:
		return -EBADMSG;
	}
	if (pub.publicArea.unique.ecc.x.size > clen || pub.publicArea.unique.ecc.y.size > clen)
		return -EBADMSG;
	memcpy(xy + clen - pub.publicArea.unique.ecc.x.size, pub.publicArea.unique.ecc.x.buffer,
		pub.publicArea.unique.ecc.x.size);
	memcpy(xy + 2 * clen - pub.publicArea.unique.ecc.y.size, pub.publicArea.unique.ecc.y.buffer,
		pub.publicArea.unique.ecc.y.size);
	return tpm2_hash(TPM2_ALG_SHA256, xy, 2 * clen, out);
}

static json_t *
registration_json(const struct store_registration *reg)
{
	char ek[2 * STORE_HASH_LEN + 1];

	api_hex(reg->ek_hash, STORE_HASH_LEN, ek);
	return json_pack("{s:s,s:s,s:s,s:I}", "tenant", reg->tenant, "ek_id", ek, "label",
		reg->label, "created", (json_int_t)reg->created);
}

static const char *const registration_members[] = { "ek_id", "ek_public", "label", NULL };

int
api_registration_add(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_registration reg = { 0 };
	struct store_tenant t;
	const char *ek_hex, *ek_pub_b64, *label;
	json_t *body = NULL;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = http_request_json(req, &body);
	if (r < 0)
		return r;
	if ((r = api_json_known(req, body, registration_members)) < 0 ||
	    (r = api_json_str(req, body, "ek_id", false, &ek_hex)) < 0 ||
	    (r = api_json_str(req, body, "ek_public", false, &ek_pub_b64)) < 0 ||
	    (r = api_json_str(req, body, "label", false, &label)) < 0)
		goto out;
	if ((ek_hex == NULL) == (ek_pub_b64 == NULL)) {
		r = http_error(req, -EBADMSG, "invalid_body",
			"give exactly one of 'ek_id' (64 hex digits) and 'ek_public' (base64 "
			"TPM2B_PUBLIC)");
		goto out;
	}
	if (ek_hex != NULL && api_unhex(ek_hex, reg.ek_hash, STORE_HASH_LEN) < 0) {
		r = http_error(req, -EBADMSG, "invalid_body", "'ek_id' must be 64 hex digits");
		goto out;
	}
	if (ek_pub_b64 != NULL) {
		uint8_t *buf = NULL;
		size_t len;

		r = b64_decode(ek_pub_b64, 4096, &buf, &len);
		if (r == 0)
			r = ek_id_of_public(buf, len, reg.ek_hash);
		free(buf);
		if (r < 0) {
			r = http_error(req, -EBADMSG, "invalid_body",
				"'ek_public' must be the base64 of an RSA or ECC TPM2B_PUBLIC");
			goto out;
		}
	}
	if (label != NULL && strlen(label) >= sizeof(reg.label)) {
		r = http_error(req, -EBADMSG, "invalid_body", "'label' is longer than %zu bytes",
			sizeof(reg.label) - 1);
		goto out;
	}
	snprintf(reg.tenant, sizeof(reg.tenant), "%s", t.name);
	snprintf(reg.label, sizeof(reg.label), "%s", label ? label : "");
	reg.created = (int64_t)time(NULL);
	r = store_registration_add(e->store, &reg);
	if (r == -EEXIST) {
		r = http_error(req, -EEXIST, "conflict", "this EK is already registered here");
		goto out;
	}
	if (r < 0) {
		r = api_store_error(req, r, "registration");
		goto out;
	}
	*ret_body = registration_json(&reg);
	r = *ret_body ? 201 : -ENOMEM;
out:
	json_decref(body);
	return r;
}

int
api_registration_list(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_registration *regs = NULL;
	struct store_tenant t;
	size_t n = 0;
	json_t *arr;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = store_registration_list(e->store, t.name, &regs, &n);
	if (r < 0)
		return api_store_error(req, r, "registrations");
	arr = json_array();
	for (size_t i = 0; arr != NULL && i < n; i++)
		json_array_append_new(arr, registration_json(&regs[i]));
	free(regs);
	*ret_body = json_pack("{s:o}", "registrations", arr);
	return *ret_body ? 200 : -ENOMEM;
}

int
api_registration_remove(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	uint8_t ek[STORE_HASH_LEN];
	struct store_tenant t;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	if (api_unhex(http_request_param(req, 1), ek, sizeof(ek)) < 0)
		return http_error(req, -ENOENT, "not_found", "no such registration");
	r = store_registration_remove(e->store, t.name, ek);
	if (r < 0)
		return api_store_error(req, r, "registration");
	*ret_body = json_pack("{s:b}", "removed", 1);
	return *ret_body ? 200 : -ENOMEM;
}

/* ---- enrollment tokens -------------------------------------------------------------------- */

static json_t *
token_json(const struct store_token *tok)
{
	char id[2 * STORE_HASH_LEN + 1];
	json_t *j;

	api_hex(tok->hash, STORE_HASH_LEN, id);
	j = json_pack("{s:s,s:s,s:s,s:I,s:I,s:b}", "id", id, "tenant", tok->tenant, "label",
		tok->label, "uses_left", (json_int_t)tok->uses_left, "created",
		(json_int_t)tok->created, "revoked", tok->revoked ? 1 : 0);
	if (j != NULL)
		json_object_set_new(j, "expires", tok->expires ? json_integer(tok->expires) :
								 json_null());
	return j;
}

static const char *const token_members[] = { "uses", "expires_in", "label", NULL };

int
api_token_create(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_token tok = { 0 };
	struct store_tenant t;
	json_int_t uses = 1, expires_in = 0;
	uint8_t raw[32];
	char *value = NULL;
	const char *label;
	json_t *body = NULL, *out;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = http_request_json(req, &body);
	if (r < 0)
		return r;
	if ((r = api_json_known(req, body, token_members)) < 0 ||
	    (r = api_json_int(req, body, "uses", false, 1, 1000000, &uses)) < 0 ||
	    (r = api_json_int(req, body, "expires_in", false, 1, 10L * 365 * 86400,
		     &expires_in)) < 0 ||
	    (r = api_json_str(req, body, "label", false, &label)) < 0)
		goto out;
	if (label != NULL && strlen(label) >= sizeof(tok.label)) {
		r = http_error(req, -EBADMSG, "invalid_body", "'label' is longer than %zu bytes",
			sizeof(tok.label) - 1);
		goto out;
	}
	if (getrandom(raw, sizeof(raw), 0) != (ssize_t)sizeof(raw)) {
		r = -EIO;
		goto out;
	}
	/* "et_" and 64 hex digits: recognisable in a leak scan, safe in any shell or JSON. */
	value = malloc(3 + 2 * sizeof(raw) + 1);
	if (value == NULL) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(value, "et_", 3);
	api_hex(raw, sizeof(raw), value + 3);
	if (EVP_Digest(value, strlen(value), tok.hash, NULL, EVP_sha256(), NULL) != 1) {
		r = -EIO;
		goto out;
	}
	snprintf(tok.tenant, sizeof(tok.tenant), "%s", t.name);
	snprintf(tok.label, sizeof(tok.label), "%s", label ? label : "");
	tok.uses_left = (uint32_t)uses;
	tok.created = (int64_t)time(NULL);
	tok.expires = expires_in ? tok.created + expires_in : 0;
	r = store_token_create(e->store, &tok);
	if (r < 0) {
		r = api_store_error(req, r, "token");
		goto out;
	}
	out = token_json(&tok);
	if (out == NULL) {
		r = -ENOMEM;
		goto out;
	}
	/* Shown this once; only its hash is kept. */
	json_object_set_new(out, "token", json_string(value));
	*ret_body = out;
	r = 201;
out:
	OPENSSL_cleanse(raw, sizeof(raw));
	if (value != NULL)
		OPENSSL_cleanse(value, strlen(value));
	free(value);
	json_decref(body);
	return r;
}

int
api_token_list(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_token *toks = NULL;
	struct store_tenant t;
	size_t n = 0;
	json_t *arr;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = store_token_list(e->store, t.name, &toks, &n);
	if (r < 0)
		return api_store_error(req, r, "tokens");
	arr = json_array();
	for (size_t i = 0; arr != NULL && i < n; i++)
		json_array_append_new(arr, token_json(&toks[i]));
	free(toks);
	*ret_body = json_pack("{s:o}", "tokens", arr);
	return *ret_body ? 200 : -ENOMEM;
}

int
api_token_revoke(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	uint8_t hash[STORE_HASH_LEN];
	struct store_token tok;
	struct store_tenant t;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	if (api_unhex(http_request_param(req, 1), hash, sizeof(hash)) < 0)
		return http_error(req, -ENOENT, "not_found", "no such token");
	r = store_token_get(e->store, hash, &tok);
	if (r == 0 && strcmp(tok.tenant, t.name) != 0)
		r = -ENOENT;
	if (r < 0)
		return api_store_error(req, r, "token");
	if (tok.revoked)
		return http_error(req, -EALREADY, "already_revoked", "this token is already revoked");
	r = store_token_revoke(e->store, hash);
	if (r < 0)
		return api_store_error(req, r, "token");
	tok.revoked = 1;
	*ret_body = token_json(&tok);
	return *ret_body ? 200 : -ENOMEM;
}

/* ---- devices ------------------------------------------------------------------------------- */

/*
 * A number in canonical decimal only: digits, no sign, no space, no leading zero ("0"
 * itself aside), within 64 bits. One id has one spelling: /v1/devices/01 is not device 1.
 */
static int
parse_u64(const char *s, uint64_t *ret)
{
	uint64_t v = 0;

	if (s == NULL || *s == '\0' || (s[0] == '0' && s[1] != '\0'))
		return -EINVAL;
	for (; *s != '\0'; s++) {
		if (*s < '0' || *s > '9' || v > (UINT64_MAX - (uint64_t)(*s - '0')) / 10)
			return -EINVAL;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return 0;
}

/* The device of path parameter 0, if the caller may see it (else 404, not 403: no leak). */
static int
path_device(struct http_request *req, struct enrolld *e, struct store_device *ret)
{
	uint64_t id;
	int r;

	if (parse_u64(http_request_param(req, 0), &id) < 0 || id == 0)
		return http_error(req, -ENOENT, "not_found", "no such device");
	r = store_device_get(e->store, id, ret);
	if (r == 0 && http_request_role(req) == HTTP_AUTH_TENANT &&
	    strcmp(ret->tenant, http_request_tenant(req)) != 0)
		r = -ENOENT;
	if (r < 0)
		return api_store_error(req, r, "device");
	return 0;
}

int
api_device_list(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	const char *tenant = http_request_query(req, "tenant");
	const char *state = http_request_query(req, "state");
	const char *cursor = http_request_query(req, "cursor");
	const char *limit = http_request_query(req, "limit");
	struct store_device_filter f = { 0 };
	struct store_device *devs = NULL;
	int health_state = -1;
	uint64_t v, next = 0;
	size_t n = 0;
	json_t *arr, *out;
	char nb[24];
	int r;

	if (http_request_role(req) == HTTP_AUTH_TENANT) {
		if (tenant != NULL && (r = api_check_tenant(req, tenant)) < 0)
			return r;
		tenant = http_request_tenant(req);
	}
	f.tenant = tenant;
	if (state != NULL) {
		if (strcmp(state, "active") == 0)
			f.state = STORE_DEVICE_ACTIVE;
		else if (strcmp(state, "revoked") == 0)
			f.state = STORE_DEVICE_REVOKED;
		else if (strcmp(state, "up") == 0)
			health_state = STORE_HEALTH_UP;
		else if (strcmp(state, "down") == 0)
			health_state = STORE_HEALTH_DOWN;
		else if (strcmp(state, "never") == 0)
			health_state = STORE_HEALTH_NEVER;
		else
			return http_error(req, -EINVAL, "invalid_query",
				"state must be active, revoked, up, down or never");
		if (health_state >= 0)
			f.state = STORE_DEVICE_ACTIVE;
	}
	if (cursor != NULL) {
		if (parse_u64(cursor, &v) < 0)
			return http_error(req, -EINVAL, "invalid_query", "bad cursor");
		f.after = v;
	}
	if (limit != NULL) {
		if (parse_u64(limit, &v) < 0 || v < 1 || v > 1000)
			return http_error(req, -EINVAL, "invalid_query", "limit must be 1 to 1000");
		f.limit = (unsigned int)v;
	}
	if (tenant != NULL) {
		struct store_tenant t;

		r = store_tenant_get(e->store, tenant, &t);
		if (r < 0)
			return api_store_error(req, r, "tenant");
	}
	r = store_device_list(e->store, &f, &devs, &n, &next);
	if (r < 0)
		return api_store_error(req, r, "devices");
	arr = json_array();
	for (size_t i = 0; arr != NULL && i < n; i++) {
		if (health_state >= 0) {
			struct store_health sh;

			if (store_health_get(e->store, devs[i].id, &sh) < 0 ||
			    sh.state != health_state)
				continue;
		}
		json_array_append_new(arr, api_device_json(e, &devs[i]));
	}
	free(devs);
	snprintf(nb, sizeof(nb), "%llu", (unsigned long long)next);
	out = json_pack("{s:o,s:o}", "devices", arr, "next_cursor",
		next ? json_string(nb) : json_null());
	*ret_body = out;
	return out ? 200 : -ENOMEM;
}

int
api_device_get(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_device d;
	int r;

	r = path_device(req, e, &d);
	if (r < 0)
		return r;
	*ret_body = api_device_json(e, &d);
	return *ret_body ? 200 : -ENOMEM;
}

int
api_device_revoke(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_device d;
	struct store_tenant t;
	const uint8_t *keys[1];
	int r;

	r = path_device(req, e, &d);
	if (r < 0)
		return r;
	r = store_tenant_get(e->store, d.tenant, &t);
	if (r < 0)
		return api_store_error(req, r, "tenant");
	r = store_device_revoke(e->store, d.id, &d);
	if (r == -EALREADY)
		return http_error(req, -EALREADY, "already_revoked", "this device is already revoked");
	if (r < 0)
		return api_store_error(req, r, "device");
	/*
	 * Durable first; then the peer goes, before we answer. d is the device as the revocation
	 * committed it, so its key is the last one it had: a rotation racing us cannot leave a
	 * newer one on the interface (plane_device_sync() reads the store under its lock).
	 */
	keys[0] = d.wg_pubkey;
	r = api_device_sync(e, &t, d.id, keys, 1);
	if (r < 0)
		return http_error(req, -EAGAIN, "wireguard_unavailable",
			"the device is revoked in the store but its peer could not be removed yet; "
			"reconciliation will remove it");
	log_info("device %llu of '%s' revoked", (unsigned long long)d.id, d.tenant);
	*ret_body = api_device_json(e, &d);
	return *ret_body ? 200 : -ENOMEM;
}

int
api_device_reinstate(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_device d;
	int r;

	r = path_device(req, e, &d);
	if (r < 0)
		return r;
	r = store_device_reinstate(e->store, d.id);
	if (r == -EALREADY)
		return http_error(req, -EALREADY, "not_revoked", "this device's EK is not revoked");
	if (r < 0)
		return api_store_error(req, r, "device");
	log_info("device %llu of '%s' reinstated: it may enroll again", (unsigned long long)d.id,
		d.tenant);
	*ret_body = api_device_json(e, &d);
	if (*ret_body != NULL)
		json_object_set_new(*ret_body, "reinstated", json_true());
	return *ret_body ? 200 : -ENOMEM;
}

/* ---- GET /v1/events: server-sent events -------------------------------------------------- */

struct event_stream {
	struct enrolld *e;
	char tenant[STORE_NAME_MAX]; /* "" = all */
	uint64_t after;
	int keepalive_ms;
	struct timespec last_sent; /* CLOCK_MONOTONIC */
	char *pending; /* formatted but not yet sent */
	size_t pending_len, pending_off;
};

static bool
stopping(struct enrolld *e)
{
	bool s;

	pthread_mutex_lock(&e->stop_lock);
	s = e->stopping;
	pthread_mutex_unlock(&e->stop_lock);
	return s;
}

static int64_t
ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (int64_t)(now.tv_sec - t->tv_sec) * 1000 + (now.tv_nsec - t->tv_nsec) / 1000000;
}

/* Format the events after es->after into es->pending; returns how many bytes. */
static int
fill_events(struct event_stream *es)
{
	struct store_event *evs = NULL;
	size_t n = 0, len = 0;
	char *buf = NULL;
	FILE *f;
	int r;

	r = store_events_read(es->e->store, es->after, 256, &evs, &n);
	if (r < 0)
		return r;
	f = open_memstream(&buf, &len);
	if (f == NULL) {
		free(evs);
		return -ENOMEM;
	}
	for (size_t i = 0; i < n; i++) {
		const struct store_event *ev = &evs[i];

		es->after = ev->seq;
		if (es->tenant[0] != '\0' && strcmp(ev->tenant, es->tenant) != 0)
			continue;
		fprintf(f,
			"id: %" PRIu64 "\nevent: %s\ndata: {\"seq\":%" PRIu64 ",\"type\":\"%s\","
			"\"device_id\":\"%" PRIu64 "\",\"tenant\":\"%s\",\"time\":%" PRId64 "}\n\n",
			ev->seq, store_event_kind_name(ev->kind), ev->seq,
			store_event_kind_name(ev->kind), ev->device, ev->tenant, ev->time);
	}
	free(evs);
	if (fclose(f) != 0) {
		free(buf);
		return -ENOMEM;
	}
	free(es->pending);
	es->pending = buf;
	es->pending_len = len;
	es->pending_off = 0;
	return (int)len;
}

/*
 * Never blocks (it runs on one of the HTTP pool threads): with nothing to send it answers
 * HTTP_STREAM_WAIT and the server parks the connection until api_events_wait() reports a
 * new event or its next tick (every half second: keepalives, shutdown).
 */
static ssize_t
events_read(void *cls, uint64_t pos, char *buf, size_t max)
{
	static const char ka[] = ": keepalive\n\n";
	struct event_stream *es = cls;
	size_t n;
	int r;

	for (;;) {
		if (es->pending_off < es->pending_len) {
			n = es->pending_len - es->pending_off;
			if (n > max)
				n = max;
			memcpy(buf, es->pending + es->pending_off, n);
			es->pending_off += n;
			clock_gettime(CLOCK_MONOTONIC, &es->last_sent);
			return (ssize_t)n;
		}
		if (stopping(es->e))
			return HTTP_STREAM_END;
		r = fill_events(es);
		if (r < 0)
			return HTTP_STREAM_ERROR;
		if (r == 0)
			break;
	}
	if (ms_since(&es->last_sent) >= es->keepalive_ms) {
		/* A comment: keeps proxies and the connection timeout from closing us. */
		n = sizeof(ka) - 1 < max ? sizeof(ka) - 1 : max;
		memcpy(buf, ka, n);
		clock_gettime(CLOCK_MONOTONIC, &es->last_sent);
		return (ssize_t)n;
	}
	return HTTP_STREAM_WAIT;
}

int
api_events_wait(void *ctx, uint64_t *cursor, int timeout_ms)
{
	struct enrolld *e = ctx;
	int r;

	r = store_events_wait(e->store, *cursor, timeout_ms);
	/* Read after the wait: an event committed later makes the next wait return at once. */
	(void)store_events_last(e->store, cursor);
	return r;
}

static void
events_done(void *cls)
{
	struct event_stream *es = cls;

	free(es->pending);
	free(es);
}

int
api_events(struct http_request *req, char **ret_text, const char **ret_ctype, void *ctx)
{
	struct http_stream st = { 0 };
	struct enrolld *e = ctx;
	const char *tenant = http_request_query(req, "tenant");
	const char *after = http_request_query(req, "after");
	const char *last_id = http_request_header(req, "Last-Event-ID");
	struct event_stream *es;
	uint64_t v;
	int r;

	if (http_request_role(req) == HTTP_AUTH_TENANT) {
		if (tenant != NULL && (r = api_check_tenant(req, tenant)) < 0)
			return r;
		tenant = http_request_tenant(req);
	}
	es = calloc(1, sizeof(*es));
	if (es == NULL)
		return -ENOMEM;
	es->e = e;
	snprintf(es->tenant, sizeof(es->tenant), "%s", tenant ? tenant : "");
	/* Resume after Last-Event-ID or ?after=N; otherwise only what happens from now on. */
	if (last_id != NULL && parse_u64(last_id, &v) == 0) {
		es->after = v;
	} else if (after != NULL) {
		if (parse_u64(after, &v) < 0) {
			free(es);
			return http_error(req, -EINVAL, "invalid_query", "'after' must be an event id");
		}
		es->after = v;
	} else {
		r = store_events_last(e->store, &es->after);
		if (r < 0) {
			free(es);
			return api_store_error(req, r, "events");
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &es->last_sent);
	es->keepalive_ms = (int)(e->conf.conn_timeout * 1000 / 3);
	if (es->keepalive_ms > 10000)
		es->keepalive_ms = 10000;
	if (es->keepalive_ms < 500)
		es->keepalive_ms = 500;
	st.content_type = "text/event-stream";
	st.read = events_read;
	st.done = events_done;
	st.cls = es;
	http_request_set_stream(req, &st);
	*ret_text = NULL;
	return 200;
}
