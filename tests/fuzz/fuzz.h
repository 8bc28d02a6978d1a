/*
 * fuzz.h -- the fuzz targets' entry points (tests/fuzz/fuzz_*.c).
 *
 * Each fuzz_<name>.c holds one function over bytes, fuzz_<name>(), and
 * LLVMFuzzerTestOneInput() calling it (left out when FUZZ_NO_MAIN is
 * defined, so tests/unit/test_fuzz.c can replay stored inputs through
 * the same functions under gcc's sanitizers).  Besides "no crash, no
 * leak, no undefined behaviour", every target checks what its parser
 * promises (FUZZ_CHECK aborts, so libFuzzer keeps the input).
 */
#ifndef ROTOR_FUZZ_H
#define ROTOR_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#define FUZZ_CHECK(cond)                                                                  \
	do {                                                                              \
		if (!(cond)) {                                                            \
			fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond); \
			abort();                                                          \
		}                                                                         \
	} while (0)

/* LLVMFuzzerTestOneInput calling fn(data, size), unless FUZZ_NO_MAIN. */
#ifdef FUZZ_NO_MAIN
#define FUZZ_MAIN(fn)
#else
#define FUZZ_MAIN(fn)                                                  \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);  \
	int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)   \
	{                                                              \
		fn(data, size);                                        \
		return 0;                                              \
	}
#endif

/* The YAML file kinds, one libFuzzer binary each (fuzz_spec.c built with FUZZ_SPEC_KIND). */
enum fuzz_spec_kind { FUZZ_ROTOR, FUZZ_CHAIN, FUZZ_HOSTS, FUZZ_ROTATION, FUZZ_MANIFEST };

void fuzz_spec(enum fuzz_spec_kind kind, const uint8_t *data, size_t size);
void fuzz_pem(const uint8_t *data, size_t size);
void fuzz_lock(const uint8_t *data, size_t size);
void fuzz_pgreply(const uint8_t *data, size_t size);
void fuzz_tlsreply(const uint8_t *data, size_t size);
void fuzz_remote(const uint8_t *data, size_t size);
void fuzz_savedplan(const uint8_t *data, size_t size);
void fuzz_sftpreply(const uint8_t *data, size_t size);

/* Every byte of s is printable ASCII (what rotor shows of foreign text). */
static inline int fuzz_printable(const char *s)
{
	for (; *s; s++)
		if (*s < 0x20 || *s > 0x7e)
			return 0;
	return 1;
}

#endif
