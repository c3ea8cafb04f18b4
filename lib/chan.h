/* chan.h: what a channel name may be. Enforced on every path a name enters chatd. */
#ifndef CHAT_CHAN_H
#define CHAT_CHAN_H

#include <stddef.h>

#define CHAN_MAX 64 /* bytes */
#define CHAN_DEFAULT "pubsub"
#define CHAN_MAX_PER_CONN 16 /* channels one WebSocket connection may subscribe to */

/* NULL when name[0..len) is a valid channel name, else a short reason for the user. */
const char *chan_check(const char *name, size_t len);

#endif
