/*
 * gitremote.h -- the shared remote through libgit2: fetch refs, push
 * refspecs with an expected old value (compare-and-swap, delete with a
 * lease), read a remote ref, and hear what the server says.
 *
 * Transports: ssh:// and scp-like "user@host:path" URLs (libssh2 inside
 * libgit2), a local path or file://, and https:// (libgit2's TLS and the
 * system's CA store).  gitops never includes libssh2: the SSH host key is
 * judged by the caller's hostkey callback (the engine checks it against
 * rotor's known_hosts); without one every SSH host key is refused.
 *
 * Credentials are answered at most once per method per connection: a
 * server that refuses the key (or the token) fails the call at once,
 * naming what was tried, instead of libgit2 asking again forever.
 *
 * Ownership: every string in struct gitremote_opts and struct
 * gitremote_update is borrowed for the call.  The out members of struct
 * gitremote_update are filled by gitremote_push().
 *
 * Errors: 0 on success; ROTOR_ENOTFOUND when the repository has no
 * remote of that name (gitremote_url) or the remote has no such ref
 * (gitremote_lookup with found NULL); ROTOR_EINVALID for a bad remote
 * name, ref name or expected value, and for an SSH host key refused by
 * the hostkey callback (its message); ROTOR_ESTATE when the remote
 * refused an update (a hook, a protected branch, a non-fast-forward) or
 * an expected old value did not hold: the message names the first such
 * ref and the server's reason; ROTOR_ERROR for an unreachable remote,
 * failed authentication, and anything else libgit2 reports.  Every
 * message is one line and starts with the remote's name.
 */
#ifndef ROTOR_GITREMOTE_H
#define ROTOR_GITREMOTE_H

#include <stddef.h>

#include "common/buf.h"
#include "common/err.h"
#include "gitops/gitrepo.h"

/*
 * The SSH host key the server presented: keytype is its algorithm
 * ("ssh-ed25519", "ecdsa-sha2-nistp256", ..., "ssh-rsa"), key the raw
 * public key blob, sha256 (NULL when libgit2 gave none) its SHA-256.
 * host and port come from the remote's URL (port 22 when it names
 * none).  Return 0 to accept, or a negative ROTOR_* code with the
 * reason in e to refuse.
 */
typedef int (*gitremote_hostkey_fn)(void *payload, const char *host, int port, const char *keytype,
				    const unsigned char *key, size_t keylen, const unsigned char *sha256,
				    struct err *e);

/*
 * One line the server printed (hooks, "remote:" messages), control
 * characters removed; git's own pack progress lines ("Counting objects:
 * ...", "Total ...") are not passed on.
 */
typedef void (*gitremote_message_fn)(void *payload, const char *line);

/* Valid when zeroed: then only local and file:// remotes work. */
struct gitremote_opts {
	const char *ssh_user;           /* when the URL names none; NULL: refuse such a URL */
	const char *ssh_key;            /* private key file; NULL: keys from ssh-agent */
	const char *ssh_passphrase;     /* for an encrypted ssh_key; NULL: none */
	const char *https_user;         /* when the URL names none; NULL: "oauth2" */
	const char *https_token;        /* HTTPS password or token; NULL: no HTTPS credentials */
	gitremote_hostkey_fn hostkey;   /* NULL: every SSH host key is refused */
	void *hostkey_payload;
	gitremote_message_fn message;   /* NULL: the server's messages are dropped */
	void *message_payload;
};

/*
 * The URL of the remote called name in the repository's git config,
 * appended to out.  ROTOR_ENOTFOUND when there is no such remote.
 */
int gitremote_url(struct buf *out, struct gitrepo *r, const char *name, struct err *e);

/*
 * Fetch from the remote called name: each refspec as git takes it
 * ("+refs/heads/main:refs/remotes/origin/main"; a leading '+' allows a
 * non-fast-forward update of the local ref).  No tags, no FETCH_HEAD.
 * A source ref the remote does not have leaves its local ref alone.
 */
int gitremote_fetch(struct gitrepo *r, const char *name, const char *const *refspecs, size_t n,
		    const struct gitremote_opts *o, struct err *e);

/*
 * The remote's current value of ref (a full ref name), as it advertises
 * it, without fetching objects: out gets 40 hex digits and *found 1, or
 * "" and *found 0 when the remote has no such ref (found NULL: that is
 * ROTOR_ENOTFOUND).
 */
int gitremote_lookup(char out[41], int *found, struct gitrepo *r, const char *name, const char *ref,
		     const struct gitremote_opts *o, struct err *e);

/* "expect" for a ref that must not exist on the remote. */
#define GITREMOTE_ABSENT ""

enum gitremote_result {
	GITREMOTE_UNSENT = 0,       /* not pushed (another update failed before anything was sent) */
	GITREMOTE_OK,               /* the remote updated (or deleted) the ref */
	GITREMOTE_REJECTED,         /* the remote refused it: reason holds the server's words */
	GITREMOTE_STALE             /* expect did not hold: nothing was sent */
};

struct gitremote_update {
	const char *src;            /* a local ref or a 40-hex commit; NULL: delete dst */
	const char *dst;            /* the full remote ref name, "refs/heads/x" */
	int force;                  /* allow a non-fast-forward */
	const char *expect;         /* NULL: no check; GITREMOTE_ABSENT: dst must not exist;
	                               40 hex: dst must be at that commit (a lease) */
	/* filled by gitremote_push(): */
	enum gitremote_result result;
	char remote_old[41];        /* dst on the remote before the push; "" when absent */
	char reason[256];           /* GITREMOTE_REJECTED: the server's reason; GITREMOTE_STALE: ours */
};

/*
 * Push the n updates to the remote called name, in one connection.
 * Before anything is sent, every expect is compared with what the
 * remote advertises (any mismatch: nothing is sent, that update is
 * GITREMOTE_STALE, ROTOR_ESTATE); the old value also travels with the
 * update, so a ref that moves in between is refused by the server
 * (GITREMOTE_REJECTED).  The pushes of several refs are not atomic.
 * Every line the server prints goes to o->message, in order.
 * Returns 0 when every update is GITREMOTE_OK.
 */
int gitremote_push(struct gitrepo *r, const char *name, struct gitremote_update *u, size_t n,
		   const struct gitremote_opts *o, struct err *e);

#endif
