// SPDX-License-Identifier: MIT
/* The LMDB backend: store_verify(), every index checked against the primary records. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/store/lmdb_internal.h"

/* ---- consistency check ----------------------------------------------------------------------- */

#define FAIL(...)                                                 \
	do {                                                      \
		snprintf(why, why_len, __VA_ARGS__);              \
		r = -EUCLEAN;                                     \
		goto out;                                         \
	} while (0)

/* @db[@k] must exist and name device @id. */
static bool
index_points(struct lmdb_store *s, MDB_txn *txn, int db, const struct key *k, uint64_t id)
{
	uint64_t v = 0;

	return t_get_u64(s, txn, db, k, &v) == 0 && v == id;
}

static size_t
db_entries(struct lmdb_store *s, MDB_txn *txn, int db)
{
	MDB_stat st;

	if (mdb_stat(txn, s->dbi[db], &st) != 0)
		return SIZE_MAX;
	return st.ms_entries;
}

static int
verify_address(struct lmdb_store *s, MDB_txn *txn, const struct store_tenant *t,
	const struct store_device *d, int family, char *why, size_t why_len)
{
	const struct addr_prefix *p = family == AF_INET ? &t->prefix4 : &t->prefix6;
	const uint8_t *addr = family == AF_INET ? d->addr4 : d->addr6;
	const uint8_t *self = family == AF_INET ? t->self4 : t->self6;
	struct key k;
	char a[ADDR_STR_LEN] = "?";
	int r = 0;

	addr_format(family, addr, a, sizeof(a));
	if (!addr_is_usable(p, addr) || memcmp(addr, self, addr_len(family)) == 0)
		FAIL("device %llu: address %s not usable in tenant '%s'",
			(unsigned long long)d->id, a, t->name);
	key_tenant_addr(&k, t->name, family, addr);
	if (!index_points(s, txn, DB_DEV_ADDR, &k, d->id))
		FAIL("device %llu: address %s not held in the address index",
			(unsigned long long)d->id, a);
out:
	return r;
}

/* Every usable offset below a tenant's low-water mark must be taken. */
static int
verify_hint(struct lmdb_store *s, MDB_txn *txn, const struct store_tenant *t, int family, char *why,
	size_t why_len)
{
	const struct addr_prefix *p = family == AF_INET ? &t->prefix4 : &t->prefix6;
	const uint8_t *self = family == AF_INET ? t->self4 : t->self6;
	uint64_t hint = 0, first, last, self_off = UINT64_MAX, id;
	uint8_t addr[16];
	struct key k;
	int r = 0;

	key_tenant_family(&k, t->name, family);
	if (t_get_u64(s, txn, DB_ADDR_HINT, &k, &hint) < 0)
		return 0;
	if (addr_usable_range(p, &first, &last) < 0)
		return 0;
	addr_offset(p, self, &self_off);
	for (uint64_t off = first; off < hint && off <= last && off - first < (1u << 20); off++) {
		if (off == self_off)
			continue;
		addr_at(p, off, addr);
		key_tenant_addr(&k, t->name, family, addr);
		if (t_get_u64(s, txn, DB_DEV_ADDR, &k, &id) < 0)
			FAIL("tenant '%s': offset %llu below the allocation mark %llu is free",
				t->name, (unsigned long long)off, (unsigned long long)hint);
	}
out:
	return r;
}

int
lmdb_verify(struct store_backend *b, char *why, size_t why_len)
{
	struct lmdb_store *s = lmdb_of(b);
	MDB_txn *txn = NULL;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct store_device d;
	struct store_tenant t;
	struct key key;
	size_t n_dev = 0, n_addr = 0;
	uint64_t seq = 0;
	int rc, r;

	snprintf(why, why_len, "consistent");
	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	rc = mdb_cursor_open(txn, s->dbi[DB_DEVICES], &cur);
	if (rc != 0) {
		r = mdb_errno(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (k.mv_size != 8 || v.mv_size != sizeof(d))
			FAIL("devices: record of bad size");
		memcpy(&d, v.mv_data, sizeof(d));
		if (be64_get(k.mv_data) != d.id)
			FAIL("device %llu stored under another id", (unsigned long long)d.id);
		if (d.state != STORE_DEVICE_ACTIVE && d.state != STORE_DEVICE_REVOKED)
			FAIL("device %llu: bad state %u", (unsigned long long)d.id, d.state);
		if (get_tenant(s, txn, d.tenant, &t) < 0)
			FAIL("device %llu: no tenant '%.31s'", (unsigned long long)d.id, d.tenant);
		key_bytes(&key, d.wg_pubkey, STORE_KEY_LEN);
		if (!index_points(s, txn, DB_DEV_PUBKEY, &key, d.id))
			FAIL("device %llu: public key index", (unsigned long long)d.id);
		key_bytes(&key, d.ek_hash, STORE_HASH_LEN);
		if (!index_points(s, txn, DB_DEV_EK, &key, d.id))
			FAIL("device %llu: EK index", (unsigned long long)d.id);
		key_tenant_id(&key, d.tenant, d.id);
		if (t_get(s, txn, DB_DEV_TENANT, &key, NULL, 0) < 0)
			FAIL("device %llu: tenant index", (unsigned long long)d.id);
		r = verify_address(s, txn, &t, &d, AF_INET, why, why_len);
		if (r == 0 && d.has_addr6)
			r = verify_address(s, txn, &t, &d, AF_INET6, why, why_len);
		if (r < 0)
			goto out;
		n_dev++;
		n_addr += 1 + (d.has_addr6 ? 1 : 0);
	}
	/*
	 * Each device was found in each index under its own key; equal counts make the indexes
	 * exactly the devices' entries (no stale entry, hence no address held twice).
	 */
	if (db_entries(s, txn, DB_DEV_PUBKEY) != n_dev || db_entries(s, txn, DB_DEV_EK) != n_dev ||
	    db_entries(s, txn, DB_DEV_TENANT) != n_dev || db_entries(s, txn, DB_DEV_ADDR) != n_addr)
		FAIL("index entry counts differ from %zu devices / %zu addresses", n_dev, n_addr);
	mdb_cursor_close(cur);
	cur = NULL;
	rc = mdb_cursor_open(txn, s->dbi[DB_TENANTS], &cur);
	if (rc != 0) {
		r = mdb_errno(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (v.mv_size != sizeof(t))
			FAIL("tenants: record of bad size");
		memcpy(&t, v.mv_data, sizeof(t));
		r = verify_hint(s, txn, &t, AF_INET, why, why_len);
		if (r == 0 && t.prefix6.family == AF_INET6)
			r = verify_hint(s, txn, &t, AF_INET6, why, why_len);
		if (r < 0)
			goto out;
	}
	t_get_u64(s, txn, DB_META, &meta_event_seq, &seq);
	mdb_cursor_close(cur);
	cur = NULL;
	rc = mdb_cursor_open(txn, s->dbi[DB_EVENTS], &cur);
	if (rc == 0 && mdb_cursor_get(cur, &k, &v, MDB_LAST) == 0 &&
	    (k.mv_size != 8 || be64_get(k.mv_data) > seq))
		FAIL("event log ends after the sequence counter %llu", (unsigned long long)seq);
	r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	rtxn_end(s, txn);
	return r;
}
