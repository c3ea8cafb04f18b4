/* uvpoll.c: libuv's uv_poll_start, without the system calls it makes for nothing.
 *
 * libuv 1.44 (Debian 12) implements every uv_poll_start as "stop, then start": an
 * EPOLL_CTL_DEL at once and an EPOLL_CTL_ADD when the loop next polls, even when the
 * handle already polls for exactly those events (libuv issue #2201). lws' libuv plugin
 * calls it several times per HTTP request: POLLIN again while it has POLLIN, and POLLOUT
 * on and off around the end of each keep-alive transaction. epoll_ctl was a quarter of
 * chatd's time in the Redis publish benchmark.
 *
 * chatd defines uv_poll_start itself and exports it (-Wl,--export-dynamic-symbol in the
 * Makefile), so the plugin, which lws dlopens, binds to this one. For an active handle:
 * - a call that would not change its events or callback returns at once (libuv's epoll
 *   is level-triggered, so a registration left in place reports exactly what a fresh one
 *   would);
 * - a call that only changes which of POLLIN and POLLOUT it waits for becomes one
 *   EPOLL_CTL_MOD, made here, with libuv's record of the handle's events (the public
 *   uv__io_t in <uv/unix.h>) set to match. That is done only on the libuv it was written
 *   against (1.44, which polls with epoll and masks each event it reports by that
 *   record), and only when libuv has no change of its own queued for the handle.
 * Every other call goes to libuv's own (dlsym(RTLD_NEXT)). A keep-alive publish costs 2
 * epoll_ctl instead of 7 in Redis mode (none with the owed POLLOUT below), 4 instead of 7
 * in memory mode (bench/publish.md).
 *
 * What a handle polls for is kept here per file descriptor, with the handle it belongs
 * to: a stopped or closed handle is not active, and a handle only becomes active through
 * this function, so a stale entry is never trusted.
 *
 * Those 2 are POLLOUT on and off: lws ends each keep-alive transaction by asking for
 * POLLOUT, only to learn that the socket it has just written an answer to can be written
 * (it reads the next request only after that). Once uvpoll_init has run, the POLLOUT
 * asked for inside uvpoll_owe_begin/uvpoll_owe_end (chatd brackets the end of a
 * transaction whose answer it has just sent with them), while the loop handles its input
 * (between the loop's prepare and check phases), does not go to the kernel: the handle is
 * owed a writable event, delivered from the check phase of the same iteration, before any
 * handle closed meanwhile is freed (libuv frees in the closing phase, after check). lws
 * turns POLLOUT off while it handles the event (gdb: every time), which then finds the
 * kernel already without it. A socket that was not writable after all costs one write that
 * takes nothing: lws keeps the rest and asks for POLLOUT again from inside the owed
 * event, and that request, and every one after it until the kernel has reported the
 * socket writable, goes to the kernel as before. So a keep-alive publish answered from
 * Redis' reply makes no epoll_ctl at all, and a full socket never spins. Every other
 * POLLOUT (an answer waiting for a writable callback, WebSocket writes) goes to the
 * kernel as before. */
#include <dlfcn.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <uv.h>

#include "uvpoll.h"

struct poll_slot {
	uv_poll_t *handle;
	int events;       /* what the handle was last asked to poll for */
	char owed;        /* a writable event is owed (on the owed list) */
	char kernel_only; /* POLLOUT goes to the kernel until it reports this socket writable */
};

static struct poll_slot *slots; /* by file descriptor */
static size_t nslots;

static struct {
	uv_loop_t *loop;
	uv_prepare_t prepare;
	uv_check_t check;
	int open;        /* the loop is handling input: an owed event goes out this iteration */
	int scope;       /* inside uvpoll_owe_begin/end */
	int delivering;  /* the fd whose owed event is being delivered, or -1 */
	int *owed;
	size_t nowed, capowed;
} syn = { .delivering = -1 };

int uv_poll_start(uv_poll_t *h, int events, uv_poll_cb cb);

static void remember(uv_poll_t *h, uv_os_fd_t fd, int events)
{
	if ((size_t)fd >= nslots) {
		size_t n = (size_t)fd * 2 + 64;
		struct poll_slot *s = realloc(slots, n * sizeof *s);

		if (!s)
			return; /* this fd is just never skipped */
		for (size_t i = nslots; i < n; i++)
			s[i].handle = NULL;
		slots = s;
		nslots = n;
	}
	slots[fd].handle = h;
	slots[fd].events = events;
	slots[fd].owed = 0;
	slots[fd].kernel_only = 0;
}

/* libuv 1.44 (whose internals modify() and owe() rely on), with the handle registered in
 * the kernel as libuv believes (events == pevents) and no change of libuv's queued for it
 * (the watcher is not on the loop's watcher queue: the queue's head points to itself) */
static int settled(uv_poll_t *h, uv_os_fd_t fd)
{
	static int known = -1;
	uv__io_t *w = &h->io_watcher;

	if (known < 0)
		known = (uv_version() >> 8) == ((1 << 8) | 44);
	return known && w->fd == fd && w->events == w->pevents &&
	       w->watcher_queue[0] == (void *)w->watcher_queue;
}

/* events in poll(2) terms */
static unsigned int poll_events(int events)
{
	return (events & UV_READABLE ? POLLIN : 0) | (events & UV_WRITABLE ? POLLOUT : 0);
}

/* A change of events that needs no system call: 1 when done. POLLOUT asked for while the
 * loop handles input is owed instead (above); POLLOUT given up that the kernel was never
 * asked for is nothing to undo. */
static int owe(uv_poll_t *h, uv_os_fd_t fd, int events)
{
	struct poll_slot *s = &slots[fd];
	unsigned int kernel = h->io_watcher.pevents;

	if (!syn.loop || !settled(h, fd) || (events & ~(UV_READABLE | UV_WRITABLE)) ||
	    (kernel & POLLOUT))
		return 0;
	if (!(events & UV_WRITABLE))
		return poll_events(events) == kernel;
	if (fd == syn.delivering) /* the owed event did not drain it */
		s->kernel_only = 1;
	if (!syn.open || !syn.scope || s->kernel_only ||
	    poll_events(events & ~UV_WRITABLE) != kernel)
		return 0;
	if (!s->owed) {
		if (syn.nowed == syn.capowed) {
			size_t n = syn.capowed ? 2 * syn.capowed : 64;
			int *v = realloc(syn.owed, n * sizeof *v);

			if (!v)
				return 0;
			syn.owed = v;
			syn.capowed = n;
		}
		syn.owed[syn.nowed++] = fd;
		s->owed = 1;
	}
	return 1;
}

/* Change an active handle's events with one EPOLL_CTL_MOD; 0 when that is not safe here,
 * and libuv's own uv_poll_start must do it. */
static int modify(uv_poll_t *h, uv_os_fd_t fd, int events)
{
	uv__io_t *w = &h->io_watcher;
	struct epoll_event e = { 0 };
	unsigned int was = w->pevents;

	if (!events || (events & ~(UV_READABLE | UV_WRITABLE)) || !settled(h, fd))
		return 0;
	e.events = poll_events(events);
	e.data.fd = fd;
	if (epoll_ctl(uv_backend_fd(h->loop), EPOLL_CTL_MOD, fd, &e))
		return 0;
	w->pevents = w->events = e.events;
	if ((was & POLLOUT) && !(e.events & POLLOUT)) /* it reported the socket writable */
		slots[fd].kernel_only = 0;
	return 1;
}

/* libuv's own uv_poll_start */
static int libuv_poll_start(uv_poll_t *h, int events, uv_poll_cb cb)
{
	static int (*fn)(uv_poll_t *, int, uv_poll_cb);

	if (!fn) {
		*(void **)&fn = dlsym(RTLD_NEXT, "uv_poll_start");
		if (!fn)
			abort(); /* linked against libuv, so it is there */
	}
	return fn(h, events, cb);
}

int uv_poll_start(uv_poll_t *h, int events, uv_poll_cb cb)
{
	uv_os_fd_t fd = -1;
	int rc;

	if (!uv_fileno((uv_handle_t *)h, &fd) && fd >= 0 && (size_t)fd < nslots &&
	    slots[fd].handle == h && h->poll_cb == cb && uv_is_active((uv_handle_t *)h)) {
		if (slots[fd].events == events)
			return 0;
		if (owe(h, fd, events) || modify(h, fd, events)) {
			slots[fd].events = events;
			return 0;
		}
	}
	rc = libuv_poll_start(h, events, cb);
	if (!rc && fd >= 0)
		remember(h, fd, events);
	return rc;
}

/* The loop is about to wait for input (the last prepare callback: this one was started
 * first, and libuv runs the newest first). */
static void on_prepare(uv_prepare_t *p)
{
	syn.open = 1;
}

/* The iteration's input is handled: deliver what is owed. Requests made from here on go
 * to the kernel. */
static void on_check(uv_check_t *c)
{
	size_t n = syn.nowed;

	syn.open = 0;
	for (size_t i = 0; i < n; i++) {
		int fd = syn.owed[i];
		struct poll_slot *s = &slots[fd];
		uv_poll_t *h = s->handle;

		if (!s->owed)
			continue;
		s->owed = 0;
		/* still active and wanting it, and the kernel not asked meanwhile */
		if (!h || !uv_is_active((uv_handle_t *)h) || uv_is_closing((uv_handle_t *)h) ||
		    !(s->events & UV_WRITABLE) || (h->io_watcher.pevents & POLLOUT))
			continue;
		syn.delivering = fd;
		h->poll_cb(h, 0, UV_WRITABLE);
		syn.delivering = -1;
		/* Still wanting POLLOUT after the event (lws did not turn it off, or asked for
		 * it again with the events it had): the kernel's turn, or nobody would ever
		 * report the socket writable. (slots may have moved meanwhile.) */
		s = &slots[fd];
		if (s->handle == h && uv_is_active((uv_handle_t *)h) &&
		    !uv_is_closing((uv_handle_t *)h) && (s->events & UV_WRITABLE) &&
		    !(h->io_watcher.pevents & POLLOUT)) {
			s->kernel_only = 1;
			if (!modify(h, fd, s->events))
				libuv_poll_start(h, s->events, h->poll_cb);
		}
	}
	syn.nowed = 0;
}

void uvpoll_owe_begin(void)
{
	syn.scope = 1;
}

void uvpoll_owe_end(void)
{
	syn.scope = 0;
}

void uvpoll_init(uv_loop_t *loop)
{
	syn.loop = loop;
	uv_prepare_init(loop, &syn.prepare);
	uv_prepare_start(&syn.prepare, on_prepare);
	uv_unref((uv_handle_t *)&syn.prepare);
	uv_check_init(loop, &syn.check);
	uv_check_start(&syn.check, on_check);
	uv_unref((uv_handle_t *)&syn.check);
}

void uvpoll_close(void)
{
	if (!syn.loop)
		return;
	uv_close((uv_handle_t *)&syn.prepare, NULL);
	uv_close((uv_handle_t *)&syn.check, NULL);
	syn.loop = NULL;
	free(syn.owed);
	syn.owed = NULL;
	syn.nowed = syn.capowed = 0;
}
