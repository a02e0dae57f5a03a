// SPDX-License-Identifier: MIT
/*
 * Revocation lists of the tenants' device CAs (docs/security.md, docs/api.md):
 * POST/GET/DELETE /v1/tenants/{name}/device-crls, and the CRLs a device certificate is
 * checked against on the X.509 path: the tenant's (in the store, so a CRL added here takes
 * effect with the next request) and those of attestation.crl_dir (reloaded on SIGHUP).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "enrolld/attest/crl.h"
#include "enrolld/enrolld.h"
#include "enrolld/x509.h"

/* ---- what a device certificate is checked against ---- */

static int
add_stored_crl(void *ctx, const struct store_device_crl *crl, const uint8_t *der)
{
	/* a stored CRL was parsed when it was added: one that no longer does is skipped */
	(void)x509_trust_add_crl_der(ctx, der, crl->der_len);
	return 0;
}

int
api_x509_trust_add_crls(struct enrolld *e, const char *tenant, struct x509_trust *t)
{
	struct crl_set *dir;
	int r;

	pthread_mutex_lock(&e->crl_lock);
	dir = crl_set_ref(e->crls);
	pthread_mutex_unlock(&e->crl_lock);
	r = x509_trust_add_crls(t, dir);
	crl_set_free(dir);
	if (r < 0)
		return r;
	return store_device_crl_each(e->store, tenant, add_stored_crl, t);
}

/* ---- the API ---- */

static const char *const crl_members[] = { "crl", NULL };

static json_t *
crl_json(const struct store_device_crl *c)
{
	char id[2 * STORE_HASH_LEN + 1], num[2 * STORE_CRL_NUMBER_MAX + 1];
	json_t *o;

	api_hex(c->issuer_hash, sizeof(c->issuer_hash), id);
	api_hex(c->number, c->number_len, num);
	o = json_pack("{s:s,s:s,s:s,s:I,s:I}", "tenant", c->tenant, "id", id, "issuer",
		c->issuer, "this_update", (json_int_t)c->this_update, "created",
		(json_int_t)c->created);
	if (o == NULL)
		return NULL;
	json_object_set_new(o, "next_update",
		c->next_update ? json_integer(c->next_update) : json_null());
	json_object_set_new(o, "crl_number", c->number_len ? json_string(num) : json_null());
	return o;
}

/* The tenant's device CA that signed @der: 0, or an API error. */
static int
crl_issuer_of(struct http_request *req, struct enrolld *e, const char *tenant,
	const uint8_t *der, size_t len)
{
	struct store_device_ca *cas = NULL;
	size_t n = 0;
	int r;

	r = store_device_ca_list(e->store, tenant, &cas, &n);
	if (r < 0)
		return api_store_error(req, r, "device CAs");
	r = -ENOENT;
	for (size_t i = 0; i < n && r != 0; i++)
		r = crl_check_issuer(der, len, cas[i].der, cas[i].der_len);
	free(cas);
	if (r != 0)
		return http_error(req, -EINVAL, "crl_issuer_unknown",
			"the CRL is not signed by a device CA of tenant '%s' (add the CA first)",
			tenant);
	return 0;
}

int
api_device_crl_add(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_device_crl rec;
	struct crl_info info;
	struct store_tenant t;
	uint8_t *der = NULL;
	size_t der_len;
	const char *pem;
	json_t *body = NULL;
	int64_t now = (int64_t)time(NULL);
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = http_request_json(req, &body);
	if (r < 0)
		return r;
	if ((r = api_json_known(req, body, crl_members)) < 0 ||
	    (r = api_json_str(req, body, "crl", true, &pem)) < 0)
		goto out;
	r = crl_parse_pem(pem, strlen(pem), &der, &der_len, &info);
	if (r < 0) {
		r = http_error(req, -EBADMSG, "invalid_crl",
			"'crl' must be one PEM X509 CRL of at most %d bytes", CRL_DER_MAX);
		goto out;
	}
	/* one that would fail closed at once is a mistake, not a revocation */
	if (info.next_update != 0 && info.next_update <= now) {
		r = http_error(req, -EINVAL, "crl_expired",
			"the CRL's nextUpdate is past: the CA must issue a fresh one");
		goto out;
	}
	if (info.this_update > now + 300) {
		r = http_error(req, -EINVAL, "crl_not_yet_valid",
			"the CRL's thisUpdate is in the future (check the clocks)");
		goto out;
	}
	r = crl_issuer_of(req, e, t.name, der, der_len);
	if (r < 0)
		goto out;
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.tenant, sizeof(rec.tenant), "%s", t.name);
	memcpy(rec.issuer_hash, info.issuer_hash, sizeof(rec.issuer_hash));
	snprintf(rec.issuer, sizeof(rec.issuer), "%s", info.issuer);
	rec.this_update = info.this_update;
	rec.next_update = info.next_update;
	memcpy(rec.number, info.number, info.number_len);
	rec.number_len = (uint8_t)info.number_len;
	rec.der_len = (uint32_t)der_len;
	rec.created = now;
	r = store_device_crl_put(e->store, &rec, der);
	if (r == -ESTALE) {
		r = http_error(req, -EEXIST, "crl_not_newer",
			"the tenant has a CRL of this issuer that is as new or newer (crlNumber, "
			"else thisUpdate); DELETE it first to go back");
		goto out;
	}
	if (r < 0) {
		r = api_store_error(req, r, "device CRL");
		goto out;
	}
	log_info("tenant '%s': CRL of '%s' %s (%zu revoked)", t.name, rec.issuer,
		r == 1 ? "replaced" : "added", info.n_revoked);
	*ret_body = crl_json(&rec);
	r = *ret_body == NULL ? -ENOMEM : r == 1 ? 200 : 201;
out:
	free(der);
	json_decref(body);
	return r;
}

int
api_device_crl_list(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_device_crl *crls = NULL;
	struct store_tenant t;
	json_t *arr;
	size_t n = 0;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = store_device_crl_list(e->store, t.name, &crls, &n);
	if (r < 0)
		return api_store_error(req, r, "device CRLs");
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, crl_json(&crls[i]));
	free(crls);
	*ret_body = json_pack("{s:o}", "device_crls", arr);
	return *ret_body ? 200 : -ENOMEM;
}

int
api_device_crl_remove(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_tenant t;
	uint8_t id[STORE_HASH_LEN];
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	if (api_unhex(http_request_param(req, 1), id, sizeof(id)) < 0)
		return http_error(req, -ENOENT, "not_found", "no such device CRL");
	r = store_device_crl_remove(e->store, t.name, id);
	if (r < 0)
		return api_store_error(req, r, "device CRL");
	log_info("tenant '%s': a device CRL was removed", t.name);
	*ret_body = json_pack("{s:b}", "removed", 1);
	return *ret_body ? 200 : -ENOMEM;
}
