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
#include <stdio.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/timefmt.h"
#include "gitops/gitrepo.h"
#include "reconcile/spec/spec.h"
#include "reconcile/engine/observe.h"
#include "reconcile/engine/plan.h"

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
int cmd_chain(struct ctx *ctx, int argc, char **argv);
int cmd_observe(struct ctx *ctx, int argc, char **argv);
int cmd_import(struct ctx *ctx, int argc, char **argv);
int cmd_plan(struct ctx *ctx, int argc, char **argv);
int cmd_drift(struct ctx *ctx, int argc, char **argv);
int cmd_apply(struct ctx *ctx, int argc, char **argv);
int cmd_log(struct ctx *ctx, int argc, char **argv);

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

/* ---- the state of one env, read from a commit or from the work tree ---- */

struct state_src {
	struct gitrepo *repo;
	const char *commit;     /* commit id (points at commit_id), or NULL: read the work tree */
	char commit_id[41];
	char workdir[4096];     /* with trailing '/' */
};

/* Read a repository-relative file; ROTOR_ENOTFOUND when missing. */
int state_read(struct buf *out, const struct state_src *src, const char *path,
	       size_t max, struct err *e);
/* Names in a repository-relative directory, sorted; NULL-terminated. */
int state_list(char ***names, size_t *n, const struct state_src *src,
	       const char *dir, struct err *e);

struct gen_info {
	int number;
	struct manifest *manifest;  /* NULL when the manifest is missing/invalid */
};

struct state {
	char env[64];
	struct rotor_config *config;
	struct chain_spec *chain;
	struct hosts_spec *hosts;
	struct rotation_spec *rotation;
	struct gen_info *gens;      /* sorted by number */
	size_t ngens;
};

/*
 * Load rotor.yaml and envs/<env>/{chain,hosts,rotation}.yaml and every
 * generation's manifest, validate them and check them against each
 * other.  Every problem goes to d; returns ROTOR_EINVALID when d holds
 * any, other codes (with e set) for failures to read.
 */
int state_load(struct state *st, const struct state_src *src, const char *env,
	       struct diags *d, struct err *e);
void state_release(struct state *st);
/*
 * For commands that commit on a new branch from HEAD: HEAD must be on a
 * branch, rotor.yaml and envs/<env>/ must have no uncommitted changes,
 * and the env must be valid at HEAD (what: the action, for the detached
 * HEAD message).  Prints every problem itself; returns 0, or 1 (the exit
 * status) with st released.
 */
int state_load_head(struct state *st, struct state_src *src, struct gitrepo_head *head,
		    struct ctx *ctx, const char *env, const char *what);

/* Print diagnostics to stderr and return 1. */
int state_report(const struct diags *d);

/* Open the source of state: the commit REV (default HEAD), or the work tree. */
int state_src_open(struct state_src *src, struct ctx *ctx, const char *ref, int worktree, struct err *e);

/*
 * Is secret the repository's?  Its key id must equal rotor.yaml's and
 * the newest generated root key must decrypt with it (ROTOR_ESECRET).
 */
int state_check_secret(const struct state *st, const struct state_src *src, const char *secret,
		       const char *key_path, struct err *e);

/* Expand a leading "~/" with $HOME into out. */
int state_expand_path(char *out, size_t len, const char *p, struct err *e);

/*
 * The certificates of every generation of st, read from src and checked
 * against their manifests; with_keys also reads the encrypted keys
 * (apply only).  Released with material_release().
 */
int state_material(struct material_set *ms, const struct state_src *src, const struct state *st,
		   int with_keys, struct err *e);

/* Paths observe_opts_from_state() expands; they must outlive the options. */
struct observe_paths {
	char identity[4096];
	char known_hosts[4096];
};
/* Observe options from rotor.yaml's ssh settings and parallel (cmd/observe.c). */
int observe_opts_from_state(struct observe_opts *oo, const struct state *st, const struct known_set *known,
			    struct observe_paths *paths, struct err *e);

/* Resolve the secret key file path: $ROTOR_KEY_FILE, else the config's (with ~ expanded). */
int state_key_path(char *out, size_t outlen, const struct rotor_config *c, struct err *e);

/* The observed hosts as schemas/observe.json describes, appended to out. */
int observe_json(struct buf *out, const struct obs_host *h, size_t n, const struct state *st, const char *commit);

/* ---- load, observe, plan: shared by plan, drift and apply (cmd/plan.c) ---- */

struct env_run {
	struct state st;
	struct state_src src;
	struct known_set known;
	struct material_set material;
	struct observe_paths paths;
	struct observe_opts oo;
	struct obs_host *hosts;
	size_t nhosts;
	struct plan plan;
};

/* Load the env at ref (default HEAD) and its material (keys too when with_keys). */
int env_run_load(struct env_run *r, struct ctx *ctx, const char *env, const char *ref, int with_keys,
		 struct diags *d, struct err *e);
/* Observe every host (again) and plan from what it has now. */
int env_run_plan(struct env_run *r, int no_path, int replace_unknown, struct err *e);
void env_run_release(struct env_run *r);
void plan_print(const struct env_run *r, FILE *out);

#endif
