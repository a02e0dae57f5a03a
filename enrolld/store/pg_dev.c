// SPDX-License-Identifier: MIT
/*
 * The PostgreSQL backend's devices: enrollment (sessions, authorisation, address
 * allocation), lookups, pages, revocation, deletion, health, the event log and the
 * consistency check.
 *
 * Locks, always taken in this order so that writers never wait in a circle: the tenant's
 * row (FOR NO KEY UPDATE: it serialises the allocations of one tenant, on every node), a
 * session, a token, the device's row, the health rows, and last the event counter (held to
 * COMMIT: it orders events by commit). A deadlock the database still detects is retried.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "enrolld/store/pg.h"

#define DEV_COLS \
	"id, tenant, addr4, addr6, state, kind, wg_pubkey, ek_hash, created, updated, revoked"

static int
dev_row(const PGresult *res, int i, void *out)
{
	struct store_device *d = out;

	memset(d, 0, sizeof(*d));
	d->id = (uint64_t)rv_i64(res, i, 0);
	if (rv_text(res, i, 1, d->tenant, sizeof(d->tenant)) < 0 ||
	    rv_bytes(res, i, 2, d->addr4, 16) != 16)
		return -EUCLEAN;
	if (!rv_null(res, i, 3)) {
		if (rv_bytes(res, i, 3, d->addr6, 16) != 16)
			return -EUCLEAN;
		d->has_addr6 = 1;
	}
	d->state = (uint8_t)rv_i64(res, i, 4);
	d->kind = (uint8_t)rv_i64(res, i, 5);
	if (rv_bytes(res, i, 6, d->wg_pubkey, STORE_KEY_LEN) != STORE_KEY_LEN ||
	    rv_bytes(res, i, 7, d->ek_hash, STORE_HASH_LEN) != STORE_HASH_LEN)
		return -EUCLEAN;
	d->created = rv_i64(res, i, 8);
	d->updated = rv_i64(res, i, 9);
	d->revoked = rv_i64(res, i, 10);
	return 0;
}

/* One device by @where (a condition on $1) in the transaction: 0, -ENOENT. */
static int
dev_get(PGconn *c, const char *sql, const struct pg_args *a, struct store_device *ret)
{
	PGresult *res = NULL;
	int r;

	r = pg_q(c, sql, a, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) == 1 ? dev_row(res, 0, ret) : -ENOENT;
	PQclear(res);
	return r;
}

static int
dev_read(struct store_backend *b, const char *sql, const struct pg_args *a,
	struct store_device *ret)
{
	struct store_device d;
	PGresult *res = NULL;
	int r;

	r = pg_read(b, sql, a, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) == 1 ? dev_row(res, 0, &d) : -ENOENT;
	PQclear(res);
	if (r == 0)
		*ret = d;
	return r;
}

/* ---- address allocation --------------------------------------------------------------------- */

#define ALLOC_PAGE 256 /* the LIMIT below */

/*
 * The lowest free usable address of @family in tenant @t, whose row this transaction holds
 * locked: from the low-water mark up, the used addresses (in order: byte order is numeric
 * order) are fed to the allocator a page at a time. UNIQUE (tenant, addr4/addr6) stands
 * behind it.
 */
static int
alloc_address(PGconn *c, const struct store_tenant *t, int family, uint64_t hint,
	uint8_t ret_addr[16], uint64_t *ret_off)
{
	const struct addr_prefix *p = family == AF_INET ? &t->prefix4 : &t->prefix6;
	const uint8_t *self = family == AF_INET ? t->self4 : t->self6;
	const char *sql = family == AF_INET ?
		"SELECT addr4 FROM devices WHERE tenant = $1::text AND addr4 >= $2::bytea "
		"ORDER BY addr4 LIMIT 256" :
		"SELECT addr6 FROM devices WHERE tenant = $1::text AND addr6 >= $2::bytea "
		"ORDER BY addr6 LIMIT 256";
	struct addr_alloc al;
	uint8_t from[16], used[16];
	uint64_t off;
	bool done = false;
	int r;

	r = addr_alloc_begin(&al, p, self, hint);
	if (r < 0)
		return r;
	if (addr_alloc_end(&al, &off) == 0)
		addr_at(p, al.cand, from);
	else
		done = true;
	while (!done) {
		struct pg_args a = { 0 };
		PGresult *res = NULL;
		int n;

		pa_text(&a, t->name);
		pa_bytes(&a, from, 16);
		r = pg_q(c, sql, &a, &res);
		if (r < 0)
			return r;
		n = PQntuples(res);
		for (int i = 0; i < n && !done; i++) {
			uint64_t used_off;

			if (rv_bytes(res, i, 0, used, 16) != 16) {
				PQclear(res);
				return -EUCLEAN;
			}
			if (addr_offset(p, used, &used_off) == 0)
				done = addr_alloc_feed(&al, used_off);
		}
		PQclear(res);
		if (n < ALLOC_PAGE)
			break;
		/* the next page: strictly above the last address seen */
		memcpy(from, used, 16);
		for (int k = 15; k >= 0 && ++from[k] == 0; k--)
			;
	}
	r = addr_alloc_end(&al, &off);
	if (r < 0) {
		store_set_errmsg("tenant '%s': no free IPv%d address", t->name,
			family == AF_INET ? 4 : 6);
		return r;
	}
	addr_at(p, off, ret_addr);
	*ret_off = off;
	return 0;
}

/* ---- enrollment ------------------------------------------------------------------------------ */

struct enroll_op {
	const struct store_enroll_req *req;
	struct store_device dev;
	struct store_device prev;
	int result;
};

/* Authorisation: one use of a token, or a registration of the EK in the tenant. */
static int
enroll_authorise(PGconn *c, const struct store_enroll_req *req, int64_t now)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	char tenant[STORE_NAME_MAX];
	int64_t uses, expires;
	int r;

	if (!req->has_token) {
		pa_text(&a, req->tenant);
		pa_bytes(&a, req->ek_hash, STORE_HASH_LEN);
		r = pg_exec(c, "SELECT 1 FROM registrations WHERE tenant = $1::text AND "
			"ek_hash = $2::bytea", &a);
		return r < 0 ? r : r == 0 ? -EACCES : 0;
	}
	pa_bytes(&a, req->token_hash, STORE_HASH_LEN);
	r = pg_q(c, "SELECT tenant, revoked::int4::int8, uses_left, expires FROM tokens "
		"WHERE hash = $1::bytea FOR UPDATE", &a, &res);
	if (r < 0)
		return r;
	if (PQntuples(res) != 1 || rv_text(res, 0, 0, tenant, sizeof(tenant)) < 0) {
		PQclear(res);
		return -EACCES;
	}
	r = strcmp(tenant, req->tenant) != 0 || rv_i64(res, 0, 1) != 0 ? -EACCES : 0;
	uses = rv_i64(res, 0, 2);
	expires = rv_i64(res, 0, 3);
	PQclear(res);
	if (r < 0 || uses <= 0)
		return -EACCES;
	if (expires != 0 && expires <= now)
		return -ETIMEDOUT;
	r = pg_exec(c, "UPDATE tokens SET uses_left = uses_left - 1 WHERE hash = $1::bytea", &a);
	return r < 0 ? r : 0;
}

/* The EK already has a device: same key, rotation, or renewal. */
static int
enroll_existing(struct store_backend *b, PGconn *c, struct enroll_op *e, int64_t now)
{
	const struct store_enroll_req *req = e->req;
	struct store_device *d = &e->dev;
	struct pg_args a = { 0 };
	bool was_revoked;
	int r;

	e->prev = *d;
	if (strcmp(d->tenant, req->tenant) != 0) {
		store_set_errmsg("EK enrolled in tenant '%s'", d->tenant);
		return -EEXIST;
	}
	was_revoked = d->state == STORE_DEVICE_REVOKED;
	if (memcmp(d->wg_pubkey, req->wg_pubkey, STORE_KEY_LEN) != 0)
		e->result = was_revoked ? STORE_ENROLL_RENEWED : STORE_ENROLL_ROTATED;
	else if (was_revoked)
		e->result = STORE_ENROLL_RENEWED;
	else
		return (e->result = STORE_ENROLL_SAME), 0;
	memcpy(d->wg_pubkey, req->wg_pubkey, STORE_KEY_LEN);
	d->state = STORE_DEVICE_ACTIVE;
	d->kind = req->kind;
	d->updated = now;
	pa_i64(&a, (int64_t)d->id);
	pa_bytes(&a, d->wg_pubkey, STORE_KEY_LEN);
	pa_i64(&a, d->kind);
	pa_i64(&a, now);
	/* a key taken meanwhile by another device: UNIQUE (wg_pubkey) -> -EEXIST */
	r = pg_exec(c, "UPDATE devices SET wg_pubkey = $2::bytea, state = 1, kind = $3::int8, "
		"updated = $4::int8 WHERE id = $1::int8", &a);
	if (r < 0)
		return r;
	return pg_event_append(b, c, e->result == STORE_ENROLL_ROTATED ? STORE_EV_ROTATED :
		STORE_EV_ENROLLED, d->id, d->tenant);
}

static int
enroll_new(struct store_backend *b, PGconn *c, struct enroll_op *e, const struct store_tenant *t,
	int64_t now)
{
	const struct store_enroll_req *req = e->req;
	struct store_device *d = &e->dev;
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	uint64_t hint4, hint6, off4, off6 = 0;
	int r;

	pa_text(&a, t->name);
	r = pg_q(c, "SELECT hint4, hint6 FROM tenants WHERE name = $1::text", &a, &res);
	if (r < 0)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return -ENOENT;
	}
	hint4 = (uint64_t)rv_i64(res, 0, 0);
	hint6 = (uint64_t)rv_i64(res, 0, 1);
	PQclear(res);
	memset(d, 0, sizeof(*d));
	memcpy(d->tenant, t->name, sizeof(d->tenant));
	r = alloc_address(c, t, AF_INET, hint4, d->addr4, &off4);
	if (r < 0)
		return r;
	if (t->prefix6.family == AF_INET6) {
		r = alloc_address(c, t, AF_INET6, hint6, d->addr6, &off6);
		if (r < 0)
			return r;
		d->has_addr6 = 1;
	}
	d->state = STORE_DEVICE_ACTIVE;
	d->kind = req->kind;
	memcpy(d->wg_pubkey, req->wg_pubkey, STORE_KEY_LEN);
	memcpy(d->ek_hash, req->ek_hash, STORE_HASH_LEN);
	d->created = d->updated = now;
	memset(&a, 0, sizeof(a));
	pa_text(&a, d->tenant);
	pa_bytes(&a, d->addr4, 16);
	if (d->has_addr6)
		pa_bytes(&a, d->addr6, 16);
	else
		pa_null(&a);
	pa_i64(&a, d->kind);
	pa_bytes(&a, d->wg_pubkey, STORE_KEY_LEN);
	pa_bytes(&a, d->ek_hash, STORE_HASH_LEN);
	pa_i64(&a, now);
	r = pg_q(c, "INSERT INTO devices (tenant, addr4, addr6, state, kind, wg_pubkey, ek_hash, "
		"created, updated, revoked) VALUES ($1::text, $2::bytea, $3::bytea, 1, $4::int8, "
		"$5::bytea, $6::bytea, $7::int8, $7::int8, 0) RETURNING id", &a, &res);
	if (r < 0)
		return r;
	d->id = (uint64_t)rv_i64(res, 0, 0);
	PQclear(res);
	/* everything below the offsets handed out is taken: the low-water marks move up */
	memset(&a, 0, sizeof(a));
	pa_text(&a, t->name);
	pa_i64(&a, (int64_t)(off4 + 1));
	pa_i64(&a, d->has_addr6 ? (int64_t)(off6 + 1) : 0);
	r = pg_exec(c, "UPDATE tenants SET hint4 = greatest(hint4, $2::int8), "
		"hint6 = greatest(hint6, $3::int8) WHERE name = $1::text", &a);
	if (r < 0)
		return r;
	e->result = STORE_ENROLL_NEW;
	return pg_event_append(b, c, STORE_EV_ENROLLED, d->id, d->tenant);
}

static int
fn_enroll(struct store_backend *b, PGconn *c, void *arg)
{
	struct enroll_op *e = arg;
	const struct store_enroll_req *req = e->req;
	struct store_tenant t;
	struct store_session sess;
	struct store_device other;
	struct pg_args a = { 0 };
	int64_t now = pg_now(b);
	int r;

	memset(&e->prev, 0, sizeof(e->prev));
	/* the tenant's row, locked: one allocation at a time per tenant, on every node */
	r = pg_get_tenant(c, req->tenant, true, &t);
	if (r < 0)
		return r;
	if (req->has_session) {
		r = pg_session_lock(b, c, req->session_id, &sess);
		if (r == 0 && (strcmp(sess.tenant, req->tenant) != 0 ||
				      memcmp(sess.ek_hash, req->ek_hash, STORE_HASH_LEN) != 0 ||
				      memcmp(sess.wg_pubkey, req->wg_pubkey, STORE_KEY_LEN) != 0))
			r = -EINVAL;
		store_session_wipe(&sess);
		if (r == 0)
			r = pg_session_mark_used(c, req->session_id);
		if (r < 0)
			return r;
	}
	pa_bytes(&a, req->ek_hash, STORE_HASH_LEN);
	r = pg_exec(c, "SELECT 1 FROM revocations WHERE ek_hash = $1::bytea", &a);
	if (r < 0)
		return r;
	if (r > 0)
		return -EPERM;
	if (req->kind == STORE_ATTEST_X509) {
		if (t.require_tpm)
			return -EPROTONOSUPPORT;
		memset(&a, 0, sizeof(a));
		pa_text(&a, req->tenant);
		pa_bytes(&a, req->serial, req->serial_len);
		r = pg_exec(c, "SELECT 1 FROM x509_revoked WHERE tenant = $1::text AND "
			"serial = $2::bytea", &a);
		if (r < 0)
			return r;
		if (r > 0)
			return -EKEYREVOKED;
	} else {
		r = enroll_authorise(c, req, now);
		if (r < 0)
			return r;
	}
	/* the key must not belong to another device (a peer is identified by its key) */
	memset(&a, 0, sizeof(a));
	pa_bytes(&a, req->wg_pubkey, STORE_KEY_LEN);
	r = dev_get(c, "SELECT " DEV_COLS " FROM devices WHERE wg_pubkey = $1::bytea", &a, &other);
	if (r == 0 && memcmp(other.ek_hash, req->ek_hash, STORE_HASH_LEN) != 0)
		return -EEXIST;
	if (r < 0 && r != -ENOENT)
		return r;
	memset(&a, 0, sizeof(a));
	pa_bytes(&a, req->ek_hash, STORE_HASH_LEN);
	r = dev_get(c, "SELECT " DEV_COLS " FROM devices WHERE ek_hash = $1::bytea "
		"FOR NO KEY UPDATE", &a, &e->dev);
	if (r == 0)
		return enroll_existing(b, c, e, now);
	if (r != -ENOENT)
		return r;
	return enroll_new(b, c, e, &t, now);
}

int
pg_enroll_prev(struct store_backend *b, const struct store_enroll_req *req,
	struct store_device *ret_dev, struct store_device *ret_prev)
{
	struct enroll_op e = { .req = req };
	int r;

	r = pg_txn(b, true, fn_enroll, &e);
	if (r < 0)
		return r;
	if (ret_dev != NULL)
		*ret_dev = e.dev;
	if (ret_prev != NULL)
		*ret_prev = e.prev;
	return e.result;
}

/* ---- lookups and pages ----------------------------------------------------------------------- */

int
pg_device_get(struct store_backend *b, uint64_t id, struct store_device *ret)
{
	struct pg_args a = { 0 };

	if (id > INT64_MAX)
		return -ENOENT;
	pa_i64(&a, (int64_t)id);
	return dev_read(b, "SELECT " DEV_COLS " FROM devices WHERE id = $1::int8", &a, ret);
}

int
pg_device_by_pubkey(struct store_backend *b, const uint8_t key[static STORE_KEY_LEN],
	struct store_device *ret)
{
	struct pg_args a = { 0 };

	pa_bytes(&a, key, STORE_KEY_LEN);
	return dev_read(b, "SELECT " DEV_COLS " FROM devices WHERE wg_pubkey = $1::bytea", &a, ret);
}

int
pg_device_by_ek(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN],
	struct store_device *ret)
{
	struct pg_args a = { 0 };

	pa_bytes(&a, ek_hash, STORE_HASH_LEN);
	return dev_read(b, "SELECT " DEV_COLS " FROM devices WHERE ek_hash = $1::bytea", &a, ret);
}

int
pg_device_by_addr(struct store_backend *b, const char *tenant, int family,
	const uint8_t addr[static 16], struct store_device *ret)
{
	struct pg_args a = { 0 };

	pa_text(&a, tenant);
	pa_bytes(&a, addr, 16);
	if (family == AF_INET)
		return dev_read(b, "SELECT " DEV_COLS " FROM devices WHERE tenant = $1::text AND "
			"addr4 = $2::bytea", &a, ret);
	if (family == AF_INET6)
		return dev_read(b, "SELECT " DEV_COLS " FROM devices WHERE tenant = $1::text AND "
			"addr6 = $2::bytea", &a, ret);
	return -ENOENT;
}

int
pg_device_list(struct store_backend *b, const struct store_device_filter *f,
	struct store_device **ret, size_t *ret_n, uint64_t *ret_next)
{
	unsigned int limit = f->limit ? f->limit : 100;
	struct store_device *arr = NULL;
	struct pg_args a = { 0 };
	size_t n = 0;
	int r;

	if (limit > 1000)
		limit = 1000;
	if (f->after >= INT64_MAX) {
		*ret = NULL;
		*ret_n = 0;
		*ret_next = 0;
		return 0;
	}
	pa_text(&a, f->tenant);
	pa_i64(&a, f->state);
	pa_i64(&a, (int64_t)f->after);
	pa_i64(&a, limit + 1); /* one more: is there a next page? */
	r = pg_list(b, "SELECT " DEV_COLS " FROM devices WHERE ($1::text IS NULL OR "
		"tenant = $1::text) AND ($2::int8 = 0 OR state = $2::int8) AND id > $3::int8 "
		"ORDER BY id LIMIT $4::int8", &a, sizeof(*arr), dev_row, (void **)&arr, &n);
	if (r < 0)
		return r;
	*ret_next = 0;
	if (n > limit) {
		n = limit;
		*ret_next = arr[n - 1].id;
	}
	*ret = arr;
	*ret_n = n;
	return 0;
}

int
pg_device_list_all(struct store_backend *b, const char *tenant, uint8_t state,
	struct store_device **ret, size_t *ret_n)
{
	struct pg_args a = { 0 };

	pa_text(&a, tenant);
	pa_i64(&a, state);
	return pg_list(b, "SELECT " DEV_COLS " FROM devices WHERE ($1::text IS NULL OR "
		"tenant = $1::text) AND ($2::int8 = 0 OR state = $2::int8) ORDER BY id", &a,
		sizeof(**ret), dev_row, (void **)ret, ret_n);
}

/* ---- revocation, reinstatement, deletion ----------------------------------------------------- */

struct device_op {
	uint64_t id;
	struct store_device dev;
};

static int
fn_revoke(struct store_backend *b, PGconn *c, void *arg)
{
	struct device_op *o = arg;
	struct store_device *d = &o->dev;
	struct pg_args a = { 0 };
	int64_t now = pg_now(b);
	int r;

	pa_i64(&a, (int64_t)o->id);
	r = dev_get(c, "SELECT " DEV_COLS " FROM devices WHERE id = $1::int8 FOR NO KEY UPDATE",
		&a, d);
	if (r < 0)
		return r;
	if (d->state == STORE_DEVICE_REVOKED)
		return -EALREADY;
	d->state = STORE_DEVICE_REVOKED;
	d->revoked = d->updated = now;
	pa_i64(&a, now);
	r = pg_exec(c, "UPDATE devices SET state = 2, revoked = $2::int8, updated = $2::int8 "
		"WHERE id = $1::int8", &a);
	if (r < 0)
		return r;
	memset(&a, 0, sizeof(a));
	pa_bytes(&a, d->ek_hash, STORE_HASH_LEN);
	pa_i64(&a, (int64_t)d->id);
	pa_i64(&a, now);
	r = pg_exec(c, "INSERT INTO revocations (ek_hash, device, time) VALUES ($1::bytea, "
		"$2::int8, $3::int8) ON CONFLICT (ek_hash) DO UPDATE SET device = excluded.device, "
		"time = excluded.time", &a);
	if (r < 0)
		return r;
	return pg_event_append(b, c, STORE_EV_REVOKED, d->id, d->tenant);
}

int
pg_device_revoke(struct store_backend *b, uint64_t id, struct store_device *ret_dev)
{
	struct device_op o = { .id = id };
	int r;

	if (id > INT64_MAX)
		return -ENOENT;
	r = pg_txn(b, true, fn_revoke, &o);
	if (r == 0 && ret_dev != NULL)
		*ret_dev = o.dev;
	return r;
}

static int
fn_reinstate(struct store_backend *b, PGconn *c, void *arg)
{
	struct device_op *o = arg;
	struct store_device *d = &o->dev;
	struct pg_args a = { 0 };
	int r;

	pa_i64(&a, (int64_t)o->id);
	r = dev_get(c, "SELECT " DEV_COLS " FROM devices WHERE id = $1::int8 FOR NO KEY UPDATE",
		&a, d);
	if (r < 0)
		return r;
	memset(&a, 0, sizeof(a));
	pa_bytes(&a, d->ek_hash, STORE_HASH_LEN);
	r = pg_exec(c, "DELETE FROM revocations WHERE ek_hash = $1::bytea", &a);
	if (r < 0)
		return r;
	if (r == 0)
		return -EALREADY;
	return pg_event_append(b, c, STORE_EV_REINSTATED, d->id, d->tenant);
}

int
pg_device_reinstate(struct store_backend *b, uint64_t id)
{
	struct device_op o = { .id = id };

	if (id > INT64_MAX)
		return -ENOENT;
	return pg_txn(b, true, fn_reinstate, &o);
}

static int
fn_delete(struct store_backend *b, PGconn *c, void *arg)
{
	struct device_op *o = arg;
	struct store_device *d = &o->dev;
	struct store_tenant t;
	struct pg_args a = { 0 };
	uint64_t off4 = 0, off6 = 0;
	int r;

	/* the tenant first (the lock order), then the device, then check nothing moved */
	pa_i64(&a, (int64_t)o->id);
	r = dev_get(c, "SELECT " DEV_COLS " FROM devices WHERE id = $1::int8", &a, d);
	if (r < 0)
		return r;
	r = pg_get_tenant(c, d->tenant, true, &t);
	if (r < 0)
		return r;
	r = dev_get(c, "SELECT " DEV_COLS " FROM devices WHERE id = $1::int8 FOR UPDATE", &a, d);
	if (r < 0)
		return r;
	if (d->state != STORE_DEVICE_REVOKED)
		return -EBUSY;
	r = pg_exec(c, "DELETE FROM devices WHERE id = $1::int8", &a); /* health: cascade */
	if (r < 0)
		return r;
	/* its addresses are free again: lower the low-water marks to them */
	if (addr_offset(&t.prefix4, d->addr4, &off4) < 0)
		off4 = INT64_MAX;
	if (!d->has_addr6 || addr_offset(&t.prefix6, d->addr6, &off6) < 0)
		off6 = INT64_MAX;
	memset(&a, 0, sizeof(a));
	pa_text(&a, t.name);
	pa_i64(&a, (int64_t)off4);
	pa_i64(&a, (int64_t)off6);
	r = pg_exec(c, "UPDATE tenants SET hint4 = least(hint4, $2::int8), "
		"hint6 = least(hint6, $3::int8) WHERE name = $1::text", &a);
	return r < 0 ? r : 0;
}

int
pg_device_delete(struct store_backend *b, uint64_t id)
{
	struct device_op o = { .id = id };

	if (id > INT64_MAX)
		return -ENOENT;
	return pg_txn(b, true, fn_delete, &o);
}

int
pg_ek_revoked(struct store_backend *b, const uint8_t ek_hash[static STORE_HASH_LEN])
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	pa_bytes(&a, ek_hash, STORE_HASH_LEN);
	r = pg_read(b, "SELECT 1 FROM revocations WHERE ek_hash = $1::bytea", &a, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) > 0;
	PQclear(res);
	return r;
}

/* ---- health ---------------------------------------------------------------------------------- */

struct health_op {
	const struct store_health *h;
	size_t n;
	int transitions;
};

static int
fn_health(struct store_backend *b, PGconn *c, void *arg)
{
	struct health_op *o = arg;
	struct ev {
		int kind;
		uint64_t device;
		char tenant[STORE_NAME_MAX];
	} *evs = NULL;
	size_t n_ev = 0;
	int64_t now = pg_now(b);
	int r = 0;

	o->transitions = 0;
	evs = calloc(o->n, sizeof(*evs));
	if (evs == NULL)
		return -ENOMEM;
	for (size_t i = 0; i < o->n; i++) {
		const struct store_health *h = &o->h[i];
		struct pg_args a = { 0 };
		PGresult *res = NULL;
		char tenant[STORE_NAME_MAX];
		int64_t cur;

		if (h->device > INT64_MAX)
			continue;
		pa_i64(&a, (int64_t)h->device);
		r = pg_q(c, "SELECT tenant FROM devices WHERE id = $1::int8", &a, &res);
		if (r < 0)
			goto out;
		if (PQntuples(res) != 1) { /* deleted since the tick started */
			PQclear(res);
			continue;
		}
		rv_text(res, 0, 0, tenant, sizeof(tenant));
		PQclear(res);
		/* the health row locked (none yet: never seen) */
		r = pg_q(c, "SELECT state FROM health WHERE device = $1::int8 FOR UPDATE", &a, &res);
		if (r < 0)
			goto out;
		cur = PQntuples(res) == 1 ? rv_i64(res, 0, 0) : STORE_HEALTH_NEVER;
		PQclear(res);
		if (cur == h->state)
			continue;
		pa_i64(&a, h->state);
		pa_i64(&a, h->since ? h->since : now);
		r = pg_exec(c, "INSERT INTO health (device, state, since) VALUES ($1::int8, "
			"$2::int8, $3::int8) ON CONFLICT (device) DO UPDATE SET state = "
			"excluded.state, since = excluded.since", &a);
		if (r < 0)
			goto out;
		if (h->state != STORE_HEALTH_NEVER) {
			evs[n_ev].kind = h->state == STORE_HEALTH_UP ? STORE_EV_UP : STORE_EV_DOWN;
			evs[n_ev].device = h->device;
			memcpy(evs[n_ev].tenant, tenant, sizeof(tenant));
			n_ev++;
		}
		o->transitions++;
	}
	/* the event counter last: the lock order */
	for (size_t i = 0; i < n_ev; i++) {
		r = pg_event_append(b, c, evs[i].kind, evs[i].device, evs[i].tenant);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	free(evs);
	return r;
}

int
pg_health_update(struct store_backend *b, const struct store_health *h, size_t n)
{
	struct health_op o = { .h = h, .n = n };
	int r;

	if (n == 0)
		return 0;
	r = pg_txn(b, true, fn_health, &o);
	return r < 0 ? r : o.transitions;
}

int
pg_health_get(struct store_backend *b, uint64_t device, struct store_health *ret)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	if (device > INT64_MAX)
		return -ENOENT;
	pa_i64(&a, (int64_t)device);
	r = pg_read(b, "SELECT coalesce(h.state, 0), coalesce(h.since, 0) FROM devices d "
		"LEFT JOIN health h ON h.device = d.id WHERE d.id = $1::int8", &a, &res);
	if (r < 0)
		return r;
	if (PQntuples(res) == 1) {
		ret->device = device;
		ret->state = (uint8_t)rv_i64(res, 0, 0);
		ret->since = rv_i64(res, 0, 1);
	} else {
		r = -ENOENT;
	}
	PQclear(res);
	return r;
}

static int
health_row(const PGresult *res, int i, void *out)
{
	struct store_health *h = out;

	memset(h, 0, sizeof(*h));
	h->device = (uint64_t)rv_i64(res, i, 0);
	h->state = (uint8_t)rv_i64(res, i, 1);
	h->since = rv_i64(res, i, 2);
	return 0;
}

/* One query; a device's deletion deletes its health row (ON DELETE CASCADE). */
int
pg_health_list(struct store_backend *b, struct store_health **ret, size_t *ret_n)
{
	struct pg_args a = { 0 };

	return pg_list(b, "SELECT device, state, since FROM health ORDER BY device", &a,
		sizeof(**ret), health_row, (void **)ret, ret_n);
}

/* ---- events ---------------------------------------------------------------------------------- */

static int
event_row(const PGresult *res, int i, void *out)
{
	struct store_event *ev = out;

	memset(ev, 0, sizeof(*ev));
	ev->seq = (uint64_t)rv_i64(res, i, 0);
	ev->time = rv_i64(res, i, 1);
	ev->kind = (uint8_t)rv_i64(res, i, 2);
	ev->device = (uint64_t)rv_i64(res, i, 3);
	return rv_text(res, i, 4, ev->tenant, sizeof(ev->tenant)) < 0 ? -EUCLEAN : 0;
}

int
pg_events_read(struct store_backend *b, uint64_t after, size_t max, struct store_event **ret,
	size_t *ret_n)
{
	struct pg_args a = { 0 };

	if (max == 0 || max > 1000)
		max = 1000;
	if (after >= INT64_MAX) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	pa_i64(&a, (int64_t)after);
	pa_i64(&a, (int64_t)max);
	return pg_list(b, "SELECT seq, time, kind, device, tenant FROM events WHERE seq > $1::int8 "
		"ORDER BY seq LIMIT $2::int8", &a, sizeof(**ret), event_row, (void **)ret, ret_n);
}

/* ---- consistency check ----------------------------------------------------------------------- */

#define FAIL(...)                                    \
	do {                                         \
		snprintf(why, why_len, __VA_ARGS__); \
		r = -EUCLEAN;                        \
		goto out;                            \
	} while (0)

struct verify_op {
	char *why;
	size_t why_len;
};

/* Count the devices of @t whose @family address lies below offset @hint. */
static int
verify_tenant(PGconn *c, const struct store_tenant *t, int family, uint64_t hint,
	const PGresult *devs, char *why, size_t why_len)
{
	const struct addr_prefix *p = family == AF_INET ? &t->prefix4 : &t->prefix6;
	const uint8_t *self = family == AF_INET ? t->self4 : t->self6;
	uint64_t first, last, self_off = UINT64_MAX, below = 0, want;
	int r = 0;

	for (int i = 0; i < PQntuples(devs); i++) {
		struct store_device d;
		const uint8_t *addr;
		char a[ADDR_STR_LEN] = "?";
		uint64_t off;

		if (dev_row(devs, i, &d) < 0)
			FAIL("devices: a row does not read back");
		if (strcmp(d.tenant, t->name) != 0 || (family == AF_INET6 && !d.has_addr6))
			continue;
		addr = family == AF_INET ? d.addr4 : d.addr6;
		addr_format(family, addr, a, sizeof(a));
		if (!addr_is_usable(p, addr) || memcmp(addr, self, addr_len(family)) == 0 ||
		    addr_offset(p, addr, &off) < 0)
			FAIL("device %llu: address %s not usable in tenant '%s'",
				(unsigned long long)d.id, a, t->name);
		if (off < hint)
			below++;
	}
	/* every usable offset below the low-water mark is taken (so none is handed twice) */
	if (addr_usable_range(p, &first, &last) < 0)
		goto out;
	addr_offset(p, self, &self_off);
	want = hint > first ? (hint > last + 1 ? last + 1 : hint) - first : 0;
	if (self_off >= first && self_off < hint)
		want--;
	if (below != want)
		FAIL("tenant '%s': %llu of the %llu offsets below the allocation mark %llu are held",
			t->name, (unsigned long long)below, (unsigned long long)want,
			(unsigned long long)hint);
out:
	return r;
}

static int
fn_verify(struct store_backend *b, PGconn *c, void *arg)
{
	struct verify_op *o = arg;
	char *why = o->why;
	size_t why_len = o->why_len;
	PGresult *tenants = NULL, *devs = NULL, *res = NULL;
	int r;

	/* one snapshot for every query */
	r = pg_exec(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL);
	if (r < 0)
		return r;
	r = pg_q(c, "SELECT d.id FROM devices d LEFT JOIN tenants t ON t.name = d.tenant "
		"WHERE t.name IS NULL LIMIT 1", NULL, &res);
	if (r < 0)
		goto out;
	if (PQntuples(res) > 0)
		FAIL("device %lld: no tenant", (long long)rv_i64(res, 0, 0));
	PQclear(res);
	res = NULL;
	r = pg_q(c, "SELECT tenant, addr4 FROM devices GROUP BY tenant, addr4 HAVING count(*) > 1 "
		"UNION ALL SELECT tenant, addr6 FROM devices WHERE addr6 IS NOT NULL "
		"GROUP BY tenant, addr6 HAVING count(*) > 1", NULL, &res);
	if (r < 0)
		goto out;
	if (PQntuples(res) > 0)
		FAIL("an address is held twice in a tenant");
	PQclear(res);
	res = NULL;
	r = pg_q(c, "SELECT (SELECT coalesce(max(seq), 0) FROM events) > event_seq FROM meta",
		NULL, &res);
	if (r < 0)
		goto out;
	if (PQntuples(res) != 1 || *PQgetvalue(res, 0, 0))
		FAIL("event log ends after the sequence counter");
	PQclear(res);
	res = NULL;
	r = pg_q(c, "SELECT " DEV_COLS " FROM devices ORDER BY id", NULL, &devs);
	if (r < 0)
		goto out;
	r = pg_q(c, "SELECT name, hint4, hint6 FROM tenants ORDER BY name", NULL, &tenants);
	if (r < 0)
		goto out;
	for (int i = 0; i < PQntuples(tenants); i++) {
		struct store_tenant t;
		char name[STORE_NAME_MAX];

		rv_text(tenants, i, 0, name, sizeof(name));
		r = pg_get_tenant(c, name, false, &t);
		if (r < 0)
			goto out;
		r = verify_tenant(c, &t, AF_INET, (uint64_t)rv_i64(tenants, i, 1), devs, why,
			why_len);
		if (r == 0 && t.prefix6.family == AF_INET6)
			r = verify_tenant(c, &t, AF_INET6, (uint64_t)rv_i64(tenants, i, 2), devs,
				why, why_len);
		if (r < 0)
			goto out;
	}
	r = 0;
out:
	PQclear(res);
	PQclear(devs);
	PQclear(tenants);
	/* a finding is an answer, not a failed transaction */
	return r == -EUCLEAN ? 1 : r;
}

int
pg_verify(struct store_backend *b, char *why, size_t why_len)
{
	struct verify_op o = { why, why_len };
	int r;

	snprintf(why, why_len, "consistent");
	r = pg_txn(b, false, fn_verify, &o);
	return r == 1 ? -EUCLEAN : r;
}
