/* test_fmt.c: fmt_u64, fmt_i64 and fmt_str write what snprintf writes. */
#include <inttypes.h>
#include <stdio.h>

#include "fmt.h"
#include "tap.h"

/* got, n bytes long by the function's count, is want */
static void same(const char *fn, const char *got, size_t n, const char *want)
{
	tap_ok(!strcmp(got, want) && n == strlen(want), "%s(%s) is \"%s\" (%zu bytes)", fn, want,
	       got, n);
}

int main(void)
{
	static const uint64_t u[] = { 0, 1, 9, 10, 11, 99, 100, 101, 999, 1000, 1234567890,
				      UINT32_MAX, (uint64_t)UINT32_MAX + 1, 1764000000000,
				      999999999999999999u, 1000000000000000000u,
				      9999999999999999999u, 10000000000000000000u, UINT64_MAX - 1,
				      UINT64_MAX };
	static const int64_t s[] = { 0, 1, -1, 9, -9, 10, -10, 1764000000000, -1764000000000,
				     INT64_MAX, INT64_MIN + 1, INT64_MIN };
	static const char *strs[] = { "", "a", "r18f2a3b4c5d6e", "0123456789abcdef" };
	char got[FMT_INT_MAX + 8], want[FMT_INT_MAX + 8];

	for (size_t i = 0; i < TAP_ARRAY_LEN(u); i++) {
		snprintf(want, sizeof want, "%" PRIu64, u[i]);
		memset(got, 'x', sizeof got);
		same("fmt_u64", got, fmt_u64(got, u[i]), want);
	}
	for (size_t i = 0; i < TAP_ARRAY_LEN(s); i++) {
		snprintf(want, sizeof want, "%" PRId64, s[i]);
		memset(got, 'x', sizeof got);
		same("fmt_i64", got, fmt_i64(got, s[i]), want);
	}
	/* every cut a snprintf "%s" would make, from nothing to room to spare */
	for (size_t i = 0; i < TAP_ARRAY_LEN(strs); i++) {
		for (size_t cap = 0; cap <= strlen(strs[i]) + 2; cap++) {
			size_t n;

			memset(got, 'x', sizeof got);
			memset(want, 'x', sizeof want);
			n = fmt_str(got, cap, strs[i]);
			snprintf(want, cap, "%s", strs[i]);
			tap_ok(!memcmp(got, want, sizeof got) && n == (cap ? strlen(want) : 0),
			       "fmt_str(cap %zu, \"%s\") writes what snprintf does", cap, strs[i]);
		}
	}
	return tap_done();
}
