/* chat-listen: print the messages published to chatd channels, one per line.
 *
 * Subscribes over WebSocket (with a token, over TLS, as asked), writes each message to
 * standard output as soon as it arrives (flushed, so pipelines see it at once), as its
 * text, its envelope or a --format template says, and rides out server restarts by
 * reconnecting.
 * Every connection resumes after the last message printed in each channel, and with
 * --state-file so does the next run: each message is printed once, and a message that can
 * no longer be had is reported, never skipped in silence. It ends after -n messages, when
 * whoever reads its output goes away, on a signal, or (--fail-on-gap) at a gap. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chan.h"
#include "cli.h"
#include "envelope.h"
#include "format.h"
#include "log.h"
#include "position.h"
#include "subscriber.h"
#include "url.h"

#define EX_GAP 3 /* --fail-on-gap met a gap; no sysexits.h value means "messages lost" */
#define PING_DEFAULT 10
#define TOKEN_MAX 8192 /* bytes; the handshake buffer (subscriber.c) holds it with room */

static int json_mode, fail_on_gap;
static long count, seen; /* stop after count messages, when count > 0 */
static long last_n;      /* --last */
static const char *state_file;
static struct pos_table positions;
static char resume[CHAN_MAX_PER_CONN * (sizeof "&since=::" + CHAN_MAX + 20 + ENV_EPOCH_MAX) + 32];
static struct subscriber *sub;
static struct fmt *format; /* --format, or "{msg}"; NULL with --json */
static int color;          /* --format's fields get colours */
static char record_end = '\n';

/* The first line stays as it was before the resume options: scripts and tests match it. */
static void usage(FILE *f, int code)
{
	fputs("usage: chat-listen [-jqv] [-u URL] [-c CHAN]... [-n COUNT]\n", f);
	if (f == stdout)
		fputs("                   [-s POS]... [-f FILE] [--last N] [--fail-on-gap] [--ping SECS]\n"
		      "                   [-0k] [-t T] [--format TEMPLATE] [--color WHEN] [--cacert FILE]\n"
		      "Print the messages published to chatd channels, one per line.\n"
		      "\n"
		      "  -u, --url URL          server (default: $CHAT_URL, else " CHAT_URL_DEFAULT ")\n"
		      "  -c, --chan CHAN        channel to follow; repeat for more (default: $CHAT_CHAN,\n"
		      "                         else " CHAN_DEFAULT ")\n"
		      "  -n, --count COUNT      exit after COUNT messages\n"
		      "  -j, --json             print each envelope {\"chan\",\"seq\",\"epoch\",\"ts\",\"msg\"}\n"
		      "                         as received, and gap notices as they came\n"
		      "      --format TEMPLATE  print each message as TEMPLATE says, with fields {ts}\n"
		      "                         {chan} {sender} {msg} and more (see chat-listen(1))\n"
		      "  -0, --null             end each message with a NUL byte, not a newline\n"
		      "      --color auto|always|never\n"
		      "                         colour the time, channel and sender of --format: on\n"
		      "                         a terminal only (auto, the default), always or never\n"
		      "  -s, --since POS        start after CHAN:SEQ[:EPOCH], or SEQ[:EPOCH] with one\n"
		      "                         channel; repeat for more channels\n"
		      "  -f, --state-file FILE  resume from the positions in FILE, and keep the last\n"
		      "                         one printed per channel there (--since wins)\n"
		      "      --last N           first print the newest N stored messages of each\n"
		      "                         channel without a position (1 to 1000)\n"
		      "      --fail-on-gap      exit 3 when messages were lost, instead of going on\n"
		      "      --ping SECS        ping after SECS of silence, reconnect after twice\n"
		      "                         that (default 10; 0: never)\n"
		      "  -t, --token T          read with token T (default: $CHAT_TOKEN)\n"
		      "      --cacert FILE      for wss, trust the certificate authorities in FILE\n"
		      "  -k, --insecure         for wss, do not check the server's certificate\n"
		      "  -q, --quiet            do not report lost connections\n"
		      "  -v, --verbose          report every connection attempt\n"
		      "  -h, --help             show this help and exit\n"
		      "      --version          show the version and exit\n",
		      f);
	exit(code);
}

/* One record to stdout, ended by a newline (a NUL with -0), flushed. A reader that went
 * away ends us quietly. */
static int print_line(const char *s, size_t len)
{
	if (fwrite(s, 1, len, stdout) == len && putchar(record_end) != EOF && fflush(stdout) != EOF)
		return SUB_CONTINUE;
	if (errno == EPIPE)
		return 0;
	fprintf(stderr, "chat-listen: writing to standard output: %s\n", strerror(errno));
	return EX_IOERR;
}

/* The message as the --format template says, or as "{msg}" without one. */
static int print_formatted(const struct env_msg *m, const char *frame, size_t len)
{
	const char *out;
	size_t outlen;

	if (fmt_render(format, m, frame, len, color, &out, &outlen)) {
		fprintf(stderr, "chat-listen: out of memory\n");
		return EX_SOFTWARE;
	}
	return print_line(out, outlen);
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

/* Messages were lost: say so, and stop there if asked to. */
static int lost(const char *what)
{
	if (fail_on_gap) {
		log_error("chat-listen", "%s; exiting (--fail-on-gap)", what);
		return EX_GAP;
	}
	log_warn("chat-listen", "%s", what);
	return SUB_CONTINUE;
}

/* The server could not resume where we asked: what it still has follows. From here on its
 * first message is the next one expected, so the gap is reported once, not at every
 * message. The state file is left alone until something is printed. */
static int on_gap(const struct env_msg *m, const char *frame, size_t len)
{
	struct pos_gap g;
	struct pos *p;
	char note[600];
	int rc;

	if (pos_gap_parse(m->root, &g)) {
		log_warn("chat-listen", "ignored a gap notice it cannot read: %.200s", frame);
		return SUB_CONTINUE;
	}
	pos_describe_gap(&g, note, sizeof note);
	if (json_mode && (rc = print_line(frame, len)) != SUB_CONTINUE)
		return rc;
	if ((rc = lost(note)) != SUB_CONTINUE)
		return rc;
	if ((p = pos_find(&positions, g.chan)) && p->followed)
		pos_set(p, g.first ? g.first - 1 : 0, g.epoch);
	return SUB_CONTINUE;
}

/* A message later than the next one expected, which the server did not announce with a
 * gap notice. A new epoch starting at 1 only means the channel lost its history (a chatd
 * with the memory broker restarted, say): whatever came after our position is gone, but
 * nothing known was missed, so that is worth a line of information, and a gap only under
 * --fail-on-gap. */
static int jumped(const struct pos *p, const struct env_msg *m, enum pos_verdict v)
{
	char note[600];

	pos_describe_jump(p, m->seq, m->epoch, note, sizeof note);
	if (v == POS_RESET && m->seq == 1 && !fail_on_gap) {
		log_info("chat-listen", "%s", note);
		return SUB_CONTINUE;
	}
	return lost(note);
}

/* Print, then record: a crash in between prints the message again after a restart rather
 * than never. A message at or before the position is one printed already (a replay that
 * overlaps, a server that repeats itself) and is dropped. */
static int on_message(const struct env_msg *m, const char *frame, size_t len)
{
	struct pos *p = pos_find(&positions, m->chan);
	enum pos_verdict v;
	char err[PATH_MAX + 200];
	int rc;

	if (p && !p->followed)
		p = NULL;
	v = pos_judge(p, m->seq, m->epoch);
	if (v == POS_DUP) {
		log_debug("chat-listen", "skipped a message already printed chan=%s seq=%llu",
			  p->chan, (unsigned long long)m->seq);
		return SUB_CONTINUE;
	}
	if (v != POS_NEXT && (rc = jumped(p, m, v)) != SUB_CONTINUE)
		return rc;
	rc = json_mode ? print_line(frame, len) : print_formatted(m, frame, len);
	if (rc != SUB_CONTINUE)
		return rc;
	if (p && m->seq) {
		pos_set(p, m->seq, m->epoch);
		if (state_file && pos_save(&positions, state_file, err, sizeof err)) {
			fprintf(stderr, "chat-listen: %s\n", err);
			return EX_CANTCREAT;
		}
	}
	if (count > 0 && ++seen >= count)
		return 0;
	return SUB_CONTINUE;
}

static int on_frame(void *arg, const char *frame, size_t len)
{
	struct env_msg m;
	int rc;

	if (env_msg_parse(frame, len, &m)) {
		log_warn("chat-listen", "ignored a frame that is not an envelope: %.200s", frame);
		return SUB_CONTINUE;
	}
	if (m.type && !strcmp(m.type, "gap")) {
		rc = on_gap(&m, frame, len);
	} else if (m.type) {
		report_control(&m, frame);
		rc = SUB_CONTINUE;
	} else {
		rc = on_message(&m, frame, len);
	}
	env_msg_free(&m);
	return rc;
}

/* Where to resume on the next connection: it changes with every message printed. */
static const char *resume_query(void *arg)
{
	if (pos_query(&positions, last_n, resume, sizeof resume))
		return ""; /* cannot happen: resume has room for CHAN_MAX_PER_CONN positions */
	return resume;
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

/* A --since, checked before anything else is read. */
struct since {
	const char *chan;
	uint64_t seq;
	char epoch[ENV_EPOCH_MAX + 1];
};

static int parse_since(const char **texts, size_t n, const char **chans, size_t nchans,
		       struct since *out)
{
	char err[300];

	for (size_t i = 0; i < n; i++) {
		if (pos_parse_since(texts[i], chans, nchans, &out[i].chan, &out[i].seq, out[i].epoch,
				    err, sizeof err)) {
			fprintf(stderr, "chat-listen: %s\n", err);
			return EX_USAGE;
		}
		for (size_t j = 0; j < i; j++)
			if (!strcmp(out[j].chan, out[i].chan)) {
				fprintf(stderr, "chat-listen: --since names channel \"%s\" twice\n",
					out[i].chan);
				return EX_USAGE;
			}
	}
	return 0;
}

/* The positions to start from: the state file's, then --since over them (the user said so
 * just now; the file only remembers). The file is written back at once, so a state file
 * that cannot be written is found out before the first message, not after it. */
static int load_positions(const char **chans, size_t nchans, const struct since *since,
			  size_t nsince)
{
	char err[PATH_MAX + 300];
	int rc;

	if (state_file && (rc = pos_load(&positions, state_file, err, sizeof err))) {
		fprintf(stderr, "chat-listen: %s\n", err);
		return rc;
	}
	if (pos_follow(&positions, chans, nchans)) {
		fprintf(stderr, "chat-listen: out of memory\n");
		return EX_SOFTWARE;
	}
	for (size_t i = 0; i < nsince; i++)
		pos_set(pos_find(&positions, since[i].chan), since[i].seq, since[i].epoch);
	for (size_t i = 0; state_file && i < nchans; i++)
		if (pos_unresumable(chans[i]))
			log_warn("chat-listen", "channel %s cannot be resumed (chatd takes since= only "
				 "for names without ':'); after a reconnect or restart it goes on with "
				 "live messages", chans[i]);
	if (state_file && pos_save(&positions, state_file, err, sizeof err)) {
		fprintf(stderr, "chat-listen: %s\n", err);
		return EX_CANTCREAT;
	}
	return 0;
}

/* --color: auto means a terminal that can show colour, to someone who has not asked for
 * none (https://no-color.org); piped output is never coloured, unless always. */
static int parse_color(const char *when, int *out)
{
	const char *term = getenv("TERM"), *no_color = getenv("NO_COLOR");

	if (!strcmp(when, "always"))
		*out = 1;
	else if (!strcmp(when, "never"))
		*out = 0;
	else if (!strcmp(when, "auto"))
		*out = isatty(STDOUT_FILENO) && !(no_color && *no_color) && term && *term &&
		       strcmp(term, "dumb");
	else
		return -1;
	return 0;
}

/* A token goes into an HTTP header: visible ASCII only, so that it can neither end the
 * header early nor add another. The message never shows the token. */
static int check_token(const char *t)
{
	size_t len = strlen(t);

	if (len > TOKEN_MAX) {
		fprintf(stderr, "chat-listen: the token (--token, $CHAT_TOKEN) is longer than %d "
			"bytes\n", TOKEN_MAX);
		return EX_USAGE;
	}
	for (size_t i = 0; i < len; i++)
		if (t[i] < 0x21 || t[i] > 0x7e) {
			fprintf(stderr, "chat-listen: the token (--token, $CHAT_TOKEN) may only hold "
				"visible ASCII characters, no spaces or control characters\n");
			return EX_USAGE;
		}
	return 0;
}

/* The options that do not need the server, checked before anything else happens. */
static int check_output_options(const char *tmpl, const char *when, const char *token,
				const char *cacert)
{
	char err[300];
	FILE *f;
	int rc;

	if (tmpl && json_mode) {
		fprintf(stderr, "chat-listen: --json and --format do not go together "
			"(--format '{json}' prints the envelopes)\n");
		return EX_USAGE;
	}
	if (parse_color(when, &color)) {
		fprintf(stderr, "chat-listen: --color takes auto, always or never, not \"%s\"\n", when);
		return EX_USAGE;
	}
	if (tmpl && !(format = fmt_compile(tmpl, err, sizeof err))) {
		fprintf(stderr, "chat-listen: %s\n", err);
		return EX_USAGE;
	}
	/* Plain output is the template {msg}: a message is printed one way, with or without
	 * --format. */
	if (!json_mode && !format && !(format = fmt_compile("{msg}", err, sizeof err))) {
		fprintf(stderr, "chat-listen: %s\n", err);
		return EX_SOFTWARE;
	}
	if (token && (rc = check_token(token)))
		return rc;
	if (cacert) {
		if (!(f = fopen(cacert, "r"))) {
			fprintf(stderr, "chat-listen: cannot read --cacert %s: %s\n", cacert,
				strerror(errno));
			return EX_NOINPUT;
		}
		fclose(f);
	}
	return 0;
}

static void on_signal(int sig)
{
	sub_interrupt(sub);
}

enum { OPT_VERSION = 256, OPT_LAST, OPT_FAIL_ON_GAP, OPT_PING, OPT_FORMAT, OPT_COLOR, OPT_CACERT };

int main(int argc, char *argv[])
{
	static const struct option longopts[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "chan", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "json", no_argument, NULL, 'j' },
		{ "since", required_argument, NULL, 's' },
		{ "state-file", required_argument, NULL, 'f' },
		{ "last", required_argument, NULL, OPT_LAST },
		{ "fail-on-gap", no_argument, NULL, OPT_FAIL_ON_GAP },
		{ "ping", required_argument, NULL, OPT_PING },
		{ "format", required_argument, NULL, OPT_FORMAT },
		{ "null", no_argument, NULL, '0' },
		{ "color", required_argument, NULL, OPT_COLOR },
		{ "token", required_argument, NULL, 't' },
		{ "cacert", required_argument, NULL, OPT_CACERT },
		{ "insecure", no_argument, NULL, 'k' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, OPT_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	const char *url_text = cli_env("CHAT_URL", CHAT_URL_DEFAULT);
	const char *tmpl = NULL, *when = "auto";
	struct sub_options so = { .verbosity = SUB_NORMAL, .token = cli_env("CHAT_TOKEN", NULL) };
	const char *chans[CHAN_MAX_PER_CONN], *since_text[CHAN_MAX_PER_CONN];
	const struct sub_hooks hooks = { on_frame, on_tick, resume_query, NULL };
	int c, status;
	size_t nchans = 0, nsince = 0;
	struct since since[CHAN_MAX_PER_CONN];
	long ping = PING_DEFAULT;
	struct sigaction sa;
	char err[512], *path;
	struct url url;

	while ((c = getopt_long(argc, argv, "u:c:n:js:f:0t:kqvh", longopts, NULL)) != -1) {
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
		case 's':
			if (nsince == CHAN_MAX_PER_CONN) {
				fprintf(stderr, "chat-listen: at most one --since per channel\n");
				return EX_USAGE;
			}
			since_text[nsince++] = optarg;
			break;
		case 'f': state_file = optarg; break;
		case OPT_LAST:
			if (cli_parse_count(optarg, 1000, &last_n) || last_n < 1) {
				fprintf(stderr, "chat-listen: --last needs a number from 1 to 1000, not \"%s\"\n",
					optarg);
				return EX_USAGE;
			}
			break;
		case OPT_FAIL_ON_GAP: fail_on_gap = 1; break;
		case OPT_PING:
			if (cli_parse_count(optarg, SUB_PING_MAX, &ping)) {
				fprintf(stderr, "chat-listen: --ping needs seconds from 0 to %d, not \"%s\"\n",
					SUB_PING_MAX, optarg);
				return EX_USAGE;
			}
			break;
		case OPT_FORMAT: tmpl = optarg; break;
		case '0': record_end = '\0'; break;
		case OPT_COLOR: when = optarg; break;
		case 't': so.token = optarg; break;
		case OPT_CACERT: so.cacert = optarg; break;
		case 'k': so.insecure = 1; break;
		case 'q': so.verbosity = SUB_QUIET; break;
		case 'v': so.verbosity = SUB_VERBOSE; break;
		case 'h': usage(stdout, 0); break;
		case OPT_VERSION: puts("chat-listen (chatd) " CHAT_VERSION); return 0;
		default: usage(stderr, EX_USAGE);
		}
	}
	if (optind < argc)
		usage(stderr, EX_USAGE);
	if (nchans == 0)
		chans[nchans++] = cli_env("CHAT_CHAN", CHAN_DEFAULT);
	if (so.token && !so.token[0])
		so.token = NULL;
	if ((status = check_output_options(tmpl, when, so.token, so.cacert)))
		goto out;
	if (url_parse(url_text, &url, err, sizeof err)) {
		fprintf(stderr, "chat-listen: %s\n", err);
		status = EX_USAGE;
		goto out;
	}
	if ((status = subscription_path(&url, chans, nchans, &path)))
		goto out;
	log_set_level(so.verbosity >= SUB_VERBOSE ? LOGL_DEBUG : LOGL_INFO);
	if ((status = parse_since(since_text, nsince, chans, nchans, since)) ||
	    (status = load_positions(chans, nchans, since, nsince))) {
		free(path);
		goto out;
	}

	so.ping_secs = (unsigned)ping;
	sub = sub_new(&url, path, &so, &hooks, err, sizeof err);
	free(path);
	if (!sub) {
		fprintf(stderr, "chat-listen: %s\n", err);
		status = EX_SOFTWARE;
		goto out;
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
out:
	pos_free(&positions);
	fmt_free(format);
	return status;
}
