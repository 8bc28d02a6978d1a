/*
 * files.c -- changing files on the host (see ssh.h; ssh_int.h for the
 * layout): stage (write a temporary file over SFTP, fsync, set its
 * mode), commit (backups, owners, then every rename back to back: over
 * SFTP's OpenSSH extensions when no sudo or owner is needed, else one
 * remote command), discard,
 * restore a backup, remove the backups, find what earlier writes left
 * (backups, temporary files: over SFTP where the login user can list the
 * directory, else one shell command).  Every command line is built with the ssh_cmd_*
 * builder, every argument shell-quoted, and checked once before it is
 * sent: a failed append is reported with its own code.
 */
#define _DEFAULT_SOURCE
#include "reconcile/remote/ssh_int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

/* ---- checks ---------------------------------------------------------------------- */

/* A user or group: a name as useradd accepts it, or a number. */
static int check_name(struct ssh_conn *c, const char *what, const char *s, struct err *e)
{
	const char *p;

	if (!s)
		return 0;
	if (!*s || strlen(s) > 64 || *s == '-')
		goto bad;
	for (p = s; *p; p++) {
		char ch = *p;

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '_' || ch == '-' || ch == '.' ||
		      (ch == '$' && p[1] == '\0')))
			goto bad;
	}
	return 0;
bad:
	return err_set(e, ROTOR_EINVALID, "%s: invalid %s name for chown: \"%s\"", c->name, what, s);
}

/* ---- staging ------------------------------------------------------------------- */

static int random_hex(char *out, size_t nbytes)
{
	unsigned char r[16];
	size_t i;

	if (nbytes > sizeof(r) || getrandom(r, nbytes, 0) != (ssize_t)nbytes)
		return -1;
	for (i = 0; i < nbytes; i++)
		snprintf(out + 2 * i, 3, "%02x", r[i]);
	return 0;
}


/*
 * A write that failed: OpenSSH's server answers a full disk with the
 * generic SSH_FX_FAILURE, so ask it (statvfs@openssh.com) whether the
 * file system has room left, and say so when it has none.
 */
static int write_fail(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h, const char *tmp, size_t left, struct err *e)
{
	LIBSSH2_SFTP_STATVFS sv;
	unsigned long fx = ssh_sftp_status(c);
	struct err ignore = ERR_INIT;
	int rc;

	if (fx != LIBSSH2_FX_FAILURE)
		return ssh_sftp_fail(c, e, "cannot write", tmp);
	memset(&sv, 0, sizeof(sv));
	NB_INT(c, &ignore, "asking for free space", rc, libssh2_sftp_fstatvfs(h, &sv));
	if (rc == 0 && sv.f_frsize && sv.f_bavail < (left + sv.f_frsize - 1) / sv.f_frsize)
		return err_set(e, ROTOR_ERROR, "%s: cannot write %s: no space left on device (%llu bytes free)",
			       c->name, tmp, (unsigned long long)(sv.f_bavail * sv.f_frsize));
	return err_set(e, ROTOR_ERROR, "%s: cannot write %s: failure", c->name, tmp);
}

/* "/dir/.base.rotor-tmp-<hex>" next to path. */
static int temp_name(struct ssh_conn *c, struct buf *out, const char *path, struct err *e)
{
	const char *slash = strrchr(path, '/');
	char hex[33];
	int rc;

	if (random_hex(hex, 8) != 0)
		return err_set(e, ROTOR_ERROR, "getrandom: %s", strerror(errno));
	if ((rc = buf_put(out, path, (size_t)(slash - path) + 1)) != 0 ||
	    (rc = buf_printf(out, ".%s.rotor-tmp-%s", slash + 1, hex)) != 0)
		return ssh_buf_fail(c, e, rc, "naming a temporary file");
	return 0;
}

static void remove_temp(struct ssh_conn *c, const char *tmp, const char *sudo)
{
	struct err ignore = ERR_INIT;
	struct buf cmd = BUF_INIT;
	int rc, status;

	if (c->broken)
		return;
	/* A new connection (a discard after the first one broke) has no SFTP yet. */
	if (ssh_sftp_ready(c, &ignore) == 0) {
		NB_INT(c, &ignore, "removing a temporary file", rc,
		       libssh2_sftp_unlink_ex(c->sftp, tmp, (unsigned)strlen(tmp)));
		if (rc == 0 || c->broken || !*sudo)
			return;
	}
	if (c->broken)
		return;
	/* It may belong to another user by now. */
	rc = 0;
	ssh_cmd_printf(&cmd, &rc, "%srm -f -- ", sudo);
	ssh_cmd_quote(&cmd, tmp, &rc);
	if (rc == 0)
		ssh_exec_run(c, buf_cstr(&cmd), NULL, NULL, 1, &status, &ignore);
	buf_release(&cmd);
}

static int resolve_become(const struct ssh_conn *c, int become)
{
	return become < 0 ? 0 : become > 0 ? 1 : c->become;
}

int ssh_stage_file(struct ssh_conn *c, const char *path, const void *data, size_t len,
		   const struct ssh_write_opts *wo, struct ssh_staged *out, struct err *e)
{
	static const struct ssh_write_opts defaults;
	LIBSSH2_SFTP_HANDLE *h = NULL;
	LIBSSH2_SFTP_ATTRIBUTES a;
	struct buf tmp = BUF_INIT;
	const char *sudo, *p = data;
	const char *base;
	size_t done = 0;
	int rc, failed, created = 0, may_exist = 0;

	memset(out, 0, sizeof(*out));
	ssh_prefetch_drop(c);   /* what was read ahead may be about to change */
	if (!wo)
		wo = &defaults;
	if ((rc = ssh_usable(c, e)) != 0 || (rc = ssh_check_path(c, path, e)) != 0 ||
	    (rc = check_name(c, "owner", wo->owner, e)) != 0 ||
	    (rc = check_name(c, "group", wo->group, e)) != 0)
		return rc;
	base = strrchr(path, '/') + 1;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return err_set(e, ROTOR_EINVALID, "%s: not a file path: %s", c->name, path);
	if (!data && len)
		return err_set(e, ROTOR_EINVALID, "%s: no data for %s", c->name, path);
	sudo = resolve_become(c, wo->become) ? "sudo -n " : "";
	if ((rc = ssh_sftp_ready(c, e)) != 0)
		return rc;
	if ((rc = temp_name(c, &tmp, path, e)) != 0)
		goto out;
	may_exist = 1;   /* from here on: the server may have made it even if its answer was lost */
	/* Two rounds of requests when the server takes them; else libssh2's calls below. */
	rc = ssh_sftp_write_new(c, buf_cstr(&tmp), data, len, wo->mode ? (wo->mode & 07777) : 0600, &created, e);
	if (rc == 0)
		goto staged;
	if (rc < 0)
		goto out;
	NB_PTR(c, e, "creating a temporary file", h,
	       libssh2_sftp_open_ex(c->sftp, buf_cstr(&tmp), (unsigned)tmp.len,
				    LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL, 0600,
				    LIBSSH2_SFTP_OPENFILE), failed);
	if (failed) {
		rc = e ? e->code : ROTOR_ERROR;
		goto out;
	}
	if (!h) {
		rc = ssh_sftp_fail(c, e, "cannot create temporary file", buf_cstr(&tmp));
		goto out;
	}
	created = 1;
	while (done < len) {
		ssize_t n = libssh2_sftp_write(h, p + done, len - done);

		if (n == LIBSSH2_ERROR_EAGAIN) {
			if (ssh_wait_io(c, "writing a remote file", e)) {
				rc = e ? e->code : ROTOR_ERROR;
				goto out;
			}
			continue;
		}
		if (n < 0) {
			rc = write_fail(c, h, buf_cstr(&tmp), len - done, e);
			goto out;
		}
		done += (size_t)n;
	}
	NB_INT(c, e, "syncing a remote file", rc, libssh2_sftp_fsync(h));
	if (rc == NB_WAITFAIL) {
		rc = e ? e->code : ROTOR_ERROR;
		goto out;
	}
	if (rc != 0 && ssh_sftp_status(c) != LIBSSH2_FX_OP_UNSUPPORTED) {
		rc = ssh_sftp_fail(c, e, "cannot fsync", buf_cstr(&tmp));
		goto out;
	}
	/* The create mode went through the server's umask; set it exactly. */
	memset(&a, 0, sizeof(a));
	a.flags = LIBSSH2_SFTP_ATTR_PERMISSIONS;
	a.permissions = wo->mode ? (wo->mode & 07777) : 0600;
	NB_INT(c, e, "setting a file mode", rc, libssh2_sftp_fstat_ex(h, &a, 1));
	if (rc == NB_WAITFAIL) {
		rc = e ? e->code : ROTOR_ERROR;
		goto out;
	}
	if (rc != 0) {
		rc = ssh_sftp_fail(c, e, "cannot set the mode of", buf_cstr(&tmp));
		goto out;
	}
	NB_INT(c, e, "closing a remote file", rc, libssh2_sftp_close_handle(h));
	h = NULL;
	if (rc == NB_WAITFAIL) {
		rc = e ? e->code : ROTOR_ERROR;
		goto out;
	}
	if (rc != 0) {
		rc = ssh_sftp_fail(c, e, "cannot close", buf_cstr(&tmp));
		goto out;
	}
staged:
	if (!(out->path = strdup(path)) || (wo->owner && !(out->owner = strdup(wo->owner))) ||
	    (wo->group && !(out->group = strdup(wo->group)))) {
		ssh_staged_release(out);
		rc = err_nomem(e);
		goto out;
	}
	out->tmp = buf_detach(&tmp);
	out->backup = wo->backup;
	out->sudo = sudo[0] != '\0';
	created = 0;   /* the caller commits or discards it */
	rc = 0;
out:
	if (h)
		ssh_handle_close(c, h);
	if (created && rc)
		remove_temp(c, buf_cstr(&tmp), sudo);
	/* A broken connection removes nothing: name the file for a discard over another one. */
	if (rc && may_exist && c->broken) {
		if ((out->path = strdup(path)) != NULL && (out->tmp = buf_detach(&tmp)) != NULL)
			out->sudo = sudo[0] != '\0';
		else
			ssh_staged_release(out);
	}
	if (rc && e)
		err_prefix(e, "writing %s", path);
	buf_release(&tmp);
	return rc;
}

void ssh_staged_release(struct ssh_staged *st)
{
	free(st->path);
	free(st->tmp);
	free(st->owner);
	free(st->group);
	memset(st, 0, sizeof(*st));
}

size_t ssh_staged_discard(struct ssh_conn *c, struct ssh_staged *v, size_t n)
{
	size_t i, left = 0;

	for (i = 0; i < n; i++) {
		if (v[i].tmp && !v[i].committed) {
			if (!c || ssh_usable(c, NULL) != 0) {
				left++;         /* kept for a discard over another connection */
				continue;
			}
			remove_temp(c, v[i].tmp, v[i].sudo ? "sudo -n " : "");
		}
		ssh_staged_release(&v[i]);
	}
	return left;
}

/* PATH.rotor-bak as a new string; NULL when out of memory. */
static char *backup_of(const char *path)
{
	size_t pl = strlen(path);
	char *b = malloc(pl + sizeof(SSH_BACKUP_SUFFIX));

	if (b) {
		memcpy(b, path, pl);
		memcpy(b + pl, SSH_BACKUP_SUFFIX, sizeof(SSH_BACKUP_SUFFIX));
	}
	return b;
}

/*
 * The login user's files without a command: over SFTP, through OpenSSH's
 * extensions.  Each previous file's backup is a hard link to it
 * (hardlink@openssh.com; PATH.rotor-bak removed first), then every
 * temporary file is renamed over its path (posix-rename@openssh.com),
 * all renames sent at once, so the server does them back to back.
 * Returns 0 (each renamed file marked committed), 1 when this cannot be
 * done here and the command should do it (an extension missing, a link
 * refused, anything unusual at PATH.rotor-bak: nothing renamed yet), or
 * a negative code: a rename failed (the earlier ones stay, marked) or
 * the connection broke.
 */
static int commit_by_sftp(struct ssh_conn *c, struct ssh_staged *v, size_t n, struct err *e)
{
	struct ssh_sftp_ext *ops;
	char **baks;
	size_t i, nl = 0;
	int rc = 1;

	if (c->no_sftp_ext || ssh_sftp_ready(c, NULL) != 0)
		return 1;
	ops = calloc(n ? n : 1, sizeof(*ops));
	baks = calloc(n ? n : 1, sizeof(*baks));
	if (!ops || !baks) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < n; i++) {
		LIBSSH2_SFTP_ATTRIBUTES a;
		size_t pl = strlen(v[i].path);
		int r;

		if (!v[i].backup)
			continue;
		/* No previous file (nor link): no backup, and an old one stays. */
		memset(&a, 0, sizeof(a));
		NB_INT(c, e, "reading file attributes", r,
		       libssh2_sftp_stat_ex(c->sftp, v[i].path, (unsigned)pl, LIBSSH2_SFTP_LSTAT, &a));
		if (r == NB_WAITFAIL) {
			rc = e ? e->code : ROTOR_ERROR;
			goto out;
		}
		if (r != 0) {
			if (ssh_sftp_status(c) != LIBSSH2_FX_NO_SUCH_FILE)
				goto out;
			continue;
		}
		if (!(baks[nl] = backup_of(v[i].path))) {
			rc = err_nomem(e);
			goto out;
		}
		/* A directory at PATH.rotor-bak fails here, and the command says so. */
		NB_INT(c, e, "removing an old backup", r,
		       libssh2_sftp_unlink_ex(c->sftp, baks[nl], (unsigned)(pl + sizeof(SSH_BACKUP_SUFFIX) - 1)));
		if (r == NB_WAITFAIL) {
			rc = e ? e->code : ROTOR_ERROR;
			goto out;
		}
		if (r != 0 && ssh_sftp_status(c) != LIBSSH2_FX_NO_SUCH_FILE)
			goto out;
		ops[nl].op = "hardlink@openssh.com";
		ops[nl].a = v[i].path;
		ops[nl].b = baks[nl];
		nl++;
	}
	if ((rc = ssh_sftp_ext_batch(c, ops, nl, e)) != 0)
		goto out;
	rc = 1;
	for (i = 0; i < nl; i++)
		if (ops[i].status != LIBSSH2_FX_OK) {
			/* No such extension, or a file system that refuses links: the command copies. */
			if (ops[i].status == LIBSSH2_FX_OP_UNSUPPORTED)
				c->no_sftp_ext = 1;
			goto out;
		}
	for (i = 0; i < n; i++) {
		ops[i].op = "posix-rename@openssh.com";
		ops[i].a = v[i].tmp;
		ops[i].b = v[i].path;
	}
	if ((rc = ssh_sftp_ext_batch(c, ops, n, e)) != 0)
		goto out;
	for (i = 0; i < n && ops[i].status == LIBSSH2_FX_OK; i++)
		v[i].committed = 1;
	rc = 0;
	if (i < n) {
		if (i == 0 && ops[0].status == LIBSSH2_FX_OP_UNSUPPORTED) {
			c->no_sftp_ext = 1;
			rc = 1;
		} else {
			rc = err_set(e, ROTOR_ERROR, "%s: replacing the files: rename %s: %s", c->name, v[i].path,
				     ssh_fx_text(ops[i].status));
		}
		/* What came after the failed one: also put in place, or not. */
		for (i++; i < n; i++)
			v[i].committed = ops[i].status == LIBSSH2_FX_OK;
	}
out:
	for (i = 0; baks && i < n; i++)
		free(baks[i]);
	free(baks);
	free(ops);
	return rc;
}

/*
 * Backups and owners first, then every rename back to back: over SFTP
 * (above), or in one perl process when no sudo is needed but SFTP could
 * not do it (Debian's perl-base is Essential), so a
 * reader never sees a new certificate beside an old key for longer than
 * two rename() calls; else one mv after the other.
 */
int ssh_commit_staged(struct ssh_conn *c, struct ssh_staged *v, size_t n, struct err *e)
{
	struct buf cmd = BUF_INIT, se = BUF_INIT, bak = BUF_INIT, renames = BUF_INIT, args = BUF_INIT;
	size_t i;
	int rc = 0, any_sudo = 0, any_owner = 0;

	ssh_prefetch_drop(c);
	if ((rc = ssh_usable(c, e)) != 0)
		return rc;
	for (i = 0; i < n; i++) {
		any_sudo |= v[i].sudo;
		any_owner |= v[i].owner || v[i].group;
	}
	if (!any_sudo && !any_owner && (rc = commit_by_sftp(c, v, n, e)) <= 0)
		return rc;
	rc = 0;
	se.max = SSH_STDERR_KEEP;
	for (i = 0; i < n && rc == 0; i++) {
		const char *sudo = v[i].sudo ? "sudo -n " : "";

		if (v[i].backup) {
			buf_release(&bak);
			ssh_cmd_printf(&bak, &rc, "%s%s", v[i].path, SSH_BACKUP_SUFFIX);
			/*
			 * The backup's old name is removed first: cp opens an existing
			 * destination and writes through it, so a symlink planted at
			 * PATH.rotor-bak by the service's user would point a root cp at
			 * any file.  -P copies a symlink at PATH as the link itself.
			 */
			ssh_cmd_puts(&cmd, "{ { test ! -e ", &rc);
			ssh_cmd_quote(&cmd, v[i].path, &rc);
			ssh_cmd_puts(&cmd, " && test ! -L ", &rc);
			ssh_cmd_quote(&cmd, v[i].path, &rc);
			ssh_cmd_printf(&cmd, &rc, "; } || { %srm -f -- ", sudo);
			ssh_cmd_quote(&cmd, buf_cstr(&bak), &rc);
			ssh_cmd_printf(&cmd, &rc, " && %scp -P -p -- ", sudo);
			ssh_cmd_quote(&cmd, v[i].path, &rc);
			ssh_cmd_puts(&cmd, " ", &rc);
			ssh_cmd_quote(&cmd, buf_cstr(&bak), &rc);
			ssh_cmd_puts(&cmd, "; }; } && ", &rc);
		}
		if (v[i].owner || v[i].group) {
			struct buf spec = BUF_INIT;

			ssh_cmd_printf(&spec, &rc, "%s%s%s", v[i].owner ? v[i].owner : "",
				       v[i].group ? ":" : "", v[i].group ? v[i].group : "");
			ssh_cmd_printf(&cmd, &rc, "%schown ", sudo);
			ssh_cmd_quote(&cmd, buf_cstr(&spec), &rc);
			ssh_cmd_puts(&cmd, " -- ", &rc);
			ssh_cmd_quote(&cmd, v[i].tmp, &rc);
			ssh_cmd_puts(&cmd, " && ", &rc);
			buf_release(&spec);
		}
		ssh_cmd_printf(&renames, &rc, "%s%smv -f -- ", i ? " && " : "", sudo);
		ssh_cmd_quote(&renames, v[i].tmp, &rc);
		ssh_cmd_puts(&renames, " ", &rc);
		ssh_cmd_quote(&renames, v[i].path, &rc);
		ssh_cmd_puts(&args, " ", &rc);
		ssh_cmd_quote(&args, v[i].tmp, &rc);
		ssh_cmd_puts(&args, " ", &rc);
		ssh_cmd_quote(&args, v[i].path, &rc);
		ssh_cmd_puts(&args, v[i].backup ? " 1" : " 0", &rc);
	}
	if (!any_sudo && !any_owner) {
		/*
		 * The login user's files: one perl process does it all (a fork is
		 * most of a command's cost).  The backup is a hard link to the old
		 * file (same bytes, mode, owner and times; a symlink stays a link;
		 * a name already there is removed first, a directory refused), a
		 * copy when the file system refuses the link; then the renames,
		 * back to back.  Without perl, the shell does the same with cp and mv.
		 */
		buf_release(&bak);
		ssh_cmd_puts(&bak, "if command -v perl >/dev/null 2>&1; then exec perl -e '"
			     "for (my $i = 0; $i < @ARGV; $i += 3) { my ($p, $k) = @ARGV[$i + 1, $i + 2]; "
			     "next unless $k && (-e $p || -l $p); my $b = \"$p" SSH_BACKUP_SUFFIX "\"; "
			     "die \"backup $b: a directory\\n\" if -d $b && !-l $b; unlink $b; "
			     "link($p, $b) or system(\"cp\", \"-P\", \"-p\", \"--\", $p, $b) == 0 "
			     "or die \"backup $p: $!\\n\" } "
			     "for (my $i = 0; $i < @ARGV; $i += 3) { rename($ARGV[$i], $ARGV[$i + 1]) "
			     "or die \"rename $ARGV[$i + 1]: $!\\n\" }' --", &rc);
		ssh_cmd_put(&bak, &args, &rc);
		ssh_cmd_puts(&bak, "; fi; ", &rc);
		ssh_cmd_put(&bak, &cmd, &rc);
		ssh_cmd_put(&bak, &renames, &rc);
		buf_release(&cmd);
		ssh_cmd_put(&cmd, &bak, &rc);
	} else {
		ssh_cmd_put(&cmd, &renames, &rc);
	}
	if (rc) {
		rc = ssh_buf_fail(c, e, rc, "building the command that replaces the files");
		goto out;
	}
	rc = ssh_exec_checked(c, buf_cstr(&cmd), "replacing the files", NULL, &se, e);
	if (rc == 0)
		for (i = 0; i < n; i++)
			v[i].committed = 1;
out:
	buf_release(&cmd);
	buf_release(&se);
	buf_release(&bak);
	buf_release(&renames);
	buf_release(&args);
	return rc;
}

int ssh_write_file_atomic(struct ssh_conn *c, const char *path, const void *data, size_t len,
			  const struct ssh_write_opts *wo, struct err *e)
{
	struct ssh_staged st;
	int rc;

	if ((rc = ssh_stage_file(c, path, data, len, wo, &st, e)) != 0) {
		ssh_staged_release(&st);
		return rc;
	}
	rc = ssh_commit_staged(c, &st, 1, e);
	if (rc && e)
		err_prefix(e, "writing %s", path);
	if (ssh_staged_discard(c, &st, 1))
		ssh_staged_release(&st);    /* the connection broke: nothing more can be done on it */
	return rc;
}

int ssh_restore_backup(struct ssh_conn *c, const char *path, int become, struct err *e)
{
	struct buf tmp = BUF_INIT, cmd = BUF_INIT, se = BUF_INIT, bak = BUF_INIT;
	const char *sudo;
	int rc, status;

	if ((rc = ssh_usable(c, e)) != 0 || (rc = ssh_check_path(c, path, e)) != 0)
		return rc;
	sudo = resolve_become(c, become) ? "sudo -n " : "";
	se.max = SSH_STDERR_KEEP;
	if ((rc = temp_name(c, &tmp, path, e)) != 0)
		goto out;
	ssh_cmd_printf(&bak, &rc, "%s%s", path, SSH_BACKUP_SUFFIX);
	ssh_cmd_printf(&cmd, &rc, "if %scp -P -p -- ", sudo);   /* tmp is a fresh name; a symlink comes back as one */
	ssh_cmd_quote(&cmd, buf_cstr(&bak), &rc);
	ssh_cmd_puts(&cmd, " ", &rc);
	ssh_cmd_quote(&cmd, buf_cstr(&tmp), &rc);
	ssh_cmd_printf(&cmd, &rc, "; then %smv -f -- ", sudo);
	ssh_cmd_quote(&cmd, buf_cstr(&tmp), &rc);
	ssh_cmd_puts(&cmd, " ", &rc);
	ssh_cmd_quote(&cmd, path, &rc);
	ssh_cmd_printf(&cmd, &rc, " || { %srm -f -- ", sudo);
	ssh_cmd_quote(&cmd, buf_cstr(&tmp), &rc);
	ssh_cmd_puts(&cmd, "; exit 1; }; else exit 1; fi", &rc);
	if (rc) {
		rc = ssh_buf_fail(c, e, rc, "building the restore command");
		goto out;
	}
	rc = ssh_exec_run(c, buf_cstr(&cmd), NULL, &se, 1, &status, e);
	if (rc)
		goto out;
	if (status != 0) {
		char t[300];

		if (strstr(buf_cstr(&se), "No such file") && strstr(buf_cstr(&se), SSH_BACKUP_SUFFIX))
			rc = err_set(e, ROTOR_ENOTFOUND, "%s: no backup %s to restore", c->name,
				     buf_cstr(&bak));
		else
			rc = err_set(e, ROTOR_ERROR, "%s: restoring %s from %s failed: %s", c->name,
				     path, buf_cstr(&bak), ssh_tail_of(&se, t, sizeof(t)));
	}
out:
	buf_release(&tmp);
	buf_release(&cmd);
	buf_release(&se);
	buf_release(&bak);
	return rc;
}

/* A usable connection and n paths ssh_check_path() accepts. */
static int check_paths(struct ssh_conn *c, const char *const *paths, size_t n, struct err *e)
{
	size_t i;
	int rc;

	if ((rc = ssh_usable(c, e)) != 0)
		return rc;
	for (i = 0; i < n; i++)
		if ((rc = ssh_check_path(c, paths[i], e)) != 0)
			return rc;
	return 0;
}

/*
 * The login user's backups (no sudo for any of them) removed over SFTP,
 * without a command: 0 (*removed counts them), 1 when the command must
 * do it (sudo, a server without rotor's own requests, an answer other
 * than removed or not there: a directory at the name, say; what was
 * removed here is counted, and the command finds it gone), or the code
 * of a broken connection.
 */
static int remove_backups_by_sftp(struct ssh_conn *c, const char *const *paths, const int *become, size_t n,
				  size_t *removed, struct err *e)
{
	char **baks = calloc(n, sizeof(*baks));
	unsigned long *st = calloc(n, sizeof(*st));
	size_t i;
	int rc = 1;

	if (!baks || !st) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < n; i++)
		if (resolve_become(c, become ? become[i] : 0))
			goto out;
	for (i = 0; i < n; i++)
		if (!(baks[i] = backup_of(paths[i]))) {
			rc = err_nomem(e);
			goto out;
		}
	if (ssh_sftp_ready(c, NULL) != 0 || (rc = ssh_sftp_remove_batch(c, (const char *const *)baks, n, st, e)) != 0)
		goto out;
	rc = 0;
	for (i = 0; i < n; i++) {
		if (st[i] == LIBSSH2_FX_OK)
			(*removed)++;
		else if (st[i] != LIBSSH2_FX_NO_SUCH_FILE && st[i] != LIBSSH2_FX_NO_SUCH_PATH)
			rc = 1;
	}
out:
	for (i = 0; baks && i < n; i++)
		free(baks[i]);
	free(baks);
	free(st);
	return rc;
}

int ssh_remove_backups(struct ssh_conn *c, const char *const *paths, const int *become, size_t n,
		       size_t *removed, struct err *e)
{
	struct buf cmd = BUF_INIT, so = BUF_INIT, se = BUF_INIT, bak = BUF_INIT;
	const char *p;
	size_t i;
	int rc;

	*removed = 0;
	if ((rc = check_paths(c, paths, n, e)) != 0 || n == 0)
		return rc;
	/* The login user's own, over SFTP; else (or what SFTP left) one command. */
	if ((rc = remove_backups_by_sftp(c, paths, become, n, removed, e)) <= 0)
		return rc;
	rc = 0;
	se.max = SSH_STDERR_KEEP;
	so.max = 4 * n + 16;
	/* One line "r" per backup removed; the first rm that fails stops the command. */
	for (i = 0; i < n && rc == 0; i++) {
		buf_truncate(&bak, 0);
		ssh_cmd_printf(&bak, &rc, "%s%s", paths[i], SSH_BACKUP_SUFFIX);
		ssh_cmd_puts(&cmd, "if test -e ", &rc);
		ssh_cmd_quote(&cmd, buf_cstr(&bak), &rc);
		ssh_cmd_puts(&cmd, " || test -L ", &rc);
		ssh_cmd_quote(&cmd, buf_cstr(&bak), &rc);
		ssh_cmd_printf(&cmd, &rc, "; then %srm -f -- ", resolve_become(c, become ? become[i] : 0) ? "sudo -n " : "");
		ssh_cmd_quote(&cmd, buf_cstr(&bak), &rc);
		ssh_cmd_puts(&cmd, " || exit 1; echo r; fi; ", &rc);
	}
	ssh_cmd_puts(&cmd, "exit 0", &rc);
	if (rc) {
		rc = ssh_buf_fail(c, e, rc, "building the command that removes the backups");
		goto out;
	}
	rc = ssh_exec_checked(c, buf_cstr(&cmd), "removing the backups", &so, &se, e);
	/* Count what was removed, also when a later rm failed. */
	for (p = buf_cstr(&so); p[0] == 'r' && p[1] == '\n'; p += 2)
		(*removed)++;
	if (rc == 0 && *p)
		rc = err_set(e, ROTOR_ERROR, "%s: unexpected output while removing the backups", c->name);
out:
	buf_release(&cmd);
	buf_release(&so);
	buf_release(&se);
	buf_release(&bak);
	return rc;
}

int ssh_remove_temps(struct ssh_conn *c, const char *const *temps, size_t n, size_t *removed, struct err *e)
{
	struct buf cmd = BUF_INIT, so = BUF_INIT, se = BUF_INIT;
	const char *p, *base;
	size_t i;
	int rc;

	*removed = 0;
	if ((rc = check_paths(c, temps, n, e)) != 0)
		return rc;
	for (i = 0; i < n; i++) {
		base = strrchr(temps[i], '/') + 1;
		if (base[0] != '.' || !strstr(base, ".rotor-tmp-") || strchr(base, '?'))
			return err_set(e, ROTOR_EINVALID, "%s: %s is not a temporary file rotor names", c->name,
				       temps[i]);
	}
	if (n == 0)
		return 0;
	se.max = SSH_STDERR_KEEP;
	so.max = 4 * n + 16;
	/* As the login user, who created them in directories it may write. */
	for (i = 0; i < n && rc == 0; i++) {
		ssh_cmd_puts(&cmd, "if test -e ", &rc);
		ssh_cmd_quote(&cmd, temps[i], &rc);
		ssh_cmd_puts(&cmd, "; then rm -f -- ", &rc);
		ssh_cmd_quote(&cmd, temps[i], &rc);
		ssh_cmd_puts(&cmd, " || exit 1; echo r; fi; ", &rc);
	}
	ssh_cmd_puts(&cmd, "exit 0", &rc);
	if (rc) {
		rc = ssh_buf_fail(c, e, rc, "building the command that removes temporary files");
		goto out;
	}
	rc = ssh_exec_checked(c, buf_cstr(&cmd), "removing temporary files", &so, &se, e);
	for (p = buf_cstr(&so); p[0] == 'r' && p[1] == '\n'; p += 2)
		(*removed)++;
	if (rc == 0 && *p)
		rc = err_set(e, ROTOR_ERROR, "%s: unexpected output while removing temporary files", c->name);
out:
	buf_release(&cmd);
	buf_release(&so);
	buf_release(&se);
	return rc;
}

/* ---- strays: backups and temporary files left next to managed files ---- */

/*
 * Run with $1 = the file's index, $2 = its path: "I b" when PATH.rotor-bak
 * exists, "I t SUFFIX" for each .BASE.rotor-tmp-SUFFIX in its directory
 * (SUFFIX "?" when it is empty or holds other bytes than [0-9A-Za-z_-]).
 */
#define STRAY_SCRIPT                                                                               \
	"f() { i=$1; p=$2; d=${p%/*}; b=${p##*/}; "                                                \
	"if test -e \"$p.rotor-bak\" || test -L \"$p.rotor-bak\"; then echo \"$i b\"; fi; "         \
	"for f in \"$d/.$b.rotor-tmp-\"*; do "                                                     \
	"if test -e \"$f\" || test -L \"$f\"; then s=${f##*.rotor-tmp-}; "                          \
	"case $s in \"\"|*[!0-9A-Za-z_-]*) echo \"$i t ?\";; *) echo \"$i t $s\";; esac; fi; done; }; " \
	"while [ $# -ge 2 ]; do f \"$1\" \"$2\" || exit 1; shift 2; done"

static int add_stray(char ***v, size_t *nv, const char *path, const char *suffix, size_t slen, int backup)
{
	const char *slash = strrchr(path, '/');
	struct buf b = BUF_INIT;
	char **nvp;

	if (backup)
		buf_printf(&b, "%s%s", path, SSH_BACKUP_SUFFIX);
	else if (slash) {
		buf_put(&b, path, (size_t)(slash - path) + 1);
		buf_printf(&b, ".%s.rotor-tmp-%.*s", slash + 1, (int)slen, suffix);
	}
	if (b.err || !b.len || !(nvp = realloc(*v, (*nv + 2) * sizeof(*nvp)))) {
		buf_release(&b);
		return ROTOR_ENOMEM;
	}
	*v = nvp;
	(*v)[(*nv)++] = buf_detach(&b);
	(*v)[*nv] = NULL;
	return 0;
}

void ssh_strays_free(char **v, size_t n)
{
	size_t i;

	for (i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
}

int ssh_parse_strays(const char *text, const char *const *paths, size_t n, char ***out, size_t *nout)
{
	const char *p = text;
	char **v = NULL;
	size_t nv = 0;
	int rc = -1;

	*out = NULL;
	*nout = 0;
	while (*p) {
		unsigned long long idx;
		const char *s;
		char *end;
		size_t slen = 0;
		int backup;

		if (*p < '0' || *p > '9' || (p[0] == '0' && p[1] >= '0' && p[1] <= '9'))
			goto bad;
		errno = 0;
		idx = strtoull(p, &end, 10);
		if (errno == ERANGE || idx >= n || *end != ' ')
			goto bad;
		p = end + 1;
		if (p[0] == 'b' && p[1] == '\n') {
			backup = 1;
			s = p;
			p += 2;
		} else if (p[0] == 't' && p[1] == ' ') {
			backup = 0;
			s = p += 2;
			if (s[0] == '?' && s[1] == '\n') {
				slen = 1;
			} else {
				for (; (s[slen] >= '0' && s[slen] <= '9') || (s[slen] >= 'a' && s[slen] <= 'z') ||
				       (s[slen] >= 'A' && s[slen] <= 'Z') || s[slen] == '_' || s[slen] == '-';
				     slen++)
					;
				if (!slen || s[slen] != '\n')
					goto bad;
			}
			p += slen + 1;
		} else {
			goto bad;
		}
		if (add_stray(&v, &nv, paths[idx], s, slen, backup) < 0) {
			rc = ROTOR_ENOMEM;
			goto bad;
		}
	}
	*out = v;
	*nout = nv;
	return 0;
bad:
	ssh_strays_free(v, nv);
	return rc;
}

/* Does name (len bytes) belong in a STRAY_SCRIPT suffix: [0-9A-Za-z_-]+? */
static int stray_suffix_ok(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++)
		if (!((name[i] >= '0' && name[i] <= '9') || (name[i] >= 'a' && name[i] <= 'z') ||
		      (name[i] >= 'A' && name[i] <= 'Z') || name[i] == '_' || name[i] == '-'))
			return 0;
	return len > 0;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/*
 * The entries of directory dir as the login user lists them over SFTP,
 * sorted (as a shell's glob in the C locale): 0 and *names (NULL-ended;
 * none when dir does not exist), 1 when SFTP cannot list it (permission,
 * an unusual name: the caller asks the shell), <0 when waiting failed.
 */
static int sftp_list_dir(struct ssh_conn *c, const char *dir, char ***names, size_t *nnames, struct err *e)
{
	LIBSSH2_SFTP_HANDLE *h;
	LIBSSH2_SFTP_ATTRIBUTES a;
	char name[1024], **v = NULL, **nv;
	size_t n = 0;
	int failed, rc;

	*names = NULL;
	*nnames = 0;
	if (c->ndirs && ssh_cached_dir_take(c, dir, names, nnames) == 0)
		return 0;
	NB_PTR(c, e, "listing a directory", h,
	       libssh2_sftp_open_ex(c->sftp, dir, (unsigned)strlen(dir), 0, 0, LIBSSH2_SFTP_OPENDIR), failed);
	if (failed)
		return e ? e->code : ROTOR_ERROR;
	if (!h) {
		unsigned long fx = ssh_sftp_status(c);

		return fx == LIBSSH2_FX_NO_SUCH_FILE || fx == LIBSSH2_FX_NO_SUCH_PATH ? 0 : 1;
	}
	for (;;) {
		NB_INT(c, e, "listing a directory", rc, libssh2_sftp_readdir_ex(h, name, sizeof(name) - 1, NULL, 0, &a));
		if (rc == NB_WAITFAIL) {
			rc = e ? e->code : ROTOR_ERROR;
			break;
		}
		if (rc <= 0) {
			rc = rc == 0 ? 0 : 1;
			break;
		}
		name[rc] = '\0';
		if (memchr(name, '\0', (size_t)rc)) {
			rc = 1;     /* a name SFTP cannot carry whole: the shell decides */
			break;
		}
		if (!(nv = realloc(v, (n + 2) * sizeof(*v))) || !(nv[n] = strdup(name))) {
			if (nv)
				v = nv;
			rc = err_nomem(e);
			break;
		}
		v = nv;
		v[++n] = NULL;
	}
	ssh_handle_close(c, h);
	if (rc != 0) {
		ssh_strays_free(v, n);
		return rc;
	}
	if (n)
		qsort(v, n, sizeof(*v), cmp_str);
	*names = v;
	*nnames = n;
	return 0;
}

/*
 * STRAY_SCRIPT's lines for every path, from SFTP directory listings
 * (no process on the host): 0 with them in out, 1 when some directory
 * cannot be listed this way (the caller runs the script), <0 an error.
 */
static int strays_by_sftp(struct ssh_conn *c, const char *const *paths, size_t n, struct buf *out, struct err *e)
{
	char **names = NULL, *dir = NULL;
	size_t nnames = 0, i, k;
	int rc;

	if (c->broken || ssh_sftp_ready(c, NULL) != 0)
		return 1;
	for (i = 0, rc = 0; i < n && rc == 0; i++) {
		const char *slash = strrchr(paths[i], '/'), *base = slash + 1;
		size_t dlen = slash == paths[i] ? 1 : (size_t)(slash - paths[i]), blen = strlen(base);

		/* The files of a role share a directory: list it once. */
		if (!dir || strlen(dir) != dlen || strncmp(dir, paths[i], dlen) != 0) {
			ssh_strays_free(names, nnames);
			names = NULL;
			nnames = 0;
			free(dir);
			if (!(dir = strndup(paths[i], dlen))) {
				rc = err_nomem(e);
				break;
			}
			if ((rc = sftp_list_dir(c, dir, &names, &nnames, e)) != 0)
				break;
		}
		for (k = 0; k < nnames; k++)
			if (!strncmp(names[k], base, blen) && !strcmp(names[k] + blen, SSH_BACKUP_SUFFIX))
				buf_printf(out, "%zu b\n", i);
		for (k = 0; k < nnames; k++) {
			const char *m = names[k];

			if (m[0] != '.' || strncmp(m + 1, base, blen) != 0 || strncmp(m + 1 + blen, ".rotor-tmp-", 11) != 0)
				continue;
			m += 1 + blen + 11;
			if (stray_suffix_ok(m, strlen(m)))
				buf_printf(out, "%zu t %s\n", i, m);
			else
				buf_printf(out, "%zu t ?\n", i);
		}
		if (out->err)
			rc = err_nomem(e);
	}
	ssh_strays_free(names, nnames);
	free(dir);
	return rc;
}

int ssh_find_strays(struct ssh_conn *c, const char *const *paths, size_t n, char ***out, size_t *nout,
		    struct err *e)
{
	struct buf cmd = BUF_INIT, so = BUF_INIT, se = BUF_INIT;
	size_t i;
	int rc;

	*out = NULL;
	*nout = 0;
	if ((rc = check_paths(c, paths, n, e)) != 0 || n == 0)
		return rc;
	se.max = SSH_STDERR_KEEP;
	so.max = (size_t)64 << 10;
	/*
	 * One command for every file, as the login user: staging already
	 * needs it to search and write each directory, and sudoers commonly
	 * allows no shell or listing command.
	 */
	if ((rc = strays_by_sftp(c, paths, n, &so, e)) < 0)
		goto out;
	if (rc == 1) {
		/* One shell for every file (it starts once per host: a fork is most of its cost). */
		rc = 0;
		buf_truncate(&so, 0);
		ssh_cmd_puts(&cmd, "sh -c '" STRAY_SCRIPT "' sh", &rc);
		for (i = 0; i < n && rc == 0; i++) {
			ssh_cmd_printf(&cmd, &rc, " %zu ", i);
			ssh_cmd_quote(&cmd, paths[i], &rc);
		}
		if (rc) {
			rc = ssh_buf_fail(c, e, rc, "building the command that looks for stray files");
			goto out;
		}
		if ((rc = ssh_exec_checked(c, buf_cstr(&cmd), "looking for stray files", &so, &se, e)) != 0)
			goto out;
	}
	rc = ssh_parse_strays(buf_cstr(&so), paths, n, out, nout);
	if (rc == ROTOR_ENOMEM)
		rc = err_nomem(e);
	else if (rc < 0)
		rc = err_set(e, ROTOR_ERROR, "%s: unexpected output while looking for stray files", c->name);
out:
	buf_release(&cmd);
	buf_release(&so);
	buf_release(&se);
	return rc;
}
