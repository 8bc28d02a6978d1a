/*
 * handoff.c -- `rotor handoff`: arguments in, the files written and their
 * checksums out, or with --json one document on stdout (schemas/handoff.json)
 * (reconcile/engine/handoff.h does the work).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cmd/cmd.h"
#include "reconcile/engine/handoff.h"
#include "reconcile/engine/origin.h"
#include "reconcile/engine/report.h"

#define PASS_ENV "ROTOR_HANDOFF_PASSPHRASE"

/* The passphrase: --passphrase-file, else $ROTOR_HANDOFF_PASSPHRASE (wiped from the environment). */
static int get_passphrase(struct buf *out, int *have, const char *file, struct err *e)
{
	char *v = getenv(PASS_ENV);
	int rc = 0;

	*have = 0;
	if (file) {
		rc = handoff_read_passphrase(out, file, e);
		*have = rc == 0;
	} else if (v) {
		if (buf_puts(out, v) < 0)
			rc = err_nomem(e);
		*have = rc == 0;
	}
	if (v) {
		secure_wipe(v, strlen(v));
		unsetenv(PASS_ENV);
	}
	return rc;
}

static const char *choice_word(enum handoff_choice c)
{
	return c == HANDOFF_CURRENT ? "current" : c == HANDOFF_TARGET ? "target" : "next";
}

int cmd_handoff(struct ctx *ctx, int argc, char **argv)
{
	const char *client = NULL, *out_dir = NULL, *step = NULL, *ref = NULL, *pass_file = NULL, *plain = NULL,
		   *no_fetch = NULL, *json = NULL;
	const char *pos[1];
	const struct opt opts[] = { { "client", 1, &client }, { "out", 1, &out_dir }, { "step", 1, &step },
				    { "ref", 1, &ref }, { "passphrase-file", 1, &pass_file },
				    { "plain-key", 0, &plain }, { "no-fetch", 0, &no_fetch }, { "json", 0, &json }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct handoff_opts o;
	struct handoff_result res;
	struct desired want;
	struct gitrepo *repo;
	struct buf pass = BUF_INIT;
	size_t npos, i;
	int choice = HANDOFF_NEXT, have = 0, rc;

	memset(&o, 0, sizeof(o));
	rc = get_passphrase(&pass, &have, NULL, &e);   /* wipe the environment copy whatever happens */
	if (rc == 0 && opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0)
		rc = e.code;
	if (rc == 0 && pass_file) {
		buf_wipe(&pass);
		rc = get_passphrase(&pass, &have, pass_file, &e);
	}
	if (rc == 0 && (choice = handoff_choice_parse(step)) < 0)
		rc = err_set(&e, ROTOR_EINVALID, "--step must be next, current or target (not \"%s\")", step);
	if (rc == 0 && !client)
		rc = err_set(&e, ROTOR_EINVALID, "handoff needs --client NAME");
	if (rc == 0 && (ctx_env(ctx, &o.env, &e) < 0 || ctx_repo(ctx, &repo, &e) < 0))
		rc = e.code;
	/* The same desired commit as plan and apply: --ref, else git.main fetched from git.remote. */
	if (rc == 0)
		rc = cmd_desired(&want, repo, ref, no_fetch != NULL, NULL, &e);
	if (rc < 0) {
		buf_wipe(&pass);
		return cmd_fail(&e);
	}
	o.client = client;
	o.out_dir = out_dir;
	o.ref = want.commit;
	o.choice = (enum handoff_choice)choice;
	o.passphrase = have ? buf_cstr(&pass) : NULL;
	o.plain_key = plain != NULL;
	o.now = time(NULL);
	rc = handoff_write(&res, repo, &o, &d, &e);
	buf_wipe(&pass);
	if (rc < 0) {
		rc = cmd_report(&d, &e);
		diags_release(&d);
		return rc;
	}
	if (json) {
		struct buf out = BUF_INIT;

		fprintf(stderr, "%s\n", want.line);
		rc = handoff_json(&out, o.env, client, out_dir, choice_word(o.choice), &want, &res);
		if (rc == 0)
			fputs(buf_cstr(&out), stdout);
		buf_release(&out);
		diags_release(&d);
		return rc == 0 ? 0 : cmd_failf("the --json document is incomplete (out of memory); the hand-off was written");
	}
	printf("%s\n", want.line);
	printf("hand-off for %s%s, env %s at %.12s: ", client, res.external ? " (external peer)" : "", o.env,
	       res.commit);
	if (res.b)
		printf("step %s of rotation %d -> %d (--step %s)\n", phase_step_name(res.step), res.a, res.b,
		       choice_word(o.choice));
	else
		printf("generation %d, no rotation under way\n", res.a);
	if (res.bundle_only)
		printf("trust bundle only%s\n", res.external ? " (an external peer)" : "");
	else
		printf("client certificate generation %d, SHA-256 %s, expires %s\n", res.generation,
		       res.leaf_fingerprint, res.leaf_not_after);
	printf("wrote %s:\n", out_dir);
	for (i = 0; i < res.nfiles; i++)
		printf("  %04o  %-22s %s\n", (unsigned)res.files[i].mode, res.files[i].name, res.files[i].sha256);
	printf("  0644  SHA256SUMS\n");
	printf("give the team the directory and, separately, the passphrase; README.txt says what to do\n");
	diags_release(&d);
	return 0;
}
