#!/bin/bash
# Health and programming at fleet size (not a test; `make bench`, or BENCHES=plane
# tests/bench/run.sh): build/tests/bench/plane_bench in a private network namespace.
#   tick: one health tick over N devices (TICK_SIZES, default "10000 100000"; wireguard-go
#         interfaces of at most 50,000 peers each), wall and CPU, ROUNDS (5) ticks, medians;
#   add:  one peer added through plane_device_sync() to an interface holding N
#         (ADD_SIZES, default "1000 10000 65000": wireguard-go, which holds at most 65,536
#         peers), and to one served by the bench's null daemon over a TUN link for N in
#         ADD_NULL_SIZES ("1000 100000 1000000"); ADD_ROUNDS (21) adds, medians.
# PLANE_BENCHES="old:/tmp/x/plane_bench new:build/tests/bench/plane_bench" runs several
# builds point by point, interleaved. Results: docs/benchmarks.md.
set -u -o pipefail
B=${B:-build}
PLANE_BENCHES=${PLANE_BENCHES:-"new:$B/tests/bench/plane_bench"}
TICK_SIZES=${TICK_SIZES-"10000 100000"}
ADD_SIZES=${ADD_SIZES-"1000 10000 65000"}
ADD_NULL_SIZES=${ADD_NULL_SIZES-"1000 100000 1000000"}
ROUNDS=${ROUNDS:-5}
ADD_ROUNDS=${ADD_ROUNDS:-21}
for lb in $PLANE_BENCHES; do
	[ -x "${lb#*:}" ] || { echo "${lb#*:} not built (make)"; exit 1; }
done
for t in wireguard-go ip; do command -v $t >/dev/null || { echo "$t not installed"; exit 1; }; done

NS=planebench$$
TUN=pbF$$
cleanup() {
	ip netns del "$NS" 2>/dev/null
	rm -f "/var/run/wireguard/$TUN.sock"
}
trap cleanup EXIT
ip netns add "$NS" || exit 1
ip -n "$NS" tuntap add dev "$TUN" mode tun || exit 1

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%d GB", $2 / 1048576 }' /proc/meminfo)," \
	"Debian $(cat /etc/debian_version), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "tools: $(wireguard-go --version | head -n1)"
run() { # label bench args...
	local label=$1 bench=$2
	shift 2
	echo "-- $label: plane_bench $*"
	ip netns exec "$NS" "$bench" "$@" 2>&1 | grep -v "^tenant '" || { echo "plane_bench failed"; exit 1; }
}
for N in $TICK_SIZES; do
	echo
	echo "== health tick, N=$N (load $(cut -d' ' -f1-3 /proc/loadavg))"
	for lb in $PLANE_BENCHES; do run "${lb%%:*}" "${lb#*:}" -r "$ROUNDS" tick "$N"; done
done
for N in $ADD_SIZES; do
	echo
	echo "== add one peer, N=$N, wireguard-go (load $(cut -d' ' -f1-3 /proc/loadavg))"
	for lb in $PLANE_BENCHES; do run "${lb%%:*}" "${lb#*:}" -r "$ADD_ROUNDS" add "$N"; done
done
for N in $ADD_NULL_SIZES; do
	echo
	echo "== add one peer, N=$N, null daemon (load $(cut -d' ' -f1-3 /proc/loadavg))"
	for lb in $PLANE_BENCHES; do
		run "${lb%%:*}" "${lb#*:}" -r "$ADD_ROUNDS" -F -i "$TUN" add "$N"
	done
done
