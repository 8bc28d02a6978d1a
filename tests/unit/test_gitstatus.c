/*
 * test_gitstatus.c -- the apply lock and the status history against real
 * repositories.
 *
 * Every repository is made with the git command line in a mkdtemp()
 * directory whose home/ is HOME (its .gitconfig sets the identity), and
 * the git command line is used to look at what gitstatus wrote.  The race
 * tests fork two processes that start together on a pipe and each open
 * their own repository handle.
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
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/err.h"
#include "common/timefmt.h"
#include "gitops/gitrepo.h"
#include "gitops/gitstatus.h"
#include "gitops/gitstatus_int.h"

static char g_root[256];
static int g_seq;

/* ---- helpers --------------------------------------------------------- */

/* Assert that a command prints exactly want. */
static void expect_output(const char *want, const char *fmt, ...) ROTOR_PRINTF(2, 3);
static void expect_output(const char *want, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	char cmd[4096];
	va_list ap;

	va_start(ap, fmt);
	vformat(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	capture(&b, "%s", cmd);
	assert_string_equal(buf_cstr(&b), want);
	buf_release(&b);
}

static int ref_exists(const char *repo, const char *ref)
{
	char cmd[1024];

	snprintf(cmd, sizeof(cmd), "git -C '%s' show-ref --verify -q '%s'", repo, ref);
	return system(cmd) == 0;
}

/*
 * A repository with one commit on main, plus local state the status code
 * must not touch: a staged change, a modified tracked file, an untracked
 * file.
 */
static void new_repo(char *out, size_t len)
{
	assert_true((size_t)snprintf(out, len, "%s/repo-%d", g_root, ++g_seq) < len);
	run("git init -q -b main '%s'", out);
	write_str(out, "rotor.yaml", "version: 1\n");
	write_str(out, "README", "state\n");
	run("git -C '%s' add -A && git -C '%s' commit -q -m initial", out, out);
	write_str(out, "rotor.yaml", "version: 2\n");
	run("git -C '%s' add rotor.yaml", out);
	write_str(out, "README", "edited, not staged\n");
	write_str(out, "untracked.txt", "new\n");
}

/* What must not change when status is recorded or locks move. */
struct local_state {
	char head_ref[256];
	char head[41];
	struct buf index;
	struct buf porcelain;
	struct buf readme;
};

static void local_state_take(struct local_state *s, const char *repo)
{
	memset(s, 0, sizeof(*s));
	capture_line(s->head_ref, sizeof(s->head_ref), "git -C '%s' symbolic-ref HEAD", repo);
	rev_parse(s->head, repo, "HEAD");
	read_local(&s->index, repo, ".git/index");
	capture(&s->porcelain, "git --no-optional-locks -C '%s' status --porcelain", repo);
	read_local(&s->readme, repo, "README");
}

static void local_state_same(struct local_state *before, const char *repo)
{
	struct local_state now;

	local_state_take(&now, repo);
	assert_string_equal(now.head_ref, before->head_ref);
	assert_string_equal(now.head, before->head);
	assert_int_equal(now.index.len, before->index.len);
	assert_memory_equal(now.index.ptr, before->index.ptr, now.index.len);
	assert_string_equal(buf_cstr(&now.porcelain), buf_cstr(&before->porcelain));
	assert_string_equal(buf_cstr(&now.readme), buf_cstr(&before->readme));
	buf_release(&now.index);
	buf_release(&now.porcelain);
	buf_release(&now.readme);
	buf_release(&before->index);
	buf_release(&before->porcelain);
	buf_release(&before->readme);
}

/*
 * Fork one runner of the race tests: the parent gets its pid; the child
 * (0) gets its own handle on repo in *cr, opened first (exit 9 when that
 * fails), then waits on the pipe gate until the parent closes it, so that
 * every runner starts at once.
 */
static pid_t fork_racer(int gate[2], const char *repo, struct gitrepo **cr)
{
	struct err e = ERR_INIT;
	pid_t pid = fork();
	char c;

	assert_true(pid >= 0);
	if (pid != 0)
		return pid;
	close(gate[1]);
	*cr = NULL;
	if (gitrepo_open(cr, repo, 0, &e) != 0)
		_exit(9);
	while (read(gate[0], &c, 1) > 0)
		;
	close(gate[0]);
	return 0;
}

/* ---- fixtures -------------------------------------------------------- */

static int group_setup(void **state)
{
	(void)state;
	return gitsandbox_setup(g_root, sizeof(g_root), "gitstatus",
				"[user]\n\tname = Status Tester\n\temail = status@example.com\n"
				"[init]\n\tdefaultBranch = main\n");
}

static int group_teardown(void **state)
{
	(void)state;
	return gitsandbox_teardown(g_root);
}

/* ---- env names ------------------------------------------------------- */

static void test_invalid_env_refused(void **state)
{
	static const char *const bad[] = {
		"", "Poc", "-poc", "_poc", "a/b", "../x", "poc.lock", "a b", "po\nc", "poc\x1b",
		"abcdefghijklmnopqrstuvwxyz0123456", "\xc3\xa9t\xc3\xa9",
	};
	struct gitrepo_file f = { "observed.json", "{}\n", 3 };
	struct gitstatus_lock_info info = { "rotor apply", NULL, NULL, 0, 0, 0 };
	struct gitstatus_entry *log = NULL;
	struct gitstatus_lock l;
	struct buf b = BUF_INIT;
	char repo[300], id[41];
	struct gitrepo *r;
	size_t i, n = 0;

	(void)state;
	new_repo(repo, sizeof(repo));
	r = open_ok(repo);
	for (i = 0; i <= sizeof(bad) / sizeof(bad[0]); i++) {
		const char *env = i < sizeof(bad) / sizeof(bad[0]) ? bad[i] : NULL;
		struct err e = ERR_INIT;

		assert_int_equal(gitstatus_lock(r, env, &info, id, &e), ROTOR_EINVALID);
		assert_contains(e.msg, "invalid environment name");
		assert_int_equal(gitstatus_unlock(r, env, NULL, &e), ROTOR_EINVALID);
		assert_int_equal(gitstatus_force_unlock(r, env, &l, &e), ROTOR_EINVALID);
		assert_int_equal(gitstatus_lock_read(r, env, &l, &e), ROTOR_EINVALID);
		assert_int_equal(gitstatus_record(r, env, &f, 1, "status", id, &e), ROTOR_EINVALID);
		assert_int_equal(gitstatus_tip(r, env, id, &e), ROTOR_EINVALID);
		assert_int_equal(gitstatus_log(r, env, 0, &log, &n, &e), ROTOR_EINVALID);
		assert_null(log);
		assert_int_equal(gitstatus_read_latest(r, env, "observed.json", 0, &b, &e), ROTOR_EINVALID);
		assert_null(b.ptr);
	}
	/* The longest valid name works. */
	{
		struct err e = ERR_INIT;

		assert_int_equal(gitstatus_lock(r, "abcdefghijklmnopqrstuvwxyz012345", &info, id, &e), 0);
		assert_int_equal(gitstatus_unlock(r, "abcdefghijklmnopqrstuvwxyz012345", id, &e), 0);
	}
	expect_output("", "git -C '%s' for-each-ref refs/rotor refs/heads/rotor", repo);
	gitrepo_free(r);
}

/* ---- lock ------------------------------------------------------------ */

static void test_lock_unlock_relock(void **state)
{
	struct gitstatus_lock_info info = {
		"rotor apply --env poc", "0123456789abcdef0123456789abcdef01234567", NULL, 0, 0, 0
	};
	struct local_state before;
	struct gitstatus_lock l;
	struct err e = ERR_INIT;
	struct buf json = BUF_INIT, show = BUF_INIT;
	char repo[300], id[41], id2[41], ref_id[41], pid[32];
	time_t t0 = time(NULL);
	long long since;
	struct gitrepo *r;

	(void)state;
	new_repo(repo, sizeof(repo));
	local_state_take(&before, repo);
	r = open_ok(repo);

	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), 0);
	rev_parse(ref_id, repo, "refs/rotor/lock/poc");
	assert_string_equal(ref_id, id);
	/* A root commit whose tree is lock.json alone. */
	expect_output("", "git -C '%s' rev-list --parents -n1 %s | cut -s -d' ' -f2", repo, id);
	expect_output("lock.json\n", "git -C '%s' ls-tree -r --name-only %s", repo, id);
	capture(&json, "git -C '%s' show refs/rotor/lock/poc:lock.json", repo);
	snprintf(pid, sizeof(pid), "\"pid\": %ld,", (long)getpid());
	assert_contains(buf_cstr(&json), pid);
	assert_contains(buf_cstr(&json), "\"command\": \"rotor apply --env poc\"");
	assert_contains(buf_cstr(&json), "\"desired\": \"0123456789abcdef0123456789abcdef01234567\"");
	assert_contains(buf_cstr(&json), "\"env\": \"poc\"");
	assert_contains(buf_cstr(&json), "\"nonce\": \"");
	/* git show explains who holds it. */
	capture(&show, "git -C '%s' show refs/rotor/lock/poc", repo);
	assert_contains(buf_cstr(&show), "rotor lock poc: ");
	assert_contains(buf_cstr(&show), "running `rotor apply --env poc`");

	assert_int_equal(gitstatus_lock_read(r, "poc", &l, &e), 0);
	assert_string_equal(l.id, id);
	assert_int_equal(l.parsed, 1);
	assert_int_equal(l.pid, (long long)getpid());
	assert_non_null(strchr(l.holder, '@'));
	assert_string_equal(l.command, "rotor apply --env poc");
	assert_string_equal(l.desired, "0123456789abcdef0123456789abcdef01234567");
	since = rfc3339_parse(l.time);
	assert_true(since >= (long long)t0 - 1 && since <= (long long)time(NULL) + 1);
	assert_string_equal(l.problem, "");

	/* Our own second lock is refused like anyone's. */
	assert_int_equal(gitstatus_lock(r, "poc", &info, id2, &e), ROTOR_ESTATE);
	assert_string_equal(id2, "");
	rev_parse(ref_id, repo, "refs/rotor/lock/poc");
	assert_string_equal(ref_id, id);

	/* Another env is independent. */
	assert_int_equal(gitstatus_lock(r, "prod", &info, NULL, &e), 0);
	assert_int_equal(gitstatus_unlock(r, "prod", NULL, &e), 0);

	assert_int_equal(gitstatus_unlock(r, "poc", id, &e), 0);
	assert_false(ref_exists(repo, "refs/rotor/lock/poc"));
	assert_int_equal(gitstatus_lock_read(r, "poc", &l, &e), ROTOR_ENOTFOUND);
	assert_int_equal(gitstatus_unlock(r, "poc", id, &e), ROTOR_ENOTFOUND);
	assert_string_equal(e.msg, "env poc is not locked");

	/* Relock at once: a new, distinct lock (the nonce), released with NULL. */
	assert_int_equal(gitstatus_lock(r, "poc", &info, id2, &e), 0);
	assert_string_not_equal(id2, id);
	assert_int_equal(gitstatus_unlock(r, "poc", id, &e), ROTOR_ESTATE);
	assert_true(ref_exists(repo, "refs/rotor/lock/poc"));
	assert_int_equal(gitstatus_unlock(r, "poc", NULL, &e), 0);
	assert_false(ref_exists(repo, "refs/rotor/lock/poc"));

	local_state_same(&before, repo);
	buf_release(&json);
	buf_release(&show);
	gitrepo_free(r);
}

static void test_lock_refused_names_holder(void **state)
{
	struct gitstatus_lock_info alice = { "rotor apply", NULL, "alice@host1", 4242, 0, 0 };
	struct gitstatus_lock_info bob = { "rotor apply --env poc", NULL, "bob@host2", 777, 0, 0 };
	struct gitstatus_lock l;
	struct err e = ERR_INIT;
	char repo[300], id[41], now[41], desc[512];
	struct gitrepo *r;

	(void)state;
	alice.time = rfc3339_parse("2026-11-23T12:00:00Z");
	assert_true(alice.time > 0);
	new_repo(repo, sizeof(repo));
	r = open_ok(repo);
	assert_int_equal(gitstatus_lock(r, "poc", &alice, id, &e), 0);
	assert_int_equal(gitstatus_lock(r, "poc", &bob, NULL, &e), ROTOR_ESTATE);
	assert_int_equal(e.code, ROTOR_ESTATE);
	assert_string_equal(e.msg, "env poc is locked by alice@host1 (pid 4242) since "
			    "2026-11-23T12:00:00Z, running `rotor apply`; wait, or use --force-unlock "
			    "if that run is dead");
	rev_parse(now, repo, "refs/rotor/lock/poc");
	assert_string_equal(now, id);

	assert_int_equal(gitstatus_lock_read(r, "poc", &l, &e), 0);
	assert_string_equal(gitstatus_lock_describe(desc, sizeof(desc), &l),
			    "alice@host1 (pid 4242) since 2026-11-23T12:00:00Z, running `rotor apply`");
	/* A short buffer is cut, never overrun. */
	assert_string_equal(gitstatus_lock_describe(desc, 6, &l), "alice");
	gitrepo_free(r);
}

static void test_lock_invalid_info(void **state)
{
	struct gitstatus_lock_info info;
	struct err e = ERR_INIT;
	char repo[300], id[41], big[600];
	struct gitrepo *r;

	(void)state;
	new_repo(repo, sizeof(repo));
	r = open_ok(repo);
	assert_int_equal(gitstatus_lock(r, "poc", NULL, id, &e), ROTOR_EINVALID);
	memset(&info, 0, sizeof(info));
	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), ROTOR_EINVALID);
	info.command = "";
	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), ROTOR_EINVALID);
	info.command = "rotor apply";
	info.desired = "HEAD";
	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), ROTOR_EINVALID);
	assert_contains(e.msg, "desired commit");
	info.desired = NULL;
	info.holder = "";
	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), ROTOR_EINVALID);
	memset(big, 'h', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	info.holder = big;
	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), ROTOR_EINVALID);
	info.holder = NULL;
	info.command = big;
	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), ROTOR_EINVALID);
	info.command = "rotor apply";
	info.pid = -1;
	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), ROTOR_EINVALID);
	assert_false(ref_exists(repo, "refs/rotor/lock/poc"));
	gitrepo_free(r);
}

static void test_unlock_retaken_refused(void **state)
{
	struct gitstatus_lock_info mine = { "rotor apply", NULL, NULL, 0, 0, 0 };
	struct gitstatus_lock_info other = { "rotor apply", NULL, "carol@host3", 31337, 0, 0 };
	struct gitstatus_lock was;
	struct err e = ERR_INIT;
	char repo[300], id1[41], id2[41], now[41];
	struct gitrepo *r;

	(void)state;
	new_repo(repo, sizeof(repo));
	r = open_ok(repo);
	assert_int_equal(gitstatus_lock(r, "poc", &mine, id1, &e), 0);
	/* Our run looks dead to someone, who force-unlocks and takes the lock. */
	assert_int_equal(gitstatus_force_unlock(r, "poc", &was, &e), 0);
	assert_string_equal(was.id, id1);
	assert_int_equal(gitstatus_lock(r, "poc", &other, id2, &e), 0);

	/* Our late unlock, by id or by "this process", leaves their lock alone. */
	assert_int_equal(gitstatus_unlock(r, "poc", id1, &e), ROTOR_ESTATE);
	assert_contains(e.msg, "not unlocking env poc: it is locked by carol@host3 (pid 31337)");
	assert_int_equal(gitstatus_unlock(r, "poc", NULL, &e), ROTOR_ESTATE);
	assert_contains(e.msg, "carol@host3 (pid 31337)");
	assert_contains(e.msg, "not by this process");
	rev_parse(now, repo, "refs/rotor/lock/poc");
	assert_string_equal(now, id2);

	/* A malformed id is refused before anything is read. */
	assert_int_equal(gitstatus_unlock(r, "poc", "12345", &e), ROTOR_EINVALID);

	/* The holder's own id works. */
	assert_int_equal(gitstatus_unlock(r, "poc", id2, &e), 0);
	assert_false(ref_exists(repo, "refs/rotor/lock/poc"));
	gitrepo_free(r);
}

static void test_force_unlock(void **state)
{
	struct gitstatus_lock_info alice = { "rotor apply", NULL, "alice@host1", 4242, 1700000000, 0 };
	struct gitstatus_lock was;
	struct err e = ERR_INIT;
	char repo[300], id[41];
	struct gitrepo *r;

	(void)state;
	new_repo(repo, sizeof(repo));
	r = open_ok(repo);
	assert_int_equal(gitstatus_force_unlock(r, "poc", &was, &e), ROTOR_ENOTFOUND);
	assert_int_equal(gitstatus_lock(r, "poc", &alice, id, &e), 0);
	assert_int_equal(gitstatus_force_unlock(r, "poc", &was, &e), 0);
	assert_string_equal(was.id, id);
	assert_int_equal(was.parsed, 1);
	assert_string_equal(was.holder, "alice@host1");
	assert_int_equal(was.pid, 4242);
	assert_string_equal(was.time, "2023-11-14T22:13:20Z");
	assert_false(ref_exists(repo, "refs/rotor/lock/poc"));
	assert_int_equal(gitstatus_force_unlock(r, "poc", NULL, &e), ROTOR_ENOTFOUND);
	/* Free again: anyone can lock. */
	assert_int_equal(gitstatus_lock(r, "poc", &alice, NULL, &e), 0);
	assert_int_equal(gitstatus_force_unlock(r, "poc", NULL, &e), 0);
	gitrepo_free(r);
}

/* A lock with until: written, read back (ref and commit), described; a bad until is not a lock we understand. */
static void test_lock_until(void **state)
{
	struct gitstatus_lock_info info = { "rotor apply", NULL, "alice@host1", 4242, 1700000000, 1700001800 };
	struct gitstatus_lock l, at;
	struct err e = ERR_INIT;
	char repo[300], id[41], desc[600];
	struct gitrepo *r;
	static const char *bad[] = {
		"{\"holder\":\"a\",\"pid\":1,\"time\":\"t\",\"command\":\"c\",\"until\":\"tomorrow\"}",
		"{\"holder\":\"a\",\"pid\":1,\"time\":\"t\",\"command\":\"c\",\"until\":17}",
		"{\"holder\":\"a\",\"pid\":1,\"time\":\"t\",\"command\":\"c\",\"until\":\"2026-11-23T12:00:00Z-and-more\"}",
	};
	size_t i;

	(void)state;
	new_repo(repo, sizeof(repo));
	r = open_ok(repo);
	/* The commit alone moves no ref. */
	assert_int_equal(gitstatus_lock_commit(r, "poc", &info, id, &e), 0);
	assert_false(ref_exists(repo, "refs/rotor/lock/poc"));
	assert_int_equal(gitstatus_lock_at(r, id, &at, &e), 0);
	assert_int_equal(at.parsed, 1);
	assert_string_equal(at.id, id);
	assert_string_equal(at.until, "2023-11-14T22:43:20Z");
	assert_true(at.until_epoch == 1700001800);
	assert_int_equal(gitstatus_lock_at(r, "not-a-commit", &at, &e), ROTOR_EINVALID);
	err_clear(&e);
	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), 0);
	assert_int_equal(gitstatus_lock_read(r, "poc", &l, &e), 0);
	assert_string_equal(l.until, "2023-11-14T22:43:20Z");
	assert_string_equal(gitstatus_lock_describe(desc, sizeof(desc), &l),
			    "alice@host1 (pid 4242) since 2023-11-14T22:13:20Z, until 2023-11-14T22:43:20Z, running `rotor apply`");
	info.until = -5;
	assert_int_equal(gitstatus_lock_commit(r, "poc", &info, id, &e), ROTOR_EINVALID);
	err_clear(&e);
	/* Without until (an older rotor's lock): parsed, no until. */
	memset(&l, 0, sizeof(l));
	gitstatus__lock_parse(&l, "{\"holder\":\"a\",\"pid\":1,\"time\":\"t\",\"command\":\"c\",\"until\":null}", 60);
	assert_int_equal(l.parsed, 1);
	assert_string_equal(l.until, "");
	assert_true(l.until_epoch == 0);
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		memset(&l, 0, sizeof(l));
		gitstatus__lock_parse(&l, bad[i], strlen(bad[i]));
		assert_int_equal(l.parsed, 0);
		assert_string_equal(l.problem, "lock.json: \"until\" is not an RFC 3339 time");
		assert_string_equal(l.until, "");
	}
	gitrepo_free(r);
}

/* A lock ref made by hand, or with a lock.json we did not write. */
static void test_lock_unreadable(void **state)
{
	struct gitstatus_lock_info info = { "rotor apply", NULL, NULL, 0, 0, 0 };
	struct gitstatus_lock l;
	struct err e = ERR_INIT;
	char repo[300], head[41], odd[41];
	struct gitrepo *r;

	(void)state;
	new_repo(repo, sizeof(repo));
	rev_parse(head, repo, "HEAD");
	run("git -C '%s' update-ref refs/rotor/lock/poc HEAD", repo);
	r = open_ok(repo);
	assert_int_equal(gitstatus_lock(r, "poc", &info, NULL, &e), ROTOR_ESTATE);
	assert_contains(e.msg, "env poc is locked by an unreadable lock (commit ");
	assert_contains(e.msg, "lock.json: not found");
	assert_int_equal(gitstatus_lock_read(r, "poc", &l, &e), 0);
	assert_int_equal(l.parsed, 0);
	assert_string_equal(l.id, head);
	assert_int_equal(gitstatus_unlock(r, "poc", NULL, &e), ROTOR_ESTATE);
	assert_int_equal(gitstatus_force_unlock(r, "poc", NULL, &e), 0);
	assert_false(ref_exists(repo, "refs/rotor/lock/poc"));

	/* Escapes and control characters in lock.json come back harmless. */
	write_str(repo, "lock.json",
		  "{\"holder\": \"eve\\u001b[31m@x\\\"y\", \"pid\": 7, \"time\": \"2026-01-01T00:00:00Z\",\n"
		  " \"command\": \"a\\nb\\u00e9\", \"desired\": null, \"extra\": [1]}");
	capture_line(odd, sizeof(odd), "cd '%s' && t=$(git hash-object -w lock.json | "
		     "sed 's/^/100644 blob /; s/$/\tlock.json/' | git mktree) && "
		     "git commit-tree -m odd $t", repo);
	run("git -C '%s' update-ref refs/rotor/lock/poc %s", repo, odd);
	assert_int_equal(gitstatus_lock_read(r, "poc", &l, &e), 0);
	assert_int_equal(l.parsed, 0);     /* nested values are not ours */
	assert_contains(l.problem, "lock.json: unexpected value");
	run("cd '%s' && sed -i 's/, \"extra\": \\[1\\]//' lock.json && "
	    "t=$(git hash-object -w lock.json | sed 's/^/100644 blob /; s/$/\tlock.json/' | git mktree) && "
	    "git update-ref refs/rotor/lock/poc $(git commit-tree -m odd $t)", repo);
	assert_int_equal(gitstatus_lock_read(r, "poc", &l, &e), 0);
	assert_int_equal(l.parsed, 1);
	assert_string_equal(l.holder, "eve?[31m@x\"y");
	assert_string_equal(l.command, "a?b?");
	assert_int_equal(l.pid, 7);
	assert_string_equal(l.desired, "");
	assert_int_equal(gitstatus_force_unlock(r, "poc", NULL, &e), 0);

	/* A ref below the lock's name: an error, not "locked", and no retry loop. */
	run("git -C '%s' update-ref refs/rotor/lock/poc/x HEAD", repo);
	assert_int_equal(gitstatus_lock(r, "poc", &info, NULL, &e), ROTOR_ERROR);
	assert_contains(e.msg, "cannot lock env poc (refs/rotor/lock/poc)");
	assert_int_equal(gitstatus_lock_read(r, "poc", &l, &e), ROTOR_ENOTFOUND);
	gitrepo_free(r);
}

/* Unlock works the same when git has packed the lock ref. */
static void test_lock_packed(void **state)
{
	struct gitstatus_lock_info info = { "rotor apply", NULL, NULL, 0, 0, 0 };
	struct err e = ERR_INIT;
	char repo[300], id[41], path[400];
	struct gitrepo *r;
	struct stat st;

	(void)state;
	new_repo(repo, sizeof(repo));
	r = open_ok(repo);
	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), 0);
	run("git -C '%s' pack-refs --all", repo);
	snprintf(path, sizeof(path), "%s/.git/refs/rotor/lock/poc", repo);
	assert_int_equal(stat(path, &st), -1);
	assert_int_equal(gitstatus_lock(r, "poc", &info, NULL, &e), ROTOR_ESTATE);
	assert_int_equal(gitstatus_unlock(r, "poc", NULL, &e), 0);
	assert_false(ref_exists(repo, "refs/rotor/lock/poc"));
	expect_output("", "git -C '%s' for-each-ref refs/rotor", repo);
	assert_int_equal(gitstatus_lock(r, "poc", &info, id, &e), 0);
	assert_int_equal(gitstatus_unlock(r, "poc", id, &e), 0);
	gitrepo_free(r);
}

#define LOCK_ROUNDS 20

static void test_lock_race(void **state)
{
	char repo[300], path[400];
	int round, k;

	(void)state;
	new_repo(repo, sizeof(repo));
	for (round = 0; round < LOCK_ROUNDS; round++) {
		pid_t pid[2];
		int gate[2], wins = 0, losses = 0, winner = -1, st;
		struct gitstatus_lock l;
		struct err e = ERR_INIT;
		struct gitrepo *r, *cr;
		struct buf msg = BUF_INIT;
		char want[64];

		assert_int_equal(pipe(gate), 0);
		for (k = 0; k < 2; k++) {
			pid[k] = fork_racer(gate, repo, &cr);
			if (pid[k] == 0) {
				struct gitstatus_lock_info info = { "rotor apply --env poc", NULL, NULL, 0, 0, 0 };
				struct err ce = ERR_INIT;
				int rc;
				FILE *f;
				rc = gitstatus_lock(cr, "poc", &info, NULL, &ce);
				gitrepo_free(cr);
				snprintf(path, sizeof(path), "%s/race-msg-%d", repo, k);
				if ((f = fopen(path, "w")) != NULL) {
					fputs(ce.msg, f);
					fclose(f);
				}
				_exit(rc == 0 ? 0 : rc == ROTOR_ESTATE ? 3 : 8);
			}
		}
		close(gate[0]);
		close(gate[1]);     /* both start now */
		for (k = 0; k < 2; k++) {
			assert_int_equal(waitpid(pid[k], &st, 0), pid[k]);
			assert_true(WIFEXITED(st));
			if (WEXITSTATUS(st) == 0) {
				wins++;
				winner = k;
			} else if (WEXITSTATUS(st) == 3) {
				losses++;
			} else {
				fail_msg("round %d: child exited %d", round, WEXITSTATUS(st));
			}
		}
		assert_int_equal(wins, 1);
		assert_int_equal(losses, 1);

		/* The lock is the winner's, and the loser was told so. */
		r = open_ok(repo);
		assert_int_equal(gitstatus_lock_read(r, "poc", &l, &e), 0);
		assert_int_equal(l.pid, (long long)pid[winner]);
		snprintf(path, sizeof(path), "race-msg-%d", 1 - winner);
		read_local(&msg, repo, path);
		snprintf(want, sizeof(want), "(pid %ld)", (long)pid[winner]);
		assert_contains(buf_cstr(&msg), "env poc is locked by ");
		assert_contains(buf_cstr(&msg), want);
		buf_release(&msg);
		assert_int_equal(gitstatus_force_unlock(r, "poc", NULL, &e), 0);
		gitrepo_free(r);
		run("rm -f '%s'/race-msg-*", repo);
	}
}

/*
 * Two runs lock and unlock over and over while a third force-unlocks
 * whatever it finds.  Every lock must be removed exactly once: by its
 * holder's unlock or by a force-unlock, never both, and never by the
 * unlock of another lock (which a delete without compare-and-swap does
 * when a lock is force-unlocked and re-taken between look-up and delete).
 */
#define STRESS_LOCKS 150

static void stress_log(const char *repo, int k, const char *kind, const char *id, int rc)
{
	char path[400];
	FILE *f;

	snprintf(path, sizeof(path), "%s/stress-%d.log", repo, k);
	if ((f = fopen(path, "a")) != NULL) {
		fprintf(f, "%s %s %d\n", kind, id, rc);
		fclose(f);
	}
}

static void test_unlock_cas_stress(void **state)
{
	struct buf logs = BUF_INIT;
	char repo[300], stop[400];
	struct gitrepo *cr;
	pid_t pid[3];
	int gate[2], k, st;
	const char *line;
	size_t locks = 0, forced = 0;

	(void)state;
	new_repo(repo, sizeof(repo));
	snprintf(stop, sizeof(stop), "%s/stress-stop", repo);
	assert_int_equal(pipe(gate), 0);
	for (k = 0; k < 3; k++) {
		pid[k] = fork_racer(gate, repo, &cr);
		if (pid[k] == 0) {
			struct gitstatus_lock_info info = { "stress", NULL, NULL, 0, 0, 0 };
			struct err ce = ERR_INIT;
			struct gitstatus_lock was;
			char id[41];
			int i, rc;
			if (k == 2) {
				while (access(stop, F_OK) != 0) {
					if (gitstatus_force_unlock(cr, "poc", &was, &ce) == 0)
						stress_log(repo, k, "F", was.id, 0);
				}
			} else {
				for (i = 0; i < STRESS_LOCKS; i++) {
					if (gitstatus_lock(cr, "poc", &info, id, &ce) != 0)
						continue;
					stress_log(repo, k, "L", id, 0);
					rc = gitstatus_unlock(cr, "poc", i % 2 ? id : NULL, &ce);
					stress_log(repo, k, "U", id, rc);
				}
			}
			gitrepo_free(cr);
			_exit(0);
		}
	}
	close(gate[0]);
	close(gate[1]);
	for (k = 0; k < 2; k++) {
		assert_int_equal(waitpid(pid[k], &st, 0), pid[k]);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	}
	write_str(repo, "stress-stop", "");
	assert_int_equal(waitpid(pid[2], &st, 0), pid[2]);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
	/* A lock left at the end counts as force-removed. */
	run("cd '%s' && if git show-ref -q --verify refs/rotor/lock/poc; then "
	    "echo \"F $(git rev-parse refs/rotor/lock/poc) 0\" >> stress-2.log; fi; "
	    "touch stress-0.log stress-1.log stress-2.log", repo);

	/* Per lock id: removals by its holder's unlock (rc 0) plus by force. */
	capture(&logs, "cd '%s' && cat stress-*.log | awk '"
		"$1 == \"L\" { made[$2]++ } "
		"$1 == \"U\" && $3 == 0 { gone[$2]++ } "
		"$1 == \"F\" { gone[$2]++; forced++ } "
		"END { for (id in made) if (gone[id] != 1) print \"lock \" id \" removed \" gone[id]+0 \" times\"; "
		"for (id in gone) if (!(id in made)) print \"unknown \" id; "
		"print \"locks\", length(made), \"forced\", forced+0 }'", repo);
	for (line = buf_cstr(&logs); *line; line = strchr(line, '\n') + 1) {
		if (strncmp(line, "locks ", 6) == 0) {
			assert_int_equal(sscanf(line, "locks %zu forced %zu", &locks, &forced), 2);
			break;
		}
		fail_msg("%.*s", (int)strcspn(line, "\n"), line);
	}
	/* The race was real: many locks, and some of them force-removed. */
	assert_true(locks >= 50);
	assert_true(forced >= 1);
	buf_release(&logs);
}

/* ---- status history -------------------------------------------------- */

static void test_record_first_and_next(void **state)
{
	const char bin[] = "a\0b\377c";
	struct gitrepo_file first[] = {
		{ "observed.json", "{\"hosts\": 2}\n", 13 },
		{ "applied.json", "[]\n", 3 },
		{ "hosts/db1.bin", bin, sizeof(bin) - 1 },
	};
	struct gitrepo_file second[] = {
		{ "applied.json", "[\"db1\"]\n", 8 },
	};
	struct local_state before;
	struct err e = ERR_INIT;
	struct buf b = BUF_INIT;
	char repo[300], c1[41], c2[41], tip[41], line[200];
	struct gitrepo *r;

	(void)state;
	new_repo(repo, sizeof(repo));
	local_state_take(&before, repo);
	r = open_ok(repo);

	assert_int_equal(gitstatus_record(r, "poc", first, 3, "apply poc: 2 hosts\n\nWho: alice", c1, &e), 0);
	rev_parse(tip, repo, "refs/heads/rotor/status/poc");
	assert_string_equal(tip, c1);
	/* No parent; exactly the files given, bytes intact. */
	capture_line(line, sizeof(line), "git -C '%s' rev-list --parents -n1 %s", repo, c1);
	assert_string_equal(line, c1);
	expect_output("applied.json\nhosts/db1.bin\nobserved.json\n",
		      "git -C '%s' ls-tree -r --name-only %s", repo, c1);
	expect_output("{\"hosts\": 2}\n", "git -C '%s' show %s:observed.json", repo, c1);
	capture(&b, "git -C '%s' cat-file blob %s:hosts/db1.bin", repo, c1);
	assert_int_equal(b.len, sizeof(bin) - 1);
	assert_memory_equal(b.ptr, bin, b.len);
	buf_release(&b);
	expect_output("apply poc: 2 hosts\n\nWho: alice\n", "git -C '%s' log -1 --format=%%B %s | head -c -1",
		      repo, c1);
	expect_output("Status Tester <status@example.com>\n", "git -C '%s' log -1 --format='%%an <%%ae>' %s",
		      repo, c1);

	/* The next one: parent is the tip, the tree is replaced, not merged. */
	assert_int_equal(gitstatus_record(r, "poc", second, 1, "apply poc: db1", c2, &e), 0);
	rev_parse(tip, repo, "rotor/status/poc");
	assert_string_equal(tip, c2);
	capture_line(line, sizeof(line), "git -C '%s' rev-list --parents -n1 %s", repo, c2);
	assert_true(strlen(line) == 81 && strncmp(line, c2, 40) == 0 && strcmp(line + 41, c1) == 0);
	expect_output("applied.json\n", "git -C '%s' ls-tree -r --name-only %s", repo, c2);
	expect_output("[\"db1\"]\n", "git -C '%s' show %s:applied.json", repo, c2);
	expect_output("2\n", "git -C '%s' rev-list --count rotor/status/poc", repo);

	/* Other envs have their own branch. */
	assert_int_equal(gitstatus_record(r, "prod", second, 1, "apply prod", tip, &e), 0);
	expect_output("2\n", "git -C '%s' rev-list --count rotor/status/poc", repo);
	expect_output("1\n", "git -C '%s' rev-list --count rotor/status/prod", repo);

	assert_int_equal(gitstatus_tip(r, "poc", tip, &e), 0);
	assert_string_equal(tip, c2);
	assert_int_equal(gitstatus_read_latest(r, "poc", "applied.json", 0, &b, &e), 0);
	assert_string_equal(buf_cstr(&b), "[\"db1\"]\n");
	buf_release(&b);
	assert_int_equal(gitstatus_read_latest(r, "poc", "observed.json", 0, &b, &e), ROTOR_ENOTFOUND);
	assert_int_equal(gitstatus_read_latest(r, "poc", "applied.json", 4, &b, &e), ROTOR_ETOOBIG);
	assert_null(b.ptr);

	/* HEAD, the index and the work tree are as they were. */
	local_state_same(&before, repo);
	gitrepo_free(r);
}

static void test_record_refused(void **state)
{
	struct gitrepo_file ok = { "observed.json", "{}\n", 3 };
	struct gitrepo_file nodata = { "observed.json", NULL, 0 };
	struct gitrepo_file twice[] = { { "a.json", "1", 1 }, { "a.json", "2", 1 } };
	struct gitrepo_file nested[] = { { "a", "1", 1 }, { "a/b", "2", 1 } };
	struct gitrepo_file badpath = { "../x", "1", 1 };
	struct gitrepo_file gitpath = { ".git/config", "1", 1 };
	struct err e = ERR_INIT;
	char repo[300], id[41];
	struct gitrepo *r;

	(void)state;
	new_repo(repo, sizeof(repo));
	r = open_ok(repo);
	assert_int_equal(gitstatus_record(r, "poc", &ok, 0, "m", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitstatus_record(r, "poc", &nodata, 1, "m", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitstatus_record(r, "poc", twice, 2, "m", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitstatus_record(r, "poc", nested, 2, "m", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitstatus_record(r, "poc", &badpath, 1, "m", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitstatus_record(r, "poc", &gitpath, 1, "m", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitstatus_record(r, "poc", &ok, 1, "", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitstatus_record(r, "poc", &ok, 1, " \n\t", id, &e), ROTOR_EINVALID);
	assert_int_equal(gitstatus_record(r, "poc", &ok, 1, NULL, id, &e), ROTOR_EINVALID);
	assert_string_equal(id, "");
	assert_false(ref_exists(repo, "refs/heads/rotor/status/poc"));

	/* HEAD on the status branch (here unborn): moving it would move HEAD. */
	run("git -C '%s' symbolic-ref HEAD refs/heads/rotor/status/qa", repo);
	assert_int_equal(gitstatus_record(r, "qa", &ok, 1, "m", id, &e), ROTOR_ESTATE);
	assert_contains(e.msg, "HEAD is on branch rotor/status/qa");
	assert_false(ref_exists(repo, "refs/heads/rotor/status/qa"));
	run("git -C '%s' symbolic-ref HEAD refs/heads/main", repo);
	gitrepo_free(r);
}

#define RECORDS_EACH 15

static void test_record_concurrent(void **state)
{
	struct buf subjects = BUF_INIT, want = BUF_INIT;
	char repo[300];
	struct gitrepo *cr;
	pid_t pid[2];
	int gate[2], k, i, st;

	(void)state;
	new_repo(repo, sizeof(repo));
	assert_int_equal(pipe(gate), 0);
	for (k = 0; k < 2; k++) {
		pid[k] = fork_racer(gate, repo, &cr);
		if (pid[k] == 0) {
			struct err ce = ERR_INIT;
			int bad = 0;
			for (i = 0; i < RECORDS_EACH && !bad; i++) {
				char data[64], msg[64], id[41];
				struct gitrepo_file f = { "observed.json", data, 0 };

				snprintf(data, sizeof(data), "{\"writer\": %d, \"n\": %d}\n", k, i);
				f.len = strlen(data);
				snprintf(msg, sizeof(msg), "writer %d record %02d", k, i);
				if (gitstatus_record(cr, "poc", &f, 1, msg, id, &ce) != 0) {
					fprintf(stderr, "writer %d: %s\n", k, ce.msg);
					bad = 1;
				}
			}
			gitrepo_free(cr);
			_exit(bad ? 8 : 0);
		}
	}
	close(gate[0]);
	close(gate[1]);
	for (k = 0; k < 2; k++) {
		assert_int_equal(waitpid(pid[k], &st, 0), pid[k]);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	/* Every record landed, on one line of history with one root. */
	expect_output("30\n", "git -C '%s' rev-list --count rotor/status/poc", repo);
	expect_output("0\n", "git -C '%s' rev-list --count --min-parents=2 rotor/status/poc", repo);
	expect_output("1\n", "git -C '%s' rev-list --count --max-parents=0 rotor/status/poc", repo);
	/* Each writer's records in its own order. */
	for (k = 0; k < 2; k++) {
		buf_release(&subjects);
		buf_release(&want);
		capture(&subjects, "git -C '%s' log --reverse --format=%%s rotor/status/poc | grep '^writer %d '",
			repo, k);
		for (i = 0; i < RECORDS_EACH; i++)
			assert_int_equal(buf_printf(&want, "writer %d record %02d\n", k, i), 0);
		assert_string_equal(buf_cstr(&subjects), buf_cstr(&want));
	}
	buf_release(&subjects);
	buf_release(&want);
}

/* ---- history --------------------------------------------------------- */

static void test_log(void **state)
{
	struct gitrepo_file f = { "observed.json", "{}\n", 3 };
	struct gitstatus_entry *v = NULL;
	struct err e = ERR_INIT;
	char repo[300], id[3][41];
	time_t t0 = time(NULL);
	struct gitrepo *r;
	size_t n = 99;
	int i;

	(void)state;
	new_repo(repo, sizeof(repo));
	r = open_ok(repo);
	assert_int_equal(gitstatus_log(r, "poc", 0, &v, &n, &e), ROTOR_ENOTFOUND);
	assert_null(v);
	assert_int_equal(n, 0);
	assert_contains(e.msg, "no status recorded for env poc");
	assert_int_equal(gitstatus_tip(r, "poc", id[0], &e), ROTOR_ENOTFOUND);

	assert_int_equal(gitstatus_record(r, "poc", &f, 1, "apply poc: first", id[0], &e), 0);
	assert_int_equal(gitstatus_record(r, "poc", &f, 1,
					  "apply poc: second\n\nRolled db1 to generation 2.\n\n"
					  "Rotor-Who: alice@host1\nRotor-Why: rotation\n", id[1], &e), 0);
	assert_int_equal(gitstatus_record(r, "poc", &f, 1,
					  "apply poc:\nthird, wrapped\n\nbody \x1b[31mred\ttab\n", id[2], &e), 0);

	assert_int_equal(gitstatus_log(r, "poc", 0, &v, &n, &e), 0);
	assert_int_equal(n, 3);
	for (i = 0; i < 3; i++) {
		assert_string_equal(v[i].id, id[2 - i]);
		assert_string_equal(v[i].author_name, "Status Tester");
		assert_string_equal(v[i].author_email, "status@example.com");
		assert_true(v[i].time >= (long long)t0 - 1 && v[i].time <= (long long)time(NULL) + 1);
	}
	assert_string_equal(v[0].subject, "apply poc: third, wrapped");
	assert_string_equal(v[0].body, "body ?[31mred\ttab");
	assert_string_equal(v[1].subject, "apply poc: second");
	assert_string_equal(v[1].body, "Rolled db1 to generation 2.\n\n"
			    "Rotor-Who: alice@host1\nRotor-Why: rotation");
	assert_string_equal(v[2].subject, "apply poc: first");
	assert_string_equal(v[2].body, "");
	gitstatus_entries_free(v, n);

	/* max cuts from the newest. */
	assert_int_equal(gitstatus_log(r, "poc", 2, &v, &n, &e), 0);
	assert_int_equal(n, 2);
	assert_string_equal(v[0].id, id[2]);
	assert_string_equal(v[1].id, id[1]);
	gitstatus_entries_free(v, n);
	gitstatus_entries_free(NULL, 0);

	/* Only the first-parent chain of the status branch. */
	run("cd '%s' && git update-ref refs/heads/rotor/status/poc "
	    "$(git commit-tree -p %s -p main -m 'a merge' %s^{tree})", repo, id[2], id[2]);
	assert_int_equal(gitstatus_log(r, "poc", 0, &v, &n, &e), 0);
	assert_int_equal(n, 4);
	assert_string_equal(v[0].subject, "a merge");
	assert_string_equal(v[1].id, id[2]);
	assert_string_equal(v[3].id, id[0]);
	gitstatus_entries_free(v, n);
	gitrepo_free(r);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_invalid_env_refused),
		cmocka_unit_test(test_lock_unlock_relock),
		cmocka_unit_test(test_lock_refused_names_holder),
		cmocka_unit_test(test_lock_invalid_info),
		cmocka_unit_test(test_unlock_retaken_refused),
		cmocka_unit_test(test_force_unlock),
		cmocka_unit_test(test_lock_until),
		cmocka_unit_test(test_lock_unreadable),
		cmocka_unit_test(test_lock_packed),
		cmocka_unit_test(test_lock_race),
		cmocka_unit_test(test_unlock_cas_stress),
		cmocka_unit_test(test_record_first_and_next),
		cmocka_unit_test(test_record_refused),
		cmocka_unit_test(test_record_concurrent),
		cmocka_unit_test(test_log),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
