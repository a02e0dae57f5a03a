#!/bin/bash
# The real deployment stack in VMs (issue 11): Debian 12 with systemd as PID 1, kernel
# WireGuard, the TPM behind the kernel's resource manager (/dev/tpmrm0, swtpm underneath),
# our systemd units; a control-plane VM and a gateway VM joined by one qemu "WAN"
# (tests/vm/lib.sh, docs/testing-vms.md). One boot of each VM runs the scenarios in order,
# each with its own result:
#
#   cp       enrolld.service (Type=notify): `systemctl restart` returns only once the
#            listener answers and the tenant's kernel WireGuard interface, deleted while
#            enrolld was down, is back in its VRF; the watchdog is pinged (no restart over
#            35 s, WatchdogSec=20) and works (a SIGSTOPped enrolld is killed and restarted);
#            `systemctl reload` re-reads the tokens
#   gateway  `edge-keyd provision` against device:/dev/tpmrm0 (by root, into _edge-keyd's
#            state directory: the files stay _edge-keyd's), enrollment and a kernel
#            WireGuard wg0 by edge-keyd.service, the WAN firewall loaded by a unit; the
#            control plane pings the gateway's /32; edge-keyd's /proc/PID/status: uid
#            _edge-keyd, group tss, CapEff CAP_NET_ADMIN alone, NoNewPrivs 1, Seccomp 2;
#            wireguard-go runs under the same unit's sandbox; the gateway listens on no TCP
#            port and no UDP port but WireGuard's; its WAN address answers no ping
#   reboot   the gateway VM reboots: edge-keyd.service brings the tunnel back with the same
#            key and address (its PCR-sealed key unseals again: PCRs 0 and 9 are measured
#            the same), and the control plane saw no new enrollment
#   pcr      the tenant's policy pins PCR 0 and the gateway's key is sealed to sha256:0,9;
#            PCR 9 is extended at every boot with a hash of /etc/vmtest/kernel-version (a
#            stand-in for a boot loader measuring the kernel). A "kernel update" and a
#            reboot: the key no longer unseals, and the journal and `edge-keyd status` each
#            say why in one line (naming the PCRs and the remedy); the documented recovery,
#            `edge-keyd rotate` (a new key sealed to the new values, attested enrollment),
#            brings the tunnel back: new key, same address, the control plane holds it
#   powercut the gateway VM's qemu is SIGKILLed in the middle of `edge-keyd rotate`, twice:
#            once after the new key was staged and before the control plane took it, once
#            after the control plane took it (its journal says so) and before the gateway
#            could commit it (the answer, delayed 1 s by netem, is thrown away on the
#            control plane at that journal line, so the gateway never gets it); after each
#            boot the gateway uses the key the control plane holds, the tunnel works,
#            nothing is left staged
#   revoke   the device revoked through the REST API: the gateway can no longer reach the
#            control plane through the tunnel, nor the control plane the gateway
# Each scenario needs the ones before it: asking for one runs its predecessors too (only the
# ones asked for are reported). A scenario whose predecessor failed is not run (reported
# failed: "not run").
#
# Exit: 0 all passed, 77 skip (no root, qemu, debootstrap...), else 1.
# Seeing each scenario fail: VM_BREAK=notify (enrolld.service as Type=simple: cp fails, the
# restart returns before the interface is back), watchdog (WatchdogSec=0: cp fails, the
# stopped enrolld is never restarted), firewall (no WAN firewall unit: gateway fails, the
# WAN address answers), boot (edge-keyd.service disabled before the reboot: reboot fails),
# revoke (the revocation call is skipped: revoke fails, the tunnel still works), pcr (the
# measured file is not changed: pcr fails, the key still unseals), pcr-recovery (the rotate
# is skipped: pcr fails, the tunnel stays down), powercut (a unit deletes the staged key at
# boot, as a gateway that forgot it would: powercut fails when the control plane holds it),
# user (a drop-in runs edge-keyd.service as root again: gateway fails, its uid and
# capabilities are wrong).
# Environment: VM_SCENARIOS (default all, in the order above), VM_RESULT_FILE ("NAME RC"
# lines for tests/run.sh), B, VM_KEEP=1, VM_KVM=1; artifacts of a failed run (serial
# consoles, journals of every boot) in $B/test-logs/vm/.
set -u
cd "$(dirname "$0")/../.." || exit 1
B=${B:-build}
ALL="cp gateway reboot pcr powercut revoke"
SCENARIOS=${VM_SCENARIOS:-$ALL}
for s in $SCENARIOS; do
	case " $ALL " in *" $s "*) ;; *) echo "unknown scenario '$s' (known: $ALL)"; exit 1 ;; esac
done
# each scenario builds on the ones before it: run the chain up to the last one asked for
last=
for s in $ALL; do case " $SCENARIOS " in *" $s "*) last=$s ;; esac; done
RUN=
for s in $ALL; do
	RUN="$RUN $s"
	[ "$s" = "$last" ] && break
done
. tests/vm/lib.sh

T0=$SECONDS
vm_setup "$B/test-logs/vm"
[ -n "${VM_RESULT_FILE:-}" ] && : >"$VM_RESULT_FILE"
echo "== image $VM_IMAGE (built in $(cat "$VM_IMAGE/build.seconds" 2>/dev/null) s), setup $((SECONDS - T0)) s"

CP=192.0.2.1 GW=192.0.2.2 API=https://192.0.2.1:8443
PREFIX=10.77.0 WGIF=wgacme WGPORT=51820
FAILED=0 BROKEN=
why=

# --- the control plane's and the gateway's configuration, in their payloads ---
W=$VM_T/host
mkdir -p "$W"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj "/CN=vm CA" \
	-keyout "$W/ca.key" -out "$W/ca.pem" 2>/dev/null &&
openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$CP" \
	-keyout "$W/tls.key" -out "$W/tls.csr" 2>/dev/null &&
printf 'subjectAltName=IP:%s\n' "$CP" >"$W/ext" &&
openssl x509 -req -in "$W/tls.csr" -CA "$W/ca.pem" -CAkey "$W/ca.key" -CAcreateserial -days 2 \
	-extfile "$W/ext" -out "$W/tls.pem" 2>/dev/null || { echo "FAIL: certificates"; exit 1; }
ADMIN=admin-$(openssl rand -hex 16)
ADMIN2=admin-$(openssl rand -hex 16)
PROV=prov-$(openssl rand -hex 16)
EK_TRUST=$(swtpm_fixture_trust) || { echo "FAIL: fixture CA"; exit 1; }

vm_define cp 1 2 0
vm_define gw 2 1 1

wan_network() { # ROOT ADDRESS
	mkdir -p "$1/etc/systemd/network"
	printf '[Match]\nName=eth0\n[Network]\nAddress=%s/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
		"$2" >"$1/etc/systemd/network/10-wan.network"
}

R=$(vm_root cp)
wan_network "$R" $CP
install -d -m 0755 "$R/etc/enrolld" "$R/etc/enrolld/ek-ca"
cp "$EK_TRUST"/* "$R/etc/enrolld/ek-ca/"
install -m 0600 "$W/tls.pem" "$R/etc/enrolld/tls.pem"
install -m 0600 "$W/tls.key" "$R/etc/enrolld/tls.key"
install -m 0644 "$W/ca.pem" "$R/etc/enrolld/ca.pem"
(umask 077; echo "$ADMIN" >"$R/etc/enrolld/admin.token"; echo "$PROV" >"$R/etc/enrolld/prov.token")
# privilege separation on (server.user): the network process runs as _enrolld, made in the
# VM before enrolld starts (sc_cp); the token and TLS files are root:_enrolld 0640 (root,
# without CAP_DAC_OVERRIDE under the unit, reads them at start, the network process on
# reload)
cat >"$R/etc/enrolld/enrolld.conf" <<CONF
[server]
user = _enrolld
listen = $CP
port = 8443
tls_cert = /etc/enrolld/tls.pem
tls_key = /etc/enrolld/tls.key
[state]
db_path = /var/lib/enrolld
[auth]
admin_token_file = /etc/enrolld/admin.token
provisioning_token_file = /etc/enrolld/prov.token
[attestation]
ek_ca_dir = /etc/enrolld/ek-ca
[wireguard]
backend = kernel
vrf = yes
nftables = yes
reconcile_interval = 5
[health]
interval = 2
CONF
# the API from inside the control-plane VM: api METHOD PATH [BODY] prints "STATUS BODY"
cat >"$R/usr/local/sbin/api" <<'API'
#!/bin/sh
m=$1 p=$2
shift 2
tok=${TOKEN:-$(cat /etc/enrolld/admin.token)}
b=$(mktemp)
st=$(curl -s --max-time 30 --cacert /etc/enrolld/ca.pem -H "Authorization: Bearer $tok" \
	-X "$m" -o "$b" -w '%{http_code}' ${1:+-H 'Content-Type: application/json' --data "$1"} \
	"https://192.0.2.1:8443$p")
echo "$st $(cat "$b")"
rm -f "$b"
API
chmod 0755 "$R/usr/local/sbin/api"

R=$(vm_root gw)
wan_network "$R" $GW
install -d -m 0755 "$R/etc/edge-keyd" "$R/etc/systemd/system"
install -m 0644 "$W/ca.pem" "$R/etc/edge-keyd/cp-ca.pem"
(umask 077; echo "$PROV" >"$R/etc/edge-keyd/prov.token")
cat >"$R/etc/edge-keyd/edge-keyd.conf" <<CONF
[device]
state_dir = /var/lib/edge-keyd
tcti = device:/dev/tpmrm0
ek_type = rsa2048
ak_type = ecc
label = vm-gw
[server]
url = $API
ca_file = /etc/edge-keyd/cp-ca.pem
tenant = acme
provisioning_token_file = /etc/edge-keyd/prov.token
[wireguard]
interface = wg0
backend = kernel
check_interval = 2
CONF
# the key is sealed to PCR 0 (firmware: SeaBIOS measures itself) and PCR 9
sed -i 's/^label = vm-gw$/&\npcr_policy = sha256:0,9/' "$R/etc/edge-keyd/edge-keyd.conf"
# PCR 9 is extended at every boot, before edge-keyd, with the hash of a file: what a boot
# loader does with the kernel it loads. Changing the file is a "kernel update".
install -d -m 0755 "$R/etc/vmtest" "$R/usr/local/sbin"
echo "linux 6.1.0 (as installed)" >"$R/etc/vmtest/kernel-version"
cat >"$R/usr/local/sbin/boot-measure" <<'SH'
#!/bin/sh
for i in $(seq 300); do [ -c /dev/tpmrm0 ] && break; sleep 0.1; done
h=$(sha256sum /etc/vmtest/kernel-version | cut -c1-64)
exec tpm2_pcrextend -T device:/dev/tpmrm0 "9:sha256=$h"
SH
chmod 0755 "$R/usr/local/sbin/boot-measure"
cat >"$R/etc/systemd/system/boot-measure.service" <<'UNIT'
[Unit]
Description=Measure the "kernel" into PCR 9 (a boot loader's job, done here by a unit)
Before=edge-keyd.service
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/boot-measure
[Install]
WantedBy=multi-user.target
UNIT
# the WAN firewall at boot, before the tunnel (docs/gateway-setup.md, step 5)
cat >"$R/etc/systemd/system/wan-firewall.service" <<'UNIT'
[Unit]
Description=WAN firewall: drop what the gateway did not start
Before=network-pre.target edge-keyd.service
Wants=network-pre.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/sbin/nft -D WG_IF=wg0 -f /usr/local/share/edgeward/wan-firewall.nft
[Install]
WantedBy=multi-user.target
UNIT

mkdir -p "$R/etc/systemd/system/multi-user.target.wants"
ln -sf /etc/systemd/system/boot-measure.service "$R/etc/systemd/system/multi-user.target.wants/"
# the host's wireguard-go (Debian 12's, glibc only): run once under edge-keyd.service's own
# sandbox, the userspace backend's child (the scenarios' gateway uses the kernel backend)
WGGO=$(command -v wireguard-go) && install -D -m 0755 "$WGGO" "$R/usr/local/bin/wireguard-go"

# --- breaking what a scenario checks (VM_BREAK, see the top) ---
BREAK=${VM_BREAK:-}
case $BREAK in
notify | watchdog)
	R=$(vm_root cp)
	mkdir -p "$R/etc/systemd/system/enrolld.service.d"
	{ echo "[Service]"; [ "$BREAK" = notify ] && echo "Type=simple" || echo "WatchdogSec=0"; } \
		>"$R/etc/systemd/system/enrolld.service.d/break.conf"
	;;
powercut)
	# a gateway that loses its staged key at boot: it ends with the key the server replaced
	R=$(vm_root gw)
	cat >"$R/etc/systemd/system/break-staged.service" <<'UNIT'
[Unit]
Description=VM_BREAK=powercut: forget a staged rotation key
Before=edge-keyd.service
[Service]
Type=oneshot
ExecStart=/bin/rm -f /var/lib/edge-keyd/wg.sealed.next
[Install]
WantedBy=multi-user.target
UNIT
	ln -sf /etc/systemd/system/break-staged.service "$R/etc/systemd/system/multi-user.target.wants/"
	;;
user)
	# edge-keyd.service back to root (an older unit): the gateway's privilege checks fail
	R=$(vm_root gw)
	mkdir -p "$R/etc/systemd/system/edge-keyd.service.d"
	printf '[Service]\nUser=\nGroup=\n' >"$R/etc/systemd/system/edge-keyd.service.d/break.conf"
	;;
"" | firewall | boot | revoke | pcr | pcr-recovery) ;;
*) echo "unknown VM_BREAK '$BREAK'"; exit 1 ;;
esac
FW_UNIT=wan-firewall.service
[ "$BREAK" = firewall ] && FW_UNIT=

# --- scenarios ---
result() { # NAME RC SECS
	case " $SCENARIOS " in *" $1 "*) ;; *) [ "$2" = 0 ] && return 0 ;; esac
	[ -n "${VM_RESULT_FILE:-}" ] && echo "$1 $2" >>"$VM_RESULT_FILE"
	if [ "$2" = 0 ]; then
		echo "RESULT $1: PASS ($3 s)"
	else
		echo "RESULT $1: FAIL ($why; $3 s)"
		FAILED=$((FAILED + 1))
	fi
}
# check NAME-OF-CHECK: the previous vm_sh's status; sets why on failure
ok() { echo "ok - $*"; }
no() { why=$*; echo "not ok - $*"; return 1; }
onvm() { # VM SCRIPT [SECS]: run, print the output indented
	local out rc
	out=$(vm_sh "$@")
	rc=$?
	[ -n "$out" ] && printf '%s\n' "$out" | sed 's/^/    | /'
	return $rc
}

boot_both() {
	vm_start cp && vm_start gw && vm_wait cp && vm_wait gw || return 1
	vm_sh_sane cp && vm_sh_sane gw || { why="the agent's answers are wrong"; return 1; }
	onvm cp 'systemctl is-system-running --wait; networkctl status eth0 --no-pager | head -4' 300
	onvm gw 'systemctl is-system-running --wait; ls -l /dev/tpm0 /dev/tpmrm0' 300 ||
		{ why="no /dev/tpmrm0 in the gateway VM"; return 1; }
}

sc_cp() {
	local pcr0
	onvm cp 'id _enrolld >/dev/null 2>&1 || useradd --system --no-create-home --home-dir /nonexistent \
			--shell /usr/sbin/nologin _enrolld
		chgrp _enrolld /etc/enrolld/admin.token /etc/enrolld/prov.token /etc/enrolld/tls.pem /etc/enrolld/tls.key &&
		chmod 0640 /etc/enrolld/admin.token /etc/enrolld/prov.token /etc/enrolld/tls.pem /etc/enrolld/tls.key
		systemctl enable --now enrolld && systemctl show enrolld -p Type -p WatchdogUSec -p StatusText' ||
		{ no "enrolld.service did not start"; onvm cp 'journalctl -u enrolld -b --no-pager | tail -n 30'; return 1; }
	# two processes: the root one systemd started, the network one as _enrolld
	onvm cp 'main=$(systemctl show enrolld -p MainPID --value); child=$(pgrep -P $main enrolld | head -n1)
		[ -n "$child" ] && grep -E "^(Uid|CapEff|NoNewPrivs|Seccomp):" /proc/$child/status &&
		[ "$(awk "/^Uid:/ { print \$2 }" /proc/$child/status)" = "$(id -u _enrolld)" ] &&
		grep -q "^CapEff:.*0000000000000000" /proc/$child/status && grep -q "^Seccomp:.*2" /proc/$child/status &&
		[ "$(awk "/^Uid:/ { print \$2 }" /proc/$main/status)" = 0 ]' ||
		{ no "privilege separation: no network process as _enrolld with no capabilities and seccomp"; return 1; }
	ok "privilege separation: the network process runs as _enrolld, no capabilities, seccomp"
	onvm cp 'api GET /healthz | grep -q "^200"' || { no "API does not answer"; return 1; }
	# the tenant pins the gateway's firmware measurement (PCR 0, as its operator would
	# from a known-good unit of the model): every enrollment quote must show it
	pcr0=$(onvm gw 'tpm2_pcrread -T device:/dev/tpmrm0 sha256:0 -o /tmp/pcr0 >/dev/null &&
		od -An -v -tx1 /tmp/pcr0 | tr -d " \n"' | sed -n 's/^    | //p' | tail -n1)
	[[ $pcr0 =~ ^[0-9a-f]{64}$ ]] || { no "cannot read the gateway's PCR 0 ('$pcr0')"; return 1; }
	onvm cp "api POST /v1/tenants '{\"name\":\"acme\",\"prefix\":\"$PREFIX.0/24\",\"interface\":\"$WGIF\",\"listen_port\":$WGPORT,\"endpoint\":\"$CP:$WGPORT\",\"keepalive\":25,\"pcr_policy\":[{\"index\":0,\"sha256\":\"$pcr0\"}]}' | grep -E '^20[01] .*\"pcr_selection\":\"sha256:0\"'" ||
		{ no "tenant create (with a PCR policy)"; return 1; }
	ok "tenant acme created; its policy pins PCR 0 = ${pcr0:0:16}..."
	# Type=notify: restart returns after READY=1, which waits for the listener and for
	# the reconciliation that recreates the interface deleted while enrolld was down
	# a stop ends both processes cleanly (the root one passes SIGTERM on: CAP_KILL), not by
	# systemd's SIGKILL after TimeoutStopSec
	onvm cp "systemctl stop enrolld && ! journalctl -u enrolld -b --no-pager | grep 'with signal SIGKILL' &&
		journalctl -u enrolld -b --no-pager | grep -q 'network process stopped; exiting'" ||
		{ no "systemctl stop: enrolld's processes did not stop by themselves"; return 1; }
	ok "systemctl stop: both processes exit by themselves"
	onvm cp "systemctl stop enrolld && ip link del $WGIF && ! ip link show $WGIF 2>/dev/null &&
		systemctl restart enrolld && ip -d link show $WGIF | grep -q wireguard &&
		ip link show master vrf$WGPORT | grep -q $WGIF && api GET /healthz | grep -q '^200'" ||
		{ no "after 'systemctl restart' returned: no $WGIF in vrf$WGPORT, or no listener (readiness sent too early)"; return 1; }
	ok "restart returns only when the listener and $WGIF (in its VRF) are up"
	onvm cp "nft list ruleset | grep -q $WGIF" || { no "no nftables rules for $WGIF"; return 1; }
	ok "nftables rules for $WGIF"
	onvm cp 'n0=$(systemctl show enrolld -p NRestarts --value); sleep 35
		[ "$(systemctl show enrolld -p NRestarts --value)" = "$n0" ] && systemctl is-active enrolld' 120 ||
		{ no "enrolld restarted while healthy (no watchdog pings?)"; return 1; }
	ok "watchdog pinged: no restart over 35 s"
	onvm cp 'n0=$(systemctl show enrolld -p NRestarts --value); pid=$(systemctl show enrolld -p MainPID --value)
		kill -STOP $pid; for i in $(seq 120); do sleep 1
		[ "$(systemctl show enrolld -p NRestarts --value)" != "$n0" ] && break; done
		journalctl -u enrolld -b --no-pager | grep -i watchdog | tail -n 2
		[ "$(systemctl show enrolld -p NRestarts --value)" != "$n0" ] || exit 1
		# restarted: serving again (under load the new enrolld takes a while to be ready)
		for i in $(seq 90); do systemctl is-active -q enrolld && api GET /healthz | grep -q "^200" && exit 0; sleep 1; done
		systemctl is-active enrolld; exit 1' 300 ||
		{ no "a stopped enrolld was not restarted by the watchdog"; return 1; }
	ok "watchdog: a SIGSTOPped enrolld is killed and restarted"
	onvm cp "echo $ADMIN2 >/etc/enrolld/admin.token && systemctl reload enrolld && sleep 2 &&
		TOKEN=$ADMIN2 api GET /v1/tenants | grep -q '^200' && TOKEN=$ADMIN api GET /v1/tenants | grep -q '^401'" ||
		{ no "systemctl reload did not switch the admin token"; return 1; }
	ok "systemctl reload re-read the tokens"
	# The seccomp allow-list refused nothing the service did (the kernel logs each refusal,
	# audit type 1326; clone3 is refused on purpose, ENOSYS), and that log is seen: the
	# selftest's refused memfd_create (syscall 319) shows up in it.
	onvm cp 'seen() { { dmesg; journalctl -b --no-pager; } 2>/dev/null |
			grep -E "type=1326|SECCOMP" | grep "uid=$(id -u _enrolld) " | grep -v " syscall=435 "; }
		seen | sort -u | head -n 5; [ -z "$(seen)" ] || exit 1
		/usr/local/sbin/enrolld -c /etc/enrolld/enrolld.conf --privsep-selftest /var/lib/enrolld/keys/acme.key |
			tail -n 3 || exit 1
		for i in $(seq 20); do seen | grep -q " syscall=319 " && exit 0; sleep 0.5; done; exit 1' ||
		{ no "the seccomp filter refused a call of the service, or its kernel log is not seen"; return 1; }
	ok "seccomp: no call of the service refused; the selftest's refusals are in the kernel log"
}

gw_pub() { onvm gw 'wg show wg0 public-key' | sed -n 's/^    | //p' | tail -n1; }
sc_gateway() {
	# without the device's group (tss) the TPM cannot be opened: one line that says so
	onvm gw 'sed "s|^state_dir = .*|state_dir = /tmp/nobody-state|" /etc/edge-keyd/edge-keyd.conf >/tmp/nobody.conf
		chmod 0644 /tmp/nobody.conf; setpriv --reuid=65534 --regid=65534 --clear-groups \
		edge-keyd -c /tmp/nobody.conf provision --offline >/tmp/nobody.out 2>&1; cat /tmp/nobody.out
		[ "$(wc -l </tmp/nobody.out)" = 1 ] &&
		grep -q "cannot open the TPM device ./dev/tpmrm0.: Permission denied: .*group .tss." /tmp/nobody.out' ||
		{ no "a process outside group tss is not told in one line why the TPM does not open"; return 1; }
	ok "outside group tss: one line names /dev/tpmrm0, the group and the fix"
	onvm gw 'systemctl enable --now boot-measure.service && tpm2_pcrread -T device:/dev/tpmrm0 sha256:0,9' ||
		{ no "boot-measure.service"; return 1; }
	# what the package's postinst makes (debian/edge-keyd.postinst): the user, its state
	# directory; provisioning by root (the factory) leaves the files to the directory's owner
	onvm gw 'id _edge-keyd >/dev/null 2>&1 || useradd --system --user-group --no-create-home \
			--home-dir /var/lib/edge-keyd --shell /usr/sbin/nologin _edge-keyd
		install -d -m 0700 -o _edge-keyd -g _edge-keyd /var/lib/edge-keyd &&
		chgrp _edge-keyd /etc/edge-keyd/edge-keyd.conf && chmod 0640 /etc/edge-keyd/edge-keyd.conf' ||
		{ no "user _edge-keyd"; return 1; }
	onvm gw 'edge-keyd -c /etc/edge-keyd/edge-keyd.conf provision && ls -ln /var/lib/edge-keyd &&
		[ -z "$(find /var/lib/edge-keyd ! -user _edge-keyd)" ]' 300 ||
		{ no "edge-keyd provision on /dev/tpmrm0 (or root left files _edge-keyd does not own)"; return 1; }
	ok "provisioned through device:/dev/tpmrm0, the key sealed to PCRs sha256:0,9; the files are _edge-keyd's"
	onvm gw "systemctl enable --now $FW_UNIT edge-keyd.service" 120 || { no "units did not start"; return 1; }
	onvm gw 'for i in $(seq 120); do [ -s /var/lib/edge-keyd/enrollment.json ] && ip link show wg0 >/dev/null 2>&1 && break; sleep 1; done
		ip -d link show wg0 | grep -q "wireguard" && jq -r .address /var/lib/edge-keyd/enrollment.json' 200 ||
		{ no "no enrollment or no kernel wg0"; onvm gw 'journalctl -u edge-keyd -b --no-pager | tail -n 30'; return 1; }
	GWA=$(onvm gw 'jq -r .address /var/lib/edge-keyd/enrollment.json' | sed -n 's/^    | //p' | tail -n1)
	GWA=${GWA%/32}
	[[ $GWA =~ ^10\.77\.0\.[0-9]+$ ]] || { no "address '$GWA'"; return 1; }
	ok "enrolled by edge-keyd.service, kernel wg0, address $GWA"
	ekd_confined || return 1
	wggo_confined || return 1
	onvm cp "for i in \$(seq 60); do ping -c1 -W1 -I vrf$WGPORT $GWA >/dev/null 2>&1 || ping -c1 -W1 $GWA >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1" 120 ||
		{ no "the control plane cannot ping $GWA"; return 1; }
	ok "the control plane pings the gateway's /32"
	onvm gw 'ss -Hltn | grep . && exit 1; p=$(wg show wg0 listen-port)
		ss -Hlun | grep -v ":$p " | grep . && exit 1; exit 0' ||
		{ no "something listens on the gateway"; return 1; }
	ok "nothing listens on the gateway (no TCP; UDP only WireGuard's port)"
	onvm cp "ping -c 2 -W 1 $GW" && { no "the gateway's WAN address answers a ping (no firewall)"; return 1; }
	ok "the WAN firewall drops an unsolicited ping"
	PUB=$(gw_pub)
	onvm cp 'journalctl -u enrolld --no-pager | grep -c " enrolled in "' >"$W/n_enrolled"
}

# edge-keyd.service's process: _edge-keyd, in group tss (the TPM: the tunnel it just
# configured used the unsealed key), CAP_NET_ADMIN alone (0x1000) in every set, no_new_privs,
# the seccomp filter (mode 2); the journal says so; every file of the state directory is
# _edge-keyd's.
ekd_confined() {
	onvm gw 'p=$(systemctl show edge-keyd -p MainPID --value); u=$(id -u _edge-keyd); tss=$(getent group tss | cut -d: -f3)
		grep -E "^(Uid|Gid|Groups|CapEff|CapPrm|CapAmb|CapBnd|NoNewPrivs|Seccomp|VmLck):" /proc/$p/status
		f() { awk -v k="$1:" "\$1 == k { print \$2 }" /proc/$p/status; }
		[ "$(f Uid)" = "$u" ] && [ "$(f Uid)" != 0 ] && grep -Eq "^Groups:.*\<$tss\>" /proc/$p/status &&
		[ "$(f CapEff)" = 0000000000001000 ] && [ "$(f CapPrm)" = 0000000000001000 ] &&
		[ "$(f CapAmb)" = 0000000000001000 ] && [ "$(f CapBnd)" = 0000000000001000 ] &&
		[ "$(f NoNewPrivs)" = 1 ] && [ "$(f Seccomp)" = 2 ] &&
		journalctl -u edge-keyd -b -o cat | grep -m1 "running as uid $u (_edge-keyd), .*effective capabilities: cap_net_admin$" &&
		! journalctl -u edge-keyd -b -o cat | grep "running as root" &&
		[ -z "$(find /var/lib/edge-keyd ! -user _edge-keyd)" ]' ||
		{ no "edge-keyd.service: not _edge-keyd in group tss with CAP_NET_ADMIN alone, no_new_privs and seccomp"; return 1; }
	ok "edge-keyd runs as _edge-keyd (group tss: the TPM works), CapEff CAP_NET_ADMIN alone, NoNewPrivs 1, Seccomp 2"
}
# wireguard-go under edge-keyd.service's sandbox (its unit with wireguard-go as the main
# process: the same user, capabilities, seccomp filter, RuntimeDirectory): it makes its
# interface and socket, takes a configuration, and is confined as edge-keyd is.
wggo_confined() {
	onvm gw 'sed -e "/^ExecStartPre=/d" -e "/^ExecReload=/d" -e "s|^ExecStart=.*|ExecStart=/usr/local/bin/wireguard-go -f wgu0|" \
			-e "s|^Description=.*|Description=wireguard-go in edge-keyd.service'"'"'s sandbox|" \
			"$(systemctl show edge-keyd -p FragmentPath --value)" >/etc/systemd/system/ekd-wggo.service &&
		systemctl daemon-reload && systemctl start ekd-wggo &&
		for i in $(seq 30); do [ -S /run/wireguard/wgu0.sock ] && break; sleep 1; done
		(umask 077; wg genkey >/tmp/wgu0.key) && wg set wgu0 private-key /tmp/wgu0.key listen-port 51999 && wg show wgu0 &&
		ip link show wgu0 >/dev/null && p=$(systemctl show ekd-wggo -p MainPID --value) &&
		grep -E "^(Uid|CapEff|NoNewPrivs|Seccomp):" /proc/$p/status &&
		f() { awk -v k="$1:" "\$1 == k { print \$2 }" /proc/$p/status; } &&
		[ "$(f Uid)" = "$(id -u _edge-keyd)" ] && [ "$(f CapEff)" = 0000000000001000 ] &&
		[ "$(f NoNewPrivs)" = 1 ] && [ "$(f Seccomp)" = 2 ]; rc=$?
		journalctl -u ekd-wggo -b -o cat | tail -n 5; systemctl stop ekd-wggo; rm -f /tmp/wgu0.key; exit $rc' 120 ||
		{ no "wireguard-go under edge-keyd.service's sandbox did not work or is not confined"; return 1; }
	ok "wireguard-go under the same sandbox: interface, UAPI socket and configuration work; _edge-keyd, CAP_NET_ADMIN, Seccomp 2"
}

sc_reboot() {
	local pub
	[ "$BREAK" = boot ] && vm_sh gw 'systemctl disable edge-keyd' >/dev/null
	vm_reboot gw || { no "the gateway VM did not come back"; return 1; }
	onvm gw 'systemctl is-system-running --wait; for i in $(seq 60); do ip link show wg0 >/dev/null 2>&1 && break; sleep 1; done
		ip -4 addr show wg0; systemctl is-active edge-keyd' 300 || { no "no wg0 after reboot"; return 1; }
	onvm cp "for i in \$(seq 60); do ping -c1 -W1 -I vrf$WGPORT $GWA >/dev/null 2>&1 || ping -c1 -W1 $GWA >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1" 120 ||
		{ no "the control plane cannot ping $GWA after the reboot"; return 1; }
	ok "the tunnel is back: the control plane pings $GWA"
	pub=$(gw_pub)
	[ -n "$pub" ] && [ "$pub" = "$PUB" ] || { no "key changed over the reboot ('$PUB' -> '$pub')"; return 1; }
	ok "same key ($pub)"
	onvm gw "ip -4 addr show wg0 | grep -q ' $GWA/'" || { no "address changed"; return 1; }
	ok "same address"
	onvm cp 'journalctl -u enrolld --no-pager | grep -c " enrolled in "' | diff -q - "$W/n_enrolled" >/dev/null ||
		{ no "the control plane saw a new enrollment"; return 1; }
	ok "no new enrollment"
}

# the device's key as the control plane holds it (its record), and the gateway's
server_key() { onvm cp "api GET /v1/devices/$1 | cut -d' ' -f2- | jq -r .public_key" | sed -n 's/^    | //p' | tail -n1; }
gw_id() { onvm gw 'jq -r .device_id /var/lib/edge-keyd/enrollment.json' | sed -n 's/^    | //p' | tail -n1; }
cp_pings_gw() {
	onvm cp "for i in \$(seq ${1:-60}); do ping -c1 -W1 -I vrf$WGPORT $GWA >/dev/null 2>&1 || ping -c1 -W1 $GWA >/dev/null 2>&1 && exit 0; sleep 1; done; exit 1" 200
}
# the gateway's interface, its record and the control plane agree on one key; nothing staged
keys_agree() { # WHAT
	local id pub srv
	id=$(gw_id)
	pub=$(gw_pub)
	srv=$(server_key "$id")
	echo "    gateway wg0: $pub, control plane's record of device $id: $srv"
	[ -n "$pub" ] && [ "$pub" = "$srv" ] || { no "$1: the gateway uses $pub, the control plane holds $srv"; return 1; }
	onvm gw "[ \"\$(jq -r .wg_public_key /var/lib/edge-keyd/enrollment.json)\" = '$pub' ] && ! [ -e /var/lib/edge-keyd/wg.sealed.next ]" ||
		{ no "$1: enrollment.json is not on the key in use, or a key is still staged"; return 1; }
	onvm cp "wg show $WGIF peers | grep -qxF '$pub'" || { no "$1: $pub is not a peer of $WGIF"; return 1; }
}

sc_pcr() {
	local pub line
	# a kernel update: the next boot measures another kernel into PCR 9
	[ "$BREAK" = pcr ] || onvm gw 'echo "linux 6.1.99 (updated)" >/etc/vmtest/kernel-version; sync'
	vm_reboot gw || { no "the gateway VM did not come back"; return 1; }
	onvm gw 'systemctl is-system-running --wait >/dev/null; for i in $(seq 60); do
		journalctl -u edge-keyd -b -o cat | grep -q "cannot unseal" && break; sleep 1; done
		sleep 8; journalctl -u edge-keyd -b -o cat' 300
	# the daemon tried at every check (2 s) for 8 s: still one line, and nothing unclear
	onvm gw 'j=$(journalctl -u edge-keyd -b -o cat)
		[ "$(grep -c "cannot unseal" <<<"$j")" = 1 ] &&
		grep "cannot unseal" <<<"$j" | grep -q "PCRs sha256:0,9 no longer have the values it was sealed to.*edge-keyd rotate" &&
		! grep -Eqi "input/output|permission denied|policy check failed|lost its configuration" <<<"$j"' ||
		{ no "the journal does not say in one clear line why the key does not unseal"; return 1; }
	ok "journal: one line says PCRs sha256:0,9 changed and what to do"
	onvm gw 'edge-keyd status >/tmp/st; rc=$?; cat /tmp/st; [ $rc = 3 ] &&
		[ "$(grep -c "no longer have the values" /tmp/st)" = 1 ] &&
		[ "$(edge-keyd status --json | jq -r .sealed_key.unsealable)" = false ]' ||
		{ no "edge-keyd status does not say why the key does not unseal"; return 1; }
	ok "status: tunnel not up (exit 3), one line says why"
	onvm cp "ping -c 2 -W 1 -I vrf$WGPORT $GWA || ping -c 2 -W 1 $GWA" && { no "the tunnel works with a key that should not unseal"; return 1; }
	ok "the tunnel is down"
	# the documented recovery (docs/gateway-setup.md): a new key sealed to the PCRs' new
	# values, enrolled with an attestation the tenant's policy accepts
	if [ "$BREAK" != pcr-recovery ]; then
		onvm gw 'edge-keyd -c /etc/edge-keyd/edge-keyd.conf rotate' 300 || { no "edge-keyd rotate"; return 1; }
	fi
	cp_pings_gw 90 || { no "the tunnel is not back after the recovery"; return 1; }
	ok "recovered with 'edge-keyd rotate': the control plane pings $GWA"
	pub=$(gw_pub)
	[ -n "$pub" ] && [ "$pub" != "$PUB" ] || { no "the key did not change ('$PUB' -> '$pub')"; return 1; }
	onvm gw "ip -4 addr show wg0 | grep -q ' $GWA/' && edge-keyd status | grep -E '^(tunnel|sealed key):'" ||
		{ no "address changed, or status unclear"; return 1; }
	keys_agree "after the recovery" || return 1
	ok "new key $pub, same address, held by the control plane"
	PUB=$pub
}

# The control plane's API answers (TCP from port 8443, nothing else: ARP and WireGuard
# stay prompt) leave 1 s late (netem in band 3 of a prio qdisc): on, or off.
api_slow() {
	if [ "$1" = on ]; then
		onvm cp 'modprobe -q sch_netem; modprobe -q cls_u32; tc qdisc replace dev eth0 root handle 1: prio &&
			tc qdisc replace dev eth0 parent 1:3 handle 30: netem delay 1000ms &&
			tc filter replace dev eth0 parent 1: protocol ip prio 1 u32 match ip sport 8443 0xffff flowid 1:3'
	else
		onvm cp 'tc qdisc del dev eth0 root 2>/dev/null; true'
	fi
}

# Cut the gateway's power in the middle of `edge-keyd rotate`. WINDOW: staged (the new key
# is sealed and staged, the control plane has not taken it: the cut comes as soon as
# wg.sealed.next exists, before the requests are answered) or taken (the control plane took
# it: a watcher on the control plane follows enrolld's journal and, at its "(rotated)" line,
# throws away the answer still held in the 1 s delay and drops what TCP sends again, so the
# gateway never learns it; then the cut: the gateway can only have it staged).
powercut_in() { # WINDOW
	local w=$1 n0 t
	n0=$(onvm cp 'journalctl -u enrolld -o cat | grep -c "(rotated)"' | sed -n 's/^    | //p' | tail -n1)
	if [ "$w" = taken ]; then
		onvm cp 'rm -f /run/answer-dropped; setsid -f sh -c "timeout 200 journalctl -f -n 0 -u enrolld -o cat |
			grep -m1 -F \"(rotated)\" && tc qdisc del dev eth0 parent 1:3 handle 30: &&
			tc qdisc add dev eth0 parent 1:3 handle 30: netem loss 100% && touch /run/answer-dropped" \
			</dev/null >/dev/null 2>&1' || { no "cannot start the watcher on the control plane"; return 1; }
	fi
	onvm gw 'systemctl reset-failed ekd-rotate 2>/dev/null; systemd-run --unit=ekd-rotate --collect edge-keyd -c /etc/edge-keyd/edge-keyd.conf rotate' ||
		{ no "cannot start edge-keyd rotate"; return 1; }
	t=$SECONDS
	# bounded inside the guests too: an agent runs one command at a time
	if [ "$w" = staged ]; then
		onvm gw 'end=$((SECONDS + 50)); while [ $SECONDS -lt $end ]; do
			[ -e /var/lib/edge-keyd/wg.sealed.next ] && exit 0; sleep 0.05; done; exit 1' 60 ||
			{ no "no key was staged"; return 1; }
	else
		onvm cp 'end=$((SECONDS + 150)); while [ $SECONDS -lt $end ]; do
			[ -e /run/answer-dropped ] && exit 0; sleep 0.2; done; exit 1' 200 ||
			{ no "the control plane never took the new key"; onvm gw 'journalctl -u ekd-rotate -b -o cat'; return 1; }
	fi
	vm_powercut gw
	echo "    cut $((SECONDS - t)) s after rotate started"
	api_slow off
	onvm cp "journalctl -u enrolld -o cat | grep '(rotated)' | tail -n 1; [ \$(journalctl -u enrolld -o cat | grep -c '(rotated)') $([ "$w" = staged ] && echo -eq || echo -gt) $n0 ]" ||
		{ no "the cut missed the window '$w' (control plane's rotations: before $n0)"; return 1; }
	vm_boot gw || { no "the gateway VM did not boot after the power cut"; return 1; }
	onvm gw 'systemctl is-system-running --wait >/dev/null; for i in $(seq 90); do
		! [ -e /var/lib/edge-keyd/wg.sealed.next ] && wg show wg0 private-key 2>/dev/null | grep -q . && break; sleep 1; done
		journalctl -u edge-keyd -b -o cat | grep -E "interrupted|rotat|sealed key|enroll"' 300
	cp_pings_gw 90 || { no "after the cut in window '$w': the control plane cannot ping $GWA"; return 1; }
	keys_agree "after the cut in window '$w'" || return 1
	onvm gw 'edge-keyd status >/dev/null' || { no "after the cut in window '$w': status does not say up"; return 1; }
	ok "cut in window '$w': after the boot the gateway uses the key the control plane holds, tunnel up"
	# the cut came before the gateway committed: the boot found the key still staged
	if [ "$w" = taken ]; then
		onvm gw 'journalctl -u edge-keyd -b -o cat | grep -q "a rotation was interrupted"' ||
			{ no "the cut missed the window 'taken': the gateway had committed the key already"; return 1; }
		ok "the cut was in window 'taken': the control plane held the new key, the gateway had it only staged"
	fi
}

sc_powercut() {
	local w
	for w in staged taken; do
		api_slow on || { no "no netem on the control plane"; return 1; }
		powercut_in $w || { api_slow off; return 1; }
	done
	PUB=$(gw_pub)
}

sc_revoke() {
	local id
	id=$(onvm gw 'jq -r .device_id /var/lib/edge-keyd/enrollment.json' | sed -n 's/^    | //p' | tail -n1)
	onvm gw "ping -c 2 -W 2 $PREFIX.1" || { no "the gateway cannot reach the control plane before revocation"; return 1; }
	[ "$BREAK" = revoke ] && id=0
	onvm cp "[ $id = 0 ] || { api POST /v1/devices/$id/revoke >/tmp/revoke.out; cat /tmp/revoke.out; grep -q '^200' /tmp/revoke.out; }" ||
		{ no "revoke device $id"; return 1; }
	ok "device $id revoked"
	onvm gw "sleep 3; ping -c 3 -W 2 $PREFIX.1" && { no "a revoked gateway still reaches the control plane"; return 1; }
	ok "the revoked gateway cannot reach the control plane"
	onvm cp "ping -c 2 -W 1 -I vrf$WGPORT $GWA || ping -c 2 -W 1 $GWA" && { no "the control plane still reaches the revoked gateway"; return 1; }
	ok "nor the control plane the gateway"
}

# the checks must see a failing command fail: the agent is live, not a yes-man
vm_sh_sane() { # VM
	local out rc
	out=$(vm_sh "$1" 'echo agent-$((6 * 7)); exit 3')
	rc=$?
	[ "$out" = agent-42 ] && [ $rc -eq 3 ]
}

t=$SECONDS
if boot_both; then
	echo "== both VMs up (agents checked) in $((SECONDS - t)) s"
else
	BROKEN="VMs did not boot"
fi
for s in $RUN; do
	echo "== scenario $s"
	t=$SECONDS
	why=
	if [ -n "$BROKEN" ]; then
		why="not run: $BROKEN"
		result "$s" 1 0
		continue
	fi
	"sc_$s"
	rc=$?
	[ $rc -ne 0 ] && [ -z "$why" ] && why="exit $rc"
	result "$s" $rc $((SECONDS - t))
	[ $rc -ne 0 ] && BROKEN="$s failed"
done
[ "$FAILED" -gt 0 ] && vm_artifacts
echo "== VM part: $((SECONDS - T0)) s"
[ "$FAILED" -eq 0 ] || { echo "FAIL: $FAILED scenario(s)"; exit 1; }
echo "PASS: vm"
