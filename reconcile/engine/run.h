/*
 * run.h -- one env's reconcile run: load the desired state at a commit,
 * observe every host, plan.  plan, drift, apply and import all start
 * here; apply repeats the observe and plan after every step (the gate).
 *
 * Ownership: struct env_run owns everything in it (env_run_release());
 * the repository is borrowed.  Errors: as state.h (ROTOR_EINVALID with
 * the problems in d) and observe.h; an unreachable host is a finding in
 * the plan, not an error.  Nothing here prints.
 */
#ifndef ROTOR_RUN_H
#define ROTOR_RUN_H

#include <stddef.h>

#include "common/err.h"
#include "gitops/gitrepo.h"
#include "reconcile/engine/observe.h"
#include "reconcile/engine/plan.h"
#include "reconcile/engine/state.h"

struct env_run {
	struct state st;
	struct state_src src;
	struct known_set known;
	struct material_set material;
	struct observe_paths paths;
	struct observe_opts oo;
	struct obs_host *hosts;
	size_t nhosts;
	struct plan plan;
};

/* What env_run_load() reads beyond the state files. */
enum env_run_load {
	RUN_STATE = 0,          /* state and manifests: enough to observe */
	RUN_CERTS = 1,          /* and every generation's certificates: enough to plan */
	RUN_KEYS = 2            /* and the encrypted keys: enough to apply */
};

/* Load the env at ref (default HEAD) of repo, and what `what` asks for. */
int env_run_load(struct env_run *r, struct gitrepo *repo, const char *env, const char *ref,
		 enum env_run_load what, struct diags *d, struct err *e);
/* Observe every host (again), without planning. */
int env_run_observe(struct env_run *r, struct err *e);
/* Observe every host (again) and plan from what it has now (needs RUN_CERTS). */
int env_run_plan(struct env_run *r, int no_path, int replace_unknown, struct err *e);
void env_run_release(struct env_run *r);

/* What drift reports beyond the plan: one finding per certificate or key file. */
enum drift_kind { DRIFT_UNKNOWN_CERT, DRIFT_EXPIRING, DRIFT_KEY_MISMATCH };

struct drift_item {
	enum drift_kind kind;
	const struct obs_host *host;
	const struct obs_file *file;
	const struct obs_cert *cert;   /* NULL for DRIFT_KEY_MISMATCH */
	int renew_before_days;
};

struct drift_counts {
	size_t unknown, expiring, keys_not_matching;
};

/*
 * Count the drift findings of the last observe: certificates no
 * generation knows, certificates expiring within chain.yaml's
 * renew_before, key files that do not match their leaf.  each (may be
 * NULL) is called for every finding, in host and file order.
 */
void env_run_drift(const struct env_run *r, struct drift_counts *c,
		   void (*each)(void *payload, const struct drift_item *it), void *payload);

#endif
