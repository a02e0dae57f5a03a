// SPDX-License-Identifier: MIT
/*
 * Quote verification: TPMS_ATTEST and TPMT_SIGNATURE parsed with tss2-mu, the signature
 * checked with the AK over H(attest bytes), then qualifying data and PCRs.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rsa.h>

#include "common/log.h"
#include "enrolld/attest/attest_int.h"

static const EVP_MD *
md_of(TPMI_ALG_HASH alg)
{
	return alg == TPM2_ALG_SHA256 ? EVP_sha256() : alg == TPM2_ALG_SHA384 ? EVP_sha384() : NULL;
}

/* The scheme a signature claims must be one the AK can produce. */
static int
sig_scheme_ok(const TPMT_PUBLIC *ak, const TPMT_SIGNATURE *sig, TPMI_ALG_HASH *ret_hash)
{
	TPMI_ALG_HASH h;
	TPMI_ALG_SIG_SCHEME want;
	TPMI_ALG_HASH want_hash;

	switch (sig->sigAlg) {
	case TPM2_ALG_ECDSA:
		if (ak->type != TPM2_ALG_ECC)
			return -1;
		h = sig->signature.ecdsa.hash;
		want = ak->parameters.eccDetail.scheme.scheme;
		want_hash = ak->parameters.eccDetail.scheme.details.ecdsa.hashAlg;
		break;
	case TPM2_ALG_RSASSA:
	case TPM2_ALG_RSAPSS:
		if (ak->type != TPM2_ALG_RSA)
			return -1;
		h = sig->signature.rsassa.hash;
		want = ak->parameters.rsaDetail.scheme.scheme;
		want_hash = ak->parameters.rsaDetail.scheme.details.anySig.hashAlg;
		break;
	default:
		return -1;
	}
	if (md_of(h) == NULL)
		return -1;
	/* an AK with a scheme only signs with that scheme; a NULL scheme lets the caller pick */
	if (want != TPM2_ALG_NULL && (want != sig->sigAlg || want_hash != h))
		return -1;
	*ret_hash = h;
	return 0;
}

/* 1 valid, 0 invalid, < 0 error */
static int
sig_verify(EVP_PKEY *pk, const TPMT_SIGNATURE *sig, const uint8_t *msg, size_t len,
	   TPMI_ALG_HASH h)
{
	const EVP_MD *md = md_of(h);
	uint8_t digest[TPM2_MAX_DIGEST_LEN];
	unsigned char *der = NULL;
	const unsigned char *s;
	EVP_PKEY_CTX *ctx = NULL;
	ECDSA_SIG *es = NULL;
	BIGNUM *r = NULL, *sv = NULL;
	size_t slen;
	int dlen, ret = -EIO;

	dlen = tpm2_hash(h, msg, len, digest);
	if (dlen < 0)
		return dlen;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	if (ctx == NULL || EVP_PKEY_verify_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_signature_md(ctx, md) != 1)
		goto out;
	if (sig->sigAlg == TPM2_ALG_ECDSA) {
		const TPMS_SIGNATURE_ECDSA *e = &sig->signature.ecdsa;
		int n;

		es = ECDSA_SIG_new();
		r = BN_bin2bn(e->signatureR.buffer, e->signatureR.size, NULL);
		sv = BN_bin2bn(e->signatureS.buffer, e->signatureS.size, NULL);
		if (es == NULL || r == NULL || sv == NULL || ECDSA_SIG_set0(es, r, sv) != 1)
			goto out;
		r = sv = NULL;
		n = i2d_ECDSA_SIG(es, &der);
		if (n <= 0)
			goto out;
		s = der;
		slen = (size_t)n;
	} else {
		int pad = sig->sigAlg == TPM2_ALG_RSASSA ? RSA_PKCS1_PADDING : RSA_PKCS1_PSS_PADDING;

		if (EVP_PKEY_CTX_set_rsa_padding(ctx, pad) != 1)
			goto out;
		/* TPMs differ in the PSS salt length (digest size or maximum): accept both */
		if (pad == RSA_PKCS1_PSS_PADDING &&
		    (EVP_PKEY_CTX_set_rsa_pss_saltlen(ctx, RSA_PSS_SALTLEN_AUTO) != 1 ||
		     EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1))
			goto out;
		s = sig->signature.rsassa.sig.buffer;
		slen = sig->signature.rsassa.sig.size;
	}
	ret = EVP_PKEY_verify(ctx, s, slen, digest, (size_t)dlen) == 1 ? 1 : 0;
out:
	OPENSSL_free(der);
	ECDSA_SIG_free(es);
	BN_free(r);
	BN_free(sv);
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return ret;
}

int
attest_quote_parse_verify(const TPMT_PUBLIC *ak, const uint8_t *quote, size_t quote_len,
			  const uint8_t *sig, size_t sig_len, TPMS_ATTEST *ret_attest,
			  TPMI_ALG_HASH *ret_sig_hash, enum attest_reason *reason)
{
	EVP_PKEY *pk = NULL;
	int r;

	*reason = ATTEST_OK;
	if (attest_pkey_from_public(ak, &pk) < 0)
		return attest_reject(reason, ATTEST_ERR_INTERNAL);
	r = attest_quote_parse_verify_pkey(ak, pk, quote, quote_len, sig, sig_len, ret_attest,
					   ret_sig_hash, reason);
	EVP_PKEY_free(pk);
	return r;
}

int
attest_quote_parse_verify_pkey(const TPMT_PUBLIC *ak, EVP_PKEY *ak_pkey, const uint8_t *quote,
			       size_t quote_len, const uint8_t *sig, size_t sig_len,
			       TPMS_ATTEST *ret_attest, TPMI_ALG_HASH *ret_sig_hash,
			       enum attest_reason *reason)
{
	TPM2B_ATTEST q;
	TPMS_ATTEST a;
	TPMT_SIGNATURE s;
	TPMI_ALG_HASH h;
	int r;

	*reason = ATTEST_OK;
	if (tpm2_unmarshal_tpm2b_attest(quote, quote_len, &q) < 0 ||
	    tpm2_unmarshal_tpms_attest(q.attestationData, q.size, &a) < 0)
		return attest_reject(reason, ATTEST_QUOTE_MALFORMED);
	if (tpm2_unmarshal_tpmt_signature(sig, sig_len, &s) < 0)
		return attest_reject(reason, ATTEST_SIGNATURE_MALFORMED);
	/* a restricted AK never signs data starting with TPM_GENERATED_VALUE it did not make */
	if (a.magic != TPM2_GENERATED_VALUE)
		return attest_reject(reason, ATTEST_QUOTE_MAGIC);
	if (a.type != TPM2_ST_ATTEST_QUOTE)
		return attest_reject(reason, ATTEST_QUOTE_TYPE);
	if (sig_scheme_ok(ak, &s, &h) < 0)
		return attest_reject(reason, ATTEST_SIGNATURE_SCHEME);
	r = sig_verify(ak_pkey, &s, q.attestationData, q.size, h);
	if (r < 0)
		return attest_reject(reason, ATTEST_ERR_INTERNAL);
	if (r == 0)
		return attest_reject(reason, ATTEST_SIGNATURE_INVALID);
	*ret_attest = a;
	*ret_sig_hash = h;
	return 0;
}

int
attest_quote_check_pcrs(const TPMS_ATTEST *attest, TPMI_ALG_HASH sig_hash, const uint8_t *pcrs,
			size_t pcrs_len, const struct tpm2_pcr_values *policy,
			enum attest_reason *reason)
{
	const TPMS_QUOTE_INFO *qi = &attest->attested.quote;
	struct tpm2_pcr_values *v = NULL;
	TPM2B_DIGEST d;
	int ret;

	*reason = ATTEST_OK;
	v = calloc(1, sizeof(*v));
	if (v == NULL)
		return attest_reject(reason, ATTEST_ERR_INTERNAL);
	if (tpm2_pcr_values_unmarshal(pcrs, pcrs_len, v) < 0) {
		ret = attest_reject(reason, ATTEST_PCR_VALUES_MALFORMED);
		goto out;
	}
	if (!tpm2_pcr_selection_equal(&v->sel, &qi->pcrSelect)) {
		ret = attest_reject(reason, ATTEST_PCR_SELECTION_MISMATCH);
		goto out;
	}
	/* TPM2_Quote hashes the selected PCRs with the signing scheme's hash */
	if (tpm2_pcr_digest(sig_hash, v, &d) < 0) {
		ret = attest_reject(reason, ATTEST_PCR_VALUES_MALFORMED);
		goto out;
	}
	if (d.size != qi->pcrDigest.size || CRYPTO_memcmp(d.buffer, qi->pcrDigest.buffer, d.size)) {
		ret = attest_reject(reason, ATTEST_PCR_DIGEST_MISMATCH);
		goto out;
	}
	if (policy != NULL) {
		uint32_t k = 0;

		for (uint32_t b = 0; b < policy->sel.count && b < TPM2_NUM_PCR_BANKS; b++) {
			const TPMS_PCR_SELECTION *s = &policy->sel.pcrSelections[b];

			for (unsigned i = 0; i < 8u * s->sizeofSelect && i < 32; i++) {
				const TPM2B_DIGEST *got;

				if (!(s->pcrSelect[i / 8] & (1u << (i % 8))))
					continue;
				if (k >= policy->count) {
					ret = attest_reject(reason, ATTEST_ERR_INTERNAL);
					goto out;
				}
				got = tpm2_pcr_values_get(v, s->hash, i);
				if (got == NULL) {
					ret = attest_reject(reason, ATTEST_PCR_POLICY_NOT_QUOTED);
					goto out;
				}
				if (got->size != policy->value[k].size ||
				    memcmp(got->buffer, policy->value[k].buffer, got->size) != 0) {
					log_debug("attest: PCR %s:%u differs from policy",
						  tpm2_hash_name(s->hash), i);
					ret = attest_reject(reason, ATTEST_PCR_POLICY_MISMATCH);
					goto out;
				}
				k++;
			}
		}
	}
	ret = 0;
out:
	free(v);
	return ret;
}

int
attest_verify_quote(const TPMT_PUBLIC *ak, const uint8_t *quote, size_t quote_len,
		    const uint8_t *sig, size_t sig_len, const TPM2B_DATA *expected_qd,
		    const uint8_t *pcrs, size_t pcrs_len, const struct tpm2_pcr_values *policy,
		    enum attest_reason *reason)
{
	TPMS_ATTEST a;
	TPMI_ALG_HASH h;
	int r;

	r = attest_quote_parse_verify(ak, quote, quote_len, sig, sig_len, &a, &h, reason);
	if (r < 0)
		return r;
	if (a.extraData.size != expected_qd->size ||
	    CRYPTO_memcmp(a.extraData.buffer, expected_qd->buffer, expected_qd->size) != 0)
		return attest_reject(reason, ATTEST_QUOTE_QUALIFYING_DATA);
	return attest_quote_check_pcrs(&a, h, pcrs, pcrs_len, policy, reason);
}
