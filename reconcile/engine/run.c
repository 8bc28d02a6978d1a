/* run.c -- load, observe, plan: one env's reconcile run (see run.h). */
#include "reconcile/engine/run.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/timefmt.h"
#include "reconcile/engine/trust.h"

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
	/* Generations reverted or abandoned away stay recognised: hosts may still hold them. */
	if ((rc = state_load_past(&r->st, &r->src, e)) < 0)
		return rc;
	for (i = 0; i < r->st.ngens; i++)
		if ((rc = known_add_manifest(&r->known, r->st.gens[i].manifest, e)) < 0)
			return rc;
	for (i = 0; i < r->st.npast; i++)
		if ((rc = known_add_manifest(&r->known, r->st.past[i].manifest, e)) < 0)
			return rc;
	if ((rc = trust_known(&r->known, &r->st, e)) < 0 || (rc = known_index(&r->known, e)) < 0)
		return rc;
	if (what != RUN_STATE && (rc = state_material(&r->material, &r->src, &r->st, what == RUN_KEYS, NULL, e)) < 0)
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

/* Does step st write a trust bundle of a client role (one that verifies servers)? */
static int step_changes_client_bundles(const struct env_run *r, const struct plan_step *st)
{
	size_t i;

	for (i = 0; i < st->nchanges; i++) {
		const struct obs_file *f = &r->hosts[st->changes[i].host].files[st->changes[i].file];

		if (f->content == SPEC_CONTENT_TRUST && f->side == LAYOUT_SIDE_SERVER)
			return 1;
	}
	return 0;
}

/*
 * Does step st take an external CA out of a client's bundle (a retirement)?
 * Only the first step starts from what the hosts hold; the steps after it
 * keep the external CAs as they are.
 */
static int step_retires_external(const struct env_run *r, const struct plan_step *st)
{
	size_t i, k, x;

	if (st != &r->plan.steps[0])
		return 0;
	for (i = 0; i < st->nchanges; i++) {
		const struct obs_file *f = &r->hosts[st->changes[i].host].files[st->changes[i].file];

		if (f->content != SPEC_CONTENT_TRUST || f->side != LAYOUT_SIDE_SERVER)
			continue;
		for (k = 0; k < f->ncerts; k++) {
			if (f->certs[k].generation != OBS_GEN_EXTERNAL)
				continue;
			for (x = 0; x < r->material.next; x++)
				if ((r->material.ext[x].ext_sides & (1u << LAYOUT_SIDE_SERVER)) &&
				    strcmp(r->material.ext[x].fingerprint, f->certs[k].fingerprint) == 0)
					break;
			if (x == r->material.next)
				return 1;
		}
	}
	return 0;
}

/* The answers of the external servers to one bundle (a bundle is probed once per plan). */
struct ext_answer {
	struct buf bundle;
	struct probe_result *pr;       /* one per external server */
};

/* Probe external server es with bundle as the clients' trust (no client certificate). */
static int probe_external(struct probe_result *pr, const struct external_server *es, const struct buf *bundle,
			  struct err *e)
{
	struct probe_req q;

	memset(&q, 0, sizeof(q));
	q.address = es->address;
	q.port = es->port;
	q.trust_pem = bundle->ptr;
	q.trust_len = bundle->len;
	q.server_name = es->address;
	return es->probe->run(pr, &q, e);
}

/*
 * Every step that writes clients' bundles must keep every external
 * server verifying: probe each one with the clients' bundle of both
 * states of the step (trust.h).  A server that does not verify is a
 * broken pair naming it; one that does not answer is one too when the
 * step retires an external CA (its chain cannot be proved), else a note.
 */
static int check_external_servers(struct env_run *r, struct err *e)
{
	const struct hosts_spec *hs = r->st.hosts;
	struct ext_answer ans[2 * NSTEPS];
	size_t nans = 0, i, k, x;
	int rc = 0, side;

	if (!hs->nexternal_servers || !r->plan.live_known)
		return 0;
	if (r->no_probe)
		return plan_add_note(&r->plan, "external servers not probed (--no-probe): a change of the clients' "
				     "bundles is not checked against them") < 0 ? err_nomem(e) : 0;
	memset(ans, 0, sizeof(ans));
	for (i = 0; i < r->plan.nsteps && rc == 0; i++) {
		struct plan_step *st = &r->plan.steps[i];
		enum phase_step states[2] = { st->from, st->to };

		if (!step_changes_client_bundles(r, st))
			continue;
		for (side = 0; side < 2 && rc == 0; side++) {
			struct buf b = BUF_INIT;
			struct ext_answer *a = NULL;

			if (side == 1 && states[0] == states[1])
				break;
			if ((rc = plan_bundle_bytes(&b, &r->material, LAYOUT_SIDE_SERVER, states[side], st->a, st->b, e)) < 0) {
				buf_release(&b);
				break;
			}
			for (k = 0; k < nans && !a; k++)
				if (ans[k].bundle.len == b.len && memcmp(ans[k].bundle.ptr, b.ptr, b.len) == 0)
					a = &ans[k];
			if (a) {
				buf_release(&b);
			} else {
				a = &ans[nans++];
				a->bundle = b;
				if (!(a->pr = calloc(hs->nexternal_servers, sizeof(*a->pr)))) {
					rc = err_nomem(e);
					break;
				}
				for (x = 0; x < hs->nexternal_servers && rc == 0; x++)
					rc = probe_external(&a->pr[x], &hs->external_servers[x], &a->bundle, e);
			}
			for (x = 0; x < hs->nexternal_servers && rc == 0; x++) {
				const struct external_server *es = &hs->external_servers[x];
				const struct probe_result *pr = &a->pr[x];

				if (!pr->tls_ok && step_retires_external(r, st))
					rc = plan_add_broken(&r->plan, st, "external server %s (%s:%d) did not answer the probe (%s): "
							     "its chain cannot be checked against the clients' bundle at %s, "
							     "which retires an external CA",
							     es->name, es->address, es->port, pr->error[0] ? pr->error : "no TLS",
							     phase_step_name(states[side]));
				else if (!pr->tls_ok && side == 0)
					rc = plan_add_note(&r->plan, "external server %s (%s:%d) did not answer the probe (%s): "
							   "not checked (step %s -> %s retires no external CA)", es->name,
							   es->address, es->port, pr->error[0] ? pr->error : "no TLS",
							   phase_step_name(st->from), phase_step_name(st->to));
				else if (!pr->server_verified)
					rc = plan_add_broken(&r->plan, st, "clients at %s cannot verify external server %s (%s:%d), "
							     "which presents leaf %.23s...: %s", phase_step_name(states[side]),
							     es->name, es->address, es->port, pr->server_leaf_fingerprint,
							     pr->verify_reason);
				if (rc < 0)
					rc = err_nomem(e);
			}
		}
	}
	for (k = 0; k < nans; k++) {
		buf_release(&ans[k].bundle);
		free(ans[k].pr);
	}
	return rc;
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
	if ((rc = check_external_servers(r, e)) < 0)
		return rc;
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
	struct served_leaf *sv;
	size_t h, k, g, cap = 0, scap = 0;
	int rc = 0;

	free(r->stale);
	r->stale = NULL;
	r->nstale = 0;
	free(r->served);
	r->served = NULL;
	r->nserved = 0;
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
			if (r->nserved == scap) {
				scap = scap ? scap * 2 : 8;
				if (!(sv = realloc(r->served, scap * sizeof(*sv)))) {
					rc = err_nomem(e);
					break;
				}
				r->served = sv;
			}
			memset(&r->served[r->nserved], 0, sizeof(r->served[0]));
			r->served[r->nserved].host = h;
			r->served[r->nserved].role = k;
			r->served[r->nserved].port = role->probe_port;
			snprintf(r->served[r->nserved].presents, PROBE_FP_LEN, "%s", pr.server_leaf_fingerprint);
			r->nserved++;
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
		free(r->served);
		r->served = NULL;
		r->nserved = 0;
		return rc;
	}
	r->probed = 1;
	return 0;
}

int env_run_probe_external(struct env_run *r, struct err *e)
{
	const struct hosts_spec *hs = r->st.hosts;
	struct buf b = BUF_INIT;
	size_t x;
	int rc;

	free(r->ext_now);
	r->ext_now = NULL;
	if (!hs->nexternal_servers || !r->plan.live_known || r->no_probe)
		return 0;
	if ((rc = plan_bundle_bytes(&b, &r->material, LAYOUT_SIDE_SERVER, r->plan.live, r->plan.a, r->plan.b, e)) < 0)
		return rc;
	if (!(r->ext_now = calloc(hs->nexternal_servers, sizeof(*r->ext_now))))
		rc = err_nomem(e);
	for (x = 0; x < hs->nexternal_servers && rc == 0; x++)
		rc = probe_external(&r->ext_now[x], &hs->external_servers[x], &b, e);
	buf_release(&b);
	return rc;
}

void env_run_release(struct env_run *r)
{
	observe_sessions_close(&r->oo);
	free(r->ext_now);
	free(r->stale);
	free(r->served);
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
				if (f->certs[n].generation != OBS_GEN_EXTERNAL && f->certs[n].days_left < it.renew_before_days) {
					c->expiring++;
					it.kind = DRIFT_EXPIRING;
					if (each)
						each(payload, &it);
				}
			}
		}
	for (i = 0; i < r->st.next; i++) {
		const struct ext_ca *x = &r->st.ext[i];
		long long left = x->not_after_t < 0 ? 0 : days_until(x->not_after_t, r->oo.now ? r->oo.now : time(NULL));

		if (x->retired || left >= it.renew_before_days)
			continue;
		c->expiring++;
		memset(&it, 0, sizeof(it));
		it.renew_before_days = r->st.chain->renew_before_days;
		it.kind = DRIFT_EXTERNAL_EXPIRING;
		it.ext = x;
		it.ext_days_left = left;
		if (each)
			each(payload, &it);
	}
	for (i = 0; r->ext_now && i < r->st.hosts->nexternal_servers; i++) {
		const struct probe_result *pr = &r->ext_now[i];
		long long left = pr->server_not_after ? days_until(pr->server_not_after, r->oo.now ? r->oo.now : time(NULL)) : 0;

		if (pr->tls_ok && pr->server_verified && (!pr->server_not_after || left >= r->st.chain->renew_before_days))
			continue;
		c->external_servers++;
		memset(&it, 0, sizeof(it));
		it.renew_before_days = r->st.chain->renew_before_days;
		it.kind = DRIFT_EXTERNAL_SERVER;
		it.server = &r->st.hosts->external_servers[i];
		it.answer = pr;
		it.ext_days_left = left;
		if (each)
			each(payload, &it);
	}
	memset(&it, 0, sizeof(it));
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
