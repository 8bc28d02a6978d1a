/*
 * report.c -- every JSON document rotor prints or records (see report.h
 * for the list and their schemas), built with jansson.
 */
#include "reconcile/engine/report.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

#include "common/json.h"
#include "common/timefmt.h"

/* "0644": modes are strings in every document, as hosts.yaml writes them. */
static json_t *mode_text(int mode)
{
	char m[16];

	snprintf(m, sizeof(m), "%04o", (unsigned)mode);
	return json_string(m);
}

static json_t *int_or_null(int v)
{
	return v ? json_integer(v) : json_null();
}

/* An array of strings; NULL when memory ran out. */
static json_t *text_array(char *const *v, size_t n)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < n; i++)
		if (json_array_append_new(a, json_text(v[i])) < 0) {
			json_decref(a);
			return NULL;
		}
	return a;
}

static json_t *cert_json(const struct obs_cert *c)
{
	return json_pack("{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I}",
			 "generation", int_or_null(c->generation > 0 ? c->generation : 0),
			 "role", c->generation == OBS_GEN_EXTERNAL ? json_string("external")
			 : c->generation ? json_string(spec_cert_role_name(c->role)) : json_null(),
			 "name", json_text(c->name), "subject", json_text(c->subject), "issuer", json_text(c->issuer),
			 "fingerprint_sha256", json_text(c->fingerprint), "not_after", json_text(c->not_after),
			 "days_left", (json_int_t)c->days_left);
}

/* A crl file read without a problem: how many CRLs and their earliest nextUpdate; else null. */
static json_t *crls_json(const struct obs_file *of)
{
	char when[32];

	if (of->content != SPEC_CONTENT_CRL || !of->present || of->problem || !of->ncrls ||
	    rfc3339_format(when, sizeof(when), of->crl_next_update) < 0)
		return json_null();
	return json_pack("{s:I, s:s}", "count", (json_int_t)of->ncrls, "next_update", when);
}

static json_t *file_json(const struct obs_file *of)
{
	json_t *f, *certs = json_array();
	size_t k;

	for (k = 0; certs && k < of->ncerts; k++)
		if (json_array_append_new(certs, cert_json(&of->certs[k])) < 0) {
			json_decref(certs);
			return NULL;
		}
	f = json_pack("{s:o, s:s, s:b}", "path", json_text(of->path), "content", layout_content_name(of->content),
		      "present", of->present);
	if (!f || !certs)
		goto fail;
	if (of->mode >= 0 &&
	    (json_object_set_new(f, "mode", mode_text(of->mode)) < 0 || json_object_set_new(f, "uid", json_integer(of->uid)) < 0 ||
	     json_object_set_new(f, "gid", json_integer(of->gid)) < 0))
		goto fail;
	if (json_object_set_new(f, "problem", json_text(of->problem)) < 0 ||
	    json_object_set_new(f, "key", json_text(obs_key_name(of->key))) < 0 ||
	    json_object_set_new(f, "form", json_string(of->form == LAYOUT_FORM_PK8   ? "pk8"
							: of->form == LAYOUT_FORM_P12 ? "p12"
										      : "pem")) < 0 ||
	    json_object_set_new(f, "crls", crls_json(of)) < 0)
		goto fail;
	k = (size_t)json_object_set_new(f, "certificates", certs);   /* takes certs, even when it fails */
	certs = NULL;
	if (k == 0)
		return f;
fail:
	json_decref(certs);
	json_decref(f);
	return NULL;
}

static json_t *host_json(const struct obs_host *h, int target)
{
	json_t *fits = json_array(), *files = json_array(), *strays = json_array();
	/* A host that holds none of its files fits every step of the line (a first deployment). */
	int empty = h->reachable && obs_host_empty(h, 0);
	unsigned mask = empty ? (target ? (1u << NSTEPS) - 1 : 1u << STEP_STABLE_A) : h->phase_mask;
	size_t f;
	int s;

	for (s = 0; fits && s < NSTEPS; s++)
		if ((mask & (1u << s)) &&
		    json_array_append_new(fits, json_string(s == STEP_STABLE_A   ? "stable"
							    : s == STEP_STABLE_B ? "stable-target"
										 : phase_step_name((enum phase_step)s))) < 0)
			goto fail;
	for (f = 0; files && f < h->nfiles; f++)
		if (json_array_append_new(files, file_json(&h->files[f])) < 0)
			goto fail;
	for (f = 0; strays && f < h->nstrays; f++)
		if (json_array_append_new(strays, json_text(h->strays[f])) < 0)
			goto fail;
	if (!fits || !files || !strays)
		goto fail;
	return json_pack("{s:o, s:o, s:b, s:o, s:o, s:o, s:b, s:o, s:o, s:f}", "name", json_text(h->name), "address",
			 json_text(h->address), "reachable", h->reachable, "error", json_text(h->error), "host_key",
			 json_text(h->host_key), "fits", fits, "holds_none", empty, "files", files, "strays", strays,
			 "seconds", (double)(long long)(h->seconds * 1000 + 0.5) / 1000);
fail:
	json_decref(fits);
	json_decref(files);
	json_decref(strays);
	return NULL;
}

int observe_json(struct buf *out, const struct obs_host *h, size_t n, const struct state *st, const char *commit)
{
	json_t *hosts = json_array();
	size_t i;

	for (i = 0; hosts && i < n; i++)
		if (json_array_append_new(hosts, host_json(&h[i], st->rotation->target)) < 0) {
			json_decref(hosts);
			hosts = NULL;
		}
	if (!hosts)
		return ROTOR_ENOMEM;
	return json_emit(out, json_pack("{s:o, s:o, s:{s:i, s:o, s:s}, s:o}", "env", json_text(st->env), "commit",
					json_text(commit), "rotation", "generation", st->rotation->generation, "target",
					int_or_null(st->rotation->target), "phase", spec_phase_name(st->rotation->phase),
					"hosts", hosts));
}

static json_t *step_json(const struct env_run *r, const struct plan_step *st)
{
	json_t *changes = json_array();
	size_t k;

	for (k = 0; changes && k < st->nchanges; k++) {
		const struct plan_change *c = &st->changes[k];

		if (json_array_append_new(changes,
					  json_pack("{s:o, s:o, s:s, s:o, s:o, s:o}", "host", json_text(r->hosts[c->host].name),
						    "path", json_text(r->hosts[c->host].files[c->file].path), "action",
						    c->action == PLAN_CREATE ? "create" : "change", "from",
						    json_text(c->from && *c->from ? c->from : NULL), "to", json_text(c->to),
						    "mode", mode_text(c->mode))) < 0) {
			json_decref(changes);
			return NULL;
		}
	}
	if (!changes)
		return NULL;
	return json_pack("{s:s, s:s, s:o, s:o, s:o}", "from", phase_step_name(st->from), "to", phase_step_name(st->to),
			 "changes", changes, "broken_pairs", text_array(st->broken, st->nbroken), "gates_not_ready",
			 text_array(st->gates, st->ngates));
}

/* The services that present another leaf than their files hold: each needs a reload. */
static json_t *stale_json(const struct env_run *r)
{
	json_t *a = json_array();
	size_t i;

	for (i = 0; a && i < r->nstale; i++) {
		const struct host_spec *hs = &r->st.hosts->hosts[r->stale[i].host];

		if (json_array_append_new(a, json_pack("{s:o, s:o, s:s, s:s}", "host", json_text(hs->name), "address",
						       json_text(hs->address), "presents", r->stale[i].presents,
						       "files_hold", r->stale[i].holds)) < 0) {
			json_decref(a);
			return NULL;
		}
	}
	return a;
}

json_t *plan_steps_json(const struct env_run *r)
{
	json_t *steps = json_array();
	size_t i;

	for (i = 0; steps && i < r->plan.nsteps; i++)
		if (json_array_append_new(steps, step_json(r, &r->plan.steps[i])) < 0) {
			json_decref(steps);
			steps = NULL;
		}
	return steps;
}

/* Where the desired commit was read: {"ref": ..., "how": ...}, or null when no one said. */
json_t *desired_from_json(const struct desired *d)
{
	if (!d || !d->ref[0])
		return json_null();
	return json_pack("{s:o, s:s}", "ref", json_text(d->ref), "how", desired_how_name(d->how));
}

int plan_json(struct buf *out, const struct env_run *r, const struct drift_counts *dc)
{
	const struct plan *p = &r->plan;
	json_t *doc, *steps = plan_steps_json(r);
	int bad = 0;

	doc = json_pack("{s:o, s:o, s:o, s:b}", "env", json_text(r->st.env), "commit", json_text(r->src.commit),
			"desired_from", desired_from_json(&r->desired), "live_known", p->live_known);
	if (!doc) {
		json_decref(steps);
		return ROTOR_ENOMEM;
	}
	if (p->live_known)
		bad = json_object_set_new(doc, "rotation", json_pack("{s:i, s:o}", "generation", p->a, "target", int_or_null(p->b))) < 0 ||
		      json_object_set_new(doc, "live", json_string(phase_step_name(p->live))) < 0 ||
		      json_object_set_new(doc, "partial", json_boolean(p->partial)) < 0 ||
		      json_object_set_new(doc, "desired", json_string(phase_step_name(p->desired))) < 0;
	if (bad || !steps) {
		json_decref(steps);
		json_decref(doc);
		return ROTOR_ENOMEM;
	}
	if (json_object_set_new(doc, "refused", json_boolean(p->refused)) < 0 ||
	    json_object_set_new(doc, "probed", json_boolean(r->probed)) < 0 ||
	    json_object_set_new(doc, "stale_services", stale_json(r)) < 0 ||
	    json_object_set_new(doc, "changes", json_integer((json_int_t)p->nchanges)) < 0 ||
	    json_object_set_new(doc, "problems", text_array(p->problems, p->nproblems)) < 0 ||
	    json_object_set_new(doc, "notes", text_array(p->notes, p->nnotes)) < 0 ||
	    json_object_set_new(doc, "steps", steps) < 0 ||
	    (dc && (json_object_set_new(doc, "unknown_certificates", json_integer((json_int_t)dc->unknown)) < 0 ||
		    json_object_set_new(doc, "expiring", json_integer((json_int_t)dc->expiring)) < 0 ||
		    json_object_set_new(doc, "crls_expiring", json_integer((json_int_t)dc->crls_expiring)) < 0 ||
		    json_object_set_new(doc, "keys_not_matching", json_integer((json_int_t)dc->keys_not_matching)) < 0 ||
		    json_object_set_new(doc, "stale_services_count", json_integer((json_int_t)dc->stale_services)) < 0 ||
		    json_object_set_new(doc, "stray_files", json_integer((json_int_t)dc->stray_files)) < 0 ||
		    json_object_set_new(doc, "external_servers", json_integer((json_int_t)dc->external_servers)) < 0))) {
		json_decref(doc);
		return ROTOR_ENOMEM;
	}
	return json_emit(out, doc);
}

static json_t *chain_cert_json(const struct chain_cert *s)
{
	const struct manifest_cert *mc = s->mc;

	return json_pack("{s:o, s:s, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I, s:b}", "name", json_text(mc->name), "role",
			 spec_cert_role_name(mc->role), "file", json_text(mc->cert), "subject", json_text(s->live.subject),
			 "issuer", json_text(s->live.issuer), "fingerprint_sha256", json_text(s->live.fingerprint),
			 "serial", json_text(s->live.serial), "not_before", json_text(s->live.not_before), "not_after",
			 json_text(s->live.not_after), "days_left", (json_int_t)s->days_left, "matches_manifest",
			 s->matches);
}

int chain_json(struct buf *out, const struct chain_view *v)
{
	const struct rotation_spec *rot = v->st.rotation;
	json_t *gens = json_array();
	size_t gi, ci;

	for (gi = 0; gens && gi < v->ngens; gi++) {
		const struct chain_gen *g = &v->gens[gi];
		json_t *certs = json_array();

		for (ci = 0; certs && ci < g->ncerts; ci++)
			if (json_array_append_new(certs, chain_cert_json(&g->certs[ci])) < 0) {
				json_decref(certs);
				certs = NULL;
			}
		if (!certs || json_array_append_new(gens, json_pack("{s:i, s:s, s:b, s:o, s:o}", "number", g->gen->number,
								     "status", g->status, "imported",
								     g->gen->manifest->imported, "created",
								     json_text(g->gen->manifest->created),
								     "certificates", certs)) < 0) {
			json_decref(gens);
			gens = NULL;
		}
	}
	if (!gens)
		return ROTOR_ENOMEM;
	return json_emit(out, json_pack("{s:o, s:o, s:{s:i, s:o, s:s}, s:o}", "env", json_text(v->st.env), "commit",
					json_text(v->src.commit), "rotation", "generation", rot->generation, "target",
					int_or_null(rot->target), "phase", spec_phase_name(rot->phase), "generations",
					gens));
}

/* applied.json's members; NULL when memory ran out.  steps is borrowed. */
static json_t *applied_doc(const char *desired, const struct desired *from, json_t *steps, const char *outcome,
			   const struct report_backups *b)
{
	return json_pack("{s:o, s:o, s:O, s:o, s:{s:I, s:I, s:I, s:b}}", "desired", json_text(desired), "desired_from",
			 desired_from_json(from), "steps", steps, "outcome", json_text(outcome), "backups", "removed",
			 (json_int_t)b->removed, "hosts", (json_int_t)b->hosts, "failed_hosts", (json_int_t)b->failed_hosts,
			 "kept", b->kept);
}

int applied_json(struct buf *out, const char *desired, const struct desired *from, json_t *steps, const char *outcome,
		 const struct report_backups *b)
{
	return json_emit(out, applied_doc(desired, from, steps, outcome, b));
}

int apply_json(struct buf *out, const char *desired, const struct desired *from, json_t *steps, const char *outcome,
	       const struct report_backups *b, const char *status_commit)
{
	json_t *doc = applied_doc(desired, from, steps, outcome, b);

	if (doc && json_object_set_new(doc, "status_commit", json_text(status_commit && *status_commit ? status_commit : NULL)) < 0) {
		json_decref(doc);
		doc = NULL;
	}
	return json_emit(out, doc);
}

int validate_json(struct buf *out, const char *commit, char *const *envs, size_t nenvs, const struct diags *d)
{
	json_t *diags = json_array(), *names = text_array(envs, nenvs);
	size_t i;

	for (i = 0; diags && d && i < d->n; i++)
		if (json_array_append_new(diags, json_pack("{s:o, s:i, s:i, s:o}", "path", json_text(d->v[i].path), "line",
							   d->v[i].line, "column", d->v[i].column, "message",
							   json_text(d->v[i].msg))) < 0) {
			json_decref(diags);
			diags = NULL;
		}
	if (!diags || !names) {
		json_decref(diags);
		json_decref(names);
		return ROTOR_ENOMEM;
	}
	return json_emit(out, json_pack("{s:o, s:b, s:o, s:o}", "commit", json_text(commit), "valid", !d || d->n == 0,
					"envs", names, "diagnostics", diags));
}

static json_t *lock_json(const struct gitstatus_lock *l)
{
	if (!l)
		return json_null();
	if (!l->parsed)
		return json_pack("{s:s, s:b, s:n, s:n, s:n, s:n, s:n, s:n, s:o}", "id", l->id, "parsed", 0, "holder", "pid",
				 "time", "until", "command", "desired", "problem", json_text(l->problem));
	return json_pack("{s:s, s:b, s:o, s:I, s:o, s:o, s:o, s:o, s:n}", "id", l->id, "parsed", 1, "holder",
			 json_text(l->holder), "pid", (json_int_t)l->pid, "time", json_text(l->time), "until",
			 json_text(l->until[0] ? l->until : NULL), "command", json_text(l->command), "desired",
			 json_text(l->desired[0] ? l->desired : NULL), "problem");
}

int log_json(struct buf *out, const char *env, const char *read, const struct gitstatus_lock *lock,
	     const struct gitstatus_entry *v, size_t n)
{
	json_t *entries = json_array();
	char when[32];
	size_t i;

	for (i = 0; entries && i < n; i++) {
		if (rfc3339_format(when, sizeof(when), (time_t)v[i].time) < 0)
			snprintf(when, sizeof(when), "?");
		if (json_array_append_new(entries, json_pack("{s:s, s:s, s:{s:o, s:o}, s:o, s:o}", "commit", v[i].id, "time",
							     when, "author", "name", json_text(v[i].author_name), "email",
							     json_text(v[i].author_email), "subject", json_text(v[i].subject),
							     "body", json_text(v[i].body ? v[i].body : ""))) < 0) {
			json_decref(entries);
			entries = NULL;
		}
	}
	if (!entries)
		return ROTOR_ENOMEM;
	return json_emit(out, json_pack("{s:o, s:s, s:o, s:o}", "env", json_text(env), "read", read, "lock", lock_json(lock),
					"entries", entries));
}

int handoff_json(struct buf *out, const char *env, const char *client, const char *out_dir, const char *choice,
		 const struct desired *from, const struct handoff_result *res)
{
	json_t *files = json_array(), *leaf;
	size_t i;

	for (i = 0; files && i < res->nfiles; i++)
		if (json_array_append_new(files, json_pack("{s:s, s:o, s:s}", "name", res->files[i].name, "mode",
							   mode_text(res->files[i].mode), "sha256", res->files[i].sha256)) < 0) {
			json_decref(files);
			files = NULL;
		}
	if (!files)
		return ROTOR_ENOMEM;
	leaf = res->bundle_only ? json_null()
				: json_pack("{s:i, s:s, s:s}", "generation", res->generation, "fingerprint_sha256",
					    res->leaf_fingerprint, "not_after", res->leaf_not_after);
	return json_emit(out, json_pack("{s:o, s:o, s:s, s:o, s:s, s:s, s:i, s:o, s:b, s:b, s:o, s:o, s:o}",
					"env", json_text(env), "client", json_text(client), "commit", res->commit,
					"desired_from", desired_from_json(from), "choice", choice,
					"step", res->step == STEP_STABLE_B ? "stable-target" : phase_step_name(res->step), "generation", res->a,
					"target", res->b ? json_integer(res->b) : json_null(), "bundle_only", res->bundle_only,
					"external", res->external, "leaf", leaf, "out", json_text(out_dir), "files", files));
}

int client_json(struct buf *out, const char *env, const char *action, const char *name,
		const struct client_result *res)
{
	json_t *gens = json_array();
	int revoking = strcmp(action, "remove") == 0;
	size_t i;

	for (i = 0; gens && i < res->ngens; i++)
		if (json_array_append_new(gens, json_pack("{s:i, s:o}", "generation", res->gens[i], "revoked_serial",
							  revoking && res->serials[i][0] ? json_string(res->serials[i])
										      : json_null())) < 0) {
			json_decref(gens);
			gens = NULL;
		}
	if (!gens)
		return ROTOR_ENOMEM;
	return json_emit(out, json_pack("{s:o, s:s, s:o, s:o, s:o, s:s, s:s, s:o, s:o}", "env", json_text(env),
					"action", action, "name", json_text(name), "generations", gens,
					"crl_days", strcmp(action, "add") == 0 ? json_null() : json_integer(res->crl_days),
					"branch", res->branch, "commit", res->commit, "head_branch", json_text(res->head_branch),
					"remote", json_text(res->remote)));
}
