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

static inline int run_status(const char *fmt, ...) ROTOR_PRINTF(1, 2);
static inline int run_status(const char *fmt, ...)
{
	char cmd[TH_CMD_MAX];
	va_list ap;

	va_start(ap, fmt);
	vformat(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	return th_status(system(cmd));
}

static inline void run(const char *fmt, ...) ROTOR_PRINTF(1, 2);
static inline void run(const char *fmt, ...)
{
	char cmd[TH_CMD_MAX];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vformat(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = th_status(system(cmd));
	if (st != 0)
		fail_msg("command failed (%d): %s", st, cmd);
}

static inline int th_vcapture(struct buf *out, const char *fmt, va_list ap, char *cmd, size_t cmdlen)
{
	char tmp[4096];
	size_t n;
	FILE *p;

	vformat(cmd, cmdlen, fmt, ap);
	p = popen(cmd, "r");
	assert_non_null(p);
	while ((n = fread(tmp, 1, sizeof(tmp), p)) > 0)
		assert_int_equal(buf_put(out, tmp, n), 0);
	n = (size_t)th_status(pclose(p));
	if (!out->ptr)
		assert_int_equal(buf_put(out, "", 0), 0);
	return (int)n;
}

static inline int capture_status(struct buf *out, const char *fmt, ...) ROTOR_PRINTF(2, 3);
static inline int capture_status(struct buf *out, const char *fmt, ...)
{
	char cmd[TH_CMD_MAX];
	va_list ap;
	int st;

	va_start(ap, fmt);
	st = th_vcapture(out, fmt, ap, cmd, sizeof(cmd));
	va_end(ap);
	return st;
}

static inline void capture(struct buf *out, const char *fmt, ...) ROTOR_PRINTF(2, 3);
static inline void capture(struct buf *out, const char *fmt, ...)
{
	char cmd[TH_CMD_MAX];
	va_list ap;
	int st;

	va_start(ap, fmt);
	st = th_vcapture(out, fmt, ap, cmd, sizeof(cmd));
	va_end(ap);
	if (st != 0)
		fail_msg("command failed (%d): %s", st, cmd);
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
