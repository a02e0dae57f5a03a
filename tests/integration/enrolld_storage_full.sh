#!/bin/bash
# The state's storage runs out (issue 12, faults): enrolld's LMDB environment on a small
# tmpfs, filled through the API until the file system is full, then (after it has room
# again) until the map reaches [state] max_size_mib. Each time:
#   - the write that does not fit is refused with 507 storage_full, in the JSON error form,
#     and enrolld logs it; later writes too, of every kind (registration, device CA,
#     enrollment), and none of them changes anything: no device, no token use, no record;
#   - reads go on (lists, metrics);
#   - when space returns (tmpfs remounted larger, no restart), writes succeed again and a
#     device enrolls; after a restart (store_verify runs at start) every acknowledged
#     write is there, nothing else is.
# Map full: the limit is raised in the config and enrolld restarted, as enrolld.conf(5) says.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
fails=0
ed_init storage
FS=$T/fs
mkdir -p "$FS"
if ! mount -t tmpfs -o size=384k,mode=0700 tmpfs "$FS"; then
	echo "skip: cannot mount a tmpfs"
	exit 77
fi
storage_cleanup() {
	local t=$T
	ed_cleanup 2>/dev/null
	umount "$t/fs" 2>/dev/null
	rm -rf "$t"
}
trap storage_cleanup EXIT

IF=$(ed_ifname s)
ed_conf
sed -i "s|^db_path = .*|db_path = $FS/db|" "$T/e.conf"
ed_start
check "tenant created" [ "$(api POST /v1/tenants "$ADMIN" "{\"name\":\"t1\",\"prefix\":\"10.97.0.0/24\",\"interface\":\"$IF\",\"listen_port\":35140,\"endpoint\":\"192.0.2.1:35140\"}")" = 201 ]
api POST /v1/tenants/t1/tokens "$ADMIN" '{"uses":5}' >/dev/null
TOK=$(body .token)
TOK_ID=$(body .id)

# Device CAs are the largest records (8 KiB): distinct self-signed CAs, made up front.
mkdir -p "$T/cas"
for i in $(seq 120); do
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=fill $i" -keyout /dev/null -out "$T/cas/$i.pem" 2>/dev/null
done
ca_body() { printf '{"certificate": %s, "label": "fill %s"}' "$(jq -Rs . <"$T/cas/$1.pem")" "$1"; }

# Write device CAs from NEXT on until one is refused (its status in ST); acknowledged
# labels to $T/acked.
NEXT=1
fill() {
	while [ "$NEXT" -le 120 ]; do
		ST=$(api POST /v1/tenants/t1/device-cas "$ADMIN" "$(ca_body "$NEXT")")
		NEXT=$((NEXT + 1))
		[ "$ST" = 201 ] || return
		echo "fill $((NEXT - 1))" >>"$T/acked"
	done
	ST="never refused"
}
# Then small records (registrations, 136 bytes) until one is refused too: the file
# system has no page left. Acknowledged EK ids to $T/regs.
REG=1
fill_small() {
	while [ "$REG" -le 2000 ]; do
		ST=$(api POST /v1/tenants/t1/registrations "$ADMIN" "{\"ek_id\":\"$(printf '%064x' "$REG")\"}")
		REG=$((REG + 1))
		[ "$ST" = 201 ] || return
		printf '%064x\n' $((REG - 1)) >>"$T/regs"
	done
	ST="never refused"
}
: >"$T/regs"
regs_listed() {
	[ "$(api GET /v1/tenants/t1/registrations "$ADMIN")" = 200 ] || { echo "list failed"; return; }
	jq -r '.registrations[].ek_id' "$T/body" | sort | tr '\n' ' '
}
: >"$T/acked"
cas_listed() {
	[ "$(api GET /v1/tenants/t1/device-cas "$ADMIN")" = 200 ] || { echo "list failed"; return; }
	jq -r '.device_cas[].label' "$T/body" | sort | tr '\n' ' '
}
acked() { sort "$T/acked" | tr '\n' ' '; }
is_full() { # STATUS
	[ "$1" = 507 ] && [ "$(body .error.code)" = storage_full ]
}

# --- the file system fills up ---
fill
check "the file system filled after $(wc -l <"$T/acked") device CAs: 507 storage_full ($ST $(body .error.code))" is_full "$ST"
check "enrolld logged the refusal" grep -q '507 storage_full' "$T/log"
fill_small
check "then after $(wc -l <"$T/regs") registrations, a registration is refused too ($ST)" is_full "$ST"
ed_swtpm d1
out=$(ed_enroll d1 --token "$TOK")
st=$(jq -r .http_status <<<"$out")
check "an enrollment is refused ($st $(jq -r '.response.error.code // empty' <<<"$out"))" \
	[ "$st" = 507 ] && [ "$(jq -r .response.error.code <<<"$out")" = storage_full ]
check "reads go on: the listed CAs are exactly the acknowledged ones" \
	[ "$(cas_listed)" = "$(acked)" ]
check "and the registrations" [ "$(regs_listed)" = "$(sort "$T/regs" | tr '\n' ' ')" ]
api GET /v1/devices "$ADMIN" >/dev/null
check "no device was made" [ "$(jq '.devices | length' "$T/body")" = 0 ]
api GET /v1/tenants/t1/tokens "$ADMIN" >/dev/null
check "the token's uses are untouched" \
	[ "$(jq -r ".tokens[] | select(.id == \"$TOK_ID\") | .uses_left" "$T/body")" = 5 ]
check "/metrics answers" [ "$(api GET /metrics "")" = 200 ]
check "enrolld is still running" kill -0 "$ED_PID"

# --- space returns: no restart needed ---
mount -o remount,size=64m "$FS"
st=$(api POST /v1/tenants/t1/device-cas "$ADMIN" "$(ca_body "$NEXT")")
[ "$st" = 201 ] && echo "fill $NEXT" >>"$T/acked"
NEXT=$((NEXT + 1))
check "with space back, a write succeeds without a restart ($st)" [ "$st" = 201 ]
out=$(ed_enroll d1 --token "$TOK")
check "and a device enrolls ($(jq -r .http_status <<<"$out"))" [ "$(jq -r .http_status <<<"$out")" = 200 ]
PUB=$(jq -r .public_key <<<"$out" 2>/dev/null)
ADDR=$(jq -r .response.address <<<"$out")
peer_there() { ed_peers "$IF" | grep -q "${ADDR%/*}/32"; }
check "its peer is on the interface" ed_until 10 peer_there

# --- restart: store_verify at start; the acknowledged writes and nothing else ---
ed_stop
ed_start
check "after a restart the CAs are the acknowledged ones" [ "$(cas_listed)" = "$(acked)" ]
check "and the registrations" [ "$(regs_listed)" = "$(sort "$T/regs" | tr '\n' ' ')" ]
api GET /v1/devices "$ADMIN" >/dev/null
check "one device, with the address it was told" \
	[ "$(jq -r '[.devices[].address] | join(" ")' "$T/body")" = "$ADDR" ]

# --- the map reaches its limit: the size the file has now, plus a little ---
ed_stop
mib=$(( ($(stat -c %s "$FS/db/data.mdb") >> 20) + 1 ))
sed -i "s|^\[state\]|[state]\nmax_size_mib = $mib|" "$T/e.conf"
ed_start
fill
check "the map filled at max_size_mib = $mib: 507 storage_full ($ST)" is_full "$ST"
check "the listed CAs are exactly the acknowledged ones" [ "$(cas_listed)" = "$(acked)" ]
ed_stop
sed -i "s|^max_size_mib = .*|max_size_mib = $((mib + 8))|" "$T/e.conf"
ed_start
st=$(api POST /v1/tenants/t1/device-cas "$ADMIN" "$(ca_body "$NEXT")")
[ "$st" = 201 ] && echo "fill $NEXT" >>"$T/acked"
check "with the limit raised and a restart, writes succeed ($st)" [ "$st" = 201 ]
check "and every acknowledged CA is there" [ "$(cas_listed)" = "$(acked)" ]
ed_done
