/*
 * gitrepo.h -- the state repository through libgit2.
 *
 * gitops owns every libgit2 call; nothing else in rotor includes git2.h.
 * It never touches SSH or OpenSSL.
 *
 * Ownership: gitrepo_open() returns a handle freed by gitrepo_free().
 * Buffers and arrays filled by these calls belong to the caller.
 * Commit ids are passed as 40-character hex strings (NUL-terminated).
 *
 * Errors: 0 on success; ROTOR_ENOTFOUND when a ref, commit or path does
 * not exist (including an unborn HEAD); ROTOR_EEXISTS when a branch to
 * create exists; ROTOR_ETOOBIG when a blob exceeds the cap; ROTOR_ESTATE
 * for a repository state that forbids the action; ROTOR_ERROR otherwise,
 * with the libgit2 message translated into e->msg.
 *
 * No function here writes the work tree, the index or HEAD.
 */
#ifndef ROTOR_GITREPO_H
#define ROTOR_GITREPO_H

#include <stddef.h>

#include "../common/buf.h"
#include "../common/err.h"

struct gitrepo;

/* Call once from main before anything else, and the shutdown at exit. */
int gitrepo_global_init(struct err *e);
void gitrepo_global_shutdown(void);

/*
 * Open the repository at path, or the one containing path (searching up
 * like git does) when search is 1.  A bare repository is refused.
 */
int gitrepo_open(struct gitrepo **out, const char *path, int search, struct err *e);
void gitrepo_free(struct gitrepo *r);
const char *gitrepo_workdir(const struct gitrepo *r);   /* with trailing '/' */

/* Resolve a revision (HEAD, a branch, a tag, a hex id) to a commit id. */
int gitrepo_resolve(struct gitrepo *r, const char *rev, char out[41], struct err *e);

/* Read the blob at path in commit; cap its size at max bytes. */
int gitrepo_read(struct buf *out, struct gitrepo *r, const char *commit,
		 const char *path, size_t max, struct err *e);

/*
 * List the names of the entries of directory dir in commit, sorted
 * (byte order).  *names is a NULL-terminated array freed by
 * gitrepo_names_free().  ROTOR_ENOTFOUND when dir does not exist.
 */
int gitrepo_list(char ***names, size_t *n, struct gitrepo *r, const char *commit,
		 const char *dir, struct err *e);
void gitrepo_names_free(char **names);

struct gitrepo_head {
	int unborn;           /* no commits yet */
	int detached;
	char branch[256];     /* short name, e.g. "main", when not detached */
	char commit[41];      /* "" when unborn */
};
int gitrepo_head(struct gitrepo_head *out, struct gitrepo *r, struct err *e);

/*
 * Is any tracked file under one of prefixes ("rotor.yaml", "envs/poc/")
 * modified in the index or the work tree relative to HEAD?  Returns 0
 * with *dirty = 0/1 and the first such path in first_path (may be NULL).
 * Untracked files are not counted.
 */
int gitrepo_dirty(int *dirty, char *first_path, size_t first_path_len,
		  struct gitrepo *r, const char *const *prefixes, size_t nprefixes,
		  struct err *e);

int gitrepo_branch_exists(int *exists, struct gitrepo *r, const char *branch, struct err *e);

/* A file to write in a commit; data NULL means delete path. */
struct gitrepo_file {
	const char *path;     /* relative, '/'-separated, validated: no "..", no leading '/' */
	const char *data;
	size_t len;
};

/*
 * Make ONE commit whose parent is base (a commit id) and whose tree is
 * base's tree with files upserted/removed, from in-memory blobs, and
 * create branch refs/heads/<branch> pointing at it.  Fails with
 * ROTOR_EEXISTS if the branch exists (created with compare-and-swap, so
 * a concurrent creator loses cleanly).  Author and committer come from
 * the repository's git config (user.name/user.email), falling back to
 * "rotor <rotor@localhost>".  out receives the new commit id.
 */
int gitrepo_commit_branch(char out[41], struct gitrepo *r, const char *base,
			  const struct gitrepo_file *files, size_t nfiles,
			  const char *branch, const char *message, struct err *e);

#endif
