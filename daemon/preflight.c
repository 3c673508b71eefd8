/* preflight.c: what hsmcad's start-up needs of the system, checked
 * before it starts anything: the TLS certificate and key, the trust
 * files, the user, the PKCS#11 module and the PIN source, the folders
 * of the store and the pidfile, the listeners' addresses, the descriptor
 * limit against their caps. The start-up runs these checks
 * before it detaches (its caller sees every problem, not the first a
 * child process dies of), and hsmcad -t runs the same ones, so -t does
 * not pass what the start-up refuses. Nothing here logs in to the
 * token, binds a port or opens the store. */
#include "config.h"

#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <netdb.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#include "hsmca/config.h"
#include "hsmca/hsm.h"

#include "hsmcad.h"
#include "preflight.h"

struct preflight {
	void	(*report)(const char *, void *);
	void	(*warn)(const char *, void *);
	void	*arg;
	int	 n;
};

static void __attribute__((format(printf, 2, 3)))
problem(struct preflight *pf, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	pf->report(msg, pf->arg);
	pf->n++;
}

/* What the start-up logs as a warning and survives. */
static void
warning(struct preflight *pf, const char *msg)
{
	if (pf->warn != NULL)
		pf->warn(msg, pf->arg);
}

int
preflight_user(const char *user, struct passwd **pw, char *why, size_t wlen)
{
	struct passwd *p;

	*pw = NULL;
	if ((p = getpwnam(user)) == NULL) {
		snprintf(why, wlen, "user %s does not exist", user);
		return -1;
	}
	/* Dropping "root" to root would keep every right: the start-up
	 * would find it could regain root. */
	if (p->pw_uid == 0) {
		snprintf(why, wlen, "user %s is root: leave user out to run "
		    "as the user hsmcad is started as", user);
		return -1;
	}
	if (geteuid() != 0 && geteuid() != p->pw_uid) {
		snprintf(why, wlen, "running as uid %u, cannot become %s",
		    (unsigned int)geteuid(), user);
		return -1;
	}
	*pw = p;
	return 0;
}

/* Can pw (NULL: this process as it is) access path with mode? The
 * kernel decides (modes, ACLs, read-only mounts), with pw's ids as the
 * daemon will have them after it drops root (its own group only), for
 * a moment: this process is single-threaded here and root. */
static int
access_as(const char *path, int mode, const struct passwd *pw)
{
	gid_t *groups, egid = getegid();
	int n, ret, saved, dumpable;

	if (pw == NULL || geteuid() != 0)
		return faccessat(AT_FDCWD, path, mode, AT_EACCESS);
	/* A change of ids resets it: the start-up set it to 0. */
	if ((dumpable = prctl(PR_GET_DUMPABLE, 0, 0, 0, 0)) == -1)
		err(1, "PR_GET_DUMPABLE");
	if ((n = getgroups(0, NULL)) == -1 ||
	    (groups = calloc((size_t)n + 1, sizeof(*groups))) == NULL ||
	    (n = getgroups(n, groups)) == -1)
		err(1, "getgroups");
	if (setgroups(1, &pw->pw_gid) == -1 || setegid(pw->pw_gid) == -1 ||
	    seteuid(pw->pw_uid) == -1)
		err(1, "cannot take the ids of %s", pw->pw_name);
	ret = faccessat(AT_FDCWD, path, mode, AT_EACCESS);
	saved = errno;
	if (seteuid(0) == -1 || setegid(egid) == -1 ||
	    setgroups((size_t)n, groups) == -1)
		err(1, "cannot take root's ids back");
	if (prctl(PR_SET_DUMPABLE, dumpable, 0, 0, 0) == -1)
		err(1, "PR_SET_DUMPABLE");
	free(groups);
	errno = saved;
	return ret;
}

/* A file the daemon writes as pw (what: its config key): its folder
 * exists and pw may create files there (SQLite's -wal and -shm) and
 * remove them (the pidfile at exit); the file itself, if it exists, pw may
 * read and write (existing set). */
static void
check_folder(struct preflight *pf, const char *what, const char *path,
    const struct passwd *pw, int existing)
{
	const char *who = pw != NULL ? pw->pw_name : "hsmcad";
	char dir[PATH_MAX], *slash;
	struct stat sb;

	if ((size_t)snprintf(dir, sizeof(dir), "%s", path) >= sizeof(dir)) {
		problem(pf, "%s %s: the path is too long", what, path);
		return;
	}
	if ((slash = strrchr(dir, '/')) == NULL)
		snprintf(dir, sizeof(dir), ".");
	else if (slash == dir)
		dir[1] = '\0';
	else
		*slash = '\0';
	if (stat(dir, &sb) == -1)
		problem(pf, "%s %s: folder %s: %s", what, path, dir,
		    strerror(errno));
	else if (!S_ISDIR(sb.st_mode))
		problem(pf, "%s %s: %s is not a folder", what, path, dir);
	else if (access_as(dir, W_OK | X_OK, pw) == -1)
		problem(pf, "%s %s: %s cannot create files in %s: %s", what,
		    path, who, dir, strerror(errno));
	else if (existing && access(path, F_OK) == 0 &&
	    access_as(path, R_OK | W_OK, pw) == -1)
		problem(pf, "%s %s: %s cannot write it: %s", what, path, who,
		    strerror(errno));
}

static void
check_tls(struct preflight *pf, const struct config_daemon *dc)
{
	SSL_CTX *ctx;

	if (dc->tls_cert == NULL || dc->tls_key == NULL) {
		problem(pf, "[daemon] tls-cert and tls-key are required");
		return;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    !SSL_CTX_use_certificate_chain_file(ctx, dc->tls_cert))
		problem(pf, "tls-cert %s is unreadable", dc->tls_cert);
	/* A key in the token is the signer's to find. */
	else if (strncmp(dc->tls_key, "pkcs11:", 7) != 0 &&
	    (!SSL_CTX_use_PrivateKey_file(ctx, dc->tls_key,
	    SSL_FILETYPE_PEM) || !SSL_CTX_check_private_key(ctx)))
		problem(pf, "tls-key %s is unreadable or does not match "
		    "tls-cert", dc->tls_key);
	SSL_CTX_free(ctx);
	ERR_clear_error();
}

/* A trust file (what: its key, label: its EST label or NULL) loads. */
static void
check_trust(struct preflight *pf, const char *what, const char *path,
    const char *label)
{
	X509_STORE *xs;

	if (path == NULL)
		return;
	if ((xs = X509_STORE_new()) == NULL ||
	    X509_STORE_load_file(xs, path) != 1) {
		if (label != NULL)
			problem(pf, "%s %s of EST label '%s' is unreadable",
			    what, path, label);
		else
			problem(pf, "%s %s is unreadable", what, path);
	}
	X509_STORE_free(xs);
	ERR_clear_error();
}

/* The listeners, resolved as the start-up binds them. */
struct preflight_listener {
	const char		*key;
	const char		*addr;
	struct sockaddr_storage	 ss;
	int			 ok;
};

static void
listener_resolve(struct preflight *pf, struct preflight_listener *l)
{
	struct addrinfo *res = NULL;
	char why[300];

	if (daemon_resolve(l->addr, &res, why, sizeof(why)) != 0) {
		problem(pf, "%s: %s", l->key, why);
		return;
	}
	if (res->ai_addrlen <= sizeof(l->ss)) {
		memcpy(&l->ss, res->ai_addr, res->ai_addrlen);
		l->ok = 1;
	}
	freeaddrinfo(res);
}

static in_port_t
sa_port(const struct sockaddr_storage *ss)
{
	return ss->ss_family == AF_INET ?
	    ((const struct sockaddr_in *)ss)->sin_port :
	    ((const struct sockaddr_in6 *)ss)->sin6_port;
}

static int
sa_wildcard(const struct sockaddr_storage *ss)
{
	if (ss->ss_family == AF_INET)
		return ((const struct sockaddr_in *)ss)->sin_addr.s_addr ==
		    htonl(INADDR_ANY);
	return IN6_IS_ADDR_UNSPECIFIED(
	    &((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* Would binding b fail because a is bound? The same port (not 0, which
 * the kernel chooses), and the same address, or a wildcard that takes
 * b's (an IPv6 one takes IPv4 too: the sockets are not IPV6_V6ONLY). */
static int
sa_conflict(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
	if (sa_port(a) == 0 || sa_port(a) != sa_port(b))
		return 0;
	if (a->ss_family == b->ss_family) {
		if (sa_wildcard(a) || sa_wildcard(b))
			return 1;
		if (a->ss_family == AF_INET)
			return ((const struct sockaddr_in *)a)->sin_addr.s_addr
			    == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
		return IN6_ARE_ADDR_EQUAL(
		    &((const struct sockaddr_in6 *)a)->sin6_addr,
		    &((const struct sockaddr_in6 *)b)->sin6_addr);
	}
	return (a->ss_family == AF_INET6 && sa_wildcard(a)) ||
	    (b->ss_family == AF_INET6 && sa_wildcard(b));
}

static void
check_listeners(struct preflight *pf, const struct config *cfg)
{
	/* In the order the parent binds them, by their keys. */
	static const struct {
		enum listener_kind	 kind;
		const char		*key;
	} keys[] = {
		{ LISTENER_EST, "listen" },
		{ LISTENER_HTTP, "http-listen" },
		{ LISTENER_ADMIN, "[admin] listen" },
	};
	struct preflight_listener ls[LISTENER_MAX];
	size_t n = 0;

	memset(ls, 0, sizeof(ls));
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if ((ls[n].addr = daemon_listen_addr(cfg,
		    keys[i].kind)) != NULL)
			ls[n++].key = keys[i].key;
	for (size_t i = 0; i < n; i++)
		listener_resolve(pf, &ls[i]);
	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (ls[i].ok && ls[j].ok &&
			    sa_conflict(&ls[i].ss, &ls[j].ss))
				problem(pf, "%s %s and %s %s cannot both "
				    "listen: the same address and port",
				    ls[i].key, ls[i].addr, ls[j].key,
				    ls[j].addr);
}

/* The descriptor limit against the caps, as the front finds it when it
 * starts (listener.c): it inherits this process's limit. */
static void
check_nofile(struct preflight *pf, const struct config *cfg)
{
	struct listener_nofile p;
	struct rlimit rl;
	struct hsmca_err e;

	err_clear(&e);
	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		problem(pf, "RLIMIT_NOFILE: %s", strerror(errno));
	else if (listener_nofile_plan(cfg, &rl, 1, &p, &e) != 0)
		problem(pf, "%s", e.msg);
	else if (p.warning[0] != '\0')
		warning(pf, p.warning);
}

int
preflight_check(const struct config *cfg,
    void (*report)(const char *msg, void *arg),
    void (*warn)(const char *msg, void *arg), void *arg)
{
	struct preflight pf = { report, warn, arg, 0 };
	struct passwd *pw = NULL;
	struct hsmca_err e;
	char why[256];

	check_tls(&pf, &cfg->daemon);
	for (size_t i = 0; i < cfg->nest; i++)
		check_trust(&pf, "bootstrap-ca", cfg->est[i].bootstrap_ca,
		    cfg->est[i].label);
	check_trust(&pf, "[admin] client-ca", cfg->admin.client_ca, NULL);
	if (cfg->daemon.user != NULL &&
	    preflight_user(cfg->daemon.user, &pw, why, sizeof(why)) != 0)
		problem(&pf, "%s", why);
	/* Loaded and read by the signer as the user hsmcad is started as,
	 * before it drops root; the PIN file is opened, the PIN not read. */
	err_clear(&e);
	if (hsm_check_module(&cfg->hsm, &e) != 0)
		problem(&pf, "%s", e.msg);
	err_clear(&e);
	if (hsm_check_pin_source(cfg->hsm.pin_source, &e) != 0)
		problem(&pf, "%s", e.msg);
	/* The parent creates or migrates the store as it was started;
	 * the signer's workers write it as user. */
	if (cfg->store.path == NULL)
		problem(&pf, "[store] path is required");
	else
		check_folder(&pf, "[store] path", cfg->store.path, pw, 1);
	/* Removed at exit by the parent, after root was dropped
	 * (pidfile.c). */
	if (cfg->daemon.pidfile != NULL)
		check_folder(&pf, "pidfile", cfg->daemon.pidfile, pw, 0);
	check_listeners(&pf, cfg);
	check_nofile(&pf, cfg);
	return pf.n;
}
