/*
 * state.c -- one env's state files, read from a commit or the work tree,
 * validated one by one (spec) and then against each other (see state.h).
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "reconcile/engine/state.h"

#include <pwd.h>
#include <unistd.h>

#include "gitops/githistory.h"
#include "reconcile/pki/pki.h"
#include "reconcile/engine/plan.h"
#include "reconcile/engine/trust.h"

/* Repository-relative path rules, the same for git and the work tree. */
static int rel_path_ok(const char *p)
{
	const char *s = p;

	if (!*p || *p == '/')
		return 0;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return 0;
	for (s = p; s; s = strchr(s, '/')) {
		if (*s == '/')
			s++;
		if (*s == '/' || *s == '\0' || (s[0] == '.' && (s[1] == '/' || s[1] == '\0')) ||
		    (s[0] == '.' && s[1] == '.' && (s[2] == '/' || s[2] == '\0')))
			return 0;
	}
	return 1;
}

int state_read(struct buf *out, const struct state_src *src, const char *path,
	       size_t max, struct err *e)
{
	char full[4096 + 512];
	struct stat st;

	if (!rel_path_ok(path))
		return err_set(e, ROTOR_EINVALID, "invalid repository path \"%s\"", path);
	if (src->commit)
		return gitrepo_read(out, src->repo, src->commit, path, max, e);
	if ((size_t)snprintf(full, sizeof(full), "%s%s", src->workdir, path) >= sizeof(full))
		return err_set(e, ROTOR_EINVALID, "%s: path too long", path);
	if (lstat(full, &st) < 0) {
		if (errno == ENOENT || errno == ENOTDIR)
			return err_set(e, ROTOR_ENOTFOUND, "%s: no such file", path);
		return err_set(e, ROTOR_ERROR, "%s: %s", path, strerror(errno));
	}
	if (!S_ISREG(st.st_mode))
		return err_set(e, ROTOR_EINVALID, "%s: not a regular file (symbolic links are not followed)", path);
	return buf_read_file(out, full, max, e);
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int state_list(char ***names, size_t *n, const struct state_src *src,
	       const char *dir, struct err *e)
{
	char full[4096 + 512];
	struct dirent *de;
	char **v = NULL, **nv;
	size_t cnt = 0, cap = 0;
	DIR *d;

	*names = NULL;
	*n = 0;
	if (!rel_path_ok(dir))
		return err_set(e, ROTOR_EINVALID, "invalid repository path \"%s\"", dir);
	if (src->commit)
		return gitrepo_list(names, n, src->repo, src->commit, dir, e);
	snprintf(full, sizeof(full), "%s%s", src->workdir, dir);
	d = opendir(full);
	if (!d) {
		if (errno == ENOENT || errno == ENOTDIR)
			return err_set(e, ROTOR_ENOTFOUND, "%s: no such directory", dir);
		return err_set(e, ROTOR_ERROR, "%s: %s", dir, strerror(errno));
	}
	while ((de = readdir(d)) != NULL) {
		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (cnt + 2 > cap) {
			cap = cap ? cap * 2 : 16;
			nv = realloc(v, cap * sizeof(*v));
			if (!nv)
				goto nomem;
			v = nv;
		}
		if (!(v[cnt] = strdup(de->d_name)))
			goto nomem;
		v[++cnt] = NULL;
	}
	closedir(d);
	if (!v && !(v = calloc(1, sizeof(*v))))
		return err_nomem(e);
	qsort(v, cnt, sizeof(*v), cmp_str);
	*names = v;
	*n = cnt;
	return 0;
nomem:
	closedir(d);
	if (v) {
		v[cnt] = NULL;
		gitrepo_names_free(v);
	}
	return err_nomem(e);
}

int state_src_open(struct state_src *src, struct gitrepo *repo, const char *ref, int worktree, struct err *e)
{
	int rc;

	memset(src, 0, sizeof(*src));
	src->repo = repo;
	if (worktree) {
		if ((size_t)snprintf(src->workdir, sizeof(src->workdir), "%s", gitrepo_workdir(repo)) >= sizeof(src->workdir))
			return err_set(e, ROTOR_EINVALID, "the work tree path is too long");
		return 0;
	}
	rc = gitrepo_resolve(repo, ref ? ref : "HEAD", src->commit_id, e);
	if (rc == ROTOR_ENOTFOUND && !ref)
		return err_set(e, ROTOR_ESTATE, "the repository has no commits yet; commit rotor.yaml and envs/ "
				  "first, or check the work tree with --worktree");
	if (rc < 0)
		return rc;
	src->commit = src->commit_id;
	return 0;
}

/*
 * Read one state file into buf.  A missing file or a read failure
 * becomes a diagnostic; returns 1 when there is something to parse.
 */
static int read_for_spec(struct buf *b, const struct state_src *src, const char *path,
			 const char *hint, struct diags *d, struct err *e)
{
	struct err re = ERR_INIT;
	int rc;

	buf_release(b);
	rc = state_read(b, src, path, SPEC_MAX_BYTES + 1, &re);
	if (rc == 0)
		return 1;
	if (rc == ROTOR_ENOTFOUND)
		diags_add(d, path, 0, 0, "missing%s%s", hint ? " " : "", hint ? hint : "");
	else if (rc == ROTOR_ETOOBIG)
		diags_add(d, path, 0, 0, "file is larger than %zu bytes", (size_t)SPEC_MAX_BYTES);
	else if (rc == ROTOR_EINVALID)
		diags_add(d, path, 0, 0, "%s", re.msg);
	else {
		*e = re;
		return rc;
	}
	return 0;
}

static int has_name(char **v, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (strcmp(v[i], s) == 0)
			return 1;
	return 0;
}

static int gen_dir_number(const char *s)
{
	int i, v = 0;

	for (i = 0; i < 4; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (s[i] - '0');
	}
	return s[4] == '\0' && v > 0 ? v : -1;
}

static void check_env_consistency(struct state *st, const char *envdir, struct diags *d)
{
	char path[512];
	size_t i, j, k;
	int found;

	snprintf(path, sizeof(path), "%s/rotation.yaml", envdir);
	if (st->rotation) {
		int g = st->rotation->generation, t = st->rotation->target;

		found = 0;
		for (i = 0; i < st->ngens; i++)
			found |= st->gens[i].number == g;
		if (g > 0 && !found)
			diags_add(d, path, 0, 0, "generation %d is not in %s/generations/%04d", g, envdir, g);
		found = 0;
		for (i = 0; i < st->ngens; i++)
			found |= st->gens[i].number == t;
		if (t > 0 && !found)
			diags_add(d, path, 0, 0, "target generation %d is not in %s/generations/%04d", t, envdir, t);
	}
	if (!st->chain || !st->hosts)
		return;
	snprintf(path, sizeof(path), "%s/hosts.yaml", envdir);
	for (i = 0; i < st->hosts->nhosts; i++) {
		const struct host_spec *h = &st->hosts->hosts[i];

		for (j = 0; j < h->nroles; j++) {
			const struct host_role *r = &h->roles[j];

			if (!r->identity)
				continue;
			found = 0;
			if (r->role == SPEC_ROLE_SERVER) {
				for (k = 0; k < st->chain->nservers; k++) {
					const struct chain_server *sv = &st->chain->servers[k];

					if (strcmp(sv->name, r->identity) != 0)
						continue;
					found = 1;
					if (r->layout && r->layout->server_is_client && !(sv->eku_server && sv->eku_client))
						diags_add(d, path, 0, 0, "host %s: layout %s uses server %s as a server and as a "
									 "client of the other nodes: give it eku: [serverAuth, "
									 "clientAuth] in chain.yaml", h->name, r->layout->name, sv->name);
				}
			} else {
				found = has_name(st->chain->clients, st->chain->nclients, r->identity);
			}
			if (!found)
				diags_add(d, path, 0, 0, "host %s: %s identity \"%s\" is not a %s in chain.yaml",
					  h->name, r->role == SPEC_ROLE_SERVER ? "server" : "client",
					  r->identity, r->role == SPEC_ROLE_SERVER ? "server" : "client");
		}
	}
}

int state_load(struct state *st, const struct state_src *src, const char *env,
	       struct diags *d, struct err *e)
{
	struct buf b = BUF_INIT;
	char envdir[128], path[512];
	char **names = NULL;
	size_t n = 0, i;
	size_t before = d->n;
	int rc = 0, num;

	memset(st, 0, sizeof(*st));
	snprintf(st->env, sizeof(st->env), "%s", env);
	snprintf(envdir, sizeof(envdir), "envs/%s", env);

	if ((rc = read_for_spec(&b, src, "rotor.yaml", "(run rotor init)", d, e)) < 0)
		goto out;
	if (rc && spec_load_config(&st->config, "rotor.yaml", b.ptr, b.len, d) == ROTOR_ENOMEM) {
		rc = err_nomem(e);
		goto out;
	}

	snprintf(path, sizeof(path), "%s/chain.yaml", envdir);
	if ((rc = read_for_spec(&b, src, path, "(run rotor init --env NAME)", d, e)) < 0)
		goto out;
	if (rc && spec_load_chain(&st->chain, path, b.ptr, b.len, d) == ROTOR_ENOMEM) {
		rc = err_nomem(e);
		goto out;
	}

	snprintf(path, sizeof(path), "%s/hosts.yaml", envdir);
	if ((rc = read_for_spec(&b, src, path, NULL, d, e)) < 0)
		goto out;
	if (rc && spec_load_hosts(&st->hosts, path, b.ptr, b.len, d) == ROTOR_ENOMEM) {
		rc = err_nomem(e);
		goto out;
	}

	snprintf(path, sizeof(path), "%s/rotation.yaml", envdir);
	if ((rc = read_for_spec(&b, src, path, NULL, d, e)) < 0)
		goto out;
	if (rc && spec_load_rotation(&st->rotation, path, b.ptr, b.len, d) == ROTOR_ENOMEM) {
		rc = err_nomem(e);
		goto out;
	}

	snprintf(path, sizeof(path), "%s/generations", envdir);
	rc = state_list(&names, &n, src, path, e);
	if (rc == ROTOR_ENOTFOUND) {
		err_clear(e);
		n = 0;
	} else if (rc < 0) {
		goto out;
	}
	st->gens = calloc(n ? n : 1, sizeof(*st->gens));
	if (!st->gens) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct gen_info *g = &st->gens[st->ngens];

		num = gen_dir_number(names[i]);
		if (num < 0) {
			diags_add(d, path, 0, 0, "unexpected entry \"%s\" (generation directories are named 0001 to 9999)",
				  names[i]);
			continue;
		}
		g->number = num;
		st->ngens++;
		snprintf(path, sizeof(path), "%s/generations/%s/manifest.yaml", envdir, names[i]);
		if ((rc = read_for_spec(&b, src, path, NULL, d, e)) < 0)
			goto out;
		if (rc && (rc = spec_load_manifest(&g->manifest, path, b.ptr, b.len, d)) == ROTOR_ENOMEM) {
			err_nomem(e);
			goto out;
		}
		if (g->manifest) {
			if (g->manifest->generation != num)
				diags_add(d, path, 0, 0, "manifest says generation %d, directory is %04d",
					  g->manifest->generation, num);
			if (!g->manifest->env || strcmp(g->manifest->env, env) != 0)
				diags_add(d, path, 0, 0, "manifest says env \"%s\", directory is %s",
					  g->manifest->env ? g->manifest->env : "", envdir);
		}
		snprintf(path, sizeof(path), "%s/generations", envdir);
	}
	check_env_consistency(st, envdir, d);
	if ((rc = trust_load(st, src, time(NULL), d, e)) < 0)
		goto out;
	rc = d->n > before ? ROTOR_EINVALID : 0;
out:
	gitrepo_names_free(names);
	buf_release(&b);
	return rc;
}

void state_release(struct state *st)
{
	size_t i;

	spec_config_free(st->config);
	spec_chain_free(st->chain);
	spec_hosts_free(st->hosts);
	spec_rotation_free(st->rotation);
	for (i = 0; i < st->ngens; i++)
		spec_manifest_free(st->gens[i].manifest);
	free(st->gens);
	for (i = 0; i < st->npast; i++)
		spec_manifest_free(st->past[i].manifest);
	free(st->past);
	trust_release(st);
	memset(st, 0, sizeof(*st));
}

int state_generation_used(const struct state *st, int n)
{
	size_t i;

	for (i = 0; i < st->ngens; i++)
		if (st->gens[i].number == n)
			return 1;
	for (i = 0; i < st->npast; i++)
		if (st->past[i].number == n)
			return 1;
	return 0;
}

int state_load_past(struct state *st, const struct state_src *src, struct err *e)
{
	struct gitrepo_past_entry *v = NULL;
	struct buf b = BUF_INIT;
	char dir[128], path[256];
	size_t n = 0, i;
	int rc, num;

	if (!src->commit)
		return 0;
	snprintf(dir, sizeof(dir), "envs/%s/generations", st->env);
	if ((rc = gitrepo_dir_history(&v, &n, src->repo, src->commit, dir, 9999, e)) < 0)
		return rc;
	if (n && !(st->past = calloc(n, sizeof(*st->past)))) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < n; i++) {
		struct gen_info *g = &st->past[st->npast];
		struct diags d = { NULL, 0, 0 };
		struct manifest *m = NULL;

		if ((num = gen_dir_number(v[i].name)) < 0 || state_generation_used(st, num))
			continue;
		snprintf(path, sizeof(path), "%s/%s/manifest.yaml", dir, v[i].name);
		buf_release(&b);
		rc = gitrepo_read(&b, src->repo, v[i].commit, path, SPEC_MAX_BYTES, e);
		if (rc == ROTOR_ENOTFOUND || rc == ROTOR_ETOOBIG || rc == ROTOR_EINVALID) {
			err_clear(e);
			continue;
		}
		if (rc < 0)
			goto out;
		rc = spec_load_manifest(&m, path, b.ptr, b.len, &d);
		diags_release(&d);
		if (rc == ROTOR_ENOMEM) {
			rc = err_nomem(e);
			goto out;
		}
		/* Only a manifest that says what its directory says can be recognised by. */
		if (rc < 0 || !m || m->generation != num || !m->env || strcmp(m->env, st->env) != 0) {
			spec_manifest_free(m);
			continue;
		}
		g->number = num;
		g->manifest = m;
		memcpy(g->commit, v[i].commit, sizeof(g->commit));
		st->npast++;
	}
	rc = 0;
out:
	buf_release(&b);
	gitrepo_past_free(v, n);
	return rc;
}

/* Expand "~/" with $HOME; copy anything else. */
int state_expand_path(char *out, size_t len, const char *p, struct err *e)
{
	const char *home;

	if (p[0] == '~' && p[1] == '/') {
		home = getenv("HOME");
		if (!home || !*home)
			return err_set(e, ROTOR_EINVALID, "cannot expand %s: $HOME is not set", p);
		if ((size_t)snprintf(out, len, "%s/%s", home, p + 2) >= len)
			return err_set(e, ROTOR_EINVALID, "path too long: %.64s...", p);
		return 0;
	}
	if ((size_t)snprintf(out, len, "%s", p) >= len)
		return err_set(e, ROTOR_EINVALID, "path too long: %.64s...", p);
	return 0;
}

int state_key_path(char *out, size_t outlen, const struct rotor_config *c, struct err *e)
{
	const char *p = getenv("ROTOR_KEY_FILE");

	if (!p || !*p)
		p = c ? c->key_file : NULL;
	if (!p || !*p)
		return err_set(e, ROTOR_ESECRET, "no secret key file: set secrets.key_file in rotor.yaml or $ROTOR_KEY_FILE");
	if (p[0] != '/' && !(p[0] == '~' && p[1] == '/'))
		return err_set(e, ROTOR_ESECRET, "key file path \"%s\" must be absolute or start with ~/", p);
	if (state_expand_path(out, outlen, p, e) < 0)
		return e->code = ROTOR_ESECRET;
	return 0;
}

int state_load_head(struct state *st, struct state_src *src, struct gitrepo_head *head,
		    struct gitrepo *repo, const char *env, const char *what, struct diags *d, struct err *e)
{
	char dirty_path[512], prefix_env[128];
	const char *prefixes[2];
	int dirty = 0, rc;

	memset(st, 0, sizeof(*st));
	memset(src, 0, sizeof(*src));
	if ((rc = gitrepo_head(head, repo, e)) < 0)
		return rc;
	if (head->unborn)
		return err_set(e, ROTOR_ESTATE, "the repository has no commits yet; commit rotor.yaml and envs/%s first", env);
	if (head->detached)
		return err_set(e, ROTOR_ESTATE, "HEAD is detached (at %.12s); check out the branch to %s", head->commit, what);
	snprintf(prefix_env, sizeof(prefix_env), "envs/%s/", env);
	prefixes[0] = "rotor.yaml";
	prefixes[1] = prefix_env;
	if ((rc = gitrepo_dirty(&dirty, dirty_path, sizeof(dirty_path), repo, prefixes, 2, e)) < 0)
		return rc;
	if (dirty)
		return err_set(e, ROTOR_ESTATE, "%s has uncommitted changes; commit or stash them first "
			       "(rotor starts from the committed state)", dirty_path);
	src->repo = repo;
	memcpy(src->commit_id, head->commit, sizeof(src->commit_id));
	src->commit = src->commit_id;
	rc = state_load(st, src, env, d, e);
	if (rc == ROTOR_EINVALID && d->n)
		err_set(e, ROTOR_EINVALID, "envs/%s at %s is not valid", env, head->branch);
	if (rc < 0)
		state_release(st);
	return rc;
}

int observe_opts_from_state(struct observe_opts *oo, const struct state *st, const struct known_set *known,
			    struct observe_paths *paths, struct err *e)
{
	memset(oo, 0, sizeof(*oo));
	oo->hosts = st->hosts;
	oo->known = known;
	oo->generation = st->rotation->generation;
	oo->target = st->rotation->target;
	oo->user = st->config->ssh_user;
	if (!oo->user) {
		struct passwd *pw = getpwuid(getuid());

		oo->user = pw ? pw->pw_name : "root";
	}
	oo->port = st->config->ssh_port;
	if (st->config->ssh_identity) {
		if (state_expand_path(paths->identity, sizeof(paths->identity), st->config->ssh_identity, e) < 0)
			return e->code;
		oo->identity = paths->identity;
	}
	if (state_expand_path(paths->known_hosts, sizeof(paths->known_hosts),
			      st->config->ssh_known_hosts ? st->config->ssh_known_hosts : "~/.ssh/known_hosts", e) < 0)
		return e->code;
	oo->known_hosts = paths->known_hosts;
	oo->become = st->config->ssh_become_sudo;
	oo->connect_timeout_ms = (st->config->ssh_connect_timeout_s > 0 ? st->config->ssh_connect_timeout_s : 10) * 1000;
	oo->deadline_ms = 60000;
	oo->parallel = st->config->parallel > 0 ? st->config->parallel : 32;
	oo->max_file = OBSERVE_MAX_FILE;
	oo->now = time(NULL);
	return 0;
}

/* A generation's CRLs (root's, then the client CA's) when it has both files. */
static int material_crls(struct material *mat, const struct state_src *src, const char *env, struct err *e)
{
	static const char *const names[2] = { "root", "client-ca" };
	struct buf all = BUF_INIT, one = BUF_INIT;
	char path[512];
	int i, rc = 0;

	for (i = 0; i < 2 && rc == 0; i++) {
		snprintf(path, sizeof(path), "envs/%s/generations/%04d/crl/%s.crl", env, mat->generation, names[i]);
		buf_release(&one);
		if ((rc = state_read(&one, src, path, 1 << 20, e)) == ROTOR_ENOTFOUND) {
			err_clear(e);
			buf_release(&all);
			buf_release(&one);
			return 0;
		}
		if (rc == 0 && (buf_put(&all, one.ptr, one.len) < 0 ||
				((one.len == 0 || one.ptr[one.len - 1] != '\n') && buf_puts(&all, "\n") < 0)))
			rc = err_nomem(e);
	}
	if (rc == 0 && !(mat->crl_pem = buf_detach(&all)))
		rc = err_nomem(e);
	buf_release(&all);
	buf_release(&one);
	return rc;
}

/*
 * A problem with one file of a generation: with d, a diagnostic on that
 * file (its message without the path in front) and 0, so the caller goes
 * on; without d, rc as it is.
 */
static int material_problem(struct diags *d, const char *path, int rc, struct err *e)
{
	const char *m = e->msg;
	size_t n = strlen(path);

	if (!d || rc == ROTOR_ENOMEM)
		return rc;
	if (strncmp(m, path, n) == 0 && m[n] == ':' && m[n + 1] == ' ')
		m += n + 2;
	if (rc == ROTOR_ENOTFOUND)
		diags_add(d, path, 0, 0, "missing: its generation's manifest.yaml lists it");
	else
		diags_add(d, path, 0, 0, "%s", m);
	err_clear(e);
	return 0;
}

/*
 * One generation's certificates (and keys, with_keys) from src, checked
 * against its manifest; each problem a diagnostic on d when d is given.
 */
static int material_gen(struct material *mat, const struct state_src *src, const char *env, const struct gen_info *gi,
			int with_keys, struct diags *d, struct err *e)
{
	const struct manifest *m = gi->manifest;
	struct buf path = BUF_INIT, data = BUF_INIT;
	size_t c;
	int rc = 0;

	mat->generation = gi->number;
	mat->imported = m->imported;
	if (!(mat->certs = calloc(m->ncerts ? m->ncerts : 1, sizeof(*mat->certs))))
		return err_nomem(e);
	if ((rc = material_crls(mat, src, env, e)) < 0)
		return rc;
	for (c = 0; c < m->ncerts && rc == 0; c++) {
		const struct manifest_cert *mc = &m->certs[c];
		struct material_cert *mt = &mat->certs[mat->ncerts++];
		struct manifest_cert live;

		mt->role = mc->role;
		buf_release(&path);
		buf_release(&data);
		memset(&live, 0, sizeof(live));
		if (buf_printf(&path, "envs/%s/generations/%04d/%s", env, mat->generation, mc->cert) < 0 ||
		    !(mt->name = xstrdup(mc->name, e))) {
			rc = err_nomem(e);
			break;
		}
		if ((rc = state_read(&data, src, buf_cstr(&path), 1 << 20, e)) < 0 ||
		    (rc = pki_cert_describe(&live, data.ptr, data.len, e)) < 0) {
			if (rc != ROTOR_ENOTFOUND)
				err_prefix(e, "%s", buf_cstr(&path));
			rc = material_problem(d, buf_cstr(&path), rc, e);
			continue;
		}
		/*
		 * The file is the truth; a manifest that disagrees is refused.  observe
		 * describes a certificate it knows by fingerprint from its manifest.
		 */
		if (strcmp(live.fingerprint, mc->fingerprint) != 0)
			rc = err_set(e, ROTOR_EINVALID, "%s: fingerprint %s differs from its manifest's %s",
				     buf_cstr(&path), live.fingerprint, mc->fingerprint);
		else if (!mc->subject || strcmp(live.subject, mc->subject) != 0)
			rc = err_set(e, ROTOR_EINVALID, "%s: subject \"%s\" differs from its manifest's", buf_cstr(&path),
				     live.subject);
		else if (!mc->issuer || strcmp(live.issuer, mc->issuer) != 0)
			rc = err_set(e, ROTOR_EINVALID, "%s: issuer \"%s\" differs from its manifest's", buf_cstr(&path),
				     live.issuer);
		else if (!mc->not_after || strcmp(live.not_after, mc->not_after) != 0)
			rc = err_set(e, ROTOR_EINVALID, "%s: not_after %s differs from its manifest's", buf_cstr(&path),
				     live.not_after);
		mt->fingerprint = live.fingerprint;
		live.fingerprint = NULL;
		spec_manifest_cert_release(&live);
		if (rc < 0) {
			rc = material_problem(d, buf_cstr(&path), rc, e);
			continue;
		}
		if (data.len == 0 || data.ptr[data.len - 1] != '\n')
			buf_puts(&data, "\n");
		mt->pem = buf_detach(&data);
		if (with_keys && mc->key) {
			buf_release(&path);
			if (buf_printf(&path, "envs/%s/generations/%04d/%s", env, mat->generation, mc->key) < 0) {
				rc = err_nomem(e);
				break;
			}
			if ((rc = state_read(&data, src, buf_cstr(&path), 1 << 20, e)) < 0) {
				rc = material_problem(d, buf_cstr(&path), rc, e);
				continue;
			}
			mt->key_pem = buf_detach(&data);
		}
	}
	buf_release(&path);
	buf_release(&data);
	return rc;
}

int state_material(struct material_set *ms, const struct state_src *src, const struct state *st,
		   int with_keys, struct diags *d, struct err *e)
{
	size_t g, nd = d ? d->n : 0;
	int rc = 0;

	memset(ms, 0, sizeof(*ms));
	if (!(ms->v = calloc(st->ngens + st->npast ? st->ngens + st->npast : 1, sizeof(*ms->v))))
		return err_nomem(e);
	for (g = 0; g < st->ngens && rc == 0; g++)
		rc = material_gen(&ms->v[ms->n++], src, st->env, &st->gens[g], with_keys, d, e);
	for (g = 0; g < st->npast && rc == 0; g++) {
		struct state_src past = *src;

		/* Certificates only, from the newest commit that held the generation. */
		memcpy(past.commit_id, st->past[g].commit, sizeof(past.commit_id));
		past.commit = past.commit_id;
		ms->v[ms->n].past = 1;
		rc = material_gen(&ms->v[ms->n++], &past, st->env, &st->past[g], 0, NULL, e);
	}
	if (rc == 0 && d && d->n > nd)
		rc = err_set(e, ROTOR_EINVALID, "%zu problem%s in the generations' files", d->n - nd,
			     d->n - nd == 1 ? "" : "s");
	if (rc == 0)
		rc = trust_material(ms, st, e);
	if (rc < 0)
		material_release(ms);
	return rc;
}

/*
 * Check the secret before it is used: the key id in rotor.yaml must
 * match, and the newest generation's root key must decrypt with it.
 */
int state_check_secret(const struct state *st, const struct state_src *src, const char *secret,
		       const char *key_path, struct err *e)
{
	struct buf pem = BUF_INIT;
	char id[17], path[256];
	const struct gen_info *g = NULL;
	size_t i;
	int rc;

	pki_secret_id(id, secret);
	if (st->config->key_id && strcmp(id, st->config->key_id) != 0)
		return err_set(e, ROTOR_ESECRET,
			       "the secret key in %s (key id %s) is not this repository's (rotor.yaml says key id %s); "
			       "refusing to use it", key_path, id, st->config->key_id);
	for (i = 0; i < st->ngens; i++)
		if (st->gens[i].manifest && !st->gens[i].manifest->imported)
			g = &st->gens[i];
	if (!g)
		return 0;
	snprintf(path, sizeof(path), "envs/%s/generations/%04d/ca/root.key", st->env, g->number);
	rc = state_read(&pem, src, path, 1 << 20, e);
	if (rc == 0)
		rc = pki_key_check(pem.ptr, pem.len, secret, e);
	if (rc == ROTOR_ESECRET)
		err_set(e, ROTOR_ESECRET, "the secret key in %s does not decrypt %s; refusing to use it",
			key_path, path);
	else if (rc < 0)
		err_prefix(e, "checking the secret key against %s", path);
	buf_release(&pem);
	return rc;
}


/* Drop exact repeats (rotor.yaml is checked once per env). */
static void diags_dedupe(struct diags *d)
{
	size_t i, j, k = 0;

	for (i = 0; i < d->n; i++) {
		int dup = 0;

		for (j = 0; j < k && !dup; j++)
			dup = d->v[j].line == d->v[i].line && d->v[j].column == d->v[i].column &&
			      strcmp(d->v[j].path, d->v[i].path) == 0 && strcmp(d->v[j].msg, d->v[i].msg) == 0;
		if (dup) {
			free(d->v[i].path);
			free(d->v[i].msg);
		} else {
			d->v[k++] = d->v[i];
		}
	}
	d->n = k;
}

int state_validate(char ***envs, size_t *nenvs, const struct state_src *src, const char *env,
		   struct diags *d, struct err *e)
{
	struct state st;
	size_t i;
	int rc;

	*envs = NULL;
	*nenvs = 0;
	if (!env) {
		if ((rc = state_list(envs, nenvs, src, "envs", e)) < 0 && rc != ROTOR_ENOTFOUND)
			return rc;
		if (*nenvs == 0) {
			gitrepo_names_free(*envs);
			*envs = NULL;
			err_clear(e);
			return err_set(e, ROTOR_ENOTFOUND, "no environments under envs/%s (run rotor init)",
				       src->commit ? " at this commit" : " in the work tree");
		}
	}
	for (i = 0; env ? i < 1 : i < *nenvs; i++) {
		const char *name = env ? env : (*envs)[i];

		if (!env_name_valid(name)) {
			diags_add(d, "envs", 0, 0, "\"%s\" is not a valid environment name", name);
			continue;
		}
		rc = state_load(&st, src, name, d, e);
		if (rc == 0) {
			/* Every file of every generation there, and each certificate the one its manifest names. */
			struct material_set ms;

			rc = state_material(&ms, src, &st, 1, d, e);
			if (rc == ROTOR_EINVALID)
				err_clear(e);
			material_release(&ms);
		}
		state_release(&st);
		if (rc < 0 && e->code)
			goto fail;
	}
	diags_dedupe(d);
	if (d->n == 0)
		return 0;
	rc = err_set(e, ROTOR_EINVALID, "%zu problem%s found", d->n, d->n == 1 ? "" : "s");
fail:
	gitrepo_names_free(*envs);
	*envs = NULL;
	*nenvs = 0;
	return rc;
}
