#!/bin/bash
# cluster-bench (not a test; `BENCHES=cluster tests/bench/run.sh`, or run directly): attested
# enrollments by software TPM devices (tests/bench/softdev, build/tests/bench/enroll_bench)
# against K enrolld nodes sharing ONE PostgreSQL (K = 1, 2, 3; fsync on, tests/pg_lib.sh),
# next to one enrolld on LMDB, all in the same run with the points interleaved, so that the
# shared machine's load falls on every configuration alike. docs/benchmarks.md, "Several
# nodes on one PostgreSQL".
#
# Every node runs in a network namespace of its own, reached from the devices' namespace
# over its unix socket (server.unix_socket; plain HTTP listens on loopback only, which is
# the node's own) or, with MODE=https, over a veth pair (node i: 10.201.i.2, port 35100+i,
# TLS), and in a mount namespace of its own
# with a private tmpfs on /run/wireguard: nodes on one database serve the same tenants, so
# their wireguard-go interfaces have the same names, and wireguard-go's UAPI sockets would
# otherwise meet in the host's /run/wireguard. Each node has its own db_path (its keys), all
# nodes of a configuration the same database, the same KEK and the same tenant row.
# Configurations "pg:K": K nodes without [cluster], each bringing every tenant's interface
# up with its own key; "pgc:K": K nodes with [cluster] enabled (lease defaults: the tenant's
# interface on its lease holder only; an enrollment answered by another node waits until
# the holder has applied it), enrolld binary $CLUSTER_BIN (default: $ENROLLD_BIN).
#
# Each software device does its challenge and its completion on one node; devices go
# round-robin over the configuration's nodes (enroll_bench --url ... --url ...). Per point:
# enrollments/s, p50/p99, the nodes' CPU per enrollment summed over the nodes, the devices'
# CPU, PostgreSQL's CPU (the postmaster, its live and its reaped children), and from
# PostgreSQL's statistics for the configuration's database: transactions (reads included),
# rows inserted, updated, deleted per enrollment, and cluster-wide WAL bytes and WAL
# fsyncs per enrollment (pg_stat_wal). At the end, the size of every table per device.
#
#   CONFIGS ("lmdb:1 pg:1 pg:2 pg:3"), CONCS ("8 64"), N (400 per point), ROUNDS (2),
#   EK (p256), MODE (http | https: a new TLS connection per enrollment), CLUSTER_BIN,
#   STATS_WAIT (11 s after each point, for PostgreSQL's statistics), HEALTH_INTERVAL (the
#   nodes' [health] interval; default enrolld's, 5 s)
# TSV to $CLUSTER_TSV (build/bench/cluster.tsv):
#   run ROUND LABEL NODES CONC ENR/S P50 P99 NODES_CPU DEVICES_CPU PG_CPU XACT INS UPD DEL WAL_B
#       WAL_SYNC WRITE_XACT FAILED (all but the rates and latencies per enrollment)
set -u
B=${B:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=$B/tests/bench/enroll_bench
ENROLLD_BIN=${ENROLLD_BIN:-$B/enrolld}
CONFIGS=${CONFIGS:-"lmdb:1 pg:1 pg:2 pg:3"}
CONCS=${CONCS:-"8 64"}
N=${N:-400}
ROUNDS=${ROUNDS:-2}
EK=${EK:-p256}
MODE=${MODE:-http}
CLUSTER_BIN=${CLUSTER_BIN:-$ENROLLD_BIN}
STATS_WAIT=${STATS_WAIT:-11}
CLUSTER_TSV=${CLUSTER_TSV:-$B/bench/cluster.tsv}
[ -x "$BENCH" ] && [ -x "$ENROLLD_BIN" ] || { echo "$BENCH or $ENROLLD_BIN not built (make)"; exit 1; }
. "$ROOT/tests/integration/enrolld_lib.sh"
ed_init cluster
. "$ROOT/tests/pg_lib.sh"
PG_TEST_FSYNC=on pg_test_start || { echo "cannot start the PostgreSQL for the bench"; exit 1; }
PG_PID=$(head -n1 "$PG_TEST_DIR/data/postmaster.pid")
openssl rand -hex 32 >"$T/kek" && chmod 600 "$T/kek"
PSQL=(psql "$PG_TEST_CONN" -qAtX -v ON_ERROR_STOP=1)

mkdir -p "$T/trust"
"$BENCH" ca "$T/trust/ca.pem" "$T/ca.key" || exit 1
CAARG=$T/trust/ca.pem,$T/ca.key
TRUST=$T/trust # enrolld's ek_ca_dir (ed_conf)
POLICY=$("$BENCH" pcr-policy 0 7)
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=bench -addext "subjectAltName=$(seq -s, 1 16 | sed 's/\([0-9]*\)/IP:10.201.\1.2/g')" \
	-keyout "$T/tls.key" -out "$T/tls.pem" 2>/dev/null || exit 1
chmod 600 "$T/tls.key"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%d GB", $2 / 1048576 }' /proc/meminfo)," \
	"$(lscpu | sed -n 's/^Model name: *//p' | head -n1), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }'): own server, fsync on," \
	"synchronous_commit $("${PSQL[@]}" -c 'SHOW synchronous_commit')"
echo "cluster-bench: configurations $CONFIGS, N=$N per point, EK $EK, $MODE, concurrency $CONCS," \
	"$ROUNDS rounds"
[[ " $CONFIGS" == *" pgc:"* ]] && echo "[cluster] configurations: $CLUSTER_BIN"

IDX=0
declare -A NODE_URLS=() NODE_PIDS=() NODE_DB=() NODE_K=() LMDB_DIR=()

# node_start LABEL J BACKEND DBNAME CLUSTER: one enrolld in its own network and mount
# namespaces
node_start() {
	local label=$1 j=$2 backend=$3 db=$4 ns ip port conf log i state=() cl=() bin=$ENROLLD_BIN
	IDX=$((IDX + 1))
	ns=$NS-$label-$j
	ip=10.201.$IDX
	port=$((35100 + IDX))
	ip netns add "$ns" || exit 1
	ED_NAMESPACES+=("$ns")
	ip -n "$ns" link set lo up
	ip -n "$NS" link add "vb$IDX" type veth peer name "vn$IDX" netns "$ns" || exit 1
	ip -n "$NS" addr add "$ip.1/24" dev "vb$IDX"
	ip -n "$ns" addr add "$ip.2/24" dev "vn$IDX"
	ip -n "$NS" link set "vb$IDX" up
	ip -n "$ns" link set "vn$IDX" up
	if [ "$backend" = postgresql ]; then
		state=("[state]" "backend = postgresql" "postgresql = $PG_TEST_CONN dbname=$db"
			"kek_file = $T/kek")
	fi
	if [ "$5" = 1 ]; then
		cl=("[cluster]" "enabled = true" "node = $label-$j")
		bin=$CLUSTER_BIN
	fi
	PORT=$port
	ed_conf "[ratelimit]" "per_source_rate = 0" "global_rate = 0" "${state[@]}" "${cl[@]}"
	conf=$T/$label-$j.conf
	# the production defaults for the background work (reconcile 30 s, health 5 s), not the
	# tests' 2 s and 1 s: seven idle nodes reading their interfaces every second would be
	# the load of the run
	sed -e "s|^listen = .*|listen = $ip.2|" -e "s|^db_path = .*|db_path = $T/db-$label-$j|" \
		-e '/^reconcile_interval = /d' -e '/^interval = 1$/d' \
		-e 's/^\[server\]$/[server]\nmax_connections_per_ip = 0/' "$T/e.conf" >"$conf"
	[ -n "${HEALTH_INTERVAL:-}" ] && sed -i "s/^\[health\]$/[health]\ninterval = $HEALTH_INTERVAL/" "$conf"
	if [ "$MODE" = https ]; then
		sed -i "/^\[server\]/a tls_cert = $T/tls.pem\ntls_key = $T/tls.key" "$conf"
		NODE_URLS[$label]+=" https://$ip.2:$port"
	else
		sed -i -e "/^\[server\]/a unix_socket = $T/$label-$j.sock" "$conf"
		NODE_URLS[$label]+=" unix:$T/$label-$j.sock"
	fi
	log=$T/$label-$j.log
	: >"$log"
	ip netns exec "$ns" sh -c 'mount -t tmpfs -o mode=0755 tmpfs /run/wireguard && exec "$@"' \
		sh "$bin" -d -c "$conf" 2>>"$log" &
	ED_BG_PIDS+=($!)
	NODE_PIDS[$label]+=" $!"
	for i in $(seq 300); do
		grep -q 'listening on' "$log" && break
		kill -0 "$!" 2>/dev/null || break
		sleep 0.1
	done
	grep -q 'listening on' "$log" || { echo "node $label-$j did not start"; tail -n 20 "$log"; exit 1; }
	[ "$backend" = lmdb ] && LMDB_DIR[$label]=$T/db-$label-$j
}

capi() { # URL METHOD PATH TOKEN BODY
	local u=$1 sock=()
	if [ "${u#unix:}" != "$u" ]; then
		sock=(--unix-socket "${u#unix:}")
		u=http://localhost
	fi
	ip netns exec "$NS" curl -s "${sock[@]}" --cacert "$T/tls.pem" -o "$T/body" -w '%{http_code}' \
		-X "$2" -H "Authorization: Bearer $4" -H 'Content-Type: application/json' \
		--data-binary "$5" "$u$3"
}

# config_start BACKEND K: node 1, the tenant and a token through it, then the others
declare -A TOKENS=()
LABELS=()
for cfg in $CONFIGS; do
	backend=${cfg%%:*}
	k=${cfg#*:}
	label=${cfg%%:*}$k
	cluster=0
	[ "$backend" = pgc ] && cluster=1 && backend=pg
	[ "$backend" = pg ] && backend=postgresql
	[ "$backend" = lmdb ] && [ "$k" != 1 ] && { echo "LMDB is one node"; exit 1; }
	LABELS+=("$label")
	NODE_K[$label]=$k
	db=
	if [ "$backend" = postgresql ]; then
		db=bench_$label
		"${PSQL[@]}" -c "CREATE DATABASE $db" || exit 1
		NODE_DB[$label]=$db
	fi
	node_start "$label" 1 "$backend" "$db" "$cluster"
	u1=$(echo ${NODE_URLS[$label]} | cut -d' ' -f1)
	ifn=$(ed_ifname "$label")
	[ "$(capi "$u1" POST /v1/tenants "$ADMIN" "{\"name\":\"bench\",\"prefix\":\"10.200.0.0/16\",\
\"interface\":\"$ifn\",\"listen_port\":$((51000 + IDX)),\"endpoint\":\"192.0.2.1:51820\",\
\"pcr_policy\":$POLICY}")" = 201 ] || { echo "tenant: $(cat "$T/body")"; exit 1; }
	[ "$(capi "$u1" POST /v1/tenants/bench/tokens "$ADMIN" '{"uses":1000000}')" = 201 ] ||
		{ echo "token: $(cat "$T/body")"; exit 1; }
	TOKENS[$label]=$(jq -r .token "$T/body")
	for j in $(seq 2 "$k"); do
		node_start "$label" "$j" "$backend" "$db" "$cluster"
	done
	echo "$label: $k node(s) on $backend$([ "$cluster" = 1 ] && echo ", [cluster]"):${NODE_URLS[$label]}"
done
sleep 2

# One line of counters: the configuration's database's transactions and rows (0 for LMDB),
# then cluster-wide: WAL written (the insert position, exact at once), WAL fsyncs, and the
# next transaction id (ids are given to writing transactions only: the difference counts
# write transactions, without taking an id itself).
pg_counters() { # DB
	"${PSQL[@]}" -F' ' -c "SELECT coalesce(d.xact_commit, 0), coalesce(d.tup_inserted, 0),
		coalesce(d.tup_updated, 0), coalesce(d.tup_deleted, 0),
		pg_wal_lsn_diff(pg_current_wal_insert_lsn(), '0/0'), w.wal_sync,
		pg_snapshot_xmax(pg_current_snapshot())::text::int8
		FROM pg_stat_wal w LEFT JOIN pg_stat_database d ON d.datname = '$1'"
}

# The nodes' background work (health ticks, session purges, the event waiter) when nobody
# enrolls: transactions per second in each database, over STATS_WAIT seconds, before the
# points (their per-enrollment counts include it).
declare -A IDLE0=()
for label in "${LABELS[@]}"; do
	[ -n "${NODE_DB[$label]:-}" ] && IDLE0[$label]=$(pg_counters "${NODE_DB[$label]}")
done
# PostgreSQL's CPU in clock ticks, as enroll_bench --pg-pid counts it (its processes are
# all named postgres: no spaces in the command field)
pg_ticks() {
	cat /proc/[0-9]*/stat 2>/dev/null | awk -v pm="$PG_PID" '
		$1 == pm { t += $14 + $15 + $16 + $17 } $4 == pm { t += $14 + $15 } END { print t }'
}
pg0=$(pg_ticks)
sleep "$STATS_WAIT"
pg1=$(pg_ticks)
for label in "${LABELS[@]}"; do
	[ -n "${NODE_DB[$label]:-}" ] || continue
	awk -v l="$label" -v w="$STATS_WAIT" -v b="${IDLE0[$label]}" -v a="$(pg_counters "${NODE_DB[$label]}")" \
		'BEGIN { split(b, x, " "); split(a, y, " ")
		printf "idle %s: %.1f transactions/s, %.2f write transactions/s (cluster-wide)\n", l,
			(y[1] - x[1]) / w, (y[7] - x[7]) / w }'
done
echo "idle: PostgreSQL's CPU $(( (pg1 - pg0) * 1000 / $(getconf CLK_TCK) / STATS_WAIT )) ms per second"


TLSARG=()
[ "$MODE" = https ] && TLSARG=(--tls-ca "$T/tls.pem")
rc=0
: >"$T/results"
for round in $(seq "$ROUNDS"); do
	for c in $CONCS; do
		for label in "${LABELS[@]}"; do
			args=()
			for u in ${NODE_URLS[$label]}; do args+=(--url "$u"); done
			for p in ${NODE_PIDS[$label]}; do args+=(--pid "$p"); done
			before=$(pg_counters "${NODE_DB[$label]:-}")
			line=$(ip netns exec "$NS" "$BENCH" run "${args[@]}" --pg-pid "$PG_PID" \
				--ca "$CAARG" --token "${TOKENS[$label]}" "${TLSARG[@]}" --ek "$EK" \
				-c "$c" -n "$N" --label "$label") || rc=1
			# a backend's statistics reach pg_stat_database and pg_stat_wal when it goes
			# idle, up to 10 s later if it flushed less than a second before (PostgreSQL 15's
			# PGSTAT_IDLE_INTERVAL); the WAL position and the transaction ids are exact at once
			sleep "$STATS_WAIT"
			after=$(pg_counters "${NODE_DB[$label]:-}")
			stats=$(awk -v n="$N" -v b="$before" -v a="$after" 'BEGIN {
				split(b, x, " "); split(a, y, " ")
				printf "%.2f %.2f %.2f %.2f %.0f %.2f %.2f", (y[1] - x[1]) / n, (y[2] - x[2]) / n,
					(y[3] - x[3]) / n, (y[4] - x[4]) / n, (y[5] - x[5]) / n, (y[6] - x[6]) / n,
					(y[7] - x[7]) / n }')
			echo "r$round nodes ${NODE_K[$label]} $line"
			read -r xact ins upd del walb wals wxact <<<"$stats"
			if [ -n "${NODE_DB[$label]:-}" ]; then
				echo "         per enrollment: transactions $xact (reads included), rows inserted $ins," \
					"updated $upd, deleted $del; cluster-wide: $wxact write transactions," \
					"WAL $walb bytes, $wals WAL fsyncs"
			else
				echo "         (LMDB; PostgreSQL meanwhile, per enrollment: $wxact write transactions," \
					"WAL $walb bytes, $wals fsyncs)"
			fi
			echo "$round ${NODE_K[$label]} $line | $stats" >>"$T/results"
		done
	done
done

echo
echo "== means over the rounds"
# fields: ROUND NODES then enroll_bench's line (LABEL EK MODE conc C n N E enr/s p50 P ms p99 Q
# ms max M ms server CPU ...), then | and the counters
awk '{ k = $2 " " $3 " " $7; n[k]++; e[k] += $10; p50[k] += $13; p99[k] += $16
	for (i = 21; i < NF; i++) { if ($i == "CPU" && $(i - 1) == "server") s[k] += $(i + 1)
		if ($i == "CPU" && $(i - 1) == "devices") d[k] += $(i + 1)
		if ($i == "CPU" && $(i - 1) == "postgres") pg[k] += $(i + 1)
		if ($i == "|") { x[k] += $(i + 1); ins[k] += $(i + 2); wb[k] += $(i + 5); ws[k] += $(i + 6)
			wx[k] += $(i + 7) } } }
	END { for (k in n) { split(k, f, " ")
		printf "%-6s nodes %d conc %3d  %7.1f enr/s  p50 %6.1f  p99 %6.1f ms  CPU ms/enr: " \
			"nodes %5.2f  devices %5.2f  postgres %5.2f  per enr: xact %5.2f  writes %5.2f  " \
			"rows ins %5.2f  WAL %5.0f B  fsyncs %4.2f\n",
			f[2], f[1], f[3], e[k] / n[k], p50[k] / n[k], p99[k] / n[k], s[k] / n[k], d[k] / n[k],
			pg[k] / n[k], x[k] / n[k], wx[k] / n[k], ins[k] / n[k], wb[k] / n[k], ws[k] / n[k] } }' \
	"$T/results" | sort -k4,4n -k1,1 -k3,3n

# The load was spread: each node logged the enrollments it answered ("device N enrolled");
# devices go round-robin, so each node of a configuration must have its share (within 10%).
echo
echo "== enrollments answered per node (round-robin: equal shares)"
for label in "${LABELS[@]}"; do
	k=${NODE_K[$label]}
	total=$(awk -v l="$label" '$3 == l { s += $9 } END { print s + 0 }' "$T/results")
	counts=()
	for j in $(seq "$k"); do
		counts+=("$(grep -c ' enrolled in ' "$T/$label-$j.log")")
	done
	echo "$label: ${counts[*]} (of $total)"
	for c in "${counts[@]}"; do
		if [ $((c * k * 10)) -lt $((total * 9)) ] || [ $((c * k * 10)) -gt $((total * 11)) ]; then
			echo "FAIL: $label: a node answered $c of $total enrollments, not about 1/$k"
			rc=1
		fi
	done
done

echo
echo "== size per device"
for label in "${LABELS[@]}"; do
	if [ -z "${NODE_DB[$label]:-}" ]; then
		f=${LMDB_DIR[$label]}/data.mdb
		echo "$label: LMDB file $(stat -c %s "$f") bytes for" \
			"$(awk -v l="$label" '$3 == l { s += $9 } END { print s }' "$T/results") enrollments"
		continue
	fi
	db=${NODE_DB[$label]}
	psql "$PG_TEST_CONN dbname=$db" -qAtX -c "SELECT '$label: ' || count(*) || ' devices, database ' ||
		pg_database_size('$db') || ' bytes' FROM devices"
done
# one database in detail: every table with its indexes and TOAST, per device, then with one
# health row per device (a device that has been seen once has one), after VACUUM
last=
for label in "${LABELS[@]}"; do [ -n "${NODE_DB[$label]:-}" ] && last=$label; done
if [ -n "$last" ]; then
	db=${NODE_DB[$last]}
	P=(psql "$PG_TEST_CONN dbname=$db" -qAtX -v ON_ERROR_STOP=1)
	"${P[@]}" -c "VACUUM" 2>/dev/null
	sizes() {
		"${P[@]}" -F' ' -c "SELECT c.relname, pg_total_relation_size(c.oid),
			round(pg_total_relation_size(c.oid)::numeric / (SELECT count(*) FROM devices), 1)
			FROM pg_class c JOIN pg_namespace s ON s.oid = c.relnamespace
			WHERE s.nspname = 'public' AND c.relkind = 'r' ORDER BY 2 DESC" |
			awk '{ printf "  %-16s %10d bytes  %8.1f bytes/device\n", $1, $2, $3; t += $2 }
				END { printf "  %-16s %10d bytes\n", "all tables", t }'
	}
	nd=$("${P[@]}" -c "SELECT count(*) FROM devices")
	echo "$last's database after VACUUM, $nd devices:"
	sizes
	"${P[@]}" -c "INSERT INTO health SELECT id, 1, 0 FROM devices ON CONFLICT DO NOTHING"
	"${P[@]}" -c "VACUUM health"
	echo "with one health row per device:"
	sizes
fi

mkdir -p "$(dirname "$CLUSTER_TSV")"
awk 'BEGIN { OFS = "\t" }
	{ cpu = dcpu = pcpu = ""; failed = ""
	for (i = 21; i < NF; i++) {
		if ($i == "CPU" && $(i - 1) == "server") cpu = $(i + 1)
		if ($i == "CPU" && $(i - 1) == "devices") dcpu = $(i + 1)
		if ($i == "CPU" && $(i - 1) == "postgres") pcpu = $(i + 1)
		if ($i == "failed") failed = $(i + 1) + 0
		if ($i == "|")
			st = $(i + 1) "\t" $(i + 2) "\t" $(i + 3) "\t" $(i + 4) "\t" $(i + 5) "\t" \
				$(i + 6) "\t" $(i + 7) }
	print "run", $1, $3, $2, $7, $10, $13, $16, cpu, dcpu, pcpu, st, failed }' \
	"$T/results" >"$CLUSTER_TSV"
echo "TSV: $CLUSTER_TSV; load now $(cut -d' ' -f1-3 /proc/loadavg)"
exit $rc
