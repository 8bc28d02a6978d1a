/*
 * test_gitremote.c -- fetch, ls-remote and push (compare-and-swap, delete
 * with a lease, non-fast-forward refused) against real repositories over
 * libgit2's local transport: a file:// URL and a plain path.  The SSH
 * transport, its host key and credentials, and a hook's messages are
 * tested on the fleet by tests/e2e/remote.sh.
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

#include "common/buf.h"
#include "common/err.h"
#include "gitops/gitremote.h"
#include "gitops/gitrepo.h"

static char g_root[256];
static int g_seq;

/* A bare server with one commit on main, and a clone "a" of it through url_style (file:// or a path). */
struct pair {
	char srv[512], a[512], seed[512];
	struct gitrepo *r;
};

static void pair_make(struct pair *p, int file_url)
{
	int n = ++g_seq;

	snprintf(p->srv, sizeof(p->srv), "%s/srv%d.git", g_root, n);
	snprintf(p->seed, sizeof(p->seed), "%s/seed%d", g_root, n);
	snprintf(p->a, sizeof(p->a), "%s/a%d", g_root, n);
	run("git init -q --bare '%s'", p->srv);
	run("git init -q '%s' && cd '%s' && echo one > f && git add f && git commit -qm one && git push -q '%s' main",
	    p->seed, p->seed, p->srv);
	run("git clone -q '%s%s' '%s'", file_url ? "file://" : "", p->srv, p->a);
	p->r = open_ok(p->a);
}

static void pair_free(struct pair *p)
{
	gitrepo_free(p->r);
}

static void test_url(void **state)
{
	struct pair p;
	struct buf b = BUF_INIT;
	struct err e = ERR_INIT;
	char want[600];

	(void)state;
	pair_make(&p, 1);
	assert_int_equal(gitremote_url(&b, p.r, "origin", &e), 0);
	snprintf(want, sizeof(want), "file://%s", p.srv);
	assert_string_equal(buf_cstr(&b), want);
	assert_int_equal(gitremote_url(&b, p.r, "upstream", &e), ROTOR_ENOTFOUND);
	assert_contains(e.msg, "no remote \"upstream\"");
	assert_int_equal(gitremote_url(&b, p.r, "bad name", &e), ROTOR_EINVALID);
	assert_int_equal(gitremote_url(&b, p.r, NULL, &e), ROTOR_EINVALID);
	buf_release(&b);
	pair_free(&p);
}

/* A commit the server gets after the clone is fetched into the tracking ref; nothing else moves. */
static void test_fetch(void **state)
{
	struct pair p;
	struct err e = ERR_INIT;
	const char *spec[] = { "+refs/heads/main:refs/remotes/origin/main" };
	char before[41], srv_main[41], got[41], head[41];
	int file_url;

	(void)state;
	for (file_url = 0; file_url <= 1; file_url++) {
		pair_make(&p, file_url);
		rev_parse(before, p.a, "refs/remotes/origin/main");
		rev_parse(head, p.a, "HEAD");
		run("cd '%s' && echo two > f && git commit -qam two && git push -q '%s' main", p.seed, p.srv);
		rev_parse(srv_main, p.srv, "main");
		assert_string_not_equal(before, srv_main);
		if (gitremote_fetch(p.r, "origin", spec, 1, NULL, &e) != 0)
			fail_msg("fetch: %s", e.msg);
		rev_parse(got, p.a, "refs/remotes/origin/main");
		assert_string_equal(got, srv_main);
		rev_parse(got, p.a, "HEAD");
		assert_string_equal(got, head);     /* the local branch is not touched */
		/* A branch the server does not have leaves the local ref alone. */
		{
			const char *none[] = { "+refs/heads/nosuch:refs/remotes/origin/nosuch" };

			assert_int_equal(gitremote_fetch(p.r, "origin", none, 1, NULL, &e), 0);
			assert_int_not_equal(run_status("git -C '%s' rev-parse -q --verify refs/remotes/origin/nosuch", p.a), 0);
		}
		assert_int_equal(gitremote_fetch(p.r, "nosuch", spec, 1, NULL, &e), ROTOR_ENOTFOUND);
		pair_free(&p);
	}
}

static void test_fetch_unreachable(void **state)
{
	struct pair p;
	struct err e = ERR_INIT;
	const char *spec[] = { "+refs/heads/main:refs/remotes/origin/main" };
	char before[41], after[41];

	(void)state;
	pair_make(&p, 1);
	rev_parse(before, p.a, "refs/remotes/origin/main");
	run("git -C '%s' remote set-url origin 'file://%s/gone.git'", p.a, g_root);
	assert_int_equal(gitremote_fetch(p.r, "origin", spec, 1, NULL, &e), ROTOR_ERROR);
	assert_contains(e.msg, "origin (file://");
	assert_null(strchr(e.msg, '\n'));
	rev_parse(after, p.a, "refs/remotes/origin/main");
	assert_string_equal(after, before);
	pair_free(&p);
}

static void test_lookup(void **state)
{
	struct pair p;
	struct err e = ERR_INIT;
	char id[41], want[41];
	int found = -1;

	(void)state;
	pair_make(&p, 1);
	rev_parse(want, p.srv, "main");
	assert_int_equal(gitremote_lookup(id, &found, p.r, "origin", "refs/heads/main", NULL, &e), 0);
	assert_int_equal(found, 1);
	assert_string_equal(id, want);
	assert_int_equal(gitremote_lookup(id, &found, p.r, "origin", "refs/rotor/lock/poc", NULL, &e), 0);
	assert_int_equal(found, 0);
	assert_string_equal(id, "");
	assert_int_equal(gitremote_lookup(id, NULL, p.r, "origin", "refs/rotor/lock/poc", NULL, &e), ROTOR_ENOTFOUND);
	assert_int_equal(gitremote_lookup(id, NULL, p.r, "origin", "main", NULL, &e), ROTOR_EINVALID);
	pair_free(&p);
}

/* Create with "must be absent": once it exists, a second create is STALE and nothing is sent. */
static void test_push_create_absent(void **state)
{
	struct pair p;
	struct err e = ERR_INIT;
	struct gitremote_update u;
	char want[41], got[41], other[41];

	(void)state;
	pair_make(&p, 1);
	run("cd '%s' && git checkout -q -b rotor/rotate/poc/gen-0002 && echo x > g && git add g && git commit -qm x", p.a);
	rev_parse(want, p.a, "HEAD");
	memset(&u, 0, sizeof(u));
	u.src = "refs/heads/rotor/rotate/poc/gen-0002";
	u.dst = "refs/heads/rotor/rotate/poc/gen-0002";
	u.expect = GITREMOTE_ABSENT;
	if (gitremote_push(p.r, "origin", &u, 1, NULL, &e) != 0)
		fail_msg("push: %s", e.msg);
	assert_int_equal(u.result, GITREMOTE_OK);
	assert_string_equal(u.remote_old, "");
	rev_parse(got, p.srv, "refs/heads/rotor/rotate/poc/gen-0002");
	assert_string_equal(got, want);

	/* Someone else's commit under the same name: refused before anything is sent. */
	run("cd '%s' && git commit -q --allow-empty -m y", p.a);
	rev_parse(other, p.a, "HEAD");
	assert_int_equal(gitremote_push(p.r, "origin", &u, 1, NULL, &e), ROTOR_ESTATE);
	assert_int_equal(u.result, GITREMOTE_STALE);
	assert_string_equal(u.remote_old, want);
	assert_contains(e.msg, "expected absent");
	assert_contains(e.msg, "refs/heads/rotor/rotate/poc/gen-0002");
	rev_parse(got, p.srv, "refs/heads/rotor/rotate/poc/gen-0002");
	assert_string_equal(got, want);

	/* With the right expected value (a lease) and force, it moves. */
	u.expect = want;
	u.force = 1;
	if (gitremote_push(p.r, "origin", &u, 1, NULL, &e) != 0)
		fail_msg("push with lease: %s", e.msg);
	assert_int_equal(u.result, GITREMOTE_OK);
	rev_parse(got, p.srv, "refs/heads/rotor/rotate/poc/gen-0002");
	assert_string_equal(got, other);
	pair_free(&p);
}

/* A ref outside refs/heads (the lock's kind): created from a commit id, deleted only with the right lease. */
static void test_delete_with_lease(void **state)
{
	struct pair p;
	struct err e = ERR_INIT;
	struct gitremote_update u;
	char id[41], got[41];
	const char *wrong = "0123456789abcdef0123456789abcdef01234567";

	(void)state;
	pair_make(&p, 0);
	rev_parse(id, p.a, "HEAD");
	memset(&u, 0, sizeof(u));
	u.src = id;
	u.dst = "refs/rotor/lock/poc";
	u.expect = GITREMOTE_ABSENT;
	if (gitremote_push(p.r, "origin", &u, 1, NULL, &e) != 0)
		fail_msg("create: %s", e.msg);
	rev_parse(got, p.srv, "refs/rotor/lock/poc");
	assert_string_equal(got, id);
	/* The temporary local ref the commit id went out through is gone. */
	assert_int_not_equal(run_status("git -C '%s' for-each-ref refs/rotor/tmp | grep -q .", p.a), 0);

	u.src = NULL;
	u.expect = wrong;
	assert_int_equal(gitremote_push(p.r, "origin", &u, 1, NULL, &e), ROTOR_ESTATE);
	assert_int_equal(u.result, GITREMOTE_STALE);
	rev_parse(got, p.srv, "refs/rotor/lock/poc");
	assert_string_equal(got, id);

	u.expect = id;
	if (gitremote_push(p.r, "origin", &u, 1, NULL, &e) != 0)
		fail_msg("delete: %s", e.msg);
	assert_int_equal(u.result, GITREMOTE_OK);
	assert_int_not_equal(run_status("git -C '%s' rev-parse -q --verify refs/rotor/lock/poc", p.srv), 0);
	pair_free(&p);
}

/* A push that is not a fast-forward is refused (ESTATE, one line) and the server keeps its main. */
static void test_non_fast_forward(void **state)
{
	struct pair p;
	struct err e = ERR_INIT;
	struct gitremote_update u;
	char srv_before[41], got[41];

	(void)state;
	pair_make(&p, 1);
	run("cd '%s' && echo two > f && git commit -qam two && git push -q '%s' main", p.seed, p.srv);
	rev_parse(srv_before, p.srv, "main");
	run("cd '%s' && echo three > f && git commit -qam three", p.a);
	memset(&u, 0, sizeof(u));
	u.src = "refs/heads/main";
	u.dst = "refs/heads/main";
	assert_int_equal(gitremote_push(p.r, "origin", &u, 1, NULL, &e), ROTOR_ESTATE);
	assert_null(strchr(e.msg, '\n'));
	assert_contains(e.msg, "origin (file://");
	rev_parse(got, p.srv, "main");
	assert_string_equal(got, srv_before);
	pair_free(&p);
}

static void test_bad_updates(void **state)
{
	struct pair p;
	struct err e = ERR_INIT;
	struct gitremote_update u[2];

	(void)state;
	pair_make(&p, 1);
	memset(u, 0, sizeof(u));
	u[0].src = "refs/heads/main";
	u[0].dst = "main";
	assert_int_equal(gitremote_push(p.r, "origin", u, 1, NULL, &e), ROTOR_EINVALID);
	u[0].dst = "refs/heads/x";
	u[0].expect = "abc";
	assert_int_equal(gitremote_push(p.r, "origin", u, 1, NULL, &e), ROTOR_EINVALID);
	u[0].expect = NULL;
	u[0].src = "a:b";
	assert_int_equal(gitremote_push(p.r, "origin", u, 1, NULL, &e), ROTOR_EINVALID);
	u[0].src = "refs/heads/main";
	u[1] = u[0];
	assert_int_equal(gitremote_push(p.r, "origin", u, 2, NULL, &e), ROTOR_EINVALID);
	assert_contains(e.msg, "given twice");
	pair_free(&p);
}

static int group_setup(void **state)
{
	(void)state;
	return gitsandbox_setup(g_root, sizeof(g_root), "gitremote",
				"[user]\n\tname = rotor test\n\temail = test@rotor.invalid\n"
				"[init]\n\tdefaultBranch = main\n");
}

static int group_teardown(void **state)
{
	(void)state;
	return gitsandbox_teardown(g_root);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_url),
		cmocka_unit_test(test_fetch),
		cmocka_unit_test(test_fetch_unreachable),
		cmocka_unit_test(test_lookup),
		cmocka_unit_test(test_push_create_absent),
		cmocka_unit_test(test_delete_with_lease),
		cmocka_unit_test(test_non_fast_forward),
		cmocka_unit_test(test_bad_updates),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
