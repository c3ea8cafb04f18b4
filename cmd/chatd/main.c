/* chatd: the relay server. Reads the options, builds one libuv loop with libwebsockets
 * (HTTP + WebSocket) and the broker on it, runs until SIGINT/SIGTERM, then closes every
 * WebSocket with 1001 and exits 0. */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "cli.h"
#include "hub.h"
#include "log.h"
#include "sentinel.h"
#include "server.h"
#include "uvpoll.h"

#define SHUTDOWN_GRACE_MS 1500

static void usage(FILE *f)
{
	fprintf(f,
		"usage: chatd [-l ADDR:PORT] [-r URL] [--max-message SIZE] [--history N]\n"
		"             [--history-ttl SECONDS] [--idempotency-window SECONDS]\n"
		"             [--redis-wait N] [--jwt-secret-file FILE] [--api-key-file FILE]\n"
		"             [--no-auth] [-v|-q]\n"
		"\n"
		"Relay JSON messages from HTTP POSTs and WebSocket clients to WebSocket subscribers.\n"
		"\n"
		"  -l, --listen ADDR:PORT    where to serve HTTP and WebSocket (default 127.0.0.1:3000;\n"
		"                            :PORT for every interface, unix:/PATH for a UNIX socket)\n"
		"  -r, --redis URL           join every chatd on this Redis: redis://[[USER]:PASS@]HOST[:PORT][/DB]\n"
		"                            or unix:///PATH (default: embedded broker, this node only)\n"
		"      --max-message SIZE    largest POST body or WebSocket message (default 64K)\n"
		"      --history N           messages kept per channel for /history (default 1000; 0: none)\n"
		"      --history-ttl SECONDS and for at most this long (default 86400; 0: no age limit)\n"
		"      --idempotency-window SECONDS\n"
		"                            how long a publish's idempotency key is remembered\n"
		"                            (default 86400; 0: keys are ignored)\n"
		"      --redis-wait N        acknowledge a publish only once N Redis replicas have it\n"
		"      --sentinel HOST:PORT[,HOST:PORT...]  find the Redis master through these\n"
		"      --sentinel-master NAME              Redis Sentinels, by this master name\n"
		"      --jwt-secret-file FILE  accept JWTs signed (HS256) with the secret in FILE\n"
		"      --api-key-file FILE   accept the API keys listed in FILE\n"
		"      --no-auth             serve everyone on a non-loopback address (no tokens)\n"
		"      --max-connections N   connections in all (default: what the file limit allows)\n"
		"      --max-connections-per-ip N  from one client address (default 1000; 0: no cap)\n"
		"      --publish-rate N      publishes a second per user, or per address without a\n"
		"                            token name (default 0: no limit)\n"
		"      --publish-burst N     publishes a user may save up (default 2 x the rate)\n"
		"      --tls-cert FILE       serve https and wss with this certificate (PEM, with\n"
		"      --tls-key FILE        its chain) and private key\n"
		"      --allow-origin ORIGIN let pages from ORIGIN (like https://chat.example.com;\n"
		"                            * for any) use chatd; repeatable (default: own origin)\n"
		"      --ping-interval SECONDS  ping an idle WebSocket after this long, close it\n"
		"                            after twice as long without an answer (default 30)\n"
		"      --coalesce MICROSECONDS  under load, write to subscribers at most this\n"
		"                            often, several messages a write (default 500; 0: at\n"
		"                            once)\n"
		"      --log-format text|json  log lines as text (default) or JSON objects\n"
		"  -v, --verbose             log connections and requests too\n"
		"  -q, --quiet               log errors only\n"
		"  -h, --help                show this help\n"
		"      --version             show the version\n"
		"\n"
		"Environment: CHATD_LISTEN, CHATD_REDIS. See chatd(1) and chat-protocol(7).\n");
}

static int addr_is_loopback(const struct sockaddr *sa)
{
	const struct in6_addr *a6 = &((const struct sockaddr_in6 *)sa)->sin6_addr;

	if (sa->sa_family == AF_INET)
		return ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24 == 127;
	return sa->sa_family == AF_INET6 &&
	       (IN6_IS_ADDR_LOOPBACK(a6) || (IN6_IS_ADDR_V4MAPPED(a6) && a6->s6_addr[12] == 127));
}

/* An interface name counts as local only when it is a loopback interface and every
 * address on it is a loopback one: lo may also carry a service address (anycast, LVS),
 * and lws would bind whichever address it finds first. */
static int iface_is_loopback(const char *name)
{
	struct ifaddrs *ifs, *i;
	int found = 0, local = 1;

	if (getifaddrs(&ifs))
		return 0;
	for (i = ifs; i; i = i->ifa_next) {
		if (strcmp(i->ifa_name, name) || !i->ifa_addr ||
		    (i->ifa_addr->sa_family != AF_INET && i->ifa_addr->sa_family != AF_INET6))
			continue;
		found = 1;
		if (!(i->ifa_flags & IFF_LOOPBACK) || !addr_is_loopback(i->ifa_addr))
			local = 0;
	}
	freeifaddrs(ifs);
	return found && local;
}

/* Only this machine can connect: a UNIX socket, a loopback address or a loopback
 * interface. */
static int listen_is_local(const struct chatd_config *cfg)
{
	struct sockaddr_in a4 = { .sin_family = AF_INET };
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6 };

	if (cfg->unix_path)
		return 1;
	if (!cfg->host[0])
		return 0;
	if (inet_pton(AF_INET, cfg->host, &a4.sin_addr) == 1)
		return addr_is_loopback((struct sockaddr *)&a4);
	if (inet_pton(AF_INET6, cfg->host, &a6.sin6_addr) == 1)
		return addr_is_loopback((struct sockaddr *)&a6);
	return iface_is_loopback(cfg->host);
}

/* An IPv4 address to listen on. lws 4.1.6 binds an IPv6 socket to "::" (every interface,
 * both families) when given one, with the address in sin6_flowinfo: it must get an IPv4
 * socket for it. */
static int listen_is_ipv4(const struct chatd_config *cfg)
{
	struct in_addr a4;

	return cfg->host[0] && inet_pton(AF_INET, cfg->host, &a4) == 1;
}

/* The address chatd really listens on, for the start-up line: "127.0.0.1:3000" for a
 * bare port, "[::1]:3000", "*:3000" for every interface, "127.0.0.1:3000 (lo)" for an
 * interface, resolved the way lws resolves it. */
static void listen_address(const struct chatd_config *cfg, char *out, size_t outlen)
{
	struct sockaddr_in6 sa;
	char addr[INET6_ADDRSTRLEN];
	unsigned char probe[sizeof(struct in6_addr)];

	if (cfg->unix_path)
		snprintf(out, outlen, "unix:%s", cfg->unix_path);
	else if (!cfg->host[0])
		snprintf(out, outlen, "*:%d", cfg->port);
	else if (inet_pton(AF_INET, cfg->host, probe) == 1)
		snprintf(out, outlen, "%s:%d", cfg->host, cfg->port);
	else if (inet_pton(AF_INET6, cfg->host, probe) == 1)
		snprintf(out, outlen, "[%s]:%d", cfg->host, cfg->port);
	else {
		memset(&sa, 0, sizeof sa);
		if (lws_interface_to_sa(1, cfg->host, (struct sockaddr_in *)&sa, sizeof sa) ||
		    !inet_ntop(AF_INET6, &sa.sin6_addr, addr, sizeof addr))
			snprintf(out, outlen, "%s:%d", cfg->host, cfg->port);
		else if (IN6_IS_ADDR_V4MAPPED(&sa.sin6_addr))
			snprintf(out, outlen, "%s:%d (%s)", addr + 7, cfg->port, cfg->host);
		else
			snprintf(out, outlen, "[%s]:%d (%s)", addr, cfg->port, cfg->host);
	}
}

static int parse_listen(const char *s, struct chatd_config *cfg)
{
	char err[200];

	snprintf(cfg->listen, sizeof cfg->listen, "%s", s);
	if (!strncmp(s, "unix:", 5) && s[5]) {
		cfg->unix_path = s + 5;
		return 0;
	}
	strcpy(cfg->host, "127.0.0.1");
	if (s[0] == ':' || !strncmp(s, "*:", 2)) {
		cfg->host[0] = '\0';
		return url_split_hostport(s + (s[0] == '*' ? 1 : 0) + 1, cfg->host, sizeof cfg->host,
					  &cfg->port, err, sizeof err) ? (fprintf(stderr, "chatd: --listen: %s\n", err), -1)
									: 0;
	}
	if (url_split_hostport(s, cfg->host, sizeof cfg->host, &cfg->port, err, sizeof err)) {
		fprintf(stderr, "chatd: --listen %s: %s\n", s, err);
		return -1;
	}
	if (!strcmp(cfg->host, "localhost"))
		strcpy(cfg->host, "127.0.0.1");
	return 0;
}

/* lws reports a failed bind without the reason; try it first so the user gets errno. */
static int check_bindable(const struct chatd_config *cfg)
{
	struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons((uint16_t)cfg->port) };
	struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons((uint16_t)cfg->port) };
	int v6 = strchr(cfg->host, ':') != NULL, one = 1, fd, rc;

	if (cfg->unix_path || !cfg->host[0])
		return 0;
	if (v6 ? inet_pton(AF_INET6, cfg->host, &a6.sin6_addr) != 1
	       : inet_pton(AF_INET, cfg->host, &a4.sin_addr) != 1)
		return 0; /* an interface name: let lws resolve it */
	fd = socket(v6 ? AF_INET6 : AF_INET, SOCK_STREAM, 0);
	if (fd < 0)
		return 0;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
	rc = v6 ? bind(fd, (struct sockaddr *)&a6, sizeof a6) : bind(fd, (struct sockaddr *)&a4, sizeof a4);
	if (rc)
		log_error("chatd", "cannot listen on %s: %s", cfg->listen, strerror(errno));
	close(fd);
	return rc;
}

/* hiredis resolves host names with a blocking getaddrinfo on every (re)connect, which
 * would stall the whole event loop while DNS is slow. Resolve once, before the loop
 * runs, and connect by address from then on. */
static int resolve_redis_host(struct redis_url *u)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM }, *res;
	unsigned char probe[sizeof(struct in6_addr)];
	char addr[INET6_ADDRSTRLEN];
	int rc;

	if (u->is_unix || inet_pton(AF_INET, u->host, probe) == 1 || inet_pton(AF_INET6, u->host, probe) == 1)
		return 0;
	if ((rc = getaddrinfo(u->host, NULL, &hints, &res))) {
		log_error("chatd", "cannot resolve redis host %s: %s", u->host, gai_strerror(rc));
		return -1;
	}
	if (res->ai_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)res->ai_addr)->sin_addr, addr, sizeof addr);
	else
		inet_ntop(AF_INET6, &((struct sockaddr_in6 *)res->ai_addr)->sin6_addr, addr, sizeof addr);
	freeaddrinfo(res);
	log_info("chatd", "redis host %s is %s (resolved once, at start)", u->host, addr);
	snprintf(u->host, sizeof u->host, "%s", addr);
	return 0;
}

static void lws_log_line(int level, const char *line)
{
	size_t n = strlen(line);

	while (n && (line[n - 1] == '\n' || line[n - 1] == '\r'))
		n--;
	log_msg(level == LLL_ERR ? LOGL_ERROR : level == LLL_WARN ? LOGL_WARN : LOGL_DEBUG, "lws",
		"%.*s", (int)n, line);
}

static void on_broker_state(void *ud, int up, const char *why)
{
	struct server *srv = ud;

	if (up) {
		log_info("broker", "%s is up", srv->broker ? srv->broker->name : "broker");
		srv->metrics.reconnects += srv->broker_was_down;
		srv->broker_was_down = 0;
	} else {
		log_error("broker", "%s", why ? why : "down");
		srv->broker_was_down = 1;
	}
}

static const struct broker_events broker_events = {
	.message = hub_deliver,
	.ready = hub_ready,
	.state = on_broker_state,
};

static void on_usr1(uv_signal_t *sig, int signum)
{
	metrics_status(sig->data);
}

static void on_status_timer(uv_timer_t *t)
{
	metrics_status(t->data);
}

static void server_finish(struct server *srv)
{
	struct broker *b = srv->broker;

	if (!srv->ctx)
		return;
	uv_timer_stop(&srv->stop_timer);
	srv->broker = NULL; /* closing sessions must not talk to a freed broker */
	broker_free(b);
	lws_context_destroy(srv->ctx); /* first call: starts closing; main finishes it */
	srv->dying_ctx = srv->ctx;
	srv->ctx = NULL;
	for (int i = 0; i < 2; i++)
		uv_close((uv_handle_t *)&srv->sig[i], NULL);
	uv_close((uv_handle_t *)&srv->stop_timer, NULL);
	uv_close((uv_handle_t *)&srv->usr1, NULL);
	uv_close((uv_handle_t *)&srv->flush, NULL);
	uv_close((uv_handle_t *)&srv->flush_timer, NULL);
	uv_close((uv_handle_t *)&srv->status_timer, NULL);
}

static void on_stop_timer(uv_timer_t *t)
{
	struct server *srv = t->data;

	/* Re-checked every 50 ms until every WebSocket has closed or the grace is over. */
	if (srv->nsessions && uv_now(srv->loop) < srv->stop_deadline)
		return;
	server_finish(srv);
}

static void on_signal(uv_signal_t *h, int signum)
{
	struct server *srv = h->data;

	if (srv->draining) {
		log_info("chatd", "second %s: exiting now", strsignal(signum));
		server_finish(srv);
		return;
	}
	srv->draining = 1;
	log_info("chatd", "%s: closing %u subscriber connections and exiting", strsignal(signum), srv->nsessions);
	ws_close_all(srv);
	srv->stop_deadline = uv_now(srv->loop) + SHUTDOWN_GRACE_MS;
	uv_timer_start(&srv->stop_timer, on_stop_timer, 0, 50);
}

/* What the options allocated, freed on every way out of main (usage errors included),
 * so a sanitizer build reports real leaks only. */
static struct chatd_config *exit_cfg;

static void free_config(void)
{
	auth_free(exit_cfg->auth);
	free(exit_cfg->origins);
	exit_cfg->auth = NULL;
	exit_cfg->origins = NULL;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "listen", required_argument, NULL, 'l' },
		{ "redis", required_argument, NULL, 'r' },
		{ "max-message", required_argument, NULL, 'M' },
		{ "history", required_argument, NULL, 'H' },
		{ "history-ttl", required_argument, NULL, 'T' },
		{ "idempotency-window", required_argument, NULL, 'K' },
		{ "redis-wait", required_argument, NULL, 'W' },
		{ "jwt-secret-file", required_argument, NULL, 'J' },
		{ "api-key-file", required_argument, NULL, 'A' },
		{ "no-auth", no_argument, NULL, 'N' },
		{ "max-connections", required_argument, NULL, 'C' },
		{ "max-connections-per-ip", required_argument, NULL, 'P' },
		{ "publish-rate", required_argument, NULL, 'R' },
		{ "publish-burst", required_argument, NULL, 'B' },
		{ "ping-interval", required_argument, NULL, 'I' },
		{ "coalesce", required_argument, NULL, 'X' },
		{ "tls-cert", required_argument, NULL, 'c' },
		{ "tls-key", required_argument, NULL, 'k' },
		{ "allow-origin", required_argument, NULL, 'O' },
		{ "log-format", required_argument, NULL, 'F' },
		{ "sentinel", required_argument, NULL, 's' },
		{ "sentinel-master", required_argument, NULL, 'm' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "quiet", no_argument, NULL, 'q' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	static const struct lws_protocol_vhost_options pvo_default = { NULL, NULL, "default", "1" };
	static const struct lws_protocol_vhost_options pvo = { NULL, &pvo_default, "chat", "" };
	struct lws_protocols protocols[] = {
		{ "http", http_callback, http_req_size(), 0, 0, NULL, 0 },
		{ "chat", ws_callback, ws_sess_size(), WS_RX_BUFFER, 0, NULL, WS_TX_PACKET },
		{ NULL, NULL, 0, 0, 0, NULL, 0 },
	};
	/* static: free_config reads it from atexit, after main's frame is gone */
	static struct chatd_config cfg = {
		.max_message = 64 * 1024,
		.max_conns_per_ip = 1000,
		.ping_s = 30,
		.coalesce_us = 500,
		.store = { .history = 1000, .history_ttl_s = 86400, .key_window_s = 86400 },
	};
	long n;
	const char *listen = cli_env("CHATD_LISTEN", "127.0.0.1:3000");
	const char *redis = cli_env("CHATD_REDIS", NULL);
	struct lws_context_creation_info info;
	struct server srv = { .cfg = &cfg };
	int verbosity = LOGL_INFO, c, no_auth = 0, max_conns_given = 0;
	const char *tls_cert = NULL, *tls_key = NULL;
	struct rlimit fds;
	lws_retry_bo_t idle = { 0 };
	uv_loop_t loop;
	void *loops[1];
	char err[300], where[sizeof cfg.listen + 80];

	exit_cfg = &cfg;
	atexit(free_config);
	while ((c = getopt_long(argc, argv, "l:r:vqh", longopts, NULL)) != -1) {
		switch (c) {
		case 'l': listen = optarg; break;
		case 'r': redis = optarg; break;
		case 'M':
			if (cli_parse_size(optarg, &cfg.max_message) || cfg.max_message < 16 ||
			    cfg.max_message > (64u << 20)) {
				fprintf(stderr, "chatd: --max-message: want a size from 16 to 64M, like 64K\n");
				return EX_USAGE;
			}
			break;
		case 'H':
			if (cli_parse_count(optarg, 1000000, &n)) {
				fprintf(stderr, "chatd: --history: want a number of messages from 0 to 1000000\n");
				return EX_USAGE;
			}
			cfg.store.history = (size_t)n;
			break;
		case 'T':
			if (cli_parse_count(optarg, 100L * 365 * 86400, &n)) {
				fprintf(stderr, "chatd: --history-ttl: want seconds (0 for no age limit)\n");
				return EX_USAGE;
			}
			cfg.store.history_ttl_s = (unsigned)n;
			break;
		case 'K':
			if (cli_parse_count(optarg, 100L * 365 * 86400, &n)) {
				fprintf(stderr, "chatd: --idempotency-window: want seconds (0 to ignore keys)\n");
				return EX_USAGE;
			}
			cfg.store.key_window_s = (unsigned)n;
			break;
		case 'W':
			if (cli_parse_count(optarg, 64, &n)) {
				fprintf(stderr, "chatd: --redis-wait: want a number of replicas from 0 to 64\n");
				return EX_USAGE;
			}
			cfg.store.replicas = (unsigned)n;
			break;
		case 'J':
		case 'A':
			if (!cfg.auth && !(cfg.auth = auth_new())) {
				fprintf(stderr, "chatd: out of memory\n");
				return EX_OSERR;
			}
			if ((c == 'J' ? auth_load_jwt_secret : auth_load_api_keys)(cfg.auth, optarg, err, sizeof err)) {
				fprintf(stderr, "chatd: --%s: %s\n", c == 'J' ? "jwt-secret-file" : "api-key-file", err);
				return EX_USAGE;
			}
			break;
		case 'N': no_auth = 1; break;
		case 'F':
			if (strcmp(optarg, "text") && strcmp(optarg, "json")) {
				fprintf(stderr, "chatd: --log-format: want text or json\n");
				return EX_USAGE;
			}
			log_set_format(strcmp(optarg, "json") ? LOG_TEXT : LOG_JSON);
			break;
		case 's': cfg.store.sentinels = optarg; break;
		case 'm': cfg.store.sentinel_master = optarg; break;
		case 'c': tls_cert = optarg; break;
		case 'k': tls_key = optarg; break;
		case 'O': {
			const char **no = realloc(cfg.origins, (size_t)(cfg.norigins + 1) * sizeof *no);
			if (no)
				cfg.origins = no;
			if (!no || (strcmp(optarg, "*") && strncmp(optarg, "http://", 7) && strncmp(optarg, "https://", 8)) ||
			    strlen(optarg) > 190 || (strlen(optarg) > 1 && optarg[strlen(optarg) - 1] == '/')) {
				fprintf(stderr, "chatd: --allow-origin: want an origin like https://chat.example.com (scheme, host, optional port, no path) or *\n");
				return EX_USAGE;
			}
			cfg.origins[cfg.norigins++] = optarg;
			break;
		}
		case 'C':
		case 'P':
			if (cli_parse_count(optarg, 1000000, &n)) {
				fprintf(stderr, "chatd: --%s: want a count (0 for no cap)\n",
					c == 'C' ? "max-connections" : "max-connections-per-ip");
				return EX_USAGE;
			}
			*(c == 'C' ? &cfg.max_conns : &cfg.max_conns_per_ip) = (unsigned)n;
			max_conns_given |= c == 'C';
			break;
		case 'R':
		case 'B': {
			char *end;
			double v = strtod(optarg, &end);
			if (c == 'R' && !strcmp(end, "/s"))
				end += 2;
			if (end == optarg || *end || !(v >= 0 && v <= 1e6) || (c == 'B' && v < 1)) {
				fprintf(stderr, "chatd: --%s: want a number%s\n", c == 'R' ? "publish-rate" : "publish-burst",
					c == 'R' ? " of messages a second, like 50 or 50/s" : " of messages, 1 or more");
				return EX_USAGE;
			}
			*(c == 'R' ? &cfg.publish_rate : &cfg.publish_burst) = v;
			break;
		}
		case 'I':
			if (cli_parse_count(optarg, 3600, &n) || n < 1) {
				fprintf(stderr, "chatd: --ping-interval: want seconds from 1 to 3600\n");
				return EX_USAGE;
			}
			cfg.ping_s = (unsigned)n;
			break;
		case 'X':
			if (cli_parse_count(optarg, 100000, &n)) {
				fprintf(stderr, "chatd: --coalesce: want microseconds from 0 to 100000\n");
				return EX_USAGE;
			}
			cfg.coalesce_us = (unsigned)n;
			break;
		case 'v': verbosity = LOGL_DEBUG; break;
		case 'q': verbosity = LOGL_ERROR; break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("chatd (chatd) %s\n", CHAT_VERSION); return 0;
		default: usage(stderr); return EX_USAGE;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "chatd: unexpected argument \"%s\"\n", argv[optind]);
		usage(stderr);
		return EX_USAGE;
	}
	log_set_level(verbosity);
	if (parse_listen(listen, &cfg))
		return EX_USAGE;
	if (!tls_cert != !tls_key) {
		fprintf(stderr, "chatd: --tls-cert and --tls-key go together\n");
		return EX_USAGE;
	}
	if (tls_cert && (access(tls_cert, R_OK) || access(tls_key, R_OK))) {
		fprintf(stderr, "chatd: cannot read %s: %s\n", access(tls_cert, R_OK) ? tls_cert : tls_key, strerror(errno));
		return EX_NOINPUT;
	}
	cfg.tls = tls_cert != NULL;
	if (cfg.auth && no_auth) {
		fprintf(stderr, "chatd: --no-auth contradicts --jwt-secret-file and --api-key-file\n");
		return EX_USAGE;
	}
	if (!cfg.auth && !no_auth && !listen_is_local(&cfg)) {
		fprintf(stderr, "chatd: refusing to serve %s without authentication: anyone who can reach it could read and publish.\n"
				"chatd: give --jwt-secret-file FILE or --api-key-file FILE, or --no-auth if that is really what you want\n",
			cfg.listen);
		return EX_USAGE;
	}
	if (redis) {
		if (url_parse_redis(redis, &cfg.redis, err, sizeof err)) {
			fprintf(stderr, "chatd: --redis: %s\n", err);
			return EX_USAGE;
		}
		cfg.use_redis = 1;
	}
	if (!cfg.store.sentinels != !cfg.store.sentinel_master) {
		fprintf(stderr, "chatd: --sentinel and --sentinel-master go together\n");
		return EX_USAGE;
	}
	if (cfg.store.sentinels) {
		struct sentinel_addr addrs[SENTINEL_MAX_ADDRS];
		if (sentinel_parse_addrs(cfg.store.sentinels, addrs, SENTINEL_MAX_ADDRS, err, sizeof err) < 0) {
			fprintf(stderr, "chatd: --sentinel: %s\n", err);
			return EX_USAGE;
		}
		if (cfg.redis.is_unix) {
			fprintf(stderr, "chatd: --sentinel finds a TCP master: -r may give only credentials and a database, like redis://:PASSWORD@/0\n");
			return EX_USAGE;
		}
		cfg.use_redis = 1;
	}
	if (cfg.store.replicas && !cfg.use_redis) {
		fprintf(stderr, "chatd: --redis-wait needs a Redis broker (-r URL or --sentinel)\n");
		return EX_USAGE;
	}
	if (!cfg.publish_burst)
		cfg.publish_burst = cfg.publish_rate * 2 < 1 ? 1 : cfg.publish_rate * 2;
	/* As many connections as the hard file limit allows, keeping some descriptors for
	 * Redis, listeners and logs. */
	if (!getrlimit(RLIMIT_NOFILE, &fds) && fds.rlim_cur < fds.rlim_max) {
		fds.rlim_cur = fds.rlim_max;
		setrlimit(RLIMIT_NOFILE, &fds);
	}
	if (!max_conns_given && !getrlimit(RLIMIT_NOFILE, &fds))
		cfg.max_conns = fds.rlim_cur > 164 ? (unsigned)(fds.rlim_cur - 64) : 100;
	signal(SIGPIPE, SIG_IGN);
	if (check_bindable(&cfg))
		return EX_UNAVAILABLE;
	if (cfg.use_redis && !cfg.store.sentinels && resolve_redis_host(&cfg.redis))
		return EX_UNAVAILABLE;

	lwslog_set_level(getenv("CHATD_LWS_DEBUG") ? 0xfff : verbosity >= LOGL_DEBUG ? LLL_ERR | LLL_WARN : LLL_ERR, lws_log_line);
	srv.flush_tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (srv.flush_tfd < 0) {
		log_error("chatd", "cannot create a timer: %s", strerror(errno));
		return EX_OSERR;
	}
	uv_loop_init(&loop);
	srv.loop = &loop;
	/* Not with TLS: there a write that finds the socket full must be repeated as it was,
	 * so lws learns writability from the kernel alone. */
	if (!cfg.tls)
		uvpoll_init(&loop);
	srv.broker = cfg.use_redis ? broker_redis_new(&loop, &cfg.redis, &cfg.store, &broker_events, &srv)
				   : broker_memory_new(&cfg.store, &broker_events, &srv);
	if (!srv.broker) {
		log_error("chatd", "out of memory");
		return EX_OSERR;
	}

	memset(&info, 0, sizeof info);
	loops[0] = &loop;
	info.foreign_loops = loops;
	info.options = LWS_SERVER_OPTION_LIBUV;
	if (cfg.tls) {
		info.options |= LWS_SERVER_OPTION_DO_SSL_GLOBAL_INIT;
		info.ssl_cert_filepath = tls_cert;
		info.ssl_private_key_filepath = tls_key;
		info.alpn = "http/1.1"; /* HTTP/2 would bypass what the h1 paths check (see man) */
	}
	info.port = cfg.unix_path ? 0 : cfg.port;
	info.iface = cfg.unix_path ? cfg.unix_path : cfg.host[0] ? cfg.host : NULL;
	if (cfg.unix_path)
		info.options |= LWS_SERVER_OPTION_UNIX_SOCK;
	else if (listen_is_ipv4(&cfg))
		info.options |= LWS_SERVER_OPTION_DISABLE_IPV6;
	info.protocols = protocols;
	info.pvo = &pvo;
	info.user = &srv;
	info.timeout_secs = HTTP_TIMEOUT_S;         /* headers, and each silence in a body */
	info.timeout_secs_ah_idle = HTTP_TIMEOUT_S; /* slowloris: no holding a header buffer */
	info.max_http_header_data = 8192;
	info.max_http_header_pool = 256; /* requests having their headers read at once */
	idle.secs_since_valid_ping = (uint16_t)cfg.ping_s;
	idle.secs_since_valid_hangup = (uint16_t)(2 * cfg.ping_s);
	info.retry_and_idle_policy = &idle;
	srv.ctx = lws_create_context(&info);
	if (!srv.ctx) {
		log_error("chatd", "cannot start the server on %s (see the lws error above)", cfg.listen);
		broker_free(srv.broker);
		uvpoll_close();
		uv_run(&loop, UV_RUN_DEFAULT);
		uv_loop_close(&loop);
		return EX_UNAVAILABLE;
	}
	for (int i = 0; i < 2; i++) {
		uv_signal_init(&loop, &srv.sig[i]);
		srv.sig[i].data = &srv;
		uv_signal_start(&srv.sig[i], on_signal, i ? SIGTERM : SIGINT);
	}
	uv_timer_init(&loop, &srv.stop_timer);
	srv.stop_timer.data = &srv;
	limits_init(&srv);
	uv_check_init(&loop, &srv.flush);
	srv.flush.data = &srv;
	uv_poll_init(&loop, &srv.flush_timer, srv.flush_tfd);
	srv.flush_timer.data = &srv;
	srv.coalesce_ns = (uint64_t)cfg.coalesce_us * 1000;
	/* A status line on SIGUSR1, and every 10 s at -v. */
	srv.metrics.status_at = uv_now(&loop);
	uv_signal_init(&loop, &srv.usr1);
	srv.usr1.data = &srv;
	uv_signal_start(&srv.usr1, on_usr1, SIGUSR1);
	uv_unref((uv_handle_t *)&srv.usr1);
	uv_timer_init(&loop, &srv.status_timer);
	srv.status_timer.data = &srv;
	if (verbosity >= LOGL_DEBUG)
		uv_timer_start(&srv.status_timer, on_status_timer, 10000, 10000);
	uv_unref((uv_handle_t *)&srv.status_timer);

	listen_address(&cfg, where, sizeof where);
	log_info("chatd", "listening on %s%s broker=%s auth=%s max-message=%zu history=%zu history-ttl=%us version=%s",
		 cfg.unix_path ? "" : cfg.tls ? "https://" : "http://", where, srv.broker->name,
		 cfg.auth ? "tokens" : "none", cfg.max_message,
		 cfg.store.history, cfg.store.history_ttl_s, CHAT_VERSION);
	uv_run(&loop, UV_RUN_DEFAULT);

	/* With a foreign libuv loop, lws frees the context only on a second call, once the
	 * loop has run the closes of its handles. */
	if (srv.dying_ctx)
		lws_context_destroy(srv.dying_ctx);
	hub_free(&srv);
	limits_free(&srv);
	uvpoll_close();
	uv_run(&loop, UV_RUN_NOWAIT); /* its timer's close, and uvpoll's handles' */
	close(srv.flush_tfd); /* its poll handle was closed with the others */
	if (uv_loop_close(&loop))
		log_debug("chatd", "event loop closed with handles still open");
	log_info("chatd", "stopped");
	return 0;
}
