/* sentinel.c: the master's address from Redis Sentinel (see sentinel.h).
 *
 * Two independent parts on one loop:
 *
 * The resolver asks the sentinels one at a time, in list order, each with ASK_TIMEOUT_MS
 * for connect and answer together (hiredis 0.14 has no timeouts: a uv timer watches).
 * The first address given wins, and that sentinel moves to the front of the list, so the
 * next round starts with one known to work. A round in which nobody answers is retried
 * with capped backoff and jitter; the caller hears of it (on_error) only when it asked.
 *
 * The subscriber keeps one connection SUBSCRIBEd to +switch-master on one sentinel. Every
 * sentinel publishes it (the leader when it switches, the others as they learn the new
 * configuration), so any one will do. When the connection is lost it moves on to the next
 * sentinel with backoff, and once subscribed again it re-resolves, since a switch may have
 * been announced while nobody listened. A sentinel that hangs without closing is found by
 * re-sending the SUBSCRIBE each PING_MS and dropping the connection when nothing has come
 * back for DEAD_MS. Not a PING: in subscribe mode hiredis 0.14 keeps a PING's callback
 * on a list no reply ever shifts, one lost allocation per PING; a repeated SUBSCRIBE
 * replaces its callback and its confirmation is routed like any other. */
#include "sentinel.h"

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

#include "err.h"
#include "log.h"
#include "redis_uv.h"
#include "url.h"

#define ASK_TIMEOUT_MS 1000 /* connect and answer, per sentinel (and to subscribe) */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 5000
#define PING_MS 1000
#define DEAD_MS 3000
#define SWITCH_CHANNEL "+switch-master"

enum ask_state { ASK_IDLE, ASK_WAITING, ASK_RUNNING }; /* WAITING: timer to (re)start a round */

struct sentinel {
	uv_loop_t *loop;
	struct sentinel_addr addrs[SENTINEL_MAX_ADDRS]; /* the one that answered last first */
	size_t n;
	char master[256];
	sentinel_master_fn *on_master;
	sentinel_error_fn *on_error;
	void *ud;

	/* resolver */
	redisAsyncContext *ask_ac;
	uv_timer_t ask_timer; /* the answer's deadline while running; start or retry while waiting */
	enum ask_state ask;
	size_t ask_i;      /* the sentinel being asked */
	int ask_wanted;    /* the caller asked: report the answer even when unchanged, and failures */
	unsigned ask_fails; /* rounds failed in a row */
	char ask_why[1024]; /* this round's reasons, one per sentinel */

	/* subscriber */
	redisAsyncContext *sub_ac;
	uv_timer_t sub_timer; /* subscribe deadline, then liveness tick; backoff while down */
	size_t sub_i;                 /* the next to try, in addrs */
	struct sentinel_addr sub_addr; /* the one tried or subscribed to */
	int sub_up, sub_ever;
	unsigned sub_fails;
	uint64_t sub_rx; /* loop time of its last reply */

	char host[256]; /* the last address reported; port 0: none yet */
	int port;
	uint64_t rng; /* xorshift state for backoff jitter */
	int closing, open_handles;
};

static void ask_next(struct sentinel *s);
static void sub_connect(struct sentinel *s);

/* ---- parsing ---- */

static int parse_port(const char *p, size_t len, int *port)
{
	int v = 0;

	if (!len || len > 5 || strspn(p, "0123456789") < len)
		return -1;
	for (size_t i = 0; i < len; i++)
		v = v * 10 + (p[i] - '0');
	if (v < 1 || v > 65535)
		return -1;
	*port = v;
	return 0;
}

int sentinel_parse_addrs(const char *addrs, struct sentinel_addr *out, size_t max, char *err,
			 size_t errlen)
{
	const char *p = addrs;
	size_t n = 0;

	for (;;) {
		size_t len = strcspn(p, ",");
		char one[300], why[200];

		while (len && (*p == ' ' || *p == '\t'))
			p++, len--;
		while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
			len--;
		if (!len)
			return err_set(err, errlen, "empty sentinel address in \"%s\"", addrs);
		if (len >= sizeof one)
			return err_set(err, errlen, "sentinel address too long in \"%s\"", addrs);
		if (n == max)
			return err_set(err, errlen, "more than %zu sentinels in \"%s\"", max, addrs);
		memcpy(one, p, len);
		one[len] = '\0';
		snprintf(out[n].host, sizeof out[n].host, "127.0.0.1");
		out[n].port = SENTINEL_DEFAULT_PORT;
		if (url_split_hostport(one, out[n].host, sizeof out[n].host, &out[n].port, why,
				       sizeof why))
			return err_set(err, errlen, "bad sentinel address \"%s\": %s", one, why);
		n++;
		p += strcspn(p, ",");
		if (!*p)
			return (int)n;
		p++;
	}
}

/* From the right: the four address fields have no spaces, the name might. */
int sentinel_parse_switch(const char *payload, const char *master, char *host, size_t hostlen,
			  int *port)
{
	const char *f[4], *end = payload + strlen(payload);
	size_t flen[4], namelen;
	int oldport, newport;

	for (int i = 3; i >= 0; i--) {
		const char *sp = end;
		while (sp > payload && sp[-1] != ' ')
			sp--;
		if (sp == end || sp == payload)
			return -1; /* an empty field, or no room left for the name */
		f[i] = sp;
		flen[i] = (size_t)(end - sp);
		end = sp - 1;
	}
	namelen = (size_t)(end - payload);
	if (!namelen || parse_port(f[1], flen[1], &oldport) || parse_port(f[3], flen[3], &newport) ||
	    flen[2] >= hostlen)
		return -1;
	if (strlen(master) != namelen || memcmp(payload, master, namelen))
		return 0;
	memcpy(host, f[2], flen[2]);
	host[flen[2]] = '\0';
	*port = newport;
	return 1;
}

/* The answer to SENTINEL get-master-addr-by-name: 0 with the address, or -1 and why. */
static int parse_master_reply(const redisReply *r, const char *master, char *host,
			      size_t hostlen, int *port, char *why, size_t whylen)
{
	if (r->type == REDIS_REPLY_ERROR)
		return err_set(why, whylen, "%s", r->str);
	if (r->type == REDIS_REPLY_NIL)
		return err_set(why, whylen, "does not know master \"%s\"", master);
	if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
	    r->element[0]->type != REDIS_REPLY_STRING ||
	    r->element[1]->type != REDIS_REPLY_STRING || !r->element[0]->len ||
	    r->element[0]->len >= hostlen ||
	    parse_port(r->element[1]->str, r->element[1]->len, port))
		return err_set(why, whylen, "unexpected answer to SENTINEL get-master-addr-by-name");
	memcpy(host, r->element[0]->str, r->element[0]->len + 1);
	return 0;
}

/* ---- shared ---- */

static uint64_t backoff_ms(struct sentinel *s, unsigned fails)
{
	unsigned shift = fails < 16 ? fails : 16;
	uint64_t d = (uint64_t)BACKOFF_MIN_MS << shift;

	if (d > BACKOFF_MAX_MS)
		d = BACKOFF_MAX_MS;
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return d / 2 + s->rng % (d / 2 + 1); /* equal jitter */
}

/* The caller's callback comes last in every path that makes one: it may free s. */
static void report_master(struct sentinel *s, const char *host, int port, int always)
{
	if (!always && port == s->port && !strcmp(host, s->host))
		return;
	snprintf(s->host, sizeof s->host, "%s", host);
	s->port = port;
	s->on_master(s->ud, s->host, s->port);
}

static void on_connect(const redisAsyncContext *ac, int status);
static void on_disconnect(const redisAsyncContext *ac, int status);

static redisAsyncContext *connect_to(struct sentinel *s, const struct sentinel_addr *a, char *why,
				     size_t whylen)
{
	redisAsyncContext *ac = redisAsyncConnect(a->host, a->port);

	if (!ac || ac->err) {
		snprintf(why, whylen, "cannot connect: %s", ac ? ac->errstr : "out of memory");
		if (ac)
			redisAsyncFree(ac);
		return NULL;
	}
	if (redis_uv_attach(ac, s->loop)) {
		snprintf(why, whylen, "cannot connect: event loop attach failed");
		redisAsyncFree(ac);
		return NULL;
	}
	ac->data = s;
	redisEnableKeepAlive(&ac->c);
	redisAsyncSetConnectCallback(ac, on_connect);
	redisAsyncSetDisconnectCallback(ac, on_disconnect);
	return ac;
}

/* ---- resolver ---- */

static void ask_note(struct sentinel *s, const char *why)
{
	size_t len = strlen(s->ask_why);
	const struct sentinel_addr *a = &s->addrs[s->ask_i];

	snprintf(s->ask_why + len, sizeof s->ask_why - len, "%s%s:%d: %s", len ? "; " : "",
		 a->host, a->port, why);
}

static void on_ask_timer(uv_timer_t *t);

static void ask_later(struct sentinel *s, uint64_t delay)
{
	s->ask = ASK_WAITING;
	uv_timer_start(&s->ask_timer, on_ask_timer, delay, 0);
}

static void ask_round_failed(struct sentinel *s)
{
	char msg[sizeof s->ask_why + 300];

	ask_later(s, backoff_ms(s, s->ask_fails++));
	snprintf(msg, sizeof msg, "no sentinel gave the address of master \"%s\" (%s)", s->master,
		 s->ask_why);
	log_debug("sentinel", "%s", msg);
	if (s->ask_wanted && s->on_error)
		s->on_error(s->ud, msg);
}

/* The sentinel being asked failed (free_ac: unless hiredis is freeing it): the next one. */
static void ask_give_up(struct sentinel *s, const char *why, int free_ac)
{
	redisAsyncContext *ac = s->ask_ac;

	s->ask_ac = NULL;
	uv_timer_stop(&s->ask_timer);
	if (ac && free_ac)
		redisAsyncFree(ac); /* its pending callback sees a NULL reply and ignores it */
	ask_note(s, why);
	s->ask_i++;
	ask_next(s);
}

/* Ends a round without an answer of its own (closing, or a switch made it moot). */
static void ask_cancel(struct sentinel *s)
{
	redisAsyncContext *ac = s->ask_ac;

	s->ask_ac = NULL;
	s->ask = ASK_IDLE;
	s->ask_wanted = 0;
	s->ask_fails = 0;
	uv_timer_stop(&s->ask_timer);
	if (ac)
		redisAsyncFree(ac);
}

static void on_ask_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct sentinel *s = priv;
	char host[256], why[300];
	int port, wanted;

	if (!r || ac != s->ask_ac)
		return; /* a NULL reply: on_connect, on_disconnect or the timer deal with it */
	if (parse_master_reply(r, s->master, host, sizeof host, &port, why, sizeof why)) {
		ask_give_up(s, why, 1);
		return;
	}
	if (s->ask_i) { /* the one that answered goes first next time */
		struct sentinel_addr a = s->addrs[s->ask_i];
		memmove(&s->addrs[1], &s->addrs[0], s->ask_i * sizeof a);
		s->addrs[0] = a;
	}
	wanted = s->ask_wanted;
	ask_cancel(s);
	report_master(s, host, port, wanted);
}

static void ask_next(struct sentinel *s)
{
	char why[300];

	for (; s->ask_i < s->n; s->ask_i++) {
		redisAsyncContext *ac = connect_to(s, &s->addrs[s->ask_i], why, sizeof why);
		if (ac && redisAsyncCommand(ac, on_ask_reply, s, "SENTINEL get-master-addr-by-name %s",
					    s->master) == REDIS_OK) {
			s->ask_ac = ac;
			uv_timer_start(&s->ask_timer, on_ask_timer, ASK_TIMEOUT_MS, 0);
			return;
		}
		if (ac) {
			snprintf(why, sizeof why, "cannot send the command");
			redisAsyncFree(ac);
		}
		ask_note(s, why);
	}
	ask_round_failed(s);
}

static void on_ask_timer(uv_timer_t *t)
{
	struct sentinel *s = t->data;

	if (s->ask == ASK_WAITING) {
		s->ask = ASK_RUNNING;
		s->ask_i = 0;
		s->ask_why[0] = '\0';
		ask_next(s);
	} else if (s->ask == ASK_RUNNING && s->ask_ac) {
		ask_give_up(s, "no answer within 1 s", 1);
	}
}

/* A round unless one is on its way; wanted: on behalf of the caller. */
static void ask_start(struct sentinel *s, int wanted)
{
	if (s->closing)
		return;
	s->ask_wanted |= wanted;
	if (s->ask == ASK_IDLE)
		ask_later(s, 0); /* from the loop: callbacks never run inside the caller's call */
}

void sentinel_resolve(struct sentinel *s)
{
	ask_start(s, 1);
}

/* ---- subscriber ---- */

static void on_sub_timer(uv_timer_t *t);

/* The subscription is gone (free_ac: unless hiredis is freeing it): the next sentinel,
 * after a while. */
static void sub_lost(struct sentinel *s, const char *why, int free_ac)
{
	redisAsyncContext *ac = s->sub_ac;

	log_debug("sentinel", "subscription to %s:%d lost: %s", s->sub_addr.host, s->sub_addr.port,
		  why);
	s->sub_ac = NULL;
	s->sub_up = 0;
	if (ac && free_ac)
		redisAsyncFree(ac);
	uv_timer_start(&s->sub_timer, on_sub_timer, backoff_ms(s, s->sub_fails++), 0);
}

static void on_sub_reply(redisAsyncContext *ac, void *r, void *priv)
{
	struct sentinel *s = priv;
	redisReply *reply = r, **e;
	char host[256];
	int port, wanted;

	if (!reply || ac != s->sub_ac)
		return;
	s->sub_rx = uv_now(s->loop);
	if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 3 ||
	    reply->element[0]->type != REDIS_REPLY_STRING)
		return;
	e = reply->element;
	if (!strcmp(e[0]->str, "subscribe")) {
		if (s->sub_up)
			return; /* a liveness probe's answer */
		s->sub_up = 1;
		s->sub_fails = 0;
		uv_timer_start(&s->sub_timer, on_sub_timer, PING_MS, PING_MS);
		log_debug("sentinel", "subscribed to %s at %s:%d", SWITCH_CHANNEL, s->sub_addr.host,
			  s->sub_addr.port);
		if (s->sub_ever++) /* a switch may have gone by unheard */
			ask_start(s, 0);
		return;
	}
	if (strcmp(e[0]->str, "message") || e[2]->type != REDIS_REPLY_STRING ||
	    sentinel_parse_switch(e[2]->str, s->master, host, sizeof host, &port) != 1)
		return;
	/* The announcement answers any round under way, and more freshly. */
	wanted = s->ask_wanted;
	ask_cancel(s);
	report_master(s, host, port, wanted);
}

static void sub_connect(struct sentinel *s)
{
	char why[300];
	redisAsyncContext *ac;

	s->sub_addr = s->addrs[s->sub_i];
	s->sub_i = (s->sub_i + 1) % s->n;
	ac = connect_to(s, &s->sub_addr, why, sizeof why);
	if (ac && redisAsyncCommand(ac, on_sub_reply, s, "SUBSCRIBE %s", SWITCH_CHANNEL) != REDIS_OK) {
		snprintf(why, sizeof why, "cannot send the command");
		redisAsyncFree(ac);
		ac = NULL;
	}
	s->sub_ac = ac;
	if (!ac) {
		sub_lost(s, why, 0);
		return;
	}
	s->sub_rx = uv_now(s->loop);
	uv_timer_start(&s->sub_timer, on_sub_timer, ASK_TIMEOUT_MS, 0);
}

static void on_sub_timer(uv_timer_t *t)
{
	struct sentinel *s = t->data;

	if (!s->sub_ac)
		sub_connect(s); /* backoff over */
	else if (!s->sub_up)
		sub_lost(s, "not subscribed within 1 s", 1);
	else if (uv_now(s->loop) - s->sub_rx >= DEAD_MS)
		sub_lost(s, "no answer for 3 s", 1);
	else
		redisAsyncCommand(s->sub_ac, on_sub_reply, s, "SUBSCRIBE %s", SWITCH_CHANNEL);
}

/* ---- both ---- */

/* hiredis frees ac after these return: give it up without freeing. */
static void on_connect(const redisAsyncContext *ac, int status)
{
	struct sentinel *s = ac->data;
	char why[300];

	if (status == REDIS_OK || (ac != s->ask_ac && ac != s->sub_ac))
		return;
	snprintf(why, sizeof why, "cannot connect: %s", ac->errstr);
	if (ac == s->ask_ac)
		ask_give_up(s, why, 0);
	else if (ac == s->sub_ac)
		sub_lost(s, why, 0);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
	struct sentinel *s = ac->data;
	char why[300];

	if (ac != s->ask_ac && ac != s->sub_ac)
		return; /* already given up on */
	snprintf(why, sizeof why, "connection lost: %s",
		 status == REDIS_OK ? "closed" : ac->errstr);
	if (ac == s->ask_ac)
		ask_give_up(s, why, 0);
	else
		sub_lost(s, why, 0);
}

static void on_close(uv_handle_t *h)
{
	struct sentinel *s = h->data;

	if (!--s->open_handles)
		free(s);
}

void sentinel_free(struct sentinel *s)
{
	redisAsyncContext *ac;

	if (!s || s->closing)
		return;
	s->closing = 1;
	ask_cancel(s);
	ac = s->sub_ac;
	s->sub_ac = NULL;
	s->sub_up = 0;
	if (ac)
		redisAsyncFree(ac);
	uv_close((uv_handle_t *)&s->ask_timer, on_close);
	uv_close((uv_handle_t *)&s->sub_timer, on_close);
}

struct sentinel *sentinel_new(uv_loop_t *loop, const char *addrs, const char *master,
			      sentinel_master_fn *on_master, sentinel_error_fn *on_error, void *ud,
			      char *err, size_t errlen)
{
	struct sentinel *s;
	int n;

	if (!on_master) {
		err_set(err, errlen, "sentinel_new needs an on_master callback");
		return NULL;
	}
	if (!master || !master[0]) {
		err_set(err, errlen, "missing sentinel master name");
		return NULL;
	}
	if (strlen(master) >= sizeof s->master) {
		err_set(err, errlen, "sentinel master name too long");
		return NULL;
	}
	s = calloc(1, sizeof *s);
	if (!s) {
		err_set(err, errlen, "out of memory");
		return NULL;
	}
	n = sentinel_parse_addrs(addrs, s->addrs, SENTINEL_MAX_ADDRS, err, errlen);
	if (n < 0) {
		free(s);
		return NULL;
	}
	s->n = (size_t)n;
	snprintf(s->master, sizeof s->master, "%s", master);
	s->loop = loop;
	s->on_master = on_master;
	s->on_error = on_error;
	s->ud = ud;
	s->rng = uv_hrtime() ^ ((uint64_t)getpid() << 32) ^ (uintptr_t)s;
	s->rng |= 1;
	uv_timer_init(loop, &s->ask_timer);
	uv_timer_init(loop, &s->sub_timer);
	s->ask_timer.data = s->sub_timer.data = s;
	s->open_handles = 2;
	sentinel_resolve(s);
	uv_timer_start(&s->sub_timer, on_sub_timer, 0, 0); /* connects from the loop */
	return s;
}
