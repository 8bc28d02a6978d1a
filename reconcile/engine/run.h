/*
 * run.h -- one env's reconcile run: load the desired state at a commit,
 * observe every host, plan.  plan, drift, apply and import all start
 * here; apply repeats the observe and plan after every step (the gate).
 *
 * Ownership: struct env_run owns everything in it (env_run_release());
 * the repository is borrowed.  That includes the SSH sessions kept per
 * host when the caller set r->oo.conns (observe_sessions_keep(): apply
 * does, so that one session per host serves its observes and writes):
 * env_run_release() closes them.  Without it every observe opens and
 * closes its own.  Errors: as state.h (ROTOR_EINVALID with
 * the problems in d) and observe.h; an unreachable host is a finding in
 * the plan, not an error.  Nothing here prints.
 */
#ifndef ROTOR_RUN_H
#define ROTOR_RUN_H

#include <stddef.h>

#include "common/err.h"
#include "gitops/gitrepo.h"
#include "reconcile/engine/observe.h"
#include "reconcile/engine/origin.h"
#include "reconcile/engine/plan.h"
#include "reconcile/engine/state.h"
#include "reconcile/tls/probe.h"

/*
 * A server whose service presents another leaf than its files hold: an
 * apply stopped between renaming its files and reloading it, or someone
 * changed the files by hand.  It needs a reload, whatever the plan says.
 */
struct stale_service {
	size_t host, role;                 /* indices in hosts.yaml and the host's roles */
	char presents[PROBE_FP_LEN];       /* the leaf the service presents */
	char holds[PROBE_FP_LEN];          /* the leaf its files hold */
};

/* What one probed server role presented (env_run_find_stale()): what a saved plan records. */
struct served_leaf {
	size_t host, role;
	int port;
	char presents[PROBE_FP_LEN];       /* "" when it presented no leaf (no answer, no TLS) */
};

struct env_run {
	int no_probe;               /* set before env_run_plan(): do not probe services (--no-probe) */
	struct desired desired;     /* where the desired commit came from (origin_desired()); how/ref
	                               empty when the caller loaded a commit of its own */
	struct state st;
	struct state_src src;
	struct known_set known;
	struct material_set material;
	struct observe_paths paths;
	struct observe_opts oo;
	struct obs_host *hosts;
	size_t nhosts;
	struct plan plan;
	int probed;                 /* the services were probed by the last env_run_plan() */
	struct stale_service *stale; /* what they presented that their files do not hold */
	size_t nstale;
	struct served_leaf *served;  /* every server role probed, in host and role order */
	size_t nserved;
	struct probe_result *ext_now; /* env_run_probe_external(): one per external server, or NULL */
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
/*
 * Observe every host (again) and plan from what it has now (needs
 * RUN_CERTS); then, unless r->no_probe, probe every server role that
 * has a probe (env_run_find_stale()).
 */
int env_run_plan(struct env_run *r, int no_path, int replace_unknown, struct err *e);
/*
 * Probe, without a client certificate, what every reachable server role
 * with a probe presents, and compare it with the leaf its files hold
 * (as observed last): r->stale lists the services that present another
 * one.  A service that does not answer is not stale (its own probe fails
 * at apply).  Errors: only those that stop the run (memory).
 */
int env_run_find_stale(struct env_run *r, struct err *e);
void env_run_release(struct env_run *r);
/*
 * For drift: probe every external server of hosts.yaml with the clients'
 * bundle of the step the hosts are at (the external CAs hosts.yaml lists
 * included), also when no step changes the bundles; the answers go to
 * r->ext_now, one per external server.  Nothing when the live step is not
 * known or r->no_probe.  Errors: ROTOR_ENOMEM, and a probe that could not
 * start (tls/probe.h).
 */
int env_run_probe_external(struct env_run *r, struct err *e);

/* What drift reports beyond the plan: one finding per certificate, key file or stray file. */
enum drift_kind { DRIFT_UNKNOWN_CERT, DRIFT_EXPIRING, DRIFT_KEY_MISMATCH, DRIFT_STRAY,
		  DRIFT_EXTERNAL_EXPIRING /* an external CA of hosts.yaml (not retired), counted in expiring */,
		  DRIFT_CRL_EXPIRING,
		  DRIFT_EXTERNAL_SERVER /* an external server (env_run_probe_external()) that did not answer, presents
					   a chain the clients' bundle does not verify, or a certificate expiring
					   within renew_before */ };
struct ext_ca;
struct external_server;

struct drift_item {
	enum drift_kind kind;
	const struct obs_host *host;
	const struct obs_file *file;
	const struct obs_cert *cert;   /* NULL for DRIFT_KEY_MISMATCH and DRIFT_STRAY */
	const char *stray;             /* DRIFT_STRAY: its path (file is NULL then) */
	const struct ext_ca *ext;      /* DRIFT_EXTERNAL_EXPIRING: the CA (host and file are NULL then) */
	long long ext_days_left;       /* also DRIFT_EXTERNAL_SERVER: days until the earliest notAfter it sent */
	int renew_before_days;
	const struct external_server *server;   /* DRIFT_EXTERNAL_SERVER (host and file are NULL then) */
	const struct probe_result *answer;      /* ... its probe's answer */
};

struct drift_counts {
	size_t unknown, expiring, keys_not_matching, stale_services, stray_files;
	size_t crls_expiring;   /* crl files whose earliest nextUpdate is within renew_before */
	size_t external_servers; /* DRIFT_EXTERNAL_SERVER findings */
};

/*
 * Count the drift findings of the last observe: certificates no
 * generation knows, certificates expiring within chain.yaml's
 * renew_before (an external CA counted once, from the repository, not
 * per file that holds it), crl files whose earliest nextUpdate is within
 * renew_before (DRIFT_CRL_EXPIRING: file set, cert NULL; a CRL past its
 * nextUpdate makes PostgreSQL refuse every client of its CA), key files
 * that do not match their leaf, stray files
 * (temporary files; backups too while rotation.yaml names no target:
 * during a rotation they are kept for a rollback).  each (may be
 * NULL) is called for every finding, in host and file order.
 */
void env_run_drift(const struct env_run *r, struct drift_counts *c,
		   void (*each)(void *payload, const struct drift_item *it), void *payload);

#endif
