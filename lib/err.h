/* err.h: how lib functions report a failure: a sentence for the user in the caller's
 * buffer, and -1. The library never prints; the caller decides where the sentence goes. */
#ifndef CHAT_ERR_H
#define CHAT_ERR_H

#include <stddef.h>

/* Format into err (errlen bytes; NULL or 0 to discard) and return -1. */
int err_set(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

#endif
