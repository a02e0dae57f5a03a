// SPDX-License-Identifier: MIT
/*
 * TPM2_MakeCredential in software (TPM 2.0 Part 1 section 24, Part 3 MakeCredential):
 * the server protects a secret so that only the TPM holding the EK, with the AK loaded,
 * can recover it with TPM2_ActivateCredential.
 *
 *   seed          RSA EK: random, RSA-OAEP(EK, nameAlg, label "IDENTITY\0")
 *                 ECC EK: ephemeral ECDH, KDFe(nameAlg, Z, "IDENTITY", eph.x, EK.x)
 *   symKey        KDFa(nameAlg, seed, "STORAGE", AK name, -, EK symmetric key bits)
 *   encIdentity   AES-CFB(symKey, IV 0, TPM2B_DIGEST(secret))
 *   HMACkey       KDFa(nameAlg, seed, "INTEGRITY", -, -, nameAlg digest bits)
 *   outerHMAC     HMAC-nameAlg(HMACkey, encIdentity || AK name)
 *   blob          TPM2B_ID_OBJECT = TPM2B_DIGEST(outerHMAC) || encIdentity
 */
#include <errno.h>
#include <string.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <tss2/tss2_mu.h>

#include "common/log.h"
#include "enrolld/attest/attest_int.h"

static const EVP_MD *
md_of(TPMI_ALG_HASH alg)
{
	return alg == TPM2_ALG_SHA256 ? EVP_sha256() : alg == TPM2_ALG_SHA384 ? EVP_sha384() : NULL;
}

/* RSA EK: the seed is random (or fixed by a test) and OAEP-encrypted to the EK. */
static int
seed_rsa(const TPMT_PUBLIC *ek, EVP_PKEY *pk, const uint8_t *seed_override, uint8_t *seed,
	 size_t seed_len, TPM2B_ENCRYPTED_SECRET *enc)
{
	static const char label[] = "IDENTITY"; /* sizeof includes the NUL the spec wants */
	const EVP_MD *md = md_of(ek->nameAlg);
	EVP_PKEY_CTX *ctx = NULL;
	unsigned char *lab = NULL;
	size_t outlen = sizeof(enc->secret);
	int ret = -EIO;

	if (seed_override != NULL)
		memcpy(seed, seed_override, seed_len);
	else if (RAND_priv_bytes(seed, (int)seed_len) != 1)
		return -EIO;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pk, NULL);
	if (ctx == NULL || EVP_PKEY_encrypt_init(ctx) != 1 ||
	    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
	    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 || EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1)
		goto out;
	lab = OPENSSL_memdup(label, sizeof(label));
	if (lab == NULL)
		goto out;
	if (EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, lab, sizeof(label)) != 1) {
		OPENSSL_free(lab);
		goto out;
	}
	if (EVP_PKEY_encrypt(ctx, enc->secret, &outlen, seed, seed_len) != 1)
		goto out;
	enc->size = (uint16_t)outlen;
	ret = 0;
out:
	EVP_PKEY_CTX_free(ctx);
	return ret;
}

/*
 * ECC EK: one-pass Diffie-Hellman (C(1, 1, ECC CDH)) with an ephemeral key; the TPM
 * recomputes Z from the ephemeral point we send and derives the same seed.
 */
static int
seed_ecc(const TPMT_PUBLIC *ek, EVP_PKEY *pk, uint8_t *seed, size_t seed_len,
	 TPM2B_ENCRYPTED_SECRET *enc)
{
	uint8_t z[66], point[1 + 2 * 66];
	size_t clen, zlen = sizeof(z), plen = 0, off = 0;
	const char *curve = attest_curve_name(ek->parameters.eccDetail.curveID, &clen);
	EVP_PKEY *eph = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	TPMS_ECC_POINT q = { 0 };
	int ret = -EIO;

	if (curve == NULL)
		return -EINVAL;
	eph = EVP_PKEY_Q_keygen(NULL, NULL, "EC", curve);
	if (eph == NULL)
		goto out;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, eph, NULL);
	if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 || EVP_PKEY_derive_set_peer(ctx, pk) != 1 ||
	    EVP_PKEY_derive(ctx, z, &zlen) != 1 || zlen != clen)
		goto out;
	if (EVP_PKEY_get_octet_string_param(eph, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, point,
					    sizeof(point), &plen) != 1 ||
	    plen != 1 + 2 * clen || point[0] != 0x04)
		goto out;
	q.x.size = q.y.size = (uint16_t)clen;
	memcpy(q.x.buffer, point + 1, clen);
	memcpy(q.y.buffer, point + 1 + clen, clen);
	ret = tpm2_kdfe(ek->nameAlg, z, zlen, "IDENTITY", q.x.buffer, q.x.size,
			ek->unique.ecc.x.buffer, ek->unique.ecc.x.size, (uint32_t)seed_len * 8, seed);
	if (ret < 0)
		goto out;
	if (Tss2_MU_TPMS_ECC_POINT_Marshal(&q, enc->secret, sizeof(enc->secret), &off) !=
	    TSS2_RC_SUCCESS) {
		ret = -EIO;
		goto out;
	}
	enc->size = (uint16_t)off;
	ret = 0;
out:
	OPENSSL_cleanse(z, sizeof(z));
	EVP_PKEY_CTX_free(ctx);
	EVP_PKEY_free(eph);
	return ret;
}

static int
aes_cfb_encrypt(uint16_t bits, const uint8_t *key, const uint8_t *in, size_t len, uint8_t *out)
{
	static const uint8_t iv[16];
	const EVP_CIPHER *c = bits == 128 ? EVP_aes_128_cfb128() : bits == 256 ? EVP_aes_256_cfb128()
									   : NULL;
	EVP_CIPHER_CTX *ctx = NULL;
	int n1 = 0, n2 = 0, ret = -EIO;

	if (c == NULL)
		return -EINVAL;
	ctx = EVP_CIPHER_CTX_new();
	if (ctx == NULL || EVP_EncryptInit_ex(ctx, c, NULL, key, iv) != 1 ||
	    EVP_EncryptUpdate(ctx, out, &n1, in, (int)len) != 1 ||
	    EVP_EncryptFinal_ex(ctx, out + n1, &n2) != 1 || (size_t)(n1 + n2) != len)
		goto out;
	ret = 0;
out:
	EVP_CIPHER_CTX_free(ctx);
	return ret;
}

static int
hmac(TPMI_ALG_HASH alg, const uint8_t *key, size_t key_len, const uint8_t *a, size_t alen,
     const uint8_t *b, size_t blen, uint8_t *out, size_t out_len)
{
	EVP_MAC *mac = NULL;
	EVP_MAC_CTX *ctx = NULL;
	OSSL_PARAM params[2];
	size_t n = 0;
	int ret = -EIO;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)EVP_MD_get0_name(md_of(alg)), 0);
	params[1] = OSSL_PARAM_construct_end();
	mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	if (mac == NULL)
		goto out;
	ctx = EVP_MAC_CTX_new(mac);
	if (ctx == NULL || EVP_MAC_init(ctx, key, key_len, params) != 1 ||
	    EVP_MAC_update(ctx, a, alen) != 1 || EVP_MAC_update(ctx, b, blen) != 1 ||
	    EVP_MAC_final(ctx, out, &n, out_len) != 1 || n != out_len)
		goto out;
	ret = 0;
out:
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ret;
}

int
attest_make_credential(const TPMT_PUBLIC *ek, const TPM2B_NAME *ak_name, const uint8_t *secret,
		       size_t secret_len, const uint8_t *seed_override, TPM2B_ID_OBJECT *ret_blob,
		       TPM2B_ENCRYPTED_SECRET *ret_seed)
{
	EVP_PKEY *pk = NULL;
	int ret;

	ret = attest_pkey_from_public(ek, &pk);
	if (ret < 0)
		return ret;
	ret = attest_make_credential_pkey(ek, pk, ak_name, secret, secret_len, seed_override,
					  ret_blob, ret_seed);
	EVP_PKEY_free(pk);
	return ret;
}

int
attest_make_credential_pkey(const TPMT_PUBLIC *ek, EVP_PKEY *pk, const TPM2B_NAME *ak_name,
			    const uint8_t *secret, size_t secret_len, const uint8_t *seed_override,
			    TPM2B_ID_OBJECT *ret_blob, TPM2B_ENCRYPTED_SECRET *ret_seed)
{
	const TPMT_SYM_DEF_OBJECT *sym;
	size_t hlen = tpm2_hash_size(ek->nameAlg), plain_len;
	uint8_t seed[TPM2_MAX_DIGEST_LEN], sym_key[32], hmac_key[TPM2_MAX_DIGEST_LEN];
	uint8_t plain[2 + TPM2_MAX_DIGEST_LEN];
	TPM2B_ID_OBJECT blob = { 0 };
	TPM2B_ENCRYPTED_SECRET enc = { 0 };
	uint8_t *hmac_out, *enc_identity;
	int ret;

	if (md_of(ek->nameAlg) == NULL || secret_len == 0 || secret_len > hlen)
		return -EINVAL;
	sym = ek->type == TPM2_ALG_RSA ? &ek->parameters.rsaDetail.symmetric
				       : &ek->parameters.eccDetail.symmetric;
	if (sym->algorithm != TPM2_ALG_AES || sym->mode.aes != TPM2_ALG_CFB ||
	    sym->keyBits.aes / 8 > sizeof(sym_key))
		return -EINVAL;

	if (ek->type == TPM2_ALG_RSA)
		ret = seed_rsa(ek, pk, seed_override, seed, hlen, &enc);
	else
		ret = seed_ecc(ek, pk, seed, hlen, &enc);
	if (ret < 0)
		goto out;

	ret = tpm2_kdfa(ek->nameAlg, seed, hlen, "STORAGE", ak_name->name, ak_name->size, NULL, 0,
			sym->keyBits.aes, sym_key);
	if (ret < 0)
		goto out;
	ret = tpm2_kdfa(ek->nameAlg, seed, hlen, "INTEGRITY", NULL, 0, NULL, 0,
			(uint32_t)hlen * 8, hmac_key);
	if (ret < 0)
		goto out;

	/* plaintext is the marshalled TPM2B_DIGEST of the secret */
	plain[0] = (uint8_t)(secret_len >> 8);
	plain[1] = (uint8_t)secret_len;
	memcpy(plain + 2, secret, secret_len);
	plain_len = 2 + secret_len;

	/* blob: size16(hlen) || outerHMAC || encIdentity */
	blob.credential[0] = (uint8_t)(hlen >> 8);
	blob.credential[1] = (uint8_t)hlen;
	hmac_out = blob.credential + 2;
	enc_identity = hmac_out + hlen;
	ret = aes_cfb_encrypt(sym->keyBits.aes, sym_key, plain, plain_len, enc_identity);
	if (ret < 0)
		goto out;
	ret = hmac(ek->nameAlg, hmac_key, hlen, enc_identity, plain_len, ak_name->name,
		   ak_name->size, hmac_out, hlen);
	if (ret < 0)
		goto out;
	blob.size = (uint16_t)(2 + hlen + plain_len);
	*ret_blob = blob;
	*ret_seed = enc;
	ret = 0;
out:
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(sym_key, sizeof(sym_key));
	OPENSSL_cleanse(hmac_key, sizeof(hmac_key));
	OPENSSL_cleanse(plain, sizeof(plain));
	OPENSSL_cleanse(&blob, sizeof(blob));
	ERR_clear_error();
	return ret;
}
