/* lwslog.c: lws' log calls, cheap when their level is off.
 *
 * Debian builds libwebsockets 4.1.6 with every log level compiled in, and its HTTP
 * parser traces each byte of each request header (LLL_PARSER): 187 calls of _lws_log
 * per keep-alive publish from chat-bench (callgrind). lws' own _lws_log builds a
 * va_list and calls _lws_logv before it looks at the level. chatd defines _lws_log
 * itself and exports it (-Wl,--export-dynamic-symbol in the Makefile); lws calls its
 * own exported functions through the PLT, so it binds to this one, which returns at
 * once for a level that is off and hands the rest to lws' _lws_logv. The levels are
 * the ones chatd gives lws_set_log_level, through lwslog_set_level; until then lws'
 * default. */
#include <libwebsockets.h>
#include <stdarg.h>

#include "server.h"

static int levels = LLL_ERR | LLL_WARN | LLL_NOTICE; /* lws 4.1.6's default */

void lwslog_set_level(int level, void (*emit)(int level, const char *line))
{
	levels = level;
	lws_set_log_level(level, emit);
}

void _lws_log(int filter, const char *format, ...)
{
	va_list ap;

	if (!(filter & levels))
		return;
	va_start(ap, format);
	_lws_logv(filter, format, ap);
	va_end(ap);
}
