/*
 * chain.c -- `rotor chain show`: the generations committed for an env
 * (reconcile/engine/chain.h reads them), as a table or as JSON.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "reconcile/engine/chain.h"
#include "reconcile/engine/report.h"

static int chain_show(struct ctx *ctx, int argc, char **argv)
{
	const char *ref = NULL, *json = NULL, *env, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "json", 0, &json }, { NULL, 0, NULL } };
	const struct rotation_spec *rot;
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct chain_view v;
	struct gitrepo *repo;
	struct buf j = BUF_INIT;
	size_t npos, gi, ci;
	int rc = 1;

	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0 ||
	    ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	if (chain_view_load(&v, repo, env, ref, &d, &e) < 0) {
		rc = cmd_report(&d, &e);
		goto out;
	}
	rot = v.st.rotation;
	if (!json) {
		printf("env %s at %.12s%s%s: ", env, v.src.commit, ref ? " " : "", ref ? ref : "");
		if (rot->generation == 0)
			printf("no chain yet (run rotor rotate start --env %s)\n", env);
		else if (rot->target)
			printf("generation %d in service, rotating to %d, phase %s\n", rot->generation,
			       rot->target, spec_phase_name(rot->phase));
		else
			printf("generation %d in service, phase stable\n", rot->generation);
	}
	for (gi = 0; gi < v.ngens; gi++) {
		const struct chain_gen *g = &v.gens[gi];
		const struct manifest *m = g->gen->manifest;

		if (!json) {
			printf("\ngeneration %04d  %s%s  created %s\n", g->gen->number, g->status,
			       m->imported ? "  imported" : "", m->created ? m->created : "?");
			printf("  %-10s %-24s %-10s %6s  %s\n", "role", "name", "expires", "days", "sha256 fingerprint");
		}
		for (ci = 0; ci < g->ncerts; ci++) {
			const struct chain_cert *s = &g->certs[ci];
			const struct manifest_cert *mc = s->mc;

			if (s->error)
				fprintf(stderr, "rotor: %s\n", s->error);
			else if (!s->matches)
				fprintf(stderr, "rotor: envs/%s/generations/%04d/%s: fingerprint %s differs from "
						"the manifest's %s\n", env, g->gen->number, mc->cert, s->live.fingerprint,
					mc->fingerprint);
			if (json) {
				continue;
			} else if (s->ok) {
				printf("  %-10s %-24s %.10s %6lld  %s%s\n", spec_cert_role_name(mc->role), mc->name,
				       s->live.not_after, s->days_left, s->live.fingerprint, s->matches ? "" : "  (MISMATCH)");
			} else {
				printf("  %-10s %-24s %-10s %6s  %s\n", spec_cert_role_name(mc->role), mc->name,
				       "?", "?", "(unreadable)");
			}
		}
	}
	if (json) {
		if (chain_json(&j, &v) < 0) {
			rc = cmd_failf("out of memory");
			goto out;
		}
		fputs(buf_cstr(&j), stdout);
	}
	rc = v.bad ? 1 : 0;
out:
	buf_release(&j);
	diags_release(&d);
	chain_view_release(&v);
	return rc;
}

int cmd_chain(struct ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cmd_failf("chain needs a subcommand: show (see rotor help chain)");
	if (strcmp(argv[1], "show") == 0)
		return chain_show(ctx, argc - 1, argv + 1);
	return cmd_failf("unknown chain subcommand \"%s\" (see rotor help chain)", argv[1]);
}
