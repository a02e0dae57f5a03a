// SPDX-License-Identifier: MIT
/*
 * TPM public areas on the server: EK and AK checks, and OpenSSL keys built from them.
 */
#include <errno.h>
#include <stdlib.h>
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

/*
 * The structural checks of an RSA public key (SP 800-56B's partial public-key validation
 * without its costly part): the modulus has exactly @bits bits and is odd, the exponent
 * is odd and at least 3 (e = 1 would make every signature "verify"). Not the test that
 * the modulus is not a prime or a prime power, which OpenSSL's EVP_PKEY_public_check
 * runs at about 4 ms for 2048 bits: an EK is certified by its manufacturer, and an AK is
 * bound by ActivateCredential to that EK's TPM, which made it (docs/attestation.md).
 */
static bool
rsa_structure_ok(const BIGNUM *n, uint32_t exp, unsigned bits)
{
	return bits != 0 && (unsigned)BN_num_bits(n) == bits && BN_is_odd(n) && (exp & 1) &&
	       exp >= 3;
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
		if (!rsa_structure_ok(n, exp, pub->parameters.rsaDetail.keyBits)) {
			ret = -EBADMSG;
			goto out;
		}
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
	if (pub->type == TPM2_ALG_ECC) {
		/*
		 * On the curve, not at infinity, coordinates below p: microseconds. (The full
		 * check adds order * Q == O, which cannot fail on a prime-order curve.)
		 */
		check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
		if (check == NULL)
			goto out;
		if (EVP_PKEY_public_check_quick(check) != 1) {
			ret = -EBADMSG;
			goto out;
		}
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

void
attest_key_free(struct attest_key *k)
{
	if (k == NULL)
		return;
	EVP_PKEY_free(k->pkey);
	free(k);
}

const TPM2B_NAME *
attest_key_name(const struct attest_key *k)
{
	return &k->name;
}

int
attest_key_id(const struct attest_key *k, uint8_t ret_id[32])
{
	const TPMT_PUBLIC *pub = &k->pub;
	uint8_t xy[2 * 66] = { 0 };
	size_t clen;

	if (pub->type == TPM2_ALG_RSA)
		return tpm2_hash(TPM2_ALG_SHA256, pub->unique.rsa.buffer, pub->unique.rsa.size,
				 ret_id) < 0 ? -EIO : 0;
	if (attest_curve_name(pub->parameters.eccDetail.curveID, &clen) == NULL ||
	    pub->unique.ecc.x.size > clen || pub->unique.ecc.y.size > clen)
		return -EINVAL;
	memcpy(xy + clen - pub->unique.ecc.x.size, pub->unique.ecc.x.buffer,
	       pub->unique.ecc.x.size);
	memcpy(xy + 2 * clen - pub->unique.ecc.y.size, pub->unique.ecc.y.buffer,
	       pub->unique.ecc.y.size);
	return tpm2_hash(TPM2_ALG_SHA256, xy, 2 * clen, ret_id) < 0 ? -EIO : 0;
}

/* The AK's attributes and algorithms (attest_check_ak); not its key. */
static int
ak_params_check(const TPMT_PUBLIC *pub, enum attest_reason *reason)
{
	TPMA_OBJECT a = pub->objectAttributes;

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
	return 0;
}

/*
 * An EK is a storage-type key: restricted decryption, fixed to its TPM, with the AES-CFB
 * symmetric ActivateCredential uses for the credential. Its nameAlg and symmetric key size
 * set MakeCredential's sizes (the P-384 high-range EK: SHA-384 and AES-256).
 */
static int
ek_params_check(const TPMT_PUBLIC *pub, enum attest_reason *reason)
{
	const TPMA_OBJECT need = TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT |
				 TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_DECRYPT;
	const TPMT_SYM_DEF_OBJECT *sym;

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
	return 0;
}

/*
 * Unmarshal a TPM2B_PUBLIC, check its attributes and algorithms (@params_check), convert
 * its key once and compute its name. @malformed is the reason for bytes that are not a
 * public area or a key that fails the structural checks.
 */
static int
key_new(const uint8_t *buf, size_t len, int (*params_check)(const TPMT_PUBLIC *,
							     enum attest_reason *),
	enum attest_reason malformed, struct attest_key **ret_key, enum attest_reason *reason)
{
	struct attest_key *k = NULL;
	TPM2B_PUBLIC p;
	int ret;

	*reason = ATTEST_OK;
	if (tpm2_unmarshal_tpm2b_public(buf, len, &p) < 0)
		return attest_reject(reason, malformed);
	ret = params_check(&p.publicArea, reason);
	if (ret < 0)
		return ret;
	k = calloc(1, sizeof(*k));
	if (k == NULL)
		return attest_reject(reason, ATTEST_ERR_INTERNAL);
	k->pub = p.publicArea;
	ret = attest_pkey_from_public(&k->pub, &k->pkey);
	if (ret == -EBADMSG || ret == -EINVAL) {
		ret = attest_reject(reason, malformed);
		goto out;
	}
	if (ret < 0 || tpm2_name_from_public(&k->pub, &k->name) < 0) {
		ret = attest_reject(reason, ATTEST_ERR_INTERNAL);
		goto out;
	}
	*ret_key = k;
	k = NULL;
	ret = 0;
out:
	attest_key_free(k);
	return ret;
}

int
attest_ak_new(const uint8_t *ak_public, size_t ak_public_len, struct attest_key **ret_ak,
	      enum attest_reason *reason)
{
	return key_new(ak_public, ak_public_len, ak_params_check, ATTEST_AK_PUBLIC_MALFORMED,
		       ret_ak, reason);
}

int
attest_ek_key_new(const uint8_t *buf, size_t len, struct attest_key **ret_ek,
		  enum attest_reason *reason)
{
	return key_new(buf, len, ek_params_check, ATTEST_EK_PUBLIC_MALFORMED, ret_ek, reason);
}

/* key_new() for callers that only want the checked public area or name (either may be NULL). */
static int
key_public(int (*key_new_fn)(const uint8_t *, size_t, struct attest_key **,
			     enum attest_reason *),
	   const uint8_t *buf, size_t len, TPMT_PUBLIC *ret_pub, TPM2B_NAME *ret_name,
	   enum attest_reason *reason)
{
	struct attest_key *k = NULL;
	int r;

	r = key_new_fn(buf, len, &k, reason);
	if (r < 0)
		return r;
	if (ret_pub != NULL)
		*ret_pub = k->pub;
	if (ret_name != NULL)
		*ret_name = k->name;
	attest_key_free(k);
	return 0;
}

int
attest_ak_public_parse(const uint8_t *buf, size_t len, TPMT_PUBLIC *ret_pub,
		       enum attest_reason *reason)
{
	return key_public(attest_ak_new, buf, len, ret_pub, NULL, reason);
}

int
attest_check_ak(const uint8_t *ak_public, size_t ak_public_len, TPM2B_NAME *ret_name,
		enum attest_reason *reason)
{
	return key_public(attest_ak_new, ak_public, ak_public_len, NULL, ret_name, reason);
}

int
attest_ek_public_parse(const uint8_t *buf, size_t len, TPMT_PUBLIC *ret_pub,
		       enum attest_reason *reason)
{
	return key_public(attest_ek_key_new, buf, len, ret_pub, NULL, reason);
}
