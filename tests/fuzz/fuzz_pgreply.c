/*
 * fuzz_pgreply.c -- the PostgreSQL probe's handling of server replies
 * (reconcile/tls/probe.c through probe_int.h): the one-byte answer to
 * SSLRequest, then the first message after the StartupMessage
 * (AuthenticationRequest 'R', ErrorResponse 'E', anything else).
 *
 * Input: the answer byte to SSLRequest; a flags byte (bit 0: the server
 * closed instead, bit 1: bytes were waiting after 'S'); then the
 * server's message as it came over TLS (5-byte header, body), read
 * exactly as probe.c reads it: a read past the end is "connection
 * closed".
 *
 * Checks: every answer is either accepted (no error) or refused with one
 * line of printable ASCII; a SQLSTATE kept is five digits or capitals;
 * the request code is set only when the client was accepted.
 */
#include "tests/fuzz/fuzz.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "reconcile/tls/probe_int.h"

struct feed {
	const uint8_t *p;
	size_t n;
};

static int feed_read(void *ctx, unsigned char *p, size_t n, char *what, size_t wlen)
{
	struct feed *f = ctx;

	if (n > f->n) {
		snprintf(what, wlen, "the server closed the connection");
		f->n = 0;
		return -3;
	}
	memcpy(p, f->p, n);
	f->p += n;
	f->n -= n;
	return 0;
}

static void reset(struct probe_result *out)
{
	memset(out, 0, sizeof(*out));
	out->fingerprint_match = -1;
	out->client_accepted = -1;
	out->auth_code = -1;
}

void fuzz_pgreply(const uint8_t *data, size_t size)
{
	struct probe_result out;
	struct feed f;
	unsigned char hdr[5];
	int r, i;

	if (size < 2)
		return;
	reset(&out);
	r = probe__sslrequest_answer(&out, (data[1] & 1) ? 0 : 1, data[0], (data[1] >> 1) & 1);
	FUZZ_CHECK(r == 0 || r == -1);
	FUZZ_CHECK((r == 0) == (out.error[0] == '\0'));
	FUZZ_CHECK(fuzz_printable(out.error));

	/* The message after the StartupMessage is read whatever the answer was. */
	f.p = data + 2;
	f.n = size - 2;
	if (feed_read(&f, hdr, sizeof(hdr), (char[8]){ 0 }, 8) != 0)
		return;
	reset(&out);
	r = probe__pg_answer(&out, hdr, feed_read, &f);
	FUZZ_CHECK(r == 0 || r == 1);
	FUZZ_CHECK(fuzz_printable(out.error) && strlen(out.error) < sizeof(out.error));
	if (r == 1) {
		FUZZ_CHECK(out.client_accepted == 1 && out.error[0] == '\0');
	} else {
		FUZZ_CHECK(out.client_accepted != 1 && out.error[0] != '\0' && out.auth_code == -1);
	}
	FUZZ_CHECK(out.sqlstate[0] == '\0' || strlen(out.sqlstate) == 5);
	for (i = 0; out.sqlstate[i]; i++)
		FUZZ_CHECK(isdigit((unsigned char)out.sqlstate[i]) || isupper((unsigned char)out.sqlstate[i]));
}

FUZZ_MAIN(fuzz_pgreply)
