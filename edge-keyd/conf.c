// SPDX-License-Identifier: MIT
/* edge-keyd's configuration file: INI, every key known, every value checked. */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/config.h"
#include "common/tpm2.h"
#include "common/tpm2_templates.h"
#include "edge-keyd/edge-keyd.h"

static const char *const conf_known[] = {
	"device.state_dir",
	"device.tcti",
	"device.ek_type",
	"device.ak_type",
	"device.pcr_policy",
	"device.label",
	"server.url",
	"server.ca_file",
	"server.allow_http",
	"server.tenant",
	"server.token_file",
	"server.provisioning_token_file",
	"server.timeout",
	"wireguard.interface",
	"wireguard.backend",
	"wireguard.wireguard_go",
	"wireguard.uapi_dir",
	"wireguard.keepalive",
	"wireguard.check_interval",
	"wireguard.reenroll_after",
	"wireguard.remove_on_exit",
	NULL,
};

void
ekd_conf_clear(struct ekd_conf *c)
{
	if (c == NULL)
		return;
	free(c->state_dir);
	free(c->tcti);
	free(c->ek_type);
	free(c->ak_type);
	free(c->pcr_policy);
	free(c->label);
	free(c->url);
	free(c->ca_file);
	free(c->tenant);
	free(c->token_file);
	free(c->provisioning_token_file);
	free(c->ifname);
	free(c->wireguard_go);
	free(c->uapi_dir);
	memset(c, 0, sizeof(*c));
}

struct str_opt {
	const char *section, *key, *def;
	size_t offset;
};

#define SOPT(s, k, d, field) { s, k, d, offsetof(struct ekd_conf, field) }

static const struct str_opt str_opts[] = {
	SOPT("device", "state_dir", EKD_DEFAULT_STATE_DIR, state_dir),
	SOPT("device", "tcti", EKD_DEFAULT_TCTI, tcti),
	SOPT("device", "ek_type", "rsa2048", ek_type),
	SOPT("device", "ak_type", "ecc", ak_type),
	SOPT("device", "pcr_policy", NULL, pcr_policy),
	SOPT("device", "label", NULL, label),
	SOPT("server", "url", NULL, url),
	SOPT("server", "ca_file", NULL, ca_file),
	SOPT("server", "tenant", NULL, tenant),
	SOPT("server", "token_file", NULL, token_file),
	SOPT("server", "provisioning_token_file", NULL, provisioning_token_file),
	SOPT("wireguard", "interface", "wg0", ifname),
	SOPT("wireguard", "wireguard_go", "wireguard-go", wireguard_go),
	SOPT("wireguard", "uapi_dir", WG_UAPI_DEFAULT_DIR, uapi_dir),
};

struct long_opt {
	const char *section, *key;
	long min, max, def;
	size_t offset;
};

#define LOPT(s, k, mn, mx, d, field) { s, k, mn, mx, d, offsetof(struct ekd_conf, field) }

static const struct long_opt long_opts[] = {
	LOPT("server", "timeout", 1, 600, 30, timeout),
	LOPT("wireguard", "keepalive", 0, 3600, 0, keepalive),
	LOPT("wireguard", "check_interval", 1, 3600, 5, check_interval),
	LOPT("wireguard", "reenroll_after", 0, 30 * 86400, 900, reenroll_after),
};

/* Interface names the kernel accepts: 1..15 characters, no '/', ':' or whitespace. */
static bool
ifname_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n >= IFNAMSIZ || strcmp(s, ".") == 0 || strcmp(s, "..") == 0)
		return false;
	for (size_t i = 0; i < n; i++)
		if (s[i] == '/' || s[i] == ':' || s[i] <= ' ' || s[i] == 0x7f)
			return false;
	return true;
}

/* Tenant names as enrolld takes them in a URL path: [A-Za-z0-9_.-]{1,63}. */
static bool
tenant_valid(const char *s)
{
	size_t n = strlen(s);

	if (n == 0 || n > 63)
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = s[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9') || ch == '-' || ch == '_' || ch == '.'))
			return false;
	}
	return true;
}

static int
conf_from_config(struct ekd_conf *ret, const struct config *cfg, const char *name, char *errbuf,
	size_t errlen)
{
	struct ekd_conf c = { 0 };
	enum tpm2_ek_type ek;
	const char *backend;
	size_t n;
	int r;

	r = config_check_known(cfg, conf_known, errbuf, errlen);
	if (r < 0)
		return r;
	for (size_t i = 0; i < sizeof(str_opts) / sizeof(str_opts[0]); i++) {
		const struct str_opt *o = &str_opts[i];
		const char *v = config_get_str(cfg, o->section, o->key, o->def);
		char **dst = (char **)((char *)&c + o->offset);

		if (v == NULL)
			continue;
		*dst = strdup(v);
		if (*dst == NULL) {
			snprintf(errbuf, errlen, "%s: out of memory", name);
			r = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < sizeof(long_opts) / sizeof(long_opts[0]); i++) {
		const struct long_opt *o = &long_opts[i];

		r = config_get_long(cfg, o->section, o->key, o->min, o->max, o->def,
			(long *)((char *)&c + o->offset), errbuf, errlen);
		if (r < 0)
			goto out;
	}
	r = config_get_bool(cfg, "server", "allow_http", false, &c.allow_http, errbuf, errlen);
	if (r < 0)
		goto out;
	r = config_get_bool(cfg, "wireguard", "remove_on_exit", true, &c.remove_on_exit, errbuf,
		errlen);
	if (r < 0)
		goto out;

	r = -EINVAL;
	backend = config_get_str(cfg, "wireguard", "backend", "kernel");
	if (strcmp(backend, "kernel") == 0) {
		c.backend = EKD_BACKEND_KERNEL;
	} else if (strcmp(backend, "userspace") == 0) {
		c.backend = EKD_BACKEND_USERSPACE;
	} else {
		snprintf(errbuf, errlen, "%s: 'wireguard.backend' must be kernel or userspace, not '%s'",
			name, backend);
		goto out;
	}
	if (c.state_dir[0] != '/') {
		snprintf(errbuf, errlen, "%s: 'device.state_dir' must be an absolute path, not '%s'",
			name, c.state_dir);
		goto out;
	}
	if (c.tcti[0] == '\0') {
		snprintf(errbuf, errlen, "%s: 'device.tcti' is empty", name);
		goto out;
	}
	if (tpm2_ek_type_parse(c.ek_type, &ek) < 0) {
		snprintf(errbuf, errlen, "%s: 'device.ek_type' must be rsa2048, p256 or p384, not '%s'",
			name, c.ek_type);
		goto out;
	}
	if (strcmp(c.ak_type, "ecc") != 0 && strcmp(c.ak_type, "rsa") != 0) {
		snprintf(errbuf, errlen, "%s: 'device.ak_type' must be ecc or rsa, not '%s'", name,
			c.ak_type);
		goto out;
	}
	if (c.pcr_policy != NULL && c.pcr_policy[0] == '\0') {
		free(c.pcr_policy);
		c.pcr_policy = NULL;
	}
	if (c.pcr_policy != NULL) {
		TPML_PCR_SELECTION sel;

		if (tpm2_pcr_selection_parse(c.pcr_policy, &sel) < 0 ||
			tpm2_pcr_selection_count(&sel) <= 0) {
			snprintf(errbuf, errlen,
				"%s: 'device.pcr_policy' must look like 'sha256:0,2,7', not '%s'", name,
				c.pcr_policy);
			goto out;
		}
	}
	if (c.label != NULL && (strlen(c.label) == 0 || strlen(c.label) > 63)) {
		snprintf(errbuf, errlen, "%s: 'device.label' must be 1 to 63 characters", name);
		goto out;
	}
	if (c.url != NULL) {
		bool https = strncmp(c.url, "https://", 8) == 0;
		bool http = strncmp(c.url, "http://", 7) == 0;

		if (!https && !(http && c.allow_http)) {
			snprintf(errbuf, errlen,
				"%s: 'server.url' must be an https:// URL%s, not '%s'", name,
				http ? " (plain http:// needs 'server.allow_http = yes')" : "", c.url);
			goto out;
		}
		n = strlen(c.url);
		while (n > 0 && c.url[n - 1] == '/')
			c.url[--n] = '\0';
		if (strlen(c.url) <= (https ? 8u : 7u) || strlen(c.url) > 200) {
			snprintf(errbuf, errlen, "%s: 'server.url' has no host or is too long", name);
			goto out;
		}
	}
	if (c.tenant != NULL && !tenant_valid(c.tenant)) {
		snprintf(errbuf, errlen,
			"%s: 'server.tenant' must be 1 to 63 of A-Z a-z 0-9 . _ -, not '%s'", name,
			c.tenant);
		goto out;
	}
	if (!ifname_valid(c.ifname)) {
		snprintf(errbuf, errlen,
			"%s: 'wireguard.interface' must be a valid interface name (1 to 15 "
			"characters, no '/', ':' or spaces), not '%s'",
			name, c.ifname);
		goto out;
	}
	if (c.uapi_dir[0] != '/') {
		snprintf(errbuf, errlen, "%s: 'wireguard.uapi_dir' must be an absolute path", name);
		goto out;
	}
	r = 0;
	*ret = c;
	memset(&c, 0, sizeof(c));
out:
	ekd_conf_clear(&c);
	return r;
}

int
ekd_conf_load(struct ekd_conf *ret, const char *path, char *errbuf, size_t errlen)
{
	struct config *cfg = NULL;
	int r;

	r = config_load(&cfg, path, errbuf, errlen);
	if (r < 0)
		return r;
	r = conf_from_config(ret, cfg, path, errbuf, errlen);
	config_free(cfg);
	return r;
}

int
ekd_conf_parse(struct ekd_conf *ret, const char *text, const char *name, char *errbuf,
	size_t errlen)
{
	struct config *cfg = NULL;
	int r;

	r = config_parse_string(&cfg, text, name, errbuf, errlen);
	if (r < 0)
		return r;
	r = conf_from_config(ret, cfg, name, errbuf, errlen);
	config_free(cfg);
	return r;
}

int
ekd_conf_require_server(const struct ekd_conf *conf, char *errbuf, size_t errlen)
{
	if (conf->url == NULL) {
		snprintf(errbuf, errlen, "'server.url' is not set: where is the control plane?");
		return -EINVAL;
	}
	if (strncmp(conf->url, "https://", 8) == 0 && conf->ca_file == NULL) {
		snprintf(errbuf, errlen,
			"'server.ca_file' is not set: the control plane's CA must be pinned");
		return -EINVAL;
	}
	return 0;
}

int
ekd_read_token(const char *path, char buf[static EKD_TOKEN_MAX], char *errbuf, size_t errlen)
{
	char tmp[EKD_TOKEN_MAX + 2];
	ssize_t n;
	int r;

	n = config_read_secret(path, tmp, sizeof(tmp));
	if (n == -EPERM) {
		snprintf(errbuf, errlen,
			"token file '%s' is readable or writable by group or others: chmod 0600 it "
			"(or 0640 with the group of edge-keyd's user, when the daemon reads it)", path);
		return (int)n;
	}
	if (n < 0 && n != -EMSGSIZE && n != -ENODATA) {
		snprintf(errbuf, errlen, "token file '%s': %s", path, strerror((int)-n));
		return (int)n;
	}
	r = -EINVAL;
	if (n <= 0 || n >= EKD_TOKEN_MAX) {
		snprintf(errbuf, errlen, "token file '%s' must hold one token of 1 to %d characters",
			path, EKD_TOKEN_MAX - 1);
		goto out;
	}
	for (ssize_t i = 0; i < n; i++) {
		if (tmp[i] <= ' ' || tmp[i] == 0x7f) {
			snprintf(errbuf, errlen,
				"token file '%s' holds a space or control character: one token, one line",
				path);
			goto out;
		}
	}
	memcpy(buf, tmp, n + 1);
	r = 0;
out:
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return r;
}
