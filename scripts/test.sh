#!/bin/bash
# The whole test suite on a fresh Debian 12 machine: installs what it needs, builds,
# runs unit tests, fuzz smoke runs, integration tests (network namespaces, swtpm,
# wireguard-go), the kernel and VM tests (qemu); then the unit and integration tests
# again against an ASan + UBSan build (build/san). Needs root for namespaces.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	exec sudo -E "$0" "$@"
fi
./scripts/install-deps.sh
make -j"$(nproc)" all fuzz
rc=0
make check || rc=$?
echo "== the same unit and integration tests, built with ASan + UBSan"
make -j"$(nproc)" SANITIZE=1 all
make SANITIZE=1 check-sanitized || rc=$?
exit $rc
