// SPDX-License-Identifier: MIT
/*
 * http_flood: hold many idle and slow HTTP connections against a server, for the
 * connection-exhaustion test (tests/integration/enrolld_flood.sh).
 *
 *   http_flood PORT SRC N_IDLE SLOW_SRC N_SLOW SECONDS
 *
 * From source address SRC it keeps up to N_IDLE connections open to 127.0.0.1:PORT, each
 * having sent a partial request line and nothing more; from SLOW_SRC N_SLOW connections
 * that send a request line and then one header byte per second, never finishing. Closed
 * connections are reopened (at most 200 connects per 100 ms tick, so the loop stays
 * bounded), for SECONDS seconds. Prints one line of counts at the end:
 *
 *   connects=N idle_open_max=N slow_open_max=N slow_closed=N slow_life_max_ms=N
 *
 * slow_life_max_ms is the longest a slow connection lived before the server closed it (0
 * if the server closed none). Exit 0, or 1 on a usage or setup error.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

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
static const char slow_req[] = "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaa"
			       "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";

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

	if (argc != 7) {
		fprintf(stderr, "usage: http_flood PORT SRC N_IDLE SLOW_SRC N_SLOW SECONDS\n");
		return 1;
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
				size_t len = c->slow ? 40 : sizeof(idle_req) - 1;

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
			    c->sent < sizeof(slow_req) - 1) {
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
