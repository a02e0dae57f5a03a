#!/bin/bash
# The seed's path under systemd (issue 11): a gateway that runs no edge-keyd daemon, its
# tunnel brought up by wg-quick@ or by systemd-networkd, on the real stack (Debian 12 under
# systemd, kernel WireGuard, the TPM at device:/dev/tpmrm0), surviving reboots. A
# control-plane VM (enrolld, two tenants) and one gateway VM joined by the qemu "WAN"
# (tests/vm/lib.sh, docs/testing-vms.md). The recipes are read from the docs, not retyped:
#
#   wgquick-tpm   `edge-keyd provision` + `enroll`, `edge-keyd wg-quick > wg1.conf`,
#                 `systemctl enable --now wg-quick@wg1` (PostUp = edge-keyd setkey %i):
#                 the control plane pings the device's /32, the interface holds the key the
#                 control plane enrolled and no file holds the private key; after a reboot
#                 the tunnel is back, same key, same address, no new enrollment
#   wgquick-x509  the commands of docs/x509-enrollment.md "The three commands" (a factory
#                 certificate from scripts/factory-x509.sh, tenant xco trusting the factory
#                 CA with require_tpm off): wg-quick@wg0 up, ping, key = the enrolled one;
#                 after the same reboot: back, same key and address, no new enrollment
#   networkd      the TPM device again, now through systemd-networkd: the units and the
#                 commands of docs/edge-keyd.md "systemd-networkd: the key through a socket"
#                 (the wg-quick@ tunnels disabled first); networkd refuses the old key-less
#                 .netdev recipe; `edge-keyd networkd-key` refuses a file; ping, the key is
#                 the enrolled one and in no file; after another reboot: back, same key and
#                 address, no new enrollment
# Gateway boots: 1 (both wg-quick scenarios set up), 2 (both checked; networkd set up),
# 3 (networkd checked); a scenario not asked for is skipped, with its boot if it can be.
#
# Exit: 0 all passed, 77 skip (no root, qemu, debootstrap...), else 1.
# Seeing each scenario fail: VM_BREAK (one or several, blank-separated) = setkey (the
# PostUp line removed from wg1.conf: wgquick-tpm fails, no key, no ping), tmpkey (the X.509
# device's key file moved to /run with the documented substitution: wgquick-x509 passes its
# first boot and fails after the reboot), nosocket (`systemctl start` instead of `enable
# --now` for edge-keyd-key.socket: networkd fails after its reboot, networkd has no key).
# Environment: VM_SCENARIOS (default all), VM_RESULT_FILE ("NAME RC" lines for
# tests/run.sh), B, VM_KEEP=1, VM_KVM=1; artifacts of a failed run (serial consoles,
# journals of every boot) in $B/test-logs/vm-seed/.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
ALL="wgquick-tpm wgquick-x509 networkd"
SCENARIOS=${VM_SCENARIOS:-$ALL}
for s in $SCENARIOS; do
	case " $ALL " in *" $s "*) ;; *) echo "unknown scenario '$s' (known: $ALL)"; exit 1 ;; esac
done
BREAK=" ${VM_BREAK:-} "
for b in $BREAK; do
	case $b in setkey | tmpkey | nosocket) ;; *) echo "unknown VM_BREAK '$b'"; exit 1 ;; esac
done
want() { case " $SCENARIOS " in *" $1 "*) return 0 ;; esac; return 1; }
broken() { case $BREAK in *" $1 "*) return 0 ;; esac; return 1; }
. tests/vm/lib.sh

T0=$SECONDS
vm_setup "$B/test-logs/vm-seed"
[ -n "${VM_RESULT_FILE:-}" ] && : >"$VM_RESULT_FILE"
echo "== image $VM_IMAGE (built in $(cat "$VM_IMAGE/build.seconds" 2>/dev/null) s), setup $((SECONDS - T0)) s"

CP=192.0.2.1 GW=192.0.2.2 API=https://192.0.2.1:8443
# tenant acme: TPM devices; tenant xco: X.509 devices of the factory CA
TPM_PORT=51820 X_PORT=51821
FAILED=0
declare -A WHY

# --- payloads: enrolld, edge-keyd, the factory certificate, the docs' units ---
W=$VM_T/host
ADMIN=admin-$(openssl rand -hex 16)
PROV=prov-$(openssl rand -hex 16)
vm_tls "$W" $CP || { echo "FAIL: certificates"; exit 1; }
scripts/factory-x509.sh ca-init "$W/factory" "/O=vm/CN=vm factory CA" >/dev/null &&
	scripts/factory-x509.sh issue "$W/factory" gw-x509 "$W/dev" >/dev/null ||
	{ echo "FAIL: factory certificate"; exit 1; }

vm_define cp 1 2 0
vm_define gw 2 1 1
R=$(vm_root cp)
vm_wan_network "$R" $CP
vm_cp_enrolld "$R" "$W" $CP "$ADMIN" "$PROV" || { echo "FAIL: control-plane payload"; exit 1; }
install -m 0644 "$W/factory/ca.crt" "$R/etc/enrolld/factory-ca.crt"

R=$(vm_root gw)
vm_wan_network "$R" $GW
vm_gw_edgekeyd "$R" "$W" $API "$PROV" || { echo "FAIL: gateway payload"; exit 1; }
install -d -m 0700 "$R/etc/vmvendor"
install -m 0600 "$W/dev/enroll.pem" "$R/etc/vmvendor/enroll.pem"
install -m 0644 "$W/ca.pem" "$R/etc/vmvendor/cp-ca.pem"

# doc_block FILE HEADING LANG: the first ```LANG block under the heading HEADING
doc_block() {
	awk -v h="$2" -v lang="$3" '
		$0 == h { sec = 1; next }
		!sec { next }
		inb && /^```/ { exit }
		inb { print; next }
		$0 == "```" lang { inb = 1; next }
		/^```/ { fence = !fence; next }
		/^#/ && !fence { exit }' "$1"
}
NWD_HEAD="### systemd-networkd: the key through a socket"
X509_HEAD="## The three commands (on the device)"
# the units, each under its "# /etc/systemd/system/NAME" line, into the gateway's payload
mkdir -p "$R/etc/systemd/system"
doc_block docs/edge-keyd.md "$NWD_HEAD" ini |
	awk -v root="$R" '/^# \/etc\/systemd\/system\// { f = root substr($0, 3); next } f { print > f }'
[ -s "$R/etc/systemd/system/edge-keyd-key.socket" ] && [ -s "$R/etc/systemd/system/edge-keyd-key@.service" ] ||
	{ echo "FAIL: no units in docs/edge-keyd.md '$NWD_HEAD'"; exit 1; }
NWD_SH=$(doc_block docs/edge-keyd.md "$NWD_HEAD" sh)
X509_SH=$(doc_block docs/x509-enrollment.md "$X509_HEAD" sh | sed "s#<vendor>#vmvendor#g; s#<control-plane>#$CP:8443#g")
grep -q 'networkctl reload' <<<"$NWD_SH" && grep -q 'wg-quick@wg0' <<<"$X509_SH" ||
	{ echo "FAIL: the recipes were not found in the docs"; exit 1; }
broken nosocket && NWD_SH=$(sed 's/enable --now edge-keyd-key.socket/start edge-keyd-key.socket/' <<<"$NWD_SH")

# --- helpers ---
ok() { echo "ok - $*"; }
# no SCENARIO WHY: a failed check (the first reason is kept)
no() { echo "not ok - $1: $2"; [ -n "${WHY[$1]:-}" ] || WHY[$1]=$2; return 1; }
onvm() { # VM SCRIPT [SECS]: run, print the output indented
	local out rc
	out=$(vm_sh "$@")
	rc=$?
	[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    | /'
	return $rc
}
# the last line a command printed in a VM (not indented)
onvm_val() { vm_sh "$@" | tail -n1; }
result() { # NAME SECS
	want "$1" || return 0
	local rc=0
	[ -n "${WHY[$1]:-}" ] && rc=1
	[ -n "${VM_RESULT_FILE:-}" ] && echo "$1 $rc" >>"$VM_RESULT_FILE"
	if [ $rc = 0 ]; then
		echo "RESULT $1: PASS ($2 s)"
	else
		echo "RESULT $1: FAIL (${WHY[$1]}; $2 s)"
		FAILED=$((FAILED + 1))
	fi
}
cp_ping() { # PORT ADDRESS: the control plane reaches ADDRESS through tenant PORT's tunnel
	onvm cp "for i in \$(seq 60); do ping -c1 -W1 -I vrf$1 $2 >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1" 120
}
# the control plane's record of the device at ADDRESS: "device_id public_key updated"
cp_device() { # ADDRESS
	onvm_val cp "api GET /v1/devices | cut -d' ' -f2- |
		jq -r '.devices[] | select(.address == \"$1/32\" or .address == \"$1\") | \"\(.device_id) \(.public_key) \(.updated)\"'"
}
n_enrolled() { onvm_val cp 'journalctl -u enrolld --no-pager | grep -c " enrolled in "'; }
# no file on the gateway holds the private key of IFNAME (read back from the interface)
key_in_no_file() { # IFNAME
	onvm gw "k=\$(wg show $1 private-key) && [ \${#k} = 44 ] || exit 2
		! grep -rlsF -- \"\$k\" /etc /var /run /root /tmp /usr/local /home" 300
}

# tunnel_up SCENARIO IFNAME PORT ADDRESS: the control plane pings ADDRESS through tenant
# PORT's tunnel and IFNAME holds the key the control plane enrolled; remembered for later
declare -A PUB DEV
tunnel_up() {
	local s=$1 dev pub
	cp_ping "$3" "$4" || { no "$s" "the control plane cannot ping $4"; return 1; }
	ok "the control plane pings $4"
	dev=$(cp_device "$4")
	pub=$(onvm_val gw "wg show $2 public-key")
	[ -n "$pub" ] && [ "$(echo "$dev" | cut -d' ' -f2)" = "$pub" ] ||
		{ no "$s" "$2's key '$pub' is not the enrolled one ('$dev')"; return 1; }
	ok "$2 holds the enrolled key $pub"
	PUB[$s]=$pub DEV[$s]=$dev
}
# tunnel_back SCENARIO IFNAME PORT ADDRESS: after a reboot, the same as tunnel_up saw
tunnel_back() {
	local s=$1
	cp_ping "$3" "$4" || { no "$s" "the control plane cannot ping $4 after the reboot"; return 1; }
	ok "after the reboot: the control plane pings $4"
	[ "$(onvm_val gw "wg show $2 public-key")" = "${PUB[$s]}" ] || { no "$s" "the key changed over the reboot"; return 1; }
	onvm gw "ip -4 addr show $2 | grep -q ' $4/32'" || { no "$s" "the address changed"; return 1; }
	[ "$(cp_device "$4")" = "${DEV[$s]}" ] || { no "$s" "the control plane's record changed (new enrollment?)"; return 1; }
	ok "same key, same address, the control plane's record unchanged"
}

# --- the control plane: enrolld, tenant acme (TPM), tenant xco (the factory's certificates) ---
cp_setup() {
	# a boot that has not finished in 200 s says which jobs it waits for, and enrolld is
	# started all the same (systemd bounds its start: TimeoutStartSec)
	onvm cp 'st=$(timeout 200 systemctl is-system-running --wait)
		[ "$st" = running ] || { echo "boot: ${st:-not finished in 200 s}"; systemctl list-jobs --no-pager; systemctl --failed --no-pager; }
		systemctl enable --now enrolld || { systemctl status --no-pager enrolld; exit 1; }' 360 &&
		onvm cp 'for i in $(seq 30); do api GET /healthz | grep -q "^200" && exit 0; sleep 1; done; exit 1' 60 ||
		{ echo "enrolld did not start"; return 1; }
	onvm cp "api POST /v1/tenants '{\"name\":\"acme\",\"prefix\":\"10.77.0.0/24\",\"interface\":\"wgacme\",\"listen_port\":$TPM_PORT,\"endpoint\":\"$CP:$TPM_PORT\",\"keepalive\":25}' | grep -E '^20[01] ' &&
		api POST /v1/tenants '{\"name\":\"xco\",\"prefix\":\"10.78.0.0/24\",\"interface\":\"wgxco\",\"listen_port\":$X_PORT,\"endpoint\":\"$CP:$X_PORT\",\"keepalive\":25}' | grep -E '^20[01] ' &&
		api POST /v1/tenants/xco/device-cas \"{\\\"certificate\\\": \$(jq -Rs . </etc/enrolld/factory-ca.crt), \\\"label\\\": \\\"vm factory\\\"}\" | grep -E '^20[01] ' &&
		api PUT /v1/tenants/xco/policy '{\"require_tpm\": false}' | grep -E '^200 '" ||
		{ echo "tenants"; return 1; }
	ok "enrolld up; tenants acme (TPM) and xco (factory CA, require_tpm off)"
}

# --- wgquick-tpm ---
TPM_ENROLLED=0
tpm_enroll() {
	[ $TPM_ENROLLED = 1 ] && return 0
	onvm gw 'edge-keyd provision && edge-keyd enroll && jq -r .address /var/lib/edge-keyd/enrollment.json' 300 ||
		return 1
	TPM_ENROLLED=1
	TPM_A=$(onvm_val gw 'jq -r .address /var/lib/edge-keyd/enrollment.json')
	TPM_A=${TPM_A%/32}
	[[ $TPM_A =~ ^10\.77\.0\.[0-9]+$ ]]
}

tpm_up() {
	local s=wgquick-tpm
	tpm_enroll || { no $s "edge-keyd provision/enroll through device:/dev/tpmrm0"; return 1; }
	ok "provisioned and enrolled through device:/dev/tpmrm0: $TPM_A"
	onvm gw 'edge-keyd wg-quick > /etc/wireguard/wg1.conf && cat /etc/wireguard/wg1.conf' &&
		onvm gw "grep -qx 'PostUp = edge-keyd setkey %i' /etc/wireguard/wg1.conf && ! grep -q PrivateKey.*= /etc/wireguard/wg1.conf" ||
		{ no $s "edge-keyd wg-quick: no PostUp setkey line, or a PrivateKey"; return 1; }
	ok "wg1.conf: PostUp = edge-keyd setkey %i, no key"
	broken setkey && vm_sh gw 'sed -i /^PostUp/d /etc/wireguard/wg1.conf' >/dev/null
	onvm gw 'systemctl enable --now wg-quick@wg1; systemctl status --no-pager wg-quick@wg1 | tail -n 8; systemctl is-active wg-quick@wg1' 120 ||
		{ no $s "wg-quick@wg1 did not start"; return 1; }
	ok "systemctl enable --now wg-quick@wg1"
	tunnel_up $s wg1 $TPM_PORT "$TPM_A" || return 1
	key_in_no_file wg1 || { no $s "a file holds wg1's private key"; return 1; }
	ok "no file holds the private key"
}

# wgquick_back SCENARIO IFNAME PORT ADDRESS: wg-quick@IFNAME came back by itself
wgquick_back() {
	onvm gw "systemctl is-active wg-quick@$2" || {
		no "$1" "wg-quick@$2 not active after the reboot"
		onvm gw "journalctl -b -u wg-quick@$2 --no-pager | tail -n 20"
		return 1
	}
	ok "after the reboot: wg-quick@$2 active"
	tunnel_back "$@"
}

# --- wgquick-x509: the docs' commands, as written but for the two placeholders ---
x509_up() {
	local s=wgquick-x509
	printf '%s\n' "$X509_SH" | sed 's/^/    $ /'
	onvm gw "$X509_SH" 120 || { no $s "the documented commands failed"; onvm gw 'journalctl -b -u wg-quick@wg0 --no-pager | tail'; return 1; }
	onvm gw "grep -qx 'PostUp = wg set %i private-key /etc/wireguard/private.key' /etc/wireguard/wg0.conf &&
		! grep -q '^PrivateKey' /etc/wireguard/wg0.conf && stat -c '%a %n' /etc/wireguard/*" ||
		{ no $s "wg0.conf has no PostUp from the key file, or a PrivateKey"; return 1; }
	if broken tmpkey; then
		vm_sh gw 'mkdir -p /run/wgkey && mv /etc/wireguard/private.key /run/wgkey/ &&
			sed -i "s#/etc/wireguard/private.key#/run/wgkey/private.key#" /etc/wireguard/wg0.conf' >/dev/null
	fi
	X_A=$(onvm_val gw "sed -n 's/^Address = \([0-9.]*\)\/32.*/\1/p' /etc/wireguard/wg0.conf")
	[[ $X_A =~ ^10\.78\.0\.[0-9]+$ ]] || { no $s "address '$X_A'"; return 1; }
	onvm gw 'systemctl is-enabled wg-quick@wg0 && systemctl is-active wg-quick@wg0' ||
		{ no $s "wg-quick@wg0 not enabled and active"; return 1; }
	ok "the documented commands: wg-quick@wg0 enabled and active, address $X_A"
	tunnel_up $s wg0 $X_PORT "$X_A"
}

# --- networkd: the docs' units and commands ---
nwd_up() {
	local s=networkd
	tpm_enroll || { no $s "edge-keyd provision/enroll through device:/dev/tpmrm0"; return 1; }
	onvm gw 'systemctl disable --now wg-quick@wg0 wg-quick@wg1 2>/dev/null; ! ip link show wg0 2>/dev/null && ! ip link show wg1 2>/dev/null' ||
		{ no $s "the wg-quick tunnels are still up"; return 1; }
	# what this page described before: a .netdev without a key, which networkd drops
	onvm gw 'printf "[NetDev]\nName=wgold\nKind=wireguard\n" >/etc/systemd/network/40-wgold.netdev
		networkctl reload; sleep 3; rm /etc/systemd/network/40-wgold.netdev; networkctl reload
		! ip link show wgold 2>/dev/null && journalctl -b -u systemd-networkd --no-pager | grep "Missing PrivateKey"' ||
		{ no $s "networkd took a .netdev without a key (the old recipe)"; return 1; }
	ok "networkd drops a key-less .netdev (the old recipe)"
	onvm gw 'edge-keyd networkd-key >/tmp/key.out; rc=$?; [ $rc != 0 ] && [ ! -s /tmp/key.out ]' ||
		{ no $s "edge-keyd networkd-key wrote the key to a file"; return 1; }
	ok "edge-keyd networkd-key refuses a file"
	printf '%s\n' "$NWD_SH" | sed 's/^/    $ /'
	onvm gw "$NWD_SH" 120 || { no $s "the documented commands failed"; return 1; }
	onvm gw 'for i in $(seq 60); do ip -4 addr show wg0 2>/dev/null | grep -q inet && break; sleep 1; done
		networkctl status wg0 --no-pager | head -n 12; cat /etc/systemd/network/50-wg0.network
		journalctl -b --no-pager -u "edge-keyd-key@*" | tail -n 3; ip -4 addr show wg0 | grep -q inet' 240 ||
		{ no $s "no wg0 with an address from networkd"; onvm gw 'journalctl -b -u systemd-networkd --no-pager | tail -n 20'; return 1; }
	ok "systemd-networkd made wg0 with the key from edge-keyd-key.socket"
	tunnel_up $s wg0 $TPM_PORT "$TPM_A" || return 1
	key_in_no_file wg0 || { no $s "a file holds wg0's private key"; return 1; }
	ok "no file holds the private key"
}

nwd_back() {
	local s=networkd
	onvm gw 'for i in $(seq 60); do ip -4 addr show wg0 2>/dev/null | grep -q inet && break; sleep 1; done
		ip -4 addr show wg0 | grep inet' 240 ||
		{ no $s "no wg0 after the reboot"; onvm gw 'journalctl -b --no-pager -u systemd-networkd -u "edge-keyd-key*" | tail -n 20'; return 1; }
	ok "after the reboot: networkd made wg0 again"
	tunnel_back $s wg0 $TPM_PORT "$TPM_A"
}

# --- the run ---
fail_all() { # WHY: every scenario asked for fails with WHY
	local s
	for s in $SCENARIOS; do [ -n "${WHY[$s]:-}" ] || WHY[$s]=$1; done
}
gw_reboot() { # then wait for the boot to finish
	vm_reboot gw && vm_agent_sane gw &&
		onvm gw 'systemctl is-system-running --wait; systemctl --failed --no-pager --plain | head -n 5' 300
}
t=$SECONDS
if vm_start cp && vm_start gw && vm_wait cp && vm_wait gw && vm_agent_sane cp && vm_agent_sane gw &&
	onvm gw 'systemctl is-system-running --wait; ls -l /dev/tpmrm0' 300; then
	echo "== both VMs up (agents checked) in $((SECONDS - t)) s"
	cp_setup || fail_all "control plane setup failed"
else
	fail_all "VMs did not boot"
fi
declare -A T_S
for s in wgquick-tpm wgquick-x509; do
	want $s && [ -z "${WHY[$s]:-}" ] || continue
	echo "== scenario $s (boot 1)"
	T_S[$s]=$SECONDS
	case $s in wgquick-tpm) tpm_up ;; wgquick-x509) x509_up ;; esac
done
if { want wgquick-tpm && [ -z "${WHY[wgquick-tpm]:-}" ]; } || { want wgquick-x509 && [ -z "${WHY[wgquick-x509]:-}" ]; }; then
	N0=$(n_enrolled)
	echo "== reboot of the gateway"
	t=$SECONDS
	gw_reboot || fail_all "the gateway did not come back"
	echo "== rebooted in $((SECONDS - t)) s"
	[ -z "${WHY[wgquick-tpm]:-}" ] && want wgquick-tpm && { echo "== scenario wgquick-tpm (boot 2)"; wgquick_back wgquick-tpm wg1 $TPM_PORT "$TPM_A"; }
	[ -z "${WHY[wgquick-x509]:-}" ] && want wgquick-x509 && { echo "== scenario wgquick-x509 (boot 2)"; wgquick_back wgquick-x509 wg0 $X_PORT "$X_A"; }
	[ "$(n_enrolled)" = "$N0" ] || { want wgquick-tpm && no wgquick-tpm "enrolld logged a new enrollment"; want wgquick-x509 && no wgquick-x509 "enrolld logged a new enrollment"; }
fi
for s in wgquick-tpm wgquick-x509; do result $s $((SECONDS - ${T_S[$s]:-$SECONDS})); done
if want networkd && [ -z "${WHY[networkd]:-}" ]; then
	echo "== scenario networkd"
	t=$SECONDS
	if nwd_up; then
		N0=$(n_enrolled)
		echo "== reboot of the gateway"
		if gw_reboot; then
			nwd_back
			[ "$(n_enrolled)" = "$N0" ] || no networkd "enrolld logged a new enrollment"
		else
			no networkd "the gateway did not come back"
		fi
	fi
fi
result networkd $((SECONDS - ${t:-$SECONDS}))
[ "$FAILED" -gt 0 ] && vm_artifacts
echo "== VM seed part: $((SECONDS - T0)) s"
[ "$FAILED" -eq 0 ] || { echo "FAIL: $FAILED scenario(s)"; exit 1; }
echo "PASS: vm seed"
