/*
 * probe_int.h -- how probe.c reads a server's answers, as functions over
 * bytes or over a socket the caller holds, for tests only
 * (tests/fuzz/fuzz_pgreply.c, fuzz_tlsreply.c, tests/unit/test_fuzz.c).
 * Callers use probe.h.
 *
 * Both fill out the way probe_postgres() does: the first failure goes
 * to out->error (later ones are dropped), and nothing the server sent
 * appears there except a SQLSTATE and a message cut to printable ASCII.
 */
#ifndef ROTOR_PROBE_INT_H
#define ROTOR_PROBE_INT_H

#include <stddef.h>

#include "reconcile/tls/probe.h"

/*
 * The server's answer to SSLRequest: r is 1 when a byte b was read, 0
 * when the server closed the connection; more is set when further bytes
 * were already waiting after an 'S'.  0: go on with TLS; -1: refused
 * (out->error says why).
 */
int probe__sslrequest_answer(struct probe_result *out, int r, unsigned char b, int more);

/*
 * Read exactly n bytes of the server's reply into p: 0 when they all
 * came, or a negative value with a description in what (wlen bytes).
 */
typedef int (*probe_read_fn)(void *ctx, unsigned char *p, size_t n, char *what, size_t wlen);

/*
 * The server's first message after the StartupMessage, hdr its type
 * byte and length; the rest is read through rd(ctx, ...).  1: the
 * server accepted the client ('R': out->auth_code set); 0: it refused
 * ('E': SQLSTATE and message kept) or answered something unusable.
 */
int probe__pg_answer(struct probe_result *out, const unsigned char hdr[5], probe_read_fn rd, void *ctx);

/*
 * probe_tls() (kind 0), probe_postgres() (kind 1) or probe_https() (kind
 * 2) over fd, a connected non-blocking stream socket, instead of a new TCP
 * connection to req->address (which only names the server in messages).
 * fd is closed before it returns, also on failure.
 */
int probe__run_fd(struct probe_result *out, const struct probe_req *req, int kind, int fd, struct err *e);

/*
 * The status line of an HTTPS server's answer (line: n bytes up to, not
 * including, its '\n'): 1 the server accepted the client
 * (out->client_accepted = 1, out->http_status set); 0 refused or
 * unusable (out->error says which; nothing of the line is shown).
 */
int probe__http_status(struct probe_result *out, const char *line, size_t n);

#endif
