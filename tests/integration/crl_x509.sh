#!/bin/bash
# Revocation lists for the tenants' device CAs (the X.509 path, docs/security.md): a CRL
# added through the API takes effect with the next request (403 certificate_revoked) and
# only in its tenant; only a newer CRL replaces it; a CRL the tenant's CAs did not sign,
# an expired one and garbage are refused; removing it lifts the revocations; CRLs of
# attestation.crl_dir apply to device CAs too, reloaded on SIGHUP, and an expired one
# there fails closed for its CA (403 crl_expired, a warning in the log).
set -u
. "$(dirname "$0")/x509_lib.sh"
. "$(dirname "$0")/crl_lib.sh"
xq_init crlx
mkdir -p "$T/crl" "$T/gen"
xq_conf
sed -i "/^ek_ca_dir/a crl_dir = $T/crl" "$T/e.conf"
ed_start

xq_tenant acme 10.81.0.0/24 a 41200 >/dev/null
xq_tenant beta 10.82.0.0/24 b 41202 >/dev/null
xq_trust_ca acme "$T/fa" >/dev/null
xq_trust_ca beta "$T/fa" >/dev/null
xapi PUT /v1/tenants/acme/policy "$ADMIN" '{"require_tpm": false}' >/dev/null
xapi PUT /v1/tenants/beta/policy "$ADMIN" '{"require_tpm": false}' >/dev/null
for d in d1 d2 d3; do xq_device "$T/fa" $d; done
serial() { "$XQ_FACTORY" serial "$T/dev/$1/enroll.crt" | tr a-f A-F; }
S1=$(serial d1) S2=$(serial d2)
FA="$T/fa/ca.crt $T/fa/ca.key"
gencrl $FA "$T/gen/r2.pem" "$S2" "" "" 01
gencrl $FA "$T/gen/r12.pem" "$S1 $S2" "" "" 02
gencrl $FA "$T/gen/old.pem" "$S2" 20240101000000Z 20240108000000Z 03
gencrl "$T/fb/ca.crt" "$T/fb/ca.key" "$T/gen/fb.pem" "$S2"
KEY1=$(wg genkey | wg pubkey) KEY2=$(wg genkey | wg pubkey) KEY3=$(wg genkey | wg pubkey)
post_crl() { # TENANT FILE [TOKEN]
	xapi POST "/v1/tenants/$1/device-crls" "${3:-$ADMIN}" "{\"crl\": $(xq_json_pem "$2")}"
}
is() { [ "$1" = "$2" ]; }

check "baseline: d1 enrolls in acme" is "$(peer POST d1 "{\"public_key\":\"$KEY1\"}" '?tenant=acme')" 200
check "baseline: d2 enrolls in acme" is "$(peer POST d2 "{\"public_key\":\"$KEY2\"}" '?tenant=acme')" 200

check "acme's CRL listing d2 is added: 201" is "$(post_crl acme "$T/gen/r2.pem")" 201
check "the answer names its issuer and number" \
	is "$(body '"\(.issuer) \(.crl_number)"')" "CN=factory A,O=xq 01"
CRL_ID=$(body .id)
check "at once, d2 is refused in acme: 403 certificate_revoked" \
	is "$(peer GET d2 "" '?tenant=acme'; body .error.code)" "403certificate_revoked"
check "and cannot enroll again either" \
	is "$(peer POST d2 "{\"public_key\":\"$KEY3\"}" '?tenant=acme'; body .error.code)" "403certificate_revoked"
check "d1, not listed, is still served" is "$(peer GET d1 "" '?tenant=acme')" 200
check "the CRL is acme's: in beta (same CA) d2 passes the certificate checks" \
	is "$(peer GET d2 "" '?tenant=beta'; body .error.message)" \
	"403this certificate's device is enrolled in another tenant"
check "it is listed" is "$(xapi GET /v1/tenants/acme/device-crls "$ADMIN"; body '.device_crls | length')" 2001
check "beta has none" is "$(xapi GET /v1/tenants/beta/device-crls "$ADMIN"; body '.device_crls | length')" 2000

check "the same CRL again: 409 crl_not_newer" \
	is "$(post_crl acme "$T/gen/r2.pem"; body .error.code)" "409crl_not_newer"
check "a CRL of a CA acme does not trust: 400 crl_issuer_unknown" \
	is "$(post_crl acme "$T/gen/fb.pem"; body .error.code)" "400crl_issuer_unknown"
check "an expired CRL: 400 crl_expired" \
	is "$(post_crl acme "$T/gen/old.pem"; body .error.code)" "400crl_expired"
check "garbage: 400 invalid_crl" \
	is "$(xapi POST /v1/tenants/acme/device-crls "$ADMIN" '{"crl": "-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n"}'; body .error.code)" "400invalid_crl"
check "a provisioning token may not add one" is "$(post_crl acme "$T/gen/r12.pem" "$PROV")" 403

check "a newer CRL (number 2, lists d1 too) replaces it: 200" is "$(post_crl acme "$T/gen/r12.pem")" 200
check "still one CRL per issuer" is "$(xapi GET /v1/tenants/acme/device-crls "$ADMIN"; body '.device_crls | length')" 2001
check "d1 is refused now" is "$(peer GET d1 "" '?tenant=acme'; body .error.code)" "403certificate_revoked"
check "the older one cannot come back: 409" is "$(post_crl acme "$T/gen/r2.pem")" 409

check "removing it: 200" is "$(xapi DELETE "/v1/tenants/acme/device-crls/$CRL_ID" "$ADMIN")" 200
check "d1 is served again" is "$(peer GET d1 "" '?tenant=acme')" 200
check "a removed CRL is gone: 404" is "$(xapi DELETE "/v1/tenants/acme/device-crls/$CRL_ID" "$ADMIN")" 404

# the CRL directory applies to device CAs as well, in every tenant
cp "$T/gen/r2.pem" "$T/crl/fa.pem"
kill -HUP "$ED_PID"
for _ in $(seq 50); do grep -q 'SIGHUP: 1 CRL(s) loaded' "$T/log" && break; sleep 0.1; done
check "SIGHUP loads crl_dir" grep -q 'SIGHUP: 1 CRL(s) loaded' "$T/log"
check "its CRL refuses d2 in beta: 403 certificate_revoked" \
	is "$(peer GET d2 "" '?tenant=beta'; body .error.code)" "403certificate_revoked"
check "d1 is served" is "$(peer GET d1 "" '?tenant=acme')" 200
cp "$T/gen/old.pem" "$T/crl/fa.pem"
kill -HUP "$ED_PID"
for _ in $(seq 50); do grep -q 'past their nextUpdate' "$T/log" && break; sleep 0.1; done
check "an expired CRL in crl_dir is loaded with a warning" grep -q 'past their nextUpdate' "$T/log"
check "it fails closed for its CA: d1 gets 403 crl_expired" \
	is "$(peer GET d1 "" '?tenant=acme'; body .error.code)" "403crl_expired"
check "and the log says what to do" grep -q "x509: a CRL of a CA in the chain of .* is past its nextUpdate" "$T/log"
check "acme adds a current CRL of that CA" is "$(post_crl acme "$T/gen/r2.pem")" 201
check "in acme the current CRL is used instead of the expired one: d1 served" \
	is "$(peer GET d1 "" '?tenant=acme')" 200
check "and d2, which it lists, refused" \
	is "$(peer GET d2 "" '?tenant=acme'; body .error.code)" "403certificate_revoked"
rm "$T/crl/fa.pem"
kill -HUP "$ED_PID"
for _ in $(seq 50); do grep -q 'SIGHUP: 0 CRL(s) loaded' "$T/log" && break; sleep 0.1; done
check "with it gone, d1 is served again" is "$(peer GET d1 "" '?tenant=acme')" 200
check "and acme's own CRL still refuses d2" \
	is "$(peer GET d2 "" '?tenant=acme'; body .error.code)" "403certificate_revoked"

ed_stop
check "enrolld stops cleanly" [ "$ED_RC" = 0 ]
ed_done
