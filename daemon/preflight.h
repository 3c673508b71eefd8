/* preflight.h: what hsmcad's start-up needs of the system, checked
 * before anything starts: by the start-up itself and by hsmcad -t. */
#ifndef HSMCAD_PREFLIGHT_H
#define HSMCAD_PREFLIGHT_H

#include <stddef.h>

struct config;
struct passwd;

/* Every problem of cfg that would stop the start-up, each handed to
 * report as one line: how many. What the start-up would only warn of
 * goes to warn (NULL: nowhere), one line each. Logs in to nothing,
 * binds no port and opens no store. */
int	preflight_check(const struct config *cfg,
	    void (*report)(const char *msg, void *arg),
	    void (*warn)(const char *msg, void *arg), void *arg);
/* The account [daemon] user names, if hsmcad can become it: it exists,
 * is not root, and this process is root or already runs as it. 0 and
 * *pw, or -1 and why. */
int	preflight_user(const char *user, struct passwd **pw, char *why,
	    size_t wlen);

#endif
