/* test_url.c: server and Redis URL parsing, and the URLs the clients build from them. */
#include <string.h>

#include "tap.h"
#include "url.h"

/* ---- url_parse ---- */

struct url_ok_case {
	const char *in, *scheme, *host;
	int port;
	const char *path;
	int tls;
};

static const struct url_ok_case url_ok[] = {
	{ "http://127.0.0.1:3000", "http", "127.0.0.1", 3000, "", 0 },
	{ "http://h", "http", "h", 80, "", 0 },
	{ "https://h", "https", "h", 443, "", 1 },
	{ "ws://h", "ws", "h", 80, "", 0 },
	{ "wss://h", "wss", "h", 443, "", 1 },
	{ "ws://h:1/x/", "ws", "h", 1, "/x", 0 },
	{ "wss://[::1]:8443/p?q=1", "wss", "::1", 8443, "/p?q=1", 1 },
	{ "HTTP://H:1", "http", "H", 1, "", 0 },
	{ "HtTpS://example.com", "https", "example.com", 443, "", 1 },
	{ "http://h/", "http", "h", 80, "", 0 },
	{ "http://h//", "http", "h", 80, "", 0 },
	{ "http://h/a/b//", "http", "h", 80, "/a/b", 0 },
	{ "http://h:65535/prefix", "http", "h", 65535, "/prefix", 0 },
	{ "http://h:1", "http", "h", 1, "", 0 },
	{ "http://h/p#frag", "http", "h", 80, "/p", 0 },
	{ "http://h/p/?a=1", "http", "h", 80, "/p?a=1", 0 },
	{ "http://[::1]", "http", "::1", 80, "", 0 },
	{ "http://[2001:db8::1]:3000/ws", "http", "2001:db8::1", 3000, "/ws", 0 },
};

struct url_bad_case {
	const char *what, *in, *err;
};

static const struct url_bad_case url_bad[] = {
	{ "no scheme", "127.0.0.1:3000", "is not a URL; use http://HOST:PORT" },
	{ "bare host", "localhost", "is not a URL" },
	{ "ftp scheme", "ftp://h", "unsupported URL scheme \"ftp\"; use http, https, ws or wss" },
	{ "redis scheme", "redis://h", "unsupported URL scheme \"redis\"" },
	{ "long unknown scheme", "gopherplus://h", "unknown URL scheme" },
	{ "empty scheme", "://h", "unsupported URL scheme \"\"" },
	{ "empty host", "http://", "missing host in \"http://\"" },
	{ "empty host before a path", "http:///x", "missing host" },
	{ "port only", "http://:3000", "missing host" },
	{ "port 0", "http://h:0", "bad port \"0\"" },
	{ "port 65536", "http://h:65536", "bad port \"65536\"" },
	{ "port abc", "http://h:abc", "bad port \"abc\"" },
	{ "port with six digits", "http://h:000080", "bad port" },
	{ "negative port", "http://h:-1", "bad port" },
	{ "empty port", "http://h:", "bad port \"\"" },
	{ "user@host", "http://user@host", "user names in server URLs are not supported" },
	{ "user:pw@host", "http://u:p@h:1/x", "user names in server URLs are not supported" },
	{ "IPv6 without brackets", "http://::1", "IPv6 addresses need brackets" },
	{ "unterminated bracket", "http://[::1:80", "unterminated '['" },
	{ "text after the bracket", "http://[::1]x", "unexpected text after ']'" },
	/* fuzz_url: the host "[1" printed back by url_http_base as "http://[1:3", no URL. */
	{ "bracket inside the brackets", "http://[[1]:3/}////", "stray '[' or ']' in \"[[1]:3\"" },
	{ "bracket inside a host", "http://a]b/", "stray '[' or ']'" },
};

static void test_url_parse(void)
{
	for (size_t i = 0; i < TAP_ARRAY_LEN(url_ok); i++) {
		const struct url_ok_case *c = &url_ok[i];
		struct url u;
		char err[256] = "";

		if (!tap_ok(url_parse(c->in, &u, err, sizeof err) == 0, "url_parse accepts %s", c->in)) {
			tap_diag_str("err", err);
			continue;
		}
		tap_str_eq(u.scheme, c->scheme, "url_parse %s: scheme", c->in);
		tap_str_eq(u.host, c->host, "url_parse %s: host", c->in);
		tap_long_eq(u.port, c->port, "url_parse %s: port", c->in);
		tap_str_eq(u.path, c->path, "url_parse %s: path", c->in);
		tap_long_eq(url_is_tls(&u), c->tls, "url_parse %s: TLS", c->in);
	}
	for (size_t i = 0; i < TAP_ARRAY_LEN(url_bad); i++) {
		const struct url_bad_case *c = &url_bad[i];
		struct url u;
		char err[256] = "";

		if (tap_ok(url_parse(c->in, &u, err, sizeof err) == -1, "url_parse refuses %s (%s)", c->what,
			   c->in))
			tap_str_has(err, c->err, "url_parse %s: reason", c->what);
		else
			tap_diag("parsed as host \"%s\" port %d path \"%s\"", u.host, u.port, u.path);
	}
}

/* ---- url_ws_path and url_http_base ---- */

static void test_ws_path(void)
{
	static const char *const one[] = { "pubsub" };
	static const char *const three[] = { "a", "b.c", "d:e" };
	static const struct {
		const char *base;
		const char *const *chans;
		size_t n;
		const char *want;
	} cases[] = {
		{ "http://h", NULL, 0, "/ws" },
		{ "http://h", one, 1, "/ws?chan=pubsub" },
		{ "http://h", three, 3, "/ws?chan=a&chan=b.c&chan=d:e" },
		{ "http://h/prefix", one, 1, "/prefix/ws?chan=pubsub" },
		{ "http://h/prefix/", three, 3, "/prefix/ws?chan=a&chan=b.c&chan=d:e" },
		{ "ws://h/ws", one, 1, "/ws?chan=pubsub" },
		{ "ws://h/ws/", one, 1, "/ws?chan=pubsub" },
		{ "ws://h/prefix/ws", three, 3, "/prefix/ws?chan=a&chan=b.c&chan=d:e" },
		{ "ws://h/news", one, 1, "/news/ws?chan=pubsub" },
		{ "http://h/p?q=1", one, 1, "/p/ws?chan=pubsub" },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		struct url u;
		char out[256], err[256] = "";

		url_parse(cases[i].base, &u, err, sizeof err);
		if (!tap_ok(url_ws_path(&u, cases[i].chans, cases[i].n, out, sizeof out) == 0,
			    "url_ws_path fits for %s with %zu channels", cases[i].base, cases[i].n))
			continue;
		tap_str_eq(out, cases[i].want, "url_ws_path %s with %zu channels", cases[i].base, cases[i].n);
	}

	struct url u;
	char out[64], err[256];

	url_parse("http://h/prefix", &u, err, sizeof err);
	/* "/prefix/ws?chan=pubsub" is 22 bytes: 23 fits, 22 does not. */
	tap_ok(url_ws_path(&u, one, 1, out, 23) == 0, "url_ws_path fits exactly in len+1 bytes");
	tap_ok(url_ws_path(&u, one, 1, out, 22) == -1, "url_ws_path reports -1 when one byte short");
	tap_ok(url_ws_path(&u, one, 1, out, 5) == -1, "url_ws_path reports -1 when the base path does not fit");
}

static void test_http_base(void)
{
	static const struct {
		const char *in, *want;
	} cases[] = {
		{ "http://127.0.0.1:3000", "http://127.0.0.1:3000" },
		{ "http://h", "http://h:80" },
		{ "https://h", "https://h:443" },
		{ "ws://h:1/x/", "http://h:1/x" },
		{ "wss://h/prefix", "https://h:443/prefix" },
		{ "wss://[::1]:8443/p?q=1", "https://[::1]:8443/p" },
		{ "http://[2001:db8::1]", "http://[2001:db8::1]:80" },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		struct url u;
		char out[256] = "", err[256] = "";

		url_parse(cases[i].in, &u, err, sizeof err);
		tap_ok(url_http_base(&u, out, sizeof out) == 0, "url_http_base fits for %s", cases[i].in);
		tap_str_eq(out, cases[i].want, "url_http_base %s", cases[i].in);
	}

	struct url u;
	char out[8], err[256];

	url_parse("http://example.com", &u, err, sizeof err);
	tap_ok(url_http_base(&u, out, sizeof out) == -1, "url_http_base reports -1 when out is too small");
}

/* ---- url_split_hostport ---- */

static void test_split_hostport(void)
{
	static const struct {
		const char *in, *preset, *host;
		int port;
	} ok[] = {
		{ "3000", "keep", "keep", 3000 },
		{ "3000", "", "", 3000 }, /* host left empty: chatd's --listen :PORT, every interface */
		{ "h:1", "", "h", 1 },
		{ "h", "", "h", 99 },
		{ "example.com:65535", "", "example.com", 65535 },
		{ "[::1]:2", "", "::1", 2 },
		{ "[::1]", "", "::1", 99 },
		{ "[fe80::1%eth0]:80", "", "fe80::1%eth0", 80 },
		{ ":3000", "preset", "preset", 3000 },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(ok); i++) {
		char host[64], err[256] = "";
		int port = 99;

		strcpy(host, ok[i].preset);
		if (!tap_ok(url_split_hostport(ok[i].in, host, sizeof host, &port, err, sizeof err) == 0,
			    "url_split_hostport accepts \"%s\"", ok[i].in)) {
			tap_diag_str("err", err);
			continue;
		}
		tap_str_eq(host, ok[i].host, "url_split_hostport \"%s\": host", ok[i].in);
		tap_long_eq(port, ok[i].port, "url_split_hostport \"%s\": port", ok[i].in);
	}

	static const struct {
		const char *in, *err;
	} bad[] = {
		{ "::1", "IPv6 addresses need brackets: [::1]" },
		{ "::1:80", "IPv6 addresses need brackets" },
		{ ":3000", "missing host in \":3000\"" }, /* with no preset host */
		{ "", "missing host" },
		{ "0", "bad port \"0\"" },
		{ "65536", "bad port \"65536\"" },
		{ "h:x", "bad port \"x\"" },
		{ "h:", "bad port \"\"" },
		{ "[::1", "unterminated '['" },
		{ "[::1]80", "unexpected text after ']'" },
		{ "[]:80", "missing host" },
		{ "[[::1]:80", "stray '[' or ']'" },
		{ "a[b", "stray '[' or ']'" },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(bad); i++) {
		char host[64] = "", err[256] = "";
		int port = 99;

		if (tap_ok(url_split_hostport(bad[i].in, host, sizeof host, &port, err, sizeof err) == -1,
			   "url_split_hostport refuses \"%s\"", bad[i].in))
			tap_str_has(err, bad[i].err, "url_split_hostport \"%s\": reason", bad[i].in);
	}

	char host[4] = "", err[256] = "";
	int port = 0;

	tap_ok(url_split_hostport("abcd:1", host, sizeof host, &port, err, sizeof err) == -1 &&
		       strstr(err, "host name too long"),
	       "url_split_hostport refuses a host longer than the buffer");
	tap_ok(url_split_hostport("abc:1", host, sizeof host, &port, err, sizeof err) == 0 &&
		       !strcmp(host, "abc"),
	       "url_split_hostport fills a host of exactly hostlen-1 bytes");
}

/* ---- url_parse_redis ---- */

static void test_redis(void)
{
	static const struct {
		const char *in;
		int is_unix;
		const char *host;
		int port;
		const char *path, *user, *password;
		int db;
	} ok[] = {
		{ "redis://h:1/2", 0, "h", 1, "", "", "", 2 },
		{ "redis://:pw@h", 0, "h", 6379, "", "", "pw", 0 },
		{ "redis://user:pw@h:1", 0, "h", 1, "", "user", "pw", 0 },
		{ "redis://", 0, "127.0.0.1", 6379, "", "", "", 0 },
		{ "redis://h", 0, "h", 6379, "", "", "", 0 },
		{ "redis://h/", 0, "h", 6379, "", "", "", 0 },
		{ "redis://h/15", 0, "h", 6379, "", "", "", 15 },
		{ "redis://[::1]:6380/3", 0, "::1", 6380, "", "", "", 3 },
		{ "REDIS://H:7000", 0, "H", 7000, "", "", "", 0 },
		{ "redis://:pw@", 0, "127.0.0.1", 6379, "", "", "pw", 0 },
		{ "unix:///tmp/r.sock", 1, "", 6379, "/tmp/r.sock", "", "", 0 },
		{ "UNIX:///var/run/redis.sock", 1, "", 6379, "/var/run/redis.sock", "", "", 0 },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(ok); i++) {
		struct redis_url r;
		char err[256] = "";

		if (!tap_ok(url_parse_redis(ok[i].in, &r, err, sizeof err) == 0, "url_parse_redis accepts %s",
			    ok[i].in)) {
			tap_diag_str("err", err);
			continue;
		}
		tap_ok(r.is_unix == ok[i].is_unix && !strcmp(r.host, ok[i].host) && r.port == ok[i].port &&
			       !strcmp(r.path, ok[i].path) && r.db == ok[i].db,
		       "url_parse_redis %s: unix %d host \"%s\" port %d path \"%s\" db %d", ok[i].in,
		       ok[i].is_unix, ok[i].host, ok[i].port, ok[i].path, ok[i].db);
		tap_ok(!strcmp(r.user, ok[i].user) && !strcmp(r.password, ok[i].password),
		       "url_parse_redis %s: user \"%s\" password \"%s\"", ok[i].in, ok[i].user, ok[i].password);
	}

	static const struct {
		const char *what, *in, *err;
	} bad[] = {
		{ "relative unix path", "unix://relative", "unix socket URL needs an absolute path: unix:///path" },
		{ "http URL", "http://h", "Redis URL must look like redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] or unix:///PATH, not \"http://h\"" },
		{ "bare host:port", "127.0.0.1:6379", "Redis URL must look like" },
		{ "rediss (TLS) URL", "rediss://h", "Redis URL must look like" },
		{ "non-numeric db", "redis://h/abc", "bad Redis database number \"abc\"" },
		{ "negative db", "redis://h/-1", "bad Redis database number \"-1\"" },
		{ "db with trailing text", "redis://h/1x", "bad Redis database number \"1x\"" },
		{ "db with a further path", "redis://h/1/2", "bad Redis database number \"1/2\"" },
		{ "huge db", "redis://h/99999999999", "bad Redis database number" },
		{ "port 0", "redis://h:0", "bad port \"0\"" },
		{ "port abc", "redis://h:abc", "bad port \"abc\"" },
		{ "IPv6 without brackets", "redis://::1", "IPv6 addresses need brackets" },
		{ "bracket inside the brackets", "redis://[[a]:1", "stray '[' or ']'" },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(bad); i++) {
		struct redis_url r;
		char err[256] = "";

		if (tap_ok(url_parse_redis(bad[i].in, &r, err, sizeof err) == -1, "url_parse_redis refuses %s (%s)",
			   bad[i].what, bad[i].in))
			tap_str_has(err, bad[i].err, "url_parse_redis %s: reason", bad[i].what);
		else
			tap_diag("parsed as host \"%s\" port %d db %d", r.host, r.port, r.db);
	}
}

/* url_split_hostport reads a bare number as a port, which is right for --listen 3000 but
 * not for the authority of a URL: there it must be a host (or be refused), never an
 * empty host that the tools then try to connect to. */
static void test_numeric_host(void)
{
	struct url u;
	struct redis_url r;
	char err[256] = "";
	int rc;

	rc = url_parse("http://3000", &u, err, sizeof err);
	if (!tap_ok(rc == -1 || u.host[0], "url_parse http://3000 does not yield an empty host"))
		tap_diag("rc %d host \"%s\" port %d", rc, u.host, u.port);
	rc = url_parse_redis("redis://6380", &r, err, sizeof err);
	if (!tap_ok(rc == -1 || r.host[0], "url_parse_redis redis://6380 does not yield an empty host"))
		tap_diag("rc %d host \"%s\" port %d", rc, r.host, r.port);
}

int main(void)
{
	test_url_parse();
	test_ws_path();
	test_http_base();
	test_split_hostport();
	test_redis();
	test_numeric_host();
	return tap_done();
}
