/* uvpoll.h: libuv's uv_poll_start without the system calls it makes for nothing
 * (cmd/chatd/uvpoll.c). */
#ifndef CHATD_UVPOLL_H
#define CHATD_UVPOLL_H

#include <uv.h>

/* Start owing writable events on loop (not with TLS); uvpoll_close undoes it. */
void uvpoll_init(uv_loop_t *loop);
void uvpoll_close(void);

/* Around lws_http_transaction_completed after an answer was sent: the POLLOUT lws asks
 * for in between is delivered from the loop's check phase, not asked of the kernel. */
void uvpoll_owe_begin(void);
void uvpoll_owe_end(void);

#endif
