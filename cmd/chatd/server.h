/* server.h: the chatd process: configuration, the shared state of one event loop, and
 * the pieces that share it (http.c, ws.c, hub.c). Server-only; nothing here is in lib. */
#ifndef CHATD_SERVER_H
#define CHATD_SERVER_H

#include <libwebsockets.h>
#include <stddef.h>
#include <uv.h>

#include "auth.h"
#include "broker.h"
#include "strmap.h"
#include "url.h"

#define CHATD_MAX_QUEUE 4096 /* messages queued for one subscriber before it is cut off */
/* Seconds a request's headers have to arrive, and then its body (lws times the headers
 * and a silent body; http.c a body that keeps trickling) */
#define HTTP_TIMEOUT_S 10
/* lws keeps a receive buffer of this size in every WebSocket connection: small, since
 * most connections only subscribe; larger messages arrive in pieces ws.c joins. */
#define WS_RX_BUFFER 512
/* The largest send() lws makes for a WebSocket. It must be given: left 0, lws caps every
 * send at the receive buffer's size, and a 64 KiB batch of frames would go out 512 bytes
 * at a time (measured: subscribers fall behind and are cut off). */
#define WS_TX_PACKET (256 * 1024)

struct chatd_config {
	char listen[300];      /* as given, for logs */
	char host[256];        /* "" for all interfaces */
	int port;
	const char *unix_path; /* listen on a UNIX socket instead */
	int use_redis;
	struct redis_url redis;
	size_t max_message; /* bytes, HTTP body and WebSocket message */
	struct broker_config store; /* history kept per channel */
	struct auth *auth;  /* NULL: no authentication, everything allowed */
	unsigned max_conns, max_conns_per_ip; /* 0: no cap */
	double publish_rate, publish_burst;   /* per user or address; rate 0: no limit */
	unsigned ping_s;                      /* WebSocket ping after this long idle */
	unsigned coalesce_us;                 /* --coalesce: least time between fan-out writes */
	const char **origins;                 /* --allow-origin; "*" for any */
	int norigins;
	int tls;                              /* --tls-cert: https and wss */
};

/* metrics.c: counters for /metrics and the status line. */
#define METRICS_LAT_BUCKETS 14
struct metrics {
	uint64_t published, publish_refused, delivered, bytes_out, slow, auth401, auth403;
	uint64_t rate_limited, conn_refused, reconnects, replays, gaps;
	uint64_t lat_bucket[METRICS_LAT_BUCKETS], lat_count;
	double lat_sum;
	uint64_t status_at, status_published, status_delivered; /* at the last status line */
};

/* limits.c: the counters behind the caps (see chatd(1), LIMITS). */
struct limits {
	unsigned nconns, full_warned;
	struct strmap by_ip;   /* peer address -> its connection count */
	struct strmap by_wsi;  /* "%p" of a counted wsi -> its address's count */
	struct strmap buckets; /* user or address -> publish token bucket */
	struct ip_count *pending; /* let in by the filter, its wsi not created yet */
	uv_timer_t sweep;
};

struct ws_sess;

struct server {
	const struct chatd_config *cfg;
	uv_loop_t *loop;
	struct lws_context *ctx;
	struct lws_context *dying_ctx; /* destroy started; see main() */
	struct broker *broker;
	struct strmap chans;       /* name -> struct hub_chan: channels with local subscribers */
	struct ws_sess *sessions;  /* every open WebSocket, for shutdown */
	struct ws_sess *dirty;     /* WebSockets with new messages this loop iteration */
	uv_check_t flush;          /* writes them once the iteration's input is handled */
	uv_poll_t flush_timer;     /* ... or, under load, a little later: see ws_flush_check */
	int flush_tfd;             /* its timerfd */
	int flush_armed;
	uint64_t last_flush;       /* uv_hrtime() of the last write of the dirty list */
	uint64_t coalesce_ns;      /* the window between writes: --coalesce to 4 x that */
	unsigned nsessions;        /* WebSockets and SSE streams */
	unsigned nsse;             /* of which SSE streams */
	int draining;
	uv_signal_t sig[2];
	uv_timer_t stop_timer;
	uint64_t stop_deadline;
	struct limits limits;
	struct metrics metrics;
	uv_signal_t usr1;
	uv_timer_t status_timer;
	int broker_was_down;
};

/* lws protocol callbacks */
int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		  size_t len);
int ws_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		size_t len);
size_t http_req_size(void);
size_t ws_sess_size(void);

/* Close every WebSocket with 1001 "server shutting down". */
void ws_close_all(struct server *srv);

/* lwslog.c: lws_set_log_level, and the levels its log calls check first */
void lwslog_set_level(int level, void (*emit)(int level, const char *line));

/* A new connection's socket: 0 to serve it, -1 when a cap is reached (close it). The
 * next wsi created is its wsi: limits_conn_bind counts it. */
int limits_conn_open(struct server *srv, int fd);
void limits_conn_bind(struct server *srv, struct lws *wsi);
/* Any wsi going away; uncounts it if it was counted. */
void limits_conn_close(struct server *srv, struct lws *wsi);
/* May `who` publish now? 0, or -1 with the seconds until it may in *retry_s. */
int limits_publish(struct server *srv, const char *who, double *retry_s);
void limits_init(struct server *srv);
/* The client's address, IPv4 without the v4-mapped prefix. */
void limits_peer(struct lws *wsi, char ip[48]);
void limits_free(struct server *srv);

/* metrics.c */
void metrics_publish_latency(struct server *srv, uint64_t ns);
/* The Prometheus text, malloc'd. */
char *metrics_render(struct server *srv, size_t *len);
/* Log one status line: connections, rates since the last one, broker state. */
void metrics_status(struct server *srv);

/* authz.c: may this request (token from body_token, else the Authorization header, else
 * ?token=) publish to (publish = 1) or read every one of chans? Returns 0 with g filled
 * (free it with auth_grant_free), or 401 / 403 with a reason in err. */
int authz_request(struct lws *wsi, const char *body_token, int publish,
		  const char *const *chans, int n, struct auth_grant *g, char *err, size_t errlen);

/* authz.c: may a browser page from the request's Origin use this server? 0 (its origin,
 * "" when the request has none, in origin) or -1. Allowed: no Origin (not a browser),
 * this server's own origin, and the --allow-origin list. */
int authz_origin(struct lws *wsi, char *origin, size_t cap);
/* The CORS headers for an allowed origin (and, for a preflight, what may be sent). */
int authz_cors_headers(struct lws *wsi, const char *origin, int preflight, unsigned char **p,
		       unsigned char *end);

static inline struct server *server_of(struct lws *wsi)
{
	return lws_context_user(lws_get_context(wsi));
}

#endif
