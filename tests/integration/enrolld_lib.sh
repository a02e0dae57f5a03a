#!/bin/bash
# Helpers for enrolld's integration tests (sourced by tests/integration/enrolld_*.sh).
# Run directly, it tests itself: a daemon in a namespace answers, stops on SIGTERM, and
# everything it made (namespace, wireguard-go, sockets, temp files) is gone afterwards.
#
# Everything happens inside one network namespace the test makes ("ed-<test>-<pid>"):
# enrolld, its userspace WireGuard interfaces, the swtpm of each simulated device and the
# devices' HTTP traffic, all on that namespace's loopback. Ports are the namespace's own
# (35000-36999), so tests never collide on ports; interface names are unique ("ed" + a
# random tag), because wireguard-go's socket directory /var/run/wireguard is shared.
#
#   ed_init NAME             temp dir $T, namespace $NS, tokens, $CA (fixture CA); EXIT trap
#   ed_conf [key=value...]   write $T/e.conf (userspace backend), extra lines appended
#   ed_start / ed_stop / ed_kill9
#   api METHOD PATH TOKEN [BODY]   HTTP status on stdout, body in $T/body
#   ed_swtpm NAME            fresh TPM (new seeds: a new device) on its own port; sets TCTI_<NAME>
#   ed_enroll NAME [enroll_dev options]   JSON line of enroll_dev on stdout, its exit status
#   check DESCRIPTION COMMAND...   counts failures in $fails
#   ed_done                  print the summary and exit 0/1

B=${B:-build}
ENROLLD=$B/enrolld
ENROLL_DEV=$B/tests/progs/enroll_dev
WGCTL=$B/tests/progs/wgctl
ED_ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ADMIN=admin-token-0123456789abcdef
PROV=provisioning-token-0123456789
fails=0
ED_PID=
ED_SWTPM_PIDS=()
ED_BG_PIDS=()
ED_NEXT_PORT=35600

ed_require() {
	[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (namespaces, TUN)"; exit 77; }
	local t
	for t in wireguard-go ip nft swtpm swtpm_setup swtpm_localca tpm2_getcap curl jq; do
		command -v "$t" >/dev/null || { echo "skip: $t not installed"; exit 77; }
	done
	[ -c /dev/net/tun ] || { echo "skip: no /dev/net/tun"; exit 77; }
	[ -x "$ENROLLD" ] && [ -x "$ENROLL_DEV" ] && [ -x "$WGCTL" ] ||
		{ echo "not built: $ENROLLD, $ENROLL_DEV, $WGCTL"; exit 1; }
}

ed_cleanup() {
	local p
	for p in "${ED_BG_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	if [ -n "$ED_PID" ]; then
		kill "$ED_PID" 2>/dev/null
		for _ in $(seq 50); do kill -0 "$ED_PID" 2>/dev/null || break; sleep 0.1; done
		kill -9 "$ED_PID" 2>/dev/null
		wait "$ED_PID" 2>/dev/null
	fi
	for p in "${ED_SWTPM_PIDS[@]}"; do kill "$p" 2>/dev/null; done
	for p in "${ED_SWTPM_PIDS[@]}" "${ED_BG_PIDS[@]}"; do wait "$p" 2>/dev/null; done
	# What is left in our namespaces is ours (wireguard-go left by a killed enrolld).
	for ns in "${ED_NAMESPACES[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill "$p" 2>/dev/null; done
	done
	sleep 0.2
	for ns in "${ED_NAMESPACES[@]}"; do
		for p in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
		ip netns del "$ns" 2>/dev/null
	done
	for p in "${ED_IFNAMES[@]}"; do rm -f "/var/run/wireguard/$p.sock"; done
	[ -n "${T:-}" ] && rm -rf "$T"
}

ed_init() { # NAME
	ed_require
	T=$(mktemp -d "/tmp/enrolld_$1.XXXXXX")
	NS=ed-$1-$$
	ED_NAMESPACES=("$NS")
	TAG=$(printf '%04x' $((RANDOM % 65536)))
	ED_IFNAMES=()
	trap ed_cleanup EXIT
	ip netns add "$NS" || { echo "cannot create namespace $NS"; exit 1; }
	ip -n "$NS" link set lo up
	# Our listening ports (35000-36999) must never be taken by a client's ephemeral port.
	ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="40000 60999"
	echo "$ADMIN" >"$T/admin"
	echo "$PROV" >"$T/prov"
	mkdir -p "$T/tt" "$T/dev"
	chmod 600 "$T/admin" "$T/prov"
	# the fixtures' CA: trust anchors for enrolld, signing key to play the manufacturer
	. "$ED_ROOT/swtpm-fixtures/lib.sh"
	TRUST=$(swtpm_fixture_trust) || { echo "cannot prepare the swtpm fixtures"; exit 1; }
	CA=$(dirname "$TRUST")
	[ -f "$CA/signkey.pem" ] && [ -f "$CA/issuercert.pem" ] || { echo "no CA key in $CA"; exit 1; }
	PORT=35001
	U=http://127.0.0.1:$PORT
	export TSS2_LOG=all+none
}

# A unique interface name for a tenant: ed<tag><suffix>
ed_ifname() { # SUFFIX
	local n="ed$TAG$1"
	ED_IFNAMES+=("$n")
	echo "$n"
}

ed_tenant_token() { # TENANT TOKEN
	echo "$2" >"$T/tt/$1"
	chmod 600 "$T/tt/$1"
}

ed_conf() { # extra lines
	cat >"$T/e.conf" <<CONF
[server]
listen = 127.0.0.1
port = $PORT
max_body = 16384
connection_timeout = 30
[state]
db_path = $T/db
[auth]
admin_token_file = $T/admin
provisioning_token_file = $T/prov
tenant_tokens_dir = $T/tt
[attestation]
ek_ca_dir = $TRUST
session_ttl = 30
[wireguard]
backend = userspace
reconcile_interval = 2
[health]
interval = 1
CONF
	local l
	for l in "$@"; do echo "$l" >>"$T/e.conf"; done
}

ed_start() {
	local i
	: >>"$T/log"
	local before
	before=$(grep -c 'listening on' "$T/log")
	ip netns exec "$NS" "$ENROLLD" -d -c "$T/e.conf" "$@" 2>>"$T/log" &
	ED_PID=$!
	for i in $(seq 100); do
		[ "$(grep -c 'listening on' "$T/log")" -gt "$before" ] && return 0
		kill -0 "$ED_PID" 2>/dev/null || break
		sleep 0.1
	done
	echo "enrolld did not start"
	tail -n 20 "$T/log"
	exit 1
}

ed_stop() {
	[ -n "$ED_PID" ] || return 0
	kill "$ED_PID"
	wait "$ED_PID"
	ED_RC=$?
	ED_PID=
}

ed_kill9() {
	[ -n "$ED_PID" ] || return 0
	kill -9 "$ED_PID" 2>/dev/null
	wait "$ED_PID" 2>/dev/null
	ED_PID=
}

api() { # METHOD PATH TOKEN [BODY]
	local auth=()
	[ -n "$3" ] && auth=(-H "Authorization: Bearer $3")
	if [ $# -ge 4 ]; then
		ip netns exec "$NS" curl -s -o "$T/body" -w '%{http_code}' -X "$1" "${auth[@]}" \
			-H 'Content-Type: application/json' --data-binary "$4" "$U$2"
	else
		ip netns exec "$NS" curl -s -o "$T/body" -w '%{http_code}' -X "$1" "${auth[@]}" "$U$2"
	fi
}

# jq over the last answer
body() { jq -r "$1" "$T/body"; }

# A fresh swtpm (empty state: the TPM manufactures itself with new seeds) in the namespace.
ed_swtpm() { # NAME
	local name=$1 port=$ED_NEXT_PORT i
	ED_NEXT_PORT=$((ED_NEXT_PORT + 2))
	mkdir -p "$T/tpm/$name"
	ip netns exec "$NS" swtpm socket --tpm2 --tpmstate dir="$T/tpm/$name" \
		--flags not-need-init,startup-clear \
		--server type=tcp,port=$port,bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$((port + 1)),bindaddr=127.0.0.1 >>"$T/swtpm.log" 2>&1 </dev/null &
	ED_SWTPM_PIDS+=($!)
	for i in $(seq 200); do
		ip netns exec "$NS" tpm2_getcap -T "swtpm:host=127.0.0.1,port=$port" \
			properties-fixed >/dev/null 2>&1 && break
		sleep 0.05
	done
	[ "$i" -lt 200 ] || {
		echo "swtpm '$name' on port $port does not answer"
		tail -n 5 "$T/swtpm.log"
		exit 1
	}
	printf -v "TCTI_$name" '%s' "swtpm:host=127.0.0.1,port=$port"
}

ed_tcti() { local v="TCTI_$1"; echo "${!v}"; }

# Enroll device NAME (its swtpm must exist); extra options go to enroll_dev.
ed_enroll() { # NAME [options]
	local name=$1
	shift
	ip netns exec "$NS" "$ENROLL_DEV" enroll --url "$U" --tcti "$(ed_tcti "$name")" \
		--state "$T/dev/$name" --issue-ek-cert "$CA" "$@" 2>>"$T/dev.log"
}

ed_ek() { # NAME -> {"ek_public", "ek_id"}
	ip netns exec "$NS" "$ENROLL_DEV" ek --tcti "$(ed_tcti "$1")" --issue-ek-cert "$CA" \
		2>>"$T/dev.log"
}

# Peers of an interface: "pubkey allowed-ips" per line.
ed_peers() { # IFNAME
	"$WGCTL" --backend uapi show "$1" | tail -n +2 | cut -f1,4 | sort
}

# ed_until SECONDS command...: poll every 0.1 s until the command succeeds (then 0) or the
# time is up (1). For what is due "soon": a fixed sleep is a race on a loaded machine.
ed_until() {
	local i
	for ((i = 0; i < $1 * 10; i++)); do
		"${@:2}" && return 0
		sleep 0.1
	done
	return 1
}

check() { # description, command...
	local d=$1
	shift
	if "$@"; then
		echo "ok   $d"
	else
		echo "FAIL $d"
		fails=$((fails + 1))
	fi
}

ed_done() {
	# a sanitizer build (B=build/san) reports into the daemon's log
	if grep -qE 'Sanitizer|runtime error' "$T/log" "$T/dev.log" 2>/dev/null; then
		echo "FAIL sanitizer reports:"
		grep -hE -A12 'Sanitizer|runtime error' "$T/log" "$T/dev.log" 2>/dev/null | head -60
		fails=$((fails + 1))
	fi
	if [ "$fails" != 0 ]; then
		echo "--- enrolld log (tail)"
		tail -n 40 "$T/log"
		[ -s "$T/dev.log" ] && { echo "--- devices (tail)"; tail -n 10 "$T/dev.log"; }
	fi
	echo "$fails check(s) failed"
	[ "$fails" = 0 ]
	exit $?
}

# ---- run directly: test the helpers themselves ----
if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
	set -u
	ed_init lib
	ed_conf
	ed_start
	check "enrolld answers in the namespace" [ "$(api GET /healthz "")" = 200 ]
	IF=$(ed_ifname x)
	check "a tenant can be created" [ "$(api POST /v1/tenants "$ADMIN" \
		"{\"name\":\"t\",\"prefix\":\"10.99.0.0/29\",\"interface\":\"$IF\",\"listen_port\":35111,\"endpoint\":\"192.0.2.1:35111\"}")" = 201 ]
	check "its wireguard-go runs in the namespace" \
		bash -c "ip netns pids $NS | xargs -r ps -o comm= -p | grep -q wireguard-go"
	ed_swtpm a
	check "a fresh swtpm answers" bash -c "ip netns exec $NS tpm2_getcap -T $(ed_tcti a) properties-fixed >/dev/null"
	ed_stop
	check "SIGTERM stops enrolld with status 0" [ "$ED_RC" = 0 ]
	check "and its wireguard-go with it" [ ! -S "/var/run/wireguard/$IF.sock" ]
	ed_done
fi
