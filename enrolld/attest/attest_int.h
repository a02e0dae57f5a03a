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
 * An OpenSSL public key from a TPM public area (RSA n/e or ECC curve/point). -EINVAL for
 * an unsupported type or curve, -EBADMSG if the key is not valid (point not on the curve).
 */
int attest_pkey_from_public(const TPMT_PUBLIC *pub, EVP_PKEY **ret_pkey);

/*
 * Parse and check an EK public area (TPM2B_PUBLIC): the ek_public_* reasons. Used by
 * attest_verify_ek and again by attest_challenge_new, which must not trust that the
 * caller verified the same bytes.
 */
int attest_ek_public_parse(const uint8_t *buf, size_t len, TPMT_PUBLIC *ret_pub,
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
