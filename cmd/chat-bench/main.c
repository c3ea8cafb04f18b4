/* chat-bench: load generator and meter for chatd and relays like it.
 *
 * Opens S WebSocket subscribers on one channel, checks each one receives, publishes N
 * messages from P keep-alive HTTP publishers (as fast as they go, or at a fixed rate), then
 * reports what arrived: lost, duplicated and reordered messages, throughput, latency, and,
 * given the server's pids, its CPU time per delivery and memory per connection. The idle
 * mode only opens the connections and measures their memory. Exit status 0 only when every
 * accepted message reached every subscriber and no post was refused. */
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
#define PROGRESS_TTY_NS 500000000LL   /* a terminal's line is redrawn in place */
#define PROGRESS_LOG_NS 5000000000LL  /* a log gets a line now and then, and none for short runs */

/* What each mode does when not told otherwise. */
struct mode_defaults {
	const char *name;
	long subs, msgs, pubs, batch_us;
	double rate, hold_s;
};

static const struct mode_defaults modes[] = {
	[MODE_FANOUT] = { "fanout", 10, 1000, 4, 200, 0, 0 },
	[MODE_THROUGHPUT] = { "throughput", 1, 10000, 16, 200, 0, 0 },
	[MODE_LATENCY] = { "latency", 100, 10000, 4, 0, 1000, 0 },
	[MODE_IDLE] = { "idle", 1000, 0, 1, 0, 0, 2 },
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: chat-bench [-m MODE] [-u URL] [-c CHAN] [-s SUBSCRIBERS] [-n MESSAGES]\n"
		"                  [-p PUBLISHERS] [-r RATE] [--size BYTES] [--timeout S] [--hold S]\n"
		"                  [--pid PID]... [--pub-url URL] [--sub-url URL] [--body TEXT]\n"
		"                  [--content-type TYPE] [--sources N] [--batch US] [--json] [-q] [-v]\n"
		"Measure a chatd server (or another relay, through templates): S WebSocket subscribers\n"
		"on CHAN, N messages POSTed by P concurrent keep-alive publishers; report lost,\n"
		"duplicated and out-of-order messages, throughput, latency and, with --pid, the\n"
		"server's CPU time per delivery and memory per connection. Exits 1 when a message\n"
		"was lost or a post refused.\n"
		"\n"
		"  -m, --mode MODE          fanout (default: -s 10 -n 1000 -p 4), throughput\n"
		"                           (-s 1 -n 10000 -p 16), latency (-s 100 -n 10000 -p 4\n"
		"                           -r 1000) or idle (-s 1000, no messages, --hold 2)\n"
		"  -u, --url URL            chatd's base URL (default $CHAT_URL or %s)\n"
		"  -c, --chan CHAN          channel (default %s)\n"
		"  -s, --subscribers S      WebSocket subscribers\n"
		"  -n, --messages N         messages to publish\n"
		"  -p, --publishers P       concurrent HTTP publishers\n"
		"  -r, --rate R             publish R messages per second in all, and measure latency\n"
		"                           from when each message was due (default: as fast as the\n"
		"                           publishers go)\n"
		"      --size BYTES         message length, e.g. 64, 4K (default 64)\n"
		"      --timeout S          seconds to wait for connections, for each post, and\n"
		"                           for deliveries after the last post (default 10)\n"
		"      --hold S             seconds to keep the connections open before measuring\n"
		"                           their memory (idle mode)\n"
		"      --pid PID            a server process to measure (CPU time, resident memory);\n"
		"                           repeat for each one, Redis included\n"
		"      --pub-url URL        publish with POST to this URL; {chan} is the channel\n"
		"      --sub-url URL        subscribe at this ws:// URL; {chan} is the channel\n"
		"      --body TEXT          the POST body; {payload} is the message, {chan} the\n"
		"                           channel (default with --pub-url: the bare message)\n"
		"      --content-type TYPE  of the POST body (default application/json for chatd's\n"
		"                           body, text/plain for a template)\n"
		"      --sources N          spread subscribers over 127.0.0.1 to 127.0.0.N (default:\n"
		"                           one address per 500 subscribers to a loopback server)\n"
		"      --batch US           after a turn with few sockets ready, the receiver sleeps\n"
		"                           US microseconds so it reads frames in batches (default\n"
		"                           200; 0 in latency mode)\n"
		"      --json               print one JSON object instead of the table\n"
		"  -t, --token T            authenticate publishers and subscribers with token T\n"
		"                           (default: $CHAT_TOKEN; never printed)\n"
		"  -q, --quiet              no progress line on standard error\n"
		"  -v, --verbose            log each phase's duration on standard error\n"
		"  -h, --help               this help\n"
		"      --version            print the version\n",
		CHAT_URL_DEFAULT, DEFAULT_CHAN);
}

static int progress_on, progress_tty, progress_shown;
static int64_t progress_next;

static void progress_end(void)
{
	if (progress_tty && progress_shown)
		fputs("\r\033[K", stderr);
	progress_shown = 0;
}

static void die(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	progress_end();
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

/* A decimal number more than 0 (at least 0 when zero_ok) and at most max. */
static double number_arg(const char *opt, const char *what, const char *s, int zero_ok,
			 double max)
{
	char *end;
	double v = strtod(s, &end);

	if (end == s || *end || !(zero_ok ? v >= 0 : v > 0) || v > max)
		die(EX_USAGE, "%s wants %s (%s 0, at most %g), not \"%s\"", opt, what,
		    zero_ok ? "at least" : "more than", max, s);
	return v;
}

static enum bench_mode mode_arg(const char *s)
{
	for (size_t i = 0; i < sizeof modes / sizeof modes[0]; i++)
		if (!strcmp(s, modes[i].name))
			return (enum bench_mode)i;
	die(EX_USAGE, "--mode wants fanout, throughput, latency or idle, not \"%s\"", s);
}

/* What was not given comes from the mode; what the mode cannot use is refused. */
static void apply_mode(struct bench_opts *o, double hold)
{
	const struct mode_defaults *m = &modes[o->mode];

	if (o->mode == MODE_IDLE && (o->msgs >= 0 || o->rate >= 0))
		die(EX_USAGE, "--mode idle publishes nothing: -n and --rate do not apply");
	if (o->subs < 0)
		o->subs = m->subs;
	if (o->msgs < 0)
		o->msgs = m->msgs;
	if (o->pubs < 0)
		o->pubs = m->pubs;
	if (o->rate < 0)
		o->rate = m->rate;
	if (o->batch_us < 0)
		o->batch_us = m->batch_us;
	o->hold_s = hold >= 0 ? hold : m->hold_s;
}

static void parse_args(int argc, char **argv, struct bench_opts *o)
{
	enum { OPT_SIZE = 256, OPT_TIMEOUT, OPT_HOLD, OPT_PID, OPT_PUB_URL, OPT_SUB_URL, OPT_BODY,
	       OPT_CTYPE, OPT_SOURCES, OPT_BATCH, OPT_JSON, OPT_VERSION };
	static const struct option longopts[] = {
		{ "mode", required_argument, NULL, 'm' },
		{ "url", required_argument, NULL, 'u' },
		{ "chan", required_argument, NULL, 'c' },
		{ "subscribers", required_argument, NULL, 's' },
		{ "messages", required_argument, NULL, 'n' },
		{ "publishers", required_argument, NULL, 'p' },
		{ "rate", required_argument, NULL, 'r' },
		{ "size", required_argument, NULL, OPT_SIZE },
		{ "timeout", required_argument, NULL, OPT_TIMEOUT },
		{ "hold", required_argument, NULL, OPT_HOLD },
		{ "pid", required_argument, NULL, OPT_PID },
		{ "pub-url", required_argument, NULL, OPT_PUB_URL },
		{ "sub-url", required_argument, NULL, OPT_SUB_URL },
		{ "body", required_argument, NULL, OPT_BODY },
		{ "content-type", required_argument, NULL, OPT_CTYPE },
		{ "sources", required_argument, NULL, OPT_SOURCES },
		{ "batch", required_argument, NULL, OPT_BATCH },
		{ "json", no_argument, NULL, OPT_JSON },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ "token", required_argument, NULL, 't' },
		{ NULL, 0, NULL, 0 }
	};
	double hold = -1;
	char err[300];
	const char *why;
	int c;

	o->url = cli_env("CHAT_URL", CHAT_URL_DEFAULT);
	o->token = cli_env("CHAT_TOKEN", NULL);
	o->chan = DEFAULT_CHAN;
	o->subs = o->msgs = o->pubs = -1;
	o->rate = -1;
	o->sources = -1;
	o->batch_us = -1;
	o->size = 64;
	o->timeout_s = 10;
	while ((c = getopt_long(argc, argv, "m:u:c:s:n:p:r:t:qvh", longopts, NULL)) != -1) {
		switch (c) {
		case 't': o->token = optarg; break; /* checked below, with $CHAT_TOKEN */
		case 'm': o->mode = mode_arg(optarg); break;
		case 'u': o->url = optarg; break;
		case 'c': o->chan = optarg; break;
		case 's': o->subs = count_arg("--subscribers", optarg, 0, 1000000); break;
		case 'n': o->msgs = count_arg("--messages", optarg, 0, 1000000000); break;
		case 'p': o->pubs = count_arg("--publishers", optarg, 1, 4096); break;
		case 'r': o->rate = number_arg("--rate", "messages per second", optarg, 0, 1e7); break;
		case 'q': o->quiet = 1; break;
		case 'v': o->verbose = 1; break;
		case OPT_JSON: o->json = 1; break;
		case OPT_SIZE:
			if (cli_parse_size(optarg, &o->size) || o->size > (64u << 20))
				die(EX_USAGE, "--size wants a length up to 64M, like 64 or 4K, not \"%s\"",
				    optarg);
			break;
		case OPT_TIMEOUT:
			o->timeout_s = number_arg("--timeout", "seconds", optarg, 0, 86400);
			break;
		case OPT_HOLD: hold = number_arg("--hold", "seconds", optarg, 1, 86400); break;
		case OPT_PID:
			if (o->npids == BENCH_MAX_PIDS)
				die(EX_USAGE, "at most %d --pid", BENCH_MAX_PIDS);
			o->pids[o->npids] = (int)count_arg("--pid", optarg, 1, 1L << 30);
			if (proc_check_pid(o->pids[o->npids++], err, sizeof err))
				die(EX_USAGE, "%s", err);
			break;
		case OPT_PUB_URL: o->pub_tmpl = optarg; break;
		case OPT_SUB_URL: o->sub_tmpl = optarg; break;
		case OPT_BODY: o->body_tmpl = optarg; break;
		case OPT_CTYPE: o->content_type = optarg; break;
		case OPT_SOURCES: o->sources = count_arg("--sources", optarg, 0, 254); break;
		case OPT_BATCH: o->batch_us = count_arg("--batch", optarg, 0, 100000); break;
		case 'h': usage(stdout); exit(0);
		case OPT_VERSION: printf("chat-bench (chatd) %s\n", CHAT_VERSION); exit(0);
		default: usage(stderr); exit(EX_USAGE);
		}
	}
	if (o->token && !*o->token)
		o->token = NULL;
	for (const char *t = o->token; t && *t; t++)
		if (*t < 0x21 || *t > 0x7e || t - o->token >= 8192) {
			fprintf(stderr, "chat-bench: --token: a token is up to 8192 visible ASCII characters\n");
			exit(EX_USAGE);
		}
	if (optind < argc)
		die(EX_USAGE, "unexpected argument \"%s\"; see chat-bench --help", argv[optind]);
	why = chan_check(o->chan, strlen(o->chan));
	if (why)
		die(EX_USAGE, "invalid channel name \"%s\": %s", o->chan, why);
	apply_mode(o, hold);
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

	b->epfd = b->wakefd = -1;
	b->pub_ep = b->pub_timer = -1;
	b->accepted = calloc((size_t)b->o.msgs + 1, 1);
	b->subs = calloc((size_t)b->o.subs + 1, sizeof *b->subs);
	if (!b->accepted || !b->subs)
		die(EX_OSERR, "out of memory");
	for (long i = 0; i < b->o.subs; i++) {
		struct sub *s = &b->subs[i];

		s->b = b;
		s->fd = -1;
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
		free(b->subs[i].pend);
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

	if (b->o.mode != MODE_IDLE && b->o.size < len)
		fprintf(stderr, "chat-bench: note: --size %zu is shorter than the message header; "
			"messages will be %zu bytes or a little less\n", b->o.size, len);
}

/* One turn of the main loop: service the subscribers, or just pass the time without any. */
static void turn(struct bench *b)
{
	if (b->epfd >= 0) {
		subs_service(b);
	} else {
		struct timespec ts = { 0, 10000000 };

		nanosleep(&ts, NULL);
	}
}

/* A terminal gets a line redrawn in place; a log a line every few seconds. */
static void progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void progress(const char *fmt, ...)
{
	int64_t now = bench_now_ns();
	va_list ap;

	if (!progress_on || now < progress_next)
		return;
	if (!progress_next) { /* the first call starts the clock: short phases print nothing */
		progress_next = now + (progress_tty ? PROGRESS_TTY_NS : PROGRESS_LOG_NS);
		return;
	}
	progress_next = now + (progress_tty ? PROGRESS_TTY_NS : PROGRESS_LOG_NS);
	fputs(progress_tty ? "\r\033[Kchat-bench: " : "chat-bench: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputs(progress_tty ? "" : "\n", stderr);
	progress_shown = 1;
}

static uint64_t delivered(const struct bench *b)
{
	uint64_t got = 0;

	for (long i = 0; i < b->o.subs; i++)
		got += b->subs[i].distinct;
	return got;
}

/* -v: how long each phase took, as a log line. */
static void phase_done(const struct bench *b, const char *phase, int64_t since)
{
	if (!b->o.verbose)
		return;
	progress_end();
	fprintf(stderr, "INFO chat-bench: %s s=%.3f subscribers=%ld up=%ld delivered=%" PRIu64
		" reads=%" PRIu64 " wakeups=%" PRIu64 "\n", phase, (double)(bench_now_ns() - since) / 1e9,
		b->o.subs, b->up, delivered(b), b->reads, b->wakeups);
}

/* Wait until every subscriber is connected or has failed. */
static void connect_all(struct bench *b)
{
	int64_t start = bench_now_ns(), deadline = start + (int64_t)(b->o.timeout_s * 1e9);

	if (subs_open(b))
		die(EX_OSERR, "%s", b->first_conn_err);
	while (!subs_settled(b) && bench_now_ns() < deadline) {
		turn(b);
		progress("connecting: %ld of %ld up, %ld failed", b->up, b->o.subs, b->failed);
	}
	if (b->failed || b->up < b->o.subs) {
		long missing = b->o.subs - b->up;

		die(EX_UNAVAILABLE, "%ld of %ld subscribers could not connect to %s: %s", missing,
		    b->o.subs, b->t.ws_url,
		    b->first_conn_err[0] ? b->first_conn_err
		    : b->first_close[0] ? b->first_close : "timed out");
	}
	phase_done(b, "connected", start);
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
 * upgrade to join the channel (chatd with Redis subscribes on the first local subscriber).
 * Probes, not measured, are posted until every subscriber has seen one, so no measured
 * message is lost to that race. */
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
		if (probed == b->o.subs) {
			phase_done(b, "probed", start);
			return;
		}
		if (bench_now_ns() >= next) {
			if (pubs_probe(b, k++, err, sizeof err))
				probe_failed(b, err);
			next = bench_now_ns() + PROBE_EVERY_NS;
		}
		turn(b);
		progress("probing: %ld of %ld subscribers received a probe", probed, b->o.subs);
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
		uint64_t sent = atomic_load(&b->next_id);

		turn(b);
		if (sent > (uint64_t)b->o.msgs)
			sent = (uint64_t)b->o.msgs;
		progress("publishing: sent %" PRIu64 " of %ld, delivered %" PRIu64 " of %" PRIu64,
			 sent, b->o.msgs, delivered(b), sent * (uint64_t)b->o.subs);
	}
	pubs_join(b);
	if (stats_accepted_bits(b))
		die(EX_OSERR, "out of memory");
	phase_done(b, "published", b->pub_start_ns);
}

/* After the last post, wait up to the timeout for the stragglers. */
static void drain(struct bench *b)
{
	int64_t start = bench_now_ns(), deadline = b->pub_end_ns + (int64_t)(b->o.timeout_s * 1e9);
	uint64_t accepted = 0;

	for (long i = 0; i < b->o.pubs; i++)
		accepted += b->pubs[i].accepted;
	while (!stats_complete(b, accepted) && bench_now_ns() < deadline) {
		turn(b);
		progress("waiting: delivered %" PRIu64 " of %" PRIu64, delivered(b),
			 accepted * (uint64_t)b->o.subs);
	}
	progress_end();
	phase_done(b, "drained", start);
}

/* Idle mode: keep the connections open (and notice any the server drops) for --hold. */
static void hold(struct bench *b)
{
	int64_t start = bench_now_ns(), until = start + (int64_t)(b->o.hold_s * 1e9);

	while (bench_now_ns() < until) {
		turn(b);
		progress("holding %ld connections: %.0f s left", b->up,
			 (double)(until - bench_now_ns()) / 1e9);
	}
	b->hold_ns = bench_now_ns() - start;
	progress_end();
	phase_done(b, "held", start);
}

/* Lost or refused messages are the failure this tool exists to find: say it where a
 * script's log and a person's terminal both show it. */
static int verdict(const struct bench *b, const struct bench_result *r)
{
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
	if (b->o.mode == MODE_IDLE && r->closed)
		fprintf(stderr, "chat-bench: FAILED: %ld of %ld idle subscribers were disconnected; "
			"first: %s\n", r->closed, b->o.subs, b->first_close);
	if (r->dups || r->ooo)
		fprintf(stderr, "chat-bench: warning: %" PRIu64 " deliveries duplicated, %" PRIu64
			" out of order\n", r->dups, r->ooo);
	if (b->seq_gaps || b->seq_back)
		fprintf(stderr, "chat-bench: warning: the relay's seq skipped %" PRIu64 " numbers and "
			"went back %" PRIu64 " times\n", b->seq_gaps, b->seq_back);
	if (b->control)
		fprintf(stderr, "chat-bench: warning: %" PRIu64 " control frames; first: %s\n",
			b->control, b->first_control);
	if (r->server_missing)
		fprintf(stderr, "chat-bench: warning: %d of the --pid processes ended during the run; "
			"the server figures leave them out\n", r->server_missing);
	return r->ok ? 0 : EXIT_LOSS;
}

int main(int argc, char **argv)
{
	struct bench *b;
	struct bench_result r;
	char err[300];
	int code;

	b = calloc(1, sizeof *b);
	if (!b)
		die(EX_OSERR, "out of memory");
	parse_args(argc, argv, &b->o);
	if (target_init(&b->t, &b->o, err, sizeof err))
		die(EX_USAGE, "%s", err);
	raise_nofile(&b->o);
	signal(SIGPIPE, SIG_IGN);
	payload_tag(b->tag, (uint32_t)getpid() ^ (uint32_t)bench_now_ns());
	progress_on = !b->o.quiet;
	progress_tty = isatty(STDERR_FILENO);
	warn_short_size(b);
	bench_alloc(b);

	proc_sample(&b->o, &b->at_start);
	if (b->o.subs > 0) {
		connect_all(b);
		probe_all(b);
	}
	proc_sample(&b->o, &b->at_connected);
	b->at_run = b->at_connected;
	if (b->o.mode == MODE_IDLE) {
		hold(b);
	} else {
		publish_all(b);
		drain(b);
	}
	proc_sample(&b->o, &b->at_end);
	stats_compute(b, &r);
	if (b->o.json ? stats_print_json(b, &r) : (stats_print_text(b, &r), 0))
		die(EX_OSERR, "out of memory");
	code = verdict(b, &r);

	subs_close(b);
	bench_free(b);
	free(b);
	return code;
}
