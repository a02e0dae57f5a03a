/* SPDX-License-Identifier: MIT */
#ifndef COMMON_SDNOTIFY_H
#define COMMON_SDNOTIFY_H

/*
 * The service manager's notification protocol (sd_notify(3)), without libsystemd: one
 * datagram of "KEY=VALUE\n" lines to the AF_UNIX socket named by $NOTIFY_SOCKET (a path,
 * or "@name" for the abstract namespace). Never logs.
 */

#include <stdint.h>

/*
 * Send @state (e.g. "READY=1", "WATCHDOG=1", "RELOADING=1"). Returns 1 when sent, 0 when
 * not run under a service manager (no $NOTIFY_SOCKET), or a negative errno.
 */
int sdnotify(const char *state);

/*
 * The watchdog interval systemd expects pings within ($WATCHDOG_USEC, when $WATCHDOG_PID
 * is unset or ours). Returns 1 and writes @ret_usec, 0 when no watchdog is configured, or
 * -EINVAL when the variables are malformed.
 */
int sdnotify_watchdog_usec(uint64_t *ret_usec);

#endif
