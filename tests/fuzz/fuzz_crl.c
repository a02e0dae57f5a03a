// SPDX-License-Identifier: MIT
/*
 * enrolld/attest/crl.c parsers of untrusted input: a CRL posted to the admin API
 * (crl_parse_pem), a CRL as DER (crl_info_der, crl_set_add_der: crl_dir files and stored
 * records), and a chain check that uses it (x509_trust_add_crl_der, x509_peer_verify:
 * the verify callback and the CRL lookups). The first byte picks the path; for the chain
 * check the input is a 2-byte length, a CRL, then one certificate used as CA and leaf.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "enrolld/attest/crl.h"
#include "enrolld/x509.h"

static void
fuzz_chain(const uint8_t *data, size_t size)
{
	struct x509_trust *t = NULL;
	struct x509_peer *p = NULL;
	enum x509_reason reason;
	const uint8_t *ders[1];
	size_t lens[1], len;

	if (size < 2)
		return;
	len = (size_t)data[0] << 8 | data[1];
	data += 2;
	size -= 2;
	if (len > size)
		len = size;
	ders[0] = data + len;
	lens[0] = size - len;
	if (x509_trust_new(&t) < 0)
		return;
	(void)x509_trust_add_crl_der(t, data, len);
	(void)x509_trust_add_der(t, ders[0], lens[0]);
	if (x509_peer_new(&p, ders, lens, 1) == 0) {
		(void)x509_peer_verify(p, t, 1700000000, &reason);
		x509_peer_free(p);
	}
	x509_trust_free(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct crl_info info;
	struct crl_set *s = NULL;
	uint8_t *der = NULL;
	char issuer[64];
	size_t len;

	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		if (crl_parse_pem((const char *)data + 1, size - 1, &der, &len, &info) == 0)
			free(der);
		break;
	case 1:
		(void)crl_info_der(data + 1, size - 1, &info);
		if (crl_set_new(&s) == 0) {
			(void)crl_set_add_der(s, data + 1, size - 1);
			(void)crl_set_expired(s, 1700000000, issuer, sizeof(issuer));
			crl_set_free(s);
		}
		break;
	default:
		fuzz_chain(data + 1, size - 1);
	}
	return 0;
}
