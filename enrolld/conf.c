// SPDX-License-Identifier: MIT
/* enrolld's configuration file: INI, every key known, every value checked. */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/config.h"
#include "common/log.h"
#include "enrolld/enrolld.h"

static const char *const conf_known[] = {
	"server.listen",
	"server.port",
	"server.unix_socket",
	"server.tls_cert",
	"server.tls_key",
	"server.max_body",
	"server.max_connections",
	"server.max_connections_per_ip",
	"server.threads",
	"server.header_timeout",
	"server.connection_timeout",
	"server.body_timeout",
	"server.user",
	"state.db_path",
	"state.key_dir",
	"state.max_size_mib",
	"state.backend",
	"state.postgresql",
	"state.kek_file",
	"auth.admin_token_file",
	"auth.provisioning_token_file",
	"auth.tenant_tokens_dir",
	"attestation.ek_ca_dir",
	"attestation.session_ttl",
	"attestation.crl_dir",
	"attestation.max_sessions",
	"ratelimit.per_source_rate",
	"ratelimit.per_source_burst",
	"ratelimit.global_rate",
	"ratelimit.global_burst",
	"ratelimit.sources",
	"ratelimit.ipv6_prefix",
	"wireguard.backend",
	"wireguard.wireguard_go",
	"wireguard.uapi_dir",
	"wireguard.reconcile_interval",
	"wireguard.vrf",
	"wireguard.vrf_table_base",
	"wireguard.nftables",
	"wireguard.nft",
	"wireguard.tenant_address_space",
	"health.interval",
	"health.default_keepalive",
	"cluster.enabled",
	"cluster.node",
	"cluster.lease_ms",
	"cluster.margin_ms",
	"cluster.tick_ms",
	"cluster.endpoint_hook",
	"cluster.revoke_wait_ms",
	NULL,
};

static int
dup_opt(char **dst, const struct config *cfg, const char *section, const char *key,
	const char *def)
{
	const char *v = config_get_str(cfg, section, key, def);

	*dst = NULL;
	if (v == NULL)
		return 0;
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

void
conf_clear(struct enrolld_conf *conf)
{
	if (conf == NULL)
		return;
	free(conf->listen);
	free(conf->unix_socket);
	free(conf->tls_cert);
	free(conf->tls_key);
	free(conf->user);
	free(conf->db_path);
	free(conf->key_dir);
	if (conf->pg_conninfo != NULL) /* may hold a password */
		explicit_bzero(conf->pg_conninfo, strlen(conf->pg_conninfo));
	free(conf->pg_conninfo);
	free(conf->kek_file);
	free(conf->node_name);
	free(conf->endpoint_hook);
	free(conf->admin_token_file);
	free(conf->provisioning_token_file);
	free(conf->tenant_tokens_dir);
	free(conf->ek_ca_dir);
	free(conf->crl_dir);
	free(conf->wireguard_go);
	free(conf->uapi_dir);
	free(conf->nft);
	memset(conf, 0, sizeof(*conf));
}

/* wireguard.tenant_address_space: prefixes separated by blanks or commas, 1 to 16 of them */
static int
parse_space(const char *v, struct enrolld_conf *c, const char *path, char *errbuf, size_t errlen)
{
	char buf[1024], *save = NULL, *tok;

	if (strlen(v) >= sizeof(buf)) {
		snprintf(errbuf, errlen, "%s: wireguard.tenant_address_space is too long", path);
		return -EINVAL;
	}
	strcpy(buf, v);
	c->n_tenant_space = 0;
	for (tok = strtok_r(buf, " ,\t", &save); tok != NULL; tok = strtok_r(NULL, " ,\t", &save)) {
		if (c->n_tenant_space == ENROLLD_SPACE_MAX) {
			snprintf(errbuf, errlen,
				"%s: wireguard.tenant_address_space: at most %d prefixes", path,
				ENROLLD_SPACE_MAX);
			return -EINVAL;
		}
		if (addr_prefix_parse(&c->tenant_space[c->n_tenant_space], tok) < 0) {
			snprintf(errbuf, errlen,
				"%s: wireguard.tenant_address_space: '%s' is not a prefix (CIDR)",
				path, tok);
			return -EINVAL;
		}
		c->n_tenant_space++;
	}
	if (c->n_tenant_space == 0) {
		snprintf(errbuf, errlen, "%s: wireguard.tenant_address_space is empty", path);
		return -EINVAL;
	}
	return 0;
}

/* [cluster]: what a node needs, and a name for it (the host's by default). */
static int
check_cluster(struct enrolld_conf *c, const char *path, char *errbuf, size_t errlen)
{
	char host[256];

	if (c->store_backend != STORE_BACKEND_POSTGRESQL) {
		snprintf(errbuf, errlen, "%s: cluster.enabled needs state.backend = postgresql "
			"(the nodes share one database)", path);
		return -EINVAL;
	}
	if (c->user != NULL) {
		snprintf(errbuf, errlen, "%s: cluster.enabled does not work with server.user "
			"(privilege separation) yet; see docs/cluster.md", path);
		return -EINVAL;
	}
	if (c->margin_ms >= c->lease_ms || c->tick_ms * 3 > c->lease_ms) {
		snprintf(errbuf, errlen, "%s: cluster: margin_ms must be below lease_ms and tick_ms "
			"at most a third of it (lease %ld, margin %ld, tick %ld)", path, c->lease_ms,
			c->margin_ms, c->tick_ms);
		return -EINVAL;
	}
	if (c->endpoint_hook != NULL && c->endpoint_hook[0] != '/') {
		snprintf(errbuf, errlen, "%s: cluster.endpoint_hook must be an absolute path", path);
		return -EINVAL;
	}
	if (c->revoke_wait_ms == 0)
		c->revoke_wait_ms = 2 * c->lease_ms;
	if (c->node_name == NULL) {
		if (gethostname(host, sizeof(host)) < 0)
			snprintf(host, sizeof(host), "node");
		host[sizeof(host) - 1] = '\0';
		c->node_name = strdup(host);
		if (c->node_name == NULL)
			return -ENOMEM;
	}
	if (c->node_name[0] == '\0' || strlen(c->node_name) > 63) {
		snprintf(errbuf, errlen, "%s: cluster.node must be 1 to 63 characters", path);
		return -EINVAL;
	}
	return 0;
}

struct long_opt {
	const char *section, *key;
	long min, max, def;
	size_t offset;
};

#define LOPT(s, k, mn, mx, d, field) { s, k, mn, mx, d, offsetof(struct enrolld_conf, field) }

static const struct long_opt long_opts[] = {
	LOPT("server", "max_body", 1024, 16 << 20, 64 << 10, max_body),
	LOPT("server", "max_connections", 1, 65536, 1024, max_connections),
	LOPT("server", "max_connections_per_ip", 0, 65536, 64, max_connections_per_ip),
	LOPT("server", "threads", 1, 64, 4, threads),
	LOPT("server", "header_timeout", 1, 600, 10, header_timeout),
	LOPT("server", "connection_timeout", 1, 3600, 30, conn_timeout),
	LOPT("server", "body_timeout", 1, 600, 30, body_timeout),
	/* the map starts at STORE_DEFAULT_MAP_SIZE (1 GiB) or this, whichever is smaller */
	LOPT("state", "max_size_mib", 1, 1L << 24, 65536, max_size_mib),
	LOPT("attestation", "session_ttl", 5, 3600, 60, session_ttl),
	/* the in-memory session table holds 65536 (api_enroll.c) */
	LOPT("attestation", "max_sessions", 1, 65536, 4096, max_sessions),
	/*
	 * Defaults: a site of a few hundred devices behind one NAT enrolling together, and the
	 * integration tests' devices on one loopback address, stay under them; one source costs
	 * at most ~a tenth of a core of attestation cryptography, everyone together ~a core.
	 */
	LOPT("ratelimit", "per_source_rate", 0, 1000000, 100, rl_source_rate),
	LOPT("ratelimit", "per_source_burst", 1, 1000000, 1000, rl_source_burst),
	LOPT("ratelimit", "global_rate", 0, 1000000, 500, rl_global_rate),
	LOPT("ratelimit", "global_burst", 1, 1000000, 2000, rl_global_burst),
	LOPT("ratelimit", "sources", 64, 1L << 22, 16384, rl_sources),
	LOPT("ratelimit", "ipv6_prefix", 1, 128, 64, rl_ipv6_prefix),
	LOPT("wireguard", "reconcile_interval", 1, 86400, 30, reconcile_interval),
	LOPT("wireguard", "vrf_table_base", 1, 0x7fff0000L, 100000, vrf_table_base),
	LOPT("health", "interval", 1, 3600, 5, health_interval),
	LOPT("health", "default_keepalive", 1, 3600, 25, default_keepalive),
	/* docs/cluster.md: failover takes about lease + tick; margin is what a down() may take */
	LOPT("cluster", "lease_ms", 300, 600000, 5000, lease_ms),
	LOPT("cluster", "margin_ms", 50, 300000, 1500, margin_ms),
	LOPT("cluster", "tick_ms", 50, 200000, 1000, tick_ms),
	/* 0: twice the lease (by then an owner that cannot apply has lost the tenant) */
	LOPT("cluster", "revoke_wait_ms", 0, 600000, 0, revoke_wait_ms),
};

/*
 * Load @path into @ret. On failure @ret is untouched and @errbuf says what is wrong,
 * with the file and line, in words an operator can act on.
 */
int
conf_load(struct enrolld_conf *ret, const char *path, char *errbuf, size_t errlen)
{
	struct enrolld_conf c = { 0 };
	struct config *cfg = NULL;
	const char *backend;
	long port;
	int r;

	r = config_load(&cfg, path, errbuf, errlen);
	if (r < 0)
		return r;
	r = config_check_known(cfg, conf_known, errbuf, errlen);
	if (r < 0)
		goto out;

	r = config_get_long(cfg, "server", "port", 0, 65535, 8443, &port, errbuf, errlen);
	if (r < 0)
		goto out;
	c.port = (uint16_t)port;
	for (size_t i = 0; i < sizeof(long_opts) / sizeof(long_opts[0]); i++) {
		const struct long_opt *o = &long_opts[i];

		r = config_get_long(cfg, o->section, o->key, o->min, o->max, o->def,
			(long *)((char *)&c + o->offset), errbuf, errlen);
		if (r < 0)
			goto out;
	}
	r = config_get_bool(cfg, "wireguard", "vrf", true, &c.vrf, errbuf, errlen);
	if (r < 0)
		goto out;
	r = config_get_bool(cfg, "wireguard", "nftables", true, &c.nftables, errbuf, errlen);
	if (r < 0)
		goto out;
	r = config_get_bool(cfg, "cluster", "enabled", false, &c.cluster, errbuf, errlen);
	if (r < 0)
		goto out;

	r = -ENOMEM;
	if (dup_opt(&c.listen, cfg, "server", "listen", "127.0.0.1") < 0 ||
		dup_opt(&c.unix_socket, cfg, "server", "unix_socket", NULL) < 0 ||
		dup_opt(&c.tls_cert, cfg, "server", "tls_cert", NULL) < 0 ||
		dup_opt(&c.tls_key, cfg, "server", "tls_key", NULL) < 0 ||
		dup_opt(&c.user, cfg, "server", "user", NULL) < 0 ||
		dup_opt(&c.db_path, cfg, "state", "db_path", "/var/lib/enrolld") < 0 ||
		dup_opt(&c.key_dir, cfg, "state", "key_dir", NULL) < 0 ||
		dup_opt(&c.pg_conninfo, cfg, "state", "postgresql", NULL) < 0 ||
		dup_opt(&c.kek_file, cfg, "state", "kek_file", NULL) < 0 ||
		dup_opt(&c.admin_token_file, cfg, "auth", "admin_token_file", NULL) < 0 ||
		dup_opt(&c.provisioning_token_file, cfg, "auth", "provisioning_token_file", NULL) < 0 ||
		dup_opt(&c.tenant_tokens_dir, cfg, "auth", "tenant_tokens_dir", NULL) < 0 ||
		dup_opt(&c.ek_ca_dir, cfg, "attestation", "ek_ca_dir", NULL) < 0 ||
		dup_opt(&c.crl_dir, cfg, "attestation", "crl_dir", NULL) < 0 ||
		dup_opt(&c.wireguard_go, cfg, "wireguard", "wireguard_go", "wireguard-go") < 0 ||
		dup_opt(&c.uapi_dir, cfg, "wireguard", "uapi_dir", "/var/run/wireguard") < 0 ||
		dup_opt(&c.nft, cfg, "wireguard", "nft", "nft") < 0 ||
		dup_opt(&c.node_name, cfg, "cluster", "node", NULL) < 0 ||
		dup_opt(&c.endpoint_hook, cfg, "cluster", "endpoint_hook", NULL) < 0) {
		snprintf(errbuf, errlen, "%s: out of memory", path);
		goto out;
	}
	if (c.key_dir == NULL) {
		if (asprintf(&c.key_dir, "%s/keys", c.db_path) < 0) {
			c.key_dir = NULL;
			snprintf(errbuf, errlen, "%s: out of memory", path);
			goto out;
		}
	}

	r = -EINVAL;
	backend = config_get_str(cfg, "wireguard", "backend", "kernel");
	if (strcmp(backend, "kernel") == 0) {
		c.wg_backend = ENROLLD_WG_KERNEL;
	} else if (strcmp(backend, "userspace") == 0) {
		c.wg_backend = ENROLLD_WG_USERSPACE;
	} else {
		snprintf(errbuf, errlen,
			"%s: wireguard.backend must be 'kernel' or 'userspace', not '%s'", path,
			backend);
		goto out;
	}
	backend = config_get_str(cfg, "state", "backend", "lmdb");
	if (strcmp(backend, "lmdb") == 0) {
		c.store_backend = STORE_BACKEND_LMDB;
	} else if (strcmp(backend, "postgresql") == 0) {
		c.store_backend = STORE_BACKEND_POSTGRESQL;
	} else {
		snprintf(errbuf, errlen, "%s: state.backend must be 'lmdb' or 'postgresql', not '%s'",
			path, backend);
		goto out;
	}
	if (c.store_backend == STORE_BACKEND_POSTGRESQL &&
	    (c.pg_conninfo == NULL || c.pg_conninfo[0] == '\0' || c.kek_file == NULL)) {
		snprintf(errbuf, errlen, "%s: state.backend = postgresql needs state.postgresql (a "
			"libpq connection string) and state.kek_file", path);
		goto out;
	}
	if (c.kek_file != NULL && c.kek_file[0] != '/') {
		snprintf(errbuf, errlen, "%s: state.kek_file must be an absolute path", path);
		goto out;
	}
	if (parse_space(config_get_str(cfg, "wireguard", "tenant_address_space",
				ENROLLD_SPACE_DEFAULT), &c, path, errbuf, errlen) < 0)
		goto out;
	if ((c.tls_cert == NULL) != (c.tls_key == NULL)) {
		snprintf(errbuf, errlen, "%s: server.tls_cert and server.tls_key go together", path);
		goto out;
	}
	/*
	 * Plain HTTP only where a terminator sits in front: loopback or a unix socket.
	 * Anything else would send tokens in clear text over a network.
	 */
	if (c.tls_cert == NULL && c.unix_socket == NULL && strcmp(c.listen, "127.0.0.1") != 0 &&
		strcmp(c.listen, "::1") != 0 && strcmp(c.listen, "localhost") != 0) {
		snprintf(errbuf, errlen,
			"%s: plain HTTP may only listen on loopback or a unix socket; set "
			"server.tls_cert and server.tls_key to listen on '%s'",
			path, c.listen);
		goto out;
	}
	if (c.admin_token_file == NULL) {
		snprintf(errbuf, errlen, "%s: auth.admin_token_file is required", path);
		goto out;
	}
	if (c.user != NULL && (c.user[0] == '\0' || strcmp(c.user, "root") == 0)) {
		snprintf(errbuf, errlen,
			"%s: server.user must name an unprivileged user (privilege separation)",
			path);
		goto out;
	}
	if (c.cluster && check_cluster(&c, path, errbuf, errlen) < 0)
		goto out;
	if (c.db_path[0] != '/' || c.key_dir[0] != '/') {
		snprintf(errbuf, errlen, "%s: state.db_path and state.key_dir must be absolute paths",
			path);
		goto out;
	}
	r = 0;
	*ret = c;
	memset(&c, 0, sizeof(c));
out:
	conf_clear(&c);
	config_free(cfg);
	return r;
}

int
conf_read_kek(const char *path, uint8_t ret[static STORE_KEK_LEN])
{
	char buf[2 * STORE_KEK_LEN + 2];
	ssize_t n;
	int r = -EINVAL;

	n = config_read_secret(path, buf, sizeof(buf));
	if (n < 0) {
		log_warnx("state.kek_file '%s': %s", path, strerror((int)-n));
		return (int)n;
	}
	if (n != 2 * STORE_KEK_LEN)
		goto out;
	for (size_t i = 0; i < STORE_KEK_LEN; i++) {
		unsigned int v;

		if (sscanf(buf + 2 * i, "%2x", &v) != 1 || !isxdigit((unsigned char)buf[2 * i]) ||
		    !isxdigit((unsigned char)buf[2 * i + 1]))
			goto out;
		ret[i] = (uint8_t)v;
	}
	r = 0;
out:
	if (r < 0)
		log_warnx("state.kek_file '%s': not 64 hex digits (32 bytes)", path);
	OPENSSL_cleanse(buf, sizeof(buf));
	return r;
}
