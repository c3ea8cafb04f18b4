/* broker.h: how a chatd node reaches every other node.
 *
 * One interface, two backends chosen at start-up: an in-memory broker (this process is the
 * whole chat) and a Redis broker (every node on one Redis is one chat). The server never
 * knows which one it talks to. Envelopes pass through as opaque bytes. */
#ifndef CHAT_BROKER_H
#define CHAT_BROKER_H

#include <stddef.h>

struct broker;
struct redis_url;
struct uv_loop_s;

struct broker_events {
	/* An envelope for chan arrived. Both pointers are valid only during the call. */
	void (*message)(void *ud, const char *chan, const char *env, size_t len);
	/* The broker became usable (up = 1) or stopped being usable (up = 0, why says why). */
	void (*state)(void *ud, int up, const char *why);
};

/* Runs exactly once per publish: err is NULL when the broker took the message, else a
 * reason for the user. It may run before broker_publish returns. */
typedef void broker_done_fn(void *arg, const char *err);

struct broker_ops {
	void (*publish)(struct broker *b, const char *chan, const char *env, size_t len,
			broker_done_fn *done, void *arg);
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

struct broker *broker_memory_new(const struct broker_events *ev, void *ud);
/* Starts connecting at once; state() reports when it is usable. NULL on error. */
struct broker *broker_redis_new(struct uv_loop_s *loop, const struct redis_url *url,
				const struct broker_events *ev, void *ud);

static inline void broker_publish(struct broker *b, const char *chan, const char *env,
				  size_t len, broker_done_fn *done, void *arg)
{
	b->ops->publish(b, chan, env, len, done, arg);
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
