/* hub.h: local fan-out. Channels with subscribers on this node, and the messages queued
 * for them. Each message is serialised and framed once and shared by reference among
 * all of its subscribers' queues. */
#ifndef CHATD_HUB_H
#define CHATD_HUB_H

#include <libwebsockets.h>
#include <stddef.h>

#include "broker.h"
#include "envelope.h"

struct server;
struct ws_sess;
struct hub_chan;

/* One message as it goes out: LWS_PRE spare bytes, then the payload. */
struct hub_msg {
	unsigned refs;
	uint64_t seq; /* 0 for control frames */
	char epoch[ENV_EPOCH_MAX + 1];
	size_t len;
	unsigned char data[]; /* payload at data + LWS_PRE */
};

/* One subscription of one session to one channel; lives in the session. */
struct hub_sub {
	struct ws_sess *sess;
	struct hub_chan *chan;
	unsigned idx; /* position in chan's subscriber array */
};

/* A new message holding one reference, the caller's: hand it out, then unref it. */
struct hub_msg *hub_msg_new(const char *payload, size_t len);
static inline unsigned char *hub_msg_payload(struct hub_msg *m)
{
	return m->data + LWS_PRE;
}
void hub_msg_unref(struct hub_msg *m);

/* Subscribe sess to name; the broker is told when the channel gains its first local
 * subscriber. Returns 0 or -1 (out of memory). */
int hub_join(struct server *srv, const char *name, struct hub_sub *sub, struct ws_sess *sess);
/* Undo hub_join; the broker is told when the last local subscriber leaves. */
void hub_leave(struct server *srv, struct hub_sub *sub);
const char *hub_chan_name(const struct hub_chan *c);

/* Publish pub stamped with ts: the one path for HTTP and WebSocket. Returns 0, and done
 * runs exactly once (maybe before this returns); or -1 with *why when the broker cannot
 * take it now, and done never runs. */
int hub_publish(struct server *srv, const struct env_pub *pub, int64_t ts,
		broker_done_fn *done, void *arg, const char **why);

/* The broker's message callback: queue env for every local subscriber of chan. */
void hub_deliver(void *srv, const char *chan, const char *env, size_t len);

/* The broker's ready callback: chan's live messages start (or stop) arriving. */
void hub_ready(void *srv, const char *chan, int ready);
int hub_chan_ready(const struct hub_chan *c);

/* Forget every channel (at shutdown, once the sessions are gone). */
void hub_free(struct server *srv);

/* Implemented by ws.c: a live message for one subscription. */
void ws_deliver(struct hub_sub *sub, struct hub_msg *m);
/* Implemented by ws.c: the channel of sub became ready (live, after a gap if it was
 * ready before). */
void ws_sub_ready(struct hub_sub *sub);
/* Implemented by ws.c: the channel of sub lost its subscription; seq and epoch are the
 * newest position this node knows in it. */
void ws_sub_lost(struct hub_sub *sub, uint64_t seq, const char *epoch);

#endif
