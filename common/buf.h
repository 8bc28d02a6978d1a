/*
 * buf.h -- a growable byte buffer with a hard maximum size.
 *
 * Ownership: a struct buf owns ptr.  buf_release() frees it; buf_wipe()
 * zeroes the bytes first and must be used for anything secret.
 * buf_detach() hands ptr to the caller (who frees it with free()).
 * The contents are always NUL-terminated once anything was added, so
 * ptr can be used as a C string when the data holds no NUL; buf_cstr()
 * returns "" for an empty buffer.
 *
 * max == 0 means the default cap BUF_DEFAULT_MAX.  Growing past max
 * fails with ROTOR_ETOOBIG and leaves the buffer as it was.
 *
 * The first failure of any append is also kept in err (until release or
 * detach), so a document built by many appends (JSON, a remote command)
 * is checked once, at the end: a non-zero err means the bytes are
 * incomplete and must not be used, committed or sent.
 */
#ifndef ROTOR_BUF_H
#define ROTOR_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "common/err.h"

#define BUF_DEFAULT_MAX ((size_t)64 << 20)

struct buf {
	char *ptr;
	size_t len;
	size_t cap;
	size_t max;
	int err;        /* the first failed append's ROTOR_* code, 0 if none */
};

#define BUF_INIT { NULL, 0, 0, 0, 0 }

int buf_grow(struct buf *b, size_t extra);
int buf_put(struct buf *b, const void *data, size_t len);
int buf_puts(struct buf *b, const char *s);
int buf_printf(struct buf *b, const char *fmt, ...) ROTOR_PRINTF(2, 3);
int buf_vprintf(struct buf *b, const char *fmt, va_list ap) ROTOR_PRINTF(2, 0);
const char *buf_cstr(const struct buf *b);
void buf_truncate(struct buf *b, size_t len);
char *buf_detach(struct buf *b);
void buf_release(struct buf *b);
void buf_wipe(struct buf *b);

/*
 * Read a whole file into b (appending).  Refuses files larger than max
 * bytes with ROTOR_ETOOBIG, a missing file with ROTOR_ENOTFOUND; the
 * message names the path.
 */
int buf_read_file(struct buf *b, const char *path, size_t max, struct err *e);

/*
 * Zero memory in a way the compiler may not remove (explicit_bzero).
 * The one wipe of the project: buf_wipe(), buf_truncate() and every
 * secret held outside a struct buf (key bytes, passphrases, digests of
 * secrets, I/O chunks that carried them) go through it.
 */
void secure_wipe(void *p, size_t n);

/* strdup that reports failure through e; NULL s gives NULL without error. */
char *xstrdup(const char *s, struct err *e);

#endif
