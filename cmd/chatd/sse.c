/* sse.c: Server-Sent Events, GET /events?chan=NAME: the same subscriber session as a
 * WebSocket (sess.h), written as an endless text/event-stream response for clients that
 * want plain HTTP (curl -N, EventSource).
 *
 * Each envelope is one event whose id is the session's position in every channel that
 * has one (CHAN:SEQ:EPOCH, comma-separated), so the Last-Event-ID a client sends back
 * when it reconnects resumes all of its channels at once. Control frames (gap, error)
 * are events named after their type. lws does not read an HTTP connection while it
 * answers, so a peer that hung up is found by peeking at the socket every few seconds;
 * a comment line every 15 s keeps proxies from timing the stream out. */
#include <sys/socket.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hub.h"
#include "log.h"
#include "server.h"
#include "sess.h"

#define SSE_TICK_S 5       /* how often a stream checks that its peer is still there */
#define SSE_KEEPALIVE_TICKS 3 /* a keepalive comment every 3 ticks */
#define SSE_BATCH 65536 /* bytes gathered into one write */

static int sse_headers(struct lws *wsi, const char *origin)
{
	unsigned char hdr[LWS_PRE + 512], *start = hdr + LWS_PRE, *p = start, *end = hdr + sizeof hdr - 1;
	static const struct { const char *name, *value; } extra[] = {
		{ "cache-control:", "no-store" },
		{ "x-accel-buffering:", "no" }, /* nginx in front: do not buffer the stream */
	};

	if (lws_add_http_common_headers(wsi, HTTP_STATUS_OK, "text/event-stream; charset=utf-8",
					LWS_ILLEGAL_HTTP_CONTENT_LEN, &p, end))
		return -1;
	for (size_t i = 0; i < sizeof extra / sizeof extra[0]; i++)
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)extra[i].name,
						(const unsigned char *)extra[i].value,
						(int)strlen(extra[i].value), &p, end))
			return -1;
	if (origin[0] && authz_cors_headers(wsi, origin, 0, &p, end)) /* an allowed page's EventSource */
		return -1;
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	lws_set_timeout(wsi, NO_PENDING_TIMEOUT, 0); /* a stream has no end to wait for */
	return 0;
}

/* The channel name of an envelope chatd built: it starts {"chan":"NAME", */
static struct ws_sub *sse_sub_of(struct ws_sess *s, const char *env, size_t len)
{
	const char *name = env + 9, *q;

	if (len < 10 || memcmp(env, "{\"chan\":\"", 9) || !(q = memchr(name, '"', len - 9)))
		return NULL;
	for (unsigned i = 0; i < s->nsubs; i++) {
		const char *c = hub_chan_name(s->subs[i].hub.chan);
		if (strlen(c) == (size_t)(q - name) && !memcmp(c, name, (size_t)(q - name)))
			return &s->subs[i];
	}
	return NULL;
}

/* Append one event for m at out (room checked by the caller). */
static size_t sse_event(struct ws_sess *s, struct hub_msg *m, char *out)
{
	const char *payload = (const char *)hub_msg_payload(m);
	struct ws_sub *sub;
	size_t n = 0;

	if (!m->seq) { /* a control frame: {"type":"TYPE",... */
		const char *t = payload + 9, *q = m->len > 9 ? memchr(t, '"', m->len - 9) : NULL;
		if (!q || memcmp(payload, "{\"type\":\"", 9))
			t = "message", q = t + 7;
		n += (size_t)sprintf(out + n, "event: %.*s\n", (int)(q - t), t);
	} else if ((sub = sse_sub_of(s, payload, m->len))) {
		s->srv->metrics.delivered++;
		s->srv->metrics.bytes_out += m->len;
		sub->sent_seq = m->seq;
		strcpy(sub->sent_epoch, m->epoch);
		n += (size_t)sprintf(out + n, "id: ");
		for (unsigned i = 0, first = 1; i < s->nsubs; i++) {
			if (!s->subs[i].sent_seq)
				continue;
			n += (size_t)sprintf(out + n, "%s%s:%llu:%s", first ? "" : ",",
					     hub_chan_name(s->subs[i].hub.chan),
					     (unsigned long long)s->subs[i].sent_seq, s->subs[i].sent_epoch);
			first = 0;
		}
		out[n++] = '\n';
	}
	memcpy(out + n, "data: ", 6);
	n += 6;
	memcpy(out + n, payload, m->len); /* JSON from chatd: never a raw newline */
	n += m->len;
	memcpy(out + n, "\n\n", 2);
	return n + 2;
}

/* Room one event needs besides its payload: "event:"/"id:" line with every position. */
static size_t sse_overhead(const struct ws_sess *s)
{
	return 32 + s->nsubs * (CHAN_MAX + ENV_EPOCH_MAX + 24);
}

int sse_writable(struct ws_sess *s, struct lws *wsi, const char *origin)
{
	size_t cap = SSE_BATCH + sse_overhead(s), len = 0;
	char *buf, *out;

	if (s->close_sent)
		return -1; /* the last event went out in the previous callback */
	if (!s->sse_started) {
		if (sse_headers(wsi, origin))
			return -1;
		s->sse_started = 1;
		lws_callback_on_writable(wsi); /* the body in a callback of its own */
		return 0;
	}
	if (s->qlen && s->q[s->qhead]->len > SSE_BATCH)
		cap = s->q[s->qhead]->len + sse_overhead(s);
	if (!(buf = malloc(LWS_PRE + cap + 160)))
		return -1;
	out = buf + LWS_PRE;
	if (s->sse_keepalive) {
		len += (size_t)sprintf(out, ":\n\n");
		s->sse_keepalive = 0;
	}
	while (s->qlen && len + s->q[s->qhead]->len + sse_overhead(s) <= cap) {
		struct hub_msg *m = sess_pop(s);
		len += sse_event(s, m, out + len);
		hub_msg_unref(m);
	}
	if (!s->qlen && s->close_code) {
		len += (size_t)snprintf(out + len, 160, "event: close\ndata: {\"type\":\"close\",\"code\":%d}\n\n",
					s->close_code);
		s->close_sent = 1;
		lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, 2);
	}
	if (len && lws_write(wsi, (unsigned char *)out, len, LWS_WRITE_HTTP) < (int)len) {
		free(buf);
		return -1;
	}
	free(buf);
	if (s->qlen || s->close_sent)
		lws_callback_on_writable(wsi);
	return 0;
}

int sse_timer(struct ws_sess *s, struct lws *wsi)
{
	char c;

	/* 0: the peer closed; anything it sends after its request is ignored. */
	if (recv(lws_get_socket_fd(wsi), &c, 1, MSG_PEEK | MSG_DONTWAIT) == 0)
		return -1;
	if (sess_expired(s))
		sess_close_later(s, SESS_CLOSE_UNAUTHORIZED, "token expired");
	if (++s->sse_ticks % SSE_KEEPALIVE_TICKS == 0) {
		s->sse_keepalive = 1;
		lws_callback_on_writable(wsi);
	}
	lws_set_timer_usecs(wsi, SSE_TICK_S * LWS_USEC_PER_SEC);
	return 0;
}

/* Called by http.c for GET /events: start the stream, or say why not. */
struct ws_sess *sse_open(struct lws *wsi, int *status, char *err, size_t errlen)
{
	struct ws_sess *s = calloc(1, sizeof *s);
	int rc;

	if (!s) {
		*status = 500;
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	rc = sess_open(s, wsi, SESS_SSE, "/events", err, errlen);
	if (rc) {
		*status = rc < 0 ? 500 : rc;
		if (rc < 0)
			snprintf(err, errlen, "out of memory");
		sess_close(s);
		free(s);
		return NULL;
	}
	server_of(wsi)->nsse++;
	lws_callback_on_writable(wsi);
	lws_set_timer_usecs(wsi, SSE_TICK_S * LWS_USEC_PER_SEC);
	return s;
}

void sse_free(struct ws_sess *s)
{
	s->srv->nsse--;
	sess_close(s);
	free(s);
}
