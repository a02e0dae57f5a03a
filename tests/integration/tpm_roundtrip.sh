#!/bin/bash
# Device side (edge-keyd/tpm) against server side (enrolld/attest) on real swtpm TPMs from
# swtpm-fixtures: for each EK type (RSA-2048, ECC P-256, ECC P-384) provision, read EK and
# certificate, verify the EK against the fixture CA, challenge, ActivateCredential, Quote,
# attest_complete == ATTEST_OK; the whole device cycle twice on one swtpm with no transient
# object or session left after any step; an RSA AK; a wrong PCR policy, a wrong EK and a
# quote over another WireGuard key rejected; key rotation. Then the same on a second
# fixture TPM (another device, same CA). Details: tests/progs/tpm_roundtrip.c.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
PROG=$B/tests/progs/tpm_roundtrip
[ -x "$PROG" ] || { echo "tpm_roundtrip not built"; exit 1; }
for t in swtpm swtpm_setup swtpm_localca tpm2_getcap tpm2_createek tpm2_nvdefine openssl flock ss; do
	command -v "$t" >/dev/null || { echo "skip: $t not installed"; exit 77; }
done
. swtpm-fixtures/lib.sh

T=$(mktemp -d /tmp/tpm_roundtrip.XXXXXX)
SWTPM_PID=
cleanup() {
	swtpm_stop
	rm -rf "$T"
}
trap cleanup EXIT
export TSS2_LOG=all+none # tss2 prints every expected TPM error otherwise

TRUST=$(swtpm_fixture_trust) || { echo "no fixture CA"; exit 1; }
fails=0

for dev in default device2; do
	echo "== fixture TPM '$dev'"
	swtpm_fixture_state "$dev" "$T/$dev.tpm" || exit 1
	swtpm_start "$T/$dev.tpm" || exit 1
	start=$(date +%s%N)
	if ! "$PROG" cycle "$SWTPM_TCTI" "$T/$dev.state" "$TRUST"; then
		echo "FAIL: device cycle on '$dev'"
		fails=$((fails + 1))
	fi
	echo "     cycle took $(( ($(date +%s%N) - start) / 1000000 )) ms"
	# an independent look at the TPM: nothing left loaded, the SRK made persistent
	h=$("$PROG" handles "$SWTPM_TCTI")
	[ "$h" = "objects 0 sessions 0" ] || { echo "FAIL: TPM still holds: $h"; fails=$((fails + 1)); }
	if ! tpm2_getcap -T "$SWTPM_TCTI" handles-persistent | grep -q 0x81000001; then
		echo "FAIL: the SRK was not made persistent at 0x81000001"
		fails=$((fails + 1))
	fi
	# the state directory: only our files, each 0600
	for f in "$T/$dev.state"/*; do
		m=$(stat -c %a "$f")
		[ "$m" = 600 ] || { echo "FAIL: $f has mode $m"; fails=$((fails + 1)); }
	done
	swtpm_stop
done

[ $fails -eq 0 ] || { echo "tpm_roundtrip: $fails failure(s)"; exit 1; }
echo "tpm_roundtrip: all passed"
exit 0
