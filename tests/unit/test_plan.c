/*
 * test_plan.c -- the planner's safety core, plan_build(), table-driven.
 *
 * Everything is in memory and goes through the real public code paths:
 * hosts.yaml, chain.yaml and rotation.yaml text through the spec loaders;
 * three real generations (and one foreign chain nobody knows) made by
 * pki_generate/pki_export; and "host X is at step S" simulated by taking
 * the bytes plan_file_bytes() says the host must hold at S and classifying
 * them as observe_run.c does after reading them over SSH
 * (observe_parse_certs, observe_key_match, observe_phase_mask).
 *
 * The fleet: pg1 (postgres server pg1 + libpq client replicator), pg2
 * (postgres server pg2), app1 (libpq client app): 12 managed files.
 * Every adjacent step of a rotation changes 4 of them (4 bundles, or the
 * 2 server leaves with their keys, or the 2 client leaves with theirs).
 *
 * External CAs (hosts.yaml external_cas, engine/trust.h): the foreign
 * chain's root plays a provider's CA in the clients' bundles ("xca").
 *
 * One cmocka test per row of the table, so each case reports on its own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/buf.h"
#include "reconcile/engine/observe.h"
#include "reconcile/engine/plan.h"
#include "reconcile/pki/pki.h"
#include "reconcile/engine/files.h"
#include "reconcile/spec/spec.h"

#define PASS "secret"
#define NGEN 3

static const char chain_yaml[] =
	"subject: {O: Example}\n"
	"key: {type: ec, curve: P-256}\n"
	"servers:\n"
	"  pg1: {sans: [pg1.example.net]}\n"
	"  pg2: {sans: [pg2.example.net]}\n"
	"clients: [replicator, app]\n";

static const char hosts_yaml[] =
	"hosts:\n"
	"  pg1:\n"
	"    address: pg1.example.net\n"
	"    roles:\n"
	"      - {role: server, layout: postgres, dir: /srv/pg1/certs, owner: postgres, probe: {type: postgres, port: 5432}}\n"
	"      - {role: client, layout: libpq, user: postgres, home: /var/lib/postgresql, identity: replicator}\n"
	"  pg2:\n"
	"    address: pg2.example.net\n"
	"    roles:\n"
	"      - {role: server, layout: postgres, dir: /srv/pg2/certs, probe: {type: tls, port: 6432}}\n"
	"  app1:\n"
	"    address: app1.example.net\n"
	"    roles:\n"
	"      - {role: client, layout: libpq, user: app, home: /home/app, identity: app}\n";

/* External peers appended to hosts.yaml, by a case's ext number. */
static const char *const externals[] = {
	"",
	"external:\n  - {name: billing, trusts: server, trusts_target: false}\n",
	"external:\n  - {name: billing, trusts: server, trusts_target: true}\n",
	"external:\n  - {name: reporting, trusts: client, trusts_target: false}\n",
	"external:\n  - {name: reporting, trusts: client, trusts_target: true}\n",
	"external:\n  - {name: billing, trusts: server, trusts_target: false}\n"
	"  - {name: reporting, trusts: client, trusts_target: false}\n",
};

/* ---- fixture: generations 1..3 of env poc, and generation 1 of a foreign env ---- */

struct gen {
	struct pki_generation *g;
	struct pki_file *files;
	size_t nfiles;
	struct manifest *m;
};

static struct {
	struct gen gens[NGEN], foreign;
	struct material_set ms;       /* generations 1..3: what the repository holds */
	struct material_set foreign_ms;
	struct known_set known;       /* generations 1..3 only: the foreign chain is unknown */
	struct known_set known_ext;   /* and the foreign root as an external CA */
	struct material_cert ext;     /* the foreign root as an external CA of the clients' bundles */
	time_t now;
} F;

/*
 * Decrypting a key (PBKDF2) is the slow part under ASan: plan_file_bytes()
 * decrypts each (material, side, identity, generation) once, and the
 * plain key is kept here until teardown, then wiped.
 */
static struct key_cache {
	const struct material_set *ms;
	enum layout_side side;
	char identity[64];
	int gen;
	struct buf plain;
} keys[64];
static size_t nkeys;

static const struct buf *file_of(const struct gen *g, const char *path)
{
	size_t i;

	for (i = 0; i < g->nfiles; i++)
		if (strcmp(g->files[i].path, path) == 0)
			return &g->files[i].data;
	return NULL;
}

/* One material entry from an exported generation, as state_material() builds it from the repository. */
static int material_add(struct material_set *ms, const struct gen *g)
{
	struct material *m = &ms->v[ms->n++];
	size_t i;

	m->generation = g->m->generation;
	m->imported = g->m->imported;
	if (!(m->certs = calloc(g->m->ncerts, sizeof(*m->certs))))
		return -1;
	for (i = 0; i < g->m->ncerts; i++) {
		const struct manifest_cert *mc = &g->m->certs[i];
		struct material_cert *c = &m->certs[m->ncerts++];
		const struct buf *crt = file_of(g, mc->cert), *key = mc->key ? file_of(g, mc->key) : NULL;

		if (!crt || (mc->key && !key))
			return -1;
		c->role = mc->role;
		if (!(c->name = strdup(mc->name)) || !(c->fingerprint = strdup(mc->fingerprint)) ||
		    !(c->pem = strdup(buf_cstr(crt))) || (key && !(c->key_pem = strdup(buf_cstr(key)))))
			return -1;
	}
	return 0;
}

static int make_gen(struct gen *g, const char *env, int number, const struct chain_spec *spec, struct err *e)
{
	return pki_generate(&g->g, env, number, spec, 2, F.now, e) < 0 ||
	       pki_export(&g->files, &g->nfiles, &g->m, g->g, env, PASS, F.now, e) < 0 ? -1 : 0;
}

static int setup(void **state)
{
	struct chain_spec *spec = NULL;
	struct diags d = { 0 };
	struct err e = ERR_INIT;
	int i, rc = -1;

	(void)state;
	F.now = time(NULL);
	if (spec_load_chain(&spec, "chain.yaml", chain_yaml, strlen(chain_yaml), &d) < 0) {
		fprintf(stderr, "setup: chain.yaml does not load\n");
		goto out;
	}
	if (!(F.ms.v = calloc(NGEN, sizeof(*F.ms.v))) || !(F.foreign_ms.v = calloc(1, sizeof(*F.foreign_ms.v))))
		goto out;
	for (i = 0; i < NGEN; i++)
		if (make_gen(&F.gens[i], "poc", i + 1, spec, &e) < 0 || known_add_manifest(&F.known, F.gens[i].m, &e) < 0 ||
		    material_add(&F.ms, &F.gens[i]) < 0) {
			fprintf(stderr, "setup: generation %d: %s\n", i + 1, e.msg);
			goto out;
		}
	if (make_gen(&F.foreign, "other", 1, spec, &e) < 0 || material_add(&F.foreign_ms, &F.foreign) < 0) {
		fprintf(stderr, "setup: foreign generation: %s\n", e.msg);
		goto out;
	}
	/* The provider's CA: the foreign root, known as an external CA (as trust_known() makes it). */
	{
		const struct material_cert *root = material_find(&F.foreign_ms, 1, CERT_ROLE_ROOT, NULL);
		struct known_cert *kc;

		for (i = 0; i < NGEN; i++)
			if (known_add_manifest(&F.known_ext, F.gens[i].m, &e) < 0)
				goto out;
		if (!root || !(kc = realloc(F.known_ext.v, (F.known_ext.n + 1) * sizeof(*kc))))
			goto out;
		F.known_ext.v = kc;
		F.known_ext.cap = F.known_ext.n + 1;
		kc = &F.known_ext.v[F.known_ext.n++];
		memset(kc, 0, sizeof(*kc));
		snprintf(kc->fingerprint, sizeof(kc->fingerprint), "%s", root->fingerprint);
		snprintf(kc->name, sizeof(kc->name), "trust/provider.pem");
		kc->generation = OBS_GEN_EXTERNAL;
		kc->role = CERT_ROLE_ROOT;
		F.ext.role = CERT_ROLE_ROOT;
		F.ext.name = "trust/provider.pem";
		F.ext.pem = root->pem;
		F.ext.fingerprint = root->fingerprint;
		F.ext.ext_sides = 1u << LAYOUT_SIDE_SERVER;
	}
	rc = 0;
out:
	spec_chain_free(spec);
	diags_release(&d);
	return rc;
}

static void gen_free(struct gen *g)
{
	pki_generation_free(g->g);
	pki_files_free(g->files, g->nfiles);
	spec_manifest_free(g->m);
}

static int teardown(void **state)
{
	int i;

	(void)state;
	for (i = 0; i < (int)nkeys; i++)
		buf_wipe(&keys[i].plain);
	nkeys = 0;
	for (i = 0; i < NGEN; i++)
		gen_free(&F.gens[i]);
	gen_free(&F.foreign);
	material_release(&F.ms);
	material_release(&F.foreign_ms);
	known_release(&F.known);
	known_release(&F.known_ext);
	return 0;
}

/* ---- observed hosts, filled as observe_run.c fills them ---- */

/*
 * A host's state in a case, one character per host (pg1 pg2 app1):
 *   A T V C B  at stable(A), trust, servers, clients, stable(B) of the case's line
 *   m          at stable(A), but its key files have mode 0640 (drift in modes)
 *   M          at stable(A), its key files 0600, but hosts.yaml gives them 0640
 *   u          at stable(A), but its bundles also hold a foreign root
 *   0          holds none of its files (a new host)
 *   U          holds a complete foreign chain (certificates of no generation)
 *   X          unreachable
 *   x y        at stable(A) / trust, with the external CA in the clients' bundles
 */
static enum phase_step code_step(char c)
{
	switch (c) {
	case 'T': case 'y': return STEP_TRUST;
	case 'V': return STEP_SERVERS;
	case 'C': return STEP_CLIENTS;
	case 'B': return STEP_STABLE_B;
	default: return STEP_STABLE_A;
	}
}

static char step_code(enum phase_step s)
{
	return s < NSTEPS ? "ATVCB"[s] : '?';
}


static void key_bytes(struct buf *out, const struct material_set *ms, const struct obs_file *f,
		      const char *identity, enum phase_step s, int a, int b)
{
	struct step_gens g = phase_step_gens(s, a, b);
	int gen = f->side == LAYOUT_SIDE_SERVER ? g.server_leaf : g.client_leaf;
	struct err e = ERR_INIT;
	size_t i;

	for (i = 0; i < nkeys; i++)
		if (keys[i].ms == ms && keys[i].side == f->side && keys[i].gen == gen &&
		    strcmp(keys[i].identity, identity) == 0)
			break;
	if (i == nkeys) {
		assert_true(nkeys < sizeof(keys) / sizeof(keys[0]) && strlen(identity) < sizeof(keys[0].identity));
		keys[i].ms = ms;
		keys[i].side = f->side;
		keys[i].gen = gen;
		strcpy(keys[i].identity, identity);
		assert_int_equal(plan_file_bytes(&keys[i].plain, ms, f, identity, s, a, b, PASS, &e), 0);
		nkeys++;
	}
	assert_int_equal(buf_put(out, keys[i].plain.ptr, keys[i].plain.len), 0);
}

/* The known set of the case being run: with the external CA when the case names one, or all
 * generations but one (a case's gone=N). */
static const struct known_set *known_now;

static void observe_role(struct obs_host *h, const struct host_role *r, char code, int a, int b)
{
	struct managed_file *mf = NULL;
	struct obs_role *orole = &h->roles[h->nroles++];
	struct buf data = BUF_INIT, leaf = BUF_INIT, key = BUF_INIT;
	const struct material_set *ms = code == 'U' ? &F.foreign_ms : &F.ms;
	struct err e = ERR_INIT;
	size_t nmf = 0, i, key_at = (size_t)-1;
	struct obs_file *nv;

	assert_int_equal(layout_expand(&mf, &nmf, r, &e), 0);
	memset(orole, 0, sizeof(*orole));
	orole->role = r->role;
	orole->first = h->nfiles;
	if (r->identity)
		assert_non_null(orole->identity = strdup(r->identity));
	assert_non_null(nv = realloc(h->files, (h->nfiles + nmf) * sizeof(*nv)));
	h->files = nv;
	for (i = 0; i < nmf; i++) {
		struct obs_file *f = &h->files[h->nfiles++];

		memset(f, 0, sizeof(*f));
		orole->nfiles++;
		assert_non_null(f->path = strdup(mf[i].path));
		f->content = mf[i].content;
		f->side = mf[i].side;
		f->mode = code == 'm' && f->content == SPEC_CONTENT_KEY ? 0640 : mf[i].mode;
		f->want_mode = code == 'M' && f->content == SPEC_CONTENT_KEY ? 0640 : mf[i].mode;
		f->uid = f->gid = -1;
		if (code == '0')
			continue;
		f->present = 1;
		buf_wipe(&data);
		if (code == 'U') {
			a = 1;
			b = 0;
		}
		F.ms.ext = code == 'x' || code == 'y' ? &F.ext : NULL;
		F.ms.next = F.ms.ext ? 1 : 0;
		if (f->content == SPEC_CONTENT_KEY)
			key_bytes(&data, ms, f, r->identity, code_step(code), a, b);
		else
			assert_int_equal(plan_file_bytes(&data, ms, f, r->identity, code_step(code), a, b, PASS, &e), 0);
		F.ms.ext = NULL;
		F.ms.next = 0;
		if (code == 'u' && f->content == SPEC_CONTENT_TRUST)
			assert_int_equal(buf_puts(&data, material_find(&F.foreign_ms, 1, CERT_ROLE_ROOT, NULL)->pem), 0);
		f->size = data.len;
		if (f->content == SPEC_CONTENT_KEY) {
			if (key_at == (size_t)-1) {
				key_at = i;
				assert_int_equal(buf_put(&key, data.ptr, data.len), 0);
			}
			continue;
		}
		assert_int_equal(observe_parse_certs(f, data.ptr, data.len, known_now, F.now, &e), 0);
		if ((f->content == SPEC_CONTENT_LEAF || f->content == SPEC_CONTENT_LEAF_CHAIN) && !leaf.len)
			assert_int_equal(buf_put(&leaf, data.ptr, data.len), 0);
	}
	if (key_at != (size_t)-1)
		h->files[orole->first + key_at].key =
			observe_key_match(key.ptr, key.len, leaf.len ? leaf.ptr : NULL, leaf.len);
	buf_wipe(&key);
	buf_wipe(&data);
	buf_release(&leaf);
	layout_free(mf, nmf);
}

static void observe_host(struct obs_host *h, const struct host_spec *hs, char code, int a, int b)
{
	size_t r;

	memset(h, 0, sizeof(*h));
	assert_non_null(h->name = strdup(hs->name));
	assert_non_null(h->address = strdup(hs->address));
	assert_non_null(h->roles = calloc(hs->nroles ? hs->nroles : 1, sizeof(*h->roles)));
	if (code == 'X') {
		assert_non_null(h->error = strdup("connection refused"));
		return;
	}
	h->reachable = 1;
	for (r = 0; r < hs->nroles; r++)
		observe_role(h, &hs->roles[r], code, a, b);
	h->phase_mask = observe_phase_mask(h->files, h->nfiles, a, b);
}

/* ---- the table ---- */

#define STABLE(g) "generation: " #g "\nphase: stable\n"
#define ROT(a, b, ph) "generation: " #a "\ntarget: " #b "\nphase: " ph "\n"

struct tcase {
	const char *name;
	const char *rotation;   /* rotation.yaml */
	const char *hosts;      /* one state code per host: pg1 pg2 app1 */
	const char *opts;       /* "no_path", "replace_unknown", "ext=N" (externals[N] appended to
	                         * hosts.yaml), "line=A>B" (the line the step codes are on; 1>2 by default),
	                         * "badsan" (pg2's address outside its SANs), "noprobe" (pg2: probe: none),
	                         * "past=N" (generation N reverted or abandoned away: known from history,
	                         * certificates only), "gone=N" (generation N not known at all: rotor
	                         * before it read history), "xca=N" (the external CA: 1 in the
	                         * clients' bundles, 2 retired: known only) */
	/* expectations */
	const char *where;      /* "live=T partial=0 desired=V line=1>2", or "unknown" (live_known 0) */
	const char *path;       /* the steps, "T>V V>C" */
	const char *changes;    /* changes per step, "4 4" */
	const char *gates;      /* gates per step */
	const char *broken;     /* broken pairs per step (any: refused) */
	const char *lines[6];   /* lines of the plan's text (below) that must appear; "!..." must not */
};

/*
 * The plan in text, one fact per line, for the lines[] checks:
 *   problem: ...   note: ...   step N X>Y
 *   change N HOST PATH +|~ FROM -> TO   broken N ...   gate N ...
 */
static void plan_text(struct buf *out, const struct plan *p, const struct obs_host *obs)
{
	size_t i, j;

	for (i = 0; i < p->nproblems; i++)
		buf_printf(out, "problem: %s\n", p->problems[i]);
	for (i = 0; i < p->nnotes; i++)
		buf_printf(out, "note: %s\n", p->notes[i]);
	for (i = 0; i < p->nsteps; i++) {
		const struct plan_step *st = &p->steps[i];

		buf_printf(out, "step %zu %c>%c\n", i, step_code(st->from), step_code(st->to));
		for (j = 0; j < st->nchanges; j++) {
			const struct plan_change *c = &st->changes[j];

			buf_printf(out, "change %zu %s %s %s %s -> %s\n", i, obs[c->host].name,
				   obs[c->host].files[c->file].path,
				   c->action == PLAN_CREATE ? "+" : c->action == PLAN_CHANGE ? "~" : "=",
				   c->from ? c->from : "(null)", c->to);
		}
		for (j = 0; j < st->nbroken; j++)
			buf_printf(out, "broken %zu %s\n", i, st->broken[j]);
		for (j = 0; j < st->ngates; j++)
			buf_printf(out, "gate %zu %s\n", i, st->gates[j]);
	}
}

/* "4 0 2": one number per step. */
static void per_step(struct buf *out, const struct plan *p, int what)
{
	size_t i;

	for (i = 0; i < p->nsteps; i++)
		buf_printf(out, "%s%zu", i ? " " : "",
			   what == 0 ? p->steps[i].nchanges : what == 1 ? p->steps[i].ngates : p->steps[i].nbroken);
}

/* On a mismatch, the whole plan goes to stderr before the failure. */
static void expect_str(const struct buf *plan, const char *what, const char *got, const char *want)
{
	if (strcmp(got, want) != 0) {
		print_error("%s", buf_cstr(plan));
		fail_msg("%s: got \"%s\", want \"%s\"", what, got, want);
	}
}

static int any_nonzero(const char *s)
{
	for (; *s; s++)
		if (*s >= '1' && *s <= '9')
			return 1;
	return 0;
}

static void run_case(void **state)
{
	const struct tcase *t = *state;
	struct hosts_spec *hs = NULL;
	struct rotation_spec *rot = NULL;
	struct obs_host *obs;
	struct diags d = { 0 };
	struct buf text = BUF_INIT, got = BUF_INIT;
	struct plan p;
	struct plan_opts o;
	struct err e = ERR_INIT;
	int la = 1, lb = 2, ext = 0, no_path = 0, replace_unknown = 0, badsan = 0, noprobe = 0, past = 0, gone = 0, xca = 0;
	struct material view[NGEN];
	struct material_set ms_view = { view, 0, NULL, 0 };
	struct known_set known_view = KNOWN_SET_INIT;
	size_t i, j, nchanges = 0;
	const char *opt;

	for (opt = t->opts; *opt; opt += strcspn(opt, " "), opt += strspn(opt, " ")) {
		if (strncmp(opt, "no_path", 7) == 0)
			no_path = 1;
		else if (strncmp(opt, "replace_unknown", 15) == 0)
			replace_unknown = 1;
		else if (strncmp(opt, "badsan", 6) == 0)
			badsan = 1;
		else if (strncmp(opt, "noprobe", 7) == 0)
			noprobe = 1;
		else if (sscanf(opt, "ext=%d", &ext) != 1 && sscanf(opt, "line=%d>%d", &la, &lb) != 2 &&
			 sscanf(opt, "past=%d", &past) != 1 && sscanf(opt, "gone=%d", &gone) != 1 &&
			 sscanf(opt, "xca=%d", &xca) != 1)
			fail_msg("bad option in \"%s\"", t->opts);
	}
	assert_true(ext >= 0 && (size_t)ext < sizeof(externals) / sizeof(externals[0]));
	buf_puts(&text, hosts_yaml);
	buf_puts(&text, externals[ext]);
	if (badsan) {
		char *at = strstr(text.ptr, "pg2.example.net");

		assert_non_null(at);
		memcpy(at, "pg2.elsewhere.", 14);   /* same length: "pg2.elsewhere.t" */
	}
	if (noprobe) {
		const char *probe = "probe: {type: tls, port: 6432}";
		char *at = strstr(text.ptr, probe);

		assert_non_null(at);
		memcpy(at, "probe: none", 11);      /* and spaces up to the "}" of the role */
		memset(at + 11, ' ', strlen(probe) - 11);
	}
	assert_int_equal(spec_load_hosts(&hs, "hosts.yaml", text.ptr, text.len, &d), 0);
	assert_int_equal(spec_load_rotation(&rot, "rotation.yaml", t->rotation, strlen(t->rotation), &d), 0);
	buf_release(&text);
	assert_int_equal(hs->nhosts, strlen(t->hosts));
	/* The material the plan gets: a generation left out, or known from history only (no keys). */
	for (i = 0; i < F.ms.n; i++) {
		if (F.ms.v[i].generation == gone)
			continue;
		view[ms_view.n] = F.ms.v[i];
		if (F.ms.v[i].generation == past) {
			view[ms_view.n].past = 1;
			assert_non_null(view[ms_view.n].certs = calloc(F.ms.v[i].ncerts, sizeof(*view[0].certs)));
			memcpy(view[ms_view.n].certs, F.ms.v[i].certs, F.ms.v[i].ncerts * sizeof(*view[0].certs));
			for (j = 0; j < F.ms.v[i].ncerts; j++)
				view[ms_view.n].certs[j].key_pem = NULL;
		}
		ms_view.n++;
	}
	for (i = 0; gone && i < NGEN; i++)
		if (F.gens[i].m->generation != gone)
			assert_int_equal(known_add_manifest(&known_view, F.gens[i].m, &e), 0);
	known_now = xca ? &F.known_ext : gone ? &known_view : &F.known;
	assert_non_null(obs = calloc(hs->nhosts, sizeof(*obs)));
	for (i = 0; i < hs->nhosts; i++)
		observe_host(&obs[i], &hs->hosts[i], t->hosts[i], la, lb);

	memset(&o, 0, sizeof(o));
	o.hosts = hs;
	o.observed = obs;
	o.nobserved = hs->nhosts;
	o.known = known_now;
	ms_view.ext = xca == 1 ? &F.ext : NULL;
	ms_view.next = xca == 1 ? 1 : 0;
	o.material = &ms_view;
	o.rotation = rot;
	o.no_path = no_path;
	o.replace_unknown = replace_unknown;
	o.now = F.now;
	assert_int_equal(plan_build(&p, &o, &e), 0);
	F.ms.ext = NULL;
	F.ms.next = 0;

	plan_text(&text, &p, obs);
	/* "keep N HOST PATH": a key file whose key the repository lacks, carried over from the host at step N. */
	for (i = 0; i < p.nsteps; i++)
		for (j = 0; j < hs->nhosts; j++) {
			size_t r, f;

			for (r = 0; r < obs[j].nroles; r++) {
				const struct obs_role *orole = &obs[j].roles[r];
				const struct obs_file *leaf_file = obs_role_leaf(&obs[j], orole);

				for (f = orole->first; f < orole->first + orole->nfiles; f++)
					if (plan_key_on_host(&ms_view, &obs[j].files[f], leaf_file, orole->identity,
							     p.steps[i].to, p.steps[i].a, p.steps[i].b))
						buf_printf(&text, "keep %zu %s %s\n", i, obs[j].name, obs[j].files[f].path);
			}
		}

	/* Where the live state was placed. */
	if (p.live_known)
		buf_printf(&got, "live=%c partial=%d desired=%c line=%d>%d", step_code(p.live), p.partial,
			   step_code(p.desired), p.a, p.b);
	else
		buf_puts(&got, "unknown");
	expect_str(&text, "where", buf_cstr(&got), t->where);
	assert_int_equal(p.nproblems != 0, !p.live_known);
	buf_release(&got);

	/* The path, and per step the changes, gates and broken pairs. */
	for (i = 0; i < p.nsteps; i++)
		buf_printf(&got, "%s%c>%c", i ? " " : "", step_code(p.steps[i].from), step_code(p.steps[i].to));
	expect_str(&text, "path", buf_cstr(&got), t->path);
	buf_release(&got);
	per_step(&got, &p, 0);
	expect_str(&text, "changes", buf_cstr(&got), t->changes);
	buf_release(&got);
	per_step(&got, &p, 1);
	expect_str(&text, "gates", buf_cstr(&got), t->gates ? t->gates : "");
	buf_release(&got);
	per_step(&got, &p, 2);
	expect_str(&text, "broken", buf_cstr(&got), t->broken ? t->broken : "");
	buf_release(&got);
	assert_int_equal(p.refused, t->broken ? any_nonzero(t->broken) : 0);

	/* Totals agree with the steps; every step moves at most one step unless no_path. */
	for (i = 0; i < p.nsteps; i++) {
		int d1 = (int)p.steps[i].to - (int)p.steps[i].from;

		nchanges += p.steps[i].nchanges;
		if (!no_path)
			assert_true(d1 >= -1 && d1 <= 1);
		if (i)
			assert_int_equal(p.steps[i].from, p.steps[i - 1].to);
		for (j = 0; j < p.steps[i].nchanges; j++) {
			assert_true(p.steps[i].changes[j].host < hs->nhosts);
			assert_true(p.steps[i].changes[j].file < obs[p.steps[i].changes[j].host].nfiles);
		}
	}
	assert_int_equal(p.nchanges, nchanges);
	if (p.nsteps)
		assert_int_equal(p.steps[p.nsteps - 1].to, p.desired);

	for (i = 0; i < sizeof(t->lines) / sizeof(t->lines[0]) && t->lines[i]; i++) {
		const char *l = t->lines[i];

		if (l[0] == '!') {
			if (strstr(buf_cstr(&text), l + 1)) {
				print_error("%s", buf_cstr(&text));
				fail_msg("the plan says \"%s\"", l + 1);
			}
		} else if (!strstr(buf_cstr(&text), l)) {
			print_error("%s", buf_cstr(&text));
			fail_msg("the plan does not say \"%s\"", l);
		}
	}

	/* Walking back from a past generation needs none of its keys: every file a step writes has its bytes. */
	for (i = 0; past && i < p.nsteps; i++)
		for (j = 0; j < p.steps[i].nchanges; j++) {
			const struct plan_change *c = &p.steps[i].changes[j];
			const struct obs_host *oh = &obs[c->host];
			const struct obs_file *f = &oh->files[c->file];
			const char *id = NULL;
			struct buf bytes = BUF_INIT;
			size_t r;

			for (r = 0; r < oh->nroles; r++)
				if (c->file >= oh->roles[r].first && c->file < oh->roles[r].first + oh->roles[r].nfiles)
					id = oh->roles[r].identity;
			if (plan_file_bytes(&bytes, &ms_view, f, id, p.steps[i].to, p.steps[i].a, p.steps[i].b, PASS, &e) < 0)
				fail_msg("step %zu, %s %s: %s", i, oh->name, f->path, e.msg);
			buf_wipe(&bytes);
		}
	if (past) {
		/* A past generation's key is never there, and the message says why. */
		struct obs_file kf;
		struct buf bytes = BUF_INIT;

		memset(&kf, 0, sizeof(kf));
		kf.side = LAYOUT_SIDE_SERVER;
		kf.content = SPEC_CONTENT_KEY;
		assert_int_equal(plan_file_bytes(&bytes, &ms_view, &kf, "pg1", STEP_STABLE_A, past, 0, PASS, &e), ROTOR_EINVALID);
		assert_non_null(strstr(e.msg, "no longer in the repository (known from history, certificates only)"));
		err_clear(&e);
	}
	for (i = 0; i < ms_view.n; i++)
		if (ms_view.v[i].past)
			free(ms_view.v[i].certs);
	known_release(&known_view);
	known_now = NULL;
	plan_release(&p);
	obs_hosts_free(obs, hs->nhosts);
	buf_release(&text);
	spec_hosts_free(hs);
	spec_rotation_free(rot);
	diags_release(&d);
}

#define L12 "line=1>2"

static const struct tcase cases[] = {
	/* ---- in sync: nothing to do ---- */
	{ "sync: stable(1)", STABLE(1), "AAA", "",
	  "live=A partial=0 desired=A line=1>0", "", "", 0, 0, { 0 } },
	{ "sync: trust", ROT(1, 2, "trust"), "TTT", "",
	  "live=T partial=0 desired=T " L12, "", "", 0, 0, { 0 } },
	{ "sync: servers", ROT(1, 2, "servers"), "VVV", "",
	  "live=V partial=0 desired=V " L12, "", "", 0, 0, { 0 } },
	{ "sync: clients", ROT(1, 2, "clients"), "CCC", "",
	  "live=C partial=0 desired=C " L12, "", "", 0, 0, { 0 } },
	{ "sync: stable(2) after a finished rotation", STABLE(2), "BBB", "",
	  "live=A partial=0 desired=A line=2>0", "", "", 0, 0, { 0 } },

	/* ---- desired trust from every live step ---- */
	{ "desired trust, live stable", ROT(1, 2, "trust"), "AAA", "",
	  "live=A partial=0 desired=T " L12, "A>T", "4", "0", "0",
	  { "change 0 pg1 /srv/pg1/certs/root.crt ~ g1 root, g1 client-ca -> g2 root + g2 client-ca, g1 root + g1 client-ca",
	    "change 0 app1 /home/app/.postgresql/root.crt ~ g1 root, g1 server-ca -> g2 root + g2 server-ca, g1 root + g1 server-ca",
	    "!server.crt", "!key" } },
	{ "desired trust, live servers (back one)", ROT(1, 2, "trust"), "VVV", "",
	  "live=V partial=0 desired=T " L12, "V>T", "4", "0", "0",
	  { "change 0 pg2 /srv/pg2/certs/server.crt ~ g2 server pg2 + chain -> g1 server pg2 + chain",
	    "change 0 pg2 /srv/pg2/certs/server.key ~ key of g2 server pg2 -> key of g1 server pg2" } },
	{ "desired trust, live clients (back two)", ROT(1, 2, "trust"), "CCC", "",
	  "live=C partial=0 desired=T " L12, "C>V V>T", "4 4", "0 0", "0 0",
	  { "change 0 app1 /home/app/.postgresql/postgresql.crt ~ g2 client app + chain -> g1 client app + chain",
	    "change 1 pg1 /srv/pg1/certs/server.crt ~ g2 server pg1 + chain -> g1 server pg1 + chain" } },
	{ "desired trust, live stable(2) (back three)", ROT(1, 2, "trust"), "BBB", "",
	  "live=B partial=0 desired=T " L12, "B>C C>V V>T", "4 4 4", "0 0 0", "0 0 0",
	  { "change 0 pg2 /srv/pg2/certs/root.crt ~ g2 root, g2 client-ca -> g2 root + g2 client-ca, g1 root + g1 client-ca" } },

	/* ---- desired servers ---- */
	{ "desired servers, live stable (two ahead)", ROT(1, 2, "servers"), "AAA", "",
	  "live=A partial=0 desired=V " L12, "A>T T>V", "4 4", "0 0", "0 0",
	  { "change 1 pg1 /srv/pg1/certs/server.key ~ key of g1 server pg1 -> key of g2 server pg1",
	    "change 1 pg1 /srv/pg1/certs/server.crt ~ g1 server pg1 + chain -> g2 server pg1 + chain",
	    "!change 1 pg1 /var/lib/postgresql", "!change 1 app1" } },
	{ "desired servers, live trust", ROT(1, 2, "servers"), "TTT", "",
	  "live=T partial=0 desired=V " L12, "T>V", "4", "0", "0", { 0 } },
	{ "desired servers, live clients (back one)", ROT(1, 2, "servers"), "CCC", "",
	  "live=C partial=0 desired=V " L12, "C>V", "4", "0", "0",
	  { "change 0 pg1 /var/lib/postgresql/.postgresql/postgresql.key ~ key of g2 client replicator -> key of g1 client replicator" } },
	{ "desired servers, live stable(2) (back two)", ROT(1, 2, "servers"), "BBB", "",
	  "live=B partial=0 desired=V " L12, "B>C C>V", "4 4", "0 0", "0 0", { 0 } },

	/* ---- desired clients ---- */
	{ "desired clients, live stable (three ahead)", ROT(1, 2, "clients"), "AAA", "",
	  "live=A partial=0 desired=C " L12, "A>T T>V V>C", "4 4 4", "0 0 0", "0 0 0", { 0 } },
	{ "desired clients, live trust", ROT(1, 2, "clients"), "TTT", "",
	  "live=T partial=0 desired=C " L12, "T>V V>C", "4 4", "0 0", "0 0", { 0 } },
	{ "desired clients, live servers", ROT(1, 2, "clients"), "VVV", "",
	  "live=V partial=0 desired=C " L12, "V>C", "4", "0", "0",
	  { "change 0 app1 /home/app/.postgresql/postgresql.crt ~ g1 client app + chain -> g2 client app + chain" } },
	{ "desired clients, live stable(2) (back one)", ROT(1, 2, "clients"), "BBB", "",
	  "live=B partial=0 desired=C " L12, "B>C", "4", "0", "0", { 0 } },

	/* ---- desired stable(2): rotation.yaml says generation 2, the hosts lag ---- */
	{ "desired stable(2), live stable(1) (four ahead)", STABLE(2), "AAA", "",
	  "live=A partial=0 desired=B " L12, "A>T T>V V>C C>B", "4 4 4 4", "0 0 0 0", "0 0 0 0", { 0 } },
	{ "desired stable(2), live trust", STABLE(2), "TTT", "",
	  "live=T partial=0 desired=B " L12, "T>V V>C C>B", "4 4 4", "0 0 0", "0 0 0", { 0 } },
	{ "desired stable(2), live servers", STABLE(2), "VVV", "",
	  "live=V partial=0 desired=B " L12, "V>C C>B", "4 4", "0 0", "0 0", { 0 } },
	{ "desired stable(2), live clients", STABLE(2), "CCC", "",
	  "live=C partial=0 desired=B " L12, "C>B", "4", "0", "0",
	  { "change 0 pg1 /var/lib/postgresql/.postgresql/root.crt ~ g2 root, g2 server-ca, g1 root, g1 server-ca -> g2 root + g2 server-ca" } },

	/* ---- desired stable(1): the rotation was abandoned (no target), the hosts are ahead ---- */
	{ "abandoned: live trust is clients of 2 -> 1", STABLE(1), "TTT", "",
	  "live=C partial=0 desired=B line=2>1", "C>B", "4", "0", "0",
	  { "change 0 pg2 /srv/pg2/certs/root.crt ~ g2 root, g2 client-ca, g1 root, g1 client-ca -> g1 root + g1 client-ca" } },
	{ "abandoned: live servers walks back", STABLE(1), "VVV", "",
	  "live=V partial=0 desired=A " L12, "V>T T>A", "4 4", "0 0", "0 0", { 0 } },
	{ "abandoned: live clients is trust of 2 -> 1", STABLE(1), "CCC", "",
	  /*
	   * The bytes of line 2 -> 1 list generation 1 first, the hosts' bundles
	   * generation 2 first: the same certificates, a trust store is a set, so
	   * the first step leaves the 4 bundles alone (in switch mode a rewritten
	   * bundle would need the key of generation 2's client leaf, which an
	   * abandoned rotation no longer has).
	   */
	  "live=T partial=0 desired=B line=2>1", "T>V V>C C>B", "4 4 4", "0 0 0", "0 0 0",
	  { "change 0 pg1 /srv/pg1/certs/server.crt ~ g2 server pg1 + chain -> g1 server pg1 + chain",
	    "!change 0 pg2 /srv/pg2/certs/root.crt", "!change 0 app1" } },
	{ "abandoned: live stable(2) rolls all the way back", STABLE(1), "BBB", "",
	  "live=A partial=0 desired=B line=2>1", "A>T T>V V>C C>B", "4 4 4 4", "0 0 0 0", "0 0 0 0", { 0 } },

	/*
	 * ---- generation 2 reverted away (git revert of rotate start) or abandoned: known from history ----
	 * gone=2 is rotor before it read history: every host holding generation 2 fit no step.
	 */
	{ "reverted start, generation 2 unknown: every host fits no step", STABLE(1), "TTT", "gone=2",
	  "unknown", "", "", 0, 0,
	  { "problem: pg1 fits no step of generation 1: drift", "problem: pg2 fits no step", "problem: app1 fits no step" } },
	{ "reverted start after trust: one step back to generation 1's bundles", STABLE(1), "TTT", "past=2",
	  "live=C partial=0 desired=B line=2>1", "C>B", "4", "0", "0",
	  { "change 0 pg1 /srv/pg1/certs/root.crt ~ g2 root, g2 client-ca, g1 root, g1 client-ca -> g1 root + g1 client-ca",
	    "note: generation 2 is no longer in the tree (reverted or abandoned; its certificates are known from history): "
	    "the hosts walk back from it", "!server.key", "!fits no step" } },
	{ "abandoned at servers: servers walk back first", STABLE(1), "VVV", "past=2",
	  "live=V partial=0 desired=A " L12, "V>T T>A", "4 4", "0 0", "0 0",
	  { "change 0 pg1 /srv/pg1/certs/server.key ~ key of g2 server pg1 -> key of g1 server pg1",
	    "change 1 app1 /home/app/.postgresql/root.crt ~ g2 root + g2 server-ca, g1 root + g1 server-ca -> g1 root + g1 server-ca" } },
	{ "abandoned at clients: clients, then servers, then the bundles", STABLE(1), "CCC", "past=2",
	  "live=T partial=0 desired=B line=2>1", "T>V V>C C>B", "4 4 4", "0 0 0", "0 0 0",
	  { "change 0 pg1 /srv/pg1/certs/server.key ~ key of g2 server pg1 -> key of g1 server pg1", "!change 0 app1",
	    "change 1 app1 /home/app/.postgresql/postgresql.key ~ key of g2 client app -> key of g1 client app" } },
	{ "reverted after the rotation finished: all the way back", STABLE(1), "BBB", "past=2",
	  "live=A partial=0 desired=B line=2>1", "A>T T>V V>C C>B", "4 4 4 4", "0 0 0 0", "0 0 0 0",
	  /*
	   * The first step back adds generation 1 to the bundles while every leaf
	   * is still generation 2's, whose keys are gone: the hosts' keys are
	   * what a switch-mode directory carries over.  From V (servers) on, the
	   * servers' keys are generation 1's again: in the repository.
	   */
	  { "note: generation 2 is no longer in the tree", "keep 0 app1 /home/app/.postgresql/postgresql.key",
	    "keep 0 pg1 /srv/pg1/certs/server.key", "!keep 1 pg1 /srv/pg1/certs/server.key", "!keep 2", "!keep 3" } },
	{ "reverted start, an apply stopped half-way", STABLE(1), "TAA", "past=2",
	  "live=C partial=1 desired=B line=2>1", "C>B", "2", "0", "0", { "!change 0 pg2", "!change 0 app1" } },
	{ "generation 3 past, rotation 1 -> 2 going on: hosts on generation 3 are drift", ROT(1, 2, "trust"), "TTT",
	  "past=3 line=1>3", "unknown", "", "", 0, 0, { "problem: pg1 fits no step of generation 1 -> 2: drift" } },
	{ "generation 3 past, hosts on the rotation 1 -> 2: no note", ROT(1, 2, "trust"), "TTT", "past=3",
	  "live=T partial=0 desired=T " L12, "", "", 0, 0, { "!note:" } },

	/* ---- partial: an apply stopped half-way, some hosts one step further ---- */
	{ "partial: pg1 at trust, desired trust", ROT(1, 2, "trust"), "TAA", "",
	  "live=A partial=1 desired=T " L12, "A>T", "2", "0", "0",
	  { "!change 0 pg1", "change 0 pg2 /srv/pg2/certs/root.crt ~" } },
	{ "partial: app1 behind, desired trust", ROT(1, 2, "trust"), "TTA", "",
	  "live=A partial=1 desired=T " L12, "A>T", "1", "0", "0", { "change 0 app1 /home/app/.postgresql/root.crt ~" } },
	{ "partial: pg1 at servers, desired servers", ROT(1, 2, "servers"), "VTT", "",
	  "live=T partial=1 desired=V " L12, "T>V", "2", "0", "0", { "!change 0 pg1", "change 0 pg2 /srv/pg2/certs/server.key ~" } },
	{ "partial: pg1 at servers, desired trust (ahead host goes back)", ROT(1, 2, "trust"), "VTT", "",
	  "live=T partial=1 desired=T " L12, "V>T", "2", "0", "0",
	  { "change 0 pg1 /srv/pg1/certs/server.crt ~ g2 server pg1 + chain -> g1 server pg1 + chain", "!change 0 pg2" } },
	{ "partial: pg1 at servers, desired clients", ROT(1, 2, "clients"), "VTT", "",
	  "live=T partial=1 desired=C " L12, "T>V V>C", "2 4", "0 0", "0 0", { 0 } },
	{ "partial: pg1 at servers, rotation abandoned", STABLE(1), "VTT", "",
	  "live=T partial=1 desired=A " L12, "V>T T>A", "2 4", "0 0", "0 0", { 0 } },
	{ "partial: pg1 at trust, rotation abandoned", STABLE(1), "TAA", "",
	  "live=C partial=1 desired=B line=2>1", "C>B", "2", "0", "0", { "!change 0 pg2", "!change 0 app1" } },
	{ "partial: app1 at stable, rotation abandoned", STABLE(1), "TTA", "",
	  "live=C partial=1 desired=B line=2>1", "C>B", "3", "0", "0", { "!change 0 app1" } },
	{ "partial: pg1 at clients, desired clients", ROT(1, 2, "clients"), "CVV", "",
	  "live=V partial=1 desired=C " L12, "V>C", "2", "0", "0", { "change 0 app1 /home/app/.postgresql/postgresql.key ~" } },
	{ "partial: pg1 at clients, desired servers", ROT(1, 2, "servers"), "CVV", "",
	  "live=V partial=1 desired=V " L12, "C>V", "2", "0", "0", { "!change 0 app1" } },
	{ "partial: pg1 at stable(2), desired stable(2)", STABLE(2), "BCC", "",
	  "live=C partial=1 desired=B " L12, "C>B", "2", "0", "0", { 0 } },
	{ "partial: pg1 at stable(2), desired clients", ROT(1, 2, "clients"), "BCC", "",
	  "live=C partial=1 desired=C " L12, "B>C", "2", "0", "0", { 0 } },

	/* ---- hosts further apart: no single step fits them ---- */
	{ "apart: clients and stable", ROT(1, 2, "clients"), "CAA", "",
	  "unknown", "", "", 0, 0, { "problem: hosts are at steps more than one apart; no single step of generation 1 -> 2 fits them all" } },
	{ "apart: stable, servers, stable", ROT(1, 2, "trust"), "AVA", "",
	  "unknown", "", "", 0, 0, { "problem: hosts are at steps more than one apart" } },
	{ "apart: stable(2) and stable(1)", STABLE(2), "BAB", "",
	  "unknown", "", "", 0, 0,
	  /* Checked against rotation.yaml's line first: pg2 holds no generation 2 at all. */
	  { "problem: pg2 fits no step of generation 2: drift (see rotor observe)", "!pg1", "!apart" } },

	/* ---- hosts holding nothing: the first deployment, or a new host ---- */
	{ "empty: first deployment", STABLE(1), "000", "",
	  "live=A partial=0 desired=A line=1>0", "A>A", "12", "0", "0",
	  { "change 0 pg1 /srv/pg1/certs/server.key +  -> key of g1 server pg1",
	    "change 0 app1 /home/app/.postgresql/root.crt +  -> g1 root + g1 server-ca",
	    "!~" } },
	{ "empty: a new host joins at trust", ROT(1, 2, "trust"), "0TT", "",
	  "live=T partial=0 desired=T " L12, "T>T", "6", "0", "0",
	  { "change 0 pg1 /srv/pg1/certs/root.crt +  -> g2 root + g2 client-ca, g1 root + g1 client-ca", "!change 0 pg2" } },
	{ "empty: a new host while moving to clients", ROT(1, 2, "clients"), "V0V", "",
	  "live=V partial=0 desired=C " L12, "V>C", "7", "0", "0",
	  { "change 0 pg2 /srv/pg2/certs/server.crt +  -> g2 server pg2 + chain" } },
	{ "empty: first deployment of generation 2", STABLE(2), "000", "",
	  "live=A partial=0 desired=A line=2>0", "A>A", "12", "0", "0", { "change 0 pg2 /srv/pg2/certs/server.key +  -> key of g2 server pg2" } },
	{ "empty: first deployment while rotation.yaml is at clients", ROT(1, 2, "clients"), "000", "",
	  "live=A partial=0 desired=C " L12, "A>T T>V V>C", "12 4 4", "0 0 0", "0 0 0", { 0 } },

	/* ---- unknown certificates ---- */
	{ "unknown: refused without replace_unknown", STABLE(1), "UAA", "",
	  "unknown", "", "", 0, 0, { "problem: pg1 fits no step of generation 1: drift (see rotor observe); it holds only "
				     "certificates of no generation: --replace-unknown replaces them, rotor import adopts a chain in use",
				     "!pg2" } },
	{ "unknown: during a rotation", ROT(1, 2, "trust"), "UTT", "",
	  "unknown", "", "", 0, 0, { "problem: pg1 fits no step of generation 1 -> 2: drift" } },
	{ "unknown: replace_unknown counts pg1 as empty", STABLE(1), "UAA", "replace_unknown",
	  "live=A partial=0 desired=A line=1>0", "A>A", "6", "0", "0",
	  { "note: pg1 holds only certificates of no generation: replaced (--replace-unknown; clients that trust them will stop connecting)",
	    "change 0 pg1 /srv/pg1/certs/server.crt ~ unknown ", "-> g1 server pg1 + chain",
	    "change 0 pg1 /srv/pg1/certs/server.key ~ a key that does not match the desired leaf -> key of g1 server pg1",
	    "!change 0 pg2" } },
	{ "probe: none: a note that pg2 is not verified", STABLE(1), "AAA", "noprobe",
	  "live=A partial=0 desired=A line=1>0", "", "", 0, 0,
	  { "note: pg2: server not verified after a reload (probe: none)", "!note: pg1", "!note: app1" } },
	{ "probe: none: the note also when a host is unreachable", STABLE(1), "AXA", "noprobe",
	  "unknown", "", "", 0, 0, { "note: pg2: server not verified after a reload (probe: none)",
				    "problem: pg2 is unreachable" } },
	{ "unknown: replace_unknown during a rotation", ROT(1, 2, "trust"), "UTT", "replace_unknown",
	  "live=T partial=0 desired=T " L12, "T>T", "6", "0", "0", { "note: pg1 holds only certificates of no generation" } },
	{ "unknown: replace_unknown, every host foreign", STABLE(1), "UUU", "replace_unknown",
	  "live=A partial=0 desired=A line=1>0", "A>A", "12", "0", "0",
	  { "note: pg1 holds", "note: pg2 holds", "note: app1 holds" } },
	{ "unknown: a foreign root beside known ones is drift", STABLE(1), "uAA", "",
	  "unknown", "", "", 0, 0, { "problem: pg1 fits no step of generation 1: drift", "!--replace-unknown" } },
	{ "unknown: replace_unknown does not cover a host with known certificates", STABLE(1), "uAA", "replace_unknown",
	  "unknown", "", "", 0, 0, { "problem: pg1 fits no step of generation 1: drift", "!note:" } },

	/* ---- unreachable hosts: their state cannot be proved ---- */
	{ "unreachable: one host", ROT(1, 2, "trust"), "TXT", "",
	  "unknown", "", "", 0, 0, { "problem: pg2 is unreachable (connection refused): its state cannot be proved", "!pg1" } },
	{ "unreachable: two hosts", STABLE(1), "XXA", "",
	  "unknown", "", "", 0, 0, { "problem: pg1 is unreachable", "problem: pg2 is unreachable", "!app1" } },
	{ "unreachable: also with unknown certificates and replace_unknown", STABLE(1), "XUA", "replace_unknown",
	  "unknown", "", "", 0, 0, { "problem: pg1 is unreachable", "!pg2", "!note:" } },

	/* ---- no_path: one jump, checked pair by pair ---- */
	{ "no_path: stable to clients breaks every pair", ROT(1, 2, "clients"), "AAA", "no_path",
	  "live=A partial=0 desired=C " L12, "A>C", "12", "0", "4",
	  { "broken 0 clients at stable cannot verify server pg1 on pg1 (pg1.example.net) at clients: ",
	    "broken 0 clients at stable cannot verify server pg2 on pg2 (pg2.example.net) at clients: ",
	    "broken 0 servers at stable cannot verify client app on app1 (app1.example.net) at clients: ",
	    "broken 0 servers at stable cannot verify client replicator on pg1 (pg1.example.net) at clients: " } },
	{ "no_path: stable to servers breaks the servers", ROT(1, 2, "servers"), "AAA", "no_path",
	  "live=A partial=0 desired=V " L12, "A>V", "8", "0", "2",
	  { "broken 0 clients at stable cannot verify server pg1 on pg1 (pg1.example.net) at servers",
	    "broken 0 clients at stable cannot verify server pg2 on pg2 (pg2.example.net) at servers", "!client app" } },
	{ "no_path: adjacent step is just the step", ROT(1, 2, "trust"), "AAA", "no_path",
	  "live=A partial=0 desired=T " L12, "A>T", "4", "0", "0", { 0 } },
	{ "no_path: trust to clients is safe (both bundles everywhere)", ROT(1, 2, "clients"), "TTT", "no_path",
	  "live=T partial=0 desired=C " L12, "T>C", "8", "0", "0", { 0 } },
	{ "no_path: stable(1) to stable(2) breaks both ways", STABLE(2), "AAA", "no_path",
	  "live=A partial=0 desired=B " L12, "A>B", "12", "0", "8",
	  { "broken 0 clients at stable cannot verify server pg1 on pg1 (pg1.example.net) at stable(target)",
	    "broken 0 clients at stable(target) cannot verify server pg1 on pg1 (pg1.example.net) at stable",
	    "broken 0 servers at stable(target) cannot verify client app on app1 (app1.example.net) at stable" } },
	{ "no_path: clients to stable(2) is adjacent", STABLE(2), "CCC", "no_path",
	  "live=C partial=0 desired=B " L12, "C>B", "4", "0", "0", { 0 } },
	{ "no_path: servers to stable(2) breaks the old client leaves", STABLE(2), "VVV", "no_path",
	  "live=V partial=0 desired=B " L12, "V>B", "8", "0", "2",
	  { "broken 0 servers at stable(target) cannot verify client app on app1 (app1.example.net) at servers",
	    "broken 0 servers at stable(target) cannot verify client replicator on pg1 (pg1.example.net) at servers",
	    "!server pg" } },
	{ "no_path: trust to stable(2)", STABLE(2), "TTT", "no_path",
	  "live=T partial=0 desired=B " L12, "T>B", "12", "0", "4", { 0 } },
	{ "no_path: rollback clients to trust is safe", ROT(1, 2, "trust"), "CCC", "no_path",
	  "live=C partial=0 desired=T " L12, "C>T", "8", "0", "0", { 0 } },
	{ "no_path: rollback servers to stable(1) breaks the servers", STABLE(1), "VVV", "no_path",
	  "live=V partial=0 desired=A " L12, "V>A", "8", "0", "2",
	  { "broken 0 clients at stable cannot verify server pg2 on pg2 (pg2.example.net) at servers" } },
	{ "no_path: partial, the jump starts at the lower step", ROT(1, 2, "clients"), "VTT", "no_path",
	  "live=T partial=1 desired=C " L12, "T>C", "6", "0", "0", { 0 } },
	{ "no_path: in sync is no step", ROT(1, 2, "trust"), "TTT", "no_path",
	  "live=T partial=0 desired=T " L12, "", "", 0, 0, { 0 } },

	/* ---- external peers: the step that shows them new leaves is gated ---- */
	{ "external server peer not ready: servers step gated", ROT(1, 2, "servers"), "TTT", "ext=1",
	  "live=T partial=0 desired=V " L12, "T>V", "4", "1", "0",
	  { "gate 0 external billing trusts our server certificates but hosts.yaml does not record trusts_target: true "
	    "(its bundle must hold generation 2 first)" } },
	{ "external server peer confirmed: no gate", ROT(1, 2, "servers"), "TTT", "ext=2",
	  "live=T partial=0 desired=V " L12, "T>V", "4", "0", "0", { "!gate" } },
	{ "external server peer: trust step shows no new leaf", ROT(1, 2, "trust"), "AAA", "ext=1",
	  "live=A partial=0 desired=T " L12, "A>T", "4", "0", "0", { 0 } },
	{ "external server peer: gated from servers on", ROT(1, 2, "clients"), "TTT", "ext=1",
	  "live=T partial=0 desired=C " L12, "T>V V>C", "4 4", "1 1", "0 0", { "gate 0 external billing", "gate 1 external billing" } },
	{ "external client peer not ready: clients step gated", ROT(1, 2, "clients"), "TTT", "ext=3",
	  "live=T partial=0 desired=C " L12, "T>V V>C", "4 4", "0 1", "0 0",
	  { "gate 1 external reporting trusts our client certificates but hosts.yaml does not record trusts_target: true "
	    "(its bundle must hold generation 2 first)" } },
	{ "external client peer confirmed: no gate", ROT(1, 2, "clients"), "TTT", "ext=4",
	  "live=T partial=0 desired=C " L12, "T>V V>C", "4 4", "0 0", "0 0", { 0 } },
	{ "external client peer: stable(2) gated", STABLE(2), "CCC", "ext=3",
	  "live=C partial=0 desired=B " L12, "C>B", "4", "1", "0", { "gate 0 external reporting" } },
	{ "external peers both not ready, three steps", ROT(1, 2, "clients"), "AAA", "ext=5",
	  "live=A partial=0 desired=C " L12, "A>T T>V V>C", "4 4 4", "0 1 2", "0 0 0",
	  { "gate 2 external billing", "gate 2 external reporting", "!gate 1 external reporting" } },
	{ "external peer and a refused jump", STABLE(2), "AAA", "ext=1 no_path",
	  "live=A partial=0 desired=B " L12, "A>B", "12", "1", "8", { "gate 0 external billing" } },
	/*
	 * Rolling back, a step whose target state still presents generation 2
	 * server leaves is gated too, although the peer already sees them
	 * (conservative; recorded as plan.c behaves today).
	 */
	{ "external server peer: rollback step keeping new server leaves", ROT(1, 2, "trust"), "CCC", "ext=1",
	  "live=C partial=0 desired=T " L12, "C>V V>T", "4 4", "1 0", "0 0", { 0 } },
	/*
	 * Abandoned rotation (line 2 -> 1): every step is gated on generation 1,
	 * the generation the peer trusted before the rotation began (as plan.c
	 * behaves today: the gate names the line's b, not a new generation).
	 */
	{ "external server peer: abandoned rotation gated on generation 1", STABLE(1), "CCC", "ext=1",
	  "live=T partial=0 desired=B line=2>1", "T>V V>C C>B", "4 4 4", "1 1 1", "0 0 0",
	  { "gate 0 external billing trusts our server certificates but hosts.yaml does not record trusts_target: true "
	    "(its bundle must hold generation 1 first)" } },

	/* ---- other lines: generation 2 -> 3, and 1 -> 3 skipping 2 ---- */
	{ "line 2 -> 3: stable(2) to servers", ROT(2, 3, "servers"), "AAA", "line=2>3",
	  "live=A partial=0 desired=V line=2>3", "A>T T>V", "4 4", "0 0", "0 0",
	  { "change 1 pg1 /srv/pg1/certs/server.crt ~ g2 server pg1 + chain -> g3 server pg1 + chain" } },
	{ "line 1 -> 3: generation 3 in rotation.yaml, hosts at 1", STABLE(3), "AAA", "line=1>3",
	  "live=A partial=0 desired=B line=1>3", "A>T T>V V>C C>B", "4 4 4 4", "0 0 0 0", "0 0 0 0", { 0 } },
	{ "line 1 -> 3 hosts, rotation.yaml 1 -> 2: drift", ROT(1, 2, "trust"), "TTT", "line=1>3",
	  "unknown", "", "", 0, 0,
	  { "problem: pg1 fits no step of generation 1 -> 2: drift", "problem: pg2 fits no step",
	    "problem: app1 fits no step" } },

	/* ---- a server whose address is not in its certificate (badsan: pg2 is pg2.elsewhere.t) ---- */
	{ "server address not in its SAN: every step refused", ROT(1, 2, "trust"), "AAA", "badsan",
	  "live=A partial=0 desired=T " L12, "A>T", "4", "0", "4",
	  { "broken 0 clients at stable cannot verify server pg2 on pg2 (pg2.elsewhere.t) at stable: ",
	    "broken 0 clients at trust cannot verify server pg2 on pg2 (pg2.elsewhere.t) at trust: ", "!server pg1" } },
	{ "server address not in its SAN: in sync, the broken pair is still shown", STABLE(1), "AAA", "badsan",
	  "live=A partial=0 desired=A line=1>0", "A>A", "0", "0", "1",
	  { "broken 0 clients at stable cannot verify server pg2 on pg2 (pg2.elsewhere.t) at stable: " } },

	/* ---- external CAs (a provider's root in the clients' bundles): trust-only changes ---- */
	{ "external CA added: the clients' bundles change, nothing else", STABLE(1), "AAA", "xca=1",
	  "live=A partial=0 desired=A line=1>0", "A>A", "2", "0", "0",
	  { "change 0 app1 /home/app/.postgresql/root.crt ~ g1 root, g1 server-ca -> g1 root + g1 server-ca, external trust/provider.pem",
	    "change 0 pg1 /var/lib/postgresql/.postgresql/root.crt ~ g1 root, g1 server-ca -> g1 root + g1 server-ca, external trust/provider.pem",
	    "!/srv/pg1/certs/root.crt", "!server.crt", "!key" } },
	{ "external CA held: in sync", STABLE(1), "xxx", "xca=1",
	  "live=A partial=0 desired=A line=1>0", "", "", 0, 0, { 0 } },
	{ "external CA held by one host only: the others get it", STABLE(1), "xAA", "xca=1",
	  "live=A partial=0 desired=A line=1>0", "A>A", "1", "0", "0", { "change 0 app1 /home/app/.postgresql/root.crt", "!change 0 pg1" } },
	{ "external CA retired: it leaves the clients' bundles", STABLE(1), "xxx", "xca=2",
	  "live=A partial=0 desired=A line=1>0", "A>A", "2", "0", "0",
	  { "change 0 app1 /home/app/.postgresql/root.crt ~ g1 root, g1 server-ca, external trust/provider.pem -> g1 root + g1 server-ca" } },
	{ "external CA no longer listed while hosts hold it: drift", STABLE(1), "xxx", "",
	  "unknown", "", "", 0, 0, { "problem: pg1 fits no step of generation 1: drift" } },
	{ "external CA added during a rotation: folded into the first step", ROT(1, 2, "servers"), "AAA", "xca=1",
	  "live=A partial=0 desired=V " L12, "A>T T>V", "4 4", "0 0", "0 0",
	  { "change 0 app1 /home/app/.postgresql/root.crt ~ g1 root, g1 server-ca -> g2 root + g2 server-ca, g1 root + g1 server-ca, external trust/provider.pem",
	    "!change 1 app1 /home/app/.postgresql/root.crt" } },
	{ "external CA held at trust: the rotation goes on", ROT(1, 2, "clients"), "yyy", "xca=1",
	  "live=T partial=0 desired=C " L12, "T>V V>C", "4 4", "0 0", "0 0", { "!root.crt" } },
	{ "external CA: the rotation ends, the external CA stays", STABLE(2), "CCC", "xca=1",
	  "live=C partial=0 desired=B " L12, "C>B", "4", "0", "0",
	  { "change 0 app1 /home/app/.postgresql/root.crt ~ g2 root, g2 server-ca, g1 root, g1 server-ca -> g2 root + g2 server-ca, external trust/provider.pem" } },

	/* ---- modes ---- */
	{ "mode drift only: repaired in place", STABLE(1), "mAA", "",
	  "live=A partial=0 desired=A line=1>0", "A>A", "2", "0", "0",
	  { "change 0 pg1 /srv/pg1/certs/server.key ~ key of g1 server pg1 -> mode 0640 -> 0600",
	    "change 0 pg1 /var/lib/postgresql/.postgresql/postgresql.key ~ key of g1 client replicator -> mode 0640 -> 0600" } },
	{ "mode drift with a step", ROT(1, 2, "trust"), "mAA", "",
	  "live=A partial=0 desired=T " L12, "A>T", "6", "0", "0",
	  { "change 0 pg1 /srv/pg1/certs/server.key ~ key of g1 server pg1 -> mode 0640 -> 0600" } },
	{ "a mode hosts.yaml gives is the mode wanted", STABLE(1), "MAA", "",
	  "live=A partial=0 desired=A line=1>0", "A>A", "2", "0", "0",
	  { "change 0 pg1 /srv/pg1/certs/server.key ~ key of g1 server pg1 -> mode 0600 -> 0640",
	    "change 0 pg1 /var/lib/postgresql/.postgresql/postgresql.key ~ key of g1 client replicator -> mode 0600 -> 0640" } },
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

int main(void)
{
	struct CMUnitTest tests[NCASES];
	size_t i;

	for (i = 0; i < NCASES; i++) {
		memset(&tests[i], 0, sizeof(tests[i]));
		tests[i].name = cases[i].name;
		tests[i].test_func = run_case;
		tests[i].initial_state = (void *)&cases[i];
	}
	return cmocka_run_group_tests(tests, setup, teardown);
}
