/*
 * spec_util.c -- the checking helpers shared by the spec loaders (see
 * spec_int.h): walking mappings and typed values with precise messages,
 * and the format rules for names, addresses, paths and durations.
 */
#include "reconcile/spec/spec_int.h"

#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- context ---- */

void vctx_init(struct vctx *v, struct diags *d, const char *path)
{
	ysink_init(&v->s, d, path);
	v->nomem = 0;
}

int vctx_finish(struct vctx *v, int parse_rc)
{
	int rc;

	if (v->nomem || v->s.nomem || parse_rc == ROTOR_ENOMEM)
		rc = ROTOR_ENOMEM;
	else if (parse_rc == ROTOR_ETOOBIG)
		rc = ROTOR_ETOOBIG;
	else if (parse_rc < 0 || ysink_count(&v->s) > 0)
		rc = ROTOR_EINVALID;
	else
		rc = 0;
	ysink_finish(&v->s);
	return rc;
}

static int simple_key(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 64)
		return 0;
	for (i = 0; i < n; i++) {
		char c = s[i];

		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
		      c == '-'))
			return 0;
	}
	return 1;
}

void where_key(char *dst, const char *parent, const char *key)
{
	snprintf(dst, WHERE_MAX, "%s%s%s", parent, parent[0] ? "." : "", key);
}

void where_ykey(char *dst, const char *parent, const struct ynode *key)
{
	char q[96];

	if (simple_key(key->text, key->len)) {
		snprintf(dst, WHERE_MAX, "%s%s%s", parent, parent[0] ? "." : "", key->text);
	} else {
		yquote(q, sizeof(q), key->text, key->len, 40);
		snprintf(dst, WHERE_MAX, "%s[%s]", parent, q);
	}
}

void where_index(char *dst, const char *parent, size_t i)
{
	snprintf(dst, WHERE_MAX, "%s[%zu]", parent, i);
}

void vreport(struct vctx *v, const struct ynode *n, const char *where, const char *fmt, ...)
{
	char msg[768];
	va_list ap;

	if (ysink_full(&v->s)) {
		v->s.dropped++;
		return;
	}
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	ysink_add(&v->s, n ? n->line : 0, n ? n->column : 0, "%s%s%s", where ? where : "",
		  where && where[0] ? ": " : "", msg);
}

void vtype(struct vctx *v, const struct ynode *n, const char *where, const char *expected)
{
	int want_string = strstr(expected, "string") != NULL;
	char q[96], found[160];

	if (n->kind != YNODE_SCALAR) {
		snprintf(found, sizeof(found), "%s", ynode_what(n));
	} else if (n->type == YS_STR) {
		yquote(q, sizeof(q), n->text, n->len, 40);
		snprintf(found, sizeof(found), "a string (%s)", q);
	} else if (n->type == YS_NULL && n->len == 0) {
		snprintf(found, sizeof(found), "nothing (an empty value)");
	} else if (want_string) {
		/* Plain non-strings hold only safe ASCII: show them as written. */
		snprintf(found, sizeof(found), "%s (quote it: \"%.*s\")", ynode_what(n), (int)(n->len > 40 ? 40 : n->len),
			 n->text);
	} else if (n->type == YS_NULL) {
		snprintf(found, sizeof(found), "null");
	} else {
		snprintf(found, sizeof(found), "%s (%.*s)", ynode_what(n), (int)(n->len > 40 ? 40 : n->len), n->text);
	}
	vreport(v, n, where, "expected %s, found %s", expected, found);
}

int vmap(struct vctx *v, const struct ynode *n, const char *where, const struct vkey *keys, size_t nkeys,
	 const struct ynode **vals)
{
	const struct ynode *k;
	size_t i;

	for (i = 0; i < nkeys; i++)
		vals[i] = NULL;
	if (n && n->bad)
		return -1;
	if (n && n->kind != YNODE_MAP) {
		vtype(v, n, where, "a mapping");
		return -1;
	}
	for (k = n ? n->first : NULL; k; k = k->next) {
		if (k->bad)
			continue;
		for (i = 0; i < nkeys; i++)
			if (strlen(keys[i].name) == k->len && memcmp(keys[i].name, k->text, k->len) == 0)
				break;
		if (i < nkeys) {
			vals[i] = k->value;
		} else {
			char q[96], list[512];
			size_t o = 0, j;

			list[0] = '\0';
			for (j = 0; j < nkeys && o < sizeof(list); j++)
				o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", j ? ", " : "", keys[j].name);
			yquote(q, sizeof(q), k->text, k->len, 40);
			vreport(v, k, where, "unknown key %s (expected one of: %s)", q, list);
		}
	}
	for (i = 0; i < nkeys; i++)
		if (keys[i].required && !vals[i])
			vreport(v, n, where, "missing required key \"%s\"%s", keys[i].name, n ? "" : " (the file is empty)");
	return 0;
}

int vseq(struct vctx *v, const struct ynode *n, const char *where)
{
	if (!n)
		return 0;
	if (n->bad)
		return -1;
	if (n->kind != YNODE_SEQ) {
		vtype(v, n, where, "a list");
		return -1;
	}
	return 1;
}

size_t utf8_chars(const char *s, size_t n)
{
	size_t i, c = 0;

	for (i = 0; i < n; i++)
		if (((unsigned char)s[i] & 0xC0) != 0x80)
			c++;
	return c;
}

int has_control(const char *s, size_t n)
{
	const unsigned char *p = (const unsigned char *)s;
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] < 0x20 || p[i] == 0x7F)
			return 1;
		/* C1 controls U+0080..U+009F are C2 80..C2 9F in UTF-8. */
		if (p[i] == 0xC2 && i + 1 < n && p[i + 1] >= 0x80 && p[i + 1] <= 0x9F)
			return 1;
	}
	return 0;
}

int vstr(struct vctx *v, const struct ynode *n, const char *where, size_t min, size_t max, const char **out)
{
	char q[96];
	size_t chars;

	if (!n)
		return 0;
	if (n->bad)
		return -1;
	if (n->kind != YNODE_SCALAR || n->type != YS_STR) {
		vtype(v, n, where, "a string");
		return -1;
	}
	if (has_control(n->text, n->len)) {
		yquote(q, sizeof(q), n->text, n->len, 40);
		vreport(v, n, where, "%s contains a control character", q);
		return -1;
	}
	chars = utf8_chars(n->text, n->len);
	if (chars < min) {
		yquote(q, sizeof(q), n->text, n->len, 40);
		if (min == 1)
			vreport(v, n, where, "must not be empty");
		else
			vreport(v, n, where, "%s is shorter than %zu characters", q, min);
		return -1;
	}
	if (chars > max) {
		yquote(q, sizeof(q), n->text, n->len, 40);
		vreport(v, n, where, "%s is longer than %zu characters", q, max);
		return -1;
	}
	*out = n->text;
	return 1;
}

int vint(struct vctx *v, const struct ynode *n, const char *where, int lo, int hi, int *out)
{
	if (!n)
		return 0;
	if (n->bad)
		return -1;
	if (n->kind != YNODE_SCALAR || n->type != YS_INT) {
		vtype(v, n, where, "an integer");
		return -1;
	}
	if (!n->int_fits || n->ival < lo || n->ival > hi) {
		if (lo == hi)
			vreport(v, n, where, "expected %d, found %.*s", lo, (int)(n->len > 40 ? 40 : n->len), n->text);
		else if (n->int_fits && memchr(n->text, ':', n->len))
			vreport(v, n, where, "%.*s is out of range (%d to %d): YAML 1.1 reads it as the base-60 number %d",
				(int)(n->len > 40 ? 40 : n->len), n->text, lo, hi, n->ival);
		else
			vreport(v, n, where, "%.*s is out of range (%d to %d)", (int)(n->len > 40 ? 40 : n->len),
				n->text, lo, hi);
		return -1;
	}
	*out = n->ival;
	return 1;
}

int vbool(struct vctx *v, const struct ynode *n, const char *where, int *out)
{
	if (!n)
		return 0;
	if (n->bad)
		return -1;
	if (n->kind != YNODE_SCALAR || n->type != YS_BOOL) {
		vtype(v, n, where, "a boolean (true or false)");
		return -1;
	}
	*out = n->ival;
	return 1;
}

int venum(struct vctx *v, const struct ynode *n, const char *where, const char *const *names, size_t count,
	  int *idx)
{
	char list[256], q[96];
	size_t i, o = 0;

	list[0] = '\0';
	for (i = 0; i < count && o < sizeof(list); i++)
		o += (size_t)snprintf(list + o, sizeof(list) - o, "%s%s", i ? ", " : "", names[i]);
	if (!n)
		return 0;
	if (n->bad)
		return -1;
	if (n->kind != YNODE_SCALAR || n->type != YS_STR) {
		/* "expected stable, trust, servers or clients": no quoting hint, as
		 * the quoted value would still not be one of them. */
		char exp[300];
		size_t o2 = 0;

		exp[0] = '\0';
		for (i = 0; i < count && o2 < sizeof(exp); i++)
			o2 += (size_t)snprintf(exp + o2, sizeof(exp) - o2, "%s%s", i == 0 ? "" : i + 1 == count ? " or " : ", ",
					      names[i]);
		vtype(v, n, where, exp);
		return -1;
	}
	for (i = 0; i < count; i++) {
		if (strlen(names[i]) == n->len && memcmp(names[i], n->text, n->len) == 0) {
			*idx = (int)i;
			return 1;
		}
	}
	yquote(q, sizeof(q), n->text, n->len, 40);
	vreport(v, n, where, "invalid value %s (expected one of: %s)", q, list);
	return -1;
}

struct rep {
	const struct ynode *n;
	size_t i;
};

static int rep_cmp(const void *pa, const void *pb)
{
	const struct rep *a = pa, *b = pb;
	size_t n = a->n->len < b->n->len ? a->n->len : b->n->len;
	int c = memcmp(a->n->text, b->n->text, n);

	if (c)
		return c;
	if (a->n->len != b->n->len)
		return a->n->len < b->n->len ? -1 : 1;
	return a->i < b->i ? -1 : a->i > b->i;
}

int find_repeats(struct vctx *v, const struct ynode *const *nodes, size_t n, size_t *first)
{
	struct rep *r;
	size_t i, m = 0, head = 0;

	for (i = 0; i < n; i++)
		first[i] = NO_REPEAT;
	if (n < 2)
		return 0;
	if (!(r = malloc(n * sizeof(*r)))) {
		v->nomem = 1;
		return ROTOR_ENOMEM;
	}
	for (i = 0; i < n; i++) {
		if (nodes[i]) {
			r[m].n = nodes[i];
			r[m].i = i;
			m++;
		}
	}
	qsort(r, m, sizeof(*r), rep_cmp);
	for (i = 1; i < m; i++) {
		if (r[i].n->len == r[head].n->len && memcmp(r[i].n->text, r[head].n->text, r[i].n->len) == 0)
			first[r[i].i] = r[head].i;
		else
			head = i;
	}
	free(r);
	return 0;
}

void vdup(struct vctx *v, char **dst, const char *s)
{
	if (!s)
		return;
	free(*dst);
	*dst = xstrdup(s, NULL);
	if (!*dst)
		v->nomem = 1;
}

/* ---- format rules ---- */

static int is_alnum(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

static int is_digit(char c)
{
	return c >= '0' && c <= '9';
}

const char *chk_dns(const char *s, size_t n, int wildcard)
{
	size_t i = 0, start, labels = 0;
	int wild = 0, numeric;

	if (n == 0)
		return "it is empty";
	if (n > 253)
		return "it is longer than 253 characters";
	if (wildcard && n >= 2 && s[0] == '*' && s[1] == '.') {
		i = 2;
		wild = 1;
	}
	if (memchr(s + i, '*', n - i))
		return wildcard ? "'*' may only be the whole first label, as in *.example.net" : "'*' is not allowed";
	for (;;) {
		start = i;
		numeric = 1;
		for (; i < n && s[i] != '.'; i++) {
			if (!is_alnum(s[i]) && s[i] != '-')
				return "labels may only hold letters, digits and '-'";
			if (!is_digit(s[i]))
				numeric = 0;
		}
		if (i == start)
			return "it has an empty label (a leading, trailing or double dot)";
		if (i - start > 63)
			return "it has a label longer than 63 characters";
		if (s[start] == '-' || s[i - 1] == '-')
			return "labels must not start or end with '-'";
		labels++;
		if (i == n)
			break;
		i++;
		if (i == n)
			return "it has an empty label (a leading, trailing or double dot)";
	}
	if (numeric)
		return "the last label must not be all digits";
	if (wild && labels < 2)
		return "a wildcard must cover at least two labels, as in *.example.net";
	return NULL;
}

int chk_ipv4(const char *s, size_t n)
{
	size_t i = 0, k;
	int octet, v;

	for (octet = 0; octet < 4; octet++) {
		if (octet > 0) {
			if (i >= n || s[i] != '.')
				return 0;
			i++;
		}
		for (k = 0, v = 0; i + k < n && is_digit(s[i + k]) && k < 4; k++)
			v = v * 10 + (s[i + k] - '0');
		if (k == 0 || k > 3 || v > 255 || (k > 1 && s[i] == '0'))
			return 0;
		i += k;
	}
	return i == n;
}

static int hextet_ok(const char *p, size_t n)
{
	size_t i;

	if (n == 0 || n > 4)
		return 0;
	for (i = 0; i < n; i++)
		if (!is_digit(p[i]) && !((p[i] >= 'a' && p[i] <= 'f') || (p[i] >= 'A' && p[i] <= 'F')))
			return 0;
	return 1;
}

/*
 * RFC 4291 text form, decided the way Python's ipaddress.IPv6Address
 * decides it (which the JSON Schema side uses): up to 8 hextets of 1-4
 * hex digits, one "::" standing for at least one zero hextet, an IPv4
 * dotted quad as the last two hextets; no zone ("%eth0"), no prefix.
 */
int chk_ipv6(const char *s, size_t n)
{
	struct {
		const char *p;
		size_t n;
	} part[11];
	size_t np = 0, start = 0, i, hi, lo;
	long skip = -1;

	if (n == 0 || memchr(s, '%', n) || memchr(s, '/', n))
		return 0;
	for (i = 0; i <= n; i++) {
		if (i == n || s[i] == ':') {
			if (np == 10)
				return 0;
			part[np].p = s + start;
			part[np].n = i - start;
			np++;
			start = i + 1;
		}
	}
	if (np < 3)
		return 0;
	if (memchr(part[np - 1].p, '.', part[np - 1].n)) {
		if (!chk_ipv4(part[np - 1].p, part[np - 1].n))
			return 0;
		/* The quad stands for two hextets. */
		part[np - 1].p = "0";
		part[np - 1].n = 1;
		part[np].p = "0";
		part[np].n = 1;
		np++;
	}
	if (np > 9)
		return 0;
	for (i = 1; i + 1 < np; i++) {
		if (part[i].n == 0) {
			if (skip >= 0)
				return 0;
			skip = (long)i;
		}
	}
	if (skip >= 0) {
		hi = (size_t)skip;
		lo = np - (size_t)skip - 1;
		if (part[0].n == 0 && --hi != 0)
			return 0;
		if (part[np - 1].n == 0 && --lo != 0)
			return 0;
		if (hi + lo >= 8)
			return 0;
		for (i = 0; i < hi; i++)
			if (!hextet_ok(part[i].p, part[i].n))
				return 0;
		for (i = np - lo; i < np; i++)
			if (!hextet_ok(part[i].p, part[i].n))
				return 0;
		return 1;
	}
	if (np != 8)
		return 0;
	for (i = 0; i < np; i++)
		if (!hextet_ok(part[i].p, part[i].n))
			return 0;
	return 1;
}

const char *chk_host(const char *s, size_t n, int wildcard, char *why, size_t cap)
{
	const char *r;
	size_t i;
	int dotted = n > 0, colon = memchr(s, ':', n) != NULL;

	for (i = 0; i < n && dotted; i++)
		dotted = is_digit(s[i]) || s[i] == '.';
	/* Only what could be meant as IPv6 gets the IPv6 verdict. */
	for (i = 0; i < n && colon; i++)
		colon = is_alnum(s[i]) || s[i] == ':' || s[i] == '.' || s[i] == '%';
	if (colon) {
		if (chk_ipv6(s, n))
			return NULL;
		snprintf(why, cap, "not a valid IPv6 address");
		return why;
	}
	if (dotted) {
		if (chk_ipv4(s, n))
			return NULL;
		snprintf(why, cap, "not a valid IPv4 address (four numbers 0 to 255 without leading zeros)");
		return why;
	}
	if (!(r = chk_dns(s, n, wildcard)))
		return NULL;
	snprintf(why, cap, "not a valid DNS name: %s", r);
	return why;
}

const char *chk_abs_path(const char *s, size_t n)
{
	size_t i, start;

	if (n == 0 || s[0] != '/')
		return "must be an absolute path (starting with /)";
	if (n == 1)
		return "must name something below /";
	if (s[n - 1] == '/')
		return "must not end with /";
	for (i = 1, start = 1; i <= n; i++) {
		if (i < n && s[i] != '/')
			continue;
		if (i == start)
			return "must not contain an empty component (//)";
		if ((i - start == 1 && s[start] == '.') || (i - start == 2 && s[start] == '.' && s[start + 1] == '.'))
			return "must not contain \".\" or \"..\" components";
		start = i + 1;
	}
	return NULL;
}

const char *chk_local_path(const char *s, size_t n)
{
	if ((n >= 1 && s[0] == '/') || (n >= 2 && s[0] == '~' && s[1] == '/'))
		return NULL;
	return "must be an absolute path or start with ~/";
}

static int has_sub(const char *s, size_t n, const char *w)
{
	size_t k = strlen(w), i;

	for (i = 0; i + k <= n; i++)
		if (memcmp(s + i, w, k) == 0)
			return 1;
	return 0;
}

static int ends_with(const char *s, size_t n, const char *w)
{
	size_t k = strlen(w);

	return n >= k && memcmp(s + n - k, w, k) == 0;
}

/* git check-ref-format rules, plus no leading '-'. */
const char *chk_git_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0)
		return "must not be empty";
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] <= ' ' || strchr("~^:?*[\\", s[i]) || s[i] == 0x7F)
			return "must not hold spaces or any of ~ ^ : ? * [ \\";
	if (s[0] == '-' || s[0] == '/' || s[0] == '.')
		return "must not start with '-', '/' or '.'";
	if (s[n - 1] == '/' || s[n - 1] == '.' || ends_with(s, n, ".lock"))
		return "must not end with '/', '.' or \".lock\"";
	if (has_sub(s, n, "..") || has_sub(s, n, "//") || has_sub(s, n, "@{") || has_sub(s, n, "/.") ||
	    has_sub(s, n, ".lock/"))
		return "must not contain \"..\", \"//\", \"@{\", \"/.\" or \".lock/\"";
	if (n == 1 && s[0] == '@')
		return "must not be \"@\"";
	return NULL;
}

int chk_posix_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 32 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
		return 0;
	for (i = 1; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return 0;
	return 1;
}

int chk_leaf_name(const char *s, size_t n)
{
	size_t i;

	if (n == 0 || n > 63 || !(is_alnum(s[0]) || s[0] == '_'))
		return 0;
	for (i = 1; i < n; i++)
		if (!is_alnum(s[i]) && s[i] != '_' && s[i] != '.' && s[i] != '-')
			return 0;
	return 1;
}

int chk_hex(const char *s, size_t n, int upper)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (!is_digit(s[i]) && !(upper ? (s[i] >= 'A' && s[i] <= 'F') : (s[i] >= 'a' && s[i] <= 'f')))
			return 0;
	return 1;
}

int parse_days(const char *s, size_t n, int *days, const char **why)
{
	long v = 0;
	size_t i;
	int mult;

	*why = NULL;
	if (n >= 2 && s[0] == '0' && strchr("dwy", s[n - 1]) && strspn(s, "0123456789") == n - 1) {
		*why = strspn(s, "0") == n - 1 ? "zero" : "leading zero";
		return -1;
	}
	if (n < 2 || n > 6 || s[0] < '1' || s[0] > '9') {
		*why = "format";
		return -1;
	}
	for (i = 0; i + 1 < n; i++) {
		if (!is_digit(s[i])) {
			*why = "format";
			return -1;
		}
		v = v * 10 + (s[i] - '0');
	}
	switch (s[n - 1]) {
	case 'd':
		mult = 1;
		break;
	case 'w':
		mult = 7;
		break;
	case 'y':
		mult = 365;
		break;
	default:
		*why = "format";
		return -1;
	}
	if (v * mult > SPEC_MAX_DAYS) {
		*why = "range";
		return -1;
	}
	*days = (int)(v * mult);
	return 0;
}
