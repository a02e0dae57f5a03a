#!/bin/bash
# enrollctl against a real enrolld over HTTPS (its own CA, pinned with --ca): every command,
# its table and its --json checked against the API's own answer (curl); paging through the
# cursor; the event stream with and without --follow; exit codes for a refused call (401,
# 404, 409), no server, an unpinned or wrong CA, a config file others may read; the token
# never in argv. Devices enroll by X.509 (POST /v1/peer), the cheap way to get a fleet.
. "$(dirname "$0")/x509_lib.sh"
set -u

EC=$(cd "$(dirname "$B/enrollctl")" && pwd)/enrollctl
[ -x "$EC" ] || { echo "not built: $EC"; exit 1; }
xq_init enrollctl
xq_conf
TOK=acme-tenant-token-0123456789
ed_tenant_token acme "$TOK"
ed_start
CPURL=https://10.77.0.1:$PORT
printf '%s\n' "$TOK" >"$T/acme.tok"
chmod 600 "$T/acme.tok"
mkdir -p "$T/home"

# enrollctl as the admin (token from a file), in the control plane's namespace
ec() {
	ip netns exec "$NS" env -u ENROLLCTL_URL -u ENROLLCTL_TOKEN -u ENROLLCTL_CA \
		-u XDG_CONFIG_HOME HOME="$T/home" "$EC" --url "$CPURL" --ca "$T/cp-ca.pem" --token-file "$T/admin" "$@"
}
# bare: no flags, no environment but what the caller gives
ecbare() {
	ip netns exec "$NS" env -u ENROLLCTL_URL -u ENROLLCTL_TOKEN -u ENROLLCTL_CA \
		-u XDG_CONFIG_HOME HOME="$T/home" "$@"
}
# the exit status of a command (its output to $T/out, $T/err)
rc() { "$@" >"$T/out" 2>"$T/err"; echo $?; }
# CMD exits with CODE and says PATTERN on stderr ("" for anything)
exits() { # CODE PATTERN CMD...
	local want=$1 pat=$2 got
	shift 2
	"$@" >"$T/out" 2>"$T/err"
	got=$?
	[ "$got" = "$want" ] || { echo "exit $got, not $want: $(head -3 "$T/err")"; return 1; }
	[ -z "$pat" ] || grep -q -- "$pat" "$T/err" || { echo "no '$pat' in: $(cat "$T/err")"; return 1; }
}
jqe() { jq -e "$@" >/dev/null; }
# the API's answer to GET PATH as the admin, sorted keys
api_json() { xapi GET "$1" "$ADMIN" >/dev/null; jq -S . "$T/body"; }
same_json() { # FILE_A FILE_B
	diff <(jq -S . "$1") <(jq -S . "$2") >"$T/diff" || { head -20 "$T/diff"; return 1; }
}
# --json output of enrollctl equals the API's GET PATH
json_is_api() { # PATH enrollctl-args...
	local p=$1
	shift
	ec --json "$@" >"$T/ec.json" 2>"$T/err" || { cat "$T/err"; return 1; }
	xapi GET "$p" "$ADMIN" >/dev/null
	same_json "$T/ec.json" "$T/body"
}
# column N of the table row whose column 1 is KEY
cell() { awk -v k="$1" -v n="$2" 'NR > 1 && $1 == k { print $n }' "$T/out"; }

echo "== tenants"
IFA=$(xq_ifname a) IFB=$(xq_ifname b)
ec tenants create acme --prefix 10.61.0.0/24 --interface "$IFA" --listen-port 41011 \
	--endpoint 10.77.0.1:41011 --keepalive 5 >"$T/out"
check "tenants create (table: the new tenant's members)" grep -qE '^name +acme$' "$T/out"
check "  ... as given" grep -qE '^keepalive +5$' "$T/out"
ec --json tenants create globex --prefix 10.62.0.0/24 --interface "$IFB" --listen-port 41012 \
	--endpoint 10.77.0.1:41012 >"$T/g.json"
check "tenants create --json is the API's 201 answer" \
	jqe '.name == "globex" and .prefix == "10.62.0.0/24" and .interface_up' "$T/g.json"
check "tenants --json equals GET /v1/tenants" json_is_api /v1/tenants tenants
check "tenants show --json equals GET /v1/tenants/acme" json_is_api /v1/tenants/acme tenants show acme
ec tenants >"$T/out"
check "tenants table: header and one row per tenant" \
	[ "$(head -1 "$T/out" | awk '{print $1, $2, $3}')" = "NAME PREFIX ADDRESS" -a "$(wc -l <"$T/out")" = 3 ]
xapi GET /v1/tenants "$ADMIN" >/dev/null
for t in acme globex; do
	check "tenants table row $t: prefix, address, interface, port as the API" \
		[ "$(cell "$t" 2) $(cell "$t" 3) $(cell "$t" 4) $(cell "$t" 5)" = \
		"$(body ".tenants[] | select(.name == \"$t\") | \"\(.prefix) \(.address) \(.interface) \(.listen_port)\"")" ]
done
ec tenants policy acme --require-tpm no >/dev/null
check "tenants policy: require_tpm false in the API" \
	[ "$(api_json /v1/tenants/acme | jq -r .require_tpm)" = false ]
ec tenants show acme >"$T/out"
check "tenants show: one member a line" grep -qE '^require_tpm +false$' "$T/out"
check "a tenant that exists already: exit 1 and the server's code" \
	[ "$(rc ec tenants create acme --prefix 10.63.0.0/24 --interface x --listen-port 41013 \
		--endpoint 10.77.0.1:41013)" = 1 ]
check "  ... the code 'conflict' on stderr" grep -q conflict "$T/err"
check "tenants create without --prefix: exit 2 (usage), no request" \
	[ "$(rc ec tenants create zeta --interface x)" = 2 ]

echo "== device CAs and X.509 devices"
check "device-cas add" [ "$(rc ec device-cas add --tenant acme --label factory-a "$T/fa/ca.crt")" = 0 ]
ec --json device-cas add --tenant acme "$T/fb/ca.crt" >"$T/ca.json"
check "device-cas add --json is the API's answer" jqe '.subject | test("factory B")' "$T/ca.json"
check "device-cas --json equals the API" json_is_api /v1/tenants/acme/device-cas device-cas --tenant acme
ec device-cas --tenant acme >"$T/out"
CAID=$(jq -r .id "$T/ca.json")
check "device-cas table: both CAs, label shown" \
	[ "$(wc -l <"$T/out")" = 3 -a "$(cell "$CAID" 2)" = acme ]
check "  ... with the label" grep -q factory-a "$T/out"
check "device-cas remove" [ "$(rc ec device-cas remove --tenant acme "$CAID")" = 0 ]
check "  ... gone from the API" \
	[ "$(api_json /v1/tenants/acme/device-cas | jq '.device_cas | length')" = 1 ]
declare -A DEV
for d in d1 d2 d3 d4; do
	xq_device "$T/fa" "$d"
	[ "$(peer POST "$d" "{\"public_key\":\"$(wg genkey | wg pubkey)\"}" '?tenant=acme')" = 200 ] ||
		{ echo "FAIL $d did not enroll: $(cat "$T/body")"; fails=$((fails + 1)); }
	DEV[$d]=$(body .device_id)
done
EK1=$(api_json "/v1/devices/${DEV[d1]}" | jq -r .ek_id)

echo "== registrations (and the GATEWAY column: a registration's label)"
EKX=$(printf 'e%.0s' $(seq 64))
check "registrations add --ek-id --label" \
	[ "$(rc ec registrations add --tenant acme --ek-id "$EKX" --label spare)" = 0 ]
# the fleet table names a device by the label its EK was registered with (TPM devices);
# an X.509 device's identity is registered here only to see that join
xapi POST /v1/tenants/acme/registrations "$ADMIN" "{\"ek_id\":\"$EK1\",\"label\":\"gw-one\"}" >/dev/null
check "registrations --json equals the API" json_is_api /v1/tenants/acme/registrations registrations --tenant acme
ec registrations --tenant acme >"$T/out"
check "registrations table: EK id and label" [ "$(cell acme 3 | sort | tr '\n' ' ')" = "gw-one spare " ]
check "registrations remove" [ "$(rc ec registrations remove --tenant acme "$EKX")" = 0 ]
check "  ... gone from the API" \
	[ "$(api_json /v1/tenants/acme/registrations | jq '[.registrations[].ek_id] | index("'"$EKX"'")')" = null ]
check "registrations remove again: exit 1 (404 not_found)" \
	exits 1 not_found ec registrations remove --tenant acme "$EKX"
head -c 300 /dev/urandom >"$T/ekpub.bin"
check "registrations add --ek-public sends the file as base64 (a garbage key is refused)" \
	[ "$(rc ec registrations add --tenant acme --ek-public "$T/ekpub.bin")" = 1 ]

echo "== devices"
check "devices --json equals GET /v1/devices" json_is_api /v1/devices devices
ec devices --tenant acme >"$T/out"
check "the fleet table's header" \
	[ "$(head -1 "$T/out" | tr -s ' ')" = "DEVICE GATEWAY TENANT ADDRESS STATE LAST HANDSHAKE ATTESTATION" ]
xapi GET "/v1/devices?tenant=acme" "$ADMIN" >/dev/null
n=0
for id in $(body '.devices[].device_id'); do
	n=$((n + 1))
	want=$(body ".devices[] | select(.device_id == \"$id\") | \"\(.tenant) \(.address) \(.health) \(.attestation)\"")
	got="$(cell "$id" 3) $(cell "$id" 4) $(cell "$id" 5) $(awk -v k="$id" 'NR > 1 && $1 == k { print $NF }' "$T/out")"
	check "fleet table row $id: tenant, address, state, attestation as the API ($want)" [ "$got" = "$want" ]
done
check "fleet table: one row per device ($n)" [ "$(($(wc -l <"$T/out") - 1))" = "$n" -a "$n" = 4 ]
check "fleet table: GATEWAY is the registration label" [ "$(cell "${DEV[d1]}" 2)" = gw-one ]
check "fleet table: GATEWAY '-' without one" [ "$(cell "${DEV[d2]}" 2)" = - ]
check "fleet table: LAST HANDSHAKE '-' (never)" \
	[ "$(awk -v k="${DEV[d2]}" 'NR > 1 && $1 == k { print $6 }' "$T/out")" = - ]
ec -v --json devices --page-size 1 >"$T/paged.json" 2>"$T/err"
check "devices --page-size 1: follows the cursor through every page (4 devices)" \
	[ "$(grep -c 'GET .*/v1/devices.*limit=1:' "$T/err")" -ge 4 ]
xapi GET /v1/devices "$ADMIN" >/dev/null
check "  ... and the result equals the API's one page" same_json "$T/paged.json" "$T/body"
ec --json devices --limit 3 --page-size 2 >"$T/lim.json"
check "devices --limit 3: the first three, next_cursor to go on" \
	[ "$(jq -c '[.devices[].device_id]' "$T/lim.json")" = "$(jq -c '[.devices[:3][].device_id]' "$T/body")" \
		-a "$(jq -r .next_cursor "$T/lim.json")" = "${DEV[d3]}" ]
check "devices show --json equals GET /v1/devices/ID" json_is_api "/v1/devices/${DEV[d1]}" devices show "${DEV[d1]}"
ec devices show "${DEV[d1]}" >"$T/out"
check "devices show: address line" \
	grep -qE "^address +$(api_json "/v1/devices/${DEV[d1]}" | jq -r .address)\$" "$T/out"
check "devices revoke" [ "$(rc ec devices revoke "${DEV[d2]}")" = 0 ]
check "  ... revoked in the API" [ "$(api_json "/v1/devices/${DEV[d2]}" | jq -r .state)" = revoked ]
check "devices revoke again: exit 1, already_revoked" \
	exits 1 already_revoked ec devices revoke "${DEV[d2]}"
check "devices --state revoked --json equals the API's filter" \
	json_is_api "/v1/devices?state=revoked" devices --state revoked
ec devices --state revoked >"$T/out"
check "devices --state revoked: the one row" \
	[ "$(wc -l <"$T/out")" = 2 -a "$(cell "${DEV[d2]}" 5)" = revoked ]
ec --json devices reinstate "${DEV[d2]}" >"$T/out"
check "devices reinstate --json: reinstated" jqe '.reinstated == true' "$T/out"
check "an unknown device: exit 1, not_found" exits 1 not_found ec devices show 999
check "  ... --json prints the server's error on stdout" \
	exits 1 "" ec --json devices show 999
check "  ... (that error)" jqe '.error.code == "not_found"' "$T/out"

echo "== tokens"
ec --json tokens create --tenant acme --uses 3 --expires-in 3600 --label batch7 >"$T/tok.json"
check "tokens create --json: the token, once" jqe '.token | test("^et_[0-9a-f]{64}$")' "$T/tok.json"
TID=$(jq -r .id "$T/tok.json")
check "tokens --json equals the API (no token values)" json_is_api /v1/tenants/acme/tokens tokens --tenant acme
check "  ... which never carries a value" [ "$(grep -c et_ "$T/ec.json")" = 0 ]
ec tokens create --tenant acme >"$T/out" 2>"$T/err"
check "tokens create (table): the token line" grep -qE '^token +et_' "$T/out"
check "  ... and the warning it is shown once" grep -q 'shown this once' "$T/err"
ec tokens --tenant acme >"$T/out"
check "tokens table: id, uses left, label" \
	[ "$(cell "$TID" 2) $(cell "$TID" 3) $(cell "$TID" 4)" = "acme batch7 3" ]
check "tokens revoke" [ "$(rc ec tokens revoke --tenant acme "$TID")" = 0 ]
check "  ... revoked in the API" \
	[ "$(api_json /v1/tenants/acme/tokens | jq -r ".tokens[] | select(.id == \"$TID\") | .revoked")" = true ]

echo "== revoked serials"
check "revoked-serials add" [ "$(rc ec revoked-serials add --tenant acme --label lost 0a1b2c)" = 0 ]
check "revoked-serials --json equals the API" \
	json_is_api /v1/tenants/acme/revoked-serials revoked-serials --tenant acme
ec revoked-serials --tenant acme >"$T/out"
SER=$(api_json /v1/tenants/acme/revoked-serials | jq -r '.revoked_serials[0].serial')
check "revoked-serials table: serial, tenant, label" [ "$(cell "$SER" 2) $(cell "$SER" 3)" = "acme lost" ]
check "revoked-serials remove" [ "$(rc ec revoked-serials remove --tenant acme "$SER")" = 0 ]
check "  ... gone" [ "$(api_json /v1/tenants/acme/revoked-serials | jq '.revoked_serials | length')" = 0 ]
check "a bad serial: exit 1, invalid_serial" \
	exits 1 invalid_serial ec revoked-serials add --tenant acme xyz

echo "== events"
ip netns exec "$NS" curl -s -m 2 -H "Authorization: Bearer $ADMIN" --cacert "$T/cp-ca.pem" \
	--resolve "cp:$PORT:10.77.0.1" "$U/v1/events?after=0" | sed -n 's/^data: //p' >"$T/api-events"
ec --json events >"$T/ec-events"
check "events --json: the event log as the API streams it ($(wc -l <"$T/api-events") events)" \
	diff "$T/api-events" "$T/ec-events"
check "  ... which has events" [ -s "$T/api-events" ]
ec events >"$T/out"
check "events table: a row per event" [ "$(($(wc -l <"$T/out") - 1))" = "$(wc -l <"$T/api-events")" ]
check "events table: seq, type, device, tenant of the revocation" \
	grep -qE "^[0-9]+ +[0-9-]+ [0-9:]+ +revoked +${DEV[d2]} +acme\$" "$T/out"
LAST=$(tail -1 "$T/api-events" | jq .seq)
check "events --after N: only what came later" \
	[ "$(ec --json events --after $((LAST - 1)) | jq -s 'map(.seq)' -c)" = "[$LAST]" ]
ec --json events --follow --tenant acme >"$T/follow" 2>"$T/follow.err" &
FPID=$!
ED_BG_PIDS+=("$FPID")
sleep 1
ec devices revoke "${DEV[d3]}" >/dev/null
for _ in $(seq 50); do grep -q '"revoked"' "$T/follow" && break; sleep 0.1; done
check "events --follow: a revocation arrives live" \
	jqe --arg d "${DEV[d3]}" 'select(.type == "revoked" and .device_id == $d)' "$T/follow"
check "events --follow: still running (it follows)" kill -0 "$FPID"
EPID=$(pgrep -P "$FPID" | head -1)
ED_BG_PIDS+=("$EPID")
check "the follower is enrollctl" grep -q enrollctl "/proc/$EPID/cmdline"
check "the token is not in enrollctl's argv (what ps shows)" \
	bash -c "! tr '\\0' ' ' <'/proc/$EPID/cmdline' | grep -qF '$ADMIN'"
kill "$EPID" "$FPID" 2>/dev/null
wait "$FPID" 2>/dev/null

echo "== where the URL and token come from; exit codes"
printf 'wrong-token-0123456789\n' >"$T/bad.tok"
chmod 600 "$T/bad.tok"
check "a bad token: exit 1 (401 unauthorized)" \
	exits 1 unauthorized ecbare "$EC" --url "$CPURL" --ca "$T/cp-ca.pem" --token-file "$T/bad.tok" devices
check "no server: exit 3" \
	[ "$(rc ecbare "$EC" --url https://10.77.0.1:41999 --ca "$T/cp-ca.pem" --token-file "$T/admin" tenants)" = 3 ]
check "another CA pinned: exit 3 (TLS)" \
	[ "$(rc ecbare "$EC" --url "$CPURL" --ca "$T/fa/ca.crt" --token-file "$T/admin" tenants)" = 3 ]
check "no CA pinned: the system store does not know the control plane's CA: exit 3" \
	[ "$(rc ecbare "$EC" --url "$CPURL" --token-file "$T/admin" tenants)" = 3 ]
check "http:// to another machine is refused: exit 2" \
	[ "$(rc ecbare "$EC" --url "http://10.77.0.1:$PORT" --token-file "$T/admin" tenants)" = 2 ]
chmod 644 "$T/admin"
check "a token file others may read: exit 2" \
	[ "$(rc ecbare "$EC" --url "$CPURL" --ca "$T/cp-ca.pem" --token-file "$T/admin" tenants)" = 2 ]
chmod 600 "$T/admin"
check "there is no --token option (a token in argv shows in ps): exit 2" \
	[ "$(rc ecbare "$EC" --url "$CPURL" --token "$ADMIN" tenants)" = 2 ]
check "the environment: ENROLLCTL_URL, ENROLLCTL_TOKEN, ENROLLCTL_CA" \
	[ "$(rc ecbare ENROLLCTL_URL="$CPURL" ENROLLCTL_TOKEN="$ADMIN" ENROLLCTL_CA="$T/cp-ca.pem" "$EC" tenants)" = 0 ]
mkdir -p "$T/home/.config"
printf '[enrollctl]\nurl = %s\ntoken_file = %s\nca = %s\n' "$CPURL" "$T/acme.tok" "$T/cp-ca.pem" \
	>"$T/home/.config/enrollctl.conf"
chmod 600 "$T/home/.config/enrollctl.conf"
check "~/.config/enrollctl.conf (0600) with a tenant token" [ "$(rc ecbare "$EC" tokens)" = 0 ]
check "  ... a tenant token needs no --tenant: its own tenant's tokens" \
	[ "$(awk 'NR > 1 { print $2 }' "$T/out" | sort -u)" = acme ]
check "  ... and sees only its own tenant's devices" \
	[ "$(ecbare "$EC" --json devices | jq -r '[.devices[].tenant] | unique | join(",")')" = acme ]
check "  ... another tenant is 403: exit 1, forbidden_tenant" \
	exits 1 forbidden_tenant ecbare "$EC" tokens --tenant globex
chmod 640 "$T/home/.config/enrollctl.conf"
check "a config file the group may read is refused: exit 2" exits 2 'chmod 600' ecbare "$EC" tenants
printf '[enrollctl]\nurl = %s\ntoken = %s\nca = %s\n' "$CPURL" "$ADMIN" "$T/cp-ca.pem" >"$T/c.conf"
chmod 600 "$T/c.conf"
check "--config FILE with the token in it" [ "$(rc ecbare "$EC" --config "$T/c.conf" tenants)" = 0 ]
check "an admin token sees two tenants: tokens without --tenant is a usage error (2)" \
	[ "$(rc ecbare "$EC" --config "$T/c.conf" tokens)" = 2 ]
printf '[enrollctl]\nurl = %s\ntokn = x\n' "$CPURL" >"$T/typo.conf"
chmod 600 "$T/typo.conf"
check "a typo in the config file: exit 2, the key named" \
	exits 2 tokn ecbare "$EC" --config "$T/typo.conf" tenants
check "no URL anywhere: exit 2" [ "$(rc ecbare HOME=/nonexistent "$EC" tenants)" = 2 ]
check "--help and COMMAND --help: exit 0" \
	bash -c "'$EC' --help | grep -q revoked-serials && '$EC' tokens --help | grep -q 'tokens create'"
check "--version" bash -c "'$EC' --version | grep -qE '^enrollctl [0-9]'"
check "an unknown command: exit 2" [ "$(rc "$EC" nodes)" = 2 ]
check "docs/enrollctl.md: no token on a command line in its examples" \
	bash -c "! grep -nE -- '--token[ =]|ENROLLCTL_TOKEN=[^ ]* +enrollctl|Bearer [a-z0-9]' '$ED_ROOT/docs/enrollctl.md'"

echo "== bash completion"
comp() { # WORDS... -> COMPREPLY
	bash -c '. "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _enrollctl; echo "${COMPREPLY[*]}"' \
		_ "$ED_ROOT/enrollctl/enrollctl.bash-completion" "$@"
}
check "completion: commands" [ "$(comp enrollctl dev)" = "devices device-cas" ]
check "completion: verbs" [ "$(comp enrollctl --json devices "")" = "list show revoke reinstate" ]
check "completion: --state values" [ "$(comp enrollctl devices --state "")" = "active revoked up down never" ]
check "completion: a verb's options" grep -qw -- --uses <(comp enrollctl tokens create --)

ed_done
