/*
 * ssh.h -- one SSH session to one host (libssh2 1.10): verified host key,
 * public key authentication, SFTP reads, commands, atomic file writes.
 * The one public header of reconcile/remote/; the module's files share
 * their internals through ssh_int.h:
 *   session.c  ssh_connect, ssh_disconnect, deadline, host key, auth
 *   exec.c     ssh_exec, ssh_shell_quote, the "sudo -n cat" read path
 *              (never through a symbolic link)
 *   sftp.c     ssh_read_file
 *   files.c    ssh_stage_file, ssh_commit_staged, ssh_staged_discard,
 *              ssh_write_file_atomic, ssh_restore_backup, ssh_remove_backups,
 *              ssh_remove_temps, ssh_find_strays
 *
 * Threads: call ssh_global_init() once in main before any thread starts
 * and ssh_global_shutdown() after they all ended.  A struct ssh_conn is
 * used by one thread at a time; different connections may be used on
 * different threads at once (observe runs one per host on a bounded pool).
 *
 * Ownership: ssh_connect() returns a connection the caller closes with
 * ssh_disconnect() (NULL is a no-op).  The strings in struct ssh_opts are
 * borrowed for the duration of the call that takes them; ssh_connect()
 * copies what it keeps.  Output goes into caller-owned struct buf values,
 * appended, each bounded by its own max (buf.h): a buffer that would grow
 * past its max fails the call with ROTOR_ETOOBIG.
 *
 * Time: connect_timeout_ms bounds the TCP connect (net_connect() of
 * common/net.h: non-blocking connect plus poll, tried address by
 * address).  deadline_ms bounds everything after it: handshake,
 * authentication and every later call on the connection, so a host
 * that stalls anywhere costs at most connect_timeout_ms + deadline_ms.
 * ssh_set_deadline() moves it.
 *
 * Errors: every function returns 0 or a negative ROTOR_* code with a
 * message naming the host as "LABEL (ADDRESS)":
 *   ROTOR_ERROR     network failure, timeout, authentication failure,
 *                   protocol error, a command that failed;
 *   ROTOR_EINVALID  the host key was refused (not in known_hosts, or
 *                   different from known_hosts, or revoked), or bad input
 *                   (a relative path, an owner name that is not a name);
 *   ROTOR_ENOTFOUND a remote file does not exist (ssh_read_file);
 *   ROTOR_ETOOBIG   a remote file or a command's output over its cap, or a
 *                   command line rotor builds over the buffer cap;
 *   ROTOR_ENOMEM    allocation failure.
 * The code is the first failure's own: codes are never combined, so a
 * buffer over its cap is ROTOR_ETOOBIG, never ROTOR_ENOMEM.
 * After a timeout or a transport error the connection is broken: every
 * later call fails at once with ROTOR_ERROR and a message that names
 * the first error ("connection unusable after an earlier error: ..."),
 * and the caller should ssh_disconnect() (ssh_broken() says so).  A file
 * that is missing, too big or unreadable, or a command that exits
 * non-zero, leaves the connection usable.
 *
 * A connection may stay open for a whole run (apply keeps one per host,
 * observe_session() in observe.h): nothing is cached between calls (every
 * read opens, stats and reads the file anew; only the SFTP subsystem
 * stays started), and the caller moves the deadline with ssh_set_deadline()
 * before each use.  A server may drop a session held idle (sshd's
 * ClientAliveInterval, a restart): the next call on it then fails as a
 * transport error and ssh_broken() tells it from a failed command.
 *
 * Secrets: file contents read here may be private keys.  They land only
 * in the caller's buffer (wipe it with buf_wipe()); the module's own
 * copies (the exec read chunk, the sudo read path's buffer, bytes cut by
 * a failed read) are wiped with secure_wipe() before they are freed.
 *
 * Host keys: rotor never trusts on first use.  The key the server
 * presents must be listed for the address in known_hosts (OpenSSH
 * format; plain or hashed names; "[addr]:port" entries for ports other
 * than 22).  Host key algorithms are offered in the order ed25519,
 * ecdsa, rsa, with the types known_hosts lists for this host first.
 * Lines libssh2 cannot parse and @cert-authority lines are skipped;
 * a key listed under @revoked is refused.  The file is read once and
 * shared by every connection while it stays the same (inode, size,
 * modification and change time); ssh_global_shutdown() lets it go.
 */
#ifndef ROTOR_SSH_H
#define ROTOR_SSH_H

#include <stddef.h>
#include <stdint.h>

#include "common/buf.h"
#include "common/err.h"

struct ssh_conn;

/* libssh2_init(); once, before threads.  Returns 0 or ROTOR_ERROR. */
int ssh_global_init(struct err *e);
void ssh_global_shutdown(void);

#define SSH_DEFAULT_CONNECT_TIMEOUT_MS 10000
#define SSH_DEFAULT_DEADLINE_MS 120000

/* Valid when zeroed apart from address, user and known_hosts. */
struct ssh_opts {
	const char *host_label;   /* name in messages, e.g. "pg1"; NULL = address */
	const char *address;      /* IP address or resolvable name (required) */
	int port;                 /* 0 = 22 */
	const char *user;         /* login user (required) */
	const char *identity;     /* private key file; NULL = keys from ssh-agent */
	const char *passphrase;   /* for an encrypted identity; NULL = none */
	const char *known_hosts;  /* OpenSSH known_hosts file (required) */
	int connect_timeout_ms;   /* 0 = SSH_DEFAULT_CONNECT_TIMEOUT_MS */
	int deadline_ms;          /* after connect; 0 = SSH_DEFAULT_DEADLINE_MS */
	int become;               /* 1: privileged steps through "sudo -n" */
};

/*
 * Connect, verify the host key, authenticate.  On failure *out is NULL
 * and nothing is left open.  Host key refusals read:
 *   "HOST (ADDR) is not in known_hosts FILE; add its key first (rotor
 *    never trusts on first use); it presented ssh-ed25519 SHA256:..."
 *   "host key for HOST (ADDR) does NOT match known_hosts FILE: possible
 *    man-in-the-middle; refusing (it presented ssh-ed25519 SHA256:...)"
 * A failed TCP connect reads "HOST (ADDR): connect to ADDR:PORT: ..."
 * (or "... timed out after N ms"; see common/net.h).
 */
int ssh_connect(struct ssh_conn **out, const struct ssh_opts *o, struct err *e);

/*
 * Check a host key that another SSH client received (libgit2's, for the
 * git remote) against known_hosts, by the rules and with the messages
 * of ssh_connect(): keytype is the algorithm name ("ssh-ed25519",
 * "ecdsa-sha2-nistp256", ..., "ssh-rsa"), key the raw public key blob,
 * sha256 (may be NULL) its SHA-256 for the messages; label (may be NULL)
 * names the host.  0 when known_hosts lists exactly this key for
 * address:port; ROTOR_EINVALID when it is unknown, different or
 * revoked; ROTOR_ERROR when known_hosts cannot be read.
 */
int ssh_hostkey_check(const char *known_hosts, const char *label, const char *address, int port,
		      const char *keytype, const unsigned char *key, size_t keylen,
		      const unsigned char sha256[32], struct err *e);

/* Close the session and free c.  Bounded by a short grace period. */
void ssh_disconnect(struct ssh_conn *c);

/*
 * 1 when c broke (a timeout or a transport error: the session is dead,
 * only ssh_disconnect() may follow), with the first error's message in
 * e (may be NULL; ROTOR_ERROR); 0 while it is usable (also after a
 * command failed or a file was missing).  NULL counts as broken.
 */
int ssh_broken(const struct ssh_conn *c, struct err *e);

/* Set the deadline to ms milliseconds from now (ms <= 0: the default). */
void ssh_set_deadline(struct ssh_conn *c, int ms);

/* "LABEL (ADDRESS)", for callers' own messages; borrowed from c. */
const char *ssh_conn_name(const struct ssh_conn *c);

/* SHA256:base64 fingerprint of the verified host key; borrowed from c. */
const char *ssh_host_fingerprint(const struct ssh_conn *c);

struct ssh_stat {
	uint64_t size;
	unsigned int mode;        /* permission bits, 07777 */
	unsigned long uid, gid;
	int64_t mtime;            /* seconds since the epoch */
};

/*
 * Append the contents of the regular file at absolute path to out.
 * Refuses a file over max bytes (ROTOR_ETOOBIG, checked before reading
 * and again while reading), a missing file (ROTOR_ENOTFOUND), anything
 * but a regular file (ROTOR_EINVALID), and a symbolic link, which is
 * never followed (ROTOR_EINVALID: "NAME: PATH is a symbolic link (to
 * TARGET), not a file rotor manages").  Reads over SFTP as the login
 * user after an lstat of path; when that is refused for permission and
 * the connection has become set, reads with one command of "sudo -n
 * stat" (of the path itself), "sudo -n test ! -h", "sudo -n cat" and
 * "sudo -n stat" again, keeping the bytes only when both stat lines
 * agree (device, inode, ctime, size, mode, owner, mtime).  st_out (may
 * be NULL) receives size, mode, owner and modification time.  On
 * failure out is left as it was.
 */
int ssh_read_file(struct buf *out, struct ssh_conn *c, const char *path, size_t max,
		  struct ssh_stat *st_out, struct err *e);

/*
 * Read the n files at paths (absolute; at most 256 are looked at) ahead,
 * in three rounds of SFTP requests sent at once (lstat; open; fstat,
 * read and close), and keep what was found for ssh_read_file() on the
 * same connection, which then takes it instead of asking the host: a
 * regular file within max bytes (and 64 KiB), or no file at all.
 * Anything else (a symbolic link, not a regular file, refused, larger)
 * is not kept, and ssh_read_file() reads it as it always does, with its
 * messages.  Each kept file is taken once; ssh_prefetch_drop() wipes
 * what was not, as does any write, command or disconnect on c.  Returns
 * 0 (also when nothing could be kept), ROTOR_ENOMEM, or the code of a
 * broken connection.
 */
int ssh_prefetch(struct ssh_conn *c, const char *const *paths, size_t n, size_t max, struct err *e);
void ssh_prefetch_drop(struct ssh_conn *c);

/*
 * Run cmd (a /bin/sh command line for the login user's shell: quote
 * every argument with ssh_shell_quote()) with stdin at end of file.
 * stdout is appended to out and stderr to err_out (either may be NULL
 * to discard it).  Returns 0 when the command ran to completion, with
 * its exit code in *exit_status.  When exit_status is NULL a non-zero
 * exit is an error whose message quotes the end of stderr.  A command
 * killed by a signal is an error (*exit_status = -1), as is one whose
 * output outgrows its buffer.
 */
int ssh_exec(struct ssh_conn *c, const char *cmd, struct buf *out, struct buf *err_out,
	     int *exit_status, struct err *e);

/* Options for ssh_write_file_atomic(); valid when zeroed. */
struct ssh_write_opts {
	unsigned int mode;        /* permission bits; 0 = 0600 */
	const char *owner;        /* chown to this user; NULL = leave (login user) */
	const char *group;        /* chgrp to this group; NULL = leave */
	int backup;               /* 1: copy the previous file to PATH.rotor-bak first */
	int become;               /* -1: never sudo; 0: the connection's become; 1: sudo */
};

#define SSH_BACKUP_SUFFIX ".rotor-bak"

/*
 * Replace the file at absolute path with data, atomically: the bytes
 * go to a new temporary file in the same directory (created with
 * O_EXCL and mode 0600 over SFTP, so the login user must be able to
 * create files there), are fsynced, get their mode; then the commit
 * (ssh_commit_staged() below) keeps the previous file as PATH.rotor-bak
 * (removing what had that name, then a hard link to it, or cp -P -p when
 * sudo is needed or the link is refused: a symlink is kept as a link,
 * never written through; when backup is set and a previous file exists),
 * sets owner and group, and renames the temporary file over path (mv -f),
 * each through "sudo -n" when become applies.  Readers see the old file or the new one, never a mix.  On
 * failure the temporary file is removed and path is untouched.
 */
int ssh_write_file_atomic(struct ssh_conn *c, const char *path, const void *data, size_t len,
			  const struct ssh_write_opts *wo, struct err *e);

/*
 * The same write in two halves, so that several files of one host change
 * together: ssh_stage_file() writes, fsyncs and sets the mode of the
 * temporary file (nothing visible changes); ssh_commit_staged() then makes
 * the backups, sets owners, and renames every staged file into place back
 * to back, so a client reading a certificate and its key sees either both
 * old or both new unless it reads in the microseconds between two
 * rename() calls.  The login user's files (no sudo, no owner) go without
 * a command: hard links and renames through OpenSSH's SFTP extensions
 * (hardlink@openssh.com, posix-rename@openssh.com), every rename sent at
 * once; a server without them, or a link the file system refuses, falls
 * back to ONE command (one perl process).  Otherwise ONE command through
 * sudo does it.  A rename that fails leaves the files renamed before it
 * in place and marked committed (over SFTP the ones after it may be too:
 * each entry's committed says).  ssh_staged_discard() removes temporary files
 * that were not committed and releases the array's contents.
 *
 * A failed write leaves no temporary file: ssh_stage_file() removes its
 * own on failure; when the connection broke (so nothing more can be done
 * on it) it names the file it may have left in out->tmp and out->path
 * instead.  ssh_staged_discard() on an unusable connection (broken, or
 * NULL) removes nothing: it keeps every uncommitted entry that names a
 * temporary file and returns how many it kept; call it again with a new
 * connection to the same host, or ssh_staged_release() them.
 */
struct ssh_staged {
	char *path, *tmp, *owner, *group;
	int backup, sudo, committed;
};
int ssh_stage_file(struct ssh_conn *c, const char *path, const void *data, size_t len,
		   const struct ssh_write_opts *wo, struct ssh_staged *out, struct err *e);
int ssh_commit_staged(struct ssh_conn *c, struct ssh_staged *v, size_t n, struct err *e);
size_t ssh_staged_discard(struct ssh_conn *c, struct ssh_staged *v, size_t n);
void ssh_staged_release(struct ssh_staged *st);

/*
 * Put PATH.rotor-bak back in place of path (copying it to a temporary
 * file and renaming that over path, so the backup stays).  ROTOR_ENOTFOUND
 * when there is no backup.  become as in struct ssh_write_opts.
 */
int ssh_restore_backup(struct ssh_conn *c, const char *path, int become, struct err *e);

/*
 * Remove PATH.rotor-bak for each of the n paths that has one: over SFTP
 * when none of them needs sudo (no command on the host), else, or when
 * SFTP cannot remove one (a directory there), in ONE remote command; become (may be NULL: all 0) as in struct
 * ssh_write_opts, one per path.  *removed counts the backups removed,
 * also when the command stopped at a later one that could not be
 * removed (then ROTOR_ERROR quoting its stderr).
 */
int ssh_remove_backups(struct ssh_conn *c, const char *const *paths, const int *become, size_t n,
		       size_t *removed, struct err *e);

/*
 * Remove the n temporary files at temps (full paths of the form
 * DIR/.BASE.rotor-tmp-SUFFIX, as ssh_find_strays() names them; one named
 * with "?" is refused, ROTOR_EINVALID) in ONE command as the login user,
 * who created them.  *removed counts those removed, also when a later
 * one failed (then ROTOR_ERROR quoting stderr).
 */
int ssh_remove_temps(struct ssh_conn *c, const char *const *temps, size_t n, size_t *removed, struct err *e);

/*
 * What earlier writes left next to the n managed files at paths, found
 * with ONE remote command: PATH.rotor-bak (a backup) and every
 * DIR/.BASE.rotor-tmp-* (a temporary file), each as a full path; a
 * temporary file whose name holds other bytes than [0-9A-Za-z_-] after
 * "rotor-tmp-" is named DIR/.BASE.rotor-tmp-?.  It runs as the login
 * user, who must be able to search and write the directories for
 * staging anyway (and sudoers commonly allows no shell): in a directory
 * the login user may search but not read, only backups are found.
 * *out (NULL when none) is freed with ssh_strays_free().
 */
int ssh_find_strays(struct ssh_conn *c, const char *const *paths, size_t n, char ***out, size_t *nout,
		    struct err *e);
void ssh_strays_free(char **v, size_t n);

/*
 * Append s to out quoted for a POSIX shell: one single-quoted word in
 * which every ' is written '\'' (so "" becomes '').  Any byte string
 * without NUL survives one round of shell parsing unchanged.
 */
int ssh_shell_quote(struct buf *out, const char *s);

#endif
