/*
 * diag.h -- diagnostics: every problem found in an input file, with its
 * path, line and column, and the caps every input file shares.
 *
 * The YAML reader (yamldoc.h) and the loaders (spec.h) report into a
 * struct diags; commands print them as "path:line:column: message".
 * diags_add() never fails loudly: a diagnostic that cannot be stored
 * (out of memory) is dropped, and the loader's return code says why.
 *
 * Ownership: a struct diags starts zeroed ({NULL, 0, 0}) and is freed
 * with diags_release(); strings in it are owned copies.
 */
#ifndef ROTOR_DIAG_H
#define ROTOR_DIAG_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

/* No input file is read past 1 MiB or nested deeper than 64 levels. */
#define SPEC_MAX_BYTES ((size_t)1 << 20)
#define SPEC_MAX_DEPTH 64

/* One problem in one file. */
struct diag {
	char *path;
	int line;   /* 1-based; 0 when the problem is about the whole file */
	int column; /* 1-based */
	char *msg;
};

struct diags {
	struct diag *v;
	size_t n, cap;
};

void diags_add(struct diags *d, const char *path, int line, int column,
	       const char *fmt, ...) ROTOR_PRINTF(5, 6);
/*
 * Print every diagnostic as "path:line:column: message\n" to buf, or as
 * "path: message\n" when line is 0 (a problem with the whole file).
 */
int diags_format(const struct diags *d, struct buf *out);
void diags_release(struct diags *d);

#endif
