/* SPDX-License-Identifier: MIT */
#ifndef ENROLLCTL_SSE_H
#define ENROLLCTL_SSE_H

/*
 * The text/event-stream framing (the WHATWG "server-sent events" format) that enrolld's
 * GET /v1/events speaks, read incrementally: bytes in any chunking, events out.
 *
 * Lines end in LF, CRLF or CR. "data:" lines of one event are joined with LF; an empty
 * line dispatches the event (if its data is not empty). "id:" sets the last event id (one without
 * NUL), ":" lines are comments (enrolld's keepalives), "event:" names the event, other
 * fields are ignored. A line longer than SSE_LINE_MAX, or an event whose data outgrows
 * SSE_DATA_MAX, is dropped whole, never truncated: a cut JSON object is worse than none.
 * No allocation: the parser is one fixed struct.
 */

#include <stdbool.h>
#include <stddef.h>

#define SSE_LINE_MAX 4096
#define SSE_DATA_MAX 8192
#define SSE_ID_MAX 128
#define SSE_TYPE_MAX 64

struct sse_event {
	const char *data; /* NUL-terminated; the data lines joined with "\n" */
	const char *type; /* "message" when the event named none */
	const char *id;   /* the last event id seen so far ("" none) */
};

struct sse_parser {
	/* <0 stops the stream: sse_feed() returns it */
	int (*on_event)(const struct sse_event *ev, void *arg);
	int (*on_comment)(const char *text, void *arg); /* may be NULL */
	void *arg;

	char line[SSE_LINE_MAX];
	size_t line_len;
	bool line_overlong;
	bool after_cr; /* the previous byte ended a line with CR: a following LF is part of it */
	char data[SSE_DATA_MAX];
	size_t data_len;
	bool has_data, data_overlong;
	char type[SSE_TYPE_MAX];
	char id[SSE_ID_MAX];
};

void sse_init(struct sse_parser *p, int (*on_event)(const struct sse_event *, void *),
	int (*on_comment)(const char *, void *), void *arg);
/* Feed the next @len bytes; returns 0 or the first negative callback result. */
int sse_feed(struct sse_parser *p, const char *buf, size_t len);

#endif
