/* broker_memory.c: the embedded broker. This process is the whole chat, so a publish is
 * delivered at once, before its done() runs: acknowledged means stored in this process's
 * history and queued for every local subscriber.
 *
 * Each channel that was ever published to keeps its sequence counter and a ring of its
 * newest envelopes. The epoch is made once per process: a restart loses the history, and
 * the new epoch tells clients so. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "broker.h"
#include "strmap.h"

struct mem_entry {
	char *env;
	size_t len;
	int64_t ts;
};

struct mem_chan {
	uint64_t seq;           /* last assigned */
	struct mem_entry *ring; /* history: count entries from head, in a ring of cap */
	size_t head, count, cap;
};

struct mem_broker {
	struct broker base;
	struct broker_config cfg;
	struct strmap chans; /* name -> struct mem_chan */
	char epoch[ENV_EPOCH_MAX + 1];
};

static struct mem_chan *mem_chan_get(struct mem_broker *mb, const char *name)
{
	struct mem_chan *c = strmap_get(&mb->chans, name);

	if (c)
		return c;
	c = calloc(1, sizeof *c);
	if (!c || strmap_put(&mb->chans, name, c)) {
		free(c);
		return NULL;
	}
	return c;
}

/* Make room for one more entry. The ring grows by doubling up to --history, so a channel
 * costs what it stores, not --history slots from its first message. */
static int mem_ring_room(struct mem_broker *mb, struct mem_chan *c)
{
	size_t ncap;
	struct mem_entry *nr;

	if (c->count == mb->cfg.history) { /* full: the oldest makes room */
		free(c->ring[c->head].env);
		c->head = (c->head + 1) % c->cap;
		c->count--;
		return 0;
	}
	if (c->count < c->cap)
		return 0;
	ncap = c->cap ? 2 * c->cap : 4;
	if (ncap > mb->cfg.history)
		ncap = mb->cfg.history;
	nr = malloc(ncap * sizeof *nr);
	if (!nr)
		return -1;
	for (size_t i = 0; i < c->count; i++)
		nr[i] = c->ring[(c->head + i) % c->cap];
	free(c->ring);
	c->ring = nr;
	c->cap = ncap;
	c->head = 0;
	return 0;
}

/* Drop entries older than the age limit, oldest first. */
static void mem_expire(struct mem_broker *mb, struct mem_chan *c, int64_t now_ms)
{
	int64_t oldest = now_ms - (int64_t)mb->cfg.history_ttl_s * 1000;

	while (mb->cfg.history_ttl_s && c->count && c->ring[c->head].ts < oldest) {
		free(c->ring[c->head].env);
		c->head = (c->head + 1) % c->cap;
		c->count--;
	}
}

static void mem_publish(struct broker *b, const struct env_pub *pub, int64_t ts,
			broker_done_fn *done, void *arg)
{
	struct mem_broker *mb = (struct mem_broker *)b;
	struct mem_chan *c = mem_chan_get(mb, pub->chan);
	struct broker_pos pos;
	size_t len;
	char *env;

	if (!c || !(env = env_build(pub, c->seq + 1, mb->epoch, ts, 0, &len))) {
		done(arg, "out of memory", NULL);
		return;
	}
	pos.seq = ++c->seq;
	strcpy(pos.epoch, mb->epoch);
	int stored = mb->cfg.history && !mem_ring_room(mb, c);

	if (stored) {
		struct mem_entry *e = &c->ring[(c->head + c->count++) % c->cap];
		e->env = env;
		e->len = len;
		e->ts = ts;
	}
	b->ev->message(b->ud, pub->chan, env, len);
	if (!stored)
		free(env);
	done(arg, NULL, &pos);
}

static void mem_history(struct broker *b, const char *chan, uint64_t since, size_t limit,
			broker_history_fn *cb, void *arg)
{
	struct mem_broker *mb = (struct mem_broker *)b;
	struct mem_chan *c = strmap_get(&mb->chans, chan);
	struct broker_history h = { .epoch = "", .first = 1 }; /* no messages yet: no epoch */
	const char **envs = NULL;
	size_t *lens = NULL, skip;
	struct timespec now;

	if (c) {
		h.epoch = mb->epoch;
		clock_gettime(CLOCK_REALTIME, &now);
		mem_expire(mb, c, (int64_t)now.tv_sec * 1000 + now.tv_nsec / 1000000);
		h.last = c->seq;
		h.first = c->seq - c->count + 1;
		skip = since >= h.first ? (size_t)(since - h.first + 1) : 0;
		if (skip > c->count)
			skip = c->count;
		h.n = c->count - skip < limit ? c->count - skip : limit;
		envs = malloc((h.n + 1) * sizeof *envs);
		lens = malloc((h.n + 1) * sizeof *lens);
		if (!envs || !lens) {
			free(envs);
			free(lens);
			cb(arg, "out of memory", NULL);
			return;
		}
		for (size_t i = 0; i < h.n; i++) {
			const struct mem_entry *e = &c->ring[(c->head + skip + i) % c->cap];
			envs[i] = e->env;
			lens[i] = e->len;
		}
	}
	h.envs = envs;
	h.lens = lens;
	cb(arg, NULL, &h);
	free(envs);
	free(lens);
}

static void mem_subscribe(struct broker *b, const char *chan)
{
	if (b->ev->ready)
		b->ev->ready(b->ud, chan, 1); /* every publish is delivered at once */
}

static void mem_unsubscribe(struct broker *b, const char *chan)
{
	(void)b;
	(void)chan;
}

static const char *mem_status(struct broker *b)
{
	(void)b;
	return NULL;
}

static void mem_free(struct broker *b)
{
	struct mem_broker *mb = (struct mem_broker *)b;
	const char *name;
	void *v;

	for (size_t i = 0; (i = strmap_next(&mb->chans, i, &name, &v));) {
		struct mem_chan *c = v;
		for (size_t k = 0; k < c->count; k++)
			free(c->ring[(c->head + k) % c->cap].env);
		free(c->ring);
		free(c);
	}
	strmap_free(&mb->chans);
	free(mb);
}

static const struct broker_ops mem_ops = {
	.publish = mem_publish,
	.history = mem_history,
	.subscribe = mem_subscribe,
	.unsubscribe = mem_unsubscribe,
	.status = mem_status,
	.free = mem_free,
};

struct broker *broker_memory_new(const struct broker_config *cfg,
				 const struct broker_events *ev, void *ud)
{
	struct mem_broker *mb = calloc(1, sizeof *mb);
	struct timespec now;

	if (!mb)
		return NULL;
	mb->base.ops = &mem_ops;
	mb->base.ev = ev;
	mb->base.ud = ud;
	mb->cfg = *cfg;
	strcpy(mb->base.name, "memory");
	/* Distinct per process start: microseconds and pid, in hex. */
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(mb->epoch, sizeof mb->epoch, "m%llx%x",
		 (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000,
		 (unsigned)getpid());
	return &mb->base;
}
