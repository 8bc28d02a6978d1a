/*
 * yamldoc.h -- a safe YAML loader: bytes -> a small node tree with marks.
 *
 * Built on libyaml's event API, for the state repository's files only.
 * The loader accepts exactly one document of plain data and refuses, with
 * a diagnostic at the offending line and column:
 *   - input over SPEC_MAX_BYTES (reported at line 0: the whole file);
 *   - nesting of mappings and lists deeper than SPEC_MAX_DEPTH;
 *   - aliases, anchors and explicit tags (including "!" and "!!str");
 *   - %YAML and %TAG directives, and more than one document;
 *   - mapping keys that are not strings (a list or mapping as a key, or a
 *     plain key that YAML 1.1 reads as a number, boolean, null or date),
 *     and the YAML 1.1 merge key "<<";
 *   - duplicate keys in one mapping (the second one is reported, with the
 *     line of the first);
 *   - plain scalars PyYAML cannot construct ("0b_", "=");
 *   - everything libyaml refuses: syntax errors, invalid UTF-8, control
 *     characters (the message carries libyaml's own problem text).
 *
 * Scalars are typed as PyYAML's SafeLoader types them (YAML 1.1 implicit
 * resolvers): see enum yscalar.  Quoted and block scalars are strings.
 *
 * Problems come in two weights.  Hard ones (size, depth, a syntax error,
 * out of memory) leave no tree.  Soft ones (an alias, a tag, a duplicate
 * key, ...) are reported and the offending node is marked `bad`; the tree
 * is still returned so that validation of everything else can go on and
 * report every problem at once.  Validators must skip bad nodes silently
 * (they are already reported) and, for a bad key, its whole pair.
 *
 * Ownership: ydoc_parse() returns a tree the caller frees with
 * ydoc_free().  Nodes and their text live in the tree's arena and stay
 * valid until then.  Freeing is iterative (no recursion).
 */
#ifndef ROTOR_YAMLDOC_H
#define ROTOR_YAMLDOC_H

#include <stddef.h>

#include "reconcile/spec/diag.h"

/* ---- diagnostics for one file ---- */

/* At most this many diagnostics are kept for one file; the rest are counted. */
#define YSINK_MAX 100

/*
 * Collects the diagnostics of one file into a struct diags: caps their
 * number, notices allocation failures, and at the end sorts them by
 * position so the first one printed is the first in the file.
 */
struct ysink {
	struct diags *d;
	const char *path;
	size_t first;     /* d->n when the file started */
	size_t dropped;   /* problems over YSINK_MAX */
	int nomem;        /* an allocation failed somewhere */
};

void ysink_init(struct ysink *s, struct diags *d, const char *path);
void ysink_add(struct ysink *s, int line, int column, const char *fmt, ...) ROTOR_PRINTF(4, 5);
/* Whether further problems would only be counted (saves formatting them). */
int ysink_full(const struct ysink *s);
/* Number of problems reported for this file so far (kept or dropped). */
size_t ysink_count(const struct ysink *s);
/* Sort this file's diagnostics by line and column; note dropped ones. */
void ysink_finish(struct ysink *s);

/* ---- the tree ---- */

enum ynode_kind { YNODE_SCALAR, YNODE_MAP, YNODE_SEQ };

/* What a scalar is, as PyYAML's SafeLoader resolves it. */
enum yscalar {
	YS_STR,       /* quoted, block, or plain text that is nothing below */
	YS_NULL,      /* plain "", "~", null, Null, NULL */
	YS_BOOL,      /* plain yes/no/true/false/on/off in three casings */
	YS_INT,       /* plain 0b101, 0755, 42, 0x1F, 1_000, 1:30 (sexagesimal), with sign */
	YS_FLOAT,     /* plain 1.5, 1., .5, 1.0e+3, 1:30.5, .inf, .nan */
	YS_TIMESTAMP  /* plain 2026-01-31 or 2026-01-31T10:00:00Z and variants */
};

struct ynode {
	enum ynode_kind kind;
	enum yscalar type;      /* scalars */
	int line, column;       /* 1-based, where the node starts */
	unsigned char plain;    /* scalar written plain (no quotes, not a block scalar) */
	unsigned char bad;      /* already reported: skip it (and, for a key, its pair) */
	unsigned char int_fits; /* YS_INT whose value fits in an int */
	unsigned char octal;    /* YS_INT written in octal: 0[0-7_]+ (as a file mode should be) */
	int ival;               /* YS_INT value when int_fits; YS_BOOL value */
	const char *text;       /* scalar text, NUL-terminated; may hold NULs ("\0") */
	size_t len;             /* bytes in text */
	struct ynode *first;    /* MAP: first key; SEQ: first item */
	size_t count;           /* number of keys or items */
	struct ynode *next;     /* next key of the same map / next item */
	struct ynode *value;    /* a map key's value (never NULL once parsed) */
	struct ynode *last_;    /* private: tail of the child list */
};

struct ydoc;

/*
 * Parse data (len bytes, need not be NUL-terminated) into *out.
 *
 * Returns 0 with a tree when the input could be read as (at most) one
 * document; soft problems may have been reported to s (check
 * ysink_count).  Returns ROTOR_ETOOBIG (size or nesting cap),
 * ROTOR_EINVALID (libyaml refused the input) or ROTOR_ENOMEM with
 * *out NULL and the problem reported.
 */
int ydoc_parse(struct ydoc **out, const char *data, size_t len, struct ysink *s);

/* The document's root node, or NULL for an empty stream (no document). */
const struct ynode *ydoc_root(const struct ydoc *doc);

void ydoc_free(struct ydoc *doc);

/* "a mapping", "a list", "a string", "an integer", "null", ... */
const char *ynode_what(const struct ynode *n);

/*
 * Write text as a double-quoted, escaped, bounded form for messages:
 * control characters, quotes and backslashes are escaped, invalid UTF-8
 * shown as \xNN, and anything past max characters replaced by "...".
 * dst is always NUL-terminated (cap >= 8).
 */
void yquote(char *dst, size_t cap, const char *text, size_t len, size_t max);

#endif
