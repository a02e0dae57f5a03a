/* SPDX-License-Identifier: MIT */
#ifndef COMMON_LOG_H
#define COMMON_LOG_H

/*
 * OpenBSD-style logging for the daemons. Library code in common/ never logs above
 * log_debug: it returns negative errnos and lets the daemon decide what to say.
 *
 * log_init(1, ...) logs to stderr (foreground, -d); log_init(0, ...) to syslog, which
 * journald collects. log_warn appends ": strerror(errno)"; log_warnx does not.
 * fatal/fatalx log and exit(1).
 */

#include <stdarg.h>

void log_init(int foreground, const char *ident);
void log_setverbose(int verbose);
int log_getverbose(void);
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warnx(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void fatal(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void fatalx(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void vlog(int pri, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));

#endif
