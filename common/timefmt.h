/*
 * timefmt.h -- RFC 3339 UTC times ("2026-11-23T11:45:00Z"), the form
 * every manifest and --json output uses.  No time zone, no locale.
 */
#ifndef ROTOR_TIMEFMT_H
#define ROTOR_TIMEFMT_H

#include <stddef.h>
#include <time.h>

/* Seconds since the epoch, or -1 when s is not exactly that form. */
long long rfc3339_parse(const char *s);

/* Write t as "YYYY-MM-DDTHH:MM:SSZ" into out (at least 21 bytes); -1 when out of range. */
int rfc3339_format(char *out, size_t len, time_t t);

/* Whole days from now until t: rounded down, negative (rounded away from zero) once past. */
long long days_until(long long t, time_t now);

#endif
