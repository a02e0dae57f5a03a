// SPDX-License-Identifier: MIT
/*
 * Devices (the fleet table, paged through the API's cursor), one device, revoke and
 * reinstate; the event stream (server-sent events).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "enrollctl/enrollctl.h"
#include "enrollctl/sse.h"

#define PAGE_MAX 1000 /* the API's largest page */

/* Append "&name=value" (escaped) to @q. */
static int
query_add(char *q, size_t len, const char *name, const char *value)
{
	char esc[256];
	size_t used = strlen(q);
	int r;

	r = ctl_escape(value, esc, sizeof(esc));
	if (r < 0)
		return r;
	if (snprintf(q + used, len - used, "%c%s=%s", used ? '&' : '?', name, esc) >=
		(int)(len - used))
		return -ENAMETOOLONG;
	return 0;
}

/*
 * Every device of the filter, following next_cursor, at most --limit of them: one
 * {"devices": [...], "next_cursor": ...} as if it were one page (next_cursor non-null
 * only when --limit stopped the walk early).
 */
static int
devices_fetch(struct ctl *ctl, const struct ctl_args *a, json_t **ret)
{
	json_t *all = json_array(), *page = NULL, *next = NULL;
	char q[1024], path[1100], cursor[32] = "", n[32];
	long left = (a->given & CTL_O_LIMIT) ? a->limit : -1;
	long per = (a->given & CTL_O_PAGE_SIZE) ? a->page_size : PAGE_MAX;
	int r = -ENOMEM;

	if (all == NULL)
		return -ENOMEM;
	for (;;) {
		q[0] = '\0';
		snprintf(n, sizeof(n), "%ld", left < 0 || left > per ? per : left);
		if ((a->tenant && (r = query_add(q, sizeof(q), "tenant", a->tenant)) < 0) ||
			(a->state && (r = query_add(q, sizeof(q), "state", a->state)) < 0) ||
			(cursor[0] && (r = query_add(q, sizeof(q), "cursor", cursor)) < 0) ||
			(r = query_add(q, sizeof(q), "limit", n)) < 0)
			goto out;
		snprintf(path, sizeof(path), "/v1/devices%s", q);
		r = ctl_call(ctl, "GET", path, NULL, &page);
		if (r < 0)
			goto out;
		json_array_extend(all, json_object_get(page, "devices"));
		if (left > 0)
			left -= (long)json_array_size(json_object_get(page, "devices"));
		json_decref(next);
		next = json_incref(json_object_get(page, "next_cursor"));
		json_decref(page);
		page = NULL;
		if (!json_is_string(next) || left == 0)
			break;
		if (strlen(json_string_value(next)) >= sizeof(cursor)) {
			log_warnx("enrollctl: the server's cursor is not a device id");
			r = -ENOTCONN;
			goto out;
		}
		snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
	}
	*ret = json_pack("{s:O,s:O}", "devices", all, "next_cursor", next ? next : json_null());
	r = *ret ? 0 : -ENOMEM;
out:
	json_decref(next);
	json_decref(page);
	json_decref(all);
	return r;
}

/*
 * ek_id -> the label it was registered with, for the tenants of @devs: the name the
 * factory gave the gateway (edge-keyd's device.label). Best effort: {} if not allowed.
 */
static json_t *
gateway_names(struct ctl *ctl, const json_t *devs)
{
	json_t *names = json_object(), *seen = json_object(), *d, *regs = NULL, *reg;
	size_t i, k;

	if (names == NULL || seen == NULL)
		goto out;
	json_array_foreach(devs, i, d)
	{
		const char *t = json_string_value(json_object_get(d, "tenant"));
		char path[512];

		if (t == NULL || json_object_get(seen, t) != NULL)
			continue;
		json_object_set_new(seen, t, json_true());
		if (ctl_path(path, sizeof(path), "/v1/tenants/", t, "/registrations") < 0 ||
			ctl_call(ctl, "GET", path, NULL, &regs) < 0)
			continue;
		json_array_foreach(json_object_get(regs, "registrations"), k, reg)
		{
			const char *ek = json_string_value(json_object_get(reg, "ek_id"));
			json_t *label = json_object_get(reg, "label");

			if (ek != NULL && json_is_string(label) && json_string_length(label) > 0)
				json_object_set(names, ek, label);
		}
		json_decref(regs);
	}
out:
	json_decref(seen);
	return names;
}

static int
devices_list(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	static const struct ctl_col cols[] = {
		{"DEVICE", "device_id", CTL_F_STR},
		{"GATEWAY", "gateway", CTL_F_STR},
		{"TENANT", "tenant", CTL_F_STR},
		{"ADDRESS", "address", CTL_F_STR},
		{"STATE", "health", CTL_F_STR},
		{"LAST HANDSHAKE", "last_handshake", CTL_F_AGO},
		{"ATTESTATION", "attestation", CTL_F_STR},
		{NULL, NULL, 0},
	};
	json_t *j = NULL, *names = NULL, *d, *devs;
	size_t i;
	int r;

	r = devices_fetch(ctl, a, &j);
	if (r < 0)
		return r;
	if (ctl->json) {
		ctl_print_json(ctl, j);
		goto out;
	}
	devs = json_object_get(j, "devices");
	names = gateway_names(ctl, devs);
	json_array_foreach(devs, i, d)
	{
		json_t *g = json_object_get(
			names, json_string_value(json_object_get(d, "ek_id")) ?: "");

		json_object_set(d, "gateway", g ? g : json_null());
	}
	r = ctl_print_list(ctl, devs, cols);
out:
	json_decref(names);
	json_decref(j);
	return r;
}

/* show / revoke / reinstate: cmd->data is the suffix ("", "/revoke", "/reinstate"). */
static int
device_one(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	const char *suffix = cmd->data;
	char path[256];
	json_t *j = NULL;
	int r;

	r = ctl_path(path, sizeof(path), "/v1/devices/", a->pos[0], suffix);
	if (r < 0)
		return r;
	r = ctl_call(ctl, suffix[0] ? "POST" : "GET", path, NULL, &j);
	if (r == 0) {
		if (ctl->json)
			ctl_print_json(ctl, j);
		else
			r = ctl_print_object(ctl, j);
	}
	json_decref(j);
	return r;
}

/* ---- events ------------------------------------------------------------------------------ */

struct events {
	struct ctl *ctl;
	bool follow;
	struct sse_parser sse;
};

#define EVENT_FMT "%-8s  %-19s  %-10s  %-7s  %s\n"

static int
event_print(const struct sse_event *ev, void *arg)
{
	struct events *e = arg;
	char seq[32], when[32], type[32], dev[32], tenant[64];
	json_t *j;

	if (e->ctl->json) {
		/* the event's data as the server sent it: one JSON object a line */
		fprintf(e->ctl->out, "%s\n", ev->data);
	} else if ((j = json_loads(ev->data, 0, NULL)) != NULL) {
		ctl_cell(j, "seq", CTL_F_STR, seq, sizeof(seq));
		ctl_cell(j, "time", CTL_F_TIME, when, sizeof(when));
		ctl_cell(j, "type", CTL_F_STR, type, sizeof(type));
		ctl_cell(j, "device_id", CTL_F_STR, dev, sizeof(dev));
		ctl_cell(j, "tenant", CTL_F_STR, tenant, sizeof(tenant));
		fprintf(e->ctl->out, EVENT_FMT, seq, when, type, dev, tenant);
		json_decref(j);
	}
	fflush(e->ctl->out);
	return 0;
}

/* A keepalive: the server had nothing more to send; without --follow, done. */
static int
event_keepalive(const char *text, void *arg)
{
	const struct events *e = arg;

	(void)text;
	return e->follow ? 0 : -ECANCELED;
}

static int
events_feed(const char *buf, size_t len, void *arg)
{
	struct events *e = arg;

	return sse_feed(&e->sse, buf, len);
}

static int
events(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd)
{
	struct events s = {.ctl = ctl, .follow = (a->given & CTL_O_FOLLOW) != 0};
	struct client_opts saved = ctl->copts;
	char q[512] = "", path[600], n[32];
	json_t *j = NULL;
	int r;

	/* Without --follow: the log from the start (or --after) until the server is idle. */
	if ((a->given & CTL_O_AFTER) || !s.follow) {
		snprintf(n, sizeof(n), "%llu", (a->given & CTL_O_AFTER) ? a->after : 0ULL);
		if ((r = query_add(q, sizeof(q), "after", n)) < 0)
			return r;
	}
	if (a->tenant != NULL && (r = query_add(q, sizeof(q), "tenant", a->tenant)) < 0)
		return r;
	snprintf(path, sizeof(path), "/v1/events%s", q);
	ctl->copts.accept = "text/event-stream";
	sse_init(&s.sse, event_print, event_keepalive, &s);
	ctl->copts.on_data = events_feed;
	ctl->copts.arg = &s;
	ctl->copts.timeout_sec = -1;
	/*
	 * The server sends a keepalive at least every 10 s: 35 s of silence is a dead link.
	 * Without --follow, 2 s of silence (or a keepalive) ends the backlog.
	 */
	ctl->copts.idle_sec = s.follow ? 35 : 2;
	ctl->idle_is_end = !s.follow;
	if (!ctl->json)
		fprintf(ctl->out, EVENT_FMT, "SEQ", "TIME", "EVENT", "DEVICE", "TENANT");
	r = ctl_call(ctl, "GET", path, NULL, &j);
	ctl->copts = saved;
	json_decref(j);
	return r;
}

const struct ctl_cmd ctl_device_cmds[] = {
	{"devices", "list", CTL_O_TENANT | CTL_O_STATE | CTL_O_LIMIT | CTL_O_PAGE_SIZE, 0, 0,
		"list [--tenant T] [--state active|revoked|up|down|never] [--limit N]\n"
		"    [--page-size N]",
		"the fleet table: every page (N devices a request, default 1000), or the first N",
		devices_list, NULL},
	{"devices", "show", 0, 1, 1, "show ID", "one device", device_one, ""},
	{"devices", "revoke", 0, 1, 1, "revoke ID", "remove it from its tenant's interface now",
		device_one, "/revoke"},
	{"devices", "reinstate", 0, 1, 1, "reinstate ID", "let a revoked device enroll again",
		device_one, "/reinstate"},
	{"events", "", CTL_O_FOLLOW | CTL_O_AFTER | CTL_O_TENANT, 0, 0,
		"[--follow] [--after N] [--tenant T]",
		"the event log (up, down, enrolled, revoked...); --follow: live", events, NULL},
	{0},
};
