// SPDX-License-Identifier: MIT
/*
 * Where enrollctl's server URL, token and CA come from, first found wins:
 *   1. flags: --url, --token-file, --ca (never the token itself: argv shows in ps)
 *   2. the environment: ENROLLCTL_URL, ENROLLCTL_TOKEN, ENROLLCTL_CA
 *   3. a config file: --config FILE, else $XDG_CONFIG_HOME/enrollctl.conf
 *      (~/.config/enrollctl.conf), else /etc/enrollctl.conf; section [enrollctl], keys
 *      url, token, token_file, ca. It holds the token, so it is refused if group or
 *      others may read it.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "common/config.h"
#include "common/log.h"
#include "enrollctl/enrollctl.h"

static const char *const conf_known[] = {
	"enrollctl.url",
	"enrollctl.token",
	"enrollctl.token_file",
	"enrollctl.ca",
	NULL,
};

int
ctl_read_secret(const char *path, char *buf, size_t len)
{
	ssize_t n = config_read_secret(path, buf, len);

	if (n < 0)
		return (int)n;
	/* One line: the token; what follows it is not part of it. */
	buf[strcspn(buf, "\r\n")] = '\0';
	return 0;
}

/* The first default config file that exists, into @buf; -ENOENT if none. */
static int
default_config(char *buf, size_t len)
{
	const char *xdg = getenv("XDG_CONFIG_HOME"), *home = getenv("HOME");

	if (xdg != NULL && xdg[0] == '/')
		snprintf(buf, len, "%s/enrollctl.conf", xdg);
	else if (home != NULL && home[0] == '/')
		snprintf(buf, len, "%s/.config/enrollctl.conf", home);
	else
		buf[0] = '\0';
	if (buf[0] != '\0' && access(buf, F_OK) == 0)
		return 0;
	snprintf(buf, len, "/etc/enrollctl.conf");
	return access(buf, F_OK) == 0 ? 0 : -ENOENT;
}

static int
copy(char *dst, size_t len, const char *src, const char *what)
{
	if (snprintf(dst, len, "%s", src) >= (int)len) {
		log_warnx("enrollctl: %s too long", what);
		return -ENAMETOOLONG;
	}
	return 0;
}

/* Fill what is still empty in @ctl from the config file @path. */
static int
from_config(struct ctl *ctl, const char *path)
{
	struct config *cfg = NULL;
	const char *v;
	char err[512];
	int r;

	r = config_check_secret_file(path);
	if (r == -EPERM) {
		log_warnx("enrollctl: '%s' holds the token: it must not be readable by group or "
			  "others (chmod 600)",
			path);
		return r;
	}
	if (r < 0) {
		log_warnx("enrollctl: config '%s': %s", path, strerror(-r));
		return r;
	}
	r = config_load(&cfg, path, err, sizeof(err));
	if (r < 0 || (r = config_check_known(cfg, conf_known, err, sizeof(err))) < 0) {
		log_warnx("enrollctl: %s", err);
		goto out;
	}
	if (ctl->url[0] == '\0' && (v = config_get(cfg, "enrollctl", "url")) != NULL &&
		(r = copy(ctl->url, sizeof(ctl->url), v, "url")) < 0)
		goto out;
	if (ctl->ca_file[0] == '\0' && (v = config_get(cfg, "enrollctl", "ca")) != NULL &&
		(r = copy(ctl->ca_file, sizeof(ctl->ca_file), v, "ca")) < 0)
		goto out;
	if (ctl->token[0] == '\0') {
		if (config_get(cfg, "enrollctl", "token") != NULL &&
			config_get(cfg, "enrollctl", "token_file") != NULL) {
			log_warnx(
				"enrollctl: %s: 'token' and 'token_file' exclude each other", path);
			r = -EINVAL;
			goto out;
		}
		if ((v = config_get(cfg, "enrollctl", "token")) != NULL &&
			(r = copy(ctl->token, sizeof(ctl->token), v, "token")) < 0)
			goto out;
		if ((v = config_get(cfg, "enrollctl", "token_file")) != NULL &&
			(r = ctl_read_secret(v, ctl->token, sizeof(ctl->token))) < 0) {
			log_warnx("enrollctl: token file '%s': %s", v,
				r == -EPERM ? "readable by group or others (chmod 600)"
					    : strerror(-r));
			goto out;
		}
	}
	r = 0;
out:
	config_free(cfg);
	return r;
}

/* http:// only to this machine: the token must not cross a network in clear. */
static int
check_url(struct ctl *ctl)
{
	CURLU *u = curl_url();
	char *scheme = NULL, *host = NULL;
	int r = -EINVAL;

	if (u == NULL)
		return -ENOMEM;
	if (curl_url_set(u, CURLUPART_URL, ctl->url, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
		curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		log_warnx("enrollctl: '%s' is not a URL", ctl->url);
		goto out;
	}
	if (strcmp(scheme, "http") == 0) {
		if (strcmp(host, "127.0.0.1") != 0 && strcmp(host, "[::1]") != 0 &&
			strcmp(host, "localhost") != 0) {
			log_warnx("enrollctl: '%s': http:// only to this machine (127.0.0.1, "
				  "[::1], localhost); use https://",
				ctl->url);
			goto out;
		}
		ctl->copts.allow_http = true;
	} else if (strcmp(scheme, "https") != 0) {
		log_warnx("enrollctl: '%s': only https:// (or http:// to this machine)", ctl->url);
		goto out;
	}
	/* paths are appended to it */
	while (ctl->url[0] != '\0' && ctl->url[strlen(ctl->url) - 1] == '/')
		ctl->url[strlen(ctl->url) - 1] = '\0';
	r = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return r;
}

int
ctl_setup(struct ctl *ctl, const struct ctl_setup_in *in)
{
	const char *v;
	char path[1024];
	int r;

	if (in->url != NULL && (r = copy(ctl->url, sizeof(ctl->url), in->url, "--url")) < 0)
		return r;
	if (in->ca_file != NULL &&
		(r = copy(ctl->ca_file, sizeof(ctl->ca_file), in->ca_file, "--ca")) < 0)
		return r;
	if (in->token_file != NULL) {
		r = ctl_read_secret(in->token_file, ctl->token, sizeof(ctl->token));
		if (r < 0) {
			log_warnx("enrollctl: --token-file '%s': %s", in->token_file,
				r == -EPERM	? "readable by group or others (chmod 600)"
				: r == -ENODATA ? "empty"
						: strerror(-r));
			return r;
		}
	}
	if (ctl->url[0] == '\0' && (v = getenv("ENROLLCTL_URL")) != NULL && v[0] != '\0' &&
		(r = copy(ctl->url, sizeof(ctl->url), v, "ENROLLCTL_URL")) < 0)
		return r;
	if (ctl->ca_file[0] == '\0' && (v = getenv("ENROLLCTL_CA")) != NULL && v[0] != '\0' &&
		(r = copy(ctl->ca_file, sizeof(ctl->ca_file), v, "ENROLLCTL_CA")) < 0)
		return r;
	if (ctl->token[0] == '\0' && (v = getenv("ENROLLCTL_TOKEN")) != NULL && v[0] != '\0' &&
		(r = copy(ctl->token, sizeof(ctl->token), v, "ENROLLCTL_TOKEN")) < 0)
		return r;

	/* An explicit config is always read; a default one only for what is still missing. */
	if (in->config != NULL) {
		r = from_config(ctl, in->config);
		if (r < 0)
			return r;
	} else if ((ctl->url[0] == '\0' || ctl->token[0] == '\0') &&
		   default_config(path, sizeof(path)) == 0) {
		r = from_config(ctl, path);
		if (r < 0)
			return r;
	}

	if (ctl->url[0] == '\0') {
		log_warnx("enrollctl: no server URL: --url, ENROLLCTL_URL or 'url' in the config");
		return -EINVAL;
	}
	r = check_url(ctl);
	if (r < 0)
		return r;
	if (ctl->ca_file[0] != '\0') {
		if (access(ctl->ca_file, R_OK) < 0) {
			r = -errno;
			log_warnx("enrollctl: CA '%s': %s", ctl->ca_file, strerror(errno));
			return r;
		}
		ctl->copts.ca_file = ctl->ca_file;
	}
	/* No token is fine for /healthz-like calls; the server answers 401 where one is needed. */
	ctl->copts.bearer = ctl->token[0] != '\0' ? ctl->token : NULL;
	ctl->copts.timeout_sec = 30;
	return 0;
}

void
ctl_teardown(struct ctl *ctl)
{
	OPENSSL_cleanse(ctl->token, sizeof(ctl->token));
}
