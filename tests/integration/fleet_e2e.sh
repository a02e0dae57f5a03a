#!/bin/bash
# The whole fleet, end to end, everything real: one control plane (enrolld over HTTPS,
# userspace WireGuard per tenant) and three gateways in two tenants (acme: g1, g2;
# globex: g3), each in its own network namespace with its own swtpm, edge-keyd and
# wireguard-go, behind edge-keyd/wan-firewall.nft. Topology: tests/integration/fleet_lib.sh
# (shared with scripts/demo.sh). In this order, each step ending with a PASS/FAIL line:
#   1. factory provisioning: edge-keyd provision pre-registers each EK in its tenant
#   2. enrollment of all three (edge-keyd enroll), then edge-keyd run as daemons
#   3. the control plane pings every gateway's /32; nothing listens on the gateways and
#      their WAN addresses answer nothing
#   4. tenant isolation: an acme gateway (g1, taken over by an attacker: its daemon frozen,
#      its tunnel opened to 0.0.0.0/0) cannot reach the globex gateway's /32, with its own
#      source, a spoofed acme source, a spoofed globex source, or over the WAN; counters in
#      g3's namespace prove nothing arrived (and, as controls, that the same probes from the
#      control plane and within acme do arrive)
#   5. g1's link is cut: the health API says down within 3 x keepalive + one tick, and up
#      again after the link returns, with the tunnel healed by itself
#   6. enrolld is killed (SIGKILL) while a stray peer is planted on an interface, and
#      restarted: it adopts the running interfaces, reconciliation removes the stray peer,
#      every tunnel works
#   7. g2 is revoked: the control plane and g2 cannot reach each other, g2 cannot enroll
#      again (device_revoked), g1 and g3 are untouched
#   8. g3 rotates its key: same address and device, the new key replaces the old one on the
#      control plane, the tunnel works
# Then everything is removed, and "N passed, N failed" counts its checks. About a minute.
set -u
. "$(dirname "$0")/fleet_lib.sh"
fl_require
fl_init e2e

passed=0 failed=0
STEP='' STEP_TITLE='' STEP_FAILED=0

check() { # DESCRIPTION CMD...
	local d=$1
	shift
	if "$@"; then
		echo "  ok    $d"
		passed=$((passed + 1))
	else
		echo "  FAIL  $d"
		failed=$((failed + 1))
		STEP_FAILED=1
	fi
}
quiet() { "$@" >/dev/null 2>&1; }
not() { ! "$@"; }
has_peer() { fl_cp_peers "$1" | grep -qxF "$2"; } # TENANT KEY
untouched() { fl_wait_for 5 fl_ping_gw "$1" && fl_health_is "$1" up; }

end_step() {
	[ -n "$STEP" ] || return 0
	if [ "$STEP_FAILED" = 0 ]; then
		echo "PASS  step $STEP: $STEP_TITLE"
	else
		echo "FAIL  step $STEP: $STEP_TITLE"
	fi
	STEP=
}

step() { # N TITLE
	end_step
	STEP=$1 STEP_TITLE=$2 STEP_FAILED=0
	echo
	echo "== step $STEP: $STEP_TITLE"
}

logs() {
	local f
	[ -n "$FL_T" ] || return 0
	for f in "$FL_T/enrolld.log" "$FL_T"/g*/*.log; do
		[ -s "$f" ] && { echo "--- ${f#"$FL_T"/} (tail)"; tail -n 25 "$f"; }
	done
}

finish() {
	end_step
	[ "$failed" = 0 ] || logs
	fl_cleanup
	if fl_all_gone; then
		echo "  ok    cleanup: no namespace, process or socket of the fleet is left"
		passed=$((passed + 1))
	else
		echo "  FAIL  cleanup left something behind"
		failed=$((failed + 1))
	fi
	echo
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit $?
}

# A failure that makes the following steps meaningless.
fatal() {
	echo "  FAIL  $*"
	failed=$((failed + 1))
	STEP_FAILED=1
	finish
}

# ---------------------------------------------------------------------------------------------
echo "== setup: namespaces, WAN bridge, control plane"
fl_topology_up >/dev/null || fatal "topology"
for i in 1 2 3; do
	check "before its firewall, g$i's WAN address answers a ping" \
		quiet fl_cp ping -c 1 -W 1 "${FL_GW_WAN[$i]}"
	fl_cp timeout 2 bash -c "exec 3<>/dev/tcp/${FL_GW_WAN[$i]}/22" 2>/dev/null
	rc=$?
	check "  ... and a TCP connection to it is refused at once (rc $rc)" test "$rc" = 1
	fl_firewall_up "$i" || fatal "loading the WAN firewall of g$i"
done
fl_cp_setup || fatal "control plane setup (TLS, tokens, fixtures)"
fl_cp_start || fatal "enrolld did not start"
fl_tenants_create || fatal "tenants"
for t in acme globex; do
	fl_api GET "/v1/tenants/$t" >"$FL_T/tenant.$t.json"
	check "tenant $t: ${FL_PREFIX[$t]}, interface up, keepalive $FL_KA s" \
		quiet jq -e --arg p "${FL_PREFIX[$t]}" ".prefix == \$p and .interface_up and
			.keepalive == $FL_KA" "$FL_T/tenant.$t.json"
done

# ---------------------------------------------------------------------------------------------
step 1 "factory provisioning and pre-registration (edge-keyd provision, provisioning token)"
for i in 1 2 3; do
	t=${FL_GW_TENANT[$i]}
	fl_gw_setup "$i" || fatal "g$i: swtpm and configuration"
	EK[$i]=$(fl_ekd "$i" provision 2>>"$FL_T/g$i/provision.log")
	check "g$i (${FL_GW_EK[$i]} EK) provisioned, EK id ${EK[$i]:0:16}..." \
		test "$(grep -cE '^[0-9a-f]{64}$' <<<"${EK[$i]}")" = 1
	fl_api GET "/v1/tenants/$t/registrations" >"$FL_T/reg.json"
	check "its EK is pre-registered in $t" quiet jq -e --arg id "${EK[$i]}" \
		'[.registrations[] | select(.ek_id == $id)] | length == 1' "$FL_T/reg.json"
done
fl_api GET /v1/tenants/acme/registrations >"$FL_T/reg.json"
check "globex's gateway is not registered in acme" quiet jq -e --arg id "${EK[3]}" \
	'[.registrations[] | select(.ek_id == $id)] | length == 0' "$FL_T/reg.json"
check "the three TPMs are three identities" test "$(printf '%s\n' "${EK[@]}" | sort -u | wc -l)" = 3

# ---------------------------------------------------------------------------------------------
step 2 "enrollment of all three (edge-keyd enroll), then edge-keyd run as daemons"
for i in 1 2 3; do
	t=${FL_GW_TENANT[$i]}
	fl_ekd "$i" enroll 2>>"$FL_T/g$i/enroll.log" || fatal "g$i: enroll: $(tail -n 3 "$FL_T/g$i/enroll.log")"
	A=$(fl_gw_addr "$i")
	check "g$i enrolled in $t as device $(fl_gw_dev "$i"), address $A/32" \
		test "$(fl_gw_enrollment "$i" .tenant)" = "$t" -a "${A%.*}.0/24" = "${FL_PREFIX[$t]}"
	check "its enrollment.json (mode 600) holds no private key" bash -c \
		"[ \$(stat -c %a '$FL_T/g$i/state/enrollment.json') = 600 ] &&
		 ! grep -qi private '$FL_T/g$i/state/enrollment.json'"
done
check "three distinct addresses" \
	test "$(for i in 1 2 3; do fl_gw_addr "$i"; done | sort -u | wc -l)" = 3
check "acme's interface has exactly g1's and g2's keys" \
	test "$(fl_cp_peers acme | sort)" = "$(printf '%s\n' "$(fl_gw_pub 1)" "$(fl_gw_pub 2)" | sort)"
check "globex's interface has exactly g3's key" test "$(fl_cp_peers globex)" = "$(fl_gw_pub 3)"
for i in 1 2 3; do
	fl_gw_start "$i" || fatal "g$i: edge-keyd run"
done
check "three edge-keyd daemons run" bash -c "kill -0 ${FL_GW_EKD_PID[1]} ${FL_GW_EKD_PID[2]} ${FL_GW_EKD_PID[3]}"

# ---------------------------------------------------------------------------------------------
step 3 "the control plane pings every gateway's /32; nothing listens on the gateways"
for i in 1 2 3; do
	check "the control plane pings g$i at $(fl_gw_addr "$i") through its tunnel" \
		fl_wait_for 20 fl_ping_gw "$i"
	check "g$i reaches its tenant's control-plane address ${FL_CP_TADDR[${FL_GW_TENANT[$i]}]}" \
		quiet fl_gw "$i" ping -c 1 -W 2 "${FL_CP_TADDR[${FL_GW_TENANT[$i]}]}"
done
for i in 1 2 3; do
	fl_gw "$i" ss -H -ltunp >"$FL_T/ss.$i"
	check "g$i: no socket of edge-keyd (pid ${FL_GW_EKD_PID[$i]}) in 'ss -ltunp'" \
		not grep -q "pid=${FL_GW_EKD_PID[$i]}," "$FL_T/ss.$i"
	# The only TCP listener is the swtpm standing in for the TPM chip, on loopback.
	check "g$i: no TCP listener outside loopback" \
		not bash -c "grep '^tcp' '$FL_T/ss.$i' | awk '{print \$5}' | grep -qv '^127\.0\.0\.1:'"
	check "g$i: an unsolicited ping to its WAN address ${FL_GW_WAN[$i]} gets no answer" \
		not quiet fl_cp ping -c 2 -i 0.2 -W 1 "${FL_GW_WAN[$i]}"
	fl_cp timeout 2 bash -c "exec 3<>/dev/tcp/${FL_GW_WAN[$i]}/22" 2>/dev/null
	rc=$?
	check "g$i: a TCP connection to its WAN address gets no answer, not even a reset (rc $rc)" \
		test "$rc" = 124
done
for i in 1 2 3; do
	took=$(fl_wait_health "$i" up $((3 * FL_KA + 3)))
	check "the health API says g$i is up ($took ms)" test "$took" != timeout
	check "g$i's edge-keyd status says up" \
		test "$(fl_ekd "$i" status --json 2>/dev/null | jq -r .tunnel.state)" = up
done

# ---------------------------------------------------------------------------------------------
step 4 "an acme gateway cannot reach a globex gateway, not even with a spoofed source"
G1=$(fl_gw_addr 1) G2=$(fl_gw_addr 2) G3=$(fl_gw_addr 3)
W3=${FL_GW_WAN[3]} SPOOF_B=${FL_CP_TADDR[globex]}
NS3=${FL_GW_NS[3]} NS1=${FL_GW_NS[1]}
fl_probe_install 3 || fatal "probe counters in g3"
probes() {
	echo "$(fl_counter "$NS3" fl_probe via_tunnel) $(fl_counter "$NS3" fl_probe via_wan)" \
		"$(fl_counter "$NS3" fl_probe delivered)"
}
read -r t0 w0 d0 <<<"$(probes)"
fl_cp ping -c 3 -i 0.2 -W 1 "$G3" >/dev/null 2>&1
read -r t1 w1 d1 <<<"$(probes)"
check "control: the control plane's pings to g3 are counted there (tunnel +$((t1 - t0)), delivered +$((d1 - d0)))" \
	test $((t1 - t0)) -ge 3 -a $((d1 - d0)) -ge 3
check "control: g1 reaches g2 inside acme (forwarded by the control plane)" \
	quiet fl_gw 1 ping -c 1 -W 2 "$G2"
check "g1, as edge-keyd configured it, has no route to globex ($G3)" \
	not quiet fl_gw 1 ping -c 1 -W 1 "$G3"

# The attacker owns g1 (see fl_attacker_begin). A counter on the control plane shows whether
# spoofed packets get past its WireGuard (cryptokey routing) into its kernel.
fl_cp nft -f - <<EOF || fatal "probe counter in the control plane"
table inet fl_probe {
	counter own { }
	counter spoofed { }
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		iifname "${FL_TIF[acme]}" ip saddr $G1 ip daddr $G3 counter name own
		iifname "${FL_TIF[acme]}" ip saddr { $G2, $SPOOF_B } ip daddr $G3 counter name spoofed
	}
}
EOF
fl_attacker_begin 1 "$G3" "$G1" "$G2" "$SPOOF_B" || fatal "attacker setup on g1"
D0=$(fl_isolation_drops)
read -r t0 w0 d0 <<<"$(probes)"
check "g1 -> g3 through the tunnel, own source $G1: no answer" \
	not quiet fl_gw 1 ping -c 3 -i 0.2 -W 1 -I "$G1" "$G3"
D1=$(fl_isolation_drops)
check "  ... dropped by the control plane's tenant isolation (nft counter +$((D1 - D0)))" \
	test $((D1 - D0)) -ge 3
check "g1 -> g3 through the tunnel, spoofed acme source $G2 (g2's): no answer" \
	not quiet fl_gw 1 ping -c 3 -i 0.2 -W 1 -I "$G2" "$G3"
check "g1 -> g3 through the tunnel, spoofed globex source $SPOOF_B: no answer" \
	not quiet fl_gw 1 ping -c 3 -i 0.2 -W 1 -I "$SPOOF_B" "$G3"
S0=$(fl_counter "$NS1" fl_attack src0) S1=$(fl_counter "$NS1" fl_attack src1)
S2=$(fl_counter "$NS1" fl_attack src2) SP=$(fl_counter "$FL_NS_CP" fl_probe spoofed)
OWN=$(fl_counter "$FL_NS_CP" fl_probe own)
check "g1 did send them into its tunnel (own source $S0, acme-spoofed $S1, globex-spoofed $S2)" \
	test "$S0" -ge 3 -a "$S1" -ge 3 -a "$S2" -ge 3
check "the control plane's WireGuard let g1's own-source packets into its kernel ($OWN)" \
	test "$OWN" -ge 3
check "  ... but dropped the spoofed ones (cryptokey routing: $SP reached its kernel)" \
	test "$SP" = 0
fl_gw 1 ip route replace "$G3/32" via "$W3" dev "${FL_GW_VETH[1]}"
check "g1 -> g3's /32 over the WAN (via $W3): no answer" \
	not quiet fl_gw 1 ping -c 3 -i 0.2 -W 1 -I "$G1" "$G3"
check "g1 -> g3's WAN address $W3: no answer" not quiet fl_gw 1 ping -c 3 -i 0.2 -W 1 "$W3"
read -r t1 w1 d1 <<<"$(probes)"
check "g3 counted nothing through its tunnel (+$((t1 - t0)))" test "$t1" = "$t0"
check "g3 delivered nothing to itself (+$((d1 - d0)))" test "$d1" = "$d0"
check "the WAN probes did reach g3's WAN port, where its firewall dropped them (+$((w1 - w0)))" \
	test $((w1 - w0)) -ge 6
# The attacker leaves; edge-keyd resumes and the tunnel is as it was.
fl_attacker_end 1 "$G3" "$G1" "$G2" "$SPOOF_B"
check "g1's tunnel works again" fl_wait_for 10 fl_ping_gw 1

# ---------------------------------------------------------------------------------------------
step 5 "g1's link is cut: reported down within 3 x keepalive + one tick, then up and healed"
LIMIT=$((3 * FL_KA + FL_TICK))
check "g1 is up before the cut" fl_health_is 1 up
fl_link_cut 1 2>/dev/null
took=$(fl_wait_health 1 down $((LIMIT + 3)))
check "the health API says g1 is down after $took ms (bound ${LIMIT} s + 1 s polling slack)" \
	bash -c "[ '$took' != timeout ] && [ '$took' -le $(((LIMIT + 1) * 1000)) ]"
check "  ... and not before a keepalive could have been missed" \
	bash -c "[ '$took' != timeout ] && [ '$took' -ge $(((FL_KA - 1) * 1000)) ]"
both_up() { fl_health_is 2 up && fl_health_is 3 up; }
check "g2 and g3 stay up meanwhile" both_up
check "the control plane cannot reach g1" not fl_ping_gw 1
fl_link_restore 1 2>/dev/null
took=$(fl_wait_health 1 up $((3 * FL_KA + 10)))
check "the link is back: the health API says up again ($took ms)" test "$took" != timeout
check "the tunnel healed by itself: the control plane pings g1" fl_wait_for 10 fl_ping_gw 1
check "g1's edge-keyd status says up" \
	test "$(fl_ekd 1 status --json 2>/dev/null | jq -r .tunnel.state)" = up

# ---------------------------------------------------------------------------------------------
step 6 "enrolld is killed (SIGKILL) and restarted; every tunnel still works after reconciliation"
PA=$(fl_sock_pid "$FL_NS_CP" "${FL_TIF[acme]}")
PB=$(fl_sock_pid "$FL_NS_CP" "${FL_TIF[globex]}")
fl_cp_kill9 2>/dev/null
check "enrolld is gone: its API does not answer" \
	not quiet fl_cp curl -s --max-time 2 --cacert "$FL_T/cp/ca.pem" "$FL_URL/healthz"
for i in 1 2 3; do
	check "without enrolld, the control plane still pings g$i (the data plane needs no daemon)" \
		fl_ping_gw "$i"
done
# Drift while it is down: a peer on acme's interface that the store does not know.
STRAY=$("$FL_WGCTL" genkey | "$FL_WGCTL" pubkey)
"$FL_WGCTL" --backend uapi set "${FL_TIF[acme]}" peer "$STRAY" allowed-ips 10.61.0.250/32
check "a stray peer is planted on acme's interface" has_peer acme "$STRAY"
n_adopted=$(grep -c "adopted the wireguard-go" "$FL_T/enrolld.log")
fl_cp_start || fatal "enrolld did not restart"
check "the restarted enrolld adopted both running wireguard-go (pids $PA, $PB)" bash -c \
	"[ \$(grep -c 'adopted the wireguard-go' '$FL_T/enrolld.log') -ge $((n_adopted + 2)) ] &&
	 [ '$(fl_sock_pid "$FL_NS_CP" "${FL_TIF[acme]}")' = '$PA' ] &&
	 [ '$(fl_sock_pid "$FL_NS_CP" "${FL_TIF[globex]}")' = '$PB' ]"
stray_gone() { ! has_peer acme "$STRAY"; }
check "reconciliation removed the stray peer" fl_wait_for 10 stray_gone
check "acme's interface has exactly g1's and g2's keys" \
	test "$(fl_cp_peers acme | sort)" = "$(printf '%s\n' "$(fl_gw_pub 1)" "$(fl_gw_pub 2)" | sort)"
check "globex's interface has exactly g3's key" test "$(fl_cp_peers globex)" = "$(fl_gw_pub 3)"
for i in 1 2 3; do
	check "the control plane pings g$i" fl_wait_for 10 fl_ping_gw "$i"
	took=$(fl_wait_health "$i" up $((3 * FL_KA + 3)))
	check "the health API says g$i is up ($took ms)" test "$took" != timeout
done

# ---------------------------------------------------------------------------------------------
step 7 "g2 is revoked: cut off, cannot enroll again, the others untouched"
fl_api POST "/v1/devices/$(fl_gw_dev 2)/revoke" >"$FL_T/revoke.json"
check "POST /v1/devices/$(fl_gw_dev 2)/revoke: HTTP 200" test "$(fl_status)" = 200
check "the API shows g2 revoked" \
	quiet jq -e '.state == "revoked" and .health == "revoked"' "$FL_T/revoke.json"
check "g2's key is gone from acme's interface" not has_peer acme "$(fl_gw_pub 2)"
check "the control plane cannot reach g2" not fl_ping_gw 2 2
check "g2 cannot reach the control plane (${FL_CP_TADDR[acme]})" \
	not quiet fl_gw 2 ping -c 2 -i 0.2 -W 1 "${FL_CP_TADDR[acme]}"
fl_ekd 2 enroll 2>"$FL_T/g2/revoked.log"
rc=$?
check "g2's edge-keyd enroll fails (exit $rc)" test "$rc" != 0
check "  ... with device_revoked" grep -q device_revoked "$FL_T/g2/revoked.log"
check "and the control plane still has no peer for g2" not has_peer acme "$(fl_gw_pub 2)"
for i in 1 3; do
	check "g$i is untouched: pinged, and up in the API" untouched "$i"
done
check "g1's key is still on acme's interface" has_peer acme "$(fl_gw_pub 1)"

# ---------------------------------------------------------------------------------------------
step 8 "g3 rotates its key (edge-keyd rotate) and keeps its address"
OLD=$(fl_gw_pub 3) ADDR=$(fl_gw_addr 3) DEV=$(fl_gw_dev 3) T_ROT=$(date +%s)
fl_ekd 3 rotate 2>"$FL_T/g3/rotate.log"
rc=$?
check "edge-keyd rotate succeeds (exit $rc)" test "$rc" = 0
NEW=$(fl_gw_pub 3)
check "a new key" test -n "$NEW" -a "$NEW" != "$OLD"
check "the same address ($ADDR) and device ($DEV)" \
	test "$(fl_gw_addr 3)" = "$ADDR" -a "$(fl_gw_dev 3)" = "$DEV"
check "globex's interface has the new key and only it" test "$(fl_cp_peers globex)" = "$NEW"
check "the control plane pings g3 with its new key" fl_wait_for 20 fl_ping_gw 3
took=$(fl_wait_health 3 up $((3 * FL_KA + 5)))
check "the health API says g3 is up ($took ms)" test "$took" != timeout
fresh_handshake() {
	[ "$(fl_api GET "/v1/devices/$DEV" | jq -r '.last_handshake // 0')" -ge "$T_ROT" ]
}
check "the API's last handshake of g3 is the new key's (after the rotation)" \
	fl_wait_for 5 fresh_handshake
check "g1 is untouched" fl_ping_gw 1

end_step
echo
echo "== the fleet, as GET /v1/devices reports it"
fl_fleet_table
finish
