/*
 * test_engine.c -- the engine behind init, validate, rotate and chain
 * show, called as a library (no argv, no printing) on a real repository
 * made in a mkdtemp() directory whose home/ is HOME.
 *
 * The tests run in order on one repository: scaffold it, validate it,
 * start the first chain, read it back, then move a second rotation.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/helpers.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "gitops/githistory.h"
#include "gitops/gitrepo.h"
#include "reconcile/engine/chain.h"
#include "reconcile/engine/client.h"
#include "reconcile/engine/init.h"
#include "reconcile/engine/phase.h"
#include "reconcile/engine/plan.h"
#include "reconcile/engine/rotate.h"
#include "reconcile/engine/state.h"
#include "reconcile/engine/trust.h"

#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include "reconcile/pki/pki.h"

static char g_root[256], g_repo[300], g_key[300];

static int exists(const char *dir, const char *rel)
{
	char path[600];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return lstat(path, &st) == 0;
}

static struct gitrepo *open_repo(void)
{
	struct err e = ERR_INIT;
	struct gitrepo *r = NULL;

	assert_int_equal(gitrepo_open(&r, g_repo, 0, &e), 0);
	return r;
}

static void test_init_scaffolds_and_refuses(void **state)
{
	struct err e = ERR_INIT;
	struct init_opts o = { "poc", g_key };
	struct init_result res;
	struct gitrepo *r;
	char inside[400];

	(void)state;
	run("git init -q '%s'", g_repo);
	r = open_repo();
	assert_int_equal(init_scaffold(&res, r, &o, &e), 0);
	assert_true(res.created_config);
	assert_string_equal(res.key_path, g_key);
	assert_int_equal(strlen(res.key_id), 16);
	assert_true(exists(g_repo, "rotor.yaml") && exists(g_repo, "envs/poc/chain.yaml") &&
		    exists(g_repo, "envs/poc/hosts.yaml") && exists(g_repo, "envs/poc/rotation.yaml"));

	/* The env exists: refused, nothing touched. */
	assert_int_equal(init_scaffold(&res, r, &o, &e), ROTOR_EEXISTS);
	assert_non_null(strstr(e.msg, "envs/poc exists"));

	/* A second env in a repository with rotor.yaml: no key file, none accepted. */
	err_clear(&e);
	o.env = "two";
	assert_int_equal(init_scaffold(&res, r, &o, &e), ROTOR_EINVALID);
	assert_false(exists(g_repo, "envs/two"));
	o.key_file = NULL;
	assert_int_equal(init_scaffold(&res, r, &o, &e), 0);
	assert_false(res.created_config);
	assert_true(exists(g_repo, "envs/two/rotation.yaml"));
	run("rm -r '%s/envs/two'", g_repo);

	/* In a fresh repository, a key file inside the work tree is refused and nothing is left behind. */
	gitrepo_free(r);
	run("rm -rf '%s/.git' '%s/envs' '%s/rotor.yaml' && git init -q '%s'", g_repo, g_repo, g_repo, g_repo);
	r = open_repo();
	snprintf(inside, sizeof(inside), "%s/k.key", g_repo);
	o.env = "poc";
	o.key_file = inside;
	err_clear(&e);
	assert_int_equal(init_scaffold(&res, r, &o, &e), ROTOR_EINVALID);
	assert_non_null(strstr(e.msg, "inside the repository"));
	assert_false(exists(g_repo, "rotor.yaml") || exists(g_repo, "envs") || exists(g_repo, "k.key"));
	run("rm -f '%s'", g_key);
	o.key_file = g_key;
	assert_int_equal(init_scaffold(&res, r, &o, &e), 0);
	gitrepo_free(r);
	run("cd '%s' && git add -A && git commit -qm init", g_repo);
}

static void test_validate(void **state)
{
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct state_src src;
	struct gitrepo *r = open_repo();
	char **envs = NULL;
	size_t n = 0;

	(void)state;
	assert_int_equal(state_src_open(&src, r, NULL, 1, &e), 0);
	assert_int_equal(state_validate(&envs, &n, &src, NULL, &d, &e), 0);
	assert_int_equal(n, 1);
	assert_string_equal(envs[0], "poc");
	gitrepo_names_free(envs);

	/* Two bad env names and one rotor.yaml problem seen by both good envs, reported once. */
	run("cd '%s' && cp -r envs/poc envs/Bad && cp -r envs/poc envs/two && echo 'x: [' >> rotor.yaml", g_repo);
	assert_int_equal(state_validate(&envs, &n, &src, NULL, &d, &e), ROTOR_EINVALID);
	assert_null(envs);
	assert_int_equal(d.n, 2);
	assert_string_equal(d.v[0].path, "envs");
	assert_string_equal(d.v[1].path, "rotor.yaml");
	diags_release(&d);
	run("cd '%s' && rm -r envs/Bad envs/two && git checkout -q rotor.yaml", g_repo);

	/* At HEAD there is nothing wrong. */
	assert_int_equal(state_src_open(&src, r, "HEAD", 0, &e), 0);
	assert_int_equal(state_validate(&envs, &n, &src, "poc", &d, &e), 0);
	assert_null(envs);
	gitrepo_free(r);
}

/*
 * A self-signed certificate valid from `from` to `to` days from now
 * (CA:TRUE when ca), as PEM in the work tree at rel.  The openssl
 * command line of Debian 12 cannot date a certificate in the past.
 */
static void write_cert(const char *rel, const char *cn, int ca, long from, long to)
{
	EVP_PKEY *k = EVP_EC_gen("P-256");
	X509 *x = X509_new();
	X509_NAME *n = X509_NAME_new();
	X509_EXTENSION *bc;
	X509V3_CTX ctx;
	BIO *b = BIO_new(BIO_s_mem());
	char path[600], *p;
	long len;
	FILE *f;

	assert_true(k && x && n && b);
	X509_set_version(x, 2);
	ASN1_INTEGER_set(X509_get_serialNumber(x), 1);
	X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC, (const unsigned char *)cn, -1, -1, 0);
	X509_set_subject_name(x, n);
	X509_set_issuer_name(x, n);
	X509_gmtime_adj(X509_getm_notBefore(x), from * 86400);
	X509_gmtime_adj(X509_getm_notAfter(x), to * 86400);
	X509_set_pubkey(x, k);
	X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
	assert_non_null(bc = X509V3_EXT_conf_nid(NULL, &ctx, NID_basic_constraints, ca ? "critical,CA:TRUE" : "CA:FALSE"));
	X509_add_ext(x, bc, -1);
	assert_true(X509_sign(x, k, EVP_sha256()) > 0);
	assert_int_equal(PEM_write_bio_X509(b, x), 1);
	len = BIO_get_mem_data(b, &p);
	snprintf(path, sizeof(path), "%s/%s", g_repo, rel);
	assert_non_null(f = fopen(path, "w"));
	assert_int_equal(fwrite(p, 1, (size_t)len, f), (size_t)len);
	assert_int_equal(fclose(f), 0);
	X509_EXTENSION_free(bc);
	BIO_free(b);
	X509_NAME_free(n);
	X509_free(x);
	EVP_PKEY_free(k);
}

/* External CAs: each bad file one message at its file: line and column, the good ones in bundles newest first. */
static void test_external_cas(void **state)
{
	static const char *const want[] = {
		"external_cas[2].file: envs/poc/trust/key.pem holds a private key: only the CA certificate belongs in the repository",
		"external_cas[3].file: envs/poc/trust/garbage.pem is not a CA certificate: it holds no PEM certificate",
		"external_cas[4].file: envs/poc/trust/leaf.pem is a leaf certificate (CN=db.example.net), not a CA: list the CA that issued it",
		"external_cas[5].file: envs/poc/trust/expired.pem has expired (CN=Old Provider Root, not after ",
		"external_cas[6].file: envs/poc/trust/dup.pem is the same certificate as external_cas[0] (trust/new.pem): list it once",
		"external_cas[7].file: envs/poc/trust/missing.pem does not exist (commit the CA certificate there)",
		"external_cas[8].file: envs/poc/trust/two.pem holds 2 certificates: list one CA certificate per file",
	};
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct state_src src;
	struct state st;
	struct material_set ms;
	struct gitrepo *r = open_repo();
	size_t i;

	(void)state;
	run("mkdir -p '%s/envs/poc/trust'", g_repo);
	write_cert("envs/poc/trust/new.pem", "New Provider Root", 1, 0, 3650);
	write_cert("envs/poc/trust/older.pem", "Older Provider Root", 1, -400, 3000);
	write_cert("envs/poc/trust/leaf.pem", "db.example.net", 0, 0, 365);
	write_cert("envs/poc/trust/expired.pem", "Old Provider Root", 1, -30, -1);
	run("cd '%s/envs/poc/trust' && cp new.pem dup.pem && cp expired.pem expired-retired.pem && cat new.pem older.pem > two.pem"
	    " && echo hello > garbage.pem && openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out key.pem 2>/dev/null"
	    " && cp ../hosts.yaml ../hosts.yaml.orig && cat >> ../hosts.yaml <<'EOF'\n"
	    "external_cas:\n"
	    "  - {file: trust/new.pem, bundles: [client]}\n"
	    "  - {file: trust/older.pem, bundles: [client, server]}\n"
	    "  - {file: trust/key.pem, bundles: [client]}\n"
	    "  - {file: trust/garbage.pem, bundles: [client]}\n"
	    "  - {file: trust/leaf.pem, bundles: [client]}\n"
	    "  - {file: trust/expired.pem, bundles: [client]}\n"
	    "  - {file: trust/dup.pem, bundles: [client]}\n"
	    "  - {file: trust/missing.pem, bundles: [client]}\n"
	    "  - {file: trust/two.pem, bundles: [client]}\n"
	    "  - {file: trust/expired-retired.pem, bundles: [client], retired: true}\n"
	    "EOF", g_repo);
	assert_int_equal(state_src_open(&src, r, NULL, 1, &e), 0);
	assert_int_equal(state_load(&st, &src, "poc", &d, &e), ROTOR_EINVALID);
	for (i = 0; i < d.n; i++)
		print_message("# %s:%d:%d: %s\n", d.v[i].path, d.v[i].line, d.v[i].column, d.v[i].msg);
	assert_int_equal(d.n, sizeof(want) / sizeof(want[0]));
	for (i = 0; i < d.n; i++) {
		assert_string_equal(d.v[i].path, "envs/poc/hosts.yaml");
		assert_true(d.v[i].line > 0);
		assert_int_equal(d.v[i].column, 12);  /* the value of `file:` in "  - {file: trust/..." */
		if (strncmp(d.v[i].msg, want[i], strlen(want[i])) != 0)
			fail_msg("got \"%s\", want \"%s...\"", d.v[i].msg, want[i]);
	}
	assert_int_equal(d.v[1].line, d.v[0].line + 1);
	state_release(&st);
	diags_release(&d);

	/* Without the bad ones: two CAs in the clients' bundles, newest first; the retired one in none. */
	run("cd '%s/envs/poc' && cp hosts.yaml.orig hosts.yaml && cat >> hosts.yaml <<'EOF'\n"
	    "external_cas:\n"
	    "  - {file: trust/older.pem, bundles: [client, server]}\n"
	    "  - {file: trust/new.pem, bundles: [client]}\n"
	    "  - {file: trust/expired-retired.pem, bundles: [client], retired: true}\n"
	    "EOF", g_repo);
	assert_int_equal(state_load(&st, &src, "poc", &d, &e), 0);
	assert_int_equal(st.next, 3);
	assert_int_equal(state_material(&ms, &src, &st, 0, NULL, &e), 0);
	assert_int_equal(ms.next, 2);
	assert_string_equal(ms.ext[0].name, "trust/new.pem");
	assert_int_equal(ms.ext[0].ext_sides, 1u << LAYOUT_SIDE_SERVER);
	assert_string_equal(ms.ext[1].name, "trust/older.pem");
	assert_int_equal(ms.ext[1].ext_sides, (1u << LAYOUT_SIDE_SERVER) | (1u << LAYOUT_SIDE_CLIENT));
	material_release(&ms);
	state_release(&st);
	run("cd '%s/envs/poc' && mv hosts.yaml.orig hosts.yaml && rm -r trust", g_repo);
	gitrepo_free(r);
}

static void test_rotate_start(void **state)
{
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct rotate_start_opts o = { "poc", 1 };
	struct rotate_start_result res;
	struct gitrepo *r = open_repo();
	struct buf out = BUF_INIT;

	(void)state;
	assert_int_equal(rotate_start(&res, r, &o, &d, &e), 0);
	assert_int_equal(res.number, 1);
	assert_string_equal(res.branch, "rotor/rotate/poc/gen-0001");
	assert_string_equal(res.head_branch, "main");
	assert_int_equal(res.rot.phase, SPEC_PHASE_STABLE);
	assert_int_equal(res.rot.generation, 1);
	assert_int_equal(res.manifest->ncerts, 5);
	capture(&out, "cd '%s' && git rev-parse rotor/rotate/poc/gen-0001 && git status --porcelain", g_repo);
	assert_int_equal(strncmp(buf_cstr(&out), res.commit, 40), 0);
	assert_int_equal(out.len, 41);    /* the commit id, and a clean work tree */
	buf_release(&out);
	rotate_start_result_release(&res);

	/* The branch waits for review: refused, before any key is made. */
	assert_int_equal(rotate_start(&res, r, &o, &d, &e), ROTOR_ESTATE);
	assert_non_null(strstr(e.msg, "waits for review"));
	rotate_start_result_release(&res);
	assert_int_equal(d.n, 0);
	gitrepo_free(r);
	run("cd '%s' && git merge -q rotor/rotate/poc/gen-0001", g_repo);
}

static void test_chain_view(void **state)
{
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct chain_view v;
	struct gitrepo *r = open_repo();
	size_t i;

	(void)state;
	assert_int_equal(chain_view_load(&v, r, "poc", NULL, &d, &e), 0);
	assert_int_equal(v.ngens, 1);
	assert_string_equal(v.gens[0].status, "in-service");
	assert_int_equal(v.gens[0].ncerts, 5);
	assert_int_equal(v.bad, 0);
	for (i = 0; i < v.gens[0].ncerts; i++) {
		assert_true(v.gens[0].certs[i].ok && v.gens[0].certs[i].matches);
		assert_true(v.gens[0].certs[i].days_left > 300);
	}
	chain_view_release(&v);

	/* A certificate replaced by another and one removed: two bad, named, not an error. */
	run("cd '%s' && git checkout -q -b tampered && cd envs/poc/generations/0001 && cp ca/root.crt servers/pg1.crt"
	    " && git rm -q clients/postgres.crt && git commit -qam tamper", g_repo);
	assert_int_equal(chain_view_load(&v, r, "poc", "tampered", &d, &e), 0);
	assert_int_equal(v.bad, 2);
	for (i = 0; i < v.gens[0].ncerts; i++) {
		const struct chain_cert *c = &v.gens[0].certs[i];

		if (strcmp(c->mc->name, "pg1") == 0)
			assert_true(c->ok && !c->matches && !c->error);
		else if (strcmp(c->mc->name, "postgres") == 0)
			assert_true(!c->ok && c->error && strstr(c->error, "clients/postgres.crt"));
		else
			assert_true(c->ok && c->matches);
	}
	chain_view_release(&v);
	{
		/* validate refuses the same commit, naming both files; a key removed too. */
		static const char *const want[][2] = {
			{ "envs/poc/generations/0001/servers/pg1.crt", "differs from its manifest's" },
			{ "envs/poc/generations/0001/ca/server-ca.key", "missing: its generation's manifest.yaml lists it" },
			{ "envs/poc/generations/0001/clients/postgres.crt", "missing: its generation's manifest.yaml lists it" },
		};
		struct state_src src;
		char **envs = NULL;
		size_t n = 0, k;

		run("cd '%s' && git rm -q envs/poc/generations/0001/ca/server-ca.key && git commit -qm 'no key'", g_repo);
		assert_int_equal(state_src_open(&src, r, "tampered", 0, &e), 0);
		assert_int_equal(state_validate(&envs, &n, &src, "poc", &d, &e), ROTOR_EINVALID);
		assert_int_equal(d.n, 3);
		for (k = 0; k < 3; k++) {
			for (n = 0; n < d.n && strcmp(d.v[n].path, want[k][0]) != 0; n++)
				;
			if (n == d.n)
				fail_msg("no diagnostic on %s", want[k][0]);
			assert_int_equal(d.v[n].line, 0);
			assert_non_null(strstr(d.v[n].msg, want[k][1]));
		}
		diags_release(&d);
	}
	{
		/*
		 * A manifest whose description of a certificate differs from the file
		 * (observe describes a certificate it knows from its manifest): refused.
		 */
		struct state_src src;
		char **envs = NULL;
		size_t n = 0;

		run("cd '%s' && git checkout -q -b described main"
		    " && sed -i 's/^\\(    subject: \"\\)\\(CN=[^\"]*pg1\\)/\\1x\\2/' envs/poc/generations/0001/manifest.yaml"
		    " && test $(grep -c 'subject: \"xCN=' envs/poc/generations/0001/manifest.yaml) = 1"
		    " && git commit -qam 'edited subject'", g_repo);
		assert_int_equal(state_src_open(&src, r, "described", 0, &e), 0);
		assert_int_equal(state_validate(&envs, &n, &src, "poc", &d, &e), ROTOR_EINVALID);
		assert_int_equal(d.n, 1);
		assert_string_equal(d.v[0].path, "envs/poc/generations/0001/servers/pg1.crt");
		assert_non_null(strstr(d.v[0].msg, "subject \"CN="));
		assert_non_null(strstr(d.v[0].msg, "differs from its manifest's"));
		diags_release(&d);
	}
	run("cd '%s' && git checkout -q main", g_repo);
	gitrepo_free(r);
}

/* The CRL at REV:envs/poc/generations/0001/crl/NAME.crl, read back. */
static void crl_at(struct pki_crl_info *ci, const char *rev, const char *name)
{
	struct buf out = BUF_INIT;
	struct err e = ERR_INIT;

	capture(&out, "cd '%s' && git show %s:envs/poc/generations/0001/crl/%s.crl", g_repo, rev, name);
	assert_int_equal(pki_crl_read(ci, out.ptr, out.len, &e), 0);
	buf_release(&out);
}

/* client add, remove, crl: what each commits, on which branch, and what each refuses. */
static void test_client_add_remove(void **state)
{
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct client_opts o = { "poc", "app2" };
	struct client_result res;
	struct pki_crl_info ci;
	struct gitrepo *r = open_repo();
	struct buf out = BUF_INIT;
	char serial[48];

	(void)state;
	/* The first chain came with empty CRLs. */
	crl_at(&ci, "main", "client-ca");
	assert_int_equal(ci.nserials, 0);
	assert_int_equal(ci.number, 1);
	pki_crl_info_release(&ci);

	o.name = "app 2";
	assert_int_equal(client_add(&res, r, &o, &d, &e), ROTOR_EINVALID);
	assert_non_null(strstr(e.msg, "invalid client name \"app 2\""));
	client_result_release(&res);
	o.name = "app2";
	err_clear(&e);
	assert_int_equal(client_add(&res, r, &o, &d, &e), 0);
	assert_string_equal(res.branch, "rotor/client/poc/add-app2");
	assert_int_equal(res.ngens, 1);
	assert_int_equal(res.gens[0], 1);
	capture(&out, "cd '%s' && git diff --name-status main rotor/client/poc/add-app2 && git status --porcelain && "
		"git rev-list --count main..rotor/client/poc/add-app2", g_repo);
	assert_string_equal(buf_cstr(&out), "M\tenvs/poc/chain.yaml\nA\tenvs/poc/generations/0001/clients/app2.crt\n"
			    "A\tenvs/poc/generations/0001/clients/app2.key\nM\tenvs/poc/generations/0001/manifest.yaml\n1\n");
	buf_release(&out);
	client_result_release(&res);
	/* The branch waits for review. */
	assert_int_equal(client_add(&res, r, &o, &d, &e), ROTOR_ESTATE);
	assert_non_null(strstr(e.msg, "waits for review"));
	client_result_release(&res);
	run("cd '%s' && git merge -q rotor/client/poc/add-app2", g_repo);
	/* Its chain verifies; the env is valid; adding it again is refused. */
	run("cd '%s/envs/poc/generations/0001' && openssl verify -CAfile ca/root.crt -untrusted ca/client-ca.crt "
	    "-purpose sslclient clients/app2.crt >/dev/null", g_repo);
	run("cd '%s/envs/poc/generations/0001' && openssl x509 -in clients/app2.crt -noout -subject | grep -q 'CN = app2'",
	    g_repo);
	err_clear(&e);
	assert_int_equal(client_add(&res, r, &o, &d, &e), ROTOR_EEXISTS);
	client_result_release(&res);
	assert_int_equal(d.n, 0);
	capture_line(serial, sizeof(serial), "cd '%s' && openssl x509 -in envs/poc/generations/0001/clients/app2.crt "
		     "-noout -serial | cut -d= -f2 | tr A-F a-f", g_repo);

	/* remove: an unknown client, then app2. */
	o.name = "nobody";
	err_clear(&e);
	assert_int_equal(client_remove(&res, r, &o, &d, &e), ROTOR_ENOTFOUND);
	client_result_release(&res);
	o.name = "app2";
	assert_int_equal(client_remove(&res, r, &o, &d, &e), 0);
	assert_string_equal(res.branch, "rotor/client/poc/remove-app2");
	assert_string_equal(res.serials[0], serial);
	client_result_release(&res);
	capture(&out, "cd '%s' && git diff --name-status main rotor/client/poc/remove-app2", g_repo);
	assert_string_equal(buf_cstr(&out), "M\tenvs/poc/chain.yaml\nD\tenvs/poc/generations/0001/clients/app2.crt\n"
			    "D\tenvs/poc/generations/0001/clients/app2.key\nM\tenvs/poc/generations/0001/crl/client-ca.crl\n"
			    "M\tenvs/poc/generations/0001/crl/root.crl\nM\tenvs/poc/generations/0001/manifest.yaml\n");
	buf_release(&out);
	run("cd '%s' && git merge -q rotor/client/poc/remove-app2", g_repo);
	crl_at(&ci, "main", "client-ca");
	assert_int_equal(ci.nserials, 1);
	assert_string_equal(ci.serials[0], serial);
	assert_int_equal(ci.number, 2);
	pki_crl_info_release(&ci);
	crl_at(&ci, "main", "root");
	assert_int_equal(ci.nserials, 0);
	assert_int_equal(ci.number, 2);
	pki_crl_info_release(&ci);

	/* crl: signed again, the revocation kept. */
	o.name = NULL;
	assert_int_equal(client_crl(&res, r, &o, &d, &e), 0);
	assert_non_null(strstr(res.branch, "rotor/client/poc/crl-"));
	crl_at(&ci, res.branch, "client-ca");
	assert_int_equal(ci.nserials, 1);
	assert_int_equal(ci.number, 3);
	pki_crl_info_release(&ci);
	run("cd '%s' && git merge -q '%s' && git branch -q -D rotor/client/poc/add-app2 rotor/client/poc/remove-app2",
	    g_repo, res.branch);
	client_result_release(&res);
	assert_int_equal(d.n, 0);
	gitrepo_free(r);
}

static void test_rotate_next(void **state)
{
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct rotate_start_opts o = { "poc", 1 };
	struct rotate_start_result res;
	struct rotate_next_result nr;
	struct gitrepo *r = open_repo();

	(void)state;
	assert_int_equal(rotate_next(&nr, r, "poc", &d, &e), ROTOR_ESTATE);
	assert_non_null(strstr(e.msg, "nothing to move"));
	err_clear(&e);
	assert_int_equal(rotate_start(&res, r, &o, &d, &e), 0);
	assert_int_equal(res.number, 2);
	assert_int_equal(res.rot.phase, SPEC_PHASE_TRUST);
	assert_int_equal(res.rot.target, 2);
	rotate_start_result_release(&res);
	run("cd '%s' && git merge -q rotor/rotate/poc/gen-0002", g_repo);

	assert_int_equal(rotate_next(&nr, r, "poc", &d, &e), 0);
	assert_string_equal(nr.branch, "rotor/rotate/poc/gen-0002-servers");
	assert_int_equal(nr.from.phase, SPEC_PHASE_TRUST);
	assert_int_equal(nr.to.phase, SPEC_PHASE_SERVERS);

	/* Uncommitted changes to the env: refused. */
	run("cd '%s' && echo '# x' >> envs/poc/chain.yaml", g_repo);
	assert_int_equal(rotate_next(&nr, r, "poc", &d, &e), ROTOR_ESTATE);
	assert_non_null(strstr(e.msg, "uncommitted changes"));
	run("cd '%s' && git checkout -q envs/poc/chain.yaml", g_repo);
	gitrepo_free(r);
}

/* One phase back: the table of phase.h, and nothing to roll back. */
static void test_phase_back(void **state)
{
	static const struct {
		struct rotation_spec from;
		int prev, ok;
		struct rotation_spec to;
	} t[] = {
		{ { 1, 2, SPEC_PHASE_CLIENTS }, 0, 1, { 1, 2, SPEC_PHASE_SERVERS } },
		{ { 1, 2, SPEC_PHASE_SERVERS }, 0, 1, { 1, 2, SPEC_PHASE_TRUST } },
		{ { 1, 2, SPEC_PHASE_TRUST }, 0, 1, { 1, 0, SPEC_PHASE_STABLE } },
		{ { 3, 0, SPEC_PHASE_STABLE }, 1, 1, { 1, 3, SPEC_PHASE_CLIENTS } },
		{ { 3, 0, SPEC_PHASE_STABLE }, 0, 0, { 0, 0, SPEC_PHASE_STABLE } },   /* a first chain, an import */
		{ { 3, 0, SPEC_PHASE_STABLE }, 3, 0, { 0, 0, SPEC_PHASE_STABLE } },
		{ { 0, 0, SPEC_PHASE_STABLE }, 1, 0, { 0, 0, SPEC_PHASE_STABLE } },   /* nothing committed yet */
		{ { 1, 0, SPEC_PHASE_TRUST }, 0, 0, { 0, 0, SPEC_PHASE_STABLE } },    /* no target: not a rotation */
		{ { 1, 0, SPEC_PHASE_SERVERS }, 0, 0, { 0, 0, SPEC_PHASE_STABLE } },
	};
	struct rotation_spec to;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		int rc = phase_back(&to, &t[i].from, t[i].prev);

		assert_int_equal(rc, t[i].ok ? 0 : -1);
		if (!t[i].ok)
			continue;
		assert_int_equal(to.generation, t[i].to.generation);
		assert_int_equal(to.target, t[i].to.target);
		assert_int_equal(to.phase, t[i].to.phase);
	}
}

static void head_id(char out[41], struct gitrepo *r)
{
	struct err e = ERR_INIT;

	assert_int_equal(gitrepo_resolve(r, "HEAD", out, &e), 0);
}

/*
 * From test_rotate_next's end (main at trust 1 -> 2, gen-0002-servers
 * unmerged): rollback, a reverted rotate next and its spent branch,
 * abandon, the abandoned generation recognised from history, and the
 * next generation number skipping it.
 */
static void test_rollback_abandon_history(void **state)
{
	struct err e = ERR_INIT;
	struct diags d = { NULL, 0, 0 };
	struct rotate_start_opts o = { "poc", 1 };
	struct rotate_start_result res;
	struct rotate_next_result nr;
	struct rotate_back_result br;
	struct state st;
	struct state_src src;
	struct material_set ms;
	char head[41], tip[41];
	struct gitrepo *r = open_repo();
	size_t i;

	(void)state;
	/* trust -> stable(1): the target removed. */
	assert_int_equal(rotate_rollback(&br, r, "poc", &d, &e), 0);
	assert_string_equal(br.branch, "rotor/rollback/poc/gen-0002-stable");
	assert_string_equal(br.spent, "");
	assert_int_equal(br.from.phase, SPEC_PHASE_TRUST);
	assert_int_equal(br.to.phase, SPEC_PHASE_STABLE);
	assert_int_equal(br.to.generation, 1);
	assert_int_equal(br.to.target, 0);
	/* Not merged: a second one waits for review. */
	assert_int_equal(rotate_rollback(&br, r, "poc", &d, &e), ROTOR_ESTATE);
	assert_non_null(strstr(e.msg, "branch rotor/rollback/poc/gen-0002-stable exists: an earlier `rollback` waits for review"));
	err_clear(&e);
	run("cd '%s' && git branch -q -D rotor/rollback/poc/gen-0002-stable", g_repo);

	/* An unmerged rotate next waits; merged and reverted, its branch is spent. */
	assert_int_equal(rotate_next(&nr, r, "poc", &d, &e), ROTOR_ESTATE);
	assert_non_null(strstr(e.msg, "waits for review"));
	err_clear(&e);
	run("cd '%s' && git merge -q rotor/rotate/poc/gen-0002-servers && git revert --no-edit HEAD >/dev/null", g_repo);
	assert_int_equal(rotate_next(&nr, r, "poc", &d, &e), 0);
	assert_string_equal(nr.spent, "rotor/rotate/poc/gen-0002-servers");
	assert_string_equal(nr.branch, "rotor/rotate/poc/gen-0002-servers-2");
	assert_int_equal(nr.to.phase, SPEC_PHASE_SERVERS);

	/* Abandon: the material kept at HEAD, removed from the tree in one commit. */
	head_id(head, r);
	assert_int_equal(rotate_abandon(&br, r, "poc", &d, &e), 0);
	assert_string_equal(br.branch, "rotor/rotate/poc/gen-0002-abandon");
	assert_string_equal(br.kept, "rotor/rolled-back/poc/gen-0002");
	assert_string_equal(br.kept_commit, head);
	assert_false(br.kept_existed);
	assert_int_equal(br.abandoned, 2);
	assert_true(br.nremoved >= 10);
	assert_int_equal(gitrepo_branch_tip(tip, r, "rotor/rolled-back/poc/gen-0002", &e), 0);
	assert_string_equal(tip, head);
	assert_int_equal(br.to.generation, 1);
	assert_int_equal(br.to.phase, SPEC_PHASE_STABLE);
	run("cd '%s' && git merge -q rotor/rotate/poc/gen-0002-abandon", g_repo);
	assert_false(exists(g_repo, "envs/poc/generations/0002"));
	assert_true(exists(g_repo, "envs/poc/generations/0001/manifest.yaml"));
	assert_int_equal(rotate_abandon(&br, r, "poc", &d, &e), ROTOR_ESTATE);
	assert_non_null(strstr(e.msg, "no rotation to abandon"));
	err_clear(&e);
	/* Stable at the first chain: nothing to roll back. */
	assert_int_equal(rotate_rollback(&br, r, "poc", &d, &e), ROTOR_ESTATE);
	assert_non_null(strstr(e.msg, "nothing to roll back"));
	err_clear(&e);

	/* Generation 2 is recognised from history, certificates only. */
	assert_int_equal(state_src_open(&src, r, NULL, 0, &e), 0);
	assert_int_equal(state_load(&st, &src, "poc", &d, &e), 0);
	assert_int_equal(st.ngens, 1);
	assert_int_equal(state_load_past(&st, &src, &e), 0);
	assert_int_equal(st.npast, 1);
	assert_int_equal(st.past[0].number, 2);
	assert_string_equal(st.past[0].commit, head);
	assert_true(state_generation_used(&st, 2) && state_generation_used(&st, 1) && !state_generation_used(&st, 3));
	assert_int_equal(state_material(&ms, &src, &st, 1, NULL, &e), 0);
	assert_int_equal(ms.n, 2);
	assert_false(ms.v[0].past);
	assert_true(ms.v[1].past);
	assert_int_equal(ms.v[1].generation, 2);
	assert_non_null(material_find(&ms, 2, CERT_ROLE_ROOT, NULL));
	for (i = 0; i < ms.v[1].ncerts; i++)
		assert_null(ms.v[1].certs[i].key_pem);      /* never read: past material is not deployed */
	assert_non_null(material_find(&ms, 1, CERT_ROLE_SERVER, "pg1")->key_pem);
	material_release(&ms);
	state_release(&st);
	/* A work tree has no history. */
	assert_int_equal(state_src_open(&src, r, NULL, 1, &e), 0);
	assert_int_equal(state_load(&st, &src, "poc", &d, &e), 0);
	assert_int_equal(state_load_past(&st, &src, &e), 0);
	assert_int_equal(st.npast, 0);
	state_release(&st);

	/* The next generation skips 2, also without the rolled-back branch. */
	run("cd '%s' && git branch -q -D rotor/rolled-back/poc/gen-0002", g_repo);
	assert_int_equal(rotate_start(&res, r, &o, &d, &e), 0);
	assert_int_equal(res.number, 3);
	assert_string_equal(res.branch, "rotor/rotate/poc/gen-0003");
	rotate_start_result_release(&res);

	/* A finished rotation rolls back to clients of the rotation found in history. */
	run("cd '%s' && git merge -q rotor/rotate/poc/gen-0003", g_repo);
	assert_int_equal(rotate_next(&nr, r, "poc", &d, &e), 0);
	run("cd '%s' && git merge -q %s", g_repo, nr.branch);
	assert_int_equal(rotate_next(&nr, r, "poc", &d, &e), 0);
	run("cd '%s' && git merge -q %s", g_repo, nr.branch);
	assert_int_equal(rotate_next(&nr, r, "poc", &d, &e), 0);
	run("cd '%s' && git merge -q %s", g_repo, nr.branch);
	assert_int_equal(rotate_rollback(&br, r, "poc", &d, &e), 0);
	assert_string_equal(br.branch, "rotor/rollback/poc/gen-0003-clients");
	assert_int_equal(br.from.generation, 3);
	assert_int_equal(br.to.generation, 1);
	assert_int_equal(br.to.target, 3);
	assert_int_equal(br.to.phase, SPEC_PHASE_CLIENTS);
	diags_release(&d);
	gitrepo_free(r);
}

static int group_setup(void **state)
{
	struct err e = ERR_INIT;
	char home[300], cfg[400];
	FILE *f;

	(void)state;
	snprintf(g_root, sizeof(g_root), "%s/rotor-engine-XXXXXX",
		 getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	if (!mkdtemp(g_root))
		return -1;
	snprintf(home, sizeof(home), "%s/home", g_root);
	snprintf(g_repo, sizeof(g_repo), "%s/repo", g_root);
	snprintf(g_key, sizeof(g_key), "%s/keys/repo.key", g_root);
	if (mkdir(home, 0700) < 0)
		return -1;
	snprintf(cfg, sizeof(cfg), "%s/.gitconfig", home);
	if (!(f = fopen(cfg, "w")))
		return -1;
	fputs("[user]\n\tname = Engine Tester\n\temail = engine@example.com\n"
	      "[init]\n\tdefaultBranch = main\n", f);
	if (fclose(f) != 0)
		return -1;
	/* Before libgit2 initialises: it reads HOME once, at init. */
	setenv("HOME", home, 1);
	setenv("XDG_CONFIG_HOME", home, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	unsetenv("ROTOR_KEY_FILE");
	unsetenv("GIT_DIR");
	unsetenv("GIT_WORK_TREE");
	unsetenv("GIT_INDEX_FILE");
	return gitrepo_global_init(&e) != 0 ? -1 : 0;
}

static int group_teardown(void **state)
{
	(void)state;
	gitrepo_global_shutdown();
	return run_status("rm -rf '%s'", g_root) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_init_scaffolds_and_refuses),
		cmocka_unit_test(test_validate),
		cmocka_unit_test(test_external_cas),
		cmocka_unit_test(test_rotate_start),
		cmocka_unit_test(test_chain_view),
		cmocka_unit_test(test_client_add_remove),
		cmocka_unit_test(test_rotate_next),
		cmocka_unit_test(test_phase_back),
		cmocka_unit_test(test_rollback_abandon_history),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
