/* subs.c: the WebSocket subscribers: non-blocking sockets on one epoll set, serviced by the
 * main thread; the upgrade handshake, the frame parser and the receive path that counts
 * every message.
 *
 * Why not libwebsockets, which the other tools use: measured against chatd with 100
 * subscribers, the lws client spent as much CPU per delivery as the server it measured
 * (about 2.8 us each), on the same two cores; a third of it in lws's per-byte frame parser
 * and much of the kernel time in a poll() over every socket on every turn. A meter that
 * costs what the server costs measures itself. Here a turn is one epoll_wait and one read()
 * per ready socket into a shared buffer, and a frame costs a header decode and a search for
 * the payload's tag: about half the CPU per delivery, in the same runs. Only what a benchmark needs is spoken: plain ws:// (no TLS), server
 * frames are never masked (RFC 6455 5.1), pings are answered, the answer's
 * Sec-WebSocket-Accept is not checked (a relay that answers 101 is one).
 *
 * The receive path allocates nothing in the steady state and reads the clock once per
 * read(), not per frame: frames that came in one read arrived together. */
#include "bench.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"

/* Handshakes in flight at once: more only makes the server's accept queue overflow. */
#define CONNECT_BURST 128
#define TICK_MS 50
#define EVENTS 256
#define RX_CAP (256 * 1024)
/* A frame longer than this is gathered in its connection's own buffer, read straight in,
 * rather than copied through the shared one on every read. */
#define RX_BIG (RX_CAP / 2)
#define HEAD_MAX 8192          /* the longest answer to the upgrade request we read */
#define FRAME_MAX (1ULL << 30) /* --size is at most 64M; anything far larger is garbage */
/* Connections per loopback source address when spreading: well under the ~28,000
 * ephemeral ports of one address (which closed connections of earlier runs still hold for a
 * minute, in TIME_WAIT), and under the per-address caps servers set (chatd's default: 1000). */
#define PER_SOURCE 500

#define WS_KEY "Y2hhdC1iZW5jaC1rZXkxMg==" /* base64 of 16 bytes, as RFC 6455 asks */

static void note(char *dst, size_t cap, const char *what, const void *in, size_t len)
{
	if (dst[0])
		return;
	if (in && len)
		snprintf(dst, cap, "%s%.*s", what, (int)len, (const char *)in);
	else
		snprintf(dst, cap, "%s", what);
}

static int pend_reserve(struct sub *s, size_t need)
{
	size_t cap = s->pend_cap ? s->pend_cap : 256;
	char *p;

	if (need <= s->pend_cap)
		return 0;
	while (cap < need)
		cap *= 2;
	p = realloc(s->pend, cap);
	if (!p)
		return -1;
	s->pend = p;
	s->pend_cap = cap;
	return 0;
}

static void sub_release(struct sub *s)
{
	if (s->fd >= 0)
		close(s->fd); /* also leaves the epoll set */
	s->fd = -1;
}

static void sub_failed(struct bench *b, struct sub *s, const char *why)
{
	if (s->state != SUB_CONNECTING && s->state != SUB_HANDSHAKE)
		return;
	s->state = SUB_FAILED;
	sub_release(s);
	b->connecting--;
	b->failed++;
	note(b->first_conn_err, sizeof b->first_conn_err, why, NULL, 0);
}

static void sub_closed(struct bench *b, struct sub *s, const char *why)
{
	if (s->state != SUB_UP) {
		sub_failed(b, s, why);
		return;
	}
	s->state = SUB_CLOSED;
	sub_release(s);
	b->up--;
	b->closed++;
	note(b->first_close, sizeof b->first_close, why, NULL, 0);
}

/* The relay's own count (chatd's "seq"), per subscriber: a gap is a message the relay
 * skipped for this connection, whoever published it. Searched for only before the payload,
 * where the envelope keeps it. */
static void seq_check(struct bench *b, struct sub *s, const char *data, size_t len)
{
	size_t klen = strlen(b->t.seq_key);
	const char *p = memmem(data, len, b->t.seq_key, klen), *end = data + len;
	uint64_t v = 0;

	if (!p)
		return;
	for (p += klen; p < end && *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (s->last_seq && v != s->last_seq + 1) {
		if (v > s->last_seq)
			b->seq_gaps += v - s->last_seq - 1;
		else
			b->seq_back++;
	}
	s->last_seq = v;
}

/* One complete message from s, received at now. */
static void message(struct bench *b, struct sub *s, const char *data, size_t len, int64_t now)
{
	const char *p = memmem(data, len, b->tag, PAYLOAD_TAG_LEN);
	struct payload m;

	if (b->t.seq_key)
		seq_check(b, s, data, p ? (size_t)(p - data) : len);
	if (!p) {
		if (memmem(data, len, "\"type\"", 6)) {
			b->control++;
			note(b->first_control, sizeof b->first_control, "", data, len);
		} else {
			b->other++; /* another run or another publisher on the channel */
		}
		return;
	}
	if (payload_read(p, len - (size_t)(p - data), b->tag, &m)) {
		b->other++;
		return;
	}
	if (m.id >= (uint64_t)b->o.msgs) {
		s->probed = 1;
		return;
	}
	if (m.pub >= (uint32_t)b->o.pubs) {
		b->other++;
		return;
	}
	if (s->seen[m.id >> 6] & (1ULL << (m.id & 63))) {
		b->dups++;
		return;
	}
	s->seen[m.id >> 6] |= 1ULL << (m.id & 63);
	s->distinct++;
	if (m.id + 1 < s->last[m.pub])
		b->ooo++;
	else
		s->last[m.pub] = m.id + 1;
	b->last_rx_ns = now;
	hist_add(&b->lat, now > m.sent_ns ? (uint64_t)(now - m.sent_ns) : 0);
}

/* A ping is answered at once with a pong; clients mask, and a zero key leaves the payload
 * as it is. A pong that does not fit the socket buffer is dropped: the next ping asks again. */
static void pong(struct sub *s, const char *data, size_t len)
{
	unsigned char f[6 + 125];
	ssize_t w;

	if (len > 125) /* control frames carry at most 125 bytes */
		return;
	f[0] = 0x8a;
	f[1] = (unsigned char)(0x80 | len);
	memset(f + 2, 0, 4);
	memcpy(f + 6, data, len);
	w = write(s->fd, f, 6 + len);
	(void)w;
}

/* A message in several frames is copied together; in one frame it is read in place. */
static void fragment(struct bench *b, struct sub *s, const char *data, size_t len, int fin,
		     int64_t now)
{
	if (s->frag_len + len > s->frag_cap) {
		size_t cap = s->frag_cap ? s->frag_cap : 4096;
		char *nb;

		while (cap < s->frag_len + len)
			cap *= 2;
		nb = realloc(s->frag, cap);
		if (!nb) {
			b->other++; /* cannot hold it: count it as unreadable */
			s->in_frag = 0;
			s->frag_len = 0;
			return;
		}
		s->frag = nb;
		s->frag_cap = cap;
	}
	memcpy(s->frag + s->frag_len, data, len);
	s->frag_len += len;
	if (fin) {
		message(b, s, s->frag, s->frag_len, now);
		s->in_frag = 0;
		s->frag_len = 0;
	}
}

static void frame(struct bench *b, struct sub *s, unsigned head, const char *data, size_t len,
		  int64_t now)
{
	int fin = (head & 0x80) != 0;

	switch (head & 0x0f) {
	case 0x1: /* text */
	case 0x2: /* binary */
		if (fin && !s->in_frag) {
			message(b, s, data, len, now);
			return;
		}
		s->in_frag = 1;
		s->frag_len = 0;
		fragment(b, s, data, len, fin, now);
		return;
	case 0x0: /* continuation */
		if (s->in_frag)
			fragment(b, s, data, len, fin, now);
		else
			b->other++;
		return;
	case 0x8: /* close: two bytes of code, then the reason */
		if (len > 2)
			note(b->first_close, sizeof b->first_close, "closed by the server: ", data + 2,
			     len - 2);
		sub_closed(b, s, "closed by the server");
		return;
	case 0x9:
		pong(s, data, len);
		return;
	default: /* pong, reserved */
		return;
	}
}

/* Decodes the frame header at p: 0 with the header and payload lengths, 1 while the
 * header is incomplete, -1 for a frame no server sends. */
static int frame_header(const unsigned char *p, size_t len, size_t *hlen, uint64_t *plen)
{
	size_t h = 2;
	uint64_t n;

	if (len < 2)
		return 1;
	if (p[1] & 0x80) /* masked: only clients mask */
		return -1;
	n = p[1] & 0x7f;
	if (n == 126) {
		h = 4;
		if (len < h)
			return 1;
		n = (uint64_t)p[2] << 8 | p[3];
	} else if (n == 127) {
		h = 10;
		if (len < h)
			return 1;
		n = 0;
		for (int i = 2; i < 10; i++)
			n = n << 8 | p[i];
	}
	if (n > FRAME_MAX)
		return -1;
	*hlen = h;
	*plen = n;
	return 0;
}

/* Handles the whole frames at p[0..len) and returns the bytes they took; sets want to the
 * size of the incomplete frame that follows, when its header says. */
static size_t frames(struct bench *b, struct sub *s, const char *p, size_t len, int64_t now)
{
	size_t used = 0, hlen;
	uint64_t plen;
	int rc;

	s->want = 0;
	while (s->state == SUB_UP) {
		const unsigned char *f = (const unsigned char *)p + used;

		rc = frame_header(f, len - used, &hlen, &plen);
		if (rc < 0) {
			sub_closed(b, s, "the server sent a frame no WebSocket server sends");
			break;
		}
		if (rc > 0)
			break;
		if (plen > len - used - hlen) {
			s->want = hlen + (size_t)plen;
			break;
		}
		frame(b, s, f[0], p + used + hlen, (size_t)plen, now);
		used += hlen + (size_t)plen;
	}
	return used;
}

/* Keeps the unparsed rest (which may lie in s->pend itself) for the next read. */
static void keep_rest(struct bench *b, struct sub *s, const char *rest, size_t len)
{
	size_t need = s->want > RX_BIG ? s->want : len;

	if (rest >= s->pend && rest < s->pend + s->pend_cap) {
		memmove(s->pend, rest, len);
		s->pend_len = len;
		if (!pend_reserve(s, need))
			return;
	} else if (!pend_reserve(s, need)) {
		if (len)
			memcpy(s->pend, rest, len);
		s->pend_len = len;
		return;
	}
	sub_closed(b, s, "out of memory for a large frame");
}

static void sub_read(struct bench *b, struct sub *s)
{
	int big = s->want > RX_BIG;
	char *buf = big ? s->pend : b->rx;
	size_t have = s->pend_len, cap = big ? s->want : b->rx_cap, used;
	ssize_t n;
	int64_t now;

	if (!big && have)
		memcpy(buf, s->pend, have);
	n = read(s->fd, buf + have, cap - have);
	if (n <= 0) {
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return;
		sub_closed(b, s, n == 0 ? "closed by the server" : strerror(errno));
		return;
	}
	now = bench_now_ns();
	b->reads++;
	if ((size_t)n == cap - have)
		b->busy = 1; /* more is waiting: no nap after this turn */
	have += (size_t)n;
	if (big && have < s->want) {
		s->pend_len = have;
		return;
	}
	used = frames(b, s, buf, have, now);
	if (s->state == SUB_UP)
		keep_rest(b, s, buf + used, have - used);
	if (s->want > RX_BIG)
		b->busy = 1; /* a large message is coming in */
}

static void sub_connected(struct bench *b, struct sub *s)
{
	s->state = SUB_UP;
	b->connecting--;
	b->up++;
}

/* "HOST:PORT" for the Host header, IPv6 literals in brackets. */
static void host_header(const struct bench *b, char *out, size_t cap)
{
	int v6 = strchr(b->t.ws_host, ':') != NULL;

	snprintf(out, cap, "%s%s%s:%d", v6 ? "[" : "", b->t.ws_host, v6 ? "]" : "", b->t.ws_port);
}

/* The TCP connection is up (or has failed): ask for the upgrade. */
static void sub_send_upgrade(struct bench *b, struct sub *s)
{
	struct epoll_event ev;
	char req[2048 + 8192], host[300]; /* room for a token */
	socklen_t elen = sizeof(int);
	int err = 0, n;

	if (getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &elen) || err) {
		sub_failed(b, s, strerror(err ? err : errno));
		return;
	}
	host_header(b, host, sizeof host);
	n = snprintf(req, sizeof req,
		     "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
		     "Sec-WebSocket-Key: " WS_KEY "\r\nSec-WebSocket-Version: 13\r\n"
		     "Origin: http://%s\r\nUser-Agent: chat-bench/" CHAT_VERSION "\r\n%s%s%s\r\n",
		     b->t.ws_path, host, host, b->o.token ? "Authorization: Bearer " : "",
		     b->o.token ? b->o.token : "", b->o.token ? "\r\n" : "");
	/* a fresh connection's send buffer takes a request this small whole */
	if (n < 0 || (size_t)n >= sizeof req || write(s->fd, req, (size_t)n) != n) {
		sub_failed(b, s, "could not send the upgrade request");
		return;
	}
	ev.events = EPOLLIN;
	ev.data.ptr = s;
	epoll_ctl(b->epfd, EPOLL_CTL_MOD, s->fd, &ev);
	s->state = SUB_HANDSHAKE;
}

/* Reads the answer to the upgrade, through the shared buffer (a connection's own one stays
 * small: thousands of them are open); frames may follow the answer in the same read. */
static void sub_read_upgrade(struct bench *b, struct sub *s)
{
	char why[200], *buf = b->rx;
	const char *end;
	size_t have = s->pend_len, head, used;
	ssize_t n;

	if (have)
		memcpy(buf, s->pend, have);
	n = read(s->fd, buf + have, HEAD_MAX - have);
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	if (n <= 0) {
		snprintf(why, sizeof why, "%s during the handshake",
			 n == 0 ? "connection closed" : strerror(errno));
		sub_failed(b, s, why);
		return;
	}
	have += (size_t)n;
	end = memmem(buf, have, "\r\n\r\n", 4);
	if (!end) {
		if (have == HEAD_MAX)
			sub_failed(b, s, "the answer to the upgrade request is too long");
		else if (pend_reserve(s, have))
			sub_failed(b, s, "out of memory");
		else
			memcpy(s->pend, buf, s->pend_len = have);
		return;
	}
	if (have < 12 || memcmp(buf, "HTTP/1.", 7) || memcmp(buf + 8, " 101", 4)) {
		snprintf(why, sizeof why, "the server answered \"%.*s\"",
			 (int)strcspn(buf, "\r\n"), buf);
		sub_failed(b, s, why);
		return;
	}
	sub_connected(b, s);
	s->pend_len = 0;
	head = (size_t)(end + 4 - buf);
	used = frames(b, s, buf + head, have - head, bench_now_ns());
	if (s->state == SUB_UP)
		keep_rest(b, s, buf + head + used, have - head - used);
}

static int bind_source(const struct bench *b, int fd, long i)
{
	struct sockaddr_in src;
	int one = 1;

	/* the port is then picked at connect(), per destination, not at bind() */
	setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one, sizeof one);
	memset(&src, 0, sizeof src);
	src.sin_family = AF_INET;
	src.sin_addr.s_addr = htonl(0x7f000001u + (uint32_t)(i % b->sources));
	return bind(fd, (struct sockaddr *)&src, sizeof src);
}

static void sub_start(struct bench *b, struct sub *s, long i)
{
	struct epoll_event ev;
	int one = 1;

	s->state = SUB_CONNECTING;
	b->connecting++;
	s->fd = socket(b->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (s->fd < 0) {
		sub_failed(b, s, strerror(errno));
		return;
	}
	setsockopt(s->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
	if ((b->sources && bind_source(b, s->fd, i)) ||
	    (connect(s->fd, (struct sockaddr *)&b->addr, b->addrlen) && errno != EINPROGRESS)) {
		sub_failed(b, s, strerror(errno));
		return;
	}
	ev.events = EPOLLOUT;
	ev.data.ptr = s;
	if (epoll_ctl(b->epfd, EPOLL_CTL_ADD, s->fd, &ev))
		sub_failed(b, s, strerror(errno));
}

static void connect_more(struct bench *b)
{
	while (b->next_connect < b->o.subs && b->connecting < CONNECT_BURST) {
		long i = b->next_connect++;

		sub_start(b, &b->subs[i], i);
	}
}

/* IPv4 first: "localhost" may list ::1 first, where a server bound to 127.0.0.1 is not. */
static int resolve(struct bench *b)
{
	struct addrinfo hints, *res, *ai, *pick;
	char port[8];
	int rc;

	memset(&hints, 0, sizeof hints);
	hints.ai_socktype = SOCK_STREAM;
	snprintf(port, sizeof port, "%d", b->t.ws_port);
	rc = getaddrinfo(b->t.ws_host, port, &hints, &res);
	if (rc) {
		snprintf(b->first_conn_err, sizeof b->first_conn_err, "cannot resolve %s: %s",
			 b->t.ws_host, gai_strerror(rc));
		return -1;
	}
	for (pick = res, ai = res; ai; ai = ai->ai_next)
		if (ai->ai_family == AF_INET) {
			pick = ai;
			break;
		}
	memcpy(&b->addr, pick->ai_addr, pick->ai_addrlen);
	b->addrlen = pick->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

/* One source address runs out of ports at some tens of thousands of connections to one
 * server, so to a server on 127.x.x.x they come from 127.0.0.1, 127.0.0.2, ... in turn:
 * on Linux every 127/8 address is local. */
static void sources_init(struct bench *b)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)&b->addr;
	long n = b->o.sources;

	b->sources = 0;
	if (b->addr.ss_family != AF_INET || ntohl(sin->sin_addr.s_addr) >> 24 != 127)
		return;
	if (n < 0)
		n = (b->o.subs + PER_SOURCE - 1) / PER_SOURCE;
	b->sources = n > 254 ? 254 : n;
}

int subs_open(struct bench *b)
{
	struct epoll_event ev;

	if (resolve(b))
		return -1;
	sources_init(b);
	b->rx_cap = RX_CAP;
	b->rx = malloc(b->rx_cap);
	b->epfd = epoll_create1(EPOLL_CLOEXEC);
	b->wakefd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ev.events = EPOLLIN;
	ev.data.ptr = NULL; /* the wake-up, not a subscriber */
	if (!b->rx || b->epfd < 0 || b->wakefd < 0 ||
	    epoll_ctl(b->epfd, EPOLL_CTL_ADD, b->wakefd, &ev)) {
		snprintf(b->first_conn_err, sizeof b->first_conn_err, "cannot set up the event loop: %s",
			 strerror(errno));
		return -1;
	}
	connect_more(b);
	return 0;
}

/* A reader that wakes for every frame makes each of the server's writes wake it: on
 * loopback the writer pays for that wake-up (measured: 30% more server CPU per delivery
 * with 100 subscribers, and twice the client's), which a server with remote clients does
 * not. After a light turn (few sockets ready, no read that filled its buffer, no large
 * message half read) the reader sleeps a little instead, so frames pile up in the socket
 * buffers and are read in batches; a reader that napped through a burst of large messages
 * would look like a slow consumer and be dropped. The price is up to --batch of latency, which
 * is why the latency mode reads every frame as it comes. */
static void batch_wait(const struct bench *b)
{
	struct timespec ts = { 0, b->o.batch_us * 1000 };

	nanosleep(&ts, NULL);
}

void subs_service(struct bench *b)
{
	struct epoll_event ev[EVENTS];
	int n = epoll_wait(b->epfd, ev, EVENTS, TICK_MS);

	b->wakeups++;
	b->busy = 0;

	for (int i = 0; i < n; i++) {
		struct sub *s = ev[i].data.ptr;

		if (!s) {
			uint64_t v;
			ssize_t r = read(b->wakefd, &v, sizeof v);

			(void)r;
			continue;
		}
		switch (s->state) {
		case SUB_CONNECTING: sub_send_upgrade(b, s); break;
		case SUB_HANDSHAKE: sub_read_upgrade(b, s); break;
		case SUB_UP: sub_read(b, s); break;
		default: break; /* closed earlier in this round */
		}
	}
	connect_more(b);
	if (b->o.batch_us > 0 && n < EVENTS / 4 && !b->busy)
		batch_wait(b);
}

int subs_settled(const struct bench *b)
{
	return b->next_connect == b->o.subs && b->connecting == 0;
}

void subs_close(struct bench *b)
{
	for (long i = 0; i < b->o.subs; i++)
		sub_release(&b->subs[i]);
	if (b->wakefd >= 0)
		close(b->wakefd);
	if (b->epfd >= 0)
		close(b->epfd);
	b->wakefd = b->epfd = -1;
	free(b->rx);
	b->rx = NULL;
}

void subs_wake(struct bench *b)
{
	uint64_t one = 1;
	ssize_t w;

	if (b->wakefd < 0)
		return;
	w = write(b->wakefd, &one, sizeof one);
	(void)w;
}
