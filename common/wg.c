// SPDX-License-Identifier: MIT
/*
 * The WireGuard control handle: one API over two backends, chosen per interface the
 * way wg(8) chooses: an interface whose <uapi_dir>/<ifname>.sock exists (and is a
 * socket) is run by a userspace implementation and spoken to over UAPI
 * (common/wg_uapi.c); any other name is asked of the kernel over generic netlink
 * (common/wg_genl.c). The generic netlink socket is opened on first use and kept.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <libmnl/libmnl.h>
#include <linux/if_link.h>
#include <linux/rtnetlink.h>

#include "common/log.h"
#include "common/nl.h"
#include "common/wg.h"

#define WG_CTL_ERR_LEN 256

struct wg_ctl {
	char *uapi_dir;
	enum wg_backend backend; /* AUTO: per interface */
	struct wg_genl *genl;	 /* opened on first kernel call */
	struct wg_uapi_conns *conns; /* kept connections for sets, made on the first */
	char err[WG_CTL_ERR_LEN];
};

int
wg_ctl_new(struct wg_ctl **ret_ctl)
{
	struct wg_ctl *ctl;

	ctl = calloc(1, sizeof(*ctl));
	if (ctl == NULL)
		return -ENOMEM;
	ctl->uapi_dir = strdup(WG_UAPI_DEFAULT_DIR);
	if (ctl->uapi_dir == NULL) {
		free(ctl);
		return -ENOMEM;
	}
	*ret_ctl = ctl;
	return 0;
}

void
wg_ctl_free(struct wg_ctl *ctl)
{
	if (ctl == NULL)
		return;
	wg_genl_close(ctl->genl);
	wg_uapi_conns_free(ctl->conns);
	free(ctl->uapi_dir);
	free(ctl);
}

int
wg_ctl_set_uapi_dir(struct wg_ctl *ctl, const char *dir)
{
	char *copy;

	if (dir == NULL || dir[0] == '\0')
		return -EINVAL;
	copy = strdup(dir);
	if (copy == NULL)
		return -ENOMEM;
	free(ctl->uapi_dir);
	ctl->uapi_dir = copy;
	/* kept connections are to the old directory's sockets */
	wg_uapi_conns_free(ctl->conns);
	ctl->conns = NULL;
	return 0;
}

void
wg_ctl_set_backend(struct wg_ctl *ctl, enum wg_backend backend)
{
	ctl->backend = backend;
}

const char *
wg_ctl_last_error(const struct wg_ctl *ctl)
{
	return ctl->err;
}

static bool
uapi_socket_exists(const char *dir, const char *ifname)
{
	char path[PATH_MAX];
	struct stat st;
	int n;

	/* A name with '/' would walk out of the directory; no interface is called that. */
	if (ifname == NULL || ifname[0] == '\0' || strchr(ifname, '/') != NULL)
		return false;
	n = snprintf(path, sizeof(path), "%s/%s.sock", dir, ifname);
	if (n < 0 || (size_t)n >= sizeof(path))
		return false;
	return stat(path, &st) == 0 && S_ISSOCK(st.st_mode);
}

enum wg_backend
wg_ctl_backend_of(struct wg_ctl *ctl, const char *ifname)
{
	if (ctl->backend != WG_BACKEND_AUTO)
		return ctl->backend;
	return uapi_socket_exists(ctl->uapi_dir, ifname) ? WG_BACKEND_UAPI : WG_BACKEND_KERNEL;
}

static int
ctl_genl(struct wg_ctl *ctl, struct wg_genl **ret)
{
	int r;

	if (ctl->genl == NULL) {
		r = wg_genl_open(&ctl->genl);
		if (r < 0) {
			ctl->genl = NULL;
			snprintf(ctl->err, sizeof(ctl->err), "cannot open the wireguard generic "
				"netlink family (no kernel module?)");
			return r;
		}
	}
	*ret = ctl->genl;
	return 0;
}

/* Copy the kernel's extended-ack text, if it gave one. */
static void
ctl_genl_error(struct wg_ctl *ctl)
{
	const char *msg = wg_genl_last_error(ctl->genl);

	snprintf(ctl->err, sizeof(ctl->err), "%s", msg != NULL ? msg : "");
}

int
wg_get_device(struct wg_ctl *ctl, const char *ifname, struct wg_device **ret_dev)
{
	struct wg_genl *genl;
	int r;

	ctl->err[0] = '\0';
	if (ifname == NULL || ifname[0] == '\0')
		return -EINVAL;
	if (strnlen(ifname, IFNAMSIZ) == IFNAMSIZ)
		return -ENAMETOOLONG;
	if (wg_ctl_backend_of(ctl, ifname) == WG_BACKEND_UAPI)
		return wg_uapi_get_device(ctl->uapi_dir, ifname, ret_dev, ctl->err,
			sizeof(ctl->err));
	r = ctl_genl(ctl, &genl);
	if (r < 0)
		return r;
	r = wg_genl_get_device(genl, ifname, ret_dev);
	if (r < 0)
		ctl_genl_error(ctl);
	return r;
}

int
wg_set_device(struct wg_ctl *ctl, const struct wg_device *dev)
{
	struct wg_genl *genl;
	int r;

	ctl->err[0] = '\0';
	if (dev == NULL || dev->name[0] == '\0')
		return -EINVAL;
	if (wg_ctl_backend_of(ctl, dev->name) == WG_BACKEND_UAPI) {
		/* left NULL (out of memory): each set connects for itself */
		if (ctl->conns == NULL)
			(void)wg_uapi_conns_new(&ctl->conns);
		return wg_uapi_set_device(ctl->uapi_dir, ctl->conns, dev, ctl->err,
			sizeof(ctl->err));
	}
	r = ctl_genl(ctl, &genl);
	if (r < 0)
		return r;
	r = wg_genl_set_device(genl, dev);
	if (r < 0)
		ctl_genl_error(ctl);
	return r;
}

int
wg_get_peer_stats(struct wg_ctl *ctl, const char *ifname, struct wg_peer_stats **ret,
	size_t *ret_n)
{
	struct wg_peer_stats *st = NULL;
	struct wg_device *dev = NULL;
	int r;

	ctl->err[0] = '\0';
	if (ifname == NULL || ifname[0] == '\0')
		return -EINVAL;
	if (strnlen(ifname, IFNAMSIZ) == IFNAMSIZ)
		return -ENAMETOOLONG;
	if (wg_ctl_backend_of(ctl, ifname) == WG_BACKEND_UAPI)
		return wg_uapi_get_peer_stats(ctl->uapi_dir, ifname, ret, ret_n, ctl->err,
			sizeof(ctl->err));
	r = wg_get_device(ctl, ifname, &dev);
	if (r < 0)
		return r;
	if (dev->n_peers > 0) {
		st = calloc(dev->n_peers, sizeof(*st));
		if (st == NULL) {
			wg_device_free(dev);
			return -ENOMEM;
		}
	}
	for (size_t i = 0; i < dev->n_peers; i++) {
		memcpy(st[i].public_key, dev->peers[i].public_key, WG_KEY_LEN);
		st[i].last_handshake_sec = dev->peers[i].last_handshake_sec;
		st[i].rx_bytes = dev->peers[i].rx_bytes;
		st[i].tx_bytes = dev->peers[i].tx_bytes;
	}
	*ret = st;
	*ret_n = dev->n_peers;
	wg_device_free(dev);
	return 0;
}

/* ---- listing: kernel interfaces are links of kind "wireguard" (rtnetlink dump) ---- */

struct name_list {
	char **names;
	size_t n, cap;
};

static int
name_list_add(struct name_list *l, const char *name)
{
	char **grown;

	for (size_t i = 0; i < l->n; i++)
		if (!strcmp(l->names[i], name))
			return 0; /* both backends claim it: list it once */
	if (l->n == l->cap) {
		size_t cap = l->cap ? l->cap * 2 : 8;

		grown = realloc(l->names, cap * sizeof(*grown));
		if (grown == NULL)
			return -ENOMEM;
		l->names = grown;
		l->cap = cap;
	}
	l->names[l->n] = strdup(name);
	if (l->names[l->n] == NULL)
		return -ENOMEM;
	l->n++;
	return 0;
}

static void
name_list_clear(struct name_list *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->names[i]);
	free(l->names);
	memset(l, 0, sizeof(*l));
}

struct link_attrs {
	const char *name;
	bool is_wireguard;
};

static int
linkinfo_attr_cb(const struct nlattr *attr, void *data)
{
	struct link_attrs *la = data;

	if (mnl_attr_get_type(attr) != IFLA_INFO_KIND)
		return MNL_CB_OK;
	if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0)
		return MNL_CB_ERROR;
	la->is_wireguard = !strcmp(mnl_attr_get_str(attr), "wireguard");
	return MNL_CB_OK;
}

static int
link_attr_cb(const struct nlattr *attr, void *data)
{
	struct link_attrs *la = data;

	switch (mnl_attr_get_type(attr)) {
	case IFLA_IFNAME:
		if (mnl_attr_validate(attr, MNL_TYPE_NUL_STRING) < 0 ||
			mnl_attr_get_payload_len(attr) > IFNAMSIZ)
			return MNL_CB_ERROR;
		la->name = mnl_attr_get_str(attr);
		break;
	case IFLA_LINKINFO:
		if (mnl_attr_validate(attr, MNL_TYPE_NESTED) < 0)
			return MNL_CB_ERROR;
		return nl_attr_parse_nested(attr, linkinfo_attr_cb, la);
	default:
		break; /* newer kernels add attributes: skip what we do not know */
	}
	return MNL_CB_OK;
}

static int
link_cb(const struct nlmsghdr *nlh, void *data)
{
	struct link_attrs la = { 0 };

	if (nlh->nlmsg_type != RTM_NEWLINK)
		return 0;
	if (nl_attr_parse(nlh, sizeof(struct ifinfomsg), link_attr_cb, &la) != MNL_CB_OK)
		return -EPROTO;
	if (la.is_wireguard && la.name != NULL && name_list_add(data, la.name) < 0)
		return -ENOMEM;
	return 0;
}

static int
kernel_list_devices(struct name_list *l)
{
	uint8_t buf[256] = { 0 };
	struct nl_sock nl;
	struct nlmsghdr *nlh;
	struct ifinfomsg *ifm;
	int r;

	r = nl_sock_open(&nl, NETLINK_ROUTE);
	if (r < 0)
		return r;
	nlh = mnl_nlmsg_put_header(buf);
	nlh->nlmsg_type = RTM_GETLINK;
	nlh->nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
	ifm = mnl_nlmsg_put_extra_header(nlh, sizeof(*ifm));
	ifm->ifi_family = AF_UNSPEC;
	nl_sock_prepare(&nl, nlh);
	/* A link list interrupted by a change is still a list of names: no retry needed. */
	r = nl_sock_talk(&nl, nlh, link_cb, l, NULL);
	nl_sock_close(&nl);
	return r;
}

static int
cmp_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int
wg_list_devices(struct wg_ctl *ctl, char ***ret_names, size_t *ret_n)
{
	struct name_list l = { 0 };
	char **names = NULL;
	size_t n = 0;
	int r;

	ctl->err[0] = '\0';
	if (ctl->backend != WG_BACKEND_KERNEL) {
		r = wg_uapi_list_devices(ctl->uapi_dir, &names, &n);
		if (r < 0)
			return r;
		for (size_t i = 0; i < n && r == 0; i++)
			r = name_list_add(&l, names[i]);
		for (size_t i = 0; i < n; i++)
			free(names[i]);
		free(names);
		if (r < 0)
			goto err;
	}
	if (ctl->backend != WG_BACKEND_UAPI) {
		r = kernel_list_devices(&l);
		if (r < 0)
			goto err;
	}
	if (l.n > 0)
		qsort(l.names, l.n, sizeof(*l.names), cmp_names);
	*ret_names = l.names;
	*ret_n = l.n;
	return 0;
err:
	name_list_clear(&l);
	return r;
}
