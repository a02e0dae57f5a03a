#!/bin/bash
# Three enrolld nodes on one PostgreSQL, tenants failing over between them (issue 15,
# docs/cluster.md). Everything real: a throw-away PostgreSQL (tests/pg_lib.sh) reached over
# TCP, three enrolld nodes, two gateways running edge-keyd on swtpm, software devices for
# load (build/tests/progs/cluster_load), userspace WireGuard throughout.
#
#   cf-rt-$S   the router: bridge cfbb$S (backend 10.78.0.0/24, .254) and cfbw$S (WAN
#              10.79.0.0/24, .254), IP forwarding; the admin API, the load and the event
#              stream run here
#   cf-db-$S   10.78.0.10: PostgreSQL on :5432, trust for 10.78.0.0/24 only
#   cf-nI-$S   node nI, 10.78.0.I (I = 1..3): enrolld, HTTPS on :8443 (one test CA, every
#              node's address in its certificate), in a private mount namespace with its
#              own tmpfs on /run/wireguard (the tenants' interfaces have the same name on
#              every node). Every node has each tenant's endpoint address (a VIP,
#              10.77.0.10K) on its loopback; its endpoint hook logs "<time> nI up|down
#              <tenant> ..." to $T/hook.log and routes the VIP to itself in the router
#              (up) or withdraws that route (down), like an anycast announcement.
#   cf-gJ-$S   gateway gJ, 10.79.0.1J (veth cfwJ$S): swtpm, edge-keyd (tenant tJ, enrolled through node
#              nJ), default route through the router
# Tenants t1..t3 (interfaces cfa$S cfb$S cfc$S, 10.90.K.0/24 ... see below), keepalive 1,
# endpoint 10.77.0.10K:5100K. Leases short to keep the test quick: lease 3000 ms, margin
# 1000, tick 500.
#
# Scenarios, each check a PASS/FAIL line:
#   1. enroll through A, revoke through B (neither the owner) while the owner is stopped
#      (SIGSTOP, 0.8 s: it keeps its lease): B answers only after the owner runs again, and
#      the peer is gone from the owner's interface when it does; the events (enrolled,
#      revoked) on C's (the owner's) stream.
#   2. SIGKILL of t1's owner under enrollment load (through all nodes): t1 comes up on
#      another node within seconds (hook log), gateway g1's tunnel comes back by itself
#      (it pings t1's own address through the tunnel), every acknowledged enrollment is in
#      the database and on the new owner's interface, no address is held twice. A killed
#      enrolld leaves its wireguard-go children (a restart adopts them, by design): a
#      node's death here is the SIGKILL of every process in its network namespace (ours:
#      enrolld, its wireguard-go, its hook), after which "<time> nI killed" is logged.
#   3. PostgreSQL restarted under load: the nodes reconnect (each enrolls again), nothing
#      acknowledged is lost, every tenant is up on exactly one node afterwards.
#   4. one node cut off from the database (nftables in its namespace drops its packets to
#      :5432): for each tenant it held, its "down" line comes before any other node's "up".
#   Throughout: the hook log replayed in time order never has a tenant up on two nodes.
# Before enrolld has cluster mode ([cluster] in enrolld.conf), the topology, the database
# over TCP, three nodes, load with a PostgreSQL restart and the event stream are checked,
# and the test then skips (77) the failover scenarios.
# KEEP_TMP=1 keeps the temp directory (logs, hook log, load output).
set -u
B=${B:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT" || exit 1
ENROLLD=$ROOT/$B/enrolld
EKD=$ROOT/$B/edge-keyd
LOAD=$ROOT/$B/tests/progs/cluster_load
WGCTL=$ROOT/$B/tests/progs/wgctl
BENCH=$ROOT/$B/tests/bench/enroll_bench
case $B in /*) ENROLLD=$B/enrolld EKD=$B/edge-keyd LOAD=$B/tests/progs/cluster_load
	WGCTL=$B/tests/progs/wgctl BENCH=$B/tests/bench/enroll_bench ;; esac

for p in "$ENROLLD" "$EKD" "$LOAD" "$WGCTL" "$BENCH"; do
	[ -x "$p" ] || { echo "not built: $p"; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (namespaces, TUN)"; exit 77; }
for t in wireguard-go ip nft nsenter unshare swtpm swtpm_setup tpm2_getcap openssl curl jq \
	ping psql; do
	command -v "$t" >/dev/null || { echo "skip: $t not installed"; exit 77; }
done
[ -c /dev/net/tun ] || { echo "skip: no /dev/net/tun"; exit 77; }
[ "$(readlink -f /var/run)" = /run ] || { echo "skip: /var/run is not /run"; exit 77; }
. tests/pg_lib.sh
pg_test_require
. swtpm-fixtures/lib.sh
export TSS2_LOG=all+none

S=$$
T=$(mktemp -d /tmp/cluster_failover.XXXXXX)
chmod 755 "$T"
NS_RT=cf-rt-$S NS_DB=cf-db-$S
NS_N=(- "cf-n1-$S" "cf-n2-$S" "cf-n3-$S")
NS_G=(- "cf-g1-$S" "cf-g2-$S")
NAMESPACES=("$NS_RT" "$NS_DB" "${NS_N[@]:1}" "${NS_G[@]:1}")
DB_IP=10.78.0.10
TEN=(- t1 t2 t3)
TIF=(- "cfa$S" "cfb$S" "cfc$S")
GW_IF=(- "cfg1$S" "cfg2$S")
NODE_PID=(- "" "" "")
EKD_PID=(- "" "")
SWTPM_PIDS=()
BG_PIDS=()
LEASE_MS=3000 MARGIN_MS=1000 TICK_MS=500
passes=0 fails=0

stop_pid() { # PID: SIGTERM, SIGKILL after 5 s
	local p=$1 st
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
	for _ in $(seq 50); do
		st=$(ps -o stat= -p "$p" 2>/dev/null)
		[ -n "$st" ] && [[ $st != Z* ]] || break
		sleep 0.1
	done
	kill -9 "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}

cleanup() {
	local p ns i
	trap - EXIT
	for p in "${BG_PIDS[@]}"; do stop_pid "$p"; done
	for i in 1 2; do stop_pid "${EKD_PID[$i]}"; done
	for i in 1 2 3; do stop_pid "${NODE_PID[$i]}"; done
	for p in "${SWTPM_PIDS[@]}"; do stop_pid "$p"; done
	pg_test_stop
	# what is still in our namespaces is ours (wireguard-go of a killed daemon, a hook)
	for ns in "${NAMESPACES[@]}"; do
		ip netns exec "$ns" nft delete table inet cfcut 2>/dev/null
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
	done
	for ns in "${NAMESPACES[@]}"; do ip netns del "$ns" 2>/dev/null; done
	for i in 1 2; do rm -f "/run/wireguard/${GW_IF[$i]}.sock"; done
	if [ -n "${KEEP_TMP:-}" ]; then echo "kept $T"; else rm -rf "$T"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

say() { echo "== $*"; }
check() { # DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@"; then
		echo "PASS $d"
		passes=$((passes + 1))
	else
		echo "FAIL $d"
		fails=$((fails + 1))
	fi
}
die() {
	local f
	echo "FAIL: $*"
	for f in "$T"/*.log; do [ -s "$f" ] && { echo "--- $f"; tail -n 25 "$f"; }; done
	exit 1
}
wait_for() { # SECONDS COMMAND...: until it succeeds, polling every 0.2 s, at most SECONDS
	local end=$((SECONDS + $1))
	shift
	while :; do
		"$@" && return 0
		[ "$SECONDS" -lt "$end" ] || return 1
		sleep 0.2
	done
}
now() { date +%s.%N; }
calc() { awk "BEGIN { printf \"%.2f\", $* }"; } # EXPRESSION
lt() { [ -n "$1" ] && [ -n "$2" ] && awk -v a="$1" -v b="$2" 'BEGIN { exit !(a + 0 < b + 0) }'; } # A < B
rt() { ip netns exec "$NS_RT" "$@"; }
sql() { psql "$PG_TEST_CONN dbname=enrolld" -Atc "$1"; }
url() { echo "https://10.78.0.$1:8443"; }
api() { # NODE METHOD PATH [BODY]: the HTTP status on stdout, the body in $T/body
	rt curl -s --max-time 20 --cacert "$T/ca.pem" -H "Authorization: Bearer $ADMIN" \
		-o "$T/body" -w '%{http_code}' -X "$2" \
		${4:+-H 'Content-Type: application/json' --data "$4"} "$(url "$1")$3"
}

# ---- topology ----------------------------------------------------------------------------

veth() { # NETNS NAME BRIDGE ADDR/LEN GATEWAY
	ip link add "$2" netns "$1" type veth peer name "${2}r" netns "$NS_RT" || die "veth $2"
	ip -n "$NS_RT" link set "${2}r" master "$3" up
	ip -n "$1" addr add "$4" dev "$2"
	ip -n "$1" link set "$2" up
	[ -n "$5" ] && ip -n "$1" route add default via "$5"
	return 0
}

say "topology: router, database, nodes n1-n3, gateways g1-g2"
for ns in "${NAMESPACES[@]}"; do
	ip netns add "$ns" || die "netns add $ns"
	ip -n "$ns" link set lo up
done
rt sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
	net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.send_redirects=0
for br in cfbb$S cfbw$S; do ip -n "$NS_RT" link add "$br" type bridge && ip -n "$NS_RT" link set "$br" up; done
ip -n "$NS_RT" addr add 10.78.0.254/24 dev cfbb$S
ip -n "$NS_RT" addr add 10.79.0.254/24 dev cfbw$S
veth "$NS_DB" cfdb$S cfbb$S "$DB_IP/24" 10.78.0.254
for i in 1 2 3; do
	veth "${NS_N[$i]}" cfn$i$S cfbb$S 10.78.0.$i/24 10.78.0.254
	for k in 1 2 3; do ip -n "${NS_N[$i]}" addr add 10.77.0.10$k/32 dev lo; done
	ip netns exec "${NS_N[$i]}" sysctl -qw net.ipv4.ip_local_port_range="40000 60999"
done
for j in 1 2; do veth "${NS_G[$j]}" cfw$j$S cfbw$S 10.79.0.1$j/24 10.79.0.254; done
rt ping -c 1 -W 2 "$DB_IP" >/dev/null || die "the router does not reach the database's namespace"

say "PostgreSQL in $NS_DB on $DB_IP:5432"
PG_TEST_NETNS=$NS_DB PG_TEST_LISTEN=$DB_IP PG_TEST_HBA=10.78.0.0/24
pg_test_start || die "cannot start the test PostgreSQL"
trap cleanup EXIT # pg_test_start chained its own: cleanup stops it in order
psql "$PG_TEST_CONN" -qc 'CREATE DATABASE enrolld' || die "CREATE DATABASE"
DB="$PG_TEST_TCP_CONN dbname=enrolld connect_timeout=3"
check "the database answers over TCP from a node's namespace" \
	[ "$(ip netns exec "${NS_N[1]}" psql "$DB" -Atc 'select 42' 2>/dev/null)" = 42 ]
check "and not from the gateways' network (trust for the backend subnet only)" \
	bash -c "! ip netns exec ${NS_G[1]} psql '$DB' -Atc 'select 1' >/dev/null 2>&1"

say "credentials: TLS for the three nodes, tokens, KEK, EK trust (fixtures' CA and the software devices' CA)"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
	-subj "/CN=cluster test CA" -keyout "$T/ca.key" -out "$T/ca.pem" 2>/dev/null || die "CA"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=enrolld" \
	-keyout "$T/tls.key" -out "$T/tls.csr" 2>/dev/null || die "CSR"
printf 'subjectAltName=IP:10.78.0.1,IP:10.78.0.2,IP:10.78.0.3\n' >"$T/ext"
openssl x509 -req -in "$T/tls.csr" -CA "$T/ca.pem" -CAkey "$T/ca.key" -CAcreateserial \
	-days 2 -extfile "$T/ext" -out "$T/tls.pem" 2>/dev/null || die "server certificate"
(umask 077
	echo "admin-$(openssl rand -hex 16)" >"$T/admin.token"
	echo "prov-$(openssl rand -hex 16)" >"$T/prov.token"
	openssl rand -hex 32 >"$T/kek")
chmod 600 "$T/tls.key"
ADMIN=$(cat "$T/admin.token")
FIXTRUST=$(swtpm_fixture_trust) || die "fixture CA"
mkdir -p "$T/trust"
cp "$FIXTRUST"/* "$T/trust/"
"$BENCH" ca "$T/trust/softdev-ca.pem" "$T/softdev-ca.key" || die "software devices' CA"

# ---- nodes -------------------------------------------------------------------------------

for i in 1 2 3; do
	mkdir -p "$T/n$i"
	cat >"$T/n$i/hook" <<EOF
#!/bin/sh
# the endpoint hook of node n$i: up|down TENANT IFNAME ENDPOINT
echo "\$(date +%s.%N) n$i \$1 \$2 \$3 \$4" >>"$T/hook.log"
vip=\${4%:*}
case \$1 in
up) ip -n $NS_RT route replace "\$vip/32" via 10.78.0.$i ;;
down) ip -n $NS_RT route del "\$vip/32" via 10.78.0.$i 2>/dev/null ;;
esac
exit 0
EOF
	chmod 755 "$T/n$i/hook"
	cat >"$T/n$i/enrolld.conf" <<EOF
[server]
listen = 10.78.0.$i
port = 8443
tls_cert = $T/tls.pem
tls_key = $T/tls.key
header_timeout = 10
[state]
db_path = $T/n$i/db
backend = postgresql
postgresql = $DB
kek_file = $T/kek
[auth]
admin_token_file = $T/admin.token
provisioning_token_file = $T/prov.token
[attestation]
ek_ca_dir = $T/trust
[wireguard]
backend = userspace
nftables = no
vrf = no
reconcile_interval = 2
[health]
interval = 1
EOF
	cat >"$T/n$i/cluster.conf" <<EOF
[cluster]
enabled = true
node = n$i
lease_ms = $LEASE_MS
margin_ms = $MARGIN_MS
tick_ms = $TICK_MS
endpoint_hook = $T/n$i/hook
revoke_wait_ms = 5000
EOF
done
: >"$T/hook.log"
# Cluster mode when this enrolld takes the [cluster] section (enrolld -n checks a
# configuration); before the lead's code is merged, the rest runs without it.
CLUSTER=0
cat "$T/n1/enrolld.conf" "$T/n1/cluster.conf" >"$T/probe.conf"
if "$ENROLLD" -n -c "$T/probe.conf" >"$T/probe.out" 2>&1; then
	CLUSTER=1
	for i in 1 2 3; do cat "$T/n$i/cluster.conf" >>"$T/n$i/enrolld.conf"; done
elif ! grep -q "unknown key 'cluster\." "$T/probe.out"; then
	die "enrolld -n refuses the configuration: $(cat "$T/probe.out")"
fi

healthy() { rt curl -sf --max-time 2 --cacert "$T/ca.pem" "$(url "$1")/healthz" -o /dev/null; }

# Node I: enrolld in its namespace and a private mount namespace with its own
# /run/wireguard (ip netns exec, unshare and sh exec: $! is enrolld).
node_start() { # I
	local i=$1
	mkdir -p /run/wireguard
	# shellcheck disable=SC2016 # expanded by the inner shell
	ip netns exec "${NS_N[$i]}" unshare -m --propagation private sh -c \
		'mount -t tmpfs -o mode=0755 tmpfs /run/wireguard && exec "$0" -d -c "$1"' \
		"$ENROLLD" "$T/n$i/enrolld.conf" >>"$T/n$i.log" 2>&1 &
	NODE_PID[$i]=$!
	for _ in $(seq 100); do
		healthy "$i" && return 0
		kill -0 "${NODE_PID[$i]}" 2>/dev/null || break
		sleep 0.2
	done
	die "node n$i does not answer on $(url "$i")"
}

# A node's death: every process of its namespace SIGKILLed (enrolld, its wireguard-go,
# a hook under way), then "killed" logged for the hook log's replay.
node_kill() { # I
	local i=$1 p
	for p in $(ip netns pids "${NS_N[$i]}"); do kill -9 "$p" 2>/dev/null; done
	wait "${NODE_PID[$i]}" 2>/dev/null
	NODE_PID[$i]=
	for _ in $(seq 50); do [ -z "$(ip netns pids "${NS_N[$i]}")" ] && break; sleep 0.1; done
	echo "$(now) n$i killed" >>"$T/hook.log"
}

# In node I's mount namespace (its /run/wireguard).
in_node() { # I COMMAND...
	local i=$1
	shift
	[ -n "${NODE_PID[$i]}" ] || return 1
	nsenter -t "${NODE_PID[$i]}" -m -n "$@"
}
node_has_if() { in_node "$1" test -S "/run/wireguard/$2.sock"; }
node_peers() { in_node "$1" "$WGCTL" --backend uapi show "$2" 2>/dev/null | tail -n +2; }

# The node holding tenant K by the hook log (its last up without a down or a kill after).
holder() { # K
	awk -v t="${TEN[$1]}" '
		$3 == "killed" { if (h == $2) h = ""; next }
		$4 == t && $3 == "up" { h = $2 }
		$4 == t && $3 == "down" && h == $2 { h = "" }
		END { print h }' <(sort -n "$T/hook.log")
}
holder_i() { local h; h=$(holder "$1"); echo "${h#n}"; }
# Which nodes have tenant K's interface, by looking (a list of node numbers).
if_nodes() { # K
	local i out=
	for i in 1 2 3; do node_has_if "$i" "${TIF[$1]}" 2>/dev/null && out="$out$i"; done
	echo "$out"
}
one_owner() { # K: exactly one node has the interface, and it is the hook log's holder
	local n h
	n=$(if_nodes "$1")
	h=$(holder_i "$1")
	[ ${#n} = 1 ] && [ "$n" = "$h" ]
}

# The hook log in time order never has a tenant up on two nodes (a "killed" line downs
# every tenant of its node). Prints the first violation.
no_split_brain() {
	sort -n "$T/hook.log" | awk '
		$3 == "killed" { for (k in up) if (index(up[k], " " $2 " ")) sub(" " $2 " ", " ", up[k]); next }
		$3 == "up" { if (up[$4] ~ /n[0-9]/) { print "split: " $0 " while up on" up[$4]; bad = 1 }
			     up[$4] = up[$4] " " $2 " " }
		$3 == "down" { sub(" " $2 " ", " ", up[$4]) }
		END { exit bad }'
}

# ---- load --------------------------------------------------------------------------------

load_start() { # NAME SECONDS NODE...: enrollments into t1 through the nodes given
	local name=$1 secs=$2 u=() i
	shift 2
	for i in "$@"; do u+=("$(url "$i")"); done
	rt "$LOAD" --ca "$T/trust/softdev-ca.pem,$T/softdev-ca.key" --token "$TOKEN" \
		--tls-ca "$T/ca.pem" -c 2 -s "$secs" "${u[@]}" >"$T/$name.out" 2>"$T/$name.err" &
	LOAD_PID=$!
	BG_PIDS+=("$LOAD_PID")
}
load_wait() {
	wait "$LOAD_PID"
	LOAD_PID=
}
acked() { awk '$3 == 200' "$T/$1.out"; }
# Every acknowledged enrollment of the load NAME is a device of the database, with the
# device id and the address it was answered with.
all_acked_in_db() { # NAME
	sql "SELECT id, encode(wg_pubkey, 'base64') FROM devices WHERE tenant = 't1'" |
		tr '|' ' ' | sort >"$T/db.devices"
	acked "$1" | awk '{ print $4, $6 }' | sort >"$T/$1.acked"
	[ -s "$T/$1.acked" ] || { echo "(no acknowledged enrollment)"; return 1; }
	local missing
	missing=$(comm -23 "$T/$1.acked" "$T/db.devices" | wc -l)
	[ "$missing" = 0 ] || { echo "($missing acknowledged enrollments missing, e.g. $(comm -23 "$T/$1.acked" "$T/db.devices" | head -n1))"; return 1; }
}
# No address answered to two devices, none twice in the database's tenant.
no_dup_addresses() { # NAME...
	local n
	n=$(for f in "$@"; do acked "$f"; done | awk '{ print $5, $4 }' | sort -u |
		awk '{ c[$1]++ } END { for (a in c) if (c[a] > 1) n++; print n + 0 }')
	[ "$n" = 0 ] || { echo "($n addresses answered to two devices)"; return 1; }
	n=$(sql "SELECT count(*) FROM (SELECT addr4 FROM devices GROUP BY tenant, addr4 HAVING count(*) > 1) d")
	[ "$n" = 0 ] || { echo "($n addresses twice in the database)"; return 1; }
}
# The acknowledged enrollments' keys are peers on node I's interface of t1, each allowed
# address on it once.
acked_on_if() { # I NAME...
	local i=$1 missing dup
	shift
	node_peers "$i" "${TIF[1]}" >"$T/if.peers"
	for f in "$@"; do acked "$f"; done | awk '{ print $6 }' | sort -u >"$T/acked.keys"
	missing=$(cut -f1 "$T/if.peers" | sort -u | comm -13 - "$T/acked.keys" | wc -l)
	dup=$(cut -f4 "$T/if.peers" | tr ',' '\n' | grep -v '^$' | sort | uniq -d | wc -l)
	[ "$missing" = 0 ] && [ "$dup" = 0 ] ||
		{ echo "($missing acknowledged keys not on n$i's ${TIF[1]}, $dup addresses twice)"; return 1; }
}

# ---- start ---------------------------------------------------------------------------------

say "three nodes (cluster mode: $([ "$CLUSTER" = 1 ] && echo on || echo "off: enrolld has no [cluster] yet"))"
for i in 1 2 3; do node_start "$i"; done
check "the schema was made once by three nodes starting on one database" \
	[ "$(sql 'SELECT count(*) = count(DISTINCT version) FROM schema_migrations')" = t ]

say "tenants t1-t3 through n1"
for k in 1 2 3; do
	st=$(api 1 POST /v1/tenants "{\"name\":\"${TEN[$k]}\",\"prefix\":\"10.9$k.0.0/20\",
		\"interface\":\"${TIF[$k]}\",\"listen_port\":5100$k,\"endpoint\":\"10.77.0.10$k:5100$k\",
		\"keepalive\":1}")
	[ "$st" = 201 ] || die "tenant ${TEN[$k]}: HTTP $st $(cat "$T/body")"
done
api 2 POST /v1/tenants/t1/tokens '{"uses":100000}' >/dev/null
TOKEN=$(jq -r .token "$T/body")
[ -n "$TOKEN" ] && [ "$TOKEN" != null ] || die "token: $(cat "$T/body")"

if [ "$CLUSTER" = 1 ]; then
	for k in 1 2 3; do
		check "${TEN[$k]} comes up on exactly one node (the hook's)" wait_for 15 one_owner "$k"
	done
	echo "   holders: t1 n$(holder_i 1), t2 n$(holder_i 2), t3 n$(holder_i 3)"
	check "the leases say the same" [ "$(sql "SELECT string_agg(tenant || '=' || node, ' ' ORDER BY tenant) FROM tenant_leases WHERE expires > clock_timestamp()")" = "t1=n$(holder_i 1) t2=n$(holder_i 2) t3=n$(holder_i 3)" ]
fi

if [ "$CLUSTER" != 1 ]; then
	say "(no cluster mode) load through the three nodes, PostgreSQL restarted under it"
	SSE_PID=
	rt curl -sN --cacert "$T/ca.pem" -H "Authorization: Bearer $ADMIN" \
		"$(url 3)/v1/events?tenant=t1" >"$T/sse.out" 2>/dev/null &
	SSE_PID=$!
	BG_PIDS+=("$SSE_PID")
	load_start load0 10 1 2 3
	sleep 3
	t0=$(now)
	pg_test_restart || die "PostgreSQL restart"
	echo "   PostgreSQL restarted in $(calc "$(now) - $t0") s"
	load_wait
	echo "   load: $(acked load0 | wc -l) acknowledged, $(awk '$3 != 200' "$T/load0.out" | wc -l) not; $(cut -d' ' -f3,7 "$T/load0.out" | sort | uniq -c | tr '\n' ';')"
	check "every acknowledged enrollment is in the database" all_acked_in_db load0
	check "no address answered or stored twice" no_dup_addresses load0
	for i in 1 2 3; do
		load_start "after$i" 2 "$i"
		load_wait
		check "n$i enrolls after the restart" [ "$(acked "after$i" | wc -l)" -gt 0 ]
	done
	D=$(acked after3 | awk 'NR == 1 { print $4 }')
	LAST=$(grep '^id: ' "$T/sse.out" | tail -n1 | cut -d' ' -f2)
	# a stream may end when its node loses the database: a client resumes (Last-Event-ID)
	echo "   (C's stream: last id $LAST, $(kill -0 "$SSE_PID" 2>/dev/null && echo "still open" || echo "closed by the server"))"
	rt curl -sN --max-time 5 --cacert "$T/ca.pem" -H "Authorization: Bearer $ADMIN" \
		"$(url 3)/v1/events?tenant=t1&after=${LAST:-0}" >"$T/sse2.out" 2>/dev/null
	check "a new stream on C resumes after the last id and has C's enrollment" \
		grep -q "\"type\":\"enrolled\",\"device_id\":\"$D\"" "$T/sse2.out"
	D=$(acked after1 | awk 'NR == 1 { print $4 }')
	check "and the enrollment through A (n1)" \
		grep -q "\"type\":\"enrolled\",\"device_id\":\"$D\"" "$T/sse2.out"
	ids_complete() { # the two streams together: every event of the database once, in order
		local want got
		want=$(sql "SELECT string_agg(seq::text, ' ' ORDER BY seq) FROM events WHERE tenant = 't1'")
		got=$(cat "$T/sse.out" "$T/sse2.out" | sed -n 's/^id: //p' | tr '\n' ' ' | sed 's/ $//')
		[ "$got" = "$want" ] || { echo "(ids: $(wc -w <<<"$got") seen, $(wc -w <<<"$want") in the database)"; return 1; }
	}
	check "no event missed or repeated across the streams (ids as in the database)" ids_complete
	echo "$passes passed, $fails failed"
	[ "$fails" = 0 ] || exit 1
	echo "skip: enrolld has no cluster mode yet ([cluster] in docs/cluster.md): failover scenarios not run"
	exit 77
fi

# ---- gateways ------------------------------------------------------------------------------

say "gateways g1 (t1, through n1) and g2 (t2, through n2): swtpm, edge-keyd"
for j in 1 2; do
	d=$T/g$j
	mkdir -p "$d"
	swtpm_fixture_state "cluster-g$j" "$d/tpm" || die "fixture state g$j"
	ip netns exec "${NS_G[$j]}" swtpm socket --tpm2 --tpmstate dir="$d/tpm" \
		--flags not-need-init,startup-clear --server type=tcp,port=2321,bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=2322,bindaddr=127.0.0.1 >"$T/swtpm$j.log" 2>&1 </dev/null &
	SWTPM_PIDS+=($!)
	wait_for 10 ip netns exec "${NS_G[$j]}" tpm2_getcap -T swtpm:host=127.0.0.1,port=2321 \
		properties-fixed >/dev/null 2>&1 || die "swtpm of g$j"
	cp "$T/prov.token" "$d/prov.token"
	cat >"$d/edge-keyd.conf" <<EOF
[device]
state_dir = $d/state
tcti = swtpm:host=127.0.0.1,port=2321
label = g$j
[server]
url = $(url "$j")
ca_file = $T/ca.pem
tenant = ${TEN[$j]}
provisioning_token_file = $d/prov.token
[wireguard]
interface = ${GW_IF[$j]}
backend = userspace
check_interval = 1
EOF
	ekd() { ip netns exec "${NS_G[$j]}" timeout 60 "$EKD" -c "$T/g$j/edge-keyd.conf" "$@"; }
	ekd provision >/dev/null 2>>"$T/g$j.log" || die "provision g$j"
	ekd enroll 2>>"$T/g$j.log" || die "enroll g$j"
	ip netns exec "${NS_G[$j]}" "$EKD" -c "$d/edge-keyd.conf" -d run >>"$T/g$j.log" 2>&1 &
	EKD_PID[$j]=$!
done
gw_ping() { ip netns exec "${NS_G[$1]}" ping -c 1 -W 1 "10.9$1.0.1" >/dev/null 2>&1; }
for j in 1 2; do
	check "g$j's tunnel is up: it pings ${TEN[$j]}'s address 10.9$j.0.1 on n$(holder_i "$j")" wait_for 30 gw_ping "$j"
done

# ---- 1. enroll through A, revoke through B, events on C -------------------------------------

O=$(holder_i 1)
A=$((O % 3 + 1)) Bn=$(((O + 1) % 3 + 1)) C=$O
say "1. t1's owner n$O: enroll through A=n$A, revoke through B=n$Bn, events on C=n$C"
rt curl -sN --cacert "$T/ca.pem" -H "Authorization: Bearer $ADMIN" \
	"$(url "$C")/v1/events?tenant=t1" >"$T/sse.out" 2>/dev/null &
SSE_PID=$!
BG_PIDS+=("$SSE_PID")
sleep 0.5
load_start enroll1 1 "$A"
load_wait
check "devices enroll through A (n$A)" [ "$(acked enroll1 | wc -l)" -gt 0 ]
D=$(acked enroll1 | awk 'NR == 1 { print $4 }')
DKEY=$(acked enroll1 | awk 'NR == 1 { print $6 }')
peer_on_owner() { node_peers "$O" "${TIF[1]}" | grep -qF "$DKEY"; }
check "device $D's peer is on the owner's (n$O) interface" wait_for 5 peer_on_owner
# The owner is stopped (SIGSTOP, less than lease - margin: it keeps the lease) while B is
# asked: B must not answer before the owner runs again and has removed the peer.
kill -STOP "${NODE_PID[$O]}"
rm -f "$T/revoke.at"
(st=$(api "$Bn" POST "/v1/devices/$D/revoke")
	at=$(now) peer=gone
	peer_on_owner && peer=present # at once, no waiting
	echo "$at $st $peer" >"$T/revoke.at") &
REV_PID=$!
sleep 0.8
answered_early=0
[ -s "$T/revoke.at" ] && answered_early=1
T_CONT=$(now)
kill -CONT "${NODE_PID[$O]}"
wait "$REV_PID"
read -r T_REV st peer <"$T/revoke.at"
echo "   B answered $(calc "$T_REV - $T_CONT") s after the owner was let run again"
check "revoked through B (n$Bn): HTTP $st" [ "$st" = 200 ]
check "B did not answer while the owner was stopped" [ "$answered_early" = 0 ]
check "the peer is gone from the owner's interface when B answered" [ "$peer" = gone ]
check "C's (n$C) stream has the enrollment through A" \
	wait_for 5 grep -q "\"type\":\"enrolled\",\"device_id\":\"$D\"" "$T/sse.out"
check "and the revocation through B" \
	wait_for 5 grep -q "\"type\":\"revoked\",\"device_id\":\"$D\"" "$T/sse.out"
ids_increase() { grep '^id: ' "$T/sse.out" | cut -d' ' -f2 | awk 'NR > 1 && $1 <= p { bad = 1 } { p = $1 } END { exit bad }'; }
check "its event ids increase" ids_increase

# ---- 2. SIGKILL of t1's owner under load -----------------------------------------------------

O=$(holder_i 1)
say "2. SIGKILL of t1's owner n$O under enrollment load through all nodes"
load_start load2 16 1 2 3
sleep 4
E1=$(sql "SELECT epoch FROM tenant_leases WHERE tenant = 't1'")
T_KILL=$(now)
node_kill "$O"
first_up_after() { # TENANT TIME: the first "up" of TENANT after TIME ("time node")
	sort -n "$T/hook.log" | awk -v t="$1" -v s="$2" '$4 == t && $3 == "up" && $1 > s { print $1, $2; exit }'
}
new_up() { [ -n "$(first_up_after t1 "$T_KILL")" ]; }
check "t1 comes up on another node" wait_for 15 new_up
read -r T_UP N_UP < <(first_up_after t1 "$T_KILL")
FAILOVER=$(calc "$T_UP - $T_KILL")
echo "   t1 up on $N_UP ${FAILOVER} s after the kill (lease $LEASE_MS ms, margin $MARGIN_MS, tick $TICK_MS)"
# the lease's expiry plus a take's tick, and room for a loaded machine
check "within lease + 3 s" lt "$FAILOVER" "$(calc "($LEASE_MS + 3000) / 1000")"
O2=$(holder_i 1)
E2=$(sql "SELECT epoch FROM tenant_leases WHERE tenant = 't1'")
new_epoch() {
	[ "${E2:-0}" -gt "${E1:-0}" ] &&
		grep -q "cluster: tenant 't1' up on node n$O2 (epoch $E2)" "$T/n$O2.log"
}
check "with a new epoch ($E1 -> $E2), in the new owner's log" new_epoch
check "the new owner n$O2 is not the killed n$O, and only it has t1's interface" \
	bash -c "[ '$O2' != '$O' ] && [ '$(if_nodes 1)' = '$O2' ]"
check "g1's tunnel comes back by itself (ping through it to 10.91.0.1)" wait_for 45 gw_ping 1
echo "   g1's tunnel back $(calc "$(now) - $T_KILL") s after the kill"
load_wait
echo "   load: $(acked load2 | wc -l) acknowledged, $(awk '$3 != 200' "$T/load2.out" | wc -l) not"
check "every acknowledged enrollment is in the database" all_acked_in_db load2
check "no address answered or stored twice" no_dup_addresses enroll1 load2
check "every acknowledged enrollment is a peer of the new owner's interface, each address once" \
	wait_for 10 acked_on_if "$O2" load2
say "n$O restarts"
node_start "$O"
sleep 2
check "t1 stays on n$O2" [ "$(holder_i 1)" = "$O2" ]

# ---- 3. PostgreSQL restarted under load -----------------------------------------------------

say "3. PostgreSQL restarted under load"
load_start load3 10 1 2 3
sleep 3
t0=$(now)
pg_test_restart || die "PostgreSQL restart"
echo "   PostgreSQL restarted in $(calc "$(now) - $t0") s"
load_wait
echo "   load: $(acked load3 | wc -l) acknowledged, $(awk '$3 != 200' "$T/load3.out" | wc -l) not" \
	"($(awk '$3 == 503 && $7 == "store_unavailable"' "$T/load3.out" | wc -l) 503 store_unavailable," \
	"$(awk '$3 == 500' "$T/load3.out" | wc -l) 500)"
check "every acknowledged enrollment is in the database" all_acked_in_db load3
check "no address answered or stored twice" no_dup_addresses enroll1 load2 load3
for i in 1 2 3; do
	load_start "after$i" 1 "$i"
	load_wait
	check "n$i reconnected: it enrolls after the restart" [ "$(acked "after$i" | wc -l)" -gt 0 ]
done
for k in 1 2 3; do
	check "${TEN[$k]} is up on exactly one node" wait_for 15 one_owner "$k"
done
O3=$(holder_i 1)
check "every acknowledged enrollment is a peer of t1's owner (n$O3)" \
	wait_for 10 acked_on_if "$O3" load2 load3 after1 after2 after3

# ---- 4. a node cut off from the database ----------------------------------------------------

X=$(holder_i 2)
held=()
for k in 1 2 3; do [ "$(holder_i "$k")" = "$X" ] && held+=("${TEN[$k]}"); done
say "4. n$X (holding ${held[*]}) cut off from the database (nftables in its namespace)"
T_CUT=$(now)
ip netns exec "${NS_N[$X]}" nft -f - <<EOF || die "nft"
table inet cfcut {
	chain out {
		type filter hook output priority 0; policy accept;
		ip daddr $DB_IP tcp dport 5432 drop
	}
}
EOF
taken() { # every tenant n$X held is up on another node
	local t
	for t in "${held[@]}"; do
		sort -n "$T/hook.log" | awk -v t="$t" -v s="$T_CUT" -v x="n$X" \
			'$4 == t && $3 == "up" && $1 > s && $2 != x { f = 1 } END { exit !f }' || return 1
	done
}
check "another node takes every tenant n$X held" wait_for 20 taken
for t in "${held[@]}"; do
	read -r d_ts < <(sort -n "$T/hook.log" | awk -v t="$t" -v s="$T_CUT" -v x="n$X" \
		'$4 == t && $3 == "down" && $2 == x && $1 > s { print $1; exit }')
	read -r u_ts u_node < <(first_up_after "$t" "$T_CUT")
	echo "   $t: n$X down $([ -n "${d_ts:-}" ] && echo "at +$(calc "$d_ts - $T_CUT") s" || echo never), ${u_node:-no other node} up $([ -n "${u_ts:-}" ] && echo "at +$(calc "$u_ts - $T_CUT") s" || echo never)"
	check "$t: n$X's down comes before ${u_node:-nobody}'s up" lt "${d_ts:-}" "${u_ts:-}"
done
left=$(for k in 1 2 3; do node_has_if "$X" "${TIF[$k]}" && echo "${TEN[$k]}"; done | tr '\n' ' ' | sed 's/ $//')
check "n$X has none of its interfaces left${left:+ (still: $left)}" [ -z "$left" ]
check "g2's tunnel comes back (ping through it to 10.92.0.1)" wait_for 45 gw_ping 2
ip netns exec "${NS_N[$X]}" nft delete table inet cfcut
for k in 1 2 3; do
	check "after the cut is healed, ${TEN[$k]} is up on exactly one node" wait_for 15 one_owner "$k"
done

say "the hook log, replayed"
check "no tenant was ever up on two nodes at once" no_split_brain
check "no sanitizer report in the nodes' logs" bash -c "! grep -qE 'Sanitizer|runtime error' $T/n*.log"
if [ "$fails" != 0 ]; then
	for f in "$T"/n*.log "$T"/g*.log; do echo "--- $f"; tail -n 20 "$f"; done
	echo "--- hook log"
	sort -n "$T/hook.log"
fi
echo "$passes passed, $fails failed"
[ "$fails" = 0 ]
