#!/bin/bash
# Draw the benchmarks' TSV output as PNGs for docs/benchmarks.md (needs gnuplot; Debian:
# gnuplot-nox). Not part of `make bench`: run it after the benchmarks whose figures you want.
#
#   tests/bench/plots.sh [OUTDIR]       (default docs/img)
#
# Inputs, each optional (a missing one skips its plots):
#   $B/bench/enroll.tsv     tests/bench/enroll_run.sh, e.g. MODES=https CONCS="1 2 4 8 16 32 64"
#                           -> bench-enroll-latency.png, bench-enroll-rate.png
#   $B/bench/plane.tsv      tests/bench/plane_run.sh
#                           -> bench-health-tick.png, bench-add-peer.png
#   $B/bench/fleet-*.tsv    tests/bench/fleet_run.sh at several FLEET_N
#                           -> bench-fleet.png
set -u
B=${B:-build}
OUT=${1:-docs/img}
command -v gnuplot >/dev/null || { echo "gnuplot not installed (Debian: apt-get install gnuplot-nox)"; exit 1; }
mkdir -p "$OUT"
D=$(mktemp -d /tmp/plots.XXXXXX)
trap 'rm -rf "$D"' EXIT
TERM_PNG='set terminal pngcairo size 900,560 font ",11" noenhanced'
made=()

# ---- enrollments: one line per EK and mode
E=$B/bench/enroll.tsv
if [ -s "$E" ]; then
	# per series (label ek mode): conc rate p50 p99 max cpu, sorted by concurrency
	# (a point where enrollments failed is left out: its rate and latencies are not those
	# of complete enrollments)
	awk -F'\t' -v d="$D" '$1 == "run" && $11 + 0 == 0 {
		f = d "/enr@" $2 "@" $3 "@" $4 ".dat"; print $5, $6, $7, $8, $9, $10 | "sort -n > \"" f "\"" }
		$1 == "ceiling" { k = $3 "@" ($4 == "https" ? "https" : "http")
			if ($6 * $5 > ceil[k]) { ceil[k] = $6 * $5; cores[k] = $5 } }
		END { for (k in ceil) print ceil[k], cores[k] > (d "/ceil-" k ".txt") }' "$E"
	lat="" rate=""
	for f in "$D"/enr@*.dat; do
		s=$(basename "$f" .dat)
		s=${s#enr@}
		ek=$(echo "$s" | cut -d@ -f2)
		# the ceiling of the series' mode (https: with the handshake), the highest of the run,
		# drawn once per EK and mode
		cm=$(echo "$s" | cut -d@ -f3)
		[ "$cm" = https ] || cm=http
		lat+="'$f' using 1:3 with linespoints title '${s//@/ } p50', '$f' using 1:4 with linespoints title '${s//@/ } p99', "
		lat+="'$f' using 1:5 with points title '${s//@/ } max', "
		rate+="'$f' using 1:2 with linespoints lw 2 title '${s//@/ } achieved', "
		if [ -f "$D/ceil-$ek@$cm.txt" ]; then
			read -r cv cc <"$D/ceil-$ek@$cm.txt"
			rate+="$cv with lines dt 2 title '$ek $cm crypto ceiling x $cc core(s)', "
			rm "$D/ceil-$ek@$cm.txt"
		fi
	done
	gnuplot <<GP
$TERM_PNG
set output '$OUT/bench-enroll-latency.png'
set title 'Attested enrollment latency against concurrent devices (enroll-bench)'
set xlabel 'concurrent devices'; set ylabel 'latency (ms)'
set logscale xy 2; set logscale y 10; set grid; set key top left
set arrow from graph 0, first 50 to graph 1, first 50 nohead dt 3 lc rgb 'red'
set label 'p99 target 50 ms' at graph 0.02, first 56 textcolor rgb 'red'
plot ${lat%, }
GP
	gnuplot <<GP
$TERM_PNG
set output '$OUT/bench-enroll-rate.png'
set title 'Attested enrollments/s against concurrent devices, and the crypto ceiling'
set xlabel 'concurrent devices'; set ylabel 'enrollments/s (logarithmic)'
set logscale x 2; set logscale y 10; set grid; set key center right
plot ${rate%, }
GP
	made+=(bench-enroll-latency.png bench-enroll-rate.png)
fi

# ---- health tick and add-one-peer against N
P=$B/bench/plane.tsv
if [ -s "$P" ]; then
	awk -F'\t' -v d="$D" '$1 == "tick" { print $3, $4, $5 | "sort -n > \"" d "/tick-" $2 ".dat\"" }
		$1 == "add" || $1 == "add_null" { print $3, $4, $5, $6 | "sort -n > \"" d "/" $1 "-" $2 ".dat\"" }' "$P"
	tick="" add=""
	for f in "$D"/tick-*.dat; do
		[ -f "$f" ] || continue
		s=$(basename "$f" .dat)
		tick+="'$f' using 1:3 with linespoints lw 2 title 'CPU of the tick (${s#tick-})', "
		tick+="'$f' using 1:2 with linespoints dt 2 title 'wall (waits for wireguard-go)', "
	done
	for f in "$D"/add-*.dat "$D"/add_null-*.dat; do
		[ -f "$f" ] || continue
		s=$(basename "$f" .dat)
		case $s in add_null-*) who="null daemon" ;; *) who="wireguard-go" ;; esac
		add+="'$f' using 1:2 with linespoints lw 2 title 'plane_device_sync, median ($who)', "
		add+="'$f' using 1:4 with linespoints dt 2 title 'store_enroll, median ($who)', "
	done
	if [ -n "$tick" ]; then
		gnuplot <<GP
$TERM_PNG
set output '$OUT/bench-health-tick.png'
set title 'One health tick against the number of peers'
set xlabel 'peers (devices)'; set ylabel 'ms'
set logscale xy; set grid; set key top left
set arrow from graph 0, first 100 to graph 1, first 100 nohead dt 3 lc rgb 'red'
set label 'target at 100,000: 100 ms CPU' at graph 0.02, first 120 textcolor rgb 'red'
plot ${tick%, }
GP
		made+=(bench-health-tick.png)
	fi
	if [ -n "$add" ]; then
		gnuplot <<GP
$TERM_PNG
set output '$OUT/bench-add-peer.png'
set title 'Adding one peer to an interface that holds N'
set xlabel 'peers already on the interface'; set ylabel 'ms (median of 21)'
set logscale x; set yrange [0:1.2<*]; set grid; set key top left
set arrow from graph 0, first 1 to graph 1, first 1 nohead dt 3 lc rgb 'red'
set label 'target: 1 ms' at graph 0.85, first 1.04 textcolor rgb 'red'
plot ${add%, }
GP
		made+=(bench-add-peer.png)
	fi
fi

# ---- the fleet at several N: each figure against N
set -- "$B"/bench/fleet-*.tsv
if [ -s "$1" ]; then
	for f in "$@"; do
		n=${f##*/fleet-}
		n=${n%.tsv}
		awk -F'\t' -v n="$n" 'function g(k, d) { return k in v ? v[k] / d : "NaN" }
			{ v[$1] = $2 } END {
			print n, g("start_reconcile", 1), g("restart_reconcile", 1), g("list_total", 1),
				g("health_tick_cpu", 1000), g("sse_all_drain", 1), g("start_open", 1),
				g("rss_after_list", 1), g("lmdb_bytes", 1e6), g("rss_after_list_anon", 1) }' "$f"
	done | sort -n >"$D/fleet.dat"
	gnuplot <<GP
set terminal pngcairo size 1100,520 font ",11" noenhanced
set output '$OUT/bench-fleet.png'
set multiplot layout 1,2 title 'enrolld at fleet size (fleet_run.sh)'
set logscale xy; set grid; set xlabel 'active devices'; set key top left
set ylabel 'seconds'
plot '$D/fleet.dat' using 1:2 with linespoints lw 2 title 'start: reconcile (all peers written)', \
     '' using 1:3 with linespoints title 'restart: reconcile (peers present)', \
     '' using 1:4 with linespoints lw 2 title 'list every device (API, 1000/page)', \
     '' using 1:6 with linespoints title 'SSE resume from the first event, drained', \
     '' using 1:5 with linespoints title 'one health tick (CPU)', \
     '' using 1:7 with linespoints title 'store open + consistency check'
set ylabel 'MB'
plot '$D/fleet.dat' using 1:8 with linespoints lw 2 title 'enrolld RSS after the listing (all)', \
     '' using 1:10 with linespoints lw 2 title "of it anonymous (enrolld's own)", \
     '' using 1:9 with linespoints lw 2 title 'LMDB file (mapped: the rest of the RSS)'
unset multiplot
GP
	made+=(bench-fleet.png)
fi
[ ${#made[@]} -gt 0 ] || { echo "no TSV under $B/bench: run the benchmarks first"; exit 1; }
for m in "${made[@]}"; do echo "$OUT/$m"; done
