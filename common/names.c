/* names.c -- the name rules shared by gitops/ and reconcile/ (see names.h). */
#include "common/names.h"

#include <string.h>

static int lower_or_digit(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

int env_name_valid(const char *s)
{
	size_t n, i;

	if (!s)
		return 0;
	n = strlen(s);
	if (n == 0 || n > 32 || !lower_or_digit(s[0]))
		return 0;
	for (i = 1; i < n; i++)
		if (!lower_or_digit(s[i]) && s[i] != '_' && s[i] != '-')
			return 0;
	return 1;
}
