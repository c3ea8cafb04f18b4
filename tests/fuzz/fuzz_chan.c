/* fuzz_chan.c: libFuzzer target for lib/chan.c.
 *
 * chan_check must accept exactly 1 to CHAN_MAX bytes of A-Z a-z 0-9 _ - . : (checked
 * against a table written here), answer with one of its three reasons otherwise, and what
 * it accepts must need no escaping where names travel: json_quote leaves it as it is, and
 * it holds none of the bytes a URL path or query gives a meaning to. */
#include <string.h>

#include "chan.h"
#include "fuzz.h"
#include "json.h"

static const char *const reasons[] = {
	"channel name is empty",
	"channel name is longer than 64 characters",
	"channel name may only use A-Z a-z 0-9 _ - . :",
};

static int ref_chan_ok(const uint8_t *s, size_t len)
{
	static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
				      "0123456789_-.:";

	if (len < 1 || len > CHAN_MAX)
		return 0;
	for (size_t i = 0; i < len; i++)
		if (!s[i] || !memchr(allowed, s[i], sizeof allowed - 1))
			return 0;
	return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s = fuzz_dup(data, size, 0);
	const char *why = chan_check(s, size);
	int ok = ref_chan_ok(data, size);

	FUZZ_CHECK((why == NULL) == ok);
	if (why) {
		int known = 0;
		for (size_t k = 0; k < sizeof reasons / sizeof reasons[0]; k++)
			known |= !strcmp(why, reasons[k]);
		FUZZ_CHECK(known);
		FUZZ_CHECK((strcmp(why, reasons[0]) == 0) == (size == 0));
		FUZZ_CHECK((strcmp(why, reasons[1]) == 0) == (size > CHAN_MAX));
	} else {
		char q[6 * CHAN_MAX + 3];
		FUZZ_CHECK(json_quote(q, s, size) == size + 2 && !memcmp(q + 1, s, size));
		for (size_t i = 0; i < size; i++)
			FUZZ_CHECK(!strchr("/?#&=%+ \"\\", s[i]));
	}
	/* Every prefix of a valid name but the empty one is valid too. */
	if (ok && size > 1)
		FUZZ_CHECK(!chan_check(s, size - 1 - data[0] % (size - 1)));
	FUZZ_CHECK(chan_check(NULL, 0) && chan_check(s, 0));
	free(s);
	return 0;
}
