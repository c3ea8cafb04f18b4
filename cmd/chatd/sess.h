/* sess.h: a subscriber session, whatever carries it: a WebSocket (ws.c) or a
 * Server-Sent Events stream (sse.c). ws.c owns the subscriptions, their positions
 * (resume, replay, the switch to live) and the send queue; a transport only writes
 * what the queue holds, its own way. Private to chatd's ws.c and sse.c. */
#ifndef CHATD_SESS_H
#define CHATD_SESS_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "chan.h"
#include "envelope.h"
#include "hub.h"

struct server;

/* Outlives its session while publishes are in flight, so a late broker answer never
 * touches freed memory. */
struct ws_link {
	struct ws_sess *sess; /* NULL once the session closed */
	unsigned pending;     /* publishes awaiting the broker */
	unsigned reads;       /* history reads awaiting the broker */
};

/* One subscription, with its position: live messages at or below the last seq it got
 * (in the same epoch) are duplicates and dropped. While it replays history, live
 * messages wait in `held` and go out after the replay, so the switch loses nothing and
 * repeats nothing. */
enum ws_sub_mode { WS_LIVE, WS_WAITING, WS_REPLAYING };

struct ws_sub {
	struct hub_sub hub; /* first: hub.c hands us &hub */
	enum ws_sub_mode mode;
	uint64_t seq;                   /* last queued (0: none yet) */
	char epoch[ENV_EPOCH_MAX + 1];  /* of that message, or asked for */
	long last_n;                    /* last=N asked: replay the newest N */
	int check_gap;                  /* the next history page decides whether to notify */
	int catch_up;                   /* seq was set when the subscription was lost */
	struct hub_msg **held;
	unsigned nheld, capheld;
	uint64_t sent_seq;              /* SSE: last written, for the event id */
	char sent_epoch[ENV_EPOCH_MAX + 1];
};

enum sess_kind { SESS_WS, SESS_SSE };

struct ws_sess {
	struct lws *wsi;
	struct server *srv;
	enum sess_kind kind;
	struct ws_sess *prev, *next;
	struct ws_sub *subs;
	unsigned nsubs;
	struct hub_msg **q; /* ring */
	unsigned qcap, qhead, qlen;
	size_t qbytes;
	char *rx;
	size_t rx_len, rx_cap;
	struct ws_link *link;
	int close_code, close_sent;
	char close_reason[124]; /* RFC 6455: at most 123 bytes */
	char peer[48];
	struct auth_grant grant; /* what its token allows (with authentication on) */
	struct ws_sess *dirty_prev, *dirty_next; /* in server's flush list (WebSocket) */
	int dirty;
	int sse_started;   /* SSE: the response headers are out */
	int sse_keepalive; /* SSE: a keepalive comment is due */
	unsigned sse_ticks;
};

/* Start a session on wsi: the channels and resume positions come from the request
 * (path under `prefix`, chan=, since=, last=, and for SSE the Last-Event-ID header),
 * the right to read them from its token. Returns 0; an HTTP status when the request is
 * refused (400 bad request, 401 no valid token, 403 a channel it may not read, 503
 * shutting down; err says why); or -1 when out of memory. */
int sess_open(struct ws_sess *s, struct lws *wsi, enum sess_kind kind, const char *prefix,
	      char *err, size_t errlen);
/* End it: leave every channel and drop what is queued. */
void sess_close(struct ws_sess *s);
/* The next queued message, now the caller's reference; NULL when the queue is empty. */
struct hub_msg *sess_pop(struct ws_sess *s);
/* Ask for the connection to end with code and reason, after what is queued. */
void sess_close_later(struct ws_sess *s, int code, const char *reason);
/* Its token has expired: end it with 4401 (checked by each transport's timer). */
int sess_expired(const struct ws_sess *s);

#define SESS_CLOSE_UNAUTHORIZED 4401 /* no valid token, or it expired */
#define SESS_CLOSE_FORBIDDEN 4403    /* the token does not allow a channel */

/* sse.c: the HTTP side of an SSE stream. sse_open starts one for GET /events, or
 * returns NULL with an HTTP status and a reason. */
struct ws_sess *sse_open(struct lws *wsi, int *status, char *err, size_t errlen);
void sse_free(struct ws_sess *s);
/* origin: the browser's allowed Origin for CORS headers ("" if none). */
int sse_writable(struct ws_sess *s, struct lws *wsi, const char *origin);
/* Every few seconds: -1 when the peer has gone. */
int sse_timer(struct ws_sess *s, struct lws *wsi);

#endif
