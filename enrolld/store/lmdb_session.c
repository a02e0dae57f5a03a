// SPDX-License-Identifier: MIT
/* The LMDB backend: attestation sessions. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/store/lmdb_internal.h"

/* ---- sessions ------------------------------------------------------------------------------ */

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
		return mdb_errno(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct store_session sess;
		bool keep;

		if (v.mv_size != sizeof(sess))
			continue;
		memcpy(&sess, v.mv_data, sizeof(sess));
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
		return mdb_errno(rc);
	return n;
}

static int
apply_session_create(struct wtx *w, void *arg)
{
	const struct store_session *sess = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, sess->tenant, &t);
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
	return w_put(w, DB_SESSIONS, &key, sess, sizeof(*sess), MDB_NOOVERWRITE);
}

int
lmdb_session_create(struct store_backend *b, const struct store_session *sess,
	uint8_t ret_id[static STORE_SESSION_ID_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	int r;

	r = submit(s, apply_session_create, (void *)sess);
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
	int r;

	key_bytes(&key, id, STORE_SESSION_ID_LEN);
	r = r_get(s, DB_SESSIONS, &key, &sess, sizeof(sess));
	if (r < 0)
		return r;
	if (sess.used)
		r = -EALREADY;
	else if (sess.expires <= lmdb_now(s))
		r = -ETIMEDOUT;
	else
		*ret = sess;
	store_session_wipe(&sess);
	return r;
}

/* Mark used and wipe the stored secret. @sess is the record, already read. */
int
use_session(struct wtx *w, const struct key *key, struct store_session *sess)
{
	sess->used = 1;
	explicit_bzero(sess->secret, sizeof(sess->secret));
	sess->secret_len = 0;
	return w_put(w, DB_SESSIONS, key, sess, sizeof(*sess), 0);
}

static int
apply_session_use(struct wtx *w, void *arg)
{
	struct store_session sess;
	struct key key;
	int r;

	key_bytes(&key, arg, STORE_SESSION_ID_LEN);
	r = t_get(w->s, w->txn, DB_SESSIONS, &key, &sess, sizeof(sess));
	if (r == 0)
		r = sess.used ? -EALREADY : use_session(w, &key, &sess);
	store_session_wipe(&sess);
	return r;
}

int
lmdb_session_use(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_session_use, (void *)id);
}

static int
apply_session_purge(struct wtx *w, void *arg)
{
	return purge_sessions(w);
}

int
lmdb_session_purge(struct store_backend *b)
{
	return submit(lmdb_of(b), apply_session_purge, NULL);
}
