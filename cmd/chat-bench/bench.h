/* bench.h: the parts of chat-bench and the state they share.
 *
 * One run: open the subscribers (subs.c), check every one of them receives (probe), then
 * publish from a thread of their own (pubs.c) while the main thread reads the WebSocket
 * connections and counts what arrives, then wait for stragglers and report (stats.c), with
 * what /proc says the server and this process spent on it (proc.c). What to publish to
 * and subscribe at is the target's business (target.c): URL and body templates, so a relay
 * other than chatd is measured by the same code. */
#ifndef CHAT_BENCH_H
#define CHAT_BENCH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/socket.h>

#define BENCH_COMPONENT "chat-bench"
#define BENCH_MAX_PIDS 16

enum bench_mode { MODE_FANOUT, MODE_THROUGHPUT, MODE_LATENCY, MODE_IDLE };

/* Where to publish and subscribe, and the framing of a publish. */
struct bench_target {
	const char *kind;        /* "chatd" (the defaults) or "template" */
	char pub_url[1200];      /* every message is one POST to this URL */
	char content_type[128];
	char body_pre[512];      /* body = body_pre + payload + body_post */
	char body_post[512];
	char ws_host[256];       /* the subscription: ws://ws_host:ws_port ws_path */
	int ws_port;
	char ws_path[1200];
	char ws_url[1600];       /* the same, for messages */
	const char *seq_key;     /* text before the relay's own sequence number in a frame, or NULL */
};

struct bench_opts {
	enum bench_mode mode;
	const char *url;
	const char *chan;
	const char *pub_tmpl, *sub_tmpl, *body_tmpl, *content_type;
	const char *token;       /* sent as Authorization: Bearer by publishers and subscribers */
	long subs, msgs, pubs;
	double rate;             /* messages per second over all publishers; 0: as fast as they go */
	size_t size;
	double timeout_s, hold_s;
	int pids[BENCH_MAX_PIDS];
	int npids;
	long sources;            /* loopback source addresses; -1: chosen from the count */
	long batch_us;           /* the receiver's nap after a light turn; see subs.c */
	int json, quiet, verbose;
};

/* chatd's framing (no templates), or the templates with {chan} and {payload} filled in. */
int target_init(struct bench_target *t, const struct bench_opts *o, char *err, size_t errlen);

/* The payload: "chb:RUN:ID:PUB:NS:" padded with 'x' to size bytes (never shorter than the
 * header). RUN tells this run's messages from anything else on the channel; ID is 0..N-1
 * for measured messages and N+ for probes; PUB is the publisher; NS the send time
 * (CLOCK_MONOTONIC; with --rate the time the message was due). Characters that need no
 * JSON or URL escaping, so the payload reads the same in any body and in any frame. */
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

/* What the kernel says at one moment; the differences between two are the run's cost. */
struct proc_sample {
	int64_t at_ns;
	uint64_t server_ticks;   /* user + system clock ticks of every --pid */
	uint64_t server_rss_kb;  /* resident set sizes of every --pid, added up */
	int server_missing;      /* pids that are gone */
	double client_s;         /* this process's user + system CPU seconds */
	double receiver_s;       /* the main (receiving) thread's alone */
	uint64_t machine_busy, machine_all; /* /proc/stat, every core, in ticks */
};

/* Reads every figure; server fields stay 0 without pids. Call from the main thread. */
void proc_sample(const struct bench_opts *o, struct proc_sample *s);
/* -1 with a reason when a pid is not a process we can read. */
int proc_check_pid(int pid, char *err, size_t errlen);
double proc_ticks_per_s(void);

enum sub_state { SUB_IDLE, SUB_CONNECTING, SUB_HANDSHAKE, SUB_UP, SUB_FAILED, SUB_CLOSED };

/* One WebSocket subscriber. Touched only by the main thread. */
struct sub {
	struct bench *b;
	int fd;
	enum sub_state state;
	int probed;          /* a probe arrived: the relay delivers to this connection */
	uint64_t *seen;      /* bitmap over ids 0..N-1 */
	uint64_t *last;      /* per publisher: 1 + the highest id received so far */
	uint64_t distinct;   /* ids 0..N-1 received at least once */
	uint64_t last_seq;   /* the relay's sequence number in the last frame (0: none yet) */
	char *pend;          /* received bytes not yet a whole frame (or the HTTP answer) */
	size_t pend_len, pend_cap;
	size_t want;         /* the whole size of the frame pend starts, when known */
	char *frag;          /* a message sent as several WebSocket frames */
	size_t frag_len, frag_cap;
	int in_frag;
};

enum pub_state { PUB_IDLE, PUB_CONNECTING, PUB_SENDING_FIRST, PUB_SENDING, PUB_READING };

/* One publisher: a keep-alive connection with at most one post in flight. Touched by the
 * publishing thread; the main thread reads it only after joining that thread. */
struct pub {
	struct bench *b;
	uint32_t idx;
	int fd;              /* its keep-alive connection, non-blocking; -1: none */
	int ep;              /* the publishers' epoll set, or -1 (the probe: poll) */
	enum pub_state state;
	uint64_t id;         /* the post in flight */
	int reused, retried; /* on a kept-alive connection; tried again on a new one */
	int64_t deadline_ns; /* the post fails (timed out) if not answered by then */
	char *body;          /* body_pre is written once; payload and body_post per message */
	size_t pre_len, post_len;
	char *req;           /* the request: the head is written once, the rest per message */
	size_t req_len, req_off;
	char *in;            /* the answer */
	size_t in_cap, in_len;
	size_t head, body_end; /* the answer's head length, and where its body ends (0: ?) */
	int chunked, to_close, keep;
	long status, last_status;
	uint64_t sent, accepted, refused, failed;
	int64_t done_ns;
	int64_t lag_max_ns;  /* with --rate: the latest a post started after it was due */
	char resp[240];      /* the start of the last response body */
	size_t resp_len;
	long first_status;   /* the first refusal: status (0: no answer) and why; -1: none yet */
	char first_err[300];
};

struct bench {
	struct bench_opts o;
	struct bench_target t;
	char tag[PAYLOAD_TAG_LEN + 1];

	/* subscribers: main thread only */
	int epfd, wakefd;
	char *rx;                    /* one receive buffer for every connection */
	size_t rx_cap;
	int busy;                    /* this turn read as much as it could: see batch_wait() */
	struct sockaddr_storage addr;
	socklen_t addrlen;
	long sources;                /* source addresses in use (0: the kernel's choice) */
	struct sub *subs;
	long next_connect, connecting, up, failed, closed;
	char first_conn_err[300];
	char first_close[240];

	/* what arrived: main thread only */
	struct hist lat;
	uint64_t dups, ooo, other, control, seq_gaps, seq_back;
	uint64_t reads, wakeups;     /* read() calls and epoll_wait returns: for -v */
	char first_control[240];
	int64_t last_rx_ns;

	/* publishers */
	struct pub *pubs;
	pthread_t pub_thread;        /* serves every publisher (pubs.c) */
	int pub_started;
	int pub_ep, pub_timer;       /* its epoll set, and the timerfd for --rate */
	struct epoll_event *pub_evs;
	uint8_t *accepted;           /* per id, written by the publishing thread */
	uint64_t *acc_bits;          /* the same as a bitmap, made after the publishers end */
	atomic_uint_fast64_t next_id;
	atomic_int running;
	int64_t pub_start_ns, pub_end_ns;
	char *req_head;              /* "POST ... Content-Length: ", shared read-only */
	size_t req_head_len;
	struct sockaddr_storage pub_addr;
	socklen_t pub_addrlen;
	struct pub *probe;           /* a publisher of its own for the probes, main thread */

	/* cost: before connecting, once connected, and around the measured phase */
	struct proc_sample at_start, at_connected, at_run, at_end;
	int64_t hold_ns;
};

struct bench_result {
	uint64_t sent, accepted, refused, failed;
	uint64_t expected, delivered, lost, dups, ooo, unexpected;
	long lost_subs, closed;
	double pub_s, deliver_s, pub_rate, deliver_rate;
	double p50, p90, p99, p999, max, mean, lag_max; /* ms */
	long first_status;
	const char *first_err;
	/* cost over the measured phase (publishing and waiting; idle: the hold) */
	double run_s, server_cpu_s, server_cores, server_us_per_delivery, server_us_per_publish;
	double client_cpu_s, client_us_per_delivery, receiver_busy, machine_idle;
	double rss_before_kb, rss_after_kb, rss_per_conn_kb;
	int server_missing;
	int ok;
};

int64_t bench_now_ns(void);

/* subs.c */
int subs_open(struct bench *b);           /* start the connections; -1: see first_conn_err */
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
const char *stats_mode_name(enum bench_mode m);

#endif
