// SPDX-License-Identifier: MIT
/*
 * Certificate revocation lists (crl.h has the policy): loading, the admin API's parsing,
 * and hooking a set into an OpenSSL chain verification so that "no CRL" means "not
 * checked" only for issuers that have none.
 */
#include <dirent.h>
#include <errno.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "enrolld/attest/crl.h"

struct crl_set {
	atomic_uint refs;
	STACK_OF(X509_CRL) *crls;
};

int
crl_set_new(struct crl_set **ret)
{
	struct crl_set *s = calloc(1, sizeof(*s));

	if (s == NULL)
		return -ENOMEM;
	s->crls = sk_X509_CRL_new_null();
	if (s->crls == NULL) {
		free(s);
		return -ENOMEM;
	}
	atomic_init(&s->refs, 1);
	*ret = s;
	return 0;
}

void
crl_set_free(struct crl_set *s)
{
	if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
		return;
	sk_X509_CRL_pop_free(s->crls, X509_CRL_free);
	free(s);
}

struct crl_set *
crl_set_ref(struct crl_set *s)
{
	if (s != NULL)
		atomic_fetch_add(&s->refs, 1);
	return s;
}

size_t
crl_set_count(const struct crl_set *s)
{
	return s ? (size_t)sk_X509_CRL_num(s->crls) : 0;
}

/* Takes @crl on success. */
static int
set_push(struct crl_set *s, X509_CRL *crl)
{
	return sk_X509_CRL_push(s->crls, crl) > 0 ? 0 : -ENOMEM;
}

static X509_CRL *
der_to_crl(const uint8_t *der, size_t len)
{
	const unsigned char *p = der;
	X509_CRL *crl;

	if (len == 0 || len > CRL_DER_MAX)
		return NULL;
	crl = d2i_X509_CRL(NULL, &p, (long)len);
	if (crl != NULL && p != der + len) {
		X509_CRL_free(crl);
		crl = NULL;
	}
	ERR_clear_error();
	return crl;
}

int
crl_set_add_der(struct crl_set *s, const uint8_t *der, size_t len)
{
	X509_CRL *crl = der_to_crl(der, len);

	if (crl == NULL)
		return -EBADMSG;
	if (set_push(s, crl) < 0) {
		X509_CRL_free(crl);
		return -ENOMEM;
	}
	return 0;
}

int
crl_set_add_all(struct crl_set *dst, const struct crl_set *src)
{
	for (int i = 0; src != NULL && i < sk_X509_CRL_num(src->crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(src->crls, i);

		if (X509_CRL_up_ref(crl) != 1)
			return -ENOMEM;
		if (set_push(dst, crl) < 0) {
			X509_CRL_free(crl);
			return -ENOMEM;
		}
	}
	return 0;
}

/* One file: PEM CRLs (one or more), else one DER CRL. */
static int
load_file(struct crl_set *s, const char *path)
{
	X509_CRL *crl;
	BIO *bio;
	int n = 0, r = 0;

	bio = BIO_new_file(path, "rb");
	if (bio == NULL) {
		ERR_clear_error();
		return -EIO;
	}
	while ((crl = PEM_read_bio_X509_CRL(bio, NULL, NULL, NULL)) != NULL) {
		if (set_push(s, crl) < 0) {
			X509_CRL_free(crl);
			r = -ENOMEM;
			goto out;
		}
		n++;
	}
	ERR_clear_error();
	if (n == 0) {
		(void)BIO_reset(bio);
		crl = d2i_X509_CRL_bio(bio, NULL);
		if (crl == NULL) {
			r = -EBADMSG;
			goto out;
		}
		if (set_push(s, crl) < 0) {
			X509_CRL_free(crl);
			r = -ENOMEM;
		}
	}
out:
	ERR_clear_error();
	BIO_free(bio);
	return r;
}

int
crl_set_load_dir(const char *dir, struct crl_set **ret, char *why, size_t why_len)
{
	struct crl_set *s = NULL;
	struct dirent *de;
	DIR *d;
	int r;

	d = opendir(dir);
	if (d == NULL) {
		r = -errno;
		snprintf(why, why_len, "'%s': %s", dir, strerror(-r));
		return r;
	}
	r = crl_set_new(&s);
	if (r < 0)
		goto out;
	while ((de = readdir(d)) != NULL) {
		char path[4096];
		struct stat st;

		if (de->d_name[0] == '.')
			continue;
		if (snprintf(path, sizeof(path), "%s/%s", dir, de->d_name) >= (int)sizeof(path)) {
			r = -ENAMETOOLONG;
			snprintf(why, why_len, "'%s/%s': name too long", dir, de->d_name);
			goto out;
		}
		if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
			continue;
		r = load_file(s, path);
		if (r < 0) {
			snprintf(why, why_len, "'%s': %s", path,
				r == -EBADMSG ? "not a CRL (PEM X509 CRL blocks or one DER CRL)" :
						strerror(-r));
			goto out;
		}
	}
	*ret = s;
	s = NULL;
	r = 0;
out:
	closedir(d);
	crl_set_free(s);
	return r;
}

static void
name_line(const X509_NAME *name, char *out, size_t len)
{
	BIO *b;
	int n;

	if (len == 0)
		return;
	out[0] = '\0';
	b = BIO_new(BIO_s_mem());
	if (b == NULL)
		return;
	if (X509_NAME_print_ex(b, name, 0, XN_FLAG_RFC2253 & ~ASN1_STRFLGS_ESC_MSB) >= 0) {
		n = BIO_read(b, out, (int)len - 1);
		out[n > 0 ? n : 0] = '\0';
	}
	BIO_free(b);
	ERR_clear_error();
}

size_t
crl_set_expired(const struct crl_set *s, time_t now, char *issuer, size_t issuer_len)
{
	size_t n = 0;

	for (int i = 0; s != NULL && i < sk_X509_CRL_num(s->crls); i++) {
		X509_CRL *crl = sk_X509_CRL_value(s->crls, i);
		const ASN1_TIME *next = X509_CRL_get0_nextUpdate(crl);

		if (next == NULL || X509_cmp_time(next, &now) > 0)
			continue;
		if (n++ == 0)
			name_line(X509_CRL_get_issuer(crl), issuer, issuer_len);
	}
	ERR_clear_error();
	return n;
}

void
crl_set_apply(const struct crl_set *s, X509_STORE_CTX *ctx)
{
	if (crl_set_count(s) == 0)
		return;
	/* the stack stays the set's: set0 does not take it */
	X509_STORE_CTX_set0_crls(ctx, s->crls);
	X509_STORE_CTX_set_flags(ctx, X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
	X509_STORE_CTX_set_app_data(ctx, (void *)s);
}

static bool
has_issuer(const struct crl_set *s, const X509_NAME *issuer)
{
	for (int i = 0; i < sk_X509_CRL_num(s->crls); i++)
		if (X509_NAME_cmp(X509_CRL_get_issuer(sk_X509_CRL_value(s->crls, i)), issuer) == 0)
			return true;
	return false;
}

int
crl_verify_cb(int ok, X509_STORE_CTX *ctx)
{
	const struct crl_set *s;
	X509 *cur;

	if (ok || X509_STORE_CTX_get_error(ctx) != X509_V_ERR_UNABLE_TO_GET_CRL)
		return ok;
	s = X509_STORE_CTX_get_app_data(ctx);
	cur = X509_STORE_CTX_get_current_cert(ctx);
	if (s == NULL || cur == NULL || has_issuer(s, X509_get_issuer_name(cur)))
		return ok; /* there is a CRL for this issuer and OpenSSL could not use it */
	X509_STORE_CTX_set_error(ctx, X509_V_OK);
	return 1;
}

bool
crl_error_unusable(int err)
{
	switch (err) {
	case X509_V_ERR_UNABLE_TO_GET_CRL:
	case X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
	case X509_V_ERR_CRL_NOT_YET_VALID:
	case X509_V_ERR_CRL_SIGNATURE_FAILURE:
	case X509_V_ERR_UNABLE_TO_DECRYPT_CRL_SIGNATURE:
	case X509_V_ERR_ERROR_IN_CRL_LAST_UPDATE_FIELD:
	case X509_V_ERR_ERROR_IN_CRL_NEXT_UPDATE_FIELD:
	case X509_V_ERR_KEYUSAGE_NO_CRL_SIGN:
	case X509_V_ERR_DIFFERENT_CRL_SCOPE:
	case X509_V_ERR_UNHANDLED_CRITICAL_CRL_EXTENSION:
		return true;
	default:
		return false;
	}
}

static int64_t
asn1_time_unix(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || ASN1_TIME_to_tm(t, &tm) != 1)
		return 0;
	return (int64_t)timegm(&tm);
}

int
crl_info_der(const uint8_t *der, size_t len, struct crl_info *info)
{
	unsigned char *name = NULL;
	ASN1_INTEGER *num = NULL;
	X509_CRL *crl;
	BIGNUM *bn = NULL;
	unsigned int hlen = 0;
	int n, r = -EBADMSG;

	if (len > CRL_DER_MAX)
		return -E2BIG;
	crl = der_to_crl(der, len);
	if (crl == NULL)
		return -EBADMSG;
	memset(info, 0, sizeof(*info));
	n = i2d_X509_NAME(X509_CRL_get_issuer(crl), &name);
	if (n <= 0 || !EVP_Digest(name, (size_t)n, info->issuer_hash, &hlen, EVP_sha256(), NULL))
		goto out;
	name_line(X509_CRL_get_issuer(crl), info->issuer, sizeof(info->issuer));
	info->this_update = asn1_time_unix(X509_CRL_get0_lastUpdate(crl));
	info->next_update = asn1_time_unix(X509_CRL_get0_nextUpdate(crl));
	if (info->this_update == 0)
		goto out;
	num = X509_CRL_get_ext_d2i(crl, NID_crl_number, NULL, NULL);
	if (num != NULL) {
		bn = ASN1_INTEGER_to_BN(num, NULL);
		if (bn == NULL || BN_is_negative(bn) || BN_num_bytes(bn) > CRL_NUMBER_MAX)
			goto out;
		info->number_len = (size_t)BN_bn2bin(bn, info->number);
		if (info->number_len == 0) {
			info->number[0] = 0;
			info->number_len = 1;
		}
	}
	info->n_revoked = (size_t)sk_X509_REVOKED_num(X509_CRL_get_REVOKED(crl));
	r = 0;
out:
	BN_free(bn);
	ASN1_INTEGER_free(num);
	OPENSSL_free(name);
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}

int
crl_parse_pem(const char *pem, size_t len, uint8_t **ret_der, size_t *ret_len,
	struct crl_info *info)
{
	X509_CRL *crl = NULL, *extra = NULL;
	unsigned char *der = NULL;
	BIO *b;
	int n, r = -EBADMSG;

	if (len == 0 || len > 2 * CRL_DER_MAX)
		return len ? -E2BIG : -EBADMSG;
	b = BIO_new_mem_buf(pem, (int)len);
	if (b == NULL)
		return -ENOMEM;
	crl = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
	if (crl == NULL)
		goto out;
	/* exactly one: a second one would silently not be used */
	extra = PEM_read_bio_X509_CRL(b, NULL, NULL, NULL);
	if (extra != NULL)
		goto out;
	n = i2d_X509_CRL(crl, &der);
	if (n <= 0)
		goto out;
	r = crl_info_der(der, (size_t)n, info);
	if (r < 0)
		goto out;
	*ret_der = malloc((size_t)n);
	if (*ret_der == NULL) {
		r = -ENOMEM;
		goto out;
	}
	memcpy(*ret_der, der, (size_t)n);
	*ret_len = (size_t)n;
	r = 0;
out:
	OPENSSL_free(der);
	X509_CRL_free(extra);
	X509_CRL_free(crl);
	BIO_free(b);
	ERR_clear_error();
	return r;
}

int
crl_check_issuer(const uint8_t *der, size_t len, const uint8_t *ca_der, size_t ca_len)
{
	const unsigned char *p = ca_der;
	X509_CRL *crl = der_to_crl(der, len);
	X509 *ca = NULL;
	int r = -EBADMSG;

	if (crl == NULL)
		return -EBADMSG;
	ca = d2i_X509(NULL, &p, (long)ca_len);
	if (ca == NULL || p != ca_der + ca_len)
		goto out;
	r = X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(ca)) == 0 &&
			X509_CRL_verify(crl, X509_get0_pubkey(ca)) == 1 ?
		0 :
		-EACCES;
out:
	X509_free(ca);
	X509_CRL_free(crl);
	ERR_clear_error();
	return r;
}
