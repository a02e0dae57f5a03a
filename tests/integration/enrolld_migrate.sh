#!/bin/bash
# enrolld --migrate-to (docs/state.md, "Moving between LMDB and PostgreSQL"): a fleet enrolled
# for real on LMDB (swtpm devices, one revoked) is copied into a throw-away PostgreSQL
# (tests/pg_lib.sh) while enrolld is stopped (refused while it runs), and enrolld started on
# PostgreSQL finds it as it was: the same device ids, addresses and states, the tenant's
# interface key the same (GET /v1/tenants/{name}), the event numbers going on; a new
# enrollment gets the next id and a free address. Then back into a fresh LMDB directory:
# the key files come out identical (the key went through the database sealed under the KEK),
# and a destination that is not empty is refused.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
. "$(dirname "$0")/../pg_lib.sh"
pg_test_require
ed_init migrate
pg_test_start || { echo "cannot start the test PostgreSQL"; exit 1; }
psql "$PG_TEST_CONN" -qc 'CREATE DATABASE enrolld' || exit 1
DB="$PG_TEST_CONN dbname=enrolld"
sql() { psql "$DB" -Atc "$1"; }
openssl rand -hex 32 >"$T/kek"
chmod 600 "$T/kek"
IF=$(ed_ifname m)
# LMDB, with the KEK the PostgreSQL side will need (LMDB itself does not use it)
ed_conf "[state]" "kek_file = $T/kek"
ed_start

echo "== a fleet on LMDB"
check "a tenant is created (201)" [ "$(api POST /v1/tenants "$ADMIN" \
	"{\"name\":\"mig\",\"prefix\":\"10.94.0.0/28\",\"interface\":\"$IF\",\"listen_port\":35150,\"endpoint\":\"192.0.2.1:35150\"}")" = 201 ]
api GET /v1/tenants/mig "$ADMIN" >/dev/null
SERVER_PUB=$(body .server_public_key)
check "the tenant has an interface key" [ -n "$SERVER_PUB" ] && [ "$SERVER_PUB" != null ]
check "in a key file" [ -f "$T/db/keys/mig.key" ]
api POST /v1/tenants/mig/tokens "$ADMIN" '{"uses":10}' >/dev/null
TOK=$(body .token)
for d in d1 d2; do
	ed_swtpm $d
	OUT=$(ed_enroll $d --token "$TOK")
	check "$d enrolls (200)" [ "$(jq -r .http_status <<<"$OUT")" = 200 ]
	eval "${d^^}=\$(jq -r .response.device_id <<<\"\$OUT\")"
	eval "${d^^}_ADDR=\$(jq -r .response.address <<<\"\$OUT\")"
done
check "d2 is revoked (200)" [ "$(api POST "/v1/devices/$D2/revoke" "$ADMIN")" = 200 ]
api GET "/v1/devices?limit=100" "$ADMIN" >/dev/null
BEFORE=$(jq -c '[.devices[] | {device_id, address, state, public_key, ek_id, attestation, created, updated, revoked_at}] | sort_by(.device_id)' "$T/body")
check "two devices listed, d2 revoked" \
	[ "$(jq -r 'map("\(.device_id) \(.state) \(.address)") | join(",")' <<<"$BEFORE")" = "$D1 active $D1_ADDR,$D2 revoked $D2_ADDR" ]
D1_PUB=$(jq -r ".[] | select(.device_id == \"$D1\") | .public_key" <<<"$BEFORE")
api GET /v1/tenants/mig/tokens "$ADMIN" >/dev/null
TOKENS_BEFORE=$(jq -c '.' "$T/body")

echo "== refused while enrolld runs"
"$ENROLLD" -c "$T/e.conf" --migrate-to "postgresql:$DB" 2>"$T/busy.log"
rc=$?
check "exit status 1 (got $rc)" [ "$rc" = 1 ]
check "saying enrolld has it open" grep -q "is open in process $ED_PID: stop enrolld first" "$T/busy.log"
check "nothing was written into PostgreSQL" [ "$(sql "SELECT count(*) FROM pg_tables WHERE tablename = 'devices'")" = 0 ]

echo "== LMDB -> PostgreSQL"
ed_stop
"$ENROLLD" -c "$T/e.conf" --migrate-to "postgresql:$DB" 2>"$T/mig.log"
rc=$?
cat "$T/mig.log"
check "exit status 0 (got $rc)" [ "$rc" = 0 ]
check "copied and verified equal" grep -q "copied and verified equal: 1 tenants, 2 devices" "$T/mig.log"
check "with the tenant's key" grep -q " 1 interface keys" "$T/mig.log"
check "the connection string is not logged" bash -c "! grep -q 'dbname=enrolld' '$T/mig.log'"
check "the devices are rows with their ids" [ "$(sql "SELECT string_agg(id::text, ',' ORDER BY id) FROM devices")" = "$D1,$D2" ]
check "the key is sealed in the database" [ "$(sql "SELECT count(*) FROM tenant_keys WHERE tenant = 'mig'")" = 1 ]
check "not in clear" bash -c "! psql '$DB' -Atc \"SELECT encode(sealed, 'base64') FROM tenant_keys\" | grep -qF '$(head -c 20 "$T/db/keys/mig.key")'"
SEQ=$(sql 'SELECT event_seq FROM meta')
check "the event counter came along ($SEQ)" [ "$SEQ" -ge 3 ] && [ "$(sql 'SELECT max(seq) FROM events')" = "$SEQ" ]
"$ENROLLD" -c "$T/e.conf" --migrate-to "postgresql:$DB" 2>"$T/again.log"
rc=$?
check "a second time: refused (exit $rc), the destination is not empty" \
	[ "$rc" = 1 ] && grep -q "is not empty: nothing copied" "$T/again.log"

echo "== enrolld on PostgreSQL"
cp "$T/e.conf" "$T/lmdb.conf"
ed_conf "[state]" "backend = postgresql" "postgresql = $DB" "kek_file = $T/kek"
ed_start
check "enrolld opened the PostgreSQL store" grep -q "database 'postgresql' open" "$T/log"
api GET "/v1/devices?limit=100" "$ADMIN" >/dev/null
AFTER=$(jq -c '[.devices[] | {device_id, address, state, public_key, ek_id, attestation, created, updated, revoked_at}] | sort_by(.device_id)' "$T/body")
check "the devices are listed as they were (ids, addresses, states, keys)" [ "$AFTER" = "$BEFORE" ]
api GET /v1/tenants/mig/tokens "$ADMIN" >/dev/null
check "the tokens are as they were (uses left)" [ "$(jq -c . "$T/body")" = "$TOKENS_BEFORE" ]
api GET /v1/tenants/mig "$ADMIN" >/dev/null
check "the tenant's interface public key is the same" [ "$(body .server_public_key)" = "$SERVER_PUB" ]
check "d1 is back on the interface" bash -c "[ -n '$D1_PUB' ] && $WGCTL --backend uapi show $IF | grep -q '$D1_PUB'"
ed_swtpm d3
OUT=$(ed_enroll d3 --token "$TOK")
check "d3 enrolls (200)" [ "$(jq -r .http_status <<<"$OUT")" = 200 ]
D3=$(jq -r .response.device_id <<<"$OUT")
check "with a new id after the copied ones ($D3)" [ "$D3" -gt "$D2" ]
check "and a free address ($(jq -r .response.address <<<"$OUT"))" \
	[ "$(jq -r .response.address <<<"$OUT")" = 10.94.0.4/32 ]
check "its event goes on from the copied counter" [ "$(sql "SELECT seq FROM events WHERE device = $D3")" = $((SEQ + 1)) ]

echo "== PostgreSQL -> a fresh LMDB"
ed_stop
"$ENROLLD" -c "$T/e.conf" --migrate-to "lmdb:$T/back" 2>"$T/back.log"
rc=$?
cat "$T/back.log"
check "exit status 0 (got $rc)" [ "$rc" = 0 ]
check "copied and verified equal" grep -q "copied and verified equal: 1 tenants, 3 devices" "$T/back.log"
check "the key file is identical to the original" cmp "$T/db/keys/mig.key" "$T/back/keys/mig.key"
check "mode 0600" [ "$(stat -c %a "$T/back/keys/mig.key")" = 600 ]
"$ENROLLD" -c "$T/lmdb.conf" --migrate-to "lmdb:$T/back" 2>"$T/back2.log"
rc=$?
check "into it again: refused (exit $rc)" [ "$rc" = 1 ] && grep -q "not empty" "$T/back2.log"
"$ENROLLD" -c "$T/lmdb.conf" --migrate-to "mysql:x" 2>"$T/bad.log"
rc=$?
check "an unknown destination: usage error (exit $rc)" [ "$rc" = 2 ]
ed_done
