/* err.c -- the error value shared by every module (see err.h). */
#include "common/err.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

char *err_one_line(char *s)
{
	size_t i, n = strlen(s);

	while (n && ((unsigned char)s[n - 1] < 0x20 || s[n - 1] == ' ' || s[n - 1] == 0x7f))
		s[--n] = '\0';
	for (i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
			s[i] = ' ';
	return s;
}

int err_set(struct err *e, int code, const char *fmt, ...)
{
	va_list ap;

	if (!e)
		return code;
	e->code = code;
	va_start(ap, fmt);
	vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
	va_end(ap);
	err_one_line(e->msg);
	return code;
}

int err_prefix(struct err *e, const char *fmt, ...)
{
	char head[ERR_MSG_MAX], old[ERR_MSG_MAX];
	va_list ap;

	if (!e)
		return ROTOR_ERROR;
	va_start(ap, fmt);
	vsnprintf(head, sizeof(head), fmt, ap);
	va_end(ap);
	memcpy(old, e->msg, sizeof(old));
	/* A message longer than the buffer is cut; the return value says so. */
	if (snprintf(e->msg, sizeof(e->msg), "%s: %s", head, old) >= (int)sizeof(e->msg))
		memcpy(e->msg + sizeof(e->msg) - 4, "...", 4);
	err_one_line(e->msg);
	if (e->code == 0)
		e->code = ROTOR_ERROR;
	return e->code;
}

void err_clear(struct err *e)
{
	if (!e)
		return;
	e->code = 0;
	e->msg[0] = '\0';
}

int err_nomem(struct err *e)
{
	return err_set(e, ROTOR_ENOMEM, "out of memory");
}
