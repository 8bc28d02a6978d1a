/*
 * observe.c -- `rotor observe`: what every host of an env really has.
 *
 * Reads the env at a commit (default HEAD) for the hosts, their layouts
 * and the generations to match against, then observes every host over
 * SSH (reconcile/observe_run.c) and prints a table or --json
 * (schemas/observe.json).  Exit 0 when every host was observed, 1 when
 * one could not be (it is still reported) or on error.
 */
#define _DEFAULT_SOURCE
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "common/json.h"
#include "reconcile/engine/observe.h"

#define OBSERVE_MAX_FILE ((size_t)256 << 10)

static const char *content_name(enum spec_content c)
{
	switch (c) {
	case SPEC_CONTENT_LEAF: return "leaf";
	case SPEC_CONTENT_LEAF_CHAIN: return "leaf+chain";
	case SPEC_CONTENT_KEY: return "key";
	case SPEC_CONTENT_TRUST: return "trust";
	}
	return "?";
}

static const char *key_name(enum obs_key k)
{
	switch (k) {
	case OBS_KEY_MATCH: return "matches";
	case OBS_KEY_MISMATCH: return "mismatch";
	case OBS_KEY_INVALID: return "invalid";
	case OBS_KEY_NO_LEAF: return "no-leaf";
	case OBS_KEY_NA: break;
	}
	return NULL;
}

/* "trust" or "servers|clients" or "none"; into a fixed buffer. */
static const char *mask_names(char *out, size_t len, unsigned mask, int target)
{
	size_t used = 0;
	int s;

	out[0] = '\0';
	for (s = 0; s < NSTEPS; s++) {
		const char *name = phase_step_name((enum phase_step)s);

		if (!(mask & (1u << s)))
			continue;
		if (s == STEP_STABLE_A && target)
			name = "stable(generation)";
		used += (size_t)snprintf(out + used, used < len ? len - used : 0, "%s%s", used ? "|" : "", name);
	}
	if (!out[0])
		snprintf(out, len, "none");
	return out;
}

static void progress(void *payload, size_t done, size_t total)
{
	(void)payload;
	fprintf(stderr, "\robserving: %zu/%zu hosts answered", done, total);
	if (done == total)
		fputs("\r\033[K", stderr);
	fflush(stderr);
}

static void print_cert(const struct obs_cert *c, int first)
{
	printf("%s", first ? "" : ", ");
	if (c->generation)
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
	size_t i, j, k, unreachable = 0, unknown = 0, problems = 0;

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
		printf("  live state fits: %s\n", mask_names(mask, sizeof(mask), h[i].phase_mask, st->rotation->target));
		for (j = 0; j < h[i].nfiles; j++) {
			const struct obs_file *f = &h[i].files[j];

			printf("  %-44s %-10s ", f->path, content_name(f->content));
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
				printf("key %s\n", key_name(f->key) ? key_name(f->key) : "not checked");
				if (f->key != OBS_KEY_MATCH)
					problems++;
				continue;
			}
			for (k = 0; k < f->ncerts; k++)
				print_cert(&f->certs[k], k == 0);
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
	}
	printf("\n%zu host%s: %zu observed, %zu unreachable; %zu file problem%s; %zu unknown certificate%s\n", n,
	       n == 1 ? "" : "s", n - unreachable, unreachable, problems, problems == 1 ? "" : "s", unknown,
	       unknown == 1 ? "" : "s");
}

int observe_json(struct buf *out, const struct obs_host *h, size_t n, const struct state *st, const char *commit)
{
	struct buf j = BUF_INIT;
	size_t i, f, k;
	int s, rc;

	buf_puts(&j, "{\"env\":");
	json_str(&j, st->env);
	buf_printf(&j, ",\"commit\":\"%s\",\"rotation\":{\"generation\":%d,\"target\":", commit,
		   st->rotation->generation);
	if (st->rotation->target)
		buf_printf(&j, "%d", st->rotation->target);
	else
		buf_puts(&j, "null");
	buf_printf(&j, ",\"phase\":\"%s\"},\"hosts\":[", spec_phase_name(st->rotation->phase));
	for (i = 0; i < n; i++) {
		buf_puts(&j, i ? ",{\"name\":" : "{\"name\":");
		json_str(&j, h[i].name);
		buf_puts(&j, ",\"address\":");
		json_str(&j, h[i].address);
		buf_printf(&j, ",\"reachable\":%s,\"error\":", h[i].reachable ? "true" : "false");
		json_str(&j, h[i].error);
		buf_puts(&j, ",\"host_key\":");
		json_str(&j, h[i].host_key);
		buf_puts(&j, ",\"fits\":[");
		for (s = 0, k = 0; s < NSTEPS; s++)
			if (h[i].phase_mask & (1u << s))
				buf_printf(&j, "%s\"%s\"", k++ ? "," : "",
					   s == STEP_STABLE_A ? "stable" : s == STEP_STABLE_B ? "stable-target"
					   : phase_step_name((enum phase_step)s));
		buf_puts(&j, "],\"files\":[");
		for (f = 0; f < h[i].nfiles; f++) {
			const struct obs_file *of = &h[i].files[f];

			buf_puts(&j, f ? ",{\"path\":" : "{\"path\":");
			json_str(&j, of->path);
			buf_printf(&j, ",\"content\":\"%s\",\"present\":%s", content_name(of->content),
				   of->present ? "true" : "false");
			if (of->mode >= 0)
				buf_printf(&j, ",\"mode\":\"%04o\",\"uid\":%ld,\"gid\":%ld", (unsigned)of->mode, of->uid, of->gid);
			buf_puts(&j, ",\"problem\":");
			json_str(&j, of->problem);
			buf_puts(&j, ",\"key\":");
			json_str(&j, key_name(of->key));
			buf_puts(&j, ",\"certificates\":[");
			for (k = 0; k < of->ncerts; k++) {
				const struct obs_cert *c = &of->certs[k];

				buf_printf(&j, "%s{\"generation\":", k ? "," : "");
				if (c->generation)
					buf_printf(&j, "%d,\"role\":\"%s\",\"name\":", c->generation,
						   spec_cert_role_name(c->role));
				else
					buf_puts(&j, "null,\"role\":null,\"name\":");
				json_str(&j, c->name);
				buf_puts(&j, ",\"subject\":");
				json_str(&j, c->subject);
				buf_puts(&j, ",\"issuer\":");
				json_str(&j, c->issuer);
				buf_puts(&j, ",\"fingerprint_sha256\":");
				json_str(&j, c->fingerprint);
				buf_puts(&j, ",\"not_after\":");
				json_str(&j, c->not_after);
				buf_printf(&j, ",\"days_left\":%lld}", c->days_left);
			}
			buf_puts(&j, "]}");
		}
		buf_printf(&j, "],\"seconds\":%.3f}", h[i].seconds);
	}
	rc = buf_puts(&j, "]}\n");
	if (rc == 0)
		rc = buf_put(out, j.ptr, j.len);
	buf_release(&j);
	return rc;
}

int observe_opts_from_state(struct observe_opts *oo, const struct state *st, const struct known_set *known,
			    struct observe_paths *paths, struct err *e)
{
	memset(oo, 0, sizeof(*oo));
	oo->hosts = st->hosts;
	oo->known = known;
	oo->generation = st->rotation->generation;
	oo->target = st->rotation->target;
	oo->user = st->config->ssh_user;
	if (!oo->user) {
		struct passwd *pw = getpwuid(getuid());

		oo->user = pw ? pw->pw_name : "root";
	}
	oo->port = st->config->ssh_port;
	if (st->config->ssh_identity) {
		if (state_expand_path(paths->identity, sizeof(paths->identity), st->config->ssh_identity, e) < 0)
			return e->code;
		oo->identity = paths->identity;
	}
	if (state_expand_path(paths->known_hosts, sizeof(paths->known_hosts),
			      st->config->ssh_known_hosts ? st->config->ssh_known_hosts : "~/.ssh/known_hosts", e) < 0)
		return e->code;
	oo->known_hosts = paths->known_hosts;
	oo->become = st->config->ssh_become_sudo;
	oo->connect_timeout_ms = (st->config->ssh_connect_timeout_s > 0 ? st->config->ssh_connect_timeout_s : 10) * 1000;
	oo->deadline_ms = 60000;
	oo->parallel = st->config->parallel > 0 ? st->config->parallel : 32;
	oo->max_file = OBSERVE_MAX_FILE;
	oo->now = time(NULL);
	return 0;
}

int cmd_observe(struct ctx *ctx, int argc, char **argv)
{
	const char *ref = NULL, *json = NULL, *jobs = NULL, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "json", 0, &json }, { "parallel", 1, &jobs },
				    { "j", 1, &jobs }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct state st;
	struct state_src src;
	struct known_set known = { NULL, 0, 0 };
	struct observe_opts oo;
	struct obs_host *hosts = NULL;
	struct observe_paths paths;
	const char *env;
	struct timespec t0, t1;
	size_t npos, nhosts = 0, i;
	int rc = 1, unreachable = 0;

	memset(&st, 0, sizeof(st));
	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0 ||
	    state_src_open(&src, ctx, ref, 0, &e) < 0)
		return cmd_fail(&e);
	if (state_load(&st, &src, env, &d, &e) < 0) {
		rc = d.n ? state_report(&d) : cmd_fail(&e);
		goto out;
	}
	for (i = 0; i < st.ngens; i++)
		if (known_add_manifest(&known, st.gens[i].manifest, &e) < 0)
			goto fail;

	if (observe_opts_from_state(&oo, &st, &known, &paths, &e) < 0)
		goto fail;
	if (jobs) {
		char *end;
		long v = strtol(jobs, &end, 10);

		if (*end || v < 1 || v > 1024) {
			rc = cmd_failf("--parallel must be a number from 1 to 1024");
			goto out;
		}
		oo.parallel = (int)v;
	}
	if (!json && isatty(2))
		oo.progress = progress;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	if (observe_fleet(&hosts, &nhosts, &oo, &e) < 0)
		goto fail;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (i = 0; i < nhosts; i++)
		unreachable += !hosts[i].reachable;
	if (json) {
		struct buf j = BUF_INIT;

		if (observe_json(&j, hosts, nhosts, &st, src.commit) < 0) {
			buf_release(&j);
			err_nomem(&e);
			goto fail;
		}
		fputs(buf_cstr(&j), stdout);
		buf_release(&j);
	} else {
		print_human(hosts, nhosts, &st, src.commit,
			    (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
	}
	for (i = 0; i < nhosts; i++)
		if (!hosts[i].reachable)
			fprintf(stderr, "rotor: %s\n", hosts[i].error ? hosts[i].error : hosts[i].name);
	rc = unreachable ? 1 : 0;
	goto out;
fail:
	rc = cmd_fail(&e);
out:
	obs_hosts_free(hosts, nhosts);
	known_release(&known);
	diags_release(&d);
	state_release(&st);
	return rc;
}
