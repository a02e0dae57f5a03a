// SPDX-License-Identifier: MIT
/*
 * libFuzzer target: enrollctl's text/event-stream parser (enrollctl/sse.c), which reads
 * what a server sends. The same bytes fed whole, one byte at a time and in chunks cut at
 * input-chosen places must give the same events; no event's data holds a CR or outgrows
 * its bound.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enrollctl/sse.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct trace {
	uint64_t hash; /* FNV-1a over every event's type, id and data */
	size_t n;
};

static void
mix(struct trace *t, const char *s)
{
	for (; *s; s++)
		t->hash = (t->hash ^ (uint8_t)*s) * 0x100000001b3ULL;
	t->hash = (t->hash ^ 0xff) * 0x100000001b3ULL;
}

static int
on_event(const struct sse_event *ev, void *arg)
{
	struct trace *t = arg;

	if (strchr(ev->data, '\r') != NULL || strlen(ev->data) >= SSE_DATA_MAX ||
		strlen(ev->id) >= SSE_ID_MAX || ev->type[0] == '\0')
		abort();
	mix(t, ev->type);
	mix(t, ev->id);
	mix(t, ev->data);
	t->n++;
	return 0;
}

static struct sse_parser p; /* 12 KiB: not on the fuzzer's stack */

static struct trace
run(const uint8_t *data, size_t size, size_t step, uint8_t seed)
{
	struct trace t = {.hash = 0xcbf29ce484222325ULL};
	size_t off = 0, n;

	sse_init(&p, on_event, NULL, &t);
	while (off < size) {
		/* step 0: chunk lengths from the input itself */
		n = step ? step : (size_t)((data[off] ^ seed) % 17) + 1;
		if (n > size - off)
			n = size - off;
		if (sse_feed(&p, (const char *)data + off, n) != 0)
			abort();
		off += n;
	}
	return t;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct trace whole = run(data, size, size ? size : 1, 0);
	struct trace bytes = run(data, size, 1, 0);
	struct trace cut = run(data, size, 0, 0x5a);

	if (whole.hash != bytes.hash || whole.n != bytes.n || whole.hash != cut.hash ||
		whole.n != cut.n)
		abort();
	return 0;
}
