/*
 * estload: a load generator for certificate enrollment over HTTP(S).
 *
 * One libevent loop drives N connection slots; each slot has at most one
 * request in flight (no pipelining).  In "est" mode the body is the base64
 * DER of a PKCS#10 CSR (RFC 7030 simpleenroll); in "cfssl" mode it is the
 * JSON {"certificate_request": PEM} that cfssl's /api/v1/cfssl/sign takes.
 * CSRs come from a directory and are reused round-robin.
 *
 * Every buffer is bounded (header lines, headers, bodies); every request,
 * connect and handshake is under one per-slot deadline.  Latencies go into a
 * fixed-size log-linear histogram, so a long --duration costs no memory.
 */

#define _GNU_SOURCE		/* asprintf */

#include <sys/types.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>

#include <dirent.h>
#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <limits.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>

#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#define LOAD_MAX_LINE		8192		/* status, header, chunk-size line */
#define LOAD_MAX_HEADERS	(64 * 1024)	/* all header lines of one answer */
#define LOAD_MAX_BODY		(1024 * 1024)	/* one answer's body */
#define LOAD_MAX_CSRS		1000000
#define LOAD_MAX_CSR_FILE	(64 * 1024)
#define LOAD_ERR_SHOWN		1024		/* bytes of an error body shown */

/* Log-linear histogram of microseconds: 128 buckets per octave (<0.8%). */
#define HIST_SUB_BITS		7
#define HIST_SUB		(1u << HIST_SUB_BITS)
#define HIST_OCTAVES		40
#define HIST_BUCKETS		(HIST_SUB * (HIST_OCTAVES + 1))

enum load_mode {
	LOAD_MODE_EST,
	LOAD_MODE_CFSSL,
	LOAD_MODE_MAX
};

static const char *const load_mode_names[LOAD_MODE_MAX] = {
	[LOAD_MODE_EST] = "est",
	[LOAD_MODE_CFSSL] = "cfssl",
};

enum slot_state {
	SLOT_IDLE,		/* no request; connection (if any) is idle */
	SLOT_CONNECTING,	/* request waits for connect + handshake */
	SLOT_STATUS,
	SLOT_HEADERS,
	SLOT_BODY_LENGTH,
	SLOT_BODY_EOF,
	SLOT_CHUNK_SIZE,
	SLOT_CHUNK_DATA,
	SLOT_CHUNK_CRLF,
	SLOT_TRAILERS
};

struct load_config {
	const char	*url;
	const char	*csr_dir;
	const char	*cert;
	const char	*key;
	const char	*cacert;
	enum load_mode	 mode;
	int		 concurrency;
	uint64_t	 requests;	/* 0: no count limit */
	double		 duration;	/* 0: no time limit */
	double		 timeout;
	uint64_t	 max_errors;
	int		 fresh;
	int		 insecure;
};

struct load_target {
	int			 tls;
	char			*host;
	char			*hostport;	/* for the Host header */
	char			*path;
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;
};

struct load_request {
	char	*data;
	size_t	 len;
};

struct load_hist {
	uint64_t	 counts[HIST_BUCKETS];
	uint64_t	 n;
};

struct load_run;

struct load_slot {
	struct load_run		*run;
	struct bufferevent	*bev;
	struct event		*timer;
	enum slot_state		 state;
	int			 connected;
	int			 warming;
	const struct load_request *req;
	struct timespec		 start;

	/* Answer being parsed. */
	int			 status;
	int			 interim;
	int			 conn_close;
	int			 keep_alive;
	int			 http10;
	int			 chunked;
	int64_t			 content_length;
	size_t			 remaining;
	size_t			 header_bytes;
	char			 content_type[128];
	struct evbuffer		*body;
	char			 line[LOAD_MAX_LINE + 1];
	char			 errmsg[512];	/* failure to report from timer */
};

struct load_run {
	const struct load_config *cfg;
	struct load_target	 target;
	struct event_base	*base;
	SSL_CTX			*ctx;
	struct load_request	*reqs;
	size_t			 nreqs;
	size_t			 next_req;
	struct load_slot	*slots;
	int			 nslots;
	int			 warming;	/* slots still connecting up front */
	int			 active;	/* slots with a request in flight */
	int			 stopping;
	int			 started;
	uint64_t		 issued;
	uint64_t		 ok;
	uint64_t		 errors;
	uint64_t		 connects;
	int			 error_shown;
	struct timespec		 t0;
	struct timespec		 tend;
	struct event		*deadline;
	struct event		*sigint;
	struct load_hist	 hist;
};

static void	slot_next(struct load_slot *);
static void	slot_done(struct load_slot *, int, const char *, ...)
	    __attribute__((format(printf, 3, 4)));
static void	ssl_errx(const char *, ...)
	    __attribute__((format(printf, 1, 2), noreturn));
static void	run_start(struct load_run *);

static double
ts_diff(const struct timespec *a, const struct timespec *b)
{
	return (double)(b->tv_sec - a->tv_sec) +
	    (double)(b->tv_nsec - a->tv_nsec) / 1e9;
}

static void
ts_now(struct timespec *ts)
{
	if (clock_gettime(CLOCK_MONOTONIC, ts) == -1)
		err(1, "clock_gettime");
}

static struct timeval
tv_from_secs(double s)
{
	struct timeval tv;

	tv.tv_sec = (time_t)s;
	tv.tv_usec = (suseconds_t)((s - (double)tv.tv_sec) * 1e6);
	return tv;
}

static size_t
hist_index(uint64_t v)
{
	unsigned int msb, shift;
	size_t idx;

	if (v < HIST_SUB)
		return (size_t)v;
	msb = 63u - (unsigned int)__builtin_clzll(v);
	shift = msb - HIST_SUB_BITS;
	idx = (size_t)(shift + 1) * HIST_SUB + (size_t)((v >> shift) - HIST_SUB);
	return idx < HIST_BUCKETS ? idx : HIST_BUCKETS - 1;
}

/* Midpoint of a bucket, in microseconds. */
static double
hist_value(size_t idx)
{
	unsigned int shift;
	uint64_t low;

	if (idx < HIST_SUB)
		return (double)idx;
	shift = (unsigned int)(idx / HIST_SUB) - 1;
	low = (uint64_t)(idx % HIST_SUB + HIST_SUB) << shift;
	return (double)low + (double)((uint64_t)1 << shift) / 2.0;
}

static void
hist_add(struct load_hist *h, double secs)
{
	uint64_t us = secs <= 0 ? 0 : (uint64_t)(secs * 1e6);

	h->counts[hist_index(us)]++;
	h->n++;
}

/* The p-quantile in milliseconds (nearest rank), 0 when empty. */
static double
hist_quantile(const struct load_hist *h, double p)
{
	uint64_t rank, seen = 0;
	size_t i;

	if (h->n == 0)
		return 0;
	rank = (uint64_t)(p * (double)h->n + 0.999999);
	if (rank < 1)
		rank = 1;
	for (i = 0; i < HIST_BUCKETS; i++) {
		seen += h->counts[i];
		if (seen >= rank)
			return hist_value(i) / 1000.0;
	}
	return hist_value(HIST_BUCKETS - 1) / 1000.0;
}

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr,
	    "usage: estload --url URL --mode est|cfssl --csrs DIR\n"
	    "               [--cert FILE --key FILE] [--cacert FILE] [--insecure]\n"
	    "               [--concurrency N] [--requests N | --duration S]\n"
	    "               [--fresh] [--timeout S] [--max-errors N]\n"
	    "\n"
	    "  --url URL          http://host:port/path or https://host:port/path\n"
	    "  --mode est|cfssl   est: base64 DER PKCS#10 (application/pkcs10);\n"
	    "                     cfssl: JSON {\"certificate_request\": PEM}\n"
	    "  --csrs DIR         PEM CSRs (*.csr, *.pem), reused round-robin\n"
	    "  --cert/--key FILE  TLS client certificate and key (https only)\n"
	    "  --cacert FILE      CA certificates to verify the server (https only)\n"
	    "  --insecure         do not verify the server certificate\n"
	    "  --concurrency N    connections, one request in flight each (32)\n"
	    "  --requests N       total requests (1000 unless --duration)\n"
	    "  --duration S       issue requests for S seconds\n"
	    "  --fresh            new connection and full handshake per request\n"
	    "  --timeout S        deadline per request incl. connect (10)\n"
	    "  --max-errors N     stop issuing after N errors (100)\n");
	exit(2);
}

static uint64_t
parse_u64(const char *opt, const char *s, uint64_t min, uint64_t max)
{
	unsigned long long v;
	char *end;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || end == s || *end != '\0' || s[0] == '-' ||
	    v < min || v > max)
		errx(2, "%s: expected an integer in [%llu, %llu], got \"%s\"",
		    opt, (unsigned long long)min, (unsigned long long)max, s);
	return v;
}

static double
parse_secs(const char *opt, const char *s)
{
	double v;
	char *end;

	errno = 0;
	v = strtod(s, &end);
	if (errno != 0 || end == s || *end != '\0' || !(v > 0) || v > 1e6)
		errx(2, "%s: expected seconds > 0, got \"%s\"", opt, s);
	return v;
}

static void
config_parse(struct load_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
		{ "url",		required_argument, NULL, 'u' },
		{ "mode",		required_argument, NULL, 'm' },
		{ "csrs",		required_argument, NULL, 'd' },
		{ "cert",		required_argument, NULL, 'c' },
		{ "key",		required_argument, NULL, 'k' },
		{ "cacert",		required_argument, NULL, 'a' },
		{ "insecure",		no_argument,	   NULL, 'K' },
		{ "concurrency",	required_argument, NULL, 'n' },
		{ "requests",		required_argument, NULL, 'r' },
		{ "duration",		required_argument, NULL, 'D' },
		{ "fresh",		no_argument,	   NULL, 'f' },
		{ "timeout",		required_argument, NULL, 't' },
		{ "max-errors",		required_argument, NULL, 'E' },
		{ "help",		no_argument,	   NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	int ch, i, mode_set = 0;

	memset(cfg, 0, sizeof(*cfg));
	cfg->concurrency = 32;
	cfg->timeout = 10;
	cfg->max_errors = 100;

	while ((ch = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (ch) {
		case 'u': cfg->url = optarg; break;
		case 'd': cfg->csr_dir = optarg; break;
		case 'c': cfg->cert = optarg; break;
		case 'k': cfg->key = optarg; break;
		case 'a': cfg->cacert = optarg; break;
		case 'K': cfg->insecure = 1; break;
		case 'f': cfg->fresh = 1; break;
		case 'm':
			for (i = 0; i < LOAD_MODE_MAX; i++)
				if (strcmp(optarg, load_mode_names[i]) == 0)
					break;
			if (i == LOAD_MODE_MAX)
				errx(2, "--mode: expected est or cfssl");
			cfg->mode = (enum load_mode)i;
			mode_set = 1;
			break;
		case 'n':
			cfg->concurrency = (int)parse_u64("--concurrency",
			    optarg, 1, 10000);
			break;
		case 'r':
			cfg->requests = parse_u64("--requests", optarg, 1,
			    UINT64_MAX / 2);
			break;
		case 'D':
			cfg->duration = parse_secs("--duration", optarg);
			break;
		case 't':
			cfg->timeout = parse_secs("--timeout", optarg);
			break;
		case 'E':
			cfg->max_errors = parse_u64("--max-errors", optarg, 1,
			    UINT64_MAX / 2);
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();
	if (cfg->url == NULL || cfg->csr_dir == NULL || !mode_set)
		usage();
	if ((cfg->cert == NULL) != (cfg->key == NULL))
		errx(2, "--cert and --key go together");
	if (cfg->requests == 0 && cfg->duration == 0)
		cfg->requests = 1000;
}

/* Parse the URL and resolve its host once, before any timing. */
static void
target_init(struct load_target *t, const struct load_config *cfg)
{
	struct evhttp_uri *uri;
	struct addrinfo hints, *res;
	const char *scheme, *host, *path, *query;
	char portstr[16];
	int port, rc;
	size_t n;

	if ((uri = evhttp_uri_parse(cfg->url)) == NULL)
		errx(2, "--url: cannot parse \"%s\"", cfg->url);
	scheme = evhttp_uri_get_scheme(uri);
	host = evhttp_uri_get_host(uri);
	if (scheme == NULL || host == NULL || *host == '\0')
		errx(2, "--url: need scheme and host: \"%s\"", cfg->url);
	if (strcasecmp(scheme, "https") == 0)
		t->tls = 1;
	else if (strcasecmp(scheme, "http") != 0)
		errx(2, "--url: scheme must be http or https");
	if (!t->tls && (cfg->cert != NULL || cfg->cacert != NULL ||
	    cfg->insecure))
		errx(2, "--cert, --key, --cacert and --insecure need https");
	port = evhttp_uri_get_port(uri);
	if (port < 0)
		port = t->tls ? 443 : 80;

	/* evhttp_uri gives an IPv6 literal with its brackets. */
	n = strlen(host);
	if (host[0] == '[' && n > 2 && host[n - 1] == ']')
		t->host = strndup(host + 1, n - 2);
	else
		t->host = strdup(host);
	if (t->host == NULL)
		err(1, NULL);
	if (asprintf(&t->hostport, "%s:%d", host, port) == -1)
		err(1, NULL);
	path = evhttp_uri_get_path(uri);
	query = evhttp_uri_get_query(uri);
	if (path == NULL || *path == '\0')
		path = "/";
	if (asprintf(&t->path, "%s%s%s", path, query ? "?" : "",
	    query ? query : "") == -1)
		err(1, NULL);
	evhttp_uri_free(uri);

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	snprintf(portstr, sizeof(portstr), "%d", port);
	if ((rc = getaddrinfo(t->host, portstr, &hints, &res)) != 0)
		errx(1, "%s: %s", t->host, gai_strerror(rc));
	if (res->ai_addrlen > sizeof(t->addr))
		errx(1, "%s: address too long", t->host);
	memcpy(&t->addr, res->ai_addr, res->ai_addrlen);
	t->addrlen = res->ai_addrlen;
	freeaddrinfo(res);
}

static void
ssl_errx(const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	fprintf(stderr, "estload: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	ERR_print_errors_fp(stderr);
	exit(1);
}

static SSL_CTX *
tls_init(const struct load_config *cfg)
{
	static const unsigned char alpn[] = "\x08http/1.1";
	SSL_CTX *ctx;

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL)
		ssl_errx("SSL_CTX_new");
	if (!SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION))
		ssl_errx("SSL_CTX_set_min_proto_version");
	/* Every connection does a full handshake: no resumption. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	if (SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn) - 1) != 0)
		ssl_errx("SSL_CTX_set_alpn_protos");
	if (cfg->cert != NULL) {
		if (SSL_CTX_use_certificate_chain_file(ctx, cfg->cert) != 1)
			ssl_errx("%s: cannot load certificate", cfg->cert);
		if (SSL_CTX_use_PrivateKey_file(ctx, cfg->key,
		    SSL_FILETYPE_PEM) != 1)
			ssl_errx("%s: cannot load key", cfg->key);
		if (SSL_CTX_check_private_key(ctx) != 1)
			ssl_errx("%s does not match %s", cfg->key, cfg->cert);
	}
	if (cfg->insecure) {
		SSL_CTX_set_verify(ctx, SSL_VERIFY_NONE, NULL);
		return ctx;
	}
	if (cfg->cacert != NULL) {
		if (SSL_CTX_load_verify_locations(ctx, cfg->cacert, NULL) != 1)
			ssl_errx("%s: cannot load CA certificates",
			    cfg->cacert);
	} else if (SSL_CTX_set_default_verify_paths(ctx) != 1)
		ssl_errx("SSL_CTX_set_default_verify_paths");
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
	return ctx;
}

static char *
json_escape(const char *s, size_t len, size_t *outlen)
{
	static const char hex[] = "0123456789abcdef";
	char *out, *p;
	size_t i;

	if (len > (SIZE_MAX - 1) / 6 || (out = malloc(len * 6 + 1)) == NULL)
		err(1, NULL);
	for (p = out, i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		switch (c) {
		case '"':  *p++ = '\\'; *p++ = '"'; break;
		case '\\': *p++ = '\\'; *p++ = '\\'; break;
		case '\n': *p++ = '\\'; *p++ = 'n'; break;
		case '\r': *p++ = '\\'; *p++ = 'r'; break;
		case '\t': *p++ = '\\'; *p++ = 't'; break;
		default:
			if (c < 0x20 || c == 0x7f) {
				*p++ = '\\'; *p++ = 'u'; *p++ = '0'; *p++ = '0';
				*p++ = hex[c >> 4]; *p++ = hex[c & 0xf];
			} else
				*p++ = (char)c;
		}
	}
	*p = '\0';
	*outlen = (size_t)(p - out);
	return out;
}

/* Base64 of DER in 64-column lines, as openssl base64 and PEM write it. */
static char *
base64_lines(const unsigned char *der, int len, size_t *outlen)
{
	EVP_ENCODE_CTX *ectx;
	char *out;
	int n, total;
	size_t cap;

	cap = ((size_t)len / 48 + 2) * 66 + 1;
	if ((out = malloc(cap)) == NULL || (ectx = EVP_ENCODE_CTX_new()) == NULL)
		err(1, NULL);
	EVP_EncodeInit(ectx);
	if (EVP_EncodeUpdate(ectx, (unsigned char *)out, &n, der, len) != 1)
		ssl_errx("EVP_EncodeUpdate");
	total = n;
	EVP_EncodeFinal(ectx, (unsigned char *)out + total, &n);
	total += n;
	EVP_ENCODE_CTX_free(ectx);
	out[total] = '\0';
	*outlen = (size_t)total;
	return out;
}

static int
csr_filter(const struct dirent *d)
{
	size_t n = strlen(d->d_name);

	if (d->d_name[0] == '.' || n < 5)
		return 0;
	return strcmp(d->d_name + n - 4, ".csr") == 0 ||
	    strcmp(d->d_name + n - 4, ".pem") == 0;
}

/* Build one complete HTTP request per CSR file, sorted by name. */
static void
requests_load(struct load_run *run)
{
	const struct load_config *cfg = run->cfg;
	struct dirent **names;
	int i, n;

	if ((n = scandir(cfg->csr_dir, &names, csr_filter, alphasort)) == -1)
		err(1, "%s", cfg->csr_dir);
	if (n == 0)
		errx(1, "%s: no *.csr or *.pem files", cfg->csr_dir);
	if (n > LOAD_MAX_CSRS)
		errx(1, "%s: more than %d CSRs", cfg->csr_dir, LOAD_MAX_CSRS);
	if ((run->reqs = calloc((size_t)n, sizeof(*run->reqs))) == NULL)
		err(1, NULL);

	for (i = 0; i < n; i++) {
		struct load_request *r = &run->reqs[i];
		struct stat st;
		X509_REQ *csr;
		BIO *in, *mem;
		char *path, *body, *pem, *esc;
		unsigned char *der = NULL;
		const char *ctype;
		size_t bodylen, esclen;
		long pemlen;
		int derlen, hlen;

		if (asprintf(&path, "%s/%s", cfg->csr_dir,
		    names[i]->d_name) == -1)
			err(1, NULL);
		/* A stray huge file is refused, not slurped. */
		if (stat(path, &st) == -1)
			err(1, "%s", path);
		if (!S_ISREG(st.st_mode) || st.st_size > LOAD_MAX_CSR_FILE)
			errx(1, "%s: not a file of at most %d bytes", path,
			    LOAD_MAX_CSR_FILE);
		if ((in = BIO_new_file(path, "r")) == NULL)
			ssl_errx("%s: cannot open", path);
		csr = PEM_read_bio_X509_REQ(in, NULL, NULL, NULL);
		if (csr == NULL)
			ssl_errx("%s: not a PEM certificate request", path);
		BIO_free(in);

		if (cfg->mode == LOAD_MODE_EST) {
			if ((derlen = i2d_X509_REQ(csr, &der)) <= 0)
				ssl_errx("%s: i2d_X509_REQ", path);
			body = base64_lines(der, derlen, &bodylen);
			OPENSSL_free(der);
			ctype = "application/pkcs10\r\n"
			    "Content-Transfer-Encoding: base64";
		} else {
			if ((mem = BIO_new(BIO_s_mem())) == NULL ||
			    PEM_write_bio_X509_REQ(mem, csr) != 1)
				ssl_errx("%s: PEM_write_bio_X509_REQ", path);
			pemlen = BIO_get_mem_data(mem, &pem);
			esc = json_escape(pem, (size_t)pemlen, &esclen);
			BIO_free(mem);
			if (asprintf(&body, "{\"certificate_request\":\"%s\"}",
			    esc) == -1)
				err(1, NULL);
			bodylen = strlen(body);
			free(esc);
			ctype = "application/json";
		}
		X509_REQ_free(csr);

		hlen = asprintf(&r->data,
		    "POST %s HTTP/1.1\r\n"
		    "Host: %s\r\n"
		    "User-Agent: estload\r\n"
		    "Accept: */*\r\n"
		    "Content-Type: %s\r\n"
		    "Content-Length: %zu\r\n"
		    "%s"
		    "\r\n"
		    "%s",
		    run->target.path, run->target.hostport, ctype, bodylen,
		    cfg->fresh ? "Connection: close\r\n" : "", body);
		if (hlen == -1)
			err(1, NULL);
		r->len = (size_t)hlen;
		free(body);
		free(path);
		free(names[i]);
	}
	free(names);
	run->nreqs = (size_t)n;
}

/* Show a server's bytes on one line: printable ASCII, the rest escaped. */
static void
print_sanitized(FILE *fp, const unsigned char *p, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (p[i] >= 0x20 && p[i] < 0x7f)
			fputc(p[i], fp);
		else if (p[i] == '\n')
			fputs("\\n", fp);
		else
			fprintf(fp, "\\x%02x", p[i]);
	}
}

static void
slot_reset_answer(struct load_slot *s)
{
	s->status = 0;
	s->interim = 0;
	s->conn_close = 0;
	s->keep_alive = 0;
	s->http10 = 0;
	s->chunked = 0;
	s->content_length = -1;
	s->remaining = 0;
	s->header_bytes = 0;
	s->content_type[0] = '\0';
	evbuffer_drain(s->body, evbuffer_get_length(s->body));
}

static void
slot_drop_conn(struct load_slot *s)
{
	if (s->bev != NULL) {
		bufferevent_free(s->bev);
		s->bev = NULL;
	}
	s->connected = 0;
}

static void
run_maybe_exit(struct load_run *run)
{
	if (run->started && run->active == 0 && run->warming == 0)
		event_base_loopexit(run->base, NULL);
}

/* Finish the request in flight: record it, then issue the next one. */
static void
slot_done(struct load_slot *s, int ok, const char *fmt, ...)
{
	struct load_run *run = s->run;
	struct timespec now;
	va_list ap;
	size_t n;

	evtimer_del(s->timer);
	ts_now(&now);
	run->tend = now;
	run->active--;

	if (ok) {
		run->ok++;
		hist_add(&run->hist, ts_diff(&s->start, &now));
	} else {
		run->errors++;
		if (!run->error_shown) {
			run->error_shown = 1;
			fprintf(stderr, "estload: first error: ");
			va_start(ap, fmt);
			vfprintf(stderr, fmt, ap);
			va_end(ap);
			if (s->status != 0) {
				n = evbuffer_get_length(s->body);
				fprintf(stderr, ": ");
				print_sanitized(stderr, evbuffer_pullup(s->body,
				    (ssize_t)(n < LOAD_ERR_SHOWN ? n :
				    LOAD_ERR_SHOWN)),
				    n < LOAD_ERR_SHOWN ? n : LOAD_ERR_SHOWN);
				if (n > LOAD_ERR_SHOWN)
					fprintf(stderr, "...");
			}
			fprintf(stderr, "\n");
		}
	}
	if (!ok || s->conn_close || run->cfg->fresh)
		slot_drop_conn(s);
	s->state = SLOT_IDLE;
	slot_reset_answer(s);
	slot_next(s);
}

static void
slot_send(struct load_slot *s)
{
	if (bufferevent_write(s->bev, s->req->data, s->req->len) == -1) {
		slot_done(s, 0, "cannot queue request");
		return;
	}
	s->state = SLOT_STATUS;
}

static void
describe_bev_error(struct bufferevent *bev, char *buf, size_t len)
{
	char ebuf[256];
	unsigned long e;
	size_t off = 0;
	int serr = EVUTIL_SOCKET_ERROR();

	buf[0] = '\0';
	while (bev != NULL && (e = bufferevent_get_openssl_error(bev)) != 0) {
		if (ERR_GET_LIB(e) == 0)	/* libevent's own, no text */
			continue;
		ERR_error_string_n(e, ebuf, sizeof(ebuf));
		if (off < len)
			off += (size_t)snprintf(buf + off, len - off, "%s%s",
			    off ? "; " : "", ebuf);
	}
	if (off == 0)
		snprintf(buf, len, "%s", serr ?
		    evutil_socket_error_to_string(serr) : "connection error");
}

static int
slot_read_line(struct load_slot *s, struct evbuffer *in, size_t *linelen,
    const char **why)
{
	struct evbuffer_ptr eol;
	size_t eol_len = 0;

	eol = evbuffer_search_eol(in, NULL, &eol_len, EVBUFFER_EOL_CRLF);
	if (eol.pos < 0) {
		if (evbuffer_get_length(in) > LOAD_MAX_LINE) {
			*why = "line too long";
			return -1;
		}
		return 0;
	}
	if ((size_t)eol.pos > LOAD_MAX_LINE) {
		*why = "line too long";
		return -1;
	}
	evbuffer_remove(in, s->line, (size_t)eol.pos);
	evbuffer_drain(in, eol_len);
	s->line[eol.pos] = '\0';
	*linelen = (size_t)eol.pos;
	if (s->state != SLOT_CHUNK_SIZE && s->state != SLOT_CHUNK_CRLF) {
		s->header_bytes += (size_t)eol.pos + eol_len;
		if (s->header_bytes > LOAD_MAX_HEADERS) {
			*why = "headers too large";
			return -1;
		}
	}
	return 1;
}

/* Case-insensitive search for a comma-separated token in a header value. */
static int
header_has_token(const char *value, const char *token)
{
	size_t tlen = strlen(token);
	const char *p = value;

	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (strncasecmp(p, token, tlen) == 0 &&
		    (p[tlen] == '\0' || p[tlen] == ',' || p[tlen] == ' ' ||
		    p[tlen] == '\t' || p[tlen] == ';'))
			return 1;
		while (*p != '\0' && *p != ',')
			p++;
	}
	return 0;
}

static int
slot_parse_status(struct load_slot *s, const char **why)
{
	const char *l = s->line;

	if (strncmp(l, "HTTP/1.", 7) != 0 || (l[7] != '0' && l[7] != '1') ||
	    l[8] != ' ' || l[9] < '1' || l[9] > '5' ||
	    l[10] < '0' || l[10] > '9' || l[11] < '0' || l[11] > '9' ||
	    (l[12] != ' ' && l[12] != '\0')) {
		*why = "bad status line";
		return -1;
	}
	s->http10 = l[7] == '0';
	s->status = (l[9] - '0') * 100 + (l[10] - '0') * 10 + (l[11] - '0');
	s->interim = s->status >= 100 && s->status < 200;
	if (s->status == 101) {
		*why = "unexpected 101 Switching Protocols";
		return -1;
	}
	return 0;
}

static int
slot_parse_header(struct load_slot *s, size_t len, const char **why)
{
	char *name = s->line, *value, *end;
	unsigned long long cl;

	if (len > 0 && (name[0] == ' ' || name[0] == '\t')) {
		*why = "obsolete header line folding";
		return -1;
	}
	if ((value = strchr(name, ':')) == NULL || value == name) {
		*why = "bad header line";
		return -1;
	}
	*value++ = '\0';
	while (*value == ' ' || *value == '\t')
		value++;
	end = value + strlen(value);
	while (end > value && (end[-1] == ' ' || end[-1] == '\t'))
		*--end = '\0';

	if (strcasecmp(name, "Content-Length") == 0) {
		errno = 0;
		if (*value < '0' || *value > '9' ||
		    (cl = strtoull(value, &end, 10), errno != 0) ||
		    *end != '\0') {
			*why = "bad Content-Length";
			return -1;
		}
		if (cl > LOAD_MAX_BODY) {
			*why = "Content-Length over the body limit";
			return -1;
		}
		if (s->content_length >= 0 &&
		    (unsigned long long)s->content_length != cl) {
			*why = "conflicting Content-Length headers";
			return -1;
		}
		s->content_length = (int64_t)cl;
	} else if (strcasecmp(name, "Transfer-Encoding") == 0) {
		if (!header_has_token(value, "chunked")) {
			*why = "unsupported Transfer-Encoding";
			return -1;
		}
		s->chunked = 1;
	} else if (strcasecmp(name, "Connection") == 0) {
		if (header_has_token(value, "close"))
			s->conn_close = 1;
		if (header_has_token(value, "keep-alive"))
			s->keep_alive = 1;
	} else if (strcasecmp(name, "Content-Type") == 0)
		snprintf(s->content_type, sizeof(s->content_type), "%s", value);
	return 0;
}

/* After the blank line: decide how the body is framed. */
static int
slot_headers_end(struct load_slot *s)
{
	if (s->interim) {
		slot_reset_answer(s);
		s->state = SLOT_STATUS;
		return 0;
	}
	if (s->http10 && !s->keep_alive)
		s->conn_close = 1;
	if (s->status == 204 || s->status == 304)
		return 1;
	if (s->chunked) {
		s->state = SLOT_CHUNK_SIZE;
		return 0;
	}
	if (s->content_length >= 0) {
		s->remaining = (size_t)s->content_length;
		s->state = SLOT_BODY_LENGTH;
		return s->remaining == 0;
	}
	s->conn_close = 1;
	s->state = SLOT_BODY_EOF;
	return 0;
}

static int
slot_take_body(struct load_slot *s, struct evbuffer *in, size_t n,
    const char **why)
{
	if (evbuffer_get_length(s->body) + n > LOAD_MAX_BODY) {
		*why = "body over the limit";
		return -1;
	}
	if (evbuffer_remove_buffer(in, s->body, n) != (int)n) {
		*why = "evbuffer_remove_buffer";
		return -1;
	}
	return 0;
}

/*
 * Consume what has arrived.  Returns 1 when the answer is complete, 0 when
 * more is needed, -1 on a protocol error (*why says which).
 */
static int
slot_parse(struct load_slot *s, const char **why)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	unsigned long long size;
	size_t n, len;
	char *end;
	int r;

	for (;;) {
		switch (s->state) {
		case SLOT_STATUS:
		case SLOT_HEADERS:
		case SLOT_TRAILERS:
		case SLOT_CHUNK_SIZE:
		case SLOT_CHUNK_CRLF:
			if ((r = slot_read_line(s, in, &len, why)) <= 0)
				return r;
			if (s->state == SLOT_STATUS) {
				if (slot_parse_status(s, why) == -1)
					return -1;
				s->state = SLOT_HEADERS;
			} else if (s->state == SLOT_HEADERS) {
				if (len == 0) {
					if ((r = slot_headers_end(s)) != 0)
						return r;
				} else if (slot_parse_header(s, len, why) == -1)
					return -1;
			} else if (s->state == SLOT_TRAILERS) {
				if (len == 0)
					return 1;
			} else if (s->state == SLOT_CHUNK_SIZE) {
				errno = 0;
				size = strtoull(s->line, &end, 16);
				if (end == s->line || errno != 0 ||
				    (*end != '\0' && *end != ';' &&
				    *end != ' ' && *end != '\t')) {
					*why = "bad chunk size";
					return -1;
				}
				if (size > LOAD_MAX_BODY) {
					*why = "chunk over the body limit";
					return -1;
				}
				s->remaining = (size_t)size;
				s->state = size == 0 ? SLOT_TRAILERS :
				    SLOT_CHUNK_DATA;
			} else {
				if (len != 0) {
					*why = "no CRLF after chunk";
					return -1;
				}
				s->state = SLOT_CHUNK_SIZE;
			}
			break;
		case SLOT_BODY_LENGTH:
		case SLOT_CHUNK_DATA:
			n = evbuffer_get_length(in);
			if (n > s->remaining)
				n = s->remaining;
			if (n > 0 && slot_take_body(s, in, n, why) == -1)
				return -1;
			s->remaining -= n;
			if (s->remaining > 0)
				return 0;
			if (s->state == SLOT_BODY_LENGTH)
				return 1;
			s->state = SLOT_CHUNK_CRLF;
			break;
		case SLOT_BODY_EOF:
			n = evbuffer_get_length(in);
			if (n > 0 && slot_take_body(s, in, n, why) == -1)
				return -1;
			return 0;
		default:
			*why = "data while no request is in flight";
			return -1;
		}
	}
}

/* A 200 must also carry what the request asked for. */
static int
slot_check_answer(struct load_slot *s, const char **why)
{
	static const char success[] = "\"success\":true";

	if (s->status != 200) {
		*why = "status";
		return -1;
	}
	if (evbuffer_get_length(s->body) == 0) {
		*why = "200 with an empty body";
		return -1;
	}
	if (s->run->cfg->mode == LOAD_MODE_EST) {
		if (strncasecmp(s->content_type, "application/pkcs7-mime",
		    22) != 0) {
			*why = "200 without Content-Type application/pkcs7-mime";
			return -1;
		}
	} else if (evbuffer_search(s->body, success, sizeof(success) - 1,
	    NULL).pos < 0) {
		*why = "200 without \"success\":true";
		return -1;
	}
	return 0;
}

static void
slot_complete(struct load_slot *s)
{
	struct evbuffer *in = bufferevent_get_input(s->bev);
	const char *why = NULL;

	if (!s->conn_close && evbuffer_get_length(in) > 0) {
		s->status = 0;
		slot_done(s, 0, "unexpected data after the answer");
		return;
	}
	if (slot_check_answer(s, &why) == -1) {
		if (s->status != 200)
			slot_done(s, 0, "HTTP %d", s->status);
		else
			slot_done(s, 0, "HTTP %d: %s", s->status, why);
		return;
	}
	slot_done(s, 1, NULL);
}

static void
slot_readcb(struct bufferevent *bev, void *arg)
{
	struct load_slot *s = arg;
	const char *why = NULL;
	int r;

	(void)bev;
	if (s->state == SLOT_IDLE) {
		/* Nothing asked: a stray byte makes the connection useless. */
		slot_drop_conn(s);
		return;
	}
	if ((r = slot_parse(s, &why)) == 0)
		return;
	if (r == -1) {
		s->status = 0;
		slot_done(s, 0, "protocol error: %s", why);
		return;
	}
	slot_complete(s);
}

static void
warm_done(struct load_slot *s)
{
	struct load_run *run = s->run;

	s->warming = 0;
	evtimer_del(s->timer);
	if (--run->warming == 0)
		run_start(run);
}

static void
slot_eventcb(struct bufferevent *bev, short what, void *arg)
{
	struct load_slot *s = arg;
	const char *why = NULL;
	char msg[512];

	if (what & BEV_EVENT_CONNECTED) {
		s->connected = 1;
		if (s->warming)
			warm_done(s);
		else if (s->state == SLOT_CONNECTING)
			slot_send(s);
		return;
	}

	if ((what & BEV_EVENT_EOF) && s->state == SLOT_BODY_EOF) {
		if (slot_parse(s, &why) == -1) {
			s->status = 0;
			slot_done(s, 0, "protocol error: %s", why);
		} else
			slot_complete(s);
		return;
	}

	if (what & BEV_EVENT_EOF)
		snprintf(msg, sizeof(msg), "connection closed by the server");
	else
		describe_bev_error(bev, msg, sizeof(msg));

	if (s->warming) {
		if (!s->run->error_shown) {
			s->run->error_shown = 1;
			fprintf(stderr, "estload: first error: connect: %s\n",
			    msg);
		}
		slot_drop_conn(s);
		warm_done(s);
		return;
	}
	if (s->state == SLOT_IDLE) {
		slot_drop_conn(s);
		return;
	}
	s->status = 0;
	slot_done(s, 0, "%s%s", s->connected ? "" : "connect: ", msg);
}

static void
slot_timercb(evutil_socket_t fd, short what, void *arg)
{
	struct load_slot *s = arg;
	double t = s->run->cfg->timeout;

	(void)fd;
	(void)what;
	if (s->warming) {
		if (!s->run->error_shown) {
			s->run->error_shown = 1;
			fprintf(stderr, "estload: first error: connect: %s\n",
			    s->errmsg[0] ? s->errmsg : "timeout");
		}
		s->errmsg[0] = '\0';
		slot_drop_conn(s);
		warm_done(s);
		return;
	}
	s->status = 0;
	if (s->errmsg[0] != '\0') {
		char msg[sizeof(s->errmsg)];

		memcpy(msg, s->errmsg, sizeof(msg));
		s->errmsg[0] = '\0';
		slot_done(s, 0, "%s", msg);
	} else
		slot_done(s, 0, "timeout after %gs (%s)", t,
		    !s->connected ? "connecting" :
		    s->state == SLOT_STATUS ? "waiting for the answer" :
		    "reading the answer");
}

/* Report a failure from the event loop, never by recursing into it. */
static void
slot_fail_later(struct load_slot *s, const char *msg)
{
	snprintf(s->errmsg, sizeof(s->errmsg), "%s", msg);
	slot_drop_conn(s);
	event_active(s->timer, EV_TIMEOUT, 0);
}

/* Start a connection; BEV_EVENT_CONNECTED follows the TLS handshake. */
static void
slot_connect(struct load_slot *s)
{
	struct load_run *run = s->run;
	struct load_target *t = &run->target;
	struct bufferevent *bev;
	char msg[256];
	SSL *ssl;
	int fd, one = 1;

	s->connected = 0;
	run->connects++;
	if (t->tls) {
		if ((ssl = SSL_new(run->ctx)) == NULL) {
			slot_fail_later(s, "SSL_new failed");
			return;
		}
		if (!run->cfg->insecure) {
			struct in6_addr a6;
			struct in_addr a4;

			if (inet_pton(AF_INET, t->host, &a4) == 1 ||
			    inet_pton(AF_INET6, t->host, &a6) == 1) {
				X509_VERIFY_PARAM_set1_ip_asc(
				    SSL_get0_param(ssl), t->host);
			} else {
				SSL_set_tlsext_host_name(ssl, t->host);
				SSL_set1_host(ssl, t->host);
			}
		}
		bev = bufferevent_openssl_socket_new(run->base, -1, ssl,
		    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
		if (bev == NULL) {
			SSL_free(ssl);
			slot_fail_later(s, "bufferevent_openssl_socket_new");
			return;
		}
		/* Servers that close without close_notify end a body too. */
		bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	} else if ((bev = bufferevent_socket_new(run->base, -1,
	    BEV_OPT_CLOSE_ON_FREE)) == NULL) {
		slot_fail_later(s, "bufferevent_socket_new");
		return;
	}
	s->bev = bev;
	bufferevent_setcb(bev, slot_readcb, NULL, slot_eventcb, s);
	bufferevent_enable(bev, EV_READ | EV_WRITE);
	if (bufferevent_socket_connect(bev, (struct sockaddr *)&t->addr,
	    (int)t->addrlen) == -1) {
		snprintf(msg, sizeof(msg), "connect: %s",
		    evutil_socket_error_to_string(EVUTIL_SOCKET_ERROR()));
		slot_fail_later(s, msg);
		return;
	}
	/* The socket exists but nothing is sent yet: no Nagle on handshakes. */
	if ((fd = bufferevent_getfd(bev)) >= 0)
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
		    sizeof(one));
}

static int
run_may_issue(const struct load_run *run)
{
	const struct load_config *cfg = run->cfg;

	if (run->stopping || run->errors >= cfg->max_errors)
		return 0;
	if (cfg->requests != 0 && run->issued >= cfg->requests)
		return 0;
	return 1;
}

static void
slot_next(struct load_slot *s)
{
	struct load_run *run = s->run;
	struct timeval tv;

	if (!run_may_issue(run)) {
		run_maybe_exit(run);
		return;
	}
	run->issued++;
	run->active++;
	s->req = &run->reqs[run->next_req];
	run->next_req = (run->next_req + 1) % run->nreqs;
	slot_reset_answer(s);
	s->errmsg[0] = '\0';
	ts_now(&s->start);
	tv = tv_from_secs(run->cfg->timeout);
	evtimer_add(s->timer, &tv);

	if (s->bev != NULL && s->connected) {
		slot_send(s);
		return;
	}
	s->state = SLOT_CONNECTING;
	if (s->bev == NULL)
		slot_connect(s);
}

static void
run_start(struct load_run *run)
{
	struct timeval tv;
	int i;

	run->started = 1;
	ts_now(&run->t0);
	run->tend = run->t0;
	if (run->cfg->duration > 0) {
		tv = tv_from_secs(run->cfg->duration);
		evtimer_add(run->deadline, &tv);
	}
	for (i = 0; i < run->nslots; i++)
		slot_next(&run->slots[i]);
	run_maybe_exit(run);
}

static void
run_stopcb(evutil_socket_t fd, short what, void *arg)
{
	struct load_run *run = arg;

	(void)fd;
	(void)what;
	if (run->stopping)	/* second ^C: give up on requests in flight */
		event_base_loopbreak(run->base);
	run->stopping = 1;
	run_maybe_exit(run);
}

int
main(int argc, char **argv)
{
	struct load_config cfg;
	struct load_run run;
	struct timeval tv;
	double secs;
	int i;

	signal(SIGPIPE, SIG_IGN);
	config_parse(&cfg, argc, argv);

	memset(&run, 0, sizeof(run));
	run.cfg = &cfg;
	target_init(&run.target, &cfg);
	requests_load(&run);
	if (run.target.tls)
		run.ctx = tls_init(&cfg);

	if ((run.base = event_base_new()) == NULL)
		errx(1, "event_base_new");
	if ((run.deadline = evtimer_new(run.base, run_stopcb, &run)) == NULL ||
	    (run.sigint = evsignal_new(run.base, SIGINT, run_stopcb,
	    &run)) == NULL || evsignal_add(run.sigint, NULL) == -1)
		errx(1, "cannot set up events");

	run.nslots = cfg.concurrency;
	if (cfg.requests != 0 && cfg.requests < (uint64_t)run.nslots)
		run.nslots = (int)cfg.requests;
	if ((run.slots = calloc((size_t)run.nslots,
	    sizeof(*run.slots))) == NULL)
		err(1, NULL);
	for (i = 0; i < run.nslots; i++) {
		struct load_slot *s = &run.slots[i];

		s->run = &run;
		if ((s->body = evbuffer_new()) == NULL ||
		    (s->timer = evtimer_new(run.base, slot_timercb, s)) == NULL)
			errx(1, "cannot set up slot %d", i);
		slot_reset_answer(s);
	}

	/*
	 * Keep-alive: open every connection before the clock starts, so the
	 * figures are about requests, not about the first handshakes.
	 */
	if (!cfg.fresh) {
		run.warming = run.nslots;
		tv = tv_from_secs(cfg.timeout);
		for (i = 0; i < run.nslots; i++) {
			run.slots[i].warming = 1;
			evtimer_add(run.slots[i].timer, &tv);
			slot_connect(&run.slots[i]);
		}
	} else
		run_start(&run);

	if (event_base_dispatch(run.base) == -1)
		errx(1, "event_base_dispatch");

	secs = ts_diff(&run.t0, &run.tend);
	printf("mode=%s conc=%d %s requests=%llu ok=%llu errors=%llu "
	    "secs=%.3f rate=%.1f/s p50=%.2fms p99=%.2fms\n",
	    load_mode_names[cfg.mode], cfg.concurrency,
	    cfg.fresh ? "fresh" : "keepalive",
	    (unsigned long long)(run.ok + run.errors),
	    (unsigned long long)run.ok, (unsigned long long)run.errors,
	    secs, secs > 0 ? (double)run.ok / secs : 0.0,
	    hist_quantile(&run.hist, 0.50), hist_quantile(&run.hist, 0.99));
	fflush(stdout);
	if (!cfg.fresh && run.connects > (uint64_t)run.nslots)
		fprintf(stderr, "estload: note: %llu connections for %d slots: "
		    "the server did not keep all of them alive\n",
		    (unsigned long long)run.connects, run.nslots);

	for (i = 0; i < run.nslots; i++) {
		slot_drop_conn(&run.slots[i]);
		event_free(run.slots[i].timer);
		evbuffer_free(run.slots[i].body);
	}
	free(run.slots);
	for (i = 0; i < (int)run.nreqs; i++)
		free(run.reqs[i].data);
	free(run.reqs);
	event_free(run.deadline);
	event_free(run.sigint);
	event_base_free(run.base);
	SSL_CTX_free(run.ctx);
	free(run.target.host);
	free(run.target.hostport);
	free(run.target.path);
	return (run.errors > 0 || run.ok == 0) ? 1 : 0;
}
