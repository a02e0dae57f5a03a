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
# builds point by point, interleaved. Results: docs/benchmarks.md. Every figure is also
# appended as TSV to $PLANE_TSV (build/bench/plane.tsv; tests/bench/plots.sh draws it):
#   tick LABEL N WALL_MS CPU_MS                  (medians)
#   add|add_null LABEL N SYNC_MS MAX_MS ENROLL_MS
set -u -o pipefail
B=${B:-build}
PLANE_BENCHES=${PLANE_BENCHES:-"new:$B/tests/bench/plane_bench"}
TICK_SIZES=${TICK_SIZES-"10000 100000"}
ADD_SIZES=${ADD_SIZES-"1000 10000 65000"}
ADD_NULL_SIZES=${ADD_NULL_SIZES-"1000 100000 1000000"}
ROUNDS=${ROUNDS:-5}
ADD_ROUNDS=${ADD_ROUNDS:-21}
PLANE_TSV=${PLANE_TSV:-$B/bench/plane.tsv}
mkdir -p "$(dirname "$PLANE_TSV")" && : >"$PLANE_TSV"
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
	ip netns exec "$NS" "$bench" "$@" 2>&1 | grep -v "^tenant '" | tee >(tsv "$label" >>"$PLANE_TSV") ||
		{ echo "plane_bench failed"; exit 1; }
}
# plane_bench's result lines as TSV
tsv() { # label
	awk -v label="$1" '
	function num(re,   s) { if (!match($0, re)) return ""; s = substr($0, RSTART, RLENGTH)
		sub(/^[^(]*\(/, "", s); sub(/^[^0-9]*/, "", s); return s + 0 }
	/^tick N=/ { printf "tick\t%s\t%d\t%.3f\t%.3f\n", label, num("N=[0-9]+"),
		num("wall [0-9.]+"), num("CPU tick thread [0-9.]+") }
	/^add one to N=/ { printf "%s\t%s\t%d\t%.4f\t%.4f\t%.4f\n", /null daemon/ ? "add_null" : "add",
		label, num("N=[0-9]+"), num("plane_device_sync [0-9.]+"),
		num("plane_device_sync [0-9.]+ ms \\([0-9.]+"), num("store_enroll [0-9.]+") }'
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
