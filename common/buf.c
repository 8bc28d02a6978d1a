/* buf.c -- capped growable buffer and small memory helpers (see buf.h). */
#define _DEFAULT_SOURCE
#include "common/buf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

void secure_wipe(void *p, size_t n)
{
	if (p && n)
		explicit_bzero(p, n);
}

static size_t buf_max(const struct buf *b)
{
	return b->max ? b->max : BUF_DEFAULT_MAX;
}

int buf_grow(struct buf *b, size_t extra)
{
	size_t need, ncap;
	char *n;

	if (extra > buf_max(b) || b->len > buf_max(b) - extra)
		return b->err ? ROTOR_ETOOBIG : (b->err = ROTOR_ETOOBIG);
	need = b->len + extra + 1;
	if (need <= b->cap)
		return 0;
	ncap = b->cap ? b->cap : 64;
	while (ncap < need)
		ncap = ncap > SIZE_MAX / 2 ? need : ncap * 2;
	if (ncap > buf_max(b) + 1)
		ncap = buf_max(b) + 1;
	/* realloc would leave a copy of secrets behind; copy by hand. */
	n = malloc(ncap);
	if (!n)
		return b->err ? ROTOR_ENOMEM : (b->err = ROTOR_ENOMEM);
	if (b->ptr) {
		memcpy(n, b->ptr, b->len + 1);
		secure_wipe(b->ptr, b->cap);
		free(b->ptr);
	} else {
		n[0] = '\0';
	}
	b->ptr = n;
	b->cap = ncap;
	return 0;
}

int buf_put(struct buf *b, const void *data, size_t len)
{
	int rc = buf_grow(b, len);

	if (rc)
		return rc;
	if (len)
		memcpy(b->ptr + b->len, data, len);
	b->len += len;
	b->ptr[b->len] = '\0';
	return 0;
}

int buf_puts(struct buf *b, const char *s)
{
	return buf_put(b, s, strlen(s));
}

int buf_vprintf(struct buf *b, const char *fmt, va_list ap)
{
	va_list ap2;
	int n, rc;

	va_copy(ap2, ap);
	n = vsnprintf(NULL, 0, fmt, ap2);
	va_end(ap2);
	if (n < 0)
		return b->err ? ROTOR_ERROR : (b->err = ROTOR_ERROR);
	rc = buf_grow(b, (size_t)n);
	if (rc)
		return rc;
	vsnprintf(b->ptr + b->len, (size_t)n + 1, fmt, ap);
	b->len += (size_t)n;
	return 0;
}

int buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int rc;

	va_start(ap, fmt);
	rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
	return rc;
}

const char *buf_cstr(const struct buf *b)
{
	return b->ptr ? b->ptr : "";
}

void buf_truncate(struct buf *b, size_t len)
{
	if (b->ptr && len < b->len) {
		secure_wipe(b->ptr + len, b->len - len);
		b->len = len;
	}
}

char *buf_detach(struct buf *b)
{
	char *p = b->ptr;

	if (!p)
		p = calloc(1, 1);
	b->ptr = NULL;
	b->len = b->cap = 0;
	b->err = 0;
	return p;
}

void buf_release(struct buf *b)
{
	free(b->ptr);
	b->ptr = NULL;
	b->len = b->cap = 0;
	b->err = 0;
}

void buf_wipe(struct buf *b)
{
	if (b->ptr)
		secure_wipe(b->ptr, b->cap);
	buf_release(b);
}

int buf_read_file(struct buf *b, const char *path, size_t max, struct err *e)
{
	struct stat st;
	char tmp[8192];
	size_t total = 0;
	ssize_t n;
	int fd, rc = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return err_set(e, ROTOR_ENOTFOUND, "%s: no such file", path);
		return err_set(e, ROTOR_ERROR, "%s: cannot open: %s", path, strerror(errno));
	}
	if (fstat(fd, &st) == 0 && !S_ISREG(st.st_mode)) {
		close(fd);
		return err_set(e, ROTOR_EINVALID, "%s: not a regular file", path);
	}
	for (;;) {
		n = read(fd, tmp, sizeof(tmp));
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = err_set(e, ROTOR_ERROR, "%s: read failed: %s", path, strerror(errno));
			break;
		}
		if (n == 0)
			break;
		total += (size_t)n;
		if (total > max) {
			rc = err_set(e, ROTOR_ETOOBIG, "%s: file is larger than %zu bytes", path, max);
			break;
		}
		if (buf_put(b, tmp, (size_t)n)) {
			rc = err_nomem(e);
			break;
		}
	}
	secure_wipe(tmp, sizeof(tmp));
	close(fd);
	return rc;
}

char *xstrdup(const char *s, struct err *e)
{
	char *p;

	if (!s)
		return NULL;
	p = strdup(s);
	if (!p)
		err_nomem(e);
	return p;
}
