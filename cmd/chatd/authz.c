/* authz.c: the credential a request carries, and whether it may do what it asks.
 *
 * A token travels as "Authorization: Bearer TOKEN", as a "token" member of a POST's
 * JSON body, or as ?token=TOKEN (browsers cannot set headers on a WebSocket), looked
 * for in that order. Without --jwt-secret-file or --api-key-file everything is allowed
 * and nobody is named. Tokens are never logged. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "envelope.h"
#include "server.h"

/* The request's token from its Authorization header or ?token=, malloc'd; NULL if none
 * (or an Authorization header of another scheme). */
static char *authz_request_token(struct lws *wsi)
{
	int len = lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_AUTHORIZATION);
	char *buf;

	if (len > 0) {
		if (!(buf = malloc((size_t)len + 1)) ||
		    lws_hdr_copy(wsi, buf, len + 1, WSI_TOKEN_HTTP_AUTHORIZATION) < 0) {
			free(buf);
			return NULL;
		}
		if (!strncasecmp(buf, "Bearer ", 7)) {
			memmove(buf, buf + 7 + strspn(buf + 7, " "), strlen(buf + 7 + strspn(buf + 7, " ")) + 1);
			return buf;
		}
		free(buf);
	}
	buf = malloc(AUTH_TOKEN_MAX + 8);
	if (buf) { /* lws copies "token=VALUE" and points at VALUE */
		const char *v = lws_get_urlarg_by_name(wsi, "token=", buf, AUTH_TOKEN_MAX + 8);
		if (v) {
			memmove(buf, v, strlen(v) + 1);
			return buf;
		}
	}
	free(buf);
	return NULL;
}

int authz_request(struct lws *wsi, const char *body_token, int publish,
		  const char *const *chans, int n, struct auth_grant *g, char *err, size_t errlen)
{
	struct server *srv = server_of(wsi);
	char *tok, why[200];
	int rc;

	memset(g, 0, sizeof *g);
	if (!srv->cfg->auth)
		return 0;
	tok = body_token ? strdup(body_token) : NULL;
	if (!tok)
		tok = authz_request_token(wsi);
	if (!tok || !*tok) {
		free(tok);
		snprintf(err, errlen, "authentication required: send a token as Authorization: Bearer TOKEN, ?token=TOKEN, or \"token\" in the JSON body");
		srv->metrics.auth401++;
		return 401;
	}
	rc = auth_check(srv->cfg->auth, tok, strlen(tok), env_now_ms() / 1000, g, why, sizeof why);
	free(tok);
	if (rc) {
		snprintf(err, errlen, "invalid token: %s", why);
		srv->metrics.auth401++;
		return 401;
	}
	for (int i = 0; i < n; i++)
		if (!auth_allows(g, publish, chans[i])) {
			snprintf(err, errlen, "forbidden: this token does not allow %s channel %s",
				 publish ? "publishing to" : "reading", chans[i]);
			auth_grant_free(g);
			srv->metrics.auth403++;
			return 403;
		}
	return 0;
}

/* ---- origins ---- */

int authz_origin(struct lws *wsi, char *origin, size_t cap)
{
	const struct chatd_config *cfg = server_of(wsi)->cfg;
	char host[256];
	const char *o;

	origin[0] = '\0';
	if (lws_hdr_total_length(wsi, WSI_TOKEN_ORIGIN) <= 0)
		return 0; /* not a browser: Origin is what browsers send, and it is theirs to check */
	if (lws_hdr_copy(wsi, origin, (int)cap, WSI_TOKEN_ORIGIN) < 0)
		return -1;
	for (int i = 0; i < cfg->norigins; i++)
		if (!strcmp(cfg->origins[i], "*") || !strcasecmp(cfg->origins[i], origin))
			return 0;
	/* Same origin: the page chatd served itself. */
	o = !strncasecmp(origin, "http://", 7) && !cfg->tls ? origin + 7
	    : !strncasecmp(origin, "https://", 8) && cfg->tls ? origin + 8 : NULL;
	if (o && lws_hdr_copy(wsi, host, sizeof host, WSI_TOKEN_HOST) > 0 && !strcasecmp(o, host))
		return 0;
	return -1;
}

/* Cross-origin: the browser may read the answer (and, in a preflight, send the POST). */
int authz_cors_headers(struct lws *wsi, const char *origin, int preflight, unsigned char **p,
		       unsigned char *end)
{
	static const struct { const char *name, *value; } pre[] = {
		{ "access-control-allow-methods:", "GET, POST" },
		{ "access-control-allow-headers:", "content-type, authorization, idempotency-key, last-event-id" },
		{ "access-control-max-age:", "600" },
	};

	if (lws_add_http_header_by_name(wsi, (const unsigned char *)"access-control-allow-origin:",
					(const unsigned char *)origin, (int)strlen(origin), p, end) ||
	    lws_add_http_header_by_name(wsi, (const unsigned char *)"vary:", (const unsigned char *)"Origin", 6, p, end))
		return -1;
	for (size_t i = 0; preflight && i < sizeof pre / sizeof pre[0]; i++)
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)pre[i].name,
						(const unsigned char *)pre[i].value, (int)strlen(pre[i].value), p, end))
			return -1;
	return 0;
}
