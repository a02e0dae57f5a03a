#!/bin/bash
# Kernel test of the generic-netlink WireGuard backend (common/wg_genl.c) and of
# common/rtnl.c against Debian's packaged kernel and its wireguard.ko, under qemu.
#
# Builds an initramfs in a temp dir: busybox-static, the wireguard module and its
# dependencies (plus veth), our test program $B/tests/progs/nltest with the shared
# libraries it needs (ldd), and an /init that loads the modules, runs nltest and powers
# the VM off. The VM's serial console is written to a file; the test passes when it
# holds "KTEST: N passed, 0 failed" and nltest exited 0.
#
# Exit: 0 pass, 77 skip (qemu, kernel or busybox-static absent; says why, loudly), else fail.
#
# Environment:
#   B             build directory (default build)
#   KTEST_KVM=1   use KVM instead of TCG (KVM hangs on some machines: see DESIGN.md)
#   KTEST_KVER    kernel version to boot (default: the newest /lib/modules/* with a
#                 matching /boot/vmlinuz-*)
#   KTEST_PROG    program to run in the VM instead of nltest (for debugging the boot path)
#   KTEST_TIMEOUT seconds before the VM is killed (default 300)
#   KTEST_KEEP=1  keep the temp dir (initramfs, serial log)
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
PROG=${KTEST_PROG:-$B/tests/progs/nltest}
TIMEOUT=${KTEST_TIMEOUT:-300}
# nltest itself is stopped earlier, so a hang still reports what ran and the kernel log
VM_TIMEOUT=$((TIMEOUT > 60 ? TIMEOUT - 45 : TIMEOUT / 2))
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
		clean_serial | grep -E '^KTEST(-EXIT)?: ' | sed 's/^/  | /'
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

[ -x "$PROG" ] || fail "test program $PROG not built (make -j2)"

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

echo "== kernel $KVER, test program $PROG"

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
$veth_deps"
grep -q '/wireguard\.ko$' "$R/etc/modules.order" || grep -q '^builtin wireguard' <<<"$deps" ||
	fail "wireguard.ko not in: $deps"

# --- busybox and its applets ---
cp "$BUSYBOX" "$R/bin/busybox" || fail "copy busybox"
for a in sh mount mkdir insmod cat echo poweroff sleep ip ping dmesg ls tail timeout sed; do
	ln -s busybox "$R/bin/$a"
done

# --- the test program and its shared libraries ---
cp "$PROG" "$R/bin/nltest" || fail "copy $PROG"
libdirs=
while read -r line; do
	lib=
	case $line in
	*"=> not found"*) fail "ldd $PROG: $line" ;;
	*"=> /"*) lib=${line#*=> }; lib=${lib%% (*} ;;
	/*) lib=${line%% (*} ;;
	esac
	[ -n "$lib" ] || continue
	mkdir -p "$R$(dirname "$lib")"
	cp -L "$lib" "$R$lib" || fail "copy $lib"
	case ":$libdirs:" in *":$(dirname "$lib"):"*) ;; *) libdirs=$libdirs${libdirs:+:}$(dirname "$lib") ;; esac
done < <(ldd "$PROG" 2>&1 | grep -v 'not a dynamic executable')

cat >"$R/init" <<EOF
#!/bin/sh
# The VM's only job: load the modules, run the test, report on the serial console, power off.
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
LD_LIBRARY_PATH=$libdirs timeout $VM_TIMEOUT /bin/nltest 2>&1
rc=\$?
echo "KTEST-EXIT: \$rc"
if [ "\$rc" != 0 ]; then
	dmesg | tail -n 25 | sed 's/^/KTEST-DMESG: /'
fi
poweroff -f
EOF
chmod 0755 "$R/init"

(cd "$R" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --quiet) \
	>"$T/initramfs.cpio" || fail "cpio"
echo "== initramfs: $(du -h "$T/initramfs.cpio" | cut -f1) ($(wc -l <"$R/etc/modules.order") modules)"

ACCEL=(-accel tcg -cpu max)
[ "${KTEST_KVM:-0}" = 1 ] && ACCEL=(-accel kvm -cpu host)
SERIAL=$T/serial.log
start=$(date +%s)
timeout -k 5 "$TIMEOUT" "$QEMU" "${ACCEL[@]}" -m 1024 -smp 1 -nic none -nographic -no-reboot \
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
[ "$qrc" -eq 124 ] && fail "VM timed out after $TIMEOUT s"

summary=$(clean_serial | grep -E '^KTEST: [0-9]+ passed, [0-9]+ failed$' | tail -n1)
exitline=$(clean_serial | grep -E '^KTEST-EXIT: [0-9]+$' | tail -n1)
[ -n "$summary" ] || fail "no KTEST summary line from the VM (nltest ${exitline:-did not report an exit status}; 143: stopped after $VM_TIMEOUT s)"
echo "$summary"
case $summary in
"KTEST: 0 passed, "*) fail "nothing passed" ;;
*", 0 failed") ;;
*) fail "checks failed in the VM" ;;
esac
[ "$exitline" = "KTEST-EXIT: 0" ] || fail "nltest exit status: ${exitline:-none}"
nok=$(clean_serial | grep -c '^not ok - ')
[ "$nok" -eq 0 ] || fail "$nok 'not ok' lines despite the summary"
echo "PASS: kernel test ($((end - start)) s in the VM)"
exit 0
