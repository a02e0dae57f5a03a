// SPDX-License-Identifier: MIT
/*
 * edge-keyd: the gateway daemon. Its key lives sealed in the TPM; it proves to the control
 * plane what it is, gets a /32, and keeps an outbound-only WireGuard tunnel up. It never
 * opens a listening socket.
 *
 * This file is the command line and the daemon loop; the work is in enroll.c (TPM and
 * control plane), tunnel.c (the interface) and status.c.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <linux/capability.h>
#include <pwd.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/log.h"
#include "common/secmem.h"
#include "edge-keyd/edge-keyd.h"

static void
usage(FILE *f)
{
	fprintf(f,
		"usage: edge-keyd [-dnv] [-c file] command [options]\n"
		"\n"
		"The gateway daemon: TPM-sealed WireGuard key, attested enrollment, and an\n"
		"outbound-only tunnel to the control plane.\n"
		"\n"
		"Commands:\n"
		"  provision [--offline]  prepare the TPM (EK, SRK, AK, sealed WireGuard key; a\n"
		"                         second run keeps the identity) and pre-register the EK\n"
		"                         in server.tenant; --offline prints the registration\n"
		"                         record as JSON instead of sending it\n"
		"  enroll                 attested enrollment; writes state_dir/enrollment.json\n"
		"  run                    the daemon: bring the tunnel up and keep it up\n"
		"  rotate                 new sealed key, attested re-enrollment, same address\n"
		"  status [--json]        the tunnel and the enrollment (exit 0 if the tunnel is\n"
		"                         up, 3 if not); never a key\n"
		"  wg-quick               print a wg-quick file for this device whose PostUp\n"
		"                         runs `edge-keyd setkey %%i` (TPM custody kept)\n"
		"  setkey IFNAME          unseal the WireGuard key and set it on IFNAME; the key\n"
		"                         is never written to a file\n"
		"  networkd-key           write the key to standard output, which must be a socket\n"
		"                         to systemd-networkd (edge-keyd-key.socket)\n"
		"\n"
		"Options:\n"
		"  -c, --config FILE  configuration file (default %s)\n"
		"  -d, --foreground   run: stay in the foreground and log to stderr\n"
		"  -n, --check        check the configuration and exit\n"
		"  -v, --verbose      debug messages (twice: also wireguard-go's)\n"
		"  -h, --help         this text\n"
		"  -V, --version      print the version\n"
		"\n"
		"run: SIGTERM/SIGINT stop (removing the interface if wireguard.remove_on_exit),\n"
		"SIGHUP reloads the configuration. See docs/edge-keyd.md.\n",
		EKD_DEFAULT_CONF);
}

static uint32_t
random32(void)
{
	uint32_t v = 0;

	if (getrandom(&v, sizeof(v), GRND_NONBLOCK) != sizeof(v))
		v = (uint32_t)time(NULL) ^ (uint32_t)getpid();
	return v;
}

/* ---- the daemon ---------------------------------------------------------------------------- */

struct daemon {
	const char *conf_path;
	struct ekd_conf conf;
	int sfd;
	bool stop;
	bool reload;
	struct ekd_enrollment e;
	bool enrolled;
	struct stat enr_st;	/* enrollment.json as last read */
	struct ekd_tunnel *tun;
	struct ekd_backoff enroll_backoff;
	time_t next_enroll;	/* no (re-)enrollment attempt before this */
	bool key_rejected;	/* the sealed key is not the enrolled one */
};

/* Wait up to @seconds for a signal; handle it. */
static void
wait_signal(struct daemon *d, int seconds)
{
	struct pollfd pfd = { .fd = d->sfd, .events = POLLIN };
	struct signalfd_siginfo si;

	if (poll(&pfd, 1, seconds * 1000) <= 0)
		return;
	while (read(d->sfd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			log_info("signal %d: shutting down", (int)si.ssi_signo);
			d->stop = true;
			break;
		case SIGHUP:
			d->reload = true;
			break;
		default:
			break;
		}
	}
}

static void
reload_conf(struct daemon *d)
{
	struct ekd_conf nc;
	char errbuf[512];

	d->reload = false;
	if (ekd_conf_load(&nc, d->conf_path, errbuf, sizeof(errbuf)) < 0) {
		log_warnx("reload: %s; keeping the running configuration", errbuf);
		return;
	}
	if (strcmp(nc.ifname, d->conf.ifname) != 0 || nc.backend != d->conf.backend ||
		strcmp(nc.state_dir, d->conf.state_dir) != 0) {
		log_warnx("reload: wireguard.interface, wireguard.backend and device.state_dir "
			"change only with a restart; keeping the running ones");
		free(nc.ifname);
		nc.ifname = strdup(d->conf.ifname);
		free(nc.state_dir);
		nc.state_dir = strdup(d->conf.state_dir);
		nc.backend = d->conf.backend;
		if (nc.ifname == NULL || nc.state_dir == NULL) {
			log_warnx("reload: out of memory; keeping the running configuration");
			ekd_conf_clear(&nc);
			return;
		}
	}
	ekd_conf_clear(&d->conf);
	d->conf = nc;
	ekd_tunnel_set_conf(d->tun, &d->conf);
	log_info("configuration reloaded from '%s'", d->conf_path);
}

/* Tunnel-relevant parts of two records differ. */
static bool
enrollment_moved(const struct ekd_enrollment *a, const struct ekd_enrollment *b)
{
	char x[64], y[64];

	ekd_allowedip_format(&a->address, x, sizeof(x));
	ekd_allowedip_format(&b->address, y, sizeof(y));
	if (strcmp(x, y) != 0 || strcmp(a->endpoint, b->endpoint) != 0 ||
		!key_equal(a->server_public_key, b->server_public_key) ||
		a->n_allowed_ips != b->n_allowed_ips || a->keepalive != b->keepalive)
		return true;
	for (size_t i = 0; i < a->n_allowed_ips; i++) {
		ekd_allowedip_format(&a->allowed_ips[i], x, sizeof(x));
		ekd_allowedip_format(&b->allowed_ips[i], y, sizeof(y));
		if (strcmp(x, y) != 0)
			return true;
	}
	return false;
}

/*
 * Read enrollment.json again if it changed on disk (`edge-keyd rotate` or `enroll` ran
 * next to us). Returns 1 if the tunnel must be configured again, 0 if not.
 */
static int
reload_enrollment(struct daemon *d)
{
	char path[4096], errbuf[512];
	struct ekd_enrollment e;
	struct stat st;
	int moved;

	snprintf(path, sizeof(path), "%s/%s", d->conf.state_dir, EKD_ENROLLMENT_FILE);
	if (stat(path, &st) < 0)
		return 0;
	if (d->enrolled && st.st_ino == d->enr_st.st_ino &&
		st.st_mtim.tv_sec == d->enr_st.st_mtim.tv_sec &&
		st.st_mtim.tv_nsec == d->enr_st.st_mtim.tv_nsec && st.st_size == d->enr_st.st_size)
		return 0;
	if (ekd_enrollment_load(d->conf.state_dir, &e, errbuf, sizeof(errbuf)) < 0) {
		log_warnx("%s; keeping the enrollment in memory", errbuf);
		d->enr_st = st;
		return 0;
	}
	/* A new key alone (rotation) is for the next check: `rotate` may have set it already. */
	moved = !d->enrolled || enrollment_moved(&d->e, &e);
	if (d->enrolled)
		log_info("'%s' changed on disk: using the new enrollment", path);
	d->e = e;
	d->enrolled = true;
	d->enr_st = st;
	d->key_rejected = false;
	return moved;
}

/* One attempt at (re-)enrolling; on success the tunnel is configured again. */
static void
try_enroll(struct daemon *d, time_t now, const char *why)
{
	struct ekd_enrollment e;
	char errbuf[512];
	unsigned int delay, after = 0;
	int r;

	log_info("enrolling (%s)", why);
	r = ekd_enroll_once(&d->conf, false, &e, &after, errbuf, sizeof(errbuf));
	if (r == 0) {
		r = ekd_enrollment_store(d->conf.state_dir, &e, errbuf, sizeof(errbuf));
		if (r < 0)
			log_warnx("enrolled, but %s; keeping it in memory", errbuf);
		(void)reload_enrollment(d);
		d->e = e;
		d->enrolled = true;
		d->key_rejected = false;
		{
			char addr[64];

			ekd_allowedip_format(&e.address, addr, sizeof(addr));
			log_info("enrolled: device %s in tenant '%s', address %s", e.device_id,
				e.tenant, addr);
		}
		r = ekd_tunnel_up(d->tun, &d->e);
		if (r == -EKEYREJECTED)
			d->key_rejected = true;
		/* If the tunnel stays down anyway, the next attempt waits longer. */
		delay = ekd_backoff_next(&d->enroll_backoff, random32());
		d->next_enroll = now + delay;
		return;
	}
	delay = ekd_backoff_next(&d->enroll_backoff, random32());
	if (r == -EAGAIN && after > 0) {
		/*
		 * 429 rate_limited, 503 too_many_sessions: the server says when, counted from
		 * its answer (not from @now, before the attempt); time() is whole seconds, so
		 * one more makes it at least that.
		 */
		delay = ekd_backoff_retry_after(delay, after, random32());
		d->next_enroll = time(NULL) + delay + 1;
		log_warnx("control plane busy, retrying in %u s (%s; Retry-After: %u)", delay,
			errbuf, after);
		return;
	}
	d->next_enroll = now + delay;
	if (r == -EPERM)
		log_warnx("enrollment refused: %s; this device is revoked until an administrator "
			"reinstates it (next try in %u s)", errbuf, delay);
	else
		log_warnx("enrollment failed: %s (next try in %u s)",
			errbuf[0] ? errbuf : strerror(-r), delay);
}

/* ---- privileges ------------------------------------------------------------------------- */

/* The effective capability set (bits 0-63), or -errno. */
static int
cap_effective(uint64_t *ret)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3, .pid = 0 };
	struct __user_cap_data_struct c[_LINUX_CAPABILITY_U32S_3] = { 0 };

	if (syscall(SYS_capget, &h, c) < 0)
		return -errno;
	*ret = (uint64_t)c[0].effective | (uint64_t)c[1].effective << 32;
	return 0;
}

/* "cap_net_admin,cap_ipc_lock", the numbers of those without a name here, or "none". */
static void
cap_format(uint64_t caps, char *buf, size_t len)
{
	static const struct { int bit; const char *name; } names[] = {
		{ CAP_CHOWN, "cap_chown" }, { CAP_DAC_OVERRIDE, "cap_dac_override" },
		{ CAP_DAC_READ_SEARCH, "cap_dac_read_search" }, { CAP_FOWNER, "cap_fowner" },
		{ CAP_KILL, "cap_kill" }, { CAP_SETGID, "cap_setgid" }, { CAP_SETUID, "cap_setuid" },
		{ CAP_SETPCAP, "cap_setpcap" }, { CAP_NET_BIND_SERVICE, "cap_net_bind_service" },
		{ CAP_NET_ADMIN, "cap_net_admin" }, { CAP_NET_RAW, "cap_net_raw" },
		{ CAP_IPC_LOCK, "cap_ipc_lock" }, { CAP_SYS_ADMIN, "cap_sys_admin" },
		{ CAP_SYS_PTRACE, "cap_sys_ptrace" }, { CAP_SYS_MODULE, "cap_sys_module" },
	};
	size_t off = 0;

	buf[0] = '\0';
	for (int bit = 0; bit < 64 && off < len; bit++) {
		const char *name = NULL;

		if (!(caps & ((uint64_t)1 << bit)))
			continue;
		for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
			if (names[i].bit == bit)
				name = names[i].name;
		if (name != NULL)
			off += (size_t)snprintf(buf + off, len - off, "%s%s", off ? "," : "", name);
		else
			off += (size_t)snprintf(buf + off, len - off, "%scap_%d", off ? "," : "", bit);
	}
	if (buf[0] == '\0')
		snprintf(buf, len, "none");
}

/*
 * Say who we run as; refuse to run without CAP_NET_ADMIN (nothing would work, every few
 * seconds, with a less clear message); warn when root: etc/edge-keyd.service runs the
 * daemon as _edge-keyd with CAP_NET_ADMIN only (docs/gateway-setup.md), and a unit or a
 * command line of an older install that still runs it as root keeps working.
 */
static int
check_privileges(void)
{
	struct passwd *pw = getpwuid(geteuid());
	uint64_t caps = 0;
	char names[512];
	int r;

	r = cap_effective(&caps);
	if (r < 0) {
		/* not fatal: the interface calls say it soon enough if a capability is missing */
		log_warnx("cannot read our capabilities: %s", strerror(-r));
		return 0;
	}
	cap_format(caps, names, sizeof(names));
	log_info("running as uid %u (%s), gid %u, effective capabilities: %s",
		(unsigned)geteuid(), pw ? pw->pw_name : "?", (unsigned)getegid(), names);
	if (!(caps & ((uint64_t)1 << CAP_NET_ADMIN))) {
		log_warnx("no CAP_NET_ADMIN: edge-keyd cannot create or configure the WireGuard "
			"interface without it (systemd unit: AmbientCapabilities=CAP_NET_ADMIN; "
			"docs/gateway-setup.md)");
		return -EPERM;
	}
	if (geteuid() == 0)
		log_warnx("running as root: edge-keyd needs only CAP_NET_ADMIN and the TPM "
			"device's group; etc/edge-keyd.service runs it as _edge-keyd "
			"(docs/gateway-setup.md)");
	return 0;
}

/*
 * The state directory and each file in it must be readable and writable by us: an
 * install that ran edge-keyd as root left root's 0600 files, which its own user cannot
 * read (the package's postinst hands them over on upgrade). Said here once, in one line
 * per file with the fix, instead of as a broken enrollment or TPM blob later. A missing
 * directory is fine (not provisioned yet: the errors that follow say so).
 */
static int
check_state_dir(const char *dir)
{
	struct passwd *pw = getpwuid(geteuid());
	const char *user = pw != NULL ? pw->pw_name : "<user>";
	struct dirent *de;
	DIR *dp;
	int bad = 0;

	if (faccessat(AT_FDCWD, dir, F_OK, AT_EACCESS) < 0 && errno == ENOENT)
		return 0;
	if (faccessat(AT_FDCWD, dir, R_OK | W_OK | X_OK, AT_EACCESS) < 0) {
		log_warnx("state directory '%s': %s for uid %u: it must belong to edge-keyd's "
			"user (chown -R %s: '%s')", dir, strerror(errno), (unsigned)geteuid(),
			user, dir);
		return -EACCES;
	}
	dp = opendir(dir);
	if (dp == NULL)
		return -errno;
	while ((de = readdir(dp)) != NULL) {
		struct stat st;

		/* a temporary file left by a crash is replaced, not read: ours to unlink */
		if (de->d_name[0] == '.' || strstr(de->d_name, ".tmp") != NULL ||
			fstatat(dirfd(dp), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
			!S_ISREG(st.st_mode))
			continue;
		if (faccessat(dirfd(dp), de->d_name, R_OK | W_OK, AT_EACCESS) == 0)
			continue;
		log_warnx("'%s/%s' (owner uid %u, mode %04o) is not readable and writable by uid "
			"%u: chown -R %s: '%s'", dir, de->d_name, (unsigned)st.st_uid,
			(unsigned)(st.st_mode & 07777), (unsigned)geteuid(), user,
			dir);
		bad = 1;
	}
	closedir(dp);
	return bad ? -EACCES : 0;
}

static int
daemon_run(struct daemon *d)
{
	struct ekd_tunnel_health h;
	char errbuf[512];
	sigset_t mask;
	int r;

	r = check_privileges();
	if (r < 0)
		return r;
	r = check_state_dir(d->conf.state_dir);
	if (r < 0)
		return r;
	r = secmem_harden_process();
	if (r < 0)
		log_warnx("cannot harden the process (no core dumps, not dumpable): %s",
			strerror(-r));
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		fatal("sigprocmask");
	d->sfd = signalfd(-1, &mask, SFD_CLOEXEC | SFD_NONBLOCK);
	if (d->sfd < 0)
		fatal("signalfd");

	r = ekd_tunnel_new(&d->tun, &d->conf);
	if (r < 0) {
		log_warnx("cannot open netlink: %s", strerror(-r));
		return r;
	}
	d->enroll_backoff.base = 5;
	d->enroll_backoff.max = 3600;

	/* A rotation cut short (crash, power cut): the control plane may hold the staged key. */
	(void)ekd_rotate_resume(&d->conf);
	r = ekd_enrollment_load(d->conf.state_dir, &d->e, errbuf, sizeof(errbuf));
	if (r == 0) {
		char path[4096];

		d->enrolled = true;
		snprintf(path, sizeof(path), "%s/%s", d->conf.state_dir, EKD_ENROLLMENT_FILE);
		(void)stat(path, &d->enr_st);
		r = ekd_tunnel_up(d->tun, &d->e);
		if (r == -EKEYREJECTED)
			d->key_rejected = true;
	} else if (r == -ENOENT) {
		log_info("not enrolled yet: enrolling first");
	} else {
		log_warnx("%s", errbuf);
		log_warnx("move the broken file away to enroll again");
		goto out;
	}
	log_info("running: interface '%s', checks every %ld s", d->conf.ifname,
		d->conf.check_interval);

	while (!d->stop) {
		time_t now = time(NULL);

		if (d->reload)
			reload_conf(d);
		if (reload_enrollment(d) == 1) {
			r = ekd_tunnel_up(d->tun, &d->e);
			d->key_rejected = r == -EKEYREJECTED;
		}
		if (!d->enrolled) {
			if (now >= d->next_enroll)
				try_enroll(d, now, "no enrollment.json yet");
		} else if (d->key_rejected) {
			if (now >= d->next_enroll)
				try_enroll(d, now, "the sealed key is not the enrolled one");
		} else {
			r = ekd_tunnel_check(d->tun, &d->e, now);
			if (r == -EKEYREJECTED)
				d->key_rejected = true;
			ekd_tunnel_health(d->tun, &h);
			if (h.up) {
				ekd_backoff_reset(&d->enroll_backoff);
				d->next_enroll = 0;
			} else if (d->conf.reenroll_after > 0 && h.down_since > 0 &&
				now - h.down_since >= d->conf.reenroll_after && now >= d->next_enroll) {
				try_enroll(d, now, "the tunnel has been down too long");
			}
		}
		if (!d->stop)
			wait_signal(d, (int)d->conf.check_interval);
	}
	r = 0;
out:
	if (d->conf.remove_on_exit) {
		int rr = ekd_tunnel_remove(d->tun);

		if (rr < 0)
			log_warnx("cannot remove interface '%s': %s", d->conf.ifname, strerror(-rr));
	}
	ekd_tunnel_free(d->tun);
	d->tun = NULL;
	close(d->sfd);
	return r;
}

/*
 * A token file may also be root:<the daemon's group> 0640: readable by the daemon's user
 * (_edge-keyd, in its own group) without being its to change, and by root running a
 * command by hand. The daemon's group is ours when we are not root, else the state
 * directory's (when that is not root's).
 */
static void
secret_group(const struct ekd_conf *conf)
{
	struct stat st;

	if (geteuid() != 0)
		config_secret_group(getegid());
	else if (stat(conf->state_dir, &st) == 0 && st.st_uid != 0 && st.st_gid != 0)
		config_secret_group(st.st_gid);
}

/* ---- main --------------------------------------------------------------------------------- */

enum { OPT_OFFLINE = 1000, OPT_JSON };

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "foreground", no_argument, NULL, 'd' },
		{ "check", no_argument, NULL, 'n' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct option cmd_opts[] = {
		{ "offline", no_argument, NULL, OPT_OFFLINE },
		{ "json", no_argument, NULL, OPT_JSON },
		{ NULL, 0, NULL, 0 },
	};
	struct daemon d = { .conf_path = EKD_DEFAULT_CONF, .sfd = -1 };
	bool foreground = false, check = false, offline = false, as_json = false;
	const char *cmd, *arg = NULL;
	bool conf_given = false;
	char errbuf[512];
	int ch, verbose = 0, r;

	while ((ch = getopt_long(argc, argv, "+c:dnvhV", opts, NULL)) != -1) {
		switch (ch) {
		case 'c':
			d.conf_path = optarg;
			conf_given = true;
			break;
		case 'd':
			foreground = true;
			break;
		case 'n':
			check = true;
			break;
		case 'v':
			verbose++;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("edge-keyd %s\n", EKD_VERSION);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (!check && optind >= argc) {
		usage(stderr);
		return 2;
	}
	cmd = optind < argc ? argv[optind] : "";

	/* Options of the command. */
	{
		int sub_argc = argc - optind;
		char **sub_argv = argv + optind;

		optind = 1;
		while (sub_argc > 0 &&
			(ch = getopt_long(sub_argc, sub_argv, "+", cmd_opts, NULL)) != -1) {
			if (ch == OPT_OFFLINE && strcmp(cmd, "provision") == 0) {
				offline = true;
			} else if (ch == OPT_JSON && strcmp(cmd, "status") == 0) {
				as_json = true;
			} else {
				fprintf(stderr, "edge-keyd: '%s' takes no such option\n", cmd);
				usage(stderr);
				return 2;
			}
		}
		if (strcmp(cmd, "setkey") == 0) {
			if (sub_argc > 0 && optind + 1 == sub_argc) {
				arg = sub_argv[optind];
				optind++;
			} else {
				fprintf(stderr, "edge-keyd: usage: setkey IFNAME\n");
				return 2;
			}
		}
		if (sub_argc > 0 && optind < sub_argc) {
			fprintf(stderr, "edge-keyd: unexpected argument '%s'\n", sub_argv[optind]);
			return 2;
		}
	}

	/* Only `run` without -d goes to syslog; the one-shot commands talk to a person. */
	log_init(strcmp(cmd, "run") != 0 || foreground, "edge-keyd");
	log_setverbose(verbose);
	r = ekd_conf_load(&d.conf, d.conf_path, errbuf, sizeof(errbuf));
	if (r < 0) {
		log_warnx("%s", errbuf);
		return 1;
	}
	if (check) {
		ekd_conf_clear(&d.conf);
		return 0;
	}
	secret_group(&d.conf);

	if (strcmp(cmd, "provision") == 0) {
		r = ekd_provision(&d.conf, offline);
	} else if (strcmp(cmd, "enroll") == 0) {
		r = ekd_enroll(&d.conf);
	} else if (strcmp(cmd, "rotate") == 0) {
		r = ekd_rotate(&d.conf);
	} else if (strcmp(cmd, "status") == 0) {
		r = ekd_status(&d.conf, as_json);
		ekd_conf_clear(&d.conf);
		return r;
	} else if (strcmp(cmd, "run") == 0) {
		r = daemon_run(&d);
	} else if (strcmp(cmd, "setkey") == 0) {
		r = ekd_setkey(&d.conf, arg);
	} else if (strcmp(cmd, "networkd-key") == 0) {
		r = ekd_networkd_key(&d.conf, STDOUT_FILENO);
	} else if (strcmp(cmd, "wg-quick") == 0) {
		r = ekd_wgquick(&d.conf, conf_given ? d.conf_path : NULL, stdout);
	} else {
		log_warnx("unknown command '%s'", cmd);
		usage(stderr);
		ekd_conf_clear(&d.conf);
		return 2;
	}
	ekd_conf_clear(&d.conf);
	return r < 0 ? 1 : 0;
}
