#!/bin/bash
# The gateway's TPM dies under edge-keyd (issue 12, faults): swtpm is killed with SIGKILL in
# the middle of `edge-keyd provision`, `enroll` and `rotate` (at 10, 30, 50, 70 and 90 % of
# the command's duration measured on a clean run), then started again on the same TPM state,
# as a TPM reset or a resource manager restart would leave it. Each time:
#   - the interrupted command fails (exit status not 0) and says why in one line naming
#     the TPM; it does not hang;
#   - run again, the same command succeeds: provisioning on an interrupted state directory
#     ends with one identity, an enrollment with one device for the EK, a rotation with the
#     control plane holding the key the gateway has;
#   - in the end `edge-keyd run` unseals the key and the tunnel carries a ping: no key was
#     lost or half written.
# The control plane (enrolld, HTTPS, userspace WireGuard) and the gateway are two network
# namespaces (tests/integration/cpgw_lib.sh).
set -u
B=${B:-build}
EKD=$B/edge-keyd
ENROLLD=$B/enrolld
WGCTL=$B/tests/progs/wgctl
. tests/integration/cpgw_lib.sh
cg_require "$EKD" "$ENROLLD" "$WGCTL" -- wireguard-go ip ping swtpm tpm2_getcap openssl curl jq
CG_FAIL=fail
cg_names tf 39000 # ports 39000-40999
TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"
T=$(mktemp -d /tmp/edgekeyd_tpm_faults.XXXXXX)
PIDS=()
EKD_PID=
fails=0

cleanup() {
	local p
	[ -n "$EKD_PID" ] && stop_pid "$EKD_PID"
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	for p in $(sock_pid "$NSC" "$SOCKDIR/$WGC.sock") $(sock_pid "$NSG" "$SOCKDIR/$WGG.sock"); do
		kill "$p" 2>/dev/null
	done
	ip netns del "$NSC" 2>/dev/null
	ip netns del "$NSG" 2>/dev/null
	rm -f "$SOCKDIR/$WGC.sock" "$SOCKDIR/$WGG.sock"
	[ -n "${KEEP_TMP:-}" ] && { echo "kept $T"; return; }
	rm -rf "$T"
}
trap cleanup EXIT
check() { # DESCRIPTION COMMAND...
	local d=$1
	shift
	if "$@"; then echo "ok   $d"; else echo "FAIL $d"; fails=$((fails + 1)); fi
}

cg_topology_up
mkdir -p "$T/gw"
cg_cp_credentials "tpm faults test CA"
cp "$T/cp/prov.token" "$T/gw/prov.token"
cg_cp_start
cg_tenant_acme 10.77.0.0/24

cat >"$T/gw/edge-keyd.conf" <<EOF
[device]
state_dir = $T/gw/state
tcti = $TCTI
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
ekd() { ing timeout 60 "$EKD" -c "$T/gw/edge-keyd.conf" "$@"; }

# A fresh TPM (the fixture's state: a manufactured TPM with its EK certificate).
tpm_fresh() {
	[ -n "${CG_SWTPM_PID:-}" ] && stop_pid "$CG_SWTPM_PID"
	rm -rf "$T/gw/tpm"
	swtpm_fixture_state ekgw "$T/gw/tpm" || fail "fixture state"
	cg_gw_swtpm "$T/gw/tpm" "$TPM_PORT" "$T/swtpm.log" || fail "swtpm"
}
tpm_restart() { cg_gw_swtpm "$T/gw/tpm" "$TPM_PORT" "$T/swtpm.log" || fail "swtpm restart"; }

# Run an edge-keyd command, SIGKILL swtpm after DELAY seconds; the command's status in RC,
# its stderr in $T/cut.log. The TPM is started again afterwards.
cut_tpm() { # DELAY COMMAND...
	local d=$1 c
	shift
	ekd "$@" >"$T/cut.out" 2>"$T/cut.log" &
	c=$!
	sleep "$d"
	kill -9 "$CG_SWTPM_PID"
	wait "$CG_SWTPM_PID" 2>/dev/null
	wait "$c"
	RC=$?
	tpm_restart
}
# where the cuts fall, in % of the clean run (the machine's load moves them: some land
# after the command finished; each phase must have at least one real cut)
CUTS="10 30 50 70 90"
CUT=0
cut_count() { [ "$RC" = 0 ] || CUT=$((CUT + 1)); }
# milliseconds a command takes, in DUR
timed() { # COMMAND...
	local t0 t1
	t0=$(date +%s%N)
	"$@"
	local rc=$?
	t1=$(date +%s%N)
	DUR=$(((t1 - t0) / 1000000))
	return $rc
}
at() { printf '%d.%03d' $((DUR * $1 / 100 / 1000)) $((DUR * $1 / 100 % 1000)); }
# the interrupted command's one clear line: a failure that names the TPM
said_why() { grep -qiE 'tpm|tcti' "$T/cut.log"; }
# Run a command again after a cut. A TPM counts an unclean shutdown while a DA-protected
# object (here the EK, for ActivateCredential) was in use as an authorization failure;
# after a few the TPM is in lockout and refuses the EK. edge-keyd must say so in its line;
# then the test does what docs/tpm-device.md tells an operator (clear the lockout with the
# lockout authorization) and runs the command once more.
LOCKOUTS=0
again() { # COMMAND...: its stdout
	ekd "$@" 2>"$T/again.log" && return 0
	grep -q "DA lockout mode" "$T/again.log" || { cat "$T/again.log" >&2; return 1; }
	LOCKOUTS=$((LOCKOUTS + 1))
	echo "     lockout: $(tail -n1 "$T/again.log"); cleared" >&2
	ing tpm2_dictionarylockout -T "$TCTI" --clear-lockout >/dev/null 2>&1 || return 1
	ekd "$@" 2>>"$T/again.log"
}

echo "== provision"
tpm_fresh
timed ekd provision >/dev/null 2>"$T/provision.log" || fail "clean provision"
EK_ID=$(ekd provision --offline 2>/dev/null | jq -r .ek_id)
echo "   a clean provision takes ${DUR} ms"
for pct in $CUTS; do
	rm -rf "$T/gw/state"
	tpm_fresh
	cut_tpm "$(at $pct)" provision
	cut_count
	if [ "$RC" = 0 ]; then
		echo "     (at $pct % the provision had already finished)"
	else
		check "provision cut at $pct %: fails (exit $RC) and says why: $(tail -n1 "$T/cut.log")" said_why
	fi
	check "provision cut at $pct %: run again, it succeeds with the device's EK" \
		[ "$(again provision)" = "$EK_ID" ]
	check "... and a third run keeps that identity" \
		[ "$(ekd provision --offline 2>/dev/null | jq -r .wg_public_key)" = \
		  "$(ekd provision --offline 2>/dev/null | jq -r .wg_public_key)" ]
done

check "provision was interrupted at least once ($CUT)" [ "$CUT" -ge 1 ]
CUT=0
echo "== enroll"
E=$T/gw/state/enrollment.json
cp -a "$T/gw/state" "$T/state.provisioned"
cp -a "$T/gw/tpm" "$T/tpm.provisioned"
timed ekd enroll 2>"$T/enroll.log" || fail "clean enroll"
echo "   a clean enrollment takes ${DUR} ms"
for pct in $CUTS; do
	stop_pid "$CG_SWTPM_PID"
	rm -rf "$T/gw/state" "$T/gw/tpm"
	cp -a "$T/state.provisioned" "$T/gw/state"
	cp -a "$T/tpm.provisioned" "$T/gw/tpm"
	tpm_restart
	cut_tpm "$(at $pct)" enroll
	cut_count
	if [ "$RC" = 0 ]; then
		echo "     (at $pct % the enrollment had already finished)"
	else
		check "enroll cut at $pct %: fails (exit $RC) and says why: $(tail -n1 "$T/cut.log")" said_why
	fi
	check "enroll cut at $pct %: run again, it succeeds" again enroll
done
check "enroll was interrupted at least once ($CUT)" [ "$CUT" -ge 1 ]
CUT=0
DEV=$(jq -r .device_id "$E")
ADDR=$(jq -r .address "$E")
check "one device for the EK, with the gateway's key and address" \
	[ "$(api GET /v1/devices | jq -r --arg ek "$EK_ID" \
		'[.devices[] | select(.ek_id == $ek) | "\(.public_key) \(.address)"] | join(",")')" = \
	  "$(jq -r .wg_public_key "$E") $ADDR" ]

echo "== rotate"
timed ekd rotate 2>"$T/rotate.log" || fail "clean rotate"
echo "   a clean rotation takes ${DUR} ms"
server_key() { api GET "/v1/devices/$DEV" | jq -r .public_key; }
for pct in $CUTS; do
	cut_tpm "$(at $pct)" rotate
	cut_count
	if [ "$RC" = 0 ]; then
		echo "     (at $pct % the rotation had already finished)"
	else
		check "rotate cut at $pct %: fails (exit $RC) and says why: $(tail -n1 "$T/cut.log")" said_why
	fi
	check "rotate cut at $pct %: run again, it succeeds" again rotate
	check "... and the control plane holds the gateway's key" \
		[ "$(server_key)" = "$(jq -r .wg_public_key "$E")" ]
done
check "rotate was interrupted at least once ($CUT)" [ "$CUT" -ge 1 ]
check "the address never changed" [ "$(jq -r .address "$E")" = "$ADDR" ]

echo "== the last rotation cut, and the daemon started on what it left"
cut_tpm "$(at 50)" rotate
echo "     rotate exit $RC: $(tail -n1 "$T/cut.log")"
ip netns exec "$NSG" "$EKD" -c "$T/gw/edge-keyd.conf" -d run >"$T/edge-keyd.log" 2>&1 &
EKD_PID=$!
ping_gw() { inc ping -c 1 -W 1 "${ADDR%/32}" >/dev/null 2>&1; }
check "edge-keyd run unseals the key and the tunnel carries a ping" wait_for 30 ping_gw
check "the control plane holds the key the gateway uses" \
	[ "$(server_key)" = "$(jq -r .wg_public_key "$E")" ]

echo "   $LOCKOUTS time(s) the TPM was in DA lockout after the cuts (cleared each time)"
echo "$fails check(s) failed"
[ "$fails" = 0 ]
