/* utf8.h: strict UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF). */
#ifndef CHAT_UTF8_H
#define CHAT_UTF8_H

#include <stddef.h>

int utf8_valid(const char *s, size_t len);

#endif
