// SPDX-License-Identifier: MIT
/*
 * Unit tests for common/wg_uapi.c (the UAPI text protocol) and common/wg.c (the
 * control handle and its backend choice).
 *
 * Parsing is tested on canned replies; the socket paths against a fake daemon: a thread
 * that listens on <tmpdir>/<ifname>.sock, records the request and answers a canned
 * reply in small chunks, so the reader must reassemble lines across reads. The kernel
 * backend is replaced with --wrap (see the Makefile's test_wg_uapi_LDFLAGS) to check
 * that wg.c sends a name without a socket to the kernel and keeps the ext-ack text.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/wg.h"

/* RFC 7748 section 6.1, Alice: the public key the parser must derive. */
#define ALICE_PRIV_HEX "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
#define ALICE_PUB_HEX "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
#define KEY1_HEX "1111111111111111111111111111111111111111111111111111111111111111"
#define KEY2_HEX "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789"
#define PSK_HEX "5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a5a"
#define ZERO_HEX "0000000000000000000000000000000000000000000000000000000000000000"

static void
hex2bin(uint8_t *out, const char *hex)
{
	for (size_t i = 0; hex[2 * i]; i++)
		sscanf(&hex[2 * i], "%2hhx", &out[i]);
}

static int
parse(const char *text, struct wg_device **ret_dev)
{
	struct wg_device *dev = NULL;
	int r;

	assert_int_equal(wg_device_new(&dev, "wgtest0"), 0);
	r = wg_uapi_parse_get(text, strlen(text), dev);
	if (ret_dev != NULL && r == 0)
		*ret_dev = dev;
	else
		wg_device_free(dev);
	return r;
}

/* What wireguard-go v0.0.20220316 prints, with an unknown key added. */
static const char full_reply[] =
	"private_key=" ALICE_PRIV_HEX "\n"
	"listen_port=51820\n"
	"fwmark=4660\n"
	"public_key=" KEY1_HEX "\n"
	"preshared_key=" PSK_HEX "\n"
	"protocol_version=1\n"
	"endpoint=192.0.2.7:51821\n"
	"last_handshake_time_sec=1700000000\n"
	"last_handshake_time_nsec=123456789\n"
	"tx_bytes=18446744073709551615\n"
	"rx_bytes=4096\n"
	"persistent_keepalive_interval=25\n"
	"some_future_key=whatever\n"
	"allowed_ip=10.9.0.0/16\n"
	"allowed_ip=fd00:9::/64\n"
	"public_key=" KEY2_HEX "\n"
	"preshared_key=" ZERO_HEX "\n"
	"protocol_version=1\n"
	"endpoint=[2001:db8::7]:443\n"
	"last_handshake_time_sec=0\n"
	"last_handshake_time_nsec=0\n"
	"tx_bytes=0\n"
	"rx_bytes=0\n"
	"persistent_keepalive_interval=0\n"
	"errno=0\n"
	"\n";

static void
test_parse_full_reply(void **state)
{
	struct wg_device *dev = NULL;
	uint8_t key[WG_KEY_LEN];
	struct wg_peer *p;
	struct in6_addr a6;

	assert_int_equal(parse(full_reply, &dev), 0);
	assert_int_equal(dev->flags, WG_DEVICE_F_HAS_PRIVATE_KEY | WG_DEVICE_F_HAS_PUBLIC_KEY |
		WG_DEVICE_F_HAS_LISTEN_PORT | WG_DEVICE_F_HAS_FWMARK);
	hex2bin(key, ALICE_PRIV_HEX);
	assert_memory_equal(dev->private_key, key, WG_KEY_LEN);
	hex2bin(key, ALICE_PUB_HEX);
	assert_memory_equal(dev->public_key, key, WG_KEY_LEN);
	assert_int_equal(dev->listen_port, 51820);
	assert_int_equal(dev->fwmark, 4660);
	assert_int_equal(dev->n_peers, 2);

	p = &dev->peers[0];
	hex2bin(key, KEY1_HEX);
	assert_memory_equal(p->public_key, key, WG_KEY_LEN);
	assert_true(p->flags & WG_PEER_F_HAS_PRESHARED_KEY);
	hex2bin(key, PSK_HEX);
	assert_memory_equal(p->preshared_key, key, WG_KEY_LEN);
	assert_int_equal(p->endpoint.addr.sa_family, AF_INET);
	assert_int_equal(ntohs(p->endpoint.addr4.sin_port), 51821);
	assert_int_equal(ntohl(p->endpoint.addr4.sin_addr.s_addr), 0xc0000207);
	assert_int_equal(p->last_handshake_sec, 1700000000);
	assert_int_equal(p->last_handshake_nsec, 123456789);
	assert_true(p->tx_bytes == UINT64_MAX);
	assert_int_equal(p->rx_bytes, 4096);
	assert_int_equal(p->persistent_keepalive, 25);
	assert_int_equal(p->n_allowedips, 2);
	assert_int_equal(p->allowedips[0].family, AF_INET);
	assert_int_equal(p->allowedips[0].cidr, 16);
	assert_int_equal(ntohl(p->allowedips[0].ip4.s_addr), 0x0a090000);
	assert_int_equal(p->allowedips[1].family, AF_INET6);
	assert_int_equal(p->allowedips[1].cidr, 64);
	inet_pton(AF_INET6, "fd00:9::", &a6);
	assert_memory_equal(&p->allowedips[1].ip6, &a6, sizeof(a6));

	p = &dev->peers[1];
	hex2bin(key, KEY2_HEX);
	assert_memory_equal(p->public_key, key, WG_KEY_LEN);
	assert_false(p->flags & WG_PEER_F_HAS_PRESHARED_KEY); /* all zero: none */
	assert_int_equal(p->endpoint.addr.sa_family, AF_INET6);
	assert_int_equal(ntohs(p->endpoint.addr6.sin6_port), 443);
	inet_pton(AF_INET6, "2001:db8::7", &a6);
	assert_memory_equal(&p->endpoint.addr6.sin6_addr, &a6, sizeof(a6));
	assert_int_equal(p->n_allowedips, 0);
	assert_int_equal(p->last_handshake_sec, 0);
	wg_device_free(dev);
}

static void
test_parse_uppercase_hex_and_empty_device(void **state)
{
	struct wg_device *dev = NULL;
	uint8_t key[WG_KEY_LEN];

	assert_int_equal(parse("public_key=ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789"
		"ABCDEF0123456789\nerrno=0\n\n", &dev), 0);
	hex2bin(key, KEY2_HEX);
	assert_memory_equal(dev->peers[0].public_key, key, WG_KEY_LEN);
	assert_int_equal(dev->flags, 0);
	wg_device_free(dev);

	assert_int_equal(parse("errno=0\n\n", &dev), 0);
	assert_int_equal(dev->n_peers, 0);
	assert_int_equal(dev->flags, 0);
	wg_device_free(dev);
}

static void
test_parse_errno_replies(void **state)
{
	/* wireguard-go writes the errno negative; the protocol text positive. */
	assert_int_equal(parse("errno=-22\n\n", NULL), -EINVAL);
	assert_int_equal(parse("errno=98\n\n", NULL), -EADDRINUSE);
	assert_int_equal(parse("listen_port=1\nerrno=-5\n\n", NULL), -EIO);
	assert_int_equal(parse("errno=\n\n", NULL), -EPROTO);
	assert_int_equal(parse("errno=x\n\n", NULL), -EPROTO);
	assert_int_equal(parse("errno=--1\n\n", NULL), -EPROTO);
	assert_int_equal(parse("errno=99999999999\n\n", NULL), -EPROTO);
}

static void
test_parse_v6_endpoints(void **state)
{
	struct wg_device *dev = NULL;
	struct in6_addr a6;

	assert_int_equal(parse("public_key=" KEY1_HEX "\nendpoint=[fe80::1%7]:51820\n"
		"public_key=" KEY2_HEX "\nendpoint=[fe80::2%lo]:1\n"
		"public_key=" ZERO_HEX "\nendpoint=[::ffff:192.0.2.1]:65535\nerrno=0\n\n", &dev), 0);
	assert_int_equal(dev->n_peers, 3);
	assert_int_equal(dev->peers[0].endpoint.addr.sa_family, AF_INET6);
	assert_int_equal(dev->peers[0].endpoint.addr6.sin6_scope_id, 7);
	inet_pton(AF_INET6, "fe80::1", &a6);
	assert_memory_equal(&dev->peers[0].endpoint.addr6.sin6_addr, &a6, sizeof(a6));
	assert_int_equal(ntohs(dev->peers[0].endpoint.addr6.sin6_port), 51820);
	assert_int_equal(dev->peers[1].endpoint.addr6.sin6_scope_id, if_nametoindex("lo"));
	assert_int_equal(ntohs(dev->peers[2].endpoint.addr6.sin6_port), 65535);
	wg_device_free(dev);
}

static void
test_parse_many_allowedips(void **state)
{
	struct wg_device *dev = NULL;
	size_t len = 0, cap = 128 * 1024;
	char *buf = malloc(cap);

	assert_non_null(buf);
	len += (size_t)sprintf(buf + len, "public_key=%s\n", KEY1_HEX);
	for (unsigned int i = 0; i < 2000; i++) {
		if (i % 2)
			len += (size_t)sprintf(buf + len, "allowed_ip=10.%u.%u.0/24\n", i >> 8,
				i & 0xff);
		else
			len += (size_t)sprintf(buf + len, "allowed_ip=fd00:%x::/32\n", i);
	}
	len += (size_t)sprintf(buf + len, "errno=0\n\n");
	assert_int_equal(wg_device_new(&dev, "wgtest0"), 0);
	assert_int_equal(wg_uapi_parse_get(buf, len, dev), 0);
	assert_int_equal(dev->n_peers, 1);
	assert_int_equal(dev->peers[0].n_allowedips, 2000);
	assert_int_equal(dev->peers[0].allowedips[1999].family, AF_INET);
	assert_int_equal(ntohl(dev->peers[0].allowedips[1999].ip4.s_addr), 0x0a07cf00);
	assert_int_equal(dev->peers[0].allowedips[1998].family, AF_INET6);
	assert_int_equal(dev->peers[0].allowedips[1998].cidr, 32);
	wg_device_free(dev);
	free(buf);
}

static void
test_parse_malformed(void **state)
{
	static const char *const bad[] = {
		"",				  /* nothing */
		"\n",				  /* blank line without errno */
		"errno=0\n",			  /* no blank line */
		"errno=0",			  /* unterminated */
		"errno=0\n\nerrno=0\n\n",	  /* data after the end */
		"errno=0\nlisten_port=1\n\n",	  /* data after errno */
		"listen_port=1\n\n",		  /* no errno */
		"listen_port\nerrno=0\n\n",	  /* no '=' */
		"=1\nerrno=0\n\n",		  /* no key */
		"listen_port=65536\nerrno=0\n\n", "listen_port=-1\nerrno=0\n\n",
		"listen_port=\nerrno=0\n\n", "listen_port= 1\nerrno=0\n\n",
		"listen_port=1 \nerrno=0\n\n", "listen_port=0x10\nerrno=0\n\n",
		"fwmark=4294967296\nerrno=0\n\n",
		"private_key=" ALICE_PRIV_HEX "0\nerrno=0\n\n", /* 65 digits */
		"private_key=7707\nerrno=0\n\n",
		"private_key=g7076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a\n"
		"errno=0\n\n",
		"private_key=:7076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a\n"
		"errno=0\n\n",
		"endpoint=192.0.2.1:1\nerrno=0\n\n", /* peer key before any public_key */
		"allowed_ip=10.0.0.0/8\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nlisten_port=1\nerrno=0\n\n", /* device key after peers */
		"public_key=" KEY1_HEX "\nallowed_ip=10.0.0.1\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nallowed_ip=10.0.0.0/33\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nallowed_ip=fd00::/129\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nallowed_ip=/8\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nendpoint=192.0.2.1\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nendpoint=192.0.2.1:0\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nendpoint=fd00::1:80\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nendpoint=[fd00::1:80\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nendpoint=[fe80::1%]:80\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nendpoint=[fe80::1%nosuchif0]:80\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nendpoint=192.0.2.1%1:80\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nendpoint=[fe80::1%1]]:80\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nrx_bytes=18446744073709551616\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\ntx_bytes=1e3\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nlast_handshake_time_sec=9223372036854775808\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nlast_handshake_time_nsec=1000000000\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\npersistent_keepalive_interval=65536\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\nprotocol_version=2\nerrno=0\n\n",
		"public_key=" KEY1_HEX "\npreshared_key=\nerrno=0\n\n",
		"public_key=\nerrno=0\n\n",
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int r = parse(bad[i], NULL);

		if (r != -EINVAL && r != -EPROTO)
			fail_msg("case %zu: got %d for '%s'", i, r, bad[i]);
	}
}

static void
test_parse_nul_and_long_lines(void **state)
{
	static const char nul[] = "listen_port=1\0\nerrno=0\n\n";
	struct wg_device *dev = NULL;
	char *buf = malloc(1000);

	assert_int_equal(wg_device_new(&dev, "wgtest0"), 0);
	assert_int_equal(wg_uapi_parse_get(nul, sizeof(nul) - 1, dev), -EPROTO);
	memset(buf, 'a', 1000);
	memcpy(buf + 980, "=1\nerrno=0\n\n", 12);
	assert_int_equal(wg_uapi_parse_get(buf, 992, dev), -EPROTO);
	wg_device_free(dev);
	free(buf);
}

/* Every strict prefix of a valid reply is a truncated reply. */
static void
test_parse_every_truncation(void **state)
{
	size_t len = strlen(full_reply);

	for (size_t i = 0; i < len; i++) {
		struct wg_device *dev = NULL;
		int r;

		assert_int_equal(wg_device_new(&dev, "wgtest0"), 0);
		r = wg_uapi_parse_get(full_reply, i, dev);
		if (r != -EPROTO && r != -EINVAL)
			fail_msg("prefix of %zu bytes: %d", i, r);
		wg_device_free(dev);
	}
}

/* ---- a fake daemon ---- */

struct fake {
	char dir[64];
	char path[128];
	int lfd;
	pthread_t thread;
	const char *reply; /* sent after the request (or after read_limit bytes) */
	size_t reply_len;
	size_t chunk;	   /* reply written this many bytes at a time */
	size_t read_limit; /* 0: read the whole request (until "\n\n") */
	char *req;
	size_t req_len, req_cap;
};

static void *
fake_run(void *arg)
{
	struct fake *f = arg;
	int fd = accept(f->lfd, NULL, NULL);

	if (fd < 0)
		return NULL;
	for (;;) {
		ssize_t n;

		if (f->req_len + 65536 > f->req_cap) {
			f->req_cap = f->req_cap ? f->req_cap * 2 : 1 << 20;
			f->req = realloc(f->req, f->req_cap);
		}
		n = read(fd, f->req + f->req_len, f->read_limit ? f->read_limit : 65536);
		if (n <= 0)
			break;
		f->req_len += (size_t)n;
		if (f->read_limit)
			break;
		if (f->req_len >= 2 && !memcmp(f->req + f->req_len - 2, "\n\n", 2))
			break;
	}
	for (size_t off = 0; off < f->reply_len;) {
		size_t n = f->reply_len - off < f->chunk ? f->reply_len - off : f->chunk;
		ssize_t w = send(fd, f->reply + off, n, MSG_NOSIGNAL);

		if (w <= 0)
			break;
		off += (size_t)w;
	}
	close(fd);
	return NULL;
}

/* A fake daemon for interface @name in a fresh temp dir. */
static struct fake *
fake_start(const char *name, const char *reply, size_t reply_len, size_t chunk)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct sockaddr_un sun = { .sun_family = AF_UNIX };

	assert_non_null(f);
	strcpy(f->dir, "/tmp/test_wg_uapi.XXXXXX");
	assert_non_null(mkdtemp(f->dir));
	snprintf(f->path, sizeof(f->path), "%s/%s.sock", f->dir, name);
	assert_true(strlen(f->path) < sizeof(sun.sun_path));
	memcpy(sun.sun_path, f->path, strlen(f->path) + 1);
	f->lfd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_true(f->lfd >= 0);
	assert_int_equal(bind(f->lfd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	assert_int_equal(listen(f->lfd, 4), 0);
	f->reply = reply;
	f->reply_len = reply_len;
	f->chunk = chunk;
	return f;
}

static void
fake_go(struct fake *f)
{
	assert_int_equal(pthread_create(&f->thread, NULL, fake_run, f), 0);
}

static void
fake_stop(struct fake *f)
{
	pthread_join(f->thread, NULL);
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
	free(f->req);
	free(f);
}

static void
test_get_over_socket(void **state)
{
	struct fake *f = fake_start("wgt0", full_reply, strlen(full_reply), 7);
	struct wg_device *dev = NULL;
	char err[128] = "stale";

	fake_go(f);
	assert_int_equal(wg_uapi_get_device(f->dir, "wgt0", &dev, err, sizeof(err)), 0);
	fake_stop(f);
	assert_string_equal(err, "");
	assert_string_equal(dev->name, "wgt0");
	assert_int_equal(dev->listen_port, 51820);
	assert_int_equal(dev->n_peers, 2);
	assert_int_equal(dev->peers[0].n_allowedips, 2);
	wg_device_free(dev);
}

/* The stats read: keys and counters of every peer, the same as a full read's. */
static void
test_peer_stats_over_socket(void **state)
{
	static const char bad_psk[] = "public_key=" KEY1_HEX "\npreshared_key=zz\nerrno=0\n\n";
	static const char early[] = "tx_bytes=1\nerrno=0\n\n";
	static const char late[] = "public_key=" KEY1_HEX "\nlisten_port=1\nerrno=0\n\n";
	struct fake *f = fake_start("wgt0", full_reply, strlen(full_reply), 7);
	struct wg_peer_stats *st = NULL;
	uint8_t key[WG_KEY_LEN];
	char err[128] = "stale";
	size_t n = 0;

	fake_go(f);
	assert_int_equal(wg_uapi_get_peer_stats(f->dir, "wgt0", &st, &n, err, sizeof(err)), 0);
	assert_int_equal(f->req_len, 7);
	assert_memory_equal(f->req, "get=1\n\n", 7);
	fake_stop(f);
	assert_string_equal(err, "");
	assert_int_equal(n, 2);
	hex2bin(key, KEY1_HEX);
	assert_memory_equal(st[0].public_key, key, WG_KEY_LEN);
	assert_int_equal(st[0].last_handshake_sec, 1700000000);
	assert_true(st[0].tx_bytes == UINT64_MAX);
	assert_int_equal(st[0].rx_bytes, 4096);
	hex2bin(key, KEY2_HEX);
	assert_memory_equal(st[1].public_key, key, WG_KEY_LEN);
	assert_int_equal(st[1].last_handshake_sec, 0);
	assert_int_equal(st[1].rx_bytes, 0);
	free(st);

	/* preshared keys are not decoded, so not checked either; placement still is */
	f = fake_start("wgt0", bad_psk, strlen(bad_psk), 3);
	fake_go(f);
	st = NULL;
	assert_int_equal(wg_uapi_get_peer_stats(f->dir, "wgt0", &st, &n, err, sizeof(err)), 0);
	fake_stop(f);
	assert_int_equal(n, 1);
	free(st);
	f = fake_start("wgt0", early, strlen(early), 3);
	fake_go(f);
	assert_int_equal(wg_uapi_get_peer_stats(f->dir, "wgt0", &st, &n, err, sizeof(err)),
		-EPROTO);
	fake_stop(f);
	f = fake_start("wgt0", late, strlen(late), 3);
	fake_go(f);
	assert_int_equal(wg_uapi_get_peer_stats(f->dir, "wgt0", &st, &n, err, sizeof(err)),
		-EPROTO);
	fake_stop(f);
	assert_int_equal(wg_uapi_get_peer_stats("/nonexistent", "wgt0", &st, &n, err,
		sizeof(err)), -ENOENT);
}

static void
test_get_request_and_errors(void **state)
{
	static const char truncated[] = "listen_port=1\npublic_key=" KEY1_HEX "\n";
	static const char einval[] = "errno=-22\n\n";
	struct wg_device *dev = NULL;
	char err[128];
	struct fake *f;

	f = fake_start("wgt0", einval, strlen(einval), 3);
	fake_go(f);
	assert_int_equal(wg_uapi_get_device(f->dir, "wgt0", &dev, err, sizeof(err)), -EINVAL);
	assert_int_equal(f->req_len, 7);
	assert_memory_equal(f->req, "get=1\n\n", 7);
	fake_stop(f);
	assert_string_equal(err, "errno=-22");
	assert_null(dev);

	/* the daemon hangs up in the middle of its reply */
	f = fake_start("wgt0", truncated, strlen(truncated), 5);
	fake_go(f);
	assert_int_equal(wg_uapi_get_device(f->dir, "wgt0", &dev, err, sizeof(err)), -EPROTO);
	fake_stop(f);
	assert_null(dev);

	assert_int_equal(wg_uapi_get_device("/nonexistent", "wgt0", &dev, err, sizeof(err)),
		-ENOENT);
	assert_int_equal(wg_uapi_get_device("/tmp", "../etc", &dev, NULL, 0), -EINVAL);
	assert_int_equal(wg_uapi_get_device("/tmp", "waytoolongname16", &dev, NULL, 0),
		-ENAMETOOLONG);
}

/* A large reply, fed in odd-sized chunks, parsed as it arrives. */
static void
test_get_large_reply(void **state)
{
	const unsigned int n = 30000;
	size_t len = 0, cap = (size_t)n * 400;
	char *buf = malloc(cap);
	struct wg_device *dev = NULL;
	struct fake *f;

	assert_non_null(buf);
	len += (size_t)sprintf(buf + len, "private_key=%s\nlisten_port=1\n", ALICE_PRIV_HEX);
	for (unsigned int i = 0; i < n; i++) {
		len += (size_t)sprintf(buf + len, "public_key=%08x%s\npreshared_key=%s\n"
			"protocol_version=1\nendpoint=192.0.2.%u:%u\nlast_handshake_time_sec=%u\n"
			"last_handshake_time_nsec=0\ntx_bytes=%u\nrx_bytes=%u\n"
			"persistent_keepalive_interval=0\nallowed_ip=10.%u.%u.%u/32\n", i,
			KEY1_HEX + 8, ZERO_HEX, i % 250 + 1, i % 60000 + 1, i, i * 3, i * 7,
			(i >> 16) & 0xff, (i >> 8) & 0xff, i & 0xff);
	}
	len += (size_t)sprintf(buf + len, "errno=0\n\n");
	f = fake_start("wgt0", buf, len, 65521);
	fake_go(f);
	assert_int_equal(wg_uapi_get_device(f->dir, "wgt0", &dev, NULL, 0), 0);
	fake_stop(f);
	assert_int_equal(dev->n_peers, n);
	for (unsigned int i = 0; i < n; i += 4999) {
		const struct wg_peer *p = &dev->peers[i];
		uint8_t b[4] = { i >> 24, i >> 16, i >> 8, i };

		assert_memory_equal(p->public_key, b, 4);
		assert_int_equal(p->last_handshake_sec, i);
		assert_int_equal(p->rx_bytes, i * 7);
		assert_int_equal(p->n_allowedips, 1);
		assert_int_equal(ntohl(p->allowedips[0].ip4.s_addr), 0x0a000000 + i);
	}
	wg_device_free(dev);
	free(buf);
}

static struct wg_peer *
add_peer(struct wg_device *dev, const char *hex)
{
	struct wg_peer *peer;

	assert_int_equal(wg_device_add_peer(dev, &peer), 0);
	hex2bin(peer->public_key, hex);
	peer->flags = WG_PEER_F_HAS_PUBLIC_KEY;
	return peer;
}

static void
add_aip(struct wg_peer *peer, const char *s)
{
	struct wg_allowedip aip;

	assert_int_equal(wg_allowedip_parse(&aip, s), 0);
	assert_int_equal(wg_peer_add_allowedip(peer, aip.family, aip.family == AF_INET ?
		(const void *)&aip.ip4 : (const void *)&aip.ip6, aip.cidr), 0);
}

static void
test_set_request_text(void **state)
{
	static const char want[] =
		"set=1\n"
		"private_key=" ALICE_PRIV_HEX "\n"
		"listen_port=51820\n"
		"fwmark=7\n"
		"replace_peers=true\n"
		"public_key=" KEY1_HEX "\n"
		"preshared_key=" PSK_HEX "\n"
		"endpoint=192.0.2.1:51821\n"
		"persistent_keepalive_interval=25\n"
		"replace_allowed_ips=true\n"
		"allowed_ip=10.1.0.0/16\n"
		"allowed_ip=fd00:1::/64\n"
		"public_key=" KEY2_HEX "\n"
		"update_only=true\n"
		"remove=true\n"
		"public_key=" ZERO_HEX "\n"
		"update_only=true\n"
		"endpoint=[fe80::1%3]:443\n"
		"persistent_keepalive_interval=0\n"
		"\n";
	static const char ok[] = "errno=0\n\n";
	struct wg_device *dev = NULL;
	struct wg_peer *peer;
	char err[64];
	struct fake *f;

	assert_int_equal(wg_device_new(&dev, "wgt0"), 0);
	hex2bin(dev->private_key, ALICE_PRIV_HEX);
	dev->listen_port = 51820;
	dev->fwmark = 7;
	dev->flags = WG_DEVICE_F_HAS_PRIVATE_KEY | WG_DEVICE_F_HAS_LISTEN_PORT |
		WG_DEVICE_F_HAS_FWMARK | WG_DEVICE_F_REPLACE_PEERS;
	peer = add_peer(dev, KEY1_HEX);
	hex2bin(peer->preshared_key, PSK_HEX);
	peer->persistent_keepalive = 25;
	peer->flags |= WG_PEER_F_HAS_PRESHARED_KEY | WG_PEER_F_HAS_PERSISTENT_KEEPALIVE |
		WG_PEER_F_REPLACE_ALLOWEDIPS;
	assert_int_equal(wg_endpoint_parse(&peer->endpoint, "192.0.2.1:51821"), 0);
	add_aip(peer, "10.1.0.0/16");
	add_aip(peer, "fd00:1::/64");
	peer = add_peer(dev, KEY2_HEX);
	peer->flags |= WG_PEER_F_REMOVE_ME | WG_PEER_F_UPDATE_ONLY;
	add_aip(peer, "10.2.0.0/16"); /* not sent: the peer goes */
	peer = add_peer(dev, ZERO_HEX);
	peer->flags |= WG_PEER_F_UPDATE_ONLY | WG_PEER_F_HAS_PERSISTENT_KEEPALIVE;
	assert_int_equal(wg_endpoint_parse(&peer->endpoint, "[fe80::1]:443"), 0);
	peer->endpoint.addr6.sin6_scope_id = 3;

	f = fake_start("wgt0", ok, strlen(ok), 1);
	fake_go(f);
	assert_int_equal(wg_uapi_set_device(f->dir, NULL, dev, err, sizeof(err)), 0);
	assert_int_equal(f->req_len, strlen(want));
	assert_memory_equal(f->req, want, strlen(want));
	fake_stop(f);
	wg_device_free(dev);
}

/*
 * A daemon that serves several requests per connection, as wireguard-go does: @conns
 * connections one after the other, each served until the client hangs up or, for the
 * first, until it has answered @close_after requests (then it hangs up itself, as a
 * daemon that restarts). Request number @bad (from 1, over all connections) is answered
 * errno=22.
 */
struct mfake {
	struct fake *f;
	int conns, close_after, bad;
	int accepts, requests;
};

static void *
mfake_run(void *arg)
{
	struct mfake *m = arg;

	for (int k = 0; k < m->conns; k++) {
		int fd = accept(m->f->lfd, NULL, NULL), served = 0;
		char buf[4096];
		size_t have = 0;

		if (fd < 0)
			return NULL;
		m->accepts++;
		for (;;) {
			ssize_t n = read(fd, buf + have, sizeof(buf) - have);
			const char *reply;

			if (n <= 0)
				break;
			have += (size_t)n;
			if (have < 2 || memcmp(buf + have - 2, "\n\n", 2) != 0)
				continue;
			have = 0;
			m->requests++;
			reply = m->requests == m->bad ? "errno=22\n\n" : "errno=0\n\n";
			if (send(fd, reply, strlen(reply), MSG_NOSIGNAL) <= 0)
				break;
			if (k == 0 && ++served == m->close_after)
				break;
		}
		close(fd);
	}
	return NULL;
}

/*
 * Sets through kept connections: one connection for several sets; a kept connection the
 * daemon closed is replaced and the set sent again; an error answer drops the connection.
 */
static void
test_set_kept_connection(void **state)
{
	struct mfake m = { .conns = 3, .close_after = 3, .bad = 5 };
	struct wg_uapi_conns *cs = NULL;
	struct wg_device *dev = NULL;
	pthread_t th;
	char err[64];

	m.f = fake_start("wgt0", NULL, 0, 1);
	assert_int_equal(wg_uapi_conns_new(&cs), 0);
	assert_int_equal(wg_device_new(&dev, "wgt0"), 0);
	add_peer(dev, KEY1_HEX);
	assert_int_equal(pthread_create(&th, NULL, mfake_run, &m), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(wg_uapi_set_device(m.f->dir, cs, dev, err, sizeof(err)), 0);
	/* the daemon hung up after three: the fourth goes again on a new connection */
	assert_int_equal(wg_uapi_set_device(m.f->dir, cs, dev, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	/* an error answer: reported, and that connection is not used again */
	assert_int_equal(wg_uapi_set_device(m.f->dir, cs, dev, err, sizeof(err)), -EINVAL);
	assert_int_equal(wg_uapi_set_device(m.f->dir, cs, dev, err, sizeof(err)), 0);
	wg_uapi_conns_free(cs); /* hangs up the last one: the daemon's loop ends */
	pthread_join(th, NULL);
	assert_int_equal(m.accepts, 3);
	assert_int_equal(m.requests, 6);
	wg_device_free(dev);
	close(m.f->lfd);
	unlink(m.f->path);
	rmdir(m.f->dir);
	free(m.f);
}

static void
test_set_errors(void **state)
{
	static const char einval[] = "errno=-22\n\n";
	static const char garbage[] = "listen_port=1\n\n";
	struct wg_device *dev = NULL;
	struct wg_peer *peer;
	char err[64];
	struct fake *f;

	assert_int_equal(wg_device_new(&dev, "wgt0"), 0);
	dev->listen_port = 1;
	dev->flags = WG_DEVICE_F_HAS_LISTEN_PORT;

	f = fake_start("wgt0", einval, strlen(einval), 4);
	fake_go(f);
	assert_int_equal(wg_uapi_set_device(f->dir, NULL, dev, err, sizeof(err)), -EINVAL);
	fake_stop(f);
	assert_string_equal(err, "errno=-22");

	/* a set is answered with errno only */
	f = fake_start("wgt0", garbage, strlen(garbage), 100);
	fake_go(f);
	assert_int_equal(wg_uapi_set_device(f->dir, NULL, dev, err, sizeof(err)), -EPROTO);
	fake_stop(f);

	/* refused before connecting: a peer without a public key, a bad allowed IP */
	assert_int_equal(wg_device_add_peer(dev, &peer), 0);
	assert_int_equal(wg_uapi_set_device("/nonexistent", NULL, dev, err, sizeof(err)), -EINVAL);
	peer->flags = WG_PEER_F_HAS_PUBLIC_KEY;
	add_aip(peer, "10.0.0.0/8");
	peer->allowedips[0].cidr = 40;
	assert_int_equal(wg_uapi_set_device("/nonexistent", NULL, dev, err, sizeof(err)), -EINVAL);
	peer->allowedips[0].cidr = 8;
	assert_int_equal(wg_uapi_set_device("/nonexistent", NULL, dev, err, sizeof(err)), -ENOENT);
	wg_device_free(dev);
}

/*
 * wireguard-go answers "errno=N" and hangs up at the first bad line, while we are still
 * sending: the send fails with EPIPE, and the daemon's errno must still be what we return.
 */
static void
test_set_daemon_hangs_up_early(void **state)
{
	static const char einval[] = "errno=-22\n\n";
	struct wg_device *dev = NULL;
	struct wg_peer *peer;
	char err[64];
	struct fake *f;

	assert_int_equal(wg_device_new(&dev, "wgt0"), 0);
	for (unsigned int i = 0; i < 20000; i++) {
		peer = add_peer(dev, KEY1_HEX);
		memcpy(peer->public_key, &i, sizeof(i));
		add_aip(peer, "10.0.0.1/32");
	}
	f = fake_start("wgt0", einval, strlen(einval), 100);
	f->read_limit = 100;
	fake_go(f);
	assert_int_equal(wg_uapi_set_device(f->dir, NULL, dev, err, sizeof(err)), -EINVAL);
	fake_stop(f);
	assert_string_equal(err, "errno=-22");
	wg_device_free(dev);
}

/* ---- wg.c: backend choice and dispatch; the kernel backend faked with --wrap ---- */

struct wg_genl {
	int unused;
};
static struct wg_genl fake_genl;
static int genl_opens;

int __wrap_wg_genl_open(struct wg_genl **ret);
void __wrap_wg_genl_close(struct wg_genl *genl);
int __wrap_wg_genl_get_device(struct wg_genl *genl, const char *ifname, struct wg_device **ret);
int __wrap_wg_genl_set_device(struct wg_genl *genl, const struct wg_device *dev);
const char *__wrap_wg_genl_last_error(const struct wg_genl *genl);

int
__wrap_wg_genl_open(struct wg_genl **ret)
{
	genl_opens++;
	*ret = &fake_genl;
	return 0;
}

void
__wrap_wg_genl_close(struct wg_genl *genl)
{
	if (genl != NULL)
		assert_ptr_equal(genl, &fake_genl);
}

int
__wrap_wg_genl_get_device(struct wg_genl *genl, const char *ifname, struct wg_device **ret)
{
	check_expected(ifname);
	return mock_type(int);
}

int
__wrap_wg_genl_set_device(struct wg_genl *genl, const struct wg_device *dev)
{
	check_expected_ptr(dev);
	return mock_type(int);
}

const char *
__wrap_wg_genl_last_error(const struct wg_genl *genl)
{
	return "Unknown device (ext-ack)";
}

static void
test_ctl_dispatch(void **state)
{
	static const char einval[] = "errno=-22\n\n";
	struct fake *f = fake_start("wgu0", full_reply, strlen(full_reply), 4096);
	struct wg_device *dev = NULL, *kdev = NULL;
	struct wg_ctl *ctl = NULL;

	wg_ctl_free(NULL);
	assert_int_equal(wg_ctl_new(&ctl), 0);
	assert_int_equal(wg_ctl_set_uapi_dir(ctl, ""), -EINVAL);
	assert_int_equal(wg_ctl_set_uapi_dir(ctl, f->dir), 0);
	assert_int_equal(wg_ctl_backend_of(ctl, "wgu0"), WG_BACKEND_UAPI);
	assert_int_equal(wg_ctl_backend_of(ctl, "wgk0"), WG_BACKEND_KERNEL);
	assert_int_equal(wg_ctl_backend_of(ctl, "../wgu0"), WG_BACKEND_KERNEL);
	wg_ctl_set_backend(ctl, WG_BACKEND_UAPI);
	assert_int_equal(wg_ctl_backend_of(ctl, "wgk0"), WG_BACKEND_UAPI);
	wg_ctl_set_backend(ctl, WG_BACKEND_KERNEL);
	assert_int_equal(wg_ctl_backend_of(ctl, "wgu0"), WG_BACKEND_KERNEL);
	wg_ctl_set_backend(ctl, WG_BACKEND_AUTO);

	/* userspace: the fake daemon answers */
	fake_go(f);
	assert_int_equal(wg_get_device(ctl, "wgu0", &dev), 0);
	pthread_join(f->thread, NULL);
	assert_int_equal(dev->n_peers, 2);
	assert_string_equal(wg_ctl_last_error(ctl), "");
	assert_int_equal(genl_opens, 0);

	/* its errno line is the error detail */
	f->reply = einval;
	f->reply_len = strlen(einval);
	f->req_len = 0;
	fake_go(f);
	assert_int_equal(wg_set_device(ctl, dev), -EINVAL);
	pthread_join(f->thread, NULL);
	assert_string_equal(wg_ctl_last_error(ctl), "errno=-22");

	/* the kernel, opened once and kept; its ext-ack text is the detail */
	expect_string(__wrap_wg_genl_get_device, ifname, "wgk0");
	will_return(__wrap_wg_genl_get_device, -ENODEV);
	assert_int_equal(wg_get_device(ctl, "wgk0", &kdev), -ENODEV);
	assert_null(kdev);
	assert_string_equal(wg_ctl_last_error(ctl), "Unknown device (ext-ack)");
	strcpy(dev->name, "wgk0");
	expect_value(__wrap_wg_genl_set_device, dev, dev);
	will_return(__wrap_wg_genl_set_device, 0);
	assert_int_equal(wg_set_device(ctl, dev), 0);
	assert_string_equal(wg_ctl_last_error(ctl), "");
	assert_int_equal(genl_opens, 1);

	assert_int_equal(wg_get_device(ctl, "sixteen-chars-xx", &kdev), -ENAMETOOLONG);
	wg_device_free(dev);
	wg_ctl_free(ctl);
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
	free(f->req);
	free(f);
}

static void
test_list_devices(void **state)
{
	struct fake *f = fake_start("wgl1", "", 0, 1);
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	struct wg_ctl *ctl = NULL;
	char path[256], **names = NULL;
	size_t n = 99;
	int fd;

	/* a stale socket (nobody listens), a regular file, a name too long for an interface */
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/stale.sock", f->dir);
	fd = socket(AF_UNIX, SOCK_STREAM, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sun, sizeof(sun)), 0);
	close(fd);
	snprintf(path, sizeof(path), "%s/file.sock", f->dir);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	struct fake *g = fake_start("wgl0", "", 0, 1);
	char moved[256];

	/* put wgl0's socket in the same directory as wgl1's */
	snprintf(moved, sizeof(moved), "%s/wgl0.sock", f->dir);
	assert_int_equal(rename(g->path, moved), 0);

	assert_int_equal(wg_uapi_list_devices(f->dir, &names, &n), 0);
	assert_int_equal(n, 2);
	assert_string_equal(names[0], "wgl0");
	assert_string_equal(names[1], "wgl1");
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);

	assert_int_equal(wg_ctl_new(&ctl), 0);
	assert_int_equal(wg_ctl_set_uapi_dir(ctl, f->dir), 0);
	wg_ctl_set_backend(ctl, WG_BACKEND_UAPI);
	assert_int_equal(wg_list_devices(ctl, &names, &n), 0);
	assert_int_equal(n, 2);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	wg_ctl_free(ctl);

	assert_int_equal(wg_uapi_list_devices("/nonexistent", &names, &n), 0);
	assert_int_equal(n, 0);

	unlink(moved);
	close(g->lfd);
	rmdir(g->dir);
	free(g);
	snprintf(path, sizeof(path), "%s/stale.sock", f->dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/file.sock", f->dir);
	unlink(path);
	close(f->lfd);
	unlink(f->path);
	rmdir(f->dir);
	free(f);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_full_reply),
		cmocka_unit_test(test_parse_uppercase_hex_and_empty_device),
		cmocka_unit_test(test_parse_errno_replies),
		cmocka_unit_test(test_parse_v6_endpoints),
		cmocka_unit_test(test_parse_many_allowedips),
		cmocka_unit_test(test_parse_malformed),
		cmocka_unit_test(test_parse_nul_and_long_lines),
		cmocka_unit_test(test_parse_every_truncation),
		cmocka_unit_test(test_get_over_socket),
		cmocka_unit_test(test_peer_stats_over_socket),
		cmocka_unit_test(test_get_request_and_errors),
		cmocka_unit_test(test_get_large_reply),
		cmocka_unit_test(test_set_request_text),
		cmocka_unit_test(test_set_errors),
		cmocka_unit_test(test_set_daemon_hangs_up_early),
		cmocka_unit_test(test_set_kept_connection),
		cmocka_unit_test(test_ctl_dispatch),
		cmocka_unit_test(test_list_devices),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
