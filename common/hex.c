/* hex.c -- colon-separated uppercase hex (see hex.h). */
#include "common/hex.h"

void hex_colon(char *out, size_t len, const unsigned char *p, size_t n)
{
	static const char digits[] = "0123456789ABCDEF";
	size_t i, o = 0;

	if (len == 0)
		return;
	for (i = 0; i < n && o + (i ? 3 : 2) < len; i++) {
		if (i)
			out[o++] = ':';
		out[o++] = digits[p[i] >> 4];
		out[o++] = digits[p[i] & 15];
	}
	out[o] = '\0';
}
