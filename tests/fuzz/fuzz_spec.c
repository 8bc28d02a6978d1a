/*
 * fuzz_spec.c -- the YAML loaders and validators (reconcile/spec), one
 * file kind per binary: fuzz_rotor, fuzz_chain, fuzz_hosts,
 * fuzz_rotation, fuzz_manifest (the Makefile builds this file with
 * -DFUZZ_SPEC_KIND=FUZZ_<KIND>).
 *
 * Checks spec.h's contract: a loaded file has no diagnostic, a refused
 * one has at least one; validating alone (out NULL) gives the same
 * answer; every diagnostic formats; rotation.yaml and manifest.yaml,
 * once loaded, emit text that loads again to the same values.
 */
#include "tests/fuzz/fuzz.h"

#include <string.h>

#include "common/buf.h"
#include "common/err.h"
#include "reconcile/spec/spec.h"

static int load(enum fuzz_spec_kind kind, void **out, const char *p, size_t n, struct diags *d)
{
	static const char *const path[] = { "rotor.yaml", "chain.yaml", "hosts.yaml", "rotation.yaml",
					    "manifest.yaml" };
	struct rotor_config *c = NULL;
	struct chain_spec *ch = NULL;
	struct hosts_spec *h = NULL;
	struct rotation_spec *r = NULL;
	struct manifest *m = NULL;
	int rc = ROTOR_ERROR;

	switch (kind) {
	case FUZZ_ROTOR:
		rc = spec_load_config(out ? &c : NULL, path[kind], p, n, d);
		if (out)
			*out = c;
		break;
	case FUZZ_CHAIN:
		rc = spec_load_chain(out ? &ch : NULL, path[kind], p, n, d);
		if (out)
			*out = ch;
		break;
	case FUZZ_HOSTS:
		rc = spec_load_hosts(out ? &h : NULL, path[kind], p, n, d);
		if (out)
			*out = h;
		break;
	case FUZZ_ROTATION:
		rc = spec_load_rotation(out ? &r : NULL, path[kind], p, n, d);
		if (out)
			*out = r;
		break;
	case FUZZ_MANIFEST:
		rc = spec_load_manifest(out ? &m : NULL, path[kind], p, n, d);
		if (out)
			*out = m;
		break;
	}
	return rc;
}

static void drop(enum fuzz_spec_kind kind, void *obj)
{
	switch (kind) {
	case FUZZ_ROTOR: spec_config_free(obj); break;
	case FUZZ_CHAIN: spec_chain_free(obj); break;
	case FUZZ_HOSTS: spec_hosts_free(obj); break;
	case FUZZ_ROTATION: spec_rotation_free(obj); break;
	case FUZZ_MANIFEST: spec_manifest_free(obj); break;
	}
}

static int same(const char *a, const char *b)
{
	return a && b ? strcmp(a, b) == 0 : a == b;
}

/* Emit a loaded rotation.yaml or manifest.yaml and load the text again. */
static void round_trip(enum fuzz_spec_kind kind, void *obj)
{
	struct buf text = BUF_INIT;
	struct err e = ERR_INIT;
	void *again = NULL;
	int rc;

	if (kind == FUZZ_ROTATION)
		rc = spec_rotation_emit(obj, &text);
	else if (kind == FUZZ_MANIFEST)
		rc = spec_manifest_emit(obj, &text, &e);
	else
		return;
	if (rc == 0) {
		FUZZ_CHECK(load(kind, &again, text.ptr, text.len, NULL) == 0);
		if (kind == FUZZ_ROTATION) {
			const struct rotation_spec *a = obj, *b = again;

			FUZZ_CHECK(a->generation == b->generation && a->target == b->target && a->phase == b->phase);
		} else {
			const struct manifest *a = obj, *b = again;
			size_t i;

			FUZZ_CHECK(a->generation == b->generation && a->imported == b->imported && a->ncerts == b->ncerts);
			FUZZ_CHECK(same(a->env, b->env));
			for (i = 0; i < a->ncerts; i++)
				FUZZ_CHECK(a->certs[i].role == b->certs[i].role && same(a->certs[i].name, b->certs[i].name) &&
					   same(a->certs[i].fingerprint, b->certs[i].fingerprint));
		}
		drop(kind, again);
	} else {
		/* Only a field that cannot round-trip is refused, never memory here. */
		FUZZ_CHECK(kind == FUZZ_MANIFEST && rc == ROTOR_EINVALID);
	}
	buf_release(&text);
}

void fuzz_spec(enum fuzz_spec_kind kind, const uint8_t *data, size_t size)
{
	struct diags d = { NULL, 0, 0 };
	struct buf shown = BUF_INIT;
	void *obj = NULL;
	const char *p = (const char *)data;
	size_t i;
	int rc, rc2;

	rc = load(kind, &obj, p, size, &d);
	FUZZ_CHECK(rc == 0 || rc == ROTOR_EINVALID || rc == ROTOR_ETOOBIG);
	FUZZ_CHECK((rc == 0) == (obj != NULL));
	FUZZ_CHECK((rc == 0) == (d.n == 0));
	for (i = 0; i < d.n; i++)
		FUZZ_CHECK(d.v[i].path && d.v[i].msg && d.v[i].line >= 0 && d.v[i].column >= 0);
	FUZZ_CHECK(diags_format(&d, &shown) == 0);
	rc2 = load(kind, NULL, p, size, NULL);
	FUZZ_CHECK(rc2 == rc);
	if (obj)
		round_trip(kind, obj);
	drop(kind, obj);
	buf_release(&shown);
	diags_release(&d);
}

#ifdef FUZZ_SPEC_KIND
static void fuzz_one_kind(const uint8_t *data, size_t size)
{
	fuzz_spec(FUZZ_SPEC_KIND, data, size);
}
FUZZ_MAIN(fuzz_one_kind)
#endif
