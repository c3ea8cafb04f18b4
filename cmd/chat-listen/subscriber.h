/* subscriber.h: a WebSocket subscription to chatd that outlives server restarts.
 *
 * The subscriber owns the event loop. It connects, hands every complete text frame to a
 * hook, and when the connection fails or drops it tries again with capped exponential
 * backoff, saying so once per outage. Each attempt asks a hook where to resume. A
 * connection that goes silent (no message and no answer to a ping) counts as dropped.
 * The hooks decide when to stop. A server that says no (a 4xx answer, a refusing close
 * code, a certificate that does not check out) ends it: asking again cannot help. */
#ifndef CHAT_LISTEN_SUBSCRIBER_H
#define CHAT_LISTEN_SUBSCRIBER_H

#include <stddef.h>

#include "url.h"

/* What a hook returns to keep going; anything else is the exit status to stop with. */
#define SUB_CONTINUE (-1)

enum sub_verbosity { SUB_QUIET, SUB_NORMAL, SUB_VERBOSE };

struct sub_hooks {
	int (*frame)(void *arg, const char *data, size_t len); /* one whole text frame */
	int (*tick)(void *arg);                                 /* about every 250 ms */
	/* Query parameters for the next connection attempt ("&since=..."), added to the path;
	 * NULL or "" for none. */
	const char *(*query)(void *arg);
	void *arg;
};

/* With ping_secs > 0, a ping goes out after ping_secs without a word from the server, and
 * the connection is dropped (and made again) after twice that; 0 turns this off. */
#define SUB_PING_MAX 3600
struct sub_options {
	int verbosity;
	unsigned ping_secs;    /* at most SUB_PING_MAX */
	const char *token;     /* sent as "Authorization: Bearer TOKEN", never shown; or NULL */
	const char *cacert;    /* for wss: trust the CAs in this PEM file, not the system's */
	int insecure;          /* for wss: do not check the server's certificate at all */
};

struct subscriber;

/* path is the request path with its query, as url_ws_path makes it. */
struct subscriber *sub_new(const struct url *server, const char *path,
			   const struct sub_options *opts, const struct sub_hooks *hooks, char *err,
			   size_t errlen);

/* Run until a hook returns an exit status, the server refuses the subscription
 * (EX_UNAVAILABLE; EX_NOPERM when it is the token, a close 4401 or 4403 or an HTTP 401 or
 * 403; EX_UNAVAILABLE too for a certificate it cannot trust) or sub_interrupt is called
 * (0). Returns the exit status. */
int sub_run(struct subscriber *s);

/* Safe in a signal handler: make sub_run return 0 promptly. */
void sub_interrupt(struct subscriber *s);

void sub_free(struct subscriber *s);

#endif
