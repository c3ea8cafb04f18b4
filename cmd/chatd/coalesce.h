/* coalesce.h: how the --coalesce window follows the load (ws.c's write rounds).
 *
 * After each write round the window doubles, up to 4 x the configured one, while
 * subscribers get messages faster than 3 each per configured interval (on average, over
 * the time since the last round), so rounds carry more and cost less each; slower, it
 * halves, down to the configured one. Deciding on the rate, not on how many frames a
 * round gathered, keeps a window from staying long at a rate it was not made for:
 * counting frames per round, a window of 4 x 500 us at 1000 messages a second gathered 2
 * a round, which neither doubled nor halved it, and held every message up to 2 ms
 * (bench/coalesce.md). Header-only so tests/unit/test_coalesce.c can check the rule. */
#ifndef CHATD_COALESCE_H
#define CHATD_COALESCE_H

#include <stdint.h>

#define COALESCE_GROWTH 4 /* the window is at most this many times the configured one */

/* The window after a round that wrote frames to nsess subscribers, since ns after the
 * round before; win is the window in force, min the configured one (all ns). */
static inline uint64_t coalesce_next(uint64_t win, uint64_t min, uint64_t frames,
				     unsigned nsess, uint64_t since)
{
	uint64_t max = COALESCE_GROWTH * min;

	if (!nsess || !min)
		return win;
	if (since > 1000000000) /* a second apart is slow enough, and nothing overflows */
		since = 1000000000;
	if (!since)
		since = 1;
	if (frames * min >= 3 * (uint64_t)nsess * since)
		return win * 2 < max ? win * 2 : max;
	return win / 2 > min ? win / 2 : min;
}

#endif
