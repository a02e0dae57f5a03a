// SPDX-License-Identifier: MIT
/*
 * The LMDB backend's side of a migration between backends (backend.h: export_raw, import;
 * enrolld/store/migrate.c drives them): the records the public reads do not show (the
 * counters, EK revocations, stored health), and writing a whole dump, with every index the
 * other files of the backend keep, into an empty environment in one transaction.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/store/lmdb_internal.h"

/* Every record of @db into a malloc()ed array, each built by @conv from key and value. */
static int
collect_kv(struct lmdb_store *s, MDB_txn *txn, int db, size_t size,
	int (*conv)(const MDB_val *k, const MDB_val *v, void *out), void **ret, size_t *ret_n)
{
	MDB_cursor *cur = NULL;
	MDB_val k, v;
	MDB_stat st;
	uint8_t *arr = NULL;
	size_t n = 0;
	int rc, r;

	rc = mdb_stat(txn, s->dbi[db], &st);
	if (rc != 0)
		return lm_errno(rc);
	arr = calloc(st.ms_entries ? st.ms_entries : 1, size);
	if (arr == NULL)
		return -ENOMEM;
	rc = mdb_cursor_open(txn, s->dbi[db], &cur);
	if (rc != 0) {
		r = lm_errno(rc);
		goto out;
	}
	for (rc = mdb_cursor_get(cur, &k, &v, MDB_FIRST); rc == 0 && n < st.ms_entries;
	     rc = mdb_cursor_get(cur, &k, &v, MDB_NEXT)) {
		r = conv(&k, &v, arr + n * size);
		if (r < 0)
			goto out;
		n++;
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
	free(arr);
	return r;
}

static int
conv_revocation(const MDB_val *k, const MDB_val *v, void *out)
{
	struct store_dump_revocation *d = out;
	struct revocation rev;

	if (k->mv_size != STORE_HASH_LEN || v->mv_size != sizeof(rev))
		return -EUCLEAN;
	memcpy(&rev, v->mv_data, sizeof(rev));
	memcpy(d->ek_hash, k->mv_data, STORE_HASH_LEN);
	d->device = rev.device;
	d->time = rev.time;
	return 0;
}

static int
conv_health(const MDB_val *k, const MDB_val *v, void *out)
{
	if (k->mv_size != 8 || v->mv_size != sizeof(struct store_health))
		return -EUCLEAN;
	memcpy(out, v->mv_data, sizeof(struct store_health));
	return 0;
}

int
lmdb_export_raw(struct store_backend *b, struct store_dump *d)
{
	struct lmdb_store *s = lmdb_of(b);
	struct store_dump_revocation *rev = NULL;
	struct store_health *health = NULL;
	size_t n_rev = 0, n_health = 0;
	uint64_t next = 0, seq = 0;
	MDB_txn *txn;
	int r;

	r = lm_rtxn_begin(s, &txn);
	if (r < 0)
		return r;
	r = lm_t_get_u64(s, txn, DB_META, &lm_meta_next_device, &next);
	if (r < 0 && r != -ENOENT)
		goto out;
	r = lm_t_get_u64(s, txn, DB_META, &lm_meta_event_seq, &seq);
	if (r < 0 && r != -ENOENT)
		goto out;
	r = collect_kv(s, txn, DB_REVOCATIONS, sizeof(*rev), conv_revocation, (void **)&rev,
		&n_rev);
	if (r < 0)
		goto out;
	r = collect_kv(s, txn, DB_HEALTH, sizeof(*health), conv_health, (void **)&health,
		&n_health);
	if (r < 0)
		goto out;
	/* enroll_new: no counter yet means the first device gets 1 */
	d->next_device = next ? next : 1;
	d->event_seq = seq;
	d->revocations = rev;
	d->n_revocations = n_rev;
	d->health = health;
	d->n_health = n_health;
	rev = NULL;
	health = NULL;
	r = 0;
out:
	lm_rtxn_end(s, txn);
	free(rev);
	free(health);
	return r;
}

/* ---- import ------------------------------------------------------------------------------- */

/* Anything but the format version in any database, or a counter past its start. */
static int
check_empty(struct wtx *w)
{
	uint64_t v = 0;
	MDB_stat st;
	int rc, r;

	for (int i = 0; i < DB_COUNT; i++) {
		if (i == DB_META)
			continue;
		rc = mdb_stat(w->txn, w->s->dbi[i], &st);
		if (rc != 0)
			return lm_errno(rc);
		if (st.ms_entries != 0) {
			store_set_errmsg("the destination is not empty (%zu records in one of its "
					 "databases)", (size_t)st.ms_entries);
			return -ENOTEMPTY;
		}
	}
	r = lm_t_get_u64(w->s, w->txn, DB_META, &lm_meta_next_device, &v);
	if (r == 0 && v > 1) {
		store_set_errmsg("the destination has handed out device ids already");
		return -ENOTEMPTY;
	}
	if (r < 0 && r != -ENOENT)
		return r;
	v = 0;
	r = lm_t_get_u64(w->s, w->txn, DB_META, &lm_meta_event_seq, &v);
	if (r == 0 && v > 0) {
		store_set_errmsg("the destination has handed out event numbers already");
		return -ENOTEMPTY;
	}
	return r == -ENOENT ? 0 : r;
}

/* A device and its indexes, as enrollment writes them (a clash is -EEXIST). */
static int
put_device(struct wtx *w, const struct store_device *d)
{
	int r = lm_device_put(w, d);

	if (r < 0)
		store_set_errmsg("device %llu: an id, address, key or EK held twice",
			(unsigned long long)d->id);
	return r;
}

static int
put_crl(struct wtx *w, const struct store_dump_crl *c)
{
	struct key key;
	uint8_t *buf;
	int r;

	buf = malloc(sizeof(c->rec) + c->rec.der_len);
	if (buf == NULL)
		return -ENOMEM;
	memcpy(buf, &c->rec, sizeof(c->rec));
	memcpy(buf + sizeof(c->rec), c->der, c->rec.der_len);
	key_tenant_hash(&key, c->rec.tenant, c->rec.issuer_hash);
	r = lm_w_put(w, DB_DEVICE_CRLS, &key, buf, sizeof(c->rec) + c->rec.der_len,
		MDB_NOOVERWRITE);
	free(buf);
	return r;
}

static int
apply_import(struct wtx *w, void *arg)
{
	const struct store_dump *d = arg;
	struct key key;
	size_t i;
	int r;

	r = check_empty(w);
	if (r < 0)
		return r;
	for (i = 0, r = 0; r == 0 && i < d->n_tenants; i++) {
		key_bytes(&key, d->tenants[i].name, strlen(d->tenants[i].name));
		r = lm_w_put(w, DB_TENANTS, &key, &d->tenants[i], sizeof(d->tenants[i]),
			MDB_NOOVERWRITE);
	}
	for (i = 0; r == 0 && i < d->n_cas; i++) {
		key_tenant_hash(&key, d->cas[i].tenant, d->cas[i].fp);
		r = lm_w_put(w, DB_DEVICE_CAS, &key, &d->cas[i], sizeof(d->cas[i]),
			MDB_NOOVERWRITE);
	}
	for (i = 0; r == 0 && i < d->n_crls; i++)
		r = put_crl(w, &d->crls[i]);
	for (i = 0; r == 0 && i < d->n_x509; i++) {
		key_tenant_serial(&key, d->x509[i].tenant, d->x509[i].serial,
			d->x509[i].serial_len);
		r = lm_w_put(w, DB_X509_REVOKED, &key, &d->x509[i], sizeof(d->x509[i]),
			MDB_NOOVERWRITE);
	}
	for (i = 0; r == 0 && i < d->n_regs; i++) {
		key_tenant_hash(&key, d->regs[i].tenant, d->regs[i].ek_hash);
		r = lm_w_put(w, DB_REGISTRATIONS, &key, &d->regs[i], sizeof(d->regs[i]),
			MDB_NOOVERWRITE);
	}
	for (i = 0; r == 0 && i < d->n_tokens; i++) {
		key_bytes(&key, d->tokens[i].hash, STORE_HASH_LEN);
		r = lm_w_put(w, DB_TOKENS, &key, &d->tokens[i], sizeof(d->tokens[i]),
			MDB_NOOVERWRITE);
	}
	for (i = 0; r == 0 && i < d->n_devices; i++)
		r = put_device(w, &d->devices[i]);
	for (i = 0; r == 0 && i < d->n_revocations; i++) {
		struct revocation rev = { .time = d->revocations[i].time,
			.device = d->revocations[i].device };

		key_bytes(&key, d->revocations[i].ek_hash, STORE_HASH_LEN);
		r = lm_w_put(w, DB_REVOCATIONS, &key, &rev, sizeof(rev), MDB_NOOVERWRITE);
	}
	for (i = 0; r == 0 && i < d->n_health; i++) {
		key_u64(&key, d->health[i].device);
		r = lm_w_put(w, DB_HEALTH, &key, &d->health[i], sizeof(d->health[i]),
			MDB_NOOVERWRITE);
	}
	for (i = 0; r == 0 && i < d->n_events; i++) {
		/* in sequence order: MDB_APPEND refuses anything else */
		key_u64(&key, d->events[i].seq);
		r = lm_w_put(w, DB_EVENTS, &key, &d->events[i], sizeof(d->events[i]), MDB_APPEND);
	}
	if (r == 0)
		r = lm_w_put_u64(w, DB_META, &lm_meta_next_device, d->next_device, 0);
	if (r == 0)
		r = lm_w_put_u64(w, DB_META, &lm_meta_event_seq, d->event_seq, 0);
	if (r < 0)
		return r;
	/* store_events_wait() learns the counter from the batch (the events are not new) */
	w->last_event = d->event_seq;
	return 0;
}

int
lmdb_import(struct store_backend *b, const struct store_dump *d)
{
	return lm_submit(lmdb_of(b), apply_import, (void *)d);
}
