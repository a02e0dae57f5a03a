/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_RATELIMIT_H
#define ENROLLD_RATELIMIT_H

/*
 * Token buckets for the endpoints anyone may call (enrollment, X.509 peers): one bucket per
 * source address, in a table of bounded size, and one for everyone. A request takes one
 * token from its source's bucket and one from the global bucket, or is refused with the
 * whole seconds after which the refusing bucket holds a token again (Retry-After).
 *
 * Sources are IPv4 addresses (an IPv4-mapped IPv6 address counts as its IPv4 address) and
 * IPv6 prefixes of ipv6_prefix bits: one host usually holds a whole /64. A request that is
 * not from an IP address (a unix socket behind a terminator) meets the global bucket only.
 *
 * The table is set-associative: a source hashes (with a per-process random key) to a set
 * of RATELIMIT_WAYS entries. A new source takes a free entry of its set, else the entry
 * whose bucket is fullest; evicting a full bucket loses nothing (a new entry starts full),
 * evicting one that was not full gives that source a fresh burst early, which the global
 * bucket still bounds. Evictions of buckets that were not full are counted.
 *
 * Thread-safe (one mutex; every operation is a few dozen instructions). Time is the
 * caller's CLOCK_MONOTONIC in microseconds, so tests can drive it.
 */

#include <stdint.h>
#include <sys/socket.h>

#define RATELIMIT_WAYS 8
#define RATELIMIT_RATE_MAX 1000000U
#define RATELIMIT_BURST_MAX 1000000U
#define RATELIMIT_SOURCES_MAX (1U << 22)

struct ratelimit_config {
	uint32_t source_rate;  /* tokens per second per source; 0 = no per-source limit */
	uint32_t source_burst; /* a source's bucket size (>= 1 when source_rate is set) */
	uint32_t global_rate;  /* tokens per second for everyone; 0 = no global limit */
	uint32_t global_burst;
	uint32_t sources;      /* table entries: rounded up to a power of two, >= RATELIMIT_WAYS */
	uint8_t ipv6_prefix;   /* 1 to 128 */
};

enum ratelimit_verdict {
	RATELIMIT_OK = 0,
	RATELIMIT_SOURCE = 1, /* the source's bucket is empty */
	RATELIMIT_GLOBAL = 2, /* the global bucket is empty */
};

struct ratelimit_stats {
	uint64_t sources;        /* entries in use */
	uint64_t evicted_active; /* evictions of a bucket that was not full */
};

struct ratelimit;

/* -EINVAL for a rate above RATELIMIT_RATE_MAX, a zero or too large burst, a bad prefix. */
int ratelimit_new(struct ratelimit **ret, const struct ratelimit_config *cfg);
void ratelimit_free(struct ratelimit *rl);
/*
 * Take a token for a request from @sa (may be NULL) at @now_us. Returns RATELIMIT_OK, or
 * the verdict of the bucket that refused and *ret_retry_after >= 1 (seconds). A refused
 * request takes nothing: a source refused by the global bucket keeps its token.
 */
int ratelimit_take(struct ratelimit *rl, const struct sockaddr *sa, uint64_t now_us,
	unsigned int *ret_retry_after);
void ratelimit_stats(struct ratelimit *rl, struct ratelimit_stats *ret);

#endif
