/* sentinel.h: find the current Redis master through Redis Sentinel.
 *
 * Given a list of sentinels and a master name, asks the sentinels in turn
 * "SENTINEL get-master-addr-by-name NAME" and reports the answer; and keeps one connection
 * to a sentinel SUBSCRIBEd to +switch-master, so a failover is reported as soon as a
 * sentinel announces it. The caller connects to the master itself and checks there that it
 * is one (ROLE), as the Sentinel client guidelines ask: an answer can be stale.
 *
 * Everything runs on the caller's libuv loop; callbacks only ever come from the loop, never
 * from inside sentinel_new or sentinel_resolve. The host passed to on_master is valid only
 * during the call. Sentinels named by host name are looked up by hiredis, blocking, at
 * each connect: give IP addresses where that matters. No AUTH to sentinels. */
#ifndef CHAT_SENTINEL_H
#define CHAT_SENTINEL_H

#include <stddef.h>

struct uv_loop_s;
struct sentinel;

#define SENTINEL_DEFAULT_PORT 26379
#define SENTINEL_MAX_ADDRS 16

typedef void sentinel_master_fn(void *ud, const char *host, int port);
typedef void sentinel_error_fn(void *ud, const char *why);

/* Starts resolving at once (as sentinel_resolve) and subscribes to failover announcements.
 * addrs: "host[:port],host[:port],..." (port 26379 when absent; IPv6 as [addr]:port).
 * on_master: the answer to each resolution asked for, and any later change of the master
 * (a +switch-master for this name, or a different answer found after the subscription had
 * to reconnect). May repeat an address already reported.
 * on_error (may be NULL): a resolution asked for failed in every sentinel; why lists each
 * one's reason. It is retried with backoff (up to 5 s) until a sentinel answers: on_error
 * comes once per failed round and on_master ends the series.
 * Returns NULL with a reason in err for a bad address list or master name, or out of
 * memory. */
struct sentinel *sentinel_new(struct uv_loop_s *loop, const char *addrs, const char *master,
			      sentinel_master_fn *on_master, sentinel_error_fn *on_error, void *ud,
			      char *err, size_t errlen);

/* Ask again, e.g. after the connection to the master failed or ROLE said it is not the
 * master. A resolution already under way (or waiting to retry) is not restarted: its
 * answer is the answer. */
void sentinel_resolve(struct sentinel *s);

/* Closes the connections and handles; no callback runs after this returns. The memory
 * goes when the loop has run the handles' close callbacks. Safe from inside a callback. */
void sentinel_free(struct sentinel *s);

/* ---- pure helpers, public for the unit tests ---- */

struct sentinel_addr {
	char host[256];
	int port;
};

/* Parses addrs (see sentinel_new) into out[0..max). Returns how many, or -1 with a reason
 * in err. */
int sentinel_parse_addrs(const char *addrs, struct sentinel_addr *out, size_t max, char *err,
			 size_t errlen);

/* A +switch-master payload, "NAME OLDIP OLDPORT NEWIP NEWPORT". Returns 1 with the new
 * address when it is about master, 0 when it is about another master, -1 when malformed. */
int sentinel_parse_switch(const char *payload, const char *master, char *host, size_t hostlen,
			  int *port);

#endif
