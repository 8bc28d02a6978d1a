/*
 * client.c -- `rotor client add|remove|crl`: the arguments and what was
 * committed, or with --json one document on stdout (schemas/client.json)
 * (the commits themselves: reconcile/engine/client.h).
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "reconcile/engine/client.h"
#include "reconcile/engine/report.h"

static int run(struct ctx *ctx, int argc, char **argv, const char *what)
{
	const char *pos[1] = { NULL };
	const char *json = NULL;
	const struct opt opts[] = { { "json", 0, &json }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct client_opts o;
	struct client_result res;
	struct gitrepo *repo;
	size_t npos = 0, i;
	int crl = strcmp(what, "crl") == 0, rc;

	memset(&o, 0, sizeof(o));
	memset(&res, 0, sizeof(res));
	if (opt_parse(argc, argv, opts, pos, crl ? 0 : 1, &npos, &e) < 0)
		return cmd_fail(&e);
	if (!crl && npos != 1)
		return cmd_failf("client %s needs the client's name (see rotor help client)", what);
	o.name = pos[0];
	if (ctx_env(ctx, &o.env, &e) < 0 || ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	rc = strcmp(what, "add") == 0 ? client_add(&res, repo, &o, &d, &e) :
	     crl ? client_crl(&res, repo, &o, &d, &e) : client_remove(&res, repo, &o, &d, &e);
	if (rc < 0) {
		rc = cmd_report(&d, &e);
		goto out;
	}
	if (json) {
		struct buf out = BUF_INIT;

		rc = client_json(&out, o.env, what, o.name, &res);
		if (rc == 0)
			fputs(buf_cstr(&out), stdout);
		buf_release(&out);
		if (rc < 0)
			rc = cmd_failf("the --json document is incomplete (out of memory); committed %.12s on %s",
				       res.commit, res.branch);
		goto out;
	}
	for (i = 0; i < res.ngens; i++) {
		if (strcmp(what, "add") == 0)
			printf("generation %d: issued client certificate %s\n", res.gens[i], o.name);
		else if (crl)
			printf("generation %d: signed crl/root.crl and crl/client-ca.crl again\n", res.gens[i]);
		else if (res.serials[i][0])
			printf("generation %d: revoked serial %s on crl/client-ca.crl\n", res.gens[i], res.serials[i]);
		else
			printf("generation %d: had no certificate for %s; its CRLs signed again\n", res.gens[i], o.name);
	}
	if (strcmp(what, "remove") == 0 || crl)
		printf("CRLs valid for %d days (chain.yaml validity.crl)\n", res.crl_days);
	printf("committed %.12s on branch %s (work tree and %s untouched)\n", res.commit, res.branch, res.head_branch);
	printf("next: review and merge it (git push %s %s), then rotor apply --env %s\n",
	       res.remote ? res.remote : "origin", res.branch, o.env);
	rc = 0;
out:
	client_result_release(&res);
	diags_release(&d);
	return rc;
}

int cmd_client(struct ctx *ctx, int argc, char **argv)
{
	if (argc < 2)
		return cmd_failf("client needs a subcommand: add, remove or crl (see rotor help client)");
	if (strcmp(argv[1], "add") == 0 || strcmp(argv[1], "remove") == 0 || strcmp(argv[1], "crl") == 0)
		return run(ctx, argc - 1, argv + 1, argv[1]);
	return cmd_failf("unknown client subcommand \"%s\" (see rotor help client)", argv[1]);
}
