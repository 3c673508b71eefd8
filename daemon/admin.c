/* admin.c: the operators' listener: JSON over mutual TLS.
 *
 *	POST /api/v1/run	{"argv": ["cert", "list", ...], "json": bool,
 *				 "files": {"@in:0": base64}}
 *		-> 200 {"exit": N, "stdout": "...", "stderr": "...",
 *			"files": {"@out:0": base64}}
 *	GET /metrics		Prometheus text format
 *	POST /api/v1/batch/{begin,check,sign,refused,end}
 *				factory batches from a station (hsmca batch
 *				sign --server): the steps of lib/batch.c's
 *				local mode, run here for the operator
 *
 * An operator is a client certificate that verifies against [admin]
 * client-ca, is not revoked or disallowed here, and has a role in the
 * config (admins, operators, auditors). /api/v1/run runs the very
 * command hsmca runs locally (cli/cli.c), on a signer worker, for the
 * least role cli.c's table allows; a path on the appliance is never
 * opened for a remote caller. Every call is audit-logged, refusals
 * included. Refusals: 400 bad request, 401 no client certificate, 403
 * identity or role, 404 path, 405 method, 501 a method libevent does not
 * know, 413 body too large (libevent's own page). A client
 * that is no operator is refused on its connection's first bytes
 * (admin_gate), before a body is read.
 */
#include "config.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>
#include <jansson.h>
#include <openssl/x509.h>

#include "hsmca/audit.h"
#include "hsmca/batch.h"
#include "hsmca/clock.h"
#include "hsmca/serial.h"
#include "hsmca/util.h"

#include "../cli/cli.h"
#include "hsmcad.h"
#include "log.h"
#include "metrics.h"

#define ADMIN_ARGV_MAX		64
#define ADMIN_ARG_MAX		4096

struct admin_call {
	struct hsmcad		*d;
	struct evhttp_request	*req;
	enum config_role	 role;
	char			 actor[300];
	json_t			*argv;
	json_t			*files_in;
	int			 json;
	int			 changes_ca;	/* reload generations after */
	int			 batch_step;	/* SIGNER_BATCH: enum batch_step */
	struct tls_conn		*conn;		/* held until the answer */
	json_t			*body;		/* SIGNER_BATCH: the request */
	json_t			*reply;
};

enum batch_step {
	BS_BEGIN,
	BS_CHECK,
	BS_SIGN,
	BS_REFUSED,
	BS_END,
	BS_MAX
};

static const char *const batch_step_names[BS_MAX] = {
	"begin", "check", "sign", "refused", "end"
};

/* getopt keeps global state: one command line at a time. */
static pthread_mutex_t admin_run_lock = PTHREAD_MUTEX_INITIALIZER;

/* The store's batch lock (lib/batch.c batch_lock), held while any of
 * this process's workers serves a station's sign request: taken by the
 * first, released by the last. A local run on the appliance holds it
 * for its whole run, so the two never sign at once; and with no request
 * in flight, a batch reservation pending belongs to a run that died. */
static pthread_mutex_t admin_batch_mu = PTHREAD_MUTEX_INITIALIZER;
static int admin_batch_fd = -1;
static int admin_batch_users;

void
admin_reply_error(struct hsmcad *d, struct evhttp_request *req, int status,
    const char *reason)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *b = evbuffer_new();
	json_t *o = json_pack("{s:s}", "error", reason);
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	char num[16];

	evhttp_add_header(h, "Content-Type", "application/json");
	if (status == 401)
		evhttp_add_header(h, "WWW-Authenticate",
		    HSMCAD_CHALLENGE("hsmca admin API"));
	if (status == 503) {
		snprintf(num, sizeof(num), "%d", d->rt->cfg->daemon.retry_after);
		evhttp_add_header(h, "Retry-After", num);
	}
	if (b != NULL && s != NULL)
		evbuffer_add_printf(b, "%s\n", s);
	/* A HEAD (a 405 where a path takes POST): the headers alone. */
	http_reply(req, status, http_status_phrase(status), b);
	if (b != NULL)
		evbuffer_free(b);
	free(s);
	json_decref(o);
}

/* What a connection's client certificate is, worked out once per
 * connection and runtime (chain verification is the expensive part); the
 * store is asked on every request, so a revocation or a disallow entry
 * locks an operator out at once. */
struct admin_id_cache {
	struct runtime	*rt;
	time_t		 at;
	char		 cn[256];
	char		 fp[UTIL_SHA256_HEX];
	char		 serial[SERIAL_HEX_MAX];
	int		 trusted;		/* verifies against client-ca */
	char		 reason[128];		/* why not */
	int		 ours;			/* issued by a generation of ours */
	char		 issuer_sha1[UTIL_SHA1_HEX];
};

#define ADMIN_ID_CACHE_SECS	60

static int admin_id_index = -1;

static void
admin_id_free(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	free(ptr);
}

static struct admin_id_cache *
admin_id_get(struct hsmcad *d, SSL *ssl, X509 *cert)
{
	STACK_OF(X509) *untrusted = tls_peer_chain(ssl), *chain = NULL;
	struct admin_id_cache *c;
	time_t now = clock_now();
	X509_NAME *subj;
	char reason[128];
	int idx;

	if (admin_id_index == -1)
		admin_id_index = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    admin_id_free);
	if ((c = SSL_get_ex_data(ssl, admin_id_index)) != NULL &&
	    c->rt == d->rt && now >= c->at &&
	    now - c->at < ADMIN_ID_CACHE_SECS)
		return c;
	if (c == NULL) {
		if ((c = calloc(1, sizeof(*c))) == NULL)
			return NULL;
		SSL_set_ex_data(ssl, admin_id_index, c);
	}
	memset(c, 0, sizeof(*c));
	c->rt = d->rt;
	c->at = now;
	if (util_cert_sha256(cert, c->fp) != 0)
		snprintf(c->fp, sizeof(c->fp), "?");
	subj = X509_get_subject_name(cert);
	if ((idx = X509_NAME_get_index_by_NID(subj, NID_commonName, -1)) >= 0) {
		ASN1_STRING *s = X509_NAME_ENTRY_get_data(
		    X509_NAME_get_entry(subj, idx));
		unsigned char *u = NULL;
		int n = ASN1_STRING_to_UTF8(&u, s);

		if (n > 0 && (size_t)n < sizeof(c->cn) &&
		    strlen((char *)u) == (size_t)n)
			memcpy(c->cn, u, (size_t)n + 1);
		OPENSSL_free(u);
	}
	if (d->rt->admin_trust == NULL)
		snprintf(c->reason, sizeof(c->reason), "none configured");
	else if (tls_verify_chain(d->rt->admin_trust, cert, untrusted, &chain,
	    c->reason, sizeof(c->reason)))
		c->trusted = !tls_chain_via_issued_ca(d->rt, chain, c->reason,
		    sizeof(c->reason));
	sk_X509_pop_free(chain, X509_free);
	chain = NULL;
	if (tls_verify_chain(d->rt->ca_trust, cert, untrusted, &chain, reason,
	    sizeof(reason)) && sk_X509_num(chain) >= 2 &&
	    util_cert_sha1(sk_X509_value(chain, 1), c->issuer_sha1) == 0 &&
	    serial_to_hex(X509_get0_serialNumber(cert), c->serial) == 0)
		c->ours = 1;
	sk_X509_pop_free(chain, X509_free);
	return c;
}

/* Is the operator's certificate one hsmca issued and no longer valid in
 * the store (revoked, on hold), or a disallowed identity? Then why says
 * so. A store that cannot say locks out too. */
static int
admin_locked_out(struct hsmcad *d, const struct admin_id_cache *c, char *why,
    size_t wlen)
{
	struct store_generation g;
	struct store_cert rec;
	struct hsmca_err de;
	int locked = 0, dr;

	memset(&g, 0, sizeof(g));
	memset(&rec, 0, sizeof(rec));
	if (c->ours && store_find_generation(d->st, c->issuer_sha1, &g,
	    NULL) == 0 && store_get_cert(d->st, g.id, c->serial, &rec,
	    NULL) == 0 && rec.status != STORE_CERT_VALID) {
		snprintf(why, wlen, "the client certificate %s is %s",
		    c->serial, store_cert_status_name(rec.status));
		locked = 1;
	}
	store_generation_free_fields(&g);
	store_cert_free_fields(&rec);
	if (locked)
		return 1;
	err_clear(&de);
	dr = c->cn[0] != '\0' ? store_disallow_check(d->st, c->cn, &de) : 0;
	if (dr == 0)
		dr = store_disallow_check(d->st, c->fp, &de);
	if (dr != 0) {
		snprintf(why, wlen, "%s", de.msg[0] != '\0' ? de.msg :
		    "the disallow list cannot be read");
		return 1;
	}
	return 0;
}

/* Who is calling on the connection ssl, and with which role: 0, or the
 * HTTP status to refuse with and why. */
static int
admin_identify(struct hsmcad *d, SSL *ssl, enum config_role *role,
    char *actor, size_t alen, char *why, size_t wlen)
{
	X509 *cert = ssl != NULL ? SSL_get0_peer_certificate(ssl) : NULL;
	struct admin_id_cache *c;

	if (cert == NULL) {
		snprintf(why, wlen, "the admin API needs a client certificate");
		return 401;
	}
	if ((c = admin_id_get(d, ssl, cert)) == NULL) {
		snprintf(why, wlen, "out of memory");
		return 503;
	}
	snprintf(actor, alen, "admin:%s%s%.16s", c->cn[0] != '\0' ? "CN=" :
	    "", c->cn, c->cn[0] != '\0' ? "" : c->fp);
	if (c->cn[0] != '\0')
		snprintf(actor + strlen(actor), alen - strlen(actor),
		    " sha256:%.16s", c->fp);
	if (!c->trusted) {
		snprintf(why, wlen, "the client certificate is not from the "
		    "operators' CA: %s", c->reason);
		return 403;
	}
	if (admin_locked_out(d, c, why, wlen))
		return 403;
	*role = config_admin_role(d->rt->cfg, c->cn[0] != '\0' ? c->cn :
	    NULL, c->fp);
	if (*role == CONFIG_ROLE_NONE) {
		snprintf(why, wlen, "no role for %s%s (sha256:%s): add it to "
		    "[admin] admins, operators or auditors", c->cn[0] != '\0' ?
		    "CN=" : "", c->cn, c->fp);
		return 403;
	}
	return 0;
}

static void
admin_refuse(struct hsmcad *d, struct evhttp_request *req, int status,
    const char *actor, const char *what, const char *why)
{
	log_info("admin %s %s: %d %s", actor[0] != '\0' ? actor : "-", what,
	    status, why);
	link_audit_refusal(d->link, actor[0] != '\0' ? actor :
	    "admin:unidentified", what, why);
	admin_reply_error(d, req, status, why);
}

/* ---- before a request: the connection's gate ---- */

/* The path of the request line at the start of in, for the log and the
 * record, if it came whole with the first bytes ("-" if not); *head if
 * the method is HEAD. */
static void
admin_request_line(struct evbuffer *in, char *what, size_t wlen, int *head)
{
	char line[256], *sp, *end;
	ev_ssize_t n;

	*head = 0;
	snprintf(what, wlen, "-");
	if ((n = evbuffer_copyout(in, line, sizeof(line) - 1)) <= 0)
		return;
	line[n] = '\0';
	if ((end = strpbrk(line, "\r\n")) == NULL ||
	    (sp = strchr(line, ' ')) == NULL || sp > end)
		return;
	*end = '\0';
	*head = sp - line == 4 && strncmp(line, "HEAD", 4) == 0;
	/* The target without its query or the version after it. */
	sp++;
	sp[strcspn(sp, " ?")] = '\0';
	snprintf(what, wlen, "%.100s", sp);
	for (unsigned char *p = (unsigned char *)what; *p != '\0'; p++)
		if (*p < 0x20 || *p >= 0x7f)
			*p = '?';
}

/* A whole HTTP answer, written before evhttp has parsed the request: a
 * refusal, and the connection closes after it. */
static void
admin_answer_raw(struct evbuffer *b, struct hsmcad *d, int status,
    const char *why, int head)
{
	json_t *o = json_pack("{s:s}", "error", why);
	char *s = o != NULL ? json_dumps(o, JSON_COMPACT) : NULL;
	char date[64];
	struct tm tm;
	time_t now = time(NULL);

	if (gmtime_r(&now, &tm) == NULL ||
	    strftime(date, sizeof(date), "%a, %d %b %Y %H:%M:%S GMT", &tm) == 0)
		date[0] = '\0';
	evbuffer_add_printf(b, "HTTP/1.1 %d %s\r\n"
	    "Content-Type: application/json\r\n", status,
	    http_status_phrase(status));
	if (status == 401)
		evbuffer_add_printf(b, "WWW-Authenticate: %s\r\n",
		    HSMCAD_CHALLENGE("hsmca admin API"));
	if (status == 503)
		evbuffer_add_printf(b, "Retry-After: %d\r\n",
		    d->rt->cfg->daemon.retry_after);
	if (date[0] != '\0')
		evbuffer_add_printf(b, "Date: %s\r\n", date);
	evbuffer_add_printf(b, "Content-Length: %zu\r\n"
	    "Connection: close\r\n\r\n", s != NULL ? strlen(s) + 1 : 0);
	if (!head && s != NULL)
		evbuffer_add_printf(b, "%s\n", s);
	free(s);
	json_decref(o);
}

/* tls.c's gate for the admin listener. Every admin path needs an
 * operator, so a client that is none (no certificate, one not from
 * client-ca, revoked, disallowed, without a role) is answered with the
 * connection's first bytes and none of its body is kept; the body of a
 * request is read only for an operator, and admin_handle decides again
 * per request. */
static int
admin_gate(struct hsmcad *d, SSL *ssl, struct evbuffer *in,
    struct evbuffer *answer)
{
	enum config_role role = CONFIG_ROLE_NONE;
	char actor[300] = "", why[512], what[128];
	int status, head;

	if (d->draining)
		return 0;	/* admin_handle answers 503 */
	if ((status = admin_identify(d, ssl, &role, actor, sizeof(actor), why,
	    sizeof(why))) == 0)
		return 0;
	admin_request_line(in, what, sizeof(what), &head);
	log_info("admin %s %s: %d %s (before the body)", actor[0] != '\0' ?
	    actor : "-", what, status, why);
	link_audit_refusal(d->link, actor[0] != '\0' ? actor :
	    "admin:unidentified", what, why);
	admin_answer_raw(answer, d, status, why, head);
	return status;
}

/* The handshake names the operator CAs ([admin] client-ca), not the EST
 * listener's. */
struct bufferevent *
admin_bevcb(struct event_base *base, void *arg)
{
	struct hsmcad *d = listener_daemon(arg);
	struct bufferevent *bev;

	if ((bev = tls_bevcb(base, arg)) == NULL)
		return NULL;
	if (tls_conn_set_ca_names(bev, d->rt->admin_ca_names) != 0) {
		bufferevent_free(bev);
		return listener_unserved(arg);
	}
	tls_conn_set_gate(bev, admin_gate);
	return bev;
}

/* ---- on a signer worker ---- */

static char *
memstream_take(FILE *fp, char **buf)
{
	if (fp != NULL)
		fclose(fp);
	return *buf;
}

void
admin_job_run(struct hsm *h, struct store *st, struct signer_job *job)
{
	struct admin_call *call = job->admin;
	struct cli c;
	struct audit_event ev;
	char *argv[ADMIN_ARGV_MAX + 1], *obuf = NULL, *ebuf = NULL;
	char what[64] = "", detail[128];
	size_t olen = 0, elen = 0, argc = 0, i;
	json_t *v;
	int code;

	memset(&c, 0, sizeof(c));
	json_array_foreach(call->argv, i, v)
		argv[argc++] = (char *)json_string_value(v);
	argv[argc] = NULL;
	c.json = call->json;
	c.cfg = job->rt->cfg;
	c.st = st;
	c.hsm = h;
	c.ca.actor = call->actor;
	c.files_in = call->files_in;
	c.files_out = json_object();
	c.out = open_memstream(&obuf, &olen);
	c.errout = open_memstream(&ebuf, &elen);
	if (c.out == NULL || c.errout == NULL || c.files_out == NULL) {
		job->status = 503;
		snprintf(job->reason, sizeof(job->reason), "out of memory");
		goto out;
	}
	pthread_mutex_lock(&admin_run_lock);
	code = cli_run_remote(&c, call->role, (int)argc, argv, what,
	    sizeof(what));
	pthread_mutex_unlock(&admin_run_lock);
	memstream_take(c.out, &obuf);
	memstream_take(c.errout, &ebuf);
	c.out = c.errout = NULL;
	call->reply = json_pack("{s:i, s:s, s:s, s:O}", "exit", code,
	    "stdout", obuf != NULL ? obuf : "", "stderr", ebuf != NULL ?
	    ebuf : "", "files", c.files_out);
	job->status = call->reply != NULL ? 200 : 503;
	/* The call itself, beside whatever the command recorded. */
	memset(&ev, 0, sizeof(ev));
	snprintf(detail, sizeof(detail), "role %s, exit %d",
	    cli_role_name(call->role), code);
	ev.actor = call->actor;
	ev.action = AUDIT_ADMIN_CALL;
	ev.object = what;
	ev.outcome = code == CLI_EXIT_OK ? AUDIT_OK : AUDIT_FAILED;
	ev.detail = detail;
	if (audit_append(st, &ev, &c.err) != 0)
		log_warnx("admin: cannot audit %s by %s: %s", what, call->actor,
		    c.err.msg);
	log_info("admin %s %s: exit %d", call->actor, what, code);
out:
	if (c.out != NULL)
		fclose(c.out);
	if (c.errout != NULL)
		fclose(c.errout);
	free(obuf);
	free(ebuf);
	json_decref(c.files_out);
}

/* A member of a batch request, checked: a string of 1 to max bytes (0:
 * any), or an integer >= 0. */
static const char *
body_string(json_t *o, const char *key, size_t max)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || json_string_length(v) == 0 ||
	    (max != 0 && json_string_length(v) > max) ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return NULL;
	return json_string_value(v);
}

static int
body_int(json_t *o, const char *key, int64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0)
		return -1;
	*out = (int64_t)json_integer_value(v);
	return 0;
}

/* The outcome of one CSR as the station reads it: ok, or refused or
 * failed with the reason local mode would have given. */
static json_t *
batch_outcome(int code, const char *reason)
{
	if (code == 0)
		return json_pack("{s:s}", "status", "ok");
	return json_pack("{s:s, s:s}", "status", batch_is_refusal(code) ?
	    "refused" : "failed", "reason", reason[0] != '\0' ? reason :
	    hsmca_strerror(code));
}

/* The reply to one CSR signed, or its refusal. */
static json_t *
batch_signed(int code, const struct batch_cert *bc, const char *reason)
{
	if (code != 0)
		return batch_outcome(code, reason);
	/* "chain" only for a certificate of another generation than the
	 * batch's. */
	return json_pack("{s:s, s:s, s:s, s:s, s:s*}", "status",
	    bc->status == BATCH_EXISTING ? "existing" : "issued",
	    "serial", bc->serial, "sha256", bc->sha256, "pem", bc->pem,
	    "chain", bc->chain);
}

/* sign with "csrs": [{"device", "csr", "profile"?}, ...]: each checked
 * as one CSR would be, the good ones signed together (batch_sign_csrs);
 * {"results": [...]}, one per CSR in order, as the one-CSR answer.
 * chain_gen: the generation whose chain the station got from begin. */
static void
admin_batch_sign_many(struct hsm *h, struct store *st, struct issuer *iss,
    struct signer_job *job, const struct profile *dflt,
    const char *requester, int64_t batch_id, int64_t chain_gen)
{
	struct admin_call *call = job->admin;
	json_t *a = json_object_get(call->body, "csrs"), *o, *res = NULL, *v;
	const struct csr **good = NULL;
	const struct profile **gp = NULL;
	struct csr **csrs = NULL;
	struct batch_cert *bc = NULL;
	struct hsmca_err *errs = NULL, e;
	unsigned char *der;
	const char *s;
	size_t n = json_array_size(a), k = 0, i, derlen;
	int *rets = NULL, *idx = NULL, ret;

	if (n == 0 || n > BATCH_CHUNK_MAX) {
		snprintf(job->reason, sizeof(job->reason), "\"csrs\": 1 to %d "
		    "CSRs", BATCH_CHUNK_MAX);
		return;
	}
	csrs = calloc(n, sizeof(*csrs));
	good = calloc(n, sizeof(*good));
	gp = calloc(n, sizeof(*gp));
	bc = calloc(n, sizeof(*bc));
	errs = calloc(n, sizeof(*errs));
	rets = calloc(n, sizeof(*rets));
	idx = calloc(n, sizeof(*idx));
	if (csrs == NULL || good == NULL || gp == NULL || bc == NULL ||
	    errs == NULL || rets == NULL || idx == NULL ||
	    (res = json_array()) == NULL) {
		job->status = 503;
		snprintf(job->reason, sizeof(job->reason), "out of memory");
		goto out;
	}
	/* Every entry well formed, or the request is refused whole. */
	for (i = 0; i < n; i++) {
		o = json_array_get(a, i);
		gp[i] = dflt;
		if (json_is_object(o) && (s = body_string(o, "profile",
		    64)) != NULL && (gp[i] = config_profile(job->rt->cfg,
		    s)) == NULL) {
			snprintf(job->reason, sizeof(job->reason), "unknown "
			    "profile '%.64s'", s);
			goto out;
		}
		if (!json_is_object(o) || gp[i] == NULL ||
		    body_string(o, "csr", 0) == NULL) {
			snprintf(job->reason, sizeof(job->reason), "expected "
			    "\"profile\" and \"csr\" (base64 DER) in "
			    "\"csrs\" entry %zu", i);
			goto out;
		}
	}
	/* What the station checked, checked again, and the signature the
	 * station leaves to the appliance. */
	for (i = 0; i < n; i++) {
		s = body_string(json_array_get(a, i), "csr", 0);
		der = NULL;
		err_clear(&e);
		if ((ret = util_b64_decode((const unsigned char *)s,
		    strlen(s), &der, &derlen, &e)) == 0 &&
		    (ret = csr_parse(der, derlen, &csrs[i], &e)) == 0 &&
		    (ret = profile_check_csr(gp[i], csrs[i], &e)) == 0)
			ret = batch_check_csr(st, csrs[i], &e);
		free(der);
		if (ret != 0) {
			rets[i] = ret;
			errs[i] = e;
			continue;
		}
		good[k] = csrs[i];
		gp[k] = gp[i];
		idx[k++] = (int)i;
	}
	if (k > 0 && iss == NULL) {
		for (i = 0; i < k; i++)
			rets[idx[i]] = err_set(&errs[idx[i]],
			    HSMCA_ERR_HSM_UNAVAILABLE, "no active CA "
			    "generation to sign with");
	} else if (k > 0) {
		struct batch_cert *kbc = NULL;
		struct hsmca_err *kerrs = NULL;
		int *krets = NULL;

		kbc = calloc(k, sizeof(*kbc));
		kerrs = calloc(k, sizeof(*kerrs));
		krets = calloc(k, sizeof(*krets));
		if (kbc == NULL || kerrs == NULL || krets == NULL) {
			for (i = 0; i < k; i++)
				rets[idx[i]] = err_set(&errs[idx[i]],
				    HSMCA_ERR_ALLOC, "out of memory");
		} else {
			(void)batch_sign_csrs(h, st, iss, requester,
			    batch_id, chain_gen, good, gp, k, kbc, krets,
			    kerrs);
			for (i = 0; i < k; i++) {
				rets[idx[i]] = krets[i];
				errs[idx[i]] = kerrs[i];
				bc[idx[i]] = kbc[i];
			}
		}
		free(kbc);
		free(kerrs);
		free(krets);
	}
	for (i = 0; i < n; i++) {
		if ((v = batch_signed(rets[i], &bc[i], errs[i].msg)) == NULL ||
		    json_array_append_new(res, v) != 0) {
			job->status = 503;
			snprintf(job->reason, sizeof(job->reason), "out of "
			    "memory");
			goto out;
		}
	}
	if ((call->reply = json_pack("{s:o}", "results", res)) != NULL)
		res = NULL;
	job->status = call->reply != NULL ? 200 : 503;
out:
	json_decref(res);
	for (i = 0; csrs != NULL && i < n; i++)
		csr_free(csrs[i]);
	for (i = 0; bc != NULL && i < n; i++)
		batch_cert_free_fields(&bc[i]);
	free(csrs);
	free(good);
	free(gp);
	free(bc);
	free(errs);
	free(rets);
	free(idx);
}

/* One step of a station's batch (admin_batch_run). */
static void
admin_batch_step(struct hsm *h, struct store *st, struct issuer *iss,
    struct signer_job *job)
{
	struct admin_call *call = job->admin;
	json_t *b = call->body;
	const struct profile *p = NULL;
	struct batch_cert bc;
	struct csr *csr = NULL;
	struct hsmca_err e;
	unsigned char *der = NULL;
	const char *s, *device, *reason, *summary;
	char requester[sizeof(call->actor) + 32], *chain = NULL;
	size_t derlen = 0;
	int64_t id = 0, n = 0, signed_ = 0, refused = 0, outcome = 0;
	int64_t gen = 0;
	int ret;

	memset(&bc, 0, sizeof(bc));
	err_clear(&e);
	job->status = 400;
	if ((s = body_string(b, "profile", 64)) != NULL &&
	    (p = config_profile(job->rt->cfg, s)) == NULL) {
		snprintf(job->reason, sizeof(job->reason), "unknown profile "
		    "'%.64s'", s);
		return;
	}
	/* check comes before begin (--fail-fast); a sign names its batch,
	 * whose reservations it makes. */
	if (call->batch_step != BS_BEGIN && (body_int(b, "batch", &id) != 0 ||
	    (id == 0 && call->batch_step == BS_SIGN))) {
		snprintf(job->reason, sizeof(job->reason), "\"batch\": the "
		    "batch id from begin");
		return;
	}
	snprintf(requester, sizeof(requester), "%s batch:%lld", call->actor,
	    (long long)id);
	/* The generation whose chain begin gave the station (absent: the
	 * one signing now): a certificate of another comes with its own. */
	if (json_object_get(b, "generation") != NULL &&
	    body_int(b, "generation", &gen) != 0) {
		snprintf(job->reason, sizeof(job->reason), "\"generation\": "
		    "the CA generation from begin");
		return;
	}
	if (call->batch_step == BS_SIGN && json_object_get(b, "csrs") !=
	    NULL) {
		admin_batch_sign_many(h, st, iss, job, p, requester, id, gen);
		return;
	}
	if (call->batch_step == BS_CHECK || call->batch_step == BS_SIGN) {
		if (p == NULL || (s = body_string(b, "csr", 0)) == NULL ||
		    util_b64_decode((const unsigned char *)s, strlen(s), &der,
		    &derlen, &e) != 0) {
			snprintf(job->reason, sizeof(job->reason), "expected "
			    "\"profile\" and \"csr\" (base64 DER)");
			goto out;
		}
		/* What the station checked, checked again, and the
		 * signature the station leaves to the appliance. */
		if ((ret = csr_parse(der, derlen, &csr, &e)) != 0 ||
		    (ret = profile_check_csr(p, csr, &e)) != 0 ||
		    (ret = batch_check_csr(st, csr, &e)) != 0) {
			call->reply = batch_outcome(ret, e.msg);
			goto done;
		}
	}
	switch (call->batch_step) {
	case BS_BEGIN:
		if (p == NULL || (s = body_string(b, "sha256", 64)) == NULL ||
		    strlen(s) != 64 || body_int(b, "items", &n) != 0) {
			snprintf(job->reason, sizeof(job->reason), "expected "
			    "\"sha256\", \"profile\" and \"items\"");
			goto out;
		}
		if (iss == NULL) {
			job->status = 503;
			snprintf(job->reason, sizeof(job->reason), "no active CA "
			    "generation to sign with");
			goto out;
		}
		if ((ret = batch_record_begin(st, iss, s, p->name, call->actor,
		    (size_t)n, &id, &chain, &e)) != 0) {
			job->status = err_http_status(ret);
			snprintf(job->reason, sizeof(job->reason), "%s", e.msg);
			goto out;
		}
		call->reply = json_pack("{s:I, s:s, s:I}", "batch",
		    (json_int_t)id, "chain", chain, "generation",
		    (json_int_t)iss->gen_id);
		break;
	case BS_CHECK:
		/* Asked for --fail-fast: what signing would refuse too. */
		ret = batch_check_sign(st, iss, csr, p, &e);
		call->reply = batch_outcome(ret, e.msg);
		break;
	case BS_SIGN:
		if (iss == NULL) {
			call->reply = batch_outcome(HSMCA_ERR_HSM_UNAVAILABLE,
			    "no active CA generation to sign with");
			break;
		}
		ret = batch_sign_csr(h, st, iss, requester, id, gen, csr, p,
		    &bc, &e);
		call->reply = batch_signed(ret, &bc, e.msg);
		break;
	case BS_REFUSED:
		if ((device = body_string(b, "device", BATCH_DEVICE_MAX)) ==
		    NULL || (reason = body_string(b, "reason", 1024)) == NULL) {
			snprintf(job->reason, sizeof(job->reason), "expected "
			    "\"device\" and \"reason\"");
			goto out;
		}
		batch_record_refused(st, requester, id, device, reason);
		call->reply = json_object();
		break;
	case BS_END:
		if ((summary = body_string(b, "summary", 1024)) == NULL ||
		    body_int(b, "outcome", &outcome) != 0 ||
		    outcome >= AUDIT_OUTCOME_MAX ||
		    body_int(b, "signed", &signed_) != 0 ||
		    body_int(b, "refused", &refused) != 0) {
			snprintf(job->reason, sizeof(job->reason), "expected "
			    "\"outcome\", \"summary\", \"signed\" and "
			    "\"refused\"");
			goto out;
		}
		if ((ret = batch_record_end(st, id, call->actor, (int)outcome,
		    summary, (size_t)signed_, (size_t)refused, &e)) != 0) {
			job->status = err_http_status(ret);
			snprintf(job->reason, sizeof(job->reason), "%s", e.msg);
			goto out;
		}
		call->reply = json_object();
		break;
	default:
		goto out;
	}
done:
	job->status = call->reply != NULL ? 200 : 503;
out:
	free(chain);
	batch_cert_free_fields(&bc);
	csr_free(csr);
	free(der);
}

/* Take the batch lock for a sign request, unless a local run holds it
 * (HSMCA_ERR_BUSY). The first to take it marks the reservations a dead
 * run left behind failed. */
static int
admin_batch_enter(struct store *st, const char *store_path,
    struct hsmca_err *e)
{
	struct hsmca_err se;
	int64_t stale = 0;
	int ret = 0;

	pthread_mutex_lock(&admin_batch_mu);
	if (admin_batch_users == 0) {
		if ((ret = batch_lock(store_path, &admin_batch_fd, e)) != 0)
			goto out;
		err_clear(&se);
		if (store_batch_fail_reserved(st, &stale, &se) != 0)
			log_warnx("admin: batch: %s", se.msg);
		else if (stale > 0)
			log_info("admin: batch: %lld reservations a run that "
			    "died left behind marked failed",
			    (long long)stale);
	}
	admin_batch_users++;
out:
	pthread_mutex_unlock(&admin_batch_mu);
	return ret;
}

static void
admin_batch_leave(void)
{
	pthread_mutex_lock(&admin_batch_mu);
	if (--admin_batch_users == 0) {
		close(admin_batch_fd);
		admin_batch_fd = -1;
	}
	pthread_mutex_unlock(&admin_batch_mu);
}

void
admin_batch_run(struct hsm *h, struct store *st, struct issuer *iss,
    struct signer_job *job)
{
	struct admin_call *call = job->admin;
	struct hsmca_err e;
	int ret;

	if (call->batch_step != BS_SIGN) {
		admin_batch_step(h, st, iss, job);
		return;
	}
	err_clear(&e);
	if ((ret = admin_batch_enter(st, job->rt->cfg->store.path,
	    &e)) != 0) {
		job->status = 503;
		snprintf(job->reason, sizeof(job->reason), "%s",
		    ret == HSMCA_ERR_BUSY ? "a batch is signing on the "
		    "appliance itself (hsmca batch sign); try again once it "
		    "ends" : e.msg);
		return;
	}
	admin_batch_step(h, st, iss, job);
	admin_batch_leave();
}

/* ---- back on the loop ---- */

static void
admin_call_free(struct admin_call *call)
{
	tls_conn_release(call->conn);
	json_decref(call->body);
	json_decref(call->argv);
	json_decref(call->files_in);
	json_decref(call->reply);
	free(call);
}

/* ---- the call on the wire (privsep) ---- */

char *
admin_call_pack(const void *admin)
{
	const struct admin_call *call = admin;
	json_t *o;
	char *s;

	if ((o = json_pack("{s:i, s:s, s:O?, s:O?, s:b, s:i, s:O?}", "role",
	    (int)call->role, "actor", call->actor, "argv", call->argv,
	    "files", call->files_in, "json", call->json, "step",
	    call->batch_step, "body", call->body)) == NULL)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

/* The signer re-checks the shape of what the front parsed: argv is an
 * array of bounded strings, the role and step are known ones. */
void *
admin_call_unpack(const unsigned char *json, size_t len)
{
	struct admin_call *call;
	json_t *o, *argv = NULL, *files = NULL, *body = NULL, *v;
	const char *actor;
	int role, jsonout, step;
	size_t i;

	if ((o = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES,
	    NULL)) == NULL)
		return NULL;
	if (json_unpack(o, "{s:i, s:s, s?o, s?o, s:b, s:i, s?o}", "role",
	    &role, "actor", &actor, "argv", &argv, "files", &files, "json",
	    &jsonout, "step", &step, "body", &body) != 0)
		goto bad;
	/* What the front had not is sent as null. */
	if (json_is_null(argv))
		argv = NULL;
	if (json_is_null(files))
		files = NULL;
	if (json_is_null(body))
		body = NULL;
	if (role < 0 || role >= CONFIG_ROLE_MAX ||
	    step < 0 || step >= BS_MAX || strlen(actor) >= 300 ||
	    (argv != NULL && (!json_is_array(argv) ||
	    json_array_size(argv) > ADMIN_ARGV_MAX)) ||
	    (files != NULL && !json_is_object(files)) ||
	    (body != NULL && !json_is_object(body)) ||
	    (argv == NULL && body == NULL) ||
	    (call = calloc(1, sizeof(*call))) == NULL)
		goto bad;
	json_array_foreach(argv, i, v)
		if (!json_is_string(v) || strlen(json_string_value(v)) >=
		    ADMIN_ARG_MAX) {
			free(call);
			json_decref(o);
			return NULL;
		}
	call->role = (enum config_role)role;
	snprintf(call->actor, sizeof(call->actor), "%s", actor);
	call->argv = json_incref(argv);
	call->files_in = json_incref(files);
	call->json = jsonout;
	call->batch_step = step;
	call->body = json_incref(body);
	json_decref(o);
	return call;
bad:
	json_decref(o);
	return NULL;
}

char *
admin_reply_pack(const void *admin)
{
	const struct admin_call *call = admin;

	return call->reply != NULL ? json_dumps(call->reply, JSON_COMPACT) :
	    NULL;
}

int
admin_reply_unpack(void *admin, const unsigned char *json, size_t len)
{
	struct admin_call *call = admin;

	json_decref(call->reply);
	call->reply = json_loadb((const char *)json, len, 0, NULL);
	return call->reply != NULL && json_is_object(call->reply) ? 0 : -1;
}

void
admin_call_drop(void *admin)
{
	admin_call_free(admin);
}

static void
admin_job_done(struct signer_job *job, void *arg)
{
	struct admin_call *call = arg;
	struct hsmcad *d = call->d;
	struct evbuffer *b;
	char *s;

	d->inflight--;
	if (job->status != 200 || call->reply == NULL) {
		admin_reply_error(d, call->req, job->status != 200 ? job->status :
		    503, job->reason[0] != '\0' ? job->reason :
		    "the command could not run");
		goto out;
	}
	if (call->changes_ca)
		rotation_check_now(d);
	s = json_dumps(call->reply, JSON_COMPACT);
	b = evbuffer_new();
	if (s == NULL || b == NULL) {
		admin_reply_error(d, call->req, 503, "out of memory");
		free(s);
		if (b != NULL)
			evbuffer_free(b);
		goto out;
	}
	evbuffer_add(b, s, strlen(s));
	evbuffer_add(b, "\n", 1);
	free(s);
	evhttp_add_header(evhttp_request_get_output_headers(call->req),
	    "Content-Type", "application/json");
	http_reply(call->req, 200, "OK", b);
	evbuffer_free(b);
out:
	runtime_unref(job->rt);
	job->rt = NULL;
	admin_call_free(call);
	job->admin = NULL;
	signer_job_free(job);
}

/* A refusal quotes what it was sent: one line, whatever that held. */
static int
one_line(int status, char *why)
{
	for (unsigned char *p = (unsigned char *)why; *p != '\0'; p++)
		if (*p < 0x20 || *p == 0x7f)
			*p = '?';
	return status;
}

int
admin_parse_request(const char *body, size_t len, struct admin_request *out,
    char *why, size_t wlen)
{
	json_error_t jerr;
	json_t *o, *argv, *files, *j, *v;
	const char *k;
	size_t i;

	if ((o = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr)) == NULL) {
		snprintf(why, wlen, "the body is not JSON: %s (line %d)",
		    jerr.text, jerr.line);
		return one_line(400, why);
	}
	argv = json_object_get(o, "argv");
	files = json_object_get(o, "files");
	j = json_object_get(o, "json");
	if (!json_is_object(o) || !json_is_array(argv) ||
	    json_array_size(argv) == 0 ||
	    json_array_size(argv) > ADMIN_ARGV_MAX ||
	    (files != NULL && !json_is_object(files)) ||
	    (j != NULL && !json_is_boolean(j))) {
		snprintf(why, wlen, "expected {\"argv\": [1 to %d strings], "
		    "\"json\": boolean, \"files\": {name: base64}}",
		    ADMIN_ARGV_MAX);
		json_decref(o);
		return one_line(400, why);
	}
	json_object_foreach(o, k, v)
		if (strcmp(k, "argv") != 0 && strcmp(k, "files") != 0 &&
		    strcmp(k, "json") != 0) {
			snprintf(why, wlen, "unknown member \"%.32s\"", k);
			json_decref(o);
			return one_line(400, why);
		}
	json_array_foreach(argv, i, v) {
		const char *s = json_string_value(v);

		if (s == NULL || json_string_length(v) > ADMIN_ARG_MAX ||
		    strlen(s) != json_string_length(v)) {
			snprintf(why, wlen, "argv[%zu] is not a string of at "
			    "most %d bytes without NUL", i, ADMIN_ARG_MAX);
			json_decref(o);
			return one_line(400, why);
		}
	}
	if (files != NULL)
		json_object_foreach(files, k, v)
			if (strncmp(k, "@in:", 4) != 0 || strlen(k) > 15 ||
			    !json_is_string(v)) {
				snprintf(why, wlen, "files: \"%.32s\" is not "
				    "an input file (\"@in:N\": base64)", k);
				json_decref(o);
				return one_line(400, why);
			}
	out->argv = json_incref(argv);
	out->files = files != NULL ? json_incref(files) : NULL;
	out->json = j != NULL && json_is_true(j);
	json_decref(o);
	return 0;
}

static void
admin_run(struct hsmcad *d, struct evhttp_request *req, enum config_role role,
    const char *actor)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	struct admin_call *call = NULL;
	struct admin_request parsed;
	struct signer_job *job = NULL;
	const struct cli_cmd *cmd;
	enum config_role need;
	const char *files, *ct;
	char why[256], what[64] = "run", *words[3] = { NULL, NULL, NULL };
	size_t len = evbuffer_get_length(in);
	int consumed = 0, status;

	ct = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "Content-Type");
	if (ct == NULL || strncmp(ct, "application/json", 16) != 0) {
		admin_refuse(d, req, 415, actor, what, "the body must be "
		    "application/json");
		return;
	}
	if ((call = calloc(1, sizeof(*call))) == NULL) {
		admin_reply_error(d, req, 503, "out of memory");
		return;
	}
	call->d = d;
	call->req = req;
	call->role = role;
	snprintf(call->actor, sizeof(call->actor), "%s", actor);
	if ((status = admin_parse_request((const char *)evbuffer_pullup(in,
	    (ev_ssize_t)len), len, &parsed, why, sizeof(why))) != 0) {
		admin_refuse(d, req, status, actor, what, why);
		admin_call_free(call);
		return;
	}
	call->argv = parsed.argv;
	call->files_in = parsed.files;
	call->json = parsed.json;
	/* Authorize here, before any work: the worker checks again. */
	for (int i = 0; i < 2 && (size_t)i < json_array_size(call->argv); i++)
		words[i] = (char *)json_string_value(json_array_get(call->argv,
		    (size_t)i));
	if ((cmd = cli_find_cmd(words[1] != NULL ? 2 : 1, words,
	    &consumed)) == NULL) {
		snprintf(why, sizeof(why), "unknown command '%.64s'", words[0]);
		admin_refuse(d, req, 400, actor, what, why);
		admin_call_free(call);
		return;
	}
	snprintf(what, sizeof(what), "%s%s%s", cmd->group ? cmd->group : "",
	    cmd->group ? " " : "", cmd->name);
	if (!cli_remote_rule(cmd, &need, &files)) {
		snprintf(why, sizeof(why), "%s runs only on the appliance, not "
		    "through the admin API", what);
		admin_refuse(d, req, 403, actor, what, why);
		admin_call_free(call);
		return;
	}
	if (role > need) {
		snprintf(why, sizeof(why), "%s needs the %s role; %s has %s",
		    what, cli_role_name(need), actor, cli_role_name(role));
		admin_refuse(d, req, 403, actor, what, why);
		admin_call_free(call);
		return;
	}
	call->changes_ca = cmd->group != NULL && strcmp(cmd->group, "ca") == 0 &&
	    need == CONFIG_ROLE_ADMIN;
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		admin_reply_error(d, req, 503, "out of memory");
		admin_call_free(call);
		return;
	}
	call->conn = tls_conn_hold(req);
	job->op = SIGNER_ADMIN;
	job->rt = runtime_ref(d->rt);
	job->admin = call;
	job->done = admin_job_done;
	job->arg = call;
	d->inflight++;
	link_submit(d->link, job);
}

static void
admin_batch(struct hsmcad *d, struct evhttp_request *req,
    enum config_role role, const char *actor, const char *step)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	struct admin_call *call;
	struct signer_job *job;
	json_error_t jerr;
	char what[64], why[256];
	int i;

	for (i = 0; i < BS_MAX; i++)
		if (strcmp(step, batch_step_names[i]) == 0)
			break;
	snprintf(what, sizeof(what), "batch %.32s", step);
	if (i == BS_MAX) {
		admin_refuse(d, req, 404, actor, what, "no such batch step "
		    "(begin, check, sign, refused, end)");
		return;
	}
	if (role > CONFIG_ROLE_OPERATOR) {
		snprintf(why, sizeof(why), "batch signing needs the operator "
		    "role; %s has %s", actor, cli_role_name(role));
		admin_refuse(d, req, 403, actor, what, why);
		return;
	}
	if ((call = calloc(1, sizeof(*call))) == NULL ||
	    (job = calloc(1, sizeof(*job))) == NULL) {
		free(call);
		admin_reply_error(d, req, 503, "out of memory");
		return;
	}
	call->d = d;
	call->req = req;
	call->role = role;
	call->batch_step = i;
	snprintf(call->actor, sizeof(call->actor), "%s", actor);
	if ((call->body = json_loadb((const char *)evbuffer_pullup(in,
	    (ev_ssize_t)len), len, JSON_REJECT_DUPLICATES, &jerr)) == NULL ||
	    !json_is_object(call->body)) {
		snprintf(why, sizeof(why), "the body is not a JSON object%s%s",
		    call->body == NULL ? ": " : "", call->body == NULL ?
		    jerr.text : "");
		admin_refuse(d, req, one_line(400, why), actor, what, why);
		admin_call_free(call);
		free(job);
		return;
	}
	call->conn = tls_conn_hold(req);
	job->op = SIGNER_BATCH;
	job->rt = runtime_ref(d->rt);
	job->admin = call;
	job->done = admin_job_done;
	job->arg = call;
	d->inflight++;
	link_submit(d->link, job);
}

void
admin_handle(struct evhttp_request *req, void *arg)
{
	struct hsmcad *d = arg;
	const char *path = evhttp_uri_get_path(evhttp_request_get_evhttp_uri(req));
	enum evhttp_cmd_type method = evhttp_request_get_command(req);
	enum config_role role = CONFIG_ROLE_NONE;
	char actor[300] = "", why[512];
	int status;

	if (tls_request_drop_plain(req))
		return;
	if (path == NULL)
		path = "";
	tls_conn_served(req);
	if (d->draining) {
		admin_reply_error(d, req, 503, "shutting down");
		return;
	}
	if ((status = admin_identify(d, tls_request_ssl(req), &role, actor,
	    sizeof(actor), why, sizeof(why))) != 0) {
		admin_refuse(d, req, status, actor, path, why);
		return;
	}
	/* Every method reaches here (hsmcad.c front_http). */
	if (http_method_unknown(req))
		admin_refuse(d, req, 501, actor, path, "unknown method: the "
		    "admin API takes GET, HEAD and POST");
	else if (strcmp(path, "/api/v1/run") == 0) {
		if (method != EVHTTP_REQ_POST) {
			http_method_refused(req, "POST");
			admin_refuse(d, req, 405, actor, path, "use POST");
			return;
		}
		admin_run(d, req, role, actor);
	} else if (strncmp(path, "/api/v1/batch/", 14) == 0) {
		if (method != EVHTTP_REQ_POST) {
			http_method_refused(req, "POST");
			admin_refuse(d, req, 405, actor, path, "use POST");
			return;
		}
		admin_batch(d, req, role, actor, path + 14);
	} else if (strcmp(path, "/metrics") == 0) {
		/* A HEAD as the GET (metrics_reply). */
		if (method != EVHTTP_REQ_GET && method != EVHTTP_REQ_HEAD) {
			http_method_refused(req, "GET, HEAD");
			admin_refuse(d, req, 405, actor, path, "use GET");
			return;
		}
		metrics_handle(d, req);
	} else
		admin_refuse(d, req, 404, actor, path, "no such path (POST "
		    "/api/v1/run, GET /metrics)");
}
