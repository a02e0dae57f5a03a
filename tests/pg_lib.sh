#!/bin/bash
# A throw-away PostgreSQL for tests (sourced): its own cluster in a temp dir made with
# initdb, started with pg_ctl, listening on a unix socket in that dir only
# (listen_addresses=''), trust authentication for one superuser. Never the system cluster.
# PostgreSQL refuses to run as root: as root the server runs as the `postgres` system user
# (Debian's postgresql package makes it) and the directory is handed to it.
#
#   pg_test_start    start it; sets PG_TEST_DIR and PG_TEST_CONN (a libpq connection string
#                    for database "postgres" as superuser "edgeward"); installs an EXIT trap
#                    that stops it and removes the directory (chains a trap set before)
#   pg_test_stop     stop and remove it (idempotent)
#   pg_test_restart  stop and start the same cluster (data kept)
# PG_TEST_FSYNC=on: durable commits (benchmarks against LMDB's); tests run with fsync=off.
# Over TCP too (tests/integration/cluster_failover.sh: nodes in other namespaces), only
# inside a network namespace the test made, never on the host's interfaces:
#   PG_TEST_NETNS=<netns>   the server runs in that namespace (required with LISTEN)
#   PG_TEST_LISTEN=<addr>   it also listens on addr (an address of that namespace), port
#                           PG_TEST_PORT (default 5432); PG_TEST_TCP_CONN is then set
#   PG_TEST_HBA=<cidr>      trust authentication from that subnet only (default addr/32)
# The unix socket stays (PG_TEST_CONN), so the test's own psql needs no route.
#
# Run directly, it tests itself: starts, runs one query, stops, checks nothing is left.

PG_BIN=${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}
PG_TEST_DIR=
PG_TEST_CONN=
PG_TEST_PREV_TRAP=

pg_test_require() {
	[ -x "$PG_BIN/initdb" ] && [ -x "$PG_BIN/pg_ctl" ] ||
		{ echo "skip: PostgreSQL server binaries not installed (postgresql package)"; exit 77; }
	command -v psql >/dev/null || { echo "skip: psql not installed"; exit 77; }
	if [ "$(id -u)" -eq 0 ] && ! id postgres >/dev/null 2>&1; then
		echo "skip: running as root and no postgres user to run the server as"; exit 77
	fi
}

# Run a server binary as the cluster's owner.
pg_as_owner() {
	if [ "$(id -u)" -eq 0 ]; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

pg_ctl_start() {
	local cmd=("$PG_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -l "$PG_TEST_DIR/log" -w -t 60 \
		-o "-c listen_addresses='${PG_TEST_LISTEN:-}' -p ${PG_TEST_PORT:-5432} -k $PG_TEST_DIR/sock -c fsync=${PG_TEST_FSYNC:-off} -c max_connections=200" \
		start)
	[ "$(id -u)" -eq 0 ] && cmd=(runuser -u postgres -- "${cmd[@]}")
	[ -n "${PG_TEST_NETNS:-}" ] && cmd=(ip netns exec "$PG_TEST_NETNS" "${cmd[@]}")
	"${cmd[@]}" >/dev/null
}

pg_test_start() {
	pg_test_require
	if [ -n "${PG_TEST_LISTEN:-}" ]; then
		[ -n "${PG_TEST_NETNS:-}" ] && ip netns pids "$PG_TEST_NETNS" >/dev/null 2>&1 ||
			{ echo "pg_lib: PG_TEST_LISTEN needs PG_TEST_NETNS, a namespace of the test"; return 1; }
	fi
	PG_TEST_DIR=$(mktemp -d /tmp/edgeward-pg.XXXXXX)
	mkdir "$PG_TEST_DIR/sock"
	chmod 0755 "$PG_TEST_DIR"
	[ "$(id -u)" -eq 0 ] && chown -R postgres: "$PG_TEST_DIR"
	PG_TEST_PREV_TRAP=$(trap -p EXIT | sed -E "s/^trap -- '(.*)' EXIT$/\1/")
	trap 'pg_test_stop; '"$PG_TEST_PREV_TRAP" EXIT
	pg_as_owner "$PG_BIN/initdb" -D "$PG_TEST_DIR/data" -U edgeward --auth=trust \
		-E UTF8 --locale=C.UTF-8 >"$PG_TEST_DIR/initdb.log" 2>&1 ||
		{ cat "$PG_TEST_DIR/initdb.log"; return 1; }
	if [ -n "${PG_TEST_LISTEN:-}" ]; then
		printf 'host all all %s trust\n' "${PG_TEST_HBA:-$PG_TEST_LISTEN/32}" \
			>>"$PG_TEST_DIR/data/pg_hba.conf"
		PG_TEST_TCP_CONN="host=$PG_TEST_LISTEN port=${PG_TEST_PORT:-5432} user=edgeward dbname=postgres"
		export PG_TEST_TCP_CONN
	fi
	pg_ctl_start || { cat "$PG_TEST_DIR/log"; return 1; }
	PG_TEST_CONN="host=$PG_TEST_DIR/sock port=${PG_TEST_PORT:-5432} user=edgeward dbname=postgres"
	export PG_TEST_DIR PG_TEST_CONN
}

pg_test_restart() {
	pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m fast -w stop >/dev/null &&
		pg_ctl_start
}

pg_test_stop() {
	[ -n "$PG_TEST_DIR" ] && [ -d "$PG_TEST_DIR" ] || return 0
	if [ -f "$PG_TEST_DIR/data/postmaster.pid" ]; then
		pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_TEST_DIR/data" -m immediate -w stop \
			>/dev/null 2>&1
	fi
	rm -rf "$PG_TEST_DIR"
	PG_TEST_DIR=
}

if [ "${BASH_SOURCE[0]}" = "$0" ]; then
	set -e
	pg_test_start
	dir=$PG_TEST_DIR
	v=$(psql "$PG_TEST_CONN" -Atc 'select 40 + 2')
	[ "$v" = 42 ] || { echo "FAIL: query answered '$v'"; exit 1; }
	pid=$(head -n1 "$dir/data/postmaster.pid")
	pg_test_stop
	for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	! kill -0 "$pid" 2>/dev/null || { echo "FAIL: postgres $pid still running"; exit 1; }
	[ ! -e "$dir" ] || { echo "FAIL: $dir left behind"; exit 1; }
	echo "PASS: pg_lib"
fi
