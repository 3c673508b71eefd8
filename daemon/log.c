/* log.c: logging for hsmcad. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>

#include "log.h"

static int log_syslog;
static int log_verbose;

void
log_init(int to_syslog, int verbose)
{
	log_syslog = to_syslog;
	log_verbose = verbose;
	if (to_syslog)
		openlog("hsmcad", LOG_PID | LOG_NDELAY, LOG_DAEMON);
	tzset();
}

static void
vlog(int pri, const char *fmt, va_list ap, const char *suffix)
{
	char msg[2048];

	vsnprintf(msg, sizeof(msg), fmt, ap);
	/* One event, one line, whatever the message quoted: a client's
	 * names and paths are in it, and no control character of theirs
	 * reaches an operator's terminal (UTF-8 passes). */
	for (unsigned char *p = (unsigned char *)msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
		else if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	if (log_syslog) {
		if (suffix != NULL)
			syslog(pri, "%s: %s", msg, suffix);
		else
			syslog(pri, "%s", msg);
	} else {
		char ts[32];
		time_t now = time(NULL);
		struct tm tm;

		gmtime_r(&now, &tm);
		strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%SZ", &tm);
		if (suffix != NULL)
			fprintf(stderr, "%s hsmcad: %s: %s\n", ts, msg, suffix);
		else
			fprintf(stderr, "%s hsmcad: %s\n", ts, msg);
	}
}

#define LOGFN(name, pri, cond) \
void \
name(const char *fmt, ...) \
{ \
	va_list ap; \
	if (!(cond)) \
		return; \
	va_start(ap, fmt); \
	vlog(pri, fmt, ap, NULL); \
	va_end(ap); \
}

LOGFN(log_info, LOG_INFO, 1)
LOGFN(log_warnx, LOG_WARNING, 1)
LOGFN(log_errorx, LOG_ERR, 1)
LOGFN(log_debug, LOG_DEBUG, log_verbose)

void
log_warn(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_WARNING, fmt, ap, strerror(saved));
	va_end(ap);
}

void
fatalx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, NULL);
	va_end(ap);
	exit(1);
}

void
fatal(const char *fmt, ...)
{
	int saved = errno;
	va_list ap;

	va_start(ap, fmt);
	vlog(LOG_CRIT, fmt, ap, strerror(saved));
	va_end(ap);
	exit(1);
}
