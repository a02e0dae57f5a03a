#!/bin/bash
# Privilege separation (server.user), end to end with the userspace backend in a namespace:
# two processes; the network one runs as the user with no capabilities, no_new_privs and a
# seccomp filter (/proc/PID/status), the privileged one as root; systemd's READY=1 and
# WATCHDOG=1 come from the privileged one (the main PID) once the child is serving; a
# tenant and an enrolled device reach the interface through the channel (peer added, then
# removed on revocation); the health monitor's read works through it; every thread of the
# child has the filter and no_new_privs; the user cannot read the tenant key nor open a
# netlink socket nor exec, nor what only the seccomp allow-list refuses (AF_ALG sockets,
# memfd_create, fork), and can open AF_INET6 and AF_UNIX sockets (--privsep-selftest: the
# child's own drop); SIGHUP reaches the child; the child killed: the privileged process exits 1 and
# leaves its wireguard-go to the next start, which adopts it; the privileged process
# killed: the child exits; SIGTERM: both exit 0, wireguard-go stopped. Forbidden messages
# sent to the real privileged process are refused (tests/progs/privsep_probe); each check
# on its own: tests/unit/test_enrolld_privsep.c.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
USER_=_enrolld
CREATED_USER=
ed_init privsep
command -v python3 >/dev/null || { echo "skip: python3 not installed"; exit 77; }
[ -x "$B/tests/progs/privsep_probe" ] || { echo "not built: $B/tests/progs/privsep_probe"; exit 1; }
if ! getent passwd "$USER_" >/dev/null; then
	useradd --system --no-create-home --home-dir /nonexistent --shell /usr/sbin/nologin \
		"$USER_" || { echo "cannot create user $USER_"; exit 1; }
	CREATED_USER=1
fi
cleanup_all() {
	[ -n "${NPID:-}" ] && kill "$NPID" 2>/dev/null
	ed_cleanup
	[ -n "$CREATED_USER" ] && userdel "$USER_" 2>/dev/null
	true
}
trap cleanup_all EXIT
UID_=$(id -u "$USER_")

IF=$(ed_ifname p)
ed_conf
sed -i "/^\[server\]/a user = $USER_" "$T/e.conf"
# SIGHUP reloads the tokens as the user: they must be readable by it (docs/security.md).
chmod 0711 "$T"
chown "$USER_" "$T/admin" "$T/prov" "$T/tt"

# systemd's notification socket, played by python: it records each message with the sender's
# pid (SCM_CREDENTIALS), as systemd does for NotifyAccess=main.
cat >"$T/notify.py" <<'PY'
import socket, struct, sys
s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
s.bind(sys.argv[1])
s.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
out = open(sys.argv[2], "a", buffering=1)
while True:
    msg, anc, _, _ = s.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = 0
    for level, typ, data in anc:
        if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
            pid = struct.unpack("iII", data[:12])[0]
    for line in msg.decode().split("\n"):
        out.write("%d %s\n" % (pid, line))
PY
ip netns exec "$NS" python3 "$T/notify.py" "$T/notify.sock" "$T/notify.log" &
NPID=$!
for _ in $(seq 50); do [ -S "$T/notify.sock" ] && break; sleep 0.1; done

status_of() { # PID FIELD
	awk -v f="$2:" '$1 == f { $1 = ""; sub(/^ /, ""); print }' "/proc/$1/status"
}
child_of() { # PID -> the enrolld child
	ps -o pid=,comm= --ppid "$1" | awk '$2 == "enrolld" { print $1 }'
}

start() {
	NOTIFY_SOCKET=$T/notify.sock WATCHDOG_USEC=2000000 ed_start
	PARENT=$ED_PID
	CHILD=$(child_of "$PARENT")
}
: >"$T/notify.log"
# systemd's default soft limit of open files is 1024: below what enrolld wants
# (max_connections + 256), so the network process raises it after the drop (setrlimit
# through the seccomp allow-list; the VM test found it refused).
ulimit -Sn 512
start

echo "== two processes"
check "the network process exists (parent $PARENT, child ${CHILD:-none})" [ -n "$CHILD" ]
check "parent: uid 0" [ "$(status_of "$PARENT" Uid | awk '{print $2}')" = 0 ]
check "parent: CAP_NET_ADMIN effective" \
	bash -c "(( 0x$(status_of "$PARENT" CapEff) & (1 << 12) ))"
check "child: uid, euid, saved and fs uid are $USER_ ($UID_)" \
	[ "$(status_of "$CHILD" Uid | tr -s '\t ' ' ')" = "$UID_ $UID_ $UID_ $UID_" ]
check "child: no groups but its own" \
	[ "$(status_of "$CHILD" Groups | tr -d ' ')" = "$(id -g "$USER_")" ]
for f in CapInh CapPrm CapEff CapBnd CapAmb; do
	check "child: $f empty" [ "$(status_of "$CHILD" $f)" = 0000000000000000 ]
done
check "child: NoNewPrivs 1" [ "$(status_of "$CHILD" NoNewPrivs)" = 1 ]
check "child: Seccomp 2 (filter)" [ "$(status_of "$CHILD" Seccomp)" = 2 ]
check "parent: no seccomp" [ "$(status_of "$PARENT" Seccomp)" = 0 ]
nofile=$(awk '/^Max open files/ { print $4 }' "/proc/$CHILD/limits")
check "child raised its open files limit from 512 to 1280 (max_connections + 256): $nofile" \
	[ "$nofile" = 1280 ]
# seccomp is per thread: the store's writer thread exists before the drop (TSYNC).
unfiltered() { # PID -> the threads without the filter or no_new_privs
	local t
	for t in /proc/"$1"/task/*; do
		[ "$(awk '$1 == "Seccomp:" { print $2 }' "$t/status")" = 2 ] &&
			[ "$(awk '$1 == "NoNewPrivs:" { print $2 }' "$t/status")" = 1 ] ||
			echo "${t##*/}"
	done
}
check "child: every thread ($(ls /proc/"$CHILD"/task | wc -l)) filtered, no_new_privs" \
	[ -z "$(unfiltered "$CHILD")" ]

echo "== systemd hears from the main pid"
for _ in $(seq 50); do grep -q READY=1 "$T/notify.log" && break; sleep 0.1; done
check "READY=1 sent, by the parent ($PARENT)" grep -q "^$PARENT READY=1" "$T/notify.log"
check "nothing sent by the child" bash -c "! grep -q '^$CHILD ' $T/notify.log"
check "WATCHDOG=1 pings, by the parent" ed_until 10 grep -q "^$PARENT WATCHDOG=1" "$T/notify.log"

echo "== a tenant and a device through the channel"
check "tenant created" [ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"ps\",\"prefix\":\"10.98.0.0/28\",\"interface\":\"$IF\",\"listen_port\":35150,\"endpoint\":\"192.0.2.1:35150\"}")" = 201 ]
SERVER_PUB=$(body .server_public_key)
check "a tenant outside wireguard.tenant_address_space is refused by the API" \
	[ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"wide\",\"prefix\":\"0.0.0.0/1\",\"interface\":\"${IF}w\",\"listen_port\":35151,\"endpoint\":\"192.0.2.1:35151\"}")" = 400 ]
check "  saying why" grep -q tenant_address_space "$T/body"
check "  and not created" [ "$(api GET /v1/tenants/wide "$ADMIN")" = 404 ]
for _ in $(seq 50); do [ -S "/var/run/wireguard/$IF.sock" ] && break; sleep 0.1; done
check "its wireguard-go is the privileged process's child" \
	bash -c "ps -o comm= --ppid $PARENT | grep -q wireguard-go"
KEY=$T/db/keys/ps.key
check "its private key is root's, mode 0600" [ "$(stat -c '%U %a' "$KEY")" = "root 600" ]
check "the public key the API gives is the interface's" \
	[ "$("$WGCTL" --backend uapi show "$IF" | head -n 1 | cut -f2)" = "$SERVER_PUB" ]
api POST /v1/tenants/ps/tokens "$ADMIN" '{"uses":1}' >/dev/null
TOK=$(body .token)
ed_swtpm dev
OUT=$(ed_enroll dev --token "$TOK")
check "a device enrolled" [ "$(jq -r .http_status <<<"$OUT")" = 200 ]
ID=$(jq -r .response.device_id <<<"$OUT")
ADDR=$(jq -r .response.address <<<"$OUT")
check "its peer is on the interface with its /32 ($ADDR)" \
	bash -c "$(declare -f ed_peers); WGCTL=$WGCTL; ed_peers $IF | grep -q '${ADDR%/32}/32'"
on_interface() { api GET "/v1/devices/$ID" "$ADMIN" >/dev/null && [ "$(body .on_interface)" = true ]; }
check "the health monitor sees it on the interface (STATS channel)" ed_until 10 on_interface
check "revoked" [ "$(api POST "/v1/devices/$ID/revoke" "$ADMIN" '{}')" = 200 ]
check "its peer is gone from the interface" \
	bash -c "$(declare -f ed_peers); WGCTL=$WGCTL; ! ed_peers $IF | grep -q '${ADDR%/32}/32'"

echo "== what the network process cannot do (the same drop, --privsep-selftest)"
"$ENROLLD" -c "$T/e.conf" --privsep-selftest "$KEY" >"$T/selftest" 2>&1
check "selftest: everything refused (exit 0)" [ $? = 0 ]
cat "$T/selftest" | sed 's/^/    /'
check "cannot read the tenant key" grep -q '^open key file: Permission denied' "$T/selftest"
check "cannot open a netlink socket" \
	grep -q '^netlink socket: Operation not permitted' "$T/selftest"
check "cannot exec" grep -q '^execve: Operation not permitted' "$T/selftest"
check "cannot become root again" grep -q '^setuid(0): Operation not permitted' "$T/selftest"
# The allow-list: refused although the old deny-list let them through.
for what in 'AF_ALG socket' memfd_create fork; do
	check "allow-list: $what refused" grep -q "^$what: Operation not permitted" "$T/selftest"
done
check "allow-list: AF_INET6 and AF_UNIX sockets still allowed" \
	[ "$(grep -c '^AF_\(INET6\|UNIX\) socket: allowed' "$T/selftest")" = 2 ]

echo "== interfaces that are not the tenant's"
FIF=$(ed_ifname f)
ip netns exec "$NS" wireguard-go "$FIF" >>"$T/wgforeign.log" 2>&1
for _ in $(seq 50); do [ -S "/var/run/wireguard/$FIF.sock" ] && break; sleep 0.1; done
"$ENROLL_DEV" genkey "$T/foreign.key" >/dev/null
"$WGCTL" --backend uapi set "$FIF" private-key "$T/foreign.key" listen-port 35170
FPUB=$("$WGCTL" --backend uapi show "$FIF" | head -n 1 | cut -f2)
n=$(grep -c 'refused a request' "$T/log")
api POST /v1/tenants "$ADMIN" "{\"name\":\"grab\",\"prefix\":\"10.97.0.0/28\",\"interface\":\"$FIF\",\"listen_port\":35171,\"endpoint\":\"192.0.2.1:35171\"}" >/dev/null
api POST /v1/tenants "$ADMIN" "{\"name\":\"grablo\",\"prefix\":\"10.96.0.0/28\",\"interface\":\"lo\",\"listen_port\":35172,\"endpoint\":\"192.0.2.1:35172\"}" >/dev/null
check "a tenant on another WireGuard interface (another key) is refused by the parent" \
	grep -q "refused a request.*interface '$FIF' exists and is not tenant 'grab''s" "$T/log"
check "a tenant on lo is refused by the parent" \
	grep -q "refused a request.*interface 'lo' exists and is not tenant 'grablo''s" "$T/log"
check "the other interface keeps its key and port" \
	[ "$("$WGCTL" --backend uapi show "$FIF" | head -n 1 | cut -f2,3)" = "$FPUB	35170" ]
check "and has no address of the tenant" bash -c "! ip -n $NS addr show dev $FIF | grep -q 10.97"
check "lo has no address of the tenant" bash -c "! ip -n $NS addr show dev lo | grep -q 10.96"
check "the tenant's own interface is unaffected" [ -S "/var/run/wireguard/$IF.sock" ]
IF2=$(ed_ifname q)
check "another tenant of its own comes up" [ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"ps2\",\"prefix\":\"10.95.0.0/28\",\"interface\":\"$IF2\",\"listen_port\":35173,\"endpoint\":\"192.0.2.1:35173\"}")" = 201 ]
nft_ifs() {
	ip netns exec "$NS" nft -j list set inet enrolld tenant_ifs |
		jq -r '.nftables[] | select(.set) | .set.elem // [] | .[]' | sort | tr '\n' ' '
}
want_ifs=$(printf '%s\n' "$IF" "$IF2" | sort | tr '\n' ' ')
check "nftables' tenant interfaces are the two tenants' only (not '$FIF', not lo): $(nft_ifs)" \
	[ "$(nft_ifs)" = "$want_ifs" ]
# From here on the reconciler asks again every 2 s for both and is refused again: expected.

echo "== signals"
n=$(grep -c 'SIGHUP: tokens reloaded' "$T/log")
kill -HUP "$PARENT"
for _ in $(seq 30); do [ "$(grep -c 'SIGHUP: tokens reloaded' "$T/log")" -gt "$n" ] && break; sleep 0.1; done
check "SIGHUP to the parent reloads the child's tokens (as $USER_)" \
	[ "$(grep -c 'SIGHUP: tokens reloaded' "$T/log")" -gt "$n" ]
check "still serving" [ "$(api GET /healthz "")" = 200 ]

echo "== the network process dies"
kill -9 "$CHILD"
wait "$PARENT"
rc=$?
ED_PID=
check "the privileged process exits with status 1" [ "$rc" = 1 ]
check "and says why" grep -q "network process (pid $CHILD) was killed by signal 9" "$T/log"
check "and left its wireguard-go serving the tenant (a crash: tunnels stay up)" \
	[ -S "/var/run/wireguard/$IF.sock" ]

echo "== the privileged process dies"
start
check "restarted: the new privileged process adopted that wireguard-go" \
	grep -q "tenant 'ps': adopted the wireguard-go" "$T/log"
kill -9 "$PARENT"
wait "$PARENT" 2>/dev/null
ED_PID=
for _ in $(seq 50); do kill -0 "$CHILD" 2>/dev/null || break; sleep 0.1; done
check "the network process exits too" bash -c "! kill -0 $CHILD 2>/dev/null"

echo "== forbidden messages to the privileged process (tests/progs/privsep_probe)"
# The probe is enrolld's privsep code with a network side that sends raw requests: the
# parent is the real one, on a real wireguard-go interface.
PIF=$(ed_ifname r)
mkdir -p "$T/probekeys"
# (its exit status is the privileged process's: 1, the network side stopped unasked)
ip netns exec "$NS" "$B/tests/progs/privsep_probe" /var/run/wireguard "$T/probekeys" "$PIF" \
	>"$T/probe.out" 2>"$T/probe.log"
check "every forbidden request refused, the allowed one applied (13 lines as expected)" \
	[ "$(grep -c ': as expected' "$T/probe.out")" = 13 ]
sed 's/^/    /' "$T/probe.out"
check "the privileged process logged each refusal (10)" \
	[ "$(grep -c 'refused a request of the network process' "$T/probe.log")" = 10 ]
check "and named the address it refused" grep -q "10.91.0.5/32 is not a device address" "$T/probe.log"
check "the interface holds the allowed peer only" \
	[ "$("$WGCTL" --backend uapi show "$PIF" | tail -n +2 | cut -f4)" = 10.90.0.7/32 ]

echo "== SIGTERM"
start
ed_stop
check "SIGTERM: the privileged process exits 0" [ "$ED_RC" = 0 ]
check "the network process is gone" bash -c "! kill -0 $CHILD 2>/dev/null"
check "and the wireguard-go with them (a stop, not a crash)" [ ! -S "/var/run/wireguard/$IF.sock" ]
other_refusals() {
	grep 'refused a request' "$T/log" | grep -v "interface '$FIF' exists" |
		grep -v "interface 'lo' exists"
}
check "no refused request but those for '$FIF' and 'lo'" [ -z "$(other_refusals)" ]
ed_done
