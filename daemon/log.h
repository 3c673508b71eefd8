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

/* hsmcad -d: until the start-up is over, fatal errors are also written
 * to fd, for the process that waits for it (which exits with them). */
void	log_startup(int fd);
/* What the start-up waits for from now on ("the signer to log in to
 * token 'x'"): the waiting process names it if its deadline passes. */
void	log_startup_wait(const char *, ...)
	    __attribute__((format(printf, 1, 2)));
/* The daemon is ready: the waiting process exits 0. */
void	log_startup_ready(void);
/* This process's part of the start-up is over: it reports no more. */
void	log_startup_close(void);

#endif
