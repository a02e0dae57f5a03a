#!/bin/bash
# The WireGuard control benchmark (not a test; `make bench`): for each N in $SIZES
# (default "10000 65536 100000"), two fresh wireguard-go interfaces in a private network
# namespace; build/tests/bench/wg_bench programs N peers into one through our module and
# into the other with `wg setconf`, reads them back (wg_get_device / `wg show dump`),
# revokes one peer each way, and prints the times and the ratio. Then, as whole
# commands, `wgctl show` against `wg show dump` on the same interface (their outputs
# must be identical), and each wireguard-go's memory.
# wireguard-go refuses more than 65,536 peers per interface (MaxPeers = 1 << 16): at
# 100,000 both tools are refused, and the run says so. For each N in $NULL_SIZES
# (default "100000") the two clients are then timed against wg_bench's null daemon (-F).
# ROUNDS (default 3) repeats set and get. Results: docs/benchmarks.md.
# BENCHES (default "enroll plane fleet wg") picks the benchmarks; enroll is
# tests/bench/enroll_run.sh, plane (health tick, add one peer) tests/bench/plane_run.sh,
# fleet (store and API at FLEET_N devices, default 100,000 here; the 1,000,000 run takes
# about 15 minutes: FLEET_N=1000000 tests/bench/fleet_run.sh) tests/bench/fleet_run.sh;
# "kernel" (not in the default: a qemu VM, minutes) is tests/bench/kernel_run.sh, the same
# comparison as wg on kernel WireGuard links; "cluster" (not in the default: about ten
# minutes) is tests/bench/cluster_run.sh, 1-3 enrolld nodes on one PostgreSQL next to LMDB,
# and "pgfleet" tests/bench/pg_fleet.sh, PostgreSQL's size per device and reads at 100,000.
set -u
B=${B:-build}
BENCHES=${BENCHES:-"enroll plane fleet wg"}
if [[ " $BENCHES " == *" enroll "* ]]; then
	B=$B "$(dirname "$0")/enroll_run.sh" || exit 1
fi
if [[ " $BENCHES " == *" plane "* ]]; then
	B=$B "$(dirname "$0")/plane_run.sh" || exit 1
fi
if [[ " $BENCHES " == *" fleet "* ]]; then
	B=$B FLEET_N=${FLEET_N:-100000} "$(dirname "$0")/fleet_run.sh" || exit 1
fi
if [[ " $BENCHES " == *" kernel "* ]]; then
	B=$B "$(dirname "$0")/kernel_run.sh" || exit 1
fi
if [[ " $BENCHES " == *" cluster "* ]]; then
	B=$B "$(dirname "$0")/cluster_run.sh" || exit 1
fi
if [[ " $BENCHES " == *" pgfleet "* ]]; then
	B=$B "$(dirname "$0")/pg_fleet.sh" || exit 1
fi
[[ " $BENCHES " == *" wg "* ]] || exit 0
SIZES=${SIZES:-"10000 65536 100000"}
NULL_SIZES=${NULL_SIZES:-"100000"}
ROUNDS=${ROUNDS:-3}
BENCH=$B/tests/bench/wg_bench
WGCTL=$B/tests/progs/wgctl
SOCKDIR=/var/run/wireguard
for x in "$BENCH" "$WGCTL"; do [ -x "$x" ] || { echo "$x not built (make)"; exit 1; }; done
for t in wireguard-go wg ip; do command -v $t >/dev/null || { echo "$t not installed"; exit 1; }; done

S=$$
NS=wgbench$S
T=$(mktemp -d /tmp/wg_bench.XXXXXX)
PIDS=()
IFS_USED=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	for i in "${IFS_USED[@]}"; do rm -f "$SOCKDIR/$i.sock"; done
	ip netns del "$NS" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT

# wireguard-go's memory: its peak (VmHWM) and current resident set, in MB
mem() { awk '/^VmHWM|^VmRSS/ { printf "%s %d MB  ", $1, $2 / 1024 }' "/proc/$1/status"; }

start_wg() { # ifname -> sets WGPID
	ip netns exec "$NS" wireguard-go -f "$1" >"$T/$1.log" 2>&1 &
	WGPID=$!
	PIDS+=($WGPID)
	IFS_USED+=("$1")
	for _ in $(seq 200); do [ -S "$SOCKDIR/$1.sock" ] && return 0; sleep 0.05; done
	echo "wireguard-go $1 did not start"; exit 1
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%d GB", $2 / 1048576 }' /proc/meminfo)," \
	"Debian $(cat /etc/debian_version), kernel $(uname -r)"
echo "tools: $(wireguard-go --version | head -n1), $(wg --version | cut -d' ' -f1-2)"
ip netns add "$NS" || exit 1

k=0
for N in $SIZES; do
	k=$((k + 1))
	OURS=wgbO$S$k THEIRS=wgbW$S$k
	start_wg "$OURS"
	PID_OURS=$WGPID
	start_wg "$THEIRS"
	PID_THEIRS=$WGPID
	echo
	echo "== N=$N  (ours: $OURS, wg: $THEIRS; interfaces down, one /32 per peer)"
	/usr/bin/time -f "wg_bench: %e s wall, %M KB max RSS" "$BENCH" -r "$ROUNDS" -n "$N" \
		"$OURS" "$THEIRS" 2>&1
	rc=$?
	echo "wireguard-go memory: ours $(mem "$PID_OURS")"
	echo "wireguard-go memory: wg   $(mem "$PID_THEIRS")"
	if [ $rc = 3 ]; then
		echo "wireguard-go refused $N peers:" \
			"$(grep -m1 -o 'IPC error.*' "$T/$OURS.log") / $(grep -m1 -o 'IPC error.*' "$T/$THEIRS.log")"
		kill "$PID_OURS" "$PID_THEIRS"
		wait "$PID_OURS" "$PID_THEIRS" 2>/dev/null
		continue
	fi
	[ $rc = 0 ] || { echo "wg_bench failed"; exit 1; }

	# Whole commands on one interface: our reader and wg's must print the same dump.
	t0=$(date +%s.%N)
	"$WGCTL" show "$THEIRS" >"$T/ours.dump" || { echo "wgctl show failed"; exit 1; }
	t1=$(date +%s.%N)
	wg show "$THEIRS" dump >"$T/wg.dump" || { echo "wg show failed"; exit 1; }
	t2=$(date +%s.%N)
	# wireguard-go lists peers in map order, which differs between two reads: sort
	if ! diff <(sort "$T/ours.dump") <(sort "$T/wg.dump") >/dev/null; then
		echo "wgctl show and wg show dump differ"; exit 1
	fi
	awk -v a="$t0" -v b="$t1" -v c="$t2" 'BEGIN {
		printf "%-8s ours %9.3f s   wg %9.3f s   wg/ours %6.2f", "show", b - a, c - b, (c - b) / (b - a)
		print "   (wgctl show vs wg show dump, whole commands, outputs identical)" }'

	kill "$PID_OURS" "$PID_THEIRS"
	wait "$PID_OURS" "$PID_THEIRS" 2>/dev/null
done

for N in $NULL_SIZES; do
	echo
	echo "== N=$N against wg_bench's null daemon (clients alone)"
	IFS_USED+=("wgbF$S")
	/usr/bin/time -f "wg_bench: %e s wall, %M KB max RSS (includes the null daemon's dump)" \
		"$BENCH" -F -r "$ROUNDS" -n "$N" "wgbF$S" 2>&1 || { echo "wg_bench -F failed"; exit 1; }
done
