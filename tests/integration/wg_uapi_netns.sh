#!/bin/bash
# The UAPI backend against real userspace WireGuard: two network namespaces joined by a
# veth pair, wireguard-go in each, configured only through our module (build/tests/progs/
# wgctl over common/wg.h; `ip` only for links and addresses). Checks:
#   - both interfaces are seen as userspace (backend selection) and listed;
#   - what we set reads back, and our dump equals `wg show IF dump` (an independent
#     reader) apart from the live counters;
#   - the tunnel carries a ping; the dump shows a real handshake time and rx/tx
#     counters that grow with more traffic;
#   - a bad value is refused by wireguard-go and its errno line reaches wg_ctl_last_error;
#   - a peer removed through the module stops the traffic.
# Everything (namespaces, daemons, sockets, temp files) goes away on every path.
set -u
B=${B:-build}
WGCTL=$B/tests/progs/wgctl
[ -x "$WGCTL" ] || { echo "wgctl not built ($WGCTL)"; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (namespaces, TUN)"; exit 77; }
for t in wireguard-go ip ping; do
	command -v "$t" >/dev/null || { echo "skip: $t not installed"; exit 77; }
done
[ -c /dev/net/tun ] || { echo "skip: no /dev/net/tun"; exit 77; }
HAVE_WG=0
command -v wg >/dev/null && HAVE_WG=1

# Unique names: other tests run at the same time and /var/run/wireguard is shared.
S=$$$((RANDOM % 100))
NSA=wguA$S NSB=wguB$S
WGA=wguA$S WGB=wguB$S # interface names (<= 15 characters)
VA=wuvA$S VB=wuvB$S
SOCKDIR=/var/run/wireguard
T=$(mktemp -d /tmp/wg_uapi_netns.XXXXXX)
PIDS=()

cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	ip netns del "$NSA" 2>/dev/null
	ip netns del "$NSB" 2>/dev/null
	rm -f "$SOCKDIR/$WGA.sock" "$SOCKDIR/$WGB.sock"
	rm -rf "$T"
}
trap cleanup EXIT

fail() {
	echo "FAIL: $*"
	for f in "$T"/*.log; do [ -s "$f" ] && { echo "--- $f"; tail -n 20 "$f"; }; done
	exit 1
}

step() { echo "== $*"; }

# field N of the first peer line of `wgctl show` (1-based, tab-separated)
peer_field() { # ifname field
	"$WGCTL" show "$1" | sed -n 2p | cut -f "$2"
}

step "namespaces $NSA, $NSB joined by $VA/$VB"
ip netns add "$NSA" || fail "netns add"
ip netns add "$NSB" || fail "netns add"
ip link add "$VA" netns "$NSA" type veth peer name "$VB" netns "$NSB" || fail "veth"
ip -n "$NSA" addr add 192.0.2.1/24 dev "$VA"
ip -n "$NSB" addr add 192.0.2.2/24 dev "$VB"
for ns in "$NSA" "$NSB"; do ip -n "$ns" link set lo up; done
ip -n "$NSA" link set "$VA" up
ip -n "$NSB" link set "$VB" up

step "wireguard-go $WGA in $NSA, $WGB in $NSB"
ip netns exec "$NSA" wireguard-go -f "$WGA" >"$T/wgA.log" 2>&1 &
PIDS+=($!)
ip netns exec "$NSB" wireguard-go -f "$WGB" >"$T/wgB.log" 2>&1 &
PIDS+=($!)
for i in $(seq 100); do
	[ -S "$SOCKDIR/$WGA.sock" ] && [ -S "$SOCKDIR/$WGB.sock" ] && break
	sleep 0.05
done
[ -S "$SOCKDIR/$WGA.sock" ] && [ -S "$SOCKDIR/$WGB.sock" ] || fail "UAPI sockets did not appear"

[ "$("$WGCTL" backend "$WGA")" = uapi ] || fail "$WGA not seen as userspace"
[ "$("$WGCTL" backend "wguNone$S")" = kernel ] || fail "absent name not sent to the kernel"
"$WGCTL" --backend uapi list >"$T/list" || fail "wgctl list"
grep -qx "$WGA" "$T/list" && grep -qx "$WGB" "$T/list" || fail "list misses our interfaces"

step "keys and configuration through wgctl"
(umask 077 && "$WGCTL" genkey >"$T/a.key" && "$WGCTL" genkey >"$T/b.key") || fail genkey
PUBA=$("$WGCTL" pubkey <"$T/a.key") && PUBB=$("$WGCTL" pubkey <"$T/b.key") || fail pubkey
PORTA=$((20000 + RANDOM % 20000)) PORTB=$((20000 + RANDOM % 20000))

"$WGCTL" set "$WGA" private-key "$T/a.key" listen-port "$PORTA" \
	peer "$PUBB" endpoint "192.0.2.2:$PORTB" allowed-ips 10.201.0.2/32,fd00:201::2/128 \
	persistent-keepalive 1 || fail "set $WGA"
"$WGCTL" set "$WGB" private-key "$T/b.key" listen-port "$PORTB" \
	peer "$PUBA" allowed-ips 10.201.0.1/32 || fail "set $WGB"

ip -n "$NSA" addr add 10.201.0.1/24 dev "$WGA"
ip -n "$NSB" addr add 10.201.0.2/24 dev "$WGB"
ip -n "$NSA" link set "$WGA" up || fail "link up $WGA"
ip -n "$NSB" link set "$WGB" up || fail "link up $WGB"

"$WGCTL" show "$WGA" >"$T/showA" || fail "show $WGA"
dev=$(sed -n 1p "$T/showA")
[ "$(cut -f2 <<<"$dev")" = "$PUBA" ] || fail "public key not derived from the private key: $dev"
[ "$(cut -f3 <<<"$dev")" = "$PORTA" ] || fail "listen port: $dev"
[ "$(sed -n 2p "$T/showA" | cut -f1,3,4,8)" = \
	"$PUBB	192.0.2.2:$PORTB	10.201.0.2/32,fd00:201::2/128	1" ] ||
	fail "peer of $WGA reads back wrong: $(sed -n 2p "$T/showA")"

step "the tunnel carries a ping"
ok=0
for i in $(seq 20); do
	ip netns exec "$NSA" ping -c 1 -W 1 10.201.0.2 >/dev/null 2>&1 && { ok=1; break; }
done
[ $ok = 1 ] || fail "no ping through the tunnel"

hs=$(peer_field "$WGA" 5) rx1=$(peer_field "$WGA" 6) tx1=$(peer_field "$WGA" 7)
now=$(date +%s)
[ "$hs" -gt $((now - 60)) ] && [ "$hs" -le $((now + 5)) ] || fail "handshake time '$hs' (now $now)"
[ "$rx1" -gt 0 ] && [ "$tx1" -gt 0 ] || fail "counters rx=$rx1 tx=$tx1"
[ "$(peer_field "$WGB" 5)" -gt 0 ] || fail "$WGB reports no handshake"
# B learnt A's endpoint from the handshake (roaming): the dump shows it
[ "$(peer_field "$WGB" 3)" = "192.0.2.1:$PORTA" ] || fail "B's endpoint '$(peer_field "$WGB" 3)'"

ip netns exec "$NSA" ping -c 5 -i 0.2 -W 1 10.201.0.2 >/dev/null 2>&1 || fail "second ping"
rx2=$(peer_field "$WGA" 6) tx2=$(peer_field "$WGA" 7)
[ "$rx2" -gt "$rx1" ] && [ "$tx2" -gt "$tx1" ] ||
	fail "counters did not grow: rx $rx1 -> $rx2, tx $tx1 -> $tx2"
echo "handshake $hs, rx $rx1 -> $rx2, tx $tx1 -> $tx2"

if [ $HAVE_WG = 1 ]; then
	step "our dump equals wg show dump (counters and handshake masked)"
	mask() { awk -F'\t' -v OFS='\t' 'NR > 1 { $5 = $6 = $7 = "x" } { print }'; }
	"$WGCTL" show "$WGA" | mask >"$T/ours"
	wg show "$WGA" dump | mask >"$T/theirs"
	diff -u "$T/theirs" "$T/ours" || fail "wgctl show differs from wg show dump"
fi

step "a value wireguard-go refuses: its errno line reaches wg_ctl_last_error"
# B's port is taken in B's namespace by B itself: a second bind there must fail.
ip netns exec "$NSB" wireguard-go -f "wguC$S" >"$T/wgC.log" 2>&1 &
PIDS+=($!)
for i in $(seq 100); do [ -S "$SOCKDIR/wguC$S.sock" ] && break; sleep 0.05; done
if "$WGCTL" set "wguC$S" listen-port "$PORTB" 2>"$T/err"; then
	fail "a listen port in use was accepted"
fi
grep -q 'errno=' "$T/err" || fail "no errno detail in: $(cat "$T/err")"
cat "$T/err"
kill "${PIDS[2]}" 2>/dev/null

step "a peer removed through the module stops the traffic"
"$WGCTL" set "$WGA" peer "$PUBB" remove || fail "remove"
[ "$("$WGCTL" show "$WGA" | wc -l)" -eq 1 ] || fail "peer still listed after remove"
if ip netns exec "$NSA" ping -c 2 -i 0.2 -W 1 10.201.0.2 >/dev/null 2>&1; then
	fail "ping still passes after the peer was removed"
fi

echo "PASS"
exit 0
