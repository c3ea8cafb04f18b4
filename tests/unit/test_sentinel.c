/* test_sentinel.c: the Sentinel resolver, without real sentinels.
 *
 * The parsers are pure functions. The resolver and the subscriber are driven against fake
 * sentinels in this process: libuv TCP servers that answer get-master-addr-by-name with
 * canned RESP (or stay silent), confirm SUBSCRIBE, and push +switch-master messages when
 * the test says so. A port that is bound but not listening stands for a sentinel that is
 * down (connection refused). The tests against real redis-server sentinels, with a real
 * failover, use tests/sentinel.bash. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

#include "sentinel.h"
#include "tap.h"

/* ---- sentinel_parse_addrs ---- */

static void test_parse_addrs(void)
{
	static const struct {
		const char *in;
		int n;
		const char *host0;
		int port0;
		const char *hostlast;
		int portlast;
	} ok[] = {
		{ "127.0.0.1:26379", 1, "127.0.0.1", 26379, "127.0.0.1", 26379 },
		{ "a:1,b:2,c:3", 3, "a", 1, "c", 3 },
		{ "sentinel.example", 1, "sentinel.example", SENTINEL_DEFAULT_PORT, "sentinel.example",
		  SENTINEL_DEFAULT_PORT },
		{ " a:1 , b ", 2, "a", 1, "b", SENTINEL_DEFAULT_PORT },
		{ "[::1]:5000,[2001:db8::1]", 2, "::1", 5000, "2001:db8::1", SENTINEL_DEFAULT_PORT },
		{ ":5000", 1, "127.0.0.1", 5000, "127.0.0.1", 5000 },
		{ "a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9,a:10,a:11,a:12,a:13,a:14,a:15,a:16", 16, "a", 1,
		  "a", 16 },
	};
	static const struct {
		const char *what, *in, *err;
	} bad[] = {
		{ "empty list", "", "empty sentinel address in \"\"" },
		{ "empty entry", "a:1,,b:2", "empty sentinel address in \"a:1,,b:2\"" },
		{ "trailing comma", "a:1,", "empty sentinel address" },
		{ "blank entry", "a:1, ,b:2", "empty sentinel address" },
		{ "port 0", "a:0", "bad sentinel address \"a:0\": bad port \"0\"" },
		{ "port abc", "a:1,b:abc", "bad sentinel address \"b:abc\": bad port \"abc\"" },
		{ "IPv6 without brackets", "::1:5", "IPv6 addresses need brackets" },
		{ "17 sentinels",
		  "a:1,a:2,a:3,a:4,a:5,a:6,a:7,a:8,a:9,a:10,a:11,a:12,a:13,a:14,a:15,a:16,a:17",
		  "more than 16 sentinels" },
	};
	struct sentinel_addr a[SENTINEL_MAX_ADDRS];

	for (size_t i = 0; i < TAP_ARRAY_LEN(ok); i++) {
		char err[256] = "";
		int n = sentinel_parse_addrs(ok[i].in, a, SENTINEL_MAX_ADDRS, err, sizeof err);
		if (!tap_long_eq(n, ok[i].n, "parse_addrs \"%s\": count", ok[i].in)) {
			tap_diag_str("err", err);
			continue;
		}
		tap_str_eq(a[0].host, ok[i].host0, "parse_addrs \"%s\": first host", ok[i].in);
		tap_long_eq(a[0].port, ok[i].port0, "parse_addrs \"%s\": first port", ok[i].in);
		tap_str_eq(a[n - 1].host, ok[i].hostlast, "parse_addrs \"%s\": last host", ok[i].in);
		tap_long_eq(a[n - 1].port, ok[i].portlast, "parse_addrs \"%s\": last port", ok[i].in);
	}
	for (size_t i = 0; i < TAP_ARRAY_LEN(bad); i++) {
		char err[256] = "";
		if (tap_long_eq(sentinel_parse_addrs(bad[i].in, a, SENTINEL_MAX_ADDRS, err, sizeof err),
				-1, "parse_addrs refuses %s", bad[i].what))
			tap_str_has(err, bad[i].err, "parse_addrs %s: reason", bad[i].what);
	}
}

/* ---- sentinel_parse_switch ---- */

static void test_parse_switch(void)
{
	static const struct {
		const char *payload, *master;
		int want;
		const char *host;
		int port;
	} cases[] = {
		{ "mymaster 127.0.0.1 6379 127.0.0.1 6380", "mymaster", 1, "127.0.0.1", 6380 },
		{ "mymaster 10.0.0.1 6379 ::1 7000", "mymaster", 1, "::1", 7000 },
		{ "my master 10.0.0.1 1 10.0.0.2 2", "my master", 1, "10.0.0.2", 2 },
		{ "other 127.0.0.1 6379 127.0.0.1 6380", "mymaster", 0, NULL, 0 },
		{ "mymaster 127.0.0.1 6379 127.0.0.1 6380", "my", 0, NULL, 0 },
		{ "my 127.0.0.1 6379 127.0.0.1 6380", "mymaster", 0, NULL, 0 },
		{ "", "mymaster", -1, NULL, 0 },
		{ "mymaster", "mymaster", -1, NULL, 0 },
		{ "mymaster 1.1.1.1 1 2.2.2.2", "mymaster", -1, NULL, 0 },
		{ "1.1.1.1 1 2.2.2.2 2", "mymaster", -1, NULL, 0 },
		{ " 1.1.1.1 1 2.2.2.2 2", "mymaster", -1, NULL, 0 },
		{ "mymaster 1.1.1.1 1 2.2.2.2 2 ", "mymaster", -1, NULL, 0 },
		{ "mymaster 1.1.1.1 1  2.2.2.2 2", "mymaster", -1, NULL, 0 },
		{ "mymaster 1.1.1.1 1 2.2.2.2 x", "mymaster", -1, NULL, 0 },
		{ "mymaster 1.1.1.1 1 2.2.2.2 70000", "mymaster", -1, NULL, 0 },
		{ "mymaster 1.1.1.1 one 2.2.2.2 2", "mymaster", -1, NULL, 0 },
	};

	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		char host[64] = "";
		int port = 0;
		int got = sentinel_parse_switch(cases[i].payload, cases[i].master, host, sizeof host,
						&port);
		tap_long_eq(got, cases[i].want, "parse_switch \"%s\" for \"%s\"", cases[i].payload,
			    cases[i].master);
		if (got == 1 && cases[i].want == 1) {
			tap_str_eq(host, cases[i].host, "parse_switch \"%s\": host", cases[i].payload);
			tap_long_eq(port, cases[i].port, "parse_switch \"%s\": port", cases[i].payload);
		}
	}
	{
		char host[4];
		int port;
		tap_long_eq(sentinel_parse_switch("m 1.1.1.1 1 2.2.2.2 2", "m", host, sizeof host, &port),
			    -1, "parse_switch refuses a host longer than the buffer");
	}
}

/* ---- sentinel_new's refusals ---- */

static void ignore_master(void *ud, const char *host, int port)
{
}

static void test_new_refuses(uv_loop_t *loop)
{
	static const struct {
		const char *what, *addrs, *master, *err;
	} cases[] = {
		{ "an empty master name", "127.0.0.1:1", "", "missing sentinel master name" },
		{ "no master name", "127.0.0.1:1", NULL, "missing sentinel master name" },
		{ "a bad address", "127.0.0.1:1,x:y", "m", "bad sentinel address \"x:y\": bad port \"y\"" },
		{ "no address", "", "m", "empty sentinel address in \"\"" },
	};
	char longname[300];

	for (size_t i = 0; i < TAP_ARRAY_LEN(cases); i++) {
		char err[256] = "";
		struct sentinel *s = sentinel_new(loop, cases[i].addrs, cases[i].master, ignore_master,
						  NULL, NULL, err, sizeof err);
		if (tap_ok(!s, "sentinel_new refuses %s", cases[i].what))
			tap_str_eq(err, cases[i].err, "sentinel_new %s: reason", cases[i].what);
		else
			sentinel_free(s);
	}
	memset(longname, 'm', sizeof longname - 1);
	longname[sizeof longname - 1] = '\0';
	{
		char err[256] = "";
		struct sentinel *s = sentinel_new(loop, "127.0.0.1:1", longname, ignore_master, NULL,
						  NULL, err, sizeof err);
		if (tap_ok(!s, "sentinel_new refuses a 299-byte master name"))
			tap_str_eq(err, "sentinel master name too long", "long master name: reason");
		else
			sentinel_free(s);
	}
}

/* ---- fake sentinels ---- */

struct fake_conn {
	uv_tcp_t tcp;
	struct fake *f;
};

struct fake {
	uv_tcp_t server;
	int port;
	int listening;
	const char *answer; /* RESP for get-master-addr-by-name; NULL: never answer */
	int asks;           /* get-master-addr-by-name commands received */
	int subscribes;     /* SUBSCRIBE commands received (the first, then liveness probes) */
	int *all_subscribes; /* the same, summed over fakes */
	struct fake_conn *subscriber;
};

struct wreq {
	uv_write_t req;
	char data[];
};

static void on_written(uv_write_t *req, int status)
{
	free(req);
}

static void fake_write(struct fake_conn *c, const char *data, size_t len)
{
	struct wreq *w = malloc(sizeof *w + len);
	uv_buf_t buf;

	memcpy(w->data, data, len);
	buf = uv_buf_init(w->data, (unsigned)len);
	uv_write(&w->req, (uv_stream_t *)&c->tcp, &buf, 1, on_written);
}

static void on_conn_closed(uv_handle_t *h)
{
	free(h->data);
}

static void fake_drop(struct fake_conn *c)
{
	if (c->f->subscriber == c)
		c->f->subscriber = NULL;
	uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
}

static void on_alloc(uv_handle_t *h, size_t hint, uv_buf_t *buf)
{
	static char mem[4096];
	*buf = uv_buf_init(mem, sizeof mem);
}

static const char subscribed_resp[] = "*3\r\n$9\r\nsubscribe\r\n$14\r\n+switch-master\r\n:1\r\n";

/* Commands are small and arrive whole on loopback; looking for the verb is enough. */
static void on_fake_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf)
{
	struct fake_conn *c = st->data;
	struct fake *f = c->f;

	if (nread < 0) {
		fake_drop(c);
		return;
	}
	if (memmem(buf->base, (size_t)nread, "get-master-addr-by-name", 23)) {
		f->asks++;
		if (f->answer)
			fake_write(c, f->answer, strlen(f->answer));
	}
	if (memmem(buf->base, (size_t)nread, "SUBSCRIBE", 9)) {
		f->subscribes++;
		if (f->all_subscribes)
			(*f->all_subscribes)++;
		f->subscriber = c;
		fake_write(c, subscribed_resp, sizeof subscribed_resp - 1);
	}
}

static void on_fake_connection(uv_stream_t *server, int status)
{
	struct fake *f = server->data;
	struct fake_conn *c = calloc(1, sizeof *c);

	c->f = f;
	uv_tcp_init(server->loop, &c->tcp);
	c->tcp.data = c;
	if (uv_accept(server, (uv_stream_t *)&c->tcp)) {
		uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
		return;
	}
	uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_fake_read);
}

/* listen 0: bound but not listening, so connections are refused: a sentinel that is down. */
static void fake_start(uv_loop_t *loop, struct fake *f, int listen, const char *answer)
{
	struct sockaddr_in sa;
	struct sockaddr_storage got;
	int len = sizeof got;

	memset(f, 0, sizeof *f);
	f->answer = answer;
	f->listening = listen;
	uv_tcp_init(loop, &f->server);
	f->server.data = f;
	uv_ip4_addr("127.0.0.1", 0, &sa);
	uv_tcp_bind(&f->server, (const struct sockaddr *)&sa, 0);
	uv_tcp_getsockname(&f->server, (struct sockaddr *)&got, &len);
	f->port = ntohs(((struct sockaddr_in *)&got)->sin_port);
	if (listen)
		uv_listen((uv_stream_t *)&f->server, 16, on_fake_connection);
}

static void fake_push_switch(struct fake *f, const char *payload)
{
	char msg[512];
	int n = snprintf(msg, sizeof msg, "*3\r\n$7\r\nmessage\r\n$14\r\n+switch-master\r\n$%zu\r\n%s\r\n",
			 strlen(payload), payload);
	fake_write(f->subscriber, msg, (size_t)n);
}

static void on_deadline(uv_timer_t *t)
{
	*(int *)t->data = 1;
}

/* Close the fakes, then let everything wind down: the resolver's connections close, so
 * the fakes' ends see EOF and close too. Checks that nothing is left running. */
static void finish(uv_loop_t *loop, struct fake *f, size_t n)
{
	uv_timer_t deadline;
	int expired = 0;

	for (size_t i = 0; i < n; i++)
		uv_close((uv_handle_t *)&f[i].server, NULL);
	uv_timer_init(loop, &deadline);
	deadline.data = &expired;
	uv_timer_start(&deadline, on_deadline, 2000, 0);
	uv_unref((uv_handle_t *)&deadline); /* fires, but does not keep the loop running */
	while (!expired && uv_run(loop, UV_RUN_ONCE))
		;
	tap_ok(!expired, "after sentinel_free, every connection and handle closes");
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
}

/* ---- what the resolver told us ---- */

struct seen {
	int masters, errors;
	char host[256], error[2048];
	int port;
	int free_on_error;
	struct sentinel *s;
};

static void on_master(void *ud, const char *host, int port)
{
	struct seen *w = ud;
	w->masters++;
	snprintf(w->host, sizeof w->host, "%s", host);
	w->port = port;
}

static void on_error(void *ud, const char *why)
{
	struct seen *w = ud;
	w->errors++;
	snprintf(w->error, sizeof w->error, "%s", why);
	if (w->free_on_error) {
		sentinel_free(w->s);
		w->s = NULL;
	}
}

/* Run the loop until *counter reaches want, or ms pass. Returns 1 when it did. */
static int wait_for(uv_loop_t *loop, const int *counter, int want, int ms)
{
	uv_timer_t deadline;
	int expired = 0;

	uv_timer_init(loop, &deadline);
	deadline.data = &expired;
	uv_timer_start(&deadline, on_deadline, (uint64_t)ms, 0);
	while (*counter < want && !expired)
		uv_run(loop, UV_RUN_ONCE);
	uv_close((uv_handle_t *)&deadline, NULL);
	uv_run(loop, UV_RUN_NOWAIT);
	return *counter >= want;
}

static const char nil_resp[] = "*-1\r\n";

static const char *addr_resp(char *buf, size_t len, const char *host, const char *port)
{
	snprintf(buf, len, "*2\r\n$%zu\r\n%s\r\n$%zu\r\n%s\r\n", strlen(host), host, strlen(port),
		 port);
	return buf;
}

/* Down, "unknown master", answers: the first answer wins and its sentinel is asked first
 * next time; switches for our master are reported, others ignored; a lost subscription
 * moves to another sentinel and re-resolves. */
static void test_resolve_and_switch(uv_loop_t *loop)
{
	struct fake f[3];
	struct seen w = { 0 };
	char addrs[200], err[256] = "", a2[100], a3[100];
	struct fake *sub;
	int subscribes = 0;

	fake_start(loop, &f[0], 0, NULL);
	fake_start(loop, &f[1], 1, nil_resp);
	fake_start(loop, &f[2], 1, addr_resp(a2, sizeof a2, "10.0.0.2", "6380"));
	f[1].all_subscribes = f[2].all_subscribes = &subscribes;
	snprintf(addrs, sizeof addrs, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", f[0].port, f[1].port,
		 f[2].port);
	w.s = sentinel_new(loop, addrs, "mymaster", on_master, on_error, &w, err, sizeof err);
	if (!tap_ok(w.s != NULL, "sentinel_new accepts three sentinels")) {
		tap_diag_str("err", err);
		finish(loop, f, 3);
		return;
	}
	tap_long_eq(w.masters + w.errors, 0, "no callback from inside sentinel_new");
	if (tap_ok(wait_for(loop, &w.masters, 1, 3000), "the third sentinel's answer is reported")) {
		tap_str_eq(w.host, "10.0.0.2", "master host");
		tap_long_eq(w.port, 6380, "master port");
	}
	tap_long_eq(w.errors, 0, "no error when one sentinel answers");
	tap_long_eq(f[1].asks, 1, "the sentinel that does not know the master was asked once");

	sentinel_resolve(w.s);
	tap_long_eq(w.masters, 1, "no callback from inside sentinel_resolve");
	if (tap_ok(wait_for(loop, &w.masters, 2, 3000), "a second resolve reports again, unchanged"))
		tap_str_eq(w.host, "10.0.0.2", "same host");
	tap_long_eq(f[2].asks, 2, "the sentinel that answered was asked again");
	tap_long_eq(f[1].asks, 1, "... first: the others were not");

	/* the subscriber skips the sentinel that is down */
	wait_for(loop, &subscribes, 1, 3000);
	sub = f[1].subscriber ? &f[1] : f[2].subscriber ? &f[2] : NULL;
	if (!tap_ok(sub != NULL, "subscribed to +switch-master on a sentinel that is up"))
		goto out;
	fake_push_switch(sub, "other 10.0.0.2 6380 10.0.0.9 6389");
	fake_push_switch(sub, "mymaster 10.0.0.2 6380 10.0.0.3 6381");
	if (tap_ok(wait_for(loop, &w.masters, 3, 3000), "+switch-master for our master is reported")) {
		tap_str_eq(w.host, "10.0.0.3", "switched host (the other master's switch was ignored)");
		tap_long_eq(w.port, 6381, "switched port");
	}
	wait_for(loop, &sub->subscribes, sub->subscribes + 1, 3000);
	tap_ok(sub->subscriber != NULL, "the subscription is probed and stays up");

	/* lose the subscription: another sentinel takes over, and a master that changed
	 * unheard is found by the resolve that follows */
	f[2].answer = addr_resp(a3, sizeof a3, "10.0.0.4", "6382");
	f[1].answer = f[2].answer;
	fake_drop(sub->subscriber);
	if (tap_ok(wait_for(loop, &w.masters, 4, 5000), "a change found after resubscribing is reported")) {
		tap_str_eq(w.host, "10.0.0.4", "host found after resubscribing");
		tap_long_eq(w.port, 6382, "port found after resubscribing");
	}
	tap_ok((f[1].subscriber != NULL) + (f[2].subscriber != NULL) == 1,
	       "subscribed again, on one sentinel");
	wait_for(loop, &w.errors, 1, 300);
	tap_long_eq(w.masters, 4, "no further reports");
	tap_long_eq(w.errors, 0, "no errors");
out:
	sentinel_free(w.s);
	sentinel_free(NULL);
	finish(loop, f, 3);
}

/* Nobody answers: refused, silent (the 1 s timeout), an error reply. One on_error names
 * every sentinel's reason; freeing from inside it is safe. */
static void test_all_fail(uv_loop_t *loop)
{
	struct fake f[3];
	struct seen w = { 0 };
	char addrs[200], err[256] = "", want[100];
	uint64_t t0;

	fake_start(loop, &f[0], 0, NULL);
	fake_start(loop, &f[1], 1, NULL);
	fake_start(loop, &f[2], 1, "-ERR boom\r\n");
	snprintf(addrs, sizeof addrs, "127.0.0.1:%d,127.0.0.1:%d,127.0.0.1:%d", f[0].port, f[1].port,
		 f[2].port);
	w.free_on_error = 1;
	uv_update_time(loop);
	t0 = uv_now(loop);
	w.s = sentinel_new(loop, addrs, "mymaster", on_master, on_error, &w, err, sizeof err);
	if (!tap_ok(w.s != NULL, "sentinel_new (nobody will answer)")) {
		finish(loop, f, 3);
		return;
	}
	if (tap_ok(wait_for(loop, &w.errors, 1, 4000), "on_error when no sentinel answers")) {
		tap_str_has(w.error, "no sentinel gave the address of master \"mymaster\" (",
			    "error: what failed");
		snprintf(want, sizeof want, "127.0.0.1:%d: cannot connect: Connection refused", f[0].port);
		tap_str_has(w.error, want, "error: the sentinel that is down");
		snprintf(want, sizeof want, "127.0.0.1:%d: no answer within 1 s", f[1].port);
		tap_str_has(w.error, want, "error: the silent sentinel");
		snprintf(want, sizeof want, "127.0.0.1:%d: ERR boom", f[2].port);
		tap_str_has(w.error, want, "error: the sentinel's error reply");
		tap_ok(uv_now(loop) - t0 >= 1000 && uv_now(loop) - t0 < 2500,
		       "the silent one cost about 1 s (%llu ms)", (unsigned long long)(uv_now(loop) - t0));
	}
	tap_long_eq(w.masters, 0, "no master reported");
	tap_ok(w.s == NULL, "freed from inside on_error");
	wait_for(loop, &w.errors, 2, 500);
	tap_long_eq(w.errors, 1, "nothing more after sentinel_free");
	finish(loop, f, 3);
}

/* A round that fails is retried by itself, and on_master ends the series. */
static void test_retry(uv_loop_t *loop)
{
	struct fake f;
	struct seen w = { 0 };
	char addrs[100], err[256] = "", a[100];

	fake_start(loop, &f, 1, nil_resp);
	snprintf(addrs, sizeof addrs, "127.0.0.1:%d", f.port);
	w.s = sentinel_new(loop, addrs, "mymaster", on_master, on_error, &w, err, sizeof err);
	if (tap_ok(wait_for(loop, &w.errors, 1, 2000), "a sentinel that does not know the master: on_error"))
		tap_str_has(w.error, "does not know master \"mymaster\"", "error: unknown master");
	f.answer = addr_resp(a, sizeof a, "10.0.0.7", "7000");
	if (tap_ok(wait_for(loop, &w.masters, 1, 3000), "retried until the sentinel knows it"))
		tap_long_eq(w.port, 7000, "port after the retry");
	sentinel_free(w.s);
	finish(loop, &f, 1);
}

int main(void)
{
	uv_loop_t loop;

	uv_loop_init(&loop);
	test_parse_addrs();
	test_parse_switch();
	test_new_refuses(&loop);
	test_resolve_and_switch(&loop);
	test_all_fail(&loop);
	test_retry(&loop);
	tap_long_eq(uv_loop_close(&loop), 0, "every handle closed");
	return tap_done();
}
