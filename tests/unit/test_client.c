// SPDX-License-Identifier: MIT
/*
 * common/client.c's Retry-After: the header's value parsed (delay-seconds, capped; an
 * HTTP-date and garbage not taken), and handed to the caller by client_request() from a
 * real answer on loopback (a one-shot server thread speaking canned HTTP).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/client.h"

static int
parse(const char *v, unsigned int *ret)
{
	return client_retry_after_parse(v, strlen(v), ret);
}

static void
test_parse_seconds(void **state)
{
	unsigned int s = 99;

	assert_int_equal(parse("0", &s), 0);
	assert_int_equal(s, 0);
	assert_int_equal(parse("1", &s), 0);
	assert_int_equal(s, 1);
	assert_int_equal(parse(" 120\r\n", &s), 0); /* as a header line ends */
	assert_int_equal(s, 120);
	assert_int_equal(parse("\t 7 \t", &s), 0);
	assert_int_equal(s, 7);
	assert_int_equal(parse("3600", &s), 0);
	assert_int_equal(s, 3600);
	/* leading zeros are still digits */
	assert_int_equal(parse("0042", &s), 0);
	assert_int_equal(s, 42);
	/* not counted as a length: the value is cut at @len */
	assert_int_equal(client_retry_after_parse("25xyz", 2, &s), 0);
	assert_int_equal(s, 25);
}

static void
test_parse_capped(void **state)
{
	unsigned int s = 0;

	assert_int_equal(parse("3601", &s), 0);
	assert_int_equal(s, CLIENT_RETRY_AFTER_MAX);
	assert_int_equal(parse("86400", &s), 0);
	assert_int_equal(s, CLIENT_RETRY_AFTER_MAX);
	/* far past any integer type: no overflow, still the cap */
	assert_int_equal(parse("99999999999999999999999999999999999999", &s), 0);
	assert_int_equal(s, CLIENT_RETRY_AFTER_MAX);
}

static void
test_parse_refused(void **state)
{
	unsigned int s = 77;

	assert_int_equal(parse("Wed, 21 Oct 2015 07:28:00 GMT", &s), -ENOTSUP);
	assert_int_equal(parse("", &s), -EINVAL);
	assert_int_equal(parse("  \r\n", &s), -EINVAL);
	assert_int_equal(parse("-5", &s), -EINVAL);
	assert_int_equal(parse("+5", &s), -EINVAL);
	assert_int_equal(parse("1.5", &s), -EINVAL);
	assert_int_equal(parse("5 s", &s), -EINVAL);
	assert_int_equal(parse("0x10", &s), -EINVAL);
	assert_int_equal(parse("12 34", &s), -EINVAL);
	assert_int_equal(client_retry_after_parse("1\0" "2", 3, &s), -EINVAL);
	/* nothing written on a refusal */
	assert_int_equal(s, 77);
}

/* ---- against a canned answer on loopback ---------------------------------------------------- */

struct canned {
	int lfd;
	const char *answer;
};

static void *
serve_once(void *arg)
{
	struct canned *c = arg;
	char buf[4096];
	size_t n = 0;
	ssize_t k;
	int fd = accept(c->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	/* the request's head (GET: no body) */
	while (n < sizeof(buf) - 1 && (k = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0) {
		n += (size_t)k;
		buf[n] = '\0';
		if (strstr(buf, "\r\n\r\n") != NULL)
			break;
	}
	if (write(fd, c->answer, strlen(c->answer)) < 0)
		perror("write");
	close(fd);
	return NULL;
}

/* client_request() against @answer; its status and Retry-After. */
static void
ask(const char *answer, long *ret_status, unsigned int *ret_after)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t sl = sizeof(sa);
	struct canned c = { .answer = answer };
	struct client_opts o = { .allow_http = true, .timeout_sec = 5 };
	char url[64], err[256];
	json_t *j = NULL;
	pthread_t t;

	c.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(c.lfd >= 0);
	assert_int_equal(bind(c.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(c.lfd, 1), 0);
	assert_int_equal(getsockname(c.lfd, (struct sockaddr *)&sa, &sl), 0);
	assert_int_equal(pthread_create(&t, NULL, serve_once, &c), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/v1/enroll/challenge", ntohs(sa.sin_port));
	*ret_after = 12345;
	o.ret_retry_after = ret_after;
	assert_int_equal(client_request(&o, "GET", url, NULL, ret_status, &j, err, sizeof(err)), 0);
	json_decref(j);
	pthread_join(t, NULL);
	close(c.lfd);
}

#define BODY "{\"error\":{\"code\":\"x\",\"message\":\"y\"}}"
#define ANSWER(status, headers) \
	"HTTP/1.1 " status "\r\nContent-Type: application/json\r\n" headers \
	"Content-Length: 36\r\nConnection: close\r\n\r\n" BODY

static void
test_request_retry_after(void **state)
{
	unsigned int after;
	long status;

	ask(ANSWER("429 Too Many Requests", "Retry-After: 17\r\n"), &status, &after);
	assert_int_equal(status, 429);
	assert_int_equal(after, 17);
	ask(ANSWER("503 Service Unavailable", "retry-after:   42  \r\n"), &status, &after);
	assert_int_equal(status, 503);
	assert_int_equal(after, 42);
	ask(ANSWER("503 Service Unavailable", "Retry-After: 1000000\r\n"), &status, &after);
	assert_int_equal(after, CLIENT_RETRY_AFTER_MAX);
	/* none, an HTTP-date, garbage: 0 (the caller's own backoff) */
	ask(ANSWER("503 Service Unavailable", ""), &status, &after);
	assert_int_equal(after, 0);
	ask(ANSWER("429 Too Many Requests", "Retry-After: Wed, 21 Oct 2015 07:28:00 GMT\r\n"),
		&status, &after);
	assert_int_equal(after, 0);
	ask(ANSWER("429 Too Many Requests", "Retry-After: soon\r\n"), &status, &after);
	assert_int_equal(after, 0);
	/* a header that only begins like it */
	ask(ANSWER("429 Too Many Requests", "Retry-After-Ish: 9\r\n"), &status, &after);
	assert_int_equal(after, 0);
	/* an interim answer's header is not the final answer's */
	ask("HTTP/1.1 100 Continue\r\nRetry-After: 9\r\n\r\n" ANSWER("200 OK", ""), &status,
		&after);
	assert_int_equal(status, 200);
	assert_int_equal(after, 0);
}

/* ---- a kept connection ---------------------------------------------------------------------- */

struct keepalive_server {
	int lfd;
	int want;    /* requests to answer in all */
	int accepts; /* connections it took */
};

/* Answers @want requests with keep-alive answers, on as many connections as it is given. */
static void *
serve_keepalive(void *arg)
{
	struct keepalive_server *ks = arg;
	int answered = 0;

	while (answered < ks->want) {
		int fd = accept(ks->lfd, NULL, NULL);
		char buf[4096];
		size_t n = 0;
		ssize_t k;

		if (fd < 0)
			return NULL;
		ks->accepts++;
		while (answered < ks->want && (k = read(fd, buf + n, sizeof(buf) - 1 - n)) > 0) {
			char *end;

			n += (size_t)k;
			buf[n] = '\0';
			end = strstr(buf, "\r\n\r\n");
			if (end == NULL)
				continue;
			/* one GET answered; what followed it is the next request's beginning */
			n -= (size_t)(end + 4 - buf);
			memmove(buf, end + 4, n);
			if (write(fd, "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}", 40) != 40)
				break;
			answered++;
		}
		close(fd);
	}
	return NULL;
}

/* Two requests, with or without a client_conn: how many connections the server saw. */
static int
connections_for_two(bool keep)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t sl = sizeof(sa);
	struct keepalive_server ks = { .want = 2 };
	struct client_opts o = { .allow_http = true, .timeout_sec = 5 };
	struct client_conn *conn = NULL;
	char url[64], err[256];
	json_t *j = NULL;
	long status;
	pthread_t t;

	ks.lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	assert_true(ks.lfd >= 0);
	assert_int_equal(bind(ks.lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(listen(ks.lfd, 4), 0);
	assert_int_equal(getsockname(ks.lfd, (struct sockaddr *)&sa, &sl), 0);
	assert_int_equal(pthread_create(&t, NULL, serve_keepalive, &ks), 0);
	snprintf(url, sizeof(url), "http://127.0.0.1:%u/healthz", ntohs(sa.sin_port));
	if (keep)
		assert_int_equal(client_conn_new(&conn), 0);
	o.conn = conn;
	for (int i = 0; i < 2; i++) {
		assert_int_equal(client_request(&o, "GET", url, NULL, &status, &j, err,
			sizeof(err)), 0);
		assert_int_equal(status, 200);
		assert_non_null(j);
		json_decref(j);
	}
	client_conn_free(conn);
	pthread_join(t, NULL);
	close(ks.lfd);
	return ks.accepts;
}

static void
test_conn_kept(void **state)
{
	/* an enrollment's two rounds: one connection (one TLS handshake) with a client_conn */
	assert_int_equal(connections_for_two(true), 1);
	assert_int_equal(connections_for_two(false), 2);
	client_conn_free(NULL);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_seconds),
		cmocka_unit_test(test_parse_capped),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_request_retry_after),
		cmocka_unit_test(test_conn_kept),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
