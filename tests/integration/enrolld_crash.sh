#!/bin/bash
# Crash safety: devices enroll continuously while enrolld is killed with SIGKILL over and
# over (and restarted on the same LMDB store, adopting the wireguard-go it left behind).
# Devices retry when the server is gone. Afterwards:
#   - every enrollment that was acknowledged (HTTP 200) is in the store, with the address
#     and key the device was told;
#   - no address is held twice, and each EK has one device;
#   - after reconciliation the interface holds exactly the store's active devices;
#   - enrolld's own consistency check (store_verify at every start) passed every time.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
ed_init crash
D=24          # devices
IF=$(ed_ifname c)
ed_conf
ed_start

api POST /v1/tenants "$ADMIN" "{\"name\":\"fleet\",\"prefix\":\"10.98.0.0/24\",\"interface\":\"$IF\",\"listen_port\":35130,\"endpoint\":\"192.0.2.1:35130\"}" >/dev/null
check "tenant created" [ "$(body .name)" = fleet ]
api POST /v1/tenants/fleet/tokens "$ADMIN" '{"uses":100000}' >/dev/null
TOK=$(body .token)
for i in $(seq $D); do ed_swtpm "d$i"; done

# One device: R rounds; round 1 enrolls, the others rotate to a new key. Each round is
# retried until acknowledged; a refusal other than "server gone" ends the device.
R=4
device() { # i
	local i=$1 r out st pub tries=0 deadline=$((SECONDS + 120))
	for r in $(seq $R); do
		pub=$("$ENROLL_DEV" genkey "$T/key.$i.$r")
		while :; do
			[ $SECONDS -lt $deadline ] || { echo timeout >"$T/refused.$i"; return 1; }
			tries=$((tries + 1))
			out=$(ed_enroll "d$i" --token "$TOK" --wg-private "$T/key.$i.$r")
			st=$(jq -r .http_status <<<"$out" 2>/dev/null)
			case $st in
			200)
				echo "$r $(jq -r '"\(.response.device_id) \(.response.address) \(.response.result)"' <<<"$out") $pub" >>"$T/ack.$i"
				break ;;
			0 | 404 | 410 | 503 | "") sleep 0.$((RANDOM % 3 + 1)) ;; # server gone, or our session with it
			*)
				echo "$out" >"$T/refused.$i"
				return 1 ;;
			esac
		done
	done
	echo "$tries" >"$T/tries.$i"
}

echo "== $D devices enrolling and rotating while enrolld is killed again and again"
(
	for i in $(seq $D); do
		device "$i" &
		sleep 0.1
	done
	wait
) &
starter=$!
ED_BG_PIDS+=($starter)
kills=0
while kill -0 "$starter" 2>/dev/null && [ $kills -lt 40 ]; do
	sleep 0.$((RANDOM % 5 + 2))
	ed_kill9
	kills=$((kills + 1))
	ed_start
done
wait "$starter" # all device workers are done
echo "     $kills SIGKILLs"
check "at least 5 SIGKILLs happened while devices enrolled" [ $kills -ge 5 ]
retried=$(cat "$T"/tries.* 2>/dev/null | awk -v r=$R '$1 > r' | wc -l)
echo "     $retried device(s) had to retry (server killed under them)"
check "some enrollments were cut by a crash and retried" [ "$retried" -gt 0 ]
check "every device had all $R rounds acknowledged" \
	[ "$(cat "$T"/ack.* | wc -l)" = $((D * R)) ]
for f in "$T"/refused.*; do [ -f "$f" ] && echo "     refused: $(cat "$f")"; done

echo "== one more crash, restart, reconciliation"
ed_kill9
ed_start
sleep 2.5 # one reconciliation interval
api GET "/v1/devices?limit=1000" "$ADMIN" >/dev/null
cp "$T/body" "$T/devices.json"
ackfail=0
for f in "$T"/ack.*; do
	# every round of a device: same id, same address (rotation keeps it)
	if [ "$(cut -d' ' -f2,3 "$f" | sort -u | wc -l)" != 1 ]; then
		echo "     ${f##*/}: id or address changed between rounds: $(tr '\n' ';' <"$f")"
		ackfail=1
	fi
	read -r _ id addr _ pub <<<"$(tail -n 1 "$f")"
	got=$(jq -r ".devices[] | select(.device_id == \"$id\") | \"\(.address) \(.state) \(.public_key)\"" "$T/devices.json")
	if [ "$got" != "$addr active $pub" ]; then
		echo "     acknowledged device $id ($addr $pub) is '$got' in the store"
		ackfail=1
	fi
done
check "every acknowledged enrollment is in the store with its address and its last key" [ $ackfail = 0 ]
check "no address is held twice" [ "$(jq -r '.devices[].address' "$T/devices.json" | sort | uniq -d | wc -l)" = 0 ]
check "one device per EK (retries after a crash did not duplicate devices)" \
	[ "$(jq -r '.devices[].ek_id' "$T/devices.json" | sort -u | wc -l)" = "$(jq '.devices | length' "$T/devices.json")" ]
check "the store holds exactly the $D devices" [ "$(jq '.devices | length' "$T/devices.json")" = $D ]
jq -r '.devices[] | select(.state == "active") | "\(.public_key)\t\(.address)"' "$T/devices.json" | sort >"$T/db.list"
ed_peers "$IF" >"$T/if.list"
check "the interface matches the store after reconciliation" diff -u "$T/db.list" "$T/if.list"
check "enrolld adopted the wireguard-go left by the killed instances" grep -q "adopted the wireguard-go" "$T/log"
check "every start passed the store's consistency check" \
	[ "$(grep -c 'listening on' "$T/log")" = $((kills + 2)) ]

ed_done
