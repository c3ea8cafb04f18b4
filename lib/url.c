/* url.c: small, strict URL parsing for the forms in url.h; anything else is refused with
 * a reason rather than guessed at. */
#include "url.h"

#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "err.h"


static int parse_port(const char *s, size_t n, int *port)
{
	long v = 0;

	if (n == 0 || n > 5)
		return -1;
	for (size_t i = 0; i < n; i++) {
		if (!isdigit((unsigned char)s[i]))
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = (int)v;
	return 0;
}

int url_split_hostport(const char *s, char *host, size_t hostlen, int *port, char *err,
		       size_t errlen)
{
	const char *colon, *hs = s, *he;
	size_t len = strlen(s);

	if (len && strspn(s, "0123456789") == len) /* bare port */
		return parse_port(s, len, port) ? err_set(err, errlen, "bad port \"%s\"", s) : 0;
	if (s[0] == '[') {
		he = strchr(s, ']');
		if (!he)
			return err_set(err, errlen, "unterminated '[' in \"%s\"", s);
		hs = s + 1;
		colon = he[1] == ':' ? he + 1 : NULL;
		if (he[1] && !colon)
			return err_set(err, errlen, "unexpected text after ']' in \"%s\"", s);
	} else {
		colon = strrchr(s, ':');
		if (colon && strchr(s, ':') != colon)
			return err_set(err, errlen, "IPv6 addresses need brackets: [%s]", s);
		he = colon ? colon : s + len;
	}
	if ((size_t)(he - hs) >= hostlen)
		return err_set(err, errlen, "host name too long");
	/* Brackets only enclose an IPv6 literal: "[[::1]" would make a host that prints as
	 * an unterminated one. */
	if (memchr(hs, '[', (size_t)(he - hs)) || memchr(hs, ']', (size_t)(he - hs)))
		return err_set(err, errlen, "stray '[' or ']' in \"%s\"", s);
	if (he > hs) {
		memcpy(host, hs, (size_t)(he - hs));
		host[he - hs] = '\0';
	}
	if (colon && parse_port(colon + 1, strlen(colon + 1), port))
		return err_set(err, errlen, "bad port \"%s\"", colon + 1);
	if (!host[0])
		return err_set(err, errlen, "missing host in \"%s\"", s);
	return 0;
}

int url_is_tls(const struct url *u)
{
	return !strcmp(u->scheme, "https") || !strcmp(u->scheme, "wss");
}

int url_parse(const char *s, struct url *u, char *err, size_t errlen)
{
	const char *sep = strstr(s, "://"), *auth, *rest;
	char hostport[300];
	size_t n;

	memset(u, 0, sizeof *u);
	if (!sep)
		return err_set(err, errlen, "\"%s\" is not a URL; use http://HOST:PORT", s);
	n = (size_t)(sep - s);
	if (n >= sizeof u->scheme)
		return err_set(err, errlen, "unknown URL scheme in \"%s\"", s);
	for (size_t i = 0; i < n; i++)
		u->scheme[i] = (char)tolower((unsigned char)s[i]);
	if (!strcmp(u->scheme, "http") || !strcmp(u->scheme, "ws"))
		u->port = 80;
	else if (!strcmp(u->scheme, "https") || !strcmp(u->scheme, "wss"))
		u->port = 443;
	else
		return err_set(err, errlen, "unsupported URL scheme \"%s\"; use http, https, ws or wss",
			    u->scheme);
	auth = sep + 3;
	rest = auth + strcspn(auth, "/?#");
	if ((size_t)(rest - auth) >= sizeof hostport)
		return err_set(err, errlen, "host name too long");
	if (memchr(auth, '@', (size_t)(rest - auth)))
		return err_set(err, errlen, "user names in server URLs are not supported");
	memcpy(hostport, auth, (size_t)(rest - auth));
	hostport[rest - auth] = '\0';
	if (!hostport[0] || strspn(hostport, "0123456789") == strlen(hostport))
		return err_set(err, errlen, "missing host in \"%s\"", s);
	if (url_split_hostport(hostport, u->host, sizeof u->host, &u->port, err, errlen))
		return -1;
	n = strcspn(rest, "#");
	if (n >= sizeof u->path)
		return err_set(err, errlen, "URL path too long");
	memcpy(u->path, rest, n);
	u->path[n] = '\0';
	n = strcspn(u->path, "?");
	while (n > 0 && u->path[n - 1] == '/') { /* drop trailing slashes of the path part */
		memmove(u->path + n - 1, u->path + n, strlen(u->path + n) + 1);
		n--;
	}
	return 0;
}

int url_parse_redis(const char *s, struct redis_url *r, char *err, size_t errlen)
{
	const char *p, *at, *slash;
	char hostport[300];

	memset(r, 0, sizeof *r);
	r->port = 6379;
	if (!strncasecmp(s, "unix://", 7)) {
		p = s + 7;
		if (p[0] != '/')
			return err_set(err, errlen, "unix socket URL needs an absolute path: unix:///path");
		if (strlen(p) >= sizeof r->path)
			return err_set(err, errlen, "unix socket path too long");
		r->is_unix = 1;
		strcpy(r->path, p);
		return 0;
	}
	if (strncasecmp(s, "redis://", 8))
		return err_set(err, errlen,
			       "Redis URL must look like redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH, not \"%s\"",
			       s);
	p = s + 8;
	slash = p + strcspn(p, "/");
	at = memchr(p, '@', (size_t)(slash - p));
	if (at) {
		const char *colon = memchr(p, ':', (size_t)(at - p));
		size_t ul = colon ? (size_t)(colon - p) : 0;
		size_t pl = colon ? (size_t)(at - colon - 1) : (size_t)(at - p);
		const char *pw = colon ? colon + 1 : p;

		if (ul >= sizeof r->user || pl >= sizeof r->password)
			return err_set(err, errlen, "Redis user or password too long");
		memcpy(r->user, p, ul);
		memcpy(r->password, pw, pl);
		p = at + 1;
	}
	if ((size_t)(slash - p) >= sizeof hostport)
		return err_set(err, errlen, "Redis host name too long");
	memcpy(hostport, p, (size_t)(slash - p));
	hostport[slash - p] = '\0';
	if (!hostport[0])
		strcpy(r->host, "127.0.0.1");
	else if (strspn(hostport, "0123456789") == strlen(hostport))
		return err_set(err, errlen, "missing host in \"%s\" (redis://HOST:PORT)", s);
	else if (url_split_hostport(hostport, r->host, sizeof r->host, &r->port, err, errlen))
		return -1;
	if (*slash && slash[1]) {
		char *end;
		long db = strtol(slash + 1, &end, 10);
		if (*end || db < 0 || db > 1000000)
			return err_set(err, errlen, "bad Redis database number \"%s\"", slash + 1);
		r->db = (int)db;
	}
	return 0;
}

int url_ws_path(const struct url *base, const char *const *chans, size_t n, char *out,
		size_t outlen)
{
	size_t plen = strcspn(base->path, "?"), len;
	int w;

	w = snprintf(out, outlen, "%.*s%s", (int)plen, base->path,
		     plen >= 3 && !strncmp(base->path + plen - 3, "/ws", 3) ? "" : "/ws");
	if (w < 0 || (size_t)w >= outlen)
		return -1;
	len = (size_t)w;
	for (size_t i = 0; i < n; i++) {
		w = snprintf(out + len, outlen - len, "%cchan=%s", i ? '&' : '?', chans[i]);
		if (w < 0 || (size_t)w >= outlen - len)
			return -1;
		len += (size_t)w;
	}
	return 0;
}

int url_http_base(const struct url *base, char *out, size_t outlen)
{
	int v6 = strchr(base->host, ':') != NULL;
	int w = snprintf(out, outlen, "%s://%s%s%s:%d%.*s", url_is_tls(base) ? "https" : "http",
			 v6 ? "[" : "", base->host, v6 ? "]" : "", base->port,
			 (int)strcspn(base->path, "?"), base->path);

	return w < 0 || (size_t)w >= outlen ? -1 : 0;
}
