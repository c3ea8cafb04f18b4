/* chat-post: publish messages to a chatd channel over HTTP.
 *
 * Each argument, or else each line of standard input, is one message. A line is posted as
 * soon as it is read, over one keep-alive connection, so chat-post can sit at the end of
 * `tail -f`. A message that fails is reported and skipped; the exit status tells the worst
 * that happened. */
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
#include "url.h"

static const char *chan;
static int json_mode, verbose;
static int status; /* 0, or the most serious failure so far (see raise_status) */

static void usage(FILE *f, int code)
{
	fputs("usage: chat-post [-jv] [-u URL] [-c CHAN] [MSG ...]\n", f);
	if (f == stdout)
		fputs("Publish each MSG, or else each line of standard input, to a chatd channel.\n"
		      "\n"
		      "  -u, --url URL     server (default: $CHAT_URL, else " CHAT_URL_DEFAULT ")\n"
		      "  -c, --chan CHAN   channel (default: $CHAT_CHAN, else " CHAN_DEFAULT ")\n"
		      "  -j, --json        send each message as the JSON value it spells\n"
		      "  -v, --verbose     print the server's answer to each message\n"
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

/* Publish one message; `what` and `n` ("line", 3) say where it came from in errors. */
static void publish(struct poster *p, const char *what, long n, const char *text, size_t len)
{
	struct post_reply reply;
	struct env_pub pub;
	char err[512], *body;
	size_t blen;

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
	switch (poster_send(p, body, blen, &reply)) {
	case POST_ACCEPTED:
		if (verbose) {
			puts(reply.answer);
			fflush(stdout);
		}
		break;
	case POST_REJECTED:
		fprintf(stderr, "chat-post: %s %ld: %ld %s\n", what, n, reply.status, reply.reason);
		raise_status(EX_DATAERR);
		break;
	case POST_UNAVAILABLE:
		if (reply.status)
			fprintf(stderr, "chat-post: %s %ld: %ld %s\n", what, n, reply.status,
				reply.reason);
		else
			fprintf(stderr, "chat-post: %s %ld: %s\n", what, n, reply.reason);
		raise_status(EX_UNAVAILABLE);
		break;
	}
	free(body);
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

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "chan", required_argument, NULL, 'c' },
		{ "json", no_argument, NULL, 'j' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url_text = cli_env("CHAT_URL", CHAT_URL_DEFAULT), *why;
	char err[512], base[1024];
	struct poster *p;
	struct url url;
	int c;

	chan = cli_env("CHAT_CHAN", CHAN_DEFAULT);
	while ((c = getopt_long(argc, argv, "u:c:jvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': url_text = optarg; break;
		case 'c': chan = optarg; break;
		case 'j': json_mode = 1; break;
		case 'v': verbose = 1; break;
		case 'h': usage(stdout, 0); break;
		case 'V': puts("chat-post (chatd) " CHAT_VERSION); return 0;
		default: usage(stderr, EX_USAGE);
		}
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

	curl_global_init(CURL_GLOBAL_DEFAULT);
	p = poster_new(base, err, sizeof err);
	if (!p) {
		fprintf(stderr, "chat-post: %s\n", err);
		curl_global_cleanup();
		return EX_SOFTWARE;
	}
	if (optind < argc)
		for (int i = optind; i < argc; i++)
			publish(p, "argument", i - optind + 1, argv[i], strlen(argv[i]));
	else
		publish_lines(p, stdin);
	poster_free(p);
	curl_global_cleanup();
	return status;
}
