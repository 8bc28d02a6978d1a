/*
 * gitstatus.c -- the apply lock and the status history of an env (see
 * gitstatus.h).
 *
 * Both live in refs, and every ref change is a compare-and-swap done by
 * libgit2's file backend: it creates "<ref>.lock" with O_EXCL, re-reads
 * the ref while holding that file, compares it with the value we
 * expect, and only then renames the lock file over the ref (or deletes
 * the ref).  git itself takes the same lock file, so the check and the
 * change are atomic against every other git or rotor process.
 *
 * Taking the lock.  git_reference_create_matching(force 1, current = the
 * zero id) means "must not exist".  Of two racers one creates
 * "<ref>.lock" and wins; the other either finds the lock file
 * (GIT_ELOCKED: we wait a few milliseconds and try again, and then see
 * the winner's ref) or the finished ref (GIT_EMODIFIED), and reports who
 * holds it.  A ".lock" file that never goes away was left by a crash and
 * is reported as such after about a second.
 *
 * Releasing the lock.  git_reference_delete() on a git_reference we
 * looked up passes the id it had at lookup as the expected old value, and
 * the backend compares it under "<ref>.lock" before it removes the loose
 * file and the packed-refs entry.  So "look up, check that it is our lock
 * commit, delete" cannot remove a lock that someone force-unlocked and
 * took again in between: that delete fails with GIT_EMODIFIED and the new
 * lock stays.  Every lock commit is distinct (a random nonce in
 * lock.json), so "the same id" really means "the same lock": a lock
 * released and taken again by the same holder within one second is not
 * mistaken for the old one (no ABA).  One side effect we accept: libgit2
 * removes the ref's reflog before that comparison; lock refs have none
 * unless core.logAllRefUpdates is "always".
 *
 * Recording status.  The new commit's parent is the tip we read, and the
 * branch moves only if it still is that tip (force 1, current = the tip,
 * or the zero id for the first commit).  When another recorder moved it
 * first (GIT_EMODIFIED) or is moving it (GIT_ELOCKED), we read the new
 * tip, make the commit again on top of it and retry, with a short
 * randomised pause: both commits land and the history stays linear.
 *
 * Nothing here writes the work tree, .git/index or HEAD: blobs, trees and
 * commits are written to the object database and only the two refs move.
 */
#include "gitops/gitstatus.h"

#include <errno.h>
#include <stddef.h>
#include <pwd.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <git2.h>
#include <jansson.h>

#include "common/clock.h"
#include "common/names.h"
#include "common/timefmt.h"
#include "common/utf8.h"
#include "gitops/gitrepo_int.h"
#include "gitops/gitstatus_int.h"

#define LOCK_REF_PREFIX "refs/rotor/lock/"
#define STATUS_BRANCH_PREFIX "rotor/status/"
#define LOCK_FILE "lock.json"
#define LOCK_JSON_MAX ((size_t)64 << 10)
#define LOCK_WAIT_ATTEMPTS 100     /* x 10 ms: another writer holds "<ref>.lock" */
#define RECORD_ATTEMPTS 10
#define HOLDER_MAX 255
#define COMMAND_MAX 500
#define REF_MAX 96                 /* "refs/rotor/lock/" + a 32-byte env name */

/* ---- small helpers ------------------------------------------------------ */

static int check_env(const char *env, struct err *e)
{
	char show[80];

	if (env && env_name_valid(env))
		return 0;
	return err_set(e, ROTOR_EINVALID, "invalid environment name \"%s\" (lowercase letters, digits, "
		       "'-' and '_', at most 32, starting with a letter or digit)",
		       env ? gitrepo__shown(show, sizeof(show), env) : "");
}

static void lock_refname(char out[REF_MAX], const char *env)
{
	snprintf(out, REF_MAX, LOCK_REF_PREFIX "%s", env);
}

static int status_refname(char *out, size_t len, const char *env, struct err *e)
{
	char branch[REF_MAX];
	int rc;

	if ((rc = check_env(env, e)) < 0)
		return rc;
	snprintf(branch, sizeof(branch), STATUS_BRANCH_PREFIX "%s", env);
	return gitrepo__branch_refname(out, len, branch, e);
}

/* A few pseudo-random bits that differ between processes and calls. */
static unsigned jitter(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (unsigned)ts.tv_nsec ^ ((unsigned)getpid() * 2654435761u);
}

/*
 * Copy s (slen bytes) into out for display: printable ASCII kept, every
 * other character (a whole UTF-8 sequence, or a byte that is none) shown
 * as '?' (except newline and tab when keep_lines), cut with "..." to fit
 * len.
 */
static void clean_copy(char *out, size_t len, const char *s, size_t slen, int keep_lines)
{
	size_t i, o = 0, k;
	unsigned long cp;

	if (len == 0)
		return;
	for (i = 0; i < slen && o + 1 < len; i += k) {
		unsigned char c = (unsigned char)s[i];

		k = c >= 0x80 ? utf8_decode((const unsigned char *)s + i, slen - i, &cp) : 1;
		if (k == 0)
			k = 1;
		if ((c >= 0x20 && c < 0x7f) || (keep_lines && (c == '\n' || c == '\t')))
			out[o++] = (char)c;
		else
			out[o++] = '?';
	}
	out[o] = '\0';
	if (i < slen && len >= 4)
		memcpy(out + len - 4, "...", 4);
}

/* "user@hostname" of this process. */
static void default_holder(char *out, size_t len)
{
	char host[256], pwbuf[2048], uid[32], raw[600];
	struct passwd pw, *res = NULL;
	const char *user = NULL;

	if (getpwuid_r(geteuid(), &pw, pwbuf, sizeof(pwbuf), &res) == 0 && res && res->pw_name &&
	    res->pw_name[0])
		user = res->pw_name;
	if (!user && (user = getenv("USER")) != NULL && !user[0])
		user = NULL;
	if (!user) {
		snprintf(uid, sizeof(uid), "uid%lu", (unsigned long)geteuid());
		user = uid;
	}
	if (gethostname(host, sizeof(host)) != 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	snprintf(raw, sizeof(raw), "%s@%s", user, host);
	clean_copy(out, len, raw, strlen(raw), 0);
}

void gitstatus_holder(char *out, size_t len)
{
	default_holder(out, len);
}

/* 16 hex digits, fresh for every lock. */
static void make_nonce(char out[17])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char b[8];
	size_t got = 0, i;
	FILE *f = fopen("/dev/urandom", "rb");

	if (f) {
		got = fread(b, 1, sizeof(b), f);
		fclose(f);
	}
	if (got != sizeof(b)) {
		struct timespec ts;
		unsigned long long v;

		clock_gettime(CLOCK_REALTIME, &ts);
		v = (unsigned long long)ts.tv_nsec ^ ((unsigned long long)ts.tv_sec << 24) ^
		    ((unsigned long long)getpid() << 44) ^ jitter();
		for (i = 0; i < sizeof(b); i++)
			b[i] = (unsigned char)(v >> (8 * i));
	}
	for (i = 0; i < sizeof(b); i++) {
		out[2 * i] = hex[b[i] >> 4];
		out[2 * i + 1] = hex[b[i] & 15];
	}
	out[16] = '\0';
}

/* ---- lock.json ------------------------------------------------------------ */

/*
 * lock.json is read with jansson.  Only the flat object we write is a
 * lock we understand: strings, integers, booleans and null; "holder",
 * "pid", "time" and "command" required; "desired" a commit id or null.
 * Strings are cleaned for display on the way (see clean_copy).
 */
static const char *lock_from_json(struct gitstatus_lock *l, const json_t *o)
{
	static const struct {
		const char *key;
		size_t off, len;
	} text[] = { { "holder", offsetof(struct gitstatus_lock, holder), sizeof(((struct gitstatus_lock *)0)->holder) },
		     { "time", offsetof(struct gitstatus_lock, time), sizeof(((struct gitstatus_lock *)0)->time) },
		     { "command", offsetof(struct gitstatus_lock, command), sizeof(((struct gitstatus_lock *)0)->command) } };
	const char *key;
	json_t *v;
	size_t i;

	if (!json_is_object(o))
		return "not a JSON object";
	json_object_foreach((json_t *)o, key, v)
		if (json_is_object(v) || json_is_array(v) || json_is_real(v))
			return json_is_real(v) ? "not an integer" : "unexpected value (nested values are not expected)";
	for (i = 0; i < sizeof(text) / sizeof(text[0]); i++) {
		v = json_object_get(o, text[i].key);
		if (!v)
			return text[i].key[0] == 'h' ? "no \"holder\"" : text[i].key[0] == 't' ? "no \"time\"" : "no \"command\"";
		if (!json_is_string(v))
			return json_is_null(v) ? "a required field is null" : "a string field holds another value";
		clean_copy((char *)l + text[i].off, text[i].len, json_string_value(v), json_string_length(v), 0);
	}
	v = json_object_get(o, "pid");
	if (!v)
		return "no \"pid\"";
	if (!json_is_integer(v))
		return "\"pid\" is not an integer";
	l->pid = (long long)json_integer_value(v);
	v = json_object_get(o, "until");
	if (v && json_is_string(v)) {
		long long t = json_string_length(v) < sizeof(l->until) ? rfc3339_parse(json_string_value(v)) : -1;

		if (t <= 0)
			return "\"until\" is not an RFC 3339 time";
		memcpy(l->until, json_string_value(v), json_string_length(v) + 1);
		l->until_epoch = t;
	} else if (v && !json_is_null(v)) {
		return "\"until\" is not an RFC 3339 time";
	}
	v = json_object_get(o, "desired");
	if (v && json_is_string(v)) {
		const char *hex = json_string_value(v);

		if (json_string_length(v) != 40 || strspn(hex, "0123456789abcdefABCDEF") != 40)
			return "\"desired\" is not a commit id";
		memcpy(l->desired, hex, 41);
	} else if (v && !json_is_null(v)) {
		return "\"desired\" is not a commit id";
	}
	return NULL;
}

void gitstatus__lock_parse(struct gitstatus_lock *l, const char *data, size_t len)
{
	json_error_t jerr;
	json_t *o;
	const char *why;

	o = json_loadb(data ? data : "", data ? len : 0, JSON_REJECT_DUPLICATES, &jerr);
	why = o ? lock_from_json(l, o) : NULL;
	if (!o || why) {
		if (!o) {
			char text[sizeof(jerr.text)];

			clean_copy(text, sizeof(text), jerr.text, strlen(jerr.text), 0);
			snprintf(l->problem, sizeof(l->problem), LOCK_FILE ": not JSON (line %d: %s)", jerr.line, text);
		} else {
			snprintf(l->problem, sizeof(l->problem), LOCK_FILE ": %s", why);
		}
		/* Keep the id; forget half-read fields. */
		l->holder[0] = l->time[0] = l->until[0] = l->command[0] = l->desired[0] = '\0';
		l->pid = 0;
		l->until_epoch = 0;
	} else {
		l->parsed = 1;
	}
	json_decref(o);
}

/*
 * Fill l's fields from lock.json at commit l->id.  A lock we cannot read
 * is still a lock: l->parsed = 0 and l->problem say why.  Only running
 * out of memory is an error.
 */
static int read_lock_file(struct gitrepo *r, struct gitstatus_lock *l, struct err *e)
{
	struct buf b = BUF_INIT;
	struct err sub = ERR_INIT;
	int rc;

	rc = gitrepo_read(&b, r, l->id, LOCK_FILE, LOCK_JSON_MAX, &sub);
	if (rc == ROTOR_ENOMEM) {
		buf_release(&b);
		return err_nomem(e);
	}
	if (rc < 0) {
		clean_copy(l->problem, sizeof(l->problem), sub.msg, strlen(sub.msg), 0);
		buf_release(&b);
		return 0;
	}
	gitstatus__lock_parse(l, b.ptr, b.len);
	buf_release(&b);
	return 0;
}

/*
 * Look up the lock ref of env and describe it in *l.  *ref (when ref is
 * not NULL) receives the reference for a compare-and-swap delete.
 * ROTOR_ENOTFOUND "env E is not locked".
 */
static int lookup_lock(git_reference **ref, struct gitrepo *r, const char *env,
		       struct gitstatus_lock *l, struct err *e)
{
	char name[REF_MAX];
	git_reference *got = NULL;
	int rc;

	if (ref)
		*ref = NULL;
	memset(l, 0, sizeof(*l));
	lock_refname(name, env);
	rc = git_reference_lookup(&got, gitrepo__repo(r), name);
	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		return err_set(e, ROTOR_ENOTFOUND, "env %s is not locked", env);
	}
	if (rc < 0)
		return gitrepo__fail(e, rc, ROTOR_ERROR, "cannot read the lock of env %s (%s)", env, name);
	if (git_reference_type(got) == GIT_REFERENCE_DIRECT) {
		git_oid_tostr(l->id, sizeof(l->id), git_reference_target(got));
		rc = read_lock_file(r, l, e);
	} else {
		char show[120];

		snprintf(l->problem, sizeof(l->problem), "%s is a symbolic ref to %s", name,
			 gitrepo__shown(show, sizeof(show), git_reference_symbolic_target(got)));
		rc = 0;
	}
	if (rc == 0 && ref)
		*ref = got;
	else
		git_reference_free(got);
	return rc;
}

const char *gitstatus_lock_describe(char *out, size_t len, const struct gitstatus_lock *l)
{
	if (!len)
		return out;
	if (l->parsed)
		snprintf(out, len, "%s (pid %lld) since %s%s%s, running `%s`", l->holder, l->pid, l->time,
			 l->until[0] ? ", until " : "", l->until, l->command);
	else
		snprintf(out, len, "an unreadable lock (commit %.12s: %s)", l->id[0] ? l->id : "none",
			 l->problem[0] ? l->problem : "unknown");
	return out;
}

int gitstatus_lock_take(struct gitrepo *r, const char *env, const struct gitstatus_lock_info *info, int force,
			char out[41], struct gitstatus_lock *removed, struct err *e)
{
	struct gitstatus_lock cur;
	char me[HOLDER_MAX + 1], desc[600];
	int rc;

	if (removed)
		memset(removed, 0, sizeof(*removed));
	rc = gitstatus_lock(r, env, info, out, e);
	if (rc != ROTOR_ESTATE)
		return rc;
	rc = gitstatus_lock_read(r, env, &cur, e);
	if (rc == ROTOR_ENOTFOUND) {
		/* Released between our two looks: one more try, and that answer stands. */
		err_clear(e);
		return gitstatus_lock(r, env, info, out, e);
	}
	if (rc < 0)
		return rc;
	default_holder(me, sizeof(me));
	if (!force && !(cur.parsed && strcmp(cur.holder, me) == 0 && cur.pid > 0 &&
			kill((pid_t)cur.pid, 0) < 0 && errno == ESRCH))
		return err_set(e, ROTOR_ESTATE, "env %s is locked by %s; wait, or use --force-unlock if that run is dead",
			       env, gitstatus_lock_describe(desc, sizeof(desc), &cur));
	if ((rc = gitstatus_force_unlock(r, env, &cur, e)) < 0)
		return rc;
	if (removed)
		*removed = cur;
	return gitstatus_lock(r, env, info, out, e);
}

int gitstatus_lock_read(struct gitrepo *r, const char *env, struct gitstatus_lock *out, struct err *e)
{
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = check_env(env, e)) < 0)
		return rc;
	return lookup_lock(NULL, r, env, out, e);
}

/* ---- lock, unlock ------------------------------------------------------------ */

/* The commit a lock ref points at: no parent, one file lock.json. */
static int make_lock_commit(git_oid *out, struct gitrepo *r, const char *env, const char *holder,
			    long long pid, const char *when, const char *until, const char *command,
			    const char *desired, struct err *e)
{
	git_repository *repo = gitrepo__repo(r);
	struct buf msg = BUF_INIT, body = BUF_INIT;
	json_t *o = NULL;
	char *json = NULL;
	git_signature *sig = NULL;
	git_tree *tree = NULL;
	git_tree_update upd;
	git_oid tree_id;
	char nonce[17];
	int rc;

	make_nonce(nonce);
	/* json_pack's "s?" writes null for a NULL string; the keys keep this order. */
	o = json_pack("{s:s, s:I, s:s, s:s?, s:s, s:s?, s:s, s:s}", "holder", holder, "pid", (json_int_t)pid,
		      "time", when, "until", until, "command", command, "desired", desired, "env", env, "nonce", nonce);
	if (!o || !(json = json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER)) || buf_printf(&body, "%s\n", json) < 0 ||
	    buf_printf(&msg, "rotor lock %s: %s (pid %lld)\n\n"
		       "Env %s is locked by %s (pid %lld) since %s,\nrunning `%s`.\n"
		       "When that run is dead: rotor apply --env %s --force-unlock\n",
		       env, holder, pid, env, holder, pid, when, command, env) < 0) {
		rc = err_nomem(e);
		goto out;
	}

	memset(&upd, 0, sizeof(upd));
	upd.action = GIT_TREE_UPDATE_UPSERT;
	upd.filemode = GIT_FILEMODE_BLOB;
	upd.path = LOCK_FILE;
	if ((rc = git_blob_create_from_buffer(&upd.id, repo, body.ptr, body.len)) < 0) {
		rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot write the lock of env %s", env);
		goto out;
	}
	if ((rc = git_tree_create_updated(&tree_id, repo, NULL, 1, &upd)) < 0 ||
	    (rc = git_tree_lookup(&tree, repo, &tree_id)) < 0) {
		rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot write the lock tree of env %s", env);
		goto out;
	}
	if ((rc = gitrepo__signature(&sig, r, e)) < 0)
		goto out;
	rc = git_commit_create(out, repo, NULL, sig, sig, NULL, buf_cstr(&msg), tree, 0, NULL);
	if (rc < 0) {
		rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot write the lock commit of env %s", env);
		goto out;
	}
	rc = 0;
out:
	git_signature_free(sig);
	git_tree_free(tree);
	buf_release(&msg);
	buf_release(&body);
	free(json);
	json_decref(o);
	return rc;
}

/* Check info and write the lock commit (no ref). */
static int new_lock_commit(git_oid *id, struct gitrepo *r, const char *env, const struct gitstatus_lock_info *info,
			   struct err *e)
{
	char holder[HOLDER_MAX + 1], when[32], until[32];
	git_oid unused;
	long long pid;
	time_t t;
	int rc;

	if ((rc = check_env(env, e)) < 0)
		return rc;
	if (!info || !info->command || !info->command[0])
		return err_set(e, ROTOR_EINVALID, "cannot lock env %s: no command given", env);
	if (strlen(info->command) > COMMAND_MAX)
		return err_set(e, ROTOR_EINVALID, "cannot lock env %s: command longer than %d bytes",
			       env, COMMAND_MAX);
	if (info->desired && (rc = gitrepo__parse_id(&unused, info->desired, e)) < 0)
		return err_prefix(e, "cannot lock env %s: desired commit", env);
	if (info->holder) {
		if (!info->holder[0] || strlen(info->holder) > HOLDER_MAX)
			return err_set(e, ROTOR_EINVALID, "cannot lock env %s: the holder must be 1 to %d bytes",
				       env, HOLDER_MAX);
		snprintf(holder, sizeof(holder), "%s", info->holder);
	} else {
		default_holder(holder, sizeof(holder));
	}
	pid = info->pid ? info->pid : (long long)getpid();
	if (info->pid < 0 || info->time < 0)
		return err_set(e, ROTOR_EINVALID, "cannot lock env %s: negative pid or time", env);
	t = info->time ? (time_t)info->time : time(NULL);
	if (rfc3339_format(when, sizeof(when), t) < 0)
		return err_set(e, ROTOR_EINVALID, "cannot lock env %s: time %lld out of range", env,
			       (long long)t);
	if (info->until && (info->until < 0 || rfc3339_format(until, sizeof(until), (time_t)info->until) < 0))
		return err_set(e, ROTOR_EINVALID, "cannot lock env %s: until %lld out of range", env, info->until);
	return make_lock_commit(id, r, env, holder, pid, when, info->until ? until : NULL, info->command,
				info->desired, e);
}

int gitstatus_lock_commit(struct gitrepo *r, const char *env, const struct gitstatus_lock_info *info,
			  char out[41], struct err *e)
{
	git_oid id;
	int rc;

	out[0] = '\0';
	if ((rc = new_lock_commit(&id, r, env, info, e)) < 0)
		return rc;
	git_oid_tostr(out, 41, &id);
	return 0;
}

int gitstatus_lock_at(struct gitrepo *r, const char *commit, struct gitstatus_lock *out, struct err *e)
{
	git_oid unused;
	int rc;

	memset(out, 0, sizeof(*out));
	if ((rc = gitrepo__parse_id(&unused, commit, e)) < 0)
		return rc;
	snprintf(out->id, sizeof(out->id), "%s", commit);
	return read_lock_file(r, out, e);
}

int gitstatus_lock(struct gitrepo *r, const char *env, const struct gitstatus_lock_info *info,
		   char out[41], struct err *e)
{
	char name[REF_MAX], logmsg[96], desc[1024];
	git_oid id, zero;
	git_reference *ref = NULL;
	struct gitstatus_lock cur;
	int rc, attempt;

	if (out)
		out[0] = '\0';
	if ((rc = new_lock_commit(&id, r, env, info, e)) < 0)
		return rc;

	lock_refname(name, env);
	memset(&zero, 0, sizeof(zero));
	snprintf(logmsg, sizeof(logmsg), "rotor: lock env %s", env);
	for (attempt = 0;; attempt++) {
		/* force 1 with the zero id as current: create only if it does not exist. */
		rc = git_reference_create_matching(&ref, gitrepo__repo(r), name, &id, 1, &zero, logmsg);
		git_reference_free(ref);
		ref = NULL;
		if (rc == 0)
			break;
		if (rc == GIT_EMODIFIED) {
			/* It exists: say whose it is. */
			struct err sub = ERR_INIT;

			git_error_clear();
			rc = lookup_lock(NULL, r, env, &cur, &sub);
			if (rc == ROTOR_ENOTFOUND && attempt < LOCK_WAIT_ATTEMPTS)
				continue;     /* released in between: try again */
			if (rc == ROTOR_ENOTFOUND)
				return err_set(e, ROTOR_ESTATE, "cannot lock env %s: the lock keeps being taken "
					       "and released by others", env);
			if (rc < 0)
				return err_set(e, rc, "%s", sub.msg);
			return err_set(e, ROTOR_ESTATE, "env %s is locked by %s; wait, or use --force-unlock "
				       "if that run is dead", env, gitstatus_lock_describe(desc, sizeof(desc), &cur));
		}
		if (rc == GIT_ELOCKED && attempt < LOCK_WAIT_ATTEMPTS) {
			/* Another process is writing the ref right now. */
			git_error_clear();
			clock_sleep_ms(5 + (long)(jitter() % 10));
			continue;
		}
		if (rc == GIT_ELOCKED)
			return gitrepo__fail(e, rc, ROTOR_ESTATE, "cannot lock env %s: %s stays locked by "
					     "another writer; if no git or rotor process is running, "
					     "remove .git/%s.lock (left by a crash)", env, name, name);
		/* GIT_EEXISTS with force 1: another ref collides with the name (refs/rotor/lock/E/x). */
		return gitrepo__fail(e, rc, ROTOR_ERROR, "cannot lock env %s (%s)", env, name);
	}
	if (out)
		git_oid_tostr(out, 41, &id);
	return 0;
}

/* Delete ref (looked up as lock l) with compare-and-swap against its value at lookup. */
static int delete_lock(git_reference *ref, const char *env, const char *what, struct err *e)
{
	int rc = git_reference_delete(ref);

	if (rc == 0)
		return 0;
	if (rc == GIT_EMODIFIED)
		return gitrepo__fail(e, rc, ROTOR_ESTATE, "cannot %s env %s: the lock changed while "
				     "removing it (someone took it again); it stays", what, env);
	if (rc == GIT_ENOTFOUND)
		return gitrepo__fail(e, rc, ROTOR_ENOTFOUND, "cannot %s env %s: someone else removed "
				     "the lock meanwhile", what, env);
	if (rc == GIT_ELOCKED)
		return gitrepo__fail(e, rc, ROTOR_ESTATE, "cannot %s env %s: another process is changing "
				     "the lock", what, env);
	return gitrepo__fail(e, rc, ROTOR_ERROR, "cannot %s env %s", what, env);
}

int gitstatus_unlock(struct gitrepo *r, const char *env, const char *expected, struct err *e)
{
	char desc[1024], me[HOLDER_MAX + 1];
	git_reference *ref = NULL;
	struct gitstatus_lock cur;
	git_oid want;
	int rc, ours;

	if ((rc = check_env(env, e)) < 0)
		return rc;
	if (expected && (rc = gitrepo__parse_id(&want, expected, e)) < 0)
		return err_prefix(e, "cannot unlock env %s", env);
	if ((rc = lookup_lock(&ref, r, env, &cur, e)) < 0)
		return rc;
	if (expected) {
		ours = git_reference_type(ref) == GIT_REFERENCE_DIRECT &&
		       git_oid_equal(git_reference_target(ref), &want);
	} else {
		default_holder(me, sizeof(me));
		ours = cur.parsed && cur.pid == (long long)getpid() && strcmp(cur.holder, me) == 0;
	}
	if (!ours) {
		gitstatus_lock_describe(desc, sizeof(desc), &cur);
		if (expected)
			rc = err_set(e, ROTOR_ESTATE, "not unlocking env %s: it is locked by %s, not by lock "
				     "%.12s (that lock is gone)", env, desc, expected);
		else
			rc = err_set(e, ROTOR_ESTATE, "not unlocking env %s: it is locked by %s, not by this "
				     "process", env, desc);
		git_reference_free(ref);
		return rc;
	}
	rc = delete_lock(ref, env, "unlock", e);
	git_reference_free(ref);
	return rc;
}

int gitstatus_force_unlock(struct gitrepo *r, const char *env, struct gitstatus_lock *was,
			   struct err *e)
{
	git_reference *ref = NULL;
	struct gitstatus_lock cur;
	int rc;

	if (was)
		memset(was, 0, sizeof(*was));
	if ((rc = check_env(env, e)) < 0)
		return rc;
	if ((rc = lookup_lock(&ref, r, env, &cur, e)) < 0)
		return rc;
	rc = delete_lock(ref, env, "force-unlock", e);
	git_reference_free(ref);
	if (rc == 0 && was)
		*was = cur;
	return rc;
}

/* ---- status history ---------------------------------------------------------- */

/*
 * The current tip of the status branch: *have 0 when the branch does not
 * exist; otherwise *tip and *commit (the parent to use).
 */
static int read_tip(int *have, git_oid *tip, git_commit **commit, struct gitrepo *r,
		    const char *refname, const char *env, struct err *e)
{
	git_reference *ref = NULL;
	int rc;

	*have = 0;
	if (commit)
		*commit = NULL;
	rc = git_reference_lookup(&ref, gitrepo__repo(r), refname);
	if (rc == GIT_ENOTFOUND) {
		git_error_clear();
		return 0;
	}
	if (rc < 0)
		return gitrepo__fail(e, rc, ROTOR_ERROR, "cannot read branch " STATUS_BRANCH_PREFIX "%s", env);
	if (git_reference_type(ref) != GIT_REFERENCE_DIRECT) {
		git_reference_free(ref);
		return err_set(e, ROTOR_ESTATE, "branch " STATUS_BRANCH_PREFIX "%s is a symbolic ref", env);
	}
	git_oid_cpy(tip, git_reference_target(ref));
	git_reference_free(ref);
	if (commit && (rc = git_commit_lookup(commit, gitrepo__repo(r), tip)) < 0) {
		char hex[41];

		git_oid_tostr(hex, sizeof(hex), tip);
		return gitrepo__fail(e, rc, ROTOR_ESTATE, "branch " STATUS_BRANCH_PREFIX "%s does not point "
				     "at a readable commit (%.12s)", env, hex);
	}
	*have = 1;
	return 0;
}

/*
 * Check what a status commit holds and write its tree; *sig and msg get
 * the signature and the message.  The tree does not depend on the
 * parent: it is built once for every attempt.
 */
static int status_prepare(git_tree **tree, git_signature **sig, struct buf *msg, struct gitrepo *r,
			  const char *env, const struct gitrepo_file *files, size_t n, const char *message,
			  struct err *e)
{
	git_repository *repo = gitrepo__repo(r);
	git_tree_update *upd = NULL;
	git_oid tree_id;
	size_t i;
	int rc;

	*tree = NULL;
	*sig = NULL;
	if ((rc = check_env(env, e)) < 0)
		return rc;
	if (n == 0)
		return err_set(e, ROTOR_EINVALID, "nothing to record for env %s: no files", env);
	if ((rc = gitrepo__check_files(files, n, e)) < 0)
		return rc;
	for (i = 0; i < n; i++)
		if (!files[i].data)
			return err_set(e, ROTOR_EINVALID, "%s: no data (a status commit holds whole files; "
				       "leave a file out to drop it)", files[i].path);
	if (!message || !message[strspn(message, " \t\r\n")])
		return err_set(e, ROTOR_EINVALID, "empty commit message");
	if (!(upd = calloc(n, sizeof(*upd))))
		return err_nomem(e);
	for (i = 0; i < n; i++) {
		upd[i].action = GIT_TREE_UPDATE_UPSERT;
		upd[i].filemode = GIT_FILEMODE_BLOB;
		upd[i].path = files[i].path;
		rc = git_blob_create_from_buffer(&upd[i].id, repo, files[i].data, files[i].len);
		if (rc < 0) {
			rc = gitrepo__fail(e, rc, ROTOR_ERROR, "%s: cannot write blob", files[i].path);
			goto out;
		}
	}
	if ((rc = git_tree_create_updated(&tree_id, repo, NULL, n, upd)) < 0 ||
	    (rc = git_tree_lookup(tree, repo, &tree_id)) < 0) {
		rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot build the status tree of env %s", env);
		goto out;
	}
	if ((rc = gitrepo__signature(sig, r, e)) < 0)
		goto out;
	if (buf_puts(msg, message) < 0 ||
	    (message[strlen(message) - 1] != '\n' && buf_puts(msg, "\n") < 0)) {
		rc = err_set(e, ROTOR_ETOOBIG, "commit message too long");
		goto out;
	}
	rc = 0;
out:
	free(upd);
	return rc;
}

int gitstatus_status_commit(struct gitrepo *r, const char *env, const char *parent,
			    const struct gitrepo_file *files, size_t n, const char *message, char out[41],
			    struct err *e)
{
	git_tree *tree = NULL;
	git_signature *sig = NULL;
	git_commit *pc = NULL;
	struct buf msg = BUF_INIT;
	git_oid pid, id;
	const git_commit *parents[1];
	int rc;

	out[0] = '\0';
	if (parent && (rc = gitrepo__parse_id(&pid, parent, e)) < 0)
		return rc;
	if ((rc = status_prepare(&tree, &sig, &msg, r, env, files, n, message, e)) < 0)
		goto out;
	if (parent && (rc = git_commit_lookup(&pc, gitrepo__repo(r), &pid)) < 0) {
		rc = gitrepo__fail(e, rc, ROTOR_ESTATE, "the status of env %s: %.12s is not a readable commit", env,
				   parent);
		goto out;
	}
	parents[0] = pc;
	if ((rc = git_commit_create(&id, gitrepo__repo(r), NULL, sig, sig, NULL, buf_cstr(&msg), tree, pc ? 1 : 0,
				    parents)) < 0) {
		rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot create the status commit of env %s", env);
		goto out;
	}
	git_oid_tostr(out, 41, &id);
out:
	git_commit_free(pc);
	buf_release(&msg);
	git_signature_free(sig);
	git_tree_free(tree);
	return rc;
}

int gitstatus_record(struct gitrepo *r, const char *env, const struct gitrepo_file *files,
		     size_t n, const char *message, char out[41], struct err *e)
{
	git_repository *repo = gitrepo__repo(r);
	char ref[GITREPO_REFNAME_MAX], logmsg[96];
	git_tree *tree = NULL;
	git_signature *sig = NULL;
	git_commit *parent = NULL;
	git_reference *moved = NULL;
	struct buf msg = BUF_INIT;
	git_oid tip, commit_id, zero;
	int rc, is_head, have, attempt;

	out[0] = '\0';
	if ((rc = status_refname(ref, sizeof(ref), env, e)) < 0)
		return rc;
	if ((rc = gitrepo__head_names(&is_head, r, ref, e)) < 0)
		return rc;
	if (is_head)
		return err_set(e, ROTOR_ESTATE, "HEAD is on branch " STATUS_BRANCH_PREFIX "%s; recording "
			       "status would move HEAD under the work tree (check out another branch)", env);
	if ((rc = status_prepare(&tree, &sig, &msg, r, env, files, n, message, e)) < 0)
		goto out;

	memset(&zero, 0, sizeof(zero));
	snprintf(logmsg, sizeof(logmsg), "rotor: status of env %s", env);
	for (attempt = 0; attempt < RECORD_ATTEMPTS; attempt++) {
		const git_commit *parents[1];

		if ((rc = read_tip(&have, &tip, &parent, r, ref, env, e)) < 0)
			goto out;
		parents[0] = parent;
		rc = git_commit_create(&commit_id, repo, NULL, sig, sig, NULL, buf_cstr(&msg), tree,
				       have ? 1 : 0, parents);
		git_commit_free(parent);
		parent = NULL;
		if (rc < 0) {
			rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot create the status commit of env %s", env);
			goto out;
		}
		/* Compare-and-swap: move only from the tip the commit was built on. */
		rc = git_reference_create_matching(&moved, repo, ref, &commit_id, 1, have ? &tip : &zero,
						   logmsg);
		git_reference_free(moved);
		moved = NULL;
		if (rc == 0) {
			git_oid_tostr(out, 41, &commit_id);
			goto out;
		}
		if (rc != GIT_EMODIFIED && rc != GIT_ELOCKED) {
			rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot move branch " STATUS_BRANCH_PREFIX "%s",
					   env);
			goto out;
		}
		/* Someone else recorded first, or is recording: rebuild on the new tip. */
		git_error_clear();
		clock_sleep_ms(1 + (long)(jitter() % (5u + 5u * (unsigned)attempt)));
	}
	rc = err_set(e, ROTOR_ESTATE, "branch " STATUS_BRANCH_PREFIX "%s kept moving under us: gave up "
		     "after %d attempts", env, RECORD_ATTEMPTS);
out:
	buf_release(&msg);
	git_signature_free(sig);
	git_tree_free(tree);
	return rc;
}

int gitstatus_tip(struct gitrepo *r, const char *env, char out[41], struct err *e)
{
	char ref[GITREPO_REFNAME_MAX];
	git_oid tip;
	int rc, have;

	out[0] = '\0';
	if ((rc = status_refname(ref, sizeof(ref), env, e)) < 0)
		return rc;
	if ((rc = read_tip(&have, &tip, NULL, r, ref, env, e)) < 0)
		return rc;
	if (!have)
		return err_set(e, ROTOR_ENOTFOUND, "no status recorded for env %s yet (no branch "
			       STATUS_BRANCH_PREFIX "%s)", env, env);
	git_oid_tostr(out, 41, &tip);
	return 0;
}

int gitstatus_read_latest(struct gitrepo *r, const char *env, const char *path, size_t max,
			  struct buf *out, struct err *e)
{
	char tip[41];
	int rc;

	if ((rc = gitstatus_tip(r, env, tip, e)) < 0)
		return rc;
	return gitrepo_read(out, r, tip, path, max, e);
}

/* ---- history ------------------------------------------------------------------ */

/* Like clean_copy, but multi-byte UTF-8 text is kept (names are often not ASCII). */
static char *text_dup(const char *s, int keep_lines)
{
	size_t len = s ? strlen(s) : 0, i;
	char *d = malloc(len + 1);

	if (!d)
		return NULL;
	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		d[i] = (c < 0x20 && !(keep_lines && (c == '\n' || c == '\t'))) || c == 0x7f ? '?' : (char)c;
	}
	d[len] = '\0';
	return d;
}

static int fill_entry(struct gitstatus_entry *en, const git_commit *c, struct err *e)
{
	const git_signature *a = git_commit_author(c);
	const char *summary, *body;

	git_oid_tostr(en->id, sizeof(en->id), git_commit_id(c));
	en->time = (long long)a->when.time;
	en->tz_offset = a->when.offset;
	/* git_commit_summary/body cache into the commit: the cast drops const only. */
	summary = git_commit_summary((git_commit *)c);
	body = git_commit_body((git_commit *)c);
	en->author_name = text_dup(a->name, 0);
	en->author_email = text_dup(a->email, 0);
	en->subject = text_dup(summary ? summary : "", 0);
	en->body = text_dup(body ? body : "", 1);
	if (!en->author_name || !en->author_email || !en->subject || !en->body)
		return err_nomem(e);
	return 0;
}

int gitstatus_log(struct gitrepo *r, const char *env, size_t max, struct gitstatus_entry **out,
		  size_t *n, struct err *e)
{
	git_repository *repo = gitrepo__repo(r);
	char ref[GITREPO_REFNAME_MAX], tiphex[41];
	struct gitstatus_entry *v = NULL;
	git_revwalk *walk = NULL;
	git_commit *c = NULL;
	size_t cnt = 0, cap = 0;
	git_oid id;
	int rc;

	*out = NULL;
	*n = 0;
	if ((rc = status_refname(ref, sizeof(ref), env, e)) < 0)
		return rc;
	if ((rc = gitstatus_tip(r, env, tiphex, e)) < 0)
		return rc;

	/*
	 * First parents from the tip, unsorted: for the linear chain we write
	 * that is newest first, and libgit2 streams it instead of walking the
	 * whole history before returning the first commit (what a time or
	 * topological sort would do).
	 */
	if ((rc = git_revwalk_new(&walk, repo)) < 0 ||
	    (rc = git_revwalk_sorting(walk, GIT_SORT_NONE)) < 0 ||
	    (rc = git_revwalk_simplify_first_parent(walk)) < 0 ||
	    (rc = git_revwalk_push_ref(walk, ref)) < 0) {
		rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot walk branch " STATUS_BRANCH_PREFIX "%s", env);
		goto out;
	}
	while (max == 0 || cnt < max) {
		rc = git_revwalk_next(&id, walk);
		if (rc == GIT_ITEROVER) {
			git_error_clear();
			break;
		}
		if (rc < 0) {
			rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot walk branch " STATUS_BRANCH_PREFIX "%s",
					   env);
			goto out;
		}
		if ((rc = git_commit_lookup(&c, repo, &id)) < 0) {
			rc = gitrepo__fail(e, rc, ROTOR_ERROR, "cannot read a commit of branch "
					   STATUS_BRANCH_PREFIX "%s", env);
			goto out;
		}
		if (cnt == cap) {
			size_t ncap = cap ? cap * 2 : 16;
			struct gitstatus_entry *nv = realloc(v, ncap * sizeof(*nv));

			if (!nv) {
				rc = err_nomem(e);
				goto out;
			}
			v = nv;
			cap = ncap;
		}
		memset(&v[cnt], 0, sizeof(v[cnt]));
		cnt++;
		if ((rc = fill_entry(&v[cnt - 1], c, e)) < 0)
			goto out;
		git_commit_free(c);
		c = NULL;
	}
	*out = v;
	*n = cnt;
	v = NULL;
	cnt = 0;
	rc = 0;
out:
	git_commit_free(c);
	gitstatus_entries_free(v, cnt);
	git_revwalk_free(walk);
	return rc;
}

void gitstatus_entries_free(struct gitstatus_entry *v, size_t n)
{
	size_t i;

	if (!v)
		return;
	for (i = 0; i < n; i++) {
		free(v[i].author_name);
		free(v[i].author_email);
		free(v[i].subject);
		free(v[i].body);
	}
	free(v);
}
