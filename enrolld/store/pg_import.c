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

/*
 * The bulk of a store (registrations, tokens, devices, EK revocations, health, events) goes
 * in with COPY ... FROM STDIN in text format: one round trip per 64 KiB instead of one per
 * row.
 */
struct copy {
	PGconn *c;
	int r;
	size_t len;
	char buf[1 << 16];
};

static void
copy_flush(struct copy *cp)
{
	if (cp->r == 0 && cp->len > 0 && PQputCopyData(cp->c, cp->buf, (int)cp->len) != 1)
		cp->r = pg_errno(cp->c, NULL);
	cp->len = 0;
}

static void
copy_raw(struct copy *cp, const char *p, size_t n)
{
	while (n > 0) {
		size_t k = sizeof(cp->buf) - cp->len < n ? sizeof(cp->buf) - cp->len : n;

		memcpy(cp->buf + cp->len, p, k);
		cp->len += k;
		p += k;
		n -= k;
		if (cp->len == sizeof(cp->buf))
			copy_flush(cp);
	}
}

/* A column: @sep ('\t' between columns, '\n' after the last) follows it. */
static void
copy_i64(struct copy *cp, int64_t v, char sep)
{
	char b[24];
	int n = snprintf(b, sizeof(b), "%lld%c", (long long)v, sep);

	copy_raw(cp, b, (size_t)n);
}

/* Text, with COPY's escapes for backslash, tab, newline and carriage return. */
static void
copy_text(struct copy *cp, const char *t, char sep)
{
	for (; *t != '\0'; t++) {
		const char *e = *t == '\\' ? "\\\\" : *t == '\t' ? "\\t" : *t == '\n' ? "\\n" :
			*t == '\r' ? "\\r" : NULL;

		copy_raw(cp, e != NULL ? e : t, e != NULL ? 2 : 1);
	}
	copy_raw(cp, &sep, 1);
}

/* bytea in hex ("\x...", its backslash escaped for COPY) */
static void
copy_bytes(struct copy *cp, const uint8_t *p, size_t n, char sep)
{
	static const char hex[] = "0123456789abcdef";

	copy_raw(cp, "\\\\x", 3);
	for (size_t i = 0; i < n; i++) {
		char b[2] = { hex[p[i] >> 4], hex[p[i] & 15] };

		copy_raw(cp, b, 2);
	}
	copy_raw(cp, &sep, 1);
}

static void
copy_null(struct copy *cp, char sep)
{
	copy_raw(cp, "\\N", 2);
	copy_raw(cp, &sep, 1);
}

typedef void (*copy_row_fn)(struct copy *cp, const void *rec);

/* COPY @n records of @size bytes from @recs with @sql ("COPY t (...) FROM STDIN"). */
static int
copy_rows(PGconn *c, const char *sql, const void *recs, size_t n, size_t size, copy_row_fn row)
{
	struct copy *cp;
	PGresult *res;
	int r;

	if (n == 0)
		return 0;
	cp = calloc(1, sizeof(*cp));
	if (cp == NULL)
		return -ENOMEM;
	cp->c = c;
	res = PQexec(c, sql);
	if (PQresultStatus(res) != PGRES_COPY_IN) {
		r = pg_errno(c, res);
		PQclear(res);
		free(cp);
		return r;
	}
	PQclear(res);
	for (size_t i = 0; i < n && cp->r == 0; i++)
		row(cp, (const uint8_t *)recs + i * size);
	copy_flush(cp);
	r = cp->r;
	/* a failed write ends the COPY with an error: nothing of it stays */
	if (PQputCopyEnd(c, r < 0 ? "enrolld: import failed" : NULL) != 1 && r == 0)
		r = pg_errno(c, NULL);
	while ((res = PQgetResult(c)) != NULL) {
		if (PQresultStatus(res) != PGRES_COMMAND_OK && r == 0)
			r = pg_errno(c, res);
		PQclear(res);
	}
	free(cp);
	return r;
}

static void
row_registration(struct copy *cp, const void *rec)
{
	const struct store_registration *reg = rec;

	copy_text(cp, reg->tenant, '\t');
	copy_bytes(cp, reg->ek_hash, STORE_HASH_LEN, '\t');
	copy_text(cp, reg->label, '\t');
	copy_i64(cp, reg->created, '\n');
}

static void
row_token(struct copy *cp, const void *rec)
{
	const struct store_token *t = rec;

	copy_bytes(cp, t->hash, STORE_HASH_LEN, '\t');
	copy_text(cp, t->tenant, '\t');
	copy_text(cp, t->label, '\t');
	copy_i64(cp, t->uses_left, '\t');
	copy_i64(cp, t->expires, '\t');
	copy_i64(cp, t->created, '\t');
	copy_text(cp, t->revoked ? "t" : "f", '\n');
}

static void
row_device(struct copy *cp, const void *rec)
{
	const struct store_device *d = rec;

	copy_i64(cp, (int64_t)d->id, '\t');
	copy_text(cp, d->tenant, '\t');
	copy_bytes(cp, d->addr4, 16, '\t');
	if (d->has_addr6)
		copy_bytes(cp, d->addr6, 16, '\t');
	else
		copy_null(cp, '\t');
	copy_i64(cp, d->state, '\t');
	copy_i64(cp, d->kind, '\t');
	copy_bytes(cp, d->wg_pubkey, STORE_KEY_LEN, '\t');
	copy_bytes(cp, d->ek_hash, STORE_HASH_LEN, '\t');
	copy_i64(cp, d->created, '\t');
	copy_i64(cp, d->updated, '\t');
	copy_i64(cp, d->revoked, '\n');
}

static void
row_revocation(struct copy *cp, const void *rec)
{
	const struct store_dump_revocation *rev = rec;

	copy_bytes(cp, rev->ek_hash, STORE_HASH_LEN, '\t');
	copy_i64(cp, (int64_t)rev->device, '\t');
	copy_i64(cp, rev->time, '\n');
}

static void
row_health(struct copy *cp, const void *rec)
{
	const struct store_health *h = rec;

	copy_i64(cp, (int64_t)h->device, '\t');
	copy_i64(cp, h->state, '\t');
	copy_i64(cp, h->since, '\n');
}

static void
row_event(struct copy *cp, const void *rec)
{
	const struct store_event *ev = rec;

	copy_i64(cp, (int64_t)ev->seq, '\t');
	copy_i64(cp, ev->time, '\t');
	copy_i64(cp, ev->kind, '\t');
	copy_i64(cp, (int64_t)ev->device, '\t');
	copy_text(cp, ev->tenant, '\n');
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
	if (r >= 0)
		r = copy_rows(c, "COPY registrations (tenant, ek_hash, label, created) FROM STDIN",
			d->regs, d->n_regs, sizeof(*d->regs), row_registration);
	if (r >= 0)
		r = copy_rows(c, "COPY tokens (hash, tenant, label, uses_left, expires, created, "
			"revoked) FROM STDIN", d->tokens, d->n_tokens, sizeof(*d->tokens), row_token);
	if (r >= 0) {
		r = copy_rows(c, "COPY devices (id, tenant, addr4, addr6, state, kind, wg_pubkey, "
			"ek_hash, created, updated, revoked) FROM STDIN", d->devices, d->n_devices,
			sizeof(*d->devices), row_device);
		if (r == -EEXIST)
			store_set_errmsg("devices: an id, address, key or EK held twice");
	}
	if (r >= 0)
		r = copy_rows(c, "COPY revocations (ek_hash, device, time) FROM STDIN",
			d->revocations, d->n_revocations, sizeof(*d->revocations), row_revocation);
	if (r >= 0)
		r = copy_rows(c, "COPY health (device, state, since) FROM STDIN", d->health,
			d->n_health, sizeof(*d->health), row_health);
	if (r >= 0)
		r = copy_rows(c, "COPY events (seq, time, kind, device, tenant) FROM STDIN",
			d->events, d->n_events, sizeof(*d->events), row_event);
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
