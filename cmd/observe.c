/*
 * observe.c -- `rotor observe`: what every host of an env really has.
 *
 * Reads the env at a commit (default HEAD) for the hosts, their layouts
 * and the generations to match against, then observes every host over
 * SSH (reconcile/engine/) and prints a table or --json
 * (schemas/observe.json).  Exit 0 when every host was observed, 1 when
 * one could not be (it is still reported) or on error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "common/clock.h"
#include "reconcile/engine/report.h"
#include "reconcile/engine/run.h"


static void print_cert(const struct obs_cert *c, int first)
{
	printf("%s", first ? "" : ", ");
	if (c->generation == OBS_GEN_EXTERNAL)
		printf("external %s", c->name ? c->name : "");
	else if (c->generation)
		printf("g%d %s %s", c->generation, spec_cert_role_name(c->role), c->name ? c->name : "");
	else
		printf("UNKNOWN");
	if (c->role == CERT_ROLE_SERVER || c->role == CERT_ROLE_CLIENT || !c->generation)
		printf(" (%lld d)", c->days_left);
}

static void print_human(const struct obs_host *h, size_t n, const struct state *st, const char *commit,
			double secs)
{
	char mask[128];
	size_t i, j, k, unreachable = 0, unknown = 0, problems = 0, strays = 0;

	printf("env %s at %.12s: generation %d", st->env, commit, st->rotation->generation);
	if (st->rotation->target)
		printf(", target %d, phase %s", st->rotation->target, spec_phase_name(st->rotation->phase));
	else
		printf(", phase stable");
	printf("; %zu host%s observed in %.2f s\n", n, n == 1 ? "" : "s", secs);
	for (i = 0; i < n; i++) {
		printf("\n%s (%s)", h[i].name, h[i].address);
		if (!h[i].reachable) {
			printf("  UNREACHABLE: %s\n", h[i].error ? h[i].error : "?");
			unreachable++;
			continue;
		}
		printf("  live state fits: %s\n", obs_host_empty(&h[i], 0) ? "any step (holds none of its files)"
						    : obs_fits_names(mask, sizeof(mask), h[i].phase_mask, st->rotation->target));
		for (j = 0; j < h[i].nfiles; j++) {
			const struct obs_file *f = &h[i].files[j];

			printf("  %-44s %-10s ", f->path, layout_content_name(f->content));
			if (!f->present) {
				printf("MISSING\n");
				problems++;
				continue;
			}
			if (f->mode >= 0)
				printf("%04o %ld:%ld  ", (unsigned)f->mode, f->uid, f->gid);
			if (f->problem) {
				printf("PROBLEM: %s\n", f->problem);
				problems++;
				continue;
			}
			if (f->content == SPEC_CONTENT_KEY) {
				printf("key %s\n", obs_key_name(f->key) ? obs_key_name(f->key) : "not checked");
				if (f->key != OBS_KEY_MATCH)
					problems++;
				continue;
			}
			if (f->content == SPEC_CONTENT_CRL) {
				char when[32];
				struct tm tm;

				if (!gmtime_r(&f->crl_next_update, &tm) ||
				    !strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm))
					snprintf(when, sizeof(when), "?");
				printf("%zu CRL%s, first nextUpdate %s, sha256 %.16s...\n", f->ncrls, f->ncrls == 1 ? "" : "s",
				       when, f->sha256);
				continue;
			}
			for (k = 0; k < f->ncerts; k++)
				print_cert(&f->certs[k], k == 0);
			if (f->form == LAYOUT_FORM_P12)
				printf("; PKCS#12, key %s", obs_key_name(f->key) ? obs_key_name(f->key) : "not checked");
			printf("\n");
			for (k = 0; k < f->ncerts; k++) {
				const struct obs_cert *c = &f->certs[k];

				if (c->generation)
					continue;
				unknown++;
				printf("    unknown: subject %s; issuer %s; sha256 %s; expires %s\n", c->subject, c->issuer,
				       c->fingerprint, c->not_after);
			}
		}
		for (j = 0; j < h[i].nstrays; j++)
			printf("  %-44s %s\n", h[i].strays[j],
			       obs_stray_is_backup(h[i].strays[j]) ? "backup (previous file)" : "STRAY temporary file");
		strays += h[i].nstrays;
	}
	printf("\n%zu host%s: %zu observed, %zu unreachable; %zu file problem%s; %zu unknown certificate%s; "
	       "%zu backup or temporary file%s\n", n, n == 1 ? "" : "s", n - unreachable, unreachable, problems,
	       problems == 1 ? "" : "s", unknown, unknown == 1 ? "" : "s", strays, strays == 1 ? "" : "s");
}

int cmd_observe(struct ctx *ctx, int argc, char **argv)
{
	const char *ref = NULL, *json = NULL, *jobs = NULL, *jobs_j = NULL, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "json", 0, &json }, { "parallel", 1, &jobs },
				    { "j", 1, &jobs_j }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct env_run r;
	struct progress pg;
	struct gitrepo *repo;
	const char *env;
	int64_t t0, t1;
	size_t npos, i;
	int rc = 1, unreachable = 0, njobs = 0;

	memset(&r, 0, sizeof(r));
	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0 ||
	    opt_jobs(&njobs, jobs_j, jobs, &e) < 0 || ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	if (env_run_load(&r, repo, env, ref, RUN_STATE, &d, &e) < 0) {
		rc = cmd_report(&d, &e);
		goto out;
	}
	if (njobs)
		r.oo.parallel = njobs;
	progress_init(&pg, "observing", json != NULL);
	if (pg.on) {
		r.oo.progress = progress_hosts;
		r.oo.payload = &pg;
	}
	t0 = clock_mono_ms();
	rc = env_run_observe(&r, &e);
	progress_clear(&pg);
	if (rc < 0)
		goto fail;
	t1 = clock_mono_ms();
	for (i = 0; i < r.nhosts; i++)
		unreachable += !r.hosts[i].reachable;
	if (json) {
		struct buf j = BUF_INIT;

		if (observe_json(&j, r.hosts, r.nhosts, &r.st, r.src.commit) < 0) {
			buf_release(&j);
			err_nomem(&e);
			goto fail;
		}
		fputs(buf_cstr(&j), stdout);
		buf_release(&j);
	} else {
		print_human(r.hosts, r.nhosts, &r.st, r.src.commit,
			    (double)(t1 - t0) / 1e3);
	}
	for (i = 0; i < r.nhosts; i++)
		if (!r.hosts[i].reachable)
			fprintf(stderr, "rotor: %s\n", r.hosts[i].error ? r.hosts[i].error : r.hosts[i].name);
	rc = unreachable ? 1 : 0;
	goto out;
fail:
	rc = cmd_fail(&e);
out:
	diags_release(&d);
	env_run_release(&r);
	return rc;
}
