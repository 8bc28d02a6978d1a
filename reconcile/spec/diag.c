/* diag.c -- diagnostics of input files (see diag.h). */
#include "reconcile/spec/diag.h"

#include <stdarg.h>
#include <stdint.h>
#include <stdlib.h>


void diags_add(struct diags *d, const char *path, int line, int column, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	struct diag *nv;
	char *p, *m;
	va_list ap;
	int rc;

	if (!d)
		return;
	if (d->n == d->cap) {
		size_t ncap = d->cap ? d->cap * 2 : 8;

		if (ncap > SIZE_MAX / sizeof(*d->v))
			return;
		nv = realloc(d->v, ncap * sizeof(*d->v));
		if (!nv)
			return;
		d->v = nv;
		d->cap = ncap;
	}
	b.max = 16 << 10;
	va_start(ap, fmt);
	rc = buf_vprintf(&b, fmt, ap);
	va_end(ap);
	if (rc < 0) {
		buf_release(&b);
		return;
	}
	m = buf_detach(&b);
	p = xstrdup(path ? path : "", NULL);
	if (!m || !p) {
		free(m);
		free(p);
		return;
	}
	d->v[d->n].path = p;
	d->v[d->n].line = line < 0 ? 0 : line;
	d->v[d->n].column = column < 0 ? 0 : column;
	d->v[d->n].msg = m;
	d->n++;
}

int diags_format(const struct diags *d, struct buf *out)
{
	size_t i;
	int rc;

	for (i = 0; d && i < d->n; i++) {
		const struct diag *g = &d->v[i];

		if (g->line > 0)
			rc = buf_printf(out, "%s:%d:%d: %s\n", g->path, g->line, g->column, g->msg);
		else
			rc = buf_printf(out, "%s: %s\n", g->path, g->msg);
		if (rc < 0)
			return rc;
	}
	return 0;
}

void diags_release(struct diags *d)
{
	size_t i;

	if (!d)
		return;
	for (i = 0; i < d->n; i++) {
		free(d->v[i].path);
		free(d->v[i].msg);
	}
	free(d->v);
	d->v = NULL;
	d->n = d->cap = 0;
}

