/* tap.h: the smallest TAP producer the unit tests need.
 *
 * Every assertion prints one line, "ok N - name" or "not ok N - name", followed on failure
 * by "# got/want" diagnostics (stdout, so they stay in order with the result lines and
 * scripts/run-tests shows them under the failure). tap_done() prints the plan "1..N" and
 * returns the exit status: non-zero when anything failed.
 *
 * Everything is static inline so each test file includes it without unused warnings. */
#ifndef CHAT_TAP_H
#define CHAT_TAP_H

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

static int tap_count, tap_fails;

#define TAP_FMT(a, b) __attribute__((format(printf, a, b)))
#define TAP_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static inline int tap_vok(int cond, const char *fmt, va_list ap) TAP_FMT(2, 0);
static inline int tap_vok(int cond, const char *fmt, va_list ap)
{
	printf("%sok %d - ", cond ? "" : "not ", ++tap_count);
	vprintf(fmt, ap);
	putchar('\n');
	fflush(stdout);
	if (!cond)
		tap_fails++;
	return cond;
}

/* One assertion. Returns cond so callers can skip dependent checks. */
static inline int tap_ok(int cond, const char *fmt, ...) TAP_FMT(2, 3);
static inline int tap_ok(int cond, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	tap_vok(cond, fmt, ap);
	va_end(ap);
	return cond;
}

static inline void tap_diag(const char *fmt, ...) TAP_FMT(1, 2);
static inline void tap_diag(const char *fmt, ...)
{
	va_list ap;

	fputs("# ", stdout);
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

/* "# label: "bytes"" with anything unprintable shown as \xNN, so a diagnostic never breaks
 * the one-line-per-result format. NULL prints as (null). */
static inline void tap_diag_mem(const char *label, const char *s, size_t len)
{
	printf("# %s: ", label);
	if (!s) {
		puts("(null)");
		return;
	}
	putchar('"');
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '\\' || c == '"')
			printf("\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			printf("\\x%02x", c);
		else
			putchar(c);
	}
	puts("\"");
}

static inline void tap_diag_str(const char *label, const char *s)
{
	tap_diag_mem(label, s, s ? strlen(s) : 0);
}

static inline int tap_mem_eq(const char *got, size_t got_len, const char *want, size_t want_len,
			     const char *fmt, ...) TAP_FMT(5, 6);
static inline int tap_mem_eq(const char *got, size_t got_len, const char *want, size_t want_len,
			     const char *fmt, ...)
{
	int ok = got && want && got_len == want_len && !memcmp(got, want, got_len);
	va_list ap;

	va_start(ap, fmt);
	tap_vok(ok, fmt, ap);
	va_end(ap);
	if (!ok) {
		tap_diag_mem("got ", got, got_len);
		tap_diag_mem("want", want, want_len);
	}
	return ok;
}

static inline int tap_str_eq(const char *got, const char *want, const char *fmt, ...) TAP_FMT(3, 4);
static inline int tap_str_eq(const char *got, const char *want, const char *fmt, ...)
{
	int ok = got && want && !strcmp(got, want);
	va_list ap;

	va_start(ap, fmt);
	tap_vok(ok, fmt, ap);
	va_end(ap);
	if (!ok) {
		tap_diag_str("got ", got);
		tap_diag_str("want", want);
	}
	return ok;
}

/* got contains want as a substring. */
static inline int tap_str_has(const char *got, const char *want, const char *fmt, ...) TAP_FMT(3, 4);
static inline int tap_str_has(const char *got, const char *want, const char *fmt, ...)
{
	int ok = got && want && strstr(got, want);
	va_list ap;

	va_start(ap, fmt);
	tap_vok(ok, fmt, ap);
	va_end(ap);
	if (!ok) {
		tap_diag_str("got          ", got);
		tap_diag_str("want substring", want);
	}
	return ok;
}

static inline int tap_long_eq(long long got, long long want, const char *fmt, ...) TAP_FMT(3, 4);
static inline int tap_long_eq(long long got, long long want, const char *fmt, ...)
{
	int ok = got == want;
	va_list ap;

	va_start(ap, fmt);
	tap_vok(ok, fmt, ap);
	va_end(ap);
	if (!ok)
		tap_diag("got %lld, want %lld", got, want);
	return ok;
}

/* Print the plan; the value is main's exit status. */
static inline int tap_done(void)
{
	printf("1..%d\n", tap_count);
	if (tap_fails)
		tap_diag("%d of %d assertions failed", tap_fails, tap_count);
	fflush(stdout);
	return tap_fails ? 1 : 0;
}

#endif
