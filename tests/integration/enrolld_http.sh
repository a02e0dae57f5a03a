#!/bin/bash
# enrolld's daemon shell and HTTP layer, against the real binary on loopback:
# -n config check (good, unknown key, group-readable token file), /healthz, /metrics,
# JSON errors for unknown paths, wrong methods, bad tokens and oversized bodies,
# SIGHUP reload, clean SIGTERM shutdown.
set -u
B=${B:-build}
ENROLLD=$B/enrolld
[ -x "$ENROLLD" ] || { echo "enrolld not built"; exit 1; }
T=$(mktemp -d)
PID=
cleanup() {
	[ -n "$PID" ] && kill "$PID" 2>/dev/null && wait "$PID" 2>/dev/null
	rm -rf "$T"
}
trap cleanup EXIT
fails=0
check() { # description, command...
	local d=$1
	shift
	if "$@"; then echo "ok   $d"; else echo "FAIL $d"; fails=$((fails + 1)); fi
}

echo "admin-token-0123456789abcdef" >"$T/admin"
chmod 600 "$T/admin"
cat >"$T/e.conf" <<CONF
[server]
listen = 127.0.0.1
port = 0
max_body = 1024
[state]
db_path = $T/db
[auth]
admin_token_file = $T/admin
CONF

check "-n accepts a good config" "$ENROLLD" -n -c "$T/e.conf"
printf '[server]\nprot = 1\n[auth]\nadmin_token_file=%s/admin\n' "$T" >"$T/bad.conf"
check "-n rejects an unknown key, naming file and line" \
	bash -c "! '$ENROLLD' -n -c '$T/bad.conf' 2>'$T/err' && grep -q 'bad.conf:2: unknown key' '$T/err'"
printf '[server]\nlisten = 0.0.0.0\n[auth]\nadmin_token_file=%s/admin\n' "$T" >"$T/plain.conf"
check "-n refuses plain HTTP on a non-loopback address" \
	bash -c "! '$ENROLLD' -n -c '$T/plain.conf' 2>/dev/null"
cp "$T/admin" "$T/open"
chmod 644 "$T/open"
sed "s|$T/admin|$T/open|" "$T/e.conf" >"$T/open.conf"
check "-n refuses a group/other-readable token file" \
	bash -c "! '$ENROLLD' -n -c '$T/open.conf' 2>/dev/null"
check "--help exits 0" "$ENROLLD" --help
# the shipped example must stay a valid configuration (paths pointed into the temp dir)
# (its server.user, _enrolld, made by the Debian package: another unprivileged user where
# this host has none)
EXUSER=_enrolld
getent passwd "$EXUSER" >/dev/null || EXUSER=nobody
sed -e "s|^admin_token_file = .*|admin_token_file = $T/admin|" -e "s|^ek_ca_dir = .*|#|" \
	-e "s|^user = _enrolld$|user = $EXUSER|" \
	"$(dirname "$0")/../../etc/enrolld.conf.example" >"$T/example.conf"
check "-n accepts etc/enrolld.conf.example" "$ENROLLD" -n -c "$T/example.conf"

"$ENROLLD" -d -c "$T/e.conf" 2>"$T/log" &
PID=$!
PORT=
for _ in $(seq 50); do
	PORT=$(sed -n 's/.*port \([0-9]*\) (http).*/\1/p' "$T/log")
	[ -n "$PORT" ] && break
	sleep 0.1
done
[ -n "$PORT" ] || { echo "enrolld did not start"; cat "$T/log"; exit 1; }
U=http://127.0.0.1:$PORT

code() { curl -s -o "$T/body" -w '%{http_code}' "$@"; }
errcode() { jq -r .error.code "$T/body"; }

check "GET /healthz is 200 ok" bash -c "[ \"\$(curl -s $U/healthz | jq -r .status)\" = ok ]"
check "unknown path is 404 not_found" bash -c "[ $(code $U/v1/nope) = 404 ] && [ \$(jq -r .error.code $T/body) = not_found ]"
check "wrong method is 405" bash -c "[ $(code -X DELETE $U/healthz) = 405 ]"
check "bad bearer token is 401 with WWW-Authenticate" \
	bash -c "curl -s -D- -o /dev/null -H 'Authorization: Bearer nope' $U/healthz | grep -qi '^www-authenticate: Bearer' "
check "oversized body is 413 body_too_large" \
	bash -c "[ \$(head -c 4096 /dev/zero | tr '\\0' a | curl -s -o $T/body -w '%{http_code}' -X POST --data-binary @- $U/healthz) = 413 ] && [ \$(jq -r .error.code $T/body) = body_too_large ]"
check "error bodies are application/json" \
	bash -c "curl -s -D- -o /dev/null $U/nope | grep -qi '^content-type: application/json'"
check "/metrics has request latency histograms" \
	bash -c "curl -s $U/metrics | grep -q 'enrolld_http_request_duration_seconds_count{route=\"/healthz\",code=\"2xx\"}'"
kill -HUP "$PID"
for _ in $(seq 50); do grep -q "tokens reloaded" "$T/log" && break; sleep 0.1; done
check "SIGHUP reloads the tokens" grep -q "tokens reloaded" "$T/log"
check "still serving after SIGHUP" bash -c "[ $(code $U/healthz) = 200 ]"
kill -TERM "$PID"
wait "$PID"
rc=$?
PID=
check "SIGTERM: clean exit 0" [ "$rc" = 0 ]
check "SIGTERM: logged" grep -q "shutting down" "$T/log"

echo "$fails check(s) failed"
[ "$fails" = 0 ]
