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
 * epoll_ctl instead of 7 in Redis mode, 4 instead of 7 in memory mode (bench/publish.md).
 *
 * What a handle polls for is kept here per file descriptor, with the handle it belongs
 * to: a stopped or closed handle is not active, and a handle only becomes active through
 * this function, so a stale entry is never trusted. */
#include <dlfcn.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <uv.h>

struct poll_slot {
	uv_poll_t *handle;
	int events;
};

static struct poll_slot *slots; /* by file descriptor */
static size_t nslots;

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
}

/* Change an active handle's events with one EPOLL_CTL_MOD; 0 when that is not safe here,
 * and libuv's own uv_poll_start must do it. */
static int modify(uv_poll_t *h, uv_os_fd_t fd, int events)
{
	static int known = -1;
	uv__io_t *w = &h->io_watcher;
	struct epoll_event e = { 0 };
	unsigned int ev = 0;

	if (known < 0)
		known = (uv_version() >> 8) == ((1 << 8) | 44);
	if (!known || !events || (events & ~(UV_READABLE | UV_WRITABLE)))
		return 0;
	/* in the kernel as libuv believes (events == pevents), and no change queued (the
	 * watcher is not on the loop's watcher queue: the queue's head points to itself) */
	if (w->fd != fd || w->events != w->pevents ||
	    w->watcher_queue[0] != (void *)w->watcher_queue)
		return 0;
	if (events & UV_READABLE)
		ev |= POLLIN;
	if (events & UV_WRITABLE)
		ev |= POLLOUT;
	e.events = ev;
	e.data.fd = fd;
	if (epoll_ctl(uv_backend_fd(h->loop), EPOLL_CTL_MOD, fd, &e))
		return 0;
	w->pevents = w->events = ev;
	return 1;
}

int uv_poll_start(uv_poll_t *h, int events, uv_poll_cb cb)
{
	static int (*libuv_poll_start)(uv_poll_t *, int, uv_poll_cb);
	uv_os_fd_t fd = -1;
	int rc;

	if (!uv_fileno((uv_handle_t *)h, &fd) && fd >= 0 && (size_t)fd < nslots &&
	    slots[fd].handle == h && h->poll_cb == cb && uv_is_active((uv_handle_t *)h)) {
		if (slots[fd].events == events)
			return 0;
		if (modify(h, fd, events)) {
			slots[fd].events = events;
			return 0;
		}
	}
	if (!libuv_poll_start) {
		*(void **)&libuv_poll_start = dlsym(RTLD_NEXT, "uv_poll_start");
		if (!libuv_poll_start)
			abort(); /* linked against libuv, so it is there */
	}
	rc = libuv_poll_start(h, events, cb);
	if (!rc && fd >= 0)
		remember(h, fd, events);
	return rc;
}
