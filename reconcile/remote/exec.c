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

/* ssh_exec_run() without forgetting what ssh_prefetch() read: for commands that only read. */
static int exec_run(struct ssh_conn *c, const char *cmd, struct buf *out, struct buf *errb, int err_keep_head,
		    int *status, struct err *e)
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

int ssh_exec_run(struct ssh_conn *c, const char *cmd, struct buf *out, struct buf *errb,
		 int err_keep_head, int *status, struct err *e)
{
	ssh_prefetch_drop(c);   /* a command may change what was read ahead */
	return exec_run(c, cmd, out, errb, err_keep_head, status, e);
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

/* The first field of the sudo read's stat line: device, inode and ctime, "[0-9:.]+". */
#define SUDO_STAT_ID_MAX 64
#define SUDO_STAT_LINE_MAX 256
#define SUDO_STAT_FMT "'%d:%i:%.9Z %s %f %u %g %Y'"

int ssh_parse_sudo_read(const char *p, size_t n, struct ssh_sudo_read *r)
{
	char rest[SUDO_STAT_LINE_MAX];
	const char *nl = memchr(p, '\n', n < SUDO_STAT_LINE_MAX ? n : SUDO_STAT_LINE_MAX);
	size_t line, id, i;

	memset(r, 0, sizeof(*r));
	if (!nl)
		return -1;
	line = (size_t)(nl - p) + 1;
	for (id = 0; id < line && p[id] != ' '; id++)
		if (!((p[id] >= '0' && p[id] <= '9') || p[id] == ':' || p[id] == '.'))
			return -1;
	if (id == 0 || id > SUDO_STAT_ID_MAX || id == line)
		return -1;
	/* The other five fields are stat's usual line (ssh_parse_stat). */
	for (i = id + 1; i < line; i++)
		if (p[i] == '\0')
			return -1;
	memcpy(rest, p + id + 1, line - id - 1);
	rest[line - id - 1] = '\0';
	if (ssh_parse_stat(rest, &r->size, &r->rawmode, &r->uid, &r->gid, &r->mtime) < 0)
		return -1;
	if (n == line)
		return 1;
	/* The file's bytes, then the very same line: nothing changed while cat read it. */
	if (r->size > n - line || n - line - r->size != line || memcmp(p + line + r->size, p, line) != 0)
		return 0;
	r->off = line;
	r->len = (size_t)r->size;
	return 2;
}

/*
 * The login user may not read path: one command through sudo -n that
 * never follows a symbolic link.  stat (without -L: the path itself),
 * then only when the path is no link and a regular file, cat, then stat
 * again; the two stat lines must be the same (device, inode, ctime to
 * the nanosecond, size, mode, owner, mtime), so bytes cat read through
 * a link put there for a moment, or from a file that changed, are
 * dropped (a rename away and back changes the ctime).
 */
int ssh_read_via_sudo(struct buf *out, struct ssh_conn *c, const char *path, size_t max,
		      struct ssh_stat *st_out, struct err *e)
{
	struct buf cmd = BUF_INIT, so = BUF_INIT, se = BUF_INIT;
	struct ssh_sudo_read r;
	char t[300];
	int status, rc = 0, parsed;

	se.max = SSH_STDERR_KEEP;
	so.max = max > SIZE_MAX - 2 * SUDO_STAT_LINE_MAX ? SIZE_MAX : max + 2 * SUDO_STAT_LINE_MAX;
	ssh_cmd_puts(&cmd, "sudo -n stat -c " SUDO_STAT_FMT " -- ", &rc);
	ssh_cmd_quote(&cmd, path, &rc);
	ssh_cmd_puts(&cmd, " && sudo -n test ! -h ", &rc);
	ssh_cmd_quote(&cmd, path, &rc);
	ssh_cmd_puts(&cmd, " -a -f ", &rc);
	ssh_cmd_quote(&cmd, path, &rc);
	ssh_cmd_puts(&cmd, " && sudo -n cat -- ", &rc);
	ssh_cmd_quote(&cmd, path, &rc);
	ssh_cmd_puts(&cmd, " && sudo -n stat -c " SUDO_STAT_FMT " -- ", &rc);
	ssh_cmd_quote(&cmd, path, &rc);
	if (rc) {
		rc = ssh_buf_fail(c, e, rc, "building the sudo -n read command");
		goto out;
	}
	rc = exec_run(c, buf_cstr(&cmd), &so, &se, 1, &status, e);   /* reads only: the rest read ahead stays */
	if (rc == ROTOR_ETOOBIG) {
		rc = err_set(e, ROTOR_ETOOBIG, "%s: %s is over the cap of %zu bytes", c->name, path, max);
		goto out;
	}
	if (rc)
		goto out;
	parsed = ssh_parse_sudo_read(so.ptr ? so.ptr : "", so.len, &r);
	if (parsed < 0) {
		if (status == 0)
			rc = err_set(e, ROTOR_ERROR, "%s: unexpected output of stat for %s", c->name, path);
		else if (strstr(buf_cstr(&se), "No such file"))
			rc = err_set(e, ROTOR_ENOTFOUND, "%s: %s: no such file", c->name, path);
		else
			rc = err_set(e, ROTOR_ERROR, "%s: cannot read %s (permission denied; sudo -n stat: %s)",
				     c->name, path, ssh_tail_of(&se, t, sizeof(t)));
		goto out;
	}
	if ((r.rawmode & S_IFMT) == S_IFLNK) {
		rc = ssh_refuse_link(c, path, e);
		goto out;
	}
	if ((r.rawmode & S_IFMT) != S_IFREG) {
		rc = err_set(e, ROTOR_EINVALID, "%s: %s is not a regular file", c->name, path);
		goto out;
	}
	if (r.size > max) {
		rc = err_set(e, ROTOR_ETOOBIG, "%s: %s is %llu bytes, over the cap of %zu", c->name,
			     path, r.size, max);
		goto out;
	}
	if (status != 0 || parsed != 2) {
		if (se.len)
			rc = err_set(e, ROTOR_ERROR, "%s: cannot read %s through sudo -n: %s", c->name, path,
				     ssh_tail_of(&se, t, sizeof(t)));
		else
			rc = err_set(e, ROTOR_ERROR, "%s: %s changed while it was read; nothing was kept",
				     c->name, path);
		goto out;
	}
	if (r.len && (rc = buf_put(out, so.ptr + r.off, r.len)) != 0) {
		rc = err_set(e, rc, "%s: %s does not fit in the buffer", c->name, path);
		goto out;
	}
	if (st_out) {
		memset(st_out, 0, sizeof(*st_out));
		st_out->size = r.size;
		st_out->mode = r.rawmode & 07777;
		st_out->uid = r.uid;
		st_out->gid = r.gid;
		st_out->mtime = r.mtime;
	}
out:
	buf_release(&cmd);
	buf_wipe(&so);   /* it held the file: a private key */
	buf_release(&se);
	return rc;
}
