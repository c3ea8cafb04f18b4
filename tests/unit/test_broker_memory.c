/* test_broker_memory.c: the embedded broker delivers a publish to the message callback,
 * byte for byte, before done() acknowledges it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "broker.h"
#include "tap.h"

struct recorder {
	int step;
	int message_step, done_step, messages, dones;
	char chan[64];
	char *env;
	size_t len;
	const char *done_err;
	void *done_arg;
	void *ud_seen;
};

static void on_message(void *ud, const char *chan, const char *env, size_t len)
{
	struct recorder *r = ud;

	r->ud_seen = ud;
	r->messages++;
	r->message_step = ++r->step;
	snprintf(r->chan, sizeof r->chan, "%s", chan);
	free(r->env);
	r->env = malloc(len ? len : 1);
	memcpy(r->env, env, len);
	r->len = len;
}

static void on_state(void *ud, int up, const char *why)
{
	/* Not asserted: when (or whether) the memory broker reports "up" is its own business. */
}

static struct recorder *done_rec;

static void on_done(void *arg, const char *err)
{
	done_rec->dones++;
	done_rec->done_step = ++done_rec->step;
	done_rec->done_err = err;
	done_rec->done_arg = arg;
}

static const struct broker_events events = { on_message, on_state };

int main(void)
{
	struct recorder r;
	struct broker *b;
	int token;

	memset(&r, 0, sizeof r);
	done_rec = &r;
	b = broker_memory_new(&events, &r);
	if (!tap_ok(b != NULL, "broker_memory_new returns a broker"))
		return tap_done();
	tap_str_eq(b->name, "memory", "the memory broker is named \"memory\"");
	tap_ok(broker_status(b) == NULL, "the memory broker is usable at once (status NULL)");

	broker_subscribe(b, "room");

	static const char env[] = "{\"chan\":\"room\",\"ts\":1,\"msg\":\"a\\u0000b\"}";
	broker_publish(b, "room", env, sizeof env - 1, on_done, &token);
	tap_long_eq(r.messages, 1, "publish delivers one message");
	tap_str_eq(r.chan, "room", "the message callback gets the channel");
	tap_mem_eq(r.env, r.len, env, sizeof env - 1, "the message callback gets the exact envelope bytes");
	tap_ok(r.ud_seen == &r, "the message callback gets the user data");
	tap_long_eq(r.dones, 1, "done runs exactly once, before publish returns");
	tap_ok(r.done_err == NULL, "done reports success (err NULL)");
	tap_ok(r.done_arg == &token, "done gets the publish argument");
	tap_ok(r.message_step == 1 && r.done_step == 2, "the message is delivered before done runs");

	/* Bytes are opaque: embedded NULs and a length shorter than the buffer are honoured. */
	static const char raw[] = "ab\0cd\xff tail";
	broker_publish(b, "x.y", raw, 6, on_done, NULL);
	tap_mem_eq(r.env, r.len, raw, 6, "publish passes binary bytes through by length");
	tap_str_eq(r.chan, "x.y", "a second publish reaches its own channel");
	tap_ok(r.dones == 2 && r.done_err == NULL && r.done_arg == NULL, "second done runs once with err NULL");

	broker_publish(b, "room", "", 0, on_done, &token);
	tap_ok(r.messages == 3 && r.len == 0 && r.dones == 3, "an empty envelope is delivered and acknowledged");

	broker_unsubscribe(b, "room");
	tap_ok(broker_status(b) == NULL, "status stays NULL after unsubscribe");

	broker_free(b);
	free(r.env);
	return tap_done();
}
