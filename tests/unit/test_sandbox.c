/* test_sandbox.c: the seccomp sandbox of hsmcad's front (daemon/sandbox.c).
 * Each case forks a child that sets up what the front sets up, enters the
 * sandbox and then either does what the front does (TLS and HTTP on an
 * accepted TCP connection in a libevent loop, the signer link, SIGHUP
 * reloads, the store read-only, syslog) and must exit 0, or makes one
 * forbidden call and must die at it: status SANDBOX_EXIT_VIOLATION, the
 * call named on stderr, its effect absent. Children exit through exit(),
 * so an ASan build runs its leak check inside the sandbox too. */
#include "config.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <syslog.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/ptrace.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <sys/wait.h>

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>
#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/thread.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/ssl.h>
#include <sqlite3.h>

#include "hsmca/config.h"
#include "hsmca/err.h"
#include "hsmca/fileset.h"
#include "hsmca/store.h"
#include "ipc.h"
#include "sandbox.h"
#include "testutil.h"

#define CHILD_TIMEOUT	20	/* seconds, only against a hang */

/* Made once by the parent, inherited by every child. */
static struct world {
	char		*dir;
	char		 conf[512];	/* a config file to reload */
	char		 trust[512];	/* a PEM certificate to reload */
	char		 db[512];	/* raw SQLite WAL database */
	char		 store[512];	/* an hsmca store */
	char		 victim[512];	/* a file nobody may unlink */
	char		 logsock[100];	/* stands in for /dev/log */
	sqlite3		*db_rw;		/* kept open, as the signer does */
	struct store	*st_rw;
	EVP_PKEY	*key;
	X509		*cert;
	SSL_CTX		*srv, *cli;
	int		 listen_fd;	/* TCP 127.0.0.1, as hsmcad binds it */
	struct sockaddr_in listen_addr;
	int		 log_fd;
} w;

static void
die(const char *what)
{
	fprintf(stderr, "test_sandbox: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int
enter(void)
{
	struct hsmca_err e;

	if (sandbox_front(&e) != 0) {
		fprintf(stderr, "sandbox_front: %s\n", e.msg);
		return -1;
	}
	return 0;
}

/* ---- running a child ---- */

struct child {
	pid_t	pid;
	int	status;
	char	err[8192];	/* its stderr */
};

/* Fork; the child runs fn with stderr into a pipe and exit()s with what it
 * returns. The parent runs peer (the other side of the child's
 * connections) if given, then collects stderr and the status. */
static void
run_child(int (*fn)(void *), void *arg, void (*peer)(struct child *, void *),
    void *parg, struct child *c)
{
	int p[2];
	size_t n = 0;
	ssize_t r;

	memset(c, 0, sizeof(*c));
	if (pipe(p) == -1)
		die("pipe");
	fflush(NULL);
	if ((c->pid = fork()) == -1)
		die("fork");
	if (c->pid == 0) {
		struct rlimit no_core = { 0, 0 };

		close(p[0]);
		if (dup2(p[1], STDERR_FILENO) == -1)
			_exit(120);
		close(p[1]);
		(void)setrlimit(RLIMIT_CORE, &no_core);
		alarm(CHILD_TIMEOUT);
		exit(fn(arg));
	}
	close(p[1]);
	if (peer != NULL)
		peer(c, parg);
	while (n < sizeof(c->err) - 1 &&
	    (r = read(p[0], c->err + n, sizeof(c->err) - 1 - n)) != 0) {
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1)
			die("read");
		n += (size_t)r;
	}
	c->err[n] = '\0';
	close(p[0]);
	while (waitpid(c->pid, &c->status, 0) == -1)
		if (errno != EINTR)
			die("waitpid");
}

static void
assert_exit_ok(const struct child *c)
{
	if (!WIFEXITED(c->status) || WEXITSTATUS(c->status) != 0) {
		if (WIFEXITED(c->status))
			print_error("child exited %d, stderr:\n%s\n",
			    WEXITSTATUS(c->status), c->err);
		else
			print_error("child killed by signal %d, stderr:\n%s\n",
			    WTERMSIG(c->status), c->err);
		fail();
	}
}

/* ---- allowed: the front's loop ---- */

struct front {
	struct event_base	*base;
	struct evhttp		*http;
	struct event		*link_ev, *hup_ev;
	struct ipc		*ctl;
	int			 link;
	int			 reloads;
	int			 done;
#define DONE_HTTP	1
#define DONE_LINK	2
#define DONE_HUP	4
#define DONE_RELOAD	8
#define DONE_ALL	15
};

/* The front and the parent: a socketpair of IPC messages. */
static int ctl_sp[2];

static void
front_check_done(struct front *f)
{
	if (f->done == DONE_ALL)
		event_base_loopexit(f->base, NULL);
}

static struct bufferevent *
front_bevcb(struct event_base *base, void *arg)
{
	SSL *ssl;

	if ((ssl = SSL_new(w.srv)) == NULL)
		return NULL;
	return bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
}

static void
front_http(struct evhttp_request *req, void *arg)
{
	struct front *f = arg;
	struct evbuffer *body = evbuffer_new();
	unsigned char rnd[16];

	/* What an EST answer needs besides I/O: randomness, the clock. */
	if (body == NULL || RAND_bytes(rnd, sizeof(rnd)) != 1) {
		evhttp_send_error(req, 500, NULL);
		evbuffer_free(body);
		return;
	}
	evbuffer_add_printf(body, "pong %s %ld\n", evhttp_request_get_uri(req),
	    (long)time(NULL));
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain");
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
	f->done |= DONE_HTTP;
	front_check_done(f);
}

/* The signer link: a reply to the request sent after entering. */
static void
front_link(evutil_socket_t fd, short what, void *arg)
{
	struct front *f = arg;
	char buf[16];
	struct iovec iov = { buf, sizeof(buf) };
	struct msghdr msg;
	ssize_t n;

	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if ((n = recvmsg(fd, &msg, 0)) == 2 && memcmp(buf, "ok", 2) == 0)
		f->done |= DONE_LINK;
	else {
		fprintf(stderr, "link: read %zd\n", n);
		event_base_loopbreak(f->base);
	}
	event_del(f->link_ev);
	front_check_done(f);
}

/* A signal arrives inside the sandbox. */
static void
front_hup(evutil_socket_t sig, short what, void *arg)
{
	struct front *f = arg;

	f->done |= DONE_HUP;
	front_check_done(f);
}

/* A reload, as hsmcad's front takes it: the parent's snapshot of the
 * config and the files it names, parsed with no file opened. */
static int
front_load(struct fileset *fs, const char *path)
{
	STACK_OF(X509_INFO) *infos = NULL;
	const unsigned char *pem;
	struct config *cfg = NULL;
	struct hsmca_err e;
	size_t len;
	BIO *b = NULL;
	int ret = -1;

	if (config_load_fileset(fs, path, &cfg, &e) != 0) {
		fprintf(stderr, "reload %s: %s\n", path, e.msg);
		goto out;
	}
	if (fileset_get(fs, w.trust) != NULL &&
	    (fileset_data(fs, w.trust, &pem, &len, &e) != 0 ||
	    (b = BIO_new_mem_buf(pem, (int)len)) == NULL ||
	    (infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL)) == NULL ||
	    sk_X509_INFO_num(infos) != 1)) {
		fprintf(stderr, "reload %s failed\n", w.trust);
		goto out;
	}
	ret = 0;
out:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	BIO_free(b);
	config_free(cfg);
	return ret;
}

static void
front_ctl(struct ipc *c, uint32_t type, uint64_t id, struct ipc_rd *r,
    void *arg)
{
	struct front *f = arg;
	const char *srcdir = getenv("top_srcdir");
	char full[1024];
	struct fileset *fs;
	int fd;

	if (type != IPC_CONFIG || (fs = ipcr_fileset(r)) == NULL ||
	    ipcr_end(r) != 0) {
		fprintf(stderr, "reload: a message that does not parse\n");
		event_base_loopbreak(f->base);
		return;
	}
	/* Our config with its trust file, then the shipped example with
	 * every section (when run by make check). */
	snprintf(full, sizeof(full), "%s/conf/hsmca.conf", srcdir != NULL ?
	    srcdir : "");
	if (front_load(fs, f->reloads == 0 ? w.conf : full) != 0) {
		fileset_free(fs);
		event_base_loopbreak(f->base);
		return;
	}
	fileset_free(fs);
	/* What it no longer does: open the file itself. */
#ifndef SANDBOX_SANITIZER
	if ((fd = open(w.conf, O_RDONLY | O_CLOEXEC)) != -1 ||
	    errno != EACCES) {
		fprintf(stderr, "open %s inside: %s\n", w.conf, fd == -1 ?
		    strerror(errno) : "opened");
		event_base_loopbreak(f->base);
		return;
	}
#else
	(void)fd;
#endif
	if (++f->reloads == (srcdir != NULL ? 2 : 1))
		f->done |= DONE_RELOAD;
	front_check_done(f);
}

static void
front_ctl_end(struct ipc *c, const char *why, void *arg)
{
	struct front *f = arg;

	if (!(f->done & DONE_RELOAD)) {
		fprintf(stderr, "the parent's channel ended: %s\n", why);
		event_base_loopbreak(f->base);
	}
}

static int
child_front(void *arg)
{
	int *sp = arg;
	struct front f;
	char req[] = "req";
	struct iovec iov = { req, 3 };
	struct msghdr msg;
	int ret = 1;

	memset(&f, 0, sizeof(f));
	close(sp[0]);
	f.link = sp[1];
	if ((f.base = event_base_new()) == NULL ||
	    (f.http = evhttp_new(f.base)) == NULL)
		return 2;
	evhttp_set_timeout(f.http, 10);
	evhttp_set_allowed_methods(f.http, EVHTTP_REQ_GET | EVHTTP_REQ_POST);
	evhttp_set_gencb(f.http, front_http, &f);
	evhttp_set_bevcb(f.http, front_bevcb, NULL);
	if (evhttp_accept_socket(f.http, w.listen_fd) != 0)
		return 3;
	close(ctl_sp[0]);
	if ((f.link_ev = event_new(f.base, f.link, EV_READ | EV_PERSIST,
	    front_link, &f)) == NULL || event_add(f.link_ev, NULL) != 0 ||
	    (f.hup_ev = evsignal_new(f.base, SIGHUP, front_hup, &f)) == NULL ||
	    event_add(f.hup_ev, NULL) != 0 ||
	    (f.ctl = ipc_new(f.base, ctl_sp[1], front_ctl, front_ctl_end,
	    &f)) == NULL)
		return 4;

	if (enter() != 0)
		return 5;
	memset(&msg, 0, sizeof(msg));
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	if (sendmsg(f.link, &msg, MSG_NOSIGNAL) != 3)
		return 6;
	if (event_base_dispatch(f.base) != 0)
		ret = 7;
	else if (f.done != DONE_ALL)
		fprintf(stderr, "front: done %d, not %d\n", f.done, DONE_ALL);
	else
		ret = 0;
	event_free(f.hup_ev);
	event_free(f.link_ev);
	ipc_free(f.ctl);
	evhttp_free(f.http);
	event_base_free(f.base);
	close(f.link);
	return ret;
}

/* What hsmcad's parent does at a SIGHUP: a snapshot of path and the
 * files it names (and extra), sent whole. */
static void
peer_reload(const char *path, const char *extra)
{
	struct fileset *fs = NULL;
	struct config *cfg = NULL;
	struct ipc_buf b;
	struct hsmca_err e;

	if (config_snapshot(path, &fs, &cfg, &e) != 0 ||
	    (extra != NULL && fileset_read(fs, extra, &e) != 0))
		die(path);
	memset(&b, 0, sizeof(b));
	ipcb_fileset(&b, fs);
	if (ipc_send_one(ctl_sp[0], IPC_CONFIG, &b) != 0)
		die("ipc_send_one");
	ipcb_free(&b);
	fileset_free(fs);
	config_free(cfg);
}

static char answer[4096];

/* The other side: an HTTPS client with a certificate (mutual TLS, as
 * EST), the signer answering, the operator sending SIGHUP. */
static void
peer_front(struct child *c, void *arg)
{
	int *sp = arg, link = sp[0], fd;
	struct timeval tv = { 10, 0 };
	char buf[4096];
	const char *req = "GET /.well-known/est/cacerts HTTP/1.1\r\n"
	    "Host: localhost\r\nConnection: close\r\n\r\n";
	size_t n = 0;
	int r;
	SSL *ssl = NULL;
	X509 *peer = NULL;

	close(sp[1]);
	/* The link first: the child sends as soon as it is sandboxed. */
	setsockopt(link, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (recv(link, buf, sizeof(buf), 0) != 3 || memcmp(buf, "req", 3))
		print_message("# link: no request from the child\n");
	else if (send(link, "ok", 2, MSG_NOSIGNAL) != 2)
		die("link send");

	if ((fd = socket(AF_INET, SOCK_STREAM, 0)) == -1)
		die("socket");
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(fd, (struct sockaddr *)&w.listen_addr,
	    sizeof(w.listen_addr)) == -1)
		die("connect");
	if ((ssl = SSL_new(w.cli)) == NULL || SSL_set_fd(ssl, fd) != 1 ||
	    SSL_set_tlsext_host_name(ssl, "localhost") != 1)
		die("SSL_new");
	if (SSL_connect(ssl) != 1 ||
	    (peer = SSL_get1_peer_certificate(ssl)) == NULL ||
	    X509_cmp(peer, w.cert) != 0) {
		print_message("# TLS handshake with the child failed: %s\n",
		    ERR_reason_error_string(ERR_get_error()));
	} else if (SSL_write(ssl, req, (int)strlen(req)) !=
	    (int)strlen(req))
		print_message("# TLS write failed\n");
	else {
		while (n < sizeof(buf) - 1 &&
		    (r = SSL_read(ssl, buf + n, (int)(sizeof(buf) - 1 - n))) > 0)
			n += (size_t)r;
	}
	buf[n] = '\0';
	X509_free(peer);
	SSL_free(ssl);
	close(fd);
	snprintf(answer, sizeof(answer), "%s", buf);

	if (kill(c->pid, SIGHUP) == -1)
		die("kill");
	/* The parent's reloads: our config and its trust file, then the
	 * shipped example. */
	close(ctl_sp[1]);
	peer_reload(w.conf, w.trust);
	if (getenv("top_srcdir") != NULL) {
		snprintf(buf, sizeof(buf), "%s/conf/hsmca.conf",
		    getenv("top_srcdir"));
		peer_reload(buf, NULL);
	}
}

static void
test_front_loop(void **state)
{
	struct child c;
	int sp[2];

	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, sp) == -1)
		die("socketpair");
	/* The child keeps sp[1], the parent sp[0]: each closes the other. */
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, ctl_sp) == -1)
		die("socketpair");
	answer[0] = '\0';
	run_child(child_front, sp, peer_front, sp, &c);
	close(sp[0]);
	close(ctl_sp[0]);
	if (strstr(answer, "HTTP/1.1 200 OK\r\n") == NULL)
		print_message("# answer: %s\n# child's stderr: %s\n", answer,
		    c.err);
	assert_non_null(strstr(answer, "HTTP/1.1 200 OK\r\n"));
	assert_non_null(strstr(answer, "pong /.well-known/est/cacerts "));
	assert_exit_ok(&c);
}

/* ---- allowed: the store, read-only, beside a writer ---- */

static int
db_count(sqlite3 *db, long *count, long *sum)
{
	sqlite3_stmt *s = NULL;
	int ret = -1;

	if (sqlite3_prepare_v2(db, "SELECT count(*), total(x) FROM t", -1, &s,
	    NULL) == SQLITE_OK && sqlite3_step(s) == SQLITE_ROW) {
		*count = (long)sqlite3_column_int64(s, 0);
		*sum = (long)sqlite3_column_double(s, 1);
		ret = 0;
	} else
		fprintf(stderr, "query: %s\n", sqlite3_errmsg(db));
	sqlite3_finalize(s);
	return ret;
}

struct store_sync {
	int	to_parent[2], to_child[2];
};

static int
child_store(void *arg)
{
	struct store_sync *sy = arg;
	struct store *st = NULL, *st2 = NULL;
	struct store_generation g;
	struct hsmca_err e;
	sqlite3 *db = NULL;
	long count, sum;
	char b;
	int ret = 1;

	close(sy->to_parent[0]);
	close(sy->to_child[1]);
	/* Opened before, as the front does; used after. */
	if (store_open_readonly(w.store, &st, &e) != 0) {
		fprintf(stderr, "store: %s\n", e.msg);
		return 2;
	}
	if (sqlite3_open_v2(w.db, &db, SQLITE_OPEN_READONLY, NULL) !=
	    SQLITE_OK)
		return 3;
	/* The first read opens -wal and -shm: before, as the front's
	 * start-up reads the generations. */
	if (db_count(db, &count, &sum) != 0 || count != 100 || sum != 5050) {
		fprintf(stderr, "first read: %ld rows, sum %ld\n", count, sum);
		goto out;
	}
	if (enter() != 0)
		goto out;
	/* Let the parent commit a row, then see it. */
	if (write(sy->to_parent[1], "r", 1) != 1 ||
	    read(sy->to_child[0], &b, 1) != 1)
		goto out;
	if (db_count(db, &count, &sum) != 0 || count != 101 || sum != 6050) {
		fprintf(stderr, "second read: %ld rows, sum %ld\n", count, sum);
		goto out;
	}
	if (store_schema_version(st) != STORE_SCHEMA_VERSION) {
		fprintf(stderr, "store schema version %d\n",
		    store_schema_version(st));
		goto out;
	}
	memset(&g, 0, sizeof(g));
	if (store_get_generation(st, 424242, &g, &e) != HSMCA_ERR_NOT_FOUND) {
		fprintf(stderr, "generation lookup: %s\n", e.msg);
		goto out;
	}
#ifndef SANDBOX_SANITIZER
	/* No connection opened inside: the front opens no file. */
	if (store_open_readonly(w.store, &st2, &e) == 0) {
		fprintf(stderr, "the store opened inside the sandbox\n");
		goto out;
	}
#endif
	ret = 0;
 out:
	store_close(st2);
	store_close(st);
	sqlite3_close(db);
	return ret;
}

static void
peer_store(struct child *c, void *arg)
{
	struct store_sync *sy = arg;
	char b;

	close(sy->to_parent[1]);
	close(sy->to_child[0]);
	if (read(sy->to_parent[0], &b, 1) == 1) {
		if (sqlite3_exec(w.db_rw, "INSERT INTO t VALUES (1000)", NULL,
		    NULL, NULL) != SQLITE_OK)
			print_message("# insert: %s\n", sqlite3_errmsg(w.db_rw));
		if (write(sy->to_child[1], "w", 1) != 1)
			die("write");
	}
	close(sy->to_parent[0]);
	close(sy->to_child[1]);
}

static void
test_store_readonly(void **state)
{
	struct store_sync sy;
	struct child c;

	if (pipe(sy.to_parent) == -1 || pipe(sy.to_child) == -1)
		die("pipe");
	run_child(child_store, &sy, peer_store, &sy, &c);
	assert_exit_ok(&c);
	assert_int_equal(sqlite3_exec(w.db_rw, "DELETE FROM t WHERE x = 1000",
	    NULL, NULL, NULL), SQLITE_OK);
}

/* ---- allowed: the odds and ends ---- */

static pthread_mutex_t mtx = PTHREAD_MUTEX_INITIALIZER;

static int
child_misc(void *arg)
{
	struct sockaddr_un sun;
	struct timespec ts = { 0, 1000000 };
	struct stat sb;
	unsigned char rnd[64];
	char *p, *q;
	DIR *dp;
	FILE *fp;
	int fd;

	/* SQLite opens before and fchown()s as root (below) */
	if ((fd = open(w.conf, O_RDONLY | O_CLOEXEC)) == -1)
		return 14;
	if (enter() != 0)
		return 2;
	/* files: a reload's come from the parent; opening one fails,
	 * without a trap (libraries that look for optional files go on) */
#ifndef SANDBOX_SANITIZER
	if ((fp = fopen(w.conf, "r")) != NULL || errno != EACCES ||
	    (dp = opendir(w.dir)) != NULL || errno != EACCES ||
	    syscall(SYS_open, w.victim, O_RDWR) != -1 || errno != EACCES ||
	    (fp = fopen(w.victim, "w")) != NULL || errno != EACCES) {
		fprintf(stderr, "a file opened inside: %s\n", strerror(errno));
		return 3;
	}
#else
	(void)fp;
	(void)dp;
#endif
	if (stat(w.conf, &sb) != 0 || access(w.conf, R_OK) != 0 ||
	    (p = realpath(w.conf, NULL)) == NULL)
		return 4;
	free(p);
	/* randomness, time, sleeping */
	if (getrandom(rnd, sizeof(rnd), 0) != (ssize_t)sizeof(rnd) ||
	    RAND_bytes(rnd, sizeof(rnd)) != 1 ||
	    RAND_priv_bytes(rnd, sizeof(rnd)) != 1)
		return 7;
	if (time(NULL) < 1700000000 || clock_gettime(CLOCK_MONOTONIC, &ts) ||
	    nanosleep(&(struct timespec){ 0, 1000000 }, NULL) != 0)
		return 8;
	/* memory: small, large (mmap), grown (mremap) */
	if ((p = malloc(64)) == NULL || (q = malloc(8 << 20)) == NULL)
		return 9;
	memset(q, 1, 8 << 20);
	if ((q = realloc(q, 32 << 20)) == NULL)
		return 10;
	free(q);
	free(p);
	if (pthread_mutex_lock(&mtx) != 0 || pthread_mutex_unlock(&mtx) != 0)
		return 11;
	/* who we are; signals to ourselves */
	if (sysconf(_SC_OPEN_MAX) < 0 || sysconf(_SC_NPROCESSORS_ONLN) < 1 ||
	    getuid() != geteuid() || kill(getpid(), 0) != 0)
		return 12;
	/* syslog(3) (there may be no /dev/log here), then the same calls
	 * on a socket that does exist */
	syslog(LOG_DAEMON | LOG_INFO, "sandbox test: syslog from the front");
	closelog();
	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", w.logsock);
	if ((fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1 ||
	    send(fd, "<30>front: logged", 17, MSG_NOSIGNAL) != 17)
		return 13;
	close(fd);
	/* refused, not fatal: SQLite's fchown as root */
	if (fchown(fd, 0, 0) != -1 || errno != EPERM) {
		fprintf(stderr, "fchown: %s\n", strerror(errno));
		return 15;
	}
	close(fd);
	return 0;
}

static void
test_misc(void **state)
{
	struct child c;
	char buf[64];
	ssize_t n;

	run_child(child_misc, NULL, NULL, NULL, &c);
	assert_exit_ok(&c);
	n = recv(w.log_fd, buf, sizeof(buf) - 1, MSG_DONTWAIT);
	assert_int_equal(n, 17);
	buf[n] = '\0';
	assert_string_equal(buf, "<30>front: logged");
}

/* abort() still works: it is not reported as a violation. */
static int
child_abort(void *arg)
{
	if (enter() != 0)
		return 2;
	abort();
}

static void
test_abort(void **state)
{
	struct child c;

	run_child(child_abort, NULL, NULL, NULL, &c);
	if (!WIFSIGNALED(c.status) || WTERMSIG(c.status) != SIGABRT)
		print_error("status 0x%x, stderr:\n%s\n", c.status, c.err);
	assert_true(WIFSIGNALED(c.status) && WTERMSIG(c.status) == SIGABRT);
	assert_null(strstr(c.err, "seccomp"));
}

/* Sanitizer builds: a leak in the front is still reported, so the leak
 * check and its report work inside the sandbox. */
#if defined(__SANITIZE_ADDRESS__)
#define LEAK_CHECK	1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define LEAK_CHECK	1
#endif
#endif

#ifdef LEAK_CHECK
static void *volatile leaked;

static __attribute__((noinline)) void
leak(void)
{
	if ((leaked = malloc(4242)) != NULL)
		memset(leaked, 0x42, 4242);
	leaked = NULL;
}

static int
child_leak(void *arg)
{
	if (enter() != 0)
		return 2;
	leak();
	return 0;
}

static void
test_leak_reported(void **state)
{
	const char *opt = getenv("ASAN_OPTIONS");
	struct child c;

	if (opt != NULL && strstr(opt, "detect_leaks=0") != NULL) {
		print_message("# ASAN_OPTIONS turns leak detection off\n");
		return;
	}
	run_child(child_leak, NULL, NULL, NULL, &c);
	if (!WIFEXITED(c.status) || WEXITSTATUS(c.status) == 0 ||
	    strstr(c.err, "4242 byte(s)") == NULL)
		print_error("status 0x%x, stderr:\n%s\n", c.status, c.err);
	assert_true(WIFEXITED(c.status));
	assert_int_not_equal(WEXITSTATUS(c.status), 0);
	assert_int_not_equal(WEXITSTATUS(c.status), SANDBOX_EXIT_VIOLATION);
	assert_non_null(strstr(c.err, "LeakSanitizer: detected memory leaks"));
	assert_non_null(strstr(c.err, "4242 byte(s)"));
}
#endif	/* LEAK_CHECK */

/* ---- forbidden ---- */

struct forbidden {
	const char	*test;		/* the test's name */
	const char	*name;		/* the system call, as reported */
	long		 nr;
	void		(*call)(void);
	int		 blocked;	/* made with SIGSYS blocked */
};

static char bin_true[] = "/bin/true";
static char *const no_argv[] = { bin_true, NULL };

static void f_execve(void) { execve("/bin/true", no_argv, no_argv + 1); }
static void f_execveat(void)
{
	syscall(SYS_execveat, AT_FDCWD, "/bin/true", no_argv, no_argv + 1, 0);
}
static void f_fork(void) { if (fork() == 0) _exit(0); }
static void *thread_main(void *a) { return a; }
static void f_thread(void)
{
	pthread_t t;

	if (pthread_create(&t, NULL, thread_main, NULL) == 0)
		pthread_join(t, NULL);
}
static void f_socket_inet(void) { socket(AF_INET, SOCK_STREAM, 0); }
static void f_socket_inet6(void) { socket(AF_INET6, SOCK_DGRAM, 0); }
static void f_socket_netlink(void) { socket(AF_NETLINK, SOCK_RAW, 0); }
static void f_socketpair_inet(void)
{
	int sv[2];

	socketpair(AF_INET, SOCK_STREAM, 0, sv);
}
static void f_bind(void)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_DGRAM, 0);

	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s/bound", w.dir);
	bind(fd, (struct sockaddr *)&sun, sizeof(sun));
}
static void f_listen(void) { listen(w.listen_fd, 5); }
static void f_ptrace(void) { ptrace(PTRACE_TRACEME, 0, NULL, NULL); }
static void f_setuid(void) { if (setuid(0)) return; }
static void f_setresuid(void) { if (setresuid(0, 0, 0)) return; }
static void f_setgid(void) { if (setgid(0)) return; }
static void f_mmap_exec(void)
{
	mmap(NULL, 4096, PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_ANONYMOUS,
	    -1, 0);
}
static void f_mprotect_exec(void)
{
	void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
	    MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p != MAP_FAILED)
		mprotect(p, 4096, PROT_READ | PROT_EXEC);
}
static void f_kill_parent(void) { kill(getppid(), 0); }
static void f_tiocsti(void) { char c = 'x'; ioctl(0, TIOCSTI, &c); }
static void f_fcntl_setown(void) { fcntl(w.log_fd, F_SETOWN, getpid()); }
static void f_unlink(void) { unlink(w.victim); }
static void f_rename(void)
{
	char to[600];

	snprintf(to, sizeof(to), "%s.moved", w.victim);
	rename(w.victim, to);
}
static void __attribute__((unused)) f_open_trunc(void)
{
	FILE *fp = fopen(w.victim, "w");

	if (fp != NULL)
		fclose(fp);
}
static void f_chmod(void) { chmod(w.victim, 0777); }
static void f_truncate(void) { if (truncate(w.victim, 0)) return; }
static void f_prctl(void) { prctl(PR_SET_NAME, "x", 0, 0, 0); }
static void f_prlimit_set(void)
{
	struct rlimit rl = { 1, 1 };

	setrlimit(RLIMIT_NOFILE, &rl);
}
/* Raw calls with arguments that would fail harmlessly if they ran. */
static void f_bpf(void) { syscall(SYS_bpf, 0, NULL, 0); }
static void f_keyctl(void) { syscall(SYS_keyctl, 0, 0, 0, 0, 0); }
static void f_personality(void) { syscall(SYS_personality, 0xffffffffUL); }
static void f_mount(void) { syscall(SYS_mount, NULL, NULL, NULL, 0, NULL); }
static void f_chroot(void) { syscall(SYS_chroot, NULL); }
static void f_setns(void) { syscall(SYS_setns, -1, 0); }
static void f_unshare(void) { syscall(SYS_unshare, 0); }
static void f_process_vm_readv(void)
{
	syscall(SYS_process_vm_readv, 0, NULL, 0, NULL, 0, 0);
}
static void f_seccomp(void) { syscall(SYS_seccomp, 0xffff, 0, NULL); }
static void f_io_uring(void) { syscall(SYS_io_uring_setup, 0, NULL); }
static void f_userfaultfd(void) { syscall(SYS_userfaultfd, 0xffffffff); }
static void f_perf(void) { syscall(SYS_perf_event_open, NULL, 0, -1, -1, 0); }
static void f_clone3(void) { syscall(SYS_clone3, NULL, 0); }
static void f_vfork_raw(void) { syscall(SYS_vfork); }

#define F(n, s, fn)	{ "forbidden " n, #s, SYS_##s, fn, 0 }
static const struct forbidden forbidden[] = {
	F("execve", execve, f_execve),
	F("execveat", execveat, f_execveat),
	F("fork", clone, f_fork),
	/* pthread_create blocks every signal around clone3: the kernel
	 * then kills with SIGSYS, no handler runs, nothing is said. */
	{ "forbidden a thread", "clone3", SYS_clone3, f_thread, 1 },
	F("clone3", clone3, f_clone3),
	F("vfork", vfork, f_vfork_raw),
	F("socket(AF_INET)", socket, f_socket_inet),
	F("socket(AF_INET6)", socket, f_socket_inet6),
	F("socket(AF_NETLINK)", socket, f_socket_netlink),
	F("socketpair(AF_INET)", socketpair, f_socketpair_inet),
	F("bind", bind, f_bind),
	F("listen", listen, f_listen),
	F("ptrace(PTRACE_TRACEME)", ptrace, f_ptrace),
	F("setuid(0)", setuid, f_setuid),
	F("setresuid(0)", setresuid, f_setresuid),
	F("setgid(0)", setgid, f_setgid),
	F("mmap(PROT_EXEC)", mmap, f_mmap_exec),
	F("mprotect(PROT_EXEC)", mprotect, f_mprotect_exec),
	F("kill(parent)", kill, f_kill_parent),
	F("ioctl(TIOCSTI)", ioctl, f_tiocsti),
	F("fcntl(F_SETOWN)", fcntl, f_fcntl_setown),
	F("unlink", unlink, f_unlink),
	F("rename", rename, f_rename),
#ifdef SANDBOX_SANITIZER
	/* Elsewhere every open fails with EACCES (child_misc). */
	F("open(O_TRUNC)", openat, f_open_trunc),
#endif
	F("chmod", chmod, f_chmod),
	F("truncate", truncate, f_truncate),
	F("prctl(PR_SET_NAME)", prctl, f_prctl),
	F("setrlimit", prlimit64, f_prlimit_set),
	F("bpf", bpf, f_bpf),
	F("keyctl", keyctl, f_keyctl),
	F("personality", personality, f_personality),
	F("mount", mount, f_mount),
	F("chroot", chroot, f_chroot),
	F("setns", setns, f_setns),
	F("unshare", unshare, f_unshare),
	F("process_vm_readv", process_vm_readv, f_process_vm_readv),
	F("seccomp", seccomp, f_seccomp),
	F("io_uring_setup", io_uring_setup, f_io_uring),
	F("userfaultfd", userfaultfd, f_userfaultfd),
	F("perf_event_open", perf_event_open, f_perf),
};
#undef F
#define NFORBIDDEN	(sizeof(forbidden) / sizeof(forbidden[0]))

static int
child_forbidden(void *arg)
{
	const struct forbidden *f = arg;

	if (enter() != 0)
		return 2;
	f->call();
	fprintf(stderr, "%s: survived\n", f->name);
	return 0;
}

static void
test_forbidden(void **state)
{
	const struct forbidden *f = *state;
	struct child c;
	char want[128];
	struct stat sb;

	run_child(child_forbidden, (void *)f, NULL, NULL, &c);
	if (f->blocked) {
		if (!WIFSIGNALED(c.status) || WTERMSIG(c.status) != SIGSYS)
			print_error("%s: status 0x%x, stderr:\n%s\n", f->test,
			    c.status, c.err);
		assert_true(WIFSIGNALED(c.status));
		assert_int_equal(WTERMSIG(c.status), SIGSYS);
		return;
	}
	snprintf(want, sizeof(want), "hsmcad front: seccomp: system call %ld "
	    "(%s) is not allowed\n", f->nr, f->name);
	if (!WIFEXITED(c.status) ||
	    WEXITSTATUS(c.status) != SANDBOX_EXIT_VIOLATION ||
	    strstr(c.err, want) == NULL)
		print_error("%s: status 0x%x, want \"%s\", stderr:\n%s\n",
		    f->test, c.status, want, c.err);
	assert_true(WIFEXITED(c.status));
	assert_int_equal(WEXITSTATUS(c.status), SANDBOX_EXIT_VIOLATION);
	assert_non_null(strstr(c.err, want));
	/* Never executed: the victim is still there, untouched. */
	assert_int_equal(stat(w.victim, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(sb.st_size, 6);
}

/* ---- the world ---- */

static void
write_text(const char *path, const char *text, mode_t mode)
{
	FILE *fp;

	if ((fp = fopen(path, "w")) == NULL || fputs(text, fp) == EOF ||
	    fclose(fp) != 0 || chmod(path, mode) != 0)
		die(path);
}

static int
verify_any(int ok, X509_STORE_CTX *x)
{
	return 1;	/* a client certificate is asked for, and accepted */
}

static int
world_setup(void **state)
{
	struct sockaddr_un sun;
	socklen_t len = sizeof(w.listen_addr);
	struct hsmca_err e;
	time_t now = time(NULL);
	FILE *fp;

	w.dir = tu_tmpdir();
	snprintf(w.conf, sizeof(w.conf), "%s/hsmca.conf", w.dir);
	snprintf(w.trust, sizeof(w.trust), "%s/trust.pem", w.dir);
	snprintf(w.db, sizeof(w.db), "%s/raw.db", w.dir);
	snprintf(w.store, sizeof(w.store), "%s/store.db", w.dir);
	snprintf(w.victim, sizeof(w.victim), "%s/victim", w.dir);
	snprintf(w.logsock, sizeof(w.logsock), "%s/log", w.dir);
	write_text(w.conf, "[hsm]\nmodule = /usr/lib/softhsm/libsofthsm2.so\n"
	    "token = pkcs11:token=hsmca\npin-source = env:HSMCA_PIN\n\n"
	    "[store]\npath = /var/lib/hsmca/hsmca.db\n", 0644);
	write_text(w.victim, "intact", 0600);

	w.key = tu_keygen("ec:P-256");
	w.cert = tu_make_ca(w.key, "CN=localhost", now - 3600, now + 3600);
	if ((fp = fopen(w.trust, "w")) == NULL ||
	    PEM_write_X509(fp, w.cert) != 1 || fclose(fp) != 0)
		die(w.trust);
	if ((w.srv = SSL_CTX_new(TLS_server_method())) == NULL ||
	    SSL_CTX_use_certificate(w.srv, w.cert) != 1 ||
	    SSL_CTX_use_PrivateKey(w.srv, w.key) != 1 ||
	    (w.cli = SSL_CTX_new(TLS_client_method())) == NULL ||
	    SSL_CTX_use_certificate(w.cli, w.cert) != 1 ||
	    SSL_CTX_use_PrivateKey(w.cli, w.key) != 1)
		die("SSL_CTX");
	SSL_CTX_set_verify(w.srv, SSL_VERIFY_PEER |
	    SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_any);

	/* A raw WAL database the parent keeps writing to, and a store. */
	if (sqlite3_open(w.db, &w.db_rw) != SQLITE_OK ||
	    sqlite3_exec(w.db_rw, "PRAGMA journal_mode=WAL;"
	    "CREATE TABLE t(x INTEGER);"
	    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n "
	    "WHERE i < 100) INSERT INTO t SELECT i FROM n;", NULL, NULL,
	    NULL) != SQLITE_OK)
		die("sqlite");
	if (store_open(w.store, &w.st_rw, &e) != 0) {
		fprintf(stderr, "store_open: %s\n", e.msg);
		exit(1);
	}

	/* EST's listener, bound by the parent before the front starts;
	 * non-blocking, or libevent's accept loop would block in accept4. */
	w.listen_addr.sin_family = AF_INET;
	w.listen_addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if ((w.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) ==
	    -1 || bind(w.listen_fd, (struct sockaddr *)&w.listen_addr,
	    sizeof(w.listen_addr)) == -1 || listen(w.listen_fd, 16) == -1 ||
	    getsockname(w.listen_fd, (struct sockaddr *)&w.listen_addr,
	    &len) == -1)
		die("listen");

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	snprintf(sun.sun_path, sizeof(sun.sun_path), "%s", w.logsock);
	if ((w.log_fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1 ||
	    bind(w.log_fd, (struct sockaddr *)&sun, sizeof(sun)) == -1)
		die("log socket");
	return 0;
}

static int
world_teardown(void **state)
{
	close(w.log_fd);
	close(w.listen_fd);
	store_close(w.st_rw);
	sqlite3_close(w.db_rw);
	SSL_CTX_free(w.srv);
	SSL_CTX_free(w.cli);
	X509_free(w.cert);
	EVP_PKEY_free(w.key);
	tu_rmtree(w.dir);
	free(w.dir);
	return 0;
}

int
main(void)
{
	struct CMUnitTest tests[5 + NFORBIDDEN];
	size_t n = 0;

	signal(SIGPIPE, SIG_IGN);
	/* SANDBOX_TEST=pattern runs some cases only (cmocka's filter). */
	if (getenv("SANDBOX_TEST") != NULL)
		cmocka_set_test_filter(getenv("SANDBOX_TEST"));
	if (evthread_use_pthreads() != 0)
		die("evthread_use_pthreads");
	/* As hsmcad: OpenSSL reads its config before any sandbox. */
	OPENSSL_init_ssl(OPENSSL_INIT_LOAD_CONFIG, NULL);
	memset(tests, 0, sizeof(tests));
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_front_loop);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_store_readonly);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_misc);
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_abort);
#ifdef LEAK_CHECK
	/* Only there: cmocka's TAP says "not ok" for a skip. */
	tests[n++] = (struct CMUnitTest)cmocka_unit_test(test_leak_reported);
#endif
	for (size_t i = 0; i < NFORBIDDEN; i++) {
		tests[n].name = forbidden[i].test;
		tests[n].test_func = test_forbidden;
		tests[n].initial_state = (void *)&forbidden[i];
		n++;
	}
	return _cmocka_run_group_tests("sandbox", tests, n, world_setup,
	    world_teardown);
}
