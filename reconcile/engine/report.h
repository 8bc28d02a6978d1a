/*
 * report.h -- results as JSON documents: what `observe --json`, `plan
 * --json`, `drift --json`, `chain show --json`, `validate --json`, `log
 * --json`, `apply --json`, `handoff --json` and `client ... --json` print and what apply commits on
 * rotor/status/<env> (observed.json, applied.json).  The shapes are
 * schemas/observe.json, plan.json, chain-show.json, validate.json,
 * log.json, apply.json, handoff.json, client.json and applied.json; tests parse every document back.  Built with jansson (common/json.h).
 *
 * Each function appends one document, ending in a newline, to out and
 * returns 0, or ROTOR_ENOMEM / ROTOR_ETOOBIG with out left holding a
 * partial document the caller must not use.
 */
#ifndef ROTOR_REPORT_H
#define ROTOR_REPORT_H

#include <stddef.h>

#include "common/buf.h"
#include "common/json.h"
#include "gitops/gitstatus.h"
#include "reconcile/engine/chain.h"
#include "reconcile/engine/client.h"
#include "reconcile/engine/handoff.h"
#include "reconcile/engine/run.h"

/* The observed hosts of env st at commit. */
int observe_json(struct buf *out, const struct obs_host *h, size_t n, const struct state *st, const char *commit);

/* The steps of r's plan as plan --json shows them (NULL: out of memory); a saved plan holds the same. */
json_t *plan_steps_json(const struct env_run *r);
/* Where the desired commit was read: {"ref": ..., "how": ...}, or null when d is NULL or names no ref. */
json_t *desired_from_json(const struct desired *d);

/* The plan of r; with dc (drift) also the drift counts. */
int plan_json(struct buf *out, const struct env_run *r, const struct drift_counts *dc);

/* Every generation of v, as schemas/chain-show.json describes (`chain show --json`). */
int chain_json(struct buf *out, const struct chain_view *v);

/* What an apply did with the *.rotor-bak files: its "backups" member. */
struct report_backups {
	size_t removed;             /* backups removed */
	size_t hosts;               /* hosts where some were removed */
	size_t failed_hosts;        /* hosts where removing them failed */
	int kept;                   /* 1: left in place for a rollback (not stable, or the run stopped) */
};

/*
 * applied.json on rotor/status/<env> (schemas/applied.json): the desired
 * commit, where it was read (from; NULL: null), the steps run (borrowed),
 * the outcome, the backups.
 */
int applied_json(struct buf *out, const char *desired, const struct desired *from, json_t *steps, const char *outcome,
		 const struct report_backups *b);

/*
 * `apply --json` (schemas/apply.json): the same document as applied.json
 * and status_commit, the commit recorded on rotor/status/<env> (NULL or "":
 * none, null).
 */
int apply_json(struct buf *out, const char *desired, const struct desired *from, json_t *steps, const char *outcome,
	       const struct report_backups *b, const char *status_commit);

/*
 * `validate --json` (schemas/validate.json): the commit validated (NULL:
 * the work tree), the envs found valid and every diagnostic of d (may be NULL).
 */
int validate_json(struct buf *out, const char *commit, char *const *envs, size_t nenvs, const struct diags *d);

/*
 * `log --json` (schemas/log.json): where the history was read (read:
 * "fetched", "not-fetched" or "local"), env's lock (NULL: not locked or
 * not known) and its status history v, newest first.
 */
int log_json(struct buf *out, const char *env, const char *read, const struct gitstatus_lock *lock,
	     const struct gitstatus_entry *v, size_t n);

/*
 * `handoff --json` (schemas/handoff.json): what handoff_write() wrote for
 * client into out_dir, for env at the desired commit read from from
 * (NULL: null), and the step choice ("next", "current", "target").
 */
int handoff_json(struct buf *out, const char *env, const char *client, const char *out_dir, const char *choice,
		 const struct desired *from, const struct handoff_result *res);

/*
 * `client add|remove|crl --json` (schemas/client.json): action is "add",
 * "remove" or "crl"; name the client (NULL for crl).
 */
int client_json(struct buf *out, const char *env, const char *action, const char *name,
		const struct client_result *res);

#endif
