/* target.c: what chat-bench talks to, and the payload it sends through it.
 *
 * A target is a publish URL, a body around the payload and a WebSocket URL to subscribe
 * at; the rest of chat-bench only sees these. chatd is the default; any other relay is
 * described by templates with {chan} and {payload} in them (nchan: POST /pub/{chan} with
 * the raw payload, subscribe at ws://HOST/sub/{chan}). Subscribers find the payload by its
 * tag wherever the relay puts it in a frame, so frames need no template. */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "fmt.h"
#include "url.h"

#define CHATD_BODY "{\"chan\":\"{chan}\",\"msg\":\"{payload}\"}"
#define RAW_BODY "{payload}"

/* tmpl with every "{chan}" replaced by chan; the first len bytes of tmpl only. */
static int expand(const char *tmpl, size_t len, const char *chan, char *out, size_t cap)
{
	size_t o = 0, clen = strlen(chan);

	for (size_t i = 0; i < len; i++) {
		const char *add = tmpl + i;
		size_t n = 1;

		if (len - i >= 6 && !memcmp(tmpl + i, "{chan}", 6)) {
			add = chan;
			n = clen;
			i += 5;
		}
		if (o + n >= cap)
			return -1;
		memcpy(out + o, add, n);
		o += n;
	}
	out[o] = '\0';
	return 0;
}

/* The body template splits at its one {payload}. */
static int body_init(struct bench_target *t, const char *tmpl, const char *chan, char *err,
		     size_t errlen)
{
	const char *at = strstr(tmpl, "{payload}");

	if (!at || strstr(at + 9, "{payload}"))
		return err_set(err, errlen, "--body must contain {payload} exactly once, not \"%s\"",
			       tmpl);
	if (expand(tmpl, (size_t)(at - tmpl), chan, t->body_pre, sizeof t->body_pre) ||
	    expand(at + 9, strlen(at + 9), chan, t->body_post, sizeof t->body_post))
		return err_set(err, errlen, "--body template too long");
	return 0;
}

/* A subscription URL from a template: plain ws:// (or http://) only; see subs.c. */
static int sub_from_template(struct bench_target *t, const char *tmpl, const char *chan,
			     char *err, size_t errlen)
{
	char text[1200];
	struct url u;

	if (expand(tmpl, strlen(tmpl), chan, text, sizeof text))
		return err_set(err, errlen, "--sub-url too long");
	if (url_parse(text, &u, err, errlen))
		return -1;
	if (url_is_tls(&u))
		return err_set(err, errlen, "subscribers speak plain WebSocket only (ws://), not \"%s\"",
			       text);
	snprintf(t->ws_host, sizeof t->ws_host, "%s", u.host);
	t->ws_port = u.port;
	snprintf(t->ws_path, sizeof t->ws_path, "%s%s", u.path[0] == '/' ? "" : "/", u.path);
	return 0;
}

/* chatd's subscription: {prefix}/ws?chan=CHAN on the server's host and port. */
static int sub_chatd(struct bench_target *t, const struct url *base, const char *chan,
		     char *err, size_t errlen)
{
	const char *chans[1] = { chan };

	if (url_is_tls(base))
		return err_set(err, errlen, "subscribers speak plain WebSocket only: use http:// or "
			       "ws://, not %s://", base->scheme);
	if (url_ws_path(base, chans, 1, t->ws_path, sizeof t->ws_path))
		return err_set(err, errlen, "server URL too long");
	snprintf(t->ws_host, sizeof t->ws_host, "%s", base->host);
	t->ws_port = base->port;
	/* chatd's envelope is {"chan":..,"seq":N,...,"msg":..}: its own count per channel */
	t->seq_key = "\"seq\":";
	return 0;
}

int target_init(struct bench_target *t, const struct bench_opts *o, char *err, size_t errlen)
{
	int v6;
	struct url base;
	char http[1100];

	memset(t, 0, sizeof *t);
	t->kind = o->pub_tmpl || o->sub_tmpl || o->body_tmpl ? "template" : "chatd";
	if ((!o->pub_tmpl || !o->sub_tmpl) && url_parse(o->url, &base, err, errlen))
		return -1;
	if (o->pub_tmpl) {
		if (expand(o->pub_tmpl, strlen(o->pub_tmpl), o->chan, t->pub_url, sizeof t->pub_url))
			return err_set(err, errlen, "--pub-url too long");
	} else if (url_http_base(&base, http, sizeof http) ||
		   (size_t)snprintf(t->pub_url, sizeof t->pub_url, "%s/", http) >= sizeof t->pub_url) {
		return err_set(err, errlen, "server URL too long");
	}
	{
		struct url pu;
		if (url_parse(t->pub_url, &pu, err, errlen))
			return -1;
		if (url_is_tls(&pu) || strcmp(pu.scheme, "http"))
			return err_set(err, errlen, "publishers speak plain HTTP only (http://), not "
				       "\"%s\"", t->pub_url);
	}
	if (o->sub_tmpl ? sub_from_template(t, o->sub_tmpl, o->chan, err, errlen)
			: sub_chatd(t, &base, o->chan, err, errlen))
		return -1;
	/* a raw publish URL takes the raw payload unless told otherwise */
	if (body_init(t, o->body_tmpl ? o->body_tmpl : o->pub_tmpl ? RAW_BODY : CHATD_BODY,
		      o->chan, err, errlen))
		return -1;
	snprintf(t->content_type, sizeof t->content_type, "%s",
		 o->content_type ? o->content_type
		 : !o->body_tmpl && !o->pub_tmpl ? "application/json" : "text/plain");
	v6 = strchr(t->ws_host, ':') != NULL;
	snprintf(t->ws_url, sizeof t->ws_url, "ws://%s%s%s:%d%s", v6 ? "[" : "", t->ws_host,
		 v6 ? "]" : "", t->ws_port, t->ws_path);
	return 0;
}

void payload_tag(char tag[PAYLOAD_TAG_LEN + 1], uint32_t run)
{
	snprintf(tag, PAYLOAD_TAG_LEN + 1, "chb:%08" PRIx32 ":", run);
}

size_t payload_write(char *buf, const char *tag, const struct payload *p, size_t size)
{
	/* by hand (fmt.h): snprintf was 30% of the meter's own instructions per post */
	size_t len = PAYLOAD_TAG_LEN;

	memcpy(buf, tag, PAYLOAD_TAG_LEN);
	len += fmt_u64(buf + len, p->id);
	buf[len++] = ':';
	len += fmt_u64(buf + len, p->pub);
	buf[len++] = ':';
	len += fmt_i64(buf + len, p->sent_ns);
	buf[len++] = ':';
	buf[len] = '\0';

	if (len < size) {
		memset(buf + len, 'x', size - len);
		len = size;
	}
	return len;
}

/* A decimal number ending at ':'; advances *s past the colon. */
static int read_num(const char **s, const char *end, uint64_t *out)
{
	const char *p = *s;
	uint64_t v = 0;

	if (p >= end || *p < '0' || *p > '9')
		return -1;
	while (p < end && *p >= '0' && *p <= '9') {
		if (v > (UINT64_MAX - 9) / 10)
			return -1;
		v = v * 10 + (uint64_t)(*p++ - '0');
	}
	if (p >= end || *p != ':')
		return -1;
	*s = p + 1;
	*out = v;
	return 0;
}

int payload_read(const char *p, size_t len, const char *tag, struct payload *out)
{
	const char *end = p + len;
	uint64_t pub, ns;

	if (len < PAYLOAD_TAG_LEN || memcmp(p, tag, PAYLOAD_TAG_LEN))
		return -1;
	p += PAYLOAD_TAG_LEN;
	if (read_num(&p, end, &out->id) || read_num(&p, end, &pub) || read_num(&p, end, &ns) ||
	    pub > UINT32_MAX || ns > INT64_MAX)
		return -1;
	out->pub = (uint32_t)pub;
	out->sent_ns = (int64_t)ns;
	return 0;
}
