#!/bin/bash
# The seed playbook, literally (docs/x509-enrollment.md "Three commands"): a gateway with
# no edge-keyd and no TPM, only a factory device certificate, runs
#     wg genkey > private.key
#     curl --cert enroll.pem --cacert cp-ca.pem https://cp/v1/peer --json '{"public_key": ...}' \
#         | jq -r .wg_config > xq0.conf
#     wg-quick up xq0.conf      (wireguard-go, WG_QUICK_USERSPACE_IMPLEMENTATION)
# with the one substitution the docs name (the key file's path), behind the WAN firewall
# that drops all inbound; then the control plane pings the device's /32.
set -u
. "$(dirname "$0")/x509_lib.sh"
xq_init playbook
xq_conf
ed_start

check "tenant created" [ "$(xq_tenant acme 10.78.0.0/24 a 41100)" = 201 ]
check "factory CA A trusted by acme" [ "$(xq_trust_ca acme "$T/fa")" = 201 ]
check "require_tpm is on by default" [ "$(xapi GET /v1/tenants/acme "$ADMIN"; body .require_tpm)" = "200true" ]
check "admin turns require_tpm off" \
	[ "$(xapi PUT /v1/tenants/acme/policy "$ADMIN" '{"require_tpm": false}')" = 200 ]
xq_device "$T/fa" gw1

# --- on the gateway: the three commands (the key file lives in the temp "etc") ---
ETC=$T/gw/etc/wireguard
mkdir -p "$ETC"
GWIF=xq$TAG
ED_IFNAMES+=("$GWIF")
(
	set -e
	umask 077
	cd "$ETC"
	ip netns exec "$GW" wg genkey >private.key
	ip netns exec "$GW" curl -sf --cert "$T/dev/gw1/enroll.pem" --cacert "$T/cp-ca.pem" \
		--resolve "cp:$PORT:10.77.0.1" "https://cp:$PORT/v1/peer" \
		--json "{\"public_key\": \"$(wg pubkey <private.key)\"}" |
		jq -r .wg_config |
		sed "s#/etc/wireguard/private.key#$ETC/private.key#" >"$GWIF.conf"
)
check "the playbook's curl | jq produced a config" [ -s "$ETC/$GWIF.conf" ]
check "the config's PostUp sets the key from the file (no PrivateKey line)" \
	bash -c "grep -qx 'PostUp = wg set %i private-key $ETC/private.key' '$ETC/$GWIF.conf' && ! grep -q '^PrivateKey' '$ETC/$GWIF.conf'"
check "the private key is not in the config" bash -c "! grep -qF \"\$(cat '$ETC/private.key')\" '$ETC/$GWIF.conf'"
ADDR=$(sed -n 's/^Address = \([0-9.]*\)\/32.*/\1/p' "$ETC/$GWIF.conf")
check "the device got the lowest free /32" [ "$ADDR" = 10.78.0.2 ]

# the WAN firewall: nothing inbound but answers and the tunnel
ip netns exec "$GW" nft -D WG_IF="$GWIF" -f "$ED_ROOT/edge-keyd/wan-firewall.nft" ||
	check "WAN firewall loads" false
ip netns exec "$GW" env WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go \
	WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 wg-quick up "$ETC/$GWIF.conf" \
	>>"$T/wgquick.log" 2>&1
check "wg-quick up succeeds" [ $? = 0 ]
check "the interface has the key from the file" \
	[ "$(ip netns exec "$GW" wg show "$GWIF" public-key)" = "$(wg pubkey <"$ETC/private.key")" ]

ok=1
for _ in $(seq 40); do
	ip netns exec "$NS" ping -c1 -W1 "$ADDR" >/dev/null 2>&1 && { ok=0; break; }
done
check "the control plane pings the device's /32 through the tunnel" [ $ok = 0 ]
check "inbound to the gateway's WAN address is dropped" \
	bash -c "! ip netns exec '$NS' ping -c1 -W1 10.77.0.2 >/dev/null 2>&1"
check "inbound TCP to the gateway is dropped" \
	bash -c "! ip netns exec '$NS' timeout 3 bash -c 'echo > /dev/tcp/10.77.0.2/22' 2>/dev/null"

check "the inventory shows attestation x509" \
	[ "$(xapi GET /v1/devices "$ADMIN"; body '.devices[0].attestation')" = "200x509" ]

# GET /v1/peer: the current config again
check "GET /v1/peer returns the config again" [ "$(peer GET gw1)" = 200 ]
check "same address in it" [ "$(body .address)" = "$ADDR/32" ]

# rotation: same certificate, new key -> same address, old key gone from the interface
NEWPUB=$(wg genkey | wg pubkey)
check "same certificate, new key: 200" [ "$(peer POST gw1 "{\"public_key\":\"$NEWPUB\"}")" = 200 ]
check "is a rotation" [ "$(body .result)" = rotated ]
check "keeps the address" [ "$(body .address)" = "$ADDR/32" ]
check "the tenant interface holds the new key only" \
	[ "$("$WGCTL" --backend uapi show "$(xq_ifname a)" | tail -n +2 | cut -f1)" = "$NEWPUB" ]

# another certificate cannot take this device's address
xq_device "$T/fa" gw2
check "a second certificate enrolls: 200" [ "$(peer POST gw2 "{\"public_key\":\"$(wg genkey | wg pubkey)\"}")" = 200 ]
check "and gets another address" [ "$(body .address)" = 10.78.0.3/32 ]
check "a second certificate cannot take the first device's key" \
	[ "$(peer POST gw2 "{\"public_key\":\"$NEWPUB\"}")" = 409 ]

ip netns exec "$GW" env WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go \
	wg-quick down "$ETC/$GWIF.conf" >>"$T/wgquick.log" 2>&1
check "wg-quick down" [ $? = 0 ]
[ "$fails" = 0 ] || { echo "--- wg-quick"; tail -n 20 "$T/wgquick.log"; }
ed_done
