/* SPDX-License-Identifier: MIT */
#ifndef COMMON_CONFIG_H
#define COMMON_CONFIG_H

/*
 * INI configuration files, parsed by inih (Debian's libinih). This module keeps the
 * parsed values and adds what inih leaves to us: duplicate keys are errors, unknown
 * keys are errors (a typo in a daemon's config must not be silently ignored), and
 * typed getters with ranges. Errors carry the file name and line.
 *
 * Sections and keys are case-sensitive. A key outside any section has section "".
 */

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct config;

/* Parse @path. On failure returns a negative errno and a message in @errbuf. */
int config_load(struct config **ret_cfg, const char *path, char *errbuf, size_t errlen);
/* Parse an INI text (tests, fuzzing, embedded defaults). @name appears in messages. */
int config_parse_string(struct config **ret_cfg, const char *text, const char *name, char *errbuf,
	size_t errlen);
void config_free(struct config *cfg);

/*
 * Check every key against @known, a NULL-terminated list of "section.key" patterns;
 * a pattern "section.*" allows any key in that section, and "prefix:*.key" allows
 * the key in every section named "prefix:<anything>" (e.g. "tenant:*.prefix").
 * Returns 0, or -EINVAL with "file:line: unknown key 'section.key'" in @errbuf.
 */
int config_check_known(const struct config *cfg, const char *const *known, char *errbuf,
	size_t errlen);

/* The value, or NULL if absent. The string lives as long as @cfg. */
const char *config_get(const struct config *cfg, const char *section, const char *key);
/* The value or @def if absent. */
const char *config_get_str(const struct config *cfg, const char *section, const char *key,
	const char *def);
/*
 * Integer in [min, max], @def if absent. -EINVAL (message in errbuf) if present but not
 * a decimal integer in range.
 */
int config_get_long(const struct config *cfg, const char *section, const char *key, long min,
	long max, long def, long *ret, char *errbuf, size_t errlen);
/* yes/no, true/false, on/off, 1/0; @def if absent; -EINVAL otherwise. */
int config_get_bool(const struct config *cfg, const char *section, const char *key, bool def,
	bool *ret, char *errbuf, size_t errlen);

/* Iterate the section names in file order: i from 0 while config_section(cfg, i) != NULL. */
const char *config_section(const struct config *cfg, size_t i);

/*
 * A file holding a secret (key, token) must be a regular file not readable or writable
 * by group or others (but see config_secret_group). Returns 0, -EPERM if too open, or
 * another negative errno.
 */
int config_check_secret_file(const char *path);
/*
 * From now on in this process, a secret file may also be readable (never writable) by
 * group @gid: the group of a daemon's unprivileged part, which reads what its root part
 * owns (root:_enrolld 0640). (gid_t)-1, the default: no group at all.
 */
void config_secret_group(gid_t gid);

/*
 * Read a secret file (checked as config_check_secret_file does, on the opened file) into
 * @buf: all of it, NUL-terminated, trailing CR and LF removed. Returns its length, -EPERM
 * if the file is too open, -EMSGSIZE if it does not fit in @len - 1 bytes, -ENODATA if it
 * is empty, or another negative errno. On failure @buf is wiped.
 */
ssize_t config_read_secret(const char *path, char *buf, size_t len);

#endif
