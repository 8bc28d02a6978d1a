/*
 * init.c -- `rotor init`: the arguments and the files created
 * (reconcile/engine/init.h scaffolds them).
 */
#include <stdio.h>
#include <string.h>

#include "cmd/cmd.h"
#include "reconcile/engine/init.h"

int cmd_init(struct ctx *ctx, int argc, char **argv)
{
	const char *key_file = NULL, *pos[1];
	const struct opt opts[] = { { "key-file", 1, &key_file }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct init_opts o = { "poc", NULL };
	struct init_result res;
	struct gitrepo *repo;
	size_t npos;

	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || (ctx->env && ctx_env(ctx, &o.env, &e) < 0) ||
	    ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	o.key_file = key_file;
	if (init_scaffold(&res, repo, &o, &e) < 0)
		return cmd_fail(&e);
	if (res.created_config)
		printf("created rotor.yaml\n");
	printf("created envs/%s/chain.yaml\ncreated envs/%s/hosts.yaml\ncreated envs/%s/rotation.yaml\n",
	       o.env, o.env, o.env);
	if (res.created_config)
		printf("created secret key %s (mode 0600, key id %s): back it up; it is not in the repository\n",
		       res.key_path, res.key_id);
	printf("\nnext: edit envs/%s/chain.yaml and hosts.yaml, commit them, then run\n"
	       "  rotor rotate start --env %s\n", o.env, o.env);
	return 0;
}
