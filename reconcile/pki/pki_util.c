/*
 * pki_util.c -- OpenSSL error translation, and pki's jobs on the common
 * worker pool (see pki_int.h).
 */
#include "reconcile/pki/pki_int.h"
#include "common/pool.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
	int n = pool_thread_count(threads);

	return n > PKI_MAX_THREADS ? PKI_MAX_THREADS : n;
}

/* pki's jobs run on the common pool; each worker leaves its OpenSSL error queue empty. */
struct pki_pool {
	pki_job_fn job;
	pki_fini_fn fini;
	void *ctx;
};

static int pki_pool_job(void *ctx, void **slot, size_t i, struct err *e)
{
	struct pki_pool *p = ctx;

	return p->job(p->ctx, slot, i, e);
}

static void pki_pool_fini(void *ctx, void *slot)
{
	struct pki_pool *p = ctx;

	if (p->fini)
		p->fini(p->ctx, slot);
	ERR_clear_error();
}

int pki_parallel(size_t n, int threads, pki_job_fn job, pki_fini_fn fini, void *ctx, struct err *e)
{
	struct pki_pool p = { job, fini, ctx };

	return pool_run(n, pki_thread_count(threads), pki_pool_job, pki_pool_fini, &p, e);
}
