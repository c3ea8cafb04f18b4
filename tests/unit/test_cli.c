/* test_cli.c: the number parsers and environment fallback the tools' options rely on. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "tap.h"

static void test_parse_size(void)
{
	static const struct {
		const char *in;
		int ok;
		unsigned long long want;
	} cases[] = {
		{ "65536", 1, 65536 },
		{ "0", 1, 0 },
		{ "1", 1, 1 },
		{ "64K", 1, 64ULL << 10 },
		{ "64k", 1, 64ULL << 10 },
		{ "64KB", 1, 64ULL << 10 },
		{ "1M", 1, 1ULL << 20 },
		{ "1m", 1, 1ULL << 20 },
		{ "1MB", 1, 1ULL << 20 },
		{ "1Mb", 1, 1ULL << 20 },
		{ "2G", 1, 2ULL << 30 },
		{ "2gb", 1, 2ULL << 30 },
		{ "007K", 1, 7ULL << 10 },
		{ "1099511627776", 1, 1ULL << 40 }, /* the 1 TiB ceiling itself */
		{ "1024G", 1, 1ULL << 40 },
		{ "1048576M", 1, 1ULL << 40 },

		{ "", 0, 0 },
		{ "garbage", 0, 0 },
		{ "K", 0, 0 },
		{ "-1", 0, 0 },
		{ "-64K", 0, 0 },
		{ "+1", 0, 0 },
		{ " 1", 0, 0 },
		{ "1 ", 0, 0 },
		{ "1 K", 0, 0 },
		{ "1.5M", 0, 0 },
		{ "0x10", 0, 0 },
		{ "1B", 0, 0 },
		{ "1KK", 0, 0 },
		{ "1KBB", 0, 0 },
		{ "1T", 0, 0 },
		{ "64Kx", 0, 0 },
		{ "1099511627777", 0, 0 },
		{ "1025G", 0, 0 },
		{ "1048577M", 0, 0 },
		{ "18446744073709551615", 0, 0 },    /* ULLONG_MAX */
		{ "99999999999999999999999", 0, 0 }, /* ERANGE */
		{ "18446744073709551615G", 0, 0 },   /* would wrap when multiplied */
		{ "17179869184G", 0, 0 },            /* 2^34 G wraps to 0 in 64 bits */
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		size_t out = 12345;
		int rc = cli_parse_size(cases[i].in, &out);

		if (cases[i].ok) {
			if (tap_ok(rc == 0, "cli_parse_size accepts \"%s\"", cases[i].in))
				tap_long_eq((long long)out, (long long)cases[i].want, "cli_parse_size \"%s\" value",
					    cases[i].in);
		} else {
			tap_ok(rc == -1, "cli_parse_size refuses \"%s\"", cases[i].in);
		}
	}
	size_t out = 0;
	tap_ok(cli_parse_size(NULL, &out) == -1, "cli_parse_size refuses NULL");
}

static void test_parse_count(void)
{
	static const struct {
		const char *in;
		long max;
		int ok;
		long want;
	} cases[] = {
		{ "0", 10, 1, 0 },
		{ "10", 10, 1, 10 },
		{ "007", 10, 1, 7 },
		{ "1000000", 1000000, 1, 1000000 },
		{ "9223372036854775807", LONG_MAX, 1, LONG_MAX },

		{ "11", 10, 0, 0 },
		{ "1", 0, 0, 0 },
		{ "-1", 10, 0, 0 },
		{ "+1", 10, 0, 0 },
		{ " 1", 10, 0, 0 },
		{ "1 ", 10, 0, 0 },
		{ "", 10, 0, 0 },
		{ "abc", 10, 0, 0 },
		{ "1x", 10, 0, 0 },
		{ "1.0", 10, 0, 0 },
		{ "1e3", 10000, 0, 0 },
		{ "0x10", 100, 0, 0 },
		{ "9223372036854775808", LONG_MAX, 0, 0 },
		{ "99999999999999999999", LONG_MAX, 0, 0 },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		long out = 12345;
		int rc = cli_parse_count(cases[i].in, cases[i].max, &out);

		if (cases[i].ok) {
			if (tap_ok(rc == 0, "cli_parse_count accepts \"%s\" (max %ld)", cases[i].in, cases[i].max))
				tap_long_eq(out, cases[i].want, "cli_parse_count \"%s\" value", cases[i].in);
		} else {
			tap_ok(rc == -1, "cli_parse_count refuses \"%s\" (max %ld)", cases[i].in, cases[i].max);
		}
	}
	long out = 0;
	tap_ok(cli_parse_count(NULL, 10, &out) == -1, "cli_parse_count refuses NULL");
}

static void test_env(void)
{
	const char *name = "CHATD_UNIT_TEST_CLI_ENV";

	setenv(name, "http://10.0.0.1:4000", 1);
	tap_str_eq(cli_env(name, "fallback"), "http://10.0.0.1:4000", "cli_env returns a set variable");
	setenv(name, "", 1);
	tap_str_eq(cli_env(name, "fallback"), "fallback", "cli_env treats an empty variable as unset");
	unsetenv(name);
	tap_str_eq(cli_env(name, "fallback"), "fallback", "cli_env returns the fallback when unset");
	tap_ok(cli_env(name, NULL) == NULL, "cli_env passes a NULL fallback through");
	setenv(name, " ", 1);
	tap_str_eq(cli_env(name, "fallback"), " ", "cli_env keeps a value of one space");
	unsetenv(name);
}

int main(void)
{
	test_parse_size();
	test_parse_count();
	test_env();
	tap_ok(strcmp(CHAT_URL_DEFAULT, "http://127.0.0.1:3000") == 0,
	       "the default server URL is http://127.0.0.1:3000");
	return tap_done();
}
