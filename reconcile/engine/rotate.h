/*
 * rotate.h -- the commits that drive a rotation, each on a new branch
 * for review, from HEAD, leaving the work tree, the index and HEAD alone.
 *
 * rotate_start() generates the next generation of an env's chain (keys
 * encrypted with the repository secret) and commits it with the updated
 * rotation.yaml as ONE commit on rotor/rotate/<env>/gen-NNNN.  Every
 * refusal happens before any key is generated, and nothing is written
 * until the single commit; the branch is created last, with
 * compare-and-swap, so an interrupted run leaves at most an unreachable
 * commit object behind.  rotate_next() commits rotation.yaml moved one
 * phase forward (trust -> servers -> clients -> stable at the target) on
 * rotor/rotate/<env>/gen-NNNN-<phase>.  rotate_rollback() commits
 * rotation.yaml one phase back (phase_back() in phase.h) on
 * rotor/rollback/<env>/gen-NNNN-<phase>.  rotate_abandon() commits
 * rotation.yaml back at the previous generation's stable with the target
 * generation's directory removed, on rotor/rotate/<env>/gen-NNNN-abandon,
 * after keeping that material on rotor/rolled-back/<env>/gen-NNNN (a
 * branch at HEAD).  A branch name that exists with its tip already in
 * HEAD's history (merged, perhaps reverted since) is spent: the commit
 * goes to NAME-2, NAME-3... and the result names the spent one; a branch
 * that exists unmerged waits for review (ROTOR_ESTATE).  New generation
 * numbers skip every number in HEAD's history (state_load_past()) and
 * every rolled-back branch.  Nothing here prints.
 *
 * Ownership: struct rotate_start_result owns its manifest and remote
 * (rotate_start_result_release(), also after a failure); the repository
 * is borrowed.  Secrets: the repository secret is read from the key
 * file, used to encrypt the new keys in memory only, and wiped.
 *
 * Errors: the env does not load at HEAD: ROTOR_EINVALID with the
 * problems in d (state_load_head(): HEAD detached, uncommitted changes:
 * ROTOR_ESTATE); a rotation in progress (start), nothing to move (next),
 * the branch exists, generation numbers used up: ROTOR_ESTATE; the
 * branch was created meanwhile by someone else: ROTOR_EEXISTS; a wrong
 * or missing secret: ROTOR_ESECRET; other codes (git, OpenSSL, memory)
 * with e set.  On any error nothing was committed.
 */
#ifndef ROTOR_ROTATE_H
#define ROTOR_ROTATE_H

#include <time.h>

#include "common/err.h"
#include "gitops/gitrepo.h"
#include "reconcile/spec/spec.h"

struct rotate_start_opts {
	const char *env;
	int threads;                /* key generation threads; 0: as many as CPUs */
};

struct rotate_start_result {
	int number;                 /* the new generation */
	struct rotation_spec rot;   /* rotation.yaml as committed */
	enum spec_key_type key;     /* chain.yaml's key type */
	struct manifest *manifest;  /* the new generation's */
	time_t now;                 /* when it was generated */
	char *remote;               /* rotor.yaml's git.remote, or NULL */
	char branch[160];           /* rotor/rotate/<env>/gen-NNNN */
	char commit[41];
	char spent[160];            /* a merged branch of that name passed over; "" when none */
	char head_branch[256];      /* the branch HEAD is on, untouched */
};

int rotate_start(struct rotate_start_result *res, struct gitrepo *repo, const struct rotate_start_opts *o,
		 struct diags *d, struct err *e);
void rotate_start_result_release(struct rotate_start_result *res);

struct rotate_next_result {
	struct rotation_spec from;  /* rotation.yaml at HEAD */
	struct rotation_spec to;    /* as committed */
	char branch[160];           /* rotor/rotate/<env>/gen-NNNN-<phase> */
	char commit[41];
	char spent[160];            /* a merged branch of that name passed over; "" when none */
};

int rotate_next(struct rotate_next_result *res, struct gitrepo *repo, const char *env, struct diags *d,
		struct err *e);

struct rotate_back_result {
	struct rotation_spec from;  /* rotation.yaml at HEAD */
	struct rotation_spec to;    /* as committed */
	char branch[160];           /* rollback: rotor/rollback/<env>/gen-NNNN-<phase>;
	                               abandon: rotor/rotate/<env>/gen-NNNN-abandon */
	char commit[41];
	char spent[160];            /* a merged branch of that name passed over; "" when none */
	/* abandon only */
	int abandoned;              /* the generation taken out of the tree */
	size_t nremoved;            /* its files */
	char kept[160];             /* rotor/rolled-back/<env>/gen-NNNN */
	char kept_commit[41];       /* where that branch points */
	int kept_existed;           /* it was there already (left as it was) */
};

/*
 * One phase back.  Errors as rotate_next(); nothing to roll back (stable
 * with no rotation to it in HEAD's history), or the generation to go back
 * to no longer in the tree: ROTOR_ESTATE.
 */
int rotate_rollback(struct rotate_back_result *res, struct gitrepo *repo, const char *env, struct diags *d,
		    struct err *e);
/* Back to the previous generation's stable, the target's material out of the tree.  No rotation: ROTOR_ESTATE. */
int rotate_abandon(struct rotate_back_result *res, struct gitrepo *repo, const char *env, struct diags *d,
		   struct err *e);

/* "EC P-256", "RSA 2048", "Ed25519"... */
const char *rotate_key_type_name(enum spec_key_type k);

#endif
