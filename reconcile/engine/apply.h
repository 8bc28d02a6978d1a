/*
 * apply.h -- walk the plan step by step, host by host, verified.
 *
 * The env is locked (refs/rotor/lock/<env>, compare-and-swap; a lock
 * left by a dead rotor of this user on this machine is taken over) for
 * the whole run.  For each step: the gate is re-checked on freshly
 * observed state (every host fits the step before), then every host with
 * changes gets them: each file staged under a temporary name in its
 * directory (fsynced, mode and owner set), then one remote command keeps
 * the previous files as backups and renames all of them into place; then
 * the roles' reloads; then the probe (a server must present the expected
 * leaf, verify under the clients' bundle and accept the expected client
 * leaf).  A failure on a host restores its backups, reloads again and
 * stops the run after the step's other hosts finish; hosts already done
 * stay (the invariant makes that safe).  A service that presents another
 * leaf than its files hold (an apply killed between rename and reload) is
 * reloaded and checked before anything else.  A run that applied steps
 * and ends with every host at a stable step, rotation.yaml naming no
 * target, removes the backups (PATH.rotor-bak) of every managed file on
 * every host, one command per host: no retired key stays behind (a run
 * that finds the env in sync does the same where observe saw a backup).  During
 * a rotation they stay, for a rollback.  A host where the removal fails
 * is an alert, not a failed run.  Every run that took the
 * lock ends with a commit on rotor/status/<env>: observed.json (what the
 * hosts hold after the run) and applied.json (what was done); except a
 * run the operator declined (ui->confirm said no): nothing was done, the
 * lock is released and nothing is recorded.
 *
 * Output goes through struct apply_ui, so the caller decides how to show
 * it; nothing here prints.  Secrets: the repository secret is read from
 * the key file, used to decrypt keys in memory only, and wiped.
 *
 * Errors: apply_env() returns a negative ROTOR_* code only for failures
 * before the lock is taken (the state does not load: ROTOR_EINVALID with
 * the problems in d; a wrong or missing secret: ROTOR_ESECRET; the env is
 * locked by someone else: ROTOR_ESTATE naming the holder), with nothing
 * written anywhere.  Once the lock is held it returns 0 and the outcome
 * is in struct apply_result: status 0 when every host reached the
 * desired step (or was already there), 1 otherwise, with every failure
 * already given to ui->alert().
 */
#ifndef ROTOR_APPLY_H
#define ROTOR_APPLY_H

#include <stddef.h>

#include "common/err.h"
#include "gitops/gitrepo.h"
#include "reconcile/engine/run.h"
#include "reconcile/engine/savedplan.h"

struct apply_ui {
	void *payload;
	/* The plan, before asking, and again when a re-plan after a step stops the run. */
	void (*plan)(void *payload, const struct env_run *r);
	/* May the steps be applied?  NULL: yes (--yes). */
	int (*confirm)(void *payload);
	/* A step starts. */
	void (*step)(void *payload, const struct plan_step *st);
	/* One host of a step is done (called from worker threads, serialised). */
	void (*host)(void *payload, const struct obs_host *h, int failed, const char *what);
	/* A line of progress: stale services, their reloads, the status commit, the outcome. */
	void (*note)(void *payload, const char *line);
	/*
	 * A message for the operator's attention, when it happens: every
	 * error and stop, and a lock that was removed (the caller shows them
	 * as "rotor: MSG" on stderr).
	 */
	void (*alert)(void *payload, const char *msg);
	/*
	 * Every observe of the run (the plan's, each gate's) reports each host
	 * as it finishes through this (struct observe_opts.progress), with
	 * progress_payload; NULL: nothing.
	 */
	void (*progress)(void *payload, size_t done, size_t failed, size_t total);
	void *progress_payload;
};

struct apply_opts {
	const char *env;
	const char *ref;            /* desired revision; NULL: git.main fetched from git.remote (origin.h) */
	int no_fetch;               /* read git.remote's git.main as last fetched (offline) */
	gitremote_message_fn message;   /* the git server's lines while fetching (may be NULL) */
	void *message_payload;
	int parallel;               /* hosts at once; 0: rotor.yaml's */
	int canary;                 /* this many hosts of each step one by one first; 0: none */
	int force_unlock;           /* remove any lock */
	int replace_unknown;        /* hosts holding only unknown certificates count as empty */
	int json;                   /* set res->json */
	/*
	 * A saved plan (`rotor apply FILE`): the desired commit read must be
	 * the one it records (else ROTOR_ESTATE, before the lock), and the
	 * hosts observed under the lock must hold and present what it saw,
	 * with the same steps (else nothing is done or recorded, status 1,
	 * and the difference goes to ui->alert()).  NULL: plan afresh.
	 */
	const struct saved_plan *saved;
};

struct apply_result {
	int status;                 /* the exit status: 0 done or in sync, 1 stopped or failed */
	char outcome[256];          /* one line, as recorded in the status commit */
	char status_commit[41];     /* the commit on rotor/status/<env>, "" when none was made */
	size_t steps, changes;      /* steps applied, file changes made */
	/* Once stable again (no target in rotation.yaml): the *.rotor-bak files removed. */
	size_t backups_removed, backup_hosts, backup_failures;   /* backups; hosts with some; hosts that failed */
	int backups_kept;           /* 1: the run left the backups for a rollback (not stable, or it stopped) */
	char *json;                 /* with o->json, once the lock was taken: schemas/apply.json (free()) */
};

int apply_env(struct apply_result *res, struct gitrepo *repo, const struct apply_opts *o,
	      const struct apply_ui *ui, struct diags *d, struct err *e);

#endif
