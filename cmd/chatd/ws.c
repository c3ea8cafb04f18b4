/* ws.c: WebSocket sessions: subscribe from the URL, publish from text frames, and the
 * per-session send queue.
 *
 * The queue holds references to shared hub_msgs; a writable callback writes as many as
 * the socket takes. Server frames are unmasked (RFC 6455), so lws writes the same header
 * into the same LWS_PRE bytes of a shared message for every subscriber: safe here, since
 * one thread writes and no extension (compression) rewrites payloads. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "chan.h"
#include "cli.h"
#include "coalesce.h"
#include "envelope.h"
#include "hub.h"
#include "log.h"
#include "server.h"
#include "sess.h"
#include "utf8.h"

#define WS_BATCH_BYTES 65536 /* queued frames gathered into one write */

static void ws_flush_check(uv_check_t *h);
static void ws_flush_timer_stop(struct server *srv);
#define WS_MAX_INFLIGHT 64 /* publishes awaiting the broker, per connection */
#define WS_QUEUE_BYTES (8u << 20) /* queued bytes per subscriber (or 2 x --max-message) */
#define WS_REPLAY_PAGE 500

size_t ws_sess_size(void)
{
	return sizeof(struct ws_sess);
}

void sess_close_later(struct ws_sess *s, int code, const char *reason)
{
	if (s->close_code)
		return;
	s->close_code = code;
	snprintf(s->close_reason, sizeof s->close_reason, "%.123s", reason);
	lws_callback_on_writable(s->wsi);
	/* A peer that does not even take the close frame is dropped. */
	lws_set_timeout(s->wsi, PENDING_TIMEOUT_CLOSE_SEND, 5);
}

static void ws_drop_queue(struct ws_sess *s)
{
	for (unsigned i = 0; i < s->qlen; i++)
		hub_msg_unref(s->q[(s->qhead + i) % s->qcap]);
	s->qlen = 0;
	s->qbytes = 0;
}

/* Bytes one subscriber may have queued: enough for two of the largest messages. */
static size_t ws_queue_bytes(const struct ws_sess *s)
{
	size_t two = 2 * s->srv->cfg->max_message;

	return two > WS_QUEUE_BYTES ? two : WS_QUEUE_BYTES;
}

static void ws_too_slow(struct ws_sess *s)
{
	s->srv->metrics.slow++;
	log_warn("ws", "subscriber too slow, disconnecting peer=%s queued=%u bytes=%zu", s->peer,
		 s->qlen, s->qbytes);
	ws_drop_queue(s); /* the close goes out next, not after everything unread */
	sess_close_later(s, 1013 /* try again later */, "subscriber too slow: send queue full");
}

/* The fan-out fast path. Asking lws for a writable callback costs two epoll_ctl calls
 * per subscriber per message (POLLOUT on, then off); instead, a session that gets
 * messages joins the server's dirty list, and once the loop iteration's input is
 * handled, ws_flush_dirty writes each one's queue straight away (everything that came
 * in the same iteration in one write). Only a socket that is full waits for a writable
 * callback. */
static void ws_mark_dirty(struct ws_sess *s)
{
	struct server *srv = s->srv;

	if (s->dirty)
		return;
	s->dirty = 1;
	s->dirty_prev = NULL;
	s->dirty_next = srv->dirty;
	if (srv->dirty)
		srv->dirty->dirty_prev = s;
	srv->dirty = s;
	if (!uv_is_active((uv_handle_t *)&srv->flush) && !srv->flush_armed)
		uv_check_start(&srv->flush, ws_flush_check);
}

static void ws_unmark_dirty(struct ws_sess *s)
{
	if (!s->dirty)
		return;
	if (s->dirty_prev)
		s->dirty_prev->dirty_next = s->dirty_next;
	else
		s->srv->dirty = s->dirty_next;
	if (s->dirty_next)
		s->dirty_next->dirty_prev = s->dirty_prev;
	s->dirty = 0;
}

/* Take a reference to m and arrange for it to be written. */
static void ws_enqueue(struct ws_sess *s, struct hub_msg *m)
{
	if (s->close_code)
		return;
	if (s->qbytes + m->len > ws_queue_bytes(s)) {
		ws_too_slow(s);
		return;
	}
	if (s->qlen == s->qcap) {
		unsigned ncap = s->qcap ? s->qcap * 2 : 8;
		struct hub_msg **nq;

		if (s->qcap >= CHATD_MAX_QUEUE || !(nq = malloc(ncap * sizeof *nq))) {
			ws_too_slow(s);
			return;
		}
		for (unsigned i = 0; i < s->qlen; i++)
			nq[i] = s->q[(s->qhead + i) % s->qcap];
		free(s->q);
		s->q = nq;
		s->qcap = ncap;
		s->qhead = 0;
	}
	m->refs++;
	s->qbytes += m->len;
	s->q[(s->qhead + s->qlen++) % s->qcap] = m;
	if (s->kind == SESS_SSE) {
		if (s->qlen == 1)
			lws_callback_on_writable(s->wsi);
	} else
		ws_mark_dirty(s); /* every time: a full socket's writable request is renewed */
}

/* A frame for this session only (control frames). */
static void ws_send_frame(struct ws_sess *s, const char *text, size_t len)
{
	struct hub_msg *m = hub_msg_new(text, len);

	if (m) {
		ws_enqueue(s, m);
		hub_msg_unref(m);
	}
}

static void ws_send_error(struct ws_sess *s, const char *err)
{
	size_t len = 0;
	char *buf = env_error_frame(err, 0, &len); /* copied into a hub_msg: no spare bytes */

	if (buf)
		ws_send_frame(s, buf, len);
	free(buf);
}

/* Channels asked for by the URL: PREFIX/NAME, or PREFIX?chan=A&chan=B (default pubsub).
 * Fills names (deduplicated) and returns their count, or -1 with a reason in err. */
static int ws_url_channels(struct lws *wsi, const char *prefix, char names[][CHAN_MAX + 1],
			   int max, char *err, size_t errlen)
{
	size_t pl = strlen(prefix);
	int n = 0, ulen, alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS);
	char uri[512], shown[80], *frag = malloc((size_t)alen + 1);

	if (!frag || (ulen = lws_hdr_copy(wsi, uri, sizeof uri, WSI_TOKEN_GET_URI)) < 0) {
		snprintf(err, errlen, "request path too long");
		free(frag);
		return -1;
	}
	if (!strncmp(uri, prefix, pl) && uri[pl] == '/' && uri[pl + 1]) {
		const char *why = chan_check(uri + pl + 1, strlen(uri + pl + 1));
		if (why) {
			snprintf(err, errlen, "invalid channel name in path: %s", why);
			goto fail;
		}
		strcpy(names[n++], uri + pl + 1);
	} else if (strncmp(uri, prefix, pl) || (uri[pl] && strcmp(uri + pl, "/"))) {
		snprintf(err, errlen, "no WebSocket endpoint at %s; use %s?chan=NAME or %s/NAME",
			 utf8_printable(shown, sizeof shown, uri, (size_t)ulen), prefix, prefix);
		goto fail;
	}
	/* The buffer holds all the arguments, so -1 only means "no argument at this index";
	 * empty ones (a&&b) are skipped, not taken for the end. */
	for (int i = 0, len; (len = lws_hdr_copy_fragment(wsi, frag, alen + 1, WSI_TOKEN_HTTP_URI_ARGS, i)) >= 0; i++) {
		const char *v = frag + 5, *why;
		int dup = 0;

		if (len < 5 || strncmp(frag, "chan=", 5))
			continue;
		if ((why = chan_check(v, (size_t)len - 5))) {
			snprintf(err, errlen, "invalid channel name \"%s\": %s",
				 utf8_printable(shown, 21, v, (size_t)len - 5), why); /* close reasons are short */
			goto fail;
		}
		for (int k = 0; k < n; k++)
			dup |= !strcmp(names[k], v);
		if (dup)
			continue;
		if (n == max) {
			snprintf(err, errlen, "too many channels: at most %d per connection", max);
			goto fail;
		}
		strcpy(names[n++], v);
	}
	free(frag);
	if (!n)
		strcpy(names[n++], CHAN_DEFAULT);
	return n;
fail:
	free(frag);
	return -1;
}

/* ---- positions: resume, replay, and the switch to live ---- */

static int ws_is_dup(const struct ws_sub *sub, const struct hub_msg *m)
{
	return m->seq && m->seq <= sub->seq && !strcmp(m->epoch, sub->epoch);
}

static void ws_sub_send(struct ws_sub *sub, struct hub_msg *m)
{
	if (ws_is_dup(sub, m))
		return;
	if (m->seq) {
		sub->seq = m->seq;
		strcpy(sub->epoch, m->epoch);
	}
	ws_enqueue(sub->hub.sess, m);
}

static void ws_sub_drop_held(struct ws_sub *sub)
{
	for (unsigned i = 0; i < sub->nheld; i++)
		hub_msg_unref(sub->held[i]);
	free(sub->held);
	sub->held = NULL;
	sub->nheld = sub->capheld = 0;
}

static void ws_sub_go_live(struct ws_sub *sub)
{
	sub->mode = WS_LIVE;
	for (unsigned i = 0; i < sub->nheld; i++)
		ws_sub_send(sub, sub->held[i]);
	ws_sub_drop_held(sub);
}

void ws_deliver(struct hub_sub *hs, struct hub_msg *m)
{
	struct ws_sub *sub = (struct ws_sub *)hs;

	if (hs->sess->close_code)
		return; /* closing: nothing more goes out */
	if (sub->mode == WS_LIVE) {
		ws_sub_send(sub, m);
		return;
	}
	if (sub->nheld == sub->capheld) { /* replaying: keep it for the switch */
		unsigned ncap = sub->capheld ? 2 * sub->capheld : 16;
		struct hub_msg **nh = ncap <= CHATD_MAX_QUEUE ? realloc(sub->held, ncap * sizeof *nh) : NULL;
		if (!nh) {
			ws_too_slow(hs->sess);
			return;
		}
		sub->held = nh;
		sub->capheld = ncap;
	}
	m->refs++;
	sub->held[sub->nheld++] = m;
}

struct ws_read {
	struct ws_link *link;
	unsigned idx; /* which subscription of the session */
};

static void ws_on_history(void *arg, const char *err, const struct broker_history *h);

static void ws_sub_read(struct ws_sess *s, unsigned idx, uint64_t since, size_t limit)
{
	struct ws_read *rd = malloc(sizeof *rd);

	if (!rd || !s->srv->broker) {
		free(rd);
		ws_send_error(s, "history not available: replay skipped, continuing live");
		ws_sub_go_live(&s->subs[idx]);
		return;
	}
	rd->link = s->link;
	rd->idx = idx;
	s->srv->metrics.replays++;
	s->link->reads++;
	broker_history(s->srv->broker, hub_chan_name(s->subs[idx].hub.chan), since, limit,
		       ws_on_history, rd);
}

static void ws_send_gap(struct ws_sess *s, const struct ws_sub *sub,
			const struct broker_history *h)
{
	char frame[400];
	int n;

	s->srv->metrics.gaps++;
	n = snprintf(frame, sizeof frame,
			 "{\"type\":\"gap\",\"chan\":\"%s\",\"asked\":{\"since\":%llu,\"epoch\":\"%s\"},"
			 "\"available\":{\"first\":%llu,\"last\":%llu,\"epoch\":\"%s\"}}",
			 hub_chan_name(sub->hub.chan), (unsigned long long)sub->seq, sub->epoch,
			 (unsigned long long)h->first, (unsigned long long)h->last, h->epoch);
	ws_send_frame(s, frame, (size_t)n);
}

static void ws_on_history(void *arg, const char *err, const struct broker_history *h)
{
	struct ws_read *rd = arg;
	struct ws_link *link = rd->link;
	struct ws_sess *s = link->sess;
	unsigned idx = rd->idx;
	struct ws_sub *sub;

	free(rd);
	link->reads--;
	if (!s) {
		if (!link->pending && !link->reads)
			free(link);
		return;
	}
	sub = &s->subs[idx];
	if (s->close_code)
		return; /* closing: no more pages */
	if (err) {
		char msg[300];
		snprintf(msg, sizeof msg, "history not available (%s): replay skipped, continuing live", err);
		ws_send_error(s, msg);
		ws_sub_go_live(sub);
		return;
	}
	if (sub->last_n) { /* last=N: now that the newest seq is known, read from N before it */
		uint64_t since = h->last > (uint64_t)sub->last_n ? h->last - (uint64_t)sub->last_n : 0;
		sub->last_n = 0;
		sub->seq = since;
		snprintf(sub->epoch, sizeof sub->epoch, "%s", h->epoch);
		ws_sub_read(s, idx, since, WS_REPLAY_PAGE);
		return;
	}
	if (sub->check_gap) {
		int new_epoch = sub->epoch[0] && h->epoch[0] && strcmp(sub->epoch, h->epoch);
		/* A position in an epoch, and now the channel has no numbering at all: its
		 * history was lost (memory broker restarted, Redis flushed) and nothing new came. */
		int all_lost = sub->epoch[0] && !h->epoch[0] && sub->seq;
		sub->check_gap = 0;
		if (all_lost) {
			ws_send_gap(s, sub, h);
			sub->seq = 0;
			sub->epoch[0] = '\0';
		} else if (new_epoch || (h->epoch[0] && sub->seq + 1 < h->first)) {
			ws_send_gap(s, sub, h); /* before anything replayed: never a silent hole */
			if (new_epoch) { /* the asked position means nothing now: replay this epoch */
				sub->seq = 0;
				snprintf(sub->epoch, sizeof sub->epoch, "%s", h->epoch);
				ws_sub_read(s, idx, 0, WS_REPLAY_PAGE);
				return;
			}
		}
	}
	for (size_t i = 0; i < h->n; i++) {
		struct hub_msg *m = hub_msg_new(h->envs[i], h->lens[i]);
		if (!m)
			break;
		env_pos_of(h->envs[i], h->lens[i], &m->seq, m->epoch);
		ws_sub_send(sub, m);
		hub_msg_unref(m);
	}
	if (h->n == WS_REPLAY_PAGE) {
		ws_sub_read(s, idx, sub->seq, WS_REPLAY_PAGE);
		return;
	}
	ws_sub_go_live(sub);
}

void ws_sub_lost(struct hub_sub *hs, uint64_t seq, const char *epoch)
{
	struct ws_sub *sub = (struct ws_sub *)hs;

	if (sub->mode != WS_LIVE || sub->seq || sub->catch_up)
		return; /* it has a position of its own */
	sub->seq = seq;
	snprintf(sub->epoch, sizeof sub->epoch, "%s", epoch);
	sub->catch_up = 1;
}

void ws_sub_ready(struct hub_sub *hs)
{
	struct ws_sub *sub = (struct ws_sub *)hs;
	struct ws_sess *s = hs->sess;

	if (s->close_code || sub->mode == WS_REPLAYING)
		return;
	if (sub->mode == WS_LIVE && !sub->seq && !sub->catch_up)
		return; /* live from the start, nothing to catch up on */
	sub->catch_up = 0;
	/* A resume asked for in the URL, or a channel that is live again after its
	 * subscription was lost: read what was published since the last message. */
	if (sub->mode == WS_LIVE)
		sub->check_gap = 1;
	sub->mode = WS_REPLAYING;
	ws_sub_read(s, (unsigned)(sub - s->subs), sub->last_n ? 0 : sub->seq,
		    sub->last_n ? 1 : WS_REPLAY_PAGE);
}

/* Whether e is an epoch as chatd makes them: at most ENV_EPOCH_MAX of 0-9 a-z. */
static int ws_epoch_ok(const char *e)
{
	size_t len = strlen(e);

	return len <= ENV_EPOCH_MAX && strspn(e, "0123456789abcdefghijklmnopqrstuvwxyz") == len;
}

/* Whether s (up to end) is a seq: digits, below 2^64. */
static int ws_seq_ok(const char *s, const char *end)
{
	char *stop;

	if (s == end || *s < '0' || *s > '9')
		return 0;
	errno = 0;
	(void)strtoull(s, &stop, 10);
	return stop == end && errno != ERANGE;
}

/* Whether pos is CHAN:SEQ:EPOCH as chatd writes event ids, whatever the channel. */
static int ws_position_well_formed(const char *pos)
{
	const char *e = strrchr(pos, ':'), *seq;

	if (!e || e == pos || !e[1] || !ws_epoch_ok(e + 1))
		return 0;
	for (seq = e; seq > pos && seq[-1] != ':'; seq--)
		;
	return seq - 1 > pos && !chan_check(pos, (size_t)(seq - 1 - pos)) && ws_seq_ok(seq, e);
}

/* One position, CHAN:SEQ[:EPOCH], for one of the n subscribed channels. A channel that
 * is not subscribed is an error, or, when lenient, skipped (returns 0) if the position
 * is well formed. */
static int ws_parse_position(struct ws_sess *s, char names[][CHAN_MAX + 1], int n, char *pos,
			     int lenient, char *err, size_t errlen)
{
	char *seq = NULL, *epoch;
	int k = -1;

	/* The longest subscribed name followed by ':' (a name may itself hold colons). */
	for (int i = 0; i < n; i++) {
		size_t len = strlen(names[i]);
		if (!strncmp(pos, names[i], len) && pos[len] == ':' && (k < 0 || len > strlen(names[k]))) {
			k = i;
			seq = pos + len;
		}
	}
	if (k < 0 && lenient)
		return ws_position_well_formed(pos) ? 0 : -1;
	if (k < 0) {
		snprintf(err, errlen, "since must be CHAN:SEQ[:EPOCH] for a subscribed channel");
		return -1;
	}
	epoch = strchr(seq + 1, ':');
	if (epoch)
		*epoch++ = '\0';
	if (!ws_seq_ok(seq + 1, seq + 1 + strlen(seq + 1)) || (epoch && !ws_epoch_ok(epoch))) {
		snprintf(err, errlen, "since must be CHAN:SEQ[:EPOCH] with a number and an epoch of 0-9 a-z");
		return -1;
	}
	s->subs[k].seq = strtoull(seq + 1, NULL, 10);
	snprintf(s->subs[k].epoch, sizeof s->subs[k].epoch, "%s", epoch ? epoch : "");
	s->subs[k].mode = WS_WAITING;
	s->subs[k].check_gap = 1;
	s->subs[k].last_n = 0;
	return 0;
}

/* Resume positions from the request: since=NAME:SEQ[:EPOCH] (repeatable), last=N, and
 * for SSE the Last-Event-ID header, a comma-separated list of positions (the id chatd
 * gave its last event), which wins over since= for the channels it names. */
static int ws_url_positions(struct lws *wsi, struct ws_sess *s, char names[][CHAN_MAX + 1],
			    int n, char *err, size_t errlen)
{
	int alen = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_URI_ARGS), len;
	char *frag = malloc((size_t)alen + 1), *id = NULL;
	long last = 0;

	if (!frag)
		return -1;
	for (int i = 0; (len = lws_hdr_copy_fragment(wsi, frag, alen + 1, WSI_TOKEN_HTTP_URI_ARGS, i)) >= 0; i++) {
		if (!strncmp(frag, "last=", 5)) {
			if (cli_parse_count(frag + 5, 1000, &last) || last < 1) {
				snprintf(err, errlen, "last must be a count from 1 to 1000");
				goto fail;
			}
			continue;
		}
		if (!strncmp(frag, "since=", 6) && ws_parse_position(s, names, n, frag + 6, 0, err, errlen))
			goto fail;
	}
	for (int k = 0; last && k < n; k++)
		if (s->subs[k].mode == WS_LIVE) {
			s->subs[k].mode = WS_WAITING;
			s->subs[k].last_n = last;
		}
	len = s->kind == SESS_SSE ? lws_hdr_custom_length(wsi, "last-event-id:", 14) : -1;
	if (len > 0) {
		char *save = NULL;
		if (!(id = malloc((size_t)len + 1)) ||
		    lws_hdr_custom_copy(wsi, id, len + 1, "last-event-id:", 14) < 0)
			goto fail;
		for (char *p = strtok_r(id, ", ", &save); p; p = strtok_r(NULL, ", ", &save))
			if (ws_parse_position(s, names, n, p, 1, err, errlen)) {
				snprintf(err, errlen, "Last-Event-ID must be CHAN:SEQ:EPOCH[,CHAN:SEQ:EPOCH...] as chatd sent it");
				goto fail;
			}
	}
	free(id);
	free(frag);
	return 0;
fail:
	free(id);
	free(frag);
	return -1;
}

int sess_open(struct ws_sess *s, struct lws *wsi, enum sess_kind kind, const char *prefix,
	      char *err, size_t errlen)
{
	char names[CHAN_MAX_PER_CONN][CHAN_MAX + 1];
	struct server *srv = server_of(wsi);
	int n, rc;

	s->kind = kind;
	s->wsi = wsi;
	lws_get_peer_simple(wsi, s->peer, sizeof s->peer);
	if (!strncmp(s->peer, "::ffff:", 7)) /* v4-mapped: show the IPv4 address */
		memmove(s->peer, s->peer + 7, strlen(s->peer + 7) + 1);
	s->link = calloc(1, sizeof *s->link);
	if (!s->link)
		return -1; /* srv unset: sess_close has nothing to undo */
	s->srv = srv;
	s->link->sess = s;
	s->next = srv->sessions;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->nsessions++;

	n = ws_url_channels(wsi, prefix, names, CHAN_MAX_PER_CONN, err, errlen);
	if (n < 0) {
		rc = 400;
		goto refused;
	}
	if (srv->draining) {
		snprintf(err, errlen, "server shutting down");
		return 503;
	}
	{
		char origin[200];
		if (authz_origin(wsi, origin, sizeof origin)) {
			snprintf(err, errlen, "origin %.60s is not allowed (chatd --allow-origin)", origin);
			rc = 403;
			goto refused;
		}
	}
	{
		const char *list[CHAN_MAX_PER_CONN];
		for (int i = 0; i < n; i++)
			list[i] = names[i];
		if ((rc = authz_request(wsi, NULL, 0, list, n, &s->grant, err, errlen)))
			goto refused;
	}
	s->subs = calloc((size_t)n, sizeof *s->subs);
	if (!s->subs)
		return -1;
	if (ws_url_positions(wsi, s, names, n, err, errlen)) {
		free(s->subs);
		s->subs = NULL;
		rc = 400;
		goto refused;
	}
	for (int i = 0; i < n; i++) {
		if (hub_join(srv, names[i], &s->subs[i].hub, s))
			return -1;
		s->nsubs++;
	}
	if (log_enabled(LOGL_DEBUG)) {
		char list[CHAN_MAX_PER_CONN * (CHAN_MAX + 1)] = "";
		for (int i = 0; i < n; i++)
			strcat(strcat(list, i ? "," : ""), names[i]);
		log_debug(kind == SESS_SSE ? "sse" : "ws", "open peer=%s chans=%s", s->peer, list);
	}
	return 0;
refused:
	log_debug(kind == SESS_SSE ? "sse" : "ws", "refused peer=%s: %s", s->peer, err);
	return rc;
}

int sess_expired(const struct ws_sess *s)
{
	return s->grant.exp && env_now_ms() / 1000 >= s->grant.exp;
}

/* Wake at the token's exp, at most an hour ahead (exp can be far off; the timer then
 * re-arms). */
static void ws_arm_expiry(struct ws_sess *s, struct lws *wsi)
{
	int64_t left = s->grant.exp - env_now_ms() / 1000;

	lws_set_timer_usecs(wsi, (left < 1 ? 1 : left > 3600 ? 3600 : left) * LWS_USEC_PER_SEC);
}

static int ws_on_established(struct ws_sess *s, struct lws *wsi)
{
	char err[300];
	int rc = sess_open(s, wsi, SESS_WS, "/ws", err, sizeof err);

	if (rc < 0)
		return -1;
	if (rc) /* the upgrade is done: refuse with a close code */
		sess_close_later(s, rc == 503 ? LWS_CLOSE_STATUS_GOINGAWAY
				 : rc == 401 ? SESS_CLOSE_UNAUTHORIZED
				 : rc == 403 ? SESS_CLOSE_FORBIDDEN : LWS_CLOSE_STATUS_POLICY_VIOLATION, err);
	else if (s->grant.exp) /* the token's end ends the connection */
		ws_arm_expiry(s, wsi);
	return 0;
}

void sess_close(struct ws_sess *s)
{
	struct server *srv = s->srv;

	if (!srv)
		return; /* never established */
	for (unsigned i = 0; i < s->nsubs; i++) {
		hub_leave(srv, &s->subs[i].hub);
		ws_sub_drop_held(&s->subs[i]);
	}
	ws_unmark_dirty(s);
	free(s->subs);
	ws_drop_queue(s);
	free(s->q);
	free(s->rx);
	auth_grant_free(&s->grant);
	if (s->link) {
		s->link->sess = NULL;
		if (!s->link->pending && !s->link->reads)
			free(s->link);
	}
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->nsessions--;
	log_debug(s->kind == SESS_SSE ? "sse" : "ws", "closed peer=%s", s->peer);
	memset(s, 0, sizeof *s);
}

static void ws_on_published(void *arg, const char *err, const struct broker_pos *pos)
{
	struct ws_link *link = arg;

	int was_paused = link->pending-- == WS_MAX_INFLIGHT;

	(void)pos;

	if (link->sess && was_paused)
		lws_rx_flow_control(link->sess->wsi, 1); /* below the cap again: read on */
	if (link->sess && err) {
		char msg[300];
		snprintf(msg, sizeof msg, "publish failed: %s", err);
		ws_send_error(link->sess, msg);
	}
	if (!link->sess && !link->pending && !link->reads)
		free(link);
}

/* One complete text message from the client: a publish. */
static int ws_on_message(struct ws_sess *s, const char *text, size_t len)
{
	struct env_pub pub;
	const char *down;
	char err[300];
	int rc;

	if (!utf8_valid(text, len)) {
		sess_close_later(s, LWS_CLOSE_STATUS_INVALID_PAYLOAD, "text frame is not valid UTF-8");
		return 0;
	}
	if (env_pub_parse(text, len, hub_chan_name(s->subs[0].hub.chan), &pub, err, sizeof err)) {
		ws_send_error(s, err);
		return 0;
	}
	if (s->srv->cfg->auth) {
		if (sess_expired(s)) {
			env_pub_free(&pub);
			sess_close_later(s, SESS_CLOSE_UNAUTHORIZED, "token expired");
			return 0;
		}
		if (!auth_allows(&s->grant, 1, pub.chan)) {
			snprintf(err, sizeof err, "forbidden: this token does not allow publishing to channel %s", pub.chan);
			env_pub_free(&pub);
			ws_send_error(s, err);
			return 0;
		}
		snprintf(pub.sender, sizeof pub.sender, "%s", s->grant.name);
	}
	{
		char who[ENV_SENDER_MAX + 52];
		double wait;
		snprintf(who, sizeof who, "%s%s", pub.sender[0] ? "u:" : "a:", pub.sender[0] ? pub.sender : s->peer);
		if (limits_publish(s->srv, who, &wait)) {
			snprintf(err, sizeof err, "rate limited: at most %g messages a second (burst %g); try again in %.1f s",
				 s->srv->cfg->publish_rate, s->srv->cfg->publish_burst, wait);
			env_pub_free(&pub);
			ws_send_error(s, err);
			return 0;
		}
	}
	/* A client publishing faster than the broker confirms is stopped reading, so its
	 * publishes cannot pile up in memory. */
	if (++s->link->pending == WS_MAX_INFLIGHT)
		lws_rx_flow_control(s->wsi, 0);
	rc = hub_publish(s->srv, &pub, env_now_ms(), ws_on_published, s->link, &down);
	env_pub_free(&pub);
	if (rc) {
		snprintf(err, sizeof err, "publish failed: %s", down);
		ws_on_published(s->link, NULL, NULL);
		ws_send_error(s, err);
	}
	return 0;
}

static int ws_on_receive(struct ws_sess *s, struct lws *wsi, const char *in, size_t len)
{
	size_t max = s->srv->cfg->max_message;

	if (s->close_code || !s->nsubs)
		return 0; /* closing: ignore the rest */
	if (lws_frame_is_binary(wsi)) {
		sess_close_later(s, LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE,
			       "binary frames are not accepted; send text");
		return 0;
	}
	if (s->rx_len + len > max) {
		char why[100];
		snprintf(why, sizeof why, "message larger than %zu bytes (--max-message)", max);
		sess_close_later(s, LWS_CLOSE_STATUS_MESSAGE_TOO_LARGE, why);
		return 0;
	}
	if (lws_is_final_fragment(wsi) && !lws_remaining_packet_payload(wsi) && !s->rx_len)
		return ws_on_message(s, in, len); /* the common case: no copy */
	if (s->rx_len + len > s->rx_cap) {
		size_t ncap = 2 * (s->rx_len + len);
		char *nrx = realloc(s->rx, ncap);
		if (!nrx)
			return -1;
		s->rx = nrx;
		s->rx_cap = ncap;
	}
	memcpy(s->rx + s->rx_len, in, len);
	s->rx_len += len;
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return 0;
	len = s->rx_len;
	s->rx_len = 0;
	ws_on_message(s, s->rx, len);
	if (s->rx_cap > 65536) { /* an idle connection keeps no large buffer */
		free(s->rx);
		s->rx = NULL;
		s->rx_cap = 0;
	}
	return 0;
}

/* Write the close frame ourselves: with the libuv event lib, lws 4.1.6 kills a
 * connection whose callback returns -1 before its lws_close_reason() frame is sent. The
 * peer answers with its own close, and lws finishes the handshake; the timeout covers a
 * peer that never does. */
static int ws_send_close(struct ws_sess *s, struct lws *wsi)
{
	unsigned char buf[LWS_PRE + 2 + sizeof s->close_reason], *p = buf + LWS_PRE;
	size_t rlen = strlen(s->close_reason);

	p[0] = (unsigned char)(s->close_code >> 8);
	p[1] = (unsigned char)(s->close_code & 0xff);
	memcpy(p + 2, s->close_reason, rlen);
	s->close_sent = 1;
	/* 4 is the close opcode; lws keeps LWS_WRITE_CLOSE private */
	if (lws_write(wsi, p, 2 + rlen, (enum lws_write_protocol)4) < 0)
		return -1;
	lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_ACK, 2);
	return 0;
}

struct hub_msg *sess_pop(struct ws_sess *s)
{
	struct hub_msg *m;

	if (!s->qlen)
		return NULL;
	m = s->q[s->qhead];
	s->qhead = (s->qhead + 1) % s->qcap;
	s->qlen--;
	s->qbytes -= m->len;
	return m;
}

/* RFC 6455 header of an unmasked, final text frame of len bytes, written at out.
 * Returns its length: 2, 4 or 10. */
static size_t ws_frame_header(unsigned char *out, size_t len)
{
	out[0] = 0x81; /* FIN, text */
	if (len < 126) {
		out[1] = (unsigned char)len;
		return 2;
	}
	if (len < 65536) {
		out[1] = 126;
		out[2] = (unsigned char)(len >> 8);
		out[3] = (unsigned char)len;
		return 4;
	}
	out[1] = 127;
	for (int i = 0; i < 8; i++)
		out[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
	return 10;
}

/* Everything queued that fits goes out in one write: the frames are built here, one
 * after the other in a scratch buffer, and handed to lws as raw bytes (server frames
 * are unmasked, so they are plain header + payload). One system call for many
 * messages is what makes fan-out cheap; lws keeps whatever the socket did not take
 * and asks for nothing more until it has sent it. */
static int ws_write_queue(struct ws_sess *s, struct lws *wsi)
{
	static unsigned char batch[LWS_PRE + WS_BATCH_BYTES];
	struct metrics *mt = &s->srv->metrics;

	while (s->qlen && !lws_partial_buffered(wsi)) {
		unsigned char *out = batch + LWS_PRE;
		size_t used = 0;
		struct hub_msg *m;

		if (s->q[s->qhead]->len + 10 > WS_BATCH_BYTES) { /* too big to gather: alone */
			m = sess_pop(s);
			mt->delivered += m->seq != 0;
			mt->bytes_out += m->seq ? m->len : 0;
			if (lws_write(wsi, hub_msg_payload(m), m->len, LWS_WRITE_TEXT) < (int)m->len) {
				hub_msg_unref(m);
				return -1;
			}
			hub_msg_unref(m);
			continue;
		}
		while (s->qlen && used + s->q[s->qhead]->len + 10 <= WS_BATCH_BYTES) {
			m = sess_pop(s);
			used += ws_frame_header(out + used, m->len);
			memcpy(out + used, hub_msg_payload(m), m->len);
			used += m->len;
			mt->delivered += m->seq != 0;
			mt->bytes_out += m->seq ? m->len : 0;
			hub_msg_unref(m);
		}
		if (lws_write(wsi, out, used, LWS_WRITE_RAW) < (int)used)
			return -1;
	}
	return 0;
}

static int ws_on_writable(struct ws_sess *s, struct lws *wsi)
{
	if (ws_write_queue(s, wsi))
		return -1;
	if (s->qlen) {
		lws_callback_on_writable(wsi);
		return 0;
	}
	if (s->close_code && !s->close_sent)
		return ws_send_close(s, wsi);
	return 0;
}

/* Write every dirty session's queue. Returns the frames written and, in *nsess, the
 * sessions written to. */
static uint64_t ws_flush_dirty(struct server *srv, unsigned *nsess)
{
	struct ws_sess *s;
	uint64_t frames = 0;

	*nsess = 0;
	while ((s = srv->dirty)) {
		unsigned before = s->qlen;

		ws_unmark_dirty(s);
		/* A closing session, a full socket or a failed write: lws's callback does it
		 * (and a failed write closes the connection there). */
		if (s->close_code || lws_partial_buffered(s->wsi) || ws_write_queue(s, s->wsi) || s->qlen)
			lws_callback_on_writable(s->wsi);
		frames += before - s->qlen;
		++*nsess;
	}
	uv_check_stop(&srv->flush);
	ws_flush_timer_stop(srv);
	return frames;
}

/* One write round, and the window before the next (coalesce.h). */
static void ws_flush_round(struct server *srv, uint64_t now)
{
	uint64_t since = now - srv->last_flush, frames;
	unsigned nsess;

	srv->last_flush = now;
	frames = ws_flush_dirty(srv, &nsess);
	srv->coalesce_ns = coalesce_next(srv->coalesce_ns, (uint64_t)srv->cfg->coalesce_us * 1000,
					 frames, nsess, since);
}

static void ws_flush_timer_fired(uv_poll_t *h, int status, int events)
{
	struct server *srv = h->data;
	uint64_t n;

	if (read(srv->flush_tfd, &n, sizeof n) < 0 && errno != EAGAIN)
		log_warn("ws", "coalescing timer: %s", strerror(errno));
	ws_flush_round(srv, uv_hrtime());
}

/* The coalescing timer is a timerfd, not a uv_timer: libuv's timers count whole
 * milliseconds, which would stretch a 500 us window to 1 or 2 ms. */
static void ws_flush_timer_start(struct server *srv, uint64_t ns)
{
	struct itimerspec it = { .it_value = { (time_t)(ns / 1000000000), (long)(ns % 1000000000) } };

	if (!ns)
		it.it_value.tv_nsec = 1; /* zero would disarm it */
	if (timerfd_settime(srv->flush_tfd, 0, &it, NULL) < 0) {
		ws_flush_round(srv, uv_hrtime()); /* cannot happen with a valid value; don't hold */
		return;
	}
	srv->flush_armed = 1;
	uv_poll_start(&srv->flush_timer, UV_READABLE, ws_flush_timer_fired);
}

static void ws_flush_timer_stop(struct server *srv)
{
	static const struct itimerspec off;

	if (!srv->flush_armed)
		return;
	srv->flush_armed = 0;
	timerfd_settime(srv->flush_tfd, 0, &off, NULL);
	uv_poll_stop(&srv->flush_timer);
}

/* After the loop turn's input: write the dirty list now, unless the last round was less
 * than the window (--coalesce, longer under load: ws_flush_round) ago. Then it waits for
 * the timer, and whatever else arrives meanwhile goes in the same write. Each write to a
 * subscriber costs the kernel's loopback or network path once whatever it carries, so
 * under load this cuts chatd's CPU per delivery severalfold (bench/coalesce.md), while a
 * message after a quiet spell (nothing written for a window) still goes at once. */
static void ws_flush_check(uv_check_t *h)
{
	struct server *srv = h->data;
	uint64_t now = uv_hrtime(), win = srv->coalesce_ns;

	if (win && now - srv->last_flush < win) {
		uv_check_stop(h);
		if (!srv->flush_armed)
			ws_flush_timer_start(srv, srv->last_flush + win - now);
		return;
	}
	ws_flush_round(srv, now);
}

void ws_close_all(struct server *srv)
{
	for (struct ws_sess *s = srv->sessions; s; s = s->next) {
		ws_drop_queue(s); /* the client is told to go away now, not in a while */
		sess_close_later(s, LWS_CLOSE_STATUS_GOINGAWAY, "server shutting down");
	}
}

int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		size_t len)
{
	struct ws_sess *s = user;

	switch (reason) {
	case LWS_CALLBACK_ESTABLISHED:
		return ws_on_established(s, wsi);
	case LWS_CALLBACK_RECEIVE:
		return ws_on_receive(s, wsi, in, len);
	case LWS_CALLBACK_SERVER_WRITEABLE:
		return ws_on_writable(s, wsi);
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		/* The peer answers our own close frame (ws_send_close): lws does not know we sent
		 * one and would echo a second, which browsers treat as an error (1006). */
		return s->close_sent ? -1 : 0;
	case LWS_CALLBACK_CLOSED:
		sess_close(s);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		limits_conn_close(server_of(wsi), wsi);
		return 0;
	case LWS_CALLBACK_TIMER:
		if (sess_expired(s))
			sess_close_later(s, SESS_CLOSE_UNAUTHORIZED, "token expired");
		else if (s->grant.exp)
			ws_arm_expiry(s, wsi);
		return 0;
	default:
		return 0;
	}
}
