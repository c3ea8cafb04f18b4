/* stats.c: the latency histogram, the counts at the end of a run, and the report.
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

void stats_compute(struct bench *b, struct bench_result *r)
{
	uint64_t got_all = 0;

	memset(r, 0, sizeof *r);
	r->first_status = -1;
	for (long i = 0; i < b->o.pubs; i++) {
		const struct pub *p = &b->pubs[i];

		r->sent += p->sent;
		r->accepted += p->accepted;
		r->refused += p->refused;
		r->failed += p->failed;
		/* a refusal says more than a failed connection */
		if (p->first_status > 0 ? r->first_status <= 0 : p->first_status == 0 && r->first_status < 0) {
			r->first_status = p->first_status;
			r->first_err = p->first_err;
		}
	}
	r->expected = r->accepted * (uint64_t)b->o.subs;
	for (long i = 0; i < b->o.subs; i++) {
		const struct sub *s = &b->subs[i];
		uint64_t got = sub_got_accepted(b, s);

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
	r->pub_s = (double)(b->pub_end_ns - b->pub_start_ns) / 1e9;
	r->pub_rate = r->pub_s > 0 ? (double)r->accepted / r->pub_s : 0;
	if (b->last_rx_ns > b->pub_start_ns) {
		r->deliver_s = (double)(b->last_rx_ns - b->pub_start_ns) / 1e9;
		r->deliver_rate = (double)r->delivered / r->deliver_s;
	}
	r->p50 = ms(hist_quantile(&b->lat, 0.50));
	r->p90 = ms(hist_quantile(&b->lat, 0.90));
	r->p99 = ms(hist_quantile(&b->lat, 0.99));
	r->max = ms(b->lat.max);
	r->mean = b->lat.count ? b->lat.sum / (double)b->lat.count / 1e6 : 0;
}

#define COUNT_LINE "%-13s %12" PRIu64 "\n"

void stats_print_text(const struct bench *b, const struct bench_result *r)
{
	printf("%-13s %s %s channel %s\n", "target", b->t.kind, b->o.url, b->o.chan);
	printf("%-13s %s\n", "subscribe", b->t.ws_url);
	printf("%-13s %12ld\n", "subscribers", b->o.subs);
	printf("%-13s %12ld\n", "publishers", b->o.pubs);
	printf("%-13s %12ld x %zu bytes\n", "messages", b->o.msgs, b->o.size);
	printf("\n");
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
	printf("%-13s %12.3f ms\n", "latency max", r->max);
	fflush(stdout);
}

/* Three decimals, so cJSON prints 1.234 and not 1.2340000000000002. */
static double round3(double v)
{
	return round(v * 1000) / 1000;
}

int stats_print_json(const struct bench *b, const struct bench_result *r)
{
	cJSON *o = cJSON_CreateObject(), *lat;
	char *text;

	if (!o)
		return -1;
	cJSON_AddStringToObject(o, "target", b->t.kind);
	cJSON_AddStringToObject(o, "url", b->o.url);
	cJSON_AddStringToObject(o, "publish_url", b->t.pub_url);
	cJSON_AddStringToObject(o, "subscribe_url", b->t.ws_url);
	cJSON_AddStringToObject(o, "chan", b->o.chan);
	cJSON_AddNumberToObject(o, "subscribers", (double)b->o.subs);
	cJSON_AddNumberToObject(o, "publishers", (double)b->o.pubs);
	cJSON_AddNumberToObject(o, "messages", (double)b->o.msgs);
	cJSON_AddNumberToObject(o, "size", (double)b->o.size);
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
		cJSON_AddNumberToObject(lat, "max", round3(r->max));
		cJSON_AddNumberToObject(lat, "mean", round3(r->mean));
	}
	cJSON_AddBoolToObject(o, "ok", !r->lost && !r->refused && !r->failed);
	text = cJSON_PrintUnformatted(o);
	cJSON_Delete(o);
	if (!text)
		return -1;
	printf("%s\n", text);
	fflush(stdout);
	cJSON_free(text);
	return 0;
}
