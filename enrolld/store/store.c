// SPDX-License-Identifier: MIT
/*
 * The store's front: what every backend shares. Each public function of enrolld/store.h
 * checks here what can be judged without reading state (names, string termination,
 * lengths, enum values, prefixes and self addresses), builds the record as it will be
 * stored (zero padding, a zero `created` replaced by now, a zero session id by a random
 * one, a zero self4/self6 by the first usable address), then calls the op of the backend
 * chosen at store_open() (enrolld/store/backend.h has the contract). The ops do every check
 * that needs state, in the transaction of their write.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>

#include "enrolld/store.h"
#include "enrolld/store/backend.h"

struct store {
	const struct store_ops *ops;
	struct store_backend *b;
	int64_t (*clock)(void *ctx);
	void *clock_ctx;
};

/* ---- error text -------------------------------------------------------------------------- */

static __thread char errmsg[160];

const char *
store_errmsg(void)
{
	return errmsg;
}

void
store_set_errmsg(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errmsg, sizeof(errmsg), fmt, ap);
	va_end(ap);
}

/* ---- open / close ------------------------------------------------------------------------- */

static int64_t
store_now(const struct store *s)
{
	if (s->clock != NULL)
		return s->clock(s->clock_ctx);
	return (int64_t)time(NULL);
}

/*
 * The PostgreSQL backend is linked in when the build defines ENROLLD_HAVE_PG (it then
 * defines store_pg_ops); without it, that backend is -EPROTONOSUPPORT.
 */
int
store_open(struct store **ret, const char *path, const struct store_options *opts)
{
	struct store_options o = { 0 };
	struct store *s;
	int r;

	if (opts != NULL)
		o = *opts;
	if (path == NULL)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (s == NULL)
		return -ENOMEM;
	switch (o.backend) {
	case STORE_BACKEND_LMDB:
		s->ops = &store_lmdb_ops;
		break;
	case STORE_BACKEND_POSTGRESQL:
#ifdef ENROLLD_HAVE_PG
		if (o.kek == NULL) {
			store_set_errmsg("the PostgreSQL backend needs a key-encryption key");
			r = -EINVAL;
			goto err;
		}
		s->ops = &store_pg_ops;
		break;
#else
		store_set_errmsg("this build has no PostgreSQL backend");
		r = -EPROTONOSUPPORT;
		goto err;
#endif
	default:
		store_set_errmsg("unknown store backend %d", o.backend);
		r = -EINVAL;
		goto err;
	}
	s->clock = o.clock;
	s->clock_ctx = o.clock_ctx;
	r = s->ops->open(&s->b, path, &o);
	if (r < 0)
		goto err;
	*ret = s;
	return 0;
err:
	free(s);
	return r;
}

void
store_free(struct store *s)
{
	if (s == NULL)
		return;
	s->ops->free(s->b);
	free(s);
}

int
store_backup(struct store *s, const char *dir)
{
	if (dir == NULL)
		return -EINVAL;
	return s->ops->backup(s->b, dir);
}

int
store_verify(struct store *s, char *why, size_t why_len)
{
	return s->ops->verify(s->b, why, why_len);
}

void
store_get_stats(struct store *s, struct store_stats *ret)
{
	s->ops->get_stats(s->b, ret);
}

/* ---- validation ----------------------------------------------------------------------------- */

static bool
str_ok(const char *str, size_t max)
{
	return strnlen(str, max) < max;
}

bool
store_tenant_name_ok(const char *name)
{
	size_t n = strnlen(name, STORE_NAME_MAX);

	if (n == 0 || n >= STORE_NAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '-' && c != '_')))
			return false;
	}
	return true;
}

bool
store_ifname_ok(const char *name)
{
	size_t n = strnlen(name, STORE_IFNAME_MAX);

	if (n == 0 || n >= STORE_IFNAME_MAX)
		return false;
	for (size_t i = 0; i < n; i++)
		if (name[i] == '/' || name[i] == ':' || name[i] <= ' ' || name[i] > '~')
			return false;
	return true;
}

static bool
is_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	uint8_t acc = 0;

	for (size_t i = 0; i < n; i++)
		acc |= b[i];
	return acc == 0;
}

static bool
serial_len_ok(size_t n)
{
	return n > 0 && n <= STORE_SERIAL_MAX;
}

/*
 * A prefix must have room for the control plane's address and at least one device. A zero
 * @self becomes the first usable address.
 */
static int
check_prefix(const struct addr_prefix *p, int family, uint8_t self[static 16])
{
	uint64_t first, last, off;

	if (p->family != family || addr_usable_range(p, &first, &last) < 0 || last == first)
		return -EINVAL;
	if (is_zero(self, 16)) {
		addr_at(p, first, self);
		return 0;
	}
	if (!addr_is_usable(p, self) || addr_offset(p, self, &off) < 0)
		return -EINVAL;
	return 0;
}

/* ---- tenants ----------------------------------------------------------------------------- */

int
store_tenant_create(struct store *s, const struct store_tenant *t)
{
	struct store_tenant rec;
	int r;

	memset(&rec, 0, sizeof(rec));
	if (!store_tenant_name_ok(t->name) || !store_ifname_ok(t->ifname) ||
	    !str_ok(t->endpoint, sizeof(t->endpoint)) || t->n_pcrs > STORE_PCR_MAX)
		return -EINVAL;
	memcpy(rec.name, t->name, strlen(t->name));
	memcpy(rec.ifname, t->ifname, strlen(t->ifname));
	memcpy(rec.endpoint, t->endpoint, strlen(t->endpoint));
	rec.prefix4 = t->prefix4;
	memcpy(rec.self4, t->self4, 16);
	r = check_prefix(&rec.prefix4, AF_INET, rec.self4);
	if (r < 0)
		return r;
	if (t->prefix6.family != 0) {
		rec.prefix6 = t->prefix6;
		memcpy(rec.self6, t->self6, 16);
		r = check_prefix(&rec.prefix6, AF_INET6, rec.self6);
		if (r < 0)
			return r;
	}
	for (unsigned int i = 0; i < t->n_pcrs; i++) {
		if (t->pcrs[i].index >= STORE_PCR_MAX ||
		    (i > 0 && t->pcrs[i].index <= t->pcrs[i - 1].index))
			return -EINVAL;
		rec.pcrs[i] = t->pcrs[i];
	}
	rec.n_pcrs = t->n_pcrs;
	rec.listen_port = t->listen_port;
	rec.keepalive = t->keepalive;
	rec.require_tpm = t->require_tpm ? 1 : 0;
	rec.created = t->created ? t->created : store_now(s);
	return s->ops->tenant_create(s->b, &rec);
}

int
store_tenant_get(struct store *s, const char *name, struct store_tenant *ret)
{
	if (!store_tenant_name_ok(name))
		return -ENOENT;
	return s->ops->tenant_get(s->b, name, ret);
}

int
store_tenant_list(struct store *s, struct store_tenant **ret, size_t *ret_n)
{
	return s->ops->tenant_list(s->b, ret, ret_n);
}

int
store_tenant_set_require_tpm(struct store *s, const char *name, bool on)
{
	if (!store_tenant_name_ok(name))
		return -ENOENT;
	return s->ops->tenant_set_require_tpm(s->b, name, on);
}

int
store_tenant_key_get(struct store *s, const char *tenant, uint8_t ret_priv[static 32])
{
	if (s->ops->tenant_key_get == NULL)
		return -EOPNOTSUPP;
	if (!store_tenant_name_ok(tenant))
		return -ENOENT;
	return s->ops->tenant_key_get(s->b, tenant, ret_priv);
}

int
store_tenant_key_put(struct store *s, const char *tenant, const uint8_t priv[static 32])
{
	if (s->ops->tenant_key_put == NULL)
		return -EOPNOTSUPP;
	if (!store_tenant_name_ok(tenant))
		return -ENOENT;
	return s->ops->tenant_key_put(s->b, tenant, priv);
}

/* ---- device CAs ------------------------------------------------------------------------------ */

int
store_device_ca_add(struct store *s, const struct store_device_ca *ca)
{
	struct store_device_ca *rec;
	int r;

	if (!store_tenant_name_ok(ca->tenant) || !str_ok(ca->label, sizeof(ca->label)) ||
	    !str_ok(ca->subject, sizeof(ca->subject)) || ca->der_len == 0 ||
	    ca->der_len > STORE_CA_DER_MAX || is_zero(ca->fp, sizeof(ca->fp)))
		return -EINVAL;
	rec = calloc(1, sizeof(*rec));
	if (rec == NULL)
		return -ENOMEM;
	memcpy(rec->tenant, ca->tenant, strlen(ca->tenant));
	memcpy(rec->label, ca->label, strlen(ca->label));
	memcpy(rec->subject, ca->subject, strlen(ca->subject));
	memcpy(rec->fp, ca->fp, sizeof(rec->fp));
	rec->der_len = ca->der_len;
	memcpy(rec->der, ca->der, ca->der_len);
	rec->created = ca->created ? ca->created : store_now(s);
	r = s->ops->device_ca_add(s->b, rec);
	free(rec);
	return r;
}

int
store_device_ca_remove(struct store *s, const char *tenant, const uint8_t fp[static STORE_HASH_LEN])
{
	if (!store_tenant_name_ok(tenant))
		return -ENOENT;
	return s->ops->device_ca_remove(s->b, tenant, fp);
}

int
store_device_ca_list(struct store *s, const char *tenant, struct store_device_ca **ret,
	size_t *ret_n)
{
	if (tenant != NULL && !store_tenant_name_ok(tenant))
		return -ENOENT;
	return s->ops->device_ca_list(s->b, tenant, ret, ret_n);
}

/* ---- device CA revocation lists ------------------------------------------------------------ */

int
store_device_crl_put(struct store *s, const struct store_device_crl *crl, const uint8_t *der)
{
	struct store_device_crl rec;

	if (!store_tenant_name_ok(crl->tenant) || !str_ok(crl->issuer, sizeof(crl->issuer)) ||
	    crl->der_len == 0 || crl->der_len > STORE_CRL_DER_MAX ||
	    crl->number_len > STORE_CRL_NUMBER_MAX || is_zero(crl->issuer_hash, STORE_HASH_LEN))
		return -EINVAL;
	memset(&rec, 0, sizeof(rec));
	memcpy(rec.tenant, crl->tenant, strlen(crl->tenant));
	memcpy(rec.issuer, crl->issuer, strlen(crl->issuer));
	memcpy(rec.issuer_hash, crl->issuer_hash, STORE_HASH_LEN);
	rec.created = crl->created ? crl->created : store_now(s);
	rec.this_update = crl->this_update;
	rec.next_update = crl->next_update;
	memcpy(rec.number, crl->number, crl->number_len);
	rec.number_len = crl->number_len;
	rec.der_len = crl->der_len;
	return s->ops->device_crl_put(s->b, &rec, der);
}

int
store_device_crl_remove(struct store *s, const char *tenant,
	const uint8_t issuer_hash[static STORE_HASH_LEN])
{
	if (!store_tenant_name_ok(tenant))
		return -ENOENT;
	return s->ops->device_crl_remove(s->b, tenant, issuer_hash);
}

int
store_device_crl_list(struct store *s, const char *tenant, struct store_device_crl **ret,
	size_t *ret_n)
{
	if (tenant != NULL && !store_tenant_name_ok(tenant))
		return -ENOENT;
	return s->ops->device_crl_list(s->b, tenant, ret, ret_n);
}

int
store_device_crl_each(struct store *s, const char *tenant,
	int (*fn)(void *ctx, const struct store_device_crl *crl, const uint8_t *der), void *ctx)
{
	if (tenant != NULL && !store_tenant_name_ok(tenant))
		return -ENOENT;
	return s->ops->device_crl_each(s->b, tenant, fn, ctx);
}

/* ---- revoked certificate serials ------------------------------------------------------------ */

int
store_x509_revoke(struct store *s, const struct store_x509_revoked *rv)
{
	struct store_x509_revoked rec;

	memset(&rec, 0, sizeof(rec));
	if (!store_tenant_name_ok(rv->tenant) || !str_ok(rv->label, sizeof(rv->label)) ||
	    !serial_len_ok(rv->serial_len))
		return -EINVAL;
	memcpy(rec.tenant, rv->tenant, strlen(rv->tenant));
	memcpy(rec.label, rv->label, strlen(rv->label));
	memcpy(rec.serial, rv->serial, rv->serial_len);
	rec.serial_len = rv->serial_len;
	rec.created = rv->created ? rv->created : store_now(s);
	return s->ops->x509_revoke(s->b, &rec);
}

int
store_x509_unrevoke(struct store *s, const char *tenant, const uint8_t *serial, size_t serial_len)
{
	if (!store_tenant_name_ok(tenant))
		return -ENOENT;
	if (!serial_len_ok(serial_len))
		return -EINVAL;
	return s->ops->x509_unrevoke(s->b, tenant, serial, serial_len);
}

int
store_x509_revoked_list(struct store *s, const char *tenant, struct store_x509_revoked **ret,
	size_t *ret_n)
{
	if (!store_tenant_name_ok(tenant))
		return -ENOENT;
	return s->ops->x509_revoked_list(s->b, tenant, ret, ret_n);
}

int
store_x509_is_revoked(struct store *s, const char *tenant, const uint8_t *serial,
	size_t serial_len)
{
	if (!store_tenant_name_ok(tenant))
		return -ENOENT;
	if (!serial_len_ok(serial_len))
		return -EINVAL;
	return s->ops->x509_is_revoked(s->b, tenant, serial, serial_len);
}

/* ---- registrations ------------------------------------------------------------------------ */

int
store_registration_add(struct store *s, const struct store_registration *reg)
{
	struct store_registration rec;

	memset(&rec, 0, sizeof(rec));
	if (!store_tenant_name_ok(reg->tenant) || !str_ok(reg->label, sizeof(reg->label)) ||
	    is_zero(reg->ek_hash, sizeof(reg->ek_hash)))
		return -EINVAL;
	memcpy(rec.tenant, reg->tenant, strlen(reg->tenant));
	memcpy(rec.label, reg->label, strlen(reg->label));
	memcpy(rec.ek_hash, reg->ek_hash, sizeof(rec.ek_hash));
	rec.created = reg->created ? reg->created : store_now(s);
	return s->ops->registration_add(s->b, &rec);
}

int
store_registration_remove(struct store *s, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN])
{
	if (!store_tenant_name_ok(tenant))
		return -ENOENT;
	return s->ops->registration_remove(s->b, tenant, ek_hash);
}

int
store_registration_get(struct store *s, const char *tenant,
	const uint8_t ek_hash[static STORE_HASH_LEN], struct store_registration *ret)
{
	struct store_registration reg;

	if (!store_tenant_name_ok(tenant))
		return -ENOENT;
	/* The ops always get somewhere to write. */
	return s->ops->registration_get(s->b, tenant, ek_hash, ret != NULL ? ret : &reg);
}

int
store_registration_list(struct store *s, const char *tenant, struct store_registration **ret,
	size_t *ret_n)
{
	if (!store_tenant_name_ok(tenant))
		return -ENOENT;
	return s->ops->registration_list(s->b, tenant, ret, ret_n);
}

/* ---- tokens ---------------------------------------------------------------------------------- */

int
store_token_create(struct store *s, const struct store_token *tok)
{
	struct store_token rec;

	memset(&rec, 0, sizeof(rec));
	if (!store_tenant_name_ok(tok->tenant) || !str_ok(tok->label, sizeof(tok->label)) ||
	    is_zero(tok->hash, sizeof(tok->hash)) || tok->uses_left == 0)
		return -EINVAL;
	memcpy(rec.hash, tok->hash, sizeof(rec.hash));
	memcpy(rec.tenant, tok->tenant, strlen(tok->tenant));
	memcpy(rec.label, tok->label, strlen(tok->label));
	rec.uses_left = tok->uses_left;
	rec.expires = tok->expires;
	rec.created = tok->created ? tok->created : store_now(s);
	rec.revoked = tok->revoked ? 1 : 0;
	return s->ops->token_create(s->b, &rec);
}

int
store_token_list(struct store *s, const char *tenant, struct store_token **ret, size_t *ret_n)
{
	/* No token can belong to a name no tenant can have: an empty list, as always. */
	if (tenant != NULL && !store_tenant_name_ok(tenant)) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	return s->ops->token_list(s->b, tenant, ret, ret_n);
}

int
store_token_get(struct store *s, const uint8_t hash[static STORE_HASH_LEN],
	struct store_token *ret)
{
	return s->ops->token_get(s->b, hash, ret);
}

int
store_token_revoke(struct store *s, const uint8_t hash[static STORE_HASH_LEN])
{
	return s->ops->token_revoke(s->b, hash);
}

/* ---- sessions ------------------------------------------------------------------------------ */

bool
store_seals_secrets(const struct store *s)
{
#ifdef ENROLLD_HAVE_PG
	return s->ops == &store_pg_ops;
#else
	return false;
#endif
}

void
store_session_wipe(struct store_session *sess)
{
	explicit_bzero(sess, sizeof(*sess));
}

int
store_session_create(struct store *s, const struct store_session *sess,
	uint8_t ret_id[static STORE_SESSION_ID_LEN])
{
	struct store_session rec;
	int r;

	if (!store_tenant_name_ok(sess->tenant) || sess->ak_name_len > sizeof(sess->ak_name) ||
	    sess->nonce_len > sizeof(sess->nonce) || sess->secret_len > sizeof(sess->secret) ||
	    sess->ak_public_len > sizeof(sess->ak_public))
		return -EINVAL;
	memset(&rec, 0, sizeof(rec));
	memcpy(rec.id, sess->id, sizeof(rec.id));
	if (is_zero(rec.id, sizeof(rec.id)) &&
	    getrandom(rec.id, sizeof(rec.id), 0) != (ssize_t)sizeof(rec.id))
		return -EIO;
	memcpy(rec.tenant, sess->tenant, strlen(sess->tenant));
	memcpy(rec.ek_hash, sess->ek_hash, sizeof(rec.ek_hash));
	memcpy(rec.ak_name, sess->ak_name, sess->ak_name_len);
	rec.ak_name_len = sess->ak_name_len;
	memcpy(rec.wg_pubkey, sess->wg_pubkey, sizeof(rec.wg_pubkey));
	memcpy(rec.nonce, sess->nonce, sess->nonce_len);
	rec.nonce_len = sess->nonce_len;
	memcpy(rec.secret, sess->secret, sess->secret_len);
	rec.secret_len = sess->secret_len;
	rec.has_token = sess->has_token ? 1 : 0;
	memcpy(rec.token_hash, sess->token_hash, sizeof(rec.token_hash));
	rec.expires = sess->expires;
	memcpy(rec.ak_public, sess->ak_public, sess->ak_public_len);
	rec.ak_public_len = sess->ak_public_len;
	r = s->ops->session_create(s->b, &rec, ret_id);
	store_session_wipe(&rec);
	return r;
}

int
store_session_get(struct store *s, const uint8_t id[static STORE_SESSION_ID_LEN],
	struct store_session *ret)
{
	return s->ops->session_get(s->b, id, ret);
}

int
store_session_use(struct store *s, const uint8_t id[static STORE_SESSION_ID_LEN])
{
	return s->ops->session_use(s->b, id);
}

int
store_session_purge(struct store *s)
{
	return s->ops->session_purge(s->b);
}

/* ---- devices and enrollment ----------------------------------------------------------------- */

int
store_enroll(struct store *s, const struct store_enroll_req *req, struct store_device *ret_dev)
{
	return store_enroll_prev(s, req, ret_dev, NULL);
}

int
store_enroll_prev(struct store *s, const struct store_enroll_req *req,
	struct store_device *ret_dev, struct store_device *ret_prev)
{
	if (!store_tenant_name_ok(req->tenant))
		return -ENOENT;
	if (is_zero(req->ek_hash, STORE_HASH_LEN) || is_zero(req->wg_pubkey, STORE_KEY_LEN) ||
	    (req->kind != STORE_ATTEST_TPM && req->kind != STORE_ATTEST_X509) ||
	    (req->kind == STORE_ATTEST_X509 && !serial_len_ok(req->serial_len)))
		return -EINVAL;
	return s->ops->enroll_prev(s->b, req, ret_dev, ret_prev);
}

int
store_device_get(struct store *s, uint64_t id, struct store_device *ret)
{
	return s->ops->device_get(s->b, id, ret);
}

int
store_device_by_pubkey(struct store *s, const uint8_t key[static STORE_KEY_LEN],
	struct store_device *ret)
{
	return s->ops->device_by_pubkey(s->b, key, ret);
}

int
store_device_by_ek(struct store *s, const uint8_t ek_hash[static STORE_HASH_LEN],
	struct store_device *ret)
{
	return s->ops->device_by_ek(s->b, ek_hash, ret);
}

int
store_device_by_addr(struct store *s, const char *tenant, int family,
	const uint8_t addr[static 16], struct store_device *ret)
{
	if (!store_tenant_name_ok(tenant) || addr_len(family) == 0)
		return -ENOENT;
	return s->ops->device_by_addr(s->b, tenant, family, addr, ret);
}

/* A device filter's state: 0 (any) or a state a device can be in. */
static bool
device_state_ok(uint8_t state)
{
	return state == 0 || state == STORE_DEVICE_ACTIVE || state == STORE_DEVICE_REVOKED;
}

int
store_device_list(struct store *s, const struct store_device_filter *f,
	struct store_device **ret, size_t *ret_n, uint64_t *ret_next)
{
	struct store_device_filter g = *f;

	if (g.tenant != NULL && !store_tenant_name_ok(g.tenant))
		return -ENOENT;
	if (g.limit == 0)
		g.limit = 100;
	if (g.limit > 1000)
		g.limit = 1000;
	/* Nothing comes after the last id, and no device is in an unknown state. */
	if (g.after == UINT64_MAX || !device_state_ok(g.state)) {
		*ret = NULL;
		*ret_n = 0;
		*ret_next = 0;
		return 0;
	}
	return s->ops->device_list(s->b, &g, ret, ret_n, ret_next);
}

int
store_device_list_all(struct store *s, const char *tenant, uint8_t state,
	struct store_device **ret, size_t *ret_n)
{
	if (tenant != NULL && !store_tenant_name_ok(tenant))
		return -ENOENT;
	if (!device_state_ok(state)) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	return s->ops->device_list_all(s->b, tenant, state, ret, ret_n);
}

int
store_device_revoke(struct store *s, uint64_t id, struct store_device *ret_dev)
{
	return s->ops->device_revoke(s->b, id, ret_dev);
}

int
store_device_reinstate(struct store *s, uint64_t id)
{
	return s->ops->device_reinstate(s->b, id);
}

int
store_device_delete(struct store *s, uint64_t id)
{
	return s->ops->device_delete(s->b, id);
}

int
store_ek_revoked(struct store *s, const uint8_t ek_hash[static STORE_HASH_LEN])
{
	return s->ops->ek_revoked(s->b, ek_hash);
}

/* ---- health ------------------------------------------------------------------------------- */

int
store_health_update(struct store *s, const struct store_health *h, size_t n)
{
	if (n == 0)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (h[i].state != STORE_HEALTH_UP && h[i].state != STORE_HEALTH_DOWN &&
		    h[i].state != STORE_HEALTH_NEVER)
			return -EINVAL;
	return s->ops->health_update(s->b, h, n);
}

int
store_health_get(struct store *s, uint64_t device, struct store_health *ret)
{
	return s->ops->health_get(s->b, device, ret);
}

int
store_health_list(struct store *s, struct store_health **ret, size_t *ret_n)
{
	*ret = NULL;
	*ret_n = 0;
	return s->ops->health_list(s->b, ret, ret_n);
}

/* ---- event log ------------------------------------------------------------------------------- */

const char *
store_event_kind_name(int kind)
{
	switch (kind) {
	case STORE_EV_ENROLLED:
		return "enrolled";
	case STORE_EV_UP:
		return "up";
	case STORE_EV_DOWN:
		return "down";
	case STORE_EV_REVOKED:
		return "revoked";
	case STORE_EV_REINSTATED:
		return "reinstated";
	case STORE_EV_ROTATED:
		return "rotated";
	default:
		return "unknown";
	}
}

int
store_events_read(struct store *s, uint64_t after, size_t max, struct store_event **ret,
	size_t *ret_n)
{
	if (max == 0 || max > 1000)
		max = 1000;
	if (after == UINT64_MAX) {
		*ret = NULL;
		*ret_n = 0;
		return 0;
	}
	return s->ops->events_read(s->b, after, max, ret, ret_n);
}

int
store_events_last(struct store *s, uint64_t *ret_seq)
{
	return s->ops->events_last(s->b, ret_seq);
}

int
store_events_wait(struct store *s, uint64_t after, int timeout_ms)
{
	return s->ops->events_wait(s->b, after, timeout_ms);
}

/* ---- migration between backends (enrolld/store/migrate.c) -------------------------------------- */

int
store_export_raw(struct store *s, struct store_dump *d)
{
	return s->ops->export_raw(s->b, d);
}

int
store_import(struct store *s, const struct store_dump *d)
{
	return s->ops->import(s->b, d);
}
