/*
 * gitstatus.h -- the apply lock and the status history of an env, in git.
 *
 * Lock: refs/rotor/lock/<env> points at a commit with no parent whose
 * tree holds one file, lock.json:
 *
 *   {"holder": "alice@host1", "pid": 4242, "time": "2026-11-23T12:00:00Z",
 *    "until": "2026-11-23T12:30:00Z" | null,
 *    "command": "rotor apply --env poc", "desired": "<40 hex>" | null,
 *    "env": "poc", "nonce": "<16 hex>"}
 *
 * "until" is when the holder's run stops counting as alive unless it
 * refreshes the lock (a new lock commit with a later until); a lock
 * without one (written by an older rotor) never expires by itself.
 *
 * so `git show refs/rotor/lock/poc` says who holds it.  The ref is
 * created with compare-and-swap ("must not exist") and removed with
 * compare-and-swap ("must still be the lock we looked at"); see
 * gitstatus.c for the race analysis.  The nonce makes every lock commit
 * distinct, so a lock taken again by the same holder in the same second
 * is still a different lock.
 *
 * Status: branch rotor/status/<env> (refs/heads/rotor/status/<env>)
 * gets one commit per apply, whose tree is exactly the files given
 * (observed.json, applied.json, ...) and whose message is the caller's
 * (who, what, why).  It is moved with compare-and-swap against the tip it
 * was built on, retried on a concurrent move, so two recorders both land
 * and the history stays linear.
 *
 * Env names follow env_name_valid() (^[a-z0-9][a-z0-9_-]{0,31}$);
 * anything else is ROTOR_EINVALID before git is asked.
 *
 * Nothing here writes the work tree, .git/index or HEAD.  Ownership and
 * error codes are as in gitrepo.h; ROTOR_ESTATE means the env is locked
 * by someone else, or a lock or branch changed under us.
 */
#ifndef ROTOR_GITSTATUS_H
#define ROTOR_GITSTATUS_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "gitops/gitrepo.h"

/* ---- lock ------------------------------------------------------------- */

/* What a new lock records.  Only command is required. */
struct gitstatus_lock_info {
	const char *command;   /* what runs under the lock, e.g. "rotor apply --env poc" */
	const char *desired;   /* the desired-state commit being applied (40 hex), or NULL */
	const char *holder;    /* NULL: "user@hostname" of this process */
	long long pid;         /* 0: getpid() */
	long long time;        /* seconds since the epoch; 0: now */
	long long until;       /* seconds since the epoch the lock is good until; 0: none */
};

/* A lock as read back.  Text fields are printable ASCII (others shown as '?'). */
struct gitstatus_lock {
	char id[41];           /* the lock commit the ref points at */
	int parsed;            /* 1: lock.json was read and the fields below are set */
	char holder[256];
	long long pid;
	char time[32];         /* RFC 3339, as written */
	char until[32];        /* RFC 3339, as written; "" when the lock has none */
	long long until_epoch; /* until in seconds since the epoch; 0 when none */
	char command[512];
	char desired[41];      /* "" when none was given */
	char problem[200];     /* when !parsed: why lock.json could not be read */
};

/*
 * Take the lock of env.  0 with the lock commit id in out (out may be
 * NULL), or ROTOR_ESTATE when the env is locked already, with a message
 * naming the holder:
 *
 *   env poc is locked by alice@host1 (pid 4242) since 2026-11-23T12:00:00Z,
 *   running `rotor apply`; wait, or use --force-unlock if that run is dead
 *
 * Not re-entrant: a second lock by the same process is refused the same
 * way.  ROTOR_EINVALID for a bad env, a missing command, a desired that
 * is not 40 hex digits, an empty or over-long holder.
 */
int gitstatus_lock(struct gitrepo *r, const char *env, const struct gitstatus_lock_info *info,
		   char out[41], struct err *e);

/*
 * Write the commit gitstatus_lock() would point the lock ref at, without
 * touching any ref (for a lock kept elsewhere: the shared remote).  out
 * receives its id.  Errors as gitstatus_lock()'s ROTOR_EINVALID cases.
 */
int gitstatus_lock_commit(struct gitrepo *r, const char *env, const struct gitstatus_lock_info *info,
			  char out[41], struct err *e);

/*
 * Read the lock that commit (40 hex, a lock commit in this repository)
 * holds, as gitstatus_lock_read() does for the lock ref.
 */
int gitstatus_lock_at(struct gitrepo *r, const char *commit, struct gitstatus_lock *out, struct err *e);

/*
 * Release the lock we hold.  With expected (the id gitstatus_lock gave),
 * only a lock that is exactly that commit is removed; with NULL, only a
 * lock whose lock.json names this process (its pid and the default
 * holder user@hostname).  Anything else (the lock was force-unlocked and
 * re-taken by another run) is ROTOR_ESTATE naming the current holder,
 * and the lock stays.  ROTOR_ENOTFOUND when the env is not locked.
 */
int gitstatus_unlock(struct gitrepo *r, const char *env, const char *expected, struct err *e);

/*
 * Remove whatever lock env has now, for --force-unlock after a dead run.
 * was (may be NULL) receives the lock that was removed: the removal is
 * compare-and-swap against the lock read, so that is exactly what went.
 * ROTOR_ENOTFOUND when the env is not locked; ROTOR_ESTATE when the lock
 * changed between reading and removing it (run again to see the new one).
 */
int gitstatus_force_unlock(struct gitrepo *r, const char *env, struct gitstatus_lock *was,
			   struct err *e);

/*
 * Take the lock of env for a run that may find a stale one: as
 * gitstatus_lock(), but a lock held by a process of this user on this
 * machine that no longer exists (kill(pid, 0) says ESRCH) is removed
 * and taken, and so is any lock when force is set (--force-unlock).
 * removed (may be NULL) receives the lock that was removed (id[0] is
 * '\0' when none was), for the caller to say so.  Otherwise as
 * gitstatus_lock(): ROTOR_ESTATE naming the holder.
 */
int gitstatus_lock_take(struct gitrepo *r, const char *env, const struct gitstatus_lock_info *info, int force,
			char out[41], struct gitstatus_lock *removed, struct err *e);

/*
 * Read the lock of env for display.  0 with *out filled; a lock whose
 * lock.json is missing or malformed (a ref made by hand) is still a lock:
 * 0 with out->parsed = 0 and out->problem set.  ROTOR_ENOTFOUND when the
 * env is not locked.
 */
int gitstatus_lock_read(struct gitrepo *r, const char *env, struct gitstatus_lock *out,
			struct err *e);

/*
 * "alice@host1 (pid 4242) since 2026-11-23T12:00:00Z, until
 * 2026-11-23T12:30:00Z, running `rotor apply`" (no until part when the
 * lock has none; or "an unreadable lock (commit 1234abcd5678: why)") into out;
 * truncated to fit.  Returns out.
 */
const char *gitstatus_lock_describe(char *out, size_t len, const struct gitstatus_lock *l);

/* "user@hostname" of this process, as a lock's default holder records it. */
void gitstatus_holder(char *out, size_t len);

/* ---- status history ----------------------------------------------------- */

/*
 * Append ONE commit to rotor/status/<env>: parent the current tip (none
 * for the first), tree exactly files (all of them blobs with data; the
 * previous tree is replaced, not merged), message as given (a final
 * newline is added when missing).  The branch moves by compare-and-swap
 * against the tip read; on a concurrent move the commit is rebuilt on the
 * new tip, a few times, then ROTOR_ESTATE.  out receives the new commit.
 *
 * ROTOR_EINVALID for a bad env, no files, a file without data, a bad,
 * repeated or nested path, an empty message; ROTOR_ESTATE when HEAD is
 * attached to the status branch (moving it would move HEAD).
 */
int gitstatus_record(struct gitrepo *r, const char *env, const struct gitrepo_file *files,
		     size_t n, const char *message, char out[41], struct err *e);

/*
 * Write the commit gitstatus_record() would append, on parent (40 hex;
 * NULL: a first commit), without moving any ref.  The same checks as
 * gitstatus_record(), but HEAD's.
 */
int gitstatus_status_commit(struct gitrepo *r, const char *env, const char *parent,
			    const struct gitrepo_file *files, size_t n, const char *message, char out[41],
			    struct err *e);

/* The tip of rotor/status/<env>; ROTOR_ENOTFOUND before the first record. */
int gitstatus_tip(struct gitrepo *r, const char *env, char out[41], struct err *e);

/*
 * Append file path of the status tip to out (cap max bytes, 0: the
 * default, as gitrepo_read).  ROTOR_ENOTFOUND when there is no status yet
 * or the tip has no such file.
 */
int gitstatus_read_latest(struct gitrepo *r, const char *env, const char *path, size_t max,
			  struct buf *out, struct err *e);

/*
 * One status commit.  Strings are the commit's own text with control
 * characters shown as '?' (newlines and tabs kept in body), so they are
 * safe to print.
 */
struct gitstatus_entry {
	char id[41];
	long long time;        /* author time, seconds since the epoch */
	int tz_offset;         /* the author's offset from UTC, minutes */
	char *author_name;
	char *author_email;
	char *subject;         /* first paragraph, lines joined (git's summary) */
	char *body;            /* the rest of the message, trailers included; "" if none */
};

/*
 * The history of rotor/status/<env>, newest first, following first
 * parents; at most max entries (0: all).  *out (freed with
 * gitstatus_entries_free) is NULL when *n is 0.  ROTOR_ENOTFOUND before
 * the first record.
 */
int gitstatus_log(struct gitrepo *r, const char *env, size_t max, struct gitstatus_entry **out,
		  size_t *n, struct err *e);
void gitstatus_entries_free(struct gitstatus_entry *v, size_t n);

#endif
