#!/bin/bash
# The factory provisioning station's tool for devices without a TPM: a factory CA that
# issues each device a client certificate, with plain openssl. enrolld trusts the CA per
# tenant and enrolls a device presenting a certificate it issued (POST /v1/peer, mutual
# TLS). Step by step: docs/x509-enrollment.md.
#
#   factory-x509.sh ca-init CA_DIR [SUBJECT]        create the factory CA (once per factory)
#   factory-x509.sh csr KEY_OUT CSR_OUT DEVICE_ID   on the device: key + certificate request
#   factory-x509.sh sign CA_DIR CSR CERT_OUT [DAYS] on the station: sign a device's request
#   factory-x509.sh issue CA_DIR DEVICE_ID OUT_DIR [DAYS]
#                                                   key made on the station (devices that
#                                                   cannot make one); OUT_DIR gets
#                                                   enroll.key (0600), enroll.crt, enroll.pem
#   factory-x509.sh serial CERT                     the serial to revoke (hex, as enrolld wants)
#
# Keys are EC P-256. The CA key stays in CA_DIR (0700): keep it offline in production.
# Device certificates carry the device id as CN, extendedKeyUsage=clientAuth, and a
# validity of DAYS (default 3650: a device lives long; revoke, do not wait for expiry).
set -eu
umask 077

die() { echo "factory-x509: $*" >&2; exit 1; }
need() { [ $# -ge "$1" ] || die "usage: see the head of $0"; }

ext_file() { # where the device extensions are written
	cat >"$1" <<EXT
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = clientAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
EXT
}

cmd=${1:-}
shift || true
case $cmd in
ca-init)
	need 1 "$@"
	dir=$1 subj=${2:-/O=edgeward factory/CN=edgeward factory device CA}
	[ -e "$dir/ca.key" ] && die "$dir/ca.key exists: a factory CA is made once"
	mkdir -p "$dir"
	openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key" 2>/dev/null
	openssl req -new -x509 -key "$dir/ca.key" -sha256 -days 7300 -subj "$subj" \
		-addext "basicConstraints=critical,CA:TRUE,pathlen:0" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" -out "$dir/ca.crt"
	chmod 0644 "$dir/ca.crt"
	echo "$dir/ca.crt"
	;;
csr)
	need 3 "$@"
	openssl ecparam -name prime256v1 -genkey -noout -out "$1" 2>/dev/null
	openssl req -new -key "$1" -sha256 -subj "/CN=$3" -out "$2"
	;;
sign)
	need 3 "$@"
	dir=$1 csr=$2 out=$3 days=${4:-3650}
	[ -r "$dir/ca.key" ] || die "no CA in $dir (ca-init first)"
	t=$(mktemp -d)
	trap 'rm -rf "$t"' EXIT
	ext_file "$t/ext"
	# a random 128-bit serial: unique without a shared counter between stations
	openssl x509 -req -in "$csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
		-set_serial "0x$(openssl rand -hex 16)" -days "$days" -sha256 \
		-extfile "$t/ext" -out "$out" 2>/dev/null
	chmod 0644 "$out"
	echo "$out"
	;;
issue)
	need 3 "$@"
	dir=$1 id=$2 out=$3 days=${4:-3650}
	mkdir -p "$out"
	"$0" csr "$out/enroll.key" "$out/enroll.csr" "$id" >/dev/null
	"$0" sign "$dir" "$out/enroll.csr" "$out/enroll.crt" "$days" >/dev/null
	rm -f "$out/enroll.csr"
	cat "$out/enroll.crt" "$out/enroll.key" >"$out/enroll.pem"
	chmod 0600 "$out/enroll.key" "$out/enroll.pem"
	echo "$out/enroll.pem"
	;;
serial)
	need 1 "$@"
	openssl x509 -in "$1" -noout -serial | sed 's/^serial=//' | tr 'A-F' 'a-f'
	;;
*)
	sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'
	[ -z "$cmd" ] || [ "$cmd" = -h ] || [ "$cmd" = --help ] || exit 1
	;;
esac
