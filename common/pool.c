/* pool.c -- a bounded thread pool over an index range (see pool.h). */
#include "common/pool.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int pool_thread_count(int threads)
{
	long n;

	if (threads > 0)
		return threads > POOL_MAX_THREADS ? POOL_MAX_THREADS : threads;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > POOL_MAX_THREADS ? POOL_MAX_THREADS : (int)n;
}

struct pool {
	pthread_mutex_t mu;
	size_t n, next;
	int failed;
	struct err err;         /* the first failure */
	pool_job_fn job;
	pool_fini_fn fini;
	void *ctx;
};

static void *pool_worker(void *arg)
{
	struct pool *p = arg;
	struct err e = ERR_INIT;
	void *slot = NULL;
	size_t i;

	for (;;) {
		pthread_mutex_lock(&p->mu);
		if (p->failed || p->next >= p->n) {
			pthread_mutex_unlock(&p->mu);
			break;
		}
		i = p->next++;
		pthread_mutex_unlock(&p->mu);
		if (p->job(p->ctx, &slot, i, &e) < 0) {
			pthread_mutex_lock(&p->mu);
			if (!p->failed) {
				p->failed = 1;
				p->err = e;
				if (p->err.code >= 0)
					p->err.code = ROTOR_ERROR;
			}
			pthread_mutex_unlock(&p->mu);
			break;
		}
	}
	if (p->fini)
		p->fini(p->ctx, slot);
	return NULL;
}

int pool_run(size_t n, int threads, pool_job_fn job, pool_fini_fn fini, void *ctx, struct err *e)
{
	struct pool p;
	pthread_t *tids = NULL;
	size_t want, started = 0, k;

	if (n == 0)
		return 0;
	memset(&p, 0, sizeof(p));
	p.n = n;
	p.job = job;
	p.fini = fini;
	p.ctx = ctx;
	if (pthread_mutex_init(&p.mu, NULL) != 0)
		return err_set(e, ROTOR_ERROR, "cannot create a mutex");
	want = (size_t)pool_thread_count(threads);
	if (want > n)
		want = n;
	if (want > 1) {
		tids = calloc(want - 1, sizeof(*tids));
		/* Without memory for thread ids the caller's thread does it all. */
		for (k = 0; tids && k < want - 1; k++) {
			if (pthread_create(&tids[k], NULL, pool_worker, &p) != 0)
				break;
			started++;
		}
	}
	pool_worker(&p);
	for (k = 0; k < started; k++)
		pthread_join(tids[k], NULL);
	free(tids);
	pthread_mutex_destroy(&p.mu);
	if (p.failed) {
		if (e)
			*e = p.err;
		return p.err.code;
	}
	return 0;
}
