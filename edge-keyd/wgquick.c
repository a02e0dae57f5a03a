// SPDX-License-Identifier: MIT
/*
 * TPM custody under wg-quick and systemd-networkd (docs/edge-keyd.md "wg-quick"):
 *
 *   edge-keyd [-c CONF] wg-quick   print a wg-quick file for the enrolled device whose
 *                                  PostUp runs `edge-keyd [-c CONF] setkey %i`
 *   edge-keyd [-c CONF] setkey IF  unseal the WireGuard key from the TPM and give it to
 *                                  interface IF (kernel or wireguard-go): the key goes from
 *                                  the TPM to the interface in memory, never to a file
 *   edge-keyd [-c CONF] networkd-key
 *                                  the same for systemd-networkd, which refuses a WireGuard
 *                                  .netdev without a key but reads PrivateKeyFile= from an
 *                                  AF_UNIX socket: write the key to standard output, which
 *                                  must be such a socket with root or systemd-network at
 *                                  the other end (edge-keyd-key.socket, Accept=yes)
 */
#include <errno.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <net/if.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/key.h"
#include "common/log.h"
#include "common/wg.h"
#include "edge-keyd/edge-keyd.h"

int
ekd_setkey(const struct ekd_conf *conf, const char *ifname)
{
	uint8_t key[WG_KEY_LEN];
	struct wg_ctl *ctl = NULL;
	struct wg_device *dev = NULL;
	int r;

	if (ifname == NULL || ifname[0] == '\0' || strnlen(ifname, IFNAMSIZ) == IFNAMSIZ) {
		log_warnx("setkey: bad interface name");
		return -EINVAL;
	}
	r = wg_ctl_new(&ctl);
	if (r < 0)
		goto out;
	if (conf->uapi_dir != NULL && (r = wg_ctl_set_uapi_dir(ctl, conf->uapi_dir)) < 0)
		goto out;
	/* wg(8)'s rule: a UAPI socket means wireguard-go, else the kernel */
	r = wg_device_new(&dev, ifname);
	if (r < 0)
		goto out;
	r = ekd_unseal(conf, key);
	if (r < 0) {
		log_warnx("setkey: cannot unseal the WireGuard key: %s", strerror(-r));
		goto out;
	}
	dev->flags = WG_DEVICE_F_HAS_PRIVATE_KEY;
	memcpy(dev->private_key, key, WG_KEY_LEN);
	explicit_bzero(key, sizeof(key));
	r = wg_set_device(ctl, dev);
	if (r < 0)
		log_warnx("setkey: cannot set the key of '%s': %s %s", ifname, strerror(-r),
			wg_ctl_last_error(ctl));
out:
	explicit_bzero(key, sizeof(key));
	wg_device_free(dev); /* wipes its copy of the key */
	wg_ctl_free(ctl);
	return r;
}

/*
 * Who may read the key from @fd: a connected AF_UNIX stream socket whose peer is root or
 * the systemd-network user. A terminal, a file, a pipe or another user is refused before
 * the TPM is touched, so `edge-keyd networkd-key > file` never leaves the key in a file.
 */
static int
networkd_peer_check(int fd)
{
	struct sockaddr_un sa;
	struct ucred cred;
	struct passwd *pw;
	socklen_t len = sizeof(sa);
	int type = 0;

	if (getsockname(fd, (struct sockaddr *)&sa, &len) < 0 || sa.sun_family != AF_UNIX) {
		log_warnx("networkd-key: standard output is not an AF_UNIX socket: the key is "
			"only handed to systemd-networkd (edge-keyd-key.socket)");
		return -ENOTSOCK;
	}
	len = sizeof(type);
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 || type != SOCK_STREAM) {
		log_warnx("networkd-key: standard output is not a stream socket");
		return -ENOTSOCK;
	}
	len = sizeof(cred);
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warnx("networkd-key: no peer credentials: %s", strerror(errno));
		return -ENOTCONN;
	}
	if (cred.uid == 0)
		return 0;
	pw = getpwnam("systemd-network");
	if (pw != NULL && pw->pw_uid == cred.uid)
		return 0;
	log_warnx("networkd-key: refused: peer pid %d uid %u is neither root nor "
		"systemd-network", (int)cred.pid, (unsigned)cred.uid);
	return -EPERM;
}

int
ekd_networkd_key(const struct ekd_conf *conf, int fd)
{
	uint8_t key[WG_KEY_LEN];
	char b64[WG_KEY_B64_LEN];
	size_t off = 0;
	ssize_t n;
	int r;

	r = networkd_peer_check(fd);
	if (r < 0)
		return r;
	r = ekd_unseal(conf, key);
	if (r < 0) {
		log_warnx("networkd-key: cannot unseal the WireGuard key: %s", strerror(-r));
		goto out;
	}
	/* the shape of a key file (wg genkey): 44 characters and a newline */
	key_to_base64(b64, key);
	explicit_bzero(key, sizeof(key));
	b64[WG_KEY_B64_LEN - 1] = '\n';
	while (off < sizeof(b64)) {
		n = write(fd, b64 + off, sizeof(b64) - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			r = n < 0 ? -errno : -EIO;
			log_warnx("networkd-key: write: %s", strerror(-r));
			goto out;
		}
		off += (size_t)n;
	}
	log_info("networkd-key: WireGuard key handed to systemd-networkd");
	r = 0;
out:
	explicit_bzero(key, sizeof(key));
	explicit_bzero(b64, sizeof(b64));
	return r;
}

int
ekd_wgquick(const struct ekd_conf *conf, const char *conf_path, FILE *out)
{
	struct ekd_enrollment e;
	char errbuf[256], addr[64], ip[64], pub[WG_KEY_B64_LEN], *abs = NULL;
	int r;

	/*
	 * wg-quick runs PostUp from wherever it was started (wg-quick@: from /), cuts the line
	 * at '#' and hands it to bash: the path must be absolute and need no quoting.
	 */
	if (conf_path != NULL) {
		abs = realpath(conf_path, NULL);
		if (abs == NULL) {
			r = -errno;
			log_warnx("wg-quick: '%s': %s", conf_path, strerror(-r));
			goto out;
		}
		if (abs[strspn(abs, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
			"0123456789/._+,:@=-")] != '\0') {
			log_warnx("wg-quick: the configuration path '%s' cannot go into a PostUp "
				"line: use only letters, digits and / . _ + , : @ = -", abs);
			r = -EINVAL;
			goto out;
		}
	}
	r = ekd_enrollment_load(conf->state_dir, &e, errbuf, sizeof(errbuf));
	if (r < 0) {
		log_warnx("wg-quick: %s", r == -ENOENT ? "not enrolled (edge-keyd enroll)" :
			errbuf);
		goto out;
	}
	ekd_allowedip_format(&e.address, addr, sizeof(addr));
	fprintf(out, "# edge-keyd wg-quick: device %s of tenant '%s'\n", e.device_id, e.tenant);
	fprintf(out, "[Interface]\n");
	fprintf(out, "# PrivateKey: sealed in the TPM; PostUp unseals it into the interface\n");
	fprintf(out, "Address = %s", addr);
	if (e.has_address6) {
		ekd_allowedip_format(&e.address6, ip, sizeof(ip));
		fprintf(out, ", %s", ip);
	}
	fprintf(out, "\nPostUp = edge-keyd%s%s setkey %%i\n", abs ? " -c " : "", abs ? abs : "");
	key_to_base64(pub, e.server_public_key);
	fprintf(out, "\n[Peer]\nPublicKey = %s\nEndpoint = %s\nAllowedIPs = ", pub, e.endpoint);
	for (size_t i = 0; i < e.n_allowed_ips; i++) {
		ekd_allowedip_format(&e.allowed_ips[i], ip, sizeof(ip));
		fprintf(out, "%s%s", i ? ", " : "", ip);
	}
	fprintf(out, "\n");
	if (e.keepalive)
		fprintf(out, "PersistentKeepalive = %u\n", e.keepalive);
	r = fflush(out) == 0 ? 0 : -EIO;
out:
	free(abs);
	return r;
}
