// SPDX-License-Identifier: MIT
/*
 * Tenant leases in PostgreSQL (lease.h has the argument why two nodes never serve one
 * tenant). Every statement is one implicit transaction; the database's clock
 * (clock_timestamp(), read while the statement runs) decides expiry, the node's monotonic
 * clock its own deadline.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/cluster/lease.h"

static void
mono_now(struct timespec *ts)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
}

void
lease_ts_add_ms(struct timespec *ts, int64_t ms)
{
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

int
lease_conf_check(const struct lease_conf *cf)
{
	size_t n = strnlen(cf->node, sizeof(cf->node));

	if (n == 0 || n == sizeof(cf->node))
		return -EINVAL;
	if (cf->lease_ms == 0 || cf->lease_ms <= 2 * cf->margin_ms)
		return -EINVAL;
	return 0;
}

static __thread char last_error[200];

const char *
lease_errmsg(void)
{
	return last_error;
}

bool
lease_ts_before(const struct timespec *a, const struct timespec *b)
{
	return a->tv_sec < b->tv_sec || (a->tv_sec == b->tv_sec && a->tv_nsec < b->tv_nsec);
}

int
lease_wait(PGconn *c, short events, const struct timespec *until)
{
	struct pollfd pfd = { .fd = PQsocket(c), .events = events };
	struct timespec now;
	int64_t ms = -1;
	int r;

	if (pfd.fd < 0)
		return -ENOTCONN;
	if (until != NULL) {
		mono_now(&now);
		if (!lease_ts_before(&now, until))
			return -ETIMEDOUT;
		ms = (until->tv_sec - now.tv_sec) * 1000 +
		     (until->tv_nsec - now.tv_nsec) / 1000000 + 1;
	}
	do
		r = poll(&pfd, 1, (int)ms);
	while (r < 0 && errno == EINTR);
	if (r < 0)
		return -errno;
	return r == 0 ? -ETIMEDOUT : 0;
}

/*
 * Run @sql with text parameters, waiting for the answer at most until @until (NULL: as
 * long as it takes). 0 and the result in *ret (a row-returning statement), or a negative
 * errno: foreign key (no such tenant) -ENOENT, no answer in time -ETIMEDOUT (the
 * connection is then in an unknown state: the caller closes it), anything else -EIO.
 */
static int
run(PGconn *c, const char *sql, int n, const char *const *vals, PGresult **ret,
	const struct timespec *until)
{
	PGresult *res, *first = NULL;
	const char *state;
	int r = 0, f;

	last_error[0] = '\0';
	if (!PQsendQueryParams(c, sql, n, NULL, vals, NULL, NULL, 0)) {
		snprintf(last_error, sizeof(last_error), "%s", PQerrorMessage(c));
		return -EIO;
	}
	while ((f = PQflush(c)) == 1) {
		r = lease_wait(c, POLLIN | POLLOUT, until);
		if (r < 0)
			return r;
		if (!PQconsumeInput(c))
			break;
	}
	if (f != 0) {
		snprintf(last_error, sizeof(last_error), "%s", PQerrorMessage(c));
		return -EIO;
	}
	for (;;) {
		while (PQisBusy(c)) {
			r = lease_wait(c, POLLIN, until);
			if (r < 0) {
				PQclear(first);
				return r;
			}
			if (!PQconsumeInput(c)) {
				snprintf(last_error, sizeof(last_error), "%s", PQerrorMessage(c));
				PQclear(first);
				return -EIO;
			}
		}
		res = PQgetResult(c);
		if (res == NULL)
			break;
		if (first == NULL)
			first = res;
		else
			PQclear(res);
	}
	if (PQresultStatus(first) == PGRES_TUPLES_OK) {
		*ret = first;
		return 0;
	}
	state = PQresultErrorField(first, PG_DIAG_SQLSTATE);
	r = state != NULL && strcmp(state, "23503") == 0 ? -ENOENT : -EIO;
	snprintf(last_error, sizeof(last_error), "%s",
		first != NULL ? PQresultErrorMessage(first) : PQerrorMessage(c));
	PQclear(first);
	return r;
}

int
lease_query(PGconn *c, const char *sql, PGresult **ret, const struct timespec *until)
{
	return run(c, sql, 0, NULL, ret, until);
}

int
lease_query_params(PGconn *c, const char *sql, int n, const char *const *vals, PGresult **ret,
	const struct timespec *until)
{
	return run(c, sql, n, vals, ret, until);
}

int
lease_connect(const char *conninfo, PGconn **ret, const struct timespec *until)
{
	PostgresPollingStatusType st = PGRES_POLLING_WRITING;
	PGconn *c;
	int r;

	*ret = NULL;
	last_error[0] = '\0';
	c = PQconnectStart(conninfo);
	if (c == NULL)
		return -ENOMEM;
	if (PQstatus(c) == CONNECTION_BAD)
		goto bad;
	while (st != PGRES_POLLING_OK) {
		if (st == PGRES_POLLING_FAILED)
			goto bad;
		r = lease_wait(c, st == PGRES_POLLING_READING ? POLLIN : POLLOUT, until);
		if (r < 0) {
			snprintf(last_error, sizeof(last_error), "no answer in time");
			PQfinish(c);
			return r;
		}
		st = PQconnectPoll(c);
	}
	if (PQsetnonblocking(c, 1) != 0)
		goto bad;
	*ret = c;
	return 0;
bad:
	snprintf(last_error, sizeof(last_error), "%s", PQerrorMessage(c));
	PQfinish(c);
	return -ECONNREFUSED;
}

int
lease_acquire(PGconn *c, const struct lease_conf *cf, const char *tenant, struct lease *l,
	const struct timespec *until)
{
	/*
	 * Insert, or take over a row whose lease is ours or expired. The epoch stays for a
	 * live lease of ours (a renewal) and grows otherwise. No row back: someone else's.
	 */
	static const char sql[] =
		"INSERT INTO tenant_leases AS l (tenant, node, epoch, expires) "
		"VALUES ($1, $2, 1, clock_timestamp() + $3::int8 * interval '1 millisecond') "
		"ON CONFLICT (tenant) DO UPDATE SET node = excluded.node, "
		"  epoch = CASE WHEN l.node = excluded.node AND l.expires > clock_timestamp() "
		"    THEN l.epoch ELSE l.epoch + 1 END, "
		"  expires = excluded.expires "
		"  WHERE l.node = excluded.node OR l.expires <= clock_timestamp() "
		"RETURNING epoch";
	char ms[24];
	const char *vals[3] = { tenant, cf->node, ms };
	struct timespec sent;
	PGresult *res;
	int r;

	if (strnlen(tenant, STORE_NAME_MAX) == STORE_NAME_MAX)
		return -EINVAL;
	snprintf(ms, sizeof(ms), "%u", cf->lease_ms);
	mono_now(&sent);
	r = run(c, sql, 3, vals, &res, until);
	if (r < 0)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return -EBUSY;
	}
	memset(l, 0, sizeof(*l));
	snprintf(l->tenant, sizeof(l->tenant), "%s", tenant);
	l->epoch = strtoll(PQgetvalue(res, 0, 0), NULL, 10);
	PQclear(res);
	l->deadline = sent;
	lease_ts_add_ms(&l->deadline, (int64_t)cf->lease_ms - cf->margin_ms);
	return 0;
}

int
lease_renew(PGconn *c, const struct lease_conf *cf, struct lease *l,
	const struct timespec *until)
{
	static const char sql[] =
		"UPDATE tenant_leases "
		"SET expires = clock_timestamp() + $3::int8 * interval '1 millisecond' "
		"WHERE tenant = $1 AND node = $2 AND epoch = $4::int8 "
		"  AND expires > clock_timestamp() "
		"RETURNING epoch";
	char ms[24], epoch[24];
	const char *vals[4] = { l->tenant, cf->node, ms, epoch };
	struct timespec sent;
	PGresult *res;
	int r, n;

	snprintf(ms, sizeof(ms), "%u", cf->lease_ms);
	snprintf(epoch, sizeof(epoch), "%" PRId64, l->epoch);
	mono_now(&sent);
	r = run(c, sql, 4, vals, &res, until);
	if (r < 0)
		return r;
	n = PQntuples(res);
	PQclear(res);
	if (n != 1)
		return -ESTALE;
	l->deadline = sent;
	lease_ts_add_ms(&l->deadline, (int64_t)cf->lease_ms - cf->margin_ms);
	return 0;
}

int
lease_release(PGconn *c, const struct lease_conf *cf, struct lease *l,
	const struct timespec *until)
{
	/* Expired now, not deleted: the epoch must never go back (the next holder's is +1). */
	static const char sql[] =
		"UPDATE tenant_leases SET expires = clock_timestamp() "
		"WHERE tenant = $1 AND node = $2 AND epoch = $3::int8 "
		"  AND expires > clock_timestamp() "
		"RETURNING epoch";
	char epoch[24];
	const char *vals[3] = { l->tenant, cf->node, epoch };
	PGresult *res;
	int r, n;

	snprintf(epoch, sizeof(epoch), "%" PRId64, l->epoch);
	/* Whatever the answer, it is not ours from now on. */
	memset(&l->deadline, 0, sizeof(l->deadline));
	r = run(c, sql, 3, vals, &res, until);
	if (r < 0)
		return r;
	n = PQntuples(res);
	PQclear(res);
	return n == 1 ? 0 : -ESTALE;
}

bool
lease_valid(const struct lease *l, const struct timespec *now)
{
	struct timespec t;

	if (now == NULL) {
		mono_now(&t);
		now = &t;
	}
	return lease_ts_before(now, &l->deadline);
}

int
lease_holder(PGconn *c, const char *tenant, char ret_node[LEASE_NODE_MAX], int64_t *ret_epoch,
	const struct timespec *until)
{
	static const char sql[] =
		"SELECT node, epoch FROM tenant_leases "
		"WHERE tenant = $1 AND expires > clock_timestamp()";
	const char *vals[1] = { tenant };
	PGresult *res;
	int r;

	r = run(c, sql, 1, vals, &res, until);
	if (r < 0)
		return r;
	if (PQntuples(res) != 1) {
		PQclear(res);
		return -ENOENT;
	}
	snprintf(ret_node, LEASE_NODE_MAX, "%s", PQgetvalue(res, 0, 0));
	if (ret_epoch != NULL)
		*ret_epoch = strtoll(PQgetvalue(res, 0, 1), NULL, 10);
	PQclear(res);
	return 0;
}
