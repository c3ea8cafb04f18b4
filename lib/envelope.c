/* envelope.c: decoding publish requests and serialising envelopes.
 *
 * Requests are decoded with cJSON (strictly: valid UTF-8, nothing after the value);
 * envelopes are written by hand because the message value is already compact JSON and
 * the channel name needs no escaping (see chan.h), so one memcpy per part suffices. */
#include "envelope.h"

#include <cjson/cJSON.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "utf8.h"

static int fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static int fail(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return -1;
}

int64_t env_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int set_chan(struct env_pub *out, const char *chan, size_t len, char *err, size_t errlen)
{
	const char *why = chan_check(chan, len);

	if (why) {
		/* Echo the name back printable: it may hold any bytes, and errors travel as JSON. */
		char shown[81];
		size_t n = len < 80 ? len : 80;
		for (size_t i = 0; i < n; i++)
			shown[i] = chan[i] >= 0x20 && chan[i] < 0x7f && chan[i] != '"' ? chan[i] : '?';
		shown[n] = '\0';
		return fail(err, errlen, "invalid channel name \"%s\": %s", shown, why);
	}
	memcpy(out->chan, chan, len);
	out->chan[len] = '\0';
	return 0;
}

/* Parse exactly one JSON value filling body[0..len), allowing surrounding whitespace. */
static cJSON *parse_strict(const char *body, size_t len, size_t *bad_at)
{
	const char *end = NULL;
	cJSON *v = cJSON_ParseWithLengthOpts(body, len, &end, 0);

	if (!v) {
		const char *e = cJSON_GetErrorPtr();
		*bad_at = (e >= body && e <= body + len) ? (size_t)(e - body) : 0;
		return NULL;
	}
	while (end < body + len && (*end == ' ' || *end == '\t' || *end == '\r' || *end == '\n'))
		end++;
	if (end < body + len) {
		*bad_at = (size_t)(end - body);
		cJSON_Delete(v);
		return NULL;
	}
	return v;
}

int env_pub_text(const char *chan, size_t chan_len, const char *text, size_t len,
		 struct env_pub *out, char *err, size_t errlen)
{
	cJSON *s;
	char *copy;

	memset(out, 0, sizeof *out);
	if (set_chan(out, chan, chan_len, err, errlen))
		return -1;
	if (!utf8_valid(text, len))
		return fail(err, errlen, "message is not valid UTF-8");
	copy = malloc(len + 1);
	if (!copy)
		return fail(err, errlen, "out of memory");
	memcpy(copy, text, len);
	copy[len] = '\0';
	s = cJSON_CreateString(copy);
	free(copy);
	out->msg = s ? cJSON_PrintUnformatted(s) : NULL;
	cJSON_Delete(s);
	if (!out->msg)
		return fail(err, errlen, "out of memory");
	out->msg_len = strlen(out->msg);
	return 0;
}

int env_pub_parse(const char *body, size_t len, const char *default_chan, struct env_pub *out,
		  char *err, size_t errlen)
{
	cJSON *root, *chan, *msg;
	size_t bad_at = 0;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (!utf8_valid(body, len))
		return fail(err, errlen, "body is not valid UTF-8");
	root = parse_strict(body, len, &bad_at);
	if (default_chan && (!root || !cJSON_IsObject(root) ||
			     !cJSON_GetObjectItemCaseSensitive(root, "msg"))) {
		/* WebSocket: anything that is not a publish object is plain text. */
		cJSON_Delete(root);
		return env_pub_text(default_chan, strlen(default_chan), body, len, out, err, errlen);
	}
	if (!root)
		return fail(err, errlen, "body is not valid JSON (error at byte %zu); send an object like {\"chan\":\"pubsub\",\"msg\":\"hello\"}",
			    bad_at);
	if (!cJSON_IsObject(root)) {
		fail(err, errlen, "body must be a JSON object like {\"chan\":\"pubsub\",\"msg\":\"hello\"}");
		goto out;
	}
	chan = cJSON_GetObjectItemCaseSensitive(root, "chan");
	msg = cJSON_GetObjectItemCaseSensitive(root, "msg");
	if (!chan && !default_chan) {
		fail(err, errlen, "missing \"chan\": name the channel to publish to, e.g. {\"chan\":\"pubsub\",\"msg\":\"hello\"}");
		goto out;
	}
	if (chan && !cJSON_IsString(chan)) {
		fail(err, errlen, "\"chan\" must be a string");
		goto out;
	}
	if (set_chan(out, chan ? chan->valuestring : default_chan,
		     strlen(chan ? chan->valuestring : default_chan), err, errlen))
		goto out;
	if (!msg) {
		fail(err, errlen, "missing \"msg\": give the message to publish, any JSON value");
		goto out;
	}
	out->msg = cJSON_PrintUnformatted(msg);
	if (!out->msg) {
		fail(err, errlen, "out of memory");
		goto out;
	}
	out->msg_len = strlen(out->msg);
	rc = 0;
out:
	cJSON_Delete(root);
	return rc;
}

void env_pub_free(struct env_pub *p)
{
	cJSON_free(p->msg);
	p->msg = NULL;
}

char *env_build(const struct env_pub *p, int64_t ts_ms, size_t pre, size_t *len)
{
	size_t cl = strlen(p->chan), cap = pre + cl + p->msg_len + 64;
	char *buf = malloc(cap), *o;
	int n;

	if (!buf)
		return NULL;
	o = buf + pre;
	n = snprintf(o, cap - pre, "{\"chan\":\"%s\",\"ts\":%lld,\"msg\":", p->chan, (long long)ts_ms);
	memcpy(o + n, p->msg, p->msg_len);
	n += (int)p->msg_len;
	o[n++] = '}';
	o[n] = '\0';
	*len = (size_t)n;
	return buf;
}

char *env_error_frame(const char *err, size_t pre, size_t *len)
{
	cJSON *s = cJSON_CreateString(err);
	char *q = s ? cJSON_PrintUnformatted(s) : NULL, *buf = NULL;

	cJSON_Delete(s);
	if (q) {
		size_t cap = pre + strlen(q) + 32;
		buf = malloc(cap);
		if (buf)
			*len = (size_t)snprintf(buf + pre, cap - pre, "{\"type\":\"error\",\"error\":%s}", q);
	}
	cJSON_free(q);
	return buf;
}

int env_msg_parse(const char *frame, size_t len, struct env_msg *m)
{
	cJSON *t, *c, *ts;

	memset(m, 0, sizeof *m);
	m->root = cJSON_ParseWithLength(frame, len);
	if (!m->root || !cJSON_IsObject(m->root)) {
		cJSON_Delete(m->root);
		m->root = NULL;
		return -1;
	}
	t = cJSON_GetObjectItemCaseSensitive(m->root, "type");
	c = cJSON_GetObjectItemCaseSensitive(m->root, "chan");
	ts = cJSON_GetObjectItemCaseSensitive(m->root, "ts");
	m->type = cJSON_IsString(t) ? t->valuestring : NULL;
	m->chan = cJSON_IsString(c) ? c->valuestring : NULL;
	m->ts = cJSON_IsNumber(ts) ? (int64_t)ts->valuedouble : 0;
	m->msg = cJSON_GetObjectItemCaseSensitive(m->root, "msg");
	if (!m->type && (!m->chan || !m->msg)) {
		env_msg_free(m);
		return -1;
	}
	return 0;
}

void env_msg_free(struct env_msg *m)
{
	cJSON_Delete(m->root);
	m->root = NULL;
}
