#!/bin/bash
# Kernel tests against Debian's packaged kernel and its wireguard.ko, under qemu. One VM
# boot runs one or more scenarios, each with its own result:
#
#   genl     the generic-netlink WireGuard backend (common/wg_genl.c) and common/rtnl.c:
#            $B/tests/progs/nltest
#   enrolld  enrolld with [wireguard] backend = kernel: tests/kernel/enrolld_vm.sh runs
#            enrolld, wgctl, kenroll and nft in the VM (tenants through the REST API, their
#            links, VRFs, routes and nftables rules; reconciliation of stored devices;
#            revocation; SIGTERM)
#   bench    not a test (not in the default list; tests/bench/kernel_run.sh, `make bench`):
#            build/tests/bench/wg_bench against wg(8) on two kernel WireGuard links, for
#            each N of KTEST_BENCH_N (tests/kernel/bench_vm.sh); the figures are in the
#            VM output. TCG makes absolute times meaningless, the ratio holds.
#
# Builds an initramfs in a temp dir: busybox-static, the wireguard module and its
# dependencies (plus veth, vrf, nf_tables), the scenarios' programs with the shared
# libraries they need (ldd), and an /init that loads the modules, runs each scenario
# between "KTEST-SCENARIO: NAME" and "KTEST-EXIT: RC" lines and powers the VM off. The
# VM's serial console is written to a file; a scenario passes when its section holds
# "KTEST: N passed, 0 failed" (N > 0), no "not ok" line, and its program exited 0.
# One line per scenario: "RESULT NAME: PASS" or "RESULT NAME: FAIL (why)".
#
# Exit: 0 every scenario passed, 77 skip (qemu, kernel or busybox-static absent; says why,
# loudly), else fail.
#
# Environment:
#   B                  build directory (default build)
#   KTEST_SCENARIOS    which scenarios, in order (default "genl enrolld")
#   KTEST_RESULT_FILE  if set, one line "NAME RC" per scenario is written there (RC 0 pass,
#                      1 fail), for tests/run.sh
#   KTEST_KVM=1        use KVM instead of TCG (KVM hangs on some machines: see DESIGN.md)
#   KTEST_KVER         kernel version to boot (default: the newest /lib/modules/* with a
#                      matching /boot/vmlinuz-*)
#   KTEST_PROG         program to run for "genl" instead of nltest (debugging the boot path)
#   KTEST_TIMEOUT      seconds before the VM is killed (default 300); each scenario is
#                      stopped after its share of it minus 45 s
#   KTEST_KEEP=1       keep the temp dir (initramfs, serial log)
#   KTEST_MEM          the VM's memory in MiB (default 1024)
#   KTEST_BENCH_N      peer counts for "bench" (default "10000 100000"), KTEST_BENCH_ROUNDS (1),
#                      KTEST_BENCH_ORDERS (who sets first on each pair of links: "ours wg")
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
PROG=${KTEST_PROG:-$B/tests/progs/nltest}
TIMEOUT=${KTEST_TIMEOUT:-300}
SCENARIOS=${KTEST_SCENARIOS:-genl enrolld}
NSCEN=0
for sc in $SCENARIOS; do
	case $sc in
	genl | enrolld | bench) NSCEN=$((NSCEN + 1)) ;;
	*) echo "unknown scenario '$sc' in KTEST_SCENARIOS"; exit 1 ;;
	esac
done
[ "$NSCEN" -gt 0 ] || { echo "KTEST_SCENARIOS is empty"; exit 1; }
has_scen() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }
# each scenario is stopped earlier, so a hang still reports what ran and the kernel log
VM_TIMEOUT=$((TIMEOUT > 60 ? TIMEOUT - 45 : TIMEOUT / 2))
SC_TIMEOUT=$((VM_TIMEOUT / NSCEN))
QEMU=${QEMU:-qemu-system-x86_64}
BUSYBOX=${BUSYBOX:-/bin/busybox}

skip() {
	echo "################################################################"
	echo "## KERNEL TEST SKIPPED: $*"
	echo "## (install with ./scripts/install-deps.sh; CI must not skip this)"
	echo "################################################################"
	echo "skip: $*"
	exit 77
}

fail() {
	# the runner shows a log's last lines: repeat what matters from the VM at the end
	if [ -n "${SERIAL:-}" ] && [ -s "$SERIAL" ]; then
		echo "== digest of the VM output"
		clean_serial | grep -E '^not ok - ' | sed 's/^/  | /'
		clean_serial | grep -E '^(ok|not ok) - ' | tail -n1 | sed 's/^/  | last check: /'
		clean_serial | grep -E '^KTEST(-EXIT|-SCENARIO)?: ' | sed 's/^/  | /'
	fi
	echo "FAIL: $*"
	exit 1
}

# the serial log, without carriage returns and the firmware's terminal escapes
clean_serial() {
	tr -d '\r' <"$SERIAL" | sed -e 's/\x1b\[[0-9;?]*[A-Za-z]//g' -e 's/\x1bc//g'
}

command -v "$QEMU" >/dev/null || skip "$QEMU not installed (qemu-system-x86)"
command -v cpio >/dev/null || skip "cpio not installed"
command -v modprobe >/dev/null || skip "modprobe not installed (kmod)"
[ -x "$BUSYBOX" ] || skip "$BUSYBOX not found (busybox-static)"
file_out=$(LC_ALL=C file -L "$BUSYBOX" 2>/dev/null || true)
case $file_out in
*"statically linked"* | *"static-pie linked"*) ;;
"") ;; # no file(1): trust busybox-static's path
*) skip "$BUSYBOX is not statically linked (install busybox-static)" ;;
esac

# The newest kernel that has both modules and a bootable image.
KVER=${KTEST_KVER:-}
if [ -z "$KVER" ]; then
	for v in $(cd /lib/modules 2>/dev/null && printf '%s\n' * | sort -V -r); do
		if [ -d "/lib/modules/$v" ] && [ -r "/boot/vmlinuz-$v" ]; then
			KVER=$v
			break
		fi
	done
fi
[ -n "$KVER" ] || skip "no /lib/modules/VER with a readable /boot/vmlinuz-VER (linux-image-amd64)"
KERNEL=/boot/vmlinuz-$KVER
[ -r "$KERNEL" ] || skip "$KERNEL not readable"
deps=$(modprobe -S "$KVER" --show-depends wireguard 2>&1) ||
	skip "kernel $KVER has no wireguard module: $deps"
veth_deps=$(modprobe -S "$KVER" --show-depends veth 2>&1) ||
	skip "kernel $KVER has no veth module: $veth_deps"

extra_deps=
NFT=
if has_scen enrolld; then
	# VRF and nf_tables: without them enrolld falls back (nftables only / no rules), which
	# the scenario's checks would report; a kernel without them is not what we test on
	for m in vrf nf_tables; do
		d=$(modprobe -S "$KVER" --show-depends "$m" 2>&1) ||
			skip "kernel $KVER has no $m module: $d"
		extra_deps=$extra_deps$d$'\n'
	done
	NFT=$(command -v nft || true)
	[ -n "$NFT" ] || echo "== nft not installed: the enrolld scenario runs with nftables = no"
fi
IPROUTE2=
for c in /usr/sbin/ip /sbin/ip /usr/bin/ip /bin/ip; do
	[ -x "$c" ] && ! [ "$(readlink -f "$c")" -ef "$BUSYBOX" ] &&
		! readlink -f "$c" | grep -q busybox && { IPROUTE2=$c; break; }
done
if has_scen enrolld && [ -z "$IPROUTE2" ]; then
	echo "== iproute2 not installed: ip -d link / master / vrf checks are skipped in the VM"
fi
if has_scen bench; then
	[ -x "$B/tests/bench/wg_bench" ] || fail "$B/tests/bench/wg_bench not built (make -j2)"
	WG=$(command -v wg || true)
	[ -n "$WG" ] && [ -n "$IPROUTE2" ] || fail "bench needs wg (wireguard-tools) and iproute2"
fi

if has_scen genl; then
	[ -x "$PROG" ] || fail "test program $PROG not built (make -j2)"
fi
if has_scen enrolld; then
	for p in "$B/enrolld" "$B/tests/progs/wgctl" "$B/tests/progs/kenroll"; do
		[ -x "$p" ] || fail "$p not built (make -j2)"
	done
fi

T=$(mktemp -d /tmp/ktest.XXXXXX)
QPID=
# shellcheck disable=SC2317 # called by the EXIT trap
cleanup() {
	if [ -n "$QPID" ]; then
		kill "$QPID" 2>/dev/null
		wait "$QPID" 2>/dev/null
	fi
	if [ "${KTEST_KEEP:-0}" = 1 ]; then
		echo "kept $T"
	else
		rm -rf "$T"
	fi
}
trap cleanup EXIT
trap 'exit 143' TERM INT HUP

R=$T/root
mkdir -p "$R"/{bin,sbin,proc,sys,dev,run,tmp,etc,lib,usr/lib} || fail "mkdir"

echo "== kernel $KVER, scenarios: $SCENARIOS"

# --- modules: in dependency order, decompressed (busybox insmod need not know xz/zstd) ---
: >"$R/etc/modules.order"
mkdir -p "$R/lib/modules/$KVER" || fail "mkdir"
while read -r verb path _; do
	[ "$verb" = insmod ] || continue # "builtin NAME": nothing to load
	base=$(basename "$path")
	grep -qx "/lib/modules/$KVER/${base%%.ko*}.ko" "$R/etc/modules.order" && continue
	case $path in
	*.ko) cp "$path" "$R/lib/modules/$KVER/$base" || fail "copy $path" ;;
	*.ko.xz) xz -dc "$path" >"$R/lib/modules/$KVER/${base%.xz}" || fail "xz -d $path" ;;
	*.ko.zst) zstd -q -dc "$path" >"$R/lib/modules/$KVER/${base%.zst}" || fail "zstd -d $path" ;;
	*.ko.gz) gzip -dc "$path" >"$R/lib/modules/$KVER/${base%.gz}" || fail "gzip -d $path" ;;
	*) fail "unknown module file $path" ;;
	esac
	echo "/lib/modules/$KVER/${base%%.ko*}.ko" >>"$R/etc/modules.order"
done <<<"$deps
$veth_deps
$extra_deps"
grep -q '/wireguard\.ko$' "$R/etc/modules.order" || grep -q '^builtin wireguard' <<<"$deps" ||
	fail "wireguard.ko not in: $deps"

# --- busybox and its applets ---
cp "$BUSYBOX" "$R/bin/busybox" || fail "copy busybox"
for a in sh mount mkdir insmod cat echo poweroff sleep ip ping dmesg ls tail timeout sed \
	wget grep awk wc cut head sort kill rm chmod cmp tr env; do
	ln -s busybox "$R/bin/$a"
done

# --- the scenarios' programs and their shared libraries ---
libdirs=
copy_prog() { # SRC NAME: /bin/NAME in the VM, with what ldd says it needs
	local line lib
	cp "$1" "$R/bin/$2" || fail "copy $1"
	while read -r line; do
		lib=
		case $line in
		*"=> not found"*) fail "ldd $1: $line" ;;
		*"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
		/*) lib=${line%% (*} ;;
		esac
		[ -n "$lib" ] || continue
		[ -e "$R$lib" ] && continue
		mkdir -p "$R$(dirname "$lib")"
		cp -L "$lib" "$R$lib" || fail "copy $lib"
		case ":$libdirs:" in *":$(dirname "$lib"):"*) ;; *) libdirs=$libdirs${libdirs:+:}$(dirname "$lib") ;; esac
	done < <(ldd "$1" 2>&1 | grep -v 'not a dynamic executable')
}
if has_scen genl; then
	copy_prog "$PROG" nltest
fi
kt_nft=0 kt_ip2=0
if has_scen enrolld; then
	copy_prog "$B/enrolld" enrolld
	copy_prog "$B/tests/progs/wgctl" wgctl
	copy_prog "$B/tests/progs/kenroll" kenroll
	if [ -n "$NFT" ]; then
		copy_prog "$NFT" nft
		kt_nft=1
	fi
	# iproute2's ip as ip2: busybox ip has no -d, "show master" or "route show vrf"
	if [ -n "$IPROUTE2" ]; then
		copy_prog "$IPROUTE2" ip2
		kt_ip2=1
	fi
	cp tests/kernel/enrolld_vm.sh "$R/bin/enrolld_vm.sh" || fail "copy enrolld_vm.sh"
fi
if has_scen bench; then
	copy_prog "$B/tests/bench/wg_bench" wg_bench
	copy_prog "$WG" wg
	[ "$kt_ip2" = 1 ] || { copy_prog "$IPROUTE2" ip2; kt_ip2=1; }
	cp tests/kernel/bench_vm.sh "$R/bin/bench_vm.sh" || fail "copy bench_vm.sh"
fi

# --- /init: one section per scenario ---
{
	cat <<INIT
#!/bin/sh
# The VM's only job: load the modules, run the scenarios, report on the serial console,
# power off.
export PATH=/bin:/sbin
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /tmp
echo "KTEST-INIT: kernel \$(cat /proc/sys/kernel/osrelease)"
for m in \$(cat /etc/modules.order); do
	insmod "\$m" || echo "KTEST-INIT: insmod \$m failed"
done
echo "KTEST-INIT: modules loaded"
scenario() { # NAME COMMAND...
	echo "KTEST-SCENARIO: \$1"
	shift
	LD_LIBRARY_PATH=$libdirs KT_NFT=$kt_nft KT_IP2=$kt_ip2 \\
		KT_BENCH_N="${KTEST_BENCH_N:-10000 100000}" KT_BENCH_ROUNDS=${KTEST_BENCH_ROUNDS:-1} KT_BENCH_ORDERS="${KTEST_BENCH_ORDERS:-ours wg}" \\
		timeout $SC_TIMEOUT "\$@" 2>&1
	rc=\$?
	echo "KTEST-EXIT: \$rc"
	if [ "\$rc" != 0 ]; then
		dmesg | tail -n 25 | sed 's/^/KTEST-DMESG: /'
	fi
}
INIT
	for sc in $SCENARIOS; do
		case $sc in
		genl) echo "scenario genl /bin/nltest" ;;
		enrolld) echo "scenario enrolld /bin/sh /bin/enrolld_vm.sh" ;;
		bench) echo "scenario bench /bin/sh /bin/bench_vm.sh" ;;
		esac
	done
	echo "poweroff -f"
} >"$R/init"
chmod 0755 "$R/init"

(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) \
	>"$T/initramfs.cpio" || fail "cpio"
echo "== initramfs: $(du -h "$T/initramfs.cpio" | cut -f1) ($(wc -l <"$R/etc/modules.order") modules)"

ACCEL=(-accel tcg -cpu max)
[ "${KTEST_KVM:-0}" = 1 ] && ACCEL=(-accel kvm -cpu host)
SERIAL=$T/serial.log
start=$(date +%s)
timeout -k 5 "$TIMEOUT" "$QEMU" "${ACCEL[@]}" -m "${KTEST_MEM:-1024}" -smp 1 -nic none -nographic -no-reboot \
	-monitor none -serial "file:$SERIAL" \
	-kernel "$KERNEL" -initrd "$T/initramfs.cpio" \
	-append "console=ttyS0 quiet panic=-1 rdinit=/init" </dev/null >"$T/qemu.out" 2>&1 &
QPID=$!
wait "$QPID"
qrc=$?
QPID=
end=$(date +%s)

echo "== VM output ($((end - start)) s, qemu exit $qrc)"
clean_serial | sed 's/^/  | /'
[ -s "$T/qemu.out" ] && sed 's/^/  qemu: /' "$T/qemu.out"

# the serial log's section of scenario NAME (from its KTEST-SCENARIO line to its KTEST-EXIT)
section() {
	clean_serial | awk -v n="$1" '
		/^KTEST-SCENARIO: / { on = ($2 == n); next }
		on { print }
		on && /^KTEST-EXIT: / { on = 0 }'
}

# evaluate one scenario: 0 pass, else 1 with the reason in $why
evaluate() { # NAME
	local sec summary exitline nok
	why=
	sec=$(section "$1")
	summary=$(grep -E '^KTEST: [0-9]+ passed, [0-9]+ failed$' <<<"$sec" | tail -n1)
	exitline=$(grep -E '^KTEST-EXIT: [0-9]+$' <<<"$sec" | tail -n1)
	nok=$(grep -c '^not ok - ' <<<"$sec")
	if ! clean_serial | grep -qx "KTEST-SCENARIO: $1"; then
		why="never started"
	elif [ -z "$summary" ]; then
		why="no KTEST summary line (${exitline:-no exit status}; 143: stopped after $SC_TIMEOUT s)"
	elif [[ $summary == "KTEST: 0 passed, "* ]]; then
		why="nothing passed"
	elif [[ $summary != *", 0 failed" ]]; then
		why="checks failed in the VM: $summary"
	elif [ "$exitline" != "KTEST-EXIT: 0" ]; then
		why="exit status: ${exitline:-none}"
	elif [ "$nok" -ne 0 ]; then
		why="$nok 'not ok' lines despite the summary"
	fi
	[ -z "$why" ] && echo "$1: $summary"
	[ -z "$why" ]
}

[ "$qrc" -eq 124 ] && echo "== VM timed out after $TIMEOUT s"
[ -n "${KTEST_RESULT_FILE:-}" ] && : >"$KTEST_RESULT_FILE"
nfail=0
for sc in $SCENARIOS; do
	if evaluate "$sc"; then
		echo "RESULT $sc: PASS"
		rc=0
	else
		echo "RESULT $sc: FAIL ($why)"
		section "$sc" | grep -E '^not ok - ' | sed 's/^/  | /'
		rc=1
		nfail=$((nfail + 1))
	fi
	[ -n "${KTEST_RESULT_FILE:-}" ] && echo "$sc $rc" >>"$KTEST_RESULT_FILE"
done
[ "$qrc" -eq 124 ] && fail "VM timed out after $TIMEOUT s"
[ "$nfail" -eq 0 ] || fail "$nfail of $NSCEN scenario(s) failed"
echo "PASS: kernel test ($((end - start)) s in the VM)"
exit 0
