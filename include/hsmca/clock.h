/* clock.h: the one clock every date decision reads. */
#ifndef HSMCA_CLOCK_H
#define HSMCA_CLOCK_H

#include <time.h>

/* Seconds since the epoch. HSMCA_NOW in the environment (epoch seconds or
 * YYYY-MM-DDTHH:MM:SSZ) or clock_set() overrides the system clock so tests
 * can walk a CA through years without waiting. */
time_t	clock_now(void);
void	clock_set(time_t t);	/* 0 returns to the real clock */

/* Parse "YYYY-MM-DDTHH:MM:SSZ", "YYYY-MM-DD" or decimal epoch seconds.
 * Returns 0 on success, -1 on a malformed value. */
int	clock_parse(const char *s, time_t *out);

/* Format t as "YYYY-MM-DDTHH:MM:SSZ" into buf (at least 21 bytes). */
char	*clock_format(time_t t, char *buf, size_t len);

#endif
