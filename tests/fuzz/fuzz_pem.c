/*
 * fuzz_pem.c -- PEM bundles and certificate classification
 * (reconcile/engine/observe.c): observe_parse_certs, known_find through
 * a known set, observe_phase_mask, observe_key_match and
 * key_match_cert_der (reconcile/tls/key.c).
 *
 * Input: one control byte (bits 0-1 the file's content kind, bit 2 its
 * side, bits 3-5 the roles given to the certificates found), then the
 * file's bytes; a NUL byte, if any, ends them and what follows is the
 * certificate a key file is matched against (else the file's own first
 * certificate).
 *
 * The same bytes are also read as a crl file (observe_parse_crls) and
 * checked as a key file's form (observe_key_form): a crl file without a
 * problem holds at least one CRL and has its SHA-256.
 *
 * Checks: every certificate found has a full SHA-256 fingerprint, a
 * subject and its PEM block; a file that is not a key file and holds no
 * certificate has a problem; a second pass with every fingerprint known
 * classifies every certificate as known, and the ones known with a
 * description (taken from the first pass) are described the same without
 * being parsed.
 */
#include "tests/fuzz/fuzz.h"

#include <string.h>
#include <time.h>

#include "common/err.h"
#include "reconcile/engine/observe.h"
#include "reconcile/tls/key.h"

#define NOW ((time_t)1767225600) /* 2026-01-01T00:00:00Z: fixed, so a replay is the same run */

void fuzz_pem(const uint8_t *data, size_t size)
{
	struct known_set none = KNOWN_SET_INIT, known = KNOWN_SET_INIT;
	struct obs_file f, g;
	struct manifest m;
	struct manifest_cert *mc = NULL;
	struct err e = ERR_INIT;
	const char *p, *cert = NULL, *nul;
	size_t n, cert_len = 0, i;
	unsigned ctl;
	enum obs_key k;

	if (size < 1)
		return;
	ctl = data[0];
	p = (const char *)data + 1;
	n = size - 1;
	if ((nul = memchr(p, '\0', n)) != NULL) {
		cert = nul + 1;
		cert_len = n - (size_t)(cert - p);
		n = (size_t)(nul - p);
	}
	memset(&f, 0, sizeof(f));
	memset(&g, 0, sizeof(g));
	f.content = g.content = (enum spec_content)(ctl & 3);
	f.side = g.side = (enum layout_side)((ctl >> 2) & 1);
	f.present = g.present = 1;
	f.mode = g.mode = 0600;
	f.uid = g.uid = f.gid = g.gid = 0;
	if (observe_parse_certs(&f, p, n, &none, NOW, &e) < 0)
		goto out;
	for (i = 0; i < f.ncerts; i++) {
		FUZZ_CHECK(f.certs[i].fingerprint && strlen(f.certs[i].fingerprint) == 95);
		FUZZ_CHECK(f.certs[i].subject && f.certs[i].issuer && f.certs[i].pem);
		FUZZ_CHECK(f.certs[i].generation == 0);
	}
	if (f.content != SPEC_CONTENT_KEY && f.ncerts == 0)
		FUZZ_CHECK(f.problem != NULL);

	/* Every certificate known, in generation 1 or 2, with a role from the control byte. */
	memset(&m, 0, sizeof(m));
	if (f.ncerts && !(mc = calloc(f.ncerts, sizeof(*mc))))
		goto out;
	for (i = 0; i < f.ncerts; i++) {
		mc[i].fingerprint = f.certs[i].fingerprint;
		/* Known with a description: described from it, not parsed (the odd ones without). */
		if (!(i & 1)) {
			mc[i].subject = f.certs[i].subject;
			mc[i].issuer = f.certs[i].issuer;
			mc[i].not_after = f.certs[i].not_after;
		}
		mc[i].name = (char *)"pg1";
		mc[i].role = (enum cert_role)(((ctl >> 3) + i) % 5);
	}
	m.certs = mc;
	m.ncerts = f.ncerts;
	m.generation = 1 + (int)((ctl >> 6) & 1);
	if (known_add_manifest(&known, &m, &e) < 0)
		goto out;
	if (observe_parse_certs(&g, p, n, &known, NOW, &e) < 0)
		goto out;
	FUZZ_CHECK(g.ncerts == f.ncerts);
	for (i = 0; i < g.ncerts; i++) {
		FUZZ_CHECK(g.certs[i].generation == m.generation && g.certs[i].name);
		FUZZ_CHECK(strcmp(g.certs[i].fingerprint, f.certs[i].fingerprint) == 0);
		FUZZ_CHECK(strcmp(g.certs[i].subject, f.certs[i].subject) == 0);
		FUZZ_CHECK(strcmp(g.certs[i].not_after, f.certs[i].not_after) == 0);
		FUZZ_CHECK(g.certs[i].days_left == f.certs[i].days_left);
	}
	if (f.content == SPEC_CONTENT_KEY) {
		if (!cert && f.ncerts) {
			cert = f.certs[0].pem;
			cert_len = strlen(cert);
		}
		/* The bytes after the NUL as a certificate's DER too: the walk over it without a decoder. */
		if (cert) {
			int r = key_match_cert_der(p, n, (const unsigned char *)cert, cert_len);

			FUZZ_CHECK(r >= -1 && r <= 1);
		}
		k = observe_key_match(p, n, cert, cert_len);
		FUZZ_CHECK(k == OBS_KEY_MATCH || k == OBS_KEY_MISMATCH || k == OBS_KEY_INVALID || k == OBS_KEY_NO_LEAF);
		g.key = k;
	}
	(void)observe_phase_mask(&g, 1, 1, 2);
	(void)observe_phase_mask(&g, 1, 2, 0);
	{
		struct obs_file h;

		memset(&h, 0, sizeof(h));
		h.content = SPEC_CONTENT_CRL;
		h.present = 1;
		if (observe_parse_crls(&h, p, n, &e) == 0) {
			FUZZ_CHECK(strlen(h.sha256) == 64);
			FUZZ_CHECK(h.problem || (h.ncrls > 0 && h.crl_next_update != 0));
		}
		obs_file_release(&h);
		memset(&h, 0, sizeof(h));
		h.form = (ctl >> 7) ? LAYOUT_FORM_PK8 : LAYOUT_FORM_PEM;
		if (observe_key_form(&h, p, n) == 0)
			FUZZ_CHECK(!h.problem || n > 0);
		obs_file_release(&h);
	}

out:
	free(mc);
	known_release(&known);
	obs_file_release(&f);
	obs_file_release(&g);
}

FUZZ_MAIN(fuzz_pem)
