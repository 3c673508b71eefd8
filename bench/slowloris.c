/*
 * slowloris: N connections to HOST:PORT that each send a request a byte at
 * a time and never finish it, to see whether the server drops them. Reports
 * how many connections were opened, how many the server closed and when.
 *
 *   slowloris [-m http|tls|handshake] [-n N] [-i SECONDS] [-j SECONDS]
 *             [-d SECONDS] [-r] [-g SECONDS] [-c CERT -k KEY] HOST PORT
 *
 *   -m http       plain TCP, an HTTP request's headers dribbled (default)
 *   -m tls        a full TLS handshake (client certificate if -c/-k), then
 *                 the headers dribbled inside TLS
 *   -m handshake  a TLS ClientHello dribbled, the handshake never finished
 *   -n N          connections (1)
 *   -i SECONDS    between two bytes of one connection (1; decimals allowed)
 *   -j SECONDS    spread: each connection's interval is -i plus a random
 *                 part of this, so they do not move in lock-step (0)
 *   -d SECONDS    stop after this long (60); every loop here is bounded
 *   -r            reconnect: a connection the server closes is opened again
 *                 at once, so N dribble for the whole -d (an attack, and
 *                 the load of a benchmark)
 *   -g SECONDS    with -r: after -d, stop reconnecting and give the server
 *                 this long to close the rest (0)
 *
 * When the first N are open it says so on stderr ("slowloris: N open");
 * SIGTERM or SIGINT ends it early. At the end, one line on stdout:
 * opened=N (connections, reconnections included) refused=N (connect or
 * TLS handshake failed) closed=N (by the server) open=N (still open at
 * the end, closed by us) and, over the connections the server closed,
 * the seconds from connect to close: min=S p50=S max=S. The exit status is 0 when no connection was refused,
 * whatever the server then did. No certificate is verified: it is the
 * server's behaviour under load that is measured, not its identity.
 */

#include <sys/socket.h>
#include <sys/time.h>
#include <sys/resource.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <err.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netdb.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/ssl.h>

#define SLOW_MAX_CONNS	20000
#define SLOW_CONNECT_SECS	10	/* connect and TLS handshake, each */

enum slow_mode {
	SLOW_HTTP,
	SLOW_TLS,
	SLOW_HANDSHAKE,
	SLOW_MODE_MAX
};

static const char *const slow_mode_names[SLOW_MODE_MAX] = {
	[SLOW_HTTP] = "http",
	[SLOW_TLS] = "tls",
	[SLOW_HANDSHAKE] = "handshake",
};

struct slow_conn {
	int		 fd;		/* -1: not open */
	SSL		*ssl;		/* SLOW_TLS */
	double		 opened;	/* seconds since start */
	double		 next;		/* the next byte is due */
	double		 interval;
	size_t		 sent;
};

/* What happened, over all connections. */
struct slow_stats {
	int		 opened, refused, closed;
	double		*when;		/* closed: seconds from connect */
	size_t		 nwhen, whensize;
};

/* Headers that never end: the request line, then header lines forever
 * (the server drops the client long before any header-size limit). */
static const char request_head[] =
    "POST /.well-known/est/simpleenroll HTTP/1.1\r\n"
    "Host: localhost\r\n"
    "Content-Type: application/pkcs10\r\n"
    "Content-Length: 999\r\n";
static const char request_more[] = "X-Slow: 1\r\n";

static volatile sig_atomic_t stop;	/* SIGTERM, SIGINT: report, exit */
static unsigned char *hello;		/* SLOW_HANDSHAKE: a ClientHello */
static size_t hello_len;

static void
on_signal(int sig)
{
	stop = 1;
}

static double
now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: slowloris [-m http|tls|handshake] [-n N] "
	    "[-i SECONDS] [-j SECONDS]\n"
	    "                 [-d SECONDS] [-c CERT -k KEY] HOST PORT\n");
	exit(2);
}

static double
parse_seconds(const char *opt, const char *s, double min, double max)
{
	char *end;
	double v;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v >= min && v <= max))
		errx(2, "-%s: %s is not a number of seconds in %g..%g", opt, s,
		    min, max);
	return v;
}

/* The byte a connection sends next. */
static unsigned char
next_byte(enum slow_mode mode, size_t i)
{
	size_t head = sizeof(request_head) - 1, more = sizeof(request_more) - 1;

	if (mode == SLOW_HANDSHAKE)
		return hello[i % hello_len];
	if (i < head)
		return (unsigned char)request_head[i];
	return (unsigned char)request_more[(i - head) % more];
}

/* A ClientHello as a TLS client would send it, from a client writing into
 * memory. */
static void
make_hello(SSL_CTX *ctx)
{
	SSL *ssl;
	BIO *rbio, *wbio;
	char *p;
	long n;

	if ((ssl = SSL_new(ctx)) == NULL || (rbio = BIO_new(BIO_s_mem())) ==
	    NULL || (wbio = BIO_new(BIO_s_mem())) == NULL)
		errx(1, "out of memory");
	SSL_set_bio(ssl, rbio, wbio);
	SSL_set_tlsext_host_name(ssl, "localhost");
	if (SSL_connect(ssl) != -1)
		errx(1, "a ClientHello: the handshake went on without a server");
	if ((n = BIO_get_mem_data(wbio, &p)) <= 0)
		errx(1, "no ClientHello written");
	if ((hello = malloc((size_t)n)) == NULL)
		err(1, "malloc");
	memcpy(hello, p, (size_t)n);
	hello_len = (size_t)n;
	SSL_free(ssl);
}

/* Open c (a TCP connection, and with SLOW_TLS a finished handshake):
 * 0, or -1 counted as refused. */
static int
conn_open(enum slow_mode mode, SSL_CTX *ctx, const struct addrinfo *ai,
    struct slow_conn *c, double interval, double spread, double t0,
    struct slow_stats *st)
{
	struct timeval tv = { SLOW_CONNECT_SECS, 0 };
	int one = 1;

	memset(c, 0, sizeof(*c));
	if ((c->fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
	    ai->ai_protocol)) == -1)
		goto refused;
	/* A server that never answers cannot hang the blocking connect and
	 * handshake (Linux applies SO_SNDTIMEO to connect). */
	(void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	(void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	if (connect(c->fd, ai->ai_addr, ai->ai_addrlen) == -1)
		goto refused;
	(void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (mode == SLOW_TLS) {
		/* A blocking handshake, then non-blocking bytes. */
		if ((c->ssl = SSL_new(ctx)) == NULL ||
		    !SSL_set_fd(c->ssl, c->fd) ||
		    !SSL_set_tlsext_host_name(c->ssl, "localhost") ||
		    SSL_connect(c->ssl) != 1)
			goto refused;
	}
	if (fcntl(c->fd, F_SETFL, fcntl(c->fd, F_GETFL) | O_NONBLOCK) == -1)
		goto refused;
	st->opened++;
	c->opened = now() - t0;
	c->interval = interval + spread * (random() / (double)RAND_MAX);
	c->next = c->opened;
	return 0;
refused:
	ERR_clear_error();
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	c->ssl = NULL;
	if (c->fd != -1)
		close(c->fd);
	c->fd = -1;
	c->next = now() - t0 + interval;	/* -r: try again then */
	st->refused++;
	return -1;
}

/* The server's side ended (EOF, reset): 1; still open: 0. Reads and
 * discards whatever it sent (an error page, say). */
static int
server_closed(struct slow_conn *c)
{
	char buf[4096];
	ssize_t n;
	int r;

	if (c->ssl != NULL) {
		for (;;) {
			r = SSL_read(c->ssl, buf, sizeof(buf));
			if (r > 0)
				continue;
			switch (SSL_get_error(c->ssl, r)) {
			case SSL_ERROR_WANT_READ:
			case SSL_ERROR_WANT_WRITE:
				return 0;
			default:
				ERR_clear_error();
				return 1;
			}
		}
	}
	for (;;) {
		n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n > 0)
			continue;
		if (n == -1 && (errno == EAGAIN || errno == EWOULDBLOCK))
			return 0;
		if (n == -1 && errno == EINTR)
			continue;
		return 1;
	}
}

/* Send the next byte: 0, or -1 when the server is gone (EPIPE, reset). */
static int
send_byte(enum slow_mode mode, struct slow_conn *c)
{
	unsigned char b = next_byte(mode, c->sent);
	int r;

	if (c->ssl != NULL) {
		r = SSL_write(c->ssl, &b, 1);
		if (r == 1) {
			c->sent++;
			return 0;
		}
		r = SSL_get_error(c->ssl, r);
		ERR_clear_error();
		return r == SSL_ERROR_WANT_WRITE || r == SSL_ERROR_WANT_READ ?
		    0 : -1;
	}
	if (send(c->fd, &b, 1, MSG_NOSIGNAL | MSG_DONTWAIT) == 1) {
		c->sent++;
		return 0;
	}
	return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR ?
	    0 : -1;
}

/* Close c; by_server: the server closed it first, and when. */
static void
conn_end(struct slow_conn *c, int by_server, double t, struct slow_stats *st)
{
	double *w;

	if (by_server) {
		st->closed++;
		if (st->nwhen == st->whensize) {
			st->whensize = st->whensize ? st->whensize * 2 : 1024;
			if ((w = reallocarray(st->when, st->whensize,
			    sizeof(*w))) == NULL)
				err(1, "reallocarray");
			st->when = w;
		}
		st->when[st->nwhen++] = t - c->opened;
	}
	if (c->ssl != NULL)
		SSL_free(c->ssl);
	c->ssl = NULL;
	close(c->fd);
	c->fd = -1;
}

static int
cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

int
main(int argc, char *argv[])
{
	enum slow_mode mode = SLOW_HTTP;
	const char *cert = NULL, *key = NULL;
	double interval = 1, spread = 0, duration = 60, grace = 0, t0, t, wake;
	struct addrinfo hints, *ai;
	struct slow_conn *conns;
	struct slow_stats st;
	struct pollfd *pfd;
	struct rlimit rl;
	SSL_CTX *ctx = NULL;
	size_t *idx;
	long n = 1;
	int ch, i, reconnect = 0, nopen, np, rc;
	char *end;

	while ((ch = getopt(argc, argv, "c:d:g:i:j:k:m:n:r")) != -1) {
		switch (ch) {
		case 'c':
			cert = optarg;
			break;
		case 'd':
			duration = parse_seconds("d", optarg, 0.1, 86400);
			break;
		case 'g':
			grace = parse_seconds("g", optarg, 0, 86400);
			break;
		case 'i':
			interval = parse_seconds("i", optarg, 0.01, 3600);
			break;
		case 'j':
			spread = parse_seconds("j", optarg, 0, 3600);
			break;
		case 'k':
			key = optarg;
			break;
		case 'm':
			for (mode = 0; mode < SLOW_MODE_MAX; mode++)
				if (strcmp(optarg, slow_mode_names[mode]) == 0)
					break;
			if (mode == SLOW_MODE_MAX)
				usage();
			break;
		case 'n':
			errno = 0;
			n = strtol(optarg, &end, 10);
			if (errno != 0 || *end != '\0' || n < 1 ||
			    n > SLOW_MAX_CONNS)
				errx(2, "-n: 1..%d connections", SLOW_MAX_CONNS);
			break;
		case 'r':
			reconnect = 1;
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (argc != 2 || (cert == NULL) != (key == NULL))
		usage();

	/* One descriptor per connection, and a few more. */
	if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < (rlim_t)n + 16) {
		rl.rlim_cur = rl.rlim_max < (rlim_t)n + 16 ? rl.rlim_max :
		    (rlim_t)n + 16;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}
	signal(SIGPIPE, SIG_IGN);
	signal(SIGTERM, on_signal);
	signal(SIGINT, on_signal);
	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((rc = getaddrinfo(argv[0], argv[1], &hints, &ai)) != 0)
		errx(1, "%s:%s: %s", argv[0], argv[1], gai_strerror(rc));
	if (mode != SLOW_HTTP) {
		if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
			errx(1, "SSL_CTX_new");
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		if (cert != NULL &&
		    (!SSL_CTX_use_certificate_chain_file(ctx, cert) ||
		    !SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM))) {
			ERR_print_errors_fp(stderr);
			errx(1, "%s, %s: cannot use them", cert, key);
		}
		if (mode == SLOW_HANDSHAKE)
			make_hello(ctx);
	}
	if ((conns = calloc((size_t)n, sizeof(*conns))) == NULL ||
	    (pfd = calloc((size_t)n, sizeof(*pfd))) == NULL ||
	    (idx = calloc((size_t)n, sizeof(*idx))) == NULL)
		err(1, "calloc");
	memset(&st, 0, sizeof(st));
	srandom((unsigned int)getpid());

	t0 = now();
	for (i = 0; i < n; i++) {
		conns[i].fd = -1;
		if (!stop && now() - t0 < duration)
			(void)conn_open(mode, ctx, ai, &conns[i], interval,
			    spread, t0, &st);
	}
	fprintf(stderr, "slowloris: %d open\n", st.opened);

	/* Dribble until every connection is closed or the time is up. */
	for (;;) {
		t = now() - t0;
		if (stop || t >= duration + (reconnect ? grace : 0))
			break;
		nopen = 0;
		wake = t < duration ? duration : duration + grace;
		for (i = 0; i < n; i++) {
			struct slow_conn *c = &conns[i];

			if (c->fd == -1 && reconnect && t < duration &&
			    c->next <= t)
				(void)conn_open(mode, ctx, ai, c, interval,
				    spread, t0, &st);
			if (c->fd == -1) {
				if (reconnect && t < duration && c->next < wake)
					wake = c->next;
				continue;
			}
			if (c->next <= t) {
				if (send_byte(mode, c) == -1) {
					conn_end(c, 1, t, &st);
					continue;
				}
				c->next += c->interval;
				if (c->next < t)
					c->next = t + c->interval;
			}
			if (c->next < wake)
				wake = c->next;
			pfd[nopen].fd = c->fd;
			pfd[nopen].events = POLLIN;
			pfd[nopen].revents = 0;
			idx[nopen++] = (size_t)i;
		}
		if (nopen == 0 && (!reconnect || t >= duration))
			break;
		np = poll(pfd, (nfds_t)nopen, (int)((wake - t) * 1000) + 1);
		if (np == -1 && errno != EINTR)
			err(1, "poll");
		t = now() - t0;
		for (i = 0; np > 0 && i < nopen; i++) {
			if (pfd[i].revents != 0 &&
			    server_closed(&conns[idx[i]]))
				conn_end(&conns[idx[i]], 1, t, &st);
		}
	}
	freeaddrinfo(ai);

	nopen = 0;
	for (i = 0; i < n; i++) {
		if (conns[i].fd != -1) {
			conn_end(&conns[i], 0, 0, &st);
			nopen++;
		}
	}
	if (st.nwhen > 0)
		qsort(st.when, st.nwhen, sizeof(*st.when), cmp_double);
	printf("mode=%s opened=%d refused=%d closed=%d open=%d",
	    slow_mode_names[mode], st.opened, st.refused, st.closed, nopen);
	if (st.nwhen > 0)
		printf(" min=%.2f p50=%.2f max=%.2f", st.when[0],
		    st.when[st.nwhen / 2], st.when[st.nwhen - 1]);
	printf("\n");
	fflush(stdout);
	free(st.when);
	free(conns);
	free(pfd);
	free(idx);
	free(hello);
	SSL_CTX_free(ctx);
	return st.refused == 0 ? 0 : 1;
}
