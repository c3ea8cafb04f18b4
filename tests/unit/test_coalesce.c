/* test_coalesce.c: coalesce_next, the rule chatd's --coalesce window follows
 * (cmd/chatd/coalesce.h). Times in microseconds here, nanoseconds in the rule. */
#include <stdint.h>

#include "../../cmd/chatd/coalesce.h"
#include "tap.h"

#define US 1000ull /* ns */

struct round {
	const char *what;
	uint64_t win_us, min_us, frames;
	unsigned nsess;
	uint64_t since_us, want_us;
};

int main(void)
{
	const struct round rounds[] = {
		/* 1000 messages a second, default 500 us: 2 a round at 2 ms is 0.25 per 500 us */
		{ "1000/s in a 2 ms window: 2 a round halves it", 2000, 500, 200, 100, 2000, 1000 },
		{ "1000/s in a 1 ms window: halves again", 1000, 500, 100, 100, 1000, 500 },
		{ "1000/s at the configured window stays there", 500, 500, 100, 100, 1000, 500 },
		{ "3 a round at 4x the window is still too slow: halves", 2000, 500, 3, 1, 2000, 1000 },
		/* fast: 20,000 a second to 100 subscribers (4 publishers' fan-out) */
		{ "10 each per 500 us doubles", 500, 500, 1000, 100, 500, 1000 },
		{ "and doubles again", 1000, 500, 2000, 100, 1000, 2000 },
		{ "but not past 4x", 2000, 500, 4000, 100, 2000, 2000 },
		{ "exactly 3 each per interval doubles", 500, 500, 300, 100, 500, 1000 },
		{ "just under 3 each per interval halves", 1000, 500, 599, 100, 1000, 500 },
		{ "the average counts: 1 subscriber of 4 getting 8 is 2 each, halves", 1000, 500, 8,
		  4, 500, 500 },
		/* time, not rounds */
		{ "one message after a quiet second halves", 2000, 500, 1, 1, 1000000, 1000 },
		{ "a year later, to 20,000 subscribers: no overflow, halves", 2000, 500, 20000,
		  20000, 31536000000000ull, 1000 },
		{ "a burst of 19 in 100 ms at --coalesce 100000 doubles", 100000, 100000, 19, 1,
		  100000, 200000 },
		{ "a round no time after the last (clock step) counts as fast", 500, 500, 1, 1, 0,
		  1000 },
		/* edges */
		{ "no subscriber written: unchanged", 1000, 500, 0, 0, 1000, 1000 },
		{ "--coalesce 0: stays 0", 0, 0, 1000, 1, 1, 0 },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(rounds); i++) {
		const struct round *r = &rounds[i];
		uint64_t got = coalesce_next(r->win_us * US, r->min_us * US, r->frames, r->nsess,
					     r->since_us * US);
		tap_long_eq((long long)(got / US), (long long)r->want_us, "%s", r->what);
	}
	return tap_done();
}
