/* run.c -- load, observe, plan: one env's reconcile run (see run.h). */
#include "reconcile/engine/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

int env_run_load(struct env_run *r, struct gitrepo *repo, const char *env, const char *ref,
		 enum env_run_load what, struct diags *d, struct err *e)
{
	size_t i;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = state_src_open(&r->src, repo, ref, 0, e)) < 0)
		return rc;
	if ((rc = state_load(&r->st, &r->src, env, d, e)) < 0)
		return rc;
	for (i = 0; i < r->st.ngens; i++)
		if ((rc = known_add_manifest(&r->known, r->st.gens[i].manifest, e)) < 0)
			return rc;
	if (what != RUN_STATE && (rc = state_material(&r->material, &r->src, &r->st, what == RUN_KEYS, e)) < 0)
		return rc;
	return observe_opts_from_state(&r->oo, &r->st, &r->known, &r->paths, e);
}

int env_run_observe(struct env_run *r, struct err *e)
{
	obs_hosts_free(r->hosts, r->nhosts);
	r->hosts = NULL;
	r->nhosts = 0;
	r->oo.now = time(NULL);
	return observe_fleet(&r->hosts, &r->nhosts, &r->oo, e);
}

int env_run_plan(struct env_run *r, int no_path, int replace_unknown, struct err *e)
{
	struct plan_opts po;
	int rc;

	plan_release(&r->plan);
	if ((rc = env_run_observe(r, e)) < 0)
		return rc;
	memset(&po, 0, sizeof(po));
	po.hosts = r->st.hosts;
	po.observed = r->hosts;
	po.nobserved = r->nhosts;
	po.known = &r->known;
	po.material = &r->material;
	po.rotation = r->st.rotation;
	po.no_path = no_path;
	po.replace_unknown = replace_unknown;
	po.now = r->oo.now;
	if ((rc = plan_build(&r->plan, &po, e)) < 0)
		return rc;
	r->probed = 0;
	return r->no_probe ? 0 : env_run_find_stale(r, e);
}

/* The leaf file of server role k of observed host oh, when it holds a usable certificate. */
static const struct obs_file *leaf_file(const struct obs_host *oh, size_t k)
{
	const struct obs_file *leaf = NULL;
	size_t f;

	for (f = oh->roles[k].first; f < oh->roles[k].first + oh->roles[k].nfiles; f++)
		if ((oh->files[f].content == SPEC_CONTENT_LEAF || oh->files[f].content == SPEC_CONTENT_LEAF_CHAIN) &&
		    oh->files[f].present && !oh->files[f].problem && oh->files[f].ncerts)
			leaf = &oh->files[f];
	return leaf;
}

int env_run_find_stale(struct env_run *r, struct err *e)
{
	struct buf roots = BUF_INIT;
	struct stale_service *nv;
	size_t h, k, g, cap = 0;
	int rc = 0;

	free(r->stale);
	r->stale = NULL;
	r->nstale = 0;
	/* Every root rotor ever committed: the probe only reads what is presented. */
	for (g = 0; g < r->material.n; g++) {
		const struct material_cert *c = material_find(&r->material, r->material.v[g].generation, CERT_ROLE_ROOT, NULL);

		if (c)
			buf_puts(&roots, c->pem);
	}
	if (roots.err) {
		buf_release(&roots);
		return err_nomem(e);
	}
	for (h = 0; h < r->nhosts && rc == 0 && roots.len; h++) {
		const struct obs_host *oh = &r->hosts[h];
		const struct host_spec *hs = &r->st.hosts->hosts[h];

		for (k = 0; oh->reachable && k < oh->nroles && k < hs->nroles && rc == 0; k++) {
			const struct host_role *role = &hs->roles[k];
			const struct obs_file *leaf;
			struct probe_req q;
			struct probe_result pr;

			if (role->role != SPEC_ROLE_SERVER || !role->probe || !(leaf = leaf_file(oh, k)))
				continue;
			memset(&q, 0, sizeof(q));
			q.address = hs->address;
			q.port = role->probe_port;
			q.trust_pem = roots.ptr;
			q.trust_len = roots.len;
			q.expect_fingerprint = leaf->certs[0].fingerprint;
			if ((rc = role->probe->run(&pr, &q, e)) < 0)
				break;
			/* Only a service that presents another leaf is stale; one that does not answer fails its own probe. */
			if (pr.fingerprint_match == 1 || !pr.tls_ok || !pr.server_leaf_fingerprint[0])
				continue;
			if (r->nstale == cap) {
				cap = cap ? cap * 2 : 8;
				if (!(nv = realloc(r->stale, cap * sizeof(*nv)))) {
					rc = err_nomem(e);
					break;
				}
				r->stale = nv;
			}
			memset(&r->stale[r->nstale], 0, sizeof(r->stale[0]));
			r->stale[r->nstale].host = h;
			r->stale[r->nstale].role = k;
			snprintf(r->stale[r->nstale].presents, PROBE_FP_LEN, "%s", pr.server_leaf_fingerprint);
			snprintf(r->stale[r->nstale].holds, PROBE_FP_LEN, "%s", leaf->certs[0].fingerprint);
			r->nstale++;
		}
	}
	buf_release(&roots);
	if (rc < 0) {
		free(r->stale);
		r->stale = NULL;
		r->nstale = 0;
		return rc;
	}
	r->probed = 1;
	return 0;
}

void env_run_release(struct env_run *r)
{
	free(r->stale);
	plan_release(&r->plan);
	obs_hosts_free(r->hosts, r->nhosts);
	material_release(&r->material);
	known_release(&r->known);
	state_release(&r->st);
	memset(r, 0, sizeof(*r));
}

void env_run_drift(const struct env_run *r, struct drift_counts *c,
		   void (*each)(void *payload, const struct drift_item *it), void *payload)
{
	struct drift_item it;
	size_t i, k, n;

	memset(c, 0, sizeof(*c));
	memset(&it, 0, sizeof(it));
	c->stale_services = r->nstale;
	it.renew_before_days = r->st.chain->renew_before_days;
	for (i = 0; i < r->nhosts; i++)
		for (k = 0; k < r->hosts[i].nfiles; k++) {
			const struct obs_file *f = &r->hosts[i].files[k];

			it.host = &r->hosts[i];
			it.file = f;
			if (f->content == SPEC_CONTENT_KEY && f->present && !f->problem && f->key != OBS_KEY_MATCH) {
				c->keys_not_matching++;
				it.kind = DRIFT_KEY_MISMATCH;
				it.cert = NULL;
				if (each)
					each(payload, &it);
			}
			if (f->content == SPEC_CONTENT_CRL && f->present && !f->problem &&
			    f->crl_next_update < r->oo.now + (time_t)it.renew_before_days * 86400) {
				c->crls_expiring++;
				it.kind = DRIFT_CRL_EXPIRING;
				it.cert = NULL;
				if (each)
					each(payload, &it);
			}
			it.stray = NULL;
			for (n = 0; n < f->ncerts; n++) {
				it.cert = &f->certs[n];
				if (!f->certs[n].generation) {
					c->unknown++;
					it.kind = DRIFT_UNKNOWN_CERT;
					if (each)
						each(payload, &it);
				}
				if (f->certs[n].days_left < it.renew_before_days) {
					c->expiring++;
					it.kind = DRIFT_EXPIRING;
					if (each)
						each(payload, &it);
				}
			}
		}
	for (i = 0; i < r->nhosts; i++)
		for (k = 0; k < r->hosts[i].nstrays; k++) {
			const char *p = r->hosts[i].strays[k];

			/* During a rotation a backup is not a stray: a rollback may need it. */
			if (r->st.rotation->target && obs_stray_is_backup(p))
				continue;
			c->stray_files++;
			it.kind = DRIFT_STRAY;
			it.host = &r->hosts[i];
			it.file = NULL;
			it.cert = NULL;
			it.stray = p;
			if (each)
				each(payload, &it);
		}
}
