/*
 * fuzz_lock.c -- the JSON reader: lock.json as gitstatus reads it back
 * (gitops/gitstatus.c through gitstatus__lock_parse, gitstatus_int.h).
 *
 * Checks: a lock that parsed has its required text fields, every field
 * is printable ASCII (foreign bytes shown as '?'), "desired" is empty or
 * 40 hex digits; one that did not parse has empty fields and a problem.
 */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "gitops/gitstatus_int.h"

void fuzz_lock(const uint8_t *data, size_t size)
{
	struct gitstatus_lock l;
	char shown[600];

	memset(&l, 0, sizeof(l));
	gitstatus__lock_parse(&l, (const char *)data, size);
	FUZZ_CHECK(fuzz_printable(l.holder) && fuzz_printable(l.time) && fuzz_printable(l.command));
	FUZZ_CHECK(fuzz_printable(l.problem));
	if (l.parsed) {
		FUZZ_CHECK(!l.problem[0]);
		FUZZ_CHECK(!l.desired[0] || (strlen(l.desired) == 40 &&
					     strspn(l.desired, "0123456789abcdefABCDEF") == 40));
	} else {
		FUZZ_CHECK(l.problem[0] && !l.holder[0] && !l.time[0] && !l.command[0] && !l.desired[0]);
		FUZZ_CHECK(l.pid == 0);
	}
	FUZZ_CHECK(gitstatus_lock_describe(shown, sizeof(shown), &l) != NULL);
}

FUZZ_MAIN(fuzz_lock)
