/*
 * trust.h -- certificates the env does not own: the external CAs of
 * hosts.yaml (`external_cas:`, PEM files under envs/<env>/trust/) and
 * the external servers our clients reach (`external_servers:`).
 *
 * An external CA is in the trust bundles its entry names at every step
 * of every rotation, after the env's own generations, newest (latest
 * notBefore) first, until its entry says `retired: true` or is removed.
 * Adding or retiring one changes bundles only: the plan's first step
 * shows the trust files that change.  Observe knows their fingerprints
 * (generation OBS_GEN_EXTERNAL), so a bundle holding them still fits its
 * step.  Retiring is refused while an external server presents a chain
 * that the new bundles do not verify: env_run_plan() probes every
 * external server with the client bundles of each state of each step
 * that changes them and names the server (a broken pair; a server that
 * does not answer is one only when the step retires an external CA).
 *
 * Ownership: trust_load() fills st->ext (released by trust_release(),
 * which state_release() calls).  Errors: problems with the files are
 * diagnostics at hosts.yaml's `file:` line and column (ROTOR_EINVALID
 * from state_load()); ROTOR_ENOMEM and read failures otherwise.
 */
#ifndef ROTOR_TRUST_H
#define ROTOR_TRUST_H

#include <stddef.h>
#include <time.h>

#include "common/err.h"
#include "reconcile/engine/observe.h"
#include "reconcile/engine/plan.h"
#include "reconcile/engine/state.h"
#include "reconcile/spec/diag.h"

/* One external CA as committed, checked. */
struct ext_ca {
	size_t index;           /* in hosts.yaml's external_cas */
	char *file;             /* as hosts.yaml writes it: trust/NAME.pem */
	char *pem;              /* the one certificate, ending in a newline */
	char *fingerprint;      /* uppercase colon hex */
	char *subject;
	char *not_after;        /* RFC 3339 */
	long long not_before_t, not_after_t;
	unsigned sides;         /* as struct external_ca */
	int retired;
};

/*
 * Read and check every external CA file of st->hosts at src: a file
 * that is missing, holds no certificate or more than one, a private
 * key, a leaf (not a CA), a CA that has expired (unless retired), or
 * the same certificate as another entry is one diagnostic each.
 */
int trust_load(struct state *st, const struct state_src *src, time_t now, struct diags *d, struct err *e);
void trust_release(struct state *st);

/* The external CAs in bundles (not retired), newest first, into ms->ext. */
int trust_material(struct material_set *ms, const struct state *st, struct err *e);

/* Make every external CA's fingerprint known (generation OBS_GEN_EXTERNAL, role root, name its file). */
int trust_known(struct known_set *k, const struct state *st, struct err *e);

#endif
