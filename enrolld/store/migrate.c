// SPDX-License-Identifier: MIT
/*
 * A whole store copied into another (enrolld/store/migrate.h): read everything through the
 * public reads of store.h plus the backend's export_raw (counters, EK revocations, stored
 * health), write it with the destination backend's import (one transaction, ids kept, only
 * into an empty store), then read the destination back the same way and compare every
 * field of every record with the source's. Both backends run the same code on both sides,
 * so LMDB -> PostgreSQL, PostgreSQL -> LMDB and LMDB -> LMDB are the same path.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/store/migrate.h"

void
store_dump_free(struct store_dump *d)
{
	if (d == NULL)
		return;
	for (size_t i = 0; i < d->n_crls; i++)
		free(d->crls[i].der);
	free(d->tenants);
	free(d->cas);
	free(d->crls);
	free(d->x509);
	free(d->regs);
	free(d->tokens);
	free(d->devices);
	free(d->revocations);
	free(d->health);
	free(d->events);
	memset(d, 0, sizeof(*d));
}

/* ---- reading a store ----------------------------------------------------------------------- */

/* Append the @n elements of @add (of @size bytes) to *@arr of *@n_arr; frees @add. */
static int
append(void **arr, size_t *n_arr, void *add, size_t n, size_t size)
{
	uint8_t *tmp;

	if (n == 0) {
		free(add);
		return 0;
	}
	tmp = realloc(*arr, (*n_arr + n) * size);
	if (tmp == NULL) {
		free(add);
		return -ENOMEM;
	}
	memcpy(tmp + *n_arr * size, add, n * size);
	*arr = tmp;
	*n_arr += n;
	free(add);
	return 0;
}

struct crl_collect {
	struct store_dump *d;
	size_t cap;
};

static int
crl_collect(void *ctx, const struct store_device_crl *crl, const uint8_t *der)
{
	struct crl_collect *cc = ctx;
	struct store_dump *d = cc->d;
	struct store_dump_crl *c;

	if (d->n_crls == cc->cap) {
		size_t cap = cc->cap ? cc->cap * 2 : 8;

		c = realloc(d->crls, cap * sizeof(*c));
		if (c == NULL)
			return -ENOMEM;
		d->crls = c;
		cc->cap = cap;
	}
	c = &d->crls[d->n_crls];
	memset(c, 0, sizeof(*c));
	c->rec = *crl;
	c->der = malloc(crl->der_len ? crl->der_len : 1);
	if (c->der == NULL)
		return -ENOMEM;
	memcpy(c->der, der, crl->der_len);
	d->n_crls++;
	return 0;
}

static int
cmp_str_hash(const char *ta, const uint8_t *ha, const char *tb, const uint8_t *hb)
{
	int c = strcmp(ta, tb);

	return c != 0 ? c : memcmp(ha, hb, STORE_HASH_LEN);
}

static int
by_tenant_name(const void *a, const void *b)
{
	return strcmp(((const struct store_tenant *)a)->name, ((const struct store_tenant *)b)->name);
}

static int
by_ca(const void *a, const void *b)
{
	const struct store_device_ca *x = a, *y = b;

	return cmp_str_hash(x->tenant, x->fp, y->tenant, y->fp);
}

static int
by_crl(const void *a, const void *b)
{
	const struct store_dump_crl *x = a, *y = b;

	return cmp_str_hash(x->rec.tenant, x->rec.issuer_hash, y->rec.tenant, y->rec.issuer_hash);
}

static int
by_x509(const void *a, const void *b)
{
	const struct store_x509_revoked *x = a, *y = b;
	int c = strcmp(x->tenant, y->tenant);

	if (c != 0)
		return c;
	if (x->serial_len != y->serial_len)
		return x->serial_len < y->serial_len ? -1 : 1;
	return memcmp(x->serial, y->serial, x->serial_len);
}

static int
by_reg(const void *a, const void *b)
{
	const struct store_registration *x = a, *y = b;

	return cmp_str_hash(x->tenant, x->ek_hash, y->tenant, y->ek_hash);
}

static int
by_token(const void *a, const void *b)
{
	return memcmp(((const struct store_token *)a)->hash, ((const struct store_token *)b)->hash,
		STORE_HASH_LEN);
}

static int
cmp_u64(uint64_t a, uint64_t b)
{
	return a < b ? -1 : a > b;
}

static int
by_device(const void *a, const void *b)
{
	return cmp_u64(((const struct store_device *)a)->id, ((const struct store_device *)b)->id);
}

static int
by_revocation(const void *a, const void *b)
{
	return memcmp(((const struct store_dump_revocation *)a)->ek_hash,
		((const struct store_dump_revocation *)b)->ek_hash, STORE_HASH_LEN);
}

static int
by_health(const void *a, const void *b)
{
	return cmp_u64(((const struct store_health *)a)->device,
		((const struct store_health *)b)->device);
}

static int
by_event(const void *a, const void *b)
{
	return cmp_u64(((const struct store_event *)a)->seq, ((const struct store_event *)b)->seq);
}

#define SORT(arr, n, fn)                                        \
	do {                                                    \
		if ((n) > 1)                                    \
			qsort((arr), (n), sizeof(*(arr)), (fn)); \
	} while (0)

static int
read_events(struct store *s, struct store_dump *d)
{
	uint64_t after = 0;
	int r;

	for (;;) {
		struct store_event *ev = NULL;
		size_t n = 0;

		r = store_events_read(s, after, 1000, &ev, &n);
		if (r < 0)
			return r;
		if (n > 0)
			after = ev[n - 1].seq;
		r = append((void **)&d->events, &d->n_events, ev, n, sizeof(*ev));
		if (r < 0 || n == 0)
			return r;
	}
}

int
store_dump_read(struct store *s, struct store_dump *ret)
{
	struct store_dump d = { 0 };
	struct crl_collect cc = { .d = &d };
	int r;

	r = store_export_raw(s, &d);
	if (r < 0)
		goto err;
	r = store_tenant_list(s, &d.tenants, &d.n_tenants);
	if (r < 0)
		goto err;
	r = store_device_ca_list(s, NULL, &d.cas, &d.n_cas);
	if (r < 0)
		goto err;
	r = store_device_crl_each(s, NULL, crl_collect, &cc);
	if (r < 0)
		goto err;
	for (size_t i = 0; i < d.n_tenants; i++) {
		struct store_x509_revoked *rv = NULL;
		struct store_registration *reg = NULL;
		size_t n = 0;

		r = store_x509_revoked_list(s, d.tenants[i].name, &rv, &n);
		if (r < 0)
			goto err;
		r = append((void **)&d.x509, &d.n_x509, rv, n, sizeof(*rv));
		if (r < 0)
			goto err;
		r = store_registration_list(s, d.tenants[i].name, &reg, &n);
		if (r < 0)
			goto err;
		r = append((void **)&d.regs, &d.n_regs, reg, n, sizeof(*reg));
		if (r < 0)
			goto err;
	}
	r = store_token_list(s, NULL, &d.tokens, &d.n_tokens);
	if (r < 0)
		goto err;
	r = store_device_list_all(s, NULL, 0, &d.devices, &d.n_devices);
	if (r < 0)
		goto err;
	r = read_events(s, &d);
	if (r < 0)
		goto err;
	SORT(d.tenants, d.n_tenants, by_tenant_name);
	SORT(d.cas, d.n_cas, by_ca);
	SORT(d.crls, d.n_crls, by_crl);
	SORT(d.x509, d.n_x509, by_x509);
	SORT(d.regs, d.n_regs, by_reg);
	SORT(d.tokens, d.n_tokens, by_token);
	SORT(d.devices, d.n_devices, by_device);
	SORT(d.revocations, d.n_revocations, by_revocation);
	SORT(d.health, d.n_health, by_health);
	SORT(d.events, d.n_events, by_event);
	*ret = d;
	return 0;
err:
	store_dump_free(&d);
	return r;
}

int
store_is_empty(struct store *s)
{
	struct store_dump d = { 0 };
	struct store_tenant *t = NULL;
	size_t n_t = 0;
	int r;

	r = store_export_raw(s, &d);
	if (r < 0)
		return r;
	r = store_tenant_list(s, &t, &n_t);
	free(t);
	if (r >= 0)
		r = n_t == 0 && d.n_revocations == 0 && d.event_seq == 0 && d.next_device <= 1;
	store_dump_free(&d);
	return r;
}

/* ---- comparing -------------------------------------------------------------------------------- */

static int __attribute__((format(printf, 3, 4)))
differ(char *why, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(why, len, fmt, ap);
	va_end(ap);
	return -EUCLEAN;
}

static void
hex8(char out[17], const uint8_t *p)
{
	for (int i = 0; i < 8; i++)
		snprintf(out + 2 * i, 3, "%02x", p[i]);
}

/* In the functions below: @a the source's record, @b the copy's, @what names the record. */
#define F_INT(fld)                                                                            \
	do {                                                                                  \
		if (a->fld != b->fld)                                                         \
			return differ(why, len, "%s: %s differs (%lld in the source, %lld in " \
				"the copy)", what, #fld, (long long)a->fld, (long long)b->fld);  \
	} while (0)
#define F_MEM(fld, n)                                                                   \
	do {                                                                            \
		if (memcmp(a->fld, b->fld, (n)) != 0)                                   \
			return differ(why, len, "%s: %s differs", what, #fld);          \
	} while (0)
#define F_STR(fld)                                                                          \
	do {                                                                                \
		if (strcmp(a->fld, b->fld) != 0)                                            \
			return differ(why, len, "%s: %s differs ('%s' in the source, '%s' in " \
				"the copy)", what, #fld, a->fld, b->fld);                     \
	} while (0)

static int
cmp_prefix(const char *what, const char *name, const struct addr_prefix *pa,
	const struct addr_prefix *pb, char *why, size_t len)
{
	if (pa->family != pb->family || pa->plen != pb->plen ||
	    memcmp(pa->addr, pb->addr, addr_len(pa->family)) != 0)
		return differ(why, len, "%s: %s differs", what, name);
	return 0;
}

static int
cmp_tenant(const struct store_tenant *a, const struct store_tenant *b, char *why, size_t len)
{
	char what[64];
	int r;

	snprintf(what, sizeof(what), "tenant '%s'", a->name);
	F_STR(name);
	r = cmp_prefix(what, "prefix4", &a->prefix4, &b->prefix4, why, len);
	if (r == 0 && a->prefix6.family != 0)
		r = cmp_prefix(what, "prefix6", &a->prefix6, &b->prefix6, why, len);
	if (r < 0)
		return r;
	F_INT(prefix6.family);
	F_MEM(self4, 16);
	F_MEM(self6, 16);
	F_STR(ifname);
	F_STR(endpoint);
	F_INT(listen_port);
	F_INT(keepalive);
	F_INT(require_tpm);
	F_INT(n_pcrs);
	for (unsigned int i = 0; i < a->n_pcrs; i++) {
		F_INT(pcrs[i].index);
		F_MEM(pcrs[i].sha256, 32);
	}
	F_INT(created);
	return 0;
}

static int
cmp_ca(const struct store_device_ca *a, const struct store_device_ca *b, char *why, size_t len)
{
	char what[96], h[17];

	hex8(h, a->fp);
	snprintf(what, sizeof(what), "device CA %s... of tenant '%s'", h, a->tenant);
	F_STR(tenant);
	F_MEM(fp, STORE_HASH_LEN);
	F_STR(subject);
	F_STR(label);
	F_INT(created);
	F_INT(der_len);
	F_MEM(der, a->der_len);
	return 0;
}

static int
cmp_crl(const struct store_dump_crl *ca, const struct store_dump_crl *cb, char *why, size_t len)
{
	const struct store_device_crl *a = &ca->rec, *b = &cb->rec;
	char what[96], h[17];

	hex8(h, a->issuer_hash);
	snprintf(what, sizeof(what), "CRL of issuer %s... of tenant '%s'", h, a->tenant);
	F_STR(tenant);
	F_MEM(issuer_hash, STORE_HASH_LEN);
	F_STR(issuer);
	F_INT(created);
	F_INT(this_update);
	F_INT(next_update);
	F_INT(number_len);
	F_MEM(number, a->number_len);
	F_INT(der_len);
	if (memcmp(ca->der, cb->der, a->der_len) != 0)
		return differ(why, len, "%s: der differs", what);
	return 0;
}

static int
cmp_x509(const struct store_x509_revoked *a, const struct store_x509_revoked *b, char *why,
	size_t len)
{
	char what[96];

	snprintf(what, sizeof(what), "revoked serial of tenant '%s'", a->tenant);
	F_STR(tenant);
	F_INT(serial_len);
	F_MEM(serial, a->serial_len);
	F_STR(label);
	F_INT(created);
	return 0;
}

static int
cmp_reg(const struct store_registration *a, const struct store_registration *b, char *why,
	size_t len)
{
	char what[96], h[17];

	hex8(h, a->ek_hash);
	snprintf(what, sizeof(what), "registration %s... of tenant '%s'", h, a->tenant);
	F_STR(tenant);
	F_MEM(ek_hash, STORE_HASH_LEN);
	F_STR(label);
	F_INT(created);
	return 0;
}

static int
cmp_token(const struct store_token *a, const struct store_token *b, char *why, size_t len)
{
	char what[96], h[17];

	hex8(h, a->hash);
	snprintf(what, sizeof(what), "token %s... of tenant '%s'", h, a->tenant);
	F_MEM(hash, STORE_HASH_LEN);
	F_STR(tenant);
	F_STR(label);
	F_INT(uses_left);
	F_INT(expires);
	F_INT(created);
	F_INT(revoked);
	return 0;
}

static int
cmp_device(const struct store_device *a, const struct store_device *b, char *why, size_t len)
{
	char what[48];

	snprintf(what, sizeof(what), "device %" PRIu64, a->id);
	F_INT(id);
	F_STR(tenant);
	F_MEM(addr4, 16);
	F_INT(has_addr6);
	F_MEM(addr6, 16);
	F_INT(state);
	F_INT(kind);
	F_MEM(wg_pubkey, STORE_KEY_LEN);
	F_MEM(ek_hash, STORE_HASH_LEN);
	F_INT(created);
	F_INT(updated);
	F_INT(revoked);
	return 0;
}

static int
cmp_revocation(const struct store_dump_revocation *a, const struct store_dump_revocation *b,
	char *why, size_t len)
{
	char what[64], h[17];

	hex8(h, a->ek_hash);
	snprintf(what, sizeof(what), "EK revocation %s...", h);
	F_MEM(ek_hash, STORE_HASH_LEN);
	F_INT(device);
	F_INT(time);
	return 0;
}

static int
cmp_health(const struct store_health *a, const struct store_health *b, char *why, size_t len)
{
	char what[48];

	snprintf(what, sizeof(what), "health of device %" PRIu64, a->device);
	F_INT(device);
	F_INT(state);
	F_INT(since);
	return 0;
}

static int
cmp_event(const struct store_event *a, const struct store_event *b, char *why, size_t len)
{
	char what[48];

	snprintf(what, sizeof(what), "event %" PRIu64, a->seq);
	F_INT(seq);
	F_INT(time);
	F_INT(kind);
	F_INT(device);
	F_STR(tenant);
	return 0;
}

/* Counts first, then each record in canonical order. */
#define CMP_KIND(name, arr, n, fn)                                                           \
	do {                                                                                 \
		if (src->n != dst->n)                                                        \
			return differ(why, why_len, "%s: %zu in the source, %zu in the copy", \
				name, src->n, dst->n);                                      \
		for (size_t i = 0; i < src->n; i++) {                                        \
			r = fn(&src->arr[i], &dst->arr[i], why, why_len);                    \
			if (r < 0)                                                           \
				return r;                                                    \
		}                                                                            \
	} while (0)

int
store_dump_compare(const struct store_dump *src, const struct store_dump *dst, char *why,
	size_t why_len)
{
	int r;

	if (src->next_device != dst->next_device)
		return differ(why, why_len, "next device id: %" PRIu64 " in the source, %" PRIu64
			" in the copy", src->next_device, dst->next_device);
	if (src->event_seq != dst->event_seq)
		return differ(why, why_len, "event counter: %" PRIu64 " in the source, %" PRIu64
			" in the copy", src->event_seq, dst->event_seq);
	CMP_KIND("tenants", tenants, n_tenants, cmp_tenant);
	CMP_KIND("device CAs", cas, n_cas, cmp_ca);
	CMP_KIND("CRLs", crls, n_crls, cmp_crl);
	CMP_KIND("revoked serials", x509, n_x509, cmp_x509);
	CMP_KIND("registrations", regs, n_regs, cmp_reg);
	CMP_KIND("tokens", tokens, n_tokens, cmp_token);
	CMP_KIND("devices", devices, n_devices, cmp_device);
	CMP_KIND("EK revocations", revocations, n_revocations, cmp_revocation);
	CMP_KIND("health records", health, n_health, cmp_health);
	CMP_KIND("events", events, n_events, cmp_event);
	return 0;
}

/* ---- the copy ----------------------------------------------------------------------------------- */

int
store_migrate(struct store *src, struct store *dst, struct store_dump *ret_dump, char *why,
	size_t why_len)
{
	struct store_dump a = { 0 }, b = { 0 };
	int r;

	snprintf(why, why_len, "%s", "");
	r = store_is_empty(dst);
	if (r < 0) {
		snprintf(why, why_len, "cannot read the destination: %s", store_errmsg());
		return r;
	}
	if (r == 0) {
		snprintf(why, why_len, "the destination is not empty");
		return -ENOTEMPTY;
	}
	r = store_dump_read(src, &a);
	if (r < 0) {
		snprintf(why, why_len, "cannot read the source: %s", store_errmsg());
		goto out;
	}
	r = store_import(dst, &a);
	if (r < 0) {
		snprintf(why, why_len, "cannot write the destination: %s", store_errmsg());
		goto out;
	}
	r = store_verify(dst, why, why_len);
	if (r < 0)
		goto out;
	r = store_dump_read(dst, &b);
	if (r < 0) {
		snprintf(why, why_len, "cannot read the destination back: %s", store_errmsg());
		goto out;
	}
	r = store_dump_compare(&a, &b, why, why_len);
out:
	store_dump_free(&b);
	if (r == 0 && ret_dump != NULL)
		*ret_dump = a;
	else
		store_dump_free(&a);
	return r;
}
