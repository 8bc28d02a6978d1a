/*
 * progress.c -- the one progress line of multi-host work (see cmd.h):
 * on stderr only when it is a terminal, redrawn in place with \r and
 * erased (\r, ESC [K) when the work ends or another line is printed.
 * The failure count is red unless NO_COLOR is set (https://no-color.org)
 * or TERM is dumb.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "common/clock.h"

void progress_init(struct progress *p, const char *what, int quiet)
{
	const char *nc = getenv("NO_COLOR"), *term = getenv("TERM");

	memset(p, 0, sizeof(*p));
	p->what = what;
	p->on = !quiet && isatty(2);
	p->color = p->on && !(nc && nc[0]) && !(term && strcmp(term, "dumb") == 0);
	p->t0 = clock_mono_ms();
}

void progress_show(struct progress *p, size_t done, size_t failed, size_t total)
{
	double secs;

	if (!p->on)
		return;
	secs = (double)(clock_mono_ms() - p->t0) / 1e3;
	fprintf(stderr, "\r\033[K%s: %zu/%zu hosts", p->what, done, total);
	if (failed)
		fprintf(stderr, ", %s%zu failed%s", p->color ? "\033[31m" : "", failed, p->color ? "\033[0m" : "");
	fprintf(stderr, ", %.1f s", secs);
	p->drawn = 1;
	if (done >= total)
		progress_clear(p);
	fflush(stderr);
}

void progress_clear(struct progress *p)
{
	if (!p->on || !p->drawn)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	p->drawn = 0;
}

void progress_hosts(void *payload, size_t done, size_t failed, size_t total)
{
	progress_show(payload, done, failed, total);
}
