// SPDX-License-Identifier: MIT
/* Incremental text/event-stream parser (see sse.h). */
#include <string.h>

#include "enrollctl/sse.h"

void
sse_init(struct sse_parser *p, int (*on_event)(const struct sse_event *, void *),
	int (*on_comment)(const char *, void *), void *arg)
{
	memset(p, 0, sizeof(*p));
	p->on_event = on_event;
	p->on_comment = on_comment;
	p->arg = arg;
}

static void
event_reset(struct sse_parser *p)
{
	p->data_len = 0;
	p->data[0] = '\0';
	p->has_data = false;
	p->data_overlong = false;
	p->type[0] = '\0';
}

static int
dispatch(struct sse_parser *p)
{
	struct sse_event ev = {
		.data = p->data,
		.type = p->type[0] != '\0' ? p->type : "message",
		.id = p->id,
	};
	int r = 0;

	/* as the spec: an event whose data is empty is not dispatched */
	if (p->data_len > 0 && !p->data_overlong)
		r = p->on_event(&ev, p->arg);
	event_reset(p);
	return r;
}

static void
data_append(struct sse_parser *p, const char *v, size_t n)
{
	size_t sep = p->has_data ? 1 : 0;

	if (p->data_overlong)
		return;
	if (p->data_len + sep + n >= sizeof(p->data)) {
		p->data_overlong = true;
		return;
	}
	if (sep)
		p->data[p->data_len++] = '\n';
	memcpy(p->data + p->data_len, v, n);
	p->data_len += n;
	p->data[p->data_len] = '\0';
	p->has_data = true;
}

/* One complete line (without its end), NUL-terminated at p->line[len]. */
static int
line(struct sse_parser *p, size_t len)
{
	const char *l = p->line, *colon, *v;
	size_t name_len, vlen;

	if (len == 0)
		return dispatch(p);
	if (l[0] == ':')
		return p->on_comment ? p->on_comment(l + 1, p->arg) : 0;
	colon = memchr(l, ':', len);
	name_len = colon ? (size_t)(colon - l) : len;
	v = colon ? colon + 1 : l + len;
	if (colon && *v == ' ')
		v++;
	vlen = len - (size_t)(v - l);
	if (name_len == 4 && memcmp(l, "data", 4) == 0) {
		data_append(p, v, vlen);
	} else if (name_len == 5 && memcmp(l, "event", 5) == 0) {
		if (vlen < sizeof(p->type)) {
			memcpy(p->type, v, vlen);
			p->type[vlen] = '\0';
		}
	} else if (name_len == 2 && memcmp(l, "id", 2) == 0) {
		/* the spec ignores an id holding NUL; an overlong one is ignored too */
		if (vlen < sizeof(p->id) && memchr(v, '\0', vlen) == NULL) {
			memcpy(p->id, v, vlen);
			p->id[vlen] = '\0';
		}
	}
	return 0; /* retry: and unknown fields */
}

static int
line_end(struct sse_parser *p)
{
	int r = 0;

	p->line[p->line_len] = '\0';
	if (!p->line_overlong)
		r = line(p, p->line_len);
	p->line_len = 0;
	p->line_overlong = false;
	return r;
}

int
sse_feed(struct sse_parser *p, const char *buf, size_t len)
{
	int r;

	for (size_t i = 0; i < len; i++) {
		char c = buf[i];

		if (c == '\n' && p->after_cr) {
			p->after_cr = false; /* the LF of a CRLF: the line already ended */
			continue;
		}
		p->after_cr = c == '\r';
		if (c == '\n' || c == '\r') {
			if ((r = line_end(p)) < 0)
				return r;
		} else if (p->line_len + 1 < sizeof(p->line)) {
			p->line[p->line_len++] = c;
		} else {
			p->line_overlong = true;
		}
	}
	return 0;
}
