#!/bin/bash
# The fleet dashboard (/ui/, docs/dashboard.md) in a real browser, against a real fleet: the
# topology of fleet_e2e.sh (tests/integration/fleet_lib.sh: enrolld over HTTPS with userspace
# WireGuard, three gateways with swtpm, edge-keyd and wireguard-go in their own namespaces,
# keepalive 2 s, health tick 1 s), and headless Chromium (Debian's chromium) driven by
# puppeteer-core (tests/browser/dashboard.mjs) from inside the control plane's namespace.
#
# The browser signs in with the admin token, sees the three gateways with their addresses,
# watches g1's row turn down when its link is cut and up when it returns without reloading,
# reconnects to the event stream with Last-Event-ID after enrolld is killed and restarted,
# revokes g2 through the confirmation dialog (this script checks with the API that it really
# is revoked and its peer gone), reinstates it, shows the page at phone width, signs in with
# acme's tenant token and sees acme only, and is told politely that a provisioning token may
# not read the fleet. No console error and no CSP violation may appear. Screenshots go to
# $B/test-logs/dashboard/. The dashboard's routes are also checked with curl (headers, HEAD,
# 304, 404, 405, the /ui redirect).
#
# puppeteer-core is installed with `npm ci` from tests/browser/package-lock.json into
# $B/browser (kept between runs; done again when the lock file changes). Without chromium,
# node or npm (or the npm registry) the test is skipped, except in CI (CI=true), where it fails.
set -u
. "$(dirname "$0")/fleet_lib.sh"
CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
SHOTS=$B/test-logs/dashboard
MODS=$B/browser

unavailable() {
	if [ "${CI:-}" = true ]; then
		echo "FAIL: $1 (in CI this test must run: scripts/install-deps.sh installs chromium, nodejs, npm)"
		exit 1
	fi
	echo "skip: $1"
	exit 77
}
[ -x "$CHROMIUM" ] || unavailable "no $CHROMIUM (Debian's chromium package)"
command -v node >/dev/null && command -v npm >/dev/null || unavailable "no node or npm"
fl_require
fl_init dashboard

passed=0 failed=0
check() { # DESCRIPTION CMD...
	local d=$1
	shift
	if "$@"; then
		echo "ok   $d"
		passed=$((passed + 1))
	else
		echo "FAIL $d"
		failed=$((failed + 1))
	fi
}
finish() {
	if [ "$failed" != 0 ] && [ -n "$FL_T" ]; then
		for f in "$FL_T/enrolld.log" "$FL_T"/g*/edge-keyd.log; do
			[ -s "$f" ] && { echo "--- ${f#"$FL_T"/} (tail)"; tail -n 20 "$f"; }
		done
	fi
	fl_cleanup
	echo "$passed passed, $failed failed"
	[ "$failed" = 0 ]
	exit $?
}
fatal() {
	echo "FAIL $*"
	failed=$((failed + 1))
	finish
}

# ---- puppeteer-core, from the lock file, cached under $B/browser
want=$(sha256sum "$FL_ROOT/tests/browser/package-lock.json" | cut -d' ' -f1)
if [ "$(cat "$MODS/.lock-sha256" 2>/dev/null)" != "$want" ] || [ ! -d "$MODS/node_modules/puppeteer-core" ]; then
	rm -rf "$MODS"
	mkdir -p "$MODS"
	cp "$FL_ROOT/tests/browser/package.json" "$FL_ROOT/tests/browser/package-lock.json" "$MODS/"
	# --ignore-scripts: nothing may run at install time (puppeteer-core downloads no browser anyway)
	if ! (cd "$MODS" && npm ci --no-audit --no-fund --ignore-scripts >npm.log 2>&1); then
		tail -n 5 "$MODS/npm.log"
		rm -rf "$MODS"
		unavailable "npm ci failed (no npm registry?)"
	fi
	echo "$want" >"$MODS/.lock-sha256"
fi

# ---- the fleet
echo "== the fleet: control plane and three gateways"
fl_topology_up >/dev/null || fatal "topology"
fl_cp_setup || fatal "control plane setup"
# a tenant token for acme
mkdir -m 700 "$FL_T/cp/tt"
(umask 077; echo "acme-$(openssl rand -hex 16)" >"$FL_T/cp/tt/acme")
ACME=$(cat "$FL_T/cp/tt/acme")
PROV=$(cat "$FL_T/cp/prov.token")
sed -i "/^\[auth\]/a tenant_tokens_dir = $FL_T/cp/tt" "$FL_T/cp/enrolld.conf"
fl_cp_start || fatal "enrolld did not start"
fl_tenants_create || fatal "tenants"
for i in 1 2 3; do
	fl_gw_setup "$i" || fatal "g$i: swtpm and configuration"
	fl_ekd "$i" provision >/dev/null 2>>"$FL_T/g$i/provision.log" ||
		fatal "g$i: provision: $(tail -n 3 "$FL_T/g$i/provision.log")"
	fl_ekd "$i" enroll 2>>"$FL_T/g$i/enroll.log" || fatal "g$i: enroll: $(tail -n 3 "$FL_T/g$i/enroll.log")"
	fl_gw_start "$i" || fatal "g$i: edge-keyd run"
done
for i in 1 2 3; do
	took=$(fl_wait_health "$i" up 20)
	check "g$i ($(fl_gw_addr "$i")) is up ($took ms)" test "$took" != timeout
done
fl_api POST /v1/tenants/acme/tokens '{"uses":5,"label":"dashboard test"}' >/dev/null
check "an enrollment token for acme (counted by the dashboard)" test "$(fl_status)" = 201

# ---- the routes, with curl
echo "== /ui/ with curl"
cc() { fl_cp curl -s --cacert "$FL_T/cp/ca.pem" "$@"; }
hdr() { tr -d '\r' | sed -n "s/^$1: //Ip" | head -n1; } # NAME, on headers
cc -D "$FL_T/h" -o "$FL_T/page" "$FL_URL/ui/"
check "GET /ui/: 200 text/html" test "$(head -n1 "$FL_T/h" | cut -d' ' -f2) $(hdr Content-Type <"$FL_T/h")" = \
	"200 text/html; charset=utf-8"
check "  the page has no inline script, style or handler, and nothing from elsewhere" \
	bash -c "! grep -qiE '<script>|<style|style=|https?://|\\<on[a-z]+=' $FL_T/page"
CSP=$(hdr Content-Security-Policy <"$FL_T/h")
check "  Content-Security-Policy: $CSP" test "$CSP" = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
ETAG=$(hdr ETag <"$FL_T/h")
check "  nosniff, no-referrer, no-cache and an ETag ($ETAG)" test \
	"$(hdr X-Content-Type-Options <"$FL_T/h") $(hdr Referrer-Policy <"$FL_T/h") $(hdr Cache-Control <"$FL_T/h")" = \
	"nosniff no-referrer no-cache" -a -n "$ETAG"
check "  If-None-Match with its ETag: 304" test "$(cc -o /dev/null -w '%{http_code}' -H "If-None-Match: $ETAG" "$FL_URL/ui/")" = 304
check "  ... also weak and in a list: 304" test \
	"$(cc -o /dev/null -w '%{http_code}' -H "If-None-Match: \"0000\", W/$ETAG" "$FL_URL/ui/")" = 304
check "  another ETag: 200 with the page" test \
	"$(cc -o /dev/null -w '%{http_code} %{size_download}' -H 'If-None-Match: "0000"' "$FL_URL/ui/")" = \
	"200 $(stat -c %s "$FL_T/page")"
cc -I "$FL_URL/ui/app.js" >"$FL_T/h"
check "HEAD /ui/app.js: 200 text/javascript" test \
	"$(head -n1 "$FL_T/h" | cut -d' ' -f2) $(hdr Content-Type <"$FL_T/h")" = "200 text/javascript; charset=utf-8"
check "GET /ui/app.css: text/css" test "$(cc -o /dev/null -w '%{content_type}' "$FL_URL/ui/app.css")" = "text/css; charset=utf-8"
check "GET /ui/nope.js: 404 with a JSON error" test \
	"$(cc -o "$FL_T/b" -w '%{http_code}' "$FL_URL/ui/nope.js") $(jq -r .error.code "$FL_T/b")" = "404 not_found"
check "POST /ui/: 405" test "$(cc -o /dev/null -w '%{http_code}' -X POST "$FL_URL/ui/")" = 405
check "GET /ui: 308 to ui/" test "$(cc -o /dev/null -w '%{http_code} %{redirect_url}' "$FL_URL/ui")" = "308 $FL_URL/ui/"

# ---- the browser, and what it asks this script to do
echo "== the dashboard in Chromium"
SPKI=$(openssl x509 -in "$FL_T/cp/tls.pem" -pubkey -noout | openssl pkey -pubin -outform der |
	openssl dgst -sha256 -binary | base64)
DEVS=$(for i in 1 2 3; do
	jq -n --argjson gw "$i" --arg id "$(fl_gw_dev "$i")" --arg t "${FL_GW_TENANT[$i]}" \
		--arg a "$(fl_gw_enrollment "$i" .address)" '{gw: $gw, id: $id, tenant: $t, address: $a}'
done | jq -sc .)
mkdir -p "$SHOTS"
rm -f "$SHOTS"/*.png
REQ=$FL_T/req REP=$FL_T/rep
mkfifo "$REQ" "$REP"
# HOME: Chromium writes caches there; TMPDIR: its profile (removed by the driver)
mkdir -p "$FL_T/home"
ip netns exec "$FL_NS_CP" env HOME="$FL_T/home" TMPDIR="$FL_T" CHROMIUM="$CHROMIUM" \
	DASH_URL="$FL_URL/ui/" DASH_SPKI="$SPKI" DASH_ADMIN="$FL_ADMIN" DASH_TENANT="$ACME" \
	DASH_TENANT_NAME=acme DASH_PROV="$PROV" DASH_DEVICES="$DEVS" DASH_REQ="$REQ" \
	DASH_REP="$REP" DASH_OUT="$SHOTS" DASH_MODULES="$MODS" \
	timeout 600 node "$FL_ROOT/tests/browser/dashboard.mjs" >"$FL_T/browser.out" 2>&1 &
NODE_PID=$!

# g2 is revoked: the API says so and its key is off acme's interface; reinstated: its EK may
# enroll again (a second reinstate is 409 not_revoked).
revoked_ok() {
	local d
	d=$(fl_api GET "/v1/devices/$(fl_gw_dev "$1")")
	[ "$(jq -r .state <<<"$d")" = revoked ] || { echo "fail state $(jq -r .state <<<"$d")"; return; }
	fl_cp_peers "${FL_GW_TENANT[$1]}" | grep -qxF "$(fl_gw_pub "$1")" && { echo "fail peer still on the interface"; return; }
	echo ok
}
reinstated_ok() {
	fl_api POST "/v1/devices/$(fl_gw_dev "$1")/reinstate" >/dev/null
	[ "$(fl_status) $(jq -r .error.code "$FL_T/body")" = "409 not_revoked" ] && echo ok ||
		echo "fail a second reinstate answers $(fl_status) $(cat "$FL_T/body")"
}
exec 3<>"$REQ" # read-write: opening never blocks, and reads wait for the driver's lines
while kill -0 "$NODE_PID" 2>/dev/null; do
	read -r -t 1 cmd arg <&3 || continue
	case $cmd in
	cut) fl_link_cut "$arg" && ans=ok || ans="fail ip link" ;;
	restore) fl_link_restore "$arg" && ans=ok || ans="fail ip link" ;;
	cp-restart) fl_cp_kill9 && fl_cp_start && ans=ok || ans="fail enrolld did not come back" ;;
	check-revoked) ans=$(revoked_ok "$arg") ;;
	check-reinstated) ans=$(reinstated_ok "$arg") ;;
	*) ans="fail unknown request '$cmd'" ;;
	esac
	# the driver reads the answer at once; if it died meanwhile, do not wait for it forever
	timeout 10 bash -c 'echo "$1" >"$2"' _ "$ans" "$REP"
done
exec 3>&-
wait "$NODE_PID"
rc=$?
sed 's/^/  | /' "$FL_T/browser.out"
grep -q '^ok  ' "$FL_T/browser.out" || echo "  (the browser driver reported nothing)"
check "the browser checks pass (tests/browser/dashboard.mjs, exit $rc)" test "$rc" = 0
for s in dashboard-desktop.png dashboard-desktop-g1-down.png dashboard-phone.png dashboard-tenant.png; do
	check "screenshot $s saved" test -s "$SHOTS/$s"
done
finish
