// SPDX-License-Identifier: MIT
/*
 * enrolld/x509.c: the checks of a device certificate (chain to the tenant's CAs, validity,
 * clientAuth usage, CA leaves), the identity it stands for, serial parsing, CA PEM input.
 * Certificates are made here with OpenSSL, with validity windows around a fixed "now".
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "enrolld/attest/crl.h"
#include "enrolld/x509.h"

#define NOW 1700000000
#define DAY 86400

struct cert {
	X509 *x;
	EVP_PKEY *k;
	uint8_t *der;
	size_t len;
};

static EVP_PKEY *
ec_key(void)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");

	assert_non_null(k);
	return k;
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	assert_non_null(ext);
	X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
}

/* A certificate for @cn signed by @issuer (NULL: self-signed), valid [nb, na]. */
static struct cert
make(const char *cn, const struct cert *issuer, long serial, int64_t nb, int64_t na, bool ca,
	const char *eku)
{
	struct cert c = { 0 };
	X509_NAME *name;
	unsigned char *der = NULL;
	int n;

	c.k = ec_key();
	c.x = X509_new();
	X509_set_version(c.x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(c.x), serial);
	ASN1_TIME_set(X509_getm_notBefore(c.x), (time_t)nb);
	ASN1_TIME_set(X509_getm_notAfter(c.x), (time_t)na);
	X509_set_pubkey(c.x, c.k);
	name = X509_get_subject_name(c.x);
	X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_issuer_name(c.x, issuer ? X509_get_subject_name(issuer->x) : name);
	add_ext(c.x, issuer ? issuer->x : NULL, NID_basic_constraints,
		ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	if (ca)
		add_ext(c.x, NULL, NID_key_usage, "critical,keyCertSign,cRLSign");
	if (eku != NULL)
		add_ext(c.x, NULL, NID_ext_key_usage, eku);
	assert_true(X509_sign(c.x, issuer ? issuer->k : c.k, EVP_sha256()) > 0);
	n = i2d_X509(c.x, &der);
	assert_true(n > 0);
	c.der = malloc((size_t)n);
	memcpy(c.der, der, (size_t)n);
	c.len = (size_t)n;
	OPENSSL_free(der);
	return c;
}

static void
cert_free(struct cert *c)
{
	X509_free(c->x);
	EVP_PKEY_free(c->k);
	free(c->der);
}

static struct x509_trust *
trust_of(const struct cert *ca)
{
	struct x509_trust *t = NULL;

	assert_int_equal(x509_trust_new(&t), 0);
	if (ca != NULL)
		assert_int_equal(x509_trust_add_der(t, ca->der, ca->len), 0);
	return t;
}

static enum x509_reason
verify(const struct cert *leaf, const struct cert *inter, const struct x509_trust *t, int *ret)
{
	const uint8_t *ders[2] = { leaf->der, inter ? inter->der : NULL };
	size_t lens[2] = { leaf->len, inter ? inter->len : 0 };
	struct x509_peer *p = NULL;
	enum x509_reason reason = X509_REASON_OK;

	assert_int_equal(x509_peer_new(&p, ders, lens, inter ? 2 : 1), 0);
	*ret = x509_peer_verify(p, t, NOW, &reason);
	x509_peer_free(p);
	return reason;
}

static void
test_verify_reasons(void **state)
{
	struct cert ca = make("factory A", NULL, 1, NOW - 100 * DAY, NOW + 900 * DAY, true, NULL);
	struct cert other = make("factory X", NULL, 1, NOW - DAY, NOW + DAY, true, NULL);
	struct cert good = make("dev1", &ca, 10, NOW - DAY, NOW + DAY, false, "clientAuth");
	struct cert noeku = make("dev2", &ca, 11, NOW - DAY, NOW + DAY, false, NULL);
	struct cert old = make("dev3", &ca, 12, NOW - 9 * DAY, NOW - DAY, false, "clientAuth");
	struct cert young = make("dev4", &ca, 13, NOW + DAY, NOW + 9 * DAY, false, "clientAuth");
	struct cert server = make("dev5", &ca, 14, NOW - DAY, NOW + DAY, false, "serverAuth");
	struct cert stranger = make("dev6", &other, 15, NOW - DAY, NOW + DAY, false, "clientAuth");
	struct cert inter = make("line 2", &ca, 16, NOW - DAY, NOW + DAY, true, NULL);
	struct cert via = make("dev7", &inter, 17, NOW - DAY, NOW + DAY, false, "clientAuth");
	struct x509_trust *t = trust_of(&ca), *empty = trust_of(NULL);
	int r;

	assert_int_equal(verify(&good, NULL, t, &r), X509_REASON_OK);
	assert_int_equal(r, 0);
	/* no extendedKeyUsage at all: any use is allowed (RFC 5280) */
	assert_int_equal(verify(&noeku, NULL, t, &r), X509_REASON_OK);
	assert_int_equal(verify(&old, NULL, t, &r), X509_REASON_EXPIRED);
	assert_int_equal(r, -EACCES);
	assert_int_equal(verify(&young, NULL, t, &r), X509_REASON_NOT_YET_VALID);
	assert_int_equal(verify(&server, NULL, t, &r), X509_REASON_BAD_USAGE);
	assert_int_equal(verify(&stranger, NULL, t, &r), X509_REASON_UNTRUSTED);
	assert_int_equal(r, -EACCES);
	/* the CA itself is not a device */
	assert_int_equal(verify(&ca, NULL, t, &r), X509_REASON_BAD_USAGE);
	/* an intermediate the client sends along is used, never trusted by itself */
	assert_int_equal(verify(&via, &inter, t, &r), X509_REASON_OK);
	assert_int_equal(verify(&via, NULL, t, &r), X509_REASON_UNTRUSTED);
	/* no CAs: nothing is trusted */
	assert_int_equal(verify(&good, NULL, empty, &r), X509_REASON_UNTRUSTED);
	assert_int_equal(r, -EACCES);
	assert_string_equal(x509_reason_code(X509_REASON_EXPIRED), "certificate_expired");
	assert_string_equal(x509_reason_code(X509_REASON_NO_CERT), "no_client_certificate");

	x509_trust_free(t);
	x509_trust_free(empty);
	cert_free(&ca);
	cert_free(&other);
	cert_free(&good);
	cert_free(&noeku);
	cert_free(&old);
	cert_free(&young);
	cert_free(&server);
	cert_free(&stranger);
	cert_free(&inter);
	cert_free(&via);
}

/* A CRL of @issuer's name, signed with @key, listing @serials (n of them), DER. */
static uint8_t *
make_crl(const struct cert *issuer, EVP_PKEY *key, int64_t this_update, int64_t next_update,
	const long *serials, int n, long number, size_t *ret_len)
{
	X509_CRL *crl = X509_CRL_new();
	ASN1_TIME *t = ASN1_TIME_new();
	unsigned char *der = NULL;
	uint8_t *out;
	int len;

	X509_CRL_set_version(crl, 1);
	X509_CRL_set_issuer_name(crl, X509_get_subject_name(issuer->x));
	ASN1_TIME_set(t, (time_t)this_update);
	X509_CRL_set1_lastUpdate(crl, t);
	ASN1_TIME_set(t, (time_t)next_update);
	X509_CRL_set1_nextUpdate(crl, t);
	for (int i = 0; i < n; i++) {
		X509_REVOKED *rv = X509_REVOKED_new();
		ASN1_INTEGER *sn = ASN1_INTEGER_new();

		ASN1_INTEGER_set(sn, serials[i]);
		X509_REVOKED_set_serialNumber(rv, sn);
		ASN1_TIME_set(t, (time_t)this_update);
		X509_REVOKED_set_revocationDate(rv, t);
		X509_CRL_add0_revoked(crl, rv);
		ASN1_INTEGER_free(sn);
	}
	if (number > 0) {
		ASN1_INTEGER *num = ASN1_INTEGER_new();

		ASN1_INTEGER_set(num, number);
		X509_CRL_add1_ext_i2d(crl, NID_crl_number, num, 0, 0);
		ASN1_INTEGER_free(num);
	}
	X509_CRL_sort(crl);
	assert_true(X509_CRL_sign(crl, key, EVP_sha256()) > 0);
	len = i2d_X509_CRL(crl, &der);
	assert_true(len > 0);
	out = malloc((size_t)len);
	memcpy(out, der, (size_t)len);
	*ret_len = (size_t)len;
	OPENSSL_free(der);
	ASN1_TIME_free(t);
	X509_CRL_free(crl);
	return out;
}

/* A trust of @ca (and nothing else) with one CRL. */
static struct x509_trust *
trust_crl(const struct cert *ca, const uint8_t *crl, size_t len)
{
	struct x509_trust *t = trust_of(ca);

	assert_int_equal(x509_trust_add_crl_der(t, crl, len), 0);
	return t;
}

static void
test_verify_crl(void **state)
{
	struct cert ca = make("factory A", NULL, 1, NOW - 100 * DAY, NOW + 900 * DAY, true, NULL);
	struct cert other = make("factory X", NULL, 1, NOW - DAY, NOW + DAY, true, NULL);
	struct cert good = make("dev1", &ca, 10, NOW - DAY, NOW + DAY, false, "clientAuth");
	struct cert bad = make("dev2", &ca, 11, NOW - DAY, NOW + DAY, false, "clientAuth");
	struct cert inter = make("line 2", &ca, 16, NOW - DAY, NOW + DAY, true, NULL);
	struct cert via = make("dev7", &inter, 17, NOW - DAY, NOW + DAY, false, "clientAuth");
	static const long revoke_bad[] = { 11 }, revoke_inter[] = { 16 };
	static const uint8_t junk[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	uint8_t *crl, *old, *forged, *foreign, *upper, *young;
	size_t crl_len, old_len, forged_len, foreign_len, upper_len, young_len;
	struct x509_trust *t;
	int r;

	crl = make_crl(&ca, ca.k, NOW - DAY, NOW + 7 * DAY, revoke_bad, 1, 5, &crl_len);
	old = make_crl(&ca, ca.k, NOW - 9 * DAY, NOW - DAY, revoke_bad, 1, 4, &old_len);
	young = make_crl(&ca, ca.k, NOW + DAY, NOW + 9 * DAY, revoke_bad, 1, 6, &young_len);
	forged = make_crl(&ca, other.k, NOW - DAY, NOW + 7 * DAY, NULL, 0, 7, &forged_len);
	foreign = make_crl(&other, other.k, NOW - DAY, NOW + 7 * DAY, revoke_bad, 1, 1,
		&foreign_len);
	upper = make_crl(&ca, ca.k, NOW - DAY, NOW + 7 * DAY, revoke_inter, 1, 8, &upper_len);

	/* the CA's CRL lists serial 11: that device is refused, the others are not */
	t = trust_crl(&ca, crl, crl_len);
	assert_int_equal(verify(&bad, NULL, t, &r), X509_REASON_REVOKED);
	assert_int_equal(r, -EACCES);
	assert_int_equal(verify(&good, NULL, t, &r), X509_REASON_OK);
	assert_int_equal(r, 0);
	/* the intermediate has no CRL: not checked; the CA's CRL does not list it */
	assert_int_equal(verify(&via, &inter, t, &r), X509_REASON_OK);
	assert_string_equal(x509_reason_code(X509_REASON_REVOKED), "certificate_revoked");
	x509_trust_free(t);

	/* every certificate of the chain is checked: a revoked intermediate stops its leaves */
	t = trust_crl(&ca, upper, upper_len);
	assert_int_equal(verify(&via, &inter, t, &r), X509_REASON_REVOKED);
	assert_int_equal(verify(&bad, NULL, t, &r), X509_REASON_OK);
	x509_trust_free(t);

	/* an expired CRL fails closed for its issuer, even for a device it does not list */
	t = trust_crl(&ca, old, old_len);
	assert_int_equal(verify(&good, NULL, t, &r), X509_REASON_CRL_EXPIRED);
	assert_int_equal(r, -EACCES);
	assert_string_equal(x509_reason_code(X509_REASON_CRL_EXPIRED), "crl_expired");
	/* ... unless a current one of the same issuer is there too: the newest usable wins */
	assert_int_equal(x509_trust_add_crl_der(t, crl, crl_len), 0);
	assert_int_equal(verify(&good, NULL, t, &r), X509_REASON_OK);
	assert_int_equal(verify(&bad, NULL, t, &r), X509_REASON_REVOKED);
	x509_trust_free(t);

	/* a CRL not valid yet, or signed by another key under the CA's name: fail closed */
	t = trust_crl(&ca, young, young_len);
	assert_int_equal(verify(&good, NULL, t, &r), X509_REASON_CRL_INVALID);
	x509_trust_free(t);
	t = trust_crl(&ca, forged, forged_len);
	assert_int_equal(verify(&good, NULL, t, &r), X509_REASON_CRL_INVALID);
	assert_string_equal(x509_reason_code(X509_REASON_CRL_INVALID), "crl_invalid");
	x509_trust_free(t);

	/* a CRL of another issuer only: this CA has none, so its devices are not checked */
	t = trust_crl(&ca, foreign, foreign_len);
	assert_int_equal(verify(&bad, NULL, t, &r), X509_REASON_OK);
	assert_int_equal(x509_trust_add_crl_der(t, junk, sizeof(junk)), -EBADMSG);
	x509_trust_free(t);

	free(crl);
	free(old);
	free(young);
	free(forged);
	free(foreign);
	free(upper);
	cert_free(&ca);
	cert_free(&other);
	cert_free(&good);
	cert_free(&bad);
	cert_free(&inter);
	cert_free(&via);
}

static void
test_crl_parse(void **state)
{
	struct cert ca = make("factory A", NULL, 1, NOW - 100 * DAY, NOW + 900 * DAY, true, NULL);
	struct cert other = make("factory X", NULL, 1, NOW - DAY, NOW + DAY, true, NULL);
	static const long serials[] = { 11, 12, 13 };
	struct crl_info info;
	uint8_t *crl, *der = NULL;
	size_t crl_len, len;
	char *pem, *two;
	BIO *b = BIO_new(BIO_s_mem());
	const unsigned char *p;
	X509_CRL *x;
	long n;

	crl = make_crl(&ca, ca.k, NOW - DAY, NOW + 7 * DAY, serials, 3, 258, &crl_len);
	p = crl;
	x = d2i_X509_CRL(NULL, &p, (long)crl_len);
	PEM_write_bio_X509_CRL(b, x);
	n = BIO_get_mem_data(b, &pem);
	pem = strndup(pem, (size_t)n);
	assert_int_equal(crl_parse_pem(pem, strlen(pem), &der, &len, &info), 0);
	assert_int_equal(len, crl_len);
	assert_memory_equal(der, crl, len);
	assert_string_equal(info.issuer, "CN=factory A");
	assert_int_equal(info.this_update, NOW - DAY);
	assert_int_equal(info.next_update, NOW + 7 * DAY);
	assert_int_equal(info.number_len, 2);
	assert_int_equal(info.number[0], 1);
	assert_int_equal(info.number[1], 2);
	assert_int_equal(info.n_revoked, 3);
	/* signed by the CA named as issuer, not by another */
	assert_int_equal(crl_check_issuer(der, len, ca.der, ca.len), 0);
	assert_int_equal(crl_check_issuer(der, len, other.der, other.len), -EACCES);
	free(der);
	assert_int_equal(crl_parse_pem("hello", 5, &der, &len, &info), -EBADMSG);
	assert_int_equal(asprintf(&two, "%s%s", pem, pem) > 0, 1);
	assert_int_equal(crl_parse_pem(two, strlen(two), &der, &len, &info), -EBADMSG);
	free(two);
	free(pem);
	free(crl);
	X509_CRL_free(x);
	BIO_free(b);
	cert_free(&ca);
	cert_free(&other);
}

static void
identity_of(const struct cert *c, uint8_t id[X509_ID_LEN])
{
	const uint8_t *ders[1] = { c->der };
	size_t lens[1] = { c->len };
	struct x509_peer *p = NULL;

	assert_int_equal(x509_peer_new(&p, ders, lens, 1), 0);
	assert_int_equal(x509_peer_identity(p, id), 0);
	x509_peer_free(p);
}

static void
test_identity(void **state)
{
	struct cert ca = make("factory A", NULL, 1, NOW - DAY, NOW + DAY, true, NULL);
	struct cert a = make("dev", &ca, 10, NOW - DAY, NOW + DAY, false, "clientAuth");
	struct cert b = make("dev", &ca, 11, NOW - DAY, NOW + DAY, false, "clientAuth");
	uint8_t ia[X509_ID_LEN], ia2[X509_ID_LEN], ib[X509_ID_LEN], serial[X509_SERIAL_MAX];
	const uint8_t *ders[1] = { a.der };
	size_t lens[1] = { a.len }, n;
	struct x509_peer *p = NULL;

	identity_of(&a, ia);
	identity_of(&a, ia2);
	identity_of(&b, ib);
	assert_memory_equal(ia, ia2, X509_ID_LEN);
	assert_memory_not_equal(ia, ib, X509_ID_LEN);
	assert_int_equal(x509_peer_new(&p, ders, lens, 1), 0);
	assert_int_equal(x509_peer_serial(p, serial, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(serial[0], 10);
	x509_peer_free(p);
	cert_free(&ca);
	cert_free(&a);
	cert_free(&b);
}

static void
test_peer_malformed(void **state)
{
	static const uint8_t junk[] = { 0x30, 0x03, 0x02, 0x01, 0x01 };
	struct cert ca = make("factory A", NULL, 1, NOW - DAY, NOW + DAY, true, NULL);
	uint8_t *trailing = malloc(ca.len + 1);
	const uint8_t *ders[X509_CHAIN_MAX + 1];
	size_t lens[X509_CHAIN_MAX + 1];
	struct x509_peer *p = NULL;

	ders[0] = junk;
	lens[0] = sizeof(junk);
	assert_int_equal(x509_peer_new(&p, ders, lens, 1), -EBADMSG);
	assert_int_equal(x509_peer_new(&p, ders, lens, 0), -ENOENT);
	memcpy(trailing, ca.der, ca.len);
	trailing[ca.len] = 0;
	ders[0] = trailing;
	lens[0] = ca.len + 1;
	assert_int_equal(x509_peer_new(&p, ders, lens, 1), -EBADMSG);
	for (int i = 0; i <= X509_CHAIN_MAX; i++) {
		ders[i] = ca.der;
		lens[i] = ca.len;
	}
	assert_int_equal(x509_peer_new(&p, ders, lens, X509_CHAIN_MAX + 1), -E2BIG);
	assert_null(p);
	free(trailing);
	cert_free(&ca);
}

static void
test_serial_parse(void **state)
{
	uint8_t s[X509_SERIAL_MAX];
	char hex[2 * X509_SERIAL_MAX + 1];
	size_t n;

	assert_int_equal(x509_serial_parse("0a1b", s, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(s[0], 0x0a);
	assert_int_equal(s[1], 0x1b);
	assert_int_equal(x509_serial_parse("0A:1B", s, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(x509_serial_parse("0x00a1b", s, &n), 0);
	assert_int_equal(n, 2);
	x509_serial_format(s, n, hex);
	assert_string_equal(hex, "0a1b");
	assert_int_equal(x509_serial_parse("abc", s, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(s[0], 0x0a);
	assert_int_equal(s[1], 0xbc);
	assert_int_equal(x509_serial_parse("00", s, &n), 0);
	assert_int_equal(n, 1);
	assert_int_equal(s[0], 0);
	assert_int_equal(x509_serial_parse("", s, &n), -EINVAL);
	assert_int_equal(x509_serial_parse("xyz", s, &n), -EINVAL);
	assert_int_equal(x509_serial_parse(NULL, s, &n), -EINVAL);
	assert_int_equal(x509_serial_parse(
		"0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f2021", s, &n),
		-EINVAL);
}

static char *
pem_of(X509 *x)
{
	BIO *b = BIO_new(BIO_s_mem());
	char *p, *out;
	long n;

	PEM_write_bio_X509(b, x);
	n = BIO_get_mem_data(b, &p);
	out = strndup(p, (size_t)n);
	BIO_free(b);
	return out;
}

static void
test_ca_parse_pem(void **state)
{
	struct cert ca = make("factory A", NULL, 1, NOW - DAY, NOW + DAY, true, NULL);
	struct cert leaf = make("dev", &ca, 10, NOW - DAY, NOW + DAY, false, "clientAuth");
	char *pca = pem_of(ca.x), *pleaf = pem_of(leaf.x), *two, subject[128];
	uint8_t *der = NULL, fp[X509_FP_LEN];
	size_t len;

	assert_int_equal(x509_ca_parse_pem(pca, strlen(pca), &der, &len, fp, subject,
				 sizeof(subject)), 0);
	assert_int_equal(len, ca.len);
	assert_memory_equal(der, ca.der, len);
	assert_string_equal(subject, "CN=factory A");
	free(der);
	assert_int_equal(x509_ca_parse_pem(pleaf, strlen(pleaf), &der, &len, fp, NULL, 0),
		-EINVAL);
	assert_int_equal(x509_ca_parse_pem("hello", 5, &der, &len, fp, NULL, 0), -EBADMSG);
	assert_int_equal(asprintf(&two, "%s%s", pca, pca) > 0, 1);
	assert_int_equal(x509_ca_parse_pem(two, strlen(two), &der, &len, fp, NULL, 0), -EBADMSG);
	free(two);
	free(pca);
	free(pleaf);
	cert_free(&ca);
	cert_free(&leaf);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_verify_reasons),
		cmocka_unit_test(test_verify_crl),
		cmocka_unit_test(test_crl_parse),
		cmocka_unit_test(test_identity),
		cmocka_unit_test(test_peer_malformed),
		cmocka_unit_test(test_serial_parse),
		cmocka_unit_test(test_ca_parse_pem),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
