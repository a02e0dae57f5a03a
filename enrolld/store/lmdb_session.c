// SPDX-License-Identifier: MIT
/* The LMDB backend: attestation sessions. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/store/lmdb_internal.h"

/* ---- sessions ------------------------------------------------------------------------------ */

/* The bytes of @sess as stored: the struct up to the end of its AK public area. */
static size_t
session_size(const struct store_session *sess)
{
	return offsetof(struct store_session, ak_public) + sess->ak_public_len;
}

/*
 * A stored record into @ret: SESSION_V1_SIZE bytes (written before the AK public area was
 * kept: none), or the struct up to the end of its AK public area. -EUCLEAN otherwise.
 */
static int
session_decode(const MDB_val *v, struct store_session *ret)
{
	const size_t head = offsetof(struct store_session, ak_public);

	memset(ret, 0, sizeof(*ret));
	if (v->mv_size != SESSION_V1_SIZE && (v->mv_size < head || v->mv_size > sizeof(*ret))) {
		store_set_errmsg("sessions: record of %zu bytes", v->mv_size);
		return -EUCLEAN;
	}
	memcpy(ret, v->mv_data, v->mv_size);
	if (v->mv_size != SESSION_V1_SIZE && ret->ak_public_len != v->mv_size - head) {
		store_session_wipe(ret);
		store_set_errmsg("sessions: record of %zu bytes, AK public area of %u",
			v->mv_size, (unsigned int)ret->ak_public_len);
		return -EUCLEAN;
	}
	return 0;
}

int
lm_session_t_get(struct lmdb_store *s, MDB_txn *txn, const struct key *key,
	struct store_session *ret)
{
	MDB_val k = kval(key), v;
	int rc;

	memset(ret, 0, sizeof(*ret));
	rc = mdb_get(txn, s->dbi[DB_SESSIONS], &k, &v);
	if (rc == MDB_NOTFOUND)
		return -ENOENT;
	if (rc != 0)
		return lm_errno(rc);
	return session_decode(&v, ret);
}

/*
 * Delete sessions past their expiry, used or not; returns how many. A used session is kept
 * until then, so that a replay within the session's lifetime is answered 410 session_used,
 * the same every time, and only a session gone for good answers 404 unknown_session.
 */
static int
purge_sessions(struct wtx *w)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	int rc, n = 0;

	rc = mdb_cursor_open(w->txn, w->s->dbi[DB_SESSIONS], &cur);
	if (rc != 0)
		return lm_errno(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct store_session sess;
		bool keep;

		if (session_decode(&v, &sess) < 0)
			continue;
		keep = sess.expires > w->now;
		store_session_wipe(&sess);
		if (keep)
			continue;
		rc = mdb_cursor_del(cur, 0);
		if (rc != 0)
			break;
		n++;
	}
	mdb_cursor_close(cur);
	if (rc == MDB_MAP_FULL)
		w->map_full = true;
	if (rc != 0 && rc != MDB_NOTFOUND)
		return lm_errno(rc);
	return n;
}

static int
apply_session_create(struct wtx *w, void *arg)
{
	const struct store_session *sess = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = lm_get_tenant(w->s, w->txn, sess->tenant, &t);
	if (r < 0)
		return r;
	/*
	 * Expiry is in whole seconds: one purge per second removes exactly what one per
	 * creation would (the scan of every live session was 3-5% of enrolld's CPU under
	 * enrollment load, and grows with session_ttl x rate).
	 */
	if (w->now != w->s->sessions_purged) {
		r = purge_sessions(w);
		if (r < 0)
			return r;
		w->s->sessions_purged = w->now;
	}
	key_bytes(&key, sess->id, sizeof(sess->id));
	return lm_w_put(w, DB_SESSIONS, &key, sess, session_size(sess), MDB_NOOVERWRITE);
}

int
lmdb_session_create(struct store_backend *b, const struct store_session *sess,
	uint8_t ret_id[static STORE_SESSION_ID_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	int r;

	/* Lazy: an open session is not worth a durable commit (lm_submit_lazy()). */
	r = lm_submit_lazy(s, apply_session_create, (void *)sess);
	if (r == 0)
		memcpy(ret_id, sess->id, sizeof(sess->id));
	return r;
}

int
lmdb_session_get(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN],
	struct store_session *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_session sess;
	struct key key;
	MDB_txn *txn;
	int r;

	key_bytes(&key, id, STORE_SESSION_ID_LEN);
	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = lm_session_t_get(s, txn, &key, &sess);
	lm_rtxn_end(s, txn);
	if (r < 0)
		goto out;
	if (sess.used)
		r = -EALREADY;
	else if (sess.expires <= lmdb_now(s))
		r = -ETIMEDOUT;
	else
		*ret = sess;
out:
	store_session_wipe(&sess);
	return r;
}

/* Mark used and wipe the stored secret. @sess is the record, already read. */
int
lm_use_session(struct wtx *w, const struct key *key, struct store_session *sess)
{
	sess->used = 1;
	explicit_bzero(sess->secret, sizeof(sess->secret));
	sess->secret_len = 0;
	return lm_w_put(w, DB_SESSIONS, key, sess, session_size(sess), 0);
}

static int
apply_session_use(struct wtx *w, void *arg)
{
	struct store_session sess;
	struct key key;
	int r;

	key_bytes(&key, arg, STORE_SESSION_ID_LEN);
	r = lm_session_t_get(w->s, w->txn, &key, &sess);
	if (r == 0)
		r = sess.used ? -EALREADY : lm_use_session(w, &key, &sess);
	store_session_wipe(&sess);
	return r;
}

int
lmdb_session_use(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	struct lmdb_store *s = lmdb_of(b);

	return lm_submit(s, apply_session_use, (void *)id);
}

static int
apply_session_purge(struct wtx *w, void *arg)
{
	return purge_sessions(w);
}

int
lmdb_session_purge(struct store_backend *b)
{
	return lm_submit(lmdb_of(b), apply_session_purge, NULL);
}
