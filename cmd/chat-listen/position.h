/* position.h: where chat-listen stands in each channel, so that a reconnect or a restart
 * goes on from the last message printed, with nothing printed twice and nothing skipped
 * without a word.
 *
 * A position is the seq and epoch of the last message printed in a channel (or the one
 * --since or the state file gave). It becomes since=CHAN:SEQ:EPOCH on every connection,
 * it filters out duplicates, and it tells a hole in the sequence from a message repeated.
 *
 * The state file keeps positions across runs, one line per channel:
 *
 *	CHAN SEQ EPOCH
 *
 * EPOCH is "-" when not known; blank lines and lines starting with '#' are ignored. It is
 * replaced whole (a temporary file renamed over it), never edited in place. */
#ifndef CHAT_LISTEN_POSITION_H
#define CHAT_LISTEN_POSITION_H

#include <stddef.h>
#include <stdint.h>

#include "chan.h"
#include "envelope.h"

#define POS_SEQ_MAX 9007199254740991ULL /* 2^53 - 1: what a JSON number holds exactly */

struct pos {
	char chan[CHAN_MAX + 1];
	uint64_t seq;
	char epoch[ENV_EPOCH_MAX + 1]; /* "" when not known */
	int known;                     /* seq and epoch mean something */
	int followed;                  /* a -c channel; the others only pass through the file */
};

struct pos_table {
	struct pos *v;
	size_t n, cap;
};

/* What a message is, next to the channel's position. */
enum pos_verdict {
	POS_NEXT,  /* the one after, or nothing to compare with: print it */
	POS_DUP,   /* at or before the position in the same epoch: seen already */
	POS_HOLE,  /* later than the next one, in the same epoch: some were not received */
	POS_RESET, /* another epoch: the channel's history was lost since */
};

/* A gap frame from chatd: the position asked for is no longer stored. */
struct pos_gap {
	const char *chan;
	uint64_t asked, first, last;
	const char *asked_epoch, *epoch; /* never NULL; "" when absent */
};

struct pos *pos_find(struct pos_table *t, const char *chan);

/* Mark chans[0..n) as followed, adding the ones the table lacks. Returns 0 or -1 (memory). */
int pos_follow(struct pos_table *t, const char *const *chans, size_t n);

void pos_set(struct pos *p, uint64_t seq, const char *epoch);

/* Read a --since value, CHAN:SEQ[:EPOCH], or SEQ[:EPOCH] when only one channel is
 * followed, against the followed channels chans[0..n). On success *chan is one of them.
 * Returns 0, or -1 with the reason in err. */
int pos_parse_since(const char *text, const char *const *chans, size_t n, const char **chan,
		    uint64_t *seq, char epoch[ENV_EPOCH_MAX + 1], char *err, size_t errlen);

/* Add the positions in file to t. A missing file is an empty one. Returns 0, EX_NOINPUT
 * (cannot read it) or EX_DATAERR (not a state file), with the reason in err. */
int pos_load(struct pos_table *t, const char *file, char *err, size_t errlen);

/* Replace file with the known positions of t, atomically. Returns 0, or -1 with the reason
 * in err. */
int pos_save(const struct pos_table *t, const char *file, char *err, size_t errlen);

/* The query parameters that resume every followed channel with a position, then last=N
 * (when last > 0) for the others: "&since=a:3:e1&last=5". Returns 0, or -1 if out is too
 * small. */
int pos_query(const struct pos_table *t, long last, char *out, size_t outlen);

enum pos_verdict pos_judge(const struct pos *p, uint64_t seq, const char *epoch);

/* One sentence for a message at seq/epoch that is a POS_HOLE or POS_RESET after p. */
void pos_describe_jump(const struct pos *p, uint64_t seq, const char *epoch, char *out,
		       size_t outlen);

/* Read a gap frame's members. Returns 0, or -1 if it lacks one. */
int pos_gap_parse(const struct cJSON *root, struct pos_gap *g);

/* One sentence saying what was asked, what the server has, and what is lost. */
void pos_describe_gap(const struct pos_gap *g, char *out, size_t outlen);

/* 1 when chatd cannot resume chan: its since= takes the name up to the first ':'. */
int pos_unresumable(const char *chan);

void pos_free(struct pos_table *t);

#endif
