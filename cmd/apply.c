/*
 * apply.c -- `rotor apply [FILE]`: the arguments (FILE: a plan saved by
 * `rotor plan --out`, reconcile/engine/savedplan.h), the question, and the lines
 * the engine reports as it walks the plan (reconcile/engine/apply.h).
 * The lines go to stdout (the payload), or to stderr with --json, where
 * stdout holds only the result document (schemas/apply.json).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "reconcile/engine/apply.h"

/* Where the lines go, and the progress lines on a terminal. */
struct out {
	FILE *f;
	struct progress observing, applying;
	size_t step_hosts, step_done, step_failed;
};

/* Before a line goes out: no progress line in its way. */
static FILE *line_out(struct out *o)
{
	progress_clear(&o->observing);
	progress_clear(&o->applying);
	return o->f;
}

static void show_plan(void *payload, const struct env_run *r)
{
	FILE *f = line_out(payload);

	plan_print(r, f);
	fflush(f);
}

static int ask(void *payload)
{
	FILE *f = line_out(payload);
	char line[32];

	fprintf(f, "\nApply these steps? Only 'yes' is accepted: ");
	fflush(f);
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	return strcmp(line, "yes\n") == 0;
}

static void show_step(void *payload, const struct plan_step *st)
{
	struct out *o = payload;
	FILE *f = line_out(o);
	size_t i, j;

	fprintf(f, "\napplying step %s -> %s: %zu file%s\n", phase_step_name(st->from), phase_step_name(st->to),
		st->nchanges, st->nchanges == 1 ? "" : "s");
	fflush(f);
	/* The hosts the step writes: those its changes name, once each. */
	o->step_hosts = o->step_done = o->step_failed = 0;
	for (i = 0; i < st->nchanges; i++) {
		for (j = 0; j < i && st->changes[j].host != st->changes[i].host; j++)
			;
		o->step_hosts += j == i;
	}
}

static void show_host(void *payload, const struct obs_host *h, int failed, const char *what)
{
	struct out *o = payload;
	FILE *f = line_out(o);

	fprintf(f, "  %s %s (%s): %s\n", failed ? "x" : "✓", h->name, h->address, what);
	fflush(f);
	o->step_done++;
	o->step_failed += failed != 0;
	progress_show(&o->applying, o->step_done, o->step_failed,
		      o->step_done > o->step_hosts ? o->step_done : o->step_hosts);
}

static void show_note(void *payload, const char *line)
{
	FILE *f = line_out(payload);

	fprintf(f, "%s\n", line);
	fflush(f);
}

static void show_alert(void *payload, const char *msg)
{
	fflush(line_out(payload));
	fprintf(stderr, "rotor: %s\n", msg);
}

int cmd_apply(struct ctx *ctx, int argc, char **argv)
{
	const char *ref = NULL, *yes = NULL, *jobs = NULL, *jobs_j = NULL, *canary = NULL, *force = NULL;
	const char *replace = NULL, *json = NULL, *no_fetch = NULL, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "yes", 0, &yes }, { "parallel", 1, &jobs }, { "j", 1, &jobs_j },
				    { "canary", 1, &canary }, { "force-unlock", 0, &force },
				    { "replace-unknown", 0, &replace }, { "json", 0, &json },
				    { "no-fetch", 0, &no_fetch }, { NULL, 0, NULL } };
	struct apply_ui ui = { NULL, show_plan, ask, show_step, show_host, show_note, show_alert, NULL, NULL };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct apply_opts o;
	struct apply_result res;
	struct saved_plan sp;
	struct out out;
	struct gitrepo *repo;
	size_t npos;
	int rc;

	memset(&o, 0, sizeof(o));
	memset(&sp, 0, sizeof(sp));
	if (opt_parse(argc, argv, opts, pos, 1, &npos, &e) < 0)
		return cmd_fail(&e);
	/* A saved plan (rotor plan --out FILE): its env, unless --env names another. */
	if (npos == 1) {
		if (savedplan_read(&sp, pos[0], &e) < 0)
			return cmd_fail(&e);
		if (ctx->env && strcmp(ctx->env, sp.env) != 0) {
			rc = cmd_failf("%s: the plan is for env %s, not %s", pos[0], sp.env, ctx->env);
			savedplan_release(&sp);
			return rc;
		}
		ctx->env = sp.env;
		o.saved = &sp;
	}
	if (ctx_env(ctx, &o.env, &e) < 0 ||
	    opt_jobs(&o.parallel, jobs_j, jobs, &e) < 0 ||
	    (canary && opt_int(&o.canary, canary, "--canary", 1, 100000, &e) < 0) || ctx_repo(ctx, &repo, &e) < 0)
		goto fail;
	o.ref = ref;
	o.force_unlock = force != NULL;
	o.replace_unknown = replace != NULL || sp.replace_unknown;
	o.json = json != NULL;
	if (ref && no_fetch) {
		rc = cmd_failf("give --ref or --no-fetch, not both");
		goto out;
	}
	o.no_fetch = no_fetch != NULL;
	memset(&out, 0, sizeof(out));
	out.f = json ? stderr : stdout;
	progress_init(&out.observing, "observing", json != NULL);
	progress_init(&out.applying, "applying", json != NULL);
	ui.payload = &out;
	if (out.observing.on) {
		ui.progress = progress_hosts;
		ui.progress_payload = &out.observing;
	}
	o.message = cmd_remote_line;
	o.message_payload = out.f;
	if (yes || o.saved)
		ui.confirm = NULL;      /* a saved plan was reviewed: applied as it is, as Terraform does */
	rc = apply_env(&res, repo, &o, &ui, &d, &e);
	line_out(&out);
	if (rc < 0) {
		rc = cmd_report(&d, &e);
	} else {
		rc = res.status;
		if (res.json)
			fputs(res.json, stdout);
		free(res.json);
	}
	diags_release(&d);
	goto out;
fail:
	rc = cmd_fail(&e);
out:
	if (o.saved)
		ctx->env = NULL;
	savedplan_release(&sp);
	return rc;
}
