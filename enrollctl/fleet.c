// SPDX-License-Identifier: MIT
/*
 * Tenants, and what each tenant holds: registrations (the EK allowlist), enrollment
 * tokens, device CAs, revoked serials. The four collections share one shape
 * (/v1/tenants/{name}/<what>[/{id}]), so one set of functions serves them, described by
 * struct coll.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/b64.h"
#include "common/log.h"
#include "enrollctl/enrollctl.h"

#define FILE_MAX (64 * 1024)

/* Print an answer: as is with --json, else its members one per line. */
static int
print_answer(struct ctl *ctl, const json_t *j)
{
	if (ctl->json) {
		ctl_print_json(ctl, j);
		return 0;
	}
	return ctl_print_object(ctl, j);
}

/* Call, print the answer, free it. */
static int
call_print(struct ctl *ctl, const char *method, const char *path, json_t *body)
{
	json_t *j = NULL;
	int r;

	r = ctl_call(ctl, method, path, body, &j);
	if (r == 0)
		r = print_answer(ctl, j);
	json_decref(j);
	return r;
}

/* Call, then print the array @key of the answer in @cols (or the answer with --json). */
static int
call_list(struct ctl *ctl, const char *path, const char *key, const struct ctl_col *cols)
{
	json_t *j = NULL;
	int r;

	r = ctl_call(ctl, "GET", path, NULL, &j);
	if (r < 0)
		return r;
	if (ctl->json)
		ctl_print_json(ctl, j);
	else
		r = ctl_print_list(ctl, json_object_get(j, key), cols);
	json_decref(j);
	return r;
}

/* Up to FILE_MAX bytes of @path into *ret (NUL-terminated, caller frees). */
static int
read_file(const char *path, char **ret, size_t *ret_len)
{
	char *buf = NULL;
	size_t len = 0;
	ssize_t n;
	int fd, r;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(FILE_MAX + 1);
	r = -ENOMEM;
	if (buf == NULL)
		goto out;
	while ((n = read(fd, buf + len, FILE_MAX + 1 - len)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		r = n < 0 ? -errno : -EFBIG;
		if (n < 0 || (len += (size_t)n) > FILE_MAX)
			goto out;
	}
	buf[len] = '\0';
	*ret = buf;
	*ret_len = len;
	buf = NULL;
	r = 0;
out:
	free(buf);
	close(fd);
	return r;
}

/* ---- tenants ---------------------------------------------------------------------------- */

static const struct ctl_col tenant_cols[] = {
	{"NAME", "name", CTL_F_STR},
	{"PREFIX", "prefix", CTL_F_STR},
	{"ADDRESS", "address", CTL_F_STR},
	{"INTERFACE", "interface", CTL_F_STR},
	{"PORT", "listen_port", CTL_F_STR},
	{"ENDPOINT", "endpoint", CTL_F_STR},
	{"KEEPALIVE", "keepalive", CTL_F_STR},
	{"UP", "interface_up", CTL_F_YESNO},
	{"TPM REQUIRED", "require_tpm", CTL_F_YESNO},
	{NULL, NULL, 0},
};

static int
tenant_path(const char *name, const char *suffix, char *buf, size_t len)
{
	return ctl_path(buf, len, "/v1/tenants/", name, suffix);
}

static int
tenants_list(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	return call_list(ctl, "/v1/tenants", "tenants", tenant_cols);
}

static int
tenants_show(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	char path[512];
	int r;

	r = tenant_path(a->pos[0], "", path, sizeof(path));
	return r < 0 ? r : call_print(ctl, "GET", path, NULL);
}

/* "7=<64 hex>" into {"index": 7, "sha256": "..."} */
static json_t *
pcr_json(const char *s)
{
	char *end;
	long idx = strtol(s, &end, 10);

	if (end == s || *end != '=' || idx < 0 || idx > 23)
		return NULL;
	return json_pack("{s:i,s:s}", "index", (int)idx, "sha256", end + 1);
}

static int
tenants_create(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	json_t *body = json_pack("{s:s}", "name", a->pos[0]), *pol = NULL;
	int r = -ENOMEM;

	if (body == NULL)
		return -ENOMEM;
	if (!(a->given & CTL_O_PREFIX) || !(a->given & CTL_O_INTERFACE) ||
		!(a->given & CTL_O_PORT) || !(a->given & CTL_O_ENDPOINT)) {
		log_warnx("enrollctl: tenants create needs --prefix, --interface, --listen-port "
			  "and --endpoint");
		r = -EINVAL;
		goto out;
	}
	json_object_set_new(body, "prefix", json_string(a->prefix));
	json_object_set_new(body, "interface", json_string(a->interface));
	json_object_set_new(body, "listen_port", json_integer(a->listen_port));
	json_object_set_new(body, "endpoint", json_string(a->endpoint));
	if (a->prefix6 != NULL)
		json_object_set_new(body, "prefix6", json_string(a->prefix6));
	if (a->address != NULL)
		json_object_set_new(body, "address", json_string(a->address));
	if (a->address6 != NULL)
		json_object_set_new(body, "address6", json_string(a->address6));
	if (a->given & CTL_O_KEEPALIVE)
		json_object_set_new(body, "keepalive", json_integer(a->keepalive));
	if (a->n_pcr > 0) {
		pol = json_array();
		if (pol == NULL)
			goto out;
		for (size_t i = 0; i < a->n_pcr; i++) {
			json_t *p = pcr_json(a->pcr[i]);

			if (p == NULL) {
				log_warnx("enrollctl: --pcr '%s': INDEX=SHA256HEX expected",
					a->pcr[i]);
				r = -EINVAL;
				goto out;
			}
			json_array_append_new(pol, p);
		}
		json_object_set(body, "pcr_policy", pol);
	}
	r = call_print(ctl, "POST", "/v1/tenants", body);
out:
	json_decref(pol);
	json_decref(body);
	return r;
}

static int
tenants_policy(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	char path[512];
	json_t *body;
	bool req;
	int r;

	if (a->require_tpm == NULL) {
		log_warnx("enrollctl: tenants policy needs --require-tpm yes|no");
		return -EINVAL;
	}
	if (strcmp(a->require_tpm, "yes") == 0) {
		req = true;
	} else if (strcmp(a->require_tpm, "no") == 0) {
		req = false;
	} else {
		log_warnx("enrollctl: --require-tpm '%s': yes or no", a->require_tpm);
		return -EINVAL;
	}
	r = tenant_path(a->pos[0], "/policy", path, sizeof(path));
	if (r < 0)
		return r;
	body = json_pack("{s:b}", "require_tpm", req);
	if (body == NULL)
		return -ENOMEM;
	r = call_print(ctl, "PUT", path, body);
	json_decref(body);
	return r;
}

/* ---- a tenant's collections ------------------------------------------------------------- */

struct coll {
	const char *seg; /* path segment under /v1/tenants/{name}/ */
	const char *key; /* the list's member in the answer */
	const struct ctl_col *cols;
};

/* /v1/tenants/<tenant>/<seg>[/<id>] for the tenant of --tenant or the token. */
static int
coll_path(struct ctl *ctl, const struct ctl_args *a, const struct coll *c, const char *id,
	char *buf, size_t len)
{
	char suffix[300], esc[256];
	const char *tenant;
	int r;

	r = ctl_tenant(ctl, a, &tenant);
	if (r < 0)
		return r;
	if (id != NULL && (r = ctl_escape(id, esc, sizeof(esc))) < 0)
		return r;
	snprintf(suffix, sizeof(suffix), "/%s%s%s", c->seg, id ? "/" : "", id ? esc : "");
	return tenant_path(tenant, suffix, buf, len);
}

static int
coll_list(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	const struct coll *c = cmd->data;
	char path[512];
	int r;

	r = coll_path(ctl, a, c, NULL, path, sizeof(path));
	return r < 0 ? r : call_list(ctl, path, c->key, c->cols);
}

/* remove / revoke: DELETE .../<seg>/<id> */
static int
coll_delete(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	char path[512];
	int r;

	r = coll_path(ctl, a, cmd->data, a->pos[0], path, sizeof(path));
	return r < 0 ? r : call_print(ctl, "DELETE", path, NULL);
}

/* POST @body (taken) to the collection, print the answer. */
static int
coll_post(struct ctl *ctl, const struct ctl_args *a, const struct coll *c, json_t *body)
{
	char path[512];
	int r;

	if (body == NULL)
		return -ENOMEM;
	if (a->label != NULL)
		json_object_set_new(body, "label", json_string(a->label));
	r = coll_path(ctl, a, c, NULL, path, sizeof(path));
	if (r == 0)
		r = call_print(ctl, "POST", path, body);
	json_decref(body);
	return r;
}

static const struct ctl_col reg_cols[] = {
	{"TENANT", "tenant", CTL_F_STR},
	{"EK ID", "ek_id", CTL_F_STR},
	{"LABEL", "label", CTL_F_STR},
	{"CREATED", "created", CTL_F_TIME},
	{NULL, NULL, 0},
};
static const struct coll registrations = {"registrations", "registrations", reg_cols};

static int
registrations_add(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	char *raw = NULL, *b64 = NULL;
	size_t len = 0;
	int r;

	if (!!a->ek_id == !!a->ek_public_file) {
		log_warnx("enrollctl: registrations add needs --ek-id HEX or --ek-public FILE");
		return -EINVAL;
	}
	if (a->ek_id != NULL)
		return coll_post(ctl, a, cmd->data, json_pack("{s:s}", "ek_id", a->ek_id));
	r = read_file(a->ek_public_file, &raw, &len);
	if (r < 0) {
		log_warnx("enrollctl: '%s': %s", a->ek_public_file, strerror(-r));
		return r;
	}
	/* the TPM2B_PUBLIC as the TPM gives it (e.g. tpm2_readpublic -f tss) */
	r = b64_encode((const uint8_t *)raw, len, &b64);
	free(raw);
	if (r < 0)
		return r;
	r = coll_post(ctl, a, cmd->data, json_pack("{s:s}", "ek_public", b64));
	free(b64);
	return r;
}

static const struct ctl_col token_cols[] = {
	{"ID", "id", CTL_F_STR},
	{"TENANT", "tenant", CTL_F_STR},
	{"LABEL", "label", CTL_F_STR},
	{"USES LEFT", "uses_left", CTL_F_STR},
	{"CREATED", "created", CTL_F_TIME},
	{"EXPIRES", "expires", CTL_F_TIME},
	{"REVOKED", "revoked", CTL_F_YESNO},
	{NULL, NULL, 0},
};
static const struct coll tokens = {"tokens", "tokens", token_cols};

static int
tokens_create(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	json_t *body = json_object();

	if (body == NULL)
		return -ENOMEM;
	if (a->given & CTL_O_USES)
		json_object_set_new(body, "uses", json_integer(a->uses));
	if (a->given & CTL_O_EXPIRES)
		json_object_set_new(body, "expires_in", json_integer(a->expires_in));
	if (!ctl->json)
		log_warnx("enrollctl: the token is shown this once: only its hash is stored");
	return coll_post(ctl, a, cmd->data, body);
}

static const struct ctl_col ca_cols[] = {
	{"ID", "id", CTL_F_STR},
	{"TENANT", "tenant", CTL_F_STR},
	{"SUBJECT", "subject", CTL_F_STR},
	{"LABEL", "label", CTL_F_STR},
	{"CREATED", "created", CTL_F_TIME},
	{NULL, NULL, 0},
};
static const struct coll device_cas = {"device-cas", "device_cas", ca_cols};

static int
device_cas_add(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	char *pem = NULL;
	size_t len;
	int r;

	r = read_file(a->pos[0], &pem, &len);
	if (r < 0) {
		log_warnx("enrollctl: '%s': %s", a->pos[0], strerror(-r));
		return r;
	}
	r = coll_post(ctl, a, cmd->data, json_pack("{s:s}", "certificate", pem));
	free(pem);
	return r;
}

static const struct ctl_col serial_cols[] = {
	{"SERIAL", "serial", CTL_F_STR},
	{"TENANT", "tenant", CTL_F_STR},
	{"LABEL", "label", CTL_F_STR},
	{"CREATED", "created", CTL_F_TIME},
	{NULL, NULL, 0},
};
static const struct coll revoked_serials = {"revoked-serials", "revoked_serials", serial_cols};

static int
serials_add(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	return coll_post(ctl, a, cmd->data, json_pack("{s:s}", "serial", a->pos[0]));
}

const struct ctl_cmd ctl_fleet_cmds[] = {
	{"tenants", "list", 0, 0, 0, "list", "the tenants this token sees", tenants_list, NULL},
	{"tenants", "show", 0, 1, 1, "show NAME", "one tenant", tenants_show, NULL},
	{"tenants", "create",
		CTL_O_PREFIX | CTL_O_PREFIX6 | CTL_O_INTERFACE | CTL_O_PORT | CTL_O_ENDPOINT |
			CTL_O_KEEPALIVE | CTL_O_ADDRESS | CTL_O_ADDRESS6 | CTL_O_PCR,
		1, 1,
		"create NAME --prefix CIDR --interface IF --listen-port N --endpoint HOST:PORT\n"
		"    [--prefix6 CIDR] [--address IP] [--address6 IP] [--keepalive S] "
		"[--pcr INDEX=SHA256]...",
		"a tenant: its range, WireGuard interface and port (admin)", tenants_create, NULL},
	{"tenants", "policy", CTL_O_REQUIRE_TPM, 1, 1, "policy NAME --require-tpm yes|no",
		"whether the tenant refuses X.509 devices (admin)", tenants_policy, NULL},

	{"registrations", "list", CTL_O_TENANT, 0, 0, "list [--tenant T]",
		"the tenant's factory-registered EKs", coll_list, &registrations},
	{"registrations", "add", CTL_O_TENANT | CTL_O_EK_ID | CTL_O_EK_PUBLIC | CTL_O_LABEL, 0, 0,
		"add [--tenant T] (--ek-id HEX | --ek-public FILE) [--label L]",
		"register an EK (FILE: its TPM2B_PUBLIC)", registrations_add, &registrations},
	{"registrations", "remove", CTL_O_TENANT, 1, 1, "remove [--tenant T] EK_ID",
		"unregister an EK (enrolled devices stay)", coll_delete, &registrations},

	{"tokens", "list", CTL_O_TENANT, 0, 0, "list [--tenant T]",
		"the tenant's enrollment tokens (never their values)", coll_list, &tokens},
	{"tokens", "create", CTL_O_TENANT | CTL_O_USES | CTL_O_EXPIRES | CTL_O_LABEL, 0, 0,
		"create [--tenant T] [--uses N] [--expires-in SECONDS] [--label L]",
		"a new token, printed this once", tokens_create, &tokens},
	{"tokens", "revoke", CTL_O_TENANT, 1, 1, "revoke [--tenant T] ID", "revoke a token",
		coll_delete, &tokens},

	{"device-cas", "list", CTL_O_TENANT, 0, 0, "list [--tenant T]",
		"the CAs whose device certificates the tenant accepts", coll_list, &device_cas},
	{"device-cas", "add", CTL_O_TENANT | CTL_O_LABEL, 1, 1,
		"add [--tenant T] [--label L] CA.pem", "trust a device CA (admin)", device_cas_add,
		&device_cas},
	{"device-cas", "remove", CTL_O_TENANT, 1, 1, "remove [--tenant T] ID",
		"stop trusting a device CA (admin)", coll_delete, &device_cas},

	{"revoked-serials", "list", CTL_O_TENANT, 0, 0, "list [--tenant T]",
		"the tenant's revoked device certificate serials", coll_list, &revoked_serials},
	{"revoked-serials", "add", CTL_O_TENANT | CTL_O_LABEL, 1, 1,
		"add [--tenant T] [--label L] SERIAL",
		"revoke a device certificate by serial (hex)", serials_add, &revoked_serials},
	{"revoked-serials", "remove", CTL_O_TENANT, 1, 1, "remove [--tenant T] SERIAL",
		"lift a serial's revocation", coll_delete, &revoked_serials},
	{0},
};
