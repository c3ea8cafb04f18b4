/* pubs.c: the publishers: P keep-alive HTTP/1.1 connections driven by one thread with
 * an epoll(7) loop, as wrk and h2load do. Each connection has at most one request in
 * flight; whenever one is free it takes the next message id, until N are sent.
 *
 * One event-driven thread rather than a thread per connection: the meter shares the
 * machine's cores with the server it measures, and P runnable threads woken by P answers
 * took the cores from the server at the moments it needed them (bench/publish.md: under
 * nice(1) the old threads let chatd publish 16-19% faster). Each connection's ids still
 * rise, which is what lets a subscriber tell reordering per publisher.
 *
 * With --rate R, message i is due at start + i/R, and the time it was due, not the time it
 * was sent, goes into the payload. A message that finds every connection busy waits and is
 * sent late, and that wait shows in its latency and in every one it delays (a closed-loop
 * meter would send later and report the stall as one slow message: coordinated
 * omission). */
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
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "err.h"
#include "fmt.h"
#include "url.h"

static int pub_init(struct bench *b, struct pub *p, uint32_t idx)
{
	size_t body = strlen(b->t.body_pre) + PAYLOAD_HEADER_MAX + b->o.size +
		      strlen(b->t.body_post) + 1;

	memset(p, 0, sizeof *p);
	p->b = b;
	p->idx = idx;
	p->fd = -1;
	p->ep = -1;
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
		close(p->fd); /* which also takes it out of the epoll set */
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

static int pub_watch(struct pub *p, int op, uint32_t events)
{
	struct epoll_event ev = { .events = events, .data.u32 = p->idx };

	return p->ep >= 0 ? epoll_ctl(p->ep, op, p->fd, &ev) : 0;
}

/* The events a post waits for in its state (the probe polls for the same). */
static uint32_t pub_events(const struct pub *p)
{
	return p->state == PUB_CONNECTING || p->state == PUB_SENDING ? EPOLLOUT : EPOLLIN;
}

/* Start connecting, without blocking: the post waits in PUB_CONNECTING for the socket to
 * be writable (a slow connect must not hold up the other publishers). */
static int pub_connect(struct pub *p, char *why, size_t whylen)
{
	int one = 1;

	p->fd = socket(p->b->pub_addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (p->fd < 0) {
		snprintf(why, whylen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(p->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if (connect(p->fd, (struct sockaddr *)&p->b->pub_addr, p->b->pub_addrlen) &&
	    errno != EINPROGRESS) {
		snprintf(why, whylen, "cannot connect: %s", strerror(errno));
		pub_close(p);
		return -1;
	}
	if (pub_watch(p, EPOLL_CTL_ADD, EPOLLOUT)) {
		snprintf(why, whylen, "epoll_ctl: %s", strerror(errno));
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

/* The post in flight is over: count it; the first time one is not taken, keep why. */
static void pub_done(struct pub *p, long status, const char *why)
{
	p->state = PUB_IDLE;
	p->done_ns = bench_now_ns();
	p->last_status = status;
	if (status >= 200 && status < 300) {
		p->accepted++;
		if (p->id < (uint64_t)p->b->o.msgs) /* not a probe */
			p->b->accepted[p->id] = 1;
		return;
	}
	if (status)
		p->refused++;
	else
		p->failed++;
	if (p->first_status < 0) {
		p->first_status = status;
		snprintf(p->first_err, sizeof p->first_err, "%s", status ? p->resp : why ? why : "?");
	}
}

static void pub_try(struct pub *p);

/* This attempt failed. A kept-alive connection the server had closed before a byte of the
 * answer is worth one more try on a new one; anything else fails the post. */
static void pub_failed(struct pub *p, int fresh_close, const char *why)
{
	int again = p->reused && fresh_close && !p->retried;

	pub_close(p);
	if (again) {
		p->retried = 1;
		pub_try(p);
		return;
	}
	pub_done(p, 0, why);
}

/* Send what is left of the request; then wait for the answer. */
static void pub_send_rest(struct pub *p)
{
	while (p->req_off < p->req_len) {
		ssize_t n = send(p->fd, p->req + p->req_off, p->req_len - p->req_off,
				 MSG_NOSIGNAL | MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			/* only writability now: a server that answers early and stops reading
			 * would otherwise wake the loop for ever with EPOLLIN */
			if (p->state != PUB_SENDING)
				pub_watch(p, EPOLL_CTL_MOD, EPOLLOUT);
			p->state = PUB_SENDING;
			return;
		}
		if (n <= 0) {
			char why[200];
			snprintf(why, sizeof why, "%s", n < 0 ? strerror(errno) : "short send");
			pub_failed(p, 1, why);
			return;
		}
		p->req_off += (size_t)n;
	}
	if (p->state != PUB_SENDING_FIRST)
		pub_watch(p, EPOLL_CTL_MOD, EPOLLIN);
	p->state = PUB_READING;
	p->in_len = p->head = p->body_end = 0;
	p->chunked = p->to_close = 0;
	p->keep = 1;
}

/* One attempt: on the kept-alive connection, or a new one. */
static void pub_try(struct pub *p)
{
	char why[sizeof p->first_err];

	p->reused = p->fd >= 0;
	p->deadline_ns = bench_now_ns() + (int64_t)(p->b->o.timeout_s * 1e9);
	p->req_off = 0;
	if (!p->reused) {
		if (pub_connect(p, why, sizeof why)) {
			pub_done(p, 0, why);
			return;
		}
		p->state = PUB_CONNECTING; /* the send follows once connected */
		return;
	}
	p->state = PUB_SENDING_FIRST;
	pub_send_rest(p);
}

/* The connect finished, one way or the other. */
static void pub_connected(struct pub *p)
{
	int err = 0;
	socklen_t len = sizeof err;

	if (getsockopt(p->fd, SOL_SOCKET, SO_ERROR, &err, &len) || err) {
		char why[200];
		snprintf(why, sizeof why, "cannot connect: %s", strerror(err ? err : errno));
		pub_failed(p, 0, why);
		return;
	}
	p->state = PUB_SENDING; /* EPOLLOUT is on: pub_send_rest turns it to EPOLLIN */
	pub_send_rest(p);
}

/* POST message id, stamped with due_ns (0: now). One send() and, mostly, one recv() per
 * post: a general HTTP client cost about 50 us of CPU per post here, as much as the
 * server's own work, on the cores the server needs. */
static void pub_start(struct pub *p, uint64_t id, int64_t due_ns)
{
	struct bench *b = p->b;
	struct payload m = { id, p->idx, due_ns ? due_ns : bench_now_ns() };
	size_t blen, len;

	/* the body: body_pre stays from pub_init, then the payload and body_post */
	blen = p->pre_len + payload_write(p->body + p->pre_len, b->tag, &m, b->o.size);
	memcpy(p->body + blen, b->t.body_post, p->post_len);
	blen += p->post_len;
	len = b->req_head_len + fmt_u64(p->req + b->req_head_len, blen);
	memcpy(p->req + len, "\r\n\r\n", 4);
	len += 4;
	memcpy(p->req + len, p->body, blen);
	p->req_len = len + blen;
	p->id = id;
	p->retried = 0;
	p->sent++;
	pub_try(p);
}

/* The whole answer is in p->in: keep the start of its body (a refusal's message). */
static void pub_answered(struct pub *p)
{
	size_t len = p->in_len - p->head;

	if (!p->keep || p->to_close)
		pub_close(p);
	len = len < sizeof p->resp - 1 ? len : sizeof p->resp - 1;
	memcpy(p->resp, p->in + p->head, len);
	p->resp[len] = '\0';
	p->resp_len = len;
	pub_done(p, p->status, NULL);
}

/* The "\r\n\r\n" that ends an HTTP head, or NULL (memmem cost 600 instructions a
 * post, a tenth of the meter's own). */
static const char *head_end(const char *s, size_t len)
{
	const char *p = s, *end = s + len;

	while (end - p >= 4 && (p = memchr(p + 3, '\n', (size_t)(end - p - 3)))) {
		if (p[-1] == '\r' && p[-2] == '\n' && p[-3] == '\r')
			return p - 3;
		p -= 2; /* the next try starts one byte further on */
	}
	return NULL;
}

/* The status code: 3 digits, as sscanf("%3ld") read them (1 digit at least) */
static int status_code(const char *s, long *out)
{
	long v = 0;
	int n = 0;

	while (n < 3 && s[n] >= '0' && s[n] <= '9')
		v = v * 10 + (s[n++] - '0');
	*out = v;
	return n > 0;
}

/* Is the answer complete? Parses the head once it is all there. 1: yes, 0: not yet, -1:
 * not HTTP. Bodies come with Content-Length, chunked, or up to the close. */
static int pub_parse(struct pub *p)
{
	if (!p->head) {
		const char *e = head_end(p->in, p->in_len), *v;

		if (!e)
			return 0;
		p->head = (size_t)(e - p->in) + 4;
		if (p->in_len < 12 || memcmp(p->in, "HTTP/1.", 7) || !status_code(p->in + 9, &p->status))
			return -1;
		if ((v = head_value(p->in, p->in + p->head, "Connection")) && !strncasecmp(v, "close", 5))
			p->keep = 0;
		if ((v = head_value(p->in, p->in + p->head, "Content-Length")))
			p->body_end = p->head + (size_t)strtoull(v, NULL, 10);
		else if ((v = head_value(p->in, p->in + p->head, "Transfer-Encoding")) &&
			 !strncasecmp(v, "chunked", 7))
			p->chunked = 1;
		else if (p->status == 204 || p->status == 304)
			p->body_end = p->head;
		else
			p->to_close = 1;
	}
	if (p->body_end)
		return p->in_len >= p->body_end;
	return p->chunked && p->in_len >= p->head + 5 &&
	       !memcmp(p->in + p->in_len - 5, "0\r\n\r\n", 5);
}

/* The connection is readable (or writable, while a request is half sent). */
static void pub_ready(struct pub *p, uint32_t events)
{
	if (p->state == PUB_CONNECTING) {
		pub_connected(p);
		return;
	}
	if (p->state == PUB_SENDING) {
		if (events & (EPOLLOUT | EPOLLERR | EPOLLHUP))
			pub_send_rest(p);
		if (p->state != PUB_READING)
			return;
	}
	if (p->state == PUB_IDLE) {
		/* between posts: the server closed the kept-alive connection (or sent what
		 * nobody asked for). The next post opens a new one. */
		pub_close(p);
		return;
	}
	if (p->state != PUB_READING)
		return;
	for (;;) {
		ssize_t n;
		int done;

		if (p->in_len == p->in_cap) {
			char *bigger = p->in_cap < (1u << 20) ? realloc(p->in, p->in_cap * 2) : NULL;
			if (!bigger) {
				pub_failed(p, 0, "answer too long");
				return;
			}
			p->in = bigger;
			p->in_cap *= 2;
		}
		n = recv(p->fd, p->in + p->in_len, p->in_cap - p->in_len, MSG_DONTWAIT);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return;
		if (n <= 0) {
			int fresh = p->in_len == 0 && (n == 0 || errno == ECONNRESET);
			if (n == 0 && p->head && p->to_close) {
				pub_answered(p);
				return;
			}
			pub_failed(p, fresh, n == 0 ? "connection closed by the server" : strerror(errno));
			return;
		}
		p->in_len += (size_t)n;
		done = pub_parse(p);
		if (done < 0) {
			pub_failed(p, 0, "not an HTTP answer");
			return;
		}
		if (done) {
			pub_answered(p);
			return;
		}
	}
}

static int pub_busy(const struct pub *p)
{
	return p->state != PUB_IDLE;
}

/* A post that has waited past the timeout fails (the connection is dropped). */
static void pub_check_timeout(struct pub *p, int64_t now)
{
	if (pub_busy(p) && now >= p->deadline_ns)
		pub_failed(p, 0, "timed out");
}

/* The time message id is due with --rate (0: without). */
static int64_t due_of(const struct bench *b, uint64_t id)
{
	return b->o.rate > 0 ? b->pub_start_ns + (int64_t)((double)id * 1e9 / b->o.rate) : 0;
}

/* The publishing thread: hand the next id to each free connection when it is due; serve
 * the connections; until every id is sent and answered. With --rate, a timerfd wakes it
 * when the next id is due (epoll_wait's own timeout counts whole milliseconds). */
static void *pubs_main(void *arg)
{
	struct bench *b = arg;
	long np = b->o.pubs;
	int64_t next_timeouts = 0;

	for (;;) {
		int64_t now = bench_now_ns(), wait_ns = -1;
		uint64_t next = atomic_load(&b->next_id);
		long busy = 0;
		int n, timeout_ms;

		/* free connections take the ids that are due */
		for (long i = 0; i < np; i++) {
			struct pub *p = &b->pubs[i];
			while (!pub_busy(p) && next < (uint64_t)b->o.msgs) {
				int64_t due = due_of(b, next);
				if (due > now) {
					wait_ns = due - now;
					break;
				}
				if (due) { /* how late it starts, after the starts before it */
					int64_t late = bench_now_ns() - due;
					if (late > p->lag_max_ns)
						p->lag_max_ns = late;
				}
				atomic_store(&b->next_id, next + 1);
				pub_start(p, next++, due);
			}
			busy += pub_busy(p);
		}
		if (!busy && next >= (uint64_t)b->o.msgs)
			break;
		timeout_ms = 100;
		if (wait_ns >= 0) {
			struct itimerspec due = { .it_value = { (time_t)((now + wait_ns) / 1000000000),
							       (long)((now + wait_ns) % 1000000000) } };
			if (timerfd_settime(b->pub_timer, TFD_TIMER_ABSTIME, &due, NULL))
				timeout_ms = (int)(wait_ns / 1000000); /* whole ms, then */
		}
		n = epoll_wait(b->pub_ep, b->pub_evs, (int)np + 1, timeout_ms);
		for (int i = 0; i < n; i++) {
			if (b->pub_evs[i].data.u32 == UINT32_MAX) { /* the timer: an id is due */
				uint64_t ticks;
				(void)!read(b->pub_timer, &ticks, sizeof ticks);
				continue;
			}
			pub_ready(&b->pubs[b->pub_evs[i].data.u32], b->pub_evs[i].events);
		}
		/* timeouts are seconds: a look ten times a second, after the answers that came */
		now = bench_now_ns();
		if (now >= next_timeouts) {
			for (long i = 0; i < np; i++)
				pub_check_timeout(&b->pubs[i], now);
			next_timeouts = now + 100000000;
		}
	}
	b->pub_end_ns = b->pub_start_ns; /* -n 0: nothing was posted */
	for (long i = 0; i < np; i++)
		if (b->pubs[i].done_ns > b->pub_end_ns)
			b->pub_end_ns = b->pubs[i].done_ns;
	atomic_store(&b->running, 0);
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

/* Drive one post on its own (the probe): poll(2) on its connection until it is answered,
 * fails or times out. */
static void pub_wait_one(struct pub *p)
{
	while (pub_busy(p)) {
		struct pollfd pfd = { p->fd, pub_events(p) == EPOLLOUT ? POLLOUT : POLLIN, 0 };
		int64_t left = p->deadline_ns - bench_now_ns();
		int n;

		if (left <= 0) {
			pub_failed(p, 0, "timed out");
			continue;
		}
		n = poll(&pfd, 1, (int)(left / 1000000) + 1);
		if (n < 0 && errno != EINTR) {
			pub_failed(p, 0, strerror(errno));
			continue;
		}
		if (n > 0)
			pub_ready(p, (pfd.revents & POLLIN ? EPOLLIN : 0) |
				     (pfd.revents & POLLOUT ? EPOLLOUT : 0) |
				     (pfd.revents & POLLERR ? EPOLLERR : 0) |
				     (pfd.revents & POLLHUP ? EPOLLHUP : 0));
	}
}

int pubs_probe(struct bench *b, uint64_t k, char *err, size_t errlen)
{
	struct pub *p;

	if (!b->probe) {
		b->probe = calloc(1, sizeof *b->probe);
		if (!b->probe)
			return err_set(err, errlen, "out of memory");
		if (pubs_prepare(b, err, errlen))
			return -1;
		if (pub_init(b, b->probe, 0))
			return err_set(err, errlen, "out of memory");
	}
	p = b->probe;
	p->first_status = -1;
	pub_start(p, (uint64_t)b->o.msgs + k, 0);
	pub_wait_one(p);
	if (p->last_status >= 200 && p->last_status < 300)
		return 0;
	if (p->last_status)
		snprintf(err, errlen, "POST %s answered %ld %s", b->t.pub_url, p->first_status,
			 p->first_err);
	else
		snprintf(err, errlen, "POST %s failed: %s", b->t.pub_url, p->first_err);
	return -1;
}

int pubs_start(struct bench *b, char *err, size_t errlen)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u32 = UINT32_MAX };
	int rc;

	if (pubs_prepare(b, err, errlen))
		return -1;
	b->pubs = calloc((size_t)b->o.pubs, sizeof *b->pubs);
	b->pub_evs = calloc((size_t)b->o.pubs + 1, sizeof *b->pub_evs);
	if (!b->pubs || !b->pub_evs)
		goto nomem;
	for (long i = 0; i < b->o.pubs; i++)
		b->pubs[i].fd = -1; /* pubs_free may close them after a failure below */
	b->pub_ep = epoll_create1(EPOLL_CLOEXEC);
	b->pub_timer = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (b->pub_ep < 0 || b->pub_timer < 0 ||
	    epoll_ctl(b->pub_ep, EPOLL_CTL_ADD, b->pub_timer, &ev)) {
		snprintf(err, errlen, "cannot set up the publishers' event loop: %s", strerror(errno));
		return -1;
	}
	for (long i = 0; i < b->o.pubs; i++) {
		if (pub_init(b, &b->pubs[i], (uint32_t)i))
			goto nomem;
		b->pubs[i].ep = b->pub_ep;
	}
	atomic_store(&b->next_id, 0);
	atomic_store(&b->running, 1);
	b->pub_start_ns = bench_now_ns();
	rc = pthread_create(&b->pub_thread, NULL, pubs_main, b);
	if (rc) {
		atomic_store(&b->running, 0);
		snprintf(err, errlen, "cannot start the publishing thread: %s", strerror(rc));
		return -1;
	}
	b->pub_started = 1;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory for %ld publishers", b->o.pubs);
	return -1;
}

/* Waits for the publishing thread; it set pub_end_ns, when the last answer came. */
void pubs_join(struct bench *b)
{
	if (!b->pub_started)
		return;
	pthread_join(b->pub_thread, NULL);
	b->pub_started = 0;
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
	free(b->pub_evs);
	if (b->pub_ep >= 0)
		close(b->pub_ep);
	if (b->pub_timer >= 0)
		close(b->pub_timer);
	b->pub_ep = b->pub_timer = -1;
	b->pub_evs = NULL;
	b->pubs = NULL;
	b->probe = NULL;
	b->req_head = NULL;
}
