/* SPDX-License-Identifier: MIT */
#ifndef COMMON_TPM2_TEMPLATES_H
#define COMMON_TPM2_TEMPLATES_H

/*
 * Key templates and policy digests, pure data + helpers (no TPM, no I/O):
 *
 *   EK   TCG EK Credential Profile 2.5 default templates: RSA-2048 (L-1) and ECC P-256 (L-2)
 *        of the low range, ECC P-384 (H-3) of the high range, with the NV index of each
 *        one's certificate and its TCG persistent handle;
 *   SRK  TCG Provisioning Guidance ECC P-256 storage primary key (owner hierarchy);
 *   AK   restricted signing key, ECC P-256 ECDSA-SHA256 or RSA-2048 RSASSA-SHA256, with the
 *        exact attributes enrolld/attest requires;
 *   seal sealed-data object (KEYEDHASH, NULL scheme) for the WireGuard private key,
 *        optionally bound to a policy digest.
 *
 * and the software policy-digest computations (TPM 2.0 Part 3, PolicyUpdate) that give the
 * EKs' authPolicy and the PCR policy of the sealed key.
 *
 * Return values: 0 or a negative errno (-EINVAL: bad argument or unsupported algorithm,
 * -ENOBUFS: a list or buffer is full). ret_* outputs are written only on success.
 */

#include <stdbool.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

enum tpm2_ek_type {
	TPM2_EK_RSA2048 = 0,
	TPM2_EK_ECC_P256,
	TPM2_EK_ECC_P384,
	TPM2_EK_TYPE_COUNT
};

struct tpm2_ek_info {
	enum tpm2_ek_type type;
	const char *name;		/* "rsa2048", "p256", "p384" (config values, logs) */
	TPM2_HANDLE nv_cert;		/* NV index of the EK certificate */
	TPM2_HANDLE persistent;		/* TCG persistent handle of the EK */
	TPMI_ALG_HASH policy_hash;	/* hash of the policy session the EK needs */
	bool policy_or;			/* high range: PolicySecret, then PolicyOR(A, C) */
};

/* The table row of @type, NULL if @type is out of range. */
const struct tpm2_ek_info *tpm2_ek_info(enum tpm2_ek_type type);

/* "rsa2048" (or "rsa"), "p256", "p384" -> type; -EINVAL for anything else. */
int tpm2_ek_type_parse(const char *s, enum tpm2_ek_type *ret_type);

/* The EK template for CreatePrimary under TPM_RH_ENDORSEMENT. */
int tpm2_ek_template(enum tpm2_ek_type type, TPM2B_PUBLIC *ret_tmpl);

/*
 * The branches of a high-range EK's PolicyOR, as the TCG EK Credential Profile 2.5 gives
 * them: PolicyA (= PolicySecret(TPM_RH_ENDORSEMENT)) and PolicyC, in the EK's nameAlg.
 * A low-range EK has no PolicyOR: ret_list->count = 0.
 */
int tpm2_ek_policy_branches(enum tpm2_ek_type type, TPML_DIGEST *ret_list);

/* TCG persistent handle of the SRK. */
#define TPM2_SRK_HANDLE 0x81000001u

/* TCG Provisioning Guidance SRK: ECC NIST P-256, AES-128-CFB, restricted decrypt, noDA. */
void tpm2_srk_template(TPM2B_PUBLIC *ret_tmpl);

/* The objectAttributes every AK has (enrolld/attest rejects any other set). */
#define TPM2_AK_ATTRIBUTES                                                                       \
	(TPMA_OBJECT_FIXEDTPM | TPMA_OBJECT_FIXEDPARENT | TPMA_OBJECT_SENSITIVEDATAORIGIN |      \
	 TPMA_OBJECT_USERWITHAUTH | TPMA_OBJECT_RESTRICTED | TPMA_OBJECT_SIGN_ENCRYPT)

/* AK template: @type TPM2_ALG_ECC (P-256, ECDSA-SHA256) or TPM2_ALG_RSA (2048, RSASSA-SHA256). */
int tpm2_ak_template(TPMI_ALG_PUBLIC type, TPM2B_PUBLIC *ret_tmpl);

/*
 * Sealed-data template: KEYEDHASH, NULL scheme, nameAlg SHA-256, fixedTPM | fixedParent |
 * noDA. Without a policy (@policy NULL or empty) also userWithAuth: the (empty) authValue
 * unseals. With a policy, userWithAuth is clear, so the USER role (Unseal) needs a policy
 * session satisfying @policy; adminWithPolicy stays clear, so the ADMIN role (Certify of
 * the object) works with the authValue. -EINVAL if @policy is not a SHA-256 digest.
 */
int tpm2_seal_template(const TPM2B_DIGEST *policy, TPM2B_PUBLIC *ret_tmpl);

/*
 * True if @pub is a key made from @tmpl: type, nameAlg, objectAttributes, authPolicy and
 * parameters equal (an RSA exponent of 0 equals 65537); the unique field is not compared.
 */
bool tpm2_public_matches_template(const TPMT_PUBLIC *pub, const TPMT_PUBLIC *tmpl);

/* ---- policy digests (software PolicyUpdate, TPM 2.0 Part 3) ---------------------------- */

/* The initial policyDigest: tpm2_hash_size(@alg) zero bytes. */
int tpm2_policy_init(TPMI_ALG_HASH alg, TPM2B_DIGEST *ret_digest);

/*
 * TPM2_PolicySecret with the entity named @auth_name (for a hierarchy: its 4-byte handle)
 * and @policy_ref (NULL = empty): d = H(d || TPM_CC_PolicySecret || name); d = H(d || ref).
 */
int tpm2_policy_secret(TPMI_ALG_HASH alg, TPM2B_DIGEST *digest, const TPM2B_NAME *auth_name,
		       const TPM2B_NONCE *policy_ref);

/* Name of a permanent handle (TPM_RH_ENDORSEMENT...): the handle, big endian. */
void tpm2_name_from_handle(TPM2_HANDLE handle, TPM2B_NAME *ret_name);

/* TPM2_PolicyOR over 2..8 branches: d = H(0...0 || TPM_CC_PolicyOR || digests). */
int tpm2_policy_or(TPMI_ALG_HASH alg, TPM2B_DIGEST *digest, const TPML_DIGEST *branches);

/*
 * TPM2_PolicyPCR over @sel whose values hash (in the session's hash @alg) to @pcr_digest
 * (tpm2_pcr_digest() of the expected values): d = H(d || TPM_CC_PolicyPCR || sel || pcrDigest).
 */
int tpm2_policy_pcr(TPMI_ALG_HASH alg, TPM2B_DIGEST *digest, const TPML_PCR_SELECTION *sel,
		    const TPM2B_DIGEST *pcr_digest);

#endif
