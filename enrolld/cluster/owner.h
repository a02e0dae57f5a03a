/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_CLUSTER_OWNER_H
#define ENROLLD_CLUSTER_OWNER_H

/*
 * A node's tenant ownership loop (docs/cluster.md): one thread with its own PostgreSQL
 * connection that every tick takes the lease of each tenant nobody holds, renews the
 * leases it holds, and calls up() when it has taken a tenant and down() when a lease is
 * lost, given up, or about to pass its deadline without a renewal — also when the database
 * does not answer at all: every wait on the database is bounded by the nearest deadline
 * (non-blocking libpq), so a node cut off from it calls down() in time whatever the
 * network does.
 */

#include <stdbool.h>
#include <stddef.h>

#include "enrolld/cluster/lease.h"

struct owner_ops {
	/*
	 * This node holds @tenant (epoch @epoch): bring it up. A negative return gives the lease
	 * back at once (another node may do better) and is retried after a while. It runs on
	 * the loop's thread, which renews nothing meanwhile: a long bring-up belongs on a thread
	 * of its own, reporting a failure with owner_give_back().
	 */
	int (*up)(void *ctx, const char *tenant, int64_t epoch);
	/* @tenant is not this node's any more: down, within the lease's margin. */
	void (*down)(void *ctx, const char *tenant);
	void *ctx;
};

struct owner_conf {
	struct lease_conf lease;
	unsigned int tick_ms; /* renew and look for free tenants this often; < lease_ms / 3 */
	size_t max_tenants;   /* at most this many held at once; 0: 1024 */
};

struct owner;

/* -EINVAL for a bad configuration; the thread connects by itself (and again when cut). */
int owner_start(struct owner **ret, const char *conninfo, const struct owner_conf *cf,
	const struct owner_ops *ops);
/* Clean stop: down() then release every held tenant, end the thread. NULL is allowed. */
void owner_stop(struct owner *o);
/*
 * For an up() that finished later on another thread and failed: at the loop's next tick
 * @tenant is down()ed, its lease released and the tenant left to other nodes for a while.
 * Thread-safe; a tenant not held by then is ignored.
 */
void owner_give_back(struct owner *o, const char *tenant);
/* How many tenants are held now. */
size_t owner_count(struct owner *o);
/* The server process of the loop's connection (0: not connected), for tests. */
int owner_backend_pid(struct owner *o);

#endif
