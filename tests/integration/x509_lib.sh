#!/bin/bash
# Helpers for the X.509 (device certificate) tests, on top of enrolld_lib.sh (api, check,
# ed_conf, ed_start, ed_done, cleanup). Two namespaces joined by a veth:
#   $NS  = xq-cp-<pid>: the control plane, enrolld on https://cp:$PORT (10.77.0.1)
#   $GW  = xq-gw-<pid>: a gateway (10.77.0.2) with the WAN firewall, no edge-keyd
# Certificates: $T/cpca (the control plane's TLS CA, cp-ca.pem), $T/fa and $T/fb (two
# factory CAs), devices issued by scripts/factory-x509.sh.
#
#   xq_init NAME        namespaces, temp dir $T, TLS certificates, factory CAs; EXIT trap
#   xq_device CA NAME [DAYS]   issue a device certificate into $T/dev/NAME/enroll.pem
#   xq_expired CA NAME  a device certificate that expired in 2021
#   peer METHOD CERT_DIR [BODY] [QUERY]   status on stdout, body in $T/body (from the gateway)
# Ports 41000-42999, namespace prefix xq-, interface names xq*.

. "$(dirname "${BASH_SOURCE[0]}")/enrolld_lib.sh"

XQ_FACTORY=$ED_ROOT/scripts/factory-x509.sh

xq_init() { # NAME
	ed_require
	command -v wg-quick >/dev/null || { echo "skip: wg-quick not installed"; exit 77; }
	command -v openssl >/dev/null || { echo "skip: openssl not installed"; exit 77; }
	T=$(mktemp -d "/tmp/x509_$1.XXXXXX")
	NS=xq-cp-$$
	GW=xq-gw-$$
	ED_NAMESPACES=("$NS" "$GW")
	TAG=$(printf '%04x' $((RANDOM % 65536)))
	ED_IFNAMES=("xq${TAG}ta" "xq${TAG}tb" "xq${TAG}tc")
	trap ed_cleanup EXIT
	ip netns add "$NS" && ip netns add "$GW" || { echo "cannot create namespaces"; exit 1; }
	ip -n "$NS" link set lo up
	ip -n "$GW" link set lo up
	ip link add "xqc$TAG" netns "$NS" type veth peer name "xqg$TAG" netns "$GW" ||
		{ echo "cannot create the veth pair"; exit 1; }
	ip -n "$NS" addr add 10.77.0.1/24 dev "xqc$TAG"
	ip -n "$GW" addr add 10.77.0.2/24 dev "xqg$TAG"
	ip -n "$NS" link set "xqc$TAG" up
	ip -n "$GW" link set "xqg$TAG" up
	ip netns exec "$NS" sysctl -qw net.ipv4.ip_local_port_range="43000 60999"
	echo "$ADMIN" >"$T/admin"
	echo "$PROV" >"$T/prov"
	mkdir -p "$T/tt" "$T/dev" "$T/gw"
	chmod 600 "$T/admin" "$T/prov"
	. "$ED_ROOT/swtpm-fixtures/lib.sh"
	TRUST=$(swtpm_fixture_trust) || { echo "cannot prepare the swtpm fixtures"; exit 1; }
	CA=$(dirname "$TRUST")
	PORT=41001
	U=https://cp:$PORT
	export TSS2_LOG=all+none
	# the control plane's TLS certificate, from its own CA (what devices pin: cp-ca.pem)
	"$XQ_FACTORY" ca-init "$T/cpca" "/CN=xq control plane CA" >/dev/null
	cp "$T/cpca/ca.crt" "$T/cp-ca.pem"
	openssl ecparam -name prime256v1 -genkey -noout -out "$T/tls.key" 2>/dev/null
	openssl req -new -key "$T/tls.key" -subj "/CN=cp" -out "$T/tls.csr"
	printf 'subjectAltName = DNS:cp, IP:10.77.0.1\nextendedKeyUsage = serverAuth\n' >"$T/tls.ext"
	openssl x509 -req -in "$T/tls.csr" -CA "$T/cpca/ca.crt" -CAkey "$T/cpca/ca.key" \
		-set_serial 7 -days 30 -sha256 -extfile "$T/tls.ext" -out "$T/tls.crt" 2>/dev/null
	chmod 600 "$T/tls.key"
	"$XQ_FACTORY" ca-init "$T/fa" "/O=xq/CN=factory A" >/dev/null
	"$XQ_FACTORY" ca-init "$T/fb" "/O=xq/CN=factory B" >/dev/null
	"$XQ_FACTORY" ca-init "$T/fx" "/O=xq/CN=factory nobody trusts" >/dev/null
}

xq_conf() { # extra lines
	ed_conf "$@"
	sed -i "s/^listen = .*/listen = 10.77.0.1/" "$T/e.conf"
	sed -i "/^\[server\]/a tls_cert = $T/tls.crt\ntls_key = $T/tls.key" "$T/e.conf"
}

xq_device() { # CA_DIR NAME [DAYS]
	"$XQ_FACTORY" issue "$1" "$2" "$T/dev/$2" ${3:+"$3"} >/dev/null
}

xq_expired() { # CA_DIR NAME
	local d=$T/dev/$2
	mkdir -p "$d/ca"
	: >"$d/ca/index.txt"
	cat >"$d/ca/ca.cnf" <<CNF
[ca]
default_ca = c
[c]
database = $d/ca/index.txt
new_certs_dir = $d/ca
serial = $d/ca/serial
default_md = sha256
policy = p
x509_extensions = ext
unique_subject = no
[p]
commonName = supplied
[ext]
basicConstraints = critical, CA:FALSE
extendedKeyUsage = clientAuth
CNF
	echo 4242 >"$d/ca/serial"
	"$XQ_FACTORY" csr "$d/enroll.key" "$d/enroll.csr" "$2" >/dev/null
	openssl ca -batch -config "$d/ca/ca.cnf" -cert "$1/ca.crt" -keyfile "$1/ca.key" \
		-in "$d/enroll.csr" -out "$d/enroll.crt" -startdate 20200101000000Z \
		-enddate 20210101000000Z >/dev/null 2>&1 || return 1
	cat "$d/enroll.crt" "$d/enroll.key" >"$d/enroll.pem"
}

# A device's request from the gateway: peer METHOD NAME|"" [BODY] [QUERY]
peer() {
	local cert=()
	[ -n "$2" ] && cert=(--cert "$T/dev/$2/enroll.pem")
	if [ -n "${3:-}" ]; then
		ip netns exec "$GW" curl -s -o "$T/body" -w '%{http_code}' -X "$1" "${cert[@]}" \
			--cacert "$T/cp-ca.pem" --resolve "cp:$PORT:10.77.0.1" \
			-H 'Content-Type: application/json' --data-binary "$3" "$U/v1/peer${4:-}"
	else
		ip netns exec "$GW" curl -s -o "$T/body" -w '%{http_code}' -X "$1" "${cert[@]}" \
			--cacert "$T/cp-ca.pem" --resolve "cp:$PORT:10.77.0.1" "$U/v1/peer${4:-}"
	fi
}

# Admin calls go to the control plane over HTTPS too.
xapi() { # METHOD PATH TOKEN [BODY]
	local auth=()
	[ -n "$3" ] && auth=(-H "Authorization: Bearer $3")
	if [ $# -ge 4 ]; then
		ip netns exec "$NS" curl -s -o "$T/body" -w '%{http_code}' -X "$1" "${auth[@]}" \
			--cacert "$T/cp-ca.pem" --resolve "cp:$PORT:10.77.0.1" \
			-H 'Content-Type: application/json' --data-binary "$4" "$U$2"
	else
		ip netns exec "$NS" curl -s -o "$T/body" -w '%{http_code}' -X "$1" "${auth[@]}" \
			--cacert "$T/cp-ca.pem" --resolve "cp:$PORT:10.77.0.1" "$U$2"
	fi
}

# PEM as a JSON string
xq_json_pem() { jq -Rs . <"$1"; }

xq_trust_ca() { # TENANT CA_DIR
	xapi POST "/v1/tenants/$1/device-cas" "$ADMIN" \
		"{\"certificate\": $(xq_json_pem "$2/ca.crt"), \"label\": \"$(basename "$2")\"}"
}

# the tenant interface for IFSUFFIX (registered for cleanup by xq_init)
xq_ifname() { echo "xq${TAG}t$1"; }

xq_tenant() { # NAME PREFIX IFSUFFIX LISTEN_PORT
	local ifn
	ifn=$(xq_ifname "$3")
	xapi POST /v1/tenants "$ADMIN" "{\"name\":\"$1\",\"prefix\":\"$2\",\"interface\":\"$ifn\",\"listen_port\":$4,\"endpoint\":\"10.77.0.1:$4\"}"
}

# The state a refusal must not change: devices and events.
xq_state() {
	{
		xapi GET /v1/devices "$ADMIN" >/dev/null
		jq -c '[.devices[] | {device_id, address, public_key, state}]' "$T/body"
		# the event stream never ends: what it sends in a second is the whole log here
		ip netns exec "$NS" curl -s -m 1 -H "Authorization: Bearer $ADMIN" \
			--cacert "$T/cp-ca.pem" --resolve "cp:$PORT:10.77.0.1" \
			"$U/v1/events?after=0" | grep -E '^(id|event):'
	} 2>/dev/null
}
