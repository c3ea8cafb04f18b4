/* chat-post: publish messages to a chatd channel over HTTP.
 *
 * Each argument, or else each line of standard input, is one message. A line is posted as
 * soon as it is read, over one keep-alive connection, so chat-post can sit at the end of
 * `tail -f`. With --retry, a message the server could not take is sent again, under the
 * same idempotency key, so a retry never publishes it twice. A message that still fails is
 * reported and skipped; the exit status tells the worst that happened. */
#include <curl/curl.h>
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "chan.h"
#include "cli.h"
#include "envelope.h"
#include "poster.h"
#include "retry.h"
#include "url.h"

static const char *chan;
static int json_mode, verbose;
static long retries;          /* --retry */
static const char *fixed_key; /* --key */
static struct retry keys;     /* for fresh keys and jitter, when retries > 0 */
static int status; /* 0, or the most serious failure so far (see raise_status) */

static void usage(FILE *f, int code)
{
	fputs("usage: chat-post [-jkv] [-u URL] [-c CHAN] [--retry N] [--key KEY] [--token T] [MSG ...]\n"
	      "       chat-post [-jkv] [-u URL] [-c CHAN] [options] --file FILE\n", f);
	if (f == stdout)
		fputs("Publish each MSG, or else each line of standard input, to a chatd channel.\n"
		      "\n"
		      "  -u, --url URL     server (default: $CHAT_URL, else " CHAT_URL_DEFAULT ")\n"
		      "  -c, --chan CHAN   channel (default: $CHAT_CHAN, else " CHAN_DEFAULT ")\n"
		      "  -j, --json        send each message as the JSON value it spells\n"
		      "  -v, --verbose     print the server's answer to each message, and each retry\n"
		      "      --retry N     send a message the server could not take up to N more\n"
		      "                    times (0 to 1000, default 0); never stored twice\n"
		      "      --key KEY     the idempotency key of the one MSG (default: a fresh one\n"
		      "                    per message, with --retry)\n"
		      "  -f, --file FILE   post the whole of FILE (- for standard input) as one message\n"
		      "  -t, --token T     authenticate with token T (default: $CHAT_TOKEN)\n"
		      "      --cacert FILE trust the certificate authorities in FILE for https\n"
		      "  -k, --insecure    do not check the server's certificate\n"
		      "  -h, --help        show this help and exit\n"
		      "      --version     show the version and exit\n",
		      f);
	exit(code);
}

/* An unreachable server outranks rejected messages: it is the one worth retrying. */
static void raise_status(int code)
{
	if (status == 0 || code == EX_UNAVAILABLE)
		status = code;
}

/* "413 reason", or the reason alone when the server did not answer. */
static const char *describe(const struct post_reply *r, char *buf, size_t len)
{
	if (!r->status)
		return r->reason;
	snprintf(buf, len, "%ld %s", r->status, r->reason);
	return buf;
}

/* Send body until it is accepted, refused for good, or the retries are spent. Every
 * attempt carries the same key: that is what makes a retry of a message the server did
 * store (but whose answer was lost) harmless. Returns the outcome of the last attempt,
 * and in *attempts how many were made. */
static enum post_outcome send_with_retries(struct poster *p, const char *what, long n,
					   const char *body, size_t blen,
					   struct post_reply *reply, long *attempts)
{
	char key[RETRY_KEY_MAX + 1], buf[600];
	const char *k = fixed_key;
	enum post_outcome o;
	long delay;

	if (!k && retries > 0) {
		retry_key_next(&keys, key);
		k = key;
	}
	for (*attempts = 1;; ++*attempts) {
		o = poster_send(p, body, blen, k, reply);
		if (o == POST_ACCEPTED || !reply->retryable || *attempts > retries)
			return o;
		delay = retry_delay_ms(&keys, *attempts, reply->retry_after_ms);
		if (verbose)
			fprintf(stderr, "chat-post: %s %ld: attempt %ld of %ld: %s; retrying in %.1f s\n",
				what, n, *attempts, retries + 1, describe(reply, buf, sizeof buf),
				delay / 1000.0);
		retry_sleep_ms(delay);
	}
}

/* Publish one message; `what` and `n` ("line", 3) say where it came from in errors. */
static void publish(struct poster *p, const char *what, long n, const char *text, size_t len)
{
	struct post_reply reply;
	struct env_pub pub;
	char err[512], buf[600], tries[64] = "", *body;
	enum post_outcome outcome;
	size_t blen;
	long attempts;

	if ((json_mode ? env_pub_value : env_pub_text)(chan, strlen(chan), text, len, &pub, err,
						       sizeof err)) {
		fprintf(stderr, "chat-post: %s %ld: %s\n", what, n, err);
		raise_status(EX_DATAERR);
		return;
	}
	body = env_pub_body(&pub, &blen);
	if (!body) {
		fprintf(stderr, "chat-post: %s %ld: out of memory\n", what, n);
		env_pub_free(&pub);
		raise_status(EX_SOFTWARE);
		return;
	}
	env_pub_free(&pub);
	outcome = send_with_retries(p, what, n, body, blen, &reply, &attempts);
	free(body);
	if (outcome == POST_ACCEPTED) {
		if (verbose) {
			puts(reply.answer);
			fflush(stdout);
		}
		return;
	}
	if (attempts > 1 && reply.retryable)
		snprintf(tries, sizeof tries, "; gave up after %ld attempts", attempts);
	else if (attempts > 1)
		snprintf(tries, sizeof tries, "; not retried (attempt %ld)", attempts);
	fprintf(stderr, "chat-post: %s %ld: %s%s\n", what, n, describe(&reply, buf, sizeof buf),
		tries);
	raise_status(outcome == POST_REJECTED ? EX_DATAERR : EX_UNAVAILABLE);
}

/* Each line is a message, posted before the next is read. A line ends at "\n" or "\r\n";
 * the last line needs no newline; empty lines are skipped. */
static void publish_lines(struct poster *p, FILE *in)
{
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	long n = 0;

	while ((len = getline(&line, &cap, in)) != -1) {
		n++;
		if (len > 0 && line[len - 1] == '\n')
			len--;
		if (len > 0 && line[len - 1] == '\r')
			len--;
		if (len > 0)
			publish(p, "line", n, line, (size_t)len);
	}
	if (ferror(in)) {
		fprintf(stderr, "chat-post: reading standard input: %s\n", strerror(errno));
		raise_status(EX_IOERR);
	}
	free(line);
}

/* The whole file is one message (a JSON value with -j, else text). */
static void publish_file(struct poster *p, const char *path)
{
	FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
	char *buf = NULL;
	size_t len = 0, cap = 0, r;

	if (!f) {
		fprintf(stderr, "chat-post: %s: %s\n", path, strerror(errno));
		raise_status(EX_NOINPUT);
		return;
	}
	do {
		if (len + 65536 > cap) {
			char *nb = realloc(buf, cap = 2 * cap + 65536);
			if (!nb) {
				fprintf(stderr, "chat-post: %s: out of memory\n", path);
				raise_status(EX_SOFTWARE);
				goto out;
			}
			buf = nb;
		}
		r = fread(buf + len, 1, cap - len, f);
		len += r;
	} while (r > 0);
	if (ferror(f)) {
		fprintf(stderr, "chat-post: %s: %s\n", path, strerror(errno));
		raise_status(EX_IOERR);
		goto out;
	}
	publish(p, "file", 1, buf ? buf : "", len);
out:
	free(buf);
	if (f != stdin)
		fclose(f);
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "chan", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ "retry", required_argument, NULL, 'R' },
		{ "key", required_argument, NULL, 'K' },
		{ "file", required_argument, NULL, 'f' },
		{ "token", required_argument, NULL, 't' },
		{ "cacert", required_argument, NULL, 'C' },
		{ "insecure", no_argument, NULL, 'k' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url_text = cli_env("CHAT_URL", CHAT_URL_DEFAULT), *why, *file = NULL;
	struct poster_opts opts = { .token = cli_env("CHAT_TOKEN", NULL) };
	char err[512], base[1024];
	struct poster *p;
	struct url url;
	int c;

	chan = cli_env("CHAT_CHAN", CHAN_DEFAULT);
	while ((c = getopt_long(argc, argv, "u:c:jvhf:t:k", longopts, NULL)) != -1) {
		switch (c) {
		case 'f': file = optarg; break;
		case 't': opts.token = optarg; break;
		case 'C': opts.cacert = optarg; break;
		case 'k': opts.insecure = 1; break;
		case 'u': url_text = optarg; break;
		case 'c': chan = optarg; break;
		case 'j': json_mode = 1; break;
		case 'v': verbose = 1; break;
		case 'h': usage(stdout, 0); break;
		case 'V': puts("chat-post (chatd) " CHAT_VERSION); return 0;
		case 'R':
			if (cli_parse_count(optarg, RETRY_MAX, &retries)) {
				fprintf(stderr, "chat-post: --retry wants a number from 0 to %d, not \"%s\"\n",
					RETRY_MAX, optarg);
				return EX_USAGE;
			}
			break;
		case 'K':
			if ((why = retry_key_check(optarg))) {
				fprintf(stderr, "chat-post: invalid --key \"%s\": %s\n", optarg, why);
				return EX_USAGE;
			}
			fixed_key = optarg;
			break;
		default: usage(stderr, EX_USAGE);
		}
	}
	/* One key is one message: a second message under it would be taken for a retry of the
	 * first and refused (422), or worse, not published at all. */
	if (file && optind < argc) {
		fprintf(stderr, "chat-post: --file is the message: give no MSG argument with it\n");
		return EX_USAGE;
	}
	if (fixed_key && argc - optind != !file) {
		fprintf(stderr, "chat-post: --key names one message: give exactly one MSG argument (or --file)\n");
		return EX_USAGE;
	}
	if (opts.token && !opts.token[0])
		opts.token = NULL;
	for (const char *t = opts.token; t && *t; t++) /* it goes into a header line */
		if (*t < 0x21 || *t > 0x7e || t - opts.token >= 8192) {
			fprintf(stderr, "chat-post: --token: a token is up to 8192 visible ASCII characters\n");
			return EX_USAGE;
		}
	if (url_parse(url_text, &url, err, sizeof err)) {
		fprintf(stderr, "chat-post: %s\n", err);
		return EX_USAGE;
	}
	if (url_http_base(&url, base, sizeof base)) {
		fprintf(stderr, "chat-post: URL too long: %s\n", url_text);
		return EX_USAGE;
	}
	if ((why = chan_check(chan, strlen(chan)))) {
		fprintf(stderr, "chat-post: invalid channel name \"%s\": %s\n", chan, why);
		return EX_USAGE;
	}

	if (retries > 0 && retry_init(&keys, err, sizeof err)) {
		fprintf(stderr, "chat-post: %s\n", err);
		return EX_SOFTWARE;
	}

	curl_global_init(CURL_GLOBAL_DEFAULT);
	p = poster_new(base, &opts, err, sizeof err);
	if (!p) {
		fprintf(stderr, "chat-post: %s\n", err);
		curl_global_cleanup();
		return EX_SOFTWARE;
	}
	if (file)
		publish_file(p, file);
	else if (optind < argc)
		for (int i = optind; i < argc; i++)
			publish(p, "argument", i - optind + 1, argv[i], strlen(argv[i]));
	else
		publish_lines(p, stdin);
	poster_free(p);
	curl_global_cleanup();
	return status;
}
