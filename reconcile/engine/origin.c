/* origin.c -- the shared remote: settings, the desired commit, pushes (see origin.h). */
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "reconcile/engine/origin.h"
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
