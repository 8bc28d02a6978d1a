/*
 * validate.c -- `rotor validate`: every problem in the state files, as
 * path:line:column: message, at a commit (default HEAD) or in the work
 * tree (state_validate() in reconcile/engine/state.h).
 */
#include <stdio.h>

#include "cmd/cmd.h"
#include "reconcile/engine/state.h"

int cmd_validate(struct ctx *ctx, int argc, char **argv)
{
	const char *ref = NULL, *worktree = NULL, *env = NULL, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "worktree", 0, &worktree }, { NULL, 0, NULL } };
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
	if (state_validate(&envs, &nenvs, &src, env, &d, &e) < 0)
		rc = e.code == ROTOR_EINVALID && d.n ? cmd_report(&d, NULL) : cmd_fail(&e);
	else
		for (i = 0; env ? i < 1 : i < nenvs; i++)
			printf("envs/%s: valid\n", env ? env : envs[i]);
	gitrepo_names_free(envs);
	diags_release(&d);
	return rc;
}
