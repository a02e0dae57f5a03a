// SPDX-License-Identifier: MIT
/*
 * enrolld: the enrollment and fleet control-plane service.
 *
 * This file is the daemon's shell: options, configuration, tokens, signals, the HTTP
 * server's life cycle. The API itself lives in api_*.c.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/config.h"
#include "common/log.h"
#include "common/secmem.h"
#include "enrolld/enrolld.h"

#define TOKEN_MAX 256

struct enrolld {
	struct enrolld_conf conf;
	char admin_token[TOKEN_MAX];
	char provisioning_token[TOKEN_MAX];
	char *tls_cert_pem;
	char *tls_key_pem;
	struct http_server *http;
};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: enrolld [-dnv] [-c file]\n"
		"\n"
		"The enrollment and fleet control-plane service.\n"
		"\n"
		"  -c, --config FILE  configuration file (default %s)\n"
		"  -d, --foreground   stay in the foreground, log to stderr\n"
		"  -n, --check        check the configuration and exit\n"
		"  -v, --verbose      log debug messages\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n"
		"      --routes       print the API's routes (METHOD PATH) and exit\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the token files.\n"
		"See docs/operations.md for the configuration reference.\n",
		ENROLLD_DEFAULT_CONF);
}

/* Read a secret token file (mode 0600 or stricter) into @buf, trailing newline removed. */
static int
read_token_file(const char *path, char buf[static TOKEN_MAX])
{
	char tmp[TOKEN_MAX + 2];
	size_t n;
	FILE *f;
	int r;

	r = config_check_secret_file(path);
	if (r == -EPERM) {
		log_warnx("token file '%s' is readable or writable by group or others; "
			  "chmod 600 it",
			path);
		return r;
	}
	if (r < 0) {
		log_warnx("token file '%s': %s", path, strerror(-r));
		return r;
	}
	f = fopen(path, "re");
	if (f == NULL) {
		r = -errno;
		log_warn("token file '%s'", path);
		return r;
	}
	n = fread(tmp, 1, sizeof(tmp) - 1, f);
	fclose(f);
	tmp[n] = '\0';
	tmp[strcspn(tmp, "\r\n")] = '\0';
	if (strlen(tmp) < 16 || strlen(tmp) >= TOKEN_MAX) {
		log_warnx("token file '%s': a token must be 16 to %d characters", path,
			TOKEN_MAX - 1);
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return -EINVAL;
	}
	memcpy(buf, tmp, TOKEN_MAX);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

static int
load_tokens(struct enrolld *e)
{
	char admin[TOKEN_MAX] = "", prov[TOKEN_MAX] = "";
	int r;

	r = read_token_file(e->conf.admin_token_file, admin);
	if (r < 0)
		goto out;
	if (e->conf.provisioning_token_file != NULL) {
		r = read_token_file(e->conf.provisioning_token_file, prov);
		if (r < 0)
			goto out;
	}
	memcpy(e->admin_token, admin, TOKEN_MAX);
	memcpy(e->provisioning_token, prov, TOKEN_MAX);
out:
	OPENSSL_cleanse(admin, sizeof(admin));
	OPENSSL_cleanse(prov, sizeof(prov));
	return r;
}

static bool
token_equal(const char *a, const char *presented)
{
	size_t la = strlen(a);

	return la > 0 && strlen(presented) == la && CRYPTO_memcmp(a, presented, la) == 0;
}

static int
authenticate(void *ctx, const char *token, unsigned int *ret_role, char *ret_tenant,
	size_t tenant_len)
{
	struct enrolld *e = ctx;

	if (token_equal(e->admin_token, token)) {
		*ret_role = HTTP_AUTH_ADMIN;
		return 0;
	}
	if (token_equal(e->provisioning_token, token)) {
		*ret_role = HTTP_AUTH_PROVISION;
		return 0;
	}
	return -EACCES;
}

static int
api_healthz(struct http_request *req, json_t **ret_body, void *ctx)
{
	*ret_body = json_pack("{s:s}", "status", "ok");
	return *ret_body ? 200 : -ENOMEM;
}

static int
api_metrics(struct http_request *req, char **ret_text, const char **ret_ctype, void *ctx)
{
	*ret_text = metrics_render();
	*ret_ctype = "text/plain; version=0.0.4; charset=utf-8";
	return *ret_text ? 200 : -ENOMEM;
}

#define ANYONE (HTTP_AUTH_NONE | HTTP_AUTH_ADMIN | HTTP_AUTH_TENANT | HTTP_AUTH_PROVISION)

static const struct http_route routes[] = {
	{ "GET", "/healthz", api_healthz, ANYONE, NULL },
	{ "GET", "/metrics", NULL, ANYONE, api_metrics },
};

static char *
read_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "re");
	char chunk[4096];
	size_t n;

	if (f == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		char *nb = realloc(buf, len + n + 1);

		if (nb == NULL) {
			free(buf);
			fclose(f);
			return NULL;
		}
		buf = nb;
		memcpy(buf + len, chunk, n);
		len += n;
		buf[len] = '\0';
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	fclose(f);
	return buf;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'd' },
		{ "check", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "routes", no_argument, NULL, 'R' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf_path = ENROLLD_DEFAULT_CONF;
	struct http_config hc = { 0 };
	struct enrolld e = { 0 };
	int foreground = 0, check = 0, verbose = 0, ch, sig, r;
	char err[512];
	sigset_t set;

	while ((ch = getopt_long(argc, argv, "c:dnvhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'd':
			foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("enrolld %s\n", ENROLLD_VERSION);
			return 0;
		case 'R':
			/* docs/openapi.json is checked against this by a test */
			for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
				printf("%s %s\n", routes[i].method, routes[i].pattern);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	log_init(foreground || check, "enrolld");
	log_setverbose(verbose);

	if (conf_load(&e.conf, conf_path, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (load_tokens(&e) < 0)
		fatalx("%s: cannot load the tokens", conf_path);
	if (e.conf.tls_cert != NULL) {
		e.tls_cert_pem = read_file(e.conf.tls_cert);
		if (e.tls_cert_pem == NULL)
			fatal("TLS certificate '%s'", e.conf.tls_cert);
		if (config_check_secret_file(e.conf.tls_key) < 0)
			fatalx("TLS key '%s' must be a regular file of mode 0600", e.conf.tls_key);
		e.tls_key_pem = read_file(e.conf.tls_key);
		if (e.tls_key_pem == NULL)
			fatal("TLS key '%s'", e.conf.tls_key);
	}
	if (check) {
		printf("configuration OK\n");
		r = 0;
		goto out;
	}

	r = secmem_harden_process();
	if (r < 0)
		fatalx("cannot harden the process: %s", strerror(-r));

	/* Signals are taken synchronously by the main thread; every other thread blocks them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	hc.listen = e.conf.listen;
	hc.port = e.conf.port;
	hc.unix_socket = e.conf.unix_socket;
	hc.tls_cert_pem = e.tls_cert_pem;
	hc.tls_key_pem = e.tls_key_pem;
	hc.max_body = (size_t)e.conf.max_body;
	hc.max_connections = (unsigned int)e.conf.max_connections;
	hc.conn_timeout = (unsigned int)e.conf.conn_timeout;
	hc.routes = routes;
	hc.n_routes = sizeof(routes) / sizeof(routes[0]);
	hc.ctx = &e;
	hc.authenticate = authenticate;

	r = http_server_start(&e.http, &hc);
	if (r < 0)
		fatalx("cannot listen on %s: %s",
			e.conf.unix_socket ? e.conf.unix_socket : e.conf.listen, strerror(-r));
	if (e.conf.unix_socket)
		log_info("listening on unix socket '%s'", e.conf.unix_socket);
	else
		log_info("listening on %s port %u (%s)", e.conf.listen, http_server_port(e.http),
			e.tls_cert_pem ? "https" : "http");

	for (;;) {
		if (sigwait(&set, &sig) != 0)
			continue;
		if (sig == SIGHUP) {
			if (load_tokens(&e) == 0)
				log_info("SIGHUP: tokens reloaded");
			else
				log_warnx("SIGHUP: reload failed, keeping the previous tokens");
			continue;
		}
		log_info("signal %d: shutting down", sig);
		break;
	}
	http_server_stop(e.http);
	r = 0;
out:
	OPENSSL_cleanse(e.admin_token, sizeof(e.admin_token));
	OPENSSL_cleanse(e.provisioning_token, sizeof(e.provisioning_token));
	if (e.tls_key_pem != NULL) {
		OPENSSL_cleanse(e.tls_key_pem, strlen(e.tls_key_pem));
		free(e.tls_key_pem);
	}
	free(e.tls_cert_pem);
	conf_clear(&e.conf);
	return r;
}
