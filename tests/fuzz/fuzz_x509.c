// SPDX-License-Identifier: MIT
/*
 * enrolld/x509.c parsers of untrusted input: the certificate chain a TLS client presents
 * (x509_peer_new, then identity/serial/subject/verify on whatever parsed), the admin
 * API's CA PEM (x509_ca_parse_pem) and revoked-serial text (x509_serial_parse).
 * The first byte picks the parser; a chain is split into certificates by 2-byte lengths.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "enrolld/x509.h"

static void
fuzz_chain(const uint8_t *data, size_t size)
{
	const uint8_t *ders[X509_CHAIN_MAX + 1];
	size_t lens[X509_CHAIN_MAX + 1], n = 0;
	struct x509_peer *p = NULL;
	struct x509_trust *t = NULL;
	enum x509_reason reason;
	uint8_t id[X509_ID_LEN], serial[X509_SERIAL_MAX];
	size_t serial_len;
	char subject[128];

	while (size >= 2 && n <= X509_CHAIN_MAX) {
		size_t len = (size_t)data[0] << 8 | data[1];

		data += 2;
		size -= 2;
		if (len > size)
			len = size;
		ders[n] = data;
		lens[n] = len;
		n++;
		data += len;
		size -= len;
	}
	if (x509_peer_new(&p, ders, lens, n) < 0)
		return;
	(void)x509_peer_identity(p, id);
	(void)x509_peer_serial(p, serial, &serial_len);
	x509_peer_subject(p, subject, sizeof(subject));
	/* the presented certificates, trusted as CAs: exercises path building */
	if (x509_trust_new(&t) == 0) {
		for (size_t i = 1; i < n; i++)
			(void)x509_trust_add_der(t, ders[i], lens[i]);
		(void)x509_peer_verify(p, t, 1700000000, &reason);
		x509_trust_free(t);
	}
	x509_peer_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t fp[X509_FP_LEN], serial[X509_SERIAL_MAX], *der = NULL;
	char subject[64], *text;
	size_t len;

	if (size == 0)
		return 0;
	switch (data[0] % 3) {
	case 0:
		fuzz_chain(data + 1, size - 1);
		break;
	case 1:
		if (x509_ca_parse_pem((const char *)data + 1, size - 1, &der, &len, fp, subject,
			    sizeof(subject)) == 0)
			free(der);
		break;
	default:
		text = strndup((const char *)data + 1, size - 1);
		if (text != NULL) {
			if (x509_serial_parse(text, serial, &len) == 0) {
				char hex[2 * X509_SERIAL_MAX + 1];

				x509_serial_format(serial, len, hex);
			}
			free(text);
		}
	}
	return 0;
}
