// SPDX-License-Identifier: MIT
/* One API call, the server's refusals, and JSON turned into tables. */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "enrollctl/enrollctl.h"

int
ctl_escape(const char *s, char *buf, size_t len)
{
	static const char hex[] = "0123456789ABCDEF";
	size_t o = 0;

	for (; *s != '\0'; s++) {
		unsigned char c = (unsigned char)*s;
		bool plain = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
			     (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';

		if (o + (plain ? 1 : 3) >= len)
			return -ENAMETOOLONG;
		if (plain) {
			buf[o++] = (char)c;
		} else {
			buf[o++] = '%';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 15];
		}
	}
	buf[o] = '\0';
	return 0;
}

int
ctl_path(char *buf, size_t len, const char *prefix, const char *seg, const char *suffix)
{
	char esc[256];
	int r;

	r = ctl_escape(seg, esc, sizeof(esc));
	if (r < 0)
		return r;
	if (snprintf(buf, len, "%s%s%s", prefix, esc, suffix) >= (int)len)
		return -ENAMETOOLONG;
	return 0;
}

void
ctl_print_json(struct ctl *ctl, const json_t *j)
{
	char *s = json_dumps(j, JSON_COMPACT | JSON_ENCODE_ANY);

	if (s != NULL) {
		fprintf(ctl->out, "%s\n", s);
		free(s);
	}
}

/*
 * The server said no: its code and message on stderr (and its JSON with --json), and when
 * it asked us to wait (429, 503 with Retry-After) for how long.
 */
static void
print_refusal(struct ctl *ctl, const char *method, const char *path, long status, const json_t *j,
	unsigned int retry_after)
{
	const json_t *err = json_object_get(j, "error");
	const char *code = json_string_value(json_object_get(err, "code"));
	const char *msg = json_string_value(json_object_get(err, "message"));

	if (ctl->json && j != NULL)
		ctl_print_json(ctl, j);
	if (code != NULL)
		log_warnx("enrollctl: %s %s: HTTP %ld %s: %s", method, path, status, code,
			msg ? msg : "");
	else
		log_warnx("enrollctl: %s %s: HTTP %ld (no error detail: is this enrolld?)", method,
			path, status);
	if (retry_after > 0)
		log_warnx("enrollctl: the server is busy: try again in %u s", retry_after);
}

int
ctl_call(struct ctl *ctl, const char *method, const char *path, json_t *body, json_t **ret)
{
	char url[CTL_URL_MAX + 1024], err[1024];
	struct client_opts o = ctl->copts;
	unsigned int retry_after = 0;
	json_t *j = NULL;
	long status = 0;
	int r;

	*ret = NULL;
	if (snprintf(url, sizeof(url), "%s%s", ctl->url, path) >= (int)sizeof(url)) {
		log_warnx("enrollctl: URL too long");
		return -ENAMETOOLONG;
	}
	o.ret_retry_after = &retry_after;
	r = client_request(&o, method, url, body, &status, &j, err, sizeof(err));
	/* a stream its reader ended, or (idle_is_end) that went quiet: its end */
	if (r < 0 && ctl->copts.on_data != NULL && status >= 200 && status < 300 &&
		(r == -ECANCELED || (r == -ETIMEDOUT && ctl->idle_is_end)))
		return 0;
	if (r < 0) {
		log_warnx("enrollctl: %s", err[0] ? err : strerror(-r));
		if (r == -EBADMSG && ctl->ca_file[0] != '\0')
			log_warnx("enrollctl: (the server's certificate does not chain to '%s')",
				ctl->ca_file);
		json_decref(j);
		return -ENOTCONN;
	}
	if (ctl->verbose)
		log_warnx("enrollctl: %s %s: HTTP %ld", method, url, status);
	if (status < 200 || status >= 300) {
		print_refusal(ctl, method, path, status, j, retry_after);
		json_decref(j);
		return -EREMOTEIO;
	}
	if (j == NULL) {
		log_warnx("enrollctl: %s %s: HTTP %ld but the answer is not JSON", method, path,
			status);
		return -ENOTCONN;
	}
	*ret = j;
	return 0;
}

int
ctl_tenant(struct ctl *ctl, const struct ctl_args *a, const char **ret)
{
	static char only[64];
	json_t *j = NULL, *list;
	const char *name;
	int r;

	if (a->tenant != NULL) {
		*ret = a->tenant;
		return 0;
	}
	r = ctl_call(ctl, "GET", "/v1/tenants", NULL, &j);
	if (r < 0)
		return r;
	list = json_object_get(j, "tenants");
	name = json_string_value(json_object_get(json_array_get(list, 0), "name"));
	if (json_array_size(list) != 1 || name == NULL || strlen(name) >= sizeof(only)) {
		log_warnx("enrollctl: which tenant? --tenant NAME (this token sees %zu tenants)",
			json_array_size(list));
		json_decref(j);
		return -EINVAL;
	}
	snprintf(only, sizeof(only), "%s", name);
	json_decref(j);
	*ret = only;
	return 0;
}

static void
format_ago(json_int_t t, char *buf, size_t len)
{
	long long d = (long long)time(NULL) - (long long)t;

	if (d < 0)
		d = 0;
	if (d < 120)
		snprintf(buf, len, "%lld s ago", d);
	else if (d < 7200)
		snprintf(buf, len, "%lld min ago", d / 60);
	else if (d < 172800)
		snprintf(buf, len, "%lld h ago", d / 3600);
	else
		snprintf(buf, len, "%lld days ago", d / 86400);
}

/* A value from the server must not drive the terminal: control characters become '?'. */
static void
defang(char *s)
{
	for (; *s != '\0'; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
}

static void
cell(const json_t *obj, const char *key, enum ctl_fmt fmt, char *buf, size_t len)
{
	const json_t *v = json_object_get(obj, key);
	time_t t;
	struct tm tm;
	char *s;

	if (v == NULL || json_is_null(v)) {
		snprintf(buf, len, "-");
		return;
	}
	if (json_is_integer(v) && (fmt == CTL_F_TIME || fmt == CTL_F_AGO)) {
		if (fmt == CTL_F_AGO) {
			format_ago(json_integer_value(v), buf, len);
			return;
		}
		t = (time_t)json_integer_value(v);
		if (localtime_r(&t, &tm) != NULL &&
			strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) > 0)
			return;
	}
	if (json_is_boolean(v) && fmt == CTL_F_YESNO) {
		snprintf(buf, len, "%s", json_is_true(v) ? "yes" : "no");
		return;
	}
	if (json_is_string(v)) {
		const char *str = json_string_value(v);

		if (fmt == CTL_F_SHORT && strlen(str) > 19)
			snprintf(buf, len, "%.16s...", str);
		else
			snprintf(buf, len, "%s", str);
		return;
	}
	s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	snprintf(buf, len, "%s", s ? s : "?");
	free(s);
}

void
ctl_cell(const json_t *obj, const char *key, enum ctl_fmt fmt, char *buf, size_t len)
{
	cell(obj, key, fmt, buf, len);
	defang(buf);
}

int
ctl_print_list(struct ctl *ctl, const json_t *arr, const struct ctl_col *cols)
{
	const char *heads[16], *cells[16];
	char bufs[16][256];
	struct table *t = NULL;
	size_t n = 0, i;
	json_t *o;
	int r;

	while (cols[n].head != NULL && n < 16)
		n++;
	for (i = 0; i < n; i++) {
		heads[i] = cols[i].head;
		cells[i] = bufs[i];
	}
	t = table_new(n, heads);
	if (t == NULL)
		return -ENOMEM;
	json_array_foreach(arr, i, o)
	{
		for (size_t c = 0; c < n; c++)
			ctl_cell(o, cols[c].key, cols[c].fmt, bufs[c], sizeof(bufs[c]));
		r = table_add(t, cells);
		if (r < 0)
			goto out;
	}
	r = table_print(t, ctl->out);
out:
	table_free(t);
	return r;
}

int
ctl_print_object(struct ctl *ctl, const json_t *obj)
{
	struct table *t = table_new(2, NULL);
	const char *key, *cells[2];
	char buf[4096];
	json_t *v;
	int r = 0;

	if (t == NULL)
		return -ENOMEM;
	json_object_foreach((json_t *)obj, key, v)
	{
		/* times readable, the rest as the API has it */
		bool is_time = json_is_integer(v) &&
			       (strcmp(key, "created") == 0 || strcmp(key, "updated") == 0 ||
				       strcmp(key, "since") == 0 || strcmp(key, "expires") == 0 ||
				       strcmp(key, "revoked_at") == 0 ||
				       strcmp(key, "last_handshake") == 0);

		ctl_cell(obj, key, is_time ? CTL_F_TIME : CTL_F_STR, buf, sizeof(buf));
		cells[0] = key;
		cells[1] = buf;
		r = table_add(t, cells);
		if (r < 0)
			goto out;
	}
	r = table_print(t, ctl->out);
out:
	table_free(t);
	return r;
}
