#!/bin/bash
# Health, end to end with real tunnels: a device enrolls, then brings up its own
# wireguard-go in its own network namespace, joined to the control plane's by a veth pair,
# and dials out (PersistentKeepalive 2 s). The control plane sees it up and reaches it
# through the tunnel. Its link is cut: it must be reported down within 3 x keepalive + one
# health tick; the link comes back: up again. Each transition is in the event stream and
# the metrics.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
ed_init health
KA=2   # keepalive, seconds
TICK=1 # health interval, seconds (ed_conf)
NSD=ed-hdev-$$
ED_NAMESPACES+=("$NSD")
IF=$(ed_ifname h)
IFD=$(ed_ifname d)
VC=ed${TAG}vc VD=ed${TAG}vd
ed_conf
ed_start

ip netns add "$NSD" || { echo "cannot create $NSD"; exit 1; }
ip -n "$NSD" link set lo up
ip link add "$VC" netns "$NS" type veth peer name "$VD" netns "$NSD" || { echo "veth"; exit 1; }
ip -n "$NS" addr add 192.0.2.1/24 dev "$VC"
ip -n "$NSD" addr add 192.0.2.2/24 dev "$VD"
ip -n "$NS" link set "$VC" up
ip -n "$NSD" link set "$VD" up

api POST /v1/tenants "$ADMIN" "{\"name\":\"site\",\"prefix\":\"10.99.0.0/28\",\"interface\":\"$IF\",\"listen_port\":35140,\"endpoint\":\"192.0.2.1:35140\",\"keepalive\":$KA}" >/dev/null
check "tenant with keepalive $KA s" [ "$(body .keepalive)" = $KA ]
api POST /v1/tenants/site/tokens "$ADMIN" '{"uses":1}' >/dev/null
TOK=$(body .token)
ip netns exec "$NS" curl -s -N -H "Authorization: Bearer $ADMIN" "$U/v1/events?after=0" \
	>"$T/events" 2>/dev/null &
ED_BG_PIDS+=($!)

ed_swtpm dev
"$ENROLL_DEV" genkey "$T/dev.key" >/dev/null
OUT=$(ed_enroll dev --token "$TOK" --wg-private "$T/dev.key")
check "the device enrolled" [ "$(jq -r .http_status <<<"$OUT")" = 200 ]
ID=$(jq -r .response.device_id <<<"$OUT")
ADDR=$(jq -r .response.address <<<"$OUT")
state() {
	api GET "/v1/devices/$ID" "$ADMIN" >/dev/null
	body .health
}
check "a device that never shook hands is 'never'" [ "$(state)" = never ]

# The device side, configured from the enrollment answer (as edge-keyd would).
ip netns exec "$NSD" wireguard-go "$IFD" >"$T/wgdev.log" 2>&1
for _ in $(seq 100); do [ -S "/var/run/wireguard/$IFD.sock" ] && break; sleep 0.05; done
"$WGCTL" --backend uapi set "$IFD" private-key "$T/dev.key" \
	peer "$(jq -r .response.server_public_key <<<"$OUT")" \
	endpoint "$(jq -r .response.endpoint <<<"$OUT")" \
	allowed-ips "$(jq -r '.response.allowed_ips | join(",")' <<<"$OUT")" \
	persistent-keepalive "$(jq -r .response.persistent_keepalive <<<"$OUT")"
ip -n "$NSD" addr add "$ADDR" dev "$IFD"
ip -n "$NSD" link set "$IFD" up
ip -n "$NSD" route add 10.99.0.0/28 dev "$IFD"

wait_state() { # STATE TIMEOUT_S -> prints the seconds it took
	local want=$1 limit=$2 t0 now
	t0=$(date +%s%N)
	while :; do
		[ "$(state)" = "$want" ] && { echo $(( ($(date +%s%N) - t0) / 1000000 )); return 0; }
		now=$(date +%s%N)
		[ $(( (now - t0) / 1000000 )) -gt $((limit * 1000)) ] && { echo timeout; return 1; }
		sleep 0.2
	done
}

echo "== up"
took=$(wait_state up 10)
check "the device is up once its keepalives arrive (${took} ms)" [ "$took" != timeout ]
check "the control plane reaches the device through the tunnel" \
	ip netns exec "$NS" ping -c 1 -W 2 "${ADDR%/32}"
api GET "/v1/devices/$ID" "$ADMIN" >/dev/null
check "the device shows a handshake and counters" \
	bash -c "jq -e '.last_handshake > 0 and .rx_bytes > 0 and .tx_bytes > 0 and .on_interface and .since > 0' $T/body >/dev/null"
check "metrics count it up" bash -c \
	"ip netns exec $NS curl -s $U/metrics | grep -q 'enrolld_devices{tenant=\"site\",state=\"up\"} 1'"
sleep $((3 * KA)) # steady keepalives must not flap it down
check "it stays up while keepalives flow (${KA} s keepalive, ${TICK} s tick)" [ "$(state)" = up ]

echo "== link cut"
ip -n "$NSD" link set "$VD" down
LIMIT=$((3 * KA + TICK))
took=$(wait_state down $((LIMIT + 3)))
echo "     down after $took ms (bound: ${LIMIT} s + 1 s of polling and request slack)"
check "reported down within 3 x keepalive + one tick" \
	bash -c "[ '$took' != timeout ] && [ '$took' -le $(( (LIMIT + 1) * 1000 )) ]"
check "not reported down before a keepalive could have been missed" \
	bash -c "[ '$took' != timeout ] && [ '$took' -ge $(( (KA - 1) * 1000 )) ]"
check "metrics count it down" bash -c \
	"ip netns exec $NS curl -s $U/metrics | grep -q 'enrolld_devices{tenant=\"site\",state=\"down\"} 1'"
sleep 2
ip netns exec "$NS" curl -s "$U/metrics" >"$T/metrics.down"
check "metrics: the longest-down gauge counts the seconds since it went down" bash -c \
	"awk '/^enrolld_devices_down_longest_seconds\\{tenant=\"site\"\\}/ { exit !(\$2 >= 1 && \$2 <= 30) }
	     END { if (NR == 0) exit 1 }' $T/metrics.down &&
	 grep -q '^enrolld_devices_down_longest_seconds{tenant=\"site\"} [0-9]' $T/metrics.down"
check "metrics: the /28's pool is 13 addresses (14 usable less the control plane's), 1 held" bash -c \
	"grep -qx 'enrolld_address_pool_size{tenant=\"site\"} 13' $T/metrics.down &&
	 grep -qx 'enrolld_address_pool_used{tenant=\"site\"} 1' $T/metrics.down"
if command -v promtool >/dev/null; then
	check "promtool accepts the whole /metrics page" bash -c "promtool check metrics <$T/metrics.down"
fi

echo "== link back"
ip -n "$NSD" link set "$VD" up
took=$(wait_state up $((3 * KA + 5)))
check "up again after the link returns (${took} ms)" [ "$took" != timeout ]
check "metrics: nobody down, the longest-down gauge is back to 0" ed_until 10 bash -c \
	"ip netns exec $NS curl -s $U/metrics | grep -qx 'enrolld_devices_down_longest_seconds{tenant=\"site\"} 0'"

# the device's events in order, into $T/seq: enrolled, up, down, up?
device_events() {
	grep "^data: " "$T/events" | cut -c7- | jq -r "select(.device_id == \"$ID\") | .type" |
		tr '\n' ' ' >"$T/seq"
	grep -q '^enrolled up down up' "$T/seq"
}
check "the event stream shows enrolled, up, down, up" ed_until 10 device_events
echo "     events of the device: $(cat "$T/seq")"

ed_done
