/* est.c: the EST endpoints (RFC 7030) under /.well-known/est/[LABEL/].
 *
 *   GET  cacerts         every generation a device may need, no client cert
 *   GET  csrattrs        what the label's profile wants in a CSR
 *   GET  whoami          who the client certificate makes the client here,
 *                        nothing issued (hsmca est renew checks a new pair)
 *   POST simpleenroll    bootstrap certificate: enrollment;
 *                        a certificate hsmca issued: renewal
 *   POST simplereenroll  renewal: same subject and SAN, new key allowed
 *   POST serverkeygen    a key pair made here and its certificate
 *
 * A HEAD is a GET without its body. Every refusal is a status and one
 * line of reason, and a line in the log. Nothing is recorded in the store
 * for a refused request; a refused simpleenroll, simplereenroll or
 * serverkeygen is appended to the audit log (est_refuse). */
#include "config.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <openssl/x509v3.h>

#include "hsmca/ca.h"
#include "hsmca/clock.h"
#include "hsmca/csr.h"
#include "hsmca/util.h"

#include "hsmcad.h"
#include "log.h"
#include "metrics.h"

#define EST_PREFIX	"/.well-known/est/"
#define EST_BOUNDARY	"hsmca-est-boundary-7f3a"

/* The GET operations first (est_handle), up to EST_WHOAMI. */
enum est_op {
	EST_CACERTS,
	EST_CSRATTRS,
	EST_WHOAMI,
	EST_SIMPLEENROLL,
	EST_SIMPLEREENROLL,
	EST_SERVERKEYGEN,
	EST_OP_MAX
};

static const char *const est_op_names[EST_OP_MAX] = {
	[EST_CACERTS] = "cacerts",
	[EST_CSRATTRS] = "csrattrs",
	[EST_WHOAMI] = "whoami",
	[EST_SIMPLEENROLL] = "simpleenroll",
	[EST_SIMPLEREENROLL] = "simplereenroll",
	[EST_SERVERKEYGEN] = "serverkeygen",
};

enum est_id_kind {
	EST_ID_NONE,		/* no client certificate */
	EST_ID_UNTRUSTED,	/* a certificate nobody here trusts */
	EST_ID_BOOTSTRAP,	/* chains to the label's factory CA */
	EST_ID_ISSUED,		/* a valid certificate hsmca issued */
	EST_ID_UNKNOWN,		/* the store could not be read to tell */
	EST_ID_KIND_MAX
};

static const char *const est_id_names[EST_ID_KIND_MAX] = {
	"none", "untrusted", "bootstrap", "issued", "unknown"
};

struct est_identity {
	enum est_id_kind	 kind;
	int			 label_trusts;	/* the label's bootstrap-ca verifies it */
	X509			*cert;
	char			 cn[256];
	char			 subject[512];
	char			 reason[256];
	struct store_cert	 rec;	/* EST_ID_ISSUED: its record */
};

/* One request on its way through the front. */
struct est_req {
	struct hsmcad		*d;
	struct evhttp_request	*req;
	struct runtime		*rt;
	enum est_op		 op;
	const struct config_est	*label;
	char			 path[128];
	char			 who[512];
	char			 actor[512];	/* for the audit log */
	struct signer_job	*job;		/* at the signer, not yet answered */
	struct tls_conn		*conn;		/* held until the answer */
	struct event		*deadline;	/* the signer's answer is late */
};

/* How long the front waits for the signer before it answers 503: past
 * the time the signer itself calls a hanging HSM unavailable. */
#define EST_SIGNER_DEADLINE_MS	(HSM_TIMEOUT_MS + 500)
/* serverkeygen waits longer: the signer makes the key pair first, and an
 * RSA-4096 key can take seconds (signer.c, enroll_keygen). */
#define EST_KEYGEN_MS		10000

/* ---- answers ---- */

static void
est_done(struct est_req *r, int status, const char *serial)
{
	struct hsmcad *d = r->d;

	if (r->op == EST_SIMPLEENROLL || r->op == EST_SIMPLEREENROLL ||
	    r->op == EST_SERVERKEYGEN)
		metrics_request(r->label != NULL ? r->label->profile : NULL,
		    status);
	log_info("%s %s %s %d%s%s", r->who,
	    http_method_name(evhttp_request_get_command(r->req)), r->path,
	    status, serial != NULL ? " serial " : "", serial != NULL ?
	    serial : "");
	runtime_unref(r->rt);
	tls_conn_release(r->conn);
	free(r);
	d->inflight--;
}

/* A refusal: the status and one line a person can act on. */
static void
est_refuse(struct est_req *r, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void
est_refuse(struct est_req *r, int status, const char *fmt, ...)
{
	struct evbuffer *body = evbuffer_new();
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	char reason[512], num[16];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(reason, sizeof(reason), fmt, ap);
	va_end(ap);
	for (char *p = reason; *p != '\0'; p++)
		if (*p == '\n' || *p == '\r')
			*p = ' ';
	evhttp_add_header(h, "Content-Type", "text/plain; charset=utf-8");
	if (status == 401)
		evhttp_add_header(h, "WWW-Authenticate",
		    HSMCAD_CHALLENGE("hsmca EST"));
	if (status == 503) {
		snprintf(num, sizeof(num), "%d", r->rt->cfg->daemon.retry_after);
		evhttp_add_header(h, "Retry-After", num);
	}
	if (body != NULL)
		evbuffer_add_printf(body, "%s\n", reason);
	http_reply(r->req, status, http_status_phrase(status), body);
	if (body != NULL)
		evbuffer_free(body);
	log_info("%s refused: %s", r->who, reason);
	/* Refused enrollments and renewals go to the audit log (requests
	 * for unknown paths do not: that is noise, not an event). */
	if (r->op == EST_SIMPLEENROLL || r->op == EST_SIMPLEREENROLL ||
	    r->op == EST_SERVERKEYGEN) {
		char object[128], detail[700];

		snprintf(object, sizeof(object), "est:%s/%s",
		    r->label != NULL ? r->label->label : "",
		    est_op_names[r->op]);
		snprintf(detail, sizeof(detail), "%d %s", status, reason);
		link_audit_refusal(r->d->link, r->actor[0] != '\0' ?
		    r->actor : "est:-", object, detail);
	}
	est_done(r, status, NULL);
}

static int
est_send_b64(struct est_req *r, const char *ctype, const unsigned char *der,
    size_t len)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(r->req);
	struct evbuffer *body;
	char *b64;
	size_t b64len = 0;

	if (util_b64_encode(der, len, &b64, &b64len, NULL) != 0 ||
	    (body = evbuffer_new()) == NULL) {
		free(b64);
		return -1;
	}
	evbuffer_add(body, b64, b64len);
	free(b64);
	evhttp_add_header(h, "Content-Type", ctype);
	evhttp_add_header(h, "Content-Transfer-Encoding", "base64");
	http_reply(r->req, 200, "OK", body);
	evbuffer_free(body);
	return 0;
}

/* ---- who is asking ---- */

SSL *
tls_request_ssl(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	struct bufferevent *bev;

	if (evcon == NULL ||
	    (bev = evhttp_connection_get_bufferevent(evcon)) == NULL)
		return NULL;
	return bufferevent_openssl_get_ssl(bev);
}

int
tls_verify_chain(X509_STORE *trust, X509 *cert, STACK_OF(X509) *untrusted,
    STACK_OF(X509) **chain, char *reason, size_t rlen)
{
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	int ok = 0;

	if (chain != NULL)
		*chain = NULL;
	if (ctx == NULL || !X509_STORE_CTX_init(ctx, trust, cert, untrusted)) {
		snprintf(reason, rlen, "out of memory");
		X509_STORE_CTX_free(ctx);
		return 0;
	}
	X509_STORE_CTX_set_time(ctx, 0, clock_now());
	if (X509_verify_cert(ctx) == 1) {
		ok = 1;
		if (chain != NULL)
			*chain = X509_STORE_CTX_get1_chain(ctx);
	} else if (reason != NULL && rlen > 0)
		snprintf(reason, rlen, "%s", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(ctx)));
	X509_STORE_CTX_free(ctx);
	return ok;
}

static void
identity_free(struct est_identity *id)
{
	X509_free(id->cert);
	store_cert_free_fields(&id->rec);
}

/* What verifying a connection's client chain found, kept with the TLS
 * connection: a keep-alive client sends many requests with one chain.
 * Redone after a reload, for another label, or once it is a minute old
 * (certificates expire); the certificate's status in the store is
 * looked up on every request. */
#define EST_ID_CACHE_SECS 60

struct est_id_cache {
	struct runtime	*rt;		/* the trust it was verified against */
	time_t		 at;
	time_t		 not_after;	/* the client certificate's */
	int		 ca_ok;		/* chains to hsmca's generations */
	char		 ca_issuer_sha1[UTIL_SHA1_HEX];	/* "": none (a root) */
	int		 label_idx;	/* bootstrap verified for this label */
	int		 boot_ok;
	char		 why[128];
};

/*
 * The same results across connections, so a device that reconnects (or a
 * fleet behind one factory CA, one TLS handshake per request) does not
 * have its chain verified again: keyed by the SHA-256 of the certificate
 * and the chain it presented, for one label, against one runtime (a
 * reload empties it). Direct-mapped, EST_ID_SHARED_SLOTS entries: a
 * collision replaces the older entry. Only what the chain verification
 * found is kept; whether an issued certificate is still valid is asked
 * of the store on every request.
 */
#define EST_ID_SHARED_SLOTS	4096

struct est_id_shared {
	unsigned char		 key[SHA256_DIGEST_LENGTH];
	struct est_id_cache	 id;	/* id.rt NULL: an empty slot */
};

static struct est_id_shared *id_shared;
static struct runtime *id_shared_rt;	/* referenced: no reuse of its address */
static EVP_MD *id_shared_md;

static int id_cache_index = -1;

static void
id_cache_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	free(ptr);
}

/* The key of a client chain as presented, for a label. */
static int
id_shared_key(X509 *cert, STACK_OF(X509) *untrusted, int label_idx,
    unsigned char key[SHA256_DIGEST_LENGTH])
{
	EVP_MD_CTX *md = NULL;
	unsigned char *der = NULL;
	X509 *x;
	int i, n, nchain, ret = -1;

	if (id_shared_md == NULL &&
	    (id_shared_md = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL)
		return -1;
	if ((md = EVP_MD_CTX_new()) == NULL ||
	    !EVP_DigestInit_ex(md, id_shared_md, NULL) ||
	    !EVP_DigestUpdate(md, &label_idx, sizeof(label_idx)))
		goto out;
	/* The leaf, then the intermediates sent, if any: a resumed session
	 * may have none (sk_X509_num(NULL) is -1), and the leaf must name
	 * the slot all the same. */
	nchain = untrusted != NULL ? sk_X509_num(untrusted) : 0;
	for (i = -1; i < nchain; i++) {
		x = i < 0 ? cert : sk_X509_value(untrusted, i);
		if ((n = i2d_X509(x, &der)) <= 0 ||
		    !EVP_DigestUpdate(md, &n, sizeof(n)) ||
		    !EVP_DigestUpdate(md, der, (size_t)n))
			goto out;
		OPENSSL_free(der);
		der = NULL;
	}
	if (!EVP_DigestFinal_ex(md, key, NULL))
		goto out;
	ret = 0;
out:
	OPENSSL_free(der);
	EVP_MD_CTX_free(md);
	return ret;
}

/* The slot for key under runtime rt; NULL when out of memory. A reload
 * (another runtime) empties the table first. */
static struct est_id_shared *
id_shared_slot(struct runtime *rt, const unsigned char *key)
{
	size_t i;

	if (id_shared == NULL && (id_shared = calloc(EST_ID_SHARED_SLOTS,
	    sizeof(*id_shared))) == NULL)
		return NULL;
	if (id_shared_rt != rt) {
		memset(id_shared, 0, EST_ID_SHARED_SLOTS * sizeof(*id_shared));
		if (id_shared_rt != NULL)
			runtime_unref(id_shared_rt);
		id_shared_rt = runtime_ref(rt);
	}
	i = ((size_t)key[0] << 8 | key[1]) % EST_ID_SHARED_SLOTS;
	return &id_shared[i];
}

static int
in_cacerts(const struct runtime *rt, X509 *x)
{
	for (int i = 0; i < sk_X509_num(rt->cacerts); i++)
		if (X509_cmp(sk_X509_value(rt->cacerts, i), x) == 0)
			return 1;
	return 0;
}

int
tls_chain_via_issued_ca(const struct runtime *rt, STACK_OF(X509) *chain,
    char *why, size_t wlen)
{
	char *subj;

	/* Intermediates only: the leaf is what is being identified, and
	 * the trust anchor was put in the trust on purpose. */
	for (int j = 1; j + 1 < sk_X509_num(chain); j++) {
		X509 *x = sk_X509_value(chain, j);

		if (!in_cacerts(rt, sk_X509_value(chain, j + 1)) ||
		    in_cacerts(rt, x))
			continue;
		if (why != NULL && wlen > 0) {
			subj = util_name_string(X509_get_subject_name(x));
			snprintf(why, wlen, "its issuer '%.80s' is an edge CA "
			    "this CA certified: it vouches for no identity "
			    "here", subj != NULL ? subj : "?");
			free(subj);
		}
		return 1;
	}
	return 0;
}

static int
id_cache_fresh(const struct est_id_cache *c, struct runtime *rt,
    int label_idx, time_t now)
{
	return c->rt == rt && c->label_idx == label_idx && now >= c->at &&
	    now - c->at < EST_ID_CACHE_SECS && now <= c->not_after;
}

static void
id_cache_verify(struct est_id_cache *c, struct runtime *rt, int label_idx,
    time_t now, X509 *cert, STACK_OF(X509) *untrusted)
{
	STACK_OF(X509) *chain = NULL;
	struct tm tm;

	memset(c, 0, sizeof(*c));
	c->rt = rt;
	c->at = now;
	c->label_idx = label_idx;
	c->not_after = ASN1_TIME_to_tm(X509_get0_notAfter(cert), &tm) ?
	    timegm(&tm) : now;
	/* hsmca's: its issuer names the generation whose records may hold
	 * it. A chain of one is a certificate of the trust itself (a root),
	 * which no record holds: no issuer to look it up under. */
	if (tls_verify_chain(rt->ca_trust, cert, untrusted, &chain, c->why,
	    sizeof(c->why))) {
		c->ca_ok = 1;
		if (sk_X509_num(chain) < 2 || util_cert_sha1(sk_X509_value(chain,
		    1), c->ca_issuer_sha1) != 0)
			c->ca_issuer_sha1[0] = '\0';
	}
	sk_X509_pop_free(chain, X509_free);
	chain = NULL;
	/* Also when it is hsmca's own: a label may trust hsmca's devices
	 * explicitly (its bootstrap-ca names hsmca's CA) to enroll for a
	 * different profile. */
	if (label_idx >= 0 && rt->bootstrap[label_idx] != NULL &&
	    tls_verify_chain(rt->bootstrap[label_idx], cert, untrusted, &chain,
	    c->ca_ok ? NULL : c->why, c->ca_ok ? 0 : sizeof(c->why)) &&
	    !tls_chain_via_issued_ca(rt, chain, c->ca_ok ? NULL : c->why,
	    c->ca_ok ? 0 : sizeof(c->why)))
		c->boot_ok = 1;
	sk_X509_pop_free(chain, X509_free);
	log_debug("client chain verified: hsmca %s, label bootstrap %s",
	    c->ca_ok ? "yes" : "no", c->boot_ok ? "yes" : "no");
}

static struct est_id_cache *
id_cache_get(SSL *ssl, struct runtime *rt, int label_idx, time_t now,
    X509 *cert, STACK_OF(X509) *untrusted)
{
	struct est_id_cache *c;
	struct est_id_shared *s = NULL;
	unsigned char key[SHA256_DIGEST_LENGTH];

	if (id_cache_index == -1)
		id_cache_index = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    id_cache_free);
	if ((c = SSL_get_ex_data(ssl, id_cache_index)) != NULL &&
	    id_cache_fresh(c, rt, label_idx, now))
		return c;
	if (c == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return NULL;
		SSL_set_ex_data(ssl, id_cache_index, c);
	}
	if (id_shared_key(cert, untrusted, label_idx, key) == 0)
		s = id_shared_slot(rt, key);
	if (s != NULL && memcmp(s->key, key, sizeof(key)) == 0 &&
	    id_cache_fresh(&s->id, rt, label_idx, now)) {
		*c = s->id;
		return c;
	}
	id_cache_verify(c, rt, label_idx, now, cert, untrusted);
	if (s != NULL) {
		memcpy(s->key, key, sizeof(key));
		s->id = *c;
	}
	return c;
}

static void
identify(struct est_req *r, int label_idx, struct est_identity *id)
{
	SSL *ssl = tls_request_ssl(r->req);
	struct est_id_cache *c;
	struct store_generation g;
	struct hsmca_err se;
	char serial[SERIAL_HEX_MAX];
	char *subj;
	int sr;

	memset(id, 0, sizeof(*id));
	memset(&g, 0, sizeof(g));
	if (ssl == NULL || (id->cert = SSL_get1_peer_certificate(ssl)) == NULL) {
		id->kind = EST_ID_NONE;
		return;
	}
	if (util_name_cn(X509_get_subject_name(id->cert), id->cn,
	    sizeof(id->cn)) != 0)
		id->cn[0] = '\0';
	if ((subj = util_name_string(X509_get_subject_name(id->cert))) != NULL) {
		snprintf(id->subject, sizeof(id->subject), "%s", subj);
		free(subj);
	}
	if ((c = id_cache_get(ssl, r->rt, label_idx, clock_now(), id->cert,
	    tls_peer_chain(ssl))) == NULL) {
		id->kind = EST_ID_UNTRUSTED;
		snprintf(id->reason, sizeof(id->reason), "out of memory");
		return;
	}

	id->label_trusts = c->boot_ok;
	/* A certificate hsmca issued, still valid in the store? A store
	 * that cannot be read says nothing either way: the device is told
	 * to come back, not that it is unknown. */
	sr = HSMCA_ERR_NOT_FOUND;
	err_clear(&se);
	if (c->ca_ok && c->ca_issuer_sha1[0] != '\0' &&
	    serial_to_hex(X509_get0_serialNumber(id->cert), serial) == 0 &&
	    (sr = store_find_generation(r->d->st, c->ca_issuer_sha1, &g,
	    &se)) == 0)
		sr = store_get_cert(r->d->st, g.id, serial, &id->rec, &se);
	if (sr != 0 && sr != HSMCA_ERR_NOT_FOUND) {
		store_generation_free_fields(&g);
		log_warnx("est: %s: the store could not be read to identify "
		    "the client certificate: %s", r->path, se.msg);
		id->kind = EST_ID_UNKNOWN;
		snprintf(id->reason, sizeof(id->reason), "the CA's records "
		    "cannot be read now; try again later");
		return;
	}
	if (sr == 0) {
		enum store_gen_status gs = ca_effective_status(&g, clock_now());
		char fp[UTIL_SHA256_HEX];

		store_generation_free_fields(&g);
		/* Its issuer may be a generation that was revoked (the
		 * client sent it along; the root still verifies it): who
		 * holds that key could mint any certificate with a
		 * recorded serial. And the record is of this very
		 * certificate, not of another with the same serial. */
		if (gs != STORE_GEN_ACTIVE && gs != STORE_GEN_INACTIVE) {
			id->kind = EST_ID_UNTRUSTED;
			snprintf(id->reason, sizeof(id->reason), "client "
			    "certificate %s is issued by CA generation %lld, "
			    "which is %s", serial, (long long)id->rec.issuer_id,
			    store_gen_status_name(gs));
			return;
		}
		if (util_cert_sha256(id->cert, fp) != 0 ||
		    strcmp(fp, id->rec.sha256) != 0) {
			id->kind = EST_ID_UNTRUSTED;
			snprintf(id->reason, sizeof(id->reason), "client "
			    "certificate %s is not the one this CA issued "
			    "with that serial", serial);
			return;
		}
		if (id->rec.status != STORE_CERT_VALID) {
			id->kind = EST_ID_UNTRUSTED;
			snprintf(id->reason, sizeof(id->reason), "client "
			    "certificate %s is %s", serial,
			    store_cert_status_name(id->rec.status));
			return;
		}
		id->kind = EST_ID_ISSUED;
		return;
	}
	store_generation_free_fields(&g);

	/* A factory (bootstrap) certificate this label trusts? */
	if (c->boot_ok) {
		id->kind = EST_ID_BOOTSTRAP;
		return;
	}
	id->kind = EST_ID_UNTRUSTED;
	if (c->ca_ok)
		snprintf(id->reason, sizeof(id->reason), "client certificate "
		    "'%.120s' chains to this CA but is not one it recorded as "
		    "issued", id->subject);
	else
		snprintf(id->reason, sizeof(id->reason), "client certificate "
		    "'%.120s' is not trusted for this label: %.80s", id->subject,
		    c->why);
}

/* A disallowed device stays out, whatever certificate it holds: by its
 * CN, or by the fingerprint of the certificate it presents. Refuses r and
 * returns -1 when it is out. */
static int
est_refuse_disallowed(struct est_req *r, const struct est_identity *id)
{
	struct hsmca_err de;
	char fp[UTIL_SHA256_HEX];
	int dr;

	err_clear(&de);
	dr = id->cn[0] != '\0' ? store_disallow_check(r->d->st, id->cn, &de) : 0;
	if (dr == 0 && util_cert_sha256(id->cert, fp) == 0)
		dr = store_disallow_check(r->d->st, fp, &de);
	if (dr == 0)
		return 0;
	est_refuse(r, dr == HSMCA_ERR_POLICY ? 403 : 503, "%s",
	    de.msg[0] ? de.msg : "the disallow list cannot be read");
	return -1;
}

/* ---- whoami ---- */

/* One line: "issued SERIAL" for a valid certificate hsmca issued,
 * "bootstrap" for one the label's bootstrap-ca trusts; refusals as for
 * an enrollment (401, 403 revoked or untrusted, disallowed). Nothing is
 * issued or recorded: a device checks that its new pair works. */
static void
est_whoami(struct est_req *r, int label_idx)
{
	struct est_identity id;
	struct evbuffer *body;

	identify(r, label_idx, &id);
	snprintf(r->who, sizeof(r->who), "client=%.400s id=%s",
	    id.subject[0] ? id.subject : "-", est_id_names[id.kind]);
	if (id.kind == EST_ID_NONE) {
		est_refuse(r, 401, "a client certificate is required");
		goto out;
	}
	if (id.kind == EST_ID_UNTRUSTED || id.kind == EST_ID_UNKNOWN) {
		est_refuse(r, id.kind == EST_ID_UNKNOWN ? 503 : 403, "%s",
		    id.reason);
		goto out;
	}
	if (est_refuse_disallowed(r, &id) != 0)
		goto out;
	if ((body = evbuffer_new()) == NULL) {
		est_refuse(r, 500, "out of memory");
		goto out;
	}
	if (id.kind == EST_ID_ISSUED)
		evbuffer_add_printf(body, "issued %s\n", id.rec.serial);
	else
		evbuffer_add_printf(body, "%s\n", est_id_names[id.kind]);
	evhttp_add_header(evhttp_request_get_output_headers(r->req),
	    "Content-Type", "text/plain; charset=utf-8");
	http_reply(r->req, 200, "OK", body);
	evbuffer_free(body);
	est_done(r, 200, NULL);
out:
	identity_free(&id);
}

/* ---- csrattrs ---- */

static int
csrattrs_der(const struct profile *p, unsigned char **der, size_t *len)
{
	STACK_OF(ASN1_TYPE) *seq = sk_ASN1_TYPE_new_null();
	X509_ATTRIBUTE *attr = NULL;
	ASN1_TYPE *t;
	unsigned char *out = NULL, *a = NULL;
	int n, ret = -1;
	static const int oids[] = { NID_ecdsa_with_SHA256, NID_sha256WithRSAEncryption };

	if (seq == NULL)
		return -1;
	for (size_t i = 0; i < sizeof(oids) / sizeof(oids[0]); i++) {
		if ((t = ASN1_TYPE_new()) == NULL)
			goto out;
		ASN1_TYPE_set(t, V_ASN1_OBJECT, OBJ_nid2obj(oids[i]));
		sk_ASN1_TYPE_push(seq, t);
	}
	/* The curves we accept, as an attribute of id-ecPublicKey. */
	if ((attr = X509_ATTRIBUTE_create(NID_X9_62_id_ecPublicKey,
	    V_ASN1_OBJECT, OBJ_nid2obj(NID_X9_62_prime256v1))) == NULL)
		goto out;
	if ((n = i2d_X509_ATTRIBUTE(attr, &a)) <= 0 || (t = ASN1_TYPE_new()) == NULL)
		goto out;
	{
		ASN1_STRING *s = ASN1_STRING_new();
		ASN1_STRING_set(s, a, n);
		ASN1_TYPE_set(t, V_ASN1_SEQUENCE, s);
	}
	sk_ASN1_TYPE_push(seq, t);
	if (p->san_allowed != 0) {
		if ((t = ASN1_TYPE_new()) == NULL)
			goto out;
		ASN1_TYPE_set(t, V_ASN1_OBJECT, OBJ_nid2obj(NID_subject_alt_name));
		sk_ASN1_TYPE_push(seq, t);
	}
	if ((n = i2d_ASN1_SEQUENCE_ANY(seq, &out)) <= 0 ||
	    (*der = malloc((size_t)n)) == NULL)
		goto out;
	memcpy(*der, out, (size_t)n);
	*len = (size_t)n;
	ret = 0;
out:
	OPENSSL_free(out);
	OPENSSL_free(a);
	X509_ATTRIBUTE_free(attr);
	sk_ASN1_TYPE_pop_free(seq, ASN1_TYPE_free);
	return ret;
}

/* ---- enrollment ---- */

/* A serverkeygen answer's base64 key, when libevent is done with it. */
static void
est_key_cleanup(const void *data, size_t len, void *arg)
{
	util_freezero((void *)(uintptr_t)data, len);
}

static void
est_job_done(struct signer_job *job, void *arg)
{
	struct est_req *r = arg;
	int ok = 1;

	if (r == NULL) {
		/* Answered 503 at the deadline; whatever came of it, the
		 * client was not given it. */
		if (job->status == 200)
			log_warnx("certificate %s was issued after its request "
			    "was answered 503 (the HSM was slow)", job->serial);
		signer_job_free(job);
		return;
	}
	event_free(r->deadline);
	r->deadline = NULL;
	r->job = NULL;
	if (job->status != 200) {
		est_refuse(r, job->status, "%s", job->reason);
		signer_job_free(job);
		return;
	}
	if (job->op == SIGNER_SERVERKEYGEN) {
		struct evbuffer *body = evbuffer_new();
		char *k64, *c64;
		size_t k64len = 0, c64len = 0;

		k64 = c64 = NULL;
		(void)util_b64_encode(job->key_der, job->key_len, &k64, &k64len,
		    NULL);
		(void)util_b64_encode(job->p7_der, job->p7_len, &c64, &c64len,
		    NULL);
		/* The key goes out by reference, never copied into libevent's
		 * chains: est_key_cleanup wipes it whenever libevent lets go
		 * of it, sent or not. OpenSSL's TLS record buffer still holds
		 * it after SSL_write, encrypted in place; that and the
		 * kernel's socket buffer are beyond our reach. */
		if (body == NULL || k64 == NULL || c64 == NULL) {
			ok = 0;
		} else if (evbuffer_add_printf(body, "--" EST_BOUNDARY "\r\n"
		    "Content-Type: application/pkcs8\r\n"
		    "Content-Transfer-Encoding: base64\r\n\r\n") < 0 ||
		    evbuffer_add_reference(body, k64, k64len, est_key_cleanup,
		    NULL) != 0) {
			ok = 0;
		} else {
			k64 = NULL;	/* the buffer's now */
			evbuffer_add_printf(body, "\r\n--" EST_BOUNDARY "\r\n"
			    "Content-Type: application/pkcs7-mime; "
			    "smime-type=certs-only\r\n"
			    "Content-Transfer-Encoding: base64\r\n\r\n");
			evbuffer_add(body, c64, c64len);
			evbuffer_add_printf(body, "\r\n--" EST_BOUNDARY "--\r\n");
			evhttp_add_header(evhttp_request_get_output_headers(r->req),
			    "Content-Type", "multipart/mixed; boundary="
			    EST_BOUNDARY);
			http_reply(r->req, 200, "OK", body);
		}
		if (k64 != NULL)
			util_freezero(k64, k64len);
		free(c64);
		if (body != NULL)
			evbuffer_free(body);
	} else if (est_send_b64(r, "application/pkcs7-mime; smime-type=certs-only",
	    job->p7_der, job->p7_len) != 0)
		ok = 0;
	if (!ok)
		est_refuse(r, 500, "cannot encode the answer (certificate %s is "
		    "recorded)", job->serial);
	else
		est_done(r, 200, job->serial);
	signer_job_free(job);
}

int
est_content_type_is(const char *ct, const char *want)
{
	size_t n = strlen(want);

	return ct != NULL && strncasecmp(ct, want, n) == 0 &&
	    (ct[n] == '\0' || ct[n] == ';' || ct[n] == ' ');
}

static int
est_deadline_ms(const struct est_req *r)
{
	return EST_SIGNER_DEADLINE_MS +
	    (r->op == EST_SERVERKEYGEN ? EST_KEYGEN_MS : 0);
}

/* The signer did not answer in time (a hanging HSM, or a queue behind
 * one): 503 now. The job stays the signer's; if it has not started it
 * never will, and its answer is dropped when it comes. */
static void
est_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct est_req *r = arg;

	link_abandon(r->d->link, r->job);
	r->job->arg = NULL;
	r->job = NULL;
	event_free(r->deadline);
	r->deadline = NULL;
	est_refuse(r, 503, "the HSM did not answer within %d ms",
	    est_deadline_ms(r));
}

static void
est_enroll(struct est_req *r, int label_idx)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(r->req);
	struct est_identity id;
	struct signer_job *job = NULL;
	const struct config_est *lb = r->label;
	unsigned char *der = NULL;
	size_t len = evbuffer_get_length(in), derlen = 0;
	int n;

	if (!est_content_type_is(evhttp_find_header(
	    evhttp_request_get_input_headers(r->req), "Content-Type"),
	    "application/pkcs10")) {
		est_refuse(r, 415, "Content-Type must be application/pkcs10");
		return;
	}
	if (r->op == EST_SERVERKEYGEN && !lb->serverkeygen) {
		est_refuse(r, 403, "serverkeygen is not enabled for EST label '%s'",
		    lb->label);
		return;
	}
	identify(r, label_idx, &id);
	snprintf(r->who, sizeof(r->who), "client=%.400s id=%s",
	    id.subject[0] ? id.subject : "-", est_id_names[id.kind]);
	snprintf(r->actor, sizeof(r->actor), "est:%s:%.400s",
	    est_id_names[id.kind], id.subject[0] ? id.subject : "-");
	switch (id.kind) {
	case EST_ID_NONE:
		est_refuse(r, 401, "a client certificate is required");
		goto out;
	case EST_ID_UNTRUSTED:
		est_refuse(r, 403, "%s", id.reason);
		goto out;
	case EST_ID_UNKNOWN:
		est_refuse(r, 503, "%s", id.reason);
		goto out;
	case EST_ID_BOOTSTRAP:
		if (r->op == EST_SIMPLEREENROLL) {
			est_refuse(r, 403, "simplereenroll needs the certificate "
			    "being renewed, not a bootstrap certificate");
			goto out;
		}
		break;
	default:
		break;
	}
	if (est_refuse_disallowed(r, &id) != 0)
		goto out;
	if (len == 0 || util_b64_decode(evbuffer_pullup(in, -1), len, &der,
	    &derlen, NULL) != 0) {
		est_refuse(r, 400, "the body is not a base64 PKCS#10 request");
		goto out;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		est_refuse(r, 500, "out of memory");
		goto out;
	}
	job->rt = runtime_ref(r->rt);
	job->csr_der = der;
	job->csr_len = derlen;
	der = NULL;
	snprintf(job->requester, sizeof(job->requester), "est:%s:%.400s",
	    est_id_names[id.kind], id.subject);
	snprintf(job->id_cn, sizeof(job->id_cn), "%s", id.cn);
	snprintf(job->profile, sizeof(job->profile), "%s", lb->profile);
	job->op = r->op == EST_SERVERKEYGEN ? SIGNER_SERVERKEYGEN : SIGNER_ENROLL;
	job->cn_match = lb->cn_match;
	if (id.kind == EST_ID_ISSUED && (r->op == EST_SIMPLEREENROLL ||
	    strcmp(id.rec.profile, lb->profile) == 0)) {
		/* A renewal: the profile it was issued with, the same names;
		 * with serverkeygen, a new key made here (an edge gateway
		 * renewing the edge CA it got that way). */
		GENERAL_NAMES *san;

		if (r->op != EST_SERVERKEYGEN)
			job->op = SIGNER_RENEW;
		job->cn_match = 0;
		snprintf(job->profile, sizeof(job->profile), "%s", id.rec.profile);
		if ((n = i2d_X509_NAME(X509_get_subject_name(id.cert),
		    &job->renew_subject)) <= 0) {
			est_refuse(r, 500, "cannot encode the current subject");
			goto out;
		}
		job->renew_subject_len = (size_t)n;
		san = X509_get_ext_d2i(id.cert, NID_subject_alt_name, NULL, NULL);
		if (san != NULL) {
			n = i2d_GENERAL_NAMES(san, &job->renew_san);
			GENERAL_NAMES_free(san);
			if (n <= 0) {
				est_refuse(r, 500, "cannot encode the current SAN");
				goto out;
			}
			job->renew_san_len = (size_t)n;
		}
	} else if (r->op == EST_SIMPLEREENROLL) {
		est_refuse(r, 403, "simplereenroll needs the certificate being "
		    "renewed");
		goto out;
	} else if (id.kind == EST_ID_ISSUED && !id.label_trusts) {
		/* An issued certificate renews itself; it is no ticket to
		 * another profile unless this label trusts hsmca's devices. */
		est_refuse(r, 403, "a certificate issued for profile %s cannot "
		    "enroll for profile %s; present a certificate this label's "
		    "bootstrap-ca trusts", id.rec.profile, lb->profile);
		goto out;
	}
	job->done = est_job_done;
	job->arg = r;
	if ((r->deadline = evtimer_new(r->d->base, est_deadline_cb, r)) != NULL) {
		struct timeval tv = { est_deadline_ms(r) / 1000,
		    (est_deadline_ms(r) % 1000) * 1000 };

		evtimer_add(r->deadline, &tv);
	}
	r->job = job;
	link_submit(r->d->link, job);
	job = NULL;
out:
	signer_job_free(job);
	free(der);
	identity_free(&id);
}

/* ---- dispatch ---- */

int
est_route(const struct config *cfg, const char *path, int *label_idx,
    int *op, char *why, size_t whylen)
{
	const char *rest, *slash;
	char label[72];

	*label_idx = -1;
	*op = EST_OP_MAX;
	if (strncmp(path, EST_PREFIX, strlen(EST_PREFIX)) != 0) {
		snprintf(why, whylen, "not an EST path (%s...)", EST_PREFIX);
		return 404;
	}
	rest = path + strlen(EST_PREFIX);
	label[0] = '\0';
	if ((slash = strchr(rest, '/')) != NULL) {
		if ((size_t)(slash - rest) >= sizeof(label)) {
			snprintf(why, whylen, "unknown EST label");
			return 404;
		}
		snprintf(label, sizeof(label), "%.*s", (int)(slash - rest), rest);
		rest = slash + 1;
	}
	for (size_t i = 0; i < cfg->nest; i++)
		if (strcmp(cfg->est[i].label, label) == 0)
			*label_idx = (int)i;
	if (*label_idx < 0) {
		snprintf(why, whylen, "unknown EST label '%s'", label);
		return 404;
	}
	for (int i = 0; i < EST_OP_MAX; i++)
		if (strcmp(rest, est_op_names[i]) == 0)
			*op = i;
	if (*op == EST_OP_MAX) {
		snprintf(why, whylen, "unknown EST operation '%s'", rest);
		return 404;
	}
	return 0;
}

void
est_handle(struct evhttp_request *req, void *arg)
{
	struct hsmcad *d = arg;
	struct est_req *r;
	const char *uri = http_target(req);
	struct evkeyvalq *hdrs = evhttp_request_get_input_headers(req);
	struct evkeyval *kv;
	char why[256];
	int nhdr = 0, label_idx = -1, op, status;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);

	if (tls_request_drop_plain(req))
		return;
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_warnx("client=- %.100s: out of memory", uri);
		http_text(req, 500, "Internal Server Error", "out of memory");
		return;
	}
	d->inflight++;
	r->d = d;
	r->req = req;
	r->conn = tls_conn_hold(req);
	r->rt = runtime_ref(d->rt);
	r->op = EST_OP_MAX;
	snprintf(r->who, sizeof(r->who), "client=-");
	snprintf(r->path, sizeof(r->path), "%.*s",
	    (int)strcspn(uri, "?"), uri);
	for (size_t i = 0; r->path[i] != '\0'; i++)
		if (!isprint((unsigned char)r->path[i]))
			r->path[i] = '?';

	for (kv = hdrs->tqh_first; kv != NULL; kv = kv->next.tqe_next)
		nhdr++;
	if (nhdr > r->rt->cfg->daemon.max_headers) {
		est_refuse(r, 431, "more than %d header lines",
		    r->rt->cfg->daemon.max_headers);
		return;
	}
	if (http_method_unknown(req)) {
		est_refuse(r, 501, "unknown method: EST takes GET, HEAD and "
		    "POST");
		return;
	}
	status = est_route(r->rt->cfg, r->path, &label_idx, &op, why,
	    sizeof(why));
	if (label_idx >= 0)
		r->label = &r->rt->cfg->est[label_idx];
	if (status != 0) {
		est_refuse(r, status, "%s", why);
		return;
	}
	r->op = (enum est_op)op;
	/* evhttp lets every method through (hsmcad.c front_http): a HEAD
	 * is a GET without the body, anything else is refused here. */
	if (r->op <= EST_WHOAMI ? cmd != EVHTTP_REQ_GET &&
	    cmd != EVHTTP_REQ_HEAD : cmd != EVHTTP_REQ_POST) {
		http_method_refused(req, r->op <= EST_WHOAMI ? "GET, HEAD" :
		    "POST");
		est_refuse(r, 405, "%s takes %s", est_op_names[r->op],
		    r->op <= EST_WHOAMI ? "GET (or HEAD)" : "POST");
		return;
	}

	switch (r->op) {
	case EST_CACERTS:
		if (est_send_b64(r, "application/pkcs7-mime; smime-type=certs-only",
		    r->rt->cacerts_p7, r->rt->cacerts_p7_len) != 0)
			est_refuse(r, 500, "cannot encode cacerts");
		else
			est_done(r, 200, NULL);
		return;
	case EST_CSRATTRS: {
		const struct profile *p = config_profile(r->rt->cfg,
		    r->label->profile);
		unsigned char *der = NULL;
		size_t len = 0;

		if (p == NULL || csrattrs_der(p, &der, &len) != 0 ||
		    est_send_b64(r, "application/csrattrs", der, len) != 0)
			est_refuse(r, 500, "cannot encode csrattrs");
		else
			est_done(r, 200, NULL);
		free(der);
		return;
	}
	case EST_WHOAMI:
		est_whoami(r, label_idx);
		return;
	default:
		est_enroll(r, label_idx);
		return;
	}
}
