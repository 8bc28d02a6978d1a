/*
 * test_fuzz.c -- replay stored inputs through the fuzz targets' own
 * functions (tests/fuzz/fuzz_*.c, linked here without libFuzzer) under
 * ASan and UBSan: every file in tests/fuzz/regressions/TARGET/ (each an
 * input that once crashed or failed a check) and every YAML fixture of
 * each kind.  A crash, a sanitizer report or a failed FUZZ_CHECK ends
 * the run, which tests/run.sh counts as a failure.
 */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#include "common/buf.h"
#include "tests/fuzz/fuzz.h"

#ifndef ROTOR_SRCDIR
#define ROTOR_SRCDIR "."
#endif

#define MAX_INPUT ((size_t)4 << 20)

static const struct {
	const char *name;
	int spec;            /* >= 0: fuzz_spec with this kind */
	void (*fn)(const uint8_t *, size_t);
	const char *fixture; /* file name of this kind under fixtures/good */
} targets[] = {
	{ "rotor", FUZZ_ROTOR, NULL, "rotor.yaml" },
	{ "chain", FUZZ_CHAIN, NULL, "chain.yaml" },
	{ "hosts", FUZZ_HOSTS, NULL, "hosts.yaml" },
	{ "rotation", FUZZ_ROTATION, NULL, "rotation.yaml" },
	{ "manifest", FUZZ_MANIFEST, NULL, "manifest.yaml" },
	{ "pem", -1, fuzz_pem, NULL },
	{ "lock", -1, fuzz_lock, NULL },
	{ "pgreply", -1, fuzz_pgreply, NULL },
	{ "tlsreply", -1, fuzz_tlsreply, NULL },
	{ "remote", -1, fuzz_remote, NULL },
	{ "savedplan", -1, fuzz_savedplan, NULL },
	{ "sftpreply", -1, fuzz_sftpreply, NULL },
};
#define NTARGETS (sizeof(targets) / sizeof(targets[0]))

static void replay(size_t t, const char *path)
{
	struct buf b = BUF_INIT;
	char chunk[8192];
	size_t n;
	FILE *f = fopen(path, "rb");

	if (!f)
		fail_msg("cannot open %s", path);
	b.max = MAX_INPUT;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(buf_put(&b, chunk, n), 0);
	assert_false(ferror(f));
	fclose(f);
	if (targets[t].spec >= 0)
		fuzz_spec((enum fuzz_spec_kind)targets[t].spec, (const uint8_t *)b.ptr, b.len);
	else
		targets[t].fn((const uint8_t *)b.ptr, b.len);
	buf_release(&b);
}

/* Replay every regular file of dir (not recursive, unless deep); returns how many. */
static size_t replay_dir(size_t t, const char *dir, const char *only, int deep)
{
	DIR *d = opendir(dir);
	struct dirent *de;
	struct stat st;
	char path[4096];
	size_t count = 0, len;

	if (!d)
		return 0;
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		if (stat(path, &st) != 0)
			continue;
		if (S_ISDIR(st.st_mode)) {
			if (deep)
				count += replay_dir(t, path, only, deep);
			continue;
		}
		len = strlen(de->d_name);
		if (only && strcmp(de->d_name, only) != 0 &&
		    !(strcmp(only, ".yaml") == 0 && len > 5 && strcmp(de->d_name + len - 5, ".yaml") == 0))
			continue;
		replay(t, path);
		count++;
	}
	closedir(d);
	return count;
}

/* Every file of tests/fuzz/regressions/TARGET/: only known targets, none empty. */
static void test_regressions(void **state)
{
	char dir[4096], sub[4096 + 512];
	DIR *d;
	struct dirent *de;
	size_t t, total = 0, n;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/tests/fuzz/regressions", ROTOR_SRCDIR);
	d = opendir(dir);
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		for (t = 0; t < NTARGETS && strcmp(targets[t].name, de->d_name) != 0; t++)
			;
		if (t == NTARGETS)
			fail_msg("tests/fuzz/regressions/%s: no fuzz target of that name", de->d_name);
		snprintf(sub, sizeof(sub), "%s/%s", dir, de->d_name);
		n = replay_dir(t, sub, NULL, 0);
		if (n == 0)
			fail_msg("tests/fuzz/regressions/%s holds no input", de->d_name);
		total += n;
	}
	closedir(d);
	assert_true(total > 0);
}

/* Every YAML fixture through its kind's target: good ones load, bad ones are refused cleanly. */
static void test_fixtures(void **state)
{
	char dir[4096];
	size_t t, n;

	(void)state;
	for (t = 0; t < NTARGETS; t++) {
		if (!targets[t].fixture)
			continue;
		snprintf(dir, sizeof(dir), "%s/fixtures/bad/%s", ROTOR_SRCDIR, targets[t].name);
		n = replay_dir(t, dir, ".yaml", 0);
		snprintf(dir, sizeof(dir), "%s/fixtures/good", ROTOR_SRCDIR);
		n += replay_dir(t, dir, targets[t].fixture, 1);
		if (n < 5)
			fail_msg("only %zu fixtures for %s", n, targets[t].name);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_regressions),
		cmocka_unit_test(test_fixtures),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
