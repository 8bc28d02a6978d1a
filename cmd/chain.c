/*
 * chain.c -- `rotor chain show`: the generations committed for an env,
 * read from the certificate files themselves and checked against each
 * generation's manifest.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "reconcile/engine/state.h"
#include "common/json.h"
#include "reconcile/pki/pki.h"

static const char *gen_status(const struct rotation_spec *r, int n)
{
	if (n == r->generation)
		return "in-service";
	if (n == r->target)
		return "target";
	if (n < r->generation)
		return "retired";
	return "unused";
}

struct shown {
	struct manifest_cert live;   /* described from the PEM file */
	int ok;                      /* file read and parsed */
	int matches;                 /* fingerprint equals the manifest's */
	long long days_left;
};

static void shown_release(struct shown *s)
{
	spec_manifest_cert_release(&s->live);
	memset(s, 0, sizeof(*s));
}

static int describe(struct shown *out, const struct state_src *src, const char *env, int number,
		    const struct manifest_cert *mc, time_t now, struct err *e)
{
	struct buf pem = BUF_INIT, path = BUF_INIT;
	long long na;
	int rc;

	memset(out, 0, sizeof(*out));
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

static void json_cert(struct buf *j, const struct manifest_cert *mc, const struct shown *s)
{
	buf_puts(j, "{\"name\":");
	json_str(j, mc->name);
	buf_puts(j, ",\"role\":");
	json_str(j, spec_cert_role_name(mc->role));
	buf_puts(j, ",\"file\":");
	json_str(j, mc->cert);
	buf_puts(j, ",\"subject\":");
	json_str(j, s->live.subject);
	buf_puts(j, ",\"issuer\":");
	json_str(j, s->live.issuer);
	buf_puts(j, ",\"fingerprint_sha256\":");
	json_str(j, s->live.fingerprint);
	buf_puts(j, ",\"serial\":");
	json_str(j, s->live.serial);
	buf_puts(j, ",\"not_before\":");
	json_str(j, s->live.not_before);
	buf_puts(j, ",\"not_after\":");
	json_str(j, s->live.not_after);
	buf_printf(j, ",\"days_left\":%lld,\"matches_manifest\":%s}", s->days_left,
		   s->matches ? "true" : "false");
}

static int chain_show(struct ctx *ctx, int argc, char **argv)
{
	const char *ref = NULL, *json = NULL, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "json", 0, &json }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct state st;
	struct state_src src;
	struct gitrepo *repo;
	struct buf j = BUF_INIT;
	const char *env;
	size_t npos, gi, ci;
	int rc = 1, bad = 0;
	time_t now = time(NULL);

	memset(&st, 0, sizeof(st));
	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0 ||
	    ctx_repo(ctx, &repo, &e) < 0 || state_src_open(&src, repo, ref, 0, &e) < 0)
		return cmd_fail(&e);
	if (state_load(&st, &src, env, &d, &e) < 0) {
		rc = cmd_report(&d, &e);
		goto out;
	}
	if (json) {
		buf_puts(&j, "{\"env\":");
		json_str(&j, env);
		buf_printf(&j, ",\"commit\":\"%s\",\"rotation\":{\"generation\":%d,\"target\":", src.commit,
			   st.rotation->generation);
		if (st.rotation->target)
			buf_printf(&j, "%d", st.rotation->target);
		else
			buf_puts(&j, "null");
		buf_printf(&j, ",\"phase\":\"%s\"},\"generations\":[", spec_phase_name(st.rotation->phase));
	} else {
		printf("env %s at %.12s%s%s: ", env, src.commit, ref ? " " : "", ref ? ref : "");
		if (st.rotation->generation == 0)
			printf("no chain yet (run rotor rotate start --env %s)\n", env);
		else if (st.rotation->target)
			printf("generation %d in service, rotating to %d, phase %s\n", st.rotation->generation,
			       st.rotation->target, spec_phase_name(st.rotation->phase));
		else
			printf("generation %d in service, phase stable\n", st.rotation->generation);
	}
	for (gi = 0; gi < st.ngens; gi++) {
		const struct gen_info *g = &st.gens[gi];
		const struct manifest *m = g->manifest;

		if (json) {
			buf_printf(&j, "%s{\"number\":%d,\"status\":\"%s\",\"imported\":%s,\"created\":", gi ? "," : "",
				   g->number, gen_status(st.rotation, g->number), m->imported ? "true" : "false");
			json_str(&j, m->created);
			buf_puts(&j, ",\"certificates\":[");
		} else {
			printf("\ngeneration %04d  %s%s  created %s\n", g->number, gen_status(st.rotation, g->number),
			       m->imported ? "  imported" : "", m->created ? m->created : "?");
			printf("  %-10s %-24s %-10s %6s  %s\n", "role", "name", "expires", "days", "sha256 fingerprint");
		}
		for (ci = 0; ci < m->ncerts; ci++) {
			const struct manifest_cert *mc = &m->certs[ci];
			struct shown s;

			if (describe(&s, &src, env, g->number, mc, now, &e) < 0) {
				if (e.code == ROTOR_ENOMEM) {
					rc = cmd_fail(&e);
					goto out;
				}
				fprintf(stderr, "rotor: %s\n", e.msg);
				err_clear(&e);
				bad = 1;
			} else if (!s.matches) {
				fprintf(stderr, "rotor: envs/%s/generations/%04d/%s: fingerprint %s differs from "
						"the manifest's %s\n", env, g->number, mc->cert, s.live.fingerprint,
					mc->fingerprint);
				bad = 1;
			}
			if (json) {
				if (ci)
					buf_puts(&j, ",");
				json_cert(&j, mc, &s);
			} else if (s.ok) {
				printf("  %-10s %-24s %.10s %6lld  %s%s\n", spec_cert_role_name(mc->role), mc->name,
				       s.live.not_after, s.days_left, s.live.fingerprint, s.matches ? "" : "  (MISMATCH)");
			} else {
				printf("  %-10s %-24s %-10s %6s  %s\n", spec_cert_role_name(mc->role), mc->name,
				       "?", "?", "(unreadable)");
			}
			shown_release(&s);
		}
		if (json)
			buf_puts(&j, "]}");
	}
	if (json) {
		if (buf_puts(&j, "]}\n") < 0) {
			rc = cmd_failf("out of memory");
			goto out;
		}
		fputs(buf_cstr(&j), stdout);
	}
	rc = bad ? 1 : 0;
out:
	buf_release(&j);
	diags_release(&d);
	state_release(&st);
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
