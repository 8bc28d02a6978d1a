/*
 * test_gitrepo.c -- gitops against real repositories.
 *
 * Every repository is made with the git command line in a mkdtemp()
 * directory.  HOME and XDG_CONFIG_HOME point into that directory, so the
 * real home is never read or written; its .gitconfig sets the identity
 * the "configured signature" cases expect.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "tests/unit/helpers.h"
#include "tests/unit/gitsandbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "gitops/githistory.h"
#include "gitops/gitrepo.h"

static char g_root[256];
static char g_home[300];
static int g_seq;

/* ---- helpers --------------------------------------------------------- */

static int exists(const char *dir, const char *rel)
{
	char path[1024];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return lstat(path, &st) == 0;
}

/* A fresh empty directory under the test root. */
static void new_dir(char *out, size_t len, const char *what)
{
	assert_true((size_t)snprintf(out, len, "%s/%s-%d", g_root, what, ++g_seq) < len);
	run("mkdir -p '%s'", out);
}

/* An empty repository (unborn main). */
static void new_empty_repo(char *out, size_t len)
{
	new_dir(out, len, "repo");
	run("git init -q -b main '%s'", out);
}

#define BIG_LEN 1000

/*
 * A state repository with one commit on main:
 *   rotor.yaml, README, big.bin (1000 bytes),
 *   envs/poc/{chain,hosts}.yaml, envs/dev/chain.yaml
 */
static void new_repo(char *out, size_t len)
{
	char big[BIG_LEN];

	memset(big, 'x', sizeof(big));
	new_empty_repo(out, len);
	write_str(out, "rotor.yaml", "version: 1\n");
	write_str(out, "README", "state\n");
	write_file(out, "big.bin", big, sizeof(big));
	write_str(out, "envs/poc/chain.yaml", "generation: 1\n");
	write_str(out, "envs/poc/hosts.yaml", "hosts: []\n");
	write_str(out, "envs/dev/chain.yaml", "generation: 7\n");
	run("git -C '%s' add -A && git -C '%s' commit -q -m initial", out, out);
}

/* ---- fixtures -------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	if (gitsandbox_setup(g_root, sizeof(g_root), "gitrepo",
			     "[user]\n\tname = Test User\n\temail = test@example.com\n"
			     "[init]\n\tdefaultBranch = main\n"
			     "[advice]\n\tdetachedHead = false\n") != 0)
		return -1;
	snprintf(g_home, sizeof(g_home), "%s/home", g_root);
	return 0;
}

static int group_teardown(void **state)
{
	(void)state;
	return gitsandbox_teardown(g_root);
}

/* ---- validation ------------------------------------------------------ */

static const char *const bad_paths[] = {
	"", "/etc/passwd", "../x", "a/../b", "a/..", "..", ".", "./a", "a/./b", "a//b", "a/",
	".git/config", "a/.GIT/x", "a\001b", "a\nb", "a\177b", "a\\b", "\xff", "a\xc0\xaf" "b",
	"\xed\xa0\x80",
};

static void test_path_valid(void **state)
{
	struct err e = ERR_INIT;
	char longp[5000];
	size_t i;

	(void)state;
	assert_int_equal(gitrepo_path_valid("rotor.yaml", &e), 0);
	assert_int_equal(gitrepo_path_valid("envs/poc/chain.yaml", &e), 0);
	assert_int_equal(gitrepo_path_valid("a..b/.hidden/gen..2", &e), 0);
	assert_int_equal(gitrepo_path_valid("envs/caf\xc3\xa9/x", &e), 0);
	for (i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
		err_clear(&e);
		if (gitrepo_path_valid(bad_paths[i], &e) != ROTOR_EINVALID)
			fail_msg("path %zu accepted", i);
		assert_int_equal(e.code, ROTOR_EINVALID);
		assert_contains(e.msg, "invalid repository path");
	}
	assert_int_equal(gitrepo_path_valid(NULL, &e), ROTOR_EINVALID);
	memset(longp, 'a', sizeof(longp) - 1);
	longp[sizeof(longp) - 1] = '\0';
	assert_int_equal(gitrepo_path_valid(longp, &e), ROTOR_EINVALID);
	/* No control characters from a hostile name reach the message. */
	assert_int_equal(gitrepo_path_valid("a\033[31mb/..", &e), ROTOR_EINVALID);
	assert_null(strchr(e.msg, '\033'));

	assert_int_equal(gitrepo_dir_valid("", &e), 0);
	assert_int_equal(gitrepo_dir_valid("envs/", &e), 0);
	assert_int_equal(gitrepo_dir_valid("envs/poc", &e), 0);
	assert_int_equal(gitrepo_dir_valid("envs//", &e), ROTOR_EINVALID);
	assert_int_equal(gitrepo_dir_valid("/", &e), ROTOR_EINVALID);
	assert_int_equal(gitrepo_dir_valid("../", &e), ROTOR_EINVALID);
}

static const char *const bad_branches[] = {
	"", "-x", "HEAD", "refs/heads/x", "a..b", "a b", "x.lock", "a/.b", "x~1", "a^", "a:b",
	"a//b", "x/", "/x", "a*", "a?", "a[", "a\\b", "a\001", "@{x", "@", ".x",
};

static void test_branch_valid(void **state)
{
	struct err e = ERR_INIT;
	char longb[300];
	size_t i;

	(void)state;
	assert_int_equal(gitrepo_branch_valid("main", &e), 0);
	assert_int_equal(gitrepo_branch_valid("rotor/rotate/poc/gen-2", &e), 0);
	for (i = 0; i < sizeof(bad_branches) / sizeof(bad_branches[0]); i++) {
		err_clear(&e);
		if (gitrepo_branch_valid(bad_branches[i], &e) != ROTOR_EINVALID)
			fail_msg("branch \"%s\" accepted", bad_branches[i]);
		assert_contains(e.msg, "invalid branch name");
	}
	assert_int_equal(gitrepo_branch_valid(NULL, &e), ROTOR_EINVALID);
	memset(longb, 'b', sizeof(longb) - 1);
	longb[sizeof(longb) - 1] = '\0';
	assert_int_equal(gitrepo_branch_valid(longb, &e), ROTOR_EINVALID);
}

/* ---- open ------------------------------------------------------------ */

static void test_open_exact_and_search(void **state)
{
	char repo[300], sub[400], want[400];
	struct gitrepo *r = NULL;
	struct err e = ERR_INIT;

	(void)state;
	new_repo(repo, sizeof(repo));
	snprintf(want, sizeof(want), "%s/", repo);
	snprintf(sub, sizeof(sub), "%s/envs/poc", repo);

	r = open_ok(repo);
	assert_string_equal(gitrepo_workdir(r), want);
	gitrepo_free(r);
	r = NULL;

	/* Exact: a subdirectory of a work tree is not itself a repository. */
	assert_int_equal(gitrepo_open(&r, sub, 0, &e), ROTOR_ENOTFOUND);
	assert_null(r);
	assert_contains(e.msg, "not a git repository: ");
	assert_contains(e.msg, sub);

	/* Search: found upwards. */
	err_clear(&e);
	assert_int_equal(gitrepo_open(&r, sub, 1, &e), 0);
	assert_non_null(r);
	assert_string_equal(gitrepo_workdir(r), want);
	gitrepo_free(r);
	gitrepo_free(NULL);
}

static void test_open_not_a_repo(void **state)
{
	char dir[300], missing[400];
	struct gitrepo *r = NULL;
	struct err e = ERR_INIT;

	(void)state;
	new_dir(dir, sizeof(dir), "plain");
	assert_int_equal(gitrepo_open(&r, dir, 0, &e), ROTOR_ENOTFOUND);
	assert_null(r);
	assert_contains(e.msg, "not a git repository: ");
	assert_contains(e.msg, dir);

	err_clear(&e);
	assert_int_equal(gitrepo_open(&r, dir, 1, &e), ROTOR_ENOTFOUND);
	assert_null(r);
	assert_contains(e.msg, dir);

	snprintf(missing, sizeof(missing), "%s/nope", dir);
	err_clear(&e);
	assert_int_equal(gitrepo_open(&r, missing, 1, &e), ROTOR_ENOTFOUND);
	assert_contains(e.msg, missing);

	assert_int_equal(gitrepo_open(&r, "", 0, &e), ROTOR_EINVALID);
}

static void test_open_bare(void **state)
{
	char dir[300];
	struct gitrepo *r = NULL;
	struct err e = ERR_INIT;

	(void)state;
	new_dir(dir, sizeof(dir), "bare");
	run("git init -q --bare '%s'", dir);
	assert_int_equal(gitrepo_open(&r, dir, 0, &e), ROTOR_ESTATE);
	assert_null(r);
	assert_contains(e.msg, "bare");
	assert_contains(e.msg, dir);
	err_clear(&e);
	assert_int_equal(gitrepo_open(&r, dir, 1, &e), ROTOR_ESTATE);
	assert_null(r);
}

/* ---- resolve --------------------------------------------------------- */

static void test_resolve(void **state)
{
	char repo[300], id[41], want[41], first[41];
	struct gitrepo *r;
	struct err e = ERR_INIT;

	(void)state;
	new_repo(repo, sizeof(repo));
	rev_parse(first, repo, "HEAD");
	write_str(repo, "README", "second\n");
	run("git -C '%s' commit -q -am second && git -C '%s' tag -a v1 -m 'tag v1' HEAD~1 && "
	    "git -C '%s' tag light HEAD && git -C '%s' branch other HEAD~1", repo, repo, repo, repo);
	rev_parse(want, repo, "HEAD");
	r = open_ok(repo);

	assert_int_equal(gitrepo_resolve(r, "HEAD", id, &e), 0);
	assert_string_equal(id, want);
	assert_int_equal(gitrepo_resolve(r, "main", id, &e), 0);
	assert_string_equal(id, want);
	assert_int_equal(gitrepo_resolve(r, "refs/heads/main", id, &e), 0);
	assert_string_equal(id, want);
	assert_int_equal(gitrepo_resolve(r, "other", id, &e), 0);
	assert_string_equal(id, first);
	assert_int_equal(gitrepo_resolve(r, "HEAD~1", id, &e), 0);
	assert_string_equal(id, first);
	/* An annotated tag is peeled to its commit. */
	assert_int_equal(gitrepo_resolve(r, "v1", id, &e), 0);
	assert_string_equal(id, first);
	assert_int_equal(gitrepo_resolve(r, "light", id, &e), 0);
	assert_string_equal(id, want);
	assert_int_equal(gitrepo_resolve(r, first, id, &e), 0);
	assert_string_equal(id, first);

	assert_int_equal(gitrepo_resolve(r, "nope", id, &e), ROTOR_ENOTFOUND);
	assert_string_equal(id, "");
	assert_contains(e.msg, "nope");
	err_clear(&e);
	assert_int_equal(gitrepo_resolve(r, "HEAD:rotor.yaml", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitrepo_resolve(r, "HEAD^{tree}", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitrepo_resolve(r, "", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitrepo_resolve(r, "a\nb", id, &e), ROTOR_EINVALID);
	gitrepo_free(r);
}

static void test_resolve_unborn(void **state)
{
	char repo[300], id[41];
	struct gitrepo *r;
	struct err e = ERR_INIT;

	(void)state;
	new_empty_repo(repo, sizeof(repo));
	r = open_ok(repo);
	assert_int_equal(gitrepo_resolve(r, "HEAD", id, &e), ROTOR_ENOTFOUND);
	assert_contains(e.msg, "no commits yet");
	err_clear(&e);
	assert_int_equal(gitrepo_resolve(r, "main", id, &e), ROTOR_ENOTFOUND);
	gitrepo_free(r);
}

/* ---- read and list --------------------------------------------------- */

static void test_read(void **state)
{
	static const char bin[] = "key: \0value\n\xff\x01";
	char repo[300], head[41], zero[41];
	struct buf b = BUF_INIT;
	struct gitrepo *r;
	struct err e = ERR_INIT;
	size_t i;

	(void)state;
	new_repo(repo, sizeof(repo));
	write_file(repo, "envs/poc/bin.dat", bin, sizeof(bin));
	write_file(repo, "empty", "", 0);
	run("git -C '%s' add -A && git -C '%s' commit -q -m bin", repo, repo);
	rev_parse(head, repo, "HEAD");
	r = open_ok(repo);

	assert_int_equal(gitrepo_read(&b, r, head, "rotor.yaml", 100, &e), 0);
	assert_int_equal(b.len, strlen("version: 1\n"));
	assert_string_equal(buf_cstr(&b), "version: 1\n");
	/* Appends; embedded NULs survive; the buffer stays terminated. */
	assert_int_equal(gitrepo_read(&b, r, head, "envs/poc/bin.dat", 0, &e), 0);
	assert_int_equal(b.len, strlen("version: 1\n") + sizeof(bin));
	assert_memory_equal(b.ptr + strlen("version: 1\n"), bin, sizeof(bin));
	assert_int_equal(b.ptr[b.len], '\0');
	buf_release(&b);

	assert_int_equal(gitrepo_read(&b, r, head, "empty", 10, &e), 0);
	assert_int_equal(b.len, 0);
	buf_release(&b);

	/* Exactly at the cap is fine; one over is not, and the buffer is untouched. */
	assert_int_equal(gitrepo_read(&b, r, head, "big.bin", BIG_LEN, &e), 0);
	assert_int_equal(b.len, BIG_LEN);
	buf_release(&b);
	assert_int_equal(gitrepo_read(&b, r, head, "big.bin", BIG_LEN - 1, &e), ROTOR_ETOOBIG);
	assert_int_equal(b.len, 0);
	assert_contains(e.msg, "big.bin");
	/* The buffer's own cap is honoured too. */
	b.max = 10;
	assert_int_equal(gitrepo_read(&b, r, head, "big.bin", 0, &e), ROTOR_ETOOBIG);
	assert_int_equal(b.len, 0);
	b.max = 0;

	err_clear(&e);
	assert_int_equal(gitrepo_read(&b, r, head, "envs/poc/missing.yaml", 0, &e), ROTOR_ENOTFOUND);
	assert_contains(e.msg, "envs/poc/missing.yaml");
	assert_int_equal(gitrepo_read(&b, r, head, "nope/chain.yaml", 0, &e), ROTOR_ENOTFOUND);
	assert_int_equal(gitrepo_read(&b, r, head, "rotor.yaml/x", 0, &e), ROTOR_ENOTFOUND);
	err_clear(&e);
	assert_int_equal(gitrepo_read(&b, r, head, "envs/poc", 0, &e), ROTOR_EINVALID);
	assert_contains(e.msg, "directory");
	assert_int_equal(b.len, 0);

	for (i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
		err_clear(&e);
		if (gitrepo_read(&b, r, head, bad_paths[i], 0, &e) != ROTOR_EINVALID)
			fail_msg("read of bad path %zu not refused: %s", i, e.msg);
	}
	assert_int_equal(b.len, 0);

	/* Commit ids are 40 hex digits; a well-formed unknown id is not found. */
	assert_int_equal(gitrepo_read(&b, r, "main", "rotor.yaml", 0, &e), ROTOR_EINVALID);
	assert_int_equal(gitrepo_read(&b, r, NULL, "rotor.yaml", 0, &e), ROTOR_EINVALID);
	memset(zero, '0', 40);
	zero[40] = '\0';
	assert_int_equal(gitrepo_read(&b, r, zero, "rotor.yaml", 0, &e), ROTOR_ENOTFOUND);
	buf_release(&b);
	gitrepo_free(r);
}

/* The size check from the header works for packed objects too. */
static void test_read_packed(void **state)
{
	char repo[300], head[41];
	struct buf b = BUF_INIT;
	struct gitrepo *r;
	struct err e = ERR_INIT;

	(void)state;
	new_repo(repo, sizeof(repo));
	run("git -C '%s' gc -q && test -z \"$(find '%s/.git/objects' -type f -path '*/objects/[0-9a-f][0-9a-f]/*')\"",
	    repo, repo);
	rev_parse(head, repo, "HEAD");
	r = open_ok(repo);
	assert_int_equal(gitrepo_read(&b, r, head, "big.bin", BIG_LEN - 1, &e), ROTOR_ETOOBIG);
	assert_int_equal(gitrepo_read(&b, r, head, "envs/dev/chain.yaml", 100, &e), 0);
	assert_string_equal(buf_cstr(&b), "generation: 7\n");
	buf_release(&b);
	gitrepo_free(r);
}

static void test_read_not_a_file(void **state)
{
	char repo[300], head[41];
	struct buf b = BUF_INIT;
	struct gitrepo *r;
	struct err e = ERR_INIT;

	(void)state;
	new_repo(repo, sizeof(repo));
	run("cd '%s' && ln -s rotor.yaml link.yaml && "
	    "git update-index -q --add --cacheinfo 160000,$(git rev-parse HEAD),mod && "
	    "git add link.yaml && git commit -q -m kinds", repo);
	rev_parse(head, repo, "HEAD");
	r = open_ok(repo);
	assert_int_equal(gitrepo_read(&b, r, head, "link.yaml", 0, &e), ROTOR_EINVALID);
	assert_contains(e.msg, "symbolic link");
	assert_int_equal(gitrepo_read(&b, r, head, "mod", 0, &e), ROTOR_EINVALID);
	assert_contains(e.msg, "submodule");
	assert_int_equal(b.len, 0);
	buf_release(&b);
	gitrepo_free(r);
}

static void test_list(void **state)
{
	char repo[300], head[41];
	struct gitrepo *r;
	struct err e = ERR_INIT;
	char **v = NULL;
	size_t n = 99;

	(void)state;
	new_repo(repo, sizeof(repo));
	/* git orders the tree "a.b", "a/" ; byte order is "a", "a.b". */
	write_str(repo, "x/a/f", "1\n");
	write_str(repo, "x/a.b", "2\n");
	write_str(repo, "x/B", "3\n");
	run("git -C '%s' add -A && git -C '%s' commit -q -m x", repo, repo);
	rev_parse(head, repo, "HEAD");
	r = open_ok(repo);

	assert_int_equal(gitrepo_list(&v, &n, r, head, "", &e), 0);
	assert_int_equal(n, 5);
	assert_string_equal(v[0], "README");
	assert_string_equal(v[1], "big.bin");
	assert_string_equal(v[2], "envs");
	assert_string_equal(v[3], "rotor.yaml");
	assert_string_equal(v[4], "x");
	assert_null(v[5]);
	gitrepo_names_free(v);

	assert_int_equal(gitrepo_list(&v, &n, r, head, "x", &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0], "B");
	assert_string_equal(v[1], "a");
	assert_string_equal(v[2], "a.b");
	assert_null(v[3]);
	gitrepo_names_free(v);

	assert_int_equal(gitrepo_list(&v, &n, r, head, "envs/", &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0], "dev");
	assert_string_equal(v[1], "poc");
	gitrepo_names_free(v);

	assert_int_equal(gitrepo_list(&v, NULL, r, head, "envs/poc", &e), 0);
	assert_string_equal(v[0], "chain.yaml");
	assert_string_equal(v[1], "hosts.yaml");
	assert_null(v[2]);
	gitrepo_names_free(v);

	assert_int_equal(gitrepo_list(&v, &n, r, head, "envs/prod", &e), ROTOR_ENOTFOUND);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_contains(e.msg, "envs/prod");
	assert_int_equal(gitrepo_list(&v, &n, r, head, "rotor.yaml", &e), ROTOR_EINVALID);
	assert_null(v);
	assert_int_equal(gitrepo_list(&v, &n, r, head, "../envs", &e), ROTOR_EINVALID);
	assert_int_equal(gitrepo_list(&v, &n, r, head, "/envs", &e), ROTOR_EINVALID);
	assert_int_equal(gitrepo_list(&v, &n, r, "HEAD", "envs", &e), ROTOR_EINVALID);
	gitrepo_names_free(NULL);
	gitrepo_free(r);
}

/* ---- head, dirty, branches ------------------------------------------- */

static void test_head(void **state)
{
	char repo[300], want[41];
	struct gitrepo_head h;
	struct gitrepo *r;
	struct err e = ERR_INIT;

	(void)state;
	new_empty_repo(repo, sizeof(repo));
	r = open_ok(repo);
	assert_int_equal(gitrepo_head(&h, r, &e), 0);
	assert_int_equal(h.unborn, 1);
	assert_int_equal(h.detached, 0);
	assert_string_equal(h.branch, "main");
	assert_string_equal(h.commit, "");
	gitrepo_free(r);

	new_repo(repo, sizeof(repo));
	rev_parse(want, repo, "HEAD");
	run("git -C '%s' checkout -q -b rotor/rotate/poc/gen-2", repo);
	r = open_ok(repo);
	assert_int_equal(gitrepo_head(&h, r, &e), 0);
	assert_int_equal(h.unborn, 0);
	assert_int_equal(h.detached, 0);
	assert_string_equal(h.branch, "rotor/rotate/poc/gen-2");
	assert_string_equal(h.commit, want);

	run("git -C '%s' checkout -q --detach", repo);
	assert_int_equal(gitrepo_head(&h, r, &e), 0);
	assert_int_equal(h.unborn, 0);
	assert_int_equal(h.detached, 1);
	assert_string_equal(h.branch, "");
	assert_string_equal(h.commit, want);
	gitrepo_free(r);
}

static void expect_dirty(struct gitrepo *r, const char *const *pfx, size_t n, int want,
			 const char *want_path)
{
	struct err e = ERR_INIT;
	char first[256];
	int dirty = -1;

	if (gitrepo_dirty(&dirty, first, sizeof(first), r, pfx, n, &e) != 0)
		fail_msg("gitrepo_dirty: %s", e.msg);
	if (dirty != want)
		fail_msg("dirty is %d, expected %d (first path \"%s\")", dirty, want, first);
	assert_string_equal(first, want_path ? want_path : "");
}

static void test_dirty(void **state)
{
	static const char *const pfx[] = { "rotor.yaml", "envs/poc/" };
	static const char *const pfx_noslash[] = { "envs/poc" };
	static const char *const pfx_dev[] = { "rotor.yaml", "envs/dev/" };
	static const char *const pfx_partial[] = { "envs/po" };
	static const char *const bad[] = { "../envs" };
	char repo[300];
	struct buf idx0 = BUF_INIT, idx1 = BUF_INIT;
	struct gitrepo *r;
	struct err e = ERR_INIT;
	int dirty;

	(void)state;
	new_repo(repo, sizeof(repo));
	r = open_ok(repo);
	expect_dirty(r, pfx, 2, 0, NULL);
	expect_dirty(r, NULL, 0, 0, NULL);

	/* Untracked and ignored files do not count, even under a prefix. */
	write_str(repo, "envs/poc/new.yaml", "x\n");
	write_str(repo, ".gitignore", "*.tmp\n");
	write_str(repo, "envs/poc/x.tmp", "x\n");
	expect_dirty(r, pfx, 2, 0, NULL);

	/* A tracked file changed outside the prefixes does not count. */
	write_str(repo, "envs/dev/chain.yaml", "generation: 8\n");
	write_str(repo, "README", "changed\n");
	expect_dirty(r, pfx, 2, 0, NULL);
	expect_dirty(r, pfx_dev, 2, 1, "envs/dev/chain.yaml");
	run("git -C '%s' checkout -q -- envs/dev/chain.yaml README", repo);

	/* Work tree change of a tracked file under a prefix. */
	write_str(repo, "envs/poc/chain.yaml", "generation: 2\n");
	read_local(&idx0, repo, ".git/index");
	expect_dirty(r, pfx, 2, 1, "envs/poc/chain.yaml");
	expect_dirty(r, pfx_noslash, 1, 1, "envs/poc/chain.yaml");
	expect_dirty(r, pfx_partial, 1, 0, NULL);
	expect_dirty(r, NULL, 0, 1, "envs/poc/chain.yaml");
	/* Asking did not write .git/index. */
	read_local(&idx1, repo, ".git/index");
	assert_int_equal(idx0.len, idx1.len);
	assert_memory_equal(idx0.ptr, idx1.ptr, idx0.len);
	buf_release(&idx0);
	buf_release(&idx1);

	/* Staged only (work tree equals index). */
	run("git -C '%s' add envs/poc/chain.yaml", repo);
	expect_dirty(r, pfx, 2, 1, "envs/poc/chain.yaml");
	run("git -C '%s' reset -q --hard", repo);
	expect_dirty(r, pfx, 2, 0, NULL);

	/* A newly staged file is tracked. */
	run("git -C '%s' add envs/poc/new.yaml", repo);
	expect_dirty(r, pfx, 2, 1, "envs/poc/new.yaml");
	run("git -C '%s' rm -q --cached envs/poc/new.yaml", repo);
	expect_dirty(r, pfx, 2, 0, NULL);

	/* Deleted in the work tree; a top-level file prefix. */
	run("rm '%s/rotor.yaml'", repo);
	expect_dirty(r, pfx, 2, 1, "rotor.yaml");
	run("git -C '%s' checkout -q -- rotor.yaml", repo);

	/* first_path may be NULL. */
	write_str(repo, "envs/poc/hosts.yaml", "hosts: [a]\n");
	assert_int_equal(gitrepo_dirty(&dirty, NULL, 0, r, pfx, 2, &e), 0);
	assert_int_equal(dirty, 1);
	assert_int_equal(gitrepo_dirty(&dirty, NULL, 0, r, bad, 1, &e), ROTOR_EINVALID);
	gitrepo_free(r);
}

static void test_branch_exists(void **state)
{
	char repo[300];
	struct gitrepo *r;
	struct err e = ERR_INIT;
	int ex = -1;

	(void)state;
	new_repo(repo, sizeof(repo));
	run("git -C '%s' branch rotor/rotate/poc/gen-1", repo);
	r = open_ok(repo);
	assert_int_equal(gitrepo_branch_exists(&ex, r, "main", &e), 0);
	assert_int_equal(ex, 1);
	assert_int_equal(gitrepo_branch_exists(&ex, r, "rotor/rotate/poc/gen-1", &e), 0);
	assert_int_equal(ex, 1);
	assert_int_equal(gitrepo_branch_exists(&ex, r, "rotor/rotate/poc/gen-2", &e), 0);
	assert_int_equal(ex, 0);
	assert_int_equal(gitrepo_branch_exists(&ex, r, "rotor", &e), 0);
	assert_int_equal(ex, 0);
	assert_int_equal(gitrepo_branch_exists(&ex, r, "a..b", &e), ROTOR_EINVALID);
	assert_int_equal(ex, 0);
	gitrepo_free(r);
}

/* ---- commit_branch --------------------------------------------------- */

/* What must not move when a branch is committed. */
struct snapshot {
	struct buf status, index, head_file, worktree;
	char head[41];
};

static void snap(struct snapshot *s, const char *repo)
{
	memset(s, 0, sizeof(*s));
	capture(&s->status, "git -C '%s' status --porcelain=v1 --untracked-files=all", repo);
	read_local(&s->index, repo, ".git/index");
	read_local(&s->head_file, repo, ".git/HEAD");
	capture(&s->worktree, "cd '%s' && find . -path ./.git -prune -o -print | LC_ALL=C sort", repo);
	rev_parse(s->head, repo, "HEAD");
}

static void assert_buf_equal(const struct buf *a, const struct buf *b)
{
	if (a->len != b->len || memcmp(a->ptr, b->ptr, a->len) != 0)
		fail_msg("changed:\n--- before\n%s\n--- after\n%s", buf_cstr(a), buf_cstr(b));
}

static void snap_same(struct snapshot *before, const char *repo)
{
	struct snapshot after;

	snap(&after, repo);
	assert_buf_equal(&before->status, &after.status);
	assert_buf_equal(&before->index, &after.index);
	assert_buf_equal(&before->head_file, &after.head_file);
	assert_buf_equal(&before->worktree, &after.worktree);
	assert_string_equal(before->head, after.head);
	buf_release(&after.status);
	buf_release(&after.index);
	buf_release(&after.head_file);
	buf_release(&after.worktree);
}

static void snap_release(struct snapshot *s)
{
	buf_release(&s->status);
	buf_release(&s->index);
	buf_release(&s->head_file);
	buf_release(&s->worktree);
}

static void assert_show(const char *repo, const char *rev, const char *path,
			const void *data, size_t len)
{
	struct buf b = BUF_INIT;

	capture(&b, "git -C '%s' show '%s:%s'", repo, rev, path);
	if (b.len != len || memcmp(b.ptr, data, len) != 0)
		fail_msg("git show %s:%s differs (%zu bytes, expected %zu)", rev, path, b.len, len);
	buf_release(&b);
}

static void test_commit_branch(void **state)
{
	static const char chain[] = "generation: 2\nca: |\n  \0binary\xff\n";
	static const char root_pem[] = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n";
	const struct gitrepo_file files[] = {
		{ "envs/poc/chain.yaml", chain, sizeof(chain) },
		{ "envs/poc/gen-2/ca/root.pem", root_pem, strlen(root_pem) },
		{ "envs/poc/empty", "", 0 },
		{ "envs/dev/chain.yaml", NULL, 0 },
	};
	const char *branch = "rotor/rotate/poc/gen-2";
	char repo[300], base[41], id[41], line[512];
	struct snapshot before;
	struct buf b = BUF_INIT;
	struct gitrepo *r;
	struct err e = ERR_INIT;
	int ex;

	(void)state;
	new_repo(repo, sizeof(repo));
	write_str(repo, "README", "second\n");
	run("git -C '%s' commit -q -am second", repo);
	rev_parse(base, repo, "HEAD");
	/* A work tree with staged, unstaged and untracked changes. */
	write_str(repo, "envs/poc/hosts.yaml", "hosts: [staged]\n");
	run("git -C '%s' add envs/poc/hosts.yaml", repo);
	write_str(repo, "envs/poc/chain.yaml", "generation: local edit\n");
	write_str(repo, "scratch.txt", "untracked\n");
	snap(&before, repo);

	r = open_ok(repo);
	if (gitrepo_commit_branch(id, r, base, files, 4, branch, "rotate poc: start gen 2", &e) != 0)
		fail_msg("commit_branch: %s", e.msg);
	assert_int_equal(strlen(id), 40);

	/* The work tree, the index and HEAD did not move. */
	snap_same(&before, repo);
	snap_release(&before);

	/* One commit whose only parent is base, on the new branch. */
	capture_line(line, sizeof(line), "git -C '%s' rev-parse 'refs/heads/%s'", repo, branch);
	assert_string_equal(line, id);
	capture_line(line, sizeof(line), "git -C '%s' rev-list --parents -n 1 '%s'", repo, branch);
	assert_int_equal(strlen(line), 81);
	assert_memory_equal(line, id, 40);
	assert_string_equal(line + 41, base);
	capture_line(line, sizeof(line), "git -C '%s' rev-list --count '%s..%s'", repo, base, branch);
	assert_string_equal(line, "1");
	capture_line(line, sizeof(line), "git -C '%s' log -1 --format='%%an <%%ae>|%%cn <%%ce>|%%B' '%s'",
		     repo, branch);
	assert_string_equal(line, "Test User <test@example.com>|Test User <test@example.com>|"
			    "rotate poc: start gen 2");
	capture_line(line, sizeof(line), "git -C '%s' reflog show --format=%%gs 'refs/heads/%s'",
		     repo, branch);
	assert_contains(line, "created by rotor");
	run("git -C '%s' fsck --strict --no-dangling --no-progress >/dev/null", repo);

	/* Exact bytes, through the git command line and through gitrepo_read. */
	assert_show(repo, branch, "envs/poc/chain.yaml", chain, sizeof(chain));
	assert_show(repo, branch, "envs/poc/gen-2/ca/root.pem", root_pem, strlen(root_pem));
	assert_show(repo, branch, "envs/poc/empty", "", 0);
	assert_show(repo, branch, "envs/poc/hosts.yaml", "hosts: []\n", 10);
	assert_show(repo, branch, "README", "second\n", 7);
	assert_show(repo, branch, "rotor.yaml", "version: 1\n", 11);
	assert_int_equal(gitrepo_read(&b, r, id, "envs/poc/chain.yaml", 0, &e), 0);
	assert_int_equal(b.len, sizeof(chain));
	assert_memory_equal(b.ptr, chain, sizeof(chain));
	buf_release(&b);
	assert_int_equal(gitrepo_read(&b, r, id, "envs/dev/chain.yaml", 0, &e), ROTOR_ENOTFOUND);
	/* envs/dev had one file: deleting it removes the directory. */
	capture(&b, "git -C '%s' ls-tree -r --format='%%(objectmode) %%(path)' '%s'", repo, branch);
	assert_string_equal(buf_cstr(&b),
			    "100644 README\n100644 big.bin\n100644 envs/poc/chain.yaml\n"
			    "100644 envs/poc/empty\n100644 envs/poc/gen-2/ca/root.pem\n"
			    "100644 envs/poc/hosts.yaml\n100644 rotor.yaml\n");
	buf_release(&b);
	assert_false(exists(repo, "envs/poc/gen-2"));

	assert_int_equal(gitrepo_branch_exists(&ex, r, branch, &e), 0);
	assert_int_equal(ex, 1);
	gitrepo_free(r);
}

/*
 * A commit of many files goes into one pack with its index, no loose
 * object: real git accepts the repository (fsck --strict) and prints
 * every file byte for byte.  The contents are alike (PEM-shaped, so the
 * pack holds deltas) and binary; one file repeats a blob already on
 * disk, which the pack must not hold again.
 */
#define PACKED_N 240

static void test_commit_branch_packed(void **state)
{
	static struct gitrepo_file files[PACKED_N + 3];
	static char paths[PACKED_N][64], data[PACKED_N][700];
	static const char chain[] = "generation: 3\n\0binary\xff\n";
	char repo[300], base[41], id[41], id2[41], line[512];
	struct buf b = BUF_INIT;
	struct gitrepo *r;
	struct err e = ERR_INIT;
	const struct gitrepo_file small = { "envs/poc/chain.yaml", "generation: 4\n", 14 };
	unsigned x = 12345;
	size_t i, j, n = 0;

	(void)state;
	new_repo(repo, sizeof(repo));
	rev_parse(base, repo, "HEAD");
	run("git -C '%s' gc -q", repo);   /* no loose objects to start with */
	for (i = 0; i < PACKED_N; i++) {
		int len = snprintf(data[i], sizeof(data[i]), "-----BEGIN CERTIFICATE-----\nuser%04zu\n", i);

		for (j = 0; j < 400; j++) {   /* pseudo-random bytes, a NUL among them */
			x = x * 1103515245u + 12345u;
			data[i][len++] = (char)(x >> 16);
		}
		len += snprintf(data[i] + len, sizeof(data[i]) - (size_t)len, "\n-----END CERTIFICATE-----\n");
		snprintf(paths[i], sizeof(paths[i]), "envs/poc/gen-3/clients/%c/user%04zu.%s",
			 'a' + (int)(i % 3), i / 2, i % 2 ? "key" : "crt");
		files[n].path = paths[i];
		files[n].data = data[i];
		files[n++].len = (size_t)len;
	}
	files[n++] = (struct gitrepo_file){ "envs/poc/chain.yaml", chain, sizeof(chain) };
	files[n++] = (struct gitrepo_file){ "envs/poc/same.yaml", "version: 1\n", 11 };  /* rotor.yaml's blob */
	files[n++] = (struct gitrepo_file){ "envs/dev/chain.yaml", NULL, 0 };

	r = open_ok(repo);
	if (gitrepo_commit_branch(id, r, base, files, n, "rotor/rotate/poc/gen-3", "gen 3", &e) != 0)
		fail_msg("commit_branch: %s", e.msg);

	/* No loose object; two packs (gc's and ours), each with its index. */
	capture_line(line, sizeof(line), "find '%s/.git/objects' -type f -path '*/objects/[0-9a-f][0-9a-f]/*' | wc -l",
		     repo);
	assert_string_equal(line, "0");
	capture_line(line, sizeof(line), "ls '%s/.git/objects/pack/' | sed 's/.*[.]//' | sort | uniq -c | "
		     "tr -s ' ' | tr '\\n' ';'", repo);
	assert_string_equal(line, " 2 idx; 2 pack;");
	run("cd '%s/.git/objects/pack' && for i in *.idx; do test -f \"${i%%.idx}.pack\" || exit 1; done", repo);
	run("git -C '%s' fsck --strict --full --no-dangling --no-progress >/dev/null", repo);
	run("git -C '%s' verify-pack '%s'/.git/objects/pack/*.idx", repo, repo);
	/* The blob already on disk is not in the new pack. */
	capture_line(line, sizeof(line), "cd '%s' && for i in .git/objects/pack/*.idx; do git show-index <\"$i\" | "
		     "grep -c \"$(git rev-parse HEAD:rotor.yaml)\"; done | sort | tr '\\n' ' '", repo);
	assert_string_equal(line, "0 1 ");

	for (i = 0; i < n; i++)
		if (files[i].data)
			assert_show(repo, "rotor/rotate/poc/gen-3", files[i].path, files[i].data, files[i].len);
	capture(&b, "git -C '%s' ls-tree -r --name-only rotor/rotate/poc/gen-3 | wc -l", repo);
	assert_int_equal(atoi(buf_cstr(&b)), 6 - 1 + 1 + PACKED_N);   /* 6 before, a delete, same.yaml */
	buf_release(&b);
	assert_int_equal(gitrepo_read(&b, r, id, paths[7], 0, &e), 0);
	assert_int_equal(b.len, files[7].len);
	assert_memory_equal(b.ptr, files[7].data, b.len);
	buf_release(&b);

	/* The same handle builds on the packed commit (a small one: loose). */
	if (gitrepo_commit_branch(id2, r, id, &small, 1, "rotor/rotate/poc/gen-4", "gen 4", &e) != 0)
		fail_msg("commit_branch on the packed commit: %s", e.msg);
	gitrepo_free(r);
	assert_show(repo, "rotor/rotate/poc/gen-4", "envs/poc/chain.yaml", "generation: 4\n", 14);
	assert_show(repo, "rotor/rotate/poc/gen-4", paths[PACKED_N - 1], files[PACKED_N - 1].data,
		    files[PACKED_N - 1].len);
	run("git -C '%s' fsck --strict --full --no-dangling --no-progress >/dev/null", repo);
	/* And plain git can repack and clone it. */
	run("git -C '%s' gc -q && git -C '%s' fsck --strict --no-progress >/dev/null && "
	    "git clone -q --no-local '%s' '%s.clone' && git -C '%s.clone' fsck --strict --no-progress >/dev/null",
	    repo, repo, repo, repo, repo);
}

/* A commit on top of a commit that is not HEAD, and with no files. */
static void test_commit_branch_other_base(void **state)
{
	const struct gitrepo_file one = { "rotor.yaml", "version: 2\n", 11 };
	char repo[300], first[41], id[41], line[200];
	struct gitrepo *r;
	struct err e = ERR_INIT;

	(void)state;
	new_repo(repo, sizeof(repo));
	rev_parse(first, repo, "HEAD");
	write_str(repo, "README", "second\n");
	run("git -C '%s' commit -q -am second", repo);
	r = open_ok(repo);
	assert_int_equal(gitrepo_commit_branch(id, r, first, &one, 1, "b1", "on first\n", &e), 0);
	capture_line(line, sizeof(line), "git -C '%s' rev-parse b1^", repo);
	assert_string_equal(line, first);
	assert_show(repo, "b1", "README", "state\n", 6);
	assert_show(repo, "b1", "rotor.yaml", "version: 2\n", 11);
	capture_line(line, sizeof(line), "git -C '%s' log -1 --format=%%B b1", repo);
	assert_string_equal(line, "on first");

	/* No files: same tree as the base. */
	assert_int_equal(gitrepo_commit_branch(id, r, first, NULL, 0, "b2", "marker", &e), 0);
	capture_line(line, sizeof(line), "git -C '%s' rev-parse b2^{tree}", repo);
	{
		char tree[100];

		capture_line(tree, sizeof(tree), "git -C '%s' rev-parse %s^{tree}", repo, first);
		assert_string_equal(line, tree);
	}
	gitrepo_free(r);
}

static void test_commit_branch_exists(void **state)
{
	const struct gitrepo_file one = { "rotor.yaml", "version: 2\n", 11 };
	char repo[300], base[41], id[41], was[41], objs0[64], objs1[64];
	struct snapshot before;
	struct gitrepo *r;
	struct err e = ERR_INIT;

	(void)state;
	new_repo(repo, sizeof(repo));
	rev_parse(base, repo, "HEAD");
	run("git -C '%s' branch rotor/rotate/poc/gen-2", repo);
	rev_parse(was, repo, "rotor/rotate/poc/gen-2");
	snap(&before, repo);
	capture_line(objs0, sizeof(objs0), "git -C '%s' count-objects", repo);

	r = open_ok(repo);
	assert_int_equal(gitrepo_commit_branch(id, r, base, &one, 1, "rotor/rotate/poc/gen-2", "x", &e),
			 ROTOR_EEXISTS);
	assert_string_equal(id, "");
	assert_contains(e.msg, "rotor/rotate/poc/gen-2");
	err_clear(&e);
	/* "main" is HEAD's branch: exists too. */
	assert_int_equal(gitrepo_commit_branch(id, r, base, &one, 1, "main", "x", &e), ROTOR_EEXISTS);
	/* A branch where a branch is a directory of refs, or below a branch. */
	err_clear(&e);
	assert_int_equal(gitrepo_commit_branch(id, r, base, &one, 1, "rotor/rotate", "x", &e),
			 ROTOR_EEXISTS);
	assert_contains(e.msg, "rotor/rotate");
	err_clear(&e);
	assert_int_equal(gitrepo_commit_branch(id, r, base, &one, 1, "main/x", "x", &e), ROTOR_EEXISTS);
	assert_contains(e.msg, "main/x");
	gitrepo_free(r);

	snap_same(&before, repo);
	snap_release(&before);
	rev_parse(id, repo, "rotor/rotate/poc/gen-2");
	assert_string_equal(id, was);
	/* Refused before any object was written. */
	capture_line(objs1, sizeof(objs1), "git -C '%s' count-objects", repo);
	assert_string_equal(objs0, objs1);
}

static void expect_refused(struct gitrepo *r, const char *base, const struct gitrepo_file *f, size_t n,
			   const char *branch, const char *msg, int code, const char *what)
{
	struct err e = ERR_INIT;
	char id[41] = "x";
	int rc = gitrepo_commit_branch(id, r, base, f, n, branch, msg, &e);

	if (rc != code)
		fail_msg("%s: got %d (%s), expected %d", what, rc, e.msg, code);
	assert_string_equal(id, "");
	assert_true(e.msg[0] != '\0');
}

static void test_commit_branch_refused(void **state)
{
	const struct gitrepo_file ok = { "envs/poc/x.yaml", "x\n", 2 };
	const struct gitrepo_file twice[] = { { "a/b", "1", 1 }, { "a/b", "2", 1 } };
	const struct gitrepo_file nested[] = { { "a/b", "1", 1 }, { "a/b/c", "2", 1 } };
	const struct gitrepo_file nested2[] = { { "a/b/c", "1", 1 }, { "a", NULL, 0 } };
	const struct gitrepo_file over_dir = { "envs/poc", "x", 1 };
	const struct gitrepo_file under_file = { "rotor.yaml/x", "x", 1 };
	const struct gitrepo_file del_missing = { "envs/poc/none.yaml", NULL, 0 };
	const struct gitrepo_file del_dir = { "envs/poc", NULL, 0 };
	char repo[300], base[41], objs0[64], objs1[64], zero[41];
	struct gitrepo_file bad;
	struct snapshot before;
	struct buf refs0 = BUF_INIT, refs1 = BUF_INIT;
	struct gitrepo *r;
	size_t i;

	(void)state;
	new_repo(repo, sizeof(repo));
	rev_parse(base, repo, "HEAD");
	snap(&before, repo);
	capture(&refs0, "git -C '%s' for-each-ref", repo);
	capture_line(objs0, sizeof(objs0), "git -C '%s' count-objects", repo);
	r = open_ok(repo);

	for (i = 0; i < sizeof(bad_branches) / sizeof(bad_branches[0]); i++)
		expect_refused(r, base, &ok, 1, bad_branches[i], "m", ROTOR_EINVALID, bad_branches[i]);
	expect_refused(r, base, &ok, 1, NULL, "m", ROTOR_EINVALID, "NULL branch");
	for (i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
		bad.path = bad_paths[i];
		bad.data = "x";
		bad.len = 1;
		expect_refused(r, base, &bad, 1, "b", "m", ROTOR_EINVALID, "bad path");
		bad.data = NULL;
		expect_refused(r, base, &bad, 1, "b", "m", ROTOR_EINVALID, "bad delete path");
	}
	expect_refused(r, base, twice, 2, "b", "m", ROTOR_EINVALID, "path twice");
	expect_refused(r, base, nested, 2, "b", "m", ROTOR_EINVALID, "path inside another");
	expect_refused(r, base, nested2, 2, "b", "m", ROTOR_EINVALID, "path inside another");
	expect_refused(r, base, &over_dir, 1, "b", "m", ROTOR_EINVALID, "file over a directory");
	expect_refused(r, base, &under_file, 1, "b", "m", ROTOR_EINVALID, "file below a file");
	expect_refused(r, base, &del_missing, 1, "b", "m", ROTOR_ENOTFOUND, "delete missing");
	expect_refused(r, base, &del_dir, 1, "b", "m", ROTOR_EINVALID, "delete a directory");
	expect_refused(r, base, NULL, 1, "b", "m", ROTOR_EINVALID, "NULL files");
	expect_refused(r, base, &ok, 1, "b", "", ROTOR_EINVALID, "empty message");
	expect_refused(r, base, &ok, 1, "b", " \n", ROTOR_EINVALID, "blank message");
	expect_refused(r, base, &ok, 1, "b", NULL, ROTOR_EINVALID, "NULL message");
	expect_refused(r, "main", &ok, 1, "b", "m", ROTOR_EINVALID, "base not an id");
	memset(zero, '0', 40);
	zero[40] = '\0';
	expect_refused(r, zero, &ok, 1, "b", "m", ROTOR_ENOTFOUND, "unknown base");
	gitrepo_free(r);

	snap_same(&before, repo);
	snap_release(&before);
	capture(&refs1, "git -C '%s' for-each-ref", repo);
	assert_buf_equal(&refs0, &refs1);
	buf_release(&refs0);
	buf_release(&refs1);
	capture_line(objs1, sizeof(objs1), "git -C '%s' count-objects", repo);
	assert_string_equal(objs0, objs1);
}

/* Creating the branch an unborn HEAD names would give HEAD a commit. */
static void test_commit_branch_unborn_head(void **state)
{
	const struct gitrepo_file ok = { "x", "x", 1 };
	char repo[300], base[41], id[41];
	struct gitrepo *r;
	struct err e = ERR_INIT;
	int ex;

	(void)state;
	new_repo(repo, sizeof(repo));
	rev_parse(base, repo, "HEAD");
	run("git -C '%s' symbolic-ref HEAD refs/heads/orphan", repo);
	r = open_ok(repo);
	assert_int_equal(gitrepo_commit_branch(id, r, base, &ok, 1, "orphan", "m", &e), ROTOR_ESTATE);
	assert_int_equal(gitrepo_branch_exists(&ex, r, "orphan", &e), 0);
	assert_int_equal(ex, 0);
	gitrepo_free(r);
}

/* With no user.name/user.email anywhere: "rotor <rotor@localhost>". */
static void test_commit_branch_fallback_signature(void **state)
{
	const struct gitrepo_file ok = { "rotor.yaml", "version: 3\n", 11 };
	char repo[300], empty_home[300], base[41], id[41], line[200];
	struct gitrepo *r;
	struct err e = ERR_INIT;

	(void)state;
	new_repo(repo, sizeof(repo));
	rev_parse(base, repo, "HEAD");
	new_dir(empty_home, sizeof(empty_home), "emptyhome");

	/* libgit2 reads HOME when it initialises. */
	gitrepo_global_shutdown();
	setenv("HOME", empty_home, 1);
	assert_int_equal(gitrepo_global_init(&e), 0);
	r = open_ok(repo);
	e.code = gitrepo_commit_branch(id, r, base, &ok, 1, "fallback", "no identity", &e);
	gitrepo_free(r);
	gitrepo_global_shutdown();
	setenv("HOME", g_home, 1);
	assert_int_equal(gitrepo_global_init(&e), 0);

	capture_line(line, sizeof(line), "git -C '%s' log -1 --format='%%an <%%ae>|%%cn <%%ce>' fallback",
		     repo);
	assert_string_equal(line, "rotor <rotor@localhost>|rotor <rotor@localhost>");
	capture_line(line, sizeof(line), "git -C '%s' rev-parse fallback", repo);
	assert_string_equal(line, id);
}

/* Two processes create the same branch at once: exactly one wins. */
static void test_commit_branch_race(void **state)
{
	char repo[300], base[41], name[32];
	int round, k, wins, losses;

	(void)state;
	new_repo(repo, sizeof(repo));
	rev_parse(base, repo, "HEAD");
	for (round = 0; round < 8; round++) {
		pid_t pid[2];

		snprintf(name, sizeof(name), "race/%d", round);
		for (k = 0; k < 2; k++) {
			pid[k] = fork();
			assert_true(pid[k] >= 0);
			if (pid[k] == 0) {
				struct gitrepo_file f = { "who", k ? "1" : "0", 1 };
				struct gitrepo *r = NULL;
				struct err e = ERR_INIT;
				char id[41];
				int rc;

				if (gitrepo_open(&r, repo, 0, &e) != 0)
					_exit(9);
				rc = gitrepo_commit_branch(id, r, base, &f, 1, name, "race", &e);
				_exit(rc == 0 ? 0 : rc == ROTOR_EEXISTS ? 3 : 8);
			}
		}
		wins = losses = 0;
		for (k = 0; k < 2; k++) {
			int st;

			assert_int_equal(waitpid(pid[k], &st, 0), pid[k]);
			assert_true(WIFEXITED(st));
			if (WEXITSTATUS(st) == 0)
				wins++;
			else if (WEXITSTATUS(st) == 3)
				losses++;
			else
				fail_msg("child exited %d", WEXITSTATUS(st));
		}
		assert_int_equal(wins, 1);
		assert_int_equal(losses, 1);
	}
}

/* ---- history (githistory.h) -------------------------------------------- */

static int count_each(void *payload, const char *id, struct err *e)
{
	int *n = payload;

	(void)e;
	assert_int_equal(strlen(id), 40);
	return ++*n == 2 ? 1 : 0;   /* stop after two */
}

static int fail_each(void *payload, const char *id, struct err *e)
{
	(void)payload;
	(void)id;
	return err_set(e, ROTOR_ESTATE, "stopped by the callback");
}

static void test_history(void **state)
{
	char repo[512], c1[41], c2[41], c3[41], tip[41];
	struct gitrepo_past_entry *v = NULL;
	struct err e = ERR_INIT;
	struct gitrepo *r;
	size_t n = 0;
	int yes = -1, count = 0;

	(void)state;
	new_repo(repo, sizeof(repo));
	rev_parse(c1, repo, "HEAD");
	/* 0001 and 0002 committed, then reverted away, then 0003: history holds all three. */
	write_str(repo, "envs/poc/generations/0001/a.crt", "one\n");
	write_str(repo, "envs/poc/generations/0002/a.crt", "two\n");
	run("git -C '%s' add -A && git -C '%s' commit -q -m two", repo, repo);
	rev_parse(c2, repo, "HEAD");
	run("git -C '%s' revert --no-edit HEAD >/dev/null", repo);
	write_str(repo, "envs/poc/generations/0003/a.crt", "three\n");
	run("git -C '%s' add -A && git -C '%s' commit -q -m three", repo, repo);
	rev_parse(c3, repo, "HEAD");
	r = open_ok(repo);

	assert_int_equal(gitrepo_dir_history(&v, &n, r, c3, "envs/poc/generations", 100, &e), 0);
	assert_int_equal(n, 3);
	assert_string_equal(v[0].name, "0001");
	assert_string_equal(v[0].commit, c2);   /* the newest commit that held it */
	assert_string_equal(v[1].name, "0002");
	assert_string_equal(v[1].commit, c2);
	assert_string_equal(v[2].name, "0003");
	assert_string_equal(v[2].commit, c3);
	gitrepo_past_free(v, n);
	/* From an older commit, only what its history held; a dir never there: none. */
	assert_int_equal(gitrepo_dir_history(&v, &n, r, c1, "envs/poc/generations", 100, &e), 0);
	assert_int_equal(n, 0);
	gitrepo_past_free(v, n);
	assert_int_equal(gitrepo_dir_history(&v, &n, r, c3, "envs/poc/generations", 2, &e), ROTOR_ETOOBIG);
	assert_int_equal(gitrepo_dir_history(&v, &n, r, c3, "../x", 100, &e), ROTOR_EINVALID);
	assert_int_equal(gitrepo_dir_history(&v, &n, r, "nope", "envs", 100, &e), ROTOR_EINVALID);

	assert_int_equal(gitrepo_is_ancestor(&yes, r, c1, c3, &e), 0);
	assert_int_equal(yes, 1);
	assert_int_equal(gitrepo_is_ancestor(&yes, r, c3, c1, &e), 0);
	assert_int_equal(yes, 0);
	assert_int_equal(gitrepo_is_ancestor(&yes, r, c2, c2, &e), 0);
	assert_int_equal(yes, 1);

	assert_int_equal(gitrepo_walk(r, c3, count_each, &count, &e), 0);
	assert_int_equal(count, 2);
	err_clear(&e);
	assert_int_equal(gitrepo_walk(r, c3, fail_each, NULL, &e), ROTOR_ESTATE);
	assert_string_equal(e.msg, "stopped by the callback");
	err_clear(&e);

	/* A branch at an existing commit, create-only. */
	assert_int_equal(gitrepo_branch_create(r, "rotor/rolled-back/poc/gen-0002", c2, &e), 0);
	assert_int_equal(gitrepo_branch_tip(tip, r, "rotor/rolled-back/poc/gen-0002", &e), 0);
	assert_string_equal(tip, c2);
	assert_int_equal(gitrepo_branch_create(r, "rotor/rolled-back/poc/gen-0002", c3, &e), ROTOR_EEXISTS);
	assert_int_equal(gitrepo_branch_tip(tip, r, "rotor/rolled-back/poc/gen-0002", &e), 0);
	assert_string_equal(tip, c2);
	assert_int_equal(gitrepo_branch_tip(tip, r, "no/such/branch", &e), ROTOR_ENOTFOUND);
	assert_int_equal(gitrepo_branch_create(r, "bad..name", c2, &e), ROTOR_EINVALID);
	gitrepo_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_path_valid),
		cmocka_unit_test(test_branch_valid),
		cmocka_unit_test(test_open_exact_and_search),
		cmocka_unit_test(test_open_not_a_repo),
		cmocka_unit_test(test_open_bare),
		cmocka_unit_test(test_resolve),
		cmocka_unit_test(test_resolve_unborn),
		cmocka_unit_test(test_read),
		cmocka_unit_test(test_read_packed),
		cmocka_unit_test(test_read_not_a_file),
		cmocka_unit_test(test_list),
		cmocka_unit_test(test_head),
		cmocka_unit_test(test_dirty),
		cmocka_unit_test(test_branch_exists),
		cmocka_unit_test(test_commit_branch),
		cmocka_unit_test(test_commit_branch_packed),
		cmocka_unit_test(test_commit_branch_other_base),
		cmocka_unit_test(test_commit_branch_exists),
		cmocka_unit_test(test_commit_branch_refused),
		cmocka_unit_test(test_commit_branch_unborn_head),
		cmocka_unit_test(test_commit_branch_fallback_signature),
		cmocka_unit_test(test_commit_branch_race),
		cmocka_unit_test(test_history),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
