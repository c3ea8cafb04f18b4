/* strmap.c: see strmap.h. Load factor kept under 3/4; lookups hash once (FNV-1a). */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

static unsigned strmap_hash(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

static size_t strmap_find(const struct strmap *m, const char *key, unsigned h)
{
	size_t mask = m->cap - 1, i = h & mask;

	while (m->slots[i].key) {
		if (m->slots[i].hash == h && !strcmp(m->slots[i].key, key))
			return i;
		i = (i + 1) & mask;
	}
	return i;
}

void *strmap_get(const struct strmap *m, const char *key)
{
	size_t i;

	if (!m->len)
		return NULL;
	i = strmap_find(m, key, strmap_hash(key));
	return m->slots[i].key ? m->slots[i].val : NULL;
}

static int strmap_grow(struct strmap *m)
{
	size_t ncap = m->cap ? m->cap * 2 : 16;
	struct strmap_slot *old = m->slots, *ns = calloc(ncap, sizeof *ns);
	size_t ocap = m->cap;

	if (!ns)
		return -1;
	m->slots = ns;
	m->cap = ncap;
	for (size_t i = 0; i < ocap; i++)
		if (old[i].key)
			ns[strmap_find(m, old[i].key, old[i].hash)] = old[i];
	free(old);
	return 0;
}

int strmap_put(struct strmap *m, const char *key, void *val)
{
	unsigned h = strmap_hash(key);
	size_t i;

	if ((m->len + 1) * 4 > m->cap * 3 && strmap_grow(m))
		return -1;
	i = strmap_find(m, key, h);
	if (!m->slots[i].key) {
		if (!(m->slots[i].key = strdup(key)))
			return -1;
		m->slots[i].hash = h;
		m->len++;
	}
	m->slots[i].val = val;
	return 0;
}

void *strmap_del(struct strmap *m, const char *key)
{
	size_t mask, i, j;
	void *val;

	if (!m->len)
		return NULL;
	mask = m->cap - 1;
	i = strmap_find(m, key, strmap_hash(key));
	if (!m->slots[i].key)
		return NULL;
	val = m->slots[i].val;
	free(m->slots[i].key);
	m->slots[i].key = NULL;
	m->len--;
	/* Backward-shift: move later members of the probe run into the hole. */
	for (j = (i + 1) & mask; m->slots[j].key; j = (j + 1) & mask) {
		size_t home = m->slots[j].hash & mask;
		if (((j - home) & mask) >= ((j - i) & mask)) {
			m->slots[i] = m->slots[j];
			m->slots[j].key = NULL;
			i = j;
		}
	}
	return val;
}

size_t strmap_next(const struct strmap *m, size_t pos, const char **key, void **val)
{
	for (size_t i = pos; i < m->cap; i++)
		if (m->slots[i].key) {
			*key = m->slots[i].key;
			*val = m->slots[i].val;
			return i + 1;
		}
	return 0;
}

void strmap_free(struct strmap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->slots[i].key);
	free(m->slots);
	memset(m, 0, sizeof *m);
}
