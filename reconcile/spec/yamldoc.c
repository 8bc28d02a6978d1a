/*
 * yamldoc.c -- a safe YAML loader on libyaml's event API (see yamldoc.h).
 *
 * The tree is built without recursion: an explicit stack of open
 * collections, bounded by SPEC_MAX_DEPTH.  Nodes and text come from an
 * arena of large chunks, so a tree is freed by walking one list.
 *
 * Plain scalars are typed by hand-written matchers that follow PyYAML's
 * YAML 1.1 implicit resolver expressions (yaml/resolver.py) one for one,
 * so that this loader and the JSON Schema checks in tests/schema agree
 * on what every plain scalar is.  Each matcher is commented with the
 * expression it implements.
 */
#include "reconcile/spec/yamldoc.h"
#include "common/utf8.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

/* ---- diagnostics sink ---- */

void ysink_init(struct ysink *s, struct diags *d, const char *path)
{
	s->d = d;
	s->path = path ? path : "";
	s->first = d ? d->n : 0;
	s->dropped = 0;
	s->nomem = 0;
}

void ysink_add(struct ysink *s, int line, int column, const char *fmt, ...)
{
	char msg[1024];
	size_t before;
	va_list ap;

	if (ysink_full(s)) {
		s->dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	before = s->d->n;
	diags_add(s->d, s->path, line, column, "%s", msg);
	if (s->d->n == before) {
		s->nomem = 1;
		s->dropped++;
	}
}

int ysink_full(const struct ysink *s)
{
	return !s->d || s->d->n - s->first >= YSINK_MAX;
}

size_t ysink_count(const struct ysink *s)
{
	return (s->d ? s->d->n - s->first : 0) + s->dropped;
}

static int diag_before(const struct diag *a, const struct diag *b)
{
	return a->line < b->line || (a->line == b->line && a->column < b->column);
}

void ysink_finish(struct ysink *s)
{
	struct diag *v, t;
	size_t i, j, n;

	if (!s->d)
		return;
	n = s->d->n - s->first;
	v = n ? s->d->v + s->first : NULL;   /* no diagnostic yet: d->v may still be NULL */
	/* Insertion sort: stable, and n <= YSINK_MAX. */
	for (i = 1; i < n; i++) {
		t = v[i];
		for (j = i; j > 0 && diag_before(&t, &v[j - 1]); j--)
			v[j] = v[j - 1];
		v[j] = t;
	}
	if (s->dropped) {
		diags_add(s->d, s->path, 0, 0, "%zu more problem%s not shown", s->dropped,
			  s->dropped == 1 ? "" : "s");
		s->dropped = 0;
	}
}

/* ---- quoting user text for messages ---- */

void yquote(char *dst, size_t cap, const char *text, size_t len, size_t max)
{
	const unsigned char *p = (const unsigned char *)text;
	size_t o = 0, i = 0, chars = 0, k;
	unsigned long cp;
	char piece[16];

	if (cap < 8) {
		if (cap)
			dst[0] = '\0';
		return;
	}
	dst[o++] = '"';
	while (i < len) {
		size_t plen;

		k = utf8_decode(p + i, len - i, &cp);
		if (k == 0) {
			snprintf(piece, sizeof(piece), "\\x%02X", p[i]);
			k = 1;
		} else if (cp == '"' || cp == '\\') {
			piece[0] = '\\';
			piece[1] = (char)cp;
			piece[2] = '\0';
		} else if (cp == '\n') {
			snprintf(piece, sizeof(piece), "\\n");
		} else if (cp == '\t') {
			snprintf(piece, sizeof(piece), "\\t");
		} else if (cp == '\r') {
			snprintf(piece, sizeof(piece), "\\r");
		} else if (cp < 0x20 || cp == 0x7F) {
			snprintf(piece, sizeof(piece), "\\x%02lX", cp);
		} else if (cp >= 0x80 && cp <= 0x9F) {
			snprintf(piece, sizeof(piece), "\\u%04lX", cp);
		} else {
			memcpy(piece, p + i, k);
			piece[k] = '\0';
		}
		plen = strlen(piece);
		/* Room for the piece plus the closing `..."` and the NUL. */
		if (chars >= max || o + plen + 5 > cap) {
			memcpy(dst + o, "...", 3);
			o += 3;
			break;
		}
		memcpy(dst + o, piece, plen);
		o += plen;
		i += k;
		chars++;
	}
	dst[o++] = '"';
	dst[o] = '\0';
}

/* ---- arena ---- */

#define CHUNK_SIZE ((size_t)64 << 10)

struct chunk {
	struct chunk *next;
	size_t used, cap;
	max_align_t mem[];
};

struct ydoc {
	struct chunk *chunks;
	struct ynode *root;
};

static void *arena_alloc(struct ydoc *doc, size_t n)
{
	const size_t al = _Alignof(max_align_t);
	struct chunk *c = doc->chunks;
	size_t need, cap;
	void *p;

	if (n > SIZE_MAX - al)
		return NULL;
	need = (n + al - 1) / al * al;
	if (!c || c->cap - c->used < need) {
		cap = need > CHUNK_SIZE / 4 ? need : CHUNK_SIZE;
		if (cap > SIZE_MAX - sizeof(*c))
			return NULL;
		c = malloc(sizeof(*c) + cap);
		if (!c)
			return NULL;
		c->used = 0;
		c->cap = cap;
		if (need > CHUNK_SIZE / 4 && doc->chunks) {
			/* A big block: keep filling the current small chunk. */
			c->next = doc->chunks->next;
			doc->chunks->next = c;
			c->used = need;
			return (char *)c->mem;
		}
		c->next = doc->chunks;
		doc->chunks = c;
	}
	p = (char *)c->mem + c->used;
	c->used += need;
	return p;
}

void ydoc_free(struct ydoc *doc)
{
	struct chunk *c, *next;

	if (!doc)
		return;
	for (c = doc->chunks; c; c = next) {
		next = c->next;
		free(c);
	}
	free(doc);
}

const struct ynode *ydoc_root(const struct ydoc *doc)
{
	return doc ? doc->root : NULL;
}

const char *ynode_what(const struct ynode *n)
{
	if (!n)
		return "nothing";
	switch (n->kind) {
	case YNODE_MAP:
		return "a mapping";
	case YNODE_SEQ:
		return "a list";
	case YNODE_SCALAR:
	default:
		break;
	}
	switch (n->type) {
	case YS_NULL:
		return n->plain && n->len == 0 ? "nothing (an empty value)" : "null";
	case YS_BOOL:
		return "a boolean";
	case YS_INT:
		return "an integer";
	case YS_FLOAT:
		return "a float";
	case YS_TIMESTAMP:
		return "a date";
	case YS_STR:
	default:
		return "a string";
	}
}

/* ---- plain scalar typing (PyYAML SafeLoader, YAML 1.1) ---- */

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static int is_hex(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

static int hex_val(char c)
{
	if (is_digit(c))
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return c - 'A' + 10;
}

static int text_is(const char *s, size_t n, const char *w)
{
	return strlen(w) == n && memcmp(s, w, n) == 0;
}

/* ^(?: ~ |null|Null|NULL | )$ */
static int match_null(const char *s, size_t n)
{
	return n == 0 || text_is(s, n, "~") || text_is(s, n, "null") || text_is(s, n, "Null") ||
	       text_is(s, n, "NULL");
}

/* ^(?:yes|Yes|YES|no|No|NO|true|True|TRUE|false|False|FALSE|on|On|ON|off|Off|OFF)$ */
static int match_bool(const char *s, size_t n, int *v)
{
	static const char *const yes[] = { "yes", "Yes", "YES", "true", "True", "TRUE", "on", "On", "ON" };
	static const char *const no[] = { "no", "No", "NO", "false", "False", "FALSE", "off", "Off", "OFF" };
	size_t i;

	for (i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (text_is(s, n, yes[i])) {
			*v = 1;
			return 1;
		}
		if (text_is(s, n, no[i])) {
			*v = 0;
			return 1;
		}
	}
	return 0;
}

/*
 * One sexagesimal group list starting at s[i] == ':': (?::[0-5]?[0-9])+
 * followed by `stop` (0: end of text, '.': a dot).  Each group is one
 * digit, or two digits of which the first is 0-5.  Returns the index
 * just past the groups, or 0 when they do not match.
 */
static size_t sexa_groups(const char *s, size_t n, size_t i, char stop)
{
	size_t run;

	for (;;) {
		if (i >= n || s[i] != ':')
			return 0;
		i++;
		for (run = 0; i + run < n && is_digit(s[i + run]); run++)
			;
		if (run == 0 || run > 2 || (run == 2 && s[i] > '5'))
			return 0;
		i += run;
		if (i == n)
			return stop == 0 ? i : 0;
		if (s[i] == ':')
			continue;
		return s[i] == stop ? i : 0;
	}
}

/* (?:[eE][-+][0-9]+)?$ on what is left */
static int exp_tail(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return 1;
	if (n < 3 || (s[0] != 'e' && s[0] != 'E') || (s[1] != '-' && s[1] != '+'))
		return 0;
	for (i = 2; i < n; i++)
		if (!is_digit(s[i]))
			return 0;
	return 1;
}

/*
 * ^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
 *    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
 *    |[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*
 *    |[-+]?\.(?:inf|Inf|INF)
 *    |\.(?:nan|NaN|NAN))$
 */
static int match_float(const char *s, size_t n)
{
	size_t i = 0, j;
	int sign = 0;

	if (n == 0)
		return 0;
	if (s[0] == '-' || s[0] == '+') {
		i = 1;
		sign = 1;
	}
	if (i < n && s[i] == '.') {
		const char *r = s + i + 1;
		size_t rn = n - i - 1;

		if (text_is(r, rn, "inf") || text_is(r, rn, "Inf") || text_is(r, rn, "INF"))
			return 1;
		if (sign)
			return 0;
		if (text_is(r, rn, "nan") || text_is(r, rn, "NaN") || text_is(r, rn, "NAN"))
			return 1;
		if (rn == 0 || !is_digit(r[0]))
			return 0;
		for (j = 1; j < rn && (is_digit(r[j]) || r[j] == '_'); j++)
			;
		return exp_tail(r + j, rn - j);
	}
	if (i >= n || !is_digit(s[i]))
		return 0;
	for (j = i + 1; j < n && (is_digit(s[j]) || s[j] == '_'); j++)
		;
	if (j < n && s[j] == ':') {
		/* [-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+\.[0-9_]*   (no exponent) */
		j = sexa_groups(s, n, j, '.');
		if (j == 0)
			return 0;
		for (j++; j < n && (is_digit(s[j]) || s[j] == '_'); j++)
			;
		return j == n;
	}
	/* [-+]?[0-9][0-9_]*\.[0-9_]*(?:[eE][-+][0-9]+)? */
	if (j >= n || s[j] != '.')
		return 0;
	for (j++; j < n && (is_digit(s[j]) || s[j] == '_'); j++)
		;
	return exp_tail(s + j, n - j);
}

enum int_form { INT_DEC, INT_BIN, INT_OCT, INT_HEX, INT_SEXA };

/*
 * ^(?:[-+]?0b[0-1_]+
 *    |[-+]?0[0-7_]+
 *    |[-+]?(?:0|[1-9][0-9_]*)
 *    |[-+]?0x[0-9a-fA-F_]+
 *    |[-+]?[1-9][0-9_]*(?::[0-5]?[0-9])+)$
 * Returns 1 on a match and sets *form and *start (index of the digits).
 */
static int match_int(const char *s, size_t n, enum int_form *form, size_t *start)
{
	size_t i = 0, j;

	if (i < n && (s[i] == '-' || s[i] == '+'))
		i++;
	if (i >= n)
		return 0;
	if (s[i] == '0') {
		if (i + 1 == n) {
			*form = INT_DEC;
			*start = i;
			return 1;
		}
		if (s[i + 1] == 'b' || s[i + 1] == 'x') {
			int hex = s[i + 1] == 'x';

			if (i + 2 == n)
				return 0;
			for (j = i + 2; j < n; j++)
				if (!(s[j] == '_' || (hex ? is_hex(s[j]) : (s[j] == '0' || s[j] == '1'))))
					return 0;
			*form = hex ? INT_HEX : INT_BIN;
			*start = i + 2;
			return 1;
		}
		for (j = i + 1; j < n; j++)
			if (!(s[j] == '_' || (s[j] >= '0' && s[j] <= '7')))
				return 0;
		*form = INT_OCT;
		*start = i + 1;
		return 1;
	}
	if (s[i] < '1' || s[i] > '9')
		return 0;
	for (j = i + 1; j < n && (is_digit(s[j]) || s[j] == '_'); j++)
		;
	*start = i;
	if (j == n) {
		*form = INT_DEC;
		return 1;
	}
	if (s[j] == ':' && sexa_groups(s, n, j, 0) == n) {
		*form = INT_SEXA;
		return 1;
	}
	return 0;
}

/*
 * The value as PyYAML's construct_yaml_int computes it (underscores
 * dropped, base by prefix, base 60 for sexagesimal).  Returns -1 when
 * PyYAML would fail (no digits left, as in "0b_"), else 0 with
 * n->int_fits and n->ival set.
 */
static int int_value(struct ynode *n, enum int_form form, size_t start)
{
	const unsigned long long cap = (unsigned long long)INT_MAX + 1;
	unsigned long long acc = 0, part = 0;
	int base = form == INT_BIN ? 2 : form == INT_HEX ? 16 : form == INT_OCT ? 8 : 10;
	int neg = n->text[0] == '-', digits = 0;
	size_t i;

	for (i = start; i < n->len; i++) {
		char c = n->text[i];

		if (c == '_')
			continue;
		if (c == ':') {
			/* Sexagesimal: acc holds the groups so far, part the current one. */
			acc = acc * 60 + part;
			if (acc > cap)
				acc = cap + 1;
			part = 0;
			continue;
		}
		part = part * (unsigned)base + (unsigned)hex_val(c);
		if (part > cap)
			part = cap + 1;
		digits++;
	}
	if (digits == 0 && form != INT_OCT)
		return -1;
	if (form == INT_SEXA) {
		acc = acc * 60 + part;
		if (acc > cap)
			acc = cap + 1;
	} else {
		acc = part;
	}
	n->int_fits = acc < cap || (neg && acc == cap);
	if (n->int_fits)
		n->ival = neg ? (int)(-(long long)acc) : (int)acc;
	n->octal = form == INT_OCT;
	return 0;
}

/* Length of a run of digits at s[i], at most max + 1. */
static size_t digit_run(const char *s, size_t n, size_t i, size_t max)
{
	size_t k = 0;

	while (i + k < n && is_digit(s[i + k]) && k <= max)
		k++;
	return k;
}

/*
 * ^(?:[0-9][0-9][0-9][0-9]-[0-9][0-9]-[0-9][0-9]
 *    |[0-9][0-9][0-9][0-9]-[0-9][0-9]?-[0-9][0-9]?
 *     (?:[Tt]|[ \t]+)[0-9][0-9]?:[0-9][0-9]:[0-9][0-9](?:\.[0-9]*)?
 *     (?:[ \t]*(?:Z|[-+][0-9][0-9]?(?::[0-9][0-9])?))?)$
 */
static int match_timestamp(const char *s, size_t n)
{
	size_t i, m, d, h;

	if (n < 8 || digit_run(s, n, 0, 4) != 4 || s[4] != '-')
		return 0;
	m = digit_run(s, n, 5, 2);
	if (m < 1 || m > 2 || 5 + m >= n || s[5 + m] != '-')
		return 0;
	i = 6 + m;
	d = digit_run(s, n, i, 2);
	if (d < 1 || d > 2)
		return 0;
	i += d;
	if (i == n)
		return m == 2 && d == 2;
	if (s[i] == 'T' || s[i] == 't') {
		i++;
	} else if (s[i] == ' ' || s[i] == '\t') {
		while (i < n && (s[i] == ' ' || s[i] == '\t'))
			i++;
	} else {
		return 0;
	}
	h = digit_run(s, n, i, 2);
	if (h < 1 || h > 2)
		return 0;
	i += h;
	if (n - i < 6 || s[i] != ':' || !is_digit(s[i + 1]) || !is_digit(s[i + 2]) || s[i + 3] != ':' ||
	    !is_digit(s[i + 4]) || !is_digit(s[i + 5]))
		return 0;
	i += 6;
	if (i < n && s[i] == '.')
		for (i++; i < n && is_digit(s[i]); i++)
			;
	if (i == n)
		return 1;
	while (i < n && (s[i] == ' ' || s[i] == '\t'))
		i++;
	if (i < n && s[i] == 'Z')
		return i + 1 == n;
	if (i >= n || (s[i] != '-' && s[i] != '+'))
		return 0;
	i++;
	h = digit_run(s, n, i, 2);
	if (h < 1 || h > 2)
		return 0;
	i += h;
	if (i == n)
		return 1;
	return n - i == 3 && s[i] == ':' && is_digit(s[i + 1]) && is_digit(s[i + 2]);
}

/* ---- the builder ---- */

struct frame {
	struct ynode *node;
	int want_value;  /* in a mapping: the next node is a value */
};

struct builder {
	struct ydoc *doc;
	struct ysink *s;
	struct frame stack[SPEC_MAX_DEPTH];
	int depth;
	int docs;
};

static int mark_line(const yaml_mark_t *m)
{
	return m->line >= (size_t)INT_MAX ? INT_MAX : (int)m->line + 1;
}

static int mark_col(const yaml_mark_t *m)
{
	return m->column >= (size_t)INT_MAX ? INT_MAX : (int)m->column + 1;
}

/* prefix + s for messages: as is when made of ordinary characters, else quoted. */
static void show_token(char *dst, size_t cap, const char *prefix, const char *s)
{
	size_t n = strlen(s), i;
	int simple = n > 0 && n <= 64;
	char q[96];

	for (i = 0; simple && i < n; i++)
		simple = is_digit(s[i]) || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= 'A' && s[i] <= 'Z') ||
			 strchr("_-.!:/,", s[i]) != NULL;
	if (simple) {
		snprintf(dst, cap, "%s%s", prefix, s);
	} else {
		yquote(q, sizeof(q), s, n, 40);
		snprintf(dst, cap, "%s%s", prefix, q);
	}
}

/* A tag as written: "!!str" for the YAML core tags, else as libyaml resolved it. */
static void show_tag(char *dst, size_t cap, const unsigned char *tag)
{
	static const char core[] = "tag:yaml.org,2002:";
	const char *t = (const char *)tag;

	if (strncmp(t, core, sizeof(core) - 1) == 0)
		show_token(dst, cap, "!!", t + sizeof(core) - 1);
	else
		show_token(dst, cap, "", t);
}

static struct ynode *new_node(struct builder *b, enum ynode_kind kind, const yaml_mark_t *m)
{
	struct ynode *n = arena_alloc(b->doc, sizeof(*n));

	if (!n)
		return NULL;
	memset(n, 0, sizeof(*n));
	n->kind = kind;
	n->type = YS_STR;
	n->line = mark_line(m);
	n->column = mark_col(m);
	n->text = "";
	return n;
}

/* Anchors and tags on a node: soft problems. */
static void check_props(struct builder *b, struct ynode *n, const yaml_char_t *anchor, const yaml_char_t *tag)
{
	char what[128];

	if (anchor) {
		show_token(what, sizeof(what), "&", (const char *)anchor);
		ysink_add(b->s, n->line, n->column,
			  "anchors are not allowed (found %s); write the value out in full", what);
	}
	if (tag) {
		show_tag(what, sizeof(what), tag);
		ysink_add(b->s, n->line, n->column, "tags are not allowed (found %s); write plain YAML data", what);
		n->bad = 1;
	}
}

static void resolve_plain(struct builder *b, struct ynode *n)
{
	enum int_form form;
	size_t start;
	char q[96];

	if (match_null(n->text, n->len)) {
		n->type = YS_NULL;
	} else if (match_bool(n->text, n->len, &n->ival)) {
		n->type = YS_BOOL;
	} else if (match_float(n->text, n->len)) {
		n->type = YS_FLOAT;
	} else if (match_int(n->text, n->len, &form, &start)) {
		n->type = YS_INT;
		if (int_value(n, form, start) < 0) {
			yquote(q, sizeof(q), n->text, n->len, 40);
			ysink_add(b->s, n->line, n->column, "invalid integer %s (no digits after the prefix)", q);
			n->bad = 1;
		}
	} else if (match_timestamp(n->text, n->len)) {
		n->type = YS_TIMESTAMP;
	} else if (text_is(n->text, n->len, "<<")) {
		ysink_add(b->s, n->line, n->column,
			  "merge keys (<<) are not allowed; write the keys out in full (or quote \"<<\")");
		n->bad = 1;
	} else if (text_is(n->text, n->len, "=") || text_is(n->text, n->len, "!") ||
		   text_is(n->text, n->len, "&") || text_is(n->text, n->len, "*")) {
		ysink_add(b->s, n->line, n->column,
			  "a plain \"%.1s\" has a special meaning in YAML 1.1; quote it", n->text);
		n->bad = 1;
	}
}

static void append_child(struct ynode *p, struct ynode *n)
{
	if (p->last_)
		p->last_->next = n;
	else
		p->first = n;
	p->last_ = n;
	p->count++;
}

/* A new key of a mapping: it must be a string. */
static void check_key(struct builder *b, struct ynode *k)
{
	char q[96];

	if (k->bad)
		return;
	if (k->kind != YNODE_SCALAR) {
		ysink_add(b->s, k->line, k->column, "mapping keys must be strings, found %s", ynode_what(k));
		k->bad = 1;
		return;
	}
	if (k->type != YS_STR) {
		yquote(q, sizeof(q), k->text, k->len, 40);
		if (k->type == YS_NULL && k->len == 0)
			ysink_add(b->s, k->line, k->column, "mapping keys must be strings, found an empty key");
		else
			ysink_add(b->s, k->line, k->column, "mapping keys must be strings, found %s (quote it: %s)",
				  ynode_what(k), q);
		k->bad = 1;
	}
}

/* Hook a finished (or just opened) node into its parent. */
static void attach(struct builder *b, struct ynode *n)
{
	struct frame *f;

	if (b->depth == 0) {
		b->doc->root = n;
		return;
	}
	f = &b->stack[b->depth - 1];
	if (f->node->kind == YNODE_SEQ) {
		append_child(f->node, n);
	} else if (!f->want_value) {
		check_key(b, n);
		append_child(f->node, n);
		f->want_value = 1;
	} else {
		f->node->last_->value = n;
		f->want_value = 0;
	}
}

static int key_cmp(const void *pa, const void *pb)
{
	const struct ynode *a = *(const struct ynode *const *)pa, *b = *(const struct ynode *const *)pb;
	size_t n = a->len < b->len ? a->len : b->len;
	int c = memcmp(a->text, b->text, n);

	if (c)
		return c;
	if (a->len != b->len)
		return a->len < b->len ? -1 : 1;
	if (a->line != b->line)
		return a->line < b->line ? -1 : 1;
	return a->column < b->column ? -1 : a->column > b->column;
}

/* At the end of a mapping: report every repeated key (not the first). */
static int check_duplicates(struct builder *b, struct ynode *map)
{
	struct ynode **v, *k;
	size_t n = 0, i, head = 0;
	char q[96];

	if (map->count < 2)
		return 0;
	v = malloc(map->count * sizeof(*v));
	if (!v)
		return ROTOR_ENOMEM;
	for (k = map->first; k; k = k->next)
		if (!k->bad)
			v[n++] = k;
	qsort(v, n, sizeof(*v), key_cmp);
	for (i = 1; i < n; i++) {
		if (v[i]->len == v[head]->len && memcmp(v[i]->text, v[head]->text, v[i]->len) == 0) {
			yquote(q, sizeof(q), v[i]->text, v[i]->len, 64);
			ysink_add(b->s, v[i]->line, v[i]->column, "duplicate key %s (first defined at line %d)", q,
				  v[head]->line);
			v[i]->bad = 1;
		} else {
			head = i;
		}
	}
	free(v);
	return 0;
}

/*
 * Line and column (1-based) of a byte offset, counting as libyaml does:
 * characters, with CR, LF, CR LF, NEL, LS and PS as line breaks.
 */
static void offset_mark(const char *data, size_t len, size_t off, int *line, int *col)
{
	const unsigned char *p = (const unsigned char *)data;
	size_t i;
	int l = 1, c = 1;

	if (off > len)
		off = len;
	for (i = 0; i < off; i++) {
		if (p[i] == '\n' || (p[i] == '\r' && (i + 1 >= len || p[i + 1] != '\n')) ||
		    (p[i] == 0xC2 && i + 1 < off && p[i + 1] == 0x85) ||
		    (p[i] == 0xE2 && i + 2 < off && p[i + 1] == 0x80 && (p[i + 2] == 0xA8 || p[i + 2] == 0xA9))) {
			l++;
			c = 1;
		} else if ((p[i] & 0xC0) != 0x80 && p[i] != '\r') {
			c++;
		}
	}
	*line = l;
	*col = c;
}

static int parser_error(struct builder *b, const yaml_parser_t *p, const char *data, size_t len)
{
	const char *problem = p->problem ? p->problem : "unknown error";
	char ctx[160] = "";
	int line, col;

	if (p->error == YAML_MEMORY_ERROR) {
		ysink_add(b->s, 0, 0, "out of memory");
		b->s->nomem = 1;
		return ROTOR_ENOMEM;
	}
	if (p->error == YAML_READER_ERROR) {
		size_t off = p->problem_offset < len ? p->problem_offset : len;

		if (strstr(problem, "trailing UTF-8") || strstr(problem, "incomplete UTF-8")) {
			/* Point at the sequence's first byte, which is what the eye looks for. */
			while (off > 0 && ((unsigned char)data[off - 1] & 0xC0) == 0x80)
				off--;
			if (off > 0 && (unsigned char)data[off - 1] >= 0xC0)
				off--;
		}
		offset_mark(data, len, off, &line, &col);
		if (strstr(problem, "UTF-8") && off < len)
			ysink_add(b->s, line, col, "invalid YAML: %s (at byte 0x%02X); files must be UTF-8", problem,
				  (unsigned char)data[off]);
		else if (p->problem_value < 0)
			ysink_add(b->s, line, col, "invalid YAML: %s", problem);
		else
			ysink_add(b->s, line, col, "invalid YAML: %s (U+%04X)", problem, (unsigned)p->problem_value);
		return ROTOR_EINVALID;
	}
	line = mark_line(&p->problem_mark);
	col = mark_col(&p->problem_mark);
	if (p->context &&
	    (p->context_mark.line != p->problem_mark.line || p->context_mark.column != p->problem_mark.column))
		snprintf(ctx, sizeof(ctx), " (%s at line %d, column %d)", p->context, mark_line(&p->context_mark),
			 mark_col(&p->context_mark));
	else if (p->context)
		snprintf(ctx, sizeof(ctx), " (%s)", p->context);
	ysink_add(b->s, line, col, "invalid YAML: %s%s", problem, ctx);
	return ROTOR_EINVALID;
}

/*
 * Handle one event.  Returns 0 to go on, 1 when the stream is done,
 * or a negative code for a hard failure.
 */
static int on_event(struct builder *b, const yaml_event_t *ev)
{
	struct ynode *n;
	char q[96];

	switch (ev->type) {
	case YAML_STREAM_START_EVENT:
	case YAML_NO_EVENT:
		return 0;
	case YAML_STREAM_END_EVENT:
		return 1;
	case YAML_DOCUMENT_START_EVENT:
		if (b->docs++ > 0) {
			ysink_add(b->s, mark_line(&ev->start_mark), mark_col(&ev->start_mark),
				  "a second document starts here; a file holds exactly one YAML document");
			return 1;
		}
		if (ev->data.document_start.version_directive ||
		    ev->data.document_start.tag_directives.start != ev->data.document_start.tag_directives.end)
			ysink_add(b->s, mark_line(&ev->start_mark), mark_col(&ev->start_mark),
				  "directives (%%YAML, %%TAG) are not allowed");
		return 0;
	case YAML_DOCUMENT_END_EVENT:
		return 0;
	case YAML_ALIAS_EVENT:
		if (!(n = new_node(b, YNODE_SCALAR, &ev->start_mark)))
			return ROTOR_ENOMEM;
		n->type = YS_NULL;
		n->bad = 1;
		show_token(q, sizeof(q), "*", (const char *)ev->data.alias.anchor);
		ysink_add(b->s, n->line, n->column, "aliases are not allowed (found %s); write the value out in full",
			  q);
		attach(b, n);
		return 0;
	case YAML_SCALAR_EVENT: {
		char *t;
		size_t len = ev->data.scalar.length;

		if (!(n = new_node(b, YNODE_SCALAR, &ev->start_mark)))
			return ROTOR_ENOMEM;
		if (len == SIZE_MAX || !(t = arena_alloc(b->doc, len + 1)))
			return ROTOR_ENOMEM;
		if (len)
			memcpy(t, ev->data.scalar.value, len);
		t[len] = '\0';
		n->text = t;
		n->len = len;
		n->plain = ev->data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
		check_props(b, n, ev->data.scalar.anchor, ev->data.scalar.tag);
		if (n->plain && !ev->data.scalar.tag)
			resolve_plain(b, n);
		attach(b, n);
		return 0;
	}
	case YAML_SEQUENCE_START_EVENT:
	case YAML_MAPPING_START_EVENT: {
		int seq = ev->type == YAML_SEQUENCE_START_EVENT;

		if (b->depth >= SPEC_MAX_DEPTH) {
			ysink_add(b->s, mark_line(&ev->start_mark), mark_col(&ev->start_mark),
				  "nesting deeper than %d levels", SPEC_MAX_DEPTH);
			return ROTOR_ETOOBIG;
		}
		if (!(n = new_node(b, seq ? YNODE_SEQ : YNODE_MAP, &ev->start_mark)))
			return ROTOR_ENOMEM;
		if (seq)
			check_props(b, n, ev->data.sequence_start.anchor, ev->data.sequence_start.tag);
		else
			check_props(b, n, ev->data.mapping_start.anchor, ev->data.mapping_start.tag);
		attach(b, n);
		b->stack[b->depth].node = n;
		b->stack[b->depth].want_value = 0;
		b->depth++;
		return 0;
	}
	case YAML_SEQUENCE_END_EVENT:
	case YAML_MAPPING_END_EVENT:
		if (b->depth == 0)
			return 0;
		n = b->stack[--b->depth].node;
		if (n->kind == YNODE_MAP && check_duplicates(b, n) < 0)
			return ROTOR_ENOMEM;
		return 0;
	}
	return 0;
}

int ydoc_parse(struct ydoc **out, const char *data, size_t len, struct ysink *s)
{
	struct builder b;
	yaml_parser_t p;
	yaml_event_t ev;
	int rc, parser_ok = 0;

	*out = NULL;
	memset(&b, 0, sizeof(b));
	b.s = s;
	if (len > SPEC_MAX_BYTES) {
		ysink_add(s, 0, 0, "file is larger than %zu bytes", (size_t)SPEC_MAX_BYTES);
		return ROTOR_ETOOBIG;
	}
	if (!(b.doc = calloc(1, sizeof(*b.doc))) || !yaml_parser_initialize(&p)) {
		ysink_add(s, 0, 0, "out of memory");
		s->nomem = 1;
		rc = ROTOR_ENOMEM;
		goto out;
	}
	parser_ok = 1;
	/* Only UTF-8: no guessing UTF-16 from a byte order mark. */
	yaml_parser_set_encoding(&p, YAML_UTF8_ENCODING);
	yaml_parser_set_input_string(&p, (const unsigned char *)(data ? data : ""), data ? len : 0);
	for (;;) {
		if (!yaml_parser_parse(&p, &ev)) {
			rc = parser_error(&b, &p, data ? data : "", data ? len : 0);
			goto out;
		}
		rc = on_event(&b, &ev);
		yaml_event_delete(&ev);
		if (rc < 0) {
			if (rc == ROTOR_ENOMEM) {
				ysink_add(s, 0, 0, "out of memory");
				s->nomem = 1;
			}
			goto out;
		}
		if (rc == 1)
			break;
	}
	*out = b.doc;
	b.doc = NULL;
	rc = 0;
out:
	if (parser_ok)
		yaml_parser_delete(&p);
	ydoc_free(b.doc);
	return rc;
}
