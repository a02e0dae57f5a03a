/* SPDX-License-Identifier: MIT */
#ifndef TESTS_BENCH_SOFTDEV_H
#define TESTS_BENCH_SOFTDEV_H

/*
 * A software TPM device for load tests: the device side of the enrollment protocol
 * (docs/api.md, docs/attestation.md) with the TPM emulated in OpenSSL, producing exactly
 * the structures a TPM would, so the server does the same work as for a real device:
 *
 *   EK    RSA-2048, ECC P-256 or P-384 from the TCG EK templates (common/tpm2_templates),
 *         with a DER certificate issued by a test CA (struct softdev_ca);
 *   AK    restricted ECC P-256 ECDSA-SHA256 signing key from tpm2_ak_template();
 *   ActivateCredential  seed decrypted with the EK (RSA-OAEP "IDENTITY\0", or ECDH +
 *         KDFe), KDFa, outer HMAC checked over the AK's name, AES-CFB;
 *   Quote TPMS_ATTEST (magic, TPM_ST_ATTEST_QUOTE, AK name, extraData, PCR selection and
 *         pcrDigest) signed by the AK; the PCR values blob as tpm2_pcr_values_marshal.
 *
 * Test code: functions return 0 or a negative errno; nothing here is constant-time.
 */

#include <stddef.h>
#include <stdint.h>

#include <openssl/evp.h>

#include "common/tpm2.h"
#include "common/tpm2_templates.h"

/* A manufacturer CA: P-256 key and self-signed certificate. */
struct softdev_ca;
int softdev_ca_new(struct softdev_ca **ret_ca);
/*
 * The CA certificate as PEM in @cert_path (the file enrolld's attestation.ek_ca_dir
 * holds) and its key in @key_path (mode 0600; not in the trust directory).
 */
int softdev_ca_save(const struct softdev_ca *ca, const char *cert_path, const char *key_path);
int softdev_ca_load(const char *cert_path, const char *key_path, struct softdev_ca **ret_ca);
void softdev_ca_free(struct softdev_ca *ca);

/*
 * RSA-2048 EKs cost ~0.3 s each to generate. A pool of @n_keys distinct moduli made from
 * pairs of fewer 1024-bit primes (k primes give k(k-1)/2 keys) makes a thousand devices in
 * seconds; each modulus, so each EK id, is still different. Thread-safe.
 */
struct softdev_rsa_pool;
int softdev_rsa_pool_new(size_t n_keys, struct softdev_rsa_pool **ret_pool);
void softdev_rsa_pool_free(struct softdev_rsa_pool *pool);

/* The PCR values (SHA-256 bank) every software device reports: fixed, for a policy. */
void softdev_pcr_value(unsigned pcr, uint8_t ret_value[32]);

struct softdev {
	enum tpm2_ek_type ek_type;
	EVP_PKEY *ek;			/* private */
	EVP_PKEY *ak;			/* private */
	TPMT_PUBLIC ek_public;
	TPMT_PUBLIC ak_public;
	TPM2B_NAME ak_name;
	uint8_t *ek_cert;		/* DER */
	size_t ek_cert_len;
	uint8_t ek_pub[sizeof(TPM2B_PUBLIC)];	/* marshalled TPM2B_PUBLIC */
	size_t ek_pub_len;
	uint8_t ak_pub[sizeof(TPM2B_PUBLIC)];
	size_t ak_pub_len;
	uint8_t wg_priv[32];
	uint8_t wg_pub[32];
};

/* A new device with an EK of @type (from @pool for RSA, or generated if @pool is NULL). */
int softdev_new(const struct softdev_ca *ca, enum tpm2_ek_type type,
		struct softdev_rsa_pool *pool, struct softdev **ret_dev);
void softdev_free(struct softdev *d);

/*
 * TPM2_ActivateCredential(AK, EK) in software: the 32-byte secret of the credential
 * @blob (TPM2B_ID_OBJECT) and @seed (TPM2B_ENCRYPTED_SECRET). -EACCES if the integrity
 * HMAC does not match (a TPM's TPM_RC_INTEGRITY), -EBADMSG for malformed input.
 */
int softdev_activate(const struct softdev *d, const uint8_t *blob, size_t blob_len,
		     const uint8_t *seed, size_t seed_len, uint8_t ret_secret[32]);

struct softdev_quote {
	uint8_t quote[sizeof(TPM2B_ATTEST)];	/* TPM2B_ATTEST */
	size_t quote_len;
	uint8_t sig[sizeof(TPMT_SIGNATURE)];	/* TPMT_SIGNATURE */
	size_t sig_len;
	uint8_t pcrs[4096];			/* PCR values blob */
	size_t pcrs_len;
};

/*
 * TPM2_Quote with the AK over @sel (SHA-256 bank; an empty selection quotes nothing),
 * qualifying data SHA-256(@nonce || @wg_pub), and the PCR values read with it.
 */
int softdev_quote(const struct softdev *d, const uint8_t nonce[32], const uint8_t wg_pub[32],
		  const TPML_PCR_SELECTION *sel, struct softdev_quote *ret_quote);

#endif
