/* listener.c: the front's listening sockets, and what they may hold.
 *
 * A connection is counted when it is accepted (evhttp asks tls.c for its
 * bufferevent then) until it closes, against its listener's cap
 * ([daemon] max-connections for EST, max-http-connections for plain HTTP,
 * [admin] max-connections) and against the descriptors the front may
 * hold. A listener at its cap stops handing connections to evhttp: until
 * one of its connections closes, it accepts each new one and closes it at
 * once (plain HTTP: after a short 503), so a flood costs a descriptor for
 * an instant and no memory, and nothing waits in the backlog.
 *
 * accept() failing for want of descriptors or memory (EMFILE, ENFILE:
 * the limit lowered under a running front, other processes) would leave
 * the listening socket readable and the loop spinning on it: the listener
 * pauses instead, and tries again a second later or as soon as one of the
 * front's connections closes.
 *
 * A connection the front cannot set up (no memory for its TLS state or
 * its deadline) is closed unserved. Handing evhttp no bufferevent for it
 * would not do: libevent 2.1 then makes a plain one of its own and
 * serves the connection in clear text, on a TLS port too, uncounted. So
 * each listener holds one bufferevent made ready while there was memory
 * (its spare), which serves nothing: the first bytes that arrive are
 * dropped and shut the socket down, evhttp sees the end and frees it
 * without a word (a client that sends nothing meets evhttp's idle
 * timeout). A listener without a spare accepts nothing until it has one
 * again.
 *
 * The log tells the first refusal or failure at once, then at most once a
 * minute per listener how many followed.
 */
#include "config.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "hsmca/err.h"

#include "hsmcad.h"
#include "log.h"

/* The front's own descriptors besides its connections: stdio, the store
 * and its WAL files, the signer's and the key channel, the status pipe,
 * syslog, the loop's epoll and wakeups, the listening sockets, the files
 * a reload reads, and a connection being refused. About 20 are open at
 * any time; the rest is slack. */
#define LISTENER_RESERVE	64
#define LISTENER_MIN_BUDGET	16	/* connections, at the least */
#define LISTENER_REFUSE_BATCH	64	/* refusals per wakeup */
#define LISTENER_PAUSE_SECONDS	1
#define LISTENER_REPORT_SECONDS	60

enum listener_mode {
	LISTENER_ACCEPTING,	/* evhttp's listener accepts */
	LISTENER_REFUSING,	/* at its cap: refuse_ev accepts and closes */
	LISTENER_PAUSED,	/* accept failed: nothing until resume_ev */
};

struct listener {
	struct hsmcad		*d;
	enum listener_kind	 kind;
	struct evhttp		*http;
	struct evhttp_bound_socket *bound;	/* NULL: not started, or stopped */
	struct evconnlistener	*lev;
	enum listener_mode	 mode;
	int			 open;		/* accepted and not yet closed */
	struct event		*refuse_ev;
	struct event		*resume_ev;
	struct event		*report_ev;	/* a minute's counts to the log */
	/* A connection that could not be set up gets it (listener_unserved). */
	struct bufferevent	*spare;
	/* The log said so, and how many since its last line. */
	int			 refusing, failing, unserving;
	unsigned long		 refused, failed, unserved;
	int			 error;		/* accept()'s last errno */
	unsigned long long	 refused_total, failed_total;	/* /metrics */
};

static const struct listener_name {
	const char	*what;		/* in the log */
	const char	*label;		/* in /metrics */
	const char	*key;		/* its cap in hsmca.conf */
} listener_names[LISTENER_MAX] = {
	[LISTENER_EST] =	{ "EST", "est", "max-connections" },
	[LISTENER_ADMIN] =	{ "admin API", "admin", "[admin] max-connections" },
	[LISTENER_HTTP] =	{ "HTTP", "http", "max-http-connections" },
};

static struct listener	listeners[LISTENER_MAX];
static int		listener_budget = INT_MAX;	/* all of them together */

/* For the log: the limit now (lowered under us, maybe). */
static long long
listener_nofile(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
		return -1;
	return (long long)rl.rlim_cur;
}

static int
listener_cap_of(const struct config *cfg, enum listener_kind kind)
{
	switch (kind) {
	case LISTENER_ADMIN:
		return cfg->admin.max_connections;
	case LISTENER_HTTP:
		return cfg->daemon.max_http_connections;
	default:
		return cfg->daemon.max_connections;
	}
}

static int
listener_cap(const struct listener *l)
{
	return listener_cap_of(l->d->rt->cfg, l->kind);
}

static int
listener_full(const struct listener *l)
{
	return l->open >= listener_cap(l) || l->d->nconn >= listener_budget;
}

static void
listener_set_mode(struct listener *l, enum listener_mode mode)
{
	if (l->mode == mode)
		return;
	if (l->mode == LISTENER_ACCEPTING)
		evconnlistener_disable(l->lev);
	else if (l->mode == LISTENER_REFUSING)
		event_del(l->refuse_ev);
	if (mode == LISTENER_ACCEPTING)
		evconnlistener_enable(l->lev);
	else if (mode == LISTENER_REFUSING)
		event_add(l->refuse_ev, NULL);
	l->mode = mode;
}

/* Accept or refuse, by the counts now (a pause ends on its own). */
static void
listener_update(struct listener *l)
{
	if (l->bound == NULL || l->mode == LISTENER_PAUSED)
		return;
	listener_set_mode(l, listener_full(l) ? LISTENER_REFUSING :
	    LISTENER_ACCEPTING);
}

static void
listener_report_arm(struct listener *l)
{
	struct timeval tv = { LISTENER_REPORT_SECONDS, 0 };

	if (!evtimer_pending(l->report_ev, NULL))
		evtimer_add(l->report_ev, &tv);
}

/* What followed the log's last line; after a quiet minute, the next
 * refusal or failure is told at once again. */
static void
listener_report(struct listener *l)
{
	const struct listener_name *n = &listener_names[l->kind];

	if (l->refused > 0)
		log_warnx("%s listener: %lu more connections refused (%d open, "
		    "%s %d; %d open in all, at most %d)", n->what, l->refused,
		    l->open, n->key, listener_cap(l), l->d->nconn,
		    listener_budget);
	else
		l->refusing = 0;
	if (l->failed > 0)
		log_warnx("%s listener: accept failed %lu more times, last: %s "
		    "(%d connections open in all, descriptor limit %lld)",
		    n->what, l->failed, strerror(l->error), l->d->nconn,
		    listener_nofile());
	else
		l->failing = 0;
	if (l->unserved > 0)
		log_warnx("%s listener: %lu more connections could not be set "
		    "up: closed unserved", n->what, l->unserved);
	else
		l->unserving = 0;
	l->refused = l->failed = l->unserved = 0;
}

static void
listener_report_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;

	listener_report(l);
	if (l->refusing || l->failing || l->unserving)
		listener_report_arm(l);
}

static void
listener_refused(struct listener *l)
{
	const struct listener_name *n = &listener_names[l->kind];

	l->refused_total++;
	if (l->refusing) {
		l->refused++;
		return;
	}
	if (l->open >= listener_cap(l))
		log_warnx("%s listener: %d connections open (%s): refusing "
		    "new ones", n->what, l->open, n->key);
	else
		log_warnx("%s listener: %d connections open in all, the most "
		    "the descriptor limit allows: refusing new ones", n->what,
		    l->d->nconn);
	l->refusing = 1;
	listener_report_arm(l);
}

/* accept() failed: no spinning on a listening socket that stays
 * readable. */
static void
listener_failed(struct listener *l, int error)
{
	const struct listener_name *n = &listener_names[l->kind];
	struct timeval tv = { LISTENER_PAUSE_SECONDS, 0 };

	l->failed_total++;
	l->error = error;
	listener_set_mode(l, LISTENER_PAUSED);
	evtimer_add(l->resume_ev, &tv);
	if (l->failing) {
		l->failed++;
		return;
	}
	log_warnx("%s listener: accept: %s (%d connections open in all, "
	    "descriptor limit %lld): pausing it", n->what, strerror(error),
	    l->d->nconn, listener_nofile());
	l->failing = 1;
	listener_report_arm(l);
}

/* The spare's bytes: whatever arrives is dropped before evhttp could
 * parse it, and the socket is shut down, so evhttp sees the end. */
static void
listener_spare_input(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct bufferevent *bev = arg;

	if (info->n_added == 0)
		return;
	evbuffer_drain(buf, evbuffer_get_length(buf));
	(void)shutdown(bufferevent_getfd(bev), SHUT_RDWR);
}

static struct bufferevent *
listener_spare_new(struct listener *l)
{
	struct bufferevent *bev;

	if ((bev = bufferevent_socket_new(l->d->base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL)
		return NULL;
	if (evbuffer_add_cb(bufferevent_get_input(bev), listener_spare_input,
	    bev) == NULL) {
		bufferevent_free(bev);
		return NULL;
	}
	return bev;
}

static void
listener_resume_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	struct timeval tv = { LISTENER_PAUSE_SECONDS, 0 };

	if (l->bound == NULL || l->mode != LISTENER_PAUSED)
		return;
	if (l->spare == NULL && (l->spare = listener_spare_new(l)) == NULL) {
		evtimer_add(l->resume_ev, &tv);
		return;
	}
	listener_set_mode(l, listener_full(l) ? LISTENER_REFUSING :
	    LISTENER_ACCEPTING);
}

/* libevent's listener: accept() failed with something other than
 * EAGAIN, EINTR or ECONNABORTED. */
static void
listener_error_cb(struct evconnlistener *lev, void *arg)
{
	int error = EVUTIL_SOCKET_ERROR();

	for (int i = 0; i < LISTENER_MAX; i++)
		if (listeners[i].bound != NULL && listeners[i].lev == lev) {
			listener_failed(&listeners[i], error);
			return;
		}
}

/* A plain HTTP client over the cap is told so, in a line of text (the
 * headers alone if what came is a HEAD): what it sent already is read
 * first, so that closing does not reset the connection under the
 * answer. Nothing waits for either. */
static void
listener_refuse_http(struct listener *l, int s)
{
	static const char why[] = "too many connections open "
	    "(max-http-connections): try again later\n";
	char buf[2048];
	ssize_t got;
	int head, n;

	got = recv(s, buf, sizeof(buf), MSG_DONTWAIT);
	head = got >= 5 && memcmp(buf, "HEAD ", 5) == 0;
	n = snprintf(buf, sizeof(buf), "HTTP/1.1 503 Service Unavailable\r\n"
	    "Content-Type: text/plain; charset=utf-8\r\n"
	    "Retry-After: %d\r\nContent-Length: %zu\r\nConnection: close\r\n"
	    "\r\n%s", l->d->rt->cfg->daemon.retry_after, sizeof(why) - 1,
	    head ? "" : why);
	if (n > 0 && (size_t)n < sizeof(buf))
		(void)send(s, buf, (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
}

/* At the cap: accept what waits, and close it. */
static void
listener_refuse_cb(evutil_socket_t fd, short what, void *arg)
{
	struct listener *l = arg;
	int s;

	/* A reload raised the cap: evhttp's listener takes what waits. */
	if (!listener_full(l)) {
		listener_update(l);
		return;
	}
	for (int i = 0; i < LISTENER_REFUSE_BATCH; i++) {
		if ((s = accept4(fd, NULL, NULL, SOCK_NONBLOCK |
		    SOCK_CLOEXEC)) == -1) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				listener_failed(l, errno);
			return;
		}
		if (l->kind == LISTENER_HTTP)
			listener_refuse_http(l, s);
		close(s);
		listener_refused(l);
	}
}

void
listener_start(struct hsmcad *d, enum listener_kind kind, struct evhttp *http,
    int fd)
{
	struct listener *l = &listeners[kind];
	evutil_socket_t lfd;

	memset(l, 0, sizeof(*l));
	l->d = d;
	l->kind = kind;
	l->http = http;
	evhttp_set_bevcb(http, kind == LISTENER_HTTP ? tls_plain_bevcb :
	    kind == LISTENER_ADMIN ? admin_bevcb : tls_bevcb, l);
	if ((l->bound = evhttp_accept_socket_with_handle(http, fd)) == NULL)
		fatalx("cannot accept on an inherited socket");
	l->lev = evhttp_bound_socket_get_listener(l->bound);
	lfd = evconnlistener_get_fd(l->lev);
	evconnlistener_set_error_cb(l->lev, listener_error_cb);
	if ((l->refuse_ev = event_new(d->base, lfd, EV_READ | EV_PERSIST,
	    listener_refuse_cb, l)) == NULL ||
	    (l->resume_ev = evtimer_new(d->base, listener_resume_cb, l)) ==
	    NULL ||
	    (l->report_ev = evtimer_new(d->base, listener_report_cb, l)) ==
	    NULL || (l->spare = listener_spare_new(l)) == NULL)
		fatalx("libevent setup failed");
	l->mode = LISTENER_ACCEPTING;
}

/* SIGTERM: no more connections; those open finish. */
void
listener_stop_all(void)
{
	struct listener *l;

	for (int i = 0; i < LISTENER_MAX; i++) {
		if ((l = &listeners[i])->bound == NULL)
			continue;
		listener_report(l);
		event_free(l->refuse_ev);
		event_free(l->resume_ev);
		event_free(l->report_ev);
		l->refuse_ev = l->resume_ev = l->report_ev = NULL;
		if (l->spare != NULL)
			bufferevent_free(l->spare);
		l->spare = NULL;
		/* Frees the listener and closes the socket. */
		evhttp_del_accept_socket(l->http, l->bound);
		l->bound = NULL;
		l->lev = NULL;
	}
}

int
listener_nofile_plan(const struct config *cfg, const struct rlimit *rl,
    int raise, struct listener_nofile *p, struct hsmca_err *e)
{
	long want = LISTENER_RESERVE;
	char caps[256];
	size_t off = 0;
	int n, cap, nofile;

	memset(p, 0, sizeof(*p));
	for (int i = 0; i < LISTENER_MAX; i++) {
		if (daemon_listen_addr(cfg, (enum listener_kind)i) == NULL)
			continue;
		cap = listener_cap_of(cfg, (enum listener_kind)i);
		want += cap;
		n = snprintf(caps + off, sizeof(caps) - off, "%s %d + ",
		    listener_names[i].key, cap);
		if (n > 0 && (size_t)n < sizeof(caps) - off)
			off += (size_t)n;
	}
	caps[off] = '\0';
	p->soft = rl->rlim_cur;
	if (raise && p->soft != RLIM_INFINITY && p->soft < (rlim_t)want &&
	    p->soft < rl->rlim_max)
		p->soft = rl->rlim_max;
	nofile = p->soft == RLIM_INFINITY || p->soft > INT_MAX ? INT_MAX :
	    (int)p->soft;
	/* Too few for a listener to serve at all: no start. */
	if (nofile < LISTENER_RESERVE + LISTENER_MIN_BUDGET)
		return err_set(e, HSMCA_ERR_CONFIG, "the descriptor limit (%d, "
		    "hard limit %lld) leaves fewer than %d connections: raise "
		    "it (LimitNOFILE)", nofile, rl->rlim_max == RLIM_INFINITY ?
		    -1LL : (long long)rl->rlim_max, LISTENER_MIN_BUDGET);
	p->budget = nofile - LISTENER_RESERVE;
	/* Fewer than the caps: the budget holds (every listener refuses
	 * as at its cap beyond it); a default config must still start. */
	if (nofile < want)
		snprintf(p->warning, sizeof(p->warning), "the descriptor limit "
		    "(%d, hard limit %lld) is below the %ld the listeners may "
		    "need (%s%d of its own): at most %d connections at once; "
		    "raise it (LimitNOFILE) or lower the caps", nofile,
		    rl->rlim_max == RLIM_INFINITY ? -1LL :
		    (long long)rl->rlim_max, want, caps, LISTENER_RESERVE,
		    p->budget);
	return 0;
}

int
listener_nofile_check(struct hsmcad *d, struct hsmca_err *e)
{
	struct listener_nofile p;
	struct rlimit rl;
	int ret;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		return err_set(e, HSMCA_ERR_INTERNAL, "RLIMIT_NOFILE: %s",
		    strerror(errno));
	if ((ret = listener_nofile_plan(d->rt->cfg, &rl, 1, &p, e)) != 0)
		return ret;
	if (p.soft != rl.rlim_cur) {
		rl.rlim_cur = p.soft;
		/* Not raised after all: the limit as it is. */
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
			if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
				return err_set(e, HSMCA_ERR_INTERNAL,
				    "RLIMIT_NOFILE: %s", strerror(errno));
			if ((ret = listener_nofile_plan(d->rt->cfg, &rl, 0, &p,
			    e)) != 0)
				return ret;
		}
	}
	listener_budget = p.budget;
	if (p.warning[0] != '\0')
		log_warnx("%s", p.warning);
	log_debug("descriptor limit %lld: at most %d connections at once",
	    p.soft == RLIM_INFINITY ? -1LL : (long long)p.soft,
	    listener_budget);
	return 0;
}

struct hsmcad *
listener_daemon(struct listener *l)
{
	return l->d;
}

void
listener_opened(struct listener *l)
{
	l->open++;
	l->d->nconn++;
	if (l->d->nconn >= listener_budget) {
		for (int i = 0; i < LISTENER_MAX; i++)
			listener_update(&listeners[i]);
	} else
		listener_update(l);
}

void
listener_closed(struct listener *l)
{
	static const struct timeval now = { 0, 0 };
	struct listener *o;

	l->open--;
	l->d->nconn--;
	/* A descriptor is free again; the paused retry on the next turn
	 * of the loop, once the connection's socket is closed. */
	for (int i = 0; i < LISTENER_MAX; i++) {
		if ((o = &listeners[i])->bound == NULL)
			continue;
		if (o->mode == LISTENER_PAUSED)
			evtimer_add(o->resume_ev, &now);
		else if (o == l || o->mode == LISTENER_REFUSING)
			listener_update(o);
	}
}

struct bufferevent *
listener_unserved(struct listener *l)
{
	const struct listener_name *n = &listener_names[l->kind];
	struct timeval tv = { LISTENER_PAUSE_SECONDS, 0 };
	struct bufferevent *bev = l->spare;

	/* The next one, or no accept until there is one. */
	if ((l->spare = listener_spare_new(l)) == NULL) {
		listener_set_mode(l, LISTENER_PAUSED);
		evtimer_add(l->resume_ev, &tv);
	}
	if (l->unserving)
		l->unserved++;
	else {
		log_warnx("%s listener: a connection could not be set up "
		    "(out of memory?): closed unserved%s", n->what,
		    l->spare == NULL ? "; pausing the listener" : "");
		l->unserving = 1;
		listener_report_arm(l);
	}
	return bev;
}

void
listener_metrics(struct evbuffer *b)
{
	static const char *const help[] = {
		"hsmca_connections Open connections, counted from accept to "
		    "close.\n# TYPE hsmca_connections gauge",
		"hsmca_connections_refused_total Connections closed at "
		    "accept: their listener was at its cap.\n"
		    "# TYPE hsmca_connections_refused_total counter",
		"hsmca_accept_errors_total accept() failures (no descriptor "
		    "left): the listener pauses.\n"
		    "# TYPE hsmca_accept_errors_total counter",
	};
	static const char *const name[] = { "hsmca_connections",
	    "hsmca_connections_refused_total", "hsmca_accept_errors_total" };
	const struct listener *l;

	for (size_t m = 0; m < sizeof(name) / sizeof(name[0]); m++) {
		evbuffer_add_printf(b, "# HELP %s\n", help[m]);
		for (int i = 0; i < LISTENER_MAX; i++) {
			if ((l = &listeners[i])->d == NULL)
				continue;
			evbuffer_add_printf(b, "%s{listener=\"%s\"} %llu\n",
			    name[m], listener_names[i].label, m == 0 ?
			    (unsigned long long)l->open : m == 1 ?
			    l->refused_total : l->failed_total);
		}
	}
}
