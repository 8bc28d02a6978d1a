/*
 * rotate.c -- the commits that drive a rotation (see rotate.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconcile/engine/rotate.h"

#include "gitops/githistory.h"
#include "reconcile/engine/phase.h"
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
	/* A generation reverted away keeps its number in history, and hosts may still hold it. */
	for (i = 0; i < st->npast; i++)
		if (st->past[i].number > n)
			n = st->past[i].number;
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

/*
 * The branch to commit on: base; or, when base exists but its tip is
 * already in HEAD's history (an attempt that was merged, and perhaps
 * reverted since: it is spent), base-2, base-3...  spent receives the
 * last spent name ("" when none).  A branch that exists and is not
 * merged waits for review: ROTOR_ESTATE naming the command.
 */
static int fresh_branch(char *out, size_t outlen, char *spent, size_t spentlen, struct gitrepo *repo,
			const char *base, const char *head, const char *what, struct err *e)
{
	char tip[41];
	int k, exists, merged, rc;

	spent[0] = '\0';
	for (k = 1; k <= 99; k++) {
		if (k == 1)
			snprintf(out, outlen, "%s", base);
		else
			snprintf(out, outlen, "%s-%d", base, k);
		if ((rc = gitrepo_branch_exists(&exists, repo, out, e)) < 0)
			return rc;
		if (!exists)
			return 0;
		if ((rc = gitrepo_branch_tip(tip, repo, out, e)) < 0 ||
		    (rc = gitrepo_is_ancestor(&merged, repo, tip, head, e)) < 0)
			return rc;
		if (!merged)
			return err_set(e, ROTOR_ESTATE, "branch %s exists: an earlier `%s` waits for review; merge or "
				       "delete it first", out, what);
		snprintf(spent, spentlen, "%s", out);
	}
	return err_set(e, ROTOR_ESTATE, "branches %s to %s-99 exist and are merged; delete the spent ones", base, base);
}

/* rotation.yaml (and extra files: upserts or deletions), one commit on branch from head. */
static int commit_rotation(char commit[41], struct gitrepo *repo, const char *head, const char *env,
			   const struct rotation_spec *rot, const struct gitrepo_file *extra, size_t nextra,
			   const char *branch, const char *msg, struct err *e)
{
	struct gitrepo_file *files;
	struct buf text = BUF_INIT;
	char path[128];
	int rc;

	if (!(files = calloc(nextra + 1, sizeof(*files))))
		return err_nomem(e);
	snprintf(path, sizeof(path), "envs/%s/rotation.yaml", env);
	if (spec_rotation_emit(rot, &text) < 0) {
		free(files);
		return err_nomem(e);
	}
	files[0].path = path;
	files[0].data = text.ptr;
	files[0].len = text.len;
	if (nextra)
		memcpy(files + 1, extra, nextra * sizeof(*files));
	rc = gitrepo_commit_branch(commit, repo, head, files, nextra + 1, branch, msg, e);
	if (rc == ROTOR_EEXISTS)
		err_set(e, ROTOR_EEXISTS, "branch %s was created by someone else meanwhile; nothing written", branch);
	buf_release(&text);
	free(files);
	return rc;
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
	char key_path[4096], base[160];
	size_t nfiles = 0;
	int rc;

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
	if ((rc = state_load_past(&st, &src, e)) < 0 || (rc = next_generation(&res->number, &st, repo, e)) < 0)
		goto out;
	snprintf(base, sizeof(base), "rotor/rotate/%s/gen-%04d", env, res->number);
	if ((rc = fresh_branch(res->branch, sizeof(res->branch), res->spent, sizeof(res->spent), repo, base,
			       head.commit, "rotate start", e)) < 0)
		goto out;

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
	struct buf msg = BUF_INIT;
	char base[160];
	const char *to;
	int rc;

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
	to = spec_phase_name(rot->phase);
	snprintf(base, sizeof(base), "rotor/rotate/%s/gen-%04d-%s", env, res->from.target, to);
	if ((rc = fresh_branch(res->branch, sizeof(res->branch), res->spent, sizeof(res->spent), repo, base,
			       head.commit, "rotate next", e)) < 0)
		goto out;
	if (buf_printf(&msg, "rotor: %s %s to phase %s (generation %d -> %d)\n\n"
			     "rotation.yaml: %s %s -> %s.\nApply it with rotor apply; every step is gated on live state.\n\n"
			     "Rotor-Env: %s\nRotor-Generation: %d\n", rot->phase == SPEC_PHASE_STABLE ? "finish" : "move",
		       env, to, res->from.generation, res->from.target, env, spec_phase_name(res->from.phase), to,
		       env, res->from.target) < 0) {
		rc = err_nomem(e);
		goto out;
	}
	rc = commit_rotation(res->commit, repo, head.commit, env, rot, NULL, 0, res->branch, buf_cstr(&msg), e);
out:
	buf_release(&msg);
	state_release(&st);
	return rc;
}

/* ---- rolling back ---- */

struct find_prev {
	struct gitrepo *repo;
	char path[128];
	int target;             /* the generation rotated to */
	int prev;               /* what it was rotated from; 0 until found */
};

/* The newest rotation.yaml in history whose target is f->target names the generation before it. */
static int find_prev_each(void *payload, const char *id, struct err *e)
{
	struct find_prev *f = payload;
	struct rotation_spec *rot = NULL;
	struct diags d = { NULL, 0, 0 };
	struct buf b = BUF_INIT;
	int rc;

	rc = gitrepo_read(&b, f->repo, id, f->path, SPEC_MAX_BYTES, e);
	if (rc == ROTOR_ENOTFOUND || rc == ROTOR_ETOOBIG || rc == ROTOR_EINVALID) {
		err_clear(e);
		return 0;
	}
	if (rc < 0)
		return rc;
	rc = spec_load_rotation(&rot, f->path, b.ptr, b.len, &d);
	buf_release(&b);
	diags_release(&d);
	if (rc == ROTOR_ENOMEM)
		return err_nomem(e);
	if (rc == 0 && rot && rot->target == f->target && rot->generation > 0 && rot->generation != f->target)
		f->prev = rot->generation;
	spec_rotation_free(rot);
	return f->prev ? 1 : 0;
}

static int in_tree(const struct state *st, int n)
{
	size_t i;

	for (i = 0; i < st->ngens; i++)
		if (st->gens[i].number == n)
			return 1;
	return 0;
}

int rotate_rollback(struct rotate_back_result *res, struct gitrepo *repo, const char *env, struct diags *d,
		    struct err *e)
{
	struct state st;
	struct state_src src;
	struct gitrepo_head head;
	struct find_prev fp;
	struct buf msg = BUF_INIT;
	char base[160];
	const char *from_name, *to_name;
	int gen, rc;

	memset(res, 0, sizeof(*res));
	if ((rc = state_load_head(&st, &src, &head, repo, env, "roll the rotation back from", d, e)) < 0)
		return rc;
	res->from = *st.rotation;
	memset(&fp, 0, sizeof(fp));
	if (res->from.phase == SPEC_PHASE_STABLE && res->from.generation > 0) {
		fp.repo = repo;
		fp.target = res->from.generation;
		snprintf(fp.path, sizeof(fp.path), "envs/%s/rotation.yaml", env);
		if ((rc = gitrepo_walk(repo, head.commit, find_prev_each, &fp, e)) < 0)
			goto out;
	}
	if (phase_back(&res->to, &res->from, fp.prev) < 0) {
		rc = err_set(e, ROTOR_ESTATE, "%s is stable at generation %d and no rotation to it is in the history "
			     "of %s: nothing to roll back", env, res->from.generation, head.branch);
		goto out;
	}
	if (!in_tree(&st, res->to.generation)) {
		rc = err_set(e, ROTOR_ESTATE, "generation %d is no longer in envs/%s/generations (abandoned or reverted): "
			     "cannot roll back to it", res->to.generation, env);
		goto out;
	}
	gen = res->to.target ? res->to.target : res->from.target;
	from_name = spec_phase_name(res->from.phase);
	to_name = spec_phase_name(res->to.phase);
	snprintf(base, sizeof(base), "rotor/rollback/%s/gen-%04d-%s", env, gen, to_name);
	if ((rc = fresh_branch(res->branch, sizeof(res->branch), res->spent, sizeof(res->spent), repo, base,
			       head.commit, "rollback", e)) < 0)
		goto out;
	buf_printf(&msg, "rotor: roll %s back to phase %s (generation %d -> %d)\n\n"
			 "rotation.yaml: %s -> %s", env, to_name, res->to.generation, gen, from_name, to_name);
	if (res->to.phase == SPEC_PHASE_STABLE)
		buf_printf(&msg, " at generation %d (target %d removed; its material stays committed)",
			   res->to.generation, gen);
	if (buf_printf(&msg, ".\nApply it with rotor apply; every step back is gated on live state.\n\n"
			     "Rotor-Env: %s\nRotor-Generation: %d\n", env, gen) < 0 || msg.err) {
		rc = err_nomem(e);
		goto out;
	}
	rc = commit_rotation(res->commit, repo, head.commit, env, &res->to, NULL, 0, res->branch, buf_cstr(&msg), e);
out:
	buf_release(&msg);
	state_release(&st);
	return rc;
}

/* Every file under dir at commit, as deletions (paths owned by *paths, NULL-terminated). */
static int list_files(char ***paths, size_t *n, size_t *cap, struct gitrepo *repo, const char *commit,
		      const char *dir, struct err *e)
{
	char **names = NULL, **nv;
	size_t k, cnt = 0;
	int rc;

	if ((rc = gitrepo_list(&names, &cnt, repo, commit, dir, e)) < 0)
		return rc;
	for (k = 0; k < cnt && rc == 0; k++) {
		struct buf p = BUF_INIT;
		char **sub = NULL;

		if (buf_printf(&p, "%s/%s", dir, names[k]) < 0 || p.err) {
			buf_release(&p);
			rc = err_nomem(e);
			break;
		}
		/* A directory lists; a file is ROTOR_EINVALID to gitrepo_list. */
		rc = gitrepo_list(&sub, NULL, repo, commit, buf_cstr(&p), e);
		gitrepo_names_free(sub);
		if (rc == 0) {
			rc = list_files(paths, n, cap, repo, commit, buf_cstr(&p), e);
			buf_release(&p);
			continue;
		}
		if (rc != ROTOR_EINVALID) {
			buf_release(&p);
			break;
		}
		err_clear(e);
		rc = 0;
		if (*n + 2 > *cap) {
			*cap = *cap ? *cap * 2 : 32;
			if (!(nv = realloc(*paths, *cap * sizeof(*nv)))) {
				buf_release(&p);
				rc = err_nomem(e);
				break;
			}
			*paths = nv;
		}
		(*paths)[(*n)++] = buf_detach(&p);
		(*paths)[*n] = NULL;
	}
	gitrepo_names_free(names);
	return rc;
}

int rotate_abandon(struct rotate_back_result *res, struct gitrepo *repo, const char *env, struct diags *d,
		   struct err *e)
{
	struct state st;
	struct state_src src;
	struct gitrepo_head head;
	struct gitrepo_file *del = NULL;
	struct buf msg = BUF_INIT;
	char base[160], dir[160], tip[41], **paths = NULL;
	size_t n = 0, cap = 0, i;
	int gen, rc;

	memset(res, 0, sizeof(*res));
	if ((rc = state_load_head(&st, &src, &head, repo, env, "abandon the rotation from", d, e)) < 0)
		return rc;
	res->from = *st.rotation;
	gen = res->from.target;
	if (!gen) {
		rc = err_set(e, ROTOR_ESTATE, "%s is stable at generation %d: no rotation to abandon (rotor rollback "
			     "moves one phase back)", env, res->from.generation);
		goto out;
	}
	res->to.generation = res->from.generation;
	res->to.target = 0;
	res->to.phase = SPEC_PHASE_STABLE;
	res->abandoned = gen;
	snprintf(base, sizeof(base), "rotor/rotate/%s/gen-%04d-abandon", env, gen);
	if ((rc = fresh_branch(res->branch, sizeof(res->branch), res->spent, sizeof(res->spent), repo, base,
			       head.commit, "rotate abandon", e)) < 0)
		goto out;
	snprintf(dir, sizeof(dir), "envs/%s/generations/%04d", env, gen);
	if ((rc = list_files(&paths, &n, &cap, repo, head.commit, dir, e)) < 0)
		goto out;
	if (n && !(del = calloc(n, sizeof(*del)))) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < n; i++)
		del[i].path = paths[i];
	res->nremoved = n;

	/* The material first: a branch at HEAD, the last commit that has it. */
	snprintf(res->kept, sizeof(res->kept), "rotor/rolled-back/%s/gen-%04d", env, gen);
	rc = gitrepo_branch_create(repo, res->kept, head.commit, e);
	if (rc == ROTOR_EEXISTS) {
		err_clear(e);
		if ((rc = gitrepo_branch_tip(tip, repo, res->kept, e)) < 0)
			goto out;
		memcpy(res->kept_commit, tip, sizeof(res->kept_commit));
		res->kept_existed = 1;
	} else if (rc < 0) {
		goto out;
	} else {
		memcpy(res->kept_commit, head.commit, sizeof(res->kept_commit));
	}
	if (buf_printf(&msg, "rotor: abandon the rotation of %s to generation %d\n\n"
			     "rotation.yaml: %s (generation %d -> %d) -> stable at generation %d.\n"
			     "Generation %04d (%zu files) leaves the tree; it is kept on %s.\n"
			     "Apply it with rotor apply: the hosts walk back step by step, gated on live state.\n\n"
			     "Rotor-Env: %s\nRotor-Generation: %d\n", env, gen, spec_phase_name(res->from.phase),
		       res->from.generation, gen, res->to.generation, gen, n, res->kept, env, gen) < 0 || msg.err) {
		rc = err_nomem(e);
		goto out;
	}
	rc = commit_rotation(res->commit, repo, head.commit, env, &res->to, del, n, res->branch, buf_cstr(&msg), e);
out:
	free(del);
	if (paths)
		for (i = 0; i < n; i++)
			free(paths[i]);
	free(paths);
	buf_release(&msg);
	state_release(&st);
	return rc;
}
