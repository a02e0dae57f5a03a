#!/bin/bash
# Key custody of the sealed WireGuard key (edge-keyd/tpm) on swtpm fixture TPMs:
#  - the state directory is 0700 and every file in it 0600; a group-readable sealed blob is
#    refused;
#  - the private key (raw bytes, hex, base64) appears in no file of the state directory and
#    in no log line, even with tss2's trace logging (the key crosses the TPM interface
#    only parameter-encrypted);
#  - no copy of the key is left in the process's memory after provisioning or unsealing
#    (tpm_roundtrip memscan);
#  - the state copied to another TPM does not unseal and is not silently re-provisioned;
#  - with a PCR policy, extending a policy PCR makes unseal fail, resetting it (PCR 16,
#    the resettable debug PCR) makes it work again.
set -u
cd "$(dirname "$0")/../.."
B=${B:-build}
PROG=$B/tests/progs/tpm_roundtrip
[ -x "$PROG" ] || { echo "tpm_roundtrip not built"; exit 1; }
for t in swtpm swtpm_setup swtpm_localca tpm2_getcap tpm2_createek tpm2_pcrextend tpm2_pcrreset \
	openssl flock ss xxd base64; do
	command -v "$t" >/dev/null || { echo "skip: $t not installed"; exit 77; }
done
. swtpm-fixtures/lib.sh

T=$(mktemp -d /tmp/tpm_custody.XXXXXX)
SWTPM_PID=
cleanup() {
	swtpm_stop
	rm -rf "$T"
}
trap cleanup EXIT
export TSS2_LOG=all+none
fails=0
pass() { echo "ok   $*"; }
fail() { echo "FAIL $*"; fails=$((fails + 1)); }

# Expect "$PROG unseal ..." to fail with errno name $1; the rest is the command.
expect_refused() { # ERRNO what cmd...
	local want=$1 what=$2 out
	shift 2
	if out=$("$@" 2>&1); then
		fail "$what: succeeded, should be refused with $want"
	elif grep -q "error: $want" <<<"$out"; then
		pass "$what: refused ($want)"
	else
		fail "$what: refused, but not with $want: $out"
	fi
}

# No file under $1 contains the key of $T/key.bin, in any form.
key_absent() { # dir label
	local hex b64 f n=0
	hex=$(xxd -p -c 64 "$T/key.bin")
	b64=$(base64 -w0 "$T/key.bin")
	while IFS= read -r -d '' f; do
		n=$((n + 1))
		if xxd -p "$f" | tr -d '\n' | grep -qi "$hex" ||
			grep -qiF -e "$hex" -e "$b64" "$f"; then
			fail "$2: $f contains the private key"
			return
		fi
	done < <(find "$1" -type f -print0)
	[ $n -gt 0 ] || { fail "$2: no files to check"; return; }
	pass "$2: the private key is in none of its $n files (raw, hex, base64)"
}

swtpm_fixture_state default "$T/tpmA" || exit 1
swtpm_fixture_state other "$T/tpmB" || exit 1

# ---- TPM A: the device
swtpm_start "$T/tpmA" || exit 1
A=$SWTPM_TCTI
S=$T/state
# provision and unseal with every log we have: ours at debug, tss2 at trace
if ! VERBOSE=1 TSS2_LOG=all+trace "$PROG" provision "$A" "$S" >"$T/pub.b64" 2>"$T/log" ||
	! VERBOSE=1 TSS2_LOG=all+trace "$PROG" unseal "$A" "$S" "$T/key.bin" 2>>"$T/log"; then
	tail -n 20 "$T/log"
	echo "provision/unseal failed"
	exit 1
fi
[ "$(stat -c %s "$T/key.bin")" = 32 ] || { echo "no key"; exit 1; }
[ "$(stat -c %a "$S")" = 700 ] && pass "state directory is 0700" ||
	fail "state directory mode $(stat -c %a "$S")"
for f in "$S"/*; do
	m=$(stat -c %a "$f")
	[ "$m" = 600 ] && pass "$(basename "$f") is 0600" || fail "$(basename "$f") has mode $m"
done
key_absent "$S" "state directory"
# control: the search does find a key that is there (raw bytes inside a file, base64)
mkdir -p "$T/leak1" "$T/leak2"
{ head -c 100 /dev/urandom; cat "$T/key.bin"; } >"$T/leak1/blob"
base64 -w0 "$T/key.bin" >"$T/leak2/b64"
for d in leak1 leak2; do
	out=$(fails=0; key_absent "$T/$d" control)
	[[ $out == FAIL* ]] && pass "control: a planted key is found ($d)" ||
		fail "control: the key search misses a planted key ($d)"
done
hex=$(xxd -p -c 64 "$T/key.bin")
b64=$(base64 -w0 "$T/key.bin")
flat=$(tr -cd '0-9a-fA-F' <"$T/log" | tr 'A-F' 'a-f')
# every 8-byte window of the key in hex: a hex dump with offsets on each line (tss2's
# LOGBLOB "0000: <16 bytes>") breaks the flat string, but keeps a whole window on a line
for i in $(seq 0 2 48); do echo "${hex:i:16}"; done >"$T/windows"
in_windows() { tr -cd '0-9a-fA-F\n' <"$1" | tr 'A-F' 'a-f' | grep -qF -f "$T/windows"; }
# control: the window search finds the key in tss2's dump layout
{
	echo "trace:esys_crypto:x.c:1229:iesys_cryptossl_sym_aes_decrypt() IESYS AES output (size=32): "
	echo "0000: ${hex:0:32}  ................"
	echo "0010: ${hex:32:32}  ................"
} >"$T/tss2dump"
in_windows "$T/tss2dump" && pass "control: a key in tss2's hex dump layout is found" ||
	fail "control: the search misses a key in tss2's hex dump layout"
# tss2-esys logs the decrypted Unseal response at trace and session keys at debug: tpmdev
# caps TSS2_LOG at info before tss2 reads it, whatever the environment asks
if grep -q '^trace:\|^debug:' "$T/log"; then
	fail "tss2 logged at debug/trace although TSS2_LOG is capped at info"
else
	pass "TSS2_LOG=all+trace was capped: no tss2 debug or trace line"
fi
if grep -qiF -e "$hex" -e "$b64" "$T/log" || [[ $flat == *"$hex"* ]] || in_windows "$T/log" ||
	xxd -p "$T/log" | tr -d '\n' | grep -qi "$hex"; then
	fail "a log line contains the private key"
else
	pass "no log line contains the private key ($(wc -l <"$T/log") lines of our debug log and tss2's)"
fi
# the public key printed at provisioning is the unsealed key's
pub=$(openssl pkey -inform der -pubout -outform der \
	-in <(printf '\x30\x2e\x02\x01\x00\x30\x05\x06\x03\x2b\x65\x6e\x04\x22\x04\x20'; cat "$T/key.bin") |
	tail -c 32 | base64 -w0)
[ "$pub" = "$(cat "$T/pub.b64")" ] && pass "the unsealed key belongs to the stored public key" ||
	fail "unsealed key's public key $pub != stored $(cat "$T/pub.b64")"

# no copy of the key left in memory
"$PROG" memscan "$A" "$T/state-mem" >"$T/memscan.log" 2>&1
case $? in
0) pass "memscan: no stray copy of the key in process memory" ;;
77) echo "skip memscan: $(tail -n1 "$T/memscan.log")" ;;
*) cat "$T/memscan.log"; fail "memscan" ;;
esac

# a sealed blob readable by the group is refused
cp -a "$S" "$T/state-perm"
chmod 0640 "$T/state-perm/wg.sealed"
expect_refused EPERM "group-readable wg.sealed" "$PROG" unseal "$A" "$T/state-perm" "$T/x.bin"

# damaged state files are refused, not half-used or silently replaced
cp -a "$S" "$T/state-trunc"
head -c 100 "$S/wg.sealed" >"$T/state-trunc/wg.sealed"
expect_refused EBADMSG "truncated wg.sealed" "$PROG" unseal "$A" "$T/state-trunc" "$T/x.bin"
expect_refused EBADMSG "provisioning over a truncated wg.sealed" \
	"$PROG" provision "$A" "$T/state-trunc"
cp -a "$S" "$T/state-trail"
printf 'x' >>"$T/state-trail/wg.sealed"
expect_refused EBADMSG "wg.sealed with a trailing byte" "$PROG" unseal "$A" "$T/state-trail" "$T/x.bin"
cp -a "$S" "$T/state-swap"
cp "$S/ak.tpm" "$T/state-swap/wg.sealed"
expect_refused EBADMSG "an AK file in place of wg.sealed" \
	"$PROG" unseal "$A" "$T/state-swap" "$T/x.bin"

# PCR policy: bound to sha256:7,16
P=$T/state-pcr
if ! "$PROG" provision "$A" "$P" sha256:7,16 >/dev/null 2>"$T/log2" ||
	! "$PROG" unseal "$A" "$P" "$T/keyp.bin" 2>>"$T/log2"; then
	cat "$T/log2"
	fail "provision/unseal with a PCR policy"
else
	pass "PCR-bound key unseals while PCRs 7 and 16 are unchanged"
	cp "$T/keyp.bin" "$T/key.bin"
	key_absent "$P" "PCR-bound state directory"
	TPM2TOOLS_TCTI=$A tpm2_pcrextend "16:sha256=$(head -c 32 /dev/urandom | xxd -p -c 64)" ||
		fail "pcrextend"
	expect_refused EKEYEXPIRED "unseal after PCR 16 was extended" "$PROG" unseal "$A" "$P" "$T/x.bin"
	TPM2TOOLS_TCTI=$A tpm2_pcrreset 16 || fail "pcrreset"
	if "$PROG" unseal "$A" "$P" "$T/x.bin" 2>/dev/null && cmp -s "$T/x.bin" "$T/keyp.bin"; then
		pass "unseal works again once PCR 16 is back to its policy value"
	else
		fail "unseal after PCR 16 was reset"
	fi
	TPM2TOOLS_TCTI=$A tpm2_pcrextend "7:sha256=$(head -c 32 /dev/urandom | xxd -p -c 64)" ||
		fail "pcrextend"
	expect_refused EKEYEXPIRED "unseal after PCR 7 was extended" "$PROG" unseal "$A" "$P" "$T/x.bin"
fi
[ "$("$PROG" handles "$A")" = "objects 0 sessions 0" ] && pass "nothing left loaded in TPM A" ||
	fail "TPM A still holds: $("$PROG" handles "$A")"
swtpm_stop

# ---- TPM B: another device; the state copied to it (a cloned disk)
swtpm_start "$T/tpmB" || exit 1
cp -a "$S" "$T/state-clone"
expect_refused EKEYREJECTED "unseal of the copied state on another TPM" \
	"$PROG" unseal "$SWTPM_TCTI" "$T/state-clone" "$T/x.bin"
expect_refused EKEYREJECTED "provisioning over the copied state (no silent new identity)" \
	"$PROG" provision "$SWTPM_TCTI" "$T/state-clone"
cmp -s "$S/wg.sealed" "$T/state-clone/wg.sealed" && pass "the copied blob was left untouched" ||
	fail "the copied blob was changed"
[ "$("$PROG" handles "$SWTPM_TCTI")" = "objects 0 sessions 0" ] &&
	pass "nothing left loaded in TPM B after the refusals" || fail "TPM B still holds objects"
swtpm_stop

[ $fails -eq 0 ] || { echo "tpm_custody: $fails failure(s)"; exit 1; }
echo "tpm_custody: all passed"
exit 0
