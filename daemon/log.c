/* log.c: logging for hsmcad. */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "log.h"

static int log_syslog;
static int log_verbose;
/* hsmcad -d: the process that started the daemon waits on this pipe
 * for "R" (ready) or "E" and the first fatal error of any of the
 * daemon's processes, one line each, and is told with "W" lines what the
 * start-up waits for; -1 when nobody waits. */
static int log_startup_fd = -1;

void
log_startup(int fd)
{
	log_startup_fd = fd;
}

void
log_startup_ready(void)
{
	if (log_startup_fd != -1 && write(log_startup_fd, "R\n", 2) != 2)
		log_warn("cannot tell the start-up is done");
	log_startup_close();
}

void
log_startup_close(void)
{
	if (log_startup_fd != -1)
		close(log_startup_fd);
	log_startup_fd = -1;
}

/* One event, one line, whatever the message quoted: a client's names
 * and paths are in it, and no control character of theirs reaches an
 * operator's terminal (UTF-8 passes). */
static void
log_clean(char *msg)
{
	for (unsigned char *p = (unsigned char *)msg; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
		else if (*p < 0x20 || *p == 0x7f)
			*p = '?';
}

/* One write, within PIPE_BUF: two processes failing at once do not mix
 * their lines. */
static void
log_startup_line(char kind, const char *msg, const char *suffix)
{
	char line[1024];
	int n;

	if (log_startup_fd == -1)
		return;
	n = snprintf(line, sizeof(line) - 1, "%c%s%s%s", kind, msg,
	    suffix != NULL ? ": " : "", suffix != NULL ? suffix : "");
	if (n < 0)
		return;
	if ((size_t)n > sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	if (write(log_startup_fd, line, (size_t)n) != n) {
		/* Nobody waits any more: the daemon was ready. */
	}
}

void
log_startup_wait(const char *fmt, ...)
{
	char what[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(what, sizeof(what), fmt, ap);
	va_end(ap);
	log_clean(what);
	log_startup_line('W', what, NULL);
}

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
	log_clean(msg);
	if (pri == LOG_CRIT)
		log_startup_line('E', msg, suffix);
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
