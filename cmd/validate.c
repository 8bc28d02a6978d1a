/*
 * validate.c -- `rotor validate`: every problem in the state files, as
 * path:line:column: message, at a commit (default HEAD) or in the work tree.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "reconcile/engine/state.h"

/* Drop exact repeats (rotor.yaml is checked once per env). */
static void diags_dedupe(struct diags *d)
{
	size_t i, j, k = 0;

	for (i = 0; i < d->n; i++) {
		int dup = 0;

		for (j = 0; j < k && !dup; j++)
			dup = d->v[j].line == d->v[i].line && d->v[j].column == d->v[i].column &&
			      strcmp(d->v[j].path, d->v[i].path) == 0 && strcmp(d->v[j].msg, d->v[i].msg) == 0;
		if (dup) {
			free(d->v[i].path);
			free(d->v[i].msg);
		} else {
			d->v[k++] = d->v[i];
		}
	}
	d->n = k;
}

int cmd_validate(struct ctx *ctx, int argc, char **argv)
{
	const char *ref = NULL, *worktree = NULL, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "worktree", 0, &worktree }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct state_src src;
	struct state st;
	struct gitrepo *repo;
	char **envs = NULL;
	const char *one[2] = { NULL, NULL };
	size_t npos, nenvs = 0, i;
	int rc = 1;

	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0)
		return cmd_fail(&e);
	if (ref && worktree)
		return cmd_failf("--ref and --worktree exclude each other");
	if (ctx->env && ctx_env(ctx, &one[0], &e) < 0)
		return cmd_fail(&e);
	if (ctx_repo(ctx, &repo, &e) < 0 || state_src_open(&src, repo, ref, worktree != NULL, &e) < 0)
		return cmd_fail(&e);

	if (!one[0]) {
		if (state_list(&envs, &nenvs, &src, "envs", &e) < 0 && e.code != ROTOR_ENOTFOUND)
			return cmd_fail(&e);
		if (nenvs == 0) {
			gitrepo_names_free(envs);
			return cmd_failf("no environments under envs/%s (run rotor init)",
					 worktree ? " in the work tree" : " at this commit");
		}
	}
	for (i = 0; one[0] ? i < 1 : i < nenvs; i++) {
		const char *env = one[0] ? one[0] : envs[i];

		if (!env_name_valid(env)) {
			diags_add(&d, "envs", 0, 0, "\"%s\" is not a valid environment name", env);
			continue;
		}
		if (state_load(&st, &src, env, &d, &e) < 0 && e.code) {
			state_release(&st);
			rc = cmd_fail(&e);
			goto out;
		}
		state_release(&st);
	}
	diags_dedupe(&d);
	if (d.n) {
		rc = cmd_report(&d, &e);
		goto out;
	}
	for (i = 0; one[0] ? i < 1 : i < nenvs; i++)
		printf("envs/%s: valid\n", one[0] ? one[0] : envs[i]);
	rc = 0;
out:
	gitrepo_names_free(envs);
	diags_release(&d);
	return rc;
}
