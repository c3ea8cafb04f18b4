/* redis_uv.h: attach a hiredis async context to a libuv loop.
 *
 * Our own adapter rather than <hiredis/adapters/libuv.h>: the one shipped with hiredis
 * 0.14.1 ignores poll errors, so a connect to a Redis that is down never fails and
 * commands queued on it never get a reply. This one hands an error to hiredis as
 * readable+writable, so hiredis looks at the socket and reports the failure. */
#ifndef CHAT_REDIS_UV_H
#define CHAT_REDIS_UV_H

struct redisAsyncContext;
struct uv_loop_s;

/* Returns 0, or -1 when out of memory or already attached. */
int redis_uv_attach(struct redisAsyncContext *ac, struct uv_loop_s *loop);

/* Write what is queued on ac now rather than just before the loop sleeps: for a caller
 * that queues commands in that same phase. */
void redis_uv_flush(struct redisAsyncContext *ac);

/* Start writing what is queued on ac now, in the middle of a loop turn, so Redis can
 * work while the turn goes on; the rest, and any write error, are left to the usual
 * write before the loop sleeps, so no reply callback runs inside the caller. */
void redis_uv_write_early(struct redisAsyncContext *ac);

#endif
