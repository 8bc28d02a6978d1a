/*
 * import.h -- adopt a fleet that already has certificates (made by hand
 * or another tool) as generation 1 of an env without generations.
 *
 * Observes every host, collects the leaf of every role and every CA the
 * files hold, and requires one consistent chain: one root, one server CA
 * and one client CA under it, every leaf verified (real OpenSSL
 * verification with the right purpose), one certificate per identity,
 * client CNs equal to their database users.  Then it commits the
 * certificates (never keys: rotor does not rewrite imported keys), a
 * manifest with imported: true and rotation.yaml generation 1, stable,
 * as one commit on a new branch rotor/import/<env>, from HEAD, leaving
 * the work tree, the index and HEAD alone.  Anything inconsistent is
 * refused with every reason, and nothing is written.  Nothing here
 * prints.
 *
 * Ownership: struct import_result owns its lines and manifest
 * (import_result_release(), also after a failure); the repository is
 * borrowed.
 *
 * Errors: the env does not load at HEAD: ROTOR_EINVALID with the
 * problems in d (state_load_head(): HEAD detached, uncommitted changes:
 * ROTOR_ESTATE); the env already has generations, the branch exists, no
 * hosts: ROTOR_ESTATE; the fleet holds no consistent chain:
 * ROTOR_EINVALID with res->problems > 0 and every reason in res->lines;
 * other codes (observe, git, memory) with e set.  res->lines may hold
 * lines (problems, the roots found, notes) whatever the outcome.
 */
#ifndef ROTOR_IMPORT_H
#define ROTOR_IMPORT_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "gitops/gitrepo.h"
#include "reconcile/spec/spec.h"

struct import_opts {
	const char *env;
};

struct import_result {
	/*
	 * One line per reason to refuse, detail or note, each ending in
	 * '\n', in the order found: for the operator, before the outcome.
	 */
	struct buf lines;
	size_t problems;            /* reasons to refuse among lines; 0 when imported */
	size_t nhosts;              /* hosts observed */
	struct manifest *manifest;  /* generation 1 as committed (when import_env() returned 0) */
	char branch[128];           /* rotor/import/<env> */
	char commit[41];            /* the commit on branch, "" when none was made */
	char head_branch[256];      /* the branch HEAD is on, untouched */
};

int import_env(struct import_result *res, struct gitrepo *repo, const struct import_opts *o,
	       struct diags *d, struct err *e);
void import_result_release(struct import_result *res);

#endif
