/*
 * fleet.h -- the test fleet (tests/fleet/fleet) for a cmocka group:
 * bring it up in the group setup, down in the teardown, and skip the
 * cases that need it when it is not there.  Include after <cmocka.h>
 * and "tests/unit/helpers.h"; every function is static inline.
 *
 *   static struct fleet F;
 *   group setup:    fleet_prepare(&F, "test_x")      mkdtemp, script path
 *                   if (!fleet_can_run(&F)) return 0;  not root: cases skip
 *                   fleet_up(&F, "3 --base 127.0.7")
 *   group teardown: fleet_down(&F)                     idempotent
 *   a case:         FLEET_REQUIRED(&F);                skip() when not up
 *
 * The fleet binds a loopback range, so suites that use it run under
 * the shared lock (flock /tmp/rotor-fleet.lock ...), one at a time.
 */
#ifndef ROTOR_TEST_FLEET_H
#define ROTOR_TEST_FLEET_H

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#ifndef ROTOR_SRCDIR
#define ROTOR_SRCDIR "."
#endif

struct fleet {
	const char *name;     /* the suite, for messages and the directory name */
	char dir[256];        /* mkdtemp: scratch space of the suite */
	char fleet_dir[300];  /* dir/fleet: the fleet's own directory */
	char script[512];     /* tests/fleet/fleet */
	int up;               /* the fleet was started (the teardown stops it) */
};

/* Make the scratch directory TMPDIR/rotor-NAME.XXXXXX; 0, or -1. */
static inline int fleet_prepare(struct fleet *f, const char *name)
{
	const char *tmp = getenv("TMPDIR");

	f->name = name;
	f->up = 0;
	snprintf(f->script, sizeof(f->script), "%s/tests/fleet/fleet", ROTOR_SRCDIR);
	snprintf(f->dir, sizeof(f->dir), "%s/rotor-%s.XXXXXX", tmp ? tmp : "/tmp", name);
	if (!mkdtemp(f->dir)) {
		f->dir[0] = '\0';
		return -1;
	}
	snprintf(f->fleet_dir, sizeof(f->fleet_dir), "%s/fleet", f->dir);
	return 0;
}

/* 1 when the fleet can run here (it needs root); else says so and returns 0. */
static inline int fleet_can_run(const struct fleet *f)
{
	if (geteuid() == 0)
		return 1;
	fprintf(stderr, "# %s: not root, the fleet cannot run; skipping its cases\n", f->name);
	return 0;
}

/* `fleet up ARGS --dir DIR`; on failure shows its log and stops what started. */
static inline int fleet_up(struct fleet *f, const char *args)
{
	f->up = 1;   /* from here on the teardown stops whatever started */
	if (run_status("%s up %s --dir %s >%s/fleet-up.log 2>&1", f->script, args, f->fleet_dir,
		       f->dir) == 0)
		return 0;
	run_status("cat %s/fleet-up.log >&2", f->dir);
	run_status("%s down --dir %s >/dev/null 2>&1", f->script, f->fleet_dir);
	f->up = 0;
	return -1;
}

/* Stop the fleet if it was started and remove the scratch directory; idempotent. */
static inline void fleet_down(struct fleet *f)
{
	if (f->up)
		run_status("%s down --dir %s >/dev/null 2>&1", f->script, f->fleet_dir);
	f->up = 0;
	if (f->dir[0])
		run_status("rm -rf %s", f->dir);
	f->dir[0] = '\0';
}

/* In a case: skip it when the fleet is not up. */
#define FLEET_REQUIRED(f) \
	do { \
		if (!(f)->up) \
			skip(); \
	} while (0)

#endif
