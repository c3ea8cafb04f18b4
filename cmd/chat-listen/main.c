/* chat-listen: print the messages published to chatd channels, one per line.
 *
 * Subscribes over WebSocket, writes each message to standard output as soon as it arrives
 * (flushed, so pipelines see it at once) and rides out server restarts by reconnecting.
 * It ends after -n messages, when whoever reads its output goes away, or on a signal. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "cli.h"
#include "envelope.h"
#include "log.h"
#include "subscriber.h"
#include "url.h"

static int json_mode;
static long count, seen; /* stop after count messages, when count > 0 */
static struct subscriber *sub;

static void usage(FILE *f, int code)
{
	fputs("usage: chat-listen [-jqv] [-u URL] [-c CHAN]... [-n COUNT]\n", f);
	if (f == stdout)
		fputs("Print the messages published to chatd channels, one per line.\n"
		      "\n"
		      "  -u, --url URL       server (default: $CHAT_URL, else " CHAT_URL_DEFAULT ")\n"
		      "  -c, --chan CHAN     channel to follow; repeat for more (default: $CHAT_CHAN,\n"
		      "                      else " CHAN_DEFAULT ")\n"
		      "  -n, --count COUNT   exit after COUNT messages\n"
		      "  -j, --json          print each envelope {\"chan\",\"ts\",\"msg\"} as received\n"
		      "  -q, --quiet         do not report lost connections\n"
		      "  -v, --verbose       report every connection attempt\n"
		      "  -h, --help          show this help and exit\n"
		      "      --version       show the version and exit\n",
		      f);
	exit(code);
}

/* One line to stdout, flushed. A reader that went away ends us quietly. */
static int print_line(const char *s, size_t len)
{
	if (fwrite(s, 1, len, stdout) == len && putchar('\n') != EOF && fflush(stdout) != EOF)
		return SUB_CONTINUE;
	if (errno == EPIPE)
		return 0;
	fprintf(stderr, "chat-listen: writing to standard output: %s\n", strerror(errno));
	return EX_IOERR;
}

/* A string as its text, any other value as compact JSON. */
static int print_value(const cJSON *msg)
{
	char *text;
	int rc;

	if (cJSON_IsString(msg))
		return print_line(msg->valuestring, strlen(msg->valuestring));
	text = cJSON_PrintUnformatted(msg);
	if (!text) {
		fprintf(stderr, "chat-listen: out of memory\n");
		return EX_SOFTWARE;
	}
	rc = print_line(text, strlen(text));
	cJSON_free(text);
	return rc;
}

/* A control frame is news for the user, not data: it goes to stderr. */
static void report_control(const struct env_msg *m, const char *frame)
{
	const cJSON *e = cJSON_GetObjectItemCaseSensitive(m->root, "error");

	if (!strcmp(m->type, "error"))
		log_error("chat-listen", "server error: %s",
			  cJSON_IsString(e) ? e->valuestring : frame);
	else
		log_debug("chat-listen", "server sent %s", frame);
}

static int on_frame(void *arg, const char *frame, size_t len)
{
	struct env_msg m;
	int rc;

	if (env_msg_parse(frame, len, &m)) {
		log_warn("chat-listen", "ignored a frame that is not an envelope: %.200s", frame);
		return SUB_CONTINUE;
	}
	if (m.type) {
		report_control(&m, frame);
		env_msg_free(&m);
		return SUB_CONTINUE;
	}
	rc = json_mode ? print_line(frame, len) : print_value(m.msg);
	env_msg_free(&m);
	if (rc == SUB_CONTINUE && count > 0 && ++seen >= count)
		rc = 0;
	return rc;
}

/* Notice a closed pipe even while no messages come, so `chat-listen | head -n 1` ends. */
static int on_tick(void *arg)
{
	struct pollfd pfd = { .fd = STDOUT_FILENO, .events = 0 };

	if (poll(&pfd, 1, 0) == 1 && (pfd.revents & (POLLERR | POLLHUP)))
		return 0;
	return SUB_CONTINUE;
}

/* The path and query that subscribe to chans on the server at url, in *path; or an exit
 * status, after telling the user why not. */
static int subscription_path(const struct url *url, const char **chans, size_t n, char **path)
{
	size_t len = sizeof url->path + n * (CHAN_MAX + sizeof "&chan=");
	const char *why;

	for (size_t i = 0; i < n; i++)
		if ((why = chan_check(chans[i], strlen(chans[i])))) {
			fprintf(stderr, "chat-listen: invalid channel name \"%s\": %s\n", chans[i], why);
			return EX_USAGE;
		}
	*path = malloc(len);
	if (!*path || url_ws_path(url, chans, n, *path, len)) {
		fprintf(stderr, "chat-listen: out of memory\n");
		return EX_SOFTWARE;
	}
	return 0;
}

static void on_signal(int sig)
{
	sub_interrupt(sub);
}

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "chan", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	const char *url_text = cli_env("CHAT_URL", CHAT_URL_DEFAULT);
	const char *chans[CHAN_MAX_PER_CONN];
	const struct sub_hooks hooks = { on_frame, on_tick, NULL };
	int c, verbosity = SUB_NORMAL, status;
	size_t nchans = 0;
	struct sigaction sa;
	char err[512], *path;
	struct url url;

	while ((c = getopt_long(argc, argv, "u:c:n:jqvh", longopts, NULL)) != -1) {
		switch (c) {
		case 'u': url_text = optarg; break;
		case 'c':
			if (nchans == CHAN_MAX_PER_CONN) {
				fprintf(stderr, "chat-listen: at most %d channels (-c) per connection\n",
					CHAN_MAX_PER_CONN);
				return EX_USAGE;
			}
			chans[nchans++] = optarg;
			break;
		case 'n':
			if (cli_parse_count(optarg, 1000000000L, &count) || count < 1) {
				fprintf(stderr, "chat-listen: -n needs a positive number, not \"%s\"\n", optarg);
				return EX_USAGE;
			}
			break;
		case 'j': json_mode = 1; break;
		case 'q': verbosity = SUB_QUIET; break;
		case 'v': verbosity = SUB_VERBOSE; break;
		case 'h': usage(stdout, 0); break;
		case 'V': puts("chat-listen (chatd) " CHAT_VERSION); return 0;
		default: usage(stderr, EX_USAGE);
		}
	}
	if (optind < argc)
		usage(stderr, EX_USAGE);
	if (nchans == 0)
		chans[nchans++] = cli_env("CHAT_CHAN", CHAN_DEFAULT);
	if (url_parse(url_text, &url, err, sizeof err)) {
		fprintf(stderr, "chat-listen: %s\n", err);
		return EX_USAGE;
	}
	if ((status = subscription_path(&url, chans, nchans, &path)))
		return status;
	log_set_level(verbosity >= SUB_VERBOSE ? LOGL_DEBUG : LOGL_INFO);

	sub = sub_new(&url, path, verbosity, &hooks, err, sizeof err);
	free(path);
	if (!sub) {
		fprintf(stderr, "chat-listen: %s\n", err);
		return EX_SOFTWARE;
	}
	signal(SIGPIPE, SIG_IGN);
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	status = sub_run(sub);
	signal(SIGINT, SIG_IGN); /* the handler must not touch sub while it is freed */
	signal(SIGTERM, SIG_IGN);
	sub_free(sub);
	return status;
}
