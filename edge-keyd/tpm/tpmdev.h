/* SPDX-License-Identifier: MIT */
#ifndef EDGE_KEYD_TPM_TPMDEV_H
#define EDGE_KEYD_TPM_TPMDEV_H

/*
 * Device-side TPM work for edge-keyd (tss2-esys through tss2-tctildr, so any TCTI string
 * works: "device:/dev/tpmrm0", "swtpm:host=127.0.0.1,port=2321", "tabrmd"). Key custody
 * and the handle/session rules are in docs/tpm-device.md; the protocol in
 * docs/attestation.md.
 *
 *   provisioning (once, e.g. at the factory):  tpmdev_provision()
 *       SRK (ECC P-256 storage primary; persistent at 0x81000001 if the owner allows),
 *       AK (restricted signing key under the SRK, blob in the state directory),
 *       WireGuard key (TPM RNG mixed with getrandom(), sealed under the SRK, optional PCR
 *       policy, blob in the state directory)
 *   enrollment:  tpmdev_ek() + tpmdev_ak_public() + tpmdev_wg_public()  -> challenge
 *                tpmdev_activate() + tpmdev_quote() [+ tpmdev_certify()] -> complete
 *   tunnel:      tpmdev_unseal() into locked memory, hand it to WireGuard, wipe it
 *   rotation:    tpmdev_rotate_prepare() -> enroll with the staged public key ->
 *                tpmdev_rotate_commit() (or tpmdev_rotate_abort())
 *
 * Outputs are the marshalled TPM structures enrolld/attest takes (see attest.h): EK and AK
 * public areas as TPM2B_PUBLIC, the quote as TPM2B_ATTEST, its signature as TPMT_SIGNATURE,
 * the PCR values blob of tpm2_pcr_values_marshal().
 *
 * Every function flushes every transient object and session it created, on every path
 * (swtpm has 3 object slots and 3 session slots and no resource manager), and wipes every
 * internal copy of a secret. Nothing here logs above debug: functions return 0 or a
 * negative errno, and tpmdev_last_error() says which TPM command failed and why.
 *
 * Errors: -EACCES the TPM refused an authorization (PCR policy not satisfied, wrong
 * auth, EK policy); -EKEYEXPIRED the PCRs of the sealed key's policy no longer have the
 * values it was sealed to (checked before unsealing); -EKEYREJECTED a blob does not belong to this TPM (integrity check
 * failed: another TPM, a cleared owner hierarchy), or the unsealed key does not match its
 * public key; -ENOENT a file, NV index or persistent handle is missing; -EPERM a state
 * file is readable by group or others; -EBADMSG a malformed input or state file;
 * -ENOSPC the TPM is out of object/session slots or NV space; -EAGAIN the TPM asked to
 * retry; -ECONNREFUSED / -EIO the TCTI failed; -EIO any other TPM error.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

#include "common/tpm2.h"
#include "common/tpm2_templates.h"

#define TPMDEV_KEY_LEN 32	/* WireGuard (X25519) key */
#define TPMDEV_SECRET_LEN 32	/* the credential secret of attest.h (ATTEST_SECRET_LEN) */

struct tpmdev;

/*
 * Connect to the TPM through @tcti (a tss2-tctildr configuration string; NULL = the
 * library's default). The TPM must already be started (firmware does it; swtpm with
 * --flags startup-clear). Free with tpmdev_close(). For a "device:PATH" TCTI a device that
 * cannot be opened gives open(2)'s errno (-EACCES, -ENOENT, -EBUSY), not tss2's -EIO.
 */
int tpmdev_open(struct tpmdev **ret_dev, const char *tcti);
void tpmdev_close(struct tpmdev *dev);

/* "Esys_Unseal: tpm:session(1):a policy check failed" for the last failure, "" if none. */
const char *tpmdev_last_error(const struct tpmdev *dev);

/* ---- identity: EK, AK ------------------------------------------------------------------ */

/* tpmdev_ek() flags */
#define TPMDEV_EK_CREATE 0x1u	/* ignore a persistent EK, always CreatePrimary (tests) */
#define TPMDEV_EK_NO_CERT 0x2u	/* do not read the certificate (ret_cert may be NULL) */

/*
 * The EK of @type and its certificate. The EK is the persistent one at the TCG handle if
 * there is one made from the TCG template, otherwise it is created from the template with
 * CreatePrimary (transient, flushed before returning). The certificate is read from the
 * type's NV index, TCG header and padding stripped (tpm2_ek_cert_strip).
 * *ret_pub (TPM2B_PUBLIC) and *ret_cert (DER) are malloc()ed: the caller free()s them.
 * -ENOENT if the certificate NV index does not exist.
 */
int tpmdev_ek(struct tpmdev *dev, enum tpm2_ek_type type, unsigned flags, uint8_t **ret_pub,
	      size_t *ret_pub_len, uint8_t **ret_cert, size_t *ret_cert_len);

/* The AK's public area (TPM2B_PUBLIC) from the state directory, no TPM needed; free(). */
int tpmdev_ak_public(const char *state_dir, uint8_t **ret_pub, size_t *ret_len);

/* ---- provisioning and the sealed WireGuard key ----------------------------------------- */

#define TPMDEV_PROV_NO_PERSIST 0x1u /* keep the SRK transient (never EvictControl) */
#define TPMDEV_PROV_REPLACE 0x2u    /* replace state files that no longer load: a new identity */

struct tpmdev_provision_opts {
	TPMI_ALG_PUBLIC ak_type;		/* TPM2_ALG_ECC (also when 0) or TPM2_ALG_RSA */
	const TPML_PCR_SELECTION *pcr_policy;	/* NULL or empty: no PCR policy */
	unsigned flags;				/* TPMDEV_PROV_* */
};

/*
 * Provision the device in @state_dir (created 0700 if missing): SRK (persistent at
 * TPM2_SRK_HANDLE unless the owner refuses or TPMDEV_PROV_NO_PERSIST; an existing
 * persistent key there is used only if it was made from our template), the AK, and the
 * WireGuard key: 32 bytes = SHA-256(label || TPM2_GetRandom(32) || getrandom(32)),
 * clamped for X25519, sealed under the SRK (parameter-encrypted session) with a PolicyPCR
 * over the current values of @opts->pcr_policy if given. Files (mode 0600, written
 * atomically): ak.tpm, wg.sealed (see docs/tpm-device.md).
 *
 * Idempotent: what exists and loads is kept (no second identity), what is missing is
 * made. A state file that exists but does not load (another TPM, cleared TPM, corrupt)
 * is an error (-EKEYREJECTED / -EBADMSG) unless TPMDEV_PROV_REPLACE. Returns 1 if
 * everything already existed, 0 if something was created.
 */
int tpmdev_provision(struct tpmdev *dev, const char *state_dir,
		     const struct tpmdev_provision_opts *opts);

/* The WireGuard public key stored next to the sealed blob (no TPM needed). */
int tpmdev_wg_public(const char *state_dir, uint8_t ret_pub[static TPMDEV_KEY_LEN]);

/*
 * Unseal the WireGuard private key into @key (the caller's locked memory, secmem). Uses a
 * salted session with response encryption, so the key crosses the TPM interface encrypted;
 * with a PCR policy, a PolicyPCR session, after checking that the PCRs still have the
 * values the key was sealed to (-EKEYEXPIRED otherwise, see tpmdev_wg_policy_check()).
 * Checks that the key's X25519 public key equals the stored one (-EKEYREJECTED). @key is written only on success and wiped on failure.
 */
int tpmdev_unseal(struct tpmdev *dev, const char *state_dir, uint8_t key[static TPMDEV_KEY_LEN]);

/*
 * Would the sealed WireGuard key unseal with the PCRs as they are now? Reads the PCRs of
 * its policy and compares the PolicyPCR digest of their values with the key's authPolicy;
 * unseals nothing, so `status` can ask. 0: yes, or the key has no PCR policy;
 * -EKEYEXPIRED: the PCRs no longer have the values it was sealed to (a firmware or boot
 * chain change). *@ret_sel (may be NULL) gets the key's PCR selection (count 0: none).
 */
int tpmdev_wg_policy_check(struct tpmdev *dev, const char *state_dir,
			   TPML_PCR_SELECTION *ret_sel);

/* ---- enrollment ------------------------------------------------------------------------ */

/*
 * TPM2_ActivateCredential of the enrollment challenge: @blob is the TPM2B_ID_OBJECT,
 * @seed the TPM2B_ENCRYPTED_SECRET (both marshalled, as attest_challenge_credential() and
 * attest_challenge_encrypted_seed() give them), for the AK of @state_dir and the EK of
 * @type. The EK's policy session: SHA-256 PolicySecret(endorsement) for RSA-2048 and
 * P-256; SHA-384 PolicySecret(endorsement) + PolicyOR(PolicyA, PolicyC) for P-384.
 * @secret gets the recovered secret (TPMDEV_SECRET_LEN bytes, -EBADMSG for another size).
 */
int tpmdev_activate(struct tpmdev *dev, const char *state_dir, enum tpm2_ek_type type,
		    const uint8_t *blob, size_t blob_len, const uint8_t *seed, size_t seed_len,
		    uint8_t secret[static TPMDEV_SECRET_LEN]);

/* Largest PCR values blob: a selection and 96 values in lists of 8. */
#define TPMDEV_PCRS_MAX (sizeof(TPML_PCR_SELECTION) + 12 * sizeof(TPML_DIGEST))

struct tpmdev_quote {
	uint8_t quote[sizeof(TPM2B_ATTEST)];	/* TPM2B_ATTEST */
	size_t quote_len;
	uint8_t sig[sizeof(TPMT_SIGNATURE)];	/* TPMT_SIGNATURE */
	size_t sig_len;
	uint8_t pcrs[TPMDEV_PCRS_MAX];		/* PCR values blob */
	size_t pcrs_len;
};

/*
 * TPM2_Quote with the AK of @state_dir over @sel, qualifying data SHA-256(@nonce ||
 * @wg_pub) (tpm2_qualifying_data), and the PCR values read for the blob. If the PCRs
 * change between the read and the quote (pcrUpdateCounter), it is done again (3 tries,
 * then -EAGAIN).
 */
int tpmdev_quote(struct tpmdev *dev, const char *state_dir, const uint8_t nonce[static 32],
		 const uint8_t wg_pub[static 32], const TPML_PCR_SELECTION *sel,
		 struct tpmdev_quote *ret);

struct tpmdev_certify {
	uint8_t attest[sizeof(TPM2B_ATTEST)];		/* TPM2B_ATTEST, type ATTEST_CERTIFY */
	size_t attest_len;
	uint8_t sig[sizeof(TPMT_SIGNATURE)];		/* TPMT_SIGNATURE by the AK */
	size_t sig_len;
	uint8_t sealed_public[sizeof(TPM2B_PUBLIC)];	/* the certified object's TPM2B_PUBLIC */
	size_t sealed_public_len;
};

/*
 * TPM2_Certify of the sealed WireGuard key object by the AK, qualifying data as for the
 * quote: proves the sealed object (its name: fixedTPM, its policy) lives in the AK's TPM.
 */
int tpmdev_certify(struct tpmdev *dev, const char *state_dir, const uint8_t nonce[static 32],
		   const uint8_t wg_pub[static 32], struct tpmdev_certify *ret);

/* ---- rotation -------------------------------------------------------------------------- */

/*
 * Make a new sealed WireGuard key in the staging file wg.sealed.next (same PCR selection
 * as the current key if @pcr_policy is NULL) and return its public key. If a staged key
 * exists and loads, it is kept and its public key returned (idempotent across restarts).
 * The current key stays in use until tpmdev_rotate_commit().
 */
int tpmdev_rotate_prepare(struct tpmdev *dev, const char *state_dir,
			  const TPML_PCR_SELECTION *pcr_policy, uint8_t ret_pub[static TPMDEV_KEY_LEN]);
/* The staged public key; -ENOENT if nothing is staged. */
int tpmdev_wg_public_staged(const char *state_dir, uint8_t ret_pub[static TPMDEV_KEY_LEN]);
/* Make the staged key current (one atomic rename); -ENOENT if nothing is staged. */
int tpmdev_rotate_commit(const char *state_dir);
/* Drop the staged key; 0 also if nothing was staged. */
int tpmdev_rotate_abort(const char *state_dir);

/* ---- the state directory's owner -------------------------------------------------------- */

/*
 * The file @fd, just created in @dir, gets @dir's owner and group when we are root and
 * @dir belongs to someone else. The daemon runs as its own user (_edge-keyd, owner of the
 * state directory); `edge-keyd provision`, `enroll` and `rotate` run by hand as root must
 * leave files that user can still read and replace, not root's 0600 files. 0 (also when
 * there is nothing to do) or a negative errno.
 */
int tpmdev_own_like_dir(int fd, const char *dir);

/* ---- diagnostics ----------------------------------------------------------------------- */

/*
 * Transient objects and sessions currently loaded in the TPM (all of them, not only ours):
 * tests use it to prove that every operation flushed what it made.
 */
int tpmdev_loaded_handles(struct tpmdev *dev, unsigned *ret_objects, unsigned *ret_sessions);

#endif
