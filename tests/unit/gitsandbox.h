/*
 * gitsandbox.h -- a throwaway home for the unit tests that use real git
 * repositories (include after <cmocka.h> and tests/unit/helpers.h).
 * Every function is static inline so a test includes the ones it needs
 * without unused-function warnings.
 *
 *   gitsandbox_setup(root, len, name, gitconfig)  mkdtemp $TMPDIR/rotor-NAME-XXXXXX into
 *       root, with root/home the HOME (its .gitconfig holds gitconfig) and
 *       root/xdg the XDG_CONFIG_HOME; no GIT_* variable from outside; then
 *       libgit2 initialised.  0, or -1 (for a cmocka group setup)
 *   gitsandbox_teardown(root)   libgit2 shut down, root removed
 *   write_file(dir, rel, data, len), write_str(dir, rel, s)   parents made as needed
 *   read_local(out, dir, rel)   a file's bytes ("" when empty)
 *   rev_parse(out, repo, rev)   the 40-hex id git rev-parse gives
 *   open_ok(path)               gitrepo_open, which must succeed
 *   assert_contains(hay, needle)
 */
#ifndef ROTOR_TEST_GITSANDBOX_H
#define ROTOR_TEST_GITSANDBOX_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>

#include "common/buf.h"
#include "common/err.h"
#include "gitops/gitrepo.h"

static inline int gitsandbox_setup(char *root, size_t len, const char *name, const char *gitconfig)
{
	static const char *const unset[] = {
		"GIT_DIR", "GIT_WORK_TREE", "GIT_INDEX_FILE", "GIT_OBJECT_DIRECTORY",
		"GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL",
		"GIT_CEILING_DIRECTORIES",
	};
	const char *tmp = getenv("TMPDIR") && *getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
	char home[600], xdg[600], cfg[700];
	struct err e = ERR_INIT;
	size_t i;
	FILE *f;

	if ((size_t)snprintf(root, len, "%s/rotor-%s-XXXXXX", tmp, name) >= len || !mkdtemp(root))
		return -1;
	snprintf(home, sizeof(home), "%s/home", root);
	snprintf(xdg, sizeof(xdg), "%s/xdg", root);
	if (mkdir(home, 0700) < 0 || mkdir(xdg, 0700) < 0)
		return -1;
	snprintf(cfg, sizeof(cfg), "%s/.gitconfig", home);
	if (!(f = fopen(cfg, "w")))
		return -1;
	fputs(gitconfig, f);
	if (fclose(f) != 0)
		return -1;
	/* Before libgit2 initialises: it reads HOME once, at init. */
	setenv("HOME", home, 1);
	setenv("XDG_CONFIG_HOME", xdg, 1);
	setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
	for (i = 0; i < sizeof(unset) / sizeof(unset[0]); i++)
		unsetenv(unset[i]);
	return gitrepo_global_init(&e) != 0 ? -1 : 0;
}

static inline int gitsandbox_teardown(const char *root)
{
	char cmd[700];

	gitrepo_global_shutdown();
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	return system(cmd) == 0 ? 0 : -1;
}

static inline void write_file(const char *dir, const char *rel, const void *data, size_t len)
{
	char path[1024], *slash;
	FILE *f;

	assert_true((size_t)snprintf(path, sizeof(path), "%s/%s", dir, rel) < sizeof(path));
	slash = strrchr(path, '/');
	*slash = '\0';
	run("mkdir -p '%s'", path);
	*slash = '/';
	f = fopen(path, "wb");
	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, len, f), len);
	assert_int_equal(fclose(f), 0);
}

static inline void write_str(const char *dir, const char *rel, const char *s)
{
	write_file(dir, rel, s, strlen(s));
}

static inline void read_local(struct buf *out, const char *dir, const char *rel)
{
	char path[1024];
	struct err e = ERR_INIT;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	assert_int_equal(buf_read_file(out, path, (size_t)64 << 20, &e), 0);
	if (!out->ptr)
		assert_int_equal(buf_put(out, "", 0), 0);
}

static inline void rev_parse(char out[41], const char *repo, const char *rev)
{
	capture_line(out, 41, "git -C '%s' rev-parse --verify -q '%s'", repo, rev);
	assert_int_equal(strlen(out), 40);
}

static inline struct gitrepo *open_ok(const char *path)
{
	struct gitrepo *r = NULL;
	struct err e = ERR_INIT;

	if (gitrepo_open(&r, path, 0, &e) != 0)
		fail_msg("gitrepo_open %s: %s", path, e.msg);
	return r;
}

static inline void assert_contains(const char *hay, const char *needle)
{
	if (!strstr(hay, needle))
		fail_msg("\"%s\" does not contain \"%s\"", hay, needle);
}

#endif
