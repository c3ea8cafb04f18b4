/* fuzz_json.c: libFuzzer target for lib/json.c.
 *
 * Properties:
 * - json_minify accepts exactly what a recognizer written here from RFC 8259's grammar
 *   accepts (plus chatd's two rules: surrogate escapes only in pairs, at most
 *   JSON_MAX_DEPTH nested containers); on success its output is the input with the
 *   whitespace outside strings removed, NUL-terminated, and minifies to itself.
 * - json_object_next, walking every object of minified text at every depth, yields
 *   members that put back together ("{" key ":" value "," ... "}") give the object's
 *   exact text, each value being itself one valid minified JSON value.
 * - json_unescape_short decodes every key like a reference decoder and never writes more
 *   than cap bytes, on valid keys and on arbitrary bytes.
 * - json_quote of any bytes is a valid JSON string that json_unescape_short (for ASCII)
 *   and cJSON (for valid UTF-8 without NUL) decode back to the same bytes. */
#include <cjson/cJSON.h>
#include <string.h>

#include "fuzz.h"
#include "json.h"
#include "utf8.h"

/* ---- the reference recognizer: RFC 8259 section 2 to 7, by the grammar ---- */

struct ref {
	const unsigned char *s;
	size_t n, i;
	int depth;
};

static int ref_peek(const struct ref *r)
{
	return r->i < r->n ? r->s[r->i] : -1;
}

static void ref_ws(struct ref *r)
{
	int c;

	while ((c = ref_peek(r)) == 0x20 || c == 0x09 || c == 0x0A || c == 0x0D)
		r->i++;
}

static int ref_hex4(struct ref *r, unsigned *v)
{
	*v = 0;
	for (int k = 0; k < 4; k++) {
		int c = ref_peek(r);
		if (c >= '0' && c <= '9')
			*v = *v * 16 + (unsigned)(c - '0');
		else if (c >= 'a' && c <= 'f')
			*v = *v * 16 + (unsigned)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			*v = *v * 16 + (unsigned)(c - 'A' + 10);
		else
			return 0;
		r->i++;
	}
	return 1;
}

static int ref_string(struct ref *r)
{
	r->i++; /* the opening quote */
	for (;;) {
		int c = ref_peek(r);
		unsigned hi, lo;

		if (c < 0 || c < 0x20)
			return 0;
		r->i++;
		if (c == '"')
			return 1;
		if (c != '\\')
			continue;
		c = ref_peek(r);
		r->i++;
		if (c == '"' || c == '\\' || c == '/' || c == 'b' || c == 'f' || c == 'n' ||
		    c == 'r' || c == 't')
			continue;
		if (c != 'u' || !ref_hex4(r, &hi))
			return 0;
		if (hi >= 0xDC00 && hi <= 0xDFFF)
			return 0; /* a low surrogate first */
		if (hi < 0xD800 || hi > 0xDBFF)
			continue;
		if (ref_peek(r) != '\\')
			return 0;
		r->i++;
		if (ref_peek(r) != 'u')
			return 0;
		r->i++;
		if (!ref_hex4(r, &lo) || lo < 0xDC00 || lo > 0xDFFF)
			return 0;
	}
}

static int ref_digits(struct ref *r)
{
	size_t from = r->i;

	while (ref_peek(r) >= '0' && ref_peek(r) <= '9')
		r->i++;
	return r->i > from;
}

/* number = [ minus ] int [ frac ] [ exp ];  int = zero / ( digit1-9 *DIGIT ) */
static int ref_number(struct ref *r)
{
	if (ref_peek(r) == '-')
		r->i++;
	if (ref_peek(r) == '0')
		r->i++;
	else if (!ref_digits(r))
		return 0;
	if (ref_peek(r) == '.') {
		r->i++;
		if (!ref_digits(r))
			return 0;
	}
	if (ref_peek(r) == 'e' || ref_peek(r) == 'E') {
		r->i++;
		if (ref_peek(r) == '+' || ref_peek(r) == '-')
			r->i++;
		if (!ref_digits(r))
			return 0;
	}
	return 1;
}

static int ref_value(struct ref *r);

static int ref_members(struct ref *r, int close, int is_object)
{
	if (++r->depth > JSON_MAX_DEPTH)
		return 0;
	r->i++;
	ref_ws(r);
	if (ref_peek(r) == close) {
		r->i++;
		r->depth--;
		return 1;
	}
	for (;;) {
		if (is_object) {
			if (ref_peek(r) != '"' || !ref_string(r))
				return 0;
			ref_ws(r);
			if (ref_peek(r) != ':')
				return 0;
			r->i++;
			ref_ws(r);
		}
		if (!ref_value(r))
			return 0;
		ref_ws(r);
		if (ref_peek(r) == close) {
			r->i++;
			r->depth--;
			return 1;
		}
		if (ref_peek(r) != ',')
			return 0;
		r->i++;
		ref_ws(r);
	}
}

static int ref_literal(struct ref *r, const char *w)
{
	size_t n = strlen(w);

	if (r->n - r->i < n || memcmp(r->s + r->i, w, n))
		return 0;
	r->i += n;
	return 1;
}

static int ref_value(struct ref *r)
{
	switch (ref_peek(r)) {
	case '{': return ref_members(r, '}', 1);
	case '[': return ref_members(r, ']', 0);
	case '"': return ref_string(r);
	case 't': return ref_literal(r, "true");
	case 'f': return ref_literal(r, "false");
	case 'n': return ref_literal(r, "null");
	case '-': case '0': case '1': case '2': case '3': case '4':
	case '5': case '6': case '7': case '8': case '9': return ref_number(r);
	default: return 0;
	}
}

/* JSON-text = ws value ws */
static int ref_json_text(const unsigned char *s, size_t n)
{
	struct ref r = { .s = s, .n = n };

	ref_ws(&r);
	if (!ref_value(&r))
		return 0;
	ref_ws(&r);
	return r.i == n;
}

/* The text of valid JSON without the whitespace outside strings. */
static size_t ref_strip(const char *s, size_t n, char *out)
{
	size_t o = 0;
	int in_str = 0;

	for (size_t i = 0; i < n; i++) {
		char c = s[i];
		if (in_str) {
			if (c == '\\')
				out[o++] = c, c = s[++i];
			else if (c == '"')
				in_str = 0;
		} else if (c == ' ' || c == '\t' || c == '\n' || c == '\r')
			continue;
		else if (c == '"')
			in_str = 1;
		out[o++] = c;
	}
	return o;
}

/* json_unescape_short's contract, decoded the slow way: the raw body of a valid string. */
static size_t ref_unescape_short(const char *raw, size_t len, char *out)
{
	size_t o = 0;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)raw[i];
		if (c != '\\') {
			out[o++] = c < 0x80 ? (char)c : '?';
			continue;
		}
		c = (unsigned char)raw[++i];
		switch (c) {
		case 'b': out[o++] = '\b'; break;
		case 'f': out[o++] = '\f'; break;
		case 'n': out[o++] = '\n'; break;
		case 'r': out[o++] = '\r'; break;
		case 't': out[o++] = '\t'; break;
		case 'u': {
			unsigned v = 0;
			for (int k = 1; k <= 4; k++) {
				char h = raw[i + k];
				v = v * 16 + (unsigned)(h <= '9' ? h - '0' : (h | 0x20) - 'a' + 10);
			}
			out[o++] = v < 0x80 ? (char)v : '?';
			i += 4;
			break;
		}
		default: out[o++] = (char)c; /* " \ / */
		}
	}
	return o;
}

/* ---- properties ---- */

/* text[0..len) must be one minified JSON value: minify gives it back unchanged. */
static void check_minified(const char *text, size_t len)
{
	char *copy = fuzz_dup(text, len, 0), *out = malloc(len + 1);
	size_t at;
	const char *why;

	FUZZ_CHECK(out);
	FUZZ_CHECK(json_minify(copy, len, out, &at, &why) == (long)len);
	FUZZ_CHECK(!memcmp(out, text, len) && out[len] == '\0');
	free(copy);
	free(out);
}

static void check_key(const char *key, size_t klen)
{
	char *ref = malloc(klen + 1), *out;
	size_t n = ref_unescape_short(key, klen, ref);

	FUZZ_CHECK(ref);
	/* Exactly n bytes fit; one fewer does not. */
	out = malloc(n);
	FUZZ_CHECK(json_unescape_short(key, klen, out, n) == (long)n);
	FUZZ_CHECK(!memcmp(out, ref, n));
	free(out);
	if (n) {
		out = malloc(n - 1);
		FUZZ_CHECK(json_unescape_short(key, klen, out, n - 1) == -1);
		free(out);
	}
	free(ref);
}

static void walk(const char *v, size_t len, int depth);

/* Every member of the object obj[0..len), rebuilt, must give obj again. */
static void walk_object(const char *obj, size_t len, int depth)
{
	char *re = malloc(len + 1);
	size_t pos = 0, o = 0, klen, vlen, last = 0;
	const char *key, *val;

	FUZZ_CHECK(re);
	re[o++] = '{';
	while (json_object_next(obj, len, &pos, &key, &klen, &val, &vlen)) {
		FUZZ_CHECK(pos > last && pos <= len); /* progress, inside the text */
		last = pos;
		FUZZ_CHECK(key > obj && key + klen < obj + len && key[-1] == '"' && key[klen] == '"');
		FUZZ_CHECK(val > key + klen && vlen > 0 && val + vlen <= obj + len);
		FUZZ_CHECK(o + klen + vlen + 4 <= len);
		if (o > 1)
			re[o++] = ',';
		re[o++] = '"';
		memcpy(re + o, key, klen), o += klen;
		re[o++] = '"';
		re[o++] = ':';
		memcpy(re + o, val, vlen), o += vlen;
		check_minified(key - 1, klen + 2);
		check_minified(val, vlen);
		check_key(key, klen);
		walk(val, vlen, depth + 1);
	}
	re[o++] = '}';
	FUZZ_CHECK(o == len && !memcmp(re, obj, len));
	free(re);
}

/* Find the objects inside the minified value v: objects directly, arrays element by
 * element (split at top-level commas, the same way a reader would). */
static void walk(const char *v, size_t len, int depth)
{
	FUZZ_CHECK(depth <= JSON_MAX_DEPTH);
	if (v[0] == '{') {
		walk_object(v, len, depth);
	} else if (v[0] == '[' && len > 2) {
		size_t from = 1;
		int d = 0, in_str = 0;
		for (size_t i = 1; i < len; i++) {
			char c = v[i];
			if (in_str) {
				if (c == '\\')
					i++;
				else if (c == '"')
					in_str = 0;
			} else if (c == '"')
				in_str = 1;
			else if (c == '{' || c == '[')
				d++;
			else if (c == '}' || (c == ']' && d > 0))
				d--;
			else if ((c == ',' && d == 0) || (c == ']' && i == len - 1)) {
				walk(v + from, i - from, depth + 1);
				from = i + 1;
			}
		}
	}
}

static void check_minify(const uint8_t *data, size_t size)
{
	char *in = fuzz_dup(data, size, 0), *out = malloc(size + 1), *strip = malloc(size + 1);
	size_t at = (size_t)-1;
	const char *why = NULL;
	long n = json_minify(in, size, out, &at, &why);
	int ref = ref_json_text(data, size);

	FUZZ_CHECK(out && strip);
	if (n < 0) {
		FUZZ_CHECK(n == -1 && why && *why && at <= size);
		FUZZ_CHECK(!ref);
	} else {
		FUZZ_CHECK(ref);
		FUZZ_CHECK((size_t)n <= size && out[n] == '\0' && n > 0);
		FUZZ_CHECK(ref_strip(in, size, strip) == (size_t)n && !memcmp(strip, out, (size_t)n));
		check_minified(out, (size_t)n);
		walk(out, (size_t)n, 0);
		if (out[0] != '{') { /* not an object: no members */
			size_t pos = 0, klen, vlen;
			const char *key, *val;
			FUZZ_CHECK(!json_object_next(out, (size_t)n, &pos, &key, &klen, &val, &vlen));
		}
	}
	free(in);
	free(out);
	free(strip);
}

/* json_unescape_short on bytes that were never checked: no write past cap, no read past
 * len, and never a result longer than cap or the input. */
static void check_unescape_raw(const uint8_t *data, size_t size)
{
	size_t cap = size ? data[0] % 80 : 0;
	char *raw = fuzz_dup(data, size, 0), *out = malloc(cap);
	long n = json_unescape_short(raw, size, out, cap);

	FUZZ_CHECK(n == -1 || ((size_t)n <= cap && (size_t)n <= size));
	free(raw);
	free(out);
}

static void check_quote(const uint8_t *data, size_t size)
{
	char *in = fuzz_dup(data, size, 0), *q = malloc(6 * size + 3), *back;
	size_t qn = json_quote(q, in, size);

	FUZZ_CHECK(q && qn >= 2 && qn <= 6 * size + 2);
	FUZZ_CHECK(q[0] == '"' && q[qn - 1] == '"');
	for (size_t i = 0; i < qn; i++) /* nothing raw that a JSON string may not hold */
		FUZZ_CHECK((unsigned char)q[i] >= 0x20);
	q[qn] = '\0';
	check_minified(q, qn);
	FUZZ_CHECK(ref_json_text((const unsigned char *)q, qn));

	back = malloc(size);
	FUZZ_CHECK(json_unescape_short(q + 1, qn - 2, back, size) == (long)size);
	for (size_t i = 0; i < size; i++)
		FUZZ_CHECK(back[i] == (data[i] < 0x80 ? (char)data[i] : '?'));
	free(back);

	/* A client decodes with cJSON: valid UTF-8 comes back byte for byte. */
	if (utf8_valid(in, size) && !memchr(in, 0, size)) {
		cJSON *j = cJSON_ParseWithLength(q, qn);
		FUZZ_CHECK(cJSON_IsString(j) && strlen(j->valuestring) == size &&
			   !memcmp(j->valuestring, in, size));
		cJSON_Delete(j);
	}
	free(q);
	free(in);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	check_minify(data, size);
	check_unescape_raw(data, size);
	check_quote(data, size);
	return 0;
}
