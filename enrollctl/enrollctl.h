/* SPDX-License-Identifier: MIT */
#ifndef ENROLLCTL_H
#define ENROLLCTL_H

/*
 * enrollctl, the operator's command line over enrolld's REST API (docs/api.md,
 * docs/enrollctl.md). Modules:
 *   main.c     options, help, dispatch to the commands
 *   setup.c    where the URL, token and CA come from (flags, environment, config file)
 *   call.c     one API call (common/client.c), the server's refusals, tables of JSON
 *   table.c    aligned text tables (no I/O but the final print; unit-tested)
 *   fleet.c    tenants, registrations, tokens, device CAs, revoked serials
 *   devices.c  devices (paged lists) and the event stream
 *
 * Errors are negative errnos inside; main() turns them into the exit status:
 * -EREMOTEIO the server refused (its code already printed) -> CTL_EXIT_REFUSED,
 * -ENOTCONN no usable answer (cannot connect, TLS, not enrolld) -> CTL_EXIT_UNREACHABLE,
 * anything else (usage, config, local files) -> CTL_EXIT_USAGE.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include <jansson.h>

#include "common/client.h"

#define ENROLLCTL_VERSION "0.1.0"

enum {
	CTL_EXIT_OK = 0,
	CTL_EXIT_REFUSED = 1,
	CTL_EXIT_USAGE = 2,
	CTL_EXIT_UNREACHABLE = 3,
};

#define CTL_TOKEN_MAX 512
#define CTL_URL_MAX 512

/* Every option, parsed once; each command says which of them it takes (CTL_O_* bits). */
enum ctl_opt {
	CTL_O_TENANT = 1u << 0,
	CTL_O_STATE = 1u << 1,
	CTL_O_LIMIT = 1u << 2,
	CTL_O_FOLLOW = 1u << 3,
	CTL_O_AFTER = 1u << 4,
	CTL_O_LABEL = 1u << 5,
	CTL_O_USES = 1u << 6,
	CTL_O_EXPIRES = 1u << 7,
	CTL_O_EK_ID = 1u << 8,
	CTL_O_EK_PUBLIC = 1u << 9,
	CTL_O_PREFIX = 1u << 10,
	CTL_O_PREFIX6 = 1u << 11,
	CTL_O_INTERFACE = 1u << 12,
	CTL_O_PORT = 1u << 13,
	CTL_O_ENDPOINT = 1u << 14,
	CTL_O_KEEPALIVE = 1u << 15,
	CTL_O_ADDRESS = 1u << 16,
	CTL_O_ADDRESS6 = 1u << 17,
	CTL_O_PCR = 1u << 18,
	CTL_O_REQUIRE_TPM = 1u << 19,
	CTL_O_PAGE_SIZE = 1u << 20,
};

#define CTL_MAX_PCRS 24

struct ctl_args {
	unsigned int given; /* CTL_O_* bits seen on the command line */
	const char *tenant, *state, *label, *ek_id, *ek_public_file;
	const char *prefix, *prefix6, *interface, *endpoint, *address, *address6;
	const char *require_tpm;
	long limit, page_size, uses, expires_in, listen_port, keepalive;
	unsigned long long after;
	const char *pcr[CTL_MAX_PCRS]; /* "INDEX=HEX" */
	size_t n_pcr;
	char **pos; /* positional arguments after "<command> <verb>" */
	int n_pos;
};

struct ctl {
	char url[CTL_URL_MAX];	   /* base, without a trailing '/' */
	char token[CTL_TOKEN_MAX]; /* wiped at exit */
	char ca_file[1024];	   /* "" = the system's trust store */
	bool json;
	bool verbose;
	bool idle_is_end; /* a stream that went idle has ended (events without --follow) */
	struct client_opts copts;
	FILE *out;
};

/* ---- setup.c ---- */
struct ctl_setup_in {
	const char *url;	/* --url */
	const char *token_file; /* --token-file */
	const char *ca_file;	/* --ca */
	const char *config;	/* --config: this file only */
};
/* Fill @ctl from flags, then the environment, then the config file. Prints why not. */
int ctl_setup(struct ctl *ctl, const struct ctl_setup_in *in);
void ctl_teardown(struct ctl *ctl);
/* Read a secret from @path (must not be readable by group or others), one line. */
int ctl_read_secret(const char *path, char *buf, size_t len);

/* ---- call.c ---- */
/*
 * @method @path (relative to the URL, with query) and @body (NULL: none). 0 with the
 * answer's JSON in *ret (caller frees) for 2xx (for a stream, ctl->copts.on_data: 0 when
 * the reader stopped it with -ECANCELED, or it went idle and ctl->idle_is_end); a refusal is
 * printed (and, with --json, its body on stdout) and returns -EREMOTEIO; no answer: printed,
 * -ENOTCONN.
 */
int ctl_call(struct ctl *ctl, const char *method, const char *path, json_t *body, json_t **ret);
/* Percent-encode @s for a path segment or query value into @buf. -ENAMETOOLONG. */
int ctl_escape(const char *s, char *buf, size_t len);
/* @prefix, @seg percent-encoded, @suffix into @buf ("/v1/devices/", id, "/revoke"). */
int ctl_path(char *buf, size_t len, const char *prefix, const char *seg, const char *suffix);
/* Print @j as the API gave it (--json): one compact line. */
void ctl_print_json(struct ctl *ctl, const json_t *j);
/*
 * The tenant a command works on: --tenant, or the only tenant the token can see (a
 * tenant token). -EINVAL with a message if neither.
 */
int ctl_tenant(struct ctl *ctl, const struct ctl_args *a, const char **ret);

/* How a JSON member becomes a table cell. */
enum ctl_fmt {
	CTL_F_STR,   /* strings as is, numbers and booleans as JSON, null/absent "-" */
	CTL_F_TIME,  /* Unix seconds as local "YYYY-MM-DD HH:MM:SS", null "-" */
	CTL_F_AGO,   /* Unix seconds as "N s ago" / "N min ago"..., null "-" */
	CTL_F_YESNO, /* true "yes", false "no" */
	CTL_F_SHORT, /* a long hex id shortened to 16 characters and "..." */
};
struct ctl_col {
	const char *head;
	const char *key;
	enum ctl_fmt fmt;
};
/* One cell of @obj's @key in @fmt into @buf. */
void ctl_cell(const json_t *obj, const char *key, enum ctl_fmt fmt, char *buf, size_t len);
/* A table of the objects of array @arr in columns @cols (NULL-head terminated). */
int ctl_print_list(struct ctl *ctl, const json_t *arr, const struct ctl_col *cols);
/* One object as "member  value" lines, every member in the API's order. */
int ctl_print_object(struct ctl *ctl, const json_t *obj);

/* ---- table.c ---- */
struct table;
/* A table with @ncols columns and these headers (NULL: no header line). */
struct table *table_new(size_t ncols, const char *const *headers);
void table_free(struct table *t);
/*
 * Append a row of @ncols cells (copied; NULL is "-"). Control characters become '?'
 * (a value from the server must not drive the terminal). -ENOMEM.
 */
int table_add(struct table *t, const char *const *cells);
size_t table_rows(const struct table *t);
/*
 * Columns as wide as their widest cell (in characters, UTF-8 aware), two spaces apart,
 * no trailing blanks. Returns 0 or -EIO.
 */
int table_print(const struct table *t, FILE *f);

/* ---- commands (fleet.c, devices.c) ---- */
struct ctl_cmd {
	const char *name;
	const char *verb;     /* NULL: the command's default verb ("list") */
	unsigned int opts;    /* CTL_O_* it accepts */
	int min_pos, max_pos; /* positional arguments */
	const char *usage;    /* "<verb> <args>": its line in --help */
	const char *help;     /* one line: what it does */
	int (*run)(struct ctl *ctl, const struct ctl_args *a, const struct ctl_cmd *cmd);
	const void *data; /* for run() */
};
/* Both lists end with a NULL name. */
extern const struct ctl_cmd ctl_fleet_cmds[];
extern const struct ctl_cmd ctl_device_cmds[];

#endif
