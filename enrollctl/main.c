// SPDX-License-Identifier: MIT
/*
 * enrollctl: the operator's command line over enrolld's REST API. Options, help, and
 * dispatch to the commands of fleet.c and devices.c. docs/enrollctl.md is the manual.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "common/log.h"
#include "enrollctl/enrollctl.h"

enum {
	OPT_URL = 0x100,
	OPT_TOKEN_FILE,
	OPT_CA,
	OPT_CONFIG,
	OPT_JSON,
	OPT_FIRST_CMD, /* the options below set CTL_O_* bits */
	OPT_TENANT = OPT_FIRST_CMD,
	OPT_STATE,
	OPT_LIMIT,
	OPT_FOLLOW,
	OPT_AFTER,
	OPT_LABEL,
	OPT_USES,
	OPT_EXPIRES,
	OPT_EK_ID,
	OPT_EK_PUBLIC,
	OPT_PREFIX,
	OPT_PREFIX6,
	OPT_INTERFACE,
	OPT_PORT,
	OPT_ENDPOINT,
	OPT_KEEPALIVE,
	OPT_ADDRESS,
	OPT_ADDRESS6,
	OPT_PCR,
	OPT_REQUIRE_TPM,
	OPT_PAGE_SIZE,
	OPT_END,
};

/* In OPT_* order (long_opts[opt - OPT_URL] is opt), so CTL_O_* bits follow OPT_FIRST_CMD. */
static const struct option long_opts[] = {
	{"url", required_argument, NULL, OPT_URL},
	{"token-file", required_argument, NULL, OPT_TOKEN_FILE},
	{"ca", required_argument, NULL, OPT_CA},
	{"config", required_argument, NULL, OPT_CONFIG},
	{"json", no_argument, NULL, OPT_JSON},
	{"tenant", required_argument, NULL, OPT_TENANT},
	{"state", required_argument, NULL, OPT_STATE},
	{"limit", required_argument, NULL, OPT_LIMIT},
	{"follow", no_argument, NULL, OPT_FOLLOW},
	{"after", required_argument, NULL, OPT_AFTER},
	{"label", required_argument, NULL, OPT_LABEL},
	{"uses", required_argument, NULL, OPT_USES},
	{"expires-in", required_argument, NULL, OPT_EXPIRES},
	{"ek-id", required_argument, NULL, OPT_EK_ID},
	{"ek-public", required_argument, NULL, OPT_EK_PUBLIC},
	{"prefix", required_argument, NULL, OPT_PREFIX},
	{"prefix6", required_argument, NULL, OPT_PREFIX6},
	{"interface", required_argument, NULL, OPT_INTERFACE},
	{"listen-port", required_argument, NULL, OPT_PORT},
	{"endpoint", required_argument, NULL, OPT_ENDPOINT},
	{"keepalive", required_argument, NULL, OPT_KEEPALIVE},
	{"address", required_argument, NULL, OPT_ADDRESS},
	{"address6", required_argument, NULL, OPT_ADDRESS6},
	{"pcr", required_argument, NULL, OPT_PCR},
	{"require-tpm", required_argument, NULL, OPT_REQUIRE_TPM},
	{"page-size", required_argument, NULL, OPT_PAGE_SIZE},
	{"verbose", no_argument, NULL, 'v'},
	{"help", no_argument, NULL, 'h'},
	{"version", no_argument, NULL, 'V'},
	{NULL, 0, NULL, 0},
};

static const struct ctl_cmd *const cmd_lists[] = {ctl_fleet_cmds, ctl_device_cmds};

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: enrollctl [options] COMMAND [VERB] [ARGS]\n"
		"\n"
		"The operator's command line over enrolld's REST API.\n"
		"\n"
		"commands (enrollctl COMMAND --help for each):\n"
		"  tenants          list | show NAME | create NAME ... | policy NAME ...\n"
		"  registrations    list | add | remove EK_ID       (factory EK allowlist)\n"
		"  tokens           list | create | revoke ID       (enrollment tokens)\n"
		"  devices          list | show ID | revoke ID | reinstate ID\n"
		"  events           [--follow] [--after N]          (the event stream)\n"
		"  device-cas       list | add CA.pem | remove ID   (X.509 device CAs)\n"
		"  revoked-serials  list | add SERIAL | remove SERIAL\n"
		"\n"
		"options:\n"
		"  --url URL          the server (else ENROLLCTL_URL, else the config file)\n"
		"  --token-file FILE  the bearer token, read from FILE (mode 0600); else\n"
		"                     ENROLLCTL_TOKEN, else the config file. Never on the command "
		"line.\n"
		"  --ca FILE          pin the control plane's CA: only it, not the system store\n"
		"                     (else ENROLLCTL_CA, else 'ca' in the config file)\n"
		"  --config FILE      the config file (default ~/.config/enrollctl.conf, then\n"
		"                     /etc/enrollctl.conf; refused if group or others may read "
		"it)\n"
		"  --json             the API's JSON, one line per answer (for scripts)\n"
		"  -v, --verbose      each request and its status on stderr\n"
		"  -h, --help         this help\n"
		"  -V, --version      the version\n"
		"\n"
		"exit status: 0 done; 1 the server refused (its error code is printed); 2 usage "
		"or\n"
		"local error (options, config file, token file); 3 no usable answer (cannot\n"
		"connect, TLS verification, timeout, not an enrolld).\n");
}

static const struct ctl_cmd *
find_cmd(const char *name, const char *verb)
{
	for (size_t l = 0; l < sizeof(cmd_lists) / sizeof(cmd_lists[0]); l++)
		for (const struct ctl_cmd *c = cmd_lists[l]; c->name != NULL; c++)
			if (strcmp(c->name, name) == 0 &&
				(verb == NULL || strcmp(c->verb, verb) == 0))
				return c;
	return NULL;
}

static void
cmd_usage(FILE *f, const char *name)
{
	fprintf(f, "usage: enrollctl [options] %s ...\n\n", name);
	for (size_t l = 0; l < sizeof(cmd_lists) / sizeof(cmd_lists[0]); l++)
		for (const struct ctl_cmd *c = cmd_lists[l]; c->name != NULL; c++)
			if (strcmp(c->name, name) == 0)
				fprintf(f, "  enrollctl %s %s\n      %s\n", name, c->usage,
					c->help);
	fprintf(f, "\nWith --json the API's answer is printed as is; enrollctl --help for the "
		   "options and exit codes.\n");
}

static int
parse_long(const char *opt, const char *s, long min, long max, long *ret)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || v < min || v > max) {
		log_warnx("enrollctl: --%s '%s': a number from %ld to %ld", opt, s, min, max);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

/* An option of a command (OPT_TENANT...): into @a. */
static int
set_cmd_opt(struct ctl_args *a, int opt, const char *arg)
{
	long v;
	int r = 0;

	a->given |= 1u << (opt - OPT_FIRST_CMD);
	switch (opt) {
	case OPT_TENANT:
		a->tenant = arg;
		break;
	case OPT_STATE:
		a->state = arg;
		break;
	case OPT_LIMIT:
		r = parse_long("limit", arg, 1, LONG_MAX, &a->limit);
		break;
	case OPT_FOLLOW:
		break;
	case OPT_AFTER:
		r = parse_long("after", arg, 0, LONG_MAX, &v);
		a->after = (unsigned long long)v;
		break;
	case OPT_LABEL:
		a->label = arg;
		break;
	case OPT_USES:
		r = parse_long("uses", arg, 1, 1000000, &a->uses);
		break;
	case OPT_EXPIRES:
		r = parse_long("expires-in", arg, 1, LONG_MAX, &a->expires_in);
		break;
	case OPT_EK_ID:
		a->ek_id = arg;
		break;
	case OPT_EK_PUBLIC:
		a->ek_public_file = arg;
		break;
	case OPT_PREFIX:
		a->prefix = arg;
		break;
	case OPT_PREFIX6:
		a->prefix6 = arg;
		break;
	case OPT_INTERFACE:
		a->interface = arg;
		break;
	case OPT_PORT:
		r = parse_long("listen-port", arg, 1, 65535, &a->listen_port);
		break;
	case OPT_ENDPOINT:
		a->endpoint = arg;
		break;
	case OPT_KEEPALIVE:
		r = parse_long("keepalive", arg, 1, 3600, &a->keepalive);
		break;
	case OPT_ADDRESS:
		a->address = arg;
		break;
	case OPT_ADDRESS6:
		a->address6 = arg;
		break;
	case OPT_PCR:
		if (a->n_pcr == CTL_MAX_PCRS) {
			log_warnx("enrollctl: at most %d --pcr", CTL_MAX_PCRS);
			return -EINVAL;
		}
		a->pcr[a->n_pcr++] = arg;
		break;
	case OPT_REQUIRE_TPM:
		a->require_tpm = arg;
		break;
	case OPT_PAGE_SIZE:
		r = parse_long("page-size", arg, 1, 1000, &a->page_size);
		break;
	}
	return r;
}

/* The command's options and positional arguments are what it takes. */
static int
check_args(const struct ctl_cmd *c, const struct ctl_args *a)
{
	unsigned int extra = a->given & ~c->opts;

	if (extra != 0) {
		for (int o = OPT_FIRST_CMD; o < OPT_END; o++)
			if (extra & (1u << (o - OPT_FIRST_CMD)))
				log_warnx("enrollctl: --%s does not apply to '%s%s%s'",
					long_opts[o - OPT_URL].name, c->name, c->verb[0] ? " " : "",
					c->verb);
		return -EINVAL;
	}
	if (a->n_pos < c->min_pos || a->n_pos > c->max_pos) {
		log_warnx("enrollctl: usage: enrollctl %s %s", c->name, c->usage);
		return -EINVAL;
	}
	return 0;
}

static int
exit_status(int r)
{
	switch (r) {
	case 0:
		return CTL_EXIT_OK;
	case -EREMOTEIO:
		return CTL_EXIT_REFUSED;
	case -ENOTCONN:
		return CTL_EXIT_UNREACHABLE;
	default:
		return CTL_EXIT_USAGE;
	}
}

int
main(int argc, char **argv)
{
	struct ctl_setup_in in = {0};
	struct ctl_args a = {0};
	static struct ctl ctl; /* holds the token: wiped by ctl_teardown() */
	const struct ctl_cmd *c;
	bool help = false;
	const char *verb;
	char **pos;
	int opt, n, r;

	log_init(1, "enrollctl");
	ctl.out = stdout;
	while ((opt = getopt_long(argc, argv, "vhV", long_opts, NULL)) != -1) {
		switch (opt) {
		case OPT_URL:
			in.url = optarg;
			break;
		case OPT_TOKEN_FILE:
			in.token_file = optarg;
			break;
		case OPT_CA:
			in.ca_file = optarg;
			break;
		case OPT_CONFIG:
			in.config = optarg;
			break;
		case OPT_JSON:
			ctl.json = true;
			break;
		case 'v':
			ctl.verbose = true;
			break;
		case 'h':
			help = true;
			break;
		case 'V':
			printf("enrollctl %s\n", ENROLLCTL_VERSION);
			return CTL_EXIT_OK;
		default:
			if (opt >= OPT_FIRST_CMD && opt < OPT_END) {
				if (set_cmd_opt(&a, opt, optarg) < 0)
					return CTL_EXIT_USAGE;
				break;
			}
			usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	pos = argv + optind;
	n = argc - optind;
	if (n == 0 || strcmp(pos[0], "help") == 0) {
		if (n > 1 && find_cmd(pos[1], NULL) != NULL) {
			cmd_usage(stdout, pos[1]);
			return CTL_EXIT_OK;
		}
		usage(help || n > 0 ? stdout : stderr);
		return help || n > 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	if (find_cmd(pos[0], NULL) == NULL) {
		log_warnx("enrollctl: unknown command '%s' (enrollctl --help)", pos[0]);
		return CTL_EXIT_USAGE;
	}
	if (help) {
		cmd_usage(stdout, pos[0]);
		return CTL_EXIT_OK;
	}
	/* COMMAND [VERB]: "list" when the verb is left out; events has none */
	verb = n > 1 ? pos[1] : "list";
	c = find_cmd(pos[0], verb);
	if (c != NULL && n > 1) {
		pos += 2;
		n -= 2;
	} else if (c == NULL && (c = find_cmd(pos[0], "")) != NULL) {
		pos += 1;
		n -= 1;
	} else if (c == NULL) {
		log_warnx("enrollctl: '%s' has no verb '%s' (enrollctl %s --help)", pos[0], verb,
			pos[0]);
		return CTL_EXIT_USAGE;
	} else {
		pos += 1;
		n -= 1;
	}
	a.pos = pos;
	a.n_pos = n;
	if (check_args(c, &a) < 0)
		return CTL_EXIT_USAGE;

	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_warnx("enrollctl: cannot initialise libcurl");
		return CTL_EXIT_USAGE;
	}
	r = ctl_setup(&ctl, &in);
	if (r == 0)
		r = c->run(&ctl, &a, c);
	ctl_teardown(&ctl);
	curl_global_cleanup();
	if (fflush(stdout) == EOF && r == 0)
		r = -EIO;
	return exit_status(r);
}
