/*
 * import.c -- adopt a fleet's certificates as generation 1 (see import.h).
 */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconcile/engine/import.h"

#include "common/timefmt.h"
#include "reconcile/engine/observe.h"
#include "reconcile/engine/state.h"
#include "reconcile/pki/pki.h"
#include "reconcile/tls/verify.h"

struct leaf {
	const char *identity;
	const struct obs_cert *cert;
	const char *host, *path;
	int server;
};

struct found {
	struct leaf *leaves;
	size_t nleaves;
	const struct obs_cert **pool;     /* every distinct certificate seen, by fingerprint */
	size_t npool;
	size_t problems;
	struct buf *lines;                /* the result's */
};

static void line(struct found *f, const char *fmt, va_list ap) ROTOR_PRINTF(2, 0);
static void line(struct found *f, const char *fmt, va_list ap)
{
	buf_vprintf(f->lines, fmt, ap);
	buf_puts(f->lines, "\n");
}

static void problem(struct found *f, const char *fmt, ...) ROTOR_PRINTF(2, 3);
static void problem(struct found *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line(f, fmt, ap);
	va_end(ap);
	f->problems++;
}

/* A line that is not a reason to refuse (a detail, a note). */
static void detail(struct found *f, const char *fmt, ...) ROTOR_PRINTF(2, 3);
static void detail(struct found *f, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	line(f, fmt, ap);
	va_end(ap);
}

static int pool_add(struct found *f, const struct obs_cert *c)
{
	size_t i;

	for (i = 0; i < f->npool; i++)
		if (strcmp(f->pool[i]->fingerprint, c->fingerprint) == 0)
			return 0;
	f->pool[f->npool++] = c;
	return 0;
}

/* Walk the observed hosts; collect leaves and the pool; report file problems. */
static int collect(struct found *f, const struct obs_host *h, size_t nh)
{
	size_t i, r, j, k, ncerts = 0, nroles = 0;

	for (i = 0; i < nh; i++) {
		nroles += h[i].nroles;
		for (j = 0; j < h[i].nfiles; j++)
			ncerts += h[i].files[j].ncerts;
	}
	f->pool = calloc(ncerts + 1, sizeof(*f->pool));
	f->leaves = calloc(nroles + 1, sizeof(*f->leaves));
	if (!f->pool || !f->leaves)
		return ROTOR_ENOMEM;
	for (i = 0; i < nh; i++) {
		if (!h[i].reachable) {
			problem(f, "%s", h[i].error ? h[i].error : h[i].name);
			continue;
		}
		for (r = 0; r < h[i].nroles; r++) {
			const struct obs_role *role = &h[i].roles[r];

			for (j = role->first; j < role->first + role->nfiles; j++) {
				const struct obs_file *of = &h[i].files[j];

				if (!of->present) {
					problem(f, "%s: %s is missing", h[i].name, of->path);
					continue;
				}
				if (of->problem) {
					problem(f, "%s: %s %s", h[i].name, of->path, of->problem);
					continue;
				}
				if (of->content == SPEC_CONTENT_KEY) {
					if (of->key != OBS_KEY_MATCH)
						problem(f, "%s: %s does not hold the key of the role's certificate", h[i].name,
							of->path);
					continue;
				}
				for (k = 0; k < of->ncerts; k++)
					pool_add(f, &of->certs[k]);
				if ((of->content == SPEC_CONTENT_LEAF || of->content == SPEC_CONTENT_LEAF_CHAIN) &&
				    of->ncerts > 0 && role->identity) {
					struct leaf *l = &f->leaves[f->nleaves++];

					l->identity = role->identity;
					l->cert = &of->certs[0];
					l->host = h[i].name;
					l->path = of->path;
					l->server = role->role == SPEC_ROLE_SERVER;
				}
			}
		}
	}
	return 0;
}

static int self_issued(const struct obs_cert *c)
{
	return strcmp(c->subject, c->issuer) == 0;
}

/* The one pool certificate whose subject is name (NULL if none; *many when ambiguous). */
static const struct obs_cert *by_subject(const struct found *f, const char *name, int *many)
{
	const struct obs_cert *hit = NULL;
	size_t i;

	*many = 0;
	for (i = 0; i < f->npool; i++)
		if (strcmp(f->pool[i]->subject, name) == 0) {
			if (hit)
				*many = 1;
			hit = f->pool[i];
		}
	return hit;
}

/* The CA that issued every leaf of one side; NULL (with problems) if there is not exactly one. */
static const struct obs_cert *side_ca(struct found *f, int server, const struct obs_cert *root)
{
	const struct obs_cert *ca = NULL, *c;
	const char *side = server ? "server" : "client";
	size_t i;
	int many;

	for (i = 0; i < f->nleaves; i++) {
		const struct leaf *l = &f->leaves[i];

		if (l->server != server)
			continue;
		c = by_subject(f, l->cert->issuer, &many);
		if (!c) {
			problem(f, "%s: the CA that issued %s (%s) is in no file; %s should hold the leaf and its CA",
				l->host, l->path, l->cert->issuer, l->path);
			continue;
		}
		if (many) {
			problem(f, "%s: more than one certificate is named %s; cannot tell which issued %s", l->host,
				l->cert->issuer, l->path);
			continue;
		}
		if (c == root || self_issued(c)) {
			problem(f, "%s: %s is signed by the root itself; rotor needs a %s CA between them", l->host,
				l->path, side);
			continue;
		}
		if (ca && ca != c) {
			problem(f, "%s leaves come from two CAs: %s and %s", side, ca->subject, c->subject);
			continue;
		}
		ca = c;
	}
	return ca;
}

static int add_cert(struct manifest *m, struct buf *files_text, const struct obs_cert *c, const char *name,
		    enum cert_role role, const char *path, struct err *e)
{
	struct manifest_cert *mc = &m->certs[m->ncerts];

	memset(mc, 0, sizeof(*mc));
	if (pki_cert_describe(mc, c->pem, strlen(c->pem), e) < 0)
		return e->code;
	m->ncerts++;
	mc->role = role;
	if (!(mc->name = xstrdup(name, e)) || !(mc->cert = xstrdup(path, e)))
		return ROTOR_ENOMEM;
	if (buf_puts(files_text, c->pem) < 0)
		return err_nomem(e);
	return 0;
}

struct chain_found {
	const struct obs_cert *root, *sca, *cca;
};

/* One root, one CA per side under it, every leaf verified: problems in f for anything else. */
static int check_chain(struct chain_found *c, struct found *f, time_t now, struct err *e)
{
	const struct obs_cert *root = NULL, *sca = NULL, *cca = NULL;
	char vreason[256];
	size_t i, j, nroots = 0;
	int many, rc;

	for (i = 0; i < f->npool; i++)
		if (self_issued(f->pool[i])) {
			nroots++;
			if (!root)
				root = f->pool[i];
		}
	if (nroots == 0 && f->problems == 0)
		problem(f, "no host holds a root certificate (a self-signed CA) in its trust bundle");
	if (nroots > 1) {
		problem(f, "the hosts hold %zu root certificates; import needs one chain (finish any rotation by hand first):", nroots);
		for (i = 0; i < f->npool; i++)
			if (self_issued(f->pool[i]))
				detail(f, "  root %s, sha256 %s", f->pool[i]->subject, f->pool[i]->fingerprint);
	}
	if (root && nroots == 1) {
		sca = side_ca(f, 1, root);
		cca = side_ca(f, 0, root);
		if (!cca) {
			/* No client leaf on any host: the client CA is the other CA the bundles hold. */
			for (i = 0; i < f->npool; i++)
				if (f->pool[i] != root && f->pool[i] != sca && !self_issued(f->pool[i]) &&
				    strcmp(f->pool[i]->issuer, root->subject) == 0 &&
				    by_subject(f, f->pool[i]->subject, &many) && !many)
					cca = f->pool[i];
		}
		if (!sca)
			problem(f, "no server CA found (no server leaf with its CA on any host)");
		if (!cca)
			problem(f, "no client CA found (no client leaf, and no second CA in the trust bundles)");
		if (sca && cca && sca == cca)
			problem(f, "one CA (%s) issues both server and client certificates; rotor needs one for each side",
				sca->subject);
	}
	/* Every leaf verifies; one certificate per identity; client CN is the user. */
	for (i = 0; root && sca && cca && i < f->nleaves; i++) {
		const struct leaf *l = &f->leaves[i];
		struct buf lp = BUF_INIT;
		struct verify_req vr;
		char want_cn[80];
		int ok = 0;

		for (j = 0; j < i; j++)
			if (strcmp(f->leaves[j].identity, l->identity) == 0 && f->leaves[j].server == l->server &&
			    strcmp(f->leaves[j].cert->fingerprint, l->cert->fingerprint) != 0)
				problem(f, "%s %s has two certificates: %s on %s and %s on %s",
					l->server ? "server" : "client", l->identity, f->leaves[j].path, f->leaves[j].host,
					l->path, l->host);
		snprintf(want_cn, sizeof(want_cn), "CN=%s", l->identity);
		if (!l->server && strncmp(l->cert->subject, want_cn, strlen(want_cn)) != 0)
			problem(f, "%s: %s is for %s, but the role's user is %s (PostgreSQL maps the CN to the user)",
				l->host, l->path, l->cert->subject, l->identity);
		buf_puts(&lp, l->cert->pem);
		if (buf_puts(&lp, (l->server ? sca : cca)->pem) < 0 || lp.err) {
			buf_release(&lp);
			return err_nomem(e);
		}
		memset(&vr, 0, sizeof(vr));
		vr.leaf_pem = lp.ptr;
		vr.leaf_len = lp.len;
		vr.trust_pem = root->pem;
		vr.trust_len = strlen(root->pem);
		vr.purpose = l->server ? VERIFY_SERVER : VERIFY_CLIENT;
		vr.at = now;
		rc = verify_chain(&ok, vreason, sizeof(vreason), &vr, e);
		buf_release(&lp);
		if (rc < 0)
			return rc;
		if (!ok)
			problem(f, "%s: %s does not verify as a %s certificate under %s: %s", l->host, l->path,
				l->server ? "server" : "client", root->subject, vreason);
	}
	c->root = root;
	c->sca = sca;
	c->cca = cca;
	return 0;
}

/* Generation 1 from what was found: CAs, then leaves in chain.yaml order, committed on res->branch. */
static int commit_generation(struct import_result *res, struct found *f, const struct chain_found *c,
			     const struct state *st, const struct gitrepo_head *head, struct gitrepo *repo,
			     time_t now, struct err *e)
{
	const char *env = st->env;
	struct rotation_spec rot = { 1, 0, SPEC_PHASE_STABLE };
	struct manifest *m;
	struct buf *texts = NULL, mtext = BUF_INIT, rtext = BUF_INIT, msg = BUF_INIT;
	struct gitrepo_file *gf = NULL;
	char **names = NULL;
	char created[32];
	size_t i, j, nfiles = 0;
	int rc = 0;

	if (!(m = res->manifest = calloc(1, sizeof(*m))))
		return err_nomem(e);
	m->version = 1;
	m->generation = 1;
	m->imported = 1;
	m->certs = calloc(3 + f->nleaves, sizeof(*m->certs));
	texts = calloc(3 + f->nleaves + 2, sizeof(*texts));
	gf = calloc(3 + f->nleaves + 2, sizeof(*gf));
	names = calloc(3 + f->nleaves + 2, sizeof(*names));
	if (!m->certs || !texts || !gf || !names || rfc3339_format(created, sizeof(created), now) < 0 ||
	    !(m->env = xstrdup(env, e)) || !(m->created = xstrdup(created, e))) {
		rc = err_nomem(e);
		goto out;
	}
	if ((rc = add_cert(m, &texts[nfiles++], c->root, "root", CERT_ROLE_ROOT, "ca/root.crt", e)) < 0 ||
	    (rc = add_cert(m, &texts[nfiles++], c->sca, "server-ca", CERT_ROLE_SERVER_CA, "ca/server-ca.crt", e)) < 0 ||
	    (rc = add_cert(m, &texts[nfiles++], c->cca, "client-ca", CERT_ROLE_CLIENT_CA, "ca/client-ca.crt", e)) < 0)
		goto out;
	for (j = 0; j < st->chain->nservers + st->chain->nclients; j++) {
		int server = j < st->chain->nservers;
		const char *id = server ? st->chain->servers[j].name : st->chain->clients[j - st->chain->nservers];
		const struct leaf *l = NULL;
		char path[160];

		for (i = 0; i < f->nleaves && !l; i++)
			if (f->leaves[i].server == server && strcmp(f->leaves[i].identity, id) == 0)
				l = &f->leaves[i];
		if (!l) {
			detail(f, "note: %s %s is on no host; generation 1 has no certificate for it",
			       server ? "server" : "client", id);
			continue;
		}
		snprintf(path, sizeof(path), "%s/%s.crt", server ? "servers" : "clients", id);
		if ((rc = add_cert(m, &texts[nfiles++], l->cert, id, server ? CERT_ROLE_SERVER : CERT_ROLE_CLIENT,
				   path, e)) < 0)
			goto out;
	}
	if ((rc = spec_manifest_emit(m, &mtext, e)) < 0)
		goto out;
	if (spec_rotation_emit(&rot, &rtext) < 0) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < nfiles; i++) {
		struct buf p = BUF_INIT;

		if (buf_printf(&p, "envs/%s/generations/0001/%s", env, m->certs[i].cert) < 0) {
			rc = err_nomem(e);
			goto out;
		}
		names[i] = buf_detach(&p);
		gf[i].path = names[i];
		gf[i].data = texts[i].ptr;
		gf[i].len = texts[i].len;
	}
	{
		struct buf p1 = BUF_INIT, p2 = BUF_INIT;

		if (buf_printf(&p1, "envs/%s/generations/0001/manifest.yaml", env) < 0 ||
		    buf_printf(&p2, "envs/%s/rotation.yaml", env) < 0) {
			buf_release(&p1);
			rc = err_nomem(e);
			goto out;
		}
		names[nfiles] = buf_detach(&p1);
		names[nfiles + 1] = buf_detach(&p2);
	}
	gf[nfiles].path = names[nfiles];
	gf[nfiles].data = mtext.ptr;
	gf[nfiles].len = mtext.len;
	gf[nfiles + 1].path = names[nfiles + 1];
	gf[nfiles + 1].data = rtext.ptr;
	gf[nfiles + 1].len = rtext.len;
	if (buf_printf(&msg, "rotor: import %s from %zu hosts as generation 1\n\n"
			     "Certificates only (imported: true; keys stay on the hosts and are never\n"
			     "rewritten by rotor): root %s, %zu certificates in all.\n"
			     "rotation.yaml: generation 1, phase stable.\n\nRotor-Env: %s\nRotor-Generation: 1\n",
		       env, res->nhosts, c->root->subject, m->ncerts, env) < 0) {
		rc = err_nomem(e);
		goto out;
	}
	rc = gitrepo_commit_branch(res->commit, repo, head->commit, gf, nfiles + 2, res->branch, buf_cstr(&msg), e);
out:
	for (i = 0; names && i < nfiles + 2; i++)
		free(names[i]);
	free(names);
	for (i = 0; texts && i < nfiles; i++)
		buf_release(&texts[i]);
	free(texts);
	free(gf);
	buf_release(&mtext);
	buf_release(&rtext);
	buf_release(&msg);
	return rc;
}

int import_env(struct import_result *res, struct gitrepo *repo, const struct import_opts *o,
	       struct diags *d, struct err *e)
{
	const char *env = o->env;
	struct state st;
	struct state_src src;
	struct gitrepo_head head;
	struct known_set none = KNOWN_SET_INIT;
	struct observe_opts oo;
	struct observe_paths paths;
	struct obs_host *hosts = NULL;
	struct found f;
	struct chain_found c = { NULL, NULL, NULL };
	int exists = 0, rc;
	time_t now = time(NULL);

	memset(res, 0, sizeof(*res));
	memset(&f, 0, sizeof(f));
	f.lines = &res->lines;
	snprintf(res->branch, sizeof(res->branch), "rotor/import/%s", env);
	if ((rc = state_load_head(&st, &src, &head, repo, env, "import onto", d, e)) < 0)
		return rc;
	snprintf(res->head_branch, sizeof(res->head_branch), "%s", head.branch);
	if (st.rotation->generation != 0 || st.ngens != 0) {
		rc = err_set(e, ROTOR_ESTATE, "envs/%s already has generation %d; import adopts a fleet only into an env "
			     "without generations", env, st.ngens ? st.gens[st.ngens - 1].number : st.rotation->generation);
		goto out;
	}
	if ((rc = gitrepo_branch_exists(&exists, repo, res->branch, e)) < 0)
		goto out;
	if (exists) {
		rc = err_set(e, ROTOR_ESTATE, "branch %s exists: an earlier import waits for review; merge or delete it first",
			     res->branch);
		goto out;
	}
	if (st.hosts->nhosts == 0) {
		rc = err_set(e, ROTOR_ESTATE, "envs/%s/hosts.yaml lists no hosts to import from", env);
		goto out;
	}
	if ((rc = observe_opts_from_state(&oo, &st, &none, &paths, e)) < 0 ||
	    (rc = observe_fleet(&hosts, &res->nhosts, &oo, e)) < 0)
		goto out;
	if (collect(&f, hosts, res->nhosts) < 0) {
		rc = err_nomem(e);
		goto out;
	}
	if ((rc = check_chain(&c, &f, now, e)) < 0)
		goto out;
	if (f.problems) {
		rc = err_set(e, ROTOR_EINVALID, "nothing imported: %zu problem%s", f.problems, f.problems == 1 ? "" : "s");
		goto out;
	}
	rc = commit_generation(res, &f, &c, &st, &head, repo, now, e);
out:
	res->problems = f.problems;
	free(f.pool);
	free(f.leaves);
	obs_hosts_free(hosts, res->nhosts);
	state_release(&st);
	return rc;
}

void import_result_release(struct import_result *res)
{
	buf_release(&res->lines);
	spec_manifest_free(res->manifest);
	memset(res, 0, sizeof(*res));
}
