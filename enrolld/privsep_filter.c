// SPDX-License-Identifier: MIT
/*
 * The network process's seccomp filter: an allow-list (docs/security.md, "Privilege
 * separation"). Everything not named here fails with EPERM and, where the kernel can
 * (SECCOMP_FILTER_FLAG_LOG), leaves an audit line ("type=1326 ... syscall=N") in the kernel
 * log: a surprise call becomes an error and a log line, not a dead fleet.
 *
 * The list was measured, not guessed: the child under `strace -f` through enrolld_privsep.sh,
 * enrolld_api.sh, enrolld_http.sh and enrolld_flood.sh with privilege separation on (every
 * syscall of the child and of all its threads after the filter), plus what the next step
 * needs and a test cannot show yet: libpq to PostgreSQL over AF_UNIX or TCP (connect, poll,
 * getaddrinfo's DNS), LMDB's map growth (ftruncate, mremap), glibc paths a test may not
 * reach (nanosleep, sched_yield, tgkill for abort()).
 */
#include <errno.h>
#include <stdbool.h>
#include <linux/sched.h>
#include <sched.h>
#include <seccomp.h>
#include <stdint.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "enrolld/privsep.h"

#ifndef PR_SET_VMA
#define PR_SET_VMA 0x53564d41
#endif

/* A sanitizer build (make SANITIZE=1, fuzzing) allows what LeakSanitizer needs: below. */
#if defined(__SANITIZE_ADDRESS__)
#define PS_SANITIZER 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define PS_SANITIZER 1
#endif
#endif
#ifndef PS_SANITIZER
#define PS_SANITIZER 0
#endif

/*
 * make CFLAGS+=-DPS_SECCOMP_LOG_ONLY: a debugging build whose filter allows everything and
 * logs what the allow-list would refuse (the kernel log, "type=1326"): how to find what a
 * new library or NSS module needs. Never for production.
 */
#ifdef PS_SECCOMP_LOG_ONLY
#define PS_DEFAULT_ACTION SCMP_ACT_LOG
#else
#define PS_DEFAULT_ACTION SCMP_ACT_ERRNO(EPERM)
#endif

/* Allowed with any arguments. */
static const int allow[] = {
	/* memory: malloc, thread stacks, LMDB's map (mmap of the file, growth) */
	SCMP_SYS(brk), SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mprotect), SCMP_SYS(mremap),
	SCMP_SYS(madvise), SCMP_SYS(mlock), SCMP_SYS(munlock), SCMP_SYS(msync),
	/* threads (clone itself: below, with its flags checked) */
	SCMP_SYS(futex), SCMP_SYS(set_robust_list), SCMP_SYS(get_robust_list), SCMP_SYS(rseq),
	SCMP_SYS(set_tid_address), SCMP_SYS(sched_yield), SCMP_SYS(sched_getaffinity),
	SCMP_SYS(gettid), SCMP_SYS(getpid), SCMP_SYS(getppid), SCMP_SYS(exit),
	SCMP_SYS(exit_group), SCMP_SYS(restart_syscall),
	/* identity (read only) */
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid), SCMP_SYS(getegid),
	SCMP_SYS(getresuid), SCMP_SYS(getresgid), SCMP_SYS(getgroups),
	/* files: the database (pwrite, fdatasync, fcntl locks), tokens and CRLs re-read on
	 * SIGHUP (openat, getdents64), /dev/urandom, the log on stderr, libpq's .pgpass */
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev), SCMP_SYS(pread64),
	SCMP_SYS(pwrite64), SCMP_SYS(preadv), SCMP_SYS(pwritev), SCMP_SYS(lseek),
	SCMP_SYS(close), SCMP_SYS(openat), SCMP_SYS(fstat), SCMP_SYS(newfstatat),
	SCMP_SYS(statx), SCMP_SYS(getdents64), SCMP_SYS(fcntl), SCMP_SYS(ftruncate),
	SCMP_SYS(fsync), SCMP_SYS(fdatasync), SCMP_SYS(dup), SCMP_SYS(dup3),
	/* http.c's unix_socket: the old socket file removed, the new one chmod'ed */
	SCMP_SYS(unlink), SCMP_SYS(chmod),
	/* sockets (socket() and socketpair(): below, by family) */
	SCMP_SYS(bind), SCMP_SYS(listen), SCMP_SYS(accept), SCMP_SYS(accept4),
	SCMP_SYS(connect), SCMP_SYS(getsockname), SCMP_SYS(getpeername),
	SCMP_SYS(getsockopt), SCMP_SYS(setsockopt), SCMP_SYS(shutdown), SCMP_SYS(sendto),
	SCMP_SYS(recvfrom), SCMP_SYS(sendmsg), SCMP_SYS(recvmsg), SCMP_SYS(sendmmsg),
	SCMP_SYS(recvmmsg),
	/* event loops: libmicrohttpd (epoll, eventfd), libpq and the resolver (poll) */
	SCMP_SYS(epoll_create1), SCMP_SYS(epoll_ctl), SCMP_SYS(epoll_wait),
	SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_pwait2), SCMP_SYS(eventfd2), SCMP_SYS(pipe2),
	SCMP_SYS(poll), SCMP_SYS(ppoll), SCMP_SYS(select), SCMP_SYS(pselect6),
	/* time (the vDSO serves most; valgrind has none) */
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres), SCMP_SYS(gettimeofday),
	SCMP_SYS(time), SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	/* randomness: OpenSSL, GnuTLS, libmicrohttpd */
	SCMP_SYS(getrandom),
	/* signals: the main thread's sigtimedwait, every thread's mask */
	SCMP_SYS(rt_sigaction), SCMP_SYS(rt_sigprocmask), SCMP_SYS(rt_sigreturn),
	SCMP_SYS(rt_sigtimedwait), SCMP_SYS(sigaltstack),
};

/*
 * Not in the list, so refused, and worth saying why (the old deny-list's entries): execve,
 * execveat, ptrace, process_vm_*, mount and the new mount API, umount2, pivot_root, chroot,
 * unshare, setns, module and kexec calls, bpf, perf_event_open, keyrings, userfaultfd,
 * io_uring_*, open_by_handle_at, every set*id call, capset, mknod, personality, clock
 * setting, reboot, swap, acct, syslog; and what that list let through: fork() (clone
 * without CLONE_THREAD), kill() of other processes, memfd_create, pidfd_*, socket() of
 * AF_NETLINK, AF_PACKET, AF_KEY, AF_ALG, AF_VSOCK and every family but the three below.
 */
static const int socket_families[] = {AF_UNIX, AF_INET, AF_INET6};

/* One argument comparison, every field set (libseccomp's SCMP_A* leave datum_b out). */
static struct scmp_arg_cmp
arg(unsigned int n, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
	return (struct scmp_arg_cmp){.arg = n, .op = op, .datum_a = a, .datum_b = b};
}

/* A call this architecture does not have (SCMP_SYS gives a negative pseudo number) is skipped. */
static int
add(scmp_filter_ctx ctx, int nr, unsigned int n, const struct scmp_arg_cmp *cmp)
{
	if (nr < 0)
		return 0;
	return seccomp_rule_add_array(ctx, SCMP_ACT_ALLOW, nr, n, cmp);
}

static int
load(bool tsync)
{
	/* A thread, never a process or a namespace: CLONE_THREAD set, no CLONE_NEW* flag. */
	const uint64_t clone_mask = CLONE_THREAD | CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC |
				    CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWCGROUP;
	const int prctl_ok[] = {PR_SET_NAME, PR_GET_NAME, PR_SET_PDEATHSIG, PR_GET_DUMPABLE,
		PR_SET_VMA};
	const unsigned long ioctl_ok[] = {FIONREAD, FIONBIO, TCGETS};
	const pid_t self = getpid();
	scmp_filter_ctx ctx;
	int r = 0;

	ctx = seccomp_init(PS_DEFAULT_ACTION);
	if (ctx == NULL)
		return -ENOMEM;
	/* Every thread: the store's writer thread exists before the drop (TSYNC also sets
	 * no_new_privs on each). */
	if (tsync)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	/* Refusals to the kernel log; a kernel without the flag still gets the filter. */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1);
	for (size_t i = 0; r == 0 && i < sizeof(allow) / sizeof(allow[0]); i++)
		r = add(ctx, allow[i], 0, NULL);
	for (size_t i = 0; r == 0 && i < sizeof(socket_families) / sizeof(socket_families[0]);
		i++) {
		struct scmp_arg_cmp c = arg(0, SCMP_CMP_EQ, (scmp_datum_t)socket_families[i], 0);

		r = add(ctx, SCMP_SYS(socket), 1, &c);
	}
	if (r == 0) {
		struct scmp_arg_cmp c = arg(0, SCMP_CMP_EQ, AF_UNIX, 0);

		r = add(ctx, SCMP_SYS(socketpair), 1, &c);
	}
	if (r == 0) {
		struct scmp_arg_cmp c = arg(0, SCMP_CMP_MASKED_EQ, clone_mask, CLONE_THREAD);

		r = add(ctx, SCMP_SYS(clone), 1, &c);
	}
	/* clone3's flags are in memory a filter cannot read: ENOSYS makes glibc use clone. */
	if (r == 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	for (size_t i = 0; r == 0 && i < sizeof(prctl_ok) / sizeof(prctl_ok[0]); i++) {
		struct scmp_arg_cmp c = arg(0, SCMP_CMP_EQ, (scmp_datum_t)prctl_ok[i], 0);

		r = add(ctx, SCMP_SYS(prctl), 1, &c);
	}
	for (size_t i = 0; r == 0 && i < sizeof(ioctl_ok) / sizeof(ioctl_ok[0]); i++) {
		struct scmp_arg_cmp c = arg(1, SCMP_CMP_EQ, (scmp_datum_t)ioctl_ok[i], 0);

		r = add(ctx, SCMP_SYS(ioctl), 1, &c);
	}
	/*
	 * prlimit64 on ourselves: any getrlimit, and setrlimit of RLIMIT_NOFILE (main.c's
	 * raise_nofile runs after the drop; up to the hard limit needs no privilege, and the
	 * process has none to go past it). Found by the VM test: under systemd the soft limit
	 * is 1024 and the refused raise capped the connections; the namespace tests start
	 * with a soft limit high enough that enrolld never asks.
	 */
	if (r == 0) {
		struct scmp_arg_cmp c[2] = {arg(0, SCMP_CMP_EQ, 0, 0), arg(2, SCMP_CMP_EQ, 0, 0)};

		r = add(ctx, SCMP_SYS(prlimit64), 2, c);
	}
	if (r == 0) {
		struct scmp_arg_cmp c[2] = {arg(0, SCMP_CMP_EQ, 0, 0),
			arg(1, SCMP_CMP_EQ, RLIMIT_NOFILE, 0)};

		r = add(ctx, SCMP_SYS(prlimit64), 2, c);
	}
	/* Signals to ourselves only (raise, abort, pthread_kill). */
	if (r == 0) {
		struct scmp_arg_cmp c = arg(0, SCMP_CMP_EQ, (scmp_datum_t)self, 0);

		r = add(ctx, SCMP_SYS(tgkill), 1, &c);
		if (r == 0)
			r = add(ctx, SCMP_SYS(kill), 1, &c);
	}
#if PS_SANITIZER
	/*
	 * LeakSanitizer at exit (measured: strace, then the kernel's audit lines of each
	 * refusal): the process clone()s a tracer task (CLONE_VM|CLONE_FS|CLONE_FILES|
	 * CLONE_UNTRACED: shares the memory, not a thread, not a fork) between
	 * prctl(PR_GET_DUMPABLE/PR_SET_DUMPABLE/PR_SET_PTRACER) and waits for it (wait4); the
	 * tracer reads /proc/PID/task with the runtime's own open and getdents (not openat,
	 * getdents64) and ptrace()s every thread. fork() stays refused. Not measured: an ASan
	 * report's symbolizer (fork and exec: refused, so the report has raw addresses).
	 */
	{
		static const int san[] = {SCMP_SYS(ptrace), SCMP_SYS(wait4), SCMP_SYS(prctl),
			SCMP_SYS(open), SCMP_SYS(getdents)};
		struct scmp_arg_cmp c = arg(0, SCMP_CMP_MASKED_EQ,
			clone_mask | CLONE_VM | CLONE_UNTRACED, CLONE_VM | CLONE_UNTRACED);

		for (size_t i = 0; r == 0 && i < sizeof(san) / sizeof(san[0]); i++)
			r = add(ctx, san[i], 0, NULL);
		if (r == 0)
			r = add(ctx, SCMP_SYS(clone), 1, &c);
	}
#endif
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

int
privsep_seccomp_load(void)
{
	int r = load(true);

	/*
	 * No seccomp(2), only prctl(PR_SET_SECCOMP), which cannot synchronise threads: a
	 * kernel before 3.17, or valgrind (3.19 does not know the call). Load it on this
	 * thread and the ones it starts, and say so: the caller logs it.
	 */
	if (r == -EOPNOTSUPP || r == -ENOSYS) {
		r = load(false);
		if (r == 0)
			r = 1;
	}
	return r;
}
