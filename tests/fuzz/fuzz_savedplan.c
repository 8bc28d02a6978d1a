/*
 * fuzz_savedplan.c -- the saved-plan reader: what `rotor apply FILE`
 * parses (reconcile/engine/savedplan.c, savedplan_parse()).
 *
 * Checks: a plan that parsed has a 40-hex commit, an env, a known
 * desired_from.how (or none), every file hash empty or 64 lowercase hex
 * digits (and empty for an absent file), every served port in range and
 * every leaf empty or a 95-character fingerprint, and steps; one that
 * did not parse has a printable one-line message and nothing left in it.
 */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "reconcile/engine/savedplan.h"

void fuzz_savedplan(const uint8_t *data, size_t size)
{
	struct saved_plan sp;
	struct err e = ERR_INIT;
	size_t h, f;
	int rc;

	rc = savedplan_parse(&sp, (const char *)data, size, &e);
	if (rc < 0) {
		FUZZ_CHECK(rc == ROTOR_EINVALID || rc == ROTOR_ENOMEM);
		FUZZ_CHECK(e.msg[0] && fuzz_printable(e.msg));
		FUZZ_CHECK(!sp.hosts && !sp.nhosts && !sp.steps && !sp.commit[0]);
		return;
	}
	FUZZ_CHECK(strlen(sp.commit) == 40 && strspn(sp.commit, "0123456789abcdef") == 40);
	FUZZ_CHECK(sp.env[0] && sp.steps && json_is_array(sp.steps));
	FUZZ_CHECK(!sp.from_how[0] || !strcmp(sp.from_how, "fetched") || !strcmp(sp.from_how, "not-fetched") ||
		   !strcmp(sp.from_how, "local") || !strcmp(sp.from_how, "ref"));
	for (h = 0; h < sp.nhosts; h++) {
		const struct saved_host *sh = &sp.hosts[h];

		FUZZ_CHECK(sh->name && sh->address);
		for (f = 0; f < sh->nfiles; f++) {
			FUZZ_CHECK(sh->files[f].path);
			FUZZ_CHECK(!sh->files[f].sha256[0] || (sh->files[f].present && strlen(sh->files[f].sha256) == 64));
		}
		for (f = 0; f < sh->nserved; f++) {
			FUZZ_CHECK(sh->served[f].port >= 1 && sh->served[f].port <= 65535);
			FUZZ_CHECK(!sh->served[f].leaf[0] || strlen(sh->served[f].leaf) == 95);
		}
	}
	savedplan_release(&sp);
	FUZZ_CHECK(!sp.hosts && !sp.steps);
}

FUZZ_MAIN(fuzz_savedplan)
