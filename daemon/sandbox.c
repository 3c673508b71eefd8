/* sandbox.c: the seccomp filter of hsmcad's front process (libseccomp).
 * An allowlist: every other system call traps, the SIGSYS handler names
 * it on stderr (and /dev/log) and the process exits without having made
 * it. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sched.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <termios.h>
#include <unistd.h>

#include <seccomp.h>

#include "hsmca/err.h"

#include "sandbox.h"

#ifndef SYS_SECCOMP
#define SYS_SECCOMP		1	/* si_code of a trapped call */
#endif

#define SANDBOX_NR_MAX		512	/* x86_64 and aarch64 stay below */
#define SANDBOX_NAME_MAX	24
#define SANDBOX_TAG		"hsmcad front: seccomp: "

/* What each system call is for, as bgpd lists its pledges. */
static const int front_syscalls[] = {
	/* the libevent loop and its wakeups (evsig socketpair, eventfd) */
	SCMP_SYS(epoll_wait), SCMP_SYS(epoll_pwait), SCMP_SYS(epoll_ctl),
	SCMP_SYS(epoll_create1), SCMP_SYS(eventfd2), SCMP_SYS(pipe2),
	SCMP_SYS(poll), SCMP_SYS(ppoll),
	/* connections: accepted on inherited listeners, TLS, HTTP; the
	 * signer link; syslog (connect happens on AF_UNIX sockets only:
	 * socket() is filtered below) */
	SCMP_SYS(accept4), SCMP_SYS(accept), SCMP_SYS(connect),
	SCMP_SYS(read), SCMP_SYS(write), SCMP_SYS(readv), SCMP_SYS(writev),
	SCMP_SYS(recvfrom), SCMP_SYS(sendto), SCMP_SYS(recvmsg),
	SCMP_SYS(sendmsg), SCMP_SYS(shutdown), SCMP_SYS(close),
	SCMP_SYS(setsockopt), SCMP_SYS(getsockopt), SCMP_SYS(getsockname),
	SCMP_SYS(getpeername),
	/* the store read-only, opened before (SQLite maps -shm, writes to
	 * it and locks with fcntl); open and openat are filtered below */
	SCMP_SYS(pread64), SCMP_SYS(pwrite64), SCMP_SYS(lseek),
	SCMP_SYS(fstat), SCMP_SYS(newfstatat), SCMP_SYS(stat),
	SCMP_SYS(lstat), SCMP_SYS(statx), SCMP_SYS(access),
	SCMP_SYS(faccessat), SCMP_SYS(faccessat2), SCMP_SYS(readlink),
	SCMP_SYS(readlinkat), SCMP_SYS(getcwd), SCMP_SYS(getdents64),
	/* malloc (mmap and mprotect are filtered below) */
	SCMP_SYS(brk), SCMP_SYS(munmap), SCMP_SYS(madvise), SCMP_SYS(mremap),
	/* locks, time, randomness for TLS */
	SCMP_SYS(futex), SCMP_SYS(nanosleep), SCMP_SYS(clock_nanosleep),
	SCMP_SYS(clock_gettime), SCMP_SYS(clock_getres),
	SCMP_SYS(gettimeofday), SCMP_SYS(time), SCMP_SYS(sched_yield),
	SCMP_SYS(getrandom),
	/* signals (libevent's evsig, abort()) */
	SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
	SCMP_SYS(rt_sigaction), SCMP_SYS(restart_syscall),
	/* who and where we are: glibc, OpenSSL, sysconf() */
	SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(getppid),
	SCMP_SYS(getuid), SCMP_SYS(geteuid), SCMP_SYS(getgid),
	SCMP_SYS(getegid), SCMP_SYS(uname), SCMP_SYS(sysinfo),
	SCMP_SYS(sched_getaffinity), SCMP_SYS(getrlimit),
	SCMP_SYS(exit), SCMP_SYS(exit_group),
#ifdef SANDBOX_SANITIZER
	/* ASan/LSan only: the leak check at exit (StopTheWorld) clones a
	 * tracer (clone, ptrace and prctl are filtered below) that runs on
	 * its own signal stack, lists /proc/self/task with the old
	 * getdents and ptraces this process, which waits for it. The
	 * tracer blocks SIGSYS: a call missing here kills it silently and
	 * leaves the process spinning in sched_yield. */
	SCMP_SYS(wait4), SCMP_SYS(sigaltstack), SCMP_SYS(getdents),
#endif
};

static const unsigned long front_fcntl[] = {
	F_GETFD, F_SETFD, F_GETFL, F_SETFL,	/* CLOEXEC, O_NONBLOCK */
	F_GETLK, F_SETLK, F_SETLKW,		/* SQLite's locks */
	F_OFD_GETLK, F_OFD_SETLK, F_OFD_SETLKW,
};

static const unsigned long front_ioctl[] = {
	FIONREAD,	/* libevent: how much to read */
	FIONBIO,	/* non-blocking, the old way */
	TCGETS,		/* isatty() in stdio */
};

#ifdef SANDBOX_SANITIZER
/* What the LSan tracer does to this process: attach, read registers,
 * let go. PTRACE_TRACEME and PEEK/POKE of memory stay out. */
static const unsigned long sanitizer_ptrace[] = {
	PTRACE_ATTACH, PTRACE_SEIZE, PTRACE_INTERRUPT, PTRACE_CONT,
	PTRACE_DETACH, PTRACE_GETREGSET, PTRACE_PEEKUSER,
#ifdef PT_GETREGS
	PTRACE_GETREGS, PTRACE_GETFPREGS,
#endif
};
static const unsigned long sanitizer_prctl[] = {
	PR_GET_DUMPABLE, PR_SET_DUMPABLE,	/* to be ptraced at all */
	PR_SET_PTRACER,				/* Yama */
	PR_SET_PDEATHSIG,			/* the tracer dies with us */
};
#endif

/* Names for the SIGSYS handler, looked up before the filter is loaded
 * because the lookup allocates. */
static char	sandbox_names[SANDBOX_NR_MAX][SANDBOX_NAME_MAX];
static int	sandbox_log_fd = -1;
static char	sandbox_log_tag[64];

/* Async-signal-safe formatting for the handler. */
static size_t
buf_str(char *buf, size_t len, size_t off, const char *s)
{
	while (*s != '\0' && off + 1 < len)
		buf[off++] = *s++;
	buf[off] = '\0';
	return off;
}

static size_t
buf_num(char *buf, size_t len, size_t off, long v)
{
	char digits[24];
	unsigned long u = v < 0 ? 0UL - (unsigned long)v : (unsigned long)v;
	size_t n = 0;

	do {
		digits[n++] = (char)('0' + u % 10);
		u /= 10;
	} while (u != 0 && n < sizeof(digits) - 1);
	if (v < 0 && off + 1 < len)
		buf[off++] = '-';
	while (n > 0 && off + 1 < len)
		buf[off++] = digits[--n];
	buf[off] = '\0';
	return off;
}

static void
sandbox_sigsys(int sig, siginfo_t *si, void *uctx)
{
	char msg[192], line[256];
	size_t n = 0, m;
	int nr;

	if (si->si_code == SYS_SECCOMP) {
		nr = si->si_syscall;
		n = buf_str(msg, sizeof(msg), n, "system call ");
		n = buf_num(msg, sizeof(msg), n, nr);
		if (nr >= 0 && nr < SANDBOX_NR_MAX &&
		    sandbox_names[nr][0] != '\0') {
			n = buf_str(msg, sizeof(msg), n, " (");
			n = buf_str(msg, sizeof(msg), n, sandbox_names[nr]);
			n = buf_str(msg, sizeof(msg), n, ")");
		}
		n = buf_str(msg, sizeof(msg), n, " is not allowed");
	} else {
		n = buf_str(msg, sizeof(msg), n, "SIGSYS sent by pid ");
		n = buf_num(msg, sizeof(msg), n, (long)si->si_pid);
	}
	m = buf_str(line, sizeof(line), 0, SANDBOX_TAG);
	m = buf_str(line, sizeof(line), m, msg);
	m = buf_str(line, sizeof(line), m, "\n");
	/* If stderr is gone there is nobody to tell: exit all the same. */
	if (write(STDERR_FILENO, line, m) == -1)
		m = 0;
	if (sandbox_log_fd != -1) {
		m = buf_str(line, sizeof(line), 0, sandbox_log_tag);
		m = buf_str(line, sizeof(line), m, SANDBOX_TAG);
		m = buf_str(line, sizeof(line), m, msg);
		(void)send(sandbox_log_fd, line, m, MSG_NOSIGNAL);
	}
	_exit(SANDBOX_EXIT_VIOLATION);
}

/* A datagram socket to syslog of our own: the handler cannot use
 * syslog(3). Best effort: no /dev/log, no second copy. */
static void
sandbox_open_log(void)
{
	struct sockaddr_un sun;
	size_t n;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "/dev/log");
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
		return;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		close(fd);
		return;
	}
	/* <LOG_DAEMON|LOG_CRIT>hsmcad[PID]: */
	n = buf_str(sandbox_log_tag, sizeof(sandbox_log_tag), 0, "<26>hsmcad[");
	n = buf_num(sandbox_log_tag, sizeof(sandbox_log_tag), n,
	    (long)getpid());
	(void)buf_str(sandbox_log_tag, sizeof(sandbox_log_tag), n, "]: ");
	sandbox_log_fd = fd;
}

static void
sandbox_load_names(void)
{
	char *name;

	for (int nr = 0; nr < SANDBOX_NR_MAX; nr++) {
		name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (name != NULL)
			snprintf(sandbox_names[nr], SANDBOX_NAME_MAX, "%s",
			    name);
		free(name);
	}
}

/* A system call this architecture does not have (aarch64 has no open or
 * stat) resolves to a negative pseudo number: skip it. */
static int
rule_add(scmp_filter_ctx ctx, uint32_t action, int nr, unsigned int nargs,
    const struct scmp_arg_cmp *args, struct hsmca_err *e)
{
	int rc;

	if (nr < 0)
		return 0;
	if ((rc = seccomp_rule_add_array(ctx, action, nr, nargs, args)) != 0) {
		char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE,
		    nr);

		rc = err_set(e, HSMCA_ERR_INTERNAL, "sandbox: rule for %s: %s",
		    name != NULL ? name : "?", strerror(-rc));
		free(name);
		return rc;
	}
	return 0;
}

/* One rule per allowed value of argument idx. */
static int
rule_add_values(scmp_filter_ctx ctx, int nr, unsigned int idx,
    const unsigned long *vals, size_t nvals, struct hsmca_err *e)
{
	struct scmp_arg_cmp cmp;

	for (size_t i = 0; i < nvals; i++) {
		cmp = SCMP_CMP(idx, SCMP_CMP_EQ, (scmp_datum_t)vals[i]);
		if (rule_add(ctx, SCMP_ACT_ALLOW, nr, 1, &cmp, e) != 0)
			return -1;
	}
	return 0;
}

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static int
sandbox_rules(scmp_filter_ctx ctx, struct hsmca_err *e)
{
	struct scmp_arg_cmp cmp[2];
	unsigned long self = (unsigned long)getpid();

	for (size_t i = 0; i < NELEM(front_syscalls); i++)
		if (rule_add(ctx, SCMP_ACT_ALLOW, front_syscalls[i], 0, NULL,
		    e) != 0)
			return -1;

	/* Sockets: AF_UNIX only (syslog, sd_notify, the signer link). No
	 * new TCP or UDP socket, so nothing to exfiltrate through but the
	 * connections a client opened. */
	cmp[0] = SCMP_CMP(0, SCMP_CMP_EQ, AF_UNIX);
	if (rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socket), 1, cmp, e) != 0 ||
	    rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(socketpair), 1, cmp, e) != 0)
		return -1;

#ifndef SANDBOX_SANITIZER
	/* Files: none. The store, its -wal and -shm are open already and
	 * a reload's files come from the parent, so code that takes over
	 * the front cannot open the store for writing or read the token's
	 * files (it runs as the signer's user). A failed open, not a trap:
	 * a library that looks for a file it can do without goes on. */
	if (rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(open), 0, NULL,
	    e) != 0 ||
	    rule_add(ctx, SCMP_ACT_ERRNO(EACCES), SCMP_SYS(openat), 0, NULL,
	    e) != 0)
		return -1;
#else
	/* ASan/LSan: the leak check at exit opens /proc/self/task and
	 * reads from /proc. Reading only, never truncating (creat() is
	 * not allowed either). */
	cmp[0] = SCMP_CMP(1, SCMP_CMP_MASKED_EQ, O_TRUNC, 0);
	cmp[1] = SCMP_CMP(2, SCMP_CMP_MASKED_EQ, O_TRUNC, 0);
	if (rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(open), 1, &cmp[0], e) != 0 ||
	    rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(openat), 1, &cmp[1],
	    e) != 0)
		return -1;
#endif

	/* No executable memory: no dlopen, no shellcode made runnable. */
	cmp[0] = SCMP_CMP(2, SCMP_CMP_MASKED_EQ, PROT_EXEC, 0);
	if (rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mmap), 1, cmp, e) != 0 ||
	    rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(mprotect), 1, cmp, e) != 0)
		return -1;

	/* Signals to this process only (raise, abort). */
	cmp[0] = SCMP_CMP(0, SCMP_CMP_EQ, self);
	if (rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(kill), 1, cmp, e) != 0 ||
	    rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(tgkill), 1, cmp, e) != 0)
		return -1;

	/* getrlimit through prlimit64 (sysconf): our own, read-only. */
	cmp[0] = SCMP_CMP(0, SCMP_CMP_EQ, 0);
	cmp[1] = SCMP_CMP(2, SCMP_CMP_EQ, 0);
	if (rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(prlimit64), 2, cmp, e) != 0)
		return -1;

	if (rule_add_values(ctx, SCMP_SYS(fcntl), 1, front_fcntl,
	    NELEM(front_fcntl), e) != 0 ||
	    rule_add_values(ctx, SCMP_SYS(ioctl), 1, front_ioctl,
	    NELEM(front_ioctl), e) != 0)
		return -1;

	/* SQLite running as root fchown()s the -wal and -shm files it
	 * opens to the database's owner and may fchmod a new one; it
	 * ignores failure. Refuse those quietly instead of trapping. */
	if (rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(fchown), 0, NULL,
	    e) != 0 ||
	    rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(fchmod), 0, NULL,
	    e) != 0)
		return -1;

#ifdef SANDBOX_SANITIZER
	/* The LSan tracer: a thread (CLONE_VM), never a process. */
	cmp[0] = SCMP_CMP(0, SCMP_CMP_MASKED_EQ, CLONE_VM | CLONE_UNTRACED,
	    CLONE_VM | CLONE_UNTRACED);
	if (rule_add(ctx, SCMP_ACT_ALLOW, SCMP_SYS(clone), 1, cmp, e) != 0 ||
	    rule_add_values(ctx, SCMP_SYS(ptrace), 0, sanitizer_ptrace,
	    NELEM(sanitizer_ptrace), e) != 0 ||
	    rule_add_values(ctx, SCMP_SYS(prctl), 0, sanitizer_prctl,
	    NELEM(sanitizer_prctl), e) != 0)
		return -1;
#endif
	return 0;
}

int
sandbox_front(struct hsmca_err *e)
{
	struct sigaction sa;
	scmp_filter_ctx ctx = NULL;
	int rc, ret = HSMCA_ERR_INTERNAL;

	sandbox_load_names();
	sandbox_open_log();

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sandbox_sigsys;
	sa.sa_flags = SA_SIGINFO;
	sigfillset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) == -1) {
		ret = err_set(e, HSMCA_ERR_INTERNAL, "sandbox: SIGSYS handler: "
		    "%s", strerror(errno));
		goto out;
	}
	/* Required for an unprivileged filter; and no setuid binary could
	 * give the front its privileges back. */
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1) {
		ret = err_set(e, HSMCA_ERR_INTERNAL, "sandbox: no_new_privs: %s",
		    strerror(errno));
		goto out;
	}

	if ((ctx = seccomp_init(SCMP_ACT_TRAP)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "sandbox: seccomp_init failed");
		goto out;
	}
	/* A 32-bit or x32 system call would bypass the rules: kill. */
	if ((rc = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH,
	    SCMP_ACT_KILL_PROCESS)) != 0 ||
	    (rc = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1)) != 0) {
		ret = err_set(e, HSMCA_ERR_INTERNAL, "sandbox: filter "
		    "attributes: %s", strerror(-rc));
		goto out;
	}
	if (sandbox_rules(ctx, e) != 0)
		goto out;
	if ((rc = seccomp_load(ctx)) != 0) {
		ret = err_set(e, HSMCA_ERR_INTERNAL, "sandbox: cannot load the "
		    "seccomp filter: %s", strerror(-rc));
		goto out;
	}
	ret = 0;
out:
	seccomp_release(ctx);
	return ret;
}
