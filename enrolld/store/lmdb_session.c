// SPDX-License-Identifier: MIT
/*
 * The LMDB backend: attestation sessions, in this process's memory only.
 *
 * On LMDB a session cannot complete after a restart anyway (its secret is never written:
 * api_enroll.c keeps it in memory), so nothing of it is worth a disk write: an open session
 * lives in a hash table here, and store_enroll() consumes it inside its write transaction
 * (claimed by the batch, used once that commit is durable, open again if it fails). This
 * saves a commit per enrollment (the challenge's) and the flush a failed attestation cost.
 *
 * What a session id answers over time stays as docs/api.md says, across a restart too: an
 * id is 12 random bytes and 4 of HMAC-SHA-256 over them under a key kept in the store's
 * meta database ("session_key", made at the first open). An id this table does not hold
 * but whose tag checks was issued by this store before a restart: -ETIMEDOUT (410
 * session_expired), so the device starts again; any other unknown id is -ENOENT.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "enrolld/store/lmdb_internal.h"

#define ID_RANDOM 12 /* then ID_TAG bytes of HMAC */
#define ID_TAG (STORE_SESSION_ID_LEN - ID_RANDOM)
#define BUCKETS_MIN 64

enum sess_state { SESS_OPEN, SESS_CLAIMED, SESS_USED };

struct lm_sess {
	struct lm_sess *next;    /* in its bucket */
	struct lm_sess *claimed; /* in the claiming transaction's list (struct wtx) */
	enum sess_state state;
	struct store_session rec;
};

struct lm_sessions {
	pthread_mutex_t lock;
	struct lm_sess **buckets;
	size_t n_buckets; /* a power of two */
	size_t n;
	int64_t purged; /* the second of the last purge at a creation */
	uint8_t key[LM_SESSION_KEY_LEN];
};

/* The bucket of @id among @n_buckets (a power of two): its first bytes are random. */
static size_t
bucket_in(const uint8_t id[static STORE_SESSION_ID_LEN], size_t n_buckets)
{
	uint64_t h;

	memcpy(&h, id, sizeof(h));
	return (size_t)h & (n_buckets - 1);
}

static size_t
bucket_of(const struct lm_sessions *t, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	return bucket_in(id, t->n_buckets);
}

static struct lm_sess *
find(const struct lm_sessions *t, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	struct lm_sess *e = t->buckets[bucket_of(t, id)];

	while (e != NULL && memcmp(e->rec.id, id, STORE_SESSION_ID_LEN) != 0)
		e = e->next;
	return e;
}

static void
tag(const struct lm_sessions *t, const uint8_t id[static STORE_SESSION_ID_LEN],
	uint8_t out[static ID_TAG])
{
	uint8_t mac[EVP_MAX_MD_SIZE];
	unsigned int len = 0;

	if (HMAC(EVP_sha256(), t->key, sizeof(t->key), id, ID_RANDOM, mac, &len) == NULL ||
	    len < ID_TAG)
		memset(mac, 0, sizeof(mac)); /* no id checks then: -ENOENT, never a false 410 */
	memcpy(out, mac, ID_TAG);
	explicit_bzero(mac, sizeof(mac));
}

static bool
tag_ok(const struct lm_sessions *t, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	uint8_t want[ID_TAG], zero[ID_TAG] = { 0 };

	tag(t, id, want);
	return memcmp(want, zero, ID_TAG) != 0 && CRYPTO_memcmp(want, id + ID_RANDOM, ID_TAG) == 0;
}

static void
entry_free(struct lm_sess *e)
{
	store_session_wipe(&e->rec);
	free(e);
}

static int
grow(struct lm_sessions *t)
{
	size_t nb = t->n_buckets * 2;
	struct lm_sess **b = calloc(nb, sizeof(*b));

	if (b == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < t->n_buckets; i++) {
		for (struct lm_sess *e = t->buckets[i], *next; e != NULL; e = next) {
			size_t k = bucket_in(e->rec.id, nb);

			next = e->next;
			e->next = b[k];
			b[k] = e;
		}
	}
	free(t->buckets);
	t->buckets = b;
	t->n_buckets = nb;
	return 0;
}

/*
 * Drop sessions past their expiry, used or not, but not one claimed by a transaction in
 * flight (its commit settles it); returns how many. A used session is kept until then, so
 * that a replay within the session's lifetime is answered 410 session_used, the same every
 * time, and only a session gone for good answers otherwise.
 */
static int
purge_locked(struct lm_sessions *t, int64_t now)
{
	int n = 0;

	for (size_t i = 0; i < t->n_buckets; i++) {
		struct lm_sess **pp = &t->buckets[i];

		while (*pp != NULL) {
			struct lm_sess *e = *pp;

			if (e->rec.expires > now || e->state == SESS_CLAIMED) {
				pp = &e->next;
				continue;
			}
			*pp = e->next;
			entry_free(e);
			t->n--;
			n++;
		}
	}
	return n;
}

int
lm_sessions_new(struct lm_sessions **ret, const uint8_t key[static LM_SESSION_KEY_LEN])
{
	struct lm_sessions *t = calloc(1, sizeof(*t));

	if (t == NULL)
		return -ENOMEM;
	t->n_buckets = BUCKETS_MIN;
	t->buckets = calloc(t->n_buckets, sizeof(*t->buckets));
	if (t->buckets == NULL) {
		free(t);
		return -ENOMEM;
	}
	pthread_mutex_init(&t->lock, NULL);
	memcpy(t->key, key, sizeof(t->key));
	*ret = t;
	return 0;
}

void
lm_sessions_free(struct lm_sessions *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->n_buckets; i++)
		for (struct lm_sess *e = t->buckets[i], *next; e != NULL; e = next) {
			next = e->next;
			entry_free(e);
		}
	free(t->buckets);
	pthread_mutex_destroy(&t->lock);
	explicit_bzero(t->key, sizeof(t->key));
	free(t);
}

int
lmdb_session_create(struct store_backend *b, const struct store_session *sess,
	uint8_t ret_id[static STORE_SESSION_ID_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	struct lm_sessions *t = s->sessions;
	struct store_tenant tenant;
	struct lm_sess *e;
	MDB_txn *txn;
	int64_t now = lmdb_now(s);
	size_t k;
	int r;

	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = lm_get_tenant(s, txn, sess->tenant, &tenant);
	lm_rtxn_end(s, txn);
	if (r < 0)
		return r;
	e = calloc(1, sizeof(*e));
	if (e == NULL)
		return -ENOMEM;
	e->rec = *sess;
	e->rec.used = 0;
	/* the front's id is random: its first ID_RANDOM bytes stay, the tag follows */
	tag(t, e->rec.id, e->rec.id + ID_RANDOM);

	pthread_mutex_lock(&t->lock);
	/*
	 * Expiry is in whole seconds: one purge per second removes exactly what one per
	 * creation would (a scan of every live session at each creation grows with
	 * session_ttl x rate).
	 */
	if (now != t->purged) {
		purge_locked(t, now);
		t->purged = now;
	}
	if (find(t, e->rec.id) != NULL) {
		r = -EEXIST;
		goto out;
	}
	if (t->n >= t->n_buckets && (r = grow(t)) < 0)
		goto out;
	k = bucket_of(t, e->rec.id);
	e->next = t->buckets[k];
	t->buckets[k] = e;
	t->n++;
	memcpy(ret_id, e->rec.id, STORE_SESSION_ID_LEN);
	e = NULL;
	r = 0;
out:
	pthread_mutex_unlock(&t->lock);
	if (e != NULL)
		entry_free(e);
	return r;
}

/* An id the table does not hold: issued before a restart (tag checks) or never. */
static int
missing(const struct lm_sessions *t, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	return tag_ok(t, id) ? -ETIMEDOUT : -ENOENT;
}

int
lmdb_session_get(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN],
	struct store_session *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct lm_sessions *t = s->sessions;
	struct lm_sess *e;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	e = find(t, id);
	if (e == NULL)
		r = -ENOENT; /* the tag is checked below, outside the lock */
	else if (e->state == SESS_USED)
		r = -EALREADY;
	else if (e->rec.expires <= lmdb_now(s))
		r = -ETIMEDOUT;
	else
		*ret = e->rec; /* claimed: open until that commit, as a committed read would see */
	pthread_mutex_unlock(&t->lock);
	if (e == NULL)
		r = missing(t, id);
	return r;
}

static void
use(struct lm_sess *e)
{
	e->state = SESS_USED;
	e->rec.used = 1;
	explicit_bzero(e->rec.secret, sizeof(e->rec.secret));
	e->rec.secret_len = 0;
}

int
lmdb_session_use(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	struct lm_sessions *t = lmdb_of(b)->sessions;
	struct lm_sess *e;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	e = find(t, id);
	if (e == NULL)
		r = -ENOENT;
	else if (e->state != SESS_OPEN)
		r = -EALREADY;
	else
		use(e);
	pthread_mutex_unlock(&t->lock);
	return r;
}

int
lmdb_session_purge(struct store_backend *b)
{
	struct lmdb_store *s = lmdb_of(b);
	int n;

	pthread_mutex_lock(&s->sessions->lock);
	n = purge_locked(s->sessions, lmdb_now(s));
	pthread_mutex_unlock(&s->sessions->lock);
	return n;
}

int
lm_session_claim(struct wtx *w, const struct store_enroll_req *req)
{
	struct lm_sessions *t = w->s->sessions;
	struct lm_sess *e;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	e = find(t, req->session_id);
	if (e == NULL)
		r = -ENOENT;
	else if (e->state != SESS_OPEN)
		r = -EALREADY; /* used, or claimed by an enrollment earlier in this batch */
	else if (e->rec.expires <= w->now)
		r = -ETIMEDOUT;
	else if (strncmp(e->rec.tenant, req->tenant, STORE_NAME_MAX) != 0 ||
		 memcmp(e->rec.ek_hash, req->ek_hash, STORE_HASH_LEN) != 0 ||
		 memcmp(e->rec.wg_pubkey, req->wg_pubkey, STORE_KEY_LEN) != 0)
		r = -EINVAL;
	if (r == 0) {
		e->state = SESS_CLAIMED;
		e->claimed = w->claimed;
		w->claimed = e;
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void
lm_sessions_settle(struct lmdb_store *s, struct lm_sess **list, struct lm_sess *until,
	bool committed)
{
	struct lm_sessions *t = s->sessions;

	if (*list == until)
		return; /* nothing claimed (the list is the writer's own: no lock to look) */
	pthread_mutex_lock(&t->lock);
	while (*list != until) {
		struct lm_sess *e = *list;

		*list = e->claimed;
		e->claimed = NULL;
		if (committed)
			use(e);
		else
			e->state = SESS_OPEN;
	}
	pthread_mutex_unlock(&t->lock);
}
