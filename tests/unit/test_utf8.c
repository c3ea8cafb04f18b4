/* test_utf8.c: utf8_valid against RFC 3629 and Markus Kuhn's UTF-8 decoder stress test
 * (boundary conditions, malformed sequences, overlongs, surrogates). */
#include <string.h>

#include "tap.h"
#include "utf8.h"

struct utf8_case {
	const char *what;
	const char *s;
	size_t len; /* AS_IS: strlen(s) */
	int valid;
};

#define AS_IS ((size_t)-1)

static const struct utf8_case cases[] = {
	/* Well-formed. */
	{ "empty string", "", 0, 1 },
	{ "ASCII text", "hello, world", AS_IS, 1 },
	{ "NUL byte inside the length (U+0000)", "a\0b", 3, 1 },
	{ "2-byte sequence (e acute)", "caf\xc3\xa9", AS_IS, 1 },
	{ "3-byte sequence (euro sign)", "\xe2\x82\xac", AS_IS, 1 },
	{ "4-byte sequence (emoji U+1F600)", "\xf0\x9f\x98\x80", AS_IS, 1 },
	{ "Kuhn: Greek kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", AS_IS, 1 },
	{ "mixed widths", "a\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80z", AS_IS, 1 },

	/* Kuhn 2.1: first possible sequence of each length. */
	{ "Kuhn 2.1.2: U+0080 (C2 80)", "\xc2\x80", AS_IS, 1 },
	{ "Kuhn 2.1.3: U+0800 (E0 A0 80)", "\xe0\xa0\x80", AS_IS, 1 },
	{ "Kuhn 2.1.4: U+10000 (F0 90 80 80)", "\xf0\x90\x80\x80", AS_IS, 1 },
	/* Kuhn 2.2: last possible sequence of each length. */
	{ "Kuhn 2.2.1: U+007F (7F)", "\x7f", AS_IS, 1 },
	{ "Kuhn 2.2.2: U+07FF (DF BF)", "\xdf\xbf", AS_IS, 1 },
	{ "Kuhn 2.2.3: U+FFFF (EF BF BF)", "\xef\xbf\xbf", AS_IS, 1 },
	{ "last code point U+10FFFF (F4 8F BF BF)", "\xf4\x8f\xbf\xbf", AS_IS, 1 },
	/* Kuhn 2.3: other boundaries. */
	{ "Kuhn 2.3.1: U+D7FF (ED 9F BF)", "\xed\x9f\xbf", AS_IS, 1 },
	{ "Kuhn 2.3.2: U+E000 (EE 80 80)", "\xee\x80\x80", AS_IS, 1 },
	{ "Kuhn 2.3.3: U+FFFD (EF BF BD)", "\xef\xbf\xbd", AS_IS, 1 },
	{ "Kuhn 2.3.5: U+110000 (F4 90 80 80) is out of range", "\xf4\x90\x80\x80", AS_IS, 0 },
	{ "noncharacter U+FFFE is well-formed (EF BF BE)", "\xef\xbf\xbe", AS_IS, 1 },

	/* Kuhn 3.1: unexpected continuation bytes. */
	{ "Kuhn 3.1.1: lone first continuation byte 80", "\x80", AS_IS, 0 },
	{ "Kuhn 3.1.2: lone last continuation byte BF", "\xbf", AS_IS, 0 },
	{ "Kuhn 3.1.3: 2 continuation bytes", "\x80\xbf", AS_IS, 0 },
	{ "Kuhn 3.1.4: 3 continuation bytes", "\x80\xbf\x80", AS_IS, 0 },
	{ "stray continuation after ASCII", "abc\x80", AS_IS, 0 },
	{ "stray continuation after a complete 2-byte char", "\xc3\xa9\xa9", AS_IS, 0 },
	/* Kuhn 3.2: lonely start characters. */
	{ "Kuhn 3.2.1: 2-byte start followed by space", "\xc3 ", AS_IS, 0 },
	{ "Kuhn 3.2.2: 3-byte start followed by space", "\xe2 ", AS_IS, 0 },
	{ "Kuhn 3.2.3: 4-byte start followed by space", "\xf0 ", AS_IS, 0 },
	{ "Kuhn 3.2.4: 5-byte start F8 followed by space", "\xf8 ", AS_IS, 0 },
	{ "Kuhn 3.2.5: 6-byte start FC followed by space", "\xfc ", AS_IS, 0 },
	/* Kuhn 3.3: sequences with the last continuation byte missing. */
	{ "Kuhn 3.3.1: 2-byte U+0000 missing last byte (C0)", "\xc0", AS_IS, 0 },
	{ "Kuhn 3.3.2: 3-byte missing last byte (E0 80)", "\xe0\x80", AS_IS, 0 },
	{ "Kuhn 3.3.3: 4-byte missing last byte (F0 80 80)", "\xf0\x80\x80", AS_IS, 0 },
	{ "Kuhn 3.3.6: 2-byte U+07FF missing last byte (DF)", "\xdf", AS_IS, 0 },
	{ "Kuhn 3.3.7: 3-byte U+FFFF missing last byte (EF BF)", "\xef\xbf", AS_IS, 0 },
	{ "Kuhn 3.3.8: 4-byte missing last byte (F4 8F BF)", "\xf4\x8f\xbf", AS_IS, 0 },
	{ "Kuhn 3.4: all truncated sequences concatenated",
	  "\xc0\xe0\x80\xf0\x80\x80\xdf\xef\xbf\xf4\x8f\xbf", AS_IS, 0 },
	{ "truncated 2-byte at end of otherwise valid text", "ok \xc3", AS_IS, 0 },
	{ "truncated 3-byte at end of otherwise valid text", "ok \xe2\x82", AS_IS, 0 },
	{ "truncated 4-byte at end of otherwise valid text", "ok \xf0\x9f\x98", AS_IS, 0 },
	{ "3-byte with ASCII in place of the last byte", "\xe2\x82\x41", AS_IS, 0 },
	{ "4-byte with ASCII in place of the third byte", "\xf0\x9f\x41\x80", AS_IS, 0 },
	{ "len cuts a 2-byte sequence in half", "\xc3\xa9", 1, 0 },
	{ "len cuts a 4-byte sequence after 3 bytes", "\xf0\x9f\x98\x80", 3, 0 },
	{ "bytes after len are not looked at", "a\xff", 1, 1 },
	/* Kuhn 3.5: impossible bytes. */
	{ "Kuhn 3.5.1: FE", "\xfe", AS_IS, 0 },
	{ "Kuhn 3.5.2: FF", "\xff", AS_IS, 0 },
	{ "Kuhn 3.5.3: FE FE FF FF", "\xfe\xfe\xff\xff", AS_IS, 0 },
	{ "F5 lead byte (beyond U+10FFFF)", "\xf5\x80\x80\x80", AS_IS, 0 },
	{ "F7 lead byte", "\xf7\xbf\xbf\xbf", AS_IS, 0 },
	{ "F8 5-byte form", "\xf8\x88\x80\x80\x80", AS_IS, 0 },
	{ "FC 6-byte form", "\xfc\x84\x80\x80\x80\x80", AS_IS, 0 },

	/* Kuhn 4: overlong forms. */
	{ "Kuhn 4.1.1: overlong slash C0 AF", "\xc0\xaf", AS_IS, 0 },
	{ "Kuhn 4.1.2: overlong slash E0 80 AF", "\xe0\x80\xaf", AS_IS, 0 },
	{ "Kuhn 4.1.3: overlong slash F0 80 80 AF", "\xf0\x80\x80\xaf", AS_IS, 0 },
	{ "Kuhn 4.2.1: maximum overlong C1 BF", "\xc1\xbf", AS_IS, 0 },
	{ "Kuhn 4.2.2: maximum overlong E0 9F BF", "\xe0\x9f\xbf", AS_IS, 0 },
	{ "Kuhn 4.2.3: maximum overlong F0 8F BF BF", "\xf0\x8f\xbf\xbf", AS_IS, 0 },
	{ "Kuhn 4.3.1: overlong NUL C0 80", "\xc0\x80", AS_IS, 0 },
	{ "Kuhn 4.3.2: overlong NUL E0 80 80", "\xe0\x80\x80", AS_IS, 0 },
	{ "Kuhn 4.3.3: overlong NUL F0 80 80 80", "\xf0\x80\x80\x80", AS_IS, 0 },

	/* Kuhn 5: UTF-16 surrogates. */
	{ "Kuhn 5.1.1: high surrogate U+D800 (ED A0 80)", "\xed\xa0\x80", AS_IS, 0 },
	{ "Kuhn 5.1.4: U+DB80 (ED AE 80)", "\xed\xae\x80", AS_IS, 0 },
	{ "Kuhn 5.1.5: low surrogate U+DC00 (ED B0 80)", "\xed\xb0\x80", AS_IS, 0 },
	{ "Kuhn 5.1.7: U+DFFF (ED BF BF)", "\xed\xbf\xbf", AS_IS, 0 },
	{ "Kuhn 5.2.1: surrogate pair U+D800 U+DC00", "\xed\xa0\x80\xed\xb0\x80", AS_IS, 0 },
	{ "invalid byte after valid text is still found", "valid text then \xed\xa0\x80", AS_IS, 0 },
};

/* utf8_printable: printable ASCII but '"' kept, everything else '?', cut to cap - 1. */
static void test_printable(void)
{
	char out[8], zero[1] = { 'x' };

	tap_str_eq(utf8_printable(out, sizeof out, "a\"b\tc", 5), "a?b?c", "utf8_printable masks '\"' and controls");
	tap_str_eq(utf8_printable(out, sizeof out, "caf\xc3\xa9", 5), "caf??", "utf8_printable masks each non-ASCII byte");
	tap_str_eq(utf8_printable(out, sizeof out, "0123456789", 10), "0123456", "utf8_printable cuts to cap - 1 bytes");
	tap_str_eq(utf8_printable(out, 1, "abc", 3), "", "utf8_printable with cap 1 gives \"\"");
	/* fuzz_utf8: cap 0 used to write len + 1 bytes (cap - 1 wrapped to SIZE_MAX). */
	tap_ok(utf8_printable(zero, 0, "abc", 3) == zero && zero[0] == 'x',
	       "utf8_printable with cap 0 writes nothing");
}

int main(void)
{
	test_printable();
	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		const struct utf8_case *c = &cases[i];
		size_t len = c->len == AS_IS ? strlen(c->s) : c->len;

		tap_ok(utf8_valid(c->s, len) == c->valid, "utf8_valid %s: %s", c->valid ? "accepts" : "refuses",
		       c->what);
	}

	/* Every single byte on its own: 00..7F valid, 80..FF invalid. */
	int single_ok = 1;
	for (int b = 0; b < 256; b++) {
		char c = (char)b;
		if (utf8_valid(&c, 1) != (b < 0x80)) {
			tap_diag("byte 0x%02x judged wrongly", b);
			single_ok = 0;
		}
	}
	tap_ok(single_ok, "utf8_valid accepts each ASCII byte alone and refuses each byte 80..FF alone");

	/* Every 2-byte lead with every second byte: valid exactly for C2..DF + 80..BF. */
	int two_ok = 1;
	for (int a = 0x80; a < 256; a++)
		for (int b = 0; b < 256; b++) {
			char s[2] = { (char)a, (char)b };
			int want = a >= 0xc2 && a <= 0xdf && b >= 0x80 && b <= 0xbf;
			if (utf8_valid(s, 2) != want) {
				if (two_ok)
					tap_diag("first wrong pair: %02x %02x", a, b);
				two_ok = 0;
			}
		}
	tap_ok(two_ok, "utf8_valid judges every 2-byte pair with a non-ASCII lead correctly");

	/* Every 3-byte sequence E0..EF xx yy against a decoder written from the definition. */
	int three_ok = 1;
	for (int a = 0xe0; a <= 0xef; a++)
		for (int b = 0x80; b <= 0xbf; b++)
			for (int c = 0x70; c <= 0xc0; c++) {
				char s[3] = { (char)a, (char)b, (char)c };
				unsigned cp = ((unsigned)(a & 0x0f) << 12) | ((unsigned)(b & 0x3f) << 6) |
					      (unsigned)(c & 0x3f);
				int want = c >= 0x80 && c <= 0xbf && cp >= 0x800 &&
					   !(cp >= 0xd800 && cp <= 0xdfff);
				if (utf8_valid(s, 3) != want) {
					if (three_ok)
						tap_diag("first wrong triple: %02x %02x %02x", a, b, c);
					three_ok = 0;
				}
			}
	tap_ok(three_ok, "utf8_valid judges 3-byte sequences like a reference decoder (overlong, surrogates)");

	/* Every 4-byte lead F0..F4 with every second byte, good tail. */
	int four_ok = 1;
	for (int a = 0xf0; a <= 0xf7; a++)
		for (int b = 0x80; b <= 0xbf; b++) {
			char s[4] = { (char)a, (char)b, '\x80', '\x80' };
			unsigned cp = ((unsigned)(a & 0x07) << 18) | ((unsigned)(b & 0x3f) << 12);
			int want = a <= 0xf4 && cp >= 0x10000 && cp <= 0x10ffff;
			if (utf8_valid(s, 4) != want) {
				if (four_ok)
					tap_diag("first wrong quad: %02x %02x 80 80", a, b);
				four_ok = 0;
			}
		}
	tap_ok(four_ok, "utf8_valid judges 4-byte leads like a reference decoder (overlong, > U+10FFFF)");

	return tap_done();
}
