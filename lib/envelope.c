/* envelope.c: decoding publish requests and serialising envelopes.
 *
 * A request is checked strictly (UTF-8, then RFC 8259 by json.c) and its "msg" value is
 * kept as the sender wrote it, minus whitespace: numbers keep every digit. Envelopes are
 * written by hand: the value is already compact JSON and a channel name needs no
 * escaping (see chan.h), so one memcpy per part suffices. Clients decode with cJSON. */
#include "envelope.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "json.h"
#include "err.h"
#include "utf8.h"


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
		char shown[81];
		return err_set(err, errlen, "invalid channel name \"%s\": %s",
			    utf8_printable(shown, sizeof shown, chan, len), why);
	}
	memcpy(out->chan, chan, len);
	out->chan[len] = '\0';
	return 0;
}

const char *env_key_check(const char *k, size_t len)
{
	if (len == 0 || len > ENV_KEY_MAX)
		return "an idempotency key has 1 to 100 characters";
	for (size_t i = 0; i < len; i++)
		if (k[i] < 0x21 || k[i] > 0x7e)
			return "an idempotency key has only visible ASCII characters (no spaces)";
	return NULL;
}

int env_pub_set_key(struct env_pub *p, const char *k, size_t len, char *err, size_t errlen)
{
	const char *why = env_key_check(k, len);

	if (why)
		return err_set(err, errlen, "%s", why);
	if (p->key[0] && (strlen(p->key) != len || memcmp(p->key, k, len)))
		return err_set(err, errlen, "the Idempotency-Key header and the \"key\" member differ; give one key");
	memcpy(p->key, k, len);
	p->key[len] = '\0';
	return 0;
}

int env_pub_text(const char *chan, size_t chan_len, const char *text, size_t len,
		 struct env_pub *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof *out);
	if (set_chan(out, chan, chan_len, err, errlen))
		return -1;
	if (!utf8_valid(text, len))
		return err_set(err, errlen, "message is not valid UTF-8");
	out->msg = malloc(6 * len + 3);
	if (!out->msg)
		return err_set(err, errlen, "out of memory");
	out->msg_len = json_quote(out->msg, text, len);
	out->msg[out->msg_len] = '\0';
	return 0;
}

int env_pub_value(const char *chan, size_t chan_len, const char *json, size_t len,
		  struct env_pub *out, char *err, size_t errlen)
{
	const char *why = NULL;
	size_t bad_at = 0;
	long n;

	memset(out, 0, sizeof *out);
	if (set_chan(out, chan, chan_len, err, errlen))
		return -1;
	if (!utf8_valid(json, len))
		return err_set(err, errlen, "message is not valid UTF-8");
	out->msg = malloc(len + 1);
	if (!out->msg)
		return err_set(err, errlen, "out of memory");
	n = json_minify(json, len, out->msg, &bad_at, &why);
	if (n < 0) {
		env_pub_free(out);
		return err_set(err, errlen, "invalid JSON (%s at byte %zu)", why, bad_at);
	}
	out->msg_len = (size_t)n;
	return 0;
}

char *env_pub_body(const struct env_pub *p, size_t *len)
{
	size_t cap = strlen(p->chan) + p->msg_len + sizeof "{\"chan\":\"\",\"msg\":}";
	char *body = malloc(cap);

	if (body) /* a valid channel name needs no escaping */
		*len = (size_t)snprintf(body, cap, "{\"chan\":\"%s\",\"msg\":%s}", p->chan, p->msg);
	return body;
}

int env_pub_parse(const char *body, size_t len, const char *default_chan, struct env_pub *out,
		  char *err, size_t errlen)
{
	const char *why = NULL, *key, *val, *chan = NULL, *msg = NULL, *ikey = NULL, *tok = NULL;
	size_t bad_at = 0, pos = 0, klen, vlen, chan_len = 0, msg_len = 0, ikey_len = 0, tok_len = 0;
	char *min;
	long n;
	int rc = -1;

	memset(out, 0, sizeof *out);
	if (!utf8_valid(body, len))
		return err_set(err, errlen, "body is not valid UTF-8");
	min = malloc(len + 1);
	if (!min)
		return err_set(err, errlen, "out of memory");
	n = json_minify(body, len, min, &bad_at, &why);
	if (n > 0 && min[0] == '{') {
		/* The first "chan" and the first "msg" member count; others are ignored. */
		while (json_object_next(min, (size_t)n, &pos, &key, &klen, &val, &vlen)) {
			if (!chan && klen == 4 && !memcmp(key, "chan", 4))
				chan = val, chan_len = vlen;
			else if (!msg && klen == 3 && !memcmp(key, "msg", 3))
				msg = val, msg_len = vlen;
			else if (!ikey && klen == 3 && !memcmp(key, "key", 3))
				ikey = val, ikey_len = vlen;
			else if (!tok && klen == 5 && !memcmp(key, "token", 5))
				tok = val, tok_len = vlen;
		}
	}
	if (default_chan && !msg) {
		/* WebSocket: anything that is not a publish object is plain text. */
		free(min);
		return env_pub_text(default_chan, strlen(default_chan), body, len, out, err, errlen);
	}
	if (n < 0 && !strcmp(why, "no value")) {
		err_set(err, errlen, "body is empty; send an object like {\"chan\":\"pubsub\",\"msg\":\"hello\"}");
		goto out;
	}
	if (n < 0) {
		err_set(err, errlen, "body is not valid JSON (%s at byte %zu); send an object like {\"chan\":\"pubsub\",\"msg\":\"hello\"}",
		     why, bad_at);
		goto out;
	}
	if (min[0] != '{') {
		err_set(err, errlen, "body must be a JSON object like {\"chan\":\"pubsub\",\"msg\":\"hello\"}");
		goto out;
	}
	if (!chan && !default_chan) {
		err_set(err, errlen, "missing \"chan\": name the channel to publish to, e.g. {\"chan\":\"pubsub\",\"msg\":\"hello\"}");
		goto out;
	}
	if (chan && chan[0] != '"') {
		err_set(err, errlen, "\"chan\" must be a string");
		goto out;
	}
	if (chan) {
		char name[CHAN_MAX + 2];
		long nl = json_unescape_short(chan + 1, chan_len - 2, name, sizeof name);
		if (set_chan(out, name, nl < 0 ? sizeof name : (size_t)nl, err, errlen))
			goto out;
	} else if (set_chan(out, default_chan, strlen(default_chan), err, errlen))
		goto out;
	if (!msg) {
		err_set(err, errlen, "missing \"msg\": give the message to publish, any JSON value");
		goto out;
	}
	if (ikey) {
		char k[ENV_KEY_MAX + 2];
		long kl = ikey[0] == '"' ? json_unescape_short(ikey + 1, ikey_len - 2, k, sizeof k) : -1;
		if (ikey[0] != '"') {
			err_set(err, errlen, "\"key\" must be a string");
			goto out;
		}
		for (size_t i = 1; i + 1 < ikey_len; i++) /* json_unescape_short maps these to '?' */
			if ((unsigned char)ikey[i] >= 0x80 || (ikey[i] == '\\' && ikey[++i] == 'u'))
				kl = -2;
		if (kl == -2) {
			err_set(err, errlen, "an idempotency key has only visible ASCII characters (no spaces)");
			goto out;
		}
		if (env_pub_set_key(out, k, kl < 0 ? sizeof k : (size_t)kl, err, errlen))
			goto out;
	}
	if (tok) { /* tokens are base64url and dots: no escapes to decode */
		if (tok[0] != '"' || memchr(tok + 1, '\\', tok_len - 2)) {
			err_set(err, errlen, "\"token\" must be a string (a JWT or an API key)");
			goto out;
		}
		if (!(out->token = strndup(tok + 1, tok_len - 2))) {
			err_set(err, errlen, "out of memory");
			goto out;
		}
	}
	out->msg = malloc(msg_len + 1);
	if (!out->msg) {
		err_set(err, errlen, "out of memory");
		goto out;
	}
	memcpy(out->msg, msg, msg_len);
	out->msg[msg_len] = '\0';
	out->msg_len = msg_len;
	rc = 0;
out:
	if (rc)
		env_pub_free(out);
	free(min);
	return rc;
}

void env_pub_free(struct env_pub *p)
{
	free(p->msg);
	p->msg = NULL;
	free(p->token);
	p->token = NULL;
}

size_t env_sender_member(const char *sender, char *out)
{
	size_t n;

	if (!sender[0]) {
		out[0] = '\0';
		return 0;
	}
	memcpy(out, ",\"sender\":", 10);
	n = 10 + json_quote(out + 10, sender, strnlen(sender, ENV_SENDER_MAX));
	out[n] = '\0';
	return n;
}

char *env_build(const struct env_pub *p, uint64_t seq, const char *epoch, int64_t ts_ms,
		size_t pre, size_t *len)
{
	char sender[6 * ENV_SENDER_MAX + 16];
	size_t slen = env_sender_member(p->sender, sender);
	size_t cap = pre + strlen(p->chan) + strlen(epoch) + slen + p->msg_len + 96;
	char *buf = malloc(cap), *o;
	int n;

	if (!buf)
		return NULL;
	o = buf + pre;
	n = snprintf(o, cap - pre, "{\"chan\":\"%s\",\"seq\":%llu,\"epoch\":\"%s\",\"ts\":%lld%s,\"msg\":",
		     p->chan, (unsigned long long)seq, epoch, (long long)ts_ms, sender);
	memcpy(o + n, p->msg, p->msg_len);
	n += (int)p->msg_len;
	o[n++] = '}';
	o[n] = '\0';
	*len = (size_t)n;
	return buf;
}

char *env_error_frame(const char *err, size_t pre, size_t *len)
{
	size_t elen = strlen(err);
	char *buf = malloc(pre + 6 * elen + 32), *o;

	if (!buf)
		return NULL;
	o = buf + pre;
	memcpy(o, "{\"type\":\"error\",\"error\":", 24);
	*len = 24 + json_quote(o + 24, err, elen);
	o[(*len)++] = '}';
	o[*len] = '\0';
	return buf;
}

int env_pos_of(const char *env, size_t len, uint64_t *seq, char epoch[ENV_EPOCH_MAX + 1])
{
	/* {"chan":"NAME","seq":N,"epoch":"E",... and NAME holds no quote (chan.h) */
	const char *p = memchr(env, ',', len), *end = env + len, *e;
	uint64_t v = 0;

	if (!p || end - p < 9 || memcmp(p, ",\"seq\":", 7))
		return -1;
	for (p += 7; p < end && *p >= '0' && *p <= '9'; p++)
		v = v * 10 + (uint64_t)(*p - '0');
	if (end - p < 11 || memcmp(p, ",\"epoch\":\"", 10))
		return -1;
	p += 10;
	e = memchr(p, '"', (size_t)(end - p));
	if (!e || e - p > ENV_EPOCH_MAX)
		return -1;
	memcpy(epoch, p, (size_t)(e - p));
	epoch[e - p] = '\0';
	*seq = v;
	return 0;
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
	cJSON *seq = cJSON_GetObjectItemCaseSensitive(m->root, "seq"),
	      *epoch = cJSON_GetObjectItemCaseSensitive(m->root, "epoch");

	/* cJSON holds numbers as doubles: exact below 2^53, which no channel will reach
	 * (nor can a JavaScript client count beyond). Anything else counts as absent. */
	m->seq = cJSON_IsNumber(seq) && seq->valuedouble >= 1 && seq->valuedouble <= 9007199254740991.0
			 ? (uint64_t)seq->valuedouble : 0;
	m->epoch = cJSON_IsString(epoch) ? epoch->valuestring : NULL;
	{
		const cJSON *snd = cJSON_GetObjectItemCaseSensitive(m->root, "sender");
		m->sender = cJSON_IsString(snd) ? snd->valuestring : NULL;
	}
	t = cJSON_GetObjectItemCaseSensitive(m->root, "type");
	c = cJSON_GetObjectItemCaseSensitive(m->root, "chan");
	ts = cJSON_GetObjectItemCaseSensitive(m->root, "ts");
	m->type = cJSON_IsString(t) ? t->valuestring : NULL;
	m->chan = cJSON_IsString(c) ? c->valuestring : NULL;
	/* Like seq: past 2^53 a double is no exact count of milliseconds, and past int64 the
	 * cast is undefined behaviour. */
	m->ts = cJSON_IsNumber(ts) && ts->valuedouble >= -9007199254740991.0 &&
			ts->valuedouble <= 9007199254740991.0
		? (int64_t)ts->valuedouble : 0;
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
