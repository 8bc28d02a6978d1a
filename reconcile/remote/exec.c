/*
 * exec.c -- commands on the host (see ssh.h; ssh_int.h for the layout):
 * exec channels with bounded stdout/stderr, the "sudo -n stat" +
 * "sudo -n cat" read path for files the login user may not read, POSIX
 * shell quoting and the command builder every remote command goes
 * through.  The read chunk that carries command output (file contents,
 * private keys on the sudo read path) is wiped before it is freed.
 */
#define _DEFAULT_SOURCE
#include "reconcile/remote/ssh_int.h"

#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* ---- shell quoting ---------------------------------------------------------------- */

int ssh_shell_quote(struct buf *out, const char *s)
{
	int rc;

	if ((rc = buf_put(out, "'", 1)) != 0)
		return rc;
	for (; *s; s++) {
		if (*s == '\'')
			rc = buf_put(out, "'\\''", 4);
		else
			rc = buf_put(out, s, 1);
		if (rc)
			return rc;
	}
	return buf_put(out, "'", 1);
}

/* ---- command builder (see ssh_int.h) --------------------------------------------- */

void ssh_cmd_put(struct buf *b, const struct buf *src, int *rc)
{
	if (*rc == 0 && src->len)
		*rc = buf_put(b, src->ptr, src->len);
}

void ssh_cmd_puts(struct buf *b, const char *s, int *rc)
{
	if (*rc == 0)
		*rc = buf_puts(b, s);
}

void ssh_cmd_printf(struct buf *b, int *rc, const char *fmt, ...)
{
	va_list ap;

	if (*rc != 0)
		return;
	va_start(ap, fmt);
	*rc = buf_vprintf(b, fmt, ap);
	va_end(ap);
}

void ssh_cmd_quote(struct buf *b, const char *s, int *rc)
{
	if (*rc == 0)
		*rc = ssh_shell_quote(b, s);
}

/* ---- exec ----------------------------------------------------------------------------- */

static void chan_free(struct ssh_conn *c, LIBSSH2_CHANNEL *ch)
{
	struct err ignore = ERR_INIT;
	int rc;

	if (!ch || c->broken)
		return;   /* libssh2_session_free() frees what is left */
	NB_INT(c, &ignore, "closing a channel", rc, libssh2_channel_free(ch));
	(void)rc;
}

/* Append to b; when keep_head is set, bytes past b's max are dropped silently. */
static int put_out(struct buf *b, const char *p, size_t n, int keep_head)
{
	size_t room;

	if (!b)
		return 0;
	if (!keep_head)
		return buf_put(b, p, n);
	room = (b->max ? b->max : BUF_DEFAULT_MAX);
	room = room > b->len ? room - b->len : 0;
	return buf_put(b, p, n < room ? n : room);
}

/* The last line(s) of stderr, trimmed, for a message. */
const char *ssh_tail_of(const struct buf *b, char *tmp, size_t tmpsz)
{
	const char *s = b ? buf_cstr(b) : "";
	size_t n = strlen(s);

	while (n && (s[n - 1] == '\n' || s[n - 1] == ' ' || s[n - 1] == '\r'))
		n--;
	if (n >= tmpsz)
		s += n - (tmpsz - 1), n = tmpsz - 1;
	memcpy(tmp, s, n);
	tmp[n] = '\0';
	for (s = tmp; *s; s++)
		if (*s == '\n')
			tmp[s - tmp] = ' ';
	return n ? tmp : "(no output on stderr)";
}

int ssh_exec_run(struct ssh_conn *c, const char *cmd, struct buf *out, struct buf *errb,
		    int err_keep_head, int *status, struct err *e)
{
	LIBSSH2_CHANNEL *ch = NULL;
	char *tmp = NULL, *sig = NULL;
	size_t siglen = 0;
	int rc, failed;
	size_t cmdlen = strlen(cmd);

	*status = -1;
	if (cmdlen > UINT_MAX)
		return err_set(e, ROTOR_EINVALID, "%s: command too long", c->name);
	NB_PTR(c, e, "opening a channel", ch, libssh2_channel_open_session(c->s), failed);
	if (failed)
		return e ? e->code : ROTOR_ERROR;
	if (!ch)
		return ssh_lib_fail(c, e, libssh2_session_last_errno(c->s), "opening a channel");
	NB_INT(c, e, "starting a command", rc,
	       libssh2_channel_process_startup(ch, "exec", 4, cmd, (unsigned)cmdlen));
	if (rc == NB_WAITFAIL)
		goto fail_coded;
	if (rc != 0) {
		rc = ssh_lib_fail(c, e, rc, "starting a command");
		goto out;
	}
	NB_INT(c, e, "closing the command's input", rc, libssh2_channel_send_eof(ch));
	if (rc == NB_WAITFAIL)
		goto fail_coded;
	if (rc != 0) {
		rc = ssh_lib_fail(c, e, rc, "closing the command's input");
		goto out;
	}
	tmp = malloc(SSH_IO_CHUNK);
	if (!tmp) {
		rc = err_nomem(e);
		goto out;
	}
	for (;;) {
		ssize_t n1 = libssh2_channel_read(ch, tmp, SSH_IO_CHUNK);

		if (n1 > 0 && (rc = put_out(out, tmp, (size_t)n1, 0)) != 0) {
			rc = err_set(e, rc, "%s: command output over %zu bytes", c->name,
				     out->max ? out->max : BUF_DEFAULT_MAX);
			goto out;
		}
		ssize_t n2 = libssh2_channel_read_stderr(ch, tmp, SSH_IO_CHUNK);

		if (n2 > 0 && (rc = put_out(errb, tmp, (size_t)n2, err_keep_head)) != 0) {
			rc = err_set(e, rc, "%s: command error output over %zu bytes", c->name,
				     errb->max ? errb->max : BUF_DEFAULT_MAX);
			goto out;
		}
		if (n1 > 0 || n2 > 0)
			continue;
		if (n1 < 0 && n1 != LIBSSH2_ERROR_EAGAIN) {
			rc = ssh_lib_fail(c, e, (int)n1, "reading command output");
			goto out;
		}
		if (n2 < 0 && n2 != LIBSSH2_ERROR_EAGAIN) {
			rc = ssh_lib_fail(c, e, (int)n2, "reading command output");
			goto out;
		}
		if (n1 == 0 && n2 == 0 && libssh2_channel_eof(ch))
			break;
		if (n1 == LIBSSH2_ERROR_EAGAIN || n2 == LIBSSH2_ERROR_EAGAIN) {
			if (ssh_wait_io(c, "waiting for a command", e))
				goto fail_coded;
		}
	}
	NB_INT(c, e, "closing a channel", rc, libssh2_channel_close(ch));
	if (rc == NB_WAITFAIL)
		goto fail_coded;
	NB_INT(c, e, "waiting for a command to exit", rc, libssh2_channel_wait_closed(ch));
	if (rc == NB_WAITFAIL)
		goto fail_coded;
	if (rc != 0) {
		rc = ssh_lib_fail(c, e, rc, "waiting for a command to exit");
		goto out;
	}
	if (libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 &&
	    sig && siglen) {
		char t[200];

		rc = err_set(e, ROTOR_ERROR, "%s: command killed by signal SIG%.*s: %s", c->name,
			     (int)(siglen > 32 ? 32 : siglen), sig, ssh_tail_of(errb, t, sizeof(t)));
		goto out;
	}
	*status = libssh2_channel_get_exit_status(ch);
	rc = 0;
	goto out;
fail_coded:
	rc = e ? e->code : ROTOR_ERROR;
out:
	if (sig)
		libssh2_free(c->s, sig);
	if (tmp)
		secure_wipe(tmp, SSH_IO_CHUNK);   /* it carried file contents: keys on the sudo read path */
	free(tmp);
	chan_free(c, ch);
	return rc;
}

int ssh_exec(struct ssh_conn *c, const char *cmd, struct buf *out, struct buf *err_out,
	     int *exit_status, struct err *e)
{
	struct buf own = BUF_INIT;
	struct buf *errb = err_out ? err_out : &own;
	int status = -1, rc;

	if (exit_status)
		*exit_status = -1;
	if ((rc = ssh_usable(c, e)) != 0)
		return rc;
	if (!cmd)
		return err_set(e, ROTOR_EINVALID, "%s: no command", c->name);
	own.max = SSH_STDERR_KEEP;
	rc = ssh_exec_run(c, cmd, out, errb, errb == &own, &status, e);
	if (rc == 0) {
		if (exit_status) {
			*exit_status = status;
		} else if (status != 0) {
			char t[300];

			rc = err_set(e, ROTOR_ERROR, "%s: command `%.80s%s` exited with status %d: %s",
				     c->name, cmd, strlen(cmd) > 80 ? "..." : "", status,
				     ssh_tail_of(errb, t, sizeof(t)));
		}
	}
	buf_release(&own);
	return rc;
}

/* Run cmd; a non-zero exit becomes an error naming `what` with stderr. */
int ssh_exec_checked(struct ssh_conn *c, const char *cmd, const char *what, struct buf *out,
			struct buf *errb, struct err *e)
{
	int status, rc;
	char t[300];

	rc = ssh_exec_run(c, cmd, out, errb, 1, &status, e);
	if (rc)
		return rc;
	if (status != 0)
		return err_set(e, ROTOR_ERROR, "%s: %s failed (status %d): %s", c->name, what, status,
			       ssh_tail_of(errb, t, sizeof(t)));
	return 0;
}

/* ---- the sudo read path ------------------------------------------------------------- */

/* One unsigned number in base at *p, then the separator sep; *p moves past it. */
static int stat_field(const char **p, int base, char sep, unsigned long long max, unsigned long long *out)
{
	const char *s = *p;
	char *end;
	unsigned long long v;

	if (!((*s >= '0' && *s <= '9') || (base == 16 && ((*s >= 'a' && *s <= 'f') || (*s >= 'A' && *s <= 'F')))))
		return -1;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno == ERANGE || v > max || *end != sep)
		return -1;
	*out = v;
	*p = end + 1;
	return 0;
}

int ssh_parse_stat(const char *text, unsigned long long *size, unsigned int *rawmode, unsigned long *uid,
		   unsigned long *gid, long long *mtime)
{
	const char *p = text;
	unsigned long long v[4], t;
	int neg;

	if (stat_field(&p, 10, ' ', ULLONG_MAX, &v[0]) < 0 || stat_field(&p, 16, ' ', UINT_MAX, &v[1]) < 0 ||
	    stat_field(&p, 10, ' ', ULONG_MAX, &v[2]) < 0 || stat_field(&p, 10, ' ', ULONG_MAX, &v[3]) < 0)
		return -1;
	neg = *p == '-';
	p += neg;
	if (stat_field(&p, 10, '\n', neg ? (unsigned long long)LLONG_MAX + 1 : LLONG_MAX, &t) < 0 || *p)
		return -1;
	*size = v[0];
	*rawmode = (unsigned int)v[1];
	*uid = (unsigned long)v[2];
	*gid = (unsigned long)v[3];
	*mtime = neg ? (t == (unsigned long long)LLONG_MAX + 1 ? LLONG_MIN : -(long long)t) : (long long)t;
	return 0;
}

/* The login user may not read path: stat and cat it through sudo -n. */
int ssh_read_via_sudo(struct buf *out, struct ssh_conn *c, const char *path, size_t max,
		      struct ssh_stat *st_out, struct err *e)
{
	struct buf cmd = BUF_INIT, so = BUF_INIT, se = BUF_INIT, data = BUF_INIT;
	unsigned long long size = 0;
	unsigned int rawmode = 0;
	unsigned long uid = 0, gid = 0;
	long long mtime = 0;
	int status, rc = 0;

	se.max = SSH_STDERR_KEEP;
	so.max = 4096;
	ssh_cmd_puts(&cmd, "sudo -n stat -L -c '%s %f %u %g %Y' -- ", &rc);
	ssh_cmd_quote(&cmd, path, &rc);
	if (rc) {
		rc = ssh_buf_fail(c, e, rc, "building the sudo -n stat command");
		goto out;
	}
	rc = ssh_exec_run(c, buf_cstr(&cmd), &so, &se, 1, &status, e);
	if (rc)
		goto out;
	if (status != 0) {
		char t[300];

		if (strstr(buf_cstr(&se), "No such file"))
			rc = err_set(e, ROTOR_ENOTFOUND, "%s: %s: no such file", c->name, path);
		else
			rc = err_set(e, ROTOR_ERROR, "%s: cannot read %s (permission denied; sudo -n stat: %s)",
				     c->name, path, ssh_tail_of(&se, t, sizeof(t)));
		goto out;
	}
	if (ssh_parse_stat(buf_cstr(&so), &size, &rawmode, &uid, &gid, &mtime) < 0) {
		rc = err_set(e, ROTOR_ERROR, "%s: unexpected output of stat for %s", c->name, path);
		goto out;
	}
	if ((rawmode & S_IFMT) != S_IFREG) {
		rc = err_set(e, ROTOR_EINVALID, "%s: %s is not a regular file", c->name, path);
		goto out;
	}
	if (size > max) {
		rc = err_set(e, ROTOR_ETOOBIG, "%s: %s is %llu bytes, over the cap of %zu", c->name,
			     path, size, max);
		goto out;
	}
	buf_truncate(&cmd, 0);
	buf_truncate(&se, 0);
	ssh_cmd_puts(&cmd, "sudo -n cat -- ", &rc);
	ssh_cmd_quote(&cmd, path, &rc);
	if (rc) {
		rc = ssh_buf_fail(c, e, rc, "building the sudo -n cat command");
		goto out;
	}
	data.max = max ? max : 1;
	rc = ssh_exec_checked(c, buf_cstr(&cmd), "sudo -n cat", &data, &se, e);
	if (rc == ROTOR_ETOOBIG)
		rc = err_set(e, ROTOR_ETOOBIG, "%s: %s grew over the cap of %zu bytes", c->name, path, max);
	if (rc)
		goto out;
	if (data.len && (rc = buf_put(out, data.ptr, data.len)) != 0) {
		rc = err_set(e, rc, "%s: %s does not fit in the buffer", c->name, path);
		goto out;
	}
	if (st_out) {
		memset(st_out, 0, sizeof(*st_out));
		st_out->size = data.len;
		st_out->mode = rawmode & 07777;
		st_out->uid = uid;
		st_out->gid = gid;
		st_out->mtime = mtime;
	}
out:
	buf_release(&cmd);
	buf_release(&so);
	buf_release(&se);
	buf_wipe(&data);
	return rc;
}

