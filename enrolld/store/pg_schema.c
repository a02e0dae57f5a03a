// SPDX-License-Identifier: MIT
/*
 * The PostgreSQL schema, as numbered migrations. store_open applies those the database has
 * not seen, in one transaction under a transaction-level advisory lock, so that several
 * nodes starting at once apply each exactly once (the others wait, then find it done).
 * A migration is never edited once released: a change is a new one at the end.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "enrolld/store/pg.h"

/* pg_advisory_xact_lock key: "edgeward" in ASCII */
#define PG_MIGRATE_LOCK "7306920164209356644"

struct migration {
	int64_t version;
	const char *sql;
};

/*
 * 1: the records of store.h, one table per kind. Integers are int8 throughout, addresses
 * the 16-byte arrays of struct store_device (IPv4 in the first 4 bytes: byte order is
 * numeric order), prefixes inet (their overlap is an exclusion constraint). The UNIQUE
 * constraints are the safety net under the ops' own checks: one device per EK, per key,
 * per address of a tenant; one tenant per interface, port, and prefix.
 */
static const char migration_1[] =
	"CREATE TABLE meta ("
	"  one bool PRIMARY KEY DEFAULT true CHECK (one),"
	"  event_seq int8 NOT NULL);"
	"INSERT INTO meta (event_seq) VALUES (0);"
	"CREATE TABLE tenants ("
	"  name text COLLATE \"C\" PRIMARY KEY,"
	"  prefix4 inet NOT NULL,"
	"  prefix6 inet,"
	"  self4 bytea NOT NULL CHECK (length(self4) = 16),"
	"  self6 bytea NOT NULL CHECK (length(self6) = 16),"
	"  ifname text NOT NULL UNIQUE,"
	"  endpoint text NOT NULL,"
	"  listen_port int8 NOT NULL,"
	"  keepalive int8 NOT NULL,"
	"  require_tpm bool NOT NULL,"
	"  pcrs bytea NOT NULL,"
	"  created int8 NOT NULL,"
	"  hint4 int8 NOT NULL DEFAULT 0,"
	"  hint6 int8 NOT NULL DEFAULT 0,"
	"  EXCLUDE USING gist (prefix4 inet_ops WITH &&),"
	"  EXCLUDE USING gist (prefix6 inet_ops WITH &&));"
	"CREATE UNIQUE INDEX tenants_port ON tenants (listen_port) WHERE listen_port <> 0;"
	"CREATE TABLE device_cas ("
	"  tenant text COLLATE \"C\" NOT NULL REFERENCES tenants ON DELETE CASCADE,"
	"  fp bytea NOT NULL,"
	"  subject text NOT NULL,"
	"  label text NOT NULL,"
	"  created int8 NOT NULL,"
	"  der bytea NOT NULL,"
	"  PRIMARY KEY (tenant, fp));"
	"CREATE TABLE device_crls ("
	"  tenant text COLLATE \"C\" NOT NULL REFERENCES tenants ON DELETE CASCADE,"
	"  issuer_hash bytea NOT NULL,"
	"  issuer text NOT NULL,"
	"  created int8 NOT NULL,"
	"  this_update int8 NOT NULL,"
	"  next_update int8 NOT NULL,"
	"  number bytea NOT NULL,"
	"  der bytea NOT NULL,"
	"  PRIMARY KEY (tenant, issuer_hash));"
	"CREATE TABLE x509_revoked ("
	"  tenant text COLLATE \"C\" NOT NULL REFERENCES tenants ON DELETE CASCADE,"
	"  serial bytea NOT NULL,"
	"  label text NOT NULL,"
	"  created int8 NOT NULL,"
	"  PRIMARY KEY (tenant, serial));"
	"CREATE TABLE registrations ("
	"  tenant text COLLATE \"C\" NOT NULL REFERENCES tenants ON DELETE CASCADE,"
	"  ek_hash bytea NOT NULL,"
	"  label text NOT NULL,"
	"  created int8 NOT NULL,"
	"  PRIMARY KEY (tenant, ek_hash));"
	"CREATE TABLE tokens ("
	"  hash bytea PRIMARY KEY,"
	"  tenant text COLLATE \"C\" NOT NULL REFERENCES tenants ON DELETE CASCADE,"
	"  label text NOT NULL,"
	"  uses_left int8 NOT NULL CHECK (uses_left >= 0),"
	"  expires int8 NOT NULL,"
	"  created int8 NOT NULL,"
	"  revoked bool NOT NULL);"
	"CREATE INDEX tokens_tenant ON tokens (tenant);"
	/* secret: AES-256-GCM under the nodes' KEK (nonce, ciphertext, tag), NULL once used */
	"CREATE TABLE sessions ("
	"  id bytea PRIMARY KEY,"
	"  tenant text COLLATE \"C\" NOT NULL REFERENCES tenants ON DELETE CASCADE,"
	"  ek_hash bytea NOT NULL,"
	"  ak_name bytea NOT NULL,"
	"  wg_pubkey bytea NOT NULL,"
	"  nonce bytea NOT NULL,"
	"  secret bytea,"
	"  used bool NOT NULL,"
	"  has_token bool NOT NULL,"
	"  token_hash bytea NOT NULL,"
	"  expires int8 NOT NULL);"
	"CREATE INDEX sessions_expires ON sessions (expires);"
	"CREATE SEQUENCE device_ids;"
	"CREATE TABLE devices ("
	"  id int8 PRIMARY KEY DEFAULT nextval('device_ids'),"
	"  tenant text COLLATE \"C\" NOT NULL REFERENCES tenants,"
	"  addr4 bytea NOT NULL CHECK (length(addr4) = 16),"
	"  addr6 bytea CHECK (length(addr6) = 16),"
	"  state int8 NOT NULL CHECK (state IN (1, 2)),"
	"  kind int8 NOT NULL CHECK (kind IN (1, 2)),"
	"  wg_pubkey bytea NOT NULL UNIQUE,"
	"  ek_hash bytea NOT NULL UNIQUE,"
	"  created int8 NOT NULL,"
	"  updated int8 NOT NULL,"
	"  revoked int8 NOT NULL,"
	"  UNIQUE (tenant, addr4),"
	"  UNIQUE (tenant, addr6));"
	"CREATE INDEX devices_tenant ON devices (tenant, id);"
	"ALTER SEQUENCE device_ids OWNED BY devices.id;"
	"CREATE TABLE revocations ("
	"  ek_hash bytea PRIMARY KEY,"
	"  device int8 NOT NULL,"
	"  time int8 NOT NULL);"
	"CREATE TABLE health ("
	"  device int8 PRIMARY KEY REFERENCES devices ON DELETE CASCADE,"
	"  state int8 NOT NULL CHECK (state IN (0, 1, 2)),"
	"  since int8 NOT NULL);"
	"CREATE TABLE events ("
	"  seq int8 PRIMARY KEY,"
	"  time int8 NOT NULL,"
	"  kind int8 NOT NULL,"
	"  device int8 NOT NULL,"
	"  tenant text COLLATE \"C\" NOT NULL);";

/*
 * 2: tenant ownership among nodes (enrolld/cluster/lease.h): one lease per tenant, its
 * holder, an epoch that grows at every change of holder, and its expiry by the database's
 * clock.
 */
static const char migration_2[] =
	"CREATE TABLE tenant_leases ("
	"  tenant text COLLATE \"C\" PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,"
	"  node text NOT NULL CHECK (length(node) BETWEEN 1 AND 63),"
	"  epoch int8 NOT NULL CHECK (epoch > 0),"
	"  expires timestamptz NOT NULL);";

/*
 * 3: cluster mode (docs/cluster.md). Each tenant's interface key, sealed under the KEK
 * (AES-256-GCM, the tenant's name as AAD): whichever node holds the tenant uses the same
 * key. And how far each node has applied the event log to the interfaces it holds, so that
 * a node answering a revocation can wait until the owner has removed the peer.
 */
static const char migration_3[] =
	"CREATE TABLE tenant_keys ("
	"  tenant text COLLATE \"C\" PRIMARY KEY REFERENCES tenants ON DELETE CASCADE,"
	"  sealed bytea NOT NULL CHECK (length(sealed) = 60),"
	"  created timestamptz NOT NULL DEFAULT now());"
	"CREATE TABLE node_applied ("
	"  node text PRIMARY KEY CHECK (length(node) BETWEEN 1 AND 63),"
	"  seq int8 NOT NULL,"
	"  updated timestamptz NOT NULL DEFAULT clock_timestamp());";

/*
 * 4: a session keeps its AK's public area (TPM2B_PUBLIC, not secret), so that a challenge
 * answered by one node can be completed on another. Empty for sessions made before.
 */
static const char migration_4[] =
	"ALTER TABLE sessions ADD COLUMN ak_public bytea NOT NULL DEFAULT ''::bytea"
	"  CHECK (length(ak_public) <= 512);";

static const struct migration migrations[] = {
	{ 1, migration_1 },
	{ 2, migration_2 },
	{ 3, migration_3 },
	{ 4, migration_4 },
};

int
pg_migrate(PGconn *c)
{
	struct pg_args a;
	PGresult *res = NULL;
	int64_t have = 0, want = migrations[sizeof(migrations) / sizeof(migrations[0]) - 1].version;
	int r;

	r = pg_exec(c, "BEGIN", NULL);
	if (r < 0)
		return r;
	/* Held to COMMIT: one node migrates, the others wait and then find nothing to do. */
	r = pg_exec(c, "SELECT pg_advisory_xact_lock(" PG_MIGRATE_LOCK ")", NULL);
	if (r < 0)
		goto out;
	r = pg_exec(c, "CREATE TABLE IF NOT EXISTS schema_migrations ("
		"version int8 PRIMARY KEY, applied timestamptz NOT NULL DEFAULT now())", NULL);
	if (r < 0)
		goto out;
	r = pg_q(c, "SELECT coalesce(max(version), 0) FROM schema_migrations", NULL, &res);
	if (r < 0)
		goto out;
	have = rv_i64(res, 0, 0);
	PQclear(res);
	if (have > want) {
		store_set_errmsg("postgresql: schema version %lld is newer than this enrolld's %lld",
			(long long)have, (long long)want);
		r = -EPROTO;
		goto out;
	}
	for (size_t i = 0; i < sizeof(migrations) / sizeof(migrations[0]); i++) {
		if (migrations[i].version <= have)
			continue;
		/* several statements: the simple query protocol */
		res = PQexec(c, migrations[i].sql);
		if (PQresultStatus(res) != PGRES_COMMAND_OK) {
			r = pg_errno(c, res);
			PQclear(res);
			goto out;
		}
		PQclear(res);
		memset(&a, 0, sizeof(a));
		pa_i64(&a, migrations[i].version);
		r = pg_exec(c, "INSERT INTO schema_migrations (version) VALUES ($1::int8)", &a);
		if (r < 0)
			goto out;
	}
	r = pg_exec(c, "COMMIT", NULL);
	return r < 0 ? r : 0;
out:
	if (PQstatus(c) == CONNECTION_OK)
		pg_exec(c, "ROLLBACK", NULL);
	return r;
}
