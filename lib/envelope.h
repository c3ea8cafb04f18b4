/* envelope.h: the JSON that crosses the wire.
 *
 * Publish request (HTTP body or WebSocket text frame):  {"chan":"NAME","msg":VALUE}
 *   optionally with "key":"K", an idempotency key
 * Envelope (what every subscriber receives):
 *   {"chan":"NAME","seq":N,"epoch":"E","ts":MS,"msg":VALUE}
 *   with "sender":"USER" before "msg" when the publisher was authenticated
 * Control frame (server to one client):                 {"type":"error","error":"..."}
 *
 * An envelope is serialised once, at the publishing node, and its bytes are relayed
 * unchanged through the broker to every subscriber on every node. */
#ifndef CHAT_ENVELOPE_H
#define CHAT_ENVELOPE_H

#include <stddef.h>
#include <stdint.h>

#include "chan.h"

struct cJSON;

#define ENV_KEY_MAX 100 /* characters of an idempotency key: visible ASCII, 0x21..0x7e */
#define ENV_SENDER_MAX 64 /* bytes of a sender's name */

/* A decoded publish request. msg is the compact JSON text of the value; key is the
 * publisher's idempotency key, "" when none was given; token the credential given in
 * the body ("token" member), NULL when none. sender is set by the server from the
 * checked credential, never from the request. */
struct env_pub {
	char chan[CHAN_MAX + 1];
	char *msg;
	size_t msg_len;
	char key[ENV_KEY_MAX + 1];
	char *token;
	char sender[ENV_SENDER_MAX + 1];
};

/* The envelope's "sender" member as it is spliced in before "msg": ,"sender":"NAME"
 * (JSON-escaped), or "" when sender is empty. out needs 6 * ENV_SENDER_MAX + 16 bytes.
 * Returns its length. */
size_t env_sender_member(const char *sender, char *out);

/* NULL when k[0..len) is a valid idempotency key, else why not. */
const char *env_key_check(const char *k, size_t len);

/* Give p the key k[0..len) (from an Idempotency-Key header). A key already taken from the
 * body must be the same. Returns 0, or -1 with a reason in err. */
int env_pub_set_key(struct env_pub *p, const char *k, size_t len, char *err, size_t errlen);

/* Decode a publish request (its "key" too). With default_chan NULL (HTTP) "chan" is required; with a
 * default (WebSocket), a JSON object with a "msg" member is a request whose "chan" may be
 * left out, and any other text is published as a string to default_chan.
 * Returns 0, or -1 with a user-facing reason in err. */
int env_pub_parse(const char *body, size_t len, const char *default_chan, struct env_pub *out,
		  char *err, size_t errlen);

/* Make a request that publishes text (UTF-8, checked) as a JSON string to chan. */
int env_pub_text(const char *chan, size_t chan_len, const char *text, size_t len,
		 struct env_pub *out, char *err, size_t errlen);

/* Make a request that publishes the JSON value written in json[0..len) to chan, checked
 * strictly and kept as written (minus whitespace). */
int env_pub_value(const char *chan, size_t chan_len, const char *json, size_t len,
		  struct env_pub *out, char *err, size_t errlen);

/* The publish request body {"chan":"NAME","msg":VALUE} for p, malloc'd, NUL-terminated. */
char *env_pub_body(const struct env_pub *p, size_t *len);

void env_pub_free(struct env_pub *p);

#define ENV_EPOCH_MAX 24 /* characters of an epoch: [0-9a-z] */

/* Serialise the envelope for p at position seq/epoch with `pre` spare bytes in front
 * (for LWS_PRE). Returns a malloc'd buffer; the envelope is at buf + pre, *len bytes,
 * NUL-terminated. */
char *env_build(const struct env_pub *p, uint64_t seq, const char *epoch, int64_t ts_ms,
		size_t pre, size_t *len);

/* Serialise {"type":"error","error":ERR} with `pre` spare bytes, as env_build. */
char *env_error_frame(const char *err, size_t pre, size_t *len);

/* Client side: a frame received from chatd. root owns everything; type is NULL for an
 * envelope, else the control frame's type. */
struct env_msg {
	struct cJSON *root;
	const char *type;
	const char *chan;
	const char *epoch; /* NULL if absent */
	const char *sender; /* NULL if absent */
	uint64_t seq;      /* 0 if absent */
	int64_t ts;
	const struct cJSON *msg;
};

int env_msg_parse(const char *frame, size_t len, struct env_msg *m);

/* The position of an envelope chatd built (env_build's member order), read without a
 * JSON parse: for the server's hot path. Returns 0, or -1 if env has no position. */
int env_pos_of(const char *env, size_t len, uint64_t *seq, char epoch[ENV_EPOCH_MAX + 1]);
void env_msg_free(struct env_msg *m);

int64_t env_now_ms(void);

#endif
