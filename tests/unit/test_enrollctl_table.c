// SPDX-License-Identifier: MIT
/* enrollctl's table formatter (enrollctl/table.c): alignment, UTF-8, hostile cells. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "enrollctl/enrollctl.h"

/* The table as text (caller frees). */
static char *
render(const struct table *t)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	assert_int_equal(table_print(t, f), 0);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void
test_columns_aligned(void **state)
{
	static const char *const head[] = {"DEVICE", "TENANT", "ADDRESS", "LAST HANDSHAKE"};
	static const char *const r1[] = {"1", "acme", "10.61.0.2/32", "20 s ago"};
	static const char *const r2[] = {"12", "globex", "10.62.0.10/32", NULL};
	struct table *t = table_new(4, head);
	char *out;

	assert_non_null(t);
	assert_int_equal(table_add(t, r1), 0);
	assert_int_equal(table_add(t, r2), 0);
	assert_int_equal(table_rows(t), 2);
	out = render(t);
	/* each column as wide as its widest cell, two spaces apart; NULL is "-" */
	assert_string_equal(out, "DEVICE  TENANT  ADDRESS        LAST HANDSHAKE\n"
				 "1       acme    10.61.0.2/32   20 s ago\n"
				 "12      globex  10.62.0.10/32  -\n");
	free(out);
	table_free(t);
}

static void
test_no_trailing_blanks_and_empty_last(void **state)
{
	static const char *const head[] = {"A", "B"};
	static const char *const r1[] = {"long value", ""};
	struct table *t = table_new(2, head);
	char *out;

	assert_int_equal(table_add(t, r1), 0);
	out = render(t);
	assert_string_equal(out, "A           B\nlong value\n");
	free(out);
	table_free(t);
}

static void
test_utf8_width(void **state)
{
	static const char *const r1[] = {"g\xc3\xa4rten", "x"}; /* "gärten": 6 characters */
	static const char *const r2[] = {"abcdef", "y"};
	struct table *t = table_new(2, NULL);
	char *out;

	assert_int_equal(table_add(t, r1), 0);
	assert_int_equal(table_add(t, r2), 0);
	assert_int_equal(table_rows(t), 2);
	out = render(t);
	assert_string_equal(out, "g\xc3\xa4rten  x\nabcdef  y\n");
	free(out);
	table_free(t);
}

static void
test_control_characters_defanged(void **state)
{
	/* a label from the server trying to clear the screen and fake a line */
	static const char *const r1[] = {"evil\x1b[2J\nrow", "\x7f"};
	struct table *t = table_new(2, NULL);
	char *out;

	assert_int_equal(table_add(t, r1), 0);
	out = render(t);
	assert_string_equal(out, "evil?[2J?row  ?\n");
	free(out);
	table_free(t);
}

static void
test_header_only_and_free_null(void **state)
{
	static const char *const head[] = {"NAME"};
	struct table *t = table_new(1, head);
	char *out;

	assert_int_equal(table_rows(t), 0);
	out = render(t);
	assert_string_equal(out, "NAME\n");
	free(out);
	table_free(t);
	table_free(NULL);
	assert_null(table_new(0, NULL));
}

static void
test_many_rows(void **state)
{
	struct table *t = table_new(2, NULL);
	char a[16], b[16], *out;
	const char *cells[2] = {a, b};

	for (int i = 0; i < 1000; i++) {
		snprintf(a, sizeof(a), "%d", i);
		snprintf(b, sizeof(b), "v%d", i);
		assert_int_equal(table_add(t, cells), 0);
	}
	assert_int_equal(table_rows(t), 1000);
	out = render(t);
	/* the first row padded to the widest first cell ("999") */
	assert_memory_equal(out, "0    v0\n", 8);
	assert_non_null(strstr(out, "\n999  v999\n"));
	free(out);
	table_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_columns_aligned),
		cmocka_unit_test(test_no_trailing_blanks_and_empty_last),
		cmocka_unit_test(test_utf8_width),
		cmocka_unit_test(test_control_characters_defanged),
		cmocka_unit_test(test_header_only_and_free_null),
		cmocka_unit_test(test_many_rows),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
