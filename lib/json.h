/* json.h: strict JSON text handling for relaying values unchanged.
 *
 * chatd relays a published value as the sender wrote it (numbers keep every digit,
 * escapes stay as written), minus insignificant whitespace. That needs a validator that
 * is exactly RFC 8259 (cJSON accepts leading zeros and raw control characters, and
 * re-printing through doubles changes numbers), and a way to find an object's members as
 * spans of the text. */
#ifndef CHAT_JSON_H
#define CHAT_JSON_H

#include <stddef.h>

#define JSON_MAX_DEPTH 512

/* Check that text[0..len) is one JSON value, optionally surrounded by whitespace, and
 * write it to out (room for len + 1 bytes) without insignificant whitespace, NUL-
 * terminated. Returns the output length, or -1 with the byte offset of the problem in
 * *err_at and a reason in *why. UTF-8 is not checked here (see utf8.h). */
long json_minify(const char *text, size_t len, char *out, size_t *err_at, const char **why);

/* Iterate the members of a minified JSON object obj[0..len): start with *pos = 0.
 * Returns 1 and the raw key (without its quotes, escapes as written) and raw value spans,
 * or 0 at the end. */
int json_object_next(const char *obj, size_t len, size_t *pos, const char **key, size_t *klen,
		     const char **val, size_t *vlen);

/* Append s[0..len) to out as a JSON string with quotes; out needs 6 * len + 3 bytes.
 * Returns the number of bytes written. */
size_t json_quote(char *out, const char *s, size_t len);

/* Decode the escapes of a raw JSON string body (as json_object_next returns it) into out,
 * for short ASCII identifiers: anything outside ASCII becomes '?', and \u0000 a NUL byte.
 * Returns the length, or -1 when it does not fit in cap bytes. */
long json_unescape_short(const char *raw, size_t len, char *out, size_t cap);

#endif
