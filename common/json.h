/*
 * json.h -- writing JSON text into a struct buf.
 *
 * json_str() writes a quoted, escaped string (control characters as
 * \u00XX; invalid UTF-8 bytes as U+FFFD so the output is always valid
 * JSON).  NULL writes null.  Returns 0 or ROTOR_ENOMEM/ROTOR_ETOOBIG.
 */
#ifndef ROTOR_JSON_H
#define ROTOR_JSON_H

#include "common/buf.h"

int json_str(struct buf *b, const char *s);

#endif
