#!/bin/bash
# Revocation lists for the EK manufacturer CAs (attestation.crl_dir, docs/security.md):
# a CRL of the issuing CA refuses the EK certificate it lists (ek_cert_revoked) and only
# that one; a CRL of the root that lists the issuing CA refuses every EK under it; SIGHUP
# reloads the directory; an expired CRL fails closed for its issuer (ek_crl_expired, and a
# warning in the log); a file that does not parse refuses the reload (the previous set
# stays) and, at start or with -n, refuses the configuration.
. "$(dirname "$0")/enrolld_lib.sh"

ed_init crl
command -v openssl >/dev/null || { echo "skip: openssl not installed"; exit 77; }
mkdir -p "$T/crl" "$T/ekca" "$T/ekca2" "$T/gen" "$T/trust"
# A manufacturer whose CAs may sign CRLs (keyUsage cRLSign; the fixtures' swtpm-localca
# CAs may not): a root and an issuing CA. The trust directory holds them and the fixtures'.
mkca() { # NAME SUBJECT [ISSUER]
	openssl ecparam -name prime256v1 -genkey -noout -out "$T/gen/$1.key" 2>/dev/null
	printf '%s\n' "basicConstraints = critical, CA:TRUE" \
		"keyUsage = critical, keyCertSign, cRLSign" "subjectKeyIdentifier = hash" \
		>"$T/gen/$1.ext"
	if [ -z "${3:-}" ]; then
		openssl req -x509 -new -key "$T/gen/$1.key" -subj "$2" -days 30 -sha256 \
			-extensions v3 -config <(printf '[req]\ndistinguished_name=dn\n[dn]\n[v3]\n'; cat "$T/gen/$1.ext") \
			-out "$T/gen/$1.pem"
	else
		echo "authorityKeyIdentifier = keyid" >>"$T/gen/$1.ext"
		openssl req -new -key "$T/gen/$1.key" -subj "$2" -out "$T/gen/$1.csr"
		openssl x509 -req -in "$T/gen/$1.csr" -CA "$T/gen/$3.pem" -CAkey "$T/gen/$3.key" \
			-set_serial 0x1234 -days 30 -sha256 -extfile "$T/gen/$1.ext" \
			-out "$T/gen/$1.pem" 2>/dev/null
	fi
}
mkca root "/CN=crl test EK root"
mkca issuer "/CN=crl test EK issuing CA" root
cp "$T/gen/root.pem" "$T/gen/issuer.pem" "$T/trust/"
for f in "$TRUST"/*; do cp "$f" "$T/trust/fixture-$(basename "$f")"; done
# Two ways of playing the manufacturer: a fixed EK certificate serial (the one we
# revoke) and random serials.
for d in ekca ekca2; do
	cp "$T/gen/issuer.key" "$T/$d/signkey.pem"
	cp "$T/gen/issuer.pem" "$T/$d/issuercert.pem"
done
echo 0BADC0DE >"$T/ekca/ek-serial"

. "$(dirname "$0")/crl_lib.sh"
I=$T/gen/issuer
R=$T/gen/root
gencrl "$I.pem" "$I.key" "$T/gen/revokes-a.pem" "0BADC0DE"
gencrl "$I.pem" "$I.key" "$T/gen/expired.pem" "0BADC0DE" 20240101000000Z 20240108000000Z
gencrl "$R.pem" "$R.key" "$T/gen/root-revokes-issuer.pem" "1234"
gencrl "$R.pem" "$R.key" "$T/gen/root-empty.pem" ""
# the fixtures' issuing CA has no cRLSign: a CRL it signs cannot be used
gencrl "$CA/issuercert.pem" "$CA/signkey.pem" "$T/gen/no-crlsign.pem" ""

ed_conf
sed -i "s#^ek_ca_dir = .*#ek_ca_dir = $T/trust\ncrl_dir = $T/crl#" "$T/e.conf"
ed_start
IF=$(ed_ifname c)
api POST /v1/tenants "$ADMIN" "{\"name\":\"t\",\"prefix\":\"10.98.0.0/24\",\"interface\":\"$IF\",\"listen_port\":35211,\"endpoint\":\"192.0.2.1:35211\"}" >/dev/null
api POST /v1/tenants/t/tokens "$ADMIN" '{"uses":100}' >/dev/null
TOK=$(body .token)

# enroll NAME CADIR -> "STATUS CODE" (CODE "-" when enrolled)
n=0
enroll() {
	local out
	n=$((n + 1))
	[ -n "$(ed_tcti "$1")" ] || ed_swtpm "$1" >/dev/null
	out=$(ed_enroll "$1" --token "$TOK" --issue-ek-cert "$2")
	jq -r '"\(.http_status) \(.response.error.code // "-")"' <<<"$out"
}
loaded() { grep -c "SIGHUP: $1 CRL(s) loaded" "$T/log"; }
hup() { # wait for the reload to be logged ($1: pattern, $2: how many times)
	kill -HUP "$ED_PID"
	for _ in $(seq 50); do [ "$(grep -c "$1" "$T/log")" -ge "$2" ] && return 0; sleep 0.1; done
	return 1
}

check "with an empty CRL directory the device with serial 0BADC0DE enrolls" \
	[ "$(enroll a "$T/ekca")" = "200 -" ]

cp "$T/gen/revokes-a.pem" "$T/crl/issuer.pem"
check "SIGHUP loads the issuing CA's CRL" hup "SIGHUP: 1 CRL(s) loaded" 1
check "the EK certificate it lists is refused: 403 ek_cert_revoked" \
	[ "$(enroll a "$T/ekca")" = "403 ek_cert_revoked" ]
check "another EK certificate of the same CA still enrolls" [ "$(enroll b "$T/ekca2")" = "200 -" ]

cp "$T/gen/root-empty.pem" "$T/crl/root.pem"
check "a CRL of the root that lists nothing: reloaded (2 CRLs)" hup "SIGHUP: 2 CRL(s) loaded" 1
check "the chain is checked at every level: b still enrolls" [ "$(enroll c "$T/ekca2")" = "200 -" ]
cp "$T/gen/root-revokes-issuer.pem" "$T/crl/root.pem"
check "a CRL of the root that lists the issuing CA: reloaded" hup "SIGHUP: 2 CRL(s) loaded" 2
check "then every EK under that CA is refused: 403 ek_cert_revoked" \
	[ "$(enroll d "$T/ekca2")" = "403 ek_cert_revoked" ]
rm "$T/crl/root.pem"

cp "$T/gen/expired.pem" "$T/crl/issuer.pem"
check "an expired CRL is loaded, with a warning" hup "past their nextUpdate" 1
check "the warning names the issuer" grep -q "past their nextUpdate (the first of issuer '.*CN=" "$T/log"
check "it fails closed for its issuer: 403 ek_crl_expired" \
	[ "$(enroll e "$T/ekca2")" = "403 ek_crl_expired" ]
check "the refusal is logged as the operator's to fix" \
	grep -q "enrollment refused: ek_crl_expired" "$T/log"

check "devices of a CA without a CRL are not checked" [ "$(enroll h "$CA")" = "200 -" ]
cp "$T/gen/no-crlsign.pem" "$T/crl/fixture.pem"
check "a CRL its CA may not sign (no cRLSign) is loaded" hup "SIGHUP: 2 CRL(s) loaded" 3
check "and fails closed for that CA: 403 ek_crl_invalid" [ "$(enroll i "$CA")" = "403 ek_crl_invalid" ]
rm "$T/crl/fixture.pem"

echo "not a CRL" >"$T/crl/junk.pem"
check "a file that does not parse refuses the reload" hup "keeping the previous CRLs" 1
check "and the log names it" grep -q "CRL directory: '$T/crl/junk.pem': not a CRL" "$T/log"
check "the previous set (the expired CRL) stays in force" \
	[ "$(enroll f "$T/ekca2")" = "403 ek_crl_expired" ]
check "enrolld -n refuses the configuration" \
	bash -c "! ip netns exec $NS $ENROLLD -n -c $T/e.conf >$T/n.out 2>&1 && grep -q 'junk.pem' $T/n.out"

rm "$T/crl/junk.pem"
cp "$T/gen/revokes-a.pem" "$T/crl/issuer.pem"
check "a fresh CRL replaces it on SIGHUP" hup "SIGHUP: 1 CRL(s) loaded" 2
check "devices it does not list enroll again" [ "$(enroll g "$T/ekca2")" = "200 -" ]
check "the one it lists is still refused" [ "$(enroll a "$T/ekca")" = "403 ek_cert_revoked" ]

ed_stop
check "enrolld stops cleanly" [ "$ED_RC" = 0 ]
echo "not a CRL" >"$T/crl/junk.pem"
check "a CRL directory that does not parse stops the start" \
	bash -c "! timeout 10 ip netns exec $NS $ENROLLD -d -c $T/e.conf >$T/start.out 2>&1 && grep -q 'cannot load the CRLs' $T/start.out"
ed_done
