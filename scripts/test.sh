#!/bin/bash
# The whole test suite on a fresh Debian 12 machine: installs what it needs, builds,
# runs unit tests, fuzz smoke runs, integration tests (network namespaces, swtpm,
# wireguard-go) and the kernel test (qemu). Needs root for namespaces.
set -eu
cd "$(dirname "$0")/.."
if [ "$(id -u)" -ne 0 ]; then
	exec sudo -E "$0" "$@"
fi
./scripts/install-deps.sh
make -j"$(nproc)" all fuzz
exec make check
