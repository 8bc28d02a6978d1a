/*
 * unlock.c -- `rotor unlock`: remove the lock of an env left by a run
 * that died, and say whose it was: the remote's refs/rotor/lock/<env>
 * when the git repository has git.remote, else the local one.
 */
#include <stdio.h>

#include "cmd/cmd.h"
#include "gitops/gitstatus.h"
#include "reconcile/engine/origin.h"

int cmd_unlock(struct ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	const struct opt opts[] = { { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct gitrepo *repo;
	struct gitstatus_lock was;
	struct origin og;
	char desc[700];
	const char *env;
	size_t npos;
	int rc;

	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0 ||
	    ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	if ((rc = origin_open(&og, repo, cmd_remote_line, stdout, &e)) < 0)
		return cmd_fail(&e);
	if (og.has_remote)
		rc = origin_unlock(&og, repo, env, &was, &e);
	else
		rc = gitstatus_force_unlock(repo, env, &was, &e);
	if (rc == ROTOR_ENOTFOUND) {
		printf("env %s is not locked%s%s%s\n", env, og.has_remote ? " on " : "", og.has_remote ? og.remote : "",
		       og.has_remote ? "" : " (local lock: no remote in the git repository)");
		origin_release(&og);
		return 0;
	}
	if (rc < 0) {
		origin_release(&og);
		return cmd_fail(&e);
	}
	printf("removed the lock of env %s%s%s: it was held by %s\n", env, og.has_remote ? " on " : " (local)",
	       og.has_remote ? og.remote : "", gitstatus_lock_describe(desc, sizeof(desc), &was));
	origin_release(&og);
	return 0;
}
