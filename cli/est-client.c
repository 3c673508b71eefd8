/* est-client.c: the device side of EST over HTTPS, blocking and small.
 *
 * One request per connection ("Connection: close"): a device asks a few
 * times a year, so keep-alive buys nothing and costs state. Every read
 * and write is bounded by EST_TIMEOUT_SECS (SO_RCVTIMEO/SO_SNDTIMEO, which
 * Linux also applies to connect) and the body by EST_BODY_MAX. */
#include "config.h"

#include <sys/types.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "hsmca/clock.h"
#include "hsmca/util.h"

#include "est-client.h"

#define EST_PREFIX	"/.well-known/est/"
#define EST_LINE_MAX	8192
#define EST_HEADERS_MAX	100

struct est_client {
	SSL_CTX		*ctx;
	char		 host[256];	/* without brackets */
	char		 port[8];
	char		 prefix[128];	/* EST_PREFIX [label/] */
	size_t		 body_max;	/* EST_BODY_MAX unless set */
	int		 host_is_ip;
	int		 keepalive;	/* keep the connection for the next */
	struct est_conn	*kc;		/* the kept connection, or NULL */
	int		 kfd;
};

/* A buffered reader over one TLS connection. */
struct est_conn {
	SSL		*ssl;
	const char	*peer;
	size_t		 body_max;
	int		 must_close;	/* the server closes after this reply */
	char		 peerbuf[300];
	unsigned char	 buf[8192];
	size_t		 off, len;
};

enum {
	CONN_DATA = 1,
	CONN_EOF = 0,		/* close_notify */
	CONN_ERROR = -1,	/* e says why */
	CONN_CUT = -2		/* closed without close_notify */
};

static int
parse_server(struct est_client *c, const char *url, struct hsmca_err *e)
{
	const char *p, *h, *hend;
	size_t n;
	long port = 443;

	if (strncasecmp(url, "https://", 8) != 0)
		return err_set(e, HSMCA_ERR_ARG, "--server '%s': expected "
		    "https://HOST[:PORT]", url);
	p = h = url + 8;
	if (*h == '[') {
		if ((hend = strchr(h, ']')) == NULL)
			return err_set(e, HSMCA_ERR_ARG, "--server '%s': "
			    "unterminated [IPv6 address]", url);
		h++;
		p = hend + 1;
	} else {
		hend = h + strcspn(h, ":/?#@");
		p = hend;
	}
	n = (size_t)(hend - h);
	if (n == 0 || n >= sizeof(c->host))
		return err_set(e, HSMCA_ERR_ARG, "--server '%s': no host",
		    url);
	memcpy(c->host, h, n);
	c->host[n] = '\0';
	for (size_t i = 0; i < n; i++)
		if (!isalnum((unsigned char)c->host[i]) &&
		    strchr(".-_:", c->host[i]) == NULL)
			return err_set(e, HSMCA_ERR_ARG, "--server '%s': bad "
			    "character in the host name", url);
	if (*p == ':') {
		char *end;

		errno = 0;
		port = strtol(p + 1, &end, 10);
		if (end == p + 1 || errno != 0 || port < 1 || port > 65535)
			return err_set(e, HSMCA_ERR_ARG, "--server '%s': bad "
			    "port", url);
		p = end;
	}
	if (*p != '\0' && strcmp(p, "/") != 0)
		return err_set(e, HSMCA_ERR_ARG, "--server '%s': expected "
		    "https://HOST[:PORT] without a path (the EST path is "
		    "%s[LABEL/])", url, EST_PREFIX);
	snprintf(c->port, sizeof(c->port), "%ld", port);
	{
		unsigned char a[16];

		c->host_is_ip = inet_pton(AF_INET, c->host, a) == 1 ||
		    inet_pton(AF_INET6, c->host, a) == 1;
	}
	return 0;
}

static int
set_label(struct est_client *c, const char *label, struct hsmca_err *e)
{
	size_t n;

	if (label == NULL || *label == '\0') {
		snprintf(c->prefix, sizeof(c->prefix), "%s", EST_PREFIX);
		return 0;
	}
	n = strlen(label);
	if (n > 64 || strcmp(label, ".") == 0 || strcmp(label, "..") == 0 ||
	    strspn(label, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
	    "0123456789._-") != n)
		return err_set(e, HSMCA_ERR_ARG, "--label '%s': at most 64 "
		    "letters, digits, '.', '_' or '-'", label);
	snprintf(c->prefix, sizeof(c->prefix), "%s%s/", EST_PREFIX, label);
	return 0;
}

/* Never prompt for a passphrase: keys come unencrypted from files. */
static int
no_passphrase(char *buf, int size, int rwflag, void *u)
{
	return -1;
}

static int
use_client_pair(struct est_client *c, const char *cert, const char *key,
    struct hsmca_err *e)
{
	EVP_PKEY *pk = NULL;
	int ret;

	if (SSL_CTX_use_certificate_chain_file(c->ctx, cert) != 1)
		return err_set_ssl(e, HSMCA_ERR_ARG, "%s: not a PEM "
		    "certificate", cert);
	if ((ret = est_read_key(key, &pk, e)) != 0)
		return ret;
	if (SSL_CTX_use_PrivateKey(c->ctx, pk) != 1 ||
	    SSL_CTX_check_private_key(c->ctx) != 1) {
		EVP_PKEY_free(pk);
		ERR_clear_error();
		return err_set(e, HSMCA_ERR_ARG, "%s is not the key of %s",
		    key, cert);
	}
	EVP_PKEY_free(pk);
	return 0;
}

int
est_client_new(const char *server, const char *label, const char *cacert,
    const char *cert, const char *key, struct est_client **out,
    struct hsmca_err *e)
{
	struct est_client *c;
	X509_VERIFY_PARAM *vp;
	int ret;

	*out = NULL;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	c->kfd = -1;
	if ((ret = parse_server(c, server, e)) != 0 ||
	    (ret = set_label(c, label, e)) != 0)
		goto out;
	if ((c->ctx = SSL_CTX_new(TLS_client_method())) == NULL ||
	    !SSL_CTX_set_min_proto_version(c->ctx, TLS1_2_VERSION)) {
		ret = err_set_ssl(e, HSMCA_ERR_INTERNAL, "cannot set up TLS");
		goto out;
	}
	SSL_CTX_set_default_passwd_cb(c->ctx, no_passphrase);
	SSL_CTX_set_verify(c->ctx, SSL_VERIFY_PEER, NULL);
	if (cacert == NULL ? SSL_CTX_set_default_verify_paths(c->ctx) != 1 :
	    SSL_CTX_load_verify_file(c->ctx, cacert) != 1) {
		ret = err_set_ssl(e, HSMCA_ERR_ARG, "%s: no trust anchors "
		    "for the server", cacert != NULL ? cacert :
		    "the system's trust store");
		goto out;
	}
	/* The injectable clock decides validity here as everywhere. */
	vp = SSL_CTX_get0_param(c->ctx);
	X509_VERIFY_PARAM_set_time(vp, clock_now());
	if ((cert == NULL) != (key == NULL)) {
		ret = err_set(e, HSMCA_ERR_ARG, "a client certificate needs "
		    "its key");
		goto out;
	}
	if (cert != NULL && (ret = use_client_pair(c, cert, key, e)) != 0)
		goto out;
	*out = c;
	c = NULL;
	ret = 0;
out:
	est_client_free(c);
	return ret;
}

static void
conn_drop(struct est_client *c)
{
	if (c->kc == NULL)
		return;
	SSL_free(c->kc->ssl);
	OPENSSL_cleanse(c->kc->buf, sizeof(c->kc->buf));
	free(c->kc);
	c->kc = NULL;
	if (c->kfd != -1)
		close(c->kfd);
	c->kfd = -1;
}

void
est_client_free(struct est_client *c)
{
	if (c == NULL)
		return;
	conn_drop(c);
	SSL_CTX_free(c->ctx);
	free(c);
}

void
est_client_keepalive(struct est_client *c)
{
	c->keepalive = 1;
}

/* ---- one connection ---- */

static int
timed_out(int err)
{
	return err == EAGAIN || err == EWOULDBLOCK || err == EINPROGRESS;
}

static int
conn_connect(struct est_client *c, const char *peer, int *fdp,
    struct hsmca_err *e)
{
	struct addrinfo hints, *res = NULL, *ai;
	struct timeval tv = { EST_TIMEOUT_SECS, 0 };
	int fd = -1, gai, saved = 0, one = 1;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_NUMERICSERV;
	if ((gai = getaddrinfo(c->host, c->port, &hints, &res)) != 0)
		return err_set(e, HSMCA_ERR_IO, "cannot resolve %s: %s",
		    c->host, gai_strerror(gai));
	for (ai = res; ai != NULL; ai = ai->ai_next) {
		if ((fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
		    ai->ai_protocol)) == -1) {
			saved = errno;
			continue;
		}
		/* A request is its header and body in two writes: without
		 * TCP_NODELAY the second waits for the server's delayed ACK. */
		if (setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
		    sizeof(tv)) == 0 && setsockopt(fd, SOL_SOCKET,
		    SO_SNDTIMEO, &tv, sizeof(tv)) == 0 &&
		    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one)) == 0 &&
		    connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		saved = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	if (fd == -1)
		return err_set(e, HSMCA_ERR_IO, "cannot connect to %s: %s",
		    peer, timed_out(saved) ? "timed out" : strerror(saved));
	*fdp = fd;
	return 0;
}

/* The reason of a failed TLS call, for the message. */
static int
tls_failed(struct est_conn *k, int rc, const char *what, struct hsmca_err *e)
{
	int err = errno, sslerr = SSL_get_error(k->ssl, rc);
	long v;

	if (sslerr == SSL_ERROR_WANT_READ || sslerr == SSL_ERROR_WANT_WRITE ||
	    (sslerr == SSL_ERROR_SYSCALL && ERR_peek_error() == 0)) {
		ERR_clear_error();
		return err_set(e, HSMCA_ERR_IO, "%s %s: %s", what, k->peer,
		    timed_out(err) ? "timed out" : err != 0 ? strerror(err) :
		    "connection closed");
	}
	if ((v = SSL_get_verify_result(k->ssl)) != X509_V_OK) {
		ERR_clear_error();
		return err_set(e, HSMCA_ERR_IO, "%s %s: server certificate "
		    "verify failed: %s", what, k->peer,
		    X509_verify_cert_error_string(v));
	}
	return err_set_ssl(e, HSMCA_ERR_IO, "%s %s", what, k->peer);
}

static int
conn_fill(struct est_conn *k, struct hsmca_err *e)
{
	int n;

	ERR_clear_error();
	errno = 0;
	if ((n = SSL_read(k->ssl, k->buf, sizeof(k->buf))) > 0) {
		k->off = 0;
		k->len = (size_t)n;
		return CONN_DATA;
	}
	switch (SSL_get_error(k->ssl, n)) {
	case SSL_ERROR_ZERO_RETURN:
		return CONN_EOF;
	case SSL_ERROR_SYSCALL:
		if (errno == 0 && ERR_peek_error() == 0)
			return CONN_CUT;
		break;
	case SSL_ERROR_SSL:
		if (ERR_GET_REASON(ERR_peek_error()) ==
		    SSL_R_UNEXPECTED_EOF_WHILE_READING) {
			ERR_clear_error();
			return CONN_CUT;
		}
		break;
	default:
		break;
	}
	tls_failed(k, n, "reading from", e);
	return CONN_ERROR;
}

static int
conn_short(struct est_conn *k, int rc, struct hsmca_err *e)
{
	if (rc == CONN_ERROR)
		return HSMCA_ERR_IO;
	return err_set(e, HSMCA_ERR_IO, "%s closed the connection before the "
	    "reply was complete", k->peer);
}

/* One line without its CRLF (or LF) into line[max]. */
static int
conn_line(struct est_conn *k, char *line, size_t max, size_t *total,
    struct hsmca_err *e)
{
	size_t n = 0;
	int rc;

	for (;;) {
		unsigned char ch;

		if (k->off == k->len && (rc = conn_fill(k, e)) != CONN_DATA)
			return conn_short(k, rc, e);
		ch = k->buf[k->off++];
		if (++*total > EST_LINE_MAX * 2)
			return err_set(e, HSMCA_ERR_IO, "%s sent more than %d "
			    "bytes of headers", k->peer, EST_LINE_MAX * 2);
		if (ch == '\n')
			break;
		if (n + 1 >= max)
			return err_set(e, HSMCA_ERR_IO, "%s sent a header line "
			    "longer than %zu bytes", k->peer, max - 1);
		line[n++] = (char)ch;
	}
	if (n > 0 && line[n - 1] == '\r')
		n--;
	line[n] = '\0';
	return 0;
}

static int
body_grow(struct est_conn *k, struct est_reply *r, size_t *cap, size_t need,
    struct hsmca_err *e)
{
	unsigned char *nb;
	size_t ncap;

	if (need > k->body_max)
		return err_set(e, HSMCA_ERR_IO, "the reply from %s is larger "
		    "than %zu bytes", k->peer, k->body_max);
	if (need + 1 <= *cap)
		return 0;
	ncap = *cap == 0 ? 4096 : *cap;
	while (ncap < need + 1)
		ncap *= 2;
	if (ncap > k->body_max + 1)
		ncap = k->body_max + 1;
	/* Not realloc: the body may be a private key; wipe the old copy. */
	if ((nb = malloc(ncap)) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	if (r->len > 0)
		memcpy(nb, r->body, r->len);
	if (r->body != NULL)
		util_freezero(r->body, *cap);
	r->body = nb;
	*cap = ncap;
	return 0;
}

/* n bytes of body, or (until_close) everything up to close_notify. */
static int
conn_body(struct est_conn *k, struct est_reply *r, size_t *cap, size_t n,
    int until_close, struct hsmca_err *e)
{
	int rc, ret;

	while (until_close || n > 0) {
		size_t take;

		if (k->off == k->len) {
			rc = conn_fill(k, e);
			if (rc == CONN_EOF && until_close)
				return 0;
			if (rc != CONN_DATA)
				return conn_short(k, rc, e);
		}
		take = k->len - k->off;
		if (!until_close && take > n)
			take = n;
		if ((ret = body_grow(k, r, cap, r->len + take, e)) != 0)
			return ret;
		memcpy(r->body + r->len, k->buf + k->off, take);
		r->len += take;
		k->off += take;
		if (!until_close)
			n -= take;
	}
	return 0;
}

static int
conn_chunked(struct est_conn *k, struct est_reply *r, size_t *cap,
    size_t *hdrbytes, struct hsmca_err *e)
{
	char line[EST_LINE_MAX], *end;
	unsigned long long n;
	int ret;

	for (;;) {
		if ((ret = conn_line(k, line, sizeof(line), hdrbytes, e)) != 0)
			return ret;
		errno = 0;
		n = strtoull(line, &end, 16);
		if (end == line || errno != 0 || (*end != '\0' && *end != ';' &&
		    *end != ' '))
			return err_set(e, HSMCA_ERR_IO, "%s sent a bad chunk "
			    "size", k->peer);
		if (n > k->body_max || r->len + n > k->body_max)
			return body_grow(k, r, cap, k->body_max + 1, e);
		if (n == 0)
			break;
		if ((ret = conn_body(k, r, cap, (size_t)n, 0, e)) != 0 ||
		    (ret = conn_line(k, line, sizeof(line), hdrbytes, e)) != 0)
			return ret;
		if (line[0] != '\0')
			return err_set(e, HSMCA_ERR_IO, "%s sent a chunk longer "
			    "than announced", k->peer);
		*hdrbytes = 0;
	}
	/* Trailers, up to the empty line. */
	do {
		if ((ret = conn_line(k, line, sizeof(line), hdrbytes, e)) != 0)
			return ret;
	} while (line[0] != '\0');
	return 0;
}

/* A header value or the status phrase, trimmed; the server chose it and
 * it may reach a terminal: a tab is a space, any other control or
 * non-ASCII byte a '?'. */
static void
copy_value(char *dst, size_t len, const char *v)
{
	size_t n;

	while (*v == ' ' || *v == '\t')
		v++;
	n = strlen(v);
	while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
		n--;
	if (n >= len)
		n = len - 1;
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)v[i];

		dst[i] = ch == '\t' ? ' ' : isprint(ch) ? (char)ch : '?';
	}
	dst[n] = '\0';
}

static int
conn_reply(struct est_conn *k, struct est_reply *r, struct hsmca_err *e)
{
	char line[EST_LINE_MAX], *v;
	size_t hdrbytes = 0, cap = 0;
	long long clen = -1;
	int ret, chunked = 0, nhdr;

	/* Skip interim (1xx) replies. */
	do {
		hdrbytes = 0;
		if ((ret = conn_line(k, line, sizeof(line), &hdrbytes, e)) != 0)
			return ret;
		if (strncmp(line, "HTTP/1.", 7) != 0 ||
		    !isdigit((unsigned char)line[7]) || line[8] != ' ' ||
		    !isdigit((unsigned char)line[9]) ||
		    !isdigit((unsigned char)line[10]) ||
		    !isdigit((unsigned char)line[11]) ||
		    (line[12] != ' ' && line[12] != '\0'))
			return err_set(e, HSMCA_ERR_IO, "%s did not answer "
			    "with HTTP/1.x", k->peer);
		r->status = atoi(line + 9);
		copy_value(r->reason, sizeof(r->reason), line[12] == '\0' ?
		    "" : line + 13);
		for (nhdr = 0;; nhdr++) {
			if ((ret = conn_line(k, line, sizeof(line), &hdrbytes,
			    e)) != 0)
				return ret;
			if (line[0] == '\0')
				break;
			if (nhdr >= EST_HEADERS_MAX)
				return err_set(e, HSMCA_ERR_IO, "%s sent more "
				    "than %d header lines", k->peer,
				    EST_HEADERS_MAX);
			if ((v = strchr(line, ':')) == NULL)
				return err_set(e, HSMCA_ERR_IO, "%s sent a "
				    "malformed header line", k->peer);
			*v++ = '\0';
			if (strcasecmp(line, "Content-Length") == 0) {
				char *end;
				long long n;

				errno = 0;
				n = strtoll(v, &end, 10);
				while (*end == ' ' || *end == '\t')
					end++;
				if (errno != 0 || n < 0 || *end != '\0' ||
				    (clen != -1 && clen != n))
					return err_set(e, HSMCA_ERR_IO, "%s "
					    "sent a bad Content-Length",
					    k->peer);
				clen = n;
			} else if (strcasecmp(line, "Transfer-Encoding") == 0) {
				chunked = strcasestr(v, "chunked") != NULL;
			} else if (strcasecmp(line, "Connection") == 0) {
				if (strcasestr(v, "close") != NULL)
					k->must_close = 1;
			} else if (strcasecmp(line, "Content-Type") == 0) {
				copy_value(r->ctype, sizeof(r->ctype), v);
			} else if (strcasecmp(line,
			    "Content-Transfer-Encoding") == 0) {
				copy_value(r->cte, sizeof(r->cte), v);
			}
		}
	} while (r->status >= 100 && r->status < 200);

	if (r->status == 204 || r->status == 304)
		ret = 0;
	else if (chunked)
		ret = conn_chunked(k, r, &cap, &hdrbytes, e);
	else if (clen >= 0) {
		if ((unsigned long long)clen > k->body_max)
			return err_set(e, HSMCA_ERR_IO, "the reply from %s is "
			    "larger than %zu bytes", k->peer, k->body_max);
		ret = conn_body(k, r, &cap, (size_t)clen, 0, e);
	} else {
		k->must_close = 1;
		ret = conn_body(k, r, &cap, 0, 1, e);
	}
	if (ret != 0)
		return ret;
	if ((ret = body_grow(k, r, &cap, r->len, e)) != 0)
		return ret;
	r->body[r->len] = '\0';
	return 0;
}

static int
conn_write(struct est_conn *k, const void *data, size_t len,
    struct hsmca_err *e)
{
	const unsigned char *p = data;
	int n;

	while (len > 0) {
		size_t chunk = len > 16384 ? 16384 : len;

		ERR_clear_error();
		errno = 0;
		if ((n = SSL_write(k->ssl, p, (int)chunk)) <= 0)
			return tls_failed(k, n, "writing to", e);
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A TLS connection to the server, its name or address checked. */
static int
conn_open(struct est_client *c, struct est_conn *k, int *fdp,
    struct hsmca_err *e)
{
	int rc, ret;

	if ((ret = conn_connect(c, k->peer, fdp, e)) != 0)
		return ret;
	ret = HSMCA_ERR_IO;
	if ((k->ssl = SSL_new(c->ctx)) == NULL || !SSL_set_fd(k->ssl, *fdp))
		return err_set_ssl(e, HSMCA_ERR_INTERNAL, "cannot set up TLS");
	if (c->host_is_ip) {
		if (!X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(k->ssl),
		    c->host))
			return err_set_ssl(e, ret, "cannot check the server's "
			    "address");
	} else {
		SSL_set_hostflags(k->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
		if (!SSL_set_tlsext_host_name(k->ssl, c->host) ||
		    !SSL_set1_host(k->ssl, c->host))
			return err_set_ssl(e, ret, "cannot check the server's "
			    "name");
	}
	ERR_clear_error();
	errno = 0;
	if ((rc = SSL_connect(k->ssl)) != 1)
		return tls_failed(k, rc, "TLS handshake with", e);
	return 0;
}

int
est_client_request(struct est_client *c, const char *method, const char *op,
    const char *ctype, const void *body, size_t len, struct est_reply *r,
    struct hsmca_err *e)
{
	struct est_conn *k = NULL;
	char head[1024];
	int fd = -1, n, ret = HSMCA_ERR_IO, reused = 0;

	memset(r, 0, sizeof(r[0]));
	/* A server that closes early must not kill us with SIGPIPE. */
	signal(SIGPIPE, SIG_IGN);
	if (c->keepalive && c->kc != NULL) {
		k = c->kc;
		fd = c->kfd;
		c->kc = NULL;
		c->kfd = -1;
		reused = 1;
	} else {
		if ((k = calloc(1, sizeof(*k))) == NULL)
			return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		snprintf(k->peerbuf, sizeof(k->peerbuf), "%s%s%s:%s",
		    c->host_is_ip && strchr(c->host, ':') ? "[" : "", c->host,
		    c->host_is_ip && strchr(c->host, ':') ? "]" : "", c->port);
		k->peer = k->peerbuf;
		k->body_max = c->body_max != 0 ? c->body_max : EST_BODY_MAX;
	}
	k->must_close = 0;
	n = snprintf(head, sizeof(head), "%s %s%s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "User-Agent: hsmca/%s\r\n"
	    "Accept: */*\r\n"
	    "Connection: %s\r\n", method, c->prefix, op, k->peer,
	    PACKAGE_VERSION, c->keepalive ? "keep-alive" : "close");
	if (body != NULL && n > 0 && (size_t)n < sizeof(head))
		n += snprintf(head + n, sizeof(head) - (size_t)n,
		    "Content-Type: %s\r\n"
		    "Content-Length: %zu\r\n", ctype, len);
	if (n > 0 && (size_t)n < sizeof(head))
		n += snprintf(head + n, sizeof(head) - (size_t)n, "\r\n");
	if (n <= 0 || (size_t)n >= sizeof(head)) {
		ret = err_set(e, HSMCA_ERR_ARG, "request header too long");
		goto out;
	}
	for (;;) {
		if (k->ssl == NULL && (ret = conn_open(c, k, &fd, e)) != 0)
			goto out;
		if ((ret = conn_write(k, head, (size_t)n, e)) == 0 &&
		    (body == NULL || (ret = conn_write(k, body, len, e)) == 0) &&
		    (ret = conn_reply(k, r, e)) == 0)
			break;
		/* A kept connection the server closed meanwhile: once more
		 * on a new one, when nothing of a reply came. */
		if (!reused || r->status != 0)
			goto out;
		reused = 0;
		est_reply_free(r);
		memset(r, 0, sizeof(r[0]));
		SSL_free(k->ssl);
		k->ssl = NULL;
		k->off = k->len = 0;
		close(fd);
		fd = -1;
	}
	if (c->keepalive && !k->must_close) {
		c->kc = k;
		c->kfd = fd;
		k = NULL;
		fd = -1;
	} else
		(void)SSL_shutdown(k->ssl);
	ret = 0;
out:
	if (ret != 0)
		est_reply_free(r);
	if (k != NULL) {
		SSL_free(k->ssl);
		OPENSSL_cleanse(k->buf, sizeof(k->buf));
		free(k);
	}
	if (fd != -1)
		close(fd);
	ERR_clear_error();
	return ret;
}

int
est_client_set_path(struct est_client *c, const char *prefix, size_t body_max,
    struct hsmca_err *e)
{
	if (strlen(prefix) >= sizeof(c->prefix) || prefix[0] != '/')
		return err_set(e, HSMCA_ERR_ARG, "bad path prefix");
	snprintf(c->prefix, sizeof(c->prefix), "%s", prefix);
	c->body_max = body_max;
	return 0;
}

void
est_reply_free(struct est_reply *r)
{
	if (r->body != NULL)
		util_freezero(r->body, r->len + 1);
	memset(r, 0, sizeof(*r));
}

int
est_reply_refusal(const struct est_reply *r, struct hsmca_err *e)
{
	char why[300];
	size_t n = 0;

	for (size_t i = 0; i < r->len && r->body[i] != '\n' &&
	    n + 1 < sizeof(why); i++) {
		unsigned char ch = r->body[i];

		if (ch == '\r')
			continue;
		why[n++] = isprint(ch) ? (char)ch : '?';
	}
	why[n] = '\0';
	if (n == 0)
		snprintf(why, sizeof(why), "%s", r->reason[0] ? r->reason :
		    "no reason given");
	return err_set(e, HSMCA_ERR_POLICY, "server refused (%d): %s",
	    r->status, why);
}

/* ---- EST payloads ---- */

int
est_p7_certs(const unsigned char *b64, size_t len, STACK_OF(X509) **out,
    struct hsmca_err *e)
{
	STACK_OF(X509) *certs = NULL, *in;
	const unsigned char *p;
	unsigned char *der = NULL;
	size_t derlen = 0;
	PKCS7 *p7 = NULL;
	int ret;

	*out = NULL;
	if ((ret = util_b64_decode(b64, len, &der, &derlen, e)) != 0)
		goto out;
	ret = HSMCA_ERR_ARG;
	p = der;
	if ((p7 = d2i_PKCS7(NULL, &p, (long)derlen)) == NULL ||
	    p != der + derlen || !PKCS7_type_is_signed(p7) ||
	    p7->d.sign == NULL || (in = p7->d.sign->cert) == NULL ||
	    sk_X509_num(in) == 0) {
		ERR_clear_error();
		err_set(e, ret, "the reply is not a certs-only PKCS#7 with "
		    "certificates");
		goto out;
	}
	if ((certs = sk_X509_new_null()) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	for (int i = 0; i < sk_X509_num(in); i++) {
		X509 *x = sk_X509_value(in, i);

		if (!X509_up_ref(x))
			goto out;
		if (!sk_X509_push(certs, x)) {
			X509_free(x);
			ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto out;
		}
	}
	*out = certs;
	certs = NULL;
	ret = 0;
out:
	sk_X509_pop_free(certs, X509_free);
	PKCS7_free(p7);
	free(der);
	return ret;
}

/* ---- keys from files ---- */

int
est_read_key(const char *path, EVP_PKEY **out, struct hsmca_err *e)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	int ret;

	*out = NULL;
	if ((ret = util_read_file(path, 64 * 1024, &buf, &len, e)) != 0)
		return ret;
	ret = HSMCA_ERR_ARG;
	if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (*out = PEM_read_bio_PrivateKey(b, NULL, no_passphrase,
	    NULL)) == NULL) {
		ERR_clear_error();
		err_set(e, ret, "%s: not an unencrypted PEM private key", path);
		goto out;
	}
	ret = 0;
out:
	BIO_free(b);
	util_freezero(buf, len);
	return ret;
}

int
est_key_pem(EVP_PKEY *pk, char **out, size_t *outlen, struct hsmca_err *e)
{
	BIO *b = BIO_new(BIO_s_secmem());
	int ret = HSMCA_ERR_INTERNAL;

	*out = NULL;
	if (b == NULL || !PEM_write_bio_PrivateKey(b, pk, NULL, NULL, 0, NULL,
	    NULL)) {
		err_set_ssl(e, ret, "cannot encode the private key");
		goto out;
	}
	if ((*out = util_bio_string(b, outlen)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	ret = 0;
out:
	BIO_free(b);
	return ret;
}
