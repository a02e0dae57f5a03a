#!/bin/bash
# X.509 enrollment refusals (issue 7): each has its own reason code and changes nothing
# (the device list and the event log are compared before and after each one).
set -u
. "$(dirname "$0")/x509_lib.sh"
xq_init negative
xq_conf
ed_start

xq_tenant acme 10.78.0.0/24 a 41100 >/dev/null
xq_tenant beta 10.79.0.0/24 b 41102 >/dev/null
xq_tenant tpmonly 10.80.0.0/24 c 41104 >/dev/null
xq_trust_ca acme "$T/fa" >/dev/null
xq_trust_ca beta "$T/fb" >/dev/null
check "tpmonly trusts factory B too" [ "$(xq_trust_ca tpmonly "$T/fb")" = 201 ]
xapi PUT /v1/tenants/acme/policy "$ADMIN" '{"require_tpm": false}' >/dev/null
xapi PUT /v1/tenants/beta/policy "$ADMIN" '{"require_tpm": false}' >/dev/null
check "the same CA twice: 409" [ "$(xq_trust_ca acme "$T/fa")" = 409 ]
check "a device certificate is not a CA: 400 not_a_ca" \
	[ "$(xq_device "$T/fa" leafca; xapi POST /v1/tenants/acme/device-cas "$ADMIN" "{\"certificate\": $(xq_json_pem "$T/dev/leafca/enroll.crt")}"; body .error.code)" = "400not_a_ca" ]
check "a tenant token cannot add a CA" \
	[ "$(xapi POST /v1/tenants/acme/device-cas "$PROV" "{\"certificate\": $(xq_json_pem "$T/fx/ca.crt")}")" = 403 ]

xq_device "$T/fa" good
xq_device "$T/fb" bdev
xq_device "$T/fx" stranger
xq_device "$T/fa" revoked
xq_expired "$T/fa" old || check "an expired certificate can be made" false
KEY=$(wg genkey | wg pubkey)

check "a good device enrolls (the baseline)" [ "$(peer POST good "{\"public_key\":\"$KEY\"}" '?tenant=acme')" = 200 ]
SERIAL=$("$XQ_FACTORY" serial "$T/dev/revoked/enroll.crt")
check "a serial is revoked" [ "$(xapi POST /v1/tenants/acme/revoked-serials "$ADMIN" "{\"serial\":\"$SERIAL\",\"label\":\"stolen\"}")" = 201 ]
check "it is listed" [ "$(xapi GET /v1/tenants/acme/revoked-serials "$ADMIN"; body '.revoked_serials[0].serial')" = "200$SERIAL" ]

check "the state snapshot sees devices and events" \
	bash -c '[[ "$1" == *"\"device_id\""* && "$1" == *"event: enrolled"* ]]' _ "$(xq_state)"

refused() { # DESCRIPTION STATUS CODE METHOD NAME BODY [QUERY]
	local before after st code
	before=$(xq_state)
	st=$(peer "$4" "$5" "$6" "${7:-}")
	code=$(body .error.code 2>/dev/null)
	after=$(xq_state)
	check "$1: $2 $3 (got $st $code)" [ "$st $code" = "$2 $3" ]
	check "$1: nothing changed" [ "$before" = "$after" ]
}
NEW=$(wg genkey | wg pubkey)
refused "no client certificate" 401 no_client_certificate POST "" "{\"public_key\":\"$NEW\"}"
refused "a certificate from an untrusted CA" 403 untrusted_certificate POST stranger "{\"public_key\":\"$NEW\"}"
refused "an expired certificate" 403 certificate_expired POST old "{\"public_key\":\"$NEW\"}"
refused "a revoked serial" 403 certificate_revoked POST revoked "{\"public_key\":\"$NEW\"}"
refused "tenant A's certificate against tenant B" 403 wrong_tenant POST good "{\"public_key\":\"$NEW\"}" '?tenant=beta'
refused "X.509 into a require_tpm tenant" 403 tpm_required POST bdev "{\"public_key\":\"$NEW\"}" '?tenant=tpmonly'
refused "a malformed public key" 400 invalid_public_key POST good '{"public_key":"bm90IGEga2V5"}'
refused "a public key that is not base64" 400 invalid_public_key POST good '{"public_key":"!!!"}'
refused "an unknown member" 400 invalid_body POST good "{\"public_key\":\"$NEW\",\"x\":1}"
refused "two tenants trust the CA, none named" 409 tenant_ambiguous POST bdev "{\"public_key\":\"$NEW\"}"
refused "GET /v1/peer before enrolling" 404 not_enrolled GET bdev "" '?tenant=beta'

# device revocation stops a (stolen) certificate; reinstating lets it back at its address
ID=$(xapi GET /v1/devices "$ADMIN" >/dev/null; body '.devices[0].device_id')
check "the device is revoked" [ "$(xapi POST "/v1/devices/$ID/revoke" "$ADMIN" '{}')" = 200 ]
refused "a revoked device's certificate" 403 device_revoked POST good "{\"public_key\":\"$NEW\"}"
refused "a revoked device's GET" 403 device_revoked GET good ""

# unrevoking a serial, turning require_tpm back on
check "a serial is un-revoked" [ "$(xapi DELETE "/v1/tenants/acme/revoked-serials/$SERIAL" "$ADMIN")" = 200 ]
check "its certificate enrolls now" [ "$(peer POST revoked "{\"public_key\":\"$NEW\"}")" = 200 ]
check "require_tpm back on for acme" [ "$(xapi PUT /v1/tenants/acme/policy "$ADMIN" '{"require_tpm": true}')" = 200 ]
refused "acme requires a TPM again" 403 tpm_required POST revoked "{\"public_key\":\"$(wg genkey | wg pubkey)\"}"

# removing the CA: its certificates are no longer trusted
CAID=$(xapi GET /v1/tenants/beta/device-cas "$ADMIN" >/dev/null; body '.device_cas[0].id')
check "a device CA is removed" [ "$(xapi DELETE "/v1/tenants/beta/device-cas/$CAID" "$ADMIN")" = 200 ]
check "the listener still answers after the trust change" [ "$(xapi GET /healthz "")" = 200 ]
refused "a certificate of a removed CA (tpmonly still trusts it)" 403 tpm_required POST bdev "{\"public_key\":\"$NEW\"}"
check "token clients without certificates still work" [ "$(xapi GET /v1/tenants "$ADMIN")" = 200 ]
ed_done
