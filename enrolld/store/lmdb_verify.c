// SPDX-License-Identifier: MIT
/*
 * The LMDB backend: store_verify(), every index checked against the primary records.
 *
 * In key order, not by lookups: one walk of the devices checks each record on its own and
 * counts, per tenant and family, the addresses below the allocation mark; then, for each
 * index in turn, the entries the devices imply (key -> device id) are collected, put in the
 * index's key order (collect()) and compared with a cursor walk of the index as a merge: an entry
 * the walk lacks is a device missing from the index, one it has in excess a stray entry,
 * one with another value an entry naming the wrong device. The index is then exactly the
 * devices' entries, so an address below a tenant's allocation mark is taken iff a device
 * holds it, and counting them replaces a lookup per offset. Sequential reads instead of
 * about seven B-tree searches per device (docs/benchmarks.md, "Store and API at 1,000,000
 * devices"). Memory: one array of 40 bytes per device (per address for the address
 * index, if more), reused by the four indexes and freed before returning.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/store/lmdb_internal.h"

#define FAIL(...)                                                 \
	do {                                                      \
		snprintf(why, why_len, __VA_ARGS__);              \
		r = -EUCLEAN;                                     \
		goto out;                                         \
	} while (0)

/* Offsets below the allocation mark checked per tenant and family (as when this looked up each) */
#define HINT_SPAN (UINT64_C(1) << 20)

enum { IX_PUBKEY, IX_EK, IX_TENANT, IX_ADDR, IX_COUNT };

static const int ix_db[IX_COUNT] = { DB_DEV_PUBKEY, DB_DEV_EK, DB_DEV_TENANT, DB_DEV_ADDR };
static const char *const ix_name[IX_COUNT] = { "public key index", "EK index", "tenant index",
	"address index" };

/*
 * One expected index entry. Its key k (32 bytes) orders entries as the index's keys order:
 * the key itself (public key, EK hash), or the tenant's rank in name order (big-endian)
 * followed by the family (4, 6) and the address, zero-padded; equal k then by id.
 */
struct vent {
	uint64_t w[4]; /* k as four big-endian words: compared as numbers, memcmp's order */
	uint64_t id;
};

/* A tenant record, with what the device walk learns about its addresses. */
struct vtenant {
	struct store_tenant t;
	/* per family (0: IPv4, 1: IPv6): usable offsets [first, end) must all be taken */
	bool check[2];
	uint64_t first[2], end[2], self_off[2];
	uint64_t below[2]; /* device addresses with an offset in [first, end) */
	/* its devices and addresses, and where their entries go in the array of an index */
	size_t n_dev, n_addr[2];
	size_t at_dev, at_addr[2];
};

struct vctx {
	struct lmdb_store *s;
	MDB_txn *txn;
	struct vtenant *ts;
	size_t n_ts;
	size_t n_dev, n_addr;
};

static inline int
vent_cmp(const struct vent *a, const struct vent *b)
{
	for (int i = 0; i < 4; i++)
		if (a->w[i] != b->w[i])
			return a->w[i] < b->w[i] ? -1 : 1;
	return a->id < b->id ? -1 : a->id > b->id;
}

static void
vent_swap(struct vent *a, struct vent *b)
{
	struct vent t = *a;

	*a = *b;
	*b = t;
}

static void
vent_set(struct vent *e, const uint8_t k[static 32], uint64_t id)
{
	for (int j = 0; j < 4; j++)
		e->w[j] = be64_get(k + 8 * j);
	e->id = id;
}

static void
vent_key(const struct vent *e, uint8_t k[static 32])
{
	for (int j = 0; j < 4; j++)
		be64_put(k + 8 * j, e->w[j]);
}

/*
 * In place (no second array, unlike glibc's qsort, which may allocate one as large), with
 * the comparison inlined: quicksort on the median of three, the smaller side first, so the
 * stack stays O(log n); insertion sort for short runs. The walks produce runs already
 * ascending (ids, addresses), which the median of three handles well.
 */
static void
vent_sort(struct vent *a, size_t n)
{
	while (n > 16) {
		size_t mid = n / 2, i = 0, j = n - 1;
		struct vent pivot;

		if (vent_cmp(&a[mid], &a[0]) < 0)
			vent_swap(&a[mid], &a[0]);
		if (vent_cmp(&a[n - 1], &a[0]) < 0)
			vent_swap(&a[n - 1], &a[0]);
		if (vent_cmp(&a[n - 1], &a[mid]) < 0)
			vent_swap(&a[n - 1], &a[mid]);
		pivot = a[mid];
		for (;;) {
			while (vent_cmp(&a[i], &pivot) < 0)
				i++;
			while (vent_cmp(&pivot, &a[j]) < 0)
				j--;
			if (i >= j)
				break;
			vent_swap(&a[i], &a[j]);
			i++;
			j--;
		}
		/* [0, j] <= pivot <= [j + 1, n) */
		if (j + 1 < n - j - 1) {
			vent_sort(a, j + 1);
			a += j + 1;
			n -= j + 1;
		} else {
			vent_sort(a + j + 1, n - j - 1);
			n = j + 1;
		}
	}
	for (size_t i = 1; i < n; i++) {
		struct vent x = a[i];
		size_t j = i;

		for (; j > 0 && vent_cmp(&x, &a[j - 1]) < 0; j--)
			a[j] = a[j - 1];
		a[j] = x;
	}
}

/* Sort @n entries unless they are in order already (runs the walk of the devices produced). */
static void
vent_order(struct vent *a, size_t n)
{
	for (size_t i = 1; i < n; i++) {
		if (vent_cmp(&a[i - 1], &a[i]) > 0) {
			vent_sort(a, n);
			return;
		}
	}
}

static int
vtenant_cmp(const void *a, const void *b)
{
	return strcmp(((const struct vtenant *)a)->t.name, ((const struct vtenant *)b)->t.name);
}

/* The tenant @name (of a device record, maybe not terminated): its rank, or -1. */
static long
tenant_rank(const struct vctx *c, const char *name)
{
	size_t lo = 0, hi = c->n_ts;

	if (!store_tenant_name_ok(name))
		return -1;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		int d = strcmp(name, c->ts[mid].t.name);

		if (d == 0)
			return (long)mid;
		if (d < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return -1;
}

static int
fam_of(int i)
{
	return i == 0 ? AF_INET : AF_INET6;
}

/* Every tenant record, sorted by name, with its allocation marks. */
static int
load_tenants(struct vctx *c, char *why, size_t why_len)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	size_t cap = 0;
	int rc, r = 0;

	rc = mdb_cursor_open(c->txn, c->s->dbi[DB_TENANTS], &cur);
	if (rc != 0)
		return lm_errno(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		struct vtenant *vt;

		if (v.mv_size != sizeof(vt->t))
			FAIL("tenants: record of bad size");
		if (c->n_ts == cap) {
			size_t nc = cap ? cap * 2 : 16;
			struct vtenant *na = realloc(c->ts, nc * sizeof(*na));

			if (na == NULL) {
				r = -ENOMEM;
				goto out;
			}
			c->ts = na;
			cap = nc;
		}
		vt = &c->ts[c->n_ts];
		memset(vt, 0, sizeof(*vt));
		memcpy(&vt->t, v.mv_data, sizeof(vt->t));
		/* Devices find their tenant by the key, the indexes use the record's name. */
		if (!store_tenant_name_ok(vt->t.name) || k.mv_size != strlen(vt->t.name) ||
		    memcmp(k.mv_data, vt->t.name, k.mv_size) != 0)
			FAIL("tenants: record stored under another name than its own ('%.31s')",
				vt->t.name);
		for (int i = 0; i < 2; i++) {
			const struct addr_prefix *p = i == 0 ? &vt->t.prefix4 : &vt->t.prefix6;
			const uint8_t *self = i == 0 ? vt->t.self4 : vt->t.self6;
			uint64_t hint = 0, first, last, end;
			struct key key;

			if (i == 1 && vt->t.prefix6.family != AF_INET6)
				continue;
			key_tenant_family(&key, vt->t.name, fam_of(i));
			if (lm_t_get_u64(c->s, c->txn, DB_ADDR_HINT, &key, &hint) < 0)
				continue;
			if (addr_usable_range(p, &first, &last) < 0)
				continue;
			end = hint;
			if (last != UINT64_MAX && end > last + 1)
				end = last + 1;
			if (end > first && end - first > HINT_SPAN)
				end = first + HINT_SPAN;
			if (end <= first)
				continue;
			vt->check[i] = true;
			vt->first[i] = first;
			vt->end[i] = end;
			vt->self_off[i] = UINT64_MAX;
			addr_offset(p, self, &vt->self_off[i]);
		}
		c->n_ts++;
	}
	if (rc != MDB_NOTFOUND) {
		r = lm_errno(rc);
		goto out;
	}
	if (c->n_ts > 1)
		qsort(c->ts, c->n_ts, sizeof(*c->ts), vtenant_cmp);
out:
	mdb_cursor_close(cur);
	return r;
}

static int
check_address(struct vctx *c, struct vtenant *vt, const struct store_device *d, int i,
	char *why, size_t why_len)
{
	const struct addr_prefix *p = i == 0 ? &vt->t.prefix4 : &vt->t.prefix6;
	const uint8_t *addr = i == 0 ? d->addr4 : d->addr6;
	const uint8_t *self = i == 0 ? vt->t.self4 : vt->t.self6;
	char a[ADDR_STR_LEN] = "?";
	uint64_t off;
	int r = 0;

	if (!addr_is_usable(p, addr) || memcmp(addr, self, addr_len(fam_of(i))) == 0) {
		addr_format(fam_of(i), addr, a, sizeof(a));
		FAIL("device %llu: address %s not usable in tenant '%s'",
			(unsigned long long)d->id, a, vt->t.name);
	}
	if (vt->check[i] && addr_offset(p, addr, &off) == 0 && off >= vt->first[i] &&
	    off < vt->end[i])
		vt->below[i]++;
	vt->n_addr[i]++;
	c->n_addr++;
out:
	return r;
}

/* The first walk: each device record on its own; counts. */
static int
check_devices(struct vctx *c, char *why, size_t why_len)
{
	MDB_cursor *cur = NULL;
	struct store_device d;
	MDB_val k, v;
	int rc, r = 0;

	rc = mdb_cursor_open(c->txn, c->s->dbi[DB_DEVICES], &cur);
	if (rc != 0)
		return lm_errno(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		long t;

		if (k.mv_size != 8 || v.mv_size != sizeof(d))
			FAIL("devices: record of bad size");
		memcpy(&d, v.mv_data, sizeof(d));
		if (be64_get(k.mv_data) != d.id)
			FAIL("device %llu stored under another id", (unsigned long long)d.id);
		if (d.state != STORE_DEVICE_ACTIVE && d.state != STORE_DEVICE_REVOKED)
			FAIL("device %llu: bad state %u", (unsigned long long)d.id, d.state);
		t = tenant_rank(c, d.tenant);
		if (t < 0)
			FAIL("device %llu: no tenant '%.31s'", (unsigned long long)d.id, d.tenant);
		r = check_address(c, &c->ts[t], &d, 0, why, why_len);
		if (r == 0 && d.has_addr6)
			r = check_address(c, &c->ts[t], &d, 1, why, why_len);
		if (r < 0)
			goto out;
		c->ts[t].n_dev++;
		c->n_dev++;
	}
	if (rc != MDB_NOTFOUND)
		r = lm_errno(rc);
out:
	mdb_cursor_close(cur);
	return r;
}

static void
rank_put(uint8_t *b, long rank)
{
	b[0] = (uint8_t)(rank >> 24);
	b[1] = (uint8_t)(rank >> 16);
	b[2] = (uint8_t)(rank >> 8);
	b[3] = (uint8_t)rank;
}

static long
rank_get(const uint8_t *b)
{
	return (long)((uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3]);
}

/*
 * The entries of index @ix the devices imply, in the index's order: the public keys and EK
 * hashes sorted; the tenant and address entries placed by tenant (and family), which is
 * their key order, by the counts of check_devices, so that each tenant's run comes out of
 * the walk already in id order (the tenant index) or nearly (addresses are allocated lowest
 * first), and only a run out of order is sorted.
 */
static int
collect(struct vctx *c, int ix, struct vent *e, size_t cap, size_t *ret_n)
{
	MDB_cursor *cur = NULL;
	struct store_device d;
	MDB_val k, v;
	size_t n = 0, pos = 0;
	int rc, r = 0;

	for (size_t t = 0; t < c->n_ts; t++) {
		struct vtenant *vt = &c->ts[t];

		vt->at_dev = pos;
		if (ix == IX_TENANT)
			pos += vt->n_dev;
		vt->at_addr[0] = pos;
		if (ix == IX_ADDR)
			pos += vt->n_addr[0];
		vt->at_addr[1] = pos;
		if (ix == IX_ADDR)
			pos += vt->n_addr[1];
	}
	rc = mdb_cursor_open(c->txn, c->s->dbi[DB_DEVICES], &cur);
	if (rc != 0)
		return lm_errno(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		uint8_t key[32] = { 0 };
		struct vtenant *vt;
		size_t at[2] = { 0, 0 };
		long t;

		memcpy(&d, v.mv_data, sizeof(d));
		t = tenant_rank(c, d.tenant);
		if (t < 0) {
			r = -EUCLEAN; /* not what check_devices saw: cannot happen in one txn */
			goto out;
		}
		vt = &c->ts[t];
		switch (ix) {
		case IX_PUBKEY:
		case IX_EK:
			at[0] = n;
			memcpy(key, ix == IX_PUBKEY ? d.wg_pubkey : d.ek_hash, 32);
			break;
		case IX_TENANT:
			at[0] = vt->at_dev++;
			rank_put(key, t);
			break;
		default:
			at[0] = vt->at_addr[0]++;
			if (d.has_addr6)
				at[1] = vt->at_addr[1]++;
			rank_put(key, t);
			key[4] = 4;
			memcpy(key + 5, d.addr4, 4);
			break;
		}
		if (at[0] >= cap || (ix == IX_ADDR && d.has_addr6 && at[1] >= cap)) {
			r = -EUCLEAN;
			goto out;
		}
		vent_set(&e[at[0]], key, d.id);
		n++;
		if (ix == IX_ADDR && d.has_addr6) {
			key[4] = 6;
			memcpy(key + 5, d.addr6, 16);
			vent_set(&e[at[1]], key, d.id);
			n++;
		}
	}
	if (rc != MDB_NOTFOUND) {
		r = lm_errno(rc);
		goto out;
	}
	if (ix == IX_PUBKEY || ix == IX_EK) {
		vent_sort(e, n);
	} else {
		for (size_t t = 0; t < c->n_ts; t++) {
			const struct vtenant *vt = &c->ts[t];

			if (ix == IX_TENANT) {
				vent_order(e + vt->at_dev - vt->n_dev, vt->n_dev);
			} else {
				vent_order(e + vt->at_addr[0] - vt->n_addr[0], vt->n_addr[0]);
				vent_order(e + vt->at_addr[1] - vt->n_addr[1], vt->n_addr[1]);
			}
		}
	}
	*ret_n = n;
out:
	mdb_cursor_close(cur);
	return r;
}

/* The index key of entry @e of index @ix. */
static void
key_of(const struct vctx *c, int ix, const struct vent *e, struct key *k)
{
	uint8_t b[32];

	vent_key(e, b);
	switch (ix) {
	case IX_PUBKEY:
		key_bytes(k, b, STORE_KEY_LEN);
		break;
	case IX_EK:
		key_bytes(k, b, STORE_HASH_LEN);
		break;
	case IX_TENANT:
		key_tenant_id(k, c->ts[rank_get(b)].t.name, e->id);
		break;
	default:
		key_tenant_addr(k, c->ts[rank_get(b)].t.name, b[4] == 4 ? AF_INET : AF_INET6,
			b + 5);
		break;
	}
}

static void
describe(const struct vctx *c, int ix, const struct vent *e, char *buf, size_t len)
{
	char a[ADDR_STR_LEN] = "?";
	uint8_t addr[16] = { 0 }, b[32];

	vent_key(e, b);
	if (ix != IX_ADDR) {
		snprintf(buf, len, "%s", ix_name[ix]);
		return;
	}
	memcpy(addr, b + 5, 16);
	addr_format(b[4] == 4 ? AF_INET : AF_INET6, addr, a, sizeof(a));
	snprintf(buf, len, "address %s in tenant '%s'", a, c->ts[rank_get(b)].t.name);
}

/* Compare @e (in key order) with a walk of index @ix: the index must be exactly these entries. */
static int
merge(struct vctx *c, int ix, struct vent *e, size_t n, char *why, size_t why_len)
{
	MDB_dbi dbi = c->s->dbi[ix_db[ix]];
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct key key;
	char what[96];
	size_t i = 0;
	int rc, r = 0;

	rc = mdb_cursor_open(c->txn, dbi, &cur);
	if (rc != 0)
		return lm_errno(rc);
	rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST);
	for (;;) {
		MDB_val ek;
		int cmp;

		if (rc != 0 && rc != MDB_NOTFOUND) {
			r = lm_errno(rc);
			goto out;
		}
		if (i == n && rc != 0)
			break;
		if (i < n) {
			key_of(c, ix, &e[i], &key);
			ek = kval(&key);
		}
		cmp = i == n ? 1 : rc != 0 ? -1 : mdb_cmp(c->txn, dbi, &ek, &k);
		if (cmp < 0) {
			/* a device's entry the index lacks (or a second device with its key) */
			describe(c, ix, &e[i], what, sizeof(what));
			if (ix == IX_ADDR)
				FAIL("device %llu: %s not held in the address index",
					(unsigned long long)e[i].id, what);
			FAIL("device %llu: %s", (unsigned long long)e[i].id, what);
		}
		if (cmp > 0)
			FAIL("%s: an entry of no device (index entry counts differ from %zu "
			     "devices / %zu addresses)",
				ix_name[ix], c->n_dev, c->n_addr);
		if (ix == IX_TENANT ? v.mv_size != 0 :
				      v.mv_size != 8 || be64_get(v.mv_data) != e[i].id) {
			describe(c, ix, &e[i], what, sizeof(what));
			FAIL("device %llu: %s: its entry names another device or is malformed",
				(unsigned long long)e[i].id, what);
		}
		i++;
		rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT);
	}
out:
	mdb_cursor_close(cur);
	return r;
}

/* Every usable offset below a tenant's allocation mark must be taken. */
static int
check_hints(struct vctx *c, char *why, size_t why_len)
{
	int r = 0;

	for (size_t t = 0; t < c->n_ts; t++) {
		const struct vtenant *vt = &c->ts[t];

		for (int i = 0; i < 2; i++) {
			uint64_t want;

			if (!vt->check[i])
				continue;
			want = vt->end[i] - vt->first[i];
			if (vt->self_off[i] >= vt->first[i] && vt->self_off[i] < vt->end[i])
				want--;
			if (vt->below[i] != want)
				FAIL("tenant '%s': %llu of the %llu usable IPv%c offsets below the "
				     "allocation mark %llu are free",
					vt->t.name, (unsigned long long)(want - vt->below[i]),
					(unsigned long long)want, i == 0 ? '4' : '6',
					(unsigned long long)(vt->end[i]));
		}
	}
out:
	return r;
}

int
lmdb_verify(struct store_backend *b, char *why, size_t why_len)
{
	struct vctx c = { .s = lmdb_of(b) };
	MDB_cursor *cur = NULL;
	struct vent *e = NULL;
	MDB_val k, v;
	uint64_t seq = 0;
	size_t cap, n = 0;
	int rc, r;

	snprintf(why, why_len, "consistent");
	r = lm_rtxn_begin(c.s, &c.txn);
	if (r < 0)
		return r;
	r = load_tenants(&c, why, why_len);
	if (r == 0)
		r = check_devices(&c, why, why_len);
	if (r < 0)
		goto out;
	cap = (c.n_addr > c.n_dev ? c.n_addr : c.n_dev) + 2;
	e = malloc(cap * sizeof(*e));
	if (e == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (int ix = 0; ix < IX_COUNT; ix++) {
		r = collect(&c, ix, e, cap, &n);
		if (r == 0)
			r = merge(&c, ix, e, n, why, why_len);
		if (r < 0)
			goto out;
	}
	free(e);
	e = NULL;
	r = check_hints(&c, why, why_len);
	if (r < 0)
		goto out;
	lm_t_get_u64(c.s, c.txn, DB_META, &lm_meta_event_seq, &seq);
	rc = mdb_cursor_open(c.txn, c.s->dbi[DB_EVENTS], &cur);
	if (rc == 0 && mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 &&
	    (k.mv_size != 8 || be64_get(k.mv_data) > seq))
		FAIL("event log ends after the sequence counter %llu", (unsigned long long)seq);
	r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	free(e);
	free(c.ts);
	lm_rtxn_end(c.s, c.txn);
	return r;
}
