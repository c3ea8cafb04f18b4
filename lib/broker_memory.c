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
	struct strmap keys;     /* idempotency key -> struct mem_key */
};

/* An idempotency key and what it published. Keys live for one window, so they expire
 * in the order they came: one FIFO for the whole broker. */
struct mem_key {
	struct mem_key *next;
	struct mem_chan *chan;
	uint64_t seq, hash;
	int64_t ts, expires;
	char name[];
};

struct mem_broker {
	struct broker base;
	struct broker_config cfg;
	struct strmap chans; /* name -> struct mem_chan */
	struct mem_key *keys, **keys_tail;
	char epoch[ENV_EPOCH_MAX + 1];
};

static uint64_t mem_hash(const char *s, size_t len) /* FNV-1a */
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (size_t i = 0; i < len; i++)
		h = (h ^ (unsigned char)s[i]) * 0x100000001b3ULL;
	return h;
}

/* Forget the keys whose window has passed, so every key left in a map is live. */
static void mem_keys_expire(struct mem_broker *mb, int64_t now_ms)
{
	struct mem_key *k;

	while ((k = mb->keys) && k->expires <= now_ms) {
		strmap_del(&k->chan->keys, k->name);
		mb->keys = k->next;
		free(k);
	}
	if (!mb->keys)
		mb->keys_tail = &mb->keys;
}

/* Remember pub's key for the message just put at seq. Out of memory only loses the
 * protection against a repeat, never the message. */
/* A key belongs to its publisher: "SENDER KEY" (a key has no spaces, so the last space
 * splits it), or the key alone when nobody is named. */
static void mem_key_name(const struct env_pub *pub, char out[ENV_SENDER_MAX + ENV_KEY_MAX + 2])
{
	snprintf(out, ENV_SENDER_MAX + ENV_KEY_MAX + 2, "%s%s%s", pub->sender,
		 pub->sender[0] ? " " : "", pub->key);
}

static void mem_key_add(struct mem_broker *mb, struct mem_chan *c, const struct env_pub *pub,
			uint64_t seq, int64_t ts)
{
	char name[ENV_SENDER_MAX + ENV_KEY_MAX + 2];
	size_t n;
	struct mem_key *k;

	mem_key_name(pub, name);
	n = strlen(name) + 1;
	if (!(k = malloc(sizeof *k + n)))
		return;
	memcpy(k->name, name, n);
	k->next = NULL;
	k->chan = c;
	k->seq = seq;
	k->hash = mem_hash(pub->msg, pub->msg_len);
	k->ts = ts;
	k->expires = ts + (int64_t)mb->cfg.key_window_s * 1000;
	if (strmap_put(&c->keys, k->name, k)) {
		free(k);
		return;
	}
	*mb->keys_tail = k;
	mb->keys_tail = &k->next;
}

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
	struct broker_pos pos = { .ts = ts };
	struct mem_key *k;
	size_t len;
	char *env;

	strcpy(pos.epoch, mb->epoch);
	if (c && pub->key[0] && mb->cfg.key_window_s) {
		char name[ENV_SENDER_MAX + ENV_KEY_MAX + 2];
		mem_key_name(pub, name);
		mem_keys_expire(mb, env_now_ms());
		if ((k = strmap_get(&c->keys, name))) {
			pos.seq = k->seq;
			pos.ts = k->ts;
			pos.duplicate = 1;
			if (k->hash == mem_hash(pub->msg, pub->msg_len))
				done(arg, NULL, &pos);
			else
				done(arg, "this idempotency key was already used for a different message", &pos);
			return;
		}
	}
	if (!c || !(env = env_build(pub, c->seq + 1, mb->epoch, ts, 0, &len))) {
		done(arg, "out of memory", NULL);
		return;
	}
	pos.seq = ++c->seq;
	if (pub->key[0] && mb->cfg.key_window_s)
		mem_key_add(mb, c, pub, pos.seq, ts);
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
		strmap_free(&c->keys);
		free(c);
	}
	strmap_free(&mb->chans);
	for (struct mem_key *k = mb->keys, *next; k; k = next) {
		next = k->next;
		free(k);
	}
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
	mb->keys_tail = &mb->keys;
	strcpy(mb->base.name, "memory");
	/* Distinct per process start: microseconds and pid, in hex. */
	clock_gettime(CLOCK_REALTIME, &now);
	snprintf(mb->epoch, sizeof mb->epoch, "m%llx%x",
		 (unsigned long long)now.tv_sec * 1000000ULL + (unsigned long long)now.tv_nsec / 1000,
		 (unsigned)getpid());
	return &mb->base;
}
