// SPDX-License-Identifier: MIT
/*
 * The PostgreSQL backend's side of a migration between backends (backend.h: export_raw,
 * import; enrolld/store/migrate.c drives them): the counters, EK revocations and stored
 * health the public reads do not show, read in one snapshot; and a whole dump written as
 * it is (device ids, event numbers) into an empty database in one transaction, the device
 * id sequence and the event counter set so that new ones continue after the copied ones.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "enrolld/store/pg.h"

/* ---- export ---------------------------------------------------------------------------------- */

static int
fn_export_raw(struct store_backend *b, PGconn *c, void *arg)
{
	struct store_dump *d = arg;
	struct store_dump_revocation *rev = NULL;
	struct store_health *health = NULL;
	PGresult *res = NULL;
	int r, n, n_rev;

	/* one snapshot for every statement below */
	r = pg_exec(c, "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY", NULL);
	if (r < 0)
		return r;
	/* nodes of a cluster still holding tenants are still writing */
	r = pg_exec(c, "SELECT 1 FROM tenant_leases WHERE expires > now()", NULL);
	if (r < 0)
		return r;
	if (r > 0) {
		store_set_errmsg("postgresql: %d tenant(s) still held by running nodes: stop every "
				 "enrolld node first", r);
		return -EBUSY;
	}
	r = pg_q(c, "SELECT CASE WHEN is_called THEN last_value + 1 ELSE last_value END, "
		"(SELECT event_seq FROM meta) FROM device_ids", NULL, &res);
	if (r < 0)
		return r;
	d->next_device = (uint64_t)rv_i64(res, 0, 0);
	d->event_seq = (uint64_t)rv_i64(res, 0, 1);
	PQclear(res);

	r = pg_q(c, "SELECT ek_hash, device, time FROM revocations ORDER BY ek_hash", NULL, &res);
	if (r < 0)
		return r;
	n = PQntuples(res);
	rev = calloc(n ? (size_t)n : 1, sizeof(*rev));
	if (rev == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		if (rv_bytes(res, i, 0, rev[i].ek_hash, STORE_HASH_LEN) != STORE_HASH_LEN) {
			r = -EUCLEAN;
			goto out;
		}
		rev[i].device = (uint64_t)rv_i64(res, i, 1);
		rev[i].time = rv_i64(res, i, 2);
	}
	n_rev = n;
	PQclear(res);
	res = NULL;

	r = pg_q(c, "SELECT device, state, since FROM health ORDER BY device", NULL, &res);
	if (r < 0)
		goto out;
	n = PQntuples(res);
	health = calloc(n ? (size_t)n : 1, sizeof(*health));
	if (health == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (int i = 0; i < n; i++) {
		health[i].device = (uint64_t)rv_i64(res, i, 0);
		health[i].state = (uint8_t)rv_i64(res, i, 1);
		health[i].since = rv_i64(res, i, 2);
	}
	/* a retried transaction runs this again: replace, never leak */
	free(d->revocations);
	free(d->health);
	d->revocations = rev;
	d->n_revocations = (size_t)n_rev;
	d->health = health;
	d->n_health = (size_t)n;
	rev = NULL;
	health = NULL;
	r = 0;
out:
	PQclear(res);
	free(rev);
	free(health);
	return r;
}

int
pg_export_raw(struct store_backend *b, struct store_dump *d)
{
	return pg_txn(b, false, fn_export_raw, d);
}

/* ---- import ---------------------------------------------------------------------------------- */

static int
check_empty(PGconn *c)
{
	PGresult *res = NULL;
	int64_t rows, seq, called;
	int r;

	/* nothing may slip in between this check and the commit */
	r = pg_exec(c, "LOCK TABLE tenants, devices, revocations, events, sessions, meta "
		"IN EXCLUSIVE MODE", NULL);
	if (r < 0)
		return r;
	r = pg_q(c, "SELECT (SELECT count(*) FROM tenants) + (SELECT count(*) FROM devices) + "
		"(SELECT count(*) FROM revocations) + (SELECT count(*) FROM events) + "
		"(SELECT count(*) FROM sessions), (SELECT event_seq FROM meta), "
		"(SELECT is_called::int4::int8 FROM device_ids)", NULL, &res);
	if (r < 0)
		return r;
	rows = rv_i64(res, 0, 0);
	seq = rv_i64(res, 0, 1);
	called = rv_i64(res, 0, 2);
	PQclear(res);
	if (rows != 0 || seq != 0 || called != 0) {
		store_set_errmsg("the destination database is not empty (%lld records, event "
				 "counter %lld, device ids %s)", (long long)rows, (long long)seq,
			called ? "handed out" : "unused");
		return -ENOTEMPTY;
	}
	return 0;
}

static int
put_tenant(PGconn *c, const struct store_tenant *t)
{
	struct pg_args a = { 0 };
	char p4[ADDR_STR_LEN + 8], p6[ADDR_STR_LEN + 8];
	uint8_t pcrs[STORE_PCR_MAX * 33];

	if (addr_prefix_format(&t->prefix4, p4, sizeof(p4)) < 0 ||
	    (t->prefix6.family && addr_prefix_format(&t->prefix6, p6, sizeof(p6)) < 0))
		return -EINVAL;
	for (int k = 0; k < t->n_pcrs; k++) {
		pcrs[k * 33] = t->pcrs[k].index;
		memcpy(pcrs + k * 33 + 1, t->pcrs[k].sha256, 32);
	}
	pa_text(&a, t->name);
	pa_text(&a, p4);
	pa_text(&a, t->prefix6.family ? p6 : NULL);
	pa_bytes(&a, t->self4, 16);
	pa_bytes(&a, t->self6, 16);
	pa_text(&a, t->ifname);
	pa_text(&a, t->endpoint);
	pa_i64(&a, t->listen_port);
	pa_i64(&a, t->keepalive);
	pa_i64(&a, t->require_tpm ? 1 : 0);
	pa_bytes(&a, pcrs, (size_t)t->n_pcrs * 33);
	pa_i64(&a, t->created);
	return pg_exec(c, "INSERT INTO tenants (name, prefix4, prefix6, self4, self6, ifname, "
		"endpoint, listen_port, keepalive, require_tpm, pcrs, created) VALUES ($1::text, "
		"$2::text::inet, $3::text::inet, $4::bytea, $5::bytea, $6::text, $7::text, $8::int8, "
		"$9::int8, $10::int8 <> 0, $11::bytea, $12::int8)", &a);
}

static int
put_ca(PGconn *c, const struct store_device_ca *ca)
{
	struct pg_args a = { 0 };

	pa_text(&a, ca->tenant);
	pa_bytes(&a, ca->fp, STORE_HASH_LEN);
	pa_text(&a, ca->subject);
	pa_text(&a, ca->label);
	pa_i64(&a, ca->created);
	pa_bytes(&a, ca->der, ca->der_len);
	return pg_exec(c, "INSERT INTO device_cas (tenant, fp, subject, label, created, der) "
		"VALUES ($1::text, $2::bytea, $3::text, $4::text, $5::int8, $6::bytea)", &a);
}

static int
put_crl(PGconn *c, const struct store_dump_crl *crl)
{
	struct pg_args a = { 0 };

	pa_text(&a, crl->rec.tenant);
	pa_bytes(&a, crl->rec.issuer_hash, STORE_HASH_LEN);
	pa_text(&a, crl->rec.issuer);
	pa_i64(&a, crl->rec.created);
	pa_i64(&a, crl->rec.this_update);
	pa_i64(&a, crl->rec.next_update);
	pa_bytes(&a, crl->rec.number, crl->rec.number_len);
	pa_bytes(&a, crl->der, crl->rec.der_len);
	return pg_exec(c, "INSERT INTO device_crls (tenant, issuer_hash, issuer, created, "
		"this_update, next_update, number, der) VALUES ($1::text, $2::bytea, $3::text, "
		"$4::int8, $5::int8, $6::int8, $7::bytea, $8::bytea)", &a);
}

static int
put_x509(PGconn *c, const struct store_x509_revoked *rv)
{
	struct pg_args a = { 0 };

	pa_text(&a, rv->tenant);
	pa_bytes(&a, rv->serial, rv->serial_len);
	pa_text(&a, rv->label);
	pa_i64(&a, rv->created);
	return pg_exec(c, "INSERT INTO x509_revoked (tenant, serial, label, created) VALUES "
		"($1::text, $2::bytea, $3::text, $4::int8)", &a);
}

static int
put_registration(PGconn *c, const struct store_registration *reg)
{
	struct pg_args a = { 0 };

	pa_text(&a, reg->tenant);
	pa_bytes(&a, reg->ek_hash, STORE_HASH_LEN);
	pa_text(&a, reg->label);
	pa_i64(&a, reg->created);
	return pg_exec(c, "INSERT INTO registrations (tenant, ek_hash, label, created) VALUES "
		"($1::text, $2::bytea, $3::text, $4::int8)", &a);
}

static int
put_token(PGconn *c, const struct store_token *t)
{
	struct pg_args a = { 0 };

	pa_bytes(&a, t->hash, STORE_HASH_LEN);
	pa_text(&a, t->tenant);
	pa_text(&a, t->label);
	pa_i64(&a, t->uses_left);
	pa_i64(&a, t->expires);
	pa_i64(&a, t->created);
	pa_i64(&a, t->revoked ? 1 : 0);
	return pg_exec(c, "INSERT INTO tokens (hash, tenant, label, uses_left, expires, created, "
		"revoked) VALUES ($1::bytea, $2::text, $3::text, $4::int8, $5::int8, $6::int8, "
		"$7::int8 <> 0)", &a);
}

static int
put_device(PGconn *c, const struct store_device *d)
{
	struct pg_args a = { 0 };
	int r;

	pa_i64(&a, (int64_t)d->id);
	pa_text(&a, d->tenant);
	pa_bytes(&a, d->addr4, 16);
	if (d->has_addr6)
		pa_bytes(&a, d->addr6, 16);
	else
		pa_null(&a);
	pa_i64(&a, d->state);
	pa_i64(&a, d->kind);
	pa_bytes(&a, d->wg_pubkey, STORE_KEY_LEN);
	pa_bytes(&a, d->ek_hash, STORE_HASH_LEN);
	pa_i64(&a, d->created);
	pa_i64(&a, d->updated);
	pa_i64(&a, d->revoked);
	r = pg_exec(c, "INSERT INTO devices (id, tenant, addr4, addr6, state, kind, wg_pubkey, "
		"ek_hash, created, updated, revoked) VALUES ($1::int8, $2::text, $3::bytea, "
		"$4::bytea, $5::int8, $6::int8, $7::bytea, $8::bytea, $9::int8, $10::int8, "
		"$11::int8)", &a);
	if (r == -EEXIST)
		store_set_errmsg("device %llu: an id, address, key or EK held twice",
			(unsigned long long)d->id);
	return r;
}

static int
put_revocation(PGconn *c, const struct store_dump_revocation *rev)
{
	struct pg_args a = { 0 };

	pa_bytes(&a, rev->ek_hash, STORE_HASH_LEN);
	pa_i64(&a, (int64_t)rev->device);
	pa_i64(&a, rev->time);
	return pg_exec(c, "INSERT INTO revocations (ek_hash, device, time) VALUES ($1::bytea, "
		"$2::int8, $3::int8)", &a);
}

static int
put_health(PGconn *c, const struct store_health *h)
{
	struct pg_args a = { 0 };

	pa_i64(&a, (int64_t)h->device);
	pa_i64(&a, h->state);
	pa_i64(&a, h->since);
	return pg_exec(c, "INSERT INTO health (device, state, since) VALUES ($1::int8, $2::int8, "
		"$3::int8)", &a);
}

static int
put_event(PGconn *c, const struct store_event *ev)
{
	struct pg_args a = { 0 };

	pa_i64(&a, (int64_t)ev->seq);
	pa_i64(&a, ev->time);
	pa_i64(&a, ev->kind);
	pa_i64(&a, (int64_t)ev->device);
	pa_text(&a, ev->tenant);
	return pg_exec(c, "INSERT INTO events (seq, time, kind, device, tenant) VALUES ($1::int8, "
		"$2::int8, $3::int8, $4::int8, $5::text)", &a);
}

static int
fn_import(struct store_backend *b, PGconn *c, void *arg)
{
	const struct store_dump *d = arg;
	struct pg_args a = { 0 };
	size_t i;
	int r;

	r = check_empty(c);
	for (i = 0; r >= 0 && i < d->n_tenants; i++)
		r = put_tenant(c, &d->tenants[i]);
	for (i = 0; r >= 0 && i < d->n_cas; i++)
		r = put_ca(c, &d->cas[i]);
	for (i = 0; r >= 0 && i < d->n_crls; i++)
		r = put_crl(c, &d->crls[i]);
	for (i = 0; r >= 0 && i < d->n_x509; i++)
		r = put_x509(c, &d->x509[i]);
	for (i = 0; r >= 0 && i < d->n_regs; i++)
		r = put_registration(c, &d->regs[i]);
	for (i = 0; r >= 0 && i < d->n_tokens; i++)
		r = put_token(c, &d->tokens[i]);
	for (i = 0; r >= 0 && i < d->n_devices; i++)
		r = put_device(c, &d->devices[i]);
	for (i = 0; r >= 0 && i < d->n_revocations; i++)
		r = put_revocation(c, &d->revocations[i]);
	for (i = 0; r >= 0 && i < d->n_health; i++)
		r = put_health(c, &d->health[i]);
	for (i = 0; r >= 0 && i < d->n_events; i++)
		r = put_event(c, &d->events[i]);
	if (r < 0)
		return r;
	/* the next nextval() is next_device itself; the counter is the last seq handed out */
	pa_i64(&a, (int64_t)(d->next_device ? d->next_device : 1));
	r = pg_exec(c, "SELECT setval('device_ids', $1::int8, false)", &a);
	if (r < 0)
		return r;
	memset(&a, 0, sizeof(a));
	pa_i64(&a, (int64_t)d->event_seq);
	r = pg_exec(c, "UPDATE meta SET event_seq = $1::int8", &a);
	return r < 0 ? r : 0;
}

int
pg_import(struct store_backend *b, const struct store_dump *d)
{
	int r;

	r = pg_txn(b, true, fn_import, (void *)d);
	if (r < 0)
		return r;
	/* store_events_wait() on this store: the copied events are not news */
	pthread_mutex_lock(&b->ev_lock);
	if (d->event_seq > b->last_event)
		b->last_event = d->event_seq;
	pthread_mutex_unlock(&b->ev_lock);
	return 0;
}
