/* bench.h: the parts of chat-bench and the state they share.
 *
 * One run: open the subscribers (subs.c), check every one of them receives (probe), then
 * publish from several threads (pubs.c) while the main thread services the WebSocket
 * connections and counts what arrives, then wait for stragglers and report (stats.c).
 * What to publish to and subscribe at, and how a message looks on each side, is the
 * target's business (target.c), so a relay other than chatd is one more target. */
#ifndef CHAT_BENCH_H
#define CHAT_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "url.h"

#define BENCH_COMPONENT "chat-bench"

/* Where to publish and subscribe, and the framing on each side. */
struct bench_target {
	const char *kind;       /* "chatd": for the report */
	char pub_url[1200];     /* every message is one POST to this URL */
	const char *content_type;
	char body_pre[160];     /* body = body_pre + payload + body_post */
	char body_post[8];
	char ws_host[256];      /* the subscription: ws[s]://ws_host:ws_port ws_path */
	int ws_port;
	int tls;
	char ws_path[1200];
	char ws_url[1600];      /* the same, for messages */
	const char *frame_key;  /* text right before the payload in a frame; NULL: the frame is the payload */
};

/* chatd: POST {base}/ with {"chan":CHAN,"msg":"PAYLOAD"}; frames {"chan":..,"ts":..,"msg":"PAYLOAD"}. */
int target_chatd(struct bench_target *t, const struct url *base, const char *chan, char *err,
		 size_t errlen);

/* The payload: "chb:RUN:ID:PUB:NS:" padded with 'x' to size bytes (never shorter than the
 * header). RUN tells this run's messages from anything else on the channel; ID is 0..N-1
 * for measured messages and N+ for probes; PUB is the publisher; NS the send time
 * (CLOCK_MONOTONIC). Characters that need no JSON escaping, so the payload reads the same
 * in the body, in the frame and in the raw message. */
#define PAYLOAD_TAG_LEN 13 /* "chb:" + 8 hex digits + ':' */
#define PAYLOAD_HEADER_MAX (PAYLOAD_TAG_LEN + 3 * 21)

struct payload {
	uint64_t id;
	uint32_t pub;
	int64_t sent_ns;
};

void payload_tag(char tag[PAYLOAD_TAG_LEN + 1], uint32_t run);
/* Writes max(size, header length) bytes at buf (cap must be >= that) and returns the count. */
size_t payload_write(char *buf, const char *tag, const struct payload *p, size_t size);
/* 0 when p[0..len) starts with a payload carrying tag, else -1. */
int payload_read(const char *p, size_t len, const char *tag, struct payload *out);

/* Latency histogram: log-linear buckets (about 0.2% resolution), exact max. */
#define HIST_SUB_BITS 10
#define HIST_BUCKETS ((1u << HIST_SUB_BITS) + (64 - HIST_SUB_BITS) * (1u << (HIST_SUB_BITS - 1)))

struct hist {
	uint64_t count, max;
	double sum;
	uint64_t bucket[HIST_BUCKETS];
};

void hist_add(struct hist *h, uint64_t v);
uint64_t hist_quantile(const struct hist *h, double q);

struct bench_opts {
	const char *url;
	const char *chan;
	long subs, msgs, pubs;
	size_t size;
	double timeout_s;
	int json;
	int verbose;
};

enum sub_state { SUB_IDLE, SUB_CONNECTING, SUB_UP, SUB_FAILED, SUB_CLOSED };

/* One WebSocket subscriber. Touched only by the main (lws service) thread. */
struct sub {
	struct bench *b;
	struct lws *wsi;
	enum sub_state state;
	int probed;          /* a probe arrived: the relay delivers to this connection */
	uint64_t *seen;      /* bitmap over ids 0..N-1 */
	uint64_t *last;      /* per publisher: 1 + the highest id received so far */
	uint64_t distinct;   /* ids 0..N-1 received at least once */
	char *frag;          /* reassembly of a message lws hands over in pieces */
	size_t frag_len, frag_cap;
};

/* One publisher thread; the main thread reads it only after joining it. */
struct pub {
	struct bench *b;
	uint32_t idx;
	pthread_t thread;
	int started;
	void *curl;          /* its keep-alive connection */
	char *body;          /* body_pre is written once; payload and body_post per message */
	uint64_t sent, accepted, refused, failed;
	int64_t done_ns;
	char resp[240];      /* the start of the last response body */
	size_t resp_len;
	char curl_err[256];  /* CURL_ERROR_SIZE */
	long first_status;   /* the first refusal: status (0: no answer) and why; -1: none yet */
	char first_err[300];
};

struct bench {
	struct bench_opts o;
	struct bench_target t;
	char tag[PAYLOAD_TAG_LEN + 1];

	/* subscribers: main thread only */
	struct lws_context *ctx;
	struct sub *subs;
	long next_connect, connecting, up, failed, closed;
	char first_conn_err[240];
	char first_close[240];

	/* what arrived: main thread only */
	struct hist lat;
	uint64_t dups, ooo, other, control;
	char first_control[240];
	int64_t last_rx_ns;

	/* publishers */
	struct pub *pubs;
	uint8_t *accepted;           /* per id, written by the one thread that posted it */
	uint64_t *acc_bits;          /* the same as a bitmap, made after the publishers end */
	atomic_uint_fast64_t next_id;
	atomic_int running;
	int64_t pub_start_ns, pub_end_ns;
	void *headers;               /* struct curl_slist, shared read-only */
	struct pub *probe;           /* a publisher of its own for the probes, main thread */
};

struct bench_result {
	uint64_t sent, accepted, refused, failed;
	uint64_t expected, delivered, lost, dups, ooo, unexpected;
	long lost_subs, closed;
	double pub_s, deliver_s, pub_rate, deliver_rate;
	double p50, p90, p99, max, mean; /* ms */
	long first_status;
	const char *first_err;
};

int64_t bench_now_ns(void);

/* subs.c */
int subs_open(struct bench *b);           /* start the context and the connections */
void subs_service(struct bench *b);       /* one round of the event loop (<= 50 ms) */
int subs_settled(const struct bench *b);  /* every connection is up or failed */
void subs_close(struct bench *b);
void subs_wake(struct bench *b);          /* from any thread: end the current round */

/* pubs.c */
int pubs_start(struct bench *b, char *err, size_t errlen);
void pubs_join(struct bench *b);
void pubs_free(struct bench *b);
/* POST probe number k (not measured). Returns 0, or -1 with the reason in err. */
int pubs_probe(struct bench *b, uint64_t k, char *err, size_t errlen);

/* stats.c */
int stats_accepted_bits(struct bench *b);
void stats_compute(struct bench *b, struct bench_result *r);
int stats_complete(const struct bench *b, uint64_t accepted);
void stats_print_text(const struct bench *b, const struct bench_result *r);
int stats_print_json(const struct bench *b, const struct bench_result *r);

#endif
