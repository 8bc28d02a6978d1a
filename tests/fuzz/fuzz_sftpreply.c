/*
 * fuzz_sftpreply.c -- the SFTP answers rotor reads itself
 * (reconcile/remote/sftpraw.c): an ATTRS body (ssh_sftp_parse_attrs), the
 * names of a NAME answer (ssh_sftp_parse_names, added to what earlier
 * answers listed) and the wire string (ssh_wire_string).
 *
 * Input: the first byte says how many NAME answers follow the ATTRS body
 * (0 to 3); then, for each part, two bytes of length (big-endian) and
 * that many bytes; what is left over is read as SSH strings.
 *
 * Checks: attributes that parse carry a mode within 07777 and a file
 * type among the type bits; names that parse are NULL-ended, their
 * count right, none longer than the answer that held it; the strings
 * read never run past the input.
 */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "reconcile/remote/ssh_int.h"

/* The next part of the input: two bytes of length, then the bytes; -1 when the input ends. */
static int part(const uint8_t **p, size_t *n, const uint8_t **out, size_t *len)
{
	size_t l;

	if (*n < 2)
		return -1;
	l = (size_t)(*p)[0] << 8 | (*p)[1];
	*p += 2;
	*n -= 2;
	if (l > *n)
		l = *n;
	*out = *p;
	*len = l;
	*p += l;
	*n -= l;
	return 0;
}

void fuzz_sftpreply(const uint8_t *data, size_t size)
{
	struct ssh_cached_dir d;
	struct ssh_stat st;
	const uint8_t *p = data, *body;
	size_t n = size, len, i, k, before;
	unsigned type;

	if (size < 1)
		return;
	k = data[0] & 3;
	p++;
	n--;
	if (part(&p, &n, &body, &len) == 0 && ssh_sftp_parse_attrs(body, len, &st, &type) == 0) {
		FUZZ_CHECK(st.mode <= 07777);
		FUZZ_CHECK((type & ~0170000u) == 0);
	}
	memset(&d, 0, sizeof(d));
	for (i = 0; i < k && part(&p, &n, &body, &len) == 0; i++) {
		before = d.nnames;
		if (ssh_sftp_parse_names(&d, body, len) == 0)
			FUZZ_CHECK(d.nnames >= before);
		FUZZ_CHECK(d.nnames == 0 || d.names[d.nnames] == NULL);
		for (size_t j = before; j < d.nnames; j++)
			FUZZ_CHECK(strlen(d.names[j]) <= len);
	}
	ssh_cached_dir_release(&d);
	while (n > 0) {
		const unsigned char *s;
		uint32_t sl;
		const unsigned char *q = p;

		if (ssh_wire_string(&q, p + n, &s, &sl) != 0)
			break;
		FUZZ_CHECK(s >= p && s + sl <= p + n && q == s + sl);
		n -= (size_t)(q - p);
		p = q;
	}
}

FUZZ_MAIN(fuzz_sftpreply)
