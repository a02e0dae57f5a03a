// SPDX-License-Identifier: MIT
/*
 * enrolld's HTTP layer (enrolld/http.c) and the control-plane client (common/client.c),
 * against each other on loopback: routing with path parameters, roles, JSON bodies and
 * errors, the body limit, and the client's refusals.
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

#include "common/client.h"
#include "enrolld/enrolld.h"

static int
h_echo(struct http_request *req, json_t **ret_body, void *ctx)
{
	json_t *in = NULL;
	int r;

	r = http_request_json(req, &in);
	if (r < 0)
		return r;
	*ret_body = json_pack("{s:s,s:O,s:s}", "id", http_request_param(req, 0), "in", in,
		"tenant", http_request_tenant(req));
	json_decref(in);
	return 201;
}

static int
h_fail(struct http_request *req, json_t **ret_body, void *ctx)
{
	return http_error(req, -ENOSPC, "prefix_exhausted", "no free address in '%s'",
		http_request_param(req, 0));
}

static int
auth(void *ctx, const char *token, unsigned int *ret_role, char *ret_tenant, size_t len)
{
	if (strcmp(token, "admin-0123456789abcdef") == 0) {
		*ret_role = HTTP_AUTH_ADMIN;
		return 0;
	}
	if (strcmp(token, "tenant-acme-0123456789") == 0) {
		*ret_role = HTTP_AUTH_TENANT;
		snprintf(ret_tenant, len, "acme");
		return 0;
	}
	return -EACCES;
}

static const struct http_route routes[] = {
	{ "POST", "/v1/things/{id}/echo", h_echo, HTTP_AUTH_ADMIN | HTTP_AUTH_TENANT, NULL },
	{ "POST", "/v1/tenants/{name}/fail", h_fail, HTTP_AUTH_NONE, NULL },
};

static struct http_server *srv;
static char base[64];

static int
setup(void **state)
{
	struct http_config hc = {
		.listen = "127.0.0.1",
		.port = 0,
		.max_body = 256,
		.max_connections = 16,
		.conn_timeout = 5,
		.routes = routes,
		.n_routes = 2,
		.authenticate = auth,
	};

	if (http_server_start(&srv, &hc) < 0)
		return -1;
	snprintf(base, sizeof(base), "http://127.0.0.1:%u", http_server_port(srv));
	return 0;
}

static int
teardown(void **state)
{
	http_server_stop(srv);
	return 0;
}

static int
call(const char *bearer, const char *method, const char *path, json_t *body, long *status,
	json_t **out)
{
	struct client_opts o = { .allow_http = true, .bearer = bearer, .timeout_sec = 5 };
	char url[256], err[256];

	snprintf(url, sizeof(url), "%s%s", base, path);
	return client_request(&o, method, url, body, status, out, err, sizeof(err));
}

static const char *
err_code(json_t *j)
{
	return json_string_value(json_object_get(json_object_get(j, "error"), "code"));
}

static void
test_route_params_roles_json(void **state)
{
	json_t *body = json_pack("{s:i}", "n", 7), *out = NULL;
	long status = 0;

	assert_int_equal(call("tenant-acme-0123456789", "POST", "/v1/things/abc/echo", body,
				 &status, &out),
		0);
	assert_int_equal(status, 201);
	assert_string_equal(json_string_value(json_object_get(out, "id")), "abc");
	assert_string_equal(json_string_value(json_object_get(out, "tenant")), "acme");
	assert_int_equal(json_integer_value(json_object_get(json_object_get(out, "in"), "n")), 7);
	json_decref(out);

	/* no token: 401; unknown token: 401 */
	assert_int_equal(call(NULL, "POST", "/v1/things/abc/echo", body, &status, &out), 0);
	assert_int_equal(status, 401);
	assert_string_equal(err_code(out), "unauthorized");
	json_decref(out);
	assert_int_equal(call("nope", "POST", "/v1/things/abc/echo", body, &status, &out), 0);
	assert_int_equal(status, 401);
	json_decref(out);
	json_decref(body);
}

static void
test_errors(void **state)
{
	json_t *out = NULL, *arr = json_array();
	long status = 0;

	/* handler error: status from the errno table, code and message from the handler */
	assert_int_equal(call(NULL, "POST", "/v1/tenants/acme/fail", NULL, &status, &out), 0);
	assert_int_equal(status, 507);
	assert_string_equal(err_code(out), "prefix_exhausted");
	assert_non_null(strstr(json_string_value(json_object_get(json_object_get(out, "error"),
				       "message")),
		"'acme'"));
	json_decref(out);
	/* a body that is not an object */
	assert_int_equal(call("admin-0123456789abcdef", "POST", "/v1/things/x/echo", arr, &status,
				 &out),
		0);
	assert_int_equal(status, 400);
	assert_string_equal(err_code(out), "invalid_body");
	json_decref(out);
	json_decref(arr);
	/* extra path segment, missing segment, wrong method */
	assert_int_equal(call(NULL, "POST", "/v1/things/a/b/echo", NULL, &status, &out), 0);
	assert_int_equal(status, 404);
	json_decref(out);
	assert_int_equal(call(NULL, "POST", "/v1/things//echo", NULL, &status, &out), 0);
	assert_int_equal(status, 404);
	json_decref(out);
	assert_int_equal(call(NULL, "GET", "/v1/things/a/echo", NULL, &status, &out), 0);
	assert_int_equal(status, 405);
	json_decref(out);
}

static void
test_body_limit(void **state)
{
	char big[400];
	json_t *body, *out = NULL;
	long status = 0;

	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	body = json_pack("{s:s}", "x", big);
	assert_int_equal(call("admin-0123456789abcdef", "POST", "/v1/things/x/echo", body, &status,
				 &out),
		0);
	assert_int_equal(status, 413);
	assert_string_equal(err_code(out), "body_too_large");
	json_decref(out);
	json_decref(body);
}

static void
test_client_refusals(void **state)
{
	struct client_opts o = { .allow_http = false, .timeout_sec = 5 };
	json_t *out = NULL;
	char err[256];
	long status;

	/* plain http is refused unless allowed */
	assert_int_equal(client_request(&o, "GET", "http://127.0.0.1:1/x", NULL, &status, &out,
				 err, sizeof(err)),
		-EPERM);
	/* nothing listens on port 1 */
	o.allow_http = true;
	assert_int_equal(client_request(&o, "GET", "http://127.0.0.1:1/x", NULL, &status, &out,
				 err, sizeof(err)),
		-ECONNREFUSED);
	assert_true(strlen(err) > 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_route_params_roles_json),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_body_limit),
		cmocka_unit_test(test_client_refusals),
	};

	return cmocka_run_group_tests_name("http_client", tests, setup, teardown);
}
