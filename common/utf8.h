/*
 * utf8.h -- well-formed UTF-8, as JSON output, repository paths and
 * quoted YAML text need it: the one decoder in rotor.
 */
#ifndef ROTOR_UTF8_H
#define ROTOR_UTF8_H

#include <stddef.h>

/*
 * Length (1 to 4) of the well-formed UTF-8 sequence at s[0..n), with its
 * code point in *cp, or 0 when it is not one (overlong forms,
 * surrogates, code points over U+10FFFF, a sequence cut short by n).
 */
size_t utf8_decode(const unsigned char *s, size_t n, unsigned long *cp);

/*
 * The same for a NUL-terminated s: a NUL ends any sequence early, and
 * nothing past it is read.
 */
size_t utf8_seq_len(const unsigned char *s);

#endif
