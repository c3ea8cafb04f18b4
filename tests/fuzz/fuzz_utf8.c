/* fuzz_utf8.c: libFuzzer target for lib/utf8.c.
 *
 * utf8_valid is compared with a decoder written here from RFC 3629's definition (decode
 * each sequence to a code point, then refuse overlongs, surrogates and anything past
 * U+10FFFF) rather than from its byte-range table, so the two can disagree. utf8_printable
 * must stay inside its buffer for every cap, NUL-terminate, and give printable ASCII
 * (valid UTF-8 by construction) that keeps every printable byte but '"'. */
#include <string.h>

#include "fuzz.h"
#include "utf8.h"

/* 1 when s[0..len) is well-formed UTF-8 by RFC 3629 section 3. */
static int ref_utf8_valid(const unsigned char *s, size_t len)
{
	static const uint32_t min_cp[5] = { 0, 0, 0x80, 0x800, 0x10000 };
	size_t i = 0;

	while (i < len) {
		unsigned c = s[i];
		size_t n;
		uint32_t cp;

		if (c < 0x80)
			n = 1, cp = c;
		else if ((c & 0xE0) == 0xC0)
			n = 2, cp = c & 0x1F;
		else if ((c & 0xF0) == 0xE0)
			n = 3, cp = c & 0x0F;
		else if ((c & 0xF8) == 0xF0)
			n = 4, cp = c & 0x07;
		else
			return 0; /* continuation byte or 5/6-byte lead (F8..FF) */
		if (len - i < n)
			return 0;
		for (size_t k = 1; k < n; k++) {
			if ((s[i + k] & 0xC0) != 0x80)
				return 0;
			cp = cp << 6 | (s[i + k] & 0x3F);
		}
		if (cp < min_cp[n] || (cp >= 0xD800 && cp <= 0xDFFF) || cp > 0x10FFFF)
			return 0;
		i += n;
	}
	return 1;
}

static void check_printable(const char *s, size_t len, size_t cap)
{
	char *out = malloc(cap), *r; /* exactly cap bytes: ASan sees a write past them */
	size_t n;

	if (!out)
		abort();
	if (cap == 0) { /* no room even for the NUL: nothing may be written */
		FUZZ_CHECK(utf8_printable(out, 0, s, len) == out);
		free(out);
		return;
	}
	n = len < cap - 1 ? len : cap - 1;
	r = utf8_printable(out, cap, s, len);
	FUZZ_CHECK(r == out);
	FUZZ_CHECK(out[n] == '\0');
	FUZZ_CHECK(strlen(out) == n);
	for (size_t i = 0; i < n; i++) {
		unsigned char c = (unsigned char)s[i];
		int keep = c >= 0x20 && c < 0x7f && c != '"';
		FUZZ_CHECK(out[i] == (keep ? (char)c : '?'));
	}
	FUZZ_CHECK(utf8_valid(out, n) && ref_utf8_valid((const unsigned char *)out, n));
	free(out);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_dup(data, size, 0);
	int ref = ref_utf8_valid(data, size);

	FUZZ_CHECK(utf8_valid(s, size) == ref);
	/* Every prefix that ends on a sequence boundary of valid text is valid too; a cut
	 * inside a sequence is not. Checked on one prefix, chosen by the first byte. */
	if (size) {
		size_t cut = data[0] % (size + 1);
		FUZZ_CHECK(utf8_valid(s, cut) == ref_utf8_valid(data, cut));
	}

	/* The caps chatd uses (21 for close reasons, 81 for names), the edges, and the input's
	 * own length either side. */
	static const size_t caps[] = { 0, 1, 2, 21, 81 };
	for (size_t k = 0; k < sizeof caps / sizeof caps[0]; k++)
		check_printable(s, size, caps[k]);
	check_printable(s, size, size);
	check_printable(s, size, size + 1);
	check_printable(s, size, size + 2);
	free(s);
	return 0;
}
