/* utf8.h: strict UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
#ifndef CHAT_UTF8_H
#define CHAT_UTF8_H

#include <stddef.h>

int utf8_valid(const char *s, size_t len);

/* Copy s[0..len) into out (cap bytes, NUL-terminated, cut to fit; nothing at all when cap
 * is 0) with every byte that is not printable ASCII, and '"', shown as '?': for echoing
 * untrusted names and paths back in error messages, which travel as JSON and WebSocket
 * close reasons. Returns out. */
char *utf8_printable(char *out, size_t cap, const char *s, size_t len);

#endif
