/*
 * log.c -- `rotor log`: who applied what, when and why, from the status
 * history rotor/status/<env> (one commit per apply), and the lock if the
 * env is locked now; with --json one document on stdout
 * (schemas/log.json).  With git.remote in the git repository both are
 * the remote's: fetched first (--no-fetch: the history as last fetched,
 * the lock unknown).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cmd/cmd.h"
#include "gitops/gitstatus.h"
#include "reconcile/engine/origin.h"
#include "reconcile/engine/report.h"

int cmd_log(struct ctx *ctx, int argc, char **argv)
{
	const char *count = NULL, *json = NULL, *no_fetch = NULL, *pos[1], *read;
	const struct opt opts[] = { { "n", 1, &count }, { "json", 0, &json }, { "no-fetch", 0, &no_fetch },
				    { NULL, 0, NULL } };
	struct origin og;
	struct err e = ERR_INIT;
	struct gitrepo *repo;
	struct gitstatus_entry *v = NULL;
	struct gitstatus_lock lock;
	char when[32], desc[600];
	const char *env;
	size_t npos, n = 0, i, max = 20;
	int rc, locked, found;

	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0 ||
	    ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	if (count) {
		int c;

		if (opt_int(&c, count, "-n", 1, 100000, &e) < 0)
			return cmd_fail(&e);
		max = (size_t)c;
	}
	if ((rc = origin_open(&og, repo, cmd_remote_line, stderr, &e)) < 0)
		return cmd_fail(&e);
	if (!og.has_remote) {
		read = "local";
		fprintf(stderr, "history: the local rotor/status/%s (no remote \"%s\" in the git repository)\n", env,
			og.remote);
		rc = gitstatus_lock_read(repo, env, &lock, &e);
	} else if (no_fetch) {
		read = "not-fetched";
		fprintf(stderr, "not fetched: rotor/status/%s as last fetched from %s; the lock is not known\n", env,
			og.remote);
		rc = ROTOR_ENOTFOUND;
	} else {
		read = "fetched";
		if ((rc = origin_status_fetch(&og, repo, env, &found, &e)) < 0) {
			origin_release(&og);
			return cmd_fail(&e);
		}
		fprintf(stderr, "history: rotor/status/%s fetched from %s (%s)%s\n", env, og.remote, og.url,
			found ? "" : "; it has none yet");
		rc = origin_lock_read(&og, repo, env, &lock, &e);
	}
	origin_release(&og);
	locked = rc == 0;
	if (rc < 0 && rc != ROTOR_ENOTFOUND)
		return cmd_fail(&e);
	err_clear(&e);
	rc = gitstatus_log(repo, env, max, &v, &n, &e);
	if (rc < 0 && rc != ROTOR_ENOTFOUND)
		return cmd_fail(&e);
	if (json) {
		struct buf out = BUF_INIT;

		rc = log_json(&out, env, read, locked ? &lock : NULL, v, n);
		if (rc == 0)
			fputs(buf_cstr(&out), stdout);
		buf_release(&out);
		gitstatus_entries_free(v, n);
		return rc == 0 ? 0 : cmd_failf("the --json document is incomplete (out of memory)");
	}
	if (locked)
		printf("LOCKED by %s\n\n", gitstatus_lock_describe(desc, sizeof(desc), &lock));
	if (rc == ROTOR_ENOTFOUND) {
		printf("no apply recorded for %s yet (rotor/status/%s does not exist)\n", env, env);
		return 0;
	}
	for (i = 0; i < n; i++) {
		if (rfc3339_format(when, sizeof(when), (time_t)v[i].time) < 0)
			snprintf(when, sizeof(when), "?");
		printf("%.12s  %s  %s <%s>\n    %s\n", v[i].id, when, v[i].author_name, v[i].author_email, v[i].subject);
		if (v[i].body && *v[i].body) {
			const char *p = v[i].body, *nl;

			while (*p) {
				nl = strchr(p, '\n');
				printf("    %.*s\n", (int)(nl ? nl - p : (ptrdiff_t)strlen(p)), p);
				if (!nl)
					break;
				p = nl + 1;
			}
		}
		printf("\n");
	}
	printf("(git show rotor/status/%s:applied.json for what each run did, :observed.json for what it saw)\n", env);
	gitstatus_entries_free(v, n);
	return 0;
}
