// SPDX-License-Identifier: MIT
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <curl/curl.h>
#include <openssl/crypto.h>

#include "common/client.h"

#define CLIENT_MAX_RESPONSE (1 << 20)

struct response {
	char *buf;
	size_t len;
	bool too_large;
	CURL *curl;
	const struct client_opts *opts;
	int sink_err; /* what opts->on_data returned when it stopped the transfer */
	curl_off_t last; /* when data last arrived, in µs since the transfer began */
	bool idle; /* stopped by opts->idle_sec */
	unsigned int retry_after; /* the last answer's Retry-After, seconds; 0: none */
};

static curl_off_t
elapsed_us(CURL *curl)
{
	curl_off_t t = 0;

	curl_easy_getinfo(curl, CURLINFO_TOTAL_TIME_T, &t);
	return t;
}

/* libcurl calls this about once a second even when nothing arrives: the idle clock. */
static int
on_progress(void *userdata, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
	curl_off_t ulnow)
{
	struct response *r = userdata;

	if (elapsed_us(r->curl) - r->last < (curl_off_t)r->opts->idle_sec * 1000000)
		return 0;
	r->idle = true;
	return 1; /* aborts the transfer */
}

static size_t
on_data(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	struct response *r = userdata;
	size_t n = size * nmemb;
	long status = 0;
	char *nb;

	r->last = elapsed_us(r->curl);
	if (r->opts->on_data != NULL) {
		curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300) {
			r->sink_err = r->opts->on_data(ptr, n, r->opts->arg);
			return r->sink_err < 0 ? 0 : n;
		}
	}
	if (r->len + n > CLIENT_MAX_RESPONSE) {
		r->too_large = true;
		return 0; /* aborts the transfer */
	}
	nb = realloc(r->buf, r->len + n + 1);
	if (nb == NULL)
		return 0;
	memcpy(nb + r->len, ptr, n);
	r->buf = nb;
	r->len += n;
	r->buf[r->len] = '\0';
	return n;
}

int
client_retry_after_parse(const char *value, size_t len, unsigned int *ret_seconds)
{
	const char *p = value, *end = value + len;
	unsigned long v = 0;

	while (p < end && (*p == ' ' || *p == '\t'))
		p++;
	while (end > p && (end[-1] == ' ' || end[-1] == '\t' || end[-1] == '\r' || end[-1] == '\n'))
		end--;
	if (p == end)
		return -EINVAL;
	/* An HTTP-date begins with the day's name ("Wed, 21 Oct 2015 07:28:00 GMT"). */
	if (isalpha((unsigned char)*p))
		return -ENOTSUP;
	for (const char *q = p; q < end; q++) {
		if (*q < '0' || *q > '9')
			return -EINVAL;
		if (v <= CLIENT_RETRY_AFTER_MAX) /* past the cap the rest does not matter */
			v = v * 10 + (unsigned long)(*q - '0');
	}
	*ret_seconds = v > CLIENT_RETRY_AFTER_MAX ? CLIENT_RETRY_AFTER_MAX : (unsigned int)v;
	return 0;
}

/* Each header line of the answer (and of interim ones: 100 Continue). */
static size_t
on_header(char *ptr, size_t size, size_t nmemb, void *userdata)
{
	static const char name[] = "retry-after:";
	struct response *r = userdata;
	size_t n = size * nmemb;
	unsigned int s;

	if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0)
		r->retry_after = 0; /* a new status line: a new answer */
	else if (n >= sizeof(name) - 1 && strncasecmp(ptr, name, sizeof(name) - 1) == 0 &&
		client_retry_after_parse(ptr + sizeof(name) - 1, n - (sizeof(name) - 1), &s) == 0)
		r->retry_after = s;
	return n;
}

static int
curl_to_errno(CURLcode c)
{
	switch (c) {
	case CURLE_COULDNT_CONNECT:
		return -ECONNREFUSED;
	case CURLE_OPERATION_TIMEDOUT:
		return -ETIMEDOUT;
	case CURLE_COULDNT_RESOLVE_HOST:
		return -EHOSTUNREACH;
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_CONNECT_ERROR:
		return -EBADMSG;
	case CURLE_UNSUPPORTED_PROTOCOL:
		return -EPERM;
	case CURLE_WRITE_ERROR:
		return -EMSGSIZE;
	default:
		return -EIO;
	}
}

struct client_conn {
	CURL *curl; /* its connection cache holds the kept connection */
};

int
client_conn_new(struct client_conn **ret)
{
	struct client_conn *conn = calloc(1, sizeof(*conn));

	if (conn == NULL)
		return -ENOMEM;
	conn->curl = curl_easy_init();
	if (conn->curl == NULL) {
		free(conn);
		return -ENOMEM;
	}
	*ret = conn;
	return 0;
}

void
client_conn_free(struct client_conn *conn)
{
	if (conn == NULL)
		return;
	curl_easy_cleanup(conn->curl);
	free(conn);
}

int
client_request(const struct client_opts *opts, const char *method, const char *url,
	json_t *body, long *ret_status, json_t **ret_json, char *errbuf, size_t errlen)
{
	char curl_err[CURL_ERROR_SIZE] = "";
	struct curl_slist *hdrs = NULL;
	struct response resp = { .opts = opts };
	char *payload = NULL, *auth = NULL, *accept = NULL;
	long status = 0;
	CURL *curl;
	CURLcode c;
	int r;

	errbuf[0] = '\0';
	*ret_status = 0;
	*ret_json = NULL;
	if (opts->ret_retry_after != NULL)
		*opts->ret_retry_after = 0;
	if (strncmp(url, "https://", 8) != 0 && !(opts->allow_http && strncmp(url, "http://", 7) == 0)) {
		snprintf(errbuf, errlen, "'%s': only https:// URLs are allowed", url);
		return -EPERM;
	}
	curl = opts->conn != NULL ? opts->conn->curl : curl_easy_init();
	if (curl == NULL)
		return -ENOMEM;
	resp.curl = curl;

	r = -ENOMEM;
	if (asprintf(&accept, "Accept: %s", opts->accept ? opts->accept : "application/json") < 0) {
		accept = NULL;
		goto out;
	}
	hdrs = curl_slist_append(hdrs, accept);
	if (hdrs == NULL)
		goto out;
	if (body != NULL) {
		struct curl_slist *h = curl_slist_append(hdrs, "Content-Type: application/json");

		if (h == NULL)
			goto out;
		hdrs = h;
		payload = json_dumps(body, JSON_COMPACT);
		if (payload == NULL)
			goto out;
	}
	if (opts->bearer != NULL) {
		struct curl_slist *h;

		if (asprintf(&auth, "Authorization: Bearer %s", opts->bearer) < 0) {
			auth = NULL;
			goto out;
		}
		h = curl_slist_append(hdrs, auth);
		if (h == NULL)
			goto out;
		hdrs = h;
	}

	curl_easy_setopt(curl, CURLOPT_URL, url);
	curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, method);
	curl_easy_setopt(curl, CURLOPT_HTTPHEADER, hdrs);
	curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, curl_err);
	curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, on_data);
	curl_easy_setopt(curl, CURLOPT_WRITEDATA, &resp);
	curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, on_header);
	curl_easy_setopt(curl, CURLOPT_HEADERDATA, &resp);
	curl_easy_setopt(curl, CURLOPT_TIMEOUT,
		opts->timeout_sec > 0 ? opts->timeout_sec : opts->timeout_sec < 0 ? 0L : 30L);
	if (opts->idle_sec > 0) {
		curl_easy_setopt(curl, CURLOPT_XFERINFOFUNCTION, on_progress);
		curl_easy_setopt(curl, CURLOPT_XFERINFODATA, &resp);
		curl_easy_setopt(curl, CURLOPT_NOPROGRESS, 0L);
	}
	curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
	/* Never fall back to another protocol than the one the URL names. */
	curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, opts->allow_http ? "https,http" : "https");
	if (payload != NULL)
		curl_easy_setopt(curl, CURLOPT_POSTFIELDS, payload);
	if (opts->ca_file != NULL) {
		/* Pin: this bundle only, not the system's trust store. */
		curl_easy_setopt(curl, CURLOPT_CAINFO, opts->ca_file);
		curl_easy_setopt(curl, CURLOPT_CAPATH, NULL);
	}
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYPEER, 1L);
	curl_easy_setopt(curl, CURLOPT_SSL_VERIFYHOST, 2L);

	c = curl_easy_perform(curl);
	if (c != CURLE_OK) {
		curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, ret_status);
		if (resp.sink_err < 0) {
			r = resp.sink_err;
			snprintf(errbuf, errlen, "%s: stopped by the reader", url);
			goto out;
		}
		r = resp.too_large ? -EMSGSIZE : resp.idle ? -ETIMEDOUT : curl_to_errno(c);
		snprintf(errbuf, errlen, "%s: %s", url,
			resp.too_large ? "response too large" :
			resp.idle ? "nothing arrived for too long" :
			curl_err[0] ? curl_err : curl_easy_strerror(c));
		goto out;
	}
	curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &status);
	*ret_status = status;
	*ret_json = resp.len ? json_loadb(resp.buf, resp.len, 0, NULL) : NULL;
	if (opts->ret_retry_after != NULL)
		*opts->ret_retry_after = resp.retry_after;
	r = 0;
out:
	/* Bodies carry tokens and attestation secrets. */
	if (payload != NULL) {
		OPENSSL_cleanse(payload, strlen(payload));
		free(payload);
	}
	if (auth != NULL) {
		OPENSSL_cleanse(auth, strlen(auth));
		free(auth);
	}
	if (resp.buf != NULL)
		OPENSSL_cleanse(resp.buf, resp.len);
	free(resp.buf);
	free(accept);
	curl_slist_free_all(hdrs);
	if (opts->conn != NULL)
		/* Forget this request's options (they point at our stack and freed buffers);
		 * live connections and the TLS session cache stay with the handle. */
		curl_easy_reset(curl);
	else
		curl_easy_cleanup(curl);
	return r;
}
