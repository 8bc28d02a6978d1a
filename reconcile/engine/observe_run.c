/*
 * observe_run.c -- read every managed file of every host over SSH and
 * classify it (observe.c), on a bounded pool of threads, one session
 * per host (kept open for the next use when o->conns is set).  Private keys are read into buffers that are wiped as soon
 * as the key has been compared with its certificate.
 */
#include "reconcile/engine/observe.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/clock.h"
#include "common/fdlimit.h"
#include "common/pool.h"
#include "reconcile/pki/pki.h"
#include "reconcile/remote/ssh.h"

struct run {
	const struct observe_opts *o;
	struct obs_host *hosts;
	pthread_mutex_t mu;
	size_t done, failed;
};

static double mono(void)
{
	return (double)clock_mono_ms() / 1e3;
}

/* Read one file into f (and its bytes into data); findings, not errors. */
static int read_one(struct obs_file *f, struct buf *data, struct ssh_conn *c,
		    const struct observe_opts *o, struct err *e)
{
	struct ssh_stat st;
	struct err re = ERR_INIT;
	struct buf msg = BUF_INIT;
	int rc;

	f->mode = -1;
	f->uid = f->gid = -1;
	rc = ssh_read_file(data, c, f->path, o->max_file, &st, &re);
	if (rc == ROTOR_ENOMEM)
		return err_nomem(e);
	if (rc == ROTOR_ENOTFOUND)
		return 0;
	f->present = 1;
	if (rc == 0) {
		if (sha256_hex(f->sha256, data->ptr, data->len, e) < 0)
			return ROTOR_ERROR;
		f->size = st.size;
		f->mode = (int)(st.mode & 07777);
		f->uid = (long)st.uid;
		f->gid = (long)st.gid;
		return 0;
	}
	if (rc == ROTOR_ETOOBIG)
		rc = buf_printf(&msg, "larger than the %zu byte cap; not read", o->max_file);
	else
		rc = buf_printf(&msg, "unreadable: %s", re.msg);
	if (rc < 0)
		return err_nomem(e);
	f->problem = buf_detach(&msg);
	return 0;
}

/*
 * A switch-mode role: read its service file and put the paths its
 * section names in place of mf's.  A missing file, section or entry
 * leaves that file absent[]; a service file that cannot be used (not
 * rotor's and not adopted, unreadable, a relative path) is *why for
 * every file of the role.
 */
static int switch_resolve(struct managed_file *mf, size_t nmf, unsigned char *absent, char **why, struct ssh_conn *c,
			  const struct host_role *r, const struct observe_opts *o, struct err *e)
{
	struct buf data = BUF_INIT, msg = BUF_INIT;
	struct switch_point sp;
	struct err re = ERR_INIT;
	size_t i;
	int rc = ssh_read_file(&data, c, r->service_file, o->max_file, NULL, &re);

	memset(&sp, 0, sizeof(sp));
	if (rc == ROTOR_ENOMEM)
		return err_nomem(e);
	if (rc == ROTOR_ENOTFOUND) {
		memset(absent, 1, nmf);
		return 0;
	}
	if (rc < 0)
		rc = buf_printf(&msg, "service file %s unreadable: %s", r->service_file, re.msg);
	else if ((rc = switch_parse(&sp, data.ptr, data.len, r->service, e)) < 0)
		goto out;
	else if (!sp.by_rotor && !r->adopt)
		rc = buf_printf(&msg, "service file %s exists and was not written by rotor; refusing to replace it "
				      "(set switch: {adopt: true} to let rotor take it over)", r->service_file);
	for (i = 0; rc == 0 && !msg.len && i < nmf && i < LAYOUT_MAX_FILES; i++) {
		const char *p = mf[i].content == SPEC_CONTENT_KEY ? sp.key : mf[i].content == SPEC_CONTENT_TRUST ? sp.root : sp.cert;
		char *np;

		if (!p) {
			absent[i] = 1;
		} else if (p[0] != '/') {
			rc = buf_printf(&msg, "service file %s: [%s] names a relative path %s", r->service_file, r->service, p);
		} else if (!(np = strdup(p))) {
			rc = err_nomem(e);
		} else {
			free(mf[i].path);
			mf[i].path = np;
		}
	}
	if (rc == 0 && msg.len)
		*why = buf_detach(&msg);
	else if (rc < 0 && rc != ROTOR_ENOMEM)
		rc = 0;
	if (msg.err)
		rc = err_nomem(e);
out:
	switch_point_release(&sp);
	buf_release(&msg);
	buf_release(&data);
	return rc < 0 ? rc : 0;
}

static int observe_role(struct obs_host *h, struct ssh_conn *c, const struct host_role *r,
			const struct observe_opts *o, struct err *e)
{
	struct managed_file *mf = NULL;
	struct buf leaf = BUF_INIT, data = BUF_INIT, key = BUF_INIT;
	struct obs_role *orole = &h->roles[h->nroles];
	size_t nmf = 0, i, key_at = (size_t)-1;
	struct x509_st *leaf_x = NULL;   /* the first leaf file's first certificate, parsed once */
	unsigned char absent[LAYOUT_MAX_FILES + 1] = { 0 };
	char *why = NULL;
	int rc;

	if ((rc = layout_expand(&mf, &nmf, r, e)) < 0)
		return rc;
	/* Switch mode: the files are what the service file names now. */
	if (r->service && (rc = switch_resolve(mf, nmf, absent, &why, c, r, o, e)) < 0) {
		layout_free(mf, nmf);
		return rc;
	}
	memset(orole, 0, sizeof(*orole));
	orole->role = r->role;
	orole->first = h->nfiles;
	if (r->identity && !(orole->identity = xstrdup(r->identity, e))) {
		rc = ROTOR_ENOMEM;
		goto out;
	}
	h->nroles++;
	{
		struct obs_file *nv = realloc(h->files, (h->nfiles + nmf) * sizeof(*nv));

		if (!nv) {
			rc = err_nomem(e);
			goto out;
		}
		h->files = nv;
	}
	for (i = 0; i < nmf; i++) {
		struct obs_file *f = &h->files[h->nfiles];

		memset(f, 0, sizeof(*f));
		f->content = mf[i].content;
		f->side = mf[i].side;
		f->form = mf[i].form;
		f->want_mode = mf[i].mode;
		if (!(f->path = xstrdup(mf[i].path, e))) {
			rc = ROTOR_ENOMEM;
			goto out;
		}
		h->nfiles++;
		orole->nfiles++;
		buf_wipe(&data);
		if (why) {
			f->present = 1;
			if ((!h->refused && !(h->refused = xstrdup(why, e))) || !(f->problem = xstrdup(why, e))) {
				rc = ROTOR_ENOMEM;
				goto out;
			}
			continue;
		}
		if (i < LAYOUT_MAX_FILES && absent[i])
			continue;
		if ((rc = read_one(f, &data, c, o, e)) < 0)
			goto out;
		if (!f->present || f->problem)
			continue;
		if (f->content == SPEC_CONTENT_KEY && observe_key_form(f, data.ptr, data.len) < 0) {
			rc = err_nomem(e);
			goto out;
		}
		if (f->content == SPEC_CONTENT_KEY && !f->problem) {
			/* Compared once the leaf is known (it may come later). */
			if (key_at == (size_t)-1) {
				key_at = i;
				if (buf_put(&key, data.ptr, data.len) < 0) {
					rc = err_nomem(e);
					goto out;
				}
			}
			continue;
		} else if (f->content == SPEC_CONTENT_CRL) {
			if ((rc = observe_parse_crls(f, data.ptr, data.len, e)) < 0)
				goto out;
			continue;
		} else if (f->form == LAYOUT_FORM_P12) {
			/* Key and chain in one PKCS#12 file: classified as the chain inside. */
			struct buf certs = BUF_INIT;

			if ((rc = observe_p12(f, &certs, data.ptr, data.len, e)) == 0 && !f->problem)
				rc = observe_parse_certs(f, certs.ptr, certs.len, o->known, o->now, e);
			buf_wipe(&data);
			if (rc == 0 && buf_put(&data, certs.ptr, certs.len) < 0)
				rc = err_nomem(e);
			buf_wipe(&certs);
			if (rc < 0)
				goto out;
			if (f->problem)
				continue;
		} else if ((rc = observe_parse_certs_first(f, data.ptr, data.len, o->known, o->now,
							   (f->content == SPEC_CONTENT_LEAF ||
							    f->content == SPEC_CONTENT_LEAF_CHAIN) && !leaf.len && !leaf_x ?
							   &leaf_x : NULL, e)) < 0) {
			goto out;
		}
		if ((f->content == SPEC_CONTENT_LEAF || f->content == SPEC_CONTENT_LEAF_CHAIN) && !leaf.len &&
		    buf_put(&leaf, data.ptr, data.len) < 0) {
			rc = err_nomem(e);
			goto out;
		}
	}
	/* With the leaf parsed once when the describe above kept it (a key OpenSSL has to decode). */
	if (key_at != (size_t)-1)
		h->files[orole->first + key_at].key =
			observe_key_match_leaf(key.ptr, key.len, leaf.len ? leaf.ptr : NULL, leaf.len, leaf_x);
	rc = 0;
out:
	pki_x509_free(leaf_x);
	buf_wipe(&key);
	buf_wipe(&data);
	buf_release(&leaf);
	layout_free(mf, nmf);
	free(why);
	return rc;
}

int observe_connect(struct ssh_conn **c, const struct observe_opts *o, const struct host_spec *hs,
		    struct err *e)
{
	struct ssh_opts so;

	memset(&so, 0, sizeof(so));
	so.host_label = hs->name;
	so.address = hs->address;
	so.port = hs->port ? hs->port : o->port;
	so.user = hs->user ? hs->user : o->user;
	so.identity = o->identity;
	so.known_hosts = o->known_hosts;
	so.connect_timeout_ms = o->connect_timeout_ms;
	so.deadline_ms = o->deadline_ms;
	so.become = o->become;
	return ssh_connect(c, &so, e);
}

/* The backups and temporary files next to h's files; a failed look finds none. */
static int find_strays(struct obs_host *h, const struct host_spec *hs, struct ssh_conn *c, struct err *e)
{
	const char **paths = calloc(h->nfiles + hs->nroles + 1, sizeof(*paths));
	struct err se = ERR_INIT;
	size_t i, n;

	if (!paths)
		return err_nomem(e);
	for (i = 0; i < h->nfiles; i++)
		paths[i] = h->files[i].path;
	/* Switch mode: the service file has its backup too. */
	for (n = h->nfiles, i = 0; i < hs->nroles; i++)
		if (hs->roles[i].service)
			paths[n++] = hs->roles[i].service_file;
	if (ssh_find_strays(c, paths, n, &h->strays, &h->nstrays, &se) == ROTOR_ENOMEM) {
		free(paths);
		return err_nomem(e);
	}
	free(paths);
	return 0;
}

/* What observe_on() filled in: emptied for another try. */
static void obs_host_forget(struct obs_host *h)
{
	size_t j;

	free(h->refused);
	free(h->host_key);
	for (j = 0; j < h->nroles; j++)
		free(h->roles[j].identity);
	memset(h->roles, 0, h->nroles * sizeof(*h->roles));
	for (j = 0; j < h->nfiles; j++)
		obs_file_release(&h->files[j]);
	free(h->files);
	ssh_strays_free(h->strays, h->nstrays);
	h->refused = h->host_key = NULL;
	h->files = NULL;
	h->strays = NULL;
	h->nroles = h->nfiles = h->nstrays = 0;
	h->phase_mask = 0;
	h->reachable = 0;
}

/*
 * Every file hs's roles name (a switch-mode role: its service file, which
 * names the others), read ahead in a few rounds of requests sent at once;
 * the reads below then take them from the connection (ssh_prefetch).
 */
static int prefetch(struct ssh_conn *c, const struct host_spec *hs, const struct observe_opts *o, struct err *e)
{
	struct managed_file *mf = NULL;
	char **paths = NULL;
	size_t nmf = 0, n = 0, i, r;
	int rc = 0;

	for (r = 0; r < hs->nroles && rc == 0; r++) {
		const char *one = hs->roles[r].service_file;
		char **np;

		if (!hs->roles[r].service && (rc = layout_expand(&mf, &nmf, &hs->roles[r], e)) < 0)
			break;
		if (hs->roles[r].service)
			nmf = 1;
		if (!(np = realloc(paths, (n + nmf) * sizeof(*paths)))) {
			rc = err_nomem(e);
		} else {
			paths = np;
			for (i = 0; i < nmf && rc == 0; i++)
				if (!(paths[n] = strdup(mf ? mf[i].path : one)))
					rc = err_nomem(e);
				else
					n++;
		}
		layout_free(mf, mf ? nmf : 0);
		mf = NULL;
	}
	if (rc == 0 && n)
		rc = ssh_prefetch(c, (const char *const *)paths, n, o->max_file, e);
	for (i = 0; i < n; i++)
		free(paths[i]);
	free(paths);
	return rc;
}

/* Read host hs's files over c into h. */
static int observe_on(struct obs_host *h, const struct host_spec *hs, struct ssh_conn *c, struct run *run,
		      struct err *e)
{
	const struct observe_opts *o = run->o;
	size_t r;
	int rc = 0;

	h->reachable = 1;
	if (!(h->host_key = xstrdup(ssh_host_fingerprint(c), e)))
		return ROTOR_ENOMEM;
	/* A failed read ahead changes nothing: each file is then read on its own (a broken session fails there). */
	{
		struct err pe = ERR_INIT;

		if (prefetch(c, hs, o, &pe) == ROTOR_ENOMEM)
			return err_nomem(e);
	}
	for (r = 0; r < hs->nroles && rc == 0; r++)
		rc = observe_role(h, c, &hs->roles[r], o, e);
	if (rc == 0)
		h->phase_mask = observe_phase_mask(h->files, h->nfiles, o->generation, o->target);
	if (rc == 0)
		rc = find_strays(h, hs, c, e);
	ssh_prefetch_drop(c);   /* what was not taken */
	return rc;
}

static int observe_one(void *ctx, void **slot, size_t i, struct err *e)
{
	struct run *run = ctx;
	const struct observe_opts *o = run->o;
	const struct host_spec *hs = &o->hosts->hosts[i];
	struct obs_host *h = &run->hosts[i];
	struct ssh_conn *c = NULL;
	struct err ce = ERR_INIT, first = ERR_INIT;
	double t0 = mono();
	int rc = 0, reused = 0;

	(void)slot;
	if (!(h->name = xstrdup(hs->name, e)) || !(h->address = xstrdup(hs->address, e)) ||
	    !(h->roles = calloc(hs->nroles ? hs->nroles : 1, sizeof(*h->roles))))
		return err_nomem(e);
	if (observe_session(&c, &reused, o, i, &ce) < 0)
		goto unreachable;
	rc = observe_on(h, hs, c, run, e);
	if (rc == 0 && reused && ssh_broken(c, &first)) {
		/* The session kept from before died while idle: read everything again over a new one. */
		obs_host_forget(h);
		observe_session_put(o, i, c);
		c = NULL;
		if (observe_session(&c, &reused, o, i, &ce) < 0) {
			if (ce.code != ROTOR_ENOMEM)
				err_set(&ce, ce.code, "%s; a new session failed too: %s", first.msg, ce.msg);
			goto unreachable;
		}
		rc = observe_on(h, hs, c, run, e);
	}
	goto done;
unreachable:
	if (ce.code == ROTOR_ENOMEM)
		return err_nomem(e);
	if (!(h->error = xstrdup(ce.msg, e)))
		return ROTOR_ENOMEM;
done:
	observe_session_put(o, i, c);
	h->seconds = mono() - t0;
	if (o->progress) {
		pthread_mutex_lock(&run->mu);
		run->done++;
		run->failed += !h->reachable;
		o->progress(o->payload, run->done, run->failed, o->hosts->nhosts);
		pthread_mutex_unlock(&run->mu);
	}
	return rc;
}

int observe_session(struct ssh_conn **c, int *reused, const struct observe_opts *o, size_t i, struct err *e)
{
	*reused = 0;
	if (o->conns && o->conns[i]) {
		*c = o->conns[i];
		o->conns[i] = NULL;
		*reused = 1;
		ssh_set_deadline(*c, o->deadline_ms);
		return 0;
	}
	return observe_connect(c, o, &o->hosts->hosts[i], e);
}

void observe_session_put(const struct observe_opts *o, size_t i, struct ssh_conn *c)
{
	if (!o->conns || !c || ssh_broken(c, NULL)) {
		ssh_disconnect(c);
		return;
	}
	ssh_disconnect(o->conns[i]);
	o->conns[i] = c;
}

/* Room for other descriptors than the sessions: the repository, probes, logs. */
#define FD_SPARE 64

int observe_sessions_keep(struct observe_opts *o, unsigned long long *need, unsigned long long *limit,
			  struct err *e)
{
	size_t n = o->hosts->nhosts;
	unsigned long long want = (unsigned long long)n + FD_SPARE, have = fd_limit();

	if (need)
		*need = want;
	if (limit)
		*limit = have;
	if (o->conns)
		return 0;
	if (have < want)
		return 1;
	if (!(o->conns = calloc(n ? n : 1, sizeof(*o->conns))))
		return err_nomem(e);
	return 0;
}

static int close_one(void *ctx, void **slot, size_t i, struct err *e)
{
	struct ssh_conn **conns = ctx;

	(void)slot;
	(void)e;
	ssh_disconnect(conns[i]);
	conns[i] = NULL;
	return 0;
}

void observe_sessions_close(struct observe_opts *o)
{
	struct err ignore = ERR_INIT;
	size_t i, n;

	if (!o->conns)
		return;
	n = o->hosts ? o->hosts->nhosts : 0;
	/* Each close waits on its peer: in parallel, as they were opened. */
	if (pool_run(n, o->parallel > 0 ? o->parallel : 32, close_one, NULL, o->conns, &ignore) < 0)
		for (i = 0; i < n; i++)
			close_one(o->conns, NULL, i, &ignore);
	free(o->conns);
	o->conns = NULL;
}

int observe_fleet(struct obs_host **out, size_t *n, const struct observe_opts *o, struct err *e)
{
	struct run run;
	size_t nh = o->hosts->nhosts;
	int rc;

	*out = NULL;
	*n = 0;
	memset(&run, 0, sizeof(run));
	run.o = o;
	run.hosts = calloc(nh ? nh : 1, sizeof(*run.hosts));
	if (!run.hosts)
		return err_nomem(e);
	if (pthread_mutex_init(&run.mu, NULL) != 0) {
		free(run.hosts);
		return err_set(e, ROTOR_ERROR, "cannot create a mutex");
	}
	rc = pool_run(nh, o->parallel > 0 ? o->parallel : 32, observe_one, NULL, &run, e);
	pthread_mutex_destroy(&run.mu);
	if (rc < 0) {
		obs_hosts_free(run.hosts, nh);
		return rc;
	}
	*out = run.hosts;
	*n = nh;
	return 0;
}

void obs_hosts_free(struct obs_host *h, size_t n)
{
	size_t i, j;

	for (i = 0; h && i < n; i++) {
		free(h[i].name);
		free(h[i].address);
		free(h[i].error);
		free(h[i].refused);
		free(h[i].host_key);
		for (j = 0; j < h[i].nroles; j++)
			free(h[i].roles[j].identity);
		free(h[i].roles);
		for (j = 0; j < h[i].nfiles; j++)
			obs_file_release(&h[i].files[j]);
		free(h[i].files);
		ssh_strays_free(h[i].strays, h[i].nstrays);
	}
	free(h);
}
