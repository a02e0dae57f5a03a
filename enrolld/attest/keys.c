// SPDX-License-Identifier: MIT
/*
 * TPM public areas on the server: EK and AK checks, and OpenSSL keys built from them.
 */
#include <errno.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/param_build.h>

#include "common/log.h"
#include "enrolld/attest/attest_int.h"

#define AK_ATTRS                                                                                \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |    \
	 TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT)

const char *
attest_curve_name(TPM2_ECC_CURVE curve, size_t *ret_coord_len)
{
	switch (curve) {
	case TPM2_ECC_NIST_P256:
		*ret_coord_len = 32;
		return "prime256v1";
	case TPM2_ECC_NIST_P384:
		*ret_coord_len = 48;
		return "secp384r1";
	default:
		*ret_coord_len = 0;
		return NULL;
	}
}

int
attest_pkey_from_public(const TPMT_PUBLIC *pub, EVP_PKEY **ret_pkey)
{
	OSSL_PARAM_BLD *bld = NULL;
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL, *check = NULL;
	EVP_PKEY *pkey = NULL;
	BIGNUM *n = NULL, *e = NULL;
	uint8_t point[1 + 2 * 66];
	int ret = -EIO;

	bld = OSSL_PARAM_BLD_new();
	if (bld == NULL)
		return -ENOMEM;
	if (pub->type == TPM2_ALG_RSA) {
		uint32_t exp = pub->parameters.rsaDetail.exponent ? pub->parameters.rsaDetail.exponent
								   : 65537;

		if (pub->unique.rsa.size == 0) {
			ret = -EBADMSG;
			goto out;
		}
		n = BN_bin2bn(pub->unique.rsa.buffer, pub->unique.rsa.size, NULL);
		e = BN_new();
		if (n == NULL || e == NULL || BN_set_word(e, exp) != 1)
			goto out;
		if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
		    OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1)
			goto out;
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	} else if (pub->type == TPM2_ALG_ECC) {
		size_t clen;
		const char *curve = attest_curve_name(pub->parameters.eccDetail.curveID, &clen);
		const TPM2B_ECC_PARAMETER *x = &pub->unique.ecc.x, *y = &pub->unique.ecc.y;

		if (curve == NULL) {
			ret = -EINVAL;
			goto out;
		}
		if (x->size > clen || y->size > clen) {
			ret = -EBADMSG;
			goto out;
		}
		/* uncompressed point; TPM coordinates may come without leading zero bytes */
		memset(point, 0, sizeof(point));
		point[0] = 0x04;
		memcpy(point + 1 + clen - x->size, x->buffer, x->size);
		memcpy(point + 1 + 2 * clen - y->size, y->buffer, y->size);
		if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, curve, 0) != 1 ||
		    OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, point,
						     1 + 2 * clen) != 1)
			goto out;
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
	} else {
		ret = -EINVAL;
		goto out;
	}
	params = OSSL_PARAM_BLD_to_param(bld);
	if (ctx == NULL || params == NULL || EVP_PKEY_fromdata_init(ctx) != 1)
		goto out;
	if (EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
		/* OpenSSL refuses a point that is not on the curve here */
		ret = -EBADMSG;
		goto out;
	}
	check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
	if (check == NULL)
		goto out;
	if (EVP_PKEY_public_check(check) != 1) {
		ret = -EBADMSG;
		goto out;
	}
	*ret_pkey = pkey;
	pkey = NULL;
	ret = 0;
out:
	EVP_PKEY_CTX_free(check);
	EVP_PKEY_free(pkey);
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_free(n);
	BN_free(e);
	return ret;
}

static bool
hash_ok(TPMI_ALG_HASH h)
{
	return h == TPM2_ALG_SHA256 || h == TPM2_ALG_SHA384;
}

int
attest_ak_public_parse(const uint8_t *buf, size_t len, TPMT_PUBLIC *ret_pub,
		       enum attest_reason *reason)
{
	TPM2B_PUBLIC p;
	const TPMT_PUBLIC *pub = &p.publicArea;
	TPMA_OBJECT a;
	EVP_PKEY *pkey = NULL;
	int r;

	*reason = ATTEST_OK;
	if (tpm2_unmarshal_tpm2b_public(buf, len, &p) < 0)
		return attest_reject(reason, ATTEST_AK_PUBLIC_MALFORMED);
	a = pub->objectAttributes;
	/* the attribute reasons most worth telling apart first, then "exactly" */
	if (!(a & TPMA_OBJECT_RESTRICTED))
		return attest_reject(reason, ATTEST_AK_NOT_RESTRICTED);
	if (!(a & TPMA_OBJECT_FIXEDTPM) || !(a & TPMA_OBJECT_FIXEDPARENT))
		return attest_reject(reason, ATTEST_AK_NOT_FIXED_TPM);
	if (!(a & TPMA_OBJECT_SIGN_ENCRYPT))
		return attest_reject(reason, ATTEST_AK_NOT_SIGNING);
	if (a & TPMA_OBJECT_DECRYPT)
		return attest_reject(reason, ATTEST_AK_CAN_DECRYPT);
	if (a != AK_ATTRS)
		return attest_reject(reason, ATTEST_AK_ATTRIBUTES);
	if (!hash_ok(pub->nameAlg))
		return attest_reject(reason, ATTEST_AK_UNSUPPORTED_ALG);
	if (pub->type == TPM2_ALG_ECC) {
		const TPMS_ECC_PARMS *e = &pub->parameters.eccDetail;
		size_t clen;

		if (attest_curve_name(e->curveID, &clen) == NULL ||
		    e->symmetric.algorithm != TPM2_ALG_NULL || e->kdf.scheme != TPM2_ALG_NULL)
			return attest_reject(reason, ATTEST_AK_UNSUPPORTED_ALG);
		if (e->scheme.scheme != TPM2_ALG_NULL &&
		    (e->scheme.scheme != TPM2_ALG_ECDSA || !hash_ok(e->scheme.details.ecdsa.hashAlg)))
			return attest_reject(reason, ATTEST_AK_UNSUPPORTED_ALG);
	} else if (pub->type == TPM2_ALG_RSA) {
		const TPMS_RSA_PARMS *rp = &pub->parameters.rsaDetail;

		if (rp->symmetric.algorithm != TPM2_ALG_NULL)
			return attest_reject(reason, ATTEST_AK_UNSUPPORTED_ALG);
		if (rp->scheme.scheme != TPM2_ALG_NULL &&
		    ((rp->scheme.scheme != TPM2_ALG_RSASSA && rp->scheme.scheme != TPM2_ALG_RSAPSS) ||
		     !hash_ok(rp->scheme.details.anySig.hashAlg)))
			return attest_reject(reason, ATTEST_AK_UNSUPPORTED_ALG);
		if ((rp->keyBits != 2048 && rp->keyBits != 3072) ||
		    pub->unique.rsa.size != rp->keyBits / 8)
			return attest_reject(reason, ATTEST_AK_KEY_SIZE);
		if (rp->exponent != 0 && rp->exponent != 65537)
			return attest_reject(reason, ATTEST_AK_UNSUPPORTED_ALG);
	} else {
		return attest_reject(reason, ATTEST_AK_UNSUPPORTED_ALG);
	}
	r = attest_pkey_from_public(pub, &pkey);
	if (r == -EBADMSG || r == -EINVAL)
		return attest_reject(reason, ATTEST_AK_PUBLIC_MALFORMED);
	if (r < 0)
		return attest_reject(reason, ATTEST_ERR_INTERNAL);
	EVP_PKEY_free(pkey);
	*ret_pub = *pub;
	return 0;
}

int
attest_check_ak(const uint8_t *ak_public, size_t ak_public_len, TPM2B_NAME *ret_name,
		enum attest_reason *reason)
{
	TPMT_PUBLIC pub;
	TPM2B_NAME name;
	int r;

	r = attest_ak_public_parse(ak_public, ak_public_len, &pub, reason);
	if (r < 0)
		return r;
	if (ret_name != NULL) {
		if (tpm2_name_from_public(&pub, &name) < 0)
			return attest_reject(reason, ATTEST_ERR_INTERNAL);
		*ret_name = name;
	}
	return 0;
}

/*
 * An EK is a storage-type key: restricted decryption, fixed to its TPM, with the AES-CFB
 * symmetric ActivateCredential uses for the credential. Its nameAlg and symmetric key size
 * set MakeCredential's sizes (the P-384 high-range EK: SHA-384 and AES-256).
 */
int
attest_ek_public_parse(const uint8_t *buf, size_t len, TPMT_PUBLIC *ret_pub,
		       enum attest_reason *reason)
{
	const TPMA_OBJECT need = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
				 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	const TPMT_SYM_DEF_OBJECT *sym;
	TPM2B_PUBLIC p;
	const TPMT_PUBLIC *pub = &p.publicArea;
	EVP_PKEY *pkey = NULL;
	int r;

	*reason = ATTEST_OK;
	if (tpm2_unmarshal_tpm2b_public(buf, len, &p) < 0)
		return attest_reject(reason, ATTEST_EK_PUBLIC_MALFORMED);
	if ((pub->objectAttributes & need) != need ||
	    (pub->objectAttributes & TPMA_OBJECT_SIGN_ENCRYPT))
		return attest_reject(reason, ATTEST_EK_PUBLIC_ATTRIBUTES);
	if (!hash_ok(pub->nameAlg))
		return attest_reject(reason, ATTEST_EK_PUBLIC_UNSUPPORTED);
	if (pub->type == TPM2_ALG_RSA) {
		const TPMS_RSA_PARMS *rp = &pub->parameters.rsaDetail;

		sym = &rp->symmetric;
		if ((rp->keyBits != 2048 && rp->keyBits != 3072) ||
		    pub->unique.rsa.size != rp->keyBits / 8 ||
		    (rp->exponent != 0 && rp->exponent != 65537) || rp->scheme.scheme != TPM2_ALG_NULL)
			return attest_reject(reason, ATTEST_EK_PUBLIC_UNSUPPORTED);
	} else if (pub->type == TPM2_ALG_ECC) {
		const TPMS_ECC_PARMS *e = &pub->parameters.eccDetail;
		size_t clen;

		sym = &e->symmetric;
		if (attest_curve_name(e->curveID, &clen) == NULL || e->scheme.scheme != TPM2_ALG_NULL ||
		    e->kdf.scheme != TPM2_ALG_NULL)
			return attest_reject(reason, ATTEST_EK_PUBLIC_UNSUPPORTED);
	} else {
		return attest_reject(reason, ATTEST_EK_PUBLIC_UNSUPPORTED);
	}
	if (sym->algorithm != TPM2_ALG_AES || sym->mode.aes != TPM2_ALG_CFB ||
	    (sym->keyBits.aes != 128 && sym->keyBits.aes != 256))
		return attest_reject(reason, ATTEST_EK_PUBLIC_UNSUPPORTED);
	r = attest_pkey_from_public(pub, &pkey);
	if (r == -EBADMSG || r == -EINVAL)
		return attest_reject(reason, ATTEST_EK_PUBLIC_MALFORMED);
	if (r < 0)
		return attest_reject(reason, ATTEST_ERR_INTERNAL);
	EVP_PKEY_free(pkey);
	*ret_pub = *pub;
	return 0;
}
