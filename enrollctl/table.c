// SPDX-License-Identifier: MIT
/* Aligned text tables: what `enrollctl` prints unless --json. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "enrollctl/enrollctl.h"

struct table {
	size_t ncols;
	bool header;
	char **cells;	   /* row-major, the header (if any) first */
	size_t nrows, cap; /* rows, including the header */
};

/* Characters, not bytes: UTF-8 continuation bytes do not count. */
static size_t
text_width(const char *s)
{
	size_t w = 0;

	for (; *s != '\0'; s++)
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	return w;
}

/* A copy of @s with control characters (C0, DEL) replaced by '?'. */
static char *
clean_copy(const char *s)
{
	char *c = strdup(s ? s : "-");

	if (c == NULL)
		return NULL;
	for (char *p = c; *p != '\0'; p++)
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	return c;
}

static int
add_row(struct table *t, const char *const *cells)
{
	size_t i;

	if (t->nrows == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		char **nc = reallocarray(t->cells, cap * t->ncols, sizeof(*nc));

		if (nc == NULL)
			return -ENOMEM;
		t->cells = nc;
		t->cap = cap;
	}
	for (i = 0; i < t->ncols; i++) {
		char *c = clean_copy(cells[i]);

		if (c == NULL)
			goto err;
		t->cells[t->nrows * t->ncols + i] = c;
	}
	t->nrows++;
	return 0;
err:
	while (i-- > 0)
		free(t->cells[t->nrows * t->ncols + i]);
	return -ENOMEM;
}

struct table *
table_new(size_t ncols, const char *const *headers)
{
	struct table *t;

	if (ncols == 0)
		return NULL;
	t = calloc(1, sizeof(*t));
	if (t == NULL)
		return NULL;
	t->ncols = ncols;
	if (headers != NULL) {
		if (add_row(t, headers) < 0) {
			table_free(t);
			return NULL;
		}
		t->header = true;
	}
	return t;
}

void
table_free(struct table *t)
{
	if (t == NULL)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	free(t);
}

int
table_add(struct table *t, const char *const *cells)
{
	return add_row(t, cells);
}

size_t
table_rows(const struct table *t)
{
	return t->nrows - (t->header ? 1 : 0);
}

int
table_print(const struct table *t, FILE *f)
{
	size_t *w = calloc(t->ncols, sizeof(*w));
	int r = -EIO;

	if (w == NULL)
		return -ENOMEM;
	for (size_t row = 0; row < t->nrows; row++)
		for (size_t c = 0; c < t->ncols; c++) {
			size_t cw = text_width(t->cells[row * t->ncols + c]);

			if (cw > w[c])
				w[c] = cw;
		}
	for (size_t row = 0; row < t->nrows; row++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[row * t->ncols + c];

			if (fputs(cell, f) == EOF)
				goto out;
			/* no padding after the last cell, nor before an empty last one */
			if (c + 1 == t->ncols ||
				(c + 2 == t->ncols && t->cells[row * t->ncols + c + 1][0] == '\0'))
				break;
			/* pad to the column, then the two spaces between columns */
			if (fprintf(f, "%*s", (int)(w[c] - text_width(cell) + 2), "") < 0)
				goto out;
		}
		if (fputc('\n', f) == EOF)
			goto out;
	}
	r = 0;
out:
	free(w);
	return r;
}
