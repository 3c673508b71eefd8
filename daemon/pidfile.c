/* pidfile.c: hsmcad's pidfile, locked while the daemon runs (pidfile.h).
 *
 * flock(2), not fcntl(2): a flock belongs to the open file description,
 * so it passes the fork of -d to the daemon and outlives the change of
 * user; a POSIX lock stays with the process that took it and goes when
 * any descriptor of the file is closed.
 *
 * Two files take part. The one the path names at the start is locked
 * first: that is what a second hsmcad finds held, and what keeps two
 * that take over a stale file at once from both going on. The pid then
 * goes into a new file, locked before it is renamed over the path while
 * the first lock is still held: a reader finds the old file or the new
 * one, whole, never the empty or half-written file an ftruncate and
 * write in place would show, and the path names a locked file
 * throughout. One that locked a file renamed over or removed meanwhile
 * finds that the path names another file, and starts again (as
 * FreeBSD's flopen(3) does). */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "pidfile.h"

/* Tries at a path that keeps changing under us (other hsmcads starting
 * and stopping at the same moment). */
#define PIDFILE_TRIES	100

static char	pf_path[PATH_MAX];
static int	pf_fd = -1;	/* locked; the file the path names */
static pid_t	pf_owner;	/* the process that wrote it, 0 until then */
static int	pf_atexit;

/* The pid a reader of path finds in it, or -1. */
static long
pidfile_read(const char *path)
{
	char buf[32], *end;
	ssize_t n;
	long pid;
	int fd;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) == -1)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	errno = 0;
	pid = strtol(buf, &end, 10);
	if (errno != 0 || end == buf || *end != '\n' || pid <= 0)
		return -1;
	return pid;
}

/* Does path still name the file open at fd? */
static int
pidfile_same(int fd, const char *path)
{
	struct stat a, b;

	return fstat(fd, &a) == 0 && lstat(path, &b) == 0 &&
	    a.st_dev == b.st_dev && a.st_ino == b.st_ino;
}

int
pidfile_lock(const char *path, char *why, size_t wlen)
{
	struct stat sb;
	long pid;
	int fd, saved;

	if (strlen(path) >= sizeof(pf_path)) {
		snprintf(why, wlen, "%s: the path is too long", path);
		return -1;
	}
	for (int i = 0; i < PIDFILE_TRIES; i++) {
		/* Read-only: it is replaced, never written. No link is
		 * followed (the lock must be on the file the path names)
		 * and no FIFO waited on. */
		if ((fd = open(path, O_RDONLY | O_CREAT | O_NOFOLLOW |
		    O_NONBLOCK | O_CLOEXEC, 0644)) == -1) {
			snprintf(why, wlen, "%s: %s", path, errno == ELOOP ?
			    "a symbolic link, not a file" : strerror(errno));
			return -1;
		}
		if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
			close(fd);
			snprintf(why, wlen, "%s: not a regular file", path);
			return -1;
		}
		if (flock(fd, LOCK_EX | LOCK_NB) == -1) {
			saved = errno;
			close(fd);
			if (saved != EWOULDBLOCK) {
				snprintf(why, wlen, "%s: cannot lock it: %s",
				    path, strerror(saved));
				return -1;
			}
			/* As a reader finds it now: the holder renames its
			 * pid in right after it locks. */
			if ((pid = pidfile_read(path)) > 0)
				snprintf(why, wlen, "%s: held by hsmcad pid %ld",
				    path, pid);
			else
				snprintf(why, wlen, "%s: held by another "
				    "process, which has not written its pid in "
				    "it", path);
			return -1;
		}
		if (pidfile_same(fd, path)) {
			memcpy(pf_path, path, strlen(path) + 1);
			pf_fd = fd;
			return 0;
		}
		close(fd);
	}
	snprintf(why, wlen, "%s: replaced %d times while it was being locked",
	    path, PIDFILE_TRIES);
	return -1;
}

int
pidfile_write(uid_t uid, gid_t gid, char *why, size_t wlen)
{
	char tmp[PATH_MAX + 16], buf[32];
	int fd, n;

	if (pf_fd == -1)
		return 0;
	if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", pf_path) >=
	    sizeof(tmp)) {
		snprintf(why, wlen, "%s: the path is too long", pf_path);
		return -1;
	}
	if ((fd = mkostemp(tmp, O_CLOEXEC)) == -1) {
		snprintf(why, wlen, "%s: %s", tmp, strerror(errno));
		return -1;
	}
	n = snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	/* Nobody knows the new file yet: its lock is free. Not synced: a
	 * pid means nothing after the machine restarts. */
	if (fchmod(fd, 0644) == -1 ||
	    (uid != (uid_t)-1 && fchown(fd, uid, gid) == -1) ||
	    flock(fd, LOCK_EX | LOCK_NB) == -1 ||
	    write(fd, buf, (size_t)n) != n ||
	    rename(tmp, pf_path) == -1) {
		snprintf(why, wlen, "%s: %s", pf_path, strerror(errno));
		(void)unlink(tmp);
		close(fd);
		return -1;
	}
	/* The first file has no name any more; its lock goes with it. */
	close(pf_fd);
	pf_fd = fd;
	pf_owner = getpid();
	if (!pf_atexit && atexit(pidfile_remove) != 0) {
		snprintf(why, wlen, "%s: atexit failed", pf_path);
		return -1;
	}
	pf_atexit = 1;
	return 0;
}

void
pidfile_forget(void)
{
	if (pf_fd != -1)
		close(pf_fd);
	pf_fd = -1;
	pf_owner = 0;
}

void
pidfile_remove(void)
{
	if (pf_fd == -1 || pf_owner != getpid())
		return;
	/* Unless it was removed or replaced by hand: the file the path
	 * names now is not ours to remove. */
	if (pidfile_same(pf_fd, pf_path))
		(void)unlink(pf_path);
	close(pf_fd);
	pf_fd = -1;
}
