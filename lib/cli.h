/* cli.h: plumbing shared by the mains: version, environment fallbacks, number parsing,
 * and the exit codes the man pages document. */
#ifndef CHAT_CLI_H
#define CHAT_CLI_H

#include <stddef.h>
#include <sysexits.h>

#define CHAT_VERSION "0.1.0"
#define CHAT_URL_DEFAULT "http://127.0.0.1:3000"

/* getenv(name) when set and non-empty, else fallback. */
const char *cli_env(const char *name, const char *fallback);

/* "65536", "64K", "1M", "2G" (powers of 1024). Returns 0 or -1. */
int cli_parse_size(const char *s, size_t *out);

/* A non-negative decimal integer no larger than max. Returns 0 or -1. */
int cli_parse_count(const char *s, long max, long *out);

#endif
