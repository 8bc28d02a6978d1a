/*
 * ssh_int.h -- what the files of reconcile/remote/ share; not for callers
 * outside this directory (they include ssh.h).
 *
 *   session.c  connect, host key check, authentication, disconnect; the
 *              non-blocking wait (ssh_wait_io), the deadline, error mapping
 *   exec.c     exec channels, the "sudo -n stat/cat" read path, shell quoting
 *              and the command builder (ssh_cmd_*)
 *   sftp.c     SFTP reads, and the SFTP plumbing files.c writes with
 *   sftpraw.c  SFTP requests rotor writes itself on libssh2's channel:
 *              OpenSSH's extensions, and a host's files read in three
 *              rounds of requests sent at once (ssh_prefetch)
 *   files.c    staged write, commit (rename burst), restore and remove backups,
 *              discard, strays
 *
 * Every session runs in libssh2's non-blocking mode: each call that
 * returns LIBSSH2_ERROR_EAGAIN is repeated after poll() on the socket in
 * the directions libssh2 asks for, with the connection's deadline as
 * the poll timeout.  That one loop (ssh_wait_io) is the only place time
 * is spent waiting, so the deadline holds for every step.  A call given
 * up half way leaves libssh2's state machines mid-step, so a timeout
 * marks the connection broken and nothing but ssh_disconnect() may
 * follow.
 *
 * Error convention inside the module: a function that fails fills e once
 * and returns that negative code; NB_WAITFAIL (below) is not a code and
 * never leaves the function that saw it.
 */
#ifndef ROTOR_SSH_INT_H
#define ROTOR_SSH_INT_H

#include <limits.h>
#include <stdint.h>

#include <libssh2.h>
#include <libssh2_sftp.h>

#include "reconcile/remote/ssh.h"

#define SSH_NAME_MAX_LEN 320
#define SSH_IO_CHUNK 32768
#define SSH_STDERR_KEEP 4096   /* stderr kept for messages when the caller discards it */
#define SSH_PATH_MAX_LEN 4096

/* A file ssh_prefetch() read, until ssh_read_file() takes it (once). */
struct ssh_cached {
	char *path;                    /* NULL: taken */
	int missing;                   /* no such file */
	struct buf data;               /* wiped when taken or dropped */
	struct ssh_stat st;
};

/* A directory's names (sorted) ssh_prefetch() read, until ssh_find_strays() takes them (once). */
struct ssh_cached_dir {
	char *dir;                     /* NULL: taken */
	int complete;                  /* names holds every name (none: no such directory) */
	char **names;                  /* NULL-ended */
	size_t nnames;
};

struct ssh_conn {
	LIBSSH2_SESSION *s;
	LIBSSH2_SFTP *sftp;
	int fd;
	int broken;
	int become;
	int deadline_ms;
	int64_t deadline;              /* clock_mono_ms() milliseconds */
	char *user;
	char name[SSH_NAME_MAX_LEN];   /* "label (address)" */
	char fingerprint[96];          /* "SHA256:..." */
	char first_error[ERR_MSG_MAX]; /* why it broke: every later call reports it */
	int no_sftp_ext;               /* the server refused an OpenSSH SFTP extension */
	uint32_t ext_id;               /* request ids of sftpraw.c */
	struct ssh_cached *cache;      /* ssh_prefetch(); dropped by any change or command */
	size_t ncache;
	struct ssh_cached_dir *dirs;   /* ssh_prefetch(), the same way */
	size_t ndirs;
	/*
	 * What libssh2 reads comes through ssh_recv_ahead() (session.c): one
	 * recv() of up to SSH_READ_AHEAD bytes serves its small reads (the
	 * banner is read a byte at a time), and after a recv() found nothing,
	 * its further reads say EAGAIN without asking the kernel until
	 * ssh_wait_io() has waited on the socket (rb_dry).  rb_plain: plain
	 * recv() (libssh2 in blocking mode, closing: it waits by itself).
	 */
	unsigned char *rb;
	size_t rb_off, rb_len;
	int rb_dry, rb_plain;
};

#define SSH_READ_AHEAD 16384

/* ---- session.c ---- */

/*
 * Mark c broken with this message (kept as c->first_error when it is the
 * first): every later call on c reports it.  Fills e (may be NULL); returns code.
 */
int ssh_break(struct ssh_conn *c, struct err *e, int code, const char *fmt, ...) ROTOR_PRINTF(4, 5);

/* Report a libssh2 failure (rc) while doing `what`; marks c broken after transport errors. */
int ssh_lib_fail(struct ssh_conn *c, struct err *e, int rc, const char *what);

/*
 * Wait until the socket is ready in the directions libssh2 is blocked
 * on, or the deadline passes.  0 = try the call again.
 */
int ssh_wait_io(struct ssh_conn *c, const char *what, struct err *e);

/* Every public entry point starts here: 0, or the code why c cannot be used. */
int ssh_usable(struct ssh_conn *c, struct err *e);

/*
 * A buf_* call failed with rc while doing `what`: report it keeping rc
 * ("NAME: what: out of memory" / "over the size cap"); returns rc.
 */
int ssh_buf_fail(struct ssh_conn *c, struct err *e, int rc, const char *what);

/* An absolute remote path without newline, under SSH_PATH_MAX_LEN. */
int ssh_check_path(struct ssh_conn *c, const char *path, struct err *e);

/*
 * Repeat an int-returning libssh2 call while it says EAGAIN.  rc gets the
 * call's result, or NB_WAITFAIL when waiting failed (e is filled then).
 */
#define NB_WAITFAIL INT_MIN
#define NB_INT(c, e, what, rc, call)                                   \
	do {                                                           \
		while (((rc) = (call)) == LIBSSH2_ERROR_EAGAIN) {      \
			if (ssh_wait_io((c), (what), (e))) {           \
				(rc) = NB_WAITFAIL;                    \
				break;                                 \
			}                                              \
		}                                                      \
	} while (0)

/* The same for calls that return a pointer; failed is set when waiting failed. */
#define NB_PTR(c, e, what, p, call, failed)                                        \
	do {                                                                       \
		(failed) = 0;                                                      \
		while (!((p) = (call)) &&                                          \
		       libssh2_session_last_errno((c)->s) == LIBSSH2_ERROR_EAGAIN) { \
			if (ssh_wait_io((c), (what), (e))) {                       \
				(failed) = 1;                                      \
				break;                                             \
			}                                                          \
		}                                                                  \
	} while (0)

/* ---- exec.c ---- */

/*
 * Run cmd; stdout to out, stderr to errb (either may be NULL); when
 * err_keep_head is set, stderr past errb's max is dropped silently.
 * 0 with the exit code in *status when the command ran to completion.
 */
int ssh_exec_run(struct ssh_conn *c, const char *cmd, struct buf *out, struct buf *errb,
		 int err_keep_head, int *status, struct err *e);

/* Run cmd; a non-zero exit becomes an error naming `what` with stderr. */
int ssh_exec_checked(struct ssh_conn *c, const char *cmd, const char *what, struct buf *out,
		     struct buf *errb, struct err *e);

/* The last line(s) of stderr, trimmed, for a message (in tmp, or a constant). */
const char *ssh_tail_of(const struct buf *b, char *tmp, size_t tmpsz);

/*
 * The output of `stat -c '%s %f %u %g %Y'` (one line: decimal size,
 * hex raw mode, decimal uid and gid, decimal mtime that may be negative,
 * then a newline and nothing else): 0 with the fields set, -1 when the
 * text is anything else or a number does not fit its type.
 */
int ssh_parse_stat(const char *text, unsigned long long *size, unsigned int *rawmode, unsigned long *uid,
		   unsigned long *gid, long long *mtime);

/*
 * The output of ssh_read_via_sudo()'s command: the line "ID SIZE MODE UID
 * GID MTIME\n" (ID device:inode:ctime as [0-9:.]+, at most 64 bytes; the
 * rest as ssh_parse_stat() reads it; the whole line under 256 bytes),
 * then, when the command went on, SIZE bytes of the file and the same
 * line again, byte for byte, and nothing after it.  Returns 2 for the
 * whole (r->off, r->len: the file's bytes within p), 1 for the line alone,
 * 0 when the line parses but what follows is not exactly the file and
 * the same line (it changed while it was read, or the output was cut),
 * -1 when there is no valid first line.  r's fields are set from the line
 * whenever the result is not -1.
 */
struct ssh_sudo_read {
	unsigned long long size;
	unsigned int rawmode;
	unsigned long uid, gid;
	long long mtime;
	size_t off, len;
};
int ssh_parse_sudo_read(const char *p, size_t n, struct ssh_sudo_read *r);

/* The login user may not read path: stat and cat it through sudo -n, never through a link. */
int ssh_read_via_sudo(struct buf *out, struct ssh_conn *c, const char *path, size_t max,
		      struct ssh_stat *st_out, struct err *e);

/*
 * Building a command line: each call appends to b unless *rc already
 * holds an error, and stores the first failing buf_* code in *rc, so a
 * sequence of appends is checked once at the end and the code reported
 * is the first real one (ROTOR_ETOOBIG stays ROTOR_ETOOBIG); report it
 * with ssh_buf_fail().
 */
void ssh_cmd_put(struct buf *b, const struct buf *src, int *rc);
void ssh_cmd_puts(struct buf *b, const char *s, int *rc);
void ssh_cmd_printf(struct buf *b, int *rc, const char *fmt, ...) ROTOR_PRINTF(3, 4);
void ssh_cmd_quote(struct buf *b, const char *s, int *rc);

/* ---- files.c ---- */

/*
 * The output of ssh_find_strays()'s command: lines "I b" (a backup of
 * paths[I]) and "I t SUFFIX" (a temporary file next to paths[I]; SUFFIX
 * is [0-9A-Za-z_-]+ or "?"), I decimal without leading zeros and below
 * n, each ending in a newline, nothing else.  0 with *out the full paths
 * (free with ssh_strays_free()); -1 for any other text (nothing
 * allocated); ROTOR_ENOMEM.
 */
int ssh_parse_strays(const char *text, const char *const *paths, size_t n, char ***out, size_t *nout);

/* ---- sftp.c ---- */

/* Start the SFTP subsystem once per connection. */
int ssh_sftp_ready(struct ssh_conn *c, struct err *e);

/* The SFTP status of the last failure, or (unsigned long)-1 when it was not one. */
unsigned long ssh_sftp_status(struct ssh_conn *c);

/* Report a failed SFTP call on path (ROTOR_ENOTFOUND for a missing file). */
int ssh_sftp_fail(struct ssh_conn *c, struct err *e, const char *what, const char *path);

/*
 * path is a symbolic link: ROTOR_EINVALID with "NAME: PATH is a symbolic
 * link (to TARGET), not a file rotor manages" (the target read over SFTP
 * as the login user, unprintable bytes as '?'; left out when it cannot be
 * read).  Nothing is read through the link.
 */
int ssh_refuse_link(struct ssh_conn *c, const char *path, struct err *e);

/* ---- sftpraw.c ---- */

/*
 * OpenSSH's SFTP extensions that libssh2 1.10 does not offer, sent as raw
 * SSH_FXP_EXTENDED packets (see sftpraw.c for why that is safe).  All n
 * requests are written at once and then all n answers read (the server
 * carries them out back to back, in order).
 * op is "posix-rename@openssh.com" (rename(2): replaces b) or
 * "hardlink@openssh.com" (link(2): a symbolic link a stays a link); a
 * and b are paths.  Each op's status gets the server's SSH_FX_* answer
 * (LIBSSH2_FX_OP_UNSUPPORTED when the server has no such extension).
 * Returns 0 when every answer arrived, or the code of a transport
 * failure, which marks c broken (the channel's state is then unknown).
 */
struct ssh_sftp_ext {
	const char *op, *a, *b;
	unsigned long status;
};
int ssh_sftp_ext_batch(struct ssh_conn *c, struct ssh_sftp_ext *ops, size_t n, struct err *e);

/*
 * What ssh_prefetch() kept for path: 0 with its bytes appended to out
 * (st_out filled when not NULL), ROTOR_ENOTFOUND (e says so) for a file
 * that was not there, another code when out cannot take it; 1 when
 * nothing is kept for path.  The entry is wiped either way: a second
 * read goes to the host.
 */
int ssh_cached_take(struct ssh_conn *c, const char *path, struct buf *out, struct ssh_stat *st_out, struct err *e);

/*
 * A new file tmp (created exclusively, mode 0600) holding the len bytes
 * at data, fsynced (when the server can), given its mode, closed: in two
 * rounds of requests instead of libssh2's five.  0; 1 when this cannot
 * be done here (over 64 KiB, a server without OpenSSH's extensions) and
 * nothing was made; or a negative code, e saying what failed as
 * ssh_stage_file() says it, *created set when tmp was made (the caller
 * removes it).
 */
int ssh_sftp_write_new(struct ssh_conn *c, const char *tmp, const void *data, size_t len, unsigned mode,
		       int *created, struct err *e);

/*
 * Remove the n files at paths (unlink, as the login user; never a
 * directory), all requests sent at once: status[i] the server's SSH_FX_*
 * answer for each.  0 when every answer arrived; 1 when the server is
 * known not to take rotor's own requests (nothing sent); else the code
 * of a broken connection.
 */
int ssh_sftp_remove_batch(struct ssh_conn *c, const char *const *paths, size_t n, unsigned long *status,
			  struct err *e);

/*
 * The parsers of the server's answers (a server's bytes: fuzzed by
 * tests/fuzz/fuzz_sftpreply.c).  ssh_sftp_parse_attrs: an ATTRS body
 * into st and *type (the file type bits, 0 when not given); 0, or -1
 * when malformed or without size and permissions.  ssh_sftp_parse_names:
 * the names of a NAME answer's body added to d->names (kept NULL-ended);
 * 0, -1 when malformed or a name holds a NUL, ROTOR_ENOMEM.
 * ssh_cached_dir_release frees d's names and directory.
 */
int ssh_sftp_parse_attrs(const unsigned char *p, size_t n, struct ssh_stat *st, unsigned *type);
int ssh_sftp_parse_names(struct ssh_cached_dir *d, const unsigned char *p, size_t n);
void ssh_cached_dir_release(struct ssh_cached_dir *d);

/* The names ssh_prefetch() listed in dir (sorted, NULL-ended, now the caller's): 0; 1 when none kept. */
int ssh_cached_dir_take(struct ssh_conn *c, const char *dir, char ***names, size_t *nnames);

/*
 * The SSH wire string (a 32-bit big-endian length, then the bytes) at *p,
 * which moves past it: its bytes at *s, their number in *len; -1 when it
 * runs past end.
 */
int ssh_wire_string(const unsigned char **p, const unsigned char *end, const unsigned char **s, uint32_t *len);

/* The text of an SSH_FX_* status, for messages. */
const char *ssh_fx_text(unsigned long fx);

/* Close a handle, ignoring errors; nothing on a broken connection. */
void ssh_handle_close(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h);

#endif
