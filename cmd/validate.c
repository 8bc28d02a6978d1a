/*
 * validate.c -- `rotor validate`: every problem in the state files, as
 * path:line:column: message, at a commit (default HEAD) or in the work
 * tree (state_validate() in reconcile/engine/state.h); with --json one
 * document on stdout (schemas/validate.json) instead.
 */
#include <stdio.h>

#include "cmd/cmd.h"
#include "reconcile/engine/report.h"
#include "reconcile/engine/state.h"

/* The document of validate --json on stdout; 0 when valid, 1 when not (or it could not be built). */
static int print_json(const struct state_src *src, const char *env, char **envs, size_t nenvs, const struct diags *d)
{
	struct buf out = BUF_INIT;
	char *one[1];
	int rc;

	one[0] = (char *)env;
	if (validate_json(&out, src->commit, d->n ? NULL : env ? one : envs, d->n ? 0 : env ? 1 : nenvs, d) < 0) {
		buf_release(&out);
		return cmd_failf("the --json document is incomplete (out of memory)");
	}
	fputs(buf_cstr(&out), stdout);
	rc = d->n ? 1 : 0;
	buf_release(&out);
	return rc;
}

int cmd_validate(struct ctx *ctx, int argc, char **argv)
{
	const char *ref = NULL, *worktree = NULL, *json = NULL, *env = NULL, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "worktree", 0, &worktree }, { "json", 0, &json },
				    { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct state_src src;
	struct gitrepo *repo;
	char **envs = NULL;
	size_t npos, nenvs = 0, i;
	int rc = 0;

	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0)
		return cmd_fail(&e);
	if (ref && worktree)
		return cmd_failf("--ref and --worktree exclude each other");
	if ((ctx->env && ctx_env(ctx, &env, &e) < 0) || ctx_repo(ctx, &repo, &e) < 0 ||
	    state_src_open(&src, repo, ref, worktree != NULL, &e) < 0)
		return cmd_fail(&e);
	if (state_validate(&envs, &nenvs, &src, env, &d, &e) < 0 && !(e.code == ROTOR_EINVALID && d.n))
		rc = cmd_fail(&e);
	else if (json)
		rc = print_json(&src, env, envs, nenvs, &d);
	else if (d.n)
		rc = cmd_report(&d, NULL);
	else
		for (i = 0; env ? i < 1 : i < nenvs; i++)
			printf("envs/%s: valid\n", env ? env : envs[i]);
	gitrepo_names_free(envs);
	diags_release(&d);
	return rc;
}
