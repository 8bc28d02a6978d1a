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

#endif
