/*
 * probe.c -- live TLS and PostgreSQL probes (see probe.h).
 *
 * One probe is one struct conn on the caller's stack: a non-blocking
 * socket, an SSL_CTX built from the request (in-memory trust store,
 * client certificate and key), and a deadline.  Every wait is a poll()
 * bounded by that deadline.  OpenSSL talks to the socket through a tiny
 * BIO of our own that uses send(MSG_NOSIGNAL), so a peer that hangs up
 * never raises SIGPIPE in the calling process.
 *
 * The handshake runs with SSL_VERIFY_NONE so that a server that does not
 * verify still shows its leaf; OpenSSL verifies the chain all the same
 * and keeps the verdict, which is trusted only when
 * SSL_get_verify_result() == X509_V_OK.
 */
#include "reconcile/tls/probe.h"
#include "reconcile/tls/probe_int.h"
#include "common/hex.h"
#include "reconcile/tls/key.h"
#include "reconcile/tls/verify.h"

#include "common/be32.h"
#include "common/clock.h"
#include "common/net.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#define PG_SSLREQUEST_CODE 80877103u   /* 1234 << 16 | 5679 */
#define PG_PROTOCOL_3_0 196608u         /* 3 << 16 */
#define PG_MAX_ERROR_BYTES 8192         /* an ErrorResponse longer than this is refused */
#define PG_MAX_NAME 256                 /* user and database names */
#define PROBE_BIO_TYPE (0x7f | BIO_TYPE_SOURCE_SINK) /* below BIO_TYPE_START: never handed out */

struct conn {
	int fd;
	long long deadline;       /* CLOCK_MONOTONIC ms */
	int last_errno;           /* of the last failed socket call in the BIO */
	int verify_depth;         /* depth of the first verification error, -1 none */
	int fatal;                /* a fatal TLS error: no close_notify then */
	int alert;                /* the first fatal alert from the server, -1 none */
	SSL_CTX *ctx;
	SSL *ssl;
	BIO_METHOD *meth;
	struct probe_result *out;
};

/* ---- small helpers ---- */

/* The first failure is the one reported; later ones are consequences. */
static void fail(struct probe_result *out, const char *fmt, ...) ROTOR_PRINTF(2, 3);
static void fail(struct probe_result *out, const char *fmt, ...)
{
	va_list ap;

	if (out->error[0])
		return;
	va_start(ap, fmt);
	vsnprintf(out->error, sizeof(out->error), fmt, ap);
	va_end(ap);
}

static const char *errno_text(int err, char *tmp, size_t len)
{
	if (strerror_r(err, tmp, len) != 0)
		snprintf(tmp, len, "error %d", err);
	return tmp;
}

/* Wait for events on fd until the deadline: 1 ready, 0 timed out, -1 error (errno). */
static int wait_fd(int fd, short events, long long deadline)
{
	struct pollfd p;
	long long left;
	int r;

	for (;;) {
		left = deadline - clock_mono_ms();
		if (left <= 0)
			return 0;
		p.fd = fd;
		p.events = events;
		p.revents = 0;
		r = poll(&p, 1, left > INT_MAX ? INT_MAX : (int)left);
		if (r > 0)
			return 1;  /* POLLERR/POLLHUP too: the next call reports what it is */
		if (r == 0)
			return 0;
		if (errno != EINTR)
			return -1;
	}
}

/* OpenSSL's reason for the first error in this thread's queue; empties the queue. */
static void ossl_reason(char *buf, size_t len)
{
	unsigned long code = ERR_peek_error();
	const char *r = code ? ERR_reason_error_string(code) : NULL;

	if (r)
		snprintf(buf, len, "%s", r);
	else if (code)
		snprintf(buf, len, "OpenSSL error %lx", code);
	else
		snprintf(buf, len, "unknown TLS error");
	ERR_clear_error();
}

static int ossl_fail(struct err *e, int code, const char *what)
{
	char r[160];

	ossl_reason(r, sizeof(r));
	return err_set(e, code, "%s: %s", what, r);
}

/* ---- the socket BIO: send/recv without SIGPIPE, never blocking ---- */

static int bio_sock_write(BIO *b, const char *data, int len)
{
	struct conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = send(c->fd, data, (size_t)len, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		c->last_errno = errno;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_write(b);
		return -1;
	}
	return (int)n;
}

static int bio_sock_read(BIO *b, char *data, int len)
{
	struct conn *c = BIO_get_data(b);
	ssize_t n;

	BIO_clear_retry_flags(b);
	do
		n = recv(c->fd, data, (size_t)len, MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0) {
		c->last_errno = errno;
		if (errno == EAGAIN || errno == EWOULDBLOCK)
			BIO_set_retry_read(b);
		return -1;
	}
	if (n == 0)
		c->last_errno = 0;
	return (int)n;
}

static int bio_sock_puts(BIO *b, const char *s)
{
	size_t n = strlen(s);

	return bio_sock_write(b, s, n > INT_MAX ? INT_MAX : (int)n);
}

static long bio_sock_ctrl(BIO *b, int cmd, long num, void *ptr)
{
	(void)b;
	(void)num;
	(void)ptr;
	return cmd == BIO_CTRL_FLUSH ? 1 : 0;
}

static int bio_sock_create(BIO *b)
{
	BIO_set_init(b, 1);
	return 1;
}

/* ---- OpenSSL callbacks: they find the struct conn through SSL app data ---- */

static int verify_cb(int ok, X509_STORE_CTX *x)
{
	SSL *ssl = X509_STORE_CTX_get_ex_data(x, SSL_get_ex_data_X509_STORE_CTX_idx());
	struct conn *c = ssl ? SSL_get_app_data(ssl) : NULL;

	if (!ok && c && c->verify_depth < 0)
		c->verify_depth = X509_STORE_CTX_get_error_depth(x);
	return ok;  /* OpenSSL's own verdict: it stops at the first error */
}

static void info_cb(const SSL *ssl, int where, int ret)
{
	struct conn *c = SSL_get_app_data(ssl);

	/* A fatal alert from the server: the words are OpenSSL's, not the peer's. */
	if (c && (where & SSL_CB_READ_ALERT) && (ret >> 8) == SSL3_AL_FATAL && c->alert < 0) {
		c->alert = ret & 0xff;
		snprintf(c->out->tls_alert, sizeof(c->out->tls_alert), "%s", SSL_alert_desc_string_long(ret));
	}
}

/* Alerts a server sends about the client's certificate (RFC 8446 6.2, RFC 5246 7.2.2). */
static int client_cert_alert(int alert)
{
	switch (alert) {
	case SSL3_AD_BAD_CERTIFICATE:
	case SSL3_AD_UNSUPPORTED_CERTIFICATE:
	case SSL3_AD_CERTIFICATE_REVOKED:
	case SSL3_AD_CERTIFICATE_EXPIRED:
	case SSL3_AD_CERTIFICATE_UNKNOWN:
	case TLS1_AD_UNKNOWN_CA:
	case TLS1_AD_ACCESS_DENIED:
	case TLS13_AD_CERTIFICATE_REQUIRED:
		return 1;
	default:
		return 0;
	}
}

/* ---- setup: parse what the caller gave, build SSL_CTX ---- */

/* A bundle with at least one certificate (verify.c reads it). */
static int read_certs(STACK_OF(X509) **out, const char *pem, size_t len, const char *what,
		      struct err *e)
{
	int rc = verify_read_bundle(out, pem, len, what, e);

	if (rc == 0 && sk_X509_num(*out) == 0) {
		sk_X509_pop_free(*out, X509_free);
		*out = NULL;
		rc = err_set(e, ROTOR_EINVALID, "%s: no PEM certificate", what);
	}
	return rc;
}

/* The client key, parsed from the caller's memory (no copy of the PEM). */
static int load_key(EVP_PKEY **out, const struct probe_req *req, struct err *e)
{
	int rc;

	*out = NULL;
	if (!req->client_key_pem || req->client_key_len == 0)
		return err_set(e, ROTOR_EINVALID, "client certificate given without its key");
	if ((rc = key_decode(out, req->client_key_pem, req->client_key_len, req->client_key_pass, 0, e)) < 0)
		err_prefix(e, "client key");
	return rc;
}

static int setup_ctx(struct conn *c, const struct probe_req *req, struct err *e)
{
	STACK_OF(X509) *trust = NULL, *chain = NULL;
	X509_STORE *store = NULL;
	EVP_PKEY *key = NULL;
	int rc = 0, i;

	if ((rc = read_certs(&trust, req->trust_pem, req->trust_len, "trust bundle", e)) < 0)
		goto out;
	if (!(c->ctx = SSL_CTX_new(TLS_client_method())) || !(store = X509_STORE_new())) {
		rc = err_nomem(e);
		goto out;
	}
	for (i = 0; i < sk_X509_num(trust); i++)
		if (!X509_STORE_add_cert(store, sk_X509_value(trust, i)))
			ERR_clear_error();  /* the same certificate twice */
	SSL_CTX_set_cert_store(c->ctx, store);  /* the context owns it now */
	store = NULL;
	if (!SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION) ||
	    !SSL_CTX_set_purpose(c->ctx, X509_PURPOSE_SSL_SERVER)) {
		rc = ossl_fail(e, ROTOR_ERROR, "TLS settings");
		goto out;
	}
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_NONE, verify_cb);
	SSL_CTX_set_session_cache_mode(c->ctx, SSL_SESS_CACHE_OFF);

	if (req->client_cert_pem) {
		if ((rc = read_certs(&chain, req->client_cert_pem, req->client_cert_len,
				     "client certificate", e)) < 0 ||
		    (rc = load_key(&key, req, e)) < 0)
			goto out;
		if (SSL_CTX_use_certificate(c->ctx, sk_X509_value(chain, 0)) != 1) {
			rc = ossl_fail(e, ROTOR_EINVALID, "client certificate");
			goto out;
		}
		for (i = 1; i < sk_X509_num(chain); i++)
			if (SSL_CTX_add1_chain_cert(c->ctx, sk_X509_value(chain, i)) != 1) {
				rc = ossl_fail(e, ROTOR_EINVALID, "client certificate chain");
				goto out;
			}
		if (SSL_CTX_use_PrivateKey(c->ctx, key) != 1 || SSL_CTX_check_private_key(c->ctx) != 1) {
			ERR_clear_error();
			rc = err_set(e, ROTOR_EINVALID, "client key does not match the client certificate");
			goto out;
		}
	}
out:
	ERR_clear_error();
	EVP_PKEY_free(key);
	X509_STORE_free(store);
	sk_X509_pop_free(trust, X509_free);
	sk_X509_pop_free(chain, X509_free);
	return rc;
}

static int setup_ssl(struct conn *c, const struct probe_req *req, struct err *e)
{
	X509_VERIFY_PARAM *vp;
	BIO *bio;

	if (!(c->meth = BIO_meth_new(PROBE_BIO_TYPE, "rotor probe socket")) ||
	    !BIO_meth_set_write(c->meth, bio_sock_write) || !BIO_meth_set_read(c->meth, bio_sock_read) ||
	    !BIO_meth_set_puts(c->meth, bio_sock_puts) || !BIO_meth_set_ctrl(c->meth, bio_sock_ctrl) ||
	    !BIO_meth_set_create(c->meth, bio_sock_create))
		return err_nomem(e);
	if (!(c->ssl = SSL_new(c->ctx)) || !(bio = BIO_new(c->meth)))
		return err_nomem(e);
	BIO_set_data(bio, c);
	SSL_set_bio(c->ssl, bio, bio);  /* one reference, now the SSL's */
	SSL_set_app_data(c->ssl, c);
	SSL_set_info_callback(c->ssl, info_cb);
	if (req->server_name && req->server_name[0]) {
		vp = SSL_get0_param(c->ssl);
		/* A verify-full client: IP SANs for an address, DNS SANs (and SNI) for a name. */
		if (!X509_VERIFY_PARAM_set1_ip_asc(vp, req->server_name)) {
			ERR_clear_error();
			X509_VERIFY_PARAM_set_hostflags(vp, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
			if (!X509_VERIFY_PARAM_set1_host(vp, req->server_name, 0) ||
			    !SSL_set_tlsext_host_name(c->ssl, req->server_name))
				return ossl_fail(e, ROTOR_EINVALID, "server name");
		}
	}
	SSL_set_connect_state(c->ssl);
	return 0;
}

/* ---- TCP ---- */

/* Connect within the connect timeout; 0 connected, -1 failed (reported in out). */
static int tcp_connect(struct conn *c, const struct probe_req *req, int timeout_ms)
{
	struct err e = ERR_INIT;
	long long left = c->deadline - clock_mono_ms();
	int fd;

	if (left < timeout_ms)
		timeout_ms = left > 0 ? (int)left : 0;
	fd = net_connect(req->address, req->port, timeout_ms, &e);
	if (fd < 0) {
		fail(c->out, "%s", e.msg);
		return -1;
	}
	c->fd = fd;
	c->out->connected = 1;
	return 0;
}

/* Plain bytes before TLS (the SSLRequest). */
static int raw_send(struct conn *c, const unsigned char *p, size_t n)
{
	char tmp[128];
	ssize_t w;
	int r;

	while (n > 0) {
		w = send(c->fd, p, n, MSG_NOSIGNAL | MSG_DONTWAIT);
		if (w > 0) {
			p += w;
			n -= (size_t)w;
			continue;
		}
		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			r = wait_fd(c->fd, POLLOUT, c->deadline);
			if (r == 1)
				continue;
			if (r == 0) {
				fail(c->out, "timed out sending to the server");
				return -1;
			}
		}
		fail(c->out, "send: %s", errno_text(errno, tmp, sizeof(tmp)));
		return -1;
	}
	return 0;
}

/* Exactly one byte: 1 read, 0 the server closed, -1 failed (reported). */
static int raw_recv1(struct conn *c, unsigned char *byte)
{
	char tmp[128];
	ssize_t n;
	int r;

	for (;;) {
		n = recv(c->fd, byte, 1, MSG_DONTWAIT);
		if (n >= 0)
			return (int)n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN && errno != EWOULDBLOCK) {
			fail(c->out, "recv: %s", errno_text(errno, tmp, sizeof(tmp)));
			return -1;
		}
		r = wait_fd(c->fd, POLLIN, c->deadline);
		if (r == 0) {
			fail(c->out, "timed out waiting for the server's answer to SSLRequest");
			return -1;
		}
		if (r < 0) {
			fail(c->out, "poll: %s", errno_text(errno, tmp, sizeof(tmp)));
			return -1;
		}
	}
}

/* ---- TLS I/O, every wait bounded by the deadline ---- */

enum { IO_OK = 0, IO_FAIL = -1, IO_TIMEOUT = -2, IO_CLOSED = -3 };

/*
 * After an SSL call returned ret <= 0: wait when OpenSSL wants I/O
 * (returns 1 to retry), else classify.  A description of a failure goes
 * into what (not into out->error: the caller decides how to word it).
 */
static int ssl_wait(struct conn *c, int ret, char *what, size_t wlen)
{
	char tmp[128];
	int se = SSL_get_error(c->ssl, ret), r;

	switch (se) {
	case SSL_ERROR_WANT_READ:
	case SSL_ERROR_WANT_WRITE:
		r = wait_fd(c->fd, se == SSL_ERROR_WANT_READ ? POLLIN : POLLOUT, c->deadline);
		if (r == 1)
			return 1;
		snprintf(what, wlen, "%s", r == 0 ? "timed out" : errno_text(errno, tmp, sizeof(tmp)));
		return r == 0 ? IO_TIMEOUT : IO_FAIL;
	case SSL_ERROR_ZERO_RETURN:
		snprintf(what, wlen, "the server closed the TLS connection");
		return IO_CLOSED;
	case SSL_ERROR_SYSCALL:
		c->fatal = 1;
		ERR_clear_error();
		if (c->last_errno)
			snprintf(what, wlen, "%s", errno_text(c->last_errno, tmp, sizeof(tmp)));
		else
			snprintf(what, wlen, "the server closed the connection");
		return c->last_errno ? IO_FAIL : IO_CLOSED;
	default:
		c->fatal = 1;
		if (c->out->tls_alert[0]) {
			ERR_clear_error();
			snprintf(what, wlen, "the server sent TLS alert \"%s\"", c->out->tls_alert);
		} else {
			ossl_reason(what, wlen);
		}
		return IO_FAIL;
	}
}

static int ssl_handshake(struct conn *c, char *what, size_t wlen)
{
	int r;

	for (;;) {
		r = SSL_connect(c->ssl);
		if (r == 1)
			return IO_OK;
		r = ssl_wait(c, r, what, wlen);
		if (r != 1)
			return r;
	}
}

static int ssl_write_all(struct conn *c, const unsigned char *p, size_t n, char *what, size_t wlen)
{
	size_t done;
	int r;

	while (n > 0) {
		r = SSL_write_ex(c->ssl, p, n, &done);
		if (r == 1) {
			p += done;
			n -= done;
			continue;
		}
		r = ssl_wait(c, r, what, wlen);
		if (r != 1)
			return r;
	}
	return IO_OK;
}

static int ssl_read_exact(struct conn *c, unsigned char *p, size_t n, char *what, size_t wlen)
{
	size_t got;
	int r;

	while (n > 0) {
		r = SSL_read_ex(c->ssl, p, n, &got);
		if (r == 1) {
			p += got;
			n -= got;
			continue;
		}
		r = ssl_wait(c, r, what, wlen);
		if (r != 1)
			return r;
	}
	return IO_OK;
}

/*
 * A write refused after the handshake: a TLS 1.3 server that rejected our
 * certificate may have sent its alert and closed before our bytes arrived.
 * The alert can still be waiting unread; one read picks it up (c->alert).
 */
static void pick_up_alert(struct conn *c)
{
	unsigned char b;
	char what[200];

	if (c->alert < 0)
		(void)ssl_read_exact(c, &b, 1, what, sizeof(what));
}

/* ---- what the server presented ---- */

/* The earliest notAfter of the certificates the server sent, as seconds since the epoch (0: none read). */
static long long earliest_not_after(SSL *ssl)
{
	STACK_OF(X509) *sent = SSL_get_peer_cert_chain(ssl);
	ASN1_TIME *epoch = ASN1_TIME_set(NULL, 0);
	long long best = 0;
	int i, days, secs;

	for (i = 0; epoch && sent && i < sk_X509_num(sent); i++) {
		days = secs = 0;
		if (ASN1_TIME_diff(&days, &secs, epoch, X509_get0_notAfter(sk_X509_value(sent, i))) &&
		    (!best || (long long)days * 86400 + secs < best))
			best = (long long)days * 86400 + secs;
	}
	ASN1_TIME_free(epoch);
	ERR_clear_error();
	return best;
}

static void check_server(struct conn *c, const struct probe_req *req)
{
	struct probe_result *out = c->out;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	X509 *leaf = SSL_get1_peer_certificate(c->ssl);
	const char *v = SSL_get_version(c->ssl);
	long res;

	snprintf(out->tls_version, sizeof(out->tls_version), "%s", v ? v : "");
	if (!leaf) {
		snprintf(out->verify_reason, sizeof(out->verify_reason), "the server sent no certificate");
		fail(out, "server certificate: %s", out->verify_reason);
		return;
	}
	if (X509_digest(leaf, EVP_sha256(), md, &mdlen) == 1)
		hex_colon(out->server_leaf_fingerprint, sizeof(out->server_leaf_fingerprint), md, mdlen);
	ERR_clear_error();
	X509_free(leaf);
	out->server_not_after = earliest_not_after(c->ssl);

	res = SSL_get_verify_result(c->ssl);
	if (res == X509_V_OK) {
		out->server_verified = 1;
	} else {
		if (c->verify_depth >= 0)
			snprintf(out->verify_reason, sizeof(out->verify_reason), "%s (at depth %d)",
				 X509_verify_cert_error_string(res), c->verify_depth);
		else
			snprintf(out->verify_reason, sizeof(out->verify_reason), "%s",
				 X509_verify_cert_error_string(res));
		fail(out, "server certificate does not verify: %s", out->verify_reason);
	}
	if (req->expect_fingerprint && out->server_leaf_fingerprint[0]) {
		out->fingerprint_match = strcasecmp(req->expect_fingerprint, out->server_leaf_fingerprint) == 0;
		if (!out->fingerprint_match)
			fail(out, "the server presents leaf %s, not the expected %s",
			     out->server_leaf_fingerprint, req->expect_fingerprint);
	}
}

/* ---- PostgreSQL after the handshake ---- */

/* The CN of the client certificate, for cert authentication. */
static int client_cn(char *out, size_t len, const struct probe_req *req, struct err *e)
{
	STACK_OF(X509) *sk = NULL;
	X509_NAME *n;
	int rc, i, ulen;
	unsigned char *u = NULL;

	out[0] = '\0';
	if ((rc = read_certs(&sk, req->client_cert_pem, req->client_cert_len, "client certificate", e)) < 0)
		return rc;
	n = X509_get_subject_name(sk_X509_value(sk, 0));
	i = n ? X509_NAME_get_index_by_NID(n, NID_commonName, -1) : -1;
	if (i >= 0 && (ulen = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(X509_NAME_get_entry(n, i)))) >= 0) {
		if ((size_t)ulen < len && memchr(u, 0, (size_t)ulen) == NULL)
			memcpy(out, u, (size_t)ulen + 1);
		OPENSSL_free(u);
	}
	ERR_clear_error();
	sk_X509_pop_free(sk, X509_free);
	if (!out[0])
		return err_set(e, ROTOR_EINVALID, "client certificate has no usable CN; give pg_user");
	return 0;
}

static int add_param(unsigned char *msg, size_t *off, size_t cap, const char *k, const char *v)
{
	size_t kl = strlen(k) + 1, vl = strlen(v) + 1;

	if (*off + kl + vl + 1 > cap)
		return -1;
	memcpy(msg + *off, k, kl);
	*off += kl;
	memcpy(msg + *off, v, vl);
	*off += vl;
	return 0;
}

/* Keep printable ASCII, cut to fit: the server's words, tamed. */
static void sanitize(char *dst, size_t len, const char *src, size_t n)
{
	size_t i, o = 0;

	for (i = 0; i < n && src[i] && o + 1 < len; i++)
		dst[o++] = (src[i] >= 0x20 && src[i] < 0x7f) ? src[i] : '?';
	dst[o] = '\0';
}

/* An ErrorResponse body: fields "<type byte><cstring>" up to a zero byte. */
static void parse_error(struct probe_result *out, const unsigned char *body, size_t n)
{
	char msg[100] = "";
	size_t i = 0, j;
	unsigned char t;

	while (i < n && body[i]) {
		t = body[i++];
		for (j = i; j < n && body[j]; j++)
			;
		if (j >= n)
			break;  /* unterminated: ignore the rest */
		if (t == 'C' && j - i == 5) {
			int okc = 1;
			size_t k;

			for (k = i; k < j; k++)
				okc &= isdigit(body[k]) || isupper(body[k]);
			if (okc) {
				memcpy(out->sqlstate, body + i, 5);
				out->sqlstate[5] = '\0';
			}
		} else if (t == 'M') {
			sanitize(msg, sizeof(msg), (const char *)body + i, j - i);
		}
		i = j + 1;
	}
	fail(out, "server refused the connection: SQLSTATE %s%s%s", out->sqlstate[0] ? out->sqlstate : "?????",
	     msg[0] ? ": " : "", msg);
}

/* probe_read_fn over the TLS connection. */
static int ssl_reader(void *ctx, unsigned char *p, size_t n, char *what, size_t wlen)
{
	return ssl_read_exact(ctx, p, n, what, wlen);
}

int probe__pg_answer(struct probe_result *out, const unsigned char hdr[5], probe_read_fn rd, void *ctx)
{
	unsigned char code[4];
	unsigned char *body = NULL;
	char what[200];
	size_t n = be32_get(hdr + 1);

	switch (hdr[0]) {
	case 'R':
		if (n < 8 || rd(ctx, code, sizeof(code), what, sizeof(what)) != IO_OK) {
			fail(out, "malformed authentication request from the server");
			return 0;
		}
		out->auth_code = (int)be32_get(code);
		out->client_accepted = 1;
		return 1;
	case 'E':
		if (n < 5 || n - 4 > PG_MAX_ERROR_BYTES) {
			out->client_accepted = 0;
			fail(out, "server refused the connection (malformed ErrorResponse not shown)");
			return 0;
		}
		n -= 4;
		if (!(body = OPENSSL_malloc(n))) {
			fail(out, "out of memory");
			return 0;
		}
		out->client_accepted = 0;
		if (rd(ctx, body, n, what, sizeof(what)) != IO_OK)
			fail(out, "server refused the connection (ErrorResponse cut short: %s)", what);
		else
			parse_error(out, body, n);
		OPENSSL_free(body);
		return 0;  /* the server closes after an error at startup */
	default:
		fail(out, "unexpected message type 0x%02x from the server after StartupMessage", hdr[0]);
		return 0;
	}
}

static void pg_startup(struct conn *c, const struct probe_req *req, const char *user)
{
	struct probe_result *out = c->out;
	unsigned char msg[3 * PG_MAX_NAME + 128], hdr[5];
	static const unsigned char terminate[5] = { 'X', 0, 0, 0, 4 };
	char what[200];
	size_t off = 8;
	int r;

	if (add_param(msg, &off, sizeof(msg), "user", user) < 0 ||
	    add_param(msg, &off, sizeof(msg), "database", req->pg_database ? req->pg_database : "postgres") < 0 ||
	    add_param(msg, &off, sizeof(msg), "application_name", "rotor-probe") < 0)
		return;  /* names were checked by the caller */
	msg[off++] = 0;
	be32_put(msg, (uint32_t)off);
	be32_put(msg + 4, PG_PROTOCOL_3_0);

	r = ssl_write_all(c, msg, off, what, sizeof(what));
	if (r == IO_OK)
		r = ssl_read_exact(c, hdr, sizeof(hdr), what, sizeof(what));
	else
		pick_up_alert(c);
	if (r != IO_OK) {
		if (client_cert_alert(c->alert)) {
			/* TLS 1.3: the server's verdict on our certificate comes after our Finished. */
			out->client_accepted = 0;
			fail(out, "server rejected the client certificate: TLS alert \"%s\"", out->tls_alert);
		} else {
			fail(out, "after the handshake: %s", what);
		}
		return;
	}
	/* Accepted: say goodbye properly. */
	if (probe__pg_answer(out, hdr, ssl_reader, c) == 1)
		(void)ssl_write_all(c, terminate, sizeof(terminate), what, sizeof(what));
}

/* ---- HTTPS after the handshake ---- */

int probe__http_status(struct probe_result *out, const char *line, size_t n)
{
	int code;

	/* "HTTP/1.x SSS" and then a reason or the end of the line. */
	if (n < 12 || memcmp(line, "HTTP/1.", 7) != 0 || !isdigit((unsigned char)line[7]) || line[8] != ' ' ||
	    !isdigit((unsigned char)line[9]) || !isdigit((unsigned char)line[10]) || !isdigit((unsigned char)line[11]) ||
	    (n > 12 && line[12] != ' ' && line[12] != '\r')) {
		fail(out, "the server's answer to GET / is not an HTTP/1 status line (not shown)");
		return 0;
	}
	code = (line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0');
	out->http_status = code;
	/*
	 * 400: nginx's "No required SSL certificate was sent" and "The SSL
	 * certificate error" (its internal 495 and 496 reach the client as
	 * 400); 495/496 from servers that send them as they are.
	 */
	if (code == 400 || code == 495 || code == 496) {
		out->client_accepted = 0;
		fail(out, "server refused the client certificate: HTTP %d", code);
		return 0;
	}
	if (code < 200 || code > 499) {
		fail(out, "server answered GET / with HTTP %d: cannot tell whether it accepts the client", code);
		return 0;
	}
	out->client_accepted = 1;
	return 1;
}

static void http_get(struct conn *c, const struct probe_req *req)
{
	struct probe_result *out = c->out;
	struct buf_line {
		char v[128];
		size_t n;
	} line = { "", 0 };
	char msg[600], what[200];
	const char *host = req->server_name ? req->server_name : req->address;
	unsigned char b;
	int r, n;

	n = snprintf(msg, sizeof(msg), "GET / HTTP/1.0\r\nHost: %s%s%s\r\nUser-Agent: rotor-probe\r\n"
					"Connection: close\r\n\r\n", strchr(host, ':') ? "[" : "", host, strchr(host, ':') ? "]" : "");
	if (n < 0 || (size_t)n >= sizeof(msg)) {
		fail(out, "server name too long for an HTTP request");
		return;
	}
	r = ssl_write_all(c, (const unsigned char *)msg, (size_t)n, what, sizeof(what));
	if (r != IO_OK)
		pick_up_alert(c);
	/* The status line, byte by byte up to its end (or a cap: then it is not one). */
	while (r == IO_OK && line.n < sizeof(line.v)) {
		r = ssl_read_exact(c, &b, 1, what, sizeof(what));
		if (r != IO_OK || b == '\n')
			break;
		line.v[line.n++] = (char)b;
	}
	if (r != IO_OK && line.n == 0) {
		if (client_cert_alert(c->alert)) {
			/* TLS 1.3: the verdict on our certificate comes after our Finished. */
			out->client_accepted = 0;
			fail(out, "server rejected the client certificate: TLS alert \"%s\"", out->tls_alert);
		} else {
			fail(out, "after the handshake: %s", what);
		}
		return;
	}
	(void)probe__http_status(out, line.v, line.n);
}

int probe__sslrequest_answer(struct probe_result *out, int r, unsigned char b, int more)
{
	if (r == 0) {
		fail(out, "the server closed the connection after SSLRequest");
		return -1;
	}
	if (b == 'N') {
		fail(out, "server does not do SSL");
		return -1;
	}
	if (b != 'S') {
		/* Unauthenticated bytes (an 'E' error, or anything): never shown (CVE-2024-10977). */
		fail(out, "server answered SSLRequest with neither 'S' nor 'N' (reply not shown)");
		return -1;
	}
	/* Nothing may follow 'S' before our ClientHello (CVE-2021-23222). */
	if (more) {
		fail(out, "server sent unencrypted data after 'S' (possible man-in-the-middle); refused");
		return -1;
	}
	return 0;
}

/* ---- the probes ---- */

static int check_req(const struct probe_req *req, struct err *e)
{
	if (!req->address || !req->address[0])
		return err_set(e, ROTOR_EINVALID, "probe: no address");
	if (req->port < 1 || req->port > 65535)
		return err_set(e, ROTOR_EINVALID, "probe: port %d out of range", req->port);
	if (!req->trust_pem || req->trust_len == 0)
		return err_set(e, ROTOR_EINVALID, "probe: no trust bundle");
	if (req->connect_timeout_ms < 0 || req->deadline_ms < 0)
		return err_set(e, ROTOR_EINVALID, "probe: negative timeout");
	if ((req->pg_user && (!req->pg_user[0] || strlen(req->pg_user) >= PG_MAX_NAME)) ||
	    (req->pg_database && (!req->pg_database[0] || strlen(req->pg_database) >= PG_MAX_NAME)))
		return err_set(e, ROTOR_EINVALID, "probe: user or database name empty or too long");
	return 0;
}

static void conn_close(struct conn *c)
{
	if (c->ssl) {
		/* One close_notify; do not wait for the server's. */
		if (c->out->tls_ok && !c->fatal && !(SSL_get_shutdown(c->ssl) & SSL_SENT_SHUTDOWN))
			(void)SSL_shutdown(c->ssl);
		SSL_free(c->ssl);
	}
	ERR_clear_error();
	SSL_CTX_free(c->ctx);
	BIO_meth_free(c->meth);
	if (c->fd >= 0)
		close(c->fd);
}

enum probe_kind { KIND_TLS, KIND_POSTGRES, KIND_HTTPS };

/* The probe; over a new TCP connection when fd < 0, else over fd (closed here). */
static int run(struct probe_result *out, const struct probe_req *req, enum probe_kind kind, int fd, struct err *e)
{
	const int postgres = kind == KIND_POSTGRES;
	static const unsigned char sslrequest[8] = { 0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f };
	struct conn c;
	char what[200], user[PG_MAX_NAME] = "";
	unsigned char b, peek;
	int rc, r, more, connect_ms, deadline_ms;

	memset(out, 0, sizeof(*out));
	out->fingerprint_match = -1;
	out->client_accepted = -1;
	out->auth_code = -1;
	out->http_status = -1;
	memset(&c, 0, sizeof(c));
	c.fd = -1;
	c.verify_depth = -1;
	c.alert = -1;
	c.out = out;
	c.fd = fd;   /* conn_close closes it */
	if ((rc = check_req(req, e)) < 0)
		goto out;
	if (postgres) {
		if (req->pg_user)
			snprintf(user, sizeof(user), "%s", req->pg_user);
		else if (req->client_cert_pem && (rc = client_cn(user, sizeof(user), req, e)) < 0)
			goto out;
		else if (!req->client_cert_pem)
			snprintf(user, sizeof(user), "postgres");
	}
	if ((rc = setup_ctx(&c, req, e)) < 0 || (rc = setup_ssl(&c, req, e)) < 0)
		goto out;

	connect_ms = req->connect_timeout_ms ? req->connect_timeout_ms : PROBE_CONNECT_TIMEOUT_MS;
	deadline_ms = req->deadline_ms ? req->deadline_ms : PROBE_DEADLINE_MS;
	c.deadline = clock_mono_ms() + deadline_ms;
	if (fd >= 0)
		out->connected = 1;
	else if (tcp_connect(&c, req, connect_ms) < 0)
		goto out;

	if (postgres) {
		if (raw_send(&c, sslrequest, sizeof(sslrequest)) < 0)
			goto out;
		r = raw_recv1(&c, &b);
		if (r < 0)
			goto out;
		more = r == 1 && b == 'S' && recv(c.fd, &peek, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
		if (probe__sslrequest_answer(out, r, b, more) < 0)
			goto out;
	}

	r = ssl_handshake(&c, what, sizeof(what));
	if (r != IO_OK) {
		/* TLS 1.2: a client certificate the server refuses ends the handshake. */
		if (kind != KIND_TLS && client_cert_alert(c.alert))
			out->client_accepted = 0;
		fail(out, "TLS handshake with %s port %d: %s", req->address, req->port, what);
		/* A TLS 1.2 server that refused us has still shown its certificate. */
		if (SSL_get0_peer_certificate(c.ssl))
			check_server(&c, req);
		goto out;
	}
	out->tls_ok = 1;
	check_server(&c, req);
	if (postgres && out->server_verified)
		pg_startup(&c, req, user);
	else if (kind == KIND_HTTPS && out->server_verified)
		http_get(&c, req);
out:
	conn_close(&c);
	return rc;
}

int probe_tls(struct probe_result *out, const struct probe_req *req, struct err *e)
{
	return run(out, req, KIND_TLS, -1, e);
}

int probe_postgres(struct probe_result *out, const struct probe_req *req, struct err *e)
{
	return run(out, req, KIND_POSTGRES, -1, e);
}

int probe_https(struct probe_result *out, const struct probe_req *req, struct err *e)
{
	return run(out, req, KIND_HTTPS, -1, e);
}

int probe__run_fd(struct probe_result *out, const struct probe_req *req, int kind, int fd, struct err *e)
{
	return run(out, req, kind == 1 ? KIND_POSTGRES : kind == 2 ? KIND_HTTPS : KIND_TLS, fd, e);
}
