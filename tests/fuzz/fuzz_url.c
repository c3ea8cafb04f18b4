/* fuzz_url.c: libFuzzer target for lib/url.c, the URLs and addresses the tools accept.
 *
 * The input, up to its first NUL, is the string given to each parser. Properties:
 * - Every field of a parsed URL is NUL-terminated inside its array; an error is a
 *   NUL-terminated sentence, cut to fit the caller's buffer.
 * - url_parse: a known scheme, a port in 1..65535, a non-empty host without / ? # @, a path
 *   that is "" or starts with '/' or '?' with no '#' and no trailing slash before the
 *   query. url_http_base of it parses back to the same host, port and path.
 * - url_ws_path gives exactly the base path (plus "/ws" unless it ends in "/ws") and the
 *   channel query, and -1 exactly when that does not fit; url_http_base likewise.
 * - url_parse_redis: a unix path as written, or host, port, db, user and password that
 *   written back as redis://user:password@host:port/db parse to the same values.
 * - url_split_hostport never writes past hostlen and keeps a preset host for ":port". */
#include <string.h>

#include "fuzz.h"
#include "url.h"

/* s is NUL-terminated inside its n-byte array. */
#define TERMINATED(s) (memchr((s), '\0', sizeof(s)) != NULL)

static void check_err(const char *err, size_t errlen)
{
	FUZZ_CHECK(memchr(err, '\0', errlen));
	FUZZ_CHECK(errlen == 1 || err[0]);
}

static int valid_port(int p)
{
	return p >= 1 && p <= 65535;
}

/* url_ws_path's result, built the obvious way. */
static size_t expect_ws_path(const struct url *u, const char *const *chans, size_t n, char *out)
{
	size_t plen = strcspn(u->path, "?"), o = plen;

	memcpy(out, u->path, plen);
	if (!(plen >= 3 && !memcmp(u->path + plen - 3, "/ws", 3)))
		memcpy(out + o, "/ws", 3), o += 3;
	for (size_t i = 0; i < n; i++) {
		out[o++] = i ? '&' : '?';
		memcpy(out + o, "chan=", 5), o += 5;
		memcpy(out + o, chans[i], strlen(chans[i])), o += strlen(chans[i]);
	}
	out[o] = '\0';
	return o;
}

static void check_ws_path(const struct url *u, struct fuzz_in *in)
{
	static const char *const names[] = { "pubsub", "a", "b.c", "d:e",
		"abcdefghijklmnopqrstuvwxyz0123456789_-.:ABCDEFGHIJKLMNOPQRSTUVWX" };
	const char *chans[16];
	size_t n = fuzz_u8(in) % 17, want_len;
	char want[1024 + 16 * 80], *out;

	for (size_t i = 0; i < n; i++)
		chans[i] = names[fuzz_u8(in) % 5];
	want_len = expect_ws_path(u, chans, n, want);

	out = malloc(want_len + 1); /* exactly enough */
	FUZZ_CHECK(url_ws_path(u, chans, n, out, want_len + 1) == 0 && !strcmp(out, want));
	free(out);
	out = malloc(want_len); /* one byte short */
	FUZZ_CHECK(url_ws_path(u, chans, n, out, want_len) == -1);
	free(out);
}

static void check_http_base(const struct url *u)
{
	char buf[1024], err[256], *out;
	struct url back;
	size_t len;

	FUZZ_CHECK(url_http_base(u, buf, sizeof buf) == 0);
	len = strlen(buf);
	out = malloc(len + 1);
	FUZZ_CHECK(url_http_base(u, out, len + 1) == 0 && !strcmp(out, buf));
	free(out);
	out = malloc(len);
	FUZZ_CHECK(url_http_base(u, out, len) == -1);
	free(out);

	/* It is a URL again, and the same server. */
	FUZZ_CHECK(url_parse(buf, &back, err, sizeof err) == 0);
	FUZZ_CHECK(!strcmp(back.scheme, url_is_tls(u) ? "https" : "http"));
	FUZZ_CHECK(!strcmp(back.host, u->host) && back.port == u->port);
	FUZZ_CHECK(strlen(back.path) == strcspn(u->path, "?") &&
		   !strncmp(back.path, u->path, strlen(back.path)));
}

static void check_url(const char *s, struct fuzz_in *in)
{
	struct url u;
	char err[256], small[8];

	if (url_parse(s, &u, err, sizeof err)) {
		size_t cap = 1 + fuzz_u8(in) % sizeof small;
		check_err(err, sizeof err);
		FUZZ_CHECK(url_parse(s, &u, small, cap) == -1);
		check_err(small, cap);
		FUZZ_CHECK(!strncmp(small, err, strlen(small)));
		return;
	}
	FUZZ_CHECK(TERMINATED(u.scheme) && TERMINATED(u.host) && TERMINATED(u.path));
	FUZZ_CHECK(!strcmp(u.scheme, "http") || !strcmp(u.scheme, "https") ||
		   !strcmp(u.scheme, "ws") || !strcmp(u.scheme, "wss"));
	FUZZ_CHECK(url_is_tls(&u) == (!strcmp(u.scheme, "https") || !strcmp(u.scheme, "wss")));
	FUZZ_CHECK(valid_port(u.port));
	FUZZ_CHECK(u.host[0] && !strpbrk(u.host, "/?#@"));
	FUZZ_CHECK(!u.path[0] || u.path[0] == '/' || u.path[0] == '?');
	FUZZ_CHECK(!strchr(u.path, '#'));
	size_t plen = strcspn(u.path, "?");
	FUZZ_CHECK(plen == 0 || u.path[plen - 1] != '/');
	check_http_base(&u);
	check_ws_path(&u, in);
}

static void check_redis(const char *s)
{
	struct redis_url r, back;
	char err[256], buf[1200];

	if (url_parse_redis(s, &r, err, sizeof err)) {
		check_err(err, sizeof err);
		return;
	}
	FUZZ_CHECK(TERMINATED(r.host) && TERMINATED(r.path) && TERMINATED(r.user) &&
		   TERMINATED(r.password));
	if (r.is_unix) {
		FUZZ_CHECK(r.path[0] == '/' && !strcmp(r.path, s + 7));
		return;
	}
	FUZZ_CHECK(r.host[0] && valid_port(r.port) && r.db >= 0 && r.db <= 1000000);
	FUZZ_CHECK(!strchr(r.user, ':') && !strchr(r.user, '@') && !strchr(r.password, '@'));
	snprintf(buf, sizeof buf, "redis://%s:%s@%s%s%s:%d/%d", r.user, r.password,
		 strchr(r.host, ':') ? "[" : "", r.host, strchr(r.host, ':') ? "]" : "", r.port, r.db);
	FUZZ_CHECK(url_parse_redis(buf, &back, err, sizeof err) == 0);
	FUZZ_CHECK(!back.is_unix && !strcmp(back.host, r.host) && back.port == r.port &&
		   back.db == r.db && !strcmp(back.user, r.user) &&
		   !strcmp(back.password, r.password));
}

static void check_hostport(const char *s, struct fuzz_in *in)
{
	size_t hostlen = 1 + fuzz_u8(in) % 64;
	char *host = malloc(hostlen), err[256];
	int port = -1;
	const char *preset = fuzz_u8(in) & 1 && hostlen > 4 ? "keep" : "";

	FUZZ_CHECK(host);
	memset(host, 0, hostlen);
	memcpy(host, preset, strlen(preset) + 1);
	if (url_split_hostport(s, host, hostlen, &port, err, sizeof err) == 0) {
		/* An empty host only from a bare port: chatd's "--listen :PORT" (every interface). */
		FUZZ_CHECK(memchr(host, '\0', hostlen));
		FUZZ_CHECK(host[0] || (s[0] && strspn(s, "0123456789") == strlen(s)));
		FUZZ_CHECK(port == -1 || valid_port(port));
		/* Port only (or nothing at all): the preset host stays. */
		if (!s[0] || s[0] == ':' || !strncmp(s, "[]", 2) || strspn(s, "0123456789") == strlen(s))
			FUZZ_CHECK(!strcmp(host, preset));
		else if (port == -1) /* no port given: the whole text (less brackets) is the host */
			FUZZ_CHECK(strlen(host) == strlen(s) - (s[0] == '[' ? 2 : 0));
	} else {
		check_err(err, sizeof err);
	}
	free(host);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_dup(data, size, 1);
	uint8_t *tail = malloc(size ? size : 1);
	struct fuzz_in params;

	FUZZ_CHECK(tail);
	for (size_t i = 0; i < size; i++) /* parameters come off the end, reversed */
		tail[i] = data[size - 1 - i];
	params = (struct fuzz_in){ tail, size };

	check_url(s, &params);
	check_redis(s);
	check_hostport(s, &params);
	free(tail);
	free(s);
	return 0;
}
