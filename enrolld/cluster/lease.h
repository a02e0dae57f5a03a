/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_CLUSTER_LEASE_H
#define ENROLLD_CLUSTER_LEASE_H

/*
 * Tenant ownership among enrolld nodes sharing one PostgreSQL: a lease per tenant in the
 * table tenant_leases (migration 2 of enrolld/store/pg_schema.c). The node that holds a
 * live lease is the only one that may have the tenant's WireGuard interface up.
 *
 * Why no two nodes ever serve one tenant (docs/cluster.md, "Ownership"):
 * - The database decides who holds a lease, by its own clock: a lease is taken only when
 *   none is live (expires <= clock_timestamp()), and every acquisition or renewal sets
 *   expires = clock_timestamp() + lease_ms, evaluated while the statement runs, that is
 *   after this node sent it.
 * - The holder keeps its own deadline on its monotonic clock, measured from the moment
 *   *before* it sent the statement that succeeded: deadline = sent + lease_ms - margin_ms.
 *   That is before the database's expiry of the same lease, by at least margin_ms, as long
 *   as the two clocks run at the same rate within margin_ms over lease_ms.
 * - A holder that cannot renew (database gone, node cut off, a statement hanging) must have
 *   its interface down by its deadline: the caller checks lease_valid() and tears down in
 *   time; margin_ms is what the teardown may take. Nobody else can take the lease before
 *   the database's expiry, which is later.
 * - A renewal that finds the lease expired or taken fails (-ESTALE) even if nobody took it:
 *   the holder has given it up by then anyway, and takes it again with a new epoch.
 * Not covered: the database server's clock stepping forward by more than margin_ms (run it
 * with a slewing time daemon); a node whose monotonic clock stalls (a suspended VM) is
 * covered, its deadline passes while it sleeps.
 */

#include <libpq-fe.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "enrolld/store.h"

#define LEASE_NODE_MAX 64

struct lease_conf {
	char node[LEASE_NODE_MAX]; /* this node's name, unique in the cluster */
	unsigned int lease_ms;     /* how long an acquisition or renewal holds */
	unsigned int margin_ms;    /* given up this long before: teardown, clock rate */
};

struct lease {
	char tenant[STORE_NAME_MAX];
	int64_t epoch;            /* +1 at every change of holder (or re-take after expiry) */
	struct timespec deadline; /* CLOCK_MONOTONIC: after it, the tenant is not ours */
};

/* -EINVAL for a node name that is empty or too long, lease_ms <= 2 * margin_ms. */
int lease_conf_check(const struct lease_conf *cf);

/*
 * Take @tenant's lease for this node, or renew it if this node holds it live (same epoch).
 * 0 and *l filled; -EBUSY another node holds a live lease; -ENOENT no such tenant;
 * -EIO, -ETIMEDOUT: no answer (the lease may or may not have been taken: not ours, and
 * the database expires it by itself).
 */
int lease_acquire(PGconn *c, const struct lease_conf *cf, const char *tenant, struct lease *l,
	const struct timespec *until);

/*
 * Extend the lease @l (same epoch). 0: l->deadline moved forward. -ESTALE: it expired or
 * another node holds it now — the tenant is not ours. -EIO and others: unknown; the
 * deadline stays where it was and the caller must be down by then.
 */
int lease_renew(PGconn *c, const struct lease_conf *cf, struct lease *l,
	const struct timespec *until);

/*
 * Give the lease up at once (after the interface is down), so another node need not wait
 * for its expiry. 0, or -ESTALE if it was not ours any more.
 */
int lease_release(PGconn *c, const struct lease_conf *cf, struct lease *l,
	const struct timespec *until);

/* CLOCK_MONOTONIC arithmetic for the loop (owner.c) and this file. */
void lease_ts_add_ms(struct timespec *ts, int64_t ms);
bool lease_ts_before(const struct timespec *a, const struct timespec *b);

/* Whether @l may still be acted upon at monotonic time @now (NULL: now). */
bool lease_valid(const struct lease *l, const struct timespec *now);

/* Who holds @tenant's lease live: 0 and @ret_node, -ENOENT if nobody. */
int lease_holder(PGconn *c, const char *tenant, char ret_node[LEASE_NODE_MAX],
	int64_t *ret_epoch, const struct timespec *until);

/*
 * Every call above waits for the database at most until @until (CLOCK_MONOTONIC; NULL: as
 * long as it takes) and then returns -ETIMEDOUT: the connection is in an unknown state
 * and must be closed. This is how a holder stays within its deadline when the database
 * does not answer. lease_wait() is the bounded poll() on the connection's socket they use
 * (0, -ETIMEDOUT, -ENOTCONN).
 */
int lease_wait(PGconn *c, short events, const struct timespec *until);
/* The database's or libpq's text for the calling thread's last -EIO ("" if none). */
const char *lease_errmsg(void);
/* A row-returning statement without parameters, bounded the same way (*ret: PQclear it). */
/* The same with @n text parameters. */
int lease_query_params(PGconn *c, const char *sql, int n, const char *const *vals, PGresult **ret,
	const struct timespec *until);
/*
 * Connect to @conninfo without waiting past @until (NULL: no limit); *ret is then a
 * non-blocking connection for the calls above. -ETIMEDOUT, -ECONNREFUSED (lease_errmsg()).
 */
int lease_connect(const char *conninfo, PGconn **ret, const struct timespec *until);
int lease_query(PGconn *c, const char *sql, PGresult **ret, const struct timespec *until);

#endif
