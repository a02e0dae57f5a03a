// SPDX-License-Identifier: MIT
/*
 * The PostgreSQL backend's ops for tenants, device CAs and CRLs, revoked X.509 serials,
 * registrations, tokens and attestation sessions (devices are in pg_dev.c). Each write is
 * one transaction with its checks inside; the semantics are those of enrolld/store.h.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <openssl/crypto.h>

#include "enrolld/store/pg.h"

/* pg_advisory_xact_lock key serialising tenant creation (the overlap check reads all) */
#define PG_TENANT_LOCK "7306920164209356645"

static bool
is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

/* ---- tenants --------------------------------------------------------------------------------- */

#define TENANT_COLS                                                                          \
	"name, text(prefix4), text(prefix6), self4, self6, ifname, endpoint, listen_port, " \
	"keepalive, require_tpm::int4::int8, pcrs, created"

static int
tenant_row(const PGresult *res, int i, void *out)
{
	struct store_tenant *t = out;
	char buf[64];
	uint8_t pcrs[STORE_PCR_MAX * 33];
	int n;

	memset(t, 0, sizeof(*t));
	if (rv_text(res, i, 0, t->name, sizeof(t->name)) < 0 ||
	    rv_text(res, i, 1, buf, sizeof(buf)) < 0 || addr_prefix_parse(&t->prefix4, buf) < 0)
		return -EUCLEAN;
	if (!rv_null(res, i, 2) &&
	    (rv_text(res, i, 2, buf, sizeof(buf)) < 0 || addr_prefix_parse(&t->prefix6, buf) < 0))
		return -EUCLEAN;
	if (rv_bytes(res, i, 3, t->self4, 16) != 16 || rv_bytes(res, i, 4, t->self6, 16) != 16 ||
	    rv_text(res, i, 5, t->ifname, sizeof(t->ifname)) < 0 ||
	    rv_text(res, i, 6, t->endpoint, sizeof(t->endpoint)) < 0)
		return -EUCLEAN;
	t->listen_port = (uint16_t)rv_i64(res, i, 7);
	t->keepalive = (uint16_t)rv_i64(res, i, 8);
	t->require_tpm = rv_i64(res, i, 9) != 0;
	n = rv_bytes(res, i, 10, pcrs, sizeof(pcrs));
	if (n < 0 || n % 33 != 0)
		return -EUCLEAN;
	t->n_pcrs = (uint8_t)(n / 33);
	for (int k = 0; k < t->n_pcrs; k++) {
		t->pcrs[k].index = pcrs[k * 33];
		memcpy(t->pcrs[k].sha256, pcrs + k * 33 + 1, 32);
	}
	t->created = rv_i64(res, i, 11);
	return 0;
}

int
pg_get_tenant(PGconn *c, const char *name, bool lock, struct store_tenant *ret)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	pa_text(&a, name);
	r = pg_q(c, lock ? "SELECT " TENANT_COLS " FROM tenants WHERE name = $1::text "
			   "FOR NO KEY UPDATE" :
			   "SELECT " TENANT_COLS " FROM tenants WHERE name = $1::text",
		&a, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) == 1 ? tenant_row(res, 0, ret) : -ENOENT;
	PQclear(res);
	return r;
}

static int
fn_tenant_create(struct store_backend *b, PGconn *c, void *arg)
{
	const struct store_tenant *t = arg;
	struct pg_args a = { 0 };
	char p4[ADDR_STR_LEN + 8], p6[ADDR_STR_LEN + 8];
	uint8_t pcrs[STORE_PCR_MAX * 33];
	int r;

	if (addr_prefix_format(&t->prefix4, p4, sizeof(p4)) < 0 ||
	    (t->prefix6.family && addr_prefix_format(&t->prefix6, p6, sizeof(p6)) < 0))
		return -EINVAL;
	r = pg_exec(c, "SELECT pg_advisory_xact_lock(" PG_TENANT_LOCK ")", NULL);
	if (r < 0)
		return r;
	pa_text(&a, t->name);
	pa_text(&a, t->ifname);
	pa_i64(&a, t->listen_port);
	pa_text(&a, p4);
	pa_text(&a, t->prefix6.family ? p6 : NULL);
	r = pg_exec(c, "SELECT 1 FROM tenants WHERE name = $1::text OR ifname = $2::text "
		"OR ($3::int8 <> 0 AND listen_port = $3::int8) OR prefix4 && $4::text::inet "
		"OR ($5::text IS NOT NULL AND prefix6 && $5::text::inet)", &a);
	if (r < 0)
		return r;
	if (r > 0)
		return -EEXIST;
	for (int k = 0; k < t->n_pcrs; k++) {
		pcrs[k * 33] = t->pcrs[k].index;
		memcpy(pcrs + k * 33 + 1, t->pcrs[k].sha256, 32);
	}
	memset(&a, 0, sizeof(a));
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
	pa_i64(&a, t->created ? t->created : pg_now(b));
	r = pg_exec(c, "INSERT INTO tenants (name, prefix4, prefix6, self4, self6, ifname, "
		"endpoint, listen_port, keepalive, require_tpm, pcrs, created) VALUES ($1::text, "
		"$2::text::inet, $3::text::inet, $4::bytea, $5::bytea, $6::text, $7::text, $8::int8, "
		"$9::int8, $10::int8 <> 0, $11::bytea, $12::int8)", &a);
	return r < 0 ? r : 0;
}

int
pg_tenant_create(struct store_backend *b, const struct store_tenant *t)
{
	return pg_txn(b, true, fn_tenant_create, (void *)t);
}

int
pg_tenant_get(struct store_backend *b, const char *name, struct store_tenant *ret)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	pa_text(&a, name);
	r = pg_read(b, "SELECT " TENANT_COLS " FROM tenants WHERE name = $1::text", &a, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) == 1 ? tenant_row(res, 0, ret) : -ENOENT;
	PQclear(res);
	return r;
}

int
pg_tenant_list(struct store_backend *b, struct store_tenant **ret, size_t *ret_n)
{
	return pg_list(b, "SELECT " TENANT_COLS " FROM tenants ORDER BY name", NULL, sizeof(**ret),
		tenant_row, (void **)ret, ret_n);
}

/* A one-statement write in its own transaction: @sql's affected rows, 0 -> @none. */
struct write1 {
	const char *sql;
	struct pg_args a;
	int none;
};

static int
fn_write1(struct store_backend *b, PGconn *c, void *arg)
{
	struct write1 *w = arg;
	int r = pg_exec(c, w->sql, &w->a);

	if (r == 0 && w->none)
		return w->none;
	return r < 0 ? r : 0;
}

int
pg_tenant_set_require_tpm(struct store_backend *b, const char *name, bool on)
{
	struct write1 w = { .sql = "UPDATE tenants SET require_tpm = $2::int8 <> 0 "
				   "WHERE name = $1::text", .none = -ENOENT };

	pa_text(&w.a, name);
	pa_i64(&w.a, on ? 1 : 0);
	return pg_txn(b, true, fn_write1, &w);
}

/* ---- tenant interface keys, sealed under the KEK (the tenant's name as AAD) ------------------ */

int
pg_tenant_key_get(struct store_backend *b, const char *tenant, uint8_t ret_priv[static 32])
{
	struct pg_args a = { 0 };
	uint8_t sealed[32 + PG_SEAL_OVERHEAD];
	PGresult *res = NULL;
	size_t len = 0;
	int n, r;

	pa_text(&a, tenant);
	r = pg_read(b, "SELECT sealed FROM tenant_keys WHERE tenant = $1::text", &a, &res);
	if (r < 0)
		return r;
	if (PQntuples(res) == 0) {
		r = -ENOENT;
		goto out;
	}
	n = rv_bytes(res, 0, 0, sealed, sizeof(sealed));
	if (n != (int)sizeof(sealed)) {
		r = n < 0 ? n : -EUCLEAN;
		goto out;
	}
	r = pg_unseal(b, (const uint8_t *)tenant, strlen(tenant), sealed, sizeof(sealed), ret_priv,
		32, &len);
	if (r == 0 && len != 32) {
		OPENSSL_cleanse(ret_priv, 32);
		r = -EUCLEAN;
	}
out:
	OPENSSL_cleanse(sealed, sizeof(sealed));
	PQclear(res);
	return r;
}

int
pg_tenant_key_put(struct store_backend *b, const char *tenant, const uint8_t priv[static 32])
{
	struct write1 w = { .sql = "INSERT INTO tenant_keys (tenant, sealed) "
				   "VALUES ($1::text, $2::bytea) ON CONFLICT (tenant) DO NOTHING",
		.none = -EEXIST };
	uint8_t sealed[32 + PG_SEAL_OVERHEAD];
	int r;

	r = pg_seal(b, (const uint8_t *)tenant, strlen(tenant), priv, 32, sealed);
	if (r < 0)
		goto out;
	pa_text(&w.a, tenant);
	pa_bytes(&w.a, sealed, sizeof(sealed));
	r = pg_txn(b, true, fn_write1, &w);
out:
	OPENSSL_cleanse(sealed, sizeof(sealed));
	return r;
}

/* ---- device CAs ------------------------------------------------------------------------------ */

int
pg_device_ca_add(struct store_backend *b, const struct store_device_ca *ca)
{
	/* the tenant's existence: the foreign key (-ENOENT); the CA once: the key (-EEXIST) */
	struct write1 w = { .sql = "INSERT INTO device_cas (tenant, fp, subject, label, created, "
				   "der) VALUES ($1::text, $2::bytea, $3::text, $4::text, "
				   "$5::int8, $6::bytea)" };

	pa_text(&w.a, ca->tenant);
	pa_bytes(&w.a, ca->fp, STORE_HASH_LEN);
	pa_text(&w.a, ca->subject);
	pa_text(&w.a, ca->label);
	pa_i64(&w.a, ca->created ? ca->created : pg_now(b));
	pa_bytes(&w.a, ca->der, ca->der_len);
	return pg_txn(b, true, fn_write1, &w);
}

int
pg_device_ca_remove(struct store_backend *b, const char *tenant,
	const uint8_t fp[static STORE_HASH_LEN])
{
	struct write1 w = { .sql = "DELETE FROM device_cas WHERE tenant = $1::text AND "
				   "fp = $2::bytea", .none = -ENOENT };

	pa_text(&w.a, tenant);
	pa_bytes(&w.a, fp, STORE_HASH_LEN);
	return pg_txn(b, true, fn_write1, &w);
}

static int
ca_row(const PGresult *res, int i, void *out)
{
	struct store_device_ca *ca = out;
	int n;

	if (rv_text(res, i, 0, ca->tenant, sizeof(ca->tenant)) < 0 ||
	    rv_bytes(res, i, 1, ca->fp, sizeof(ca->fp)) != STORE_HASH_LEN ||
	    rv_text(res, i, 2, ca->subject, sizeof(ca->subject)) < 0 ||
	    rv_text(res, i, 3, ca->label, sizeof(ca->label)) < 0)
		return -EUCLEAN;
	ca->created = rv_i64(res, i, 4);
	n = rv_bytes(res, i, 5, ca->der, sizeof(ca->der));
	if (n <= 0)
		return -EUCLEAN;
	ca->der_len = (uint16_t)n;
	return 0;
}

int
pg_device_ca_list(struct store_backend *b, const char *tenant, struct store_device_ca **ret,
	size_t *ret_n)
{
	struct pg_args a = { 0 };

	pa_text(&a, tenant);
	return pg_list(b, "SELECT tenant, fp, subject, label, created, der FROM device_cas "
		"WHERE $1::text IS NULL OR tenant = $1::text ORDER BY tenant, fp", &a, sizeof(**ret),
		ca_row, (void **)ret, ret_n);
}

/* ---- device CRLs ----------------------------------------------------------------------------- */

#define CRL_COLS \
	"tenant, issuer_hash, issuer, created, this_update, next_update, number, length(der)::int8"

static int
crl_row(const PGresult *res, int i, void *out)
{
	struct store_device_crl *crl = out;
	int n;

	memset(crl, 0, sizeof(*crl));
	if (rv_text(res, i, 0, crl->tenant, sizeof(crl->tenant)) < 0 ||
	    rv_bytes(res, i, 1, crl->issuer_hash, STORE_HASH_LEN) != STORE_HASH_LEN ||
	    rv_text(res, i, 2, crl->issuer, sizeof(crl->issuer)) < 0)
		return -EUCLEAN;
	crl->created = rv_i64(res, i, 3);
	crl->this_update = rv_i64(res, i, 4);
	crl->next_update = rv_i64(res, i, 5);
	n = rv_bytes(res, i, 6, crl->number, sizeof(crl->number));
	if (n < 0)
		return -EUCLEAN;
	crl->number_len = (uint8_t)n;
	crl->der_len = (uint32_t)rv_i64(res, i, 7);
	return 0;
}

/* Is @a newer than @b? crlNumber if both have one, else thisUpdate (as the LMDB backend). */
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

struct crl_put {
	const struct store_device_crl *crl;
	const uint8_t *der;
};

static int
fn_crl_put(struct store_backend *b, PGconn *c, void *arg)
{
	struct crl_put *p = arg;
	const struct store_device_crl *crl = p->crl;
	struct store_device_crl old;
	struct store_tenant t;
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r, replaced = 0;

	r = pg_get_tenant(c, crl->tenant, false, &t);
	if (r < 0)
		return r;
	pa_text(&a, crl->tenant);
	pa_bytes(&a, crl->issuer_hash, STORE_HASH_LEN);
	r = pg_q(c, "SELECT " CRL_COLS " FROM device_crls WHERE tenant = $1::text AND "
		"issuer_hash = $2::bytea FOR UPDATE", &a, &res);
	if (r < 0)
		return r;
	if (PQntuples(res) == 1) {
		r = crl_row(res, 0, &old);
		PQclear(res);
		if (r < 0)
			return r;
		if (!crl_newer(crl, &old))
			return -ESTALE;
		replaced = 1;
	} else {
		PQclear(res);
	}
	pa_text(&a, crl->issuer);
	pa_i64(&a, crl->created ? crl->created : pg_now(b));
	pa_i64(&a, crl->this_update);
	pa_i64(&a, crl->next_update);
	pa_bytes(&a, crl->number, crl->number_len);
	pa_bytes(&a, p->der, crl->der_len);
	r = pg_exec(c, "INSERT INTO device_crls (tenant, issuer_hash, issuer, created, this_update, "
		"next_update, number, der) VALUES ($1::text, $2::bytea, $3::text, $4::int8, $5::int8, "
		"$6::int8, $7::bytea, $8::bytea) ON CONFLICT (tenant, issuer_hash) DO UPDATE SET "
		"issuer = excluded.issuer, created = excluded.created, this_update = "
		"excluded.this_update, next_update = excluded.next_update, number = excluded.number, "
		"der = excluded.der", &a);
	return r < 0 ? r : replaced;
}

int
pg_device_crl_put(struct store_backend *b, const struct store_device_crl *crl, const uint8_t *der)
{
	struct crl_put p = { crl, der };

	return pg_txn(b, true, fn_crl_put, &p);
}

int
pg_device_crl_remove(struct store_backend *b, const char *tenant,
	const uint8_t issuer_hash[static STORE_HASH_LEN])
{
	struct write1 w = { .sql = "DELETE FROM device_crls WHERE tenant = $1::text AND "
				   "issuer_hash = $2::bytea", .none = -ENOENT };

	pa_text(&w.a, tenant);
	pa_bytes(&w.a, issuer_hash, STORE_HASH_LEN);
	return pg_txn(b, true, fn_write1, &w);
}

int
pg_device_crl_list(struct store_backend *b, const char *tenant, struct store_device_crl **ret,
	size_t *ret_n)
{
	struct pg_args a = { 0 };

	pa_text(&a, tenant);
	return pg_list(b, "SELECT " CRL_COLS " FROM device_crls WHERE $1::text IS NULL OR "
		"tenant = $1::text ORDER BY tenant, issuer_hash", &a, sizeof(**ret), crl_row,
		(void **)ret, ret_n);
}

int
pg_device_crl_each(struct store_backend *b, const char *tenant,
	int (*fn)(void *ctx, const struct store_device_crl *crl, const uint8_t *der), void *ctx)
{
	struct store_device_crl crl;
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	pa_text(&a, tenant);
	r = pg_read(b, "SELECT " CRL_COLS ", der FROM device_crls WHERE $1::text IS NULL OR "
		"tenant = $1::text ORDER BY tenant, issuer_hash", &a, &res);
	if (r < 0)
		return r;
	for (int i = 0; i < PQntuples(res); i++) {
		r = crl_row(res, i, &crl);
		if (r == 0 && (size_t)PQgetlength(res, i, 8) != crl.der_len)
			r = -EUCLEAN;
		if (r == 0)
			r = fn(ctx, &crl, (const uint8_t *)PQgetvalue(res, i, 8));
		if (r < 0)
			break;
	}
	PQclear(res);
	return r < 0 ? r : 0;
}

/* ---- revoked X.509 serials ------------------------------------------------------------------- */

int
pg_x509_revoke(struct store_backend *b, const struct store_x509_revoked *rv)
{
	struct write1 w = { .sql = "INSERT INTO x509_revoked (tenant, serial, label, created) "
				   "VALUES ($1::text, $2::bytea, $3::text, $4::int8)" };

	pa_text(&w.a, rv->tenant);
	pa_bytes(&w.a, rv->serial, rv->serial_len);
	pa_text(&w.a, rv->label);
	pa_i64(&w.a, rv->created ? rv->created : pg_now(b));
	return pg_txn(b, true, fn_write1, &w);
}

int
pg_x509_unrevoke(struct store_backend *b, const char *tenant, const uint8_t *serial,
	size_t serial_len)
{
	struct write1 w = { .sql = "DELETE FROM x509_revoked WHERE tenant = $1::text AND "
				   "serial = $2::bytea", .none = -ENOENT };

	pa_text(&w.a, tenant);
	pa_bytes(&w.a, serial, serial_len);
	return pg_txn(b, true, fn_write1, &w);
}

static int
x509_row(const PGresult *res, int i, void *out)
{
	struct store_x509_revoked *rv = out;
	int n;

	if (rv_text(res, i, 0, rv->tenant, sizeof(rv->tenant)) < 0 ||
	    (n = rv_bytes(res, i, 1, rv->serial, sizeof(rv->serial))) <= 0 ||
	    rv_text(res, i, 2, rv->label, sizeof(rv->label)) < 0)
		return -EUCLEAN;
	rv->serial_len = (uint8_t)n;
	rv->created = rv_i64(res, i, 3);
	return 0;
}

int
pg_x509_revoked_list(struct store_backend *b, const char *tenant,
	struct store_x509_revoked **ret, size_t *ret_n)
{
	struct pg_args a = { 0 };

	pa_text(&a, tenant);
	return pg_list(b, "SELECT tenant, serial, label, created FROM x509_revoked WHERE "
		"tenant = $1::text ORDER BY length(serial), serial", &a, sizeof(**ret), x509_row,
		(void **)ret, ret_n);
}

int
pg_x509_is_revoked(struct store_backend *b, const char *tenant, const uint8_t *serial,
	size_t serial_len)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	pa_text(&a, tenant);
	pa_bytes(&a, serial, serial_len);
	r = pg_read(b, "SELECT 1 FROM x509_revoked WHERE tenant = $1::text AND serial = $2::bytea",
		&a, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) > 0;
	PQclear(res);
	return r;
}

/* ---- registrations --------------------------------------------------------------------------- */

int
pg_registration_add(struct store_backend *b, const struct store_registration *reg)
{
	struct write1 w = { .sql = "INSERT INTO registrations (tenant, ek_hash, label, created) "
				   "VALUES ($1::text, $2::bytea, $3::text, $4::int8)" };

	pa_text(&w.a, reg->tenant);
	pa_bytes(&w.a, reg->ek_hash, STORE_HASH_LEN);
	pa_text(&w.a, reg->label);
	pa_i64(&w.a, reg->created ? reg->created : pg_now(b));
	return pg_txn(b, true, fn_write1, &w);
}

int
pg_registration_remove(struct store_backend *b, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN])
{
	struct write1 w = { .sql = "DELETE FROM registrations WHERE tenant = $1::text AND "
				   "ek_hash = $2::bytea", .none = -ENOENT };

	pa_text(&w.a, tenant);
	pa_bytes(&w.a, ek_hash, STORE_HASH_LEN);
	return pg_txn(b, true, fn_write1, &w);
}

static int
reg_row(const PGresult *res, int i, void *out)
{
	struct store_registration *reg = out;

	if (rv_text(res, i, 0, reg->tenant, sizeof(reg->tenant)) < 0 ||
	    rv_bytes(res, i, 1, reg->ek_hash, STORE_HASH_LEN) != STORE_HASH_LEN ||
	    rv_text(res, i, 2, reg->label, sizeof(reg->label)) < 0)
		return -EUCLEAN;
	reg->created = rv_i64(res, i, 3);
	return 0;
}

int
pg_registration_get(struct store_backend *b, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN], struct store_registration *ret)
{
	struct store_registration reg;
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	pa_text(&a, tenant);
	pa_bytes(&a, ek_hash, STORE_HASH_LEN);
	r = pg_read(b, "SELECT tenant, ek_hash, label, created FROM registrations WHERE "
		"tenant = $1::text AND ek_hash = $2::bytea", &a, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) == 1 ? reg_row(res, 0, &reg) : -ENOENT;
	PQclear(res);
	if (r == 0 && ret != NULL)
		*ret = reg;
	return r;
}

int
pg_registration_list(struct store_backend *b, const char *tenant,
	struct store_registration **ret, size_t *ret_n)
{
	struct pg_args a = { 0 };

	pa_text(&a, tenant);
	return pg_list(b, "SELECT tenant, ek_hash, label, created FROM registrations WHERE "
		"tenant = $1::text ORDER BY ek_hash", &a, sizeof(**ret), reg_row, (void **)ret,
		ret_n);
}

/* ---- tokens ---------------------------------------------------------------------------------- */

#define TOKEN_COLS "hash, tenant, label, uses_left, expires, created, revoked::int4::int8"

static int
token_row(const PGresult *res, int i, void *out)
{
	struct store_token *t = out;

	memset(t, 0, sizeof(*t));
	if (rv_bytes(res, i, 0, t->hash, STORE_HASH_LEN) != STORE_HASH_LEN ||
	    rv_text(res, i, 1, t->tenant, sizeof(t->tenant)) < 0 ||
	    rv_text(res, i, 2, t->label, sizeof(t->label)) < 0)
		return -EUCLEAN;
	t->uses_left = (uint32_t)rv_i64(res, i, 3);
	t->expires = rv_i64(res, i, 4);
	t->created = rv_i64(res, i, 5);
	t->revoked = rv_i64(res, i, 6) != 0;
	return 0;
}

int
pg_token_create(struct store_backend *b, const struct store_token *t)
{
	struct write1 w = { .sql = "INSERT INTO tokens (hash, tenant, label, uses_left, expires, "
				   "created, revoked) VALUES ($1::bytea, $2::text, $3::text, "
				   "$4::int8, $5::int8, $6::int8, $7::int8 <> 0)" };

	pa_bytes(&w.a, t->hash, STORE_HASH_LEN);
	pa_text(&w.a, t->tenant);
	pa_text(&w.a, t->label);
	pa_i64(&w.a, t->uses_left);
	pa_i64(&w.a, t->expires);
	pa_i64(&w.a, t->created ? t->created : pg_now(b));
	pa_i64(&w.a, t->revoked ? 1 : 0);
	return pg_txn(b, true, fn_write1, &w);
}

int
pg_token_list(struct store_backend *b, const char *tenant, struct store_token **ret,
	size_t *ret_n)
{
	struct pg_args a = { 0 };

	pa_text(&a, tenant);
	return pg_list(b, "SELECT " TOKEN_COLS " FROM tokens WHERE $1::text IS NULL OR "
		"tenant = $1::text ORDER BY hash", &a, sizeof(**ret), token_row, (void **)ret,
		ret_n);
}

int
pg_token_get(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN],
	struct store_token *ret)
{
	struct store_token t;
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	pa_bytes(&a, hash, STORE_HASH_LEN);
	r = pg_read(b, "SELECT " TOKEN_COLS " FROM tokens WHERE hash = $1::bytea", &a, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) == 1 ? token_row(res, 0, &t) : -ENOENT;
	PQclear(res);
	if (r == 0)
		*ret = t;
	return r;
}

static int
fn_token_revoke(struct store_backend *b, PGconn *c, void *arg)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	pa_bytes(&a, arg, STORE_HASH_LEN);
	r = pg_q(c, "SELECT revoked::int4::int8 FROM tokens WHERE hash = $1::bytea FOR UPDATE", &a,
		&res);
	if (r < 0)
		return r;
	r = PQntuples(res) != 1 ? -ENOENT : rv_i64(res, 0, 0) ? -EALREADY : 0;
	PQclear(res);
	if (r < 0)
		return r;
	r = pg_exec(c, "UPDATE tokens SET revoked = true WHERE hash = $1::bytea", &a);
	return r < 0 ? r : 0;
}

int
pg_token_revoke(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN])
{
	return pg_txn(b, true, fn_token_revoke, (void *)hash);
}

/* ---- sessions -------------------------------------------------------------------------------- */

struct session_op {
	struct store_session sess;
};

static int
fn_session_create(struct store_backend *b, PGconn *c, void *arg)
{
	struct session_op *o = arg;
	const struct store_session *s = &o->sess;
	struct pg_args a = { 0 };
	uint8_t sealed[STORE_SECRET_MAX + PG_SEAL_OVERHEAD];
	int64_t now = pg_now(b), last;
	int r;

	/*
	 * An open session is not worth a WAL flush: committed without waiting for it (visible
	 * at once to every node; durable with the next durable commit, such as the enrollment
	 * that uses it). A crash of the database may forget it: its device starts over with a
	 * new challenge. (The LMDB backend writes no session at all: lmdb_session.c.)
	 */
	r = pg_exec(c, "SET LOCAL synchronous_commit TO off", NULL);
	if (r < 0)
		return r;
	/*
	 * Expired sessions (used or not) go on the way, at most once a second per node, as in
	 * the LMDB backend (expiry is in whole seconds).
	 */
	last = __atomic_load_n(&b->sessions_purged, __ATOMIC_RELAXED);
	if (last != now &&
	    __atomic_compare_exchange_n(&b->sessions_purged, &last, now, false, __ATOMIC_RELAXED,
					__ATOMIC_RELAXED)) {
		pa_i64(&a, now);
		r = pg_exec(c, "DELETE FROM sessions WHERE expires <= $1::int8", &a);
		if (r < 0)
			return r;
	}
	r = pg_seal(b, s->id, sizeof(s->id), s->secret, s->secret_len, sealed);
	if (r < 0)
		return r;
	memset(&a, 0, sizeof(a));
	pa_bytes(&a, s->id, sizeof(s->id));
	pa_text(&a, s->tenant);
	pa_bytes(&a, s->ek_hash, STORE_HASH_LEN);
	pa_bytes(&a, s->ak_name, s->ak_name_len);
	pa_bytes(&a, s->wg_pubkey, STORE_KEY_LEN);
	pa_bytes(&a, s->nonce, s->nonce_len);
	pa_bytes(&a, sealed, s->secret_len + PG_SEAL_OVERHEAD);
	pa_i64(&a, s->has_token ? 1 : 0);
	pa_bytes(&a, s->token_hash, STORE_HASH_LEN);
	pa_i64(&a, s->expires);
	pa_bytes(&a, s->ak_public, s->ak_public_len);
	r = pg_exec(c, "INSERT INTO sessions (id, tenant, ek_hash, ak_name, wg_pubkey, nonce, "
		"secret, used, has_token, token_hash, expires, ak_public) VALUES ($1::bytea, "
		"$2::text, $3::bytea, $4::bytea, $5::bytea, $6::bytea, $7::bytea, false, "
		"$8::int8 <> 0, $9::bytea, $10::int8, $11::bytea)", &a);
	/* the sealed secret went into a libpq buffer that is freed; wipe our copy */
	OPENSSL_cleanse(sealed, sizeof(sealed));
	return r < 0 ? r : 0;
}

int
pg_session_create(struct store_backend *b, const struct store_session *sess,
	uint8_t ret_id[static STORE_SESSION_ID_LEN])
{
	struct session_op o;
	int r;

	o.sess = *sess;
	if (is_zero(o.sess.id, sizeof(o.sess.id)) &&
	    getrandom(o.sess.id, sizeof(o.sess.id), 0) != (ssize_t)sizeof(o.sess.id)) {
		r = -EIO;
		goto out;
	}
	r = pg_txn(b, true, fn_session_create, &o);
	if (r == 0) {
		memcpy(ret_id, o.sess.id, STORE_SESSION_ID_LEN);
		__atomic_add_fetch(&b->lazy_commits, 1, __ATOMIC_RELAXED);
	}
out:
	store_session_wipe(&o.sess);
	return r;
}

#define SESSION_COLS                                                                       \
	"id, tenant, ek_hash, ak_name, wg_pubkey, nonce, secret, used::int4::int8, " \
	"has_token::int4::int8, " \
	"token_hash, expires, ak_public"

/* A session row, the secret opened under the KEK (unless used). */
static int
session_row(const struct store_backend *b, const PGresult *res, int i, struct store_session *s)
{
	size_t len = 0;
	int n, r;

	memset(s, 0, sizeof(*s));
	if (rv_bytes(res, i, 0, s->id, sizeof(s->id)) != STORE_SESSION_ID_LEN ||
	    rv_text(res, i, 1, s->tenant, sizeof(s->tenant)) < 0 ||
	    rv_bytes(res, i, 2, s->ek_hash, STORE_HASH_LEN) != STORE_HASH_LEN ||
	    (n = rv_bytes(res, i, 3, s->ak_name, sizeof(s->ak_name))) < 0)
		return -EUCLEAN;
	s->ak_name_len = (uint8_t)n;
	if (rv_bytes(res, i, 4, s->wg_pubkey, STORE_KEY_LEN) != STORE_KEY_LEN ||
	    (n = rv_bytes(res, i, 5, s->nonce, sizeof(s->nonce))) < 0)
		return -EUCLEAN;
	s->nonce_len = (uint8_t)n;
	s->used = rv_i64(res, i, 7) != 0;
	s->has_token = rv_i64(res, i, 8) != 0;
	if (rv_bytes(res, i, 9, s->token_hash, STORE_HASH_LEN) != STORE_HASH_LEN)
		return -EUCLEAN;
	s->expires = rv_i64(res, i, 10);
	if ((n = rv_bytes(res, i, 11, s->ak_public, sizeof(s->ak_public))) < 0)
		return -EUCLEAN;
	s->ak_public_len = (uint16_t)n;
	if (s->used || rv_null(res, i, 6))
		return 0;
	r = pg_unseal(b, s->id, sizeof(s->id), (const uint8_t *)PQgetvalue(res, i, 6),
		(size_t)PQgetlength(res, i, 6), s->secret, sizeof(s->secret), &len);
	if (r < 0)
		return r;
	s->secret_len = (uint8_t)len;
	return 0;
}

int
pg_session_get(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN],
	struct store_session *ret)
{
	struct store_session s;
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	pa_bytes(&a, id, STORE_SESSION_ID_LEN);
	r = pg_read(b, "SELECT " SESSION_COLS " FROM sessions WHERE id = $1::bytea", &a, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) == 1 ? session_row(b, res, 0, &s) : -ENOENT;
	/* the result held the sealed secret only; PQclear frees it */
	PQclear(res);
	if (r < 0)
		goto out;
	if (s.used)
		r = -EALREADY;
	else if (s.expires <= pg_now(b))
		r = -ETIMEDOUT;
	else
		*ret = s;
out:
	store_session_wipe(&s);
	return r;
}

/* Mark a session used and drop its secret, in the current transaction. */
static int
session_use(PGconn *c, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	struct pg_args a = { 0 };
	int r;

	pa_bytes(&a, id, STORE_SESSION_ID_LEN);
	r = pg_exec(c, "UPDATE sessions SET used = true, secret = NULL WHERE id = $1::bytea", &a);
	return r < 0 ? r : 0;
}

/*
 * Read a session for update in the current transaction: -ENOENT, -EALREADY used,
 * -ETIMEDOUT expired; 0 with @ret (no secret: it is not opened here).
 */
int
pg_session_lock(struct store_backend *b, PGconn *c, const uint8_t id[static STORE_SESSION_ID_LEN],
	struct store_session *ret)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r, n;

	memset(ret, 0, sizeof(*ret));
	pa_bytes(&a, id, STORE_SESSION_ID_LEN);
	r = pg_q(c, "SELECT tenant, ek_hash, wg_pubkey, used::int4::int8, expires FROM sessions "
		"WHERE id = $1::bytea FOR UPDATE", &a, &res);
	if (r < 0)
		return r;
	n = PQntuples(res);
	if (n != 1) {
		r = -ENOENT;
	} else if (rv_text(res, 0, 0, ret->tenant, sizeof(ret->tenant)) < 0 ||
		   rv_bytes(res, 0, 1, ret->ek_hash, STORE_HASH_LEN) != STORE_HASH_LEN ||
		   rv_bytes(res, 0, 2, ret->wg_pubkey, STORE_KEY_LEN) != STORE_KEY_LEN) {
		r = -EUCLEAN;
	} else {
		ret->used = rv_i64(res, 0, 3) != 0;
		ret->expires = rv_i64(res, 0, 4);
		r = ret->used ? -EALREADY : ret->expires <= pg_now(b) ? -ETIMEDOUT : 0;
	}
	PQclear(res);
	if (r == 0)
		memcpy(ret->id, id, STORE_SESSION_ID_LEN);
	return r;
}

int
pg_session_mark_used(PGconn *c, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	return session_use(c, id);
}

static int
fn_session_use(struct store_backend *b, PGconn *c, void *arg)
{
	struct pg_args a = { 0 };
	PGresult *res = NULL;
	int r;

	pa_bytes(&a, arg, STORE_SESSION_ID_LEN);
	r = pg_q(c, "SELECT used::int4::int8 FROM sessions WHERE id = $1::bytea FOR UPDATE", &a, &res);
	if (r < 0)
		return r;
	r = PQntuples(res) != 1 ? -ENOENT : rv_i64(res, 0, 0) ? -EALREADY : 0;
	PQclear(res);
	return r < 0 ? r : session_use(c, arg);
}

int
pg_session_use(struct store_backend *b, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	return pg_txn(b, true, fn_session_use, (void *)id);
}

static int
fn_session_purge(struct store_backend *b, PGconn *c, void *arg)
{
	struct pg_args a = { 0 };

	pa_i64(&a, pg_now(b));
	return pg_exec(c, "DELETE FROM sessions WHERE expires <= $1::int8", &a);
}

int
pg_session_purge(struct store_backend *b)
{
	return pg_txn(b, true, fn_session_purge, NULL);
}
