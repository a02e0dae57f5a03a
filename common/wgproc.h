/* SPDX-License-Identifier: MIT */
#ifndef COMMON_WGPROC_H
#define COMMON_WGPROC_H

/*
 * Userspace WireGuard processes: start `wireguard-go IFNAME` for an interface, adopt an
 * instance already serving it (left by a previous run of the daemon), stop it.
 *
 * The child gets WG_PROCESS_FOREGROUND=1 (so it does not daemonise and its PID stays
 * ours), an empty signal mask and default dispositions for the signals daemons usually
 * block or ignore, stdin/stdout on /dev/null and stderr on /dev/null unless asked
 * otherwise. An instance "serves" an interface when something answers on
 * <uapi_dir>/<ifname>.sock; SO_PEERCRED names its PID.
 *
 * wireguard-go itself always uses /var/run/wireguard, which is not per network
 * namespace: two daemons in two namespaces need different interface names.
 *
 * Functions return 0 or a negative errno and never log above debug.
 */

#include <spawn.h>
#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

struct wgproc {
	pid_t pid;	 /* the instance serving the interface, 0 if none known */
	bool our_child;	 /* spawned by us: reaped with waitpid; else adopted */
};

struct wgproc_opts {
	const char *program;	/* wireguard-go, looked up in PATH; NULL = "wireguard-go" */
	const char *uapi_dir;	/* NULL = WG_UAPI_DEFAULT_DIR */
	bool keep_stderr;	/* let the child write to our stderr */
	int timeout_ms;		/* how long to wait for the socket; 0 = 5000 */
};

/*
 * Spawn attributes for a daemon's child: an empty signal mask and default dispositions for
 * the signals daemons block or ignore (also for the daemon's other children, e.g. hooks).
 * The caller posix_spawnattr_destroy()s it.
 */
void wgproc_spawnattr_init(posix_spawnattr_t *attr);

/* <uapi_dir>/<ifname>.sock into @buf; -ENAMETOOLONG if it does not fit. */
int wgproc_sock_path(const char *uapi_dir, const char *ifname, char *buf, size_t len);

/*
 * The PID of the process answering on the UAPI socket @path, or a negative errno:
 * -ENOENT no socket, -ECONNREFUSED a socket nobody answers on (a dead instance's).
 */
pid_t wgproc_sock_pid(const char *path);

/*
 * Make sure an instance serves @ifname: keep the one @wp knows if it still answers, adopt
 * any other that answers, else remove a stale socket, start one and wait until it answers.
 * Returns 1 if it started a process, 0 if one was already serving, or a negative errno
 * (-ECHILD: it exited before serving; -ETIMEDOUT: it never answered and was killed).
 */
int wgproc_ensure(struct wgproc *wp, const struct wgproc_opts *opts, const char *ifname);

/*
 * Whether the instance @wp knows is still alive (reaps our child if it exited, and then
 * clears wp->pid).
 */
bool wgproc_alive(struct wgproc *wp);

/*
 * Stop the instance: SIGTERM (wireguard-go then removes its interface and socket), wait
 * up to @timeout_ms (0 = 3000) for it to go, then SIGKILL. Clears @wp. A NULL or empty
 * @wp is a no-op.
 */
int wgproc_stop(struct wgproc *wp, int timeout_ms);

#endif
