/*
 * probe.h -- what a live endpoint really presents and accepts.
 *
 * probe_tls() opens TLS to address:port; probe_https() then sends GET /
 * and reads the status line; probe_postgres() first speaks
 * PostgreSQL's SSLRequest, then TLS on the same socket, then sends a
 * StartupMessage inside TLS and reads the server's first answer, which
 * tells whether the server accepts the client certificate (with TLS 1.3
 * a server's verdict on the client certificate arrives only after the
 * client has finished its handshake).
 *
 * The server is checked as libpq with sslmode=verify-full checks it:
 * every certificate in trust_pem is trusted, the chain must end at a
 * self-signed certificate in it (no partial chains), purpose serverAuth,
 * and server_name (DNS name or IP address) must be in the leaf's SAN.
 * The handshake itself never fails on verification: the probe always
 * records what the server presented (its leaf's fingerprint), then says
 * whether it verifies, with OpenSSL's reason when not.  A PostgreSQL
 * server that does not verify is not sent a StartupMessage (a verify-full
 * client would not talk to it): client_accepted stays -1.
 *
 * Ownership: every pointer in struct probe_req is borrowed for the
 * duration of the call.  The client key is secret: it is parsed straight
 * from the caller's memory (never copied by the probe) and the parsed key
 * is freed before the call returns; the caller wipes its own copy.
 * struct probe_result holds only fixed-size arrays: nothing to free.
 *
 * Errors: a probe that ran returns 0 and describes what happened in
 * *out, including "could not connect", "server does not do SSL", "does
 * not verify" and "rejected": those are answers, not errors.  A negative
 * ROTOR_* code means the probe could not start: ROTOR_EINVALID for a
 * missing address or port out of range, a client certificate or key or
 * trust bundle that does not parse, or a key that does not match its
 * certificate; ROTOR_ESECRET for an encrypted key and a missing or wrong
 * passphrase; ROTOR_ENOMEM.  Nothing the server sends is shown verbatim:
 * before the server is authenticated nothing of it is shown at all
 * (CVE-2024-10977); afterwards only a SQLSTATE and a short message cut
 * to printable ASCII.
 *
 * Threads: no global state; any number of probes may run at once on
 * different threads.  Sockets are non-blocking and every wait (connect,
 * SSLRequest, handshake, StartupMessage) is a poll() bounded by the
 * deadline; writes never raise SIGPIPE.  Resolving a host name
 * (getaddrinfo) is the one step the deadline does not bound: pass an IP
 * address where that matters.
 */
#ifndef ROTOR_PROBE_H
#define ROTOR_PROBE_H

#include <stddef.h>

#include "common/err.h"

#define PROBE_CONNECT_TIMEOUT_MS 5000 /* default for connect_timeout_ms == 0 */
#define PROBE_DEADLINE_MS 15000       /* default for deadline_ms == 0 */

struct probe_req {
	const char *address;      /* IP address or host name to connect to */
	int port;                 /* 1..65535 */
	int connect_timeout_ms;   /* TCP connect; 0 = PROBE_CONNECT_TIMEOUT_MS */
	int deadline_ms;          /* the whole probe; 0 = PROBE_DEADLINE_MS */

	/* Client certificate: the leaf, then any intermediates it sends
	   (each added with SSL_CTX_add1_chain_cert); NULL = none. */
	const char *client_cert_pem;
	size_t client_cert_len;
	const char *client_key_pem;   /* secret; PEM private key, required with a cert */
	size_t client_key_len;
	const char *client_key_pass;  /* passphrase of an encrypted key; NULL = not encrypted */

	const char *trust_pem;    /* the bundle the server must verify against (sslrootcert) */
	size_t trust_len;
	const char *server_name;  /* name or IP that must be in the server's SAN; also sent as
				     SNI when it is a name; NULL = no name check */
	const char *expect_fingerprint; /* the server leaf we expect (uppercase colon hex,
					   case-insensitive); NULL = no expectation */

	/* probe_postgres only */
	const char *pg_user;      /* NULL = the client certificate's CN (cert authentication),
				     or "postgres" without a client certificate */
	const char *pg_database;  /* NULL = "postgres" */
};

#define PROBE_FP_LEN 96 /* 32 bytes as "AB:CD:..." and a NUL */

struct probe_result {
	int connected;            /* TCP connection established */
	int tls_ok;               /* TLS handshake completed */
	char tls_version[16];     /* "TLSv1.3", or "" */
	char server_leaf_fingerprint[PROBE_FP_LEN]; /* SHA-256 of the DER, as in manifests; "" if none */
	long long server_not_after; /* the earliest notAfter of the certificates the server sent
				       (seconds since the epoch); 0 if none could be read */
	int server_verified;      /* 1: chain, purpose and name verify against trust_pem */
	char verify_reason[160];  /* OpenSSL's words when server_verified == 0 */
	int fingerprint_match;    /* 1/0 against expect_fingerprint; -1 when none expected or no leaf */
	int client_accepted;      /* postgres: 1 the server answered the StartupMessage with 'R';
				     0 it refused: a TLS alert about the certificate (during the
				     handshake with TLS 1.2, after it with 1.3) or an
				     ErrorResponse; -1 unknown (not asked, or no clear answer);
				     probe_tls: always -1 */
	int auth_code;            /* postgres: the 'R' message's request code (0 = AuthenticationOk), -1 */
	char sqlstate[6];         /* postgres: the ErrorResponse's SQLSTATE, or "" */
	char tls_alert[64];       /* the TLS alert the server sent, e.g. "unknown CA", or "" */
	int http_status;          /* https: the status code of the answer to GET /, or -1 */
	char error[256];          /* what went wrong, one line; "" when everything checked out */
};

/*
 * Probe.  *out is reset first, then filled as far as the probe got.
 * "Everything checked out" (error[0] == '\0') means: connected, TLS,
 * server verified, fingerprint as expected (when given) and, for
 * postgres, the client accepted.
 */
int probe_tls(struct probe_result *out, const struct probe_req *req, struct err *e);
int probe_postgres(struct probe_result *out, const struct probe_req *req, struct err *e);
/*
 * probe_https: TLS from the first byte, then (when the server verifies)
 * `GET / HTTP/1.0` and the status line of the answer.  client_accepted:
 * 1 for a status 200 to 499 other than 400 (nginx answers 400 "No
 * required SSL certificate was sent" or "The SSL certificate error" when
 * ssl_verify_client refuses the client), 495 and 496; 0 for those three
 * or a TLS alert about the certificate; -1 otherwise (5xx, 1xx, no status
 * line: the probe fails without a verdict).  Nothing of the answer is
 * shown but the status code.
 */
int probe_https(struct probe_result *out, const struct probe_req *req, struct err *e);

#endif
