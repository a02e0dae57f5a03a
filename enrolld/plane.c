// SPDX-License-Identifier: MIT
/*
 * The control plane's side of the tunnels: one WireGuard interface per tenant, with its
 * own private key, listen port, address and route, and (kernel backend) its own VRF;
 * an nftables table that forbids forwarding between tenant interfaces; peers added on
 * enrollment and removed on revocation; reconciliation of the interfaces with the store.
 *
 * Backends (config [wireguard] backend):
 *   kernel     the link is created with rtnetlink, WireGuard is driven over generic netlink
 *   userspace  `wireguard-go <ifname>` is spawned (WG_PROCESS_FOREGROUND=1) and driven over
 *              its UAPI socket; rtnetlink still does addresses, routes and up. An instance
 *              already serving the interface (left by a crashed enrolld) is adopted.
 *
 * One mutex serialises every change of an interface, and every change decides from the
 * store read after taking it, never from what a request saw before: the store is always
 * written first, so a change the read did not see is one whose own call is still waiting
 * for the lock and runs afterwards. That is what keeps concurrent enrollments, rotations
 * and revocations of one device from leaving its old keys on the interface or its current
 * key off it (plane_device_sync() has the argument), and reconciliation from undoing them.
 *
 * Private keys: <key_dir>/<tenant>.key (base64, mode 0600, written atomically), read
 * when an interface is set up and wiped from memory right after. In cluster mode they are
 * in the store instead, sealed under the KEK (store_tenant_key_get), and an interface
 * exists only while this node holds its tenant (docs/cluster.md): every change of a tenant
 * not held is left to the node that holds it.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <net/if.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/config.h"
#include "common/key.h"
#include "common/log.h"
#include "common/rtnl.h"
#include "common/wg.h"
#include "common/wgproc.h"
#include "enrolld/enrolld.h"
#include "enrolld/privsep.h"

extern char **environ;

#define PLANE_MAX_TENANTS 1024
#define PLANE_FENCE_MAX 64

struct plane_tenant {
	char name[STORE_NAME_MAX];
	char ifname[STORE_IFNAME_MAX];
	uint8_t pub[WG_KEY_LEN];
	bool have_key;
	bool up;
	bool in_nft;
	bool held; /* cluster mode: this node holds the tenant's lease */
	struct wgproc wp; /* userspace: the wireguard-go serving the interface */
	char last_err[128];
};

struct plane {
	struct plane_config cfg;
	char *key_dir;
	char *wireguard_go;
	char *uapi_dir;
	char *nft;
	pthread_mutex_t lock;
	struct wg_ctl *wg;
	pthread_mutex_t read_lock; /* wg_read: reads that need not wait for changes */
	struct wg_ctl *wg_read;
	struct rtnl *rtnl;
	bool vrf_missing; /* the kernel said no to VRF once: do not ask again */
	struct plane_tenant *tenants;
	size_t n_tenants;
	/*
	 * Cluster mode: tenants taken down without the lock (plane_tenant_drop found it held
	 * past its time limit by a call waiting for the store): their state is brought in line
	 * by the next holder of the lock, before it changes anything (fence_settle_locked).
	 */
	pthread_mutex_t fence_lock;
	char fenced[PLANE_FENCE_MAX][STORE_NAME_MAX];
	size_t n_fenced;
	/*
	 * Privilege separation: set in the unprivileged child, where every interface change
	 * and read is asked of the privileged parent (privsep.c) and the fields above that
	 * touch the system (wg, wg_read, rtnl, key_dir, wp) are unused.
	 */
	struct privsep *ps;
};

static const char *
wg_err(struct plane *p)
{
	return p->ps != NULL ? "(privileged process)" : wg_ctl_last_error(p->wg);
}

static int
backend_set(struct plane *p, const struct store_tenant *t, const struct wg_device *dev)
{
	if (p->ps != NULL)
		return privsep_peers_set(p->ps, t->name, dev);
	return wg_set_device(p->wg, dev);
}

static int
backend_get(struct plane *p, const struct store_tenant *t, struct wg_device **ret)
{
	if (p->ps != NULL)
		return privsep_dump(p->ps, t->name, t->ifname, ret);
	return wg_get_device(p->wg, t->ifname, ret);
}

/* ---- helpers ---------------------------------------------------------------------------- */

static struct plane_tenant *
find_tenant(struct plane *p, const char *name)
{
	for (size_t i = 0; i < p->n_tenants; i++)
		if (strcmp(p->tenants[i].name, name) == 0)
			return &p->tenants[i];
	return NULL;
}

static struct plane_tenant *
get_tenant(struct plane *p, const struct store_tenant *t)
{
	struct plane_tenant *pt = find_tenant(p, t->name), *nt;

	if (pt != NULL)
		return pt;
	if (p->n_tenants == PLANE_MAX_TENANTS)
		return NULL;
	nt = realloc(p->tenants, (p->n_tenants + 1) * sizeof(*nt));
	if (nt == NULL)
		return NULL;
	p->tenants = nt;
	pt = &p->tenants[p->n_tenants++];
	memset(pt, 0, sizeof(*pt));
	snprintf(pt->name, sizeof(pt->name), "%s", t->name);
	snprintf(pt->ifname, sizeof(pt->ifname), "%s", t->ifname);
	return pt;
}

/* Log a tenant's failure once, not at every reconciliation. */
static void
tenant_fail(struct plane_tenant *pt, const char *what, int err, const char *detail)
{
	char msg[sizeof(pt->last_err)];

	snprintf(msg, sizeof(msg), "%s: %s%s%s", what, strerror(-err), detail && *detail ? ": " : "",
		detail ? detail : "");
	if (strcmp(msg, pt->last_err) != 0)
		log_warnx("tenant '%s' interface '%s': %s", pt->name, pt->ifname, msg);
	else
		log_debug("tenant '%s' interface '%s': %s", pt->name, pt->ifname, msg);
	snprintf(pt->last_err, sizeof(pt->last_err), "%s", msg);
}

static int
mkdir_p(const char *dir, mode_t mode)
{
	char tmp[PATH_MAX];
	size_t len = strlen(dir);

	if (len == 0 || len >= sizeof(tmp))
		return -ENAMETOOLONG;
	memcpy(tmp, dir, len + 1);
	for (char *s = tmp + 1; *s; s++) {
		if (*s != '/')
			continue;
		*s = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*s = '/';
	}
	if (mkdir(tmp, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

/* ---- private keys ----------------------------------------------------------------------- */

static int
key_path(struct plane *p, const char *tenant, const char *suffix, char *buf, size_t len)
{
	int n = snprintf(buf, len, "%s/%s.key%s", p->key_dir, tenant, suffix);

	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static int
key_read(const char *path, uint8_t ret_priv[static WG_KEY_LEN])
{
	char buf[WG_KEY_B64_LEN + 8];
	ssize_t n;
	int r;

	n = config_read_secret(path, buf, sizeof(buf));
	if (n < 0)
		return (int)n;
	buf[strcspn(buf, "\r\n")] = '\0';
	r = key_from_base64(ret_priv, buf);
	explicit_bzero(buf, sizeof(buf));
	return r;
}

/* A new key, written atomically (key_file_create); another key already there wins. */
static int
key_create(struct plane *p, const char *path)
{
	uint8_t priv[WG_KEY_LEN];
	int r;

	r = key_generate_private(priv);
	if (r == 0)
		r = key_file_create(p->key_dir, path, priv);
	explicit_bzero(priv, sizeof(priv));
	return r == -EEXIST ? 0 : r;
}

/*
 * Cluster mode: the tenant's key from the store, made on first use. Two nodes making it at
 * once: the first put wins (-EEXIST for the other), and both use the stored one.
 */
static int
store_key(struct plane *p, const char *tenant, uint8_t ret_priv[static WG_KEY_LEN])
{
	int r = store_tenant_key_get(p->cfg.key_store, tenant, ret_priv);

	if (r != -ENOENT)
		goto out;
	r = key_generate_private(ret_priv);
	if (r < 0)
		goto out;
	r = store_tenant_key_put(p->cfg.key_store, tenant, ret_priv);
	if (r == 0)
		log_info("tenant '%s': new interface key, stored under the KEK", tenant);
	else if (r == -EEXIST)
		r = store_tenant_key_get(p->cfg.key_store, tenant, ret_priv);
out:
	if (r < 0) {
		explicit_bzero(ret_priv, WG_KEY_LEN);
		log_warnx("tenant '%s': interface key from the store: %s %s", tenant,
			strerror(-r), store_errmsg());
	}
	return r;
}

/* The tenant's private key into @ret_priv (caller wipes), created on first use. */
static int
tenant_private_key(struct plane *p, struct plane_tenant *pt, uint8_t ret_priv[static WG_KEY_LEN])
{
	char path[PATH_MAX];
	int r;

	if (p->cfg.key_store != NULL) {
		r = store_key(p, pt->name, ret_priv);
		if (r < 0)
			return r;
		goto pub;
	}
	r = key_path(p, pt->name, "", path, sizeof(path));
	if (r < 0)
		return r;
	r = key_read(path, ret_priv);
	if (r == -ENOENT) {
		r = mkdir_p(p->key_dir, 0700);
		if (r < 0)
			return r;
		r = key_create(p, path);
		if (r < 0)
			return r;
		log_info("tenant '%s': new interface key in '%s'", pt->name, path);
		r = key_read(path, ret_priv);
	}
	if (r == -EPERM)
		log_warnx("key file '%s' is readable or writable by group or others; chmod 600 it",
			path);
	if (r < 0)
		return r;
pub:
	r = key_public_from_private(pt->pub, ret_priv);
	if (r < 0) {
		explicit_bzero(ret_priv, WG_KEY_LEN);
		return r;
	}
	pt->have_key = true;
	return 0;
}

int
plane_tenant_key(struct plane *p, const struct store_tenant *t, uint8_t ret_pub[32])
{
	uint8_t priv[WG_KEY_LEN];
	struct plane_tenant *pt;
	int r = 0;

	pthread_mutex_lock(&p->lock);
	pt = get_tenant(p, t);
	if (pt == NULL) {
		r = -ENOMEM;
	} else if (!pt->have_key && p->ps != NULL) {
		r = privsep_tenant_key(p->ps, pt->name, pt->pub);
		pt->have_key = r == 0;
	} else if (!pt->have_key) {
		r = tenant_private_key(p, pt, priv);
		explicit_bzero(priv, sizeof(priv));
	}
	if (r == 0)
		memcpy(ret_pub, pt->pub, WG_KEY_LEN);
	pthread_mutex_unlock(&p->lock);
	return r;
}

int
plane_tenant_pubkey(struct plane *p, const char *tenant, uint8_t ret_pub[32])
{
	struct plane_tenant tmp, *pt;
	uint8_t priv[WG_KEY_LEN];
	int r;

	pthread_mutex_lock(&p->lock);
	pt = find_tenant(p, tenant);
	if (pt != NULL && pt->have_key) {
		memcpy(ret_pub, pt->pub, WG_KEY_LEN);
		r = 0;
	} else {
		/* Not a tenant of this plane (yet): the key only, no entry (no interface, no nft). */
		memset(&tmp, 0, sizeof(tmp));
		snprintf(tmp.name, sizeof(tmp.name), "%s", tenant);
		r = tenant_private_key(p, &tmp, priv);
		explicit_bzero(priv, sizeof(priv));
		if (r == 0)
			memcpy(ret_pub, tmp.pub, WG_KEY_LEN);
	}
	pthread_mutex_unlock(&p->lock);
	return r;
}

/* ---- userspace: wireguard-go ------------------------------------------------------------- */

/* Make sure a wireguard-go serves @pt's interface: adopt a live one, else start one. */
static int
userspace_link(struct plane *p, struct plane_tenant *pt)
{
	struct wgproc_opts o = {
		.program = p->wireguard_go,
		.uapi_dir = p->uapi_dir,
		.keep_stderr = log_getverbose() >= 2,
	};
	pid_t before = pt->wp.pid;
	int r;

	r = wgproc_ensure(&pt->wp, &o, pt->ifname);
	if (r == 1)
		log_info("tenant '%s': started '%s %s' (pid %d)", pt->name, p->wireguard_go,
			pt->ifname, (int)pt->wp.pid);
	else if (r == 0 && pt->wp.pid != before)
		log_info("tenant '%s': adopted the wireguard-go (pid %d) serving '%s'", pt->name,
			(int)pt->wp.pid, pt->ifname);
	return r < 0 ? r : 0;
}

/* ---- kernel: link and VRF --------------------------------------------------------------------- */

static int
kernel_link(struct plane *p, struct plane_tenant *pt, const struct store_tenant *t,
	uint32_t *ret_table)
{
	char vrf[IFNAMSIZ];
	uint32_t idx, table;
	int r;

	*ret_table = 0;
	r = rtnl_link_index(p->rtnl, pt->ifname, &idx);
	if (r == -ENODEV) {
		r = rtnl_link_add_wireguard(p->rtnl, pt->ifname);
		if (r < 0 && r != -EEXIST) {
			tenant_fail(pt, "create wireguard link", r, rtnl_last_error(p->rtnl));
			return r;
		}
	} else if (r < 0) {
		tenant_fail(pt, "look up link", r, rtnl_last_error(p->rtnl));
		return r;
	}
	if (!p->cfg.vrf || p->vrf_missing)
		return 0;
	table = p->cfg.vrf_table_base + t->listen_port;
	snprintf(vrf, sizeof(vrf), "vrf%u", (unsigned int)t->listen_port);
	r = rtnl_link_index(p->rtnl, vrf, &idx);
	if (r == -ENODEV)
		r = rtnl_link_add_vrf(p->rtnl, vrf, table);
	if (r == -EOPNOTSUPP || r == -EAFNOSUPPORT || r == -EPROTONOSUPPORT) {
		/* The module is absent: nftables alone keeps tenants apart. */
		log_warnx("the kernel has no VRF support (%s); tenants are separated by nftables "
			  "only",
			strerror(-r));
		p->vrf_missing = true;
		return 0;
	}
	if (r < 0 && r != -EEXIST) {
		tenant_fail(pt, "create VRF", r, rtnl_last_error(p->rtnl));
		return r;
	}
	r = rtnl_link_set_up(p->rtnl, vrf, true);
	if (r == 0)
		r = rtnl_link_set_master(p->rtnl, pt->ifname, vrf);
	if (r < 0) {
		tenant_fail(pt, "enslave to VRF", r, rtnl_last_error(p->rtnl));
		return r;
	}
	*ret_table = table;
	return 0;
}

/* ---- nftables ------------------------------------------------------------------------------- */

/* Feed @script to `nft -f -`. */
static int
run_nft(struct plane *p, const char *script)
{
	posix_spawn_file_actions_t fa;
	posix_spawnattr_t attr;
	sigset_t none;
	char *argv[] = { p->nft, "-f", "-", NULL };
	int pipefd[2], status, r;
	size_t len = strlen(script), off = 0;
	pid_t pid;

	if (pipe2(pipefd, O_CLOEXEC) < 0)
		return -errno;
	sigemptyset(&none);
	posix_spawnattr_init(&attr);
	posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
	posix_spawnattr_setsigmask(&attr, &none);
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_adddup2(&fa, pipefd[0], 0);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	r = -posix_spawnp(&pid, p->nft, &fa, &attr, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	posix_spawnattr_destroy(&attr);
	close(pipefd[0]);
	if (r < 0) {
		close(pipefd[1]);
		return r;
	}
	while (off < len) {
		ssize_t n = write(pipefd[1], script + off, len - off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		off += (size_t)n;
	}
	close(pipefd[1]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	if (off != len || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -EIO;
	return 0;
}

/*
 * Write the whole table again (atomically: nft applies a file in one transaction): every
 * tenant interface may not forward to any other tenant interface. Traffic within one
 * tenant's interface and to the control plane itself is not forwarding between tenants.
 */
static int
nft_sync(struct plane *p)
{
	char *script = NULL;
	size_t len = 0;
	FILE *f;
	int r;

	if (!p->cfg.nftables)
		return 0;
	f = open_memstream(&script, &len);
	if (f == NULL)
		return -ENOMEM;
	fputs("table inet enrolld\ndelete table inet enrolld\n"
	      "table inet enrolld {\n"
	      "\tset tenant_ifs {\n\t\ttype ifname\n",
		f);
	if (p->n_tenants > 0) {
		fputs("\t\telements = { ", f);
		for (size_t i = 0; i < p->n_tenants; i++)
			fprintf(f, "%s\"%s\"", i ? ", " : "", p->tenants[i].ifname);
		fputs(" }\n", f);
	}
	fputs("\t}\n"
	      "\tchain forward {\n"
	      "\t\ttype filter hook forward priority filter - 10; policy accept;\n",
		f);
	for (size_t i = 0; i < p->n_tenants; i++)
		fprintf(f, "\t\tiifname \"%s\" oifname @tenant_ifs oifname != \"%s\" counter drop\n",
			p->tenants[i].ifname, p->tenants[i].ifname);
	fputs("\t}\n}\n", f);
	if (fclose(f) != 0) {
		free(script);
		return -ENOMEM;
	}
	r = run_nft(p, script);
	free(script);
	if (r < 0)
		log_warnx("nftables: '%s -f -' failed (%s); tenant isolation relies on routing only",
			p->nft, strerror(-r));
	else
		for (size_t i = 0; i < p->n_tenants; i++)
			p->tenants[i].in_nft = true;
	return r;
}

/* ---- bringing a tenant up -------------------------------------------------------------------- */

static int
configure_addresses(struct plane *p, struct plane_tenant *pt, const struct store_tenant *t,
	uint32_t table)
{
	const struct addr_prefix *pf[2] = { &t->prefix4, &t->prefix6 };
	const uint8_t *self[2] = { t->self4, t->self6 };
	int r;

	for (int i = 0; i < 2; i++) {
		if (pf[i]->family == 0)
			continue;
		r = rtnl_addr_add(p->rtnl, pt->ifname, pf[i]->family, self[i], pf[i]->plen);
		if (r < 0 && r != -EEXIST) {
			tenant_fail(pt, "add address", r, rtnl_last_error(p->rtnl));
			return r;
		}
	}
	r = rtnl_link_set_up(p->rtnl, pt->ifname, true);
	if (r < 0) {
		tenant_fail(pt, "set link up", r, rtnl_last_error(p->rtnl));
		return r;
	}
	for (int i = 0; i < 2; i++) {
		if (pf[i]->family == 0)
			continue;
		r = rtnl_route_add(p->rtnl, pt->ifname, pf[i]->family, pf[i]->addr, pf[i]->plen,
			table);
		if (r < 0 && r != -EEXIST) {
			tenant_fail(pt, "add prefix route", r, rtnl_last_error(p->rtnl));
			return r;
		}
	}
	return 0;
}

/* ---- cluster mode: taking an interface down in time, lock or not ---------------------------- */

/*
 * The interface goes without the plane's lock and without its state: the wireguard-go
 * answering on its socket is killed (its TUN goes with it), the link is deleted through a
 * netlink socket of its own. For a drop that cannot wait for the lock (docs/cluster.md).
 */
static void
fence_down(struct plane *p, const char *ifname)
{
	char path[PATH_MAX];
	struct rtnl *rt = NULL;
	pid_t pid;

	if (p->cfg.backend == ENROLLD_WG_USERSPACE &&
	    wgproc_sock_path(p->uapi_dir, ifname, path, sizeof(path)) == 0) {
		pid = wgproc_sock_pid(path);
		if (pid > 0 && kill(pid, SIGKILL) == 0)
			log_warnx("interface '%s': killed its wireguard-go (pid %d) without waiting",
				ifname, (int)pid);
	}
	if (if_nametoindex(ifname) != 0 && rtnl_open(&rt) == 0) {
		(void)rtnl_link_del(rt, ifname);
		rtnl_close(rt);
	}
}

/* Bring the plane's state in line with the fenced tenants (p->lock held). */
static void
fence_settle_locked(struct plane *p)
{
	struct plane_tenant *pt;

	pthread_mutex_lock(&p->fence_lock);
	for (size_t i = 0; i < p->n_fenced; i++) {
		pt = find_tenant(p, p->fenced[i]);
		if (pt == NULL)
			continue;
		pt->held = false;
		pt->up = false;
		(void)wgproc_alive(&pt->wp); /* reaps the killed child, clears its pid */
		if (pt->wp.pid > 0)
			(void)wgproc_stop(&pt->wp, 1000);
	}
	p->n_fenced = 0;
	pthread_mutex_unlock(&p->fence_lock);
}

static int
tenant_up_locked(struct plane *p, const struct store_tenant *t)
{
	uint8_t priv[WG_KEY_LEN];
	struct wg_device *dev = NULL;
	struct plane_tenant *pt;
	uint32_t table = 0;
	bool new_in_nft;
	int r;

	if (p->cfg.cluster) {
		fence_settle_locked(p);
		pt = find_tenant(p, t->name);
		if (pt == NULL || !pt->held)
			return -ENOLINK; /* another node's, or nobody's yet: not brought up here */
	}
	pt = get_tenant(p, t);
	if (pt == NULL)
		return -ENOMEM;
	if (p->ps != NULL) {
		/* The parent checks, creates and logs; this side only remembers. */
		r = privsep_tenant_up(p->ps, t);
		if (r < 0)
			tenant_fail(pt, "bring up (privileged process)", r, NULL);
		else
			pt->last_err[0] = '\0';
		pt->up = r == 0;
		return r;
	}
	if (pt->up) {
		/* Still there? An interface can disappear under us (operator, crash of wg-go). */
		r = wg_get_device(p->wg, pt->ifname, &dev);
		wg_device_free(dev);
		dev = NULL;
		if (r == 0)
			return 0;
		log_warnx("tenant '%s': interface '%s' is gone (%s); setting it up again", pt->name,
			pt->ifname, strerror(-r));
		pt->up = false;
	}
	new_in_nft = !pt->in_nft;
	if (p->cfg.backend == ENROLLD_WG_USERSPACE) {
		r = userspace_link(p, pt);
		if (r < 0) {
			tenant_fail(pt, "start wireguard-go", r, NULL);
			goto out;
		}
	} else {
		r = kernel_link(p, pt, t, &table);
		if (r < 0)
			goto out;
	}
	r = tenant_private_key(p, pt, priv);
	if (r < 0) {
		tenant_fail(pt, "private key", r, NULL);
		goto out;
	}
	r = wg_device_new(&dev, pt->ifname);
	if (r == 0) {
		memcpy(dev->private_key, priv, WG_KEY_LEN);
		dev->listen_port = t->listen_port;
		dev->flags = WG_DEVICE_F_HAS_PRIVATE_KEY | WG_DEVICE_F_HAS_LISTEN_PORT;
		r = wg_set_device(p->wg, dev);
	}
	explicit_bzero(priv, sizeof(priv));
	wg_device_free(dev);
	if (r < 0) {
		tenant_fail(pt, "set key and listen port", r, wg_ctl_last_error(p->wg));
		goto out;
	}
	r = configure_addresses(p, pt, t, table);
	if (r < 0)
		goto out;
	if (new_in_nft)
		(void)nft_sync(p);
	pt->up = true;
	if (pt->last_err[0] != '\0')
		log_info("tenant '%s': interface '%s' is up again", pt->name, pt->ifname);
	else
		log_info("tenant '%s': interface '%s' up, listen port %u", pt->name, pt->ifname,
			(unsigned int)t->listen_port);
	pt->last_err[0] = '\0';
	r = 0;
out:
	return r;
}

int
plane_tenant_up(struct plane *p, const struct store_tenant *t)
{
	int r;

	pthread_mutex_lock(&p->lock);
	r = tenant_up_locked(p, t);
	pthread_mutex_unlock(&p->lock);
	return r == -ENOLINK ? 0 : r;
}

bool
plane_tenant_is_up(struct plane *p, const char *tenant)
{
	struct plane_tenant *pt;
	bool up;

	pthread_mutex_lock(&p->lock);
	pt = find_tenant(p, tenant);
	up = pt != NULL && pt->up;
	pthread_mutex_unlock(&p->lock);
	return up;
}

/* ---- peers ------------------------------------------------------------------------------------- */

static int
peer_fill(struct wg_peer *peer, const struct store_tenant *t, const struct store_device *d)
{
	int r;

	memcpy(peer->public_key, d->wg_pubkey, WG_KEY_LEN);
	peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REPLACE_ALLOWEDIPS;
	r = wg_peer_add_allowedip(peer, AF_INET, d->addr4, 32);
	if (r == 0 && d->has_addr6)
		r = wg_peer_add_allowedip(peer, AF_INET6, d->addr6, 128);
	return r;
}

/* Apply @dev to @t's interface, bringing the interface up first if needed. */
static int
apply_locked(struct plane *p, const struct store_tenant *t, const struct wg_device *dev)
{
	struct plane_tenant *pt = find_tenant(p, t->name);
	int r;

	if (p->cfg.cluster) {
		fence_settle_locked(p);
		pt = find_tenant(p, t->name);
	}
	if (p->cfg.cluster && (pt == NULL || !pt->held))
		return 0; /* the node holding the tenant applies it (docs/cluster.md) */
	if (pt == NULL || !pt->up) {
		r = tenant_up_locked(p, t);
		if (r < 0)
			return r;
	}
	r = backend_set(p, t, dev);
	if (r < 0)
		log_warnx("tenant '%s': changing peers of '%s': %s %s", t->name, t->ifname,
			strerror(-r), wg_err(p));
	return r;
}

/*
 * One key's entry in @dev, a change to @t's interface, decided by the store as it is now:
 * the key of an active device of @t is set with that device's addresses, any other key
 * (replaced, revoked, deleted, another tenant's) is removed. A key already in @dev is
 * skipped.
 */
static int
sync_key(struct store *s, const struct store_tenant *t, struct wg_device *dev,
	const uint8_t key[static WG_KEY_LEN])
{
	struct store_device d;
	struct wg_peer *peer;
	int r;

	for (size_t i = 0; i < dev->n_peers; i++)
		if (memcmp(dev->peers[i].public_key, key, WG_KEY_LEN) == 0)
			return 0;
	r = store_device_by_pubkey(s, key, &d);
	if (r < 0 && r != -ENOENT)
		return r;
	if (r == 0 && (d.state != STORE_DEVICE_ACTIVE || strcmp(d.tenant, t->name) != 0 ||
			      memcmp(d.wg_pubkey, key, WG_KEY_LEN) != 0))
		r = -ENOENT;
	if (wg_device_add_peer(dev, &peer) < 0)
		return -ENOMEM;
	if (r == 0)
		return peer_fill(peer, t, &d);
	memcpy(peer->public_key, key, WG_KEY_LEN);
	peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REMOVE_ME;
	return 0;
}

/*
 * Why the interface equals the store once every request has answered, whatever order the
 * requests' store commits and their calls here run in. Every store change of a device's
 * key or state (enrollment, rotation, revocation) is committed before its request calls
 * plane_device_sync() with the keys that change set and replaced (the replaced key as the
 * commit saw it: store_enroll_prev(), store_device_revoke()). Here, each key's fate is read
 * from the store after taking the lock, and written before releasing it. So, for any key K:
 *  - K is only ever added by a call that read K as an active device's current key while
 *    holding the lock.
 *  - Say the last commit that made K stop being current is C. C's request knows K and calls
 *    here after C: it reads K not current and removes it. Any call that added K read it
 *    before C, under the lock, so it finished before C's call took the lock; and no call
 *    after C's can add K (K is never current after C). So a stale K is gone.
 *  - Say K is current at the end, made current by commit C. C's request knows K (its new
 *    key) and adds it after C. A call removes K only if it read K not current, which after
 *    C is impossible; one that read before C finished before C's call took the lock.
 * Adding the device's current key as well costs one read and repairs an interface that lost
 * it (a restarted wireguard-go) without waiting for reconciliation.
 */
int
plane_device_sync(struct plane *p, struct store *s, const struct store_tenant *t,
	uint64_t id, const uint8_t *const keys[], size_t n_keys)
{
	struct wg_device *dev = NULL;
	struct store_device d;
	int r;

	r = wg_device_new(&dev, t->ifname);
	if (r < 0)
		return r;
	pthread_mutex_lock(&p->lock);
	/* The store after the lock: see above and the comment at the top of this file. */
	r = store_device_get(s, id, &d);
	if (r == 0)
		r = sync_key(s, t, dev, d.wg_pubkey);
	else if (r == -ENOENT)
		r = 0;
	for (size_t i = 0; r == 0 && i < n_keys; i++)
		r = sync_key(s, t, dev, keys[i]);
	if (r == 0)
		r = apply_locked(p, t, dev);
	pthread_mutex_unlock(&p->lock);
	wg_device_free(dev);
	return r;
}

int
plane_dump(struct plane *p, const struct store_tenant *t, struct wg_device **ret)
{
	int r;

	pthread_mutex_lock(&p->lock);
	r = backend_get(p, t, ret);
	pthread_mutex_unlock(&p->lock);
	return r;
}

int
plane_apply(struct plane *p, const struct store_tenant *t, const struct wg_device *dev)
{
	int r;

	pthread_mutex_lock(&p->lock);
	r = apply_locked(p, t, dev);
	pthread_mutex_unlock(&p->lock);
	return r;
}

int
plane_interface_claimable(struct plane *p, const struct store_tenant *t)
{
	struct wg_device *dev = NULL;
	uint8_t pub[WG_KEY_LEN];
	int r;

	if (if_nametoindex(t->ifname) == 0)
		return 0;
	pthread_mutex_lock(&p->lock);
	r = wg_get_device(p->wg, t->ifname, &dev);
	pthread_mutex_unlock(&p->lock);
	if (r < 0)
		return -EPERM; /* there, and not a WireGuard interface of this backend */
	/* Keyed: ours after a restart only if it has this tenant's key. */
	if (!key_is_zero(dev->public_key)) {
		r = plane_tenant_pubkey(p, t->name, pub);
		if (r == 0 && memcmp(pub, dev->public_key, WG_KEY_LEN) != 0)
			r = -EPERM;
	}
	wg_device_free(dev);
	return r;
}

int
plane_peer_stats(struct plane *p, const struct store_tenant *t, struct wg_peer_stats **ret,
	size_t *ret_n)
{
	int r;

	if (p->ps != NULL) {
		/* Not up (refused, failing): nothing to read, and no request to be refused. */
		if (!plane_tenant_is_up(p, t->name))
			return -ENODEV;
		return privsep_stats(p->ps, t->name, ret, ret_n);
	}
	pthread_mutex_lock(&p->read_lock);
	r = wg_get_peer_stats(p->wg_read, t->ifname, ret, ret_n);
	pthread_mutex_unlock(&p->read_lock);
	return r;
}

/* ---- reconciliation ------------------------------------------------------------------------ */

/* Peers of the interface by public key: an array of pointers, sorted. */
static int
cmp_peer_ptr(const void *a, const void *b)
{
	const struct wg_peer *const *x = a, *const *y = b;

	return memcmp((*x)->public_key, (*y)->public_key, WG_KEY_LEN);
}

static int
cmp_dev_key(const void *a, const void *b)
{
	const struct store_device *x = a, *y = b;

	return memcmp(x->wg_pubkey, y->wg_pubkey, WG_KEY_LEN);
}

/* Every active device of @tenant, sorted by public key. */
static int
active_devices(struct store *s, const char *tenant, struct store_device **ret, size_t *ret_n)
{
	int r = store_device_list_all(s, tenant, STORE_DEVICE_ACTIVE, ret, ret_n);

	if (r == 0 && *ret_n > 1)
		qsort(*ret, *ret_n, sizeof(**ret), cmp_dev_key);
	return r;
}

/* Whether @peer has exactly @d's allowed IPs. */
static bool
peer_matches(const struct wg_peer *peer, const struct store_device *d)
{
	size_t want = d->has_addr6 ? 2 : 1;
	bool v4 = false, v6 = !d->has_addr6;

	if (peer->n_allowedips != want)
		return false;
	for (size_t i = 0; i < peer->n_allowedips; i++) {
		const struct wg_allowedip *a = &peer->allowedips[i];

		if (a->family == AF_INET && a->cidr == 32 && memcmp(&a->ip4, d->addr4, 4) == 0)
			v4 = true;
		else if (a->family == AF_INET6 && a->cidr == 128 &&
			 memcmp(&a->ip6, d->addr6, 16) == 0)
			v6 = true;
	}
	return v4 && v6;
}

static int
reconcile_tenant(struct plane *p, struct store *s, const struct store_tenant *t)
{
	struct store_device *devs = NULL;
	struct wg_device *cur = NULL, *want = NULL;
	const struct wg_peer **have = NULL;
	size_t n_devs = 0, added = 0, removed = 0;
	struct wg_peer *peer;
	int r;

	pthread_mutex_lock(&p->lock);
	r = tenant_up_locked(p, t);
	if (r == -ENOLINK) {
		r = 0; /* cluster mode, not held here */
		goto out;
	}
	if (r < 0)
		goto out;
	/* The store after the lock: see the comment at the top of this file. */
	r = active_devices(s, t->name, &devs, &n_devs);
	if (r < 0)
		goto out;
	r = backend_get(p, t, &cur);
	if (r < 0)
		goto out;
	r = wg_device_new(&want, t->ifname);
	if (r < 0)
		goto out;
	if (cur->n_peers > 0) {
		have = calloc(cur->n_peers, sizeof(*have));
		if (have == NULL) {
			r = -ENOMEM;
			goto out;
		}
		for (size_t i = 0; i < cur->n_peers; i++)
			have[i] = &cur->peers[i];
		qsort(have, cur->n_peers, sizeof(*have), cmp_peer_ptr);
	}
	/* On the interface but not an active device of this tenant: remove. */
	for (size_t i = 0; i < cur->n_peers; i++) {
		struct store_device key;

		memcpy(key.wg_pubkey, cur->peers[i].public_key, WG_KEY_LEN);
		if (n_devs > 0 && bsearch(&key, devs, n_devs, sizeof(*devs), cmp_dev_key))
			continue;
		r = wg_device_add_peer(want, &peer);
		if (r < 0)
			goto out;
		memcpy(peer->public_key, cur->peers[i].public_key, WG_KEY_LEN);
		peer->flags = WG_PEER_F_HAS_PUBLIC_KEY | WG_PEER_F_REMOVE_ME;
		removed++;
	}
	/* Active devices missing, or with other allowed IPs: add (replacing the list). */
	for (size_t i = 0; i < n_devs; i++) {
		struct wg_peer probe;
		const struct wg_peer *pp = &probe, *const *on = NULL;

		memcpy(probe.public_key, devs[i].wg_pubkey, WG_KEY_LEN);
		if (have != NULL)
			on = bsearch(&pp, have, cur->n_peers, sizeof(*have), cmp_peer_ptr);
		if (on != NULL && peer_matches(*on, &devs[i]))
			continue;
		r = wg_device_add_peer(want, &peer);
		if (r == 0)
			r = peer_fill(peer, t, &devs[i]);
		if (r < 0)
			goto out;
		added++;
	}
	if (want->n_peers > 0) {
		r = backend_set(p, t, want);
		if (r < 0) {
			log_warnx("tenant '%s': reconciling '%s': %s %s", t->name, t->ifname,
				strerror(-r), wg_err(p));
			goto out;
		}
		log_info("tenant '%s': reconciled '%s' with the store: %zu peer(s) added, %zu "
			 "removed",
			t->name, t->ifname, added, removed);
	}
	r = (int)(added + removed);
out:
	pthread_mutex_unlock(&p->lock);
	free(have);
	free(devs);
	wg_device_free(cur);
	wg_device_free(want);
	return r;
}

int
plane_reconcile(struct plane *p, struct store *s)
{
	struct store_tenant *ts = NULL;
	size_t n = 0;
	int r, total = 0, first_err = 0;

	r = store_tenant_list(s, &ts, &n);
	if (r < 0)
		return r;
	for (size_t i = 0; i < n; i++) {
		r = reconcile_tenant(p, s, &ts[i]);
		if (r < 0 && first_err == 0)
			first_err = r;
		if (r > 0)
			total += r;
	}
	free(ts);
	return first_err < 0 ? first_err : total;
}

/* ---- cluster mode: tenants held by this node -------------------------------------------------- */

int
plane_tenant_reconcile(struct plane *p, struct store *s, const struct store_tenant *t)
{
	return reconcile_tenant(p, s, t);
}

/* Take @pt's interface down: stop its wireguard-go (which removes it) or delete the link. */
static void
tenant_down_locked(struct plane *p, struct plane_tenant *pt)
{
	pid_t pid = pt->wp.pid;
	int r;

	pt->up = false;
	if (p->ps != NULL)
		return;
	if (pid > 0 && wgproc_stop(&pt->wp, 1000) == 0)
		log_info("tenant '%s': stopped wireguard-go (pid %d)", pt->name, (int)pid);
	/* kernel, or a wireguard-go this run did not start: the link itself */
	if (if_nametoindex(pt->ifname) != 0) {
		r = rtnl_link_del(p->rtnl, pt->ifname);
		if (r < 0 && r != -ENODEV)
			log_warnx("tenant '%s': deleting '%s': %s %s", pt->name, pt->ifname,
				strerror(-r), rtnl_last_error(p->rtnl));
	}
}

int
plane_tenant_hold(struct plane *p, const struct store_tenant *t)
{
	struct plane_tenant *pt;

	pthread_mutex_lock(&p->lock);
	pt = get_tenant(p, t);
	if (pt != NULL)
		pt->held = true;
	pthread_mutex_unlock(&p->lock);
	return pt != NULL ? 0 : -ENOMEM;
}

void
plane_tenant_drop(struct plane *p, const struct store_tenant *t, unsigned int timeout_ms)
{
	struct plane_tenant *pt;
	struct timespec until;
	bool was_up;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += timeout_ms / 1000;
	until.tv_nsec += (long)(timeout_ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	if (timeout_ms > 0 && pthread_mutex_clocklock(&p->lock, CLOCK_MONOTONIC, &until) != 0) {
		/* A call holds the lock (waiting for the store?): the interface goes anyway. */
		pthread_mutex_lock(&p->fence_lock);
		if (p->n_fenced < PLANE_FENCE_MAX) {
			snprintf(p->fenced[p->n_fenced++], STORE_NAME_MAX, "%s", t->name);
			pthread_mutex_unlock(&p->fence_lock);
			log_warnx("tenant '%s': the interface lock is busy after %u ms; taking '%s' "
				  "down without it",
				t->name, timeout_ms, t->ifname);
			fence_down(p, t->ifname);
			return;
		}
		pthread_mutex_unlock(&p->fence_lock);
		pthread_mutex_lock(&p->lock);
	} else if (timeout_ms == 0) {
		pthread_mutex_lock(&p->lock);
	}
	pt = get_tenant(p, t);
	if (pt != NULL) {
		was_up = pt->up || pt->wp.pid > 0 || if_nametoindex(pt->ifname) != 0;
		pt->held = false;
		tenant_down_locked(p, pt);
		if (was_up)
			log_info("tenant '%s': interface '%s' down (not held by this node)",
				pt->name, pt->ifname);
	}
	pthread_mutex_unlock(&p->lock);
}

bool
plane_tenant_is_held(struct plane *p, const char *tenant)
{
	struct plane_tenant *pt;
	bool held;

	if (p == NULL || !p->cfg.cluster) /* NULL: a health monitor under test, no plane */
		return true;
	pthread_mutex_lock(&p->lock);
	pt = find_tenant(p, tenant);
	held = pt != NULL && pt->held;
	pthread_mutex_unlock(&p->lock);
	return held;
}

/* ---- wg-quick rendering -------------------------------------------------------------------- */

char *
plane_wg_quick_postup(const struct store_tenant *t, const struct store_device *d,
	const uint8_t server_pub[32], const char *comment, const char *postup)
{
	char a4[ADDR_STR_LEN], a6[ADDR_STR_LEN], p4[ADDR_STR_LEN], p6[ADDR_STR_LEN];
	char pub[WG_KEY_B64_LEN];
	char *out = NULL;
	int n;

	addr_format(AF_INET, d->addr4, a4, sizeof(a4));
	addr_prefix_format(&t->prefix4, p4, sizeof(p4));
	a6[0] = p6[0] = '\0';
	if (d->has_addr6 && t->prefix6.family == AF_INET6) {
		addr_format(AF_INET6, d->addr6, a6, sizeof(a6));
		addr_prefix_format(&t->prefix6, p6, sizeof(p6));
	}
	key_to_base64(pub, server_pub);
	n = asprintf(&out,
		"[Interface]\n"
		"# %s\n"
		"Address = %s/32%s%s%s\n"
		"%s%s%s"
		"\n"
		"[Peer]\n"
		"PublicKey = %s\n"
		"Endpoint = %s\n"
		"AllowedIPs = %s%s%s\n"
		"PersistentKeepalive = %u\n",
		comment, a4, a6[0] ? ", " : "", a6, a6[0] ? "/128" : "",
		postup ? "PostUp = " : "", postup ? postup : "", postup ? "\n" : "", pub, t->endpoint, p4,
		p6[0] ? ", " : "", p6, (unsigned int)t->keepalive);
	return n < 0 ? NULL : out;
}

char *
plane_wg_quick(const struct store_tenant *t, const struct store_device *d,
	const uint8_t server_pub[32])
{
	return plane_wg_quick_postup(t, d, server_pub,
		"PrivateKey: held by the device's TPM, never written here", NULL);
}

/* ---- life cycle ------------------------------------------------------------------------------ */

int
plane_new(struct plane **ret, const struct plane_config *cfg)
{
	struct plane *p;
	int r;

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	p->cfg = *cfg;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->read_lock, NULL);
	pthread_mutex_init(&p->fence_lock, NULL);
	p->key_dir = strdup(cfg->key_dir);
	p->wireguard_go = strdup(cfg->wireguard_go ? cfg->wireguard_go : "wireguard-go");
	p->uapi_dir = strdup(cfg->uapi_dir ? cfg->uapi_dir : WG_UAPI_DEFAULT_DIR);
	p->nft = strdup(cfg->nft ? cfg->nft : "nft");
	if (p->key_dir == NULL || p->wireguard_go == NULL || p->uapi_dir == NULL ||
	    p->nft == NULL) {
		r = -ENOMEM;
		goto err;
	}
	p->cfg.key_dir = p->key_dir;
	p->cfg.wireguard_go = p->wireguard_go;
	p->cfg.uapi_dir = p->uapi_dir;
	p->cfg.nft = p->nft;
	for (int i = 0; i < 2; i++) {
		struct wg_ctl **ctl = i == 0 ? &p->wg : &p->wg_read;

		r = wg_ctl_new(ctl);
		if (r < 0)
			goto err;
		r = wg_ctl_set_uapi_dir(*ctl, p->uapi_dir);
		if (r < 0)
			goto err;
		wg_ctl_set_backend(*ctl,
			cfg->backend == ENROLLD_WG_USERSPACE ? WG_BACKEND_UAPI : WG_BACKEND_KERNEL);
	}
	r = rtnl_open(&p->rtnl);
	if (r < 0)
		goto err;
	r = mkdir_p(p->key_dir, 0700);
	if (r < 0)
		goto err;
	*ret = p;
	return 0;
err:
	plane_free(p);
	return r;
}

int
plane_new_remote(struct plane **ret, struct privsep *ps)
{
	struct plane *p;

	p = calloc(1, sizeof(*p));
	if (p == NULL)
		return -ENOMEM;
	pthread_mutex_init(&p->lock, NULL);
	pthread_mutex_init(&p->read_lock, NULL);
	pthread_mutex_init(&p->fence_lock, NULL);
	p->ps = ps;
	*ret = p;
	return 0;
}

void
plane_free(struct plane *p)
{
	if (p == NULL)
		return;
	for (size_t i = 0; i < p->n_tenants; i++) {
		struct plane_tenant *pt = &p->tenants[i];
		pid_t pid = pt->wp.pid;

		/* wireguard-go removes its interface and socket on SIGTERM. */
		if (pid > 0 && wgproc_stop(&pt->wp, 0) == 0)
			log_info("tenant '%s': stopped wireguard-go (pid %d)", pt->name, (int)pid);
	}
	if (p->rtnl != NULL)
		rtnl_close(p->rtnl);
	wg_ctl_free(p->wg);
	wg_ctl_free(p->wg_read);
	pthread_mutex_destroy(&p->lock);
	pthread_mutex_destroy(&p->read_lock);
	pthread_mutex_destroy(&p->fence_lock);
	free(p->tenants);
	free(p->key_dir);
	free(p->wireguard_go);
	free(p->uapi_dir);
	free(p->nft);
	free(p);
}
