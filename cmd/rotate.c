/*
 * rotate.c -- `rotor rotate start`: generate the next generation of an
 * env's chain and commit it with the updated rotation.yaml as ONE commit
 * on a new branch, leaving the work tree, the index and HEAD alone.
 *
 * Every refusal happens before any key is generated, and nothing is
 * written until the single commit; the branch is created last, with
 * compare-and-swap, so an interrupted run leaves at most an unreachable
 * commit object behind.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "reconcile/engine/state.h"
#include "reconcile/pki/pki.h"

static const char *key_type_name(enum spec_key_type k)
{
	switch (k) {
	case SPEC_KEY_EC_P256: return "EC P-256";
	case SPEC_KEY_EC_P384: return "EC P-384";
	case SPEC_KEY_RSA_2048: return "RSA 2048";
	case SPEC_KEY_RSA_3072: return "RSA 3072";
	case SPEC_KEY_RSA_4096: return "RSA 4096";
	case SPEC_KEY_ED25519: return "Ed25519";
	}
	return "?";
}

static int next_generation(int *out, const struct state *st, struct gitrepo *repo, struct err *e)
{
	char branch[128];
	size_t i;
	int n = st->rotation->generation, exists, rc;

	if (st->rotation->target > n)
		n = st->rotation->target;
	for (i = 0; i < st->ngens; i++)
		if (st->gens[i].number > n)
			n = st->gens[i].number;
	/* A rolled-back generation keeps its number on its own branch. */
	for (;;) {
		n++;
		if (n > 9999)
			return err_set(e, ROTOR_ESTATE, "env %s has used every generation number up to 9999", st->env);
		snprintf(branch, sizeof(branch), "rotor/rolled-back/%s/gen-%04d", st->env, n);
		if ((rc = gitrepo_branch_exists(&exists, repo, branch, e)) < 0)
			return rc;
		if (!exists)
			break;
	}
	*out = n;
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

static int rotate_start(struct ctx *ctx, int argc, char **argv)
{
	const char *threads_opt = NULL, *pos[1];
	const struct opt opts[] = { { "threads", 1, &threads_opt }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct state st;
	struct state_src src;
	struct gitrepo *repo;
	struct gitrepo_head head;
	struct pki_generation *gen = NULL;
	struct pki_file *files = NULL;
	struct manifest *manifest = NULL;
	struct gitrepo_file *gfiles = NULL;
	struct rotation_spec rot;
	struct buf secret = BUF_INIT, rot_text = BUF_INIT, msg = BUF_INIT;
	char **paths = NULL;
	char key_path[4096], branch[160], commit[41], prefix_env[128];
	const char *env;
	size_t npos, nfiles = 0, i;
	int number = 0, exists = 0, threads = 0, rc = 1;
	time_t now = time(NULL);

	memset(&st, 0, sizeof(st));
	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0)
		return cmd_fail(&e);
	if (threads_opt && opt_int(&threads, threads_opt, "--threads", 1, 256, &e) < 0)
		return cmd_fail(&e);
	if (ctx_env(ctx, &env, &e) < 0)
		return cmd_fail(&e);
	if ((rc = cmd_load_head(&st, &src, &head, ctx, env, "start the rotation from")) != 0)
		goto out;
	rc = 1;
	repo = src.repo;
	if (st.rotation->phase != SPEC_PHASE_STABLE) {
		rc = cmd_failf("a rotation of %s is in progress (generation %d to %d, phase %s); "
			       "finish it or roll it back before starting another", env,
			       st.rotation->generation, st.rotation->target, spec_phase_name(st.rotation->phase));
		goto out;
	}
	if (next_generation(&number, &st, repo, &e) < 0)
		goto fail;
	snprintf(branch, sizeof(branch), "rotor/rotate/%s/gen-%04d", env, number);
	if (gitrepo_branch_exists(&exists, repo, branch, &e) < 0)
		goto fail;
	if (exists) {
		rc = cmd_failf("branch %s exists: an earlier `rotate start` waits for review; "
			       "merge or delete that branch first", branch);
		goto out;
	}

	if (state_key_path(key_path, sizeof(key_path), st.config, &e) < 0 ||
	    pki_secret_load(&secret, key_path, &e) < 0 ||
	    state_check_secret(&st, &src, buf_cstr(&secret), key_path, &e) < 0)
		goto fail;

	if (pki_generate(&gen, env, number, st.chain, threads, now, &e) < 0 ||
	    pki_export(&files, &nfiles, &manifest, gen, env, buf_cstr(&secret), now, &e) < 0)
		goto fail;
	buf_wipe(&secret);
	pki_generation_free(gen);
	gen = NULL;

	rot.phase = st.rotation->generation == 0 ? SPEC_PHASE_STABLE : SPEC_PHASE_TRUST;
	rot.generation = st.rotation->generation == 0 ? number : st.rotation->generation;
	rot.target = st.rotation->generation == 0 ? 0 : number;
	if (spec_rotation_emit(&rot, &rot_text) < 0) {
		err_nomem(&e);
		goto fail;
	}

	gfiles = calloc(nfiles + 1, sizeof(*gfiles));
	paths = calloc(nfiles + 1, sizeof(*paths));
	if (!gfiles || !paths) {
		err_nomem(&e);
		goto fail;
	}
	for (i = 0; i < nfiles; i++) {
		struct buf p = BUF_INIT;

		if (buf_printf(&p, "envs/%s/generations/%04d/%s", env, number, files[i].path) < 0) {
			err_nomem(&e);
			goto fail;
		}
		paths[i] = buf_detach(&p);
		gfiles[i].path = paths[i];
		gfiles[i].data = files[i].data.ptr;
		gfiles[i].len = files[i].data.len;
	}
	snprintf(prefix_env, sizeof(prefix_env), "envs/%s/rotation.yaml", env);
	gfiles[nfiles].path = prefix_env;
	gfiles[nfiles].data = rot_text.ptr;
	gfiles[nfiles].len = rot_text.len;

	if (rot.target)
		buf_printf(&msg, "rotor: start rotation of %s to generation %d\n\n", env, number);
	else
		buf_printf(&msg, "rotor: first chain for %s (generation %d)\n\n", env, number);
	buf_printf(&msg, "Generation %04d: root, server CA, client CA, %zu server and %zu client\n"
			 "certificates (%s), private keys encrypted with key id %s.\n",
		   number, st.chain->nservers, st.chain->nclients, key_type_name(st.chain->key),
		   st.config->key_id ? st.config->key_id : "(none recorded)");
	if (rot.target)
		buf_printf(&msg, "rotation.yaml: generation %d, target %d, phase trust.\n", rot.generation, number);
	else
		buf_printf(&msg, "rotation.yaml: generation %d, phase stable.\n", number);
	if (buf_printf(&msg, "\nRotor-Env: %s\nRotor-Generation: %d\n", env, number) < 0) {
		err_nomem(&e);
		goto fail;
	}
	if (gitrepo_commit_branch(commit, repo, head.commit, gfiles, nfiles + 1, branch, buf_cstr(&msg), &e) < 0) {
		if (e.code == ROTOR_EEXISTS)
			err_set(&e, ROTOR_EEXISTS, "branch %s was created by someone else meanwhile; nothing written", branch);
		goto fail;
	}

	printf("generated %s generation %d (%s): %zu certificates\n", env, number,
	       key_type_name(st.chain->key), manifest->ncerts);
	print_summary(manifest, now);
	printf("\ncommitted %.12s on branch %s (work tree and %s untouched)\n", commit, branch, head.branch);
	if (rot.target)
		printf("rotation.yaml: generation %d, target %d, phase trust\n", rot.generation, number);
	else
		printf("rotation.yaml: generation %d, phase stable\n", number);
	printf("next: review and merge it, e.g. git push %s %s and open a merge request\n",
	       st.config->git_remote ? st.config->git_remote : "origin", branch);
	rc = 0;
	goto out;
fail:
	rc = cmd_fail(&e);
out:
	buf_wipe(&secret);
	pki_generation_free(gen);
	pki_files_free(files, nfiles);
	spec_manifest_free(manifest);
	if (paths)
		for (i = 0; i < nfiles; i++)
			free(paths[i]);
	free(paths);
	free(gfiles);
	buf_release(&rot_text);
	buf_release(&msg);
	state_release(&st);
	return rc;
}

/*
 * `rotate next`: one commit that moves rotation.yaml one step forward
 * (trust -> servers -> clients -> stable at the target), on its own
 * branch rotor/rotate/<env>/gen-NNNN-<phase>, for review like any other.
 */
static int rotate_next(struct ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	const struct opt opts[] = { { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct state st;
	struct state_src src;
	struct gitrepo_head head;
	struct rotation_spec rot;
	struct gitrepo_file f;
	struct buf text = BUF_INIT, msg = BUF_INIT;
	char branch[160], path[128], commit[41];
	const char *env, *to;
	size_t npos;
	int exists = 0, rc = 1;

	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0)
		return cmd_fail(&e);
	if (cmd_load_head(&st, &src, &head, ctx, env, "move the rotation from") != 0)
		return 1;
	rot = *st.rotation;
	switch (rot.phase) {
	case SPEC_PHASE_STABLE:
		rc = cmd_failf("%s is stable at generation %d: nothing to move (start a rotation with rotor rotate start)",
			       env, rot.generation);
		goto out;
	case SPEC_PHASE_TRUST:
		rot.phase = SPEC_PHASE_SERVERS;
		break;
	case SPEC_PHASE_SERVERS:
		rot.phase = SPEC_PHASE_CLIENTS;
		break;
	case SPEC_PHASE_CLIENTS:
		rot.phase = SPEC_PHASE_STABLE;
		rot.generation = rot.target;
		rot.target = 0;
		break;
	}
	to = rot.phase == SPEC_PHASE_STABLE ? "stable" : spec_phase_name(rot.phase);
	snprintf(branch, sizeof(branch), "rotor/rotate/%s/gen-%04d-%s", env,
		 st.rotation->target, to);
	if (gitrepo_branch_exists(&exists, src.repo, branch, &e) < 0)
		goto fail;
	if (exists) {
		rc = cmd_failf("branch %s exists: an earlier `rotate next` waits for review; merge or delete it first", branch);
		goto out;
	}
	snprintf(path, sizeof(path), "envs/%s/rotation.yaml", env);
	if (spec_rotation_emit(&rot, &text) < 0 ||
	    buf_printf(&msg, "rotor: %s %s to phase %s (generation %d -> %d)\n\n"
			     "rotation.yaml: %s %s -> %s.\nApply it with rotor apply; every step is gated on live state.\n\n"
			     "Rotor-Env: %s\nRotor-Generation: %d\n", rot.phase == SPEC_PHASE_STABLE ? "finish" : "move",
		       env, to, st.rotation->generation, st.rotation->target, env, spec_phase_name(st.rotation->phase), to,
		       env, st.rotation->target) < 0) {
		err_nomem(&e);
		goto fail;
	}
	f.path = path;
	f.data = text.ptr;
	f.len = text.len;
	if (gitrepo_commit_branch(commit, src.repo, head.commit, &f, 1, branch, buf_cstr(&msg), &e) < 0)
		goto fail;
	printf("committed %.12s on branch %s: phase %s -> %s\n", commit, branch, spec_phase_name(st.rotation->phase), to);
	if (rot.phase == SPEC_PHASE_STABLE)
		printf("the rotation ends there: generation %d in service\n", rot.generation);
	printf("next: review and merge it, then rotor plan / rotor apply --env %s\n", env);
	rc = 0;
	goto out;
fail:
	rc = cmd_fail(&e);
out:
	buf_release(&text);
	buf_release(&msg);
	state_release(&st);
	return rc;
}

int cmd_rotate(struct ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cmd_failf("rotate needs a subcommand: start or next (see rotor help rotate)");
	if (strcmp(argv[1], "start") == 0)
		return rotate_start(ctx, argc - 1, argv + 1);
	if (strcmp(argv[1], "next") == 0)
		return rotate_next(ctx, argc - 1, argv + 1);
	return cmd_failf("unknown rotate subcommand \"%s\" (see rotor help rotate)", argv[1]);
}
