// SPDX-License-Identifier: MIT
/*
 * WireGuard keys. The base64 code follows wireguard-tools' encoding.c: every
 * character is computed with arithmetic, never with a table indexed by key bytes,
 * so timing does not depend on the key.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/key.h"

void
key_clamp(uint8_t key[static WG_KEY_LEN])
{
	key[0] &= 248;
	key[31] = (key[31] & 127) | 64;
}

int
key_generate_private(uint8_t ret_key[static WG_KEY_LEN])
{
	size_t off = 0;

	while (off < WG_KEY_LEN) {
		ssize_t n = getrandom(ret_key + off, WG_KEY_LEN - off, 0);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			explicit_bzero(ret_key, WG_KEY_LEN);
			return -errno;
		}
		off += (size_t)n;
	}
	key_clamp(ret_key);
	return 0;
}

int
key_public_from_private(uint8_t ret_pub[static WG_KEY_LEN], const uint8_t priv[static WG_KEY_LEN])
{
	EVP_PKEY *pkey;
	size_t len = WG_KEY_LEN;
	int ret = 0;

	pkey = EVP_PKEY_new_raw_private_key(EVP_PKEY_X25519, NULL, priv, WG_KEY_LEN);
	if (pkey == NULL)
		return -EINVAL;
	if (EVP_PKEY_get_raw_public_key(pkey, ret_pub, &len) != 1 || len != WG_KEY_LEN)
		ret = -EINVAL;
	/* EVP_PKEY_free cleanses the private key material it holds. */
	EVP_PKEY_free(pkey);
	return ret;
}

static char
encode_6bits(unsigned int src)
{
	int s = (int)src;

	return (char)(s + 'A' + (((25 - s) >> 8) & 6) - (((51 - s) >> 8) & 75) -
		(((61 - s) >> 8) & 15) + (((62 - s) >> 8) & 3));
}

static void
encode_base64(char dest[static 4], const uint8_t src[static 3])
{
	const uint8_t input[] = { (src[0] >> 2) & 63, ((src[0] << 4) | (src[1] >> 4)) & 63,
		((src[1] << 2) | (src[2] >> 6)) & 63, src[2] & 63 };

	for (unsigned int i = 0; i < 4; ++i)
		dest[i] = encode_6bits(input[i]);
}

void
key_to_base64(char ret_b64[static WG_KEY_B64_LEN], const uint8_t key[static WG_KEY_LEN])
{
	unsigned int i;

	for (i = 0; i < WG_KEY_LEN / 3; ++i)
		encode_base64(&ret_b64[i * 4], &key[i * 3]);
	encode_base64(&ret_b64[i * 4], (const uint8_t[]){ key[i * 3 + 0], key[i * 3 + 1], 0 });
	ret_b64[WG_KEY_B64_LEN - 2] = '=';
	ret_b64[WG_KEY_B64_LEN - 1] = '\0';
}

/*
 * Decode 4 characters into 24 bits. An invalid character makes its term -1, which sets
 * bit 31 of the result: callers check that bit. Unsigned arithmetic throughout, so the
 * shifts of that -1 are defined.
 */
static uint32_t
decode_base64(const char src[static 4])
{
	uint32_t val = 0;

	for (unsigned int i = 0; i < 4; ++i) {
		int c = (unsigned char)src[i];
		int v = -1 + ((((('A' - 1) - c) & (c - ('Z' + 1))) >> 8) & (c - 64)) +
			((((('a' - 1) - c) & (c - ('z' + 1))) >> 8) & (c - 70)) +
			((((('0' - 1) - c) & (c - ('9' + 1))) >> 8) & (c + 5)) +
			((((('+' - 1) - c) & (c - ('+' + 1))) >> 8) & 63) +
			((((('/' - 1) - c) & (c - ('/' + 1))) >> 8) & 64);

		val |= (uint32_t)v << (18 - 6 * i);
	}
	return val;
}

int
key_from_base64(uint8_t ret_key[static WG_KEY_LEN], const char *b64)
{
	uint8_t key[WG_KEY_LEN];
	unsigned int i;
	volatile uint32_t ret = 0;
	uint32_t val;

	if (b64 == NULL || strnlen(b64, WG_KEY_B64_LEN) != WG_KEY_B64_LEN - 1 ||
		b64[WG_KEY_B64_LEN - 2] != '=')
		return -EINVAL;

	for (i = 0; i < WG_KEY_LEN / 3; ++i) {
		val = decode_base64(&b64[i * 4]);
		ret |= val >> 31;
		key[i * 3 + 0] = (val >> 16) & 0xff;
		key[i * 3 + 1] = (val >> 8) & 0xff;
		key[i * 3 + 2] = val & 0xff;
	}
	val = decode_base64((const char[]){ b64[i * 4 + 0], b64[i * 4 + 1], b64[i * 4 + 2], 'A' });
	ret |= (val >> 31) | (val & 0xff);
	key[i * 3 + 0] = (val >> 16) & 0xff;
	key[i * 3 + 1] = (val >> 8) & 0xff;

	if (ret) {
		explicit_bzero(key, sizeof(key));
		return -EINVAL;
	}
	memcpy(ret_key, key, WG_KEY_LEN);
	explicit_bzero(key, sizeof(key));
	return 0;
}

bool
key_equal(const uint8_t a[static WG_KEY_LEN], const uint8_t b[static WG_KEY_LEN])
{
	return CRYPTO_memcmp(a, b, WG_KEY_LEN) == 0;
}

bool
key_is_zero(const uint8_t key[static WG_KEY_LEN])
{
	volatile uint8_t acc = 0;

	for (unsigned int i = 0; i < WG_KEY_LEN; ++i)
		acc |= key[i];
	return acc == 0;
}

void
key_fingerprint(char ret_fp[static WG_KEY_FP_LEN], const uint8_t key[static WG_KEY_LEN])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t md[32];
	unsigned int mdlen = sizeof(md);

	if (EVP_Digest(key, WG_KEY_LEN, md, &mdlen, EVP_sha256(), NULL) != 1) {
		memset(ret_fp, '?', WG_KEY_FP_LEN - 1);
		ret_fp[WG_KEY_FP_LEN - 1] = '\0';
		return;
	}
	for (unsigned int i = 0; i < 8; ++i) {
		ret_fp[2 * i] = hex[md[i] >> 4];
		ret_fp[2 * i + 1] = hex[md[i] & 15];
	}
	ret_fp[WG_KEY_FP_LEN - 1] = '\0';
}

int
key_file_create(const char *dir, const char *path, const uint8_t key[static WG_KEY_LEN])
{
	char tmp[PATH_MAX], b64[WG_KEY_B64_LEN + 1];
	int fd = -1, dfd, r, n;
	size_t len;

	n = snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	if (n < 0 || (size_t)n >= sizeof(tmp))
		return -ENAMETOOLONG;
	key_to_base64(b64, key);
	len = strlen(b64);
	b64[len++] = '\n';
	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		r = -errno;
		goto out;
	}
	if (write(fd, b64, len) != (ssize_t)len || fsync(fd) < 0) {
		r = errno ? -errno : -EIO;
		goto out;
	}
	/* link() never replaces: EEXIST if a key is there already (the caller decides) */
	r = link(tmp, path) < 0 ? -errno : 0;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
out:
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	OPENSSL_cleanse(b64, sizeof(b64));
	return r;
}
