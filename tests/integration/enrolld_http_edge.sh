#!/bin/bash
# enrolld's HTTP edge against what an outsider can send (issue 10.2, 10.3): encoded NULs,
# control bytes, malformed escapes and an encoded '/' are 400 invalid_path before routing
# (path and query); device ids are canonical decimal only; every POST/PUT route refuses a
# body that is not application/json with 415 and changes nothing, while bodiless revoke and
# reinstate (`curl -X POST`) keep working. Also: event streams park instead of holding a
# pool thread (two threads, six streams, the API still answers; events still arrive;
# SIGTERM with streams open is prompt).
. "$(dirname "$0")/enrolld_lib.sh"
ed_init edge
IFA=$(ed_ifname a)
ed_conf "[server]" "threads = 2"
ed_start

api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"acme\",\"prefix\":\"10.93.0.0/28\",\"interface\":\"$IFA\",\"listen_port\":35131,\"endpoint\":\"192.0.2.1:35131\"}" >/dev/null
api POST /v1/tenants/acme/tokens "$ADMIN" '{"uses":5}' >/dev/null
TOK=$(body .token)
ed_swtpm d1
OUT=$(ed_enroll d1 --token "$TOK")
D1=$(jq -r .response.device_id <<<"$OUT")
[ "$(jq -r .http_status <<<"$OUT")" = 200 ] && [ -n "$D1" ] || { echo "setup: d1 did not enroll: $OUT"; exit 1; }

# raw status and error code of a request (curl sends the URL as given)
raw() { # METHOD URL-PATH [curl args...]
	local m=$1 p=$2
	shift 2
	ip netns exec "$NS" curl -s -o "$T/body" -w "%{http_code}" --max-time 5 --path-as-is -X "$m" \
		-H "Authorization: Bearer $ADMIN" "$@" "$U$p"
}
is() { # STATUS CODE METHOD PATH [curl args...]: the answer is STATUS with error CODE
	local st=$1 code=$2
	shift 2
	[ "$(raw "$@")" = "$st" ] && [ "$(jq -r .error.code "$T/body")" = "$code" ]
}
state() {
	api GET /v1/tenants "$ADMIN" >/dev/null
	jq -c '[.tenants[].name]' "$T/body"
	api GET "/v1/devices/$D1" "$ADMIN" >/dev/null
	jq -r .state "$T/body"
	api GET /v1/tenants/acme/tokens "$ADMIN" >/dev/null
	jq -c '.tokens | length' "$T/body"
}
before=$(state)

echo "== paths and queries"
for p in "/healthz%00x" "/v1/tenants/acme%00zzz" "/v1/devices/$D1%00abc" "/v1/devices/$D1%00" \
	"/v1/tenants/acme%2Fregistrations" "/v1/tenants/acme%2ftokens" "/healthz%zz" "/healthz%4" \
	"/healthz%" "/v1/tenants/ac%0ame" "/v1/tenants/ac%7fme" "/v1/tenants/ac%1bme" \
	"/v1/devices?tenant=acme%00x" "/v1/devices?tenant%00=acme" "/v1/devices?cursor=1%zz" \
	"/v1/devices?tenant=ac%0dme"; do
	check "GET $p is 400 invalid_path" is 400 invalid_path GET "$p"
done
check "POST /v1/devices/$D1%00/revoke is 400 invalid_path" \
	is 400 invalid_path POST "/v1/devices/$D1%00/revoke"
check "... and the device is still active" [ "$(state)" = "$before" ]
check "an encoded '/' in a query value is fine (200)" [ "$(raw GET "/healthz?x=%2F")" = 200 ]
check "GET /v1/tenants/%61cme (an escape of a plain letter) is tenant acme" \
	bash -c "[ \"\$(ip netns exec $NS curl -s --path-as-is -H 'Authorization: Bearer $ADMIN' '$U/v1/tenants/%61cme' | jq -r .name)\" = acme ]"

echo "== device ids"
check "GET /v1/devices/$D1 is 200" [ "$(raw GET "/v1/devices/$D1")" = 200 ]
for id in "0$D1" "00$D1" "+$D1" "%20$D1" "$D1%20" "-$D1" "${D1}x" "0x$D1" "18446744073709551617" \
	"99999999999999999999999" "0"; do
	check "GET /v1/devices/$id is 404 not_found" is 404 not_found GET "/v1/devices/$id"
done
check "POST /v1/devices/0$D1/revoke is 404 and revokes nothing" \
	bash -c "[ \$(ip netns exec $NS curl -s -o /dev/null -w '%{http_code}' -X POST -H 'Authorization: Bearer $ADMIN' $U/v1/devices/0$D1/revoke) = 404 ]"
check "... the device is still active" [ "$(state)" = "$before" ]
check "?after=01 on the event stream is 400 invalid_query" is 400 invalid_query GET "/v1/events?after=01"

echo "== Content-Type"
mapfile -t writes < <("$ENROLLD" --routes | awk '$1 == "POST" || $1 == "PUT" || $1 == "PATCH"')
[ ${#writes[@]} -ge 10 ] || { echo "setup: only ${#writes[@]} write routes"; exit 1; }
for w in "${writes[@]}"; do
	m=${w%% *}
	p=${w#* }
	p=${p//\{name\}/acme}
	p=${p//\{id\}/$D1}
	for ct in "text/plain" "application/x-www-form-urlencoded" "multipart/form-data; boundary=x" \
		"application/jsonx" "application/json-seq" "text/json"; do
		check "$m $p with '$ct' is 415" \
			is 415 unsupported_media_type "$m" "$p" -H "Content-Type: $ct" --data-binary '{}'
	done
	check "$m $p with a body and no Content-Type is 415" \
		is 415 unsupported_media_type "$m" "$p" -H "Content-Type:" --data-binary '{}'
	check "$m $p with two Content-Types is 415" \
		is 415 unsupported_media_type "$m" "$p" -H "Content-Type: application/json" \
		-H "Content-Type: text/plain" --data-binary '{}'
done
check "POST /v1/tenants without body nor Content-Type is 415" \
	is 415 unsupported_media_type POST /v1/tenants
check "POST /v1/enroll/challenge without body nor Content-Type is 415" \
	is 415 unsupported_media_type POST /v1/enroll/challenge
T2='{"name":"zeta","prefix":"10.94.0.0/28","listen_port":35132}'
check "a text/plain tenant body is 415 ..." \
	is 415 unsupported_media_type POST /v1/tenants -H "Content-Type: text/plain" --data-binary "$T2"
check "... as is the form a browser posts cross-site" \
	is 415 unsupported_media_type POST /v1/tenants --data-urlencode "x=$T2"
check "415s changed nothing (tenants, tokens, the device)" [ "$(state)" = "$before" ]
check "'Application/JSON ; charset=utf-8' is JSON (the handler judges the body: 400)" \
	is 400 invalid_body POST /v1/tenants -H "Content-Type: Application/JSON ; charset=utf-8" \
	--data-binary '{"name":"zeta"}'
check "revoke with a text/plain body is 415 ..." \
	is 415 unsupported_media_type POST "/v1/devices/$D1/revoke" -H "Content-Type: text/plain" \
	--data-binary 'x'
check "... and revokes nothing" [ "$(state)" = "$before" ]
check "bodiless revoke (curl -X POST) is 200" [ "$(raw POST "/v1/devices/$D1/revoke")" = 200 ]
check "bodiless reinstate (curl -X POST) is 200" [ "$(raw POST "/v1/devices/$D1/reinstate")" = 200 ]
check "reinstate with Content-Type application/json and no body reaches the handler (409)" \
	is 409 not_revoked POST "/v1/devices/$D1/reinstate" -H 'Content-Type: application/json'

echo "== event streams park"
for i in 1 2 3 4 5 6; do
	ip netns exec "$NS" curl -s -N -H "Authorization: Bearer $ADMIN" "$U/v1/events" \
		>"$T/sse$i" 2>/dev/null &
	ED_BG_PIDS+=($!)
done
sleep 1
check "with six streams open on two threads, /healthz answers within 1 s" \
	[ "$(ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$U/healthz")" = 200 ]
check "... and the fleet API too" \
	[ "$(ip netns exec "$NS" curl -s -o /dev/null -w '%{http_code}' --max-time 1 \
		-H "Authorization: Bearer $ADMIN" "$U/v1/tenants")" = 200 ]
OUT=$(ed_enroll d1 --token "$TOK")
[ "$(jq -r .http_status <<<"$OUT")" = 200 ] || echo "     d1 did not enroll again: $OUT"
sleep 1
n=0
for i in 1 2 3 4 5 6; do grep -q '^event: ' "$T/sse$i" && n=$((n + 1)); done
check "d1's enrollment reaches all six streams within a second ($n)" [ $n = 6 ]
threads=$(awk '/^Threads:/ { print $2 }' /proc/$ED_PID/status)
check "six streams cost no thread each ($threads threads)" [ "$threads" -le 12 ]
t0=$(date +%s%N)
kill "$ED_PID"
for _ in $(seq 100); do kill -0 "$ED_PID" 2>/dev/null || break; sleep 0.05; done
ms=$((($(date +%s%N) - t0) / 1000000))
check "SIGTERM with six streams open: enrolld is gone within 3 s (${ms} ms)" \
	bash -c "! kill -0 $ED_PID 2>/dev/null && [ $ms -lt 3000 ]"
wait "$ED_PID" 2>/dev/null
ED_PID=
ed_done
