#!/bin/bash
# edge-keyd against the real enrolld, one gateway, everything real:
#   control plane netns ek-cp-$$: enrolld over HTTPS (its CA pinned by the gateway),
#     userspace WireGuard (wireguard-go spawned by enrolld), tenant "acme" 10.77.0.0/24;
#   gateway netns ek-gw-$$: its own swtpm (fixture state, EK certificate from the fixture
#     CA), edge-keyd with the userspace backend (wireguard-go spawned by edge-keyd);
#   a veth pair between them.
# Checks, in order: provision pre-registers the EK (and a second run keeps the identity);
# --offline prints a record that matches; enroll writes enrollment.json (0600, no key);
# run brings the tunnel up and the control plane pings the gateway's /32 (edge-keyd owns no
# listening socket, and with edge-keyd/wan-firewall.nft loaded its WAN address answers
# nothing while the tunnel works); a killed wireguard-go is replaced by the daemon; rotate keeps the
# address, changes the key on both sides (old key gone from the control plane); status
# shows the handshake; a record whose key is not the sealed one makes the daemon re-enroll;
# a revoked device is refused (device_revoked) and enrolls again once reinstated; SIGHUP
# reloads; SIGTERM removes the interface.
# EKD_TEST_EK_TYPE (rsa2048, p256, p384), EKD_TEST_AK_TYPE (ecc, rsa) and
# EKD_TEST_PCR_POLICY (e.g. sha256:0,7) vary the gateway's TPM setup. EKD_WRAP: a command
# line edge-keyd runs under (and CG_WRAP, CG_SLOW for enrolld: cpgw_lib.sh), as
# valgrind_e2e.sh does; KEEP_TMP=1 keeps the temp directory (logs, state) for a post-mortem.
set -u
B=${B:-build}
EKD=$B/edge-keyd
ENROLLD=$B/enrolld
WGCTL=$B/tests/progs/wgctl
. tests/integration/cpgw_lib.sh
cg_require "$EKD" "$ENROLLD" "$WGCTL" -- wireguard-go ip ping swtpm tpm2_getcap openssl curl jq ss
CG_FAIL=fail
cg_names ek 37000 # ports 37000-38999
T=$(mktemp -d /tmp/edgekeyd_enroll.XXXXXX)
PIDS=()
EKD_PID=

cleanup() {
	local p s
	[ -n "$EKD_PID" ] && stop_pid "$EKD_PID"
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	# left behind only if a daemon had to be killed (deleting a netns does not stop them)
	p=$(sock_pid "$NSC" "$SOCKDIR/$WGC.sock")
	[ -n "$p" ] && kill "$p" 2>/dev/null
	p=$(sock_pid "$NSG" "$SOCKDIR/$WGG.sock")
	[ -n "$p" ] && kill "$p" 2>/dev/null
	ip netns del "$NSC" 2>/dev/null
	ip netns del "$NSG" 2>/dev/null
	rm -f "$SOCKDIR/$WGC.sock" "$SOCKDIR/$WGG.sock"
	[ -n "${KEEP_TMP:-}" ] && { echo "kept $T"; return; }
	rm -rf "$T"
}
trap cleanup EXIT


step "namespaces $NSC (control plane) and $NSG (gateway), veth $VC/$VG"
cg_topology_up

step "control plane: TLS certificate, tokens, enrolld"
mkdir -p "$T/gw"
cg_cp_credentials "edgekeyd test CA"
cp "$T/cp/prov.token" "$T/gw/prov.token"
cg_cp_start
cg_tenant_acme 10.77.0.0/24

step "gateway: swtpm in $NSG, edge-keyd configuration"
swtpm_fixture_state ekgw "$T/gw/tpm" || fail "fixture state"
cg_gw_swtpm "$T/gw/tpm" "$TPM_PORT" "$T/swtpm.log" || fail "swtpm"
TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"
cat >"$T/gw/edge-keyd.conf" <<EOF
[device]
state_dir = $T/gw/state
tcti = $TCTI
ek_type = ${EKD_TEST_EK_TYPE:-rsa2048}
ak_type = ${EKD_TEST_AK_TYPE:-ecc}
${EKD_TEST_PCR_POLICY:+pcr_policy = $EKD_TEST_PCR_POLICY}
label = gw-$S
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
# shellcheck disable=SC2086 # EKD_WRAP: a command line edge-keyd runs under (valgrind_e2e.sh)
ing ${EKD_WRAP:-} "$EKD" -n -c "$T/gw/edge-keyd.conf" || fail "-n rejects the gateway's configuration"
# shellcheck disable=SC2086
ekd() { ing timeout $((60 * ${CG_SLOW:-1})) ${EKD_WRAP:-} "$EKD" -c "$T/gw/edge-keyd.conf" "$@"; }

step "provision: TPM prepared, EK pre-registered in acme"
EK_ID=$(ekd provision 2>"$T/provision.log") || fail "provision"
[[ $EK_ID =~ ^[0-9a-f]{64}$ ]] || fail "provision printed '$EK_ID', not an EK id"
api GET /v1/tenants/acme/registrations | jq -e --arg id "$EK_ID" \
	'[.. | objects | select(.ek_id? == $id)] | length == 1' >/dev/null ||
	fail "EK $EK_ID not in acme's registrations: $(cat "$T/body")"
PUB1=$(jq -r .wg_public_key < <(ekd provision --offline 2>/dev/null))
EK_ID2=$(ekd provision 2>>"$T/provision.log") || fail "second provision"
[ "$EK_ID2" = "$EK_ID" ] || fail "second provision changed the EK id"
grep -q "kept the existing identity" "$T/provision.log" || fail "second provision made a new identity"
grep -q "already registered" "$T/provision.log" || fail "second registration not seen as a duplicate"
ekd provision --offline >"$T/offline.json" 2>/dev/null || fail "provision --offline"
jq -e --arg id "$EK_ID" '.ek_id == $id and .tenant == "acme" and
	(.registration.ek_public | length) > 100 and .registration.label == "gw-'"$S"'"' \
	"$T/offline.json" >/dev/null || fail "offline record: $(cat "$T/offline.json")"
[ "$(jq -r .wg_public_key "$T/offline.json")" = "$PUB1" ] || fail "offline record's key changed"

step "enroll: enrollment.json (0600), no key in it"
ekd enroll 2>"$T/enroll.log" || fail "enroll"
E=$T/gw/state/enrollment.json
[ "$(stat -c %a "$E")" = 600 ] || fail "enrollment.json mode $(stat -c %a "$E")"
ADDR=$(jq -r .address "$E")
[[ $ADDR =~ ^10\.77\.0\.[0-9]+/32$ ]] || fail "address '$ADDR'"
GWA=${ADDR%/32}
[ "$(jq -r .wg_public_key "$E")" = "$PUB1" ] || fail "enrolled key is not the sealed one"
jq -e '.allowed_ips == ["10.77.0.0/24"] and .endpoint == "'"$CP_IP:$WG_PORT"'"' "$E" \
	>/dev/null || fail "enrollment: $(cat "$E")"
grep -qi private "$E" && fail "enrollment.json mentions a private key"
"$WGCTL" show "$WGC" | grep -q "^$PUB1" || fail "the control plane has no peer $PUB1"

if command -v nft >/dev/null; then
	step "the gateway's WAN firewall (edge-keyd/wan-firewall.nft): unsolicited traffic dropped"
	inc ping -c 1 -W 1 "$GW_IP" >/dev/null 2>&1 || fail "no ping to $GW_IP before the firewall"
	ing nft -D WG_IF="$WGG" -f edge-keyd/wan-firewall.nft || fail "loading wan-firewall.nft"
	inc ping -c 2 -W 1 "$GW_IP" >/dev/null 2>&1 && fail "unsolicited ping to $GW_IP answered"
	FIREWALL=1
else
	echo "(nft not installed: WAN firewall not loaded)"
	FIREWALL=0
fi

step "run: the tunnel comes up, the control plane pings $GWA"
# not through ekd(): $! must be edge-keyd itself (ip netns exec execs it)
# shellcheck disable=SC2086
ip netns exec "$NSG" ${EKD_WRAP:-} "$EKD" -c "$T/gw/edge-keyd.conf" -d run >"$T/edge-keyd.log" 2>&1 &
EKD_PID=$!
wait_for 15 test -S "$SOCKDIR/$WGG.sock" || fail "edge-keyd did not start wireguard-go"
ping_gw() { inc ping -c 1 -W 1 "$GWA" >/dev/null 2>&1; }
wait_for 20 ping_gw || fail "no ping from the control plane to $GWA"
# edge-keyd itself owns no socket that listens or receives (the WireGuard UDP socket is
# wireguard-go's, and the WAN firewall only lets its answers in).
if ss -H -ltunp -N "$NSG" | grep -q "pid=$EKD_PID,"; then
	fail "edge-keyd owns a listening socket: $(ss -H -ltunp -N "$NSG")"
fi
up() { [ "$(ekd status --json 2>/dev/null | jq -r .tunnel.state)" = up ]; }
wait_for 10 up || fail "status does not say up: $(ekd status 2>&1)"
if [ "$FIREWALL" = 1 ]; then
	inc ping -c 1 -W 1 "$GW_IP" >/dev/null 2>&1 && fail "the WAN address answers with the tunnel up"
fi

step "heal: a killed wireguard-go is replaced"
WGPID=$(sed -n "s/.*started '.* $WGG' (pid \([0-9]*\)).*/\1/p" "$T/edge-keyd.log" | tail -n1)
[ -n "$WGPID" ] || fail "no wireguard-go pid in the log"
kill "$WGPID"
gone() { ! kill -0 "$WGPID" 2>/dev/null; }
wait_for 5 gone || fail "wireguard-go $WGPID did not stop"
wait_for 20 ping_gw || fail "no ping after wireguard-go was killed"
grep -q "recreating" "$T/edge-keyd.log" || fail "no recreation in the log"

step "rotate: same address, new key on both sides"
ekd rotate 2>"$T/rotate.log" || fail "rotate"
PUB2=$(jq -r .wg_public_key "$E")
[ "$PUB2" != "$PUB1" ] || fail "rotate kept the key"
[ "$(jq -r .address "$E")" = "$ADDR" ] || fail "rotate moved the address to $(jq -r .address "$E")"
"$WGCTL" show "$WGC" >"$T/cp.peers"
grep -q "^$PUB2" "$T/cp.peers" || fail "the control plane lacks the new key"
grep -q "^$PUB1" "$T/cp.peers" && fail "the control plane still has the old key"
[ "$(ekd status --json | jq -r .interface.name)" = "$WGG" ] || fail "status json"
wait_for 20 ping_gw || fail "no ping after rotation"

step "status: handshake, address, no key"
wait_for 10 up || fail "not up after rotation"
ekd status --json >"$T/status.json"
jq -e --arg a "$ADDR" '.tunnel.state == "up" and .tunnel.last_handshake > 0 and
	.tunnel.rx_bytes > 0 and .enrollment.address == $a and .enrollment.tenant == "acme"' \
	"$T/status.json" >/dev/null || fail "status: $(cat "$T/status.json")"
ekd status >"$T/status.txt" || fail "status exit code (tunnel up): $?"
grep -q "last handshake: .* s ago" "$T/status.txt" || fail "status text: $(cat "$T/status.txt")"
grep -qi "private" "$T/status.txt" "$T/status.json" && fail "status mentions a private key"
cat "$T/status.txt"

step "the daemon re-enrolls when the sealed key is not the enrolled one"
n_enrolled=$(grep -c "device 1 enrolled" "$T/enrolld.log")
jq '.wg_public_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAE="' "$E" >"$E.new" &&
	chmod 600 "$E.new" && mv "$E.new" "$E" || fail "editing enrollment.json"
reenrolled() { [ "$(jq -r .wg_public_key "$E")" = "$PUB2" ]; }
wait_for 20 reenrolled || fail "enrollment.json not repaired: $(cat "$E")"
grep -q "enrolling (the sealed key is not the enrolled one)" "$T/edge-keyd.log" ||
	fail "no re-enrollment in the log"
[ "$(grep -c "device 1 enrolled" "$T/enrolld.log")" -gt "$n_enrolled" ] ||
	fail "the control plane saw no enrollment"
[ "$(jq -r .address "$E")" = "$ADDR" ] || fail "re-enrollment moved the address"
wait_for 20 ping_gw || fail "no ping after the re-enrollment"

step "revoked: enroll refused with device_revoked; reinstated: enrolls, tunnel back"
DEV=$(jq -r .device_id "$E")
api POST "/v1/devices/$DEV/revoke" >/dev/null
[ "$(cat "$T/status")" = 200 ] || fail "revoke: HTTP $(cat "$T/status") $(cat "$T/body")"
inc ping -c 2 -W 1 "$GWA" >/dev/null 2>&1 && fail "a revoked gateway still answers"
ekd enroll 2>"$T/revoked.log" && fail "a revoked device enrolled"
grep -q "device_revoked" "$T/revoked.log" || fail "no device_revoked: $(cat "$T/revoked.log")"
api POST "/v1/devices/$DEV/reinstate" >/dev/null
[ "$(cat "$T/status")" = 200 ] || fail "reinstate: HTTP $(cat "$T/status") $(cat "$T/body")"
ekd enroll 2>"$T/reinstated.log" || fail "enroll after reinstatement: $(cat "$T/reinstated.log")"
[ "$(jq -r .address "$E")" = "$ADDR" ] || fail "reinstatement moved the address"
wait_for 20 ping_gw || fail "no ping after reinstatement"

step "SIGHUP reloads, SIGTERM removes the interface"
kill -HUP "$EKD_PID"
wait_for 5 grep -q "configuration reloaded" "$T/edge-keyd.log" || fail "no reload"
kill -TERM "$EKD_PID"
wait "$EKD_PID"
rc=$?
EKD_PID=
[ "$rc" = 0 ] || fail "edge-keyd exit status $rc"
wait_for 5 bash -c "! test -e $SOCKDIR/$WGG.sock" || fail "the UAPI socket stayed"
wait_for 5 bash -c "! ip -n $NSG link show $WGG >/dev/null 2>&1" || fail "$WGG stayed"
ekd status >/dev/null 2>&1
[ $? = 3 ] || fail "status exit code with the tunnel gone is not 3"

echo "PASS"
exit 0
