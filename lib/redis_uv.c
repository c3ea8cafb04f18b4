/* redis_uv.c: the four hooks hiredis needs (read/write interest on, off) and a cleanup,
 * mapped onto one uv_poll_t. See redis_uv.h for why this is not hiredis' own adapter.
 *
 * Writes wait for the end of the loop turn: hiredis asks for write interest with every
 * command, and waiting for the socket to poll writable costs a loop turn and two
 * epoll_ctl calls per batch. Instead a uv_prepare writes everything queued in this turn
 * (all the publishes the turn's requests made, in one write) just before the loop sleeps;
 * only a write the kernel does not take whole waits for POLLOUT. A caller with a full
 * batch may start the write earlier (redis_uv_write_early). */
#include "redis_uv.h"

#include <hiredis/async.h>
#include <stdlib.h>
#include <uv.h>

struct redis_uv {
	redisAsyncContext *ac; /* NULL once hiredis has let go of us */
	uv_poll_t poll;
	uv_prepare_t flush;    /* writes the turn's commands before the loop sleeps */
	int events;            /* what poll waits for */
	int want_write;        /* hiredis has output */
	int open_handles;      /* freed when both handles are closed */
};

static void redis_uv_on_poll(uv_poll_t *h, int status, int events)
{
	struct redis_uv *p = h->data;
	/* The fix: on error let hiredis try both directions and find the error itself. */
	int ev = status < 0 ? p->events : events;

	if (p->ac && (ev & UV_READABLE))
		redisAsyncHandleRead(p->ac);
	if (p->ac && (ev & UV_WRITABLE))
		redisAsyncHandleWrite(p->ac);
}

static void redis_uv_update(struct redis_uv *p, int events)
{
	if (events == p->events)
		return;
	p->events = events;
	if (events)
		uv_poll_start(&p->poll, events, redis_uv_on_poll);
	else
		uv_poll_stop(&p->poll);
}

static void redis_uv_add_read(void *d)
{
	struct redis_uv *p = d;
	redis_uv_update(p, p->events | UV_READABLE);
}

static void redis_uv_del_read(void *d)
{
	struct redis_uv *p = d;
	redis_uv_update(p, p->events & ~UV_READABLE);
}

static void redis_uv_write_now(struct redis_uv *p)
{
	if (!p->ac || !p->want_write)
		return;
	redisAsyncHandleWrite(p->ac); /* may disconnect: then p->ac is NULL, p still valid */
	if (p->ac && p->want_write) /* the kernel did not take it all */
		redis_uv_update(p, p->events | UV_WRITABLE);
}

static void redis_uv_on_flush(uv_prepare_t *h)
{
	uv_prepare_stop(h);
	redis_uv_write_now(h->data);
}

void redis_uv_flush(redisAsyncContext *ac)
{
	struct redis_uv *p = ac->ev.data;

	/* only once connected, and only when not already waiting for POLLOUT */
	if (p && p->ac == ac && (ac->c.flags & REDIS_CONNECTED) && !(p->events & UV_WRITABLE))
		redis_uv_write_now(p);
}

void redis_uv_write_early(redisAsyncContext *ac)
{
	struct redis_uv *p = ac->ev.data;
	int done;

	/* redisBufferWrite, not redisAsyncHandleWrite: an error marks the context and is
	 * found (and the connection torn down) by the next flush, at the top of the loop */
	if (p && p->ac == ac && p->want_write && (ac->c.flags & REDIS_CONNECTED) &&
	    !(p->events & UV_WRITABLE) && !ac->c.err)
		redisBufferWrite(&ac->c, &done);
}

static void redis_uv_add_write(void *d)
{
	struct redis_uv *p = d;

	p->want_write = 1;
	/* before the connection is up only POLLOUT tells that connect() finished */
	if (p->ac && (p->ac->c.flags & REDIS_CONNECTED) && !(p->events & UV_WRITABLE))
		uv_prepare_start(&p->flush, redis_uv_on_flush);
	else
		redis_uv_update(p, p->events | UV_WRITABLE);
}

static void redis_uv_del_write(void *d)
{
	struct redis_uv *p = d;

	p->want_write = 0;
	redis_uv_update(p, p->events & ~UV_WRITABLE);
}

static void redis_uv_on_close(uv_handle_t *h)
{
	struct redis_uv *p = h->data;

	if (--p->open_handles == 0)
		free(p);
}

static void redis_uv_cleanup(void *d)
{
	struct redis_uv *p = d;

	p->ac = NULL;
	uv_poll_stop(&p->poll);
	uv_close((uv_handle_t *)&p->poll, redis_uv_on_close);
	uv_close((uv_handle_t *)&p->flush, redis_uv_on_close);
}

int redis_uv_attach(redisAsyncContext *ac, uv_loop_t *loop)
{
	struct redis_uv *p;

	if (ac->ev.data)
		return -1;
	p = calloc(1, sizeof *p);
	if (!p)
		return -1;
	if (uv_poll_init(loop, &p->poll, ac->c.fd)) {
		free(p);
		return -1;
	}
	uv_prepare_init(loop, &p->flush);
	p->open_handles = 2;
	p->ac = ac;
	p->poll.data = p;
	p->flush.data = p;
	ac->ev.data = p;
	ac->ev.addRead = redis_uv_add_read;
	ac->ev.delRead = redis_uv_del_read;
	ac->ev.addWrite = redis_uv_add_write;
	ac->ev.delWrite = redis_uv_del_write;
	ac->ev.cleanup = redis_uv_cleanup;
	return 0;
}
