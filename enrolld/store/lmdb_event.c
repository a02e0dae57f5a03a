// SPDX-License-Identifier: MIT
/* The LMDB backend: the event log and device health (whose changes are events). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "enrolld/store/lmdb_internal.h"

/* ---- the event log ----------------------------------------------------------------------- */

/*
 * Append an event. The sequence counter lives in meta rather than being derived from the
 * last key, so trimming old events later can never make a number come back.
 */
int
lm_append_event(struct wtx *w, int kind, uint64_t device, const char *tenant)
{
	struct store_event ev;
	struct key k;
	uint64_t seq = 0;
	int r;

	r = lm_t_get_u64(w->s, w->txn, DB_META, &lm_meta_event_seq, &seq);
	if (r < 0 && r != -ENOENT)
		return r;
	memset(&ev, 0, sizeof(ev));
	ev.seq = seq + 1;
	ev.time = w->now;
	ev.kind = kind;
	ev.device = device;
	snprintf(ev.tenant, sizeof(ev.tenant), "%s", tenant);
	key_u64(&k, ev.seq);
	r = lm_w_put(w, DB_EVENTS, &k, &ev, sizeof(ev), MDB_APPEND);
	if (r < 0)
		return r;
	r = lm_w_put_u64(w, DB_META, &lm_meta_event_seq, ev.seq, 0);
	if (r < 0)
		return r;
	w->last_event = ev.seq;
	return 0;
}

/* ---- reading the event log -------------------------------------------------------------- */

int
lmdb_events_read(struct store_backend *b, uint64_t after, size_t max, struct store_event **ret,
	size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_event *arr = NULL;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct key start;
	size_t n = 0;
	int rc, r;

	arr = calloc(max, sizeof(*arr));
	if (arr == NULL)
		return -ENOMEM;
	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		goto out_free;
	rc = mdb_cursor_open(txn, s->dbi[DB_EVENTS], &cur);
	if (rc != 0) {
		r = lm_errno(rc);
		goto out;
	}
	key_u64(&start, after + 1);
	k = kval(&start);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0 && n < max;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (v.mv_size != sizeof(*arr)) {
			r = -EUCLEAN;
			goto out;
		}
		memcpy(&arr[n++], v.mv_data, sizeof(*arr));
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		r = lm_errno(rc);
		goto out;
	}
	*ret = arr;
	*ret_n = n;
	arr = NULL;
	r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	lm_rtxn_end(s, txn);
out_free:
	free(arr);
	return r;
}

int
lmdb_events_last(struct store_backend *b, uint64_t *ret_seq)
{
	struct lmdb_store *s = lmdb_of(b);
	uint64_t seq = 0;
	MDB_txn *txn;
	int r;

	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = lm_t_get_u64(s, txn, DB_META, &lm_meta_event_seq, &seq);
	lm_rtxn_end(s, txn);
	if (r < 0 && r != -ENOENT)
		return r;
	*ret_seq = seq;
	return 0;
}

int
lmdb_events_wait(struct store_backend *b, uint64_t after, int timeout_ms)
{
	struct lmdb_store *s = lmdb_of(b);
	struct timespec deadline;
	int r = 0, rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &deadline);
	deadline.tv_sec += timeout_ms / 1000;
	deadline.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (deadline.tv_nsec >= 1000000000L) {
		deadline.tv_sec++;
		deadline.tv_nsec -= 1000000000L;
	}
	pthread_mutex_lock(&s->lock);
	while (s->last_event <= after && rc != ETIMEDOUT && !s->stopping)
		rc = pthread_cond_timedwait(&s->event, &s->lock, &deadline);
	r = s->last_event > after;
	pthread_mutex_unlock(&s->lock);
	return r;
}

/* ---- health ------------------------------------------------------------------------------- */

struct health_op {
	const struct store_health *h;
	size_t n;
	int transitions;
};

static int
apply_health(struct wtx *w, void *arg)
{
	struct health_op *o = arg;
	int r;

	o->transitions = 0;
	for (size_t i = 0; i < o->n; i++) {
		const struct store_health *h = &o->h[i];
		struct store_health cur = { 0 }, rec = { 0 };
		struct store_device d;
		struct key key;

		r = lm_get_device(w->s, w->txn, h->device, &d);
		if (r == -ENOENT)
			continue;
		if (r < 0)
			return r;
		key_u64(&key, h->device);
		r = lm_t_get(w->s, w->txn, DB_HEALTH, &key, &cur, sizeof(cur));
		if (r < 0 && r != -ENOENT)
			return r;
		if (r == -ENOENT)
			cur.state = STORE_HEALTH_NEVER;
		if (cur.state == h->state)
			continue;
		rec.device = h->device;
		rec.state = h->state;
		rec.since = h->since ? h->since : w->now;
		r = lm_w_put(w, DB_HEALTH, &key, &rec, sizeof(rec), 0);
		if (r < 0)
			return r;
		if (h->state != STORE_HEALTH_NEVER) {
			r = lm_append_event(w,
				h->state == STORE_HEALTH_UP ? STORE_EV_UP : STORE_EV_DOWN, d.id,
				d.tenant);
			if (r < 0)
				return r;
		}
		o->transitions++;
	}
	return 0;
}

int
lmdb_health_update(struct store_backend *b, const struct store_health *h, size_t n)
{
	struct lmdb_store *s = lmdb_of(b);
	struct health_op o = { .h = h, .n = n };
	int r;

	r = lm_submit(s, apply_health, &o);
	return r < 0 ? r : o.transitions;
}

int
lmdb_health_get(struct store_backend *b, uint64_t device, struct store_health *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_health h = { 0 };
	struct store_device d;
	struct key key;
	MDB_txn *txn;
	int r;

	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = lm_get_device(s, txn, device, &d);
	if (r == 0) {
		key_u64(&key, device);
		r = lm_t_get(s, txn, DB_HEALTH, &key, &h, sizeof(h));
		if (r == -ENOENT) {
			h.device = device;
			h.state = STORE_HEALTH_NEVER;
			r = 0;
		}
	}
	lm_rtxn_end(s, txn);
	if (r == 0)
		*ret = h;
	return r;
}

/*
 * One cursor walk of the health table (keyed by device id: already in order). A device's
 * deletion deletes its record in the same commit, so every record is of an existing device.
 */
int
lmdb_health_list(struct store_backend *b, struct store_health **ret, size_t *ret_n)
{
	return lm_collect(lmdb_of(b), DB_HEALTH, NULL, sizeof(**ret), NULL, NULL, (void **)ret,
		ret_n);
}
