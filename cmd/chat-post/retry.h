/* retry.h: trying a message again without publishing it twice.
 *
 * Every attempt at one message carries the same idempotency key, so a server that stored
 * the message but whose answer was lost recognises the retry and does not publish it
 * again. The wait between attempts is the same backoff as chat-listen's reconnects. */
#ifndef CHAT_POST_RETRY_H
#define CHAT_POST_RETRY_H

#include <stddef.h>
#include <stdint.h>

#define RETRY_MAX 1000     /* most retries per message: see chat-post(1) on the window */
#define RETRY_KEY_MAX 100  /* chatd's limit on an Idempotency-Key */

struct retry {
	char prefix[33];          /* 128 random bits in hex: unique to this process */
	unsigned long long count; /* keys handed out so far */
	uint64_t rng;             /* jitter */
};

/* Seed from the kernel's random numbers. Returns 0, or -1 with a reason in err. */
int retry_init(struct retry *r, char *err, size_t errlen);

/* A key no other message (of this or any other process) gets: PREFIX-COUNT. */
void retry_key_next(struct retry *r, char key[RETRY_KEY_MAX + 1]);

/* NULL when key is acceptable to chatd (1 to 100 characters 0x21..0x7e), else why not. */
const char *retry_key_check(const char *key);

/* How long to wait before retry number n (1 for the first): 100 ms doubling to 5 s, or
 * the server's Retry-After (retry_after_ms, -1 when it sent none; at most
 * RETRY_AFTER_CAP_MS) when that is longer, plus up to 20% jitter. */
#define RETRY_AFTER_CAP_MS 30000L
long retry_delay_ms(struct retry *r, long n, long retry_after_ms);

/* Sleep ms milliseconds, through signals that do not end the process. */
void retry_sleep_ms(long ms);

#endif
