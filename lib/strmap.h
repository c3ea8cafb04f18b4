/* strmap.h: a string-keyed hash map (open addressing, linear probing, backward-shift
 * deletion). Keys are copied; values are the caller's. Used for channel tables. */
#ifndef CHAT_STRMAP_H
#define CHAT_STRMAP_H

#include <stddef.h>

struct strmap_slot {
	char *key;
	void *val;
	unsigned hash;
};

struct strmap {
	struct strmap_slot *slots;
	size_t cap; /* power of two, or 0 */
	size_t len;
};

void *strmap_get(const struct strmap *m, const char *key);
/* Insert or replace. Returns 0, or -1 when out of memory. */
int strmap_put(struct strmap *m, const char *key, void *val);
/* Remove key; returns its value or NULL. */
void *strmap_del(struct strmap *m, const char *key);
void strmap_free(struct strmap *m);

/* Iterate: for (size_t i = 0; (i = strmap_next(m, i, &key, &val)); ) ... */
size_t strmap_next(const struct strmap *m, size_t pos, const char **key, void **val);

#endif
