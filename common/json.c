/* json.c -- JSON string escaping (see json.h). */
#include "json.h"

#include <stdio.h>
#include <string.h>

/* Length of the valid UTF-8 sequence at s, or 0 when it is not one. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n, i;
	unsigned cp;

	if (s[0] < 0x80)
		return 1;
	if (s[0] >= 0xc2 && s[0] <= 0xdf)
		n = 2, cp = s[0] & 0x1f;
	else if (s[0] >= 0xe0 && s[0] <= 0xef)
		n = 3, cp = s[0] & 0x0f;
	else if (s[0] >= 0xf0 && s[0] <= 0xf4)
		n = 4, cp = s[0] & 0x07;
	else
		return 0;
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

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
		} else if ((n = utf8_len(p)) == 0) {
			rc = buf_puts(b, "\\ufffd");
			p++;
		} else {
			rc = buf_put(b, p, n);
			p += n;
		}
	}
	return rc ? rc : buf_put(b, "\"", 1);
}
