/*
 * githistory.h -- reading the history of the state repository: what a
 * directory held in earlier commits, whether one commit is an ancestor
 * of another, a branch's tip, and a branch created at an existing commit.
 *
 * Rotor keeps recognising every generation it ever committed, also
 * after a `git revert` or `rotor rotate abandon` took it out of the
 * tree: its material is still in the history.  Nothing here writes the
 * work tree, the index or HEAD.
 *
 * Ownership: arrays filled here belong to the caller (free with the
 * matching _free()).  Errors: as gitrepo.h (ROTOR_ENOTFOUND for a
 * missing branch or commit, ROTOR_EEXISTS for a branch to create that
 * exists, ROTOR_EINVALID for bad names and ids, ROTOR_ERROR otherwise).
 */
#ifndef ROTOR_GITHISTORY_H
#define ROTOR_GITHISTORY_H

#include <stddef.h>

#include "common/err.h"
#include "gitops/gitrepo.h"

struct gitrepo_past_entry {
	char *name;             /* an entry (file or directory) of dir */
	char commit[41];        /* the newest commit (in commit-time order) whose dir held it */
};

/*
 * Every entry name that directory dir held in commit or any of its
 * ancestors, each with the newest commit that held it; sorted by name.
 * A dir missing everywhere gives none (0 with *n 0).  At most max
 * entries are collected (ROTOR_ETOOBIG beyond).
 */
int gitrepo_dir_history(struct gitrepo_past_entry **out, size_t *n, struct gitrepo *r, const char *commit,
			const char *dir, size_t max, struct err *e);
void gitrepo_past_free(struct gitrepo_past_entry *v, size_t n);

/*
 * Call each(payload, id, e) for commit and then its ancestors, newest
 * first (commit time).  each returns 0 to go on, 1 to stop, or a
 * negative code (with e set), which ends the walk and is returned.
 */
int gitrepo_walk(struct gitrepo *r, const char *commit,
		 int (*each)(void *payload, const char *id, struct err *e), void *payload, struct err *e);

/* *yes = 1 when ancestor is descendant or one of its ancestors. */
int gitrepo_is_ancestor(int *yes, struct gitrepo *r, const char *ancestor, const char *descendant,
			struct err *e);

/* The commit a branch points at; ROTOR_ENOTFOUND when there is no such branch. */
int gitrepo_branch_tip(char out[41], struct gitrepo *r, const char *branch, struct err *e);

/*
 * Create branch refs/heads/<branch> at the existing commit, create-only
 * with compare-and-swap (ROTOR_EEXISTS when it exists or a ref blocks
 * its name).  Creating the unborn branch HEAD names is refused
 * (ROTOR_ESTATE).
 */
int gitrepo_branch_create(struct gitrepo *r, const char *branch, const char *commit, struct err *e);

#endif
