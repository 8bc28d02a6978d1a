/*
 * pki_int.h -- helpers shared by pki.c, pki_export.c and pki_secret.c.
 * Private to the pki module: nothing outside reconcile/pki*.c includes it.
 */
#ifndef ROTOR_PKI_INT_H
#define ROTOR_PKI_INT_H

#include <stddef.h>

#include "common/err.h"

/*
 * Record code in e with "<context>: <first OpenSSL error>" (translated
 * with ERR_error_string_n), and empty this thread's OpenSSL error queue.
 * Returns code.
 */
int pki_ossl_err(struct err *e, int code, const char *fmt, ...) ROTOR_PRINTF(3, 4);

/*
 * Run job(ctx, &slot, i, e) for every i in [0, n) on `threads` threads
 * (the calling thread is one of them; 0 = online CPUs, capped at n).
 * Items are handed out in increasing order; each thread has one `slot`
 * that job may fill lazily with per-thread state and that fini(ctx, slot)
 * releases when the thread is done (fini may be NULL).  The first
 * failure stops the other threads after their current item and its
 * struct err is copied into e.  Returns 0 or that failure's code.
 */
typedef int (*pki_job_fn)(void *ctx, void **slot, size_t i, struct err *e);
typedef void (*pki_fini_fn)(void *ctx, void *slot);
int pki_parallel(size_t n, int threads, pki_job_fn job, pki_fini_fn fini, void *ctx,
		 struct err *e);

/* OpenSSL's X509_NAME * in RFC 2253 form; a serial (ASN1_INTEGER *) as lowercase hex (pki_export.c). */
struct X509_name_st;
struct asn1_string_st;
char *pki_name_rfc2253(const struct X509_name_st *n, struct err *e);
char *pki_serial_hex(const struct asn1_string_st *a, struct err *e);

/* The thread count pki_parallel() uses for `threads` (0 = online CPUs). */
int pki_thread_count(int threads);

#endif
