/* log.h: one logging interface for hsmcad: stderr before and without
 * detaching, syslog after (bgpd log.h). */
#ifndef HSMCAD_LOG_H
#define HSMCAD_LOG_H

#include <stdarg.h>

void	log_init(int to_syslog, int verbose);
void	log_info(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warnx(const char *, ...) __attribute__((format(printf, 1, 2)));
/* Something an operator must act on (syslog LOG_ERR), the daemon goes on. */
void	log_errorx(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_warn(const char *, ...) __attribute__((format(printf, 1, 2)));
void	log_debug(const char *, ...) __attribute__((format(printf, 1, 2)));
void	fatalx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
void	fatal(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));

#endif
