/*
 * gitremote.c -- fetch, push and ls-remote through libgit2 (see
 * gitremote.h): bounded credentials, the host key handed to the
 * caller, rejections from push_update_reference, the server's words
 * from the sideband.
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <git2.h>

#include "gitops/gitremote.h"
#include "gitops/gitrepo_int.h"

#define URL_SHOWN 200
#define LINE_MAX_BYTES 4096

/* Everything the callbacks of one connection share. */
struct rcb {
	const struct gitremote_opts *o;
	const char *name;
	char url[URL_SHOWN];          /* for messages */
	char host[256];               /* from the URL */
	int port;
	struct err err;               /* a refusal decided in a callback (returned as GIT_EUSER) */
	int tries_user, tries_key, tries_token;
	char line[LINE_MAX_BYTES];    /* the server's line being assembled */
	size_t linelen;
	struct gitremote_update *u;   /* push only */
	size_t n;
	char (*newid)[41];            /* push: what each update sends */
};

static const struct gitremote_opts no_opts;

/*
 * Host and port of an ssh://[user@]host[:port]/path or scp-like
 * [user@]host:path URL; other URLs leave host empty.
 */
static void url_host(struct rcb *c, const char *url)
{
	const char *p = url, *h, *end;
	size_t len;

	c->host[0] = '\0';
	c->port = 22;
	if (strncmp(p, "ssh://", 6) == 0 || strncmp(p, "ssh+git://", 10) == 0 || strncmp(p, "git+ssh://", 10) == 0) {
		p = strstr(p, "://") + 3;
		end = p + strcspn(p, "/");
		h = memchr(p, '@', (size_t)(end - p));
		h = h ? h + 1 : p;
		if (*h == '[') {   /* [v6addr]:port */
			const char *rb = memchr(h, ']', (size_t)(end - h));

			if (!rb)
				return;
			len = (size_t)(rb - h - 1);
			if (len < sizeof(c->host)) {
				memcpy(c->host, h + 1, len);
				c->host[len] = '\0';
			}
			if (rb[1] == ':')
				c->port = atoi(rb + 2);
			return;
		} else {
			const char *colon = memchr(h, ':', (size_t)(end - h));

			len = (size_t)((colon ? colon : end) - h);
			if (colon)
				c->port = atoi(colon + 1);
		}
		if (len < sizeof(c->host)) {
			memcpy(c->host, h, len);
			c->host[len] = '\0';
		}
		return;
	}
	if (strstr(p, "://") || p[0] == '/' || p[0] == '.')
		return;
	end = strchr(p, ':');
	if (!end || memchr(p, '/', (size_t)(end - p)))
		return;   /* a local path with a colon after a slash */
	h = memchr(p, '@', (size_t)(end - p));
	h = h ? h + 1 : p;
	len = (size_t)(end - h);
	if (len < sizeof(c->host)) {
		memcpy(c->host, h, len);
		c->host[len] = '\0';
	}
}

static int refuse(struct rcb *c, int code, const char *fmt, ...) ROTOR_PRINTF(3, 4);
static int refuse(struct rcb *c, int code, const char *fmt, ...)
{
	va_list ap;
	char msg[ERR_MSG_MAX];

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	if (!c->err.code)
		err_set(&c->err, code, "%s", msg);
	git_error_set_str(GIT_ERROR_CALLBACK, msg);
	return GIT_EUSER;
}

/* ---- callbacks --------------------------------------------------------- */

static int cred_cb(git_credential **out, const char *url, const char *user_from_url, unsigned int allowed,
		   void *payload)
{
	struct rcb *c = payload;
	const char *user = user_from_url && *user_from_url ? user_from_url : NULL;

	(void)url;
	if (allowed & (GIT_CREDENTIAL_USERNAME | GIT_CREDENTIAL_SSH_KEY)) {
		if (!user)
			user = c->o->ssh_user;
		if (!user || !*user)
			return refuse(c, ROTOR_ERROR, "the URL names no user and none was given");
		if (allowed & GIT_CREDENTIAL_SSH_KEY) {
			if (c->tries_key++)
				return c->o->ssh_key ?
				       refuse(c, ROTOR_ERROR, "the server did not accept the key %s for user %s",
					      c->o->ssh_key, user) :
				       refuse(c, ROTOR_ERROR, "the server accepted no key of ssh-agent for user %s", user);
			if (c->o->ssh_key)
				return git_credential_ssh_key_new(out, user, NULL, c->o->ssh_key, c->o->ssh_passphrase);
			return git_credential_ssh_key_from_agent(out, user);
		}
		if (c->tries_user++)
			return refuse(c, ROTOR_ERROR, "the server did not accept user %s", user);
		return git_credential_username_new(out, user);
	}
	if (allowed & GIT_CREDENTIAL_USERPASS_PLAINTEXT) {
		if (!user)
			user = c->o->https_user ? c->o->https_user : "oauth2";
		if (!c->o->https_token || !*c->o->https_token)
			return refuse(c, ROTOR_ERROR, "the server asks for credentials and no token was given");
		if (c->tries_token++)
			return refuse(c, ROTOR_ERROR, "the server did not accept the token for user %s", user);
		return git_credential_userpass_plaintext_new(out, user, c->o->https_token);
	}
	return refuse(c, ROTOR_ERROR, "the server asks for credentials rotor cannot give (types 0x%x)", allowed);
}

static const char *raw_type_name(git_cert_ssh_raw_type_t t)
{
	switch (t) {
	case GIT_CERT_SSH_RAW_TYPE_RSA: return "ssh-rsa";
	case GIT_CERT_SSH_RAW_TYPE_DSS: return "ssh-dss";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_256: return "ecdsa-sha2-nistp256";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_384: return "ecdsa-sha2-nistp384";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ECDSA_521: return "ecdsa-sha2-nistp521";
	case GIT_CERT_SSH_RAW_TYPE_KEY_ED25519: return "ssh-ed25519";
	default: return NULL;
	}
}

static int cert_cb(git_cert *cert, int valid, const char *host, void *payload)
{
	struct rcb *c = payload;
	const git_cert_hostkey *hk;
	const char *type;
	struct err he = ERR_INIT;

	(void)valid;
	if (cert->cert_type == GIT_CERT_X509)
		return GIT_PASSTHROUGH;   /* TLS: libgit2's verdict against the system's CAs */
	if (cert->cert_type != GIT_CERT_HOSTKEY_LIBSSH2)
		return refuse(c, ROTOR_EINVALID, "%s presented a certificate of unknown kind; refusing", host);
	hk = (const git_cert_hostkey *)cert;
	if (!(hk->type & GIT_CERT_SSH_RAW) || !(type = raw_type_name(hk->raw_type)))
		return refuse(c, ROTOR_EINVALID, "%s presented a host key of unknown type; refusing", host);
	if (!c->o->hostkey)
		return refuse(c, ROTOR_EINVALID, "no known_hosts to check the host key of %s against; refusing", host);
	if (c->o->hostkey(c->o->hostkey_payload, c->host[0] ? c->host : host, c->port, type,
			  (const unsigned char *)hk->hostkey, hk->hostkey_len,
			  (hk->type & GIT_CERT_SSH_SHA256) ? hk->hash_sha256 : NULL, &he) < 0) {
		if (!c->err.code)
			c->err = he;
		git_error_set_str(GIT_ERROR_CALLBACK, he.msg);
		return GIT_EUSER;
	}
	return 0;
}

/* git's own pack progress ("Counting objects: 100% (1/1), done."): not the server's words. */
static int is_progress(const char *line)
{
	static const char *const prefixes[] = {
		"Enumerating objects:", "Counting objects:", "Compressing objects:", "Total ",
		"Writing objects:", "Resolving deltas:", "Delta compression", "Receiving objects:",
	};
	size_t i;

	for (i = 0; i < sizeof(prefixes) / sizeof(prefixes[0]); i++)
		if (strncmp(line, prefixes[i], strlen(prefixes[i])) == 0)
			return 1;
	return 0;
}

static void line_flush(struct rcb *c)
{
	size_t i;

	if (!c->linelen)
		return;
	c->line[c->linelen] = '\0';
	for (i = 0; i < c->linelen; i++)
		if ((unsigned char)c->line[i] < 0x20 || c->line[i] == 0x7f)
			c->line[i] = ' ';
	while (c->linelen && c->line[c->linelen - 1] == ' ')
		c->line[--c->linelen] = '\0';
	if (c->linelen && c->o->message && !is_progress(c->line))
		c->o->message(c->o->message_payload, c->line);
	c->linelen = 0;
}

/* The server's sideband text: whole lines out; a line ended by '\r' is progress, overwritten. */
static int message_cb(const char *str, int len, void *payload)
{
	struct rcb *c = payload;
	int i;

	for (i = 0; i < len; i++) {
		if (str[i] == '\n') {
			line_flush(c);
		} else if (str[i] == '\r') {
			c->linelen = 0;
		} else if (c->linelen + 1 < sizeof(c->line)) {
			c->line[c->linelen++] = str[i];
		}
	}
	return 0;
}

static struct gitremote_update *find_update(struct rcb *c, const char *dst, size_t *idx)
{
	size_t i;

	for (i = 0; i < c->n; i++)
		if (strcmp(c->u[i].dst, dst) == 0) {
			if (idx)
				*idx = i;
			return &c->u[i];
		}
	return NULL;
}

static int negotiation_cb(const git_push_update **ups, size_t len, void *payload)
{
	struct rcb *c = payload;
	size_t i, k;
	int stale = 0;

	for (i = 0; i < len; i++) {
		struct gitremote_update *u = find_update(c, ups[i]->dst_refname, &k);

		if (!u)
			continue;
		if (git_oid_is_zero(&ups[i]->src))
			u->remote_old[0] = '\0';
		else
			git_oid_tostr(u->remote_old, sizeof(u->remote_old), &ups[i]->src);
		git_oid_tostr(c->newid[k], sizeof(c->newid[k]), &ups[i]->dst);
		if (!u->expect || strcmp(u->expect, u->remote_old) == 0)
			continue;
		u->result = GITREMOTE_STALE;
		snprintf(u->reason, sizeof(u->reason), "%s is %s%.12s, expected %s%.12s", u->dst,
			 u->remote_old[0] ? "at " : "absent", u->remote_old, u->expect[0] ? "" : "absent", u->expect);
		if (!stale++)
			refuse(c, ROTOR_ESTATE, "%s", u->reason);
	}
	return stale ? GIT_EUSER : 0;
}

static int update_ref_cb(const char *refname, const char *status, void *payload)
{
	struct rcb *c = payload;
	struct gitremote_update *u = find_update(c, refname, NULL);

	if (!u)
		return 0;
	if (status) {
		u->result = GITREMOTE_REJECTED;
		snprintf(u->reason, sizeof(u->reason), "%s", status);
		err_one_line(u->reason);
	} else {
		u->result = GITREMOTE_OK;
	}
	return 0;
}

/* ---- connection set-up ------------------------------------------------- */

static int open_remote(git_remote **out, struct rcb *c, git_remote_callbacks *cb, struct gitrepo *r,
		       const char *name, const struct gitremote_opts *o, struct err *e)
{
	char shown_name[80];
	const char *url;
	int rc, valid = 0;

	memset(c, 0, sizeof(*c));
	c->o = o ? o : &no_opts;
	c->name = name;
	*out = NULL;
	if (!name || git_remote_name_is_valid(&valid, name) < 0 || !valid)
		return err_set(e, ROTOR_EINVALID, "invalid remote name \"%s\"",
			       gitrepo__shown(shown_name, sizeof(shown_name), name));
	rc = git_remote_lookup(out, gitrepo__repo(r), name);
	if (rc == GIT_ENOTFOUND || rc == GIT_EINVALIDSPEC) {
		git_error_clear();
		return err_set(e, ROTOR_ENOTFOUND, "the git repository has no remote \"%s\"", name);
	}
	if (rc < 0)
		return gitrepo__fail(e, rc, 0, "remote %s", name);
	url = git_remote_url(*out);
	gitrepo__shown(c->url, sizeof(c->url), url);
	if (!url || !*url) {
		git_remote_free(*out);
		*out = NULL;
		return err_set(e, ROTOR_EINVALID, "remote %s has no URL", name);
	}
	url_host(c, url);
	if (c->port < 1 || c->port > 65535) {
		git_remote_free(*out);
		*out = NULL;
		return err_set(e, ROTOR_EINVALID, "remote %s (%s): bad port", name, c->url);
	}
	git_remote_init_callbacks(cb, GIT_REMOTE_CALLBACKS_VERSION);
	cb->credentials = cred_cb;
	cb->certificate_check = cert_cb;
	cb->sideband_progress = message_cb;
	cb->payload = c;
	return 0;
}

/* The error of a libgit2 call on the remote: a callback's own refusal, or libgit2's message. */
static int remote_fail(struct rcb *c, struct err *e, int gcode, const char *what)
{
	line_flush(c);
	if (c->err.code) {
		git_error_clear();
		err_set(e, c->err.code, "%s (%s): %s", c->name, c->url, c->err.msg);
		return c->err.code;
	}
	if (gcode == GIT_ENONFASTFORWARD)
		return gitrepo__fail(e, gcode, ROTOR_ESTATE, "%s (%s): refused, not a fast-forward", c->name, c->url);
	return gitrepo__fail(e, gcode, gcode == GIT_ENOTFOUND ? ROTOR_ERROR : 0, "%s (%s): %s", c->name, c->url, what);
}

/* ---- the API ----------------------------------------------------------- */

int gitremote_url(struct buf *out, struct gitrepo *r, const char *name, struct err *e)
{
	git_remote_callbacks cb;
	git_remote *rem = NULL;
	struct rcb c;
	int rc;

	if ((rc = open_remote(&rem, &c, &cb, r, name, NULL, e)) < 0)
		return rc;
	rc = buf_puts(out, git_remote_url(rem));
	git_remote_free(rem);
	return rc ? err_set(e, rc, "remote %s: the URL does not fit", name) : 0;
}

int gitremote_fetch(struct gitrepo *r, const char *name, const char *const *refspecs, size_t n,
		    const struct gitremote_opts *o, struct err *e)
{
	git_fetch_options fo;
	git_remote_callbacks cb;
	git_remote *rem = NULL;
	git_strarray specs;
	struct rcb c;
	size_t i;
	int rc;

	if ((rc = open_remote(&rem, &c, &cb, r, name, o, e)) < 0)
		return rc;
	for (i = 0; i < n; i++) {
		const char *s = refspecs[i][0] == '+' ? refspecs[i] + 1 : refspecs[i];

		if (!*s) {
			git_remote_free(rem);
			return err_set(e, ROTOR_EINVALID, "empty refspec");
		}
	}
	git_fetch_options_init(&fo, GIT_FETCH_OPTIONS_VERSION);
	fo.callbacks = cb;
	fo.update_fetchhead = 0;
	fo.download_tags = GIT_REMOTE_DOWNLOAD_TAGS_NONE;
	fo.prune = GIT_FETCH_NO_PRUNE;
	specs.strings = (char **)refspecs;
	specs.count = n;
	rc = git_remote_fetch(rem, &specs, &fo, "rotor: fetch");
	if (rc < 0)
		rc = remote_fail(&c, e, rc, "fetch failed");
	line_flush(&c);
	git_remote_free(rem);
	return rc;
}

int gitremote_lookup(char out[41], int *found, struct gitrepo *r, const char *name, const char *ref,
		     const struct gitremote_opts *o, struct err *e)
{
	git_remote_callbacks cb;
	git_remote *rem = NULL;
	const git_remote_head **heads;
	size_t nheads, i;
	struct rcb c;
	int rc, valid = 0;

	out[0] = '\0';
	if (found)
		*found = 0;
	if (!ref || strncmp(ref, "refs/", 5) != 0 || git_reference_name_is_valid(&valid, ref) < 0 || !valid)
		return err_set(e, ROTOR_EINVALID, "invalid ref name \"%s\"", ref ? ref : "(null)");
	if ((rc = open_remote(&rem, &c, &cb, r, name, o, e)) < 0)
		return rc;
	if ((rc = git_remote_connect(rem, GIT_DIRECTION_FETCH, &cb, NULL, NULL)) < 0 ||
	    (rc = git_remote_ls(&heads, &nheads, rem)) < 0) {
		rc = remote_fail(&c, e, rc, "connect failed");
		goto out;
	}
	for (i = 0; i < nheads; i++)
		if (strcmp(heads[i]->name, ref) == 0) {
			git_oid_tostr(out, 41, &heads[i]->oid);
			if (found)
				*found = 1;
			goto out;
		}
	if (!found)
		rc = err_set(e, ROTOR_ENOTFOUND, "%s (%s) has no %s", name, c.url, ref);
out:
	line_flush(&c);
	git_remote_disconnect(rem);
	git_remote_free(rem);
	return rc;
}

static int is_hex40(const char *s)
{
	size_t i;

	for (i = 0; i < 40; i++)
		if (!s[i] || !strchr("0123456789abcdef", s[i]))
			return 0;
	return s[40] == '\0';
}

/*
 * libgit2 pushes refs only: a commit id given as the source goes out
 * through a temporary local ref, refs/rotor/tmp/push-PID-I, removed
 * after the push.
 */
static int temp_ref(git_reference **out, char *name, size_t len, struct gitrepo *r, const char *hex, size_t i,
		    struct err *e)
{
	git_oid oid;
	int rc;

	if ((rc = gitrepo__parse_id(&oid, hex, e)) < 0)
		return rc;
	snprintf(name, len, "refs/rotor/tmp/push-%ld-%zu", (long)getpid(), i);
	if ((rc = git_reference_create(out, gitrepo__repo(r), name, &oid, 1, "rotor: push")) < 0)
		return gitrepo__fail(e, rc, 0, "cannot push %.12s", hex);
	return 0;
}

static int check_update(const struct gitremote_update *u, struct err *e)
{
	int valid = 0;

	if (!u->dst || strncmp(u->dst, "refs/", 5) != 0 || git_reference_name_is_valid(&valid, u->dst) < 0 || !valid)
		return err_set(e, ROTOR_EINVALID, "invalid remote ref name \"%s\"", u->dst ? u->dst : "(null)");
	if (u->src && (!*u->src || u->src[0] == '+' || strchr(u->src, ':')))
		return err_set(e, ROTOR_EINVALID, "invalid source \"%s\" for %s", u->src, u->dst);
	if (u->expect && *u->expect && !is_hex40(u->expect))
		return err_set(e, ROTOR_EINVALID, "expected value for %s is not a commit id", u->dst);
	return 0;
}

int gitremote_push(struct gitrepo *r, const char *name, struct gitremote_update *u, size_t n,
		   const struct gitremote_opts *o, struct err *e)
{
	git_push_options po;
	git_remote_callbacks cb;
	git_remote *rem = NULL;
	git_strarray specs = { NULL, 0 };
	struct rcb c;
	char (*newid)[41] = NULL;
	git_reference **tmp = NULL;
	char tmpname[80];
	size_t i, j;
	int rc;

	for (i = 0; i < n; i++) {
		if ((rc = check_update(&u[i], e)) < 0)
			return rc;
		for (j = 0; j < i; j++)
			if (strcmp(u[i].dst, u[j].dst) == 0)
				return err_set(e, ROTOR_EINVALID, "%s given twice", u[i].dst);
		u[i].result = GITREMOTE_UNSENT;
		u[i].remote_old[0] = u[i].reason[0] = '\0';
	}
	if ((rc = open_remote(&rem, &c, &cb, r, name, o, e)) < 0)
		return rc;
	specs.strings = calloc(n ? n : 1, sizeof(char *));
	newid = calloc(n ? n : 1, sizeof(*newid));
	tmp = calloc(n ? n : 1, sizeof(*tmp));
	if (!specs.strings || !newid || !tmp) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < n; i++) {
		const char *src = u[i].src ? u[i].src : "";
		size_t len;

		if (u[i].src && is_hex40(u[i].src)) {
			if ((rc = temp_ref(&tmp[i], tmpname, sizeof(tmpname), r, u[i].src, i, e)) < 0)
				goto out;
			src = tmpname;
		}
		len = strlen(u[i].dst) + strlen(src) + 3;
		if (!(specs.strings[i] = malloc(len))) {
			rc = err_nomem(e);
			goto out;
		}
		specs.count = i + 1;
		snprintf(specs.strings[i], len, "%s%s:%s", u[i].force ? "+" : "", src, u[i].dst);
	}
	c.u = u;
	c.n = n;
	c.newid = newid;
	cb.push_negotiation = negotiation_cb;
	cb.push_update_reference = update_ref_cb;
	git_push_options_init(&po, GIT_PUSH_OPTIONS_VERSION);
	po.callbacks = cb;
	rc = git_remote_push(rem, &specs, &po);
	line_flush(&c);
	if (rc < 0) {
		rc = remote_fail(&c, e, rc, "push failed");
		goto out;
	}
	/* An update the remote already had is not reported back: it holds. */
	for (i = 0; i < n; i++)
		if (u[i].result == GITREMOTE_UNSENT && newid[i][0] &&
		    strcmp(newid[i], u[i].remote_old[0] ? u[i].remote_old : "0000000000000000000000000000000000000000") == 0)
			u[i].result = GITREMOTE_OK;
	for (i = 0; i < n; i++) {
		if (u[i].result == GITREMOTE_OK)
			continue;
		rc = err_set(e, ROTOR_ESTATE, "%s (%s) refused %s: %s", name, c.url, u[i].dst,
			     u[i].result == GITREMOTE_REJECTED ? u[i].reason : "not updated");
		break;
	}
out:
	for (i = 0; tmp && i < n; i++)
		if (tmp[i]) {
			git_reference_delete(tmp[i]);
			git_reference_free(tmp[i]);
		}
	free(tmp);
	for (i = 0; i < specs.count; i++)
		free(specs.strings[i]);
	free(specs.strings);
	free(newid);
	git_remote_free(rem);
	return rc;
}
