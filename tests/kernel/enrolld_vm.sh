#!/bin/sh
# enrolld on the kernel WireGuard backend, inside the kernel test's VM (tests/kernel/run.sh
# puts it in the initramfs as /bin/enrolld_vm.sh, with enrolld, wgctl, kenroll, nft and the
# shared libraries they need). busybox sh; runs as root in the VM's only network namespace.
#
#   1. enrolld (backend = kernel, HTTP on 127.0.0.1) on an empty store; two tenants created
#      through the REST API: each gets a kernel wireguard link with its key and listen port,
#      its address, up, the route of its prefix in its VRF's table, enslaved to its VRF;
#      nftables holds the inter-tenant forward drop. SIGTERM: exit 0, links stay.
#   2. a stray peer is put on one interface; with enrolld stopped, kenroll writes devices
#      into the store (the way an enrollment commits them); enrolld started again:
#      reconciliation puts every active device's peer (key, /32) on the kernel interfaces
#      and removes the stray one.
#   3. one device revoked through the REST API: its peer is gone from the kernel interface
#      when the response arrives (reconcile_interval is an hour, so that is the revocation's
#      own doing), the others stay. SIGTERM: exit 0.
#
# Prints "ok - ..." / "not ok - ..." per check and ends with "KTEST: N passed, N failed".
# Exit: 0 if nothing failed.
#
# Environment: KT_NFT=1 if nft is in the VM (else nftables = no, and it says so);
# KT_IP2=1 if iproute2's ip is in the VM as ip2 (for ip -d link, master, route ... vrf).

W=/tmp/ed
DB=$W/db
LOG=$W/log
PORT=8080
U=http://127.0.0.1:$PORT
ADMIN=admin-token-0123456789abcdef
PASSED=0
FAILED=0
ED_PID=

ok() { echo "ok - $*"; PASSED=$((PASSED + 1)); }
nok() { echo "not ok - $*"; FAILED=$((FAILED + 1)); }
check() { # DESCRIPTION COMMAND...
	d=$1
	shift
	if "$@"; then ok "$d"; else nok "$d"; fi
}

finish() {
	if [ "$FAILED" != 0 ] && [ -s "$LOG" ]; then
		echo "# enrolld log (tail):"
		tail -n 30 "$LOG" | sed 's/^/#   /'
	fi
	echo "KTEST: $PASSED passed, $FAILED failed"
	[ "$FAILED" = 0 ]
	exit $?
}

# api METHOD PATH [BODY]: HTTP status on stdout, body in $W/body (busybox wget: no other
# method than GET and POST, which is all this needs).
api() {
	rm -f "$W/body" "$W/hdr"
	if [ "$1" = POST ]; then
		wget -q -S -O "$W/body" --header "Authorization: Bearer $ADMIN" \
			--header 'Content-Type: application/json' --post-data "${3:-}" "$U$2" \
			2>"$W/hdr"
	else
		wget -q -S -O "$W/body" --header "Authorization: Bearer $ADMIN" "$U$2" 2>"$W/hdr"
	fi
	sed -n 's/^ *HTTP\/1\.[01] \([0-9][0-9][0-9]\).*/\1/p' "$W/hdr" | tail -n1
}

# a string member of the last JSON answer (flat, good enough for these answers)
jstr() {
	sed -n "s/.*\"$1\": *\"\\([^\"]*\\)\".*/\\1/p" "$W/body" | head -n1
}

ed_start() {
	before=$(grep -c 'listening on' "$LOG" 2>/dev/null)
	enrolld -d -c "$W/e.conf" 2>>"$LOG" &
	ED_PID=$!
	i=0
	while [ $i -lt 300 ]; do
		[ "$(grep -c 'listening on' "$LOG")" -gt "${before:-0}" ] && return 0
		kill -0 "$ED_PID" 2>/dev/null || break
		sleep 0.1
		i=$((i + 1))
	done
	return 1
}

ed_stop() { # sets ED_RC, ED_LAST
	ED_LAST=$ED_PID
	kill "$ED_PID"
	wait "$ED_PID"
	ED_RC=$?
	ED_PID=
}

# peers of IF as "pubkey allowed-ips" lines, sorted
peers() {
	wgctl --backend kernel show "$1" | tail -n +2 | cut -f1,4 | sort
}

has_line() { # FILE TEXT: TEXT is one of FILE's lines
	grep -qxF "$2" "$1"
}

mkdir -p "$W" && chmod 700 "$W"
echo "$ADMIN" >"$W/admin" && chmod 600 "$W/admin"
ip link set lo up
IP2=${KT_IP2:-0}
NFT=no
if [ "${KT_NFT:-0}" = 1 ]; then
	NFT=yes
else
	echo "# nft is not in the VM: nftables = no, the forward drop is not checked"
fi
cat >"$W/e.conf" <<EOF
[server]
listen = 127.0.0.1
port = $PORT
[state]
db_path = $DB
[auth]
admin_token_file = $W/admin
[wireguard]
backend = kernel
reconcile_interval = 3600
vrf = yes
vrf_table_base = 100000
nftables = $NFT
[health]
interval = 5
EOF

# ---- 1. tenants through the REST API ----
if ed_start; then ok "enrolld (backend kernel) starts on an empty store"; else
	nok "enrolld (backend kernel) starts on an empty store"
	finish
fi
check "GET /healthz answers 200" [ "$(api GET /healthz)" = 200 ]

# tenant NAME IF PORT NET
for t in "ka wgka 51821 10.77.0" "kb wgkb 51822 10.78.0"; do
	set -- $t
	name=$1 ifn=$2 port=$3 net=$4
	vrf=vrf$port
	table=$((100000 + port))
	st=$(api POST /v1/tenants "{\"name\":\"$name\",\"prefix\":\"$net.0/24\",\"interface\":\"$ifn\",\"listen_port\":$port,\"endpoint\":\"192.0.2.1:$port\"}")
	check "tenant $name created through the REST API (HTTP $st)" [ "$st" = 201 ]
	spub=$(jstr server_public_key)
	wgctl --backend kernel show "$ifn" >"$W/show" 2>&1
	check "$name: $ifn is a kernel WireGuard device (wgctl --backend kernel show)" \
		[ "$(wc -l <"$W/show")" -ge 1 ]
	check "$name: $ifn listens on $port" [ "$(head -n1 "$W/show" | cut -f3)" = "$port" ]
	check "$name: $ifn has the server key the API returned ($spub)" \
		[ -n "$spub" -a "$(head -n1 "$W/show" | cut -f2)" = "$spub" ]
	# the kernel's own view (sysfs), then iproute2's (ip2: busybox ip has no -d, master, vrf)
	check "$name: $ifn is a wireguard link (sysfs DEVTYPE)" \
		grep -qx 'DEVTYPE=wireguard' "/sys/class/net/$ifn/uevent"
	check "$name: $ifn is up (IFF_UP in sysfs flags)" \
		sh -c "[ \$((\$(cat /sys/class/net/$ifn/flags) & 1)) = 1 ]"
	check "$name: $ifn's master is $vrf (sysfs)" \
		[ "$(basename "$(readlink "/sys/class/net/$ifn/master")")" = "$vrf" ]
	check "$name: $vrf exists and is up (sysfs flags)" \
		sh -c "[ \$((\$(cat /sys/class/net/$vrf/flags) & 1)) = 1 ]"
	if [ "$IP2" = 1 ]; then
		f0=$FAILED
		ip2 -d link show "$ifn" >"$W/link" 2>&1
		ip2 -d link show "$vrf" >"$W/vrf" 2>&1
		ip2 route show vrf "$vrf" >"$W/route" 2>&1
		check "$name: ip -d link: $ifn is wireguard, UP, master $vrf, a vrf_slave" sh -c \
			"grep -q '<.*,UP[,>].* master $vrf ' $W/link && grep -q '^ *wireguard ' $W/link && grep -q 'vrf_slave table $table' $W/link"
		check "$name: ip -d link: $vrf is a vrf on table $table" grep -q "vrf table $table" "$W/vrf"
		check "$name: ip link show master $vrf lists $ifn (only)" \
			sh -c "[ \"\$(ip2 -o link show master $vrf | cut -d: -f2 | tr -d ' ')\" = $ifn ]"
		check "$name: ip route show vrf $vrf: $net.0/24 dev $ifn" \
			grep -q "^$net.0/24 dev $ifn " "$W/route"
		check "$name: ip -4 addr: $ifn has $net.1/24" \
			sh -c "ip2 -4 addr show dev $ifn | grep -q 'inet $net.1/24 '"
		check "$name: no route of $net.0/24 in the main table" \
			sh -c "! ip2 route show table main | grep -q '^$net.0/24'"
		if [ "$FAILED" != "$f0" ]; then # show what ip said
			sed 's/^/#   /' "$W/link" "$W/vrf" "$W/route"
		fi
	else
		echo "# iproute2's ip is not in the VM: ip -d link / master / vrf checks skipped"
		check "$name: $ifn has $net.1/24" sh -c "ip -4 addr show dev $ifn | grep -q 'inet $net.1/24'"
	fi
done
if [ "$NFT" = yes ]; then
	nft list table inet enrolld >"$W/nft" 2>&1
	for p in "wgka wgkb" "wgkb wgka"; do
		set -- $p
		check "nftables: forward from $1 to another tenant interface is dropped" \
			grep -q "iifname \"$1\" oifname @tenant_ifs oifname != \"$1\" counter packets [0-9]* bytes [0-9]* drop" "$W/nft"
	done
	nft list set inet enrolld tenant_ifs 2>&1 | tr -d ' \t\n' >"$W/nftset"
	check "nftables: the tenant_ifs set holds exactly wgka and wgkb" \
		grep -qE 'elements=\{("wgka","wgkb"|"wgkb","wgka")\}' "$W/nftset"
	check "nftables: the forward chain hooks forward" grep -q 'type filter hook forward' "$W/nft"
fi
ed_stop
check "SIGTERM: enrolld exits 0" [ "$ED_RC" = 0 ]
check "the kernel interfaces stay after shutdown (devices keep their tunnels)" \
	sh -c "ip link show wgka >/dev/null 2>&1 && ip link show wgkb >/dev/null 2>&1"

# ---- 2. devices in the store, reconciliation on start ----
STRAY=$(wgctl genkey | wgctl pubkey)
wgctl --backend kernel set wgka peer "$STRAY" allowed-ips 10.77.0.200/32
peers wgka >"$W/peers.stray"
check "a stray peer is on wgka before the restart" grep -q "^$STRAY	10.77.0.200/32\$" "$W/peers.stray"
kenroll "$DB" ka 4 kb 3 >"$W/devs" 2>"$W/kenroll.err"
check "kenroll wrote 7 devices into the store" [ "$(wc -l <"$W/devs")" = 7 ]
[ -s "$W/kenroll.err" ] && sed 's/^/# kenroll: /' "$W/kenroll.err"
if ed_start; then ok "enrolld starts again on the populated store"; else
	nok "enrolld starts again on the populated store"
	finish
fi
for ifn in wgka wgkb; do
	case $ifn in wgka) tn=ka ;; *) tn=kb ;; esac
	peers "$ifn" >"$W/peers.$ifn"
	awk -v t="$tn" '$2 == t { print $3 "\t" $4 "/32" }' "$W/devs" | sort >"$W/want.$ifn"
	check "reconciliation: $ifn holds exactly the $(wc -l <"$W/want.$ifn") active devices of $tn (key, /32)" \
		cmp -s "$W/peers.$ifn" "$W/want.$ifn"
done
check "reconciliation removed the stray peer from wgka" sh -c "! grep -q '$STRAY' $W/peers.wgka"
check "the log reports the reconciliation of wgka" \
	grep -q "reconciled 'wgka' with the store: 4 peer(s) added, 1 removed" "$LOG"

# ---- 3. revocation through the REST API ----
set -- $(awk '$2 == "ka" { print $1, $3; exit }' "$W/devs")
rid=$1 rkey=$2
st=$(api POST "/v1/devices/$rid/revoke" "")
peers wgka >"$W/peers.after"
check "POST /v1/devices/$rid/revoke answers 200 (HTTP $st)" [ "$st" = 200 ]
check "the revoked device's peer is gone from wgka when the response arrives" \
	sh -c "! grep -q '$rkey' $W/peers.after"
check "the other 3 peers of wgka stay" [ "$(wc -l <"$W/peers.after")" = 3 ]
peers wgkb >"$W/peers.b2"
check "wgkb still holds its 3 peers" cmp -s "$W/peers.b2" "$W/want.wgkb"
check "GET /v1/devices/$rid says revoked" \
	sh -c "[ \"\$(wget -q -O - --header 'Authorization: Bearer $ADMIN' $U/v1/devices/$rid | sed -n 's/.*\"state\": *\"\\([a-z]*\\)\".*/\\1/p')\" = revoked ]"
ed_stop
check "SIGTERM: enrolld exits 0 again" [ "$ED_RC" = 0 ]
check "enrolld logged a clean shutdown" grep -q 'shutting down' "$LOG"
check "no enrolld process is left" sh -c "! kill -0 $ED_LAST 2>/dev/null"
finish
