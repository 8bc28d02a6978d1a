/*
 * test_savedplan.c -- the saved plan file (reconcile/engine/savedplan.h):
 * written atomically with mode 0600 and read back field by field; the
 * document the writer makes is valid under schemas/saved-plan.json
 * (checked with Python's jsonschema); malformed and hostile files are one
 * line "FILE: what is wrong"; a plan made at another commit is stale.
 * What a saved plan records of real hosts, and apply's refusals, are in
 * tests/e2e/pipeline.sh.
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
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "reconcile/engine/savedplan.h"
#include "tests/unit/helpers.h"

#ifndef ROTOR_SRCDIR
#define ROTOR_SRCDIR "."
#endif

static char dir[] = "/tmp/rotor-savedplan-XXXXXX";

/* The fuzz seed of a good plan (tests/fuzz/regressions/savedplan/plan). */
static void seed(struct buf *b)
{
	struct err e = ERR_INIT;

	assert_int_equal(buf_read_file(b, ROTOR_SRCDIR "/tests/fuzz/regressions/savedplan/plan", 1 << 20, &e), 0);
}

static void test_write_read(void **state)
{
	struct buf doc = BUF_INIT;
	struct saved_plan sp;
	struct err e = ERR_INIT;
	struct stat st;
	char path[128];
	DIR *d;
	struct dirent *de;
	size_t n = 0;

	(void)state;
	seed(&doc);
	snprintf(path, sizeof(path), "%s/plan.json", dir);
	assert_int_equal(savedplan_write(path, &doc, &e), 0);
	assert_int_equal(stat(path, &st), 0);
	assert_int_equal(st.st_mode & 07777, 0600);
	/* Written again over the old one: still one file, no temporary left. */
	assert_int_equal(savedplan_write(path, &doc, &e), 0);
	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		n += de->d_name[0] != '.';
	closedir(d);
	assert_int_equal(n, 1);
	run("/usr/bin/python3 -c 'import json, sys, jsonschema; jsonschema.validate(json.load(open(sys.argv[1])), "
	    "json.load(open(sys.argv[2])))' %s %s/schemas/saved-plan.json", path, ROTOR_SRCDIR);

	assert_int_equal(savedplan_read(&sp, path, &e), 0);
	assert_string_equal(sp.env, "poc");
	assert_string_equal(sp.commit, "0123456789abcdef0123456789abcdef01234567");
	assert_string_equal(sp.from_ref, "refs/remotes/origin/main");
	assert_string_equal(sp.from_how, "fetched");
	assert_false(sp.replace_unknown);
	assert_true(sp.probed);
	assert_int_equal(sp.nhosts, 1);
	assert_string_equal(sp.hosts[0].name, "host1");
	assert_int_equal(sp.hosts[0].nfiles, 2);
	assert_true(sp.hosts[0].files[0].present);
	assert_int_equal(strlen(sp.hosts[0].files[0].sha256), 64);
	assert_false(sp.hosts[0].files[1].present);
	assert_string_equal(sp.hosts[0].files[1].sha256, "");
	assert_int_equal(sp.hosts[0].nserved, 1);
	assert_int_equal(sp.hosts[0].served[0].port, 5432);
	assert_int_equal(json_array_size(sp.steps), 1);
	savedplan_release(&sp);
	buf_release(&doc);
	unlink(path);
}

/* path holds text with `from` replaced by `to`: the message savedplan_read() gives. */
static void refused(const char *from, const char *to, const char *want)
{
	struct buf doc = BUF_INIT, bad = BUF_INIT;
	struct saved_plan sp;
	struct err e = ERR_INIT;
	char path[128], expect[512];
	const char *at;
	FILE *f;

	seed(&doc);
	at = strstr(buf_cstr(&doc), from);
	assert_non_null(at);
	buf_put(&bad, doc.ptr, (size_t)(at - doc.ptr));
	buf_puts(&bad, to);
	buf_puts(&bad, at + strlen(from));
	snprintf(path, sizeof(path), "%s/bad.json", dir);
	assert_non_null(f = fopen(path, "wb"));
	assert_int_equal(fwrite(bad.ptr, 1, bad.len, f), bad.len);
	fclose(f);
	assert_int_equal(savedplan_read(&sp, path, &e), ROTOR_EINVALID);
	snprintf(expect, sizeof(expect), "%s: %s", path, want);
	assert_string_equal(e.msg, expect);
	assert_null(strchr(e.msg, '\n'));
	assert_null(sp.hosts);
	buf_release(&doc);
	buf_release(&bad);
	unlink(path);
}

static void test_refused(void **state)
{
	(void)state;
	refused("\"commit\":\"0123", "\"commit\":\"X123", "\"commit\" is not 40 lowercase hex digits");
	refused("\"format\":\"rotor-saved-plan\"", "\"format\":\"terraform\"",
		"not a saved plan (\"format\" is not \"rotor-saved-plan\")");
	refused("\"version\":1", "\"version\":2", "saved plan version is not 1 (made by another rotor?)");
	refused("\"probed\":true", "\"probed\":true,\"extra\\u0001\":1",
		"unknown member \"extra?\" (see schemas/saved-plan.json)");
	refused("\"sha256\":\"abab", "\"sha256\":\"ABAB",
		"hosts[0]: files[0]: \"sha256\" is not null or 64 lowercase hex digits of a present file");
	refused("\"leaf\":\"AB:", "\"leaf\":\"ab:", "hosts[0]: served[0]: \"leaf\" is not null or a SHA-256 fingerprint (AB:CD:...)");
	refused("\"action\":\"create\"", "\"action\":\"delete\"", "steps[0].changes[0]: \"action\" is not create or change");
	refused("\"to\":\"trust\"", "\"to\":\"later\"", "steps[0]: \"to\" is not a step");
	refused("{\"format\"", "\x01{\"format\"", "not JSON (line 1: '[' or '{' expected near '?')");
	refused("\"hosts\":[{", "\"hosts\":[7,{", "hosts[0]: is not an object");
	refused("\"env\":\"poc\"", "\"env\":\"poc\",\"env\":\"prod\"", "not JSON (line 1: duplicate object key near '\"env\"')");
}

static void test_stale_commit(void **state)
{
	struct buf doc = BUF_INIT;
	struct saved_plan sp;
	struct desired want;
	struct err e = ERR_INIT;

	(void)state;
	seed(&doc);
	assert_int_equal(savedplan_parse(&sp, doc.ptr, doc.len, &e), 0);
	memset(&want, 0, sizeof(want));
	snprintf(want.commit, sizeof(want.commit), "%s", sp.commit);
	snprintf(want.ref, sizeof(want.ref), "refs/remotes/origin/main");
	assert_int_equal(savedplan_check_commit(&sp, &want, &e), 0);
	want.commit[0] = 'f';
	assert_int_equal(savedplan_check_commit(&sp, &want, &e), ROTOR_ESTATE);
	assert_string_equal(e.msg, "Saved plan is stale: it was made at 0123456789ab, and the desired commit is now "
				   "f123456789ab (refs/remotes/origin/main): plan again");
	savedplan_release(&sp);
	buf_release(&doc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_write_read),
		cmocka_unit_test(test_refused),
		cmocka_unit_test(test_stale_commit),
	};
	int rc;

	if (!mkdtemp(dir))
		return 1;
	rc = cmocka_run_group_tests(tests, NULL, NULL);
	rmdir(dir);
	return rc;
}
