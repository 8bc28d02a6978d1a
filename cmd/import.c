/*
 * import.c -- `rotor import`: adopt a fleet that already has certificates
 * as generation 1 (reconcile/engine/import.h); the arguments, the reasons
 * to refuse and the generation committed.
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "reconcile/engine/import.h"

int cmd_import(struct ctx *ctx, int argc, char **argv)
{
	const char *pos[1];
	const struct opt opts[] = { { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct import_opts o;
	struct import_result res;
	struct gitrepo *repo;
	const char *p, *nl;
	size_t npos, i;
	int rc;

	memset(&o, 0, sizeof(o));
	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &o.env, &e) < 0 ||
	    ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	rc = import_env(&res, repo, &o, &d, &e);
	for (p = buf_cstr(&res.lines); (nl = strchr(p, '\n')); p = nl + 1)
		fprintf(stderr, "rotor: import: %.*s\n", (int)(nl - p), p);
	if (rc < 0) {
		if (rc == ROTOR_EINVALID && res.problems)
			rc = cmd_failf("%s (above)", e.msg);
		else
			rc = cmd_report(&d, &e);
		goto out;
	}
	printf("imported %s from %zu hosts as generation 1 (certificates only):\n", o.env, res.nhosts);
	printf("  %-10s %-24s %-10s %s\n", "role", "name", "expires", "sha256 fingerprint");
	for (i = 0; i < res.manifest->ncerts; i++)
		printf("  %-10s %-24s %.10s %s\n", spec_cert_role_name(res.manifest->certs[i].role),
		       res.manifest->certs[i].name, res.manifest->certs[i].not_after, res.manifest->certs[i].fingerprint);
	printf("\ncommitted %.12s on branch %s (work tree and %s untouched)\n", res.commit, res.branch,
	       res.head_branch);
	printf("next: review and merge it; then `rotor observe --env %s` shows every host in phase stable\n", o.env);
out:
	import_result_release(&res);
	diags_release(&d);
	return rc;
}
