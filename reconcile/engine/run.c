/* run.c -- load, observe, plan: one env's reconcile run (see run.h). */
#include "reconcile/engine/run.h"

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
	return plan_build(&r->plan, &po, e);
}

void env_run_release(struct env_run *r)
{
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
}
