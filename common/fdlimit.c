/* fdlimit.c -- the limit on open files (see fdlimit.h). */
#include "common/fdlimit.h"

#include <limits.h>
#include <sys/resource.h>

static unsigned long long as_ull(rlim_t v)
{
	return v == RLIM_INFINITY ? ULLONG_MAX : (unsigned long long)v;
}

unsigned long long fd_limit(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	return as_ull(rl.rlim_cur);
}

unsigned long long fd_limit_raise(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
		return 0;
	if (rl.rlim_cur != rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	return fd_limit();
}
