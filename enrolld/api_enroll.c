// SPDX-License-Identifier: MIT
/*
 * The device-facing half of the API: POST /v1/enroll/challenge and /v1/enroll/complete
 * (protocol in /work/briefs/protocol.md and docs/api.md).
 *
 * A session lives in two places. The store holds what must survive and be used once: the
 * tenant, EK id, AK name and public area, WireGuard key, nonce, authorisation, expiry and
 * the used flag, which store_enroll() consumes in the same transaction as the enrollment.
 * This file keeps the attest_challenge (the converted AK and the secret) in memory, as a
 * fast path. Where the store seals secrets at rest (PostgreSQL, under the KEK) the secret
 * is kept with the session too, and a node that has no memory of a session (it was
 * answered by another node, or before a restart) rebuilds the challenge from the store,
 * re-checking the AK public area as at the challenge. Where it does not (LMDB) nothing of
 * a session reaches the disk (the LMDB store keeps its half in memory too), and a session
 * issued before a restart is answered 410, the device simply starts again (the store
 * tells such ids by their tag: lmdb_session.c). Either way the store is the authority: every
 * completion reads the session from it (unknown, used, expired) and the enrollment
 * consumes it in its own transaction, so a session completes once across all nodes.
 *
 * Nothing is changed by a request that is malformed (400); an attestation that fails
 * uses its session up (one guess per session), which is the point of sessions.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/b64.h"
#include "common/key.h"
#include "common/log.h"
#include "common/tpm2.h"
#include "enrolld/attest/attest.h"
#include "enrolld/enrolld.h"

/* The table's size: attestation.max_sessions, the cap on open sessions, is at most this. */
#define SESSIONS_MAX 65536
#define EK_CERT_MAX 8192
#define TPM_STRUCT_MAX 4096

struct mem_session {
	uint8_t id[STORE_SESSION_ID_LEN];
	struct attest_challenge *c;
	time_t expires;
};

struct enroll_sessions {
	pthread_mutex_t lock;
	struct mem_session *arr;
	size_t n;
};

int
enroll_sessions_new(struct enroll_sessions **ret)
{
	struct enroll_sessions *es = calloc(1, sizeof(*es));

	if (es == NULL)
		return -ENOMEM;
	pthread_mutex_init(&es->lock, NULL);
	es->arr = calloc(SESSIONS_MAX, sizeof(*es->arr));
	if (es->arr == NULL) {
		free(es);
		return -ENOMEM;
	}
	*ret = es;
	return 0;
}

void
enroll_sessions_free(struct enroll_sessions *es)
{
	if (es == NULL)
		return;
	for (size_t i = 0; i < es->n; i++)
		attest_challenge_free(es->arr[i].c);
	pthread_mutex_destroy(&es->lock);
	free(es->arr);
	free(es);
}

/*
 * Drop the expired entries; the caller holds the lock. What is left are the open sessions:
 * challenged, not expired, not yet completed (a completion takes its entry, whatever the
 * outcome). Returns the seconds until the first of them expires (1 at least; 0 if none).
 */
static unsigned int
sessions_purge(struct enroll_sessions *es, time_t now)
{
	time_t first = 0;

	for (size_t i = 0; i < es->n;) {
		if (es->arr[i].expires <= now) {
			attest_challenge_free(es->arr[i].c);
			es->arr[i] = es->arr[--es->n];
			continue;
		}
		if (first == 0 || es->arr[i].expires < first)
			first = es->arr[i].expires;
		i++;
	}
	return first == 0 ? 0 : first - now < 1 ? 1 : (unsigned int)(first - now);
}

/*
 * Whether @max sessions are open; then *ret_retry_after is the seconds until one of them
 * expires (a completion may free one sooner).
 */
static bool
sessions_full(struct enroll_sessions *es, size_t max, time_t now, unsigned int *ret_retry_after)
{
	unsigned int after;
	bool full;

	pthread_mutex_lock(&es->lock);
	after = sessions_purge(es, now);
	full = es->n >= max || es->n == SESSIONS_MAX;
	pthread_mutex_unlock(&es->lock);
	if (full)
		*ret_retry_after = after;
	return full;
}

/*
 * Keep @c under @id; expired entries are dropped on the way. -EAGAIN when @max sessions are
 * open (*ret_retry_after as sessions_full()).
 */
static int
sessions_put(struct enroll_sessions *es, const uint8_t id[STORE_SESSION_ID_LEN],
	struct attest_challenge *c, time_t now, size_t max, unsigned int *ret_retry_after)
{
	unsigned int after;
	int r = 0;

	pthread_mutex_lock(&es->lock);
	after = sessions_purge(es, now);
	if (es->n >= max || es->n == SESSIONS_MAX) {
		*ret_retry_after = after;
		r = -EAGAIN;
	} else {
		memcpy(es->arr[es->n].id, id, STORE_SESSION_ID_LEN);
		es->arr[es->n].c = c;
		es->arr[es->n].expires = attest_challenge_expires(c);
		es->n++;
	}
	pthread_mutex_unlock(&es->lock);
	return r;
}

/* Take the challenge of @id out of the table (the caller owns it), or NULL. */
static struct attest_challenge *
sessions_take(struct enroll_sessions *es, const uint8_t id[STORE_SESSION_ID_LEN])
{
	struct attest_challenge *c = NULL;

	pthread_mutex_lock(&es->lock);
	for (size_t i = 0; i < es->n; i++)
		if (CRYPTO_memcmp(es->arr[i].id, id, STORE_SESSION_ID_LEN) == 0) {
			c = es->arr[i].c;
			es->arr[i] = es->arr[--es->n];
			break;
		}
	pthread_mutex_unlock(&es->lock);
	return c;
}

/* ---- helpers ------------------------------------------------------------------------------ */

static int
sha256(const void *p, size_t n, uint8_t out[32])
{
	return EVP_Digest(p, n, out, NULL, EVP_sha256(), NULL) == 1 ? 0 : -EIO;
}

/* A required base64 member, decoded; -EBADMSG with an error set. */
static int
b64_member(struct http_request *req, json_t *body, const char *key, size_t max, uint8_t **ret,
	size_t *ret_len)
{
	const char *s;
	int r;

	*ret = NULL;
	r = api_json_str(req, body, key, true, &s);
	if (r < 0)
		return r;
	r = b64_decode(s, max, ret, ret_len);
	if (r == -E2BIG)
		return http_error(req, -EBADMSG, "invalid_body", "'%s' is too long", key);
	if (r < 0 || *ret_len == 0) {
		free(*ret);
		*ret = NULL;
		return http_error(req, -EBADMSG, "invalid_body", "'%s' is not standard base64", key);
	}
	return 0;
}

static int
reject(struct http_request *req, int r, enum attest_reason reason)
{
	if (r == -EACCES) {
		/* the operator's to fix: every device under that CA is refused meanwhile */
		if (reason == ATTEST_EK_CRL_EXPIRED || reason == ATTEST_EK_CRL_INVALID)
			log_warnx("enrollment refused: %s: %s", attest_reason_code(reason),
				attest_reason_message(reason));
		metrics_count_attest_failure(attest_reason_code(reason));
		metrics_count_enrollment("rejected");
		return http_error(req, reason == ATTEST_SESSION_EXPIRED ? -ETIMEDOUT :
				       reason == ATTEST_SESSION_USED ? -ESTALE : -EPERM,
			attest_reason_code(reason), "%s", attest_reason_message(reason));
	}
	metrics_count_enrollment("error");
	return http_error(req, r < 0 ? r : -EIO, "internal", "attestation failed: %s",
		strerror(r < 0 ? -r : EIO));
}

/* 503 too_many_sessions, Retry-After when one of them expires. */
static int
sessions_refusal(struct http_request *req, unsigned int retry_after)
{
	metrics_count_refused("sessions");
	http_request_set_retry_after(req, retry_after);
	return http_error(req, -EAGAIN, "too_many_sessions",
		"too many enrollment sessions are open: retry after %u s", retry_after);
}

/* Authorisation problems of a token, with one code each. */
static int
token_error(struct http_request *req, const char *code, const char *msg)
{
	metrics_count_enrollment("unauthorised");
	return http_error(req, -EPERM, code, "%s", msg);
}

/*
 * The tenant a token-less device enrolls in: the one it is registered in (or @want if it
 * names one it is registered in). -EPERM not registered, -EINVAL ambiguous.
 */
static int
registered_tenant(struct http_request *req, struct enrolld *e, const uint8_t ek_id[32],
	const char *want, char ret[STORE_NAME_MAX])
{
	struct store_tenant *ts = NULL;
	size_t n_ts = 0, found = 0;
	int r;

	r = store_tenant_list(e->store, &ts, &n_ts);
	if (r < 0)
		return api_store_error(req, r, "tenants");
	for (size_t i = 0; i < n_ts; i++) {
		if (want != NULL && strcmp(ts[i].name, want) != 0)
			continue;
		r = store_registration_get(e->store, ts[i].name, ek_id, NULL);
		if (r == -ENOENT)
			continue;
		if (r < 0) {
			free(ts);
			return api_store_error(req, r, "registrations");
		}
		if (found++ == 0)
			snprintf(ret, STORE_NAME_MAX, "%s", ts[i].name);
	}
	free(ts);
	if (found == 0)
		return token_error(req, "not_registered",
			"no enrollment token was given and this EK is not registered in any "
			"tenant (or not in the one named)");
	if (found > 1)
		return http_error(req, -EINVAL, "tenant_required",
			"this EK is registered in several tenants: name one in 'tenant'");
	return 0;
}

/* The tenant's PCR policy as attest_complete() takes it; false if it has none. */
static bool
tenant_policy(const struct store_tenant *t, struct tpm2_pcr_values *v)
{
	uint32_t mask = 0;

	if (t->n_pcrs == 0)
		return false;
	memset(v, 0, sizeof(*v));
	for (unsigned int i = 0; i < t->n_pcrs; i++)
		mask |= 1U << t->pcrs[i].index;
	if (tpm2_pcr_selection_from_mask(TPM2_ALG_SHA256, mask, &v->sel) < 0)
		return false;
	for (unsigned int i = 0; i < t->n_pcrs; i++) {
		v->value[i].size = 32;
		memcpy(v->value[i].buffer, t->pcrs[i].sha256, 32);
	}
	v->count = t->n_pcrs;
	return true;
}

static void
pcr_selection_string(const struct store_tenant *t, char *buf, size_t len)
{
	size_t off;

	buf[0] = '\0';
	if (t->n_pcrs == 0)
		return;
	off = (size_t)snprintf(buf, len, "sha256:");
	for (unsigned int i = 0; i < t->n_pcrs && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%u", i ? "," : "",
			(unsigned int)t->pcrs[i].index);
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

/* ---- POST /v1/enroll/challenge ------------------------------------------------------------- */

static const char *const challenge_members[] = { "ek_cert", "ek_public", "ak_public",
	"wg_public_key", "token", "tenant", NULL };

int
api_enroll_challenge(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	uint8_t *ek_cert = NULL, *ek_pub = NULL, *ak_pub = NULL;
	size_t ek_cert_len, ek_pub_len, ak_pub_len;
	const char *token = NULL, *tenant_name = NULL, *wg_b64;
	uint8_t wg_pub[WG_KEY_LEN], ek_id[32], sid[STORE_SESSION_ID_LEN];
	char tenant[STORE_NAME_MAX] = "", sid_hex[2 * STORE_SESSION_ID_LEN + 1], sel[96];
	struct attest_challenge *c = NULL;
	struct attest_key *ek = NULL, *ak = NULL;
	struct store_session sess = { 0 };
	struct store_device dev;
	struct store_tenant t;
	enum attest_reason reason;
	const uint8_t *blob, *seed;
	size_t blob_len, seed_len;
	TPM2B_NAME ak_name;
	json_t *body = NULL, *out = NULL;
	time_t now = time(NULL);
	unsigned int after = 1;
	int r;

	r = http_request_json(req, &body);
	if (r < 0)
		return r;
	if ((r = api_json_known(req, body, challenge_members)) < 0 ||
	    (r = b64_member(req, body, "ek_cert", EK_CERT_MAX, &ek_cert, &ek_cert_len)) < 0 ||
	    (r = b64_member(req, body, "ek_public", TPM_STRUCT_MAX, &ek_pub, &ek_pub_len)) < 0 ||
	    (r = b64_member(req, body, "ak_public", TPM_STRUCT_MAX, &ak_pub, &ak_pub_len)) < 0 ||
	    (r = api_json_str(req, body, "wg_public_key", true, &wg_b64)) < 0 ||
	    (r = api_json_str(req, body, "token", false, &token)) < 0 ||
	    (r = api_json_str(req, body, "tenant", false, &tenant_name)) < 0)
		goto out;
	if (key_from_base64(wg_pub, wg_b64) < 0 || key_is_zero(wg_pub)) {
		r = http_error(req, -EBADMSG, "invalid_body",
			"'wg_public_key' must be the base64 of a 32-byte WireGuard public key");
		goto out;
	}
	if (e->trust == NULL) {
		r = http_error(req, -EAGAIN, "attestation_unavailable",
			"this server has no EK trust anchors (attestation.ek_ca_dir)");
		goto out;
	}
	/* Before any cryptography: a full table would refuse the session at the end anyway. */
	if (sessions_full(e->sessions, (size_t)e->conf.max_sessions, now, &after)) {
		r = sessions_refusal(req, after);
		goto out;
	}

	/* 1. the TPM: EK certificate, EK public area, AK (each key converted once, here) */
	r = attest_ek_verify(e->trust, ek_cert, ek_cert_len, ek_pub, ek_pub_len, now, &ek, &reason);
	if (r == 0 && attest_key_id(ek, ek_id) < 0) {
		r = -EIO;
		reason = ATTEST_ERR_INTERNAL;
	}
	if (r == 0)
		r = attest_ak_new(ak_pub, ak_pub_len, &ak, &reason);
	if (r < 0) {
		r = reject(req, r, reason);
		goto out;
	}
	ak_name = *attest_key_name(ak);

	/* 2. the authorisation, which decides the tenant */
	if (token != NULL) {
		struct store_token tok;

		r = sha256(token, strlen(token), sess.token_hash);
		if (r < 0)
			goto out;
		r = store_token_get(e->store, sess.token_hash, &tok);
		if (r == -ENOENT) {
			r = token_error(req, "token_invalid", "unknown enrollment token");
			goto out;
		}
		if (r < 0) {
			r = api_store_error(req, r, "token");
			goto out;
		}
		if (tok.revoked) {
			r = token_error(req, "token_revoked", "this enrollment token was revoked");
			goto out;
		}
		if (tok.expires != 0 && tok.expires <= (int64_t)now) {
			r = token_error(req, "token_expired", "this enrollment token has expired");
			goto out;
		}
		if (tok.uses_left == 0) {
			r = token_error(req, "token_used_up", "this enrollment token has no use left");
			goto out;
		}
		if (tenant_name != NULL && strcmp(tenant_name, tok.tenant) != 0) {
			r = token_error(req, "token_invalid",
				"this enrollment token belongs to another tenant");
			goto out;
		}
		snprintf(tenant, sizeof(tenant), "%s", tok.tenant);
		sess.has_token = 1;
	} else {
		r = registered_tenant(req, e, ek_id, tenant_name, tenant);
		if (r < 0)
			goto out;
	}
	r = store_ek_revoked(e->store, ek_id);
	if (r < 0) {
		r = api_store_error(req, r, "revocations");
		goto out;
	}
	if (r == 1) {
		metrics_count_enrollment("revoked");
		r = http_error(req, -EPERM, "device_revoked",
			"this device is revoked; an administrator must reinstate it");
		goto out;
	}
	r = store_device_by_ek(e->store, ek_id, &dev);
	if (r == 0 && strcmp(dev.tenant, tenant) != 0) {
		metrics_count_enrollment("conflict");
		r = http_error(req, -EEXIST, "ek_enrolled_elsewhere",
			"this EK is enrolled in another tenant");
		goto out;
	}
	r = store_tenant_get(e->store, tenant, &t);
	if (r < 0) {
		r = api_store_error(req, r, "tenant");
		goto out;
	}

	/* 3. the challenge: MakeCredential for a fresh secret, and a nonce */
	r = attest_challenge_new_keys(ek, ak, wg_pub, now, (unsigned int)e->conf.session_ttl, &c,
		&reason);
	if (r < 0) {
		r = reject(req, r, reason);
		goto out;
	}
	snprintf(sess.tenant, sizeof(sess.tenant), "%s", tenant);
	memcpy(sess.ek_hash, ek_id, 32);
	if (ak_name.size > sizeof(sess.ak_name)) {
		r = http_error(req, -EIO, "internal", "AK name too long");
		goto out;
	}
	memcpy(sess.ak_name, ak_name.name, ak_name.size);
	sess.ak_name_len = (uint8_t)ak_name.size;
	memcpy(sess.wg_pubkey, wg_pub, WG_KEY_LEN);
	memcpy(sess.nonce, attest_challenge_nonce(c), ATTEST_NONCE_LEN);
	sess.nonce_len = ATTEST_NONCE_LEN;
	/* Sealed at rest, the secret goes with the session: any node can complete it. */
	if (store_seals_secrets(e->store)) {
		memcpy(sess.secret, attest_challenge_secret(c), ATTEST_SECRET_LEN);
		sess.secret_len = ATTEST_SECRET_LEN;
	}
	if (ak_pub_len > sizeof(sess.ak_public)) {
		r = http_error(req, -EIO, "internal", "AK public area too long");
		goto out;
	}
	memcpy(sess.ak_public, ak_pub, ak_pub_len);
	sess.ak_public_len = (uint16_t)ak_pub_len;
	sess.expires = (int64_t)attest_challenge_expires(c);
	r = store_session_create(e->store, &sess, sid);
	if (r < 0) {
		r = api_store_error(req, r, "session");
		goto out;
	}
	r = sessions_put(e->sessions, sid, c, now, (size_t)e->conf.max_sessions, &after);
	if (r < 0) {
		(void)store_session_use(e->store, sid);
		r = sessions_refusal(req, after);
		goto out;
	}
	attest_challenge_credential(c, &blob, &blob_len);
	attest_challenge_encrypted_seed(c, &seed, &seed_len);
	api_hex(sid, sizeof(sid), sid_hex);
	pcr_selection_string(&t, sel, sizeof(sel));
	out = json_pack("{s:s,s:o,s:o,s:o,s:s,s:I}", "session", sid_hex, "credential_blob",
		b64_json(blob, blob_len), "encrypted_seed", b64_json(seed, seed_len), "nonce",
		b64_json(attest_challenge_nonce(c), ATTEST_NONCE_LEN), "pcr_selection", sel,
		"expires_in", (json_int_t)e->conf.session_ttl);
	c = NULL; /* owned by the table now */
	if (out == NULL) {
		r = -ENOMEM;
		goto out;
	}
	*ret_body = out;
	r = 200;
out:
	attest_challenge_free(c);
	attest_key_free(ak);
	attest_key_free(ek);
	store_session_wipe(&sess);
	free(ek_cert);
	free(ek_pub);
	free(ak_pub);
	json_decref(body);
	return r;
}

/* ---- POST /v1/enroll/complete ------------------------------------------------------------- */

/*
 * Rebuild the challenge of a session this process has no memory of (made by another node,
 * or before a restart) from its stored record: the AK public area checked again as at the
 * challenge (attest_ak_new) and its name compared with the one the secret was bound to, the
 * secret as the store opened it. -ENOENT if the record cannot rebuild it: no secret at rest
 * (LMDB) or no AK public area (made before it was kept); -EUCLEAN if it is inconsistent.
 */
static int
challenge_from_store(const struct store_session *sess, struct attest_challenge **ret)
{
	struct attest_key *ak = NULL;
	const TPM2B_NAME *name;
	enum attest_reason reason;
	int r;

	if (sess->secret_len != ATTEST_SECRET_LEN || sess->nonce_len != ATTEST_NONCE_LEN ||
	    sess->ak_public_len == 0)
		return -ENOENT;
	r = attest_ak_new(sess->ak_public, sess->ak_public_len, &ak, &reason);
	if (r < 0) {
		log_debug("stored AK public area refused: %s", attest_reason_code(reason));
		return r == -EACCES ? -EUCLEAN : r;
	}
	name = attest_key_name(ak);
	if (name->size != sess->ak_name_len ||
	    memcmp(name->name, sess->ak_name, sess->ak_name_len) != 0) {
		r = -EUCLEAN;
		goto out;
	}
	r = attest_challenge_restore(ak, sess->secret, sess->nonce, sess->wg_pubkey,
		(time_t)sess->expires, ret);
out:
	attest_key_free(ak);
	return r;
}

static const char *const complete_members[] = { "session", "secret", "quote", "signature", "pcrs",
	NULL };

/* The enrollment was refused by the store (after a good attestation). */
static int
enroll_error(struct http_request *req, int r)
{
	switch (r) {
	case -EPERM:
		metrics_count_enrollment("revoked");
		return http_error(req, -EPERM, "device_revoked",
			"this device is revoked; an administrator must reinstate it");
	case -EACCES:
		return token_error(req, "not_authorised",
			"the token has no use left or was revoked, or the EK is no longer "
			"registered");
	case -ETIMEDOUT:
		return token_error(req, "token_expired", "this enrollment token has expired");
	case -EALREADY:
		metrics_count_enrollment("rejected");
		return http_error(req, -ESTALE, "session_used", "this session was already used");
	case -EADDRNOTAVAIL:
		metrics_count_enrollment("exhausted");
		return http_error(req, -EAGAIN, "address_pool_exhausted",
			"the tenant's prefix has no free address left");
	case -EEXIST:
		metrics_count_enrollment("conflict");
		return http_error(req, -EEXIST, "conflict",
			"this WireGuard key belongs to another device, or the EK to another tenant");
	default:
		metrics_count_enrollment("error");
		return api_store_error(req, r, "enrollment");
	}
}

int
api_enroll_complete(struct http_request *req, json_t **ret_body, void *ctx)
{
	struct enrolld *e = ctx;
	uint8_t *secret = NULL, *quote = NULL, *sig = NULL, *pcrs = NULL;
	size_t secret_len, quote_len, sig_len, pcrs_len;
	const char *sid_hex;
	uint8_t sid[STORE_SESSION_ID_LEN], server_pub[WG_KEY_LEN];
	const uint8_t *keys[2];
	char id[24], a4[ADDR_STR_LEN + 4], p4[ADDR_STR_LEN], pub_b64[WG_KEY_B64_LEN];
	struct attest_challenge *c = NULL;
	struct store_session sess = { 0 };
	struct store_enroll_req er = { 0 };
	struct store_device dev, before;
	struct tpm2_pcr_values *policy = NULL;
	struct attest_response resp = { 0 };
	struct store_tenant t;
	enum attest_reason reason;
	bool has_policy;
	char *wgq = NULL;
	json_t *body = NULL, *out = NULL, *allowed;
	int r, result;

	r = http_request_json(req, &body);
	if (r < 0)
		return r;
	if ((r = api_json_known(req, body, complete_members)) < 0 ||
	    (r = api_json_str(req, body, "session", true, &sid_hex)) < 0 ||
	    (r = b64_member(req, body, "secret", 64, &secret, &secret_len)) < 0 ||
	    (r = b64_member(req, body, "quote", TPM_STRUCT_MAX, &quote, &quote_len)) < 0 ||
	    (r = b64_member(req, body, "signature", TPM_STRUCT_MAX, &sig, &sig_len)) < 0 ||
	    (r = b64_member(req, body, "pcrs", TPM_STRUCT_MAX, &pcrs, &pcrs_len)) < 0)
		goto out;
	if (api_unhex(sid_hex, sid, sizeof(sid)) < 0) {
		r = http_error(req, -EBADMSG, "invalid_body",
			"'session' must be the 32 hex characters the challenge returned");
		goto out;
	}

	r = store_session_get(e->store, sid, &sess);
	if (r == -ENOENT) {
		r = http_error(req, -ENOENT, "unknown_session", "no such enrollment session");
		goto out;
	}
	if (r == -EALREADY || r == -ETIMEDOUT)
		/* used (perhaps through another node) or expired: its memory half is of no use */
		attest_challenge_free(sessions_take(e->sessions, sid));
	if (r == -EALREADY) {
		r = http_error(req, -ESTALE, "session_used", "this session was already used");
		goto out;
	}
	if (r == -ETIMEDOUT) {
		r = http_error(req, -ETIMEDOUT, "session_expired",
			"this session has expired; start again with a challenge");
		goto out;
	}
	if (r < 0) {
		r = api_store_error(req, r, "session");
		goto out;
	}
	c = sessions_take(e->sessions, sid);
	if (c == NULL) {
		r = challenge_from_store(&sess, &c);
		if (r == -ENOENT) {
			/* memory half gone (restart), no secret in the store: unusable */
			(void)store_session_use(e->store, sid);
			r = http_error(req, -ETIMEDOUT, "session_expired",
				"this session is no longer known; start again with a challenge");
			goto out;
		}
		if (r < 0) {
			(void)store_session_use(e->store, sid);
			log_warnx("enrollment session of '%s': stored challenge unusable: %s",
				sess.tenant, strerror(-r));
			r = http_error(req, r, "internal", "the session's challenge is unusable");
			goto out;
		}
	}
	r = store_tenant_get(e->store, sess.tenant, &t);
	if (r < 0) {
		(void)store_session_use(e->store, sid);
		r = api_store_error(req, r, "tenant");
		goto out;
	}
	policy = calloc(1, sizeof(*policy));
	if (policy == NULL) {
		r = -ENOMEM;
		goto out;
	}
	has_policy = tenant_policy(&t, policy);

	resp.secret = secret;
	resp.secret_len = secret_len;
	resp.quote = quote;
	resp.quote_len = quote_len;
	resp.signature = sig;
	resp.signature_len = sig_len;
	resp.pcrs = pcrs;
	resp.pcrs_len = pcrs_len;
	r = attest_complete(c, &resp, has_policy ? policy : NULL, time(NULL), &reason);
	if (r < 0) {
		(void)store_session_use(e->store, sid);
		log_info("enrollment in '%s' rejected: %s", t.name, attest_reason_code(reason));
		r = reject(req, r, reason);
		goto out;
	}

	/* Attested. Now the durable part, then the interface. */
	snprintf(er.tenant, sizeof(er.tenant), "%s", sess.tenant);
	memcpy(er.ek_hash, sess.ek_hash, sizeof(er.ek_hash));
	memcpy(er.wg_pubkey, sess.wg_pubkey, sizeof(er.wg_pubkey));
	er.kind = STORE_ATTEST_TPM;
	er.has_token = sess.has_token;
	memcpy(er.token_hash, sess.token_hash, sizeof(er.token_hash));
	er.has_session = true;
	memcpy(er.session_id, sid, sizeof(sid));
	result = store_enroll_prev(e->store, &er, &dev, &before);
	if (result < 0) {
		(void)store_session_use(e->store, sid);
		r = enroll_error(req, result);
		goto out;
	}
	/* The key this commit replaced, not one read before it: see plane_device_sync(). */
	keys[0] = dev.wg_pubkey;
	keys[1] = before.wg_pubkey;
	r = api_device_sync(e, &t, dev.id, keys, before.id != 0 ? 2 : 1);
	if (r == 0)
		r = plane_tenant_key(e->plane, &t, server_pub);
	if (r < 0) {
		metrics_count_enrollment("interface_error");
		r = http_error(req, -EAGAIN, "wireguard_unavailable",
			"the enrollment is recorded but the tenant's interface could not be "
			"changed; it will be reconciled, retry later");
		goto out;
	}
	metrics_count_enrollment(api_enroll_result_name(result));
	{
		char fp[WG_KEY_FP_LEN];

		key_fingerprint(fp, dev.wg_pubkey);
		addr_format(AF_INET, dev.addr4, a4, sizeof(a4));
		log_info("device %llu enrolled in '%s' (%s): %s, key %s",
			(unsigned long long)dev.id, t.name, api_enroll_result_name(result), a4, fp);
	}

	snprintf(id, sizeof(id), "%llu", (unsigned long long)dev.id);
	addr_format(AF_INET, dev.addr4, a4, sizeof(a4));
	strcat(a4, "/32");
	addr_prefix_format(&t.prefix4, p4, sizeof(p4));
	key_to_base64(pub_b64, server_pub);
	wgq = plane_wg_quick(&t, &dev, server_pub);
	allowed = json_array();
	json_array_append_new(allowed, json_string(p4));
	if (t.prefix6.family == AF_INET6) {
		char p6[ADDR_STR_LEN];

		addr_prefix_format(&t.prefix6, p6, sizeof(p6));
		json_array_append_new(allowed, json_string(p6));
	}
	out = json_pack("{s:s,s:s,s:s,s:s,s:s,s:o,s:i,s:s,s:s}", "device_id", id, "tenant", t.name,
		"address", a4, "server_public_key", pub_b64, "endpoint", t.endpoint,
		"allowed_ips", allowed, "persistent_keepalive", (int)t.keepalive, "wg_config",
		wgq ? wgq : "", "result", api_enroll_result_name(result));
	if (out == NULL) {
		r = -ENOMEM;
		goto out;
	}
	if (dev.has_addr6) {
		char a6[ADDR_STR_LEN + 5];

		addr_format(AF_INET6, dev.addr6, a6, sizeof(a6));
		strcat(a6, "/128");
		json_object_set_new(out, "address6", json_string(a6));
	}
	*ret_body = out;
	r = 200;
out:
	attest_challenge_free(c);
	store_session_wipe(&sess);
	free(policy);
	free(wgq);
	if (secret != NULL)
		OPENSSL_cleanse(secret, secret_len);
	free(secret);
	free(quote);
	free(sig);
	free(pcrs);
	json_decref(body);
	return r;
}
