/* broker_memory.c: the embedded broker. This process is the whole chat, so a publish is
 * delivered at once, before its done() runs: acknowledged means delivered to every
 * local subscriber's queue. */
#include <stdlib.h>
#include <string.h>

#include "broker.h"

static void mem_publish(struct broker *b, const char *chan, const char *env, size_t len,
			broker_done_fn *done, void *arg)
{
	b->ev->message(b->ud, chan, env, len);
	done(arg, NULL);
}

static void mem_subscribe(struct broker *b, const char *chan)
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
	free(b);
}

static const struct broker_ops mem_ops = {
	.publish = mem_publish,
	.subscribe = mem_subscribe,
	.unsubscribe = mem_subscribe,
	.status = mem_status,
	.free = mem_free,
};

struct broker *broker_memory_new(const struct broker_events *ev, void *ud)
{
	struct broker *b = calloc(1, sizeof *b);

	if (!b)
		return NULL;
	b->ops = &mem_ops;
	b->ev = ev;
	b->ud = ud;
	strcpy(b->name, "memory");
	return b;
}
