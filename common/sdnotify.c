// SPDX-License-Identifier: MIT
/*
 * sd_notify(3) in a few lines: a datagram to $NOTIFY_SOCKET. We do not link libsystemd
 * for this (docs/dependencies.md): the protocol is stable and documented, and the daemons
 * also run without systemd (tests, containers).
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "sdnotify.h"

int
sdnotify(const char *state)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	const char *path = getenv("NOTIFY_SOCKET");
	size_t len, slen;
	socklen_t salen;
	ssize_t n;
	int fd, ret = 1;

	if (path == NULL || path[0] == '\0')
		return 0;
	len = strlen(path);
	if ((path[0] != '/' && path[0] != '@') || len >= sizeof(sa.sun_path))
		return -EAFNOSUPPORT;
	memcpy(sa.sun_path, path, len);
	if (path[0] == '@')
		sa.sun_path[0] = '\0'; /* abstract namespace */
	salen = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + len + (path[0] == '/'));

	fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	slen = strlen(state);
	n = sendto(fd, state, slen, MSG_NOSIGNAL, (struct sockaddr *)&sa, salen);
	if (n < 0)
		ret = -errno;
	else if ((size_t)n != slen)
		ret = -EMSGSIZE;
	close(fd);
	return ret;
}

int
sdnotify_watchdog_usec(uint64_t *ret_usec)
{
	const char *s = getenv("WATCHDOG_USEC"), *p = getenv("WATCHDOG_PID");
	unsigned long long v;
	char *end;

	if (s == NULL)
		return 0;
	if (p != NULL) {
		errno = 0;
		v = strtoull(p, &end, 10);
		if (errno != 0 || *end != '\0' || end == p)
			return -EINVAL;
		if (v != (unsigned long long)getpid())
			return 0; /* meant for another process (our parent) */
	}
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *end != '\0' || end == s || v == 0)
		return -EINVAL;
	*ret_usec = (uint64_t)v;
	return 1;
}
