/*
 * fuzz_tlsreply.c -- the TLS probe's handling of what a server sends
 * (reconcile/tls/probe.c through probe_int.h): probe_tls() or
 * probe_postgres() run over one end of a socket pair whose other end
 * holds the server's bytes and is then shut down.  OpenSSL parses the
 * records; rotor's own part is what it makes of them: the SSLRequest
 * answer, a fatal alert and whether it is about the client certificate,
 * the presented chain (leaf fingerprint, OpenSSL's verdict and the depth
 * of its first error, also after a TLS 1.2 handshake that failed once
 * the Certificate message had come), the expected fingerprint, and the
 * messages that describe each of these.
 *
 * Input: a flags byte (bit 0: postgres, bit 1: expect a fingerprint,
 * bit 2: verify the name 127.0.0.1, bit 3 without bit 0: https, whose
 * status line after the handshake is read too), a two-byte big-endian length
 * and that many bytes of PEM trust bundle, then the server's bytes
 * (for postgres: the answer to SSLRequest first).  A trust bundle that
 * does not parse is refused before any byte is read, as probe.h says.
 *
 * Checks: the probe returns 0 (an answer) or a negative code with a
 * message; a verified server is one that showed a leaf; every message
 * is one printable line; an error is given whenever the handshake or the
 * chain did not check out.
 */
#include "tests/fuzz/fuzz.h"

#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/err.h"
#include "reconcile/tls/probe_int.h"

#define MAX_SERVER_BYTES (48 * 1024)   /* well inside a socket pair's buffer */

void fuzz_tlsreply(const uint8_t *data, size_t size)
{
	struct probe_req req;
	struct probe_result out;
	struct err e = ERR_INIT;
	size_t tlen, off = 0;
	int sv[2], flags, rc;
	ssize_t n;

	if (size < 3)
		return;
	flags = data[0];
	tlen = (size_t)data[1] << 8 | data[2];
	if (tlen > size - 3)
		return;
	if (size - 3 - tlen > MAX_SERVER_BYTES)
		return;
	if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
		abort();
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) != 0)
		abort();
	for (off = 3 + tlen; off < size; off += (size_t)n) {
		n = send(sv[1], data + off, size - off, MSG_NOSIGNAL);
		if (n <= 0)
			abort();
	}
	if (shutdown(sv[1], SHUT_WR) != 0)
		abort();

	memset(&req, 0, sizeof(req));
	req.address = "127.0.0.1";
	req.port = 5432;
	req.deadline_ms = 5000;   /* never reached: every read ends at the pair's end of file */
	req.trust_pem = (const char *)data + 3;
	req.trust_len = tlen;
	if (flags & 2)
		req.expect_fingerprint =
			"00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF:00:11:22:33:44:55:66:77:88:99:AA:BB:CC:DD:EE:FF";
	if (flags & 4)
		req.server_name = "127.0.0.1";
	req.pg_user = "app";
	rc = probe__run_fd(&out, &req, flags & 1 ? 1 : flags & 8 ? 2 : 0, sv[0], &e);   /* closes sv[0] */
	close(sv[1]);

	FUZZ_CHECK(rc <= 0);
	if (rc < 0) {
		FUZZ_CHECK(e.msg[0] != '\0' && fuzz_printable(e.msg));
		return;
	}
	FUZZ_CHECK(out.connected == 1);
	FUZZ_CHECK(fuzz_printable(out.error) && strlen(out.error) < sizeof(out.error));
	FUZZ_CHECK(fuzz_printable(out.verify_reason) && fuzz_printable(out.tls_alert));
	FUZZ_CHECK(fuzz_printable(out.tls_version) && fuzz_printable(out.server_leaf_fingerprint));
	/* A TLS 1.2 server that failed the handshake may still have shown a chain that verifies. */
	FUZZ_CHECK(!out.server_verified || out.server_leaf_fingerprint[0] != '\0');
	FUZZ_CHECK((out.tls_ok && out.server_verified) || out.error[0] != '\0');
	FUZZ_CHECK(out.server_leaf_fingerprint[0] == '\0' || strlen(out.server_leaf_fingerprint) == 95);
	FUZZ_CHECK(out.fingerprint_match != 1 || (flags & 2));
	if (!out.server_leaf_fingerprint[0])
		FUZZ_CHECK(out.fingerprint_match == -1);
	if (!(flags & 1))
		FUZZ_CHECK(out.client_accepted == -1 && out.auth_code == -1 && out.sqlstate[0] == '\0');
	if (out.client_accepted == 1)
		FUZZ_CHECK(out.server_verified);
}

FUZZ_MAIN(fuzz_tlsreply)
