/*
 * chain.h -- the generations committed for an env, as their certificate
 * files say: each file read and described (subject, issuer, validity,
 * fingerprint) and checked against its generation's manifest.
 *
 * Ownership: struct chain_view owns everything in it, the loaded state
 * included (chain_view_release(), also after a failure); the repository
 * is borrowed.  Errors: the env does not load: ROTOR_EINVALID with the
 * problems in d (as state.h); a bad ref: ROTOR_ENOTFOUND and the like;
 * out of memory: ROTOR_ENOMEM.  A certificate file that is missing,
 * unreadable or differs from its manifest is not an error: it is
 * reported in its struct chain_cert and counted in bad.  Nothing here
 * prints.
 */
#ifndef ROTOR_CHAIN_H
#define ROTOR_CHAIN_H

#include <stddef.h>

#include "common/err.h"
#include "gitops/gitrepo.h"
#include "reconcile/engine/state.h"

struct chain_cert {
	const struct manifest_cert *mc;   /* the manifest's entry (in view->st) */
	struct manifest_cert live;        /* described from the PEM file */
	int ok;                           /* file read and parsed */
	int matches;                      /* fingerprint equals the manifest's */
	long long days_left;
	char *error;                      /* why the file is not ok ("envs/...: ..."), or NULL */
};

struct chain_gen {
	const struct gen_info *gen;       /* in view->st */
	const char *status;               /* chain_gen_status() */
	struct chain_cert *certs;         /* one per manifest entry, in its order */
	size_t ncerts;
};

struct chain_view {
	struct state st;
	struct state_src src;
	struct chain_gen *gens;           /* one per generation, by number */
	size_t ngens;
	size_t bad;                       /* certificates not ok or not matching */
};

/* Load env at ref (NULL: HEAD) of repo and read every generation's certificates. */
int chain_view_load(struct chain_view *v, struct gitrepo *repo, const char *env, const char *ref,
		    struct diags *d, struct err *e);
void chain_view_release(struct chain_view *v);

/* A generation's place in rotation r: "in-service", "target", "retired" or "unused". */
const char *chain_gen_status(const struct rotation_spec *r, int n);

#endif
