/* pidfile.h: hsmcad's pidfile, locked for as long as the daemon runs.
 * One per process: the parent owns it, the processes it forks let go
 * of their copy of the lock. */
#ifndef HSMCAD_PIDFILE_H
#define HSMCAD_PIDFILE_H

#include <sys/types.h>

#include <stddef.h>

/* Lock the file at path (created if missing), before anything starts:
 * 0; or -1 and why, one line, such as "PATH: held by hsmcad pid 1234"
 * when another process holds it. A file nobody holds (left by a
 * SIGKILL) is taken over. */
int	pidfile_lock(const char *path, char *why, size_t wlen);
/* This process's pid, written into a new file (owned by uid and gid
 * unless uid is -1) that is locked and then renamed over the path; from
 * here on this process owns the pidfile and removes it when it exits,
 * fatal errors included. 0 (nothing done without pidfile_lock), or -1
 * and why. */
int	pidfile_write(uid_t uid, gid_t gid, char *why, size_t wlen);
/* A process that goes on without the pidfile (the one -d leaves, the
 * children): its copy of the lock is closed, so the lock ends with the
 * owner. */
void	pidfile_forget(void);
/* The owner, at its exit: the file removed if the path still names it,
 * then the lock dropped. */
void	pidfile_remove(void);

#endif
