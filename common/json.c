/* json.c -- JSON documents through jansson, and string escaping (see json.h). */
#include "common/json.h"
#include "common/utf8.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

json_t *json_text(const char *s)
{
	struct buf clean = BUF_INIT;
	const unsigned char *p = (const unsigned char *)s;
	json_t *j;
	size_t n, len;
	unsigned long cp;

	if (!s)
		return json_null();
	len = strlen(s);
	if ((j = json_stringn(s, len)) != NULL)
		return j;
	/* Not UTF-8: keep every well-formed sequence, replace each other byte. */
	while (*p) {
		n = utf8_decode(p, len - (size_t)(p - (const unsigned char *)s), &cp);
		if (n == 0) {
			buf_puts(&clean, "\xef\xbf\xbd");
			p++;
		} else {
			buf_put(&clean, p, n);
			p += n;
		}
	}
	j = clean.err ? NULL : json_stringn(buf_cstr(&clean), clean.len);
	buf_release(&clean);
	return j;
}

int json_emit(struct buf *out, json_t *doc)
{
	char *text;
	int rc;

	if (!doc)
		return ROTOR_ENOMEM;
	text = json_dumps(doc, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(9));
	json_decref(doc);
	if (!text)
		return ROTOR_ENOMEM;
	rc = buf_printf(out, "%s\n", text);
	free(text);
	return rc;
}
