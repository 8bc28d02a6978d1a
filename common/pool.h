/*
 * pool.h -- run n independent jobs on a bounded number of threads.
 *
 * pool_run() calls job(ctx, &slot, i, e) for every i in [0, n) on
 * `threads` threads (the calling thread is one of them; 0 = online CPUs;
 * never more than n).  Items are handed out in increasing order.  Each
 * thread has one `slot` that job may fill lazily with per-thread state,
 * released by fini(ctx, slot) when the thread is done (fini may be NULL).
 *
 * A job that returns < 0 stops the pool: the other threads finish their
 * current item and take no more, and the first failure's struct err is
 * copied into e.  A job whose item may fail on its own (one unreachable
 * host) records that in its result and returns 0.
 */
#ifndef ROTOR_POOL_H
#define ROTOR_POOL_H

#include <stddef.h>

#include "common/err.h"

#define POOL_MAX_THREADS 1024

typedef int (*pool_job_fn)(void *ctx, void **slot, size_t i, struct err *e);
typedef void (*pool_fini_fn)(void *ctx, void *slot);

int pool_run(size_t n, int threads, pool_job_fn job, pool_fini_fn fini, void *ctx, struct err *e);

/* The thread count pool_run() uses for `threads` (0 = online CPUs), before capping at n. */
int pool_thread_count(int threads);

#endif
