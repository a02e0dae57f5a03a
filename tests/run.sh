#!/bin/bash
# The test runner behind `make check`. Runs, in order:
#   unit         every cmocka binary in $B/tests/unit, then test_store once more against a
#                throw-away PostgreSQL (unit/test_store_pg)
#   fuzz         every libFuzzer target in build/fuzz, briefly, on its seed corpus
#   integration  every tests/integration/*.sh (exit 0 pass, 77 skip, else fail), except
#                *_lib.sh: libraries the tests source
#   kernel       tests/kernel/run.sh (generic netlink against the real kernel module, in qemu)
#   vm           tests/vm/run.sh (the deployment stack in Debian VMs under systemd), then
#                tests/vm/seed.sh (wg-quick@ and systemd-networkd on it)
# With no argument it runs all five. It ends with one line "N passed, N failed, N skipped".
# FUZZ_SECONDS (default 10) bounds each fuzz run; ONLY=<regex> filters test names, SKIP=<regex>
# leaves names out.
set -u
cd "$(dirname "$0")/.."
B=${B:-build}
FUZZ_SECONDS=${FUZZ_SECONDS:-10}
ONLY=${ONLY:-}
SKIP=${SKIP:-}
passed=0 failed=0 skipped=0
failures=()
LOGDIR=$B/test-logs
mkdir -p "$LOGDIR"

want() { { [ -z "$ONLY" ] || [[ $1 =~ $ONLY ]]; } && { [ -z "$SKIP" ] || ! [[ $1 =~ $SKIP ]]; }; }

record() { # name rc logfile
	case $2 in
	0) passed=$((passed + 1)); printf 'PASS  %s\n' "$1" ;;
	77) skipped=$((skipped + 1)); printf 'SKIP  %s (%s)\n' "$1" "$(tail -n1 "$3" 2>/dev/null)" ;;
	*) failed=$((failed + 1)); failures+=("$1"); printf 'FAIL  %s (exit %s, log %s)\n' "$1" "$2" "$3"
	   # the failed checks first (a long log's tail may not hold them), then the tail
	   grep -m 20 -E '^[[:space:]|]*FAIL' "$3" | sed 's/^/      ! /'
	   tail -n 40 "$3" | sed 's/^/      | /' ;;
	esac
}

run_unit() {
	local t name log
	for t in "$B"/tests/unit/test_*; do
		[ -x "$t" ] || continue
		name=unit/$(basename "$t")
		want "$name" || continue
		log=$LOGDIR/$(basename "$t").log
		"$t" >"$log" 2>&1
		record "$name" $? "$log"
		# cmocka's own summary lines, for CI's reader
		grep -E '^\[  (PASSED|FAILED)  \]' "$log" | sed 's/^/      /'
	done
	run_store_pg
}

# The suites that need PostgreSQL, each against a throw-away server (tests/pg_lib.sh) in
# a temp dir, gone afterwards: the store's suite again (test_store_pg), the tenant
# leases of a cluster (test_cluster_lease_pg; run alone it skips everything) and the
# migration between backends with its PostgreSQL legs (test_store_migrate_pg).
run_store_pg() {
	local t name log
	for t in test_store test_cluster_lease test_store_migrate; do
		name=unit/${t}_pg
		log=$LOGDIR/${t}_pg.log
		[ -x "$B/tests/unit/$t" ] || continue
		want "$name" || continue
		(
			. tests/pg_lib.sh
			pg_test_start || exit 1
			STORE_TEST_PG=$PG_TEST_CONN "$B/tests/unit/$t"
		) >"$log" 2>&1
		record "$name" $? "$log"
		grep -E '^\[  (PASSED|FAILED)  \]' "$log" | sed 's/^/      /'
	done
}

run_fuzz() {
	local t name log corpus work
	for t in build/fuzz/fuzz_*; do
		[ -x "$t" ] || continue
		name=fuzz/$(basename "$t")
		want "$name" || continue
		log=$LOGDIR/$(basename "$t").log
		corpus=tests/fuzz/corpus/${t##*/fuzz_}
		work=$(mktemp -d)
		[ -d "$corpus" ] && cp -r "$corpus"/. "$work"/ 2>/dev/null
		# -error_exitcode: libFuzzer exits 77 on a finding by default, which reads as a skip here
		(cd "$work" && "$OLDPWD/$t" -max_total_time="$FUZZ_SECONDS" -timeout=10 -error_exitcode=1 \
			-rss_limit_mb=2048 -print_final_stats=1 . ) >"$log" 2>&1
		record "$name" $? "$log"
		rm -rf "$work"
	done
}

run_integration() {
	local t name log
	for t in tests/integration/*.sh; do
		[ -f "$t" ] || continue
		case $t in *_lib.sh) continue ;; esac
		name=integration/$(basename "$t" .sh)
		want "$name" || continue
		log=$LOGDIR/$(basename "$t" .sh).log
		B=$B timeout 900 bash "$t" >"$log" 2>&1
		record "$name" $? "$log"
	done
}

run_kernel() {
	# one VM boot, one result per scenario (tests/kernel/run.sh writes "NAME RC" lines)
	local log=$LOGDIR/kernel.log res=$LOGDIR/kernel.results scen=() s rc line
	for s in genl enrolld; do
		want "kernel/$s" && scen+=("$s")
	done
	[ ${#scen[@]} -gt 0 ] || return 0
	[ -f tests/kernel/run.sh ] || return 0
	[[ $res == /* ]] || res=$PWD/$res
	rm -f "$res"
	B=$B KTEST_SCENARIOS="${scen[*]}" KTEST_RESULT_FILE=$res timeout 900 \
		bash tests/kernel/run.sh >"$log" 2>&1
	rc=$?
	for s in "${scen[@]}"; do
		# no line of its own (skipped, or failed before the VM ran): the script's status
		line=$(grep -E "^$s [0-9]+$" "$res" 2>/dev/null | tail -n1)
		if [ -n "$line" ]; then
			record "kernel/$s" "${line#* }" "$log"
		else
			record "kernel/$s" "$rc" "$log"
		fi
	done
}

# One VM script: its scenarios (those the filters want) as NAME/SCENARIO results, from the
# "SCENARIO RC" lines it writes; a scenario without a line gets the script's status.
vm_script() { # NAME SCRIPT SCENARIO...
	local name=$1 script=$2 log res scen=() s line rc rc_s
	shift 2
	for s in "$@"; do
		want "$name/$s" && scen+=("$s")
	done
	[ ${#scen[@]} -gt 0 ] || return 0
	log=$LOGDIR/$name.log res=$LOGDIR/$name.results
	[[ $res == /* ]] || res=$PWD/$res
	rm -f "$res"
	B=$B VM_SCENARIOS="${scen[*]}" VM_RESULT_FILE=$res timeout 3600 bash "$script" >"$log" 2>&1
	rc=$?
	for s in "${scen[@]}"; do
		line=$(grep -E "^$s [0-9]+$" "$res" 2>/dev/null | tail -n1)
		[ -n "$line" ] && rc_s=${line#* } || rc_s=$rc
		record "$name/$s" "$rc_s" "$log"
	done
}

run_vm() {
	# a control-plane and a gateway VM, one result per scenario; then the seed's path
	# (wg-quick@, systemd-networkd) in its own pair of VMs, after it: boots slow badly
	# when two pairs run at once
	vm_script vm tests/vm/run.sh cp gateway reboot pcr powercut revoke
	vm_script vm-seed tests/vm/seed.sh wgquick-tpm wgquick-x509 networkd
}

stages=("$@")
[ ${#stages[@]} -eq 0 ] && stages=(unit fuzz integration kernel vm)
for s in "${stages[@]}"; do
	echo "== $s"
	"run_$s"
done

echo
if [ ${#failures[@]} -gt 0 ]; then
	echo "failed: ${failures[*]}"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" -eq 0 ]
