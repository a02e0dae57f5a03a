// SPDX-License-Identifier: MIT
#include <errno.h>
#include <stdarg.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <ini.h>

#include "common/config.h"

struct config_entry {
	char *section;
	char *key;
	char *value;
	int line;
};

struct config {
	char *name;
	struct config_entry *entries;
	size_t n, cap;
	char **sections;
	size_t n_sections, cap_sections;
	/* Line being parsed: counted by our reader, since Debian's inih has no lineno. */
	int line;
	/* First error met while parsing (inih keeps going; we stop at the first). */
	int err;
	char errmsg[256];
};

static void __attribute__((format(printf, 3, 4)))
config_seterr(struct config *cfg, int err, const char *fmt, ...)
{
	char what[200];
	va_list ap;

	if (cfg->err)
		return;
	cfg->err = err;
	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	snprintf(cfg->errmsg, sizeof(cfg->errmsg), "%s:%d: %s", cfg->name, cfg->line, what);
}

static const struct config_entry *
config_find(const struct config *cfg, const char *section, const char *key)
{
	for (size_t i = 0; i < cfg->n; i++)
		if (strcmp(cfg->entries[i].section, section) == 0 &&
			strcmp(cfg->entries[i].key, key) == 0)
			return &cfg->entries[i];
	return NULL;
}

static int
config_add_section(struct config *cfg, const char *section)
{
	char **s;

	for (size_t i = 0; i < cfg->n_sections; i++)
		if (strcmp(cfg->sections[i], section) == 0)
			return 0;
	if (cfg->n_sections == cfg->cap_sections) {
		size_t cap = cfg->cap_sections ? cfg->cap_sections * 2 : 8;

		s = realloc(cfg->sections, cap * sizeof(*s));
		if (s == NULL)
			return -ENOMEM;
		cfg->sections = s;
		cfg->cap_sections = cap;
	}
	cfg->sections[cfg->n_sections] = strdup(section);
	if (cfg->sections[cfg->n_sections] == NULL)
		return -ENOMEM;
	cfg->n_sections++;
	return 0;
}

/* inih callback: returns nonzero to continue. */
static int
config_handler(void *user, const char *section, const char *key, const char *value)
{
	int line = ((struct config *)user)->line;
	struct config *cfg = user;
	struct config_entry *e;

	if (cfg->err)
		return 0;
	if (key == NULL) /* new section announcement, if inih is built to send them */
		return config_add_section(cfg, section) == 0;
	if (config_add_section(cfg, section) < 0) {
		config_seterr(cfg, -ENOMEM, "out of memory");
		return 0;
	}
	if (key[0] == '\0') {
		config_seterr(cfg, -EINVAL, "empty key in section '%s'", section);
		return 0;
	}
	if (config_find(cfg, section, key) != NULL) {
		config_seterr(cfg, -EINVAL, "duplicate key '%s' in section '%s'", key, section);
		return 0;
	}
	if (cfg->n == cfg->cap) {
		size_t cap = cfg->cap ? cfg->cap * 2 : 16;

		e = realloc(cfg->entries, cap * sizeof(*e));
		if (e == NULL) {
			config_seterr(cfg, -ENOMEM, "out of memory");
			return 0;
		}
		cfg->entries = e;
		cfg->cap = cap;
	}
	e = &cfg->entries[cfg->n];
	e->section = strdup(section);
	e->key = strdup(key);
	e->value = strdup(value ? value : "");
	e->line = line;
	if (e->section == NULL || e->key == NULL || e->value == NULL) {
		free(e->section);
		free(e->key);
		free(e->value);
		config_seterr(cfg, -ENOMEM, "out of memory");
		return 0;
	}
	cfg->n++;
	return 1;
}

static int
config_new(struct config **ret, const char *name)
{
	struct config *cfg = calloc(1, sizeof(*cfg));

	if (cfg == NULL)
		return -ENOMEM;
	cfg->name = strdup(name ? name : "(config)");
	if (cfg->name == NULL) {
		free(cfg);
		return -ENOMEM;
	}
	*ret = cfg;
	return 0;
}

static void
config_setup_inih(void)
{
	/*
	 * Debian's inih exposes its compile-time options as globals. Continuation lines
	 * would silently glue a mistyped line onto the previous key: refuse them.
	 */
	ini_allow_multiline = false;
	ini_allow_inline_comments = true;
	ini_max_line = 1024;
	ini_allow_realloc = true;
}

static int
config_finish(struct config *cfg, int rc, struct config **ret_cfg, char *errbuf, size_t errlen)
{
	int ret;

	if (cfg->err) {
		ret = cfg->err;
		snprintf(errbuf, errlen, "%s", cfg->errmsg);
		goto err;
	}
	if (rc == -2) {
		ret = -ENOMEM;
		snprintf(errbuf, errlen, "%s: out of memory", cfg->name);
		goto err;
	}
	if (rc > 0) {
		ret = -EINVAL;
		snprintf(errbuf, errlen, "%s:%d: syntax error", cfg->name, rc);
		goto err;
	}
	*ret_cfg = cfg;
	return 0;
err:
	config_free(cfg);
	return ret;
}

struct string_stream {
	const char *p;
	struct config *cfg;
};

struct file_stream {
	FILE *f;
	struct config *cfg;
};

/* inih reader callbacks (fgets semantics) that also count lines for messages. */
static char *
config_read_file(char *str, int num, void *stream)
{
	struct file_stream *fs = stream;
	char *r = fgets(str, num, fs->f);

	if (r != NULL)
		fs->cfg->line++;
	return r;
}

static char *
config_read_string(char *str, int num, void *stream)
{
	struct string_stream *ss = stream;
	int i = 0;

	if (*ss->p == '\0' || num < 2)
		return NULL;
	while (i < num - 1 && ss->p[0] != '\0') {
		str[i++] = *ss->p++;
		if (str[i - 1] == '\n')
			break;
	}
	str[i] = '\0';
	ss->cfg->line++;
	return str;
}

int
config_load(struct config **ret_cfg, const char *path, char *errbuf, size_t errlen)
{
	struct file_stream fs = { 0 };
	struct config *cfg;
	int ret, rc;

	ret = config_new(&cfg, path);
	if (ret < 0)
		return ret;
	fs.cfg = cfg;
	fs.f = fopen(path, "re");
	if (fs.f == NULL) {
		ret = -errno;
		snprintf(errbuf, errlen, "%s: %s", path, strerror(errno));
		config_free(cfg);
		return ret;
	}
	config_setup_inih();
	rc = ini_parse_stream(config_read_file, &fs, config_handler, cfg);
	fclose(fs.f);
	return config_finish(cfg, rc, ret_cfg, errbuf, errlen);
}

int
config_parse_string(struct config **ret_cfg, const char *text, const char *name, char *errbuf,
	size_t errlen)
{
	struct string_stream ss = { .p = text };
	struct config *cfg;
	int ret, rc;

	ret = config_new(&cfg, name);
	if (ret < 0)
		return ret;
	ss.cfg = cfg;
	config_setup_inih();
	rc = ini_parse_stream(config_read_string, &ss, config_handler, cfg);
	return config_finish(cfg, rc, ret_cfg, errbuf, errlen);
}

void
config_free(struct config *cfg)
{
	if (cfg == NULL)
		return;
	for (size_t i = 0; i < cfg->n; i++) {
		free(cfg->entries[i].section);
		free(cfg->entries[i].key);
		/* Values may be tokens or paths to them: wipe before freeing. */
		explicit_bzero(cfg->entries[i].value, strlen(cfg->entries[i].value));
		free(cfg->entries[i].value);
	}
	for (size_t i = 0; i < cfg->n_sections; i++)
		free(cfg->sections[i]);
	free(cfg->sections);
	free(cfg->entries);
	free(cfg->name);
	free(cfg);
}

static bool
pattern_matches(const char *pattern, const char *section, const char *key)
{
	const char *dot = strrchr(pattern, '.');
	size_t slen;

	if (dot == NULL)
		return false;
	slen = (size_t)(dot - pattern);
	if (strcmp(dot + 1, "*") != 0 && strcmp(dot + 1, key) != 0)
		return false;
	/* "prefix:*" matches any section "prefix:<something>" */
	if (slen >= 2 && pattern[slen - 1] == '*' && pattern[slen - 2] == ':')
		return strncmp(section, pattern, slen - 1) == 0 && section[slen - 1] != '\0';
	return strlen(section) == slen && strncmp(section, pattern, slen) == 0;
}

int
config_check_known(const struct config *cfg, const char *const *known, char *errbuf, size_t errlen)
{
	for (size_t i = 0; i < cfg->n; i++) {
		const struct config_entry *e = &cfg->entries[i];
		bool ok = false;

		for (size_t k = 0; known[k] != NULL && !ok; k++)
			ok = pattern_matches(known[k], e->section, e->key);
		if (!ok) {
			snprintf(errbuf, errlen, "%s:%d: unknown key '%s.%s'", cfg->name, e->line,
				e->section, e->key);
			return -EINVAL;
		}
	}
	return 0;
}

const char *
config_get(const struct config *cfg, const char *section, const char *key)
{
	const struct config_entry *e = config_find(cfg, section, key);

	return e ? e->value : NULL;
}

const char *
config_get_str(const struct config *cfg, const char *section, const char *key, const char *def)
{
	const char *v = config_get(cfg, section, key);

	return v ? v : def;
}

int
config_get_long(const struct config *cfg, const char *section, const char *key, long min,
	long max, long def, long *ret, char *errbuf, size_t errlen)
{
	const struct config_entry *e = config_find(cfg, section, key);
	char *end;
	long v;

	if (e == NULL) {
		*ret = def;
		return 0;
	}
	errno = 0;
	v = strtol(e->value, &end, 10);
	if (e->value[0] == '\0' || *end != '\0' || errno == ERANGE || v < min || v > max) {
		snprintf(errbuf, errlen, "%s:%d: '%s.%s' must be an integer from %ld to %ld, not '%s'",
			cfg->name, e->line, section, key, min, max, e->value);
		return -EINVAL;
	}
	*ret = v;
	return 0;
}

int
config_get_bool(const struct config *cfg, const char *section, const char *key, bool def,
	bool *ret, char *errbuf, size_t errlen)
{
	static const char *const yes[] = { "yes", "true", "on", "1" };
	static const char *const no[] = { "no", "false", "off", "0" };
	const struct config_entry *e = config_find(cfg, section, key);

	if (e == NULL) {
		*ret = def;
		return 0;
	}
	for (size_t i = 0; i < 4; i++) {
		if (strcasecmp(e->value, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
		if (strcasecmp(e->value, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	}
	snprintf(errbuf, errlen, "%s:%d: '%s.%s' must be yes or no, not '%s'", cfg->name, e->line,
		section, key, e->value);
	return -EINVAL;
}

const char *
config_section(const struct config *cfg, size_t i)
{
	return i < cfg->n_sections ? cfg->sections[i] : NULL;
}

static gid_t secret_gid = (gid_t)-1;

void
config_secret_group(gid_t gid)
{
	secret_gid = gid;
}

static int
secret_mode_ok(const struct stat *st)
{
	if (!S_ISREG(st->st_mode))
		return -EINVAL;
	if (st->st_mode & (S_IWGRP | S_IXGRP | S_IRWXO))
		return -EPERM;
	if ((st->st_mode & S_IRGRP) && (secret_gid == (gid_t)-1 || st->st_gid != secret_gid))
		return -EPERM;
	return 0;
}

int
config_check_secret_file(const char *path)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return -errno;
	return secret_mode_ok(&st);
}

ssize_t
config_read_secret(const char *path, char *buf, size_t len)
{
	struct stat st;
	size_t got = 0;
	ssize_t n, r;
	char extra;
	int fd;

	if (len < 2)
		return -EINVAL;
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK); /* a FIFO: no wait */
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		r = -errno;
		goto out;
	}
	if ((r = secret_mode_ok(&st)) < 0)
		goto out;
	while (got < len - 1 && (n = read(fd, buf + got, len - 1 - got)) != 0) {
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			goto out;
		}
		got += (size_t)n;
	}
	if (got == len - 1) {
		while ((n = read(fd, &extra, 1)) < 0 && errno == EINTR)
			;
		if (n != 0) {
			r = n < 0 ? -errno : -EMSGSIZE;
			goto out;
		}
	}
	while (got > 0 && (buf[got - 1] == '\n' || buf[got - 1] == '\r'))
		got--;
	buf[got] = '\0';
	r = got > 0 ? (ssize_t)got : -ENODATA;
out:
	if (r < 0)
		explicit_bzero(buf, len);
	close(fd);
	return r;
}
