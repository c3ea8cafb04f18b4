/* fmt.c: see fmt.h. */
#include <string.h>

#include "fmt.h"

/* two digits at a time, from the last, into a place measured first (the timestamps and
 * nanosecond clocks written per publish have 13 to 19 digits) */
size_t fmt_u64(char *out, uint64_t v)
{
	static const char pairs[] = "00010203040506070809101112131415161718192021222324"
				    "25262728293031323334353637383940414243444546474849"
				    "50515253545556575859606162636465666768697071727374"
				    "75767778798081828384858687888990919293949596979899";
	size_t n = 1;
	char *p;

	for (uint64_t t = 10; n < 20 && v >= t; t *= 10)
		n++;
	p = out + n;
	*p = '\0';
	while (v >= 100) {
		unsigned k = (unsigned)(v % 100) * 2;
		v /= 100;
		*--p = pairs[k + 1];
		*--p = pairs[k];
	}
	if (v >= 10) {
		*--p = pairs[v * 2 + 1];
		*--p = pairs[v * 2];
	} else {
		*--p = (char)('0' + v);
	}
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
