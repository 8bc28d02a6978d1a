/*
 * spec.c -- shared names, and the two small files:
 * rotor.yaml (repository settings) and rotation.yaml (the desired phase).
 * chain.yaml, hosts.yaml and manifest.yaml live in spec_chain.c,
 * spec_hosts.c and spec_manifest.c; the checking helpers in spec_util.c.
 *
 * The exact shape of each file is in schemas/<file>.json; every rule
 * here has its twin there (tests/schema/agree.py keeps them honest).
 */
#include "reconcile/spec/spec_int.h"

#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- names ---- */

int spec_valid_leaf_name(const char *s)
{
	return s && chk_leaf_name(s, strlen(s));
}

const char *spec_phase_name(enum spec_phase p)
{
	switch (p) {
	case SPEC_PHASE_STABLE:
		return "stable";
	case SPEC_PHASE_TRUST:
		return "trust";
	case SPEC_PHASE_SERVERS:
		return "servers";
	case SPEC_PHASE_CLIENTS:
		return "clients";
	}
	return "unknown";
}

const char *spec_cert_role_name(enum cert_role r)
{
	switch (r) {
	case CERT_ROLE_ROOT:
		return "root";
	case CERT_ROLE_SERVER_CA:
		return "server-ca";
	case CERT_ROLE_CLIENT_CA:
		return "client-ca";
	case CERT_ROLE_SERVER:
		return "server";
	case CERT_ROLE_CLIENT:
		return "client";
	}
	return "unknown";
}

/* ---- the common loader frame ---- */

int spec_load_any(void **out, spec_decode_fn dec, spec_free_fn fr, const char *path, const char *data,
		  size_t len, struct diags *d)
{
	struct diags local = { NULL, 0, 0 };
	struct ydoc *doc = NULL;
	struct vctx v;
	void *obj = NULL;
	int rc;

	if (out)
		*out = NULL;
	vctx_init(&v, d ? d : &local, path);
	rc = ydoc_parse(&doc, data, len, &v.s);
	if (rc == 0)
		obj = dec(&v, ydoc_root(doc));
	rc = vctx_finish(&v, rc);
	if (rc == 0 && obj && out) {
		*out = obj;
		obj = NULL;
	} else if (rc == 0 && !obj) {
		rc = ROTOR_ENOMEM;
	}
	fr(obj);
	ydoc_free(doc);
	diags_release(&local);
	return rc;
}

/* ---- rotor.yaml ---- */

static int get_local_path(struct vctx *v, const struct ynode *n, const char *where, char **dst)
{
	const char *s, *why;
	char q[96];
	int rc = vstr(v, n, where, 1, 4096, &s);

	if (rc <= 0)
		return rc;
	if ((why = chk_local_path(s, n->len))) {
		yquote(q, sizeof(q), s, n->len, 40);
		vreport(v, n, where, "%s %s", q, why);
		return -1;
	}
	vdup(v, dst, s);
	return 1;
}

static int get_git_name(struct vctx *v, const struct ynode *n, const char *where, const char *what, char **dst)
{
	const char *s, *why;
	char q[96];
	int rc = vstr(v, n, where, 1, 200, &s);

	if (rc <= 0)
		return rc;
	if ((why = chk_git_name(s, n->len))) {
		yquote(q, sizeof(q), s, n->len, 40);
		vreport(v, n, where, "%s is not a valid git %s: it %s", q, what, why);
		return -1;
	}
	vdup(v, dst, s);
	return 1;
}

/* ssh.connect_timeout: 1..600 seconds written Ns or Nm. */
static int get_timeout(struct vctx *v, const struct ynode *n, const char *where, int *out)
{
	char q[96];
	long val = 0;
	size_t i;

	if (!n)
		return 0;
	if (n->bad)
		return -1;
	if (n->kind != YNODE_SCALAR || n->type != YS_STR) {
		vtype(v, n, where, "a duration like 10s or 2m");
		return -1;
	}
	yquote(q, sizeof(q), n->text, n->len, 40);
	if (n->len < 2 || n->len > 4 || n->text[0] < '1' || n->text[0] > '9' ||
	    (n->text[n->len - 1] != 's' && n->text[n->len - 1] != 'm'))
		goto bad;
	for (i = 0; i + 1 < n->len; i++) {
		if (n->text[i] < '0' || n->text[i] > '9')
			goto bad;
		val = val * 10 + (n->text[i] - '0');
	}
	if (n->text[n->len - 1] == 'm')
		val *= 60;
	if (val > 600) {
		vreport(v, n, where, "%s is longer than 10 minutes", q);
		return -1;
	}
	*out = (int)val;
	return 1;
bad:
	vreport(v, n, where, "invalid duration %s (expected seconds or minutes, like 10s or 2m)", q);
	return -1;
}

static void config_free_any(void *p)
{
	spec_config_free(p);
}

static void *config_decode(struct vctx *v, const struct ynode *root)
{
	static const struct vkey top[] = { { "version", 1 }, { "secrets", 1 }, { "git", 0 }, { "ssh", 0 },
					   { "parallel", 0 } };
	static const struct vkey secrets[] = { { "key_file", 1 }, { "key_id", 0 } };
	static const struct vkey git[] = { { "remote", 0 }, { "main", 0 } };
	static const struct vkey ssh[] = { { "user", 0 },	 { "become", 0 }, { "identity", 0 },
					   { "known_hosts", 0 }, { "port", 0 },	  { "connect_timeout", 0 } };
	static const char *const become[] = { "none", "sudo" };
	const struct ynode *t[5], *s[2], *g[2], *h[6];
	struct rotor_config *c = calloc(1, sizeof(*c));
	const char *str;
	char q[96];
	int i;

	if (!c) {
		v->nomem = 1;
		return NULL;
	}
	c->version = 1;
	c->ssh_port = 22;
	c->ssh_connect_timeout_s = 10;
	c->parallel = 32;
	vdup(v, &c->git_remote, "origin");
	vdup(v, &c->git_main, "main");
	vdup(v, &c->ssh_known_hosts, "~/.ssh/known_hosts");

	if (vmap(v, root, "", top, 5, t) < 0)
		return c;
	if (vint(v, t[0], "version", INT_MIN, INT_MAX, &i) > 0) {
		if (i != 1)
			vreport(v, t[0], "version", "unsupported version %d (this rotor reads version 1)", i);
		c->version = i;
	}
	if (t[1] && vmap(v, t[1], "secrets", secrets, 2, s) == 0) {
		get_local_path(v, s[0], "secrets.key_file", &c->key_file);
		if (vstr(v, s[1], "secrets.key_id", 1, 64, &str) > 0) {
			if (s[1]->len != 16 || !chk_hex(str, s[1]->len, 0)) {
				yquote(q, sizeof(q), str, s[1]->len, 40);
				vreport(v, s[1], "secrets.key_id", "%s is not 16 lowercase hex digits", q);
			} else {
				vdup(v, &c->key_id, str);
			}
		}
	}
	if (t[2] && vmap(v, t[2], "git", git, 2, g) == 0) {
		get_git_name(v, g[0], "git.remote", "remote name", &c->git_remote);
		get_git_name(v, g[1], "git.main", "branch name", &c->git_main);
	}
	if (t[3] && vmap(v, t[3], "ssh", ssh, 6, h) == 0) {
		if (vstr(v, h[0], "ssh.user", 1, 64, &str) > 0) {
			if (!chk_posix_name(str, h[0]->len)) {
				yquote(q, sizeof(q), str, h[0]->len, 40);
				vreport(v, h[0], "ssh.user", "%s is not a valid user name (" POSIX_NAME_RULE ")", q);
			} else {
				vdup(v, &c->ssh_user, str);
			}
		}
		if (venum(v, h[1], "ssh.become", become, 2, &i) > 0)
			c->ssh_become_sudo = i;
		get_local_path(v, h[2], "ssh.identity", &c->ssh_identity);
		get_local_path(v, h[3], "ssh.known_hosts", &c->ssh_known_hosts);
		vint(v, h[4], "ssh.port", 1, 65535, &c->ssh_port);
		get_timeout(v, h[5], "ssh.connect_timeout", &c->ssh_connect_timeout_s);
	}
	vint(v, t[4], "parallel", 1, 1024, &c->parallel);
	return c;
}

int spec_load_config(struct rotor_config **out, const char *path, const char *data, size_t len,
		     struct diags *d)
{
	void *p = NULL;
	int rc = spec_load_any(&p, config_decode, config_free_any, path, data, len, d);

	if (out)
		*out = p;
	else
		config_free_any(p);
	return rc;
}

void spec_config_free(struct rotor_config *c)
{
	if (!c)
		return;
	free(c->key_file);
	free(c->key_id);
	free(c->git_remote);
	free(c->git_main);
	free(c->ssh_user);
	free(c->ssh_identity);
	free(c->ssh_known_hosts);
	free(c);
}

/* ---- rotation.yaml ---- */

static const char *const phase_names[] = { "stable", "trust", "servers", "clients" };

static void rotation_free_any(void *p)
{
	spec_rotation_free(p);
}

static void *rotation_decode(struct vctx *v, const struct ynode *root)
{
	static const struct vkey keys[] = { { "generation", 0 }, { "target", 0 }, { "phase", 1 } };
	const struct ynode *k[3];
	struct rotation_spec *r = calloc(1, sizeof(*r));
	int gen_ok = 1, tgt_ok, ph, phase_ok;

	if (!r) {
		v->nomem = 1;
		return NULL;
	}
	if (vmap(v, root, "", keys, 3, k) < 0)
		return r;
	gen_ok = vint(v, k[0], "generation", 0, 9999, &r->generation) >= 0;
	tgt_ok = vint(v, k[1], "target", 1, 9999, &r->target) > 0;
	phase_ok = venum(v, k[2], "phase", phase_names, 4, &ph) > 0;
	if (!phase_ok)
		return r;
	r->phase = (enum spec_phase)ph;
	if (r->phase == SPEC_PHASE_STABLE && k[1]) {
		vreport(v, k[1], "target", "not allowed when phase is stable (drop it once a rotation is finished)");
	} else if (r->phase != SPEC_PHASE_STABLE && !k[1]) {
		vreport(v, root, "", "missing required key \"target\" (phase %s needs the generation being rolled in)",
			phase_names[ph]);
	} else if (r->phase != SPEC_PHASE_STABLE && tgt_ok && gen_ok && r->target <= r->generation) {
		vreport(v, k[1], "target", "%d must be greater than generation (%d)", r->target, r->generation);
	}
	return r;
}

int spec_load_rotation(struct rotation_spec **out, const char *path, const char *data, size_t len,
		       struct diags *d)
{
	void *p = NULL;
	int rc = spec_load_any(&p, rotation_decode, rotation_free_any, path, data, len, d);

	if (out)
		*out = p;
	else
		rotation_free_any(p);
	return rc;
}

void spec_rotation_free(struct rotation_spec *r)
{
	free(r);
}

int spec_rotation_emit(const struct rotation_spec *r, struct buf *out)
{
	int rc;

	if (!r || !out || r->generation < 0 || r->generation > 9999 || (unsigned)r->phase > SPEC_PHASE_CLIENTS)
		return ROTOR_EINVALID;
	if (r->phase == SPEC_PHASE_STABLE ? r->target != 0
					  : (r->target <= r->generation || r->target > 9999))
		return ROTOR_EINVALID;
	rc = buf_printf(out,
			"# rotation.yaml: where this environment's certificate rotation should be.\n"
			"# phase moves stable -> trust -> servers -> clients -> stable, one merge\n"
			"# request at a time (rotor rotate start / next / abandon, rotor rollback).\n"
			"generation: %d\n",
			r->generation);
	if (rc == 0 && r->phase != SPEC_PHASE_STABLE)
		rc = buf_printf(out, "target: %d\n", r->target);
	if (rc == 0)
		rc = buf_printf(out, "phase: %s\n", phase_names[r->phase]);
	return rc;
}
