/* SPDX-License-Identifier: MIT */
#ifndef COMMON_TPM2_H
#define COMMON_TPM2_H

/*
 * TPM 2.0 structure helpers shared by the device side (edge-keyd/tpm) and the server side
 * (enrolld/attest). Pure functions: no TPM, no I/O, no logging above debug.
 *
 * Wire formats. Everything the device and the server exchange is the TPM's own marshalled
 * structures (tss2-mu, big endian), so both sides agree by construction:
 *
 *   EK public, AK public      TPM2B_PUBLIC            (Esys_ReadPublic / Esys_CreatePrimary out)
 *   credential blob           TPM2B_ID_OBJECT         (ActivateCredential credentialBlob)
 *   encrypted seed            TPM2B_ENCRYPTED_SECRET  (ActivateCredential secret)
 *   quote                     TPM2B_ATTEST            (Esys_Quote "quoted")
 *   quote signature           TPMT_SIGNATURE          (Esys_Quote "signature")
 *   PCR values                "PCR values blob", see struct tpm2_pcr_values below:
 *                             TPML_PCR_SELECTION (what was quoted) followed by one or more
 *                             TPML_DIGEST (the PCR_Read results, in order), nothing else.
 *   EK certificate            DER X.509, possibly with the TCG NV header (see
 *                             tpm2_ek_cert_strip)
 *
 * Every unmarshal function here takes a whole buffer and rejects both truncated input and
 * trailing bytes: a structure received from the network is exactly one structure.
 *
 * Return values: 0 or a negative errno. -EBADMSG: malformed input (truncated, trailing
 * bytes, a size field out of range); -EINVAL: a bad argument or an unsupported algorithm;
 * -ENOBUFS: the output buffer is too small; -EIO: OpenSSL failed. Output parameters named
 * ret_* are written only on success.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <tss2/tss2_tpm2_types.h>

/* Lengths of the two values hashed into the quote's qualifying data. */
#define TPM2_NONCE_LEN 32
#define TPM2_WG_KEY_LEN 32

/* Largest digest of any hash we support (SHA-512). */
#define TPM2_MAX_DIGEST_LEN 64

/* Largest marshalled size of any structure in the table above (TPM2B_PUBLIC is the largest). */
#define TPM2_MAX_MARSHALLED (sizeof(TPM2B_PUBLIC) + 16)

/* ---- marshalling ------------------------------------------------------------------------- */

/*
 * Unmarshal exactly one structure from @buf[0..@len). Returns 0, or -EBADMSG if @buf is
 * truncated, has trailing bytes, or tss2-mu rejects a field (size or selector out of range).
 */
int tpm2_unmarshal_tpm2b_public(const uint8_t *buf, size_t len, TPM2B_PUBLIC *ret);
int tpm2_unmarshal_tpmt_public(const uint8_t *buf, size_t len, TPMT_PUBLIC *ret);
int tpm2_unmarshal_tpm2b_attest(const uint8_t *buf, size_t len, TPM2B_ATTEST *ret);
int tpm2_unmarshal_tpms_attest(const uint8_t *buf, size_t len, TPMS_ATTEST *ret);
int tpm2_unmarshal_tpmt_signature(const uint8_t *buf, size_t len, TPMT_SIGNATURE *ret);
int tpm2_unmarshal_tpm2b_id_object(const uint8_t *buf, size_t len, TPM2B_ID_OBJECT *ret);
int tpm2_unmarshal_tpm2b_encrypted_secret(const uint8_t *buf, size_t len,
					  TPM2B_ENCRYPTED_SECRET *ret);
int tpm2_unmarshal_tpm2b_digest(const uint8_t *buf, size_t len, TPM2B_DIGEST *ret);
int tpm2_unmarshal_tpml_pcr_selection(const uint8_t *buf, size_t len, TPML_PCR_SELECTION *ret);
int tpm2_unmarshal_tpml_digest(const uint8_t *buf, size_t len, TPML_DIGEST *ret);

/*
 * Marshal into @buf of @cap bytes; *@ret_len = bytes written. -ENOBUFS if it does not fit,
 * -EINVAL if tss2-mu rejects the structure (e.g. a size field larger than its buffer).
 */
int tpm2_marshal_tpm2b_public(const TPM2B_PUBLIC *in, uint8_t *buf, size_t cap, size_t *ret_len);
int tpm2_marshal_tpmt_public(const TPMT_PUBLIC *in, uint8_t *buf, size_t cap, size_t *ret_len);
int tpm2_marshal_tpm2b_attest(const TPM2B_ATTEST *in, uint8_t *buf, size_t cap, size_t *ret_len);
int tpm2_marshal_tpms_attest(const TPMS_ATTEST *in, uint8_t *buf, size_t cap, size_t *ret_len);
int tpm2_marshal_tpmt_signature(const TPMT_SIGNATURE *in, uint8_t *buf, size_t cap,
				size_t *ret_len);
int tpm2_marshal_tpm2b_id_object(const TPM2B_ID_OBJECT *in, uint8_t *buf, size_t cap,
				 size_t *ret_len);
int tpm2_marshal_tpm2b_encrypted_secret(const TPM2B_ENCRYPTED_SECRET *in, uint8_t *buf,
					size_t cap, size_t *ret_len);
int tpm2_marshal_tpm2b_digest(const TPM2B_DIGEST *in, uint8_t *buf, size_t cap, size_t *ret_len);
int tpm2_marshal_tpml_pcr_selection(const TPML_PCR_SELECTION *in, uint8_t *buf, size_t cap,
				    size_t *ret_len);
int tpm2_marshal_tpml_digest(const TPML_DIGEST *in, uint8_t *buf, size_t cap, size_t *ret_len);

/* ---- hashing ----------------------------------------------------------------------------- */

/* Digest size of @alg in bytes (SHA-1, SHA-256, SHA-384, SHA-512), 0 if unsupported. */
size_t tpm2_hash_size(TPMI_ALG_HASH alg);

/* One part of a message hashed by tpm2_hashv; parts with len 0 may have p == NULL. */
struct tpm2_buf {
	const void *p;
	size_t len;
};

/*
 * H_alg(part[0] || ... || part[n-1]) into @out (at least tpm2_hash_size(@alg) bytes).
 * Returns the digest size, -EINVAL for an unsupported @alg, -EIO if OpenSSL fails.
 */
int tpm2_hashv(TPMI_ALG_HASH alg, const struct tpm2_buf *parts, size_t n, uint8_t *out);
int tpm2_hash(TPMI_ALG_HASH alg, const void *data, size_t len, uint8_t *out);

/* ---- names and qualifying data ------------------------------------------------------------ */

/*
 * The TPM name of an object: nameAlg (2 bytes, big endian) || H_nameAlg(marshalled
 * TPMT_PUBLIC). This is what ActivateCredential binds a credential to and what
 * tpm2_readpublic prints as "name". -EINVAL if nameAlg is not a supported hash.
 */
int tpm2_name_from_public(const TPMT_PUBLIC *pub, TPM2B_NAME *ret_name);
/* Same, from a marshalled TPM2B_PUBLIC (-EBADMSG if malformed). */
int tpm2_name_from_tpm2b_public(const uint8_t *buf, size_t len, TPM2B_NAME *ret_name);

/*
 * Qualifying data of the enrollment quote: SHA-256(nonce || WireGuard public key), as the
 * TPM2B_DATA Esys_Quote takes and the extraData the server expects in TPMS_ATTEST.
 */
int tpm2_qualifying_data(const uint8_t nonce[static TPM2_NONCE_LEN],
			 const uint8_t wg_pub[static TPM2_WG_KEY_LEN], TPM2B_DATA *ret_qd);

/* ---- PCR selections and values ---------------------------------------------------------- */

/*
 * Build a single-bank selection of the PCRs whose bits are set in @mask (bit i = PCR i,
 * PCRs 0..23), sizeofSelect 3 as every PC-client TPM uses.
 */
int tpm2_pcr_selection_from_mask(TPMI_ALG_HASH bank, uint32_t mask, TPML_PCR_SELECTION *ret_sel);

/*
 * Parse "sha256:0,1,7" (bank name sha1/sha256/sha384/sha512, then a comma list of PCR
 * indexes 0..23; "sha256:" alone is an empty selection) into a single-bank selection.
 * Several banks: "sha256:0,7+sha1:0". -EINVAL on a syntax error, unknown bank, index > 23
 * or a repeated bank.
 */
int tpm2_pcr_selection_parse(const char *spec, TPML_PCR_SELECTION *ret_sel);

/* Number of PCRs selected across all banks; -EBADMSG if a bank's sizeofSelect is > 4. */
int tpm2_pcr_selection_count(const TPML_PCR_SELECTION *sel);

/* True if PCR @pcr of bank @bank is selected. */
bool tpm2_pcr_selection_has(const TPML_PCR_SELECTION *sel, TPMI_ALG_HASH bank, unsigned pcr);

/* True if both selections select exactly the same PCRs in the same bank order. */
bool tpm2_pcr_selection_equal(const TPML_PCR_SELECTION *a, const TPML_PCR_SELECTION *b);

/*
 * PCR values that go with a selection. The values are in the TPM's order: banks in the
 * order of @sel, PCR indexes ascending within each bank, which is the order in which
 * TPM2_PCR_Read returns them and in which TPM2_Quote hashes them. A TPM returns at most 8
 * digests per PCR_Read: append each TPML_DIGEST with tpm2_pcr_values_add().
 *
 * Marshalled form ("PCR values blob"): TPML_PCR_SELECTION, then the values as one or more
 * TPML_DIGEST (at most 8 digests each), to the end of the buffer.
 */
#define TPM2_PCR_VALUES_MAX 96 /* 24 PCRs x 4 banks */
struct tpm2_pcr_values {
	TPML_PCR_SELECTION sel;
	uint32_t count;
	TPM2B_DIGEST value[TPM2_PCR_VALUES_MAX];
};

/* Append the digests of @list; -ENOBUFS past TPM2_PCR_VALUES_MAX. */
int tpm2_pcr_values_add(struct tpm2_pcr_values *v, const TPML_DIGEST *list);
int tpm2_pcr_values_marshal(const struct tpm2_pcr_values *v, uint8_t *buf, size_t cap,
			    size_t *ret_len);
/* Also checks that the number of values equals the number of selected PCRs and that each
 * value's size is its bank's digest size (-EBADMSG otherwise). */
int tpm2_pcr_values_unmarshal(const uint8_t *buf, size_t len, struct tpm2_pcr_values *ret);

/*
 * Value of PCR @pcr in bank @bank, or NULL if it is not in @v (or @v is inconsistent).
 */
const TPM2B_DIGEST *tpm2_pcr_values_get(const struct tpm2_pcr_values *v, TPMI_ALG_HASH bank,
					unsigned pcr);

/*
 * The pcrDigest of a quote: H_@alg(value[0] || ... || value[count-1]), @alg being the hash
 * of the quote's signing scheme. -EBADMSG if @v's count or digest sizes do not match its
 * selection.
 */
int tpm2_pcr_digest(TPMI_ALG_HASH alg, const struct tpm2_pcr_values *v, TPM2B_DIGEST *ret_digest);

/* ---- EK certificates -------------------------------------------------------------------- */

/*
 * Find the DER certificate inside an EK certificate NV index's contents: drop the TCG
 * header some vendors prepend (0x10 0x01, then a 2-byte big-endian length of what follows)
 * and anything after the end of the outer DER SEQUENCE (NV indexes are often padded).
 * *@ret_der points into @buf (no copy). -EBADMSG if no complete DER SEQUENCE is found.
 */
int tpm2_ek_cert_strip(const uint8_t *buf, size_t len, const uint8_t **ret_der,
		       size_t *ret_der_len);

/* ---- key derivation (TPM 2.0 Part 1 section 11.4.10) ------------------------------------- */

/*
 * KDFa (SP 800-108 counter mode, HMAC-@alg): @bits of key from @key, @label (the
 * terminating NUL is included as the spec requires; pass it without), @ctx_u and @ctx_v.
 * @out gets (bits + 7) / 8 bytes. -EINVAL for an unsupported hash or bits == 0.
 */
int tpm2_kdfa(TPMI_ALG_HASH alg, const uint8_t *key, size_t key_len, const char *label,
	      const uint8_t *ctx_u, size_t ctx_u_len, const uint8_t *ctx_v, size_t ctx_v_len,
	      uint32_t bits, uint8_t *out);

/*
 * KDFe (SP 800-56A concatenation KDF, H-@alg): @bits of key from shared secret @z (the
 * x coordinate), @label (NUL included, pass it without), @party_u and @party_v (the x
 * coordinates of the ephemeral key and of the static key). @out gets (bits + 7) / 8 bytes.
 */
int tpm2_kdfe(TPMI_ALG_HASH alg, const uint8_t *z, size_t z_len, const char *label,
	      const uint8_t *party_u, size_t party_u_len, const uint8_t *party_v,
	      size_t party_v_len, uint32_t bits, uint8_t *out);

/* Printable name of a TPM hash ("sha256"), "unknown" if not supported. */
const char *tpm2_hash_name(TPMI_ALG_HASH alg);

#endif
