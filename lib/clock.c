/* clock.c: the injectable clock. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "hsmca/clock.h"

static time_t clock_override;

int
clock_parse(const char *s, time_t *out)
{
	struct tm tm;
	const char *end;
	char *ep;
	long long v;

	if (s == NULL || *s == '\0')
		return -1;
	memset(&tm, 0, sizeof(tm));
	end = strptime(s, "%Y-%m-%dT%H:%M:%SZ", &tm);
	if (end == NULL) {
		memset(&tm, 0, sizeof(tm));
		end = strptime(s, "%Y-%m-%d", &tm);
	}
	if (end != NULL && *end == '\0') {
		struct tm want = tm, got;

		/* timegm() normalizes: refuse dates that do not exist
		 * (2023-02-29, 23:59:60) rather than shift them. */
		*out = timegm(&tm);
		if (*out == (time_t)-1 || gmtime_r(out, &got) == NULL ||
		    got.tm_year != want.tm_year ||
		    got.tm_mon != want.tm_mon ||
		    got.tm_mday != want.tm_mday ||
		    got.tm_hour != want.tm_hour ||
		    got.tm_min != want.tm_min || got.tm_sec != want.tm_sec)
			return -1;
		return 0;
	}
	errno = 0;
	v = strtoll(s, &ep, 10);
	if (errno != 0 || *ep != '\0' || v < 0)
		return -1;
	*out = (time_t)v;
	return 0;
}

time_t
clock_now(void)
{
	const char *env;
	time_t t;

	if (clock_override != 0)
		return clock_override;
	/* Read every time: a test may change it between calls of one
	 * process only through clock_set(), but this stays cheap. */
	env = getenv("HSMCA_NOW");
	if (env != NULL && clock_parse(env, &t) == 0)
		return t;
	return time(NULL);
}

void
clock_set(time_t t)
{
	clock_override = t;
}

char *
clock_format(time_t t, char *buf, size_t len)
{
	struct tm tm;

	if (gmtime_r(&t, &tm) == NULL ||
	    strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0)
		snprintf(buf, len, "?");
	return buf;
}
