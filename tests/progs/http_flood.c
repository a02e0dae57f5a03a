// SPDX-License-Identifier: MIT
/*
 * http_flood: load generators for the connection-exhaustion and abuse tests
 * (tests/integration/enrolld_flood.sh, enrolld_abuse.sh).
 *
 *   http_flood PORT SRC N_IDLE SLOW_SRC N_SLOW SECONDS [body]
 *
 * From source address SRC it keeps up to N_IDLE connections open to 127.0.0.1:PORT, each
 * having sent a partial request line and nothing more; from SLOW_SRC N_SLOW connections
 * that send a request line and then one header byte per second, never finishing (with
 * "body": complete POST headers announcing a 4 KiB body, then one body byte per second).
 * Closed connections are reopened (at most 200 connects per 100 ms tick, so the loop stays
 * bounded), for SECONDS seconds. Prints one line of counts at the end:
 *
 *   connects=N idle_open_max=N slow_open_max=N slow_closed=N slow_life_max_ms=N
 *
 * slow_life_max_ms is the longest a slow connection lived before the server closed it (0
 * if the server closed none).
 *
 *   http_flood post PORT SRC PATH BODYFILE CONC SECONDS
 *
 * CONC threads POST the JSON in BODYFILE to PATH, each on its own kept-alive connection
 * from SRC (a new one when the server closes it), as fast as answers come, for SECONDS.
 * Prints one line: requests=N elapsed_ms=N s<status>=N for each status seen,
 * retry_after_min=N retry_after_max=N of the 429 and 503 answers, no_retry_after=N of those
 * without the header, code_<error code>=N for each error code seen, latency_max_ms=N,
 * errors=N (connections that failed or answers that did not parse).
 *
 *   http_flood challenge-body CACERT CAKEY TOKEN
 *
 * The body of a valid POST /v1/enroll/challenge for a new software TPM device (P-256 EK
 * certified by the test CA CACERT/CAKEY, tests/bench/softdev) with enrollment token TOKEN.
 * The same body may be sent many times: each is a new session.
 *
 * Exit 0, or 1 on a usage or setup error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "common/b64.h"
#include "common/key.h"
#include "tests/bench/softdev/softdev.h"

#define TICK_MS 100
#define CONNECTS_PER_TICK 200

struct conn {
	int fd;
	bool slow;
	bool connected;
	int64_t opened_ms;
	int64_t next_byte_ms;
	size_t sent;
};

static const char idle_req[] = "GET /healthz HTT";
static const char slow_hdr_req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/* "body": the headers at once, then the body a byte a second (it never ends in time) */
#define SLOW_BODY_HEAD                                                                   \
	"POST /v1/enroll/complete HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" \
	"Content-Length: 4096\r\n\r\n"
static const char slow_body_req[] = SLOW_BODY_HEAD "{\"session\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
				    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
static const char *slow_req = slow_hdr_req;
static size_t slow_req_len = sizeof(slow_hdr_req) - 1;
static size_t slow_first = 40; /* bytes sent at once */

static int64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
open_conn(struct conn *c, const struct sockaddr_in *dst, const char *src, bool slow)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	inet_pton(AF_INET, src, &sa.sin_addr);
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    (connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0 && errno != EINPROGRESS)) {
		int r = -errno;

		close(fd);
		return r;
	}
	c->fd = fd;
	c->slow = slow;
	c->connected = false;
	c->opened_ms = now_ms();
	c->next_byte_ms = c->opened_ms;
	c->sent = 0;
	return 0;
}

/* ---- post: a request flood on kept-alive connections ---------------------------------- */

#define MAX_CODES 16

struct post_run {
	struct sockaddr_in dst;
	const char *src;
	char *request; /* the whole HTTP request */
	size_t request_len;
	int64_t end_ms;
	pthread_mutex_t lock;
	unsigned long requests, errors, no_retry_after;
	unsigned long status[600];
	unsigned int ra_min, ra_max;
	char codes[MAX_CODES][48];
	unsigned long code_n[MAX_CODES];
	int64_t latency_max;
};

static int
connect_from(const struct sockaddr_in *dst, const char *src)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	struct timeval tv = { .tv_sec = 30 };
	int fd;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -1;
	inet_pton(AF_INET, src, &sa.sin_addr);
	(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	(void)setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    connect(fd, (const struct sockaddr *)dst, sizeof(*dst)) < 0) {
		close(fd);
		return -1;
	}
	return fd;
}

/* A header's value in @head (NUL-terminated, lines end in CRLF), or NULL. */
static const char *
header_value(const char *head, const char *name, char *buf, size_t len)
{
	size_t n = strlen(name);

	for (const char *p = strstr(head, "\r\n"); p != NULL; p = strstr(p, "\r\n")) {
		p += 2;
		if (strncasecmp(p, name, n) == 0 && p[n] == ':') {
			const char *v = p + n + 1, *e;

			v += strspn(v, " \t");
			e = strstr(v, "\r\n");
			if (e == NULL || (size_t)(e - v) >= len)
				return NULL;
			memcpy(buf, v, (size_t)(e - v));
			buf[e - v] = '\0';
			return buf;
		}
	}
	return NULL;
}

/*
 * One answer from @fd: status, Retry-After (0 if none), error code ("" if none), and
 * whether the server keeps the connection. -1 if it did not come or does not parse.
 */
static int
read_answer(int fd, unsigned int *ret_after, char code[48], bool *ret_keep)
{
	char buf[65536], v[64];
	size_t have = 0, head_len, body_len;
	const char *end, *c;
	int status;

	for (;;) {
		ssize_t r;

		buf[have] = '\0';
		end = strstr(buf, "\r\n\r\n");
		if (end != NULL)
			break;
		if (have == sizeof(buf) - 1)
			return -1;
		r = read(fd, buf + have, sizeof(buf) - 1 - have);
		if (r <= 0)
			return -1;
		have += (size_t)r;
	}
	head_len = (size_t)(end - buf) + 4;
	if (sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
		return -1;
	*ret_after = header_value(buf, "Retry-After", v, sizeof(v)) ? (unsigned int)atoi(v) : 0;
	*ret_keep = !(header_value(buf, "Connection", v, sizeof(v)) && strcasecmp(v, "close") == 0);
	if (header_value(buf, "Content-Length", v, sizeof(v)) == NULL)
		return -1;
	body_len = strtoul(v, NULL, 10);
	if (head_len + body_len > sizeof(buf) - 1)
		return -1;
	while (have < head_len + body_len) {
		ssize_t r = read(fd, buf + have, head_len + body_len - have);

		if (r <= 0)
			return -1;
		have += (size_t)r;
	}
	buf[head_len + body_len] = '\0';
	code[0] = '\0';
	c = strstr(buf + head_len, "\"code\":\"");
	if (c != NULL) {
		c += 8;
		snprintf(code, 48, "%.*s", (int)strcspn(c, "\""), c);
	}
	return status;
}

static void
post_count(struct post_run *pr, int status, unsigned int after, const char *code, int64_t lat)
{
	pthread_mutex_lock(&pr->lock);
	pr->requests++;
	if (status < 100 || status >= 600) {
		pr->errors++;
		goto out;
	}
	pr->status[status]++;
	if (lat > pr->latency_max)
		pr->latency_max = lat;
	if (status == 429 || status == 503) {
		if (after == 0)
			pr->no_retry_after++;
		else {
			if (pr->ra_min == 0 || after < pr->ra_min)
				pr->ra_min = after;
			if (after > pr->ra_max)
				pr->ra_max = after;
		}
	}
	for (unsigned int i = 0; code[0] != '\0' && i < MAX_CODES; i++) {
		if (pr->codes[i][0] == '\0')
			snprintf(pr->codes[i], sizeof(pr->codes[i]), "%s", code);
		if (strcmp(pr->codes[i], code) == 0) {
			pr->code_n[i]++;
			break;
		}
	}
out:
	pthread_mutex_unlock(&pr->lock);
}

static void *
post_thread(void *arg)
{
	struct post_run *pr = arg;
	int fd = -1;

	while (now_ms() < pr->end_ms) {
		unsigned int after = 0;
		char code[48] = "";
		bool keep = false;
		int64_t t0;
		int status;

		if (fd < 0) {
			fd = connect_from(&pr->dst, pr->src);
			if (fd < 0) {
				post_count(pr, -1, 0, "", 0);
				usleep(10000);
				continue;
			}
		}
		t0 = now_ms();
		status = -1;
		if (write(fd, pr->request, pr->request_len) == (ssize_t)pr->request_len)
			status = read_answer(fd, &after, code, &keep);
		post_count(pr, status, after, code, now_ms() - t0);
		if (status < 0 || !keep) {
			close(fd);
			fd = -1;
		}
	}
	if (fd >= 0)
		close(fd);
	return NULL;
}

static int
cmd_post(int argc, char **argv)
{
	struct post_run pr = { .dst = { .sin_family = AF_INET } };
	char body[65536];
	pthread_t th[256];
	unsigned int conc;
	size_t blen;
	int64_t start;
	FILE *f;

	if (argc != 8) {
		fprintf(stderr, "usage: http_flood post PORT SRC PATH BODYFILE CONC SECONDS\n");
		return 1;
	}
	pr.dst.sin_port = htons((uint16_t)atoi(argv[2]));
	inet_pton(AF_INET, "127.0.0.1", &pr.dst.sin_addr);
	pr.src = argv[3];
	f = fopen(argv[5], "r");
	if (f == NULL) {
		perror(argv[5]);
		return 1;
	}
	blen = fread(body, 1, sizeof(body), f);
	fclose(f);
	conc = (unsigned int)atoi(argv[6]);
	if (conc == 0 || conc > 256)
		return 1;
	if (asprintf(&pr.request,
		    "POST %s HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
		    "Content-Length: %zu\r\n\r\n%.*s",
		    argv[4], blen, (int)blen, body) < 0)
		return 1;
	pr.request_len = strlen(pr.request);
	pthread_mutex_init(&pr.lock, NULL);
	start = now_ms();
	pr.end_ms = start + (int64_t)atoi(argv[7]) * 1000;
	for (unsigned int i = 0; i < conc; i++)
		if (pthread_create(&th[i], NULL, post_thread, &pr) != 0)
			return 1;
	for (unsigned int i = 0; i < conc; i++)
		pthread_join(th[i], NULL);
	printf("requests=%lu elapsed_ms=%lld", pr.requests, (long long)(now_ms() - start));
	for (unsigned int s = 0; s < 600; s++)
		if (pr.status[s] != 0)
			printf(" s%u=%lu", s, pr.status[s]);
	printf(" retry_after_min=%u retry_after_max=%u no_retry_after=%lu", pr.ra_min, pr.ra_max,
		pr.no_retry_after);
	for (unsigned int i = 0; i < MAX_CODES && pr.codes[i][0] != '\0'; i++)
		printf(" code_%s=%lu", pr.codes[i], pr.code_n[i]);
	printf(" latency_max_ms=%lld errors=%lu\n", (long long)pr.latency_max, pr.errors);
	free(pr.request);
	return 0;
}

/* ---- challenge-body: a valid challenge from a software TPM device ---------------------- */

static json_t *
b64_json(const uint8_t *p, size_t n)
{
	char *s = NULL;
	json_t *j;

	if (b64_encode(p, n, &s) < 0)
		return NULL;
	j = json_string(s);
	free(s);
	return j;
}

static int
cmd_challenge_body(int argc, char **argv)
{
	struct softdev_ca *ca = NULL;
	struct softdev *d = NULL;
	char wg_b64[WG_KEY_B64_LEN];
	json_t *j;

	if (argc != 5) {
		fprintf(stderr, "usage: http_flood challenge-body CACERT CAKEY TOKEN\n");
		return 1;
	}
	if (softdev_ca_load(argv[2], argv[3], &ca) < 0 ||
	    softdev_new(ca, TPM2_EK_ECC_P256, NULL, &d) < 0) {
		fprintf(stderr, "http_flood: cannot make a software device\n");
		softdev_ca_free(ca);
		return 1;
	}
	key_to_base64(wg_b64, d->wg_pub);
	j = json_pack("{s:o,s:o,s:o,s:s,s:s}", "ek_cert", b64_json(d->ek_cert, d->ek_cert_len),
		"ek_public", b64_json(d->ek_pub, d->ek_pub_len), "ak_public",
		b64_json(d->ak_pub, d->ak_pub_len), "wg_public_key", wg_b64, "token", argv[4]);
	softdev_free(d);
	softdev_ca_free(ca);
	if (j == NULL || json_dumpf(j, stdout, JSON_COMPACT) < 0)
		return 1;
	json_decref(j);
	putchar('\n');
	return 0;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in dst = { .sin_family = AF_INET };
	unsigned int n_idle, n_slow, n, open_idle, open_slow;
	unsigned long connects = 0, slow_closed = 0;
	unsigned int idle_open_max = 0, slow_open_max = 0;
	int64_t end, slow_life_max = 0;
	struct pollfd *pfd;
	struct conn *cs;
	const char *src, *slow_src;

	if (argc >= 2 && strcmp(argv[1], "post") == 0)
		return cmd_post(argc, argv);
	if (argc >= 2 && strcmp(argv[1], "challenge-body") == 0)
		return cmd_challenge_body(argc, argv);
	if (argc != 7 && !(argc == 8 && strcmp(argv[7], "body") == 0)) {
		fprintf(stderr, "usage: http_flood PORT SRC N_IDLE SLOW_SRC N_SLOW SECONDS [body]\n");
		return 1;
	}
	if (argc == 8) {
		slow_req = slow_body_req;
		slow_req_len = sizeof(slow_body_req) - 1;
		slow_first = sizeof(SLOW_BODY_HEAD) - 1;
	}
	dst.sin_port = htons((uint16_t)atoi(argv[1]));
	inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
	src = argv[2];
	n_idle = (unsigned int)atoi(argv[3]);
	slow_src = argv[4];
	n_slow = (unsigned int)atoi(argv[5]);
	end = now_ms() + (int64_t)atoi(argv[6]) * 1000;
	n = n_idle + n_slow;
	cs = calloc(n, sizeof(*cs));
	pfd = calloc(n, sizeof(*pfd));
	if (cs == NULL || pfd == NULL)
		return 1;
	for (unsigned int i = 0; i < n; i++)
		cs[i].fd = -1;

	while (now_ms() < end) {
		unsigned int budget = CONNECTS_PER_TICK;
		int64_t t = now_ms();

		/* (re)open what is closed, a bounded number per tick, the slow ones first */
		for (unsigned int k = 0; k < n && budget > 0; k++) {
			unsigned int i = (k + n_idle) % n;

			if (cs[i].fd >= 0)
				continue;
			if (open_conn(&cs[i], &dst, i < n_idle ? src : slow_src, i >= n_idle) == 0) {
				connects++;
				budget--;
			} else {
				break; /* out of ports or descriptors: try again next tick */
			}
		}
		for (unsigned int i = 0; i < n; i++) {
			pfd[i].fd = cs[i].fd;
			pfd[i].events = cs[i].fd < 0 ? 0 : cs[i].connected ? POLLIN : POLLOUT;
			pfd[i].revents = 0;
		}
		(void)poll(pfd, n, TICK_MS);
		t = now_ms();
		open_idle = open_slow = 0;
		for (unsigned int i = 0; i < n; i++) {
			struct conn *c = &cs[i];
			bool dead = false;

			if (c->fd < 0)
				continue;
			if (pfd[i].revents & (POLLERR | POLLHUP)) {
				dead = true;
			} else if (!c->connected && (pfd[i].revents & POLLOUT)) {
				/* connected: the partial request line, or the slow start */
				const char *req = c->slow ? slow_req : idle_req;
				size_t len = c->slow ? slow_first : sizeof(idle_req) - 1;

				c->connected = true;
				if (write(c->fd, req, len) != (ssize_t)len)
					dead = true;
				c->sent = len;
				c->next_byte_ms = t + 1000;
			} else if (c->connected && (pfd[i].revents & POLLIN)) {
				char buf[512];
				ssize_t r = read(c->fd, buf, sizeof(buf));

				if (r <= 0)
					dead = true; /* the server closed it (an answer counts too) */
			}
			if (!dead && c->connected && c->slow && t >= c->next_byte_ms &&
			    c->sent < slow_req_len) {
				if (write(c->fd, slow_req + c->sent, 1) != 1)
					dead = true;
				c->sent++;
				c->next_byte_ms = t + 1000;
			}
			if (dead) {
				if (c->slow && c->connected) {
					slow_closed++;
					if (t - c->opened_ms > slow_life_max)
						slow_life_max = t - c->opened_ms;
				}
				close(c->fd);
				c->fd = -1;
				continue;
			}
			if (c->connected) {
				if (c->slow)
					open_slow++;
				else
					open_idle++;
			}
		}
		if (open_idle > idle_open_max)
			idle_open_max = open_idle;
		if (open_slow > slow_open_max)
			slow_open_max = open_slow;
	}
	printf("connects=%lu idle_open_max=%u slow_open_max=%u slow_closed=%lu slow_life_max_ms=%lld\n",
		connects, idle_open_max, slow_open_max, slow_closed, (long long)slow_life_max);
	for (unsigned int i = 0; i < n; i++)
		if (cs[i].fd >= 0)
			close(cs[i].fd);
	free(cs);
	free(pfd);
	return 0;
}
