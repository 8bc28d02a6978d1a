/* json.c -- JSON string escaping (see json.h). */
#include "common/json.h"
#include "common/utf8.h"

#include <stdio.h>
#include <string.h>

int json_str(struct buf *b, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char esc[8];
	size_t n;
	int rc = 0;

	if (!s)
		return buf_puts(b, "null");
	rc = buf_put(b, "\"", 1);
	while (!rc && *p) {
		if (*p == '"' || *p == '\\') {
			esc[0] = '\\';
			esc[1] = (char)*p;
			rc = buf_put(b, esc, 2);
			p++;
		} else if (*p < 0x20 || *p == 0x7f) {
			snprintf(esc, sizeof(esc), "\\u%04x", *p);
			rc = buf_puts(b, esc);
			p++;
		} else if ((n = utf8_seq_len(p)) == 0) {
			rc = buf_puts(b, "\\ufffd");
			p++;
		} else {
			rc = buf_put(b, p, n);
			p += n;
		}
	}
	return rc ? rc : buf_put(b, "\"", 1);
}
