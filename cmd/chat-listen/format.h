/* format.h: --format templates, such as "{ts} {chan} {sender}: {msg}"; plain output is
 * the template "{msg}".
 *
 * A template is read once, at start, so that a mistake in it is a usage error before
 * anything connects; then it is filled in for each message. Fields:
 *
 *	{chan} {seq} {epoch}   the envelope's members ("" when absent)
 *	{ts}                   when the server took the message, local time "2026-11-27 21:00:05"
 *	{ts_ms}                the same, milliseconds since 1970, as sent
 *	{sender}               who published it, "" when the server names nobody
 *	{msg}                  a string's text; any other value as its JSON text from the
 *	                       envelope, compact but otherwise as published (every digit,
 *	                       escape and member order kept)
 *	{json}                 the whole envelope, as received
 *
 * "{{" and "}}" are literal braces; "\t", "\n" and "\\" a tab, a newline and a backslash.
 * With colour, {ts} is dim and {chan} and {sender} are coloured (ANSI SGR sequences). */
#ifndef CHAT_LISTEN_FORMAT_H
#define CHAT_LISTEN_FORMAT_H

#include <stddef.h>

#include "envelope.h"

struct fmt;

/* Read a template. Returns it, or NULL with the reason in err (for a user: it names the
 * field or the character at fault). */
struct fmt *fmt_compile(const char *tmpl, char *err, size_t errlen);

/* Fill in f for the envelope m, whose text as received is frame[0..len). The result is
 * in *out (*outlen bytes, no terminator), valid until the next call. Returns 0, or -1
 * when out of memory. */
int fmt_render(struct fmt *f, const struct env_msg *m, const char *frame, size_t len, int color,
	       const char **out, size_t *outlen);

void fmt_free(struct fmt *f);

#endif
