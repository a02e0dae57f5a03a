#!/bin/bash
# enrolld's API end to end: a real daemon (userspace WireGuard, LMDB in a temp dir) in a
# network namespace, devices simulated by build/tests/progs/enroll_dev on fresh swtpm TPMs
# (device side: edge-keyd/tpm), everything on the namespace's loopback.
#
# Tenants; enrollment tokens (uses, expiry, revocation); factory registrations (the
# provisioning token may only add them); enrollment (the peer is on the interface when the
# answer comes), rotation (same id and address, old key gone), revocation (peer gone
# before the answer), reinstatement; attestation failures (wrong secret, replayed session,
# PCR policy) with their reason codes and metrics; device listing with filters and
# cursors; the tenant-scope matrix over every endpoint; malformed bodies (4xx, nothing
# changes); the event stream; restart (reconciliation rebuilds the interfaces).
set -u
. "$(dirname "$0")/enrolld_lib.sh"
ed_init api

TA=tenant-acme-token-0123456789
TB=tenant-beta-token-0123456789
ed_tenant_token acme "$TA"
ed_tenant_token beta "$TB"
IFA=$(ed_ifname a)
IFB=$(ed_ifname b)
IFG=$(ed_ifname g)
ed_conf
ed_start

# ---- tenants ---------------------------------------------------------------------------------
echo "== tenants"
ZERO=0000000000000000000000000000000000000000000000000000000000000000
FF=ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff
check "admin creates tenant acme (201)" [ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"acme\",\"prefix\":\"10.91.0.0/28\",\"interface\":\"$IFA\",\"listen_port\":35101,\"endpoint\":\"192.0.2.1:35101\",\"keepalive\":5}")" = 201 ]
check "its address is the first usable and the interface is up" \
	[ "$(body .address)/$(body .interface_up)" = "10.91.0.1/true" ]
SERVER_PUB_A=$(body .server_public_key)
check "admin creates tenant beta with a PCR policy (PCR 7 = zero, as a fresh TPM has)" \
	[ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"beta\",\"prefix\":\"10.92.0.0/29\",\"prefix6\":\"fd00:92::/64\",\"interface\":\"$IFB\",\"listen_port\":35102,\"endpoint\":\"192.0.2.1:35102\",\"pcr_policy\":[{\"index\":7,\"sha256\":\"$ZERO\"}]}")" = 201 ]
check "beta's challenge asks for sha256:7" [ "$(body .pcr_selection)" = "sha256:7" ]
check "admin creates tenant gamma whose PCR policy no device meets" [ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"gamma\",\"prefix\":\"10.93.0.0/29\",\"interface\":\"$IFG\",\"listen_port\":35103,\"endpoint\":\"192.0.2.1:35103\",\"pcr_policy\":[{\"index\":7,\"sha256\":\"$FF\"}]}")" = 201 ]
check "the interface listens on its port with the tenant's key" \
	[ "$("$WGCTL" --backend uapi show "$IFA" | head -1 | cut -f2,3)" = "$SERVER_PUB_A	35101" ]
check "the control plane's address is on the interface" \
	bash -c "ip -n $NS -4 addr show $IFA | grep -q 'inet 10.91.0.1/28'"
check "the prefix routes through the interface" \
	bash -c "ip -n $NS route show 10.91.0.0/28 | grep -q 'dev $IFA'"
check "nftables forbids forwarding between the tenants' interfaces" \
	bash -c "ip netns exec $NS nft list table inet enrolld | grep -q 'iifname \"$IFA\" oifname @tenant_ifs oifname != \"$IFA\" .*drop'"
check "the key file is 0600" [ "$(stat -c %a "$T/db/keys/acme.key")" = 600 ]
check "duplicate tenant name is 409" [ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"acme\",\"prefix\":\"10.94.0.0/28\",\"interface\":\"$(ed_ifname x)\",\"listen_port\":35104,\"endpoint\":\"e:1\"}")" = 409 ]
check "overlapping prefix is 409" [ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"delta\",\"prefix\":\"10.91.0.0/24\",\"interface\":\"$(ed_ifname y)\",\"listen_port\":35105,\"endpoint\":\"e:1\"}")" = 409 ]
check "a prefix with host bits is 400" [ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"delta\",\"prefix\":\"10.95.0.1/24\",\"interface\":\"$(ed_ifname y)\",\"listen_port\":35105,\"endpoint\":\"e:1\"}")" = 400 ]
check "admin lists 3 tenants" bash -c "[ \$(ip netns exec $NS curl -s -H 'Authorization: Bearer $ADMIN' $U/v1/tenants | jq '.tenants | length') = 3 ]"
check "a tenant token lists only its own tenant" bash -c \
	"[ \"\$(ip netns exec $NS curl -s -H 'Authorization: Bearer $TA' $U/v1/tenants | jq -c '[.tenants[].name]')\" = '[\"acme\"]' ]"

# ---- tokens --------------------------------------------------------------------------------
echo "== enrollment tokens"
check "tenant token creates an enrollment token with 2 uses" \
	[ "$(api POST /v1/tenants/acme/tokens "$TA" '{"uses":2,"label":"batch 1"}')" = 201 ]
TOK=$(body .token)
TOK_ID=$(body .id)
check "the value is shown at creation" bash -c "[[ '$TOK' == et_* ]]"
api GET /v1/tenants/acme/tokens "$TA" >/dev/null
check "listing never shows the value" bash -c "! grep -q '$TOK' $T/body && [ \$(jq '.tokens | length' $T/body) = 1 ]"
api POST /v1/tenants/acme/tokens "$ADMIN" '{"uses":5,"expires_in":1}' >/dev/null
TOK_EXP=$(body .token)
api POST /v1/tenants/acme/tokens "$ADMIN" '{"uses":5}' >/dev/null
TOK_REV=$(body .token)
TOK_REV_ID=$(body .id)
check "revoking a token (200), twice is 409" bash -c \
	"[ \$(ip netns exec $NS curl -s -o /dev/null -w '%{http_code}' -X DELETE -H 'Authorization: Bearer $TA' $U/v1/tenants/acme/tokens/$TOK_REV_ID) = 200 ] &&
	 [ \$(ip netns exec $NS curl -s -o /dev/null -w '%{http_code}' -X DELETE -H 'Authorization: Bearer $TA' $U/v1/tenants/acme/tokens/$TOK_REV_ID) = 409 ]"
api POST /v1/tenants/beta/tokens "$TB" '{"uses":10}' >/dev/null
TOK_B=$(body .token)
api POST /v1/tenants/gamma/tokens "$ADMIN" '{"uses":10}' >/dev/null
TOK_G=$(body .token)

# ---- the event stream, from the start ----
ip netns exec "$NS" curl -s -N -H "Authorization: Bearer $ADMIN" "$U/v1/events?after=0" \
	>"$T/events.all" 2>/dev/null &
ED_BG_PIDS+=($!)
ip netns exec "$NS" curl -s -N -H "Authorization: Bearer $TB" "$U/v1/events" \
	>"$T/events.beta" 2>/dev/null &
ED_BG_PIDS+=($!)

# ---- enrollment ------------------------------------------------------------------------------
echo "== enrollment"
for d in d1 d2 d3 d4 d5 d6 d7; do ed_swtpm $d; done
OUT=$(ed_enroll d1 --token "$TOK")
check "d1 enrolls with the token (200)" [ "$(jq -r .http_status <<<"$OUT")" = 200 ]
D1=$(jq -r .response.device_id <<<"$OUT")
D1_ADDR=$(jq -r .response.address <<<"$OUT")
check "d1 gets the lowest free address" [ "$D1_ADDR" = 10.91.0.2/32 ]
check "the answer carries the server key, endpoint, prefix and keepalive" \
	[ "$(jq -r '[.response.server_public_key, .response.endpoint, .response.allowed_ips[0], .response.persistent_keepalive] | join(" ")' <<<"$OUT")" = \
	  "$SERVER_PUB_A 192.0.2.1:35101 10.91.0.0/28 5" ]
jq -r .response.wg_config <<<"$OUT" >"$T/wg_config"
check "wg_config is wg-quick text without a PrivateKey line" bash -c \
	"grep -qx 'AllowedIPs = 10.91.0.0/28' $T/wg_config && grep -qx 'Address = 10.91.0.2/32' $T/wg_config &&
	 ! grep -q '^PrivateKey' $T/wg_config"
D1_PUB=$(api GET "/v1/devices/$D1" "$ADMIN" >/dev/null; body .public_key)
check "the peer is on the interface with AllowedIPs = its /32" \
	bash -c "ed_peers() { $WGCTL --backend uapi show \$1 | tail -n +2 | cut -f1,4; }; ed_peers $IFA | grep -qx '$D1_PUB	10.91.0.2/32'"
OUT=$(ed_enroll d2 --token "$TOK")
check "d2 enrolls with the second use (10.91.0.3)" [ "$(jq -r .response.address <<<"$OUT")" = 10.91.0.3/32 ]
D2=$(jq -r .response.device_id <<<"$OUT")
OUT=$(ed_enroll d3 --token "$TOK")
check "a used-up token is refused: 403 token_used_up" \
	[ "$(jq -r '"\(.http_status) \(.response.error.code)"' <<<"$OUT")" = "403 token_used_up" ]
sleep 1.2
OUT=$(ed_enroll d3 --token "$TOK_EXP")
check "an expired token is refused: 403 token_expired" \
	[ "$(jq -r '"\(.http_status) \(.response.error.code)"' <<<"$OUT")" = "403 token_expired" ]
OUT=$(ed_enroll d3 --token "$TOK_REV")
check "a revoked token is refused: 403 token_revoked" \
	[ "$(jq -r '"\(.http_status) \(.response.error.code)"' <<<"$OUT")" = "403 token_revoked" ]
OUT=$(ed_enroll d3 --token "et_nonsense")
check "an unknown token is refused: 403 token_invalid" \
	[ "$(jq -r '"\(.http_status) \(.response.error.code)"' <<<"$OUT")" = "403 token_invalid" ]
OUT=$(ed_enroll d3)
check "no token and no registration: 403 not_registered" \
	[ "$(jq -r '"\(.http_status) \(.response.error.code)"' <<<"$OUT")" = "403 not_registered" ]

echo "== registrations"
EK3=$(ed_ek d3)
EK3_ID=$(jq -r .ek_id <<<"$EK3")
check "the provisioning token registers d3's EK in acme by its public area (201)" \
	[ "$(api POST /v1/tenants/acme/registrations "$PROV" "{\"ek_public\":\"$(jq -r .ek_public <<<"$EK3")\",\"label\":\"line 3\"}")" = 201 ]
check "the registration's EK id is the one attestation computes" [ "$(body .ek_id)" = "$EK3_ID" ]
check "registering it again is 409" \
	[ "$(api POST /v1/tenants/acme/registrations "$PROV" "{\"ek_id\":\"$EK3_ID\"}")" = 409 ]
check "the provisioning token may not list registrations (403)" \
	[ "$(api GET /v1/tenants/acme/registrations "$PROV")" = 403 ]
check "the tenant lists 1 registration" bash -c \
	"[ \$(ip netns exec $NS curl -s -H 'Authorization: Bearer $TA' $U/v1/tenants/acme/registrations | jq '.registrations | length') = 1 ]"
OUT=$(ed_enroll d3)
check "a registered EK enrolls without a token (200, 10.91.0.4)" \
	[ "$(jq -r '"\(.http_status) \(.response.address)"' <<<"$OUT")" = "200 10.91.0.4/32" ]
D3=$(jq -r .response.device_id <<<"$OUT")
EK4_ID=$(ed_ek d4 | jq -r .ek_id)
api POST /v1/tenants/acme/registrations "$ADMIN" "{\"ek_id\":\"$EK4_ID\"}" >/dev/null
check "removing a registration (200)" [ "$(api DELETE "/v1/tenants/acme/registrations/$EK4_ID" "$TA")" = 200 ]
OUT=$(ed_enroll d4)
check "a removed registration no longer authorises: 403 not_registered" \
	[ "$(jq -r '"\(.http_status) \(.response.error.code)"' <<<"$OUT")" = "403 not_registered" ]

echo "== attestation failures"
OUT=$(ed_enroll d4 --token "$TOK_B" --bad-secret)
check "a wrong credential secret: 403 secret_mismatch" \
	[ "$(jq -r '"\(.http_status) \(.response.error.code)"' <<<"$OUT")" = "403 secret_mismatch" ]
OUT=$(ed_enroll d5 --token "$TOK_G")
check "PCRs off the tenant's policy: 403 pcr_policy_mismatch" \
	[ "$(jq -r '"\(.http_status) \(.response.error.code)"' <<<"$OUT")" = "403 pcr_policy_mismatch" ]
OUT=$(ed_enroll d5 --token "$TOK_B" --twice --session-out "$T/d5.session")
check "a replayed completion: 410 session_used" \
	[ "$(jq -r '"\(.http_status) \(.response.error.code)"' <<<"$OUT")" = "410 session_used" ]
# A later challenge purges expired sessions; a used one that has not expired stays, so the
# replay keeps its answer (it used to turn into 404 unknown_session here).
# complete_code ID: the error code of a completion of session ID with a dummy response.
complete_code() {
	ip netns exec "$NS" curl -s -H 'Content-Type: application/json' --data-binary \
		'{"session":"'"$1"'","secret":"AA==","quote":"AA==","signature":"AA==","pcrs":"AA=="}' \
		"$U/v1/enroll/complete" | jq -r '.error.code'
}
ed_enroll d4 --token "$TOK_B" --bad-secret >/dev/null # (a second secret_mismatch)
check "the same replay after another challenge: still 410 session_used" \
	[ "$(complete_code "$(cat "$T/d5.session")")" = session_used ]
api GET "/v1/devices?tenant=beta" "$ADMIN" >/dev/null
check "... after the first completion enrolled d5 in beta (PCR policy met), IPv4 and IPv6" \
	[ "$(body '[.devices[] | .address, .address6] | join(",")')" = "10.92.0.2/32,fd00:92::2/128" ]
check "beta's interface has both control-plane addresses and d5's peer both /32 and /128" bash -c \
	"ip -n $NS addr show $IFB | grep -q 'inet6 fd00:92::1/64' &&
	 $WGCTL --backend uapi show $IFB | tail -n +2 | cut -f4 | grep -qx '10.92.0.2/32,fd00:92::2/128'"
D5=$(body '.devices[0].device_id')
check "metrics count failures by reason and enrollments by result" bash -c \
	"ip netns exec $NS curl -s $U/metrics > $T/metrics &&
	 grep -q 'enrolld_attestation_failures_total{reason=\"secret_mismatch\"} 2' $T/metrics &&
	 grep -q 'enrolld_attestation_failures_total{reason=\"pcr_policy_mismatch\"} 1' $T/metrics &&
	 grep -q 'enrolld_enrollments_total{result=\"new\"} 4' $T/metrics"
check "metrics count the store's commits and the writes in them" \
	awk '/^enrolld_store_commits_total / { c = $2 } /^enrolld_store_writes_total / { w = $2 }
		END { exit !(c >= 1 && w >= c) }' "$T/metrics"

echo "== rotation"
"$ENROLL_DEV" genkey "$T/d1.newkey" >"$T/d1.newpub"
NEWPUB=$(cat "$T/d1.newpub")
api POST /v1/tenants/acme/tokens "$ADMIN" '{"uses":10}' >/dev/null
TOK2=$(body .token)
OUT=$(ed_enroll d1 --token "$TOK2" --wg-private "$T/d1.newkey")
check "re-enrolling d1 with a new key is a rotation" \
	[ "$(jq -r '"\(.http_status) \(.response.result) \(.response.device_id) \(.response.address)"' <<<"$OUT")" = \
	  "200 rotated $D1 $D1_ADDR" ]
ed_peers "$IFA" >"$T/peers"
check "the new key is on the interface with d1's address, the old one is gone" \
	bash -c "grep -qx '$NEWPUB	10.91.0.2/32' $T/peers && ! grep -q '$D1_PUB' $T/peers"

echo "== revocation"
check "revoking d1 (200)" [ "$(api POST "/v1/devices/$D1/revoke" "$TA")" = 200 ]
ed_peers "$IFA" >"$T/peers"
check "its peer was gone when the answer came" bash -c "! grep -q '$NEWPUB' $T/peers"
check "the device reads back revoked" bash -c "[ \"\$(ip netns exec $NS curl -s -H 'Authorization: Bearer $ADMIN' $U/v1/devices/$D1 | jq -r .state)\" = revoked ]"
check "revoking again is 409 already_revoked" [ "$(api POST "/v1/devices/$D1/revoke" "$ADMIN")" = 409 ]
OUT=$(ed_enroll d1 --token "$TOK2" --wg-private "$T/d1.newkey")
check "a revoked device cannot enroll: 403 device_revoked" \
	[ "$(jq -r '"\(.http_status) \(.response.error.code)"' <<<"$OUT")" = "403 device_revoked" ]
check "reinstating d1 (200)" [ "$(api POST "/v1/devices/$D1/reinstate" "$ADMIN")" = 200 ]
check "reinstating again is 409 not_revoked" [ "$(api POST "/v1/devices/$D1/reinstate" "$ADMIN")" = 409 ]
OUT=$(ed_enroll d1 --token "$TOK2" --wg-private "$T/d1.newkey")
check "after reinstatement d1 enrolls again with its old address" \
	[ "$(jq -r '"\(.http_status) \(.response.result) \(.response.address)"' <<<"$OUT")" = "200 renewed $D1_ADDR" ]
check "and its peer is back" bash -c "$WGCTL --backend uapi show $IFA | grep -q '$NEWPUB'"

echo "== listing"
api POST "/v1/devices/$D2/revoke" "$ADMIN" >/dev/null
check "?state=revoked lists d2 only" bash -c \
	"[ \"\$(ip netns exec $NS curl -s -H 'Authorization: Bearer $ADMIN' '$U/v1/devices?state=revoked' | jq -c '[.devices[].device_id]')\" = '[\"$D2\"]' ]"
check "?tenant=acme&state=active lists d1 and d3" bash -c \
	"[ \"\$(ip netns exec $NS curl -s -H 'Authorization: Bearer $TA' '$U/v1/devices?tenant=acme&state=active' | jq -c '[.devices[].device_id]')\" = '[\"$D1\",\"$D3\"]' ]"
ids=() cursor=
for i in 1 2 3 4 5 6; do
	api GET "/v1/devices?limit=1${cursor:+&cursor=$cursor}" "$ADMIN" >/dev/null
	ids+=($(body '.devices[].device_id'))
	cursor=$(body '.next_cursor // empty')
	[ -z "$cursor" ] && break
done
check "limit=1 pages walk every device once, in order" [ "${ids[*]}" = "$D1 $D2 $D3 $D5" ]
api GET "/v1/devices/$D3" "$TA" >/dev/null
check "a device shows address, key, state, health, counters, since" \
	bash -c "jq -e '.address == \"10.91.0.4/32\" and .state == \"active\" and (.health | IN(\"never\",\"up\",\"down\")) and (.rx_bytes | type) == \"number\" and has(\"since\") and has(\"last_handshake\")' $T/body >/dev/null"
check "bad cursor / limit / state are 400" bash -c \
	"[ $(api GET '/v1/devices?cursor=x' "$ADMIN") = 400 ] && [ $(api GET '/v1/devices?limit=0' "$ADMIN") = 400 ] && [ $(api GET '/v1/devices?state=x' "$ADMIN") = 400 ]"

# ---- the scope matrix ------------------------------------------------------------------------------
echo "== tenant-scope matrix"
# Every endpoint with each token: admin, acme's, beta's, provisioning, none, a bad one.
# Targets belong to acme. Cells: expected HTTP status. A tenant token naming another
# tenant is 403; another tenant's device (by id) is 404, not to leak its existence.
snapshot() {
	{
		for p in /v1/tenants /v1/devices "/v1/devices?state=revoked"; do
			ip netns exec "$NS" curl -s -H "Authorization: Bearer $ADMIN" "$U$p"
		done
		for t in acme beta gamma; do
			ip netns exec "$NS" curl -s -H "Authorization: Bearer $ADMIN" "$U/v1/tenants/$t/tokens"
			ip netns exec "$NS" curl -s -H "Authorization: Bearer $ADMIN" "$U/v1/tenants/$t/registrations"
		done
	} | jq -S 'del(.. | .since?, .last_handshake?, .rx_bytes?, .tx_bytes?, .health?, .on_interface?, .interface_up?)' | md5sum
}
EK6_ID=$(ed_ek d6 | jq -r .ek_id)
api POST /v1/tenants/acme/registrations "$ADMIN" "{\"ek_id\":\"$EK6_ID\"}" >/dev/null
api POST /v1/tenants/acme/tokens "$ADMIN" '{"uses":1}' >/dev/null
ACME_TOK_ID=$(body .id)
BAD=not-a-valid-token-0123456789
#            method path                                         body            admin acme beta prov none bad
matrix=(
	"GET    /v1/tenants                                  -                200   200  200  403  401  401"
	"GET    /v1/tenants/acme                             -                200   200  403  403  401  401"
	"POST   /v1/tenants                                  {}               400   403  403  403  401  401"
	"GET    /v1/tenants/acme/registrations               -                200   200  403  403  401  401"
	"POST   /v1/tenants/acme/registrations               {}               400   400  403  400  401  401"
	"DELETE /v1/tenants/acme/registrations/$ZERO         -                404   404  403  403  401  401"
	"GET    /v1/tenants/acme/tokens                      -                200   200  403  403  401  401"
	"POST   /v1/tenants/acme/tokens                      {\"uses\":0}     400   400  403  403  401  401"
	"DELETE /v1/tenants/acme/tokens/$ZERO                -                404   404  403  403  401  401"
	"GET    /v1/devices                                  -                200   200  200  403  401  401"
	"GET    /v1/devices?tenant=acme                      -                200   200  403  403  401  401"
	"GET    /v1/devices/$D3                              -                200   200  404  403  401  401"
	"POST   /v1/devices/$D1/reinstate                    -                409   409  404  403  401  401"
	"POST   /v1/devices/999999/revoke                    -                404   404  404  403  401  401"
	"POST   /v1/enroll/challenge                         {}               400   400  400  400  400  401"
	"POST   /v1/enroll/complete                          {}               400   400  400  400  400  401"
	"GET    /healthz                                     -                200   200  200  200  200  401"
)
before=$(snapshot)
tokens=("$ADMIN" "$TA" "$TB" "$PROV" "" "$BAD")
names=(admin acme beta prov none bad)
mfail=0
for row in "${matrix[@]}"; do
	read -r m p b e0 e1 e2 e3 e4 e5 <<<"$row"
	want=("$e0" "$e1" "$e2" "$e3" "$e4" "$e5")
	for i in 0 1 2 3 4 5; do
		if [ "$b" = - ]; then got=$(api "$m" "$p" "${tokens[$i]}"); else got=$(api "$m" "$p" "${tokens[$i]}" "$b"); fi
		if [ "$got" != "${want[$i]}" ]; then
			echo "     $m $p as ${names[$i]}: got $got, want ${want[$i]} ($(cat "$T/body"))"
			mfail=1
		elif [ "$got" -ge 400 ] && ! jq -e '.error.code and .error.message' "$T/body" >/dev/null; then
			echo "     $m $p as ${names[$i]}: error body is not {error:{code,message}}"
			mfail=1
		fi
	done
done
check "every endpoint x every token answers as the matrix says (${#matrix[@]} x 6)" [ $mfail = 0 ]
check "a tenant token cannot revoke another tenant's device" [ "$(api POST "/v1/devices/$D3/revoke" "$TB")" = 404 ]
check "... nor read its tokens, registrations or events" bash -c \
	"[ $(api GET /v1/tenants/acme/tokens "$TB") = 403 ] && [ $(api GET /v1/tenants/acme/registrations "$TB") = 403 ] &&
	 [ $(ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $TB" "$U/v1/events?tenant=acme") = 403 ]"
check "... nor revoke its enrollment token" [ "$(api DELETE "/v1/tenants/acme/tokens/$ACME_TOK_ID" "$TB")" = 403 ]
check "the matrix changed nothing" [ "$(snapshot)" = "$before" ]

# ---- malformed bodies ------------------------------------------------------------------------------
echo "== malformed bodies"
bad_bodies=(
	'not json'
	'[1,2]'
	'"a string"'
	'{"name":1}'
	'{"unknown_member":true}'
	'{"ek_cert":"!!!","ek_public":"AA==","ak_public":"AA==","wg_public_key":"x"}'
	'{"session":"zz","secret":"AA==","quote":"AA==","signature":"AA==","pcrs":"AA=="}'
	'{"uses":-1}'
	'{"ek_id":"123"}'
	'{"ek_id":"'$ZERO'","ek_public":"AAAA"}'
	'{"name":"x","prefix":"10.96.0.0/28","interface":"'$(ed_ifname z)'","listen_port":70000,"endpoint":"e:1"}'
	'{"name":"UPPER","prefix":"10.96.0.0/28","interface":"'$(ed_ifname z)'","listen_port":35106,"endpoint":"e:1"}'
	'{"name":"ok","prefix":"10.96.0.0/32","interface":"'$(ed_ifname z)'","listen_port":35106,"endpoint":"e:1"}'
	'{"name":"ok2","prefix":"10.96.0.0/28","interface":"'$(ed_ifname z)'","listen_port":35106,"endpoint":"e:1","pcr_policy":[{"index":30,"sha256":"'$ZERO'"}]}'
)
posts=(/v1/tenants /v1/tenants/acme/registrations /v1/tenants/acme/tokens /v1/enroll/challenge /v1/enroll/complete)
before=$(snapshot)
bfail=0
for p in "${posts[@]}"; do
	for b in "${bad_bodies[@]}"; do
		got=$(api POST "$p" "$ADMIN" "$b")
		if [ "$got" -lt 400 ] || [ "$got" -ge 500 ]; then
			echo "     POST $p '$b': $got $(cat "$T/body")"
			bfail=1
		fi
	done
done
check "every malformed body to every POST endpoint is a 4xx (${#posts[@]} x ${#bad_bodies[@]})" [ $bfail = 0 ]
big=$(head -c 20000 /dev/zero | tr '\0' a)
check "an oversized body is 413 body_too_large" bash -c \
	"[ \$(printf '{\"ek_cert\":\"%s\"}' $big | ip netns exec $NS curl -s -o $T/body -w '%{http_code}' -X POST --data-binary @- $U/v1/enroll/challenge) = 413 ] && [ \$(jq -r .error.code $T/body) = body_too_large ]"
check "an unknown session is 404 unknown_session" \
	[ "$(complete_code 00000000000000000000000000000000)" = unknown_session ]
check "malformed requests changed nothing" [ "$(snapshot)" = "$before" ]

# ---- events ---------------------------------------------------------------------------------------
echo "== events"
check "the admin's stream saw enrolled, rotated, revoked, reinstated in order of ids" ed_until 10 bash -c \
	"grep '^event: ' $T/events.all | cut -d' ' -f2 | tr '\n' ' ' | grep -q 'enrolled .*rotated .*revoked .*reinstated .*enrolled' &&
	 grep '^id: ' $T/events.all | cut -d' ' -f2 | sort -n -c"
check "events carry JSON with device_id, tenant, type" bash -c \
	"grep '^data: ' $T/events.all | head -1 | cut -c7- | jq -e '.device_id and .tenant and .type and .seq' >/dev/null"
check "beta's token streamed only beta's events (d5 enrolled)" bash -c \
	"grep -q '^data: .*\"tenant\":\"beta\"' $T/events.beta && ! grep -q '\"tenant\":\"acme\"' $T/events.beta"
check "resuming with Last-Event-ID gives what followed" bash -c \
	"ip netns exec $NS curl -s -N --max-time 1.5 -H 'Authorization: Bearer $ADMIN' -H 'Last-Event-ID: 2' $U/v1/events | grep '^id: ' | head -1 | grep -qx 'id: 3'"

# ---- SIGHUP ------------------------------------------------------------------------------------------
echo "== SIGHUP"
TG=tenant-gamma-token-0123456789
ed_tenant_token gamma "$TG"
check "a new tenant token is unknown before SIGHUP (401)" [ "$(api GET /v1/tenants/gamma "$TG")" = 401 ]
kill -HUP "$ED_PID"
for _ in $(seq 20); do grep -q 'tokens reloaded' "$T/log" && break; sleep 0.1; done
check "after SIGHUP it works for its tenant" [ "$(api GET /v1/tenants/gamma "$TG")" = 200 ]
check "and only for its tenant" [ "$(api GET /v1/tenants/acme "$TG")" = 403 ]

# ---- backup -----------------------------------------------------------------------------------------
echo "== backup"
mkdir -m 700 "$T/bk" "$T/bk2"
check "--backup copies the live database" "$ENROLLD" -c "$T/e.conf" --backup "$T/bk"
sed "s|^db_path = .*|db_path = $T/bk|" "$T/e.conf" >"$T/bk.conf"
"$ENROLLD" -c "$T/bk.conf" --backup "$T/bk2" >"$T/bk.log" 2>&1
check "the copy opens and passes the consistency check" \
	bash -c "grep -q copied '$T/bk.log' && ! grep -q inconsistent '$T/bk.log'"
check "--backup refuses a directory that is not empty" bash -c "! '$ENROLLD' -c '$T/e.conf' --backup '$T/bk' 2>/dev/null"

# ---- restart: reconciliation --------------------------------------------------------------------------
echo "== restart"
ed_peers "$IFA" >"$T/peers.before"
ed_stop
check "SIGTERM: exit 0" [ "$ED_RC" = 0 ]
check "SIGTERM stopped the tenants' wireguard-go" [ ! -S "/var/run/wireguard/$IFA.sock" ]
ed_start
ed_peers "$IFA" >"$T/peers.after"
# Sessions live in memory (LMDB); an id issued before the restart is recognised by its tag.
check "after a restart a session issued before it is 410 session_expired" \
	[ "$(complete_code "$(cat "$T/d5.session")")" = session_expired ]
check "... and an id never issued is still 404 unknown_session" \
	[ "$(complete_code 0123456789abcdef0123456789abcdef)" = unknown_session ]
check "after a restart the interface is back with exactly the active devices" \
	bash -c "diff -u $T/peers.before $T/peers.after && [ \$(wc -l < $T/peers.after) = 2 ]"
# a peer nobody enrolled, added behind enrolld's back, is removed by reconciliation
"$ENROLL_DEV" genkey "$T/stray.key" >"$T/stray.pub"
"$WGCTL" --backend uapi set "$IFA" peer "$(cat "$T/stray.pub")" allowed-ips 10.91.0.14/32
# (the interface must still be there: an empty answer would also hold no stray peer)
stray_gone() { "$WGCTL" --backend uapi show "$IFA" >"$T/ifa.show" && ! grep -qF "$(cat "$T/stray.pub")" "$T/ifa.show"; }
check "a stray peer is removed by periodic reconciliation" ed_until 15 stray_gone

ed_done
