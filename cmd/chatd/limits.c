/* limits.c: what keeps one client from hurting the others: connections in total and
 * per client address, and publishes per second per user (or per address).
 *
 * Connections are counted when lws hands over a new socket and uncounted when that
 * wsi is destroyed, whatever it became (HTTP, WebSocket, event stream); a connection
 * past a cap is closed before a byte is read. The publish rate is a token bucket per
 * user: RATE tokens a second, at most BURST saved up. Full buckets are forgotten every
 * minute, so idle publishers cost nothing. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include "log.h"
#include "server.h"

struct ip_count {
	unsigned n;
	int warned; /* logged once per burst of refusals */
	char ip[48]; /* its key in by_ip */
};

struct bucket {
	double tokens;
	uint64_t last_ms;
};

void limits_peer(struct lws *wsi, char ip[48])
{
	lws_get_peer_simple(wsi, ip, 48);
	if (!strncmp(ip, "::ffff:", 7)) /* v4-mapped: the IPv4 address, as users know it */
		memmove(ip, ip + 7, strlen(ip + 7) + 1);
}

static void wsi_key(const struct lws *wsi, char key[24])
{
	snprintf(key, 24, "%p", (const void *)wsi);
}

/* The peer of a socket, as limits_peer writes it; "local" for a UNIX socket. */
static void fd_peer(int fd, char ip[48])
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof ss;

	strcpy(ip, "local");
	if (getpeername(fd, (struct sockaddr *)&ss, &len))
		return;
	if (ss.ss_family == AF_INET)
		inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, ip, 48);
	else if (ss.ss_family == AF_INET6) {
		const struct in6_addr *a = &((struct sockaddr_in6 *)&ss)->sin6_addr;
		if (IN6_IS_ADDR_V4MAPPED(a))
			inet_ntop(AF_INET, &a->s6_addr[12], ip, 48);
		else
			inet_ntop(AF_INET6, a, ip, 48);
	}
}

static void limits_uncount(struct limits *l, struct ip_count *c);

int limits_conn_open(struct server *srv, int fd)
{
	const struct chatd_config *cfg = srv->cfg;
	struct limits *l = &srv->limits;
	char ip[48];
	struct ip_count *c;

	fd_peer(fd, ip);
	if (l->pending) { /* let in, but lws never made its wsi: uncount it */
		limits_uncount(l, l->pending);
		l->pending = NULL;
	}
	if (cfg->max_conns && l->nconns >= cfg->max_conns) {
		srv->metrics.conn_refused++;
		if (!l->full_warned++)
			log_warn("limits", "connection refused: %u connections open (--max-connections)", l->nconns);
		return -1;
	}
	l->full_warned = 0;
	if (!(c = strmap_get(&l->by_ip, ip))) {
		if (!(c = calloc(1, sizeof *c)) || strmap_put(&l->by_ip, ip, c)) {
			free(c);
			return -1;
		}
		strcpy(c->ip, ip);
	}
	if (cfg->max_conns_per_ip && c->n >= cfg->max_conns_per_ip) {
		srv->metrics.conn_refused++;
		if (!c->warned++)
			log_warn("limits", "connection refused: %u connections from %s (--max-connections-per-ip)",
				 c->n, ip);
		return -1;
	}
	c->n++; /* counted now, so an entry with n == 0 never stays */
	c->warned = 0;
	l->nconns++;
	l->pending = c;
	return 0;
}

static void limits_uncount(struct limits *l, struct ip_count *c)
{
	l->nconns--;
	if (--c->n == 0) /* the address's last connection: drop its entry */
		free(strmap_del(&l->by_ip, c->ip));
}

void limits_conn_bind(struct server *srv, struct lws *wsi)
{
	struct limits *l = &srv->limits;
	struct ip_count *c = l->pending;
	char key[24];

	if (!c)
		return; /* a wsi that is not an accepted connection */
	l->pending = NULL;
	wsi_key(wsi, key);
	if (!strmap_put(&l->by_wsi, key, c))
		return;
	limits_uncount(l, c); /* out of memory: it will not be uncounted later, so now */
}

void limits_conn_close(struct server *srv, struct lws *wsi)
{
	struct limits *l = &srv->limits;
	char key[24];
	struct ip_count *c;

	wsi_key(wsi, key);
	if ((c = strmap_del(&l->by_wsi, key)))
		limits_uncount(l, c);
	/* else not a counted connection (the listener, or done already) */
}

int limits_publish(struct server *srv, const char *who, double *retry_s)
{
	const struct chatd_config *cfg = srv->cfg;
	struct limits *l = &srv->limits;
	uint64_t now = uv_now(srv->loop);
	struct bucket *b;

	if (!cfg->publish_rate)
		return 0;
	if (!(b = strmap_get(&l->buckets, who))) {
		if (!(b = malloc(sizeof *b)) || strmap_put(&l->buckets, who, b)) {
			free(b);
			return 0; /* out of memory: do not punish the client for it */
		}
		b->tokens = cfg->publish_burst;
		b->last_ms = now;
	}
	b->tokens += (double)(now - b->last_ms) * cfg->publish_rate / 1000.0;
	if (b->tokens > cfg->publish_burst)
		b->tokens = cfg->publish_burst;
	b->last_ms = now;
	if (b->tokens >= 1.0) {
		b->tokens -= 1.0;
		return 0;
	}
	*retry_s = (1.0 - b->tokens) / cfg->publish_rate;
	srv->metrics.rate_limited++;
	return -1;
}

/* Forget the buckets that have filled up again: they are as good as new. */
static void limits_sweep(uv_timer_t *t)
{
	struct server *srv = t->data;
	struct limits *l = &srv->limits;
	uint64_t now = uv_now(srv->loop);
	const char *key;
	void *v;
	char **full = malloc(l->buckets.len * sizeof *full);
	size_t n = 0;

	if (!full)
		return;
	/* Collect first: deleting moves entries under an iteration. */
	for (size_t i = 0; (i = strmap_next(&l->buckets, i, &key, &v));) {
		struct bucket *b = v;
		if (b->tokens + (double)(now - b->last_ms) * srv->cfg->publish_rate / 1000.0 >=
		    srv->cfg->publish_burst && (full[n] = strdup(key)))
			n++;
	}
	for (size_t i = 0; i < n; i++) {
		free(strmap_del(&l->buckets, full[i]));
		free(full[i]);
	}
	free(full);
}

void limits_init(struct server *srv)
{
	uv_timer_init(srv->loop, &srv->limits.sweep);
	srv->limits.sweep.data = srv;
	if (srv->cfg->publish_rate)
		uv_timer_start(&srv->limits.sweep, limits_sweep, 60000, 60000);
	uv_unref((uv_handle_t *)&srv->limits.sweep);
}

void limits_free(struct server *srv)
{
	const char *key;
	void *v;

	uv_close((uv_handle_t *)&srv->limits.sweep, NULL);
	for (size_t i = 0; (i = strmap_next(&srv->limits.by_ip, i, &key, &v));)
		free(v);
	for (size_t i = 0; (i = strmap_next(&srv->limits.buckets, i, &key, &v));)
		free(v);
	strmap_free(&srv->limits.by_ip);
	strmap_free(&srv->limits.by_wsi);
	strmap_free(&srv->limits.buckets);
}
