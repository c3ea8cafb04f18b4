/* test_envelope.c: publish-request decoding (HTTP and WebSocket), envelope (with its
 * seq/epoch position) and error-frame serialisation, and the client-side frame parser. */
#include <cjson/cJSON.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "envelope.h"
#include "tap.h"
#include "utf8.h"

#define PRE 16 /* LWS_PRE on the usual builds; any value works */

/* The user-facing texts of envelope.c, asserted on by substring. */
#define E_UTF8 "body is not valid UTF-8"
#define E_JSON "body is not valid JSON ("
#define E_JSON_HINT "send an object like {\"chan\":\"pubsub\",\"msg\":\"hello\"}"
#define E_OBJECT "body must be a JSON object like {\"chan\":\"pubsub\",\"msg\":\"hello\"}"
#define E_NOCHAN "missing \"chan\": name the channel to publish to"
#define E_CHANTYPE "\"chan\" must be a string"
#define E_BADCHAN "invalid channel name \""
#define E_NOMSG "missing \"msg\": give the message to publish, any JSON value"
#define E_MSGUTF8 "message is not valid UTF-8"

/* ---- env_pub_parse, HTTP (no default channel) ---- */

static void test_origin_body(void)
{
	const char *body = "{\"chan\":\"pubsub\", \"msg\":\"test message\"}";
	struct env_pub p;
	char err[256] = "";
	int rc = env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err);

	if (!tap_ok(rc == 0, "http: the origin body {\"chan\":\"pubsub\", \"msg\":\"test message\"} is accepted"))
		tap_diag_str("err", err);
	tap_str_eq(p.chan, "pubsub", "http: origin body publishes to pubsub");
	tap_str_eq(p.msg, "\"test message\"", "http: origin body msg is the JSON string \"test message\"");
	tap_long_eq((long long)p.msg_len, 14, "http: origin body msg_len is strlen of the JSON text");
	env_pub_free(&p);
	tap_ok(p.msg == NULL, "env_pub_free clears msg");
	env_pub_free(&p); /* twice is harmless */
}

struct msg_case {
	const char *what;
	const char *value; /* as sent, inside {"chan":"c","msg":VALUE} */
	const char *want;  /* compact JSON the subscribers get */
};

static const struct msg_case msg_cases[] = {
	{ "string", "\"hello\"", "\"hello\"" },
	{ "empty string", "\"\"", "\"\"" },
	{ "string with escapes", "\"a\\\"b\\\\c\\nd\\te\\u0001\"", "\"a\\\"b\\\\c\\nd\\te\\u0001\"" },
	{ "string with \\u escape for e acute (kept as written)", "\"caf\\u00e9\"", "\"caf\\u00e9\"" },
	{ "string with a surrogate pair (kept as written)", "\"\\ud83d\\ude00\"", "\"\\ud83d\\ude00\"" },
	{ "raw UTF-8 string", "\"\xe2\x82\xac \xf0\x9f\x98\x80\"", "\"\xe2\x82\xac \xf0\x9f\x98\x80\"" },
	{ "escaped slash kept as written", "\"a\\/b\"", "\"a\\/b\"" },
	{ "integer", "42", "42" },
	{ "zero", "0", "0" },
	{ "negative integer", "-17", "-17" },
	{ "fraction", "1.5", "1.5" },
	{ "0.1", "0.1", "0.1" },
	{ "exponent (kept as written)", "1e3", "1e3" },
	{ "object, spaces removed", "{ \"a\" : 1 , \"b\" : [ 1 , 2 ] }", "{\"a\":1,\"b\":[1,2]}" },
	{ "empty object", "{}", "{}" },
	{ "nested object", "{\"a\":{\"b\":{\"c\":[{}]}}}", "{\"a\":{\"b\":{\"c\":[{}]}}}" },
	{ "array, spaces removed", "[ 1, \"x\", null, true ]", "[1,\"x\",null,true]" },
	{ "empty array", "[]", "[]" },
	{ "true", "true", "true" },
	{ "false", "false", "false" },
	{ "null", "null", "null" },
	{ "object with a chan member inside msg", "{\"chan\":\"other\"}", "{\"chan\":\"other\"}" },
};

static void test_msg_types(void)
{
	for (size_t i = 0; i < TAP_ARRAY_LEN(msg_cases); i++) {
		const struct msg_case *c = &msg_cases[i];
		size_t n = strlen(c->value) + 32;
		char *body = malloc(n), err[256] = "";
		struct env_pub p;
		int rc;

		snprintf(body, n, "{\"chan\":\"c\",\"msg\":%s}", c->value);
		rc = env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err);
		if (rc) {
			tap_ok(0, "http: msg %s round-trips compact", c->what);
			tap_diag_str("err", err);
		} else {
			if (tap_str_eq(p.msg, c->want, "http: msg %s round-trips compact", c->what))
				tap_ok(p.msg_len == strlen(c->want) && !strcmp(p.chan, "c"),
				       "http: msg %s has the right msg_len and chan", c->what);
		}
		env_pub_free(&p);
		free(body);
	}
}

/* A number must reach subscribers as the same double it was published as (the text may
 * change, e.g. 1e3 -> 1000, but not the value). */
static void test_number_values(void)
{
	static const char *const values[] = {
		"1e15",
		"3.141592653589793",
		"-2.2250738585072014e-308",
		"4.9e-324",
		"1.7976931348623157e308",
		"1234567890123456",
		"9007199254740992",    /* 2^53, exactly representable */
		"0.30000000000000004", /* 0.1 + 0.2 */
		"1.0000000000000002",  /* 1 + DBL_EPSILON */
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(values); i++) {
		char body[128], err[256] = "";
		struct env_pub p;
		int rc;

		snprintf(body, sizeof body, "{\"chan\":\"c\",\"msg\":%s}", values[i]);
		rc = env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err);
		if (!tap_ok(rc == 0 && p.msg && strtod(p.msg, NULL) == strtod(values[i], NULL),
			    "http: msg number %s keeps its value", values[i])) {
			tap_diag_str("sent", values[i]);
			tap_diag_str("got ", p.msg);
		}
		env_pub_free(&p);
	}
}

struct body_case {
	const char *what;
	const char *body;
	size_t len;	 /* AS_IS: strlen */
	const char *err; /* NULL: accepted; else a substring of the reason */
	const char *err2; /* a second substring, or NULL */
};

#define AS_IS ((size_t)-1)

static const struct body_case http_cases[] = {
	{ "leading and trailing whitespace", " \t\r\n{\"chan\":\"a\",\"msg\":1} \t\r\n", AS_IS, NULL, NULL },
	{ "whitespace inside the object", "{ \"chan\" : \"a\" ,\n\t\"msg\" : 1 }", AS_IS, NULL, NULL },
	{ "chan spelled with a \\u escape", "{\"chan\":\"\\u0061\",\"msg\":1}", AS_IS, NULL, NULL },
	{ "extra members are ignored", "{\"chan\":\"a\",\"msg\":1,\"x\":[1]}", AS_IS, NULL, NULL },
	{ "64-character channel", "{\"chan\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"msg\":1}",
	  AS_IS, NULL, NULL },

	{ "trailing garbage after the object", "{\"chan\":\"a\",\"msg\":1} x", AS_IS,
	  "at byte 21)", E_JSON_HINT },
	{ "two objects", "{\"chan\":\"a\",\"msg\":1}{\"chan\":\"a\",\"msg\":2}", AS_IS, "unexpected text after the value at byte 20)", NULL },
	{ "trailing NUL inside the length", "{\"chan\":\"a\",\"msg\":1}\0", 21, "unexpected text after the value at byte 20)", NULL },
	{ "trailing comma", "{\"chan\":\"a\",\"msg\":1,}", AS_IS, E_JSON, NULL },
	{ "plain text", "hello", AS_IS, E_JSON "unexpected character at byte 0)", E_JSON_HINT },
	{ "empty body", "", 0, "body is empty; send an object like", NULL },
	{ "only whitespace", "  \n", AS_IS, "body is empty; send an object like", NULL },
	{ "truncated object", "{\"chan\":\"a\",\"msg\":", AS_IS, E_JSON, NULL },
	{ "single-quoted strings", "{'chan':'a','msg':1}", AS_IS, E_JSON, NULL },
	{ "lone surrogate escape in msg", "{\"chan\":\"a\",\"msg\":\"\\ud800\"}", AS_IS, E_JSON, NULL },
	{ "array", "[1,2]", AS_IS, E_OBJECT, NULL },
	{ "array holding a request", "[{\"chan\":\"a\",\"msg\":1}]", AS_IS, E_OBJECT, NULL },
	{ "string", "\"text\"", AS_IS, E_OBJECT, NULL },
	{ "number", "42", AS_IS, E_OBJECT, NULL },
	{ "null", "null", AS_IS, E_OBJECT, NULL },
	{ "true", "true", AS_IS, E_OBJECT, NULL },
	{ "missing chan", "{\"msg\":1}", AS_IS, E_NOCHAN, "{\"chan\":\"pubsub\",\"msg\":\"hello\"}" },
	{ "empty object", "{}", AS_IS, E_NOCHAN, NULL },
	{ "chan in the wrong case (Chan)", "{\"Chan\":\"a\",\"msg\":1}", AS_IS, E_NOCHAN, NULL },
	{ "numeric chan", "{\"chan\":1,\"msg\":1}", AS_IS, E_CHANTYPE, NULL },
	{ "null chan", "{\"chan\":null,\"msg\":1}", AS_IS, E_CHANTYPE, NULL },
	{ "array chan", "{\"chan\":[\"a\"],\"msg\":1}", AS_IS, E_CHANTYPE, NULL },
	{ "object chan", "{\"chan\":{},\"msg\":1}", AS_IS, E_CHANTYPE, NULL },
	{ "channel name with a space", "{\"chan\":\"bad name\",\"msg\":1}", AS_IS,
	  E_BADCHAN "bad name\": channel name may only use A-Z a-z 0-9 _ - . :", NULL },
	{ "empty channel name", "{\"chan\":\"\",\"msg\":1}", AS_IS,
	  E_BADCHAN "\": channel name is empty", NULL },
	{ "65-character channel name",
	  "{\"chan\":\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\",\"msg\":1}", AS_IS,
	  "channel name is longer than 64 characters", NULL },
	{ "channel name with an escaped slash", "{\"chan\":\"a\\/b\",\"msg\":1}", AS_IS, E_BADCHAN "a/b\"",
	  NULL },
	{ "non-ASCII channel name", "{\"chan\":\"caf\xc3\xa9\",\"msg\":1}", AS_IS, E_BADCHAN, "may only use" },
	/* \u0000 decodes to a NUL that ends the C string: the name must not be cut to "a". */
	{ "channel name with an escaped NUL (a\\u0000b)", "{\"chan\":\"a\\u0000b\",\"msg\":1}", AS_IS,
	  E_BADCHAN, NULL },
	{ "bad channel is reported before missing msg", "{\"chan\":\"a b\"}", AS_IS, E_BADCHAN, NULL },
	{ "missing msg", "{\"chan\":\"a\"}", AS_IS, E_NOMSG, NULL },
	{ "msg in the wrong case (Msg)", "{\"chan\":\"a\",\"Msg\":1}", AS_IS, E_NOMSG, NULL },
	{ "invalid UTF-8 in msg", "{\"chan\":\"a\",\"msg\":\"\xff\"}", AS_IS, E_UTF8, NULL },
	{ "overlong UTF-8 in msg", "{\"chan\":\"a\",\"msg\":\"\xc0\xaf\"}", AS_IS, E_UTF8, NULL },
	{ "UTF-8 surrogate in msg", "{\"chan\":\"a\",\"msg\":\"\xed\xa0\x80\"}", AS_IS, E_UTF8, NULL },
	{ "invalid UTF-8 outside any string", "\xff{\"chan\":\"a\",\"msg\":1}", AS_IS, E_UTF8, NULL },
	{ "truncated UTF-8 at the end", "{\"chan\":\"a\",\"msg\":1}\xc3", AS_IS, E_UTF8, NULL },
};

static void run_body_cases(const char *mode, const char *default_chan, const struct body_case *cases,
			   size_t n)
{
	for (size_t i = 0; i < n; i++) {
		const struct body_case *c = &cases[i];
		size_t len = c->len == AS_IS ? strlen(c->body) : c->len;
		char err[512] = "";
		struct env_pub p;
		int rc;

		memset(&p, 0x5a, sizeof p); /* env_pub_parse must initialise out */
		rc = env_pub_parse(c->body, len, default_chan, &p, err, sizeof err);
		if (!c->err) {
			if (!tap_ok(rc == 0, "%s: accepts %s", mode, c->what))
				tap_diag_str("err", err);
			env_pub_free(&p);
			continue;
		}
		if (!tap_ok(rc == -1, "%s: refuses %s", mode, c->what)) {
			tap_diag_str("chan", p.chan);
			tap_diag_str("msg ", p.msg);
			env_pub_free(&p);
			continue;
		}
		tap_str_has(err, c->err, "%s: %s is refused with the right reason", mode, c->what);
		if (c->err2)
			tap_str_has(err, c->err2, "%s: %s reason has the example", mode, c->what);
		tap_ok(p.msg == NULL, "%s: %s leaves no msg to free", mode, c->what);
	}
}

static void test_http_errors_exact(void)
{
	struct env_pub p;
	char err[512];
	const char *body;

	body = "{\"msg\":1}";
	env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err);
	tap_str_eq(err, "missing \"chan\": name the channel to publish to, e.g. {\"chan\":\"pubsub\",\"msg\":\"hello\"}",
		   "http: missing chan error text is exact");
	body = "{\"chan\":\"a\"}";
	env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err);
	tap_str_eq(err, "missing \"msg\": give the message to publish, any JSON value",
		   "http: missing msg error text is exact");
	body = "nope";
	env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err);
	tap_str_eq(err,
		   "body is not valid JSON (unexpected character at byte 0); send an object like {\"chan\":\"pubsub\",\"msg\":\"hello\"}",
		   "http: not-JSON error text is exact");
	body = "{\"chan\":\"x y\",\"msg\":1}";
	env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err);
	tap_str_eq(err, "invalid channel name \"x y\": channel name may only use A-Z a-z 0-9 _ - . :",
		   "http: invalid channel error text is exact");

	/* A small buffer is filled, truncated and terminated; no buffer at all is fine. */
	memset(err, 'X', sizeof err);
	tap_ok(env_pub_parse(body, strlen(body), NULL, &p, err, 8) == -1 && !strcmp(err, "invalid") &&
		       err[8] == 'X',
	       "http: the error is truncated to errlen and NUL-terminated");
	tap_ok(env_pub_parse(body, strlen(body), NULL, &p, NULL, 0) == -1,
	       "http: a NULL err buffer is allowed");
}

/* A channel name cut at 80 bytes in the error must not split a UTF-8 character: the text
 * goes back to WebSocket clients in a text frame, which must be valid UTF-8. */
static void test_error_text_utf8(void)
{
	char name[200], body[300], err[512] = "";
	struct env_pub p;
	int rc;

	for (int lead = 78; lead <= 80; lead++) {
		memset(name, 'a', (size_t)lead);
		strcpy(name + lead, "\xc3\xa9\xc3\xa9\xc3\xa9");
		snprintf(body, sizeof body, "{\"chan\":\"%s\",\"msg\":1}", name);
		rc = env_pub_parse(body, strlen(body), "room", &p, err, sizeof err);
		tap_ok(rc == -1, "ws: a long non-ASCII channel name (%d ASCII + 3 e-acute) is refused", lead);
		if (!tap_ok(utf8_valid(err, strlen(err)),
			    "ws: its error text is valid UTF-8 (%d ASCII + 3 e-acute)", lead))
			tap_diag_str("err", err);
		env_pub_free(&p);
	}

	size_t len = 0;
	char *frame;

	memset(name, 'a', 79);
	strcpy(name + 79, "\xc3\xa9");
	snprintf(body, sizeof body, "{\"chan\":\"%s\",\"msg\":1}", name);
	env_pub_parse(body, strlen(body), "room", &p, err, sizeof err);
	frame = env_error_frame(err, 0, &len);
	if (!tap_ok(frame && utf8_valid(frame, len),
		    "ws: the error frame for a 79+2-byte channel name is a valid UTF-8 text frame"))
		tap_diag_mem("frame", frame, len);
	free(frame);
}

/* \u0000 inside msg must reach subscribers or be refused, never be silently cut short. */
static void test_msg_nul(void)
{
	const char *body = "{\"chan\":\"a\",\"msg\":\"x\\u0000y\"}";
	struct env_pub p;
	char err[256] = "";
	int rc = env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err);

	if (!tap_ok(rc == -1 || (p.msg && !strcmp(p.msg, "\"x\\u0000y\"")),
		    "http: msg \"x\\u0000y\" is relayed whole or refused, not cut to \"x\""))
		tap_diag_str("msg", p.msg);
	env_pub_free(&p);
}

/* ---- env_pub_parse, WebSocket (default channel "room") ---- */

struct ws_case {
	const char *what;
	const char *frame;
	const char *chan; /* NULL: refused */
	const char *msg;  /* or a substring of the error */
};

static const struct ws_case ws_cases[] = {
	{ "plain text becomes a JSON string on room", "hello world", "room", "\"hello world\"" },
	{ "{\"msg\":1} goes to room", "{\"msg\":1}", "room", "1" },
	{ "{\"msg\":{...}} goes to room compact", "{ \"msg\" : { \"k\" : [ 1 ] } }", "room", "{\"k\":[1]}" },
	{ "{\"chan\":\"x\",\"msg\":1} goes to x", "{\"chan\":\"x\",\"msg\":1}", "x", "1" },
	{ "a JSON array is published as text", "[1,2]", "room", "\"[1,2]\"" },
	{ "a JSON number is published as text", "42", "room", "\"42\"" },
	{ "a JSON string is published as its text", "\"hi\"", "room", "\"\\\"hi\\\"\"" },
	{ "null is published as text", "null", "room", "\"null\"" },
	{ "an object without msg is published as text", "{\"a\":1}", "room", "\"{\\\"a\\\":1}\"" },
	{ "an object with chan but no msg is published as text", "{\"chan\":\"x\"}", "room",
	  "\"{\\\"chan\\\":\\\"x\\\"}\"" },
	{ "a request with trailing text is published as text", "{\"msg\":1} x", "room", "\"{\\\"msg\\\":1} x\"" },
	{ "an empty frame is the empty string", "", "room", "\"\"" },
	{ "text with quotes and newlines is escaped", "say \"hi\"\nbye", "room", "\"say \\\"hi\\\"\\nbye\"" },
	{ "UTF-8 text is kept as is", "caf\xc3\xa9 \xf0\x9f\x98\x80", "room", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"" },
	{ "{\"chan\":\"bad name\",\"msg\":1} is refused", "{\"chan\":\"bad name\",\"msg\":1}", NULL,
	  E_BADCHAN "bad name\": channel name may only use" },
	{ "{\"chan\":\"\",\"msg\":1} is refused", "{\"chan\":\"\",\"msg\":1}", NULL, "channel name is empty" },
	{ "{\"chan\":5,\"msg\":1} is refused", "{\"chan\":5,\"msg\":1}", NULL, E_CHANTYPE },
	{ "{\"chan\":null,\"msg\":1} is refused", "{\"chan\":null,\"msg\":1}", NULL, E_CHANTYPE },
	{ "invalid UTF-8 text is refused", "abc\xff", NULL, E_UTF8 },
	{ "invalid UTF-8 inside a request is refused", "{\"msg\":\"\xc0\x80\"}", NULL, E_UTF8 },
};

static void test_ws(void)
{
	for (size_t i = 0; i < TAP_ARRAY_LEN(ws_cases); i++) {
		const struct ws_case *c = &ws_cases[i];
		char err[512] = "";
		struct env_pub p;
		int rc = env_pub_parse(c->frame, strlen(c->frame), "room", &p, err, sizeof err);

		if (c->chan) {
			if (!tap_ok(rc == 0, "ws: %s (accepted)", c->what)) {
				tap_diag_str("err", err);
				continue;
			}
			tap_str_eq(p.chan, c->chan, "ws: %s (channel)", c->what);
			tap_str_eq(p.msg, c->msg, "ws: %s (msg)", c->what);
		} else {
			if (tap_ok(rc == -1, "ws: %s", c->what))
				tap_str_has(err, c->msg, "ws: %s with the right reason", c->what);
		}
		env_pub_free(&p);
	}
}

/* ---- env_pub_text ---- */

static void test_pub_text(void)
{
	static const struct {
		const char *what, *text;
		size_t len;
	} texts[] = {
		{ "plain ASCII", "hello", AS_IS },
		{ "double quotes", "he said \"hi\"", AS_IS },
		{ "backslashes", "C:\\path\\to\\", AS_IS },
		{ "newlines and CRs", "line1\nline2\r\n", AS_IS },
		{ "tab", "a\tb", AS_IS },
		{ "every control char 01..1F", "\x01\x02\x03\x04\x05\x06\x07\x08\x09\x0a\x0b\x0c\x0d\x0e\x0f"
					       "\x10\x11\x12\x13\x14\x15\x16\x17\x18\x19\x1a\x1b\x1c\x1d\x1e\x1f",
		  AS_IS },
		{ "DEL", "a\x7f", AS_IS },
		{ "multi-byte UTF-8", "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", AS_IS },
		{ "U+2028 line separator", "a\xe2\x80\xa8z", AS_IS },
		{ "HTML-ish", "</script><b>&amp;", AS_IS },
		{ "JSON-looking text", "{\"chan\":\"x\",\"msg\":1}", AS_IS },
		{ "empty", "", 0 },
		{ "embedded NUL (a\\0b)", "a\0b", 3 },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(texts); i++) {
		size_t len = texts[i].len == AS_IS ? strlen(texts[i].text) : texts[i].len;
		struct env_pub p;
		char err[256] = "";
		cJSON *v;
		int clean = 1;

		if (!tap_ok(env_pub_text("t", 1, texts[i].text, len, &p, err, sizeof err) == 0,
			    "env_pub_text accepts %s", texts[i].what)) {
			tap_diag_str("err", err);
			continue;
		}
		for (size_t k = 0; k < p.msg_len; k++)
			if ((unsigned char)p.msg[k] < 0x20)
				clean = 0;
		tap_ok(clean && p.msg_len == strlen(p.msg),
		       "env_pub_text %s: no raw control characters in the JSON", texts[i].what);
		v = cJSON_ParseWithLength(p.msg, p.msg_len);
		if (!tap_ok(cJSON_IsString(v), "env_pub_text %s: result parses as a JSON string",
			    texts[i].what))
			tap_diag_str("msg", p.msg);
		else if (len && memchr(texts[i].text, '\0', len)) {
			/* cJSON's decoded strings stop at a NUL, so check the escape itself. */
			tap_str_eq(p.msg, "\"a\\u0000b\"", "env_pub_text %s: NUL is escaped, not dropped",
				   texts[i].what);
		} else {
			if (!tap_ok(strlen(v->valuestring) == len && !memcmp(v->valuestring, texts[i].text, len),
				    "env_pub_text %s: decodes back to the same text", texts[i].what))
				tap_diag_str("msg", p.msg);
		}
		cJSON_Delete(v);
		tap_str_eq(p.chan, "t", "env_pub_text %s: channel", texts[i].what);
		env_pub_free(&p);
	}

	struct env_pub p;
	char err[256] = "";

	env_pub_text("t", 1, "a\"b\\c\n\x01", 7, &p, err, sizeof err);
	tap_str_eq(p.msg, "\"a\\\"b\\\\c\\n\\u0001\"", "env_pub_text escapes exactly: a\"b\\c newline 0x01");
	env_pub_free(&p);

	if (tap_ok(env_pub_text("roomXYZ", 4, "x", 1, &p, err, sizeof err) == 0,
		   "env_pub_text takes chan_len bytes of the channel"))
		tap_str_eq(p.chan, "room", "env_pub_text channel is cut at chan_len");
	env_pub_free(&p);

	tap_ok(env_pub_text("t", 1, "ab\xff", 3, &p, err, sizeof err) == -1 && !strcmp(err, E_MSGUTF8) &&
		       !p.msg,
	       "env_pub_text refuses invalid UTF-8 with \"message is not valid UTF-8\"");
	tap_ok(env_pub_text("t", 1, "\xed\xa0\x80", 3, &p, err, sizeof err) == -1 && strstr(err, E_MSGUTF8),
	       "env_pub_text refuses an encoded surrogate");
	tap_ok(env_pub_text("a/b", 3, "x", 1, &p, err, sizeof err) == -1 &&
		       strstr(err, E_BADCHAN "a/b\": channel name may only use"),
	       "env_pub_text refuses a bad channel name with its reason");
	tap_ok(env_pub_text("", 0, "x", 1, &p, err, sizeof err) == -1 && strstr(err, "channel name is empty"),
	       "env_pub_text refuses an empty channel name");
}

/* ---- env_build and env_error_frame ---- */

#define CHAN64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define EPOCH24 "0123456789abcdefghijklmn" /* ENV_EPOCH_MAX characters */

static void test_build(void)
{
	static const struct {
		const char *what, *chan, *msg;
		uint64_t seq;
		const char *epoch;
		int64_t ts;
		size_t pre;
		const char *want;
	} cases[] = {
		{ "seq 1, no spare bytes", "c", "1", 1, "m18c0ffee", 123, 0,
		  "{\"chan\":\"c\",\"seq\":1,\"epoch\":\"m18c0ffee\",\"ts\":123,\"msg\":1}" },
		{ "a string msg after LWS_PRE bytes", "c", "\"hi\"", 2, "e1", 123, PRE,
		  "{\"chan\":\"c\",\"seq\":2,\"epoch\":\"e1\",\"ts\":123,\"msg\":\"hi\"}" },
		{ "an object msg and a real timestamp", "pubsub", "{\"a\":[1,2]}", 42, "m6061d1a2b3c4d1f2e", 1700000000123LL, PRE,
		  "{\"chan\":\"pubsub\",\"seq\":42,\"epoch\":\"m6061d1a2b3c4d1f2e\",\"ts\":1700000000123,\"msg\":{\"a\":[1,2]}}" },
		{ "seq 0 and ts 0, one spare byte", "c", "null", 0, "z", 0, 1,
		  "{\"chan\":\"c\",\"seq\":0,\"epoch\":\"z\",\"ts\":0,\"msg\":null}" },
		{ "an empty epoch, negative ts, 3 spare bytes", "c", "true", 7, "", -1, 3,
		  "{\"chan\":\"c\",\"seq\":7,\"epoch\":\"\",\"ts\":-1,\"msg\":true}" },
		{ "seq 2^53 (largest exact double)", "c", "\"\"", 9007199254740992ULL, "e", INT64_MAX, 0,
		  "{\"chan\":\"c\",\"seq\":9007199254740992,\"epoch\":\"e\",\"ts\":9223372036854775807,\"msg\":\"\"}" },
		{ "seq UINT64_MAX is printed in full", "c", "1", UINT64_MAX, "e", 5, PRE,
		  "{\"chan\":\"c\",\"seq\":18446744073709551615,\"epoch\":\"e\",\"ts\":5,\"msg\":1}" },
		/* Every variable field at its widest: the buffer must still be large enough. */
		{ "the widest header (64-char chan, 24-char epoch, UINT64_MAX, INT64_MIN)", CHAN64, "0",
		  UINT64_MAX, EPOCH24, INT64_MIN, PRE,
		  "{\"chan\":\"" CHAN64 "\",\"seq\":18446744073709551615,\"epoch\":\"" EPOCH24 "\","
		  "\"ts\":-9223372036854775808,\"msg\":0}" },
		{ "a large spare area (4096 bytes)", "x.y", "[1,{}]", 3, "e", 1, 4096,
		  "{\"chan\":\"x.y\",\"seq\":3,\"epoch\":\"e\",\"ts\":1,\"msg\":[1,{}]}" },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		size_t pre = cases[i].pre, len = 0;
		struct env_pub p;
		char *buf;

		memset(&p, 0, sizeof p);
		strcpy(p.chan, cases[i].chan);
		p.msg = (char *)cases[i].msg;
		p.msg_len = strlen(cases[i].msg);
		buf = env_build(&p, cases[i].seq, cases[i].epoch, cases[i].ts, pre, &len);
		if (!tap_ok(buf != NULL, "env_build returns a buffer: %s", cases[i].what))
			continue;
		/* The spare bytes are the caller's to write (lws puts its frame header there). */
		memset(buf, 0xee, pre);
		tap_mem_eq(buf + pre, len, cases[i].want, strlen(cases[i].want),
			   "env_build %s: exact envelope after %zu spare bytes", cases[i].what, pre);
		tap_ok(buf[pre + len] == '\0', "env_build %s: NUL-terminated", cases[i].what);
		free(buf);
	}

	/* A long message: the buffer grows with msg_len, not a fixed size. */
	{
		size_t big = 100000, len = 0;
		struct env_pub p;
		char *msg = malloc(big + 3), *buf;

		memset(&p, 0, sizeof p);
		strcpy(p.chan, "c");
		msg[0] = '"';
		memset(msg + 1, 'x', big);
		msg[big + 1] = '"';
		msg[big + 2] = '\0';
		p.msg = msg;
		p.msg_len = big + 2;
		buf = env_build(&p, 1, "e", 1, PRE, &len);
		tap_ok(buf && len == strlen("{\"chan\":\"c\",\"seq\":1,\"epoch\":\"e\",\"ts\":1,\"msg\":}") + big + 2 &&
			       !memcmp(buf + PRE + len - 4, "xx\"}", 4) && buf[PRE + len] == '\0',
		       "env_build holds a 100000-byte msg whole");
		free(buf);
		free(msg);
	}

	/* The envelope built from a parsed request parses back on the client side. */
	const char *body = "{\"chan\":\"room.1\",\"msg\":{\"text\":\"hi \\\"there\\\"\",\"n\":[1,2.5]}}";
	struct env_pub p;
	struct env_msg m;
	char err[256] = "";
	size_t len = 0;
	char *buf;

	env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err);
	buf = env_build(&p, 17, "m1a2b3c", 42, PRE, &len);
	if (tap_ok(buf && env_msg_parse(buf + PRE, len, &m) == 0,
		   "env_build output parses with env_msg_parse")) {
		char *again = cJSON_PrintUnformatted(m.msg);
		tap_ok(m.type == NULL && m.chan && !strcmp(m.chan, "room.1") && m.ts == 42,
		       "env_build round trip keeps chan and ts");
		tap_long_eq((long long)m.seq, 17, "env_build round trip keeps seq");
		tap_str_eq(m.epoch, "m1a2b3c", "env_build round trip keeps epoch");
		tap_str_eq(again, p.msg, "env_build round trip keeps msg");
		cJSON_free(again);
		env_msg_free(&m);
	}
	free(buf);
	env_pub_free(&p);
}

/* env_msg_parse reads back the seq env_build wrote below 2^53 (JSON numbers as doubles,
 * as JavaScript clients see them too), and never invents one beyond that. */
static void test_seq_round_trip(void)
{
	static const uint64_t seqs[] = {
		1, 2, 1000, 4294967296ULL, 9007199254740992ULL /* 2^53 */,
		9007199254740993ULL /* 2^53 + 1 */, 9223372036854775807ULL /* Redis INCR's limit */,
		UINT64_MAX,
	};
	struct env_pub p;

	memset(&p, 0, sizeof p);
	strcpy(p.chan, "c");
	p.msg = (char *)"1";
	p.msg_len = 1;
	for (size_t i = 0; i < TAP_ARRAY_LEN(seqs); i++) {
		size_t len = 0;
		char *buf = env_build(&p, seqs[i], "e", 1, 0, &len);
		struct env_msg m;

		if (tap_ok(buf && env_msg_parse(buf, len, &m) == 0,
			   "envelope with seq %llu parses", (unsigned long long)seqs[i])) {
			/* exact below 2^53; from there, cJSON's double cannot hold it: read as absent */
			uint64_t want = seqs[i] < 9007199254740992ULL ? seqs[i] : 0;
			if (!tap_ok(m.seq == want, "env_msg_parse reads back seq %llu as %llu",
				    (unsigned long long)seqs[i], (unsigned long long)want))
				tap_diag("got %llu", (unsigned long long)m.seq);
			env_msg_free(&m);
		}
		free(buf);
	}
}

static void test_error_frame(void)
{
	static const struct {
		const char *what, *text, *want;
	} cases[] = {
		{ "plain text", "rate limited", "{\"type\":\"error\",\"error\":\"rate limited\"}" },
		{ "quotes", "bad \"x\"", "{\"type\":\"error\",\"error\":\"bad \\\"x\\\"\"}" },
		{ "backslash", "a\\b", "{\"type\":\"error\",\"error\":\"a\\\\b\"}" },
		{ "newline and tab", "a\nb\tc", "{\"type\":\"error\",\"error\":\"a\\nb\\tc\"}" },
		{ "control char", "a\x01", "{\"type\":\"error\",\"error\":\"a\\u0001\"}" },
		{ "empty", "", "{\"type\":\"error\",\"error\":\"\"}" },
		{ "UTF-8", "caf\xc3\xa9", "{\"type\":\"error\",\"error\":\"caf\xc3\xa9\"}" },
		{ "an env_pub_parse error", "invalid channel name \"a\\\"b\": x",
		  "{\"type\":\"error\",\"error\":\"invalid channel name \\\"a\\\\\\\"b\\\": x\"}" },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		size_t pre = i % 2 ? PRE : 0, len = 0;
		char *buf = env_error_frame(cases[i].text, pre, &len);
		struct env_msg m;

		if (!tap_ok(buf != NULL, "env_error_frame returns a buffer for %s", cases[i].what))
			continue;
		tap_mem_eq(buf + pre, len, cases[i].want, strlen(cases[i].want),
			   "env_error_frame escapes %s (pre %zu)", cases[i].what, pre);
		tap_ok(buf[pre + len] == '\0', "env_error_frame %s: NUL-terminated", cases[i].what);
		if (tap_ok(env_msg_parse(buf + pre, len, &m) == 0 && m.type && !strcmp(m.type, "error"),
			   "env_error_frame %s: parses as a control frame of type error", cases[i].what)) {
			const cJSON *e = cJSON_GetObjectItemCaseSensitive(m.root, "error");
			tap_str_eq(cJSON_IsString(e) ? e->valuestring : NULL, cases[i].text,
				   "env_error_frame %s: error decodes back to the text", cases[i].what);
		}
		env_msg_free(&m);
		free(buf);
	}
}

/* ---- env_msg_parse ---- */

static void test_msg_parse(void)
{
	struct env_msg m;
	const char *f;

	f = "{\"chan\":\"c\",\"ts\":1700000000123,\"msg\":{\"a\":1}}";
	if (tap_ok(env_msg_parse(f, strlen(f), &m) == 0, "env_msg_parse accepts an envelope")) {
		tap_ok(m.type == NULL, "envelope: type is NULL");
		tap_str_eq(m.chan, "c", "envelope: chan");
		tap_long_eq(m.ts, 1700000000123LL, "envelope: ts in milliseconds");
		tap_ok(cJSON_IsObject(m.msg) &&
			       cJSON_GetObjectItemCaseSensitive(m.msg, "a")->valuedouble == 1,
		       "envelope: msg is the object value");
	}
	env_msg_free(&m);
	tap_ok(m.root == NULL, "env_msg_free clears root");
	env_msg_free(&m);

	f = "{\"chan\":\"c\",\"seq\":7,\"epoch\":\"m18c0ffee\",\"ts\":5,\"msg\":1}";
	if (tap_ok(env_msg_parse(f, strlen(f), &m) == 0, "env_msg_parse accepts an envelope with a position")) {
		tap_long_eq((long long)m.seq, 7, "envelope: seq");
		tap_str_eq(m.epoch, "m18c0ffee", "envelope: epoch");
		tap_long_eq(m.ts, 5, "envelope with a position: ts");
	}
	env_msg_free(&m);

	/* Members in another order are the same envelope. */
	f = "{\"msg\":1,\"epoch\":\"e2\",\"ts\":5,\"seq\":3,\"chan\":\"c\"}";
	tap_ok(env_msg_parse(f, strlen(f), &m) == 0 && m.seq == 3 && m.epoch && !strcmp(m.epoch, "e2"),
	       "env_msg_parse finds seq and epoch in any member order");
	env_msg_free(&m);

	f = "{\"chan\":\"c\",\"seq\":1,\"epoch\":\"\",\"msg\":1}";
	tap_ok(env_msg_parse(f, strlen(f), &m) == 0 && m.epoch && !strcmp(m.epoch, "") && m.seq == 1,
	       "an empty epoch is \"\", not NULL");
	env_msg_free(&m);

	static const struct {
		const char *what, *frame;
	} no_pos[] = {
		{ "an envelope without seq or epoch", "{\"chan\":\"c\",\"ts\":1,\"msg\":1}" },
		{ "a control frame", "{\"type\":\"error\",\"error\":\"nope\"}" },
		{ "a string seq and a numeric epoch", "{\"chan\":\"c\",\"seq\":\"5\",\"epoch\":5,\"msg\":1}" },
		{ "a null seq and a null epoch", "{\"chan\":\"c\",\"seq\":null,\"epoch\":null,\"msg\":1}" },
		{ "a negative seq and an array epoch", "{\"chan\":\"c\",\"seq\":-3,\"epoch\":[\"e\"],\"msg\":1}" },
		{ "seq 0 and an object epoch", "{\"chan\":\"c\",\"seq\":0,\"epoch\":{},\"msg\":1}" },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(no_pos); i++) {
		memset(&m, 0x5a, sizeof m);
		if (tap_ok(env_msg_parse(no_pos[i].frame, strlen(no_pos[i].frame), &m) == 0,
			   "env_msg_parse accepts %s", no_pos[i].what))
			tap_ok(m.seq == 0 && m.epoch == NULL, "%s: seq 0, epoch NULL", no_pos[i].what);
		env_msg_free(&m);
	}

	f = "{\"chan\":\"c\",\"ts\":1,\"msg\":null}";
	tap_ok(env_msg_parse(f, strlen(f), &m) == 0 && cJSON_IsNull(m.msg), "envelope with msg null is accepted");
	env_msg_free(&m);

	f = "{\"chan\":\"c\",\"msg\":\"x\"}";
	tap_ok(env_msg_parse(f, strlen(f), &m) == 0 && m.ts == 0, "envelope without ts has ts 0");
	env_msg_free(&m);

	f = "{\"type\":\"error\",\"error\":\"nope\"}";
	if (tap_ok(env_msg_parse(f, strlen(f), &m) == 0, "env_msg_parse accepts a control frame")) {
		tap_str_eq(m.type, "error", "control frame: type");
		tap_ok(m.chan == NULL && m.msg == NULL, "control frame: no chan, no msg");
	}
	env_msg_free(&m);

	/* Only the given length is parsed. */
	f = "{\"chan\":\"c\",\"msg\":1}GARBAGE";
	tap_ok(env_msg_parse(f, 20, &m) == 0, "env_msg_parse reads only len bytes");
	env_msg_free(&m);

	static const struct {
		const char *what, *frame;
	} bad[] = {
		{ "an array", "[1,2]" },
		{ "a string", "\"x\"" },
		{ "a number", "1" },
		{ "null", "null" },
		{ "not JSON", "hello" },
		{ "empty", "" },
		{ "a truncated object", "{\"chan\":\"c\"," },
		{ "an object missing chan", "{\"ts\":1,\"msg\":1}" },
		{ "an object missing msg", "{\"chan\":\"c\",\"ts\":1}" },
		{ "an object with a numeric chan", "{\"chan\":1,\"msg\":1}" },
		{ "an object with a non-string type and no chan", "{\"type\":1,\"msg\":1}" },
		{ "an empty object", "{}" },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(bad); i++) {
		memset(&m, 0x5a, sizeof m);
		tap_ok(env_msg_parse(bad[i].frame, strlen(bad[i].frame), &m) == -1 && m.root == NULL,
		       "env_msg_parse refuses %s and owns nothing", bad[i].what);
		env_msg_free(&m);
	}
}

static void test_now(void)
{
	int64_t a = env_now_ms(), b = env_now_ms();

	tap_ok(a > 1600000000000LL && a < 4102444800000LL && b >= a,
	       "env_now_ms is wall-clock milliseconds since the epoch");
}

/* ---- idempotency keys ---- */

static void key_case(const char *body, const char *want_key, const char *want_err, const char *what)
{
	struct env_pub p;
	char err[256] = "";
	int rc = env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err);

	if (want_key) {
		if (!tap_ok(rc == 0 && !strcmp(p.key, want_key), "key: %s", what))
			tap_diag_str("err", err);
		env_pub_free(&p);
	} else if (!tap_ok(rc == -1 && strstr(err, want_err), "key: %s", what))
		tap_diag_str("err", err);
}

static void test_keys(void)
{
	struct env_pub p;
	char err[256] = "", k101[102];

	key_case("{\"chan\":\"c\",\"msg\":1}", "", NULL, "no key member: an empty key");
	key_case("{\"chan\":\"c\",\"msg\":1,\"key\":\"a-1.B_~!\"}", "a-1.B_~!", NULL,
		 "visible ASCII is taken");
	key_case("{\"key\":\"q\\\"x\",\"chan\":\"c\",\"msg\":1}", "q\"x", NULL,
		 "escapes are decoded, in any member order");
	key_case("{\"chan\":\"c\",\"msg\":1,\"key\":\"\"}", NULL, "1 to 100 characters", "empty refused");
	key_case("{\"chan\":\"c\",\"msg\":1,\"key\":\"a b\"}", NULL, "visible ASCII", "space refused");
	key_case("{\"chan\":\"c\",\"msg\":1,\"key\":\"a\\u0000\"}", NULL, "visible ASCII",
		 "\\u escape refused");
	key_case("{\"chan\":\"c\",\"msg\":1,\"key\":\"\xc3\xa9\"}", NULL, "visible ASCII",
		 "UTF-8 refused");
	key_case("{\"chan\":\"c\",\"msg\":1,\"key\":null}", NULL, "\"key\" must be a string",
		 "non-string refused");
	memset(k101, 'k', 101);
	k101[101] = '\0';
	tap_ok(env_key_check(k101, 100) == NULL, "key: 100 characters are fine");
	tap_ok(env_key_check(k101, 101) != NULL, "key: 101 are too many");
	tap_ok(env_pub_text("c", 1, "x", 1, &p, err, sizeof err) == 0 &&
		       env_pub_set_key(&p, "h1", 2, err, sizeof err) == 0 && !strcmp(p.key, "h1"),
	       "key: a header key is set on a text publish");
	tap_ok(env_pub_set_key(&p, "h1", 2, err, sizeof err) == 0, "key: the same key twice is fine");
	tap_ok(env_pub_set_key(&p, "h2", 2, err, sizeof err) == -1 && strstr(err, "differ"),
	       "key: a second, different key is refused");
	env_pub_free(&p);
}

/* ---- token in the body, sender in the envelope ---- */

static void test_token_sender(void)
{
	const char *body = "{\"chan\":\"c\",\"msg\":1,\"token\":\"a.b-c_d.e\",\"sender\":\"mallory\"}";
	struct env_pub p;
	char err[256] = "", member[6 * ENV_SENDER_MAX + 16], *env;
	size_t len;

	tap_ok(env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err) == 0 && p.token &&
		       !strcmp(p.token, "a.b-c_d.e") && !p.sender[0],
	       "token: the body's token is taken; its sender is not");
	env = env_build(&p, 1, "e", 5, 0, &len);
	tap_str_eq(env, "{\"chan\":\"c\",\"seq\":1,\"epoch\":\"e\",\"ts\":5,\"msg\":1}",
		   "sender: no sender, no member");
	free(env);
	strcpy(p.sender, "ann \"x\"");
	env = env_build(&p, 2, "e", 5, 0, &len);
	tap_str_eq(env, "{\"chan\":\"c\",\"seq\":2,\"epoch\":\"e\",\"ts\":5,\"sender\":\"ann \\\"x\\\"\",\"msg\":1}",
		   "sender: escaped, between ts and msg");
	{
		struct env_msg m;
		uint64_t seq = 0;
		char epoch[ENV_EPOCH_MAX + 1];
		tap_ok(env_msg_parse(env, len, &m) == 0 && m.sender && !strcmp(m.sender, "ann \"x\"") &&
			       m.seq == 2,
		       "sender: the client parser reads it back");
		env_msg_free(&m);
		tap_ok(env_pos_of(env, len, &seq, epoch) == 0 && seq == 2, "sender: env_pos_of still finds the position");
	}
	free(env);
	tap_ok(env_sender_member("", member) == 0 && !member[0], "sender: empty name, empty member");
	env_pub_free(&p);
	tap_ok(p.token == NULL, "token: env_pub_free frees it");
	body = "{\"chan\":\"c\",\"msg\":1,\"token\":7}";
	tap_ok(env_pub_parse(body, strlen(body), NULL, &p, err, sizeof err) == -1 && strstr(err, "\"token\" must be a string"),
	       "token: a non-string token is refused");
}

int main(void)
{
	test_origin_body();
	test_msg_types();
	test_number_values();
	run_body_cases("http", NULL, http_cases, TAP_ARRAY_LEN(http_cases));
	test_http_errors_exact();
	test_error_text_utf8();
	test_msg_nul();
	test_ws();
	test_pub_text();
	test_build();
	test_seq_round_trip();
	test_error_frame();
	test_msg_parse();
	test_now();
	test_keys();
	test_token_sender();
	{ /* found by fuzz_envelope: a ts past int64 was undefined behaviour */
		const char *f = "{\"chan\":\"a\",\"ts\":1e19,\"msg\":1}";
		struct env_msg m;
		tap_ok(env_msg_parse(f, strlen(f), &m) == 0 && m.ts == 0, "msg: a ts out of range reads as 0");
		env_msg_free(&m);
	}
	return tap_done();
}
