// SPDX-License-Identifier: MIT
/*
 * The LMDB backend: devices: enrollment, address allocation, lookups, listing, revoke,
 * reinstate, delete.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/store/lmdb_internal.h"

/* ---- devices ------------------------------------------------------------------------------ */

int
lm_get_device(struct lmdb_store *s, MDB_txn *txn, uint64_t id, struct store_device *ret)
{
	struct key key;

	key_u64(&key, id);
	return lm_t_get(s, txn, DB_DEVICES, &key, ret, sizeof(*ret));
}

static int
put_device(struct wtx *w, const struct store_device *d)
{
	struct key key;

	key_u64(&key, d->id);
	return lm_w_put(w, DB_DEVICES, &key, d, sizeof(*d), 0);
}

/* Look @db[@k] up as a device id, then the device. */
static int
get_device_via(struct lmdb_store *s, MDB_txn *txn, int db, const struct key *k,
	struct store_device *ret)
{
	uint64_t id = 0;
	int r;

	r = lm_t_get_u64(s, txn, db, k, &id);
	if (r < 0)
		return r;
	return lm_get_device(s, txn, id, ret);
}

/*
 * The lowest free usable address of @family in tenant @t: walk the tenant's address index
 * from the low-water mark (addr_hint) upwards, feeding used offsets to the allocator.
 */
static int
alloc_address(struct wtx *w, const struct store_tenant *t, int family, uint8_t ret_addr[16],
	uint64_t *ret_off)
{
	const struct addr_prefix *p = family == AF_INET ? &t->prefix4 : &t->prefix6;
	const uint8_t *self = family == AF_INET ? t->self4 : t->self6;
	struct addr_alloc a;
	struct key hint_key, prefix, start;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t hint = 0, off;
	uint8_t addr[16];
	int rc, r;

	key_tenant_family(&hint_key, t->name, family);
	r = lm_t_get_u64(w->s, w->txn, DB_ADDR_HINT, &hint_key, &hint);
	if (r < 0 && r != -ENOENT)
		return r;
	r = addr_alloc_begin(&a, p, self, hint);
	if (r < 0)
		return r;
	if (addr_alloc_end(&a, &off) == 0) {
		addr_at(p, a.cand, addr);
		key_tenant_family(&prefix, t->name, family);
		key_tenant_addr(&start, t->name, family, addr);
		rc = mdb_cursor_open(w->txn, w->s->dbi[DB_DEV_ADDR], &cur);
		if (rc != 0)
			return lm_errno(rc);
		k = kval(&start);
		for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
		     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
			uint8_t used[16] = { 0 };
			uint64_t used_off;

			if (k.mv_size != prefix.len + addr_len(family) ||
			    memcmp(k.mv_data, prefix.b, prefix.len) != 0)
				break;
			memcpy(used, (const uint8_t *)k.mv_data + prefix.len, addr_len(family));
			if (addr_offset(p, used, &used_off) < 0)
				continue;
			if (addr_alloc_feed(&a, used_off))
				break;
		}
		mdb_cursor_close(cur);
		if (rc != 0 && rc != MDB_NOTFOUND)
			return lm_errno(rc);
	}
	r = addr_alloc_end(&a, &off);
	if (r < 0) {
		store_set_errmsg("tenant '%s': no free IPv%d address", t->name,
			family == AF_INET ? 4 : 6);
		return r;
	}
	addr_at(p, off, ret_addr);
	*ret_off = off;
	/* Everything below the returned offset was taken, and now it is too. */
	if (off >= hint)
		return lm_w_put_u64(w, DB_ADDR_HINT, &hint_key, off + 1, 0);
	return 0;
}

/* Give an address back: lower the low-water mark if it lies below. */
static int
free_address(struct wtx *w, const struct store_tenant *t, int family, const uint8_t addr[16])
{
	const struct addr_prefix *p = family == AF_INET ? &t->prefix4 : &t->prefix6;
	struct key hint_key, key;
	uint64_t hint = 0, off;
	int r;

	key_tenant_addr(&key, t->name, family, addr);
	r = lm_w_del(w, DB_DEV_ADDR, &key);
	if (r < 0)
		return r;
	if (addr_offset(p, addr, &off) < 0)
		return 0;
	key_tenant_family(&hint_key, t->name, family);
	r = lm_t_get_u64(w->s, w->txn, DB_ADDR_HINT, &hint_key, &hint);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && off < hint)
		return lm_w_put_u64(w, DB_ADDR_HINT, &hint_key, off, 0);
	return 0;
}

struct enroll_op {
	const struct store_enroll_req *req;
	struct store_device dev;
	struct store_device prev; /* the EK's device before this enrollment; id 0 = none */
	int result;
};

/* Authorisation: one use of a token, or a registration of the EK in the tenant. */
static int
enroll_authorise(struct wtx *w, const struct store_enroll_req *req)
{
	struct store_token tok;
	struct store_registration reg;
	struct key key;
	int r;

	if (!req->has_token) {
		key_tenant_hash(&key, req->tenant, req->ek_hash);
		r = lm_t_get(w->s, w->txn, DB_REGISTRATIONS, &key, &reg, sizeof(reg));
		return r == -ENOENT ? -EACCES : r;
	}
	key_bytes(&key, req->token_hash, sizeof(req->token_hash));
	r = lm_t_get(w->s, w->txn, DB_TOKENS, &key, &tok, sizeof(tok));
	if (r < 0)
		return r == -ENOENT ? -EACCES : r;
	if (strncmp(tok.tenant, req->tenant, STORE_NAME_MAX) != 0 || tok.revoked ||
	    tok.uses_left == 0)
		return -EACCES;
	if (tok.expires != 0 && tok.expires <= w->now)
		return -ETIMEDOUT;
	tok.uses_left--;
	return lm_w_put(w, DB_TOKENS, &key, &tok, sizeof(tok), 0);
}

/* An enrollment of an EK that already has a device: same key, rotation, or renewal. */
static int
enroll_existing(struct wtx *w, struct enroll_op *e, uint64_t id)
{
	const struct store_enroll_req *req = e->req;
	struct store_device *d = &e->dev;
	struct key key;
	bool was_revoked;
	int r;

	r = lm_get_device(w->s, w->txn, id, d);
	if (r < 0)
		return r;
	e->prev = *d;
	if (strncmp(d->tenant, req->tenant, STORE_NAME_MAX) != 0) {
		store_set_errmsg("EK enrolled in tenant '%s'", d->tenant);
		return -EEXIST;
	}
	was_revoked = d->state == STORE_DEVICE_REVOKED;
	if (memcmp(d->wg_pubkey, req->wg_pubkey, STORE_KEY_LEN) != 0) {
		key_bytes(&key, req->wg_pubkey, STORE_KEY_LEN);
		r = lm_w_put_u64(w, DB_DEV_PUBKEY, &key, d->id, MDB_NOOVERWRITE);
		if (r < 0)
			return r;
		key_bytes(&key, d->wg_pubkey, STORE_KEY_LEN);
		r = lm_w_del(w, DB_DEV_PUBKEY, &key);
		if (r < 0)
			return r;
		memcpy(d->wg_pubkey, req->wg_pubkey, STORE_KEY_LEN);
		e->result = was_revoked ? STORE_ENROLL_RENEWED : STORE_ENROLL_ROTATED;
	} else if (was_revoked) {
		e->result = STORE_ENROLL_RENEWED;
	} else {
		e->result = STORE_ENROLL_SAME;
		return 0;
	}
	d->state = STORE_DEVICE_ACTIVE;
	d->kind = req->kind;
	d->updated = w->now;
	r = put_device(w, d);
	if (r < 0)
		return r;
	return lm_append_event(w, e->result == STORE_ENROLL_ROTATED ? STORE_EV_ROTATED :
		STORE_EV_ENROLLED, d->id, d->tenant);
}

/*
 * A new device record and all its indexes (address(es), key, EK, tenant). MDB_NOOVERWRITE
 * everywhere: an index collision is a bug, never an overwrite (-EEXIST). Used by enrollment
 * and by the import of a whole state (lmdb_import.c).
 */
int
lm_device_put(struct wtx *w, const struct store_device *d)
{
	struct key key;
	int r;

	key_tenant_addr(&key, d->tenant, AF_INET, d->addr4);
	r = lm_w_put_u64(w, DB_DEV_ADDR, &key, d->id, MDB_NOOVERWRITE);
	if (r == 0 && d->has_addr6) {
		key_tenant_addr(&key, d->tenant, AF_INET6, d->addr6);
		r = lm_w_put_u64(w, DB_DEV_ADDR, &key, d->id, MDB_NOOVERWRITE);
	}
	if (r == 0) {
		key_bytes(&key, d->wg_pubkey, STORE_KEY_LEN);
		r = lm_w_put_u64(w, DB_DEV_PUBKEY, &key, d->id, MDB_NOOVERWRITE);
	}
	if (r == 0) {
		key_bytes(&key, d->ek_hash, STORE_HASH_LEN);
		r = lm_w_put_u64(w, DB_DEV_EK, &key, d->id, MDB_NOOVERWRITE);
	}
	if (r == 0) {
		key_tenant_id(&key, d->tenant, d->id);
		r = lm_w_put(w, DB_DEV_TENANT, &key, "", 0, MDB_NOOVERWRITE);
	}
	if (r == 0) {
		key_u64(&key, d->id);
		r = lm_w_put(w, DB_DEVICES, &key, d, sizeof(*d), MDB_NOOVERWRITE);
	}
	return r;
}

static int
enroll_new(struct wtx *w, struct enroll_op *e, const struct store_tenant *t)
{
	const struct store_enroll_req *req = e->req;
	struct store_device *d = &e->dev;
	uint64_t id = 0, off;
	int r;

	memset(d, 0, sizeof(*d));
	r = lm_t_get_u64(w->s, w->txn, DB_META, &lm_meta_next_device, &id);
	if (r < 0 && r != -ENOENT)
		return r;
	d->id = id ? id : 1;
	memcpy(d->tenant, t->name, sizeof(d->tenant));
	r = alloc_address(w, t, AF_INET, d->addr4, &off);
	if (r < 0)
		return r;
	if (t->prefix6.family == AF_INET6) {
		r = alloc_address(w, t, AF_INET6, d->addr6, &off);
		if (r < 0)
			return r;
		d->has_addr6 = 1;
	}
	d->state = STORE_DEVICE_ACTIVE;
	d->kind = req->kind;
	memcpy(d->wg_pubkey, req->wg_pubkey, STORE_KEY_LEN);
	memcpy(d->ek_hash, req->ek_hash, STORE_HASH_LEN);
	d->created = d->updated = w->now;

	r = lm_device_put(w, d);
	if (r == 0)
		r = lm_w_put_u64(w, DB_META, &lm_meta_next_device, d->id + 1, 0);
	if (r < 0)
		return r;
	e->result = STORE_ENROLL_NEW;
	return lm_append_event(w, STORE_EV_ENROLLED, d->id, d->tenant);
}

static int
apply_enroll(struct wtx *w, void *arg)
{
	struct enroll_op *e = arg;
	const struct store_enroll_req *req = e->req;
	struct store_tenant t;
	struct revocation rev;
	struct key key;
	uint64_t id;
	int r;

	memset(&e->prev, 0, sizeof(e->prev));
	r = lm_get_tenant(w->s, w->txn, req->tenant, &t);
	if (r < 0)
		return r;
	if (req->has_session) {
		r = lm_session_claim(w, req); /* used when this commits */
		if (r < 0)
			return r;
	}
	key_bytes(&key, req->ek_hash, STORE_HASH_LEN);
	r = lm_t_get(w->s, w->txn, DB_REVOCATIONS, &key, &rev, sizeof(rev));
	if (r == 0)
		return -EPERM;
	if (r != -ENOENT)
		return r;
	if (req->kind == STORE_ATTEST_X509) {
		/* the certificate is the authorisation; policy and serial checked here, atomically */
		if (t.require_tpm)
			return -EPROTONOSUPPORT;
		r = lm_x509_revoked_in(w->s, w->txn, req->tenant, req->serial, req->serial_len);
		if (r < 0)
			return r;
		if (r == 1)
			return -EKEYREVOKED;
	} else {
		r = enroll_authorise(w, req);
		if (r < 0)
			return r;
	}
	/* The key must not belong to another device (a peer is identified by its key). */
	key_bytes(&key, req->wg_pubkey, STORE_KEY_LEN);
	r = lm_t_get_u64(w->s, w->txn, DB_DEV_PUBKEY, &key, &id);
	if (r == 0) {
		struct store_device other;

		r = lm_get_device(w->s, w->txn, id, &other);
		if (r < 0)
			return r;
		if (memcmp(other.ek_hash, req->ek_hash, STORE_HASH_LEN) != 0)
			return -EEXIST;
	} else if (r != -ENOENT) {
		return r;
	}
	key_bytes(&key, req->ek_hash, STORE_HASH_LEN);
	r = lm_t_get_u64(w->s, w->txn, DB_DEV_EK, &key, &id);
	if (r == 0)
		return enroll_existing(w, e, id);
	if (r != -ENOENT)
		return r;
	return enroll_new(w, e, &t);
}

int
lmdb_enroll_prev(struct store_backend *b, const struct store_enroll_req *req,
	struct store_device *ret_dev, struct store_device *ret_prev)
{
	struct lmdb_store *s = lmdb_of(b);
	struct enroll_op e = { .req = req };
	int r;

	r = lm_submit(s, apply_enroll, &e);
	if (r < 0)
		return r;
	if (ret_dev != NULL)
		*ret_dev = e.dev;
	if (ret_prev != NULL)
		*ret_prev = e.prev;
	return e.result;
}

int
lmdb_device_get(struct store_backend *b, uint64_t id, struct store_device *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_device d;
	MDB_txn *txn;
	int r;

	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = lm_get_device(s, txn, id, &d);
	lm_rtxn_end(s, txn);
	if (r == 0)
		*ret = d;
	return r;
}

static int
device_via(struct lmdb_store *s, int db, const struct key *k, struct store_device *ret)
{
	struct store_device d;
	MDB_txn *txn;
	int r;

	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = get_device_via(s, txn, db, k, &d);
	lm_rtxn_end(s, txn);
	if (r == 0)
		*ret = d;
	return r;
}

int
lmdb_device_by_pubkey(struct store_backend *b, const uint8_t key[static STORE_KEY_LEN],
	struct store_device *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key k;

	key_bytes(&k, key, STORE_KEY_LEN);
	return device_via(s, DB_DEV_PUBKEY, &k, ret);
}

int
lmdb_device_by_ek(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN],
	struct store_device *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key k;

	key_bytes(&k, ek_hash, STORE_HASH_LEN);
	return device_via(s, DB_DEV_EK, &k, ret);
}

int
lmdb_device_by_addr(struct store_backend *b, const char *tenant, int family,
	const uint8_t addr[static 16], struct store_device *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key k;

	key_tenant_addr(&k, tenant, family, addr);
	return device_via(s, DB_DEV_ADDR, &k, ret);
}

int
lmdb_device_list(struct store_backend *b, const struct store_device_filter *f,
	struct store_device **ret, size_t *ret_n, uint64_t *ret_next)
{
	struct lmdb_store *s = lmdb_of(b);
	unsigned int limit = f->limit;
	struct store_device *arr = NULL, d;
	struct key start, prefix;
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	uint64_t next = 0, id;
	size_t n = 0;
	int rc, r;

	arr = calloc(limit, sizeof(*arr));
	if (arr == NULL)
		return -ENOMEM;
	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		goto out_free;
	/* By tenant: walk that tenant's index; otherwise the devices themselves, both by id. */
	if (f->tenant != NULL) {
		key_tenant(&prefix, f->tenant);
		key_tenant_id(&start, f->tenant, f->after + 1);
		rc = mdb_cursor_open(txn, s->dbi[DB_DEV_TENANT], &cur);
	} else {
		prefix.len = 0;
		key_u64(&start, f->after + 1);
		rc = mdb_cursor_open(txn, s->dbi[DB_DEVICES], &cur);
	}
	if (rc != 0) {
		r = lm_errno(rc);
		goto out;
	}
	k = kval(&start);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_SET_RANGE); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != prefix.len + 8 || memcmp(k.mv_data, prefix.b, prefix.len) != 0)
			break;
		id = be64_get((const uint8_t *)k.mv_data + prefix.len);
		r = lm_get_device(s, txn, id, &d);
		if (r < 0)
			goto out;
		if (f->state != 0 && d.state != f->state)
			continue;
		if (n == limit) {
			/* One more match exists: the page is full and there is a next one. */
			next = arr[n - 1].id;
			break;
		}
		arr[n++] = d;
	}
	if (rc != 0 && rc != MDB_NOTFOUND) {
		r = lm_errno(rc);
		goto out;
	}
	*ret = arr;
	*ret_n = n;
	*ret_next = next;
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

struct device_op {
	uint64_t id;
	struct store_device dev;
};

static int
apply_revoke(struct wtx *w, void *arg)
{
	struct device_op *o = arg;
	struct store_device *d = &o->dev;
	struct revocation rev = { 0 };
	struct key key;
	int r;

	r = lm_get_device(w->s, w->txn, o->id, d);
	if (r < 0)
		return r;
	if (d->state == STORE_DEVICE_REVOKED)
		return -EALREADY;
	d->state = STORE_DEVICE_REVOKED;
	d->revoked = d->updated = w->now;
	r = put_device(w, d);
	if (r < 0)
		return r;
	rev.time = w->now;
	rev.device = d->id;
	key_bytes(&key, d->ek_hash, STORE_HASH_LEN);
	r = lm_w_put(w, DB_REVOCATIONS, &key, &rev, sizeof(rev), 0);
	if (r < 0)
		return r;
	return lm_append_event(w, STORE_EV_REVOKED, d->id, d->tenant);
}

int
lmdb_device_revoke(struct store_backend *b, uint64_t id, struct store_device *ret_dev)
{
	struct lmdb_store *s = lmdb_of(b);
	struct device_op o = { .id = id };
	int r;

	r = lm_submit(s, apply_revoke, &o);
	if (r == 0 && ret_dev != NULL)
		*ret_dev = o.dev;
	return r;
}

static int
apply_reinstate(struct wtx *w, void *arg)
{
	struct device_op *o = arg;
	struct store_device *d = &o->dev;
	struct key key;
	int r;

	r = lm_get_device(w->s, w->txn, o->id, d);
	if (r < 0)
		return r;
	key_bytes(&key, d->ek_hash, STORE_HASH_LEN);
	r = lm_w_del(w, DB_REVOCATIONS, &key);
	if (r == -ENOENT)
		return -EALREADY;
	if (r < 0)
		return r;
	return lm_append_event(w, STORE_EV_REINSTATED, d->id, d->tenant);
}

int
lmdb_device_reinstate(struct store_backend *b, uint64_t id)
{
	struct lmdb_store *s = lmdb_of(b);
	struct device_op o = { .id = id };

	return lm_submit(s, apply_reinstate, &o);
}

/* Delete index entry @k of @db only if it still points at @id. */
static int
del_if_points(struct wtx *w, int db, const struct key *k, uint64_t id)
{
	uint64_t cur;
	int r;

	r = lm_t_get_u64(w->s, w->txn, db, k, &cur);
	if (r == -ENOENT || (r == 0 && cur != id))
		return 0;
	if (r < 0)
		return r;
	return lm_w_del(w, db, k);
}

static int
apply_delete(struct wtx *w, void *arg)
{
	struct device_op *o = arg;
	struct store_device *d = &o->dev;
	struct store_tenant t;
	struct key key;
	int r;

	r = lm_get_device(w->s, w->txn, o->id, d);
	if (r < 0)
		return r;
	if (d->state != STORE_DEVICE_REVOKED)
		return -EBUSY;
	r = lm_get_tenant(w->s, w->txn, d->tenant, &t);
	if (r < 0)
		return r;
	r = free_address(w, &t, AF_INET, d->addr4);
	if (r == 0 && d->has_addr6)
		r = free_address(w, &t, AF_INET6, d->addr6);
	if (r < 0)
		return r;
	key_bytes(&key, d->wg_pubkey, STORE_KEY_LEN);
	r = del_if_points(w, DB_DEV_PUBKEY, &key, d->id);
	if (r < 0)
		return r;
	key_bytes(&key, d->ek_hash, STORE_HASH_LEN);
	r = del_if_points(w, DB_DEV_EK, &key, d->id);
	if (r < 0)
		return r;
	key_tenant_id(&key, d->tenant, d->id);
	r = lm_w_del(w, DB_DEV_TENANT, &key);
	if (r < 0)
		return r;
	key_u64(&key, d->id);
	r = lm_w_del(w, DB_HEALTH, &key);
	if (r < 0 && r != -ENOENT)
		return r;
	return lm_w_del(w, DB_DEVICES, &key);
}

int
lmdb_device_delete(struct store_backend *b, uint64_t id)
{
	struct lmdb_store *s = lmdb_of(b);
	struct device_op o = { .id = id };

	return lm_submit(s, apply_delete, &o);
}

int
lmdb_ek_revoked(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	struct revocation rev;
	struct key key;
	int r;

	key_bytes(&key, ek_hash, STORE_HASH_LEN);
	r = lm_r_get(s, DB_REVOCATIONS, &key, &rev, sizeof(rev));
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

int
lmdb_device_list_all(struct store_backend *b, const char *tenant, uint8_t state,
	struct store_device **ret, size_t *ret_n)
{
	struct store_device_filter f = { .tenant = tenant, .state = state, .limit = 1000 };
	struct store_device *all = NULL, *page = NULL, *na;
	size_t n = 0, n_page;
	uint64_t next;
	int r;

	do {
		r = lmdb_device_list(b, &f, &page, &n_page, &next);
		if (r < 0)
			goto err;
		if (n_page > 0) {
			na = realloc(all, (n + n_page) * sizeof(*na));
			if (na == NULL) {
				r = -ENOMEM;
				goto err;
			}
			all = na;
			memcpy(all + n, page, n_page * sizeof(*page));
			n += n_page;
		}
		free(page);
		page = NULL;
		f.after = next;
	} while (next != 0);
	*ret = all;
	*ret_n = n;
	return 0;
err:
	free(page);
	free(all);
	return r;
}
