/*
 * apply.c -- `rotor apply`: walk the plan step by step, host by host.
 *
 * The env is locked (refs/rotor/lock/<env>, compare-and-swap) for the
 * whole run.  For each step: the gate is re-checked on freshly observed
 * state (every host fits the step before), then every host with changes
 * gets them: each file written to a temporary name in its directory,
 * fsynced, given its mode and owner, the old file kept as a backup,
 * renamed into place; then the role's reload; then the probe (a server
 * must present the expected leaf and accept the expected client leaf).
 * A failure on a host restores its backups, reloads again and stops the
 * run after the step's other hosts finish; hosts already done stay (the
 * invariant makes that safe).  A rerun continues from what hosts hold.
 * Every run ends with a commit on rotor/status/<env>: what was observed
 * after the run and what was done.
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <pwd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cmd/cmd.h"
#include "common/json.h"
#include "common/pool.h"
#include "gitops/gitstatus.h"
#include "reconcile/services/layout.h"
#include "reconcile/pki/pki.h"
#include "reconcile/tls/probe.h"
#include "reconcile/remote/ssh.h"

#define PROBE_TRIES 20
#define PROBE_PAUSE_MS 250

struct host_result {
	size_t host;
	int failed;
	size_t written;
	char *what;             /* one line: what happened */
};

struct apply_run {
	struct env_run *r;
	const struct plan_step *st;
	const char *secret;
	size_t *hosts;          /* hosts with changes in this step, in order */
	struct host_result *res;
	pthread_mutex_t mu;
};

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The managed file behind observed file f of host h (owner, group, identity). */
static int managed_of(struct managed_file **all, size_t *nall, const struct managed_file **out,
		      const char **identity, const struct env_run *r, size_t h, size_t f, struct err *e)
{
	const struct obs_host *oh = &r->hosts[h];
	const struct host_spec *hs = &r->st.hosts->hosts[h];
	size_t k;
	int rc;

	for (k = 0; k < oh->nroles; k++) {
		if (f < oh->roles[k].first || f >= oh->roles[k].first + oh->roles[k].nfiles)
			continue;
		if ((rc = layout_expand(all, nall, &hs->roles[k], e)) < 0)
			return rc;
		*out = &(*all)[f - oh->roles[k].first];
		*identity = hs->roles[k].identity;
		return 0;
	}
	return err_set(e, ROTOR_ERROR, "%s: file %zu belongs to no role", hs->name, f);
}

/* A client of the step's target state, for probing servers: its leaf chain and key. */
static int probe_client(struct buf *cert, struct buf *key, const struct apply_run *a, struct err *e)
{
	const struct env_run *r = a->r;
	struct obs_file f;
	const char *id;

	if (r->st.chain->nclients == 0)
		return 0;
	id = r->st.chain->clients[0];
	memset(&f, 0, sizeof(f));
	f.side = LAYOUT_SIDE_CLIENT;
	f.content = SPEC_CONTENT_LEAF_CHAIN;
	if (plan_file_bytes(cert, &r->material, &f, id, a->st->to, a->st->a, a->st->b, NULL, e) < 0)
		return e->code;
	f.content = SPEC_CONTENT_KEY;
	return plan_file_bytes(key, &r->material, &f, id, a->st->to, a->st->a, a->st->b, a->secret, e);
}

static int probe_server(char *why, size_t whylen, const struct apply_run *a, const struct host_spec *hs,
			const struct host_role *role, struct err *e)
{
	const struct env_run *r = a->r;
	struct buf trust = BUF_INIT, ccert = BUF_INIT, ckey = BUF_INIT, leaf = BUF_INIT;
	struct obs_file f;
	struct probe_req q;
	struct probe_result pr;
	struct manifest_cert desc;
	int rc, i, ok = 0;

	memset(&f, 0, sizeof(f));
	memset(&desc, 0, sizeof(desc));
	f.side = LAYOUT_SIDE_SERVER;        /* a client's bundle: roots + server CAs */
	f.content = SPEC_CONTENT_TRUST;
	if ((rc = plan_file_bytes(&trust, &r->material, &f, NULL, a->st->to, a->st->a, a->st->b, NULL, e)) < 0)
		goto out;
	f.content = SPEC_CONTENT_LEAF;
	if ((rc = plan_file_bytes(&leaf, &r->material, &f, role->identity, a->st->to, a->st->a, a->st->b, NULL, e)) < 0 ||
	    (rc = pki_cert_describe(&desc, leaf.ptr, leaf.len, e)) < 0 || (rc = probe_client(&ccert, &ckey, a, e)) < 0)
		goto out;
	memset(&q, 0, sizeof(q));
	q.address = hs->address;
	q.port = role->probe_port;
	q.trust_pem = trust.ptr;
	q.trust_len = trust.len;
	q.server_name = hs->address;
	q.expect_fingerprint = desc.fingerprint;
	if (ccert.len) {
		q.client_cert_pem = ccert.ptr;
		q.client_cert_len = ccert.len;
		q.client_key_pem = ckey.ptr;
		q.client_key_len = ckey.len;
	}
	/* A reload is asynchronous: give the service a few seconds to pick the files up. */
	for (i = 0; i < PROBE_TRIES && !ok; i++) {
		if (i)
			sleep_ms(PROBE_PAUSE_MS);
		memset(&pr, 0, sizeof(pr));
		rc = strcmp(role->probe_type, "postgres") == 0 ? probe_postgres(&pr, &q, e) : probe_tls(&pr, &q, e);
		if (rc < 0)
			goto out;
		ok = pr.tls_ok && pr.server_verified && pr.fingerprint_match == 1 &&
		     (strcmp(role->probe_type, "postgres") != 0 || !ccert.len || pr.client_accepted == 1);
		if (!ok)
			snprintf(why, whylen, "probe %s %s:%d: %s%s%s%s", role->probe_type, hs->address, role->probe_port,
				 pr.error[0] ? pr.error : "",
				 !pr.server_verified && pr.verify_reason[0] ? " server not verified: " : "",
				 !pr.server_verified ? pr.verify_reason : "",
				 pr.fingerprint_match == 0 ? " (still presents another certificate)" : "");
	}
	rc = ok ? 0 : 1;
out:
	spec_manifest_cert_release(&desc);
	buf_release(&trust);
	buf_release(&leaf);
	buf_release(&ccert);
	buf_wipe(&ckey);
	return rc;
}

static int run_reloads(char *why, size_t whylen, struct ssh_conn *c, const struct host_spec *hs,
		       const int *role_touched, struct err *e)
{
	struct buf se = BUF_INIT;
	size_t k;
	int status, rc;

	for (k = 0; k < hs->nroles; k++) {
		if (!role_touched[k] || !hs->roles[k].reload)
			continue;
		buf_release(&se);
		se.max = 4096;
		rc = ssh_exec(c, hs->roles[k].reload, NULL, &se, &status, e);
		if (rc < 0 || status != 0) {
			snprintf(why, whylen, "reload `%s` failed: %s", hs->roles[k].reload,
				 rc < 0 ? e->msg : se.len ? buf_cstr(&se) : "non-zero exit");
			buf_release(&se);
			return 1;
		}
	}
	buf_release(&se);
	return 0;
}

static int apply_host(void *ctx, void **slot, size_t idx, struct err *e)
{
	struct apply_run *a = ctx;
	struct env_run *r = a->r;
	size_t h = a->hosts[idx];
	const struct host_spec *hs = &r->st.hosts->hosts[h];
	struct host_result *res = &a->res[idx];
	struct ssh_conn *c = NULL;
	struct err he = ERR_INIT;
	const char *written[64];
	struct ssh_staged staged[64];
	int touched[32];
	char why[768] = "";
	size_t i, k, nw = 0;
	int bad = 0;

	(void)slot;
	res->host = h;
	memset(touched, 0, sizeof(touched));
	memset(staged, 0, sizeof(staged));
	if (observe_connect(&c, &r->oo, hs, &he) < 0) {
		snprintf(why, sizeof(why), "%s", he.msg);
		bad = 1;
		goto done;
	}
	/* Stage every file of the host first; then one command puts them all in place. */
	for (i = 0; i < a->st->nchanges && !bad; i++) {
		const struct plan_change *ch = &a->st->changes[i];
		const struct obs_file *of = &r->hosts[h].files[ch->file];
		struct managed_file *all = NULL;
		const struct managed_file *mf = NULL;
		const char *identity = NULL;
		struct ssh_write_opts wo;
		struct buf bytes = BUF_INIT, cmd = BUF_INIT;
		size_t nall = 0;

		if (ch->host != h)
			continue;
		if (nw >= sizeof(staged) / sizeof(staged[0])) {
			snprintf(why, sizeof(why), "more than %zu files on one host", nw);
			bad = 1;
			break;
		}
		if (managed_of(&all, &nall, &mf, &identity, r, h, ch->file, &he) < 0 ||
		    plan_file_bytes(&bytes, &r->material, of, identity, a->st->to, a->st->a, a->st->b, a->secret, &he) < 0) {
			snprintf(why, sizeof(why), "%s: %s", of->path, he.msg);
			bad = 1;
		} else {
			/* The directory may not exist yet (first deployment): the login user makes it. */
			char *slash = strrchr(of->path, '/');

			if (!of->present && slash && slash != of->path) {
				struct buf dir = BUF_INIT;

				buf_put(&dir, of->path, (size_t)(slash - of->path));
				buf_puts(&cmd, "mkdir -p -- ");
				ssh_shell_quote(&cmd, buf_cstr(&dir));
				buf_release(&dir);
				if (ssh_exec(c, buf_cstr(&cmd), NULL, NULL, NULL, &he) < 0)
					err_clear(&he);   /* staging below reports a missing directory */
			}
			memset(&wo, 0, sizeof(wo));
			wo.mode = (unsigned)ch->mode;
			wo.owner = mf->owner;
			wo.group = mf->group;
			wo.backup = 1;
			/* Files of the login user need no sudo (and then change together in one rename burst). */
			if (!mf->group && (!mf->owner || strcmp(mf->owner, hs->user ? hs->user : r->oo.user) == 0)) {
				wo.owner = NULL;
				wo.become = -1;
			}
			if (ssh_stage_file(c, of->path, bytes.ptr, bytes.len, &wo, &staged[nw], &he) < 0) {
				snprintf(why, sizeof(why), "%s", he.msg);
				bad = 1;
			} else {
				nw++;
				for (k = 0; k < r->hosts[h].nroles && k < 32; k++)
					if (ch->file >= r->hosts[h].roles[k].first &&
					    ch->file < r->hosts[h].roles[k].first + r->hosts[h].roles[k].nfiles)
						touched[k] = 1;
			}
		}
		buf_wipe(&bytes);
		buf_release(&cmd);
		layout_free(all, nall);
	}
	if (!bad && nw && ssh_commit_staged(c, staged, nw, &he) < 0) {
		snprintf(why, sizeof(why), "%s", he.msg);
		bad = 1;
	}
	for (i = 0; i < nw; i++)
		written[i] = staged[i].path;
	if (!bad)
		bad = run_reloads(why, sizeof(why), c, hs, touched, &he);
	for (k = 0; !bad && k < hs->nroles && k < 32; k++) {
		if (hs->roles[k].role != SPEC_ROLE_SERVER || !hs->roles[k].probe_type)
			continue;
		bad = probe_server(why, sizeof(why), a, hs, &hs->roles[k], &he);
		if (bad < 0) {
			snprintf(why, sizeof(why), "probe: %s", he.msg);
			bad = 1;
		}
	}
	if (bad && nw) {
		/* Put every file back as it was, and make the service read them again. */
		int restored = 1;
		char reload_why[256] = "";

		/*
		 * Only files this run put in place: their backups were made by the
		 * same command.  After a failed commit nothing is restored (a backup
		 * could be older than what the host had); the next run plans from
		 * whatever the host holds.
		 */
		for (i = 0; i < nw; i++)
			if (staged[i].committed && ssh_restore_backup(c, written[i], 0, &he) < 0)
				restored = 0;
		if (run_reloads(reload_why, sizeof(reload_why), c, hs, touched, &he))
			restored = 0;
		strncat(why, restored ? "; backups restored and reloaded" : "; RESTORING THE BACKUPS FAILED: check the host",
			sizeof(why) - strlen(why) - 1);
	}
done:
	ssh_staged_discard(c, staged, nw);
	ssh_disconnect(c);
	res->failed = bad;
	res->written = nw;
	{
		struct buf w = BUF_INIT;

		if (bad)
			buf_printf(&w, "FAILED: %s", why);
		else {
			int reloaded = 0, probed = 0;

			for (k = 0; k < hs->nroles && k < 32; k++) {
				reloaded |= touched[k] && hs->roles[k].reload != NULL;
				probed |= hs->roles[k].role == SPEC_ROLE_SERVER && hs->roles[k].probe_type != NULL;
			}
			buf_printf(&w, "%zu file%s written%s%s", nw, nw == 1 ? "" : "s", reloaded ? ", reloaded" : "",
				   probed ? ", probe passed" : "");
		}
		res->what = buf_detach(&w);
	}
	pthread_mutex_lock(&a->mu);
	printf("  %s %s (%s): %s\n", bad ? "x" : "✓", hs->name, hs->address, res->what);
	fflush(stdout);
	pthread_mutex_unlock(&a->mu);
	return res->what ? 0 : err_nomem(e);
}

/* Run one step: canary hosts one by one, then the rest in parallel. */
static int apply_step(struct env_run *r, const struct plan_step *st, const char *secret, int jobs, int canary,
		      struct buf *log, size_t *nfailed, struct err *e)
{
	struct apply_run a;
	size_t i, n = 0, nc;
	int rc = 0;

	memset(&a, 0, sizeof(a));
	a.r = r;
	a.st = st;
	a.secret = secret;
	a.hosts = calloc(r->nhosts + 1, sizeof(*a.hosts));
	a.res = calloc(r->nhosts + 1, sizeof(*a.res));
	if (!a.hosts || !a.res || pthread_mutex_init(&a.mu, NULL) != 0) {
		free(a.hosts);
		free(a.res);
		return err_nomem(e);
	}
	for (i = 0; i < r->nhosts; i++) {
		size_t k;

		for (k = 0; k < st->nchanges; k++)
			if (st->changes[k].host == i)
				break;
		if (k < st->nchanges)
			a.hosts[n++] = i;
	}
	nc = canary > 0 && (size_t)canary < n ? (size_t)canary : 0;
	*nfailed = 0;
	for (i = 0; i < nc && rc == 0; i++) {
		rc = apply_host(&a, NULL, i, e);
		*nfailed += a.res[i].failed;
	}
	if (rc == 0 && *nfailed == 0 && n > nc) {
		struct apply_run rest = a;

		rest.hosts = a.hosts + nc;
		rest.res = a.res + nc;
		rc = pool_run(n - nc, jobs, apply_host, NULL, &rest, e);
		for (i = nc; i < n; i++)
			*nfailed += a.res[i].failed;
	}
	buf_printf(log, "%s{\"from\":\"%s\",\"to\":\"%s\",\"hosts\":[", log->len > 1 ? "," : "",
		   phase_step_name(st->from), phase_step_name(st->to));
	for (i = 0; i < n; i++) {
		buf_printf(log, "%s{\"host\":", i ? "," : "");
		json_str(log, r->hosts[a.hosts[i]].name);
		buf_printf(log, ",\"done\":%s,\"failed\":%s,\"files_written\":%zu,\"what\":", a.res[i].what ? "true" : "false",
			   a.res[i].failed ? "true" : "false", a.res[i].written);
		json_str(log, a.res[i].what);
		buf_puts(log, "}");
	}
	buf_puts(log, "]}");
	for (i = 0; i < n; i++)
		free(a.res[i].what);
	pthread_mutex_destroy(&a.mu);
	free(a.hosts);
	free(a.res);
	return rc;
}

/*
 * A service must serve what its files hold.  An apply killed (or cut off)
 * between renaming a host's files and its reload leaves a server that
 * still presents the previous leaf while its files look done; the gate
 * must not trust files alone.  For every server role with a probe, probe
 * without a client certificate and compare the leaf presented with the
 * leaf in its file.  Returns the number of stale services, each noted in
 * stale[] as host index * 32 + role index.
 */
static int find_stale(size_t *stale, size_t max, size_t *nstale, struct env_run *r, int print, struct err *e)
{
	struct buf roots = BUF_INIT;
	size_t h, k, f, g;
	int rc = 0;

	*nstale = 0;
	for (g = 0; g < r->material.n; g++) {
		const struct material_cert *c = material_find(&r->material, r->material.v[g].generation, CERT_ROLE_ROOT, NULL);

		if (c && buf_puts(&roots, c->pem) < 0)
			return err_nomem(e);
	}
	for (h = 0; h < r->nhosts && rc == 0; h++) {
		const struct obs_host *oh = &r->hosts[h];
		const struct host_spec *hs = &r->st.hosts->hosts[h];

		for (k = 0; oh->reachable && k < oh->nroles && k < 32 && rc == 0; k++) {
			const struct host_role *role = &hs->roles[k];
			const struct obs_file *leaf = NULL;
			struct probe_req q;
			struct probe_result pr;

			if (role->role != SPEC_ROLE_SERVER || !role->probe_type || !roots.len)
				continue;
			for (f = oh->roles[k].first; f < oh->roles[k].first + oh->roles[k].nfiles; f++)
				if ((oh->files[f].content == SPEC_CONTENT_LEAF || oh->files[f].content == SPEC_CONTENT_LEAF_CHAIN) &&
				    oh->files[f].present && !oh->files[f].problem && oh->files[f].ncerts)
					leaf = &oh->files[f];
			if (!leaf)
				continue;
			memset(&q, 0, sizeof(q));
			q.address = hs->address;
			q.port = role->probe_port;
			q.trust_pem = roots.ptr;
			q.trust_len = roots.len;
			q.expect_fingerprint = leaf->certs[0].fingerprint;
			rc = strcmp(role->probe_type, "postgres") == 0 ? probe_postgres(&pr, &q, e) : probe_tls(&pr, &q, e);
			if (rc < 0)
				break;
			/* Only a service that presents another leaf is stale; one that does not answer fails its own probe. */
			if (pr.fingerprint_match == 1 || !pr.tls_ok || !pr.server_leaf_fingerprint[0])
				continue;
			if (*nstale < max)
				stale[(*nstale)++] = h * 32 + k;
			if (print)
				printf("  ! %s (%s): the service presents %s, its files hold %s: it needs a reload\n", hs->name,
				       hs->address, pr.server_leaf_fingerprint, leaf->certs[0].fingerprint);
		}
	}
	buf_release(&roots);
	return rc;
}

/* Reload the stale services found by find_stale() and check them again. */
static int settle(struct env_run *r, const size_t *stale, size_t nstale, struct err *e)
{
	size_t i, left = 0, again[256];
	int tries;

	for (i = 0; i < nstale; i++) {
		size_t h = stale[i] / 32, k = stale[i] % 32;
		const struct host_spec *hs = &r->st.hosts->hosts[h];
		struct ssh_conn *c = NULL;
		int touched[32];
		char why[512] = "";

		memset(touched, 0, sizeof(touched));
		touched[k] = 1;
		printf("  reloading %s (%s): an earlier apply stopped before its reload\n", hs->name, hs->address);
		if (observe_connect(&c, &r->oo, hs, e) < 0)
			return e->code;
		if (run_reloads(why, sizeof(why), c, hs, touched, e)) {
			ssh_disconnect(c);
			return err_set(e, ROTOR_ERROR, "%s: %s", hs->name, why);
		}
		ssh_disconnect(c);
	}
	/* A reload is asynchronous: look again for a few seconds. */
	for (tries = 0; tries < PROBE_TRIES; tries++) {
		sleep_ms(PROBE_PAUSE_MS);
		if (find_stale(again, sizeof(again) / sizeof(again[0]), &left, r, 0, e) < 0)
			return e->code;
		if (!left)
			return 0;
	}
	return err_set(e, ROTOR_ESTATE, "%s still presents another certificate than its files hold after a reload",
		       r->st.hosts->hosts[again[0] / 32].name);
}

static const char *whoami(char *out, size_t len)
{
	struct passwd *pw = getpwuid(getuid());
	char host[128] = "localhost";

	gethostname(host, sizeof(host) - 1);
	snprintf(out, len, "%s@%s", pw ? pw->pw_name : "unknown", host);
	return out;
}

static int record_status(struct env_run *r, struct gitrepo *repo, const char *env, const struct buf *log,
			 const char *outcome, struct err *e)
{
	struct buf obs = BUF_INIT, msg = BUF_INIT;
	struct gitrepo_file files[2];
	char id[41], who[256];
	int rc;

	if (observe_json(&obs, r->hosts, r->nhosts, &r->st, r->src.commit) < 0 ||
	    buf_printf(&msg, "rotor: apply %s: %s\n\nDesired state: %s\nRotor-Env: %s\nRotor-Desired: %s\nRotor-By: %s\n",
		       env, outcome, r->src.commit, env, r->src.commit, whoami(who, sizeof(who))) < 0) {
		buf_release(&obs);
		buf_release(&msg);
		return err_nomem(e);
	}
	files[0].path = "observed.json";
	files[0].data = obs.ptr;
	files[0].len = obs.len;
	files[1].path = "applied.json";
	files[1].data = log->ptr;
	files[1].len = log->len;
	rc = gitstatus_record(repo, env, files, 2, buf_cstr(&msg), id, e);
	if (rc == 0)
		printf("recorded %.12s on rotor/status/%s\n", id, env);
	buf_release(&obs);
	buf_release(&msg);
	return rc;
}

/* A lock left by a dead rotor on this machine is taken over; anything else is reported. */
static int take_lock(struct gitrepo *repo, const char *env, const char *desired, int force, char lock_id[41],
		     struct err *e)
{
	struct gitstatus_lock_info li;
	struct gitstatus_lock cur;
	char cmdline[128], who[256], desc[600];
	int rc;

	memset(&li, 0, sizeof(li));
	snprintf(cmdline, sizeof(cmdline), "rotor apply --env %s", env);
	li.command = cmdline;
	li.desired = desired;
	rc = gitstatus_lock(repo, env, &li, lock_id, e);
	if (rc != ROTOR_ESTATE)
		return rc;
	if (gitstatus_lock_read(repo, env, &cur, e) < 0)
		return e->code;
	whoami(who, sizeof(who));
	if (!force && !(cur.parsed && strcmp(cur.holder, who) == 0 && cur.pid > 0 &&
			kill((pid_t)cur.pid, 0) < 0 && errno == ESRCH))
		return err_set(e, ROTOR_ESTATE, "env %s is locked by %s; wait, or use --force-unlock if that run is dead",
			       env, gitstatus_lock_describe(desc, sizeof(desc), &cur));
	if ((rc = gitstatus_force_unlock(repo, env, &cur, e)) < 0)
		return rc;
	fprintf(stderr, "rotor: removed the lock of %s\n", gitstatus_lock_describe(desc, sizeof(desc), &cur));
	return gitstatus_lock(repo, env, &li, lock_id, e);
}

static int confirm(void)
{
	char line[32];

	printf("\nApply these steps? Only 'yes' is accepted: ");
	fflush(stdout);
	if (!fgets(line, sizeof(line), stdin))
		return 0;
	return strcmp(line, "yes\n") == 0;
}

int cmd_apply(struct ctx *ctx, int argc, char **argv)
{
	const char *ref = NULL, *yes = NULL, *jobs = NULL, *canary = NULL, *force = NULL, *replace = NULL, *pos[1];
	const struct opt opts[] = { { "ref", 1, &ref }, { "yes", 0, &yes }, { "parallel", 1, &jobs }, { "j", 1, &jobs },
				    { "canary", 1, &canary }, { "force-unlock", 0, &force },
				    { "replace-unknown", 0, &replace }, { NULL, 0, NULL } };
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct env_run r;
	struct buf secret = BUF_INIT, log = BUF_INIT, cfg = BUF_INIT;
	struct gitrepo *repo;
	char key_path[4096], lock_id[41] = "", outcome[256] = "";
	const char *env;
	size_t npos, failed = 0, steps_done = 0, changes_done = 0, stale[256], nstale = 0;
	int rc = 1, locked = 0, njobs = 0, ncanary = 0, guard;


	memset(&r, 0, sizeof(r));
	if (opt_parse(argc, argv, opts, pos, 0, &npos, &e) < 0 || ctx_env(ctx, &env, &e) < 0 || ctx_repo(ctx, &repo, &e) < 0)
		return cmd_fail(&e);
	if (jobs && ((njobs = atoi(jobs)) < 1 || njobs > 1024))
		return cmd_failf("--parallel must be a number from 1 to 1024");
	if (canary && ((ncanary = atoi(canary)) < 1 || ncanary > 100000))
		return cmd_failf("--canary must be a positive number of hosts");
	if (!ref) {
		/* Desired state comes from the main branch named in rotor.yaml, never the work tree. */
		struct rotor_config *c = NULL;
		struct diags cd = { NULL, 0, 0 };
		char head[41];

		if (gitrepo_resolve(repo, "HEAD", head, &e) == 0 && gitrepo_read(&cfg, repo, head, "rotor.yaml", SPEC_MAX_BYTES, &e) == 0 &&
		    spec_load_config(&c, "rotor.yaml", cfg.ptr, cfg.len, &cd) == 0 && c->git_main)
			snprintf(outcome, sizeof(outcome), "%s", c->git_main);
		spec_config_free(c);
		diags_release(&cd);
		err_clear(&e);
		ref = outcome[0] ? outcome : "main";
	}
	if (env_run_load(&r, ctx, env, ref, 1, &d, &e) < 0) {
		rc = d.n ? state_report(&d) : cmd_fail(&e);
		goto out;
	}
	outcome[0] = '\0';
	if (njobs)
		r.oo.parallel = njobs;
	if (state_key_path(key_path, sizeof(key_path), r.st.config, &e) < 0 || pki_secret_load(&secret, key_path, &e) < 0 ||
	    state_check_secret(&r.st, &r.src, buf_cstr(&secret), key_path, &e) < 0)
		goto fail;
	if (take_lock(repo, env, r.src.commit, force != NULL, lock_id, &e) < 0)
		goto fail;
	locked = 1;
	buf_puts(&log, "{\"desired\":\"");
	buf_puts(&log, r.src.commit);
	buf_puts(&log, "\",\"steps\":[");

	if (env_run_plan(&r, 0, replace != NULL, &e) < 0)
		goto fail;
	plan_print(&r, stdout);
	if (!r.plan.live_known || r.plan.refused) {
		snprintf(outcome, sizeof(outcome), "%s", r.plan.refused ? "refused: unsafe desired state" : "stopped: live state unknown");
		rc = cmd_failf("nothing applied: %s", outcome);
		goto record;
	}
	if (find_stale(stale, sizeof(stale) / sizeof(stale[0]), &nstale, &r, 1, &e) < 0)
		goto fail;
	if (r.plan.nchanges == 0 && nstale == 0) {
		snprintf(outcome, sizeof(outcome), "in sync at %s, nothing to do", phase_step_name(r.plan.desired));
		rc = 0;
		goto record;
	}
	if (!yes && !confirm()) {
		snprintf(outcome, sizeof(outcome), "not confirmed, nothing applied");
		rc = cmd_failf("%s", outcome);
		goto record;
	}
	if (nstale && settle(&r, stale, nstale, &e) < 0)
		goto fail;
	for (guard = 0;; guard++) {
		const struct plan_step *st = NULL;
		size_t k;

		/* Steps with nothing to change are already done: the gate moved past them. */
		for (k = 0; k < r.plan.nsteps && !st; k++)
			if (r.plan.steps[k].nchanges)
				st = &r.plan.steps[k];
		if (!st)
			break;
		if (guard >= 2 * NSTEPS) {
			snprintf(outcome, sizeof(outcome), "stopped after %zu steps: the hosts do not converge", steps_done);
			rc = cmd_failf("%s (is something else changing these files?)", outcome);
			goto record;
		}
		if (st->ngates) {
			snprintf(outcome, sizeof(outcome), "stopped before %s: external peers not ready",
				 phase_step_name(st->to));
			rc = cmd_failf("%s (see the gate above)", outcome);
			goto record;
		}
		printf("\napplying step %s -> %s: %zu file%s\n", phase_step_name(st->from), phase_step_name(st->to),
		       st->nchanges, st->nchanges == 1 ? "" : "s");
		if (apply_step(&r, st, buf_cstr(&secret), r.oo.parallel, ncanary, &log, &failed, &e) < 0)
			goto fail;
		steps_done++;
		changes_done += st->nchanges;
		if (failed) {
			snprintf(outcome, sizeof(outcome), "step %s -> %s failed on %zu host%s", phase_step_name(st->from),
				 phase_step_name(st->to), failed, failed == 1 ? "" : "s");
			rc = cmd_failf("%s; fix it and run apply again to continue", outcome);
			if (env_run_plan(&r, 0, replace != NULL, &e) < 0)
				err_clear(&e);
			goto record;
		}
		/* The gate for the next step is what the hosts hold now. */
		if (env_run_plan(&r, 0, replace != NULL, &e) < 0)
			goto fail;
		if (!r.plan.live_known || r.plan.refused) {
			snprintf(outcome, sizeof(outcome), "stopped after %zu step%s: live state does not match the plan",
				 steps_done, steps_done == 1 ? "" : "s");
			plan_print(&r, stdout);
			rc = cmd_failf("%s", outcome);
			goto record;
		}
		if (find_stale(stale, sizeof(stale) / sizeof(stale[0]), &nstale, &r, 1, &e) < 0 ||
		    (nstale && settle(&r, stale, nstale, &e) < 0))
			goto fail;
	}
	snprintf(outcome, sizeof(outcome), "%zu step%s, %zu file change%s; every host at %s", steps_done,
		 steps_done == 1 ? "" : "s", changes_done, changes_done == 1 ? "" : "s", phase_step_name(r.plan.desired));
	printf("\ndone: %s\n", outcome);
	rc = 0;
record:
	buf_printf(&log, "],\"outcome\":");
	json_str(&log, outcome);
	buf_puts(&log, "}\n");
	if (record_status(&r, repo, env, &log, outcome, &e) < 0) {
		fprintf(stderr, "rotor: recording the status failed: %s\n", e.msg);
		rc = 1;
	}
	goto out;
fail:
	rc = cmd_fail(&e);
	if (locked && r.hosts) {
		err_clear(&e);
		snprintf(outcome, sizeof(outcome), "error");
		goto record;
	}
out:
	if (locked && gitstatus_unlock(repo, env, lock_id, &e) < 0)
		fprintf(stderr, "rotor: %s\n", e.msg);
	buf_wipe(&secret);
	buf_release(&log);
	buf_release(&cfg);
	diags_release(&d);
	env_run_release(&r);
	return rc;
}
