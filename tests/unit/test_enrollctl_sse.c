// SPDX-License-Identifier: MIT
/* enrollctl's text/event-stream parser: framing, fields, bounds, chunking. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "enrollctl/sse.h"

struct seen {
	char log[4096]; /* "type|id|data;" per event */
	int comments;
	int stop_after; /* >0: the Nth event returns -ECANCELED */
	int n;
};

static int
on_event(const struct sse_event *ev, void *arg)
{
	struct seen *s = arg;
	size_t l = strlen(s->log);

	snprintf(s->log + l, sizeof(s->log) - l, "%s|%s|%s;", ev->type, ev->id, ev->data);
	return ++s->n == s->stop_after ? -ECANCELED : 0;
}

static int
on_comment(const char *text, void *arg)
{
	struct seen *s = arg;

	(void)text;
	s->comments++;
	return 0;
}

static struct sse_parser p;

/* Feed @in in chunks of @step bytes (0: whole). */
static int
feed(struct seen *s, const char *in, size_t step)
{
	size_t len = strlen(in), off = 0, n;
	int r = 0;

	sse_init(&p, on_event, on_comment, s);
	while (off < len && r == 0) {
		n = step && step < len - off ? step : len - off;
		r = sse_feed(&p, in + off, n);
		off += n;
	}
	return r;
}

static void
check_all_chunkings(const char *in, const char *want, int want_comments)
{
	for (size_t step = 0; step <= 7; step++) {
		struct seen s = {0};

		assert_int_equal(feed(&s, in, step), 0);
		assert_string_equal(s.log, want);
		assert_int_equal(s.comments, want_comments);
	}
}

static void
test_enrolld_stream(void **state)
{
	(void)state;
	check_all_chunkings("id: 1\nevent: up\ndata: {\"seq\":1}\n\n: keepalive\n\n"
			    "id: 2\ndata: {\"seq\":2}\n\n",
		"up|1|{\"seq\":1};message|2|{\"seq\":2};", 1);
}

static void
test_line_ends(void **state)
{
	(void)state;
	/* LF, CRLF and lone CR all end a line; CRLF split across chunks is one end */
	check_all_chunkings("data: a\r\ndata: b\r\rdata:c\n\ndata: d\r\n\r\n",
		"message||a\nb;message||c;message||d;", 0);
}

static void
test_fields(void **state)
{
	(void)state;
	/* no space after the colon, a field without colon, unknown fields, retry */
	check_all_chunkings("data\n\nretry: 10\nfoo: bar\ndata:x\n\nid\ndata: y\n\n",
		"message||x;message||y;", 0);
	/* an event without data, or with empty data, is not dispatched; its id stays */
	check_all_chunkings("id: 9\n\ndata:\n\ndata:\ndata:\n\ndata: z\n\n",
		"message|9|\n;message|9|z;", 0);
	/* the event name does not carry over to the next event */
	check_all_chunkings("event: down\ndata: 1\n\ndata: 2\n\n", "down||1;message||2;", 0);
}

static void
test_bounds(void **state)
{
	static char in[3 * SSE_DATA_MAX];
	size_t n;

	(void)state;
	/* an overlong line is dropped whole, the next event still arrives */
	n = (size_t)snprintf(in, sizeof(in), "data: ");
	memset(in + n, 'a', SSE_LINE_MAX + 10);
	n += SSE_LINE_MAX + 10;
	snprintf(in + n, sizeof(in) - n, "\n\ndata: ok\n\n");
	check_all_chunkings(in, "message||ok;", 0);

	/* data outgrowing its bound over several lines: the event is dropped, not cut */
	in[0] = '\0';
	for (int i = 0; i < 4; i++) {
		n = strlen(in);
		n += (size_t)snprintf(in + n, sizeof(in) - n, "data: ");
		memset(in + n, 'b', SSE_LINE_MAX - 100);
		in[n + SSE_LINE_MAX - 100] = '\0';
		strcat(in, "\n");
	}
	strcat(in, "\ndata: after\n\n");
	check_all_chunkings(in, "message||after;", 0);

	/* an overlong id is ignored, the previous one stays */
	snprintf(in, sizeof(in), "id: 5\ndata: 1\n\nid: %0*d\ndata: 2\n\n", SSE_ID_MAX + 5, 7);
	check_all_chunkings(in, "message|5|1;message|5|2;", 0);
}

static void
test_stop(void **state)
{
	struct seen s = {.stop_after = 1};

	(void)state;
	assert_int_equal(feed(&s, "data: 1\n\ndata: 2\n\n", 0), -ECANCELED);
	assert_string_equal(s.log, "message||1;");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_enrolld_stream),
		cmocka_unit_test(test_line_ends),
		cmocka_unit_test(test_fields),
		cmocka_unit_test(test_bounds),
		cmocka_unit_test(test_stop),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
