/* target.c: what chat-bench talks to, and the payload it sends through it.
 *
 * A target is the publish URL, the body framing around the payload and the subscription
 * path; the rest of chat-bench only sees these. chatd is the one target today; a relay
 * that takes the raw payload (nchan: POST /pub/CHAN, ws /sub/CHAN) is an empty body_pre
 * and body_post and a NULL frame_key. */
#include "bench.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "url.h"

int target_chatd(struct bench_target *t, const struct url *base, const char *chan, char *err,
		 size_t errlen)
{
	const char *chans[1] = { chan };
	char http[1100];
	int n;

	memset(t, 0, sizeof *t);
	t->kind = "chatd";
	if (url_http_base(base, http, sizeof http) ||
	    (size_t)snprintf(t->pub_url, sizeof t->pub_url, "%s/", http) >= sizeof t->pub_url ||
	    url_ws_path(base, chans, 1, t->ws_path, sizeof t->ws_path)) {
		snprintf(err, errlen, "server URL too long");
		return -1;
	}
	t->content_type = "application/json";
	/* chan is checked by the caller: its characters need no JSON escaping */
	n = snprintf(t->body_pre, sizeof t->body_pre, "{\"chan\":\"%s\",\"msg\":\"", chan);
	if (n < 0 || (size_t)n >= sizeof t->body_pre) {
		snprintf(err, errlen, "channel name too long");
		return -1;
	}
	strcpy(t->body_post, "\"}");
	snprintf(t->ws_host, sizeof t->ws_host, "%s", base->host);
	t->ws_port = base->port;
	t->tls = url_is_tls(base);
	n = snprintf(t->ws_url, sizeof t->ws_url, "%s://%s%s%s:%d%s", t->tls ? "wss" : "ws",
		     strchr(base->host, ':') ? "[" : "", base->host,
		     strchr(base->host, ':') ? "]" : "", base->port, t->ws_path);
	(void)n;
	/* chatd writes the envelope as {"chan":"NAME","ts":MS,"msg":VALUE}; a channel name
	 * cannot hold a quote, so the first "msg":" in a frame is the key. */
	t->frame_key = "\"msg\":\"";
	return 0;
}

void payload_tag(char tag[PAYLOAD_TAG_LEN + 1], uint32_t run)
{
	snprintf(tag, PAYLOAD_TAG_LEN + 1, "chb:%08" PRIx32 ":", run);
}

size_t payload_write(char *buf, const char *tag, const struct payload *p, size_t size)
{
	int n = snprintf(buf, PAYLOAD_HEADER_MAX + 1, "%s%" PRIu64 ":%" PRIu32 ":%" PRId64 ":",
			 tag, p->id, p->pub, p->sent_ns);
	size_t len = n > 0 ? (size_t)n : 0;

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
