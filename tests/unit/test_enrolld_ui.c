// SPDX-License-Identifier: MIT
/*
 * Unit tests for enrolld/api_ui.c, the dashboard's files: each is served byte for byte as
 * compiled in from enrolld/ui/, with its type, the security headers and an ETag; If-None-Match
 * (one tag, a list, weak, "*") gives 304; an unknown file is 404; /ui redirects. The request
 * side of the HTTP layer is faked with --wrap (Makefile: test_enrolld_ui_LDFLAGS): the
 * handlers are called as the router would.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "enrolld/enrolld.h"

/* ---- the fake request ---- */

static const char *fake_param;
static const char *fake_inm; /* If-None-Match */
static struct {
	const char *name, *value;
} hdrs[16];
static unsigned int n_hdrs;
static char err_code[64];

const char *__wrap_http_request_param(const struct http_request *req, unsigned int i);
const char *__wrap_http_request_header(const struct http_request *req, const char *name);
int __wrap_http_response_header(struct http_request *req, const char *name, const char *value);
int __wrap_http_error(struct http_request *req, int err, const char *code, const char *fmt, ...);

const char *
__wrap_http_request_param(const struct http_request *req, unsigned int i)
{
	return i == 0 ? fake_param : NULL;
}

const char *
__wrap_http_request_header(const struct http_request *req, const char *name)
{
	return strcasecmp(name, "If-None-Match") == 0 ? fake_inm : NULL;
}

int
__wrap_http_response_header(struct http_request *req, const char *name, const char *value)
{
	if (n_hdrs == sizeof(hdrs) / sizeof(hdrs[0]))
		return -E2BIG;
	hdrs[n_hdrs].name = name;
	hdrs[n_hdrs].value = value;
	n_hdrs++;
	return 0;
}

int
__wrap_http_error(struct http_request *req, int err, const char *code, const char *fmt, ...)
{
	snprintf(err_code, sizeof(err_code), "%s", code);
	return err;
}

static const char *
hdr(const char *name)
{
	for (unsigned int i = 0; i < n_hdrs; i++)
		if (strcmp(hdrs[i].name, name) == 0)
			return hdrs[i].value;
	return NULL;
}

static void
reset(const char *param, const char *inm)
{
	fake_param = param;
	fake_inm = inm;
	n_hdrs = 0;
	err_code[0] = '\0';
}

/* The file as it is in the tree (the tests run from the top of it). */
static char *
slurp(const char *path)
{
	FILE *f = fopen(path, "rb");
	char *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	buf[n] = '\0';
	fclose(f);
	return buf;
}

static const char csp[] = "default-src 'none'; script-src 'self'; style-src 'self'; "
			  "connect-src 'self'; img-src 'self'; frame-ancestors 'none'; "
			  "base-uri 'none'; form-action 'none'";

/* ---- the tests ---- */

static void
test_files_served_as_compiled(void **state)
{
	static const struct {
		const char *name, *type;
	} files[] = {
		{ "index.html", "text/html; charset=utf-8" },
		{ "app.js", "text/javascript; charset=utf-8" },
		{ "app.css", "text/css; charset=utf-8" },
		{ "favicon.svg", "image/svg+xml" },
	};

	for (size_t i = 0; i < sizeof(files) / sizeof(files[0]); i++) {
		char path[64], *want, *text = NULL;
		const char *ctype = NULL;

		snprintf(path, sizeof(path), "enrolld/ui/%s", files[i].name);
		want = slurp(path);
		reset(files[i].name, NULL);
		assert_int_equal(api_ui_asset(NULL, &text, &ctype, NULL), 200);
		assert_non_null(text);
		assert_string_equal(text, want);
		assert_string_equal(ctype, files[i].type);
		assert_string_equal(hdr("Content-Security-Policy"), csp);
		assert_string_equal(hdr("X-Content-Type-Options"), "nosniff");
		assert_string_equal(hdr("Referrer-Policy"), "no-referrer");
		assert_string_equal(hdr("Cache-Control"), "no-cache");
		assert_non_null(hdr("ETag"));
		assert_int_equal(strlen(hdr("ETag")), 18); /* "16 hex digits" */
		free(text);
		free(want);
	}
}

static void
test_index_is_the_page(void **state)
{
	char *want = slurp("enrolld/ui/index.html"), *text = NULL;
	const char *ctype = NULL;

	reset(NULL, NULL);
	assert_int_equal(api_ui_index(NULL, &text, &ctype, NULL), 200);
	assert_string_equal(text, want);
	assert_string_equal(ctype, "text/html; charset=utf-8");
	assert_string_equal(hdr("Content-Security-Policy"), csp);
	free(text);
	free(want);
}

static void
test_etags(void **state)
{
	char etag[20], other[20], list[64], spaced[64], prefix[16], *text = NULL;
	const char *ctype = NULL;

	reset("app.js", NULL);
	assert_int_equal(api_ui_asset(NULL, &text, &ctype, NULL), 200);
	free(text);
	assert_int_equal(strlen(hdr("ETag")), 18);
	memcpy(etag, hdr("ETag"), 19);
	reset("app.css", NULL);
	assert_int_equal(api_ui_asset(NULL, &text, &ctype, NULL), 200);
	free(text);
	memcpy(other, hdr("ETag"), 19);
	assert_string_not_equal(etag, other); /* one per file */

	snprintf(list, sizeof(list), "\"0000\", W/%s", etag);
	snprintf(spaced, sizeof(spaced), " %s ,\"x\"", etag);
	const char *match[] = { etag, "*", list, spaced };
	for (size_t i = 0; i < sizeof(match) / sizeof(match[0]); i++) {
		text = NULL;
		reset("app.js", match[i]);
		assert_int_equal(api_ui_asset(NULL, &text, &ctype, NULL), 304);
		assert_null(text);
		assert_string_equal(hdr("ETag"), etag); /* a 304 names the tag, and the headers */
		assert_string_equal(hdr("Content-Security-Policy"), csp);
	}
	/* another file's tag, a prefix of ours, or garbage: the file */
	snprintf(prefix, sizeof(prefix), "%.10s\"", etag);
	const char *miss[] = { other, prefix, "", ",,,", "W/", "\"" };
	for (size_t i = 0; i < sizeof(miss) / sizeof(miss[0]); i++) {
		text = NULL;
		reset("app.js", miss[i]);
		assert_int_equal(api_ui_asset(NULL, &text, &ctype, NULL), 200);
		assert_non_null(text);
		free(text);
	}
}

static void
test_unknown_file(void **state)
{
	const char *names[] = { "nope.js", "app.js.map", "APP.JS", "index.htm", "app.j" };

	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		char *text = NULL;
		const char *ctype = NULL;

		reset(names[i], NULL);
		assert_int_equal(api_ui_asset(NULL, &text, &ctype, NULL), -ENOENT);
		assert_null(text);
		assert_string_equal(err_code, "not_found");
	}
}

static void
test_redirect(void **state)
{
	char *text = NULL;
	const char *ctype = NULL;

	reset(NULL, NULL);
	assert_int_equal(api_ui_redirect(NULL, &text, &ctype, NULL), 308);
	assert_null(text);
	assert_string_equal(hdr("Location"), "ui/");
	assert_string_equal(hdr("Content-Security-Policy"), csp);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_files_served_as_compiled),
		cmocka_unit_test(test_index_is_the_page),
		cmocka_unit_test(test_etags),
		cmocka_unit_test(test_unknown_file),
		cmocka_unit_test(test_redirect),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
