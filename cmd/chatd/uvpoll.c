/* uvpoll.c: libuv's uv_poll_start, without the system calls it makes for nothing.
 *
 * libuv 1.44 (Debian 12) implements every uv_poll_start as "stop, then start": an
 * EPOLL_CTL_DEL and an EPOLL_CTL_ADD, even when the handle already polls for exactly
 * those events (libuv issue #2201). lws' libuv plugin restarts its polls that way several
 * times per HTTP request (POLLIN, then POLLIN again): of seven epoll_ctl calls per
 * keep-alive publish, three pairs changed nothing, and epoll_ctl was a quarter of chatd's
 * time in the Redis publish benchmark.
 *
 * chatd defines uv_poll_start itself and exports it (-Wl,--export-dynamic-symbol in the
 * Makefile), so the plugin, which lws dlopens, binds to this one. A call that would not
 * change an active handle's events or callback returns at once; every other call goes
 * to libuv's own (dlsym(RTLD_NEXT)). libuv's epoll is level-triggered, so a registration
 * left in place reports exactly what a fresh one would. 7 -> 4 epoll_ctl per request,
 * about 10% more publishes a second (bench/publish.md).
 *
 * What a handle polls for is kept here per file descriptor, with the handle it belongs
 * to: libuv keeps it in private fields. A stopped or closed handle is not active, and a
 * handle only becomes active through this function, so a stale entry is never trusted. */
#include <dlfcn.h>
#include <stdlib.h>
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

int uv_poll_start(uv_poll_t *h, int events, uv_poll_cb cb)
{
	static int (*libuv_poll_start)(uv_poll_t *, int, uv_poll_cb);
	uv_os_fd_t fd = -1;
	int rc;

	if (!uv_fileno((uv_handle_t *)h, &fd) && fd >= 0 && (size_t)fd < nslots &&
	    slots[fd].handle == h && slots[fd].events == events && h->poll_cb == cb &&
	    uv_is_active((uv_handle_t *)h))
		return 0;
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
