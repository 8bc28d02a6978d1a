/*
 * plan.c -- `rotor plan` and `rotor drift`: the desired state at a commit
 * against the live state of every host, as the path of steps that would
 * reach it, with the gates and the pair check.  Also the load/observe/
 * plan sequence that apply repeats after every step.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "common/json.h"
#include "reconcile/engine/observe.h"
#include "reconcile/engine/plan.h"

int env_run_load(struct env_run *r, struct ctx *ctx, const char *env, const char *ref, int with_keys,
		 struct diags *d, struct err *e)
{
	size_t i;
	int rc;

	memset(r, 0, sizeof(*r));
	if ((rc = state_src_open(&r->src, ctx, ref, 0, e)) < 0)
		return rc;
	if ((rc = state_load(&r->st, &r->src, env, d, e)) < 0)
		return rc;
	for (i = 0; i < r->st.ngens; i++)
		if ((rc = known_add_manifest(&r->known, r->st.gens[i].manifest, e)) < 0)
			return rc;
	if ((rc = state_material(&r->material, &r->src, &r->st, with_keys, e)) < 0)
		return rc;
	return observe_opts_from_state(&r->oo, &r->st, &r->known, &r->paths, e);
}

int env_run_plan(struct env_run *r, int no_path, int replace_unknown, struct err *e)
{
	struct plan_opts po;
	int rc;

	plan_release(&r->plan);
	obs_hosts_free(r->hosts, r->nhosts);
	r->hosts = NULL;
	r->nhosts = 0;
	r->oo.now = time(NULL);
	if ((rc = observe_fleet(&r->hosts, &r->nhosts, &r->oo, e)) < 0)
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

static const char *act_sign(enum plan_action a)
{
	return a == PLAN_CREATE ? "+" : a == PLAN_CHANGE ? "~" : " ";
}

/* What follows the file changes on one host: its roles' reloads and probes. */
static void print_after(FILE *out, const struct host_spec *hs)
{
	size_t k;

	for (k = 0; k < hs->nroles; k++) {
		if (hs->roles[k].reload)
			fprintf(out, "    then reload: %s\n", hs->roles[k].reload);
		if (hs->roles[k].probe_type)
			fprintf(out, "    then probe: %s %s:%d\n", hs->roles[k].probe_type, hs->address,
				hs->roles[k].probe_port);
	}
}

void plan_print(const struct env_run *r, FILE *out)
{
	const struct plan *p = &r->plan;
	size_t i, j;

	fprintf(out, "env %s at %.12s: desired generation %d", r->st.env, r->src.commit, r->st.rotation->generation);
	if (r->st.rotation->target)
		fprintf(out, " -> %d, phase %s", r->st.rotation->target, spec_phase_name(r->st.rotation->phase));
	else
		fprintf(out, ", stable");
	fprintf(out, "\n");
	for (i = 0; i < p->nproblems; i++)
		fprintf(out, "  ! %s\n", p->problems[i]);
	for (i = 0; i < p->nnotes; i++)
		fprintf(out, "  note: %s\n", p->notes[i]);
	if (!p->live_known) {
		fprintf(out, "\nNo plan: the live state is not known (above).\n");
		return;
	}
	fprintf(out, "live: every host fits %s%s%s of generation %d%s%.0d\n", phase_step_name(p->live),
		p->partial ? " or " : "", p->partial ? phase_step_name(p->live + 1) : "", p->a, p->b ? " -> " : "", p->b);
	for (i = 0; i < p->nsteps; i++) {
		const struct plan_step *st = &p->steps[i];
		size_t last_host = (size_t)-1;

		if (st->from == st->to)
			fprintf(out, "\nstep %zu: bring every host to %s\n", i + 1, phase_step_name(st->to));
		else
			fprintf(out, "\nstep %zu: %s -> %s\n", i + 1, phase_step_name(st->from), phase_step_name(st->to));
		fprintf(out, "  gate: every host fits %s before the step\n", phase_step_name(st->from));
		for (j = 0; j < st->ngates; j++)
			fprintf(out, "  gate NOT ready: %s\n", st->gates[j]);
		for (j = 0; j < st->nchanges; j++) {
			const struct plan_change *c = &st->changes[j];
			const struct obs_host *oh = &r->hosts[c->host];
			const struct obs_file *of = &oh->files[c->file];

			if (c->host != last_host) {
				if (last_host != (size_t)-1)
					print_after(out, &r->st.hosts->hosts[last_host]);
				fprintf(out, "  %s (%s)\n", oh->name, oh->address);
				last_host = c->host;
			}
			fprintf(out, "    %s %-42s %s%s%s\n", act_sign(c->action), of->path,
				c->from && *c->from ? c->from : "", c->from && *c->from ? "  =>  " : "", c->to);
		}
		if (last_host != (size_t)-1)
			print_after(out, &r->st.hosts->hosts[last_host]);
		if (st->nbroken) {
			fprintf(out, "  pairs: %zu would BREAK:\n", st->nbroken);
			for (j = 0; j < st->nbroken; j++)
				fprintf(out, "    x %s\n", st->broken[j]);
		} else {
			fprintf(out, "  pairs: every client/server pair verifies during the step\n");
		}
	}
	if (p->refused)
		fprintf(out, "\nRefused: reaching %s this way would break the pairs above.\n", phase_step_name(p->desired));
	else if (p->nchanges == 0)
		fprintf(out, "\nIn sync: every host holds the desired %s.\n", phase_step_name(p->desired));
	else {
		size_t busy = 0;

		for (i = 0; i < p->nsteps; i++)
			busy += p->steps[i].nchanges > 0;
		fprintf(out, "\nPlan: %zu step%s with changes, %zu file change%s on %zu host%s.\n", busy, busy == 1 ? "" : "s",
			p->nchanges, p->nchanges == 1 ? "" : "s", p->nhosts_changed, p->nhosts_changed == 1 ? "" : "s");
	}
}

static int plan_json(const struct env_run *r, struct buf *j)
{
	const struct plan *p = &r->plan;
	size_t i, k;

	buf_puts(j, "{\"env\":");
	json_str(j, r->st.env);
	buf_printf(j, ",\"commit\":\"%s\",\"live_known\":%s", r->src.commit, p->live_known ? "true" : "false");
	if (p->live_known) {
		buf_printf(j, ",\"rotation\":{\"generation\":%d,\"target\":", p->a);
		if (p->b)
			buf_printf(j, "%d", p->b);
		else
			buf_puts(j, "null");
		buf_printf(j, "},\"live\":\"%s\",\"partial\":%s,\"desired\":\"%s\"", phase_step_name(p->live),
			   p->partial ? "true" : "false", phase_step_name(p->desired));
	}
	buf_printf(j, ",\"refused\":%s,\"changes\":%zu,\"problems\":[", p->refused ? "true" : "false", p->nchanges);
	for (i = 0; i < p->nproblems; i++) {
		if (i)
			buf_puts(j, ",");
		json_str(j, p->problems[i]);
	}
	buf_puts(j, "],\"steps\":[");
	for (i = 0; i < p->nsteps; i++) {
		const struct plan_step *st = &p->steps[i];

		buf_printf(j, "%s{\"from\":\"%s\",\"to\":\"%s\",\"changes\":[", i ? "," : "", phase_step_name(st->from),
			   phase_step_name(st->to));
		for (k = 0; k < st->nchanges; k++) {
			const struct plan_change *c = &st->changes[k];

			buf_puts(j, k ? ",{\"host\":" : "{\"host\":");
			json_str(j, r->hosts[c->host].name);
			buf_puts(j, ",\"path\":");
			json_str(j, r->hosts[c->host].files[c->file].path);
			buf_printf(j, ",\"action\":\"%s\",\"from\":", c->action == PLAN_CREATE ? "create" : "change");
			json_str(j, c->from && *c->from ? c->from : NULL);
			buf_puts(j, ",\"to\":");
			json_str(j, c->to);
			buf_printf(j, ",\"mode\":\"%04o\"}", (unsigned)c->mode);
		}
		buf_puts(j, "],\"broken_pairs\":[");
		for (k = 0; k < st->nbroken; k++) {
			if (k)
				buf_puts(j, ",");
			json_str(j, st->broken[k]);
		}
		buf_puts(j, "],\"gates_not_ready\":[");
		for (k = 0; k < st->ngates; k++) {
			if (k)
				buf_puts(j, ",");
			json_str(j, st->gates[k]);
		}
		buf_puts(j, "]}");
	}
	return buf_puts(j, "]}\n");
}

static int run_plan(struct ctx *ctx, int argc, char **argv, int drift)
{
	const char *ref = NULL, *json = NULL, *detailed = NULL, *no_path = NULL, *replace = NULL, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "json", 0, &json }, { "detailed-exitcode", 0, &detailed },
				    { "no-path", 0, &no_path }, { "replace-unknown", 0, &replace }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct env_run r;
	struct buf j = BUF_INIT;
	const char *env;
	size_t npos, i, k, c, expiring = 0, unknown = 0, badkeys = 0;
	int rc = 1;

	memset(&r, 0, sizeof(r));
	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0)
		return cmd_fail(&e);
	if (env_run_load(&r, ctx, env, ref, 0, &d, &e) < 0) {
		rc = d.n ? state_report(&d) : cmd_fail(&e);
		goto out;
	}
	if (!json && isatty(2))
		r.oo.progress = NULL;
	if (env_run_plan(&r, no_path != NULL, replace != NULL, &e) < 0)
		goto fail;
	if (drift) {
		int renew = r.st.chain->renew_before_days;

		for (i = 0; i < r.nhosts; i++)
			for (k = 0; k < r.hosts[i].nfiles; k++) {
				const struct obs_file *f = &r.hosts[i].files[k];

				if (f->content == SPEC_CONTENT_KEY && f->present && !f->problem && f->key != OBS_KEY_MATCH)
					badkeys++;
				for (c = 0; c < f->ncerts; c++) {
					if (!f->certs[c].generation) {
						unknown++;
						if (!json)
							printf("unknown certificate on %s in %s: %s (sha256 %s)\n", r.hosts[i].name,
							       f->path, f->certs[c].subject, f->certs[c].fingerprint);
					}
					if (f->certs[c].days_left < renew) {
						expiring++;
						if (!json)
							printf("expiring on %s in %s: %s in %lld days (renew_before %d)\n",
							       r.hosts[i].name, f->path, f->certs[c].subject, f->certs[c].days_left,
							       renew);
					}
				}
			}
	}
	if (json) {
		if (plan_json(&r, &j) < 0)
			goto nomem;
		if (drift) {
			buf_truncate(&j, j.len - 2);   /* reopen the object */
			if (buf_printf(&j, ",\"unknown_certificates\":%zu,\"expiring\":%zu,\"keys_not_matching\":%zu}\n",
				       unknown, expiring, badkeys) < 0)
				goto nomem;
		}
		fputs(buf_cstr(&j), stdout);
	} else {
		plan_print(&r, stdout);
	}
	if (!r.plan.live_known && !drift) {
		rc = 1;
	} else if (r.plan.refused) {
		fprintf(stderr, "rotor: the desired state is unsafe to reach; see the pairs that would break\n");
		rc = 1;
	} else if (drift) {
		int pending = r.plan.nchanges > 0 || !r.plan.live_known || unknown || expiring || badkeys;

		if (!json)
			printf("%s\n", pending ? "drift: see above (exit 2)" : "no drift");
		rc = pending ? 2 : 0;
	} else {
		rc = detailed && r.plan.nchanges > 0 ? 2 : 0;
	}
	goto out;
nomem:
	err_nomem(&e);
fail:
	rc = cmd_fail(&e);
out:
	buf_release(&j);
	diags_release(&d);
	env_run_release(&r);
	return rc;
}

int cmd_plan(struct ctx *ctx, int argc, char **argv)
{
	return run_plan(ctx, argc, argv, 0);
}

int cmd_drift(struct ctx *ctx, int argc, char **argv)
{
	return run_plan(ctx, argc, argv, 1);
}
