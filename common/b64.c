// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "common/b64.h"

int
b64_encode(const uint8_t *data, size_t len, char **ret)
{
	size_t outlen;
	char *out;

	if (len > (size_t)(INT32_MAX / 4 * 3))
		return -E2BIG;
	outlen = 4 * ((len + 2) / 3);
	out = malloc(outlen + 1);
	if (out == NULL)
		return -ENOMEM;
	if ((size_t)EVP_EncodeBlock((unsigned char *)out, data, (int)len) != outlen) {
		free(out);
		return -EIO;
	}
	out[outlen] = '\0';
	*ret = out;
	return 0;
}

static int
b64_value(unsigned char c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	if (c == '+')
		return 62;
	if (c == '/')
		return 63;
	return -1;
}

int
b64_decode(const char *s, size_t max_len, uint8_t **ret, size_t *ret_len)
{
	size_t slen, pad = 0, outlen;
	uint8_t *out;
	int n;

	if (s == NULL)
		return -EINVAL;
	slen = strlen(s);
	if (slen % 4 != 0)
		return -EINVAL;
	if (slen > 0 && s[slen - 1] == '=')
		pad++;
	if (slen > 1 && s[slen - 2] == '=')
		pad++;
	outlen = slen / 4 * 3 - pad;
	if (outlen > max_len)
		return -E2BIG;
	/* EVP_DecodeBlock skips whitespace and misreads '=' in the middle: check first. */
	for (size_t i = 0; i < slen - pad; i++)
		if (b64_value((unsigned char)s[i]) < 0)
			return -EINVAL;
	/* Canonical: the bits after the last byte must be zero. */
	if (pad == 1 && (b64_value((unsigned char)s[slen - 2]) & 3) != 0)
		return -EINVAL;
	if (pad == 2 && (b64_value((unsigned char)s[slen - 3]) & 15) != 0)
		return -EINVAL;
	if (slen > (size_t)INT32_MAX)
		return -E2BIG;
	out = malloc(slen / 4 * 3 + 1);
	if (out == NULL)
		return -ENOMEM;
	n = slen ? EVP_DecodeBlock(out, (const unsigned char *)s, (int)slen) : 0;
	if (n < 0 || (size_t)n != slen / 4 * 3) {
		free(out);
		return -EINVAL;
	}
	*ret = out;
	*ret_len = outlen;
	return 0;
}
