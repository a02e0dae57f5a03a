/* SPDX-License-Identifier: MIT */
#ifndef COMMON_KEY_H
#define COMMON_KEY_H

#include <stdbool.h>
#include <stdint.h>

#define WG_KEY_LEN 32
#define WG_KEY_B64_LEN 45 /* 44 characters and a NUL */
#define WG_KEY_FP_LEN 17  /* 16 hex characters and a NUL */

/*
 * WireGuard (Curve25519) keys. Keys are fixed arrays; callers wipe them.
 * All functions return 0 or a negative errno.
 */

/* A new private key from the OS RNG (getrandom), clamped as X25519 wants. */
int key_generate_private(uint8_t ret_key[static WG_KEY_LEN]);

/* Clamp a 32-byte string into a valid X25519 private key (RFC 7748). */
void key_clamp(uint8_t key[static WG_KEY_LEN]);

/* X25519 public key of @priv, through OpenSSL. */
int key_public_from_private(uint8_t ret_pub[static WG_KEY_LEN],
	const uint8_t priv[static WG_KEY_LEN]);

/* Base64 in constant time (no table lookups indexed by secret data). */
void key_to_base64(char ret_b64[static WG_KEY_B64_LEN], const uint8_t key[static WG_KEY_LEN]);
/* Returns -EINVAL unless @b64 is exactly 44 characters of canonical base64 of 32 bytes. */
int key_from_base64(uint8_t ret_key[static WG_KEY_LEN], const char *b64);

/* Constant-time comparisons. */
bool key_equal(const uint8_t a[static WG_KEY_LEN], const uint8_t b[static WG_KEY_LEN]);
bool key_is_zero(const uint8_t key[static WG_KEY_LEN]);

/*
 * A printable fingerprint for logs: the first 8 bytes of SHA-256(key) in hex.
 * Safe to log for public keys; never log a private key, not even its fingerprint.
 */
void key_fingerprint(char ret_fp[static WG_KEY_FP_LEN], const uint8_t key[static WG_KEY_LEN]);

/*
 * Write @key (base64 and a newline) to a new file @path in directory @dir atomically: a
 * 0600 temp file <path>.tmp, fsync, linked into place, the directory fsynced. Never
 * replaces: -EEXIST if @path exists. No partial file is ever visible at @path.
 */
int key_file_create(const char *dir, const char *path, const uint8_t key[static WG_KEY_LEN]);

#endif
