// SPDX-License-Identifier: MIT
/* Userspace WireGuard processes (wireguard-go): start, adopt, stop. See wgproc.h. */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/wg.h"
#include "common/wgproc.h"

extern char **environ;

#define WGPROC_POLL_MS 20

static void
sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

int
wgproc_sock_path(const char *uapi_dir, const char *ifname, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s.sock", uapi_dir ? uapi_dir : WG_UAPI_DEFAULT_DIR,
		ifname);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

pid_t
wgproc_sock_pid(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct ucred cred;
	socklen_t len = sizeof(cred);
	pid_t pid;
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
		getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		pid = -errno;
		close(fd);
		return pid;
	}
	close(fd);
	return cred.pid > 0 ? cred.pid : -ESRCH;
}

static int
mkdir_p(const char *dir, mode_t mode)
{
	char buf[256];
	size_t n = strlen(dir);

	if (n == 0 || n >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, dir, n + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* Our environment with WG_PROCESS_FOREGROUND=1 instead of any other value of it. */
static char **
child_env(void)
{
	static const char fg[] = "WG_PROCESS_FOREGROUND=";
	size_t n = 0, j = 0;
	char **envp;

	while (environ[n] != NULL)
		n++;
	envp = calloc(n + 2, sizeof(*envp));
	if (envp == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		if (strncmp(environ[i], fg, sizeof(fg) - 1) != 0)
			envp[j++] = environ[i];
	envp[j] = (char *)"WG_PROCESS_FOREGROUND=1";
	return envp;
}

void
wgproc_spawnattr_init(posix_spawnattr_t *attr)
{
	sigset_t none, dflt;

	/* The daemon blocks or ignores these; the child must not inherit that. */
	sigemptyset(&none);
	sigemptyset(&dflt);
	sigaddset(&dflt, SIGPIPE);
	sigaddset(&dflt, SIGTERM);
	sigaddset(&dflt, SIGINT);
	sigaddset(&dflt, SIGHUP);
	sigaddset(&dflt, SIGCHLD);
	posix_spawnattr_init(attr);
	posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF);
	posix_spawnattr_setsigmask(attr, &none);
	posix_spawnattr_setsigdefault(attr, &dflt);
}

static int
spawn(const struct wgproc_opts *opts, const char *ifname, pid_t *ret_pid)
{
	const char *prog = opts->program ? opts->program : "wireguard-go";
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	char *argv[3];
	char **envp;
	int r;

	envp = child_env();
	if (envp == NULL)
		return -ENOMEM;
	argv[0] = (char *)prog;
	argv[1] = (char *)ifname;
	argv[2] = NULL;
	wgproc_spawnattr_init(&attr);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	if (!opts->keep_stderr)
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	r = -posix_spawnp(ret_pid, prog, &fa, &attr, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	free(envp);
	return r;
}

bool
wgproc_alive(struct wgproc *wp)
{
	if (wp->pid <= 0)
		return false;
	if (wp->our_child) {
		pid_t r = waitpid(wp->pid, NULL, WNOHANG);

		if (r == wp->pid || (r < 0 && errno == ECHILD)) {
			wp->pid = 0;
			wp->our_child = false;
			return false;
		}
		return true;
	}
	/* Adopted, but possibly our child after all (a zombie still answers kill 0). */
	if (waitpid(wp->pid, NULL, WNOHANG) == wp->pid ||
		(kill(wp->pid, 0) < 0 && errno == ESRCH)) {
		wp->pid = 0;
		return false;
	}
	return true;
}

int
wgproc_ensure(struct wgproc *wp, const struct wgproc_opts *opts, const char *ifname)
{
	const char *dir = opts->uapi_dir ? opts->uapi_dir : WG_UAPI_DEFAULT_DIR;
	int timeout = opts->timeout_ms > 0 ? opts->timeout_ms : 5000;
	char sock[sizeof(((struct sockaddr_un *)0)->sun_path)];
	pid_t pid;
	int r, status;

	r = wgproc_sock_path(dir, ifname, sock, sizeof(sock));
	if (r < 0)
		return r;
	pid = wgproc_sock_pid(sock);
	if (pid > 0) {
		if (wp->pid != pid) {
			/* Not the one we knew (or we knew none): the one answering is it. */
			if (wp->pid > 0 && wp->our_child)
				(void)wgproc_stop(wp, 0);
			log_debug("wgproc: adopting pid %d serving '%s'", (int)pid, ifname);
			wp->pid = pid;
			wp->our_child = false;
		}
		return 0;
	}
	/* Nobody answers. A process we know that still lives is wedged: replace it. */
	if (wp->pid > 0)
		(void)wgproc_stop(wp, 0);
	if (pid == -ECONNREFUSED)
		(void)unlink(sock); /* left by a dead instance */
	r = mkdir_p(dir, 0755);
	if (r < 0)
		return r;
	r = spawn(opts, ifname, &pid);
	if (r < 0)
		return r;
	log_debug("wgproc: started pid %d for '%s'", (int)pid, ifname);
	wp->pid = pid;
	wp->our_child = true;
	for (int waited = 0; waited < timeout; waited += WGPROC_POLL_MS) {
		if (wgproc_sock_pid(sock) > 0)
			return 1;
		if (waitpid(pid, &status, WNOHANG) == pid) {
			log_debug("wgproc: pid %d exited (status %d) before serving '%s'", (int)pid,
				WIFEXITED(status) ? WEXITSTATUS(status) : -1, ifname);
			wp->pid = 0;
			wp->our_child = false;
			return -ECHILD;
		}
		sleep_ms(WGPROC_POLL_MS);
	}
	(void)wgproc_stop(wp, 0);
	return -ETIMEDOUT;
}

int
wgproc_stop(struct wgproc *wp, int timeout_ms)
{
	int timeout = timeout_ms > 0 ? timeout_ms : 3000;

	if (wp == NULL || wp->pid <= 0)
		return 0;
	if (kill(wp->pid, SIGTERM) < 0 && errno == ESRCH) {
		if (wp->our_child)
			(void)waitpid(wp->pid, NULL, WNOHANG);
		goto gone;
	}
	for (int waited = 0; waited < timeout; waited += WGPROC_POLL_MS) {
		if (!wgproc_alive(wp))
			goto gone;
		sleep_ms(WGPROC_POLL_MS);
	}
	log_debug("wgproc: pid %d ignored SIGTERM, killing it", (int)wp->pid);
	(void)kill(wp->pid, SIGKILL);
	if (wp->our_child)
		(void)waitpid(wp->pid, NULL, 0);
gone:
	wp->pid = 0;
	wp->our_child = false;
	return 0;
}
