/*
 * rotate.c -- `rotor rotate start|next|abandon` and `rotor rollback`:
 * the arguments and what was committed (the commits themselves:
 * reconcile/engine/rotate.h).
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "reconcile/engine/origin.h"
#include "reconcile/engine/rotate.h"

/*
 * --push: the new branch to git.remote, printing what the server says
 * (a hook's lines, a merge-request link); without it, the hint.  A
 * failed push is one error line; the commit stays on the local branch.
 */
static int push_or_hint(struct gitrepo *repo, const char *branch, int push)
{
	struct origin og;
	struct err e = ERR_INIT;
	int rc;

	rc = origin_open(&og, repo, cmd_remote_line, stdout, &e);
	if (!push) {
		printf("next: push it (git push %s %s, or --push next time) and open a merge request\n",
		       rc == 0 ? og.remote : "origin", branch);
		origin_release(&og);
		return 0;
	}
	if (rc == 0) {
		printf("pushing %s to %s (%s)\n", branch, og.remote, og.url[0] ? og.url : "not configured");
		fflush(stdout);
		rc = origin_push_branch(&og, repo, branch, &e);
	}
	if (rc == 0)
		printf("pushed %s to %s: open or review its merge request there\n", branch, og.remote);
	origin_release(&og);
	if (rc < 0) {
		err_prefix(&e, "push of %s failed (the commit stays on the local branch)", branch);
		return cmd_fail(&e);
	}
	return 0;
}

static void print_summary(const struct manifest *m, time_t now)
{
	size_t i;

	printf("  %-10s %-24s %-19s %s\n", "role", "name", "expires", "sha256 fingerprint");
	for (i = 0; i < m->ncerts; i++) {
		const struct manifest_cert *c = &m->certs[i];
		long long na = rfc3339_parse(c->not_after);

		printf("  %-10s %-24s %.10s (%4lld d) %.23s...\n", spec_cert_role_name(c->role), c->name,
		       c->not_after, na < 0 ? -1 : days_until(na, now), c->fingerprint);
	}
}

/* A merged (spent) branch of the name passed over, said before what was committed. */
static void print_spent(const char *spent, const char *branch)
{
	if (spent[0])
		printf("branch %s is already merged (spent: an earlier attempt); committing on %s instead\n", spent, branch);
}

static int start(struct ctx *ctx, int argc, char **argv)
{
	const char *threads_opt = NULL, *push = NULL, *pos[1];
	const struct opt opts[] = { { "threads", 1, &threads_opt }, { "push", 0, &push }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct rotate_start_opts o;
	struct rotate_start_result res;
	struct gitrepo *repo;
	size_t npos;
	int rc;

	memset(&o, 0, sizeof(o));
	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 ||
	    (threads_opt && opt_int(&o.threads, threads_opt, "--threads", 1, 256, &e) < 0) ||
	    ctx_env(ctx, &o.env, &e) < 0 || ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	if ((rc = rotate_start(&res, repo, &o, &d, &e)) < 0) {
		rc = cmd_report(&d, &e);
		goto out;
	}
	print_spent(res.spent, res.branch);
	printf("generated %s generation %d (%s): %zu certificates\n", o.env, res.number,
	       rotate_key_type_name(res.key), res.manifest->ncerts);
	print_summary(res.manifest, res.now);
	printf("\ncommitted %.12s on branch %s (work tree and %s untouched)\n", res.commit, res.branch,
	       res.head_branch);
	if (res.rot.target)
		printf("rotation.yaml: generation %d, target %d, phase trust\n", res.rot.generation, res.number);
	else
		printf("rotation.yaml: generation %d, phase stable\n", res.number);
	rc = push_or_hint(repo, res.branch, push != NULL);
out:
	rotate_start_result_release(&res);
	diags_release(&d);
	return rc;
}

static int next(struct ctx *ctx, int argc, char **argv)
{
	const char *env, *push = NULL, *pos[1];
	const struct opt opts[] = { { "push", 0, &push }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct rotate_next_result res;
	struct gitrepo *repo;
	size_t npos;
	int rc = 0;

	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0 ||
	    ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	if (rotate_next(&res, repo, env, &d, &e) < 0) {
		rc = cmd_report(&d, &e);
	} else {
		print_spent(res.spent, res.branch);
		printf("committed %.12s on branch %s: phase %s -> %s\n", res.commit, res.branch,
		       spec_phase_name(res.from.phase), spec_phase_name(res.to.phase));
		if (res.to.phase == SPEC_PHASE_STABLE)
			printf("the rotation ends there: generation %d in service\n", res.to.generation);
		rc = push_or_hint(repo, res.branch, push != NULL);
		if (rc == 0)
			printf("once merged: rotor plan / rotor apply --env %s\n", env);
	}
	diags_release(&d);
	return rc;
}

/* rollback and abandon: one commit moving rotation.yaml back. */
static int back(struct ctx *ctx, int argc, char **argv, int abandon)
{
	const char *env, *push = NULL, *pos[1];
	const struct opt opts[] = { { "push", 0, &push }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct rotate_back_result res;
	struct gitrepo *repo;
	size_t npos;
	int rc = 0;

	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0 ||
	    ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	if ((abandon ? rotate_abandon : rotate_rollback)(&res, repo, env, &d, &e) < 0) {
		rc = cmd_report(&d, &e);
		goto out;
	}
	print_spent(res.spent, res.branch);
	if (abandon) {
		if (res.kept_existed)
			printf("generation %d is kept on branch %s (there already, at %.12s)\n", res.abandoned, res.kept,
			       res.kept_commit);
		else
			printf("generation %d is kept on branch %s (at %.12s)\n", res.abandoned, res.kept, res.kept_commit);
		printf("committed %.12s on branch %s: rotation to generation %d abandoned (phase %s), "
		       "%zu files of generation %04d removed\n", res.commit, res.branch, res.abandoned,
		       spec_phase_name(res.from.phase), res.nremoved, res.abandoned);
	} else {
		printf("committed %.12s on branch %s: phase %s -> %s\n", res.commit, res.branch,
		       spec_phase_name(res.from.phase), spec_phase_name(res.to.phase));
	}
	if (res.to.target)
		printf("rotation.yaml: generation %d, target %d, phase %s\n", res.to.generation, res.to.target,
		       spec_phase_name(res.to.phase));
	else
		printf("rotation.yaml: generation %d, phase stable (no target)\n", res.to.generation);
	/* abandon: the branch keeping the material goes first, when this run made it. */
	if (abandon && push && !res.kept_existed && (rc = push_or_hint(repo, res.kept, 1)) < 0)
		goto out;
	if ((rc = push_or_hint(repo, res.branch, push != NULL)) < 0)
		goto out;
	printf("once merged: rotor plan / rotor apply --env %s (the hosts walk back step by step)\n", env);
out:
	diags_release(&d);
	return rc;
}

int cmd_rollback(struct ctx *ctx, int argc, char **argv)
{
	return back(ctx, argc, argv, 0);
}

int cmd_rotate(struct ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cmd_failf("rotate needs a subcommand: start, next or abandon (see rotor help rotate)");
	if (strcmp(argv[1], "start") == 0)
		return start(ctx, argc - 1, argv + 1);
	if (strcmp(argv[1], "next") == 0)
		return next(ctx, argc - 1, argv + 1);
	if (strcmp(argv[1], "abandon") == 0)
		return back(ctx, argc - 1, argv + 1, 1);
	return cmd_failf("unknown rotate subcommand \"%s\" (see rotor help rotate)", argv[1]);
}
