/* auth.c: JWT (HS256 only) and API key checks.
 *
 * The signature is checked before anything in the token is believed, and compared in
 * constant time. The header must say exactly "alg":"HS256": "none", RS256 (whose public
 * key an attacker might pass off as an HMAC secret) and everything else are refused.
 * API keys are compared through their SHA-256 digests, in constant time and against
 * every key, so neither the length nor the first differing byte of a guess shows. */
#include "auth.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "err.h"

#define DIGEST 32

struct api_key {
	unsigned char digest[DIGEST];
	struct auth_grant grant;
};

struct auth {
	unsigned char *secret; /* HS256 key, or NULL: JWTs are refused */
	size_t secret_len;
	struct api_key *keys;
	size_t nkeys;
};

struct auth *auth_new(void)
{
	return calloc(1, sizeof(struct auth));
}

void auth_grant_free(struct auth_grant *g)
{
	for (size_t i = 0; i < g->npublish; i++)
		free(g->publish[i]);
	for (size_t i = 0; i < g->nsubscribe; i++)
		free(g->subscribe[i]);
	free(g->publish);
	free(g->subscribe);
	memset(g, 0, sizeof *g);
}

void auth_free(struct auth *a)
{
	if (!a)
		return;
	if (a->secret)
		OPENSSL_cleanse(a->secret, a->secret_len);
	free(a->secret);
	for (size_t i = 0; i < a->nkeys; i++)
		auth_grant_free(&a->keys[i].grant);
	free(a->keys);
	free(a);
}

/* ---- patterns ---- */

int auth_match(const char *pat, const char *chan)
{
	const char *star = NULL, *resume = NULL;

	while (*chan) {
		if (*pat == '*') {
			star = pat++;
			resume = chan;
		} else if (*pat == *chan) {
			pat++;
			chan++;
		} else if (star) { /* let the last star take one more character */
			pat = star + 1;
			chan = ++resume;
		} else {
			return 0;
		}
	}
	while (*pat == '*')
		pat++;
	return !*pat;
}

int auth_allows(const struct auth_grant *g, int publish, const char *chan)
{
	char *const *pats = publish ? g->publish : g->subscribe;
	size_t n = publish ? g->npublish : g->nsubscribe;

	for (size_t i = 0; i < n; i++)
		if (auth_match(pats[i], chan))
			return 1;
	return 0;
}

/* NULL when p[0..len) is a pattern: channel characters and '*'. */
static const char *pattern_check(const char *p, size_t len)
{
	char name[CHAN_MAX + 1];
	size_t n = 0;

	if (len == 0 || len > CHAN_MAX)
		return "a channel pattern has 1 to 64 characters";
	for (size_t i = 0; i < len; i++)
		if (p[i] != '*')
			name[n++] = p[i];
	if (n && chan_check(name, n))
		return "a channel pattern is made of channel-name characters (A-Z a-z 0-9 _ - . :) and *";
	return NULL;
}

static int add_pattern(char ***list, size_t *n, const char *p, size_t len)
{
	char **nl = realloc(*list, (*n + 1) * sizeof *nl);

	if (!nl)
		return -1;
	*list = nl;
	if (!(nl[*n] = strndup(p, len)))
		return -1;
	(*n)++;
	return 0;
}

/* ---- files ---- */

static char *read_file(const char *path, size_t *len, char *err, size_t errlen)
{
	FILE *f = fopen(path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, r;

	if (!f) {
		err_set(err, errlen, "%s: %s", path, strerror(errno));
		return NULL;
	}
	do {
		if (n + 4096 > cap) {
			char *nb = cap < (1u << 24) ? realloc(buf, cap = cap ? 2 * cap : 8192) : NULL;
			if (!nb) {
				err_set(err, errlen, "%s: too large", path);
				goto fail;
			}
			buf = nb;
		}
		r = fread(buf + n, 1, cap - n - 1, f);
		n += r;
	} while (r > 0);
	if (ferror(f)) {
		err_set(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
fail:
	fclose(f);
	free(buf);
	return NULL;
}

int auth_load_jwt_secret(struct auth *a, const char *path, char *err, size_t errlen)
{
	size_t len;
	char *buf = read_file(path, &len, err, errlen);

	if (!buf)
		return -1;
	if (len && buf[len - 1] == '\n')
		len--;
	if (len && buf[len - 1] == '\r')
		len--;
	if (len < AUTH_SECRET_MIN) {
		OPENSSL_cleanse(buf, len);
		free(buf);
		return err_set(err, errlen, "%s: the secret is %zu bytes; HS256 wants at least %d (try: head -c 32 /dev/urandom | base64 > FILE)",
			       path, len, AUTH_SECRET_MIN);
	}
	if (a->secret) {
		OPENSSL_cleanse(a->secret, a->secret_len);
		free(a->secret);
	}
	a->secret = (unsigned char *)buf;
	a->secret_len = len;
	return 0;
}

static void sha256(const void *data, size_t len, unsigned char out[DIGEST])
{
	unsigned int n = DIGEST;

	EVP_Digest(data, len, out, &n, EVP_sha256(), NULL);
}

/* One API key line, split in place. Returns 0, or -1 with a reason in err. */
static int parse_key_line(struct auth *a, char *line, char *err, size_t errlen)
{
	char *save = NULL, *key = strtok_r(line, " \t", &save), *word;
	struct api_key k;
	struct api_key *nk;

	memset(&k, 0, sizeof k);
	if (strlen(key) < AUTH_KEY_MIN)
		return err_set(err, errlen, "an API key needs at least %d characters", AUTH_KEY_MIN);
	for (char *c = key; *c; c++)
		if (*c < 0x21 || *c > 0x7e)
			return err_set(err, errlen, "an API key is made of visible ASCII characters");
	if (strchr(key, '.') && strchr(strchr(key, '.') + 1, '.') && !strchr(strchr(strchr(key, '.') + 1, '.') + 1, '.'))
		return err_set(err, errlen, "an API key with exactly two dots would be taken for a JWT");
	sha256(key, strlen(key), k.digest);
	while ((word = strtok_r(NULL, " \t", &save))) {
		char *v = strchr(word, '='), *p, *psave = NULL;
		int pub = v && v - word == 7 && !strncmp(word, "publish", 7);
		int sub = v && v - word == 9 && !strncmp(word, "subscribe", 9);

		if (v && v - word == 4 && !strncmp(word, "name", 4)) {
			if (strlen(v + 1) > AUTH_NAME_MAX || !v[1]) {
				auth_grant_free(&k.grant);
				return err_set(err, errlen, "name= wants 1 to %d characters", AUTH_NAME_MAX);
			}
			strcpy(k.grant.name, v + 1);
			continue;
		}
		if (!pub && !sub) {
			auth_grant_free(&k.grant);
			return err_set(err, errlen, "expected publish=PATTERNS, subscribe=PATTERNS or name=NAME after the key");
		}
		for (p = strtok_r(v + 1, ",", &psave); p; p = strtok_r(NULL, ",", &psave)) {
			const char *why = pattern_check(p, strlen(p));
			if (why) {
				auth_grant_free(&k.grant);
				return err_set(err, errlen, "%s", why);
			}
			if (add_pattern(pub ? &k.grant.publish : &k.grant.subscribe,
					pub ? &k.grant.npublish : &k.grant.nsubscribe, p, strlen(p))) {
				auth_grant_free(&k.grant);
				return err_set(err, errlen, "out of memory");
			}
		}
	}
	nk = realloc(a->keys, (a->nkeys + 1) * sizeof *nk);
	if (!nk) {
		auth_grant_free(&k.grant);
		return err_set(err, errlen, "out of memory");
	}
	a->keys = nk;
	a->keys[a->nkeys++] = k;
	return 0;
}

int auth_load_api_keys(struct auth *a, const char *path, char *err, size_t errlen)
{
	size_t len, lineno = 0;
	char *buf = read_file(path, &len, err, errlen), *save = NULL, *line, why[200];
	int rc = 0;

	if (!buf)
		return -1;
	for (char *p = buf; p < buf + len; p++) /* keep empty lines countable */
		if (*p == '\r')
			*p = ' ';
	for (char *s = buf; s && *s; s = line) {
		char *nl = strchr(s, '\n');
		line = nl ? nl + 1 : NULL;
		if (nl)
			*nl = '\0';
		lineno++;
		s += strspn(s, " \t");
		if (!*s || *s == '#')
			continue;
		if (parse_key_line(a, s, why, sizeof why)) {
			rc = err_set(err, errlen, "%s:%zu: %s", path, lineno, why);
			break;
		}
	}
	(void)save;
	OPENSSL_cleanse(buf, len);
	free(buf);
	if (!rc && !a->nkeys)
		rc = err_set(err, errlen, "%s: no API keys in the file", path);
	return rc;
}

/* ---- JWT ---- */

static int b64url_val(int c)
{
	if (c >= 'A' && c <= 'Z')
		return c - 'A';
	if (c >= 'a' && c <= 'z')
		return c - 'a' + 26;
	if (c >= '0' && c <= '9')
		return c - '0' + 52;
	return c == '-' ? 62 : c == '_' ? 63 : -1;
}

/* Decode unpadded base64url s[0..len) into out (room for len * 3 / 4 + 1). Returns the
 * decoded length, or -1. */
static long b64url_decode(const char *s, size_t len, unsigned char *out)
{
	unsigned acc = 0;
	int bits = 0;
	long n = 0;

	if (len % 4 == 1)
		return -1;
	for (size_t i = 0; i < len; i++) {
		int v = b64url_val((unsigned char)s[i]);
		if (v < 0)
			return -1;
		acc = (acc << 6) | (unsigned)v;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (unsigned char)(acc >> bits);
		}
	}
	if (acc & ((1u << bits) - 1)) /* non-canonical: stray bits in the last character */
		return -1;
	return n;
}

static size_t b64url_encode(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	size_t n = 0;
	unsigned acc = 0;
	int bits = 0;

	for (size_t i = 0; i < len; i++) {
		acc = (acc << 8) | in[i];
		bits += 8;
		while (bits >= 6) {
			bits -= 6;
			out[n++] = tab[(acc >> bits) & 63];
		}
	}
	if (bits)
		out[n++] = tab[(acc << (6 - bits)) & 63];
	out[n] = '\0';
	return n;
}

static cJSON *b64url_json(const char *s, size_t len)
{
	unsigned char *buf = malloc(len * 3 / 4 + 2);
	long n = buf ? b64url_decode(s, len, buf) : -1;
	cJSON *j = n >= 0 ? cJSON_ParseWithLength((const char *)buf, (size_t)n) : NULL;

	free(buf);
	return j;
}

/* An array of pattern strings (absent: none). Returns 0 or -1. */
static int claim_patterns(const cJSON *payload, const char *claim, char ***list, size_t *n)
{
	const cJSON *arr = cJSON_GetObjectItemCaseSensitive(payload, claim), *it;

	if (!arr)
		return 0;
	if (!cJSON_IsArray(arr))
		return -1;
	cJSON_ArrayForEach(it, arr)
	{
		if (!cJSON_IsString(it) || pattern_check(it->valuestring, strlen(it->valuestring)) ||
		    add_pattern(list, n, it->valuestring, strlen(it->valuestring)))
			return -1;
	}
	return 0;
}

/* A NumericDate claim: *t is -1 when absent; returns -1 when it is not a number. */
static int claim_time(const cJSON *payload, const char *claim, int64_t *t)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(payload, claim);

	*t = -1;
	if (!v)
		return 0;
	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 1e15)
		return -1;
	*t = (int64_t)v->valuedouble;
	return 0;
}

static int check_jwt(const struct auth *a, const char *tok, size_t len, int64_t now,
		     struct auth_grant *g, char *err, size_t errlen)
{
	const char *d1 = memchr(tok, '.', len), *d2 = d1 ? memchr(d1 + 1, '.', len - (size_t)(d1 - tok) - 1) : NULL;
	unsigned char mac[EVP_MAX_MD_SIZE], sig[64];
	unsigned int maclen = 0;
	cJSON *hdr = NULL, *payload = NULL;
	const cJSON *alg, *typ, *sub;
	int64_t nbf, exp;
	long siglen;
	int rc = -1;

	if (!a->secret)
		return err_set(err, errlen, "JWTs are not accepted here (chatd has no --jwt-secret-file)");
	if (!d1 || !d2 || d1 == tok || d2 == d1 + 1)
		return err_set(err, errlen, "malformed token: a JWT is HEADER.PAYLOAD.SIGNATURE in base64url");
	if (!(hdr = b64url_json(tok, (size_t)(d1 - tok))) || !cJSON_IsObject(hdr))
		goto malformed;
	alg = cJSON_GetObjectItemCaseSensitive(hdr, "alg");
	typ = cJSON_GetObjectItemCaseSensitive(hdr, "typ");
	if (!cJSON_IsString(alg)) {
		err_set(err, errlen, "malformed token: the header has no \"alg\"");
		goto out;
	}
	if (strcmp(alg->valuestring, "HS256")) {
		char shown[24];
		size_t i;
		for (i = 0; i < sizeof shown - 1 && alg->valuestring[i]; i++)
			shown[i] = alg->valuestring[i] > 0x20 && alg->valuestring[i] < 0x7f ? alg->valuestring[i] : '?';
		shown[i] = '\0';
		err_set(err, errlen, "token algorithm \"%s\" is not accepted; chatd takes HS256 only", shown);
		goto out;
	}
	if ((typ && (!cJSON_IsString(typ) || strcmp(typ->valuestring, "JWT"))) ||
	    cJSON_GetObjectItemCaseSensitive(hdr, "crit")) {
		err_set(err, errlen, "malformed token: unsupported header (typ must be JWT; no crit)");
		goto out;
	}
	siglen = (size_t)(tok + len - d2 - 1) <= 86 ? b64url_decode(d2 + 1, (size_t)(tok + len - d2 - 1), sig) : -1;
	HMAC(EVP_sha256(), a->secret, (int)a->secret_len, (const unsigned char *)tok,
	     (size_t)(d2 - tok), mac, &maclen);
	if (siglen != (long)maclen || CRYPTO_memcmp(sig, mac, maclen)) {
		err_set(err, errlen, "token signature does not verify");
		goto out;
	}
	/* Signed by the holder of the secret: the payload may now be believed. */
	if (!(payload = b64url_json(d1 + 1, (size_t)(d2 - d1 - 1))) || !cJSON_IsObject(payload))
		goto malformed;
	if (claim_time(payload, "nbf", &nbf) || claim_time(payload, "exp", &exp)) {
		err_set(err, errlen, "malformed token: nbf and exp must be numbers (seconds since 1970)");
		goto out;
	}
	if (exp >= 0 && now >= exp) { /* "exp":0 is 1970, long expired */
		err_set(err, errlen, "token expired");
		goto out;
	}
	if (nbf >= 0 && now < nbf) {
		err_set(err, errlen, "token not valid yet (nbf is in the future)");
		goto out;
	}
	sub = cJSON_GetObjectItemCaseSensitive(payload, "sub");
	if (sub && (!cJSON_IsString(sub) || strlen(sub->valuestring) > AUTH_NAME_MAX)) {
		err_set(err, errlen, "malformed token: sub must be a string of at most %d bytes", AUTH_NAME_MAX);
		goto out;
	}
	memset(g, 0, sizeof *g);
	if (sub)
		strcpy(g->name, sub->valuestring);
	g->exp = exp >= 0 ? exp : 0;
	if (claim_patterns(payload, "publish", &g->publish, &g->npublish) ||
	    claim_patterns(payload, "subscribe", &g->subscribe, &g->nsubscribe)) {
		auth_grant_free(g);
		err_set(err, errlen, "malformed token: publish and subscribe must be arrays of channel patterns");
		goto out;
	}
	rc = 0;
	goto out;
malformed:
	err_set(err, errlen, "malformed token: its header and payload must be base64url JSON objects");
out:
	cJSON_Delete(hdr);
	cJSON_Delete(payload);
	return rc;
}

static int copy_grant(struct auth_grant *dst, const struct auth_grant *src)
{
	memset(dst, 0, sizeof *dst);
	strcpy(dst->name, src->name);
	for (size_t i = 0; i < src->npublish; i++)
		if (add_pattern(&dst->publish, &dst->npublish, src->publish[i], strlen(src->publish[i])))
			goto fail;
	for (size_t i = 0; i < src->nsubscribe; i++)
		if (add_pattern(&dst->subscribe, &dst->nsubscribe, src->subscribe[i], strlen(src->subscribe[i])))
			goto fail;
	return 0;
fail:
	auth_grant_free(dst);
	return -1;
}

int auth_check(const struct auth *a, const char *token, size_t len, int64_t now,
	       struct auth_grant *g, char *err, size_t errlen)
{
	unsigned char d[DIGEST];
	const struct api_key *found = NULL;
	int dots = 0;

	memset(g, 0, sizeof *g);
	if (len == 0)
		return err_set(err, errlen, "missing token");
	if (len > AUTH_TOKEN_MAX)
		return err_set(err, errlen, "malformed token: longer than %d bytes", AUTH_TOKEN_MAX);
	for (size_t i = 0; i < len; i++)
		dots += token[i] == '.';
	if (dots == 2)
		return check_jwt(a, token, len, now, g, err, errlen);
	sha256(token, len, d);
	for (size_t i = 0; i < a->nkeys; i++) /* every key, whatever matched: constant time */
		if (!CRYPTO_memcmp(d, a->keys[i].digest, DIGEST))
			found = &a->keys[i];
	if (!found)
		return err_set(err, errlen, a->nkeys ? "unknown API key" : "API keys are not accepted here (chatd has no --api-key-file)");
	if (copy_grant(g, &found->grant))
		return err_set(err, errlen, "out of memory");
	return 0;
}

char *auth_jwt_sign(const char *secret, size_t slen, const char *payload_json)
{
	static const char hdr[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
	size_t plen = strlen(payload_json);
	char *tok = malloc((sizeof hdr + plen) * 4 / 3 + 64);
	unsigned char mac[EVP_MAX_MD_SIZE];
	unsigned int maclen = 0;
	size_t n;

	if (!tok)
		return NULL;
	n = b64url_encode((const unsigned char *)hdr, sizeof hdr - 1, tok);
	tok[n++] = '.';
	n += b64url_encode((const unsigned char *)payload_json, plen, tok + n);
	HMAC(EVP_sha256(), secret, (int)slen, (const unsigned char *)tok, n, mac, &maclen);
	tok[n++] = '.';
	b64url_encode(mac, maclen, tok + n);
	return tok;
}
