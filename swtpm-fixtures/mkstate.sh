#!/bin/bash
# mkstate.sh CADIR DEST: create a swtpm TPM 2.0 state in DEST (must not exist) with three
# certified EKs, the certificates issued by the local test CA kept in CADIR (created on first
# use by swtpm_localca: a self-signed root "swtpm-localca-rootca" and the issuing CA
# "swtpm-localca" it signed).
#
#   EK              template (TCG EK Credential Profile 2.5)   key                 certificate NV
#   RSA-2048        L-1, SHA-256 policy                          persistent 0x81010001  0x01c00002
#   ECC P-384       H-3, SHA-384 policy (PolicyOR)               persistent 0x81010016  0x01c00016
#   ECC P-256       L-2, SHA-256 policy                          not persistent         0x01c0000a
#
# swtpm_setup makes the first two. The P-256 EK is made here, the way a TPM vendor would:
# derive it from the template (tpm2_createek -G ecc), issue its certificate with OpenSSL from
# the same issuing CA (extensions in ek-cert.cnf), store it at 0x01c0000a as a platform-
# created NV index. Its key is left unpersisted on purpose, as on many real TPMs: a device
# must recreate it from the template with CreatePrimary, which tests that path.
#
# Also writes, once per CADIR: CADIR/trust/ (root + issuing CA certificates: the directory
# enrolld/attest loads) and CADIR/ca.pem (the root, the trust anchor). Nothing is written
# outside CADIR, DEST and mktemp directories in /tmp, which are removed.
set -eu
[ $# -eq 2 ] || { echo "usage: $0 CADIR DEST" >&2; exit 2; }
HERE=$(cd "$(dirname "$0")" && pwd)
mkdir -p "$1"
CA=$(cd "$1" && pwd)
DEST=$2
[ -e "$DEST" ] && { echo "mkstate: $DEST exists" >&2; exit 1; }
for t in swtpm swtpm_setup swtpm_localca tpm2_createek tpm2_nvdefine tpm2_nvwrite openssl; do
	command -v "$t" >/dev/null || { echo "mkstate: $t not installed" >&2; exit 1; }
done
# shellcheck source=lib.sh
. "$HERE/lib.sh"

T=$(mktemp -d /tmp/swtpm-mkstate.XXXXXX)
SWTPM_PID=
cleanup() {
	swtpm_stop
	rm -rf "$T"
}
trap cleanup EXIT
export TSS2_LOG=all+none

# swtpm_setup and swtpm_localca read only these configs and write only into $CA and DEST
mkdir -p "$CA/conf"
cat >"$CA/conf/swtpm_setup.conf" <<EOF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $CA/conf/swtpm-localca.conf
create_certs_tool_options = $CA/conf/swtpm-localca.options
EOF
cat >"$CA/conf/swtpm-localca.conf" <<EOF
statedir = $CA
signingkey = $CA/signkey.pem
issuercert = $CA/issuercert.pem
certserial = $CA/certserial
EOF
printf -- '--platform-manufacturer edge-test\n--platform-version 1\n--platform-model swtpm\n' \
	>"$CA/conf/swtpm-localca.options"

mkdir -p "$DEST"
if ! swtpm_setup --tpm2 --tpmstate "$DEST" --create-ek-cert --ecc \
	--config "$CA/conf/swtpm_setup.conf" --logfile "$T/setup.log" >/dev/null 2>&1; then
	cat "$T/setup.log" >&2
	echo "mkstate: swtpm_setup failed" >&2
	rm -rf "$DEST"
	exit 1
fi

mkdir -p "$CA/trust"
cp "$CA/swtpm-localca-rootca-cert.pem" "$CA/trust/root.pem"
cp "$CA/issuercert.pem" "$CA/trust/issuer.pem"
cp "$CA/swtpm-localca-rootca-cert.pem" "$CA/ca.pem"

# the P-256 EK and its certificate
if ! swtpm_start "$DEST"; then
	rm -rf "$DEST" "$DEST.swtpm.log"
	exit 1
fi
export TPM2TOOLS_TCTI=$SWTPM_TCTI
tpm2_createek -G ecc -c "$T/ek.ctx" -u "$T/ek256.pem" -f pem >/dev/null
tpm2_flushcontext -t >/dev/null
openssl x509 -new -subj "/CN=unknown" -force_pubkey "$T/ek256.pem" \
	-CA "$CA/issuercert.pem" -CAkey "$CA/signkey.pem" \
	-extfile "$HERE/ek-cert.cnf" -extensions ek -days 3650 \
	-set_serial "0x$(openssl rand -hex 8)" -outform der -out "$T/ek256.der" 2>"$T/openssl.log" ||
	{ cat "$T/openssl.log" >&2; rm -rf "$DEST"; exit 1; }
tpm2_nvdefine 0x01c0000a -C p -s "$(stat -c %s "$T/ek256.der")" \
	-a "ppwrite|writedefine|ppread|ownerread|authread|no_da|platformcreate" >/dev/null
tpm2_nvwrite 0x01c0000a -C p -i "$T/ek256.der"
swtpm_stop
rm -f "$DEST/.lock" "$DEST.swtpm.log"
