/*
 * fdlimit.h -- the limit on open files (RLIMIT_NOFILE).
 *
 * A run that keeps one SSH session per host open holds a socket per
 * host: 1,000 hosts need more than the usual soft limit of 1024.
 * fd_limit_raise() lifts the soft limit to the hard limit (once, in
 * main, before threads start); fd_limit() reads the soft limit now.
 * Neither fails: a limit that cannot be read or raised stays as it is,
 * and fd_limit() then says "unlimited" (ULLONG_MAX) only when the system
 * says so.
 */
#ifndef ROTOR_FDLIMIT_H
#define ROTOR_FDLIMIT_H

/* Raise the soft limit to the hard one; returns the soft limit after (as fd_limit()). */
unsigned long long fd_limit_raise(void);

/* The soft limit on open files now; 0 when it cannot be read. */
unsigned long long fd_limit(void);

#endif
