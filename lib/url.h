/* url.h: the URL forms the tools accept.
 *
 * Server base URLs:  http://host[:port][/prefix], https://, ws://, wss://
 * Redis:             redis://[[user]:password@]host[:port][/db], unix:///path/to/socket */
#ifndef CHAT_URL_H
#define CHAT_URL_H

#include <stddef.h>

struct url {
	char scheme[8]; /* lower case: http, https, ws, wss */
	char host[256]; /* without brackets for IPv6 literals */
	int port;       /* the scheme's default when absent */
	char path[512]; /* "" or "/..." without a trailing slash; query kept if given */
};

struct redis_url {
	int is_unix;
	char host[256];
	int port;
	char path[256];     /* unix socket path */
	char user[128];     /* "" unless given */
	char password[256]; /* "" unless given */
	int db;
};

/* "host:port", "[v6]:port", ":port" (host stays as given in host on entry) or "port".
 * Returns 0 or -1 with a reason in err. */
int url_split_hostport(const char *s, char *host, size_t hostlen, int *port, char *err,
		       size_t errlen);

int url_parse(const char *s, struct url *u, char *err, size_t errlen);
int url_parse_redis(const char *s, struct redis_url *r, char *err, size_t errlen);

/* The path and query that subscribe to chans[0..n) on the server at base: the base path
 * plus "/ws" (unless it already ends in "/ws"), then "?chan=A&chan=B...".
 * Returns 0, or -1 when out is too small. */
int url_ws_path(const struct url *base, const char *const *chans, size_t n, char *out,
		size_t outlen);

/* "http://host:port/prefix" (or https) for HTTP requests to the server at base. */
int url_http_base(const struct url *base, char *out, size_t outlen);

/* 1 for https and wss. */
int url_is_tls(const struct url *u);

#endif
