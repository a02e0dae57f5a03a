// SPDX-License-Identifier: MIT
/*
 * Reachability of the devices (DESIGN.md, "Health"). Handshakes renew only every two
 * minutes, so they cannot tell a silent device from a gone one; the receive counter
 * advances on every keepalive. Per tick, one wg_get_device per tenant interface, then per
 * active device:
 *
 *   up     its rx counter advanced within 3 x keepalive (the tenant's, or the default)
 *   down   otherwise
 *   never  it has never completed a handshake (and was never seen up)
 *
 * "Advanced" is dated at the previous tick (the last moment the old value was seen), the
 * earliest the advance can have happened: a device whose link is cut is reported down at
 * most 3 x keepalive + one tick after its last packet, and one that keeps sending is never
 * reported down as long as keepalive + tick < 3 x keepalive.
 *
 * Transitions are written with store_health_update (one commit per tick, which appends the
 * up/down events the event stream serves), and the gauges of devices by tenant and state
 * are set. The last tick's counters are kept in memory for the API.
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/log.h"
#include "common/wg.h"
#include "enrolld/enrolld.h"

struct hentry {
	uint64_t id;
	struct health_peer hp;
	int64_t last_advance; /* unix seconds; 0 = never seen traffic */
};

struct health {
	struct store *s;
	struct plane *p;
	unsigned int interval;
	unsigned int default_keepalive;
	pthread_mutex_t lock; /* entries */
	struct hentry *entries; /* sorted by id */
	size_t n_entries;
	int64_t last_tick;
	pthread_mutex_t stop_lock;
	pthread_cond_t stop_cond;
	bool stopping;
	bool started;
	pthread_t thread;
};

static int
cmp_entry(const void *a, const void *b)
{
	const struct hentry *x = a, *y = b;

	return x->id < y->id ? -1 : x->id > y->id;
}

static int
cmp_peer_ptr(const void *a, const void *b)
{
	const struct wg_peer *const *x = a, *const *y = b;

	return memcmp((*x)->public_key, (*y)->public_key, WG_KEY_LEN);
}

static const struct hentry *
find_entry(const struct hentry *arr, size_t n, uint64_t id)
{
	struct hentry key = { .id = id };

	return n ? bsearch(&key, arr, n, sizeof(*arr), cmp_entry) : NULL;
}

static const char *
state_name(int state)
{
	switch (state) {
	case STORE_HEALTH_UP:
		return "up";
	case STORE_HEALTH_DOWN:
		return "down";
	default:
		return "never";
	}
}

/* Grow-by-one helpers for the tick's arrays. */
static int
push_entry(struct hentry **arr, size_t *n, size_t *cap, const struct hentry *e)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 64;
		struct hentry *na = realloc(*arr, nc * sizeof(*na));

		if (na == NULL)
			return -ENOMEM;
		*arr = na;
		*cap = nc;
	}
	(*arr)[(*n)++] = *e;
	return 0;
}

static int
push_health(struct store_health **arr, size_t *n, size_t *cap, const struct store_health *h)
{
	if (*n == *cap) {
		size_t nc = *cap ? *cap * 2 : 16;
		struct store_health *na = realloc(*arr, nc * sizeof(*na));

		if (na == NULL)
			return -ENOMEM;
		*arr = na;
		*cap = nc;
	}
	(*arr)[(*n)++] = *h;
	return 0;
}

struct tick {
	struct hentry *next;
	size_t n_next, cap_next;
	struct store_health *changes;
	size_t n_changes, cap_changes;
	int64_t now;
	int64_t prev_tick;
};

static int
tick_tenant(struct health *h, struct tick *tk, const struct store_tenant *t)
{
	struct store_device *devs = NULL, *revoked = NULL;
	const struct wg_peer **peers = NULL;
	struct wg_device *dump = NULL;
	size_t n_devs = 0, n_revoked = 0;
	uint64_t count[3] = { 0 }, first, last, pool = 0;
	int64_t window, down_longest = 0;
	int r;

	window = 3 * (int64_t)(t->keepalive ? t->keepalive : h->default_keepalive);
	r = store_device_list_all(h->s, t->name, STORE_DEVICE_ACTIVE, &devs, &n_devs);
	if (r < 0)
		goto out;
	r = store_device_list_all(h->s, t->name, STORE_DEVICE_REVOKED, &revoked, &n_revoked);
	if (r < 0)
		goto out;
	r = plane_dump(h->p, t, &dump);
	if (r < 0) {
		/* No interface: nobody of this tenant is reachable. Judged below as silence. */
		log_debug("health: tenant '%s': reading '%s': %s", t->name, t->ifname, strerror(-r));
		dump = NULL;
	}
	if (dump != NULL && dump->n_peers > 0) {
		peers = calloc(dump->n_peers, sizeof(*peers));
		if (peers == NULL) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < dump->n_peers; i++)
			peers[i] = &dump->peers[i];
		qsort(peers, dump->n_peers, sizeof(*peers), cmp_peer_ptr);
	}

	for (size_t i = 0; i < n_devs; i++) {
		const struct store_device *d = &devs[i];
		const struct hentry *old;
		struct hentry e = { .id = d->id };
		const struct wg_peer *const *found = NULL;
		struct wg_peer probe;
		const struct wg_peer *pp = &probe;
		uint8_t persisted;

		memcpy(probe.public_key, d->wg_pubkey, WG_KEY_LEN);
		if (peers != NULL)
			found = bsearch(&pp, peers, dump->n_peers, sizeof(*peers), cmp_peer_ptr);
		pthread_mutex_lock(&h->lock);
		old = find_entry(h->entries, h->n_entries, d->id);
		if (old != NULL)
			e = *old;
		pthread_mutex_unlock(&h->lock);
		if (old == NULL) {
			struct store_health sh;

			if (store_health_get(h->s, d->id, &sh) == 0) {
				e.hp.state = sh.state;
				e.hp.since = sh.since;
			}
		}
		persisted = e.hp.state;
		e.hp.seen = found != NULL;
		if (found != NULL) {
			const struct wg_peer *peer = *found;

			if (old == NULL || !old->hp.seen) {
				/* First sight: the handshake is the best date of its last traffic. */
				if (peer->last_handshake_sec > 0 && peer->rx_bytes > 0 &&
				    peer->last_handshake_sec > e.last_advance)
					e.last_advance = peer->last_handshake_sec;
			} else if (peer->rx_bytes != old->hp.rx_bytes && peer->rx_bytes > 0) {
				e.last_advance = tk->prev_tick ? tk->prev_tick : tk->now;
			}
			e.hp.last_handshake = peer->last_handshake_sec;
			e.hp.rx_bytes = peer->rx_bytes;
			e.hp.tx_bytes = peer->tx_bytes;
		}
		if (e.last_advance > 0 && tk->now - e.last_advance <= window)
			e.hp.state = STORE_HEALTH_UP;
		else if (e.last_advance > 0 || persisted != STORE_HEALTH_NEVER)
			e.hp.state = STORE_HEALTH_DOWN;
		else
			e.hp.state = STORE_HEALTH_NEVER;
		if (e.hp.state != persisted) {
			struct store_health ch = { .device = d->id, .state = e.hp.state,
				.since = tk->now };

			e.hp.since = tk->now;
			r = push_health(&tk->changes, &tk->n_changes, &tk->cap_changes, &ch);
			if (r < 0)
				goto out;
			log_info("health: device %llu of '%s' is %s (was %s)",
				(unsigned long long)d->id, t->name, state_name(e.hp.state),
				state_name(persisted));
		}
		count[e.hp.state == STORE_HEALTH_UP ? 0 : e.hp.state == STORE_HEALTH_DOWN ? 1 : 2]++;
		if (e.hp.state == STORE_HEALTH_DOWN && tk->now - e.hp.since > down_longest)
			down_longest = tk->now - e.hp.since;
		r = push_entry(&tk->next, &tk->n_next, &tk->cap_next, &e);
		if (r < 0)
			goto out;
	}
	metrics_set_devices(t->name, "up", count[0]);
	metrics_set_devices(t->name, "down", count[1]);
	metrics_set_devices(t->name, "never", count[2]);
	metrics_set_devices(t->name, "revoked", n_revoked);
	/* The IPv4 pool: usable offsets less the control plane's own; revoked devices keep theirs. */
	if (addr_usable_range(&t->prefix4, &first, &last) == 0)
		pool = last - first;
	metrics_set_tenant(t->name, (uint64_t)down_longest, pool, n_devs + n_revoked);
	r = 0;
out:
	free(peers);
	wg_device_free(dump);
	free(devs);
	free(revoked);
	return r;
}

int
health_tick(struct health *h)
{
	struct store_tenant *ts = NULL;
	struct tick tk = { 0 };
	size_t n_ts = 0;
	int r;

	tk.now = (int64_t)time(NULL);
	pthread_mutex_lock(&h->lock);
	tk.prev_tick = h->last_tick;
	pthread_mutex_unlock(&h->lock);
	r = store_tenant_list(h->s, &ts, &n_ts);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n_ts; i++) {
		r = tick_tenant(h, &tk, &ts[i]);
		if (r < 0)
			goto out;
	}
	if (tk.n_changes > 0) {
		r = store_health_update(h->s, tk.changes, tk.n_changes);
		if (r < 0) {
			log_warnx("health: recording %zu transition(s): %s", tk.n_changes,
				strerror(-r));
			/* Keep the old view, so the same transitions are tried again next tick. */
			goto out;
		}
	}
	if (tk.n_next > 1)
		qsort(tk.next, tk.n_next, sizeof(*tk.next), cmp_entry);
	pthread_mutex_lock(&h->lock);
	free(h->entries);
	h->entries = tk.next;
	h->n_entries = tk.n_next;
	h->last_tick = tk.now;
	pthread_mutex_unlock(&h->lock);
	tk.next = NULL;
	r = (int)tk.n_changes;
out:
	free(ts);
	free(tk.next);
	free(tk.changes);
	return r;
}

int
health_peer_get(struct health *h, uint64_t device, struct health_peer *ret)
{
	const struct hentry *e;
	int r = -ENOENT;

	if (h == NULL)
		return -ENOENT;
	pthread_mutex_lock(&h->lock);
	e = find_entry(h->entries, h->n_entries, device);
	if (e != NULL) {
		*ret = e->hp;
		r = 0;
	}
	pthread_mutex_unlock(&h->lock);
	return r;
}

static void *
health_main(void *arg)
{
	struct health *h = arg;
	struct timespec deadline;
	int r;

	pthread_mutex_lock(&h->stop_lock);
	while (!h->stopping) {
		pthread_mutex_unlock(&h->stop_lock);
		r = health_tick(h);
		if (r < 0)
			log_debug("health: tick: %s", strerror(-r));
		pthread_mutex_lock(&h->stop_lock);
		clock_gettime(CLOCK_MONOTONIC, &deadline);
		deadline.tv_sec += h->interval;
		while (!h->stopping &&
		       pthread_cond_timedwait(&h->stop_cond, &h->stop_lock, &deadline) == 0)
			;
	}
	pthread_mutex_unlock(&h->stop_lock);
	return NULL;
}

int
health_new(struct health **ret, struct store *s, struct plane *p, unsigned int interval,
	unsigned int default_keepalive)
{
	pthread_condattr_t ca;
	struct health *h;
	int rc;

	h = calloc(1, sizeof(*h));
	if (h == NULL)
		return -ENOMEM;
	h->s = s;
	h->p = p;
	h->interval = interval ? interval : 5;
	h->default_keepalive = default_keepalive ? default_keepalive : 25;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_init(&h->stop_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->stop_cond, &ca);
	pthread_condattr_destroy(&ca);
	rc = pthread_create(&h->thread, NULL, health_main, h);
	if (rc != 0) {
		health_free(h);
		return -rc;
	}
	h->started = true;
	*ret = h;
	return 0;
}

void
health_free(struct health *h)
{
	if (h == NULL)
		return;
	if (h->started) {
		pthread_mutex_lock(&h->stop_lock);
		h->stopping = true;
		pthread_cond_broadcast(&h->stop_cond);
		pthread_mutex_unlock(&h->stop_lock);
		pthread_join(h->thread, NULL);
	}
	pthread_cond_destroy(&h->stop_cond);
	pthread_mutex_destroy(&h->stop_lock);
	pthread_mutex_destroy(&h->lock);
	free(h->entries);
	free(h);
}
