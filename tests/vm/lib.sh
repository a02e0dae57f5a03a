# shellcheck shell=bash
# The VM harness: Debian 12 VMs (tests/vm/image.sh) with systemd as PID 1, each with its own
# swtpm, joined by one qemu "WAN" (a UDP socket pair on loopback; nothing else, no user-mode
# network), driven through an agent on a virtio-serial port (tests/vm/agent.sh). Sourced.
#
#   vm_setup ARTDIR          check the tools (exit 77 if absent), get the image (built once),
#                            `make install DESTDIR=` the project into a temp dir; failures'
#                            artifacts go to ARTDIR. Sets VM_T (temp dir), VM_IMAGE.
#   vm_define NAME IDX PEER TPM   a VM: WAN MAC 52:54:00:76:00:IDX, its UDP end talks to VM
#                            number PEER; TPM=1 gives it a swtpm (fixture state "vm-NAME",
#                            EK certificates from the fixtures' CA)
#   vm_root NAME             the payload tree copied into / at first boot (add configs there;
#                            the project is already in it)
#   vm_boot NAME             start it (first time: overlay disk + payload disk), wait for
#                            the agent (VM_BOOT_TIMEOUT, default 600 s); the same in two
#                            steps, to boot several VMs at once: vm_start NAME, vm_wait NAME
#   vm_sh NAME SCRIPT [SECS] run SCRIPT with bash in the VM; its output, its exit status
#                            (124: no answer in SECS, default VM_CMD_TIMEOUT=300)
#   vm_reboot NAME           `systemctl reboot` and boot again (qemu runs with -no-reboot)
#   vm_poweroff NAME         `systemctl poweroff`, wait for qemu to exit
#   vm_powercut NAME         SIGKILL qemu and its swtpm: what a power cut leaves
#   vm_artifacts             copy serial consoles, qemu and swtpm logs and each running VM's
#                            journal (all boots) to ARTDIR
# Environment: QEMU, VM_KVM=1 (KVM instead of TCG, which hangs on some machines),
# VM_KEEP=1 (keep VM_T), VM_MEM (MiB, default 768).

# Under TCG the guest's TSC clocksource has been seen to leap ~6 days in one read (the
# kernel's HPET watchdog measured 0.15 s): the wall clock jumped past the test CA's
# validity, so TLS failed, and daily timers fired. HPET is emulated from the host's clock.
# no_timer_check: on a loaded host the kernel's early check of the IO-APIC timer sees too
# few ticks and panics ("IO-APIC + timer doesn't work!"): seen with three VM runs and the
# integration suite on the 2-core machine. Virtualised kernels skip that check.
VM_CLOCK=${VM_CLOCK:-clocksource=hpet tsc=unstable no_timer_check}

VM_LIBDIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
VM_REPO=$(dirname "$(dirname "$VM_LIBDIR")")
# shellcheck source=../../swtpm-fixtures/lib.sh
. "$VM_REPO/swtpm-fixtures/lib.sh"
: "${VM_BOOT_TIMEOUT:=600}" "${VM_CMD_TIMEOUT:=300}" "${VM_MEM:=768}"
QEMU=${QEMU:-qemu-system-x86_64}
VM_NAMES=()
declare -A VM_IDX VM_PEER VM_TPM VM_QPID VM_SPID VM_FDIN VM_FDOUT VM_BOOTS VM_BOOTID

vm_log() { echo "[$(date +%T)] $*"; }
_vm_skip() { echo "skip: $*"; exit 77; }
_vm_die() { echo "FAIL: vm harness: $*"; exit 1; }

vm_setup() { # ARTDIR
	local rc
	VM_ART=$1
	[ "$(id -u)" -eq 0 ] || _vm_skip "needs root (debootstrap)"
	for c in "$QEMU" qemu-img swtpm mkfs.ext4 mkfifo base64 flock; do
		command -v "$c" >/dev/null || _vm_skip "$c not installed (./scripts/install-deps.sh)"
	done
	VM_IMAGE=$(bash "$VM_REPO/tests/vm/image.sh")
	rc=$?
	[ $rc -eq 77 ] && _vm_skip "no VM image (see above)"
	[ $rc -eq 0 ] || _vm_die "image build failed"
	VM_T=$(mktemp -d /tmp/vmtest.XXXXXX) || _vm_die "mktemp"
	trap vm_cleanup EXIT
	trap 'exit 143' TERM INT HUP
	rm -rf "$VM_ART" && mkdir -p "$VM_ART"
	make -s -C "$VM_REPO" install DESTDIR="$VM_T/install" B="${B:-build}" \
		>"$VM_T/install.log" 2>&1 || { cat "$VM_T/install.log"; _vm_die "make install"; }
	# two free UDP ports on loopback, one per end of the WAN
	VM_WAN_BASE=$((35000 + (RANDOM % 900) * 2))
	while ss -Hlun "sport = :$VM_WAN_BASE or sport = :$((VM_WAN_BASE + 1))" | grep -q .; do
		VM_WAN_BASE=$((VM_WAN_BASE + 2))
	done
}

vm_define() { # NAME IDX PEER TPM
	local d=$VM_T/$1
	VM_NAMES+=("$1")
	VM_IDX[$1]=$2 VM_PEER[$1]=$3 VM_TPM[$1]=$4 VM_BOOTS[$1]=0
	mkdir -p "$d/payload/root" && chmod 0755 "$d/payload" "$d/payload/root" || _vm_die "mkdir"
	cp -a "$VM_T/install/." "$d/payload/root/" || _vm_die "copy the install tree"
	cp "$VM_LIBDIR/agent.sh" "$d/payload/agent.sh" || _vm_die "copy agent.sh"
	if [ "$4" = 1 ]; then
		swtpm_fixture_state "vm-$1" "$d/tpm" || _vm_die "swtpm fixture state"
	fi
}

vm_root() { echo "$VM_T/$1/payload/root"; }

_vm_swtpm_start() { # NAME
	local d=$VM_T/$1
	rm -f "$d/swtpm.sock"
	# no --flags startup-clear: the firmware and the kernel start the TPM, as on hardware
	swtpm socket --tpm2 --tpmstate dir="$d/tpm" --ctrl type=unixio,path="$d/swtpm.sock" \
		--log file="$d/swtpm.log",level=1 </dev/null >>"$d/swtpm.out" 2>&1 &
	VM_SPID[$1]=$!
	for _ in $(seq 100); do
		[ -S "$d/swtpm.sock" ] && return 0
		sleep 0.05
	done
	_vm_die "swtpm for $1 did not create its socket"
}

_vm_stop_pid() { # PID SIGNAL
	[ -n "$1" ] || return 0
	kill "-$2" "$1" 2>/dev/null
	wait "$1" 2>/dev/null
}

vm_boot() { # NAME
	vm_start "$1" && vm_wait "$1"
}

vm_start() { # NAME: launch qemu, do not wait
	local n=$1 d=$VM_T/$1 b tpm=() accel=(-accel tcg -cpu max) fd
	b=$((VM_BOOTS[$n] + 1))
	VM_BOOTS[$n]=$b
	if [ ! -f "$d/disk.qcow2" ]; then
		qemu-img create -q -f qcow2 -b "$VM_IMAGE/root.img" -F raw "$d/disk.qcow2" ||
			_vm_die "qemu-img create"
		mkfs.ext4 -q -F -L payload -d "$d/payload" "$d/payload.img" 64M >/dev/null ||
			_vm_die "payload disk"
	fi
	if [ "${VM_TPM[$n]}" = 1 ]; then
		_vm_swtpm_start "$n"
		tpm=(-chardev "socket,id=tpmc,path=$d/swtpm.sock" -tpmdev emulator,id=tpm0,chardev=tpmc
			-device tpm-tis,tpmdev=tpm0)
	fi
	[ "${VM_KVM:-0}" = 1 ] && accel=(-accel kvm -cpu host)
	rm -f "$d/agent.in" "$d/agent.out"
	mkfifo "$d/agent.in" "$d/agent.out" || _vm_die "mkfifo"
	vm_log "$n: boot $b"
	"$QEMU" "${accel[@]}" -m "$VM_MEM" -smp 1 -nodefaults -display none -vga none -no-reboot \
		-serial "file:$d/serial.$b.log" \
		-kernel "$VM_IMAGE/vmlinuz" -initrd "$VM_IMAGE/initrd.img" \
		-append "root=/dev/vda rw console=ttyS0 quiet net.ifnames=0 panic=-1 systemd.show_status=1 $VM_CLOCK" \
		-drive "file=$d/disk.qcow2,if=virtio,format=qcow2" \
		-drive "file=$d/payload.img,if=virtio,format=raw,readonly=on" \
		-device virtio-serial-pci -chardev "pipe,id=agent,path=$d/agent" \
		-device virtserialport,chardev=agent,name=vmtest \
		-netdev "socket,id=wan,udp=127.0.0.1:$((VM_WAN_BASE + VM_PEER[$n] - 1)),localaddr=127.0.0.1:$((VM_WAN_BASE + VM_IDX[$n] - 1))" \
		-device "virtio-net-pci,netdev=wan,mac=52:54:00:76:00:0${VM_IDX[$n]}" \
		"${tpm[@]}" </dev/null >"$d/qemu.$b.log" 2>&1 &
	VM_QPID[$n]=$!
	# read-write opens of the FIFOs never block, whether qemu opened them yet or not
	exec {fd}<>"$d/agent.in"
	VM_FDIN[$n]=$fd
	exec {fd}<>"$d/agent.out"
	VM_FDOUT[$n]=$fd
}

vm_wait() { # NAME: until its agent announces itself
	local n=$1 d=$VM_T/$1 b=${VM_BOOTS[$1]} line deadline
	deadline=$((SECONDS + VM_BOOT_TIMEOUT))
	while [ $SECONDS -lt $deadline ]; do
		if ! kill -0 "${VM_QPID[$n]}" 2>/dev/null; then
			cat "$d/qemu.$b.log"
			return 1
		fi
		if read -r -t 5 -u "${VM_FDOUT[$n]}" line; then
			case $line in
			"VMTEST READY "*)
				VM_BOOTID[$n]=${line#VMTEST READY }
				vm_log "$n: up (boot id ${VM_BOOTID[$n]})"
				return 0
				;;
			esac
		fi
	done
	echo "$n: no agent after $VM_BOOT_TIMEOUT s"
	return 1
}

vm_sh() { # NAME SCRIPT [SECS]
	local n=$1 id=$RANDOM$RANDOM deadline line rest rc
	deadline=$((SECONDS + ${3:-$VM_CMD_TIMEOUT}))
	[ -n "${VM_QPID[$n]:-}" ] || { echo "vm_sh: $n is not running"; return 125; }
	echo "RUN $id $(printf '%s' "$2" | base64 -w0)" >&"${VM_FDIN[$n]}"
	while [ $SECONDS -lt $deadline ]; do
		if read -r -t 5 -u "${VM_FDOUT[$n]}" line; then
			case $line in
			"VMTEST DONE $id "*)
				rest=${line#VMTEST DONE $id }
				rc=${rest%% *}
				rest=${rest#"$rc"}
				printf '%s' "${rest# }" | base64 -d
				echo
				return "$rc"
				;;
			esac
		elif ! kill -0 "${VM_QPID[$n]}" 2>/dev/null; then
			echo "vm_sh: $n stopped"
			return 125
		fi
	done
	echo "vm_sh: no answer from $n within ${3:-$VM_CMD_TIMEOUT} s; the end of its console:"
	tail -n 25 "$VM_T/$n/serial.${VM_BOOTS[$n]}.log" 2>/dev/null | tr -d '\r' | sed 's/\x1b\[[0-9;]*m//g; s/^/    > /'
	return 124
}

_vm_halted() { # NAME: qemu gone (and reaped), swtpm stopped, FIFOs closed
	local n=$1 a=${VM_FDIN[$1]} b=${VM_FDOUT[$1]}
	_vm_stop_pid "${VM_SPID[$n]:-}" TERM
	VM_QPID[$n]= VM_SPID[$n]=
	exec {a}>&- {b}>&-
}

_vm_wait_exit() { # NAME SECS
	local p=${VM_QPID[$1]}
	for _ in $(seq $(($2 * 2))); do
		kill -0 "$p" 2>/dev/null || break
		sleep 0.5
	done
	_vm_stop_pid "$p" KILL
}

vm_poweroff() { # NAME
	echo "RUN 0 $(printf 'systemctl poweroff' | base64 -w0)" >&"${VM_FDIN[$1]}"
	_vm_wait_exit "$1" 180
	_vm_halted "$1"
}

vm_reboot() { # NAME
	echo "RUN 0 $(printf 'systemctl reboot' | base64 -w0)" >&"${VM_FDIN[$1]}"
	_vm_wait_exit "$1" 180
	_vm_halted "$1"
	vm_boot "$1"
}

vm_powercut() { # NAME
	vm_log "$1: power cut"
	_vm_stop_pid "${VM_QPID[$1]}" KILL
	_vm_stop_pid "${VM_SPID[$1]:-}" KILL
	VM_SPID[$1]=
	_vm_halted "$1"
}

vm_artifacts() {
	local n d
	for n in "${VM_NAMES[@]}"; do
		d=$VM_T/$n
		mkdir -p "$VM_ART/$n"
		cp "$d"/serial.*.log "$d"/qemu.*.log "$VM_ART/$n/" 2>/dev/null
		cp "$d/swtpm.log" "$VM_ART/$n/" 2>/dev/null
		if [ -n "${VM_QPID[$n]:-}" ]; then
			vm_sh "$n" 'journalctl --no-pager -o short-monotonic; echo; ss -ltunp; ip -d addr' 120 \
				>"$VM_ART/$n/journal.txt" 2>&1
		fi
	done
	echo "artifacts: $VM_ART"
}

# shellcheck disable=SC2317 # the EXIT trap
vm_cleanup() {
	local n
	for n in "${VM_NAMES[@]}"; do
		_vm_stop_pid "${VM_QPID[$n]:-}" KILL
		_vm_stop_pid "${VM_SPID[$n]:-}" KILL
	done
	if [ "${VM_KEEP:-0}" = 1 ]; then
		echo "kept $VM_T"
	else
		rm -rf "$VM_T"
	fi
}

# --- configuration pieces for scenario scripts (added with tests/vm/seed.sh) ---
#   vm_wan_network ROOT ADDRESS    the WAN's systemd-networkd file in a payload (eth0, /24)
#   vm_tls DIR IP                  a throw-away CA (DIR/ca.pem, ca.key) and a server certificate
#                                  for IP (DIR/tls.pem, tls.key), valid 2 days
#   vm_cp_enrolld ROOT DIR IP ADMIN PROV   enrolld in a control-plane payload: TLS from DIR,
#                                  the two tokens, the fixtures' EK CA, kernel backend with
#                                  VRFs and nftables; /usr/local/sbin/api METHOD PATH [BODY]
#                                  prints "STATUS BODY" (admin token, or $TOKEN)
#   vm_gw_edgekeyd ROOT DIR URL PROV   edge-keyd in a gateway payload: device:/dev/tpmrm0,
#                                  tenant acme, kernel wg0, the control plane's CA from DIR
vm_wan_network() { # ROOT ADDRESS
	mkdir -p "$1/etc/systemd/network"
	printf '[Match]\nName=eth0\n[Network]\nAddress=%s/24\nLinkLocalAddressing=no\nIPv6AcceptRA=no\n' \
		"$2" >"$1/etc/systemd/network/10-wan.network"
}

vm_tls() { # DIR IP
	mkdir -p "$1"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=vm CA" -keyout "$1/ca.key" -out "$1/ca.pem" 2>/dev/null &&
		openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$2" \
			-keyout "$1/tls.key" -out "$1/tls.csr" 2>/dev/null &&
		printf 'subjectAltName=IP:%s\n' "$2" >"$1/ext" &&
		openssl x509 -req -in "$1/tls.csr" -CA "$1/ca.pem" -CAkey "$1/ca.key" \
			-CAcreateserial -days 2 -extfile "$1/ext" -out "$1/tls.pem" 2>/dev/null
}

vm_cp_enrolld() { # ROOT DIR IP ADMIN PROV
	local r=$1 trust
	trust=$(swtpm_fixture_trust) || return 1
	install -d -m 0755 "$r/etc/enrolld" "$r/etc/enrolld/ek-ca" "$r/usr/local/sbin" &&
		cp "$trust"/* "$r/etc/enrolld/ek-ca/" &&
		install -m 0600 "$2/tls.pem" "$2/tls.key" "$r/etc/enrolld/" &&
		install -m 0644 "$2/ca.pem" "$r/etc/enrolld/ca.pem" || return 1
	(umask 077; echo "$4" >"$r/etc/enrolld/admin.token"; echo "$5" >"$r/etc/enrolld/prov.token")
	printf '%s\n' "[server]" "listen = $3" "port = 8443" "tls_cert = /etc/enrolld/tls.pem" \
		"tls_key = /etc/enrolld/tls.key" "[state]" "db_path = /var/lib/enrolld" "[auth]" \
		"admin_token_file = /etc/enrolld/admin.token" \
		"provisioning_token_file = /etc/enrolld/prov.token" "[attestation]" \
		"ek_ca_dir = /etc/enrolld/ek-ca" "[wireguard]" "backend = kernel" "vrf = yes" \
		"nftables = yes" "reconcile_interval = 5" "[health]" "interval = 2" \
		>"$r/etc/enrolld/enrolld.conf"
	cat >"$r/usr/local/sbin/api" <<API
#!/bin/sh
m=\$1 p=\$2
shift 2
tok=\${TOKEN:-\$(cat /etc/enrolld/admin.token)}
b=\$(mktemp)
st=\$(curl -s --max-time 30 --cacert /etc/enrolld/ca.pem -H "Authorization: Bearer \$tok" \\
	-X "\$m" -o "\$b" -w '%{http_code}' \${1:+-H 'Content-Type: application/json' --data "\$1"} \\
	"https://$3:8443\$p")
echo "\$st \$(cat "\$b")"
rm -f "\$b"
API
	chmod 0755 "$r/usr/local/sbin/api"
}

vm_gw_edgekeyd() { # ROOT DIR URL PROV
	local r=$1
	install -d -m 0755 "$r/etc/edge-keyd" && install -m 0644 "$2/ca.pem" "$r/etc/edge-keyd/cp-ca.pem" ||
		return 1
	(umask 077; echo "$4" >"$r/etc/edge-keyd/prov.token")
	printf '%s\n' "[device]" "state_dir = /var/lib/edge-keyd" "tcti = device:/dev/tpmrm0" \
		"ek_type = rsa2048" "ak_type = ecc" "label = vm-gw" "[server]" "url = $3" \
		"ca_file = /etc/edge-keyd/cp-ca.pem" "tenant = acme" \
		"provisioning_token_file = /etc/edge-keyd/prov.token" "[wireguard]" "interface = wg0" \
		"backend = kernel" "check_interval = 2" >"$r/etc/edge-keyd/edge-keyd.conf"
}

vm_agent_sane() { # NAME: a failing command is seen failing (the agent is live, not a yes-man)
	local out rc
	out=$(vm_sh "$1" 'echo agent-$((6 * 7)); exit 3')
	rc=$?
	[ "$out" = agent-42 ] && [ $rc -eq 3 ]
}
