/* sandbox.h: the seccomp filter hsmcad's front process enters before its
 * event loop. */
#ifndef HSMCAD_SANDBOX_H
#define HSMCAD_SANDBOX_H

struct hsmca_err;

/* The status a sandboxed process exits with when it made a system call
 * the filter does not allow (128 + SIGSYS): the call is never executed. */
#define SANDBOX_EXIT_VIOLATION	159

/* Restrict the calling process, for good, to what the front needs to
 * serve: its event loop on inherited sockets, TLS, reading the store and
 * its config files, AF_UNIX sockets (syslog, the signer link), memory,
 * time and signals. Sets no_new_privs first. Call it once everything is
 * set up (listeners bound, store open read-only, TLS context built,
 * privileges dropped) and just before the loop; single-threaded. Any
 * other call then writes one line naming it to stderr (and to /dev/log
 * if it was reachable) and exits with SANDBOX_EXIT_VIOLATION. */
int	sandbox_front(struct hsmca_err *e);

/* The signer is not sandboxed: it loads a vendor PKCS#11 module whose
 * system calls (threads, devices, sockets to a network HSM, its own
 * files, dlopen of further libraries) nobody can list in advance. */

#endif
