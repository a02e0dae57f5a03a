#!/bin/bash
# Write the seed corpus of fuzz_http (tests/fuzz/corpus/http): one valid request per route of
# `enrolld --routes`, with the tokens and ids fuzz_http's seeded store accepts, a few
# pipelined sequences (add then list then delete), and odd encodings. A device CA and its
# CRL are made with openssl each time this runs (their ids are the server's: read back from
# a list in the same seed, or taken from the certificate here). Run from the top directory.
set -euo pipefail
out=tests/fuzz/corpus/http
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$out"
rm -f "$out"/*

ADMIN='Authorization: Bearer fuzz-admin-token'
PROV='Authorization: Bearer fuzz-provisioning-token'
TENANT='Authorization: Bearer fuzz-acme-token'
EK_ID=$(printf fuzz-ek | sha256sum | cut -d' ' -f1)
TOK_ID=$(printf fuzz-enroll-token | sha256sum | cut -d' ' -f1)
WG=$(printf fuzz-wg2 | sha256sum | cut -d' ' -f1 | xxd -r -p | base64 -w0)

# A device CA and a CRL of it (JSON strings: newlines escaped).
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=fuzz-device-ca \
	-days 36500 -keyout "$tmp/ca.key" -out "$tmp/ca.pem" \
	-addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign \
	2>/dev/null
CA_ID=$(openssl x509 -in "$tmp/ca.pem" -outform DER | sha256sum | cut -d' ' -f1)
mkdir -p "$tmp/db/newcerts" && : >"$tmp/db/index.txt" && echo 01 >"$tmp/db/crlnumber"
cat >"$tmp/ca.cnf" <<CNF
[ca]
default_ca = d
[d]
database = $tmp/db/index.txt
crlnumber = $tmp/db/crlnumber
default_md = sha256
default_crl_days = 36500
CNF
openssl ca -config "$tmp/ca.cnf" -gencrl -keyfile "$tmp/ca.key" -cert "$tmp/ca.pem" \
	-out "$tmp/crl.pem" 2>/dev/null
# a CRL's id is the SHA-256 of its issuer Name's DER (CN=fuzz-device-ca)
CRL_ID=b8b0a31e05c19714d539e29342f15190fd4f170c4372aa34c2938182fc1bc167
CA_PEM=$(awk '{printf "%s\\n", $0}' "$tmp/ca.pem")
CRL_PEM=$(awk '{printf "%s\\n", $0}' "$tmp/crl.pem")

# req METHOD PATH AUTH-HEADER [BODY [CONTENT-TYPE]]: one request, on stdout
req() {
	local m=$1 p=$2 auth=$3 body=${4-} ct=${5-application/json}
	printf '%s %s HTTP/1.1\r\nHost: cp.example\r\n' "$m" "$p"
	[ -n "$auth" ] && printf '%s\r\n' "$auth"
	if [ -n "$body" ]; then
		printf 'Content-Type: %s\r\nContent-Length: %d\r\n\r\n%s' "$ct" "${#body}" "$body"
	else
		printf '\r\n'
	fi
}
seed() { cat >"$out/$1"; }

# one per route
req GET /healthz '' | seed healthz
req GET /metrics '' | seed metrics
req POST /v1/enroll/challenge '' "{\"ek_cert\":\"MIIB\",\"ek_public\":\"AAEAAQ==\",\"ak_public\":\"AAEAAQ==\",\"wg_public_key\":\"$WG\",\"token\":\"fuzz-enroll-token\",\"tenant\":\"acme\"}" | seed enroll_challenge
req POST /v1/enroll/complete '' '{"session":"00112233445566778899aabbccddeeff","secret":"AAAA","quote":"AAAA","signature":"AAAA","pcrs":"AAAA"}' | seed enroll_complete
req POST /v1/tenants "$ADMIN" '{"name":"beta","prefix":"10.78.0.0/24","prefix6":"fd78::/64","interface":"wg-beta","listen_port":51821,"endpoint":"cp.example:51821","keepalive":25,"pcr_policy":[{"index":7,"sha256":"0000000000000000000000000000000000000000000000000000000000000000"}]}' | seed tenant_create
req GET /v1/tenants "$ADMIN" | seed tenant_list
req GET /v1/tenants/acme "$TENANT" | seed tenant_get
req POST /v1/tenants/acme/registrations "$PROV" "{\"ek_id\":\"$TOK_ID\",\"label\":\"line 4\"}" | seed registration_add
req GET /v1/tenants/acme/registrations "$TENANT" | seed registration_list
req DELETE /v1/tenants/acme/registrations/$EK_ID "$ADMIN" | seed registration_remove
req POST /v1/tenants/acme/tokens "$TENANT" '{"uses":3,"expires_in":3600,"label":"batch 7"}' | seed token_create
req GET /v1/tenants/acme/tokens "$ADMIN" | seed token_list
req DELETE /v1/tenants/acme/tokens/$TOK_ID "$TENANT" | seed token_revoke
req GET '/v1/devices?tenant=acme&state=active' "$ADMIN" | seed device_list
req GET /v1/devices/1 "$TENANT" | seed device_get
req POST /v1/devices/1/revoke "$ADMIN" | seed device_revoke
{ req POST /v1/devices/1/revoke "$ADMIN"; req POST /v1/devices/1/reinstate "$ADMIN"; } | seed device_reinstate
req GET '/v1/events?after=0' "$ADMIN" | seed events
{ printf 'GET /v1/events HTTP/1.1\r\nHost: x\r\n%s\r\nLast-Event-ID: 0\r\n\r\n' "$TENANT"; } | seed events_last_id
req POST /v1/peer '' "{\"public_key\":\"$WG\"}" | seed peer_enroll
req GET /v1/peer '' | seed peer_get
req PUT /v1/tenants/acme/policy "$ADMIN" '{"require_tpm":true}' | seed tenant_policy
req POST /v1/tenants/acme/device-cas "$ADMIN" "{\"certificate\":\"$CA_PEM\",\"label\":\"factory\"}" | seed device_ca_add
req GET /v1/tenants/acme/device-cas "$TENANT" | seed device_ca_list
{ req POST /v1/tenants/acme/device-cas "$ADMIN" "{\"certificate\":\"$CA_PEM\"}";
  req DELETE /v1/tenants/acme/device-cas/$CA_ID "$ADMIN"; } | seed device_ca_remove
req POST /v1/tenants/acme/revoked-serials "$TENANT" '{"serial":"01:ab:cd","label":"lost"}' | seed serial_revoke
req GET /v1/tenants/acme/revoked-serials "$ADMIN" | seed serial_list
{ req POST /v1/tenants/acme/revoked-serials "$ADMIN" '{"serial":"01abcd"}';
  req DELETE /v1/tenants/acme/revoked-serials/01abcd "$ADMIN"; } | seed serial_unrevoke
{ req POST /v1/tenants/acme/device-cas "$ADMIN" "{\"certificate\":\"$CA_PEM\"}";
  req POST /v1/tenants/acme/device-crls "$ADMIN" "{\"crl\":\"$CRL_PEM\"}"; } | seed device_crl_add
req GET /v1/tenants/acme/device-crls "$TENANT" | seed device_crl_list
{ req POST /v1/tenants/acme/device-cas "$ADMIN" "{\"certificate\":\"$CA_PEM\"}";
  req POST /v1/tenants/acme/device-crls "$ADMIN" "{\"crl\":\"$CRL_PEM\"}";
  req GET /v1/tenants/acme/device-crls "$ADMIN";
  req DELETE /v1/tenants/acme/device-crls/$CRL_ID "$ADMIN"; } | seed device_crl_remove
req GET /ui '' | seed ui_redirect
req HEAD /ui '' | seed ui_redirect_head
req GET /ui/ '' | seed ui_index
req HEAD /ui/ '' | seed ui_index_head
req GET /ui/app.js '' | seed ui_asset
req HEAD /ui/app.css '' | seed ui_asset_head

# odd encodings and refusals
req GET /v1/devices/1%00x "$ADMIN" | seed nul_escape
req GET /v1/tenants/ac%2Fme "$ADMIN" | seed slash_escape
req GET '/v1/devices?tenant=ac%2Fme&state=%41ctive' "$ADMIN" | seed query_escape
req GET /v1/tenants/acme%zz "$ADMIN" | seed bad_escape
req POST /v1/tenants "$ADMIN" 'name=beta' 'application/x-www-form-urlencoded' | seed bad_content_type
req POST /v1/tenants "$ADMIN" '{"name":"beta"}' 'Application/JSON ; charset=utf-8' | seed json_params
printf 'POST /v1/tenants HTTP/1.1\r\nHost: x\r\n%s\r\nContent-Type: application/json\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n{}' "$ADMIN" | seed two_content_types
printf 'POST /v1/tenants/acme/tokens HTTP/1.1\r\nHost: x\r\n%s\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{"use\r\nb\r\ns":2,"label\r\n6\r\n":"c"}\r\n0\r\n\r\n' "$TENANT" | seed chunked
# fuzz_http's body limit is 8 KiB
big=$(head -c 9000 /dev/zero | tr '\0' 'a')
req POST /v1/tenants "$ADMIN" "{\"name\":\"$big\"}" | seed too_large
printf 'POST /v1/tenants HTTP/1.1\r\nHost: x\r\n%s\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n{"name":"x"}' "$ADMIN" | seed short_body
req GET /v1/tenants 'Authorization: Basic Zm9vOmJhcg==' | seed basic_auth
req GET /v1/tenants 'Authorization: Bearer nope' | seed unknown_token
req GET /v1/tenants/beta "$TENANT" | seed other_tenant
req POST /v1/tenants "$TENANT" '{"name":"x"}' | seed forbidden_role
req PATCH /v1/tenants '' | seed method_not_allowed
req GET /nowhere '' | seed not_found
printf 'GET /healthz HTTP/1.0\r\n\r\n' | seed http10
printf 'GET http://cp.example/healthz HTTP/1.1\r\nhost: x\r\nauthorization: bearer fuzz-admin-token\r\n\r\n' | seed absolute_uri
printf 'GET /healthz HTTP/1.1\r\nHost: x\r\nX-Folded: a\r\n  b\r\n\r\n' | seed folded_header
{ req GET /healthz ''; req GET /v1/tenants "$ADMIN"; req GET /v1/devices/1 "$ADMIN"; } | seed pipelined
echo "wrote $(ls "$out" | wc -l) seeds into $out"
