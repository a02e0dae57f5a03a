/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_X509_H
#define ENROLLD_X509_H

/*
 * Device certificates (the TPM-less enrollment path, POST /v1/peer): parsing what a client
 * presented on the TLS connection, verifying it against a tenant's device CAs with OpenSSL
 * (chain, validity, extendedKeyUsage clientAuth when present), and the device identity a
 * certificate stands for. Pure functions of their inputs (no store, no HTTP), never log.
 * OpenSSL errors are converted here: callers get a negative errno and an x509_reason.
 */

#include <stddef.h>
#include <stdint.h>

#define X509_SERIAL_MAX 32 /* RFC 5280 allows 20 octets; some CAs overshoot a little */
#define X509_FP_LEN 32     /* SHA-256 of a certificate's DER */
#define X509_ID_LEN 32     /* the device identity hash */
#define X509_CHAIN_MAX 8   /* certificates a client may present */
#define X509_DER_MAX 8192  /* bytes of one certificate */

enum x509_reason {
	X509_REASON_OK = 0,
	X509_REASON_NO_CERT,  /* the client presented none */
	X509_REASON_MALFORMED,       /* not DER X.509, or too many / too large */
	X509_REASON_UNTRUSTED,       /* does not chain to the CAs */
	X509_REASON_EXPIRED,         /* chains, but notAfter is past (leaf or a CA) */
	X509_REASON_NOT_YET_VALID,   /* chains, but notBefore is ahead */
	X509_REASON_BAD_USAGE,       /* extendedKeyUsage without clientAuth, or a CA certificate */
	X509_REASON_REVOKED,         /* listed in its issuer's CRL (leaf or a CA) */
	X509_REASON_CRL_EXPIRED,     /* an issuer in the chain has a CRL past its nextUpdate */
	X509_REASON_CRL_INVALID,     /* an issuer's CRL cannot be used (signature, time, scope) */
};

/* A stable machine code for the API ("untrusted_certificate", ...). */
const char *x509_reason_code(enum x509_reason reason);

/* ---- a set of trusted device CAs ---- */
struct x509_trust;

int x509_trust_new(struct x509_trust **ret);
void x509_trust_free(struct x509_trust *t);
/* Add one CA certificate (DER). -EBADMSG if it does not parse. */
int x509_trust_add_der(struct x509_trust *t, const uint8_t *der, size_t len);
/*
 * Revocation lists for the CAs (crl.h has the policy: a CA with a CRL is checked, fail
 * closed if its CRL cannot be used; a CA without one is not). -EBADMSG if it does not
 * parse. x509_trust_add_crls() shares the CRLs of a set (the CRL directory's).
 */
struct crl_set;
int x509_trust_add_crl_der(struct x509_trust *t, const uint8_t *der, size_t len);
int x509_trust_add_crls(struct x509_trust *t, const struct crl_set *crls);
/* How many CAs it holds. */
size_t x509_trust_count(const struct x509_trust *t);

/*
 * Parse one CA certificate given as PEM text (the admin API's input): exactly one
 * CERTIFICATE block, a CA (basicConstraints CA:TRUE). On success *ret_der (malloc()ed,
 * caller frees) is its DER, @ret_fp its SHA-256, @ret_subject its subject (one line,
 * RFC 2253, truncated to @subject_len). -EBADMSG not PEM/X.509, -EINVAL not a CA,
 * -E2BIG larger than X509_DER_MAX.
 */
int x509_ca_parse_pem(const char *pem, size_t len, uint8_t **ret_der, size_t *ret_len,
	uint8_t ret_fp[static X509_FP_LEN], char *ret_subject, size_t subject_len);

/*
 * A serial number in hex ("0a1b", "0A:1B", optional "0x"; leading zero octets dropped) as
 * its big-endian octets. -EINVAL if not hex, empty or longer than X509_SERIAL_MAX octets.
 */
int x509_serial_parse(const char *text, uint8_t ret[static X509_SERIAL_MAX], size_t *ret_len);
/* Octets to lower-case hex (out: 2 * len + 1). */
void x509_serial_format(const uint8_t *serial, size_t len, char *out);

/* ---- the certificate a client presented ---- */
struct x509_peer;

/*
 * Parse the chain a client presented (leaf first, then any intermediates, DER each).
 * -EBADMSG (X509_REASON_MALFORMED) if one does not parse, -E2BIG if too many or too large,
 * -ENOENT if @n is 0.
 */
int x509_peer_new(struct x509_peer **ret, const uint8_t *const *ders, const size_t *lens,
	size_t n);
void x509_peer_free(struct x509_peer *p);

/*
 * Verify @p against @t at unix time @now: the chain, validity periods, the client-auth
 * purpose (extendedKeyUsage clientAuth if the extension is present; a CA leaf is refused),
 * revocation where @t has a CRL of an issuer.
 * Returns 0 or -EACCES with *ret_reason saying why.
 */
int x509_peer_verify(const struct x509_peer *p, const struct x509_trust *t, int64_t now,
	enum x509_reason *ret_reason);

/*
 * The device identity of the leaf: SHA-256("edgeward-x509-id" || issuer DER || serial
 * octets || SHA-256(SubjectPublicKeyInfo DER)), each part length-prefixed. The same
 * certificate always gives the same identity; another certificate never does.
 */
int x509_peer_identity(const struct x509_peer *p, uint8_t ret[static X509_ID_LEN]);
/* The leaf's serial as octets (leading zeros dropped). */
int x509_peer_serial(const struct x509_peer *p, uint8_t ret[static X509_SERIAL_MAX],
	size_t *ret_len);
/* The leaf's subject, one line (RFC 2253), for logs. */
void x509_peer_subject(const struct x509_peer *p, char *out, size_t len);

#endif
