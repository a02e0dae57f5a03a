#!/bin/bash
# make fuzz-long: each libFuzzer target in build/fuzz (or those named in FUZZ_TARGETS) for
# FUZZ_SECONDS (default 300), one after the other, a single fuzzing process each (no -jobs),
# niced.
# The corpus of each lives on in build/fuzz/corpus-long/<target> (new units are added there;
# tests/fuzz/corpus/<short name> is read as seeds on every run), its findings (crash-*,
# leak-*, timeout-*, oom-*) in build/fuzz/corpus-long/<target>.findings/, its log in
# build/fuzz/corpus-long/<target>.log. tests/fuzz/<target>.dict is used when present.
# Prints one line per target (executions, exec/s, final coverage and features, corpus size,
# findings) into build/fuzz/corpus-long/summary.txt as well; exits 1 if any target found
# something or failed. make fuzz-cov then measures what the corpus reaches (coverage.sh).
set -u
cd "$(dirname "$0")/../.."
FUZZ_SECONDS=${FUZZ_SECONDS:-300}
FUZZ_NICE=${FUZZ_NICE:-10}
OUT=build/fuzz/corpus-long
mkdir -p "$OUT"
targets=()
if [ -n "${FUZZ_TARGETS:-}" ]; then
	for n in $FUZZ_TARGETS; do targets+=("build/fuzz/$n"); done
else
	for t in build/fuzz/fuzz_*; do [ -x "$t" ] && targets+=("$t"); done
fi
fail=0
summary=$OUT/summary.txt
printf '# %s, FUZZ_SECONDS=%s\n' "$(date -u +%Y-%m-%dT%H:%MZ)" "$FUZZ_SECONDS" >>"$summary"
for t in "${targets[@]}"; do
	name=${t##*/}
	if [ ! -x "$t" ]; then
		echo "fuzz-long: $t is not built (make fuzz)" >&2
		fail=1
		continue
	fi
	corpus=$OUT/$name
	found=$OUT/$name.findings
	log=$OUT/$name.log
	seeds=tests/fuzz/corpus/${name#fuzz_}
	mkdir -p "$corpus" "$found"
	args=(-max_total_time="$FUZZ_SECONDS" -timeout=25 -rss_limit_mb=2048
		-print_final_stats=1 -artifact_prefix="$found/")
	[ -f "tests/fuzz/$name.dict" ] && args+=(-dict="tests/fuzz/$name.dict")
	dirs=("$corpus")
	[ -d "$seeds" ] && dirs+=("$seeds")
	start=$(date +%s)
	nice -n "$FUZZ_NICE" "$t" "${args[@]}" "${dirs[@]}" >"$log" 2>&1
	rc=$?
	secs=$(($(date +%s) - start))
	execs=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n1)
	rate=$(sed -n 's/^stat::average_exec_per_sec: *//p' "$log" | tail -n1)
	last=$(grep -E '^#[0-9]+.*cov: ' "$log" | tail -n1)
	cov=$(sed -n 's/.*cov: \([0-9]*\).*/\1/p' <<<"$last")
	ft=$(sed -n 's/.*ft: \([0-9]*\).*/\1/p' <<<"$last")
	units=$(find "$corpus" -type f | wc -l)
	findings=$(find "$found" -type f \( -name 'crash-*' -o -name 'leak-*' -o \
		-name 'timeout-*' -o -name 'oom-*' \) | wc -l)
	line=$(printf '%-22s %4ss  execs %-9s exec/s %-6s cov %-6s ft %-6s corpus %-5s findings %s' \
		"$name" "$secs" "${execs:-?}" "${rate:-?}" "${cov:-?}" "${ft:-?}" "$units" "$findings")
	if [ "$rc" -ne 0 ] || [ "$findings" -ne 0 ]; then
		line="$line  FAIL (exit $rc, log $log)"
		fail=1
	fi
	echo "$line"
	echo "$line" >>"$summary"
	if [ "$findings" -ne 0 ]; then
		find "$found" -type f \( -name 'crash-*' -o -name 'leak-*' -o -name 'timeout-*' \
			-o -name 'oom-*' \) | sed 's/^/    finding: /'
		grep -m 5 -E 'ERROR: |SUMMARY: ' "$log" | sed 's/^/    /'
	fi
done
exit "$fail"
