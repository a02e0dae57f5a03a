// SPDX-License-Identifier: MIT
/*
 * The attestation catalog: real device data from swtpm (through tpm2-tools, an independent
 * implementation of the device side) checked by enrolld/attest. Driven by
 * tests/integration/attest_negative.sh, which prepares the TPM and the files and gives a
 * device script ($DEV) that runs tpm2-tools:
 *
 *   $DEV activate <ek: rsa|p384|p256> <ak.ctx> <credential file> <secret out>
 *   $DEV quote <ak.ctx> <qualifying data hex> <TPMS_ATTEST out> <TPMT_SIGNATURE out> <pcrs out>
 *   $DEV certify <ak.ctx> <qualifying data hex> <TPMS_ATTEST out> <TPMT_SIGNATURE out>
 *
 * Subcommands:
 *   attest_negative run                  every case, positive and negative; exit 0 if all
 *                                        behave, 1 otherwise; one line per case
 *   attest_negative makecred EK AK SECRET OUT
 *                                        credential file (tpm2-tools format) for
 *                                        tpm2_activatecredential
 *   attest_negative name PUB             print the name of a TPM2B_PUBLIC file in hex
 *
 * Files read from $WORK (see the script): ekcert_rsa.der ekcert_p384.der ek_rsa.pub
 * ek_p384.pub ek_p256.pub ek_other.pub ak_ecc.pub/.ctx ak_rsa.pub/.ctx ak2_ecc.pub/.ctx
 * ak_norestrict.pub ak_nofixed.pub; $TRUST is the directory of the swtpm CA certificates.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <time.h>

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/tpm2.h"
#include "enrolld/attest/attest.h"
#include "enrolld/attest/attest_int.h"

#define PCR_SPEC "sha256:0,1,2,3,7"
#define BUF_MAX 8192

struct blob {
	uint8_t b[BUF_MAX];
	size_t n;
};

struct device {
	const char *name;
	const char *ek_kind; /* rsa, p384, p256: which EK the device script uses */
	struct blob ek_cert;
	struct blob ek_pub;
	struct blob ak_pub;
	char ak_ctx[512];
};

static const char *work, *dev_script;
static char tmpdir[256];
static int failures, checks;

static void
die(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "attest_negative: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(2);
}

static int
read_path(const char *path, struct blob *out)
{
	FILE *f = fopen(path, "rb");

	if (f == NULL)
		return -errno;
	out->n = fread(out->b, 1, sizeof(out->b), f);
	fclose(f);
	return 0;
}

static void
load(const char *name, struct blob *out)
{
	char path[1024];

	snprintf(path, sizeof(path), "%s/%s", work, name);
	if (read_path(path, out) < 0)
		die("cannot read %s", path);
}

static void
write_path(const char *path, const void *p, size_t n)
{
	FILE *f = fopen(path, "wb");

	if (f == NULL || fwrite(p, 1, n, f) != n)
		die("cannot write %s", path);
	fclose(f);
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
	for (size_t i = 0; i < n; i++)
		sprintf(out + 2 * i, "%02x", p[i]);
	out[2 * n] = '\0';
}

static int
run(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int rc;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	rc = system(cmd);
	return rc == -1 ? -1 : WEXITSTATUS(rc);
}

/* Record one check: the call must return @want_ok ? 0 : -EACCES with reason @want. */
static void
check(const char *name, int ret, const enum attest_reason *gotp, enum attest_reason want)
{
	/* @gotp, not a value: the argument list also holds the call that writes it */
	enum attest_reason got = *gotp;
	bool ok = want == ATTEST_OK ? (ret == 0 && got == ATTEST_OK)
				    : (ret == -EACCES && got == want);

	checks++;
	if (!ok)
		failures++;
	printf("%s  %-44s want %-34s got %s (%d)\n", ok ? "ok  " : "FAIL", name,
	       attest_reason_code(want), attest_reason_code(got), ret);
	fflush(stdout);
}

/* tpm2-tools credential file: magic, version, TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET. */
static void
write_credfile(const char *path, const uint8_t *blob, size_t blen, const uint8_t *seed,
	       size_t slen)
{
	static const uint8_t hdr[8] = { 0xba, 0xdc, 0xc0, 0xde, 0, 0, 0, 1 };
	uint8_t buf[BUF_MAX];

	memcpy(buf, hdr, 8);
	memcpy(buf + 8, blob, blen);
	memcpy(buf + 8 + blen, seed, slen);
	write_path(path, buf, 8 + blen + slen);
}

/* Device side of the challenge: ActivateCredential with @ek_kind's EK. 0 or -1. */
static int
device_activate(const char *ek_kind, const char *ak_ctx, const struct attest_challenge *c,
		struct blob *secret)
{
	char cred[512], out[512];
	const uint8_t *blob, *seed;
	size_t blen, slen;

	attest_challenge_credential(c, &blob, &blen);
	attest_challenge_encrypted_seed(c, &seed, &slen);
	snprintf(cred, sizeof(cred), "%s/cred.bin", tmpdir);
	snprintf(out, sizeof(out), "%s/secret.bin", tmpdir);
	unlink(out);
	write_credfile(cred, blob, blen, seed, slen);
	if (run("%s activate %s %s %s %s", dev_script, ek_kind, ak_ctx, cred, out) != 0)
		return -1;
	return read_path(out, secret) < 0 ? -1 : 0;
}

/* Wrap TPMS_ATTEST bytes (what tpm2_quote -m writes) into a marshalled TPM2B_ATTEST. */
static void
wrap_attest(const struct blob *raw, struct blob *out)
{
	out->b[0] = (uint8_t)(raw->n >> 8);
	out->b[1] = (uint8_t)raw->n;
	memcpy(out->b + 2, raw->b, raw->n);
	out->n = raw->n + 2;
}

/* PCR values blob from tpm2_pcrread -o output (the raw digests, in order). */
static void
pcrs_blob(const struct blob *raw, struct blob *out)
{
	struct tpm2_pcr_values *v = calloc(1, sizeof(*v));

	if (v == NULL || tpm2_pcr_selection_parse(PCR_SPEC, &v->sel) < 0)
		die("pcr selection");
	for (size_t off = 0; off + 32 <= raw->n; off += 32) {
		v->value[v->count].size = 32;
		memcpy(v->value[v->count].buffer, raw->b + off, 32);
		v->count++;
	}
	if (tpm2_pcr_values_marshal(v, out->b, sizeof(out->b), &out->n) < 0)
		die("pcr values marshal (%u values)", v->count);
	free(v);
}

struct answer {
	struct blob secret, quote, sig, pcrs;
};

/* Device side of complete: quote over PCR_SPEC with qualifying data H(nonce || wg). */
static void
device_quote(const char *ak_ctx, const uint8_t nonce[32], const uint8_t wg[32], struct answer *a)
{
	char qdhex[80], m[512], s[512], p[512];
	struct blob raw;
	TPM2B_DATA qd;

	if (tpm2_qualifying_data(nonce, wg, &qd) < 0)
		die("qualifying data");
	hex(qd.buffer, qd.size, qdhex);
	snprintf(m, sizeof(m), "%s/q.msg", tmpdir);
	snprintf(s, sizeof(s), "%s/q.sig", tmpdir);
	snprintf(p, sizeof(p), "%s/q.pcrs", tmpdir);
	if (run("%s quote %s %s %s %s %s", dev_script, ak_ctx, qdhex, m, s, p) != 0)
		die("device quote failed");
	if (read_path(m, &raw) < 0 || read_path(s, &a->sig) < 0)
		die("quote output");
	wrap_attest(&raw, &a->quote);
	if (read_path(p, &raw) < 0)
		die("pcr output");
	pcrs_blob(&raw, &a->pcrs);
}

static struct attest_response
response(const struct answer *a)
{
	struct attest_response r = {
		.secret = a->secret.b, .secret_len = a->secret.n,
		.quote = a->quote.b, .quote_len = a->quote.n,
		.signature = a->sig.b, .signature_len = a->sig.n,
		.pcrs = a->pcrs.b, .pcrs_len = a->pcrs.n,
	};
	return r;
}

/* A new session for @d plus an honest device answer (activation and quote). */
static struct attest_challenge *
session(const struct device *d, const uint8_t wg[32], time_t now, struct answer *a)
{
	struct attest_challenge *c = NULL;
	enum attest_reason why;
	int r;

	r = attest_challenge_new(d->ek_pub.b, d->ek_pub.n, d->ak_pub.b, d->ak_pub.n, wg, now, 60,
				 &c, &why);
	if (r < 0)
		die("%s: challenge: %s", d->name, attest_reason_code(why));
	memset(a, 0, sizeof(*a));
	if (device_activate(d->ek_kind, d->ak_ctx, c, &a->secret) < 0)
		die("%s: activate failed", d->name);
	device_quote(d->ak_ctx, attest_challenge_nonce(c), wg, a);
	return c;
}

/* ---- certificates minted for the test -------------------------------------------------- */

static EVP_PKEY *
ca_key_new(void)
{
	EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "prime256v1");

	if (k == NULL)
		die("keygen");
	return k;
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer ? issuer : x, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || X509_add_ext(x, ext, -1) != 1)
		die("extension %d", nid);
	X509_EXTENSION_free(ext);
}

/*
 * Certificate for @key issued by @issuer (self-signed if NULL), valid from now + @nb to
 * now + @na seconds.
 */
static X509 *
mint(EVP_PKEY *key, const char *cn, X509 *issuer, EVP_PKEY *issuer_key, long nb, long na,
     bool ca, const char *ku)
{
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	time_t now = time(NULL);
	uint8_t serial[8];

	if (x == NULL || n == NULL)
		die("x509");
	RAND_bytes(serial, sizeof(serial));
	serial[0] &= 0x7f;
	X509_set_version(x, 2);
	ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), *(uint64_t *)serial >> 1);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, issuer ? X509_get_subject_name(issuer) : n);
	X509_time_adj_ex(X509_getm_notBefore(x), 0, nb, &now);
	X509_time_adj_ex(X509_getm_notAfter(x), 0, na, &now);
	X509_set_pubkey(x, key);
	add_ext(x, issuer, NID_basic_constraints, ca ? "critical,CA:TRUE" : "critical,CA:FALSE");
	add_ext(x, issuer, NID_key_usage, ku);
	if (ca)
		add_ext(x, issuer, NID_subject_key_identifier, "hash");
	if (X509_sign(x, issuer_key, EVP_sha256()) <= 0)
		die("sign");
	X509_NAME_free(n);
	return x;
}

static void
der_of(X509 *x, struct blob *out)
{
	unsigned char *p = out->b;
	int n = i2d_X509(x, NULL);

	if (n <= 0 || (size_t)n > sizeof(out->b) || i2d_X509(x, &p) != n)
		die("i2d");
	out->n = (size_t)n;
}

static EVP_PKEY *
ek_pkey(const struct blob *ek_pub)
{
	TPM2B_PUBLIC p;
	EVP_PKEY *k = NULL;

	if (tpm2_unmarshal_tpm2b_public(ek_pub->b, ek_pub->n, &p) < 0 ||
	    attest_pkey_from_public(&p.publicArea, &k) < 0)
		die("ek pkey");
	return k;
}

/* ---- the catalog ----------------------------------------------------------------------- */

static void
mutate_cases(const char *what, const struct device *d, int field, enum attest_reason want,
	     const uint8_t wg[32], time_t now)
{
	static const char *const kinds[] = { "truncated", "oversized", "garbage" };

	for (int k = 0; k < 3; k++) {
		struct answer *a = calloc(1, sizeof(*a));
		struct attest_challenge *c = session(d, wg, now, a);
		struct attest_response r;
		struct blob *b = field == 0 ? &a->quote : field == 1 ? &a->sig : &a->pcrs;
		enum attest_reason why;
		char name[128];

		if (k == 0)
			b->n -= 3;
		else if (k == 1)
			b->b[b->n++] = 0;
		else
			RAND_bytes(b->b, (int)b->n);
		r = response(a);
		snprintf(name, sizeof(name), "%s %s", what, kinds[k]);
		check(name, attest_complete(c, &r, NULL, now, &why), &why, want);
		attest_challenge_free(c);
		free(a);
	}
}

static void
struct_cases(const char *what, const struct blob *good, int (*fn)(const struct blob *, void *,
								     enum attest_reason *),
	     void *arg, enum attest_reason want, bool oversize_ok)
{
	struct blob *b = malloc(sizeof(*b));
	enum attest_reason why;
	char name[128];

	*b = *good;
	b->n -= 3;
	snprintf(name, sizeof(name), "%s truncated", what);
	check(name, fn(b, arg, &why), &why, want);

	*b = *good;
	memset(b->b + b->n, 0, 16);
	b->n += 16;
	snprintf(name, sizeof(name), "%s oversized%s", what, oversize_ok ? " (tolerated)" : "");
	check(name, fn(b, arg, &why), &why, oversize_ok ? ATTEST_OK : want);

	*b = *good;
	RAND_bytes(b->b, (int)b->n);
	snprintf(name, sizeof(name), "%s garbage", what);
	check(name, fn(b, arg, &why), &why, want);
	free(b);
}

struct ek_arg {
	const struct attest_trust *trust;
	const struct device *d;
	bool mutate_cert;
};

static int
verify_ek_fn(const struct blob *b, void *arg, enum attest_reason *why)
{
	const struct ek_arg *e = arg;
	const struct blob *cert = e->mutate_cert ? b : &e->d->ek_cert;
	const struct blob *pub = e->mutate_cert ? &e->d->ek_pub : b;

	return attest_verify_ek(e->trust, cert->b, cert->n, pub->b, pub->n, time(NULL), NULL, why);
}

static int
check_ak_fn(const struct blob *b, void *arg, enum attest_reason *why)
{
	return attest_check_ak(b->b, b->n, NULL, why);
}

static void
load_device(struct device *d, const char *name, const char *ek_kind, const char *cert,
	    const char *ek_pub, const char *ak)
{
	char f[256];

	memset(d, 0, sizeof(*d));
	d->name = name;
	d->ek_kind = ek_kind;
	if (cert != NULL)
		load(cert, &d->ek_cert);
	load(ek_pub, &d->ek_pub);
	snprintf(f, sizeof(f), "%s.pub", ak);
	load(f, &d->ak_pub);
	snprintf(d->ak_ctx, sizeof(d->ak_ctx), "%s/%s.ctx", work, ak);
}

/* Full positive flow for @d: EK verified, challenge, activation, quote, complete. */
static void
positive(const char *name, const struct attest_trust *trust, const struct device *d,
	 const uint8_t wg[32], time_t now)
{
	struct answer *a = calloc(1, sizeof(*a));
	struct attest_challenge *c;
	struct attest_response r;
	struct tpm2_pcr_values *pol = calloc(1, sizeof(*pol));
	enum attest_reason why;
	char n2[160];
	int ret;

	ret = attest_verify_ek(trust, d->ek_cert.b, d->ek_cert.n, d->ek_pub.b, d->ek_pub.n, now,
			       NULL, &why);
	snprintf(n2, sizeof(n2), "%s: EK certificate", name);
	check(n2, ret, &why, ATTEST_OK);
	c = session(d, wg, now, a);
	r = response(a);
	/* the policy: exactly the values the device reports, as an operator would pin them */
	if (tpm2_pcr_values_unmarshal(a->pcrs.b, a->pcrs.n, pol) < 0)
		die("policy");
	snprintf(n2, sizeof(n2), "%s: enrollment with PCR policy", name);
	check(n2, attest_complete(c, &r, pol, now + 5, &why), &why, ATTEST_OK);
	snprintf(n2, sizeof(n2), "%s: same session again", name);
	check(n2, attest_complete(c, &r, pol, now + 6, &why), &why, ATTEST_SESSION_USED);
	attest_challenge_free(c);
	free(pol);
	free(a);
}

static int
cmd_run(void)
{
	struct device rsa, p384, p256, rsa_rsaak, other;
	struct attest_trust *trust = NULL, *trust2 = NULL;
	uint8_t wg[32], wg_other[32], nonce_other[32];
	time_t now = time(NULL);
	enum attest_reason why;
	char trustdir2[300], path[400];
	struct answer *a = calloc(1, sizeof(*a)), *a2 = calloc(1, sizeof(*a2));
	struct attest_challenge *c;
	struct attest_response r;
	struct blob *tmp = malloc(sizeof(*tmp));
	EVP_PKEY *ca_key, *rogue_key;
	X509 *ca, *rogue, *x;
	struct ek_arg ea;
	int ret;

	work = getenv("WORK");
	dev_script = getenv("DEV");
	if (work == NULL || dev_script == NULL || getenv("TRUST") == NULL)
		die("WORK, DEV and TRUST must be set");
	snprintf(tmpdir, sizeof(tmpdir), "%s/tmp", work);
	mkdir(tmpdir, 0700);
	RAND_bytes(wg, sizeof(wg));
	RAND_bytes(wg_other, sizeof(wg_other));
	RAND_bytes(nonce_other, sizeof(nonce_other));

	if (attest_trust_load(getenv("TRUST"), &trust) < 0)
		die("trust %s", getenv("TRUST"));

	/* a CA of our own, trusted in a second trust directory next to the swtpm CA */
	ca_key = ca_key_new();
	ca = mint(ca_key, "attest-test CA", NULL, ca_key, -3600, 86400 * 365, true,
		  "critical,keyCertSign,cRLSign");
	rogue_key = ca_key_new();
	rogue = mint(rogue_key, "rogue CA", NULL, rogue_key, -3600, 86400 * 365, true,
		     "critical,keyCertSign,cRLSign");
	snprintf(trustdir2, sizeof(trustdir2), "%s/trust2", work);
	mkdir(trustdir2, 0700);
	if (run("cp %s/* %s/", getenv("TRUST"), trustdir2) != 0)
		die("copy trust");
	snprintf(path, sizeof(path), "%s/test-ca.pem", trustdir2);
	{
		FILE *f = fopen(path, "w");

		if (f == NULL || PEM_write_X509(f, ca) != 1)
			die("write CA");
		fclose(f);
	}
	if (attest_trust_load(trustdir2, &trust2) < 0)
		die("trust2");

	load_device(&rsa, "RSA EK", "rsa", "ekcert_rsa.der", "ek_rsa.pub", "ak_ecc");
	load_device(&rsa_rsaak, "RSA EK, RSA AK", "rsa", "ekcert_rsa.der", "ek_rsa.pub", "ak_rsa");
	load_device(&p384, "P-384 EK", "p384", "ekcert_p384.der", "ek_p384.pub", "ak_ecc");
	load_device(&p256, "P-256 EK", "p256", NULL, "ek_p256.pub", "ak_ecc");
	load_device(&other, "other TPM", "rsa", NULL, "ek_other.pub", "ak_ecc");
	{
		/* swtpm_setup makes no P-256 EK certificate: our trusted test CA issues one */
		EVP_PKEY *k = ek_pkey(&p256.ek_pub);

		x = mint(k, "P-256 EK", ca, ca_key, -60, 86400, false, "critical,keyAgreement");
		der_of(x, &p256.ek_cert);
		X509_free(x);
		EVP_PKEY_free(k);
	}

	/* ---- positive: each EK type end to end, both AK types */
	positive("RSA EK + ECC AK", trust, &rsa, wg, now);
	positive("RSA EK + RSA AK", trust, &rsa_rsaak, wg, now);
	positive("P-384 EK + ECC AK", trust, &p384, wg, now);
	positive("P-256 EK + ECC AK", trust2, &p256, wg, now);

	/* lenient where vendors deviate: TCG NV header and trailing padding */
	tmp->b[0] = 0x10;
	tmp->b[1] = 0x01;
	tmp->b[2] = (uint8_t)(rsa.ek_cert.n >> 8);
	tmp->b[3] = (uint8_t)rsa.ek_cert.n;
	memcpy(tmp->b + 4, rsa.ek_cert.b, rsa.ek_cert.n);
	memset(tmp->b + 4 + rsa.ek_cert.n, 0xff, 100);
	ret = attest_verify_ek(trust, tmp->b, rsa.ek_cert.n + 104, rsa.ek_pub.b, rsa.ek_pub.n, now,
			       NULL, &why);
	check("EK cert with TCG header and NV padding", ret, &why, ATTEST_OK);

	/* ---- EK certificate */
	{
		EVP_PKEY *k = ek_pkey(&rsa.ek_pub);
		struct blob *cb = malloc(sizeof(*cb));

		x = mint(k, "EK", rogue, rogue_key, -60, 86400, false, "critical,keyEncipherment");
		der_of(x, cb);
		X509_free(x);
		ret = attest_verify_ek(trust2, cb->b, cb->n, rsa.ek_pub.b, rsa.ek_pub.n, now, NULL,
				       &why);
		check("EK cert from an untrusted CA", ret, &why, ATTEST_EK_CERT_UNTRUSTED);

		x = mint(k, "EK", ca, ca_key, -86400 * 30, -86400, false,
			 "critical,keyEncipherment");
		der_of(x, cb);
		X509_free(x);
		ret = attest_verify_ek(trust2, cb->b, cb->n, rsa.ek_pub.b, rsa.ek_pub.n, now, NULL,
				       &why);
		check("expired EK certificate", ret, &why, ATTEST_EK_CERT_EXPIRED);

		x = mint(k, "EK", ca, ca_key, 86400, 86400 * 30, false, "critical,keyEncipherment");
		der_of(x, cb);
		X509_free(x);
		ret = attest_verify_ek(trust2, cb->b, cb->n, rsa.ek_pub.b, rsa.ek_pub.n, now, NULL,
				       &why);
		check("EK certificate not yet valid", ret, &why, ATTEST_EK_CERT_NOT_YET_VALID);

		x = mint(k, "EK", ca, ca_key, -60, 86400, false, "critical,digitalSignature");
		der_of(x, cb);
		X509_free(x);
		ret = attest_verify_ek(trust2, cb->b, cb->n, rsa.ek_pub.b, rsa.ek_pub.n, now, NULL,
				       &why);
		check("EK certificate for signing only", ret, &why, ATTEST_EK_CERT_KEY_USAGE);

		*cb = rsa.ek_cert;
		cb->b[cb->n - 10] ^= 0x01; /* inside the signature value */
		ret = attest_verify_ek(trust, cb->b, cb->n, rsa.ek_pub.b, rsa.ek_pub.n, now, NULL,
				       &why);
		check("EK certificate signature altered", ret, &why, ATTEST_EK_CERT_BAD_SIGNATURE);
		free(cb);
		EVP_PKEY_free(k);
	}
	ret = attest_verify_ek(trust, rsa.ek_cert.b, rsa.ek_cert.n, other.ek_pub.b, other.ek_pub.n,
			       now, NULL, &why);
	check("EK public (other TPM) not the cert's key", ret, &why, ATTEST_EK_KEY_MISMATCH);
	ret = attest_verify_ek(trust, p384.ek_cert.b, p384.ek_cert.n, rsa.ek_pub.b, rsa.ek_pub.n,
			       now, NULL, &why);
	check("EK public (RSA) for a P-384 EK cert", ret, &why, ATTEST_EK_KEY_MISMATCH);
	ret = attest_verify_ek(trust, rsa.ek_cert.b, rsa.ek_cert.n, rsa.ak_pub.b, rsa.ak_pub.n, now,
			       NULL, &why);
	check("AK public area sent as the EK", ret, &why, ATTEST_EK_PUBLIC_ATTRIBUTES);

	ea = (struct ek_arg){ trust, &rsa, true };
	struct_cases("EK certificate", &rsa.ek_cert, verify_ek_fn, &ea, ATTEST_EK_CERT_MALFORMED,
		     true);
	ea.mutate_cert = false;
	struct_cases("EK public area", &rsa.ek_pub, verify_ek_fn, &ea, ATTEST_EK_PUBLIC_MALFORMED,
		     false);

	/* ---- AK */
	load("ak_norestrict.pub", tmp);
	ret = attest_check_ak(tmp->b, tmp->n, NULL, &why);
	check("AK without restricted", ret, &why, ATTEST_AK_NOT_RESTRICTED);
	ret = attest_challenge_new(rsa.ek_pub.b, rsa.ek_pub.n, tmp->b, tmp->n, wg, now, 60, &c,
				   &why);
	check("challenge for an AK without restricted", ret, &why, ATTEST_AK_NOT_RESTRICTED);
	load("ak_nofixed.pub", tmp);
	ret = attest_check_ak(tmp->b, tmp->n, NULL, &why);
	check("AK without fixedTPM", ret, &why, ATTEST_AK_NOT_FIXED_TPM);
	struct_cases("AK public area", &rsa.ak_pub, check_ak_fn, NULL, ATTEST_AK_PUBLIC_MALFORMED,
		     false);

	/* ---- credential and session */
	{
		/* the client presents another TPM's EK: its own TPM cannot activate */
		struct attest_challenge *c2 = NULL;
		int act;

		ret = attest_challenge_new(other.ek_pub.b, other.ek_pub.n, rsa.ak_pub.b,
					   rsa.ak_pub.n, wg, now, 60, &c2, &why);
		if (ret < 0)
			die("challenge other: %s", attest_reason_code(why));
		memset(a, 0, sizeof(*a));
		act = device_activate("rsa", rsa.ak_ctx, c2, &a->secret);
		checks++;
		if (act == 0)
			failures++;
		printf("%s  %-44s (the TPM must refuse: %s)\n", act != 0 ? "ok  " : "FAIL",
		       "activate a credential for another TPM's EK",
		       act != 0 ? "refused" : "ACTIVATED");
		device_quote(rsa.ak_ctx, attest_challenge_nonce(c2), wg, a);
		a->secret.n = 0;
		r = response(a);
		check("credential made for another TPM's EK", attest_complete(c2, &r, NULL, now, &why),
		      &why, ATTEST_CREDENTIAL_NOT_ACTIVATED);
		attest_challenge_free(c2);
	}

	c = session(&rsa, wg, now, a);
	a->secret.b[0] ^= 0x80;
	r = response(a);
	check("wrong secret", attest_complete(c, &r, NULL, now, &why), &why, ATTEST_SECRET_MISMATCH);
	a->secret.b[0] ^= 0x80;
	check("session reused after a failure", attest_complete(c, &r, NULL, now, &why), &why,
	      ATTEST_SESSION_USED);
	attest_challenge_free(c);

	c = session(&rsa, wg, now, a);
	r = response(a);
	check("session expired", attest_complete(c, &r, NULL, now + 60, &why), &why,
	      ATTEST_SESSION_EXPIRED);
	attest_challenge_free(c);

	/* ---- quote */
	c = session(&rsa, wg, now, a);
	device_quote(rsa.ak_ctx, nonce_other, wg, a); /* answers another nonce */
	r = response(a);
	r.nonce = nonce_other;
	check("nonce mismatch (stale quote)", attest_complete(c, &r, NULL, now, &why), &why,
	      ATTEST_QUOTE_NONCE_MISMATCH);
	attest_challenge_free(c);

	c = session(&rsa, wg, now, a);
	device_quote(rsa.ak_ctx, nonce_other, wg, a);
	r = response(a);
	check("quote for another nonce, no claims", attest_complete(c, &r, NULL, now, &why), &why,
	      ATTEST_QUOTE_QUALIFYING_DATA);
	attest_challenge_free(c);

	c = session(&rsa, wg, now, a);
	device_quote(rsa.ak_ctx, attest_challenge_nonce(c), wg_other, a);
	r = response(a);
	r.wg_pub = wg_other;
	check("quote naming a different WireGuard key", attest_complete(c, &r, NULL, now, &why),
	      &why, ATTEST_QUOTE_WG_KEY_MISMATCH);
	attest_challenge_free(c);

	c = session(&rsa, wg, now, a);
	a->pcrs.b[a->pcrs.n - 1] ^= 0x01; /* last byte of the last PCR value */
	r = response(a);
	check("PCR values edited after the quote", attest_complete(c, &r, NULL, now, &why), &why,
	      ATTEST_PCR_DIGEST_MISMATCH);
	attest_challenge_free(c);

	{
		struct tpm2_pcr_values *v = calloc(1, sizeof(*v)), *pol = calloc(1, sizeof(*pol));

		c = session(&rsa, wg, now, a);
		r = response(a);
		if (tpm2_pcr_values_unmarshal(a->pcrs.b, a->pcrs.n, pol) < 0)
			die("pcrs");
		pol->value[pol->count - 1].buffer[0] ^= 0x01; /* policy wants another PCR 7 */
		check("PCR value differs from the policy", attest_complete(c, &r, pol, now, &why),
		      &why, ATTEST_PCR_POLICY_MISMATCH);
		attest_challenge_free(c);

		c = session(&rsa, wg, now, a);
		r = response(a);
		if (tpm2_pcr_selection_parse("sha256:9", &pol->sel) < 0)
			die("sel");
		pol->count = 1;
		check("policy PCR not quoted", attest_complete(c, &r, pol, now, &why), &why,
		      ATTEST_PCR_POLICY_NOT_QUOTED);
		attest_challenge_free(c);

		c = session(&rsa, wg, now, a);
		if (tpm2_pcr_values_unmarshal(a->pcrs.b, a->pcrs.n, v) < 0)
			die("pcrs");
		v->sel.pcrSelections[0].pcrSelect[0] &= (uint8_t)~0x01; /* drop PCR 0 */
		memmove(&v->value[0], &v->value[1], (v->count - 1) * sizeof(v->value[0]));
		v->count--;
		if (tpm2_pcr_values_marshal(v, a->pcrs.b, sizeof(a->pcrs.b), &a->pcrs.n) < 0)
			die("pcrs marshal");
		r = response(a);
		check("PCR selection other than quoted", attest_complete(c, &r, NULL, now, &why),
		      &why, ATTEST_PCR_SELECTION_MISMATCH);
		attest_challenge_free(c);
		free(v);
		free(pol);
	}

	c = session(&rsa, wg, now, a);
	{
		char ak2[512];

		snprintf(ak2, sizeof(ak2), "%s/ak2_ecc.ctx", work);
		device_quote(ak2, attest_challenge_nonce(c), wg, a2); /* same TPM, another AK */
	}
	a2->secret = a->secret;
	r = response(a2);
	check("signature by another key", attest_complete(c, &r, NULL, now, &why), &why,
	      ATTEST_SIGNATURE_INVALID);
	attest_challenge_free(c);

	c = session(&rsa, wg, now, a);
	device_quote(rsa_rsaak.ak_ctx, attest_challenge_nonce(c), wg, a2);
	a->sig = a2->sig; /* an RSASSA signature for an ECDSA AK */
	r = response(a);
	check("signature of the wrong scheme", attest_complete(c, &r, NULL, now, &why), &why,
	      ATTEST_SIGNATURE_SCHEME);
	attest_challenge_free(c);

	c = session(&rsa, wg, now, a);
	a->quote.b[2] ^= 0x01; /* first byte of magic */
	r = response(a);
	check("attest without TPM_GENERATED", attest_complete(c, &r, NULL, now, &why), &why,
	      ATTEST_QUOTE_MAGIC);
	attest_challenge_free(c);

	c = session(&rsa, wg, now, a);
	{
		char qdhex[80], m[512], s[512];
		TPM2B_DATA qd;
		struct blob raw;

		/* a genuine, correctly signed TPM2_Certify by the same AK is not a quote */
		tpm2_qualifying_data(attest_challenge_nonce(c), wg, &qd);
		hex(qd.buffer, qd.size, qdhex);
		snprintf(m, sizeof(m), "%s/c.msg", tmpdir);
		snprintf(s, sizeof(s), "%s/c.sig", tmpdir);
		if (run("%s certify %s %s %s %s", dev_script, rsa.ak_ctx, qdhex, m, s) != 0 ||
		    read_path(m, &raw) < 0 || read_path(s, &a->sig) < 0)
			die("certify");
		wrap_attest(&raw, &a->quote);
	}
	r = response(a);
	check("attestation of another type (certify)", attest_complete(c, &r, NULL, now, &why),
	      &why, ATTEST_QUOTE_TYPE);
	attest_challenge_free(c);

	mutate_cases("quote", &rsa, 0, ATTEST_QUOTE_MALFORMED, wg, now);
	mutate_cases("signature", &rsa, 1, ATTEST_SIGNATURE_MALFORMED, wg, now);
	mutate_cases("PCR values", &rsa, 2, ATTEST_PCR_VALUES_MALFORMED, wg, now);

	printf("%d checks, %d failed\n", checks, failures);
	attest_trust_free(trust);
	attest_trust_free(trust2);
	X509_free(ca);
	X509_free(rogue);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(rogue_key);
	free(a);
	free(a2);
	free(tmp);
	return failures ? 1 : 0;
}

static int
cmd_makecred(const char *ekf, const char *akf, const char *secf, const char *out)
{
	struct blob ek, ak, sec;
	TPM2B_PUBLIC ekp;
	TPM2B_NAME name;
	TPM2B_ID_OBJECT blob;
	TPM2B_ENCRYPTED_SECRET seed;
	uint8_t b1[sizeof(blob)], b2[sizeof(seed)];
	size_t n1, n2;

	if (read_path(ekf, &ek) < 0 || read_path(akf, &ak) < 0 || read_path(secf, &sec) < 0)
		die("read");
	if (tpm2_unmarshal_tpm2b_public(ek.b, ek.n, &ekp) < 0 ||
	    tpm2_name_from_tpm2b_public(ak.b, ak.n, &name) < 0)
		die("parse");
	if (attest_make_credential(&ekp.publicArea, &name, sec.b, sec.n, NULL, &blob, &seed) < 0)
		die("makecredential");
	if (tpm2_marshal_tpm2b_id_object(&blob, b1, sizeof(b1), &n1) < 0 ||
	    tpm2_marshal_tpm2b_encrypted_secret(&seed, b2, sizeof(b2), &n2) < 0)
		die("marshal");
	write_credfile(out, b1, n1, b2, n2);
	return 0;
}

static int
cmd_name(const char *pubf)
{
	struct blob pub;
	TPM2B_NAME name;
	char h[2 * sizeof(name.name) + 1];

	if (read_path(pubf, &pub) < 0 || tpm2_name_from_tpm2b_public(pub.b, pub.n, &name) < 0)
		die("name of %s", pubf);
	hex(name.name, name.size, h);
	printf("%s\n", h);
	return 0;
}

int
main(int argc, char **argv)
{
	if (argc == 2 && strcmp(argv[1], "run") == 0)
		return cmd_run();
	if (argc == 6 && strcmp(argv[1], "makecred") == 0)
		return cmd_makecred(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 3 && strcmp(argv[1], "name") == 0)
		return cmd_name(argv[2]);
	fprintf(stderr, "usage: attest_negative run | makecred EK AK SECRET OUT | name PUB\n");
	return 2;
}
