/* position.c: positions per channel, the state file, --since, and the sentences that
 * describe a gap; see position.h. */
#include "position.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sysexits.h>
#include <unistd.h>

#include "err.h"

#define EPOCH_CHARS "0123456789abcdefghijklmnopqrstuvwxyz"

struct pos *pos_find(struct pos_table *t, const char *chan)
{
	for (size_t i = 0; i < t->n; i++)
		if (!strcmp(t->v[i].chan, chan))
			return &t->v[i];
	return NULL;
}

/* chan must be a valid name. Pointers into the table do not survive this call. */
static struct pos *pos_add(struct pos_table *t, const char *chan)
{
	struct pos *p;

	if (t->n == t->cap) {
		size_t cap = t->cap ? 2 * t->cap : 16;
		struct pos *v = realloc(t->v, cap * sizeof *v);

		if (!v)
			return NULL;
		t->v = v;
		t->cap = cap;
	}
	p = &t->v[t->n++];
	memset(p, 0, sizeof *p);
	snprintf(p->chan, sizeof p->chan, "%s", chan);
	return p;
}

int pos_follow(struct pos_table *t, const char *const *chans, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		struct pos *p = pos_find(t, chans[i]);

		if (!p && !(p = pos_add(t, chans[i])))
			return -1;
		p->followed = 1;
	}
	return 0;
}

void pos_set(struct pos *p, uint64_t seq, const char *epoch)
{
	p->seq = seq;
	snprintf(p->epoch, sizeof p->epoch, "%s", epoch ? epoch : "");
	p->known = 1;
}

/* A seq as written in a since= or the state file: decimal digits, at most POS_SEQ_MAX. */
static int parse_seq(const char *s, size_t len, uint64_t *seq)
{
	uint64_t v = 0;

	if (len == 0 || len > 16)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	if (v > POS_SEQ_MAX)
		return -1;
	*seq = v;
	return 0;
}

static int epoch_ok(const char *s, size_t len)
{
	return len >= 1 && len <= ENV_EPOCH_MAX && strspn(s, EPOCH_CHARS) >= len;
}

/* "SEQ" or "SEQ:EPOCH" into seq and epoch ("" when absent). Returns 0 or -1. */
static int parse_seq_epoch(const char *s, uint64_t *seq, char epoch[ENV_EPOCH_MAX + 1])
{
	const char *colon = strchr(s, ':');
	size_t slen = colon ? (size_t)(colon - s) : strlen(s);

	if (parse_seq(s, slen, seq))
		return -1;
	epoch[0] = '\0';
	if (!colon)
		return 0;
	if (!epoch_ok(colon + 1, strlen(colon + 1)))
		return -1;
	snprintf(epoch, ENV_EPOCH_MAX + 1, "%s", colon + 1);
	return 0;
}

int pos_unresumable(const char *chan)
{
	return strchr(chan, ':') != NULL;
}

/* Channel names may hold ':' themselves, so the channel is found by matching the followed
 * names, the longest first, rather than by splitting at a colon. */
int pos_parse_since(const char *text, const char *const *chans, size_t n, const char **chan,
		    uint64_t *seq, char epoch[ENV_EPOCH_MAX + 1], char *err, size_t errlen)
{
	const char *best = NULL;
	size_t blen = 0;

	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(chans[i]);

		if (len > blen && !strncmp(text, chans[i], len) && text[len] == ':' &&
		    !parse_seq_epoch(text + len + 1, seq, epoch)) {
			best = chans[i];
			blen = len;
		}
	}
	if (best) {
		parse_seq_epoch(text + blen + 1, seq, epoch);
		if (pos_unresumable(best))
			return err_set(err, errlen, "--since cannot resume \"%s\": chatd does not take "
				       "since= for a channel name with ':'", best);
		*chan = best;
		return 0;
	}
	if (n == 1 && !parse_seq_epoch(text, seq, epoch)) {
		if (pos_unresumable(chans[0]))
			return err_set(err, errlen, "--since cannot resume \"%s\": chatd does not take "
				       "since= for a channel name with ':'", chans[0]);
		*chan = chans[0];
		return 0;
	}
	return err_set(err, errlen, "--since \"%s\": expected CHAN:SEQ[:EPOCH] for a channel given "
		       "with -c%s (SEQ a number, EPOCH 1 to 24 of 0-9 a-z)", text,
		       n == 1 ? ", or SEQ[:EPOCH]" : "");
}

/* One line of a state file, without its newline: "CHAN SEQ EPOCH". Returns 0, or -1 with
 * the reason in err. */
static int parse_state_line(char *line, char *chan, uint64_t *seq, char *epoch, char *err,
			    size_t errlen)
{
	char *field[4], *save = NULL;
	const char *why;
	int n = 0;

	for (char *f = strtok_r(line, " \t", &save); f; f = strtok_r(NULL, " \t", &save))
		if (n < 4)
			field[n++] = f;
	if (n != 3)
		return err_set(err, errlen, "expected \"CHAN SEQ EPOCH\", found %d field%s", n,
			       n == 1 ? "" : "s");
	if ((why = chan_check(field[0], strlen(field[0]))))
		return err_set(err, errlen, "invalid channel name \"%.80s\": %s", field[0], why);
	if (parse_seq(field[1], strlen(field[1]), seq))
		return err_set(err, errlen, "SEQ must be a number from 0 to %llu, not \"%.40s\"",
			       POS_SEQ_MAX, field[1]);
	if (strcmp(field[2], "-") && !epoch_ok(field[2], strlen(field[2])))
		return err_set(err, errlen, "EPOCH must be 1 to %d of 0-9 a-z, or -, not \"%.40s\"",
			       ENV_EPOCH_MAX, field[2]);
	strcpy(chan, field[0]);
	strcpy(epoch, strcmp(field[2], "-") ? field[2] : "");
	return 0;
}

/* Strict on purpose: a state file that does not read back exactly is a sign of someone
 * else's file or a damaged one, and guessing would print messages twice or skip them. */
static int load_lines(struct pos_table *t, FILE *f, const char *file, char *err, size_t errlen)
{
	char *line = NULL, chan[CHAN_MAX + 1], epoch[ENV_EPOCH_MAX + 1], why[200];
	size_t cap = 0;
	ssize_t len;
	long lineno = 0;
	uint64_t seq = 0;
	int rc = 0;

	while (!rc && (len = getline(&line, &cap, f)) >= 0) {
		struct pos *p;
		char *s = line;

		lineno++;
		if (len == 0 || line[len - 1] != '\n') {
			rc = err_set(err, errlen, "state file %s, line %ld: no newline at its end "
				     "(a truncated file?)", file, lineno);
			break;
		}
		line[len - 1] = '\0';
		s += strspn(s, " \t");
		if (!*s || *s == '#')
			continue;
		if (parse_state_line(s, chan, &seq, epoch, why, sizeof why))
			rc = err_set(err, errlen, "state file %s, line %ld: %s", file, lineno, why);
		else if (pos_find(t, chan))
			rc = err_set(err, errlen, "state file %s, line %ld: channel \"%s\" appears twice",
				     file, lineno, chan);
		else if (!(p = pos_add(t, chan)))
			rc = err_set(err, errlen, "out of memory");
		else
			pos_set(p, seq, epoch);
	}
	if (!rc && ferror(f))
		rc = err_set(err, errlen, "cannot read state file %s: %s", file, strerror(errno));
	free(line);
	return rc;
}

int pos_load(struct pos_table *t, const char *file, char *err, size_t errlen)
{
	FILE *f;
	int rc;

	if (strlen(file) > PATH_MAX - 8) {
		err_set(err, errlen, "state file name is too long");
		return EX_USAGE;
	}
	f = fopen(file, "r");
	if (!f && errno == ENOENT)
		return 0;
	if (!f) {
		err_set(err, errlen, "cannot read state file %s: %s", file, strerror(errno));
		return EX_NOINPUT;
	}
	rc = load_lines(t, f, file, err, errlen);
	rc = !rc ? 0 : ferror(f) ? EX_NOINPUT : EX_DATAERR;
	fclose(f);
	return rc;
}

/* A reader must never see half a file: write a temporary one beside it (rename only
 * replaces within one file system) and rename it over the old. No fsync: that would cost a
 * disk flush per message; a crash of the process cannot leave a torn file this way. */
int pos_save(const struct pos_table *t, const char *file, char *err, size_t errlen)
{
	char tmp[PATH_MAX];
	int fd, saved;
	FILE *f;

	snprintf(tmp, sizeof tmp, "%s.XXXXXX", file);
	if ((fd = mkstemp(tmp)) < 0)
		return err_set(err, errlen, "cannot write state file %s: %s", file, strerror(errno));
	if (!(f = fdopen(fd, "w"))) {
		saved = errno;
		close(fd);
		unlink(tmp);
		return err_set(err, errlen, "cannot write state file %s: %s", file, strerror(saved));
	}
	fputs("# chat-listen state: CHAN SEQ EPOCH of the last message printed\n", f);
	for (size_t i = 0; i < t->n; i++)
		if (t->v[i].known)
			fprintf(f, "%s %llu %s\n", t->v[i].chan, (unsigned long long)t->v[i].seq,
				t->v[i].epoch[0] ? t->v[i].epoch : "-");
	saved = ferror(f) ? errno : 0;
	if (fclose(f) && !saved)
		saved = errno;
	if (!saved && rename(tmp, file))
		saved = errno;
	if (saved) {
		unlink(tmp);
		return err_set(err, errlen, "cannot write state file %s: %s", file, strerror(saved));
	}
	return 0;
}

int pos_query(const struct pos_table *t, long last, char *out, size_t outlen)
{
	size_t len = 0;
	int w;

	out[0] = '\0';
	for (size_t i = 0; i < t->n; i++) {
		const struct pos *p = &t->v[i];

		if (!p->followed || !p->known || pos_unresumable(p->chan))
			continue;
		w = snprintf(out + len, outlen - len, "&since=%s:%llu%s%s", p->chan,
			     (unsigned long long)p->seq, p->epoch[0] ? ":" : "", p->epoch);
		if (w < 0 || (size_t)w >= outlen - len)
			return -1;
		len += (size_t)w;
	}
	if (last > 0) {
		w = snprintf(out + len, outlen - len, "&last=%ld", last);
		if (w < 0 || (size_t)w >= outlen - len)
			return -1;
	}
	return 0;
}

/* An epoch nobody told us (--since without one) matches any. */
enum pos_verdict pos_judge(const struct pos *p, uint64_t seq, const char *epoch)
{
	if (!p || !p->known || !seq)
		return POS_NEXT;
	if (p->epoch[0] && epoch && strcmp(p->epoch, epoch))
		return POS_RESET;
	if (seq <= p->seq)
		return POS_DUP;
	return seq == p->seq + 1 ? POS_NEXT : POS_HOLE;
}

/* "message 4" or "messages 4..7" */
static const char *range(uint64_t a, uint64_t b, char *buf, size_t len)
{
	if (a == b)
		snprintf(buf, len, "message %llu", (unsigned long long)a);
	else
		snprintf(buf, len, "messages %llu..%llu", (unsigned long long)a, (unsigned long long)b);
	return buf;
}

static const char *are(uint64_t a, uint64_t b)
{
	return a == b ? "is" : "are";
}

void pos_describe_jump(const struct pos *p, uint64_t seq, const char *epoch, char *out,
		       size_t outlen)
{
	char r[64];

	if (pos_judge(p, seq, epoch) == POS_HOLE) {
		snprintf(out, outlen, "gap in %s: got %llu right after %llu%s%s%s, with no gap notice "
			 "from the server; %s %s lost", p->chan, (unsigned long long)seq,
			 (unsigned long long)p->seq, epoch ? " (epoch " : "", epoch ? epoch : "",
			 epoch ? ")" : "", range(p->seq + 1, seq - 1, r, sizeof r),
			 are(p->seq + 1, seq - 1));
		return;
	}
	if (seq > 1)
		snprintf(out, outlen, "gap in %s: the channel's history was reset: printed up to %llu "
			 "of epoch %s, now at %llu of epoch %s; any message after %llu of epoch %s "
			 "is lost, and so %s %s of epoch %s", p->chan, (unsigned long long)p->seq,
			 p->epoch, (unsigned long long)seq, epoch, (unsigned long long)p->seq,
			 p->epoch, are(1, seq - 1), range(1, seq - 1, r, sizeof r), epoch);
	else
		snprintf(out, outlen, "history of %s was reset: printed up to %llu of epoch %s, now "
			 "at 1 of epoch %s; any message after %llu of epoch %s is lost", p->chan,
			 (unsigned long long)p->seq, p->epoch, epoch, (unsigned long long)p->seq,
			 p->epoch);
}

static int get_count(const cJSON *obj, const char *name, uint64_t *out)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > (double)POS_SEQ_MAX)
		return -1;
	*out = (uint64_t)v->valuedouble;
	return 0;
}

static const char *get_text(const cJSON *obj, const char *name)
{
	const cJSON *v = cJSON_GetObjectItemCaseSensitive(obj, name);

	return cJSON_IsString(v) ? v->valuestring : "";
}

int pos_gap_parse(const cJSON *root, struct pos_gap *g)
{
	const cJSON *asked = cJSON_GetObjectItemCaseSensitive(root, "asked"),
		    *avail = cJSON_GetObjectItemCaseSensitive(root, "available");

	g->chan = get_text(root, "chan");
	g->asked_epoch = get_text(asked, "epoch");
	g->epoch = get_text(avail, "epoch");
	if (!*g->chan || get_count(asked, "since", &g->asked) || get_count(avail, "first", &g->first) ||
	    get_count(avail, "last", &g->last))
		return -1;
	return 0;
}

void pos_describe_gap(const struct pos_gap *g, char *out, size_t outlen)
{
	int new_epoch = g->asked_epoch[0] && strcmp(g->asked_epoch, g->epoch);
	char asked[80], has[100], lost[160], r[64];

	snprintf(asked, sizeof asked, "asked after %llu%s%s%s", (unsigned long long)g->asked,
		 g->asked_epoch[0] ? " (epoch " : "", g->asked_epoch, g->asked_epoch[0] ? ")" : "");
	/* No epoch: the channel has no numbering (its history was lost, say by a restart of
	 * a chatd with the embedded broker, and nothing was published since): say so rather
	 * than name an empty one. */
	if (g->first <= g->last)
		snprintf(has, sizeof has, "server has %llu..%llu%s%s%s", (unsigned long long)g->first,
			 (unsigned long long)g->last, g->epoch[0] ? " (epoch " : "", g->epoch,
			 g->epoch[0] ? ")" : "");
	else if (g->epoch[0])
		snprintf(has, sizeof has, "server has none stored (epoch %s, last %llu)", g->epoch,
			 (unsigned long long)g->last);
	else if (g->last)
		snprintf(has, sizeof has, "server has none stored (no epoch, last %llu)",
			 (unsigned long long)g->last);
	else
		snprintf(has, sizeof has, "server has none stored (no epoch yet)");
	if (new_epoch && g->first > 1 && g->epoch[0])
		snprintf(lost, sizeof lost, "any message after %llu of epoch %s is lost, and so %s %s "
			 "of epoch %s", (unsigned long long)g->asked, g->asked_epoch,
			 are(1, g->first - 1), range(1, g->first - 1, r, sizeof r), g->epoch);
	else if (new_epoch)
		snprintf(lost, sizeof lost, "any message after %llu of epoch %s is lost",
			 (unsigned long long)g->asked, g->asked_epoch);
	else if (g->first > g->asked + 1)
		snprintf(lost, sizeof lost, "%s %s lost", range(g->asked + 1, g->first - 1, r, sizeof r),
			 are(g->asked + 1, g->first - 1));
	else
		snprintf(lost, sizeof lost, "messages after %llu may be lost", (unsigned long long)g->asked);
	snprintf(out, outlen, "gap in %s: %s, %s; %s", g->chan, asked, has, lost);
}

void pos_free(struct pos_table *t)
{
	free(t->v);
	t->v = NULL;
	t->n = t->cap = 0;
}
