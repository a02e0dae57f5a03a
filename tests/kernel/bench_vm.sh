#!/bin/sh
# Runs inside the kernel test VM (tests/kernel/run.sh scenario "bench"): for each N of
# KT_BENCH_N, two fresh kernel WireGuard links and wg_bench (our generic-netlink client
# against wg(8), tests/bench/wg_bench.c) on them. One "ok"/"not ok" line per N and a
# KTEST summary; the figures are wg_bench's own lines. With KT_BENCH_ROUNDS=1 (a second
# round would replace, that is remove, every peer: see below) each N runs twice, once with
# our client setting first and once with wg(8) first.
# The links are never deleted (the VM powers off): the kernel tears each peer of a deleted
# link down on its own (timers, work queues flushed, NAPI), and under TCG deleting a link
# with 10,000 peers took 254 s. Each N gets links of its own.
n_ok=0
n_fail=0
i=0
up() { cut -d' ' -f1 /proc/uptime; }
mem() { awk '/MemAvailable/ { print int($2 / 1024) " MiB" }' /proc/meminfo; }
# bench N FLAGS: one run of wg_bench on two fresh links
bench() {
	i=$((i + 1))
	a=kbours$i b=kbwg$i
	ip2 link add $a type wireguard && ip2 link add $b type wireguard &&
		ip2 link set $a up && ip2 link set $b up || {
		echo "not ok - N=$1 $2: cannot create the links"
		n_fail=$((n_fail + 1))
		return
	}
	echo "== N=$1 ${2:-(ours sets first)} at uptime $(up) s, memory available $(mem)"
	# shellcheck disable=SC2086 # $2: no flag or one
	if wg_bench $2 -n "$1" -r "$KT_BENCH_ROUNDS" -w /bin/wg $a $b; then
		echo "ok - N=$1 $2"
		n_ok=$((n_ok + 1))
	else
		echo "not ok - N=$1 $2: wg_bench failed"
		n_fail=$((n_fail + 1))
	fi
}
# each N once per KT_BENCH_ORDERS (default: ours sets first, then wg(8) first, -W), on
# links of their own
for n in $KT_BENCH_N; do
	for o in ${KT_BENCH_ORDERS:-ours wg}; do
		if [ "$o" = wg ]; then bench "$n" -W; else bench "$n" ""; fi
	done
done
echo "== done at uptime $(up) s, memory available $(mem)"
echo "KTEST: $n_ok passed, $n_fail failed"
[ "$n_fail" -eq 0 ]
