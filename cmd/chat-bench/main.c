/* chat-bench: load generator and meter for chatd.
 *
 * Opens S WebSocket subscribers on one channel, checks each one receives, publishes N
 * messages from P keep-alive HTTP publishers, then reports what arrived: lost, duplicated
 * and reordered messages, throughput and latency. Exit status 0 only when every accepted
 * message reached every subscriber and no post was refused. */
#include <curl/curl.h>
#include <getopt.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench.h"
#include "chan.h"
#include "cli.h"

#define EXIT_LOSS 1 /* the run completed, but messages were lost, refused or failed */

#define DEFAULT_CHAN "bench"
#define PROBE_EVERY_NS 200000000LL
#define PROGRESS_EVERY_NS 500000000LL

static void usage(FILE *f)
{
	fprintf(f,
		"usage: chat-bench [-u URL] [-c CHAN] [-s SUBSCRIBERS] [-n MESSAGES] [-p PUBLISHERS]\n"
		"                  [--size BYTES] [--timeout S] [--json] [-v]\n"
		"Measure a chatd server: S WebSocket subscribers on CHAN, N messages POSTed by P\n"
		"concurrent keep-alive publishers; report lost, duplicated and out-of-order messages,\n"
		"throughput and latency. Exits 1 when a message was lost or a post refused.\n"
		"\n"
		"  -u, --url URL            server base URL (default $CHAT_URL or %s)\n"
		"  -c, --chan CHAN          channel (default %s)\n"
		"  -s, --subscribers S      WebSocket subscribers (default 10)\n"
		"  -n, --messages N         messages to publish (default 1000)\n"
		"  -p, --publishers P       concurrent HTTP publishers (default 4)\n"
		"      --size BYTES         message length, e.g. 64, 4K (default 64)\n"
		"      --timeout S          seconds to wait for connections, for each post, and\n"
		"                           for deliveries after the last post (default 10)\n"
		"      --json               print one JSON object instead of the table\n"
		"  -v, --verbose            show libwebsockets warnings\n"
		"  -h, --help               this help\n"
		"      --version            print the version\n",
		CHAT_URL_DEFAULT, DEFAULT_CHAN);
}

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("chat-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

int64_t bench_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static long count_arg(const char *opt, const char *s, long min, long max)
{
	long v;

	if (cli_parse_count(s, max, &v) || v < min)
		die(EX_USAGE, "%s wants a number from %ld to %ld, not \"%s\"", opt, min, max, s);
	return v;
}

static void parse_args(int argc, char **argv, struct bench_opts *o)
{
	enum { OPT_SIZE = 256, OPT_TIMEOUT, OPT_JSON, OPT_VERSION };
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "chan", required_argument, NULL, 'c' },
		{ "subscribers", required_argument, NULL, 's' },
		{ "messages", required_argument, NULL, 'n' },
		{ "publishers", required_argument, NULL, 'p' },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 }
	};
	const char *why;
	char *end;
	int c;

	o->url = cli_env("CHAT_URL", CHAT_URL_DEFAULT);
	o->chan = DEFAULT_CHAN;
	o->subs = 10;
	o->msgs = 1000;
	o->pubs = 4;
	o->size = 64;
	o->timeout_s = 10;
	while ((c = getopt_long(argc, argv, "u:c:s:n:p:vh", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': o->url = optarg; break;
		case 'c': o->chan = optarg; break;
		case 's': o->subs = count_arg("--subscribers", optarg, 0, 1000000); break;
		case 'n': o->msgs = count_arg("--messages", optarg, 0, 1000000000); break;
		case 'p': o->pubs = count_arg("--publishers", optarg, 1, 4096); break;
		case 'v': o->verbose = 1; break;
		case OPT_JSON: o->json = 1; break;
		case OPT_SIZE:
			if (cli_parse_size(optarg, &o->size) || o->size > (64u << 20))
				die(EX_USAGE, "--size wants a length up to 64M, like 64 or 4K, not \"%s\"",
				    optarg);
			break;
		case OPT_TIMEOUT:
			o->timeout_s = strtod(optarg, &end);
			if (end == optarg || *end || !(o->timeout_s > 0) || o->timeout_s > 86400)
				die(EX_USAGE, "--timeout wants seconds (more than 0, at most 86400), not \"%s\"",
				    optarg);
			break;
		case 'h': usage(stdout); exit(0);
		case OPT_VERSION: printf("chat-bench (chatd) %s\n", CHAT_VERSION); exit(0);
		default: usage(stderr); exit(EX_USAGE);
		}
	}
	if (optind < argc)
		die(EX_USAGE, "unexpected argument \"%s\"; see chat-bench --help", argv[optind]);
	why = chan_check(o->chan, strlen(o->chan));
	if (why)
		die(EX_USAGE, "invalid channel name \"%s\": %s", o->chan, why);
}

/* Every subscriber is a socket: take all the descriptors the hard limit allows. */
static void raise_nofile(const struct bench_opts *o)
{
	struct rlimit rl;
	long need = o->subs + o->pubs + 32;

	if (getrlimit(RLIMIT_NOFILE, &rl))
		return;
	if (rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		setrlimit(RLIMIT_NOFILE, &rl);
		getrlimit(RLIMIT_NOFILE, &rl);
	}
	if (rl.rlim_cur != RLIM_INFINITY && (rlim_t)need > rl.rlim_cur)
		die(EX_OSERR, "%ld subscribers need about %ld open files, but the limit is %lu; "
		    "raise it (ulimit -Hn)", o->subs, need, (unsigned long)rl.rlim_cur);
}

static void bench_alloc(struct bench *b)
{
	size_t words = ((size_t)b->o.msgs + 63) / 64;

	b->accepted = calloc((size_t)b->o.msgs + 1, 1);
	b->subs = calloc((size_t)b->o.subs + 1, sizeof *b->subs);
	if (!b->accepted || !b->subs)
		die(EX_OSERR, "out of memory");
	for (long i = 0; i < b->o.subs; i++) {
		struct sub *s = &b->subs[i];

		s->b = b;
		s->seen = calloc(words ? words : 1, sizeof *s->seen);
		s->last = calloc((size_t)b->o.pubs, sizeof *s->last);
		if (!s->seen || !s->last)
			die(EX_OSERR, "out of memory for %ld subscribers x %ld messages", b->o.subs,
			    b->o.msgs);
	}
}

static void bench_free(struct bench *b)
{
	for (long i = 0; i < b->o.subs; i++) {
		free(b->subs[i].seen);
		free(b->subs[i].last);
		free(b->subs[i].frag);
	}
	free(b->subs);
	free(b->accepted);
	free(b->acc_bits);
	pubs_free(b);
}

/* --size is the payload's length, but the payload never drops its header. */
static void warn_short_size(const struct bench *b)
{
	struct payload m = { b->o.msgs > 0 ? (uint64_t)b->o.msgs - 1 : 0, (uint32_t)b->o.pubs - 1,
			     bench_now_ns() };
	char buf[PAYLOAD_HEADER_MAX + 1];
	size_t len = payload_write(buf, b->tag, &m, 0);

	if (b->o.size < len)
		fprintf(stderr, "chat-bench: note: --size %zu is shorter than the message header; "
			"messages will be %zu bytes or a little less\n", b->o.size, len);
}

/* One turn of the main loop: service the subscribers, or just pass the time without any. */
static void turn(struct bench *b)
{
	if (b->ctx) {
		subs_service(b);
	} else {
		struct timespec ts = { 0, 10000000 };

		nanosleep(&ts, NULL);
	}
}

static int progress_on;
static int64_t progress_next;

static void progress(struct bench *b, const char *phase, uint64_t expected)
{
	int64_t now = bench_now_ns();
	uint64_t sent = atomic_load(&b->next_id), got = 0;

	if (!progress_on || now < progress_next)
		return;
	progress_next = now + PROGRESS_EVERY_NS;
	for (long i = 0; i < b->o.subs; i++)
		got += b->subs[i].distinct;
	if (sent > (uint64_t)b->o.msgs)
		sent = (uint64_t)b->o.msgs;
	if (!expected) /* still publishing: as many as have been sent so far */
		expected = sent * (uint64_t)b->o.subs;
	fprintf(stderr, "\r\033[Kchat-bench: %s: sent %" PRIu64 "/%ld, delivered %" PRIu64 "/%" PRIu64,
		phase, sent, b->o.msgs, got, expected);
}

static void progress_end(void)
{
	if (progress_on && progress_next)
		fputs("\r\033[K", stderr);
	progress_next = 0;
}

/* Wait until every subscriber is connected or has failed. */
static void connect_all(struct bench *b)
{
	int64_t deadline = bench_now_ns() + (int64_t)(b->o.timeout_s * 1e9);

	if (subs_open(b))
		die(EX_OSERR, "%s", b->first_conn_err);
	while (!subs_settled(b) && bench_now_ns() < deadline)
		turn(b);
	if (b->failed || b->up < b->o.subs) {
		long missing = b->o.subs - b->up;

		die(EX_UNAVAILABLE, "%ld of %ld subscribers could not connect to %s: %s", missing,
		    b->o.subs, b->t.ws_url,
		    b->first_conn_err[0] ? b->first_conn_err : "timed out");
	}
}

/* A relay that refuses the subscription may do so after the upgrade, with a close frame
 * that arrives while the probe is refused too: the close says more, so wait briefly for it. */
static void probe_failed(struct bench *b, const char *err)
{
	int64_t until = bench_now_ns() + 200000000;

	while (!b->closed && bench_now_ns() < until)
		turn(b);
	if (b->closed)
		die(EX_UNAVAILABLE, "subscribers at %s were %s; and POST failed: %s", b->t.ws_url,
		    b->first_close, err);
	die(EX_UNAVAILABLE, "cannot publish: %s", err);
}

/* An open WebSocket is not yet a subscribed one: a relay may take a moment after the
 * upgrade to join the channel (chatd with Redis subscribes on the first local subscriber). Probes, not
 * measured, are posted until every subscriber has seen one, so no measured message is lost
 * to that race. */
static void probe_all(struct bench *b)
{
	int64_t start = bench_now_ns(), deadline = start + (int64_t)(b->o.timeout_s * 1e9);
	int64_t next = start;
	uint64_t k = 0;
	char err[600];
	long probed = 0;

	while (bench_now_ns() < deadline) {
		if (b->closed)
			die(EX_UNAVAILABLE, "subscribers at %s were %s before publishing began",
			    b->t.ws_url, b->first_close);
		probed = 0;
		for (long i = 0; i < b->o.subs; i++)
			probed += b->subs[i].probed;
		if (probed == b->o.subs)
			return;
		if (bench_now_ns() >= next) {
			if (pubs_probe(b, k++, err, sizeof err))
				probe_failed(b, err);
			next = bench_now_ns() + PROBE_EVERY_NS;
		}
		turn(b);
	}
	die(EX_UNAVAILABLE, "%ld of %ld subscribers at %s received nothing within %g s of "
	    "publishing to %s%s%s", b->o.subs - probed, b->o.subs, b->t.ws_url, b->o.timeout_s,
	    b->t.pub_url, b->first_control[0] ? "; the server said: " : "", b->first_control);
}

static void publish_all(struct bench *b)
{
	char err[300];

	if (pubs_start(b, err, sizeof err))
		die(EX_OSERR, "%s", err);
	while (atomic_load(&b->running) > 0) {
		turn(b);
		progress(b, "publishing", 0);
	}
	pubs_join(b);
	if (stats_accepted_bits(b))
		die(EX_OSERR, "out of memory");
}

/* After the last post, wait up to the timeout for the stragglers. */
static void drain(struct bench *b)
{
	int64_t deadline = b->pub_end_ns + (int64_t)(b->o.timeout_s * 1e9);
	uint64_t accepted = 0;

	for (long i = 0; i < b->o.pubs; i++)
		accepted += b->pubs[i].accepted;
	while (!stats_complete(b, accepted) && bench_now_ns() < deadline) {
		turn(b);
		progress(b, "waiting", accepted * (uint64_t)b->o.subs);
	}
	progress_end();
}

/* Lost or refused messages are the failure this tool exists to find: say it where a
 * script's log and a person's terminal both show it. */
static int verdict(const struct bench *b, const struct bench_result *r)
{
	int bad = r->lost || r->refused || r->failed;

	if (r->refused || r->failed) {
		char status[32] = "";

		if (r->first_status > 0)
			snprintf(status, sizeof status, "status %ld ", r->first_status);
		fprintf(stderr, "chat-bench: FAILED: %" PRIu64 " of %" PRIu64 " posts refused, %" PRIu64
			" failed (no answer); first: %s%s\n", r->refused, r->sent, r->failed, status,
			r->first_err ? r->first_err : "?");
	}
	if (r->lost)
		fprintf(stderr, "chat-bench: FAILED: %" PRIu64 " of %" PRIu64 " expected deliveries lost "
			"(%ld of %ld subscribers missed messages%s%s)\n", r->lost, r->expected,
			r->lost_subs, b->o.subs, b->first_close[0] ? "; " : "", b->first_close);
	if (r->dups || r->ooo)
		fprintf(stderr, "chat-bench: warning: %" PRIu64 " deliveries duplicated, %" PRIu64
			" out of order\n", r->dups, r->ooo);
	if (b->control)
		fprintf(stderr, "chat-bench: warning: %" PRIu64 " control frames; first: %s\n",
			b->control, b->first_control);
	return bad ? EXIT_LOSS : 0;
}

int main(int argc, char **argv)
{
	struct bench *b;
	struct bench_result r;
	char err[300];
	struct url u;
	int code;

	b = calloc(1, sizeof *b);
	if (!b)
		die(EX_OSERR, "out of memory");
	parse_args(argc, argv, &b->o);
	if (url_parse(b->o.url, &u, err, sizeof err))
		die(EX_USAGE, "%s", err);
	if (target_chatd(&b->t, &u, b->o.chan, err, sizeof err))
		die(EX_USAGE, "%s", err);
	raise_nofile(&b->o);
	signal(SIGPIPE, SIG_IGN);
	if (curl_global_init(CURL_GLOBAL_DEFAULT))
		die(EX_OSERR, "cannot initialise libcurl");
	payload_tag(b->tag, (uint32_t)getpid() ^ (uint32_t)bench_now_ns());
	progress_on = isatty(STDERR_FILENO);
	warn_short_size(b);
	bench_alloc(b);

	if (b->o.subs > 0) {
		connect_all(b);
		probe_all(b);
	}
	publish_all(b);
	drain(b);
	stats_compute(b, &r);
	if (b->o.json ? stats_print_json(b, &r) : (stats_print_text(b, &r), 0))
		die(EX_OSERR, "out of memory");
	code = verdict(b, &r);

	subs_close(b);
	bench_free(b);
	free(b);
	curl_global_cleanup();
	return code;
}
