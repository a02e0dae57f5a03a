#!/bin/bash
# enroll-bench (not a test; `make bench`, or BENCHES=enroll tests/bench/run.sh): complete
# attested enrollments by software TPM devices (tests/bench/softdev) against enrolld in a
# private network namespace (userspace WireGuard backend with wireguard-go, durable LMDB
# commits, a PCR policy), over plain HTTP and over HTTPS with a new TLS connection per
# enrollment. For each transport, each enrolld binary of $ENROLLDS, each EK type of $EKS
# and each concurrency of $CONCS: N new devices enroll; build/tests/bench/enroll_bench
# prints enrollments/s, latency and enrolld's CPU (utime + stime) per enrollment. A fresh
# enrolld (new state) per transport and binary. After each concurrency's points, the
# crypto ceiling: the same server-side cryptography alone, in-process, one core, measured
# there so that each point is compared with a ceiling measured under the same machine load
# (one ceiling at the end had been measured at a quieter or busier moment than the points,
# which moved the ratio by up to 1.5x on this shared machine).
#
#   ENROLLDS="new:build/enrolld old:/tmp/old/build/enrolld"  compare binaries (LABEL:PATH),
#                                                            interleaved point by point;
#     LABEL:PATH:postgresql  that binary on PostgreSQL (a throw-away server of
#                            tests/pg_lib.sh with fsync on, a database per start)
#     LABEL:PATH:lmdb:threads=1,wireguard.reconcile_interval=60  settings for that start
#                            (comma-separated [SECTION.]KEY=VALUE, section server by default;
#                            e.g. two labels of one binary, threads 1 and 4)
#     LABEL:PATH:lmdb:wgd    that start with tests/bench/fleet_wgd instead of wireguard-go:
#                            a daemon that keeps peers in a table and moves no packets, so
#                            adding a peer costs next to nothing (as with kernel WireGuard,
#                            which this machine does not have); not the product's path, a
#                            way to see enrolld's cost without wireguard-go's
#   EKS (default "rsa2048 p256"), CONCS ("1 8 64"), N (300), MODES ("http https"; also
#   "https-ka": HTTPS with one keep-alive connection per device thread)
#   PIN=SERVER_CPUS:DEVICE_CPUS (e.g. PIN=0:1): enrolld (every thread, and the wireguard-go
#     it starts) on SERVER_CPUS, the devices on DEVICE_CPUS (taskset lists): the server's
#     cores are its own, as with load machines of its own, and achieved/ceiling counts
#     the server's cores only. Unset: everything shares every core.
# The crypto ceiling (enroll_bench ceiling, on the server's cores when pinned): the
# attestation alone for "http" and "https-ka" (no handshake per enrollment), plus the
# server's side of a TLS handshake with enrolld's priorities and certificate for "https".
# Every point is also written as TSV to $ENROLL_TSV (build/bench/enroll.tsv; drawn by
# tests/bench/plots.sh):
#   run LABEL EK MODE CONC ENR/S P50_MS P99_MS MAX_MS SERVER_CPU_MS_PER_ENR FAILED DEVICES_CPU_MS_PER_ENR
#   ceiling - EK MODE CORES ENR/S_PER_CORE   (MODE http: attestation alone; https: + TLS)
set -u
B=${B:-build}
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BENCH=${BENCH:-$B/tests/bench/enroll_bench}
EKS=${EKS:-"rsa2048 p256"}
CONCS=${CONCS:-"1 8 64"}
N=${N:-300}
MODES=${MODES:-"http https"}
ENROLLDS=${ENROLLDS:-new:$B/enrolld}
ENROLL_TSV=${ENROLL_TSV:-$B/bench/enroll.tsv}
PIN=${PIN:-}
SCPUS= DCPUS= CORES=$(nproc)
if [ -n "$PIN" ]; then
	SCPUS=${PIN%%:*} DCPUS=${PIN#*:}
	# the server's core count: the CPUs its list names
	CORES=$(taskset -c "$SCPUS" nproc) || { echo "PIN=$PIN: not a CPU list"; exit 1; }
	taskset -c "$DCPUS" true || { echo "PIN=$PIN: not a CPU list"; exit 1; }
fi
# run "$@" on the devices' CPUs (all when not pinned)
on_devices() { if [ -n "$DCPUS" ]; then taskset -c "$DCPUS" "$@"; else "$@"; fi; }
on_server() { if [ -n "$SCPUS" ]; then taskset -c "$SCPUS" "$@"; else "$@"; fi; }
[ -x "$BENCH" ] || { echo "$BENCH not built (make)"; exit 1; }
. "$ROOT/tests/integration/enrolld_lib.sh"
ed_init bench
if [[ " $ENROLLDS" == *:postgresql* ]]; then
	. "$ROOT/tests/pg_lib.sh"
	PG_TEST_FSYNC=on pg_test_start || { echo "cannot start the PostgreSQL for the bench"; exit 1; }
	openssl rand -hex 32 >"$T/kek" && chmod 600 "$T/kek"
	echo "PostgreSQL $("$PG_BIN/postgres" --version | awk '{ print $3 }'): own server, fsync on"
fi

# the manufacturer: a test CA only this run trusts
mkdir -p "$T/trust"
"$BENCH" ca "$T/trust/ca.pem" "$T/ca.key" || exit 1
TRUST=$T/trust
CAARG=$T/trust/ca.pem,$T/ca.key
POLICY=$("$BENCH" pcr-policy 0 7)
# TLS for enrolld: a self-signed certificate for 127.0.0.1
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
	-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 \
	-keyout "$T/tls.key" -out "$T/tls.pem" 2>/dev/null || exit 1
chmod 600 "$T/tls.key"

echo "machine: $(nproc) cores, $(awk '/MemTotal/ { printf "%d GB", $2 / 1048576 }' /proc/meminfo)," \
	"$(lscpu | sed -n 's/^Model name: *//p' | head -n1), kernel $(uname -r), load $(cut -d' ' -f1-3 /proc/loadavg)"
echo "enroll-bench: N=$N per point, EKs: $EKS, concurrency: $CONCS, modes: $MODES"
[ -n "$PIN" ] && echo "pinned: enrolld and its wireguard-go on CPU(s) $SCPUS ($CORES), devices on $DCPUS"

# start binary $1 in mode $2 on backend $3 (lmdb, postgresql) with a fresh state and the
# settings $4 ([SECTION.]KEY=VALUE or wgd, comma-separated); sets TOKEN and U
start() {
	ENROLLD=$1
	rm -rf "$T/db"
	PORT=$((PORT + 1))
	local state=()
	if [ "${3:-lmdb}" = postgresql ]; then
		psql "$PG_TEST_CONN" -qc "CREATE DATABASE bench_$PORT" || exit 1
		state=("[state]" "backend = postgresql" "postgresql = $PG_TEST_CONN dbname=bench_$PORT"
			"kek_file = $T/kek")
	fi
	# a capacity benchmark: enrolld's abuse limits (docs/security.md, "Abuse limits") off, or the one
	# source of all its devices would be held to them (a binary older than them has none)
	local limits=()
	grep -q per_source_rate "$1" && limits=("[ratelimit]" "per_source_rate = 0" "global_rate = 0")
	# and every device shares one address: 64 devices opening a new TLS connection each
	# overlap their closing ones and the per-address connection limit (64) refused some
	local per_ip=false
	grep -q max_connections_per_ip "$1" && per_ip=true
	if [ "$2" != http ]; then
		ed_conf "${limits[@]}" "${state[@]}"
		sed -i "/^\[server\]/a tls_cert = $T/tls.pem\ntls_key = $T/tls.key" "$T/e.conf"
		U=https://127.0.0.1:$PORT
		TLS=(--tls-ca "$T/tls.pem")
		[ "$2" = https-ka ] && TLS+=(--keepalive)
	else
		ed_conf "${limits[@]}" "${state[@]}"
		U=http://127.0.0.1:$PORT
		TLS=()
	fi
	$per_ip && sed -i 's/^\[server\]$/[server]\nmax_connections_per_ip = 0/' "$T/e.conf"
	local kv sec key
	for kv in ${4//,/ }; do
		[ "$kv" = wgd ] && kv=wireguard.wireguard_go=$(realpath "$B/tests/bench/fleet_wgd")
		key=${kv%%=*} sec=server
		[ "${key#*.}" != "$key" ] && sec=${key%%.*} key=${key#*.}
		grep -q "^\[$sec\]" "$T/e.conf" || echo "[$sec]" >>"$T/e.conf"
		sed -i "/^\[$sec\]/a $key = ${kv#*=}" "$T/e.conf"
	done
	# enrolld's default ticks (health 5 s, reconciliation 30 s), not the test suite's 1 s and
	# 2 s, which had wireguard-go print every peer each second during the run
	sed -i 's/^reconcile_interval = 2$/reconcile_interval = 30/; s/^interval = 1$/interval = 5/' \
		"$T/e.conf"
	ed_start
	# every thread it has now; threads and the wireguard-go it starts later inherit it
	[ -n "$SCPUS" ] && { taskset -a -p -c "$SCPUS" "$ED_PID" >/dev/null || exit 1; }
	local ifn
	ifn=$(ed_ifname $((PORT % 1000)))
	api() { # as the lib's, with our TLS CA
		ip netns exec "$NS" curl -s --cacert "$T/tls.pem" -o "$T/body" -w '%{http_code}' \
			-X "$1" -H "Authorization: Bearer $3" -H 'Content-Type: application/json' \
			--data-binary "$4" "$U$2"
	}
	[ "$(api POST /v1/tenants "$ADMIN" "{\"name\":\"bench\",\"prefix\":\"10.200.0.0/16\",\
\"interface\":\"$ifn\",\"listen_port\":$((PORT + 100)),\"endpoint\":\"192.0.2.1:51820\",\
\"pcr_policy\":$POLICY}")" = 201 ] || { echo "tenant: $(cat "$T/body")"; exit 1; }
	[ "$(api POST /v1/tenants/bench/tokens "$ADMIN" '{"uses":1000000}')" = 201 ] ||
		{ echo "token: $(cat "$T/body")"; exit 1; }
	TOKEN=$(jq -r .token "$T/body")
}

# the crypto ceiling for EK $1 (with the TLS handshake when https is among the modes)
TLSARG=()
[[ " $MODES " == *" https "* ]] && TLSARG=(--tls-cert "$T/tls.pem" --tls-key "$T/tls.key")
ceiling() {
	on_server "$BENCH" ceiling --ca "$CAARG" --trust "$TRUST" --ek "$1" -n "$N" "${TLSARG[@]}" |
		tee -a "$T/results"
	[ "${PIPESTATUS[0]}" = 0 ] || rc=1
}

# enrolld's store commits, lazy commits and writes so far (empty from a binary without them)
commits() {
	ip netns exec "$NS" curl -s --cacert "$T/tls.pem" "$1/metrics" | awk '
		$1 == "enrolld_store_commits_total" { c = $2 }
		$1 == "enrolld_store_lazy_commits_total" { l = $2 }
		$1 == "enrolld_store_writes_total" { w = $2 }
		END { if (c != "") print c, l, w }'
}

PORT=35100
rc=0
for mode in $MODES; do
	echo
	echo "== $mode$([ "$mode" = https ] && echo ", a new TLS connection per enrollment")"
	# one enrolld per binary, all running, so the points can interleave
	declare -A PIDS=() URLS=() TOKENS=() WGPIDS=()
	for lb in $ENROLLDS; do
		bin=${lb%%:*}
		rest=${lb#*:}
		backend=lmdb server=
		if [ "${rest#*:}" != "$rest" ]; then
			backend=${rest#*:}
			[ "${backend#*:}" != "$backend" ] && server=${backend#*:}
			backend=${backend%%:*}
		fi
		start "${rest%%:*}" "$mode" "$backend" "$server"
		PIDS[$bin]=$ED_PID
		# the tenant's wireguard-go (or stand-in), started by enrolld for the tenant
		wgname=wireguard-go
		[[ ",$server," == *,wgd,* ]] && wgname=fleet_wgd
		WGPIDS[$bin]=$(pgrep -P "$ED_PID" -x "$wgname" | head -n1)
		URLS[$bin]=$U
		TOKENS[$bin]=$TOKEN
		ED_BG_PIDS+=("$ED_PID")
		ED_PID=
	done
	for ek in $EKS; do
		for c in $CONCS; do
			for lb in $ENROLLDS; do
				bin=${lb%%:*}
				m0=$(commits "${URLS[$bin]}")
				on_devices ip netns exec "$NS" "$BENCH" run --url "${URLS[$bin]}" --ca "$CAARG" \
					--token "${TOKENS[$bin]}" "${TLS[@]}" --ek "$ek" -c "$c" -n "$N" \
					--pid "${PIDS[$bin]}" ${WGPIDS[$bin]:+--wg-pid "${WGPIDS[$bin]}"} \
					--label "$bin" | tee -a "$T/results"
				[ "${PIPESTATUS[0]}" = 0 ] || rc=1
				# the store's group commit at this point: commits (lazy ones: open sessions
				# alone) and writes per enrollment, from enrolld's /metrics
				read -r c1 l1 w1 <<<"$(commits "${URLS[$bin]}")"
				read -r c0 l0 w0 <<<"$m0"
				[ -n "$c1" ] && [ -n "$c0" ] && awk -v c=$((c1 - c0)) -v l=$((l1 - l0)) \
					-v w=$((w1 - w0)) -v n="$N" 'BEGIN { printf "%-8s store: %.2f commits per enrollment (%.2f lazy), %.1f writes per commit\n",
						"", c / n, l / n, (c > 0 ? w / c : 0) }'
			done
			ceiling "$ek"
		done
	done
	for lb in $ENROLLDS; do
		bin=${lb%%:*}
		kill "${PIDS[$bin]}"
		wait "${PIDS[$bin]}" 2>/dev/null
	done
	ED_BG_PIDS=()
done

echo
echo "== achieved / ceiling, per binary and EK, the ceiling times $CORES server core(s) (https against"
echo "   the ceiling with the handshake): the best enrollments/s against the highest ceiling of"
echo "   the run (the stricter figure), then the median over the points of each point against"
echo "   the ceiling measured right after it (the same machine load), and the ceilings' range"
awk -v cores="$CORES" '
	$4 == "conc" { pend[++np] = $1 " " $2 " " $3 " " $8; next }
	$1 == "ceiling" { c = $(NF - 3) * cores; k = $2 " " $3
		if (!(k in lo) || c < lo[k]) lo[k] = c
		if (c > hi[k]) hi[k] = c
		for (i = 1; i <= np; i++) { if (pend[i] == "") continue
			split(pend[i], f, " ")
			if (f[2] != $2 || (f[3] == "https") != ($3 == "https")) continue
			b = f[1] " " f[2] " " f[3]
			if (f[4] > best[b]) best[b] = f[4]
			ratio[b, ++nr[b]] = f[4] / c
			pend[i] = "" } }
	END { for (b in best) { split(b, f, " "); k = f[2] " " (f[3] == "https" ? "https" : "http")
		n = nr[b]
		for (i = 1; i <= n; i++) for (j = i + 1; j <= n; j++)
			if (ratio[b, j] < ratio[b, i]) { t = ratio[b, i]; ratio[b, i] = ratio[b, j]; ratio[b, j] = t }
		med = n % 2 ? ratio[b, (n + 1) / 2] : (ratio[b, n / 2] + ratio[b, n / 2 + 1]) / 2
		printf "%-8s %-7s %-9s %7.1f enr/s of %6.0f = %5.1f%%; point by point: median %5.1f%%, best %5.1f%%   (ceilings %.0f-%.0f)\n",
			f[1], f[2], f[3], best[b], hi[k], 100 * best[b] / hi[k], 100 * med,
			100 * ratio[b, n], lo[k], hi[k] } }' "$T/results" | sort
# At each mode's best point, what the CPU per enrollment allows: shared cores: cores / (server
# + devices); pinned: each side's cores / its own CPU (the lower one bounds the run).
echo
if [ -z "$PIN" ]; then
	echo "== what sharing the cores with the devices allows (at each mode's best point: cores /"
	echo "   (server + devices CPU per enrollment); wireguard-go and the rest of the machine not counted)"
else
	echo "== what each side's own cores allow (at each mode's best point: the server's $CORES core(s) /"
	echo "   (enrolld + wireguard-go CPU), the devices' core(s) / devices CPU per enrollment)"
fi
awk -v cores="$(nproc)" -v pin="$PIN" -v sc="$CORES" -v dc="$( [ -n "$DCPUS" ] && taskset -c "$DCPUS" nproc)" '
	$4 == "conc" { k = $1 " " $2 " " $3; s = d = w = 0
		for (i = 18; i < NF; i++) { if ($i == "CPU" && $(i - 1) == "server") s = $(i + 1)
			if ($i == "CPU" && $(i - 1) == "devices") d = $(i + 1)
			if ($i == "CPU" && $(i - 1) == "wireguard-go") w = $(i + 1) }
		if ($8 > best[k]) { best[k] = $8; sv[k] = s; dv[k] = d; wv[k] = w } }
	END { for (k in best) if (sv[k] > 0 && dv[k] > 0) { split(k, f, " ")
		if (pin == "")
			printf "%-8s %-7s %-9s server %5.2f + devices %5.2f ms/enr -> at most %6.0f enr/s\n",
				f[1], f[2], f[3], sv[k], dv[k], cores * 1000 / (sv[k] + dv[k])
		else
			printf "%-8s %-7s %-9s server %5.2f + wireguard-go %5.2f ms/enr -> at most %6.0f enr/s; devices %5.2f ms/enr -> at most %6.0f enr/s\n",
				f[1], f[2], f[3], sv[k], wv[k], sc * 1000 / (sv[k] + wv[k]), dv[k],
				dc * 1000 / dv[k] } }' "$T/results" | sort
mkdir -p "$(dirname "$ENROLL_TSV")"
awk -v cores="$CORES" 'BEGIN { OFS = "\t" }
	$1 == "ceiling" { print "ceiling", "-", $2, $3, cores, $(NF - 3) }
	$4 == "conc" { cpu = ""; failed = ""
		dcpu = ""
		for (i = 18; i < NF; i++) {
			if ($i == "CPU" && $(i - 1) == "server") cpu = $(i + 1)
			if ($i == "CPU" && $(i - 1) == "devices") dcpu = $(i + 1)
			if ($i == "failed") failed = $(i + 1) + 0 }
		print "run", $1, $2, $3, $5, $8, $11, $14, $17, cpu, failed, dcpu }' \
	"$T/results" >"$ENROLL_TSV"
echo "TSV: $ENROLL_TSV"
exit $rc
