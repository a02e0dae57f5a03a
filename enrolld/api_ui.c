// SPDX-License-Identifier: MIT
/*
 * The fleet dashboard (docs/dashboard.md): static files served from memory at /ui/. The files
 * of enrolld/ui/ are compiled in at build time (scripts/embed-ui.sh makes
 * build/gen/ui_assets.inc), so the page comes from the binary that serves the API it reads,
 * with no file to find or keep in step at run time.
 *
 * The page holds no data: every route is public, and what it shows comes from the API with
 * the token the user pastes. Each answer carries a strict Content-Security-Policy (scripts,
 * styles, images and connections from this origin only, nothing inline, no framing, no form
 * posts), nosniff and no-referrer. Files are revalidated on every use (no-cache + an ETag
 * of their content): after an upgrade a browser never mixes an old script with a new page.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/enrolld.h"

struct ui_asset {
	const char *name;
	const unsigned char *data; /* NUL-terminated */
	size_t len;
	const char *etag; /* quoted */
};

#include "build/gen/ui_assets.inc"

#define UI_CSP                                                                                     \
	"default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "            \
	"img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"

static const struct {
	const char *ext;
	const char *type;
} ui_types[] = {
	{ ".html", "text/html; charset=utf-8" },
	{ ".css", "text/css; charset=utf-8" },
	{ ".js", "text/javascript; charset=utf-8" },
	{ ".svg", "image/svg+xml" },
	{ ".txt", "text/plain; charset=utf-8" },
};

static const char *
ui_content_type(const char *name)
{
	size_t n = strlen(name);

	for (size_t i = 0; i < sizeof(ui_types) / sizeof(ui_types[0]); i++) {
		size_t e = strlen(ui_types[i].ext);

		if (n > e && strcmp(name + n - e, ui_types[i].ext) == 0)
			return ui_types[i].type;
	}
	return "application/octet-stream";
}

static const struct ui_asset *
ui_find(const char *name)
{
	for (size_t i = 0; i < sizeof(ui_assets) / sizeof(ui_assets[0]); i++)
		if (strcmp(ui_assets[i].name, name) == 0)
			return &ui_assets[i];
	return NULL;
}

/* Whether an If-None-Match header (a list of entity tags, or "*") names @etag. */
static bool
ui_etag_matches(const char *header, const char *etag)
{
	size_t elen = strlen(etag);
	const char *p = header;

	while (*p != '\0') {
		size_t n;

		p += strspn(p, " \t,");
		if (*p == '\0')
			break;
		n = strcspn(p, ",");
		while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
			n--;
		/* weak comparison (RFC 9110 13.1.2): W/ does not matter for a GET */
		if (n > 2 && strncmp(p, "W/", 2) == 0) {
			p += 2;
			n -= 2;
		}
		if ((n == 1 && *p == '*') || (n == elen && strncmp(p, etag, n) == 0))
			return true;
		p += strcspn(p, ",");
	}
	return false;
}

/* On every answer of the dashboard's routes. */
static const char *const ui_headers[][2] = {
	{ "Content-Security-Policy", UI_CSP },
	{ "X-Content-Type-Options", "nosniff" },
	{ "Referrer-Policy", "no-referrer" },
	{ "X-Frame-Options", "DENY" },
	{ "Cross-Origin-Opener-Policy", "same-origin" },
	{ "Cross-Origin-Resource-Policy", "same-origin" },
};

static int
ui_security_headers(struct http_request *req)
{
	for (size_t i = 0; i < sizeof(ui_headers) / sizeof(ui_headers[0]); i++) {
		int r = http_response_header(req, ui_headers[i][0], ui_headers[i][1]);

		if (r < 0)
			return r;
	}
	return 0;
}

static int
ui_serve(struct http_request *req, const char *name, char **ret_text, const char **ret_ctype)
{
	const struct ui_asset *a = ui_find(name);
	const char *inm;
	int r;

	if (a == NULL)
		return http_error(
			req, -ENOENT, "not_found", "the dashboard has no file '%.64s'", name);
	r = ui_security_headers(req);
	if (r == 0)
		r = http_response_header(req, "Cache-Control", "no-cache");
	if (r == 0)
		r = http_response_header(req, "ETag", a->etag);
	if (r < 0)
		return r;
	*ret_ctype = ui_content_type(a->name);
	inm = http_request_header(req, "If-None-Match");
	if (inm != NULL && ui_etag_matches(inm, a->etag))
		return 304; /* no body */
	*ret_text = strndup((const char *)a->data, a->len);
	return *ret_text ? 200 : -ENOMEM;
}

/* GET|HEAD /ui/: the page */
int
api_ui_index(struct http_request *req, char **ret_text, const char **ret_ctype, void *ctx)
{
	return ui_serve(req, "index.html", ret_text, ret_ctype);
}

/* GET|HEAD /ui/{asset}: a script, style sheet or image of the page */
int
api_ui_asset(struct http_request *req, char **ret_text, const char **ret_ctype, void *ctx)
{
	return ui_serve(req, http_request_param(req, 0), ret_text, ret_ctype);
}

/* GET|HEAD /ui: the page's relative links need the trailing slash. */
int
api_ui_redirect(struct http_request *req, char **ret_text, const char **ret_ctype, void *ctx)
{
	int r;

	r = ui_security_headers(req);
	if (r == 0)
		r = http_response_header(req, "Location", "ui/");
	if (r < 0)
		return r;
	return 308;
}
