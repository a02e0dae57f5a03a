// SPDX-License-Identifier: MIT
/*
 * Reachability of the devices (DESIGN.md, "Health"). Handshakes renew only every two
 * minutes, so they cannot tell a silent device from a gone one; the receive counter
 * advances on every keepalive. Per tick, one read of each tenant's interface, then per
 * active device:
 *
 *   up     its rx counter advanced within 3 x keepalive (the tenant's, or the default)
 *   down   otherwise
 *   never  it has never completed a handshake (and was never seen up)
 *
 * "Advanced" is dated at the previous tick (the last moment the old value was seen), the
 * earliest the advance can have happened: a device whose link is cut is reported down at
 * most 3 x keepalive + one tick after its last packet, and one that keeps sending is never
 * reported down as long as keepalive + tick < 3 x keepalive. A device that was up when the
 * monitor started (enrolld restarted) is dated at the first tick: it is reported down at most
 * 3 x keepalive + one tick after the start if its counter does not move.
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
#include <sys/random.h>
#include <time.h>

#include "common/log.h"
#include "common/wg.h"
#include "enrolld/enrolld.h"

/*
 * What a tick costs, at 100,000 devices. The devices are not read from the store at every
 * tick: the monitor keeps every device (id, tenant, key, state) in memory, loads them once,
 * and then follows the store's event log, which has an event in the same commit as every
 * change of a device's key or state (enrolled, rotated, revoked; a deletion needs the device
 * revoked first); each event's device is read again. A gap in the log (trimmed events) or
 * more changes than a tenth of the fleet reads everything again. Each interface's peers are
 * found by a hash of the public key, not sorted, in a read of the keys and counters alone
 * (plane_peer_stats: no allowed IPs, endpoints or preshared keys, and no wait for the lock
 * enrollments take). What is left per tick is that read and one pass over the devices.
 */
#define HEALTH_RELOAD_FRACTION 10
/*
 * Devices not judged yet (all of them at the first tick after a start) start from their
 * stored health. When they are at least an eighth of the devices, the stored records are
 * read at once (store_health_list: one cursor walk, 24 bytes a device for the tick) instead
 * of one read transaction each: 1,000,000 point reads at a start otherwise.
 */
#define HEALTH_BULK_FRACTION 8

struct hentry {
	uint64_t id;
	uint32_t tenant; /* index in health.tnames */
	uint8_t dstate;	 /* enum store_device_state */
	bool known;	 /* hp.state was read from the store (or set by a tick) */
	uint8_t key[WG_KEY_LEN];
	struct health_peer hp;
	int64_t last_advance; /* unix seconds; 0 = never seen traffic */
};

/* One tenant's interface at this tick, with an open-addressing index by key. */
struct hiface {
	struct wg_peer_stats *peers; /* as read */
	size_t n_peers;
	uint32_t *slots; /* 1 + index in peers, 0 = empty; a power of two, at least 2 x n */
	size_t mask;
	bool present; /* in the store's tenant list at this tick */
	const struct store_tenant *t;
	uint64_t count[3]; /* up, down, never */
	uint64_t n_revoked, n_devs;
	int64_t down_longest;
};

struct health {
	struct store *s;
	struct plane *p;
	unsigned int interval;
	unsigned int default_keepalive;
	pthread_mutex_t lock;	/* entries, last_tick: the API reads them */
	struct hentry *entries; /* every device, sorted by id; written by the tick only */
	size_t n_entries;
	int64_t last_tick;
	/* the tick's own state (one tick at a time: the thread, or a caller in tests) */
	bool loaded;
	uint64_t seq;	    /* events up to this one are reflected in entries */
	char (*tnames)[STORE_NAME_MAX]; /* tenant names seen, never reordered */
	size_t n_tnames;
	uint64_t seed; /* of the key hash: device keys are chosen by devices */
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

/* The index of tenant @name in h->tnames, added if new; -ENOMEM. */
static int
tenant_index(struct health *h, const char *name, uint32_t *ret)
{
	char(*grown)[STORE_NAME_MAX];

	for (size_t i = 0; i < h->n_tnames; i++) {
		if (strcmp(h->tnames[i], name) == 0) {
			*ret = (uint32_t)i;
			return 0;
		}
	}
	grown = realloc(h->tnames, (h->n_tnames + 1) * sizeof(*grown));
	if (grown == NULL)
		return -ENOMEM;
	h->tnames = grown;
	snprintf(h->tnames[h->n_tnames], STORE_NAME_MAX, "%s", name);
	*ret = (uint32_t)h->n_tnames++;
	return 0;
}

/* ---- the devices: loaded once, then kept up to date from the event log ---- */

static int
entry_of(struct health *h, const struct store_device *d, struct hentry *e)
{
	memset(e, 0, sizeof(*e));
	e->id = d->id;
	e->dstate = d->state;
	memcpy(e->key, d->wg_pubkey, WG_KEY_LEN);
	return tenant_index(h, d->tenant, &e->tenant);
}

/* Every device of the store into *ret (sorted by id: the store lists them so). */
static int
load_all(struct health *h, struct hentry **ret, size_t *ret_n)
{
	struct store_device *devs = NULL;
	struct hentry *arr = NULL;
	size_t n = 0;
	int r;

	r = store_device_list_all(h->s, NULL, 0, &devs, &n);
	if (r < 0)
		return r;
	if (n > 0) {
		arr = calloc(n, sizeof(*arr));
		if (arr == NULL) {
			r = -ENOMEM;
			goto out;
		}
	}
	for (size_t i = 0; i < n; i++) {
		r = entry_of(h, &devs[i], &arr[i]);
		if (r < 0)
			goto out;
	}
	*ret = arr;
	*ret_n = n;
	arr = NULL;
	r = 0;
out:
	free(arr);
	free(devs);
	return r;
}

static int
cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/*
 * The devices after the events since h->seq: @cur with every changed device read again
 * (added, updated, or dropped when gone), into *ret (sorted by id). *ret_reload is set when
 * the log cannot be followed (a gap) or the changes are many: the caller loads everything.
 */
static int
follow_events(struct health *h, const struct hentry *cur, size_t n_cur, uint64_t *ret_seq,
	struct hentry **ret, size_t *ret_n, bool *ret_reload)
{
	struct store_event *ev = NULL;
	uint64_t *ids = NULL, seq = h->seq;
	size_t n_ids = 0, cap_ids = 0, n_ev, limit;
	struct hentry *next = NULL;
	size_t n_next = 0, i = 0, j = 0;
	int r;

	*ret_reload = false;
	limit = n_cur / HEALTH_RELOAD_FRACTION + 1000;
	for (;;) {
		r = store_events_read(h->s, seq, 1000, &ev, &n_ev);
		if (r < 0)
			goto out;
		if (n_ev == 0)
			break;
		if (ev[0].seq != seq + 1)
			goto reload; /* events were trimmed: some changes are unknown */
		for (size_t k = 0; k < n_ev; k++) {
			if (ev[k].kind == STORE_EV_UP || ev[k].kind == STORE_EV_DOWN ||
			    ev[k].kind == STORE_EV_REINSTATED)
				continue; /* no change of key or state */
			if (n_ids == cap_ids) {
				size_t nc = cap_ids ? cap_ids * 2 : 64;
				uint64_t *na;

				if (nc > limit)
					goto reload;
				na = realloc(ids, nc * sizeof(*na));
				if (na == NULL) {
					r = -ENOMEM;
					goto out;
				}
				ids = na;
				cap_ids = nc;
			}
			ids[n_ids++] = ev[k].device;
		}
		seq = ev[n_ev - 1].seq;
		free(ev);
		ev = NULL;
	}
	if (n_ids > 1)
		qsort(ids, n_ids, sizeof(*ids), cmp_u64);
	next = calloc(n_cur + n_ids + 1, sizeof(*next));
	if (next == NULL) {
		r = -ENOMEM;
		goto out;
	}
	/* Merge: the devices by id, each changed one as the store has it now. */
	while (i < n_cur || j < n_ids) {
		struct store_device d;
		uint64_t id;

		if (j == n_ids || (i < n_cur && cur[i].id < ids[j])) {
			next[n_next++] = cur[i++];
			continue;
		}
		id = ids[j];
		while (j < n_ids && ids[j] == id)
			j++;
		r = store_device_get(h->s, id, &d);
		if (r == -ENOENT) {
			if (i < n_cur && cur[i].id == id)
				i++; /* deleted */
			continue;
		}
		if (r < 0)
			goto out;
		if (i < n_cur && cur[i].id == id) {
			struct hentry e = cur[i++];

			if (memcmp(e.key, d.wg_pubkey, WG_KEY_LEN) != 0) {
				/* a new key: the old key's counters say nothing about it */
				memcpy(e.key, d.wg_pubkey, WG_KEY_LEN);
				e.hp.seen = false;
			}
			e.dstate = d.state;
			next[n_next++] = e;
		} else {
			r = entry_of(h, &d, &next[n_next++]);
			if (r < 0)
				goto out;
		}
	}
	*ret_seq = seq;
	*ret = next;
	*ret_n = n_next;
	next = NULL;
	r = 0;
	goto out;
reload:
	*ret_reload = true;
	r = 0;
out:
	free(ev);
	free(ids);
	free(next);
	return r;
}

/* ---- the interfaces: one read each, indexed by key ---- */

static uint64_t
key_hash(const struct health *h, const uint8_t key[static WG_KEY_LEN])
{
	uint64_t x;

	/* splitmix64's finaliser over a word of the key and a secret seed */
	memcpy(&x, key + 8, sizeof(x));
	x ^= h->seed;
	x ^= x >> 30;
	x *= 0xbf58476d1ce4e5b9ULL;
	x ^= x >> 27;
	x *= 0x94d049bb133111ebULL;
	return x ^ (x >> 31);
}

static int
iface_read(struct health *h, struct hiface *f)
{
	size_t size = 16;
	int r;

	r = plane_peer_stats(h->p, f->t, &f->peers, &f->n_peers);
	if (r < 0) {
		/* No interface: nobody of this tenant is reachable. Judged as silence. */
		log_debug("health: tenant '%s': reading '%s': %s", f->t->name, f->t->ifname,
			strerror(-r));
		f->peers = NULL;
		f->n_peers = 0;
		return 0;
	}
	if (f->n_peers == 0 || f->n_peers > UINT32_MAX / 4)
		return 0;
	while (size < 2 * f->n_peers)
		size *= 2;
	f->slots = calloc(size, sizeof(*f->slots));
	if (f->slots == NULL)
		return -ENOMEM;
	f->mask = size - 1;
	for (size_t i = 0; i < f->n_peers; i++) {
		const uint8_t *key = f->peers[i].public_key;
		size_t slot = key_hash(h, key) & f->mask;

		while (f->slots[slot] != 0 &&
		       memcmp(f->peers[f->slots[slot] - 1].public_key, key, WG_KEY_LEN) != 0)
			slot = (slot + 1) & f->mask;
		if (f->slots[slot] == 0) /* twice in one read: the first counts */
			f->slots[slot] = (uint32_t)i + 1;
	}
	return 0;
}

static const struct wg_peer_stats *
iface_find(const struct health *h, const struct hiface *f, const uint8_t key[static WG_KEY_LEN])
{
	size_t slot;

	if (f->slots == NULL)
		return NULL;
	for (slot = key_hash(h, key) & f->mask; f->slots[slot] != 0; slot = (slot + 1) & f->mask)
		if (memcmp(f->peers[f->slots[slot] - 1].public_key, key, WG_KEY_LEN) == 0)
			return &f->peers[f->slots[slot] - 1];
	return NULL;
}

/* ---- the tick ---- */

struct tick {
	struct store_health *changes;
	size_t n_changes, cap_changes;
	int64_t now;
	int64_t prev_tick;
	/* bulk: the stored health was read at once (sorted by device; NULL if none) */
	bool bulk;
	struct store_health *stored;
	size_t n_stored, pos;
};

/*
 * The stored health of device @id (the devices are judged in id order: a merge), as
 * store_health_get() gives it: NEVER since 0 when there is no record.
 */
static int
stored_health(struct health *h, struct tick *tk, uint64_t id, struct store_health *ret)
{
	if (!tk->bulk)
		return store_health_get(h->s, id, ret);
	while (tk->pos < tk->n_stored && tk->stored[tk->pos].device < id)
		tk->pos++;
	if (tk->pos < tk->n_stored && tk->stored[tk->pos].device == id)
		*ret = tk->stored[tk->pos];
	else
		*ret = (struct store_health){ .device = id, .state = STORE_HEALTH_NEVER };
	return 0;
}

/* Judge one active device of a tenant whose interface is @f; @e is updated in place. */
static int
judge(struct health *h, struct tick *tk, struct hiface *f, struct hentry *e)
{
	int64_t window = 3 * (int64_t)(f->t->keepalive ? f->t->keepalive : h->default_keepalive);
	const struct wg_peer_stats *peer = iface_find(h, f, e->key);
	bool was_seen = e->hp.seen;
	uint8_t persisted;

	if (!e->known) {
		struct store_health sh;

		/* A device this monitor has not judged yet: start from what the store says. */
		if (stored_health(h, tk, e->id, &sh) == 0) {
			e->hp.state = sh.state;
			e->hp.since = sh.since;
		}
		/*
		 * Up when the monitor starts (enrolld restarted): one counter reading cannot
		 * tell whether it still talks, and its handshake is up to two minutes old. Date
		 * its last traffic at this first tick, so it stays up unless its counter stands
		 * still for a whole window (no false "down" for every device on each restart).
		 */
		if (e->hp.state == STORE_HEALTH_UP && e->last_advance < tk->now)
			e->last_advance = tk->now;
		e->known = true;
		was_seen = false;
	}
	persisted = e->hp.state;
	e->hp.seen = peer != NULL;
	if (peer != NULL) {
		if (!was_seen) {
			/* First sight: the handshake is the best date of its last traffic. */
			if (peer->last_handshake_sec > 0 && peer->rx_bytes > 0 &&
			    peer->last_handshake_sec > e->last_advance)
				e->last_advance = peer->last_handshake_sec;
		} else if (peer->rx_bytes != e->hp.rx_bytes && peer->rx_bytes > 0) {
			e->last_advance = tk->prev_tick ? tk->prev_tick : tk->now;
		}
		e->hp.last_handshake = peer->last_handshake_sec;
		e->hp.rx_bytes = peer->rx_bytes;
		e->hp.tx_bytes = peer->tx_bytes;
	}
	if (e->last_advance > 0 && tk->now - e->last_advance <= window)
		e->hp.state = STORE_HEALTH_UP;
	else if (e->last_advance > 0 || persisted != STORE_HEALTH_NEVER)
		e->hp.state = STORE_HEALTH_DOWN;
	else
		e->hp.state = STORE_HEALTH_NEVER;
	if (e->hp.state != persisted) {
		struct store_health ch = { .device = e->id, .state = e->hp.state, .since = tk->now };
		int r;

		e->hp.since = tk->now;
		r = push_health(&tk->changes, &tk->n_changes, &tk->cap_changes, &ch);
		if (r < 0)
			return r;
		log_info("health: device %llu of '%s' is %s (was %s)", (unsigned long long)e->id,
			f->t->name, state_name(e->hp.state), state_name(persisted));
	}
	f->count[e->hp.state == STORE_HEALTH_UP ? 0 : e->hp.state == STORE_HEALTH_DOWN ? 1 : 2]++;
	if (e->hp.state == STORE_HEALTH_DOWN && tk->now - e->hp.since > f->down_longest)
		f->down_longest = tk->now - e->hp.since;
	return 0;
}

/*
 * The devices as they are now, loaded or followed from the event log, and the log position
 * they reflect (*ret_seq). The caller publishes both together, or neither.
 */
static int
devices_now(struct health *h, struct hentry **ret, size_t *ret_n, uint64_t *ret_seq)
{
	struct hentry *next = NULL, *loaded = NULL;
	size_t n_next = 0, n_loaded = 0, i = 0;
	uint64_t seq = 0;
	bool reload = !h->loaded;
	int r;

	if (!reload) {
		r = follow_events(h, h->entries, h->n_entries, &seq, &next, &n_next, &reload);
		if (r < 0)
			return r;
	}
	if (!reload) {
		*ret_seq = seq;
		*ret = next;
		*ret_n = n_next;
		return 0;
	}
	/* The log's position first: a change after it is read again at the next tick. */
	r = store_events_last(h->s, &seq);
	if (r < 0)
		return r;
	r = load_all(h, &loaded, &n_loaded);
	if (r < 0)
		return r;
	/* Keep what was learnt about the devices that are still there (same key). */
	for (size_t k = 0; k < n_loaded && h->n_entries > 0; k++) {
		while (i < h->n_entries && h->entries[i].id < loaded[k].id)
			i++;
		if (i < h->n_entries && h->entries[i].id == loaded[k].id &&
		    memcmp(h->entries[i].key, loaded[k].key, WG_KEY_LEN) == 0) {
			uint8_t dstate = loaded[k].dstate;
			uint32_t tenant = loaded[k].tenant;

			loaded[k] = h->entries[i];
			loaded[k].dstate = dstate;
			loaded[k].tenant = tenant;
		}
	}
	*ret_seq = seq;
	*ret = loaded;
	*ret_n = n_loaded;
	return 0;
}

int
health_tick(struct health *h)
{
	struct store_tenant *ts = NULL;
	struct hiface *fs = NULL;
	struct hentry *next = NULL;
	struct tick tk = { 0 };
	size_t n_ts = 0, n_next = 0;
	uint64_t first, last, seq = 0;
	int r;

	tk.now = (int64_t)time(NULL);
	pthread_mutex_lock(&h->lock);
	tk.prev_tick = h->last_tick;
	pthread_mutex_unlock(&h->lock);
	r = store_tenant_list(h->s, &ts, &n_ts);
	if (r < 0)
		goto out;
	for (size_t i = 0; i < n_ts; i++) {
		uint32_t k;

		r = tenant_index(h, ts[i].name, &k);
		if (r < 0)
			goto out;
	}
	/* The devices after the tenants: a device's tenant is then always in tnames. */
	r = devices_now(h, &next, &n_next, &seq);
	if (r < 0)
		goto out;
	fs = calloc(h->n_tnames ? h->n_tnames : 1, sizeof(*fs));
	if (fs == NULL) {
		r = -ENOMEM;
		goto out;
	}
	for (size_t i = 0; i < n_ts; i++) {
		uint32_t k;

		(void)tenant_index(h, ts[i].name, &k); /* known: no allocation */
		fs[k].t = &ts[i];
		/* cluster mode: the node holding the tenant judges its devices */
		fs[k].present = plane_tenant_is_held(h->p, ts[i].name);
		if (!fs[k].present)
			continue;
		r = iface_read(h, &fs[k]);
		if (r < 0)
			goto out;
	}
	for (size_t i = 0, n_unknown = 0; i < n_next; i++) {
		const struct hentry *e = &next[i];
		const struct hiface *f = e->tenant < h->n_tnames ? &fs[e->tenant] : NULL;

		if (f != NULL && f->present && e->dstate == STORE_DEVICE_ACTIVE && !e->known &&
		    ++n_unknown * HEALTH_BULK_FRACTION >= n_next) {
			/* on failure, one read per device, as before */
			tk.bulk = store_health_list(h->s, &tk.stored, &tk.n_stored) == 0;
			break;
		}
	}
	for (size_t i = 0; i < n_next; i++) {
		struct hentry *e = &next[i];
		struct hiface *f = e->tenant < h->n_tnames ? &fs[e->tenant] : NULL;

		if (f == NULL || !f->present) {
			/*
			 * A tenant the store no longer lists, or (cluster mode) not held here: if
			 * this node takes it later, its devices are judged afresh from the store.
			 */
			e->known = false;
			e->hp.seen = false;
			continue;
		}
		if (e->dstate != STORE_DEVICE_ACTIVE) {
			f->n_revoked += e->dstate == STORE_DEVICE_REVOKED;
			/* if it comes back, it is judged afresh from what the store says */
			e->known = false;
			e->hp.seen = false;
			continue;
		}
		f->n_devs++;
		r = judge(h, &tk, f, e);
		if (r < 0)
			goto out;
	}
	for (size_t k = 0; k < h->n_tnames; k++) {
		struct hiface *f = &fs[k];
		uint64_t pool = 0;

		if (!f->present)
			continue;
		metrics_set_devices(f->t->name, "up", f->count[0]);
		metrics_set_devices(f->t->name, "down", f->count[1]);
		metrics_set_devices(f->t->name, "never", f->count[2]);
		metrics_set_devices(f->t->name, "revoked", f->n_revoked);
		/* The IPv4 pool: usable offsets less the control plane's own; revoked keep theirs. */
		if (addr_usable_range(&f->t->prefix4, &first, &last) == 0)
			pool = last - first;
		metrics_set_tenant(f->t->name, (uint64_t)f->down_longest, pool,
			f->n_devs + f->n_revoked);
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
	pthread_mutex_lock(&h->lock);
	free(h->entries);
	h->entries = next;
	h->n_entries = n_next;
	h->last_tick = tk.now;
	pthread_mutex_unlock(&h->lock);
	h->seq = seq;
	h->loaded = true;
	next = NULL;
	r = (int)tk.n_changes;
out:
	for (size_t k = 0; fs != NULL && k < h->n_tnames; k++) {
		free(fs[k].peers);
		free(fs[k].slots);
	}
	free(fs);
	free(ts);
	free(next);
	free(tk.changes);
	free(tk.stored);
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
	if (getrandom(&h->seed, sizeof(h->seed), 0) != sizeof(h->seed))
		h->seed = (uint64_t)time(NULL) ^ (uint64_t)(uintptr_t)h;
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
	free(h->tnames);
	free(h);
}
