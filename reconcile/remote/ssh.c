/*
 * ssh.c -- SSH sessions on libssh2 1.10 (see ssh.h).
 *
 * Every session runs in libssh2's non-blocking mode: each call that
 * returns LIBSSH2_ERROR_EAGAIN is repeated after poll() on the socket in
 * the directions libssh2 asks for, with the connection's deadline as
 * the poll timeout.  That one loop (wait_io) is the only place time is
 * spent waiting, so the deadline holds for every step.  A call given up
 * half way leaves libssh2's state machines mid-step, so a timeout marks
 * the connection broken and nothing but ssh_disconnect() may follow.
 */
#define _DEFAULT_SOURCE
#include "reconcile/remote/ssh.h"

#include <errno.h>
#include <fcntl.h>
#include <libssh2.h>
#include <libssh2_sftp.h>
#include <limits.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define NAME_MAX_LEN 320
#define KNOWN_HOSTS_MAX ((size_t)16 << 20)
#define IO_CHUNK 32768
#define STDERR_KEEP 4096     /* stderr kept for messages when the caller discards it */
#define PATH_MAX_LEN 4096

struct ssh_conn {
	LIBSSH2_SESSION *s;
	LIBSSH2_SFTP *sftp;
	int fd;
	int broken;
	int become;
	int deadline_ms;
	int64_t deadline;              /* CLOCK_MONOTONIC milliseconds */
	char *user;
	char name[NAME_MAX_LEN];       /* "label (address)" */
	char fingerprint[96];          /* "SHA256:..." */
};

/* ---- small helpers ------------------------------------------------------ */

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void base64_nopad(char *out, size_t outsz, const unsigned char *in, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i < n && o + 5 < outsz; i += 3) {
		unsigned v = (unsigned)in[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		out[o++] = tab[(v >> 18) & 63];
		out[o++] = tab[(v >> 12) & 63];
		if (i + 1 < n)
			out[o++] = tab[(v >> 6) & 63];
		if (i + 2 < n)
			out[o++] = tab[v & 63];
	}
	out[o] = '\0';
}

/* Standard base64 with padding, as known_hosts stores keys. */
static int base64_pad(struct buf *out, const unsigned char *in, size_t n)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i;
	char q[4];
	int rc;

	for (i = 0; i < n; i += 3) {
		unsigned v = (unsigned)in[i] << 16;

		if (i + 1 < n)
			v |= (unsigned)in[i + 1] << 8;
		if (i + 2 < n)
			v |= in[i + 2];
		q[0] = tab[(v >> 18) & 63];
		q[1] = tab[(v >> 12) & 63];
		q[2] = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		q[3] = i + 2 < n ? tab[v & 63] : '=';
		if ((rc = buf_put(out, q, 4)) != 0)
			return rc;
	}
	return 0;
}

static const char *lib_msg(LIBSSH2_SESSION *s)
{
	char *msg = NULL;

	if (!s)
		return "no session";
	libssh2_session_last_error(s, &msg, NULL, 0);
	return msg && *msg ? msg : "unknown libssh2 error";
}

/* libssh2 errors after which the transport cannot be trusted any more. */
static int transport_error(int rc)
{
	switch (rc) {
	case LIBSSH2_ERROR_SOCKET_NONE:
	case LIBSSH2_ERROR_BANNER_RECV:
	case LIBSSH2_ERROR_BANNER_SEND:
	case LIBSSH2_ERROR_INVALID_MAC:
	case LIBSSH2_ERROR_KEX_FAILURE:
	case LIBSSH2_ERROR_ALLOC:
	case LIBSSH2_ERROR_SOCKET_SEND:
	case LIBSSH2_ERROR_KEY_EXCHANGE_FAILURE:
	case LIBSSH2_ERROR_TIMEOUT:
	case LIBSSH2_ERROR_DECRYPT:
	case LIBSSH2_ERROR_SOCKET_DISCONNECT:
	case LIBSSH2_ERROR_PROTO:
	case LIBSSH2_ERROR_ZLIB:
	case LIBSSH2_ERROR_SOCKET_TIMEOUT:
	case LIBSSH2_ERROR_COMPRESS:
	case LIBSSH2_ERROR_SOCKET_RECV:
	case LIBSSH2_ERROR_ENCRYPT:
	case LIBSSH2_ERROR_BAD_SOCKET:
		return 1;
	default:
		return 0;
	}
}

/* Report a libssh2 failure (rc) while doing `what`. */
static int lib_fail(struct ssh_conn *c, struct err *e, int rc, const char *what)
{
	if (transport_error(rc))
		c->broken = 1;
	if (rc == LIBSSH2_ERROR_ALLOC)
		return err_set(e, ROTOR_ENOMEM, "%s: out of memory while %s", c->name, what);
	return err_set(e, ROTOR_ERROR, "%s: %s: %s", c->name, what, lib_msg(c->s));
}

static int timed_out(struct ssh_conn *c, struct err *e, const char *what)
{
	c->broken = 1;
	return err_set(e, ROTOR_ERROR, "%s: timed out while %s (deadline %d ms)", c->name, what,
		       c->deadline_ms);
}

/*
 * Wait until the socket is ready in the directions libssh2 is blocked
 * on, or the deadline passes.  0 = try the call again.
 */
static int wait_io(struct ssh_conn *c, const char *what, struct err *e)
{
	int dir = libssh2_session_block_directions(c->s);

	for (;;) {
		struct pollfd p;
		int64_t left = c->deadline - now_ms();
		int tmo, rc;

		if (left <= 0)
			return timed_out(c, e, what);
		tmo = left > INT_MAX ? INT_MAX : (int)left;
		p.fd = c->fd;
		p.events = 0;
		p.revents = 0;
		if (dir & LIBSSH2_SESSION_BLOCK_INBOUND)
			p.events |= POLLIN;
		if (dir & LIBSSH2_SESSION_BLOCK_OUTBOUND)
			p.events |= POLLOUT;
		if (!p.events) {
			/* EAGAIN without a direction: data is queued inside libssh2. */
			p.events = POLLIN;
			if (tmo > 5)
				tmo = 5;
		}
		rc = poll(&p, 1, tmo);
		if (rc > 0 || (rc == 0 && !dir))
			return 0;
		if (rc < 0 && errno != EINTR) {
			c->broken = 1;
			return err_set(e, ROTOR_ERROR, "%s: poll: %s", c->name, strerror(errno));
		}
	}
}

/* Every public entry point starts here. */
static int usable(struct ssh_conn *c, struct err *e)
{
	if (!c)
		return err_set(e, ROTOR_EINVALID, "ssh: no connection");
	if (c->broken)
		return err_set(e, ROTOR_ERROR, "%s: connection unusable after an earlier error", c->name);
	if (now_ms() >= c->deadline)
		return timed_out(c, e, "starting the next step");
	return 0;
}

/*
 * Repeat an int-returning libssh2 call while it says EAGAIN.  rc gets the
 * call's result, or NB_WAITFAIL when waiting failed (e is filled then).
 */
#define NB_WAITFAIL INT_MIN
#define NB_INT(c, e, what, rc, call)                                   \
	do {                                                           \
		while (((rc) = (call)) == LIBSSH2_ERROR_EAGAIN) {      \
			if (wait_io((c), (what), (e))) {               \
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
			if (wait_io((c), (what), (e))) {                           \
				(failed) = 1;                                      \
				break;                                             \
			}                                                          \
		}                                                                  \
	} while (0)

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

/* ---- global -------------------------------------------------------------- */

int ssh_global_init(struct err *e)
{
	int rc = libssh2_init(0);

	if (rc != 0)
		return err_set(e, ROTOR_ERROR, "libssh2_init failed (%d)", rc);
	return 0;
}

void ssh_global_shutdown(void)
{
	libssh2_exit();
}

/* ---- connect ------------------------------------------------------------- */

struct hostkey_type {
	int session_type;   /* LIBSSH2_HOSTKEY_TYPE_* */
	int known_type;     /* LIBSSH2_KNOWNHOST_KEY_* */
	const char *name;   /* algorithm name */
};

static const struct hostkey_type hostkey_types[] = {
	{ LIBSSH2_HOSTKEY_TYPE_ED25519, LIBSSH2_KNOWNHOST_KEY_ED25519, "ssh-ed25519" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_256, LIBSSH2_KNOWNHOST_KEY_ECDSA_256, "ecdsa-sha2-nistp256" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_384, LIBSSH2_KNOWNHOST_KEY_ECDSA_384, "ecdsa-sha2-nistp384" },
	{ LIBSSH2_HOSTKEY_TYPE_ECDSA_521, LIBSSH2_KNOWNHOST_KEY_ECDSA_521, "ecdsa-sha2-nistp521" },
	{ LIBSSH2_HOSTKEY_TYPE_RSA, LIBSSH2_KNOWNHOST_KEY_SSHRSA, "ssh-rsa" },
};
#define N_HOSTKEY_TYPES (sizeof(hostkey_types) / sizeof(hostkey_types[0]))

struct known {
	LIBSSH2_KNOWNHOSTS *kh;
	struct buf revoked;   /* "\n<base64>\n<base64>\n": keys listed under @revoked */
	size_t skipped;       /* lines libssh2 could not parse */
};

/*
 * Load known_hosts line by line: libssh2_knownhost_readfile() gives up on
 * the first line it cannot parse (a key type it does not know, a marker),
 * which would make one odd line hide every host.
 */
static int known_load(struct known *k, struct ssh_conn *c, const char *path, struct err *e)
{
	struct buf file = BUF_INIT;
	struct err fe = ERR_INIT;
	char *line, *next;
	int rc;

	file.max = KNOWN_HOSTS_MAX;
	rc = buf_read_file(&file, path, KNOWN_HOSTS_MAX, &fe);
	if (rc) {
		err_set(e, rc == ROTOR_ENOMEM ? ROTOR_ENOMEM : ROTOR_ERROR,
			"%s: cannot read known_hosts: %s", c->name, fe.msg);
		buf_release(&file);
		return e ? e->code : rc;
	}
	k->kh = libssh2_knownhost_init(c->s);
	if (!k->kh) {
		buf_release(&file);
		return err_set(e, ROTOR_ENOMEM, "%s: libssh2_knownhost_init failed", c->name);
	}
	for (line = file.ptr; line && *line; line = next) {
		size_t len;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		len = strlen(line);
		while (len && (line[len - 1] == '\r' || line[len - 1] == ' ' || line[len - 1] == '\t'))
			line[--len] = '\0';
		while (*line == ' ' || *line == '\t')
			line++;
		if (!*line || *line == '#')
			continue;
		if (*line == '@') {
			/* "@revoked HOSTS TYPE BASE64": remember the key, for any host. */
			if (strncmp(line, "@revoked", 8) == 0 && (line[8] == ' ' || line[8] == '\t')) {
				const char *f[4];
				size_t flen[4];
				const char *q = line;
				int nf = 0;

				while (nf < 4 && *q) {
					while (*q == ' ' || *q == '\t')
						q++;
					if (!*q)
						break;
					f[nf] = q;
					while (*q && *q != ' ' && *q != '\t')
						q++;
					flen[nf] = (size_t)(q - f[nf]);
					nf++;
				}
				if (nf == 4 && buf_printf(&k->revoked, "\n%.*s\n", (int)flen[3], f[3])) {
					buf_release(&file);
					return err_nomem(e);
				}
			}
			continue;   /* @cert-authority: not supported, never trusted */
		}
		if (libssh2_knownhost_readline(k->kh, line, strlen(line),
					       LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
			k->skipped++;
	}
	buf_release(&file);
	return 0;
}

static void known_release(struct known *k)
{
	if (k->kh)
		libssh2_knownhost_free(k->kh);
	k->kh = NULL;
	buf_release(&k->revoked);
}

static int check_port(int port)
{
	/* Entries for port 22 are written without a port, as OpenSSH does. */
	return port == 22 ? -1 : port;
}

/*
 * Host key algorithms to offer: the types known_hosts lists for this host
 * first (so a host that has several keys presents the one we know), then
 * the rest.  A probe with a dummy key tells "listed with another key"
 * (MISMATCH) from "not listed" (NOTFOUND), and works on hashed names.
 */
static int hostkey_prefs(struct buf *out, struct known *k, const char *addr, int port)
{
	int known[N_HOSTKEY_TYPES];
	size_t i;
	int pass, rc;

	for (i = 0; i < N_HOSTKEY_TYPES; i++) {
		int r = libssh2_knownhost_checkp(k->kh, addr, check_port(port), "x", 1,
						 LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
						 hostkey_types[i].known_type, NULL);
		known[i] = r == LIBSSH2_KNOWNHOST_CHECK_MISMATCH || r == LIBSSH2_KNOWNHOST_CHECK_MATCH;
	}
	for (pass = 1; pass >= 0; pass--) {
		for (i = 0; i < N_HOSTKEY_TYPES; i++) {
			if (known[i] != pass)
				continue;
			rc = buf_printf(out, "%s%s", out->len ? "," : "", hostkey_types[i].name);
			if (rc)
				return rc;
		}
	}
	return 0;
}

static int tcp_connect(struct ssh_conn *c, const struct ssh_opts *o, int port, struct err *e)
{
	struct addrinfo hints, *res = NULL, *ai;
	char portstr[16];
	int timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : SSH_DEFAULT_CONNECT_TIMEOUT_MS;
	int64_t end = now_ms() + timeout;
	int rc, saved = 0, timed = 0;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	snprintf(portstr, sizeof(portstr), "%d", port);
	rc = getaddrinfo(o->address, portstr, &hints, &res);
	if (rc != 0)
		return err_set(e, ROTOR_ERROR, "%s: cannot resolve %s: %s", c->name, o->address,
			       gai_strerror(rc));
	for (ai = res; ai; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC,
				ai->ai_protocol);

		if (fd < 0) {
			saved = errno;
			continue;
		}
		if (connect(fd, ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
			saved = errno;
			close(fd);
			continue;
		}
		for (;;) {
			struct pollfd p = { fd, POLLOUT, 0 };
			int64_t left = end - now_ms();
			int soerr = 0;
			socklen_t sl = sizeof(soerr);

			if (left <= 0) {
				timed = 1;
				saved = ETIMEDOUT;
				break;
			}
			rc = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
			if (rc < 0 && errno == EINTR)
				continue;
			if (rc < 0) {
				saved = errno;
				break;
			}
			if (rc == 0)
				continue;   /* the loop sees the deadline */
			if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
				soerr = errno;
			if (soerr == 0) {
				int one = 1;

				setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
				freeaddrinfo(res);
				c->fd = fd;
				return 0;
			}
			saved = soerr;
			break;
		}
		close(fd);
		if (timed)
			break;
	}
	freeaddrinfo(res);
	if (timed)
		return err_set(e, ROTOR_ERROR, "%s: connect to port %d timed out after %d ms",
			       c->name, port, timeout);
	return err_set(e, ROTOR_ERROR, "%s: connect to port %d: %s", c->name, port,
		       strerror(saved ? saved : ECONNREFUSED));
}

static int verify_hostkey(struct ssh_conn *c, struct known *k, const struct ssh_opts *o,
			  int port, struct err *e)
{
	const char *key, *hash;
	size_t keylen, i;
	int type, r, rc;
	const struct hostkey_type *ht = NULL;
	struct buf b64 = BUF_INIT;

	key = libssh2_session_hostkey(c->s, &keylen, &type);
	if (!key)
		return lib_fail(c, e, libssh2_session_last_errno(c->s), "reading the host key");
	for (i = 0; i < N_HOSTKEY_TYPES; i++)
		if (hostkey_types[i].session_type == type)
			ht = &hostkey_types[i];
	if (!ht)
		return err_set(e, ROTOR_EINVALID, "%s: unsupported host key type %d; refusing",
			       c->name, type);
	hash = libssh2_hostkey_hash(c->s, LIBSSH2_HOSTKEY_HASH_SHA256);
	if (!hash)
		return err_set(e, ROTOR_ERROR, "%s: cannot hash the host key", c->name);
	memcpy(c->fingerprint, "SHA256:", 7);
	base64_nopad(c->fingerprint + 7, sizeof(c->fingerprint) - 7, (const unsigned char *)hash, 32);

	/* A revoked key is refused whatever else known_hosts says. */
	if (k->revoked.len) {
		if ((rc = buf_put(&b64, "\n", 1)) != 0 ||
		    (rc = base64_pad(&b64, (const unsigned char *)key, keylen)) != 0 ||
		    (rc = buf_put(&b64, "\n", 1)) != 0) {
			buf_release(&b64);
			return err_nomem(e);
		}
		if (strstr(buf_cstr(&k->revoked), buf_cstr(&b64))) {
			buf_release(&b64);
			return err_set(e, ROTOR_EINVALID,
				       "host key for %s is marked @revoked in known_hosts %s; refusing "
				       "(it presented %s %s)", c->name, o->known_hosts, ht->name,
				       c->fingerprint);
		}
		buf_release(&b64);
	}

	r = libssh2_knownhost_checkp(k->kh, o->address, check_port(port), key, keylen,
				     LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
				     ht->known_type, NULL);
	switch (r) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		return 0;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		return err_set(e, ROTOR_EINVALID,
			       "host key for %s does NOT match known_hosts: possible man-in-the-middle; "
			       "refusing (it presented %s %s; %s lists another %s key)",
			       c->name, ht->name, c->fingerprint, o->known_hosts, ht->name);
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		return err_set(e, ROTOR_EINVALID,
			       "%s is not in known_hosts %s; add its key first (rotor never trusts "
			       "on first use); it presented %s %s",
			       c->name, o->known_hosts, ht->name, c->fingerprint);
	default:
		return err_set(e, ROTOR_ERROR, "%s: checking known_hosts %s failed: %s", c->name,
			       o->known_hosts, lib_msg(c->s));
	}
}

static int auth_agent(struct ssh_conn *c, struct err *e)
{
	LIBSSH2_AGENT *agent;
	struct libssh2_agent_publickey *id = NULL, *prev = NULL;
	int rc, tried = 0;

	if (!getenv("SSH_AUTH_SOCK"))
		return err_set(e, ROTOR_ERROR,
			       "%s: no identity file given and no ssh-agent (SSH_AUTH_SOCK is not set)",
			       c->name);
	agent = libssh2_agent_init(c->s);
	if (!agent)
		return err_set(e, ROTOR_ENOMEM, "%s: libssh2_agent_init failed", c->name);
	if (libssh2_agent_connect(agent) != 0) {
		rc = err_set(e, ROTOR_ERROR, "%s: cannot connect to ssh-agent: %s", c->name,
			     lib_msg(c->s));
		goto out;
	}
	if (libssh2_agent_list_identities(agent) != 0) {
		rc = err_set(e, ROTOR_ERROR, "%s: cannot list ssh-agent keys: %s", c->name,
			     lib_msg(c->s));
		goto out;
	}
	for (;;) {
		int r = libssh2_agent_get_identity(agent, &id, prev);

		if (r == 1)
			break;
		if (r < 0) {
			rc = err_set(e, ROTOR_ERROR, "%s: reading ssh-agent keys: %s", c->name,
				     lib_msg(c->s));
			goto out;
		}
		tried++;
		NB_INT(c, e, "authenticating with ssh-agent", r,
		       libssh2_agent_userauth(agent, c->user, id));
		if (r == NB_WAITFAIL) {
			rc = e ? e->code : ROTOR_ERROR;
			goto out;
		}
		if (r == 0) {
			rc = 0;
			goto out;
		}
		if (transport_error(r)) {
			rc = lib_fail(c, e, r, "authenticating with ssh-agent");
			goto out;
		}
		prev = id;
	}
	rc = err_set(e, ROTOR_ERROR, "%s: public key authentication as %s failed with all %d "
		     "ssh-agent key(s)", c->name, c->user, tried);
out:
	libssh2_agent_disconnect(agent);
	libssh2_agent_free(agent);
	return rc;
}

static int authenticate(struct ssh_conn *c, const struct ssh_opts *o, struct err *e)
{
	int r;

	if (!o->identity)
		return auth_agent(c, e);
	if (access(o->identity, R_OK) != 0)
		return err_set(e, ROTOR_ERROR, "%s: cannot read identity %s: %s", c->name,
			       o->identity, strerror(errno));
	NB_INT(c, e, "authenticating", r,
	       libssh2_userauth_publickey_fromfile_ex(c->s, c->user, (unsigned)strlen(c->user),
						      NULL, o->identity, o->passphrase));
	if (r == NB_WAITFAIL)
		return e ? e->code : ROTOR_ERROR;
	if (r == 0)
		return 0;
	if (transport_error(r))
		return lib_fail(c, e, r, "authenticating");
	return err_set(e, ROTOR_ERROR, "%s: public key authentication as %s with %s failed: %s",
		       c->name, c->user, o->identity, lib_msg(c->s));
}

/* Free the session without waiting on a peer that may be gone. */
static void session_close(struct ssh_conn *c)
{
	if (c->s) {
		if (c->broken && c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);   /* every send now fails at once */
		libssh2_session_set_blocking(c->s, 1);
		libssh2_session_set_timeout(c->s, c->broken ? 100 : 2000);
		if (c->sftp)
			libssh2_sftp_shutdown(c->sftp);
		c->sftp = NULL;
		if (!c->broken)
			libssh2_session_disconnect(c->s, "rotor: done");
		libssh2_session_free(c->s);
		c->s = NULL;
	}
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

void ssh_disconnect(struct ssh_conn *c)
{
	if (!c)
		return;
	session_close(c);
	free(c->user);
	free(c);
}

void ssh_set_deadline(struct ssh_conn *c, int ms)
{
	if (!c)
		return;
	c->deadline_ms = ms > 0 ? ms : SSH_DEFAULT_DEADLINE_MS;
	c->deadline = now_ms() + c->deadline_ms;
}

const char *ssh_conn_name(const struct ssh_conn *c)
{
	return c ? c->name : "";
}

const char *ssh_host_fingerprint(const struct ssh_conn *c)
{
	return c ? c->fingerprint : "";
}

int ssh_connect(struct ssh_conn **out, const struct ssh_opts *o, struct err *e)
{
	struct ssh_conn *c = NULL;
	struct known k = { NULL, BUF_INIT, 0 };
	struct buf prefs = BUF_INIT;
	int port, rc;

	*out = NULL;
	if (!o || !o->address || !*o->address || !o->user || !*o->user || !o->known_hosts)
		return err_set(e, ROTOR_EINVALID, "ssh: address, user and known_hosts are required");
	port = o->port > 0 ? o->port : 22;
	if (port > 65535)
		return err_set(e, ROTOR_EINVALID, "ssh: %s: bad port %d", o->address, port);
	c = calloc(1, sizeof(*c));
	if (!c)
		return err_nomem(e);
	c->fd = -1;
	c->become = o->become;
	if (o->host_label && *o->host_label && strcmp(o->host_label, o->address) != 0)
		snprintf(c->name, sizeof(c->name), "%s (%s)", o->host_label, o->address);
	else
		snprintf(c->name, sizeof(c->name), "%s", o->address);
	c->user = strdup(o->user);
	if (!c->user) {
		rc = err_nomem(e);
		goto fail;
	}
	ssh_set_deadline(c, o->deadline_ms);

	c->s = libssh2_session_init_ex(NULL, NULL, NULL, c);
	if (!c->s) {
		rc = err_set(e, ROTOR_ENOMEM, "%s: libssh2_session_init failed", c->name);
		goto fail;
	}
	libssh2_session_set_blocking(c->s, 0);
	if ((rc = known_load(&k, c, o->known_hosts, e)) != 0)
		goto fail;
	if ((rc = hostkey_prefs(&prefs, &k, o->address, port)) != 0) {
		rc = err_nomem(e);
		goto fail;
	}
	if (libssh2_session_method_pref(c->s, LIBSSH2_METHOD_HOSTKEY, buf_cstr(&prefs)) != 0) {
		rc = err_set(e, ROTOR_ERROR, "%s: setting host key algorithms: %s", c->name,
			     lib_msg(c->s));
		goto fail;
	}

	if ((rc = tcp_connect(c, o, port, e)) != 0)
		goto fail;
	/* The deadline covers everything after the TCP connect. */
	ssh_set_deadline(c, o->deadline_ms);

	NB_INT(c, e, "in the SSH handshake", rc, libssh2_session_handshake(c->s, c->fd));
	if (rc == NB_WAITFAIL) {
		rc = e ? e->code : ROTOR_ERROR;
		goto fail;
	}
	if (rc != 0) {
		c->broken = 1;
		rc = err_set(e, ROTOR_ERROR, "%s: SSH handshake failed: %s", c->name, lib_msg(c->s));
		goto fail;
	}
	if ((rc = verify_hostkey(c, &k, o, port, e)) != 0)
		goto fail;
	if ((rc = authenticate(c, o, e)) != 0)
		goto fail;
	known_release(&k);
	buf_release(&prefs);
	*out = c;
	return 0;
fail:
	known_release(&k);
	buf_release(&prefs);
	ssh_disconnect(c);
	return rc ? rc : ROTOR_ERROR;
}

/* ---- paths and names ------------------------------------------------------ */

static int check_path(struct ssh_conn *c, const char *path, struct err *e)
{
	size_t n;

	if (!path || path[0] != '/')
		return err_set(e, ROTOR_EINVALID, "%s: remote path must be absolute: %s", c->name,
			       path ? path : "(null)");
	n = strlen(path);
	if (n >= PATH_MAX_LEN)
		return err_set(e, ROTOR_EINVALID, "%s: remote path too long (%zu bytes)", c->name, n);
	if (strchr(path, '\n'))
		return err_set(e, ROTOR_EINVALID, "%s: remote path contains a newline", c->name);
	return 0;
}

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

/* ---- SFTP ------------------------------------------------------------------- */

static int sftp_ready(struct ssh_conn *c, struct err *e)
{
	int failed;

	if (c->sftp)
		return 0;
	NB_PTR(c, e, "starting SFTP", c->sftp, libssh2_sftp_init(c->s), failed);
	if (failed)
		return e ? e->code : ROTOR_ERROR;
	if (!c->sftp)
		return lib_fail(c, e, libssh2_session_last_errno(c->s), "starting SFTP");
	return 0;
}

static const char *fx_text(unsigned long fx)
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
static unsigned long sftp_status(struct ssh_conn *c)
{
	if (c->sftp && libssh2_session_last_errno(c->s) == LIBSSH2_ERROR_SFTP_PROTOCOL)
		return libssh2_sftp_last_error(c->sftp);
	return (unsigned long)-1;
}

static int sftp_fail(struct ssh_conn *c, struct err *e, const char *what, const char *path)
{
	unsigned long fx = sftp_status(c);
	char ctx[PATH_MAX_LEN + 64];

	if (fx != (unsigned long)-1) {
		int code = fx == LIBSSH2_FX_NO_SUCH_FILE || fx == LIBSSH2_FX_NO_SUCH_PATH ?
			   ROTOR_ENOTFOUND : ROTOR_ERROR;

		return err_set(e, code, "%s: %s %s: %s", c->name, what, path, fx_text(fx));
	}
	snprintf(ctx, sizeof(ctx), "%s %s", what, path);
	return lib_fail(c, e, libssh2_session_last_errno(c->s), ctx);
}

static void handle_close(struct ssh_conn *c, LIBSSH2_SFTP_HANDLE *h)
{
	struct err ignore = ERR_INIT;
	int rc;

	if (!h || c->broken)
		return;   /* a broken session is torn down as a whole */
	NB_INT(c, &ignore, "closing a remote file", rc, libssh2_sftp_close_handle(h));
	(void)rc;
}

/* ---- exec --------------------------------------------------------------------- */

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
static const char *tail_of(const struct buf *b, char *tmp, size_t tmpsz)
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

static int exec_run(struct ssh_conn *c, const char *cmd, struct buf *out, struct buf *errb,
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
		return lib_fail(c, e, libssh2_session_last_errno(c->s), "opening a channel");
	NB_INT(c, e, "starting a command", rc,
	       libssh2_channel_process_startup(ch, "exec", 4, cmd, (unsigned)cmdlen));
	if (rc == NB_WAITFAIL)
		goto fail_coded;
	if (rc != 0) {
		rc = lib_fail(c, e, rc, "starting a command");
		goto out;
	}
	NB_INT(c, e, "closing the command's input", rc, libssh2_channel_send_eof(ch));
	if (rc == NB_WAITFAIL)
		goto fail_coded;
	if (rc != 0) {
		rc = lib_fail(c, e, rc, "closing the command's input");
		goto out;
	}
	tmp = malloc(IO_CHUNK);
	if (!tmp) {
		rc = err_nomem(e);
		goto out;
	}
	for (;;) {
		ssize_t n1 = libssh2_channel_read(ch, tmp, IO_CHUNK);

		if (n1 > 0 && (rc = put_out(out, tmp, (size_t)n1, 0)) != 0) {
			rc = err_set(e, rc, "%s: command output over %zu bytes", c->name,
				     out->max ? out->max : BUF_DEFAULT_MAX);
			goto out;
		}
		ssize_t n2 = libssh2_channel_read_stderr(ch, tmp, IO_CHUNK);

		if (n2 > 0 && (rc = put_out(errb, tmp, (size_t)n2, err_keep_head)) != 0) {
			rc = err_set(e, rc, "%s: command error output over %zu bytes", c->name,
				     errb->max ? errb->max : BUF_DEFAULT_MAX);
			goto out;
		}
		if (n1 > 0 || n2 > 0)
			continue;
		if (n1 < 0 && n1 != LIBSSH2_ERROR_EAGAIN) {
			rc = lib_fail(c, e, (int)n1, "reading command output");
			goto out;
		}
		if (n2 < 0 && n2 != LIBSSH2_ERROR_EAGAIN) {
			rc = lib_fail(c, e, (int)n2, "reading command output");
			goto out;
		}
		if (n1 == 0 && n2 == 0 && libssh2_channel_eof(ch))
			break;
		if (n1 == LIBSSH2_ERROR_EAGAIN || n2 == LIBSSH2_ERROR_EAGAIN) {
			if (wait_io(c, "waiting for a command", e))
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
		rc = lib_fail(c, e, rc, "waiting for a command to exit");
		goto out;
	}
	if (libssh2_channel_get_exit_signal(ch, &sig, &siglen, NULL, NULL, NULL, NULL) == 0 &&
	    sig && siglen) {
		char t[200];

		rc = err_set(e, ROTOR_ERROR, "%s: command killed by signal SIG%.*s: %s", c->name,
			     (int)(siglen > 32 ? 32 : siglen), sig, tail_of(errb, t, sizeof(t)));
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
	if ((rc = usable(c, e)) != 0)
		return rc;
	if (!cmd)
		return err_set(e, ROTOR_EINVALID, "%s: no command", c->name);
	own.max = STDERR_KEEP;
	rc = exec_run(c, cmd, out, errb, errb == &own, &status, e);
	if (rc == 0) {
		if (exit_status) {
			*exit_status = status;
		} else if (status != 0) {
			char t[300];

			rc = err_set(e, ROTOR_ERROR, "%s: command `%.80s%s` exited with status %d: %s",
				     c->name, cmd, strlen(cmd) > 80 ? "..." : "", status,
				     tail_of(errb, t, sizeof(t)));
		}
	}
	buf_release(&own);
	return rc;
}

/* Run cmd; a non-zero exit becomes an error naming `what` with stderr. */
static int exec_checked(struct ssh_conn *c, const char *cmd, const char *what, struct buf *out,
			struct buf *errb, struct err *e)
{
	int status, rc;
	char t[300];

	rc = exec_run(c, cmd, out, errb, 1, &status, e);
	if (rc)
		return rc;
	if (status != 0)
		return err_set(e, ROTOR_ERROR, "%s: %s failed (status %d): %s", c->name, what, status,
			       tail_of(errb, t, sizeof(t)));
	return 0;
}

/* ---- read --------------------------------------------------------------------- */

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

/* The login user may not read path: stat and cat it through sudo -n. */
static int read_via_sudo(struct buf *out, struct ssh_conn *c, const char *path, size_t max,
			 struct ssh_stat *st_out, struct err *e)
{
	struct buf cmd = BUF_INIT, so = BUF_INIT, se = BUF_INIT, data = BUF_INIT;
	unsigned long long size = 0;
	unsigned int rawmode = 0;
	unsigned long uid = 0, gid = 0;
	long long mtime = 0;
	int status, rc;

	se.max = STDERR_KEEP;
	so.max = 4096;
	if (buf_puts(&cmd, "sudo -n stat -L -c '%s %f %u %g %Y' -- ") || ssh_shell_quote(&cmd, path)) {
		rc = err_nomem(e);
		goto out;
	}
	rc = exec_run(c, buf_cstr(&cmd), &so, &se, 1, &status, e);
	if (rc)
		goto out;
	if (status != 0) {
		char t[300];

		if (strstr(buf_cstr(&se), "No such file"))
			rc = err_set(e, ROTOR_ENOTFOUND, "%s: %s: no such file", c->name, path);
		else
			rc = err_set(e, ROTOR_ERROR, "%s: cannot read %s (permission denied; sudo -n stat: %s)",
				     c->name, path, tail_of(&se, t, sizeof(t)));
		goto out;
	}
	if (sscanf(buf_cstr(&so), "%llu %x %lu %lu %lld", &size, &rawmode, &uid, &gid, &mtime) != 5) {
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
	if (buf_puts(&cmd, "sudo -n cat -- ") || ssh_shell_quote(&cmd, path)) {
		rc = err_nomem(e);
		goto out;
	}
	data.max = max ? max : 1;
	rc = exec_checked(c, buf_cstr(&cmd), "sudo -n cat", &data, &se, e);
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

int ssh_read_file(struct buf *out, struct ssh_conn *c, const char *path, size_t max,
		  struct ssh_stat *st_out, struct err *e)
{
	LIBSSH2_SFTP_HANDLE *h = NULL;
	LIBSSH2_SFTP_ATTRIBUTES a;
	size_t start = out->len, total = 0;
	int rc, failed;

	if ((rc = usable(c, e)) != 0 || (rc = check_path(c, path, e)) != 0 ||
	    (rc = sftp_ready(c, e)) != 0)
		return rc;
	NB_PTR(c, e, "opening a remote file", h,
	       libssh2_sftp_open_ex(c->sftp, path, (unsigned)strlen(path), LIBSSH2_FXF_READ, 0,
				    LIBSSH2_SFTP_OPENFILE), failed);
	if (failed)
		return e ? e->code : ROTOR_ERROR;
	if (!h) {
		if (sftp_status(c) == LIBSSH2_FX_PERMISSION_DENIED && c->become)
			return read_via_sudo(out, c, path, max, st_out, e);
		return sftp_fail(c, e, "cannot open", path);
	}
	memset(&a, 0, sizeof(a));
	NB_INT(c, e, "reading file attributes", rc, libssh2_sftp_fstat_ex(h, &a, 0));
	if (rc == NB_WAITFAIL) {
		rc = e ? e->code : ROTOR_ERROR;
		goto out;
	}
	if (rc != 0) {
		rc = sftp_fail(c, e, "cannot stat", path);
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
		size_t want = IO_CHUNK, room = max - total;
		ssize_t n;

		if (room < IO_CHUNK)
			want = room + 1;
		if ((rc = buf_grow(out, want)) != 0) {
			rc = err_set(e, rc, "%s: %s does not fit in the buffer", c->name, path);
			goto out;
		}
		n = libssh2_sftp_read(h, out->ptr + out->len, want);
		if (n == LIBSSH2_ERROR_EAGAIN) {
			if (wait_io(c, "reading a remote file", e)) {
				rc = e ? e->code : ROTOR_ERROR;
				goto out;
			}
			continue;
		}
		if (n < 0) {
			rc = sftp_fail(c, e, "cannot read", path);
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
	handle_close(c, h);
	if (rc)
		buf_truncate(out, start);
	return rc;
}

/* ---- write ---------------------------------------------------------------------- */

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

/* "/dir/.base.rotor-tmp-<hex>" next to path. */
static int temp_name(struct buf *out, const char *path)
{
	const char *slash = strrchr(path, '/');
	char hex[33];

	if (random_hex(hex, 8) != 0)
		return ROTOR_ERROR;
	if (buf_put(out, path, (size_t)(slash - path) + 1) ||
	    buf_printf(out, ".%s.rotor-tmp-%s", slash + 1, hex))
		return ROTOR_ENOMEM;
	return 0;
}

static void remove_temp(struct ssh_conn *c, const char *tmp, const char *sudo)
{
	struct err ignore = ERR_INIT;
	struct buf cmd = BUF_INIT;
	int rc, status;

	if (c->broken)
		return;
	NB_INT(c, &ignore, "removing a temporary file", rc,
	       libssh2_sftp_unlink_ex(c->sftp, tmp, (unsigned)strlen(tmp)));
	if (rc == 0 || c->broken || !*sudo)
		return;
	/* It may belong to another user by now. */
	if (!buf_printf(&cmd, "%srm -f -- ", sudo) && !ssh_shell_quote(&cmd, tmp))
		exec_run(c, buf_cstr(&cmd), NULL, NULL, 1, &status, &ignore);
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
	int rc, failed, created = 0;

	memset(out, 0, sizeof(*out));
	if (!wo)
		wo = &defaults;
	if ((rc = usable(c, e)) != 0 || (rc = check_path(c, path, e)) != 0 ||
	    (rc = check_name(c, "owner", wo->owner, e)) != 0 ||
	    (rc = check_name(c, "group", wo->group, e)) != 0)
		return rc;
	base = strrchr(path, '/') + 1;
	if (!*base || !strcmp(base, ".") || !strcmp(base, ".."))
		return err_set(e, ROTOR_EINVALID, "%s: not a file path: %s", c->name, path);
	if (!data && len)
		return err_set(e, ROTOR_EINVALID, "%s: no data for %s", c->name, path);
	sudo = resolve_become(c, wo->become) ? "sudo -n " : "";
	if ((rc = sftp_ready(c, e)) != 0)
		return rc;
	if ((rc = temp_name(&tmp, path)) != 0) {
		rc = rc == ROTOR_ENOMEM ? err_nomem(e) :
		     err_set(e, ROTOR_ERROR, "getrandom: %s", strerror(errno));
		goto out;
	}
	NB_PTR(c, e, "creating a temporary file", h,
	       libssh2_sftp_open_ex(c->sftp, buf_cstr(&tmp), (unsigned)tmp.len,
				    LIBSSH2_FXF_WRITE | LIBSSH2_FXF_CREAT | LIBSSH2_FXF_EXCL, 0600,
				    LIBSSH2_SFTP_OPENFILE), failed);
	if (failed) {
		rc = e ? e->code : ROTOR_ERROR;
		goto out;
	}
	if (!h) {
		rc = sftp_fail(c, e, "cannot create temporary file", buf_cstr(&tmp));
		goto out;
	}
	created = 1;
	while (done < len) {
		ssize_t n = libssh2_sftp_write(h, p + done, len - done);

		if (n == LIBSSH2_ERROR_EAGAIN) {
			if (wait_io(c, "writing a remote file", e)) {
				rc = e ? e->code : ROTOR_ERROR;
				goto out;
			}
			continue;
		}
		if (n < 0) {
			rc = sftp_fail(c, e, "cannot write", buf_cstr(&tmp));
			goto out;
		}
		done += (size_t)n;
	}
	NB_INT(c, e, "syncing a remote file", rc, libssh2_sftp_fsync(h));
	if (rc == NB_WAITFAIL) {
		rc = e ? e->code : ROTOR_ERROR;
		goto out;
	}
	if (rc != 0 && sftp_status(c) != LIBSSH2_FX_OP_UNSUPPORTED) {
		rc = sftp_fail(c, e, "cannot fsync", buf_cstr(&tmp));
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
		rc = sftp_fail(c, e, "cannot set the mode of", buf_cstr(&tmp));
		goto out;
	}
	NB_INT(c, e, "closing a remote file", rc, libssh2_sftp_close_handle(h));
	h = NULL;
	if (rc == NB_WAITFAIL) {
		rc = e ? e->code : ROTOR_ERROR;
		goto out;
	}
	if (rc != 0) {
		rc = sftp_fail(c, e, "cannot close", buf_cstr(&tmp));
		goto out;
	}

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
		handle_close(c, h);
	if (created && rc)
		remove_temp(c, buf_cstr(&tmp), sudo);
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

void ssh_staged_discard(struct ssh_conn *c, struct ssh_staged *v, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (v[i].tmp && !v[i].committed && usable(c, NULL) == 0)
			remove_temp(c, v[i].tmp, v[i].sudo ? "sudo -n " : "");
		ssh_staged_release(&v[i]);
	}
}

/*
 * Backups and owners first, then every rename back to back: in one perl
 * process when no sudo is needed (Debian's perl-base is Essential), so a
 * reader never sees a new certificate beside an old key for longer than
 * two rename() calls; else one mv after the other.
 */
int ssh_commit_staged(struct ssh_conn *c, struct ssh_staged *v, size_t n, struct err *e)
{
	struct buf cmd = BUF_INIT, se = BUF_INIT, bak = BUF_INIT, renames = BUF_INIT, args = BUF_INIT;
	size_t i;
	int rc = 0, any_sudo = 0;

	if ((rc = usable(c, e)) != 0)
		return rc;
	se.max = STDERR_KEEP;
	for (i = 0; i < n; i++) {
		const char *sudo = v[i].sudo ? "sudo -n " : "";

		any_sudo |= v[i].sudo;
		if (v[i].backup) {
			buf_release(&bak);
			rc |= buf_printf(&bak, "%s%s", v[i].path, SSH_BACKUP_SUFFIX);
			rc |= buf_puts(&cmd, "{ test ! -e ");
			rc |= ssh_shell_quote(&cmd, v[i].path);
			rc |= buf_printf(&cmd, " || %scp -p -- ", sudo);
			rc |= ssh_shell_quote(&cmd, v[i].path);
			rc |= buf_puts(&cmd, " ");
			rc |= ssh_shell_quote(&cmd, buf_cstr(&bak));
			rc |= buf_puts(&cmd, "; } && ");
		}
		if (v[i].owner || v[i].group) {
			struct buf spec = BUF_INIT;

			rc |= buf_printf(&spec, "%s%s%s", v[i].owner ? v[i].owner : "", v[i].group ? ":" : "",
					 v[i].group ? v[i].group : "");
			rc |= buf_printf(&cmd, "%schown ", sudo);
			rc |= ssh_shell_quote(&cmd, buf_cstr(&spec));
			rc |= buf_puts(&cmd, " -- ");
			rc |= ssh_shell_quote(&cmd, v[i].tmp);
			rc |= buf_puts(&cmd, " && ");
			buf_release(&spec);
		}
		rc |= buf_printf(&renames, "%s%smv -f -- ", i ? " && " : "", sudo);
		rc |= ssh_shell_quote(&renames, v[i].tmp);
		rc |= buf_puts(&renames, " ");
		rc |= ssh_shell_quote(&renames, v[i].path);
		rc |= buf_puts(&args, " ");
		rc |= ssh_shell_quote(&args, v[i].tmp);
		rc |= buf_puts(&args, " ");
		rc |= ssh_shell_quote(&args, v[i].path);
	}
	if (!any_sudo && n > 1) {
		rc |= buf_puts(&cmd, "if command -v perl >/dev/null 2>&1; then perl -e "
				     "'for (my $i = 0; $i < @ARGV; $i += 2) { rename($ARGV[$i], $ARGV[$i + 1]) "
				     "or die \"rename $ARGV[$i + 1]: $!\\n\" }' --");
		rc |= buf_put(&cmd, args.ptr, args.len);
		rc |= buf_puts(&cmd, "; else ");
		rc |= buf_put(&cmd, renames.ptr, renames.len);
		rc |= buf_puts(&cmd, "; fi");
	} else {
		rc |= buf_put(&cmd, renames.ptr, renames.len);
	}
	if (rc) {
		rc = err_nomem(e);
		goto out;
	}
	rc = exec_checked(c, buf_cstr(&cmd), "replacing the files", NULL, &se, e);
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

	if ((rc = ssh_stage_file(c, path, data, len, wo, &st, e)) != 0)
		return rc;
	rc = ssh_commit_staged(c, &st, 1, e);
	if (rc && e)
		err_prefix(e, "writing %s", path);
	ssh_staged_discard(c, &st, 1);
	return rc;
}

int ssh_restore_backup(struct ssh_conn *c, const char *path, int become, struct err *e)
{
	struct buf tmp = BUF_INIT, cmd = BUF_INIT, se = BUF_INIT, bak = BUF_INIT;
	const char *sudo;
	int rc, status;

	if ((rc = usable(c, e)) != 0 || (rc = check_path(c, path, e)) != 0)
		return rc;
	sudo = resolve_become(c, become) ? "sudo -n " : "";
	se.max = STDERR_KEEP;
	if ((rc = temp_name(&tmp, path)) != 0) {
		rc = rc == ROTOR_ENOMEM ? err_nomem(e) :
		     err_set(e, ROTOR_ERROR, "getrandom: %s", strerror(errno));
		goto out;
	}
	rc = buf_printf(&bak, "%s%s", path, SSH_BACKUP_SUFFIX);
	rc |= buf_printf(&cmd, "if %scp -p -- ", sudo);
	rc |= ssh_shell_quote(&cmd, buf_cstr(&bak));
	rc |= buf_puts(&cmd, " ");
	rc |= ssh_shell_quote(&cmd, buf_cstr(&tmp));
	rc |= buf_printf(&cmd, "; then %smv -f -- ", sudo);
	rc |= ssh_shell_quote(&cmd, buf_cstr(&tmp));
	rc |= buf_puts(&cmd, " ");
	rc |= ssh_shell_quote(&cmd, path);
	rc |= buf_printf(&cmd, " || { %srm -f -- ", sudo);
	rc |= ssh_shell_quote(&cmd, buf_cstr(&tmp));
	rc |= buf_puts(&cmd, "; exit 1; }; else exit 1; fi");
	if (rc) {
		rc = err_nomem(e);
		goto out;
	}
	rc = exec_run(c, buf_cstr(&cmd), NULL, &se, 1, &status, e);
	if (rc)
		goto out;
	if (status != 0) {
		char t[300];

		if (strstr(buf_cstr(&se), "No such file") && strstr(buf_cstr(&se), SSH_BACKUP_SUFFIX))
			rc = err_set(e, ROTOR_ENOTFOUND, "%s: no backup %s to restore", c->name,
				     buf_cstr(&bak));
		else
			rc = err_set(e, ROTOR_ERROR, "%s: restoring %s from %s failed: %s", c->name,
				     path, buf_cstr(&bak), tail_of(&se, t, sizeof(t)));
	}
out:
	buf_release(&tmp);
	buf_release(&cmd);
	buf_release(&se);
	buf_release(&bak);
	return rc;
}
