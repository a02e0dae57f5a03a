// SPDX-License-Identifier: MIT
/* libFuzzer target: the INI config parser and its typed getters. */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const known[] = { "a.b", "tenant:*.prefix", "x.*", NULL };
	struct config *cfg = NULL;
	char err[256];
	char *text;
	long v;
	bool b;

	text = malloc(size + 1);
	if (text == NULL)
		return 0;
	memcpy(text, data, size);
	text[size] = '\0';
	if (config_parse_string(&cfg, text, "fuzz", err, sizeof(err)) == 0) {
		(void)config_check_known(cfg, known, err, sizeof(err));
		for (size_t i = 0; config_section(cfg, i) != NULL; i++) {
			const char *s = config_section(cfg, i);

			(void)config_get(cfg, s, "a");
			(void)config_get_long(cfg, s, "b", -5, 5, 0, &v, err, sizeof(err));
			(void)config_get_bool(cfg, s, "prefix", false, &b, err, sizeof(err));
		}
		config_free(cfg);
	}
	free(text);
	return 0;
}
