/*
 * client.c -- one client added, removed, or the CRLs signed again, as
 * one commit on a branch (see client.h).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconcile/engine/client.h"

#include "reconcile/engine/state.h"

#define MAX_FILES 16

/* One run: the state at HEAD, the secret, the files of the commit. */
struct job {
	struct state st;
	struct state_src src;
	struct gitrepo_head head;
	struct buf secret;
	int loaded;
	struct gitrepo_file files[MAX_FILES];
	struct buf data[MAX_FILES];
	char *paths[MAX_FILES];
	size_t n;
	time_t now;
};

int client_name_ok(const char *name)
{
	return name && spec_valid_leaf_name(name);
}

static void job_release(struct job *j)
{
	size_t i;

	for (i = 0; i < j->n; i++) {
		buf_wipe(&j->data[i]);
		free(j->paths[i]);
	}
	buf_wipe(&j->secret);
	if (j->loaded)
		state_release(&j->st);
	memset(j, 0, sizeof(*j));
}

/* A file of the commit: path under the env; data NULL deletes it.  Takes data's bytes. */
static int put(struct job *j, struct buf *data, struct err *e, const char *fmt, ...) ROTOR_PRINTF(4, 5);
static int put(struct job *j, struct buf *data, struct err *e, const char *fmt, ...)
{
	struct buf p = BUF_INIT;
	va_list ap;
	int rc;

	if (j->n == MAX_FILES)
		return err_set(e, ROTOR_ERROR, "too many files for one commit");
	rc = buf_printf(&p, "envs/%s/", j->st.env);
	va_start(ap, fmt);
	if (rc == 0)
		rc = buf_vprintf(&p, fmt, ap);
	va_end(ap);
	if (rc < 0 || p.err) {
		buf_release(&p);
		return err_nomem(e);
	}
	j->paths[j->n] = buf_detach(&p);
	j->files[j->n].path = j->paths[j->n];
	if (data) {
		j->data[j->n] = *data;
		memset(data, 0, sizeof(*data));
		j->files[j->n].data = j->data[j->n].ptr ? j->data[j->n].ptr : "";
		j->files[j->n].len = j->data[j->n].len;
	}
	j->n++;
	return 0;
}

static int read_gen(struct buf *out, const struct job *j, int gen, const char *rel, struct err *e)
{
	char path[512];

	snprintf(path, sizeof(path), "envs/%s/generations/%04d/%s", j->st.env, gen, rel);
	return state_read(out, &j->src, path, 1 << 20, e);
}

static const struct gen_info *gen_of(const struct state *st, int n)
{
	size_t i;

	for (i = 0; i < st->ngens; i++)
		if (st->gens[i].number == n)
			return &st->gens[i];
	return NULL;
}

static int bad_name(const char *name, struct err *e)
{
	return err_set(e, ROTOR_EINVALID, "invalid client name \"%.64s\": it is the certificate's CN and the "
		       "PostgreSQL user (letters, digits, '_', '.' and '-', at most 63, not starting with '.' or '-')",
		       name ? name : "");
}

/* The name (when the command takes one), the env at HEAD, the generations to change, the secret. */
static int begin(struct job *j, struct client_result *res, struct gitrepo *repo, const struct client_opts *o,
		 const char *what, struct diags *d, struct err *e)
{
	const char *env = o->env;
	char key_path[4096];
	size_t i;
	int rc;

	memset(res, 0, sizeof(*res));
	memset(j, 0, sizeof(*j));
	if (strcmp(what, "sign the CRLs from") != 0 && !client_name_ok(o->name))
		return bad_name(o->name, e);
	j->now = time(NULL);
	if ((rc = state_load_head(&j->st, &j->src, &j->head, repo, env, what, d, e)) < 0)
		return rc;
	j->loaded = 1;
	snprintf(res->head_branch, sizeof(res->head_branch), "%s", j->head.branch);
	res->crl_days = j->st.chain->crl_days;
	if (j->st.config->git_remote && !(res->remote = xstrdup(j->st.config->git_remote, e)))
		return ROTOR_ENOMEM;
	if (j->st.rotation->generation == 0)
		return err_set(e, ROTOR_ESTATE, "env %s has no generation yet (rotor rotate start makes the first)", env);
	res->gens[res->ngens++] = j->st.rotation->generation;
	if (j->st.rotation->target)
		res->gens[res->ngens++] = j->st.rotation->target;
	for (i = 0; i < res->ngens; i++) {
		const struct gen_info *g = gen_of(&j->st, res->gens[i]);

		if (!g || !g->manifest)
			return err_set(e, ROTOR_ESTATE, "generation %d of %s has no manifest", res->gens[i], env);
		if (g->manifest->imported)
			return err_set(e, ROTOR_ESTATE, "generation %d of %s was imported: its CA keys are not in the "
				       "repository, so rotor cannot sign for it (rotate to a generation rotor made first)",
				       res->gens[i], env);
	}
	if ((rc = state_key_path(key_path, sizeof(key_path), j->st.config, e)) < 0 ||
	    (rc = pki_secret_load(&j->secret, key_path, e)) < 0 ||
	    (rc = state_check_secret(&j->st, &j->src, buf_cstr(&j->secret), key_path, e)) < 0)
		return rc;
	return 0;
}

static int branch_free(const struct client_result *res, struct gitrepo *repo, struct err *e)
{
	int exists = 0, rc;

	if ((rc = gitrepo_branch_exists(&exists, repo, res->branch, e)) < 0)
		return rc;
	if (exists)
		return err_set(e, ROTOR_ESTATE, "branch %s exists: an earlier change waits for review; merge or "
			     "delete it first", res->branch);
	return 0;
}

static int commit(struct job *j, struct client_result *res, struct gitrepo *repo, struct buf *msg, struct err *e)
{
	int rc;

	if (buf_printf(msg, "\nRotor-Env: %s\n", j->st.env) < 0 || msg->err)
		return err_nomem(e);
	rc = gitrepo_commit_branch(res->commit, repo, j->head.commit, j->files, j->n, res->branch, buf_cstr(msg), e);
	if (rc == ROTOR_EEXISTS)
		err_set(e, ROTOR_EEXISTS, "branch %s was created by someone else meanwhile; nothing written", res->branch);
	return rc;
}

/* chain.yaml with name added or removed. */
static int put_chain(struct job *j, const char *add, const char *remove, struct err *e)
{
	struct buf text = BUF_INIT, out = BUF_INIT;
	char path[256];
	int rc;

	snprintf(path, sizeof(path), "envs/%s/chain.yaml", j->st.env);
	if ((rc = state_read(&text, &j->src, path, 1 << 20, e)) == 0 &&
	    (rc = spec_chain_edit_clients(&out, path, text.ptr, text.len, add, remove, e)) == 0)
		rc = put(j, &out, e, "chain.yaml");
	buf_release(&text);
	buf_release(&out);
	return rc;
}

static int put_manifest(struct job *j, const struct manifest *m, int gen, struct err *e)
{
	struct buf text = BUF_INIT;
	int rc = spec_manifest_emit(m, &text, e);

	if (rc == 0)
		rc = put(j, &text, e, "generations/%04d/manifest.yaml", gen);
	buf_release(&text);
	return rc;
}

/* A CA of generation gen ("root", "client-ca"), decrypted. */
static int load_ca(void **x, void **k, const struct job *j, int gen, const char *ca, struct err *e)
{
	struct buf crt = BUF_INIT, key = BUF_INIT;
	char rel[64];
	int rc;

	snprintf(rel, sizeof(rel), "ca/%s.crt", ca);
	rc = read_gen(&crt, j, gen, rel, e);
	snprintf(rel, sizeof(rel), "ca/%s.key", ca);
	if (rc == 0)
		rc = read_gen(&key, j, gen, rel, e);
	if (rc == 0)
		rc = pki_ca_load(x, k, crt.ptr, crt.len, key.ptr, key.len, buf_cstr(&j->secret), e);
	if (rc < 0)
		err_prefix(e, "generation %d %s", gen, ca);
	buf_release(&crt);
	buf_wipe(&key);
	return rc;
}

/* crl/<ca>.crl of generation gen signed again, with serial (may be NULL) added. */
static int put_crl(struct job *j, int gen, const char *ca, const char *serial, struct err *e)
{
	struct buf prev = BUF_INIT, out = BUF_INIT;
	void *x = NULL, *k = NULL;
	char rel[64];
	int rc;

	snprintf(rel, sizeof(rel), "crl/%s.crl", ca);
	rc = read_gen(&prev, j, gen, rel, e);
	if (rc == ROTOR_ENOTFOUND) {
		err_clear(e);
		rc = 0;
	}
	if (rc == 0)
		rc = load_ca(&x, &k, j, gen, ca, e);
	if (rc == 0)
		rc = pki_crl_sign(&out, x, k, prev.len ? prev.ptr : NULL, prev.len, serial ? &serial : NULL,
				  serial ? 1 : 0, j->now, j->st.chain->crl_days, e);
	if (rc == 0)
		rc = put(j, &out, e, "generations/%04d/%s", gen, rel);
	pki_ca_release(x, k);
	buf_release(&prev);
	buf_release(&out);
	return rc;
}

static size_t find_client(const struct manifest *m, const char *name)
{
	size_t i;

	for (i = 0; i < m->ncerts; i++)
		if (m->certs[i].role == CERT_ROLE_CLIENT && strcmp(m->certs[i].name, name) == 0)
			return i;
	return (size_t)-1;
}

static int in_chain(const struct chain_spec *c, const char *name)
{
	size_t i;

	for (i = 0; i < c->nclients; i++)
		if (strcmp(c->clients[i], name) == 0)
			return 1;
	return 0;
}

/* Issue name's leaf under generation gen's client CA; its files and manifest entry go into the commit. */
static int issue(struct job *j, int gen, const char *name, struct err *e)
{
	struct manifest *m = gen_of(&j->st, gen)->manifest, *one = NULL;
	struct pki_generation *g = NULL;
	struct pki_file *files = NULL;
	struct manifest_cert *nc;
	size_t nfiles = 0, i;
	void *x = NULL, *k = NULL;
	int rc;

	if ((rc = load_ca(&x, &k, j, gen, "client-ca", e)) < 0 ||
	    (rc = pki_issue_client(&g, gen, j->st.chain, name, x, k, j->now, e)) < 0 ||
	    (rc = pki_export(&files, &nfiles, &one, g, j->st.env, buf_cstr(&j->secret), j->now, e)) < 0)
		goto out;
	for (i = 0; i < nfiles && rc == 0; i++)
		if (strcmp(files[i].path, "manifest.yaml") != 0)
			rc = put(j, &files[i].data, e, "generations/%04d/%s", gen, files[i].path);
	if (rc < 0)
		goto out;
	if (!(nc = realloc(m->certs, (m->ncerts + 1) * sizeof(*nc)))) {
		rc = err_nomem(e);
		goto out;
	}
	m->certs = nc;
	m->certs[m->ncerts++] = one->certs[0];
	memset(&one->certs[0], 0, sizeof(one->certs[0]));
	rc = put_manifest(j, m, gen, e);
out:
	pki_ca_release(x, k);
	pki_generation_free(g);
	pki_files_free(files, nfiles);
	spec_manifest_free(one);
	return rc;
}

int client_add(struct client_result *res, struct gitrepo *repo, const struct client_opts *o, struct diags *d,
	       struct err *e)
{
	struct job j;
	struct buf msg = BUF_INIT;
	size_t i;
	int rc;

	if ((rc = begin(&j, res, repo, o, "add a client from", d, e)) < 0)
		goto out;
	if (in_chain(j.st.chain, o->name)) {
		rc = err_set(e, ROTOR_EEXISTS, "client %s is already in %s's chain.yaml", o->name, o->env);
		goto out;
	}
	for (i = 0; i < res->ngens; i++)
		if (find_client(gen_of(&j.st, res->gens[i])->manifest, o->name) != (size_t)-1) {
			rc = err_set(e, ROTOR_EEXISTS, "generation %d already has a client certificate %s",
				     res->gens[i], o->name);
			goto out;
		}
	snprintf(res->branch, sizeof(res->branch), "rotor/client/%s/add-%s", o->env, o->name);
	if ((rc = branch_free(res, repo, e)) < 0)
		goto out;
	for (i = 0; i < res->ngens && rc == 0; i++)
		rc = issue(&j, res->gens[i], o->name, e);
	if (rc < 0 || (rc = put_chain(&j, o->name, NULL, e)) < 0)
		goto out;
	buf_printf(&msg, "rotor: add client %s to %s\n\nA client certificate for %s (CN %s) from the client CA of "
			 "generation %d", o->name, o->env, o->name, o->name, res->gens[0]);
	if (res->ngens > 1)
		buf_printf(&msg, " and of target generation %d", res->gens[1]);
	buf_printf(&msg, ", its key encrypted with key id %s;\nchain.yaml's clients list names it.\n",
		   j.st.config->key_id ? j.st.config->key_id : "(none recorded)");
	rc = commit(&j, res, repo, &msg, e);
out:
	buf_release(&msg);
	job_release(&j);
	return rc;
}

int client_remove(struct client_result *res, struct gitrepo *repo, const struct client_opts *o, struct diags *d,
		  struct err *e)
{
	struct job j;
	struct buf msg = BUF_INIT;
	size_t i, h, r, at;
	int rc;

	if ((rc = begin(&j, res, repo, o, "remove a client from", d, e)) < 0)
		goto out;
	if (!in_chain(j.st.chain, o->name)) {
		rc = err_set(e, ROTOR_ENOTFOUND, "unknown client %s: it is not in %s's chain.yaml clients list",
			     o->name, o->env);
		goto out;
	}
	for (h = 0; h < j.st.hosts->nhosts; h++)
		for (r = 0; r < j.st.hosts->hosts[h].nroles; r++) {
			const struct host_role *hr = &j.st.hosts->hosts[h].roles[r];

			if (hr->role == SPEC_ROLE_CLIENT && hr->identity && strcmp(hr->identity, o->name) == 0) {
				rc = err_set(e, ROTOR_ESTATE, "client %s is still deployed: host %s uses it "
					     "(hosts.yaml); give that role another identity or remove it, apply, "
					     "then remove the client", o->name, j.st.hosts->hosts[h].name);
				goto out;
			}
		}
	snprintf(res->branch, sizeof(res->branch), "rotor/client/%s/remove-%s", o->env, o->name);
	if ((rc = branch_free(res, repo, e)) < 0)
		goto out;
	for (i = 0; i < res->ngens && rc == 0; i++) {
		struct manifest *m = gen_of(&j.st, res->gens[i])->manifest;
		const char *serial = NULL;

		if ((at = find_client(m, o->name)) != (size_t)-1) {
			struct manifest_cert gone = m->certs[at];

			snprintf(res->serials[i], sizeof(res->serials[i]), "%s", gone.serial ? gone.serial : "");
			serial = res->serials[i];
			if ((rc = put(&j, NULL, e, "generations/%04d/%s", res->gens[i], gone.cert)) < 0 ||
			    (gone.key && (rc = put(&j, NULL, e, "generations/%04d/%s", res->gens[i], gone.key)) < 0))
				break;
			memmove(&m->certs[at], &m->certs[at + 1], (m->ncerts - at - 1) * sizeof(*m->certs));
			m->ncerts--;
			spec_manifest_cert_release(&gone);
			if ((rc = put_manifest(&j, m, res->gens[i], e)) < 0)
				break;
		}
		if ((rc = put_crl(&j, res->gens[i], "root", NULL, e)) < 0 ||
		    (rc = put_crl(&j, res->gens[i], "client-ca", serial && *serial ? serial : NULL, e)) < 0)
			break;
	}
	if (rc < 0 || (rc = put_chain(&j, NULL, o->name, e)) < 0)
		goto out;
	buf_printf(&msg, "rotor: remove client %s from %s\n\n", o->name, o->env);
	for (i = 0; i < res->ngens; i++)
		if (res->serials[i][0])
			buf_printf(&msg, "Generation %d: serial %s revoked on crl/client-ca.crl.\n", res->gens[i],
				   res->serials[i]);
	buf_printf(&msg, "Its certificates and keys are deleted and chain.yaml no longer names it;\nevery "
			 "server refuses it once the CRL is applied. CRLs valid for %d days.\n", res->crl_days);
	rc = commit(&j, res, repo, &msg, e);
out:
	buf_release(&msg);
	job_release(&j);
	return rc;
}

int client_crl(struct client_result *res, struct gitrepo *repo, const struct client_opts *o, struct diags *d,
	       struct err *e)
{
	struct job j;
	struct buf msg = BUF_INIT;
	size_t i;
	int rc;

	if ((rc = begin(&j, res, repo, o, "sign the CRLs from", d, e)) < 0)
		goto out;
	snprintf(res->branch, sizeof(res->branch), "rotor/client/%s/crl-%lld", o->env, (long long)j.now);
	if ((rc = branch_free(res, repo, e)) < 0)
		goto out;
	for (i = 0; i < res->ngens && rc == 0; i++)
		if ((rc = put_crl(&j, res->gens[i], "root", NULL, e)) == 0)
			rc = put_crl(&j, res->gens[i], "client-ca", NULL, e);
	if (rc < 0)
		goto out;
	buf_printf(&msg, "rotor: sign the CRLs of %s again\n\nGeneration %d", o->env, res->gens[0]);
	if (res->ngens > 1)
		buf_printf(&msg, " and %d", res->gens[1]);
	buf_printf(&msg, ": crl/root.crl and crl/client-ca.crl, same revocations, valid for %d days.\n",
		   res->crl_days);
	rc = commit(&j, res, repo, &msg, e);
out:
	buf_release(&msg);
	job_release(&j);
	return rc;
}

void client_result_release(struct client_result *res)
{
	free(res->remote);
	memset(res, 0, sizeof(*res));
}

int client_gen_crls(struct pki_file **files, size_t *nfiles, const struct pki_generation *g, int crl_days,
		    time_t now, struct err *e)
{
	static const char *const path[2] = { "crl/root.crl", "crl/client-ca.crl" };
	static const size_t ca[2] = { 0, 2 };
	struct pki_file *nf;
	size_t i;
	int rc;

	if (g->ncerts < 3 || !g->certs[0].pkey || !g->certs[2].pkey)
		return 0;   /* imported: no CA key signs */
	if (!(nf = realloc(*files, (*nfiles + 2) * sizeof(*nf))))
		return err_nomem(e);
	*files = nf;
	for (i = 0; i < 2; i++) {
		struct pki_file *f = &nf[*nfiles];

		memset(f, 0, sizeof(*f));
		if (!(f->path = xstrdup(path[i], e)))
			return ROTOR_ENOMEM;
		(*nfiles)++;
		if ((rc = pki_crl_sign(&f->data, g->certs[ca[i]].x509, g->certs[ca[i]].pkey, NULL, 0, NULL, 0, now,
				       crl_days, e)) < 0)
			return rc;
	}
	return 0;
}
