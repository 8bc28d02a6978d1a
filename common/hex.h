/*
 * hex.h -- bytes as uppercase hex pairs separated by colons
 * ("AB:CD:EF"), the form of every fingerprint, SKI and AKI rotor shows
 * and stores (manifests, observe, probes).
 */
#ifndef ROTOR_HEX_H
#define ROTOR_HEX_H

#include <stddef.h>

/* The bytes p[0..n) into out (3 * n bytes suffice), truncated to fit len; always terminated. */
void hex_colon(char *out, size_t len, const unsigned char *p, size_t n);

#endif
