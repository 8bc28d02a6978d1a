/*
 * rotate.c -- the commits that drive a rotation (see rotate.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconcile/engine/rotate.h"

#include "reconcile/engine/client.h"
#include "reconcile/engine/state.h"
#include "reconcile/pki/pki.h"

const char *rotate_key_type_name(enum spec_key_type k)
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

/* The generation's files and rotation.yaml, committed as one on res->branch. */
static int commit_start(struct rotate_start_result *res, const struct state *st, const struct gitrepo_head *head,
			struct gitrepo *repo, const struct pki_file *files, size_t nfiles, struct err *e)
{
	const struct rotation_spec *rot = &res->rot;
	const char *env = st->env;
	struct gitrepo_file *gfiles;
	struct buf rot_text = BUF_INIT, msg = BUF_INIT;
	char **paths;
	char prefix_env[128];
	size_t i;
	int rc = 0;

	gfiles = calloc(nfiles + 1, sizeof(*gfiles));
	paths = calloc(nfiles + 1, sizeof(*paths));
	if (!gfiles || !paths || spec_rotation_emit(rot, &rot_text) < 0) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < nfiles; i++) {
		struct buf p = BUF_INIT;

		if (buf_printf(&p, "envs/%s/generations/%04d/%s", env, res->number, files[i].path) < 0) {
			rc = err_nomem(e);
			goto out;
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

	if (rot->target)
		buf_printf(&msg, "rotor: start rotation of %s to generation %d\n\n", env, res->number);
	else
		buf_printf(&msg, "rotor: first chain for %s (generation %d)\n\n", env, res->number);
	buf_printf(&msg, "Generation %04d: root, server CA, client CA, %zu server and %zu client\n"
			 "certificates (%s), private keys encrypted with key id %s.\n",
		   res->number, st->chain->nservers, st->chain->nclients, rotate_key_type_name(st->chain->key),
		   st->config->key_id ? st->config->key_id : "(none recorded)");
	if (rot->target)
		buf_printf(&msg, "rotation.yaml: generation %d, target %d, phase trust.\n", rot->generation, res->number);
	else
		buf_printf(&msg, "rotation.yaml: generation %d, phase stable.\n", res->number);
	if (buf_printf(&msg, "\nRotor-Env: %s\nRotor-Generation: %d\n", env, res->number) < 0 || msg.err) {
		rc = err_nomem(e);
		goto out;
	}
	rc = gitrepo_commit_branch(res->commit, repo, head->commit, gfiles, nfiles + 1, res->branch, buf_cstr(&msg), e);
	if (rc == ROTOR_EEXISTS)
		err_set(e, ROTOR_EEXISTS, "branch %s was created by someone else meanwhile; nothing written", res->branch);
out:
	if (paths)
		for (i = 0; i < nfiles; i++)
			free(paths[i]);
	free(paths);
	free(gfiles);
	buf_release(&rot_text);
	buf_release(&msg);
	return rc;
}

int rotate_start(struct rotate_start_result *res, struct gitrepo *repo, const struct rotate_start_opts *o,
		 struct diags *d, struct err *e)
{
	const char *env = o->env;
	struct state st;
	struct state_src src;
	struct gitrepo_head head;
	struct pki_generation *gen = NULL;
	struct pki_file *files = NULL;
	struct buf secret = BUF_INIT;
	char key_path[4096];
	size_t nfiles = 0;
	int exists = 0, rc;

	memset(res, 0, sizeof(*res));
	res->now = time(NULL);
	if ((rc = state_load_head(&st, &src, &head, repo, env, "start the rotation from", d, e)) < 0)
		return rc;
	snprintf(res->head_branch, sizeof(res->head_branch), "%s", head.branch);
	res->key = st.chain->key;
	if (st.config->git_remote && !(res->remote = xstrdup(st.config->git_remote, e))) {
		rc = e->code;
		goto out;
	}
	if (st.rotation->phase != SPEC_PHASE_STABLE) {
		rc = err_set(e, ROTOR_ESTATE, "a rotation of %s is in progress (generation %d to %d, phase %s); "
			     "finish it or roll it back before starting another", env,
			     st.rotation->generation, st.rotation->target, spec_phase_name(st.rotation->phase));
		goto out;
	}
	if ((rc = next_generation(&res->number, &st, repo, e)) < 0)
		goto out;
	snprintf(res->branch, sizeof(res->branch), "rotor/rotate/%s/gen-%04d", env, res->number);
	if ((rc = gitrepo_branch_exists(&exists, repo, res->branch, e)) < 0)
		goto out;
	if (exists) {
		rc = err_set(e, ROTOR_ESTATE, "branch %s exists: an earlier `rotate start` waits for review; "
			     "merge or delete that branch first", res->branch);
		goto out;
	}

	if ((rc = state_key_path(key_path, sizeof(key_path), st.config, e)) < 0 ||
	    (rc = pki_secret_load(&secret, key_path, e)) < 0 ||
	    (rc = state_check_secret(&st, &src, buf_cstr(&secret), key_path, e)) < 0)
		goto out;

	if ((rc = pki_generate(&gen, env, res->number, st.chain, o->threads, res->now, e)) < 0 ||
	    (rc = pki_export(&files, &nfiles, &res->manifest, gen, env, buf_cstr(&secret), res->now, e)) < 0 ||
	    (rc = client_gen_crls(&files, &nfiles, gen, st.chain->crl_days, res->now, e)) < 0)
		goto out;
	buf_wipe(&secret);
	pki_generation_free(gen);
	gen = NULL;

	res->rot.phase = st.rotation->generation == 0 ? SPEC_PHASE_STABLE : SPEC_PHASE_TRUST;
	res->rot.generation = st.rotation->generation == 0 ? res->number : st.rotation->generation;
	res->rot.target = st.rotation->generation == 0 ? 0 : res->number;
	rc = commit_start(res, &st, &head, repo, files, nfiles, e);
out:
	buf_wipe(&secret);
	pki_generation_free(gen);
	pki_files_free(files, nfiles);
	state_release(&st);
	return rc;
}

void rotate_start_result_release(struct rotate_start_result *res)
{
	spec_manifest_free(res->manifest);
	free(res->remote);
	memset(res, 0, sizeof(*res));
}

int rotate_next(struct rotate_next_result *res, struct gitrepo *repo, const char *env, struct diags *d,
		struct err *e)
{
	struct state st;
	struct state_src src;
	struct gitrepo_head head;
	struct rotation_spec *rot = &res->to;
	struct gitrepo_file f;
	struct buf text = BUF_INIT, msg = BUF_INIT;
	char path[128];
	const char *to;
	int exists = 0, rc;

	memset(res, 0, sizeof(*res));
	if ((rc = state_load_head(&st, &src, &head, repo, env, "move the rotation from", d, e)) < 0)
		return rc;
	res->from = *rot = *st.rotation;
	switch (rot->phase) {
	case SPEC_PHASE_STABLE:
		rc = err_set(e, ROTOR_ESTATE, "%s is stable at generation %d: nothing to move (start a rotation with "
			     "rotor rotate start)", env, rot->generation);
		goto out;
	case SPEC_PHASE_TRUST:
		rot->phase = SPEC_PHASE_SERVERS;
		break;
	case SPEC_PHASE_SERVERS:
		rot->phase = SPEC_PHASE_CLIENTS;
		break;
	case SPEC_PHASE_CLIENTS:
		rot->phase = SPEC_PHASE_STABLE;
		rot->generation = rot->target;
		rot->target = 0;
		break;
	}
	to = rot->phase == SPEC_PHASE_STABLE ? "stable" : spec_phase_name(rot->phase);
	snprintf(res->branch, sizeof(res->branch), "rotor/rotate/%s/gen-%04d-%s", env, res->from.target, to);
	if ((rc = gitrepo_branch_exists(&exists, repo, res->branch, e)) < 0)
		goto out;
	if (exists) {
		rc = err_set(e, ROTOR_ESTATE, "branch %s exists: an earlier `rotate next` waits for review; merge or "
			     "delete it first", res->branch);
		goto out;
	}
	snprintf(path, sizeof(path), "envs/%s/rotation.yaml", env);
	if (spec_rotation_emit(rot, &text) < 0 ||
	    buf_printf(&msg, "rotor: %s %s to phase %s (generation %d -> %d)\n\n"
			     "rotation.yaml: %s %s -> %s.\nApply it with rotor apply; every step is gated on live state.\n\n"
			     "Rotor-Env: %s\nRotor-Generation: %d\n", rot->phase == SPEC_PHASE_STABLE ? "finish" : "move",
		       env, to, res->from.generation, res->from.target, env, spec_phase_name(res->from.phase), to,
		       env, res->from.target) < 0) {
		rc = err_nomem(e);
		goto out;
	}
	f.path = path;
	f.data = text.ptr;
	f.len = text.len;
	rc = gitrepo_commit_branch(res->commit, repo, head.commit, &f, 1, res->branch, buf_cstr(&msg), e);
out:
	buf_release(&text);
	buf_release(&msg);
	state_release(&st);
	return rc;
}
