/*
 * cmd.h -- the command line: one dispatch table (main.c), one file per
 * subcommand, and the few helpers they share.
 *
 * Ownership: main() builds one struct ctx and passes it to the command;
 * the command owns nothing in it but may open ctx->repo through
 * ctx_repo(), which main() frees.  Commands return the process exit
 * status: 0 success, 1 error, 2 "changes pending" where documented.
 * Every error is printed once, as one line "rotor: message" on stderr,
 * by cmd_fail(); validation problems are printed one per line as
 * "path:line:column: message" before it.
 */
#ifndef ROTOR_CMD_H
#define ROTOR_CMD_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/timefmt.h"
#include "gitops/gitrepo.h"
#include "reconcile/spec/spec.h"

struct ctx {
	const char *repo_dir;   /* --repo, or NULL: the repository containing the cwd */
	const char *env;        /* --env, or NULL */
	struct gitrepo *repo;   /* opened by ctx_repo() */
};

struct cmd {
	const char *name;
	int (*run)(struct ctx *ctx, int argc, char **argv);
	const char *summary;
	const char *usage;      /* full help text for `rotor help NAME` */
};

extern const struct cmd rotor_commands[];
const struct cmd *cmd_find(const char *name);

int cmd_init(struct ctx *ctx, int argc, char **argv);
int cmd_validate(struct ctx *ctx, int argc, char **argv);
int cmd_rotate(struct ctx *ctx, int argc, char **argv);
int cmd_rollback(struct ctx *ctx, int argc, char **argv);
int cmd_chain(struct ctx *ctx, int argc, char **argv);
int cmd_observe(struct ctx *ctx, int argc, char **argv);
int cmd_import(struct ctx *ctx, int argc, char **argv);
int cmd_plan(struct ctx *ctx, int argc, char **argv);
int cmd_drift(struct ctx *ctx, int argc, char **argv);
int cmd_apply(struct ctx *ctx, int argc, char **argv);
int cmd_log(struct ctx *ctx, int argc, char **argv);
int cmd_unlock(struct ctx *ctx, int argc, char **argv);
int cmd_handoff(struct ctx *ctx, int argc, char **argv);
int cmd_client(struct ctx *ctx, int argc, char **argv);

/* Print "rotor: <msg>" for e and return 1. */
int cmd_fail(const struct err *e);
/* Print "rotor: <formatted>" and return 1. */
int cmd_failf(const char *fmt, ...) ROTOR_PRINTF(1, 2);

/* Open (once) the repository named by --repo or containing the cwd. */
int ctx_repo(struct ctx *ctx, struct gitrepo **out, struct err *e);
/* The env from --env; an error naming the command when missing or invalid. */
int ctx_env(struct ctx *ctx, const char **out, struct err *e);

/*
 * Options of one subcommand.  Values are borrowed from argv.  A flag
 * (takes_value 0) stores "1".  Unknown options and missing values are
 * errors; "--" ends options.  Positional arguments are collected in
 * order into pos (at most npos_max).
 */
struct opt {
	const char *name;       /* without the leading "--" */
	int takes_value;
	const char **value;
};
int opt_parse(int argc, char **argv, const struct opt *opts,
	      const char **pos, size_t npos_max, size_t *npos, struct err *e);

/* Print every diagnostic of d and a count line (or e alone when d is empty); returns 1. */
int cmd_report(const struct diags *d, const struct err *e);

/*
 * Parse a whole decimal number for option `name` in [min, max] into out;
 * anything else (sign, trailing text, out of range) is an error naming
 * the option and the range.
 */
int opt_int(int *out, const char *value, const char *name, long min, long max, struct err *e);

/*
 * The hosts at once, from -j N or --parallel N (at most one of them), into
 * out (left alone when neither was given); an error names the option the
 * user typed.
 */
int opt_jobs(int *out, const char *j, const char *parallel, struct err *e);

/* One line the git server printed, as "remote: LINE" on the FILE * payload (stdout or stderr). */
void cmd_remote_line(void *payload, const char *line);

/*
 * The desired commit, as plan, drift, apply and handoff read it: REV when
 * ref is given, else git.main fetched from git.remote (no_fetch: as last
 * fetched); the line naming it is printed on out (NULL: not printed; the
 * caller prints want->line), and so are the git server's lines (NULL:
 * stderr).  --ref with --no-fetch is refused.
 */
struct desired;
int cmd_desired(struct desired *want, struct gitrepo *repo, const char *ref, int no_fetch, FILE *out,
		struct err *e);

/* The plan of r in the style of terraform plan (plan.c; apply prints it too). */
struct env_run;
void plan_print(const struct env_run *r, FILE *out);

/*
 * The progress line of multi-host work (progress.c): "WHAT: 12/100 hosts,
 * 1 failed, 3.2 s" on stderr, redrawn on one line, only when stderr is a
 * terminal and quiet is 0 (--json: quiet); the failure count is coloured
 * unless NO_COLOR is set.  progress_clear() erases it, before another line
 * goes to the terminal and when the work ends (progress_show() does that
 * itself when done reaches total).  progress_hosts() is the engine's
 * callback (struct observe_opts.progress) with a struct progress payload.
 */
struct progress {
	const char *what;
	int on, color, drawn;
	int64_t t0;            /* clock_mono_ms() at progress_init() */
};
void progress_init(struct progress *p, const char *what, int quiet);
void progress_show(struct progress *p, size_t done, size_t failed, size_t total);
void progress_clear(struct progress *p);
void progress_hosts(void *payload, size_t done, size_t failed, size_t total);

#endif
