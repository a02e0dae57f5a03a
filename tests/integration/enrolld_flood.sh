#!/bin/bash
# Connection exhaustion (issue 10.4): from one source (127.0.0.1) a client holds thousands of
# connections that sent half a request line, and from another (127.0.0.3) slow clients send
# their headers one byte a second. Meanwhile a third source (127.0.0.2) must get /healthz
# and a fleet API answer within a second, every time; enrolld's threads, descriptors and
# memory stay bounded; slow clients are cut at the header deadline; afterwards all is normal.
#
# On the thread-per-connection server this failed at once: the held connections took all
# max_connections slots (and a thread each), so the probes were refused or timed out and
# the thread and descriptor bounds broke; slow clients were never cut (each byte reset the
# idle timeout).
set -u
B=${B:-build}
ENROLLD=$B/enrolld
FLOOD=$B/tests/progs/http_flood
[ -x "$ENROLLD" ] && [ -x "$FLOOD" ] || { echo "not built: $ENROLLD $FLOOD"; exit 1; }
command -v curl >/dev/null || { echo "skip: curl not installed"; exit 77; }
# the attacker's sockets and enrolld's (max_connections + 256) need descriptors
ulimit -n 16384 2>/dev/null || ulimit -n "$(ulimit -Hn)" 2>/dev/null
[ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ] &&
	{ echo "skip: cannot raise RLIMIT_NOFILE to 4096"; exit 77; }

IDLE=3000        # held half-request connections from 127.0.0.1
SLOW=40          # slow-header clients from 127.0.0.3
PER_IP=64        # server.max_connections_per_ip
HEADER_TIMEOUT=3 # server.header_timeout
FLOOD_SECONDS=14

T=$(mktemp -d)
PID=
FPID=
cleanup() {
	[ -n "$FPID" ] && kill "$FPID" 2>/dev/null && wait "$FPID" 2>/dev/null
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fails=0
check() { # description, command...
	local d=$1
	shift
	if "$@"; then echo "ok   $d"; else echo "FAIL $d"; fails=$((fails + 1)); fi
}

ADMIN=admin-token-0123456789abcdef
echo "$ADMIN" >"$T/admin"
chmod 600 "$T/admin"
cat >"$T/e.conf" <<CONF
[server]
listen = 127.0.0.1
port = 0
threads = 2
max_connections = 1024
max_connections_per_ip = $PER_IP
header_timeout = $HEADER_TIMEOUT
connection_timeout = 30
[state]
db_path = $T/db
[auth]
admin_token_file = $T/admin
CONF

"$ENROLLD" -d -c "$T/e.conf" 2>"$T/log" &
PID=$!
PORT=
for _ in $(seq 50); do
	PORT=$(sed -n 's/.*port \([0-9]*\) (http).*/\1/p' "$T/log")
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "$PORT" ] || { echo "enrolld did not start"; cat "$T/log"; exit 1; }
U=http://127.0.0.1:$PORT

threads() { awk '/^Threads:/ { print $2 }' /proc/$PID/status; }
rss_kb() { awk '/^VmRSS:/ { print $2 }' /proc/$PID/status; }
fds() { ls /proc/$PID/fd | wc -l; }
# a probe from 127.0.0.2: HTTP status and seconds, "000" when refused or over a second
probe() { # path [curl args...]
	local p=$1
	shift
	curl -s -o /dev/null --interface 127.0.0.2 --max-time 1 -w '%{http_code} %{time_total}' \
		"$@" "$U$p"
}

check "before: /healthz from 127.0.0.2" [ "$(probe /healthz | cut -d' ' -f1)" = 200 ]
base_threads=$(threads)
base_fds=$(fds)
base_rss=$(rss_kb)
echo "     baseline: threads $base_threads, fds $base_fds, rss ${base_rss} kB"

"$FLOOD" "$PORT" 127.0.0.1 $IDLE 127.0.0.3 $SLOW $FLOOD_SECONDS >"$T/flood" &
FPID=$!
sleep 2
max_threads=0 max_fds=0 max_rss=0 probes=0 bad=0 slowest=0
end=$((SECONDS + FLOOD_SECONDS - 4))
while [ $SECONDS -lt $end ]; do
	for p in /healthz /v1/tenants; do
		out=$(probe $p -H "Authorization: Bearer $ADMIN")
		probes=$((probes + 1))
		set -- $out
		if [ "$1" != 200 ]; then
			bad=$((bad + 1))
			echo "     probe $p: $out"
		fi
		slowest=$(awk -v a="$slowest" -v b="$2" 'BEGIN { print (b > a) ? b : a }')
	done
	t=$(threads) f=$(fds) r=$(rss_kb)
	[ "$t" -gt $max_threads ] && max_threads=$t
	[ "$f" -gt $max_fds ] && max_fds=$f
	[ "$r" -gt $max_rss ] && max_rss=$r
	sleep 0.3
done
wait "$FPID"
FPID=
echo "     flood: $(cat "$T/flood")"
echo "     during: $probes probes, $bad failed, slowest ${slowest}s; max threads $max_threads," \
	"fds $max_fds, rss ${max_rss} kB"
check "the flood really held connections (>= $PER_IP idle at once)" \
	[ "$(sed -n 's/.*idle_open_max=\([0-9]*\).*/\1/p' "$T/flood")" -ge $PER_IP ]
check "every probe from another source answered 200 within 1 s ($probes probes)" \
	[ $probes -ge 10 -a $bad = 0 ]
check "threads stay bounded (<= baseline + 4: no thread per connection)" \
	[ $max_threads -le $((base_threads + 4)) ]
check "descriptors stay bounded (<= baseline + 2 x per-source limit + 16)" \
	[ $max_fds -le $((base_fds + 2 * PER_IP + 16)) ]
check "memory stays bounded (RSS <= baseline + 64 MiB)" [ $max_rss -le $((base_rss + 65536)) ]
slow_closed=$(sed -n 's/.*slow_closed=\([0-9]*\).*/\1/p' "$T/flood")
slow_life=$(sed -n 's/.*slow_life_max_ms=\([0-9]*\).*/\1/p' "$T/flood")
check "slow-header clients are cut at the header deadline (${HEADER_TIMEOUT}s + 1.5s)" \
	[ "$slow_closed" -ge $SLOW -a "$slow_life" -gt 0 -a \
	"$slow_life" -le $((HEADER_TIMEOUT * 1000 + 1500)) ]

# afterwards: the held connections are gone, everyone is served
for _ in $(seq 30); do [ "$(fds)" -le $((base_fds + 4)) ] && break; sleep 0.2; done
check "after: descriptors back to the baseline" [ "$(fds)" -le $((base_fds + 4)) ]
check "after: /healthz from 127.0.0.1 (the attacker's source) answers" \
	[ "$(curl -s -o /dev/null -w '%{http_code}' --max-time 1 "$U/healthz")" = 200 ]
check "after: the fleet API answers" \
	[ "$(probe /v1/tenants -H "Authorization: Bearer $ADMIN" | cut -d' ' -f1)" = 200 ]
check "enrolld is still running" kill -0 $PID

kill "$PID"
wait "$PID"
PID=
echo "$fails check(s) failed"
[ $fails = 0 ]
