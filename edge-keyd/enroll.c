// SPDX-License-Identifier: MIT
/*
 * Talking to the control plane about who we are: provisioning (prepare the TPM, pre-register
 * the EK), the two-round attested enrollment (protocol in docs/attestation.md and
 * docs/api.md), and key rotation.
 *
 * The TPM is opened only for the moment it is needed and closed again: a TPM without a
 * resource manager (swtpm, or /dev/tpm0) serves one client at a time, and `edge-keyd
 * rotate` or `status` must be able to run next to the daemon.
 *
 * What crosses the network: the EK certificate and public area, the AK public area, the
 * WireGuard public key, the enrollment token (if one is configured), the activated
 * credential secret (single use, bound to one session) and the quote. Never the private
 * key: it exists in clear only in tunnel.c, in locked memory, for the moment it is handed
 * to WireGuard.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/b64.h"
#include "common/log.h"
#include "common/secmem.h"
#include "common/tpm2.h"
#include "common/tpm2_templates.h"
#include "common/client.h"
#include "edge-keyd/edge-keyd.h"
#include "edge-keyd/tpm/tpmdev.h"

/* The PCRs quoted when the tenant has no policy: firmware, its config, Secure Boot state. */
#define DEFAULT_QUOTE_PCRS "sha256:0,1,7"
#define TPM_STRUCT_MAX 4096

/* ---- helpers ---------------------------------------------------------------------------- */

static void
client_opts_of(const struct ekd_conf *conf, struct client_opts *o, const char *bearer)
{
	memset(o, 0, sizeof(*o));
	o->ca_file = conf->ca_file;
	o->allow_http = conf->allow_http;
	o->timeout_sec = conf->timeout;
	o->bearer = bearer;
}

/* The server's {"error": {"code", "message"}} as "code: message", or the status. */
static void
server_error_text(long status, const json_t *j, char *buf, size_t len, const char **ret_code)
{
	json_t *err = json_object_get(j, "error");
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));

	*ret_code = code ? code : "";
	if (code != NULL)
		snprintf(buf, len, "HTTP %ld %s: %s", status, code, msg ? msg : "");
	else
		snprintf(buf, len, "HTTP %ld (no error detail)", status);
}

/* An HTTP status (not 2xx) as our errno; see ekd_enroll_once() in edge-keyd.h. */
static int
status_errno(long status, const char *code)
{
	if (status == 403 && strcmp(code, "device_revoked") == 0)
		return -EPERM;
	if (strcmp(code, "address_pool_exhausted") == 0)
		return -ENOSPC;
	switch (status) {
	case 400:
		return -EINVAL; /* -EBADMSG is kept for a bad answer from the server */
	case 401:
	case 403:
		return -EACCES;
	case 404:
		return -ENOENT;
	case 409:
		return -EEXIST;
	case 410:
		return -ETIME;
	case 413:
		return -E2BIG;
	case 429:
		return -EAGAIN; /* rate_limited: busy, like 503 */
	default:
		return status >= 500 ? -EAGAIN : -EPROTO;
	}
}

/*
 * @conn (may be NULL): the connection to send it on (an enrollment's two rounds share one:
 * one TLS handshake for the server instead of two). @ret_retry_after (may be NULL): the
 * answer's Retry-After in seconds, 0 if none.
 */
static int
post_json(const struct ekd_conf *conf, struct client_conn *conn, const char *path,
	const char *bearer, json_t *body, long *ret_status, json_t **ret_json,
	unsigned int *ret_retry_after, char *errbuf, size_t errlen)
{
	struct client_opts o;
	char url[512];
	int r;

	if (snprintf(url, sizeof(url), "%s%s", conf->url, path) >= (int)sizeof(url)) {
		snprintf(errbuf, errlen, "URL too long");
		return -ENAMETOOLONG;
	}
	client_opts_of(conf, &o, bearer);
	o.conn = conn;
	o.ret_retry_after = ret_retry_after;
	r = client_request(&o, "POST", url, body, ret_status, ret_json, errbuf, errlen);
	if (r == 0)
		log_debug("POST %s: HTTP %ld", url, *ret_status);
	return r;
}

/* Wipe the string value of @key in @j (jansson keeps its own copy of what it was given). */
static void
json_wipe_member(json_t *j, const char *key)
{
	json_t *s = json_object_get(j, key);

	if (json_is_string(s))
		OPENSSL_cleanse((char *)json_string_value(s), json_string_length(s));
}

static json_t *
b64_json(const uint8_t *p, size_t n)
{
	char *s = NULL;
	json_t *j;

	if (b64_encode(p, n, &s) < 0)
		return NULL;
	j = json_string(s);
	free(s);
	return j;
}

/* A base64 member of the server's answer, at most @max bytes; NULL if absent or bad. */
static int
b64_member(const json_t *j, const char *key, size_t max, uint8_t **ret, size_t *ret_len)
{
	const char *s = json_string_value(json_object_get(j, key));

	if (s == NULL)
		return -EBADMSG;
	return b64_decode(s, max, ret, ret_len) < 0 ? -EBADMSG : 0;
}

/*
 * The EK's identifier as enrolld computes it (attest_verify_ek): SHA-256 of the RSA modulus
 * or of the ECC point x || y.
 */
static int
ek_id_of_public(const uint8_t *pub, size_t len, uint8_t ret[static 32])
{
	TPM2B_PUBLIC p;
	struct tpm2_buf parts[2];
	size_t n = 0;
	int r;

	r = tpm2_unmarshal_tpm2b_public(pub, len, &p);
	if (r < 0)
		return r;
	if (p.publicArea.type == TPM2_ALG_RSA) {
		parts[n++] = (struct tpm2_buf){ p.publicArea.unique.rsa.buffer,
			p.publicArea.unique.rsa.size };
	} else if (p.publicArea.type == TPM2_ALG_ECC) {
		parts[n++] = (struct tpm2_buf){ p.publicArea.unique.ecc.x.buffer,
			p.publicArea.unique.ecc.x.size };
		parts[n++] = (struct tpm2_buf){ p.publicArea.unique.ecc.y.buffer,
			p.publicArea.unique.ecc.y.size };
	} else {
		return -EINVAL;
	}
	r = tpm2_hashv(TPM2_ALG_SHA256, parts, n, ret);
	return r < 0 ? r : 0;
}

static void
hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

/*
 * Why the TPM did not open, in one line. tpmdev_open() gives open(2)'s errno for a
 * "device:PATH" TCTI, so a process outside the device's group (Debian: root:tss 0660) is
 * told so, not "Input/output error".
 */
static void
tpm_open_error(const struct ekd_conf *conf, int r, char *buf, size_t len)
{
	const char *path = NULL;
	struct stat st;

	if (conf->tcti != NULL && strncmp(conf->tcti, "device:", 7) == 0 && conf->tcti[7] != '\0')
		path = conf->tcti + 7;
	if (path == NULL || (r != -EACCES && r != -EPERM && r != -ENOENT && r != -EBUSY)) {
		snprintf(buf, len, "cannot open the TPM through '%s': %s (is the TCTI right, and "
			"the TPM there?)", conf->tcti ? conf->tcti : "(tss2 default)", strerror(-r));
		return;
	}
	if (r == -ENOENT) {
		snprintf(buf, len, "cannot open the TPM device '%s': %s (no TPM, or its driver is "
			"not loaded; check 'device.tcti')", path, strerror(-r));
		return;
	}
	if (r == -EBUSY) {
		snprintf(buf, len, "cannot open the TPM device '%s': %s (another program holds it; "
			"/dev/tpmrm0, the kernel's resource manager, can be shared)", path,
			strerror(-r));
		return;
	}
	if (stat(path, &st) == 0) {
		struct group *g = getgrgid(st.st_gid);

		if (g != NULL) {
			snprintf(buf, len, "cannot open the TPM device '%s': %s: it is mode %04o, "
				"group '%s', and this process (uid %u) is not in that group (systemd "
				"unit: SupplementaryGroups=%s)", path, strerror(-r),
				(unsigned)(st.st_mode & 07777), g->gr_name, (unsigned)geteuid(),
				g->gr_name);
			return;
		}
	}
	snprintf(buf, len, "cannot open the TPM device '%s': %s (is this process in the device's "
		"group? systemd unit: SupplementaryGroups=)", path, strerror(-r));
}

static int
open_tpm(const struct ekd_conf *conf, struct tpmdev **ret)
{
	char msg[400];
	int r = tpmdev_open(ret, conf->tcti);

	if (r < 0) {
		tpm_open_error(conf, r, msg, sizeof(msg));
		log_warnx("%s", msg);
	}
	return r;
}

static void
tpm_fail(struct tpmdev *dev, const char *what, int r)
{
	const char *detail = dev ? tpmdev_last_error(dev) : "";

	log_warnx("TPM: %s: %s%s%s", what, strerror(-r), detail[0] ? ": " : "", detail);
}

/* ---- keys --------------------------------------------------------------------------------- */

int
ekd_wg_public(const struct ekd_conf *conf, uint8_t ret_pub[static WG_KEY_LEN])
{
	return tpmdev_wg_public(conf->state_dir, ret_pub);
}

/* "sha256:0,9" */
static void
pcr_selection_format(const TPML_PCR_SELECTION *sel, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (UINT32 i = 0; i < sel->count && i < TPM2_NUM_PCR_BANKS; i++) {
		const TPMS_PCR_SELECTION *b = &sel->pcrSelections[i];
		const char *bank = b->hash == TPM2_ALG_SHA1 ? "sha1" :
			b->hash == TPM2_ALG_SHA256 ? "sha256" : b->hash == TPM2_ALG_SHA384 ?
			"sha384" : b->hash == TPM2_ALG_SHA512 ? "sha512" : "?";
		bool first = true;

		n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%s:", i ? "+" : "", bank);
		for (unsigned pcr = 0; pcr < 8u * b->sizeofSelect && n < len; pcr++) {
			if (!(b->pcrSelect[pcr / 8] & (1u << (pcr % 8))))
				continue;
			n += (size_t)snprintf(buf + n, n < len ? len - n : 0, "%s%u",
				first ? "" : ",", pcr);
			first = false;
		}
	}
}

/*
 * The one line that says why the sealed key cannot be used. A PCR policy that no longer
 * holds is the case an operator must understand: it is not a fault of edge-keyd or of the
 * TPM but a changed firmware or boot chain, and its remedy is a decision.
 */
static void
unseal_error(struct tpmdev *dev, const TPML_PCR_SELECTION *sel, int r, char *buf, size_t len)
{
	const char *detail = tpmdev_last_error(dev);
	char pcrs[64];

	if (r == -EKEYEXPIRED) {
		pcr_selection_format(sel, pcrs, sizeof(pcrs));
		snprintf(buf, len, "cannot unseal the WireGuard key: PCRs %s no longer have the "
			"values it was sealed to (firmware or boot chain changed); if that change is "
			"expected, 'edge-keyd rotate' seals a new key to the current values and "
			"enrolls it", pcrs);
		return;
	}
	snprintf(buf, len, "TPM: unseal the WireGuard key: %s%s%s", strerror(-r),
		detail[0] ? ": " : "", detail);
}

int
ekd_unseal_msg(const struct ekd_conf *conf, uint8_t key[static WG_KEY_LEN], char *errbuf,
	size_t errlen)
{
	TPML_PCR_SELECTION sel;
	struct tpmdev *dev = NULL;
	int r;

	r = tpmdev_open(&dev, conf->tcti);
	if (r < 0) {
		tpm_open_error(conf, r, errbuf, errlen);
		return r;
	}
	memset(&sel, 0, sizeof(sel));
	r = tpmdev_unseal(dev, conf->state_dir, key);
	if (r == -EKEYEXPIRED)
		(void)tpmdev_wg_policy_check(dev, conf->state_dir, &sel); /* which PCRs */
	if (r < 0)
		unseal_error(dev, &sel, r, errbuf, errlen);
	tpmdev_close(dev);
	return r;
}

int
ekd_unseal(const struct ekd_conf *conf, uint8_t key[static WG_KEY_LEN])
{
	char msg[400];
	int r = ekd_unseal_msg(conf, key, msg, sizeof(msg));

	if (r < 0)
		log_warnx("%s", msg);
	return r;
}

int
ekd_key_check(const struct ekd_conf *conf, char *pcrs, size_t pcrslen, char *errbuf,
	size_t errlen)
{
	TPML_PCR_SELECTION sel;
	struct tpmdev *dev = NULL;
	int r;

	pcrs[0] = errbuf[0] = '\0';
	r = tpmdev_open(&dev, conf->tcti);
	if (r < 0) {
		tpm_open_error(conf, r, errbuf, errlen);
		return r;
	}
	memset(&sel, 0, sizeof(sel));
	r = tpmdev_wg_policy_check(dev, conf->state_dir, &sel);
	pcr_selection_format(&sel, pcrs, pcrslen);
	if (r < 0 && r != -EKEYEXPIRED)
		snprintf(errbuf, errlen, "TPM: check the sealed key's PCR policy: %s%s%s",
			strerror(-r), tpmdev_last_error(dev)[0] ? ": " : "", tpmdev_last_error(dev));
	else if (r < 0)
		unseal_error(dev, &sel, r, errbuf, errlen);
	tpmdev_close(dev);
	return r;
}

/* ---- provisioning --------------------------------------------------------------------------- */

static int
provision_opts(const struct ekd_conf *conf, struct tpmdev_provision_opts *o,
	TPML_PCR_SELECTION *sel)
{
	memset(o, 0, sizeof(*o));
	o->ak_type = strcmp(conf->ak_type, "rsa") == 0 ? TPM2_ALG_RSA : TPM2_ALG_ECC;
	if (conf->pcr_policy != NULL) {
		if (tpm2_pcr_selection_parse(conf->pcr_policy, sel) < 0)
			return -EINVAL; /* conf.c checked it */
		o->pcr_policy = sel;
	}
	return 0;
}

int
ekd_provision(const struct ekd_conf *conf, bool offline)
{
	char token[EKD_TOKEN_MAX] = "", errbuf[512], label[64], idhex[65], wgb64[WG_KEY_B64_LEN];
	char path[128];
	struct tpmdev_provision_opts opts;
	TPML_PCR_SELECTION sel;
	enum tpm2_ek_type ek_type;
	struct tpmdev *dev = NULL;
	uint8_t *ek_pub = NULL, *ek_cert = NULL;
	size_t ek_pub_len = 0, ek_cert_len = 0;
	uint8_t ek_id[32], wg_pub[WG_KEY_LEN];
	json_t *reg = NULL, *rec = NULL, *resp = NULL;
	long status = 0;
	int r, existed;

	if (!offline) {
		if (conf->tenant == NULL) {
			log_warnx("'server.tenant' is not set: which tenant registers this device? "
				"(or use --offline)");
			return -EINVAL;
		}
		if (conf->provisioning_token_file == NULL) {
			log_warnx("'server.provisioning_token_file' is not set (or use --offline)");
			return -EINVAL;
		}
		r = ekd_conf_require_server(conf, errbuf, sizeof(errbuf));
		if (r < 0) {
			log_warnx("%s", errbuf);
			return r;
		}
		r = ekd_read_token(conf->provisioning_token_file, token, errbuf, sizeof(errbuf));
		if (r < 0) {
			log_warnx("%s", errbuf);
			return r;
		}
	}
	if (tpm2_ek_type_parse(conf->ek_type, &ek_type) < 0 ||
		provision_opts(conf, &opts, &sel) < 0) {
		r = -EINVAL;
		goto out;
	}

	r = open_tpm(conf, &dev);
	if (r < 0)
		goto out;
	existed = tpmdev_provision(dev, conf->state_dir, &opts);
	if (existed < 0) {
		r = existed;
		tpm_fail(dev, "provision", r);
		if (r == -EKEYREJECTED || r == -EBADMSG)
			log_warnx("the state in '%s' does not belong to this TPM (another TPM, or "
				"its owner hierarchy was cleared); move it away to provision a new "
				"identity", conf->state_dir);
		goto out;
	}
	r = tpmdev_ek(dev, ek_type, 0, &ek_pub, &ek_pub_len, &ek_cert, &ek_cert_len);
	if (r < 0) {
		tpm_fail(dev, "read the EK and its certificate", r);
		if (r == -ENOENT)
			log_warnx("this TPM has no %s EK certificate: try another 'device.ek_type'",
				conf->ek_type);
		goto out;
	}
	tpmdev_close(dev);
	dev = NULL;
	r = ek_id_of_public(ek_pub, ek_pub_len, ek_id);
	if (r == 0)
		r = tpmdev_wg_public(conf->state_dir, wg_pub);
	if (r < 0) {
		log_warnx("cannot read back the provisioned identity: %s", strerror(-r));
		goto out;
	}
	hex(ek_id, sizeof(ek_id), idhex);
	key_to_base64(wgb64, wg_pub);
	if (conf->label != NULL) {
		snprintf(label, sizeof(label), "%s", conf->label);
	} else if (gethostname(label, sizeof(label)) < 0) {
		snprintf(label, sizeof(label), "gateway");
	}
	label[sizeof(label) - 1] = '\0';
	log_info("%s identity in '%s': EK %s (%s), WireGuard key %s",
		existed == 1 ? "kept the existing" : "provisioned a new", conf->state_dir, idhex,
		conf->ek_type, wgb64);

	reg = json_pack("{s:o, s:s}", "ek_public", b64_json(ek_pub, ek_pub_len), "label", label);
	if (reg == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (offline) {
		/* What the station submits later: POST .../registrations with .registration. */
		rec = json_pack("{s:s?, s:O, s:s, s:s, s:o, s:s}", "tenant", conf->tenant,
			"registration", reg, "ek_id", idhex, "ek_type", conf->ek_type, "ek_cert",
			b64_json(ek_cert, ek_cert_len), "wg_public_key", wgb64);
		if (rec == NULL || json_dumpf(rec, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0) {
			r = -ENOMEM;
			goto out;
		}
		fputc('\n', stdout);
		fflush(stdout);
		r = 0;
		goto out;
	}

	snprintf(path, sizeof(path), "/v1/tenants/%s/registrations", conf->tenant);
	r = post_json(conf, NULL, path, token, reg, &status, &resp, NULL, errbuf, sizeof(errbuf));
	if (r < 0) {
		log_warnx("pre-registration: no answer from the control plane: %s", errbuf);
		goto out;
	}
	if (status == 201 || status == 200) {
		log_info("EK %s registered in tenant '%s'", idhex, conf->tenant);
		printf("%s\n", idhex);
		r = 0;
	} else {
		const char *code;

		server_error_text(status, resp, errbuf, sizeof(errbuf), &code);
		if (status == 409) {
			log_info("EK %s was already registered in tenant '%s'", idhex, conf->tenant);
			printf("%s\n", idhex);
			r = 0;
		} else {
			log_warnx("pre-registration in tenant '%s' refused: %s", conf->tenant, errbuf);
			r = status_errno(status, code);
		}
	}
out:
	OPENSSL_cleanse(token, sizeof(token));
	tpmdev_close(dev);
	free(ek_pub);
	free(ek_cert);
	json_decref(reg);
	json_decref(rec);
	json_decref(resp);
	return r;
}

/* ---- enrollment --------------------------------------------------------------------------- */

struct challenge {
	char session[65];
	uint8_t *blob, *seed, *nonce;
	size_t blob_len, seed_len, nonce_len;
	TPML_PCR_SELECTION sel;
};

static void
challenge_clear(struct challenge *c)
{
	free(c->blob);
	free(c->seed);
	free(c->nonce);
	memset(c, 0, sizeof(*c));
}

static int
parse_challenge(const json_t *j, struct challenge *c, char *errbuf, size_t errlen)
{
	const char *s = json_string_value(json_object_get(j, "session"));
	const char *sel = json_string_value(json_object_get(j, "pcr_selection"));

	if (s == NULL || strlen(s) == 0 || strlen(s) >= sizeof(c->session)) {
		snprintf(errbuf, errlen, "challenge: 'session' missing or too long");
		return -EBADMSG;
	}
	snprintf(c->session, sizeof(c->session), "%s", s);
	if (b64_member(j, "credential_blob", TPM_STRUCT_MAX, &c->blob, &c->blob_len) < 0 ||
		b64_member(j, "encrypted_seed", TPM_STRUCT_MAX, &c->seed, &c->seed_len) < 0 ||
		b64_member(j, "nonce", 64, &c->nonce, &c->nonce_len) < 0 || c->nonce_len != 32) {
		snprintf(errbuf, errlen,
			"challenge: 'credential_blob', 'encrypted_seed' or 'nonce' (32 bytes) "
			"missing or not base64");
		return -EBADMSG;
	}
	if (sel == NULL || sel[0] == '\0')
		sel = DEFAULT_QUOTE_PCRS;
	if (tpm2_pcr_selection_parse(sel, &c->sel) < 0) {
		snprintf(errbuf, errlen, "challenge: 'pcr_selection' '%s' is not a PCR selection",
			sel);
		return -EBADMSG;
	}
	return 0;
}

/* Round 1: what we are, what key we want in the tunnel. */
static json_t *
challenge_body(const struct ekd_conf *conf, const uint8_t *ek_pub, size_t ek_pub_len,
	const uint8_t *ek_cert, size_t ek_cert_len, const uint8_t *ak_pub, size_t ak_pub_len,
	const uint8_t wg_pub[static WG_KEY_LEN], const char *token)
{
	char wgb64[WG_KEY_B64_LEN];
	json_t *j;

	key_to_base64(wgb64, wg_pub);
	j = json_pack("{s:o, s:o, s:o, s:s}", "ek_cert", b64_json(ek_cert, ek_cert_len),
		"ek_public", b64_json(ek_pub, ek_pub_len), "ak_public", b64_json(ak_pub, ak_pub_len),
		"wg_public_key", wgb64);
	if (j == NULL)
		return NULL;
	if ((token != NULL && json_object_set_new(j, "token", json_string(token)) < 0) ||
		(conf->tenant != NULL && json_object_set_new(j, "tenant",
			json_string(conf->tenant)) < 0)) {
		json_decref(j);
		return NULL;
	}
	return j;
}

static int
answer_error(const char *round, long status, const json_t *resp, char *errbuf, size_t errlen)
{
	char text[400];
	const char *code;

	server_error_text(status, resp, text, sizeof(text), &code);
	snprintf(errbuf, errlen, "%s: %s", round, text);
	return status_errno(status, code);
}

int
ekd_enroll_once(const struct ekd_conf *conf, bool staged, struct ekd_enrollment *ret,
	unsigned int *ret_retry_after, char *errbuf, size_t errlen)
{
	char *token = NULL;
	enum tpm2_ek_type ek_type;
	struct tpmdev *dev = NULL;
	struct tpmdev_quote *q = NULL;
	struct challenge c = { 0 };
	uint8_t *ek_pub = NULL, *ek_cert = NULL, *ak_pub = NULL;
	size_t ek_pub_len = 0, ek_cert_len = 0, ak_pub_len = 0;
	uint8_t wg_pub[WG_KEY_LEN], secret[TPMDEV_SECRET_LEN];
	json_t *body = NULL, *resp = NULL;
	struct client_conn *conn = NULL;
	long status = 0;
	int r;

	errbuf[0] = '\0';
	*ret_retry_after = 0;
	r = ekd_conf_require_server(conf, errbuf, errlen);
	if (r < 0)
		return r;
	r = tpm2_ek_type_parse(conf->ek_type, &ek_type);
	if (r < 0)
		return r;
	if (conf->token_file != NULL) {
		token = secmem_alloc(EKD_TOKEN_MAX);
		if (token == NULL) {
			r = -errno;
			snprintf(errbuf, errlen, "cannot lock memory for the token: %s",
				strerror(errno));
			return r;
		}
		r = ekd_read_token(conf->token_file, token, errbuf, errlen);
		if (r < 0)
			goto out;
	}

	/* What the TPM says we are. */
	r = staged ? tpmdev_wg_public_staged(conf->state_dir, wg_pub) :
		tpmdev_wg_public(conf->state_dir, wg_pub);
	if (r == 0)
		r = tpmdev_ak_public(conf->state_dir, &ak_pub, &ak_pub_len);
	if (r < 0) {
		snprintf(errbuf, errlen, "the device is not provisioned in '%s' (%s): run "
			"'edge-keyd provision' first", conf->state_dir, strerror(-r));
		goto out;
	}
	r = tpmdev_open(&dev, conf->tcti);
	if (r < 0) {
		tpm_open_error(conf, r, errbuf, errlen);
		goto out;
	}
	r = tpmdev_ek(dev, ek_type, 0, &ek_pub, &ek_pub_len, &ek_cert, &ek_cert_len);
	if (r < 0) {
		snprintf(errbuf, errlen, "TPM: read the %s EK and its certificate: %s %s",
			conf->ek_type, strerror(-r), tpmdev_last_error(dev));
		goto out;
	}
	/* Free the TPM while the network is slow; other commands may need it. */
	tpmdev_close(dev);
	dev = NULL;

	/* Round 1: challenge. */
	body = challenge_body(conf, ek_pub, ek_pub_len, ek_cert, ek_cert_len, ak_pub, ak_pub_len,
		wg_pub, token);
	if (body == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = client_conn_new(&conn);
	if (r < 0) {
		json_decref(body);
		body = NULL;
		goto out;
	}
	r = post_json(conf, conn, "/v1/enroll/challenge", NULL, body, &status, &resp,
		ret_retry_after, errbuf, errlen);
	json_wipe_member(body, "token");
	json_decref(body);
	body = NULL;
	if (r < 0)
		goto out;
	if (status != 200) {
		r = answer_error("challenge", status, resp, errbuf, errlen);
		goto out;
	}
	r = parse_challenge(resp, &c, errbuf, errlen);
	json_decref(resp);
	resp = NULL;
	if (r < 0)
		goto out;

	/* The TPM answers: ActivateCredential, then the quote over nonce || key. */
	q = calloc(1, sizeof(*q));
	if (q == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = tpmdev_open(&dev, conf->tcti);
	if (r < 0) {
		tpm_open_error(conf, r, errbuf, errlen);
		goto out;
	}
	r = tpmdev_activate(dev, conf->state_dir, ek_type, c.blob, c.blob_len, c.seed, c.seed_len,
		secret);
	if (r < 0) {
		snprintf(errbuf, errlen, "TPM: ActivateCredential: %s %s", strerror(-r),
			tpmdev_last_error(dev));
		goto out;
	}
	r = tpmdev_quote(dev, conf->state_dir, c.nonce, wg_pub, &c.sel, q);
	if (r < 0) {
		snprintf(errbuf, errlen, "TPM: Quote: %s %s", strerror(-r), tpmdev_last_error(dev));
		goto out;
	}
	tpmdev_close(dev);
	dev = NULL;

	/* Round 2: complete. */
	body = json_pack("{s:s, s:o, s:o, s:o, s:o}", "session", c.session, "secret",
		b64_json(secret, sizeof(secret)), "quote", b64_json(q->quote, q->quote_len),
		"signature", b64_json(q->sig, q->sig_len), "pcrs", b64_json(q->pcrs, q->pcrs_len));
	if (body == NULL) {
		r = -ENOMEM;
		goto out;
	}
	r = post_json(conf, conn, "/v1/enroll/complete", NULL, body, &status, &resp,
		ret_retry_after, errbuf, errlen);
	if (r < 0)
		goto out;
	if (status != 200) {
		r = answer_error("complete", status, resp, errbuf, errlen);
		goto out;
	}
	r = ekd_enrollment_from_response(ret, resp, wg_pub, time(NULL), conf->url, errbuf,
		errlen);
out:
	OPENSSL_cleanse(secret, sizeof(secret));
	/* It carried the activated secret. */
	json_wipe_member(body, "secret");
	json_decref(body);
	secmem_free(token, EKD_TOKEN_MAX);
	client_conn_free(conn);
	tpmdev_close(dev);
	challenge_clear(&c);
	free(q);
	free(ek_pub);
	free(ek_cert);
	free(ak_pub);
	json_decref(resp);
	return r;
}

/*
 * ekd_enroll_once for the one-shot commands (enroll, rotate): a session that expired on the
 * way (410: slow TPM, slow link) is started again once; a control plane that says it is busy
 * (429, 503 with Retry-After) is waited for, up to EKD_BUSY_TRIES times, as long as it asks
 * for at most EKD_BUSY_WAIT_MAX seconds (a person or a timer waits on these commands).
 */
static int
enroll_patiently(const struct ekd_conf *conf, bool staged, struct ekd_enrollment *ret,
	const char *what, char *errbuf, size_t errlen)
{
	unsigned int after = 0, busy = 0;
	bool expired = false;
	int r;

	for (;;) {
		r = ekd_enroll_once(conf, staged, ret, &after, errbuf, errlen);
		if (r == -ETIME && !expired) {
			/* The session expired on the way: once more. */
			log_info("%s%s; starting again", what, errbuf);
			expired = true;
			continue;
		}
		if (r != -EAGAIN || after == 0 || ++busy > EKD_BUSY_TRIES)
			return r;
		if (after > EKD_BUSY_WAIT_MAX) {
			log_warnx("%scontrol plane busy, it asks to retry in %u s: giving up (%s)",
				what, after, errbuf);
			return r;
		}
		log_warnx("%scontrol plane busy, retrying in %u s (%s)", what, after, errbuf);
		if (ekd_sleep_unless_stopping(after) < 0)
			return r;
	}
}

static void
log_enrollment(const char *what, const struct ekd_enrollment *e)
{
	char addr[64], fp[WG_KEY_FP_LEN];

	ekd_allowedip_format(&e->address, addr, sizeof(addr));
	key_fingerprint(fp, e->wg_public_key);
	log_info("%s: device %s in tenant '%s', address %s, control plane %s, key %s", what,
		e->device_id, e->tenant, addr, e->endpoint, fp);
}

int
ekd_enroll(const struct ekd_conf *conf)
{
	struct ekd_enrollment e;
	char errbuf[512];
	int r;

	r = enroll_patiently(conf, false, &e, "", errbuf, sizeof(errbuf));
	if (r < 0) {
		log_warnx("enrollment failed: %s", errbuf[0] ? errbuf : strerror(-r));
		return r;
	}
	r = ekd_enrollment_store(conf->state_dir, &e, errbuf, sizeof(errbuf));
	if (r < 0) {
		log_warnx("enrolled, but %s", errbuf);
		return r;
	}
	log_enrollment("enrolled", &e);
	/*
	 * A live interface (the daemon runs) gets the enrollment at once: the control plane
	 * may have made its peer anew (a reinstated device), and only a fresh handshake from
	 * our side tells it where we are.
	 */
	r = ekd_tunnel_rekey(conf, &e);
	if (r < 0 && r != -ENODEV)
		log_warnx("could not update interface '%s': %s; the daemon will", conf->ifname,
			strerror(-r));
	return 0;
}

/* ---- rotation ----------------------------------------------------------------------------- */

/*
 * One rotation at a time per state directory: `edge-keyd rotate` (by hand, from a timer)
 * and the daemon finishing an interrupted one both write wg.sealed.next. An flock on the
 * directory, which the kernel releases when the process ends, however it ends. Returns
 * the descriptor to close, -EBUSY if another process holds it.
 */
static int
rotate_lock(const char *state_dir)
{
	int fd, r;

	fd = open(state_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		r = errno == EWOULDBLOCK ? -EBUSY : -errno;
		close(fd);
		return r;
	}
	return fd;
}

static int rotate_locked(const struct ekd_conf *conf);

int
ekd_rotate(const struct ekd_conf *conf)
{
	int fd, r;

	fd = rotate_lock(conf->state_dir);
	if (fd == -ENOENT)
		return rotate_locked(conf); /* no state directory: it says "not enrolled" */
	if (fd < 0) {
		if (fd == -EBUSY)
			log_warnx("rotate: another rotation of '%s' is running", conf->state_dir);
		else
			log_warnx("rotate: cannot lock '%s': %s", conf->state_dir, strerror(-fd));
		return fd;
	}
	r = rotate_locked(conf);
	close(fd);
	return r;
}

int
ekd_rotate_resume(const struct ekd_conf *conf)
{
	struct ekd_enrollment e;
	uint8_t staged[WG_KEY_LEN];
	char fp[WG_KEY_FP_LEN], errbuf[512];
	int r = 0;

	if (tpmdev_wg_public_staged(conf->state_dir, staged) < 0)
		return 0;
	if (ekd_enrollment_load(conf->state_dir, &e, errbuf, sizeof(errbuf)) < 0)
		return 0; /* never enrolled: nothing the control plane could hold */
	key_fingerprint(fp, staged);
	log_info("a rotation was interrupted (key %s staged, not committed; the control plane "
		"may hold either key): finishing it", fp);
	for (unsigned int i = 0; i < 3; i++) {
		if (i > 0 && ekd_sleep_unless_stopping(5u << (i - 1)) < 0)
			break;
		r = ekd_rotate(conf);
		if (r == 0 || r == -EBUSY)
			return r;
		/* a definite refusal dropped the staged key: the control plane has ours */
		if (tpmdev_wg_public_staged(conf->state_dir, staged) < 0)
			return r;
	}
	log_warnx("the interrupted rotation is not finished (%s): using the committed key; if the "
		"control plane took the staged one, the tunnel stays down until 'edge-keyd rotate' "
		"or the re-enrollment after 'reenroll_after'", strerror(-r));
	return r;
}

static int
rotate_locked(const struct ekd_conf *conf)
{
	struct ekd_enrollment old, e;
	TPML_PCR_SELECTION sel;
	struct tpmdev *dev = NULL;
	uint8_t new_pub[WG_KEY_LEN];
	char errbuf[512], a_old[64], a_new[64], fp_old[WG_KEY_FP_LEN], fp_new[WG_KEY_FP_LEN];
	int r;

	r = ekd_enrollment_load(conf->state_dir, &old, errbuf, sizeof(errbuf));
	if (r < 0) {
		log_warnx("rotate: %s", errbuf);
		return r;
	}
	if (conf->pcr_policy != NULL && tpm2_pcr_selection_parse(conf->pcr_policy, &sel) < 0)
		return -EINVAL;

	/* 1. a new sealed key, staged (a staged key left by an interrupted run is reused) */
	r = open_tpm(conf, &dev);
	if (r < 0)
		return r;
	r = tpmdev_rotate_prepare(dev, conf->state_dir, conf->pcr_policy ? &sel : NULL, new_pub);
	if (r < 0) {
		tpm_fail(dev, "make the new sealed key", r);
		tpmdev_close(dev);
		return r;
	}
	tpmdev_close(dev);
	key_fingerprint(fp_old, old.wg_public_key);
	key_fingerprint(fp_new, new_pub);
	log_info("rotate: new key %s staged (current %s)", fp_new, fp_old);

	/* 2. the attested enrollment of the new key */
	r = enroll_patiently(conf, true, &e, "rotate: ", errbuf, sizeof(errbuf));
	if (r < 0) {
		log_warnx("rotate: enrollment of the new key failed: %s",
			errbuf[0] ? errbuf : strerror(-r));
		if (r == -EACCES || r == -EPERM || r == -EINVAL || r == -EEXIST) {
			/* A definite no: the server still has the current key. */
			(void)tpmdev_rotate_abort(conf->state_dir);
			log_warnx("rotate: the staged key was dropped; the current key stays");
		} else {
			/* Maybe the server took it and we missed the answer: keep it staged. */
			log_warnx("rotate: the new key stays staged; run 'edge-keyd rotate' again");
		}
		return r;
	}

	/* 3. the server has the new key: make it ours, then record it */
	r = tpmdev_rotate_commit(conf->state_dir);
	if (r < 0) {
		log_warnx("rotate: the server accepted key %s but committing it failed: %s; run "
			"'edge-keyd rotate' again", fp_new, strerror(-r));
		return r;
	}
	r = ekd_enrollment_store(conf->state_dir, &e, errbuf, sizeof(errbuf));
	if (r < 0) {
		log_warnx("rotate: key committed, but %s", errbuf);
		return r;
	}
	ekd_allowedip_format(&old.address, a_old, sizeof(a_old));
	ekd_allowedip_format(&e.address, a_new, sizeof(a_new));
	if (strcmp(a_old, a_new) != 0)
		log_warnx("rotate: the control plane moved this device from %s to %s", a_old,
			a_new);
	log_enrollment("rotated", &e);

	/* 4. the live interface, if there is one (else the daemon configures it later) */
	r = ekd_tunnel_rekey(conf, &e);
	if (r == -ENODEV) {
		log_info("rotate: interface '%s' is not up; the daemon will use the new key",
			conf->ifname);
		r = 0;
	} else if (r < 0) {
		log_warnx("rotate: could not give interface '%s' the new key: %s; the daemon "
			"will", conf->ifname, strerror(-r));
		r = 0;
	}
	return r;
}
