// SPDX-License-Identifier: MIT
/*
 * The enrollment record: what the control plane answered to our last accepted
 * enrollment, kept in <state_dir>/enrollment.json. It holds no secret (the private key
 * never leaves the TPM's sealed blob), but it is what the daemon builds the tunnel from,
 * so it is validated as strictly when read back as when it came off the network, and
 * written atomically so a crash leaves the old or the new record, never half of one.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "edge-keyd/edge-keyd.h"
#include "edge-keyd/tpm/tpmdev.h"

#define ENROLLMENT_VERSION 1
#define ENROLLMENT_MAX_SIZE (64 * 1024)

/* ---- small parsers ------------------------------------------------------------------------ */

static bool
hostname_valid(const char *h)
{
	size_t n = strlen(h);

	if (n == 0 || n > 253 || h[0] == '-' || h[0] == '.')
		return false;
	for (size_t i = 0; i < n; i++) {
		char ch = h[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			    (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' || ch == '_'))
			return false;
	}
	return true;
}

int
ekd_endpoint_split(const char *endpoint, char *host, size_t hostlen, uint16_t *ret_port)
{
	const char *colon, *hs, *he;
	char *end;
	unsigned long port;
	size_t n;

	if (endpoint == NULL || strlen(endpoint) >= EKD_ENDPOINT_MAX)
		return -EINVAL;
	if (endpoint[0] == '[') {
		he = strchr(endpoint, ']');
		if (he == NULL || he[1] != ':')
			return -EINVAL;
		hs = endpoint + 1;
		colon = he + 1;
	} else {
		colon = strrchr(endpoint, ':');
		if (colon == NULL || memchr(endpoint, ':', (size_t)(colon - endpoint)) != NULL)
			return -EINVAL; /* a bare IPv6 literal needs brackets */
		hs = endpoint;
		he = colon;
	}
	n = (size_t)(he - hs);
	if (n == 0 || n >= hostlen)
		return -EINVAL;
	if (colon[1] < '0' || colon[1] > '9')
		return -EINVAL;
	errno = 0;
	port = strtoul(colon + 1, &end, 10);
	if (errno != 0 || *end != '\0' || port == 0 || port > 65535)
		return -EINVAL;
	memcpy(host, hs, n);
	host[n] = '\0';
	if (endpoint[0] == '[') {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, host, &a6) != 1)
			return -EINVAL;
	} else if (!hostname_valid(host)) {
		return -EINVAL;
	}
	*ret_port = (uint16_t)port;
	return 0;
}

void
ekd_allowedip_format(const struct wg_allowedip *ip, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	if (inet_ntop(ip->family, ip->family == AF_INET ? (const void *)&ip->ip4 :
		(const void *)&ip->ip6, a, sizeof(a)) == NULL)
		snprintf(a, sizeof(a), "?");
	snprintf(buf, len, "%s/%u", a, ip->cidr);
}

/* A prefix with no bits set past its length ("10.20.0.0/24", not "10.20.0.1/24"). */
static bool
allowedip_is_network(const struct wg_allowedip *ip)
{
	const uint8_t *b = ip->family == AF_INET ? (const uint8_t *)&ip->ip4 :
		(const uint8_t *)&ip->ip6;
	unsigned int bits = ip->family == AF_INET ? 32 : 128;

	for (unsigned int i = ip->cidr; i < bits; i++)
		if (b[i / 8] & (0x80 >> (i % 8)))
			return false;
	return true;
}

/* ---- the record ----------------------------------------------------------------------------- */

static int __attribute__((format(printf, 3, 4)))
bad(char *errbuf, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(errbuf, errlen, fmt, ap);
	va_end(ap);
	return -EBADMSG;
}

static const char *
get_str(const json_t *j, const char *key)
{
	json_t *v = json_object_get(j, key);

	return json_is_string(v) ? json_string_value(v) : NULL;
}

/* Fields shared by the server's answer and our file. */
static int
parse_common(struct ekd_enrollment *e, const json_t *j, char *errbuf, size_t errlen)
{
	const char *s;
	json_t *v, *ips;
	char host[EKD_ENDPOINT_MAX];
	uint16_t port;
	size_t i;

	v = json_object_get(j, "device_id");
	if (json_is_integer(v) && json_integer_value(v) > 0)
		snprintf(e->device_id, sizeof(e->device_id), "%" JSON_INTEGER_FORMAT,
			json_integer_value(v));
	else if (json_is_string(v) && json_string_length(v) > 0 &&
		json_string_length(v) < sizeof(e->device_id))
		snprintf(e->device_id, sizeof(e->device_id), "%s", json_string_value(v));
	else
		return bad(errbuf, errlen, "'device_id' missing or not a short string");
	for (const char *p = e->device_id; *p; p++)
		if (*p <= ' ' || *p == 0x7f || *p == '"' || *p == '\\')
			return bad(errbuf, errlen, "'device_id' has an unprintable character");

	s = get_str(j, "tenant");
	if (s == NULL || s[0] == '\0' || strlen(s) >= sizeof(e->tenant))
		return bad(errbuf, errlen, "'tenant' missing or too long");
	snprintf(e->tenant, sizeof(e->tenant), "%s", s);

	s = get_str(j, "address");
	if (s == NULL || strchr(s, '/') == NULL || wg_allowedip_parse(&e->address, s) < 0)
		return bad(errbuf, errlen, "'address' missing or not an address with a prefix length");
	if (e->address.cidr != (e->address.family == AF_INET ? 32 : 128))
		return bad(errbuf, errlen, "'address' '%s' is not a single address (/32 or /128)", s);

	s = get_str(j, "address6");
	if (s != NULL) {
		if (strchr(s, '/') == NULL || wg_allowedip_parse(&e->address6, s) < 0 ||
			e->address6.family != AF_INET6 ||
			e->address6.cidr != 128)
			return bad(errbuf, errlen, "'address6' is not an IPv6 /128");
		e->has_address6 = true;
	}

	s = get_str(j, "server_public_key");
	if (s == NULL || key_from_base64(e->server_public_key, s) < 0 ||
		key_is_zero(e->server_public_key))
		return bad(errbuf, errlen, "'server_public_key' missing or not a WireGuard key");

	s = get_str(j, "endpoint");
	if (s == NULL || ekd_endpoint_split(s, host, sizeof(host), &port) < 0)
		return bad(errbuf, errlen, "'endpoint' missing or not host:port");
	snprintf(e->endpoint, sizeof(e->endpoint), "%s", s);

	ips = json_object_get(j, "allowed_ips");
	if (!json_is_array(ips) || json_array_size(ips) == 0 ||
		json_array_size(ips) > EKD_MAX_ALLOWED_IPS)
		return bad(errbuf, errlen, "'allowed_ips' must be a list of 1 to %d prefixes",
			EKD_MAX_ALLOWED_IPS);
	json_array_foreach(ips, i, v) {
		struct wg_allowedip *a = &e->allowed_ips[i];

		if (!json_is_string(v) || strchr(json_string_value(v), '/') == NULL ||
			wg_allowedip_parse(a, json_string_value(v)) < 0 ||
			!allowedip_is_network(a))
			return bad(errbuf, errlen, "'allowed_ips'[%zu] is not a network prefix", i);
	}
	e->n_allowed_ips = json_array_size(ips);

	v = json_object_get(j, "persistent_keepalive");
	if (v != NULL && !json_is_null(v)) {
		if (!json_is_integer(v) || json_integer_value(v) < 0 ||
			json_integer_value(v) > 65535)
			return bad(errbuf, errlen, "'persistent_keepalive' must be 0 to 65535 seconds");
		e->keepalive = (unsigned int)json_integer_value(v);
	}
	return 0;
}

int
ekd_enrollment_from_response(struct ekd_enrollment *ret, const json_t *resp,
	const uint8_t wg_pub[static WG_KEY_LEN], time_t now, const char *server_url,
	char *errbuf, size_t errlen)
{
	struct ekd_enrollment e = { 0 };
	int r;

	if (!json_is_object(resp))
		return bad(errbuf, errlen, "the enrollment answer is not a JSON object");
	r = parse_common(&e, resp, errbuf, errlen);
	if (r < 0)
		return r;
	memcpy(e.wg_public_key, wg_pub, WG_KEY_LEN);
	e.enrolled_at = (int64_t)now;
	if (server_url != NULL)
		snprintf(e.server_url, sizeof(e.server_url), "%s", server_url);
	*ret = e;
	return 0;
}

json_t *
ekd_enrollment_to_json(const struct ekd_enrollment *e)
{
	char srv[WG_KEY_B64_LEN], pub[WG_KEY_B64_LEN], buf[INET6_ADDRSTRLEN + 8];
	json_t *j, *ips;

	ips = json_array();
	if (ips == NULL)
		return NULL;
	for (size_t i = 0; i < e->n_allowed_ips; i++) {
		ekd_allowedip_format(&e->allowed_ips[i], buf, sizeof(buf));
		if (json_array_append_new(ips, json_string(buf)) < 0) {
			json_decref(ips);
			return NULL;
		}
	}
	key_to_base64(srv, e->server_public_key);
	key_to_base64(pub, e->wg_public_key);
	ekd_allowedip_format(&e->address, buf, sizeof(buf));
	j = json_pack("{s:i, s:s, s:s, s:s, s:s, s:s, s:s, s:o, s:i, s:I, s:s}",
		"version", ENROLLMENT_VERSION,
		"device_id", e->device_id,
		"tenant", e->tenant,
		"address", buf,
		"server_public_key", srv,
		"wg_public_key", pub,
		"endpoint", e->endpoint,
		"allowed_ips", ips,
		"persistent_keepalive", (int)e->keepalive,
		"enrolled_at", (json_int_t)e->enrolled_at,
		"server_url", e->server_url);
	if (j != NULL && e->has_address6) {
		ekd_allowedip_format(&e->address6, buf, sizeof(buf));
		if (json_object_set_new(j, "address6", json_string(buf)) < 0) {
			json_decref(j);
			return NULL;
		}
	}
	return j;
}

int
ekd_enrollment_from_json(struct ekd_enrollment *ret, const json_t *j, char *errbuf,
	size_t errlen)
{
	struct ekd_enrollment e = { 0 };
	const char *s;
	json_t *v;
	int r;

	if (!json_is_object(j))
		return bad(errbuf, errlen, "not a JSON object");
	v = json_object_get(j, "version");
	if (!json_is_integer(v) || json_integer_value(v) != ENROLLMENT_VERSION)
		return bad(errbuf, errlen, "'version' is not %d", ENROLLMENT_VERSION);
	r = parse_common(&e, j, errbuf, errlen);
	if (r < 0)
		return r;
	s = get_str(j, "wg_public_key");
	if (s == NULL || key_from_base64(e.wg_public_key, s) < 0)
		return bad(errbuf, errlen, "'wg_public_key' missing or not a WireGuard key");
	v = json_object_get(j, "enrolled_at");
	if (!json_is_integer(v) || json_integer_value(v) <= 0)
		return bad(errbuf, errlen, "'enrolled_at' missing or not a time");
	e.enrolled_at = json_integer_value(v);
	s = get_str(j, "server_url");
	if (s == NULL || strlen(s) >= sizeof(e.server_url))
		return bad(errbuf, errlen, "'server_url' missing or too long");
	snprintf(e.server_url, sizeof(e.server_url), "%s", s);
	*ret = e;
	return 0;
}

/* ---- files -------------------------------------------------------------------------------- */

int
ekd_write_file_atomic(const char *path, const void *data, size_t len, unsigned int mode)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const char *slash;
	size_t off = 0;
	int fd, dfd, r;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	slash = strrchr(path, '/');
	if (slash == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == path)
		snprintf(dir, sizeof(dir), "/");
	else
		snprintf(dir, sizeof(dir), "%.*s", (int)(slash - path), path);

	(void)unlink(tmp);
	fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
	if (fd < 0)
		return -errno;
	/* The umask may have taken bits away, never added: set exactly @mode. */
	if (fchmod(fd, mode) < 0)
		goto err;
	/* root writing into the daemon's state directory: the file stays the daemon's */
	r = tpmdev_own_like_dir(fd, dir);
	if (r < 0) {
		errno = -r;
		goto err;
	}
	while (off < len) {
		ssize_t n = write(fd, (const char *)data + off, len - off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			goto err;
		}
		off += (size_t)n;
	}
	if (fsync(fd) < 0)
		goto err;
	if (close(fd) < 0) {
		fd = -1;
		goto err;
	}
	fd = -1;
	if (rename(tmp, path) < 0)
		goto err;
	dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (dfd >= 0) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
err:
	r = -errno;
	if (fd >= 0)
		close(fd);
	(void)unlink(tmp);
	return r;
}

static int
enrollment_path(const char *state_dir, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s", state_dir, EKD_ENROLLMENT_FILE);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

int
ekd_enrollment_load(const char *state_dir, struct ekd_enrollment *ret, char *errbuf,
	size_t errlen)
{
	char path[PATH_MAX], why[200];
	json_error_t jerr;
	struct stat st;
	json_t *j;
	int r;

	r = enrollment_path(state_dir, path, sizeof(path));
	if (r < 0) {
		snprintf(errbuf, errlen, "state directory path too long");
		return r;
	}
	if (stat(path, &st) < 0) {
		r = -errno;
		if (r == -ENOENT)
			snprintf(errbuf, errlen, "'%s' does not exist: not enrolled yet "
				"(run 'edge-keyd enroll')", path);
		else
			snprintf(errbuf, errlen, "'%s': %s", path, strerror(errno));
		return r;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > ENROLLMENT_MAX_SIZE) {
		snprintf(errbuf, errlen, "'%s' is not a regular file of at most %d bytes", path,
			ENROLLMENT_MAX_SIZE);
		return -EBADMSG;
	}
	j = json_load_file(path, JSON_REJECT_DUPLICATES, &jerr);
	if (j == NULL) {
		snprintf(errbuf, errlen, "'%s':%d: %s", path, jerr.line, jerr.text);
		return -EBADMSG;
	}
	r = ekd_enrollment_from_json(ret, j, why, sizeof(why));
	json_decref(j);
	if (r < 0)
		snprintf(errbuf, errlen, "'%s': %s", path, why);
	return r;
}

int
ekd_enrollment_store(const char *state_dir, const struct ekd_enrollment *e, char *errbuf,
	size_t errlen)
{
	char path[PATH_MAX];
	char *text = NULL;
	json_t *j;
	int r;

	r = enrollment_path(state_dir, path, sizeof(path));
	if (r < 0) {
		snprintf(errbuf, errlen, "state directory path too long");
		return r;
	}
	j = ekd_enrollment_to_json(e);
	if (j != NULL)
		text = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
	json_decref(j);
	if (text == NULL) {
		snprintf(errbuf, errlen, "out of memory");
		return -ENOMEM;
	}
	{
		size_t n = strlen(text);
		char *t2 = realloc(text, n + 2);

		if (t2 == NULL) {
			free(text);
			snprintf(errbuf, errlen, "out of memory");
			return -ENOMEM;
		}
		text = t2;
		text[n] = '\n';
		text[n + 1] = '\0';
	}
	r = ekd_write_file_atomic(path, text, strlen(text), 0600);
	free(text);
	if (r < 0)
		snprintf(errbuf, errlen, "cannot write '%s': %s", path, strerror(-r));
	return r;
}

/* ---- backoff -------------------------------------------------------------------------------- */

unsigned int
ekd_backoff_next(struct ekd_backoff *b, uint32_t random)
{
	unsigned int d = b->base ? b->base : 1, half;

	for (unsigned int i = 0; i < b->attempt && d < b->max; i++)
		d = d > b->max / 2 ? b->max : d * 2;
	if (d > b->max && b->max > 0)
		d = b->max;
	if (b->attempt < 64)
		b->attempt++;
	/* "Equal jitter": half fixed, half random, so retries of a fleet spread out. */
	half = d / 2;
	return d - half + (half ? random % (half + 1) : 0);
}

unsigned int
ekd_backoff_retry_after(unsigned int delay, unsigned int retry_after, uint32_t random)
{
	unsigned int d = retry_after + random % (retry_after / 10 + 1);

	return d > delay ? d : delay;
}

void
ekd_backoff_reset(struct ekd_backoff *b)
{
	b->attempt = 0;
}

/*
 * Sleep @seconds, or less if SIGTERM or SIGINT is pending: the daemon blocks them (it reads
 * them from a signalfd) while it finishes an interrupted rotation at start, and a stop must
 * not wait out a busy control plane's Retry-After. The signal stays pending for the caller's
 * loop. Returns -EINTR if one is pending, 0 after the whole sleep.
 */
int
ekd_sleep_unless_stopping(unsigned int seconds)
{
	for (unsigned int i = 0; i < seconds; i++) {
		sigset_t pend;

		if (sigpending(&pend) == 0 &&
		    (sigismember(&pend, SIGTERM) == 1 || sigismember(&pend, SIGINT) == 1))
			return -EINTR;
		sleep(1);
	}
	return 0;
}
