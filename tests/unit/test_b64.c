// SPDX-License-Identifier: MIT
/* Unit tests for common/b64.c: RFC 4648 vectors, strictness, limits. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "common/b64.h"

static void
test_rfc4648_vectors(void **state)
{
	static const char *const in[] = { "", "f", "fo", "foo", "foob", "fooba", "foobar" };
	static const char *const out[] = { "", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=",
		"Zm9vYmFy" };

	for (size_t i = 0; i < 7; i++) {
		uint8_t *dec = NULL;
		size_t len = 99;
		char *enc = NULL;

		assert_int_equal(b64_encode((const uint8_t *)in[i], strlen(in[i]), &enc), 0);
		assert_string_equal(enc, out[i]);
		assert_int_equal(b64_decode(out[i], 64, &dec, &len), 0);
		assert_int_equal(len, strlen(in[i]));
		assert_memory_equal(dec, in[i], len);
		free(enc);
		free(dec);
	}
}

static void
test_binary_roundtrip(void **state)
{
	uint8_t data[300], *dec = NULL;
	size_t len;
	char *enc = NULL;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 37 + 11);
	for (size_t n = 0; n <= sizeof(data); n += 7) {
		assert_int_equal(b64_encode(data, n, &enc), 0);
		assert_int_equal(b64_decode(enc, sizeof(data), &dec, &len), 0);
		assert_int_equal(len, n);
		assert_memory_equal(dec, data, n);
		free(enc);
		free(dec);
	}
}

static void
test_rejects(void **state)
{
	static const char *const bad[] = {
		"Zg=",      /* length */
		"Zg",       /* no padding */
		"Zm9v\n",   /* whitespace */
		"Zm 9",     /* space */
		"Z===",     /* too much padding */
		"Zg=a",     /* padding in the middle */
		"=Zg=",     /* padding first */
		"Zh==",     /* non-zero trailing bits */
		"Zm9=",     /* non-zero trailing bits */
		"Zm9v*A==", /* bad character */
		"Zm9-",     /* url-safe alphabet is not ours */
	};
	uint8_t *dec = NULL;
	size_t len = 0;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		assert_int_equal(b64_decode(bad[i], 64, &dec, &len), -EINVAL);
		assert_null(dec);
	}
	assert_int_equal(b64_decode(NULL, 64, &dec, &len), -EINVAL);
	assert_int_equal(b64_decode("Zm9vYmFy", 5, &dec, &len), -E2BIG);
	assert_null(dec);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rfc4648_vectors),
		cmocka_unit_test(test_binary_roundtrip),
		cmocka_unit_test(test_rejects),
	};

	return cmocka_run_group_tests_name("b64", tests, NULL, NULL);
}
