/* fuzz_auth.c: libFuzzer target for lib/auth.c: token parsing and verification.
 *
 * The input is a token. auth_check must never accept anything that is not either a key
 * from the file or a JWT whose HS256 signature verifies with the secret: the fuzzer cannot
 * forge a signature, so any acceptance of a JWT here is a bug unless the input is one this
 * target signed itself (the first input byte chooses to sign the rest as the payload, so
 * the claims parser is fuzzed behind a valid signature too). A refusal must come with a
 * short printable reason that never quotes the token, and a grant's patterns must be
 * patterns. auth_match is checked against a reference matcher. */
#include <string.h>

#include "auth.h"
#include "fuzz.h"

#define SECRET "0123456789abcdef0123456789abcdef"
#define KEY "k-fuzz-0123456789abcdef"

static struct auth *a;

/* The reference: the textbook table, "does p[i..] match s[j..]", filled from the end.
 * (The plain recursive matcher is exponential in the number of stars: the fuzzer found an
 * input that took it past libFuzzer's timeout.) Callers keep p under 24 and s under 64. */
static int ref_match(const char *p, const char *s)
{
	size_t np = strlen(p), ns = strlen(s);
	unsigned char m[25][65];

	for (size_t i = np + 1; i-- > 0;)
		for (size_t j = ns + 1; j-- > 0;) {
			if (i == np)
				m[i][j] = j == ns;
			else if (p[i] == '*')
				m[i][j] = m[i + 1][j] || (j < ns && m[i][j + 1]);
			else
				m[i][j] = j < ns && s[j] == p[i] && m[i + 1][j + 1];
		}
	return m[0][0];
}

static void setup(void)
{
	char err[200];
	FILE *f;

	a = auth_new();
	f = fopen("/tmp/fuzz_auth.secret", "w");
	fputs(SECRET "\n", f);
	fclose(f);
	f = fopen("/tmp/fuzz_auth.keys", "w");
	fputs(KEY " publish=room.* subscribe=* name=fuzz\n", f);
	fclose(f);
	FUZZ_CHECK(!auth_load_jwt_secret(a, "/tmp/fuzz_auth.secret", err, sizeof err));
	FUZZ_CHECK(!auth_load_api_keys(a, "/tmp/fuzz_auth.keys", err, sizeof err));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct fuzz_in in = { data, size };
	unsigned mode = fuzz_u8(&in);
	char *s = fuzz_dup(in.p, in.n, 1), *tok = s, err[300];
	struct auth_grant g;
	int rc, signed_here = 0;

	if (!a)
		setup();
	if (mode == 's' && !memchr(s, '\0', in.n)) { /* sign the rest as the payload */
		tok = auth_jwt_sign(SECRET, 32, s);
		signed_here = 1;
	}
	rc = auth_check(a, tok, signed_here ? strlen(tok) : in.n, 1800000000, &g, err, sizeof err);
	if (rc == 0) {
		FUZZ_CHECK(signed_here || (in.n == strlen(KEY) && !memcmp(tok, KEY, in.n)));
		for (size_t i = 0; i < g.npublish; i++)
			FUZZ_CHECK(g.publish[i][0] && strlen(g.publish[i]) <= 64);
		for (size_t i = 0; i < g.nsubscribe; i++)
			FUZZ_CHECK(g.subscribe[i][0] && strlen(g.subscribe[i]) <= 64);
		FUZZ_CHECK(strlen(g.name) <= AUTH_NAME_MAX);
		auth_grant_free(&g);
	} else {
		FUZZ_CHECK(rc == -1 && err[0] && strlen(err) < 200);
		for (const char *p = err; *p; p++)
			FUZZ_CHECK(*p >= 0x20 && *p < 0x7f);
		if (!signed_here && strlen(tok) >= 12) /* never quotes the token */
			FUZZ_CHECK(!strstr(err, tok));
	}
	/* patterns: the first half of the input against the second */
	if (in.n >= 2 && !memchr(s, '\0', in.n)) {
		char *p = fuzz_dup(in.p, in.n / 2, 1), *c = fuzz_dup(in.p + in.n / 2, in.n - in.n / 2, 1);
		if (strlen(p) < 24 && strlen(c) < 64)
			FUZZ_CHECK(auth_match(p, c) == ref_match(p, c));
		free(p);
		free(c);
	}
	if (signed_here)
		free(tok);
	free(s);
	return 0;
}
