// SPDX-License-Identifier: MIT
/*
 * The LMDB backend: tenants and what each holds for X.509 enrollment (device CAs, device CA
 * revocation lists, revoked certificate serials). lmdb.c has the layout and the writer.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/store/lmdb_internal.h"

/* ---- tenants ----------------------------------------------------------------------------- */

static int
apply_tenant_create(struct wtx *w, void *arg)
{
	const struct store_tenant *t = arg;
	struct store_tenant other;
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	struct key key;
	int rc, r = 0;

	key_bytes(&key, t->name, strlen(t->name));
	r = t_get(w->s, w->txn, DB_TENANTS, &key, &other, sizeof(other));
	if (r == 0)
		return -EEXIST;
	if (r != -ENOENT)
		return r;
	/* Tenants are few: a scan for a shared interface, port or prefix is cheap. */
	rc = mdb_cursor_open(w->txn, w->s->dbi[DB_TENANTS], &cur);
	if (rc != 0)
		return mdb_errno(rc);
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (v.mv_size != sizeof(other)) {
			r = -EUCLEAN;
			goto out;
		}
		memcpy(&other, v.mv_data, sizeof(other));
		if (strcmp(other.ifname, t->ifname) == 0 ||
		    (t->listen_port != 0 && other.listen_port == t->listen_port) ||
		    addr_prefix_overlap(&other.prefix4, &t->prefix4) ||
		    (t->prefix6.family && other.prefix6.family &&
			    addr_prefix_overlap(&other.prefix6, &t->prefix6))) {
			r = -EEXIST;
			goto out;
		}
	}
	if (rc != MDB_NOTFOUND) {
		r = mdb_errno(rc);
		goto out;
	}
	r = w_put(w, DB_TENANTS, &key, t, sizeof(*t), MDB_NOOVERWRITE);
out:
	mdb_cursor_close(cur);
	return r;
}

int
lmdb_tenant_create(struct store_backend *b, const struct store_tenant *t)
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_tenant_create, (void *)t);
}

int
get_tenant(struct lmdb_store *s, MDB_txn *txn, const char *name, struct store_tenant *ret)
{
	struct key key;

	/* The front checked the names of callers; store_verify() passes names read from disk. */
	if (!store_tenant_name_ok(name))
		return -ENOENT;
	key_bytes(&key, name, strlen(name));
	return t_get(s, txn, DB_TENANTS, &key, ret, sizeof(*ret));
}

int
lmdb_tenant_get(struct store_backend *b, const char *name, struct store_tenant *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_tenant t;
	MDB_txn *txn;
	int r;

	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = get_tenant(s, txn, name, &t);
	rtxn_end(s, txn);
	if (r == 0)
		*ret = t;
	return r;
}

int
lmdb_tenant_list(struct store_backend *b, struct store_tenant **ret, size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);

	return collect(s, DB_TENANTS, NULL, sizeof(**ret), NULL, NULL, (void **)ret, ret_n);
}

/* ---- tenant policy ------------------------------------------------------------------------ */

struct policy_op {
	const char *name;
	bool on;
};

static int
apply_require_tpm(struct wtx *w, void *arg)
{
	const struct policy_op *o = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, o->name, &t);
	if (r < 0)
		return r;
	t.require_tpm = o->on ? 1 : 0;
	key_bytes(&key, t.name, strlen(t.name));
	return w_put(w, DB_TENANTS, &key, &t, sizeof(t), 0);
}

int
lmdb_tenant_set_require_tpm(struct store_backend *b, const char *name, bool on)
{
	struct lmdb_store *s = lmdb_of(b);
	struct policy_op o = { name, on };

	return submit(s, apply_require_tpm, &o);
}

/* ---- device CAs ------------------------------------------------------------------------------ */

static int
apply_device_ca_add(struct wtx *w, void *arg)
{
	const struct store_device_ca *ca = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, ca->tenant, &t);
	if (r < 0)
		return r;
	key_tenant_hash(&key, ca->tenant, ca->fp);
	return w_put(w, DB_DEVICE_CAS, &key, ca, sizeof(*ca), MDB_NOOVERWRITE);
}

int
lmdb_device_ca_add(struct store_backend *b, const struct store_device_ca *ca)
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_device_ca_add, (void *)ca);
}

struct hash_key {
	const char *tenant;
	const uint8_t *hash;
};

static int
apply_device_ca_remove(struct wtx *w, void *arg)
{
	const struct hash_key *hk = arg;
	struct key key;

	key_tenant_hash(&key, hk->tenant, hk->hash);
	return w_del(w, DB_DEVICE_CAS, &key);
}

int
lmdb_device_ca_remove(struct store_backend *b, const char *tenant,
	const uint8_t fp[static STORE_HASH_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	struct hash_key hk = { tenant, fp };

	return submit(s, apply_device_ca_remove, &hk);
}

int
lmdb_device_ca_list(struct store_backend *b, const char *tenant, struct store_device_ca **ret,
	size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key prefix;

	if (tenant == NULL)
		return collect(s, DB_DEVICE_CAS, NULL, sizeof(**ret), NULL, NULL, (void **)ret,
			ret_n);
	key_tenant(&prefix, tenant);
	return collect(s, DB_DEVICE_CAS, &prefix, sizeof(**ret), NULL, NULL, (void **)ret, ret_n);
}

/* ---- device CA revocation lists ------------------------------------------------------------ */

/* Is @a newer than @b? crlNumber if both have one, else thisUpdate. */
static bool
crl_newer(const struct store_device_crl *a, const struct store_device_crl *b)
{
	if (a->number_len > 0 && b->number_len > 0) {
		if (a->number_len != b->number_len)
			return a->number_len > b->number_len;
		return memcmp(a->number, b->number, a->number_len) > 0;
	}
	return a->this_update > b->this_update;
}

static int
apply_device_crl_put(struct wtx *w, void *arg)
{
	const struct store_device_crl *crl = arg;
	struct store_device_crl old;
	struct store_tenant t;
	struct key key;
	MDB_val k, v;
	int rc, r, replaced = 0;

	r = get_tenant(w->s, w->txn, crl->tenant, &t);
	if (r < 0)
		return r;
	key_tenant_hash(&key, crl->tenant, crl->issuer_hash);
	k = kval(&key);
	rc = mdb_get(w->txn, w->s->dbi[DB_DEVICE_CRLS], &k, &v);
	if (rc == 0) {
		if (v.mv_size < sizeof(old))
			return -EUCLEAN;
		memcpy(&old, v.mv_data, sizeof(old));
		if (!crl_newer(crl, &old))
			return -ESTALE;
		replaced = 1;
	} else if (rc != MDB_NOTFOUND) {
		return mdb_errno(rc);
	}
	r = w_put(w, DB_DEVICE_CRLS, &key, crl, sizeof(*crl) + crl->der_len, 0);
	return r < 0 ? r : replaced;
}

int
lmdb_device_crl_put(struct store_backend *b, const struct store_device_crl *crl, const uint8_t *der)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_device_crl *rec;
	int r;

	/* the record and the DER, contiguous: the value as stored */
	rec = malloc(sizeof(*rec) + crl->der_len);
	if (rec == NULL)
		return -ENOMEM;
	memcpy(rec, crl, sizeof(*rec));
	memcpy((uint8_t *)(rec + 1), der, crl->der_len);
	r = submit(s, apply_device_crl_put, rec);
	free(rec);
	return r;
}

static int
apply_device_crl_remove(struct wtx *w, void *arg)
{
	const struct hash_key *hk = arg;
	struct key key;

	key_tenant_hash(&key, hk->tenant, hk->hash);
	return w_del(w, DB_DEVICE_CRLS, &key);
}

int
lmdb_device_crl_remove(struct store_backend *b, const char *tenant,
	const uint8_t issuer_hash[static STORE_HASH_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	struct hash_key hk = { tenant, issuer_hash };

	return submit(s, apply_device_crl_remove, &hk);
}

/* Visit the CRL records of @tenant (NULL: all) in one read transaction. */
int
lmdb_device_crl_each(struct store_backend *b, const char *tenant,
	int (*fn)(void *ctx, const struct store_device_crl *crl, const uint8_t *der), void *ctx)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_device_crl rec;
	MDB_cursor *cur = NULL;
	MDB_txn *txn = NULL;
	MDB_val k = { 0 }, v;
	struct key prefix;
	int rc, r;

	if (tenant != NULL) {
		key_tenant(&prefix, tenant);
		k = kval(&prefix);
	}
	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	rc = mdb_cursor_open(txn, s->dbi[DB_DEVICE_CRLS], &cur);
	if (rc != 0) {
		r = mdb_errno(rc);
		goto out;
	}
	r = 0;
	for (rc = mdb_cursor_get(cur, &k, &v, tenant ? MDB_SET_RANGE : MDB_FIRST); rc == 0;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		if (tenant != NULL && (k.mv_size < prefix.len ||
					      memcmp(k.mv_data, prefix.b, prefix.len) != 0))
			break;
		if (v.mv_size < sizeof(rec)) {
			r = -EUCLEAN;
			goto out;
		}
		memcpy(&rec, v.mv_data, sizeof(rec));
		if (v.mv_size != sizeof(rec) + rec.der_len) {
			r = -EUCLEAN;
			goto out;
		}
		r = fn(ctx, &rec, (const uint8_t *)v.mv_data + sizeof(rec));
		if (r < 0)
			goto out;
	}
	if (rc != 0 && rc != MDB_NOTFOUND)
		r = mdb_errno(rc);
	else
		r = 0;
out:
	if (cur != NULL)
		mdb_cursor_close(cur);
	rtxn_end(s, txn);
	return r;
}

struct crl_list {
	struct store_device_crl *arr;
	size_t n, cap;
};

static int
crl_list_add(void *ctx, const struct store_device_crl *crl, const uint8_t *der)
{
	struct crl_list *l = ctx;
	struct store_device_crl *tmp;

	if (l->n == l->cap) {
		l->cap = l->cap ? 2 * l->cap : 8;
		tmp = realloc(l->arr, l->cap * sizeof(*tmp));
		if (tmp == NULL)
			return -ENOMEM;
		l->arr = tmp;
	}
	l->arr[l->n++] = *crl;
	return 0;
}

int
lmdb_device_crl_list(struct store_backend *b, const char *tenant, struct store_device_crl **ret,
	size_t *ret_n)
{
	struct crl_list l = { 0 };
	int r;

	r = lmdb_device_crl_each(b, tenant, crl_list_add, &l);
	if (r < 0) {
		free(l.arr);
		return r;
	}
	*ret = l.arr;
	*ret_n = l.n;
	return 0;
}

/* ---- revoked certificate serials ------------------------------------------------------------ */

static int
apply_x509_revoke(struct wtx *w, void *arg)
{
	const struct store_x509_revoked *rv = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, rv->tenant, &t);
	if (r < 0)
		return r;
	key_tenant_serial(&key, rv->tenant, rv->serial, rv->serial_len);
	return w_put(w, DB_X509_REVOKED, &key, rv, sizeof(*rv), MDB_NOOVERWRITE);
}

int
lmdb_x509_revoke(struct store_backend *b, const struct store_x509_revoked *rv)
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_x509_revoke, (void *)rv);
}

struct serial_key {
	const char *tenant;
	const uint8_t *serial;
	size_t len;
};

static int
apply_x509_unrevoke(struct wtx *w, void *arg)
{
	const struct serial_key *sk = arg;
	struct key key;

	key_tenant_serial(&key, sk->tenant, sk->serial, sk->len);
	return w_del(w, DB_X509_REVOKED, &key);
}

int
lmdb_x509_unrevoke(struct store_backend *b, const char *tenant, const uint8_t *serial,
	size_t serial_len)
{
	struct lmdb_store *s = lmdb_of(b);
	struct serial_key sk = { tenant, serial, serial_len };

	return submit(s, apply_x509_unrevoke, &sk);
}

int
lmdb_x509_revoked_list(struct store_backend *b, const char *tenant, struct store_x509_revoked **ret,
	size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key prefix;

	key_tenant(&prefix, tenant);
	return collect(s, DB_X509_REVOKED, &prefix, sizeof(**ret), NULL, NULL, (void **)ret,
		ret_n);
}

int
x509_revoked_in(struct lmdb_store *s, MDB_txn *txn, const char *tenant, const uint8_t *serial,
	size_t serial_len)
{
	struct store_x509_revoked rv;
	struct key key;
	int r;

	key_tenant_serial(&key, tenant, serial, serial_len);
	r = t_get(s, txn, DB_X509_REVOKED, &key, &rv, sizeof(rv));
	if (r == -ENOENT)
		return 0;
	return r < 0 ? r : 1;
}

int
lmdb_x509_is_revoked(struct store_backend *b, const char *tenant, const uint8_t *serial,
	size_t serial_len)
{
	struct lmdb_store *s = lmdb_of(b);
	MDB_txn *txn;
	int r;

	r = rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = x509_revoked_in(s, txn, tenant, serial, serial_len);
	rtxn_end(s, txn);
	return r;
}
