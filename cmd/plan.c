/*
 * plan.c -- `rotor plan` and `rotor drift`: the desired state at a commit
 * against the live state of every host, as the path of steps that would
 * reach it, with the gates and the pair check (reconcile/engine/run.h);
 * plan_print() is also apply's.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "reconcile/engine/files.h"
#include "reconcile/engine/report.h"
#include "reconcile/engine/run.h"
#include "reconcile/engine/savedplan.h"
#include "reconcile/engine/trust.h"

static const char *act_sign(enum plan_action a)
{
	return a == PLAN_CREATE ? "+" : a == PLAN_CHANGE ? "~" : " ";
}

/* What follows the file changes on one host: its roles' reloads and probes. */
static void print_after(FILE *out, const struct host_spec *hs)
{
	size_t k;

	for (k = 0; k < hs->nroles; k++) {
		const char *reload = role_reload(&hs->roles[k]);

		if (reload)
			fprintf(out, "    then reload: %s\n", reload);
		if (hs->roles[k].probe)
			fprintf(out, "    then probe: %s %s:%d\n", hs->roles[k].probe->name, hs->address,
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
	for (i = 0; i < r->nstale; i++) {
		const struct host_spec *hs = &r->st.hosts->hosts[r->stale[i].host];
		const char *reload = role_reload(&hs->roles[r->stale[i].role]);

		fprintf(out, "  ~ %s (%s): the service presents %s, its files hold %s: it needs a reload\n", hs->name,
			hs->address, r->stale[i].presents, r->stale[i].holds);
		fprintf(out, "    then reload: %s\n", reload ? reload : "(none in hosts.yaml: reload it by hand)");
	}
	if (!r->probed)
		fprintf(out, "  note: services not probed (--no-probe): a server still on an old certificate is not seen\n");
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
	else if (p->nchanges == 0 && r->nstale == 0)
		fprintf(out, "\nIn sync: every host holds the desired %s.\n", phase_step_name(p->desired));
	else if (p->nchanges == 0)
		fprintf(out, "\nPlan: every host holds the desired %s; %zu service%s to reload.\n", phase_step_name(p->desired),
			r->nstale, r->nstale == 1 ? "" : "s");
	else {
		size_t busy = 0;

		for (i = 0; i < p->nsteps; i++)
			busy += p->steps[i].nchanges > 0;
		fprintf(out, "\nPlan: %zu step%s with changes, %zu file change%s on %zu host%s", busy, busy == 1 ? "" : "s",
			p->nchanges, p->nchanges == 1 ? "" : "s", p->nhosts_changed, p->nhosts_changed == 1 ? "" : "s");
		if (r->nstale)
			fprintf(out, "; first %zu service%s to reload", r->nstale, r->nstale == 1 ? "" : "s");
		fprintf(out, ".\n");
	}
}

static const char *crl_when(time_t t)
{
	static char s[32];
	struct tm tm;

	if (!gmtime_r(&t, &tm) || !strftime(s, sizeof(s), "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(s, sizeof(s), "?");
	return s;
}

static void print_drift(void *payload, const struct drift_item *it)
{
	(void)payload;
	if (it->kind == DRIFT_UNKNOWN_CERT)
		printf("unknown certificate on %s in %s: %s (sha256 %s)\n", it->host->name, it->file->path,
		       it->cert->subject, it->cert->fingerprint);
	else if (it->kind == DRIFT_EXPIRING)
		printf("expiring on %s in %s: %s in %lld days (renew_before %d)\n", it->host->name, it->file->path,
		       it->cert->subject, it->cert->days_left, it->renew_before_days);
	else if (it->kind == DRIFT_EXTERNAL_EXPIRING)
		printf("expiring external CA %s: %s in %lld days (renew_before %d): commit the provider's next CA\n",
		       it->ext->file, it->ext->subject, it->ext_days_left, it->renew_before_days);
	else if (it->kind == DRIFT_CRL_EXPIRING)
		printf("CRL expiring on %s in %s: nextUpdate %s (renew_before %d; rotor client crl signs it again)\n",
		       it->host->name, it->file->path, crl_when(it->file->crl_next_update), it->renew_before_days);
	else if (it->kind == DRIFT_EXTERNAL_SERVER && !it->answer->tls_ok)
		printf("external server %s (%s:%d) did not answer the probe: %s\n", it->server->name, it->server->address,
		       it->server->port, it->answer->error[0] ? it->answer->error : "no TLS");
	else if (it->kind == DRIFT_EXTERNAL_SERVER && !it->answer->server_verified)
		printf("external server %s (%s:%d) presents leaf %.23s... that the clients' bundle does not verify: %s\n",
		       it->server->name, it->server->address, it->server->port, it->answer->server_leaf_fingerprint,
		       it->answer->verify_reason);
	else if (it->kind == DRIFT_EXTERNAL_SERVER)
		printf("expiring external server %s (%s:%d): a certificate it presents expires in %lld days (renew_before %d)\n",
		       it->server->name, it->server->address, it->server->port, it->ext_days_left, it->renew_before_days);
	else if (it->kind == DRIFT_STRAY)
		printf("stray file on %s: %s\n", it->host->name, it->stray);
}

static int run_plan(struct ctx *ctx, int argc, char **argv, int drift)
{
	const char *ref = NULL, *json = NULL, *detailed = NULL, *no_path = NULL, *replace = NULL, *no_probe = NULL,
		   *no_fetch = NULL, *out_file = NULL, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "json", 0, &json }, { "detailed-exitcode", 0, &detailed },
				    { "no-path", 0, &no_path }, { "replace-unknown", 0, &replace },
				    { "no-probe", 0, &no_probe }, { "no-fetch", 0, &no_fetch }, { "out", 1, &out_file },
				    { NULL, 0, NULL } };
	struct desired want;
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct env_run r;
	struct progress pg;
	struct drift_counts dc;
	struct buf j = BUF_INIT;
	struct gitrepo *repo;
	const char *env;
	size_t npos;
	int rc = 1;

	memset(&r, 0, sizeof(r));
	memset(&dc, 0, sizeof(dc));
	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0 ||
	    ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	if (out_file && (drift || no_path))
		return cmd_failf("--out saves a plan for apply: only `rotor plan`, without --no-path");
	/* The desired commit: --ref, else git.main fetched from git.remote (the same as apply's). */
	if (cmd_desired(&want, repo, ref, no_fetch != NULL, json ? stderr : stdout, &e) < 0)
		return cmd_fail(&e);
	if (env_run_load(&r, repo, env, want.commit, RUN_CERTS, &d, &e) < 0) {
		rc = cmd_report(&d, &e);
		goto out;
	}
	r.desired = want;
	r.no_probe = no_probe != NULL;
	progress_init(&pg, "observing", json != NULL);
	if (pg.on) {
		r.oo.progress = progress_hosts;
		r.oo.payload = &pg;
	}
	rc = env_run_plan(&r, no_path != NULL, replace != NULL, &e);
	progress_clear(&pg);
	if (rc < 0)
		goto fail;
	if (drift && (rc = env_run_probe_external(&r, &e)) < 0)
		goto fail;
	if (drift)
		env_run_drift(&r, &dc, json ? NULL : print_drift, NULL);
	if (json) {
		if ((rc = plan_json(&j, &r, drift ? &dc : NULL)) < 0) {
			err_set(&e, rc, "the JSON document is %s", rc == ROTOR_ETOOBIG ? "too large" : "incomplete (out of memory)");
			goto fail;
		}
		fputs(buf_cstr(&j), stdout);
	} else {
		plan_print(&r, stdout);
	}
	if (out_file && r.plan.live_known && !r.plan.refused) {
		struct buf saved = BUF_INIT;

		if ((rc = savedplan_json(&saved, &r, replace != NULL)) < 0)
			err_set(&e, rc, "the saved plan is %s", rc == ROTOR_ETOOBIG ? "too large" : "incomplete (out of memory)");
		else
			rc = savedplan_write(out_file, &saved, &e);
		buf_release(&saved);
		if (rc < 0)
			goto fail;
		fprintf(json ? stderr : stdout, "\nSaved the plan to %s: `rotor apply %s` applies exactly this plan.\n",
			out_file, out_file);
	} else if (out_file) {
		fprintf(stderr, "rotor: no plan to save: %s not written\n", out_file);
	}
	if (!r.plan.live_known && !drift) {
		rc = 1;
	} else if (r.plan.refused) {
		fprintf(stderr, "rotor: the desired state is unsafe to reach; see the pairs that would break\n");
		rc = 1;
	} else if (drift) {
		int pending = r.plan.nchanges > 0 || !r.plan.live_known || dc.unknown || dc.expiring || dc.crls_expiring || dc.keys_not_matching ||
			      dc.stale_services || dc.stray_files || dc.external_servers;

		if (!json)
			printf("%s\n", pending ? "drift: see above (exit 2)" : "no drift");
		rc = pending ? 2 : 0;
	} else {
		rc = detailed && (r.plan.nchanges > 0 || r.nstale > 0) ? 2 : 0;
	}
	goto out;
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
