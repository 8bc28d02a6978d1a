/*
 * session.c -- one SSH session (see ssh.h for the contract, ssh_int.h
 * for how the files of this module divide the work): TCP connect,
 * handshake, host key check against known_hosts, public key
 * authentication, disconnect; and the plumbing every other file uses:
 * the deadline, the one wait loop (ssh_wait_io), libssh2 error mapping.
 */
#define _DEFAULT_SOURCE
#include "reconcile/remote/ssh_int.h"

#include <errno.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <pthread.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "common/be32.h"
#include "common/clock.h"
#include "common/net.h"

#define KNOWN_HOSTS_MAX ((size_t)16 << 20)

/* ---- small helpers ------------------------------------------------------ */

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

int ssh_break(struct ssh_conn *c, struct err *e, int code, const char *fmt, ...)
{
	struct err own = ERR_INIT;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(own.msg, sizeof(own.msg), fmt, ap);
	va_end(ap);
	err_one_line(own.msg);
	if (!c->broken)
		memcpy(c->first_error, own.msg, sizeof(c->first_error));
	c->broken = 1;
	if (e) {
		e->code = code;
		memcpy(e->msg, own.msg, sizeof(e->msg));
	}
	return code;
}

/* Report a libssh2 failure (rc) while doing `what`. */
int ssh_lib_fail(struct ssh_conn *c, struct err *e, int rc, const char *what)
{
	if (transport_error(rc))
		return ssh_break(c, e, ROTOR_ERROR, "%s: %s: %s", c->name, what, lib_msg(c->s));
	if (rc == LIBSSH2_ERROR_ALLOC)
		return err_set(e, ROTOR_ENOMEM, "%s: out of memory while %s", c->name, what);
	return err_set(e, ROTOR_ERROR, "%s: %s: %s", c->name, what, lib_msg(c->s));
}

int ssh_buf_fail(struct ssh_conn *c, struct err *e, int rc, const char *what)
{
	return err_set(e, rc, "%s: %s: %s", c->name, what,
		       rc == ROTOR_ENOMEM ? "out of memory" :
		       rc == ROTOR_ETOOBIG ? "over the size cap" : "formatting failed");
}

static int timed_out(struct ssh_conn *c, struct err *e, const char *what)
{
	return ssh_break(c, e, ROTOR_ERROR, "%s: timed out while %s (deadline %d ms)", c->name, what, c->deadline_ms);
}

/*
 * libssh2's recv (LIBSSH2_CALLBACK_RECV; *abstract is the connection):
 * the bytes read ahead first, then one recv() of SSH_READ_AHEAD bytes.
 * -errno on failure, as libssh2's own.
 */
static ssize_t ssh_recv_ahead(libssh2_socket_t fd, void *buffer, size_t length, int flags, void **abstract)
{
	struct ssh_conn *c = *abstract;
	ssize_t n;

	if (c->rb_off < c->rb_len) {
		size_t k = c->rb_len - c->rb_off < length ? c->rb_len - c->rb_off : length;

		memcpy(buffer, c->rb + c->rb_off, k);
		c->rb_off += k;
		return (ssize_t)k;
	}
	if (c->rb_dry && !c->rb_plain)
		return -EAGAIN;
	if (c->rb_plain || length >= SSH_READ_AHEAD || (!c->rb && !(c->rb = malloc(SSH_READ_AHEAD))))
		n = recv(fd, buffer, length, flags);
	else if ((n = recv(fd, c->rb, SSH_READ_AHEAD, flags)) > 0) {
		c->rb_len = (size_t)n;
		c->rb_off = (size_t)n < length ? (size_t)n : length;
		memcpy(buffer, c->rb, c->rb_off);
		return (ssize_t)c->rb_off;
	}
	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EWOULDBLOCK) {
		c->rb_dry = 1;
		return -EAGAIN;
	}
	return errno ? -errno : -EIO;
}

/*
 * Wait until the socket is ready in the directions libssh2 is blocked
 * on, or the deadline passes.  0 = try the call again.
 */
int ssh_wait_io(struct ssh_conn *c, const char *what, struct err *e)
{
	int dir = libssh2_session_block_directions(c->s);

	/* Whatever this returns, the next read asks the kernel again. */
	c->rb_dry = 0;
	/*
	 * Bytes read ahead are there to take: waiting on the socket for them
	 * could wait forever.  (Without a direction the wait below is short.)
	 */
	if (c->rb_off < c->rb_len && (dir & LIBSSH2_SESSION_BLOCK_INBOUND)) {
		if (!(dir & LIBSSH2_SESSION_BLOCK_OUTBOUND))
			return 0;
		dir = LIBSSH2_SESSION_BLOCK_OUTBOUND;
	}
	for (;;) {
		struct pollfd p;
		int64_t left = c->deadline - clock_mono_ms();
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
		if (rc < 0 && errno != EINTR)
			return ssh_break(c, e, ROTOR_ERROR, "%s: poll: %s", c->name, strerror(errno));
	}
}

/* Every public entry point starts here. */
int ssh_usable(struct ssh_conn *c, struct err *e)
{
	if (!c)
		return err_set(e, ROTOR_EINVALID, "ssh: no connection");
	if (c->broken) {
		/* The cause is the first error, not this call: name it (without the host twice). */
		size_t n = strlen(c->name);
		const char *first = c->first_error;

		if (strncmp(first, c->name, n) == 0 && strncmp(first + n, ": ", 2) == 0)
			first += n + 2;
		return err_set(e, ROTOR_ERROR, "%s: connection unusable after an earlier error: %s", c->name,
			       first[0] ? first : "(not recorded)");
	}
	if (clock_mono_ms() >= c->deadline)
		return timed_out(c, e, "starting the next step");
	return 0;
}

/* ---- global -------------------------------------------------------------- */

int ssh_global_init(struct err *e)
{
	int rc = libssh2_init(0);

	if (rc != 0)
		return err_set(e, ROTOR_ERROR, "libssh2_init failed (%d)", rc);
	return 0;
}

static void id_cache_forget(void);

static void kh_cache_forget(void);

void ssh_global_shutdown(void)
{
	id_cache_forget();
	kh_cache_forget();
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

/*
 * A known_hosts file as read (kh_get()), shared by the threads of a run and
 * read again only when the file changes (its inode, size, modification or
 * change time): a fleet's known_hosts lists every host, and reading and
 * scanning all of it for every connection made observe quadratic in hosts.
 * text holds the lines, trimmed and NUL-terminated; always, in file order,
 * the lines that can name any host (a hashed name, only libssh2 can tell;
 * a pattern with a wildcard or a negation); names every other name of a
 * line (a host, or the host of "[host]:port") with its line, sorted
 * case-insensitively for lookup; revoked the keys listed under @revoked, as
 * "\n<base64>\n<base64>\n".  @cert-authority lines are not supported and
 * never trusted.  Immutable once read; refs counts its holders.
 */
struct kh_name {
	const char *p;
	size_t n;
	const char *line;
};

struct kh_file {
	char *path;
	struct stat st;
	struct buf text, revoked;
	const char **always;
	size_t nalways;
	struct kh_name *names;
	size_t nnames;
	unsigned refs;
};

static struct {
	pthread_mutex_t mu;
	struct kh_file *cur;
} kh_cache = { PTHREAD_MUTEX_INITIALIZER, NULL };

struct known {
	LIBSSH2_KNOWNHOSTS *kh;
	struct kh_file *file;   /* a reference (kh_put()) */
	size_t skipped;         /* lines libssh2 could not parse */
};

static void kh_free(struct kh_file *f)
{
	if (!f)
		return;
	free(f->path);
	buf_release(&f->text);
	buf_release(&f->revoked);
	free(f->always);
	free(f->names);
	free(f);
}

/* Drop a reference; the last one frees. */
static void kh_put(struct kh_file *f)
{
	if (!f)
		return;
	pthread_mutex_lock(&kh_cache.mu);
	if (--f->refs > 0)
		f = NULL;
	pthread_mutex_unlock(&kh_cache.mu);
	kh_free(f);
}

static void kh_cache_forget(void)
{
	struct kh_file *f;

	pthread_mutex_lock(&kh_cache.mu);
	f = kh_cache.cur;
	kh_cache.cur = NULL;
	pthread_mutex_unlock(&kh_cache.mu);
	kh_put(f);   /* the cache's own reference */
}

static int kh_name_cmp(const char *a, size_t an, const char *b, size_t bn)
{
	int r = strncasecmp(a, b, an < bn ? an : bn);

	return r ? r : (an > bn) - (an < bn);
}

static int kh_name_sort(const void *x, const void *y)
{
	const struct kh_name *a = x, *b = y;
	int r = kh_name_cmp(a->p, a->n, b->p, b->n);

	/* Ties in file order, so a lookup hands libssh2 the lines in order. */
	return r ? r : (a->line > b->line) - (a->line < b->line);
}

/* "@revoked HOSTS TYPE BASE64": remember the key, for any host. */
static int kh_revoked(struct kh_file *f, const char *line)
{
	const char *fld[4];
	size_t flen[4];
	const char *q = line;
	int nf = 0;

	while (nf < 4 && *q) {
		while (*q == ' ' || *q == '\t')
			q++;
		if (!*q)
			break;
		fld[nf] = q;
		while (*q && *q != ' ' && *q != '\t')
			q++;
		flen[nf] = (size_t)(q - fld[nf]);
		nf++;
	}
	return nf == 4 ? buf_printf(&f->revoked, "\n%.*s\n", (int)flen[3], fld[3]) : 0;
}

/* The names of one host line: into always, or each into names. */
static int kh_index_line(struct kh_file *f, const char *line, size_t *cap)
{
	const char *p = line, *q;
	size_t first = f->nnames, n;

	for (; *p && *p != ' ' && *p != '\t'; p = *q == ',' ? q + 1 : q) {
		for (q = p; *q && *q != ',' && *q != ' ' && *q != '\t';)
			q++;
		n = (size_t)(q - p);
		if (*p == '|' || *p == '!' || memchr(p, '*', n) || memchr(p, '?', n)) {
			f->nnames = first;   /* the line is for every host: no name needed */
			f->always[f->nalways++] = line;
			return 0;
		}
		if (*p == '[') {
			const char *close = memchr(p, ']', n);

			if (close) {
				n = (size_t)(close - p - 1);
				p++;
			}
		}
		if (f->nnames == *cap) {
			size_t ncap = *cap ? 2 * *cap : 64;
			struct kh_name *nn = realloc(f->names, ncap * sizeof(*nn));

			if (!nn)
				return ROTOR_ENOMEM;
			f->names = nn;
			*cap = ncap;
		}
		f->names[f->nnames].p = p;
		f->names[f->nnames].n = n;
		f->names[f->nnames].line = line;
		f->nnames++;
	}
	return 0;
}

/*
 * Split f->text into lines and index them.  libssh2_knownhost_readfile()
 * gives up on the first line it cannot parse (a key type it does not
 * know, a marker), which would make one odd line hide every host: rotor
 * hands it one line at a time.
 */
static int kh_parse(struct kh_file *f)
{
	char *line, *next;
	size_t nlines = 1, cap = 0, i;
	int rc;

	for (i = 0; i < f->text.len; i++)
		nlines += f->text.ptr[i] == '\n';
	if (!(f->always = malloc(nlines * sizeof(*f->always))))
		return ROTOR_ENOMEM;
	for (line = f->text.ptr; line && *line; line = next) {
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
			if (strncmp(line, "@revoked", 8) == 0 && (line[8] == ' ' || line[8] == '\t') &&
			    (rc = kh_revoked(f, line)) != 0)
				return rc;
			continue;
		}
		if ((rc = kh_index_line(f, line, &cap)) != 0)
			return rc;
	}
	if (f->nnames)
		qsort(f->names, f->nnames, sizeof(*f->names), kh_name_sort);
	return 0;
}

/* A reference to path as read now: the shared copy when the file has not changed. */
static int kh_get(struct kh_file **out, struct ssh_conn *c, const char *path, struct err *e)
{
	struct kh_file *f = NULL, *old = NULL;
	struct err fe = ERR_INIT;
	struct stat st;
	int rc = 0;

	*out = NULL;
	pthread_mutex_lock(&kh_cache.mu);
	if (stat(path, &st) != 0)
		memset(&st, 0, sizeof(st));   /* the read below says why */
	f = kh_cache.cur;
	if (f && st.st_ino && strcmp(f->path, path) == 0 && f->st.st_dev == st.st_dev && f->st.st_ino == st.st_ino &&
	    f->st.st_size == st.st_size && f->st.st_mtim.tv_sec == st.st_mtim.tv_sec &&
	    f->st.st_mtim.tv_nsec == st.st_mtim.tv_nsec && f->st.st_ctim.tv_sec == st.st_ctim.tv_sec &&
	    f->st.st_ctim.tv_nsec == st.st_ctim.tv_nsec) {
		f->refs++;
		*out = f;
		f = NULL;
		goto out;
	}
	if (!(f = calloc(1, sizeof(*f))) || !(f->path = strdup(path))) {
		rc = err_set(e, ROTOR_ENOMEM, "%s: out of memory reading known_hosts", c->name);
		goto out;
	}
	f->st = st;
	f->text = (struct buf)BUF_INIT;
	f->revoked = (struct buf)BUF_INIT;
	f->text.max = KNOWN_HOSTS_MAX;
	if ((rc = buf_read_file(&f->text, path, KNOWN_HOSTS_MAX, &fe)) != 0) {
		rc = err_set(e, rc == ROTOR_ENOMEM ? ROTOR_ENOMEM : ROTOR_ERROR, "%s: cannot read known_hosts: %s",
			     c->name, fe.msg);
		goto out;
	}
	if ((rc = kh_parse(f)) != 0) {
		rc = ssh_buf_fail(c, e, rc, "reading known_hosts");
		goto out;
	}
	f->refs = 2;   /* the cache's and the caller's */
	old = kh_cache.cur;
	kh_cache.cur = f;
	if (old && --old->refs > 0)
		old = NULL;
	*out = f;
	f = NULL;
out:
	pthread_mutex_unlock(&kh_cache.mu);
	kh_free(f);     /* one read here that failed */
	kh_free(old);   /* the copy it replaced, when nobody holds it */
	return rc;
}
static int kh_line_order(const void *x, const void *y)
{
	const char *a = *(const char *const *)x, *b = *(const char *const *)y;

	return (a > b) - (a < b);
}

/*
 * The lines of known_hosts that can name address, in file order, handed to
 * a libssh2 known-hosts list of c's session; k holds a reference to the file
 * for its @revoked keys.
 */
static int known_load(struct known *k, struct ssh_conn *c, const char *path, const char *address, struct err *e)
{
	const char **lines = NULL;
	size_t alen = strlen(address), lo, hi, n = 0, i;
	struct kh_file *f;
	int rc;

	if ((rc = kh_get(&k->file, c, path, e)) != 0)
		return rc;
	f = k->file;
	k->kh = libssh2_knownhost_init(c->s);
	if (!k->kh)
		return err_set(e, ROTOR_ENOMEM, "%s: libssh2_knownhost_init failed", c->name);
	/* The first name not below address, then every name equal to it. */
	for (lo = 0, hi = f->nnames; lo < hi;) {
		size_t mid = lo + (hi - lo) / 2;

		if (kh_name_cmp(f->names[mid].p, f->names[mid].n, address, alen) < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	for (hi = lo; hi < f->nnames && kh_name_cmp(f->names[hi].p, f->names[hi].n, address, alen) == 0;)
		hi++;
	if (f->nalways + (hi - lo) > 0 && !(lines = malloc((f->nalways + (hi - lo)) * sizeof(*lines))))
		return err_set(e, ROTOR_ENOMEM, "%s: out of memory reading known_hosts", c->name);
	for (i = 0; i < f->nalways; i++)
		lines[n++] = f->always[i];
	for (i = lo; i < hi; i++)
		if (!n || lines[n - 1] != f->names[i].line)   /* a line naming the host twice: once */
			lines[n++] = f->names[i].line;
	if (f->nalways && hi > lo)
		qsort(lines, n, sizeof(*lines), kh_line_order);
	for (i = 0; i < n; i++)
		if (libssh2_knownhost_readline(k->kh, lines[i], strlen(lines[i]), LIBSSH2_KNOWNHOST_FILE_OPENSSH) != 0)
			k->skipped++;
	free(lines);
	return 0;
}

static void known_release(struct known *k)
{
	if (k->kh)
		libssh2_knownhost_free(k->kh);
	k->kh = NULL;
	kh_put(k->file);
	k->file = NULL;
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
	int timeout = o->connect_timeout_ms > 0 ? o->connect_timeout_ms : SSH_DEFAULT_CONNECT_TIMEOUT_MS;
	int fd = net_connect(o->address, port, timeout, e);

	if (fd < 0)
		return e ? err_prefix(e, "%s", c->name) : fd;
	c->fd = fd;
	return 0;
}

/*
 * Is key (of type ht) the key known_hosts lists for address:port?
 * c->name and c->fingerprint name it in the messages.
 */
static int check_known(struct ssh_conn *c, struct known *k, const char *known_hosts, const char *address, int port,
		       const struct hostkey_type *ht, const char *key, size_t keylen, struct err *e)
{
	struct buf b64 = BUF_INIT;
	int r, rc;

	/* A revoked key is refused whatever else known_hosts says. */
	if (k->file && k->file->revoked.len) {
		if ((rc = buf_put(&b64, "\n", 1)) != 0 ||
		    (rc = base64_pad(&b64, (const unsigned char *)key, keylen)) != 0 ||
		    (rc = buf_put(&b64, "\n", 1)) != 0) {
			buf_release(&b64);
			return ssh_buf_fail(c, e, rc, "encoding the host key");
		}
		if (strstr(buf_cstr(&k->file->revoked), buf_cstr(&b64))) {
			buf_release(&b64);
			return err_set(e, ROTOR_EINVALID,
				       "host key for %s is marked @revoked in known_hosts %s; refusing "
				       "(it presented %s %s)", c->name, known_hosts, ht->name,
				       c->fingerprint);
		}
		buf_release(&b64);
	}

	r = libssh2_knownhost_checkp(k->kh, address, check_port(port), key, keylen,
				     LIBSSH2_KNOWNHOST_TYPE_PLAIN | LIBSSH2_KNOWNHOST_KEYENC_RAW |
				     ht->known_type, NULL);
	switch (r) {
	case LIBSSH2_KNOWNHOST_CHECK_MATCH:
		return 0;
	case LIBSSH2_KNOWNHOST_CHECK_MISMATCH:
		return err_set(e, ROTOR_EINVALID,
			       "host key for %s does NOT match known_hosts: possible man-in-the-middle; "
			       "refusing (it presented %s %s; %s lists another %s key)",
			       c->name, ht->name, c->fingerprint, known_hosts, ht->name);
	case LIBSSH2_KNOWNHOST_CHECK_NOTFOUND:
		return err_set(e, ROTOR_EINVALID,
			       "%s is not in known_hosts %s; add its key first (rotor never trusts "
			       "on first use); it presented %s %s",
			       c->name, known_hosts, ht->name, c->fingerprint);
	default:
		return err_set(e, ROTOR_ERROR, "%s: checking known_hosts %s failed: %s", c->name,
			       known_hosts, lib_msg(c->s));
	}
}

static int verify_hostkey(struct ssh_conn *c, struct known *k, const struct ssh_opts *o,
			  int port, struct err *e)
{
	const char *key, *hash;
	size_t keylen, i;
	int type;
	const struct hostkey_type *ht = NULL;

	key = libssh2_session_hostkey(c->s, &keylen, &type);
	if (!key)
		return ssh_lib_fail(c, e, libssh2_session_last_errno(c->s), "reading the host key");
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
	return check_known(c, k, o->known_hosts, o->address, port, ht, key, keylen, e);
}

int ssh_hostkey_check(const char *known_hosts, const char *label, const char *address, int port,
		      const char *keytype, const unsigned char *key, size_t keylen,
		      const unsigned char sha256[32], struct err *e)
{
	struct ssh_conn c;
	struct known k = { NULL, NULL, 0 };
	const struct hostkey_type *ht = NULL;
	size_t i;
	int rc;

	if (!known_hosts || !address || !*address || !keytype || !key || !keylen)
		return err_set(e, ROTOR_EINVALID, "ssh: known_hosts, address and key are required");
	port = port > 0 ? port : 22;
	if (port > 65535)
		return err_set(e, ROTOR_EINVALID, "ssh: %s: bad port %d", address, port);
	memset(&c, 0, sizeof(c));
	c.fd = -1;
	if (label && *label && strcmp(label, address) != 0)
		snprintf(c.name, sizeof(c.name), "%s (%s)", label, address);
	else
		snprintf(c.name, sizeof(c.name), "%s", address);
	for (i = 0; i < N_HOSTKEY_TYPES; i++)
		if (strcmp(hostkey_types[i].name, keytype) == 0)
			ht = &hostkey_types[i];
	if (!ht)
		return err_set(e, ROTOR_EINVALID, "%s: unsupported host key type %s; refusing", c.name, keytype);
	if (sha256) {
		memcpy(c.fingerprint, "SHA256:", 7);
		base64_nopad(c.fingerprint + 7, sizeof(c.fingerprint) - 7, sha256, 32);
	} else {
		snprintf(c.fingerprint, sizeof(c.fingerprint), "(fingerprint unknown)");
	}
	c.s = libssh2_session_init_ex(NULL, NULL, NULL, &c);
	if (!c.s)
		return err_set(e, ROTOR_ENOMEM, "%s: libssh2_session_init failed", c.name);
	rc = known_load(&k, &c, known_hosts, address, e);
	if (rc == 0)
		rc = check_known(&c, &k, known_hosts, address, port, ht, (const char *)key, keylen, e);
	known_release(&k);
	libssh2_session_free(c.s);
	return rc;
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
			rc = ssh_lib_fail(c, e, r, "authenticating with ssh-agent");
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

/* Base64 (whitespace skipped, padding optional) appended to out; 0, or -1 on a stray character. */
static int base64_decode(struct buf *out, const char *in, size_t n)
{
	unsigned v = 0;
	int bits = 0;
	size_t i;

	for (i = 0; i < n; i++) {
		int ch = (unsigned char)in[i], d;
		unsigned char byte;

		if (ch >= 'A' && ch <= 'Z') d = ch - 'A';
		else if (ch >= 'a' && ch <= 'z') d = ch - 'a' + 26;
		else if (ch >= '0' && ch <= '9') d = ch - '0' + 52;
		else if (ch == '+') d = 62;
		else if (ch == '/') d = 63;
		else if (ch == '=' || ch == '\n' || ch == '\r' || ch == ' ' || ch == '\t') continue;
		else return -1;
		v = (v << 6 | (unsigned)d) & 0xffffff;
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			byte = (unsigned char)(v >> bits);
			if (buf_put(out, &byte, 1) != 0)
				return -1;
		}
	}
	return 0;
}

/* Is the SSH string s (n bytes) the C string want? */
static int ssh_string_is(const unsigned char *s, uint32_t n, const char *want)
{
	return n == strlen(want) && memcmp(s, want, n) == 0;
}

/*
 * The public key blob an OpenSSH private key file carries in clear ahead
 * of its (perhaps encrypted) private part, into blob; -1 when path is
 * not such a file with one key.  With ed (may be NULL), also the key
 * itself when it is an Ed25519 key stored without encryption (else
 * *ed stays NULL): its private part checked (both check words equal, the
 * public key stored twice the same, and the one derived from the private
 * seed).  The decoded file is wiped.
 */
static int openssh_key(struct buf *blob, EVP_PKEY **ed, const char *path)
{
	static const char begin[] = "-----BEGIN OPENSSH PRIVATE KEY-----";
	static const char end[] = "-----END OPENSSH PRIVATE KEY-----";
	static const char magic[] = "openssh-key-v1";
	struct buf file = BUF_INIT, der = BUF_INIT;
	const unsigned char *p, *stop, *cipher, *kdf, *opts, *pubblob, *priv, *kt, *pk, *sk;
	uint32_t ncipher, nkdf, nopts, npub, npriv, nkt, npk, nsk;
	unsigned char derived[32];
	size_t dlen = sizeof(derived);
	const char *b, *q;
	EVP_PKEY *k = NULL;
	int rc = -1;

	if (ed)
		*ed = NULL;
	if (buf_read_file(&file, path, (size_t)64 << 10, NULL) != 0 || !file.ptr)
		goto out;
	if (!(b = strstr(file.ptr, begin)) || !(q = strstr(b, end)))
		goto out;
	b += sizeof(begin) - 1;
	if (base64_decode(&der, b, (size_t)(q - b)) != 0 || der.len < sizeof(magic))
		goto out;
	p = (const unsigned char *)der.ptr;
	stop = p + der.len;
	if (memcmp(p, magic, sizeof(magic)) != 0)
		goto out;
	p += sizeof(magic);
	/* ciphername, kdfname, kdfoptions, the number of keys (1), the public key, the private part */
	if (ssh_wire_string(&p, stop, &cipher, &ncipher) || ssh_wire_string(&p, stop, &kdf, &nkdf) ||
	    ssh_wire_string(&p, stop, &opts, &nopts) || stop - p < 4 || be32_get(p) != 1)
		goto out;
	p += 4;
	if (ssh_wire_string(&p, stop, &pubblob, &npub) || npub == 0 || buf_put(blob, pubblob, npub) != 0)
		goto out;
	rc = 0;
	if (!ed || !ssh_string_is(cipher, ncipher, "none") || ssh_wire_string(&p, stop, &priv, &npriv))
		goto out;
	/* check words, key type, public key, private key (seed and public key), comment */
	p = priv;
	stop = priv + npriv;
	if (npriv < 8 || be32_get(p) != be32_get(p + 4))
		goto out;
	p += 8;
	if (ssh_wire_string(&p, stop, &kt, &nkt) || !ssh_string_is(kt, nkt, "ssh-ed25519") ||
	    ssh_wire_string(&p, stop, &pk, &npk) || npk != 32 || ssh_wire_string(&p, stop, &sk, &nsk) || nsk != 64 ||
	    memcmp(sk + 32, pk, 32) != 0)
		goto out;
	/* The clear public blob is "ssh-ed25519" and the same key. */
	if (npub != 4 + 11 + 4 + 32 || memcmp(pubblob + npub - 32, pk, 32) != 0)
		goto out;
	if (!(k = EVP_PKEY_new_raw_private_key(EVP_PKEY_ED25519, NULL, sk, 32)) ||
	    EVP_PKEY_get_raw_public_key(k, derived, &dlen) != 1 || dlen != 32 || memcmp(derived, pk, 32) != 0) {
		EVP_PKEY_free(k);
		goto out;
	}
	*ed = k;
out:
	buf_wipe(&file);
	buf_wipe(&der);
	return rc;
}

static int openssh_pub_blob(struct buf *blob, const char *path)
{
	return openssh_key(blob, NULL, path);
}

/*
 * identity.pub into pub when it holds the very public key of identity
 * (an OpenSSH private key file); 0 if so, -1 if not (missing,
 * unreadable, another key, an identity in another format).  Without a
 * public key, libssh2 derives it from the private key on every
 * connection, and first tries the file as a PEM key with OpenSSL's
 * decoders: about half a millisecond of CPU per host, spent in vain on
 * an OpenSSH key.
 */
static int identity_pub(char *pub, size_t pubsz, const char *identity)
{
	struct buf want = BUF_INIT, text = BUF_INIT, got = BUF_INIT;
	const char *t, *s;
	int rc = -1;

	if ((size_t)snprintf(pub, pubsz, "%s.pub", identity) >= pubsz)
		return -1;
	if (openssh_pub_blob(&want, identity) != 0 ||
	    buf_read_file(&text, pub, (size_t)16 << 10, NULL) != 0 || !text.ptr)
		goto out;
	/* "TYPE BASE64 [COMMENT]" */
	for (t = text.ptr; *t && *t != ' ' && *t != '\t'; t++)
		;
	for (; *t == ' ' || *t == '\t'; t++)
		;
	for (s = t; *s && *s != ' ' && *s != '\t' && *s != '\n' && *s != '\r'; s++)
		;
	if (s > t && base64_decode(&got, t, (size_t)(s - t)) == 0 && got.len == want.len &&
	    memcmp(got.ptr, want.ptr, want.len) == 0)
		rc = 0;
out:
	buf_release(&want);
	buf_release(&text);
	buf_release(&got);
	return rc;
}

/*
 * The identity as read once for the process (the same path, inode, size
 * and time as last read; else read again): an unencrypted Ed25519 key is
 * kept (OpenSSL's, freed when replaced or at ssh_global_shutdown) with
 * its public blob, and rotor signs with it itself; any other key goes to
 * libssh2 by file on every connection, with identity.pub when it holds
 * that key.  libssh2 would read, decode and check the key file again for
 * each host.
 */
static struct {
	pthread_mutex_t mu;
	char *path;
	struct stat st;
	EVP_PKEY *ed;
	struct buf blob;
	int has_pub;
} id_cache = { PTHREAD_MUTEX_INITIALIZER, NULL, { 0 }, NULL, BUF_INIT, 0 };

static void id_cache_clear(void)
{
	free(id_cache.path);
	id_cache.path = NULL;
	EVP_PKEY_free(id_cache.ed);
	id_cache.ed = NULL;
	buf_release(&id_cache.blob);
	id_cache.has_pub = 0;
}

static void id_cache_forget(void)
{
	pthread_mutex_lock(&id_cache.mu);
	id_cache_clear();
	pthread_mutex_unlock(&id_cache.mu);
}

/* The identity's key (a new reference, or NULL) and public blob (into blob), and whether identity.pub holds it. */
static EVP_PKEY *id_lookup(const char *path, struct buf *blob, int *has_pub)
{
	struct stat st;
	EVP_PKEY *k = NULL;

	if (stat(path, &st) != 0)
		return NULL;
	pthread_mutex_lock(&id_cache.mu);
	if (!id_cache.path || strcmp(id_cache.path, path) != 0 || id_cache.st.st_ino != st.st_ino ||
	    id_cache.st.st_dev != st.st_dev || id_cache.st.st_size != st.st_size ||
	    id_cache.st.st_mtim.tv_sec != st.st_mtim.tv_sec || id_cache.st.st_mtim.tv_nsec != st.st_mtim.tv_nsec) {
		char pub[SSH_PATH_MAX_LEN + 8];

		id_cache_clear();
		if ((id_cache.path = strdup(path)) != NULL) {
			id_cache.st = st;
			if (openssh_key(&id_cache.blob, &id_cache.ed, path) != 0)
				buf_release(&id_cache.blob);
			id_cache.has_pub = identity_pub(pub, sizeof(pub), path) == 0;
		}
	}
	if (id_cache.ed && buf_put(blob, id_cache.blob.ptr, id_cache.blob.len) == 0 &&
	    EVP_PKEY_up_ref(id_cache.ed) == 1)
		k = id_cache.ed;
	*has_pub = id_cache.has_pub;
	pthread_mutex_unlock(&id_cache.mu);
	return k;
}

/* libssh2's signing callback: an Ed25519 signature of data with the key in *abstract. */
static int sign_ed25519(LIBSSH2_SESSION *s, unsigned char **sig, size_t *sig_len, const unsigned char *data,
			size_t data_len, void **abstract)
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	size_t n = 64;
	int ok;

	(void)s;
	*sig = NULL;
	*sig_len = 0;
	if (!ctx)
		return -1;
	/* libssh2 frees the signature with its allocator: the C library's (libssh2_session_init_ex(NULL, ...)). */
	ok = EVP_DigestSignInit(ctx, NULL, NULL, NULL, (EVP_PKEY *)*abstract) == 1 && (*sig = malloc(n)) != NULL &&
	     EVP_DigestSign(ctx, *sig, &n, data, data_len) == 1;
	EVP_MD_CTX_free(ctx);
	if (!ok) {
		free(*sig);
		*sig = NULL;
		return -1;
	}
	*sig_len = n;
	return 0;
}

static int authenticate(struct ssh_conn *c, const struct ssh_opts *o, struct err *e)
{
	char pub[SSH_PATH_MAX_LEN + 8];
	struct buf blob = BUF_INIT;
	EVP_PKEY *ed;
	int r, has_pub = 0;

	if (!o->identity)
		return auth_agent(c, e);
	if (access(o->identity, R_OK) != 0)
		return err_set(e, ROTOR_ERROR, "%s: cannot read identity %s: %s", c->name,
			       o->identity, strerror(errno));
	if ((ed = id_lookup(o->identity, &blob, &has_pub)) != NULL) {
		void *abstract = ed;

		NB_INT(c, e, "authenticating", r,
		       libssh2_userauth_publickey(c->s, c->user, (const unsigned char *)blob.ptr, blob.len,
						  sign_ed25519, &abstract));
		EVP_PKEY_free(ed);
	} else {
		if (has_pub && (size_t)snprintf(pub, sizeof(pub), "%s.pub", o->identity) >= sizeof(pub))
			has_pub = 0;
		NB_INT(c, e, "authenticating", r,
		       libssh2_userauth_publickey_fromfile_ex(c->s, c->user, (unsigned)strlen(c->user),
							      has_pub ? pub : NULL, o->identity, o->passphrase));
	}
	buf_release(&blob);
	if (r == NB_WAITFAIL)
		return e ? e->code : ROTOR_ERROR;
	if (r == 0)
		return 0;
	if (transport_error(r))
		return ssh_lib_fail(c, e, r, "authenticating");
	return err_set(e, ROTOR_ERROR, "%s: public key authentication as %s with %s failed: %s",
		       c->name, c->user, o->identity, lib_msg(c->s));
}

/* Free the session without waiting on a peer that may be gone. */
static void session_close(struct ssh_conn *c)
{
	ssh_prefetch_drop(c);
	c->rb_plain = 1;   /* libssh2 waits by itself now */
	if (c->s) {
		libssh2_session_set_blocking(c->s, 1);
		libssh2_session_set_timeout(c->s, c->broken ? 100 : 2000);
		/* A clean end is one message: the server then ends the channels itself, nothing to wait for. */
		if (!c->broken)
			libssh2_session_disconnect(c->s, "rotor: done");
		if (c->fd >= 0)
			shutdown(c->fd, SHUT_RDWR);   /* every send now fails at once */
		if (c->sftp)
			libssh2_sftp_shutdown(c->sftp);   /* frees it; its close fails at once */
		c->sftp = NULL;
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
	free(c->rb);
	free(c->user);
	free(c);
}

void ssh_set_deadline(struct ssh_conn *c, int ms)
{
	if (!c)
		return;
	c->deadline_ms = ms > 0 ? ms : SSH_DEFAULT_DEADLINE_MS;
	c->deadline = clock_mono_ms() + c->deadline_ms;
}

int ssh_broken(const struct ssh_conn *c, struct err *e)
{
	if (c && !c->broken)
		return 0;
	if (e)
		err_set(e, ROTOR_ERROR, "%s", !c ? "ssh: no connection" : c->first_error[0] ? c->first_error : c->name);
	return 1;
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
	struct known k = { NULL, NULL, 0 };
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
	libssh2_session_callback_set(c->s, LIBSSH2_CALLBACK_RECV, (void *)ssh_recv_ahead);
	if ((rc = known_load(&k, c, o->known_hosts, o->address, e)) != 0)
		goto fail;
	if ((rc = hostkey_prefs(&prefs, &k, o->address, port)) != 0) {
		rc = ssh_buf_fail(c, e, rc, "listing host key algorithms");
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
		rc = ssh_break(c, e, ROTOR_ERROR, "%s: SSH handshake failed: %s", c->name, lib_msg(c->s));
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

int ssh_check_path(struct ssh_conn *c, const char *path, struct err *e)
{
	size_t n;

	if (!path || path[0] != '/')
		return err_set(e, ROTOR_EINVALID, "%s: remote path must be absolute: %s", c->name,
			       path ? path : "(null)");
	n = strlen(path);
	if (n >= SSH_PATH_MAX_LEN)
		return err_set(e, ROTOR_EINVALID, "%s: remote path too long (%zu bytes)", c->name, n);
	if (strchr(path, '\n'))
		return err_set(e, ROTOR_EINVALID, "%s: remote path contains a newline", c->name);
	return 0;
}
