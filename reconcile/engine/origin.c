/* origin.c -- the shared remote: settings, the desired commit, pushes (see origin.h). */
#include <errno.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "reconcile/engine/origin.h"
#include "common/names.h"
#include "reconcile/engine/state.h"
#include "reconcile/remote/ssh.h"
#include "reconcile/spec/spec.h"

static int check_hostkey(void *payload, const char *host, int port, const char *keytype, const unsigned char *key,
			 size_t keylen, const unsigned char *sha256, struct err *e)
{
	struct origin *o = payload;
	char label[200];

	snprintf(label, sizeof(label), "git server of %s", o->remote);
	return ssh_hostkey_check(o->known_hosts, label, host, port, keytype, key, keylen, sha256, e);
}

static int copy(char *out, size_t len, const char *s, const char *what, struct err *e)
{
	if ((size_t)snprintf(out, len, "%s", s) >= len)
		return err_set(e, ROTOR_EINVALID, "%s too long", what);
	return 0;
}

int origin_open(struct origin *o, struct gitrepo *repo, gitremote_message_fn message, void *payload,
		struct err *e)
{
	struct rotor_config *c = NULL;
	struct diags cd = { NULL, 0, 0 };
	struct buf cfg = BUF_INIT, url = BUF_INIT;
	struct err ie = ERR_INIT;
	const char *key = getenv("ROTOR_GIT_SSH_KEY"), *user;
	char head[41];
	int rc;

	memset(o, 0, sizeof(*o));
	/* No commit or no rotor.yaml yet: the defaults.  One that does not load: say so. */
	if (gitrepo_resolve(repo, "HEAD", head, &ie) == 0 &&
	    gitrepo_read(&cfg, repo, head, "rotor.yaml", SPEC_MAX_BYTES, &ie) == 0 &&
	    spec_load_config(&c, "rotor.yaml", cfg.ptr, cfg.len, &cd) < 0) {
		rc = err_set(e, ROTOR_EINVALID, "rotor.yaml at HEAD (%.12s) does not load (%s%s); rotor validate shows why",
			     head, cd.n ? cd.v[0].msg : "invalid", cd.n > 1 ? ", ..." : "");
		buf_release(&cfg);
		diags_release(&cd);
		return rc;
	}
	buf_release(&cfg);
	diags_release(&cd);
	user = c && c->ssh_user ? c->ssh_user : NULL;
	if (!user) {
		struct passwd *pw = getpwuid(getuid());

		user = pw ? pw->pw_name : "root";
	}
	if (!key || !*key)
		key = c ? c->ssh_identity : NULL;
	if ((rc = copy(o->remote, sizeof(o->remote), c && c->git_remote ? c->git_remote : "origin", "git.remote", e)) < 0 ||
	    (rc = copy(o->main, sizeof(o->main), c && c->git_main ? c->git_main : "main", "git.main", e)) < 0 ||
	    (rc = copy(o->user, sizeof(o->user), user, "ssh.user", e)) < 0 ||
	    (key && *key && (rc = state_expand_path(o->identity, sizeof(o->identity), key, e)) < 0) ||
	    (rc = state_expand_path(o->known_hosts, sizeof(o->known_hosts),
				    c && c->ssh_known_hosts ? c->ssh_known_hosts : "~/.ssh/known_hosts", e)) < 0)
		goto out;
	rc = gitremote_url(&url, repo, o->remote, e);
	if (rc == ROTOR_ENOTFOUND) {
		err_clear(e);
		rc = 0;
	} else if (rc < 0) {
		goto out;
	} else {
		o->has_remote = 1;
		if ((rc = copy(o->url, sizeof(o->url), buf_cstr(&url), "the remote's URL", e)) < 0)
			goto out;
	}
	o->go.ssh_user = o->user;
	o->go.ssh_key = o->identity[0] ? o->identity : NULL;
	o->go.https_token = getenv("ROTOR_GIT_TOKEN");
	o->go.hostkey = check_hostkey;
	o->go.hostkey_payload = o;
	o->go.message = message;
	o->go.message_payload = payload;
out:
	buf_release(&url);
	spec_config_free(c);
	return rc;
}

void origin_release(struct origin *o)
{
	/* Nothing is allocated today; kept so callers need not change when something is. */
	memset(&o->go, 0, sizeof(o->go));
}

const char *desired_how_name(enum desired_how how)
{
	switch (how) {
	case DESIRED_FETCHED: return "fetched";
	case DESIRED_NOT_FETCHED: return "not-fetched";
	case DESIRED_LOCAL: return "local";
	default: return "ref";
	}
}

int origin_desired(struct desired *out, struct origin *o, struct gitrepo *repo, const char *rev, int no_fetch,
		   struct err *e)
{
	char spec[1500];
	const char *specs[1];
	int rc;

	memset(out, 0, sizeof(*out));
	if (rev) {
		out->how = DESIRED_REF;
		if ((rc = copy(out->ref, sizeof(out->ref), rev, "--ref", e)) < 0 ||
		    (rc = gitrepo_resolve(repo, rev, out->commit, e)) < 0)
			return rc;
		snprintf(out->line, sizeof(out->line), "desired: %s at %.12s (--ref; not fetched)", rev, out->commit);
		return 0;
	}
	if (!o->has_remote) {
		out->how = DESIRED_LOCAL;
		snprintf(out->ref, sizeof(out->ref), "refs/heads/%s", o->main);
		if ((rc = gitrepo_resolve(repo, out->ref, out->commit, e)) < 0)
			return err_prefix(e, "no remote \"%s\" in the git repository, and the local %s", o->remote, o->main);
		snprintf(out->line, sizeof(out->line), "desired: the local %s at %.12s (no remote \"%s\" in the git repository)",
			 o->main, out->commit, o->remote);
		return 0;
	}
	snprintf(out->ref, sizeof(out->ref), "refs/remotes/%s/%s", o->remote, o->main);
	if (no_fetch) {
		out->how = DESIRED_NOT_FETCHED;
		if ((rc = gitrepo_resolve(repo, out->ref, out->commit, e)) < 0)
			return err_set(e, rc, "not fetched (--no-fetch), and %s does not exist: fetch %s first", out->ref,
				       o->remote);
		snprintf(out->line, sizeof(out->line), "not fetched: using %s at %.12s", out->ref, out->commit);
		return 0;
	}
	out->how = DESIRED_FETCHED;
	snprintf(spec, sizeof(spec), "+refs/heads/%s:%s", o->main, out->ref);
	specs[0] = spec;
	if ((rc = gitremote_fetch(repo, o->remote, specs, 1, &o->go, e)) < 0)
		return rc;
	if ((rc = gitrepo_resolve(repo, out->ref, out->commit, e)) < 0)
		return err_set(e, rc, "%s (%s) has no branch %s", o->remote, o->url, o->main);
	snprintf(out->line, sizeof(out->line), "desired: %s/%s at %.12s (fetched from %s)", o->remote, o->main,
		 out->commit, o->url);
	return 0;
}

int origin_push_branch(struct origin *o, struct gitrepo *repo, const char *branch, struct err *e)
{
	char ref[600];
	struct gitremote_update u;
	int rc;

	if ((rc = gitrepo_branch_valid(branch, e)) < 0)
		return rc;
	if (!o->has_remote)
		return err_set(e, ROTOR_ENOTFOUND, "no remote \"%s\" in the git repository to push %s to", o->remote,
			       branch);
	snprintf(ref, sizeof(ref), "refs/heads/%s", branch);
	memset(&u, 0, sizeof(u));
	u.src = ref;
	u.dst = ref;
	u.expect = GITREMOTE_ABSENT;
	return gitremote_push(repo, o->remote, &u, 1, &o->go, e);
}

/* ---- the lock on the remote ------------------------------------------------ */

#define LOCK_ATTEMPTS 5
#define RECORD_ATTEMPTS 8

static void lock_refs(char dst[128], char seen[400], const struct origin *o, const char *env)
{
	snprintf(dst, 128, "refs/rotor/lock/%s", env);
	snprintf(seen, 400, "refs/rotor/remotes/%s/lock/%s", o->remote, env);
}

/*
 * The remote's lock of env now: *found, and when found its id in id and
 * what it holds in *l (fetched into refs/rotor/remotes/R/lock/<env>).
 */
static int remote_lock(int *found, char id[41], struct gitstatus_lock *l, struct origin *o, struct gitrepo *repo,
		       const char *env, struct err *e)
{
	char dst[128], seen[400], spec[600], got[41];
	const char *specs[1];
	int rc, attempt;

	if (!env_name_valid(env))
		return err_set(e, ROTOR_EINVALID, "invalid environment name \"%.40s\"", env);
	if (!o->has_remote)
		return err_set(e, ROTOR_ENOTFOUND, "no remote \"%s\" in the git repository", o->remote);
	lock_refs(dst, seen, o, env);
	snprintf(spec, sizeof(spec), "+%s:%s", dst, seen);
	specs[0] = spec;
	for (attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
		if ((rc = gitremote_lookup(id, found, repo, o->remote, dst, &o->go, e)) < 0 || !*found)
			return rc;
		if ((rc = gitremote_fetch(repo, o->remote, specs, 1, &o->go, e)) < 0)
			return rc;
		/* The fetch got the lock we looked up, unless it moved in between: then look again. */
		if (gitrepo_resolve(repo, seen, got, e) == 0 && strcmp(got, id) == 0)
			return gitstatus_lock_at(repo, id, l, e);
		err_clear(e);
	}
	return err_set(e, ROTOR_ESTATE, "the lock of env %s on %s keeps changing; try again", env, o->remote);
}

int origin_lock_read(struct origin *o, struct gitrepo *repo, const char *env, struct gitstatus_lock *l,
		     struct err *e)
{
	char id[41];
	int found, rc;

	memset(l, 0, sizeof(*l));
	if ((rc = remote_lock(&found, id, l, o, repo, env, e)) < 0)
		return rc;
	if (!found)
		return err_set(e, ROTOR_ENOTFOUND, "env %s is not locked on %s", env, o->remote);
	return 0;
}

/* Push src (NULL: delete) to the lock ref, expecting expect; ESTATE when that did not hold. */
static int push_lock(struct origin *o, struct gitrepo *repo, const char *env, const char *src, const char *expect,
		     struct err *e)
{
	char dst[128], seen[400];
	struct gitremote_update u;

	lock_refs(dst, seen, o, env);
	memset(&u, 0, sizeof(u));
	u.src = src;
	u.dst = dst;
	u.force = 1;            /* lock commits have no parents: every update is a non-fast-forward */
	u.expect = expect;
	return gitremote_push(repo, o->remote, &u, 1, &o->go, e);
}

int origin_lock_take(struct origin *o, struct gitrepo *repo, const char *env, const struct gitstatus_lock_info *info,
		     int force, char held[41], struct gitstatus_lock *removed, struct err *e)
{
	struct gitstatus_lock_info li = *info;
	struct gitstatus_lock cur;
	char mine[41], id[41], me[256], desc[700];
	int rc, found, attempt;

	held[0] = '\0';
	if (removed)
		memset(removed, 0, sizeof(*removed));
	if (!li.time)
		li.time = (long long)time(NULL);
	if (!li.until)
		li.until = li.time + ORIGIN_LOCK_TTL;
	if ((rc = gitstatus_lock_commit(repo, env, &li, mine, e)) < 0)
		return rc;
	gitstatus_holder(me, sizeof(me));
	for (attempt = 0; attempt < LOCK_ATTEMPTS; attempt++) {
		if ((rc = remote_lock(&found, id, &cur, o, repo, env, e)) < 0)
			return rc;
		if (found) {
			int expired = cur.parsed && cur.until_epoch > 0 && cur.until_epoch < (long long)time(NULL);
			int dead = cur.parsed && strcmp(cur.holder, me) == 0 && cur.pid > 0 &&
				   kill((pid_t)cur.pid, 0) < 0 && errno == ESRCH;

			if (!force && !expired && !dead)
				return err_set(e, ROTOR_ESTATE, "env %s is locked on %s by %s; wait, or use --force-unlock "
					       "(or rotor unlock --env %s) if that run is dead", env, o->remote,
					       gitstatus_lock_describe(desc, sizeof(desc), &cur), env);
		}
		rc = push_lock(o, repo, env, mine, found ? id : GITREMOTE_ABSENT, e);
		if (rc == 0) {
			if (found && removed)
				*removed = cur;
			memcpy(held, mine, 41);
			return 0;
		}
		if (rc != ROTOR_ESTATE || attempt + 1 == LOCK_ATTEMPTS)
			return rc;     /* the last refusal is the server's own words (a hook, a rule) */
		/* Someone took (or released) it between our look and our push: look again. */
		err_clear(e);
	}
	return rc;
}

/*
 * After a refused update of our lock held: one line for a lock that is no
 * longer ours, or e as it is when the remote still has ours (a hook said no).
 */
static int lock_lost(struct origin *o, struct gitrepo *repo, const char *env, const char *held, struct err *e)
{
	struct gitstatus_lock cur;
	struct err sub = ERR_INIT;
	char desc[700];
	int rc = origin_lock_read(o, repo, env, &cur, &sub);

	if (rc == 0 && strcmp(cur.id, held) == 0)
		return e->code;
	err_clear(e);

	if (rc == ROTOR_ENOTFOUND)
		return err_set(e, ROTOR_ESTATE, "the lock %.12s of env %s on %s was deleted by someone else during this run",
			       held, env, o->remote);
	if (rc < 0)
		return err_set(e, ROTOR_ESTATE, "the lock %.12s of env %s on %s is no longer ours (%s)", held, env,
			       o->remote, sub.msg);
	return err_set(e, ROTOR_ESTATE, "the lock %.12s of env %s on %s was taken over during this run: now held by %s",
		       held, env, o->remote, gitstatus_lock_describe(desc, sizeof(desc), &cur));
}

int origin_lock_refresh(struct origin *o, struct gitrepo *repo, const char *env,
			const struct gitstatus_lock_info *info, char held[41], struct err *e)
{
	struct gitstatus_lock_info li = *info;
	char mine[41];
	int rc;

	li.until = (long long)time(NULL) + ORIGIN_LOCK_TTL;
	if ((rc = gitstatus_lock_commit(repo, env, &li, mine, e)) < 0)
		return rc;
	rc = push_lock(o, repo, env, mine, held, e);
	if (rc == ROTOR_ESTATE)
		return lock_lost(o, repo, env, held, e);
	if (rc == 0)
		memcpy(held, mine, 41);
	return rc;
}

int origin_lock_release(struct origin *o, struct gitrepo *repo, const char *env, const char *held,
			struct err *e)
{
	int rc = push_lock(o, repo, env, NULL, held, e);

	return rc == ROTOR_ESTATE ? lock_lost(o, repo, env, held, e) : rc;
}

int origin_unlock(struct origin *o, struct gitrepo *repo, const char *env, struct gitstatus_lock *was,
		  struct err *e)
{
	char id[41];
	int found, rc;

	memset(was, 0, sizeof(*was));
	if ((rc = remote_lock(&found, id, was, o, repo, env, e)) < 0)
		return rc;
	if (!found)
		return err_set(e, ROTOR_ENOTFOUND, "env %s is not locked on %s", env, o->remote);
	rc = push_lock(o, repo, env, NULL, id, e);
	if (rc == ROTOR_ESTATE)
		return err_set(e, ROTOR_ESTATE, "the lock of env %s on %s changed while removing it; it stays "
			       "(run rotor unlock again to see the new one)", env, o->remote);
	return rc;
}

/* ---- the status history on the remote ------------------------------------ */

int origin_status_fetch(struct origin *o, struct gitrepo *repo, const char *env, int *found, struct err *e)
{
	char ref[128], spec[300], id[41];
	const char *specs[1];
	int rc;

	*found = 0;
	if (!env_name_valid(env))
		return err_set(e, ROTOR_EINVALID, "invalid environment name \"%.40s\"", env);
	snprintf(ref, sizeof(ref), "refs/heads/rotor/status/%s", env);
	if ((rc = gitremote_lookup(id, found, repo, o->remote, ref, &o->go, e)) < 0 || !*found)
		return rc;
	snprintf(spec, sizeof(spec), "+%s:%s", ref, ref);
	specs[0] = spec;
	return gitremote_fetch(repo, o->remote, specs, 1, &o->go, e);
}

int origin_record(struct origin *o, struct gitrepo *repo, const char *env, const struct gitrepo_file *files,
		  size_t n, const char *message, char out[41], struct err *e)
{
	char ref[128], tip[41], mine[41];
	struct gitremote_update u;
	int rc, found, attempt;

	out[0] = '\0';
	snprintf(ref, sizeof(ref), "refs/heads/rotor/status/%s", env);
	for (attempt = 0; attempt < RECORD_ATTEMPTS; attempt++) {
		if ((rc = origin_status_fetch(o, repo, env, &found, e)) < 0)
			return rc;
		/* The remote's tip; before its first record, the local history (if any) goes up with ours. */
		if (gitrepo_resolve(repo, ref, tip, e) < 0) {
			err_clear(e);
			tip[0] = '\0';
		}
		if ((rc = gitstatus_status_commit(repo, env, tip[0] ? tip : NULL, files, n, message, mine, e)) < 0)
			return rc;
		memset(&u, 0, sizeof(u));
		u.src = mine;
		u.dst = ref;
		u.expect = found ? tip : GITREMOTE_ABSENT;
		rc = gitremote_push(repo, o->remote, &u, 1, &o->go, e);
		if (rc == 0) {
			memcpy(out, mine, 41);
			/* The local branch follows the remote. */
			if (origin_status_fetch(o, repo, env, &found, e) < 0)
				err_clear(e);
			return 0;
		}
		if (rc != ROTOR_ESTATE || attempt + 1 == RECORD_ATTEMPTS)
			return rc;
		/* Another runner appended first: the same tree and message again, on the new tip. */
		err_clear(e);
	}
	return rc;
}
