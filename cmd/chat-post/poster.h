/* poster.h: one keep-alive HTTP connection to chatd that publishes messages.
 *
 * The same libcurl handle is reused for every message, so a stream of lines costs one TCP
 * connection, not one per line; libcurl reconnects by itself if the server closed it. */
#ifndef CHAT_POST_POSTER_H
#define CHAT_POST_POSTER_H

#include <stddef.h>

/* What became of one message. */
enum post_outcome {
	POST_ACCEPTED,    /* 2xx */
	POST_REJECTED,    /* 4xx: the server refused this message; others may still pass */
	POST_UNAVAILABLE, /* no answer, or 5xx: the server (or its broker) cannot take messages */
};

struct post_reply {
	long status;          /* HTTP status, 0 when there was no answer */
	char reason[512];     /* why, for the user, when not accepted */
	const char *answer;   /* the response body, valid until the next poster_send */
};

struct poster;

/* base is "http://host:port/prefix" as url_http_base makes it. */
struct poster *poster_new(const char *base, char *err, size_t errlen);

/* POST one request body ({"chan":...,"msg":...}) and wait for the answer. */
enum post_outcome poster_send(struct poster *p, const char *body, size_t len,
			      struct post_reply *r);

void poster_free(struct poster *p);

#endif
