/* poster.h: one keep-alive HTTP connection to chatd that publishes messages.
 *
 * The same libcurl handle is reused for every message, so a stream of lines costs one TCP
 * connection, not one per line; libcurl reconnects by itself if the server closed it. */
#ifndef CHAT_POST_POSTER_H
#define CHAT_POST_POSTER_H

#include <stddef.h>

/* What became of one message. */
enum post_outcome {
	POST_ACCEPTED,    /* 2xx, including a duplicate the server recognised by its key */
	POST_REJECTED,    /* 4xx: the server refused this message; others may still pass */
	POST_UNAVAILABLE, /* no answer, 5xx, 408 or 429: the server cannot take messages now */
};

struct post_reply {
	long status;          /* HTTP status, 0 when there was no answer */
	char reason[512];     /* why, for the user, when not accepted */
	const char *answer;   /* the response body, valid until the next poster_send */
	int retryable;        /* the same request may succeed later: a refused or lost
				 connection, a timeout, 408, 429, or 5xx other than 501, 505 */
	long retry_after_ms;  /* the server's Retry-After, -1 when it sent none */
};

struct poster;

/* How to reach the server: a token sent as "Authorization: Bearer" (NULL for none), a CA
 * file for https (NULL: the system's), and whether to skip certificate checks. */
struct poster_opts {
	const char *token;
	const char *cacert;
	int insecure;
};

/* base is "http://host:port/prefix" (or https) as url_http_base makes it. */
struct poster *poster_new(const char *base, const struct poster_opts *o, char *err, size_t errlen);

/* POST one request body ({"chan":...,"msg":...}) and wait for the answer. A key (NULL for
 * none; at most RETRY_KEY_MAX characters) goes in an Idempotency-Key header, so the
 * server stores the message once however often it is sent with that key. */
enum post_outcome poster_send(struct poster *p, const char *body, size_t len, const char *key,
			      struct post_reply *r);

void poster_free(struct poster *p);

#endif
