// SPDX-License-Identifier: MIT
/*
 * The API's route table (docs/openapi.json mirrors it; tests/integration/openapi_sync.sh
 * checks) and the helpers every handler shares: tenant scoping, store errors, JSON
 * member checks, the JSON form of tenants and devices.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "common/key.h"
#include "common/log.h"
#include "enrolld/cluster/node.h"
#include "enrolld/enrolld.h"

static int
api_healthz(struct http_request *req, json_t **ret_body, void *ctx)
{
	*ret_body = json_pack("{s:s}", "status", "ok");
	return *ret_body ? 200 : -ENOMEM;
}

static int
api_metrics(struct http_request *req, char **ret_text, const char **ret_ctype, void *ctx)
{
	struct enrolld *e = ctx;
	struct store_stats st;

	store_get_stats(e->store, &st);
	*ret_text = metrics_render(&st);
	*ret_ctype = "text/plain; version=0.0.4; charset=utf-8";
	return *ret_text ? 200 : -ENOMEM;
}

#define ANYONE (HTTP_AUTH_NONE | HTTP_AUTH_ADMIN | HTTP_AUTH_TENANT | HTTP_AUTH_PROVISION)
/* the device-facing endpoints: anyone, rate-limited (they cost cryptography) */
#define DEVICE (ANYONE | HTTP_ROUTE_LIMITED)
#define FLEET (HTTP_AUTH_ADMIN | HTTP_AUTH_TENANT)
#define ADMIN HTTP_AUTH_ADMIN
#define REGISTRAR (HTTP_AUTH_ADMIN | HTTP_AUTH_TENANT | HTTP_AUTH_PROVISION)

const struct http_route api_routes[] = {
	{ "GET", "/healthz", api_healthz, ANYONE, NULL },
	{ "GET", "/metrics", NULL, ANYONE, api_metrics },
	{ "POST", "/v1/enroll/challenge", api_enroll_challenge, DEVICE, NULL },
	{ "POST", "/v1/enroll/complete", api_enroll_complete, DEVICE, NULL },
	{ "POST", "/v1/tenants", api_tenant_create, ADMIN, NULL },
	{ "GET", "/v1/tenants", api_tenant_list, FLEET, NULL },
	{ "GET", "/v1/tenants/{name}", api_tenant_get, FLEET, NULL },
	{ "POST", "/v1/tenants/{name}/registrations", api_registration_add, REGISTRAR, NULL },
	{ "GET", "/v1/tenants/{name}/registrations", api_registration_list, FLEET, NULL },
	{ "DELETE", "/v1/tenants/{name}/registrations/{ek_id}", api_registration_remove, FLEET,
		NULL },
	{ "POST", "/v1/tenants/{name}/tokens", api_token_create, FLEET, NULL },
	{ "GET", "/v1/tenants/{name}/tokens", api_token_list, FLEET, NULL },
	{ "DELETE", "/v1/tenants/{name}/tokens/{id}", api_token_revoke, FLEET, NULL },
	{ "GET", "/v1/devices", api_device_list, FLEET, NULL },
	{ "GET", "/v1/devices/{id}", api_device_get, FLEET, NULL },
	{ "POST", "/v1/devices/{id}/revoke", api_device_revoke, FLEET, NULL },
	{ "POST", "/v1/devices/{id}/reinstate", api_device_reinstate, FLEET, NULL },
	{ "GET", "/v1/events", NULL, FLEET, api_events },
	{ "POST", "/v1/peer", api_peer_enroll, DEVICE, NULL },
	{ "GET", "/v1/peer", api_peer_get, DEVICE, NULL },
	{ "PUT", "/v1/tenants/{name}/policy", api_tenant_policy, ADMIN, NULL },
	{ "POST", "/v1/tenants/{name}/device-cas", api_device_ca_add, ADMIN, NULL },
	{ "GET", "/v1/tenants/{name}/device-cas", api_device_ca_list, FLEET, NULL },
	{ "DELETE", "/v1/tenants/{name}/device-cas/{id}", api_device_ca_remove, ADMIN, NULL },
	{ "POST", "/v1/tenants/{name}/revoked-serials", api_serial_revoke, FLEET, NULL },
	{ "GET", "/v1/tenants/{name}/revoked-serials", api_serial_list, FLEET, NULL },
	{ "DELETE", "/v1/tenants/{name}/revoked-serials/{serial}", api_serial_unrevoke, FLEET,
		NULL },
	{ "POST", "/v1/tenants/{name}/device-crls", api_device_crl_add, FLEET, NULL },
	{ "GET", "/v1/tenants/{name}/device-crls", api_device_crl_list, FLEET, NULL },
	{ "DELETE", "/v1/tenants/{name}/device-crls/{id}", api_device_crl_remove, FLEET, NULL },
	/* the dashboard's files (public: the page holds no data, the API needs a token) */
	{ "GET", "/ui", NULL, ANYONE, api_ui_redirect },
	{ "HEAD", "/ui", NULL, ANYONE, api_ui_redirect },
	{ "GET", "/ui/", NULL, ANYONE, api_ui_index },
	{ "HEAD", "/ui/", NULL, ANYONE, api_ui_index },
	{ "GET", "/ui/{asset}", NULL, ANYONE, api_ui_asset },
	{ "HEAD", "/ui/{asset}", NULL, ANYONE, api_ui_asset },
};
const size_t api_n_routes = sizeof(api_routes) / sizeof(api_routes[0]);

/* ---- helpers ------------------------------------------------------------------------------ */

int
api_check_tenant(struct http_request *req, const char *tenant)
{
	if (http_request_role(req) != HTTP_AUTH_TENANT)
		return 0;
	if (tenant != NULL && strcmp(http_request_tenant(req), tenant) == 0)
		return 0;
	return http_error(req, -EPERM, "forbidden_tenant",
		"this token is scoped to tenant '%s'", http_request_tenant(req));
}

int
api_device_sync(struct enrolld *e, const struct store_tenant *t, uint64_t id,
	const uint8_t *const keys[], size_t n_keys)
{
	int r = plane_device_sync(e->plane, e->store, t, id, keys, n_keys);

	if (r < 0 || e->cluster == NULL)
		return r;
	r = cluster_wait_applied(e->cluster, t->name);
	if (r < 0)
		log_warnx("cluster: device %llu of '%s': the node holding the tenant has not "
			  "confirmed the change in time (%s)",
			(unsigned long long)id, t->name, strerror(-r));
	return r;
}

int
api_store_error(struct http_request *req, int err, const char *what)
{
	switch (err) {
	case -ENOENT:
		return http_error(req, err, "not_found", "%s not found", what);
	case -EEXIST:
		return http_error(req, err, "conflict", "%s conflicts with an existing one", what);
	case -EADDRNOTAVAIL:
		return http_error(req, -EAGAIN, "address_pool_exhausted",
			"the tenant's prefix has no free address left");
	case -ENOSPC:
		/* the state's file system or its map limit: nothing of the request was written */
		return http_error(req, -ENOSPC, "storage_full",
			"the control plane's state storage is full; nothing was changed");
	case -ESHUTDOWN:
		return http_error(req, -EAGAIN, "shutting_down", "the service is shutting down");
	case -ENOTCONN:
		/* PostgreSQL out of reach (restarting, failing over): a device should come back */
		http_request_set_retry_after(req, 2);
		return http_error(req, -EAGAIN, "store_unavailable",
			"the database cannot be reached; nothing was changed, retry later");
	default:
		return http_error(req, err < 0 ? err : -EIO, "internal", "%s: %s", what,
			strerror(err < 0 ? -err : EIO));
	}
}

void
api_hex(const uint8_t *p, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[p[i] >> 4];
		out[2 * i + 1] = digits[p[i] & 15];
	}
	out[2 * n] = '\0';
}

static int
hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int
api_unhex(const char *s, uint8_t *out, size_t n)
{
	if (s == NULL || strlen(s) != 2 * n)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(s[2 * i]), lo = hexval(s[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return 0;
}

int
api_json_str(struct http_request *req, json_t *body, const char *key, bool required,
	const char **ret)
{
	json_t *v = json_object_get(body, key);

	*ret = NULL;
	if (v == NULL || json_is_null(v)) {
		if (required)
			return http_error(req, -EBADMSG, "invalid_body", "'%s' is required", key);
		return 0;
	}
	if (!json_is_string(v))
		return http_error(req, -EBADMSG, "invalid_body", "'%s' must be a string", key);
	*ret = json_string_value(v);
	return 0;
}

int
api_json_int(struct http_request *req, json_t *body, const char *key, bool required,
	json_int_t min, json_int_t max, json_int_t *ret)
{
	json_t *v = json_object_get(body, key);

	if (v == NULL || json_is_null(v)) {
		if (required)
			return http_error(req, -EBADMSG, "invalid_body", "'%s' is required", key);
		return 0;
	}
	if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
		return http_error(req, -EBADMSG, "invalid_body",
			"'%s' must be an integer from %lld to %lld", key, (long long)min,
			(long long)max);
	*ret = json_integer_value(v);
	return 0;
}

int
api_json_known(struct http_request *req, json_t *body, const char *const *known)
{
	const char *key;
	json_t *v;

	json_object_foreach(body, key, v) {
		bool ok = false;

		for (const char *const *k = known; *k != NULL; k++)
			if (strcmp(*k, key) == 0) {
				ok = true;
				break;
			}
		if (!ok)
			return http_error(req, -EBADMSG, "invalid_body", "unknown member '%.64s'", key);
	}
	return 0;
}

static const char *
health_name(int state)
{
	switch (state) {
	case STORE_HEALTH_UP:
		return "up";
	case STORE_HEALTH_DOWN:
		return "down";
	default:
		return "never";
	}
}

json_t *
api_device_json(struct enrolld *e, const struct store_device *d)
{
	char id[24], a4[ADDR_STR_LEN + 4], a6[ADDR_STR_LEN + 4], pub[WG_KEY_B64_LEN];
	char ek[2 * STORE_HASH_LEN + 1];
	struct store_health sh = { 0 };
	struct health_peer hp;
	bool have_hp;
	json_t *j;

	snprintf(id, sizeof(id), "%llu", (unsigned long long)d->id);
	addr_format(AF_INET, d->addr4, a4, sizeof(a4));
	strcat(a4, "/32");
	key_to_base64(pub, d->wg_pubkey);
	api_hex(d->ek_hash, STORE_HASH_LEN, ek);
	have_hp = d->state == STORE_DEVICE_ACTIVE && health_peer_get(e->health, d->id, &hp) == 0;
	if (store_health_get(e->store, d->id, &sh) < 0)
		sh.state = STORE_HEALTH_NEVER;
	j = json_pack("{s:s,s:s,s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "device_id", id, "tenant",
		d->tenant, "address", a4, "public_key", pub, "ek_id", ek, "state",
		d->state == STORE_DEVICE_ACTIVE ? "active" : "revoked", "health",
		d->state == STORE_DEVICE_ACTIVE ? health_name(sh.state) : "revoked", "created",
		(json_int_t)d->created, "updated", (json_int_t)d->updated);
	if (j == NULL)
		return NULL;
	/* how the device proved itself: TPM attestation or a device certificate */
	json_object_set_new(j, "attestation",
		json_string(d->kind == STORE_ATTEST_X509 ? "x509" : "tpm"));
	if (d->has_addr6) {
		addr_format(AF_INET6, d->addr6, a6, sizeof(a6));
		strcat(a6, "/128");
		json_object_set_new(j, "address6", json_string(a6));
	}
	json_object_set_new(j, "since", sh.since ? json_integer(sh.since) : json_null());
	json_object_set_new(j, "revoked_at", d->revoked ? json_integer(d->revoked) : json_null());
	json_object_set_new(j, "last_handshake",
		have_hp && hp.last_handshake ? json_integer(hp.last_handshake) : json_null());
	json_object_set_new(j, "rx_bytes", json_integer(have_hp ? (json_int_t)hp.rx_bytes : 0));
	json_object_set_new(j, "tx_bytes", json_integer(have_hp ? (json_int_t)hp.tx_bytes : 0));
	json_object_set_new(j, "on_interface", json_boolean(have_hp && hp.seen));
	return j;
}

json_t *
api_tenant_json(struct enrolld *e, const struct store_tenant *t)
{
	char p4[ADDR_STR_LEN], s4[ADDR_STR_LEN], p6[ADDR_STR_LEN], s6[ADDR_STR_LEN];
	char pub[WG_KEY_B64_LEN], hex[65], sel[96];
	uint8_t key[32];
	json_t *j, *pol;
	size_t off;

	addr_prefix_format(&t->prefix4, p4, sizeof(p4));
	addr_format(AF_INET, t->self4, s4, sizeof(s4));
	j = json_pack("{s:s,s:s,s:s,s:s,s:i,s:s,s:i,s:I}", "name", t->name, "prefix", p4,
		"address", s4, "interface", t->ifname, "listen_port", (int)t->listen_port,
		"endpoint", t->endpoint, "keepalive", (int)t->keepalive, "created",
		(json_int_t)t->created);
	if (j == NULL)
		return NULL;
	if (t->prefix6.family == AF_INET6) {
		addr_prefix_format(&t->prefix6, p6, sizeof(p6));
		addr_format(AF_INET6, t->self6, s6, sizeof(s6));
		json_object_set_new(j, "prefix6", json_string(p6));
		json_object_set_new(j, "address6", json_string(s6));
	}
	pol = json_array();
	off = (size_t)snprintf(sel, sizeof(sel), "%s", t->n_pcrs ? "sha256:" : "");
	for (unsigned int i = 0; i < t->n_pcrs; i++) {
		api_hex(t->pcrs[i].sha256, 32, hex);
		json_array_append_new(pol, json_pack("{s:i,s:s}", "index", t->pcrs[i].index,
						   "sha256", hex));
		off += (size_t)snprintf(sel + off, sizeof(sel) - off, "%s%u", i ? "," : "",
			(unsigned int)t->pcrs[i].index);
	}
	json_object_set_new(j, "pcr_policy", pol);
	json_object_set_new(j, "require_tpm", json_boolean(t->require_tpm));
	json_object_set_new(j, "pcr_selection", json_string(sel));
	if (plane_tenant_key(e->plane, t, key) == 0) {
		key_to_base64(pub, key);
		json_object_set_new(j, "server_public_key", json_string(pub));
	}
	if (e->cluster != NULL) {
		char node[64];
		int64_t epoch = 0;
		int r = cluster_holder(e->cluster, t->name, node, &epoch);

		/* up on its holder: here, the plane says; elsewhere, its live lease does */
		if (r == 0)
			json_object_set_new(j, "holder", json_pack("{s:s,s:I}", "node", node,
								 "epoch", (json_int_t)epoch));
		else if (r == -ENOENT)
			json_object_set_new(j, "holder", json_null());
		json_object_set_new(j, "interface_up",
			json_boolean(plane_tenant_is_held(e->plane, t->name)
					     ? plane_tenant_is_up(e->plane, t->name)
					     : r == 0));
		return j;
	}
	json_object_set_new(j, "interface_up", json_boolean(plane_tenant_is_up(e->plane, t->name)));
	return j;
}

const char *
api_enroll_result_name(int result)
{
	switch (result) {
	case STORE_ENROLL_NEW:
		return "new";
	case STORE_ENROLL_ROTATED:
		return "rotated";
	case STORE_ENROLL_SAME:
		return "same";
	case STORE_ENROLL_RENEWED:
		return "renewed";
	default:
		return "unknown";
	}
}

int
api_path_tenant(struct http_request *req, struct enrolld *e, struct store_tenant *ret)
{
	const char *name = http_request_param(req, 0);
	int r;

	r = api_check_tenant(req, name);
	if (r < 0)
		return r;
	r = store_tenant_get(e->store, name, ret);
	return r < 0 ? api_store_error(req, r, "tenant") : 0;
}
