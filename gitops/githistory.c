/*
 * githistory.c -- what earlier commits held, ancestry, branch tips and
 * branches at existing commits (see githistory.h).
 */
#include "gitops/githistory.h"
#include "gitops/gitrepo_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int past_find(const struct gitrepo_past_entry *v, size_t n, const char *name)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i].name, name) == 0)
			return 1;
	return 0;
}

static int cmp_past(const void *a, const void *b)
{
	return strcmp(((const struct gitrepo_past_entry *)a)->name, ((const struct gitrepo_past_entry *)b)->name);
}

void gitrepo_past_free(struct gitrepo_past_entry *v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i].name);
	free(v);
}

/* The tree at dir in commit c, or NULL (0) when dir is not a directory there. */
static int dir_tree(git_tree **out, git_repository *repo, git_commit *c, const char *dir, struct err *e)
{
	git_tree *root = NULL;
	git_tree_entry *ent = NULL;
	int rc;

	*out = NULL;
	if ((rc = git_commit_tree(&root, c)) < 0)
		return gitrepo__fail(e, rc, ROTOR_ERROR, "cannot read the tree of a commit");
	rc = git_tree_entry_bypath(&ent, root, dir);
	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		rc = 0;
	} else if (rc < 0) {
		rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot look up %s", dir);
	} else if (git_tree_entry_type(ent) == GIT_OBJECT_TREE &&
		   (rc = git_tree_lookup(out, repo, git_tree_entry_id(ent))) < 0) {
		rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot read %s", dir);
	}
	git_tree_entry_free(ent);
	git_tree_free(root);
	return rc < 0 ? rc : 0;
}

int gitrepo_dir_history(struct gitrepo_past_entry **out, size_t *n, struct gitrepo *r, const char *commit,
			const char *dir, size_t max, struct err *e)
{
	git_repository *repo = gitrepo__repo(r);
	git_revwalk *walk = NULL;
	git_commit *c = NULL;
	git_tree *t = NULL;
	git_oid oid, last;
	struct gitrepo_past_entry *v = NULL, *nv;
	size_t cnt = 0, cap = 0, i;
	int rc, have_last = 0;

	*out = NULL;
	*n = 0;
	if ((rc = gitrepo_dir_valid(dir, e)) < 0 || (rc = gitrepo__parse_id(&oid, commit, e)) < 0)
		return rc;
	if ((rc = git_revwalk_new(&walk, repo)) < 0 || (rc = git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME)) < 0 ||
	    (rc = git_revwalk_push(walk, &oid)) < 0) {
		rc = gitrepo__fail(e, rc, 0, "cannot walk the history of %.12s", commit);
		goto out;
	}
	while ((rc = git_revwalk_next(&oid, walk)) == 0) {
		size_t k, ne;

		git_commit_free(c);
		c = NULL;
		if ((rc = git_commit_lookup(&c, repo, &oid)) < 0) {
			rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot read a commit in the history of %.12s", commit);
			goto out;
		}
		git_tree_free(t);
		if ((rc = dir_tree(&t, repo, c, dir, e)) < 0)
			goto out;
		if (!t)
			continue;
		/* Most commits leave the directory alone: one look per distinct tree in a row. */
		if (have_last && git_oid_equal(&last, git_tree_id(t)))
			continue;
		git_oid_cpy(&last, git_tree_id(t));
		have_last = 1;
		ne = git_tree_entrycount(t);
		for (k = 0; k < ne; k++) {
			const char *name = git_tree_entry_name(git_tree_entry_byindex(t, k));

			if (past_find(v, cnt, name))
				continue;
			if (cnt >= max) {
				rc = err_set(e, ROTOR_ETOOBIG, "%s held more than %zu entries in its history", dir, max);
				goto out;
			}
			if (cnt == cap) {
				cap = cap ? cap * 2 : 16;
				if (!(nv = realloc(v, cap * sizeof(*nv)))) {
					rc = err_nomem(e);
					goto out;
				}
				v = nv;
			}
			if (!(v[cnt].name = strdup(name))) {
				rc = err_nomem(e);
				goto out;
			}
			git_oid_tostr(v[cnt].commit, sizeof(v[cnt].commit), &oid);
			cnt++;
		}
	}
	if (rc != GIT_ITEROVER) {
		rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot walk the history of %.12s", commit);
		goto out;
	}
	git_error_clear();
	if (cnt)
		qsort(v, cnt, sizeof(*v), cmp_past);
	*out = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
	rc = 0;
out:
	for (i = 0; i < cnt; i++)
		free(v[i].name);
	free(v);
	git_tree_free(t);
	git_commit_free(c);
	git_revwalk_free(walk);
	return rc;
}

int gitrepo_walk(struct gitrepo *r, const char *commit,
		 int (*each)(void *payload, const char *id, struct err *e), void *payload, struct err *e)
{
	git_revwalk *walk = NULL;
	git_oid oid;
	char id[41];
	int rc;

	if ((rc = gitrepo__parse_id(&oid, commit, e)) < 0)
		return rc;
	if ((rc = git_revwalk_new(&walk, gitrepo__repo(r))) < 0 || (rc = git_revwalk_sorting(walk, GIT_SORT_TOPOLOGICAL | GIT_SORT_TIME)) < 0 ||
	    (rc = git_revwalk_push(walk, &oid)) < 0) {
		rc = gitrepo__fail(e, rc, 0, "cannot walk the history of %.12s", commit);
		goto out;
	}
	while ((rc = git_revwalk_next(&oid, walk)) == 0) {
		git_oid_tostr(id, sizeof(id), &oid);
		if ((rc = each(payload, id, e)) != 0)
			break;
	}
	if (rc == GIT_ITEROVER || rc == 1) {
		git_error_clear();
		rc = 0;
	} else if (rc < 0 && !e->code) {
		rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot walk the history of %.12s", commit);
	}
out:
	git_revwalk_free(walk);
	return rc;
}

int gitrepo_is_ancestor(int *yes, struct gitrepo *r, const char *ancestor, const char *descendant,
			struct err *e)
{
	git_oid a, d;
	int rc;

	*yes = 0;
	if ((rc = gitrepo__parse_id(&a, ancestor, e)) < 0 || (rc = gitrepo__parse_id(&d, descendant, e)) < 0)
		return rc;
	if (git_oid_equal(&a, &d)) {
		*yes = 1;
		return 0;
	}
	rc = git_graph_descendant_of(gitrepo__repo(r), &d, &a);
	if (rc < 0)
		return gitrepo__fail(e, rc, 0, "cannot tell whether %.12s is an ancestor of %.12s", ancestor, descendant);
	*yes = rc == 1;
	return 0;
}

int gitrepo_branch_tip(char out[41], struct gitrepo *r, const char *branch, struct err *e)
{
	char ref[GITREPO_REFNAME_MAX];
	git_oid oid;
	int rc;

	out[0] = '\0';
	if ((rc = gitrepo__branch_refname(ref, sizeof(ref), branch, e)) < 0)
		return rc;
	rc = git_reference_name_to_id(&oid, gitrepo__repo(r), ref);
	if (rc == GIT_ENOTFOUND)
		return gitrepo__fail(e, rc, ROTOR_ENOTFOUND, "no branch %s", branch);
	if (rc < 0)
		return gitrepo__fail(e, rc, ROTOR_ERROR, "cannot read branch %s", branch);
	git_oid_tostr(out, 41, &oid);
	return 0;
}

int gitrepo_branch_create(struct gitrepo *r, const char *branch, const char *commit, struct err *e)
{
	char ref[GITREPO_REFNAME_MAX], logmsg[96];
	git_reference *newref = NULL;
	git_commit *c = NULL;
	git_oid oid, none;
	int rc, is_head;

	if ((rc = gitrepo__branch_refname(ref, sizeof(ref), branch, e)) < 0 ||
	    (rc = gitrepo__parse_id(&oid, commit, e)) < 0)
		return rc;
	if ((rc = git_commit_lookup(&c, gitrepo__repo(r), &oid)) < 0)
		return gitrepo__fail(e, rc, rc == GIT_ENOTFOUND ? ROTOR_ENOTFOUND : ROTOR_ERROR, "commit %.12s", commit);
	git_commit_free(c);
	if ((rc = gitrepo__head_names(&is_head, r, ref, e)) < 0)
		return rc;
	if (is_head)
		return err_set(e, ROTOR_ESTATE, "branch %s is HEAD's unborn branch; creating it would move HEAD", branch);
	/* force 1 with a zero expected id: "must not exist", checked under <ref>.lock (as gitrepo_commit_branch). */
	memset(&none, 0, sizeof(none));
	snprintf(logmsg, sizeof(logmsg), "branch: created by rotor at %.12s", commit);
	rc = git_reference_create_matching(&newref, gitrepo__repo(r), ref, &oid, 1, &none, logmsg);
	git_reference_free(newref);
	if (rc == GIT_EEXISTS || rc == GIT_EMODIFIED || rc == GIT_ELOCKED || rc == GIT_EDIRECTORY)
		return gitrepo__fail(e, rc, ROTOR_EEXISTS, "cannot create branch %s", branch);
	if (rc < 0)
		return gitrepo__fail(e, rc, ROTOR_ERROR, "cannot create branch %s", branch);
	return 0;
}
