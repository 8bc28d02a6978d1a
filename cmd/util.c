/* util.c -- option parsing and the lazily opened repository (see cmd.h). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "reconcile/engine/origin.h"

int opt_parse(int argc, char **argv, const struct opt *opts,
	      const char **pos, size_t npos_max, size_t *npos, struct err *e)
{
	const struct opt *o;
	const char *arg, *eq;
	size_t namelen;
	int i, only_pos = 0;

	*npos = 0;
	for (i = 1; i < argc; i++) {
		arg = argv[i];
		if (!only_pos && strcmp(arg, "--") == 0) {
			only_pos = 1;
			continue;
		}
		if (!only_pos && arg[0] == '-' && arg[1] != '-' && arg[1] != '\0' && arg[2] == '\0') {
			/* A one-letter option, "-j N", is the long option named "j". */
			for (o = opts; o && o->name; o++)
				if (o->name[0] == arg[1] && o->name[1] == '\0')
					break;
			if (!o || !o->name)
				return err_set(e, ROTOR_EINVALID, "unknown option \"%s\"", arg);
			if (!o->takes_value) {
				*o->value = "1";
			} else {
				if (i + 1 >= argc)
					return err_set(e, ROTOR_EINVALID, "option %s needs a value", arg);
				*o->value = argv[++i];
			}
			continue;
		}
		if (only_pos || strncmp(arg, "--", 2) != 0) {
			if (arg[0] == '-' && arg[1] != '\0' && !only_pos)
				return err_set(e, ROTOR_EINVALID, "unknown option \"%s\"", arg);
			if (*npos >= npos_max)
				return err_set(e, ROTOR_EINVALID, "unexpected argument \"%s\"", arg);
			pos[(*npos)++] = arg;
			continue;
		}
		arg += 2;
		eq = strchr(arg, '=');
		namelen = eq ? (size_t)(eq - arg) : strlen(arg);
		for (o = opts; o && o->name; o++)
			if (strlen(o->name) == namelen && strncmp(o->name, arg, namelen) == 0)
				break;
		if (!o || !o->name)
			return err_set(e, ROTOR_EINVALID, "unknown option \"--%.*s\"", (int)namelen, arg);
		if (!o->takes_value) {
			if (eq)
				return err_set(e, ROTOR_EINVALID, "option --%s takes no value", o->name);
			*o->value = "1";
		} else if (eq) {
			*o->value = eq + 1;
		} else {
			if (i + 1 >= argc)
				return err_set(e, ROTOR_EINVALID, "option --%s needs a value", o->name);
			*o->value = argv[++i];
		}
	}
	return 0;
}

int ctx_repo(struct ctx *ctx, struct gitrepo **out, struct err *e)
{
	int rc;

	if (!ctx->repo) {
		rc = gitrepo_open(&ctx->repo, ctx->repo_dir ? ctx->repo_dir : ".",
				  ctx->repo_dir ? 0 : 1, e);
		if (rc < 0)
			return rc;
	}
	*out = ctx->repo;
	return 0;
}

int ctx_env(struct ctx *ctx, const char **out, struct err *e)
{
	if (!ctx->env)
		return err_set(e, ROTOR_EINVALID, "no environment given (use --env NAME)");
	if (!env_name_valid(ctx->env))
		return err_set(e, ROTOR_EINVALID,
			       "invalid environment name \"%.64s\" (lowercase letters, digits, '-' and '_', "
			       "at most 32, starting with a letter or digit)", ctx->env);
	*out = ctx->env;
	return 0;
}

int cmd_report(const struct diags *d, const struct err *e)
{
	struct buf b = BUF_INIT;

	if (!d || d->n == 0)
		return cmd_fail(e);
	if (e && e->code == ROTOR_EINVALID && e->msg[0])
		fprintf(stderr, "rotor: %s:\n", e->msg);
	if (diags_format(d, &b) == 0)
		fputs(buf_cstr(&b), stderr);
	buf_release(&b);
	fprintf(stderr, "rotor: %zu problem%s found\n", d->n, d->n == 1 ? "" : "s");
	return 1;
}

int opt_int(int *out, const char *value, const char *name, long min, long max, struct err *e)
{
	char *end;
	long v;

	errno = 0;
	v = value && *value >= '0' && *value <= '9' ? strtol(value, &end, 10) : (end = NULL, 0);
	if (!end || *end || errno || v < min || v > max)
		return err_set(e, ROTOR_EINVALID, "%s must be a number from %ld to %ld, not \"%.32s\"", name, min, max,
			       value ? value : "");
	*out = (int)v;
	return 0;
}

int opt_jobs(int *out, const char *j, const char *parallel, struct err *e)
{
	if (j && parallel)
		return err_set(e, ROTOR_EINVALID, "give -j or --parallel, not both");
	if (!j && !parallel)
		return 0;
	return opt_int(out, j ? j : parallel, j ? "-j" : "--parallel", 1, 1024, e);
}

void cmd_remote_line(void *payload, const char *line)
{
	fprintf(payload, "remote: %s\n", line);
	fflush(payload);
}

int cmd_desired(struct desired *want, struct gitrepo *repo, const char *ref, int no_fetch, FILE *out,
		struct err *e)
{
	struct origin og;
	int rc;

	if (ref && no_fetch)
		return err_set(e, ROTOR_EINVALID, "give --ref or --no-fetch, not both");
	rc = origin_open(&og, repo, cmd_remote_line, out ? out : stderr, e);
	if (rc == 0)
		rc = origin_desired(want, &og, repo, ref, no_fetch, e);
	origin_release(&og);
	if (rc == 0 && out)
		fprintf(out, "%s\n", want->line);
	return rc;
}
