#!/bin/bash
# The software TPM device of enroll-bench (tests/bench/softdev) against a real enrolld, so
# it cannot rot: P-256, P-384 and RSA-2048 EK devices enroll (ActivateCredential, quote,
# PCR policy, the peer on a userspace WireGuard interface), and the negative cross-check
# gives the reason codes the swtpm devices get in attest_negative (wrong secret:
# secret_mismatch; quote over another nonce: quote_qualifying_data_mismatch; a PCR value
# edited after the quote: pcr_digest_mismatch). Then the crypto ceiling runs once.
set -u
. "$(dirname "$0")/enrolld_lib.sh"
BENCH=$B/tests/bench/enroll_bench
[ -x "$BENCH" ] || { echo "$BENCH not built"; exit 1; }
ed_init softdev
mkdir -p "$T/trust"
"$BENCH" ca "$T/trust/ca.pem" "$T/ca.key" || exit 1
TRUST=$T/trust
ed_conf
ed_start
IF=$(ed_ifname s)
check "a tenant with a PCR policy" [ "$(api POST /v1/tenants "$ADMIN" "{\"name\":\"sd\",\
\"prefix\":\"10.201.0.0/24\",\"interface\":\"$IF\",\"listen_port\":35112,\
\"endpoint\":\"192.0.2.1:35112\",\"pcr_policy\":$("$BENCH" pcr-policy 0 7)}")" = 201 ]
check "an enrollment token" [ "$(api POST /v1/tenants/sd/tokens "$ADMIN" '{"uses":100}')" = 201 ]
TOKEN=$(body .token)
ip netns exec "$NS" "$BENCH" smoke --url "$U" --ca "$T/trust/ca.pem,$T/ca.key" \
	--token "$TOKEN" >"$T/smoke" 2>&1
rc=$?
cat "$T/smoke"
check "software devices enroll and the negative cases give their reasons" [ $rc = 0 ]
check "the six devices are peers of the tenant's interface" \
	[ "$(ed_peers "$IF" | wc -l)" = 6 ]
check "the crypto ceiling runs" "$BENCH" ceiling --ca "$T/trust/ca.pem,$T/ca.key" \
	--trust "$TRUST" --ek p256 -n 5
ed_done
