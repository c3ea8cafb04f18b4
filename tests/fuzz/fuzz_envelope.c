/* fuzz_envelope.c: libFuzzer target for lib/envelope.c, the JSON that crosses the wire.
 *
 * Properties:
 * - env_pub_parse (HTTP: no default channel) either fails with a short printable error,
 *   or gives a valid channel, a valid key or none, and a msg that is one minified JSON
 *   value; the same body over WebSocket gives the same request; env_pub_body of it parses
 *   back to the same channel and msg.
 * - Over WebSocket (a default channel), a body that is not an object with a "msg" member
 *   is published as a JSON string of the body itself, to the default channel.
 * - env_pub_text and env_pub_value accept exactly when the channel, the UTF-8 and (for a
 *   value) the JSON are valid, and keep the text or the minified value.
 * - env_build's envelope is minified JSON whose members are chan, seq, epoch, ts and msg
 *   in that order, msg relayed byte for byte; env_pos_of reads back seq and epoch, and a
 *   client's env_msg_parse reads back chan, seq, epoch and ts.
 * - env_pos_of and env_msg_parse on arbitrary bytes stay inside the input.
 * - env_key_check accepts exactly 1 to 100 bytes of 0x21..0x7e; env_error_frame gives
 *   valid JSON that decodes to the error text. */
#include <cjson/cJSON.h>
#include <string.h>

#include "envelope.h"
#include "fuzz.h"
#include "json.h"
#include "utf8.h"

#define MAX_SAFE 9007199254740991LL /* 2^53 - 1: what a double (cJSON, JavaScript) holds */

/* The longest valid channel name: every allowed character, CHAN_MAX of them. */
static const char long_chan[] = "abcdefghijklmnopqrstuvwxyz0123456789_-.:ABCDEFGHIJKLMNOPQRSTUVWX";
_Static_assert(sizeof long_chan == CHAN_MAX + 1, "long_chan is CHAN_MAX long");

/* An error for the user: non-empty, printable ASCII, shorter than its buffer. */
static void check_err(const char *err, size_t errlen)
{
	size_t n = strnlen(err, errlen);

	FUZZ_CHECK(n > 0 && n < errlen);
	for (size_t i = 0; i < n; i++)
		FUZZ_CHECK(err[i] >= 0x20 && err[i] < 0x7f);
}

static void check_minified(const char *text, size_t len)
{
	char *out = malloc(len + 1);
	size_t at;
	const char *why;

	FUZZ_CHECK(out);
	FUZZ_CHECK(json_minify(text, len, out, &at, &why) == (long)len && !memcmp(out, text, len));
	free(out);
}

static void check_pub(const struct env_pub *p)
{
	size_t clen = strnlen(p->chan, sizeof p->chan), klen = strnlen(p->key, sizeof p->key);

	FUZZ_CHECK(clen < sizeof p->chan && !chan_check(p->chan, clen));
	FUZZ_CHECK(klen < sizeof p->key && (klen == 0 || !env_key_check(p->key, klen)));
	FUZZ_CHECK(p->msg && p->msg_len > 0 && p->msg[p->msg_len] == '\0');
	FUZZ_CHECK(strlen(p->msg) == p->msg_len); /* valid JSON holds no raw NUL */
	check_minified(p->msg, p->msg_len);
}

static int same_pub(const struct env_pub *a, const struct env_pub *b)
{
	return !strcmp(a->chan, b->chan) && !strcmp(a->key, b->key) && a->msg_len == b->msg_len &&
	       !memcmp(a->msg, b->msg, a->msg_len);
}

/* Build the envelope for p at a position taken from in, and read it back every way. */
static void check_envelope(const struct env_pub *p, struct fuzz_in *in)
{
	static const char alphabet[] = "0123456789abcdefghijklmnopqrstuvwxyz";
	char epoch[ENV_EPOCH_MAX + 1], got_epoch[ENV_EPOCH_MAX + 1];
	size_t elen = fuzz_u8(in) % (ENV_EPOCH_MAX + 1), pre = fuzz_u8(in) % 32, len, pos = 0;
	size_t klen, vlen;
	uint64_t seq = fuzz_u64(in), got_seq = 0;
	int64_t ts = (int64_t)(fuzz_u64(in) % (2 * (uint64_t)MAX_SAFE + 1)) - MAX_SAFE;
	const char *key, *val, *names[] = { "chan", "seq", "epoch", "ts", "msg" };
	struct env_msg m;
	char *buf, *env;

	for (size_t i = 0; i < elen; i++)
		epoch[i] = alphabet[fuzz_u8(in) % 36];
	epoch[elen] = '\0';
	buf = env_build(p, seq, epoch, ts, pre, &len);
	FUZZ_CHECK(buf);
	env = buf + pre;
	FUZZ_CHECK(env[len] == '\0' && strlen(env) == len);
	check_minified(env, len);

	/* Members in env_build's order; msg relayed unchanged. */
	for (size_t k = 0; k < 5; k++) {
		FUZZ_CHECK(json_object_next(env, len, &pos, &key, &klen, &val, &vlen));
		FUZZ_CHECK(klen == strlen(names[k]) && !memcmp(key, names[k], klen));
	}
	FUZZ_CHECK(vlen == p->msg_len && !memcmp(val, p->msg, vlen));
	FUZZ_CHECK(!json_object_next(env, len, &pos, &key, &klen, &val, &vlen));

	FUZZ_CHECK(env_pos_of(env, len, &got_seq, got_epoch) == 0);
	FUZZ_CHECK(got_seq == seq && !strcmp(got_epoch, epoch));

	FUZZ_CHECK(env_msg_parse(env, len, &m) == 0);
	FUZZ_CHECK(!m.type && m.chan && !strcmp(m.chan, p->chan) && m.msg);
	FUZZ_CHECK(m.epoch && !strcmp(m.epoch, epoch));
	FUZZ_CHECK(m.seq == (seq >= 1 && seq <= (uint64_t)MAX_SAFE ? seq : 0));
	FUZZ_CHECK(m.ts == ts);
	env_msg_free(&m);
	free(buf);
}

static void check_parse(const char *body, size_t size, struct fuzz_in *in)
{
	static const char *const defaults[] = { "pubsub", long_chan, "no spaces" };
	char err[256], small[16];
	struct env_pub p, q;
	size_t blen;
	char *b;
	int rc = env_pub_parse(body, size, NULL, &p, err, sizeof err);

	if (rc) {
		FUZZ_CHECK(rc == -1 && !p.msg);
		check_err(err, sizeof err);
		/* A short buffer gets the start of the same sentence. */
		size_t cap = 1 + fuzz_u8(in) % sizeof small;
		FUZZ_CHECK(env_pub_parse(body, size, NULL, &q, small, cap) == -1);
		FUZZ_CHECK(strlen(small) < cap && !strncmp(small, err, strlen(small)));
	} else {
		check_pub(&p);
		FUZZ_CHECK(env_pub_parse(body, size, "pubsub", &q, err, sizeof err) == 0);
		FUZZ_CHECK(same_pub(&p, &q));
		env_pub_free(&q);
		b = env_pub_body(&p, &blen);
		FUZZ_CHECK(b && strlen(b) == blen);
		FUZZ_CHECK(env_pub_parse(b, blen, NULL, &q, err, sizeof err) == 0);
		FUZZ_CHECK(!strcmp(p.chan, q.chan) && !q.key[0] && p.msg_len == q.msg_len &&
			   !memcmp(p.msg, q.msg, p.msg_len));
		env_pub_free(&q);
		free(b);
		check_envelope(&p, in);
		env_pub_free(&p);
	}

	/* WebSocket: is this a publish object (an object with a "msg" member)? */
	int is_request = 0;
	char *min = malloc(size + 1);
	size_t at, pos = 0, klen, vlen;
	const char *why, *key, *val;
	long n = json_minify(body, size, min, &at, &why);
	FUZZ_CHECK(min);
	if (n > 0 && min[0] == '{')
		while (json_object_next(min, (size_t)n, &pos, &key, &klen, &val, &vlen))
			is_request |= klen == 3 && !memcmp(key, "msg", 3);
	free(min);

	for (size_t d = 0; d < sizeof defaults / sizeof defaults[0]; d++) {
		int valid_default = d < 2;
		int ws = env_pub_parse(body, size, defaults[d], &q, err, sizeof err);
		if (!utf8_valid(body, size)) {
			FUZZ_CHECK(ws == -1 && !strcmp(err, "body is not valid UTF-8"));
			continue;
		}
		if (ws) {
			check_err(err, sizeof err);
			FUZZ_CHECK(rc || !valid_default);
			FUZZ_CHECK(is_request || !valid_default);
			continue;
		}
		check_pub(&q);
		FUZZ_CHECK(valid_default || is_request); /* text to a bad default is refused */
		if (!is_request) { /* plain text, as a JSON string */
			char *quoted = malloc(6 * size + 3);
			size_t qn = json_quote(quoted, body, size);
			FUZZ_CHECK(!strcmp(q.chan, defaults[d]) && !q.key[0]);
			FUZZ_CHECK(q.msg_len == qn && !memcmp(q.msg, quoted, qn));
			free(quoted);
		} else if (rc) { /* only the channel was missing */
			FUZZ_CHECK(!strcmp(q.chan, defaults[d]));
		}
		env_pub_free(&q);
	}
}

static void check_text_value(struct fuzz_in *in)
{
	size_t clen, tlen;
	const char *c = fuzz_bytes(in, fuzz_u8(in) % (CHAN_MAX + 6), &clen);
	char *chan = fuzz_dup(c, clen, 0), err[256];
	int chan_ok = !chan_check(chan, clen);
	const char *t = fuzz_bytes(in, in->n / 2, &tlen);
	char *text = fuzz_dup(t, tlen, 0);
	int utf8_ok = utf8_valid(text, tlen);
	struct env_pub p;

	if (env_pub_text(chan, clen, text, tlen, &p, err, sizeof err) == 0) {
		char *quoted = malloc(6 * tlen + 3);
		size_t qn = json_quote(quoted, text, tlen);
		FUZZ_CHECK(chan_ok && utf8_ok);
		check_pub(&p);
		FUZZ_CHECK(strlen(p.chan) == clen && !memcmp(p.chan, chan, clen));
		FUZZ_CHECK(p.msg_len == qn && !memcmp(p.msg, quoted, qn));
		free(quoted);
		env_pub_free(&p);
	} else {
		FUZZ_CHECK(!chan_ok || !utf8_ok);
		check_err(err, sizeof err);
	}

	if (env_pub_value(chan, clen, text, tlen, &p, err, sizeof err) == 0) {
		char *min = malloc(tlen + 1);
		size_t at;
		const char *why;
		long n = json_minify(text, tlen, min, &at, &why);
		FUZZ_CHECK(chan_ok && utf8_ok && n > 0);
		check_pub(&p);
		FUZZ_CHECK(p.msg_len == (size_t)n && !memcmp(p.msg, min, (size_t)n));
		check_envelope(&p, in);
		free(min);
		env_pub_free(&p);
	} else {
		FUZZ_CHECK(!p.msg);
		check_err(err, sizeof err);
	}
	free(chan);
	free(text);
}

/* The server's hot-path reader on bytes chatd never built. */
static void check_pos_arbitrary(const char *s, size_t size)
{
	char epoch[ENV_EPOCH_MAX + 1];
	uint64_t seq;

	if (env_pos_of(s, size, &seq, epoch) == 0)
		FUZZ_CHECK(strnlen(epoch, sizeof epoch) < sizeof epoch);
}

static void check_msg_arbitrary(const char *s, size_t size)
{
	struct env_msg m;

	if (env_msg_parse(s, size, &m) == 0) {
		FUZZ_CHECK(m.root && (m.type || (m.chan && m.msg)));
		env_msg_free(&m);
	} else {
		FUZZ_CHECK(!m.root);
	}
}

static void check_key(const char *s, size_t size)
{
	int ok = size >= 1 && size <= ENV_KEY_MAX;
	struct env_pub p;
	char err[256];

	for (size_t i = 0; i < size; i++)
		ok &= s[i] >= 0x21 && s[i] <= 0x7e;
	FUZZ_CHECK((env_key_check(s, size) == NULL) == ok);

	memset(&p, 0, sizeof p);
	FUZZ_CHECK((env_pub_set_key(&p, s, size, err, sizeof err) == 0) == ok);
	if (ok) {
		FUZZ_CHECK(strlen(p.key) == size && !memcmp(p.key, s, size));
		FUZZ_CHECK(env_pub_set_key(&p, s, size, err, sizeof err) == 0); /* same key again */
		if (size > 1) /* a different key (a prefix) is refused */
			FUZZ_CHECK(env_pub_set_key(&p, s, size - 1, err, sizeof err) == -1);
	} else {
		check_err(err, sizeof err);
		FUZZ_CHECK(!p.key[0]);
	}
}

static void check_error_frame(const char *s, size_t size, struct fuzz_in *in)
{
	char *text = fuzz_dup(s, size, 1), *buf, *frame;
	size_t pre = fuzz_u8(in) % 32, len, tlen = strlen(text);
	cJSON *j;

	buf = env_error_frame(text, pre, &len);
	FUZZ_CHECK(buf);
	frame = buf + pre;
	FUZZ_CHECK(frame[len] == '\0' && strlen(frame) == len);
	check_minified(frame, len);
	if (utf8_valid(text, tlen)) {
		struct env_msg m;
		FUZZ_CHECK(env_msg_parse(frame, len, &m) == 0);
		FUZZ_CHECK(m.type && !strcmp(m.type, "error"));
		j = cJSON_GetObjectItemCaseSensitive(m.root, "error");
		FUZZ_CHECK(cJSON_IsString(j) && !strcmp(j->valuestring, text));
		env_msg_free(&m);
	}
	free(buf);
	free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_dup(data, size, 0);
	/* Parameters (sizes, positions) come off the end, reversed: the body is the whole input. */
	uint8_t *tail = malloc(size ? size : 1);
	struct fuzz_in params, parts = { data, size };

	FUZZ_CHECK(tail);
	for (size_t i = 0; i < size; i++)
		tail[i] = data[size - 1 - i];
	params = (struct fuzz_in){ tail, size };

	check_parse(s, size, &params);
	check_text_value(&parts);
	check_pos_arbitrary(s, size);
	check_msg_arbitrary(s, size);
	check_key(s, size);
	check_error_frame(s, size, &params);
	free(tail);
	free(s);
	return 0;
}
