/* sandbox.h: the seccomp filter hsmcad's front process enters before its
 * event loop. */
#ifndef HSMCAD_SANDBOX_H
#define HSMCAD_SANDBOX_H

struct hsmca_err;

/* The sanitizer runtimes make system calls of their own: under ASan or
 * LSan the filter allows them, and opening files for reading. */
#if defined(__SANITIZE_ADDRESS__)
#define SANDBOX_SANITIZER	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(leak_sanitizer)
#define SANDBOX_SANITIZER	1
#endif
#endif

/* The status a sandboxed process exits with when it made a system call
 * the filter does not allow (128 + SIGSYS): the call is never executed. */
#define SANDBOX_EXIT_VIOLATION	159

/* Restrict the calling process, for good, to what the front needs to
 * serve: its event loop on inherited sockets, TLS, reading the store it
 * has open, AF_UNIX sockets (syslog, the signer link), memory, time and
 * signals. open() and openat() fail with EACCES. Sets no_new_privs
 * first. Call it once everything is set up (listeners bound, store open
 * read-only and read once, so its -wal and -shm are open too, TLS
 * context built, privileges dropped) and just before the loop;
 * single-threaded. Any other call then writes one line naming it to
 * stderr (and to /dev/log if it was reachable) and exits with
 * SANDBOX_EXIT_VIOLATION. */
int	sandbox_front(struct hsmca_err *e);

/* The signer is not sandboxed: it loads a vendor PKCS#11 module whose
 * system calls (threads, devices, sockets to a network HSM, its own
 * files, dlopen of further libraries) nobody can list in advance. */

#endif
