#!/bin/bash
# Install the Debian packages this project needs to build, test and run its demo.
# Idempotent and fast when everything is already there: it only calls apt-get when
# a package is missing. Needs root (or sudo) when something must be installed.
set -euo pipefail

PKGS=(
	# build
	build-essential pkg-config clang libclang-rt-14-dev
	# make fuzz-cov: llvm-profdata and llvm-cov (clang 14's)
	llvm-14
	# libraries (see docs/dependencies.md for why each is here)
	libtss2-dev libssl-dev libmicrohttpd-dev libgnutls28-dev liblmdb-dev libmnl-dev
	libjansson-dev libcurl4-openssl-dev libcmocka-dev libinih-dev libseccomp-dev libpq-dev
	# the PostgreSQL store backend's tests: a throw-away server (tests/pg_lib.sh)
	postgresql
	# tests and demo: TPM simulator, WireGuard, namespaces, firewall
	swtpm swtpm-tools tpm2-tools wireguard-tools wireguard-go nftables
	iproute2 iputils-ping curl jq openssl procps psmisc xxd
	# helpers of integration tests (enrolld_privsep, enrolld_pg_nodes)
	python3
	# man pages (scdoc) and the alert rules' checker (promtool, in Debian's prometheus)
	scdoc prometheus
	# both daemons end to end under memcheck (tests/integration/valgrind_e2e.sh)
	valgrind
	# kernel test of the generic-netlink backend
	linux-image-amd64 qemu-system-x86 busybox-static cpio kmod
	# VM tests (tests/vm): the Debian image, its overlays and payload disks
	debootstrap qemu-utils e2fsprogs
	# Debian packages (debian/, tests/integration/debian_packages.sh)
	debhelper lintian fakeroot debootstrap
	# the dashboard's browser test: headless Chromium driven by puppeteer-core from npm
	chromium nodejs npm
)

missing=()
# what installed packages provide (NodeSource's nodejs provides npm, and conflicts with it)
provided=$(dpkg-query -W -f='${db:Status-Abbrev} ${Provides}\n' 2>/dev/null | sed -n 's/^ii *//p')
for p in "${PKGS[@]}"; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' &&
		! grep -qE "(^| |,)$p( |,|\(|$)" <<<"$provided"; then
		missing+=("$p")
	fi
done

if [ ${#missing[@]} -eq 0 ]; then
	exit 0
fi

SUDO=
if [ "$(id -u)" -ne 0 ]; then
	SUDO=sudo
fi

echo "install-deps: installing ${missing[*]}" >&2
export DEBIAN_FRONTEND=noninteractive
# The tests run their own throw-away PostgreSQL (tests/pg_lib.sh): installing the server
# must not create and start the system's cluster, a service nobody asked for.
cc=/etc/postgresql-common/createcluster.d
if [[ " ${missing[*]} " == *" postgresql "* ]] && [ ! -e "$cc/edgeward.conf" ]; then
	$SUDO mkdir -p "$cc"
	echo 'create_main_cluster = false' | $SUDO tee "$cc/edgeward.conf" >/dev/null
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
