// SPDX-License-Identifier: MIT
/*
 * enrolld as a cluster node (node.h, docs/cluster.md). Three threads besides the API's:
 *
 *   the ownership loop (owner.c)  up(): the tenant's interface from the store (its key under
 *                                 the KEK, its port, every active device); down(): the
 *                                 interface goes, from what this node remembers of the
 *                                 tenant (no database needed: it may be the database that
 *                                 is gone)
 *   the applier                   follows the event log (the store's LISTEN/NOTIFY wakes it)
 *                                 and applies each device change of a held tenant to its
 *                                 interface, then records in node_applied how far it got
 *   the hook runner               runs the endpoint hook, in order, one at a time, each at
 *                                 most HOOK_TIMEOUT_MS: a hanging hook never holds up a down()
 *
 * Why an applied change is never lost across a change of owner: a node marks a tenant held
 * (plane_tenant_take) before it reads the store to bring the interface up. An event the
 * applier read before that was committed before that read: the new interface has it. An
 * event read after it finds the tenant held and is applied.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/wgproc.h"
#include "enrolld/cluster/node.h"
#include "enrolld/cluster/owner.h"

#define HOOK_TIMEOUT_MS 10000
#define HOOK_QUEUE_MAX 4096
#define APPLY_BATCH 1000
#define WAIT_POLL_MS 20

struct hook_job {
	bool up;
	char tenant[STORE_NAME_MAX];
	char ifname[STORE_IFNAME_MAX];
	char endpoint[STORE_ENDPOINT_MAX];
};

struct cluster {
	struct cluster_conf cf;
	char *conninfo, *node, *hook;
	struct store *s;
	struct plane *p;
	struct owner *owner;

	pthread_mutex_t lock; /* everything below but the threads' own connections */
	pthread_cond_t cond;  /* the hook queue, stopping */
	bool stopping;
	bool hook_stopping;
	struct store_tenant *held; /* the tenants up here, as read when taken */
	size_t n_held;
	struct hook_job *jobs; /* FIFO */
	size_t n_jobs;

	pthread_t applier, hooker;
	bool applier_started, hooker_started;
	PGconn *ac; /* the applier's, for node_applied */

	pthread_mutex_t wait_lock; /* wc */
	PGconn *wc;
};

static void
mono_in(struct timespec *ts, unsigned int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	lease_ts_add_ms(ts, ms);
}

/* ---- the endpoint hook ---------------------------------------------------------------------- */

static void
hook_queue(struct cluster *c, bool up, const struct store_tenant *t)
{
	struct hook_job *j;

	if (c->hook == NULL)
		return;
	pthread_mutex_lock(&c->lock);
	if (c->n_jobs == HOOK_QUEUE_MAX) {
		log_warnx("cluster: endpoint hook queue full; '%s %s' not run", up ? "up" : "down",
			t->name);
	} else {
		j = &c->jobs[c->n_jobs++];
		j->up = up;
		snprintf(j->tenant, sizeof(j->tenant), "%s", t->name);
		snprintf(j->ifname, sizeof(j->ifname), "%s", t->ifname);
		snprintf(j->endpoint, sizeof(j->endpoint), "%s", t->endpoint);
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
}

/* Run one job: `hook up|down <tenant> <ifname> <endpoint>`, ENROLLD_NODE in its environment. */
static void
hook_run(struct cluster *c, const struct hook_job *j)
{
	char *argv[] = { c->hook, j->up ? "up" : "down", (char *)j->tenant, (char *)j->ifname,
		(char *)j->endpoint, NULL };
	char node_env[LEASE_NODE_MAX + 16];
	char *envp[] = { "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		node_env, NULL };
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	struct timespec until, now, nap = { 0, 10 * 1000000 };
	int status = 0, r;
	pid_t pid, w;

	snprintf(node_env, sizeof(node_env), "ENROLLD_NODE=%s", c->node);
	wgproc_spawnattr_init(&attr);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	r = -posix_spawn(&pid, c->hook, &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	if (r < 0) {
		log_warnx("cluster: endpoint hook '%s': %s", c->hook, strerror(-r));
		return;
	}
	mono_in(&until, HOOK_TIMEOUT_MS);
	for (;;) {
		w = waitpid(pid, &status, WNOHANG);
		if (w == pid || (w < 0 && errno != EINTR))
			break;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!lease_ts_before(&now, &until)) {
			log_warnx("cluster: endpoint hook '%s %s %s' still running after %d ms: killed",
				c->hook, argv[1], j->tenant, HOOK_TIMEOUT_MS);
			kill(pid, SIGKILL);
			(void)waitpid(pid, &status, 0);
			return;
		}
		nanosleep(&nap, NULL);
	}
	if (w == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0)
		log_info("cluster: endpoint hook '%s %s %s' done", c->hook, argv[1], j->tenant);
	else
		log_warnx("cluster: endpoint hook '%s %s %s' failed (status %d)", c->hook, argv[1],
			j->tenant, status);
}

static void *
hooker_main(void *arg)
{
	struct cluster *c = arg;
	struct hook_job j;

	pthread_mutex_lock(&c->lock);
	for (;;) {
		while (c->n_jobs == 0 && !c->hook_stopping)
			pthread_cond_wait(&c->cond, &c->lock);
		if (c->n_jobs == 0)
			break;
		j = c->jobs[0];
		memmove(&c->jobs[0], &c->jobs[1], (c->n_jobs - 1) * sizeof(c->jobs[0]));
		c->n_jobs--;
		pthread_mutex_unlock(&c->lock);
		hook_run(c, &j);
		pthread_mutex_lock(&c->lock);
	}
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

/* ---- the ownership loop's callbacks --------------------------------------------------------- */

/* A copy of held tenant @name into @ret (under c->lock); false if not held. */
static bool
held_get(struct cluster *c, const char *name, struct store_tenant *ret, size_t *ret_i)
{
	for (size_t i = 0; i < c->n_held; i++) {
		if (strcmp(c->held[i].name, name) != 0)
			continue;
		if (ret != NULL)
			*ret = c->held[i];
		if (ret_i != NULL)
			*ret_i = i;
		return true;
	}
	return false;
}

/* Forget held tenant @name; whether it was held (takes c->lock). */
static bool
held_remove(struct cluster *c, const char *name, struct store_tenant *ret)
{
	size_t i;
	bool was;

	pthread_mutex_lock(&c->lock);
	was = held_get(c, name, ret, &i);
	if (was)
		c->held[i] = c->held[--c->n_held];
	pthread_mutex_unlock(&c->lock);
	return was;
}

/* A copy of held tenant @name into @ret; false if not held (takes c->lock). */
static bool
held_copy(struct cluster *c, const char *name, struct store_tenant *ret)
{
	bool held;

	pthread_mutex_lock(&c->lock);
	held = held_get(c, name, ret, NULL);
	pthread_mutex_unlock(&c->lock);
	return held;
}

static bool
stopping(struct cluster *c)
{
	bool stop;

	pthread_mutex_lock(&c->lock);
	stop = c->stopping;
	pthread_mutex_unlock(&c->lock);
	return stop;
}

static int
on_up(void *ctx, const char *tenant, int64_t epoch)
{
	struct cluster *c = ctx;
	struct store_tenant t, *nh;
	int r;

	r = store_tenant_get(c->s, tenant, &t);
	if (r < 0) {
		log_warnx("cluster: tenant '%s': reading it: %s %s", tenant, strerror(-r),
			store_errmsg());
		return r;
	}
	pthread_mutex_lock(&c->lock);
	nh = realloc(c->held, (c->n_held + 1) * sizeof(*nh));
	if (nh != NULL) {
		c->held = nh;
		if (!held_get(c, tenant, NULL, NULL))
			c->held[c->n_held++] = t;
	}
	pthread_mutex_unlock(&c->lock);
	if (nh == NULL)
		return -ENOMEM;
	/* Held before the read of its devices (the top of this file says why). */
	r = plane_tenant_take(c->p, c->s, &t);
	if (r < 0) {
		log_warnx("cluster: tenant '%s': bringing it up: %s; leaving it to other nodes",
			tenant, strerror(-r));
		(void)held_remove(c, tenant, NULL);
		return r;
	}
	log_info("cluster: tenant '%s' up on node %s (epoch %lld), interface '%s' port %u",
		tenant, c->node, (long long)epoch, t.ifname, (unsigned int)t.listen_port);
	hook_queue(c, true, &t);
	return 0;
}

static void
on_down(void *ctx, const char *tenant)
{
	struct cluster *c = ctx;
	struct store_tenant t;

	if (!held_remove(c, tenant, &t))
		return;
	plane_tenant_drop(c->p, &t, c->cf.margin_ms / 3);
	log_info("cluster: tenant '%s' down on node %s", tenant, c->node);
	hook_queue(c, false, &t);
}

/* ---- the applier ---------------------------------------------------------------------------- */

/* Record in node_applied that this node's interfaces hold the log up to @seq. */
static int
publish(struct cluster *c, uint64_t seq)
{
	static const char sql[] =
		"INSERT INTO node_applied (node, seq) VALUES ($1, $2::int8) "
		"ON CONFLICT (node) DO UPDATE SET seq = excluded.seq, updated = clock_timestamp() "
		"RETURNING seq";
	char v[24];
	const char *vals[2] = { c->node, v };
	struct timespec until;
	PGresult *res = NULL;
	int r;

	mono_in(&until, 2000);
	if (c->ac == NULL) {
		r = lease_connect(c->conninfo, &c->ac, &until);
		if (r < 0)
			return r;
	}
	snprintf(v, sizeof(v), "%llu", (unsigned long long)seq);
	r = lease_query_params(c->ac, sql, 2, vals, &res, &until);
	PQclear(res);
	if (r < 0) {
		PQfinish(c->ac);
		c->ac = NULL;
	}
	return r;
}

/* Apply one batch of events to the held tenants' interfaces. */
static void
apply_events(struct cluster *c, const struct store_event *ev, size_t n)
{
	char (*rotated)[STORE_NAME_MAX];
	struct store_tenant t;
	size_t n_rot = 0, k;
	int r;

	rotated = calloc(n, sizeof(*rotated));
	for (size_t i = 0; i < n; i++) {
		if (ev[i].device == 0 || ev[i].kind == STORE_EV_UP || ev[i].kind == STORE_EV_DOWN ||
		    !held_copy(c, ev[i].tenant, &t))
			continue;
		if (ev[i].kind != STORE_EV_ROTATED) {
			/* the device's current key: set if active, removed if revoked */
			r = plane_device_sync(c->p, c->s, &t, ev[i].device, NULL, 0);
			if (r < 0)
				log_warnx("cluster: tenant '%s': applying device %llu: %s", t.name,
					(unsigned long long)ev[i].device, strerror(-r));
			continue;
		}
		/* A rotation replaced a key the event does not carry: reconcile, once a batch. */
		if (rotated == NULL) {
			(void)plane_tenant_reconcile(c->p, c->s, &t);
			continue;
		}
		for (k = 0; k < n_rot && strcmp(rotated[k], t.name) != 0; k++)
			;
		if (k == n_rot)
			snprintf(rotated[n_rot++], STORE_NAME_MAX, "%s", t.name);
	}
	for (k = 0; k < n_rot; k++) {
		if (held_copy(c, rotated[k], &t) && plane_tenant_reconcile(c->p, c->s, &t) < 0)
			log_warnx("cluster: tenant '%s': reconciling after a rotation failed", t.name);
	}
	free(rotated);
}

static void *
applier_main(void *arg)
{
	struct cluster *c = arg;
	struct store_event *ev = NULL;
	uint64_t last = 0, published = 0;
	size_t n = 0;
	int r;

	while (store_events_last(c->s, &last) < 0) {
		if (stopping(c))
			return NULL;
		sleep(1);
	}
	while (!stopping(c)) {
		if (last != published && publish(c, last) == 0)
			published = last;
		r = store_events_wait(c->s, last, last != published ? 200 : 500);
		if (r <= 0)
			continue;
		r = store_events_read(c->s, last, APPLY_BATCH, &ev, &n);
		if (r < 0 || n == 0) {
			free(ev);
			ev = NULL;
			if (r < 0)
				sleep(1);
			continue;
		}
		apply_events(c, ev, n);
		last = ev[n - 1].seq;
		free(ev);
		ev = NULL;
	}
	if (c->ac != NULL)
		PQfinish(c->ac);
	c->ac = NULL;
	return NULL;
}

/* ---- waiting for the owner ------------------------------------------------------------------ */

int
cluster_wait_applied(struct cluster *c, const char *tenant)
{
	static const char sql[] =
		"SELECT l.node, (l.expires > clock_timestamp())::int, coalesce(a.seq, 0) "
		"FROM tenant_leases l LEFT JOIN node_applied a ON a.node = l.node "
		"WHERE l.tenant = $1";
	const char *vals[1] = { tenant };
	struct timespec deadline, now, until, nap = { 0, WAIT_POLL_MS * 1000000 };
	uint64_t target = 0;
	PGresult *res;
	int r;

	/* Held here: the request's own plane_device_sync() has changed the interface. */
	if (plane_tenant_is_held(c->p, tenant))
		return 0;
	r = store_events_last(c->s, &target); /* at least the caller's committed change */
	if (r < 0)
		return r;
	mono_in(&deadline, c->cf.wait_ms);
	for (;;) {
		clock_gettime(CLOCK_MONOTONIC, &now);
		if (!lease_ts_before(&now, &deadline))
			return -ETIMEDOUT;
		mono_in(&until, 1000);
		if (lease_ts_before(&deadline, &until))
			until = deadline;
		pthread_mutex_lock(&c->wait_lock);
		res = NULL;
		r = c->wc != NULL ? 0 : lease_connect(c->conninfo, &c->wc, &until);
		if (r == 0)
			r = lease_query_params(c->wc, sql, 1, vals, &res, &until);
		if (r < 0 && c->wc != NULL) {
			PQfinish(c->wc);
			c->wc = NULL;
		}
		pthread_mutex_unlock(&c->wait_lock);
		if (r == 0) {
			bool done = PQntuples(res) == 0 || atoi(PQgetvalue(res, 0, 1)) == 0 ||
				    strtoull(PQgetvalue(res, 0, 2), NULL, 10) >= target;

			PQclear(res);
			if (done)
				return 0;
		}
		nanosleep(&nap, NULL);
	}
}

int
cluster_holder(struct cluster *c, const char *tenant, char ret_node[64], int64_t *ret_epoch)
{
	struct timespec until;
	int r;

	mono_in(&until, 1000);
	pthread_mutex_lock(&c->wait_lock);
	r = c->wc != NULL ? 0 : lease_connect(c->conninfo, &c->wc, &until);
	if (r == 0)
		r = lease_holder(c->wc, tenant, ret_node, ret_epoch, &until);
	if (r < 0 && r != -ENOENT && c->wc != NULL) {
		PQfinish(c->wc);
		c->wc = NULL;
	}
	pthread_mutex_unlock(&c->wait_lock);
	return r;
}

/* ---- start and stop ------------------------------------------------------------------------- */

size_t
cluster_held(struct cluster *c)
{
	size_t n;

	pthread_mutex_lock(&c->lock);
	n = c->n_held;
	pthread_mutex_unlock(&c->lock);
	return n;
}

/* Interfaces of the store's tenants left on this host by an earlier run: this node holds none. */
static void
clear_leftovers(struct cluster *c)
{
	struct store_tenant *ts = NULL;
	size_t n = 0;

	if (store_tenant_list(c->s, &ts, &n) < 0)
		return;
	for (size_t i = 0; i < n; i++)
		plane_tenant_drop(c->p, &ts[i], 0);
	free(ts);
}

int
cluster_start(struct cluster **ret, const struct cluster_conf *cf, struct store *s,
	struct plane *p)
{
	struct owner_conf oc = { 0 };
	struct owner_ops ops;
	struct cluster *c;
	pthread_condattr_t ca;
	int r;

	if (cf->conninfo == NULL || cf->node == NULL ||
	    strlen(cf->node) >= sizeof(oc.lease.node) || cf->node[0] == '\0')
		return -EINVAL;
	snprintf(oc.lease.node, sizeof(oc.lease.node), "%s", cf->node);
	oc.lease.lease_ms = cf->lease_ms;
	oc.lease.margin_ms = cf->margin_ms;
	oc.tick_ms = cf->tick_ms;
	r = lease_conf_check(&oc.lease);
	if (r < 0 || cf->tick_ms == 0 || cf->tick_ms * 3 > cf->lease_ms)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (c == NULL)
		return -ENOMEM;
	c->cf = *cf;
	c->conninfo = strdup(cf->conninfo);
	c->node = strdup(cf->node);
	c->hook = cf->endpoint_hook != NULL ? strdup(cf->endpoint_hook) : NULL;
	c->jobs = calloc(HOOK_QUEUE_MAX, sizeof(*c->jobs));
	if (c->conninfo == NULL || c->node == NULL || c->jobs == NULL ||
	    (cf->endpoint_hook != NULL && c->hook == NULL)) {
		r = -ENOMEM;
		goto fail;
	}
	c->s = s;
	c->p = p;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->wait_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&c->cond, &ca);
	pthread_condattr_destroy(&ca);
	clear_leftovers(c);
	if (c->hook != NULL) {
		r = -pthread_create(&c->hooker, NULL, hooker_main, c);
		if (r < 0)
			goto fail_threads;
		c->hooker_started = true;
	}
	r = -pthread_create(&c->applier, NULL, applier_main, c);
	if (r < 0)
		goto fail_threads;
	c->applier_started = true;
	ops = (struct owner_ops){ .up = on_up, .down = on_down, .ctx = c };
	r = owner_start(&c->owner, c->conninfo, &oc, &ops);
	if (r < 0)
		goto fail_threads;
	log_info("cluster: node %s: lease %u ms, margin %u ms, tick %u ms, endpoint hook %s",
		c->node, cf->lease_ms, cf->margin_ms, cf->tick_ms, c->hook ? c->hook : "none");
	*ret = c;
	return 0;
fail_threads:
	cluster_stop(c);
	return r;
fail:
	free(c->jobs);
	free(c->hook);
	free(c->node);
	free(c->conninfo);
	free(c);
	return r;
}

void
cluster_stop(struct cluster *c)
{
	if (c == NULL)
		return;
	/* The loop first: it downs every held tenant (queueing their hooks), then releases. */
	owner_stop(c->owner);
	c->owner = NULL;
	pthread_mutex_lock(&c->lock);
	c->stopping = true;
	c->hook_stopping = true; /* the runner empties its queue, then ends */
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (c->applier_started)
		pthread_join(c->applier, NULL);
	if (c->hooker_started)
		pthread_join(c->hooker, NULL);
	if (c->wc != NULL)
		PQfinish(c->wc);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->wait_lock);
	pthread_mutex_destroy(&c->lock);
	free(c->held);
	free(c->jobs);
	free(c->hook);
	free(c->node);
	free(c->conninfo);
	free(c);
}
