/*
 * origin.h -- the team's shared remote (git.remote of rotor.yaml) as the
 * engine uses it: how it is reached (SSH key, known_hosts, HTTPS token),
 * the one desired commit of plan, drift and apply, and pushing a branch.
 *
 * Settings come from rotor.yaml at HEAD (defaults when there is no
 * commit yet or HEAD has no rotor.yaml; one that does not load is
 * ROTOR_EINVALID): git.remote, git.main, ssh.user (for a URL that names
 * no user), ssh.identity (else ssh-agent), ssh.known_hosts.  The
 * environment overrides: $ROTOR_GIT_SSH_KEY is the private key for the
 * git server (instead of ssh.identity), $ROTOR_GIT_TOKEN the password or
 * token for an https:// remote (user from the URL, else "oauth2").  The
 * git server's SSH host key must be listed in ssh.known_hosts: rotor
 * never trusts on first use (reconcile/remote's ssh_hostkey_check()).
 *
 * Ownership: struct origin owns its strings (origin_release()); the
 * repository is borrowed.  Errors: gitops/gitremote.h's, with the
 * remote named; nothing here prints (the server's lines go to the
 * message callback).
 */
#ifndef ROTOR_ORIGIN_H
#define ROTOR_ORIGIN_H

#include "common/err.h"
#include "gitops/gitremote.h"
#include "gitops/gitrepo.h"
#include "gitops/gitstatus.h"

struct origin {
	char remote[128];           /* git.remote, default "origin" */
	char main[256];             /* git.main, default "main" */
	int has_remote;             /* the git repository configures that remote */
	char url[512];              /* its URL, when it has */
	char user[128];             /* ssh.user, else the local user */
	char identity[4096];        /* $ROTOR_GIT_SSH_KEY, else ssh.identity; "" = ssh-agent */
	char known_hosts[4096];
	struct gitremote_opts go;   /* ready for gitops/gitremote.h */
};

/* message (may be NULL) receives every line the server prints. */
int origin_open(struct origin *o, struct gitrepo *repo, gitremote_message_fn message, void *payload,
		struct err *e);
void origin_release(struct origin *o);

/* Where the desired commit was read. */
enum desired_how {
	DESIRED_FETCHED,            /* refs/remotes/R/MAIN just fetched from the remote */
	DESIRED_NOT_FETCHED,        /* refs/remotes/R/MAIN as last fetched (--no-fetch) */
	DESIRED_LOCAL,              /* the local MAIN: the git repository has no remote R */
	DESIRED_REF                 /* the revision given with --ref */
};

struct desired {
	char commit[41];
	char ref[1100];             /* the ref or revision read */
	enum desired_how how;
	char line[1400];            /* one line for the operator, naming the commit */
};

/* "fetched", "not-fetched", "local", "ref": the JSON spelling. */
const char *desired_how_name(enum desired_how how);

/*
 * The one desired commit of plan, drift and apply: rev when given (not
 * fetched); else, when the git repository has the remote, fetch its
 * MAIN into refs/remotes/R/MAIN (no_fetch: use it as it is, offline)
 * and read that; else the local MAIN.  ROTOR_ENOTFOUND when the ref to
 * read does not exist.
 */
int origin_desired(struct desired *out, struct origin *o, struct gitrepo *repo, const char *rev, int no_fetch,
		   struct err *e);

/*
 * Push the local branch to the remote under the same name; the remote
 * must not have it yet.  ROTOR_ENOTFOUND when the git repository has no
 * such remote; ROTOR_ESTATE with the server's reason when it refused.
 */
int origin_push_branch(struct origin *o, struct gitrepo *repo, const char *branch, struct err *e);

/* ---- the lock of an env on the remote: refs/rotor/lock/<env> there ---------- */

/* How long a remote lock counts as alive without a refresh (seconds). */
#define ORIGIN_LOCK_TTL 1800

/*
 * Take the lock of env on the remote: a lock commit (gitops/gitstatus.h's
 * format, until = now + ORIGIN_LOCK_TTL) pushed to refs/rotor/lock/<env>
 * with the expected old value "absent".  When the remote has a lock
 * already it is fetched and read: one whose until has passed, one held
 * by a dead process of this user on this machine, or any when force is
 * set, is replaced by ours with a lease on its id (removed receives it;
 * removed->id is "" when none was); any other is ROTOR_ESTATE naming
 * the holder and the remote.  held receives our lock commit.
 */
int origin_lock_take(struct origin *o, struct gitrepo *repo, const char *env, const struct gitstatus_lock_info *info,
		     int force, char held[41], struct gitstatus_lock *removed, struct err *e);

/*
 * Push a new lock commit (the same since, a later until) over held, with
 * a lease on held; held receives the new commit.  ROTOR_ESTATE, one line
 * naming what the remote has now, when the lock is no longer ours (it
 * was deleted or taken over).
 */
int origin_lock_refresh(struct origin *o, struct gitrepo *repo, const char *env,
			const struct gitstatus_lock_info *info, char held[41], struct err *e);

/* Delete the lock with a lease on held; ROTOR_ESTATE as origin_lock_refresh(). */
int origin_lock_release(struct origin *o, struct gitrepo *repo, const char *env, const char *held,
			struct err *e);

/*
 * Read the remote's lock of env (fetched): 0 with *l, ROTOR_ENOTFOUND
 * when the remote has none.
 */
int origin_lock_read(struct origin *o, struct gitrepo *repo, const char *env, struct gitstatus_lock *l,
		     struct err *e);

/*
 * `rotor unlock`: delete whatever lock env has on the remote, with a
 * lease on the lock read (was receives it).  ROTOR_ENOTFOUND when it
 * has none; ROTOR_ESTATE when it changed in between.
 */
int origin_unlock(struct origin *o, struct gitrepo *repo, const char *env, struct gitstatus_lock *was,
		  struct err *e);

/* ---- the status history of an env on the remote: rotor/status/<env> --------- */

/*
 * Fetch the remote's rotor/status/<env> into the local branch of that
 * name (the remote's history is the one that counts; a local branch
 * that went its own way is replaced).  *found 0 when the remote has
 * none yet (the local branch is left alone).
 */
int origin_status_fetch(struct origin *o, struct gitrepo *repo, const char *env, int *found, struct err *e);

/*
 * Append one status commit (gitstatus_record()'s files and message) to
 * rotor/status/<env> on the remote: fetch, commit on the tip fetched
 * (the local branch when the remote has none), push with that tip as
 * the expected old value; when another runner appended first, fetch
 * again and re-commit the same tree and message on the new tip, a few
 * times, then ROTOR_ESTATE.  The local branch follows.  out receives
 * the commit that landed.
 */
int origin_record(struct origin *o, struct gitrepo *repo, const char *env, const struct gitrepo_file *files,
		  size_t n, const char *message, char out[41], struct err *e);

#endif
