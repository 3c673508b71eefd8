/* hsmcad.c: the daemon's parent and its front process.
 *
 * The parent reads the config, binds the ports, creates the socketpairs
 * and starts two processes: the signer (signerd.c: the PKCS#11 module,
 * the PIN, the sessions, the store's writes) and the front (here: TLS,
 * HTTP, EST, the admin API, CRL and OCSP serving, on a libevent loop,
 * unprivileged, with no PKCS#11 handle and a read-only store). Then it
 * drops root too and only relays signals (SIGTERM drains, SIGHUP
 * reloads) and readiness to systemd; when either child ends, the daemon
 * ends with it: nothing is restarted silently. */
#include "config.h"

#include <arpa/inet.h>
#include <err.h>
#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <grp.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pwd.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "hsmca/clock.h"
#include "hsmca/fileset.h"
#include "hsmca/util.h"

#include "hsmcad.h"
#include "ipc.h"
#include "log.h"
#include "pidfile.h"
#include "preflight.h"
#include "sandbox.h"

#define DRAIN_TICK_MS	50

static void
usage(void)
{
	fprintf(stderr, "usage: hsmcad [-dtv] [-c CONFIG]\n"
	    "  -c CONFIG  configuration (default: $HSMCA_CONFIG, then %s/hsmca/"
	    "hsmca.conf,\n             then the demo defaults)\n"
	    "  -d         detach (default: foreground, for systemd)\n"
	    "  -t         check the configuration and exit\n"
	    "  -v         verbose logging\n", SYSCONFDIR);
	exit(2);
}

static const char *
config_path(const char *arg)
{
	static char dflt[512];
	const char *p = arg;

	if (p == NULL && (p = getenv("HSMCA_CONFIG")) != NULL && *p == '\0') {
		fprintf(stderr, "hsmcad: HSMCA_CONFIG is set but empty\n");
		exit(2);
	}
	if (p == NULL) {
		snprintf(dflt, sizeof(dflt), "%s/hsmca/hsmca.conf", SYSCONFDIR);
		if (access(dflt, F_OK) == 0)
			p = dflt;
	}
	return p;
}

/* "HOST:PORT" or "[V6]:PORT" */
static int
split_hostport(const char *s, char *host, size_t hlen, unsigned short *port)
{
	const char *colon;
	long v;
	char *end;

	if (*s == '[') {
		const char *rb = strchr(s, ']');

		if (rb == NULL || rb[1] != ':')
			return -1;
		snprintf(host, hlen, "%.*s", (int)(rb - s - 1), s + 1);
		colon = rb + 1;
	} else {
		if ((colon = strrchr(s, ':')) == NULL)
			return -1;
		snprintf(host, hlen, "%.*s", (int)(colon - s), s);
	}
	v = strtol(colon + 1, &end, 10);
	if (*end != '\0' || v < 0 || v > 65535)
		return -1;
	*port = (unsigned short)v;
	return 0;
}

int
daemon_resolve(const char *addr, struct addrinfo **res, char *why,
    size_t wlen)
{
	struct addrinfo hints;
	char host[256], port[8];
	unsigned short p;
	int rc;

	*res = NULL;
	if (split_hostport(addr, host, sizeof(host), &p) != 0) {
		snprintf(why, wlen, "bad address %s", addr);
		return -1;
	}
	snprintf(port, sizeof(port), "%u", p);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	if ((rc = getaddrinfo(*host != '\0' ? host : NULL, port, &hints,
	    res)) != 0) {
		snprintf(why, wlen, "%s: %s", addr, gai_strerror(rc));
		*res = NULL;
		return -1;
	}
	return 0;
}

const char *
daemon_listen_addr(const struct config *cfg, enum listener_kind kind)
{
	switch (kind) {
	case LISTENER_ADMIN:
		return cfg->admin.listen;
	case LISTENER_HTTP:
		/* "" is none, as the config's "none" is. */
		return cfg->daemon.http_listen != NULL &&
		    *cfg->daemon.http_listen != '\0' ?
		    cfg->daemon.http_listen : NULL;
	default:
		return cfg->daemon.listen;
	}
}

/* The parent: a listening TCP socket on addr, for the front to accept
 * on. Says which port (with port 0 the kernel chose one). */
static int
listen_socket(const char *what, const char *addr)
{
	struct addrinfo *res = NULL;
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	char why[300], shown[300], ip[INET6_ADDRSTRLEN] = "?";
	int fd, one = 1;

	if (daemon_resolve(addr, &res, why, sizeof(why)) != 0)
		fatalx("%s: %s", what, why);
	if ((fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, res->ai_protocol)) == -1)
		fatal("%s: socket", what);
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	/* Answers are small and come one at a time per connection: Nagle's
	 * algorithm would hold each one back for the client's delayed ACK
	 * (40 ms on Linux). Accepted sockets inherit the option. */
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) == -1)
		log_warn("%s: TCP_NODELAY", what);
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1 ||
	    listen(fd, SOMAXCONN) == -1)
		fatal("%s: cannot listen on %s", what, addr);
	freeaddrinfo(res);
	if (getsockname(fd, (struct sockaddr *)&ss, &slen) == 0) {
		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
			snprintf(shown, sizeof(shown), "%s:%u", ip,
			    ntohs(in->sin_port));
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
			snprintf(shown, sizeof(shown), "[%s]:%u", ip,
			    ntohs(in6->sin6_port));
		}
		log_info("%s listening on %s", what, shown);
	}
	return fd;
}

void
daemon_drop_privileges(const char *user)
{
	struct passwd *pw;
	char why[256];

	if (user == NULL)
		return;
	if (preflight_user(user, &pw, why, sizeof(why)) != 0)
		fatalx("%s", why);
	if (geteuid() == 0) {
		if (setgroups(1, &pw->pw_gid) == -1 ||
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
			fatal("cannot drop privileges to %s", user);
		if (setuid(0) != -1)
			fatalx("could regain root after dropping it");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("PR_SET_NO_NEW_PRIVS");
	log_info("running as %s", user);
}

/* A store hsmcad just created, and its WAL files, to user (when root). */
static void
give_store(const char *path, const char *user)
{
	static const char *const sfx[] = { "", "-wal", "-shm" };
	struct passwd *pw;
	char f[PATH_MAX];

	if (user == NULL || geteuid() != 0)
		return;
	if ((pw = getpwnam(user)) == NULL)
		fatalx("user %s does not exist", user);
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]); i++) {
		snprintf(f, sizeof(f), "%s%s", path, sfx[i]);
		if (chown(f, pw->pw_uid, pw->pw_gid) == -1 && errno != ENOENT)
			fatal("%s: cannot give it to %s", f, user);
	}
}

/* The daemon's pid into the pidfile locked before (pidfile.c), owned
 * by user as it was when the parent wrote it after the drop: the parent
 * removes it at exit as user, which a sticky folder allows the owner
 * only. */
static void
daemon_write_pidfile(const char *user)
{
	struct passwd *pw;
	char why[PATH_MAX + 128];
	uid_t uid = (uid_t)-1;
	gid_t gid = (gid_t)-1;

	if (user != NULL && geteuid() == 0) {
		if ((pw = getpwnam(user)) == NULL)
			fatalx("user %s does not exist", user);
		uid = pw->pw_uid;
		gid = pw->pw_gid;
	}
	if (pidfile_write(uid, gid, why, sizeof(why)) != 0)
		fatalx("pidfile %s", why);
}

/* How long -d waits for the start-up, in [daemon] timeouts, counted
 * once the store is open and the ports bound: the signer's login to the
 * token, its keys, the front's start. A healthy one takes well under a
 * second; the drain and the signer's stop are bounded by one timeout
 * each. */
#define DETACH_WAIT_TIMEOUTS	6

/* Milliseconds until deadline (0 when it passed), -1 with none set. */
static int
detach_ms_left(const struct timespec *deadline)
{
	struct timespec now;
	long long ms;

	if (deadline->tv_sec == 0)
		return -1;
	clock_gettime(CLOCK_MONOTONIC, &now);
	ms = (long long)(deadline->tv_sec - now.tv_sec) * 1000 +
	    (deadline->tv_nsec - now.tv_nsec) / 1000000;
	return ms <= 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
}

/* Until the daemon's processes are gone (they hold the pipe fd until
 * then), at most until deadline (none set: however long it takes): then
 * they are killed, all of them (the daemon's process group, from
 * setsid): one waiting inside the token takes no other signal, and none
 * is taken before its handlers are set. 1 if they were killed; its
 * pidfile goes with them. */
static int
detach_wait_gone(pid_t pid, int fd, const struct timespec *deadline,
    const char *pidfile)
{
	struct pollfd pfd = { fd, POLLIN, 0 };
	char sink[1024];
	long long written;
	FILE *fp;
	int killed = 0, n;

	for (;;) {
		/* Killed, a process stuck in the kernel still holds it:
		 * not for long. */
		n = poll(&pfd, 1, killed ? 5000 : detach_ms_left(deadline));
		if (n == -1 && errno == EINTR)
			continue;
		if (n == 0 && !killed) {
			(void)kill(-pid, SIGKILL);
			killed = 1;
			continue;
		}
		if (n <= 0 || (n = (int)read(fd, sink, sizeof(sink))) == 0 ||
		    (n == -1 && errno != EINTR))
			break;
	}
	if (killed && pidfile != NULL && (fp = fopen(pidfile, "r")) != NULL) {
		if (fscanf(fp, "%lld", &written) == 1 && written == (long long)pid)
			(void)unlink(pidfile);
		fclose(fp);
	}
	return killed;
}

/* -d: the daemon goes on in a child, in a session of its own; the
 * process started waits until it is ready (the pidfile written, the
 * listeners bound, the signer logged in, the front serving) and exits
 * 0, or, once the daemon is gone, exits 1 with the first fatal error of
 * the start-up, whichever process it was in: `hsmcad -d && cat pidfile`
 * works, and a failed start-up is not a success. A start-up that does
 * not finish within DETACH_WAIT_TIMEOUTS timeouts of telling what it
 * waits for (log_startup_wait) is stopped. Returns in the daemon, with
 * the pipe's end that tells (log_startup). */
static int
daemon_detach(const struct config *cfg)
{
	char buf[1024], what[1024] = "", *nl;
	size_t len = 0;
	ssize_t n;
	pid_t pid;
	int p[2], fd, status;
	long long secs = (long long)cfg->daemon.timeout * DETACH_WAIT_TIMEOUTS;
	struct timespec deadline = { 0, 0 };
	struct pollfd pfd;

	if (pipe2(p, O_CLOEXEC) == -1)
		err(1, "pipe");
	if ((pid = fork()) == -1)
		err(1, "fork");
	if (pid == 0) {
		close(p[0]);
		if (setsid() == -1)
			err(1, "setsid");
		if (chdir("/") == -1)
			err(1, "chdir /");
		if ((fd = open("/dev/null", O_RDWR)) == -1 ||
		    dup2(fd, STDIN_FILENO) == -1 ||
		    dup2(fd, STDOUT_FILENO) == -1 ||
		    dup2(fd, STDERR_FILENO) == -1)
			err(1, "/dev/null");
		if (fd > STDERR_FILENO)
			close(fd);
		return p[1];
	}
	close(p[1]);
	/* The daemon holds the pidfile's lock from here: this process,
	 * gone or waiting, must not keep it. */
	pidfile_forget();
	/* ^C ends the wait, not the daemon. */
	(void)sigprocmask(SIG_SETMASK, &hsmcad_startup_mask, NULL);
	pfd.fd = p[0];
	pfd.events = POLLIN;
	/* Lines: "W" and what it waits for now, then "R", or "E" and why. */
	for (;;) {
		while ((nl = memchr(buf, '\n', len)) != NULL) {
			*nl = '\0';
			if (buf[0] == 'R')
				exit(0);
			if (buf[0] == 'E')
				goto failed;
			if (buf[0] == 'W') {
				snprintf(what, sizeof(what), "%s", buf + 1);
				if (deadline.tv_sec == 0) {
					clock_gettime(CLOCK_MONOTONIC, &deadline);
					deadline.tv_sec += (time_t)secs;
				}
			}
			len -= (size_t)(nl + 1 - buf);
			memmove(buf, nl + 1, len);
		}
		if (len == sizeof(buf) - 1)
			len = 0;	/* no line of ours */
		if ((n = poll(&pfd, 1, detach_ms_left(&deadline))) == -1 &&
		    errno == EINTR)
			continue;
		if (n == -1)
			err(1, "poll");
		if (n == 0) {
			(void)detach_wait_gone(pid, p[0], &deadline,
			    cfg->daemon.pidfile);
			(void)waitpid(pid, NULL, 0);
			errx(1, "the start-up did not finish within %llds (%d "
			    "times [daemon] timeout): it was waiting for %s; the "
			    "daemon was stopped", secs, DETACH_WAIT_TIMEOUTS,
			    what);
		}
		if ((n = read(p[0], buf + len, sizeof(buf) - 1 - len)) == -1 &&
		    errno == EINTR)
			continue;
		if (n <= 0) {
			len = 0;	/* gone without a word */
			break;
		}
		len += (size_t)n;
	}
failed:
	buf[len] = '\0';
	/* A failure: the daemon stops. Its processes hold the pipe until
	 * they are gone, the pidfile with them: then it is said. */
	(void)detach_wait_gone(pid, p[0], &deadline, cfg->daemon.pidfile);
	if (waitpid(pid, &status, 0) == -1)
		status = 0;
	if (buf[0] == 'E')
		errx(1, "%s", buf + 1);
	if (WIFSIGNALED(status))
		errx(1, "the daemon was killed by signal %d during its "
		    "start-up", WTERMSIG(status));
	errx(1, "the daemon ended during its start-up; see its log");
}

/* ---- systemd readiness (Type=notify), without libsystemd ---- */

/* Send a state string to the socket systemd names in NOTIFY_SOCKET (a
 * path, or "@name" in the abstract namespace). Nothing happens when it is
 * not set; failures are logged, never fatal. */
static void
sd_notify_state(const char *state)
{
	const char *path = getenv("NOTIFY_SOCKET");
	struct sockaddr_un sun;
	socklen_t len;
	int fd;

	if (path == NULL || *path == '\0')
		return;
	if ((path[0] != '/' && path[0] != '@') ||
	    strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("NOTIFY_SOCKET %s: not a socket path", path);
		return;
	}
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	memcpy(sun.sun_path, path, strlen(path));
	if (path[0] == '@')
		sun.sun_path[0] = '\0';
	len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(path));
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1) {
		log_warn("sd_notify: socket");
		return;
	}
	if (sendto(fd, state, strlen(state), MSG_NOSIGNAL,
	    (struct sockaddr *)&sun, len) == -1)
		log_warn("sd_notify: %s", path);
	close(fd);
}

/* ---- the front: signals ---- */

/* The front tells the parent, which tells systemd (Type=notify only
 * listens to the main process). */
static int status_fd = -1;
/* The signal mask hsmcad started with: each process restores it once
 * its handlers are in place (until then, signals wait). */
sigset_t hsmcad_startup_mask;

static void
front_status(char c)
{
	if (status_fd != -1 && write(status_fd, &c, 1) != 1)
		log_warn("status to the parent");
}

static void
drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct hsmcad *d = arg;
	static int ticks;

	ticks++;
	if ((d->inflight == 0 && link_pending(d->link) == 0) ||
	    ticks * DRAIN_TICK_MS > d->rt->cfg->daemon.timeout * 1000) {
		/* A job answered 503 at its deadline is no longer a
		 * request, but the signer may still be inside the token
		 * with it (it has timeout more, signerd.c). */
		if (d->inflight != 0 || link_pending(d->link) != 0)
			log_warnx("drain: %d requests and %d signer jobs still "
			    "open after %llds", d->inflight,
			    link_pending(d->link),
			    (long long)d->rt->cfg->daemon.timeout);
		event_base_loopexit(d->base, NULL);
	}
}

/* The request bodies of the admin API: a command line and the files it
 * reads (a list of serials to revoke, a CSR). */
#define ADMIN_BODY_MAX	(48 * 1024 * 1024)

static void
on_sigterm(evutil_socket_t sig, short what, void *arg)
{
	struct hsmcad *d = arg;
	struct timeval tv = { 0, DRAIN_TICK_MS * 1000 };

	if (d->draining)
		return;
	d->draining = 1;
	front_status('S');
	log_info("%s: draining %d in-flight requests", sig == SIGTERM ?
	    "SIGTERM" : "SIGINT", d->inflight);
	checkpoint_now(d);	/* the last records, signed before exit */
	listener_stop_all();
	if ((d->drain_ev = event_new(d->base, -1, EV_PERSIST, drain_tick,
	    d)) == NULL)
		event_base_loopexit(d->base, NULL);
	else
		event_add(d->drain_ev, &tv);
}

/* ---- the front: reloads ---- */

/* A SIGHUP goes to the parent, which reads the configuration and the
 * files it names and sends them here (the front opens no file once it
 * serves); the front passes the same bytes to the signer, so both load
 * one snapshot. */
static void
front_reload(struct hsmcad *d, struct fileset *fs)
{
	struct config *cfg = NULL;
	struct runtime *rt;
	struct hsmca_err e;

	front_status('L');
	if (config_load_fileset(fs, d->config_path, &cfg, &e) != 0) {
		fileset_free(fs);
		log_warnx("reload refused, keeping the running config: %s", e.msg);
		front_status('R');
		return;
	}
	if ((rt = runtime_build(cfg, fs, d->st, &e)) == NULL) {
		log_warnx("reload refused, keeping the running config: %s", e.msg);
		front_status('R');
		return;
	}
	runtime_unref(d->rt);
	d->rt = rt;
	/* Jobs the signer takes after this one see it. */
	link_set_issuer(d->link, rt->fs);
	log_info("reloaded: %zu profiles, %zu EST labels", rt->cfg->nprofiles,
	    rt->cfg->nest);
	front_status('R');
}

static void
front_ctl_msg(struct ipc *c, uint32_t type, uint64_t id, struct ipc_rd *r,
    void *arg)
{
	struct fileset *fs;

	if (type != IPC_CONFIG)
		fatalx("the parent sent an unexpected message (type %u)", type);
	if ((fs = ipcr_fileset(r)) == NULL && !r->bad) {
		log_warnx("reload refused, keeping the running config: out of "
		    "memory");
		return;
	}
	if (ipcr_end(r) != 0)
		fatalx("the parent sent a reload that does not parse");
	front_reload(arg, fs);
}

static void
front_ctl_end(struct ipc *c, const char *why, void *arg)
{
	/* The parent is gone (its death signal drains this process) or
	 * gave up on a reload it could not send. */
	log_warnx("the parent's channel ended (%s): no more reloads", why);
}

static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	log_warnx("SIGHUP to the front process is ignored: send it to "
	    "hsmcad's main process (pid %ld)", (long)getppid());
}

/* A problem preflight_check found, for -t and for the start-up (which
 * logs to standard error until it detaches). */
static void
check_problem(const char *msg, void *arg)
{
	warnx("%s", msg);
}

static void
startup_problem(const char *msg, void *arg)
{
	log_warnx("%s", msg);
}

/* What the start-up would warn of (-t only: the start-up's own
 * processes log it when they meet it). */
static void
check_warning(const char *msg, void *arg)
{
	warnx("warning: %s", msg);
}

/* -t: what the start-up checks before it starts (preflight.c), without
 * the token, the ports or the store: every problem, one line each. */
static int
check_config(const char *path)
{
	struct config *cfg = NULL;
	struct hsmca_err e;
	int n;

	if (config_load(path, &cfg, &e) != 0) {
		fprintf(stderr, "hsmcad: %s\n", e.msg);
		return 1;
	}
	n = preflight_check(cfg, check_problem, check_warning, NULL);
	config_free(cfg);
	if (n != 0)
		return 1;
	printf("configuration OK\n");
	return 0;
}

/* The listening sockets the parent made for the front. */
struct listeners {
	int	https, http, admin;
};

/* In the processes that do not accept on them. */
static void
listeners_close(struct listeners *ls)
{
	close(ls->https);
	if (ls->http != -1)
		close(ls->http);
	if (ls->admin != -1)
		close(ls->admin);
}

static struct evhttp *
front_http(struct hsmcad *d, size_t max_body, void (*cb)(struct
    evhttp_request *, void *))
{
	const struct config_daemon *dc = &d->rt->cfg->daemon;
	struct evhttp *http;

	if ((http = evhttp_new(d->base)) == NULL)
		fatalx("libevent setup failed");
	evhttp_set_timeout(http, (int)dc->timeout);
	evhttp_set_max_body_size(http, (ev_ssize_t)max_body);
	evhttp_set_max_headers_size(http, (ev_ssize_t)dc->max_header_size);
	/* Every method reaches the handlers, those libevent does not know
	 * too (a type of its own outside enum evhttp_cmd_type): they refuse
	 * what they do not serve with a 405 and an Allow, or a 501, and a
	 * reason (evhttp's own refusal is a 501 page of HTML), and answer a
	 * HEAD where they serve a GET. */
	evhttp_set_allowed_methods(http, UINT16_MAX);
	evhttp_set_gencb(http, cb, d);
	return http;
}

/* The front process: never returns. */
static void __attribute__((noreturn))
front_main(struct hsmcad *d, struct config *cfg, struct fileset *fs,
    struct listeners *ls, int fd, int keyfd, int ctlfd, pid_t parent)
{
	struct event *ev_term, *ev_int, *ev_hup;
	struct hsmca_err e;
	unsigned char hello[512];
	char why[128], token[256];
	struct ipc_rd r;
	size_t len;
	uint32_t workers;

	(void)prctl(PR_SET_NAME, "hsmcad-front", 0, 0, 0);

	/* The signer has logged in and opened (migrated) the store. */
	if (ipc_recv_one(fd, IPC_HELLO, hello, sizeof(hello), &len, why,
	    sizeof(why)) != 0)
		fatalx("the signer did not start: %s", why);
	ipcr_init(&r, hello, len);
	workers = ipcr_u32(&r);
	ipcr_str(&r, token, sizeof(token));
	if (ipcr_end(&r) != 0)
		fatalx("the signer's hello does not parse");
	log_startup_wait("the front to start serving");

	if (store_open_readonly(cfg->store.path, &d->st, &e) != 0)
		fatalx("%s", e.msg);
	if ((d->rt = runtime_build(cfg, fs, d->st, &e)) == NULL)
		fatalx("%s", e.msg);
	cfg = d->rt->cfg;
	if (evthread_use_pthreads() != 0)
		fatalx("evthread_use_pthreads");
	if ((d->base = event_base_new()) == NULL)
		fatalx("libevent setup failed");
	if ((d->link = link_new(d, fd)) == NULL ||
	    (d->ctl = ipc_new(d->base, ctlfd, front_ctl_msg, front_ctl_end,
	    d)) == NULL)
		fatalx("channel setup failed");
	d->keyop_fd = keyfd;

	d->https = front_http(d, cfg->daemon.max_body, est_handle);
	listener_start(d, LISTENER_EST, d->https, ls->https);
	if (ls->http != -1) {
		/* Plain HTTP for relying parties: CRLs (RFC 5280 4.2.1.13)
		 * and OCSP (RFC 6960: POST bodies of one small request). */
		d->http = front_http(d, OCSP_REQUEST_MAX_BYTES, crl_handle);
		listener_start(d, LISTENER_HTTP, d->http, ls->http);
	}
	if (ls->admin != -1) {
		/* Operators: the same TLS context, trust checked per request
		 * against [admin] client-ca. */
		d->admin = front_http(d, ADMIN_BODY_MAX, admin_handle);
		listener_start(d, LISTENER_ADMIN, d->admin, ls->admin);
	}
	/* The sandbox allows reading the limit only. */
	if (listener_nofile_check(d, &e) != 0)
		fatalx("%s", e.msg);
	if (getenv("HSMCA_NOW") != NULL)
		log_warnx("HSMCA_NOW is set: every date decision uses %s, not "
		    "the system clock (tests only)", getenv("HSMCA_NOW"));
	if ((d->ssl = tls_server_ctx(d, &e)) == NULL)
		fatalx("%s", e.msg);

	/* Files read (the TLS key, trust): root is not needed any more. */
	daemon_drop_privileges(cfg->daemon.user);
	/* Set after the drop (a change of credentials clears it): when
	 * the parent goes, drain and go too. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM, 0, 0, 0) == -1 ||
	    getppid() != parent)
		fatalx("the parent is gone");
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		fatal("PR_SET_DUMPABLE");
	if (d->http != NULL && crl_serve_start(d, &e) != 0)
		fatalx("%s", e.msg);
	if (d->http != NULL && ocsp_serve_start(d, &e) != 0)
		fatalx("%s", e.msg);
	if (checkpoint_start(d, &e) != 0)
		fatalx("%s", e.msg);
	if (rotation_start(d, &e) != 0)
		fatalx("%s", e.msg);

	ev_term = evsignal_new(d->base, SIGTERM, on_sigterm, d);
	ev_int = evsignal_new(d->base, SIGINT, on_sigterm, d);
	ev_hup = evsignal_new(d->base, SIGHUP, on_sighup, d);
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL ||
	    event_add(ev_term, NULL) || event_add(ev_int, NULL) ||
	    event_add(ev_hup, NULL))
		fatalx("signal events");
	/* A SIGTERM or SIGHUP relayed during start-up waited until now. */
	if (sigprocmask(SIG_SETMASK, &hsmcad_startup_mask, NULL) == -1)
		fatal("sigprocmask");
	/* From here on the front only serves (sandbox.c). */
	if (sandbox_front(&e) != 0)
		fatalx("%s", e.msg);
	log_info("ready: %u signer workers, %zu EST labels", workers,
	    cfg->nest);
	front_status('R');
	event_base_dispatch(d->base);

	log_debug("front: exiting");
	crl_serve_stop(d);
	ocsp_serve_stop(d);
	checkpoint_stop(d);
	rotation_stop(d);
	if (d->drain_ev != NULL)
		event_free(d->drain_ev);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	evhttp_free(d->https);
	if (d->http != NULL)
		evhttp_free(d->http);
	if (d->admin != NULL)
		evhttp_free(d->admin);
	SSL_CTX_free(d->ssl);
	/* Closing the channel tells the signer to finish and exit. */
	link_free(d->link);
	ipc_free(d->ctl);
	store_close(d->st);
	runtime_unref(d->rt);
	event_base_free(d->base);
	exit(0);
}

/* ---- the parent ---- */

/* hsmcad -d: from here the start-up waits for the signer, which logs in
 * to the token (named as the log names it, by its label). */
static void
startup_wait_signer(const struct config_hsm *hc)
{
	struct hsm_uri u;
	struct hsmca_err e;
	int named = 0;

	if (hc->token != NULL && hsm_uri_parse(hc->token, &u, &e) == 0) {
		if ((named = u.token != NULL))
			log_startup_wait("the signer to log in to token '%s' "
			    "and load its keys", u.token);
		hsm_uri_free(&u);
	}
	if (!named)
		log_startup_wait("the signer to log in to the token and load "
		    "its keys");
}

/* A PIN given in the environment: the signer keeps it (to log in again
 * after an HSM fault); the parent wipes its copy before it forks the
 * front. */
void
daemon_forget_env_pin(const struct config *cfg)
{
	char *v;

	if (cfg->hsm.pin_source == NULL ||
	    strncmp(cfg->hsm.pin_source, "env:", 4) != 0 ||
	    (v = getenv(cfg->hsm.pin_source + 4)) == NULL)
		return;
	explicit_bzero(v, strlen(v));
	unsetenv(cfg->hsm.pin_source + 4);
}

static const char *
exit_text(int status, char *buf, size_t len)
{
	if ((WIFEXITED(status) && WEXITSTATUS(status) ==
	    SANDBOX_EXIT_VIOLATION) || (WIFSIGNALED(status) &&
	    WTERMSIG(status) == SIGSYS))
		snprintf(buf, len, "was stopped by its sandbox: a system call "
		    "it may not make (status %d; its stderr names the call)",
		    status);
	else if (WIFEXITED(status))
		snprintf(buf, len, "exited with status %d", WEXITSTATUS(status));
	else if (WIFSIGNALED(status))
		snprintf(buf, len, "was killed by signal %d (%s)",
		    WTERMSIG(status), strsignal(WTERMSIG(status)));
	else
		snprintf(buf, len, "ended (status %d)", status);
	return buf;
}

/* A SIGHUP: read the configuration and the files it names, once and
 * here, and send them to the front (which passes them on to the signer).
 * A configuration that does not parse goes no further. The channel is
 * given up if the front does not take a reload within a few seconds: a
 * message half sent would be misread. */
static void
parent_reload(int *ctl, const char *path, const struct config *run)
{
	struct fileset *fs = NULL;
	struct config *cfg = NULL;
	struct ipc_buf b;
	struct hsmca_err e;
	const char *keys[32];
	char list[1024];
	size_t n, i, at;

	log_info("SIGHUP: reloading %s", path != NULL ? path :
	    "the built-in defaults");
	if (*ctl == -1) {
		log_warnx("reload refused: the front's channel was given up");
		return;
	}
	if (config_snapshot(path, &fs, &cfg, &e) != 0) {
		log_warnx("reload refused, keeping the running config: %s", e.msg);
		return;
	}
	/* Said, not silently ignored: an operator who edits listen and
	 * sends SIGHUP learns that it needs a restart. */
	n = config_restart_keys(run, cfg, keys, sizeof(keys) / sizeof(keys[0]));
	list[0] = '\0';
	for (i = 0; i < n && i < sizeof(keys) / sizeof(keys[0]); i++) {
		at = strlen(list);
		snprintf(list + at, sizeof(list) - at, "%s%s",
		    i > 0 ? ", " : "", keys[i]);
	}
	if (n > 0)
		log_warnx("SIGHUP: changed, and kept as they run until a "
		    "restart: %s", list);
	config_free(cfg);
	memset(&b, 0, sizeof(b));
	ipcb_fileset(&b, fs);
	if (ipc_send_one(*ctl, IPC_CONFIG, &b) != 0) {
		log_warnx("reload refused: the front did not take it (%s); "
		    "restart hsmcad to reload", b.failed ? "out of memory" :
		    strerror(errno));
		if (!b.failed) {
			close(*ctl);
			*ctl = -1;
		}
	}
	ipcb_free(&b);
	fileset_free(fs);
}

/* Relay signals to the front and its readiness to systemd until both
 * children are gone; reload on SIGHUP. 0 if both ended cleanly. */
static int
parent_loop(pid_t front, pid_t signer, int status_rd, int ctl,
    const char *path, const struct config *run, const sigset_t *set)
{
	struct pollfd pfd[2];
	struct signalfd_siginfo si;
	char c, st[128], buf[128];
	int sfd, status, ret = 0, stopping = 0, ready = 0, held = 0;
	pid_t pid;

	if ((sfd = signalfd(-1, set, SFD_CLOEXEC)) == -1)
		fatal("signalfd");
	pfd[0].fd = sfd;
	pfd[0].events = POLLIN;
	pfd[1].fd = status_rd;
	pfd[1].events = POLLIN;
	while (front != -1 || signer != -1) {
		if (poll(pfd, 2, -1) == -1) {
			if (errno == EINTR)
				continue;
			fatal("poll");
		}
		if (pfd[0].revents & (POLLERR | POLLNVAL))
			fatalx("signalfd failed");
		if (pfd[1].revents & (POLLERR | POLLNVAL))
			pfd[1].fd = -1;
		else if (pfd[1].revents & (POLLIN | POLLHUP)) {
			if (read(status_rd, &c, 1) != 1)
				pfd[1].fd = -1;		/* the front is gone */
			else if (c == 'R' && !ready) {
				snprintf(st, sizeof(st), "READY=1\nSTATUS="
				    "serving EST\nMAINPID=%ld", (long)getpid());
				sd_notify_state(st);
				log_startup_ready();
				ready = 1;
				/* What came during the start-up, now that
				 * the front takes it. */
				if (held == SIGHUP)
					parent_reload(&ctl, path, run);
				else if (held != 0 && front != -1)
					(void)kill(front, held);
			} else if (c == 'R')
				sd_notify_state("READY=1");	/* reloaded */
			else if (c == 'L')
				sd_notify_state("RELOADING=1");
			else if (c == 'S')
				sd_notify_state("STOPPING=1");
		}
		if (!(pfd[0].revents & POLLIN))
			continue;
		if (read(sfd, &si, sizeof(si)) != sizeof(si))
			continue;
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			stopping = 1;
			/* FALLTHROUGH */
		case SIGHUP:
			/* Until the front is ready it may still be root,
			 * out of this process's reach, and cannot take a
			 * reload: hold the signal (a SIGTERM over a SIGHUP)
			 * and act on it then. */
			if (!ready && pfd[1].fd != -1) {
				if (held != SIGTERM)
					held = stopping ? SIGTERM : SIGHUP;
			} else if (si.ssi_signo == SIGHUP) {
				if (!stopping && front != -1)
					parent_reload(&ctl, path, run);
			} else if (front != -1)
				(void)kill(front, SIGTERM);
			break;
		case SIGCHLD:
			while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
				int clean = WIFEXITED(status) &&
				    WEXITSTATUS(status) == 0;

				if (pid == front) {
					front = -1;
					if (!clean || !stopping) {
						log_warnx("the front process %s",
						    exit_text(status, buf,
						    sizeof(buf)));
						ret = 1;
					}
				} else if (pid == signer) {
					signer = -1;
					if (!clean || !stopping) {
						log_warnx("the signer process %s",
						    exit_text(status, buf,
						    sizeof(buf)));
						ret = 1;
					}
				}
			}
			/* The signer without a front has nothing to do: its
			 * channel closed, it finishes and exits. A front
			 * without a signer exits on its own (fatal). */
			break;
		}
	}
	close(sfd);
	if (ctl != -1)
		close(ctl);
	return ret;
}

int
main(int argc, char *argv[])
{
	struct hsmcad d;
	struct config *cfg = NULL;
	struct fileset *fs = NULL;
	struct store *st = NULL;
	struct hsmca_err e;
	struct listeners ls = { -1, -1, -1 };
	const char *arg_config = NULL, *addr;
	char abspath[PATH_MAX], why[PATH_MAX + 128];
	sigset_t set;
	pid_t signer, front, parent;
	int ch, detach = 0, test = 0, verbose = 0, ret, new_store;
	int sp[2], kp[2] = { -1, -1 }, cp[2], status[2];

	while ((ch = getopt(argc, argv, "c:dtv")) != -1) {
		switch (ch) {
		case 'c':
			arg_config = optarg;
			break;
		case 'd':
			detach = 1;
			break;
		case 't':
			test = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	memset(&d, 0, sizeof(d));
	d.keyop_fd = -1;
	d.config_path = config_path(arg_config);
	/* -d changes to /, and every load after the first (a SIGHUP, the
	 * front's and the signer's of the snapshot) must name the files the
	 * first named: the paths relative to the directory hsmcad was
	 * started in are made absolute here, once. A file's own paths are
	 * absolute (hsmca.conf(5)). */
	if (d.config_path != NULL && d.config_path[0] != '/' &&
	    (d.config_path = realpath(d.config_path, abspath)) == NULL)
		err(1, "%s", arg_config != NULL ? arg_config : "config");
	if (d.config_path == NULL && config_fix_demo_home(&e) != 0)
		errx(1, "%s", e.msg);
	if (test)
		return check_config(d.config_path);

	/* No core dump from any process: the signer logs in with the
	 * PIN, and a fault before it changes credentials must not write
	 * the PIN out. A change of credentials clears the flag; each
	 * process sets it again after its own. */
	if (setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 }) == -1 ||
	    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		err(1, "no core dumps");
	/* Signals wait for each process's handlers: the parent's loop,
	 * the front's event loop; the signer ignores them. A SIGHUP or
	 * SIGTERM during start-up is taken when it is done. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &set, &hsmcad_startup_mask) == -1)
		err(1, "sigprocmask");

	log_init(0, verbose);
	/* The configuration and the files it names, read once for both
	 * processes (and again by this one at each SIGHUP). */
	if (config_snapshot(d.config_path, &fs, &cfg, &e) != 0)
		fatalx("%s", e.msg);
	/* What -t checks: every problem, on standard error, before any
	 * detach. */
	if (preflight_check(cfg, startup_problem, NULL, NULL) != 0)
		exit(1);
	/* Before anything starts, and before -d, so that a second hsmcad
	 * with this pidfile says so where it was started and leaves the
	 * running one alone. */
	if (cfg->daemon.pidfile != NULL &&
	    pidfile_lock(cfg->daemon.pidfile, why, sizeof(why)) != 0)
		errx(1, "%s", why);
	signal(SIGPIPE, SIG_IGN);
	/* Detach before any PKCS#11 state exists (only the signer ever has
	 * any, after the fork). */
	if (detach || (cfg->daemon.log != NULL &&
	    strcmp(cfg->daemon.log, "syslog") == 0))
		log_init(1, verbose);
	if (detach)
		log_startup(daemon_detach(cfg));
	/* The pid that stays: the parent's, after the detach. A start-up
	 * that fails from here removes it (pidfile.c), and -d reports that
	 * only once it is gone. */
	daemon_write_pidfile(cfg->daemon.user);

	/* Create or migrate the store once, here: the front opens it
	 * read-only. One created here, as root, belongs to the user the
	 * processes will run as, or the signer could not write it. */
	new_store = access(cfg->store.path, F_OK) == -1 && errno == ENOENT;
	if (store_open(cfg->store.path, &st, &e) != 0)
		fatalx("%s", e.msg);
	store_close(st);
	if (new_store)
		give_store(cfg->store.path, cfg->daemon.user);

	ls.https = listen_socket("EST (mutual TLS)",
	    daemon_listen_addr(cfg, LISTENER_EST));
	if ((addr = daemon_listen_addr(cfg, LISTENER_HTTP)) != NULL)
		ls.http = listen_socket("HTTP (CRL)", addr);
	if ((addr = daemon_listen_addr(cfg, LISTENER_ADMIN)) != NULL)
		ls.admin = listen_socket("admin API (mutual TLS)", addr);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sp) == -1 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, cp) == -1 ||
	    (strncmp(cfg->daemon.tls_key, "pkcs11:", 7) == 0 &&
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, kp) == -1) ||
	    pipe2(status, O_CLOEXEC) == -1)
		fatal("socketpair");

	parent = getpid();

	/* What -d waits for now: the rest is bounded. */
	startup_wait_signer(&cfg->hsm);
	if ((signer = fork()) == -1)
		fatal("fork");
	if (signer == 0) {
		pidfile_forget();
		close(sp[0]);
		if (kp[0] != -1)
			close(kp[0]);
		close(status[0]);
		close(status[1]);
		close(cp[0]);
		close(cp[1]);
		listeners_close(&ls);
		signerd_main(d.config_path, cfg, fs, sp[1], kp[1]);
	}
	close(sp[1]);
	if (kp[1] != -1)
		close(kp[1]);
	daemon_forget_env_pin(cfg);

	if ((front = fork()) == -1)
		fatal("fork");
	if (front == 0) {
		pidfile_forget();
		close(status[0]);
		status_fd = status[1];
		close(cp[0]);
		front_main(&d, cfg, fs, &ls, sp[0], kp[0], cp[1], parent);
	}
	close(sp[0]);
	if (kp[0] != -1)
		close(kp[0]);
	close(status[1]);
	close(cp[1]);
	listeners_close(&ls);
	fileset_free(fs);
	/* A reload the front does not take within this gives up the
	 * channel rather than block the parent (parent_reload). */
	if (setsockopt(cp[0], SOL_SOCKET, SO_SNDTIMEO, &(struct timeval){
	    10, 0 }, sizeof(struct timeval)) == -1)
		fatal("setsockopt");

	(void)prctl(PR_SET_NAME, "hsmcad-parent", 0, 0, 0);
	daemon_drop_privileges(cfg->daemon.user);
	ret = parent_loop(front, signer, status[0], cp[0], d.config_path, cfg,
	    &set);
	log_info("exiting");
	/* The file locked at the start, whatever a reload read since. */
	pidfile_remove();
	close(status[0]);
	config_free(cfg);
	return ret;
}
