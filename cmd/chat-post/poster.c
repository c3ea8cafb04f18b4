/* poster.c: publishing over HTTP with libcurl; see poster.h.
 *
 * The server's answer is JSON: {"ok":true,...} or {"ok":false,"error":"reason"}. Anything
 * else (a proxy's HTML error page, say) is reported by its first line. */
#include "poster.h"

#include <cjson/cJSON.h>
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "retry.h"

struct poster {
	CURL *curl;
	struct curl_slist *headers;
	/* The Idempotency-Key header: a list node of our own, linked after the last of
	 * `headers` only while a keyed message is sent, so no allocation per message. */
	struct curl_slist key_header;
	char key_line[sizeof "Idempotency-Key: " + RETRY_KEY_MAX];
	char *url;
	char *buf; /* response body */
	size_t len, cap;
	char errbuf[CURL_ERROR_SIZE];
};

static size_t collect(char *data, size_t size, size_t n, void *arg)
{
	struct poster *p = arg;
	size_t add = size * n;

	if (p->len + add + 1 > p->cap) {
		size_t cap = (p->len + add + 1) * 2;
		char *b = realloc(p->buf, cap);
		if (!b)
			return 0; /* makes curl fail the transfer with a write error */
		p->buf = b;
		p->cap = cap;
	}
	memcpy(p->buf + p->len, data, add);
	p->len += add;
	p->buf[p->len] = '\0';
	return add;
}

struct poster *poster_new(const char *base, const struct poster_opts *o, char *err, size_t errlen)
{
	struct poster *p = calloc(1, sizeof *p);
	size_t n = strlen(base);
	char *auth = NULL;

	if (p) {
		p->url = malloc(n + 2);
		p->cap = 256;
		p->buf = malloc(p->cap);
		p->curl = curl_easy_init();
		/* "Expect:" stops libcurl from waiting for a 100 Continue on large bodies. */
		p->headers = curl_slist_append(NULL, "Content-Type: application/json");
		if (p->headers && !curl_slist_append(p->headers, "Expect:")) {
			curl_slist_free_all(p->headers);
			p->headers = NULL;
		}
		if (p->headers && o->token) { /* never printed, not even at -v */
			auth = malloc(strlen(o->token) + 32);
			if (auth)
				sprintf(auth, "Authorization: Bearer %s", o->token);
			if (!auth || !curl_slist_append(p->headers, auth)) {
				curl_slist_free_all(p->headers);
				p->headers = NULL;
			}
			free(auth);
		}
	}
	if (!p || !p->url || !p->buf || !p->curl || !p->headers) {
		poster_free(p);
		snprintf(err, errlen, "cannot initialise libcurl (out of memory?)");
		return NULL;
	}
	memcpy(p->url, base, n);
	memcpy(p->url + n, "/", 2);
	p->key_header.data = p->key_line;
	curl_easy_setopt(p->curl, CURLOPT_URL, p->url);
	curl_easy_setopt(p->curl, CURLOPT_HTTPHEADER, p->headers);
	curl_easy_setopt(p->curl, CURLOPT_USERAGENT, "chat-post/" CHAT_VERSION);
	curl_easy_setopt(p->curl, CURLOPT_ERRORBUFFER, p->errbuf);
	curl_easy_setopt(p->curl, CURLOPT_WRITEFUNCTION, collect);
	curl_easy_setopt(p->curl, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(p->curl, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(p->curl, CURLOPT_TCP_KEEPALIVE, 1L);
	curl_easy_setopt(p->curl, CURLOPT_CONNECTTIMEOUT, 10L);
	curl_easy_setopt(p->curl, CURLOPT_TIMEOUT, 60L);
	if (o->cacert)
		curl_easy_setopt(p->curl, CURLOPT_CAINFO, o->cacert);
	if (o->insecure) {
		curl_easy_setopt(p->curl, CURLOPT_SSL_VERIFYPEER, 0L);
		curl_easy_setopt(p->curl, CURLOPT_SSL_VERIFYHOST, 0L);
	}
	return p;
}

/* The server's "error" member, else the first line of whatever it sent. */
static void answer_reason(const char *body, long status, char *out, size_t outlen)
{
	cJSON *root = cJSON_Parse(body);
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(root, "error");

	if (cJSON_IsString(e))
		snprintf(out, outlen, "%s", e->valuestring);
	else if (body[0])
		snprintf(out, outlen, "%.*s", (int)strcspn(body, "\r\n"), body);
	else
		snprintf(out, outlen, "HTTP status %ld with no explanation", status);
	cJSON_Delete(root);
}

/* Failures of the connection, not of the request: the same request may pass later.
 * Anything else will not: a bad certificate, a TLS handshake with a plain HTTP port, an
 * unsupported scheme, out of memory. */
static int transport_retryable(CURLcode rc)
{
	switch (rc) {
	case CURLE_COULDNT_RESOLVE_HOST: /* DNS not ready yet, as when a container starts */
	case CURLE_COULDNT_CONNECT:
	case CURLE_OPERATION_TIMEDOUT:
	case CURLE_SEND_ERROR:
	case CURLE_RECV_ERROR:
	case CURLE_GOT_NOTHING:
	case CURLE_PARTIAL_FILE:
		return 1;
	default:
		return 0;
	}
}

/* Retry-After is delay-seconds or an HTTP date (RFC 9110 10.2.3); -1 when unusable. */
static long retry_after_ms(const char *v)
{
	char *end;
	long s;
	time_t when;

	if (*v >= '0' && *v <= '9') {
		s = strtol(v, &end, 10);
		return *end == '\0' && s >= 0 && s <= 86400 ? s * 1000 : -1;
	}
	when = curl_getdate(v, NULL);
	if (when == -1)
		return -1;
	s = (long)(when - time(NULL));
	return s <= 0 ? 0 : s > 86400 ? 86400000 : s * 1000;
}

enum post_outcome poster_send(struct poster *p, const char *body, size_t len, const char *key,
			      struct post_reply *r)
{
	struct curl_slist *last = p->headers;
	struct curl_header *h;
	CURLcode rc;
	size_t n;

	p->len = 0;
	p->buf[0] = '\0';
	p->errbuf[0] = '\0';
	memset(r, 0, sizeof *r);
	r->retry_after_ms = -1;
	while (last->next)
		last = last->next;
	if (key) {
		snprintf(p->key_line, sizeof p->key_line, "Idempotency-Key: %s", key);
		last->next = &p->key_header;
	}
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDS, body);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
	rc = curl_easy_perform(p->curl);
	last->next = NULL;
	while (p->len > 0 && (p->buf[p->len - 1] == '\n' || p->buf[p->len - 1] == '\r'))
		p->buf[--p->len] = '\0';
	r->answer = p->buf;
	if (rc != CURLE_OK) {
		snprintf(r->reason, sizeof r->reason, "cannot reach chatd at %s: %s", p->url,
			 p->errbuf[0] ? p->errbuf : curl_easy_strerror(rc));
		r->retryable = transport_retryable(rc);
		return POST_UNAVAILABLE;
	}
	curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &r->status);
	if (r->status >= 200 && r->status < 300)
		return POST_ACCEPTED;
	answer_reason(r->answer, r->status, r->reason, sizeof r->reason);
	if (curl_easy_header(p->curl, "Retry-After", 0, CURLH_HEADER, -1, &h) == CURLHE_OK) {
		n = strlen(r->reason);
		snprintf(r->reason + n, sizeof r->reason - n, " (Retry-After: %s)", h->value);
		r->retry_after_ms = retry_after_ms(h->value);
	}
	/* 408 and 429 say "not now", like a 503: the message itself is fine. */
	if (r->status == 408 || r->status == 429 ||
	    (r->status >= 500 && r->status != 501 && r->status != 505)) {
		r->retryable = 1;
		return POST_UNAVAILABLE;
	}
	return r->status >= 400 && r->status < 500 ? POST_REJECTED : POST_UNAVAILABLE;
}

void poster_free(struct poster *p)
{
	if (!p)
		return;
	curl_easy_cleanup(p->curl);
	curl_slist_free_all(p->headers);
	free(p->url);
	free(p->buf);
	free(p);
}
