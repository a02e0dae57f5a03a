// SPDX-License-Identifier: MIT
/* Per-source and global token buckets (see ratelimit.h). */
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "enrolld/ratelimit.h"

/* Tokens are counted in millionths: a bucket of rate r gains r of them per microsecond. */
#define TOKEN 1000000ULL

struct bucket {
	uint64_t tokens; /* millionths of a token */
	uint64_t last;   /* microseconds, when tokens was last brought up to date */
};

struct entry {
	uint8_t key[16]; /* IPv6 prefix, or ::ffff:a.b.c.d */
	bool used;
	struct bucket b;
};

struct ratelimit {
	pthread_mutex_t lock;
	struct ratelimit_config cfg;
	uint64_t seed[2];
	struct entry *table; /* n_sets * RATELIMIT_WAYS */
	size_t set_mask;
	struct bucket global;
	struct ratelimit_stats stats;
};

int
ratelimit_new(struct ratelimit **ret, const struct ratelimit_config *cfg)
{
	struct ratelimit *rl;
	size_t n_sets = 1;

	if (cfg->source_rate > RATELIMIT_RATE_MAX || cfg->global_rate > RATELIMIT_RATE_MAX ||
	    (cfg->source_rate != 0 &&
		    (cfg->source_burst == 0 || cfg->source_burst > RATELIMIT_BURST_MAX)) ||
	    (cfg->global_rate != 0 &&
		    (cfg->global_burst == 0 || cfg->global_burst > RATELIMIT_BURST_MAX)) ||
	    cfg->ipv6_prefix == 0 || cfg->ipv6_prefix > 128 ||
	    cfg->sources > RATELIMIT_SOURCES_MAX)
		return -EINVAL;
	rl = calloc(1, sizeof(*rl));
	if (rl == NULL)
		return -ENOMEM;
	rl->cfg = *cfg;
	while (n_sets * RATELIMIT_WAYS < cfg->sources)
		n_sets <<= 1;
	rl->set_mask = n_sets - 1;
	if (cfg->source_rate != 0) {
		rl->table = calloc(n_sets * RATELIMIT_WAYS, sizeof(*rl->table));
		if (rl->table == NULL) {
			free(rl);
			return -ENOMEM;
		}
	}
	/* A guessable set would only let a client evict entries of its own choosing. */
	if (getrandom(rl->seed, sizeof(rl->seed), 0) != (ssize_t)sizeof(rl->seed)) {
		rl->seed[0] = (uint64_t)(uintptr_t)rl;
		rl->seed[1] = (uint64_t)(uintptr_t)rl->table;
	}
	rl->global.tokens = (uint64_t)cfg->global_burst * TOKEN;
	pthread_mutex_init(&rl->lock, NULL);
	*ret = rl;
	return 0;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	pthread_mutex_destroy(&rl->lock);
	free(rl->table);
	free(rl);
}

/* Bring @b up to @now: rate r gains r millionths per microsecond, up to burst tokens. */
static void
refill(struct bucket *b, uint32_t rate, uint32_t burst, uint64_t now)
{
	uint64_t cap = (uint64_t)burst * TOKEN, dt;

	if (now <= b->last)
		return; /* a clock read on another thread just before ours */
	dt = now - b->last;
	b->last = now;
	if (b->tokens >= cap)
		return;
	/* dt * rate cannot overflow below this: dt < cap / rate + 1 */
	if (dt >= (cap - b->tokens) / rate + 1)
		b->tokens = cap;
	else
		b->tokens += dt * rate;
	if (b->tokens > cap)
		b->tokens = cap;
}

/* Whole seconds, at least one, until @b holds a token at @rate. */
static unsigned int
wait_seconds(const struct bucket *b, uint32_t rate)
{
	uint64_t us = (TOKEN - b->tokens + rate - 1) / rate;
	uint64_t s = (us + 999999) / 1000000;

	return s == 0 ? 1 : s > 86400 ? 86400 : (unsigned int)s;
}

/* The source key of @sa; false if it is not an IP address. */
static bool
source_key(const struct ratelimit *rl, const struct sockaddr *sa, uint8_t key[16])
{
	memset(key, 0, 16);
	if (sa == NULL)
		return false;
	if (sa->sa_family == AF_INET) {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;

		key[10] = key[11] = 0xff;
		memcpy(key + 12, &sin->sin_addr, 4);
		return true;
	}
	if (sa->sa_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
		unsigned int bits = rl->cfg.ipv6_prefix;

		memcpy(key, &sin6->sin6_addr, 16);
		/* a dual-stack listener's IPv4 clients: their IPv4 address, not a /64 of them */
		if (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr))
			return true;
		for (unsigned int i = 0; i < 16; i++) {
			if (bits >= 8)
				bits -= 8;
			else {
				key[i] &= (uint8_t)(0xff00U >> bits);
				bits = 0;
			}
		}
		return true;
	}
	return false;
}

static uint64_t
mix(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdULL;
	h ^= h >> 33;
	h *= 0xc4ceb9fe1a85ec53ULL;
	h ^= h >> 33;
	return h;
}

static size_t
set_of(const struct ratelimit *rl, const uint8_t key[16])
{
	uint64_t a, b;

	memcpy(&a, key, 8);
	memcpy(&b, key + 8, 8);
	return (size_t)(mix(mix(a ^ rl->seed[0]) ^ b ^ rl->seed[1]) & rl->set_mask);
}

/* The entry of @key, made (evicting the fullest bucket of its set) if it has none. */
static struct entry *
source_entry(struct ratelimit *rl, const uint8_t key[16], uint64_t now)
{
	struct entry *set = &rl->table[set_of(rl, key) * RATELIMIT_WAYS], *victim = NULL;
	uint64_t cap = (uint64_t)rl->cfg.source_burst * TOKEN;

	for (unsigned int i = 0; i < RATELIMIT_WAYS; i++)
		if (set[i].used && memcmp(set[i].key, key, 16) == 0)
			return &set[i];
	for (unsigned int i = 0; i < RATELIMIT_WAYS; i++) {
		struct entry *e = &set[i];

		if (!e->used) {
			victim = e;
			break;
		}
		refill(&e->b, rl->cfg.source_rate, rl->cfg.source_burst, now);
		if (victim == NULL || e->b.tokens > victim->b.tokens)
			victim = e;
	}
	if (!victim->used)
		rl->stats.sources++;
	else if (victim->b.tokens < cap)
		rl->stats.evicted_active++;
	memcpy(victim->key, key, 16);
	victim->used = true;
	victim->b.tokens = cap;
	victim->b.last = now;
	return victim;
}

int
ratelimit_take(struct ratelimit *rl, const struct sockaddr *sa, uint64_t now_us,
	unsigned int *ret_retry_after)
{
	const struct ratelimit_config *c = &rl->cfg;
	struct entry *src = NULL;
	uint8_t key[16];
	int r = RATELIMIT_OK;

	pthread_mutex_lock(&rl->lock);
	if (c->source_rate != 0 && source_key(rl, sa, key)) {
		src = source_entry(rl, key, now_us);
		refill(&src->b, c->source_rate, c->source_burst, now_us);
		if (src->b.tokens < TOKEN) {
			*ret_retry_after = wait_seconds(&src->b, c->source_rate);
			r = RATELIMIT_SOURCE;
			goto out;
		}
	}
	if (c->global_rate != 0) {
		refill(&rl->global, c->global_rate, c->global_burst, now_us);
		if (rl->global.tokens < TOKEN) {
			*ret_retry_after = wait_seconds(&rl->global, c->global_rate);
			r = RATELIMIT_GLOBAL;
			goto out;
		}
		rl->global.tokens -= TOKEN;
	}
	if (src != NULL)
		src->b.tokens -= TOKEN;
out:
	pthread_mutex_unlock(&rl->lock);
	return r;
}

void
ratelimit_stats(struct ratelimit *rl, struct ratelimit_stats *ret)
{
	pthread_mutex_lock(&rl->lock);
	*ret = rl->stats;
	pthread_mutex_unlock(&rl->lock);
}
