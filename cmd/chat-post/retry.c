/* retry.c: idempotency keys and backoff; see retry.h. */
#include "retry.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const long backoff_ms[] = { 100, 200, 400, 800, 1600, 3200, 5000 };
#define BACKOFF_STEPS (long)(sizeof backoff_ms / sizeof backoff_ms[0])

/* getrandom(), or /dev/urandom where the kernel is too old for it. */
static int random_bytes(unsigned char *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;
	int fd;

	while (got < len) {
		n = getrandom(buf + got, len - got, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			break;
		got += (size_t)n;
	}
	if (got == len)
		return 0;
	if ((fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC)) < 0)
		return -1;
	for (got = 0; got < len; got += (size_t)n) {
		n = read(fd, buf + got, len - got);
		if (n < 0 && errno == EINTR)
			n = 0;
		else if (n <= 0)
			break;
	}
	close(fd);
	return got == len ? 0 : -1;
}

int retry_init(struct retry *r, char *err, size_t errlen)
{
	unsigned char b[16 + sizeof r->rng];

	memset(r, 0, sizeof *r);
	if (random_bytes(b, sizeof b)) {
		snprintf(err, errlen, "cannot get random numbers for idempotency keys: %s",
			 strerror(errno));
		return -1;
	}
	for (size_t i = 0; i < 16; i++)
		snprintf(r->prefix + 2 * i, 3, "%02x", b[i]);
	memcpy(&r->rng, b + 16, sizeof r->rng);
	r->rng |= 1; /* xorshift must not start at 0 */
	return 0;
}

void retry_key_next(struct retry *r, char key[RETRY_KEY_MAX + 1])
{
	snprintf(key, RETRY_KEY_MAX + 1, "%s-%llu", r->prefix, ++r->count);
}

const char *retry_key_check(const char *key)
{
	size_t n = strlen(key);

	if (n == 0)
		return "it is empty";
	if (n > RETRY_KEY_MAX)
		return "it is longer than 100 characters";
	for (const char *c = key; *c; c++)
		if (*c < 0x21 || *c > 0x7e)
			return "it may only use visible ASCII characters, no spaces";
	return NULL;
}

/* xorshift64: jitter needs to differ between processes, not to be unpredictable. */
static uint64_t next_random(struct retry *r)
{
	r->rng ^= r->rng << 13;
	r->rng ^= r->rng >> 7;
	r->rng ^= r->rng << 17;
	return r->rng;
}

long retry_delay_ms(struct retry *r, long n, long retry_after_ms)
{
	long base = backoff_ms[n < 1 ? 0 : n > BACKOFF_STEPS ? BACKOFF_STEPS - 1 : n - 1];

	if (retry_after_ms > RETRY_AFTER_CAP_MS)
		retry_after_ms = RETRY_AFTER_CAP_MS;
	if (retry_after_ms > base)
		base = retry_after_ms;
	/* Jitter on top, also of Retry-After: clients turned away together should not all
	 * come back in the same millisecond. */
	return base + (long)(next_random(r) % (uint64_t)(base / 5 + 1));
}

void retry_sleep_ms(long ms)
{
	struct timespec t = { ms / 1000, (ms % 1000) * 1000000L };

	while (nanosleep(&t, &t) == -1 && errno == EINTR)
		;
}
