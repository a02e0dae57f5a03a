#!/bin/bash
# The kernel WireGuard benchmark (not a test; `BENCHES=kernel tests/bench/run.sh`): boots
# Debian's kernel under qemu (tests/kernel/run.sh, scenario "bench") and, for each N of
# KTEST_BENCH_N (default "10000 100000"), programs N peers into one kernel WireGuard link
# through our generic-netlink client and into another with `wg setconf`, reads them back
# (wg_get_device / `wg show dump`) and removes one peer each way: build/tests/bench/wg_bench,
# both tools in the same VM in the same run. TCG makes the absolute times meaningless (and
# the machine's load changes them); the ratio wg/ours holds. Results: docs/benchmarks.md.
# 1,000,000 peers: KTEST_BENCH_N=1000000 KTEST_MEM=12288 KTEST_TIMEOUT=7200 (see there
# for what it costs).
set -u
cd "$(dirname "$0")/../.." || exit 1
export KTEST_SCENARIOS=bench
export KTEST_BENCH_N=${KTEST_BENCH_N:-"10000 100000"}
export KTEST_MEM=${KTEST_MEM:-6144}
export KTEST_TIMEOUT=${KTEST_TIMEOUT:-2400}
exec bash tests/kernel/run.sh
