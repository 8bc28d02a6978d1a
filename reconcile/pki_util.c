/*
 * pki_util.c -- OpenSSL error translation and the worker pool of the pki
 * module (see pki_int.h).
 */
#include "pki_int.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>

#define PKI_MAX_THREADS 256

int pki_ossl_err(struct err *e, int code, const char *fmt, ...)
{
	char context[ERR_MSG_MAX], detail[256];
	unsigned long first = 0, ec;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(context, sizeof(context), fmt, ap);
	va_end(ap);
	/* The earliest entry is the root cause; later ones are callers. */
	while ((ec = ERR_get_error()) != 0)
		if (!first)
			first = ec;
	if (first) {
		ERR_error_string_n(first, detail, sizeof(detail));
		return err_set(e, code, "%s: %s", context, detail);
	}
	return err_set(e, code, "%s", context);
}

int pki_thread_count(int threads)
{
	long n;

	if (threads > 0)
		return threads > PKI_MAX_THREADS ? PKI_MAX_THREADS : threads;
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (n < 1)
		return 1;
	return n > PKI_MAX_THREADS ? PKI_MAX_THREADS : (int)n;
}

struct pool {
	pthread_mutex_t mu;
	size_t n, next;
	int failed;
	struct err err;         /* the first failure */
	pki_job_fn job;
	pki_fini_fn fini;
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
	/* The error queue is per thread: leave nothing behind. */
	ERR_clear_error();
	return NULL;
}

int pki_parallel(size_t n, int threads, pki_job_fn job, pki_fini_fn fini, void *ctx,
		 struct err *e)
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
	want = (size_t)pki_thread_count(threads);
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
