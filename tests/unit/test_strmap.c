/* test_strmap.c: the channel table. Besides the API, this checks the two places an
 * open-addressing map goes wrong: rehashing on growth and backward-shift deletion (including
 * probe runs that wrap around the end of the table), with a randomised run against a
 * plain array as the reference. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "strmap.h"
#include "tap.h"

#define V(i) ((void *)(uintptr_t)((i) + 1)) /* never NULL */
#define NKEYS 10000

static void key_of(char *buf, size_t len, int i)
{
	snprintf(buf, len, "chan:%d", i);
}

static void test_basics(void)
{
	struct strmap m = { 0 };
	const char *k;
	void *v;
	int a = 1, b = 2, c = 3;
	char key[8] = "temp";

	tap_ok(strmap_get(&m, "x") == NULL, "get on an empty map is NULL");
	tap_ok(strmap_del(&m, "x") == NULL, "del on an empty map is NULL");
	tap_ok(strmap_next(&m, 0, &k, &v) == 0, "iterating an empty map visits nothing");

	tap_ok(strmap_put(&m, "a", &a) == 0 && strmap_put(&m, "b", &b) == 0, "put two keys");
	tap_ok(strmap_get(&m, "a") == &a && strmap_get(&m, "b") == &b, "get returns each value");
	tap_ok(strmap_get(&m, "c") == NULL, "get of a missing key is NULL");
	tap_ok(strmap_get(&m, "") == NULL, "get of the empty key is NULL while absent");
	tap_long_eq((long long)m.len, 2, "len counts two keys");

	tap_ok(strmap_put(&m, "a", &c) == 0 && strmap_get(&m, "a") == &c, "put on an existing key replaces");
	tap_long_eq((long long)m.len, 2, "replacing does not change len");

	tap_ok(strmap_put(&m, key, &a) == 0, "put a key from a buffer");
	strcpy(key, "XXXX");
	tap_ok(strmap_get(&m, "temp") == &a && strmap_get(&m, "XXXX") == NULL, "keys are copied on put");

	tap_ok(strmap_put(&m, "", &b) == 0 && strmap_get(&m, "") == &b, "the empty string is a key like any");

	tap_ok(strmap_del(&m, "a") == &c, "del returns the value");
	tap_ok(strmap_get(&m, "a") == NULL, "a deleted key is gone");
	tap_ok(strmap_del(&m, "a") == NULL, "del of a deleted key is NULL");
	tap_ok(strmap_get(&m, "b") == &b && strmap_get(&m, "temp") == &a, "others survive a del");
	tap_long_eq((long long)m.len, 3, "len after one del");

	tap_ok(strmap_put(&m, "a", NULL) == 0 && strmap_get(&m, "a") == NULL && m.len == 4,
	       "a NULL value is stored (get cannot tell it from absent; len can)");

	strmap_free(&m);
	tap_ok(m.slots == NULL && m.cap == 0 && m.len == 0, "free leaves an empty, reusable map");
	tap_ok(strmap_put(&m, "again", &a) == 0 && strmap_get(&m, "again") == &a, "a freed map can be reused");
	strmap_free(&m);
}

static void test_growth_and_delete(void)
{
	struct strmap m = { 0 };
	char key[32];
	int ok = 1, grew = 0;
	size_t last_cap = 0;

	for (int i = 0; i < NKEYS; i++) {
		key_of(key, sizeof key, i);
		if (strmap_put(&m, key, V(i)))
			ok = 0;
		if (m.cap != last_cap) {
			grew++;
			last_cap = m.cap;
		}
		if (m.len * 4 > m.cap * 3)
			ok = 0;
	}
	tap_ok(ok, "put %d keys, load factor stays under 3/4", NKEYS);
	tap_ok(grew >= 8, "the table grew through several resizes (%d, cap %zu)", grew, m.cap);
	tap_ok((m.cap & (m.cap - 1)) == 0, "cap is a power of two");
	tap_long_eq((long long)m.len, NKEYS, "len is %d", NKEYS);

	ok = 1;
	for (int i = 0; i < NKEYS; i++) {
		key_of(key, sizeof key, i);
		if (strmap_get(&m, key) != V(i)) {
			if (ok)
				tap_diag("first wrong key: %s", key);
			ok = 0;
		}
	}
	tap_ok(ok, "every one of %d keys is found after growth", NKEYS);

	ok = 1;
	for (int i = 0; i < NKEYS; i++) {
		key_of(key, sizeof key, i);
		if (strmap_put(&m, key, V(i + NKEYS)))
			ok = 0;
	}
	tap_ok(ok && m.len == NKEYS, "replacing every key keeps len at %d", NKEYS);

	ok = 1;
	for (int i = 0; i < NKEYS; i += 2) {
		key_of(key, sizeof key, i);
		if (strmap_del(&m, key) != V(i + NKEYS))
			ok = 0;
	}
	tap_ok(ok, "deleting every other key returns each value");
	tap_long_eq((long long)m.len, NKEYS / 2, "len is %d after deleting half", NKEYS / 2);

	ok = 1;
	for (int i = 0; i < NKEYS; i++) {
		void *want = i % 2 ? V(i + NKEYS) : NULL;
		key_of(key, sizeof key, i);
		if (strmap_get(&m, key) != want) {
			if (ok)
				tap_diag("first wrong key after deletes: %s", key);
			ok = 0;
		}
	}
	tap_ok(ok, "after deleting every other key, kept keys are found and deleted ones are not");

	/* Iteration: every remaining key exactly once, with its value. */
	unsigned char *seen = calloc(NKEYS, 1);
	size_t visits = 0, pos = 0;
	const char *k;
	void *v;

	ok = 1;
	while ((pos = strmap_next(&m, pos, &k, &v))) {
		int i = -1;
		visits++;
		if (sscanf(k, "chan:%d", &i) != 1 || i < 0 || i >= NKEYS || i % 2 == 0 || v != V(i + NKEYS)) {
			ok = 0;
			continue;
		}
		if (seen[i]++)
			ok = 0;
	}
	for (int i = 1; i < NKEYS; i += 2)
		if (seen[i] != 1)
			ok = 0;
	tap_ok(ok && visits == NKEYS / 2, "iteration visits every remaining key exactly once (%zu visits)", visits);
	free(seen);

	/* Delete the rest, then the map is empty but usable. */
	ok = 1;
	for (int i = 1; i < NKEYS; i += 2) {
		key_of(key, sizeof key, i);
		if (!strmap_del(&m, key))
			ok = 0;
	}
	pos = strmap_next(&m, 0, &k, &v);
	tap_ok(ok && m.len == 0 && pos == 0, "deleting all keys leaves nothing to iterate");
	tap_ok(strmap_put(&m, "chan:1", V(1)) == 0 && strmap_get(&m, "chan:1") == V(1),
	       "the emptied map takes new keys");
	strmap_free(&m);
}

/* FNV-1a as in strmap.c, to pick keys whose probe runs collide and wrap. */
static unsigned fnv1a(const char *s)
{
	unsigned h = 2166136261u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 16777619u;
	return h;
}

/* Find n keys "kN" whose home slot in a 16-slot table is home. */
static void keys_with_home(unsigned home, char keys[][16], int n, int *next)
{
	for (int found = 0; found < n; (*next)++) {
		char k[16];
		snprintf(k, sizeof k, "k%d", *next);
		if ((fnv1a(k) & 15) == home)
			strcpy(keys[found++], k);
	}
}

static void test_wraparound(void)
{
	struct strmap m = { 0 };
	char h15[4][16], h0[2][16], h14[1][16];
	int next = 0, ok;

	keys_with_home(15, h15, 4, &next);
	keys_with_home(0, h0, 2, &next);
	keys_with_home(14, h14, 1, &next);

	/* Ten keys keep cap at 16. Slots 14,15,0..5 form one run that wraps. */
	for (int i = 0; i < 4; i++)
		strmap_put(&m, h15[i], h15[i]);
	for (int i = 0; i < 2; i++)
		strmap_put(&m, h0[i], h0[i]);
	strmap_put(&m, h14[0], h14[0]);
	tap_long_eq((long long)m.cap, 16, "wrap-around setup keeps a 16-slot table");
	ok = m.cap == 16 && m.slots[14].key && m.slots[15].key && m.slots[0].key && m.slots[4].key &&
	     !strcmp(m.slots[15].key, h15[0]) && !strcmp(m.slots[0].key, h15[1]) && !m.slots[5].key;
	tap_ok(ok, "wrap-around setup: one probe run fills slots 14, 15 and 0..4");

	/* Delete the key that sits in slot 15 or 14; the wrapped run must shift back across 0. */
	static const int order[][2] = { { 15, 0 }, { 0, 0 }, { 15, 2 }, { 14, 0 }, { 15, 1 }, { 0, 1 }, { 15, 3 } };
	int gone[3][4] = { { 0 } };

	for (size_t d = 0; d < TAP_ARRAY_LEN(order); d++) {
		int home = order[d][0], idx = order[d][1];
		char *key = home == 15 ? h15[idx] : home == 0 ? h0[idx] : h14[idx];

		tap_ok(strmap_del(&m, key) == key, "wrap-around: del %s (home %d)", key, home);
		gone[home == 15 ? 0 : home == 0 ? 1 : 2][idx] = 1;
		ok = 1;
		for (int i = 0; i < 4; i++)
			if (strmap_get(&m, h15[i]) != (gone[0][i] ? NULL : h15[i]))
				ok = 0;
		for (int i = 0; i < 2; i++)
			if (strmap_get(&m, h0[i]) != (gone[1][i] ? NULL : h0[i]))
				ok = 0;
		if (strmap_get(&m, h14[0]) != (gone[2][0] ? NULL : h14[0]))
			ok = 0;
		tap_ok(ok, "wrap-around: after del %s every other key is still found", key);
	}
	tap_long_eq((long long)m.len, 0, "wrap-around: all keys deleted");
	strmap_free(&m);
}

/* Random puts and dels on a small key space, checked against an array after every step. */
static void test_random_against_reference(void)
{
	enum { NK = 300, STEPS = 60000 };
	struct strmap m = { 0 };
	void *ref[NK] = { 0 };
	size_t ref_len = 0;
	unsigned long long x = 88172645463325252ULL; /* xorshift64 */
	char key[32];
	int ok = 1;

	for (int s = 0; s < STEPS && ok; s++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		int i = (int)(x % NK), op = (int)((x >> 20) % 3);
		key_of(key, sizeof key, i);
		if (op == 0) {
			if (strmap_del(&m, key) != ref[i])
				ok = 0;
			if (ref[i])
				ref_len--;
			ref[i] = NULL;
		} else {
			void *val = V(s);
			if (strmap_put(&m, key, val))
				ok = 0;
			if (!ref[i])
				ref_len++;
			ref[i] = val;
		}
		if (m.len != ref_len)
			ok = 0;
		if (s % 97 == 0)
			for (int j = 0; j < NK; j++) {
				key_of(key, sizeof key, j);
				if (strmap_get(&m, key) != ref[j])
					ok = 0;
			}
		if (!ok)
			tap_diag("diverged at step %d (key %d, op %d)", s, i, op);
	}
	for (int j = 0; j < NK; j++) {
		key_of(key, sizeof key, j);
		if (strmap_get(&m, key) != ref[j])
			ok = 0;
	}
	tap_ok(ok, "%d random puts and dels match a reference array", STEPS);
	strmap_free(&m);
}

int main(void)
{
	test_basics();
	test_growth_and_delete();
	test_wraparound();
	test_random_against_reference();
	return tap_done();
}
