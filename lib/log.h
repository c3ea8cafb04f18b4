/* log.h: one event per line on stderr, "TIME LEVEL component: message key=value".
 *
 * The level is process-wide configuration set once by a main; the library itself only
 * logs through here, never to stdout. */
#ifndef CHAT_LOG_H
#define CHAT_LOG_H

enum log_level { LOGL_ERROR = 0, LOGL_WARN, LOGL_INFO, LOGL_DEBUG };

enum log_format { LOG_TEXT, LOG_JSON };

void log_set_level(int level);
/* LOG_JSON: one object per line instead,
 * {"time":"2026-01-02T03:04:05.678Z","level":"info","component":"chatd","msg":"..."}. */
void log_set_format(int format);
int log_enabled(int level);
void log_msg(int level, const char *component, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#define log_error(c, ...) log_msg(LOGL_ERROR, c, __VA_ARGS__)
#define log_warn(c, ...)  log_msg(LOGL_WARN, c, __VA_ARGS__)
#define log_info(c, ...)  log_msg(LOGL_INFO, c, __VA_ARGS__)
#define log_debug(c, ...) do { if (log_enabled(LOGL_DEBUG)) log_msg(LOGL_DEBUG, c, __VA_ARGS__); } while (0)

#endif
