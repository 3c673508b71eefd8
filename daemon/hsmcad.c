/* hsmcad.c: the daemon. Reads the config, binds its port, logs in to the
 * HSM, starts the signer workers, drops root and serves EST over mutual
 * TLS on a libevent loop. SIGTERM drains in-flight requests and exits;
 * SIGHUP reloads profiles, labels and trust without dropping the HSM
 * login. */
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
#include "hsmca/util.h"

#include "hsmcad.h"
#include "log.h"

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

static struct evhttp_bound_socket *
bind_listener(struct evhttp *http, const char *what, const char *addr)
{
	struct evhttp_bound_socket *bs;
	struct sockaddr_storage ss;
	socklen_t slen = sizeof(ss);
	char host[256], shown[300];
	unsigned short port;

	if (split_hostport(addr, host, sizeof(host), &port) != 0)
		fatalx("%s: bad address %s", what, addr);
	if ((bs = evhttp_bind_socket_with_handle(http, host, port)) == NULL)
		fatal("%s: cannot listen on %s", what, addr);
	/* Answers are small and come one at a time per connection: Nagle's
	 * algorithm would hold each one back for the client's delayed ACK
	 * (40 ms on Linux). Accepted sockets inherit the option. */
	{
		int one = 1;

		if (setsockopt(evhttp_bound_socket_get_fd(bs), IPPROTO_TCP,
		    TCP_NODELAY, &one, sizeof(one)) == -1)
			log_warn("%s: TCP_NODELAY", what);
	}
	/* With port 0 the kernel chose one: say which. */
	if (getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss,
	    &slen) == 0) {
		char ip[INET6_ADDRSTRLEN] = "?";

		if (ss.ss_family == AF_INET) {
			struct sockaddr_in *in = (struct sockaddr_in *)&ss;

			inet_ntop(AF_INET, &in->sin_addr, ip, sizeof(ip));
			snprintf(shown, sizeof(shown), "%s:%u", ip, ntohs(in->sin_port));
		} else {
			struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)&ss;

			inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof(ip));
			snprintf(shown, sizeof(shown), "[%s]:%u", ip,
			    ntohs(in6->sin6_port));
		}
		log_info("%s listening on %s", what, shown);
	}
	return bs;
}

static void
drop_privileges(const char *user)
{
	struct passwd *pw;

	if (user == NULL)
		return;
	if ((pw = getpwnam(user)) == NULL)
		fatalx("user %s does not exist", user);
	if (geteuid() == 0) {
		if (setgroups(1, &pw->pw_gid) == -1 ||
		    setresgid(pw->pw_gid, pw->pw_gid, pw->pw_gid) == -1 ||
		    setresuid(pw->pw_uid, pw->pw_uid, pw->pw_uid) == -1)
			fatal("cannot drop privileges to %s", user);
		if (setuid(0) != -1)
			fatalx("could regain root after dropping it");
	} else if (geteuid() != pw->pw_uid)
		fatalx("running as uid %u, cannot become %s", geteuid(), user);
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == -1)
		fatal("PR_SET_NO_NEW_PRIVS");
	log_info("running as %s", user);
}

static void
write_pidfile(const char *path)
{
	char buf[32];
	struct hsmca_err e;

	if (path == NULL)
		return;
	snprintf(buf, sizeof(buf), "%ld\n", (long)getpid());
	if (util_write_file_atomic(path, buf, strlen(buf), 0644, &e) != 0)
		fatalx("pidfile: %s", e.msg);
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

/* ---- signals ---- */

static void
drain_tick(evutil_socket_t fd, short what, void *arg)
{
	struct hsmcad *d = arg;
	static int ticks;

	ticks++;
	if ((d->inflight == 0 && signer_pending(d->signer) == 0) ||
	    ticks * DRAIN_TICK_MS > d->rt->cfg->daemon.timeout * 1000) {
		if (d->inflight != 0)
			log_warnx("drain: %d requests still open after %llds",
			    d->inflight, (long long)d->rt->cfg->daemon.timeout);
		event_base_loopexit(d->base, NULL);
	}
}

static struct evhttp_bound_socket *https_socket, *http_socket, *admin_socket;

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
	sd_notify_state("STOPPING=1");
	log_info("%s: draining %d in-flight requests", sig == SIGTERM ?
	    "SIGTERM" : "SIGINT", d->inflight);
	checkpoint_now(d);	/* the last records, signed before exit */
	if (https_socket != NULL) {
		evhttp_del_accept_socket(d->https, https_socket);
		https_socket = NULL;
	}
	if (http_socket != NULL) {
		evhttp_del_accept_socket(d->http, http_socket);
		http_socket = NULL;
	}
	if (admin_socket != NULL) {
		evhttp_del_accept_socket(d->admin, admin_socket);
		admin_socket = NULL;
	}
	if ((d->drain_ev = event_new(d->base, -1, EV_PERSIST, drain_tick,
	    d)) == NULL)
		event_base_loopexit(d->base, NULL);
	else
		event_add(d->drain_ev, &tv);
}

static void
on_sighup(evutil_socket_t sig, short what, void *arg)
{
	struct hsmcad *d = arg;
	struct config *cfg = NULL;
	struct runtime *rt;
	struct hsmca_err e;

	sd_notify_state("RELOADING=1");
	log_info("SIGHUP: reloading %s", d->config_path ? d->config_path :
	    "the built-in defaults");
	if (config_load(d->config_path, &cfg, &e) != 0) {
		log_warnx("reload refused, keeping the running config: %s", e.msg);
		sd_notify_state("READY=1");
		return;
	}
	if ((rt = runtime_build(cfg, d->st, &e)) == NULL) {
		log_warnx("reload refused, keeping the running config: %s", e.msg);
		sd_notify_state("READY=1");
		return;
	}
	runtime_unref(d->rt);
	d->rt = rt;
	if (signer_set_issuer(d->signer, rt->cfg, &e) != 0)
		log_warnx("no CA generation to issue with: %s", e.msg);
	log_info("reloaded: %zu profiles, %zu EST labels", rt->cfg->nprofiles,
	    rt->cfg->nest);
	sd_notify_state("READY=1");
}

/* -t: everything that can be checked without the token. */
static int
check_config(const char *path)
{
	struct config *cfg = NULL;
	struct hsmca_err e;
	SSL_CTX *ctx = NULL;
	int ok = 0;

	if (config_load(path, &cfg, &e) != 0) {
		fprintf(stderr, "hsmcad: %s\n", e.msg);
		return 1;
	}
	if (cfg->daemon.tls_cert == NULL || cfg->daemon.tls_key == NULL)
		fprintf(stderr, "hsmcad: [daemon] tls-cert and tls-key are required\n");
	else if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
	    !SSL_CTX_use_certificate_chain_file(ctx, cfg->daemon.tls_cert))
		fprintf(stderr, "hsmcad: tls-cert %s is unreadable\n",
		    cfg->daemon.tls_cert);
	else if (strncmp(cfg->daemon.tls_key, "pkcs11:", 7) != 0 &&
	    (!SSL_CTX_use_PrivateKey_file(ctx, cfg->daemon.tls_key,
	    SSL_FILETYPE_PEM) || !SSL_CTX_check_private_key(ctx)))
		fprintf(stderr, "hsmcad: tls-key %s is unreadable or does not "
		    "match tls-cert\n", cfg->daemon.tls_key);
	else
		ok = 1;
	for (size_t i = 0; ok && i < cfg->nest; i++) {
		X509_STORE *xs;

		if (cfg->est[i].bootstrap_ca == NULL)
			continue;
		if ((xs = X509_STORE_new()) == NULL ||
		    X509_STORE_load_file(xs, cfg->est[i].bootstrap_ca) != 1) {
			fprintf(stderr, "hsmcad: bootstrap-ca %s of EST label "
			    "'%s' is unreadable\n", cfg->est[i].bootstrap_ca,
			    cfg->est[i].label);
			ok = 0;
		}
		X509_STORE_free(xs);
	}
	SSL_CTX_free(ctx);
	config_free(cfg);
	if (ok)
		printf("configuration OK\n");
	return ok ? 0 : 1;
}

int
main(int argc, char *argv[])
{
	struct hsmcad d;
	struct config *cfg = NULL;
	struct hsmca_err e;
	struct event *ev_term, *ev_int, *ev_hup;
	const char *arg_config = NULL;
	char abspath[PATH_MAX];
	int ch, detach = 0, test = 0, verbose = 0, workers;

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
	d.config_path = config_path(arg_config);
	/* daemon() changes to /: a relative path would not reload. */
	if (d.config_path != NULL && d.config_path[0] != '/' &&
	    (d.config_path = realpath(d.config_path, abspath)) == NULL)
		err(1, "%s", arg_config != NULL ? arg_config : "config");
	if (test)
		return check_config(d.config_path);

	log_init(0, verbose);
	if (config_load(d.config_path, &cfg, &e) != 0)
		fatalx("%s", e.msg);
	signal(SIGPIPE, SIG_IGN);
	/* Detach before any PKCS#11 state exists: a child must never use
	 * sessions it inherited across fork. */
	if (detach || (cfg->daemon.log != NULL &&
	    strcmp(cfg->daemon.log, "syslog") == 0))
		log_init(1, verbose);
	if (detach && daemon(0, 0) == -1)
		fatal("daemon");

	if (store_open(cfg->store.path, &d.st, &e) != 0)
		fatalx("%s", e.msg);
	if ((d.rt = runtime_build(cfg, d.st, &e)) == NULL)
		fatalx("%s", e.msg);
	cfg = d.rt->cfg;

	if (evthread_use_pthreads() != 0)
		fatalx("evthread_use_pthreads");
	if ((d.base = event_base_new()) == NULL ||
	    (d.https = evhttp_new(d.base)) == NULL)
		fatalx("libevent setup failed");
	evhttp_set_timeout(d.https, (int)cfg->daemon.timeout);
	evhttp_set_max_body_size(d.https, (ev_ssize_t)cfg->daemon.max_body);
	evhttp_set_max_headers_size(d.https,
	    (ev_ssize_t)cfg->daemon.max_header_size);
	evhttp_set_allowed_methods(d.https, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(d.https, est_handle, &d);
	https_socket = bind_listener(d.https, "EST (mutual TLS)",
	    cfg->daemon.listen);
	if (cfg->daemon.http_listen != NULL && *cfg->daemon.http_listen != '\0') {
		/* Plain HTTP for relying parties: CRLs (RFC 5280 4.2.1.13)
		 * and OCSP (RFC 6960: POST bodies of one small request). */
		if ((d.http = evhttp_new(d.base)) == NULL)
			fatalx("libevent setup failed");
		evhttp_set_timeout(d.http, (int)cfg->daemon.timeout);
		evhttp_set_max_body_size(d.http, OCSP_REQUEST_MAX_BYTES);
		evhttp_set_max_headers_size(d.http,
		    (ev_ssize_t)cfg->daemon.max_header_size);
		evhttp_set_allowed_methods(d.http, EVHTTP_REQ_GET |
		    EVHTTP_REQ_POST);
		evhttp_set_gencb(d.http, crl_handle, &d);
		http_socket = bind_listener(d.http, "HTTP (CRL)",
		    cfg->daemon.http_listen);
	}

	if (cfg->admin.listen != NULL) {
		/* Operators: the same TLS context, trust checked per request
		 * against [admin] client-ca. */
		if ((d.admin = evhttp_new(d.base)) == NULL)
			fatalx("libevent setup failed");
		evhttp_set_timeout(d.admin, (int)cfg->daemon.timeout);
		evhttp_set_max_body_size(d.admin, ADMIN_BODY_MAX);
		evhttp_set_max_headers_size(d.admin,
		    (ev_ssize_t)cfg->daemon.max_header_size);
		evhttp_set_allowed_methods(d.admin, EVHTTP_REQ_GET |
		    EVHTTP_REQ_POST);
		evhttp_set_gencb(d.admin, admin_handle, &d);
		admin_socket = bind_listener(d.admin, "admin API (mutual TLS)",
		    cfg->admin.listen);
	}

	if (hsm_open(&cfg->hsm, &d.hsm, &e) != 0)
		fatalx("%s", e.msg);
	log_info("logged in to token '%s'", hsm_token_label(d.hsm));
	/* The PIN is no longer needed: do not leave it in the environment
	 * of this process (hsm_open wiped its own copy). */
	if (cfg->hsm.pin_source != NULL &&
	    strncmp(cfg->hsm.pin_source, "env:", 4) == 0)
		unsetenv(cfg->hsm.pin_source + 4);
	if (getenv("HSMCA_NOW") != NULL)
		log_warnx("HSMCA_NOW is set: every date decision uses %s, not "
		    "the system clock (tests only)", getenv("HSMCA_NOW"));
	if ((d.ssl = tls_server_ctx(&d, &e)) == NULL)
		fatalx("%s", e.msg);
	evhttp_set_bevcb(d.https, tls_bevcb, &d);
	if (d.admin != NULL)
		evhttp_set_bevcb(d.admin, tls_bevcb, &d);
	workers = cfg->daemon.workers > 0 ? cfg->daemon.workers :
	    (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (workers < 1)
		workers = 1;
	if (signer_start(d.base, d.hsm, cfg->store.path, workers, &d.signer,
	    &e) != 0)
		fatalx("%s", e.msg);
	if (signer_set_issuer(d.signer, cfg, &e) != 0)
		log_warnx("no CA generation to issue with yet: %s", e.msg);
	if (strncmp(cfg->daemon.tls_key, "pkcs11:", 7) == 0)
		signer_tls_key_in_token(d.signer);
	if (d.http != NULL && crl_serve_start(&d, &e) != 0)
		fatalx("%s", e.msg);
	if (d.http != NULL && ocsp_serve_start(&d, &e) != 0)
		fatalx("%s", e.msg);
	if (checkpoint_start(&d, &e) != 0)
		fatalx("%s", e.msg);
	if (rotation_start(&d, &e) != 0)
		fatalx("%s", e.msg);

	drop_privileges(cfg->daemon.user);
	write_pidfile(cfg->daemon.pidfile);

	ev_term = evsignal_new(d.base, SIGTERM, on_sigterm, &d);
	ev_int = evsignal_new(d.base, SIGINT, on_sigterm, &d);
	ev_hup = evsignal_new(d.base, SIGHUP, on_sighup, &d);
	if (ev_term == NULL || ev_int == NULL || ev_hup == NULL ||
	    event_add(ev_term, NULL) || event_add(ev_int, NULL) ||
	    event_add(ev_hup, NULL))
		fatalx("signal events");
	log_info("ready: %d signer workers, %zu EST labels", workers,
	    cfg->nest);
	{
		char st[128];

		snprintf(st, sizeof(st), "READY=1\nSTATUS=serving EST, %d "
		    "signer workers\nMAINPID=%ld", workers, (long)getpid());
		sd_notify_state(st);
	}
	event_base_dispatch(d.base);

	log_info("exiting");
	if (d.rt->cfg->daemon.pidfile != NULL)
		unlink(d.rt->cfg->daemon.pidfile);
	signer_stop(d.signer);
	crl_serve_stop(&d);
	ocsp_serve_stop(&d);
	checkpoint_stop(&d);
	rotation_stop(&d);
	if (d.drain_ev != NULL)
		event_free(d.drain_ev);
	event_free(ev_term);
	event_free(ev_int);
	event_free(ev_hup);
	evhttp_free(d.https);
	if (d.http != NULL)
		evhttp_free(d.http);
	if (d.admin != NULL)
		evhttp_free(d.admin);
	SSL_CTX_free(d.ssl);
	hsm_close(d.hsm);
	store_close(d.st);
	runtime_unref(d.rt);
	event_base_free(d.base);
	return 0;
}
