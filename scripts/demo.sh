#!/bin/bash
# The demo: an outbound-only WireGuard gateway and a control plane, in two network
# namespaces on this machine, driven only through this project's WireGuard module
# (common/wg.h, via the small wgctl tool). It shows the model the whole product rests on:
#
#   1. the gateway's firewall drops every inbound packet it did not ask for;
#   2. the gateway dials out to the control plane and keeps the tunnel warm
#      (PersistentKeepalive) - the control plane never needs the gateway's address;
#   3. the control plane reaches the gateway's /32 back down that tunnel;
#   4. the control plane revokes the gateway by removing one public key.
#
# It installs what it needs, leaves nothing running, and touches nothing outside the
# namespaces it creates. Run as root (or it re-runs itself with sudo).
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	exec sudo -E "$0" "$@"
fi

./scripts/install-deps.sh
echo "== building"
make -s -j"$(nproc)" all >/dev/null

B=${B:-build}
WGCTL=$B/tests/progs/wgctl
SUF=$$
NS_CP=ew-demo-cp-$SUF
NS_GW=ew-demo-gw-$SUF
IF_CP=ewcp$SUF
IF_GW=ewgw$SUF
VETH_CP=ewvc$SUF
VETH_GW=ewvg$SUF
TMP=$(mktemp -d)
PIDS=()

cleanup() {
	set +e
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$NS_CP" 2>/dev/null
	ip netns del "$NS_GW" 2>/dev/null
	rm -f "/var/run/wireguard/$IF_CP.sock" "/var/run/wireguard/$IF_GW.sock"
	rm -rf "$TMP"
}
trap cleanup EXIT

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
run() { printf '   $ %s\n' "$*"; "$@" 2>&1 | sed 's/^/     /'; }

wait_sock() {
	for _ in $(seq 100); do
		[ -S "/var/run/wireguard/$1.sock" ] && return 0
		sleep 0.05
	done
	echo "wireguard-go did not create /var/run/wireguard/$1.sock" >&2
	return 1
}

say "Two hosts: a control plane (198.51.100.1) and a gateway (198.51.100.2) on a private link"
ip netns add "$NS_CP"
ip netns add "$NS_GW"
ip link add "$VETH_CP" netns "$NS_CP" type veth peer name "$VETH_GW" netns "$NS_GW"
ip -n "$NS_CP" addr add 198.51.100.1/24 dev "$VETH_CP"
ip -n "$NS_GW" addr add 198.51.100.2/24 dev "$VETH_GW"
for ns in "$NS_CP" "$NS_GW"; do
	ip -n "$ns" link set lo up
done
ip -n "$NS_CP" link set "$VETH_CP" up
ip -n "$NS_GW" link set "$VETH_GW" up

say "The gateway's WAN firewall: drop every inbound packet that is not part of a flow it started"
ip netns exec "$NS_GW" nft -D WG_IF="$IF_GW" -f edge-keyd/wan-firewall.nft
run ip netns exec "$NS_GW" nft list ruleset

say "Userspace WireGuard (wireguard-go) in each namespace"
mkdir -p /var/run/wireguard
ip netns exec "$NS_CP" wireguard-go -f "$IF_CP" >"$TMP/wg-cp.log" 2>&1 &
PIDS+=($!)
ip netns exec "$NS_GW" wireguard-go -f "$IF_GW" >"$TMP/wg-gw.log" 2>&1 &
PIDS+=($!)
wait_sock "$IF_CP"
wait_sock "$IF_GW"

say "Keys: each side makes its own; only public keys are exchanged"
(umask 077; "$WGCTL" genkey >"$TMP/cp.key"; "$WGCTL" genkey >"$TMP/gw.key")
CP_PUB=$("$WGCTL" pubkey <"$TMP/cp.key")
GW_PUB=$("$WGCTL" pubkey <"$TMP/gw.key")
echo "     control plane public key: $CP_PUB"
echo "     gateway public key:       $GW_PUB"

say "Control plane: listens on UDP 51820, knows the gateway only by its key and its /32"
run ip netns exec "$NS_CP" "$WGCTL" set "$IF_CP" private-key "$TMP/cp.key" listen-port 51820 \
	peer "$GW_PUB" allowed-ips 10.99.0.2/32
ip -n "$NS_CP" addr add 10.99.0.1/24 dev "$IF_CP"
ip -n "$NS_CP" link set "$IF_CP" up

say "Gateway: dials out to the control plane and keeps the tunnel warm every 5 s"
run ip netns exec "$NS_GW" "$WGCTL" set "$IF_GW" private-key "$TMP/gw.key" \
	peer "$CP_PUB" endpoint 198.51.100.1:51820 allowed-ips 10.99.0.0/24 persistent-keepalive 5
ip -n "$NS_GW" addr add 10.99.0.2/32 dev "$IF_GW"
ip -n "$NS_GW" link set "$IF_GW" up
ip -n "$NS_GW" route add 10.99.0.0/24 dev "$IF_GW"

say "Before the gateway speaks, nothing from outside reaches it (the firewall drops it)"
if ip netns exec "$NS_CP" ping -c1 -W1 198.51.100.2 >/dev/null 2>&1; then
	echo "     unexpected: the gateway answered an unsolicited ping" >&2
	exit 1
fi
echo "     ping 198.51.100.2 from the control plane: no answer, as intended"

say "Within a keepalive the gateway has dialed out; the control plane pings its /32"
for _ in $(seq 30); do
	ip netns exec "$NS_CP" ping -c1 -W1 10.99.0.2 >/dev/null 2>&1 && break
	sleep 0.5
done
run ip netns exec "$NS_CP" ping -c3 -i0.3 10.99.0.2

say "What the control plane sees (read through our UAPI backend)"
run ip netns exec "$NS_CP" "$WGCTL" show "$IF_CP"

say "Revocation: the control plane removes the gateway's public key"
run ip netns exec "$NS_CP" "$WGCTL" set "$IF_CP" peer "$GW_PUB" remove
if ip netns exec "$NS_CP" ping -c2 -W1 10.99.0.2 >/dev/null 2>&1; then
	echo "     unexpected: the revoked gateway still answers" >&2
	exit 1
fi
echo "     ping 10.99.0.2: no answer - the gateway is no longer a peer"

say "Done: namespaces and processes are removed on exit"
