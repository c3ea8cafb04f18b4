/* http.c: the HTTP side of chatd: the routes, POST bodies, and JSON answers.
 *
 *   GET  /          the chat page          POST /          {"chan":..,"msg":..}
 *   GET  /healthz   broker usable or not   POST /pub/NAME  raw body is the message
 *   GET  /history/NAME  stored messages    GET  /events    Server-Sent Events (sse.c)
 *
 * Every answer is written in LWS_CALLBACK_HTTP_WRITEABLE from a response prepared in the
 * per-request struct. A publish in flight is a separate object (http_pub) whose wsi is
 * cleared when the request goes away, so a late broker answer is harmless. */
#include <cjson/cJSON.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "cli.h"
#include "envelope.h"
#include "fmt.h"
#include "hub.h"
#include "log.h"
#include "server.h"
#include "sess.h"
#include "utf8.h"
#include "uvpoll.h"

extern const unsigned char chatd_page[];
extern const unsigned long chatd_page_len;

enum body_kind { BODY_NONE, BODY_JSON, BODY_RAW };

/* A request waiting on the broker (publish or history). */
struct http_wait {
	struct lws *wsi; /* NULL once the request is gone */
	struct http_req *req;
};

struct http_req {
	enum body_kind kind;
	char chan[CHAN_MAX + 1]; /* for /pub/NAME, then the channel published to */
	int64_t ts;
	int body_done; /* the body was handed on; lws may report completion again */
	int in_publish; /* inside hub_publish: a broker answering at once calls back here */
	int sync_ok;    /* the answer is a publish the broker took at once (memory) */
	int pipe_bound; /* a pipelined connection's wait for the broker is bounded */
	int head;      /* HEAD: headers only */
	char *body;
	size_t body_len, body_cap;
	uint64_t body_by; /* uv_now() by which the body must be in (HTTP_TIMEOUT_S) */
	struct http_wait *wait; /* a broker call in flight */
	/* the answer */
	int status;
	const char *ctype;
	char *resp; /* malloc'd, LWS_PRE spare bytes in front */
	size_t resp_len;
	const char *allow;
	int retry_after;
	int close_after;
	const char *www_auth; /* a 401's WWW-Authenticate */
	char origin[200];     /* a browser's allowed Origin, for CORS; "" if none */
	int preflight;        /* OPTIONS: answer CORS preflight headers */
	struct ws_sess *sse; /* GET /events: this request is an event stream */
};

size_t http_req_size(void)
{
	return sizeof(struct http_req);
}

static void http_req_reset(struct http_req *r)
{
	if (r->wait)
		r->wait->wsi = NULL; /* freed by its broker callback */
	if (r->sse)
		sse_free(r->sse);
	free(r->body);
	free(r->resp);
	memset(r, 0, sizeof *r);
}

static int http_write_answer(struct lws *wsi, struct http_req *r);

/* Prepare the answer; it goes out in the next HTTP_WRITEABLE callback. */
static void http_prepare(struct http_req *r, int status, const char *ctype, const void *body,
			 size_t len)
{
	free(r->resp);
	r->resp = malloc(LWS_PRE + len + 1);
	r->status = status;
	r->ctype = ctype;
	r->resp_len = r->resp ? len : 0;
	if (r->resp)
		memcpy(r->resp + LWS_PRE, body, len);
}

static void http_answer_raw(struct lws *wsi, struct http_req *r, int status, const char *ctype,
			    const void *body, size_t len)
{
	http_prepare(r, status, ctype, body, len);
	lws_callback_on_writable(wsi);
}

/* Answer with a JSON object; takes ownership of obj. */
static void http_answer_json(struct lws *wsi, struct http_req *r, int status, cJSON *obj)
{
	char *text = cJSON_PrintUnformatted(obj);
	size_t len = text ? strlen(text) : 0;

	http_answer_raw(wsi, r, status, "application/json", text ? text : "", len);
	cJSON_free(text);
	cJSON_Delete(obj);
}

/* The publish's answer, written at once, once the whole request is read: asking for a
 * writable callback first costs a loop turn and, through libuv's uv_poll_start, two
 * epoll_ctl calls each way (perf: 15% of chatd's time at 12,000 publishes/s). lws keeps
 * whatever the socket does not take and sends it when it can. */
static void http_answer_now(struct lws *wsi, struct http_req *r, int status, const char *text,
			    size_t len)
{
	int close;

	http_prepare(r, status, "application/json", text, len);
	close = r->close_after;
	if (!r->resp || http_write_answer(wsi, r)) {
		close = 1;
	}
	http_req_reset(r);
	if (!close) {
		/* lws asks for POLLOUT here, to learn that the socket it was just given an
		 * answer for can be written: owed, not asked of the kernel (uvpoll.c) */
		uvpoll_owe_begin();
		close = lws_http_transaction_completed(wsi);
		uvpoll_owe_end();
	}
	if (close)
		lws_set_timeout(wsi, PENDING_TIMEOUT_CLOSE_SEND, LWS_TO_KILL_ASYNC);
}

static void http_error(struct lws *wsi, struct http_req *r, int status, const char *err)
{
	cJSON *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "ok", 0);
	cJSON_AddStringToObject(o, "error", err);
	if (status >= 500)
		log_warn("http", "%d %s", status, err);
	else
		log_debug("http", "%d %s", status, err);
	http_answer_json(wsi, r, status, o);
}

/* Before a broker call: the object its callback gets. NULL (answered 500) when out of
 * memory. */
static struct http_wait *http_wait_start(struct lws *wsi, struct http_req *r)
{
	r->wait = malloc(sizeof *r->wait);
	if (!r->wait) {
		http_error(wsi, r, 500, "out of memory");
		return NULL;
	}
	r->wait->wsi = wsi;
	r->wait->req = r;
	return r->wait;
}

/* In a broker callback: the request's wsi, or NULL when the request is gone. Frees the
 * wait object either way. */
static struct lws *http_wait_end(struct http_wait *w)
{
	struct lws *wsi = w->wsi;

	if (wsi)
		w->req->wait = NULL;
	free(w);
	return wsi;
}

#define PUT(p, lit) (memcpy(p, lit, sizeof lit - 1), (p) + sizeof lit - 1)

/* {"ok":true,"chan":CHAN,"seq":N,"epoch":E,"ts":T} (with "duplicate":true for a repeated
 * idempotency key) at out; returns its length. */
static size_t http_published_text(char *out, const char *chan, const struct broker_pos *pos)
{
	size_t n = strlen(chan), e = strlen(pos->epoch);
	char *p = PUT(out, "{\"ok\":true,\"chan\":\"");

	memcpy(p, chan, n);
	p = PUT(p + n, "\",\"seq\":");
	p += fmt_u64(p, pos->seq);
	p = PUT(p, ",\"epoch\":\"");
	memcpy(p, pos->epoch, e);
	p = PUT(p + e, "\",\"ts\":");
	p += fmt_i64(p, pos->ts);
	if (pos->duplicate)
		p = PUT(p, ",\"duplicate\":true");
	*p++ = '}';
	return (size_t)(p - out);
}

#undef PUT

static void http_on_published(void *arg, const char *err, const struct broker_pos *pos)
{
	struct http_req *r = ((struct http_wait *)arg)->req;
	struct lws *wsi = http_wait_end(arg);

	if (!wsi)
		return;
	if (err && !pos) {
		char msg[300];
		snprintf(msg, sizeof msg, "message not acknowledged, try again: %s", err);
		r->retry_after = 1;
		http_error(wsi, r, 503, msg);
	} else if (err) {
		cJSON *o = cJSON_CreateObject();
		cJSON_AddBoolToObject(o, "ok", 0);
		cJSON_AddStringToObject(o, "error", err);
		cJSON_AddStringToObject(o, "chan", r->chan);
		cJSON_AddNumberToObject(o, "seq", (double)pos->seq);
		cJSON_AddStringToObject(o, "epoch", pos->epoch);
		cJSON_AddNumberToObject(o, "ts", (double)pos->ts);
		http_answer_json(wsi, r, 422, o);
	} else {
		/* the common answer, without building a JSON tree or calling snprintf (fmt.h):
		 * chan and epoch need no escaping (channel names and epochs are plain ASCII) */
		char text[CHAN_MAX + sizeof pos->epoch + 2 * FMT_INT_MAX + 80];
		size_t len = http_published_text(text, r->chan, pos);

		if (r->in_publish) {
			/* the broker answered at once (memory), inside lws's body callback:
			 * completing the transaction here makes lws 4.1.6 spin for good when a
			 * pipelined request's bytes are in its buffer. The writable callback. */
			http_answer_raw(wsi, r, 200, "application/json", text, len);
			r->sync_ok = 1;
		} else {
			http_answer_now(wsi, r, 200, text, len);
		}
	}
}

/* May this request publish to (publish = 1) or read chan? 0 to go on (with the user's
 * name in sender, when given), else the 401 or 403 answer is prepared. */
static int http_authorize(struct lws *wsi, struct http_req *r, int publish, const char *chan,
			  const char *body_token, char *sender)
{
	struct auth_grant g;
	char err[300];
	int rc = authz_request(wsi, body_token, publish, &chan, 1, &g, err, sizeof err);

	if (!rc) {
		if (sender)
			fmt_str(sender, ENV_SENDER_MAX + 1, g.name);
		auth_grant_free(&g);
		return 0;
	}
	if (rc == 401)
		r->www_auth = strncmp(err, "invalid", 7) ? "Bearer realm=\"chatd\""
							: "Bearer realm=\"chatd\", error=\"invalid_token\"";
	http_error(wsi, r, rc, err);
	return -1;
}

/* Within --publish-rate? 0 to go on, else the 429 is prepared. */
static int http_rate(struct lws *wsi, struct http_req *r, const char *user)
{
	char who[ENV_SENDER_MAX + 52], msg[200];
	double wait;

	if (!server_of(wsi)->cfg->publish_rate)
		return 0; /* no limit: not even the peer's address to look up (a syscall) */
	if (user[0])
		snprintf(who, sizeof who, "u:%s", user);
	else {
		char ip[48];
		limits_peer(wsi, ip);
		snprintf(who, sizeof who, "a:%s", ip);
	}
	if (!limits_publish(server_of(wsi), who, &wait))
		return 0;
	r->retry_after = (int)wait + 1;
	snprintf(msg, sizeof msg, "rate limited: at most %g messages a second (burst %g); try again in %.1f s",
		 server_of(wsi)->cfg->publish_rate, server_of(wsi)->cfg->publish_burst, wait);
	http_error(wsi, r, 429, msg);
	return -1;
}

/* The whole body is in: decode it and hand the envelope to the broker. */
static void http_publish(struct lws *wsi, struct http_req *r)
{
	struct env_pub pub;
	const char *down;
	char err[300];
	int rc, klen;

	r->body_done = 1;
	if (r->kind == BODY_RAW)
		rc = env_pub_text(r->chan, strlen(r->chan), r->body ? r->body : "", r->body_len, &pub,
				  err, sizeof err);
	else
		rc = env_pub_parse(r->body ? r->body : "", r->body_len, NULL, &pub, err, sizeof err);
	if (!rc && (klen = lws_hdr_custom_length(wsi, "idempotency-key:", 16)) >= 0) {
		char key[ENV_KEY_MAX + 2] = "";
		if (klen > ENV_KEY_MAX ||
		    lws_hdr_custom_copy(wsi, key, sizeof key, "idempotency-key:", 16) < 0)
			klen = ENV_KEY_MAX + 1; /* too long: env_pub_set_key says so */
		rc = env_pub_set_key(&pub, key, (size_t)klen, err, sizeof err);
		if (rc)
			env_pub_free(&pub);
	}
	if (rc) {
		http_error(wsi, r, 400, err);
		return;
	}
	if (http_authorize(wsi, r, 1, pub.chan, pub.token, pub.sender) || http_rate(wsi, r, pub.sender) ||
	    !http_wait_start(wsi, r)) {
		env_pub_free(&pub);
		return;
	}
	strcpy(r->chan, pub.chan);
	r->ts = env_now_ms();
	r->in_publish = 1;
	rc = hub_publish(server_of(wsi), &pub, r->ts, http_on_published, r->wait, &down);
	r->in_publish = 0;
	env_pub_free(&pub);
	if (rc) {
		free(r->wait);
		r->wait = NULL;
		r->retry_after = 1;
		snprintf(err, sizeof err, "message not accepted, try again: %s", down);
		http_error(wsi, r, 503, err);
	}
}

static void http_on_history(void *arg, const char *err, const struct broker_history *h)
{
	struct http_req *r = ((struct http_wait *)arg)->req;
	struct lws *wsi = http_wait_end(arg);
	size_t cap = 256, len;
	char *out;

	if (!wsi)
		return; /* the request is gone */
	if (err) {
		char msg[300];
		snprintf(msg, sizeof msg, "history not available, try again: %s", err);
		r->retry_after = 1;
		http_error(wsi, r, 503, msg);
		return;
	}
	for (size_t i = 0; i < h->n; i++)
		cap += h->lens[i] + 1;
	out = malloc(cap + strlen(h->epoch));
	if (!out) {
		http_error(wsi, r, 500, "out of memory");
		return;
	}
	/* The stored envelopes are JSON already: concatenated, not re-encoded. */
	len = (size_t)sprintf(out, "{\"ok\":true,\"chan\":\"%s\",\"epoch\":\"%s\",\"first\":%llu,\"last\":%llu,\"messages\":[",
			      r->chan, h->epoch, (unsigned long long)h->first, (unsigned long long)h->last);
	for (size_t i = 0; i < h->n; i++) {
		if (i)
			out[len++] = ',';
		memcpy(out + len, h->envs[i], h->lens[i]);
		len += h->lens[i];
	}
	len += (size_t)sprintf(out + len, "]}");
	http_answer_raw(wsi, r, 200, "application/json", out, len);
	free(out);
}

/* GET /history/NAME?since=SEQ&limit=N */
static void http_history(struct lws *wsi, struct http_req *r, const char *chan)
{
	struct server *srv = server_of(wsi);
	const char *why = chan_check(chan, strlen(chan));
	char arg[40], msg[200];
	long since = 0, limit = 100;
	const char *v;

	if (why) {
		snprintf(msg, sizeof msg, "invalid channel name in path: %s", why);
		http_error(wsi, r, 400, msg);
		return;
	}
	if (((v = lws_get_urlarg_by_name(wsi, "since=", arg, sizeof arg)) &&
	     cli_parse_count(v, 0x7fffffffffffffffL, &since)) ||
	    ((v = lws_get_urlarg_by_name(wsi, "limit=", arg, sizeof arg)) &&
	     (cli_parse_count(v, 1000, &limit) || limit < 1))) {
		http_error(wsi, r, 400, "since must be a sequence number (0 or more) and limit a count from 1 to 1000");
		return;
	}
	if (http_authorize(wsi, r, 0, chan, NULL, NULL))
		return;
	why = srv->broker ? broker_status(srv->broker) : "server shutting down";
	if (why) {
		snprintf(msg, sizeof msg, "history not available, try again: %s", why);
		r->retry_after = 1;
		http_error(wsi, r, 503, msg);
		return;
	}
	if (!http_wait_start(wsi, r))
		return;
	strcpy(r->chan, chan);
	broker_history(srv->broker, chan, (uint64_t)since, (size_t)limit, http_on_history, r->wait);
}

static void http_health(struct lws *wsi, struct http_req *r)
{
	struct server *srv = server_of(wsi);
	const char *down = srv->broker ? broker_status(srv->broker) : "server shutting down";
	cJSON *o = cJSON_CreateObject();

	cJSON_AddBoolToObject(o, "ok", !down);
	cJSON_AddStringToObject(o, "broker", srv->broker ? srv->broker->name : "none");
	if (down)
		cJSON_AddStringToObject(o, "error", down);
	cJSON_AddNumberToObject(o, "websockets", srv->nsessions - srv->nsse);
	cJSON_AddNumberToObject(o, "sse", srv->nsse);
	cJSON_AddNumberToObject(o, "connections", srv->limits.nconns);
	cJSON_AddNumberToObject(o, "channels", (double)srv->chans.len);
	if (down)
		r->retry_after = 1;
	http_answer_json(wsi, r, down ? 503 : 200, o);
}

static void http_method_not_allowed(struct lws *wsi, struct http_req *r, const char *allow,
				    const char *path)
{
	char msg[200];

	char shown[100];

	snprintf(msg, sizeof msg, "method not allowed on %s; use %s",
		 utf8_printable(shown, sizeof shown, path, strlen(path)), allow);
	r->allow = allow;
	http_error(wsi, r, 405, msg);
}

/* The Content-Length header's value: digits only (RFC 9110: no sign, no space inside),
 * in one header (lws_hdr_copy joins repeated ones with a comma); more than 18 digits
 * read as ULLONG_MAX. 0, or -1 when it is anything else, which lws would have read with
 * atoll(). */
static int parse_content_length(const char *cl, unsigned long long *n)
{
	size_t i;

	for (i = 0; cl[i]; i++)
		if (cl[i] < '0' || cl[i] > '9')
			return -1;
	if (!i)
		return -1;
	*n = i > 18 ? ULLONG_MAX : strtoull(cl, NULL, 10);
	return 0;
}

/* Checks before a POST body is read. Returns 0 to read the body, or -1 when an error
 * answer was prepared instead. */
static int http_expect_body(struct lws *wsi, struct http_req *r)
{
	size_t max = server_of(wsi)->cfg->max_message;
	char cl[32], msg[200];
	unsigned long long n;

	if (lws_hdr_copy(wsi, cl, sizeof cl, WSI_TOKEN_HTTP_CONTENT_LENGTH) <= 0) {
		http_error(wsi, r, 411, "a POST needs a Content-Length header (chunked bodies are not accepted)");
		r->close_after = 1;
		return -1;
	}
	if (parse_content_length(cl, &n)) {
		/* lws took what atoll() made of it: the body would be read as the next request */
		http_error(wsi, r, 400, "Content-Length must be one decimal number of bytes");
		r->close_after = 1;
		return -1;
	}
	if (n > max) {
		snprintf(msg, sizeof msg, "body is %s bytes; the limit is %zu (chatd --max-message)", cl, max);
		http_error(wsi, r, 413, msg);
		r->close_after = 1;
		return -1;
	}
	r->body_cap = (size_t)n;
	r->body_by = uv_now(server_of(wsi)->loop) + HTTP_TIMEOUT_S * 1000;
	r->body = malloc(r->body_cap + 1);
	if (!r->body) {
		http_error(wsi, r, 500, "out of memory");
		r->close_after = 1;
		return -1;
	}
	return 0;
}

static int http_on_request(struct lws *wsi, struct http_req *r, const char *path)
{
	char *uri;
	int ulen, method = lws_http_get_uri_and_method(wsi, &uri, &ulen);
	char msg[300];

	http_req_reset(r);
	if (method == LWSHUMETH_HEAD) { /* as GET, without the body */
		r->head = 1;
		method = LWSHUMETH_GET;
	}
	if (method == LWSHUMETH_POST && lws_hdr_total_length(wsi, WSI_TOKEN_HTTP_TRANSFER_ENCODING) > 0) {
		/* No chunked bodies, and no Content-Length trusted next to a Transfer-Encoding. */
		http_error(wsi, r, 411, "a POST needs a Content-Length header (chunked bodies are not accepted)");
		r->close_after = 1;
		return 0;
	}
	if (authz_origin(wsi, r->origin, sizeof r->origin)) {
		char shown[80];
		snprintf(msg, sizeof msg, "origin %s is not allowed here (chatd --allow-origin)",
			 utf8_printable(shown, sizeof shown, r->origin, strlen(r->origin)));
		r->origin[0] = '\0';
		http_error(wsi, r, 403, msg);
		r->close_after = method == LWSHUMETH_POST;
		return 0;
	}
	if (method == LWSHUMETH_OPTIONS) { /* a CORS preflight */
		r->preflight = 1;
		http_answer_raw(wsi, r, 204, "text/plain", "", 0);
		return 0;
	}
	if (!strcmp(path, "/")) {
		if (method == LWSHUMETH_GET)
			http_answer_raw(wsi, r, 200, "text/html; charset=utf-8", chatd_page, chatd_page_len);
		else if (method == LWSHUMETH_POST) {
			r->kind = BODY_JSON;
			http_expect_body(wsi, r);
		} else
			http_method_not_allowed(wsi, r, "GET, HEAD, POST", path);
	} else if (!strcmp(path, "/metrics")) {
		if (method == LWSHUMETH_GET) {
			size_t mlen;
			char *text = metrics_render(server_of(wsi), &mlen);
			if (text)
				http_answer_raw(wsi, r, 200, "text/plain; version=0.0.4; charset=utf-8", text, mlen);
			else
				http_error(wsi, r, 500, "out of memory");
			free(text);
		} else
			http_method_not_allowed(wsi, r, "GET, HEAD", path);
	} else if (!strcmp(path, "/healthz")) {
		if (method == LWSHUMETH_GET)
			http_health(wsi, r);
		else
			http_method_not_allowed(wsi, r, "GET, HEAD", path);
	} else if (!strncmp(path, "/history/", 9)) {
		if (method == LWSHUMETH_GET)
			http_history(wsi, r, path + 9);
		else
			http_method_not_allowed(wsi, r, "GET, HEAD", path);
	} else if (!strncmp(path, "/pub/", 5)) {
		const char *why = chan_check(path + 5, strlen(path + 5));
		if (method != LWSHUMETH_POST)
			http_method_not_allowed(wsi, r, "POST", path);
		else if (why) {
			snprintf(msg, sizeof msg, "invalid channel name in path: %s", why);
			http_error(wsi, r, 400, msg);
			r->close_after = 1;
		} else {
			r->kind = BODY_RAW;
			strcpy(r->chan, path + 5);
			http_expect_body(wsi, r);
		}
	} else if (!strcmp(path, "/events") || !strncmp(path, "/events/", 8)) {
		if (method != LWSHUMETH_GET || r->head)
			http_method_not_allowed(wsi, r, "GET", path);
		else if (!(r->sse = sse_open(wsi, &ulen, msg, sizeof msg))) {
			if (ulen == 401)
				r->www_auth = "Bearer realm=\"chatd\"";
			http_error(wsi, r, ulen, msg);
		}
	} else if (!strcmp(path, "/ws") || !strncmp(path, "/ws/", 4)) {
		http_error(wsi, r, 426, "this is the WebSocket endpoint: connect with a WebSocket client");
	} else {
		char shown[100];
		snprintf(msg, sizeof msg, "no such endpoint: %s (see chat-protocol(7))",
			 utf8_printable(shown, sizeof shown, path, strlen(path)));
		http_error(wsi, r, 404, msg);
	}
	if (r->close_after || (method == LWSHUMETH_POST && r->kind == BODY_NONE))
		r->close_after = 1; /* an unread body must not be taken for the next request */
	return 0;
}

static int http_on_body(struct lws *wsi, struct http_req *r, const char *in, size_t len)
{
	if (r->kind == BODY_NONE || r->status)
		return 0; /* already answered (error): discard */
	if (uv_now(server_of(wsi)->loop) > r->body_by) {
		/* lws' own timeout restarts with every byte: a body sent slowly, but never
		 * stopping, would hold the connection (and its buffer) for ever */
		char msg[80];

		snprintf(msg, sizeof msg, "the body did not arrive within %d s of the headers", HTTP_TIMEOUT_S);
		http_error(wsi, r, 408, msg);
		r->close_after = 1;
		return 0;
	}
	if (len > r->body_cap - r->body_len)
		len = r->body_cap - r->body_len; /* more than Content-Length said: ignore the excess */
	memcpy(r->body + r->body_len, in, len);
	r->body_len += len;
	return 0;
}


/* Write the prepared answer: headers, then the body unless it is a HEAD. A small body
 * goes in the same send() as the headers: one TCP segment, so the client wakes once. */
#define HTTP_HEAD_MAX 512
#define HTTP_SMALL_BODY 1024

static int http_write_answer(struct lws *wsi, struct http_req *r)
{
	unsigned char hdr[LWS_PRE + HTTP_HEAD_MAX + HTTP_SMALL_BODY];
	unsigned char *start = hdr + LWS_PRE, *p = start, *end = start + HTTP_HEAD_MAX - 1;
	char num[16];

	if (lws_add_http_common_headers(wsi, (unsigned)r->status, r->ctype, r->resp_len, &p, end))
		return -1;
	if (r->allow && lws_add_http_header_by_name(wsi, (const unsigned char *)"allow:",
						     (const unsigned char *)r->allow, (int)strlen(r->allow), &p, end))
		return -1;
	if (r->www_auth && lws_add_http_header_by_name(wsi, (const unsigned char *)"www-authenticate:",
						     (const unsigned char *)r->www_auth, (int)strlen(r->www_auth), &p, end))
		return -1;
	if (r->origin[0] && authz_cors_headers(wsi, r->origin, r->preflight, &p, end))
		return -1;
	if (r->retry_after) {
		int n = snprintf(num, sizeof num, "%d", r->retry_after);
		if (lws_add_http_header_by_name(wsi, (const unsigned char *)"retry-after:",
						(const unsigned char *)num, n, &p, end))
			return -1;
	}
	if (lws_add_http_header_by_name(wsi, (const unsigned char *)"cache-control:",
					(const unsigned char *)"no-store", 8, &p, end))
		return -1;
	if (r->close_after &&
	    lws_add_http_header_by_token(wsi, WSI_TOKEN_CONNECTION, (const unsigned char *)"close", 5, &p, end))
		return -1;
	if (r->head || r->resp_len <= HTTP_SMALL_BODY) {
		if (lws_finalize_http_header(wsi, &p, end))
			return -1;
		if (!r->head) {
			memcpy(p, r->resp + LWS_PRE, r->resp_len);
			p += r->resp_len;
		}
		return lws_write(wsi, start, (size_t)(p - start), LWS_WRITE_HTTP_HEADERS) < 0 ? -1 : 0;
	}
	if (lws_finalize_write_http_header(wsi, start, &p, end))
		return -1;
	if (lws_write(wsi, (unsigned char *)r->resp + LWS_PRE, r->resp_len, LWS_WRITE_HTTP_FINAL) < 0)
		return -1;
	return 0;
}

static int http_on_writable(struct lws *wsi, struct http_req *r)
{
	if (r->sse)
		return sse_writable(r->sse, wsi, r->origin);
	if (!r->status)
		return 0;
	if (http_write_answer(wsi, r))
		return -1;
	if (r->close_after) {
		http_req_reset(r);
		return -1;
	}
	http_req_reset(r);
	return lws_http_transaction_completed(wsi) ? -1 : 0;
}

int http_callback(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
		  size_t len)
{
	struct http_req *r = user;

	switch (reason) {
	case LWS_CALLBACK_FILTER_NETWORK_CONNECTION: /* in: the new socket, on the listener's wsi */
		if (server_of(wsi)->draining)
			return -1; /* stop accepting while shutting down */
		return limits_conn_open(server_of(wsi), (int)(lws_intptr_t)in);
	case LWS_CALLBACK_WSI_CREATE: /* right after: the wsi of the connection just let in */
		limits_conn_bind(server_of(wsi), wsi);
		return 0;
	case LWS_CALLBACK_WSI_DESTROY:
		limits_conn_close(server_of(wsi), wsi);
		return 0;
	case LWS_CALLBACK_HTTP:
		return http_on_request(wsi, r, in);
	case LWS_CALLBACK_HTTP_BODY:
		return http_on_body(wsi, r, in, len);
	case LWS_CALLBACK_HTTP_BODY_COMPLETION:
		/* lws 4.1.6 hands a pipelined request's bytes over as a body of the one before,
		 * then reports completion again and again: refuse pipelining by closing, but
		 * only once the first request is answered (it may be a publish that is being
		 * stored): write an answer the broker already gave and close; or stop reading
		 * and close after the answer. lws polls this connection without sleeping until
		 * then: a broker round trip, and at most a second (then the connection closes
		 * unanswered, as with a lost answer). */
		if (r->body_done && r->sync_ok && r->status) {
			r->close_after = 1;
			http_write_answer(wsi, r);
			http_req_reset(r);
			return -1;
		}
		if (r->body_done && r->wait) {
			r->close_after = 1;
			lws_rx_flow_control(wsi, 0);
			if (!r->pipe_bound) {
				r->pipe_bound = 1;
				lws_set_timeout(wsi, PENDING_TIMEOUT_HTTP_CONTENT, 1);
			}
			return 0;
		}
		if (r->body_done || (r->kind == BODY_NONE && !r->status))
			return -1;
		if (r->kind != BODY_NONE && !r->status)
			http_publish(wsi, r);
		return 0;
	case LWS_CALLBACK_HTTP_WRITEABLE:
		return http_on_writable(wsi, r);
	case LWS_CALLBACK_TIMER:
		return r && r->sse ? sse_timer(r->sse, wsi) : 0;
	case LWS_CALLBACK_HTTP_DROP_PROTOCOL:
	case LWS_CALLBACK_CLOSED_HTTP:
		if (r)
			http_req_reset(r);
		return 0;
	default:
		return lws_callback_http_dummy(wsi, reason, user, in, len);
	}
}
