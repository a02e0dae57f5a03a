// SPDX-License-Identifier: MIT
/*
 * Enrollment sessions: MakeCredential for a fresh secret and nonce, then one verification
 * of the device's answer.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "common/log.h"
#include "enrolld/attest/attest_int.h"

struct attest_challenge {
	uint8_t secret[ATTEST_SECRET_LEN];
	uint8_t nonce[ATTEST_NONCE_LEN];
	uint8_t wg_pub[ATTEST_WG_KEY_LEN];
	TPMT_PUBLIC ak;
	EVP_PKEY *ak_pkey;	/* the AK converted once, at the challenge; a reference */
	uint8_t blob[sizeof(TPM2B_ID_OBJECT)];
	size_t blob_len;
	uint8_t seed[sizeof(TPM2B_ENCRYPTED_SECRET)];
	size_t seed_len;
	time_t created;
	time_t expires;
	bool used;
};

void
attest_challenge_free(struct attest_challenge *c)
{
	if (c == NULL)
		return;
	EVP_PKEY_free(c->ak_pkey);
	OPENSSL_cleanse(c, sizeof(*c));
	free(c);
}

int
attest_challenge_new_keys(const struct attest_key *ek, const struct attest_key *ak,
			  const uint8_t wg_pub[static ATTEST_WG_KEY_LEN], time_t now, unsigned ttl,
			  struct attest_challenge **ret_challenge, enum attest_reason *reason)
{
	struct attest_challenge *c = NULL;
	TPM2B_ID_OBJECT blob;
	TPM2B_ENCRYPTED_SECRET enc;
	int ret;

	*reason = ATTEST_OK;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return attest_reject(reason, ATTEST_ERR_INTERNAL);
	if (EVP_PKEY_up_ref(ak->pkey) != 1) {
		ret = attest_reject(reason, ATTEST_ERR_INTERNAL);
		goto out;
	}
	c->ak_pkey = ak->pkey;
	c->ak = ak->pub;
	if (RAND_priv_bytes(c->secret, sizeof(c->secret)) != 1 ||
	    RAND_bytes(c->nonce, sizeof(c->nonce)) != 1) {
		ret = attest_reject(reason, ATTEST_ERR_INTERNAL);
		goto out;
	}
	ret = attest_make_credential_pkey(&ek->pub, ek->pkey, &ak->name, c->secret,
					  sizeof(c->secret), NULL, &blob, &enc);
	if (ret < 0) {
		log_debug("attest: make credential: %d", ret);
		ret = attest_reject(reason, ATTEST_ERR_INTERNAL);
		goto out;
	}
	if (tpm2_marshal_tpm2b_id_object(&blob, c->blob, sizeof(c->blob), &c->blob_len) < 0 ||
	    tpm2_marshal_tpm2b_encrypted_secret(&enc, c->seed, sizeof(c->seed), &c->seed_len) < 0) {
		ret = attest_reject(reason, ATTEST_ERR_INTERNAL);
		goto out;
	}
	memcpy(c->wg_pub, wg_pub, ATTEST_WG_KEY_LEN);
	c->created = now;
	c->expires = now + (time_t)ttl;
	*ret_challenge = c;
	c = NULL;
	ret = 0;
out:
	attest_challenge_free(c);
	return ret;
}

int
attest_challenge_restore(const struct attest_key *ak,
			 const uint8_t secret[static ATTEST_SECRET_LEN],
			 const uint8_t nonce[static ATTEST_NONCE_LEN],
			 const uint8_t wg_pub[static ATTEST_WG_KEY_LEN], time_t expires,
			 struct attest_challenge **ret_challenge)
{
	struct attest_challenge *c;

	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	if (EVP_PKEY_up_ref(ak->pkey) != 1) {
		free(c);
		return -EIO;
	}
	c->ak_pkey = ak->pkey;
	c->ak = ak->pub;
	memcpy(c->secret, secret, ATTEST_SECRET_LEN);
	memcpy(c->nonce, nonce, ATTEST_NONCE_LEN);
	memcpy(c->wg_pub, wg_pub, ATTEST_WG_KEY_LEN);
	c->created = 0;
	c->expires = expires;
	*ret_challenge = c;
	return 0;
}

int
attest_challenge_new(const uint8_t *ek_public, size_t ek_public_len, const uint8_t *ak_public,
		     size_t ak_public_len, const uint8_t wg_pub[static ATTEST_WG_KEY_LEN],
		     time_t now, unsigned ttl, struct attest_challenge **ret_challenge,
		     enum attest_reason *reason)
{
	struct attest_key *ek = NULL, *ak = NULL;
	int ret;

	ret = attest_ek_key_new(ek_public, ek_public_len, &ek, reason);
	if (ret < 0)
		return ret;
	ret = attest_ak_new(ak_public, ak_public_len, &ak, reason);
	if (ret == 0)
		ret = attest_challenge_new_keys(ek, ak, wg_pub, now, ttl, ret_challenge, reason);
	attest_key_free(ak);
	attest_key_free(ek);
	return ret;
}

void
attest_challenge_credential(const struct attest_challenge *c, const uint8_t **ret_blob,
			    size_t *ret_len)
{
	*ret_blob = c->blob;
	*ret_len = c->blob_len;
}

void
attest_challenge_encrypted_seed(const struct attest_challenge *c, const uint8_t **ret_seed,
				size_t *ret_len)
{
	*ret_seed = c->seed;
	*ret_len = c->seed_len;
}

const uint8_t *
attest_challenge_nonce(const struct attest_challenge *c)
{
	return c->nonce;
}

const uint8_t *
attest_challenge_secret(const struct attest_challenge *c)
{
	return c->secret;
}

time_t
attest_challenge_expires(const struct attest_challenge *c)
{
	return c->expires;
}

bool
attest_challenge_used(const struct attest_challenge *c)
{
	return c->used;
}

int
attest_complete(struct attest_challenge *c, const struct attest_response *resp,
		const struct tpm2_pcr_values *policy, time_t now, enum attest_reason *reason)
{
	const uint8_t *nonce = resp->nonce ? resp->nonce : c->nonce;
	const uint8_t *wg_pub = resp->wg_pub ? resp->wg_pub : c->wg_pub;
	TPM2B_DATA qd;
	TPMS_ATTEST a;
	TPMI_ALG_HASH h;
	int ret;

	*reason = ATTEST_OK;
	/* one try per session, whatever its outcome: no guessing the secret twice */
	if (c->used)
		return attest_reject(reason, ATTEST_SESSION_USED);
	c->used = true;
	if (now >= c->expires || now < c->created)
		return attest_reject(reason, ATTEST_SESSION_EXPIRED);
	if (resp->secret == NULL || resp->secret_len == 0)
		return attest_reject(reason, ATTEST_CREDENTIAL_NOT_ACTIVATED);
	if (resp->secret_len != sizeof(c->secret) ||
	    CRYPTO_memcmp(resp->secret, c->secret, sizeof(c->secret)) != 0)
		return attest_reject(reason, ATTEST_SECRET_MISMATCH);
	/* the secret has done its job; do not keep it around */
	OPENSSL_cleanse(c->secret, sizeof(c->secret));

	ret = attest_quote_parse_verify_pkey(&c->ak, c->ak_pkey, resp->quote, resp->quote_len,
					     resp->signature, resp->signature_len, &a, &h, reason);
	if (ret < 0)
		return ret;
	/*
	 * The quote is authentic from here. It is accepted only if extraData is the hash of
	 * the session's nonce and key; the device's claims only choose the reason.
	 */
	if (tpm2_qualifying_data(nonce, wg_pub, &qd) < 0)
		return attest_reject(reason, ATTEST_ERR_INTERNAL);
	if (a.extraData.size != qd.size || CRYPTO_memcmp(a.extraData.buffer, qd.buffer, qd.size))
		return attest_reject(reason, ATTEST_QUOTE_QUALIFYING_DATA);
	if (CRYPTO_memcmp(nonce, c->nonce, ATTEST_NONCE_LEN) != 0)
		return attest_reject(reason, ATTEST_QUOTE_NONCE_MISMATCH);
	if (CRYPTO_memcmp(wg_pub, c->wg_pub, ATTEST_WG_KEY_LEN) != 0)
		return attest_reject(reason, ATTEST_QUOTE_WG_KEY_MISMATCH);
	return attest_quote_check_pcrs(&a, h, resp->pcrs, resp->pcrs_len, policy, reason);
}
