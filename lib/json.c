/* json.c: see json.h. A recursive-descent checker over the text that copies as it goes;
 * depth is bounded, so hostile nesting cannot exhaust the stack. */
#include "json.h"

#include <string.h>

struct jscan {
	const char *s;
	size_t len, i;
	char *out;
	size_t o;
	const char *why;
	int depth;
};

static int js_fail(struct jscan *j, const char *why)
{
	if (!j->why)
		j->why = why;
	return -1;
}

static void js_ws(struct jscan *j)
{
	while (j->i < j->len &&
	       (j->s[j->i] == ' ' || j->s[j->i] == '\t' || j->s[j->i] == '\n' || j->s[j->i] == '\r'))
		j->i++;
}

static int js_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* The code unit of 4 hex digits at p, or -1. */
static long js_u4(const char *p, size_t avail)
{
	long v = 0;

	if (avail < 4)
		return -1;
	for (int k = 0; k < 4; k++) {
		char c = p[k];
		if (!js_hex(c))
			return -1;
		v = v * 16 + (c <= '9' ? c - '0' : (c | 0x20) - 'a' + 10);
	}
	return v;
}

static int js_digit(const struct jscan *j)
{
	return j->i < j->len && j->s[j->i] >= '0' && j->s[j->i] <= '9';
}

static void js_copy(struct jscan *j, size_t from)
{
	memcpy(j->out + j->o, j->s + from, j->i - from);
	j->o += j->i - from;
}

static int js_string(struct jscan *j)
{
	size_t from = j->i++;

	while (j->i < j->len) {
		unsigned char c = (unsigned char)j->s[j->i];
		if (c == '"') {
			j->i++;
			js_copy(j, from);
			return 0;
		}
		if (c < 0x20)
			return js_fail(j, "control character inside a string (escape it)");
		if (c == '\\') {
			char e;
			if (++j->i >= j->len)
				break;
			e = j->s[j->i];
			if (e == 'u') {
				long cp = js_u4(j->s + j->i + 1, j->len - j->i - 1);
				if (cp < 0)
					return js_fail(j, "bad \\u escape");
				j->i += 4;
				/* Surrogates only in pairs: a lone one is no character at all. */
				if (cp >= 0xDC00 && cp <= 0xDFFF)
					return js_fail(j, "unpaired surrogate in a \\u escape");
				if (cp >= 0xD800 && cp <= 0xDBFF) {
					long lo = j->len - j->i > 2 && j->s[j->i + 1] == '\\' && j->s[j->i + 2] == 'u'
							  ? js_u4(j->s + j->i + 3, j->len - j->i - 3) : -1;
					if (lo < 0xDC00 || lo > 0xDFFF)
						return js_fail(j, "unpaired surrogate in a \\u escape");
					j->i += 6;
				}
			} else if (!strchr("\"\\/bfnrt", e) || !e) {
				return js_fail(j, "bad escape in a string");
			}
		}
		j->i++;
	}
	return js_fail(j, "unterminated string");
}

static int js_number(struct jscan *j)
{
	size_t from = j->i;

	if (j->s[j->i] == '-')
		j->i++;
	if (!js_digit(j))
		return js_fail(j, "bad number");
	if (j->s[j->i] == '0') {
		j->i++;
		if (js_digit(j))
			return js_fail(j, "leading zero in a number");
	} else
		while (js_digit(j))
			j->i++;
	if (j->i < j->len && j->s[j->i] == '.') {
		j->i++;
		if (!js_digit(j))
			return js_fail(j, "bad number");
		while (js_digit(j))
			j->i++;
	}
	if (j->i < j->len && (j->s[j->i] == 'e' || j->s[j->i] == 'E')) {
		j->i++;
		if (j->i < j->len && (j->s[j->i] == '+' || j->s[j->i] == '-'))
			j->i++;
		if (!js_digit(j))
			return js_fail(j, "bad number");
		while (js_digit(j))
			j->i++;
	}
	js_copy(j, from);
	return 0;
}

static int js_literal(struct jscan *j, const char *word)
{
	size_t n = strlen(word);

	if (j->len - j->i < n || memcmp(j->s + j->i, word, n))
		return js_fail(j, "unexpected character");
	memcpy(j->out + j->o, word, n);
	j->o += n;
	j->i += n;
	return 0;
}

static int js_value(struct jscan *j);

/* Objects and arrays: open, members separated by commas, close. */
static int js_container(struct jscan *j, char open, char close)
{
	int first = 1;

	if (++j->depth > JSON_MAX_DEPTH)
		return js_fail(j, "nested too deeply");
	j->out[j->o++] = open;
	j->i++;
	for (;;) {
		js_ws(j);
		if (j->i >= j->len)
			return js_fail(j, "unexpected end");
		if (j->s[j->i] == close && first)
			break;
		if (!first) {
			if (j->s[j->i] == close)
				break;
			if (j->s[j->i] != ',')
				return js_fail(j, open == '{' ? "expected ',' or '}'" : "expected ',' or ']'");
			j->out[j->o++] = ',';
			j->i++;
			js_ws(j);
		}
		first = 0;
		if (open == '{') {
			if (j->i >= j->len || j->s[j->i] != '"')
				return js_fail(j, "expected a string key");
			if (js_string(j))
				return -1;
			js_ws(j);
			if (j->i >= j->len || j->s[j->i] != ':')
				return js_fail(j, "expected ':'");
			j->out[j->o++] = ':';
			j->i++;
			js_ws(j);
		}
		if (js_value(j))
			return -1;
	}
	j->out[j->o++] = close;
	j->i++;
	j->depth--;
	return 0;
}

static int js_value(struct jscan *j)
{
	if (j->i >= j->len)
		return js_fail(j, "unexpected end");
	switch (j->s[j->i]) {
	case '{': return js_container(j, '{', '}');
	case '[': return js_container(j, '[', ']');
	case '"': return js_string(j);
	case 't': return js_literal(j, "true");
	case 'f': return js_literal(j, "false");
	case 'n': return js_literal(j, "null");
	default:
		if (j->s[j->i] == '-' || (j->s[j->i] >= '0' && j->s[j->i] <= '9'))
			return js_number(j);
		return js_fail(j, "unexpected character");
	}
}

long json_minify(const char *text, size_t len, char *out, size_t *err_at, const char **why)
{
	struct jscan j = { .s = text, .len = len, .out = out };

	js_ws(&j);
	if (j.i == len) {
		*err_at = j.i;
		*why = "no value";
		return -1;
	}
	if (!js_value(&j)) {
		js_ws(&j);
		if (j.i == len) {
			out[j.o] = '\0';
			return (long)j.o;
		}
		js_fail(&j, "unexpected text after the value");
	}
	*err_at = j.i;
	*why = j.why;
	return -1;
}

/* Length of the minified value (or key string) at the start of v[0..len). */
static size_t js_skip(const char *v, size_t len)
{
	size_t i = 0;
	int depth = 0, in_str = 0;

	if (v[0] != '"' && v[0] != '{' && v[0] != '[') { /* number or literal */
		while (i < len && v[i] != ',' && v[i] != '}' && v[i] != ']')
			i++;
		return i;
	}
	for (; i < len; i++) {
		char c = v[i];
		if (in_str) {
			if (c == '\\')
				i++;
			else if (c == '"' && (in_str = 0, depth == 0))
				return i + 1;
		} else if (c == '"')
			in_str = 1;
		else if (c == '{' || c == '[')
			depth++;
		else if ((c == '}' || c == ']') && --depth == 0)
			return i + 1;
	}
	return i;
}

int json_object_next(const char *obj, size_t len, size_t *pos, const char **key, size_t *klen,
		     const char **val, size_t *vlen)
{
	size_t i = *pos ? *pos : 1, k;

	if (len < 2 || obj[0] != '{' || i >= len - 1 || obj[i] == '}')
		return 0;
	if (obj[i] == ',')
		i++;
	k = i + js_skip(obj + i, len - i); /* the key string */
	*key = obj + i + 1;
	*klen = k - i - 2;
	*val = obj + k + 1; /* after ':' */
	*vlen = js_skip(*val, len - k - 1);
	*pos = (size_t)(*val - obj) + *vlen;
	return 1;
}

size_t json_quote(char *out, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	size_t o = 0;

	out[o++] = '"';
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '"' || c == '\\') {
			out[o++] = '\\';
			out[o++] = (char)c;
		} else if (c >= 0x20) {
			out[o++] = (char)c;
		} else if (c == '\n') {
			out[o++] = '\\';
			out[o++] = 'n';
		} else if (c == '\t') {
			out[o++] = '\\';
			out[o++] = 't';
		} else if (c == '\r') {
			out[o++] = '\\';
			out[o++] = 'r';
		} else {
			memcpy(out + o, "\\u00", 4);
			out[o + 4] = hex[c >> 4];
			out[o + 5] = hex[c & 15];
			o += 6;
		}
	}
	out[o++] = '"';
	return o;
}

long json_unescape_short(const char *raw, size_t len, char *out, size_t cap)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		char c = raw[i];
		if ((unsigned char)c >= 0x80) {
			c = '?'; /* raw UTF-8 is outside ASCII just as a \u escape of it is */
		} else if (c == '\\' && i + 1 < len) {
			char e = raw[++i];
			const char *from = "\"\\/bfnrt", *to = "\"\\/\b\f\n\r\t", *k = strchr(from, e);
			if (e == 'u') {
				long cp = js_u4(raw + i + 1, len - i - 1);
				i += 4;
				c = cp >= 0 && cp < 0x80 ? (char)cp : '?'; /* not ASCII: no valid name anyway */
			} else
				c = k && e ? to[k - from] : '?';
		}
		if (o == cap)
			return -1;
		out[o++] = c;
	}
	return (long)o;
}
