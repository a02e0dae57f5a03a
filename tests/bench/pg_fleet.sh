#!/bin/bash
# pg-fleet (not a test; run directly or `BENCHES=pgfleet tests/bench/run.sh`): the
# PostgreSQL state of a large fleet, for docs/scaling.md. A throw-away PostgreSQL
# (tests/pg_lib.sh, fsync off: this measures sizes and reads, not commits), PG_FLEET_N
# devices (100,000) in PG_FLEET_TENANTS tenants (4: enrollments into one tenant are
# serialised on its row), written by
# `fleet_bench populate` through store_enroll() (the enrollment's own store call: token
# use, lowest free address, device row, an "enrolled" event), then:
#   - every table's size with its indexes and TOAST, per device, after VACUUM; again with
#     one health row per device (a device seen once has one);
#   - store_device_list_all() of the tenant's active devices (what a node taking the tenant
#     over, or reconciling it, reads), three times (fleet_bench readall);
#   - store_verify() (fleet_bench verify).
set -u
B=${B:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FB=$B/tests/bench/fleet_bench
N=${PG_FLEET_N:-100000}
TENANTS=${PG_FLEET_TENANTS:-4}
[ -x "$FB" ] || { echo "$FB not built (make)"; exit 1; }
. "$ROOT/tests/pg_lib.sh"
PG_TEST_FSYNC=off pg_test_start || { echo "cannot start PostgreSQL"; exit 1; }
psql "$PG_TEST_CONN" -qc "CREATE DATABASE fleet" || exit 1
CONN="$PG_TEST_CONN dbname=fleet"
P=(psql "$CONN" -qAtX -v ON_ERROR_STOP=1)
echo "machine: $(nproc) cores, kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg);" \
	"PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }'), fsync off; $N devices in $TENANTS tenants"
"$FB" populate -d "postgresql:$CONN" -n "$N" -t "$TENANTS" -i pgf -p 51900 -j 16 || exit 1
"${P[@]}" -c "VACUUM ANALYZE"
sizes() {
	"${P[@]}" -F' ' -c "SELECT c.relname, pg_total_relation_size(c.oid),
		pg_relation_size(c.oid), (SELECT count(*) FROM devices)
		FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
		WHERE s.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC" |
		awk '{ t += $2; if ($2 < 100000) { small += $2; next }
			printf "  %-12s %12d bytes (table %d, indexes %d)  %6.1f bytes/device\n",
				$1, $2, $3, $2 - $3, $2 / $4; n = $4 }
			END { printf "  %-12s %12d bytes\n  all tables   %12d bytes  %6.1f bytes/device\n",
				"the rest", small, t, t / n }'
}
echo "tables after VACUUM:"
sizes
"${P[@]}" -c "INSERT INTO health SELECT id, 1, 0 FROM devices ON CONFLICT DO NOTHING"
"${P[@]}" -c "VACUUM ANALYZE health"
echo "with one health row per device:"
sizes
echo "database: $("${P[@]}" -c "SELECT pg_database_size('fleet')") bytes;" \
	"WAL written since start: $("${P[@]}" -c "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0')") bytes"
"$FB" readall -d "postgresql:$CONN" -T fleet0 || exit 1
"$FB" verify -d "postgresql:$CONN" | grep -v '^TSV' || exit 1
echo "load now $(cut -d' ' -f1-3 /proc/loadavg)"
