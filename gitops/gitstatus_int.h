/*
 * gitstatus_int.h -- gitstatus.c's lock.json reader, for tests only
 * (tests/fuzz/fuzz_lock.c, tests/unit/test_fuzz.c).  Callers outside
 * gitops/ and tests/ use gitstatus.h.
 */
#ifndef ROTOR_GITSTATUS_INT_H
#define ROTOR_GITSTATUS_INT_H

#include <stddef.h>

#include "gitops/gitstatus.h"

/*
 * Fill l's fields from the bytes of a lock.json (len bytes, need not be
 * NUL-terminated; NULL reads as empty).  l->id is left alone; l should
 * start zeroed.  A document that is not the flat object rotor writes
 * leaves l->parsed 0, the fields empty and l->problem saying why;
 * otherwise l->parsed is 1.  Never fails: running out of memory while
 * parsing reads as "not JSON".
 */
void gitstatus__lock_parse(struct gitstatus_lock *l, const char *data, size_t len);

#endif
