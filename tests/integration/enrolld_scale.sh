#!/bin/bash
# 64 devices enroll at the same moment into a tenant whose prefix has room for 61
# (a /26: 62 usable addresses, one of them the control plane's). Expected: 61 enrollments,
# all with distinct addresses in the prefix; 3 clear refusals (503 address_pool_exhausted);
# nothing half-written: the store holds exactly the 61, the token lost exactly 61 uses,
# the interface holds exactly the 61 peers with their /32s, and the store's own
# consistency check (run by enrolld at start) passes after a restart.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
ed_init scale
N=64
IF=$(ed_ifname s)
ed_conf
# All 64 devices share one source address here, unlike a fleet: with a slow server (a
# sanitizer build, a loaded machine) their connections overlap and the per-source limit
# of 64 would refuse the last ones. Connection limits have their own test (enrolld_abuse).
sed -i 's/^\[server\]$/[server]\nmax_connections_per_ip = 0/' "$T/e.conf"
ed_start

api POST /v1/tenants "$ADMIN" "{\"name\":\"fleet\",\"prefix\":\"10.97.0.0/26\",\"interface\":\"$IF\",\"listen_port\":35120,\"endpoint\":\"192.0.2.1:35120\"}" >/dev/null
check "tenant with a /26" [ "$(body .prefix)" = 10.97.0.0/26 ]
api POST /v1/tenants/fleet/tokens "$ADMIN" '{"uses":100}' >/dev/null
TOK=$(body .token)
TOK_ID=$(body .id)

echo "== $N swtpm TPMs"
for i in $(seq $N); do ed_swtpm "d$i"; done
# Provision first (in parallel too): the race we want is the enrollment, not TPM setup.
pids=()
for i in $(seq $N); do
	ip netns exec "$NS" "$ENROLL_DEV" ek --tcti "$(ed_tcti "d$i")" --issue-ek-cert "$CA" \
		>/dev/null 2>>"$T/dev.log" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done

echo "== $N enrollments at once"
start=$(date +%s%N)
pids=()
for i in $(seq $N); do
	ed_enroll "d$i" --token "$TOK" >"$T/out.$i" &
	pids+=($!)
done
for p in "${pids[@]}"; do wait "$p"; done
echo "took $(( ($(date +%s%N) - start) / 1000000 )) ms"
for f in "$T"/out.*; do
	jq -e . "$f" >/dev/null 2>&1 || echo "     device ${f##*.} gave no answer: '$(cat "$f")'"
done

cat "$T"/out.* | jq -r '.http_status' | sort | uniq -c
ok=$(cat "$T"/out.* | jq -r 'select(.http_status == 200) | .response.address' | wc -l)
check "61 enrollments succeeded" [ "$ok" = 61 ]
check "the other 3 got 503 address_pool_exhausted" [ "$(cat "$T"/out.* |
	jq -r 'select(.http_status != 200) | "\(.http_status) \(.response.error.code)"' | sort | uniq -c |
	awk '{$1=$1} 1')" = "3 503 address_pool_exhausted" ]
check "all addresses are distinct" [ "$(cat "$T"/out.* | jq -r 'select(.http_status == 200) | .response.address' |
	sort | uniq -d | wc -l)" = 0 ]
check "they are exactly 10.97.0.2 .. 10.97.0.62" [ "$(cat "$T"/out.* |
	jq -r 'select(.http_status == 200) | .response.address' | sort -V | tr '\n' ' ')" = \
	"$(for i in $(seq 2 62); do printf '10.97.0.%d/32 ' "$i"; done)" ]
check "all device ids are distinct" [ "$(cat "$T"/out.* | jq -r 'select(.http_status == 200) | .response.device_id' |
	sort | uniq -d | wc -l)" = 0 ]

api GET "/v1/devices?tenant=fleet&limit=1000" "$ADMIN" >/dev/null
jq -r '.devices[] | "\(.public_key)\t\(.address)"' "$T/body" | sort >"$T/db.list"
check "the store holds exactly the 61 devices" [ "$(wc -l <"$T/db.list")" = 61 ]
check "the store's addresses are the ones answered" [ "$(cut -f2 "$T/db.list" | sort)" = \
	"$(cat "$T"/out.* | jq -r 'select(.http_status == 200) | .response.address' | sort)" ]
api GET /v1/tenants/fleet/tokens "$ADMIN" >/dev/null
check "the token lost exactly 61 uses (refusals consumed none)" \
	[ "$(jq -r ".tokens[] | select(.id == \"$TOK_ID\") | .uses_left" "$T/body")" = 39 ]
ed_peers "$IF" >"$T/if"
check "the interface holds exactly the store's 61 peers and /32s" diff -u "$T/db.list" "$T/if"
check "metrics: 61 new, 3 exhausted" bash -c \
	"ip netns exec $NS curl -s $U/metrics > $T/metrics && grep -q 'enrolld_enrollments_total{result=\"new\"} 61' $T/metrics &&
	 grep -q 'enrolld_enrollments_total{result=\"exhausted\"} 3' $T/metrics"

echo "== restart: the store's consistency check runs at start"
ed_stop
ed_start
check "enrolld restarted on the same store (store_verify passed)" [ "$(api GET /healthz "")" = 200 ]
ed_peers "$IF" >"$T/if2"
check "and rebuilt the interface with the same 61 peers" diff -u "$T/db.list" "$T/if2"
first=$(grep -l '"http_status":200' "$T"/out.* | head -1)
i=${first##*.}
OUT=$(ed_enroll "d$i" --token "$TOK")
check "an enrolled device enrolling again keeps its address" \
	[ "$(jq -r '"\(.http_status) \(.response.result) \(.response.address)"' <<<"$OUT")" = \
	  "200 same $(jq -r '.response.address' "$first")" ]

ed_done
