/*
 * spec_int.h -- helpers shared by the spec loaders (spec*.c); not part of
 * the module's interface.
 *
 * A loader walks the yamldoc tree with a struct vctx.  Every check
 * reports into the file's ysink and returns, so one pass finds every
 * problem.  Locations in messages are dotted paths ("ssh.port",
 * "servers.pg1.sans[2]") in front of the message; the line and column
 * point at the node.
 *
 * The value getters (vstr, vint, ...) share one convention:
 *   returns 1  the node is present and valid: *out is set;
 *   returns 0  the node is absent (NULL): nothing reported, *out untouched;
 *   returns -1 the node is invalid (reported now, or earlier when bad).
 *
 * Every rule here has its twin in schemas/ (one JSON Schema a file); tests/schema/agree.py
 * checks that both accept and reject the same fixtures.
 */
#ifndef ROTOR_SPEC_INT_H
#define ROTOR_SPEC_INT_H

#include <stddef.h>

#include "reconcile/spec/spec.h"
#include "reconcile/spec/yamldoc.h"

#define WHERE_MAX 192

struct vctx {
	struct ysink s;
	int nomem;
};

/* Start checking one file (d may be NULL); finish: sort, and the result code. */
void vctx_init(struct vctx *v, struct diags *d, const char *path);
int vctx_finish(struct vctx *v, int parse_rc);

/* Location builders: dst gets parent + ".key" / parent + "[i]". */
void where_key(char *dst, const char *parent, const char *key);
void where_ykey(char *dst, const char *parent, const struct ynode *key);
void where_index(char *dst, const char *parent, size_t i);

/* Report at node n (line 0 when n is NULL), "where: " in front. */
void vreport(struct vctx *v, const struct ynode *n, const char *where, const char *fmt, ...)
	ROTOR_PRINTF(4, 5);
/* "expected <expected>, found <what n is>" with a quoting hint. */
void vtype(struct vctx *v, const struct ynode *n, const char *where, const char *expected);

/* The keys a mapping may hold. */
struct vkey {
	const char *name;
	int required;
};

/*
 * n must be a mapping (NULL, an empty document, counts as an empty one).
 * Reports unknown and missing keys; vals[i] is the value of keys[i] or
 * NULL.  Returns 0 for a mapping, -1 when n is not one (or bad).
 */
int vmap(struct vctx *v, const struct ynode *n, const char *where, const struct vkey *keys, size_t nkeys,
	 const struct ynode **vals);
/* n must be a list: 1, or -1 when it is not (or bad), 0 when NULL. */
int vseq(struct vctx *v, const struct ynode *n, const char *where);

/*
 * A string of min..max characters (code points) with no control
 * characters (C0, DEL, C1).
 */
int vstr(struct vctx *v, const struct ynode *n, const char *where, size_t min, size_t max, const char **out);
int vint(struct vctx *v, const struct ynode *n, const char *where, int lo, int hi, int *out);
int vbool(struct vctx *v, const struct ynode *n, const char *where, int *out);
/* A string that is one of names[0..count): *idx is its index. */
int venum(struct vctx *v, const struct ynode *n, const char *where, const char *const *names, size_t count,
	  int *idx);

/*
 * The frame of every spec_load_*(): parse, decode (dec returns a new
 * struct, or NULL when out of memory after setting v->nomem), and hand
 * the struct out only when no problem was found; fr frees it otherwise.
 */
typedef void *(*spec_decode_fn)(struct vctx *v, const struct ynode *root);
typedef void (*spec_free_fn)(void *p);
int spec_load_any(void **out, spec_decode_fn dec, spec_free_fn fr, const char *path, const char *data,
		  size_t len, struct diags *d);

/*
 * Repeats among nodes[0..n) (NULL entries are skipped), in O(n log n):
 * first[i] is the index of the earliest node with the same text, or
 * NO_REPEAT.  Returns 0, or ROTOR_ENOMEM (v->nomem set).
 */
#define NO_REPEAT ((size_t)-1)
int find_repeats(struct vctx *v, const struct ynode *const *nodes, size_t n, size_t *first);

/* Copy s into *dst (v->nomem on failure). */
void vdup(struct vctx *v, char **dst, const char *s);

/* ---- format rules (each returns NULL when s is fine, else why not) ---- */

/* Characters (code points) in valid UTF-8 s. */
size_t utf8_chars(const char *s, size_t n);
/* Whether s holds a control character, or is not valid UTF-8. */
int has_control(const char *s, size_t n);

/* RFC 1123 host name; wildcard: a leading "*." is allowed. */
const char *chk_dns(const char *s, size_t n, int wildcard);
int chk_ipv4(const char *s, size_t n);
int chk_ipv6(const char *s, size_t n);
/* DNS name (wildcard as given), IPv4 or IPv6; NULL when fine. */
const char *chk_host(const char *s, size_t n, int wildcard, char *why, size_t cap);
/* Absolute, normalised path on a managed host. */
const char *chk_abs_path(const char *s, size_t n);
/* Local file path: absolute or "~/"... */
const char *chk_local_path(const char *s, size_t n);
const char *chk_git_name(const char *s, size_t n);
int chk_posix_name(const char *s, size_t n);
int chk_leaf_name(const char *s, size_t n);
int chk_hex(const char *s, size_t n, int upper);

/* A chain duration: 1..36525 days written Nd, Nw or Ny. */
#define SPEC_MAX_DAYS 36525
int parse_days(const char *s, size_t n, int *days, const char **why);

/* The rule texts used in messages. */
#define LEAF_NAME_RULE "letters, digits, '_', '.' and '-', at most 63, not starting with '.' or '-'"
#define POSIX_NAME_RULE "letters, digits, '_', '.' and '-', at most 32, starting with a letter or '_'"

#endif
