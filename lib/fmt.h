/* fmt.h: the few formatting steps of the publish path, without printf.
 *
 * glibc's snprintf costs about 400 instructions for one "%s" or "%lld" (callgrind), and a
 * keep-alive publish made six of them: 10% of chatd's instructions per publish
 * (bench/publish.md). These write the same bytes. */
#ifndef CHAT_FMT_H
#define CHAT_FMT_H

#include <stddef.h>
#include <stdint.h>

#define FMT_INT_MAX 21 /* "-9223372036854775808" and its NUL */

/* v in decimal at out (FMT_INT_MAX bytes are enough), NUL-terminated; returns its length. */
size_t fmt_u64(char *out, uint64_t v);
size_t fmt_i64(char *out, int64_t v);

/* s into out (cap bytes), NUL-terminated and cut to fit, as snprintf(out, cap, "%s", s)
 * does; nothing at all when cap is 0. Returns the length written. */
size_t fmt_str(char *out, size_t cap, const char *s);

#endif
