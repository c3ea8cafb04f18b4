/* auth.h: who may publish and read which channels.
 *
 * Two kinds of credentials, both presented as one opaque token string:
 *   - a JWT signed with HS256 by whoever holds the shared secret; its claims give the
 *     channel patterns ("publish", "subscribe": arrays), the validity window ("nbf",
 *     "exp": seconds since the epoch) and the user's name ("sub");
 *   - a static API key, listed in a file with its patterns, for scripts.
 * A token with two dots is a JWT, anything else an API key. Patterns are channel names
 * where '*' matches any run of characters (including none): "room.*", "*".
 *
 * Nothing here logs or keeps a token after checking it; errors never quote it. */
#ifndef CHAT_AUTH_H
#define CHAT_AUTH_H

#include <stddef.h>
#include <stdint.h>

#define AUTH_NAME_MAX 64     /* bytes of a user's name ("sub") */
#define AUTH_TOKEN_MAX 8192  /* bytes of a token we look at */
#define AUTH_SECRET_MIN 32   /* bytes of an HS256 secret: 256 bits, as RFC 7518 asks */
#define AUTH_KEY_MIN 16      /* characters of an API key */

struct auth;

/* What a checked token allows. Owns its memory: free with auth_grant_free. */
struct auth_grant {
	char name[AUTH_NAME_MAX + 1]; /* "" when the token names nobody */
	char **publish, **subscribe;  /* patterns */
	size_t npublish, nsubscribe;
	int64_t exp;                  /* seconds since the epoch; 0: never */
};

struct auth *auth_new(void);
void auth_free(struct auth *a);

/* Read the HS256 secret: the whole file, minus one trailing newline; at least
 * AUTH_SECRET_MIN bytes. Returns 0, or -1 with a reason in err. */
int auth_load_jwt_secret(struct auth *a, const char *path, char *err, size_t errlen);

/* Read API keys: one per line, "KEY [publish=PAT,...] [subscribe=PAT,...] [name=NAME]",
 * blank lines and lines starting with '#' ignored. Returns 0, or -1 with the file, line
 * and reason in err. */
int auth_load_api_keys(struct auth *a, const char *path, char *err, size_t errlen);

/* Check token[0..len) at time now (seconds since the epoch). Returns 0 and fills g, or
 * -1 with a reason for a 401 in err (never quoting the token). */
int auth_check(const struct auth *a, const char *token, size_t len, int64_t now,
	       struct auth_grant *g, char *err, size_t errlen);

void auth_grant_free(struct auth_grant *g);

/* Does g allow publishing to (publish = 1) or reading (publish = 0) chan? */
int auth_allows(const struct auth_grant *g, int publish, const char *chan);

/* Does chan match pat ('*' matches any run of characters)? */
int auth_match(const char *pat, const char *chan);

/* For tests and tools: sign a JWT with HS256 over the given JSON payload, with the
 * secret's bytes. Returns a malloc'd token, or NULL when out of memory. */
char *auth_jwt_sign(const char *secret, size_t slen, const char *payload_json);

#endif
