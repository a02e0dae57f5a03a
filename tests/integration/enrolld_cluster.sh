#!/bin/bash
# Two enrolld nodes in cluster mode on one PostgreSQL (docs/cluster.md), each in its own
# network namespace and its own mount namespace (a private /run/wireguard: wireguard-go's
# socket directory is otherwise shared by every namespace). What the API promises:
#  - a tenant's interface is up on exactly one node, with the key stored (sealed) in the
#    database: the same public key whichever node holds it, never a key file on disk;
#  - an enrollment through the node that does not hold the tenant is on the holder's
#    interface when the API answers; so is a revocation's removal;
#  - a clean stop of the holder hands the tenant over (its lease is released): the other
#    node has it up within a few ticks, with the same key and port and every active peer;
#  - a holder that dies (SIGKILL of enrolld and of the wireguard-go it ran) is replaced
#    after its lease expires; the endpoint hook ran "down"/"up" in that order.
# The three-node failover with gateways and a database cut is tests/integration/
# cluster_failover.sh.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
. "$(dirname "$0")/../pg_lib.sh"
pg_test_require
command -v nsenter >/dev/null && command -v unshare >/dev/null ||
	{ echo "skip: nsenter/unshare not installed"; exit 77; }
ed_init cluster
NSA=$NS
NSB=ed-clb-$$
ED_NAMESPACES+=("$NSB")
ip netns add "$NSB" || { echo "cannot create namespace $NSB"; exit 1; }
ip -n "$NSB" link set lo up
ip netns exec "$NSB" sysctl -qw net.ipv4.ip_local_port_range="40000 60999"
pg_test_start || { echo "cannot start the test PostgreSQL"; exit 1; }
psql "$PG_TEST_CONN" -qc 'CREATE DATABASE enrolld' || exit 1
DB="$PG_TEST_CONN dbname=enrolld"
sql() { psql "$DB" -Atc "$1"; }
openssl rand -hex 32 >"$T/kek"
chmod 600 "$T/kek"
IF=$(ed_ifname c)
WGCTL=$(readlink -f "$WGCTL")

cat >"$T/hook" <<EOF
#!/bin/sh
echo "\$(date +%s.%N) \$ENROLLD_NODE \$1 \$2 \$3 \$4" >>"$T/hook.log"
EOF
chmod 755 "$T/hook"
: >"$T/hook.log"

for n in a b; do
	ed_conf "[state]" "backend = postgresql" "postgresql = $DB" "kek_file = $T/kek" \
		"[cluster]" "enabled = true" "node = $n" "lease_ms = 1500" "margin_ms = 500" \
		"tick_ms = 250" "endpoint_hook = $T/hook"
	sed -i "s|^db_path = .*|db_path = $T/db-$n|" "$T/e.conf"
	mv "$T/e.conf" "$T/$n.conf"
done

declare -A PID
node_ns() { [ "$1" = a ] && echo "$NSA" || echo "$NSB"; }
node_start() { # NAME
	local n=$1 ns i
	ns=$(node_ns "$n")
	: >>"$T/$n.log"
	ip netns exec "$ns" unshare -m sh -c 'mount -t tmpfs tmpfs /run/wireguard && exec "$@"' \
		sh "$ENROLLD" -d -c "$T/$n.conf" 2>>"$T/$n.log" &
	PID[$n]=$!
	ED_BG_PIDS+=(${PID[$n]})
	for i in $(seq 100); do
		grep -q 'listening on' "$T/$n.log" && return 0
		sleep 0.1
	done
	echo "node $n did not start"
	tail -n 20 "$T/$n.log"
	exit 1
}
# in node N's namespaces: its own /run/wireguard
in_node() { local n=$1; shift; nsenter -t "${PID[$n]}" -m -n "$@"; }
show() { in_node "$1" "$WGCTL" --backend uapi show "$IF" 2>/dev/null; }
has_if() { in_node "$1" ip link show "$IF" >/dev/null 2>&1; }
holder() { sql "SELECT node FROM tenant_leases WHERE tenant = 'c' AND expires > now()"; }
other() { [ "$1" = a ] && echo b || echo a; }
wait_for() { # SECONDS COMMAND...: poll every 0.1 s
	local i n=$(($1 * 10))
	shift
	for i in $(seq "$n"); do "$@" && return 0; sleep 0.1; done
	return 1
}
use_node() { NS=$(node_ns "$1"); } # api() and ed_* talk to this node's namespace

node_start a
node_start b
use_node a
check "a tenant is created through node a (201)" [ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"c\",\"prefix\":\"10.94.0.0/24\",\"interface\":\"$IF\",\"listen_port\":35150,\"endpoint\":\"192.0.2.1:35150\"}")" = 201 ]
api POST /v1/tenants/c/tokens "$ADMIN" '{"uses":20}' >/dev/null
TOK=$(body .token)
check "a node takes the tenant" wait_for 10 bash -c "[ -n \"\$(psql '$DB' -Atc \"SELECT node FROM tenant_leases WHERE tenant = 'c' AND expires > now()\")\" ]"
H=$(holder)
O=$(other "$H")
check "its interface is up on the holder ($H)" wait_for 5 has_if "$H"
check "and not on the other node ($O)" bash -c "! nsenter -t ${PID[$O]} -m -n ip link show $IF >/dev/null 2>&1"
check "the endpoint hook ran 'up' on $H" wait_for 5 grep -q " $H up c $IF 192.0.2.1:35150" "$T/hook.log"
check "GET through $O names the holder and says the interface is up" bash -c "[ \"\$(ip netns exec $(node_ns "$O") curl -s -H 'Authorization: Bearer $ADMIN' $U/v1/tenants/c | jq -r '\"\\(.holder.node) \\(.interface_up)\"')\" = '$H true' ]"
PUB=$(show "$H" | awk 'NR == 1 { print $2 }')
check "the interface has a key" [ -n "$PUB" ]
check "the key is stored sealed (60 bytes), once" [ "$(sql "SELECT count(*) || ':' || min(length(sealed)) FROM tenant_keys WHERE tenant = 'c'")" = "1:60" ]
check "no key file on either node" bash -c "! ls $T/db-a/keys/* $T/db-b/keys/* >/dev/null 2>&1"

echo "== enrollment and revocation through the node that does not hold the tenant ($O)"
use_node "$O"
ed_swtpm d1
OUT=$(ed_enroll d1 --token "$TOK")
check "d1 enrolls through $O (200)" [ "$(jq -r .http_status <<<"$OUT")" = 200 ]
D1=$(jq -r .response.device_id <<<"$OUT")
check "the answer names the tenant's key" [ "$(jq -r .response.server_public_key <<<"$OUT")" = "$PUB" ]
D1_PUB=$(api GET "/v1/devices/$D1" "$ADMIN" >/dev/null; body .public_key)
check "d1 is on $H's interface when $O answered" bash -c "nsenter -t ${PID[$H]} -m -n $WGCTL --backend uapi show $IF | grep -q '$D1_PUB'"
ed_swtpm d2
OUT=$(ed_enroll d2 --token "$TOK")
D2=$(jq -r .response.device_id <<<"$OUT")
D2_PUB=$(api GET "/v1/devices/$D2" "$ADMIN" >/dev/null; body .public_key)
check "d2 enrolls through $O too" [ "$(jq -r .http_status <<<"$OUT")" = 200 ]
check "revoking d1 through $O (200)" [ "$(api POST "/v1/devices/$D1/revoke" "$ADMIN")" = 200 ]
check "d1 is off $H's interface when $O answered" bash -c "! nsenter -t ${PID[$H]} -m -n $WGCTL --backend uapi show $IF | grep -q '$D1_PUB'"
check "d2 is still on it" bash -c "nsenter -t ${PID[$H]} -m -n $WGCTL --backend uapi show $IF | grep -q '$D2_PUB'"
# The answer waits for the holder: with the holder stopped (SIGSTOP, for less than its
# lease), a revocation through $O must not answer until the holder has applied it.
ed_swtpm d4
OUT=$(ed_enroll d4 --token "$TOK")
D4=$(jq -r .response.device_id <<<"$OUT")
D4_PUB=$(api GET "/v1/devices/$D4" "$ADMIN" >/dev/null; body .public_key)
kill -STOP "${PID[$H]}"
ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' -X POST \
	-H "Authorization: Bearer $ADMIN" "$U/v1/devices/$D4/revoke" >"$T/rv.status" &
RV=$!
sleep 0.6
check "a revocation through $O has not answered while $H is stopped" [ ! -s "$T/rv.status" ]
kill -CONT "${PID[$H]}"
wait $RV
check "it answers 200 once $H runs again" [ "$(cat "$T/rv.status")" = 200 ]
check "and d4 is off $H's interface by then" bash -c "! nsenter -t ${PID[$H]} -m -n $WGCTL --backend uapi show $IF | grep -q '$D4_PUB'"
check "$H recorded how far it applied the log" [ "$(sql "SELECT seq >= (SELECT event_seq FROM meta) FROM node_applied WHERE node = '$H'")" = t ]

echo "== a clean stop of $H hands the tenant over"
T0=$(date +%s%N)
kill "${PID[$H]}"
wait "${PID[$H]}"
check "$H stopped with status 0" [ $? = 0 ]
check "$O holds the tenant within 3 s" wait_for 3 bash -c "[ \"\$(psql '$DB' -Atc \"SELECT node FROM tenant_leases WHERE tenant = 'c' AND expires > now()\")\" = $O ]"
check "its interface is up on $O" wait_for 5 has_if "$O"
echo "     handover took $(( ($(date +%s%N) - T0) / 1000000 )) ms"
check "with the same key" wait_for 3 bash -c "[ \"\$(nsenter -t ${PID[$O]} -m -n $WGCTL --backend uapi show $IF | awk 'NR == 1 { print \$2 }')\" = '$PUB' ]"
check "the same port" bash -c "nsenter -t ${PID[$O]} -m -n $WGCTL --backend uapi show $IF | awk 'NR == 1 { print \$3 }' | grep -qx 35150"
check "d2 on it, d1 not" bash -c "S=\$(nsenter -t ${PID[$O]} -m -n $WGCTL --backend uapi show $IF); grep -q '$D2_PUB' <<<\"\$S\" && ! grep -q '$D1_PUB' <<<\"\$S\""
check "the hook ran 'down' on $H before 'up' on $O" \
	bash -c "grep -n ' c $IF' $T/hook.log | awk '{ print \$2, \$3 }' | tr '\n' ' ' | grep -q '$H down $O up'"

echo "== $O dies (SIGKILL of enrolld and its wireguard-go): $H, restarted, takes over"
node_start "$H"
use_node "$H"
ed_swtpm d3
OUT=$(ed_enroll d3 --token "$TOK")
D3=$(jq -r .response.device_id <<<"$OUT")
D3_PUB=$(api GET "/v1/devices/$D3" "$ADMIN" >/dev/null; body .public_key)
check "d3 enrolls through the restarted $H while $O holds the tenant" [ "$(jq -r .http_status <<<"$OUT")" = 200 ]
WGPID=$(in_node "$O" pgrep -f "wireguard-go $IF" | head -n1)
kill -9 "${PID[$O]}" $WGPID
wait "${PID[$O]}" 2>/dev/null
T0=$(date +%s%N)
check "$H holds the tenant after $O's lease expired (within 4 s)" wait_for 4 bash -c "[ \"\$(psql '$DB' -Atc \"SELECT node FROM tenant_leases WHERE tenant = 'c' AND expires > now()\")\" = $H ]"
check "its interface is up on $H with d2 and d3" wait_for 5 bash -c "S=\$(nsenter -t ${PID[$H]} -m -n $WGCTL --backend uapi show $IF); grep -q '$D2_PUB' <<<\"\$S\" && grep -q '$D3_PUB' <<<\"\$S\""
echo "     takeover took $(( ($(date +%s%N) - T0) / 1000000 )) ms after the kill"
check "the same key" bash -c "[ \"\$(nsenter -t ${PID[$H]} -m -n $WGCTL --backend uapi show $IF | awk 'NR == 1 { print \$2 }')\" = '$PUB' ]"
check "no address is held twice" [ "$(sql "SELECT count(*) - count(DISTINCT addr4) FROM devices WHERE tenant = 'c'")" = 0 ]
echo "== fencing: $H's interface goes at its deadline though a request holds the plane's lock"
# The reconciler (every 2 s) takes the plane's lock and then reads the devices: with the
# devices table locked it waits there, holding the plane's lock. Then the leases table is
# locked too: $H cannot renew, and at its deadline down() finds the plane's lock busy.
psql "$DB" -qc "BEGIN; LOCK TABLE devices IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(6); COMMIT" >/dev/null &
L1=$!
sleep 2.5
psql "$DB" -qc "BEGIN; LOCK TABLE tenant_leases IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(3.5); COMMIT" >/dev/null &
L2=$!
T0=$(date +%s%N)
check "$H takes its interface down within 2 s without the lock" wait_for 2 bash -c "! nsenter -t ${PID[$H]} -m -n ip link show $IF >/dev/null 2>&1"
echo "     down $(( ($(date +%s%N) - T0) / 1000000 )) ms after the leases were locked"
check "saying so" grep -q "interface lock is busy" "$T/$H.log"
wait $L1 $L2
check "$H does not bring it back when the stuck request goes on" bash -c "sleep 1; ! nsenter -t ${PID[$H]} -m -n ip link show $IF >/dev/null 2>&1 || [ \"\$(psql '$DB' -Atc \"SELECT node FROM tenant_leases WHERE tenant = 'c' AND expires > now()\")\" = $H ]"
check "a node holds the tenant again afterwards" wait_for 5 bash -c "[ -n \"\$(psql '$DB' -Atc \"SELECT node FROM tenant_leases WHERE tenant = 'c' AND expires > now()\")\" ]"
kill "${PID[$H]}"
wait "${PID[$H]}"
check "$H stops cleanly and releases the lease" [ "$(sql "SELECT count(*) FROM tenant_leases WHERE tenant = 'c' AND expires > now()")" = 0 ]
cat "$T/a.log" "$T/b.log" >>"$T/log"
ed_done
