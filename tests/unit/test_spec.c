/*
 * test_spec.c -- the YAML loader (yamldoc) and the state file validators
 * (spec): fixtures, round trips, scalar typing, hostile input.
 *
 *   test_spec                      run the cmocka tests
 *   test_spec --check KIND FILE    load FILE as KIND (rotor, chain, hosts,
 *                                  rotation, manifest); print "OK" or the
 *                                  diagnostics; exit 0 valid, 1 invalid,
 *                                  2 usage or I/O error
 *   test_spec --check-batch        the same for each "KIND<TAB>FILE" line on
 *                                  stdin: one "CODE<TAB>first line" line out
 *                                  (tests/schema/agree.py: one process)
 *
 * Fixtures: every fixtures/bad/<kind>/<case>.yaml must give exactly the
 * first diagnostic in <case>.expect (paths relative to the repository);
 * every file of every fixtures/good/<repo>/ must load without one.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "reconcile/spec/spec.h"
#include "reconcile/spec/spec_int.h"
#include "reconcile/spec/yamldoc.h"

#ifndef ROTOR_SRCDIR
#define ROTOR_SRCDIR "."
#endif

/* ---- loading by kind ---- */

enum kind { K_ROTOR, K_CHAIN, K_HOSTS, K_ROTATION, K_MANIFEST, K_NONE };

static const char *const kind_names[] = { "rotor", "chain", "hosts", "rotation", "manifest" };

static enum kind kind_of(const char *s)
{
	int i;

	for (i = 0; i < K_NONE; i++)
		if (strcmp(s, kind_names[i]) == 0)
			return (enum kind)i;
	return K_NONE;
}

/* Load data as kind, freeing whatever was decoded. */
static int load_kind(enum kind k, const char *path, const char *data, size_t len, struct diags *d)
{
	struct rotor_config *c = NULL;
	struct chain_spec *ch = NULL;
	struct hosts_spec *h = NULL;
	struct rotation_spec *r = NULL;
	struct manifest *m = NULL;
	int rc = ROTOR_EINVALID;

	switch (k) {
	case K_ROTOR:
		rc = spec_load_config(&c, path, data, len, d);
		break;
	case K_CHAIN:
		rc = spec_load_chain(&ch, path, data, len, d);
		break;
	case K_HOSTS:
		rc = spec_load_hosts(&h, path, data, len, d);
		break;
	case K_ROTATION:
		rc = spec_load_rotation(&r, path, data, len, d);
		break;
	case K_MANIFEST:
		rc = spec_load_manifest(&m, path, data, len, d);
		break;
	case K_NONE:
		break;
	}
	/* A failed load hands nothing out; a good one hands out something. */
	if (rc < 0 && (c || ch || h || r || m))
		rc = ROTOR_ERROR;
	if (rc == 0 && !(c || ch || h || r || m))
		rc = ROTOR_ERROR;
	spec_config_free(c);
	spec_chain_free(ch);
	spec_hosts_free(h);
	spec_rotation_free(r);
	spec_manifest_free(m);
	return rc;
}

static int read_rel(struct buf *b, const char *rel, size_t max)
{
	char path[4096];
	struct err e = ERR_INIT;

	snprintf(path, sizeof(path), "%s/%s", ROTOR_SRCDIR, rel);
	return buf_read_file(b, path, max, &e);
}

static char *first_diag(const struct diags *d)
{
	struct diags one = { d->v, d->n ? 1 : 0, d->n ? 1 : 0 };
	struct buf b = BUF_INIT;

	if (diags_format(&one, &b) < 0) {
		buf_release(&b);
		return NULL;
	}
	if (b.len && b.ptr[b.len - 1] == '\n')
		b.ptr[--b.len] = '\0';
	return buf_detach(&b);
}

/* ---- --check mode ---- */

static int check_one(const char *kind, const char *file, int batch);

static int check_main(const char *kind, const char *file)
{
	return check_one(kind, file, 0);
}

static int check_batch(void)
{
	char line[4096];

	while (fgets(line, sizeof(line), stdin)) {
		char *tab = strchr(line, '\t'), *nl = strchr(line, '\n');

		if (nl)
			*nl = '\0';
		if (!tab) {
			printf("2\tbad input line\n");
		} else {
			*tab = '\0';
			check_one(line, tab + 1, 1);
		}
		fflush(stdout);
	}
	return 0;
}

/* Check one file; in batch mode print "CODE<TAB>first line" instead. */
static int check_one(const char *kind, const char *file, int batch)
{
	struct buf b = BUF_INIT, out = BUF_INIT;
	struct diags d = { NULL, 0, 0 };
	struct err e = ERR_INIT;
	enum kind k = kind_of(kind);
	int rc;

	if (k == K_NONE) {
		if (batch)
			printf("2\tunknown kind \"%s\"\n", kind);
		else
			fprintf(stderr, "test_spec: unknown kind \"%s\" (rotor, chain, hosts, rotation, manifest)\n", kind);
		return 2;
	}
	rc = buf_read_file(&b, file, 4 * SPEC_MAX_BYTES, &e);
	if (rc == ROTOR_ETOOBIG) {
		printf("%s%s: file is larger than %zu bytes\n", batch ? "1\t" : "", file, (size_t)SPEC_MAX_BYTES);
		return 1;
	}
	if (rc < 0) {
		if (batch)
			printf("2\t%s\n", e.msg);
		else
			fprintf(stderr, "test_spec: %s\n", e.msg);
		buf_release(&b);
		return 2;
	}
	rc = load_kind(k, file, b.ptr, b.len, &d);
	buf_release(&b);
	if (rc == 0 && d.n == 0) {
		printf("%sOK\n", batch ? "0\t" : "");
		return 0;
	}
	if (rc == ROTOR_ENOMEM || rc == ROTOR_ERROR || d.n == 0) {
		if (batch)
			printf("2\tload returned %d with %zu diagnostics\n", rc, d.n);
		else
			fprintf(stderr, "test_spec: load returned %d with %zu diagnostics\n", rc, d.n);
		diags_release(&d);
		return 2;
	}
	if (batch) {
		char *first = first_diag(&d);

		printf("1\t%s\n", first ? first : "?");
		free(first);
	} else {
		diags_format(&d, &out);
		fputs(buf_cstr(&out), stdout);
		buf_release(&out);
	}
	diags_release(&d);
	return 1;
}

/* ---- fixtures, one cmocka test each ---- */

struct fixture {
	enum kind kind;
	char *rel;     /* relative to the repository: also the test's name */
	char *expect;  /* bad fixtures: the expected first diagnostic */
};

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sorted names in dir (relative to the repository), NULL-terminated; NULL if none. */
static char **list_dir(const char *rel, size_t *n)
{
	char path[4096];
	struct dirent *de;
	char **v = NULL, **nv;
	size_t cap = 0;
	DIR *dir;

	*n = 0;
	snprintf(path, sizeof(path), "%s/%s", ROTOR_SRCDIR, rel);
	if (!(dir = opendir(path)))
		return NULL;
	while ((de = readdir(dir))) {
		if (de->d_name[0] == '.')
			continue;
		if (*n + 1 >= cap) {
			cap = cap ? cap * 2 : 32;
			if (!(nv = realloc(v, cap * sizeof(*v))))
				break;
			v = nv;
		}
		if (!(v[*n] = strdup(de->d_name)))
			break;
		(*n)++;
	}
	closedir(dir);
	if (v) {
		qsort(v, *n, sizeof(*v), name_cmp);
		v[*n] = NULL;
	}
	return v;
}

static void free_list(char **v)
{
	size_t i;

	for (i = 0; v && v[i]; i++)
		free(v[i]);
	free(v);
}

static int ends_with(const char *s, const char *t)
{
	size_t a = strlen(s), b = strlen(t);

	return a >= b && strcmp(s + a - b, t) == 0;
}

struct fixtures {
	struct fixture *v;
	size_t n, cap;
};

static void add_fixture(struct fixtures *f, enum kind k, const char *rel, const char *expect)
{
	if (f->n == f->cap) {
		size_t ncap = f->cap ? f->cap * 2 : 64;
		struct fixture *nv = realloc(f->v, ncap * sizeof(*nv));

		if (!nv)
			abort();
		f->v = nv;
		f->cap = ncap;
	}
	f->v[f->n].kind = k;
	f->v[f->n].rel = strdup(rel);
	f->v[f->n].expect = expect ? strdup(expect) : NULL;
	if (!f->v[f->n].rel || (expect && !f->v[f->n].expect))
		abort();
	f->n++;
}

static void collect_bad(struct fixtures *f)
{
	size_t nk, nf, i, j;
	char **kinds = list_dir("fixtures/bad", &nk), **files;
	char rel[1024], exp_rel[1024];

	for (i = 0; i < nk; i++) {
		snprintf(rel, sizeof(rel), "fixtures/bad/%s", kinds[i]);
		files = list_dir(rel, &nf);
		for (j = 0; j < nf; j++) {
			struct buf b = BUF_INIT;
			char *nl;

			if (!ends_with(files[j], ".yaml"))
				continue;
			snprintf(rel, sizeof(rel), "fixtures/bad/%s/%s", kinds[i], files[j]);
			snprintf(exp_rel, sizeof(exp_rel), "fixtures/bad/%s/%.*s.expect", kinds[i],
				 (int)(strlen(files[j]) - 5), files[j]);
			if (read_rel(&b, exp_rel, 1 << 16) < 0) {
				add_fixture(f, kind_of(kinds[i]), rel, "(missing .expect file)");
				continue;
			}
			if ((nl = strchr(buf_cstr(&b), '\n')))
				*nl = '\0';
			add_fixture(f, kind_of(kinds[i]), rel, buf_cstr(&b));
			buf_release(&b);
		}
		free_list(files);
	}
	free_list(kinds);
}

static void collect_good_dir(struct fixtures *f, const char *rel, int depth)
{
	size_t n, i;
	char **names = list_dir(rel, &n);
	char sub[1024];

	for (i = 0; i < n; i++) {
		snprintf(sub, sizeof(sub), "%s/%s", rel, names[i]);
		if (ends_with(names[i], ".yaml")) {
			char base[64];
			enum kind k;

			snprintf(base, sizeof(base), "%.*s", (int)(strlen(names[i]) - 5), names[i]);
			k = kind_of(base);
			if (k != K_NONE)
				add_fixture(f, k, sub, NULL);
		} else if (depth < 6) {
			collect_good_dir(f, sub, depth + 1);
		}
	}
	free_list(names);
}

static void test_bad_fixture(void **state)
{
	const struct fixture *fx = *state;
	struct buf b = BUF_INIT;
	struct diags d = { NULL, 0, 0 };
	char *got;
	int rc;

	assert_int_not_equal(fx->kind, K_NONE);
	assert_int_equal(read_rel(&b, fx->rel, 4 * SPEC_MAX_BYTES), 0);
	rc = load_kind(fx->kind, fx->rel, b.ptr, b.len, &d);
	buf_release(&b);
	assert_true(rc == ROTOR_EINVALID || rc == ROTOR_ETOOBIG);
	assert_true(d.n > 0);
	got = first_diag(&d);
	assert_non_null(got);
	if (strcmp(got, fx->expect) != 0)
		print_message("# expected: %s\n#      got: %s\n", fx->expect, got);
	assert_string_equal(got, fx->expect);
	free(got);
	diags_release(&d);
}

static void test_good_fixture(void **state)
{
	const struct fixture *fx = *state;
	struct buf b = BUF_INIT, out = BUF_INIT;
	struct diags d = { NULL, 0, 0 };
	int rc;

	assert_int_equal(read_rel(&b, fx->rel, SPEC_MAX_BYTES), 0);
	rc = load_kind(fx->kind, fx->rel, b.ptr, b.len, &d);
	buf_release(&b);
	if (d.n) {
		diags_format(&d, &out);
		print_message("# %s", buf_cstr(&out));
		buf_release(&out);
	}
	assert_int_equal(d.n, 0);
	assert_int_equal(rc, 0);
	diags_release(&d);
}

static int run_fixture_tests(void)
{
	struct fixtures f = { NULL, 0, 0 };
	struct CMUnitTest *tests;
	size_t i;
	int fails;

	collect_bad(&f);
	collect_good_dir(&f, "fixtures/good", 0);
	if (f.n == 0) {
		printf("not ok - no fixtures found under %s/fixtures\n", ROTOR_SRCDIR);
		return 1;
	}
	if (!(tests = calloc(f.n, sizeof(*tests))))
		return 1;
	for (i = 0; i < f.n; i++) {
		tests[i].name = f.v[i].rel;
		tests[i].test_func = f.v[i].expect ? test_bad_fixture : test_good_fixture;
		tests[i].initial_state = &f.v[i];
	}
	/* The group runner behind cmocka_run_group_tests, for a list built at run time. */
	fails = _cmocka_run_group_tests("fixtures", tests, f.n, NULL, NULL);
	for (i = 0; i < f.n; i++) {
		free(f.v[i].rel);
		free(f.v[i].expect);
	}
	free(f.v);
	free(tests);
	return fails;
}

/* ---- decoded values of the good fixtures ---- */

static void *load_rel(enum kind k, const char *rel)
{
	struct buf b = BUF_INIT;
	struct diags d = { NULL, 0, 0 };
	void *p = NULL;
	int rc = -1;

	assert_int_equal(read_rel(&b, rel, SPEC_MAX_BYTES), 0);
	switch (k) {
	case K_ROTOR:
		rc = spec_load_config((struct rotor_config **)&p, rel, b.ptr, b.len, &d);
		break;
	case K_CHAIN:
		rc = spec_load_chain((struct chain_spec **)&p, rel, b.ptr, b.len, &d);
		break;
	case K_HOSTS:
		rc = spec_load_hosts((struct hosts_spec **)&p, rel, b.ptr, b.len, &d);
		break;
	case K_ROTATION:
		rc = spec_load_rotation((struct rotation_spec **)&p, rel, b.ptr, b.len, &d);
		break;
	case K_MANIFEST:
		rc = spec_load_manifest((struct manifest **)&p, rel, b.ptr, b.len, &d);
		break;
	case K_NONE:
		break;
	}
	buf_release(&b);
	if (d.n)
		print_message("# %s:%d:%d: %s\n", d.v[0].path, d.v[0].line, d.v[0].column, d.v[0].msg);
	assert_int_equal(rc, 0);
	assert_int_equal(d.n, 0);
	assert_non_null(p);
	diags_release(&d);
	return p;
}

static void test_good_basic(void **state)
{
	struct rotor_config *c = load_rel(K_ROTOR, "fixtures/good/basic/rotor.yaml");
	struct chain_spec *ch = load_rel(K_CHAIN, "fixtures/good/basic/envs/poc/chain.yaml");
	struct hosts_spec *h = load_rel(K_HOSTS, "fixtures/good/basic/envs/poc/hosts.yaml");
	struct rotation_spec *r = load_rel(K_ROTATION, "fixtures/good/basic/envs/poc/rotation.yaml");

	(void)state;
	/* rotor.yaml: only what is required; the rest are defaults. */
	assert_int_equal(c->version, 1);
	assert_string_equal(c->key_file, "~/.config/rotor/keys/basic.key");
	assert_null(c->key_id);
	assert_string_equal(c->git_remote, "origin");
	assert_string_equal(c->git_main, "main");
	assert_null(c->ssh_user);
	assert_int_equal(c->ssh_become_sudo, 0);
	assert_null(c->ssh_identity);
	assert_string_equal(c->ssh_known_hosts, "~/.ssh/known_hosts");
	assert_int_equal(c->ssh_port, 22);
	assert_int_equal(c->ssh_connect_timeout_s, 10);
	assert_int_equal(c->parallel, 32);

	assert_string_equal(ch->subj_c, "NL");
	assert_string_equal(ch->subj_o, "Example");
	assert_string_equal(ch->subj_ou, "DBA");
	assert_null(ch->subj_st);
	assert_null(ch->subj_l);
	assert_int_equal(ch->key, SPEC_KEY_EC_P256);
	assert_int_equal(ch->root_days, 3650);
	assert_int_equal(ch->intermediate_days, 1825);
	assert_int_equal(ch->leaf_days, 397);
	assert_int_equal(ch->renew_before_days, 30);
	assert_int_equal(ch->nservers, 2);
	assert_string_equal(ch->servers[0].name, "pg1");
	assert_int_equal(ch->servers[0].nsans, 2);
	assert_string_equal(ch->servers[0].sans[0], "pg1.example.net");
	assert_string_equal(ch->servers[0].sans[1], "10.0.0.11");
	assert_int_equal(ch->servers[0].eku_server, 1);
	assert_int_equal(ch->servers[0].eku_client, 0);
	assert_string_equal(ch->servers[1].name, "pg2");
	assert_int_equal(ch->nclients, 3);
	assert_string_equal(ch->clients[0], "postgres");
	assert_string_equal(ch->clients[2], "replicator");

	assert_int_equal(h->nhosts, 2);
	assert_string_equal(h->hosts[0].name, "pg1");
	assert_string_equal(h->hosts[0].address, "10.0.0.11");
	assert_int_equal(h->hosts[0].port, 0);
	assert_null(h->hosts[0].user);
	assert_int_equal(h->hosts[0].nroles, 2);
	assert_int_equal(h->hosts[0].roles[0].role, SPEC_ROLE_SERVER);
	assert_string_equal(h->hosts[0].roles[0].layout->name, "postgres");
	assert_string_equal(h->hosts[0].roles[0].dir, "/var/lib/postgresql/15/main/certs");
	assert_string_equal(h->hosts[0].roles[0].owner, "postgres");
	assert_string_equal(h->hosts[0].roles[0].identity, "pg1"); /* the host's name by default */
	assert_string_equal(h->hosts[0].roles[0].reload, "systemctl reload postgresql");
	assert_string_equal(h->hosts[0].roles[0].probe->name, "postgres");
	assert_int_equal(h->hosts[0].roles[0].probe_port, 5432);
	assert_false(h->hosts[0].roles[0].probe_none);
	assert_int_equal(h->hosts[0].roles[1].role, SPEC_ROLE_CLIENT);
	assert_string_equal(h->hosts[0].roles[1].layout->name, "libpq");
	assert_string_equal(h->hosts[0].roles[1].user, "postgres");
	assert_string_equal(h->hosts[0].roles[1].home, "/var/lib/postgresql");
	assert_string_equal(h->hosts[0].roles[1].identity, "replicator");
	assert_null(h->hosts[0].roles[1].probe);
	assert_int_equal(h->hosts[0].roles[1].probe_port, 0);
	assert_string_equal(h->hosts[1].name, "app1");
	assert_string_equal(h->hosts[1].address, "app1.example.net");
	assert_int_equal(h->nexternal, 0);

	assert_int_equal(r->generation, 0);
	assert_int_equal(r->target, 0);
	assert_int_equal(r->phase, SPEC_PHASE_STABLE);

	spec_config_free(c);
	spec_chain_free(ch);
	spec_hosts_free(h);
	spec_rotation_free(r);
}

static void test_good_files(void **state)
{
	struct rotor_config *c = load_rel(K_ROTOR, "fixtures/good/rsa-files/rotor.yaml");
	struct chain_spec *ch = load_rel(K_CHAIN, "fixtures/good/rsa-files/envs/poc/chain.yaml");
	struct hosts_spec *h = load_rel(K_HOSTS, "fixtures/good/rsa-files/envs/poc/hosts.yaml");
	struct rotation_spec *r = load_rel(K_ROTATION, "fixtures/good/rsa-files/envs/poc/rotation.yaml");
	struct manifest *m1 = load_rel(K_MANIFEST, "fixtures/good/rsa-files/envs/poc/generations/0001/manifest.yaml");
	struct manifest *m2 = load_rel(K_MANIFEST, "fixtures/good/rsa-files/envs/poc/generations/0002/manifest.yaml");
	const struct host_role *hr;

	(void)state;
	/* rotor.yaml: every key given. */
	assert_string_equal(c->key_file, "/etc/rotor/keys/poc.key");
	assert_string_equal(c->key_id, "0123456789abcdef");
	assert_string_equal(c->git_remote, "upstream");
	assert_string_equal(c->git_main, "release/main");
	assert_string_equal(c->ssh_user, "deploy");
	assert_int_equal(c->ssh_become_sudo, 1);
	assert_string_equal(c->ssh_identity, "~/.ssh/id_ed25519");
	assert_string_equal(c->ssh_known_hosts, "/etc/rotor/known_hosts");
	assert_int_equal(c->ssh_port, 2222);
	assert_int_equal(c->ssh_connect_timeout_s, 120);
	assert_int_equal(c->parallel, 8);

	assert_int_equal(ch->key, SPEC_KEY_RSA_3072);
	assert_string_equal(ch->subj_st, "Noord-Holland");
	assert_string_equal(ch->subj_l, "Amsterdam");
	assert_int_equal(ch->root_days, 20 * 365);
	assert_int_equal(ch->intermediate_days, 52 * 7);
	assert_int_equal(ch->leaf_days, 90);
	assert_int_equal(ch->renew_before_days, 14);
	assert_int_equal(ch->nservers, 1);
	assert_int_equal(ch->servers[0].nsans, 0);
	assert_int_equal(ch->nclients, 1);

	assert_int_equal(h->nhosts, 1);
	assert_int_equal(h->hosts[0].port, 2200);
	assert_string_equal(h->hosts[0].user, "admin");
	hr = &h->hosts[0].roles[0];
	assert_ptr_equal(hr->layout, layout_files());
	assert_int_equal(hr->nfiles, 3);
	assert_string_equal(hr->files[0].path, "/etc/ssl/db/server.pem");
	assert_int_equal(hr->files[0].content, SPEC_CONTENT_LEAF_CHAIN);
	assert_int_equal(hr->files[0].mode, -1);
	assert_string_equal(hr->files[1].path, "/etc/ssl/db/server.key");
	assert_int_equal(hr->files[1].content, SPEC_CONTENT_KEY);
	assert_int_equal(hr->files[1].mode, 0600);
	assert_string_equal(hr->files[1].owner, "db");
	assert_string_equal(hr->files[1].group, "ssl-cert");
	assert_int_equal(hr->files[2].content, SPEC_CONTENT_TRUST);
	assert_int_equal(hr->files[2].mode, 0644);
	assert_string_equal(hr->identity, "db1");
	assert_string_equal(hr->probe->name, "tls");
	assert_int_equal(hr->probe_port, 8443);
	hr = &h->hosts[0].roles[1];
	assert_int_equal(hr->role, SPEC_ROLE_CLIENT);
	assert_int_equal(hr->files[0].content, SPEC_CONTENT_LEAF);
	assert_int_equal(hr->files[0].mode, 0440);
	assert_int_equal(h->nexternal, 2);
	assert_string_equal(h->external[0].name, "billing");
	assert_int_equal(h->external[0].trusts_server, 1);
	assert_int_equal(h->external[0].trusts_client, 0);
	assert_int_equal(h->external[0].trusts_target, 0);
	assert_string_equal(h->external[1].name, "reporting");
	assert_int_equal(h->external[1].trusts_client, 1);
	assert_int_equal(h->external[1].trusts_target, 1);

	assert_int_equal(r->generation, 1);
	assert_int_equal(r->target, 2);
	assert_int_equal(r->phase, SPEC_PHASE_TRUST);

	assert_int_equal(m1->generation, 1);
	assert_int_equal(m1->imported, 1);
	assert_null(m1->certs[0].key);
	assert_int_equal(m2->generation, 2);
	assert_int_equal(m2->imported, 0);
	assert_string_equal(m2->env, "poc");
	assert_int_equal(m2->ncerts, 5);
	assert_int_equal(m2->certs[0].role, CERT_ROLE_ROOT);
	assert_string_equal(m2->certs[0].key, "ca/root.key");
	assert_null(m2->certs[0].aki);
	assert_int_equal(m2->certs[3].role, CERT_ROLE_SERVER);
	assert_string_equal(m2->certs[3].cert, "servers/db1.crt");
	assert_int_equal(m2->certs[4].role, CERT_ROLE_CLIENT);

	spec_config_free(c);
	spec_chain_free(ch);
	spec_hosts_free(h);
	spec_rotation_free(r);
	spec_manifest_free(m1);
	spec_manifest_free(m2);
}

static void test_good_cockroach(void **state)
{
	struct rotor_config *c = load_rel(K_ROTOR, "fixtures/good/cockroach/rotor.yaml");
	struct chain_spec *ch = load_rel(K_CHAIN, "fixtures/good/cockroach/envs/poc/chain.yaml");
	struct hosts_spec *h = load_rel(K_HOSTS, "fixtures/good/cockroach/envs/poc/hosts.yaml");
	struct rotation_spec *r = load_rel(K_ROTATION, "fixtures/good/cockroach/envs/poc/rotation.yaml");

	(void)state;
	assert_int_equal(c->ssh_become_sudo, 0);
	assert_int_equal(c->ssh_connect_timeout_s, 5);
	assert_int_equal(ch->key, SPEC_KEY_ED25519);
	assert_int_equal(ch->nservers, 3);
	assert_int_equal(ch->servers[0].eku_server, 1);
	assert_int_equal(ch->servers[0].eku_client, 1);
	assert_string_equal(ch->servers[0].sans[0], "*.crdb.example.net");
	assert_string_equal(ch->servers[0].sans[1], "fd00::11");
	assert_string_equal(ch->servers[0].sans[2], "::ffff:10.0.0.11");
	assert_int_equal(ch->nclients, 1);
	assert_string_equal(h->hosts[0].address, "fd00::11");
	assert_string_equal(h->hosts[0].roles[0].layout->name, "cockroach");
	assert_string_equal(h->hosts[0].roles[0].dir, "/var/lib/cockroach/certs");
	assert_string_equal(h->hosts[0].roles[1].identity, "root");
	assert_int_equal(r->phase, SPEC_PHASE_CLIENTS);
	assert_int_equal(r->generation, 1);
	assert_int_equal(r->target, 2);
	spec_config_free(c);
	spec_chain_free(ch);
	spec_hosts_free(h);
	spec_rotation_free(r);
}

static void test_good_edge(void **state)
{
	struct rotor_config *c = load_rel(K_ROTOR, "fixtures/good/edge/rotor.yaml");
	struct chain_spec *ch = load_rel(K_CHAIN, "fixtures/good/edge/envs/poc/chain.yaml");
	struct hosts_spec *h = load_rel(K_HOSTS, "fixtures/good/edge/envs/poc/hosts.yaml");

	(void)state;
	/* A byte order mark and CRLF line ends. */
	assert_string_equal(c->key_file, "/srv/keys/edge key.key");
	assert_int_equal(c->parallel, 1);
	/* Quoted YAML 1.1 booleans are strings; UTF-8 is kept as is. */
	assert_string_equal(ch->subj_c, "NO");
	assert_string_equal(ch->subj_o, "Tr\xc3\xb8ndelag Fylkeskommune");
	assert_string_equal(ch->subj_ou, "yes");
	assert_int_equal(ch->key, SPEC_KEY_EC_P384);
	assert_string_equal(ch->clients[0], "on");
	assert_string_equal(ch->clients[1], "1234");
	/* A folded block scalar without a final newline. */
	assert_string_equal(h->hosts[0].roles[0].reload, "pg_ctlcluster 15 main reload && logger rotor reloaded");
	assert_int_equal(h->hosts[0].roles[0].files[0].mode, 0600);
	assert_int_equal(h->hosts[0].port, 22);
	/* probe: none, plain or quoted; two server roles of one host share its leaf. */
	assert_int_equal(h->hosts[0].nroles, 2);
	assert_true(h->hosts[0].roles[0].probe_none);
	assert_null(h->hosts[0].roles[0].probe);
	assert_int_equal(h->hosts[0].roles[0].probe_port, 0);
	assert_true(h->hosts[0].roles[1].probe_none);
	assert_string_equal(h->hosts[0].roles[1].identity, "pg-1.a");
	/* One address (any casing) with two ssh ports; one client identity on both. */
	assert_int_equal(h->nhosts, 3);
	assert_string_equal(h->hosts[1].address, "APP.example.net");
	assert_int_equal(h->hosts[1].port, 2201);
	assert_int_equal(h->hosts[2].port, 2202);
	assert_string_equal(h->hosts[2].roles[0].identity, h->hosts[1].roles[0].identity);
	assert_false(h->hosts[1].roles[0].probe_none);
	/* Switch mode: the service file and the directories default under home. */
	assert_null(h->hosts[1].roles[0].service);
	assert_string_equal(h->hosts[2].roles[0].service, "rotor-app.1");
	assert_string_equal(h->hosts[2].roles[0].service_file, "/home/app/.pg_service.conf");
	assert_string_equal(h->hosts[2].roles[0].switch_dir, "/home/app/.postgresql/rotor");
	assert_false(h->hosts[2].roles[0].adopt);
	spec_config_free(c);
	spec_chain_free(ch);
	spec_hosts_free(h);
}

/* ---- emitters ---- */

static struct manifest *sample_manifest(void)
{
	static const char *const names[] = { "root", "server-ca", "client-ca", "pg1", "app_rw" };
	static const char *const certs[] = { "ca/root.crt", "ca/server-ca.crt", "ca/client-ca.crt", "servers/pg1.crt",
					     "clients/app_rw.crt" };
	struct manifest *m = calloc(1, sizeof(*m));
	size_t i;
	char tmp[128];

	assert_non_null(m);
	m->version = 1;
	m->env = strdup("poc");
	m->generation = 7;
	m->created = strdup("2026-11-23T11:45:00Z");
	m->ncerts = 5;
	m->certs = calloc(5, sizeof(*m->certs));
	assert_non_null(m->certs);
	for (i = 0; i < 5; i++) {
		struct manifest_cert *c = &m->certs[i];

		c->name = strdup(names[i]);
		c->role = (enum cert_role)i;
		c->cert = strdup(certs[i]);
		snprintf(tmp, sizeof(tmp), "%.*s.key", (int)(strlen(certs[i]) - 4), certs[i]);
		c->key = strdup(tmp);
		/* Quotes, backslashes, commas and UTF-8 survive the trip. */
		snprintf(tmp, sizeof(tmp), "CN=%s g7,O=Ex\\\"am\\\\ple \"q\",L=Z\xc3\xbcrich", names[i]);
		c->subject = strdup(tmp);
		c->issuer = strdup(i == 0 ? tmp : "CN=poc root g7,O=Example");
		c->fingerprint = strdup("00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:"
					"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF");
		c->serial = strdup(i == 4 ? "-01ff" : "7f3a09");
		c->ski = strdup("AB:CD:EF");
		c->aki = i == 0 ? NULL : strdup("01:02:03");
		c->not_before = strdup("2026-11-23T11:40:00Z");
		c->not_after = strdup("2036-11-21T11:45:00Z");
	}
	return m;
}

static void assert_same_manifest(const struct manifest *a, const struct manifest *b)
{
	size_t i;

#define SAME(f) assert_true((!a->f && !b->f) || (a->f && b->f && strcmp(a->f, b->f) == 0))
	assert_int_equal(a->version, b->version);
	SAME(env);
	assert_int_equal(a->generation, b->generation);
	assert_int_equal(a->imported, b->imported);
	SAME(created);
	assert_int_equal(a->ncerts, b->ncerts);
#undef SAME
#define SAME(f) assert_true((!a->certs[i].f && !b->certs[i].f) || \
			    (a->certs[i].f && b->certs[i].f && strcmp(a->certs[i].f, b->certs[i].f) == 0))
	for (i = 0; i < a->ncerts; i++) {
		SAME(name);
		assert_int_equal(a->certs[i].role, b->certs[i].role);
		SAME(cert);
		SAME(key);
		SAME(subject);
		SAME(issuer);
		SAME(fingerprint);
		SAME(serial);
		SAME(ski);
		SAME(aki);
		SAME(not_before);
		SAME(not_after);
	}
#undef SAME
}

static void test_manifest_roundtrip(void **state)
{
	struct manifest *m = sample_manifest(), *back = NULL;
	struct buf a = BUF_INIT, b = BUF_INIT;
	struct diags d = { NULL, 0, 0 };
	struct err e = ERR_INIT;

	(void)state;
	assert_int_equal(spec_manifest_emit(m, &a, &e), 0);
	assert_int_equal(spec_load_manifest(&back, "manifest.yaml", a.ptr, a.len, &d), 0);
	assert_int_equal(d.n, 0);
	assert_same_manifest(m, back);
	/* Deterministic: emitting what was read gives the same bytes. */
	assert_int_equal(spec_manifest_emit(back, &b, &e), 0);
	assert_int_equal(a.len, b.len);
	assert_memory_equal(a.ptr, b.ptr, a.len);
	assert_non_null(strstr(a.ptr, "\n    subject: \"CN=pg1 g7,O=Ex\\\\\\\"am\\\\\\\\ple \\\"q\\\",L=Z\xc3\xbcrich\"\n"));
	spec_manifest_free(back);
	back = NULL;

	/* Imported: no keys. */
	for (size_t i = 0; i < m->ncerts; i++) {
		free(m->certs[i].key);
		m->certs[i].key = NULL;
	}
	m->imported = 1;
	buf_release(&b);
	assert_int_equal(spec_manifest_emit(m, &b, &e), 0);
	assert_null(strstr(b.ptr, "key:"));
	assert_int_equal(spec_load_manifest(&back, "manifest.yaml", b.ptr, b.len, &d), 0);
	assert_same_manifest(m, back);
	spec_manifest_free(back);

	/* The golden fixture is exactly what the emitter writes for it. */
	buf_release(&a);
	buf_release(&b);
	back = load_rel(K_MANIFEST, "fixtures/good/rsa-files/envs/poc/generations/0002/manifest.yaml");
	assert_int_equal(read_rel(&a, "fixtures/good/rsa-files/envs/poc/generations/0002/manifest.yaml", SPEC_MAX_BYTES), 0);
	assert_int_equal(spec_manifest_emit(back, &b, &e), 0);
	assert_string_equal(buf_cstr(&b), buf_cstr(&a));
	spec_manifest_free(back);

	buf_release(&a);
	buf_release(&b);
	diags_release(&d);
	spec_manifest_free(m);
}

static void test_manifest_emit_refuses(void **state)
{
	struct manifest *m = sample_manifest();
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;

	(void)state;
	/* A field the loader would refuse never reaches the output. */
	free(m->certs[3].fingerprint);
	m->certs[3].fingerprint = strdup("aa:bb");
	assert_int_equal(spec_manifest_emit(m, &out, &e), ROTOR_EINVALID);
	assert_non_null(strstr(e.msg, "certs[3].fingerprint"));
	assert_int_equal(out.len, 0);

	/* A control character: escaped in the text, refused on load back. */
	free(m->certs[3].fingerprint);
	m->certs[3].fingerprint = strdup(m->certs[2].fingerprint);
	free(m->certs[1].subject);
	m->certs[1].subject = strdup("CN=x\n- name: injected");
	err_clear(&e);
	assert_int_equal(spec_manifest_emit(m, &out, &e), ROTOR_EINVALID);
	assert_non_null(strstr(e.msg, "certs[1].subject"));
	assert_int_equal(out.len, 0);

	/* Invalid UTF-8. */
	free(m->certs[1].subject);
	m->certs[1].subject = strdup("CN=\xff");
	err_clear(&e);
	assert_int_equal(spec_manifest_emit(m, &out, &e), ROTOR_EINVALID);

	/* A missing field. */
	free(m->certs[1].subject);
	m->certs[1].subject = NULL;
	err_clear(&e);
	assert_int_equal(spec_manifest_emit(m, &out, &e), ROTOR_EINVALID);
	assert_non_null(strstr(e.msg, "certs[1].subject"));
	spec_manifest_free(m);
}

static void test_rotation_emit(void **state)
{
	static const struct rotation_spec good[] = {
		{ 0, 0, SPEC_PHASE_STABLE }, { 1, 0, SPEC_PHASE_STABLE },  { 1, 2, SPEC_PHASE_TRUST },
		{ 1, 2, SPEC_PHASE_SERVERS }, { 0, 1, SPEC_PHASE_CLIENTS }, { 9998, 9999, SPEC_PHASE_TRUST },
	};
	static const struct rotation_spec bad[] = {
		{ 0, 1, SPEC_PHASE_STABLE }, { 2, 2, SPEC_PHASE_TRUST },      { 1, 0, SPEC_PHASE_TRUST },
		{ -1, 0, SPEC_PHASE_STABLE }, { 1, 10000, SPEC_PHASE_TRUST }, { 1, 2, (enum spec_phase)7 },
	};
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		struct buf b = BUF_INIT, b2 = BUF_INIT;
		struct rotation_spec *r = NULL;
		struct diags d = { NULL, 0, 0 };

		assert_int_equal(spec_rotation_emit(&good[i], &b), 0);
		assert_true(b.ptr[0] == '#');
		assert_int_equal(spec_load_rotation(&r, "rotation.yaml", b.ptr, b.len, &d), 0);
		assert_int_equal(r->generation, good[i].generation);
		assert_int_equal(r->target, good[i].target);
		assert_int_equal(r->phase, good[i].phase);
		assert_int_equal(spec_rotation_emit(r, &b2), 0);
		assert_string_equal(b.ptr, b2.ptr);
		spec_rotation_free(r);
		buf_release(&b);
		buf_release(&b2);
	}
	{
		struct buf b = BUF_INIT;
		static const struct rotation_spec t = { 1, 2, SPEC_PHASE_SERVERS };

		assert_int_equal(spec_rotation_emit(&t, &b), 0);
		assert_non_null(strstr(b.ptr, "\ngeneration: 1\ntarget: 2\nphase: servers\n"));
		buf_release(&b);
	}
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct buf b = BUF_INIT;

		assert_int_equal(spec_rotation_emit(&bad[i], &b), ROTOR_EINVALID);
		assert_int_equal(b.len, 0);
	}
}

/* ---- scalar typing: PyYAML SafeLoader's answers ---- */

struct typing {
	const char *text;
	enum yscalar type;
	int fits, value, bad;
};

static const struct typing typings[] = {
	{ "", YS_NULL, 0, 0, 0 },	     { "~", YS_NULL, 0, 0, 0 },	       { "null", YS_NULL, 0, 0, 0 },
	{ "Null", YS_NULL, 0, 0, 0 },	     { "NULL", YS_NULL, 0, 0, 0 },      { "nULL", YS_STR, 0, 0, 0 },
	{ "none", YS_STR, 0, 0, 0 },	     { "yes", YS_BOOL, 0, 1, 0 },       { "Yes", YS_BOOL, 0, 1, 0 },
	{ "YES", YS_BOOL, 0, 1, 0 },	     { "yEs", YS_STR, 0, 0, 0 },        { "y", YS_STR, 0, 0, 0 },
	{ "n", YS_STR, 0, 0, 0 },	     { "on", YS_BOOL, 0, 1, 0 },        { "Off", YS_BOOL, 0, 0, 0 },
	{ "NO", YS_BOOL, 0, 0, 0 },	     { "tRue", YS_STR, 0, 0, 0 },       { "0", YS_INT, 1, 0, 0 },
	{ "-0", YS_INT, 1, 0, 0 },	     { "+0", YS_INT, 1, 0, 0 },	        { "00", YS_INT, 1, 0, 0 },
	{ "0_", YS_INT, 1, 0, 0 },	     { "07", YS_INT, 1, 7, 0 },	        { "08", YS_STR, 0, 0, 0 },
	{ "0o7", YS_STR, 0, 0, 0 },	     { "0b101", YS_INT, 1, 5, 0 },      { "0b", YS_STR, 0, 0, 0 },
	{ "0b2", YS_STR, 0, 0, 0 },	     { "0x1F", YS_INT, 1, 31, 0 },      { "0xg", YS_STR, 0, 0, 0 },
	{ "0x", YS_STR, 0, 0, 0 },	     { "1_000", YS_INT, 1, 1000, 0 },   { "1__", YS_INT, 1, 1, 0 },
	{ "_1", YS_STR, 0, 0, 0 },	     { "1:30", YS_INT, 1, 90, 0 },      { "1:60", YS_STR, 0, 0, 0 },
	{ "190:20:30", YS_INT, 1, 685230, 0 }, { "-1:30", YS_INT, 1, -90, 0 }, { "0:30", YS_STR, 0, 0, 0 },
	{ "2147483647", YS_INT, 1, 2147483647, 0 }, { "2147483648", YS_INT, 0, 0, 0 },
	{ "-2147483648", YS_INT, 1, -2147483647 - 1, 0 }, { "-2147483649", YS_INT, 0, 0, 0 },
	{ "99999999999999999999", YS_INT, 0, 0, 0 }, { "1.", YS_FLOAT, 0, 0, 0 }, { "1.5", YS_FLOAT, 0, 0, 0 },
	{ ".5", YS_FLOAT, 0, 0, 0 },	     { "+.5", YS_STR, 0, 0, 0 },        { "-.5", YS_STR, 0, 0, 0 },
	{ "1e5", YS_STR, 0, 0, 0 },	     { "1.0e5", YS_STR, 0, 0, 0 },      { "1.0e+5", YS_FLOAT, 0, 0, 0 },
	{ "1.e-5", YS_FLOAT, 0, 0, 0 },      { "._", YS_STR, 0, 0, 0 },	        { "1_2.3", YS_FLOAT, 0, 0, 0 },
	{ "1:30.5", YS_FLOAT, 0, 0, 0 },     { "1:30.", YS_FLOAT, 0, 0, 0 },    { "1:30.5e+1", YS_STR, 0, 0, 0 },
	{ "1:2:3.4", YS_FLOAT, 0, 0, 0 },    { ".inf", YS_FLOAT, 0, 0, 0 },     { "-.inf", YS_FLOAT, 0, 0, 0 },
	{ "+.INF", YS_FLOAT, 0, 0, 0 },      { ".Inf", YS_FLOAT, 0, 0, 0 },     { ".nan", YS_FLOAT, 0, 0, 0 },
	{ "-.nan", YS_STR, 0, 0, 0 },	     { ".NaN", YS_FLOAT, 0, 0, 0 },     { "2026-01-31", YS_TIMESTAMP, 0, 0, 0 },
	{ "2026-1-31", YS_STR, 0, 0, 0 },    { "2026-01-31T10:00:00Z", YS_TIMESTAMP, 0, 0, 0 },
	{ "2026-1-1 1:00:00", YS_TIMESTAMP, 0, 0, 0 }, { "2026-01-31t10:00:00.5 +01:00", YS_TIMESTAMP, 0, 0, 0 },
	{ "2026-01-31 10:00:00 -5", YS_TIMESTAMP, 0, 0, 0 }, { "2026-01-31T10:00:00+0100", YS_STR, 0, 0, 0 },
	{ "10.0.0.1", YS_STR, 0, 0, 0 },     { "1:2", YS_INT, 1, 62, 0 },       { "P-256", YS_STR, 0, 0, 0 },
	{ "10s", YS_STR, 0, 0, 0 },	     { "397d", YS_STR, 0, 0, 0 },       { "-0b11", YS_INT, 1, -3, 0 },
	{ "+0x_1", YS_INT, 1, 1, 0 },	     { "0600", YS_INT, 1, 0600, 0 },    { "0777", YS_INT, 1, 0777, 0 },
	{ "0_600", YS_INT, 1, 0600, 0 },     { "0x_", YS_INT, 0, 0, 1 },        { "0b_", YS_INT, 0, 0, 1 },
	{ "=", YS_STR, 0, 0, 1 },	     { "<<", YS_STR, 0, 0, 1 },
};

static void test_scalar_typing(void **state)
{
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(typings) / sizeof(typings[0]); i++) {
		const struct typing *t = &typings[i];
		struct diags d = { NULL, 0, 0 };
		struct ysink s;
		struct ydoc *doc = NULL;
		const struct ynode *root, *v;
		char text[128];
		int n = snprintf(text, sizeof(text), "a: %s\n", t->text);

		ysink_init(&s, &d, "t.yaml");
		if (ydoc_parse(&doc, text, (size_t)n, &s) != 0)
			print_message("# %s: %s\n", t->text, d.n ? d.v[0].msg : "?");
		assert_non_null(doc);
		root = ydoc_root(doc);
		assert_non_null(root);
		assert_int_equal(root->kind, YNODE_MAP);
		v = root->first->value;
		assert_non_null(v);
		if ((int)v->type != (int)t->type || v->bad != t->bad)
			print_message("# %s: type %d bad %d, want type %d bad %d\n", t->text, v->type, v->bad, t->type,
				      t->bad);
		assert_int_equal(v->bad, t->bad);
		assert_int_equal(d.n, (size_t)t->bad);
		if (!t->bad)
			assert_int_equal(v->type, t->type);
		if (t->type == YS_INT && !t->bad) {
			assert_int_equal(v->int_fits, t->fits);
			if (t->fits)
				assert_int_equal(v->ival, t->value);
		}
		if (t->type == YS_BOOL)
			assert_int_equal(v->ival, t->value);
		ydoc_free(doc);
		diags_release(&d);
	}
	/* Quoted and block scalars are always strings. */
	{
		struct diags d = { NULL, 0, 0 };
		struct ysink s;
		struct ydoc *doc = NULL;
		const struct ynode *it;
		const char *text = "- 'yes'\n- \"1\"\n- |\n  null\n- >-\n  0x10\n";

		ysink_init(&s, &d, "t.yaml");
		assert_int_equal(ydoc_parse(&doc, text, strlen(text), &s), 0);
		for (it = ydoc_root(doc)->first; it; it = it->next)
			assert_int_equal(it->type, YS_STR);
		ydoc_free(doc);
		diags_release(&d);
	}
}

/* ---- hostile input ---- */

static int load_all_kinds(const char *data, size_t len, struct diags *d)
{
	int k, rc = 0;

	for (k = 0; k < K_NONE; k++) {
		int r = load_kind((enum kind)k, "hostile.yaml", data, len, d);

		assert_int_not_equal(r, ROTOR_ERROR);
		if (r < 0)
			rc = r;
	}
	return rc;
}

static void test_deep_nesting(void **state)
{
	static const char *const opens[] = { "[", "{a: ", "- ", "a:\n" };
	size_t depth = 10000, i, o;

	(void)state;
	for (o = 0; o < 4; o++) {
		struct buf b = BUF_INIT;
		struct diags d = { NULL, 0, 0 };

		for (i = 0; i < depth; i++) {
			if (o == 2 || o == 3) {
				/* Block style: indent grows by one level each time. */
				assert_int_equal(buf_printf(&b, "%*s%s", (int)(o == 2 ? 2 * i : i), "", opens[o]), 0);
				if (o == 2)
					assert_int_equal(buf_puts(&b, "\n"), 0);
				if (b.len > SPEC_MAX_BYTES / 2)
					break;
			} else {
				assert_int_equal(buf_puts(&b, opens[o]), 0);
			}
		}
		assert_int_equal(spec_load_chain(NULL, "deep.yaml", b.ptr, b.len, &d), ROTOR_ETOOBIG);
		assert_int_equal(d.n, 1);
		assert_string_equal(d.v[0].msg, "nesting deeper than 64 levels");
		buf_release(&b);
		diags_release(&d);
	}
	/* Exactly 64 levels are fine (as far as nesting goes). */
	{
		struct buf b = BUF_INIT;
		struct diags d = { NULL, 0, 0 };
		struct ysink s;
		struct ydoc *doc = NULL;

		for (i = 0; i < 64; i++)
			assert_int_equal(buf_puts(&b, "["), 0);
		for (i = 0; i < 64; i++)
			assert_int_equal(buf_puts(&b, "]"), 0);
		ysink_init(&s, &d, "t.yaml");
		assert_int_equal(ydoc_parse(&doc, b.ptr, b.len, &s), 0);
		assert_int_equal(d.n, 0);
		ydoc_free(doc);
		buf_release(&b);
		for (i = 0; i < 65; i++)
			assert_int_equal(buf_puts(&b, "["), 0);
		ysink_init(&s, &d, "t.yaml");
		assert_int_equal(ydoc_parse(&doc, b.ptr, b.len, &s), ROTOR_ETOOBIG);
		assert_int_equal(d.v[0].line, 1);
		assert_int_equal(d.v[0].column, 65);
		buf_release(&b);
		diags_release(&d);
	}
}

static void test_oversized(void **state)
{
	struct buf b = BUF_INIT;
	struct diags d = { NULL, 0, 0 };
	char *text;

	(void)state;
	/* 1 MiB of a valid file is read; one byte more is refused unread. */
	assert_int_equal(buf_puts(&b, "version: 1\nsecrets: {key_file: /k}\n"), 0);
	while (b.len < SPEC_MAX_BYTES)
		assert_int_equal(buf_puts(&b, "# padding padding padding padding padding padding padding\n"), 0);
	buf_truncate(&b, SPEC_MAX_BYTES - 1);
	assert_int_equal(buf_puts(&b, "\n"), 0);
	assert_int_equal(b.len, SPEC_MAX_BYTES);
	assert_int_equal(spec_load_config(NULL, "big.yaml", b.ptr, b.len, &d), 0);
	assert_int_equal(d.n, 0);
	assert_int_equal(buf_puts(&b, "#"), 0);
	assert_int_equal(spec_load_config(NULL, "big.yaml", b.ptr, b.len, &d), ROTOR_ETOOBIG);
	assert_int_equal(d.n, 1);
	assert_int_equal(d.v[0].line, 0);
	text = first_diag(&d);
	assert_string_equal(text, "big.yaml: file is larger than 1048576 bytes");
	free(text);
	buf_release(&b);
	diags_release(&d);
}

static void test_garbage(void **state)
{
	unsigned long x = 88172645463325252UL;
	size_t round, i;

	(void)state;
	/* Random bytes, and random mixes of YAML punctuation (xorshift, fixed seed). */
	for (round = 0; round < 300; round++) {
		static const char alphabet[] = "[]{}:,-?&*!|>'\"#%@` \n\t\r\\abc019.~";
		char data[512];
		struct diags d = { NULL, 0, 0 };
		size_t len = 1 + round % sizeof(data);

		for (i = 0; i < len; i++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			data[i] = round % 2 ? (char)(x & 0xFF) : alphabet[x % (sizeof(alphabet) - 1)];
		}
		load_all_kinds(data, len, &d);
		assert_true(d.n <= 5 * (YSINK_MAX + 1));
		diags_release(&d);
	}
}

static void test_nul_and_utf8(void **state)
{
	static const char nul[] = "version: 1\nsecrets: {key_file: /k\0x}\n";
	static const char bad8[] = "version: 1\nsecrets: {key_file: \"/k\xff\"}\n";
	static const char esc[] = "version: 1\nsecrets: {key_file: \"/k\\0x\"}\n";
	struct diags d = { NULL, 0, 0 };
	char *t;

	(void)state;
	assert_int_equal(spec_load_config(NULL, "r.yaml", nul, sizeof(nul) - 1, &d), ROTOR_EINVALID);
	t = first_diag(&d);
	assert_string_equal(t, "r.yaml:2:23: invalid YAML: control characters are not allowed (U+0000)");
	free(t);
	diags_release(&d);
	assert_int_equal(spec_load_config(NULL, "r.yaml", bad8, sizeof(bad8) - 1, &d), ROTOR_EINVALID);
	t = first_diag(&d);
	assert_string_equal(t, "r.yaml:2:24: invalid YAML: invalid leading UTF-8 octet (at byte 0xFF); files must be UTF-8");
	free(t);
	diags_release(&d);
	/* An escaped NUL parses, and is refused as a control character. */
	assert_int_equal(spec_load_config(NULL, "r.yaml", esc, sizeof(esc) - 1, &d), ROTOR_EINVALID);
	t = first_diag(&d);
	assert_string_equal(t, "r.yaml:2:21: secrets.key_file: \"/k\\x00x\" contains a control character");
	free(t);
	diags_release(&d);
}

static void test_billion_laughs(void **state)
{
	struct buf b = BUF_INIT;
	struct diags d = { NULL, 0, 0 };
	int i, j;

	(void)state;
	assert_int_equal(buf_puts(&b, "a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n"), 0);
	for (i = 1; i < 10; i++) {
		assert_int_equal(buf_printf(&b, "a%d: &a%d [", i, i), 0);
		for (j = 0; j < 9; j++)
			assert_int_equal(buf_printf(&b, "%s*a%d", j ? ", " : "", i - 1), 0);
		assert_int_equal(buf_puts(&b, "]\n"), 0);
	}
	assert_int_equal(load_all_kinds(b.ptr, b.len, &d), ROTOR_EINVALID);
	/* Each kind stops keeping problems after YSINK_MAX, and nothing expands. */
	assert_true(d.n <= 5 * (YSINK_MAX + 1));
	/* rotor.yaml's view: the key first, then its anchor. */
	assert_string_equal(d.v[0].msg, "unknown key \"a0\" (expected one of: version, secrets, git, ssh, parallel)");
	assert_string_equal(d.v[1].msg, "anchors are not allowed (found &a0); write the value out in full");
	assert_string_equal(d.v[4].msg, "aliases are not allowed (found *a0); write the value out in full");
	buf_release(&b);
	diags_release(&d);
}

static void test_every_problem(void **state)
{
	static const char text[] =
		"version: 2\n"
		"secrets: {key_file: relative.key, key_id: XYZ}\n"
		"ssh: {port: 0, become: yes, bogus: 1}\n"
		"ssh: {}\n"
		"parallel: 2000\n";
	static const char *const want[] = {
		"r.yaml:1:10: version: unsupported version 2 (this rotor reads version 1)",
		"r.yaml:2:21: secrets.key_file: \"relative.key\" must be an absolute path or start with ~/",
		"r.yaml:2:43: secrets.key_id: \"XYZ\" is not 16 lowercase hex digits",
		"r.yaml:3:13: ssh.port: 0 is out of range (1 to 65535)",
		"r.yaml:3:24: ssh.become: expected none or sudo, found a boolean (yes)",
		("r.yaml:3:29: ssh: unknown key \"bogus\" (expected one of: user, become, identity, known_hosts, port, "
		 "connect_timeout)"),
		"r.yaml:4:1: duplicate key \"ssh\" (first defined at line 3)",
		"r.yaml:5:11: parallel: 2000 is out of range (1 to 1024)",
	};
	struct diags d = { NULL, 0, 0 };
	struct buf out = BUF_INIT;
	size_t i;

	(void)state;
	assert_int_equal(spec_load_config(NULL, "r.yaml", text, sizeof(text) - 1, &d), ROTOR_EINVALID);
	diags_format(&d, &out);
	if (d.n != sizeof(want) / sizeof(want[0]))
		print_message("%s", buf_cstr(&out));
	assert_int_equal(d.n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < d.n; i++) {
		char line[512];

		snprintf(line, sizeof(line), "%s:%d:%d: %s", d.v[i].path, d.v[i].line, d.v[i].column, d.v[i].msg);
		assert_string_equal(line, want[i]);
	}
	buf_release(&out);
	diags_release(&d);
}

/* Every line of a hosts.yaml's diagnostics, "path:line:column: message", joined by newlines. */
static void hosts_problems(struct buf *out, const char *text)
{
	struct diags d = { NULL, 0, 0 };
	size_t i;

	buf_truncate(out, 0);
	if (spec_load_hosts(NULL, "h.yaml", text, strlen(text), &d) == 0)
		assert_int_equal(d.n, 0);
	for (i = 0; i < d.n; i++)
		buf_printf(out, "%s:%d:%d: %s\n", d.v[i].path, d.v[i].line, d.v[i].column, d.v[i].msg);
	diags_release(&d);
	assert_false(out->err);
}

/*
 * Addresses and server identities across hosts: every later host that
 * collides is reported once, at its own node, naming the earliest host it
 * collides with and where that one is.
 */
static void test_host_duplicates(void **state)
{
	static const char three[] =
		"hosts:\n"
		"  a: {address: 10.0.0.1, roles: [{role: client, layout: libpq, user: u, home: /h, identity: app}]}\n"
		"  b: {address: 10.0.0.1, port: 2202, roles: [{role: client, layout: libpq, user: u, home: /h, identity: app}]}\n"
		"  c: {address: 10.0.0.2, port: 2203, roles: [{role: client, layout: libpq, user: u, home: /h, identity: app}]}\n"
		"  d: {address: 10.0.0.2, port: 2203, roles: [{role: client, layout: libpq, user: u, home: /h, identity: app}]}\n";
	static const char three_want[] =
		"h.yaml:3:16: hosts.b.address: address \"10.0.0.1\" is also host a's (h.yaml:2:16): hosts may share an "
		"address only when each writes its own ssh \"port:\" and the ports differ\n"
		"h.yaml:5:16: hosts.d.address: address \"10.0.0.2\" with ssh port 2203 is also host c's (h.yaml:4:16): "
		"give each host its own address or ssh port\n";
	static const char ids[] =
		"hosts:\n"
		"  a: {address: a.example, roles: [{role: server, files: [{path: /x, content: key}], probe: none},\n"
		"                                  {role: server, files: [{path: /y, content: key}], probe: none}]}\n"
		"  b: {address: b.example, roles: [{role: server, identity: a, files: [{path: /x, content: key}], probe: none},\n"
		"                                  {role: server, identity: a, files: [{path: /y, content: key}], probe: none}]}\n"
		"  c: {address: c.example, roles: [{role: client, identity: a, files: [{path: /x, content: key}]}]}\n";
	struct buf out = BUF_INIT, y = BUF_INIT;
	size_t i;

	(void)state;
	hosts_problems(&out, three);
	assert_string_equal(buf_cstr(&out), three_want);
	/* Both of b's roles are refused (a's two roles share one leaf, on one host); a client named a is another leaf. */
	hosts_problems(&out, ids);
	assert_non_null(strstr(buf_cstr(&out), "h.yaml:4:60: hosts.b.roles[0].identity: server identity \"a\" is also "
						 "host a's (its name, by default; h.yaml:2:35)"));
	assert_non_null(strstr(buf_cstr(&out), "h.yaml:5:60: hosts.b.roles[1].identity: server identity \"a\""));
	assert_null(strstr(buf_cstr(&out), "hosts.c"));
	assert_null(strstr(buf_cstr(&out), "hosts.a"));

	/* 2000 hosts on one address, each with its own port, and a client identity they share: valid. */
	buf_printf(&y, "hosts:\n");
	for (i = 0; i < 2000; i++)
		buf_printf(&y, "  h%zu: {address: \"FD00::1\", port: %zu, roles: [{role: client, layout: libpq, user: u, "
			   "home: /h, identity: app}]}\n", i, 1000 + i);
	hosts_problems(&out, buf_cstr(&y));
	assert_string_equal(buf_cstr(&out), "");
	/* ... and one more without a port collides with the first of them only. */
	buf_printf(&y, "  late: {address: \"fd00:0::1\", roles: [{role: client, layout: libpq, user: u, home: /h, "
		   "identity: app}]}\n");
	hosts_problems(&out, buf_cstr(&y));
	assert_non_null(strstr(buf_cstr(&out), "h.yaml:2002:19: hosts.late.address: address \"fd00:0::1\" is also host "
						 "h0's (h.yaml:2:17, written \"FD00::1\")"));
	assert_null(strchr(strchr(buf_cstr(&out), '\n') + 1, '\n'));
	buf_release(&y);
	buf_release(&out);
}

static void test_problem_cap(void **state)
{
	struct buf b = BUF_INIT;
	struct diags d = { NULL, 0, 0 };
	int i;

	(void)state;
	assert_int_equal(buf_puts(&b, "version: 1\nsecrets: {key_file: /k}\n"), 0);
	for (i = 0; i < 1000; i++)
		assert_int_equal(buf_printf(&b, "bogus%d: 1\n", i), 0);
	assert_int_equal(spec_load_config(NULL, "r.yaml", b.ptr, b.len, &d), ROTOR_EINVALID);
	assert_int_equal(d.n, YSINK_MAX + 1);
	assert_string_equal(d.v[YSINK_MAX].msg, "900 more problems not shown");
	assert_int_equal(d.v[YSINK_MAX].line, 0);
	buf_release(&b);
	diags_release(&d);
}

static void test_empty_and_null_diags(void **state)
{
	struct diags d = { NULL, 0, 0 };
	struct rotation_spec *r = NULL;
	struct hosts_spec *h = NULL;
	char *t;

	(void)state;
	/* An empty file is an empty document: the required keys are missing. */
	assert_int_equal(spec_load_rotation(&r, "rot.yaml", "", 0, &d), ROTOR_EINVALID);
	assert_null(r);
	t = first_diag(&d);
	assert_string_equal(t, "rot.yaml: missing required key \"phase\" (the file is empty)");
	free(t);
	diags_release(&d);
	assert_int_equal(spec_load_rotation(&r, "rot.yaml", "# only a comment\n", 17, &d), ROTOR_EINVALID);
	diags_release(&d);
	assert_int_equal(spec_load_hosts(&h, "h.yaml", "hosts: {}\n", 10, &d), 0);
	assert_non_null(h);
	assert_int_equal(h->nhosts, 0);
	spec_hosts_free(h);
	/* Without a diags the loaders still answer. */
	assert_int_equal(spec_load_rotation(&r, "rot.yaml", "phase: trust\n", 13, NULL), ROTOR_EINVALID);
	assert_null(r);
	assert_int_equal(spec_load_rotation(&r, "rot.yaml", "phase: stable\n", 14, NULL), 0);
	assert_non_null(r);
	spec_rotation_free(r);
	/* NULL data with length 0 is an empty file. */
	assert_int_equal(spec_load_rotation(NULL, "rot.yaml", NULL, 0, &d), ROTOR_EINVALID);
	diags_release(&d);
}

static void test_names(void **state)
{
	(void)state;
	assert_true(env_name_valid("poc"));
	assert_true(env_name_valid("0prod_eu-1"));
	assert_true(env_name_valid("abcdefghijklmnopqrstuvwxyz012345"));
	assert_false(env_name_valid("abcdefghijklmnopqrstuvwxyz0123456"));
	assert_false(env_name_valid(""));
	assert_false(env_name_valid(NULL));
	assert_false(env_name_valid("Prod"));
	assert_false(env_name_valid("-x"));
	assert_false(env_name_valid("a/b"));
	assert_false(env_name_valid("Bad/../x"));
	assert_true(spec_valid_leaf_name("app_rw"));
	assert_true(spec_valid_leaf_name("_x.y-z"));
	assert_true(spec_valid_leaf_name("A23456789012345678901234567890123456789012345678901234567890123"));
	assert_false(spec_valid_leaf_name("A234567890123456789012345678901234567890123456789012345678901234"));
	assert_false(spec_valid_leaf_name(".hidden"));
	assert_false(spec_valid_leaf_name("-x"));
	assert_false(spec_valid_leaf_name("a b"));
	assert_false(spec_valid_leaf_name("a/b"));
	assert_false(spec_valid_leaf_name(""));
	assert_false(spec_valid_leaf_name(NULL));
	assert_string_equal(spec_phase_name(SPEC_PHASE_SERVERS), "servers");
	assert_string_equal(spec_phase_name((enum spec_phase)9), "unknown");
	assert_string_equal(spec_cert_role_name(CERT_ROLE_SERVER_CA), "server-ca");
	assert_string_equal(spec_cert_role_name(CERT_ROLE_CLIENT), "client");
}

static void test_addresses(void **state)
{
	/* Python's ipaddress.IPv6Address decides these (the JSON Schema side). */
	static const char *const v6_ok[] = { "::",	   "::1",		 "1::",	      "fd00::11",
					     "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::1:2:3:4:5:6:7", "::ffff:1.2.3.4",
					     "1:2:3:4:5:6:1.2.3.4", "FD00:0:0:0:0:0:0:ABCD" };
	static const char *const v6_bad[] = { "fe80::1%eth0", "::ffff:01.2.3.4", "1:2:3:4:5:6::1.2.3.4", "00001::",
					      "::1.2.3",      ":1::",		 "1:::2",		  " ::1",
					      "1.2.3.4::",    "1:2:3:4:5:6:7:8:9", "1::2::3",	  "1:2:3:4:5:6:7",
					      ":",	      "1:2",		 "g::1",		  "::/64",
					      "1:2:3:4:5:6:7:8::" };
	static const char *const v4_ok[] = { "0.0.0.0", "10.0.0.11", "255.255.255.255", "127.0.1.1" };
	static const char *const v4_bad[] = { "256.0.0.1", "10.0.0", "10.0.0.1.2", "010.0.0.1", "1..2.3", "1.2.3.4 ",
					      "1.2.3.0004" };
	static const char *const dns_ok[] = { "pg1", "pg1.example.net", "a-b.c", "xn--bcher-kva.example", "1e100.net",
					      "*.example.net" };
	static const char *const dns_bad[] = { "pg_1.example.net", "-a.example", "a-.example", "a..b", ".a", "a.",
					       "10.0.0.256", "*.com", "a.*.b", "*", "x*.example.net", "123" };
	char why[160];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(v6_ok) / sizeof(v6_ok[0]); i++)
		assert_true(chk_ipv6(v6_ok[i], strlen(v6_ok[i])));
	for (i = 0; i < sizeof(v6_bad) / sizeof(v6_bad[0]); i++) {
		if (chk_ipv6(v6_bad[i], strlen(v6_bad[i])))
			print_message("# %s accepted\n", v6_bad[i]);
		assert_false(chk_ipv6(v6_bad[i], strlen(v6_bad[i])));
	}
	for (i = 0; i < sizeof(v4_ok) / sizeof(v4_ok[0]); i++)
		assert_true(chk_ipv4(v4_ok[i], strlen(v4_ok[i])));
	for (i = 0; i < sizeof(v4_bad) / sizeof(v4_bad[0]); i++)
		assert_false(chk_ipv4(v4_bad[i], strlen(v4_bad[i])));
	for (i = 0; i < sizeof(dns_ok) / sizeof(dns_ok[0]); i++)
		assert_null(chk_host(dns_ok[i], strlen(dns_ok[i]), 1, why, sizeof(why)));
	for (i = 0; i < sizeof(dns_bad) / sizeof(dns_bad[0]); i++)
		assert_non_null(chk_host(dns_bad[i], strlen(dns_bad[i]), 1, why, sizeof(why)));
	assert_non_null(chk_host("*.example.net", 13, 0, why, sizeof(why)));
}

/* One client in or out of chain.yaml's clients list, the rest of the text as written. */
static void edit_is(const char *in, const char *add, const char *remove, const char *want)
{
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;
	int rc = spec_chain_edit_clients(&out, "chain.yaml", in, strlen(in), add, remove, &e);

	if (!want) {
		assert_int_equal(rc, ROTOR_EINVALID);
		assert_int_equal(out.len, 0);
		return;
	}
	if (rc != 0)
		fail_msg("%s", e.msg);
	assert_string_equal(buf_cstr(&out), want);
	buf_release(&out);
}

static void test_chain_edit_clients(void **state)
{
#define HEAD "subject: {O: Example}   # who\nkey: {type: ec, curve: P-256}\nservers:\n  pg1: {sans: [pg1.example.net]}\n"
	(void)state;
	/* A block list: appended with the same indentation; an item's whole line removed. */
	edit_is(HEAD "clients:\n    - app   # the app\n    - b\n# end\n", "new", NULL,
		HEAD "clients:\n    - app   # the app\n    - b\n    - new\n# end\n");
	edit_is(HEAD "clients:\n    - app   # the app\n    - b\n# end\n", NULL, "app", HEAD "clients:\n    - b\n# end\n");
	edit_is(HEAD "clients:\n- app\n- \"b\"", "new", NULL, HEAD "clients:\n- app\n- \"b\"\n- new\n");
	/* The last one leaves an empty list (the servers remain). */
	edit_is(HEAD "clients:\n  - app\n", NULL, "app", HEAD "clients: []\n");
	/* A flow list. */
	edit_is(HEAD "clients: [app, b]  # two\n", "new", NULL, HEAD "clients: [app, b, new]  # two\n");
	edit_is(HEAD "clients: []\n", "new", NULL, HEAD "clients: [new]\n");
	edit_is(HEAD "clients: [app, b]\n", NULL, "app", HEAD "clients: [b]\n");
	edit_is(HEAD "clients: [app, b]\n", NULL, "b", HEAD "clients: [app]\n");
	edit_is(HEAD "clients: [app]\n", NULL, "app", HEAD "clients: []\n");
	/* No list yet. */
	edit_is(HEAD, "new", NULL, HEAD "clients:\n  - new\n");
	/* Refused: an unknown name, a name the loader refuses, text that is not a chain.yaml, both or neither. */
	edit_is(HEAD "clients: [app]\n", NULL, "nobody", NULL);
	edit_is(HEAD "clients: [app]\n", "bad name", NULL, NULL);
	edit_is("clients: [app]\n", "new", NULL, NULL);
	edit_is(HEAD "clients: [app]\n", "x", "app", NULL);
	edit_is(HEAD "clients: [app]\n", NULL, NULL, NULL);
#undef HEAD
}

int main(int argc, char **argv)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_good_basic),
		cmocka_unit_test(test_chain_edit_clients),
		cmocka_unit_test(test_good_files),
		cmocka_unit_test(test_good_cockroach),
		cmocka_unit_test(test_good_edge),
		cmocka_unit_test(test_manifest_roundtrip),
		cmocka_unit_test(test_manifest_emit_refuses),
		cmocka_unit_test(test_rotation_emit),
		cmocka_unit_test(test_scalar_typing),
		cmocka_unit_test(test_deep_nesting),
		cmocka_unit_test(test_oversized),
		cmocka_unit_test(test_garbage),
		cmocka_unit_test(test_nul_and_utf8),
		cmocka_unit_test(test_billion_laughs),
		cmocka_unit_test(test_every_problem),
		cmocka_unit_test(test_host_duplicates),
		cmocka_unit_test(test_problem_cap),
		cmocka_unit_test(test_empty_and_null_diags),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_addresses),
	};
	int fails;

	if (argc == 4 && strcmp(argv[1], "--check") == 0)
		return check_main(argv[2], argv[3]);
	if (argc == 2 && strcmp(argv[1], "--check-batch") == 0)
		return check_batch();
	if (argc != 1) {
		fprintf(stderr, "usage: test_spec [--check KIND FILE | --check-batch]\n");
		return 2;
	}
	fails = cmocka_run_group_tests(tests, NULL, NULL);
	fails += run_fixture_tests();
	return fails ? 1 : 0;
}
