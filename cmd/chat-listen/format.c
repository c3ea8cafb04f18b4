/* format.c: --format templates, compiled into pieces (literal text or a field) and filled
 * in per message into a buffer that is reused; see format.h. */
#include "format.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "err.h"
#include "json.h"

enum fmt_field { F_TEXT, F_CHAN, F_SEQ, F_EPOCH, F_TS, F_TS_MS, F_SENDER, F_MSG, F_JSON };

static const struct {
	const char *name;
	enum fmt_field field;
} fields[] = {
	{ "chan", F_CHAN }, { "seq", F_SEQ }, { "epoch", F_EPOCH }, { "ts", F_TS },
	{ "ts_ms", F_TS_MS }, { "sender", F_SENDER }, { "msg", F_MSG }, { "json", F_JSON },
};
#define FIELD_LIST "{chan} {seq} {epoch} {ts} {ts_ms} {sender} {msg} {json}"

/* ANSI SGR: dim for the time, which is there to be skipped; cyan for the channel; a bold
 * colour per sender, picked from the name so that one person keeps one colour (cyan left
 * out: it is the channel's). */
#define SGR_RESET "\033[0m"
#define SGR_TS "\033[2m"
#define SGR_CHAN "\033[36m"
static const char *const sender_sgr[] = { "\033[1;31m", "\033[1;32m", "\033[1;33m",
					  "\033[1;34m", "\033[1;35m" };

struct fmt_piece {
	enum fmt_field field;
	size_t off, len; /* F_TEXT: the text at f->text + off */
};

struct fmt {
	char *text; /* the literal parts, unescaped, back to back */
	struct fmt_piece *v;
	size_t n;
	char *out; /* the rendering, reused from one message to the next */
	size_t len, cap;
	int oom;
	char *min; /* the envelope made compact, to cut msg from; reused too */
	size_t mincap;
};

/* A template of n bytes has at most n pieces: v was sized for that. Literal text comes
 * one character at a time, and joins the piece before when that is text too. */
static void add_piece(struct fmt *f, enum fmt_field field, size_t off, size_t len)
{
	if (field == F_TEXT && f->n && f->v[f->n - 1].field == F_TEXT) {
		f->v[f->n - 1].len += len;
		return;
	}
	f->v[f->n++] = (struct fmt_piece){ field, off, len };
}

/* name[0..len) of a {field}: its code, or -1. */
static int field_of(const char *name, size_t len)
{
	for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++)
		if (strlen(fields[i].name) == len && !memcmp(fields[i].name, name, len))
			return (int)fields[i].field;
	return -1;
}

/* The text after a backslash: one character it stands for, or -1. */
static int unescape(char c)
{
	return c == 't' ? '\t' : c == 'n' ? '\n' : c == '\\' ? '\\' : -1;
}

struct fmt *fmt_compile(const char *tmpl, char *err, size_t errlen)
{
	size_t n = strlen(tmpl), t = 0;
	struct fmt *f = calloc(1, sizeof *f);

	if (!f || !(f->text = malloc(n + 1)) || !(f->v = calloc(n + 1, sizeof *f->v))) {
		fmt_free(f);
		err_set(err, errlen, "out of memory");
		return NULL;
	}
	tzset(); /* localtime_r need not read TZ itself */
	for (size_t i = 0; i < n;) {
		const char *close;
		int c, field;

		if ((tmpl[i] == '{' && tmpl[i + 1] == '{') || (tmpl[i] == '}' && tmpl[i + 1] == '}')) {
			f->text[t] = tmpl[i];
			add_piece(f, F_TEXT, t++, 1);
			i += 2;
		} else if (tmpl[i] == '{') {
			if (!(close = strchr(tmpl + i + 1, '}'))) {
				err_set(err, errlen, "--format: \"{\" without its \"}\" (write {{ for a "
					"literal brace)");
				goto fail;
			}
			field = field_of(tmpl + i + 1, (size_t)(close - tmpl - i - 1));
			if (field < 0) {
				err_set(err, errlen, "--format: unknown field {%.*s}; the fields are "
					FIELD_LIST, (int)(close - tmpl - i - 1), tmpl + i + 1);
				goto fail;
			}
			add_piece(f, (enum fmt_field)field, 0, 0);
			i = (size_t)(close - tmpl) + 1;
		} else if (tmpl[i] == '}') {
			err_set(err, errlen, "--format: \"}\" without its \"{\" (write }} for a literal "
				"brace)");
			goto fail;
		} else if (tmpl[i] == '\\') {
			if ((c = unescape(tmpl[i + 1])) < 0) {
				if (tmpl[i + 1])
					err_set(err, errlen, "--format: unknown escape \\%c (the escapes "
						"are \\t, \\n and \\\\)", tmpl[i + 1]);
				else
					err_set(err, errlen, "--format: \"\\\" at the end (write \\\\ for "
						"a backslash)");
				goto fail;
			}
			f->text[t] = (char)c;
			add_piece(f, F_TEXT, t++, 1);
			i += 2;
		} else {
			f->text[t] = tmpl[i];
			add_piece(f, F_TEXT, t++, 1);
			i++;
		}
	}
	return f;
fail:
	fmt_free(f);
	return NULL;
}

static void put(struct fmt *f, const char *s, size_t len)
{
	if (f->oom || !len)
		return;
	if (f->len + len > f->cap) {
		size_t cap = f->cap ? f->cap : 256;
		char *p;

		while (cap < f->len + len)
			cap *= 2;
		if (!(p = realloc(f->out, cap))) {
			f->oom = 1;
			return;
		}
		f->out = p;
		f->cap = cap;
	}
	memcpy(f->out + f->len, s, len);
	f->len += len;
}

static void put_str(struct fmt *f, const char *s)
{
	put(f, s, strlen(s));
}

/* s wrapped in the colour sgr, when there is colour and something to colour. */
static void put_colored(struct fmt *f, const char *s, const char *sgr, int color)
{
	if (!*s)
		return;
	if (color)
		put_str(f, sgr);
	put_str(f, s);
	if (color)
		put_str(f, SGR_RESET);
}

static const char *sender_color(const char *name)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (const unsigned char *p = (const unsigned char *)name; *p; p++)
		h = (h ^ *p) * 16777619u;
	return sender_sgr[h % (sizeof sender_sgr / sizeof sender_sgr[0])];
}

static int has_number(const struct env_msg *m, const char *name)
{
	return cJSON_IsNumber(cJSON_GetObjectItemCaseSensitive(m->root, name));
}

/* The server's time stamp in local time, to the second; "" without one. */
static void local_time(const struct env_msg *m, char *out, size_t outlen)
{
	time_t secs = (time_t)(m->ts >= 0 ? m->ts / 1000 : (m->ts - 999) / 1000);
	struct tm tm;

	out[0] = '\0';
	if (has_number(m, "ts") && localtime_r(&secs, &tm))
		strftime(out, outlen, "%Y-%m-%d %H:%M:%S", &tm);
}

/* The JSON text of the envelope's "msg" member, as published: frame[0..len) made compact
 * (which also checks it strictly), then its members walked as spans of text, the first
 * one named msg winning as it does for cJSON. Returns 0 with the span, 1 when the frame is
 * not strict JSON or has no msg, -1 when out of memory. */
static int raw_msg(struct fmt *f, const char *frame, size_t len, const char **val, size_t *vlen)
{
	const char *key, *why;
	size_t klen, pos = 0, err_at;
	char name[3];
	long n;

	if (len + 1 > f->mincap) {
		char *p = realloc(f->min, len + 1);

		if (!p)
			return -1;
		f->min = p;
		f->mincap = len + 1;
	}
	if ((n = json_minify(frame, len, f->min, &err_at, &why)) < 0)
		return 1;
	while (json_object_next(f->min, (size_t)n, &pos, &key, &klen, val, vlen))
		if (json_unescape_short(key, klen, name, sizeof name) == 3 && !memcmp(name, "msg", 3))
			return 0;
	return 1;
}

/* A string as its text. Any other value as its publisher wrote it, minus whitespace: cut
 * from the envelope's text, where chatd keeps every digit, rather than printed again by
 * cJSON, which goes through doubles (1e400 would become null, 12345678901234567890 lose
 * digits and 1.10 its zero). Only a frame that is not strict JSON, which chatd never
 * sends, falls back to cJSON's printing. */
static void put_msg(struct fmt *f, const struct env_msg *m, const char *frame, size_t len)
{
	const char *val;
	size_t vlen;
	char *text;
	int rc;

	if (cJSON_IsString(m->msg)) {
		put_str(f, m->msg->valuestring);
		return;
	}
	if ((rc = raw_msg(f, frame, len, &val, &vlen)) <= 0) {
		if (rc < 0)
			f->oom = 1;
		else
			put(f, val, vlen);
		return;
	}
	if (!(text = cJSON_PrintUnformatted(m->msg))) {
		f->oom = 1;
		return;
	}
	put_str(f, text);
	cJSON_free(text);
}

int fmt_render(struct fmt *f, const struct env_msg *m, const char *frame, size_t len, int color,
	       const char **out, size_t *outlen)
{
	char buf[64];

	f->len = 0;
	f->oom = 0;
	for (size_t i = 0; i < f->n; i++) {
		const struct fmt_piece *p = &f->v[i];

		switch (p->field) {
		case F_TEXT: put(f, f->text + p->off, p->len); break;
		case F_CHAN: put_colored(f, m->chan ? m->chan : "", SGR_CHAN, color); break;
		case F_SEQ:
			if (m->seq) {
				snprintf(buf, sizeof buf, "%" PRIu64, m->seq);
				put_str(f, buf);
			}
			break;
		case F_EPOCH: put_str(f, m->epoch ? m->epoch : ""); break;
		case F_TS:
			local_time(m, buf, sizeof buf);
			put_colored(f, buf, SGR_TS, color);
			break;
		case F_TS_MS:
			if (has_number(m, "ts")) {
				snprintf(buf, sizeof buf, "%" PRId64, m->ts);
				put_str(f, buf);
			}
			break;
		case F_SENDER:
			if (m->sender)
				put_colored(f, m->sender, sender_color(m->sender), color);
			break;
		case F_MSG: put_msg(f, m, frame, len); break;
		case F_JSON: put(f, frame, len); break;
		}
	}
	if (f->oom)
		return -1;
	*out = f->out ? f->out : "";
	*outlen = f->len;
	return 0;
}

void fmt_free(struct fmt *f)
{
	if (!f)
		return;
	free(f->text);
	free(f->v);
	free(f->out);
	free(f->min);
	free(f);
}
