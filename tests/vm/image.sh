#!/bin/bash
# The Debian 12 image the VM tests boot: built once by debootstrap, then cached.
#
#   tests/vm/image.sh          print the cache directory holding a ready image, building it
#                              first if needed (exit 0), or exit 77 with the reason when the
#                              tools are missing, 1 when the build fails
#
# The cache directory ($VM_CACHE_ROOT, default build/vm-cache, /<hash>/) holds
#   root.img   raw ext4 root file system (VMs boot a qcow2 overlay of it, never it)
#   vmlinuz initrd.img   the image's own kernel and initramfs (Debian's linux-image-amd64,
#              installed in the chroot; its initramfs is checked for virtio_blk)
#   build.log  what debootstrap and the chroot steps printed; build.seconds
# The hash covers this script (its package list and the files it writes into the image) and
# the mirror, not the project's code: the project is installed per run from a second disk
# (tests/vm/lib.sh). Builds are serialised with flock, so parallel runs build once. The
# downloaded packages are kept in $VM_CACHE_ROOT/debs (debootstrap --cache-dir).
#
# Environment: VM_CACHE_ROOT; VM_MIRROR (default: the first deb.debian.org/debian URI of
# this machine's apt sources, else http://deb.debian.org/debian).
set -u
cd "$(dirname "$0")/../.." || exit 1
SELF=tests/vm/image.sh
: "${VM_CACHE_ROOT:=$PWD/build/vm-cache}"

# runtime dependencies of enrolld and edge-keyd (ldd of both), the tools the scenarios use
PKGS="systemd-sysv udev kmod dbus iproute2 nftables wireguard-tools tpm2-tools
 libtss2-esys-3.0.2-0 libtss2-mu0 libtss2-tctildr0 libtss2-rc0 libtss2-sys1
 libtss2-tcti-device0 libmicrohttpd12 liblmdb0 libmnl0 libjansson4 libcurl4 libinih1 libpq5
 libssl3 libgnutls30 iputils-ping procps curl jq openssl ca-certificates
 linux-image-amd64 initramfs-tools"

skip() { echo "vm image: SKIP: $*" >&2; exit 77; }
die() { echo "vm image: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || skip "debootstrap needs root"
for c in debootstrap mkfs.ext4 flock chroot; do
	command -v "$c" >/dev/null || skip "$c not installed (./scripts/install-deps.sh)"
done

MIRROR=${VM_MIRROR:-}
if [ -z "$MIRROR" ]; then
	MIRROR=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list \
		/etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -oE 'https?://[^ ]*/debian/?( |$)' | grep -v security | head -n1 | tr -d ' ')
	MIRROR=${MIRROR:-http://deb.debian.org/debian}
fi

h=$( { cat "$SELF"; echo "$MIRROR"; } | sha256sum | cut -c1-16)
C=$VM_CACHE_ROOT/$h
mkdir -p "$C" || die "mkdir $C"
if [ -f "$C/ready" ]; then
	echo "$C"
	exit 0
fi
exec {lockfd}>"$C/.lock"
flock "$lockfd"
if [ -f "$C/ready" ]; then
	echo "$C"
	exit 0
fi

echo "vm image: building $C from $MIRROR (once; several minutes)" >&2
start=$(date +%s)
# The chroot is built outside build/: the Makefile includes every *.d under build/, and a
# Debian root has /etc/rc2.d and friends.
R=$(mktemp -d "${TMPDIR:-/var/tmp}/vmtest-root.XXXXXX") || die "mktemp"
# shellcheck disable=SC2317 # called by the EXIT trap
unmount_all() {
	for m in dev/pts dev proc sys; do
		mountpoint -q "$R/$m" 2>/dev/null && umount -l "$R/$m"
	done
}
trap 'unmount_all; rm -rf "$R"' EXIT
trap 'exit 143' TERM INT HUP
rm -f "$C/root.img"
exec 3>"$C/build.log"

# debootstrap resolves --include's dependencies itself
mkdir -p "$VM_CACHE_ROOT/debs"
debootstrap --cache-dir="$VM_CACHE_ROOT/debs" --variant=minbase --include="$(echo $PKGS | tr ' ' ',')" bookworm "$R" "$MIRROR" \
	>&3 2>&1 || { tail -n 20 "$C/build.log" >&2; die "debootstrap failed (log $C/build.log)"; }

# --- what the VMs need from the image, independent of the project ---
echo vmtest >"$R/etc/hostname"
printf '/dev/vda / ext4 rw,errors=remount-ro 0 1\n' >"$R/etc/fstab"
# root on the serial console without a password: debugging a VM by hand (KEEP=1)
sed -i 's/^root:[^:]*:/root::/' "$R/etc/shadow"
# a full journal on disk (the scenarios read it after reboots, and keep it as artifacts)
mkdir -p "$R/var/log/journal" "$R/etc/systemd/journald.conf.d"
printf '[Journal]\nStorage=persistent\n' >"$R/etc/systemd/journald.conf.d/vmtest.conf"

# The agent hook: mounts the run's payload disk (/dev/vdb, made per run by tests/vm/lib.sh)
# and hands over to its agent.sh: "install" (first boot: the project and the test's
# configuration, before the network and the units start), then "serve" (the host's
# commands over the virtio-serial port "vmtest"). Only this hook lives in the cached image.
mkdir -p "$R/usr/local/lib/vmtest"
cat >"$R/usr/local/lib/vmtest/boot" <<'BOOT'
#!/bin/sh
mkdir -p /run/vmtest
for i in $(seq 300); do
	[ -b /dev/vdb ] && [ -e /dev/virtio-ports/vmtest ] && break
	sleep 0.1
done
mountpoint -q /run/vmtest || mount -o ro /dev/vdb /run/vmtest || exit 1
exec /bin/bash /run/vmtest/agent.sh "$1"
BOOT
chmod 0755 "$R/usr/local/lib/vmtest/boot"
cat >"$R/etc/systemd/system/vmtest-agent.service" <<'UNIT'
[Unit]
Description=VM test agent (tests/vm): the host's commands over virtio-serial
DefaultDependencies=no
After=local-fs.target systemd-udevd.service systemd-udev-trigger.service
Wants=systemd-udevd.service systemd-udev-trigger.service
Before=sysinit.target systemd-networkd.service network-pre.target

[Service]
ExecStartPre=/usr/local/lib/vmtest/boot install
ExecStart=/usr/local/lib/vmtest/boot serve
Restart=always
RestartSec=1

[Install]
WantedBy=sysinit.target
UNIT
mkdir -p "$R/etc/systemd/system/sysinit.target.wants"
ln -sf /etc/systemd/system/vmtest-agent.service \
	"$R/etc/systemd/system/sysinit.target.wants/vmtest-agent.service"
# the WAN is configured by the payload's .network file; wait-online only for it
ln -sf /lib/systemd/system/systemd-networkd.service \
	"$R/etc/systemd/system/multi-user.target.wants/systemd-networkd.service"
mkdir -p "$R/etc/systemd/system/network-online.target.wants"
ln -sf /lib/systemd/system/systemd-networkd-wait-online.service \
	"$R/etc/systemd/system/network-online.target.wants/systemd-networkd-wait-online.service"

# kernel and initramfs: Debian's, from the chroot; virtio_blk must be in the initramfs
KIMG=$(ls "$R"/boot/vmlinuz-* 2>/dev/null | sort -V | tail -n1)
[ -n "$KIMG" ] || die "no kernel in the chroot"
KVER=${KIMG##*/vmlinuz-}
[ -f "$R/boot/initrd.img-$KVER" ] || die "no initrd for $KVER in the chroot"
if ! lsinitramfs "$R/boot/initrd.img-$KVER" 2>/dev/null | grep -q 'virtio_blk'; then
	echo virtio_blk >>"$R/etc/initramfs-tools/modules"
	mount --bind /proc "$R/proc"
	chroot "$R" update-initramfs -u -k "$KVER" >&3 2>&1 || die "update-initramfs"
	umount "$R/proc"
	lsinitramfs "$R/boot/initrd.img-$KVER" | grep -q virtio_blk ||
		die "virtio_blk not in the initramfs"
fi
cp "$KIMG" "$C/vmlinuz" && cp "$R/boot/initrd.img-$KVER" "$C/initrd.img" || die "copy kernel"

rm -rf "$R"/var/cache/apt/archives/*.deb "$R"/var/lib/apt/lists/*
mkfs.ext4 -q -F -L root -d "$R" "$C/root.img" 2G >&3 2>&1 || die "mkfs.ext4 -d"
rm -rf "$R"
end=$(date +%s)
echo $((end - start)) >"$C/build.seconds"
echo "$KVER" >"$C/kernel.version"
touch "$C/ready"
echo "vm image: built in $((end - start)) s" >&2
echo "$C"
