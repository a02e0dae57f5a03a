// SPDX-License-Identifier: MIT
/* Unit tests for common/key.c: X25519 against RFC 7748, constant-time base64. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "common/key.h"

static void
hex2bin(uint8_t *out, const char *hex)
{
	for (size_t i = 0; hex[2 * i]; i++)
		sscanf(&hex[2 * i], "%2hhx", &out[i]);
}

/* RFC 7748 section 6.1: Alice's key pair. */
static void
test_public_from_private_rfc7748(void **state)
{
	uint8_t priv[32], pub[32], want[32];

	hex2bin(priv, "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
	hex2bin(want, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
	assert_int_equal(key_public_from_private(pub, priv), 0);
	assert_memory_equal(pub, want, 32);
}

static void
test_generate_is_clamped_and_random(void **state)
{
	uint8_t a[32], b[32];

	assert_int_equal(key_generate_private(a), 0);
	assert_int_equal(key_generate_private(b), 0);
	assert_int_equal(a[0] & 7, 0);
	assert_int_equal(a[31] & 128, 0);
	assert_int_equal(a[31] & 64, 64);
	assert_false(key_equal(a, b));
}

static void
test_base64_roundtrip_and_known(void **state)
{
	uint8_t key[32], back[32];
	char b64[WG_KEY_B64_LEN];

	/* wg pubkey of the RFC 7748 Alice key, as printed by wg(8) */
	hex2bin(key, "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a");
	key_to_base64(b64, key);
	assert_string_equal(b64, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=");
	assert_int_equal(key_from_base64(back, b64), 0);
	assert_memory_equal(key, back, 32);

	for (int i = 0; i < 256; i++) {
		memset(key, i, sizeof(key));
		key[i % 32] ^= 0x5a;
		key_to_base64(b64, key);
		assert_int_equal(key_from_base64(back, b64), 0);
		assert_memory_equal(key, back, 32);
	}
}

static void
test_base64_rejects_bad_input(void **state)
{
	uint8_t key[32];

	assert_int_equal(key_from_base64(key, NULL), -22);
	assert_int_equal(key_from_base64(key, ""), -22);
	/* too short, too long, no padding */
	assert_int_equal(key_from_base64(key, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTm="), -22);
	assert_int_equal(key_from_base64(key, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmo=="), -22);
	assert_int_equal(key_from_base64(key, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmoA"), -22);
	/* invalid character */
	assert_int_equal(key_from_base64(key, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066Spjqqb*mo="), -22);
	/* non-canonical: last character carries bits beyond the 256th */
	assert_int_equal(key_from_base64(key, "hSDwCYkwp1R0i33ctD73Wg2/Og0mOBr066SpjqqbTmp="), -22);
}

static void
test_equal_zero_fingerprint(void **state)
{
	uint8_t a[32] = { 0 }, b[32] = { 0 };
	char fp1[WG_KEY_FP_LEN], fp2[WG_KEY_FP_LEN];

	assert_true(key_is_zero(a));
	assert_true(key_equal(a, b));
	b[31] = 1;
	assert_false(key_is_zero(b));
	assert_false(key_equal(a, b));
	key_fingerprint(fp1, a);
	key_fingerprint(fp2, b);
	assert_int_equal(strlen(fp1), 16);
	assert_string_not_equal(fp1, fp2);
	/* SHA-256 of 32 zero bytes starts 66687aadf862bd77 */
	assert_string_equal(fp1, "66687aadf862bd77");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_public_from_private_rfc7748),
		cmocka_unit_test(test_generate_is_clamped_and_random),
		cmocka_unit_test(test_base64_roundtrip_and_known),
		cmocka_unit_test(test_base64_rejects_bad_input),
		cmocka_unit_test(test_equal_zero_fingerprint),
	};

	return cmocka_run_group_tests_name("key", tests, NULL, NULL);
}
