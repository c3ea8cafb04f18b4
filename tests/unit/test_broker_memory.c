/* test_broker_memory.c: the embedded broker. A publish is delivered to the message
 * callback, as the exact envelope env_build writes, before done() acknowledges it with
 * the message's position; seqs count 1, 2, 3... per channel under one epoch per broker
 * instance; history keeps the newest `history` envelopes of each channel, none older than
 * `history_ttl_s`, and hands back the window after a given seq. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "broker.h"
#include "envelope.h"
#include "tap.h"

#define MAX_SEEN 64

/* Everything the broker told us, copied: its pointers are valid only during the call. */
struct recorder {
	int step;
	int messages;
	int message_step; /* step of the last message */
	void *ud_seen;
	char chan[MAX_SEEN][CHAN_MAX + 1];
	char *env[MAX_SEEN];
	size_t len[MAX_SEEN];
};

struct done_result {
	struct recorder *r;
	int calls, step;
	const char *err;
	int has_pos;
	struct broker_pos pos;
};

struct hist_result {
	int calls;
	const char *err;
	int has_h;
	char epoch[ENV_EPOCH_MAX + 1];
	uint64_t first, last;
	size_t n;
	char *envs[MAX_SEEN];
	size_t lens[MAX_SEEN];
};

static void on_message(void *ud, const char *chan, const char *env, size_t len)
{
	struct recorder *r = ud;
	int i = r->messages++;

	r->ud_seen = ud;
	r->message_step = ++r->step;
	if (i >= MAX_SEEN)
		return;
	snprintf(r->chan[i], sizeof r->chan[i], "%s", chan);
	r->env[i] = malloc(len + 1);
	memcpy(r->env[i], env, len);
	r->env[i][len] = '\0';
	r->len[i] = len;
}

static void on_state(void *ud, int up, const char *why)
{
	/* Not asserted: when (or whether) the memory broker reports "up" is its own business. */
}

static const struct broker_events events = { .message = on_message, .state = on_state };

static void recorder_clear(struct recorder *r)
{
	for (int i = 0; i < r->messages && i < MAX_SEEN; i++)
		free(r->env[i]);
	memset(r, 0, sizeof *r);
}

static void on_done(void *arg, const char *err, const struct broker_pos *pos)
{
	struct done_result *d = arg;

	d->calls++;
	d->step = ++d->r->step;
	d->err = err;
	d->has_pos = pos != NULL;
	if (pos)
		d->pos = *pos;
}

static void on_history(void *arg, const char *err, const struct broker_history *h)
{
	struct hist_result *hr = arg;

	hr->calls++;
	hr->err = err;
	hr->has_h = h != NULL;
	if (!h)
		return;
	snprintf(hr->epoch, sizeof hr->epoch, "%s", h->epoch ? h->epoch : "(null)");
	hr->first = h->first;
	hr->last = h->last;
	hr->n = h->n;
	for (size_t i = 0; i < h->n && i < MAX_SEEN; i++) {
		hr->envs[i] = malloc(h->lens[i] + 1);
		memcpy(hr->envs[i], h->envs[i], h->lens[i]);
		hr->envs[i][h->lens[i]] = '\0';
		hr->lens[i] = h->lens[i];
	}
}

static void hist_clear(struct hist_result *hr)
{
	for (size_t i = 0; i < hr->n && i < MAX_SEEN; i++)
		free(hr->envs[i]);
	memset(hr, 0, sizeof *hr);
}

/* Publish the JSON value msg to chan; the done result lands in *d. */
static void publish(struct broker *b, struct recorder *r, const char *chan, const char *msg,
		    int64_t ts, struct done_result *d)
{
	struct env_pub p;

	memset(&p, 0, sizeof p);
	snprintf(p.chan, sizeof p.chan, "%s", chan);
	p.msg = (char *)msg;
	p.msg_len = strlen(msg);
	memset(d, 0, sizeof *d);
	d->r = r;
	broker_publish(b, &p, ts, on_done, d);
}

/* Publish and return the seq (0 if the publish failed). */
static uint64_t publish_seq(struct broker *b, struct recorder *r, const char *chan, const char *msg,
			    int64_t ts)
{
	struct done_result d;

	publish(b, r, chan, msg, ts, &d);
	return d.calls == 1 && !d.err && d.has_pos ? d.pos.seq : 0;
}

static void history(struct broker *b, const char *chan, uint64_t since, size_t limit,
		    struct hist_result *hr)
{
	memset(hr, 0, sizeof *hr);
	broker_history(b, chan, since, limit, on_history, hr);
}

/* The envelope env_build writes, as a string to compare against. */
static void want_env(char *buf, size_t size, const char *chan, uint64_t seq, const char *epoch,
		     int64_t ts, const char *msg)
{
	snprintf(buf, size, "{\"chan\":\"%s\",\"seq\":%llu,\"epoch\":\"%s\",\"ts\":%lld,\"msg\":%s}", chan,
		 (unsigned long long)seq, epoch, (long long)ts, msg);
}

static int epoch_well_formed(const char *e)
{
	size_t n = strlen(e);

	if (n == 0 || n > ENV_EPOCH_MAX)
		return 0;
	for (size_t i = 0; i < n; i++)
		if (!((e[i] >= '0' && e[i] <= '9') || (e[i] >= 'a' && e[i] <= 'z')))
			return 0;
	return 1;
}

static void sleep_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&t, &t))
		;
}

/* ---- publish: delivery, acknowledgement, exact envelope ---- */

static void test_publish(void)
{
	struct broker_config cfg = { .history = 0, .history_ttl_s = 0 };
	struct recorder r;
	struct done_result d;
	struct env_msg m;
	struct broker *b;
	char want[256];

	memset(&r, 0, sizeof r);
	b = broker_memory_new(&cfg, &events, &r);
	if (!tap_ok(b != NULL, "broker_memory_new returns a broker"))
		return;
	tap_str_eq(b->name, "memory", "the memory broker is named \"memory\"");
	tap_ok(broker_status(b) == NULL, "the memory broker is usable at once (status NULL)");

	broker_subscribe(b, "room");
	publish(b, &r, "room", "\"a\\u0000b\"", 1700000000123LL, &d);
	tap_long_eq(r.messages, 1, "publish delivers one message");
	tap_str_eq(r.chan[0], "room", "the message callback gets the channel");
	tap_ok(r.ud_seen == &r, "the message callback gets the user data");
	tap_long_eq(d.calls, 1, "done runs exactly once, before publish returns");
	tap_ok(d.err == NULL && d.has_pos, "done reports success: err NULL and a position");
	tap_ok(r.message_step == 1 && d.step == 2, "the message is delivered before done runs");
	tap_long_eq((long long)d.pos.seq, 1, "the first message of a channel has seq 1");
	if (!tap_ok(epoch_well_formed(d.pos.epoch), "the epoch is 1 to %d characters of [0-9a-z]",
		    ENV_EPOCH_MAX))
		tap_diag_str("epoch", d.pos.epoch);
	want_env(want, sizeof want, "room", 1, d.pos.epoch, 1700000000123LL, "\"a\\u0000b\"");
	tap_mem_eq(r.env[0], r.len[0], want, strlen(want),
		   "the message callback gets exactly the envelope env_build writes for the position");
	tap_ok(r.messages && env_msg_parse(r.env[0], r.len[0], &m) == 0 && m.seq == 1 && m.epoch &&
		       !strcmp(m.epoch, d.pos.epoch),
	       "the delivered envelope parses back to the position done reported");
	if (r.messages)
		env_msg_free(&m);

	publish(b, &r, "x.y", "{\"k\":[1,2]}", -5, &d);
	tap_ok(r.messages == 2 && !strcmp(r.chan[1], "x.y"), "a second publish reaches its own channel");
	want_env(want, sizeof want, "x.y", 1, d.pos.epoch, -5, "{\"k\":[1,2]}");
	tap_mem_eq(r.env[1], r.len[1], want, strlen(want), "the second envelope is exact too");
	tap_ok(d.calls == 1 && d.err == NULL, "second done runs once with err NULL");

	broker_unsubscribe(b, "room");
	tap_ok(broker_status(b) == NULL, "status stays NULL after unsubscribe");
	broker_free(b);
	recorder_clear(&r);
}

/* ---- positions: seq per channel, epoch per instance ---- */

static void test_seq_per_channel(void)
{
	static const struct {
		const char *chan;
		uint64_t seq;
	} steps[] = {
		{ "a", 1 }, { "a", 2 }, { "b", 1 }, { "a", 3 }, { "b", 2 }, { "c", 1 }, { "a", 4 }, { "c", 2 },
	};
	struct broker_config cfg = { .history = 3, .history_ttl_s = 0 };
	char epoch[ENV_EPOCH_MAX + 1] = "";
	struct recorder r;
	struct broker *b;
	int same_epoch = 1;

	memset(&r, 0, sizeof r);
	b = broker_memory_new(&cfg, &events, &r);
	for (size_t i = 0; i < TAP_ARRAY_LEN(steps); i++) {
		struct done_result d;
		struct env_msg m;

		publish(b, &r, steps[i].chan, "0", 1, &d);
		tap_long_eq((long long)d.pos.seq, (long long)steps[i].seq,
			    "publish %zu to %s gets seq %llu (channels count independently)", i + 1,
			    steps[i].chan, (unsigned long long)steps[i].seq);
		if (!i)
			strcpy(epoch, d.pos.epoch);
		else if (strcmp(epoch, d.pos.epoch))
			same_epoch = 0;
		if (env_msg_parse(r.env[i], r.len[i], &m) == 0) {
			tap_ok(m.seq == steps[i].seq && m.epoch && !strcmp(m.epoch, d.pos.epoch) &&
				       !strcmp(m.chan, steps[i].chan),
			       "publish %zu: the envelope carries the same chan, seq and epoch", i + 1);
			env_msg_free(&m);
		} else
			tap_ok(0, "publish %zu: the envelope parses", i + 1);
	}
	tap_ok(same_epoch, "every channel of one broker shares one epoch");
	broker_free(b);
	recorder_clear(&r);
}

static void test_epoch_per_instance(void)
{
	struct broker_config cfg = { .history = 2, .history_ttl_s = 0 };
	struct recorder r1, r2;
	struct broker *b1, *b2;
	struct done_result d1, d2, d;
	struct hist_result h;

	memset(&r1, 0, sizeof r1);
	memset(&r2, 0, sizeof r2);
	b1 = broker_memory_new(&cfg, &events, &r1);
	publish(b1, &r1, "room", "1", 1, &d1);
	sleep_ms(5); /* a restart is never within the same microsecond */
	b2 = broker_memory_new(&cfg, &events, &r2);
	publish(b2, &r2, "room", "1", 1, &d2);
	if (!tap_ok(strcmp(d1.pos.epoch, d2.pos.epoch) != 0,
		    "two broker instances created at different times have different epochs")) {
		tap_diag_str("first ", d1.pos.epoch);
		tap_diag_str("second", d2.pos.epoch);
	}
	tap_ok(epoch_well_formed(d2.pos.epoch), "the second epoch is well formed too");
	tap_long_eq((long long)d2.pos.seq, 1, "a new instance numbers a channel from 1 again");
	tap_long_eq(r1.messages + r2.messages, 2, "each instance delivers only its own publishes");

	publish(b1, &r1, "room", "2", 1, &d);
	tap_ok(d.pos.seq == 2 && !strcmp(d.pos.epoch, d1.pos.epoch),
	       "the first instance keeps its epoch and counting after the second is made");
	sleep_ms(2);
	publish(b1, &r1, "other", "3", 1, &d);
	tap_str_eq(d.pos.epoch, d1.pos.epoch, "the epoch does not change with time within an instance");

	history(b2, "room", 0, 10, &h);
	tap_ok(h.calls == 1 && !strcmp(h.epoch, d2.pos.epoch) && h.last == 1,
	       "history reports the instance's own epoch");
	hist_clear(&h);
	broker_free(b1);
	broker_free(b2);
	recorder_clear(&r1);
	recorder_clear(&r2);
}

/* ---- history ---- */

#define RING 4
#define RING_PUBS (RING + 5)

/* history of "ring" after RING_PUBS publishes: seqs 6..9 are kept. */
static void check_window(struct broker *b, const struct recorder *r, const char *epoch,
			 const char *what, uint64_t since, size_t limit, uint64_t from, size_t n)
{
	struct hist_result h;

	history(b, "ring", since, limit, &h);
	if (!tap_ok(h.calls == 1 && h.err == NULL && h.has_h, "history %s: one call, no error", what))
		return;
	tap_str_eq(h.epoch, epoch, "history %s: epoch", what);
	tap_ok(h.first == RING_PUBS - RING + 1 && h.last == RING_PUBS,
	       "history %s: first %d, last %d (the query changes nothing)", what, RING_PUBS - RING + 1,
	       RING_PUBS);
	if (!tap_long_eq((long long)h.n, (long long)n, "history %s: %zu envelopes", what, n)) {
		hist_clear(&h);
		return;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = (size_t)(from + i - 1); /* publish k delivered seq k + 1 */
		tap_mem_eq(h.envs[i], h.lens[i], r->env[k], r->len[k],
			   "history %s: envelope %zu is the one delivered with seq %llu", what, i + 1,
			   (unsigned long long)(from + i));
	}
	hist_clear(&h);
}

static void test_history_ring(void)
{
	struct broker_config cfg = { .history = RING };
	char msg[32], want[256];
	struct recorder r;
	struct hist_result h;
	struct done_result d;
	struct broker *b;
	int64_t now = env_now_ms();
	int exact = 1;

	memset(&r, 0, sizeof r);
	b = broker_memory_new(&cfg, &events, &r);
	for (int i = 1; i <= RING_PUBS; i++) {
		snprintf(msg, sizeof msg, "{\"n\":%d}", i);
		publish(b, &r, "ring", msg, now + i, &d);
	}
	tap_ok(d.calls == 1 && d.pos.seq == RING_PUBS, "%d publishes to one channel end at seq %d",
	       RING_PUBS, RING_PUBS);
	publish(b, &r, "side", "\"x\"", now, &d);
	publish(b, &r, "side", "\"y\"", now, &d);

	history(b, "ring", 0, 100, &h);
	tap_ok(h.calls == 1 && h.err == NULL, "history runs its callback once, err NULL");
	tap_str_eq(h.epoch, d.pos.epoch, "history gives the broker's epoch");
	tap_long_eq((long long)h.last, RING_PUBS, "history: last is the newest seq assigned");
	tap_long_eq((long long)h.first, RING_PUBS - RING + 1,
		    "history: first is the oldest kept (only the newest `history` are kept)");
	tap_long_eq((long long)h.n, RING, "history: exactly `history` envelopes are kept");
	for (size_t i = 0; i < h.n && i < RING; i++) {
		int seq = RING_PUBS - RING + 1 + (int)i;
		snprintf(msg, sizeof msg, "{\"n\":%d}", seq);
		want_env(want, sizeof want, "ring", (uint64_t)seq, d.pos.epoch, now + seq, msg);
		if (!tap_mem_eq(h.envs[i], h.lens[i], want, strlen(want),
				"history envelope %zu is exactly seq %d, oldest first", i + 1, seq))
			exact = 0;
	}
	if (exact)
		tap_ok(1, "history envelopes are byte for byte those env_build writes");
	hist_clear(&h);

	history(b, "side", 0, 100, &h);
	tap_ok(h.first == 1 && h.last == 2 && h.n == 2, "another channel has its own ring (first 1, last 2, 2 kept)");
	want_env(want, sizeof want, "side", 1, d.pos.epoch, now, "\"x\"");
	tap_mem_eq(h.n ? h.envs[0] : NULL, h.n ? h.lens[0] : 0, want, strlen(want),
		   "the other channel's oldest envelope is its seq 1");
	hist_clear(&h);

	/* first = 6, last = 9 */
	check_window(b, &r, d.pos.epoch, "since 0 (before first)", 0, 100, 6, RING);
	check_window(b, &r, d.pos.epoch, "since 3 (before first, already dropped)", 3, 100, 6, RING);
	check_window(b, &r, d.pos.epoch, "since first - 1", 5, 100, 6, RING);
	check_window(b, &r, d.pos.epoch, "since first", 6, 100, 7, 3);
	check_window(b, &r, d.pos.epoch, "since 7 (inside)", 7, 100, 8, 2);
	check_window(b, &r, d.pos.epoch, "since last - 1", 8, 100, 9, 1);
	check_window(b, &r, d.pos.epoch, "since last", 9, 100, 0, 0);
	check_window(b, &r, d.pos.epoch, "since 100 (beyond last)", 100, 100, 0, 0);
	check_window(b, &r, d.pos.epoch, "since UINT64_MAX", UINT64_MAX, 100, 0, 0);
	check_window(b, &r, d.pos.epoch, "limit 1 since 0 (the oldest)", 0, 1, 6, 1);
	check_window(b, &r, d.pos.epoch, "limit 1 since 7", 7, 1, 8, 1);
	check_window(b, &r, d.pos.epoch, "limit 2 since 0", 0, 2, 6, 2);
	check_window(b, &r, d.pos.epoch, "limit exactly the count", 0, RING, 6, RING);
	check_window(b, &r, d.pos.epoch, "limit 0", 0, 0, 0, 0);
	check_window(b, &r, d.pos.epoch, "limit SIZE_MAX", 0, SIZE_MAX, 6, RING);

	/* The ring keeps turning: one more publish drops seq 6. */
	publish(b, &r, "ring", "10", now, &d);
	history(b, "ring", 0, 100, &h);
	tap_ok(h.first == 7 && h.last == 10 && h.n == RING && h.n &&
		       !memcmp(h.envs[RING - 1], r.env[r.messages - 1], r.len[r.messages - 1]),
	       "one more publish drops the oldest: first 7, last 10, newest at the end");
	hist_clear(&h);

	broker_free(b); /* with full rings: valgrind/ASan see every envelope freed */
	recorder_clear(&r);
}

/* done means stored: history asked from inside done already has the message. */
struct reentry {
	struct broker *b;
	struct hist_result h;
	struct done_result d;
};

static void on_done_then_history(void *arg, const char *err, const struct broker_pos *pos)
{
	struct reentry *re = arg;

	on_done(&re->d, err, pos);
	if (pos)
		history(re->b, "re", pos->seq - 1, 10, &re->h);
}

static void test_history_in_done(void)
{
	struct broker_config cfg = { .history = 5, .history_ttl_s = 0 };
	struct recorder r;
	struct reentry re;
	struct env_pub p;

	memset(&r, 0, sizeof r);
	memset(&re, 0, sizeof re);
	re.b = broker_memory_new(&cfg, &events, &r);
	re.d.r = &r;
	memset(&p, 0, sizeof p);
	strcpy(p.chan, "re");
	p.msg = (char *)"1";
	p.msg_len = 1;
	broker_publish(re.b, &p, 1, on_done, &re.d);
	broker_publish(re.b, &p, 2, on_done_then_history, &re);
	tap_ok(re.h.calls == 1 && re.h.last == 2 && re.h.n == 1 && r.messages == 2 &&
		       !memcmp(re.h.envs[0], r.env[1], r.len[1]),
	       "history asked from inside done already holds the acknowledged message");
	hist_clear(&re.h);
	broker_free(re.b);
	recorder_clear(&r);
}

static void test_history_off(void)
{
	struct broker_config cfg = { .history = 0, .history_ttl_s = 0 };
	struct recorder r;
	struct hist_result h;
	struct done_result d;
	struct broker *b;
	char want[256];

	memset(&r, 0, sizeof r);
	b = broker_memory_new(&cfg, &events, &r);
	tap_long_eq((long long)publish_seq(b, &r, "c", "1", 1), 1, "history 0: the first message still gets seq 1");
	tap_long_eq((long long)publish_seq(b, &r, "c", "2", 2), 2, "history 0: the second gets seq 2");
	publish(b, &r, "c", "3", 3, &d);
	tap_long_eq((long long)d.pos.seq, 3, "history 0: the third gets seq 3");
	want_env(want, sizeof want, "c", 3, d.pos.epoch, 3, "3");
	tap_ok(r.messages == 3, "history 0: every message is still delivered");
	tap_mem_eq(r.env[2], r.len[2], want, strlen(want), "history 0: the delivered envelope is exact");

	history(b, "c", 0, 10, &h);
	tap_ok(h.calls == 1 && h.err == NULL, "history 0: history answers without error");
	tap_str_eq(h.epoch, d.pos.epoch, "history 0: a channel that has messages reports the epoch");
	tap_long_eq((long long)h.last, 3, "history 0: last is the newest seq");
	tap_long_eq((long long)h.first, 4, "history 0: nothing kept, first == last + 1");
	tap_long_eq((long long)h.n, 0, "history 0: no envelopes");
	hist_clear(&h);
	broker_free(b);
	recorder_clear(&r);
}

static void test_history_unknown(void)
{
	struct broker_config cfg = { .history = 5, .history_ttl_s = 0 };
	struct recorder r;
	struct hist_result h;
	struct broker *b;

	memset(&r, 0, sizeof r);
	b = broker_memory_new(&cfg, &events, &r);
	history(b, "never", 0, 10, &h);
	tap_ok(h.calls == 1 && h.err == NULL && h.has_h, "unknown channel on a new broker: answered, no error");
	tap_ok(!strcmp(h.epoch, "") && h.first == 1 && h.last == 0 && h.n == 0,
	       "unknown channel on a new broker: epoch \"\", first 1, last 0, n 0");
	hist_clear(&h);

	publish_seq(b, &r, "other", "1", 1);
	history(b, "never", 5, 10, &h);
	tap_str_eq(h.epoch, "", "unknown channel: epoch stays \"\" while other channels have messages");
	tap_ok(h.first == 1 && h.last == 0 && h.n == 0, "unknown channel: first 1, last 0, n 0 for any since");
	hist_clear(&h);

	broker_subscribe(b, "never");
	history(b, "never", 0, 10, &h);
	tap_ok(!strcmp(h.epoch, "") && h.last == 0, "subscribing does not give a channel a position");
	hist_clear(&h);
	tap_long_eq((long long)publish_seq(b, &r, "never", "1", 1), 1,
		    "asking for history does not use up a seq: the first publish is still 1");
	broker_free(b);
	recorder_clear(&r);
}

static void test_history_ttl(void)
{
	struct broker_config cfg = { .history = 10, .history_ttl_s = 5 };
	struct recorder r;
	struct hist_result h;
	struct done_result d;
	struct broker *b;
	int64_t now = env_now_ms();

	memset(&r, 0, sizeof r);
	b = broker_memory_new(&cfg, &events, &r);

	publish(b, &r, "old", "1", now - 10000, &d);
	tap_ok(d.calls == 1 && d.err == NULL && d.pos.seq == 1,
	       "ttl 5 s: a message stamped 10 s ago is still acknowledged with seq 1");
	tap_long_eq(r.messages, 1, "ttl 5 s: and still delivered live");
	history(b, "old", 0, 10, &h);
	tap_ok(h.calls == 1 && h.err == NULL, "ttl 5 s: history answers");
	tap_long_eq((long long)h.n, 0, "ttl 5 s: the 10 s old message is not returned");
	tap_ok(h.last == 1 && h.first == 2, "ttl 5 s: last 1, first 2 (nothing kept)");
	tap_str_eq(h.epoch, d.pos.epoch, "ttl 5 s: the channel keeps its epoch");
	hist_clear(&h);

	publish(b, &r, "mixed", "1", now - 10000, &d);
	publish(b, &r, "mixed", "2", now - 4000, &d);
	publish(b, &r, "mixed", "3", now, &d);
	history(b, "mixed", 0, 10, &h);
	tap_ok(h.n == 2 && h.first == 2 && h.last == 3,
	       "ttl 5 s: of 10 s, 4 s and 0 s old, the two younger are kept (first 2, last 3)");
	if (h.n == 2) {
		tap_mem_eq(h.envs[0], h.lens[0], r.env[2], r.len[2], "ttl 5 s: the 4 s old envelope is exact");
		tap_mem_eq(h.envs[1], h.lens[1], r.env[3], r.len[3], "ttl 5 s: the newest envelope is exact");
	}
	hist_clear(&h);
	tap_long_eq((long long)publish_seq(b, &r, "mixed", "4", now), 4,
		    "ttl 5 s: expiry does not reset the seq");
	broker_free(b);
	recorder_clear(&r);

	/* ttl 0: no age limit, even for a message stamped at the Unix epoch. */
	cfg.history_ttl_s = 0;
	b = broker_memory_new(&cfg, &events, &r);
	publish(b, &r, "ancient", "1", 0, &d);
	history(b, "ancient", 0, 10, &h);
	tap_ok(h.n == 1 && h.first == 1 && h.last == 1, "ttl 0: a message stamped ts 0 is kept");
	hist_clear(&h);
	broker_free(b);
	recorder_clear(&r);
}

static int ready_calls;
static char ready_chan[CHAN_MAX + 1];

static void on_ready(void *ud, const char *chan, int ready)
{
	(void)ud;
	ready_calls += ready ? 1 : 0;
	snprintf(ready_chan, sizeof ready_chan, "%s", chan);
}

/* The memory broker delivers every publish at once: a subscription is ready as soon as
 * it is asked for, inside broker_subscribe. */
static void test_ready(void)
{
	static const struct broker_events ev = { .message = on_message, .ready = on_ready };
	struct broker_config cfg = { .history = 4 };
	struct broker *b = broker_memory_new(&cfg, &ev, NULL);

	if (!tap_ok(b != NULL, "ready: broker created"))
		return;
	broker_subscribe(b, "live");
	tap_ok(ready_calls == 1 && !strcmp(ready_chan, "live"),
	       "ready: subscribe reports the channel ready at once");
	broker_unsubscribe(b, "live");
	tap_ok(ready_calls == 1, "ready: unsubscribe reports nothing");
	broker_free(b);
}

/* ---- idempotency keys ---- */

static void publish_key(struct broker *b, struct recorder *r, const char *chan, const char *msg,
			const char *key, struct done_result *d)
{
	struct env_pub p;

	memset(&p, 0, sizeof p);
	snprintf(p.chan, sizeof p.chan, "%s", chan);
	snprintf(p.key, sizeof p.key, "%s", key);
	p.msg = (char *)msg;
	p.msg_len = strlen(msg);
	memset(d, 0, sizeof *d);
	d->r = r;
	broker_publish(b, &p, env_now_ms(), on_done, d);
}

static void test_keys(void)
{
	struct broker_config cfg = { .history = 4, .key_window_s = 60 };
	struct recorder r;
	struct done_result d, first;
	struct broker *b;

	memset(&r, 0, sizeof r);
	b = broker_memory_new(&cfg, &events, &r);
	if (!tap_ok(b != NULL, "keys: broker created"))
		return;
	publish_key(b, &r, "k", "1", "a", &first);
	tap_ok(first.err == NULL && first.pos.seq == 1 && !first.pos.duplicate,
	       "keys: a new key publishes at the next seq");
	publish_key(b, &r, "k", "1", "a", &d);
	tap_ok(d.err == NULL && d.has_pos && d.pos.duplicate && d.pos.seq == 1 &&
		       d.pos.ts == first.pos.ts && !strcmp(d.pos.epoch, first.pos.epoch),
	       "keys: a repeat is answered with the original position and ts, marked duplicate");
	tap_long_eq(r.messages, 1, "keys: a repeat is not delivered again");
	publish_key(b, &r, "k", "2", "a", &d);
	tap_ok(d.err && strstr(d.err, "different message") && d.has_pos && d.pos.seq == 1,
	       "keys: the same key for another message is refused with the original position");
	tap_long_eq(r.messages, 1, "keys: the refused message is not delivered");
	publish_key(b, &r, "other", "1", "a", &d);
	tap_ok(d.err == NULL && !d.pos.duplicate && r.messages == 2, "keys: keys are per channel");
	publish_key(b, &r, "k", "1", "", &d);
	tap_ok(d.err == NULL && !d.pos.duplicate && d.pos.seq == 2, "keys: no key, no check");
	broker_free(b);
	recorder_clear(&r);

	cfg.key_window_s = 0;
	b = broker_memory_new(&cfg, &events, &r);
	publish_key(b, &r, "k", "1", "a", &d);
	publish_key(b, &r, "k", "1", "a", &d);
	tap_ok(d.err == NULL && !d.pos.duplicate && d.pos.seq == 2 && r.messages == 2,
	       "keys: a window of 0 ignores keys");
	broker_free(b);
	recorder_clear(&r);
}

int main(void)
{
	test_publish();
	test_seq_per_channel();
	test_epoch_per_instance();
	test_history_ring();
	test_history_in_done();
	test_history_off();
	test_history_unknown();
	test_history_ttl();
	test_ready();
	test_keys();
	return tap_done();
}
