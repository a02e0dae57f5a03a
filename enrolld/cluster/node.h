/* SPDX-License-Identifier: MIT */
#ifndef ENROLLD_CLUSTER_NODE_H
#define ENROLLD_CLUSTER_NODE_H

/*
 * enrolld as one node of a cluster on one PostgreSQL (docs/cluster.md): the ownership loop
 * (owner.c) brings the interfaces of the tenants this node holds up and down; an applier
 * follows the store's event log (LISTEN/NOTIFY) and applies to those interfaces what other
 * nodes committed (enrollments, rotations, revocations), and records how far it got, so a
 * node that answered a change can wait until the owner has applied it; the endpoint hook
 * moves the tenant's endpoint address (a VIP, a DNS name) to the node that holds it.
 */

#include <stddef.h>

#include "enrolld/enrolld.h"
#include "enrolld/store.h"

struct cluster_conf {
	const char *conninfo; /* the store's libpq connection string */
	const char *node;     /* this node's name, unique in the cluster */
	unsigned int lease_ms, margin_ms, tick_ms;
	const char *endpoint_hook; /* NULL: none */
	unsigned int wait_ms;      /* cluster_wait_applied()'s limit */
};

struct cluster;

/*
 * Take down any interface of a tenant of the store left on this host (by an earlier run:
 * this node holds nothing yet), then start the loop and the applier. -EINVAL for a bad
 * configuration.
 */
int cluster_start(struct cluster **ret, const struct cluster_conf *cf, struct store *s,
	struct plane *p);
/* Clean stop: every held tenant down (and its hook run), leases released. NULL allowed. */
void cluster_stop(struct cluster *c);
/*
 * After a change of @tenant committed through this node: wait until the node holding the
 * tenant has applied the event log at least that far to its interface, or no node holds it
 * (the next one loads the store). 0, or -ETIMEDOUT after wait_ms (the change is committed;
 * the owner has not confirmed it), or another negative errno (the database did not answer).
 */
int cluster_wait_applied(struct cluster *c, const char *tenant);
/*
 * The node holding @tenant now and its lease's epoch: 0, -ENOENT nobody (or an expired
 * lease), another negative errno if the database did not answer within a second.
 */
int cluster_holder(struct cluster *c, const char *tenant, char ret_node[64], int64_t *ret_epoch);
/* How many tenants this node holds. */
size_t cluster_held(struct cluster *c);

#endif
