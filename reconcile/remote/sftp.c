/*
 * sftp.c -- SFTP reads (see ssh.h; ssh_int.h for the layout), and the
 * SFTP plumbing files.c uses for its writes.  ssh_read_file() reads
 * straight into the caller's buffer (no copy of the bytes is left
 * behind: buf grows by copy-and-wipe, and a failed read truncates
 * with a wipe); a file the login user may not open goes to the sudo
 * read path in exec.c.
 */
#include "reconcile/remote/ssh_int.h"

#include <stdio.h>
#include <string.h>

/* ---- SFTP plumbing (files.c writes with it too) ---------------------------- */

int ssh_sftp_ready(struct ssh_conn *c, struct err *e)
{
	int failed;

	if (c->sftp)
		return 0;
	NB_PTR(c, e, "starting SFTP", c->sftp, libssh2_sftp_init(c->s), failed);
	if (failed)
		return e ? e->code : ROTOR_ERROR;
	if (!c->sftp)
		return ssh_lib_fail(c, e, libssh2_session_last_errno(c->s), "starting SFTP");
	return 0;
}

const char *ssh_fx_text(unsigned long fx)
{
	switch (fx) {
	case LIBSSH2_FX_EOF: return "end of file";
	case LIBSSH2_FX_NO_SUCH_FILE: return "no such file";
	case LIBSSH2_FX_PERMISSION_DENIED: return "permission denied";
	case LIBSSH2_FX_FAILURE: return "failure";
	case LIBSSH2_FX_BAD_MESSAGE: return "bad message";
	case LIBSSH2_FX_OP_UNSUPPORTED: return "operation not supported";
	case LIBSSH2_FX_NO_SUCH_PATH: return "no such path";
	case LIBSSH2_FX_FILE_ALREADY_EXISTS: return "file already exists";
	case LIBSSH2_FX_WRITE_PROTECT: return "write protected";
	case LIBSSH2_FX_NO_SPACE_ON_FILESYSTEM: return "no space left on device";
	case LIBSSH2_FX_QUOTA_EXCEEDED: return "quota exceeded";
	case LIBSSH2_FX_NOT_A_DIRECTORY: return "not a directory";
	default: return "SFTP error";
	}
}

/* The SFTP status of the last failure, or (unsigned long)-1 when it was not one. */
unsigned long ssh_sftp_status(struct ssh_conn *c)
{
	if (c->sftp && libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_SFTP_PROTOCOL)
		return libssh2_sftp_last_error(c->sftp);
	return (unsigned long)-1;
}

int ssh_sftp_fail(struct ssh_conn *c, struct err *e, const char *what, const char *path)
{
	unsigned long fx = ssh_sftp_status(c);
	char ctx[SSH_PATH_MAX_LEN + 64];

	if (fx != (unsigned long)-1) {
		int code = fx == LIBSSH2_FX_NO_SUCH_FILE || fx == LIBSSH2_FX_NO_SUCH_PATH ?
			   ROTOR_ENOTFOUND : ROTOR_ERROR;

		return err_set(e, code, "%s: %s %s: %s", c->name, what, path, ssh_fx_text(fx));
	}
	snprintf(ctx, sizeof(ctx), "%s %s", what, path);
	return ssh_lib_fail(c, e, libssh2_session_last_errno(c->s), ctx);
}

void ssh_handle_close(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h)
{
	struct err ignore = ERR_INIT;
	int rc;

	if (!h || c->broken)
		return;   /* a broken session is torn down as a whole */
	NB_INT(c, &ignore, "closing a remote file", rc, libssh2_sftp_close_handle(h));
	(void)rc;
}

/* ---- read --------------------------------------------------------------------- */

int ssh_refuse_link(struct ssh_conn *c, const char *path, struct err *e)
{
	char target[256], shown[256];
	size_t i, n;
	int rc = -1;

	/* The target, when the login user may read the link: for the message only. */
	if (ssh_sftp_ready(c, NULL) == 0 && !c->broken) {
		struct err ignore = ERR_INIT;

		NB_INT(c, &ignore, "reading a symbolic link", rc,
		       libssh2_sftp_symlink_ex(c->sftp, path, (unsigned)strlen(path), target,
					       sizeof(target) - 1, LIBSSH2_SFTP_READLINK));
	}
	if (rc <= 0)
		return err_set(e, ROTOR_EINVALID, "%s: %s is a symbolic link, not a file rotor manages",
			       c->name, path);
	n = (size_t)rc < sizeof(shown) - 1 ? (size_t)rc : sizeof(shown) - 1;
	for (i = 0; i < n; i++)
		shown[i] = target[i] >= 0x20 && target[i] < 0x7f ? target[i] : '?';
	shown[n] = '\0';
	return err_set(e, ROTOR_EINVALID, "%s: %s is a symbolic link (to %s), not a file rotor manages",
		       c->name, path, shown);
}

static int stat_from_attrs(struct ssh_stat *st, const LIBSSH2_SFTP_ATTRIBUTES *a)
{
	memset(st, 0, sizeof(*st));
	if (a->flags & LIBSSH2_SFTP_ATTR_SIZE)
		st->size = a->filesize;
	if (a->flags & LIBSSH2_SFTP_ATTR_PERMISSIONS)
		st->mode = (unsigned)(a->permissions & 07777);
	if (a->flags & LIBSSH2_SFTP_ATTR_UIDGID) {
		st->uid = a->uid;
		st->gid = a->gid;
	}
	if (a->flags & LIBSSH2_SFTP_ATTR_ACMODTIME)
		st->mtime = (int64_t)a->mtime;
	return 0;
}

int ssh_read_file(struct buf *out, struct ssh_conn *c, const char *path, size_t max,
		  struct ssh_stat *st_out, struct err *e)
{
	LIBSSH2_SFTP_HANDLE *h = NULL;
	LIBSSH2_SFTP_ATTRIBUTES a;
	size_t start = out->len, total = 0;
	int rc, failed;

	if ((rc = ssh_usable(c, e)) != 0 || (rc = ssh_check_path(c, path, e)) != 0)
		return rc;
	if (c->ncache && (rc = ssh_cached_take(c, path, out, st_out, e)) <= 0)
		return rc;
	if ((rc = ssh_sftp_ready(c, e)) != 0)
		return rc;
	/* The path itself first: a symbolic link is refused, never followed. */
	memset(&a, 0, sizeof(a));
	NB_INT(c, e, "reading file attributes", rc,
	       libssh2_sftp_stat_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_SFTP_LSTAT, &a));
	if (rc == NB_WAITFAIL)
		return e ? e->code : ROTOR_ERROR;
	if (rc != 0) {
		if (ssh_sftp_status(c) == LIBSSH2_FX_PERMISSION_DENIED && c->become)
			return ssh_read_via_sudo(out, c, path, max, st_out, e);
		return ssh_sftp_fail(c, e, "cannot open", path);
	}
	if ((a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && LIBSSH2_SFTP_S_ISLNK(a.permissions))
		return ssh_refuse_link(c, path, e);
	/* Never opened: a FIFO would hold the server's SFTP process until the deadline. */
	if ((a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && !LIBSSH2_SFTP_S_ISREG(a.permissions))
		return err_set(e, ROTOR_EINVALID, "%s: %s is not a regular file", c->name, path);
	NB_PTR(c, e, "opening a remote file", h,
	       libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_FXF_READ, 0,
				    LIBSSH2_SFTP_OPENFILE), failed);
	if (failed)
		return e ? e->code : ROTOR_ERROR;
	if (!h) {
		if (ssh_sftp_status(c) == LIBSSH2_FX_PERMISSION_DENIED && c->become)
			return ssh_read_via_sudo(out, c, path, max, st_out, e);
		return ssh_sftp_fail(c, e, "cannot open", path);
	}
	memset(&a, 0, sizeof(a));
	NB_INT(c, e, "reading file attributes", rc, libssh2_sftp_fstat_ex(h, &a, 0));
	if (rc == NB_WAITFAIL) {
		rc = e ? e->code : ROTOR_ERROR;
		goto out;
	}
	if (rc != 0) {
		rc = ssh_sftp_fail(c, e, "cannot stat", path);
		goto out;
	}
	if ((a.flags & LIBSSH2_SFTP_ATTR_PERMISSIONS) && !LIBSSH2_SFTP_S_ISREG(a.permissions)) {
		rc = err_set(e, ROTOR_EINVALID, "%s: %s is not a regular file", c->name, path);
		goto out;
	}
	if ((a.flags & LIBSSH2_SFTP_ATTR_SIZE) && a.filesize > max) {
		rc = err_set(e, ROTOR_ETOOBIG, "%s: %s is %llu bytes, over the cap of %zu", c->name,
			     path, (unsigned long long)a.filesize, max);
		goto out;
	}
	for (;;) {
		/* Ask for one byte more than the cap: a file that grew is refused. */
		size_t want = SSH_IO_CHUNK, room = max - total;
		ssize_t n;

		if (room < SSH_IO_CHUNK)
			want = room + 1;
		if ((rc = buf_grow(out, want)) != 0) {
			rc = err_set(e, rc, "%s: %s does not fit in the buffer", c->name, path);
			goto out;
		}
		n = libssh2_sftp_read(h, out->ptr + out->len, want);
		if (n == LIBSSH2_ERROR_EAGAIN) {
			if (ssh_wait_io(c, "reading a remote file", e)) {
				rc = e ? e->code : ROTOR_ERROR;
				goto out;
			}
			continue;
		}
		if (n < 0) {
			rc = ssh_sftp_fail(c, e, "cannot read", path);
			goto out;
		}
		if (n == 0)
			break;
		out->len += (size_t)n;
		out->ptr[out->len] = '\0';
		total += (size_t)n;
		if (total > max) {
			rc = err_set(e, ROTOR_ETOOBIG, "%s: %s grew over the cap of %zu bytes", c->name,
				     path, max);
			goto out;
		}
	}
	if (st_out) {
		stat_from_attrs(st_out, &a);
		st_out->size = total;
	}
	rc = 0;
out:
	ssh_handle_close(c, h);
	if (rc)
		buf_truncate(out, start);
	return rc;
}

