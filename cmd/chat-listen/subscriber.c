/* subscriber.c: the libwebsockets client behind chat-listen; see subscriber.h.
 *
 * One context, one protocol, at most one connection. lws's own poll loop runs it; the
 * reconnect delay and the periodic tick are lws_sul timers on that loop, so everything
 * happens on one thread and a signal only has to set a flag and wake the loop. The token
 * goes in a header of each handshake, the one place lws lets a client add one. */
#include "subscriber.h"

#include <libwebsockets.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>

#include "log.h"

#define SUB_MAX_MESSAGE (64u << 20) /* a larger message is dropped, not buffered */
#define SUB_TICK_US (250 * LWS_US_PER_MS)
/* lws builds a handshake in one buffer of this size: the path with 16 channels and their
 * positions, plus a token, fit in 16 KiB; lws's default (4 KiB) does not always. */
#define SUB_HANDSHAKE_BUF 16384

/* chatd's close codes for "this token may not read that" (chat-protocol(7)). */
#define CLOSE_UNAUTHORIZED 4401
#define CLOSE_FORBIDDEN 4403

/* 100 ms doubling to 5 s, plus up to 20% jitter so that many listeners cut off by one
 * restart do not all come back in the same instant. */
static const uint32_t backoff_ms[] = { 100, 200, 400, 800, 1600, 3200, 5000 };
static const lws_retry_bo_t retry_template = {
	.retry_ms_table = backoff_ms,
	.retry_ms_table_count = LWS_ARRAY_SIZE(backoff_ms),
	.conceal_count = LWS_RETRY_CONCEAL_ALWAYS,
	.jitter_percent = 20,
};

struct subscriber {
	struct lws_context *ctx;
	struct lws *wsi;
	lws_sorted_usec_list_t retry_sul, tick_sul;
	struct sub_hooks hooks;
	int verbosity;
	/* The backoff, and lws's liveness check: it pings after secs_since_valid_ping without
	 * a pong, and hangs up at secs_since_valid_hangup. This does work for client
	 * connections in lws 4.1.6 (tried against a SIGSTOPped chatd); every message received
	 * counts as a pong too (see sub_heard), so a busy connection is never pinged. */
	lws_retry_bo_t policy;

	char host[256], host_header[300], origin[320], *path, *display;
	char *conn_path; /* path plus the resume query of the current attempt */
	char *auth;      /* "Bearer TOKEN", or NULL */
	int port, tls, insecure;

	int cert_rejected;                 /* OpenSSL found the server's certificate wanting */
	int status;                        /* SUB_CONTINUE while running */
	volatile sig_atomic_t interrupted;
	uint16_t retries;                  /* attempts since the last connection */
	int retry_pending, in_outage, was_connected;
	int up;                            /* the current connection was established */
	lws_usec_t heard;                  /* when the server last said anything */
	int close_code;                    /* from the server's close frame, 0 if none */
	char close_reason[124];

	char *msg; /* a message being put together from fragments */
	size_t len, cap;
	int oversize;
};

static void sub_connect(lws_sorted_usec_list_t *sul);

/* lws says why OpenSSL rejected a certificate only in an error log line ("SSL error:
 * self-signed certificate (preverify_ok=0;err=18;depth=0)"), so its log goes through
 * here: that reason is kept for the user, and the rest shown only with -v. */
static char cert_error[160];
static int show_lws_log;

static void sub_lws_log(int level, const char *line)
{
	const char *why = strstr(line, "SSL error: ");

	if (why) {
		why += strlen("SSL error: ");
		snprintf(cert_error, sizeof cert_error, "%.*s", (int)strcspn(why, "(\n"), why);
		for (size_t n = strlen(cert_error); n && cert_error[n - 1] == ' ';)
			cert_error[--n] = '\0';
	}
	if (show_lws_log && (level & (LLL_ERR | LLL_WARN)))
		lwsl_emit_stderr(level, line);
}

/* lws closes a connection that failed its liveness check without telling why; the time
 * since the server was last heard from does. */
static int went_silent(const struct subscriber *s)
{
	lws_usec_t limit = (lws_usec_t)s->policy.secs_since_valid_hangup * LWS_US_PER_SEC;

	return s->up && limit && lws_now_usecs() - s->heard >= limit - 500 * LWS_US_PER_MS;
}

/* A human name for how the connection ended. */
static void loss_reason(struct subscriber *s, const char *err, char *out, size_t outlen)
{
	if (err && *err)
		snprintf(out, outlen, "%s", err);
	else if (!s->close_code && went_silent(s))
		snprintf(out, outlen, "no message or pong for %u s", s->policy.secs_since_valid_hangup);
	else if (s->close_code == LWS_CLOSE_STATUS_GOINGAWAY)
		snprintf(out, outlen, "server shutting down (close 1001)");
	else if (s->close_code && s->close_reason[0])
		snprintf(out, outlen, "%s (close %d)", s->close_reason, s->close_code);
	else if (s->close_code)
		snprintf(out, outlen, "server closed the connection (close %d)", s->close_code);
	else
		snprintf(out, outlen, "connection dropped");
}

/* Close codes that mean "this subscription is not wanted": trying again cannot help. */
static int is_refusal(int code)
{
	return code == LWS_CLOSE_STATUS_PROTOCOL_ERR || code == LWS_CLOSE_STATUS_UNACCEPTABLE_OPCODE ||
	       code == LWS_CLOSE_STATUS_INVALID_PAYLOAD || code == LWS_CLOSE_STATUS_POLICY_VIOLATION;
}

/* The exit status for a refusal of the subscription (0 when it is none): the token's
 * (EX_NOPERM) or any other (EX_UNAVAILABLE). */
static int refusal_status(int close_code, int http_status)
{
	if (close_code == CLOSE_UNAUTHORIZED || close_code == CLOSE_FORBIDDEN ||
	    http_status == 401 || http_status == 403)
		return EX_NOPERM;
	if ((http_status >= 400 && http_status < 500) || is_refusal(close_code))
		return EX_UNAVAILABLE;
	return 0;
}

/* The connection failed or ended: refuse to go on, or schedule the next attempt. */
static void sub_lost(struct subscriber *s, const char *err, int http_status)
{
	char reason[320];
	unsigned int delay;
	int refused;
	char conceal;

	s->wsi = NULL;
	s->len = 0;
	if (s->status != SUB_CONTINUE || s->interrupted || s->retry_pending)
		return;
	loss_reason(s, err, reason, sizeof reason);
	s->up = 0;
	if (http_status >= 400 && http_status < 500)
		snprintf(reason, sizeof reason, "HTTP status %d", http_status);
	if (s->tls && (s->cert_rejected || (err && strstr(err, "cert didn't look good")))) {
		log_error("chat-listen", "cannot connect url=%s reason=\"TLS: the server's certificate "
			  "is not trusted: %s\" hint=\"--cacert FILE trusts the authority that signed "
			  "it, -k skips the check\"", s->display,
			  cert_error[0] ? cert_error : "verification failed");
		s->status = EX_UNAVAILABLE;
		return;
	}
	if ((refused = refusal_status(s->close_code, http_status))) {
		log_error("chat-listen", "server refused the subscription url=%s reason=\"%s\"%s",
			  s->display, reason,
			  !s->auth && (s->close_code == CLOSE_UNAUTHORIZED || http_status == 401)
				  ? " hint=\"no token was given (--token, $CHAT_TOKEN)\"" : "");
		s->status = refused;
		return;
	}
	delay = lws_retry_get_delay_ms(s->ctx, &s->policy, &s->retries, &conceal);
	if (!s->in_outage && s->verbosity >= SUB_NORMAL)
		log_warn("chat-listen", "%s url=%s reason=\"%s\"",
			 s->was_connected ? "connection lost, reconnecting" : "cannot connect, retrying",
			 s->display, reason);
	else if (s->verbosity >= SUB_VERBOSE)
		log_info("chat-listen", "retrying in %u ms url=%s reason=\"%s\"", delay, s->display,
			 reason);
	s->in_outage = 1;
	s->close_code = 0;
	s->retry_pending = 1;
	lws_sul_schedule(s->ctx, 0, &s->retry_sul, sub_connect, (lws_usec_t)delay * LWS_US_PER_MS);
}

/* The subscription path with where to resume, asked afresh for each attempt: positions
 * move while connected. lws may keep ci.path until the handshake, so it lives in s. */
static int sub_make_path(struct subscriber *s)
{
	const char *q = s->hooks.query ? s->hooks.query(s->hooks.arg) : NULL;
	size_t len = strlen(s->path) + (q ? strlen(q) : 0) + 1;
	char *p = malloc(len);

	if (!p)
		return -1;
	snprintf(p, len, "%s%s", s->path, q ? q : "");
	free(s->conn_path);
	s->conn_path = p;
	return 0;
}

static void sub_connect(lws_sorted_usec_list_t *sul)
{
	struct subscriber *s = lws_container_of(sul, struct subscriber, retry_sul);
	struct lws_client_connect_info ci;

	s->retry_pending = 0;
	s->cert_rejected = 0;
	cert_error[0] = '\0';
	if (sub_make_path(s)) {
		log_error("chat-listen", "out of memory");
		s->status = EX_SOFTWARE;
		return;
	}
	memset(&ci, 0, sizeof ci);
	ci.context = s->ctx;
	ci.address = s->host;
	ci.port = s->port;
	ci.ssl_connection = !s->tls ? 0
			    : s->insecure ? LCCSCF_USE_SSL | LCCSCF_ALLOW_SELFSIGNED |
						    LCCSCF_SKIP_SERVER_CERT_HOSTNAME_CHECK |
						    LCCSCF_ALLOW_EXPIRED | LCCSCF_ALLOW_INSECURE
					  : LCCSCF_USE_SSL;
	ci.path = s->conn_path;
	ci.host = s->host_header;
	ci.origin = s->origin; /* as is (LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN) */
	ci.local_protocol_name = "chat-listen";
	ci.retry_and_idle_policy = &s->policy;
	ci.pwsi = &s->wsi;
	if (s->verbosity >= SUB_VERBOSE)
		log_info("chat-listen", "connecting url=%s%s", s->display,
			 s->conn_path + strlen(s->path));
	if (!lws_client_connect_via_info(&ci))
		sub_lost(s, "cannot start a connection", 0);
}

static void sub_connected(struct subscriber *s)
{
	if (s->verbosity >= SUB_VERBOSE)
		log_info("chat-listen", "subscribed url=%s", s->display);
	s->retries = 0;
	s->in_outage = 0;
	s->was_connected = 1;
	s->close_code = 0;
	s->up = 1;
	s->heard = lws_now_usecs();
}

/* The token, in the handshake lws is writing at *p (up to end). */
static int sub_add_auth(struct subscriber *s, struct lws *wsi, unsigned char **p,
			unsigned char *end)
{
	if (!s->auth)
		return 0;
	if (lws_add_http_header_by_token(wsi, WSI_TOKEN_HTTP_AUTHORIZATION,
					 (const unsigned char *)s->auth, (int)strlen(s->auth), p, end)) {
		log_error("chat-listen", "the token does not fit in the handshake");
		return -1;
	}
	return 0;
}

/* Anything from the server proves it alive: put off the next ping. */
static void sub_heard(struct subscriber *s, struct lws *wsi)
{
	s->heard = lws_now_usecs();
	if (s->policy.secs_since_valid_hangup)
		lws_validity_confirmed(wsi);
}

/* Put a message together from however many pieces lws hands over, then pass it on. */
static void sub_receive(struct subscriber *s, struct lws *wsi, const char *in, size_t len)
{
	if (!s->oversize && s->len + len + 1 > s->cap) {
		size_t cap = s->cap ? s->cap : 4096;
		char *m;

		while (cap < s->len + len + 1)
			cap *= 2;
		m = s->len + len <= SUB_MAX_MESSAGE ? realloc(s->msg, cap) : NULL;
		if (m) {
			s->msg = m;
			s->cap = cap;
		} else {
			s->oversize = 1;
		}
	}
	if (!s->oversize) {
		memcpy(s->msg + s->len, in, len);
		s->len += len;
	}
	if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi))
		return;
	if (s->oversize)
		log_warn("chat-listen", "dropped a message larger than %u MiB", SUB_MAX_MESSAGE >> 20);
	else if (!lws_frame_is_binary(wsi) && s->status == SUB_CONTINUE) {
		s->msg[s->len] = '\0';
		s->status = s->hooks.frame(s->hooks.arg, s->msg, s->len);
	}
	s->len = 0;
	s->oversize = 0;
}

static void sub_tick(lws_sorted_usec_list_t *sul)
{
	struct subscriber *s = lws_container_of(sul, struct subscriber, tick_sul);

	if (s->status == SUB_CONTINUE && s->hooks.tick)
		s->status = s->hooks.tick(s->hooks.arg);
	lws_sul_schedule(s->ctx, 0, &s->tick_sul, sub_tick, SUB_TICK_US);
}

static int sub_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
			size_t len)
{
	struct subscriber *s = lws_context_user(lws_get_context(wsi));
	const unsigned char *p = in;

	switch (reason) {
	case LWS_CALLBACK_CLIENT_APPEND_HANDSHAKE_HEADER:
		return sub_add_auth(s, wsi, in, *(unsigned char **)in + len);
	case LWS_CALLBACK_OPENSSL_PERFORM_SERVER_CERT_VERIFICATION:
		if (!len) /* preverify_ok: OpenSSL's verdict, which lws then keeps */
			s->cert_rejected = 1;
		break;
	case LWS_CALLBACK_CLIENT_ESTABLISHED:
		sub_connected(s);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE:
		sub_heard(s, wsi);
		sub_receive(s, wsi, in, len);
		break;
	case LWS_CALLBACK_CLIENT_RECEIVE_PONG:
		s->heard = lws_now_usecs(); /* lws itself counts the pong */
		break;
	case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
		s->close_code = len >= 2 ? p[0] << 8 | p[1] : LWS_CLOSE_STATUS_NO_STATUS;
		snprintf(s->close_reason, sizeof s->close_reason, "%.*s",
			 len > 2 ? (int)(len - 2) : 0, len > 2 ? (const char *)p + 2 : "");
		break;
	case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
		sub_lost(s, in ? in : "connection failed",
			 wsi ? lws_http_client_http_response(wsi) : 0);
		break;
	case LWS_CALLBACK_CLIENT_CLOSED:
		sub_lost(s, NULL, 0);
		break;
	default:
		break;
	}
	return 0;
}

static const struct lws_protocols sub_protocols[] = {
	{ "chat-listen", sub_callback, 0, 65536, 0, NULL, 0 },
	{ NULL, NULL, 0, 0, 0, NULL, 0 },
};

struct subscriber *sub_new(const struct url *server, const char *path,
			   const struct sub_options *o, const struct sub_hooks *hooks, char *err,
			   size_t errlen)
{
	struct lws_context_creation_info info;
	struct subscriber *s = calloc(1, sizeof *s);
	int v6 = strchr(server->host, ':') != NULL;
	size_t dlen = strlen(server->host) + strlen(path) + 32;

	if (!s || !(s->path = strdup(path)) || !(s->display = malloc(dlen)) ||
	    (o->token && !(s->auth = malloc(strlen(o->token) + sizeof "Bearer ")))) {
		sub_free(s);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	if (s->auth)
		sprintf(s->auth, "Bearer %s", o->token);
	s->hooks = *hooks;
	s->verbosity = o->verbosity;
	s->insecure = o->insecure;
	s->policy = retry_template;
	if (o->ping_secs) { /* lws wants hangup > ping; both zero turn the check off */
		s->policy.secs_since_valid_ping = (uint16_t)o->ping_secs;
		s->policy.secs_since_valid_hangup = (uint16_t)(2 * o->ping_secs);
	}
	s->status = SUB_CONTINUE;
	s->port = server->port;
	s->tls = url_is_tls(server);
	snprintf(s->host, sizeof s->host, "%s", server->host);
	snprintf(s->host_header, sizeof s->host_header, "%s%s%s:%d", v6 ? "[" : "", server->host,
		 v6 ? "]" : "", server->port);
	/* The server's own origin: chatd refuses a WebSocket from any other (4403), and
	 * https://H:P is another origin than http://H:P. */
	snprintf(s->origin, sizeof s->origin, "%s://%s", s->tls ? "https" : "http", s->host_header);
	snprintf(s->display, dlen, "%s://%s%s", s->tls ? "wss" : "ws", s->host_header, path);

	show_lws_log = o->verbosity >= SUB_VERBOSE;
	lws_set_log_level(LLL_ERR | (show_lws_log ? LLL_WARN : 0), sub_lws_log);
	memset(&info, 0, sizeof info);
	info.port = CONTEXT_PORT_NO_LISTEN;
	info.protocols = sub_protocols;
	info.user = s;
	info.gid = (gid_t)-1;
	info.uid = (uid_t)-1;
	info.fd_limit_per_thread = 8; /* one connection, not one table slot per possible fd */
	info.pt_serv_buf_size = SUB_HANDSHAKE_BUF;
	info.options = LWS_SERVER_OPTION_JUST_USE_RAW_ORIGIN;
	if (s->tls) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.client_ssl_ca_filepath = o->cacert; /* NULL: the system's authorities */
	}
	s->ctx = lws_create_context(&info);
	if (!s->ctx) {
		sub_free(s);
		snprintf(err, errlen, "cannot create the libwebsockets context");
		return NULL;
	}
	return s;
}

int sub_run(struct subscriber *s)
{
	sub_connect(&s->retry_sul);
	lws_sul_schedule(s->ctx, 0, &s->tick_sul, sub_tick, SUB_TICK_US);
	while (s->status == SUB_CONTINUE && !s->interrupted)
		if (lws_service(s->ctx, 0) < 0) {
			log_error("chat-listen", "the libwebsockets event loop failed");
			return EX_SOFTWARE;
		}
	return s->status == SUB_CONTINUE ? 0 : s->status;
}

void sub_interrupt(struct subscriber *s)
{
	s->interrupted = 1;
	if (s->ctx)
		lws_cancel_service(s->ctx);
}

void sub_free(struct subscriber *s)
{
	if (!s)
		return;
	s->interrupted = 1; /* no reconnect from the close callbacks destroying the context runs */
	if (s->ctx) {
		lws_sul_cancel(&s->retry_sul);
		lws_sul_cancel(&s->tick_sul);
		lws_context_destroy(s->ctx);
	}
	free(s->msg);
	free(s->path);
	free(s->conn_path);
	free(s->display);
	free(s->auth);
	free(s);
}
