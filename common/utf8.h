/*
 * utf8.h -- well-formed UTF-8, as JSON output and repository paths need it.
 */
#ifndef ROTOR_UTF8_H
#define ROTOR_UTF8_H

#include <stddef.h>

/*
 * Length (1 to 4) of the well-formed UTF-8 sequence at s, or 0 when it is
 * not one (overlong forms, surrogates and code points over U+10FFFF are
 * not).  s must be NUL-terminated: a NUL ends any sequence early.
 */
size_t utf8_seq_len(const unsigned char *s);

#endif
