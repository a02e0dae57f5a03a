/* SPDX-License-Identifier: MIT */
#ifndef COMMON_B64_H
#define COMMON_B64_H

/*
 * Standard base64 (RFC 4648 section 4, with padding) for arbitrary public data: the TPM
 * structures and certificates that travel in JSON. Keys use key_to_base64() instead,
 * which is constant time. Decoding is strict: no whitespace, no missing or extra padding,
 * no non-zero bits after the last byte, so one value has exactly one encoding.
 */

#include <stddef.h>
#include <stdint.h>

/* Encode @len bytes; *ret is a NUL-terminated string the caller frees. */
int b64_encode(const uint8_t *data, size_t len, char **ret);
/*
 * Decode @s (NUL-terminated); *ret (freed by the caller) gets the bytes, *ret_len their
 * number. -EINVAL on anything but canonical base64; -E2BIG if the result would exceed
 * @max_len bytes (checked before decoding, so huge input costs nothing).
 */
int b64_decode(const char *s, size_t max_len, uint8_t **ret, size_t *ret_len);

#endif
