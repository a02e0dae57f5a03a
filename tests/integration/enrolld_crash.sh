#!/bin/bash
# Crash safety: devices enroll and rotate continuously while enrolld is killed with SIGKILL
# exactly KILLS (50) times and restarted on the same LMDB store (adopting the wireguard-go
# it left behind). Every other kill is made by the first device that gets an
# acknowledgement (HTTP 200) from the running instance, the moment it has it (the riskiest
# moment: an answer just given); the others come a random 0-300 ms after the instance
# served its first enrollment. Devices retry when the server is gone; once the kills are
# done they finish the round they are in against a live server and stop. Checks:
#   - before each new round a device reads its device back: the last acknowledged round is
#     in the store (address and key), whatever kills came since (a later rotation would
#     otherwise hide a lost one from the final check);
#   - at the end every acknowledged enrollment is in the store with the address and key
#     the device was told (its last acknowledged key is its key there), the device id and
#     address never changed between a device's rounds;
#   - no address is held twice, and each EK has one device;
#   - after reconciliation the interface holds exactly the store's active devices;
#   - enrolld's own consistency check (store_verify at every start) passed every time.
# The kill cycle is what costs: a restart (store open and check, adopting wireguard-go, the
# listener) is ~0.2 s on an idle machine, and each instance must serve an enrollment before
# it is killed. The devices run at nice 10 (they are the load, and a restart must not
# queue behind them), have no deadline while the kills go on, and 90 s to finish their
# last round afterwards: a slow machine makes the test longer, not failing.
# CRASH_KILLS, CRASH_DEVICES: other counts (defaults 50, 16).
set -u
. "$(dirname "$0")/enrolld_lib.sh"
ed_init crash
D=${CRASH_DEVICES:-16}  # devices
KILLS=${CRASH_KILLS:-50}
IF=$(ed_ifname c)
ed_conf
ed_start

api POST /v1/tenants "$ADMIN" "{\"name\":\"fleet\",\"prefix\":\"10.98.0.0/24\",\"interface\":\"$IF\",\"listen_port\":35130,\"endpoint\":\"192.0.2.1:35130\"}" >/dev/null
check "tenant created" [ "$(body .name)" = fleet ]
api POST /v1/tenants/fleet/tokens "$ADMIN" '{"uses":1000000}' >/dev/null
TOK=$(body .token)
for i in $(seq $D); do ed_swtpm "d$i"; done

# enrolld again, its readiness polled every 20 ms (ed_start's 100 ms would be most of a
# kill cycle). The seconds it took in START_S.
crash_start() {
	local before t0=$EPOCHREALTIME
	before=$(grep -c 'listening on' "$T/log")
	ip netns exec "$NS" "$ENROLLD" -d -c "$T/e.conf" 2>>"$T/log" &
	ED_PID=$!
	echo "$ED_PID" >"$T/pid"
	for _ in $(seq 500); do
		if [ "$(grep -c 'listening on' "$T/log")" -gt "$before" ]; then
			START_S=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }')
			return 0
		fi
		kill -0 "$ED_PID" 2>/dev/null || break
		sleep 0.02
	done
	echo "enrolld did not start" >&2
	tail -n 20 "$T/log" >&2
	return 1
}

# One device: round 1 enrolls, each later round rotates to a new key, until $T/stop
# appears. A round is retried until acknowledged; a refusal other than "server gone" ends
# the device. Each acknowledged round: "round time device_id address result public_key" in
# ack.I; each attempt: "step status" in att.I.
device() { # i
	local i=$1 r=0 out st id= addr res pub deadline= got tries=0 p
	while [ ! -e "$T/stop" ]; do
		# The last acknowledged round is still in the store, whatever kills came since
		# (a later rotation would hide its loss from the final check).
		while [ -n "$id" ]; do
			got=$(ip netns exec "$NS" curl -sf -m 5 -H "Authorization: Bearer $ADMIN" \
				"$U/v1/devices/$id" | jq -r '"\(.address) \(.public_key)"' 2>/dev/null)
			if [ -n "$got" ]; then
				[ "$got" = "$addr $pub" ] ||
					echo "round $r of device $id ($addr $pub) is '$got' in the store" >>"$T/lost.$i"
				break
			fi
			[ -e "$T/stop" ] && [ $((tries += 1)) -gt 300 ] &&
				{ echo "no answer to GET /v1/devices/$id" >"$T/refused.$i"; return 1; }
			sleep 0.1
		done
		r=$((r + 1))
		pub=$("$ENROLL_DEV" genkey "$T/key.$i.$r")
		while :; do
			if [ -z "$deadline" ] && [ -e "$T/stop" ]; then
				deadline=$((SECONDS + 90))
			fi
			[ -z "$deadline" ] || [ $SECONDS -lt $deadline ] ||
				{ echo "timeout in round $r" >"$T/refused.$i"; return 1; }
			out=$(ed_enroll "d$i" --token "$TOK" --wg-private "$T/key.$i.$r")
			# The killer asks for a kill right after an acknowledgement: the first device
			# to have one kills enrolld at once (builtins only, no fork on the way).
			if [[ $out == *'"http_status":200'* ]] && [ -e "$T/kill_next" ]; then
				set -C
				if { : >"$T/kill_taken"; } 2>/dev/null; then
					read -r p <"$T/pid"
					kill -9 "$p" 2>/dev/null
				fi
				set +C
			fi
			read -r step st id addr res <<<"$(jq -r '[.step, .http_status, .response.device_id,
				.response.address, .response.result] | map(. // "-" | tostring) | join(" ")' \
				<<<"$out" 2>/dev/null)"
			echo "${step:--} ${st:--}" >>"$T/att.$i"
			case ${st:-} in
			200)
				echo "$r $EPOCHREALTIME $id $addr $res $pub" >>"$T/ack.$i"
				break ;;
			0 | 404 | 410 | 503 | "" | -) sleep 0.$((RANDOM % 3 + 1)) ;; # server gone, or our session with it
			*)
				echo "$out" >"$T/refused.$i"
				return 1 ;;
			esac
		done
	done
}

echo "== $D devices enrolling and rotating while enrolld is killed $KILLS times"
# The devices run at a lower priority: they are the load, and enrolld (and this loop) must
# not queue behind them for the CPU, or a restart takes seconds instead of ~0.2 s.
(
	renice -n 10 -p $BASHPID >/dev/null
	for i in $(seq $D); do
		device "$i" &
		sleep 0.05
	done
	wait
) &
starter=$!
ED_BG_PIDS+=($starter)
t_start=$SECONDS
sleep 1 # every device under way
kills=0 starts=() waits=() n_enrolled=0 acked_kills=0
while [ $kills -lt "$KILLS" ] && kill -0 "$starter" 2>/dev/null; do
	t0=$EPOCHREALTIME
	if [ $((kills % 2)) = 1 ]; then
		# every other kill: by the first device that gets an acknowledgement from this
		# instance, the moment it has it (3 s at most, else here)
		rm -f "$T/kill_taken"
		: >"$T/kill_next"
		for _ in $(seq 150); do
			[ -e "$T/kill_taken" ] && break
			sleep 0.02
		done
		rm -f "$T/kill_next"
		[ -e "$T/kill_taken" ] && acked_kills=$((acked_kills + 1))
	else
		# the others: once this instance served an enrollment (3 s at most), a random
		# 0-300 ms later
		for _ in $(seq 150); do
			[ "$(grep -c ' enrolled in ' "$T/log")" -gt "$n_enrolled" ] && break
			sleep 0.02
		done
		sleep "$(printf '0.%03d' $((RANDOM % 301)))"
	fi
	waits+=("$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", (b - a) * 1000 }')")
	ed_kill9
	kills=$((kills + 1))
	echo "$EPOCHREALTIME" >"$T/last_kill"
	n_enrolled=$(grep -c ' enrolled in ' "$T/log")
	crash_start || break
	starts+=("$START_S")
done
t_kills=$((SECONDS - t_start))
touch "$T/stop"
wait "$starter" # all device workers are done
echo "     $kills SIGKILLs in $t_kills s; restart to listener: $(printf '%s\n' "${starts[@]}" |
	sort -n | awk '{ a[NR] = $1; s += $1 } END { printf "mean %.2f s, median %.2f s, max %.2f s", s / NR, a[int((NR + 1) / 2)], a[NR] }'); killed $(printf '%s\n' "${waits[@]}" |
	awk '{ s += $1 } END { printf "%.0f", s / NR }') ms after it listened, on average"
echo "     $acked_kills of them by a device, the moment it had an acknowledgement"
check "enrolld was killed exactly $KILLS times while the devices enrolled" [ "$kills" = "$KILLS" ]
check "at least $((KILLS / 4)) kills came right after an acknowledgement" [ "$acked_kills" -ge $((KILLS / 4)) ]
for f in "$T"/refused.*; do [ -f "$f" ] && echo "     refused: $(cat "$f")"; done
check "no device was refused or ran out of time" [ "$(ls "$T"/refused.* 2>/dev/null | wc -l)" = 0 ]
cat "$T"/lost.* 2>/dev/null | sed 's/^/     lost: /' | head -20
check "every acknowledged round was still in the store when the device began its next" \
	[ "$(cat "$T"/lost.* 2>/dev/null | wc -l)" = 0 ]
cat "$T"/att.* >"$T/attempts"
cat "$T"/ack.* >"$T/acks"
n_att=$(wc -l <"$T/attempts")
n_ack=$(wc -l <"$T/acks")
cut_mid=$(grep -c '^complete 0$' "$T/attempts")
n_same=$(awk '$5 == "same"' "$T/acks" | wc -l)
last_kill=$(cat "$T/last_kill")
survived=$(awk -v k="$last_kill" '$2 < k' "$T/acks" | wc -l)
echo "     $n_att attempts, $n_ack acknowledged; $cut_mid cut between challenge and completion;"
echo "     $n_same acknowledged as 'same' (the key was already the device's: an earlier attempt"
echo "     was committed though its answer was lost, or a retry after one); $survived acknowledged"
echo "     before the last kill"
check "the kills cut enrollments between their two rounds" [ "$cut_mid" -gt 0 ]
n_rot=$(awk '$5 == "rotated"' "$T/acks" | wc -l)
check "every device was acknowledged, and $n_rot rotations were" \
	[ "$(ls "$T"/ack.* | wc -l)" = "$D" -a "$n_rot" -gt 0 ]
check "at least $((KILLS / 2)) acknowledged enrollments went through later kills" [ "$survived" -ge $((KILLS / 2)) ]

echo "== one more crash, restart, reconciliation"
ed_kill9
crash_start || exit 1
sleep 2.5 # one reconciliation interval
api GET "/v1/devices?limit=1000" "$ADMIN" >/dev/null
cp "$T/body" "$T/devices.json"
ackfail=0
for f in "$T"/ack.*; do
	# every round of a device: same id, same address (rotation keeps it)
	if [ "$(cut -d' ' -f3,4 "$f" | sort -u | wc -l)" != 1 ]; then
		echo "     ${f##*/}: id or address changed between rounds: $(tr '\n' ';' <"$f")"
		ackfail=1
	fi
	read -r _ _ id addr _ pub <<<"$(tail -n 1 "$f")"
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
