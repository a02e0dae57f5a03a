// SPDX-License-Identifier: MIT
/*
 * enroll_dev: a simulated device for enrolld's integration tests. Its TPM part is the
 * device-side library (edge-keyd/tpm/tpmdev.h) against a real swtpm; the HTTP part is
 * libcurl speaking the protocol of docs/api.md. It is a test program: it can also play the
 * TPM manufacturer and misbehave on purpose.
 *
 *   enroll_dev enroll --url URL --tcti TCTI --state DIR [options]
 *       provision (idempotent), then challenge and complete. Prints one JSON line:
 *       {"step": "challenge"|"complete", "http_status": N, "response": {...}}
 *       and exits 0 if enrolled (200), 1 if the server said no, 2 on a local failure.
 *     --ek rsa2048|p256|p384    which EK (default p256)
 *     --issue-ek-cert CADIR     do not read the EK certificate from NV: create the EK from
 *                               its template and issue its certificate here, signed with
 *                               CADIR/signkey.pem as CADIR/issuercert.pem (the fixtures'
 *                               CA). A fresh swtpm state (empty directory) is then a new
 *                               device in milliseconds. CADIR/ek-serial (hex), if it
 *                               exists, is the certificate's serial (else a random one).
 *     --token T / --tenant N    authorisation as protocol.md
 *     --wg-private FILE         use this WireGuard key (base64) instead of the sealed one
 *                               (the quote binds whichever key is sent)
 *     --bad-secret              send a wrong credential secret (attestation must fail)
 *     --session-out FILE        write the session id (hex) to FILE once the challenge
 *                               answered (to replay it later)
 *     --twice                   send the same completion again after it succeeded; the
 *                               second answer is printed (expected 410 session_used)
 *     --complete-url URL        send the completion to URL instead of --url (another
 *                               enrolld node: the challenge on one, the completion on
 *                               another)
 *     --replay-url URL          then send the same completion to URL once more, whatever
 *                               the first answer, and print that answer as a second line
 *                               {"step": "replay", ...}; the exit status is the first's
 *   enroll_dev ek --tcti TCTI [--ek TYPE] [--issue-ek-cert CADIR]
 *       prints {"ek_public": b64, "ek_id": hex} (for registrations)
 *   enroll_dev genkey FILE
 *       a new WireGuard private key in FILE (0600, base64), its public key on stdout
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "common/b64.h"
#include "common/key.h"
#include "common/tpm2.h"
#include "common/tpm2_templates.h"
#include "edge-keyd/tpm/tpmdev.h"
#include "enrolld/attest/attest_int.h"

struct opts {
	const char *url, *tcti, *state, *ca_dir, *token, *tenant, *wg_private;
	enum tpm2_ek_type ek_type;
	bool bad_secret, twice;
	const char *session_out, *complete_url, *replay_url;
};

static void __attribute__((noreturn, format(printf, 1, 2)))
die(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "enroll_dev: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/* ---- the manufacturer: an EK certificate for a fresh TPM ---------------------------------- */

static EVP_PKEY *
load_key(const char *path)
{
	FILE *f = fopen(path, "r");
	EVP_PKEY *k;

	if (f == NULL)
		die("cannot open %s", path);
	k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
	fclose(f);
	if (k == NULL)
		die("cannot read the key in %s", path);
	return k;
}

static X509 *
load_cert(const char *path)
{
	FILE *f = fopen(path, "r");
	X509 *x;

	if (f == NULL)
		die("cannot open %s", path);
	x = PEM_read_X509(f, NULL, NULL, NULL);
	fclose(f);
	if (x == NULL)
		die("cannot read the certificate in %s", path);
	return x;
}

static void
add_ext(X509 *x, X509 *issuer, int nid, const char *value)
{
	X509V3_CTX ctx;
	X509_EXTENSION *ext;

	X509V3_set_ctx(&ctx, issuer, x, NULL, NULL, 0);
	ext = X509V3_EXT_conf_nid(NULL, &ctx, nid, value);
	if (ext == NULL || !X509_add_ext(x, ext, -1))
		die("certificate extension %d", nid);
	X509_EXTENSION_free(ext);
}

/* DER certificate for the EK public area @pub, issued by the CA in @ca_dir. */
static void
issue_ek_cert(const char *ca_dir, const uint8_t *pub, size_t pub_len, uint8_t **ret,
	size_t *ret_len)
{
	char path[1024];
	TPM2B_PUBLIC tp;
	EVP_PKEY *ek = NULL, *ca_key;
	X509 *ca, *x;
	uint8_t serial[8];
	ASN1_INTEGER *sn;
	BIGNUM *bn;
	int len;

	if (tpm2_unmarshal_tpm2b_public(pub, pub_len, &tp) < 0 ||
	    attest_pkey_from_public(&tp.publicArea, &ek) < 0)
		die("EK public area");
	snprintf(path, sizeof(path), "%s/signkey.pem", ca_dir);
	ca_key = load_key(path);
	snprintf(path, sizeof(path), "%s/issuercert.pem", ca_dir);
	ca = load_cert(path);
	x = X509_new();
	X509_set_version(x, 2);
	if (getentropy(serial, sizeof(serial)) < 0)
		die("getentropy");
	serial[0] &= 0x7f;
	bn = BN_bin2bn(serial, sizeof(serial), NULL);
	/* CADIR/ek-serial (hex) fixes the serial: a test can then revoke it with a CRL */
	snprintf(path, sizeof(path), "%s/ek-serial", ca_dir);
	{
		char hex[64] = "";
		FILE *f = fopen(path, "re");

		if (f != NULL) {
			if (fgets(hex, sizeof(hex), f) == NULL)
				hex[0] = '\0';
			fclose(f);
			hex[strcspn(hex, "\r\n")] = '\0';
			if (hex[0] == '\0' || !BN_hex2bn(&bn, hex))
				die("'%s': not a hex serial", path);
		}
	}
	sn = BN_to_ASN1_INTEGER(bn, NULL);
	X509_set_serialNumber(x, sn);
	ASN1_INTEGER_free(sn);
	BN_free(bn);
	X509_set_issuer_name(x, X509_get_subject_name(ca));
	X509_gmtime_adj(X509_getm_notBefore(x), -3600);
	X509_gmtime_adj(X509_getm_notAfter(x), 365L * 86400);
	X509_set_pubkey(x, ek);
	add_ext(x, ca, NID_basic_constraints, "critical,CA:FALSE");
	add_ext(x, ca, NID_key_usage, tp.publicArea.type == TPM2_ALG_RSA ?
		"critical,keyEncipherment" : "critical,keyAgreement");
	add_ext(x, ca, NID_authority_key_identifier, "keyid");
	if (!X509_sign(x, ca_key, EVP_sha256()))
		die("signing the EK certificate");
	len = i2d_X509(x, NULL);
	*ret = malloc((size_t)len);
	if (*ret == NULL)
		die("out of memory");
	{
		uint8_t *p = *ret;

		i2d_X509(x, &p);
	}
	*ret_len = (size_t)len;
	X509_free(x);
	X509_free(ca);
	EVP_PKEY_free(ca_key);
	EVP_PKEY_free(ek);
}

static void
get_ek(struct tpmdev *dev, const struct opts *o, uint8_t **pub, size_t *pub_len,
	uint8_t **cert, size_t *cert_len)
{
	int r;

	if (o->ca_dir != NULL) {
		r = tpmdev_ek(dev, o->ek_type, TPMDEV_EK_CREATE | TPMDEV_EK_NO_CERT, pub, pub_len,
			NULL, NULL);
		if (r < 0)
			die("EK: %s (%s)", strerror(-r), tpmdev_last_error(dev));
		issue_ek_cert(o->ca_dir, *pub, *pub_len, cert, cert_len);
		return;
	}
	r = tpmdev_ek(dev, o->ek_type, 0, pub, pub_len, cert, cert_len);
	if (r < 0)
		die("EK: %s (%s)", strerror(-r), tpmdev_last_error(dev));
}

/* ---- HTTP -------------------------------------------------------------------------------- */

struct buf {
	char *p;
	size_t n;
};

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct buf *b = ud;
	size_t n = size * nmemb;
	char *np = realloc(b->p, b->n + n + 1);

	if (np == NULL)
		return 0;
	memcpy(np + b->n, ptr, n);
	b->p = np;
	b->n += n;
	b->p[b->n] = '\0';
	return n;
}

/* POST @body to @url/@path; returns the HTTP status, *ret the parsed answer (or null). */
static long
post(const char *url, const char *path, json_t *body, json_t **ret)
{
	struct curl_slist *hdr = NULL;
	struct buf b = { NULL, 0 };
	char full[1024];
	char *text;
	long status = 0;
	CURL *c;

	text = json_dumps(body, JSON_COMPACT);
	snprintf(full, sizeof(full), "%s%s", url, path);
	c = curl_easy_init();
	hdr = curl_slist_append(hdr, "Content-Type: application/json");
	curl_easy_setopt(c, CURLOPT_URL, full);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdr);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, text);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
	if (curl_easy_perform(c) == CURLE_OK)
		curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
	curl_slist_free_all(hdr);
	curl_easy_cleanup(c);
	free(text);
	*ret = b.p ? json_loads(b.p, 0, NULL) : NULL;
	if (*ret == NULL)
		*ret = json_null();
	free(b.p);
	return status;
}

static json_t *
b64j(const uint8_t *p, size_t n)
{
	char *s;
	json_t *j;

	if (b64_encode(p, n, &s) < 0)
		die("base64");
	j = json_string(s);
	free(s);
	return j;
}

static uint8_t *
b64_member(json_t *j, const char *key, size_t *ret_len)
{
	const char *s = json_string_value(json_object_get(j, key));
	uint8_t *out;

	if (s == NULL || b64_decode(s, 65536, &out, ret_len) < 0)
		die("challenge answer without a valid '%s'", key);
	return out;
}

static int
report(const char *step, long status, json_t *resp)
{
	json_t *j = json_pack("{s:s,s:i,s:O}", "step", step, "http_status", (int)status, "response",
		resp);
	char *s = json_dumps(j, JSON_COMPACT);

	printf("%s\n", s);
	fflush(stdout);
	free(s);
	json_decref(j);
	return status == 200 ? 0 : 1;
}

/* ---- commands ------------------------------------------------------------------------------ */

static void
read_wg_private(const char *path, uint8_t priv[32])
{
	char buf[128] = "";
	FILE *f = fopen(path, "r");

	if (f == NULL || fgets(buf, sizeof(buf), f) == NULL)
		die("cannot read %s", path);
	fclose(f);
	buf[strcspn(buf, "\r\n")] = '\0';
	if (key_from_base64(priv, buf) < 0)
		die("%s: not a base64 WireGuard key", path);
	explicit_bzero(buf, sizeof(buf));
}

static int
cmd_enroll(const struct opts *o)
{
	struct tpmdev_provision_opts po = { .ak_type = TPM2_ALG_ECC };
	uint8_t *ek_pub = NULL, *ek_cert = NULL, *ak_pub = NULL, *blob, *seed, *nonce;
	size_t ek_pub_len, ek_cert_len, ak_pub_len, blob_len, seed_len, nonce_len;
	uint8_t wg_pub[32], secret[TPMDEV_SECRET_LEN];
	char wg_b64[WG_KEY_B64_LEN];
	struct tpmdev_quote q;
	TPML_PCR_SELECTION sel;
	struct tpmdev *dev = NULL;
	json_t *req, *resp = NULL, *done;
	const char *session, *spec, *url;
	long status;
	int r, rc;

	r = tpmdev_open(&dev, o->tcti);
	if (r < 0)
		die("tpm '%s': %s", o->tcti, strerror(-r));
	r = tpmdev_provision(dev, o->state, &po);
	if (r < 0)
		die("provision: %s (%s)", strerror(-r), tpmdev_last_error(dev));
	get_ek(dev, o, &ek_pub, &ek_pub_len, &ek_cert, &ek_cert_len);
	r = tpmdev_ak_public(o->state, &ak_pub, &ak_pub_len);
	if (r < 0)
		die("AK public: %s", strerror(-r));
	if (o->wg_private != NULL) {
		uint8_t priv[32];

		read_wg_private(o->wg_private, priv);
		if (key_public_from_private(wg_pub, priv) < 0)
			die("public key");
		explicit_bzero(priv, sizeof(priv));
	} else if (tpmdev_wg_public(o->state, wg_pub) < 0) {
		die("sealed key's public key");
	}
	key_to_base64(wg_b64, wg_pub);

	req = json_pack("{s:o,s:o,s:o,s:s}", "ek_cert", b64j(ek_cert, ek_cert_len), "ek_public",
		b64j(ek_pub, ek_pub_len), "ak_public", b64j(ak_pub, ak_pub_len), "wg_public_key",
		wg_b64);
	if (o->token != NULL)
		json_object_set_new(req, "token", json_string(o->token));
	if (o->tenant != NULL)
		json_object_set_new(req, "tenant", json_string(o->tenant));
	status = post(o->url, "/v1/enroll/challenge", req, &resp);
	json_decref(req);
	if (status != 200) {
		rc = report("challenge", status, resp);
		goto out;
	}

	session = json_string_value(json_object_get(resp, "session"));
	spec = json_string_value(json_object_get(resp, "pcr_selection"));
	if (session == NULL || spec == NULL)
		die("challenge answer without session or pcr_selection");
	if (o->session_out != NULL) {
		FILE *f = fopen(o->session_out, "w");

		if (f == NULL || fprintf(f, "%s\n", session) < 0 || fclose(f) != 0)
			die("cannot write '%s'", o->session_out);
	}
	blob = b64_member(resp, "credential_blob", &blob_len);
	seed = b64_member(resp, "encrypted_seed", &seed_len);
	nonce = b64_member(resp, "nonce", &nonce_len);
	if (nonce_len != 32)
		die("nonce of %zu bytes", nonce_len);
	r = tpmdev_activate(dev, o->state, o->ek_type, blob, blob_len, seed, seed_len, secret);
	if (r < 0)
		die("activate: %s (%s)", strerror(-r), tpmdev_last_error(dev));
	if (o->bad_secret)
		secret[0] ^= 1;
	/* No policy: quote some PCRs anyway, a server without policy must accept any. */
	if (tpm2_pcr_selection_parse(spec[0] ? spec : "sha256:0,1,7", &sel) < 0)
		die("bad pcr_selection '%s'", spec);
	r = tpmdev_quote(dev, o->state, nonce, wg_pub, &sel, &q);
	if (r < 0)
		die("quote: %s (%s)", strerror(-r), tpmdev_last_error(dev));
	req = json_pack("{s:s,s:o,s:o,s:o,s:o}", "session", session, "secret",
		b64j(secret, sizeof(secret)), "quote", b64j(q.quote, q.quote_len), "signature",
		b64j(q.sig, q.sig_len), "pcrs", b64j(q.pcrs, q.pcrs_len));
	explicit_bzero(secret, sizeof(secret));
	free(blob);
	free(seed);
	free(nonce);
	json_decref(resp);
	url = o->complete_url != NULL ? o->complete_url : o->url;
	status = post(url, "/v1/enroll/complete", req, &done);
	if (status == 200 && o->twice) {
		json_decref(done);
		status = post(url, "/v1/enroll/complete", req, &done);
	}
	resp = done;
	rc = report("complete", status, resp);
	if (o->replay_url != NULL) {
		json_t *again = NULL;

		status = post(o->replay_url, "/v1/enroll/complete", req, &again);
		report("replay", status, again);
		json_decref(again);
	}
	json_decref(req);
out:
	json_decref(resp);
	free(ek_pub);
	free(ek_cert);
	free(ak_pub);
	tpmdev_close(dev);
	return rc;
}

static int
cmd_ek(const struct opts *o)
{
	uint8_t *pub = NULL, *cert = NULL, id[32];
	size_t pub_len, cert_len;
	struct tpmdev *dev = NULL;
	TPM2B_PUBLIC tp;
	char hex[65];
	json_t *j;
	char *s;
	int r;

	r = tpmdev_open(&dev, o->tcti);
	if (r < 0)
		die("tpm '%s': %s", o->tcti, strerror(-r));
	get_ek(dev, o, &pub, &pub_len, &cert, &cert_len);
	/* The EK id as attest_verify_ek() computes it (docs/attestation.md). */
	if (tpm2_unmarshal_tpm2b_public(pub, pub_len, &tp) < 0)
		die("EK public");
	if (tp.publicArea.type == TPM2_ALG_RSA) {
		tpm2_hash(TPM2_ALG_SHA256, tp.publicArea.unique.rsa.buffer,
			tp.publicArea.unique.rsa.size, id);
	} else {
		size_t clen;
		uint8_t xy[132] = { 0 };

		if (attest_curve_name(tp.publicArea.parameters.eccDetail.curveID, &clen) == NULL)
			die("EK curve");
		memcpy(xy + clen - tp.publicArea.unique.ecc.x.size, tp.publicArea.unique.ecc.x.buffer,
			tp.publicArea.unique.ecc.x.size);
		memcpy(xy + 2 * clen - tp.publicArea.unique.ecc.y.size,
			tp.publicArea.unique.ecc.y.buffer, tp.publicArea.unique.ecc.y.size);
		tpm2_hash(TPM2_ALG_SHA256, xy, 2 * clen, id);
	}
	for (int i = 0; i < 32; i++)
		sprintf(hex + 2 * i, "%02x", id[i]);
	j = json_pack("{s:o,s:s}", "ek_public", b64j(pub, pub_len), "ek_id", hex);
	s = json_dumps(j, JSON_COMPACT);
	printf("%s\n", s);
	free(s);
	json_decref(j);
	free(pub);
	free(cert);
	tpmdev_close(dev);
	return 0;
}

static int
cmd_genkey(const char *path)
{
	uint8_t priv[32], pub[32];
	char b64[WG_KEY_B64_LEN];
	int fd;

	if (key_generate_private(priv) < 0 || key_public_from_private(pub, priv) < 0)
		die("key");
	key_to_base64(b64, priv);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || dprintf(fd, "%s\n", b64) < 0)
		die("cannot write %s", path);
	close(fd);
	explicit_bzero(priv, sizeof(priv));
	explicit_bzero(b64, sizeof(b64));
	key_to_base64(b64, pub);
	printf("%s\n", b64);
	return 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "tcti", required_argument, NULL, 'T' },
		{ "state", required_argument, NULL, 's' },
		{ "ek", required_argument, NULL, 'e' },
		{ "issue-ek-cert", required_argument, NULL, 'I' },
		{ "token", required_argument, NULL, 't' },
		{ "tenant", required_argument, NULL, 'n' },
		{ "wg-private", required_argument, NULL, 'w' },
		{ "bad-secret", no_argument, NULL, 'B' },
		{ "twice", no_argument, NULL, '2' },
		{ "session-out", required_argument, NULL, 'S' },
		{ "complete-url", required_argument, NULL, 'C' },
		{ "replay-url", required_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	struct opts o = { .ek_type = TPM2_EK_ECC_P256 };
	const char *cmd;
	int ch, rc;

	if (argc < 2)
		die("usage: enroll_dev enroll|ek|genkey ...");
	cmd = argv[1];
	if (strcmp(cmd, "genkey") == 0) {
		if (argc != 3)
			die("usage: enroll_dev genkey FILE");
		return cmd_genkey(argv[2]);
	}
	optind = 2;
	while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
		switch (ch) {
		case 'u':
			o.url = optarg;
			break;
		case 'T':
			o.tcti = optarg;
			break;
		case 's':
			o.state = optarg;
			break;
		case 'e':
			if (tpm2_ek_type_parse(optarg, &o.ek_type) < 0)
				die("bad EK type '%s'", optarg);
			break;
		case 'I':
			o.ca_dir = optarg;
			break;
		case 't':
			o.token = optarg;
			break;
		case 'n':
			o.tenant = optarg;
			break;
		case 'w':
			o.wg_private = optarg;
			break;
		case 'B':
			o.bad_secret = true;
			break;
		case '2':
			o.twice = true;
			break;
		case 'S':
			o.session_out = optarg;
			break;
		case 'C':
			o.complete_url = optarg;
			break;
		case 'R':
			o.replay_url = optarg;
			break;
		default:
			die("bad option");
		}
	}
	if (o.tcti == NULL)
		die("--tcti is required");
	curl_global_init(CURL_GLOBAL_DEFAULT);
	if (strcmp(cmd, "enroll") == 0) {
		if (o.url == NULL || o.state == NULL)
			die("enroll needs --url and --state");
		rc = cmd_enroll(&o);
	} else if (strcmp(cmd, "ek") == 0) {
		rc = cmd_ek(&o);
	} else {
		die("unknown command '%s'", cmd);
	}
	curl_global_cleanup();
	return rc;
}
