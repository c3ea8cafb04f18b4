/* stats.c: the latency histogram, the counts and costs at the end of a run, and the
 * report: a table for people, one JSON object for scripts.
 *
 * Latencies go into a log-linear histogram (HdrHistogram's idea, much reduced): a fixed
 * 230 KB however long the run, one index computation per frame, quantiles within 0.2%. */
#include "bench.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define SUB_COUNT (1u << HIST_SUB_BITS)
#define HALF (SUB_COUNT / 2)

/* Values below SUB_COUNT have a bucket each; above, each power of two is split into HALF
 * buckets, so a bucket is never wider than 1/HALF of its value. */
static size_t hist_index(uint64_t v)
{
	unsigned m, shift;

	if (v < SUB_COUNT)
		return (size_t)v;
	m = 63u - (unsigned)__builtin_clzll(v); /* >= HIST_SUB_BITS */
	shift = m - HIST_SUB_BITS + 1;
	return SUB_COUNT + (size_t)(m - HIST_SUB_BITS) * HALF + (size_t)((v >> shift) - HALF);
}

/* The middle of bucket i. */
static uint64_t hist_value(size_t i)
{
	size_t m, shift;

	if (i < SUB_COUNT)
		return i;
	m = (i - SUB_COUNT) / HALF + HIST_SUB_BITS;
	shift = m - HIST_SUB_BITS + 1;
	return ((uint64_t)((i - SUB_COUNT) % HALF + HALF) << shift) + ((uint64_t)1 << shift) / 2;
}

void hist_add(struct hist *h, uint64_t v)
{
	h->bucket[hist_index(v)]++;
	h->count++;
	h->sum += (double)v;
	if (v > h->max)
		h->max = v;
}

uint64_t hist_quantile(const struct hist *h, double q)
{
	uint64_t rank, seen = 0;

	if (!h->count)
		return 0;
	rank = (uint64_t)ceil(q * (double)h->count);
	if (rank < 1)
		rank = 1;
	for (size_t i = 0; i < HIST_BUCKETS; i++) {
		seen += h->bucket[i];
		if (seen >= rank)
			return hist_value(i) < h->max ? hist_value(i) : h->max;
	}
	return h->max;
}

static size_t words(const struct bench *b)
{
	return ((size_t)b->o.msgs + 63) / 64;
}

int stats_accepted_bits(struct bench *b)
{
	size_t n = words(b);

	b->acc_bits = calloc(n ? n : 1, sizeof *b->acc_bits);
	if (!b->acc_bits)
		return -1;
	for (long id = 0; id < b->o.msgs; id++)
		if (b->accepted[id])
			b->acc_bits[id >> 6] |= 1ULL << (id & 63);
	return 0;
}

/* How many accepted messages s has received. */
static uint64_t sub_got_accepted(const struct bench *b, const struct sub *s)
{
	uint64_t got = 0;

	for (size_t w = 0, n = words(b); w < n; w++)
		got += (uint64_t)__builtin_popcountll(s->seen[w] & b->acc_bits[w]);
	return got;
}

/* Every subscriber still connected has every accepted message. */
int stats_complete(const struct bench *b, uint64_t accepted)
{
	for (long i = 0; i < b->o.subs; i++) /* cheap test first */
		if (b->subs[i].state == SUB_UP && b->subs[i].distinct < accepted)
			return 0;
	for (long i = 0; i < b->o.subs; i++)
		if (b->subs[i].state == SUB_UP && sub_got_accepted(b, &b->subs[i]) < accepted)
			return 0;
	return 1;
}

static double ms(uint64_t ns)
{
	return (double)ns / 1e6;
}

const char *stats_mode_name(enum bench_mode m)
{
	static const char *const names[] = { "fanout", "throughput", "latency", "idle" };

	return names[m];
}

static void compute_counts(struct bench *b, struct bench_result *r)
{
	uint64_t got_all = 0;

	for (long i = 0; i < b->o.pubs && b->pubs; i++) {
		const struct pub *p = &b->pubs[i];

		r->sent += p->sent;
		r->accepted += p->accepted;
		r->refused += p->refused;
		r->failed += p->failed;
		if (p->lag_max_ns > 0 && ms((uint64_t)p->lag_max_ns) > r->lag_max)
			r->lag_max = ms((uint64_t)p->lag_max_ns);
		/* a refusal says more than a failed connection */
		if (p->first_status > 0 ? r->first_status <= 0 : p->first_status == 0 && r->first_status < 0) {
			r->first_status = p->first_status;
			r->first_err = p->first_err;
		}
	}
	r->expected = r->accepted * (uint64_t)b->o.subs;
	for (long i = 0; i < b->o.subs; i++) {
		const struct sub *s = &b->subs[i];
		uint64_t got = b->acc_bits ? sub_got_accepted(b, s) : 0;

		r->delivered += s->distinct;
		got_all += got;
		if (got < r->accepted)
			r->lost_subs++;
		if (s->state == SUB_CLOSED)
			r->closed++;
	}
	r->lost = r->expected - got_all;
	r->unexpected = r->delivered - got_all;
	r->dups = b->dups;
	r->ooo = b->ooo;
}

/* The measured phase's cost: from the first post to the end of the wait (idle: the hold).
 * Memory per connection is the servers' growth from before the first connection to when
 * all were open (idle: at the end of the hold, once the connections settled). */
static void compute_cost(struct bench *b, struct bench_result *r)
{
	const struct proc_sample *a = &b->at_run, *z = &b->at_end;
	const struct proc_sample *mem = b->o.mode == MODE_IDLE ? &b->at_end : &b->at_connected;
	double busy = (double)(z->machine_busy - a->machine_busy);
	double all = (double)(z->machine_all - a->machine_all);

	r->run_s = (double)(z->at_ns - a->at_ns) / 1e9;
	r->client_cpu_s = z->client_s - a->client_s;
	if (r->delivered)
		r->client_us_per_delivery = r->client_cpu_s * 1e6 / (double)r->delivered;
	if (r->run_s > 0)
		r->receiver_busy = (z->receiver_s - a->receiver_s) / r->run_s;
	r->machine_idle = all > 0 ? 1 - busy / all : 0;
	r->server_missing = z->server_missing;
	if (!b->o.npids)
		return;
	r->server_cpu_s = (double)(z->server_ticks - a->server_ticks) / proc_ticks_per_s();
	if (r->run_s > 0)
		r->server_cores = r->server_cpu_s / r->run_s;
	if (r->delivered)
		r->server_us_per_delivery = r->server_cpu_s * 1e6 / (double)r->delivered;
	if (r->accepted)
		r->server_us_per_publish = r->server_cpu_s * 1e6 / (double)r->accepted;
	r->rss_before_kb = (double)b->at_start.server_rss_kb;
	r->rss_after_kb = (double)mem->server_rss_kb;
	if (b->o.subs)
		r->rss_per_conn_kb = (r->rss_after_kb - r->rss_before_kb) / (double)b->o.subs;
}

void stats_compute(struct bench *b, struct bench_result *r)
{
	memset(r, 0, sizeof *r);
	r->first_status = -1;
	compute_counts(b, r);
	r->pub_s = (double)(b->pub_end_ns - b->pub_start_ns) / 1e9;
	r->pub_rate = r->pub_s > 0 ? (double)r->accepted / r->pub_s : 0;
	if (b->last_rx_ns > b->pub_start_ns) {
		r->deliver_s = (double)(b->last_rx_ns - b->pub_start_ns) / 1e9;
		r->deliver_rate = (double)r->delivered / r->deliver_s;
	}
	r->p50 = ms(hist_quantile(&b->lat, 0.50));
	r->p90 = ms(hist_quantile(&b->lat, 0.90));
	r->p99 = ms(hist_quantile(&b->lat, 0.99));
	r->p999 = ms(hist_quantile(&b->lat, 0.999));
	r->max = ms(b->lat.max);
	r->mean = b->lat.count ? b->lat.sum / (double)b->lat.count / 1e6 : 0;
	compute_cost(b, r);
	r->ok = !r->lost && !r->refused && !r->failed && !(b->o.mode == MODE_IDLE && r->closed);
}

#define COUNT_LINE "%-13s %12" PRIu64 "\n"

static void print_head(const struct bench *b)
{
	printf("%-13s %s\n", "mode", stats_mode_name(b->o.mode));
	if (strcmp(b->t.kind, "chatd"))
		printf("%-13s %s, channel %s\n", "target", b->t.kind, b->o.chan);
	else
		printf("%-13s chatd %s channel %s\n", "target", b->o.url, b->o.chan);
	printf("%-13s POST %s\n", "publish", b->t.pub_url);
	printf("%-13s %s\n", "subscribe", b->t.ws_url);
	printf("%-13s %12ld", "subscribers", b->o.subs);
	if (b->sources > 1)
		printf("   (from %ld source addresses)", b->sources);
	printf("\n");
	if (b->o.batch_us)
		printf("%-13s %12ld us   (the receiver's nap after a light turn)\n", "read batch",
		       b->o.batch_us);
	if (b->o.mode == MODE_IDLE) {
		printf("%-13s %12.1f s\n", "held", (double)b->hold_ns / 1e9);
		return;
	}
	printf("%-13s %12ld\n", "publishers", b->o.pubs);
	printf("%-13s %12ld x %zu bytes\n", "messages", b->o.msgs, b->o.size);
	if (b->o.rate > 0)
		printf("%-13s %12.1f per second, latency from when each was due\n", "rate", b->o.rate);
}

static void print_counts(const struct bench *b, const struct bench_result *r)
{
	printf(COUNT_LINE, "sent", r->sent);
	printf(COUNT_LINE, "accepted", r->accepted);
	printf(COUNT_LINE, "refused", r->refused);
	printf(COUNT_LINE, "failed", r->failed);
	printf(COUNT_LINE, "expected", r->expected);
	printf(COUNT_LINE, "delivered", r->delivered);
	printf(COUNT_LINE, "lost", r->lost);
	printf(COUNT_LINE, "duplicated", r->dups);
	printf(COUNT_LINE, "out-of-order", r->ooo);
	if (r->unexpected)
		printf(COUNT_LINE, "unexpected", r->unexpected);
	if (b->other)
		printf(COUNT_LINE, "other frames", b->other);
	if (b->control)
		printf(COUNT_LINE, "control", b->control);
	if (b->seq_gaps || b->seq_back)
		printf("%-13s %12" PRIu64 "   (and %" PRIu64 " going back)\n", "seq gaps", b->seq_gaps,
		       b->seq_back);
	if (r->closed)
		printf("%-13s %12ld\n", "disconnected", r->closed);
	printf("\n");
	printf("%-13s %12.1f   (%" PRIu64 " in %.3f s)\n", "published/s", r->pub_rate, r->accepted,
	       r->pub_s);
	printf("%-13s %12.1f   (%" PRIu64 " in %.3f s)\n", "delivered/s", r->deliver_rate,
	       r->delivered, r->deliver_s);
	printf("%-13s %12.3f ms\n", "latency p50", r->p50);
	printf("%-13s %12.3f ms\n", "latency p90", r->p90);
	printf("%-13s %12.3f ms\n", "latency p99", r->p99);
	printf("%-13s %12.3f ms\n", "latency p999", r->p999);
	printf("%-13s %12.3f ms\n", "latency max", r->max);
	if (b->o.rate > 0)
		printf("%-13s %12.3f ms   (the latest a post started after it was due)\n",
		       "send lag max", r->lag_max);
}

static void print_cost(const struct bench *b, const struct bench_result *r)
{
	int idle = b->o.mode == MODE_IDLE;

	if (b->o.npids && idle)
		printf("%-13s %12.3f s    (%.2f cores while the connections were idle; %d pids)\n",
		       "server cpu", r->server_cpu_s, r->server_cores, b->o.npids);
	else if (b->o.npids)
		printf("%-13s %12.3f s    (%.2f us per delivery, %.2f per publish; %.2f cores; %d pids)\n",
		       "server cpu", r->server_cpu_s, r->server_us_per_delivery,
		       r->server_us_per_publish, r->server_cores, b->o.npids);
	if (b->o.npids)
		printf("%-13s %12.0f KB   (%.0f KB before connecting: %.2f KB per connection)\n",
		       "server rss", r->rss_after_kb, r->rss_before_kb, r->rss_per_conn_kb);
	if (!idle)
		printf("%-13s %12.3f s    (%.2f us per delivery; receiving thread %.0f%% busy)\n",
		       "client cpu", r->client_cpu_s, r->client_us_per_delivery,
		       r->receiver_busy * 100);
	printf("%-13s %12.0f %%\n", "machine idle", r->machine_idle * 100);
}

void stats_print_text(const struct bench *b, const struct bench_result *r)
{
	print_head(b);
	printf("\n");
	if (b->o.mode != MODE_IDLE) {
		print_counts(b, r);
	} else if (r->closed) {
		printf("%-13s %12ld\n", "disconnected", r->closed);
	}
	print_cost(b, r);
	if (r->ok)
		printf("%-13s %12s\n", "result", "ok");
	else
		printf("%-13s %12s   (see the FAILED lines)\n", "result", "FAILED");
	fflush(stdout);
}

/* Three decimals, so cJSON prints 1.234 and not 1.2340000000000002. */
static double round3(double v)
{
	return round(v * 1000) / 1000;
}

/* Server figures exist only with --pid: null without, so the keys are always there. */
static void add_server(cJSON *o, const struct bench *b, const char *key, double v)
{
	if (b->o.npids)
		cJSON_AddNumberToObject(o, key, round3(v));
	else
		cJSON_AddNullToObject(o, key);
}

static void json_cost(cJSON *o, const struct bench *b, const struct bench_result *r)
{
	cJSON *pids = cJSON_AddArrayToObject(o, "server_pids");

	for (int i = 0; pids && i < b->o.npids; i++)
		cJSON_AddItemToArray(pids, cJSON_CreateNumber(b->o.pids[i]));
	cJSON_AddNumberToObject(o, "run_s", round3(r->run_s));
	add_server(o, b, "server_cpu_s", r->server_cpu_s);
	add_server(o, b, "server_cpu_cores", r->server_cores);
	add_server(o, b, "server_cpu_us_per_delivery", r->server_us_per_delivery);
	add_server(o, b, "server_cpu_us_per_publish", r->server_us_per_publish);
	add_server(o, b, "server_rss_kb_before", r->rss_before_kb);
	add_server(o, b, "server_rss_kb_after", r->rss_after_kb);
	add_server(o, b, "server_rss_kb_per_connection", r->rss_per_conn_kb);
	cJSON_AddNumberToObject(o, "client_cpu_s", round3(r->client_cpu_s));
	cJSON_AddNumberToObject(o, "client_cpu_us_per_delivery", round3(r->client_us_per_delivery));
	cJSON_AddNumberToObject(o, "receiver_busy", round3(r->receiver_busy));
	cJSON_AddNumberToObject(o, "machine_idle", round3(r->machine_idle));
}

static void json_counts(cJSON *o, const struct bench *b, const struct bench_result *r)
{
	cJSON *lat;

	cJSON_AddNumberToObject(o, "sent", (double)r->sent);
	cJSON_AddNumberToObject(o, "accepted", (double)r->accepted);
	cJSON_AddNumberToObject(o, "refused", (double)r->refused);
	cJSON_AddNumberToObject(o, "failed", (double)r->failed);
	cJSON_AddNumberToObject(o, "expected", (double)r->expected);
	cJSON_AddNumberToObject(o, "delivered", (double)r->delivered);
	cJSON_AddNumberToObject(o, "lost", (double)r->lost);
	cJSON_AddNumberToObject(o, "duplicated", (double)r->dups);
	cJSON_AddNumberToObject(o, "out_of_order", (double)r->ooo);
	cJSON_AddNumberToObject(o, "unexpected", (double)r->unexpected);
	cJSON_AddNumberToObject(o, "other_frames", (double)b->other);
	cJSON_AddNumberToObject(o, "control_frames", (double)b->control);
	if (b->t.seq_key) {
		cJSON_AddNumberToObject(o, "seq_gaps", (double)b->seq_gaps);
		cJSON_AddNumberToObject(o, "seq_backwards", (double)b->seq_back);
	} else {
		cJSON_AddNullToObject(o, "seq_gaps");
		cJSON_AddNullToObject(o, "seq_backwards");
	}
	cJSON_AddNumberToObject(o, "disconnected", (double)r->closed);
	cJSON_AddNumberToObject(o, "publish_s", round3(r->pub_s));
	cJSON_AddNumberToObject(o, "published_per_s", round(r->pub_rate * 10) / 10);
	cJSON_AddNumberToObject(o, "deliver_s", round3(r->deliver_s));
	cJSON_AddNumberToObject(o, "delivered_per_s", round(r->deliver_rate * 10) / 10);
	lat = cJSON_AddObjectToObject(o, "latency_ms");
	if (lat) {
		cJSON_AddNumberToObject(lat, "p50", round3(r->p50));
		cJSON_AddNumberToObject(lat, "p90", round3(r->p90));
		cJSON_AddNumberToObject(lat, "p99", round3(r->p99));
		cJSON_AddNumberToObject(lat, "p999", round3(r->p999));
		cJSON_AddNumberToObject(lat, "max", round3(r->max));
		cJSON_AddNumberToObject(lat, "mean", round3(r->mean));
	}
	cJSON_AddNumberToObject(o, "send_lag_max_ms", round3(r->lag_max));
}

int stats_print_json(const struct bench *b, const struct bench_result *r)
{
	cJSON *o = cJSON_CreateObject();
	char *text;

	if (!o)
		return -1;
	cJSON_AddStringToObject(o, "mode", stats_mode_name(b->o.mode));
	cJSON_AddStringToObject(o, "target", b->t.kind);
	if (b->o.pub_tmpl && b->o.sub_tmpl)
		cJSON_AddNullToObject(o, "url"); /* the templates said it all */
	else
		cJSON_AddStringToObject(o, "url", b->o.url);
	cJSON_AddStringToObject(o, "publish_url", b->t.pub_url);
	cJSON_AddStringToObject(o, "subscribe_url", b->t.ws_url);
	cJSON_AddStringToObject(o, "chan", b->o.chan);
	cJSON_AddNumberToObject(o, "subscribers", (double)b->o.subs);
	cJSON_AddNumberToObject(o, "source_addresses", (double)b->sources);
	cJSON_AddNumberToObject(o, "batch_us", (double)b->o.batch_us);
	cJSON_AddNumberToObject(o, "publishers", (double)b->o.pubs);
	cJSON_AddNumberToObject(o, "messages", (double)b->o.msgs);
	cJSON_AddNumberToObject(o, "size", (double)b->o.size);
	cJSON_AddNumberToObject(o, "rate", b->o.rate);
	cJSON_AddNumberToObject(o, "hold_s", round3((double)b->hold_ns / 1e9));
	json_counts(o, b, r);
	json_cost(o, b, r);
	cJSON_AddBoolToObject(o, "ok", r->ok);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		return -1;
	printf("%s\n", text);
	fflush(stdout);
	cJSON_free(text);
	return 0;
}
