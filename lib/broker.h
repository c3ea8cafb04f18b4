/* broker.h: how a chatd node reaches every other node, and where messages are kept.
 *
 * One interface, two backends chosen at start-up: an in-memory broker (this process is the
 * whole chat) and a Redis broker (every node on one Redis is one chat). The server never
 * knows which one it talks to.
 *
 * The broker gives each message its position: a per-channel sequence number that grows
 * by exactly one per message, and the channel's epoch, which changes whenever the
 * channel's history was lost (Redis flushed, keys expired, memory broker restarted). It
 * serialises the envelope once, keeps the newest ones as history, and hands the same
 * bytes to every node. */
#ifndef CHAT_BROKER_H
#define CHAT_BROKER_H

#include <stddef.h>
#include <stdint.h>

#include "envelope.h"

struct broker;
struct redis_url;
struct uv_loop_s;

struct broker_events {
	/* An envelope for chan arrived. Both pointers are valid only during the call. */
	void (*message)(void *ud, const char *chan, const char *env, size_t len);
	/* The broker became usable (up = 1) or stopped being usable (up = 0, why says why). */
	void (*state)(void *ud, int up, const char *why);
	/* chan's messages now reach message() (ready = 1: subscribed), or no longer do
	 * (ready = 0: the subscription was lost; a later 1 means messages in between may be
	 * missing and must be read from history). May run inside broker_subscribe. */
	void (*ready)(void *ud, const char *chan, int ready);
};

/* Where a message was put, and when (its envelope's ts). duplicate: the publish carried
 * an idempotency key already used for the same message within the key window, so
 * nothing was published and this is the original's position. */
struct broker_pos {
	uint64_t seq;
	char epoch[ENV_EPOCH_MAX + 1];
	int64_t ts;
	int duplicate;
};

/* Runs exactly once per publish: err is NULL and pos set when the broker took (and, with
 * history on, stored) the message, or answers a duplicate. Else err is a reason for the
 * user, and pos says which kind of refusal it is: NULL when the message was not taken
 * (the broker is unavailable; a retry may succeed), or the original's position when the
 * idempotency key was already used for a different message (a retry never succeeds).
 * It may run before broker_publish returns. */
typedef void broker_done_fn(void *arg, const char *err, const struct broker_pos *pos);

/* A channel's stored messages after a position, oldest first. first is the oldest seq
 * still stored and last the newest seq ever assigned in this epoch (0: none yet); envs
 * hold up to the limit asked for. */
struct broker_history {
	const char *epoch;
	uint64_t first, last;
	size_t n;
	const char *const *envs;
	const size_t *lens;
};

/* Runs exactly once: err NULL and h set, or err. h is valid only during the call. */
typedef void broker_history_fn(void *arg, const char *err, const struct broker_history *h);

/* History kept per channel: the newest `count` messages (0: none), none older than
 * `ttl_s` seconds (0: no age limit). Idempotency keys are remembered for key_window_s
 * seconds. replicas (Redis only): a publish is acknowledged once that many replicas
 * have it (WAIT), 0 for as soon as the master has it. */
struct broker_config {
	size_t history;
	unsigned history_ttl_s;
	unsigned key_window_s;
	unsigned replicas;
	/* Redis only: find the master through these sentinels ("host:port,..."), under this
	 * master name; the URL then only gives credentials and the database. NULL: none. */
	const char *sentinels, *sentinel_master;
};

struct broker_ops {
	void (*publish)(struct broker *b, const struct env_pub *pub, int64_t ts,
			broker_done_fn *done, void *arg);
	void (*history)(struct broker *b, const char *chan, uint64_t since, size_t limit,
			broker_history_fn *cb, void *arg);
	void (*subscribe)(struct broker *b, const char *chan);
	void (*unsubscribe)(struct broker *b, const char *chan);
	const char *(*status)(struct broker *b);
	void (*free)(struct broker *b);
};

struct broker {
	const struct broker_ops *ops;
	const struct broker_events *ev;
	void *ud;
	char name[128]; /* for logs and /healthz: "memory", "redis 127.0.0.1:6379" */
};

struct broker *broker_memory_new(const struct broker_config *cfg,
				 const struct broker_events *ev, void *ud);
/* Starts connecting at once; state() reports when it is usable. NULL on error. */
struct broker *broker_redis_new(struct uv_loop_s *loop, const struct redis_url *url,
				const struct broker_config *cfg, const struct broker_events *ev,
				void *ud);

/* Publish pub, stamped with ts (ms since the epoch), at the channel's next position. */
static inline void broker_publish(struct broker *b, const struct env_pub *pub, int64_t ts,
				  broker_done_fn *done, void *arg)
{
	b->ops->publish(b, pub, ts, done, arg);
}

/* Up to limit stored messages of chan with seq > since. */
static inline void broker_history(struct broker *b, const char *chan, uint64_t since,
				  size_t limit, broker_history_fn *cb, void *arg)
{
	b->ops->history(b, chan, since, limit, cb, arg);
}

/* Called by the server when a channel gains its first local subscriber, and when it loses
 * its last; the broker only carries messages for subscribed channels. */
static inline void broker_subscribe(struct broker *b, const char *chan)
{
	b->ops->subscribe(b, chan);
}

static inline void broker_unsubscribe(struct broker *b, const char *chan)
{
	b->ops->unsubscribe(b, chan);
}

/* NULL when usable, else why not. */
static inline const char *broker_status(struct broker *b)
{
	return b->ops->status(b);
}

/* Frees now or, for backends with loop handles, once the loop has run their closes. */
static inline void broker_free(struct broker *b)
{
	b->ops->free(b);
}

#endif
