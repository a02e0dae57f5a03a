/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_ATTEST_INT_H
#define ENROLLD_ATTEST_INT_H

/* Private to enrolld/attest: helpers shared by its files. */

#include <errno.h>

#include <openssl/evp.h>

#include "enrolld/attest/attest.h"

/* OpenSSL curve name and coordinate size of a TPM curve; NULL / 0 if unsupported. */
const char *attest_curve_name(TPM2_ECC_CURVE curve, size_t *ret_coord_len);

/*
 * A TPM public key, checked and converted once (attest.h, struct attest_key): the public
 * area, its name, and the OpenSSL key every later step uses.
 */
struct attest_key {
	TPMT_PUBLIC pub;
	TPM2B_NAME name;
	EVP_PKEY *pkey;
};

/*
 * An OpenSSL public key from a TPM public area (RSA n/e or ECC curve/point), with the
 * structural checks of docs/attestation.md ("Key checks"): RSA modulus exactly keyBits
 * long and odd, exponent odd and at least 3; ECC point on the curve, not at infinity,
 * coordinates below the field prime. Not the RSA primality-style check of
 * EVP_PKEY_public_check (milliseconds per key). -EINVAL for an unsupported type or curve,
 * -EBADMSG if the key fails a check.
 */
int attest_pkey_from_public(const TPMT_PUBLIC *pub, EVP_PKEY **ret_pkey);

/* MakeCredential with the EK's key already converted (attest_make_credential). */
int attest_make_credential_pkey(const TPMT_PUBLIC *ek, EVP_PKEY *ek_pkey,
				const TPM2B_NAME *ak_name, const uint8_t *secret,
				size_t secret_len, const uint8_t *seed_override,
				TPM2B_ID_OBJECT *ret_blob, TPM2B_ENCRYPTED_SECRET *ret_seed);

/*
 * Parse and check an EK public area (TPM2B_PUBLIC): the ek_public_* reasons. Used by
 * attest_ek_verify (through attest_ek_key_new) and by the byte-taking
 * attest_challenge_new, which must not trust that the caller verified the same bytes.
 */
int attest_ek_public_parse(const uint8_t *buf, size_t len, TPMT_PUBLIC *ret_pub,
			   enum attest_reason *reason);

/* Parse and check an EK public area and convert its key once: attest_ek_public_parse. */
int attest_ek_key_new(const uint8_t *buf, size_t len, struct attest_key **ret_ek,
		      enum attest_reason *reason);

/* Parse and check an AK public area; see attest_check_ak. */
int attest_ak_public_parse(const uint8_t *buf, size_t len, TPMT_PUBLIC *ret_pub,
			   enum attest_reason *reason);

/*
 * Verify a quote's structure and signature with @ak and return the parsed TPMS_ATTEST
 * (quote_* and signature_* reasons), without looking at extraData or PCRs.
 */
int attest_quote_parse_verify(const TPMT_PUBLIC *ak, const uint8_t *quote, size_t quote_len,
			      const uint8_t *sig, size_t sig_len, TPMS_ATTEST *ret_attest,
			      TPMI_ALG_HASH *ret_sig_hash, enum attest_reason *reason);
/* The same with the AK's key already converted: @ak_pkey is @ak's key. */
int attest_quote_parse_verify_pkey(const TPMT_PUBLIC *ak, EVP_PKEY *ak_pkey, const uint8_t *quote,
				   size_t quote_len, const uint8_t *sig, size_t sig_len,
				   TPMS_ATTEST *ret_attest, TPMI_ALG_HASH *ret_sig_hash,
				   enum attest_reason *reason);

/* The PCR part of quote verification: pcr_* reasons. */
int attest_quote_check_pcrs(const TPMS_ATTEST *attest, TPMI_ALG_HASH sig_hash,
			    const uint8_t *pcrs, size_t pcrs_len,
			    const struct tpm2_pcr_values *policy, enum attest_reason *reason);

/* Set *reason and return the matching errno: -EACCES for a rejection. */
static inline int
attest_reject(enum attest_reason *reason, enum attest_reason why)
{
	*reason = why;
	return why == ATTEST_ERR_INTERNAL ? -EIO : -EACCES;
}

#endif
