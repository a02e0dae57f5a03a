#!/bin/bash
# make fuzz-cov: the source coverage each libFuzzer target reaches with its corpus.
# For each target (or those in FUZZ_TARGETS): replay build/fuzz/corpus-long/<target> (make
# fuzz-long) and its seeds tests/fuzz/corpus/<short name> once (-runs=0) with the coverage
# build build/fuzz-cov/<target> (-fprofile-instr-generate -fcoverage-mapping, no
# sanitizers), merge the profile (llvm-profdata) and report (llvm-cov) on our sources only
# (common/ enrolld/ edge-keyd/ enrollctl/; not the tests, not libraries).
# Output in build/fuzz-cov/report/: <target>.txt (llvm-cov report, per file) and
# summary.txt, one line per target (kept across runs; a target's line is replaced when it
# runs again): the files it reaches (a function executed), and over those files lines and
# functions covered; also the same over all of our sources linked in.
set -u
cd "$(dirname "$0")/../.."
find_tool() { # name: name-14 first (Debian's llvm-14), then name
	command -v "$1-14" 2>/dev/null || command -v "$1" 2>/dev/null || {
		echo "fuzz-cov: $1 not found (Debian package llvm-14, scripts/install-deps.sh)" >&2
		exit 1
	}
}
LLVM_COV=${LLVM_COV:-$(find_tool llvm-cov)}
LLVM_PROFDATA=${LLVM_PROFDATA:-$(find_tool llvm-profdata)}
OUT=build/fuzz-cov/report
SRC=(common enrolld edge-keyd enrollctl)
mkdir -p "$OUT"
targets=()
if [ -n "${FUZZ_TARGETS:-}" ]; then
	for n in $FUZZ_TARGETS; do targets+=("build/fuzz-cov/$n"); done
else
	for t in build/fuzz-cov/fuzz_*; do [ -x "$t" ] && targets+=("$t"); done
fi
summary=$OUT/summary.txt
touch "$summary"
fail=0
for bin in "${targets[@]}"; do
	name=${bin##*/}
	if [ ! -x "$bin" ]; then
		echo "fuzz-cov: $bin is not built (make fuzz-cov builds it)" >&2
		fail=1
		continue
	fi
	dirs=()
	for d in "build/fuzz/corpus-long/$name" "tests/fuzz/corpus/${name#fuzz_}"; do
		[ -d "$d" ] && dirs+=("$d")
	done
	rm -f "$OUT/$name".*.profraw "$OUT/$name.profdata"
	# every input once; a crashing input (a finding of fuzz-long) stops the replay: say so
	if ! LLVM_PROFILE_FILE="$OUT/$name.%p.profraw" "$bin" -runs=0 "${dirs[@]}" \
		>"$OUT/$name.log" 2>&1; then
		echo "fuzz-cov: $name: the replay failed (log $OUT/$name.log)" >&2
		fail=1
	fi
	units=$(sed -n 's/.*INFO: *\([0-9]*\) files found in.*/\1/p' "$OUT/$name.log" | \
		awk '{s += $1} END {print s + 0}')
	"$LLVM_PROFDATA" merge -sparse "$OUT/$name".*.profraw -o "$OUT/$name.profdata" || {
		fail=1
		continue
	}
	rm -f "$OUT/$name".*.profraw
	"$LLVM_COV" report "$bin" -instr-profile="$OUT/$name.profdata" \
		-ignore-filename-regex='(^|/)(tests|build)/' "${SRC[@]}" >"$OUT/$name.txt" || {
		fail=1
		continue
	}
	# Filename Regions Missed Cover Functions Missed Executed Lines Missed Cover ...
	line=$(awk -v name="$name" -v units="$units" '
		$1 ~ /\.c$/ && NF >= 10 {
			fl += $5; fm += $6; ll += $8; lm += $9
			if ($5 > $6) { rf++; rfl += $5; rfm += $6; rll += $8; rlm += $9 }
			nf++
		}
		function pct(a, m) { return a ? sprintf("%.1f%%", 100 * (a - m) / a) : "-" }
		END {
			printf "%-22s inputs %-6s reached %2d of %2d files: lines %s (%d/%d) functions %s (%d/%d); all files: lines %s functions %s\n",
				name, units, rf, nf, pct(rll, rlm), rll - rlm, rll, pct(rfl, rfm),
				rfl - rfm, rfl, pct(ll, lm), pct(fl, fm)
		}' "$OUT/$name.txt")
	echo "$line"
	# this target's line replaces its old one; other targets' lines stay (FUZZ_TARGETS runs)
	{ grep -v "^$name " "$summary"; echo "$line"; } | sort >"$summary.new" &&
		mv "$summary.new" "$summary"
done
exit "$fail"
