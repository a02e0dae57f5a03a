#!/bin/bash
# The fleet demo, the README's main command:  sudo ./scripts/demo.sh
#
# One control plane and three gateways in two tenants, each in its own network namespace on
# this machine, each gateway with its own simulated TPM (swtpm) and userspace WireGuard
# (wireguard-go). Narrated step by step for a newcomer, with the commands shown:
# provisioning, attested enrollment, outbound-only tunnels, tenant isolation, health,
# a control-plane crash, revocation, key rotation, and a fleet table from the API at the
# end. docs/demo.md walks through the same steps.
#
# It installs what it needs (scripts/install-deps.sh), builds, touches nothing outside the
# namespaces ("fl-*") and the temp directory it creates, and leaves nothing running. About
# a minute after the build. Everything it does comes from tests/integration/fleet_lib.sh,
# the code the end-to-end test (tests/integration/fleet_e2e.sh) uses: the two cannot drift.
#
# DEMO_PAUSE=1 waits for Enter between the steps.
set -u
cd "$(dirname "$0")/.." || exit 1
if [ "$(id -u)" -ne 0 ]; then
	exec sudo -E "$0" "$@"
fi

./scripts/install-deps.sh || { echo "demo: installing the dependencies failed" >&2; exit 1; }
echo "== building (make all)"
make -s -j"$(nproc)" all >/dev/null || { echo "demo: the build failed" >&2; exit 1; }

FL_NARRATE=1
. tests/integration/fleet_lib.sh
fl_require || exit 1
fl_init demo

if [ -t 1 ]; then
	BOLD=$'\033[1m' GREEN=$'\033[32m' RED=$'\033[31m' OFF=$'\033[0m'
else
	BOLD='' GREEN='' RED='' OFF=''
fi
SURPRISES=0
N=0
say() { # TITLE
	if [ "${DEMO_PAUSE:-0}" = 1 ] && [ "$N" -gt 0 ] && [ -t 0 ]; then
		read -r -p "   (Enter to continue) " _
	fi
	N=$((N + 1))
	printf '\n%s%d. %s%s\n' "$BOLD" "$N" "$*" "$OFF"
}
tell() { printf '   %s\n' "$@"; }
# Indent output, except the command lines fl_x and fl_say_cmd print.
indent() { sed -E '/^   (\x1b\[2m)?\$ /!s/^/     /'; }
# Run a command, show it and its output, indented.
show() {
	fl_say_cmd "$*"
	"$@" 2>&1 | indent
	return "${PIPESTATUS[0]}"
}
good() { printf '   %s✓ %s%s\n' "$GREEN" "$*" "$OFF"; }
surprise() {
	printf '   %s✗ unexpected: %s%s\n' "$RED" "$*" "$OFF"
	SURPRISES=$((SURPRISES + 1))
}
# An expectation: good when the command succeeds, a surprise otherwise.
expect() { # TEXT CMD...
	local t=$1
	shift
	if "$@"; then good "$t"; else surprise "$t"; fi
}
quiet() { "$@" >/dev/null 2>&1; }
# Show a command, run it with its output hidden (its exit status is what counts).
tryq() {
	fl_say_cmd "$*"
	"$@" >/dev/null 2>&1
}
not() { ! "$@"; }
die() {
	printf '%sdemo: %s%s\n' "$RED" "$*" "$OFF" >&2
	for f in "$FL_T/enrolld.log" "$FL_T"/g*/*.log; do
		[ -s "$f" ] && { echo "--- ${f#"$FL_T"/}"; tail -n 15 "$f"; } >&2
	done
	exit 1
}
gw() { echo "g$1 (${FL_GW_NS[$1]}, tenant ${FL_GW_TENANT[$1]})"; }

cat <<EOF

${BOLD}edgeward: a fleet of outbound-only WireGuard gateways with TPM-held keys${OFF}

   Gateways sit at sites we do not control. None of them ever listens: each dials out to
   the control plane over WireGuard and keeps the tunnel warm; management comes back down
   that tunnel. A gateway's WireGuard key is born in its TPM and never leaves it in clear
   except to be handed to WireGuard; the control plane admits a gateway only after a TPM
   attestation proves it is a genuine, registered device holding that key.

   This machine plays all the parts, each in its own network namespace:

                 control plane  fl-cp-$S  198.51.100.1
                 enrolld (HTTPS API)  +  WireGuard per tenant
                 acme 10.61.0.0/24 (UDP 39011)   globex 10.62.0.0/24 (UDP 39012)
                                 |  "WAN" bridge 198.51.100.0/24
                +----------------+----------------+
                |                |                |
            g1 .11           g2 .12           g3 .13
            acme             acme             globex
            swtpm            swtpm            swtpm       (a TPM each)
            edge-keyd        edge-keyd        edge-keyd   (+ wireguard-go)
            WAN firewall     WAN firewall     WAN firewall
EOF

# ---------------------------------------------------------------------------------------------
say "The network: namespaces, a bridge for the WAN, a veth per gateway"
fl_topology_up || die "cannot build the topology"
tell "Each gateway gets the WAN firewall it ships with (edge-keyd/wan-firewall.nft): every" \
	"inbound packet is dropped unless it answers a flow the gateway started, or comes out" \
	"of its WireGuard tunnel."
for i in 1 2 3; do
	fl_firewall_up "$i" || die "cannot load the firewall of g$i"
done
show ip netns exec "${FL_GW_NS[1]}" nft list table inet edge_wan

# ---------------------------------------------------------------------------------------------
say "The control plane: enrolld, and one WireGuard interface per tenant"
tell "enrolld serves its API over HTTPS with a certificate from its own CA; every gateway" \
	"pins that CA. It trusts TPM manufacturers' CAs for EK certificates (here: the swtpm" \
	"fixtures' test CA). Its state is an LMDB database; WireGuard is driven through the" \
	"project's own module (here the userspace backend, wireguard-go)."
fl_cp_setup || die "control plane setup"
fl_cp_start || die "enrolld did not start"
tell "" "Two tenants, each with its own address range, interface and port. The keepalive is" \
	"$FL_KA s instead of the default 25 s, so that the demo is quick."
fl_tenants_create || die "cannot create the tenants"
fl_api GET /v1/tenants | jq -r '.tenants[] | "     \(.name): \(.prefix), interface \(.interface), UDP \(.listen_port), server key \(.server_public_key[0:12])..."'

# ---------------------------------------------------------------------------------------------
say "At the factory: edge-keyd provision"
tell "Each gateway gets its TPM (an swtpm with its own seeds and an EK certificate from the" \
	"'manufacturer'). The factory station runs 'edge-keyd provision': it creates the" \
	"attestation key and the WireGuard key inside the TPM (the key is sealed there), and" \
	"pre-registers the TPM's endorsement key (EK) in the gateway's tenant with the" \
	"provisioning token. It prints the EK id."
for i in 1 2 3; do
	fl_gw_setup "$i" || die "g$i: swtpm"
	echo "   $(gw "$i"): ${FL_GW_EK[$i]} EK, ${FL_GW_AK[$i]} attestation key"
	EK=$(fl_ekd "$i" provision 2>>"$FL_T/g$i/provision.log") || die "g$i: provision"
	echo "     EK id $EK"
done
tell "" "What the control plane now knows (GET /v1/tenants/{name}/registrations):"
for t in acme globex; do
	fl_api GET "/v1/tenants/$t/registrations" |
		jq -r '.registrations[] | "     \(.tenant): \(.label)  EK \(.ek_id[0:16])..."'
done

# ---------------------------------------------------------------------------------------------
say "In the field: edge-keyd enroll, then edge-keyd run"
tell "Enrollment is two round trips. The control plane checks the EK certificate, then" \
	"encrypts a secret to the EK that only this TPM can decrypt (MakeCredential /" \
	"ActivateCredential); the TPM then signs a quote over its PCRs and the WireGuard public" \
	"key. Only then does the gateway get a /32 in its tenant and become a WireGuard peer."
for i in 1 2 3; do
	echo "   $(gw "$i"):"
	fl_ekd "$i" enroll 2>&1 | indent
	[ "${PIPESTATUS[0]}" = 0 ] || die "g$i: enroll failed"
done
tell "" "What g1 keeps (enrollment.json): no private key, that stays sealed in the TPM."
show jq -c . "$FL_T/g1/state/enrollment.json"
tell "" "The daemons: each unseals its key into locked memory, hands it to WireGuard, wipes it," \
	"and dials out to the control plane."
for i in 1 2 3; do
	fl_gw_start "$i" || die "g$i: edge-keyd run"
done

# ---------------------------------------------------------------------------------------------
say "The control plane reaches every gateway through the tunnel the gateway opened"
for i in 1 2 3; do
	fl_wait_for 20 fl_ping_gw "$i" || surprise "no ping to g$i yet"
done
show ip netns exec "$FL_NS_CP" ping -c 1 -W 1 "$(fl_gw_addr 1)"
for i in 2 3; do
	expect "g$i: ping $(fl_gw_addr "$i") answers" fl_ping_gw "$i"
done
tell "" "g1's own view:"
fl_ekd 1 status 2>&1 | indent
tell "" "Nothing listens on a gateway: edge-keyd owns no socket at all. wireguard-go's UDP" \
	"socket only ever sees the answers to the gateway's own handshakes (the firewall drops" \
	"anything else); the TCP listener on 127.0.0.1 is the swtpm standing in for the TPM chip."
show ip netns exec "${FL_GW_NS[1]}" ss -ltunp
expect "a ping to g1's WAN address ${FL_GW_WAN[1]} gets no answer" \
	not quiet fl_cp ping -c 2 -i 0.2 -W 1 "${FL_GW_WAN[1]}"

# ---------------------------------------------------------------------------------------------
say "Tenants cannot reach each other, not even with spoofed addresses"
G1=$(fl_gw_addr 1) G2=$(fl_gw_addr 2) G3=$(fl_gw_addr 3) SPOOF=${FL_CP_TADDR[globex]}
tell "g1 (acme) has a route only to acme's range. Suppose an attacker owns g1: they freeze" \
	"edge-keyd, open the tunnel to every destination and route g3's address into it:"
fl_probe_install 3 || die "probe counters"
fl_attacker_begin 1 "$G3" "$G1" "$G2" "$SPOOF" || die "attacker setup"
D0=$(fl_isolation_drops)
for src in "$G1" "$G2" "$SPOOF"; do
	case $src in
	"$G1") what="its own address" ;;
	"$G2") what="g2's address (spoofed, acme)" ;;
	*) what="the control plane's globex address (spoofed)" ;;
	esac
	expect "g1 -> g3 ($G3) from $what: no answer" \
		not tryq ip netns exec "${FL_GW_NS[1]}" ping -c 2 -i 0.2 -W 1 -I "$src" "$G3"
done
fl_x ip -n "${FL_GW_NS[1]}" route replace "$G3/32" via "${FL_GW_WAN[3]}"
expect "g1 -> g3 ($G3) straight over the WAN: no answer" \
	not tryq ip netns exec "${FL_GW_NS[1]}" ping -c 2 -i 0.2 -W 1 "$G3"
D1=$(fl_isolation_drops)
tell "Why: the spoofed packets died in the control plane's WireGuard (a peer may only send" \
	"from its own /32: cryptokey routing); the one with g1's real address was dropped by" \
	"enrolld's nftables rule between tenant interfaces ($((D1 - D0)) packets); the one over" \
	"the WAN by g3's firewall. Counters in g3's namespace:"
echo "     arrived through its tunnel: $(fl_counter "${FL_GW_NS[3]}" fl_probe via_tunnel)," \
	"reached its WAN port: $(fl_counter "${FL_GW_NS[3]}" fl_probe via_wan)," \
	"delivered to g3: $(fl_counter "${FL_GW_NS[3]}" fl_probe delivered)"
fl_attacker_end 1 "$G3" "$G1" "$G2" "$SPOOF"
fl_wait_for 10 fl_ping_gw 1 || surprise "g1's tunnel did not come back after the attack"

# ---------------------------------------------------------------------------------------------
say "Health: a gateway loses its link, and comes back by itself"
tell "The control plane calls a gateway up while its receive counter moves within" \
	"3 x keepalive (here 3 x $FL_KA s); it checks every $FL_TICK s. Now g1's WAN link is cut:"
fl_link_cut 1
took=$(fl_wait_health 1 down $((3 * FL_KA + FL_TICK + 4)))
expect "GET /v1/devices/$(fl_gw_dev 1) says \"down\" after $took ms (bound $((3 * FL_KA + FL_TICK)) s)" \
	test "$took" != timeout
tell "The link comes back. Nobody does anything: the gateway's keepalives resume."
fl_link_restore 1
took=$(fl_wait_health 1 up $((3 * FL_KA + 10)))
expect "\"up\" again after $took ms" test "$took" != timeout
expect "ping $(fl_gw_addr 1) answers again" fl_wait_for 10 fl_ping_gw 1

# ---------------------------------------------------------------------------------------------
say "The control plane crashes (SIGKILL) and restarts"
fl_cp_kill9
tell "enrolld is gone, but the tunnels are not: WireGuard keeps running without it."
for i in 1 2 3; do
	expect "ping g$i with enrolld dead" fl_ping_gw "$i"
done
STRAY=$("$FL_WGCTL" genkey | "$FL_WGCTL" pubkey)
tell "While it is down, someone adds a peer to acme's interface by hand:"
fl_x "$FL_WGCTL" --backend uapi set "${FL_TIF[acme]}" peer "$STRAY" allowed-ips 10.61.0.250/32
fl_cp_start || die "enrolld did not restart"
tell "On restart enrolld adopts the running interfaces and reconciles them with its" \
	"database (the source of truth):"
grep -E "adopted|reconciled" "$FL_T/enrolld.log" | tail -n 4 | sed 's/^/     /'
stray_gone() { ! fl_cp_peers acme | grep -qxF "$STRAY"; }
expect "the hand-added peer is gone" fl_wait_for 10 stray_gone
for i in 1 2 3; do
	expect "ping g$i" fl_wait_for 10 fl_ping_gw "$i"
done

# ---------------------------------------------------------------------------------------------
say "Revocation: g2 is revoked through the API"
fl_say_cmd "curl -X POST $FL_URL/v1/devices/$(fl_gw_dev 2)/revoke"
fl_api POST "/v1/devices/$(fl_gw_dev 2)/revoke" | jq -c '{device_id, tenant, address, state, health}' |
	sed 's/^/     /'
tell "Its public key is removed from acme's interface: that is all it takes."
expect "ping $(fl_gw_addr 2) (g2): no answer" not fl_ping_gw 2 2
expect "g2 cannot reach the control plane either" \
	not quiet fl_gw 2 ping -c 2 -i 0.2 -W 1 "${FL_CP_TADDR[acme]}"
tell "And it cannot simply enroll again:"
fl_ekd 2 enroll 2>"$FL_T/g2/revoked.log"
rc=$?
indent <"$FL_T/g2/revoked.log"
expect "edge-keyd enroll refused (device_revoked)" \
	bash -c "[ $rc != 0 ] && grep -q device_revoked '$FL_T/g2/revoked.log'"
for i in 1 3; do
	expect "g$i is untouched" fl_ping_gw "$i"
done

# ---------------------------------------------------------------------------------------------
say "Key rotation: g3 gets a new WireGuard key and keeps its address"
OLD=$(fl_gw_pub 3) ADDR=$(fl_gw_addr 3)
tell "The TPM seals a new key; the attested enrollment runs again with it; the control plane" \
	"swaps the key on the same device and address; the old key is gone on both sides."
fl_ekd 3 rotate 2>&1 | indent
NEW=$(fl_gw_pub 3)
echo "     old key ${OLD:0:12}...  new key ${NEW:0:12}...  address $(fl_gw_addr 3)"
expect "new key, same address" test "$NEW" != "$OLD" -a "$(fl_gw_addr 3)" = "$ADDR"
expect "the control plane has the new key and not the old one" \
	test "$(fl_cp_peers globex)" = "$NEW"
expect "ping $ADDR (g3) answers" fl_wait_for 20 fl_ping_gw 3
fl_wait_health 3 up 10 >/dev/null
sleep "$FL_TICK" # one more health tick, so the table shows the new key's handshake

# ---------------------------------------------------------------------------------------------
say "The fleet, as the control plane's API reports it: enrollctl devices (GET /v1/devices)"
fl_fleet_table

# ---------------------------------------------------------------------------------------------
say "Cleaning up"
fl_cleanup
expect "no namespace, process, socket or file of the demo is left" fl_all_gone
echo
if [ "$SURPRISES" -gt 0 ]; then
	echo "${RED}The demo ran, but $SURPRISES thing(s) did not go as described above.${OFF}"
	exit 1
fi
echo "Done. docs/demo.md explains each step; tests/integration/fleet_e2e.sh checks them all."
