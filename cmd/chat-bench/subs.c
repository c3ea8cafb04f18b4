/* subs.c: the WebSocket subscribers: one lws client context, many connections, serviced
 * by the main thread, and the receive path that counts every frame.
 *
 * The receive path runs once per delivered frame (a million times in a modest run) on a
 * core the server also wants, so it allocates nothing and parses only the payload header:
 * it finds the payload by the target's frame key instead of parsing the JSON. */
#include "bench.h"

#include <libwebsockets.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Connections being opened at once: more only makes the server's accept queue overflow. */
#define CONNECT_BURST 128
#define TICK_US (50 * LWS_US_PER_MS)

/* lws_service() sleeps until an event or a scheduled callback (it ignores its timeout),
 * so a callback every TICK_US lets the main loop look at the clock. One context per
 * process, hence one tick. */
static lws_sorted_usec_list_t tick;
static struct lws_context *tick_ctx;

static void tick_cb(lws_sorted_usec_list_t *sul)
{
	lws_sul_schedule(tick_ctx, 0, sul, tick_cb, TICK_US);
}

static void note(char *dst, size_t cap, const char *what, const void *in, size_t len)
{
	if (dst[0])
		return;
	if (in && len)
		snprintf(dst, cap, "%s%.*s", what, (int)len, (const char *)in);
	else
		snprintf(dst, cap, "%s", what);
}

/* One complete message from s. */
static void frame_handle(struct bench *b, struct sub *s, const char *data, size_t len)
{
	const char *p = data, *key = b->t.frame_key;
	struct payload m;
	int64_t now;

	if (key) {
		size_t klen = strlen(key);

		p = memmem(data, len, key, klen);
		if (!p) {
			if (memmem(data, len, "\"type\"", 6)) {
				b->control++;
				note(b->first_control, sizeof b->first_control, "", data, len);
			} else {
				b->other++;
			}
			return;
		}
		p += klen;
	}
	if (payload_read(p, len - (size_t)(p - data), b->tag, &m)) {
		b->other++; /* another run or another publisher on the channel */
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
	now = bench_now_ns();
	b->last_rx_ns = now;
	hist_add(&b->lat, now > m.sent_ns ? (uint64_t)(now - m.sent_ns) : 0);
}

/* lws hands a large message over in pieces (its receive buffer, or WebSocket fragments);
 * only those are copied, into a buffer kept for the connection's life. */
static void sub_receive(struct bench *b, struct sub *s, struct lws *wsi, const char *in,
			size_t len)
{
	int last = lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi);

	if (!s->frag_len && last) {
		frame_handle(b, s, in, len);
		return;
	}
	if (s->frag_len + len > s->frag_cap) {
		size_t cap = s->frag_cap ? s->frag_cap : 4096;
		char *nb;

		while (cap < s->frag_len + len)
			cap *= 2;
		nb = realloc(s->frag, cap);
		if (!nb) {
			b->other++; /* cannot hold it: count it as unreadable */
			s->frag_len = 0;
			return;
		}
		s->frag = nb;
		s->frag_cap = cap;
	}
	memcpy(s->frag + s->frag_len, in, len);
	s->frag_len += len;
	if (last) {
		frame_handle(b, s, s->frag, s->frag_len);
		s->frag_len = 0;
	}
}

static void sub_connected(struct bench *b, struct sub *s)
{
	if (s->state != SUB_CONNECTING)
		return;
	s->state = SUB_UP;
	b->connecting--;
	b->up++;
}

static void sub_failed(struct bench *b, struct sub *s, const char *why, size_t len)
{
	if (s->state != SUB_CONNECTING)
		return;
	s->state = SUB_FAILED;
	s->wsi = NULL;
	b->connecting--;
	b->failed++;
	note(b->first_conn_err, sizeof b->first_conn_err, why && len ? "" : "connection failed",
	     why, len);
}

static void sub_closed(struct bench *b, struct sub *s)
{
	if (s->state == SUB_CONNECTING) {
		sub_failed(b, s, "connection closed during the handshake", 38);
		return;
	}
	if (s->state != SUB_UP)
		return;
	s->state = SUB_CLOSED;
	s->wsi = NULL;
	b->up--;
	b->closed++;
	note(b->first_close, sizeof b->first_close, "closed by the server", NULL, 0);
}

static int sub_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user,
			void *in, size_t len)
{
	struct sub *s = user;
	struct bench *b = s ? s->b : NULL;

	if (!s)
		return 0;
	switch (reason) {
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		sub_connected(b, s);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		sub_receive(b, s, wsi, in, len);
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		sub_failed(b, s, in, in ? strlen(in) : 0);
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		if (len > 2) /* two bytes of close code, then the reason */
			note(b->first_close, sizeof b->first_close, "closed by the server: ",
			     (const char *)in + 2, len - 2);
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		sub_closed(b, s);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols protocols[] = {
	{ "chat-bench", sub_callback, 0, 0, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 }
};

static void connect_more(struct bench *b)
{
	while (b->next_connect < b->o.subs && b->connecting < CONNECT_BURST) {
		struct sub *s = &b->subs[b->next_connect++];
		struct lws_client_connect_info ci;

		memset(&ci, 0, sizeof ci);
		ci.context = b->ctx;
		ci.address = b->t.ws_host;
		ci.port = b->t.ws_port;
		ci.path = b->t.ws_path;
		ci.host = b->t.ws_host;
		ci.origin = b->t.ws_host;
		ci.ssl_connection = b->t.tls ? LCCSCF_USE_SSL : 0;
		ci.local_protocol_name = protocols[0].name;
		ci.userdata = s;
		ci.pwsi = &s->wsi;
		s->state = SUB_CONNECTING;
		b->connecting++;
		if (!lws_client_connect_via_info(&ci))
			sub_failed(b, s, "could not start the connection", 30);
	}
}

/* lws's own log lines, when asked for with -v, in our log format. */
static void lws_log_emit(int level, const char *line)
{
	const char *p = line;
	size_t n;

	/* lws starts its lines with its own timestamp "[YYYY/MM/DD HH:MM:SS:ssss] L: " */
	if (p[0] == '[' && strchr(p, ']'))
		p = strchr(p, ']') + 1;
	while (*p == ' ')
		p++;
	n = strlen(p);
	while (n && p[n - 1] == '\n')
		n--;
	fprintf(stderr, "%s lws: %.*s\n", level == LLL_ERR ? "ERROR" : "WARN", (int)n, p);
}

int subs_open(struct bench *b)
{
	struct lws_context_creation_info info;

	lws_set_log_level(b->o.verbose ? LLL_ERR | LLL_WARN : 0, lws_log_emit);
	memset(&info, 0, sizeof info);
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = protocols;
	info.gid = -1;
	info.uid = -1;
	/* the lookup table is sized by this; the default is the (raised) process limit */
	info.fd_limit_per_thread = (unsigned)b->o.subs + 16;
	info.timeout_secs = b->o.timeout_s < 1 ? 1 : (unsigned)b->o.timeout_s;
	info.connect_timeout_secs = info.timeout_secs;
	if (b->t.tls)
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
	b->ctx = lws_create_context(&info);
	if (!b->ctx) {
		snprintf(b->first_conn_err, sizeof b->first_conn_err,
			 "cannot create the WebSocket client context");
		return -1;
	}
	tick_ctx = b->ctx;
	lws_sul_schedule(b->ctx, 0, &tick, tick_cb, TICK_US);
	connect_more(b);
	return 0;
}

void subs_service(struct bench *b)
{
	lws_service(b->ctx, 0);
	connect_more(b);
}

int subs_settled(const struct bench *b)
{
	return b->next_connect == b->o.subs && b->connecting == 0;
}

/* Destroying the context closes every connection; the close callbacks still see the
 * subscribers, so they are freed by the caller only after this. */
void subs_close(struct bench *b)
{
	if (!b->ctx)
		return;
	lws_sul_cancel(&tick);
	lws_context_destroy(b->ctx);
	b->ctx = NULL;
	tick_ctx = NULL;
}

void subs_wake(struct bench *b)
{
	if (b->ctx)
		lws_cancel_service(b->ctx);
}
