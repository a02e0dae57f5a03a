// SPDX-License-Identifier: MIT
/*
 * EK certificate verification: a chain to a trusted TPM manufacturer CA, lenient only where
 * real vendors are known to deviate, and the EK public area equal to the certified key.
 */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/log.h"
#include "enrolld/attest/attest_int.h"
#include "enrolld/attest/crl.h"

struct attest_trust {
	X509_STORE *anchors;
	STACK_OF(X509) *intermediates;
	pthread_mutex_t lock; /* crls: replaced on SIGHUP while others verify */
	struct crl_set *crls;
};

void
attest_trust_free(struct attest_trust *trust)
{
	if (trust == NULL)
		return;
	X509_STORE_free(trust->anchors);
	sk_X509_pop_free(trust->intermediates, X509_free);
	crl_set_free(trust->crls);
	pthread_mutex_destroy(&trust->lock);
	free(trust);
}

void
attest_trust_set_crls(struct attest_trust *trust, struct crl_set *crls)
{
	struct crl_set *old;

	crl_set_ref(crls);
	pthread_mutex_lock(&trust->lock);
	old = trust->crls;
	trust->crls = crls;
	pthread_mutex_unlock(&trust->lock);
	crl_set_free(old);
}

/* Add one certificate: self-signed ones are anchors, the rest may serve as intermediates. */
static int
trust_add(struct attest_trust *t, X509 *x, int *n_anchors)
{
	if (X509_self_signed(x, 1) == 1) {
		if (X509_STORE_add_cert(t->anchors, x) != 1)
			return -EIO;
		(*n_anchors)++;
		return 0;
	}
	if (X509_up_ref(x) != 1)
		return -EIO;
	if (sk_X509_push(t->intermediates, x) <= 0) {
		X509_free(x);
		return -ENOMEM;
	}
	return 0;
}

/* Read every certificate of one file: PEM (one or more) or a single DER. */
static int
trust_load_file(struct attest_trust *t, const char *path, int *n_anchors)
{
	BIO *bio = NULL;
	X509 *x = NULL;
	int n = 0, ret = -EBADMSG;

	bio = BIO_new_file(path, "rb");
	if (bio == NULL)
		return -EIO;
	while ((x = PEM_read_bio_X509(bio, NULL, NULL, NULL)) != NULL) {
		ret = trust_add(t, x, n_anchors);
		X509_free(x);
		if (ret < 0)
			goto out;
		n++;
	}
	ERR_clear_error();
	if (n == 0) {
		(void)BIO_reset(bio);
		x = d2i_X509_bio(bio, NULL);
		ERR_clear_error();
		if (x == NULL) {
			ret = -EBADMSG;
			goto out;
		}
		ret = trust_add(t, x, n_anchors);
		X509_free(x);
		if (ret < 0)
			goto out;
	}
	ret = 0;
out:
	BIO_free(bio);
	return ret;
}

int
attest_trust_load(const char *dir, struct attest_trust **ret_trust)
{
	struct attest_trust *t = NULL;
	struct dirent *de;
	DIR *d = NULL;
	int n_anchors = 0, ret = -ENOMEM;

	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return -ENOMEM;
	pthread_mutex_init(&t->lock, NULL);
	t->anchors = X509_STORE_new();
	t->intermediates = sk_X509_new_null();
	if (t->anchors == NULL || t->intermediates == NULL)
		goto out;
	d = opendir(dir);
	if (d == NULL) {
		ret = -errno;
		goto out;
	}
	while ((de = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path)) {
			ret = -ENAMETOOLONG;
			goto out;
		}
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		ret = trust_load_file(t, path, &n_anchors);
		if (ret < 0) {
			log_debug("attest: trust file '%s': %d", path, ret);
			goto out;
		}
	}
	if (n_anchors == 0) {
		ret = -ENOENT;
		goto out;
	}
	*ret_trust = t;
	t = NULL;
	ret = 0;
out:
	if (d != NULL)
		closedir(d);
	attest_trust_free(t);
	return ret;
}

/*
 * Is every critical extension of @x one OpenSSL handles, or the TCG subjectAltName? The
 * TCG EK credential profile makes the SAN (a directoryName with TPM manufacturer, model
 * and version) critical when the subject is empty; depending on the OpenSSL version and
 * the vendor's encoding, OpenSSL may not parse it and then flags it unhandled. Nothing
 * else is excused.
 */
static bool
only_tcg_san_unhandled(X509 *x)
{
	for (int i = 0; i < X509_get_ext_count(x); i++) {
		X509_EXTENSION *ext = X509_get_ext(x, i);

		if (!X509_EXTENSION_get_critical(ext) || X509_supported_extension(ext))
			continue;
		if (OBJ_obj2nid(X509_EXTENSION_get_object(ext)) != NID_subject_alt_name)
			return false;
	}
	return true;
}

static int
verify_cb(int ok, X509_STORE_CTX *ctx)
{
	ok = crl_verify_cb(ok, ctx);
	if (!ok && X509_STORE_CTX_get_error(ctx) == X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION &&
	    X509_STORE_CTX_get_error_depth(ctx) == 0 &&
	    only_tcg_san_unhandled(X509_STORE_CTX_get_current_cert(ctx))) {
		X509_STORE_CTX_set_error(ctx, X509_V_OK);
		return 1;
	}
	return ok;
}

static enum attest_reason
reason_from_x509(int err)
{
	switch (err) {
	case X509_V_ERR_CERT_HAS_EXPIRED:
		return ATTEST_EK_CERT_EXPIRED;
	case X509_V_ERR_CERT_NOT_YET_VALID:
		return ATTEST_EK_CERT_NOT_YET_VALID;
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT:
	case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY:
	case X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
	case X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN:
	case X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT:
	case X509_V_ERR_CERT_UNTRUSTED:
	case X509_V_ERR_CERT_REJECTED:
		return ATTEST_EK_CERT_UNTRUSTED;
	case X509_V_ERR_CERT_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CERT_SIGNATURE:
	case X509_V_ERR_UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY:
		return ATTEST_EK_CERT_BAD_SIGNATURE;
	case X509_V_ERR_INVALID_CA:
	case X509_V_ERR_KEYUSAGE_NO_CERTSIGN:
	case X509_V_ERR_PATH_LENGTH_EXCEEDED:
	case X509_V_ERR_INVALID_PURPOSE:
		return ATTEST_EK_CERT_CA_INVALID;
	case X509_V_ERR_UNHANDLED_CRITICAL_EXTENSION:
		return ATTEST_EK_CERT_CRITICAL_EXT;
	case X509_V_ERR_CERT_REVOKED:
		return ATTEST_EK_CERT_REVOKED;
	case X509_V_ERR_CRL_HAS_EXPIRED:
		return ATTEST_EK_CRL_EXPIRED;
	default:
		if (crl_error_unusable(err))
			return ATTEST_EK_CRL_INVALID;
		return ATTEST_EK_CERT_INVALID;
	}
}

static int
verify_chain(const struct attest_trust *trust, X509 *cert, time_t now, enum attest_reason *reason)
{
	X509_STORE_CTX *ctx = NULL;
	struct crl_set *crls;
	int ret;

	/* the set current now, for this whole verification (SIGHUP may replace it) */
	pthread_mutex_lock((pthread_mutex_t *)&trust->lock);
	crls = crl_set_ref(trust->crls);
	pthread_mutex_unlock((pthread_mutex_t *)&trust->lock);
	ctx = X509_STORE_CTX_new();
	if (ctx == NULL) {
		crl_set_free(crls);
		return attest_reject(reason, ATTEST_ERR_INTERNAL);
	}
	if (X509_STORE_CTX_init(ctx, trust->anchors, cert, trust->intermediates) != 1) {
		ret = attest_reject(reason, ATTEST_ERR_INTERNAL);
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, now);
	X509_STORE_CTX_set_verify_cb(ctx, verify_cb);
	crl_set_apply(crls, ctx);
	if (X509_verify_cert(ctx) == 1) {
		ret = 0;
	} else {
		int err = X509_STORE_CTX_get_error(ctx);

		log_debug("attest: EK certificate chain: %s (depth %d)",
			  X509_verify_cert_error_string(err), X509_STORE_CTX_get_error_depth(ctx));
		ret = attest_reject(reason, reason_from_x509(err));
	}
out:
	X509_STORE_CTX_free(ctx);
	crl_set_free(crls);
	ERR_clear_error();
	return ret;
}

/* Big-endian @bn into exactly @len bytes equal to @want? */
static bool
bn_equals(const BIGNUM *bn, const uint8_t *want, size_t len)
{
	uint8_t buf[512];

	if (len == 0 || len > sizeof(buf) || (size_t)BN_num_bytes(bn) > len)
		return false;
	if (BN_bn2binpad(bn, buf, (int)len) != (int)len)
		return false;
	return memcmp(buf, want, len) == 0;
}

/* Left-pad a TPM ECC coordinate to the curve size. */
static bool
coord_equals(const BIGNUM *bn, const TPM2B_ECC_PARAMETER *c, size_t clen)
{
	uint8_t buf[66] = { 0 };

	if (c->size > clen || clen > sizeof(buf))
		return false;
	memcpy(buf + clen - c->size, c->buffer, c->size);
	return bn_equals(bn, buf, clen);
}

static int
ek_matches_cert(const TPMT_PUBLIC *ek, EVP_PKEY *pk, enum attest_reason *reason)
{
	BIGNUM *a = NULL, *b = NULL;
	bool match = false;

	if (ek->type == TPM2_ALG_RSA && EVP_PKEY_is_a(pk, "RSA")) {
		uint32_t e = ek->parameters.rsaDetail.exponent ? ek->parameters.rsaDetail.exponent
							       : 65537;

		if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_N, &a) != 1 ||
		    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_RSA_E, &b) != 1)
			goto out;
		match = bn_equals(a, ek->unique.rsa.buffer, ek->unique.rsa.size) &&
			BN_is_word(b, e);
	} else if (ek->type == TPM2_ALG_ECC && EVP_PKEY_is_a(pk, "EC")) {
		char group[64];
		size_t clen;
		const char *want = attest_curve_name(ek->parameters.eccDetail.curveID, &clen);

		if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group,
						   sizeof(group), NULL) != 1)
			goto out;
		if (want == NULL || strcmp(group, want) != 0)
			goto out;
		if (EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_X, &a) != 1 ||
		    EVP_PKEY_get_bn_param(pk, OSSL_PKEY_PARAM_EC_PUB_Y, &b) != 1)
			goto out;
		match = coord_equals(a, &ek->unique.ecc.x, clen) &&
			coord_equals(b, &ek->unique.ecc.y, clen);
	}
out:
	BN_free(a);
	BN_free(b);
	ERR_clear_error();
	if (!match)
		return attest_reject(reason, ATTEST_EK_KEY_MISMATCH);
	return 0;
}

int
attest_ek_verify(const struct attest_trust *trust, const uint8_t *ek_cert, size_t ek_cert_len,
		 const uint8_t *ek_public, size_t ek_public_len, time_t now,
		 struct attest_key **ret_ek, enum attest_reason *reason)
{
	struct attest_key *ek = NULL;
	const uint8_t *der, *p;
	size_t der_len;
	X509 *cert = NULL;
	uint32_t ku;
	int ret;

	*reason = ATTEST_OK;
	if (tpm2_ek_cert_strip(ek_cert, ek_cert_len, &der, &der_len) < 0)
		return attest_reject(reason, ATTEST_EK_CERT_MALFORMED);
	p = der;
	cert = d2i_X509(NULL, &p, (long)der_len);
	if (cert == NULL || p != der + der_len) {
		ret = attest_reject(reason, ATTEST_EK_CERT_MALFORMED);
		goto out;
	}
	ret = verify_chain(trust, cert, now, reason);
	if (ret < 0)
		goto out;
	/* the one conversion of the EK for this enrollment: MakeCredential reuses it */
	ret = attest_ek_key_new(ek_public, ek_public_len, &ek, reason);
	if (ret < 0)
		goto out;
	/*
	 * keyUsage where present: an EK encrypts (RSA) or agrees keys (ECC). Judged by the
	 * certificate's own key type, so a mismatching EK public area is reported as such.
	 */
	ku = X509_get_key_usage(cert);
	if (ku != UINT32_MAX &&
	    !(ku & (EVP_PKEY_is_a(X509_get0_pubkey(cert), "RSA") ? KU_KEY_ENCIPHERMENT
								   : KU_KEY_AGREEMENT))) {
		ret = attest_reject(reason, ATTEST_EK_CERT_KEY_USAGE);
		goto out;
	}
	ret = ek_matches_cert(&ek->pub, X509_get0_pubkey(cert), reason);
	if (ret < 0)
		goto out;
	*ret_ek = ek;
	ek = NULL;
	ret = 0;
out:
	attest_key_free(ek);
	X509_free(cert);
	ERR_clear_error();
	return ret;
}

int
attest_verify_ek(const struct attest_trust *trust, const uint8_t *ek_cert, size_t ek_cert_len,
		 const uint8_t *ek_public, size_t ek_public_len, time_t now, uint8_t ret_ek_id[32],
		 enum attest_reason *reason)
{
	struct attest_key *ek = NULL;
	uint8_t id[32];
	int ret;

	ret = attest_ek_verify(trust, ek_cert, ek_cert_len, ek_public, ek_public_len, now, &ek,
			       reason);
	if (ret < 0)
		return ret;
	if (ret_ek_id != NULL) {
		if (attest_key_id(ek, id) < 0) {
			ret = attest_reject(reason, ATTEST_ERR_INTERNAL);
			goto out;
		}
		memcpy(ret_ek_id, id, sizeof(id));
	}
out:
	attest_key_free(ek);
	return ret;
}
