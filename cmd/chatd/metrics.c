/* metrics.c: GET /metrics in the Prometheus text format, and the one-line status.
 *
 * Plain counters in struct server (metrics.h's struct metrics), bumped where things
 * happen; this file only renders them. No label carries a channel name or a client
 * address, so the number of series is fixed whatever the traffic. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "server.h"

/* Publish latency buckets, seconds (POST or frame to broker acknowledgement). */
static const double lat_bounds[METRICS_LAT_BUCKETS] = {
	0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5,
};

void metrics_publish_latency(struct server *srv, uint64_t ns)
{
	struct metrics *m = &srv->metrics;
	double s = (double)ns / 1e9;
	int i;

	for (i = 0; i < METRICS_LAT_BUCKETS && s > lat_bounds[i]; i++)
		;
	if (i < METRICS_LAT_BUCKETS)
		m->lat_bucket[i]++;
	m->lat_count++;
	m->lat_sum += s;
}

struct out {
	char *buf;
	size_t len, cap;
};

static void put(struct out *o, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct out *o, const char *fmt, ...)
{
	va_list ap;
	int n;

	for (;;) {
		va_start(ap, fmt);
		n = vsnprintf(o->buf + o->len, o->cap - o->len, fmt, ap);
		va_end(ap);
		if (n < 0)
			return;
		if ((size_t)n < o->cap - o->len) {
			o->len += (size_t)n;
			return;
		}
		char *nb = realloc(o->buf, o->cap * 2 + (size_t)n);
		if (!nb)
			return;
		o->buf = nb;
		o->cap = o->cap * 2 + (size_t)n;
	}
}

static void metric(struct out *o, const char *name, const char *type, const char *help)
{
	put(o, "# HELP chatd_%s %s\n# TYPE chatd_%s %s\n", name, help, name, type);
}

char *metrics_render(struct server *srv, size_t *len)
{
	const struct metrics *m = &srv->metrics;
	struct out o = { malloc(4096), 0, 4096 };
	unsigned ws = srv->nsessions - srv->nsse;
	uint64_t cum = 0;

	if (!o.buf)
		return NULL;
	metric(&o, "connections", "gauge", "Open connections, by kind.");
	put(&o, "chatd_connections{kind=\"websocket\"} %u\n", ws);
	put(&o, "chatd_connections{kind=\"sse\"} %u\n", srv->nsse);
	put(&o, "chatd_connections{kind=\"http\"} %u\n",
	    srv->limits.nconns > srv->nsessions ? srv->limits.nconns - srv->nsessions : 0);
	metric(&o, "channels", "gauge", "Channels with subscribers on this node.");
	put(&o, "chatd_channels %zu\n", srv->chans.len);
	metric(&o, "messages_published_total", "counter", "Publishes acknowledged by the broker (HTTP and WebSocket).");
	put(&o, "chatd_messages_published_total %llu\n", (unsigned long long)m->published);
	metric(&o, "publish_refused_total", "counter", "Publishes not acknowledged (broker unavailable or failed).");
	put(&o, "chatd_publish_refused_total %llu\n", (unsigned long long)m->publish_refused);
	metric(&o, "messages_delivered_total", "counter", "Messages written to subscribers (one per subscriber).");
	put(&o, "chatd_messages_delivered_total %llu\n", (unsigned long long)m->delivered);
	metric(&o, "bytes_out_total", "counter", "Message bytes written to subscribers.");
	put(&o, "chatd_bytes_out_total %llu\n", (unsigned long long)m->bytes_out);
	metric(&o, "slow_subscriber_disconnects_total", "counter", "Subscribers cut off because their queue was full (1013).");
	put(&o, "chatd_slow_subscriber_disconnects_total %llu\n", (unsigned long long)m->slow);
	metric(&o, "auth_failures_total", "counter", "Requests refused for their token (401) or channel (403).");
	put(&o, "chatd_auth_failures_total{status=\"401\"} %llu\n", (unsigned long long)m->auth401);
	put(&o, "chatd_auth_failures_total{status=\"403\"} %llu\n", (unsigned long long)m->auth403);
	metric(&o, "rate_limited_total", "counter", "Publishes refused by --publish-rate (429).");
	put(&o, "chatd_rate_limited_total %llu\n", (unsigned long long)m->rate_limited);
	metric(&o, "connections_refused_total", "counter", "Connections closed at once by --max-connections(-per-ip).");
	put(&o, "chatd_connections_refused_total %llu\n", (unsigned long long)m->conn_refused);
	metric(&o, "broker_up", "gauge", "1 when the broker is usable.");
	put(&o, "chatd_broker_up %d\n", srv->broker && !broker_status(srv->broker));
	metric(&o, "broker_reconnects_total", "counter", "Times the broker became usable again after being down.");
	put(&o, "chatd_broker_reconnects_total %llu\n", (unsigned long long)m->reconnects);
	metric(&o, "history_replays_total", "counter", "History reads for resuming subscribers.");
	put(&o, "chatd_history_replays_total %llu\n", (unsigned long long)m->replays);
	metric(&o, "gap_notices_total", "counter", "Gap notices sent: a resume position no longer stored.");
	put(&o, "chatd_gap_notices_total %llu\n", (unsigned long long)m->gaps);
	metric(&o, "coalesce_window_seconds", "gauge", "The least time between write rounds to WebSocket subscribers now (--coalesce, up to 4x under load).");
	put(&o, "chatd_coalesce_window_seconds %g\n", (double)srv->coalesce_ns / 1e9);
	metric(&o, "publish_latency_seconds", "histogram", "From a publish arriving to the broker's acknowledgement.");
	for (int i = 0; i < METRICS_LAT_BUCKETS; i++) {
		cum += m->lat_bucket[i];
		put(&o, "chatd_publish_latency_seconds_bucket{le=\"%g\"} %llu\n", lat_bounds[i], (unsigned long long)cum);
	}
	put(&o, "chatd_publish_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)m->lat_count);
	put(&o, "chatd_publish_latency_seconds_sum %.6f\n", m->lat_sum);
	put(&o, "chatd_publish_latency_seconds_count %llu\n", (unsigned long long)m->lat_count);
	*len = o.len;
	return o.buf;
}

void metrics_status(struct server *srv)
{
	struct metrics *m = &srv->metrics;
	uint64_t now = uv_now(srv->loop);
	double secs = now > m->status_at ? (double)(now - m->status_at) / 1000 : 0;
	const char *down = srv->broker ? broker_status(srv->broker) : "stopped";

	log_info("status", "connections=%u websockets=%u sse=%u channels=%zu in=%.0f/s out=%.0f/s broker=%s%s%s",
		 srv->limits.nconns, srv->nsessions - srv->nsse, srv->nsse, srv->chans.len,
		 secs > 0 ? (double)(m->published - m->status_published) / secs : 0,
		 secs > 0 ? (double)(m->delivered - m->status_delivered) / secs : 0,
		 down ? "down" : "up", down ? " why=" : "", down ? down : "");
	m->status_at = now;
	m->status_published = m->published;
	m->status_delivered = m->delivered;
}
