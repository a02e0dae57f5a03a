// SPDX-License-Identifier: MIT
/* The LMDB backend: factory registrations (EK allowlist per tenant) and enrollment tokens. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/store/lmdb_internal.h"

/* ---- registrations ------------------------------------------------------------------------ */

static int
apply_registration_add(struct wtx *w, void *arg)
{
	const struct store_registration *reg = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, reg->tenant, &t);
	if (r < 0)
		return r;
	key_tenant_hash(&key, reg->tenant, reg->ek_hash);
	return w_put(w, DB_REGISTRATIONS, &key, reg, sizeof(*reg), MDB_NOOVERWRITE);
}

int
lmdb_registration_add(struct store_backend *b, const struct store_registration *reg)
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_registration_add, (void *)reg);
}

struct reg_key {
	const char *tenant;
	const uint8_t *ek_hash;
};

static int
apply_registration_remove(struct wtx *w, void *arg)
{
	const struct reg_key *rk = arg;
	struct key key;

	key_tenant_hash(&key, rk->tenant, rk->ek_hash);
	return w_del(w, DB_REGISTRATIONS, &key);
}

int
lmdb_registration_remove(struct store_backend *b, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN])
{
	struct lmdb_store *s = lmdb_of(b);
	struct reg_key rk = { tenant, ek_hash };

	return submit(s, apply_registration_remove, &rk);
}

int
lmdb_registration_get(struct store_backend *b, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN], struct store_registration *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key key;

	key_tenant_hash(&key, tenant, ek_hash);
	return r_get(s, DB_REGISTRATIONS, &key, ret, sizeof(*ret));
}

int
lmdb_registration_list(struct store_backend *b, const char *tenant, struct store_registration **ret,
	size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key prefix;

	key_tenant(&prefix, tenant);
	return collect(s, DB_REGISTRATIONS, &prefix, sizeof(**ret), NULL, NULL, (void **)ret,
		ret_n);
}

/* ---- tokens ---------------------------------------------------------------------------------- */

static int
apply_token_create(struct wtx *w, void *arg)
{
	const struct store_token *tok = arg;
	struct store_tenant t;
	struct key key;
	int r;

	r = get_tenant(w->s, w->txn, tok->tenant, &t);
	if (r < 0)
		return r;
	key_bytes(&key, tok->hash, sizeof(tok->hash));
	return w_put(w, DB_TOKENS, &key, tok, sizeof(*tok), MDB_NOOVERWRITE);
}

int
lmdb_token_create(struct store_backend *b, const struct store_token *tok)
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_token_create, (void *)tok);
}

static bool
token_of_tenant(const void *rec, const void *ctx)
{
	const struct store_token *t = rec;

	return strncmp(t->tenant, ctx, STORE_NAME_MAX) == 0;
}

int
lmdb_token_list(struct store_backend *b, const char *tenant, struct store_token **ret,
	size_t *ret_n)
{
	struct lmdb_store *s = lmdb_of(b);

	return collect(s, DB_TOKENS, NULL, sizeof(**ret), tenant ? token_of_tenant : NULL, tenant,
		(void **)ret, ret_n);
}

int
lmdb_token_get(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN],
	struct store_token *ret)
{
	struct lmdb_store *s = lmdb_of(b);
	struct key key;

	key_bytes(&key, hash, STORE_HASH_LEN);
	return r_get(s, DB_TOKENS, &key, ret, sizeof(*ret));
}

static int
apply_token_revoke(struct wtx *w, void *arg)
{
	struct store_token t;
	struct key key;
	int r;

	key_bytes(&key, arg, STORE_HASH_LEN);
	r = t_get(w->s, w->txn, DB_TOKENS, &key, &t, sizeof(t));
	if (r < 0)
		return r;
	if (t.revoked)
		return -EALREADY;
	t.revoked = 1;
	return w_put(w, DB_TOKENS, &key, &t, sizeof(t), 0);
}

int
lmdb_token_revoke(struct store_backend *b, const uint8_t hash[static STORE_HASH_LEN])
{
	struct lmdb_store *s = lmdb_of(b);

	return submit(s, apply_token_revoke, (void *)hash);
}
