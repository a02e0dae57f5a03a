#!/bin/bash
# Crash test of enrolld's LMDB store: a child enrolls devices from 4 threads and writes a
# line per acknowledged enrollment; it is killed with SIGKILL at a random moment, the store
# is reopened and checked (every acknowledged enrollment present with its address, no
# address held twice, indexes consistent with the records, token uses = enrollments).
# ROUNDS (default 20) rounds; about 15 s in all.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
ROUNDS=${ROUNDS:-20}
prog=$B/tests/progs/store_crash
if [ ! -x "$prog" ]; then
	echo "$prog not built (make $prog)"
	exit 77
fi

# On disk, not tmpfs: fsync must mean something.
work=$(mktemp -d /var/tmp/store_crash.XXXXXX)
child=
cleanup() {
	[ -n "$child" ] && kill -9 "$child" 2>/dev/null && wait "$child" 2>/dev/null
	rm -rf "$work"
}
trap cleanup EXIT

"$prog" init "$work/db" || { echo "init failed"; exit 1; }
killed_busy=0
for round in $(seq 1 "$ROUNDS"); do
	before=0
	[ -f "$work/acks" ] && before=$(wc -l <"$work/acks")
	"$prog" run "$work/db" "$work/acks" "$round" 4 &
	child=$!
	# 20..600 ms: sometimes during open, mostly in the middle of commits.
	sleep "$(printf '0.%03d' $((20 + RANDOM % 580)))"
	if ! kill -9 "$child" 2>/dev/null; then
		echo "round $round: the child ended before it was killed"
		wait "$child"
		exit 1
	fi
	wait "$child" 2>/dev/null
	child=
	after=0
	[ -f "$work/acks" ] && after=$(wc -l <"$work/acks")
	[ "$after" -gt "$before" ] && killed_busy=$((killed_busy + 1))
	printf 'round %2d: ' "$round"
	"$prog" check "$work/db" "$work/acks" || { echo "round $round: check failed"; exit 1; }
done
# The test means something only if the child was killed while acknowledging enrollments.
if [ "$killed_busy" -lt $((ROUNDS / 2)) ]; then
	echo "only $killed_busy of $ROUNDS rounds enrolled anything before the kill"
	exit 1
fi
# And the checker can fail: an acknowledgement the store does not hold must be caught.
cp "$work/acks" "$work/acks.bad"
echo "999999999 0 1 10.192.0.2" >>"$work/acks.bad"
if "$prog" check "$work/db" "$work/acks.bad" >/dev/null 2>&1; then
	echo "check accepted an acknowledgement the store does not hold"
	exit 1
fi
echo "ok: $ROUNDS kills, $killed_busy while enrolling, $(wc -l <"$work/acks") acknowledged"
