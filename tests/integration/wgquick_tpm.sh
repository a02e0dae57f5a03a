#!/bin/bash
# TPM custody under wg-quick (issue 7 item 3, docs/edge-keyd.md "wg-quick and setkey"):
# a TPM device brought up with wg-quick's PostUp = `edge-keyd -c CONF setkey %i`; no file
# under /etc or the state directory ever holds the private key.
#   control plane netns wq-cp-$$: enrolld over HTTPS, userspace WireGuard, tenant "acme";
#   gateway netns wq-gw-$$: its own swtpm, a temp dir standing in for /etc ($TMPETC) and the
#     state directory; edge-keyd provision + enroll (never `run`), then
#     `edge-keyd -c CONF wg-quick > $TMPETC/wireguard/wqNNNN.conf` and the real wg-quick
#     (wireguard-go) brings it up.
# Checks: the file has no PrivateKey line and the PostUp; wg-quick up works; the control
# plane pings the device's /32; the interface's public key is the enrolled one; the private
# key (learned with tpm_roundtrip unseal) is, raw/hex/base64, in no file under $TMPETC or the
# state dir nor in any output of wg-quick/edge-keyd, before and after wg-quick down, even
# with TSS2_LOG=all+trace in wg-quick's environment (tpmdev_open caps tss2 at info: at trace
# tss2 logs the decrypted Unseal output, at debug the session keys); a planted key is found
# in every layout searched, including tss2's own hex dump (the search can fail).
# Negative: the state copied to another TPM: setkey fails and the interface keeps no key;
# wg-quick up with it fails and leaves no interface behind.
# Ports 43000-43999, netns prefix wq-, interface names wq*.
set -u
cd "$(dirname "$0")/../.." || exit 1
ROOT=$(pwd)
B=${B:-build}
EKD=$ROOT/$B/edge-keyd
ENROLLD=$ROOT/$B/enrolld
PROG=$ROOT/$B/tests/progs/tpm_roundtrip
for f in "$EKD" "$ENROLLD" "$PROG"; do
	[ -x "$f" ] || { echo "$f not built"; exit 1; }
done
[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (namespaces, TUN)"; exit 77; }
for t in wireguard-go wg wg-quick ip ping swtpm tpm2_getcap openssl curl jq ss xxd base64; do
	command -v "$t" >/dev/null || { echo "skip: $t not installed"; exit 77; }
done
[ -c /dev/net/tun ] || { echo "skip: no /dev/net/tun"; exit 77; }
export TSS2_LOG=all+none
. swtpm-fixtures/lib.sh
. tests/integration/cpgw_lib.sh
CG_FAIL=die

S=$$
TAG=$(printf '%04x' $((S % 65536)))
NSC=wq-cp-$S NSG=wq-gw-$S
# interface names (<= 15 characters, unique: /var/run/wireguard is shared by all netns)
WGC=wqc$TAG WGG=wq$TAG WGN=wqn$TAG WGX=wqx$TAG VC=wqvc$TAG VG=wqvg$TAG
CP_IP=192.0.2.1 GW_IP=192.0.2.2
# ports 43000-43999: swtpm A (P, P+1), swtpm B (P+2, P+3), API, WireGuard
BASE=$((43000 + (S % 166) * 6))
TPM_PORT=$BASE TPMB_PORT=$((BASE + 2)) API_PORT=$((BASE + 4)) WG_PORT=$((BASE + 5))
T=$(mktemp -d /tmp/wgquick_tpm.XXXXXX)
TMPETC=$T/etc
STATE=$T/var/lib/edge-keyd
CONF=$TMPETC/edge-keyd/edge-keyd.conf
WQ=$TMPETC/wireguard/$WGG.conf
PIDS=()
WQ_UP=0
passed=0 failed=0

ok() { echo "ok - $*"; passed=$((passed + 1)); }
notok() { echo "not ok - $*"; failed=$((failed + 1)); }
check() { # DESCRIPTION command...
	local d=$1
	shift
	if "$@"; then ok "$d"; else notok "$d"; fi
}
summary() {
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
}
# fatal: the rest cannot run
die() {
	notok "$*"
	for f in "$T"/*.log; do [ -s "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done
	summary
	exit 1
}

wq() { # up|down FILE: the real wg-quick in the gateway, edge-keyd on its PATH
	ip netns exec "$NSG" env PATH="$T/bin:$PATH" WG_QUICK_USERSPACE_IMPLEMENTATION=wireguard-go \
		WG_I_PREFER_BUGGY_USERSPACE_TO_POLISHED_KMOD=1 TSS2_LOG="${WQ_TSS2_LOG:-all+none}" \
		timeout 60 wg-quick "$@"
}

cleanup() {
	local p i ns
	[ "$WQ_UP" = 1 ] && wq down "$WQ" >>"$T/wgquick.log" 2>&1
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	# wireguard-go daemonised by enrolld or wg-quick (deleting a netns does not stop them)
	for i in "$NSC:$WGC" "$NSG:$WGG" "$NSG:$WGN" "$NSG:$WGX"; do
		ns=${i%%:*}
		p=$(sock_pid "$ns" "$SOCKDIR/${i#*:}.sock")
		[ -n "$p" ] && stop_pid "$p"
		rm -f "$SOCKDIR/${i#*:}.sock"
	done
	ip netns del "$NSC" 2>/dev/null
	ip netns del "$NSG" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
trap "exit 1" INT TERM HUP

# ---- namespaces, control plane
cg_topology_up

mkdir -p "$T/cp" "$T/bin" "$T/secret" "$TMPETC/edge-keyd" "$TMPETC/wireguard" "$(dirname "$STATE")"
ln -s "$EKD" "$T/bin/edge-keyd"
cg_cp_credentials "wgquick test CA"
(umask 077; cp "$T/cp/prov.token" "$TMPETC/edge-keyd/prov.token")
cp "$T/cp/ca.pem" "$TMPETC/edge-keyd/cp-ca.pem"
cg_cp_start
st=$(inc curl -s --max-time 30 --cacert "$T/cp/ca.pem" -H "Authorization: Bearer $ADMIN" \
	-o "$T/body" -w '%{http_code}' -H 'Content-Type: application/json' --data \
	"{\"name\":\"acme\",\"prefix\":\"10.79.0.0/24\",\"interface\":\"$WGC\",
	\"listen_port\":$WG_PORT,\"endpoint\":\"$CP_IP:$WG_PORT\",\"keepalive\":25}" "$U/v1/tenants")
[ "$st" = 201 ] || [ "$st" = 200 ] || die "tenant create: HTTP $st $(cat "$T/body")"
wait_for 10 test -S "$SOCKDIR/$WGC.sock" || die "enrolld did not bring up $WGC"

# ---- gateway: two TPMs (A: this device's, B: another device's), provision + enroll on A
swtpm_fixture_state ekgw "$T/tpmA" || die "fixture state ekgw"
swtpm_fixture_state other "$T/tpmB" || die "fixture state other"
cg_gw_swtpm "$T/tpmA" "$TPM_PORT" "$T/swtpmA.log" || die "swtpm A"
cg_gw_swtpm "$T/tpmB" "$TPMB_PORT" "$T/swtpmB.log" || die "swtpm B"
TCTI="swtpm:host=127.0.0.1,port=$TPM_PORT"
TCTIB="swtpm:host=127.0.0.1,port=$TPMB_PORT"
cat >"$CONF" <<EOF
[device]
state_dir = $STATE
tcti = $TCTI
label = wq-$S
[server]
url = $U
ca_file = $TMPETC/edge-keyd/cp-ca.pem
tenant = acme
provisioning_token_file = $TMPETC/edge-keyd/prov.token
[wireguard]
interface = $WGG
backend = userspace
EOF
ekd() { ing timeout 60 "$EKD" -c "$CONF" "$@"; }
ekd provision >"$T/provision.out" 2>"$T/provision.log" || die "edge-keyd provision"
ok "edge-keyd provision"
ekd enroll >"$T/enroll.out" 2>"$T/enroll.log" || die "edge-keyd enroll"
ok "edge-keyd enroll"
E=$STATE/enrollment.json
ADDR=$(jq -r .address "$E")
[[ $ADDR =~ ^10\.79\.0\.[0-9]+/32$ ]] || die "enrolled address '$ADDR'"
GWA=${ADDR%/32}
PUB=$(jq -r .wg_public_key "$E")

# the key that must appear nowhere (kept outside TMPETC and the state directory)
ing "$PROG" unseal "$TCTI" "$STATE" "$T/secret/key.bin" >/dev/null 2>"$T/unseal.log" ||
	die "tpm_roundtrip unseal"
[ "$(stat -c %s "$T/secret/key.bin")" = 32 ] || die "unsealed key is not 32 bytes"
UPUB=$(base64 -w0 "$T/secret/key.bin" | wg pubkey)
check "the unsealed key is the enrolled one" [ "$UPUB" = "$PUB" ]

# ---- the wg-quick file
ekd wg-quick >"$WQ" 2>"$T/wgquick-render.log"
check "edge-keyd wg-quick succeeds" [ $? = 0 ]
cp "$WQ" "$T/wq.conf.rendered"
check "the file has no PrivateKey line" bash -c "! grep -qi '^[[:space:]]*PrivateKey' '$WQ'"
check "the file has PostUp = edge-keyd -c CONF setkey %i" \
	grep -qxF "PostUp = edge-keyd -c $CONF setkey %i" "$WQ"
(cd "$TMPETC/edge-keyd" && ip netns exec "$NSG" "$EKD" -c edge-keyd.conf wg-quick) \
	>"$T/wq-relative.conf" 2>>"$T/wgquick-render.log"
check "-c with a relative path: the PostUp names the absolute path" \
	grep -qxF "PostUp = edge-keyd -c $CONF setkey %i" "$T/wq-relative.conf"
check "the file has the enrolled address" grep -qxF "Address = $ADDR" "$WQ"
check "the file has one [Peer] with the control plane's endpoint" \
	bash -c "[ \"\$(grep -c '^\[Peer\]' '$WQ')\" = 1 ] && grep -qxF 'Endpoint = $CP_IP:$WG_PORT' '$WQ'"

# ---- wg-quick up (with tss2 trace logging into the log we search afterwards)
WQ_TSS2_LOG=all+trace wq up "$WQ" >"$T/wgquick.log" 2>&1
rc=$?
[ $rc = 0 ] && WQ_UP=1
check "wg-quick up succeeds" [ $rc = 0 ]
check "wg-quick ran the PostUp (edge-keyd setkey)" grep -qF "edge-keyd -c $CONF setkey $WGG" "$T/wgquick.log"
check "the interface has the enrolled public key (the private key was set)" \
	[ "$(ing wg show "$WGG" public-key 2>/dev/null)" = "$PUB" ]
ping_gw() { inc ping -c 1 -W 1 "$GWA" >/dev/null 2>&1; }
check "the control plane pings the device's /32 ($GWA)" wait_for 20 ping_gw
check "wg show has a handshake with the control plane" \
	bash -c "[ \"\$(ip netns exec '$NSG' wg show '$WGG' latest-handshakes | cut -f2)\" -gt 0 ]"

# ---- custody: the key in no file, in any form
HEX=$(xxd -p -c 64 "$T/secret/key.bin")
B64=$(base64 -w0 "$T/secret/key.bin")
# every 8-byte window of the key in hex: a hex dump with offsets (xxd, tss2's LOGBLOB)
# keeps at least one whole window of the key on one of its lines
for i in $(seq 0 2 48); do echo "${HEX:i:16}"; done >"$T/secret/windows"
# key_absent LABEL FILE...: fails if any file holds the key raw, in hex (any case, whole,
# split over lines, or 8 bytes of it on one line of a hex dump with offsets) or base64
key_absent() {
	local label=$1 f n=0 bad=
	shift
	for f in "$@"; do
		[ -f "$f" ] || continue
		n=$((n + 1))
		if xxd -p "$f" | tr -d '\n' | grep -qi "$HEX" ||
			grep -qiF -e "$HEX" -e "$B64" "$f" || tr -d '\n' <"$f" | grep -qF "$B64" ||
			tr -cd '0-9a-fA-F' <"$f" | tr 'A-F' 'a-f' | grep -qF "$HEX" ||
			tr -cd '0-9a-fA-F\n' <"$f" | tr 'A-F' 'a-f' | grep -qF -f "$T/secret/windows"; then
			bad="$bad $f"
		fi
	done
	if [ -n "$bad" ]; then
		notok "$label: the private key is in$bad"
	elif [ $n = 0 ]; then
		notok "$label: no files to search"
	else
		ok "$label: the private key is in none of its $n files (raw, hex, base64)"
	fi
}
files_under() { find "$@" -type f -print0 | xargs -0 -r printf '%s\n'; }
mapfile -t ETC_FILES < <(files_under "$TMPETC")
mapfile -t STATE_FILES < <(files_under "$STATE")
LOGS=("$T"/*.log "$T"/*.out "$T/wq.conf.rendered")
# control: the search finds a planted key (raw inside a blob, base64, hex dump)
mkdir -p "$T/plant"
{ head -c 100 /dev/urandom; cat "$T/secret/key.bin"; head -c 7 /dev/urandom; } >"$T/plant/raw"
{ echo "PrivateKey = $B64"; } >"$T/plant/b64"
xxd "$T/secret/key.bin" >"$T/plant/hexdump"
for f in raw b64 hexdump; do
	out=$(key_absent control "$T/plant/$f")
	[[ $out == "not ok"* ]] && ok "control: a planted key is found ($f)" ||
		notok "control: the search misses a planted key ($f)"
done
# tss2's own hex dump layout ("0000: <16 bytes hex>  <ascii>"), the key split over two lines
{
	echo "trace:esys_crypto:x.c:1229:iesys_cryptossl_sym_aes_decrypt() IESYS AES output (size=32): "
	echo "0000: ${HEX:0:32}  ................"
	echo "0010: ${HEX:32:32}  ................"
} >"$T/plant/tss2"
out=$(key_absent control "$T/plant/tss2")
[[ $out == "not ok"* ]] && ok "control: a planted key is found (tss2 hex dump)" ||
	notok "control: the search misses a planted key (tss2 hex dump)"
check "tpmdev capped tss2's logging (TSS2_LOG=all+trace, no debug/trace line in the wg-quick log)" \
	bash -c "! grep -qE '^(debug|trace):' '$T/wgquick.log'"
key_absent "TMPETC with the interface up" "${ETC_FILES[@]}"
key_absent "state directory with the interface up" "${STATE_FILES[@]}"
key_absent "wg-quick and edge-keyd output" "${LOGS[@]}"
check "the state directory holds only 0600 files" \
	bash -c "[ -z \"\$(find '$STATE' -type f ! -perm 0600)\" ]"

# ---- wg-quick down
wq down "$WQ" >>"$T/wgquick.log" 2>&1
rc=$?
[ $rc = 0 ] && WQ_UP=0
check "wg-quick down succeeds" [ $rc = 0 ]
check "the interface is gone" wait_for 5 bash -c "! ip -n '$NSG' link show '$WGG' >/dev/null 2>&1"
mapfile -t ETC_FILES < <(files_under "$TMPETC")
mapfile -t STATE_FILES < <(files_under "$STATE")
key_absent "TMPETC and the state directory after wg-quick down" "${ETC_FILES[@]}" "${STATE_FILES[@]}"
key_absent "all output after wg-quick down" "$T"/*.log

# ---- negative: the state copied to another device (TPM B)
NEG=$T/neg
mkdir -p "$NEG/etc/wireguard"
cp -a "$STATE" "$NEG/state"
sed -e "s#^state_dir = .*#state_dir = $NEG/state#" -e "s#^tcti = .*#tcti = $TCTIB#" \
	-e "s#^interface = .*#interface = $WGX#" "$CONF" >"$NEG/edge-keyd.conf"
ing env WG_PROCESS_FOREGROUND=1 wireguard-go "$WGN" >"$T/wireguard-go-neg.log" 2>&1 &
PIDS+=($!)
wait_for 10 test -S "$SOCKDIR/$WGN.sock" || die "wireguard-go $WGN did not start"
ing timeout 60 "$EKD" -c "$NEG/edge-keyd.conf" setkey "$WGN" >"$T/setkey-neg.log" 2>&1
rc=$?
check "setkey with the state of another TPM fails (exit $rc)" [ $rc != 0 ]
check "and says it cannot unseal" grep -q "cannot unseal" "$T/setkey-neg.log"
check "and leaves the interface without a key" \
	[ "$(ing wg show "$WGN" private-key 2>&1)" = "(none)" ]
# control: the same command on this TPM's state does set the key
ing timeout 60 "$EKD" -c "$CONF" setkey "$WGN" >"$T/setkey-pos.log" 2>&1
check "control: setkey with this TPM's state sets the key on $WGN" \
	[ "$(ing wg show "$WGN" public-key 2>&1)" = "$PUB" ]
ing "$EKD" -c "$NEG/edge-keyd.conf" wg-quick >"$NEG/etc/wireguard/$WGX.conf" 2>>"$T/setkey-neg.log" ||
	notok "wg-quick file from the copied state"
WQ_TSS2_LOG=all+trace wq up "$NEG/etc/wireguard/$WGX.conf" >"$T/wgquick-neg.log" 2>&1
rc=$?
check "wg-quick up with the copied state fails (exit $rc)" [ $rc != 0 ]
check "and leaves no interface behind" \
	wait_for 5 bash -c "! ip -n '$NSG' link show '$WGX' >/dev/null 2>&1"
check "the copied blob was not changed" cmp -s "$STATE/wg.sealed" "$NEG/state/wg.sealed"
mapfile -t NEG_FILES < <(files_under "$NEG")
key_absent "the copied state and the negative runs' output" "${NEG_FILES[@]}" "$T"/*.log

summary
