/* pubs.c: the publishers: P threads, each with one libcurl easy handle (one keep-alive
 * connection), taking message ids from a shared counter until N are sent.
 *
 * A shared counter rather than fixed shares keeps every publisher busy to the end when
 * some connections are slower; each thread's ids still rise, which is what lets a
 * subscriber tell reordering per publisher.
 *
 * With --rate R, message i is due at start + i/R, and the time it was due, not the time it
 * was sent, goes into the payload. A publisher held up by a slow answer then sends late,
 * and that wait shows in the latency of every message it delays (a closed-loop meter would
 * send later and report the stall as one slow message: coordinated omission). */
#include "bench.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"

enum send_result { SEND_ACCEPTED, SEND_REFUSED, SEND_FAILED };

static size_t pub_sink(char *ptr, size_t size, size_t nmemb, void *ud)
{
	struct pub *p = ud;
	size_t n = size * nmemb, room = sizeof p->resp - 1 - p->resp_len;
	size_t keep = n < room ? n : room;

	memcpy(p->resp + p->resp_len, ptr, keep);
	p->resp_len += keep;
	return n;
}

static int pub_init(struct bench *b, struct pub *p, uint32_t idx)
{
	size_t cap = strlen(b->t.body_pre) + PAYLOAD_HEADER_MAX + b->o.size +
		     strlen(b->t.body_post) + 1;
	long ms = (long)(b->o.timeout_s * 1000);
	CURL *c;

	memset(p, 0, sizeof *p);
	p->b = b;
	p->idx = idx;
	p->first_status = -1;
	p->pre_len = strlen(b->t.body_pre);
	p->post_len = strlen(b->t.body_post);
	p->body = malloc(cap);
	p->curl = c = curl_easy_init();
	if (!p->body || !c)
		return -1;
	strcpy(p->body, b->t.body_pre);
	curl_easy_setopt(c, CURLOPT_URL, b->t.pub_url);
	curl_easy_setopt(c, CURLOPT_POSTFIELDS, p->body);
	curl_easy_setopt(c, CURLOPT_HTTPHEADER, (struct curl_slist *)b->headers);
	curl_easy_setopt(c, CURLOPT_USERAGENT, "chat-bench/" CHAT_VERSION);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, pub_sink);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, p);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, p->curl_err);
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
	curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, ms > 0 ? ms : 1L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, ms > 0 ? ms : 1L);
	return 0;
}

static void pub_fini(struct pub *p)
{
	if (p->curl)
		curl_easy_cleanup(p->curl);
	free(p->body);
	p->curl = NULL;
	p->body = NULL;
}

/* POST message id, stamped with due_ns (0: now); the first time it is not taken, keep why. */
static enum send_result pub_send(struct pub *p, uint64_t id, int64_t due_ns)
{
	struct bench *b = p->b;
	struct payload m = { id, p->idx, due_ns ? due_ns : bench_now_ns() };
	size_t len;
	long status = 0;
	CURLcode rc;

	len = p->pre_len + payload_write(p->body + p->pre_len, b->tag, &m, b->o.size);
	memcpy(p->body + len, b->t.body_post, p->post_len + 1);
	curl_easy_setopt(p->curl, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(len + p->post_len));
	p->resp_len = 0;
	p->curl_err[0] = '\0';
	rc = curl_easy_perform(p->curl);
	if (rc == CURLE_OK) {
		curl_easy_getinfo(p->curl, CURLINFO_RESPONSE_CODE, &status);
		if (status >= 200 && status < 300)
			return SEND_ACCEPTED;
	}
	if (p->first_status < 0) {
		p->first_status = rc == CURLE_OK ? status : 0;
		if (rc != CURLE_OK)
			snprintf(p->first_err, sizeof p->first_err, "%s",
				 p->curl_err[0] ? p->curl_err : curl_easy_strerror(rc));
		else
			snprintf(p->first_err, sizeof p->first_err, "%.*s", (int)p->resp_len,
				 p->resp);
	}
	return rc == CURLE_OK ? SEND_REFUSED : SEND_FAILED;
}

/* With --rate: wait until message id is due; returns when it was due. */
static int64_t pub_pace(struct pub *p, uint64_t id)
{
	struct bench *b = p->b;
	int64_t due = b->pub_start_ns + (int64_t)((double)id * 1e9 / b->o.rate), late;
	struct timespec ts = { (time_t)(due / 1000000000), (long)(due % 1000000000) };

	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR)
		;
	late = bench_now_ns() - due;
	if (late > p->lag_max_ns)
		p->lag_max_ns = late;
	return due;
}

static void *pub_main(void *arg)
{
	struct pub *p = arg;
	struct bench *b = p->b;

	for (;;) {
		uint64_t id = atomic_fetch_add(&b->next_id, 1);
		int64_t due = 0;

		if (id >= (uint64_t)b->o.msgs)
			break;
		if (b->o.rate > 0)
			due = pub_pace(p, id);
		p->sent++;
		switch (pub_send(p, id, due)) {
		case SEND_ACCEPTED:
			p->accepted++;
			b->accepted[id] = 1;
			break;
		case SEND_REFUSED:
			p->refused++;
			break;
		case SEND_FAILED:
			p->failed++;
			break;
		}
	}
	p->done_ns = bench_now_ns();
	if (atomic_fetch_sub(&b->running, 1) == 1)
		subs_wake(b);
	return NULL;
}

static int headers_init(struct bench *b)
{
	char ct[160];
	struct curl_slist *h;

	if (b->headers)
		return 0;
	snprintf(ct, sizeof ct, "Content-Type: %s", b->t.content_type);
	h = curl_slist_append(NULL, ct);
	/* no "Expect: 100-continue" round trip for bodies over 1 KB */
	if (h && !curl_slist_append(h, "Expect:")) {
		curl_slist_free_all(h);
		h = NULL;
	}
	if (h && b->o.token) {
		char *auth = malloc(strlen(b->o.token) + 32);
		if (auth)
			sprintf(auth, "Authorization: Bearer %s", b->o.token);
		if (!auth || !curl_slist_append(h, auth)) {
			curl_slist_free_all(h);
			h = NULL;
		}
		free(auth);
	}
	b->headers = h;
	return h ? 0 : -1;
}

int pubs_probe(struct bench *b, uint64_t k, char *err, size_t errlen)
{
	enum send_result r;

	if (!b->probe) {
		b->probe = calloc(1, sizeof *b->probe);
		if (!b->probe || headers_init(b) || pub_init(b, b->probe, 0)) {
			snprintf(err, errlen, "out of memory");
			return -1;
		}
	}
	b->probe->first_status = -1;
	r = pub_send(b->probe, (uint64_t)b->o.msgs + k, 0);
	if (r == SEND_ACCEPTED)
		return 0;
	if (r == SEND_REFUSED)
		snprintf(err, errlen, "POST %s answered %ld %s", b->t.pub_url,
			 b->probe->first_status, b->probe->first_err);
	else
		snprintf(err, errlen, "POST %s failed: %s", b->t.pub_url, b->probe->first_err);
	return -1;
}

int pubs_start(struct bench *b, char *err, size_t errlen)
{
	long i;
	int rc;

	b->pubs = calloc((size_t)b->o.pubs, sizeof *b->pubs);
	if (!b->pubs || headers_init(b))
		goto nomem;
	for (i = 0; i < b->o.pubs; i++)
		if (pub_init(b, &b->pubs[i], (uint32_t)i))
			goto nomem;
	atomic_store(&b->next_id, 0);
	atomic_store(&b->running, (int)b->o.pubs);
	b->pub_start_ns = bench_now_ns();
	for (i = 0; i < b->o.pubs; i++) {
		rc = pthread_create(&b->pubs[i].thread, NULL, pub_main, &b->pubs[i]);
		if (rc) {
			/* stop the ones already running: no ids left for them */
			atomic_store(&b->next_id, (uint64_t)b->o.msgs);
			snprintf(err, errlen, "cannot start publisher thread %ld: %s", i + 1,
				 strerror(rc));
			pubs_join(b);
			return -1;
		}
		b->pubs[i].started = 1;
	}
	return 0;
nomem:
	snprintf(err, errlen, "out of memory for %ld publishers", b->o.pubs);
	return -1;
}

/* Waits for every publisher; the publish phase ends when the last one is done. */
void pubs_join(struct bench *b)
{
	for (long i = 0; i < b->o.pubs; i++) {
		struct pub *p = &b->pubs[i];

		if (!p->started)
			continue;
		pthread_join(p->thread, NULL);
		p->started = 0;
		if (p->done_ns > b->pub_end_ns)
			b->pub_end_ns = p->done_ns;
	}
}

void pubs_free(struct bench *b)
{
	if (b->pubs)
		for (long i = 0; i < b->o.pubs; i++)
			pub_fini(&b->pubs[i]);
	if (b->probe) {
		pub_fini(b->probe);
		free(b->probe);
	}
	curl_slist_free_all(b->headers);
	free(b->pubs);
	b->pubs = NULL;
	b->probe = NULL;
	b->headers = NULL;
}
