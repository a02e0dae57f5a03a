#!/bin/bash
# shellcheck shell=bash
# The fleet, shared by tests/integration/fleet_e2e.sh and scripts/demo.sh (one topology, one
# way to start and stop things, so the test and the demo cannot drift). Run directly, it
# tests itself: the topology comes up, the WAN firewall drops what it must, and after
# fl_cleanup nothing of it is left.
#
#   WAN 198.51.100.0/24: a bridge in the control plane's namespace, one veth per gateway
#
#   fl-cp-$S  198.51.100.1   enrolld, HTTPS on :39001 (its own CA, pinned by the gateways)
#                            one wireguard-go per tenant (spawned by enrolld):
#                              acme   10.61.0.0/24  flA$S  UDP 39011
#                              globex 10.62.0.0/24  flB$S  UDP 39012
#   fl-g1-$S  198.51.100.11  tenant acme:   swtpm (RSA-2048 EK, ECC AK), edge-keyd, flg1$S
#   fl-g2-$S  198.51.100.12  tenant acme:   swtpm (P-256 EK, ECC AK),    edge-keyd, flg2$S
#   fl-g3-$S  198.51.100.13  tenant globex: swtpm (P-384 EK, RSA AK),    edge-keyd, flg3$S
#
# Each gateway's swtpm listens on its own namespace's loopback (127.0.0.1:39100), standing in
# for the TPM chip; edge-keyd spawns the gateway's wireguard-go. Interface names carry the
# PID ($S): wireguard-go's socket directory /var/run/wireguard is shared by all namespaces.
# Ports are 39000-40999, namespaces "fl-*", interfaces "fl*".
#
#   fl_require                 root and the tools, or exit 77 (skip)
#   fl_init NAME               $FL_T (temp dir), names; EXIT trap -> fl_cleanup
#   fl_topology_up             namespaces, bridge, veths, addresses (no firewall yet)
#   fl_firewall_up I           load edge-keyd/wan-firewall.nft in gateway I
#   fl_cp_setup / fl_cp_start / fl_cp_stop / fl_cp_kill9
#   fl_tenants_create          acme and globex (keepalive $FL_KA)
#   fl_api METHOD PATH [BODY]  the body on stdout, the HTTP status in $FL_T/status
#   fl_gw_setup I              its swtpm and edge-keyd.conf
#   fl_ekd I ARGS...           a one-shot edge-keyd command in gateway I's namespace
#   fl_gw_start I / fl_gw_stop I   the daemon (edge-keyd run)
#   fl_gw_addr I / fl_gw_dev I / fl_gw_pub I   from the gateway's enrollment.json
#   fl_health I                the health the API reports for gateway I's device
#   fl_ping_gw I [COUNT]       the control plane pings gateway I's /32
#   fl_link_cut I / fl_link_restore I   the gateway's port on the WAN bridge down / up
#   fl_cp_peers TENANT         public keys on the tenant's control-plane interface
#   fl_probe_install I         ICMP counters in gateway I (via_tunnel, via_wan, delivered)
#   fl_counter NETNS TABLE NAME   packets of an nftables named counter
#   fl_isolation_drops         packets enrolld's nftables dropped between tenants
#   fl_attacker_begin I DST SRC... / fl_attacker_end I DST SRC...
#                              gateway I taken over: tunnel opened, DST routed into it,
#                              SRCs added for spoofing; and undone
#   fl_wait_for SECONDS CMD... poll every 0.2 s
#   fl_fleet_table             the fleet as the API sees it (enrollctl devices)
#   fl_cleanup                 everything this made: processes (by PID), namespaces,
#                              UAPI sockets, the temp dir; idempotent
#   fl_all_gone                true when nothing of it is left
#
# FL_NARRATE=1 makes fl_x print each command before running it (the demo).

FL_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
B=${B:-build}
case $B in /*) ;; *) B=$FL_ROOT/$B ;; esac
FL_EKD=$B/edge-keyd
FL_ENROLLD=$B/enrolld
FL_WGCTL=$B/tests/progs/wgctl
FL_ENROLLCTL=$B/enrollctl
FL_KA=${FL_KA:-2}     # the tenants' PersistentKeepalive, seconds (short: a fast test)
FL_TICK=${FL_TICK:-1} # enrolld's health interval, seconds
FL_NARRATE=${FL_NARRATE:-0}
FL_N=3
FL_CP_WAN=198.51.100.1
FL_API_PORT=39001
FL_TPM_PORT=39100
FL_SOCKDIR=/var/run/wireguard
declare -A FL_PREFIX=([acme]=10.61.0.0/24 [globex]=10.62.0.0/24)
# shellcheck disable=SC2034 # used by the test and the demo
declare -A FL_CP_TADDR=([acme]=10.61.0.1 [globex]=10.62.0.1)
declare -A FL_WG_PORT=([acme]=39011 [globex]=39012)
declare -A FL_TIF
FL_GW_TENANT=(- acme acme globex)
FL_GW_EK=(- rsa2048 p256 p384)
FL_GW_AK=(- ecc ecc rsa)
FL_GW_NS=()
FL_GW_IF=()
FL_GW_VETH=()  # the gateway's end of its WAN link
FL_GW_PORT=()  # the control plane's end (a port of the bridge)
FL_GW_WAN=()
FL_GW_EKD_PID=()
FL_SWTPM_PIDS=()
FL_ENROLLD_PID=
FL_NAMESPACES=()
FL_IFNAMES=()
FL_T=

fl_require() {
	[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (namespaces, TUN)"; exit 77; }
	local t
	for t in wireguard-go ip nft ping ss swtpm swtpm_setup swtpm_localca tpm2_getcap \
		openssl curl jq timeout; do
		command -v "$t" >/dev/null || { echo "skip: $t not installed"; exit 77; }
	done
	[ -c /dev/net/tun ] || { echo "skip: no /dev/net/tun"; exit 77; }
	for t in "$FL_EKD" "$FL_ENROLLD" "$FL_WGCTL"; do
		[ -x "$t" ] || { echo "not built: $t (make -j2 all)"; exit 1; }
	done
}

# Print a command (when narrating) and run it.
fl_x() {
	[ "$FL_NARRATE" = 1 ] && fl_say_cmd "$*"
	"$@"
}
fl_say_cmd() {
	if [ -t 2 ]; then
		printf '   \033[2m$ %s\033[0m\n' "$*" >&2
	else
		printf '   $ %s\n' "$*" >&2
	fi
}

fl_cp() { ip netns exec "$FL_NS_CP" "$@"; }
fl_gw() { # I CMD...
	local i=$1
	shift
	ip netns exec "${FL_GW_NS[$i]}" "$@"
}

fl_wait_for() { # SECONDS CMD...
	local n=$(($1 * 5))
	shift
	for _ in $(seq "$n"); do
		"$@" && return 0
		sleep 0.2
	done
	return 1
}

# Running (not gone, not a zombie waiting to be reaped).
fl_alive() { # PID
	local st
	st=$(ps -o stat= -p "$1" 2>/dev/null)
	[ -n "$st" ] && [[ $st != Z* ]]
}

# SIGTERM, then SIGKILL after 5 s; reaps it when it is our child.
fl_stop_pid() { # PID
	local p=$1
	[ -n "$p" ] || return 0
	kill "$p" 2>/dev/null || { wait "$p" 2>/dev/null; return 0; }
	for _ in $(seq 50); do
		fl_alive "$p" || break
		sleep 0.1
	done
	kill -9 "$p" 2>/dev/null
	wait "$p" 2>/dev/null
	return 0
}

# The PID of the process serving a UAPI socket in a namespace (the wireguard-go of one of
# our daemons), if any.
fl_sock_pid() { # NETNS IFNAME
	ip netns exec "$1" ss -H -xlp 2>/dev/null | grep -F " $FL_SOCKDIR/$2.sock " |
		sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1
}

fl_init() { # NAME
	local i
	S=${FL_SUFFIX:-$$}
	FL_T=$(mktemp -d "/tmp/fleet_$1.XXXXXX") || exit 1
	chmod 700 "$FL_T"
	FL_NS_CP=fl-cp-$S
	FL_BR=flbr$S
	FL_NAMESPACES=("$FL_NS_CP")
	FL_TIF=([acme]=flA$S [globex]=flB$S)
	FL_IFNAMES=("flA$S" "flB$S")
	for i in $(seq $FL_N); do
		FL_GW_NS[$i]=fl-g$i-$S
		FL_GW_IF[$i]=flg$i$S
		FL_GW_VETH[$i]=fl${i}g$S
		FL_GW_PORT[$i]=fl${i}c$S
		FL_GW_WAN[$i]=198.51.100.1$i
		FL_GW_EKD_PID[$i]=
		FL_NAMESPACES+=("${FL_GW_NS[$i]}")
		FL_IFNAMES+=("${FL_GW_IF[$i]}")
	done
	export TSS2_LOG=all+none
	trap fl_cleanup EXIT
	trap 'exit 130' INT
	trap 'exit 143' TERM
}

fl_cleanup() {
	local i p ns
	trap - EXIT
	for i in $(seq $FL_N); do
		# SIGTERM: edge-keyd removes its interface and stops its wireguard-go
		[ -n "${FL_GW_EKD_PID[$i]:-}" ] && kill -CONT "${FL_GW_EKD_PID[$i]}" 2>/dev/null
		fl_stop_pid "${FL_GW_EKD_PID[$i]:-}"
		FL_GW_EKD_PID[$i]=
	done
	fl_stop_pid "$FL_ENROLLD_PID"
	FL_ENROLLD_PID=
	for p in "${FL_SWTPM_PIDS[@]}"; do fl_stop_pid "$p"; done
	FL_SWTPM_PIDS=()
	# Anything still in our namespaces is ours: a wireguard-go left by a daemon that was
	# killed (a namespace's deletion does not stop its processes).
	for ns in "${FL_NAMESPACES[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
	done
	for ns in "${FL_NAMESPACES[@]}"; do
		for _ in $(seq 20); do
			[ -z "$(ip netns pids "$ns" 2>/dev/null)" ] && break
			sleep 0.1
		done
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	for p in "${FL_IFNAMES[@]}"; do rm -f "$FL_SOCKDIR/$p.sock"; done
	[ -n "$FL_T" ] && rm -rf "$FL_T"
	FL_T=
}

# Nothing of ours is left: namespaces, UAPI sockets, processes in them.
fl_all_gone() {
	local ns p
	for ns in "${FL_NAMESPACES[@]}"; do
		ip netns list | grep -qw "$ns" && return 1
	done
	for p in "${FL_IFNAMES[@]}"; do [ -e "$FL_SOCKDIR/$p.sock" ] && return 1; done
	return 0
}

fl_topology_up() {
	local i
	fl_x ip netns add "$FL_NS_CP" || return 1
	ip -n "$FL_NS_CP" link set lo up
	fl_x ip -n "$FL_NS_CP" link add "$FL_BR" type bridge || return 1
	fl_x ip -n "$FL_NS_CP" addr add "$FL_CP_WAN/24" dev "$FL_BR"
	ip -n "$FL_NS_CP" link set "$FL_BR" up
	# Forwarding on: a gateway that tries to reach another tenant through the control plane
	# must be stopped by tenant isolation, not by a host that does not route at all.
	ip netns exec "$FL_NS_CP" sysctl -qw net.ipv4.ip_forward=1
	for i in $(seq $FL_N); do
		fl_x ip netns add "${FL_GW_NS[$i]}" || return 1
		ip -n "${FL_GW_NS[$i]}" link set lo up
		fl_x ip link add "${FL_GW_PORT[$i]}" netns "$FL_NS_CP" type veth \
			peer name "${FL_GW_VETH[$i]}" netns "${FL_GW_NS[$i]}" || return 1
		ip -n "$FL_NS_CP" link set "${FL_GW_PORT[$i]}" master "$FL_BR" up
		fl_x ip -n "${FL_GW_NS[$i]}" addr add "${FL_GW_WAN[$i]}/24" dev "${FL_GW_VETH[$i]}"
		ip -n "${FL_GW_NS[$i]}" link set "${FL_GW_VETH[$i]}" up
	done
}

fl_firewall_up() { # I
	fl_x ip netns exec "${FL_GW_NS[$1]}" nft -D WG_IF="${FL_GW_IF[$1]}" \
		-f "$FL_ROOT/edge-keyd/wan-firewall.nft"
}

# ---- the control plane ----------------------------------------------------------------------

# Its TLS CA and certificate, tokens, enrolld.conf.
fl_cp_setup() {
	local d=$FL_T/cp trust
	mkdir -p "$d"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=fleet control plane CA" -keyout "$d/ca.key" -out "$d/ca.pem" \
		2>/dev/null || return 1
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$FL_CP_WAN" \
		-keyout "$d/tls.key" -out "$d/tls.csr" 2>/dev/null || return 1
	printf 'subjectAltName=IP:%s\n' "$FL_CP_WAN" >"$d/ext"
	openssl x509 -req -in "$d/tls.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" -CAcreateserial \
		-days 2 -extfile "$d/ext" -out "$d/tls.pem" 2>/dev/null || return 1
	chmod 600 "$d/tls.key" "$d/ca.key"
	(umask 077
		echo "admin-$(openssl rand -hex 16)" >"$d/admin.token"
		echo "prov-$(openssl rand -hex 16)" >"$d/prov.token")
	FL_ADMIN=$(cat "$d/admin.token")
	. "$FL_ROOT/swtpm-fixtures/lib.sh"
	trust=$(swtpm_fixture_trust) || return 1
	cat >"$d/enrolld.conf" <<EOF
[server]
listen = $FL_CP_WAN
port = $FL_API_PORT
tls_cert = $d/tls.pem
tls_key = $d/tls.key
[state]
db_path = $d/db
[auth]
admin_token_file = $d/admin.token
provisioning_token_file = $d/prov.token
[attestation]
ek_ca_dir = $trust
[wireguard]
backend = userspace
nftables = yes
vrf = no
reconcile_interval = 2
[health]
interval = $FL_TICK
EOF
	FL_URL=https://$FL_CP_WAN:$FL_API_PORT
}

fl_cp_start() {
	local before
	: >>"$FL_T/enrolld.log"
	before=$(grep -c 'listening on' "$FL_T/enrolld.log")
	[ "$FL_NARRATE" = 1 ] &&
		fl_say_cmd "ip netns exec $FL_NS_CP enrolld -d -c $FL_T/cp/enrolld.conf &"
	# not through fl_cp(): $! must be enrolld itself (ip netns exec execs it)
	ip netns exec "$FL_NS_CP" "$FL_ENROLLD" -d -c "$FL_T/cp/enrolld.conf" \
		>>"$FL_T/enrolld.log" 2>&1 &
	FL_ENROLLD_PID=$!
	for _ in $(seq 100); do
		[ "$(grep -c 'listening on' "$FL_T/enrolld.log")" -gt "$before" ] && return 0
		kill -0 "$FL_ENROLLD_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "enrolld did not start:" >&2
	tail -n 20 "$FL_T/enrolld.log" >&2
	return 1
}

fl_cp_stop() {
	fl_stop_pid "$FL_ENROLLD_PID"
	FL_ENROLLD_PID=
}

fl_cp_kill9() {
	[ -n "$FL_ENROLLD_PID" ] || return 0
	fl_x kill -9 "$FL_ENROLLD_PID"
	wait "$FL_ENROLLD_PID" 2>/dev/null
	FL_ENROLLD_PID=
}

# The admin's view of the API (from inside the control plane's namespace).
fl_api() { # METHOD PATH [BODY]
	local m=$1 p=$2
	shift 2
	fl_cp curl -s --max-time 20 --cacert "$FL_T/cp/ca.pem" \
		-H "Authorization: Bearer $FL_ADMIN" -X "$m" -o "$FL_T/body" -w '%{http_code}' \
		${1:+-H 'Content-Type: application/json' --data "$1"} "$FL_URL$p" >"$FL_T/status"
	cat "$FL_T/body"
}
fl_status() { cat "$FL_T/status"; }

fl_tenants_create() {
	local t
	for t in acme globex; do
		[ "$FL_NARRATE" = 1 ] && fl_say_cmd "curl -X POST $FL_URL/v1/tenants -d" \
			"'{\"name\":\"$t\",\"prefix\":\"${FL_PREFIX[$t]}\",\"interface\":\"${FL_TIF[$t]}\",$(
			)\"listen_port\":${FL_WG_PORT[$t]},\"keepalive\":$FL_KA,...}'"
		fl_api POST /v1/tenants "{\"name\":\"$t\",\"prefix\":\"${FL_PREFIX[$t]}\",
			\"interface\":\"${FL_TIF[$t]}\",\"listen_port\":${FL_WG_PORT[$t]},
			\"endpoint\":\"$FL_CP_WAN:${FL_WG_PORT[$t]}\",\"keepalive\":$FL_KA}" >/dev/null
		case $(fl_status) in
		200 | 201) ;;
		*) echo "tenant $t: HTTP $(fl_status) $(cat "$FL_T/body")" >&2; return 1 ;;
		esac
		fl_wait_for 10 test -S "$FL_SOCKDIR/${FL_TIF[$t]}.sock" ||
			{ echo "enrolld did not bring up ${FL_TIF[$t]}" >&2; return 1; }
	done
}

# ---- gateways -------------------------------------------------------------------------------

# Gateway I's TPM (a fixture state of its own: its own seeds and EK certificate from the
# fixtures' "manufacturer" CA) and its edge-keyd.conf.
fl_gw_setup() { # I
	local i=$1 d=$FL_T/g$1 tcti
	mkdir -p "$d"
	. "$FL_ROOT/swtpm-fixtures/lib.sh"
	swtpm_fixture_state "fleet-g$i" "$d/tpm" || return 1
	ip netns exec "${FL_GW_NS[$i]}" swtpm socket --tpm2 --tpmstate dir="$d/tpm" \
		--flags not-need-init,startup-clear \
		--server type=tcp,port=$FL_TPM_PORT,bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((FL_TPM_PORT + 1)),bindaddr=127.0.0.1 \
		>"$d/swtpm.log" 2>&1 </dev/null &
	FL_SWTPM_PIDS+=($!)
	tcti="swtpm:host=127.0.0.1,port=$FL_TPM_PORT"
	fl_wait_for 10 fl_gw "$i" tpm2_getcap -T "$tcti" properties-fixed >/dev/null 2>&1 ||
		{ echo "swtpm of g$i does not answer" >&2; return 1; }
	cp "$FL_T/cp/ca.pem" "$d/cp-ca.pem"
	(umask 077; cp "$FL_T/cp/prov.token" "$d/prov.token")
	cat >"$d/edge-keyd.conf" <<EOF
[device]
state_dir = $d/state
tcti = $tcti
ek_type = ${FL_GW_EK[$i]}
ak_type = ${FL_GW_AK[$i]}
label = g$i
[server]
url = $FL_URL
ca_file = $d/cp-ca.pem
tenant = ${FL_GW_TENANT[$i]}
provisioning_token_file = $d/prov.token
[wireguard]
interface = ${FL_GW_IF[$i]}
backend = userspace
check_interval = 1
EOF
}

fl_ekd() { # I ARGS...: a one-shot edge-keyd command in gateway I
	local i=$1
	shift
	fl_x ip netns exec "${FL_GW_NS[$i]}" timeout 60 "$FL_EKD" -c "$FL_T/g$i/edge-keyd.conf" "$@"
}

fl_gw_start() { # I
	local i=$1
	[ "$FL_NARRATE" = 1 ] &&
		fl_say_cmd "ip netns exec ${FL_GW_NS[$i]} edge-keyd -c $FL_T/g$i/edge-keyd.conf -d run &"
	ip netns exec "${FL_GW_NS[$i]}" "$FL_EKD" -c "$FL_T/g$i/edge-keyd.conf" -d run \
		>>"$FL_T/g$i/edge-keyd.log" 2>&1 &
	FL_GW_EKD_PID[$i]=$!
	fl_wait_for 15 test -S "$FL_SOCKDIR/${FL_GW_IF[$i]}.sock" ||
		{ echo "edge-keyd of g$i did not start wireguard-go" >&2; return 1; }
}

fl_gw_stop() { # I
	fl_stop_pid "${FL_GW_EKD_PID[$1]}"
	FL_GW_EKD_PID[$1]=
}

fl_gw_enrollment() { jq -r "$2" "$FL_T/g$1/state/enrollment.json" 2>/dev/null; }
fl_gw_addr() { local a; a=$(fl_gw_enrollment "$1" .address); echo "${a%/32}"; }
fl_gw_dev() { fl_gw_enrollment "$1" .device_id; }
fl_gw_pub() { fl_gw_enrollment "$1" .wg_public_key; }

fl_ping_gw() { # I [COUNT]
	fl_cp ping -c "${2:-1}" -i 0.2 -W 1 "$(fl_gw_addr "$1")" >/dev/null 2>&1
}

fl_health() { # I
	fl_api GET "/v1/devices/$(fl_gw_dev "$1")" | jq -r .health 2>/dev/null
}

fl_health_is() { [ "$(fl_health "$1")" = "$2" ]; }

# Wait until gateway I's health is STATE; prints the milliseconds it took, or "timeout".
fl_wait_health() { # I STATE TIMEOUT_S
	local t0 ms
	t0=$(date +%s%N)
	while :; do
		ms=$((($(date +%s%N) - t0) / 1000000))
		if fl_health_is "$1" "$2"; then
			echo "$ms"
			return 0
		fi
		[ "$ms" -gt $(($3 * 1000)) ] && { echo timeout; return 1; }
		sleep 0.2
	done
}

fl_link_cut() { fl_x ip -n "$FL_NS_CP" link set "${FL_GW_PORT[$1]}" down; }
fl_link_restore() { fl_x ip -n "$FL_NS_CP" link set "${FL_GW_PORT[$1]}" up; }

# Counters in gateway I's namespace (table inet fl_probe): ICMP echo requests for its tunnel
# or WAN address arriving through its tunnel (via_tunnel), arriving on its WAN port
# (via_wan), and delivered to it after its WAN firewall (delivered).
fl_probe_install() { # I
	local i=$1 a w=${FL_GW_WAN[$1]}
	a=$(fl_gw_addr "$i")
	fl_gw "$i" nft -f - <<EOF
table inet fl_probe {
	counter via_tunnel { }
	counter via_wan { }
	counter delivered { }
	chain pre {
		type filter hook prerouting priority raw; policy accept;
		iifname "${FL_GW_IF[$i]}" ip daddr { $a, $w } icmp type echo-request counter name via_tunnel
		iifname != "${FL_GW_IF[$i]}" ip daddr { $a, $w } icmp type echo-request counter name via_wan
	}
	chain input {
		type filter hook input priority filter + 10; policy accept;
		ip daddr { $a, $w } icmp type echo-request counter name delivered
	}
}
EOF
}

# The packets of named counter COUNTER in table inet TABLE of namespace NETNS.
fl_counter() { # NETNS TABLE COUNTER
	ip netns exec "$1" nft -j list counter inet "$2" "$3" 2>/dev/null |
		jq '[.nftables[] | .counter? // empty | .packets][0] // 0'
}

# Packets the control plane dropped between tenant interfaces (enrolld's nftables table).
fl_isolation_drops() {
	fl_cp nft -j list table inet enrolld 2>/dev/null |
		jq '[.nftables[] | .rule? // empty | .expr[] | .counter? // empty | .packets] | add // 0'
}

# Gateway I taken over by an attacker who wants to reach DST: its edge-keyd frozen (so it does
# not repair what the attacker changes), the tunnel's allowed IPs opened to 0.0.0.0/0, DST
# routed into the tunnel, and each SRC that is not the gateway's own address added to its
# loopback so that ping -I can send with it. Counters (table inet fl_attack, "src0", "src1",
# ...) count what leaves through the tunnel to DST from each SRC, in order.
fl_attacker_begin() { # I DST SRC...
	local i=$1 dst=$2 n=0 src rules=
	shift 2
	kill -STOP "${FL_GW_EKD_PID[$i]}" || return 1
	fl_x "$FL_WGCTL" --backend uapi set "${FL_GW_IF[$i]}" \
		peer "$(fl_gw_enrollment "$i" .server_public_key)" allowed-ips 0.0.0.0/0 || return 1
	fl_x ip -n "${FL_GW_NS[$i]}" route add "$dst/32" dev "${FL_GW_IF[$i]}" || return 1
	for src in "$@"; do
		[ "$src" = "$(fl_gw_addr "$i")" ] ||
			fl_x ip -n "${FL_GW_NS[$i]}" addr add "$src/32" dev lo || return 1
		rules+="counter src$n { }
chain c$n { type filter hook postrouting priority filter; policy accept;
 oifname \"${FL_GW_IF[$i]}\" ip saddr $src ip daddr $dst counter name src$n; }
"
		n=$((n + 1))
	done
	fl_gw "$i" nft -f - <<<"table inet fl_attack { $rules }"
}

fl_attacker_end() { # I DST SRC...
	local i=$1 dst=$2 src
	shift 2
	ip -n "${FL_GW_NS[$i]}" route del "$dst/32" 2>/dev/null
	for src in "$@"; do
		[ "$src" = "$(fl_gw_addr "$i")" ] || ip -n "${FL_GW_NS[$i]}" addr del "$src/32" dev lo
	done
	fl_gw "$i" nft delete table inet fl_attack 2>/dev/null
	"$FL_WGCTL" --backend uapi set "${FL_GW_IF[$i]}" \
		peer "$(fl_gw_enrollment "$i" .server_public_key)" \
		allowed-ips "$(fl_gw_enrollment "$i" '.allowed_ips | join(",")')"
	kill -CONT "${FL_GW_EKD_PID[$i]}"
}

# The public keys of the peers on a control-plane tenant interface, one a line.
fl_cp_peers() { # TENANT
	"$FL_WGCTL" --backend uapi show "${FL_TIF[$1]}" 2>/dev/null | tail -n +2 | cut -f1
}

# The fleet as the API reports it, through the operator's CLI (docs/enrollctl.md): the
# admin token from its 0600 file, the control plane's CA pinned.
fl_fleet_table() {
	fl_cp "$FL_ENROLLCTL" --url "$FL_URL" --ca "$FL_T/cp/ca.pem" \
		--token-file "$FL_T/cp/admin.token" devices | sed 's/^/     /'
	[ "${PIPESTATUS[0]}" -eq 0 ]
}

# ---- run directly: test the helpers themselves ----------------------------------------------
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -u
	passes=0 fails=0
	check() { # DESCRIPTION CMD...
		local d=$1
		shift
		if "$@"; then
			echo "PASS  $d"
			passes=$((passes + 1))
		else
			echo "FAIL  $d"
			fails=$((fails + 1))
		fi
	}
	# gone, or a zombie waiting for us to reap it
	quiet() { "$@" >/dev/null 2>&1; }
	fl_dead() { local s; s=$(ps -o stat= -p "$1"); [ -z "$s" ] || [[ $s == Z* ]]; }
	fl_require
	fl_init lib
	fl_topology_up >/dev/null || { echo "FAIL  topology"; exit 1; }
	for i in $(seq $FL_N); do
		check "the control plane reaches g$i's WAN address" \
			quiet fl_cp ping -c 1 -W 1 "${FL_GW_WAN[$i]}"
	done
	fl_firewall_up 2
	check "with the WAN firewall, g2 no longer answers pings" \
		bash -c "! ip netns exec $FL_NS_CP ping -c 1 -W 1 ${FL_GW_WAN[2]} >/dev/null"
	check "and g2 still reaches the control plane (answers to its own flows pass)" \
		quiet fl_gw 2 ping -c 1 -W 1 "$FL_CP_WAN"
	check "g1, without the firewall, still answers" quiet fl_cp ping -c 1 -W 1 "${FL_GW_WAN[1]}"
	fl_link_cut 3 2>/dev/null
	check "a cut link isolates g3" bash -c "! ip netns exec $FL_NS_CP ping -c 1 -W 1 ${FL_GW_WAN[3]} >/dev/null"
	fl_link_restore 3 2>/dev/null
	check "a restored link brings g3 back" fl_wait_for 5 quiet fl_cp ping -c 1 -W 1 "${FL_GW_WAN[3]}"
	# a process in a namespace that fl_cleanup must stop (not our child: nothing to reap)
	FL_SLEEPER=$(fl_gw 1 bash -c 'sleep 300 >/dev/null 2>&1 & echo $!')
	fl_cleanup
	check "fl_cleanup removes the namespaces and sockets" fl_all_gone
	check "and stops what ran in them" fl_dead "$FL_SLEEPER"
	echo "$passes passed, $fails failed"
	[ "$fails" = 0 ]
	exit $?
fi
