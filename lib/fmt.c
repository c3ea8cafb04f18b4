/* fmt.c: see fmt.h. */
#include <string.h>

#include "fmt.h"

size_t fmt_u64(char *out, uint64_t v)
{
	char tmp[FMT_INT_MAX];
	size_t n = 0;

	do {
		tmp[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	for (size_t i = 0; i < n; i++)
		out[i] = tmp[n - 1 - i];
	out[n] = '\0';
	return n;
}

size_t fmt_i64(char *out, int64_t v)
{
	if (v >= 0)
		return fmt_u64(out, (uint64_t)v);
	out[0] = '-';
	/* -(v + 1) + 1: no overflow for INT64_MIN */
	return 1 + fmt_u64(out + 1, (uint64_t)-(v + 1) + 1);
}

size_t fmt_str(char *out, size_t cap, const char *s)
{
	size_t n;

	if (!cap)
		return 0;
	n = strnlen(s, cap - 1);
	memcpy(out, s, n);
	out[n] = '\0';
	return n;
}
