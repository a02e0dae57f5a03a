#!/bin/bash
# CRLs for the revocation tests (crl.sh, crl_x509.sh); sourced, needs $T.
#
#   gencrl ISSUER_CERT ISSUER_KEY OUT "SERIAL..." [LASTUPDATE NEXTUPDATE] [CRLNUMBER (hex, 2n digits)]
#       a PEM CRL signed by the issuer listing the serials (hex), valid 7 days from now
#       unless LASTUPDATE/NEXTUPDATE (YYYYMMDDHHMMSSZ) say otherwise

gencrl() {
	local cert=$1 key=$2 out=$3 s dir
	dir=$(mktemp -d "$T/gen/c.XXXX")
	: >"$dir/index.txt"
	for s in $4; do
		printf 'R\t351231000000Z\t240101000000Z\t%s\tunknown\t/CN=x\n' "$s" >>"$dir/index.txt"
	done
	echo "${7:-01}" >"$dir/crlnumber"
	cat >"$dir/ca.cnf" <<CNF
[ca]
default_ca = c
[c]
database = $dir/index.txt
crlnumber = $dir/crlnumber
default_md = sha256
default_crl_days = 7
CNF
	openssl ca -gencrl -batch -config "$dir/ca.cnf" -cert "$cert" -keyfile "$key" \
		${5:+-crl_lastupdate "$5"} ${6:+-crl_nextupdate "$6"} -out "$out" 2>"$dir/err" ||
		{ cat "$dir/err"; return 1; }
}
