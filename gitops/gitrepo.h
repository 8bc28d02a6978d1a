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
 * create exists; ROTOR_ETOOBIG when a blob exceeds the cap; ROTOR_EINVALID
 * for a bad path, branch name, revision or commit id (checked before
 * libgit2 is asked) and for a path of the wrong kind (a directory where a
 * file is wanted); ROTOR_ESTATE for a repository state that forbids the
 * action (bare, owned by another user, locked ref); ROTOR_ERROR
 * otherwise, with the libgit2 message translated into e->msg.
 *
 * No function here writes the work tree, the index or HEAD.
 */
#ifndef ROTOR_GITREPO_H
#define ROTOR_GITREPO_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"

struct gitrepo;

/*
 * Repository-relative paths, as every function here takes them:
 * '/'-separated, not absolute, no empty, "." or ".." components, no
 * ".git" component, no control characters or backslashes, valid UTF-8,
 * at most 4096 bytes.  gitrepo_dir_valid() also accepts "" (the root)
 * and one trailing '/'.  0 or ROTOR_EINVALID with the reason.
 */
int gitrepo_path_valid(const char *path, struct err *e);
int gitrepo_dir_valid(const char *dir, struct err *e);

/*
 * A branch short name ("rotor/rotate/poc/gen-2"): a valid ref name under
 * refs/heads/, not "HEAD", not starting with '-' or "refs/", at most 240
 * bytes.  0 or ROTOR_EINVALID.
 */
int gitrepo_branch_valid(const char *branch, struct err *e);

/* Call once from main before anything else, and the shutdown at exit. */
int gitrepo_global_init(struct err *e);
void gitrepo_global_shutdown(void);

/*
 * Open the repository at path, or the one containing path (searching up
 * like git does) when search is 1.  A bare repository is refused
 * (ROTOR_ESTATE); a directory outside any repository is ROTOR_ENOTFOUND
 * "not a git repository: PATH".
 */
int gitrepo_open(struct gitrepo **out, const char *path, int search, struct err *e);
void gitrepo_free(struct gitrepo *r);
const char *gitrepo_workdir(const struct gitrepo *r);   /* with trailing '/' */

/*
 * Resolve a revision (HEAD, a branch, a tag, a hex id, HEAD~1) to a
 * commit id, peeling tags.  An unborn HEAD is ROTOR_ENOTFOUND ("the
 * repository has no commits yet"); a revision naming a tree or blob is
 * ROTOR_EINVALID.
 */
int gitrepo_resolve(struct gitrepo *r, const char *rev, char out[41], struct err *e);

/*
 * Append the blob at path in commit (a 40-hex id) to out; cap its size
 * at max bytes (0: BUF_DEFAULT_MAX), checked from the object header
 * before the content is loaded.  A directory, submodule or symbolic link
 * at path is ROTOR_EINVALID.  On failure out is unchanged.
 */
int gitrepo_read(struct buf *out, struct gitrepo *r, const char *commit,
		 const char *path, size_t max, struct err *e);

/*
 * List the names of the entries of directory dir in commit, sorted
 * (byte order).  *names is a NULL-terminated array freed by
 * gitrepo_names_free() (which accepts NULL).  dir "" is the root; a
 * trailing '/' is allowed.  n may be NULL.  ROTOR_ENOTFOUND when dir does
 * not exist, ROTOR_EINVALID when it is a file.
 */
int gitrepo_list(char ***names, size_t *n, struct gitrepo *r, const char *commit,
		 const char *dir, struct err *e);
void gitrepo_names_free(char **names);

struct gitrepo_head {
	int unborn;           /* no commits yet */
	int detached;
	char branch[256];     /* short name, e.g. "main", when not detached
	                         (also when unborn: the branch HEAD names) */
	char commit[41];      /* "" when unborn */
};
int gitrepo_head(struct gitrepo_head *out, struct gitrepo *r, struct err *e);

/*
 * Is any tracked file under one of prefixes ("rotor.yaml", "envs/poc/")
 * modified in the index or the work tree relative to HEAD?  Returns 0
 * with *dirty = 0/1 and the first such path in first_path (may be NULL).
 * Untracked and ignored files are not counted.  Prefixes are literal
 * paths (no globs): "a/b" covers "a/b" and "a/b/...", "a/" covers "a/...".
 * No prefixes (nprefixes 0) means the whole repository.
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
 *
 * Checked before anything is written: the branch name, every path
 * (ROTOR_EINVALID), no path given twice or inside another, a non-empty
 * message; against base: an upsert must not replace a directory or
 * submodule nor go below a file, a delete must name an existing file
 * (ROTOR_ENOTFOUND otherwise).  Creating the unborn branch HEAD names is
 * refused (ROTOR_ESTATE): it would move HEAD.  Blobs get mode 100644.
 * A commit writing 100 or more blobs (git's transfer.unpackLimit) puts
 * its new objects into one pack with its index, fewer go in loose.
 */
int gitrepo_commit_branch(char out[41], struct gitrepo *r, const char *base,
			  const struct gitrepo_file *files, size_t nfiles,
			  const char *branch, const char *message, struct err *e);

#endif
