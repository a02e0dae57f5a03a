#!/bin/bash
# enrolld on PostgreSQL ([state] backend = postgresql) with a throw-away server
# (tests/pg_lib.sh): the schema is made at the first start, a real TPM enrollment (challenge
# and completion: the session and its secret, sealed under the KEK, go through the
# database; test_store_pg checks that it is sealed), the device and its event are in the
# database; a restart keeps the state (the device is still there, enrolls again as the same
# device, event ids go on); without a KEK file the daemon refuses to start.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
. "$(dirname "$0")/../pg_lib.sh"
pg_test_require
ed_init pg
pg_test_start || { echo "cannot start the test PostgreSQL"; exit 1; }
psql "$PG_TEST_CONN" -qc 'CREATE DATABASE enrolld' || exit 1
DB="$PG_TEST_CONN dbname=enrolld"
sql() { psql "$DB" -Atc "$1"; }
openssl rand -hex 32 >"$T/kek"
chmod 600 "$T/kek"
IF=$(ed_ifname p)
ed_conf "[state]" "backend = postgresql" "postgresql = $DB" "kek_file = $T/kek"
ed_start
check "enrolld opened the PostgreSQL store" grep -q "database 'postgresql' open" "$T/log"
check "the connection string is not logged" bash -c "! grep -q 'dbname=enrolld' '$T/log'"
check "every migration was applied once (versions 1..n)" [ "$(sql 'SELECT count(*) = max(version) AND count(*) = count(DISTINCT version) AND min(version) = 1 FROM schema_migrations')" = t ]
check "nothing was written under db_path" [ ! -e "$T/db/data.mdb" ]

check "a tenant is created (201)" [ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"pg\",\"prefix\":\"10.93.0.0/28\",\"interface\":\"$IF\",\"listen_port\":35140,\"endpoint\":\"192.0.2.1:35140\"}")" = 201 ]
api POST /v1/tenants/pg/tokens "$ADMIN" '{"uses":10}' >/dev/null
TOK=$(body .token)
check "the tenant is a row of the database" [ "$(sql "SELECT ifname FROM tenants WHERE name = 'pg'")" = "$IF" ]

ed_swtpm d1
OUT=$(ed_enroll d1 --token "$TOK" --session-out "$T/d1.session")
check "d1 enrolls (200)" [ "$(jq -r .http_status <<<"$OUT")" = 200 ]
D1=$(jq -r .response.device_id <<<"$OUT")
check "with the lowest free address" [ "$(jq -r .response.address <<<"$OUT")" = 10.93.0.2/32 ]
check "the device is a row of the database" [ "$(sql "SELECT count(*) FROM devices WHERE id = $D1 AND state = 1")" = 1 ]
check "its session is used and its secret gone" \
	[ "$(sql 'SELECT count(*) FROM sessions WHERE used AND secret IS NULL')" = 1 ]
check "the token has one use less" [ "$(sql "SELECT uses_left FROM tokens")" = 9 ]
SEQ=$(sql 'SELECT event_seq FROM meta')
check "an enrolled event was written" [ "$SEQ" -ge 1 ]
D1_PUB=$(api GET "/v1/devices/$D1" "$ADMIN" >/dev/null; body .public_key)
check "the peer is on the interface" bash -c "$WGCTL --backend uapi show $IF | grep -q '$D1_PUB'"

echo "== restart"
ed_stop
check "SIGTERM stops enrolld with status 0" [ "$ED_RC" = 0 ]
ed_start
check "the device is still there" [ "$(api GET "/v1/devices/$D1" "$ADMIN")" = 200 ]
check "with its key" [ "$(body .public_key)" = "$D1_PUB" ]
check "and back on the interface" bash -c "$WGCTL --backend uapi show $IF | grep -q '$D1_PUB'"
OUT=$(ed_enroll d1 --token "$TOK")
check "d1 enrolls again as the same device" \
	[ "$(jq -r '"\(.http_status) \(.response.device_id) \(.response.address)"' <<<"$OUT")" = "200 $D1 10.93.0.2/32" ]
check "revoking d1 (200)" [ "$(api POST "/v1/devices/$D1/revoke" "$ADMIN")" = 200 ]
check "event ids went on after the restart" [ "$(sql 'SELECT event_seq FROM meta')" -gt "$SEQ" ]
check "the revocation is in the database" [ "$(sql "SELECT count(*) FROM revocations WHERE device = $D1")" = 1 ]

echo "== no key-encryption key"
ed_stop
sed -i '/^kek_file/d' "$T/e.conf"
ip netns exec "$NS" "$ENROLLD" -d -c "$T/e.conf" 2>"$T/nokek.log" &
pid=$!
for _ in $(seq 100); do kill -0 $pid 2>/dev/null || break; sleep 0.1; done
kill $pid 2>/dev/null
wait $pid
rc=$?
check "refused at start (exit $rc)" [ "$rc" != 0 ]
check "saying why" grep -q "kek_file" "$T/nokek.log"
ed_done
