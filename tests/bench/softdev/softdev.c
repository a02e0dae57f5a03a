// SPDX-License-Identifier: MIT
/*
 * The software TPM device of softdev.h. What a TPM does is followed step by step (TPM 2.0
 * Part 1 section 24 for ActivateCredential, Part 3 for Quote); the server's side of the
 * same steps is enrolld/attest/credential.c and quote.c.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <tss2/tss2_mu.h>

#include "common/key.h"
#include "tests/bench/softdev/softdev.h"

struct softdev_ca {
	EVP_PKEY *key;
	X509 *cert;
};

static const EVP_MD *
md_of(TPMI_ALG_HASH alg)
{
	return alg == TPM2_ALG_SHA256 ? EVP_sha256() : alg == TPM2_ALG_SHA384 ? EVP_sha384() : NULL;
}

static int
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;
	int ok;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL)
		return -EIO;
	ok = X509_add_ext(x, ext, -1);
	X509_EXTENSION_free(ext);
	return ok ? 0 : -EIO;
}

/* A certificate for @key: self-signed CA if @ca is NULL, else an EK certificate. */
static X509 *
make_cert(const struct softdev_ca *ca, EVP_PKEY *key, bool rsa_ek)
{
	X509 *x = X509_new();
	X509_NAME *name = NULL;
	uint8_t serial[8];
	BIGNUM *bn = NULL;
	ASN1_INTEGER *sn = NULL;
	X509 *issuer;

	if (x == NULL || RAND_bytes(serial, sizeof(serial)) != 1)
		goto err;
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	sn = bn ? BN_to_ASN1_INTEGER(bn, NULL) : NULL;
	if (sn == NULL || X509_set_version(x, 2) != 1 || X509_set_serialNumber(x, sn) != 1)
		goto err;
	if (X509_gmtime_adj(X509_getm_notBefore(x), -3600) == NULL ||
	    X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400) == NULL ||
	    X509_set_pubkey(x, key) != 1)
		goto err;
	if (ca == NULL) {
		name = X509_NAME_new();
		if (name == NULL ||
		    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
					       (const unsigned char *)"softdev EK CA", -1, -1, 0) != 1 ||
		    X509_set_subject_name(x, name) != 1 || X509_set_issuer_name(x, name) != 1)
			goto err;
		issuer = x;
		if (add_ext(x, issuer, NID_basic_constraints, "critical,CA:TRUE") < 0 ||
		    add_ext(x, issuer, NID_key_usage, "critical,keyCertSign,cRLSign") < 0 ||
		    add_ext(x, issuer, NID_subject_key_identifier, "hash") < 0)
			goto err;
		if (!X509_sign(x, key, EVP_sha256()))
			goto err;
	} else {
		/* TCG EK certificates have an empty subject; ours names the device instead */
		issuer = ca->cert;
		if (X509_set_issuer_name(x, X509_get_subject_name(issuer)) != 1)
			goto err;
		if (add_ext(x, issuer, NID_basic_constraints, "critical,CA:FALSE") < 0 ||
		    add_ext(x, issuer, NID_key_usage,
			    rsa_ek ? "critical,keyEncipherment" : "critical,keyAgreement") < 0 ||
		    add_ext(x, issuer, NID_authority_key_identifier, "keyid") < 0)
			goto err;
		if (!X509_sign(x, ca->key, EVP_sha256()))
			goto err;
	}
	X509_NAME_free(name);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	return x;
err:
	X509_NAME_free(name);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	X509_free(x);
	return NULL;
}

int
softdev_ca_new(struct softdev_ca **ret_ca)
{
	struct softdev_ca *ca = calloc(1, sizeof(*ca));

	if (ca == NULL)
		return -ENOMEM;
	ca->key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
	ca->cert = ca->key ? make_cert(NULL, ca->key, false) : NULL;
	if (ca->cert == NULL) {
		softdev_ca_free(ca);
		return -EIO;
	}
	*ret_ca = ca;
	return 0;
}

int
softdev_ca_save(const struct softdev_ca *ca, const char *cert_path, const char *key_path)
{
	FILE *f = fopen(cert_path, "w");
	int ok;

	if (f == NULL)
		return -errno;
	ok = PEM_write_X509(f, ca->cert);
	if (fclose(f) != 0)
		ok = 0;
	if (!ok)
		return -EIO;
	f = fopen(key_path, "w");
	if (f == NULL)
		return -errno;
	ok = fchmod(fileno(f), 0600) == 0 &&
	     PEM_write_PrivateKey(f, ca->key, NULL, NULL, 0, NULL, NULL);
	if (fclose(f) != 0)
		ok = 0;
	return ok ? 0 : -EIO;
}

int
softdev_ca_load(const char *cert_path, const char *key_path, struct softdev_ca **ret_ca)
{
	struct softdev_ca *ca = calloc(1, sizeof(*ca));
	FILE *f;

	if (ca == NULL)
		return -ENOMEM;
	f = fopen(cert_path, "r");
	if (f != NULL) {
		ca->cert = PEM_read_X509(f, NULL, NULL, NULL);
		fclose(f);
	}
	f = fopen(key_path, "r");
	if (f != NULL) {
		ca->key = PEM_read_PrivateKey(f, NULL, NULL, NULL);
		fclose(f);
	}
	if (ca->cert == NULL || ca->key == NULL) {
		softdev_ca_free(ca);
		return -ENOENT;
	}
	*ret_ca = ca;
	return 0;
}

void
softdev_ca_free(struct softdev_ca *ca)
{
	if (ca == NULL)
		return;
	EVP_PKEY_free(ca->key);
	X509_free(ca->cert);
	free(ca);
}

/* ---- RSA pool ---------------------------------------------------------------------------- */

struct softdev_rsa_pool {
	pthread_mutex_t lock;
	BIGNUM **primes;
	size_t n_primes;
	size_t i, j;		/* the next pair: primes[i], primes[j], i < j */
};

static void *
prime_thread(void *arg)
{
	BIGNUM **p = arg;

	*p = BN_new();
	if (*p != NULL && BN_generate_prime_ex(*p, 1024, 0, NULL, NULL, NULL) != 1) {
		BN_free(*p);
		*p = NULL;
	}
	return NULL;
}

int
softdev_rsa_pool_new(size_t n_keys, struct softdev_rsa_pool **ret_pool)
{
	struct softdev_rsa_pool *pool = calloc(1, sizeof(*pool));
	size_t k = 2;

	if (pool == NULL)
		return -ENOMEM;
	while (k * (k - 1) / 2 < n_keys)
		k++;
	pthread_mutex_init(&pool->lock, NULL);
	pool->primes = calloc(k, sizeof(*pool->primes));
	if (pool->primes == NULL) {
		softdev_rsa_pool_free(pool);
		return -ENOMEM;
	}
	pool->n_primes = k;
	/* two at a time: the machine this runs on has two cores */
	for (size_t i = 0; i < k; i += 2) {
		pthread_t t;
		bool two = i + 1 < k &&
			   pthread_create(&t, NULL, prime_thread, &pool->primes[i + 1]) == 0;

		prime_thread(&pool->primes[i]);
		if (two)
			pthread_join(t, NULL);
		else if (i + 1 < k)
			prime_thread(&pool->primes[i + 1]);
	}
	for (size_t i = 0; i < k; i++)
		if (pool->primes[i] == NULL) {
			softdev_rsa_pool_free(pool);
			return -EIO;
		}
	pool->j = 1;
	*ret_pool = pool;
	return 0;
}

void
softdev_rsa_pool_free(struct softdev_rsa_pool *pool)
{
	if (pool == NULL)
		return;
	for (size_t i = 0; i < pool->n_primes && pool->primes; i++)
		BN_clear_free(pool->primes[i]);
	free(pool->primes);
	pthread_mutex_destroy(&pool->lock);
	free(pool);
}

/* An RSA key n = p * q, e = 65537, with its CRT parameters. */
static EVP_PKEY *
rsa_from_primes(const BIGNUM *p, const BIGNUM *q)
{
	BN_CTX *bc = BN_CTX_new();
	BIGNUM *n = BN_new(), *e = BN_new(), *d = BN_new(), *p1 = BN_new(), *q1 = BN_new();
	BIGNUM *lcm = BN_new(), *g = BN_new(), *dp = BN_new(), *dq = BN_new(), *qinv = BN_new();
	OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
	OSSL_PARAM *params = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *key = NULL;

	if (bc == NULL || n == NULL || e == NULL || d == NULL || p1 == NULL || q1 == NULL ||
	    lcm == NULL || g == NULL || dp == NULL || dq == NULL || qinv == NULL || bld == NULL)
		goto out;
	if (!BN_mul(n, p, q, bc) || BN_num_bits(n) != 2048 || !BN_set_word(e, 65537) ||
	    !BN_sub(p1, p, BN_value_one()) || !BN_sub(q1, q, BN_value_one()) ||
	    !BN_gcd(g, p1, q1, bc) || !BN_mul(lcm, p1, q1, bc) || !BN_div(lcm, NULL, lcm, g, bc) ||
	    BN_mod_inverse(d, e, lcm, bc) == NULL || !BN_mod(dp, d, p1, bc) ||
	    !BN_mod(dq, d, q1, bc) || BN_mod_inverse(qinv, q, p, bc) == NULL)
		goto out;
	if (!OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_D, d) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR1, p) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_FACTOR2, q) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT1, dp) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_EXPONENT2, dq) ||
	    !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_COEFFICIENT1, qinv))
		goto out;
	params = OSSL_PARAM_BLD_to_param(bld);
	ctx = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL);
	if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
	    EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
		key = NULL;
out:
	EVP_PKEY_CTX_free(ctx);
	OSSL_PARAM_free(params);
	OSSL_PARAM_BLD_free(bld);
	BN_CTX_free(bc);
	BN_free(n);
	BN_free(e);
	BN_clear_free(d);
	BN_free(p1);
	BN_free(q1);
	BN_free(lcm);
	BN_free(g);
	BN_clear_free(dp);
	BN_clear_free(dq);
	BN_clear_free(qinv);
	return key;
}

static EVP_PKEY *
rsa_pool_take(struct softdev_rsa_pool *pool)
{
	size_t i, j;

	pthread_mutex_lock(&pool->lock);
	i = pool->i;
	j = pool->j;
	if (i < pool->n_primes - 1 && ++pool->j == pool->n_primes) {
		pool->i++;
		pool->j = pool->i + 1;
	}
	pthread_mutex_unlock(&pool->lock);
	if (i >= pool->n_primes - 1)
		return NULL; /* used up */
	return rsa_from_primes(pool->primes[i], pool->primes[j]);
}

/* ---- the device -------------------------------------------------------------------------- */

void
softdev_pcr_value(unsigned pcr, uint8_t ret_value[32])
{
	char label[32];

	snprintf(label, sizeof(label), "softdev PCR %u", pcr);
	(void)tpm2_hash(TPM2_ALG_SHA256, label, strlen(label), ret_value);
}

/* Left-pad a big-endian BIGNUM into a TPM ECC coordinate of @len bytes. */
static int
ecc_unique(EVP_PKEY *k, size_t len, TPMS_ECC_POINT *ret)
{
	uint8_t pt[1 + 2 * 66];
	size_t n = 0;

	if (EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof(pt),
					    &n) != 1 ||
	    n != 1 + 2 * len || pt[0] != 0x04)
		return -EIO;
	ret->x.size = ret->y.size = (uint16_t)len;
	memcpy(ret->x.buffer, pt + 1, len);
	memcpy(ret->y.buffer, pt + 1 + len, len);
	return 0;
}

void
softdev_free(struct softdev *d)
{
	if (d == NULL)
		return;
	EVP_PKEY_free(d->ek);
	EVP_PKEY_free(d->ak);
	free(d->ek_cert);
	OPENSSL_cleanse(d, sizeof(*d));
	free(d);
}

int
softdev_new(const struct softdev_ca *ca, enum tpm2_ek_type type, struct softdev_rsa_pool *pool,
	    struct softdev **ret_dev)
{
	struct softdev *d = calloc(1, sizeof(*d));
	TPM2B_PUBLIC t;
	X509 *cert = NULL;
	uint8_t *p;
	int len, ret = -EIO;

	if (d == NULL)
		return -ENOMEM;
	d->ek_type = type;
	if (tpm2_ek_template(type, &t) < 0) {
		ret = -EINVAL;
		goto out;
	}
	switch (type) {
	case TPM2_EK_RSA2048: {
		BIGNUM *n = NULL;

		d->ek = pool ? rsa_pool_take(pool) : EVP_PKEY_Q_keygen(NULL, NULL, "RSA", 2048);
		if (d->ek == NULL || EVP_PKEY_get_bn_param(d->ek, OSSL_PKEY_PARAM_RSA_N, &n) != 1)
			goto out;
		t.publicArea.unique.rsa.size = 256;
		len = BN_bn2binpad(n, t.publicArea.unique.rsa.buffer, 256);
		BN_free(n);
		if (len != 256)
			goto out;
		break;
	}
	case TPM2_EK_ECC_P256:
	case TPM2_EK_ECC_P384: {
		bool p256 = type == TPM2_EK_ECC_P256;

		d->ek = EVP_PKEY_Q_keygen(NULL, NULL, "EC", p256 ? "prime256v1" : "secp384r1");
		if (d->ek == NULL || ecc_unique(d->ek, p256 ? 32 : 48, &t.publicArea.unique.ecc) < 0)
			goto out;
		break;
	}
	default:
		ret = -EINVAL;
		goto out;
	}
	d->ek_public = t.publicArea;
	if (tpm2_marshal_tpm2b_public(&t, d->ek_pub, sizeof(d->ek_pub), &d->ek_pub_len) < 0)
		goto out;
	cert = make_cert(ca, d->ek, type == TPM2_EK_RSA2048);
	if (cert == NULL)
		goto out;
	len = i2d_X509(cert, NULL);
	if (len <= 0 || (d->ek_cert = malloc((size_t)len)) == NULL)
		goto out;
	p = d->ek_cert;
	d->ek_cert_len = (size_t)i2d_X509(cert, &p);

	/* the AK, as TPM2_Create makes it from tpm2_ak_template(ECC) */
	if (tpm2_ak_template(TPM2_ALG_ECC, &t) < 0)
		goto out;
	d->ak = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");
	if (d->ak == NULL || ecc_unique(d->ak, 32, &t.publicArea.unique.ecc) < 0)
		goto out;
	d->ak_public = t.publicArea;
	if (tpm2_marshal_tpm2b_public(&t, d->ak_pub, sizeof(d->ak_pub), &d->ak_pub_len) < 0 ||
	    tpm2_name_from_public(&d->ak_public, &d->ak_name) < 0)
		goto out;
	if (key_generate_private(d->wg_priv) < 0 || key_public_from_private(d->wg_pub, d->wg_priv) < 0)
		goto out;
	*ret_dev = d;
	d = NULL;
	ret = 0;
out:
	X509_free(cert);
	softdev_free(d);
	ERR_clear_error();
	return ret;
}

/* ---- ActivateCredential ----------------------------------------------------------------- */

/* The seed: RSA-OAEP decryption with label "IDENTITY\0", or ECDH with the EK and KDFe. */
static int
recover_seed(const struct softdev *d, const TPM2B_ENCRYPTED_SECRET *enc, uint8_t *seed,
	     size_t seed_len)
{
	const TPMT_PUBLIC *ek = &d->ek_public;
	const EVP_MD *md = md_of(ek->nameAlg);
	EVP_PKEY_CTX *ctx = NULL;
	EVP_PKEY *peer = NULL;
	int ret = -EIO;

	if (ek->type == TPM2_ALG_RSA) {
		static const char label[] = "IDENTITY";
		uint8_t out[512];
		size_t outlen = sizeof(out);
		unsigned char *lab = OPENSSL_memdup(label, sizeof(label));

		ctx = EVP_PKEY_CTX_new_from_pkey(NULL, d->ek, NULL);
		if (lab == NULL || ctx == NULL || EVP_PKEY_decrypt_init(ctx) != 1 ||
		    EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
		    EVP_PKEY_CTX_set_rsa_oaep_md(ctx, md) != 1 ||
		    EVP_PKEY_CTX_set_rsa_mgf1_md(ctx, md) != 1 ||
		    EVP_PKEY_CTX_set0_rsa_oaep_label(ctx, lab, sizeof(label)) != 1) {
			OPENSSL_free(lab);
			goto out;
		}
		if (EVP_PKEY_decrypt(ctx, out, &outlen, enc->secret, enc->size) != 1 ||
		    outlen != seed_len) {
			ret = -EACCES; /* TPM_RC_VALUE: the seed does not decrypt */
			goto out;
		}
		memcpy(seed, out, seed_len);
		OPENSSL_cleanse(out, sizeof(out));
		ret = 0;
	} else {
		TPMS_ECC_POINT q;
		uint8_t pt[1 + 2 * 66], z[66];
		size_t off = 0, clen = ek->unique.ecc.x.size, zlen = sizeof(z);
		const char *curve = clen == 32 ? "prime256v1" : "secp384r1";
		OSSL_PARAM params[3];

		if (Tss2_MU_TPMS_ECC_POINT_Unmarshal(enc->secret, enc->size, &off, &q) !=
			    TSS2_RC_SUCCESS ||
		    off != enc->size || q.x.size > clen || q.y.size > clen) {
			ret = -EBADMSG;
			goto out;
		}
		memset(pt, 0, sizeof(pt));
		pt[0] = 0x04;
		memcpy(pt + 1 + clen - q.x.size, q.x.buffer, q.x.size);
		memcpy(pt + 1 + 2 * clen - q.y.size, q.y.buffer, q.y.size);
		params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME,
							     (char *)curve, 0);
		params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pt,
							      1 + 2 * clen);
		params[2] = OSSL_PARAM_construct_end();
		ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
		if (ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
		    EVP_PKEY_fromdata(ctx, &peer, EVP_PKEY_PUBLIC_KEY, params) != 1) {
			ret = -EBADMSG; /* TPM_RC_ECC_POINT */
			goto out;
		}
		EVP_PKEY_CTX_free(ctx);
		ctx = EVP_PKEY_CTX_new_from_pkey(NULL, d->ek, NULL);
		if (ctx == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
		    EVP_PKEY_derive_set_peer(ctx, peer) != 1 ||
		    EVP_PKEY_derive(ctx, z, &zlen) != 1 || zlen != clen)
			goto out;
		/* KDFe(nameAlg, Z, "IDENTITY", ephemeral x, EK x) */
		{
			uint8_t qx[66] = { 0 };

			memcpy(qx + clen - q.x.size, q.x.buffer, q.x.size);
			ret = tpm2_kdfe(ek->nameAlg, z, zlen, "IDENTITY", qx, clen,
					ek->unique.ecc.x.buffer, ek->unique.ecc.x.size,
					(uint32_t)seed_len * 8, seed);
		}
		OPENSSL_cleanse(z, sizeof(z));
	}
out:
	EVP_PKEY_free(peer);
	EVP_PKEY_CTX_free(ctx);
	ERR_clear_error();
	return ret;
}

static int
hmac(TPMI_ALG_HASH alg, const uint8_t *key, size_t key_len, const uint8_t *a, size_t alen,
     const uint8_t *b, size_t blen, uint8_t *out)
{
	EVP_MAC *mac = EVP_MAC_fetch(NULL, "HMAC", NULL);
	EVP_MAC_CTX *ctx = mac ? EVP_MAC_CTX_new(mac) : NULL;
	OSSL_PARAM params[2];
	size_t n = 0, want = tpm2_hash_size(alg);
	int ret = -EIO;

	params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
						     (char *)EVP_MD_get0_name(md_of(alg)), 0);
	params[1] = OSSL_PARAM_construct_end();
	if (ctx != NULL && EVP_MAC_init(ctx, key, key_len, params) == 1 &&
	    EVP_MAC_update(ctx, a, alen) == 1 && EVP_MAC_update(ctx, b, blen) == 1 &&
	    EVP_MAC_final(ctx, out, &n, want) == 1 && n == want)
		ret = 0;
	EVP_MAC_CTX_free(ctx);
	EVP_MAC_free(mac);
	return ret;
}

int
softdev_activate(const struct softdev *d, const uint8_t *blob, size_t blob_len,
		 const uint8_t *seed_buf, size_t seed_len, uint8_t ret_secret[32])
{
	const TPMT_PUBLIC *ek = &d->ek_public;
	const TPMT_SYM_DEF_OBJECT *sym = ek->type == TPM2_ALG_RSA
						 ? &ek->parameters.rsaDetail.symmetric
						 : &ek->parameters.eccDetail.symmetric;
	size_t hlen = tpm2_hash_size(ek->nameAlg), enc_len;
	uint8_t seed[TPM2_MAX_DIGEST_LEN], sym_key[32], hmac_key[TPM2_MAX_DIGEST_LEN];
	uint8_t mac[TPM2_MAX_DIGEST_LEN], plain[2 + TPM2_MAX_DIGEST_LEN];
	const uint8_t *outer, *enc;
	TPM2B_ID_OBJECT id;
	TPM2B_ENCRYPTED_SECRET es;
	EVP_CIPHER_CTX *cctx = NULL;
	static const uint8_t iv[16];
	int n1 = 0, n2 = 0, ret;

	if (tpm2_unmarshal_tpm2b_id_object(blob, blob_len, &id) < 0 ||
	    tpm2_unmarshal_tpm2b_encrypted_secret(seed_buf, seed_len, &es) < 0)
		return -EBADMSG;
	/* credential = TPM2B_DIGEST(outerHMAC) || encIdentity */
	if (id.size < 2 + hlen + 2 || ((size_t)id.credential[0] << 8 | id.credential[1]) != hlen)
		return -EBADMSG;
	outer = id.credential + 2;
	enc = outer + hlen;
	enc_len = id.size - 2 - hlen;
	if (enc_len > sizeof(plain))
		return -EBADMSG;
	ret = recover_seed(d, &es, seed, hlen);
	if (ret < 0)
		goto out;
	ret = tpm2_kdfa(ek->nameAlg, seed, hlen, "INTEGRITY", NULL, 0, NULL, 0, (uint32_t)hlen * 8,
			hmac_key);
	if (ret < 0)
		goto out;
	ret = hmac(ek->nameAlg, hmac_key, hlen, enc, enc_len, d->ak_name.name, d->ak_name.size,
		   mac);
	if (ret < 0)
		goto out;
	if (CRYPTO_memcmp(mac, outer, hlen) != 0) {
		ret = -EACCES; /* TPM_RC_INTEGRITY */
		goto out;
	}
	ret = tpm2_kdfa(ek->nameAlg, seed, hlen, "STORAGE", d->ak_name.name, d->ak_name.size, NULL,
			0, sym->keyBits.aes, sym_key);
	if (ret < 0)
		goto out;
	ret = -EIO;
	cctx = EVP_CIPHER_CTX_new();
	if (cctx == NULL ||
	    EVP_DecryptInit_ex(cctx, sym->keyBits.aes == 128 ? EVP_aes_128_cfb128()
							     : EVP_aes_256_cfb128(),
			       NULL, sym_key, iv) != 1 ||
	    EVP_DecryptUpdate(cctx, plain, &n1, enc, (int)enc_len) != 1 ||
	    EVP_DecryptFinal_ex(cctx, plain + n1, &n2) != 1 || (size_t)(n1 + n2) != enc_len)
		goto out;
	/* TPM2B_DIGEST of the secret */
	if (enc_len != 2 + 32 || plain[0] != 0 || plain[1] != 32) {
		ret = -EBADMSG;
		goto out;
	}
	memcpy(ret_secret, plain + 2, 32);
	ret = 0;
out:
	EVP_CIPHER_CTX_free(cctx);
	OPENSSL_cleanse(seed, sizeof(seed));
	OPENSSL_cleanse(sym_key, sizeof(sym_key));
	OPENSSL_cleanse(hmac_key, sizeof(hmac_key));
	OPENSSL_cleanse(plain, sizeof(plain));
	return ret;
}

/* ---- Quote ------------------------------------------------------------------------------- */

int
softdev_quote(const struct softdev *d, const uint8_t nonce[32], const uint8_t wg_pub[32],
	      const TPML_PCR_SELECTION *sel, struct softdev_quote *ret_quote)
{
	struct tpm2_pcr_values *v = calloc(1, sizeof(*v));
	TPMS_ATTEST a = { 0 };
	TPM2B_ATTEST q = { 0 };
	TPMT_SIGNATURE s = { 0 };
	TPM2B_DATA qd;
	TPML_DIGEST list = { 0 };
	uint8_t digest[32];
	unsigned char *der = NULL;
	const unsigned char *dp;
	ECDSA_SIG *es = NULL;
	EVP_PKEY_CTX *ctx = NULL;
	size_t n, dlen = 0;
	int ret = -EIO;

	if (v == NULL)
		return -ENOMEM;
	/* PCR_Read: the selected SHA-256 PCRs in ascending order, at most 8 per list */
	v->sel = *sel;
	for (uint32_t b = 0; b < sel->count; b++) {
		const TPMS_PCR_SELECTION *ps = &sel->pcrSelections[b];

		if (ps->hash != TPM2_ALG_SHA256) {
			ret = -EINVAL;
			goto out;
		}
		for (unsigned i = 0; i < 8u * ps->sizeofSelect && i < 24; i++) {
			if (!(ps->pcrSelect[i / 8] & (1u << (i % 8))))
				continue;
			list.digests[list.count].size = 32;
			softdev_pcr_value(i, list.digests[list.count].buffer);
			if (++list.count == 8) {
				if (tpm2_pcr_values_add(v, &list) < 0)
					goto out;
				list.count = 0;
			}
		}
	}
	if (list.count > 0 && tpm2_pcr_values_add(v, &list) < 0)
		goto out;
	if (tpm2_pcr_values_marshal(v, ret_quote->pcrs, sizeof(ret_quote->pcrs),
				    &ret_quote->pcrs_len) < 0)
		goto out;

	/* TPMS_ATTEST as TPM2_Quote makes it */
	a.magic = TPM2_GENERATED_VALUE;
	a.type = TPM2_ST_ATTEST_QUOTE;
	a.qualifiedSigner = d->ak_name;
	if (tpm2_qualifying_data(nonce, wg_pub, &qd) < 0)
		goto out;
	a.extraData.size = qd.size;
	memcpy(a.extraData.buffer, qd.buffer, qd.size);
	a.clockInfo.clock = 1000;
	a.clockInfo.safe = TPM2_YES;
	a.firmwareVersion = 0x2019102300163636ULL;
	a.attested.quote.pcrSelect = *sel;
	if (tpm2_pcr_digest(TPM2_ALG_SHA256, v, &a.attested.quote.pcrDigest) < 0)
		goto out;
	if (tpm2_marshal_tpms_attest(&a, q.attestationData, sizeof(q.attestationData), &n) < 0)
		goto out;
	q.size = (uint16_t)n;
	if (tpm2_marshal_tpm2b_attest(&q, ret_quote->quote, sizeof(ret_quote->quote),
				      &ret_quote->quote_len) < 0)
		goto out;

	/* the AK signs SHA-256(attest) with ECDSA */
	if (tpm2_hash(TPM2_ALG_SHA256, q.attestationData, q.size, digest) < 0)
		goto out;
	ctx = EVP_PKEY_CTX_new_from_pkey(NULL, d->ak, NULL);
	if (ctx == NULL || EVP_PKEY_sign_init(ctx) != 1 ||
	    EVP_PKEY_sign(ctx, NULL, &dlen, digest, sizeof(digest)) != 1)
		goto out;
	der = OPENSSL_malloc(dlen);
	if (der == NULL || EVP_PKEY_sign(ctx, der, &dlen, digest, sizeof(digest)) != 1)
		goto out;
	dp = der;
	es = d2i_ECDSA_SIG(NULL, &dp, (long)dlen);
	if (es == NULL)
		goto out;
	s.sigAlg = TPM2_ALG_ECDSA;
	s.signature.ecdsa.hash = TPM2_ALG_SHA256;
	s.signature.ecdsa.signatureR.size = 32;
	s.signature.ecdsa.signatureS.size = 32;
	if (BN_bn2binpad(ECDSA_SIG_get0_r(es), s.signature.ecdsa.signatureR.buffer, 32) != 32 ||
	    BN_bn2binpad(ECDSA_SIG_get0_s(es), s.signature.ecdsa.signatureS.buffer, 32) != 32)
		goto out;
	if (tpm2_marshal_tpmt_signature(&s, ret_quote->sig, sizeof(ret_quote->sig),
					&ret_quote->sig_len) < 0)
		goto out;
	ret = 0;
out:
	ECDSA_SIG_free(es);
	OPENSSL_free(der);
	EVP_PKEY_CTX_free(ctx);
	free(v);
	ERR_clear_error();
	return ret;
}
