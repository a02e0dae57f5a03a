/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_CRL_H
#define ENROLLD_CRL_H

/*
 * Certificate revocation lists for the two chain checks of enrolld: EK certificates to a
 * manufacturer CA (ek.c) and device certificates to a tenant's device CA (x509.c). The
 * policy (docs/security.md):
 *
 * - a CRL is used for the certificates of its issuer (matched by name, its signature
 *   verified with the issuer's key by OpenSSL during the chain check); every certificate
 *   of the chain is checked (X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL), but only
 *   where a CRL of its issuer exists: an issuer without a CRL is not checked;
 * - where one exists and it cannot be used (expired, not yet valid, bad signature, wrong
 *   scope), the check fails for that issuer: fail closed, reason crl_expired / crl_invalid;
 * - a file that does not parse makes the whole load fail (the caller keeps its old set).
 *
 * A set is filled once, then shared read-only by reference (crl_set_ref/crl_set_free).
 * Nothing here logs above debug.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/x509.h>

#define CRL_DER_MAX (1 << 20) /* bytes of one CRL */
#define CRL_NUMBER_MAX 20     /* octets of a crlNumber (RFC 5280: at most 20) */

struct crl_set;

int crl_set_new(struct crl_set **ret);
/* Drop a reference; the last one frees. NULL is a no-op. */
void crl_set_free(struct crl_set *s);
struct crl_set *crl_set_ref(struct crl_set *s);
size_t crl_set_count(const struct crl_set *s);

/* Add one DER CRL (trailing bytes refused). -EBADMSG if it does not parse. */
int crl_set_add_der(struct crl_set *s, const uint8_t *der, size_t len);
/* Add every CRL of @src to @dst (shared, not copied). */
int crl_set_add_all(struct crl_set *dst, const struct crl_set *src);

/*
 * Every regular file of @dir whose name does not start with '.': one or more PEM
 * "X509 CRL" blocks, or one DER CRL. -EBADMSG with @why naming the file if one holds no
 * CRL or garbage; -errno if the directory cannot be read. An empty directory is an empty
 * set.
 */
int crl_set_load_dir(const char *dir, struct crl_set **ret, char *why, size_t why_len);

/*
 * How many CRLs of @s are past their nextUpdate at @now; the issuer of the first one goes
 * to @issuer (one line, RFC 2253) for the log.
 */
size_t crl_set_expired(const struct crl_set *s, time_t now, char *issuer, size_t issuer_len);

/*
 * Make @ctx (initialised, not yet verified) check revocation against @s: the CRLs, the
 * flags and crl_verify_cb's knowledge of which issuers have a CRL. A no-op for an empty
 * or NULL set. @s must outlive the verification.
 */
void crl_set_apply(const struct crl_set *s, X509_STORE_CTX *ctx);
/*
 * The verify callback part: "no CRL found" is accepted for an issuer that has no CRL in
 * the applied set, and is a failure for one that has (its CRL could not be used).
 * Returns @ok otherwise. Call it first from a verify callback of one's own.
 */
int crl_verify_cb(int ok, X509_STORE_CTX *ctx);

/*
 * Is @err (X509_V_ERR_*) a CRL of the chain that could not be used (not found where one
 * exists, signature, validity other than expiry, scope, key usage)? Expiry
 * (X509_V_ERR_CRL_HAS_EXPIRED) and revocation (X509_V_ERR_CERT_REVOKED) are not included:
 * callers report them on their own.
 */
bool crl_error_unusable(int err);

/* What is known about one CRL (the admin API's input). */
struct crl_info {
	uint8_t issuer_hash[32]; /* SHA-256 of the issuer Name's DER */
	char issuer[128];        /* one line, RFC 2253, truncated */
	int64_t this_update;
	int64_t next_update; /* 0: none */
	uint8_t number[CRL_NUMBER_MAX]; /* crlNumber, big endian; number_len 0 = none */
	size_t number_len;
	size_t n_revoked;
};

/*
 * Parse exactly one PEM "X509 CRL" block. On success *ret_der (malloc()ed, caller frees)
 * is its DER and @info describes it. -EBADMSG not one PEM CRL, -E2BIG over CRL_DER_MAX.
 */
int crl_parse_pem(const char *pem, size_t len, uint8_t **ret_der, size_t *ret_len,
	struct crl_info *info);
/* The same for DER. */
int crl_info_der(const uint8_t *der, size_t len, struct crl_info *info);
/*
 * Is @der's signature made by @ca_der's key, and is @ca_der the CRL's issuer (name)?
 * 0 yes, -EACCES no, -EBADMSG if either does not parse.
 */
int crl_check_issuer(const uint8_t *der, size_t len, const uint8_t *ca_der, size_t ca_len);

#endif
