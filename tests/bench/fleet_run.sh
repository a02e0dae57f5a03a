#!/bin/bash
# Store and API at fleet size (not a test; `make bench`, or BENCHES=fleet tests/bench/run.sh).
# FLEET_N (default 100000; the issue's figure: FLEET_N=1000000) active devices over
# FLEET_TENANTS (4) tenants are written into an enrolld state directory by
# `fleet_bench populate` (store_enroll(), the store call an attested enrollment ends with,
# 64 threads, durable grouped commits: the real on-disk format, not the attestation work),
# then a real enrolld is started on it in a private network namespace, HTTPS on loopback
# (FLEET_MODE=http for plain HTTP). Its WireGuard "daemon" is tests/bench/fleet_wgd, a
# stand-in for wireguard-go that holds any number of peers (wireguard-go refuses more than
# 65,536) and moves no packets: reconciliation really sends it every peer, and the health
# ticks really read them all back. Prints:
#   - the LMDB file's size and bytes per device;
#   - the store's open and consistency check (store_verify, which enrolld runs before it
#     serves), timed alone;
#   - startup: store open (+ the consistency check),
#     reconciliation (every peer written), ready (listening); enrolld's RSS;
#   - one health tick at N: the cold first tick and then the steady ones (CPU of enrolld's
#     health thread per tick, the daemon's time to answer the read);
#   - listing every device through GET /v1/devices, 1000 per page (the API's maximum),
#     following next_cursor; RSS after it;
#   - GET /metrics: time and size; GET /v1/events resumed with Last-Event-ID from the start,
#     the middle and near the head of the log: time to first byte and to drain;
#   - restart after a kill -9 (the interfaces and their peers survive, as with the kernel
#     backend): store open, reconciliation with every peer already present, ready.
# FLEET_API=0: skip the listing, /metrics and SSE (start, health ticks and restart only: the
# before/after comparison of a start-up change; B=DIR runs another build's binaries).
# FLEET_STATE=DIR: copy that state (made by `fleet_bench populate -n FLEET_N -t FLEET_TENANTS`)
# instead of populating one (the 1,000,000 devices take minutes to write durably).
# Everything lives in one temp dir and one namespace, removed on every exit path. Figures
# are also written as TSV to $FLEET_TSV (build/bench/fleet-N.tsv) for tests/bench/plots.sh.
set -u
B=${B:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
FLEET_N=${FLEET_N:-100000}
FLEET_TENANTS=${FLEET_TENANTS:-4}
FLEET_MODE=${FLEET_MODE:-https}
FLEET_HEALTH_INTERVAL=${FLEET_HEALTH_INTERVAL:-10}
FLEET_API=${FLEET_API:-1}
FB=$B/tests/bench/fleet_bench
WGD=$(realpath "$B/tests/bench/fleet_wgd")
FLEET_TSV=${FLEET_TSV:-$B/bench/fleet-$FLEET_N.tsv}
for x in "$FB" "$WGD" "$B/enrolld"; do [ -x "$x" ] || { echo "$x not built (make)"; exit 1; }; done
. "$ROOT/tests/integration/enrolld_lib.sh"
ed_init fleet
mkdir -p "$(dirname "$FLEET_TSV")"
: >"$FLEET_TSV"
tsv() { printf '%s\t%s\t%s\n' "$1" "$2" "$3" >>"$FLEET_TSV"; } # metric value unit

IFP=fl$TAG
mkdir -p "$T/uapi"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$T/tls.key" -out "$T/tls.pem" 2>/dev/null || exit 1
chmod 600 "$T/tls.key"
CLI=(-a "$ADMIN")
if [ "$FLEET_MODE" = https ]; then
	U=https://127.0.0.1:$PORT
	CLI+=(-c "$T/tls.pem")
	CURL=(--cacert "$T/tls.pem")
else
	U=http://127.0.0.1:$PORT
	CURL=()
fi
cat >"$T/e.conf" <<CONF
[server]
listen = 127.0.0.1
port = $PORT
connection_timeout = 600
$([ "$FLEET_MODE" = https ] && printf 'tls_cert = %s\ntls_key = %s' "$T/tls.pem" "$T/tls.key")
[state]
db_path = $T/db
[auth]
admin_token_file = $T/admin
provisioning_token_file = $T/prov
tenant_tokens_dir = $T/tt
[attestation]
ek_ca_dir = $TRUST
[wireguard]
backend = userspace
wireguard_go = $WGD
uapi_dir = $T/uapi
reconcile_interval = 86400
[health]
interval = $FLEET_HEALTH_INTERVAL
[ratelimit]
per_source_rate = 0
global_rate = 0
CONF

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%d GB", $2 / 1048576 }' /proc/meminfo)," \
	"$(lscpu | sed -n 's/^Model name: *//p' | head -n1), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "fleet: $FLEET_N devices in $FLEET_TENANTS tenants, $FLEET_MODE, state in $T (disk: $(df --output=source "$T" | tail -n1))"
echo "(1,000,000: FLEET_N=1000000 nice -n 5 tests/bench/fleet_run.sh)"

# -- populate
if [ -n "${FLEET_STATE:-}" ]; then
	mkdir -p "$T/db" && cp "$FLEET_STATE/data.mdb" "$T/db/" || exit 1
	chmod 700 "$T/db"
	echo "state: copied from $FLEET_STATE"
else
	"$FB" populate -d "$T/db" -n "$FLEET_N" -t "$FLEET_TENANTS" -i "$IFP" -p 51900 || exit 1
fi
SIZE=$(stat -c %s "$T/db/data.mdb")
DU=$(du -k "$T/db/data.mdb" | cut -f1)
awk -v s="$SIZE" -v du="$DU" -v n="$FLEET_N" 'BEGIN {
	printf "lmdb: data.mdb %.1f MB (%.1f MB on disk), %.0f bytes per device (devices, 4 indexes, one event each)\n",
		s / 1e6, du * 1024 / 1e6, s / n }'
tsv lmdb_bytes "$SIZE" B
tsv lmdb_bytes_per_device "$((SIZE / FLEET_N))" B
# what enrolld's start does first, timed apart in a process of its own
"$FB" verify -d "$T/db" | tee "$T/verify.out" | grep -v '^TSV' || exit 1
awk -F'\t' '$1 == "TSV" { printf "store_open\t%s\ts\nstore_verify\t%s\ts\n", $3, $4 }' "$T/verify.out" >>"$FLEET_TSV"

# -- enrolld: start, with every stderr line stamped with the time it arrived
stamp() { while IFS= read -r l; do printf '%s %s\n' "$EPOCHREALTIME" "$l"; done; }
# resident memory in MB: all of it, anonymous (enrolld's own), file (LMDB's map: page cache)
rss() { awk '/^VmRSS/ { printf "%.0f", $2 / 1024 }' "/proc/$ED_PID/status"; }
rss_anon() { awk '/^RssAnon/ { printf "%.0f", $2 / 1024 }' "/proc/$ED_PID/status"; }
rss_file() { awk '/^RssFile/ { printf "%.0f", $2 / 1024 }' "/proc/$ED_PID/status"; }
rss_all() { echo "$(rss) MB ($(rss_anon) MB anonymous, $(rss_file) MB of LMDB's map)"; }
hwm() { awk '/^VmHWM/ { printf "%.0f", $2 / 1024 }' "/proc/$ED_PID/status"; }
tsv_rss() { tsv "$1" "$(rss)" MB; tsv "$1_anon" "$(rss_anon)" MB; }
gets() { [ -f "$T/wgd.log" ] && awk '$2 == "get" { n++ } END { print n + 0 }' "$T/wgd.log" || echo 0; }
start() { # LABEL
	local log=$T/log.$1 i
	: >"$log"
	T0=$EPOCHREALTIME
	FLEET_WGD_DIR=$T/uapi FLEET_WGD_LOG=$T/wgd.log \
		ip netns exec "$NS" "$ENROLLD" -d -c "$T/e.conf" 2> >(stamp >"$log") &
	ED_PID=$!
	for i in $(seq 36000); do
		grep -q 'listening on' "$log" && break
		kill -0 "$ED_PID" 2>/dev/null || { echo "enrolld exited:"; tail "$log"; exit 1; }
		sleep 0.1
	done
	grep -q 'listening on' "$log" || { echo "enrolld did not start in an hour"; exit 1; }
	# open: start -> "database ... open" (LMDB open + the consistency check); reconcile: ->
	# the last "reconciled" line (or "listening" when nothing was added); ready: "listening"
	awk -v t0="$T0" -v label="$1" -v tsv="$FLEET_TSV" '
		/database .* open/ { open = $1 }
		/reconciled/ { rec = $1; added += $(NF - 4) }
		/listening on/ { ready = $1 }
		END { if (rec == 0) rec = ready
			printf "%s: store open %.2f s, reconciliation %.2f s (%d peers written), ready %.2f s after exec\n",
				label, open - t0, rec - open, added, ready - t0
			printf "%s_open\t%.3f\ts\n%s_reconcile\t%.3f\ts\n%s_ready\t%.3f\ts\n%s_peers_written\t%d\tpeers\n",
				label, open - t0, label, rec - open, label, ready - t0, label, added >> tsv }' "$log"
}
# per-thread CPU (utime + stime, clock ticks) of enrolld: "tid ticks" lines
threads_cpu() {
	for f in /proc/"$ED_PID"/task/*/stat; do
		awk '{ sub(/.*\) /, ""); print FILENAME, $12 + $13 }' "$f" 2>/dev/null
	done | sed 's|/proc/[0-9]*/task/||; s|/stat||' | sort
}
# wait until the health thread has read every interface $1 times in all and is idle again
wait_ticks() {
	local want=$(($1 * FLEET_TENANTS)) i
	for i in $(seq 6000); do [ "$(gets)" -ge "$want" ] && break; sleep 0.1; done
	local a b
	a=$(threads_cpu | awk '{ s += $2 } END { print s }')
	for i in $(seq 600); do
		sleep 0.5
		b=$(threads_cpu | awk '{ s += $2 } END { print s }')
		[ "$a" = "$b" ] && break
		a=$b
	done
}

# the daemon's own time for the requests logged since line $1 of its log
daemon_share() {
	awk -v from="$1" 'NR > from && $2 == "set" { s += $4; n += $3 } NR > from && $2 == "get" { g += $4; k++ }
		END { printf "(of which the stand-in daemon: %.2f s applying %d peers, %.2f s answering %d reads)\n", s, n, g, k }' "$T/wgd.log"
}
echo
start start
daemon_share 0
echo "rss: $(rss_all) at ready"
tsv_rss rss_ready
HZ=$(getconf CLK_TCK)

# -- health: the cold first tick, then steady ticks
wait_ticks 2 # reconciliation's reads, then the cold tick's
threads_cpu >"$T/cpu0"
G0=$(gets)
echo "rss: $(rss_all) after the first health tick (it holds every device in memory)"
tsv_rss rss_after_tick
sleep $((3 * FLEET_HEALTH_INTERVAL))
wait_ticks $(($(gets) / FLEET_TENANTS))
threads_cpu >"$T/cpu1"
G1=$(gets)
TICKS=$(((G1 - G0) / FLEET_TENANTS))
# the health thread is the one that worked between the samples; the cold tick is all it had
# done before them
join "$T/cpu0" "$T/cpu1" | awk -v hz="$HZ" -v ticks="$TICKS" -v tsv="$FLEET_TSV" '
	{ d = $3 - $2; if (d > best) { best = d; cold = $2 } }
	END { printf "health: cold first tick %.0f ms CPU; then %d ticks: %.0f ms CPU per tick (enrolld health thread)\n",
		cold * 1000 / hz, ticks, ticks ? best * 1000 / hz / ticks : 0
	      printf "health_cold_cpu\t%.1f\tms\nhealth_tick_cpu\t%.1f\tms\n", cold * 1000 / hz,
		ticks ? best * 1000 / hz / ticks : 0 >> tsv }'
awk -v n="$FLEET_TENANTS" '$2 == "get" { t[++k] = $4 } END {
	s = 0; for (i = k - n + 1; i <= k; i++) s += t[i]
	printf "health: the daemon took %.0f ms to answer the last tick'"'"'s reads (%d interfaces)\n", s * 1000, n }' "$T/wgd.log"

if [ "$FLEET_API" != 0 ]; then
# -- list every device
echo
ip netns exec "$NS" "$FB" list -u "$U" "${CLI[@]}" -l 1000 | tee "$T/list.out" | grep -v '^TSV'
awk -F'\t' '$1 == "TSV" { printf "list_total\t%s\ts\nlist_page_p50\t%s\tms\nlist_page_p99\t%s\tms\nlist_page_max\t%s\tms\n", $5, $6, $7, $8
	printf "list_exchanges\t%s\ts\nlist_page_p50_first_tenth\t%s\tms\nlist_page_p50_last_tenth\t%s\tms\n", $10, $11, $12 }' \
	"$T/list.out" >>"$FLEET_TSV"
echo "rss: $(rss_all) after the listing (peak $(hwm) MB)"
tsv_rss rss_after_list
tsv rss_peak "$(hwm)" MB

# one page at the start, the middle and the end of the table, in turns over one connection:
# time to first byte, median of 5 each
for i in 1 2 3 4 5; do
	for c in 0 $((FLEET_N / 2)) $((FLEET_N - 1000)); do echo "url = \"$U/v1/devices?limit=1000&cursor=$c\""; done
done >"$T/pages.curl"
ip netns exec "$NS" curl -s "${CURL[@]}" -H "Authorization: Bearer $ADMIN" -K "$T/pages.curl" \
	-o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
	-o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null -o /dev/null \
	-o /dev/null -w '%{url_effective} %{time_starttransfer}\n' |
	sed 's/.*cursor=//' | sort -k1,1n -k2,2n | awk -v tsv="$FLEET_TSV" -v n="$FLEET_N" '
	{ t[$1] = t[$1] " " $2; c[$1]++; if (c[$1] == 3) med[$1] = $2 }
	END { printf "one page by cursor position, first byte, median of 5 (one connection):"
		for (k in med) { printf " at %s: %.1f ms;", k, med[k] * 1000
			printf "list_page_at_%s\t%.3f\tms\n", (k == 0 ? "start" : (k == n / 2 ? "middle" : "end")), med[k] * 1000 >> tsv }
		print "" }'

# -- /metrics
for i in 1 2 3; do
	ip netns exec "$NS" curl -s "${CURL[@]}" -o /dev/null -w '%{time_total} %{size_download}\n' \
		-H "Authorization: Bearer $ADMIN" "$U/metrics"
done | sort -n | sed -n 2p | awk -v tsv="$FLEET_TSV" '{
	printf "metrics: %.2f ms, %d bytes (median of 3)\n", $1 * 1000, $2
	printf "metrics_time\t%.3f\tms\nmetrics_bytes\t%d\tB\n", $1 * 1000, $2 >> tsv }'

# -- SSE resume: the log holds one "enrolled" event per device
# (first byte and drain include the TLS handshake of a new connection)
for at in all:0 half:$((FLEET_N / 2)) head:$((FLEET_N - 100)); do
	ip netns exec "$NS" "$FB" sse -u "$U" "${CLI[@]}" -f "${at#*:}" -e "$FLEET_N" | tee "$T/sse.out" |
		grep -v '^TSV'
	awk -F'\t' -v k="${at%%:*}" '$1 == "TSV" { printf "sse_%s_first_byte\t%s\tms\nsse_%s_drain\t%s\ts\nsse_%s_events\t%s\tevents\n", k, $5, k, $7, k, $4 }' \
		"$T/sse.out" >>"$FLEET_TSV"
done
fi # FLEET_API

# -- restart after a crash: the daemons and their peers are still there
echo
kill -9 "$ED_PID"
wait "$ED_PID" 2>/dev/null
ED_PID=
L0=$(wc -l <"$T/wgd.log")
start restart
daemon_share "$L0"
echo "rss: $(rss_all) at ready after the restart"
tsv_rss rss_restart_ready
awk '$2 == "set" { n += $3 } END { printf "the daemons were sent %d peers in all\n", n }' "$T/wgd.log"
ed_stop
echo "TSV: $FLEET_TSV"
