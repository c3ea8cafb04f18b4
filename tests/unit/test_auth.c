/* test_auth.c: JWT (HS256 only) and API key checks, and channel patterns. The JWT
 * vectors are built here with auth_jwt_sign, and one fixed token from RFC 7515's style
 * (signed with a known secret by an independent implementation: Python's hmac) pins
 * the encoding. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "tap.h"

#define SECRET "0123456789abcdef0123456789abcdef" /* 32 bytes */
#define NOW 1800000000LL

static char tmpdir[64];

static const char *write_file(const char *name, const char *text)
{
	static char path[128];
	FILE *f;

	snprintf(path, sizeof path, "%s/%s", tmpdir, name);
	f = fopen(path, "w");
	fputs(text, f);
	fclose(f);
	return path;
}

static struct auth *jwt_auth(void)
{
	struct auth *a = auth_new();
	char err[200];

	if (auth_load_jwt_secret(a, write_file("secret", SECRET "\n"), err, sizeof err))
		tap_diag("%s", err);
	return a;
}

/* Check a token; returns 0 or -1 and leaves the reason in err. */
static int check(struct auth *a, const char *tok, struct auth_grant *g, char *err, size_t errlen)
{
	return auth_check(a, tok, strlen(tok), NOW, g, err, errlen);
}

static void expect_refused(struct auth *a, const char *tok, const char *reason, const char *what)
{
	struct auth_grant g;
	char err[200] = "";
	int rc = check(a, tok, &g, err, sizeof err);

	if (!tap_ok(rc == -1 && strstr(err, reason), "jwt: %s is refused (%s)", what, reason))
		tap_diag("rc=%d err=%s", rc, err);
	if (!rc)
		auth_grant_free(&g);
}

static void test_patterns(void)
{
	tap_ok(auth_match("room", "room"), "match: exact");
	tap_ok(!auth_match("room", "rooms"), "match: no prefix match without *");
	tap_ok(auth_match("room.*", "room.a"), "match: room.* takes room.a");
	tap_ok(auth_match("room.*", "room."), "match: * matches nothing too");
	tap_ok(!auth_match("room.*", "room"), "match: room.* does not take room");
	tap_ok(auth_match("*", "anything"), "match: * takes anything");
	tap_ok(auth_match("a*b*c", "aXXbYYc"), "match: several stars");
	tap_ok(!auth_match("a*b*c", "aXXbYY"), "match: several stars, no match");
	tap_ok(auth_match("*.log", "x.y.log"), "match: leading star backtracks");
}

static void test_jwt(void)
{
	struct auth *a = jwt_auth();
	struct auth_grant g;
	char err[200] = "", *tok;

	tok = auth_jwt_sign(SECRET, 32, "{\"sub\":\"ann\",\"publish\":[\"room.*\"],\"subscribe\":[\"*\"],\"exp\":1900000000}");
	if (!tap_ok(check(a, tok, &g, err, sizeof err) == 0, "jwt: a good token is accepted"))
		tap_diag("%s", err);
	tap_str_eq(g.name, "ann", "jwt: sub is the user's name");
	tap_ok(g.exp == 1900000000, "jwt: exp is kept");
	tap_ok(auth_allows(&g, 1, "room.a") && !auth_allows(&g, 1, "other"), "jwt: publish patterns apply");
	tap_ok(auth_allows(&g, 0, "other"), "jwt: subscribe patterns apply");
	auth_grant_free(&g);
	free(tok);

	/* An independent signer: python3 -c 'import hmac,hashlib,base64; ...' with SECRET over
	 * {"alg":"HS256","typ":"JWT"}.{"sub":"bob"} */
	if (!tap_ok(check(a, "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJib2IifQ.mSUTDc1vHa8zXv-vX8cZbGP6XYbltvz9UKYK3SpziL8",
			  &g, err, sizeof err) == 0 && !strcmp(g.name, "bob") && !g.npublish,
		    "jwt: a token signed by another implementation verifies; no claims, no channels"))
		tap_diag("%s", err);
	auth_grant_free(&g);

	tok = auth_jwt_sign("another secret that is 32 bytes!", 32, "{\"sub\":\"eve\",\"publish\":[\"*\"]}");
	expect_refused(a, tok, "signature does not verify", "a token signed with another key");
	free(tok);
	tok = auth_jwt_sign(SECRET, 32, "{\"exp\":1700000000}");
	expect_refused(a, tok, "token expired", "an expired token");
	free(tok);
	tok = auth_jwt_sign(SECRET, 32, "{\"exp\":0}");
	expect_refused(a, tok, "token expired", "exp 0 (1970), not taken for \"never\"");
	free(tok);
	tok = auth_jwt_sign(SECRET, 32, "{\"nbf\":1900000000}");
	expect_refused(a, tok, "not valid yet", "a token not valid yet");
	free(tok);
	tok = auth_jwt_sign(SECRET, 32, "{\"publish\":\"room\"}");
	expect_refused(a, tok, "must be arrays of channel patterns", "publish as a string");
	free(tok);
	tok = auth_jwt_sign(SECRET, 32, "{\"publish\":[\"a b\"]}");
	expect_refused(a, tok, "must be arrays of channel patterns", "a pattern with a space");
	free(tok);
	tok = auth_jwt_sign(SECRET, 32, "{\"exp\":\"soon\"}");
	expect_refused(a, tok, "must be numbers", "exp as a string");
	free(tok);
	/* alg none: {"alg":"none"}.{"sub":"eve","publish":["*"]}. with no signature */
	expect_refused(a, "eyJhbGciOiJub25lIn0.eyJzdWIiOiJldmUiLCJwdWJsaXNoIjpbIioiXX0.",
		       "\"none\" is not accepted", "alg none");
	/* alg HS512 with an otherwise fine shape */
	expect_refused(a, "eyJhbGciOiJIUzUxMiJ9.e30.AAAA", "\"HS512\" is not accepted", "alg HS512");
	expect_refused(a, "a.b", "API keys are not accepted here", "one dot (taken for an API key)");
	expect_refused(a, "..", "malformed token", "empty parts");
	expect_refused(a, "eyJhbGciOiJIUzI1NiJ9.e30.!!!", "signature does not verify", "a signature that is not base64url");
	expect_refused(a, "bm90IGpzb24.e30.AAAA", "malformed token", "a header that is not JSON");
	expect_refused(a, "", "missing token", "an empty token");
	auth_free(a);

	a = auth_new();
	tok = auth_jwt_sign(SECRET, 32, "{}");
	expect_refused(a, tok, "no --jwt-secret-file", "a JWT when no secret is configured");
	free(tok);
	tap_ok(auth_load_jwt_secret(a, write_file("short", "too short\n"), err, sizeof err) == -1 &&
		       strstr(err, "at least 32"),
	       "jwt: a short secret is refused at start");
	tap_ok(auth_load_jwt_secret(a, "/nonexistent/secret", err, sizeof err) == -1 &&
		       strstr(err, "/nonexistent/secret: No such file"),
	       "jwt: a missing secret file names the file");
	auth_free(a);
}

static void test_api_keys(void)
{
	struct auth *a = auth_new();
	struct auth_grant g;
	char err[200] = "";

	tap_ok(auth_load_api_keys(a, write_file("keys",
						"# scripts\n"
						"\n"
						"k-alerts-0123456789 publish=alerts,ops.* name=cron\n"
						"k-reader-0123456789 subscribe=*\n"),
				  err, sizeof err) == 0,
	       "keys: a key file loads");
	tap_ok(check(a, "k-alerts-0123456789", &g, err, sizeof err) == 0 && !strcmp(g.name, "cron") &&
		       auth_allows(&g, 1, "ops.db") && !auth_allows(&g, 0, "alerts"),
	       "keys: a key gives its patterns and name");
	auth_grant_free(&g);
	tap_ok(check(a, "k-reader-0123456789", &g, err, sizeof err) == 0 && !g.name[0] &&
		       auth_allows(&g, 0, "x") && !auth_allows(&g, 1, "x"),
	       "keys: a read-only key");
	auth_grant_free(&g);
	tap_ok(check(a, "k-reader-012345678", &g, err, sizeof err) == -1 && !strcmp(err, "unknown API key"),
	       "keys: a key one character short is unknown");
	auth_free(a);

	a = auth_new();
	tap_ok(auth_load_api_keys(a, write_file("bad1", "\nshort publish=x\n"), err, sizeof err) == -1 &&
		       strstr(err, "bad1:2: an API key needs at least 16"),
	       "keys: a short key is refused with file and line");
	tap_ok(auth_load_api_keys(a, write_file("bad2", "k-0123456789abcdef read=x\n"), err, sizeof err) == -1 &&
		       strstr(err, ":1: expected publish="),
	       "keys: an unknown word is refused");
	tap_ok(auth_load_api_keys(a, write_file("bad3", "k-0123456789abcdef publish=a/b\n"), err, sizeof err) == -1 &&
		       strstr(err, "channel-name characters"),
	       "keys: a bad pattern is refused");
	tap_ok(auth_load_api_keys(a, write_file("dots", "k.0123456789abcd.ef\n"), err, sizeof err) == -1 &&
		       strstr(err, "taken for a JWT"),
	       "keys: a key with exactly two dots is refused (it would be read as a JWT)");
	tap_ok(auth_load_api_keys(a, write_file("empty", "# nothing\n"), err, sizeof err) == -1 &&
		       strstr(err, "no API keys"),
	       "keys: a file without keys is refused");
	auth_free(a);
}

int main(void)
{
	snprintf(tmpdir, sizeof tmpdir, "/tmp/test_auth.XXXXXX");
	if (!mkdtemp(tmpdir))
		return 1;
	test_patterns();
	test_jwt();
	test_api_keys();
	{
		char cmd[128];
		snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
		if (system(cmd))
			tap_diag("could not remove %s", tmpdir);
	}
	return tap_done();
}
