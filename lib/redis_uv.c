/* redis_uv.c: the four hooks hiredis needs (read/write interest on, off) and a cleanup,
 * mapped onto one uv_poll_t. See redis_uv.h for why this is not hiredis' own adapter. */
#include "redis_uv.h"

#include <hiredis/async.h>
#include <stdlib.h>
#include <uv.h>

struct redis_uv {
	redisAsyncContext *ac; /* NULL once hiredis has let go of us */
	uv_poll_t poll;
	int events;
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

static void redis_uv_add_write(void *d)
{
	struct redis_uv *p = d;
	redis_uv_update(p, p->events | UV_WRITABLE);
}

static void redis_uv_del_write(void *d)
{
	struct redis_uv *p = d;
	redis_uv_update(p, p->events & ~UV_WRITABLE);
}

static void redis_uv_on_close(uv_handle_t *h)
{
	free(h->data);
}

static void redis_uv_cleanup(void *d)
{
	struct redis_uv *p = d;

	p->ac = NULL;
	uv_poll_stop(&p->poll);
	uv_close((uv_handle_t *)&p->poll, redis_uv_on_close);
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
	p->ac = ac;
	p->poll.data = p;
	ac->ev.data = p;
	ac->ev.addRead = redis_uv_add_read;
	ac->ev.delRead = redis_uv_del_read;
	ac->ev.addWrite = redis_uv_add_write;
	ac->ev.delWrite = redis_uv_del_write;
	ac->ev.cleanup = redis_uv_cleanup;
	return 0;
}
