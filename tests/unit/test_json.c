/* test_json.c: lib/json.c on its own: the strict minifier, member iteration, quoting and
 * the short-identifier unescaper (including what tests/fuzz/fuzz_json found). */
#include <string.h>

#include "json.h"
#include "tap.h"

static void test_minify(void)
{
	static const struct {
		const char *in, *out;
	} ok[] = {
		{ " { \"a\" : [ 1 , -2.5e+3 , true , null ] }\n", "{\"a\":[1,-2.5e+3,true,null]}" },
		{ "\"keep  spaces\\n\\u00e9\"", "\"keep  spaces\\n\\u00e9\"" },
		{ "12345678901234567890.5", "12345678901234567890.5" },
		{ "\"\\ud83d\\ude00\"", "\"\\ud83d\\ude00\"" },
	};
	static const struct {
		const char *in, *why;
	} bad[] = {
		{ "", "no value" },
		{ "[01]", "leading zero in a number" },
		{ "\"a\tb\"", "control character inside a string (escape it)" },
		{ "\"\\udc00\"", "unpaired surrogate in a \\u escape" },
		{ "\"\\ud800x\"", "unpaired surrogate in a \\u escape" },
		{ "{\"a\":1,}", "expected a string key" },
		{ "1 2", "unexpected text after the value" },
		{ "\"\\x\"", "bad escape in a string" },
	};
	char out[256], deep[2 * JSON_MAX_DEPTH + 3];
	size_t at;
	const char *why;

	for (size_t i = 0; i < TAP_ARRAY_LEN(ok); i++) {
		long n = json_minify(ok[i].in, strlen(ok[i].in), out, &at, &why);
		tap_mem_eq(out, n < 0 ? 0 : (size_t)n, ok[i].out, strlen(ok[i].out), "json_minify %s", ok[i].out);
	}
	for (size_t i = 0; i < TAP_ARRAY_LEN(bad); i++) {
		why = NULL;
		tap_ok(json_minify(bad[i].in, strlen(bad[i].in), out, &at, &why) == -1, "json_minify refuses %s",
		       bad[i].why);
		tap_str_eq(why, bad[i].why, "json_minify reason for input %zu", i);
	}

	/* JSON_MAX_DEPTH levels are fine, one more is not. */
	static char deep_out[2 * JSON_MAX_DEPTH + 3];
	memset(deep, '[', JSON_MAX_DEPTH);
	memset(deep + JSON_MAX_DEPTH, ']', JSON_MAX_DEPTH);
	tap_ok(json_minify(deep, 2 * JSON_MAX_DEPTH, deep_out, &at, &why) == 2 * JSON_MAX_DEPTH,
	       "json_minify accepts %d nested arrays", JSON_MAX_DEPTH);
	memset(deep, '[', JSON_MAX_DEPTH + 1);
	memset(deep + JSON_MAX_DEPTH + 1, ']', JSON_MAX_DEPTH + 1);
	tap_ok(json_minify(deep, 2 * JSON_MAX_DEPTH + 2, deep_out, &at, &why) == -1 &&
		       !strcmp(why, "nested too deeply"),
	       "json_minify refuses %d nested arrays", JSON_MAX_DEPTH + 1);
}

static void test_object_next(void)
{
	const char *obj = "{\"a\":1,\"b\\\"}\":[{\"x\":\"],\"}],\"c\":\"}\"}", *key, *val;
	const char *want[][2] = { { "a", "1" }, { "b\\\"}", "[{\"x\":\"],\"}]" }, { "c", "\"}\"" } };
	size_t pos = 0, klen, vlen, k = 0;

	while (json_object_next(obj, strlen(obj), &pos, &key, &klen, &val, &vlen) && k < 3) {
		tap_mem_eq(key, klen, want[k][0], strlen(want[k][0]), "json_object_next member %zu: key", k);
		tap_mem_eq(val, vlen, want[k][1], strlen(want[k][1]), "json_object_next member %zu: value", k);
		k++;
	}
	tap_long_eq((long long)k, 3, "json_object_next finds 3 members");
	pos = 0;
	tap_ok(!json_object_next("{}", 2, &pos, &key, &klen, &val, &vlen), "json_object_next: {} has none");
}

static void test_quote(void)
{
	char out[64];
	const char *want = "\"a\\\"\\\\\\n\\u0001\xc3\xa9\"";
	size_t n = json_quote(out, "a\"\\\n\x01\xc3\xa9", 7);

	tap_mem_eq(out, n, want, strlen(want), "json_quote escapes quote, backslash, controls; keeps UTF-8");
}

static void test_unescape_short(void)
{
	static const struct {
		const char *raw, *want;
		size_t want_len;
	} cases[] = {
		{ "pubsub", "pubsub", 6 },
		{ "\\u0070ub\\/\\\"", "pub/\"", 5 },
		{ "a\\u0000b", "a\0b", 3 },
		{ "\\u00e9\\ud83d\\ude00", "???", 3 },
		/* fuzz_json: raw UTF-8 used to be copied through although the contract says
		 * anything outside ASCII becomes '?', as it does for the \u escape of it. */
		{ "caf\xc3\xa9", "caf??", 5 },
	};
	char out[16];

	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		long n = json_unescape_short(cases[i].raw, strlen(cases[i].raw), out, sizeof out);
		tap_mem_eq(out, n < 0 ? 0 : (size_t)n, cases[i].want, cases[i].want_len,
			   "json_unescape_short case %zu", i);
	}
	tap_long_eq(json_unescape_short("abc", 3, out, 3), 3, "json_unescape_short fits exactly in cap");
	tap_long_eq(json_unescape_short("abcd", 4, out, 3), -1, "json_unescape_short reports -1 past cap");
}

int main(void)
{
	test_minify();
	test_object_next();
	test_quote();
	test_unescape_short();
	return tap_done();
}
