/* front-fault.c: an LD_PRELOAD shim for tests that makes hsmcad's front
 * fail to set up a connection, as it would without memory, so what the
 * front does then is proved against real clients (tls-fallback.t).
 *
 * Environment (each names a control file; unset: never):
 *   FRONT_FAULT_SSL_NEW   SSL_new returns NULL
 *   FRONT_FAULT_BEVCB     evhttp's bufferevent callback returns NULL
 *                         without being called, as one that failed did
 *                         before hsmcad's fix: libevent then serves the
 *                         connection over a plain socket of its own
 *   FRONT_FAULT_BUFFEREVENT  bufferevent_socket_new returns NULL
 *   FRONT_FAULT_CLOCK     not a fault: while the file exists, hsmcad's
 *                         clock (HSMCA_NOW, lib/clock.c) is its mtime,
 *                         in every process (touch -d @T moves it)
 *
 * A control file's size in bytes is how many calls fail from when it
 * last changed (write a new file and rename it over the old one). The
 * shim only stat()s it: the front's sandbox opens no file. Each fault
 * injected is told on stderr (hsmcad's log in the tests), with write(2)
 * alone, which the sandbox allows. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/http.h>
#include <openssl/ssl.h>

enum fault {
	FAULT_SSL_NEW,
	FAULT_BEVCB,
	FAULT_BUFFEREVENT,
	FAULT_MAX
};

static const char *const fault_env[FAULT_MAX] = {
	"FRONT_FAULT_SSL_NEW", "FRONT_FAULT_BEVCB", "FRONT_FAULT_BUFFEREVENT"
};

static const char *const fault_what[FAULT_MAX] = {
	"SSL_new", "evhttp bufferevent callback", "bufferevent_socket_new"
};

/* A control file as last seen, and the faults left from it. */
static struct control {
	const char	*path;
	dev_t		 dev;
	ino_t		 ino;
	struct timespec	 mtime;
	off_t		 size;
	long		 left;
} controls[FAULT_MAX];

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

static SSL *(*real_SSL_new)(SSL_CTX *);
static void (*real_set_bevcb)(struct evhttp *,
    struct bufferevent *(*)(struct event_base *, void *), void *);
static struct bufferevent *(*real_bufferevent_socket_new)(
    struct event_base *, evutil_socket_t, int);

/* Resolved at load, before the sandbox (dlsym may allocate). */
__attribute__((constructor)) static void
front_fault_init(void)
{
	for (int i = 0; i < FAULT_MAX; i++)
		controls[i].path = getenv(fault_env[i]);
	real_SSL_new = (SSL *(*)(SSL_CTX *))dlsym(RTLD_NEXT, "SSL_new");
	real_set_bevcb = (void (*)(struct evhttp *, struct bufferevent *(*)(
	    struct event_base *, void *), void *))dlsym(RTLD_NEXT,
	    "evhttp_set_bevcb");
	real_bufferevent_socket_new = (struct bufferevent *(*)(
	    struct event_base *, evutil_socket_t, int))dlsym(RTLD_NEXT,
	    "bufferevent_socket_new");
}

static void
say(const char *what, long left)
{
	char line[128];
	int n;

	n = snprintf(line, sizeof(line), "front-fault: %s fails (%ld more)\n",
	    what, left);
	if (n > 0 && (size_t)n < sizeof(line))
		(void)!write(STDERR_FILENO, line, (size_t)n);
}

/* 1 if this call of fault f is to fail. */
static int
inject(enum fault f)
{
	struct control *c = &controls[f];
	struct stat st;
	int fail = 0;

	if (c->path == NULL)
		return 0;
	pthread_mutex_lock(&mu);
	if (stat(c->path, &st) == 0 && (st.st_dev != c->dev ||
	    st.st_ino != c->ino || st.st_size != c->size ||
	    st.st_mtim.tv_sec != c->mtime.tv_sec ||
	    st.st_mtim.tv_nsec != c->mtime.tv_nsec)) {
		c->dev = st.st_dev;
		c->ino = st.st_ino;
		c->size = st.st_size;
		c->mtime = st.st_mtim;
		c->left = (long)st.st_size;
	}
	if (c->left > 0) {
		c->left--;
		fail = 1;
		say(fault_what[f], c->left);
	}
	pthread_mutex_unlock(&mu);
	return fail;
}

SSL *
SSL_new(SSL_CTX *ctx)
{
	if (inject(FAULT_SSL_NEW))
		return NULL;
	return real_SSL_new(ctx);
}

struct bufferevent *
bufferevent_socket_new(struct event_base *base, evutil_socket_t fd,
    int options)
{
	if (inject(FAULT_BUFFEREVENT))
		return NULL;
	return real_bufferevent_socket_new(base, fd, options);
}

/* getenv, as the C library's but for HSMCA_NOW under FRONT_FAULT_CLOCK
 * (read by name each time: it may be called before the constructor). */
extern char **environ;

char *
getenv(const char *name)
{
	static __thread char now[32];
	const char *clock;
	struct stat st;
	size_t n;

	if (strchr(name, '=') != NULL)
		return NULL;
	n = strlen(name);
	if (strcmp(name, "HSMCA_NOW") == 0 &&
	    (clock = getenv("FRONT_FAULT_CLOCK")) != NULL &&
	    stat(clock, &st) == 0) {
		snprintf(now, sizeof(now), "%lld", (long long)st.st_mtime);
		return now;
	}
	for (char **e = environ; e != NULL && *e != NULL; e++)
		if (strncmp(*e, name, n) == 0 && (*e)[n] == '=')
			return *e + n + 1;
	return NULL;
}

/* The callbacks hsmcad gave evhttp, one per listener. */
#define BEVCB_MAX	8
static struct bevcb {
	struct bufferevent	*(*cb)(struct event_base *, void *);
	void			*arg;
} bevcbs[BEVCB_MAX];
static int nbevcbs;

static struct bufferevent *
bevcb_wrap(struct event_base *base, void *arg)
{
	struct bevcb *b = arg;

	if (inject(FAULT_BEVCB))
		return NULL;
	return b->cb(base, b->arg);
}

void
evhttp_set_bevcb(struct evhttp *http,
    struct bufferevent *(*cb)(struct event_base *, void *), void *arg)
{
	struct bevcb *b;

	if (cb == NULL || nbevcbs == BEVCB_MAX) {
		real_set_bevcb(http, cb, arg);
		return;
	}
	b = &bevcbs[nbevcbs++];
	b->cb = cb;
	b->arg = arg;
	real_set_bevcb(http, bevcb_wrap, b);
}
