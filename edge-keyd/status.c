// SPDX-License-Identifier: MIT
/*
 * `edge-keyd status`: the tunnel as WireGuard reports it and the enrollment as the state
 * directory records it. Never a private key: only public keys and their fingerprints.
 *
 * A one-shot command cannot watch counters move, so it judges the tunnel by its last
 * handshake: "up" if one completed within REJECT_AFTER_TIME (180 s; with keepalives
 * flowing WireGuard renews it every ~2 minutes, and a session older than that carries
 * nothing), "down" if older, "never" if none yet, "absent" if there is no interface.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/wg.h"
#include "edge-keyd/edge-keyd.h"
#include "edge-keyd/tpm/tpmdev.h"

#define REJECT_AFTER_TIME 180

/* 1 up, 0 down, -ENODEV absent. */
static int
link_up(const char *ifname)
{
	struct ifreq ifr = { 0 };
	int fd, r;

	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", ifname);
	r = ioctl(fd, SIOCGIFFLAGS, &ifr);
	if (r < 0)
		r = errno == ENODEV || errno == ENXIO ? -ENODEV : -errno;
	else
		r = !!(ifr.ifr_flags & IFF_UP);
	close(fd);
	return r;
}

static void
format_endpoint(const union wg_endpoint *ep, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN] = "?";

	if (ep->addr.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->addr4.sin_addr, a, sizeof(a));
		snprintf(buf, len, "%s:%u", a, ntohs(ep->addr4.sin_port));
	} else if (ep->addr.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &ep->addr6.sin6_addr, a, sizeof(a));
		snprintf(buf, len, "[%s]:%u", a, ntohs(ep->addr6.sin6_port));
	} else {
		buf[0] = '\0';
	}
}

static void
format_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (t <= 0 || gmtime_r(&tt, &tm) == NULL)
		snprintf(buf, len, "never");
	else
		strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

static void
format_bytes(uint64_t n, char *buf, size_t len)
{
	static const char *const unit[] = { "B", "KiB", "MiB", "GiB", "TiB" };
	double v = (double)n;
	size_t u = 0;

	while (v >= 1024 && u < 4) {
		v /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%llu B", (unsigned long long)n);
	else
		snprintf(buf, len, "%.2f %s", v, unit[u]);
}

struct status {
	bool enrolled;
	struct ekd_enrollment e;
	char enroll_err[300];
	int link;		/* 1 up, 0 down, <0 absent/error */
	bool have_dev;
	bool configured;	/* the device has our key and the control plane as its peer */
	struct wg_peer peer;	/* copy of our peer's fields (allowed IPs not kept) */
	const char *state;	/* up, down, never, absent */
	int64_t hs_age;
	bool rotation_pending;
	uint8_t wg_pub[WG_KEY_LEN];
	bool have_pub;
	int key_r;		/* ekd_key_check(): 0 the sealed key would unseal */
	char key_pcrs[64];	/* its PCR policy, "" none */
	char key_err[400];	/* why it would not, one line */
};

static void
collect(const struct ekd_conf *conf, struct status *s, time_t now)
{
	struct wg_ctl *wg = NULL;
	struct wg_device *dev = NULL;
	uint8_t staged[WG_KEY_LEN];

	memset(s, 0, sizeof(*s));
	s->enrolled = ekd_enrollment_load(conf->state_dir, &s->e, s->enroll_err,
		sizeof(s->enroll_err)) == 0;
	s->have_pub = tpmdev_wg_public(conf->state_dir, s->wg_pub) == 0;
	/* the TPM is asked whether the key's PCR policy still holds; nothing is unsealed */
	if (s->have_pub)
		s->key_r = ekd_key_check(conf, s->key_pcrs, sizeof(s->key_pcrs), s->key_err,
			sizeof(s->key_err));
	s->rotation_pending = tpmdev_wg_public_staged(conf->state_dir, staged) == 0;
	s->link = link_up(conf->ifname);
	s->state = "absent";
	if (wg_ctl_new(&wg) < 0)
		return;
	(void)wg_ctl_set_uapi_dir(wg, conf->uapi_dir);
	wg_ctl_set_backend(wg, conf->backend == EKD_BACKEND_USERSPACE ? WG_BACKEND_UAPI :
		WG_BACKEND_KERNEL);
	if (s->link >= 0 && wg_get_device(wg, conf->ifname, &dev) == 0) {
		s->have_dev = true;
		if (s->enrolled) {
			struct wg_peer *p = wg_device_find_peer(dev, s->e.server_public_key);

			if (p != NULL) {
				s->peer = *p;
				s->peer.allowedips = NULL;
				s->peer.n_allowedips = 0;
				explicit_bzero(s->peer.preshared_key, sizeof(s->peer.preshared_key));
				s->configured = (dev->flags & WG_DEVICE_F_HAS_PUBLIC_KEY) &&
					key_equal(dev->public_key, s->e.wg_public_key);
			}
		}
		if (!s->configured)
			s->state = "down";
		else if (s->peer.last_handshake_sec <= 0)
			s->state = "never";
		else {
			s->hs_age = (int64_t)now - s->peer.last_handshake_sec;
			s->state = s->hs_age <= REJECT_AFTER_TIME && s->link == 1 ? "up" : "down";
		}
	}
	wg_device_free(dev); /* wipes the private key the read returned */
	wg_ctl_free(wg);
}

static json_t *
status_json(const struct ekd_conf *conf, const struct status *s)
{
	char ep[INET6_ADDRSTRLEN + 10], pub[WG_KEY_B64_LEN];
	json_t *j, *iface, *tun, *enr;

	iface = json_pack("{s:s, s:s, s:b, s:b}", "name", conf->ifname, "backend",
		conf->backend == EKD_BACKEND_USERSPACE ? "userspace" : "kernel", "present",
		s->link >= 0, "up", s->link == 1);
	format_endpoint(&s->peer.endpoint, ep, sizeof(ep));
	tun = json_pack("{s:s, s:b, s:I, s:I, s:I, s:s?}", "state", s->state, "configured",
		s->configured, "last_handshake", (json_int_t)s->peer.last_handshake_sec,
		"rx_bytes", (json_int_t)s->peer.rx_bytes, "tx_bytes", (json_int_t)s->peer.tx_bytes,
		"endpoint", ep[0] ? ep : NULL);
	if (tun != NULL && s->peer.last_handshake_sec > 0)
		json_object_set_new(tun, "last_handshake_age", json_integer(s->hs_age));
	if (s->enrolled) {
		enr = ekd_enrollment_to_json(&s->e);
		if (enr != NULL)
			json_object_del(enr, "version");
	} else {
		enr = json_null();
	}
	j = json_pack("{s:o, s:o, s:o, s:b}", "interface", iface, "tunnel", tun, "enrollment",
		enr, "rotation_pending", s->rotation_pending);
	if (j != NULL && s->have_pub) {
		key_to_base64(pub, s->wg_pub);
		json_object_set_new(j, "wg_public_key", json_string(pub));
	}
	if (j != NULL && s->have_pub)
		json_object_set_new(j, "sealed_key", json_pack("{s:s?, s:b, s:s?}", "pcr_policy",
			s->key_pcrs[0] ? s->key_pcrs : NULL, "unsealable", s->key_r == 0, "error",
			s->key_r < 0 ? s->key_err : NULL));
	if (j != NULL && !s->enrolled)
		json_object_set_new(j, "error", json_string(s->enroll_err[0] ? s->enroll_err :
			"not enrolled"));
	return j;
}

static void
status_text(const struct ekd_conf *conf, const struct status *s, FILE *f)
{
	char buf[128], buf2[64], ep[INET6_ADDRSTRLEN + 10], fp[WG_KEY_FP_LEN];

	fprintf(f, "interface:       %s (%s, %s)\n", conf->ifname,
		conf->backend == EKD_BACKEND_USERSPACE ? "userspace" : "kernel",
		s->link < 0 ? "absent" : s->link == 1 ? "up" : "down");
	fprintf(f, "tunnel:          %s%s\n", s->state,
		s->have_dev && !s->configured ? " (the interface does not have our configuration)" :
		"");
	if (s->configured) {
		format_endpoint(&s->peer.endpoint, ep, sizeof(ep));
		format_time(s->peer.last_handshake_sec, buf, sizeof(buf));
		if (s->peer.last_handshake_sec > 0)
			fprintf(f, "last handshake:  %lld s ago (%s)\n", (long long)s->hs_age, buf);
		else
			fprintf(f, "last handshake:  never\n");
		format_bytes(s->peer.rx_bytes, buf, sizeof(buf));
		format_bytes(s->peer.tx_bytes, buf2, sizeof(buf2));
		fprintf(f, "transfer:        %s received, %s sent\n", buf, buf2);
		fprintf(f, "peer endpoint:   %s\n", ep[0] ? ep : "(none)");
	}
	if (!s->enrolled) {
		fprintf(f, "enrollment:      none (%s)\n", s->enroll_err);
	} else {
		ekd_allowedip_format(&s->e.address, buf, sizeof(buf));
		fprintf(f, "address:         %s", buf);
		if (s->e.has_address6) {
			ekd_allowedip_format(&s->e.address6, buf, sizeof(buf));
			fprintf(f, ", %s", buf);
		}
		fputc('\n', f);
		fprintf(f, "device:          %s in tenant '%s'\n", s->e.device_id, s->e.tenant);
		fprintf(f, "control plane:   %s (%s)\n", s->e.endpoint, s->e.server_url);
		fprintf(f, "routed:         ");
		for (size_t i = 0; i < s->e.n_allowed_ips; i++) {
			ekd_allowedip_format(&s->e.allowed_ips[i], buf, sizeof(buf));
			fprintf(f, " %s", buf);
		}
		fputc('\n', f);
		format_time(s->e.enrolled_at, buf, sizeof(buf));
		fprintf(f, "enrolled:        %s\n", buf);
		key_fingerprint(fp, s->e.wg_public_key);
		fprintf(f, "enrolled key:    %s (fingerprint)\n", fp);
	}
	if (s->have_pub && s->key_r < 0)
		fprintf(f, "sealed key:      %s\n", s->key_err);
	else if (s->have_pub)
		fprintf(f, "sealed key:      %s%s\n", s->key_pcrs[0] ? "PCR policy " : "no PCR policy",
			s->key_pcrs[0] ? s->key_pcrs : "");
	if (s->have_pub && s->enrolled && !key_equal(s->wg_pub, s->e.wg_public_key))
		fprintf(f, "warning:         the sealed key is not the enrolled one: re-enroll\n");
	if (s->rotation_pending)
		fprintf(f, "warning:         a rotation was interrupted: run 'edge-keyd rotate' "
			"again\n");
}

int
ekd_status(const struct ekd_conf *conf, bool as_json)
{
	struct status s;
	json_t *j;

	collect(conf, &s, time(NULL));
	if (as_json) {
		j = status_json(conf, &s);
		if (j == NULL || json_dumpf(j, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER) < 0) {
			json_decref(j);
			return 1;
		}
		fputc('\n', stdout);
		json_decref(j);
	} else {
		status_text(conf, &s, stdout);
	}
	fflush(stdout);
	return strcmp(s.state, "up") == 0 ? 0 : 3;
}
