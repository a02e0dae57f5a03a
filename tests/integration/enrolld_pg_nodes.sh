#!/bin/bash
# Three enrolld nodes on one PostgreSQL (issue 15, "any node answers any request"): a
# throw-away server (tests/pg_lib.sh), nodes A, B and C with backend = postgresql and the
# same kek_file. Without [cluster] every node brings every tenant interface up, and
# wireguard-go puts its UAPI socket in /var/run/wireguard whatever enrolld's uapi_dir says:
# so each node runs in a network namespace of its own (the tenant's interface name once per
# node) and a mount namespace of its own with a private tmpfs on /run/wireguard. enrolld
# refuses a TCP listener off loopback without TLS, so each node listens on a unix socket
# ([server] unix_socket) and a small forwarder in the clients' namespace gives it a port on
# 127.0.0.1 there (node A 35011, B 35012, C 35013): every client reaches every node.
#
# Checks: a real TPM (swtpm) device gets its challenge from A and completes on B (B never
# saw the challenge: it rebuilds it from the stored session); the device is active with one
# address, and a peer of B's interface; the same completion replayed on A is refused
# (session_used); a wrong secret completed on another node is refused as secret_mismatch
# (the secret B checks is the one A made); 20 software devices (tests/bench/softdev)
# enrolling through A and 20 through B at once all succeed with unique addresses; an SSE
# client on C, started before that load, stopped in the middle and resumed with
# Last-Event-ID, receives every event committed through A and B after the first one, once
# each, in order, ids increasing: the events table exactly.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
. "$(dirname "$0")/../pg_lib.sh"
BENCH=$B/tests/bench/enroll_bench
pg_test_require
command -v python3 >/dev/null || { echo "skip: python3 not installed"; exit 77; }
[ -x "$BENCH" ] || { echo "not built: $BENCH"; exit 1; }
ed_init pgnodes
NODE_NS=()
NODE_PID=()
cleanup_nodes() {
	# SIGTERM to the nodes and the forwarder (ED_BG_PIDS), then every process left in
	# the namespaces (wireguard-go), the namespaces, $T; then the database server.
	ed_cleanup
	pg_test_stop
}
trap cleanup_nodes EXIT
pg_test_start || { echo "cannot start the test PostgreSQL"; exit 1; }
trap cleanup_nodes EXIT # pg_test_start chained its own: one trap, nodes first
psql "$PG_TEST_CONN" -qc 'CREATE DATABASE enrolld' || exit 1
DB="$PG_TEST_CONN dbname=enrolld"
sql() { psql "$DB" -Atc "$1"; }
openssl rand -hex 32 >"$T/kek"
chmod 600 "$T/kek"
WGCTL_ABS=$(readlink -f "$WGCTL")
mkdir -p /run/wireguard

# The trust anchors: the swtpm fixtures' CA and the software devices' CA.
mkdir -p "$T/trust"
cp "$TRUST"/* "$T/trust/"
"$BENCH" ca "$T/trust/bench-ca.pem" "$T/bench-ca.key" >/dev/null || exit 1
mv "$T/bench-ca.key" "$T/bench-ca.key.pem"
BENCH_CA="$T/trust/bench-ca.pem,$T/bench-ca.key.pem"
TRUST=$T/trust
ed_conf "[state]" "backend = postgresql" "postgresql = $DB" "kek_file = $T/kek"
IF=$(ed_ifname n)

# 127.0.0.1:PORT in the clients' namespace -> a node's unix socket, one process for all.
cat >"$T/fwd.py" <<'PY'
import asyncio, sys

async def pipe(r, w):
    try:
        while True:
            d = await r.read(65536)
            if not d:
                break
            w.write(d)
            await w.drain()
        if w.can_write_eof():
            w.write_eof()
    except Exception:
        pass

async def handle(path, cr, cw):
    try:
        ur, uw = await asyncio.open_unix_connection(path)
    except Exception:
        cw.close()
        return
    await asyncio.gather(pipe(cr, uw), pipe(ur, cw))
    uw.close()
    cw.close()

async def main():
    servers = []
    for spec in sys.argv[1:]:
        port, path = spec.split("=", 1)
        servers.append(await asyncio.start_server(
            lambda r, w, p=path: handle(p, r, w), "127.0.0.1", int(port), backlog=256))
    print("forwarding", flush=True)
    await asyncio.gather(*(s.serve_forever() for s in servers))

asyncio.run(main())
PY
ip netns exec "$NS" python3 "$T/fwd.py" 35011="$T/n1.sock" 35012="$T/n2.sock" \
	35013="$T/n3.sock" >"$T/fwd.log" 2>&1 &
ED_BG_PIDS+=($!)
for _ in $(seq 50); do grep -q forwarding "$T/fwd.log" && break; sleep 0.1; done
UA=http://127.0.0.1:35011
UB=http://127.0.0.1:35012
UC=http://127.0.0.1:35013

# Node I (1..3): its own network namespace, mount namespace (private /run/wireguard),
# db_path (its tenant key files) and unix socket; the same database and KEK.
node_start() { # I
	local i=$1 ns=ed-pgn$1-$$
	if [ -z "${NODE_NS[$i]:-}" ]; then
		ip netns add "$ns" || { echo "cannot create namespace $ns"; exit 1; }
		ip -n "$ns" link set lo up
		NODE_NS[$i]=$ns
		ED_NAMESPACES+=("$ns")
	fi
	sed -e "s|^db_path = .*|db_path = $T/db$i|" \
		-e "s|^\[server\]|[server]\nunix_socket = $T/n$i.sock|" "$T/e.conf" >"$T/n$i.conf"
	: >>"$T/n$i.log"
	ip netns exec "${NODE_NS[$i]}" unshare -m --propagation private sh -c \
		'mount -t tmpfs -o mode=0755 tmpfs /run/wireguard && exec "$0" -d -c "$1"' \
		"$ENROLLD" "$T/n$i.conf" 2>>"$T/n$i.log" &
	NODE_PID[$i]=$!
	ED_BG_PIDS+=($!)
	for _ in $(seq 150); do
		grep -q 'listening on' "$T/n$i.log" && return 0
		kill -0 "${NODE_PID[$i]}" 2>/dev/null || break
		sleep 0.1
	done
	echo "node $i did not start"
	tail -n 20 "$T/n$i.log"
	exit 1
}

# api against node URL: api_at URL METHOD PATH TOKEN [BODY]
api_at() {
	local u=$1
	shift
	U=$u api "$@"
}

# The peers of the tenant's interface on node I, seen from inside its namespaces.
node_peers() { # I
	nsenter -t "${NODE_PID[$1]}" -m -n "$WGCTL_ABS" --backend uapi show "$IF" | tail -n +2 | cut -f1
}

node_has_if() { # I
	nsenter -t "${NODE_PID[$1]}" -m -n "$WGCTL_ABS" --backend uapi show "$IF" >/dev/null
}

node_start 1
check "node A made the schema (every migration once)" \
	[ "$(sql 'SELECT count(*) = max(version) AND min(version) = 1 FROM schema_migrations')" = t ]
check "a tenant is created through A (201)" [ "$(api_at $UA POST /v1/tenants "$ADMIN" \
	"{\"name\":\"nodes\",\"prefix\":\"10.94.0.0/24\",\"interface\":\"$IF\",\"listen_port\":35150,\"endpoint\":\"192.0.2.1:35150\"}")" = 201 ]
api_at $UA POST /v1/tenants/nodes/tokens "$ADMIN" '{"uses":100}' >/dev/null
TOK=$(body .token)
node_start 2
node_start 3
for i in 1 2 3; do
	check "node $i serves its own interface '$IF'" \
		node_has_if $i
done
check "each node has its own /run/wireguard (none of theirs on the host)" \
	[ ! -e "/run/wireguard/$IF.sock" ]
SEQ0=$(sql 'SELECT event_seq FROM meta')

echo "== SSE: a client on C from event $SEQ0"
ip netns exec "$NS" curl -sN -H "Authorization: Bearer $ADMIN" -H "Last-Event-ID: $SEQ0" \
	"$UC/v1/events" >"$T/sse1" 2>/dev/null &
SSE1=$!
ED_BG_PIDS+=($SSE1)

echo "== challenge on A, completion on B"
ed_swtpm d1
OUT=$(ed_enroll d1 --url "$UA" --complete-url "$UB" --replay-url "$UA" --token "$TOK" \
	--session-out "$T/d1.session")
echo "$OUT" >"$T/d1.out"
FIRST=$(head -n1 <<<"$OUT")
REPLAY=$(sed -n 2p <<<"$OUT")
check "the completion on B succeeds (200)" [ "$(jq -r .http_status <<<"$FIRST")" = 200 ]
D1=$(jq -r .response.device_id <<<"$FIRST")
A1=$(jq -r .response.address <<<"$FIRST")
check "a new device with an address ($A1)" [ "$(jq -r .response.result <<<"$FIRST")" = new ]
check "B enrolled it (its log), not A" \
	bash -c "grep -q 'device $D1 enrolled' '$T/n2.log' && ! grep -q 'device $D1 enrolled' '$T/n1.log'"
check "the device is active in the database, with one address" \
	[ "$(sql "SELECT count(*) FROM devices WHERE id = $D1 AND state = 1 AND addr4 IS NOT NULL")" = 1 ]
check "no other device holds that address" \
	[ "$(sql "SELECT count(*) FROM devices d, devices e WHERE d.id = $D1 AND e.tenant = d.tenant AND e.addr4 = d.addr4")" = 1 ]
check "its session is used, its secret gone" [ "$(sql "SELECT count(*) FROM sessions WHERE \
	id = '\\x$(cat "$T/d1.session")'::bytea AND used AND secret IS NULL")" = 1 ]
check "the device is known to C's API (200)" [ "$(api_at $UC GET "/v1/devices/$D1" "$ADMIN")" = 200 ]
check "  active, with the address B answered" \
	[ "$(body '"\(.state) \(.address)"')" = "active $A1" ]
D1_PUB=$(body .public_key)
peer_on_b() { node_peers 2 | grep -qF "$D1_PUB"; }
check "the peer is on B's interface" peer_on_b
check "the same completion replayed on A is refused (410)" \
	[ "$(jq -r .http_status <<<"$REPLAY")" = 410 ]
check "  as session_used" [ "$(jq -r .response.error.code <<<"$REPLAY")" = session_used ]
check "still one device for that key" [ "$(sql "SELECT count(*) FROM devices WHERE id = $D1")" = 1 ]

echo "== a wrong secret, challenge on B, completion on C"
ed_swtpm d2
OUT=$(ed_enroll d2 --url "$UB" --complete-url "$UC" --token "$TOK" --bad-secret)
check "refused (403)" [ "$(jq -r .http_status <<<"$OUT")" = 403 ]
check "  as secret_mismatch (C checked the secret B made)" \
	[ "$(jq -r .response.error.code <<<"$OUT")" = secret_mismatch ]
OUT=$(ed_enroll d2 --url "$UB" --complete-url "$UC" --token "$TOK")
check "the same device then enrolls, challenge on B, completion on C (200)" \
	[ "$(jq -r .http_status <<<"$OUT")" = 200 ]
D2=$(jq -r .response.device_id <<<"$OUT")

echo "== 20 enrollments through A and 20 through B at once"
# A token each: the enrollments of one token are serialised on its row; those of A and B
# then meet only on the tenant (its row lock, the address constraints).
api_at $UA POST /v1/tenants/nodes/tokens "$ADMIN" '{"uses":20}' >/dev/null
TOK_A=$(body .token)
api_at $UB POST /v1/tenants/nodes/tokens "$ADMIN" '{"uses":20}' >/dev/null
TOK_B=$(body .token)
ip netns exec "$NS" "$BENCH" run --url "$UA" --ca "$BENCH_CA" --token "$TOK_A" -c 20 -n 20 \
	--label A >"$T/benchA" 2>&1 &
BA=$!
ip netns exec "$NS" "$BENCH" run --url "$UB" --ca "$BENCH_CA" --token "$TOK_B" -c 20 -n 20 \
	--label B >"$T/benchB" 2>&1 &
BB=$!
sleep 0.3
# the first SSE client goes away in the middle of it
kill "$SSE1" 2>/dev/null
wait "$SSE1" 2>/dev/null
wait $BA
RA=$?
wait $BB
RB=$?
cat "$T/benchA" "$T/benchB"
check "all 20 through A succeed" [ $RA = 0 ]
check "all 20 through B succeed" [ $RB = 0 ]
check "the revocation of d2 through A (200)" [ "$(api_at $UA POST "/v1/devices/$D2/revoke" "$ADMIN")" = 200 ]
check "42 devices, 42 distinct addresses" \
	[ "$(sql "SELECT count(*) || ' ' || count(DISTINCT addr4) FROM devices WHERE tenant = 'nodes'")" = "42 42" ]

echo "== SSE: the client resumes on C"
ids_of() { sed -n 's/^id: //p' "$1"; }
LAST=$(ids_of "$T/sse1" | tail -n1)
LAST=${LAST:-$SEQ0}
echo "the first stream saw $(ids_of "$T/sse1" | wc -l) event(s), up to $LAST"
ip netns exec "$NS" curl -sN --max-time 4 -H "Authorization: Bearer $ADMIN" \
	-H "Last-Event-ID: $LAST" "$UC/v1/events" >"$T/sse2" 2>/dev/null
{ ids_of "$T/sse1"; ids_of "$T/sse2"; } >"$T/sse_ids"
sql "SELECT seq FROM events WHERE seq > $SEQ0 ORDER BY seq" >"$T/db_ids"
echo "SSE: $(wc -l <"$T/sse_ids") ids, database: $(wc -l <"$T/db_ids") events after $SEQ0"
check "the first stream stopped in the middle (it saw some, not all)" \
	[ "$LAST" -gt "$SEQ0" ] && [ "$LAST" -lt "$(tail -n1 "$T/db_ids")" ]
check "the events committed through A and B, each once, in order (= the events table)" \
	cmp -s "$T/sse_ids" "$T/db_ids"
check "ids strictly increasing by one" \
	[ "$(awk -v s="$SEQ0" 'NR == 1 { p = s } $1 != p + 1 { bad = 1 } { p = $1 } END { print bad + 0 }' "$T/sse_ids")" = 0 ]
check "42 enrolled events and the revocation among them" \
	[ "$(cat "$T/sse1" "$T/sse2" | grep -c '^event: enrolled') $(grep -c '^event: revoked' "$T/sse2")" = "42 1" ]

for i in 1 2 3; do
	# a sanitizer build reports into the nodes' logs
	cat "$T/n$i.log" >>"$T/log"
done
ed_done
