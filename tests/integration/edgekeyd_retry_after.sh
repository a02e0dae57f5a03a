#!/bin/bash
# edge-keyd honours Retry-After. enrolld (cpgw_lib.sh: HTTPS, its own namespace) allows one
# open enrollment session (attestation.max_sessions = 1, session_ttl = TTL); a challenge
# from another device holds it, so the gateway's challenge is refused with 503
# too_many_sessions and Retry-After: the seconds until that session expires.
#   1. `edge-keyd run`, not enrolled yet: logs "control plane busy, retrying in N s" with
#      N >= Retry-After, makes no attempt before then (by its log's timestamps), and is
#      enrolled afterwards; the control plane refused it exactly once.
#   2. `edge-keyd enroll` (one-shot) the same way: it waits, then succeeds (exit 0).
# The rate limits answer 429 with Retry-After the same way (docs/api.md); their Retry-After
# is 1 s at the smallest rate (1/s), shorter than edge-keyd's first backoff, so the session
# cap is what shows a wait here. Without the Retry-After handling, edge-keyd retries after
# its backoff (3-5 s, then 5-10 s): refused again, and checks 1 fail.
set -u
B=${B:-build}
EKD=$B/edge-keyd
ENROLLD=$B/enrolld
FLOOD=$B/tests/progs/http_flood
. tests/integration/cpgw_lib.sh
cg_require "$EKD" "$ENROLLD" "$FLOOD" -- wireguard-go ip swtpm tpm2_getcap openssl curl jq ss
CG_FAIL=fail
# ports 37000-38999 as edgekeyd_enroll.sh, another stride
cg_names ra 37002
TTL=12
T=$(mktemp -d /tmp/edgekeyd_retry_after.XXXXXX)
PIDS=()
EKD_PID=
fails=0

cleanup() {
	local p
	[ -n "$EKD_PID" ] && stop_pid "$EKD_PID"
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	p=$(sock_pid "$NSC" "$SOCKDIR/$WGC.sock")
	[ -n "$p" ] && kill "$p" 2>/dev/null
	p=$(sock_pid "$NSG" "$SOCKDIR/$WGG.sock")
	[ -n "$p" ] && kill "$p" 2>/dev/null
	ip netns del "$NSC" 2>/dev/null
	ip netns del "$NSG" 2>/dev/null
	rm -f "$SOCKDIR/$WGC.sock" "$SOCKDIR/$WGG.sock"
	rm -rf "$T"
}
trap cleanup EXIT

check() { # description, command...
	local d=$1
	shift
	if "$@"; then
		echo "ok   $d"
	else
		echo "FAIL $d"
		fails=$((fails + 1))
	fi
}
# each line of standard input with the time it arrived (s since the epoch)
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }

step "control plane: one open session at most, sessions live $TTL s"
cg_topology_up
mkdir -p "$T/gw"
cg_cp_credentials "retry-after test CA"
cp "$T/cp/prov.token" "$T/gw/prov.token"
CG_CONF_EXTRA=$(printf '[attestation]\nmax_sessions = 1\nsession_ttl = %s' "$TTL")
cg_cp_start
api POST /v1/tenants "{\"name\":\"acme\",\"prefix\":\"10.78.0.0/24\",\"interface\":\"$WGC\",
	\"listen_port\":$WG_PORT,\"endpoint\":\"$CP_IP:$WG_PORT\",\"keepalive\":25}" >/dev/null
[ "$(cat "$T/status")" = 201 ] || fail "tenant create: HTTP $(cat "$T/status") $(cat "$T/body")"
TOK=$(api POST /v1/tenants/acme/tokens '{"uses":100}' | jq -r .token)
[ -n "$TOK" ] && [ "$TOK" != null ] || fail "token: $(cat "$T/body")"
CA=$(dirname "$(swtpm_fixture_trust)")
"$FLOOD" challenge-body "$CA/issuercert.pem" "$CA/signkey.pem" "$TOK" >"$T/other.json" ||
	fail "cannot make another device's challenge"

step "gateway: swtpm, configuration, provision"
swtpm_fixture_state ragw "$T/gw/tpm" || fail "fixture state"
cg_gw_swtpm "$T/gw/tpm" "$TPM_PORT" "$T/swtpm.log" || fail "swtpm"
cat >"$T/gw/edge-keyd.conf" <<EOF
[device]
state_dir = $T/gw/state
tcti = swtpm:host=127.0.0.1,port=$TPM_PORT
ek_type = rsa2048
[server]
url = $U
ca_file = $T/cp/ca.pem
tenant = acme
provisioning_token_file = $T/gw/prov.token
[wireguard]
interface = $WGG
backend = userspace
check_interval = 1
EOF
ekd() { ing timeout 120 "$EKD" -c "$T/gw/edge-keyd.conf" "$@"; }
ekd provision >/dev/null 2>"$T/provision.log" || fail "provision"

# Another device opens the one session; prints when (s since the epoch).
hold_session() {
	local st
	st=$(inc curl -s --max-time 30 --cacert "$T/cp/ca.pem" -H 'Content-Type: application/json' \
		--data-binary @"$T/other.json" -o "$T/hold.json" -w '%{http_code}' "$U/v1/enroll/challenge")
	[ "$st" = 200 ] || fail "the other device's challenge: HTTP $st $(cat "$T/hold.json")"
	echo "$EPOCHREALTIME"
}
# Seconds between two epoch times.
since() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", b - a }'; }

step "1. edge-keyd run meets a full session table"
t_hold=$(hold_session)
# not through ekd(): $! must be edge-keyd itself (ip netns exec execs it)
ip netns exec "$NSG" "$EKD" -c "$T/gw/edge-keyd.conf" -d run 2> >(stamp >"$T/edge-keyd.log") &
EKD_PID=$!
E=$T/gw/state/enrollment.json
wait_for $((TTL + 30)) test -s "$E"
check "edge-keyd enrolled after the other session expired" test -s "$E"
# the refusal (logged with or without the Retry-After handling: the server's message says
# "retry after N s" too) and the first attempt after it
refusal=$(grep -m1 too_many_sessions "$T/edge-keyd.log")
t_ref=${refusal%% *}
after=$(sed -n 's/.*retry after \([0-9]*\) s.*/\1/p' <<<"$refusal")
t_next=$(awk -v t="${t_ref:-0}" '$1 > t && / enrolling \(/ { print $1; exit }' "$T/edge-keyd.log")
check "refused with Retry-After ${after:-?} s, about what was left of the other session" \
	bash -c "[ -n '$after' ] && [ '$after' -ge $((TTL / 2)) ] && [ '$after' -le $TTL ]"
busy=$(grep -m1 'control plane busy, retrying in' "$T/edge-keyd.log")
echo "     ${busy#* }"
wait_s=$(sed -n 's/.*retrying in \([0-9]*\) s.*/\1/p' <<<"$busy")
check "it said so: 'control plane busy, retrying in N s', N (${wait_s:-?}) >= Retry-After" \
	bash -c "[ -n '$wait_s' ] && [ -n '$after' ] && [ '$wait_s' -ge '$after' ]"
check "its next attempt came $(since "${t_ref:-0}" "${t_next:-0}") s after the refusal: not before Retry-After" \
	bash -c "[ -n '$t_ref' ] && [ -n '$t_next' ] && [ -n '$after' ] && awk -v a='$t_ref' -v b='$t_next' 'BEGIN { exit !(b - a >= $after) }'"
check "and not before the other session expired ($(since "$t_hold" "${t_next:-0}") s after it opened, TTL $TTL s)" \
	bash -c "[ -n '$t_next' ] && awk -v a='$t_hold' -v b='$t_next' 'BEGIN { exit !(b - a >= $TTL - 1) }'"
check "refused exactly once" [ "$(grep -c too_many_sessions "$T/edge-keyd.log")" = 1 ]
grep -q "enrolled: device" "$T/edge-keyd.log" || echo "     (no 'enrolled' line in the log)"
stop_pid "$EKD_PID"
EKD_PID=

step "2. edge-keyd enroll (one-shot) waits too"
t_hold=$(hold_session)
ekd enroll 2> >(stamp >"$T/enroll.log")
rc=$?
sleep 0.2 # the stamper's last lines
check "enroll succeeded after waiting (exit $rc)" [ "$rc" = 0 ]
busy=$(grep -m1 'control plane busy, retrying in' "$T/enroll.log")
echo "     ${busy#* }"
t_done=$(grep -m1 ' enrolled: device' "$T/enroll.log" | cut -d' ' -f1)
check "it said so, and enrolled $(since "$t_hold" "${t_done:-0}") s after the other session opened (TTL $TTL s)" \
	bash -c "[ -n '$busy' ] && [ -n '$t_done' ] && awk -v a='$t_hold' -v b='$t_done' 'BEGIN { exit !(b - a >= $TTL - 1) }'"

echo "$fails check(s) failed"
[ "$fails" = 0 ]
