/* chan.c: channel name rules.
 *
 * Names travel in URLs (/ws/NAME, /pub/NAME, ?chan=NAME), in Redis channel keys and in
 * JSON, so the alphabet is chosen to need no escaping in any of them. */
#include "chan.h"

static int chan_char_ok(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '_' || c == '-' || c == '.' || c == ':';
}

const char *chan_check(const char *name, size_t len)
{
	if (!name || len == 0)
		return "channel name is empty";
	if (len > CHAN_MAX)
		return "channel name is longer than 64 characters";
	for (size_t i = 0; i < len; i++)
		if (!chan_char_ok((unsigned char)name[i]))
			return "channel name may only use A-Z a-z 0-9 _ - . :";
	return NULL;
}
