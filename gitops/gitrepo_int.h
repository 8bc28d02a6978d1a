/*
 * gitrepo_int.h -- gitrepo.c's helpers for the other gitops files only.
 *
 * Nothing outside gitops/ includes this header (it pulls in git2.h).
 * The functions are thin exported wrappers around gitrepo.c's own
 * static helpers, so every gitops file validates names, translates
 * libgit2 errors and signs commits the same way.
 */
#ifndef ROTOR_GITREPO_INT_H
#define ROTOR_GITREPO_INT_H

#include <stddef.h>

#include <git2.h>

#include "gitops/gitrepo.h"

/* Room for "refs/heads/" plus the longest branch gitrepo accepts. */
#define GITREPO_REFNAME_MAX 256

/* The libgit2 repository behind a handle (owned by the handle). */
git_repository *gitrepo__repo(struct gitrepo *r);

/*
 * Fill e with "<context>: <libgit2 message>" and clear libgit2's error.
 * code 0 derives the rotor code from gcode (ENOTFOUND, EEXISTS, ...).
 * Returns the rotor code.
 */
int gitrepo__fail(struct err *e, int gcode, int code, const char *fmt, ...) ROTOR_PRINTF(4, 5);

/* s for an error message: cut to fit len, non-printable ASCII as '?'. */
const char *gitrepo__shown(char *out, size_t len, const char *s);

/* The configured identity, or "rotor <rotor@localhost>". */
int gitrepo__signature(git_signature **out, struct gitrepo *r, struct err *e);

/* Exactly 40 hex digits to an oid; ROTOR_EINVALID otherwise. */
int gitrepo__parse_id(git_oid *oid, const char *hex, struct err *e);

/* "refs/heads/<branch>" into out (at least GITREPO_REFNAME_MAX) after gitrepo_branch_valid's checks. */
int gitrepo__branch_refname(char *out, size_t len, const char *branch, struct err *e);

/* Files of one commit: valid paths, none twice, none inside another. */
int gitrepo__check_files(const struct gitrepo_file *files, size_t nfiles, struct err *e);

/* *yes = 1 when HEAD is a symbolic ref to refname (attached, born or not). */
int gitrepo__head_names(int *yes, struct gitrepo *r, const char *refname, struct err *e);

#endif
