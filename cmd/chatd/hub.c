/* hub.c: channels with local subscribers, and fan-out to them.
 *
 * A channel holds a flat array of subscription pointers: delivery walks it once, and a
 * subscription knows its own index, so leaving is O(1) (the last entry moves into the
 * hole). One hub_msg per message, shared by every queue it sits in. */
#include "hub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "fmt.h"
#include "log.h"
#include "server.h"

struct hub_chan {
	char name[CHAN_MAX + 1];
	int ready; /* the broker delivers its live messages */
	int probed; /* the channel's position was asked for, at its first ready */
	int known;  /* seq and epoch hold the newest position this node knows */
	uint64_t seq;
	char epoch[ENV_EPOCH_MAX + 1];
	struct hub_sub **subs;
	unsigned n, cap;
};

struct hub_msg *hub_msg_new(const char *payload, size_t len)
{
	struct hub_msg *m = malloc(sizeof *m + LWS_PRE + len + 1);

	if (!m)
		return NULL;
	m->refs = 1;
	m->seq = 0;
	m->epoch[0] = '\0';
	m->len = len;
	memcpy(m->data + LWS_PRE, payload, len);
	m->data[LWS_PRE + len] = '\0';
	return m;
}

void hub_msg_unref(struct hub_msg *m)
{
	if (m && --m->refs == 0)
		free(m);
}

const char *hub_chan_name(const struct hub_chan *c)
{
	return c->name;
}

int hub_join(struct server *srv, const char *name, struct hub_sub *sub, struct ws_sess *sess)
{
	struct hub_chan *c = strmap_get(&srv->chans, name);

	if (!c) {
		c = calloc(1, sizeof *c);
		if (!c || strmap_put(&srv->chans, name, c)) {
			free(c);
			return -1;
		}
		strcpy(c->name, name);
	}
	if (c->n == c->cap) {
		unsigned ncap = c->cap ? c->cap * 2 : 4;
		struct hub_sub **ns = realloc(c->subs, ncap * sizeof *ns);
		if (!ns)
			return -1; /* an empty new channel stays; it is dropped with its next leave */
		c->subs = ns;
		c->cap = ncap;
	}
	sub->sess = sess;
	sub->chan = c;
	sub->idx = c->n;
	c->subs[c->n++] = sub;
	if (c->n == 1 && srv->broker)
		broker_subscribe(srv->broker, name); /* may report ready at once */
	else if (c->ready)
		ws_sub_ready(sub);
	return 0;
}

void hub_leave(struct server *srv, struct hub_sub *sub)
{
	struct hub_chan *c = sub->chan;

	if (!c)
		return;
	c->subs[sub->idx] = c->subs[--c->n];
	c->subs[sub->idx]->idx = sub->idx;
	sub->chan = NULL;
	if (c->n == 0) {
		if (srv->broker)
			broker_unsubscribe(srv->broker, c->name);
		strmap_del(&srv->chans, c->name);
		free(c->subs);
		free(c);
	}
}

/* A publish on its way to the broker: times it and counts the outcome. */
struct hub_pub {
	struct server *srv;
	broker_done_fn *done;
	void *arg;
	uint64_t t0;
};

static void hub_on_published(void *arg, const char *err, const struct broker_pos *pos)
{
	struct hub_pub *p = arg;
	struct metrics *m = &p->srv->metrics;

	if (!err && !pos->duplicate) {
		m->published++;
		metrics_publish_latency(p->srv, uv_hrtime() - p->t0);
	} else if (err && !pos)
		m->publish_refused++;
	p->done(p->arg, err, pos);
	free(p);
}

int hub_publish(struct server *srv, const struct env_pub *pub, int64_t ts,
		broker_done_fn *done, void *arg, const char **why)
{
	struct hub_pub *p = NULL;

	*why = srv->broker ? broker_status(srv->broker) : "server shutting down";
	if (!*why && !(p = malloc(sizeof *p)))
		*why = "out of memory";
	if (*why) {
		srv->metrics.publish_refused++;
		return -1;
	}
	p->srv = srv;
	p->done = done;
	p->arg = arg;
	p->t0 = uv_hrtime();
	broker_publish(srv->broker, pub, ts, hub_on_published, p);
	return 0;
}

/* The channel's newest position on this node: from each message delivered, and from the
 * history read when it became ready (which covers a channel that stays quiet). */
static void hub_note_pos(struct hub_chan *c, uint64_t seq, const char *epoch)
{
	if (c->known && !strcmp(c->epoch, epoch) && seq <= c->seq)
		return;
	c->known = 1;
	c->seq = seq;
	fmt_str(c->epoch, sizeof c->epoch, epoch);
}

struct hub_probe {
	struct server *srv;
	char name[CHAN_MAX + 1];
};

static void hub_on_probe(void *arg, const char *err, const struct broker_history *h)
{
	struct hub_probe *p = arg;
	struct hub_chan *c = err ? NULL : strmap_get(&p->srv->chans, p->name);

	if (c)
		hub_note_pos(c, h->last, h->epoch);
	free(p);
}

void hub_deliver(void *ud, const char *chan, const char *env, size_t len)
{
	struct server *srv = ud;
	struct hub_chan *c = strmap_get(&srv->chans, chan);
	struct hub_msg *m;

	if (!c || !c->n)
		return;
	m = hub_msg_new(env, len);
	if (!m) {
		log_error("hub", "out of memory: dropped a message chan=%s", chan);
		return;
	}
	env_pos_of(env, len, &m->seq, m->epoch);
	if (m->seq)
		hub_note_pos(c, m->seq, m->epoch);
	/* Our reference outlives the loop: a session may drop its copy immediately. */
	for (unsigned i = 0; i < c->n; i++)
		ws_deliver(c->subs[i], m);
	hub_msg_unref(m);
}

int hub_chan_ready(const struct hub_chan *c)
{
	return c->ready;
}

void hub_ready(void *ud, const char *chan, int ready)
{
	struct server *srv = ud;
	struct hub_chan *c = strmap_get(&srv->chans, chan);

	if (!c)
		return;
	c->ready = ready;
	if (!ready) {
		/* A subscription that has had nothing yet is, at this moment, at the channel's
		 * newest position: from there it catches up when the channel is ready again. */
		for (unsigned i = 0; c->known && i < c->n; i++)
			ws_sub_lost(c->subs[i], c->seq, c->epoch);
		return;
	}
	if (!c->probed && srv->broker) {
		struct hub_probe *p = malloc(sizeof *p);
		c->probed = 1;
		if (p) {
			p->srv = srv;
			strcpy(p->name, c->name);
			broker_history(srv->broker, c->name, 0, 1, hub_on_probe, p);
		}
	}
	for (unsigned i = 0; i < c->n; i++)
		ws_sub_ready(c->subs[i]);
}

void hub_free(struct server *srv)
{
	const char *name;
	void *v;

	for (size_t i = 0; (i = strmap_next(&srv->chans, i, &name, &v));) {
		struct hub_chan *c = v;
		free(c->subs);
		free(c);
	}
	strmap_free(&srv->chans);
}
