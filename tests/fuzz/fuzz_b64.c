// SPDX-License-Identifier: MIT
/* libFuzzer target: strict base64 decoding; anything decoded must re-encode identically. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/b64.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *dec = NULL;
	char *text, *enc = NULL;
	size_t len;

	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (b64_decode(text, 1 << 20, &dec, &len) == 0) {
		/* strict decoding means one encoding per value */
		if (b64_encode(dec, len, &enc) != 0 || strcmp(enc, text) != 0)
			abort();
		free(enc);
		free(dec);
	}
	free(text);
	return 0;
}
