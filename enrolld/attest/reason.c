// SPDX-License-Identifier: MIT
/*
 * The one table of attestation rejection reasons: stable code and operator message.
 * docs/attestation.md repeats it; tests/unit/test_attest.c checks the codes are unique.
 */
#include "enrolld/attest/attest.h"

static const struct {
	const char *code;
	const char *message;
} reasons[ATTEST_REASON_COUNT] = {
	[ATTEST_OK] = { "ok", "attestation verified" },
	[ATTEST_ERR_INTERNAL] = { "internal_error",
		"the server failed to verify (out of memory or a crypto library error); retry, "
		"and check the server log if it persists" },
	[ATTEST_EK_CERT_MALFORMED] = { "ek_cert_malformed",
		"the EK certificate is not a DER X.509 certificate (after removing a TCG NV "
		"header); check what the device read from its EK certificate NV index" },
	[ATTEST_EK_CERT_UNTRUSTED] = { "ek_cert_untrusted",
		"the EK certificate does not chain to a trusted TPM manufacturer CA; add the "
		"manufacturer's root (and intermediate) CA to the trust directory if the TPM "
		"is genuine" },
	[ATTEST_EK_CERT_EXPIRED] = { "ek_cert_expired",
		"the EK certificate or a CA certificate in its chain has expired; check the "
		"server clock, then the certificate's notAfter" },
	[ATTEST_EK_CERT_NOT_YET_VALID] = { "ek_cert_not_yet_valid",
		"the EK certificate or a CA certificate in its chain is not valid yet; check "
		"the server clock" },
	[ATTEST_EK_CERT_BAD_SIGNATURE] = { "ek_cert_bad_signature",
		"a signature in the EK certificate chain does not verify: the certificate was "
		"altered or issued by a different key with the same CA name" },
	[ATTEST_EK_CERT_CA_INVALID] = { "ek_cert_ca_invalid",
		"a CA certificate in the EK chain is not allowed to sign certificates (basic "
		"constraints or key usage); check the trust directory" },
	[ATTEST_EK_CERT_CRITICAL_EXT] = { "ek_cert_unhandled_critical_extension",
		"the EK certificate has a critical extension the server does not understand "
		"(other than the TCG subjectAltName)" },
	[ATTEST_EK_CERT_KEY_USAGE] = { "ek_cert_key_usage",
		"the EK certificate's key usage does not allow key encipherment (RSA) or key "
		"agreement (ECC): it is not an endorsement key certificate" },
	[ATTEST_EK_CERT_INVALID] = { "ek_cert_invalid",
		"the EK certificate chain failed verification for another reason; see the "
		"server's debug log for the OpenSSL error" },
	[ATTEST_EK_CERT_REVOKED] = { "ek_cert_revoked",
		"the EK certificate, or a CA certificate in its chain, is revoked by its "
		"issuer's CRL (attestation.crl_dir)" },
	[ATTEST_EK_CRL_EXPIRED] = { "ek_crl_expired",
		"the CRL of a CA in the EK chain is past its nextUpdate: devices under that CA "
		"are refused until a fresh CRL is put into attestation.crl_dir (and SIGHUP)" },
	[ATTEST_EK_CRL_INVALID] = { "ek_crl_invalid",
		"the CRL of a CA in the EK chain cannot be used (bad signature, not valid yet, "
		"wrong scope): devices under that CA are refused until it is replaced" },
	[ATTEST_EK_PUBLIC_MALFORMED] = { "ek_public_malformed",
		"the EK public area is not one well-formed TPM2B_PUBLIC (truncated, oversized "
		"or garbage)" },
	[ATTEST_EK_PUBLIC_UNSUPPORTED] = { "ek_public_unsupported",
		"the EK uses an algorithm, curve, key size or symmetric cipher the server does "
		"not support (RSA-2048/3072, ECC P-256/P-384, AES-CFB)" },
	[ATTEST_EK_PUBLIC_ATTRIBUTES] = { "ek_public_attributes",
		"the EK public area is not a restricted decryption key fixed to its TPM" },
	[ATTEST_EK_KEY_MISMATCH] = { "ek_key_mismatch",
		"the EK public area sent by the device is not the key in its EK certificate" },
	[ATTEST_AK_PUBLIC_MALFORMED] = { "ak_public_malformed",
		"the AK public area is not one well-formed TPM2B_PUBLIC (truncated, oversized "
		"or garbage)" },
	[ATTEST_AK_NOT_RESTRICTED] = { "ak_not_restricted",
		"the AK is not a restricted key: it could sign data that imitates a quote" },
	[ATTEST_AK_NOT_FIXED_TPM] = { "ak_not_fixed_tpm",
		"the AK is not fixedTPM/fixedParent: it could have been imported or could be "
		"duplicated out of the TPM" },
	[ATTEST_AK_NOT_SIGNING] = { "ak_not_signing", "the AK is not a signing key" },
	[ATTEST_AK_CAN_DECRYPT] = { "ak_can_decrypt",
		"the AK is also a decryption key; an attestation key must only sign" },
	[ATTEST_AK_ATTRIBUTES] = { "ak_attributes",
		"the AK's attributes are not exactly fixedTPM|fixedParent|sensitiveDataOrigin|"
		"userWithAuth|restricted|sign" },
	[ATTEST_AK_UNSUPPORTED_ALG] = { "ak_unsupported_algorithm",
		"the AK's algorithm, scheme, curve or name algorithm is not supported (ECC "
		"P-256/P-384 ECDSA, RSA RSASSA/RSAPSS, SHA-256/SHA-384)" },
	[ATTEST_AK_KEY_SIZE] = { "ak_key_size",
		"the AK's RSA key size is not 2048 or 3072 bits" },
	[ATTEST_SESSION_EXPIRED] = { "session_expired",
		"the enrollment session expired before the device answered; start again" },
	[ATTEST_SESSION_USED] = { "session_used",
		"the enrollment session was already used (replay or retry); start again with "
		"a new challenge" },
	[ATTEST_CREDENTIAL_NOT_ACTIVATED] = { "credential_not_activated",
		"the device returned no secret: its TPM could not activate the credential, so "
		"the AK and the EK are not in the same TPM" },
	[ATTEST_SECRET_MISMATCH] = { "secret_mismatch",
		"the secret the device returned is not the one in the credential: the AK is not "
		"in the TPM that owns the EK" },
	[ATTEST_QUOTE_MALFORMED] = { "quote_malformed",
		"the quote is not one well-formed TPM2B_ATTEST/TPMS_ATTEST (truncated, "
		"oversized or garbage)" },
	[ATTEST_QUOTE_MAGIC] = { "quote_not_tpm_generated",
		"the attestation structure does not carry TPM_GENERATED_VALUE: it was not "
		"produced by a TPM" },
	[ATTEST_QUOTE_TYPE] = { "quote_wrong_type",
		"the attestation structure is not a quote (TPM_ST_ATTEST_QUOTE)" },
	[ATTEST_SIGNATURE_MALFORMED] = { "signature_malformed",
		"the quote signature is not one well-formed TPMT_SIGNATURE" },
	[ATTEST_SIGNATURE_SCHEME] = { "signature_scheme_mismatch",
		"the quote signature's scheme or hash does not fit the AK" },
	[ATTEST_SIGNATURE_INVALID] = { "signature_invalid",
		"the quote signature does not verify with the AK: the quote was altered or "
		"signed by another key" },
	[ATTEST_QUOTE_QUALIFYING_DATA] = { "quote_qualifying_data_mismatch",
		"the quote's qualifying data is not SHA-256(nonce || WireGuard key) of the "
		"values the device sent with it" },
	[ATTEST_QUOTE_NONCE_MISMATCH] = { "quote_nonce_mismatch",
		"the quote answers another challenge's nonce (stale or replayed quote)" },
	[ATTEST_QUOTE_WG_KEY_MISMATCH] = { "quote_wg_key_mismatch",
		"the quote names a different WireGuard public key from the one in the challenge" },
	[ATTEST_PCR_VALUES_MALFORMED] = { "pcr_values_malformed",
		"the PCR values are not a TPML_PCR_SELECTION followed by TPML_DIGESTs with one "
		"digest of the right size per selected PCR" },
	[ATTEST_PCR_SELECTION_MISMATCH] = { "pcr_selection_mismatch",
		"the PCR selection sent with the values is not the one the quote covers" },
	[ATTEST_PCR_DIGEST_MISMATCH] = { "pcr_digest_mismatch",
		"the reported PCR values do not hash to the quote's PCR digest: they were "
		"edited after the quote" },
	[ATTEST_PCR_POLICY_NOT_QUOTED] = { "pcr_policy_not_quoted",
		"a PCR required by the tenant's policy is not in the quote" },
	[ATTEST_PCR_POLICY_MISMATCH] = { "pcr_policy_mismatch",
		"a quoted PCR value differs from the tenant's policy: the device booted "
		"different software or configuration" },
};

const char *
attest_reason_code(enum attest_reason reason)
{
	if ((unsigned)reason >= ATTEST_REASON_COUNT || reasons[reason].code == NULL)
		return "unknown";
	return reasons[reason].code;
}

const char *
attest_reason_message(enum attest_reason reason)
{
	if ((unsigned)reason >= ATTEST_REASON_COUNT || reasons[reason].message == NULL)
		return "unknown reason";
	return reasons[reason].message;
}
