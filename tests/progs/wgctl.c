// SPDX-License-Identifier: MIT
/*
 * wgctl: a small command-line tool over common/wg.h, and nothing else (no wg(8)).
 * The integration tests and the benchmark drive WireGuard with it; it is also the
 * shortest complete example of the API.
 *
 *   wgctl [--uapi-dir DIR] [--backend auto|kernel|uapi] COMMAND ...
 *
 *   show IFNAME      the device and its peers, tab-separated, in the format of
 *                    `wg show IFNAME dump` (so the two can be compared)
 *   list             WireGuard interface names, one per line
 *   backend IFNAME   "kernel" or "uapi": which backend IFNAME would use
 *   set IFNAME [private-key FILE] [listen-port N] [fwmark N] [replace-peers]
 *              [peer BASE64 [remove] [update-only] [preshared-key FILE] [endpoint IP:PORT]
 *                   [allowed-ips A/N,B/N] [replace-allowed-ips] [persistent-keepalive N]]...
 *                    as wg(8) set: allowed-ips replaces the peer's list
 *   genkey           a new private key in base64
 *   pubkey           the public key of the private key read from stdin
 *
 * Exit status: 0 on success, 1 on failure (with a message on stderr), 2 on bad usage.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/key.h"
#include "common/wg.h"

static const char usage_text[] =
	"usage: wgctl [--uapi-dir DIR] [--backend auto|kernel|uapi] COMMAND ...\n"
	"  show IFNAME\n"
	"  list\n"
	"  backend IFNAME\n"
	"  set IFNAME [private-key FILE] [listen-port N] [fwmark N] [replace-peers]\n"
	"             [peer BASE64 [remove] [update-only] [preshared-key FILE]\n"
	"                  [endpoint IP:PORT] [allowed-ips A/N,B/N] [replace-allowed-ips]\n"
	"                  [persistent-keepalive N]]...\n"
	"  genkey\n"
	"  pubkey\n";

static int
usage(void)
{
	fputs(usage_text, stderr);
	return 2;
}

static int
parse_uint(const char *s, unsigned long max, unsigned long *ret)
{
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	*ret = strtoul(s, &end, 10);
	if (errno || *end != '\0' || *ret > max)
		return -EINVAL;
	return 0;
}

/* A base64 key from a file that only its owner may read (the rule for key files). */
static int
read_key_file(uint8_t key[static WG_KEY_LEN], const char *path)
{
	char buf[WG_KEY_B64_LEN + 2];
	struct stat st;
	ssize_t n;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (st.st_mode & 077) {
		fprintf(stderr, "wgctl: '%s' is readable by group or others\n", path);
		ret = -EPERM;
		goto out;
	}
	n = read(fd, buf, sizeof(buf) - 1);
	if (n < 0) {
		ret = -errno;
		goto out;
	}
	buf[n] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	ret = key_from_base64(key, buf);
out:
	explicit_bzero(buf, sizeof(buf));
	close(fd);
	return ret;
}

/* ---- show: the `wg show IFNAME dump` format ---- */

static void
print_key(const uint8_t key[static WG_KEY_LEN], bool present)
{
	char b64[WG_KEY_B64_LEN];

	if (!present) {
		fputs("(none)", stdout);
		return;
	}
	key_to_base64(b64, key);
	fputs(b64, stdout);
	explicit_bzero(b64, sizeof(b64));
}

static void
print_endpoint(const union wg_endpoint *ep)
{
	char host[INET6_ADDRSTRLEN];

	if (ep->addr.sa_family == AF_INET) {
		inet_ntop(AF_INET, &ep->addr4.sin_addr, host, sizeof(host));
		printf("%s:%u", host, ntohs(ep->addr4.sin_port));
	} else if (ep->addr.sa_family == AF_INET6) {
		inet_ntop(AF_INET6, &ep->addr6.sin6_addr, host, sizeof(host));
		if (ep->addr6.sin6_scope_id)
			printf("[%s%%%u]:%u", host, ep->addr6.sin6_scope_id,
				ntohs(ep->addr6.sin6_port));
		else
			printf("[%s]:%u", host, ntohs(ep->addr6.sin6_port));
	} else {
		fputs("(none)", stdout);
	}
}

static void
print_allowedips(const struct wg_peer *peer)
{
	char host[INET6_ADDRSTRLEN];

	if (peer->n_allowedips == 0)
		fputs("(none)", stdout);
	for (size_t i = 0; i < peer->n_allowedips; i++) {
		const struct wg_allowedip *aip = &peer->allowedips[i];

		inet_ntop(aip->family, aip->family == AF_INET ? (const void *)&aip->ip4 :
			(const void *)&aip->ip6, host, sizeof(host));
		printf("%s%s/%u", i ? "," : "", host, aip->cidr);
	}
}

static int
cmd_show(struct wg_ctl *ctl, const char *ifname)
{
	struct wg_device *dev = NULL;
	int r;

	r = wg_get_device(ctl, ifname, &dev);
	if (r < 0) {
		fprintf(stderr, "wgctl: show '%s': %s%s%s\n", ifname, strerror(-r),
			*wg_ctl_last_error(ctl) ? ": " : "", wg_ctl_last_error(ctl));
		return 1;
	}
	print_key(dev->private_key, dev->flags & WG_DEVICE_F_HAS_PRIVATE_KEY);
	putchar('\t');
	print_key(dev->public_key, dev->flags & WG_DEVICE_F_HAS_PUBLIC_KEY);
	printf("\t%u\t", dev->listen_port);
	if (dev->fwmark)
		printf("0x%x\n", dev->fwmark);
	else
		puts("off");
	for (size_t i = 0; i < dev->n_peers; i++) {
		const struct wg_peer *peer = &dev->peers[i];

		print_key(peer->public_key, true);
		putchar('\t');
		print_key(peer->preshared_key, peer->flags & WG_PEER_F_HAS_PRESHARED_KEY);
		putchar('\t');
		print_endpoint(&peer->endpoint);
		putchar('\t');
		print_allowedips(peer);
		printf("\t%" PRId64 "\t%" PRIu64 "\t%" PRIu64 "\t", peer->last_handshake_sec,
			peer->rx_bytes, peer->tx_bytes);
		if (peer->persistent_keepalive)
			printf("%u\n", peer->persistent_keepalive);
		else
			puts("off");
	}
	wg_device_free(dev);
	return fflush(stdout) == 0 ? 0 : 1;
}

static int
cmd_list(struct wg_ctl *ctl)
{
	char **names = NULL;
	size_t n = 0;
	int r;

	r = wg_list_devices(ctl, &names, &n);
	if (r < 0) {
		fprintf(stderr, "wgctl: list: %s\n", strerror(-r));
		return 1;
	}
	for (size_t i = 0; i < n; i++) {
		puts(names[i]);
		free(names[i]);
	}
	free(names);
	return 0;
}

/* ---- set ---- */

static int
parse_allowedips(struct wg_peer *peer, const char *list)
{
	char *copy, *item, *save = NULL;
	struct wg_allowedip aip;
	int r = 0;

	copy = strdup(list);
	if (copy == NULL)
		return -ENOMEM;
	for (item = strtok_r(copy, ",", &save); item != NULL && r == 0;
		item = strtok_r(NULL, ",", &save)) {
		r = wg_allowedip_parse(&aip, item);
		if (r == 0)
			r = wg_peer_add_allowedip(peer, aip.family, aip.family == AF_INET ?
				(const void *)&aip.ip4 : (const void *)&aip.ip6, aip.cidr);
		if (r < 0)
			fprintf(stderr, "wgctl: bad allowed IP '%s'\n", item);
	}
	free(copy);
	return r;
}

/* One "peer ..." clause's option at argv[*i]; returns 0, 1 if it is not a peer option. */
static int
parse_peer_opt(struct wg_peer *peer, int argc, char **argv, int *i)
{
	const char *opt = argv[*i], *arg = *i + 1 < argc ? argv[*i + 1] : NULL;
	unsigned long v;

	if (!strcmp(opt, "remove")) {
		peer->flags |= WG_PEER_F_REMOVE_ME;
		return 0;
	}
	if (!strcmp(opt, "update-only")) {
		peer->flags |= WG_PEER_F_UPDATE_ONLY;
		return 0;
	}
	if (!strcmp(opt, "replace-allowed-ips")) {
		peer->flags |= WG_PEER_F_REPLACE_ALLOWEDIPS;
		return 0;
	}
	if (strcmp(opt, "preshared-key") && strcmp(opt, "endpoint") &&
		strcmp(opt, "allowed-ips") && strcmp(opt, "persistent-keepalive"))
		return 1;
	if (arg == NULL) {
		fprintf(stderr, "wgctl: '%s' needs a value\n", opt);
		return -EINVAL;
	}
	(*i)++;
	if (!strcmp(opt, "preshared-key")) {
		if (read_key_file(peer->preshared_key, arg) < 0)
			goto bad;
		peer->flags |= WG_PEER_F_HAS_PRESHARED_KEY;
	} else if (!strcmp(opt, "endpoint")) {
		if (wg_endpoint_parse(&peer->endpoint, arg) < 0)
			goto bad;
	} else if (!strcmp(opt, "allowed-ips")) {
		peer->flags |= WG_PEER_F_REPLACE_ALLOWEDIPS;
		if (parse_allowedips(peer, arg) < 0)
			return -EINVAL;
	} else {
		if (parse_uint(arg, UINT16_MAX, &v) < 0)
			goto bad;
		peer->persistent_keepalive = (uint16_t)v;
		peer->flags |= WG_PEER_F_HAS_PERSISTENT_KEEPALIVE;
	}
	return 0;
bad:
	fprintf(stderr, "wgctl: bad %s '%s'\n", opt, arg);
	return -EINVAL;
}

static int
parse_device_opt(struct wg_device *dev, int argc, char **argv, int *i)
{
	const char *opt = argv[*i], *arg = *i + 1 < argc ? argv[*i + 1] : NULL;
	unsigned long v;

	if (!strcmp(opt, "replace-peers")) {
		dev->flags |= WG_DEVICE_F_REPLACE_PEERS;
		return 0;
	}
	if (arg == NULL) {
		fprintf(stderr, "wgctl: '%s' needs a value\n", opt);
		return -EINVAL;
	}
	(*i)++;
	if (!strcmp(opt, "private-key")) {
		if (read_key_file(dev->private_key, arg) < 0)
			goto bad;
		dev->flags |= WG_DEVICE_F_HAS_PRIVATE_KEY;
	} else if (!strcmp(opt, "listen-port")) {
		if (parse_uint(arg, UINT16_MAX, &v) < 0)
			goto bad;
		dev->listen_port = (uint16_t)v;
		dev->flags |= WG_DEVICE_F_HAS_LISTEN_PORT;
	} else if (!strcmp(opt, "fwmark")) {
		if (parse_uint(arg, UINT32_MAX, &v) < 0)
			goto bad;
		dev->fwmark = (uint32_t)v;
		dev->flags |= WG_DEVICE_F_HAS_FWMARK;
	} else {
		fprintf(stderr, "wgctl: unknown option '%s'\n", opt);
		return -EINVAL;
	}
	return 0;
bad:
	fprintf(stderr, "wgctl: bad %s '%s'\n", opt, arg);
	return -EINVAL;
}

static int
cmd_set(struct wg_ctl *ctl, const char *ifname, int argc, char **argv)
{
	struct wg_device *dev = NULL;
	struct wg_peer *peer = NULL;
	int ret = 1, r;

	r = wg_device_new(&dev, ifname);
	if (r < 0) {
		fprintf(stderr, "wgctl: '%s': %s\n", ifname, strerror(-r));
		return 1;
	}
	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "peer")) {
			if (i + 1 >= argc || wg_device_add_peer(dev, &peer) < 0 ||
				key_from_base64(peer->public_key, argv[i + 1]) < 0) {
				fprintf(stderr, "wgctl: peer needs a base64 public key\n");
				goto out;
			}
			peer->flags |= WG_PEER_F_HAS_PUBLIC_KEY;
			i++;
			continue;
		}
		/* Options after "peer KEY" belong to that peer, as in wg(8). */
		r = peer != NULL ? parse_peer_opt(peer, argc, argv, &i) : 1;
		if (r == 1)
			r = parse_device_opt(dev, argc, argv, &i);
		if (r < 0)
			goto out;
	}
	r = wg_set_device(ctl, dev);
	if (r < 0) {
		fprintf(stderr, "wgctl: set '%s': %s%s%s\n", ifname, strerror(-r),
			*wg_ctl_last_error(ctl) ? ": " : "", wg_ctl_last_error(ctl));
		goto out;
	}
	ret = 0;
out:
	wg_device_free(dev);
	return ret;
}

/* ---- keys ---- */

static int
cmd_genkey(void)
{
	uint8_t key[WG_KEY_LEN];
	char b64[WG_KEY_B64_LEN];
	int ret = 1;

	if (key_generate_private(key) == 0) {
		key_to_base64(b64, key);
		ret = puts(b64) < 0 || fflush(stdout) != 0;
	}
	explicit_bzero(key, sizeof(key));
	explicit_bzero(b64, sizeof(b64));
	return ret;
}

static int
cmd_pubkey(void)
{
	uint8_t priv[WG_KEY_LEN], pub[WG_KEY_LEN];
	char line[WG_KEY_B64_LEN + 2] = "";
	char b64[WG_KEY_B64_LEN];
	int ret = 1;

	if (fgets(line, sizeof(line), stdin) != NULL) {
		line[strcspn(line, "\r\n")] = '\0';
		if (key_from_base64(priv, line) == 0 && key_public_from_private(pub, priv) == 0) {
			key_to_base64(b64, pub);
			ret = puts(b64) < 0;
		}
	}
	if (ret)
		fprintf(stderr, "wgctl: pubkey: stdin is not a base64 private key\n");
	explicit_bzero(priv, sizeof(priv));
	explicit_bzero(line, sizeof(line));
	return ret;
}

int
main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "uapi-dir", required_argument, NULL, 'u' },
		{ "backend", required_argument, NULL, 'b' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	enum wg_backend backend = WG_BACKEND_AUTO;
	const char *uapi_dir = NULL, *cmd;
	struct wg_ctl *ctl = NULL;
	int c, ret;

	while ((c = getopt_long(argc, argv, "+h", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			uapi_dir = optarg;
			break;
		case 'b':
			if (!strcmp(optarg, "kernel"))
				backend = WG_BACKEND_KERNEL;
			else if (!strcmp(optarg, "uapi"))
				backend = WG_BACKEND_UAPI;
			else if (strcmp(optarg, "auto"))
				return usage();
			break;
		default:
			return usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 1)
		return usage();
	cmd = argv[0];
	if (!strcmp(cmd, "genkey"))
		return cmd_genkey();
	if (!strcmp(cmd, "pubkey"))
		return cmd_pubkey();

	if (wg_ctl_new(&ctl) < 0 || (uapi_dir != NULL && wg_ctl_set_uapi_dir(ctl, uapi_dir) < 0)) {
		fprintf(stderr, "wgctl: out of memory\n");
		wg_ctl_free(ctl);
		return 1;
	}
	wg_ctl_set_backend(ctl, backend);
	if (!strcmp(cmd, "show") && argc == 2)
		ret = cmd_show(ctl, argv[1]);
	else if (!strcmp(cmd, "list") && argc == 1)
		ret = cmd_list(ctl);
	else if (!strcmp(cmd, "backend") && argc == 2)
		ret = puts(wg_ctl_backend_of(ctl, argv[1]) == WG_BACKEND_UAPI ? "uapi" : "kernel") < 0;
	else if (!strcmp(cmd, "set") && argc >= 2)
		ret = cmd_set(ctl, argv[1], argc - 2, argv + 2);
	else
		ret = usage();
	wg_ctl_free(ctl);
	return ret;
}
