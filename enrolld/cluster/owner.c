// SPDX-License-Identifier: MIT
/*
 * The tenant ownership loop (owner.h). One thread, one connection. The rule it keeps: a
 * held tenant is down() no later than its lease's deadline, however long the database
 * takes to answer — every wait is bounded by the nearest deadline, and the thread never
 * sleeps past one.
 */
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "enrolld/cluster/owner.h"

#define OWNER_MAX_DEFAULT 1024
/* a tenant whose up() failed is left to other nodes for this many ticks */
#define OWNER_COOLDOWN_TICKS 10

struct held {
	struct lease l;
};

struct cooldown {
	char tenant[STORE_NAME_MAX];
	unsigned int ticks;
};

struct owner {
	char *conninfo;
	struct owner_conf cf;
	struct owner_ops ops;
	pthread_t thread;
	pthread_mutex_t lock; /* stopping, n_held (for readers), pid */
	pthread_cond_t cond;  /* CLOCK_MONOTONIC; wakes the loop to stop */
	bool stopping;
	PGconn *c; /* the loop's only */
	int pid;
	struct held *held;
	size_t n_held; /* the loop's own */
	size_t count;  /* n_held, under lock */
	struct cooldown *cool;
	size_t n_cool;
};

static void
mono_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

/* The earlier of @t and every held deadline. */
static struct timespec
bound(const struct owner *o, struct timespec t)
{
	for (size_t i = 0; i < o->n_held; i++)
		if (lease_ts_before(&o->held[i].l.deadline, &t))
			t = o->held[i].l.deadline;
	return t;
}

static void
conn_drop(struct owner *o)
{
	PQfinish(o->c);
	o->c = NULL;
	pthread_mutex_lock(&o->lock);
	o->pid = 0;
	pthread_mutex_unlock(&o->lock);
}

/* Connect without blocking past @until. 0 or a negative errno (the caller retries). */
static int
conn_ensure(struct owner *o, const struct timespec *until)
{
	int r;

	if (o->c != NULL && PQstatus(o->c) == CONNECTION_OK)
		return 0;
	if (o->c != NULL)
		conn_drop(o);
	r = lease_connect(o->conninfo, &o->c, until);
	if (r == -ECONNREFUSED)
		log_warnx("cluster: node %s cannot reach the database: %s", o->cf.lease.node,
			lease_errmsg());
	if (r < 0)
		return r;
	pthread_mutex_lock(&o->lock);
	o->pid = PQbackendPID(o->c);
	pthread_mutex_unlock(&o->lock);
	log_info("cluster: node %s connected to the database", o->cf.lease.node);
	return 0;
}

/* n_held as other threads may read it (owner_count). */
static void
count_publish(struct owner *o)
{
	pthread_mutex_lock(&o->lock);
	o->count = o->n_held;
	pthread_mutex_unlock(&o->lock);
}

static void
held_remove(struct owner *o, size_t i, const char *why)
{
	log_info("cluster: node %s gives up tenant %s (%s)", o->cf.lease.node,
		o->held[i].l.tenant, why);
	o->ops.down(o->ops.ctx, o->held[i].l.tenant);
	o->held[i] = o->held[--o->n_held];
	count_publish(o);
}

/* down() every held tenant whose deadline is not after @now. */
static void
enforce_deadlines(struct owner *o)
{
	struct timespec now;

	mono_now(&now);
	for (size_t i = 0; i < o->n_held;) {
		if (!lease_valid(&o->held[i].l, &now))
			held_remove(o, i, "its lease was not renewed in time");
		else
			i++;
	}
}

static bool
cooling(const struct owner *o, const char *tenant)
{
	for (size_t i = 0; i < o->n_cool; i++)
		if (strcmp(o->cool[i].tenant, tenant) == 0)
			return true;
	return false;
}

static void
cool_tick(struct owner *o)
{
	for (size_t i = 0; i < o->n_cool;) {
		if (--o->cool[i].ticks == 0)
			o->cool[i] = o->cool[--o->n_cool];
		else
			i++;
	}
}

/* Renew every held lease; a lost one is down()ed. A dead connection ends the round. */
static void
renew_all(struct owner *o)
{
	for (size_t i = 0; i < o->n_held;) {
		struct timespec until = o->held[i].l.deadline;
		int r = lease_renew(o->c, &o->cf.lease, &o->held[i].l, &until);

		if (r == -ESTALE) {
			held_remove(o, i, "another node holds it, or it expired");
			continue;
		}
		if (r < 0) {
			log_warnx("cluster: node %s: renewing tenant %s: %s %s", o->cf.lease.node,
				o->held[i].l.tenant, strerror(-r), lease_errmsg());
			conn_drop(o);
			return;
		}
		i++;
	}
}

/*
 * Take free tenants, in random order, at most half of those free plus one per tick (so that
 * nodes starting together share them; a lone survivor has them all within a few ticks), up
 * to max_tenants.
 */
static void
take_free(struct owner *o, const struct timespec *tick_end)
{
	static const char sql[] =
		"SELECT t.name FROM tenants t LEFT JOIN tenant_leases l ON l.tenant = t.name "
		"WHERE l.tenant IS NULL OR l.expires <= clock_timestamp() ORDER BY random()";
	struct timespec until = bound(o, *tick_end), now;
	PGresult *res = NULL;
	int r, n, taken;

	if (o->n_held >= o->cf.max_tenants)
		return;
	r = lease_query(o->c, sql, &res, &until);
	if (r < 0) {
		log_warnx("cluster: node %s: looking for free tenants: %s %s", o->cf.lease.node,
			strerror(-r), lease_errmsg());
		conn_drop(o);
		return;
	}
	n = PQntuples(res);
	taken = 0;
	for (int i = 0; i < n && taken <= n / 2 && o->n_held < o->cf.max_tenants &&
	     !__atomic_load_n(&o->stopping, __ATOMIC_RELAXED); i++) {
		const char *tenant = PQgetvalue(res, i, 0);
		struct held *h = &o->held[o->n_held];

		if (cooling(o, tenant))
			continue;
		until = bound(o, *tick_end);
		r = lease_acquire(o->c, &o->cf.lease, tenant, &h->l, &until);
		if (r == -EBUSY || r == -ENOENT)
			continue;
		if (r < 0) {
			log_warnx("cluster: node %s: taking tenant %s: %s %s", o->cf.lease.node,
				tenant, strerror(-r), lease_errmsg());
			conn_drop(o);
			break;
		}
		o->n_held++;
		taken++;
		count_publish(o);
		log_info("cluster: node %s takes tenant %s (epoch %lld)", o->cf.lease.node,
			tenant, (long long)h->l.epoch);
		r = o->ops.up(o->ops.ctx, tenant, h->l.epoch);
		if (r < 0) {
			log_warnx("cluster: node %s cannot bring tenant %s up (%s): giving it back",
				o->cf.lease.node, tenant, strerror(-r));
			until = bound(o, *tick_end);
			o->ops.down(o->ops.ctx, tenant);
			(void)lease_release(o->c, &o->cf.lease, &h->l, &until);
			o->n_held--;
			count_publish(o);
			if (o->n_cool < o->cf.max_tenants) {
				snprintf(o->cool[o->n_cool].tenant, STORE_NAME_MAX, "%s", tenant);
				o->cool[o->n_cool++].ticks = OWNER_COOLDOWN_TICKS;
			}
		}
		/*
		 * up() may take a while (a whole interface from the database): whatever it held
		 * past its deadline goes now, and past the tick the renewals come first.
		 */
		enforce_deadlines(o);
		mono_now(&now);
		if (!lease_ts_before(&now, tick_end))
			break;
	}
	PQclear(res);
}

static void *
owner_main(void *arg)
{
	struct owner *o = arg;
	struct timespec tick_end, wake;

	pthread_mutex_lock(&o->lock);
	while (!o->stopping) {
		pthread_mutex_unlock(&o->lock);
		mono_now(&tick_end);
		lease_ts_add_ms(&tick_end, o->cf.tick_ms);
		wake = bound(o, tick_end);
		if (conn_ensure(o, &wake) == 0) {
			renew_all(o);
			if (o->c != NULL)
				take_free(o, &tick_end);
		}
		enforce_deadlines(o);
		cool_tick(o);
		pthread_mutex_lock(&o->lock);
		/* sleep to the next tick, or to the nearest deadline if that comes first */
		while (!o->stopping) {
			struct timespec now;

			wake = bound(o, tick_end);
			mono_now(&now);
			if (!lease_ts_before(&now, &wake))
				break;
			pthread_cond_timedwait(&o->cond, &o->lock, &wake);
		}
		if (o->n_held > 0) {
			pthread_mutex_unlock(&o->lock);
			enforce_deadlines(o);
			pthread_mutex_lock(&o->lock);
		}
	}
	pthread_mutex_unlock(&o->lock);

	/* A clean stop: down first, then let the others have them at once. */
	mono_now(&tick_end);
	lease_ts_add_ms(&tick_end, o->cf.tick_ms);
	while (o->n_held > 0) {
		struct lease l = o->held[o->n_held - 1].l;

		held_remove(o, o->n_held - 1, "stopping");
		if (o->c != NULL && lease_release(o->c, &o->cf.lease, &l, &tick_end) == -ETIMEDOUT)
			conn_drop(o);
	}
	if (o->c != NULL)
		conn_drop(o);
	return NULL;
}

int
owner_start(struct owner **ret, const char *conninfo, const struct owner_conf *cf,
	const struct owner_ops *ops)
{
	pthread_condattr_t ca;
	struct owner *o;
	int r;

	r = lease_conf_check(&cf->lease);
	if (r < 0)
		return r;
	if (cf->tick_ms == 0 || cf->tick_ms * 3 > cf->lease.lease_ms || ops->up == NULL ||
	    ops->down == NULL)
		return -EINVAL;
	o = calloc(1, sizeof(*o));
	if (o == NULL)
		return -ENOMEM;
	o->cf = *cf;
	if (o->cf.max_tenants == 0)
		o->cf.max_tenants = OWNER_MAX_DEFAULT;
	o->ops = *ops;
	o->conninfo = strdup(conninfo);
	o->held = calloc(o->cf.max_tenants, sizeof(*o->held));
	o->cool = calloc(o->cf.max_tenants, sizeof(*o->cool));
	if (o->conninfo == NULL || o->held == NULL || o->cool == NULL) {
		r = -ENOMEM;
		goto fail;
	}
	pthread_mutex_init(&o->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&o->cond, &ca);
	pthread_condattr_destroy(&ca);
	r = -pthread_create(&o->thread, NULL, owner_main, o);
	if (r < 0) {
		pthread_cond_destroy(&o->cond);
		pthread_mutex_destroy(&o->lock);
		goto fail;
	}
	*ret = o;
	return 0;
fail:
	free(o->cool);
	free(o->held);
	free(o->conninfo);
	free(o);
	return r;
}

void
owner_stop(struct owner *o)
{
	if (o == NULL)
		return;
	pthread_mutex_lock(&o->lock);
	o->stopping = true;
	pthread_cond_signal(&o->cond);
	pthread_mutex_unlock(&o->lock);
	pthread_join(o->thread, NULL);
	pthread_cond_destroy(&o->cond);
	pthread_mutex_destroy(&o->lock);
	free(o->cool);
	free(o->held);
	free(o->conninfo);
	free(o);
}

size_t
owner_count(struct owner *o)
{
	size_t n;

	pthread_mutex_lock(&o->lock);
	n = o->count;
	pthread_mutex_unlock(&o->lock);
	return n;
}

int
owner_backend_pid(struct owner *o)
{
	int pid;

	pthread_mutex_lock(&o->lock);
	pid = o->pid;
	pthread_mutex_unlock(&o->lock);
	return pid;
}
