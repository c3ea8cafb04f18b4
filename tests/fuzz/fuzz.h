/* fuzz.h: what every libFuzzer target in tests/fuzz/ shares: a check that aborts with the
 * failed property (libFuzzer then saves the input as a crash), and a reader that takes
 * parameters (sizes, numbers, choices) off the front of the input. */
#ifndef CHAT_FUZZ_H
#define CHAT_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                   \
	do {                                                                                \
		if (!(cond)) {                                                              \
			fprintf(stderr, "%s:%d: property failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                            \
		}                                                                           \
	} while (0)

struct fuzz_in {
	const uint8_t *p;
	size_t n;
};

/* The next byte, or 0 when the input is used up. */
static inline unsigned fuzz_u8(struct fuzz_in *in)
{
	if (!in->n)
		return 0;
	in->n--;
	return *in->p++;
}

static inline uint64_t fuzz_u64(struct fuzz_in *in)
{
	uint64_t v = 0;

	for (int k = 0; k < 8; k++)
		v = v << 8 | fuzz_u8(in);
	return v;
}

/* The next n bytes (fewer at the end of the input); *len says how many. */
static inline const char *fuzz_bytes(struct fuzz_in *in, size_t n, size_t *len)
{
	const char *p = (const char *)in->p;

	*len = n < in->n ? n : in->n;
	in->p += *len;
	in->n -= *len;
	return p;
}

/* A copy of p[0..n) in a buffer of exactly n bytes, so ASan sees any read past the end
 * (a NUL-terminated copy when nul is set: n + 1 bytes). */
static inline char *fuzz_dup(const void *p, size_t n, int nul)
{
	char *c = malloc(n + (nul ? 1 : 0)); /* malloc(0) under ASan: any access is caught */

	if (!c && n + (nul ? 1 : 0))
		abort();
	for (size_t i = 0; i < n; i++)
		c[i] = ((const char *)p)[i];
	if (nul)
		c[n] = '\0';
	return c;
}

#endif
