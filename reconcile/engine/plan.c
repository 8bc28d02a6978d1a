/*
 * plan.c -- the path from live to desired, per-file changes, gates and
 * the pair invariant (see plan.h).
 *
 * Trust bundles depend only on the step, never on the host, so the
 * invariant over every client/server pair reduces to: every server's
 * leaf (in either state of a step) verifies under the clients' bundle
 * (in either state), and every client's leaf under the servers' bundle.
 * That is linear in hosts and covers all pairs.
 */
#include "reconcile/engine/plan.h"
#include "reconcile/tls/key.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "reconcile/engine/files.h"
#include "reconcile/pki/pki.h"
#include "reconcile/tls/verify.h"

#define MAX_FPS (4 + SPEC_MAX_EXTERNAL_CAS)

/* ---- material ---- */

const struct material_cert *material_find(const struct material_set *ms, int gen, enum cert_role role,
					  const char *name)
{
	size_t i, j;

	for (i = 0; i < ms->n; i++) {
		if (ms->v[i].generation != gen)
			continue;
		for (j = 0; j < ms->v[i].ncerts; j++) {
			const struct material_cert *c = &ms->v[i].certs[j];

			if (c->role == role && (!name || (c->name && strcmp(c->name, name) == 0)))
				return c;
		}
	}
	return NULL;
}

/* Is c a certificate of a past generation (known from history only)? */
static int material_past(const struct material_set *ms, const struct material_cert *c)
{
	size_t i;

	for (i = 0; i < ms->n; i++)
		if (c >= ms->v[i].certs && c < ms->v[i].certs + ms->v[i].ncerts)
			return ms->v[i].past;
	return 0;
}

void material_release(struct material_set *ms)
{
	size_t i, j;

	for (i = 0; i < ms->n; i++) {
		for (j = 0; j < ms->v[i].ncerts; j++) {
			struct material_cert *c = &ms->v[i].certs[j];

			free(c->name);
			free(c->pem);
			free(c->fingerprint);
			free(c->key_pem);
		}
		free(ms->v[i].certs);
		free(ms->v[i].crl_pem);
	}
	free(ms->v);
	ms->v = NULL;
	ms->n = 0;
	for (i = 0; i < ms->next; i++) {
		free(ms->ext[i].name);
		free(ms->ext[i].pem);
		free(ms->ext[i].fingerprint);
	}
	free(ms->ext);
	ms->ext = NULL;
	ms->next = 0;
}

/* ---- what a file holds, as a list of certificates ---- */

struct want {
	const struct material_cert *c[MAX_FPS];
	size_t n;
	int key;                /* a key file: c[0] is the leaf whose key it holds */
	int crl;                /* a crl file: the CRLs of crl_gen[] (newest first) */
	const char *crl_pem[2];
	int crl_gen[2];
	size_t ncrl;
};

static enum cert_role leaf_role(enum layout_side s)
{
	return s == LAYOUT_SIDE_SERVER ? CERT_ROLE_SERVER : CERT_ROLE_CLIENT;
}

static enum cert_role ca_role(enum layout_side s)
{
	return s == LAYOUT_SIDE_SERVER ? CERT_ROLE_SERVER_CA : CERT_ROLE_CLIENT_CA;
}

/* A server's CRL file: the CRLs of every generation of its trust bundle (client CAs and their roots). */
static int want_crl(struct want *w, const struct material_set *ms, enum layout_side side, struct step_gens g,
		    struct err *e)
{
	size_t i, j;

	w->crl = 1;
	if (side != LAYOUT_SIDE_CLIENT)
		return err_set(e, ROTOR_EINVALID, "a crl file belongs to a server role (rotor signs CRLs of client CAs only)");
	for (i = 0; i < 2; i++) {
		if (!g.bundle[i])
			continue;
		for (j = 0; j < ms->n && ms->v[j].generation != g.bundle[i]; j++)
			;
		if (j == ms->n || !ms->v[j].crl_pem)
			return err_set(e, ROTOR_EINVALID, "generation %d has no CRLs (crl/root.crl, crl/client-ca.crl): "
				       "rotor client crl signs them", g.bundle[i]);
		w->crl_gen[w->ncrl] = g.bundle[i];
		w->crl_pem[w->ncrl++] = ms->v[j].crl_pem;
	}
	return 0;
}

/* What file f (of a role using identity) must hold at step s; ROTOR_EINVALID names what is missing. */
static int want_for(struct want *w, const struct material_set *ms, enum spec_content content,
		    enum layout_side side, const char *identity, enum phase_step s, int a, int b, struct err *e)
{
	struct step_gens g = phase_step_gens(s, a, b);
	int gen = side == LAYOUT_SIDE_SERVER ? g.server_leaf : g.client_leaf;
	const struct material_cert *c;
	int i;

	memset(w, 0, sizeof(*w));
	if (content == SPEC_CONTENT_CRL)
		return want_crl(w, ms, side, g, e);
	if (content == SPEC_CONTENT_TRUST) {
		for (i = 0; i < 2; i++) {
			if (!g.bundle[i])
				continue;
			if (!(c = material_find(ms, g.bundle[i], CERT_ROLE_ROOT, NULL)))
				return err_set(e, ROTOR_EINVALID, "generation %d has no root certificate", g.bundle[i]);
			w->c[w->n++] = c;
			if (!(c = material_find(ms, g.bundle[i], ca_role(side), NULL)))
				return err_set(e, ROTOR_EINVALID, "generation %d has no %s CA", g.bundle[i],
					       side == LAYOUT_SIDE_SERVER ? "server" : "client");
			w->c[w->n++] = c;
		}
		/* External CAs: the same at every step, after the generations' (trust.h). */
		for (i = 0; i < (int)ms->next && w->n < MAX_FPS; i++)
			if (ms->ext[i].ext_sides & (1u << side))
				w->c[w->n++] = &ms->ext[i];
		return 0;
	}
	if (!identity)
		return err_set(e, ROTOR_EINVALID, "a role without identity cannot hold a leaf");
	if (!(c = material_find(ms, gen, leaf_role(side), identity)))
		return err_set(e, ROTOR_EINVALID, "generation %d has no %s certificate for %s", gen,
			       side == LAYOUT_SIDE_SERVER ? "server" : "client", identity);
	w->c[w->n++] = c;
	if (content == SPEC_CONTENT_KEY) {
		w->key = 1;
		return 0;
	}
	if (content == SPEC_CONTENT_LEAF_CHAIN) {
		if (!(c = material_find(ms, gen, ca_role(side), NULL)))
			return err_set(e, ROTOR_EINVALID, "generation %d has no %s CA", gen,
				       side == LAYOUT_SIDE_SERVER ? "server" : "client");
		w->c[w->n++] = c;
	}
	return 0;
}

static int want_equal(const struct want *x, const struct want *y)
{
	size_t i;

	if (x->n != y->n || x->key != y->key || x->crl != y->crl || x->ncrl != y->ncrl)
		return 0;
	for (i = 0; i < x->ncrl; i++)
		if (strcmp(x->crl_pem[i], y->crl_pem[i]) != 0)
			return 0;
	for (i = 0; i < x->n; i++)
		if (strcmp(x->c[i]->fingerprint, y->c[i]->fingerprint) != 0)
			return 0;
	return 1;
}

static const char *role_word(enum cert_role r)
{
	return spec_cert_role_name(r);
}

/* The words built in b, or NULL when an append failed (out of memory: the caller says so). */
static char *words_done(struct buf *b)
{
	if (b->err) {
		buf_release(b);
		return NULL;
	}
	return buf_detach(b);
}

/* "g2 server pg1 + g2 server-ca", "key of g2 client app", "g2 root, g2 client-ca, g1 root, g1 client-ca". */
static char *want_words(const struct want *w, const struct material_set *ms)
{
	struct buf b = BUF_INIT;
	size_t i, j, k;

	for (i = 0; i < w->ncrl; i++)
		buf_printf(&b, "%sg%d CRLs", i ? ", " : "", w->crl_gen[i]);
	for (i = 0; i < w->n; i++) {
		int gen = 0;

		for (j = 0; j < ms->n && !gen; j++)
			for (k = 0; k < ms->v[j].ncerts; k++)
				if (&ms->v[j].certs[k] == w->c[i])
					gen = ms->v[j].generation;
		if (w->c[i]->ext_sides)
			buf_printf(&b, "%sexternal %s", i == 0 ? "" : ", ", w->c[i]->name);
		else if (w->key)
			buf_printf(&b, "key of g%d %s %s", gen, role_word(w->c[i]->role), w->c[i]->name);
		else if (w->c[i]->role == CERT_ROLE_SERVER || w->c[i]->role == CERT_ROLE_CLIENT)
			buf_printf(&b, "g%d %s %s", gen, role_word(w->c[i]->role), w->c[i]->name);
		else
			buf_printf(&b, "%sg%d %s", i == 0 ? "" : (w->c[i]->role == CERT_ROLE_ROOT ? ", " : " + "), gen,
				   role_word(w->c[i]->role));
		if (i == 0 && w->n > 1 && (w->c[0]->role == CERT_ROLE_SERVER || w->c[0]->role == CERT_ROLE_CLIENT))
			buf_puts(&b, " + chain");
		if (i == 0 && w->n > 1 && (w->c[0]->role == CERT_ROLE_SERVER || w->c[0]->role == CERT_ROLE_CLIENT))
			break;
	}
	return words_done(&b);
}

/* The observed contents of f in words (and whether it equals w). */
static char *observed_words(const struct obs_file *f, const struct obs_file *leaf_file)
{
	struct buf b = BUF_INIT;
	size_t i;

	if (!f->present)
		return words_done(&b);
	if (f->problem) {
		buf_printf(&b, "unusable (%s)", f->problem);
		return words_done(&b);
	}
	if (f->content == SPEC_CONTENT_CRL) {
		buf_printf(&b, "%zu CRL%s (sha256 %.12s...)", f->ncrls, f->ncrls == 1 ? "" : "s", f->sha256);
		return words_done(&b);
	}
	if (f->content == SPEC_CONTENT_KEY) {
		if (f->key == OBS_KEY_MATCH && leaf_file && leaf_file->ncerts && leaf_file->certs[0].generation)
			buf_printf(&b, "key of g%d %s %s", leaf_file->certs[0].generation,
				   role_word(leaf_file->certs[0].role), leaf_file->certs[0].name);
		else
			buf_printf(&b, "a key that does not match the desired leaf");
		return words_done(&b);
	}
	if (f->content == SPEC_CONTENT_LEAF_CHAIN && f->ncerts == 2 && f->certs[0].generation &&
	    f->certs[1].generation == f->certs[0].generation &&
	    (f->certs[1].role == CERT_ROLE_SERVER_CA || f->certs[1].role == CERT_ROLE_CLIENT_CA)) {
		/* A leaf with its own CA, worded as the desired side words it. */
		buf_printf(&b, "g%d %s %s + chain", f->certs[0].generation, role_word(f->certs[0].role), f->certs[0].name);
		return words_done(&b);
	}
	for (i = 0; i < f->ncerts; i++) {
		const struct obs_cert *c = &f->certs[i];

		if (c->generation == OBS_GEN_EXTERNAL)
			buf_printf(&b, "%sexternal %s", i ? ", " : "", c->name);
		else if (c->generation)
			buf_printf(&b, "%sg%d %s%s%s", i ? ", " : "", c->generation, role_word(c->role),
				   (c->role == CERT_ROLE_SERVER || c->role == CERT_ROLE_CLIENT) ? " " : "",
				   (c->role == CERT_ROLE_SERVER || c->role == CERT_ROLE_CLIENT) ? c->name : "");
		else
			buf_printf(&b, "%sunknown %.23s...", i ? ", " : "", c->fingerprint);
	}
	return words_done(&b);
}

/* Does the observed file hold exactly w? */
static int observed_equals(const struct obs_file *f, const struct obs_file *leaf_file, const struct want *w)
{
	size_t i;

	if (!f->present || f->problem)
		return 0;
	if (w->crl) {
		struct buf all = BUF_INIT;
		char hex[65];
		int same;

		for (i = 0; i < w->ncrl; i++)
			buf_puts(&all, w->crl_pem[i]);
		same = !all.err && pki_sha256_hex(hex, all.ptr ? all.ptr : "", all.len) == 0 && strcmp(hex, f->sha256) == 0;
		buf_release(&all);
		return same;
	}
	if (w->key)
		return f->key == OBS_KEY_MATCH && leaf_file && leaf_file->present && !leaf_file->problem &&
		       leaf_file->ncerts > 0 && strcmp(leaf_file->certs[0].fingerprint, w->c[0]->fingerprint) == 0;
	if (f->ncerts != w->n)
		return 0;
	if (f->content == SPEC_CONTENT_TRUST) {
		/* A trust store is a set: the same certificates in another order
		 * (a walk back lists the generations the other way round) need
		 * no write, and in switch mode no new directory, whose leaf key
		 * may be of a generation no longer in the repository. */
		for (i = 0; i < w->n; i++) {
			size_t j;

			for (j = 0; j < f->ncerts; j++)
				if (strcmp(f->certs[j].fingerprint, w->c[i]->fingerprint) == 0)
					break;
			if (j == f->ncerts)
				return 0;
		}
		return 1;
	}
	for (i = 0; i < w->n; i++)
		if (strcmp(f->certs[i].fingerprint, w->c[i]->fingerprint) != 0)
			return 0;
	return 1;
}

/* The mode the layout row or hosts.yaml's `files:` gives; else 0600 for a file that holds a private key, else 0644. */
static int default_mode(const struct obs_file *f)
{
	if (f->want_mode > 0)
		return f->want_mode;
	return f->content == SPEC_CONTENT_KEY || f->form == LAYOUT_FORM_P12 ? 0600 : 0644;
}

/* ---- lists of strings ---- */

static int strv_vadd(char ***v, size_t *n, const char *fmt, va_list ap) ROTOR_PRINTF(3, 0);
static int strv_vadd(char ***v, size_t *n, const char *fmt, va_list ap)
{
	struct buf b = BUF_INIT;
	char **nv;

	if (buf_vprintf(&b, fmt, ap) < 0 || !(nv = realloc(*v, (*n + 1) * sizeof(*nv)))) {
		buf_release(&b);
		return ROTOR_ENOMEM;
	}
	*v = nv;
	nv[(*n)++] = buf_detach(&b);
	return 0;
}

static int strv_add(char ***v, size_t *n, const char *fmt, ...) ROTOR_PRINTF(3, 4);
static int strv_add(char ***v, size_t *n, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = strv_vadd(v, n, fmt, ap);
	va_end(ap);
	return rc;
}

int plan_add_note(struct plan *p, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = strv_vadd(&p->notes, &p->nnotes, fmt, ap);
	va_end(ap);
	return rc;
}

int plan_add_broken(struct plan *p, struct plan_step *st, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = strv_vadd(&st->broken, &st->nbroken, fmt, ap);
	va_end(ap);
	if (rc == 0)
		p->refused = 1;
	return rc;
}

static void strv_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		free(v[i]);
	free(v);
}

/* ---- where is the live state? ---- */

/*
 * The steps a host fits.  A host that holds none of its files yet (a new
 * host, or the very first deployment) has no connection to break: it
 * fits every step and simply receives the desired one.
 */
static unsigned host_mask(const struct obs_host *h, int a, int b, int replace_unknown)
{
	if (obs_host_empty(h, replace_unknown))
		return ~0u;
	return observe_phase_mask(h->files, h->nfiles, a, b);
}

/*
 * Find the step every host fits; failing that, two adjacent steps that
 * every host fits one of (an apply that stopped half-way): live is the
 * lower one and partial is set.
 */
static int place_live(const struct plan_opts *o, int a, int b, enum phase_step *live, int *partial)
{
	size_t i;
	int s, pass, last = b ? STEP_STABLE_B : STEP_STABLE_A;

	for (pass = 0; pass < 2; pass++)
		for (s = 0; s <= last - pass; s++) {
			unsigned want = pass == 0 ? 1u << s : (1u << s) | (1u << (s + 1));
			int all = 1;

			for (i = 0; i < o->nobserved && all; i++)
				all = (host_mask(&o->observed[i], a, b, o->replace_unknown) & want) != 0;
			if (all) {
				*live = (enum phase_step)s;
				*partial = pass;
				return 1;
			}
		}
	return 0;
}

/* ---- the invariant ---- */

static int bundle_bytes(struct buf *out, const struct material_set *ms, enum layout_side peer,
			enum phase_step s, int a, int b, struct err *e)
{
	struct want w;
	size_t i;
	int rc;

	if ((rc = want_for(&w, ms, SPEC_CONTENT_TRUST, peer, NULL, s, a, b, e)) < 0)
		return rc;
	for (i = 0; i < w.n; i++)
		if (buf_puts(out, w.c[i]->pem) < 0)
			return err_nomem(e);
	return 0;
}

int plan_bundle_bytes(struct buf *out, const struct material_set *ms, enum layout_side side, enum phase_step s,
		      int a, int b, struct err *e)
{
	return bundle_bytes(out, ms, side, s, a, b, e);
}

static int leaf_chain_bytes(struct buf *out, const struct material_set *ms, enum layout_side side,
			    const char *identity, enum phase_step s, int a, int b, struct err *e)
{
	struct want w;
	size_t i;
	int rc;

	if ((rc = want_for(&w, ms, SPEC_CONTENT_LEAF_CHAIN, side, identity, s, a, b, e)) < 0)
		return rc;
	for (i = 0; i < w.n; i++)
		if (buf_puts(out, w.c[i]->pem) < 0)
			return err_nomem(e);
	return 0;
}

/*
 * The trust bundles of one step's checks, parsed once: a side (servers'
 * or clients') at a state has one bundle for every host.  Two sides and
 * two states at most.
 */
struct trust_memo {
	int server;
	enum phase_step state;
	struct verify_trust *t;
};
#define TRUST_MEMO_MAX 4

static int trust_for(const struct verify_trust **out, struct trust_memo *memo, const struct plan_opts *o, int server,
		     enum phase_step state, int a, int b, struct err *e)
{
	struct buf bundle = BUF_INIT;
	size_t i;
	int rc;

	for (i = 0; i < TRUST_MEMO_MAX && memo[i].t; i++)
		if (memo[i].server == server && memo[i].state == state) {
			*out = memo[i].t;
			return 0;
		}
	if (i == TRUST_MEMO_MAX)
		return err_set(e, ROTOR_ERROR, "plan: more trust bundles in one step than two sides at two states");
	rc = bundle_bytes(&bundle, o->material, server ? LAYOUT_SIDE_SERVER : LAYOUT_SIDE_CLIENT, state, a, b, e);
	if (rc == 0)
		rc = verify_trust_new(&memo[i].t, bundle.ptr ? bundle.ptr : "", bundle.len, e);
	buf_release(&bundle);
	if (rc < 0)
		return rc;
	memo[i].server = server;
	memo[i].state = state;
	*out = memo[i].t;
	return 0;
}

/* Is the step from -> to safe for every pair?  Broken pairs go into st->broken. */
static int check_pairs(struct plan_step *st, const struct plan_opts *o, int a, int b, struct err *e)
{
	enum phase_step states[2] = { st->from, st->to };
	struct trust_memo memo[TRUST_MEMO_MAX];
	struct buf leaf = BUF_INIT;
	struct verify_req vr;
	char why[256];
	size_t h, r;
	int sc, sv, ok, rc = 0;

	memset(memo, 0, sizeof(memo));
	for (h = 0; h < o->hosts->nhosts && rc == 0; h++) {
		const struct host_spec *hs = &o->hosts->hosts[h];

		for (r = 0; r < hs->nroles && rc == 0; r++) {
			const struct host_role *role = &hs->roles[r];
			int server = role->role == SPEC_ROLE_SERVER;

			if (!role->identity)
				continue;
			for (sv = 0; sv < 2 && rc == 0; sv++)
				for (sc = 0; sc < 2 && rc == 0; sc++) {
					/* Server leaf at states[sv] under the clients' bundle at states[sc], and the other way. */
					enum phase_step leaf_state = server ? states[sv] : states[sc];
					enum phase_step bundle_state = server ? states[sc] : states[sv];
					const struct verify_trust *trust = NULL;

					if (states[0] == states[1] && (sc || sv))
						continue;   /* one state: one check per role */
					buf_release(&leaf);
					if ((rc = trust_for(&trust, memo, o, server, bundle_state, a, b, e)) < 0 ||
					    (rc = leaf_chain_bytes(&leaf, o->material, server ? LAYOUT_SIDE_SERVER : LAYOUT_SIDE_CLIENT,
								   role->identity, leaf_state, a, b, e)) < 0)
						break;
					memset(&vr, 0, sizeof(vr));
					vr.leaf_pem = leaf.ptr;
					vr.leaf_len = leaf.len;
					vr.purpose = server ? VERIFY_SERVER : VERIFY_CLIENT;
					vr.host = server ? hs->address : NULL;
					vr.at = o->now;
					if ((rc = verify_chain_with(&ok, why, sizeof(why), &vr, trust, e)) < 0)
						break;
					if (!ok && strv_add(&st->broken, &st->nbroken,
							    server ? "clients at %s cannot verify server %s on %s (%s) at %s: %s"
								   : "servers at %s cannot verify client %s on %s (%s) at %s: %s",
							    phase_step_name(bundle_state), role->identity, hs->name, hs->address,
							    phase_step_name(leaf_state), why) < 0)
						rc = err_nomem(e);
				}
		}
	}
	for (h = 0; h < TRUST_MEMO_MAX; h++)
		verify_trust_free(memo[h].t);
	buf_release(&leaf);
	return rc;
}

/* External peers gate a step that shows them leaves of the target generation. */
static int check_gates(struct plan_step *st, const struct plan_opts *o, int b)
{
	struct step_gens g = phase_step_gens(st->to, st->a, b);
	size_t i;

	for (i = 0; o->hosts && i < o->hosts->nexternal; i++) {
		const struct external_peer *x = &o->hosts->external[i];

		if (x->trusts_target)
			continue;
		if ((x->trusts_server && b && g.server_leaf == b) || (x->trusts_client && b && g.client_leaf == b))
			if (strv_add(&st->gates, &st->ngates,
				     "external %s trusts our %s certificates but hosts.yaml does not record "
				     "trusts_target: true (its bundle must hold generation %d first)",
				     x->name, x->trusts_server ? "server" : "client", b) < 0)
				return ROTOR_ENOMEM;
	}
	return 0;
}

/* ---- changes of one step ---- */

static int add_change(struct plan_step *st, size_t h, size_t f, enum plan_action act, char *from, char *to,
		      int mode, struct err *e)
{
	struct plan_change *nv = realloc(st->changes, (st->nchanges + 1) * sizeof(*nv));

	if (!nv || !to || !from) {
		free(from);
		free(to);
		return err_nomem(e);
	}
	st->changes = nv;
	nv[st->nchanges].host = h;
	nv[st->nchanges].file = f;
	nv[st->nchanges].action = act;
	nv[st->nchanges].from = from;
	nv[st->nchanges].to = to;
	nv[st->nchanges].mode = mode;
	st->nchanges++;
	return 0;
}

/* Changes that take every host from what it has (first step) or from `from` to `to`. */
static int step_changes(struct plan_step *st, const struct plan_opts *o, int first, struct err *e)
{
	size_t h, r, f;
	int rc;

	for (h = 0; h < o->nobserved; h++) {
		const struct obs_host *oh = &o->observed[h];

		for (r = 0; r < oh->nroles; r++) {
			const struct obs_role *role = &oh->roles[r];
			const struct obs_file *leaf_file = obs_role_leaf(oh, role);

			for (f = role->first; f < role->first + role->nfiles; f++) {
				const struct obs_file *of = &oh->files[f];
				struct want to, from;
				int mode = default_mode(of), same;

				if ((rc = want_for(&to, o->material, of->content, of->side, role->identity, st->to, st->a,
						   st->b, e)) < 0)
					return err_prefix(e, "%s: %s", oh->name, of->path);
				if (first) {
					same = observed_equals(of, leaf_file, &to);
					if (same && of->mode == mode)
						continue;
					rc = add_change(st, h, f, !of->present ? PLAN_CREATE : PLAN_CHANGE,
							observed_words(of, leaf_file), want_words(&to, o->material), mode, e);
					if (rc == 0 && same) {
						/* Only the mode differs. */
						char *m = NULL;
						struct buf b = BUF_INIT;

						buf_printf(&b, "mode %04o -> %04o", (unsigned)of->mode, (unsigned)mode);
						if (!(m = words_done(&b)))
							return err_nomem(e);
						free(st->changes[st->nchanges - 1].to);
						st->changes[st->nchanges - 1].to = m;
					}
				} else {
					if ((rc = want_for(&from, o->material, of->content, of->side, role->identity, st->from,
							   st->a, st->b, e)) < 0)
						return rc;
					if (want_equal(&from, &to))
						continue;
					rc = add_change(st, h, f, PLAN_CHANGE, want_words(&from, o->material),
							want_words(&to, o->material), mode, e);
				}
				if (rc < 0)
					return rc;
			}
		}
	}
	return 0;
}

static int add_step(struct plan *p, enum phase_step from, enum phase_step to, int a, int b)
{
	struct plan_step *nv = realloc(p->steps, (p->nsteps + 1) * sizeof(*nv));

	if (!nv)
		return ROTOR_ENOMEM;
	p->steps = nv;
	memset(&nv[p->nsteps], 0, sizeof(nv[0]));
	nv[p->nsteps].from = from;
	nv[p->nsteps].to = to;
	nv[p->nsteps].a = a;
	nv[p->nsteps].b = b;
	p->nsteps++;
	return 0;
}

int plan_build(struct plan *p, const struct plan_opts *o, struct err *e)
{
	const struct rotation_spec *rot = o->rotation;
	int (*cand)[2], ncand = 0, found = 0, c, s, step, rc = 0, first_a, first_b;
	size_t i, j;
	enum phase_step live = STEP_STABLE_A, desired = STEP_STABLE_A;
	int partial = 0;

	memset(p, 0, sizeof(*p));
	/* Servers nothing checks after a reload: one note per host, whatever else the plan says. */
	for (i = 0; i < o->hosts->nhosts; i++) {
		const struct host_spec *hs = &o->hosts->hosts[i];

		for (j = 0; j < hs->nroles && !(hs->roles[j].role == SPEC_ROLE_SERVER && hs->roles[j].probe_none); j++)
			;
		if (j < hs->nroles &&
		    strv_add(&p->notes, &p->nnotes, "%s: server not verified after a reload (probe: none)", hs->name) < 0)
			return err_nomem(e);
	}
	for (i = 0; i < o->nobserved; i++)
		if (!o->observed[i].reachable &&
		    strv_add(&p->problems, &p->nproblems, "%s is unreachable (%s): its state cannot be proved",
			     o->observed[i].name, o->observed[i].error ? o->observed[i].error : "?") < 0)
			return err_nomem(e);
	for (i = 0; i < o->nobserved; i++)
		if (o->observed[i].refused &&
		    strv_add(&p->problems, &p->nproblems, "%s: %s", o->observed[i].name, o->observed[i].refused) < 0)
			return err_nomem(e);
	if (p->nproblems)
		return 0;
	for (i = 0; o->replace_unknown && i < o->nobserved; i++)
		if (!obs_host_empty(&o->observed[i], 0) && obs_host_empty(&o->observed[i], 1) &&
		    strv_add(&p->notes, &p->nnotes, "%s holds only certificates of no generation: replaced "
			     "(--replace-unknown; clients that trust them will stop connecting)", o->observed[i].name) < 0)
			return err_nomem(e);

	/* The rotation lines the live state may be on, most likely first: every generation ever committed. */
	if (!(cand = calloc(2 * o->material->n + 2, sizeof(*cand))))
		return err_nomem(e);
	if (rot->target) {
		cand[ncand][0] = rot->generation;
		cand[ncand++][1] = rot->target;
	} else {
		cand[ncand][0] = rot->generation;
		cand[ncand++][1] = 0;
		for (i = o->material->n; i-- > 0;) {
			int x = o->material->v[i].generation;

			if (x == rot->generation)
				continue;
			cand[ncand][0] = x;          /* forward: finishing x -> G */
			cand[ncand++][1] = rot->generation;
			cand[ncand][0] = rot->generation; /* back: abandoning G -> x */
			cand[ncand++][1] = x;
		}
	}
	for (c = 0; c < ncand && !found; c++) {
		if (!place_live(o, cand[c][0], cand[c][1], &live, &partial))
			continue;
		found = 1;
		p->a = cand[c][0];
		p->b = cand[c][1];
		if (rot->target)
			desired = phase_step_of(rot->phase);
		else
			desired = p->a == rot->generation ? STEP_STABLE_A : STEP_STABLE_B;
	}
	first_a = cand[0][0];
	first_b = cand[0][1];
	free(cand);
	if (!found) {
		for (i = 0; i < o->nobserved; i++) {
			unsigned m = host_mask(&o->observed[i], first_a, first_b, o->replace_unknown);
			/* A first deployment over throwaway certificates: say how to replace them. */
			int only_unknown = !o->replace_unknown && obs_host_empty(&o->observed[i], 1);
			const char *why = NULL;
			size_t k;

			/* A file that could not be used (unreadable, a symbolic link...): say which. */
			for (k = 0; k < o->observed[i].nfiles && !why; k++)
				why = o->observed[i].files[k].problem;
			if (m == 0 && strv_add(&p->problems, &p->nproblems,
					       "%s fits no step of generation %d%s%.0d: drift (see rotor observe)%s%s%s",
					       o->observed[i].name, first_a, first_b ? " -> " : "", first_b,
					       only_unknown ? "; it holds only certificates of no generation: --replace-unknown "
							      "replaces them, rotor import adopts a chain in use" : "",
					       why ? "; " : "", why ? why : "") < 0)
				return err_nomem(e);
		}
		if (p->nproblems == 0 &&
		    strv_add(&p->problems, &p->nproblems,
			     "hosts are at steps more than one apart; no single step of generation %d%s%.0d fits them all",
			     first_a, first_b ? " -> " : "", first_b) < 0)
			return err_nomem(e);
		return 0;
	}
	/* Hosts on a generation the tree no longer holds: say where it is known from. */
	for (i = 0; i < o->material->n; i++) {
		int g = o->material->v[i].generation;

		if (o->material->v[i].past && (g == p->a || g == p->b) &&
		    strv_add(&p->notes, &p->nnotes, "generation %d is no longer in the tree (reverted or abandoned; its "
			     "certificates are known from history): the hosts walk back from it", g) < 0)
			return err_nomem(e);
	}
	p->live_known = 1;
	p->live = live;
	p->partial = partial;
	p->desired = desired;

	/* The path: adjacent steps (or one jump with no_path). */
	step = live;
	if (partial && desired <= live)
		step = live + 1;        /* hosts ahead go back first */
	if (o->no_path && (int)desired != step) {
		if ((rc = add_step(p, (enum phase_step)step, desired, p->a, p->b)) < 0)
			return err_nomem(e);
	} else if ((int)desired == step) {
		/* In sync on the line: still repair drift in modes or stragglers. */
		if ((rc = add_step(p, desired, desired, p->a, p->b)) < 0)
			return err_nomem(e);
	} else {
		int dir = (int)desired > step ? 1 : -1;

		for (s = step; s != (int)desired; s += dir)
			if ((rc = add_step(p, (enum phase_step)s, (enum phase_step)(s + dir), p->a, p->b)) < 0)
				return err_nomem(e);
	}
	for (i = 0; i < p->nsteps; i++) {
		if ((rc = step_changes(&p->steps[i], o, i == 0, e)) < 0 ||
		    (rc = check_pairs(&p->steps[i], o, p->a, p->b, e)) < 0 ||
		    (rc = check_gates(&p->steps[i], o, p->b)) < 0)
			return rc == ROTOR_ENOMEM ? err_nomem(e) : rc;
		if (p->steps[i].nbroken)
			p->refused = 1;
		p->nchanges += p->steps[i].nchanges;
	}
	/* A repair step with nothing to do is no step (but one with broken pairs stays: it holds why refused is set). */
	if (p->nsteps == 1 && p->steps[0].from == p->steps[0].to && p->steps[0].nchanges == 0 && p->steps[0].nbroken == 0) {
		strv_free(p->steps[0].broken, p->steps[0].nbroken);
		strv_free(p->steps[0].gates, p->steps[0].ngates);
		free(p->steps[0].changes);
		p->nsteps = 0;
	}
	for (i = 0; i < o->nobserved; i++) {
		int touched = 0;

		for (j = 0; j < p->nsteps && !touched; j++) {
			size_t k;

			for (k = 0; k < p->steps[j].nchanges && !touched; k++)
				touched = p->steps[j].changes[k].host == i;
		}
		p->nhosts_changed += (size_t)touched;
	}
	return 0;
}

void plan_release(struct plan *p)
{
	size_t i, j;

	for (i = 0; i < p->nsteps; i++) {
		for (j = 0; j < p->steps[i].nchanges; j++) {
			free(p->steps[i].changes[j].from);
			free(p->steps[i].changes[j].to);
		}
		free(p->steps[i].changes);
		strv_free(p->steps[i].broken, p->steps[i].nbroken);
		strv_free(p->steps[i].gates, p->steps[i].ngates);
	}
	free(p->steps);
	strv_free(p->problems, p->nproblems);
	strv_free(p->notes, p->nnotes);
	memset(p, 0, sizeof(*p));
}

/* ---- bytes for apply ---- */

/* Never prompt: a wrong passphrase is an error, not a question. */
static int decrypt_key(struct buf *out, const char *pem, const char *pass, int der, struct err *e)
{
	EVP_PKEY *k = NULL;
	int rc = key_decode(&k, pem, strlen(pem), pass, KEY_ENCRYPTED, e);

	if (rc == ROTOR_ESECRET)
		rc = err_set(e, ROTOR_ESECRET, "a private key does not decrypt with the secret key");
	if (rc == 0)
		rc = key_encode_as(out, k, der, e);
	EVP_PKEY_free(k);
	return rc;
}

/* A leaf+chain file as PKCS#12 with the leaf's key in it (LAYOUT_FORM_P12). */
static int p12_bytes(struct buf *out, const struct want *w, const char *passphrase, struct err *e)
{
	struct buf chain = BUF_INIT, key = BUF_INIT;
	size_t i;
	int rc;

	if (w->n == 0 || !w->c[0]->key_pem)
		return err_set(e, ROTOR_EINVALID, "no private key for %s %s in the repository: it cannot be written as PKCS#12",
			       w->n ? role_word(w->c[0]->role) : "leaf", w->n ? w->c[0]->name : "?");
	for (i = 0; i < w->n; i++)
		buf_puts(&chain, w->c[i]->pem);
	if (chain.err)
		rc = err_nomem(e);
	else if ((rc = decrypt_key(&key, w->c[0]->key_pem, passphrase, 0, e)) == 0)
		rc = pki_key_p12(out, key.ptr, key.len, chain.ptr, chain.len, LAYOUT_P12_PASSWORD, e);
	buf_wipe(&key);
	buf_release(&chain);
	return rc;
}

int plan_key_on_host(const struct material_set *ms, const struct obs_file *f, const struct obs_file *leaf_file,
		     const char *identity, enum phase_step s, int a, int b)
{
	struct want w;

	if (f->content != SPEC_CONTENT_KEY || want_for(&w, ms, f->content, f->side, identity, s, a, b, NULL) < 0)
		return 0;
	return !w.c[0]->key_pem && observed_equals(f, leaf_file, &w);
}

int plan_file_bytes(struct buf *out, const struct material_set *ms, const struct obs_file *f,
		    const char *identity, enum phase_step s, int a, int b, const char *passphrase, struct err *e)
{
	struct want w;
	size_t i;
	int rc;

	if ((rc = want_for(&w, ms, f->content, f->side, identity, s, a, b, e)) < 0)
		return rc;
	for (i = 0; i < w.ncrl; i++)
		if (buf_puts(out, w.crl_pem[i]) < 0)
			return err_nomem(e);
	if (w.key) {
		if (!w.c[0]->key_pem && material_past(ms, w.c[0]))
			return err_set(e, ROTOR_EINVALID, "no private key for %s %s: its generation is no longer in the "
				       "repository (known from history, certificates only)", role_word(w.c[0]->role), w.c[0]->name);
		if (!w.c[0]->key_pem)
			return err_set(e, ROTOR_EINVALID, "no private key for %s %s in the repository (imported generation?)",
				       role_word(w.c[0]->role), w.c[0]->name);
		return decrypt_key(out, w.c[0]->key_pem, passphrase, f->form == LAYOUT_FORM_PK8, e);
	}
	if (f->form == LAYOUT_FORM_P12)
		return p12_bytes(out, &w, passphrase, e);
	for (i = 0; i < w.n; i++)
		if (buf_puts(out, w.c[i]->pem) < 0)
			return err_nomem(e);
	return 0;
}
