// SPDX-License-Identifier: MIT
/*
 * The X.509 enrollment path (docs/x509-enrollment.md): POST/GET /v1/peer for devices that
 * present a factory-issued client certificate on the TLS connection, and the admin side
 * of it: per-tenant device CAs, revoked serials and the require_tpm policy.
 *
 * A refusal changes nothing: every check (certificate, tenant, policy, serial, key) runs
 * before store_enroll(), which repeats policy and serial in its write transaction.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/crypto.h>

#include "common/key.h"
#include "common/log.h"
#include "enrolld/enrolld.h"
#include "enrolld/x509.h"

/* What the device's wg-quick file runs to give the interface its key (docs say how). */
#define PEER_KEY_FILE "/etc/wireguard/private.key"
#define PEER_POSTUP "wg set %i private-key " PEER_KEY_FILE

/* ---- the client-certificate trust of the HTTPS listener ---- */

static int
der_to_pem(const uint8_t *der, size_t len, char **buf, size_t *used, size_t *cap)
{
	static const char b64[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t need = *used + 64 + (len + 2) / 3 * 4 + (len / 48 + 2) + 64;
	size_t col = 0;
	char *p;

	if (need > *cap) {
		p = realloc(*buf, need * 2);
		if (p == NULL)
			return -ENOMEM;
		*buf = p;
		*cap = need * 2;
	}
	p = *buf + *used;
	p += sprintf(p, "-----BEGIN CERTIFICATE-----\n");
	for (size_t i = 0; i < len; i += 3) {
		uint32_t v = (uint32_t)der[i] << 16;
		size_t n = len - i < 3 ? len - i : 3;

		if (n > 1)
			v |= (uint32_t)der[i + 1] << 8;
		if (n > 2)
			v |= der[i + 2];
		*p++ = b64[v >> 18 & 63];
		*p++ = b64[v >> 12 & 63];
		*p++ = n > 1 ? b64[v >> 6 & 63] : '=';
		*p++ = n > 2 ? b64[v & 63] : '=';
		col += 4;
		if (col == 64) {
			*p++ = '\n';
			col = 0;
		}
	}
	if (col)
		*p++ = '\n';
	p += sprintf(p, "-----END CERTIFICATE-----\n");
	*used = (size_t)(p - *buf);
	return 0;
}

int
api_x509_trust_pem(struct enrolld *e, char **ret)
{
	struct store_device_ca *cas = NULL;
	size_t n = 0, used = 0, cap = 0;
	char *buf = NULL;
	int r;

	*ret = NULL;
	r = store_device_ca_list(e->store, NULL, &cas, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		bool dup = false;

		/* the same CA trusted by two tenants is named once */
		for (size_t j = 0; j < i && !dup; j++)
			dup = memcmp(cas[j].fp, cas[i].fp, sizeof(cas[i].fp)) == 0;
		if (dup)
			continue;
		r = der_to_pem(cas[i].der, cas[i].der_len, &buf, &used, &cap);
		if (r < 0)
			goto out;
	}
	*ret = buf;
	buf = NULL;
	r = 0;
out:
	free(buf);
	free(cas);
	return r;
}

/* After a CA change: the listener asks clients for certificates of the new set. */
static void
refresh_trust(struct enrolld *e)
{
	char *pem = NULL;
	int r;

	if (e->http == NULL)
		return;
	r = api_x509_trust_pem(e, &pem);
	if (r == 0)
		r = http_server_set_trust(e->http, pem ? pem : "");
	if (r < 0)
		log_warnx("device CAs changed but the listener keeps its previous client-CA "
			  "list: %s", strerror(-r));
	free(pem);
}

/* ---- certificate -> tenant ---- */

static int
cert_refusal(struct http_request *req, enum x509_reason reason, const char *detail)
{
	int err;

	switch (reason) {
	case X509_REASON_NO_CERT:
		err = -EACCES;
		break;
	case X509_REASON_MALFORMED:
		err = -EBADMSG;
		break;
	default:
		err = -EPERM;
	}
	metrics_count_attest_failure(x509_reason_code(reason));
	metrics_count_enrollment("rejected");
	return http_error(req, err, x509_reason_code(reason), "%s", detail);
}

static int
reason_rank(enum x509_reason r)
{
	/* the most telling failure: one that reached a trusted CA beats "untrusted" */
	switch (r) {
	case X509_REASON_REVOKED:
		return 5;
	case X509_REASON_CRL_EXPIRED:
	case X509_REASON_CRL_INVALID:
		return 4;
	case X509_REASON_EXPIRED:
	case X509_REASON_NOT_YET_VALID:
		return 3;
	case X509_REASON_BAD_USAGE:
		return 2;
	default:
		return 1;
	}
}

/*
 * Authenticate the client certificate and choose the tenant: the one whose device CAs
 * issued it; ?tenant= must name one of those (403 wrong_tenant otherwise). On success
 * *ret_peer (caller frees) and *ret_t are set.
 */
static int
peer_authenticate(struct http_request *req, struct enrolld *e, struct x509_peer **ret_peer,
	struct store_tenant *ret_t)
{
	struct store_device_ca *cas = NULL;
	struct x509_peer *peer = NULL;
	struct x509_trust *trust = NULL;
	enum x509_reason reason, worst = X509_REASON_UNTRUSTED;
	const char *want = http_request_query(req, "tenant");
	char found[STORE_NAME_MAX] = "", subject[160];
	unsigned int n_ok = 0;
	bool want_ok = false, want_refused = false;
	int64_t now = (int64_t)time(NULL);
	size_t n = 0, i, j;
	int r;

	r = http_request_client_cert(req, &peer);
	if (r == -ENOENT)
		return cert_refusal(req, X509_REASON_NO_CERT,
			"this endpoint needs a client certificate issued by a device CA");
	if (r == -EBADMSG || r == -E2BIG)
		return cert_refusal(req, X509_REASON_MALFORMED,
			"the client certificate chain does not parse");
	if (r < 0)
		return http_error(req, r, "internal", "client certificate: %s", strerror(-r));

	r = store_device_ca_list(e->store, NULL, &cas, &n);
	if (r < 0) {
		r = api_store_error(req, r, "device CAs");
		goto out;
	}
	/* the list is in tenant order: one trust per run of a tenant's CAs */
	for (i = 0; i < n; i = j) {
		r = x509_trust_new(&trust);
		if (r < 0)
			goto out;
		for (j = i; j < n && strcmp(cas[j].tenant, cas[i].tenant) == 0; j++)
			(void)x509_trust_add_der(trust, cas[j].der, cas[j].der_len);
		r = api_x509_trust_add_crls(e, cas[i].tenant, trust);
		if (r < 0) {
			r = api_store_error(req, r, "device CRLs");
			goto out;
		}
		r = x509_peer_verify(peer, trust, now, &reason);
		x509_trust_free(trust);
		trust = NULL;
		if (r == 0) {
			n_ok++;
			if (want == NULL || strcmp(want, cas[i].tenant) == 0)
				snprintf(found, sizeof(found), "%s", cas[i].tenant);
			if (want != NULL && strcmp(want, cas[i].tenant) == 0)
				want_ok = true;
		} else if (r == -EACCES) {
			/*
			 * The tenant asked for decides once its CAs issued the certificate (its
			 * CRLs are its own); not issued by them at all is wrong_tenant below.
			 */
			if (want != NULL && strcmp(want, cas[i].tenant) == 0 &&
			    reason != X509_REASON_UNTRUSTED) {
				worst = reason;
				want_refused = true;
			} else if (!want_refused && reason_rank(reason) > reason_rank(worst)) {
				worst = reason;
			}
		} else {
			goto out;
		}
	}
	x509_peer_subject(peer, subject, sizeof(subject));
	if (n_ok == 0 || want_refused) {
		log_info("x509: certificate '%s' refused: %s", subject, x509_reason_code(worst));
		if (worst == X509_REASON_CRL_EXPIRED || worst == X509_REASON_CRL_INVALID)
			log_warnx("x509: a CRL of a CA in the chain of '%s' is %s: every device "
				  "under that CA is refused until a fresh CRL is installed",
				subject, worst == X509_REASON_CRL_EXPIRED ?
				"past its nextUpdate" : "unusable");
		r = cert_refusal(req, worst, worst == X509_REASON_REVOKED ?
			"the client certificate (or a CA above it) is revoked by its issuer's CRL" :
			worst == X509_REASON_CRL_EXPIRED ?
			"the CRL of a CA in the certificate's chain has expired: certificates of "
			"that CA are refused until the operator installs a fresh CRL" :
			worst == X509_REASON_CRL_INVALID ?
			"the CRL of a CA in the certificate's chain cannot be used (signature, "
			"validity or scope): certificates of that CA are refused" :
			worst == X509_REASON_EXPIRED ?
			"the client certificate (or its CA) has expired" :
			worst == X509_REASON_NOT_YET_VALID ?
			"the client certificate is not valid yet" :
			worst == X509_REASON_BAD_USAGE ?
			"the certificate may not be used for client authentication" :
			"the client certificate was not issued by any tenant's device CA");
		goto out;
	}
	if (want != NULL && !want_ok) {
		metrics_count_enrollment("rejected");
		r = http_error(req, -EPERM, "wrong_tenant",
			"this certificate was not issued by a device CA of tenant '%.31s'", want);
		goto out;
	}
	if (want == NULL && n_ok > 1) {
		r = http_error(req, -EBUSY, "tenant_ambiguous",
			"several tenants trust this certificate's CA: name one with ?tenant=");
		goto out;
	}
	r = store_tenant_get(e->store, found, ret_t);
	if (r < 0) {
		r = api_store_error(req, r, "tenant");
		goto out;
	}
	if (ret_t->require_tpm) {
		metrics_count_enrollment("rejected");
		r = http_error(req, -EPERM, "tpm_required",
			"tenant '%s' accepts TPM-attested devices only (policy require_tpm)",
			ret_t->name);
		goto out;
	}
	*ret_peer = peer;
	peer = NULL;
	r = 0;
out:
	x509_trust_free(trust);
	x509_peer_free(peer);
	free(cas);
	return r;
}

/* ---- the answer: the same as an attested enrollment's, wg_config with PostUp ---- */

static int
peer_answer(struct http_request *req, struct enrolld *e, const struct store_tenant *t,
	const struct store_device *dev, const char *result, json_t **ret_body)
{
	char id[24], a4[ADDR_STR_LEN + 4], p4[ADDR_STR_LEN], pub_b64[WG_KEY_B64_LEN];
	uint8_t server_pub[WG_KEY_LEN];
	char *wgq = NULL;
	json_t *out, *allowed;
	int r;

	r = plane_tenant_key(e->plane, t, server_pub);
	if (r < 0)
		return http_error(req, -EAGAIN, "wireguard_unavailable",
			"the tenant's interface key is unavailable; retry later");
	snprintf(id, sizeof(id), "%llu", (unsigned long long)dev->id);
	addr_format(AF_INET, dev->addr4, a4, sizeof(a4));
	strcat(a4, "/32");
	addr_prefix_format(&t->prefix4, p4, sizeof(p4));
	key_to_base64(pub_b64, server_pub);
	wgq = plane_wg_quick_postup(t, dev, server_pub,
		"PrivateKey: set by PostUp from the device's own key file, never written here",
		PEER_POSTUP);
	if (wgq == NULL)
		return -ENOMEM;
	allowed = json_array();
	json_array_append_new(allowed, json_string(p4));
	if (t->prefix6.family == AF_INET6) {
		char p6[ADDR_STR_LEN];

		addr_prefix_format(&t->prefix6, p6, sizeof(p6));
		json_array_append_new(allowed, json_string(p6));
	}
	out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:i,s:s,s:s,s:s}", "device_id", id, "tenant",
		t->name, "address", a4, "server_public_key", pub_b64, "endpoint", t->endpoint,
		"allowed_ips", allowed, "persistent_keepalive", (int)t->keepalive, "wg_config", wgq,
		"attestation", "x509", "result", result);
	free(wgq);
	if (out == NULL)
		return -ENOMEM;
	if (dev->has_addr6) {
		char a6[ADDR_STR_LEN + 5];

		addr_format(AF_INET6, dev->addr6, a6, sizeof(a6));
		strcat(a6, "/128");
		json_object_set_new(out, "address6", json_string(a6));
	}
	*ret_body = out;
	return 200;
}

static int
peer_store_error(struct http_request *req, int r)
{
	switch (r) {
	case -EPERM:
		metrics_count_enrollment("revoked");
		return http_error(req, -EPERM, "device_revoked",
			"this device is revoked; an administrator must reinstate it");
	case -EKEYREVOKED:
		metrics_count_enrollment("revoked");
		return http_error(req, -EPERM, "certificate_revoked",
			"this certificate's serial is revoked in the tenant");
	case -EPROTONOSUPPORT:
		metrics_count_enrollment("rejected");
		return http_error(req, -EPERM, "tpm_required",
			"the tenant accepts TPM-attested devices only (policy require_tpm)");
	case -EADDRNOTAVAIL:
		metrics_count_enrollment("exhausted");
		return http_error(req, -EAGAIN, "address_pool_exhausted",
			"the tenant's prefix has no free address left");
	case -EEXIST:
		metrics_count_enrollment("conflict");
		return http_error(req, -EEXIST, "conflict",
			"this WireGuard key belongs to another device, or the certificate to "
			"another tenant");
	default:
		metrics_count_enrollment("error");
		return api_store_error(req, r, "enrollment");
	}
}

static int
serial_checked(struct http_request *req, struct enrolld *e, const struct store_tenant *t,
	const struct x509_peer *peer, uint8_t serial[static X509_SERIAL_MAX], size_t *serial_len)
{
	int r;

	r = x509_peer_serial(peer, serial, serial_len);
	if (r < 0)
		return cert_refusal(req, X509_REASON_MALFORMED, "unusable certificate serial");
	r = store_x509_is_revoked(e->store, t->name, serial, *serial_len);
	if (r < 0)
		return api_store_error(req, r, "revoked serials");
	if (r == 1)
		return peer_store_error(req, -EKEYREVOKED);
	return 0;
}

static const char *const peer_members[] = { "public_key", NULL };

int
api_peer_enroll(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct x509_peer *peer = NULL;
	struct store_enroll_req er = { 0 };
	struct store_device dev, before;
	struct store_tenant t;
	uint8_t serial[X509_SERIAL_MAX];
	size_t serial_len;
	const uint8_t *keys[2];
	const char *pub_b64;
	json_t *body = NULL;
	int r, result;

	r = peer_authenticate(req, e, &peer, &t);
	if (r < 0)
		return r;
	r = serial_checked(req, e, &t, peer, serial, &serial_len);
	if (r < 0)
		goto out;
	r = http_request_json(req, &body);
	if (r < 0)
		goto out;
	if ((r = api_json_known(req, body, peer_members)) < 0 ||
	    (r = api_json_str(req, body, "public_key", true, &pub_b64)) < 0)
		goto out;
	if (key_from_base64(er.wg_pubkey, pub_b64) < 0 || key_is_zero(er.wg_pubkey)) {
		r = http_error(req, -EBADMSG, "invalid_public_key",
			"'public_key' must be a base64 WireGuard public key (32 bytes)");
		goto out;
	}
	r = x509_peer_identity(peer, er.ek_hash);
	if (r < 0) {
		r = cert_refusal(req, X509_REASON_MALFORMED, "unusable certificate");
		goto out;
	}
	snprintf(er.tenant, sizeof(er.tenant), "%s", t.name);
	er.kind = STORE_ATTEST_X509;
	memcpy(er.serial, serial, serial_len);
	er.serial_len = (uint8_t)serial_len;

	result = store_enroll_prev(e->store, &er, &dev, &before);
	if (result < 0) {
		r = peer_store_error(req, result);
		goto out;
	}
	/* The key this commit replaced, not one read before it: see plane_device_sync(). */
	keys[0] = dev.wg_pubkey;
	keys[1] = before.wg_pubkey;
	r = api_device_sync(e, &t, dev.id, keys, before.id != 0 ? 2 : 1);
	if (r < 0) {
		metrics_count_enrollment("interface_error");
		r = http_error(req, -EAGAIN, "wireguard_unavailable",
			"the enrollment is recorded but the tenant's interface could not be "
			"changed; it will be reconciled, retry later");
		goto out;
	}
	metrics_count_enrollment(api_enroll_result_name(result));
	{
		char fp[WG_KEY_FP_LEN], a4[ADDR_STR_LEN], subject[160];

		key_fingerprint(fp, dev.wg_pubkey);
		addr_format(AF_INET, dev.addr4, a4, sizeof(a4));
		x509_peer_subject(peer, subject, sizeof(subject));
		log_info("device %llu enrolled in '%s' by certificate '%s' (%s): %s, key %s",
			(unsigned long long)dev.id, t.name, subject, api_enroll_result_name(result), a4, fp);
	}
	r = peer_answer(req, e, &t, &dev, api_enroll_result_name(result), ret_body);
out:
	x509_peer_free(peer);
	json_decref(body);
	return r;
}

int
api_peer_get(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct x509_peer *peer = NULL;
	struct store_device dev;
	struct store_tenant t;
	uint8_t serial[X509_SERIAL_MAX], id[X509_ID_LEN];
	size_t serial_len;
	int r;

	r = peer_authenticate(req, e, &peer, &t);
	if (r < 0)
		return r;
	r = serial_checked(req, e, &t, peer, serial, &serial_len);
	if (r < 0)
		goto out;
	r = x509_peer_identity(peer, id);
	if (r < 0) {
		r = cert_refusal(req, X509_REASON_MALFORMED, "unusable certificate");
		goto out;
	}
	r = store_device_by_ek(e->store, id, &dev);
	if (r == -ENOENT || (r == 0 && dev.kind != STORE_ATTEST_X509)) {
		r = http_error(req, -ENOENT, "not_enrolled",
			"no device is enrolled with this certificate: POST /v1/peer first");
		goto out;
	}
	if (r < 0) {
		r = api_store_error(req, r, "device");
		goto out;
	}
	if (strcmp(dev.tenant, t.name) != 0) {
		r = http_error(req, -EPERM, "wrong_tenant",
			"this certificate's device is enrolled in another tenant");
		goto out;
	}
	if (dev.state != STORE_DEVICE_ACTIVE) {
		r = peer_store_error(req, -EPERM);
		goto out;
	}
	r = peer_answer(req, e, &t, &dev, "same", ret_body);
out:
	x509_peer_free(peer);
	return r;
}

/* ---- admin: device CAs ---- */

static const char *const ca_members[] = { "certificate", "label", NULL };

static json_t *
ca_json(const struct store_device_ca *ca)
{
	char fp[2 * STORE_HASH_LEN + 1];

	api_hex(ca->fp, sizeof(ca->fp), fp);
	return json_pack("{s:s,s:s,s:s,s:s,s:I}", "tenant", ca->tenant, "id", fp, "subject",
		ca->subject, "label", ca->label, "created", (json_int_t)ca->created);
}

int
api_device_ca_add(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_device_ca *ca = NULL;
	struct store_tenant t;
	const char *pem, *label;
	uint8_t *der = NULL;
	size_t der_len;
	json_t *body = NULL;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = http_request_json(req, &body);
	if (r < 0)
		return r;
	if ((r = api_json_known(req, body, ca_members)) < 0 ||
	    (r = api_json_str(req, body, "certificate", true, &pem)) < 0 ||
	    (r = api_json_str(req, body, "label", false, &label)) < 0)
		goto out;
	if (label != NULL && strlen(label) >= STORE_LABEL_MAX) {
		r = http_error(req, -EBADMSG, "invalid_body", "'label' is longer than %d",
			STORE_LABEL_MAX - 1);
		goto out;
	}
	ca = calloc(1, sizeof(*ca));
	if (ca == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = x509_ca_parse_pem(pem, strlen(pem), &der, &der_len, ca->fp, ca->subject,
		sizeof(ca->subject));
	if (r == -EINVAL) {
		r = http_error(req, -EBADMSG, "not_a_ca",
			"the certificate is not a CA certificate (basicConstraints CA:TRUE)");
		goto out;
	}
	if (r < 0) {
		r = http_error(req, -EBADMSG, "invalid_certificate",
			"'certificate' must be one PEM CERTIFICATE of at most %d bytes",
			X509_DER_MAX);
		goto out;
	}
	snprintf(ca->tenant, sizeof(ca->tenant), "%s", t.name);
	snprintf(ca->label, sizeof(ca->label), "%s", label ? label : "");
	ca->der_len = (uint16_t)der_len;
	memcpy(ca->der, der, der_len);
	r = store_device_ca_add(e->store, ca);
	if (r == -EEXIST) {
		r = http_error(req, -EEXIST, "conflict", "the tenant already trusts this CA");
		goto out;
	}
	if (r < 0) {
		r = api_store_error(req, r, "device CA");
		goto out;
	}
	log_info("tenant '%s' trusts device CA '%s'", t.name, ca->subject);
	refresh_trust(e);
	*ret_body = ca_json(ca);
	r = *ret_body ? 201 : -ENOMEM;
out:
	free(der);
	free(ca);
	json_decref(body);
	return r;
}

int
api_device_ca_list(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_device_ca *cas = NULL;
	struct store_tenant t;
	json_t *arr;
	size_t n = 0;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = store_device_ca_list(e->store, t.name, &cas, &n);
	if (r < 0)
		return api_store_error(req, r, "device CAs");
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, ca_json(&cas[i]));
	free(cas);
	*ret_body = json_pack("{s:o}", "device_cas", arr);
	return *ret_body ? 200 : -ENOMEM;
}

int
api_device_ca_remove(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_tenant t;
	uint8_t fp[STORE_HASH_LEN];
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	if (api_unhex(http_request_param(req, 1), fp, sizeof(fp)) < 0)
		return http_error(req, -ENOENT, "not_found", "no such device CA");
	r = store_device_ca_remove(e->store, t.name, fp);
	if (r < 0)
		return api_store_error(req, r, "device CA");
	log_info("tenant '%s' no longer trusts a device CA", t.name);
	refresh_trust(e);
	*ret_body = json_pack("{s:b}", "removed", 1);
	return *ret_body ? 200 : -ENOMEM;
}

/* ---- admin / tenant: revoked serials ---- */

static const char *const serial_members[] = { "serial", "label", NULL };

static json_t *
serial_json(const struct store_x509_revoked *rv)
{
	char hex[2 * STORE_SERIAL_MAX + 1];

	x509_serial_format(rv->serial, rv->serial_len, hex);
	return json_pack("{s:s,s:s,s:s,s:I}", "tenant", rv->tenant, "serial", hex, "label",
		rv->label, "created", (json_int_t)rv->created);
}

int
api_serial_revoke(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_x509_revoked rv = { 0 };
	struct store_tenant t;
	const char *serial, *label;
	size_t len;
	json_t *body = NULL;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = http_request_json(req, &body);
	if (r < 0)
		return r;
	if ((r = api_json_known(req, body, serial_members)) < 0 ||
	    (r = api_json_str(req, body, "serial", true, &serial)) < 0 ||
	    (r = api_json_str(req, body, "label", false, &label)) < 0)
		goto out;
	if (x509_serial_parse(serial, rv.serial, &len) < 0) {
		r = http_error(req, -EBADMSG, "invalid_serial",
			"'serial' must be the certificate serial in hex (at most %d octets)",
			STORE_SERIAL_MAX);
		goto out;
	}
	if (label != NULL && strlen(label) >= STORE_LABEL_MAX) {
		r = http_error(req, -EBADMSG, "invalid_body", "'label' is too long");
		goto out;
	}
	rv.serial_len = (uint8_t)len;
	snprintf(rv.tenant, sizeof(rv.tenant), "%s", t.name);
	snprintf(rv.label, sizeof(rv.label), "%s", label ? label : "");
	r = store_x509_revoke(e->store, &rv);
	if (r == -EEXIST) {
		r = http_error(req, -EEXIST, "conflict", "this serial is already revoked");
		goto out;
	}
	if (r < 0) {
		r = api_store_error(req, r, "revoked serial");
		goto out;
	}
	{
		char hex[2 * STORE_SERIAL_MAX + 1];

		x509_serial_format(rv.serial, rv.serial_len, hex);
		log_info("tenant '%s': certificate serial %s revoked", t.name, hex);
	}
	*ret_body = serial_json(&rv);
	r = *ret_body ? 201 : -ENOMEM;
out:
	json_decref(body);
	return r;
}

int
api_serial_list(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_x509_revoked *rv = NULL;
	struct store_tenant t;
	json_t *arr;
	size_t n = 0;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = store_x509_revoked_list(e->store, t.name, &rv, &n);
	if (r < 0)
		return api_store_error(req, r, "revoked serials");
	arr = json_array();
	for (size_t i = 0; i < n; i++)
		json_array_append_new(arr, serial_json(&rv[i]));
	free(rv);
	*ret_body = json_pack("{s:o}", "revoked_serials", arr);
	return *ret_body ? 200 : -ENOMEM;
}

int
api_serial_unrevoke(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_tenant t;
	uint8_t serial[X509_SERIAL_MAX];
	size_t len;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	if (x509_serial_parse(http_request_param(req, 1), serial, &len) < 0)
		return http_error(req, -ENOENT, "not_found", "no such revoked serial");
	r = store_x509_unrevoke(e->store, t.name, serial, len);
	if (r < 0)
		return api_store_error(req, r, "revoked serial");
	*ret_body = json_pack("{s:b}", "removed", 1);
	return *ret_body ? 200 : -ENOMEM;
}

/* ---- admin: tenant policy ---- */

static const char *const policy_members[] = { "require_tpm", NULL };

int
api_tenant_policy(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_tenant t;
	json_t *body = NULL, *v;
	int r;

	r = api_path_tenant(req, e, &t);
	if (r < 0)
		return r;
	r = http_request_json(req, &body);
	if (r < 0)
		return r;
	if ((r = api_json_known(req, body, policy_members)) < 0)
		goto out;
	v = json_object_get(body, "require_tpm");
	if (!json_is_boolean(v)) {
		r = http_error(req, -EBADMSG, "invalid_body", "'require_tpm' must be true or false");
		goto out;
	}
	r = store_tenant_set_require_tpm(e->store, t.name, json_is_true(v));
	if (r < 0) {
		r = api_store_error(req, r, "tenant");
		goto out;
	}
	log_info("tenant '%s': require_tpm %s", t.name, json_is_true(v) ? "on" : "off");
	*ret_body = json_pack("{s:s,s:b}", "tenant", t.name, "require_tpm", json_is_true(v));
	r = *ret_body ? 200 : -ENOMEM;
out:
	json_decref(body);
	return r;
}
