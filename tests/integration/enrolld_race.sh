#!/bin/bash
# Concurrent changes of one device must leave its tenant's interface equal to the store
# after the answers (issue 10, item 1): exactly the device's current key with its /32 while
# it is active, nothing of it once revoked; no key without AllowedIPs.
#
#  1. One EK, $N enrollments with distinct WireGuard keys at the same time, $ROUNDS rounds.
#     The EK is one TPM cloned $N times (same swtpm state: same EK, same AK), so each
#     clone runs its own challenge and complete; the completes meet in the store's group
#     commit and race for the interface.
#  2. The same with a revocation among them, then a reinstatement, $REV_ROUNDS rounds.
#  3. One X.509 certificate, $N concurrent POST /v1/peer with distinct keys (mutual TLS),
#     $X_ROUNDS rounds.
# Reconciliation runs once an hour here, so it cannot repair what the answers left.
# The store side is checked too: one device, one address, the token lost one use per 200.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
ed_init race
N=${RACE_N:-6}
ROUNDS=${RACE_ROUNDS:-10}
REV_ROUNDS=${RACE_REV_ROUNDS:-6}
X_ROUNDS=${RACE_X_ROUNDS:-10}
IF=$(ed_ifname r)
ed_conf
sed -i 's/^reconcile_interval = .*/reconcile_interval = 3600/' "$T/e.conf"
ed_start

api POST /v1/tenants "$ADMIN" "{\"name\":\"race\",\"prefix\":\"10.96.0.0/24\",\"interface\":\"$IF\",\"listen_port\":35130,\"endpoint\":\"192.0.2.1:35130\"}" >/dev/null
check "tenant created" [ "$(body .name)" = race ]
api POST /v1/tenants/race/tokens "$ADMIN" '{"uses":1000}' >/dev/null
TOK=$(body .token)
TOK_ID=$(body .id)
USES=0 # 200 answers so far

# The store's view of device $1 ("pubkey<TAB>address" if active, nothing if revoked).
store_view() { # ID
	api GET "/v1/devices/$1" "$ADMIN" >/dev/null
	jq -r 'select(.state == "active") | "\(.public_key)\t\(.address)"' "$T/body"
}
# The interface must hold exactly the tenant's active devices, each key with its /32: no
# other key, none without AllowedIPs. On a difference, say what each held.
if_equals_store() { # WHAT
	api GET "/v1/devices?tenant=race&limit=1000" "$ADMIN" >/dev/null
	jq -r '.devices[] | select(.state == "active") | "\(.public_key)\t\(.address)"' \
		"$T/body" | sort >"$T/want"
	ed_peers "$IF" >"$T/have"
	if ! cmp -s "$T/want" "$T/have"; then
		echo "     $1: store: $(tr '\t\n' ' ;' <"$T/want")"
		echo "     $1: interface: $(tr '\t\n' ' ;' <"$T/have")"
		return 1
	fi
}

echo "== one TPM, enrolled once, cloned $N times"
ed_swtpm d0
OUT=$(ed_enroll d0 --token "$TOK")
check "the device enrolls" [ "$(jq -r '"\(.http_status) \(.response.result)"' <<<"$OUT")" = "200 new" ]
USES=$((USES + 1))
DEV=$(jq -r .response.device_id <<<"$OUT")
ADDR=$(jq -r .response.address <<<"$OUT")
# Stop its swtpm (ours: the last one ed_swtpm started) so the state on disk is final.
kill "${ED_SWTPM_PIDS[-1]}" && wait "${ED_SWTPM_PIDS[-1]}" 2>/dev/null
for i in $(seq "$N"); do
	cp -a "$T/tpm/d0" "$T/tpm/c$i"
	cp -a "$T/dev/d0" "$T/dev/c$i"
	ed_swtpm "c$i"
done

# Round $1: every clone enrolls with a fresh key at once; with $2 = "revoke", a revocation
# of the device is sent among them. Sets ok (200 answers) and leaves the answers in
# $T/out.<round>.<clone>.
round() { # NAME [revoke]
	local i pids=()
	for i in $(seq "$N"); do
		ip netns exec "$NS" "$ENROLL_DEV" genkey "$T/k.$1.$i" >/dev/null
	done
	for i in $(seq "$N"); do
		ed_enroll "c$i" --token "$TOK" --wg-private "$T/k.$1.$i" >"$T/out.$1.$i" &
		pids+=($!)
	done
	if [ "${2:-}" = revoke ]; then
		# right after the first answer, while the other completes are in flight
		for _ in $(seq 500); do
			cat "$T"/out."$1".* | grep -q http_status && break
			sleep 0.005
		done
		api POST "/v1/devices/$DEV/revoke" "$ADMIN" >"$T/rev.$1"
	fi
	for i in "${pids[@]}"; do wait "$i"; done
	ok=$(cat "$T"/out."$1".* | jq -r 'select(.http_status == 200) | .http_status' | wc -l)
	USES=$((USES + ok))
}

echo "== $ROUNDS rounds of $N concurrent rotations"
bad=0
bad_answers=0
for r in $(seq "$ROUNDS"); do
	round "$r"
	res=$(cat "$T"/out."$r".* | jq -r '"\(.http_status) \(.response.result) \(.response.device_id) \(.response.address)"' |
		sort | uniq -c | awk '{$1=$1} 1')
	[ "$res" = "$N 200 rotated $DEV $ADDR" ] || {
		echo "     round $r answers: $res"
		bad_answers=$((bad_answers + 1))
	}
	if_equals_store "round $r" || bad=$((bad + 1))
done
check "every concurrent rotation answered 200 rotated, same device and address" \
	[ "$bad_answers" = 0 ]
check "after each round the interface equals the store ($bad of $ROUNDS rounds differ)" \
	[ "$bad" = 0 ]

echo "== $REV_ROUNDS rounds of $N rotations racing a revocation"
bad=0
bad_rev=0
for r in $(seq "$REV_ROUNDS"); do
	round "rv$r" revoke
	echo "     round $r: $ok rotation(s) answered 200, $((N - ok)) refused"
	[ "$(cat "$T/rev.rv$r")" = 200 ] || bad_rev=$((bad_rev + 1))
	if_equals_store "revocation round $r" || bad=$((bad + 1))
	[ -z "$(store_view "$DEV")" ] || bad_rev=$((bad_rev + 1))
	api POST "/v1/devices/$DEV/reinstate" "$ADMIN" >/dev/null
	# active again, with the key of a fresh enrollment
	ip netns exec "$NS" "$ENROLL_DEV" genkey "$T/k.rn$r" >/dev/null
	OUT=$(ed_enroll c1 --token "$TOK" --wg-private "$T/k.rn$r")
	[ "$(jq -r .http_status <<<"$OUT")" = 200 ] && USES=$((USES + 1))
	if_equals_store "renewal $r" || bad=$((bad + 1))
done
check "each revocation answered 200 and left the device revoked" [ "$bad_rev" = 0 ]
check "after each, the interface equals the store ($bad differ)" [ "$bad" = 0 ]

echo "== one X.509 certificate, $X_ROUNDS rounds of $N concurrent POST /v1/peer"
# enrolld again, now with TLS (mutual TLS is how a certificate enrolls), on the same store
ed_stop
FACTORY=$ED_ROOT/scripts/factory-x509.sh
"$FACTORY" ca-init "$T/cpca" "/CN=race control plane CA" >/dev/null
openssl ecparam -name prime256v1 -genkey -noout -out "$T/tls.key" 2>/dev/null
openssl req -new -key "$T/tls.key" -subj "/CN=127.0.0.1" -out "$T/tls.csr"
printf 'subjectAltName = IP:127.0.0.1\nextendedKeyUsage = serverAuth\n' >"$T/tls.ext"
openssl x509 -req -in "$T/tls.csr" -CA "$T/cpca/ca.crt" -CAkey "$T/cpca/ca.key" \
	-set_serial 7 -days 30 -sha256 -extfile "$T/tls.ext" -out "$T/tls.crt" 2>/dev/null
chmod 600 "$T/tls.key"
sed -i "/^\[server\]/a tls_cert = $T/tls.crt\ntls_key = $T/tls.key" "$T/e.conf"
export CURL_CA_BUNDLE=$T/cpca/ca.crt
U=https://127.0.0.1:$PORT
ed_start
"$FACTORY" ca-init "$T/fa" "/O=race/CN=factory" >/dev/null
"$FACTORY" issue "$T/fa" x1 "$T/x1" >/dev/null
api PUT /v1/tenants/race/policy "$ADMIN" '{"require_tpm": false}' >/dev/null
check "the factory CA is trusted by the tenant" [ "$(api POST /v1/tenants/race/device-cas "$ADMIN" \
	"{\"certificate\": $(jq -Rs . <"$T/fa/ca.crt")}")" = 201 ]
peer_put() { # ROUND I
	local pub
	pub=$(ip netns exec "$NS" "$ENROLL_DEV" genkey "$T/xk.$1.$2")
	ip netns exec "$NS" curl -s -o "$T/xout.$1.$2" -w '%{http_code}\n' -X POST \
		--cert "$T/x1/enroll.pem" -H 'Content-Type: application/json' \
		--data-binary "{\"public_key\":\"$pub\"}" "$U/v1/peer" >"$T/xst.$1.$2"
}
peer_put 0 0
check "the certificate enrolls" [ "$(cat "$T/xst.0.0") $(jq -r .result "$T/xout.0.0")" = "200 new" ]
XDEV=$(jq -r .device_id "$T/xout.0.0")
XADDR=$(jq -r .address "$T/xout.0.0")
bad=0
bad_answers=0
for r in $(seq "$X_ROUNDS"); do
	pids=()
	for i in $(seq "$N"); do
		peer_put "$r" "$i" &
		pids+=($!)
	done
	for p in "${pids[@]}"; do wait "$p"; done
	res=$(for i in $(seq "$N"); do
		echo "$(cat "$T/xst.$r.$i") $(jq -r '"\(.result) \(.device_id) \(.address)"' "$T/xout.$r.$i")"
	done | sort | uniq -c | awk '{$1=$1} 1')
	[ "$res" = "$N 200 rotated $XDEV $XADDR" ] || {
		echo "     round $r answers: $res"
		bad_answers=$((bad_answers + 1))
	}
	if_equals_store "X.509 round $r" || bad=$((bad + 1))
done
check "every concurrent POST /v1/peer answered 200 rotated, same device and address" \
	[ "$bad_answers" = 0 ]
check "after each round the interface equals the store ($bad of $X_ROUNDS rounds differ)" \
	[ "$bad" = 0 ]

echo "== the store"
api GET "/v1/devices?tenant=race&limit=1000" "$ADMIN" >/dev/null
check "two devices (the TPM and the certificate), each with its first address" \
	[ "$(jq -r '.devices[] | "\(.device_id) \(.address)"' "$T/body" | sort | tr '\n' ' ')" = \
	  "$(printf '%s %s\n' "$DEV" "$ADDR" "$XDEV" "$XADDR" | sort | tr '\n' ' ')" ]
api GET /v1/tenants/race/tokens "$ADMIN" >/dev/null
check "the token lost one use per 200 answer ($USES)" \
	[ "$(jq -r ".tokens[] | select(.id == \"$TOK_ID\") | .uses_left" "$T/body")" = $((1000 - USES)) ]

ed_done
