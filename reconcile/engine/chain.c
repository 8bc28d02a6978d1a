/*
 * chain.c -- the generations committed for an env, read from the
 * certificate files (see chain.h).
 */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconcile/engine/chain.h"

#include "common/timefmt.h"
#include "reconcile/pki/pki.h"

const char *chain_gen_status(const struct rotation_spec *r, int n)
{
	if (n == r->generation)
		return "in-service";
	if (n == r->target)
		return "target";
	if (n < r->generation)
		return "retired";
	return "unused";
}

/* Read and describe one certificate file; a file that is not ok is ROTOR_* with e set (and out->ok 0). */
static int describe(struct chain_cert *out, const struct state_src *src, const char *env, int number,
		    const struct manifest_cert *mc, time_t now, struct err *e)
{
	struct buf pem = BUF_INIT, path = BUF_INIT;
	long long na;
	int rc;

	out->mc = mc;
	if (buf_printf(&path, "envs/%s/generations/%04d/%s", env, number, mc->cert) < 0)
		return err_nomem(e);
	rc = state_read(&pem, src, buf_cstr(&path), 1 << 20, e);
	if (rc == 0)
		rc = pki_cert_describe(&out->live, pem.ptr, pem.len, e);
	if (rc < 0) {
		err_prefix(e, "%s", buf_cstr(&path));
	} else {
		out->ok = 1;
		out->matches = mc->fingerprint && out->live.fingerprint &&
			       strcmp(mc->fingerprint, out->live.fingerprint) == 0;
		na = rfc3339_parse(out->live.not_after);
		out->days_left = na < 0 ? 0 : days_until(na, now);
	}
	buf_release(&pem);
	buf_release(&path);
	return rc;
}

int chain_view_load(struct chain_view *v, struct gitrepo *repo, const char *env, const char *ref,
		    struct diags *d, struct err *e)
{
	struct err fe = ERR_INIT;
	size_t gi, ci;
	time_t now = time(NULL);
	int rc;

	memset(v, 0, sizeof(*v));
	if ((rc = state_src_open(&v->src, repo, ref, 0, e)) < 0 || (rc = state_load(&v->st, &v->src, env, d, e)) < 0)
		return rc;
	if (v->st.ngens && !(v->gens = calloc(v->st.ngens, sizeof(*v->gens))))
		return err_nomem(e);
	for (gi = 0; gi < v->st.ngens; gi++) {
		struct chain_gen *g = &v->gens[v->ngens++];
		const struct manifest *m;

		g->gen = &v->st.gens[gi];
		g->status = chain_gen_status(v->st.rotation, g->gen->number);
		m = g->gen->manifest;
		if (m->ncerts && !(g->certs = calloc(m->ncerts, sizeof(*g->certs))))
			return err_nomem(e);
		for (ci = 0; ci < m->ncerts; ci++) {
			struct chain_cert *c = &g->certs[g->ncerts++];

			err_clear(&fe);
			if (describe(c, &v->src, env, g->gen->number, &m->certs[ci], now, &fe) < 0) {
				if (fe.code == ROTOR_ENOMEM || !(c->error = strdup(fe.msg)))
					return err_nomem(e);
				v->bad++;
			} else if (!c->matches) {
				v->bad++;
			}
		}
	}
	return 0;
}

void chain_view_release(struct chain_view *v)
{
	size_t gi, ci;

	for (gi = 0; gi < v->ngens; gi++) {
		for (ci = 0; ci < v->gens[gi].ncerts; ci++) {
			spec_manifest_cert_release(&v->gens[gi].certs[ci].live);
			free(v->gens[gi].certs[ci].error);
		}
		free(v->gens[gi].certs);
	}
	free(v->gens);
	state_release(&v->st);
	memset(v, 0, sizeof(*v));
}
