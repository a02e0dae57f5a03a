// SPDX-License-Identifier: MIT
/*
 * enrolld: the enrollment and fleet control-plane service.
 *
 * This file is the daemon's shell: options, configuration, tokens (admin, provisioning,
 * tenant-scoped), signals, and the life cycle of the parts: the store (store.c), the
 * tenants' WireGuard interfaces (plane.c), the health monitor (health.c), the
 * reconciliation thread, the HTTP server (http.c). The API lives in api*.c.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <pwd.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <openssl/crypto.h>

#include "common/config.h"
#include "common/log.h"
#include "common/sdnotify.h"
#include "common/secmem.h"
#include "enrolld/attest/attest.h"
#include "enrolld/attest/crl.h"
#include "enrolld/cluster/node.h"
#include "enrolld/enrolld.h"
#include "enrolld/migrate.h"
#include "enrolld/privsep.h"

#define TOKEN_MAX ENROLLD_TOKEN_MAX

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: enrolld [-dnv] [-c file]\n"
		"\n"
		"The enrollment and fleet control-plane service.\n"
		"\n"
		"  -c, --config FILE  configuration file (default %s)\n"
		"  -d, --foreground   stay in the foreground, log to stderr\n"
		"  -n, --check        check the configuration and exit\n"
		"  -v, --verbose      log debug messages\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n"
		"      --routes       print the API's routes (METHOD PATH) and exit\n"
		"      --backup DIR   copy the database (consistent, compacted) into the empty\n"
		"                     directory DIR and exit; safe while enrolld runs\n"
		"      --migrate-to DEST\n"
		"                     copy the state of [state] (enrolld stopped) into the empty\n"
		"                     store DEST, lmdb:DIR or postgresql:CONNINFO, with the\n"
		"                     tenants' keys, verify the copy equal and exit\n"
		"      --privsep-selftest FILE\n"
		"                     drop privileges to server.user as the network process\n"
		"                     does, try to read FILE, open a netlink socket, exec, and\n"
		"                     exit 0 if everything was refused\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop cleanly, SIGHUP reloads the token files, the\n"
		"TLS certificate and key, and the CRLs of attestation.crl_dir.\n"
		"See docs/operations.md for the configuration reference.\n",
		ENROLLD_DEFAULT_CONF);
}

/* Read a secret token file (mode 0600 or stricter) into @buf, trailing newline removed. */
static int
read_token_file(const char *path, char buf[static TOKEN_MAX])
{
	char tmp[TOKEN_MAX + 2];
	ssize_t n;

	n = config_read_secret(path, tmp, sizeof(tmp));
	if (n == -EPERM) {
		log_warnx("token file '%s' is readable or writable by group or others; "
			  "chmod 600 it",
			path);
		return (int)n;
	}
	if (n < 0 && n != -EMSGSIZE && n != -ENODATA) {
		log_warnx("token file '%s': %s", path, strerror((int)-n));
		return (int)n;
	}
	tmp[strcspn(tmp, "\r\n")] = '\0';
	if (n < 0 || strlen(tmp) < 16 || strlen(tmp) >= TOKEN_MAX) {
		log_warnx("token file '%s': a token must be 16 to %d characters", path,
			TOKEN_MAX - 1);
		OPENSSL_cleanse(tmp, sizeof(tmp));
		return -EINVAL;
	}
	memcpy(buf, tmp, TOKEN_MAX);
	OPENSSL_cleanse(tmp, sizeof(tmp));
	return 0;
}

static void
free_tenant_tokens(struct tenant_token *tt, size_t n)
{
	if (tt == NULL)
		return;
	OPENSSL_cleanse(tt, n * sizeof(*tt));
	free(tt);
}

/*
 * The tenant-scoped API tokens: one file per tenant in @dir, named after the tenant
 * (a-z 0-9 - _), each holding one token, mode 0600. Other names (dot files, editor
 * backups) are skipped.
 */
static int
load_tenant_tokens(const char *dir, struct tenant_token **ret, size_t *ret_n)
{
	struct tenant_token *tt = NULL, *nt;
	char path[PATH_MAX];
	struct dirent *de;
	size_t n = 0;
	DIR *d;
	int r = 0;

	*ret = NULL;
	*ret_n = 0;
	if (dir == NULL)
		return 0;
	d = opendir(dir);
	if (d == NULL) {
		r = -errno;
		log_warn("tenant token directory '%s'", dir);
		return r;
	}
	while ((de = readdir(d)) != NULL) {
		size_t len = strlen(de->d_name);

		if (len == 0 || len >= STORE_NAME_MAX ||
		    strspn(de->d_name, "abcdefghijklmnopqrstuvwxyz0123456789-_") != len ||
		    de->d_name[0] == '-' || de->d_name[0] == '_')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		nt = realloc(tt, (n + 1) * sizeof(*nt));
		if (nt == NULL) {
			r = -ENOMEM;
			break;
		}
		tt = nt;
		memset(&tt[n], 0, sizeof(tt[n]));
		snprintf(tt[n].tenant, sizeof(tt[n].tenant), "%s", de->d_name);
		r = read_token_file(path, tt[n].token);
		if (r < 0)
			break;
		n++;
	}
	closedir(d);
	if (r < 0) {
		free_tenant_tokens(tt, n + 1);
		return r;
	}
	*ret = tt;
	*ret_n = n;
	return 0;
}

static int
load_tokens(struct enrolld *e)
{
	char admin[TOKEN_MAX] = "", prov[TOKEN_MAX] = "";
	struct tenant_token *tt = NULL, *old;
	size_t n_tt = 0, n_old;
	int r;

	r = read_token_file(e->conf.admin_token_file, admin);
	if (r < 0)
		goto out;
	if (e->conf.provisioning_token_file != NULL) {
		r = read_token_file(e->conf.provisioning_token_file, prov);
		if (r < 0)
			goto out;
	}
	r = load_tenant_tokens(e->conf.tenant_tokens_dir, &tt, &n_tt);
	if (r < 0)
		goto out;
	pthread_mutex_lock(&e->token_lock);
	memcpy(e->admin_token, admin, TOKEN_MAX);
	memcpy(e->provisioning_token, prov, TOKEN_MAX);
	old = e->tenant_tokens;
	n_old = e->n_tenant_tokens;
	e->tenant_tokens = tt;
	e->n_tenant_tokens = n_tt;
	pthread_mutex_unlock(&e->token_lock);
	free_tenant_tokens(old, n_old);
out:
	OPENSSL_cleanse(admin, sizeof(admin));
	OPENSSL_cleanse(prov, sizeof(prov));
	return r;
}

static bool
token_equal(const char *a, const char *presented)
{
	size_t la = strlen(a);

	return la > 0 && strlen(presented) == la && CRYPTO_memcmp(a, presented, la) == 0;
}

static int
authenticate(void *ctx, const char *token, unsigned int *ret_role, char *ret_tenant,
	size_t tenant_len)
{
	struct enrolld *e = ctx;
	int r = -EACCES;

	pthread_mutex_lock(&e->token_lock);
	if (token_equal(e->admin_token, token)) {
		*ret_role = HTTP_AUTH_ADMIN;
		r = 0;
	} else if (token_equal(e->provisioning_token, token)) {
		*ret_role = HTTP_AUTH_PROVISION;
		r = 0;
	} else {
		for (size_t i = 0; i < e->n_tenant_tokens; i++)
			if (token_equal(e->tenant_tokens[i].token, token)) {
				*ret_role = HTTP_AUTH_TENANT;
				snprintf(ret_tenant, tenant_len, "%s", e->tenant_tokens[i].tenant);
				r = 0;
				break;
			}
	}
	pthread_mutex_unlock(&e->token_lock);
	return r;
}

/*
 * attestation.crl_dir: read every CRL, then hand the set to both chain checks (EK
 * certificates: the attestation trust; device certificates: e->crls, taken per request).
 * A file that does not parse refuses the whole load and the previous set stays. Expired
 * CRLs are loaded (they fail closed for their issuer: docs/security.md) and named here.
 */
static int
load_crls(struct enrolld *e, const char *when)
{
	struct crl_set *set = NULL, *old;
	char why[512], issuer[160];
	size_t n_expired;
	int r;

	if (e->conf.crl_dir == NULL)
		return 0;
	r = crl_set_load_dir(e->conf.crl_dir, &set, why, sizeof(why));
	if (r < 0) {
		log_warnx("%s: CRL directory: %s", when, why);
		return r;
	}
	n_expired = crl_set_expired(set, time(NULL), issuer, sizeof(issuer));
	if (n_expired > 0)
		log_warnx("%s: %zu CRL(s) in '%s' are past their nextUpdate (the first of issuer "
			  "'%s'): certificates of those issuers are refused (crl_expired) until "
			  "fresh CRLs are installed",
			when, n_expired, e->conf.crl_dir, issuer);
	pthread_mutex_lock(&e->crl_lock);
	old = e->crls;
	e->crls = set;
	pthread_mutex_unlock(&e->crl_lock);
	crl_set_free(old);
	if (e->trust != NULL)
		attest_trust_set_crls(e->trust, set);
	log_info("%s: %zu CRL(s) loaded from '%s'", when, crl_set_count(set), e->conf.crl_dir);
	return 0;
}


/* systemd's notifications: directly, or through the privileged process (privsep). */
static void
notify(struct enrolld *e, enum ps_notify what, const char *text)
{
	int r;

	if (e->ps != NULL)
		r = privsep_notify(e->ps, what);
	else
		r = sdnotify(text);
	if (r < 0 && what == PS_NOTIFY_READY)
		log_warnx("sd_notify READY=1: %s", strerror(-r));
}

/* Set once every tenant interface matched the store: readiness (sd_notify) waits for it. */
static atomic_bool reconciled;

/* Reconciliation at a fixed interval, until told to stop. */
static void *
reconciler_main(void *arg)
{
	struct enrolld *e = arg;
	struct timespec deadline;
	int r;

	pthread_mutex_lock(&e->stop_lock);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += e->conf.reconcile_interval;
		while (!e->stopping &&
		       pthread_cond_timedwait(&e->stop_cond, &e->stop_lock, &deadline) == 0)
			;
		if (e->stopping)
			break;
		pthread_mutex_unlock(&e->stop_lock);
		r = plane_reconcile(e->plane, e->store);
		if (r < 0)
			log_debug("reconcile: %s", strerror(-r));
		else
			atomic_store(&reconciled, true);
		/* Sessions past their expiry are of no use to anyone. */
		(void)store_session_purge(e->store);
		pthread_mutex_lock(&e->stop_lock);
	}
	pthread_mutex_unlock(&e->stop_lock);
	return NULL;
}

static char *
read_file(const char *path)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = fopen(path, "re");
	char chunk[4096];
	size_t n;

	if (f == NULL)
		return NULL;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		char *nb = realloc(buf, len + n + 1);

		if (nb == NULL) {
			free(buf);
			fclose(f);
			return NULL;
		}
		buf = nb;
		memcpy(buf + len, chunk, n);
		len += n;
		buf[len] = '\0';
	}
	OPENSSL_cleanse(chunk, sizeof(chunk));
	fclose(f);
	return buf;
}

/*
 * SIGHUP: read the HTTPS certificate and key files again and hand them to the listener.
 * New handshakes get the new certificate; established connections keep theirs. A file
 * that cannot be read, a key of the wrong mode or one that is not the certificate's keeps
 * the previous pair.
 */
static int
reload_tls(struct enrolld *e)
{
	char *cert = NULL, *key = NULL;
	int r;

	if (e->conf.tls_cert == NULL || e->http == NULL)
		return 0;
	cert = read_file(e->conf.tls_cert);
	if (cert == NULL) {
		r = -errno;
		log_warn("SIGHUP: TLS certificate '%s'", e->conf.tls_cert);
		goto out;
	}
	r = config_check_secret_file(e->conf.tls_key);
	if (r < 0) {
		log_warnx("SIGHUP: TLS key '%s' must be a regular file of mode 0600",
			e->conf.tls_key);
		goto out;
	}
	key = read_file(e->conf.tls_key);
	if (key == NULL) {
		r = -errno;
		log_warn("SIGHUP: TLS key '%s'", e->conf.tls_key);
		goto out;
	}
	r = http_server_set_tls(e->http, cert, key);
	if (r == -EBADMSG)
		log_warnx("SIGHUP: TLS certificate '%s' is not a PEM chain (leaf first)",
			e->conf.tls_cert);
	else if (r == -EKEYREJECTED)
		log_warnx("SIGHUP: TLS key '%s' does not parse or is not the key of '%s'",
			e->conf.tls_key, e->conf.tls_cert);
	else if (r < 0)
		log_warnx("SIGHUP: TLS certificate: %s", strerror(-r));
out:
	if (key != NULL) {
		OPENSSL_cleanse(key, strlen(key));
		free(key);
	}
	free(cert);
	return r;
}

/* Where the state is, for log lines: never the connection string (it may hold a password). */
static const char *
store_where(const struct enrolld *e)
{
	return e->conf.store_backend == STORE_BACKEND_POSTGRESQL ? "postgresql" : e->conf.db_path;
}

/*
 * The store as the configuration says: [state] backend; LMDB sized by max_size_mib,
 * PostgreSQL with the KEK of kek_file.
 */
static int
open_store(struct enrolld *e)
{
	struct store_options o = { 0 };
	uint8_t *kek = NULL;
	int r;

	o.backend = e->conf.store_backend;
	o.map_size_max = (uint64_t)e->conf.max_size_mib << 20;
	o.map_size = o.map_size_max < STORE_DEFAULT_MAP_SIZE ? o.map_size_max
							     : STORE_DEFAULT_MAP_SIZE;
	if (e->conf.kek_file != NULL) {
		kek = secmem_alloc(STORE_KEK_LEN);
		if (kek == NULL)
			return -errno;
		r = conf_read_kek(e->conf.kek_file, kek);
		if (r < 0)
			goto out;
		o.kek = kek;
	}
	r = store_open(&e->store, o.backend == STORE_BACKEND_POSTGRESQL ? e->conf.pg_conninfo :
		e->conf.db_path, &o);
out:
	secmem_free(kek, STORE_KEK_LEN);
	return r;
}
/*
 * --backup: a second process may open the LMDB environment while the daemon runs; the
 * copy is one read transaction, so it is consistent and the daemon's writers go on.
 */
static int
do_backup(struct enrolld *e, const char *dir)
{
	char err[256];
	int r;

	r = open_store(e);
	if (r < 0) {
		log_warnx("cannot open the database in '%s': %s %s", store_where(e), strerror(-r),
			store_errmsg());
		return 1;
	}
	r = store_verify(e->store, err, sizeof(err));
	if (r < 0)
		log_warnx("warning: the database is inconsistent (%s); copying it anyway", err);
	r = store_backup(e->store, dir);
	store_free(e->store);
	e->store = NULL;
	if (r < 0) {
		log_warnx("backup into '%s' failed: %s %s (the directory must exist and be empty)",
			dir, strerror(-r), store_errmsg());
		return 1;
	}
	log_info("database '%s' copied into '%s'", e->conf.db_path, dir);
	return 0;
}

/*
 * Every connection is a descriptor: make room for max_connections and the rest (LMDB,
 * wireguard-go sockets, logs) up to the hard limit.
 */
static void
raise_nofile(rlim_t want)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= want)
		return;
	rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
	/* On failure, say the limit in force, not the one asked for. */
	if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
		(void)getrlimit(RLIMIT_NOFILE, &rl);
	if (rl.rlim_cur < want)
		log_warnx("open files limited to %llu, below server.max_connections + 256 = %llu; "
			  "raise LimitNOFILE",
			(unsigned long long)rl.rlim_cur, (unsigned long long)want);
}

static void
request_stop(struct enrolld *e)
{
	pthread_mutex_lock(&e->stop_lock);
	e->stopping = true;
	pthread_cond_broadcast(&e->stop_cond);
	pthread_mutex_unlock(&e->stop_lock);
}

/* Open the store, the plane, the trust anchors; reconcile once. Fatal on failure. */
static void
start_services(struct enrolld *e)
{
	struct plane_config pc = { 0 };
	char err[256];
	int r;

	r = open_store(e);
	if (r < 0)
		fatalx("cannot open the database in '%s': %s %s", store_where(e), strerror(-r),
			store_errmsg());
	r = store_verify(e->store, err, sizeof(err));
	if (r < 0)
		fatalx("the database in '%s' is inconsistent: %s", store_where(e), err);
	log_info("database '%s' open", store_where(e));

	if (e->conf.ek_ca_dir != NULL) {
		r = attest_trust_load(e->conf.ek_ca_dir, &e->trust);
		if (r < 0)
			fatalx("EK trust anchors in '%s': %s", e->conf.ek_ca_dir, strerror(-r));
		attest_trust_set_crls(e->trust, e->crls);
	} else {
		log_warnx("attestation.ek_ca_dir is not set: devices cannot enroll");
	}
	if (e->ps != NULL) {
		/* What needed root is open (the store, the trust anchors): drop for good. */
		pid_t parent = getppid();

		if (privsep_drop(e->conf.user) < 0)
			fatalx("privilege separation: cannot drop to '%s'", e->conf.user);
		/* If the privileged process dies, so do we (SIGTERM: a clean stop). */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) < 0 || getppid() != parent)
			fatalx("privilege separation: the privileged process is gone");
		log_info("privsep: network process running as '%s'", e->conf.user);
	}
	r = enroll_sessions_new(&e->sessions);
	if (r < 0)
		fatalx("sessions: %s", strerror(-r));

	pc.backend = e->conf.wg_backend;
	pc.key_dir = e->conf.key_dir;
	pc.wireguard_go = e->conf.wireguard_go;
	pc.uapi_dir = e->conf.uapi_dir;
	pc.vrf = e->conf.vrf;
	pc.vrf_table_base = (uint32_t)e->conf.vrf_table_base;
	pc.nftables = e->conf.nftables;
	pc.nft = e->conf.nft;
	/* PostgreSQL: the tenant keys in the database under the KEK, shared by every node */
	if (e->conf.store_backend == STORE_BACKEND_POSTGRESQL)
		pc.key_store = e->store;
	pc.cluster = e->conf.cluster;
	r = e->ps != NULL ? plane_new_remote(&e->plane, e->ps) : plane_new(&e->plane, &pc);
	if (r < 0)
		fatalx("WireGuard control: %s", strerror(-r));
	/* Before serving: the interfaces must match the store (a crash may have left them). */
	r = plane_reconcile(e->plane, e->store);
	if (r < 0)
		log_warnx("initial reconciliation incomplete (%s); retrying every %lds",
			strerror(-r), e->conf.reconcile_interval);
	else
		atomic_store(&reconciled, true);
	r = health_new(&e->health, e->store, e->plane, (unsigned int)e->conf.health_interval,
		(unsigned int)e->conf.default_keepalive);
	if (r < 0)
		fatalx("health monitor: %s", strerror(-r));
	r = pthread_create(&e->reconciler, NULL, reconciler_main, e);
	if (r != 0)
		fatalx("reconciler thread: %s", strerror(r));
	e->reconciler_started = true;
	if (e->conf.cluster) {
		struct cluster_conf cc = {
			.conninfo = e->conf.pg_conninfo,
			.node = e->conf.node_name,
			.lease_ms = (unsigned int)e->conf.lease_ms,
			.margin_ms = (unsigned int)e->conf.margin_ms,
			.tick_ms = (unsigned int)e->conf.tick_ms,
			.endpoint_hook = e->conf.endpoint_hook,
			.wait_ms = (unsigned int)e->conf.revoke_wait_ms,
		};

		r = cluster_start(&e->cluster, &cc, e->store, e->plane);
		if (r < 0)
			fatalx("cluster: %s", strerror(-r));
	}
}

static void
stop_services(struct enrolld *e)
{
	request_stop(e);
	/* First no new requests (event streams notice `stopping` and end)... */
	http_server_stop(e->http);
	e->http = NULL;
	/* ...then the threads that use the plane and the store... */
	health_free(e->health);
	e->health = NULL;
	if (e->reconciler_started)
		pthread_join(e->reconciler, NULL);
	e->reconciler_started = false;
	/* cluster mode: every held tenant down, its hook run, its lease released for the others */
	cluster_stop(e->cluster);
	e->cluster = NULL;
	/* ...then the interfaces (userspace: wireguard-go stops) and the state. */
	plane_free(e->plane);
	e->plane = NULL;
	privsep_free(e->ps); /* the privileged process sees EOF and stops too */
	e->ps = NULL;
	enroll_sessions_free(e->sessions);
	e->sessions = NULL;
	attest_trust_free(e->trust);
	e->trust = NULL;
	store_free(e->store);
	e->store = NULL;
}

int
main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'd' },
		{ "check", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "routes", no_argument, NULL, 'R' },
		{ "backup", required_argument, NULL, 'B' },
		{ "privsep-selftest", required_argument, NULL, 'S' },
		{ "migrate-to", required_argument, NULL, 'M' },
		{ NULL, 0, NULL, 0 },
	};
	const char *conf_path = ENROLLD_DEFAULT_CONF, *backup = NULL, *selftest = NULL;
	const char *migrate_to = NULL;
	struct http_config hc = { 0 };
	static struct enrolld e;
	char *trust_pem = NULL;
	int foreground = 0, check = 0, verbose = 0, ch, sig, r;
	pthread_condattr_t ca;
	struct timespec tick = { .tv_sec = 1 };
	uint64_t wd_usec = 0;
	bool ready = false;
	char err[512];
	sigset_t set;

	while ((ch = getopt_long(argc, argv, "c:dnvhV", longopts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			conf_path = optarg;
			break;
		case 'd':
			foreground = 1;
			break;
		case 'n':
			check = 1;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("enrolld %s\n", ENROLLD_VERSION);
			return 0;
		case 'B':
			backup = optarg;
			break;
		case 'S':
			selftest = optarg;
			break;
		case 'M':
			migrate_to = optarg;
			break;
		case 'R':
			/* docs/openapi.json is checked against this by a test */
			for (size_t i = 0; i < api_n_routes; i++)
				printf("%s %s\n", api_routes[i].method, api_routes[i].pattern);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return 2;
	}

	log_init(foreground || check || backup != NULL || selftest != NULL || migrate_to != NULL,
		"enrolld");
	log_setverbose(verbose);
	pthread_mutex_init(&e.token_lock, NULL);
	pthread_mutex_init(&e.crl_lock, NULL);
	pthread_mutex_init(&e.stop_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&e.stop_cond, &ca);
	pthread_condattr_destroy(&ca);

	if (conf_load(&e.conf, conf_path, err, sizeof(err)) < 0)
		fatalx("%s", err);
	if (e.conf.user != NULL) {
		/*
		 * Privilege separation: the token files and the TLS key are read by root at start
		 * (which, under the unit's bounding set, has no CAP_DAC_OVERRIDE) and again by the
		 * network process on SIGHUP: root:<user's group> 0640 serves both.
		 */
		struct passwd *pw = getpwnam(e.conf.user);

		if (pw == NULL)
			fatalx("%s: server.user '%s' does not exist", conf_path, e.conf.user);
		config_secret_group(pw->pw_gid);
	}
	if (load_tokens(&e) < 0)
		fatalx("%s: cannot load the tokens", conf_path);
	if (e.conf.tls_cert != NULL) {
		e.tls_cert_pem = read_file(e.conf.tls_cert);
		if (e.tls_cert_pem == NULL)
			fatal("TLS certificate '%s'", e.conf.tls_cert);
		if (config_check_secret_file(e.conf.tls_key) < 0)
			fatalx("TLS key '%s' must be a regular file of mode 0600 (0640 with the group of "
				"server.user)", e.conf.tls_key);
		e.tls_key_pem = read_file(e.conf.tls_key);
		if (e.tls_key_pem == NULL)
			fatal("TLS key '%s'", e.conf.tls_key);
	}
	if (e.conf.ek_ca_dir != NULL) {
		struct attest_trust *trust = NULL;

		r = attest_trust_load(e.conf.ek_ca_dir, &trust);
		attest_trust_free(trust);
		if (r < 0)
			fatalx("%s: EK trust anchors in '%s': %s", conf_path, e.conf.ek_ca_dir,
				strerror(-r));
	}
	if (load_crls(&e, conf_path) < 0)
		fatalx("%s: cannot load the CRLs of attestation.crl_dir", conf_path);
	if (e.conf.user != NULL) {
		struct passwd *pw = getpwnam(e.conf.user);

		if (pw == NULL || pw->pw_uid == 0)
			fatalx("%s: server.user '%s' %s", conf_path, e.conf.user,
				pw == NULL ? "does not exist" : "is root");
	}
	if (check) {
		printf("configuration OK\n");
		r = 0;
		goto out;
	}
	if (backup != NULL) {
		r = do_backup(&e, backup);
		goto out;
	}
	if (migrate_to != NULL) {
		r = enrolld_migrate(&e.conf, migrate_to);
		goto out;
	}
	if (selftest != NULL) {
		if (e.conf.user == NULL)
			fatalx("%s: --privsep-selftest needs server.user", conf_path);
		r = privsep_selftest(e.conf.user, selftest);
		goto out;
	}

	r = secmem_harden_process();
	if (r < 0)
		fatalx("cannot harden the process: %s", strerror(-r));

	/* Signals are taken synchronously by the main thread; every other thread blocks them. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);

	/* Before the fork: WATCHDOG_PID names the process systemd started. */
	r = sdnotify_watchdog_usec(&wd_usec);
	if (r < 0)
		log_warnx("WATCHDOG_USEC is malformed, ignoring");
	if (r > 0 && wd_usec / 4 < 1000000)
		tick.tv_sec = 0, tick.tv_nsec = (long)(wd_usec / 4 * 1000);
	if (e.conf.user != NULL) {
		/* The parent stays in privsep_start() until the child is gone. */
		r = privsep_start(&e.conf, &e.ps);
		if (r < 0)
			fatalx("privilege separation: %s", strerror(-r));
	}

	start_services(&e);

	hc.listen = e.conf.listen;
	hc.port = e.conf.port;
	hc.unix_socket = e.conf.unix_socket;
	hc.tls_cert_pem = e.tls_cert_pem;
	hc.tls_key_pem = e.tls_key_pem;
	/* client certificates are requested for the device CAs known now (api_peer.c keeps it) */
	if (e.tls_cert_pem != NULL && api_x509_trust_pem(&e, &trust_pem) < 0)
		fatalx("cannot read the device CAs from the store");
	hc.tls_trust_pem = trust_pem;
	hc.max_body = (size_t)e.conf.max_body;
	hc.threads = (unsigned int)e.conf.threads;
	hc.max_connections = (unsigned int)e.conf.max_connections;
	hc.max_connections_per_ip = (unsigned int)e.conf.max_connections_per_ip;
	hc.header_timeout = (unsigned int)e.conf.header_timeout;
	hc.conn_timeout = (unsigned int)e.conf.conn_timeout;
	hc.body_timeout = (unsigned int)e.conf.body_timeout;
	hc.limits.source_rate = (uint32_t)e.conf.rl_source_rate;
	hc.limits.source_burst = (uint32_t)e.conf.rl_source_burst;
	hc.limits.global_rate = (uint32_t)e.conf.rl_global_rate;
	hc.limits.global_burst = (uint32_t)e.conf.rl_global_burst;
	hc.limits.sources = (uint32_t)e.conf.rl_sources;
	hc.limits.ipv6_prefix = (uint8_t)e.conf.rl_ipv6_prefix;
	hc.stream_wait = api_events_wait;
	raise_nofile((rlim_t)e.conf.max_connections + 256);
	hc.routes = api_routes;
	hc.n_routes = api_n_routes;
	hc.ctx = &e;
	hc.authenticate = authenticate;

	r = http_server_start(&e.http, &hc);
	free(trust_pem);
	trust_pem = NULL;
	if (r < 0)
		fatalx("cannot listen on %s: %s",
			e.conf.unix_socket ? e.conf.unix_socket : e.conf.listen, strerror(-r));
	if (e.conf.unix_socket)
		log_info("listening on unix socket '%s'", e.conf.unix_socket);
	else
		log_info("listening on %s port %u (%s)", e.conf.listen, http_server_port(e.http),
			e.tls_cert_pem ? "https" : "http");

	/*
	 * systemd (Type=notify): READY=1 once the listener is up and every tenant interface
	 * was reconciled; the watchdog is pinged from this loop, so a stuck main thread is
	 * restarted. Without systemd these are no-ops.
	 */
	for (;;) {
		if (!ready && atomic_load(&reconciled)) {
			notify(&e, PS_NOTIFY_READY,
				"READY=1\nSTATUS=serving; tenant interfaces reconciled");
			ready = true;
		}
		if (wd_usec != 0)
			notify(&e, PS_NOTIFY_WATCHDOG, "WATCHDOG=1");
		sig = sigtimedwait(&set, NULL, &tick);
		if (sig < 0)
			continue;
		if (sig == SIGHUP) {
			notify(&e, PS_NOTIFY_RELOADING, "RELOADING=1");
			if (load_tokens(&e) == 0)
				log_info("SIGHUP: tokens reloaded");
			else
				log_warnx("SIGHUP: reload failed, keeping the previous tokens");
			if (e.conf.tls_cert != NULL) {
				if (reload_tls(&e) == 0)
					log_info("SIGHUP: TLS certificate '%s' reloaded",
						e.conf.tls_cert);
				else
					log_warnx("SIGHUP: keeping the previous TLS certificate");
			}
			if (e.conf.crl_dir != NULL && load_crls(&e, "SIGHUP") < 0)
				log_warnx("SIGHUP: keeping the previous CRLs");
			if (ready)
				notify(&e, PS_NOTIFY_READY, "READY=1");
			continue;
		}
		log_info("signal %d: shutting down", sig);
		notify(&e, PS_NOTIFY_STOPPING, "STOPPING=1");
		break;
	}
	stop_services(&e);
	r = 0;
out:
	OPENSSL_cleanse(e.admin_token, sizeof(e.admin_token));
	OPENSSL_cleanse(e.provisioning_token, sizeof(e.provisioning_token));
	free_tenant_tokens(e.tenant_tokens, e.n_tenant_tokens);
	if (e.tls_key_pem != NULL) {
		OPENSSL_cleanse(e.tls_key_pem, strlen(e.tls_key_pem));
		free(e.tls_key_pem);
	}
	free(e.tls_cert_pem);
	crl_set_free(e.crls);
	conf_clear(&e.conf);
	return r;
}
