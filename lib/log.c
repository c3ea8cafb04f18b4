/* log.c: the line format every chatd tool uses for diagnostics. */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "json.h"

/* The only mutable globals in lib: a verbosity and a format chosen once at start-up. */
static int log_level = LOGL_INFO;
static int log_format = LOG_TEXT;

void log_set_format(int format)
{
	log_format = format;
}

static const char *const level_names[] = { "ERROR", "WARN", "INFO", "DEBUG" };

void log_set_level(int level)
{
	if (level < LOGL_ERROR)
		level = LOGL_ERROR;
	if (level > LOGL_DEBUG)
		level = LOGL_DEBUG;
	log_level = level;
}

int log_enabled(int level)
{
	return level <= log_level;
}

void log_msg(int level, const char *component, const char *fmt, ...)
{
	char line[2048], stamp[32];
	struct timeval tv;
	struct tm tm;
	va_list ap;
	int n;

	if (!log_enabled(level))
		return;
	if (log_format == LOG_JSON) {
		char msg[2048], out[6 * sizeof msg + 200];
		static const char *const lower[] = { "error", "warn", "info", "debug" };

		gettimeofday(&tv, NULL);
		gmtime_r(&tv.tv_sec, &tm);
		strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &tm);
		va_start(ap, fmt);
		n = vsnprintf(msg, sizeof msg, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		n = snprintf(out, sizeof out, "{\"time\":\"%s.%03dZ\",\"level\":\"%s\",\"component\":\"%s\",\"msg\":",
			     stamp, (int)(tv.tv_usec / 1000), lower[level], component);
		n += (int)json_quote(out + n, msg, strnlen(msg, sizeof msg));
		fprintf(stderr, "%.*s}\n", n, out);
		return;
	}
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	strftime(stamp, sizeof stamp, "%Y-%m-%d %H:%M:%S", &tm);
	n = snprintf(line, sizeof line, "%s.%03d %s %s: ", stamp, (int)(tv.tv_usec / 1000),
		     level_names[level], component);
	va_start(ap, fmt);
	if (n > 0 && (size_t)n < sizeof line)
		vsnprintf(line + n, sizeof line - (size_t)n, fmt, ap);
	va_end(ap);
	/* One write per line, so lines from one process never interleave mid-line. */
	fprintf(stderr, "%s\n", line);
}
