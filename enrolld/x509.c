// SPDX-License-Identifier: MIT
/*
 * Device certificates: parse what a TLS client presented, verify it against a tenant's
 * device CAs, derive the device identity. OpenSSL does the X.509 work; its error queue is
 * drained here and turned into an x509_reason, never logged (library code).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "enrolld/attest/crl.h"
#include "enrolld/x509.h"

struct x509_trust {
	STACK_OF(X509) *cas;
	struct crl_set *crls; /* the CAs' revocation lists (crl.h: checked where present) */
};

struct x509_peer {
	X509 *leaf;
	STACK_OF(X509) *chain; /* intermediates the client sent (untrusted) */
};

const char *
x509_reason_code(enum x509_reason reason)
{
	switch (reason) {
	case X509_REASON_OK:
		return "ok";
	case X509_REASON_NO_CERT:
		return "no_client_certificate";
	case X509_REASON_MALFORMED:
		return "malformed_certificate";
	case X509_REASON_UNTRUSTED:
		return "untrusted_certificate";
	case X509_REASON_EXPIRED:
		return "certificate_expired";
	case X509_REASON_NOT_YET_VALID:
		return "certificate_not_yet_valid";
	case X509_REASON_BAD_USAGE:
		return "certificate_usage";
	case X509_REASON_REVOKED:
		return "certificate_revoked";
	case X509_REASON_CRL_EXPIRED:
		return "crl_expired";
	case X509_REASON_CRL_INVALID:
		return "crl_invalid";
	}
	return "untrusted_certificate";
}

/* ---- trust ---- */

int
x509_trust_new(struct x509_trust **ret)
{
	struct x509_trust *t;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	t->cas = sk_X509_new_null();
	if (t->cas == NULL || crl_set_new(&t->crls) < 0) {
		sk_X509_free(t->cas);
		free(t);
		return -ENOMEM;
	}
	*ret = t;
	return 0;
}

void
x509_trust_free(struct x509_trust *t)
{
	if (t == NULL)
		return;
	sk_X509_pop_free(t->cas, X509_free);
	crl_set_free(t->crls);
	free(t);
}

static X509 *
der_to_x509(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509 *x;

	if (len == 0 || len > X509_DER_MAX)
		return NULL;
	x = d2i_X509(NULL, &p, (long)len);
	/* trailing bytes after the certificate: not what was asked for */
	if (x != NULL && p != der + len) {
		X509_free(x);
		x = NULL;
	}
	ERR_clear_error();
	return x;
}

int
x509_trust_add_der(struct x509_trust *t, const uint8_t *der, size_t len)
{
	X509 *x = der_to_x509(der, len);

	if (x == NULL)
		return -EBADMSG;
	if (!sk_X509_push(t->cas, x)) {
		X509_free(x);
		return -ENOMEM;
	}
	return 0;
}

int
x509_trust_add_crl_der(struct x509_trust *t, const uint8_t *der, size_t len)
{
	return crl_set_add_der(t->crls, der, len);
}

int
x509_trust_add_crls(struct x509_trust *t, const struct crl_set *crls)
{
	return crl_set_add_all(t->crls, crls);
}

size_t
x509_trust_count(const struct x509_trust *t)
{
	return t ? (size_t)sk_X509_num(t->cas) : 0;
}

static void
name_line(const X509_NAME *name, char *out, size_t len)
{
	BIO *b;
	int n;

	if (len == 0)
		return;
	out[0] = '\0';
	b = BIO_new(BIO_s_mem());
	if (b == NULL)
		return;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_read(b, out, (int)len - 1);
		out[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	ERR_clear_error();
}

int
x509_ca_parse_pem(const char *pem, size_t len, uint8_t **ret_der, size_t *ret_len,
	uint8_t ret_fp[static X509_FP_LEN], char *ret_subject, size_t subject_len)
{
	BIO *b = NULL;
	X509 *x = NULL, *extra = NULL;
	unsigned char *der = NULL;
	unsigned int fplen = 0;
	int n, r;

	if (len == 0 || len > 4 * X509_DER_MAX)
		return len ? -E2BIG : -EBADMSG;
	b = BIO_new_mem_buf(pem, (int)len);
	if (b == NULL)
		return -ENOMEM;
	x = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (x == NULL) {
		r = -EBADMSG;
		goto out;
	}
	/* exactly one certificate: a second one would silently not be trusted */
	extra = PEM_read_bio_X509(b, NULL, NULL, NULL);
	if (extra != NULL) {
		r = -EBADMSG;
		goto out;
	}
	if (X509_check_ca(x) == 0) {
		r = -EINVAL;
		goto out;
	}
	n = i2d_X509(x, &der);
	if (n <= 0) {
		r = -EBADMSG;
		goto out;
	}
	if (n > X509_DER_MAX) {
		r = -E2BIG;
		goto out;
	}
	if (!X509_digest(x, EVP_sha256(), ret_fp, &fplen) || fplen != X509_FP_LEN) {
		r = -EIO;
		goto out;
	}
	if (ret_subject != NULL)
		name_line(X509_get_subject_name(x), ret_subject, subject_len);
	*ret_der = malloc((size_t)n);
	if (*ret_der == NULL) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(*ret_der, der, (size_t)n);
	*ret_len = (size_t)n;
	r = 0;
out:
	OPENSSL_free(der);
	X509_free(extra);
	X509_free(x);
	BIO_free(b);
	ERR_clear_error();
	return r;
}

/* ---- serials ---- */

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
x509_serial_parse(const char *text, uint8_t ret[static X509_SERIAL_MAX], size_t *ret_len)
{
	uint8_t digits[2 * X509_SERIAL_MAX + 2];
	size_t nd = 0, start = 0, n;

	if (text == NULL)
		return -EINVAL;
	if (text[0] == '0' && (text[1] == 'x' || text[1] == 'X'))
		text += 2;
	for (const char *c = text; *c; c++) {
		int v;

		if (*c == ':')
			continue;
		v = hexval(*c);
		if (v < 0)
			return -EINVAL;
		/* leading zero digits carry no value: skip them before counting */
		if (nd == 0 && v == 0)
			continue;
		if (nd == sizeof(digits))
			return -EINVAL;
		digits[nd++] = (uint8_t)v;
	}
	if (nd == 0) {
		/* all zeros (or nothing): serial 0 is a value, an empty string is not */
		if (*text == '\0')
			return -EINVAL;
		ret[0] = 0;
		*ret_len = 1;
		return 0;
	}
	n = (nd + 1) / 2;
	if (n > X509_SERIAL_MAX)
		return -EINVAL;
	if (nd % 2) {
		ret[0] = digits[0];
		start = 1;
	}
	for (size_t i = start, o = nd % 2; i < nd; i += 2, o++)
		ret[o] = (uint8_t)(digits[i] << 4 | digits[i + 1]);
	*ret_len = n;
	return 0;
}

void
x509_serial_format(const uint8_t *serial, size_t len, char *out)
{
	static const char hex[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = hex[serial[i] >> 4];
		out[2 * i + 1] = hex[serial[i] & 15];
	}
	out[2 * len] = '\0';
}

/* ---- the peer ---- */

int
x509_peer_new(struct x509_peer **ret, const uint8_t *const *ders, const size_t *lens, size_t n)
{
	struct x509_peer *p;
	int r;

	if (n == 0)
		return -ENOENT;
	if (n > X509_CHAIN_MAX)
		return -E2BIG;
	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->chain = sk_X509_new_null();
	if (p->chain == NULL) {
		r = -ENOMEM;
		goto err;
	}
	for (size_t i = 0; i < n; i++) {
		X509 *x;

		if (lens[i] > X509_DER_MAX) {
			r = -E2BIG;
			goto err;
		}
		x = der_to_x509(ders[i], lens[i]);
		if (x == NULL) {
			r = -EBADMSG;
			goto err;
		}
		if (i == 0) {
			p->leaf = x;
		} else if (!sk_X509_push(p->chain, x)) {
			X509_free(x);
			r = -ENOMEM;
			goto err;
		}
	}
	*ret = p;
	return 0;
err:
	x509_peer_free(p);
	return r;
}

void
x509_peer_free(struct x509_peer *p)
{
	if (p == NULL)
		return;
	X509_free(p->leaf);
	sk_X509_pop_free(p->chain, X509_free);
	free(p);
}

static enum x509_reason
reason_of(int err)
{
	switch (err) {
	case X509_V_OK:
		return X509_REASON_OK;
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return X509_REASON_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return X509_REASON_NOT_YET_VALID;
	case X509_V_ERR_INVALID_PURPOSE:
	case X509_V_ERR_INVALID_CA:
		return X509_REASON_BAD_USAGE;
	case X509_V_ERR_CERT_REVOKED:
		return X509_REASON_REVOKED;
	case X509_V_ERR_CRL_HAS_EXPIRED:
		return X509_REASON_CRL_EXPIRED;
	default:
		if (crl_error_unusable(err))
			return X509_REASON_CRL_INVALID;
		return X509_REASON_UNTRUSTED;
	}
}

int
x509_peer_verify(const struct x509_peer *p, const struct x509_trust *t, int64_t now,
	enum x509_reason *ret_reason)
{
	X509_STORE *store = NULL;
	X509_STORE_CTX *ctx = NULL;
	X509_VERIFY_PARAM *param;
	int r, ok;

	*ret_reason = X509_REASON_UNTRUSTED;
	if (p == NULL || p->leaf == NULL) {
		*ret_reason = X509_REASON_NO_CERT;
		return -EACCES;
	}
	if (t == NULL || sk_X509_num(t->cas) == 0)
		return -EACCES;
	/* A CA certificate is not a device certificate, even if self-signed and trusted. */
	if (X509_check_ca(p->leaf) != 0) {
		*ret_reason = X509_REASON_BAD_USAGE;
		return -EACCES;
	}
	store = X509_STORE_new();
	ctx = X509_STORE_CTX_new();
	if (store == NULL || ctx == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < sk_X509_num(t->cas); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(t->cas, i))) {
			r = -ENOMEM;
			goto out;
		}
	if (!X509_STORE_CTX_init(ctx, store, p->leaf, p->chain)) {
		r = -ENOMEM;
		goto out;
	}
	param = X509_STORE_CTX_get0_param(ctx);
	X509_VERIFY_PARAM_set_time(param, (time_t)now);
	/* clientAuth in extendedKeyUsage when the extension is there (RFC 5280 4.2.1.12) */
	X509_VERIFY_PARAM_set_purpose(param, X509_PURPOSE_SSL_CLIENT);
	X509_VERIFY_PARAM_set_depth(param, X509_CHAIN_MAX);
	crl_set_apply(t->crls, ctx);
	X509_STORE_CTX_set_verify_cb(ctx, crl_verify_cb);
	ok = X509_verify_cert(ctx);
	if (ok == 1) {
		*ret_reason = X509_REASON_OK;
		r = 0;
	} else {
		*ret_reason = reason_of(X509_STORE_CTX_get_error(ctx));
		if (*ret_reason == X509_REASON_OK)
			*ret_reason = X509_REASON_UNTRUSTED;
		r = -EACCES;
	}
out:
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(store);
	ERR_clear_error();
	return r;
}

int
x509_peer_serial(const struct x509_peer *p, uint8_t ret[static X509_SERIAL_MAX], size_t *ret_len)
{
	const ASN1_INTEGER *ai;
	BIGNUM *bn;
	int n;

	ai = X509_get0_serialNumber(p->leaf);
	bn = ai ? ASN1_INTEGER_to_BN(ai, NULL) : NULL;
	if (bn == NULL) {
		ERR_clear_error();
		return -EBADMSG;
	}
	n = BN_num_bytes(bn);
	if (n > X509_SERIAL_MAX) {
		BN_free(bn);
		return -E2BIG;
	}
	if (n == 0) {
		ret[0] = 0;
		n = 1;
	} else {
		BN_bn2bin(bn, ret);
	}
	BN_free(bn);
	*ret_len = (size_t)n;
	return 0;
}

static int
digest_part(EVP_MD_CTX *md, const void *p, size_t n)
{
	uint8_t len[4] = { (uint8_t)(n >> 24), (uint8_t)(n >> 16), (uint8_t)(n >> 8), (uint8_t)n };

	return EVP_DigestUpdate(md, len, 4) && EVP_DigestUpdate(md, p, n) ? 0 : -EIO;
}

int
x509_peer_identity(const struct x509_peer *p, uint8_t ret[static X509_ID_LEN])
{
	static const char label[] = "edgeward-x509-id";
	unsigned char *issuer = NULL, *spki = NULL;
	uint8_t serial[X509_SERIAL_MAX], spki_hash[32];
	size_t serial_len;
	unsigned int outlen = 0;
	EVP_MD_CTX *md = NULL;
	int ni, ns, r;

	r = x509_peer_serial(p, serial, &serial_len);
	if (r < 0)
		return r;
	ni = i2d_X509_NAME(X509_get_issuer_name(p->leaf), &issuer);
	ns = i2d_X509_PUBKEY(X509_get_X509_PUBKEY(p->leaf), &spki);
	if (ni <= 0 || ns <= 0) {
		r = -EBADMSG;
		goto out;
	}
	if (!EVP_Digest(spki, (size_t)ns, spki_hash, &outlen, EVP_sha256(), NULL)) {
		r = -EIO;
		goto out;
	}
	md = EVP_MD_CTX_new();
	if (md == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (!EVP_DigestInit_ex(md, EVP_sha256(), NULL) ||
	    (r = digest_part(md, label, sizeof(label) - 1)) < 0 ||
	    (r = digest_part(md, issuer, (size_t)ni)) < 0 ||
	    (r = digest_part(md, serial, serial_len)) < 0 ||
	    (r = digest_part(md, spki_hash, sizeof(spki_hash))) < 0 ||
	    !EVP_DigestFinal_ex(md, ret, &outlen)) {
		r = -EIO;
		goto out;
	}
	r = 0;
out:
	EVP_MD_CTX_free(md);
	OPENSSL_free(issuer);
	OPENSSL_free(spki);
	ERR_clear_error();
	return r;
}

void
x509_peer_subject(const struct x509_peer *p, char *out, size_t len)
{
	name_line(X509_get_subject_name(p->leaf), out, len);
}
