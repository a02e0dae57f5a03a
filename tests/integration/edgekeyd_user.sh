#!/bin/bash
# edge-keyd as its own user with CAP_NET_ADMIN only (issue 12 item 1), the way
# etc/edge-keyd.service runs it: uid/gid EKD_UID (default 64000, no passwd entry needed),
# no supplementary group, CAP_NET_ADMIN in the effective, permitted, inheritable, ambient
# and bounding sets and nothing else, no_new_privs (setpriv). Everything else is real, as
# in edgekeyd_enroll.sh (cpgw_lib.sh): enrolld over HTTPS in one netns, swtpm (TCP TCTI)
# and wireguard-go in the gateway's.
# The gateway runs in a mount namespace of its own too, where /run/wireguard (wireguard-go's
# fixed socket directory; root's 0755 on the host) is a tmpfs owned by the user: what the
# unit's RuntimeDirectory=wireguard gives it.
# Checks: `provision` by root (the factory) into the user's state directory leaves files
# the user owns; the user's own `provision` reads a token file root:<its group> 0640 (and
# not one of another group); `run` as the user enrolls by itself, starts wireguard-go, the
# control plane pings the gateway's /32; the log says the uid and the capabilities;
# /proc/PID/status of edge-keyd and of the wireguard-go it spawned: Uid EKD_UID, CapEff
# exactly CAP_NET_ADMIN, NoNewPrivs 1; `rotate` by root next to the daemon keeps every file
# the user's and the tunnel up with the new key; SIGTERM removes the interface.
# Seeing it fail: EKD_USER_BREAK=nocap (no CAP_NET_ADMIN: edge-keyd refuses to run, one
# line says why), statedir (the state directory and its files root's, as an install that
# ran edge-keyd as root leaves them: edge-keyd refuses, one line names it and the chown), extracap (CAP_IPC_LOCK as well: the CapEff check fails).
set -u
B=${B:-build}
EKD=$B/edge-keyd
ENROLLD=$B/enrolld
EKD_UID=${EKD_UID:-64000}
. tests/integration/cpgw_lib.sh
cg_require "$EKD" "$ENROLLD" -- wireguard-go ip ping swtpm tpm2_getcap openssl curl jq \
	setpriv unshare nsenter
CG_FAIL=fail
cg_names eu 39000 # ports 39000-40999
T=$(mktemp -d /tmp/edgekeyd_user.XXXXXX)
PIDS=()
EKD_PID=
MNT=$T/ns/mnt
BREAK=${EKD_USER_BREAK:-}
case $BREAK in "" | nocap | statedir | extracap) ;; *) echo "unknown EKD_USER_BREAK '$BREAK'"; exit 2 ;; esac

cleanup() {
	local p
	[ -n "$EKD_PID" ] && stop_pid "$EKD_PID"
	for p in "${PIDS[@]}"; do stop_pid "$p"; done
	# the uid ran nothing before the test (checked): what runs as it now is ours, e.g. a
	# wireguard-go left behind by a killed daemon (the netns going away does not stop it)
	for p in $(pgrep -u "$EKD_UID"); do kill "$p" 2>/dev/null; done
	p=$(sock_pid "$NSC" "$SOCKDIR/$WGC.sock")
	[ -n "$p" ] && kill "$p" 2>/dev/null
	ip netns del "$NSC" 2>/dev/null
	ip netns del "$NSG" 2>/dev/null
	rm -f "$SOCKDIR/$WGC.sock"
	umount "$MNT" 2>/dev/null
	umount "$T/ns" 2>/dev/null
	[ -n "${KEEP_TMP:-}" ] && { echo "kept $T"; return; }
	rm -rf "$T"
}
trap cleanup EXIT

# in the gateway's network and mount namespaces; as the user with CAP_NET_ADMIN only
gw() { nsenter --mount="$MNT" --net="/run/netns/$NSG" --wd="$PWD" "$@"; }
CAPS=,+net_admin
[ "$BREAK" = nocap ] && CAPS=
[ "$BREAK" = extracap ] && CAPS=,+net_admin,+ipc_lock
as_user() {
	gw setpriv --reuid="$EKD_UID" --regid="$EKD_UID" --clear-groups \
		--inh-caps=-all$CAPS --ambient-caps=-all$CAPS --bounding-set=-all$CAPS \
		--no-new-privs "$@"
}
# one line of /proc/PID/status: its first value ("Uid:" gives the real uid)
status_of() { awk -v k="$2:" '$1 == k { print $2; exit }' "/proc/$1/status"; }
# the whole line, for the failure messages
status_line() { grep -E "^$2:" "/proc/$1/status" | tr -s '\t ' ' '; }

# Every id, capability set and flag a process must have: uid and gid EKD_UID in all four
# places, CAP_NET_ADMIN (bit 12, 0x1000) alone in the effective, permitted, ambient and
# bounding sets, no_new_privs.
check_confined() { # PID WHAT
	local p=$1 w=$2 l
	[ -r "/proc/$p/status" ] || fail "$w (pid $p) is gone"
	for l in Uid Gid; do
		[ "$(status_line "$p" $l)" = "$l: $EKD_UID $EKD_UID $EKD_UID $EKD_UID" ] ||
			fail "$w: $(status_line "$p" $l), not $EKD_UID everywhere"
	done
	for l in CapEff CapPrm CapAmb CapBnd; do
		[ "$(status_of "$p" $l)" = 0000000000001000 ] ||
			fail "$w: $(status_line "$p" $l), not CAP_NET_ADMIN (0000000000001000) alone"
	done
	[ "$(status_of "$p" NoNewPrivs)" = 1 ] || fail "$w: $(status_line "$p" NoNewPrivs)"
	[ -z "$(status_of "$p" Groups)" ] || fail "$w: supplementary groups $(status_line "$p" Groups)"
	echo "   $w (pid $p): $(status_line "$p" Uid); $(status_line "$p" CapEff);" \
		"$(status_line "$p" NoNewPrivs); $(status_line "$p" VmLck)"
}

step "uid $EKD_UID is nobody's here"
getent passwd "$EKD_UID" >/dev/null && { echo "skip: uid $EKD_UID exists (set EKD_UID)"; exit 77; }
pgrep -u "$EKD_UID" >/dev/null && { echo "skip: uid $EKD_UID runs processes (set EKD_UID)"; exit 77; }

step "namespaces $NSC (control plane) and $NSG (gateway), veth $VC/$VG; the gateway's mounts"
cg_topology_up
mkdir -p "$T/ns" "$SOCKDIR" && touch "$MNT" || fail "mkdir"
# a mount namespace is bound to a file on a private mount only
mount --bind "$T/ns" "$T/ns" && mount --make-private "$T/ns" || fail "private mount $T/ns"
unshare --mount="$MNT" --propagation private \
	mount -t tmpfs -o "mode=0755,uid=$EKD_UID,gid=$EKD_UID,size=1m" tmpfs /run/wireguard ||
	fail "the gateway's mount namespace with its own /run/wireguard"
[ "$(gw stat -c %u /run/wireguard)" = "$EKD_UID" ] || fail "/run/wireguard is not the user's"

step "control plane: TLS certificate, tokens, enrolld"
chmod 0755 "$T"
# the user runs its own copy: the tree may sit where it cannot enter (a clone in a 0700
# mktemp directory: CI's first run failed with "Permission denied" on build/edge-keyd)
install -m 0755 "$EKD" "$T/edge-keyd"
EKD=$T/edge-keyd
mkdir -p "$T/gw"
cg_cp_credentials "edgekeyd_user test CA"
chmod 0755 "$T/cp" # ca.pem for the user; the keys and tokens stay 0600
cg_cp_start
cg_tenant_acme 10.77.0.0/24

step "gateway: swtpm, the configuration root:$EKD_UID 0640, the state directory the user's"
swtpm_fixture_state eugw "$T/gw/tpm" || fail "fixture state"
cg_gw_swtpm "$T/gw/tpm" "$TPM_PORT" "$T/swtpm.log" || fail "swtpm"
install -d -m 0700 -o "$EKD_UID" -g "$EKD_UID" "$T/gw/state"
# the provisioning token: root:<the user's group> 0640 (what the user's second provision
# reads), and the user's own copy readable by another group (refused)
install -m 0640 -g "$EKD_UID" "$T/cp/prov.token" "$T/gw/prov.token"
install -m 0640 -o "$EKD_UID" -g $((EKD_UID + 1)) "$T/cp/prov.token" "$T/gw/prov-other.token"
conf() { # PROVISIONING_TOKEN_FILE
	cat <<EOF
[device]
state_dir = $T/gw/state
tcti = swtpm:host=127.0.0.1,port=$TPM_PORT
label = gw-$S
[server]
url = $U
ca_file = $T/cp/ca.pem
tenant = acme
provisioning_token_file = $1
[wireguard]
interface = $WGG
backend = userspace
check_interval = 1
EOF
}
conf "$T/gw/prov.token" >"$T/gw/edge-keyd.conf"
conf "$T/gw/prov-other.token" >"$T/gw/other.conf"
chgrp "$EKD_UID" "$T/gw/edge-keyd.conf" "$T/gw/other.conf"
chmod 0640 "$T/gw/edge-keyd.conf" "$T/gw/other.conf"
as_user "$EKD" -n -c "$T/gw/edge-keyd.conf" || fail "the user cannot read its configuration"

step "provision by root (the factory) into the user's state directory: the files are the user's"
EK_ID=$(gw timeout 60 "$EKD" -c "$T/gw/edge-keyd.conf" provision 2>"$T/provision.log") ||
	fail "provision"
[[ $EK_ID =~ ^[0-9a-f]{64}$ ]] || fail "provision printed '$EK_ID', not an EK id"
ls -ln "$T/gw/state"
n=$(find "$T/gw/state" -mindepth 1 | wc -l)
[ "$n" -ge 2 ] || fail "provision wrote $n files"
[ -z "$(find "$T/gw/state" -mindepth 1 ! -user "$EKD_UID")" ] ||
	fail "root's provision left files the user does not own: $(find "$T/gw/state" ! -user "$EKD_UID")"
# what an install that ran edge-keyd as root leaves
[ "$BREAK" = statedir ] && chown -R root:root "$T/gw/state"

step "the user's own provision reads a token file root:<its group> 0640, not another group's"
if [ "$BREAK" = "" ]; then
	as_user timeout 60 "$EKD" -c "$T/gw/edge-keyd.conf" provision >"$T/uprov.out" 2>"$T/uprov.log" ||
		fail "provision as the user: $(cat "$T/uprov.log")"
	[ "$(cat "$T/uprov.out")" = "$EK_ID" ] || fail "provision as the user changed the EK id"
	grep -q "kept the existing identity" "$T/uprov.log" || fail "provision as the user made a new identity"
	as_user timeout 60 "$EKD" -c "$T/gw/other.conf" provision >/dev/null 2>"$T/uother.log" &&
		fail "a token file of another group was read"
	grep -q "prov-other.token' is readable or writable by group or others" "$T/uother.log" ||
		fail "token of another group: $(cat "$T/uother.log")"
fi

step "run as uid $EKD_UID with CAP_NET_ADMIN only: enrolls, wireguard-go, the control plane pings it"
# not through as_user(): $! must be edge-keyd itself (a function in the background is a
# subshell; nsenter and setpriv exec)
nsenter --mount="$MNT" --net="/run/netns/$NSG" --wd="$PWD" \
	setpriv --reuid="$EKD_UID" --regid="$EKD_UID" --clear-groups \
	--inh-caps=-all$CAPS --ambient-caps=-all$CAPS --bounding-set=-all$CAPS --no-new-privs \
	"$EKD" -c "$T/gw/edge-keyd.conf" -d run >"$T/edge-keyd.log" 2>&1 &
EKD_PID=$!
sock_up() { gw test -S "/run/wireguard/$WGG.sock"; }
if ! wait_for 20 sock_up; then
	kill -0 "$EKD_PID" 2>/dev/null || { wait "$EKD_PID"; rc=$?; EKD_PID=; \
		fail "edge-keyd as uid $EKD_UID exited ($rc): $(grep -E "CAP_NET_ADMIN|state directory|is not readable" "$T/edge-keyd.log")"; }
	fail "edge-keyd as uid $EKD_UID did not start wireguard-go"
fi
E=$T/gw/state/enrollment.json
wait_for 20 test -s "$E" || fail "no enrollment.json"
GWA=$(jq -r .address "$E")
GWA=${GWA%/32}
ping_gw() { inc ping -c 1 -W 1 "$GWA" >/dev/null 2>&1; }
wait_for 20 ping_gw || fail "no ping from the control plane to $GWA"
echo "   the control plane pings $GWA through the tunnel"
grep -q "running as uid $EKD_UID (?), gid $EKD_UID, effective capabilities: cap_net_admin$" \
	"$T/edge-keyd.log" || fail "no uid and capabilities at start: $(grep "running as" "$T/edge-keyd.log")"
grep -q "running as root" "$T/edge-keyd.log" && fail "edge-keyd thinks it is root"

step "/proc/PID/status of edge-keyd and of its wireguard-go"
check_confined "$EKD_PID" edge-keyd
WGPID=$(sed -n "s/.*started '.* $WGG' (pid \([0-9]*\)).*/\1/p" "$T/edge-keyd.log" | tail -n1)
[ -n "$WGPID" ] || fail "no wireguard-go pid in the log"
[ "$(status_of "$WGPID" PPid)" = "$EKD_PID" ] || fail "wireguard-go $WGPID is not edge-keyd's child"
check_confined "$WGPID" wireguard-go
[ -z "$(find "$T/gw/state" -mindepth 1 ! -user "$EKD_UID")" ] ||
	fail "files in the state directory not the user's: $(ls -ln "$T/gw/state")"

step "rotate by root next to the daemon: new key, files still the user's, tunnel up"
PUB1=$(jq -r .wg_public_key "$E")
gw timeout 60 "$EKD" -c "$T/gw/edge-keyd.conf" rotate 2>"$T/rotate.log" || fail "rotate"
PUB2=$(jq -r .wg_public_key "$E")
[ "$PUB2" != "$PUB1" ] || fail "rotate kept the key"
[ -z "$(find "$T/gw/state" -mindepth 1 ! -user "$EKD_UID")" ] ||
	fail "root's rotate left files the user does not own: $(ls -ln "$T/gw/state")"
wait_for 20 ping_gw || fail "no ping after the rotation"
kill -HUP "$EKD_PID"
wait_for 5 grep -q "configuration reloaded" "$T/edge-keyd.log" || fail "no reload as the user"
check_confined "$EKD_PID" edge-keyd

step "SIGTERM: the user's edge-keyd removes the interface"
kill -TERM "$EKD_PID"
wait "$EKD_PID"
rc=$?
EKD_PID=
[ "$rc" = 0 ] || fail "edge-keyd exit status $rc"
wait_for 5 bash -c "! ip -n $NSG link show $WGG >/dev/null 2>&1" || fail "$WGG stayed"
grep -Eq "Operation not permitted|Permission denied" "$T/edge-keyd.log" &&
	fail "a call was refused: $(grep -E "Operation not permitted|Permission denied" "$T/edge-keyd.log")"

echo "PASS"
exit 0
