/*
 * helpers.h -- shell helpers shared by the unit tests (include after
 * <cmocka.h>).  Every function is static inline so a test includes the
 * ones it needs without unused-function warnings.
 *
 *   run(fmt, ...)               a command that must exit 0 (the test fails otherwise)
 *   run_status(fmt, ...)        its exit status, -1 if it did not exit
 *   capture(buf, fmt, ...)      standard output of a command that must exit 0
 *   capture_status(buf, ...)    standard output, returning the exit status
 *   capture_line(out, len, ...) one line of output, newline removed
 */
#ifndef ROTOR_TEST_HELPERS_H
#define ROTOR_TEST_HELPERS_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include "common/buf.h"

#define TH_CMD_MAX 8192

/* Format into out; the test fails when it does not fit. */
static inline void vformat(char *out, size_t len, const char *fmt, va_list ap)
{
	int n = vsnprintf(out, len, fmt, ap);

	assert_true(n >= 0 && (size_t)n < len);
}

static inline int th_status(int st)
{
	return st == -1 || !WIFEXITED(st) ? -1 : WEXITSTATUS(st);
}

/* A command's exit status; when must, the test fails unless it is 0. */
static inline int th_vrun(int must, const char *fmt, va_list ap)
{
	char cmd[TH_CMD_MAX];
	int st;

	vformat(cmd, sizeof(cmd), fmt, ap);
	st = th_status(system(cmd));
	if (must && st != 0)
		fail_msg("command failed (%d): %s", st, cmd);
	return st;
}

static inline int run_status(const char *fmt, ...) ROTOR_PRINTF(1, 2);
static inline int run_status(const char *fmt, ...)
{
	va_list ap;
	int st;

	va_start(ap, fmt);
	st = th_vrun(0, fmt, ap);
	va_end(ap);
	return st;
}

static inline void run(const char *fmt, ...) ROTOR_PRINTF(1, 2);
static inline void run(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	th_vrun(1, fmt, ap);
	va_end(ap);
}

/* A command's standard output appended to out, and its exit status; when must, as th_vrun. */
static inline int th_vcapture(struct buf *out, int must, const char *fmt, va_list ap)
{
	char cmd[TH_CMD_MAX], tmp[4096];
	size_t n;
	FILE *p;
	int st;

	vformat(cmd, sizeof(cmd), fmt, ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((n = fread(tmp, 1, sizeof(tmp), p)) > 0)
		assert_int_equal(buf_put(out, tmp, n), 0);
	st = th_status(pclose(p));
	if (!out->ptr)
		assert_int_equal(buf_put(out, "", 0), 0);
	if (must && st != 0)
		fail_msg("command failed (%d): %s", st, cmd);
	return st;
}

static inline int capture_status(struct buf *out, const char *fmt, ...) ROTOR_PRINTF(2, 3);
static inline int capture_status(struct buf *out, const char *fmt, ...)
{
	va_list ap;
	int st;

	va_start(ap, fmt);
	st = th_vcapture(out, 0, fmt, ap);
	va_end(ap);
	return st;
}

static inline void capture(struct buf *out, const char *fmt, ...) ROTOR_PRINTF(2, 3);
static inline void capture(struct buf *out, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	th_vcapture(out, 1, fmt, ap);
	va_end(ap);
}

static inline void capture_line(char *out, size_t len, const char *fmt, ...) ROTOR_PRINTF(3, 4);
static inline void capture_line(char *out, size_t len, const char *fmt, ...)
{
	struct buf b = BUF_INIT;
	char cmd[TH_CMD_MAX];
	va_list ap;

	va_start(ap, fmt);
	vformat(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	capture(&b, "%s", cmd);
	while (b.len && b.ptr[b.len - 1] == '\n')
		b.len--;
	assert_true(b.len < len);
	memcpy(out, b.ptr, b.len);
	out[b.len] = '\0';
	buf_release(&b);
}

#endif
