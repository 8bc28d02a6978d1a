/*
 * json.h -- JSON through jansson: every JSON document rotor writes is
 * built as a json_t and printed by json_emit(); lock.json is read back
 * with jansson (gitops/gitstatus.c).
 *
 * json_text() makes a JSON string of any C string: NULL is null, and
 * bytes that are not well-formed UTF-8 become U+FFFD, so text read from
 * hosts or certificates can never make a document invalid (jansson
 * itself refuses such strings).  It returns NULL only when memory ran
 * out; jansson's object and array setters then fail too, and
 * json_emit() reports that.
 *
 * Errors: ROTOR_ENOMEM / ROTOR_ETOOBIG.
 */
#ifndef ROTOR_JSON_H
#define ROTOR_JSON_H

#include <jansson.h>

#include "common/buf.h"

json_t *json_text(const char *s);

/*
 * Append doc, compact, keys in insertion order, and a newline to out;
 * takes the reference to doc (NULL doc: ROTOR_ENOMEM, the document could
 * not be built).
 */
int json_emit(struct buf *out, json_t *doc);

#endif
