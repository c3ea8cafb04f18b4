/* test_chan.c: chan_check, the channel name rule every path into chatd enforces. */
#include <string.h>

#include "chan.h"
#include "tap.h"

struct chan_case {
	const char *what;
	const char *name;
	size_t len; /* AS_IS: strlen(name) */
	int valid;
	const char *reason; /* substring of the reason when invalid */
};

#define AS_IS ((size_t)-1) /* use strlen(name) */

static char c64[CHAN_MAX + 1], c65[CHAN_MAX + 2];

int main(void)
{
	memset(c64, 'a', CHAN_MAX);
	memset(c65, 'b', CHAN_MAX + 1);

	const struct chan_case cases[] = {
		{ "one letter", "a", AS_IS, 1, NULL },
		{ "one digit", "7", AS_IS, 1, NULL },
		{ "64 characters (CHAN_MAX)", c64, AS_IS, 1, NULL },
		{ "every letter and digit",
		  "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789", AS_IS, 1, NULL },
		{ "underscore", "_", AS_IS, 1, NULL },
		{ "hyphen", "-", AS_IS, 1, NULL },
		{ "dot", ".", AS_IS, 1, NULL },
		{ "colon", ":", AS_IS, 1, NULL },
		{ "all punctuation mixed", "a_b-c.d:e", AS_IS, 1, NULL },
		{ "the default channel", CHAN_DEFAULT, AS_IS, 1, NULL },
		{ "len shorter than the string counts only len bytes", "ok bad", 2, 1, NULL },

		{ "empty", "", 0, 0, "empty" },
		{ "NULL name", NULL, 0, 0, "empty" },
		{ "65 characters", c65, AS_IS, 0, "longer than 64" },
		{ "space", "a b", AS_IS, 0, "may only use" },
		{ "slash", "a/b", AS_IS, 0, "may only use" },
		{ "double quote", "a\"b", AS_IS, 0, "may only use" },
		{ "single quote", "a'b", AS_IS, 0, "may only use" },
		{ "backslash", "a\\b", AS_IS, 0, "may only use" },
		{ "question mark", "a?b", AS_IS, 0, "may only use" },
		{ "ampersand", "a&b", AS_IS, 0, "may only use" },
		{ "percent", "a%b", AS_IS, 0, "may only use" },
		{ "hash", "a#b", AS_IS, 0, "may only use" },
		{ "plus", "a+b", AS_IS, 0, "may only use" },
		{ "asterisk (Redis glob)", "a*", AS_IS, 0, "may only use" },
		{ "non-ASCII UTF-8 (e acute)", "caf\xc3\xa9", AS_IS, 0, "may only use" },
		{ "non-ASCII UTF-8 (emoji)", "\xf0\x9f\x98\x80", AS_IS, 0, "may only use" },
		{ "NUL inside the length", "ab\0c", 4, 0, "may only use" },
		{ "tab", "a\tb", AS_IS, 0, "may only use" },
		{ "newline", "a\nb", AS_IS, 0, "may only use" },
		{ "carriage return", "a\rb", AS_IS, 0, "may only use" },
		{ "control char 0x01", "a\x01", AS_IS, 0, "may only use" },
		{ "escape 0x1b", "\x1b[31m", AS_IS, 0, "may only use" },
		{ "DEL 0x7f", "a\x7f", AS_IS, 0, "may only use" },
		{ "byte 0xff", "a\xff", AS_IS, 0, "may only use" },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		const struct chan_case *c = &cases[i];
		size_t len = c->len == AS_IS ? strlen(c->name) : c->len;
		const char *why = chan_check(c->name, len);

		if (c->valid) {
			if (!tap_ok(why == NULL, "chan_check accepts %s", c->what))
				tap_diag_str("reason", why);
		} else {
			if (tap_ok(why != NULL, "chan_check refuses %s", c->what))
				tap_str_has(why, c->reason, "chan_check reason for %s names the rule",
					    c->what);
		}
	}

	/* The reason for a bad character is the rule users read in the docs. */
	tap_str_has(chan_check("a b", 3), "A-Z a-z 0-9 _ - . :",
		    "reason for a bad character spells out the allowed alphabet");
	return tap_done();
}
