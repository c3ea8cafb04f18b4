/* broker_redis.c: every chatd node on one Redis is one chat.
 *
 * Two connections per process, as Redis requires: a command connection for PUBLISH
 * (hiredis pipelines: commands queue in its output buffer and go out in one write per
 * loop turn) and a subscriber connection that is SUBSCRIBEd only to channels with local
 * subscribers. Both reconnect on their own with capped exponential backoff and jitter,
 * and a connect watchdog, since hiredis 0.14 has no timeouts of its own.
 *
 * A channel that loses its last local subscriber is unsubscribed in Redis only after it
 * has stayed unwanted for a while (SUB_LINGER_MS): clients that reconnect do not churn
 * SUBSCRIBE/UNSUBSCRIBE, and hiredis' per-channel callback table, which an UNSUBSCRIBE
 * reply clears, is never raced by a quick re-subscribe (one that happens anyway is
 * re-sent when the UNSUBSCRIBE reply arrives).
 *
 * A Redis that stops answering without closing (a hung host, a partition) is found by a
 * PING each second on the command connection, and by a heartbeat on the subscriber
 * connection: it is always subscribed to this node's own heartbeat channel, and each
 * second the command connection PUBLISHes a beat to it (see rb_on_tick). So the
 * subscriber connection is proven end to end, through pub/sub itself, without a PING
 * in subscribe mode (whose reply hiredis 0.14 cannot route). When nothing has come back
 * for DEAD_MS, the connection is dropped, which fails its pending publishes (503) and
 * reconnects.
 *
 * With Sentinel, the master's address comes from sentinel.c: nothing connects until it
 * is known; both connections first ask ROLE and give up on an instance that is not the
 * master; any connection failure (and a READONLY answer) asks the sentinels again; and a
 * new address (a +switch-master, or a fresh answer) moves both connections to it. */
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "broker.h"
#include "chan.h"
#include "fmt.h"
#include "log.h"
#include "redis_uv.h"
#include "sentinel.h"
#include "strmap.h"
#include "url.h"

#define CONNECT_TIMEOUT_MS 3000
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define SUB_LINGER_MS 2000
#define TICK_MS 1000
#define DEAD_MS 3000 /* no reply for this long to a PING or a publish: the connection is dead */
#define WAIT_TIMEOUT_MS "1000" /* --redis-wait: how long a publish waits for its replicas */

enum rchan_state { RCHAN_NONE, RCHAN_SUBSCRIBED, RCHAN_UNSUBSCRIBING };

struct rchan {
	int wanted;
	enum rchan_state state;
	uint64_t idle_since;
};

struct rbroker;

struct rconn {
	struct rbroker *rb;
	const char *role;
	redisAsyncContext *ac; /* non-NULL while connecting or connected */
	int up;                /* answered PING: usable */
	unsigned attempt;
	uv_timer_t timer; /* connect watchdog while connecting, backoff while not */
	uint64_t last_rx, ping_sent; /* loop time of the last reply, of the last PING */
	int ping_pending;
	int refused; /* this attempt's AUTH or SELECT failed */
	char why[200];
};

struct rbroker {
	struct broker base;
	uv_loop_t *loop;
	struct redis_url url;
	struct broker_config cfg;
	struct rconn cmd, sub;
	struct strmap chans; /* name -> struct rchan */
	uv_timer_t tick;
	/* publishes to one channel made in this loop turn, sent as one script call */
	char batch_chan[CHAN_MAX + 1];
	struct pubreq **batch;
	size_t nbatch, capbatch;
	char *cmdbuf; /* the batch's script call, formatted (rb_command) */
	size_t capcmd;
	/* --redis-wait: publishes sent this loop turn, confirmed by one WAIT behind them */
	struct pubreq **unwaited;
	size_t nunwaited, capunwaited;
	uv_prepare_t flush; /* sends the batch and the WAIT before the loop sleeps */
	unsigned waits_in_flight; /* a WAIT holds the command connection (and the heartbeat) */
	uint64_t rng; /* xorshift state for backoff jitter */
	char hb_chan[48]; /* this node's heartbeat channel: a space keeps it apart from any chan */
	char pub_sha[41]; /* the publish script, once SCRIPT LOADed: publishes send EVALSHA */
	struct sentinel *sentinel; /* NULL unless --sentinel */
	int have_master;           /* with Sentinel: url.host/port is an answer */
	int hb_subscribed;
	int up, closing, open_handles;
	char addr[120]; /* host:port or socket path, for messages */
	char status[400], last_why[400];
};

/* One publish in flight. With --redis-wait its WAIT follows the script in the pipeline,
 * so two replies come: the script's (kept in pos/err) and WAIT's. */
struct pubreq {
	broker_done_fn *done;
	void *arg;
	struct rconn *conn;
	unsigned replies;        /* still to come */
	const char *err;         /* set by the script's reply */
	int conflict;            /* err is a key conflict: pos is the original's */
	char errbuf[160];
	struct broker_pos pos;
	/* the script's arguments for this message, until its batch is sent */
	char ts[24];
	int64_t ts_ms;           /* the same */
	char kidx[8];            /* its idempotency key's index in KEYS, or "0" */
	char *key;               /* the key's name, or NULL */
	char *sender;            /* the envelope's sender member, or "" */
	char *msg;
	size_t msg_len;
	char *buf;               /* key, sender and msg live here */
};

/* A batch in flight: its reply answers every publish in it. */
struct pubbatch {
	struct rbroker *rb;
	size_t n;
	struct pubreq *reqs[];
};

#define BATCH_MAX 8 /* publishes per script call: see broker_publish */

static void rconn_connect(struct rconn *c);
static void rconn_on_timer(uv_timer_t *t);

/* Tell the server when the broker becomes usable, and each time the reason it is not
 * changes: a Redis that was never reachable is reported once, not once per retry. */
static void rb_report(struct rbroker *rb)
{
	int up = rb->cmd.up && rb->sub.up;
	const char *why = rb->base.ops->status(&rb->base);

	if (rb->closing || (up == rb->up && (up || !strcmp(why, rb->last_why))))
		return;
	if (!up && !rb->cmd.why[0] && !rb->sub.why[0])
		return; /* still connecting for the first time: nothing went wrong yet */
	rb->up = up;
	snprintf(rb->last_why, sizeof rb->last_why, "%s", up ? "" : why);
	if (rb->base.ev->state)
		rb->base.ev->state(rb->base.ud, up, why);
}

/* With Sentinel, every connection failure may mean the master moved. */
static void rb_ask_sentinels(struct rbroker *rb)
{
	if (rb->sentinel && !rb->closing)
		sentinel_resolve(rb->sentinel);
}

static void rconn_retry_later(struct rconn *c)
{
	unsigned shift = c->attempt < 16 ? c->attempt : 16;
	uint64_t delay = (uint64_t)BACKOFF_MIN_MS << shift;

	if (c->rb->closing)
		return;
	if (delay > BACKOFF_MAX_MS)
		delay = BACKOFF_MAX_MS;
	c->rb->rng ^= c->rb->rng << 13;
	c->rb->rng ^= c->rb->rng >> 7;
	c->rb->rng ^= c->rb->rng << 17;
	delay = delay / 2 + c->rb->rng % (delay / 2 + 1); /* equal jitter */
	c->attempt++;
	uv_timer_start(&c->timer, rconn_on_timer, delay, 0);
	rb_ask_sentinels(c->rb);
}

static void rconn_set_why(struct rconn *c, const char *what, const char *detail)
{
	snprintf(c->why, sizeof c->why, "%s%s%s", what, detail ? ": " : "", detail ? detail : "");
}

static void sub_send(struct rbroker *rb, const char *verb, const char *chan);

/* Any reply proves the connection alive, whichever command it answers. */
static void rconn_heard(struct rconn *c)
{
	c->last_rx = uv_now(c->rb->loop);
	c->ping_pending = 0;
}

static void on_sub_message(redisAsyncContext *ac, void *r, void *priv)
{
	struct rbroker *rb = priv;
	redisReply *reply = r, **e;
	struct rchan *ch;

	if (!reply || rb->sub.ac != ac)
		return;
	rconn_heard(&rb->sub);
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
		return; /* PONG */
	e = reply->element;
	if (e[0]->type != REDIS_REPLY_STRING || e[1]->type != REDIS_REPLY_STRING)
		return;
	if (!strcmp(e[1]->str, rb->hb_chan)) { /* a beat (heard above), or its SUBSCRIBE */
		rb->hb_subscribed |= !strcmp(e[0]->str, "subscribe");
		return;
	}
	if (!strcmp(e[0]->str, "message") && e[2]->type == REDIS_REPLY_STRING) {
		rb->base.ev->message(rb->base.ud, e[1]->str, e[2]->str, e[2]->len);
		return;
	}
	if (!strcmp(e[0]->str, "subscribe") && rb->base.ev->ready) {
		rb->base.ev->ready(rb->base.ud, e[1]->str, 1);
		return;
	}
	if (!strcmp(e[0]->str, "unsubscribe") && (ch = strmap_get(&rb->chans, e[1]->str))) {
		if (ch->wanted) { /* wanted again while the UNSUBSCRIBE was in flight */
			sub_send(rb, "SUBSCRIBE", e[1]->str);
			ch->state = RCHAN_SUBSCRIBED;
		} else {
			free(strmap_del(&rb->chans, e[1]->str));
		}
	}
}

static void sub_send(struct rbroker *rb, const char *verb, const char *chan)
{
	if (rb->sub.ac && rb->sub.up)
		redisAsyncCommand(rb->sub.ac, on_sub_message, rb, "%s %s", verb, chan);
}

/* Subscribe every wanted channel not subscribed yet and forget the unwanted, but only
 * while both connections are up. A channel's ready() makes the server read from the
 * history what its subscribers missed while it was not subscribed, and that read goes
 * through the command connection: after an outage the two connections come back in
 * either order (they back off independently), and a subscription made while the command
 * connection is still down would fail that read and leave the hole unfilled. */
static void sub_sync(struct rbroker *rb)
{
	const char *name;
	void *v;
	char **gone = NULL;
	size_t ngone = 0;

	if (!rb->sub.up || !rb->cmd.up)
		return;
	for (size_t i = 0; (i = strmap_next(&rb->chans, i, &name, &v));) {
		struct rchan *ch = v;
		if (ch->state != RCHAN_NONE)
			continue;
		if (ch->wanted) {
			sub_send(rb, "SUBSCRIBE", name);
			ch->state = RCHAN_SUBSCRIBED;
		} else {
			char **g = realloc(gone, (ngone + 1) * sizeof *g);
			if (g) {
				gone = g;
				gone[ngone++] = strdup(name);
			}
		}
	}
	for (size_t i = 0; i < ngone; i++) {
		if (gone[i])
			free(strmap_del(&rb->chans, gone[i]));
		free(gone[i]);
	}
	free(gone);
}

static void on_auth(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct rconn *c = priv;

	if (reply && reply->type == REDIS_REPLY_ERROR && c->ac == ac) {
		rconn_set_why(c, "refused", reply->str);
		c->refused = 1;
		redisAsyncDisconnect(ac);
	}
}

static const char publish_lua[];

static void on_script_loaded(redisAsyncContext *ac, void *r, void *priv)
{
	struct rbroker *rb = priv;
	redisReply *reply = r;

	if (reply && rb->cmd.ac == ac && reply->type == REDIS_REPLY_STRING && reply->len == 40)
		memcpy(rb->pub_sha, reply->str, 41);
}

/* Publishes go as EVAL (the whole script) until Redis has it cached, then as EVALSHA:
 * 40 bytes on the wire instead of the script, and no hashing of it per publish. */
static void rb_load_script(struct rbroker *rb)
{
	rb->pub_sha[0] = '\0';
	redisAsyncCommand(rb->cmd.ac, on_script_loaded, rb, "SCRIPT LOAD %s", publish_lua);
}

/* Sentinel's answer can be stale: a connection only serves a master. */
static void on_role(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct rconn *c = priv;

	if (!reply || c->ac != ac || c->refused)
		return;
	if (reply->type != REDIS_REPLY_ARRAY || !reply->elements ||
	    reply->element[0]->type != REDIS_REPLY_STRING || strcmp(reply->element[0]->str, "master")) {
		rconn_set_why(c, "refused", "not the master (ROLE); asking the sentinels again");
		c->refused = 1;
		redisAsyncDisconnect(ac);
	}
}

static void on_ready(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct rconn *c = priv;

	if (!reply || c->ac != ac || c->refused)
		return; /* refused: an AUTH error is already closing it, whatever PING says */
	rconn_heard(c);
	if (reply->type == REDIS_REPLY_ERROR) {
		if (!c->refused) /* else the AUTH or SELECT error already says why */
			rconn_set_why(c, "refused", reply->str);
		redisAsyncDisconnect(ac);
		return;
	}
	c->up = 1;
	c->attempt = 0;
	c->why[0] = '\0';
	uv_timer_stop(&c->timer);
	if (c == &c->rb->sub)
		sub_send(c->rb, "SUBSCRIBE", c->rb->hb_chan);
	else
		rb_load_script(c->rb);
	sub_sync(c->rb); /* once the other connection is up too */
	rb_report(c->rb);
}

static void on_connect(const redisAsyncContext *ac, int status)
{
	struct rconn *c = ac->data;

	if (status == REDIS_OK || c->ac != ac)
		return;
	/* hiredis frees ac after this returns. */
	rconn_set_why(c, "cannot connect", ac->errstr);
	c->ac = NULL;
	rconn_retry_later(c);
	rb_report(c->rb);
}

/* The connection is gone (c->ac already cleared): a new one must subscribe afresh. */
static void rconn_lost(struct rconn *c)
{
	c->up = 0;
	c->ping_pending = 0;
	/* A beat in flight on a lost command connection never arrives: not the subscriber
	 * connection's fault. */
	c->rb->sub.ping_pending = 0;
	if (c == &c->rb->sub) {
		c->rb->hb_subscribed = 0;
		const char *name;
		void *v;
		for (size_t i = 0; (i = strmap_next(&c->rb->chans, i, &name, &v));) {
			struct rchan *ch = v;
			if (ch->state == RCHAN_SUBSCRIBED && ch->wanted && c->rb->base.ev->ready)
				c->rb->base.ev->ready(c->rb->base.ud, name, 0);
			ch->state = RCHAN_NONE;
		}
	}
	rconn_retry_later(c);
	rb_report(c->rb);
}

/* Give up on a connection that does not answer: its pending callbacks run now with NULL
 * replies (so pending publishes are refused), then reconnect. */
static void rconn_drop(struct rconn *c, const char *why)
{
	redisAsyncContext *ac = c->ac;

	rconn_set_why(c, why, NULL);
	c->ac = NULL;
	redisAsyncFree(ac);
	rconn_lost(c);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct rconn *c = ac->data;

	if (c->ac != ac)
		return; /* already given up on by rconn_drop or broker_free */
	if (status != REDIS_OK || !c->why[0])
		rconn_set_why(c, "connection lost", status != REDIS_OK ? ac->errstr : "closed by redis");
	c->ac = NULL;
	rconn_lost(c);
}

static void rconn_on_timer(uv_timer_t *t)
{
	struct rconn *c = t->data;
	redisAsyncContext *ac = c->ac;

	if (!ac) { /* backoff over: try again */
		if (!c->rb->sentinel || c->rb->have_master)
			rconn_connect(c);
		return;
	}
	if (!c->up)
		rconn_drop(c, "connect timed out");
}

static void rconn_connect(struct rconn *c)
{
	struct rbroker *rb = c->rb;
	const struct redis_url *u = &rb->url;
	redisAsyncContext *ac;

	ac = u->is_unix ? redisAsyncConnectUnix(u->path) : redisAsyncConnect(u->host, u->port);
	if (!ac || ac->err) {
		rconn_set_why(c, "cannot connect", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		rconn_retry_later(c);
		return;
	}
	if (redis_uv_attach(ac, rb->loop)) {
		rconn_set_why(c, "cannot connect", "event loop attach failed");
		redisAsyncFree(ac);
		rconn_retry_later(c);
		return;
	}
	ac->data = c;
	c->ac = ac;
	c->refused = 0;
	if (!u->is_unix) /* hiredis fails a UNIX socket on the TCP option */
		redisEnableKeepAlive(&ac->c);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	if (u->password[0] && u->user[0])
		redisAsyncCommand(ac, on_auth, c, "AUTH %s %s", u->user, u->password);
	else if (u->password[0])
		redisAsyncCommand(ac, on_auth, c, "AUTH %s", u->password);
	if (u->db && c == &rb->cmd)
		redisAsyncCommand(ac, on_auth, c, "SELECT %d", u->db);
	if (rb->sentinel)
		redisAsyncCommand(ac, on_role, c, "ROLE");
	redisAsyncCommand(ac, on_ready, c, "PING");
	uv_timer_start(&c->timer, rconn_on_timer, CONNECT_TIMEOUT_MS, 0);
}

/* A batch of publishes to one channel, atomically, each in turn: if it carries an
 * idempotency key already used, answer the original's position (flag 1, or 2 when the
 * message differs) and publish nothing. Else assign the next seq (a new epoch first if the
 * channel's meta key is gone, which means its history is gone too), build the envelope,
 * append it to the history stream (IDs are "SEQ-0", so a resume is one XRANGE) trimmed to
 * about the history count (MAXLEN ~: whole nodes at a time, 4 us less per publish than an
 * exact trim; reads skip what is past the count), remember the key, and PUBLISH the same
 * bytes. Once per batch: store the seq, drop entries past the age limit from the stream's
 * head (when a multiple of 16 was passed and the oldest is too old, up to 32 at a time:
 * reads filter by age anyway), refresh the keys' TTL (the numbering is kept for 30 days
 * after a channel's last message, the history for --history-ttl).
 * A message whose XADD fails (a stream changed behind chatd's back) is refused alone,
 * flag 3 with Redis' error in place of the epoch; its seq stays used, so the numbering
 * passes the stream's top and heals, as one failed publish did before batches. The epoch
 * is made by the first message that is not a repeat, so a batch of repeats changes
 * nothing.
 * KEYS: meta hash, history stream, then the batch's idempotency keys. ARGV: chan, history
 * count, ttl ms, key window ms, then for each message: ts, msg, the sender member
 * (,"sender":"NAME" or ""), its key's index in KEYS (0: none). Returns {EPOCH, then for
 * each message its seq} when the message was published in EPOCH with the ts chatd gave,
 * else {seq, epoch, ts, flag} (a repeat, 1 or 2; or refused, 3, with the error in place of
 * the epoch). EPOCH is "" when no message made or found one. One integer a message
 * rather than four: each reply element is an object hiredis allocates and frees.
 * Numbers go to redis.call as strings (ARGV's own, or literals): Redis formats a Lua
 * number argument with snprintf("%.17g"), 2,300 instructions each, 8% of Redis' work per
 * publish (callgrind). */
static const char publish_lua[] =
	"local chan, n, ttl, win = ARGV[1], tonumber(ARGV[2]), tonumber(ARGV[3]), ARGV[4]\n"
	"local ns, ttls = ARGV[2], ARGV[3]\n"
	"local m = redis.call('HMGET', KEYS[1], 'epoch', 'seq')\n"
	"local e, s = m[1], tonumber(m[2]) or 0\n"
	"local s0, out, o, ts = s, {''}, 1, nil\n"
	"for i = 5, #ARGV, 4 do\n"
	"  local msg, ki, h, dup = ARGV[i + 1], ARGV[i + 3], nil, nil\n"
	"  if ki ~= '0' then\n"
	"    ki = tonumber(ki)\n"
	"    h = redis.sha1hex(msg)\n"
	"    local k = redis.call('GET', KEYS[ki])\n"
	"    if k then\n"
	"      local ks, ke, kt, kh = string.match(k, '^(%d+) (%S+) (%d+) (%x+)$')\n"
	"      if ks then dup = {tonumber(ks), ke, tonumber(kt), kh == h and 1 or 2} end\n"
	"    end\n"
	"  end\n"
	"  if dup then\n"
	"    o = o + 1\n"
	"    out[o] = dup\n"
	"  else\n"
	"    if not e then\n"
	"      local t = redis.call('TIME')\n"
	"      e = string.format('r%x%05x', tonumber(t[1]), tonumber(t[2]))\n"
	"      redis.call('DEL', KEYS[2])\n"
	"      redis.call('HSET', KEYS[1], 'epoch', e)\n"
	"    end\n"
	"    ts = ARGV[i]\n"
	"    s = s + 1\n"
	"    local ss = string.format('%d', s)\n"
	"    local env = '{\"chan\":\"' .. chan .. '\",\"seq\":' .. ss .. ',\"epoch\":\"' .. e ..\n"
	"      '\",\"ts\":' .. ts .. ARGV[i + 2] .. ',\"msg\":' .. msg .. '}'\n"
	"    local x = n > 0 and redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ns, ss .. '-0',\n"
	"      'e', env, 't', ts)\n"
	"    if type(x) == 'table' and x.err then\n"
	"      o = o + 1\n"
	"      out[o] = {s, x.err, tonumber(ts), 3}\n"
	"      h = nil\n"
	"      env = nil\n"
	"    end\n"
	"    if h then\n"
	"      redis.call('SET', KEYS[ki], ss .. ' ' .. e .. ' ' .. ts .. ' ' .. h, 'PX', win)\n"
	"    end\n"
	"    if env then\n"
	"      redis.call('PUBLISH', chan, env)\n"
	"      o = o + 1\n"
	"      out[o] = s\n"
	"    end\n"
	"  end\n"
	"end\n"
	"if s > s0 then\n"
	"  redis.call('HSET', KEYS[1], 'seq', string.format('%d', s))\n"
	"  if n > 0 and ttl > 0 then\n"
	"    if math.floor(s / 16) > math.floor(s0 / 16) and tonumber(redis.call('XRANGE',\n"
	"        KEYS[2], '-', '+', 'COUNT', 1)[1][2][4]) < tonumber(ts) - ttl then\n"
	"      local old = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 32)\n"
	"      for i = 1, #old do\n"
	"        if tonumber(old[i][2][4]) >= tonumber(ts) - ttl then break end\n"
	"        redis.call('XDEL', KEYS[2], old[i][1])\n"
	"      end\n"
	"    end\n"
	"    redis.call('PEXPIRE', KEYS[2], ttls)\n"
	"  end\n"
	"  redis.call('PEXPIRE', KEYS[1], '2592000000')\n"
	"end\n"
	"out[1] = e or ''\n"
	"return out\n";

/* Stored messages after a seq. KEYS: meta, stream. ARGV: since, limit, cutoff ms (0:
 * none), history count (entries before the last that many are past it, even if the lazy
 * trim kept them). Returns {epoch, last seq, first stored seq, envelopes...}. */
static const char history_lua[] =
	"local e = redis.call('HGET', KEYS[1], 'epoch') or ''\n"
	"local last = tonumber(redis.call('HGET', KEYS[1], 'seq') or '0')\n"
	"local cutoff = tonumber(ARGV[3])\n"
	"local floor = math.max(last - tonumber(ARGV[4]), 0)\n"
	"local function id(n) return string.format('%d', n) .. '-0' end\n"
	"local first = last + 1\n"
	"local head = redis.call('XRANGE', KEYS[2], '(' .. id(floor), '+', 'COUNT', 64)\n"
	"for i = 1, #head do\n"
	"  if tonumber(head[i][2][4]) >= cutoff then\n"
	"    first = tonumber(string.match(head[i][1], '^%d+'))\n"
	"    break\n"
	"  end\n"
	"end\n"
	"local out = {e, last, first}\n"
	"local from = math.min(math.max(tonumber(ARGV[1]), floor), last)\n"
	"local r = redis.call('XRANGE', KEYS[2], '(' .. id(from), '+', 'COUNT', ARGV[2])\n"
	"for i = 1, #r do\n"
	"  if tonumber(r[i][2][4]) >= cutoff then out[#out + 1] = r[i][2][2] end\n"
	"end\n"
	"return out\n";

static void rb_keys(const char *chan, char meta[CHAN_MAX + 16], char log[CHAN_MAX + 16])
{
	/* {chan} is a Redis Cluster hash tag: both keys of a channel live on one node. */
	size_t n = strnlen(chan, CHAN_MAX);

	memcpy(meta, "chatd:{", 7);
	memcpy(meta + 7, chan, n);
	memcpy(meta + 7 + n, "}:m", 4);
	memcpy(log, meta, 7 + n);
	memcpy(log + 7 + n, "}:h", 4);
}

/* The last reply of a publish is in: answer it once. */
static void pubreq_finish(struct pubreq *req)
{
	if (req->err)
		req->done(req->arg, req->err, req->conflict ? &req->pos : NULL);
	else
		req->done(req->arg, NULL, &req->pos);
	free(req->buf);
	free(req);
}

static void pubreq_fail(struct pubreq *req, const char *err)
{
	if (!req->err)
		req->err = err;
}

/* One of the publish's replies is in (err: it failed). */
static void pubreq_settle(struct pubreq *req, const char *err)
{
	if (err)
		pubreq_fail(req, err);
	if (--req->replies == 0)
		pubreq_finish(req);
}

/* The script's answer for one publish: its seq, published in epoch with the ts it was
 * given; or {seq, epoch, ts, flag}. */
static void pubreq_answered(struct pubreq *req, const redisReply *r, const char *epoch)
{
	redisReply **el = r->element;

	if (r->type == REDIS_REPLY_INTEGER && epoch[0]) {
		req->pos.seq = (uint64_t)r->integer;
		fmt_str(req->pos.epoch, sizeof req->pos.epoch, epoch);
		req->pos.ts = req->ts_ms;
		req->pos.duplicate = 0;
		return;
	}
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 4) {
		pubreq_fail(req, "unexpected answer from redis to the publish script");
		return;
	}
	if (el[0]->type != REDIS_REPLY_INTEGER || el[1]->type != REDIS_REPLY_STRING ||
	    el[2]->type != REDIS_REPLY_INTEGER || el[3]->type != REDIS_REPLY_INTEGER) {
		pubreq_fail(req, "unexpected answer from redis to the publish script");
		return;
	}
	if (el[3]->integer == 3) { /* this message's XADD failed: refused alone */
		snprintf(req->errbuf, sizeof req->errbuf, "redis refused the message: %s",
			 el[1]->str);
		pubreq_fail(req, req->errbuf);
		return;
	}
	req->pos.seq = (uint64_t)el[0]->integer;
	fmt_str(req->pos.epoch, sizeof req->pos.epoch, el[1]->str);
	req->pos.ts = el[2]->integer;
	req->pos.duplicate = el[3]->integer != 0;
	if (el[3]->integer == 2) {
		req->conflict = 1;
		pubreq_fail(req, "this idempotency key was already used for a different message");
	}
}

static void on_published(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct pubbatch *pb = priv;
	struct rbroker *rb = pb->rb;
	struct rconn *c = &rb->cmd;
	const char *err = NULL;

	if (reply && c->ac == ac)
		rconn_heard(c);
	if (!reply) {
		err = "not confirmed: lost the connection to redis before it answered; the message may still be delivered";
	} else if (reply->type == REDIS_REPLY_ERROR && !strncmp(reply->str, "NOSCRIPT", 8)) {
		/* The script cache was flushed: nothing ran. Load it again; these are refused
		 * as not accepted, so a retry is safe. */
		if (rb->pub_sha[0] && c->ac == ac)
			rb_load_script(rb);
		err = "redis lost chatd's publish script (SCRIPT FLUSH?); it is being loaded again";
	} else if (reply->type == REDIS_REPLY_ERROR && !strncmp(reply->str, "READONLY", 8)) {
		/* A master turned replica (failover): nothing was written. Find the new one. */
		if (c->ac == ac && c->up) {
			rconn_set_why(c, "refused", "the instance became a replica (READONLY)");
			c->up = 0;
			redisAsyncDisconnect(ac);
		}
		err = "redis is failing over to another master; not stored";
	} else if (reply->type == REDIS_REPLY_ERROR) {
		for (size_t i = 0; i < pb->n; i++) {
			snprintf(pb->reqs[i]->errbuf, sizeof pb->reqs[i]->errbuf, "%s", reply->str);
			pubreq_fail(pb->reqs[i], pb->reqs[i]->errbuf);
		}
	} else if (reply->type != REDIS_REPLY_ARRAY || reply->elements != pb->n + 1 ||
		   reply->element[0]->type != REDIS_REPLY_STRING) {
		err = "unexpected answer from redis to the publish script";
	} else {
		for (size_t i = 0; i < pb->n; i++)
			pubreq_answered(pb->reqs[i], reply->element[i + 1], reply->element[0]->str);
	}
	for (size_t i = 0; i < pb->n; i++)
		pubreq_settle(pb->reqs[i], err);
	free(pb);
}

/* redisAsyncCommandArgv, formatted here: hiredis formats each argument's "$LEN" with
 * sdscatfmt into a new sds, 3,000 instructions for a batch of five (callgrind); this is
 * the same RESP written into one buffer kept for the next batch. */
static int rb_command(struct rbroker *rb, redisCallbackFn *fn, void *priv, int argc,
		      const char **argv, const size_t *lens)
{
	size_t need = 1 + FMT_INT_MAX + 2;
	char *p;

	for (int i = 0; i < argc; i++)
		need += 1 + FMT_INT_MAX + 2 + lens[i] + 2;
	if (need > rb->capcmd) {
		char *nb = realloc(rb->cmdbuf, need);
		if (!nb)
			return REDIS_ERR;
		rb->cmdbuf = nb;
		rb->capcmd = need;
	}
	p = rb->cmdbuf;
	*p++ = '*';
	p += fmt_u64(p, (uint64_t)argc);
	*p++ = '\r';
	*p++ = '\n';
	for (int i = 0; i < argc; i++) {
		*p++ = '$';
		p += fmt_u64(p, lens[i]);
		*p++ = '\r';
		*p++ = '\n';
		memcpy(p, argv[i], lens[i]);
		p += lens[i];
		*p++ = '\r';
		*p++ = '\n';
	}
	return redisAsyncFormattedCommand(rb->cmd.ac, fn, priv, rb->cmdbuf, (size_t)(p - rb->cmdbuf));
}

/* Send the turn's publishes to one channel as one script call. */
static void rb_send_batch(struct rbroker *rb)
{
	enum { ARGS_MAX = 3 + 2 + BATCH_MAX + 4 + 4 * BATCH_MAX };
	char meta[CHAN_MAX + 16], log[CHAN_MAX + 16], nkeys[16];
	char nbuf[24], ttlbuf[24], winbuf[24];
	const char *argv[ARGS_MAX];
	size_t lens[ARGS_MAX], n = rb->nbatch, keys = 2;
	struct pubbatch *pb = malloc(sizeof *pb + n * sizeof pb->reqs[0]);
	int argc = 0;

	rb->nbatch = 0;
	if (!pb || !rb->cmd.ac) {
		const char *why = pb ? rb->base.ops->status(&rb->base) : "out of memory";
		for (size_t i = 0; i < n; i++)
			pubreq_settle(rb->batch[i], why ? why : "redis connection is closing");
		free(pb);
		return;
	}
	pb->rb = rb;
	pb->n = n;
	memcpy(pb->reqs, rb->batch, n * sizeof pb->reqs[0]);
	rb_keys(rb->batch_chan, meta, log);
	argv[argc++] = rb->pub_sha[0] ? "EVALSHA" : "EVAL";
	argv[argc++] = rb->pub_sha[0] ? rb->pub_sha : publish_lua;
	argv[argc++] = nkeys;
	argv[argc++] = meta;
	argv[argc++] = log;
	for (size_t i = 0; i < n; i++) {
		struct pubreq *req = pb->reqs[i];
		if (req->key) {
			fmt_u64(req->kidx, ++keys);
			argv[argc++] = req->key;
		} else {
			strcpy(req->kidx, "0");
		}
	}
	fmt_u64(nkeys, keys);
	fmt_u64(nbuf, rb->cfg.history);
	fmt_u64(ttlbuf, (uint64_t)rb->cfg.history_ttl_s * 1000);
	fmt_u64(winbuf, (uint64_t)rb->cfg.key_window_s * 1000);
	argv[argc++] = rb->batch_chan;
	argv[argc++] = nbuf;
	argv[argc++] = ttlbuf;
	argv[argc++] = winbuf;
	for (int i = 0; i < argc; i++)
		lens[i] = strlen(argv[i]);
	for (size_t i = 0; i < n; i++) {
		struct pubreq *req = pb->reqs[i];
		lens[argc] = strlen(req->ts);
		argv[argc++] = req->ts;
		lens[argc] = req->msg_len;
		argv[argc++] = req->msg;
		lens[argc] = strlen(req->sender);
		argv[argc++] = req->sender;
		lens[argc] = strlen(req->kidx);
		argv[argc++] = req->kidx;
	}
	if (rb_command(rb, on_published, pb, argc, argv, lens) != REDIS_OK) {
		for (size_t i = 0; i < n; i++)
			pubreq_settle(pb->reqs[i], "redis connection is closing or out of memory");
		free(pb);
	}
}

/* WAIT's answer for one publish of the batch it covered. */
static void pubreq_waited(struct pubreq *req, const redisReply *reply)
{
	struct rbroker *rb = req->conn->rb;

	if (!reply)
		pubreq_fail(req, "not confirmed: lost the connection to redis before the replicas answered; the message may still be delivered");
	else if (reply->type != REDIS_REPLY_INTEGER) {
		snprintf(req->errbuf, sizeof req->errbuf, "WAIT failed: %s",
			 reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected answer");
		pubreq_fail(req, req->errbuf);
	} else if (reply->integer < (long long)rb->cfg.replicas && !req->err) {
		snprintf(req->errbuf, sizeof req->errbuf,
			 "not confirmed: stored on the redis master but only %lld of %u replicas confirmed it in time; the message may still be delivered",
			 reply->integer, rb->cfg.replicas);
		req->err = req->errbuf;
		req->conflict = 0;
	}
	if (--req->replies == 0)
		pubreq_finish(req);
}

struct waitbatch {
	size_t n;
	struct pubreq *reqs[];
};

/* WAIT's answer: how many replicas have everything this connection wrote so far, so it
 * settles every publish of the batch at once. */
static void on_waited(redisAsyncContext *ac, void *r, void *priv)
{
	struct waitbatch *w = priv;

	if (w->n)
		w->reqs[0]->conn->rb->waits_in_flight--;
	if (r && w->n && w->reqs[0]->conn->ac == ac)
		rconn_heard(w->reqs[0]->conn);
	for (size_t i = 0; i < w->n; i++)
		pubreq_waited(w->reqs[i], r);
	free(w);
}

/* One WAIT for every publish sent in this loop turn. One WAIT per publish would hold the
 * connection up to a second per publish while a replica is missing, and with it the
 * heartbeat and history reads queued behind. */
static void rb_send_wait(struct rbroker *rb)
{
	struct waitbatch *w = malloc(sizeof *w + rb->nunwaited * sizeof w->reqs[0]);
	size_t n = rb->nunwaited;
	char nrep[16];

	if (!w) { /* not confirmed, from the list itself; answers may add to its end */
		for (size_t i = 0; i < n; i++)
			pubreq_waited(rb->unwaited[i], NULL);
		rb->nunwaited -= n;
		memmove(rb->unwaited, rb->unwaited + n, rb->nunwaited * sizeof rb->unwaited[0]);
		return;
	}
	w->n = n;
	memcpy(w->reqs, rb->unwaited, n * sizeof w->reqs[0]);
	rb->nunwaited = 0;
	snprintf(nrep, sizeof nrep, "%u", rb->cfg.replicas);
	if (w->n && rb->cmd.ac &&
	    redisAsyncCommand(rb->cmd.ac, on_waited, w, "WAIT %s %s", nrep, WAIT_TIMEOUT_MS) == REDIS_OK) {
		rb->waits_in_flight++;
		return;
	}
	for (size_t i = 0; i < w->n; i++)
		pubreq_waited(w->reqs[i], NULL); /* as if the connection was lost: not confirmed */
	free(w);
}

/* Before the loop sleeps: the turn's last batch, the WAIT behind everything, and the
 * write itself (this may run after the connection's own flush in the same phase). */
static void rb_flush(uv_prepare_t *h)
{
	struct rbroker *rb = h->data;

	uv_prepare_stop(h);
	if (rb->nbatch)
		rb_send_batch(rb);
	if (rb->nunwaited)
		rb_send_wait(rb);
	if (rb->cmd.ac)
		redis_uv_flush(rb->cmd.ac);
}

static int grow(struct pubreq ***v, size_t *cap, size_t need)
{
	size_t ncap = *cap ? 2 * *cap : 64;
	struct pubreq **nv;

	if (need <= *cap)
		return 0;
	nv = realloc(*v, ncap * sizeof *nv);
	if (!nv)
		return -1;
	*v = nv;
	*cap = ncap;
	return 0;
}

static void rb_publish(struct broker *b, const struct env_pub *pub, int64_t ts,
		       broker_done_fn *done, void *arg)
{
	struct rbroker *rb = (struct rbroker *)b;
	char sender[6 * ENV_SENDER_MAX + 16];
	struct pubreq *req;
	int keyed = pub->key[0] && rb->cfg.key_window_s;
	size_t klen = keyed ? strlen(pub->chan) + strlen(pub->sender) + strlen(pub->key) + 16 : 0;
	size_t slen;

	if (!rb->cmd.up) {
		done(arg, b->ops->status(b), NULL);
		return;
	}
	/* a batch is one channel's (one hash slot) */
	if (rb->nbatch && strcmp(rb->batch_chan, pub->chan))
		rb_send_batch(rb);
	slen = env_sender_member(pub->sender, sender);
	req = calloc(1, sizeof *req);
	if (req)
		req->buf = malloc(klen + slen + 1 + pub->msg_len + 1);
	if (!req || !req->buf || grow(&rb->batch, &rb->capbatch, rb->nbatch + 1) ||
	    (rb->cfg.replicas && grow(&rb->unwaited, &rb->capunwaited, rb->nunwaited + 1))) {
		if (req)
			free(req->buf);
		free(req);
		done(arg, "out of memory", NULL);
		return;
	}
	req->done = done;
	req->arg = arg;
	req->conn = &rb->cmd;
	req->replies = rb->cfg.replicas ? 2 : 1;
	fmt_i64(req->ts, ts);
	req->ts_ms = ts;
	req->sender = req->buf + klen;
	memcpy(req->sender, sender, slen + 1);
	req->msg = req->sender + slen + 1;
	memcpy(req->msg, pub->msg, pub->msg_len);
	req->msg[pub->msg_len] = '\0';
	req->msg_len = pub->msg_len;
	if (keyed) {
		/* a key belongs to its publisher: "SENDER KEY" when one is named (keys have no
		 * spaces) */
		req->key = req->buf;
		snprintf(req->key, klen, "chatd:{%s}:k:%s%s%s", pub->chan, pub->sender,
			 pub->sender[0] ? " " : "", pub->key);
	}
	if (!rb->nbatch)
		strcpy(rb->batch_chan, pub->chan);
	rb->batch[rb->nbatch++] = req;
	/* the WAIT goes out behind every script sent in this loop turn */
	if (rb->cfg.replicas)
		rb->unwaited[rb->nunwaited++] = req;
	/* A full batch is written at once, so Redis runs it while the loop reads the turn's
	 * other requests; the turn's last goes out before the loop sleeps (rb_flush). Held to
	 * the end of the turn, chatd and Redis took turns: with 16 keep-alive publishers this
	 * publishes about 12% more a second than batches of up to 64 did (bench/publish.md).
	 * Past 8 a script call's fixed cost is mostly shared out. */
	if (rb->nbatch == BATCH_MAX) {
		rb_send_batch(rb);
		redis_uv_write_early(rb->cmd.ac);
	}
	uv_prepare_start(&rb->flush, rb_flush);
}

struct histreq {
	broker_history_fn *cb;
	void *arg;
	struct rconn *conn;
};

static void on_history(redisAsyncContext *ac, void *r, void *priv)
{
	redisReply *reply = r;
	struct histreq *req = priv;
	struct broker_history h = { 0 };
	const char **envs = NULL;
	size_t *lens = NULL;

	if (reply && req->conn->ac == ac)
		rconn_heard(req->conn);
	if (!reply || reply->type == REDIS_REPLY_ERROR) {
		req->cb(req->arg, reply ? reply->str : "lost the connection to redis", NULL);
		free(req);
		return;
	}
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3) {
		req->cb(req->arg, "unexpected answer from redis to the history script", NULL);
		free(req);
		return;
	}
	h.epoch = reply->element[0]->str ? reply->element[0]->str : "";
	h.last = (uint64_t)reply->element[1]->integer;
	h.first = (uint64_t)reply->element[2]->integer;
	h.n = reply->elements - 3;
	envs = malloc((h.n + 1) * sizeof *envs);
	lens = malloc((h.n + 1) * sizeof *lens);
	if (!envs || !lens) {
		req->cb(req->arg, "out of memory", NULL);
	} else {
		for (size_t i = 0; i < h.n; i++) {
			envs[i] = reply->element[3 + i]->str;
			lens[i] = reply->element[3 + i]->len;
		}
		h.envs = envs;
		h.lens = lens;
		req->cb(req->arg, NULL, &h);
	}
	free(envs);
	free(lens);
	free(req);
}

static void rb_history(struct broker *b, const char *chan, uint64_t since, size_t limit,
		       broker_history_fn *cb, void *arg)
{
	struct rbroker *rb = (struct rbroker *)b;
	char meta[CHAN_MAX + 16], log[CHAN_MAX + 16], nums[4][24];
	long long cutoff = 0;
	struct histreq *req;

	if (!rb->cmd.up) {
		cb(arg, b->ops->status(b), NULL);
		return;
	}
	req = malloc(sizeof *req);
	if (!req) {
		cb(arg, "out of memory", NULL);
		return;
	}
	req->cb = cb;
	req->arg = arg;
	req->conn = &rb->cmd;
	rb_keys(chan, meta, log);
	if (rb->cfg.history_ttl_s)
		cutoff = (long long)env_now_ms() - (long long)rb->cfg.history_ttl_s * 1000;
	/* hiredis' format knows %s and %b, not every integer size: numbers go as text */
	snprintf(nums[0], sizeof nums[0], "%llu", (unsigned long long)since);
	snprintf(nums[1], sizeof nums[1], "%zu", limit);
	snprintf(nums[2], sizeof nums[2], "%lld", cutoff);
	snprintf(nums[3], sizeof nums[3], "%zu", rb->cfg.history);
	if (redisAsyncCommand(rb->cmd.ac, on_history, req, "EVAL %s 2 %s %s %s %s %s %s",
			      history_lua, meta, log, nums[0], nums[1], nums[2],
			      nums[3]) != REDIS_OK) {
		free(req);
		cb(arg, "redis connection is closing", NULL);
	}
}

static uint64_t now_ms(struct rbroker *rb)
{
	return uv_now(rb->loop);
}

static void rb_subscribe(struct broker *b, const char *chan)
{
	struct rbroker *rb = (struct rbroker *)b;
	struct rchan *ch = strmap_get(&rb->chans, chan);

	if (!ch) {
		ch = calloc(1, sizeof *ch);
		if (!ch || strmap_put(&rb->chans, chan, ch)) {
			free(ch);
			return;
		}
	}
	ch->wanted = 1;
	if (ch->state == RCHAN_NONE && rb->sub.up && rb->cmd.up) { /* else sub_sync, see there */
		sub_send(rb, "SUBSCRIBE", chan);
		ch->state = RCHAN_SUBSCRIBED;
	} else if (ch->state == RCHAN_SUBSCRIBED && rb->sub.up && b->ev->ready) {
		b->ev->ready(b->ud, chan, 1); /* still subscribed (lingering): live at once */
	}
}

static void rb_unsubscribe(struct broker *b, const char *chan)
{
	struct rbroker *rb = (struct rbroker *)b;
	struct rchan *ch = strmap_get(&rb->chans, chan);

	if (!ch)
		return;
	ch->wanted = 0;
	ch->idle_since = now_ms(rb);
	if (ch->state == RCHAN_NONE)
		free(strmap_del(&rb->chans, chan));
}

static void on_pong(redisAsyncContext *ac, void *r, void *priv)
{
	struct rconn *c = priv;

	if (r && c->ac == ac)
		rconn_heard(c);
}

/* Every second: unsubscribe channels unwanted for long enough, and check both
 * connections are alive: a PING on the command connection, a beat through pub/sub for
 * the subscriber connection (unless the last one is still on its way). */
static void rb_on_tick(uv_timer_t *t)
{
	struct rbroker *rb = t->data;
	struct rconn *conns[2] = { &rb->cmd, &rb->sub };
	uint64_t now = uv_now(rb->loop);
	const char *name;
	void *v;

	for (int i = 0; i < 2; i++) {
		struct rconn *c = conns[i];
		if (!c->up)
			continue;
		if (c == &rb->sub && rb->waits_in_flight) {
			/* The beat queues behind the WAITs (up to a second each): it proves nothing
			 * now. TCP keepalive still watches the socket. */
			c->ping_pending = 0;
			continue;
		}
		if (c->ping_pending && now - c->ping_sent >= DEAD_MS && now - c->last_rx >= DEAD_MS) {
			rconn_drop(c, c == &rb->sub ? "no heartbeat through redis pub/sub for 3 s"
						    : "no answer from redis for 3 s");
			continue;
		}
		if (c->ping_pending)
			continue;
		if (c == &rb->cmd)
			redisAsyncCommand(c->ac, on_pong, c, "PING");
		else if (rb->cmd.up && rb->hb_subscribed)
			redisAsyncCommand(rb->cmd.ac, on_pong, &rb->cmd, "PUBLISH %s beat", rb->hb_chan);
		else
			continue; /* no way to check it now; TCP keepalive watches the socket */
		c->ping_pending = 1;
		c->ping_sent = now;
	}
	if (!rb->sub.up)
		return;
	for (size_t i = 0; (i = strmap_next(&rb->chans, i, &name, &v));) {
		struct rchan *ch = v;
		if (!ch->wanted && ch->state == RCHAN_SUBSCRIBED && now - ch->idle_since >= SUB_LINGER_MS) {
			sub_send(rb, "UNSUBSCRIBE", name);
			ch->state = RCHAN_UNSUBSCRIBING;
		}
	}
}

static const char *rb_status(struct broker *b)
{
	struct rbroker *rb = (struct rbroker *)b;
	/* The connection that is down, preferring one that knows why. */
	const struct rconn *c = !rb->cmd.up && (rb->cmd.why[0] || rb->sub.up) ? &rb->cmd
				: !rb->sub.up ? &rb->sub : !rb->cmd.up ? &rb->cmd : NULL;

	if (rb->closing)
		return "shutting down";
	if (!c)
		return NULL;
	snprintf(rb->status, sizeof rb->status, "redis %s connection to %s is down (%s)", c->role,
		 rb->addr, c->why[0] ? c->why : "connecting");
	return rb->status;
}

static void rb_on_close(uv_handle_t *h)
{
	struct rbroker *rb = h->data;
	const char *name;
	void *v;

	if (--rb->open_handles)
		return;
	for (size_t i = 0; (i = strmap_next(&rb->chans, i, &name, &v));)
		free(v);
	strmap_free(&rb->chans);
	free(rb->batch);
	free(rb->cmdbuf);
	free(rb->unwaited);
	free(rb);
}

static void rb_free(struct broker *b)
{
	struct rbroker *rb = (struct rbroker *)b;
	struct rconn *conns[2] = { &rb->cmd, &rb->sub };

	rb->closing = 1;
	if (rb->sentinel)
		sentinel_free(rb->sentinel);
	if (rb->nbatch) /* their replies come (NULL) when the connection is freed */
		rb_send_batch(rb);
	if (rb->nunwaited)
		rb_send_wait(rb);
	uv_close((uv_handle_t *)&rb->flush, rb_on_close);
	for (int i = 0; i < 2; i++) {
		redisAsyncContext *ac = conns[i]->ac;
		conns[i]->ac = NULL;
		conns[i]->up = 0;
		if (ac)
			redisAsyncFree(ac); /* pending callbacks run now, with NULL replies */
		conns[i]->timer.data = rb; /* rb_on_close counts closes on the broker */
		uv_close((uv_handle_t *)&conns[i]->timer, rb_on_close);
	}
	uv_close((uv_handle_t *)&rb->tick, rb_on_close);
}

static const struct broker_ops rb_ops = {
	.publish = rb_publish,
	.history = rb_history,
	.subscribe = rb_subscribe,
	.unsubscribe = rb_unsubscribe,
	.status = rb_status,
	.free = rb_free,
};

static void rconn_init(struct rbroker *rb, struct rconn *c, const char *role)
{
	c->rb = rb;
	c->role = role;
	uv_timer_init(rb->loop, &c->timer);
	c->timer.data = c;
	rb->open_handles++;
}

static void rb_set_addr(struct rbroker *rb)
{
	if (rb->url.is_unix)
		snprintf(rb->addr, sizeof rb->addr, "unix:%.100s", rb->url.path);
	else
		snprintf(rb->addr, sizeof rb->addr, "%.100s:%d", rb->url.host, rb->url.port);
	if (rb->sentinel)
		snprintf(rb->base.name, sizeof rb->base.name, "redis %.60s (master %.32s via sentinel)",
			 rb->have_master ? rb->addr : "unknown", rb->cfg.sentinel_master);
	else
		snprintf(rb->base.name, sizeof rb->base.name, "redis %s", rb->addr);
}

/* The sentinels name the master: (re)connect both connections there unless they are
 * already up on it. */
static void rb_on_master(void *ud, const char *host, int port)
{
	struct rbroker *rb = ud;
	struct rconn *conns[2] = { &rb->cmd, &rb->sub };
	int same = rb->have_master && !strcmp(rb->url.host, host) && rb->url.port == port;

	if (!same)
		log_info("broker", "redis master %s is at %s:%d", rb->cfg.sentinel_master, host, port);
	snprintf(rb->url.host, sizeof rb->url.host, "%s", host);
	rb->url.port = port;
	rb->have_master = 1;
	rb_set_addr(rb);
	for (int i = 0; i < 2; i++) {
		struct rconn *c = conns[i];
		if (same)
			continue; /* connected, connecting, or backing off: its timer retries */
		if (c->ac) {
			rconn_drop(c, "the master moved");
			continue; /* rconn_drop reconnects after a short backoff */
		}
		uv_timer_stop(&c->timer);
		rconn_connect(c);
	}
}

static void rb_on_sentinel_error(void *ud, const char *why)
{
	struct rbroker *rb = ud;

	if (!rb->have_master) { /* else the connections' own reasons say more */
		rconn_set_why(&rb->cmd, "no master from the sentinels", why);
		rconn_set_why(&rb->sub, "no master from the sentinels", why);
		rb_report(rb);
	}
}

struct broker *broker_redis_new(uv_loop_t *loop, const struct redis_url *url,
				const struct broker_config *cfg, const struct broker_events *ev,
				void *ud)
{
	struct rbroker *rb = calloc(1, sizeof *rb);

	if (!rb)
		return NULL;
	rb->base.ops = &rb_ops;
	rb->base.ev = ev;
	rb->base.ud = ud;
	rb->loop = loop;
	rb->url = *url;
	rb->cfg = *cfg;
	rb->up = -1; /* unknown: the first outcome is reported */
	rb->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)rb;
	rb->rng |= 1;
	snprintf(rb->hb_chan, sizeof rb->hb_chan, "chatd heartbeat %016llx", (unsigned long long)rb->rng);
	rconn_init(rb, &rb->cmd, "command");
	rconn_init(rb, &rb->sub, "subscriber");
	uv_timer_init(loop, &rb->tick);
	rb->tick.data = rb;
	rb->open_handles++;
	uv_timer_start(&rb->tick, rb_on_tick, TICK_MS, TICK_MS);
	uv_unref((uv_handle_t *)&rb->tick);
	uv_prepare_init(loop, &rb->flush);
	rb->flush.data = rb;
	rb->open_handles++;
	if (cfg->sentinels) { /* connect once the sentinels name the master */
		char err[200];
		rb->url.is_unix = 0;
		rb->sentinel = sentinel_new(loop, cfg->sentinels, cfg->sentinel_master, rb_on_master,
					    rb_on_sentinel_error, rb, err, sizeof err);
		if (!rb->sentinel) {
			log_error("broker", "--sentinel: %s", err);
			rb_free(&rb->base);
			return NULL;
		}
		rb_set_addr(rb);
		return &rb->base;
	}
	rb_set_addr(rb);
	rconn_connect(&rb->cmd);
	rconn_connect(&rb->sub);
	return &rb->base;
}
