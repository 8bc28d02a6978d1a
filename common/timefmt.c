/* timefmt.c -- RFC 3339 UTC parsing without time zone dependence. */
#include "common/timefmt.h"

#include <stdio.h>
#include <string.h>

long long rfc3339_parse(const char *s)
{
	int Y, M, D, h, m, sec, n = 0;
	long long y, era, yoe, doy, doe;

	if (!s || strlen(s) != 20 ||
	    sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &Y, &M, &D, &h, &m, &sec, &n) != 6 || n != 20)
		return -1;
	if (M < 1 || M > 12 || D < 1 || D > 31 || h > 23 || m > 59 || sec > 60 || Y < 1970)
		return -1;
	y = Y - (M <= 2);
	era = (y >= 0 ? y : y - 399) / 400;
	yoe = y - era * 400;
	doy = (153 * (M + (M > 2 ? -3 : 9)) + 2) / 5 + D - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return (era * 146097 + doe - 719468) * 86400 + h * 3600 + m * 60 + sec;
}

long long days_until(long long t, time_t now)
{
	if (t >= (long long)now)
		return (t - (long long)now) / 86400;
	return -(((long long)now - t + 86399) / 86400);
}

int rfc3339_format(char *out, size_t len, time_t t)
{
	struct tm tm;

	if (len < 21 || !gmtime_r(&t, &tm) || strftime(out, len, "%Y-%m-%dT%H:%M:%SZ", &tm) != 20)
		return -1;
	return 0;
}
