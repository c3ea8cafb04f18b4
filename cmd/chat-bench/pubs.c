/* pubs.c: the publishers: P threads, each with one blocking keep-alive HTTP/1.1
 * connection of its own, taking message ids from a shared counter until N are sent.
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

#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "url.h"

enum send_result { SEND_ACCEPTED, SEND_REFUSED, SEND_FAILED };

static int pub_init(struct bench *b, struct pub *p, uint32_t idx)
{
	size_t body = strlen(b->t.body_pre) + PAYLOAD_HEADER_MAX + b->o.size +
		      strlen(b->t.body_post) + 1;

	memset(p, 0, sizeof *p);
	p->b = b;
	p->idx = idx;
	p->fd = -1;
	p->first_status = -1;
	p->pre_len = strlen(b->t.body_pre);
	p->post_len = strlen(b->t.body_post);
	p->body = malloc(body);
	/* head + "Content-Length: N\r\n\r\n" + body, written with one send() */
	p->req = malloc(b->req_head_len + 32 + body);
	p->in_cap = 4096;
	p->in = malloc(p->in_cap);
	if (!p->body || !p->req || !p->in)
		return -1;
	memcpy(p->req, b->req_head, b->req_head_len);
	memcpy(p->body, b->t.body_pre, p->pre_len);
	return 0;
}

static void pub_close(struct pub *p)
{
	if (p->fd >= 0)
		close(p->fd);
	p->fd = -1;
}

static void pub_fini(struct pub *p)
{
	pub_close(p);
	free(p->body);
	free(p->req);
	free(p->in);
	p->body = p->req = p->in = NULL;
}

static int pub_connect(struct pub *p, char *why, size_t whylen)
{
	double t = p->b->o.timeout_s > 0 ? p->b->o.timeout_s : 0.001;
	struct timeval tv = { (time_t)t, (suseconds_t)((t - (double)(time_t)t) * 1e6) };
	int one = 1;

	p->fd = socket(p->b->pub_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (p->fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	/* blocking, with the timeout on every send and receive */
	setsockopt(p->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
	setsockopt(p->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(p->fd, (struct sockaddr *)&p->b->pub_addr, p->b->pub_addrlen)) {
		snprintf(why, whylen, "cannot connect: %s", strerror(errno));
		pub_close(p);
		return -1;
	}
	return 0;
}

/* A header's value in the head [h, end), or NULL. */
static const char *head_value(const char *h, const char *end, const char *name)
{
	size_t n = strlen(name);

	for (const char *l = memchr(h, '\n', (size_t)(end - h)); l && l + 1 < end;
	     l = memchr(l + 1, '\n', (size_t)(end - l - 1))) {
		if ((size_t)(end - l - 1) > n && !strncasecmp(l + 1, name, n) && l[1 + n] == ':') {
			const char *v = l + 2 + n;
			while (v < end && (*v == ' ' || *v == '\t'))
				v++;
			return v;
		}
	}
	return NULL;
}

/* Reads one response: its status, and the start of its body in p->in for messages.
 * Bodies come with Content-Length, chunked, or up to the close. 0, or -1 with why;
 * *fresh_close is set when the connection ended before a byte of the answer (a keep-alive
 * connection the server had closed: worth one more try on a new one). */
static int pub_read_answer(struct pub *p, long *status, int *fresh_close, char *why,
			   size_t whylen)
{
	size_t len = 0, head = 0, body_end = 0;
	int chunked = 0, to_close = 0, keep = 1;

	*fresh_close = 0;
	for (;;) {
		ssize_t n;

		if (head) {
			if (body_end && len >= body_end)
				break;
			if (chunked && len >= head + 5 && !memcmp(p->in + len - 5, "0\r\n\r\n", 5))
				break;
		}
		if (len == p->in_cap) {
			char *bigger = p->in_cap < (1u << 20) ? realloc(p->in, p->in_cap * 2) : NULL;
			if (!bigger) {
				snprintf(why, whylen, "answer too long");
				return -1;
			}
			p->in = bigger;
			p->in_cap *= 2;
		}
		n = recv(p->fd, p->in + len, p->in_cap - len, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0 && head && to_close)
				break;
			*fresh_close = len == 0 && (n == 0 || errno == ECONNRESET);
			snprintf(why, whylen, "%s", n == 0 ? "connection closed by the server"
				 : errno == EAGAIN ? "timed out" : strerror(errno));
			return -1;
		}
		len += (size_t)n;
		if (!head) {
			char *e = memmem(p->in, len, "\r\n\r\n", 4);
			const char *v;
			if (!e)
				continue;
			head = (size_t)(e - p->in) + 4;
			if (len < 12 || memcmp(p->in, "HTTP/1.", 7) ||
			    sscanf(p->in + 9, "%3ld", status) != 1) {
				snprintf(why, whylen, "not an HTTP answer");
				return -1;
			}
			if ((v = head_value(p->in, p->in + head, "Connection")) &&
			    !strncasecmp(v, "close", 5))
				keep = 0;
			if ((v = head_value(p->in, p->in + head, "Content-Length")))
				body_end = head + (size_t)strtoull(v, NULL, 10);
			else if ((v = head_value(p->in, p->in + head, "Transfer-Encoding")) &&
				 !strncasecmp(v, "chunked", 7))
				chunked = 1;
			else if (*status == 204 || *status == 304)
				body_end = head;
			else
				to_close = 1;
		}
	}
	if (!keep || to_close)
		pub_close(p);
	/* the body's start, for a refusal's message */
	len = len - head < sizeof p->resp - 1 ? len - head : sizeof p->resp - 1;
	memcpy(p->resp, p->in + head, len);
	p->resp[len] = '\0';
	p->resp_len = len;
	return 0;
}

/* POST message id, stamped with due_ns (0: now); the first time it is not taken, keep why.
 * One send() and, mostly, one recv() per post on a blocking keep-alive connection: a
 * general HTTP client cost about 50 us of CPU per post here, as much as the server's own
 * work, on the cores the server needs. */
static enum send_result pub_send(struct pub *p, uint64_t id, int64_t due_ns)
{
	struct bench *b = p->b;
	struct payload m = { id, p->idx, due_ns ? due_ns : bench_now_ns() };
	char why[sizeof p->first_err];
	size_t blen, len;
	long status = 0;
	int fresh_close = 0;

	/* the body: body_pre stays from pub_init, then the payload and body_post */
	blen = p->pre_len + payload_write(p->body + p->pre_len, b->tag, &m, b->o.size);
	memcpy(p->body + blen, b->t.body_post, p->post_len);
	blen += p->post_len;
	len = b->req_head_len + (size_t)sprintf(p->req + b->req_head_len, "%zu\r\n\r\n", blen);
	memcpy(p->req + len, p->body, blen);
	len += blen;
	why[0] = '\0';
	for (int attempt = 0; attempt < 2; attempt++) {
		int reused = p->fd >= 0;
		ssize_t n;

		if (!reused && pub_connect(p, why, sizeof why))
			break;
		n = send(p->fd, p->req, len, MSG_NOSIGNAL);
		if (n == (ssize_t)len && !pub_read_answer(p, &status, &fresh_close, why, sizeof why))
			break;
		if (n != (ssize_t)len) {
			fresh_close = reused;
			snprintf(why, sizeof why, "%s", n < 0 ? strerror(errno) : "short send");
		}
		pub_close(p);
		status = 0;
		if (!reused || !fresh_close)
			break; /* a kept-alive connection the server closed: try once more */
	}
	if (status >= 200 && status < 300)
		return SEND_ACCEPTED;
	if (p->first_status < 0) {
		p->first_status = status;
		snprintf(p->first_err, sizeof p->first_err, "%s", status ? p->resp : why);
	}
	return status ? SEND_REFUSED : SEND_FAILED;
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

/* Where to post, and the request head every post shares. */
static int pubs_prepare(struct bench *b, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM }, *ai;
	char port[16], hostport[300];
	struct url u;
	size_t cap;
	int rc;

	if (b->req_head)
		return 0;
	if (url_parse(b->t.pub_url, &u, err, errlen))
		return -1;
	snprintf(port, sizeof port, "%d", u.port);
	rc = getaddrinfo(u.host, port, &hints, &ai);
	if (rc)
		return err_set(err, errlen, "cannot resolve %s: %s", u.host, gai_strerror(rc));
	memcpy(&b->pub_addr, ai->ai_addr, ai->ai_addrlen);
	b->pub_addrlen = ai->ai_addrlen;
	freeaddrinfo(ai);
	snprintf(hostport, sizeof hostport, strchr(u.host, ':') ? "[%s]:%d" : "%s:%d", u.host,
		 u.port);
	cap = strlen(u.path) + strlen(hostport) + strlen(b->t.content_type) +
	      (b->o.token ? strlen(b->o.token) : 0) + 200;
	b->req_head = malloc(cap);
	if (!b->req_head)
		return err_set(err, errlen, "out of memory");
	b->req_head_len = (size_t)snprintf(b->req_head, cap,
		"POST %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: chat-bench/" CHAT_VERSION "\r\n"
		"Content-Type: %s\r\n%s%s%sContent-Length: ", u.path[0] ? u.path : "/", hostport,
		b->t.content_type, b->o.token ? "Authorization: Bearer " : "",
		b->o.token ? b->o.token : "", b->o.token ? "\r\n" : "");
	return 0;
}

int pubs_probe(struct bench *b, uint64_t k, char *err, size_t errlen)
{
	enum send_result r;

	if (!b->probe) {
		b->probe = calloc(1, sizeof *b->probe);
		if (!b->probe)
			return err_set(err, errlen, "out of memory");
		if (pubs_prepare(b, err, errlen))
			return -1;
		if (pub_init(b, b->probe, 0))
			return err_set(err, errlen, "out of memory");
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

	if (pubs_prepare(b, err, errlen))
		return -1;
	b->pubs = calloc((size_t)b->o.pubs, sizeof *b->pubs);
	if (!b->pubs)
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
	free(b->req_head);
	free(b->pubs);
	b->pubs = NULL;
	b->probe = NULL;
	b->req_head = NULL;
}
