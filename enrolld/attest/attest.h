/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_ATTEST_H
#define ENROLLD_ATTEST_H

/*
 * Server-side TPM attestation for enrollment (OpenSSL 3 + tss2-mu, no TPM). The protocol
 * and the threat model are in docs/attestation.md.
 *
 *   1. challenge: the device sends its EK certificate, EK public area, AK public area and
 *      WireGuard public key.
 *        attest_verify_ek()      certificate chains to a trusted CA; EK public == cert key
 *        attest_check_ak()       AK is a restricted signing key with the exact attributes
 *        attest_challenge_new()  MakeCredential in software for a fresh random secret;
 *                                the device gets the credential blob, the encrypted seed
 *                                and the nonce
 *   2. complete: the device runs ActivateCredential (recovering the secret), then
 *      TPM2_Quote with the AK and qualifying data SHA-256(nonce || WireGuard public key).
 *        attest_complete()       secret, session freshness and one use, quote structure,
 *                                signature, qualifying data, PCR digest, PCR policy
 *
 * Wire formats (all tss2-mu marshalled TPM structures, see common/tpm2.h):
 *   ek_cert           DER, optionally with the TCG NV header and trailing padding
 *   ek_public         TPM2B_PUBLIC
 *   ak_public         TPM2B_PUBLIC
 *   credential blob   TPM2B_ID_OBJECT         -> Esys_ActivateCredential credentialBlob
 *   encrypted seed    TPM2B_ENCRYPTED_SECRET  -> Esys_ActivateCredential secret
 *   secret            the bytes of the TPM2B_DIGEST certInfo ActivateCredential returns
 *                     (ATTEST_SECRET_LEN bytes), without the size prefix
 *   quote             TPM2B_ATTEST            <- Esys_Quote quoted
 *   signature         TPMT_SIGNATURE          <- Esys_Quote signature
 *   pcrs              PCR values blob: TPML_PCR_SELECTION || TPML_DIGEST... (tpm2.h,
 *                     tpm2_pcr_values_marshal)
 *
 * Results. Every verifying function returns 0 when the input is accepted; -EACCES when it
 * is rejected, with *reason set to why; another negative errno (-ENOMEM, -EIO) for a
 * failure of our own, with *reason = ATTEST_ERR_INTERNAL. *reason is always written (it is
 * ATTEST_OK on success). Nothing here logs above debug: the caller logs
 * attest_reason_code() and attest_reason_message().
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "common/tpm2.h"

#define ATTEST_SECRET_LEN 32
#define ATTEST_NONCE_LEN TPM2_NONCE_LEN
#define ATTEST_WG_KEY_LEN TPM2_WG_KEY_LEN

/*
 * Why an attestation was rejected. The numeric values are not stable (do not store them);
 * attest_reason_code() strings are. The table with codes and messages is in reason.c and
 * docs/attestation.md.
 */
enum attest_reason {
	ATTEST_OK = 0,
	ATTEST_ERR_INTERNAL,		/* "internal_error" */
	/* EK certificate */
	ATTEST_EK_CERT_MALFORMED,	/* "ek_cert_malformed" */
	ATTEST_EK_CERT_UNTRUSTED,	/* "ek_cert_untrusted" */
	ATTEST_EK_CERT_EXPIRED,		/* "ek_cert_expired" */
	ATTEST_EK_CERT_NOT_YET_VALID,	/* "ek_cert_not_yet_valid" */
	ATTEST_EK_CERT_BAD_SIGNATURE,	/* "ek_cert_bad_signature" */
	ATTEST_EK_CERT_CA_INVALID,	/* "ek_cert_ca_invalid" */
	ATTEST_EK_CERT_CRITICAL_EXT,	/* "ek_cert_unhandled_critical_extension" */
	ATTEST_EK_CERT_KEY_USAGE,	/* "ek_cert_key_usage" */
	ATTEST_EK_CERT_INVALID,		/* "ek_cert_invalid" (any other chain error) */
	ATTEST_EK_CERT_REVOKED,		/* "ek_cert_revoked" (a CA's CRL lists it) */
	ATTEST_EK_CRL_EXPIRED,		/* "ek_crl_expired" (the issuer's CRL is past nextUpdate) */
	ATTEST_EK_CRL_INVALID,		/* "ek_crl_invalid" (the issuer's CRL cannot be used) */
	/* EK public area */
	ATTEST_EK_PUBLIC_MALFORMED,	/* "ek_public_malformed" */
	ATTEST_EK_PUBLIC_UNSUPPORTED,	/* "ek_public_unsupported" */
	ATTEST_EK_PUBLIC_ATTRIBUTES,	/* "ek_public_attributes" */
	ATTEST_EK_KEY_MISMATCH,		/* "ek_key_mismatch" */
	/* AK public area */
	ATTEST_AK_PUBLIC_MALFORMED,	/* "ak_public_malformed" */
	ATTEST_AK_NOT_RESTRICTED,	/* "ak_not_restricted" */
	ATTEST_AK_NOT_FIXED_TPM,	/* "ak_not_fixed_tpm" */
	ATTEST_AK_NOT_SIGNING,		/* "ak_not_signing" */
	ATTEST_AK_CAN_DECRYPT,		/* "ak_can_decrypt" */
	ATTEST_AK_ATTRIBUTES,		/* "ak_attributes" (any other attribute difference) */
	ATTEST_AK_UNSUPPORTED_ALG,	/* "ak_unsupported_algorithm" */
	ATTEST_AK_KEY_SIZE,		/* "ak_key_size" */
	/* session and credential */
	ATTEST_SESSION_EXPIRED,		/* "session_expired" */
	ATTEST_SESSION_USED,		/* "session_used" */
	ATTEST_CREDENTIAL_NOT_ACTIVATED, /* "credential_not_activated" */
	ATTEST_SECRET_MISMATCH,		/* "secret_mismatch" */
	/* quote */
	ATTEST_QUOTE_MALFORMED,		/* "quote_malformed" */
	ATTEST_QUOTE_MAGIC,		/* "quote_not_tpm_generated" */
	ATTEST_QUOTE_TYPE,		/* "quote_wrong_type" */
	ATTEST_SIGNATURE_MALFORMED,	/* "signature_malformed" */
	ATTEST_SIGNATURE_SCHEME,	/* "signature_scheme_mismatch" */
	ATTEST_SIGNATURE_INVALID,	/* "signature_invalid" */
	ATTEST_QUOTE_QUALIFYING_DATA,	/* "quote_qualifying_data_mismatch" */
	ATTEST_QUOTE_NONCE_MISMATCH,	/* "quote_nonce_mismatch" */
	ATTEST_QUOTE_WG_KEY_MISMATCH,	/* "quote_wg_key_mismatch" */
	ATTEST_PCR_VALUES_MALFORMED,	/* "pcr_values_malformed" */
	ATTEST_PCR_SELECTION_MISMATCH,	/* "pcr_selection_mismatch" */
	ATTEST_PCR_DIGEST_MISMATCH,	/* "pcr_digest_mismatch" */
	ATTEST_PCR_POLICY_NOT_QUOTED,	/* "pcr_policy_not_quoted" */
	ATTEST_PCR_POLICY_MISMATCH,	/* "pcr_policy_mismatch" */
	ATTEST_REASON_COUNT
};

/* Stable machine-readable code ("ek_cert_untrusted"); "unknown" for an unknown value. */
const char *attest_reason_code(enum attest_reason reason);
/* One-sentence operator-facing explanation saying what to check. */
const char *attest_reason_message(enum attest_reason reason);

/* ---- trust anchors ------------------------------------------------------------------------ */

struct attest_trust;

/*
 * Load every certificate (PEM, several per file allowed, or DER) in the files of @dir
 * (not recursive; files whose name starts with '.' are skipped). Self-signed certificates
 * become trust anchors; the others are intermediates a chain may use (they are not trusted
 * by themselves: a chain must end at an anchor). -ENOENT if @dir holds no anchor,
 * -EBADMSG if a file is not a certificate. Free with attest_trust_free().
 */
int attest_trust_load(const char *dir, struct attest_trust **ret_trust);
void attest_trust_free(struct attest_trust *trust);
/*
 * Check the EK chains against these CRLs from now on (crl.h has the policy); replaces the
 * previous set. Takes a reference to @crls (NULL: no revocation checks). Safe while other
 * threads verify: each verification uses the set current when it started.
 */
struct crl_set;
void attest_trust_set_crls(struct attest_trust *trust, struct crl_set *crls);

/* ---- EK and AK ---------------------------------------------------------------------------- */

/*
 * Verify an EK certificate and the EK public area against it, at time @now:
 * - the certificate (TCG NV header and trailing bytes tolerated) chains to an anchor of
 *   @trust, every certificate in the chain valid at @now, signatures valid, CA key usage;
 *   a critical subjectAltName (TCG: TPM manufacturer/model/version as a directoryName) is
 *   tolerated, any other unhandled critical extension is not;
 * - if the EK certificate has keyUsage it allows keyEncipherment (RSA) / keyAgreement (ECC);
 * - @ek_public (TPM2B_PUBLIC) is a restricted decryption key (fixedTPM, fixedParent,
 *   restricted, decrypt, not sign) with an AES-CFB symmetric and a supported nameAlg, and
 *   its key equals the certificate's (RSA modulus and exponent; ECC curve and point).
 * If @ret_ek_id is not NULL it gets SHA-256 of the EK's public key (RSA modulus or ECC
 * x || y), an identifier of the device that does not depend on the certificate.
 */
int attest_verify_ek(const struct attest_trust *trust, const uint8_t *ek_cert, size_t ek_cert_len,
		     const uint8_t *ek_public, size_t ek_public_len, time_t now,
		     uint8_t ret_ek_id[32], enum attest_reason *reason);

/*
 * Check an AK public area (TPM2B_PUBLIC): objectAttributes exactly fixedTPM | fixedParent |
 * sensitiveDataOrigin | userWithAuth | restricted | sign; ECC P-256/P-384 with ECDSA or a
 * NULL scheme, or RSA-2048/3072 with RSASSA, RSAPSS or a NULL scheme; scheme hash and
 * nameAlg SHA-256 or SHA-384. If @ret_name is not NULL it gets the AK's name.
 */
int attest_check_ak(const uint8_t *ak_public, size_t ak_public_len, TPM2B_NAME *ret_name,
		    enum attest_reason *reason);

/*
 * The same checks, keeping the result: a checked TPM public key (EK or AK) with its name
 * and its OpenSSL key, converted once. An enrollment converts each key once and hands
 * the result along (docs/attestation.md, "Key checks"): attest_ek_verify() then
 * attest_ak_new() then attest_challenge_new_keys(), whose session keeps its own reference
 * to the AK's key for attest_complete(). Free with attest_key_free() (NULL is a no-op).
 */
struct attest_key;

/* attest_verify_ek(), returning the verified EK instead of only its id. */
int attest_ek_verify(const struct attest_trust *trust, const uint8_t *ek_cert, size_t ek_cert_len,
		     const uint8_t *ek_public, size_t ek_public_len, time_t now,
		     struct attest_key **ret_ek, enum attest_reason *reason);
/* attest_check_ak(), returning the checked AK. */
int attest_ak_new(const uint8_t *ak_public, size_t ak_public_len, struct attest_key **ret_ak,
		  enum attest_reason *reason);
void attest_key_free(struct attest_key *k);
/* The key's TPM name (nameAlg || H(TPMT_PUBLIC)); owned by @k. */
const TPM2B_NAME *attest_key_name(const struct attest_key *k);
/* SHA-256 of the raw public key (RSA modulus, or ECC x || y padded): the EK id. */
int attest_key_id(const struct attest_key *k, uint8_t ret_id[32]);

/* ---- challenge / complete ------------------------------------------------------------------- */

/*
 * One enrollment session. Owns a random secret and nonce; the secret is wiped by
 * attest_challenge_free(). Not thread-safe: the caller serialises access to one session.
 */
struct attest_challenge;

/*
 * Check @ek_public and @ak_public (attest_check_ak; the EK must already have been
 * verified with attest_verify_ek), then run MakeCredential in software: a fresh random
 * secret bound to the AK's name, encrypted to the EK (RSA: OAEP label "IDENTITY"; ECC:
 * ECDH + KDFe), and a fresh random nonce. The session is valid from @now for @ttl seconds
 * and for one attest_complete(). -EACCES with *reason for a bad EK or AK.
 */
int attest_challenge_new(const uint8_t *ek_public, size_t ek_public_len,
			 const uint8_t *ak_public, size_t ak_public_len,
			 const uint8_t wg_pub[static ATTEST_WG_KEY_LEN], time_t now,
			 unsigned ttl, struct attest_challenge **ret_challenge,
			 enum attest_reason *reason);
/*
 * attest_challenge_new() for keys already checked and converted: @ek from
 * attest_ek_verify(), @ak from attest_ak_new(). Neither is taken; the session keeps a
 * reference to the AK's OpenSSL key.
 */
int attest_challenge_new_keys(const struct attest_key *ek, const struct attest_key *ak,
			      const uint8_t wg_pub[static ATTEST_WG_KEY_LEN], time_t now,
			      unsigned ttl, struct attest_challenge **ret_challenge,
			      enum attest_reason *reason);
void attest_challenge_free(struct attest_challenge *c);
/*
 * A session made by attest_challenge_new_keys() elsewhere (another enrolld node, from the
 * store), for attest_complete() only: @ak from attest_ak_new() on the AK public area the
 * device sent (not taken; the session keeps a reference to its OpenSSL key), the session's
 * secret, nonce and WireGuard key, and its expiry. It has no credential blob or seed (those
 * went to the device with the challenge) and no lower time bound: the clocks of the node
 * that made it and of this one need not agree to the second.
 */
int attest_challenge_restore(const struct attest_key *ak,
			     const uint8_t secret[static ATTEST_SECRET_LEN],
			     const uint8_t nonce[static ATTEST_NONCE_LEN],
			     const uint8_t wg_pub[static ATTEST_WG_KEY_LEN], time_t expires,
			     struct attest_challenge **ret_challenge);

/*
 * What to send to the device. Pointers stay owned by @c and valid until it is freed.
 * credential: TPM2B_ID_OBJECT; encrypted seed: TPM2B_ENCRYPTED_SECRET (both marshalled);
 * nonce: ATTEST_NONCE_LEN bytes.
 */
void attest_challenge_credential(const struct attest_challenge *c, const uint8_t **ret_blob,
				 size_t *ret_len);
void attest_challenge_encrypted_seed(const struct attest_challenge *c, const uint8_t **ret_seed,
				     size_t *ret_len);
const uint8_t *attest_challenge_nonce(const struct attest_challenge *c);
/*
 * The session's secret (ATTEST_SECRET_LEN bytes, owned by @c), for a store that keeps it
 * sealed at rest so that another node can complete the session (attest_challenge_restore).
 * Wiped by attest_complete() once checked.
 */
const uint8_t *attest_challenge_secret(const struct attest_challenge *c);
time_t attest_challenge_expires(const struct attest_challenge *c);
bool attest_challenge_used(const struct attest_challenge *c);

/*
 * The device's answer. nonce and wg_pub are what the device says it quoted (may be NULL:
 * then the session's values are assumed). They only sharpen the reason for a rejection:
 * the quote is accepted only if its extraData equals SHA-256(session nonce || session
 * WireGuard key), whatever the device claims.
 */
struct attest_response {
	const uint8_t *secret;		/* from ActivateCredential; len 0 = could not activate */
	size_t secret_len;
	const uint8_t *quote;		/* TPM2B_ATTEST */
	size_t quote_len;
	const uint8_t *signature;	/* TPMT_SIGNATURE */
	size_t signature_len;
	const uint8_t *pcrs;		/* PCR values blob */
	size_t pcrs_len;
	const uint8_t *nonce;		/* ATTEST_NONCE_LEN bytes or NULL */
	const uint8_t *wg_pub;		/* ATTEST_WG_KEY_LEN bytes or NULL */
};

/*
 * Verify the device's answer at time @now, in this order: session not used (marks it used
 * whatever the outcome, so a session is never tried twice) and not expired; secret
 * (constant time); quote and signature structure; signature by the session's AK over the
 * attest bytes; magic TPM_GENERATED_VALUE and type TPM_ST_ATTEST_QUOTE; qualifying data;
 * PCR values and selection against the quote's pcrSelect and pcrDigest; optional @policy
 * (every PCR in it must be quoted and equal; NULL = no policy).
 */
int attest_complete(struct attest_challenge *c, const struct attest_response *resp,
		    const struct tpm2_pcr_values *policy, time_t now, enum attest_reason *reason);

/* ---- lower-level pieces (used by the above, exposed for tests and tools) ------------------ */

/*
 * Software MakeCredential (TPM 2.0 Part 1 section 24, Part 3 TPM2_MakeCredential): protect
 * @secret (at most the EK nameAlg's digest size) for the TPM holding @ek, bound to
 * @ak_name. @seed_override (NULL in production) fixes the seed for RSA EKs, so tests can
 * compare with tpm2_makecredential output; it is ignored for ECC EKs. Outputs are the
 * structures ActivateCredential takes.
 */
int attest_make_credential(const TPMT_PUBLIC *ek, const TPM2B_NAME *ak_name,
			   const uint8_t *secret, size_t secret_len, const uint8_t *seed_override,
			   TPM2B_ID_OBJECT *ret_blob, TPM2B_ENCRYPTED_SECRET *ret_seed);

/*
 * Verify a quote without a session: @ak (already checked), quote TPM2B_ATTEST bytes,
 * signature TPMT_SIGNATURE bytes, expected qualifying data, PCR values blob, optional
 * policy. Same checks and reasons as attest_complete() after the secret.
 */
int attest_verify_quote(const TPMT_PUBLIC *ak, const uint8_t *quote, size_t quote_len,
			const uint8_t *sig, size_t sig_len, const TPM2B_DATA *expected_qd,
			const uint8_t *pcrs, size_t pcrs_len, const struct tpm2_pcr_values *policy,
			enum attest_reason *reason);

#endif
