# One control plane and one gateway in two network namespaces joined by a veth pair, with
# enrolld over HTTPS (its own test CA) and the userspace backend: the setup shared by
# edgekeyd_enroll.sh, edgekeyd_tpm_faults.sh, edgekeyd_retry_after.sh and wgquick_tpm.sh
# (and their fail, step and api).
# Sourced, not run (tests/run.sh skips *_lib.sh).
#
# The caller sets NSC NSG (netns), VC VG (veth ends), CP_IP GW_IP, API_PORT, T (temp dir),
# ENROLLD, PIDS (array), and CG_FAIL: the name of its fatal-error function.
# CG_WRAP (environment, default empty): a command the daemons run under, word-split, e.g.
# valgrind with its options (tests/integration/valgrind_e2e.sh); CG_STOP_WAIT: seconds a
# daemon has to exit after SIGTERM (default 5); CG_SLOW: a factor for every wait and for
# enrolld's header_timeout (default 1: 10 s; under valgrind a client's first TLS handshake
# alone can take longer, and the server then closes the connection before the request).
# CG_CONF_EXTRA: lines appended to enrolld.conf (a section may be named again, e.g.
# "[attestation]" then "max_sessions = 1").

SOCKDIR=/var/run/wireguard

# What every such test needs before it starts: the built programs given (fails if one is
# missing), then "--" and the tools (skips, exit 77, if one is missing), root, TUN, the
# swtpm fixtures; TSS2's log quiet.
cg_require() { # PROGRAM... -- TOOL...
	local f
	while [ $# -gt 0 ] && [ "$1" != -- ]; do
		[ -x "$1" ] || { echo "$1 not built"; exit 1; }
		shift
	done
	shift
	[ "$(id -u)" -eq 0 ] || { echo "skip: needs root (namespaces, TUN)"; exit 77; }
	for f in "$@"; do
		command -v "$f" >/dev/null || { echo "skip: $f not installed"; exit 77; }
	done
	[ -c /dev/net/tun ] || { echo "skip: no /dev/net/tun"; exit 77; }
	export TSS2_LOG=all+none
	. swtpm-fixtures/lib.sh
}

# The fatal error of the gateway tests (CG_FAIL=fail): says what, shows the tail of each
# log of $T, exits 1.
fail() {
	echo "FAIL: $*"
	for f in "$T"/*.log; do [ -s "$f" ] && { echo "--- $f"; tail -n 30 "$f"; }; done
	exit 1
}
step() { echo "== $*"; }

# The admin API from the control plane's namespace, its CA pinned: prints the body (also
# in $T/body), the HTTP status in $T/status.
api() { # METHOD PATH [BODY]
	local m=$1 p=$2
	shift 2
	inc curl -s --max-time 30 --cacert "$T/cp/ca.pem" -H "Authorization: Bearer $ADMIN" -X "$m" \
		-o "$T/body" -w '%{http_code}' ${1:+-H 'Content-Type: application/json' --data "$1"} \
		"$U$p" >"$T/status"
	cat "$T/body"
}

# Names and ports of one run, unique per process (/var/run/wireguard is shared by all
# namespaces): NSC NSG (netns PREFIX-cp-PID, PREFIX-gw-PID), WGC WGG VC VG (interfaces,
# <= 15 characters), CP_IP GW_IP, and from PORTBASE on, 400 strides of 5 ports: TPM_PORT
# (swtpm, and +1), API_PORT, WG_PORT.
cg_names() { # PREFIX PORTBASE
	S=$$
	NSC=$1-cp-$S NSG=$1-gw-$S
	WGC=${1}c$S WGG=${1}g$S VC=${1}vc$S VG=${1}vg$S
	CP_IP=192.0.2.1 GW_IP=192.0.2.2
	BASE=$(($2 + (S % 400) * 5))
	TPM_PORT=$BASE API_PORT=$((BASE + 2)) WG_PORT=$((BASE + 3))
}

# SIGTERM, then SIGKILL if it is still there after CG_STOP_WAIT s (a daemon stuck in a call).
stop_pid() {
	local p=$1 st
	kill "$p" 2>/dev/null || return 0
	# a dead child not reaped yet still answers kill -0: look at its state instead
	for _ in $(seq $((${CG_STOP_WAIT:-5} * 10))); do
		st=$(ps -o stat= -p "$p" 2>/dev/null)
		[ -n "$st" ] && [[ $st != Z* ]] || break
		sleep 0.1
	done
	kill -9 "$p" 2>/dev/null
	wait "$p" 2>/dev/null
}

# The wireguard-go serving a UAPI socket in a netns (started by the test's daemons), if any.
sock_pid() { # NETNS SOCKET
	ip netns exec "$1" ss -H -xlp 2>/dev/null | grep -F " $2 " |
		sed -n 's/.*pid=\([0-9]*\).*/\1/p' | head -n1
}

inc() { ip netns exec "$NSC" "$@"; }
ing() { ip netns exec "$NSG" "$@"; }
wait_for() { # SECONDS command...: poll every 0.2 s (SECONDS times CG_SLOW, default 1)
	local n=$(($1 * 5 * ${CG_SLOW:-1}))
	shift
	for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done
	return 1
}

# A swtpm in NSG over the state directory DIR, on 127.0.0.1:PORT (control PORT+1), its
# output appended to LOG; its PID in CG_SWTPM_PID and appended to PIDS. Returns 0 once the
# TPM answers.
cg_gw_swtpm() { # DIR PORT LOG
	ip netns exec "$NSG" swtpm socket --tpm2 --tpmstate dir="$1" \
		--flags not-need-init,startup-clear \
		--server type=tcp,port="$2",bindaddr=127.0.0.1 \
		--ctrl type=tcp,port=$(($2 + 1)),bindaddr=127.0.0.1 >>"$3" 2>&1 &
	CG_SWTPM_PID=$!
	PIDS+=($!)
	wait_for 10 ing tpm2_getcap -T "swtpm:host=127.0.0.1,port=$2" properties-fixed \
		>/dev/null 2>&1
}

# The two namespaces and the veth between them.
cg_topology_up() {
	ip netns add "$NSC" && ip netns add "$NSG" || "$CG_FAIL" "netns add"
	ip link add "$VC" netns "$NSC" type veth peer name "$VG" netns "$NSG" || "$CG_FAIL" "veth"
	inc ip addr add "$CP_IP/24" dev "$VC"
	ing ip addr add "$GW_IP/24" dev "$VG"
	for ns in "$NSC" "$NSG"; do ip -n "$ns" link set lo up; done
	inc ip link set "$VC" up
	ing ip link set "$VG" up
}

# The control plane's CA ($T/cp/ca.pem, what the gateway pins), its server certificate for
# CP_IP, an admin and a provisioning token ($T/cp/*.token); ADMIN is set.
cg_cp_credentials() { # CA_NAME
	mkdir -p "$T/cp"
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 \
		-subj "/CN=$1" -keyout "$T/cp/ca.key" -out "$T/cp/ca.pem" 2>/dev/null ||
		"$CG_FAIL" "CA"
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$CP_IP" \
		-keyout "$T/cp/tls.key" -out "$T/cp/tls.csr" 2>/dev/null || "$CG_FAIL" "CSR"
	printf 'subjectAltName=IP:%s\n' "$CP_IP" >"$T/cp/ext"
	openssl x509 -req -in "$T/cp/tls.csr" -CA "$T/cp/ca.pem" -CAkey "$T/cp/ca.key" \
		-CAcreateserial -days 2 -extfile "$T/cp/ext" -out "$T/cp/tls.pem" 2>/dev/null ||
		"$CG_FAIL" "server certificate"
	chmod 600 "$T/cp/tls.key"
	(umask 077
		echo "admin-$(openssl rand -hex 16)" >"$T/cp/admin.token"
		echo "prov-$(openssl rand -hex 16)" >"$T/cp/prov.token")
	ADMIN=$(cat "$T/cp/admin.token")
}

# enrolld in NSC (HTTPS on CP_IP:API_PORT, userspace WireGuard, EK CA = the swtpm
# fixtures'), its PID appended to PIDS; U is its URL. Returns once /healthz answers.
cg_cp_start() {
	local ek_trust
	ek_trust=$(swtpm_fixture_trust) || "$CG_FAIL" "fixture CA"
	cat >"$T/cp/enrolld.conf" <<CONF
[server]
listen = $CP_IP
port = $API_PORT
tls_cert = $T/cp/tls.pem
tls_key = $T/cp/tls.key
header_timeout = $((10 * ${CG_SLOW:-1}))
[state]
db_path = $T/cp/db
[auth]
admin_token_file = $T/cp/admin.token
provisioning_token_file = $T/cp/prov.token
[attestation]
ek_ca_dir = $ek_trust
[wireguard]
backend = userspace
nftables = no
vrf = no
reconcile_interval = 2
[health]
interval = 1
CONF
	[ -z "${CG_CONF_EXTRA:-}" ] || printf '%s\n' "$CG_CONF_EXTRA" >>"$T/cp/enrolld.conf"
	# not through inc(): $! must be enrolld itself (ip netns exec execs it)
	# shellcheck disable=SC2086 # CG_WRAP is a command line
	ip netns exec "$NSC" ${CG_WRAP:-} "$ENROLLD" -d -c "$T/cp/enrolld.conf" >"$T/enrolld.log" 2>&1 &
	PIDS+=($!)
	U=https://$CP_IP:$API_PORT
	wait_for 10 inc curl -sf --cacert "$T/cp/ca.pem" "$U/healthz" -o /dev/null ||
		"$CG_FAIL" "enrolld does not answer on $U"
}

# The tenant acme on WGC (PREFIX, listen port WG_PORT, endpoint CP_IP:WG_PORT, keepalive 25)
# through the admin api; returns once enrolld's wireguard-go socket for it is there.
cg_tenant_acme() { # PREFIX
	api POST /v1/tenants "{\"name\":\"acme\",\"prefix\":\"$1\",\"interface\":\"$WGC\",
	\"listen_port\":$WG_PORT,\"endpoint\":\"$CP_IP:$WG_PORT\",\"keepalive\":25}" >/dev/null
	[ "$(cat "$T/status")" = 201 ] || [ "$(cat "$T/status")" = 200 ] ||
		"$CG_FAIL" "tenant create: HTTP $(cat "$T/status") $(cat "$T/body")"
	wait_for 10 test -S "$SOCKDIR/$WGC.sock" || "$CG_FAIL" "enrolld did not bring up $WGC"
}
