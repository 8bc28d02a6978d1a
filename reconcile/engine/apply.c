/*
 * apply.c -- walk the plan step by step, host by host, verified (see
 * apply.h for the sequence, the lock and the status record).
 */
#define _DEFAULT_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "reconcile/engine/apply.h"

#include "common/clock.h"
#include "common/json.h"
#include "common/pool.h"
#include "gitops/gitstatus.h"
#include "reconcile/engine/report.h"
#include "reconcile/pki/pki.h"
#include "reconcile/remote/ssh.h"
#include "reconcile/engine/files.h"
#include "reconcile/tls/probe.h"

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
	const struct apply_ui *ui;
	size_t *hosts;          /* hosts with changes in this step, in order */
	struct host_result *res;
	pthread_mutex_t mu;
};

/* Format one line for a ui callback (which may be NULL: then nothing). */
static void vsay(void (*fn)(void *, const char *), void *payload, const char *fmt, va_list ap) ROTOR_PRINTF(3, 0);
static void vsay(void (*fn)(void *, const char *), void *payload, const char *fmt, va_list ap)
{
	char line[1024];

	if (!fn)
		return;
	vsnprintf(line, sizeof(line), fmt, ap);
	fn(payload, line);
}

static void note(const struct apply_ui *ui, const char *fmt, ...) ROTOR_PRINTF(2, 3);
static void note(const struct apply_ui *ui, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(ui->note, ui->payload, fmt, ap);
	va_end(ap);
}

static void alert(const struct apply_ui *ui, const char *fmt, ...) ROTOR_PRINTF(2, 3);
static void alert(const struct apply_ui *ui, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsay(ui->alert, ui->payload, fmt, ap);
	va_end(ap);
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

/*
 * Files of the login user need no sudo (and then change together in one
 * rename burst): -1 (never sudo); else 0 (the connection's become).
 */
static int file_become(const struct managed_file *mf, const struct host_spec *hs, const struct env_run *r)
{
	return !mf->group && (!mf->owner || strcmp(mf->owner, hs->user ? hs->user : r->oo.user) == 0) ? -1 : 0;
}

/* A client of the step's target state, for probing servers: its leaf chain and key. */
static int probe_client(struct buf *cert, struct buf *key, const struct apply_run *a, struct err *e)
{
	const struct env_run *r = a->r;
	struct step_gens g = phase_step_gens(a->st->to, a->st->a, a->st->b);
	const struct material_cert *c;
	enum phase_step s = a->st->to;
	struct obs_file f;
	const char *id;

	if (r->st.chain->nclients == 0)
		return 0;
	id = r->st.chain->clients[0];
	/*
	 * Walking back from a generation known only from history, its client
	 * leaves have no key here; while the servers trust both generations
	 * (trust, servers, clients) the other generation's client is as good
	 * a probe: the step of this line whose client leaf that one is.
	 */
	c = material_find(&r->material, g.client_leaf, CERT_ROLE_CLIENT, id);
	if ((!c || !c->key_pem) && g.bundle[1])
		s = g.client_leaf == a->st->a ? STEP_CLIENTS : STEP_TRUST;
	memset(&f, 0, sizeof(f));
	f.side = LAYOUT_SIDE_CLIENT;
	f.content = SPEC_CONTENT_LEAF_CHAIN;
	if (plan_file_bytes(cert, &r->material, &f, id, s, a->st->a, a->st->b, NULL, e) < 0)
		return e->code;
	f.content = SPEC_CONTENT_KEY;
	return plan_file_bytes(key, &r->material, &f, id, s, a->st->a, a->st->b, a->secret, e);
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
			clock_sleep_ms(PROBE_PAUSE_MS);
		memset(&pr, 0, sizeof(pr));
		rc = role->probe->run(&pr, &q, e);
		if (rc < 0)
			goto out;
		ok = pr.tls_ok && pr.server_verified && pr.fingerprint_match == 1 &&
		     (!role->probe->checks_client || !ccert.len || pr.client_accepted == 1);
		if (!ok)
			snprintf(why, whylen, "probe %s %s:%d: %s%s%s%s", role->probe->name, hs->address, role->probe_port,
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

/* Has a touched role before k on this host the same reload (run already in this pass)? */
static int reload_ran(const struct host_spec *hs, const unsigned char *role_touched, size_t k, const char *reload)
{
	size_t j;

	for (j = 0; j < k; j++) {
		const char *r = role_reload(&hs->roles[j]);

		if (role_touched[j] && r && strcmp(r, reload) == 0)
			return 1;
	}
	return 0;
}

/*
 * Each touched role's reload, each command once per host: the two halves
 * of a pgbouncer role share one reload, and every reload of pgbouncer
 * drops the server logins in progress (README, pgbouncer).
 */
static int run_reloads(char *why, size_t whylen, struct ssh_conn *c, const struct host_spec *hs,
		       const unsigned char *role_touched, struct err *e)
{
	struct buf se = BUF_INIT;
	size_t k;
	int status, rc;

	for (k = 0; k < hs->nroles; k++) {
		const char *reload = role_reload(&hs->roles[k]);

		if (!role_touched[k] || !reload || reload_ran(hs, role_touched, k, reload))
			continue;
		buf_release(&se);
		se.max = 4096;
		rc = ssh_exec(c, reload, NULL, &se, &status, e);
		if (rc < 0 || status != 0) {
			/* Remote stderr may hold several lines: the message is one. */
			snprintf(why, whylen, "reload `%s` failed: %s", reload,
				 rc < 0 ? e->msg : se.len && !se.err ? buf_cstr(&se) : "non-zero exit");
			err_one_line(why);
			buf_release(&se);
			return 1;
		}
	}
	buf_release(&se);
	return 0;
}

/* One host's turn in a step: its connection, what it staged, which roles changed, why it failed. */
struct host_turn {
	const struct apply_run *a;
	size_t h;
	const struct host_spec *hs;
	struct ssh_conn *c;          /* the host's session (observe_session()) */
	int reused;                  /* c was kept open from an earlier use */
	struct ssh_staged *staged;   /* at most one per change of the step */
	size_t nw;
	unsigned char *touched;      /* one flag per role */
	char why[768];
};

/* The directory may not exist yet (first deployment): the login user makes it. */
static void make_parent(struct host_turn *t, const char *path)
{
	const char *slash = strrchr(path, '/');
	struct buf dir = BUF_INIT, cmd = BUF_INIT;
	struct err he = ERR_INIT;

	if (!slash || slash == path)
		return;
	buf_put(&dir, path, (size_t)(slash - path));
	buf_puts(&cmd, "mkdir -p -- ");
	ssh_shell_quote(&cmd, buf_cstr(&dir));
	/* A command that could not be built is not run; staging reports a missing directory. */
	if (!dir.err && !cmd.err)
		ssh_exec(t->c, buf_cstr(&cmd), NULL, NULL, NULL, &he);
	buf_release(&dir);
	buf_release(&cmd);
}

/* Stage one changed file under a temporary name; 1 (t->why set) when it fails. */
static int stage_change(struct host_turn *t, const struct plan_change *ch)
{
	const struct apply_run *a = t->a;
	const struct env_run *r = a->r;
	const struct obs_host *oh = &r->hosts[t->h];
	const struct obs_file *of = &oh->files[ch->file];
	struct managed_file *all = NULL;
	const struct managed_file *mf = NULL;
	const char *identity = NULL;
	struct ssh_write_opts wo;
	struct buf bytes = BUF_INIT;
	struct err he = ERR_INIT;
	size_t nall = 0, k;
	int bad = 0;

	if (managed_of(&all, &nall, &mf, &identity, r, t->h, ch->file, &he) < 0 ||
	    plan_file_bytes(&bytes, &r->material, of, identity, a->st->to, a->st->a, a->st->b, a->secret, &he) < 0) {
		snprintf(t->why, sizeof(t->why), "%s: %s", of->path, he.msg);
		bad = 1;
		goto out;
	}
	if (!of->present)
		make_parent(t, of->path);
	memset(&wo, 0, sizeof(wo));
	wo.mode = (unsigned)ch->mode;
	wo.owner = mf->owner;
	wo.group = mf->group;
	wo.backup = 1;
	if ((wo.become = file_become(mf, t->hs, r)) < 0)
		wo.owner = NULL;
	if (ssh_stage_file(t->c, of->path, bytes.ptr, bytes.len, &wo, &t->staged[t->nw], &he) < 0) {
		snprintf(t->why, sizeof(t->why), "%s", he.msg);
		bad = 1;
		goto out;
	}
	t->nw++;
	for (k = 0; k < oh->nroles && k < t->hs->nroles; k++)
		if (ch->file >= oh->roles[k].first && ch->file < oh->roles[k].first + oh->roles[k].nfiles)
			t->touched[k] = 1;
out:
	buf_wipe(&bytes);
	layout_free(all, nall);
	return bad;
}

/* The role (index) whose files include observed file f of the turn's host; nroles when none. */
static size_t role_of(const struct host_turn *t, size_t f)
{
	const struct obs_host *oh = &t->a->r->hosts[t->h];
	size_t k;

	for (k = 0; k < oh->nroles && k < t->hs->nroles; k++)
		if (f >= oh->roles[k].first && f < oh->roles[k].first + oh->roles[k].nfiles)
			return k;
	return t->hs->nroles;
}

/* Run cmd on the turn's host; 1 (t->why set, prefixed with what) when it fails. */
static int turn_exec(struct host_turn *t, const struct buf *cmd, const char *what)
{
	struct err he = ERR_INIT;
	struct buf se = BUF_INIT;
	int status = 0;

	se.max = 4096;
	if (cmd->err || ssh_exec(t->c, buf_cstr(cmd), NULL, &se, &status, &he) < 0 || status != 0) {
		snprintf(t->why, sizeof(t->why), "%s: %s", what,
			 cmd->err ? "out of memory" : he.code ? he.msg : se.len && !se.err ? buf_cstr(&se) : "non-zero exit");
		err_one_line(t->why);
		buf_release(&se);
		return 1;
	}
	buf_release(&se);
	return 0;
}

/*
 * Switch mode, role k: the step's three files into a new directory named
 * by their content (never modified once in place; an existing one must
 * hold the same bytes), then the service file that names it is staged
 * (its rename is the switch, in the host's one commit).  1 (t->why set)
 * when it fails; a directory left half-written is the hidden
 * DIR/.NAME.rotor-new, removed by the next try.
 */
static int stage_switch(struct host_turn *t, size_t k)
{
	static const char *const names[SPEC_NCONTENT] = { "postgresql.crt", "postgresql.crt", "postgresql.key", "root.crt" };
	const struct apply_run *a = t->a;
	const struct env_run *r = a->r;
	const struct host_role *role = &t->hs->roles[k];
	const struct obs_role *orole = &r->hosts[t->h].roles[k];
	const char *login = t->hs->user ? t->hs->user : r->oo.user;
	const struct obs_file *leaf_file = obs_role_leaf(&r->hosts[t->h], orole);
	const char *key_from_host = NULL;
	struct buf bytes[SPEC_NCONTENT], cmd = BUF_INIT, dir = BUF_INIT, tmp = BUF_INIT, old = BUF_INIT, sf = BUF_INIT;
	struct ssh_write_opts wo;
	struct err he = ERR_INIT;
	char name[SWITCH_DIR_NAME_LEN + 1];
	size_t i;
	int bad = 1, rc;

	for (i = 0; i < SPEC_NCONTENT; i++)
		memset(&bytes[i], 0, sizeof(bytes[i]));
	if (role->user && strcmp(role->user, login) != 0) {
		snprintf(t->why, sizeof(t->why), "switch mode writes as the login user %s, but the role's user is %s",
			 login, role->user);
		goto out;
	}
	for (i = 0; i < orole->nfiles; i++) {
		const struct obs_file *of = &r->hosts[t->h].files[orole->first + i];

		if (plan_key_on_host(&r->material, of, leaf_file, role->identity, a->st->to, a->st->a, a->st->b)) {
			/* The leaf stays and the repository has no key of it: the host's own, checked again below. */
			if (ssh_read_file(&bytes[of->content], t->c, of->path, OBSERVE_MAX_FILE, NULL, &he) < 0) {
				snprintf(t->why, sizeof(t->why), "%s: %s", role->service_file, he.msg);
				goto out;
			}
			key_from_host = of->path;
			continue;
		}
		if (plan_file_bytes(&bytes[of->content], &r->material, of, role->identity, a->st->to, a->st->a, a->st->b,
				    a->secret, &he) < 0) {
			snprintf(t->why, sizeof(t->why), "%s: %s", role->service_file, he.msg);
			goto out;
		}
	}
	if (key_from_host && observe_key_match(bytes[SPEC_CONTENT_KEY].ptr, bytes[SPEC_CONTENT_KEY].len,
					       bytes[SPEC_CONTENT_LEAF_CHAIN].ptr,
					       bytes[SPEC_CONTENT_LEAF_CHAIN].len) != OBS_KEY_MATCH) {
		snprintf(t->why, sizeof(t->why), "%s: %s changed since it was observed: it no longer holds the key of the "
			 "step's leaf (the repository has none to write)", role->service_file, key_from_host);
		goto out;
	}
	if (!bytes[SPEC_CONTENT_LEAF_CHAIN].len || !bytes[SPEC_CONTENT_KEY].len || !bytes[SPEC_CONTENT_TRUST].len ||
	    switch_dir_name(name, bytes[SPEC_CONTENT_LEAF_CHAIN].ptr, bytes[SPEC_CONTENT_LEAF_CHAIN].len,
			    bytes[SPEC_CONTENT_TRUST].ptr, bytes[SPEC_CONTENT_TRUST].len, &he) < 0) {
		snprintf(t->why, sizeof(t->why), "%s: %s", role->service_file, he.code ? he.msg : "the step has no files for this role");
		goto out;
	}
	buf_printf(&dir, "%s/%s", role->switch_dir, name);
	buf_printf(&tmp, "%s/.%s" SWITCH_NEW_SUFFIX, role->switch_dir, name);
	/* A fresh hidden directory for the new files. */
	buf_puts(&cmd, "umask 077 && mkdir -p -- ");
	ssh_shell_quote(&cmd, role->switch_dir);
	buf_puts(&cmd, " && rm -rf -- ");
	ssh_shell_quote(&cmd, buf_cstr(&tmp));
	buf_puts(&cmd, " && mkdir -m 0700 -- ");
	ssh_shell_quote(&cmd, buf_cstr(&tmp));
	if (dir.err || tmp.err || turn_exec(t, &cmd, "switch: making the directory"))
		goto out;
	for (i = SPEC_CONTENT_LEAF_CHAIN; i < SPEC_NCONTENT; i++) {
		struct buf fp = BUF_INIT;

		memset(&wo, 0, sizeof(wo));
		wo.mode = i == SPEC_CONTENT_KEY ? 0600 : 0644;
		wo.become = -1;
		rc = buf_printf(&fp, "%s/%s", buf_cstr(&tmp), names[i]) < 0
			     ? err_nomem(&he)
			     : ssh_write_file_atomic(t->c, buf_cstr(&fp), bytes[i].ptr, bytes[i].len, &wo, &he);
		buf_release(&fp);
		if (rc < 0) {
			snprintf(t->why, sizeof(t->why), "switch: %s", he.msg);
			goto out;
		}
	}
	/* Into place; a directory of that name already holds these bytes (it is never modified). */
	buf_release(&cmd);
	buf_puts(&cmd, "set -e; n=");
	ssh_shell_quote(&cmd, buf_cstr(&tmp));
	buf_puts(&cmd, "; d=");
	ssh_shell_quote(&cmd, buf_cstr(&dir));
	buf_puts(&cmd, "; if [ -d \"$d\" ]; then for f in postgresql.crt postgresql.key root.crt; do "
		       "cmp -s \"$n/$f\" \"$d/$f\" || { echo \"$d exists and holds other files\" >&2; exit 1; }; done; "
		       "rm -rf -- \"$n\"; else mv -T -- \"$n\" \"$d\"; fi");
	if (turn_exec(t, &cmd, "switch"))
		goto out;
	/* The service file: other sections of the current one stay. */
	rc = ssh_read_file(&old, t->c, role->service_file, OBSERVE_MAX_FILE, NULL, &he);
	if (rc < 0 && rc != ROTOR_ENOTFOUND) {
		snprintf(t->why, sizeof(t->why), "%s", he.msg);
		goto out;
	}
	if (switch_render(&sf, old.len ? old.ptr : NULL, old.len, role->service, buf_cstr(&dir), &he) < 0) {
		snprintf(t->why, sizeof(t->why), "%s", he.msg);
		goto out;
	}
	memset(&wo, 0, sizeof(wo));
	wo.mode = 0644;
	wo.backup = 1;
	wo.become = -1;
	if (ssh_stage_file(t->c, role->service_file, sf.ptr, sf.len, &wo, &t->staged[t->nw], &he) < 0) {
		snprintf(t->why, sizeof(t->why), "%s", he.msg);
		goto out;
	}
	t->nw++;
	t->touched[k] = 1;
	bad = 0;
out:
	for (i = 0; i < SPEC_NCONTENT; i++)
		buf_wipe(&bytes[i]);
	buf_release(&cmd);
	buf_release(&dir);
	buf_release(&tmp);
	buf_release(&old);
	buf_release(&sf);
	return bad;
}

/*
 * Remove role k's directories that no step live or next can need: every
 * one but keep1 and keep2 (NULL: none), each a path under switch_dir.
 * Returns 0, or -1 with *why set (a warning: the switch happened).
 */
static int prune_switch(struct ssh_conn *c, const struct host_role *role, const char *keep1, const char *keep2,
			char *why, size_t whylen)
{
	struct buf cmd = BUF_INIT, out = BUF_INIT;
	struct err he = ERR_INIT;
	const char *p, *nl;
	size_t n = 0, dl = strlen(role->switch_dir);
	int rc = 0;

	buf_puts(&cmd, "ls -1A -- ");
	ssh_shell_quote(&cmd, role->switch_dir);
	buf_puts(&cmd, " 2>/dev/null || true");
	out.max = 1 << 20;
	if (cmd.err || ssh_exec(c, buf_cstr(&cmd), &out, NULL, NULL, &he) < 0) {
		snprintf(why, whylen, "%s", cmd.err ? "out of memory" : he.msg);
		rc = -1;
		goto done;
	}
	buf_release(&cmd);
	buf_puts(&cmd, "cd -- ");
	ssh_shell_quote(&cmd, role->switch_dir);
	buf_puts(&cmd, " && rm -rf --");
	for (p = buf_cstr(&out); *p; p = nl ? nl + 1 : p + strlen(p)) {
		char entry[SWITCH_DIR_NAME_LEN + sizeof(SWITCH_NEW_SUFFIX) + 1];
		size_t len;

		nl = strchr(p, '\n');
		len = nl ? (size_t)(nl - p) : strlen(p);
		/* A hidden .NAME.rotor-new is what a failed try left: nothing names it, it goes too. */
		if (len == 1 + SWITCH_DIR_NAME_LEN + strlen(SWITCH_NEW_SUFFIX) && p[0] == '.' &&
		    !strncmp(p + 1 + SWITCH_DIR_NAME_LEN, SWITCH_NEW_SUFFIX, strlen(SWITCH_NEW_SUFFIX))) {
			memcpy(entry, p + 1, SWITCH_DIR_NAME_LEN);
			entry[SWITCH_DIR_NAME_LEN] = '\0';
			if (!switch_dir_name_ok(entry))
				continue;
			memcpy(entry, p, len);
			entry[len] = '\0';
			buf_puts(&cmd, " ");
			ssh_shell_quote(&cmd, entry);
			n++;
			continue;
		}
		if (len != SWITCH_DIR_NAME_LEN)
			continue;
		memcpy(entry, p, len);
		entry[len] = '\0';
		if (!switch_dir_name_ok(entry))
			continue;
		if ((keep1 && strncmp(keep1, role->switch_dir, dl) == 0 && strcmp(keep1 + dl + 1, entry) == 0) ||
		    (keep2 && strncmp(keep2, role->switch_dir, dl) == 0 && strcmp(keep2 + dl + 1, entry) == 0))
			continue;
		buf_puts(&cmd, " ");
		ssh_shell_quote(&cmd, entry);
		n++;
	}
	if (n && (cmd.err || ssh_exec(c, buf_cstr(&cmd), NULL, NULL, NULL, &he) < 0)) {
		snprintf(why, whylen, "%s", cmd.err ? "out of memory" : he.msg);
		rc = -1;
	}
done:
	buf_release(&cmd);
	buf_release(&out);
	return rc;
}

/* The directory a path names (its parent), as a new string; NULL when none. */
static char *parent_of(const char *path)
{
	const char *slash = path ? strrchr(path, '/') : NULL;
	char *d;

	if (!slash || slash == path || !(d = malloc((size_t)(slash - path) + 1)))
		return NULL;
	memcpy(d, path, (size_t)(slash - path));
	d[slash - path] = '\0';
	return d;
}

/* The directory of role k's certificate file as observed on host h (before this step), or NULL. */
static char *observed_dir(const struct env_run *r, size_t h, size_t k)
{
	const struct obs_role *orole = &r->hosts[h].roles[k];
	size_t i;

	for (i = 0; i < orole->nfiles; i++) {
		const struct obs_file *of = &r->hosts[h].files[orole->first + i];

		if (of->content == SPEC_CONTENT_LEAF_CHAIN && of->present && !of->problem)
			return parent_of(of->path);
	}
	return NULL;
}

/* The directory role's service file names now (read back from the host), or NULL. */
static char *service_dir(struct ssh_conn *c, const struct host_role *role)
{
	struct buf data = BUF_INIT;
	struct switch_point sp;
	struct err he = ERR_INIT;
	char *d = NULL;

	memset(&sp, 0, sizeof(sp));
	if (ssh_read_file(&data, c, role->service_file, OBSERVE_MAX_FILE, NULL, &he) == 0 &&
	    switch_parse(&sp, data.ptr, data.len, role->service, &he) == 0 && sp.by_rotor)
		d = parent_of(sp.cert);
	switch_point_release(&sp);
	buf_release(&data);
	return d;
}

/*
 * Put every file this run put in place back as it was, and make the
 * services read them again.  Only committed files: their backups were
 * made by the same commit.  After a commit that failed part way, the
 * files it did put in place (each marked committed) are restored the
 * same way; the others were never touched.
 */
static void restore_host(struct host_turn *t)
{
	struct err he = ERR_INIT;
	char reload_why[256] = "", first[ERR_MSG_MAX] = "";
	size_t i, used = strlen(t->why), committed = 0;
	int restored = 1, reload_failed;

	for (i = 0; i < t->nw; i++)
		committed += t->staged[i].committed != 0;
	if (!committed)
		return;   /* nothing was put in place: nothing to restore, no reload */
	for (i = 0; i < t->nw; i++)
		if (t->staged[i].committed && ssh_restore_backup(t->c, t->staged[i].path, 0, &he) < 0) {
			if (restored)
				snprintf(first, sizeof(first), "%s", he.msg);
			restored = 0;
			err_clear(&he);
		}
	/* The services read what is there now, restored or not. */
	reload_failed = run_reloads(reload_why, sizeof(reload_why), t->c, t->hs, t->touched, &he);
	if (!restored)
		snprintf(t->why + used, sizeof(t->why) - used, "; RESTORING THE BACKUPS FAILED: %s: check the host", first);
	else if (reload_failed)
		snprintf(t->why + used, sizeof(t->why) - used, "; backups restored; the reload after the restore failed: %s",
			 reload_why);
	else
		snprintf(t->why + used, sizeof(t->why) - used, "; backups restored and reloaded");
}

/*
 * Remove what was staged and not put in place, the file of a failed
 * stage too; when the connection broke, over a new one (a failed write
 * leaves no temporary file).
 */
static void discard_staged(struct host_turn *t)
{
	size_t i, n = t->nw + (t->staged[t->nw].tmp != NULL);
	struct err he = ERR_INIT;
	size_t left = ssh_staged_discard(t->c, t->staged, n), used;

	if (left) {
		observe_session_put(&t->a->r->oo, t->h, t->c);   /* broken: closed */
		t->c = NULL;
		if (observe_session(&t->c, &t->reused, &t->a->r->oo, t->h, &he) == 0)
			left = ssh_staged_discard(t->c, t->staged, n);
	}
	/* The host went away: say which temporary files stay (the next apply removes them). */
	for (i = 0; i < n && left; i++) {
		if (!t->staged[i].tmp || t->staged[i].committed)
			continue;
		used = strlen(t->why);
		snprintf(t->why + used, sizeof(t->why) - used, "; may have left %s (the next apply removes it)",
			 t->staged[i].tmp);
	}
	for (i = 0; i < n; i++)
		ssh_staged_release(&t->staged[i]);
}

/* One line: what happened on the host; NULL when out of memory. */
static char *turn_summary(const struct host_turn *t, int bad)
{
	struct buf w = BUF_INIT;
	int reloaded = 0, probed = 0;
	size_t k;

	if (bad) {
		buf_printf(&w, "FAILED: %s", t->why);
	} else {
		for (k = 0; k < t->hs->nroles; k++) {
			reloaded |= t->touched[k] && role_reload(&t->hs->roles[k]) != NULL;
			probed |= t->hs->roles[k].role == SPEC_ROLE_SERVER && t->hs->roles[k].probe != NULL;
		}
		buf_printf(&w, "%zu file%s written%s%s", t->nw, t->nw == 1 ? "" : "s", reloaded ? ", reloaded" : "",
			   probed ? ", probe passed" : "");
	}
	if (w.err) {
		buf_release(&w);
		return NULL;
	}
	return buf_detach(&w);
}

/* Stage every file of the turn's host; 1 (t->why set) when one fails. */
static int stage_all(struct host_turn *t, unsigned char *sw)
{
	const struct plan_step *st = t->a->st;
	size_t i, k;
	int bad = 0;

	for (i = 0; i < st->nchanges && !bad; i++) {
		if (st->changes[i].host != t->h)
			continue;
		k = role_of(t, st->changes[i].file);
		if (k < t->hs->nroles && t->hs->roles[k].service)
			sw[k] = 1;          /* switch mode: the role's files as one, below */
		else
			bad = stage_change(t, &st->changes[i]);
	}
	for (k = 0; k < t->hs->nroles && !bad; k++)
		if (sw[k])
			bad = stage_switch(t, k);
	return bad;
}

/*
 * The session kept since observe died while idle (the server dropped
 * it) before anything was put in place: stage everything again over a
 * new session.  Staging is safe to repeat (temporary files, and switch
 * mode's hidden directory, are made anew); the commit is not, and is
 * never repeated.  When the new try fails too, t->why names the first
 * error, then the second.
 */
static int stage_again(struct host_turn *t, unsigned char *sw)
{
	const struct observe_opts *oo = &t->a->r->oo;
	size_t n = t->nw + (t->staged[t->nw].tmp != NULL), i;
	struct err he = ERR_INIT;
	char first[sizeof(t->why)], second[sizeof(t->why)];
	int bad;

	snprintf(first, sizeof(first), "%s", t->why);
	observe_session_put(oo, t->h, t->c);   /* broken: closed */
	t->c = NULL;
	if (observe_session(&t->c, &t->reused, oo, t->h, &he) < 0) {
		snprintf(t->why, sizeof(t->why), "%.500s; a new session failed too: %.230s", first, he.msg);
		return 1;
	}
	/* What the first try staged goes; nothing of it was put in place. */
	if (ssh_staged_discard(t->c, t->staged, n)) {
		snprintf(t->why, sizeof(t->why), "%.500s; a new session failed too", first);
		return 1;
	}
	for (i = 0; i < n; i++)
		ssh_staged_release(&t->staged[i]);
	t->nw = 0;
	memset(t->touched, 0, t->hs->nroles + 1);
	memset(sw, 0, t->hs->nroles + 1);
	t->why[0] = '\0';
	if (!(bad = stage_all(t, sw)))
		return 0;
	snprintf(second, sizeof(second), "%s", t->why);
	snprintf(t->why, sizeof(t->why), "%.500s; again over a new session: %.230s", first, second);
	return bad;
}

static int apply_host(void *ctx, void **slot, size_t idx, struct err *e)
{
	struct apply_run *a = ctx;
	struct host_result *res = &a->res[idx];
	struct host_turn t;
	struct err he = ERR_INIT;
	unsigned char *sw;          /* per role: switch mode, with changes in this step */
	size_t k;
	int bad = 0;

	(void)slot;
	memset(&t, 0, sizeof(t));
	t.a = a;
	t.h = res->host = a->hosts[idx];
	t.hs = &a->r->st.hosts->hosts[t.h];
	t.staged = calloc(a->st->nchanges + 1, sizeof(*t.staged));
	t.touched = calloc(t.hs->nroles + 1, 1);
	sw = calloc(t.hs->nroles + 1, 1);
	if (!t.staged || !t.touched || !sw) {
		free(t.staged);
		free(t.touched);
		free(sw);
		return err_nomem(e);
	}
	/* The session observe used (kept open), else a new one. */
	if (observe_session(&t.c, &t.reused, &a->r->oo, t.h, &he) < 0) {
		snprintf(t.why, sizeof(t.why), "%s", he.msg);
		bad = 1;
	}
	/* Stage every file of the host first; then one command puts them all in place. */
	if (!bad && (bad = stage_all(&t, sw)) && t.reused && ssh_broken(t.c, NULL))
		bad = stage_again(&t, sw);
	if (!bad && t.nw && ssh_commit_staged(t.c, t.staged, t.nw, &he) < 0) {
		snprintf(t.why, sizeof(t.why), "%s", he.msg);
		bad = 1;
	}
	if (!bad)
		bad = run_reloads(t.why, sizeof(t.why), t.c, t.hs, t.touched, &he);
	for (k = 0; !bad && k < t.hs->nroles; k++) {
		if (t.hs->roles[k].role != SPEC_ROLE_SERVER || !t.hs->roles[k].probe)
			continue;
		bad = probe_server(t.why, sizeof(t.why), a, t.hs, &t.hs->roles[k], &he);
		if (bad < 0) {
			snprintf(t.why, sizeof(t.why), "probe: %s", he.msg);
			bad = 1;
		}
	}
	if (bad && t.nw)
		restore_host(&t);
	/* Switch mode: keep the directory now named and the one before it (a restore or a reader mid-connection may need it). */
	for (k = 0; !bad && k < t.hs->nroles; k++) {
		char *prev, *cur, pwhy[512];

		if (!sw[k])
			continue;
		prev = observed_dir(a->r, t.h, k);
		cur = service_dir(t.c, &t.hs->roles[k]);
		if (cur && prune_switch(t.c, &t.hs->roles[k], cur, prev, pwhy, sizeof(pwhy)) < 0 && a->ui->alert) {
			pthread_mutex_lock(&a->mu);
			alert(a->ui, "warning: %s: old certificate directories not removed: %s", t.hs->name, pwhy);
			pthread_mutex_unlock(&a->mu);
		}
		free(prev);
		free(cur);
	}
	discard_staged(&t);
	observe_session_put(&a->r->oo, t.h, t.c);
	res->failed = bad;
	res->written = t.nw;
	res->what = turn_summary(&t, bad);
	free(t.staged);
	free(t.touched);
	free(sw);
	if (!res->what)
		return err_nomem(e);
	if (a->ui->host) {
		pthread_mutex_lock(&a->mu);
		a->ui->host(a->ui->payload, &a->r->hosts[t.h], bad, res->what);
		pthread_mutex_unlock(&a->mu);
	}
	return 0;
}

/* Run one step: canary hosts one by one, then the rest in parallel. */
static int apply_step(struct env_run *r, const struct plan_step *st, const char *secret, int jobs, int canary,
		      const struct apply_ui *ui, json_t *log, int *log_broken, size_t *nfailed, struct err *e)
{
	struct apply_run a;
	size_t i, n = 0, nc;
	int rc = 0;

	memset(&a, 0, sizeof(a));
	a.r = r;
	a.st = st;
	a.secret = secret;
	a.ui = ui;
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
	/* What this step did, for applied.json; a step that cannot be recorded fails the record, not the step. */
	{
		json_t *hosts = json_array();

		for (i = 0; hosts && i < n; i++)
			if (json_array_append_new(hosts, json_pack("{s:o, s:b, s:b, s:I, s:o}", "host",
								   json_text(r->hosts[a.hosts[i]].name), "done",
								   a.res[i].what != NULL, "failed", a.res[i].failed,
								   "files_written", (json_int_t)a.res[i].written, "what",
								   json_text(a.res[i].what))) < 0) {
				json_decref(hosts);
				hosts = NULL;
			}
		if (!hosts || json_array_append_new(log, json_pack("{s:s, s:s, s:o}", "from", phase_step_name(st->from), "to",
								   phase_step_name(st->to), "hosts", hosts)) < 0)
			*log_broken = 1;
	}
	for (i = 0; i < n; i++)
		free(a.res[i].what);
	pthread_mutex_destroy(&a.mu);
	free(a.hosts);
	free(a.res);
	return rc;
}

/* Reload the stale services the last plan found (r->stale) and check them again. */
static int settle(struct env_run *r, const struct apply_ui *ui, struct err *e)
{
	struct stale_service *stale = r->stale;
	size_t i, nstale = r->nstale;
	int tries, rc;

	r->stale = NULL;
	r->nstale = 0;
	for (i = 0; i < nstale; i++) {
		const struct host_spec *hs = &r->st.hosts->hosts[stale[i].host];
		struct ssh_conn *c = NULL;
		unsigned char *touched = calloc(hs->nroles + 1, 1);
		char why[512] = "";
		int reused;

		if (!touched) {
			free(stale);
			return err_nomem(e);
		}
		touched[stale[i].role] = 1;
		note(ui, "  reloading %s (%s): an earlier apply stopped before its reload", hs->name, hs->address);
		rc = observe_session(&c, &reused, &r->oo, stale[i].host, e) < 0 ? e->code
		     : run_reloads(why, sizeof(why), c, hs, touched, e) ? err_set(e, ROTOR_ERROR, "%s: %s", hs->name, why) : 0;
		observe_session_put(&r->oo, stale[i].host, c);
		free(touched);
		if (rc < 0) {
			free(stale);
			return rc;
		}
	}
	free(stale);
	/* A reload is asynchronous: look again for a few seconds. */
	for (tries = 0; tries < PROBE_TRIES; tries++) {
		clock_sleep_ms(PROBE_PAUSE_MS);
		if ((rc = env_run_find_stale(r, e)) < 0)
			return rc;
		if (!r->nstale)
			return 0;
	}
	return err_set(e, ROTOR_ESTATE, "%s still presents another certificate than its files hold after a reload",
		       r->st.hosts->hosts[r->stale[0].host].name);
}

/* Say which services the last plan found stale. */
static void note_stale(const struct env_run *r, const struct apply_ui *ui)
{
	size_t i;

	for (i = 0; i < r->nstale; i++) {
		const struct host_spec *hs = &r->st.hosts->hosts[r->stale[i].host];

		note(ui, "  ! %s (%s): the service presents %s, its files hold %s: it needs a reload", hs->name,
		     hs->address, r->stale[i].presents, r->stale[i].holds);
	}
}

/* The backup counts of res, as the JSON documents show them. */
static const struct report_backups *report_backups(struct report_backups *b, const struct apply_result *res)
{
	b->removed = res->backups_removed;
	b->hosts = res->backup_hosts;
	b->failed_hosts = res->backup_failures;
	b->kept = res->backups_kept;
	return b;
}

/* og: the remote the status goes to (NULL: the local branch). */
static int record_status(struct apply_result *res, struct env_run *r, struct gitrepo *repo, struct origin *og,
			 const char *env, json_t *steps, int steps_broken, struct err *e)
{
	struct buf obs = BUF_INIT, msg = BUF_INIT, log = BUF_INIT;
	struct report_backups b;
	struct gitrepo_file files[2];
	char who[256];
	int rc;

	gitstatus_holder(who, sizeof(who));
	if (steps_broken || applied_json(&log, r->src.commit, &r->desired, steps, res->outcome, report_backups(&b, res)) < 0 ||
	    observe_json(&obs, r->hosts, r->nhosts, &r->st, r->src.commit) < 0 ||
	    buf_printf(&msg, "rotor: apply %s: %s\n\nDesired state: %s\nRotor-Env: %s\nRotor-Desired: %s\nRotor-By: %s\n",
		       env, res->outcome, r->src.commit, env, r->src.commit, who) < 0) {
		buf_release(&obs);
		buf_release(&msg);
		buf_release(&log);
		return err_set(e, ROTOR_ENOMEM, "the status documents are incomplete (out of memory)");
	}
	files[0].path = "observed.json";
	files[0].data = obs.ptr;
	files[0].len = obs.len;
	files[1].path = "applied.json";
	files[1].data = log.ptr;
	files[1].len = log.len;
	if (og)
		rc = origin_record(og, repo, env, files, 2, buf_cstr(&msg), res->status_commit, e);
	else
		rc = gitstatus_record(repo, env, files, 2, buf_cstr(&msg), res->status_commit, e);
	buf_release(&obs);
	buf_release(&msg);
	buf_release(&log);
	return rc;
}

/* The first step that still has changes: the steps before it are done. */
static const struct plan_step *next_step(const struct plan *p)
{
	size_t k;

	for (k = 0; k < p->nsteps; k++)
		if (p->steps[k].nchanges)
			return &p->steps[k];
	return NULL;
}

/* ---- removing the backups once the env is stable ---- */

struct cleanup_run {
	const struct env_run *r;
	const struct apply_ui *ui;
	size_t *removed;        /* per host */
	char **failed;          /* per host: why the removal failed, NULL when it did not */
	int only_seen;          /* only on hosts where observe saw a backup */
};

static int cleanup_host(void *ctx, void **slot, size_t h, struct err *e)
{
	struct cleanup_run *cr = ctx;
	const struct env_run *r = cr->r;
	const struct host_spec *hs = &r->st.hosts->hosts[h];
	struct managed_file *mf = NULL;
	const char **paths = NULL;
	int *become = NULL;
	struct ssh_conn *c = NULL;
	struct err he = ERR_INIT;
	size_t k, i, n = 0, nmf = 0;
	int rc = 0, reused;

	(void)slot;
	if (!r->hosts[h].reachable)
		return 0;
	for (k = 0; cr->only_seen && k < r->hosts[h].nstrays && !obs_stray_is_backup(r->hosts[h].strays[k]); k++)
		;
	if (cr->only_seen && k == r->hosts[h].nstrays)
		return 0;
	paths = calloc(r->hosts[h].nfiles + 1, sizeof(*paths));
	become = calloc(r->hosts[h].nfiles + 1, sizeof(*become));
	if (!paths || !become) {
		rc = err_nomem(e);
		goto out;
	}
	for (k = 0; k < hs->nroles && rc == 0; k++) {
		if (hs->roles[k].service) {
			/* Switch mode: the service file's backup; the old directories go below. */
			become[n] = -1;
			if (!(paths[n++] = strdup(hs->roles[k].service_file))) {
				rc = err_nomem(e);
				goto out;
			}
			continue;
		}
		if ((rc = layout_expand(&mf, &nmf, &hs->roles[k], e)) < 0)
			goto out;
		for (i = 0; i < nmf && n < r->hosts[h].nfiles; i++, n++) {
			become[n] = file_become(&mf[i], hs, r);
			if (!(paths[n] = strdup(mf[i].path))) {
				rc = err_nomem(e);
				goto out;
			}
		}
		layout_free(mf, nmf);
		mf = NULL;
		nmf = 0;
	}
	if (observe_session(&c, &reused, &r->oo, h, &he) == 0)
		for (k = 0; k < hs->nroles; k++) {
			char *cur, pwhy[512];

			if (!hs->roles[k].service || !(cur = service_dir(c, &hs->roles[k])))
				continue;
			/* Stable, no rotation under way: only the directory named now is needed. */
			if (prune_switch(c, &hs->roles[k], cur, NULL, pwhy, sizeof(pwhy)) < 0 && !cr->failed[h] &&
			    !(cr->failed[h] = strdup(pwhy)))
				rc = err_nomem(e);
			free(cur);
		}
	if (rc == 0 && (!c || ssh_remove_backups(c, paths, become, n, &cr->removed[h], &he) < 0) && !cr->failed[h]) {
		if (he.code == ROTOR_ENOMEM) {
			rc = err_nomem(e);
			goto out;
		}
		if (!(cr->failed[h] = strdup(he.msg)))
			rc = err_nomem(e);
	}
out:
	observe_session_put(&r->oo, h, c);
	layout_free(mf, nmf);
	for (i = 0; paths && i < n; i++)
		free((char *)paths[i]);
	free(paths);
	free(become);
	return rc;
}

/*
 * Every host is at a stable step and no rotation is under way: no
 * rollback needs the backups any more, so remove them (one command per
 * host).  A host that fails is a warning, not a failed apply.
 */
/* What observe found: the backups on a host that removed them are gone (for observed.json). */
static void forget_backups(struct obs_host *h)
{
	size_t i, n = 0;

	for (i = 0; i < h->nstrays; i++)
		if (obs_stray_is_backup(h->strays[i]))
			free(h->strays[i]);
		else
			h->strays[n++] = h->strays[i];
	h->nstrays = n;
}

/*
 * Temporary files an earlier write left (its host went away before they
 * could be removed): never needed, so removed as soon as observe sees
 * them, one command per host.  A host where that fails is a warning.
 */
static int remove_temps(struct env_run *r, const struct apply_ui *ui, struct err *e)
{
	size_t h, k, n, removed;

	for (h = 0; h < r->nhosts; h++) {
		struct obs_host *oh = &r->hosts[h];
		const char **temps;
		struct ssh_conn *c = NULL;
		struct err he = ERR_INIT;
		int reused;

		if (!oh->reachable || oh->nstrays == 0)
			continue;
		if (!(temps = calloc(oh->nstrays, sizeof(*temps))))
			return err_nomem(e);
		for (n = k = 0; k < oh->nstrays; k++)
			if (!obs_stray_is_backup(oh->strays[k]) && !strchr(oh->strays[k], '?'))
				temps[n++] = oh->strays[k];
		removed = 0;
		if (n && (observe_session(&c, &reused, &r->oo, h, &he) < 0 ||
			  ssh_remove_temps(c, temps, n, &removed, &he) < 0)) {
			observe_session_put(&r->oo, h, c);
			free(temps);
			if (he.code == ROTOR_ENOMEM)
				return err_nomem(e);
			alert(ui, "warning: %s: temporary files an earlier write left were not all removed: %s", oh->name,
			      he.msg);
			continue;
		}
		observe_session_put(&r->oo, h, c);
		free(temps);
		if (!n)
			continue;
		note(ui, "removed %zu temporary file%s an earlier write left on %s", removed, removed == 1 ? "" : "s",
		     oh->name);
		/* Gone now (for observed.json): keep the backups and what could not be named. */
		for (n = k = 0; k < oh->nstrays; k++)
			if (obs_stray_is_backup(oh->strays[k]) || strchr(oh->strays[k], '?'))
				oh->strays[n++] = oh->strays[k];
			else
				free(oh->strays[k]);
		oh->nstrays = n;
	}
	return 0;
}

/* Stable with no rotation under way: no rollback needs a backup. */
static int backups_retired(const struct env_run *r)
{
	return (r->plan.desired == STEP_STABLE_A || r->plan.desired == STEP_STABLE_B) && r->st.rotation->target == 0;
}

/* Did observe see a backup on any host? */
static int any_backup(const struct env_run *r)
{
	size_t i, k;

	for (i = 0; i < r->nhosts; i++)
		for (k = 0; k < r->hosts[i].nstrays; k++)
			if (obs_stray_is_backup(r->hosts[i].strays[k]))
				return 1;
	return 0;
}

static int remove_backups(struct apply_result *res, struct env_run *r, const struct apply_ui *ui, int only_seen,
			  struct err *e)
{
	struct cleanup_run cr;
	size_t i;
	int rc;

	memset(&cr, 0, sizeof(cr));
	cr.only_seen = only_seen;
	cr.r = r;
	cr.ui = ui;
	cr.removed = calloc(r->nhosts + 1, sizeof(*cr.removed));
	cr.failed = calloc(r->nhosts + 1, sizeof(*cr.failed));
	if (!cr.removed || !cr.failed) {
		free(cr.removed);
		free(cr.failed);
		return err_nomem(e);
	}
	rc = pool_run(r->nhosts, r->oo.parallel > 0 ? r->oo.parallel : 32, cleanup_host, NULL, &cr, e);
	for (i = 0; i < r->nhosts; i++) {
		res->backups_removed += cr.removed[i];
		res->backup_hosts += cr.removed[i] > 0;
		if (cr.failed[i]) {
			res->backup_failures++;
			if (rc == 0)
				alert(ui, "warning: %s: the backups were not all removed: %s", r->hosts[i].name, cr.failed[i]);
		} else if (rc == 0 && r->hosts[i].reachable) {
			forget_backups(&r->hosts[i]);
		}
		free(cr.failed[i]);
	}
	free(cr.removed);
	free(cr.failed);
	if (rc == 0)
		note(ui, "removed %zu backup%s on %zu host%s", res->backups_removed, res->backups_removed == 1 ? "" : "s",
		     res->backup_hosts, res->backup_hosts == 1 ? "" : "s");
	return rc;
}

/* The lock of the run: on the remote (og) or local; refreshed between steps. */
struct run_lock {
	struct origin *og;          /* NULL: the local lock */
	struct gitrepo *repo;
	const char *env;
	struct gitstatus_lock_info info;
	char held[41];
	int lost;                   /* the lock is no longer ours: said once, not released */
};

/* Refresh a remote lock; 0, or 1 when it is lost (said in one line). */
static int lock_keep(struct run_lock *k, const struct apply_ui *ui)
{
	struct err e = ERR_INIT;

	if (!k->og || k->lost)
		return k->lost;
	if (origin_lock_refresh(k->og, k->repo, k->env, &k->info, k->held, &e) == 0)
		return 0;
	k->lost = 1;
	alert(ui, "%s", e.msg);
	return 1;
}

#define STOP(...) do { snprintf(res->outcome, sizeof(res->outcome), __VA_ARGS__); } while (0)

/*
 * The run under the lock: plan, ask, settle, the steps.  res->status and
 * outcome are set.  Returns 0 (record the run), 1 (declined: nothing was
 * done, nothing to record) or a negative code.
 */
static int apply_locked(struct apply_result *res, struct env_run *r, const struct apply_opts *o,
			const struct apply_ui *ui, struct run_lock *lk, const char *secret, json_t *log, int *log_broken,
			struct err *e)
{
	size_t failed = 0;
	int guard, rc = 0;

	res->status = 1;
	res->backups_kept = 1;   /* until the run ends stable */
	if ((rc = env_run_plan(r, 0, o->replace_unknown, e)) < 0)
		return rc;
	/* A saved plan is applied only to the hosts as it saw them. */
	if (o->saved && (rc = savedplan_check_run(o->saved, r, e)) < 0) {
		if (rc != ROTOR_ESTATE)
			return rc;
		STOP("%.200s", e->msg);
		alert(ui, "%s; nothing applied", e->msg);
		err_clear(e);
		return 1;       /* nothing was done: nothing to record */
	}
	if (ui->plan)
		ui->plan(ui->payload, r);
	if (!r->plan.live_known || r->plan.refused) {
		STOP("%s", r->plan.refused ? "refused: unsafe desired state" : "stopped: live state unknown");
		alert(ui, "nothing applied: %s", res->outcome);
		return 0;
	}
	if (r->plan.nchanges == 0 && r->nstale == 0) {
		STOP("in sync at %s, nothing to do", phase_step_name(r->plan.desired));
		res->status = 0;
		if ((rc = remove_temps(r, ui, e)) < 0)
			return rc;
		/* Backups an earlier run left (it stopped, or kept them for a rollback): no longer needed. */
		res->backups_kept = !backups_retired(r);
		if (!res->backups_kept && any_backup(r) && (rc = remove_backups(res, r, ui, 1, e)) < 0)
			return rc;
		return 0;
	}
	if (ui->confirm && !ui->confirm(ui->payload)) {
		STOP("not confirmed, nothing applied");
		alert(ui, "%s", res->outcome);
		return 1;       /* nothing was done: nothing to record */
	}
	if ((rc = remove_temps(r, ui, e)) < 0)
		return rc;
	if (r->nstale && (rc = settle(r, ui, e)) < 0)
		return rc;
	for (guard = 0;; guard++) {
		const struct plan_step *st = next_step(&r->plan);

		if (!st)
			break;
		if (guard >= 2 * NSTEPS) {
			STOP("stopped after %zu steps: the hosts do not converge", res->steps);
			alert(ui, "%s (is something else changing these files?)", res->outcome);
			return 0;
		}
		if (st->ngates) {
			STOP("stopped before %s: external peers not ready", phase_step_name(st->to));
			alert(ui, "%s (see the gate above)", res->outcome);
			return 0;
		}
		/* The step that ran finished; the next runs only while the lock is still ours. */
		if (res->steps && lock_keep(lk, ui)) {
			STOP("stopped after %zu step%s: the lock was lost", res->steps, res->steps == 1 ? "" : "s");
			return 0;
		}
		if (ui->step)
			ui->step(ui->payload, st);
		if ((rc = apply_step(r, st, secret, r->oo.parallel, o->canary, ui, log, log_broken, &failed, e)) < 0)
			return rc;
		res->steps++;
		res->changes += st->nchanges;
		if (failed) {
			STOP("step %s -> %s failed on %zu host%s", phase_step_name(st->from), phase_step_name(st->to), failed,
			     failed == 1 ? "" : "s");
			alert(ui, "%s; fix it and run apply again to continue", res->outcome);
			/* Record what the hosts hold now. */
			if (env_run_plan(r, 0, o->replace_unknown, e) < 0)
				err_clear(e);
			return 0;
		}
		/* The gate for the next step is what the hosts hold now. */
		if ((rc = env_run_plan(r, 0, o->replace_unknown, e)) < 0)
			return rc;
		if (!r->plan.live_known || r->plan.refused) {
			STOP("stopped after %zu step%s: live state does not match the plan", res->steps,
			     res->steps == 1 ? "" : "s");
			if (ui->plan)
				ui->plan(ui->payload, r);
			alert(ui, "%s", res->outcome);
			return 0;
		}
		note_stale(r, ui);
		if (r->nstale && (rc = settle(r, ui, e)) < 0)
			return rc;
	}
	STOP("%zu step%s, %zu file change%s; every host at %s", res->steps, res->steps == 1 ? "" : "s", res->changes,
	     res->changes == 1 ? "" : "s", phase_step_name(r->plan.desired));
	note(ui, "\ndone: %s", res->outcome);
	res->status = 0;
	/* Stable again: a rollback no longer needs the backups (during a rotation they stay). */
	res->backups_kept = !backups_retired(r);
	if (!res->backups_kept && (rc = remove_backups(res, r, ui, 0, e)) < 0)
		return rc;
	return 0;
}

int apply_env(struct apply_result *res, struct gitrepo *repo, const struct apply_opts *o,
	      const struct apply_ui *ui, struct diags *d, struct err *e)
{
	struct env_run r;
	struct buf secret = BUF_INIT;
	json_t *log = json_array();
	int log_broken = !log;
	struct run_lock lk;
	struct gitstatus_lock removed;
	struct origin og;
	struct desired want;
	char key_path[4096], cmdline[128], desc[600];
	int rc;

	memset(res, 0, sizeof(*res));
	memset(&r, 0, sizeof(r));
	res->backups_kept = 1;
	res->status = 1;
	/* The desired commit, as plan finds it: --ref, else git.main fetched from git.remote. */
	memset(&lk, 0, sizeof(lk));
	rc = origin_open(&og, repo, o->message, o->message_payload, e);
	if (rc == 0)
		rc = origin_desired(&want, &og, repo, o->ref, o->no_fetch, e);
	if (rc == 0 && o->saved)
		rc = savedplan_check_commit(o->saved, &want, e);
	if (rc < 0)
		goto out;
	note(ui, "%s", want.line);
	if ((rc = env_run_load(&r, repo, o->env, want.commit, RUN_KEYS, d, e)) < 0)
		goto out;
	r.desired = want;
	if (o->parallel)
		r.oo.parallel = o->parallel;
	/* One session per host for the whole run: observe, writes, observe again. */
	{
		unsigned long long need, limit;

		if ((rc = observe_sessions_keep(&r.oo, &need, &limit, e)) < 0)
			goto out;
		if (rc == 1)
			alert(ui, "warning: the limit on open files (%llu) is below the %llu a session per host needs: "
			      "each step opens new sessions (raise ulimit -n)", limit, need);
		rc = 0;
	}
	r.oo.progress = ui->progress;
	r.oo.payload = ui->progress_payload;
	if ((rc = state_key_path(key_path, sizeof(key_path), r.st.config, e)) < 0 ||
	    (rc = pki_secret_load(&secret, key_path, e)) < 0 ||
	    (rc = state_check_secret(&r.st, &r.src, buf_cstr(&secret), key_path, e)) < 0)
		goto out;
	snprintf(cmdline, sizeof(cmdline), "rotor apply --env %s", o->env);
	/* With a remote the lock is the remote's refs/rotor/lock/<env>: the team's one lock. */
	lk.og = og.has_remote ? &og : NULL;
	lk.repo = repo;
	lk.env = o->env;
	lk.info.command = cmdline;
	lk.info.desired = r.src.commit;
	lk.info.time = (long long)time(NULL);
	if (lk.og)
		rc = origin_lock_take(&og, repo, o->env, &lk.info, o->force_unlock, lk.held, &removed, e);
	else
		rc = gitstatus_lock_take(repo, o->env, &lk.info, o->force_unlock, lk.held, &removed, e);
	if (rc < 0)
		goto out;
	if (removed.id[0])
		alert(ui, "removed the lock of %s", gitstatus_lock_describe(desc, sizeof(desc), &removed));

	rc = apply_locked(res, &r, o, ui, &lk, buf_cstr(&secret), log, &log_broken, e);
	if (rc == 1)
		goto unlock;
	if (rc < 0) {
		alert(ui, "%s", e->msg);
		err_clear(e);
		res->status = 1;
		snprintf(res->outcome, sizeof(res->outcome), "error");
		if (!r.hosts)
			goto unlock;    /* nothing was observed: nothing to record */
	}
	if (record_status(res, &r, repo, lk.og, o->env, log, log_broken, e) < 0) {
		alert(ui, "recording the status failed: %s", e->msg);
		err_clear(e);
		res->status = 1;
	} else {
		note(ui, "recorded %.12s on rotor/status/%s%s%s", res->status_commit, o->env, lk.og ? " on " : "",
		     lk.og ? og.remote : "");
	}
unlock:
	if (lk.lost)
		res->status = 1;
	else if ((lk.og ? origin_lock_release(&og, repo, o->env, lk.held, e)
			: gitstatus_unlock(repo, o->env, lk.held, e)) < 0) {
		alert(ui, "%s", e->msg);
		err_clear(e);
		res->status = 1;
	}
	rc = 0;
	/* What the caller prints for --json: what this run did, after the lock is released. */
	if (o->json) {
		struct buf doc = BUF_INIT;

		struct report_backups b;

		if (log_broken || apply_json(&doc, r.src.commit, &r.desired, log, res->outcome, report_backups(&b, res),
					     res->status_commit) < 0) {
			alert(ui, "the --json document is incomplete (out of memory)");
			res->status = 1;
			buf_release(&doc);
		} else {
			res->json = buf_detach(&doc);
		}
	}
out:
	origin_release(&og);
	buf_wipe(&secret);
	json_decref(log);
	env_run_release(&r);
	return rc;
}
