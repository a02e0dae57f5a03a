#!/bin/bash
# The attestation catalog against real TPM data: two swtpm TPMs (their own states and CA,
# made here in a temp dir), the device side done by tpm2-tools (an implementation
# independent of ours), the server side by enrolld/attest through
# build/tests/progs/attest_negative. Positive cases for RSA-2048, ECC P-384 and ECC P-256
# EKs (MakeCredential checked by a real TPM2_ActivateCredential), then every negative case
# of docs/attestation.md, each expecting its own reason code.
set -u
B=${B:-build}
PROG=$B/tests/progs/attest_negative
[ -x "$PROG" ] || { echo "attest_negative not built"; exit 1; }
for t in swtpm swtpm_setup swtpm_localca tpm2_createek tpm2_activatecredential tpm2_quote; do
	command -v "$t" >/dev/null || { echo "skip: $t not installed"; exit 77; }
done

T=$(mktemp -d /tmp/attest_negative.XXXXXX)
PIDS=()
cleanup() {
	for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null; done
	rm -rf "$T"
}
trap cleanup EXIT
export TSS2_LOG=all+none # tss2 prints every expected TPM error otherwise

# swtpm_setup and its local CA write only under $T
mkdir -p "$T/ca"
cat >"$T/swtpm_setup.conf" <<EOF
create_certs_tool = $(command -v swtpm_localca)
create_certs_tool_config = $T/swtpm-localca.conf
create_certs_tool_options = $T/swtpm-localca.options
EOF
cat >"$T/swtpm-localca.conf" <<EOF
statedir = $T/ca
signingkey = $T/ca/signkey.pem
issuercert = $T/ca/issuercert.pem
certserial = $T/ca/certserial
EOF
printf -- '--platform-manufacturer attest-test\n--platform-version 1\n--platform-model test\n' \
	>"$T/swtpm-localca.options"

mkstate() { # dir
	mkdir -p "$1"
	# --ecc: the P-384 EK (0x81010016) besides the RSA-2048 one (0x81010001), both certified
	swtpm_setup --tpm2 --tpmstate "$1" --create-ek-cert --ecc --config "$T/swtpm_setup.conf" \
		--logfile "$T/setup.log" >/dev/null 2>&1 ||
		{ cat "$T/setup.log"; echo "swtpm_setup failed"; exit 1; }
}

# Start swtpm on a free port pair in 28000-32000; sets PORT.
start_tpm() { # statedir
	local i
	for i in $(seq 20); do
		PORT=$((28000 + (RANDOM % 1990) * 2))
		ss -ltn | grep -qE ":($PORT|$((PORT + 1)))\b" && continue
		swtpm socket --tpm2 --tpmstate dir="$1" --flags not-need-init,startup-clear \
			--server type=tcp,port=$PORT,bindaddr=127.0.0.1 \
			--ctrl type=tcp,port=$((PORT + 1)),bindaddr=127.0.0.1 >"$T/swtpm.$PORT.log" 2>&1 &
		SWPID=$!
		for _ in $(seq 50); do
			if TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=$PORT tpm2_getcap properties-fixed \
				>/dev/null 2>&1; then
				PIDS+=("$SWPID")
				return 0
			fi
			kill -0 "$SWPID" 2>/dev/null || break
			sleep 0.1
		done
		kill "$SWPID" 2>/dev/null
		wait "$SWPID" 2>/dev/null
	done
	echo "cannot start swtpm"
	exit 1
}

W=$T/work
mkdir -p "$W" "$T/trust"
mkstate "$T/tpmA"
mkstate "$T/tpmB"
cp "$T/ca/swtpm-localca-rootca-cert.pem" "$T/ca/issuercert.pem" "$T/trust/"

# ---- the other TPM: only its EK public area is needed
start_tpm "$T/tpmB"
TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=$PORT tpm2_readpublic -c 0x81010001 -f tss \
	-o "$W/ek_other.pub" >/dev/null || { echo "read EK of TPM B"; exit 1; }
kill "$SWPID"; wait "$SWPID" 2>/dev/null

# ---- the device's TPM
start_tpm "$T/tpmA"
export TPM2TOOLS_TCTI=swtpm:host=127.0.0.1,port=$PORT
set -e
for i in 0 1 2 3 7; do tpm2_pcrextend "$i:sha256=$(head -c 32 /dev/urandom | xxd -p -c 64)"; done
tpm2_nvread 0x1c00002 -o "$W/ekcert_rsa.der" 2>/dev/null
tpm2_nvread 0x1c00016 -o "$W/ekcert_p384.der" 2>/dev/null
tpm2_readpublic -c 0x81010001 -f tss -o "$W/ek_rsa.pub" >/dev/null
tpm2_readpublic -c 0x81010016 -f tss -o "$W/ek_p384.pub" >/dev/null
tpm2_createek -G ecc -c 0x81010002 -f tss -u "$W/ek_p256.pub" >/dev/null # TCG P-256 template
tpm2_createak -C 0x81010001 -c "$W/ak_ecc.ctx" -G ecc -g sha256 -s ecdsa -f tss \
	-u "$W/ak_ecc.pub" >/dev/null
tpm2_flushcontext -t
tpm2_createak -C 0x81010001 -c "$W/ak2_ecc.ctx" -G ecc -g sha256 -s ecdsa -f tss \
	-u "$W/ak2_ecc.pub" >/dev/null
tpm2_flushcontext -t
tpm2_createak -C 0x81010001 -c "$W/ak_rsa.ctx" -G rsa -g sha256 -s rsassa -f tss \
	-u "$W/ak_rsa.pub" >/dev/null
tpm2_flushcontext -t
# real TPM keys that are not proper AKs
tpm2_createprimary -C o -G ecc -c "$W/prim.ctx" >/dev/null
tpm2_create -C "$W/prim.ctx" -G ecc256:ecdsa-sha256:null -u "$W/ak_norestrict.pub" \
	-r "$W/x.priv" -a "fixedtpm|fixedparent|sensitivedataorigin|userwithauth|sign" >/dev/null
tpm2_flushcontext -t
tpm2_createprimary -C o -G ecc -c "$W/prim.ctx" >/dev/null
tpm2_create -C "$W/prim.ctx" -G ecc256:ecdsa-sha256:null -u "$W/ak_nofixed.pub" \
	-r "$W/y.priv" -a "sensitivedataorigin|userwithauth|restricted|sign" >/dev/null
tpm2_flushcontext -t
# TCG EK Credential Profile 2.5 policies of the high-range P-384 EK (see DESIGN.md)
echo 8bbf2266537c171cb56e403c4dc1d4b64f432611dc386e6f532050c3278c930e143e8bb1133824ccb431053871c6db53 |
	xxd -r -p >"$W/polA.bin"
echo d6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5b4947c2d73e63005eed2dc2b3593d165 |
	xxd -r -p >"$W/polC.bin"
set +e

# ---- the device side, as tpm2-tools does it
cat >"$W/dev.sh" <<'EOF'
#!/bin/bash
# device side for attest_negative: activate | quote | certify (see the program's header)
W=$(dirname "$0")
S=$W/session.$$.ctx
tpm2_flushcontext -t >/dev/null 2>&1
tpm2_flushcontext -s >/dev/null 2>&1
case $1 in
activate)
	case $2 in
	rsa) ek=0x81010001; alg=sha256 ;;
	p256) ek=0x81010002; alg=sha256 ;;
	p384) ek=0x81010016; alg=sha384 ;;
	esac
	tpm2_startauthsession --policy-session -g $alg -S "$S" || exit 1
	tpm2_policysecret -S "$S" -c e >/dev/null || { tpm2_flushcontext "$S"; exit 1; }
	if [ "$2" = p384 ]; then
		tpm2_policyor -S "$S" -l "sha384:$W/polA.bin,$W/polC.bin" >/dev/null ||
			{ tpm2_flushcontext "$S"; exit 1; }
	fi
	tpm2_activatecredential -c "$3" -C $ek -i "$4" -o "$5" -P "session:$S" >/dev/null
	rc=$?
	tpm2_flushcontext "$S"
	rm -f "$S"
	exit $rc ;;
quote)
	tpm2_quote -c "$2" -l sha256:0,1,2,3,7 -q "$3" -m "$4" -s "$5" -g sha256 >/dev/null || exit 1
	tpm2_pcrread sha256:0,1,2,3,7 -o "$6" >/dev/null ;;
certify)
	tpm2_certify -c "$2" -C "$2" -g sha256 -o "$4" -s "$5" >/dev/null ;;
*) exit 2 ;;
esac
EOF
chmod +x "$W/dev.sh"

start=$(date +%s%N)
WORK=$W DEV=$W/dev.sh TRUST=$T/trust "$PROG" run 2>"$T/stderr"
rc=$?
echo "elapsed $(( ($(date +%s%N) - start) / 1000000 )) ms"
if [ $rc -ne 0 ]; then
	echo "--- device/tool stderr (tail)"
	tail -n 30 "$T/stderr"
	echo "attest catalog failed (rc $rc)"
	exit 1
fi
exit 0
