/* ocsp.c (hsmcad): the OCSP responder (RFC 6960, RFC 5019 profile) on
 * the plain HTTP listener, at /ocsp (POST) and /ocsp/<base64> (GET).
 * Requests are answered from the in-memory cache of pre-signed
 * responses (lib/ocsp.c) without touching the HSM. A timer on the loop
 * decides when to pre-sign; the signatures are made on the signer
 * workers (SIGNER_OCSP), which put them into the cache themselves (it
 * is thread-safe). A miss for one of our generations is signed on a
 * worker too (SIGNER_OCSP_UNKNOWN), at most OCSP_UNKNOWN_RATE a second.
 *
 * This session the CA key of each generation signs its responses.
 * Delegated responder certificates (ocsp_responder_cert_make, a key per
 * generation in the token) come next, with their config and schema. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <event2/buffer.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/ocsp.h>

#include "hsmca/ca.h"
#include "hsmca/clock.h"
#include "hsmca/ocsp.h"

#include "hsmcad.h"
#include "log.h"

/* nextUpdate - thisUpdate; becomes [ca] ocsp-validity later. */
#define OCSP_VALIDITY		((int64_t)86400)
/* A response is re-signed once half its validity has passed. */
#define OCSP_REFRESH		(OCSP_VALIDITY / 2)
/* Signatures per SIGNER_OCSP job, so one job never runs for minutes;
 * the loop sends the next one as soon as it is back. */
#define OCSP_BATCH		256
/* How often the loop looks at the store, and a full sweep at least
 * this often (a change of revocation reason moves no count). */
#define OCSP_TICK_SEC		2
#define OCSP_SWEEP_SEC		60
/* Signatures for cache misses (unknown serials), per second: random
 * serials must not be able to keep the HSM busy. */
#define OCSP_UNKNOWN_RATE	50.0

/* ---- on a signer worker ---- */

static void
signer_of(struct hsm *h, const struct issuer *iss, struct ocsp_signer *sg)
{
	memset(sg, 0, sizeof(*sg));
	sg->issuer = iss->cert;
	sg->responder_cert = NULL;	/* the CA key signs (see above) */
	sg->key = hsm_key_private(iss->key);
	sg->md = iss->md;
	sg->h = h;
}

static int
sign_put(const struct ocsp_signer *sg, struct ocsp_cache *c,
    const struct store_cert *rec, const EVP_MD *id_md, time_t now,
    unsigned char **keep, size_t *keep_len, struct hsmca_err *e)
{
	unsigned char *der = NULL;
	size_t len = 0;
	int ret;

	ret = ocsp_presign(sg, rec, id_md, now, OCSP_VALIDITY, &der, &len, e);
	if (ret == 0)
		ret = ocsp_cache_put(c, der, len, e);
	if (ret == 0 && keep != NULL) {
		*keep = der;
		*keep_len = len;
		der = NULL;
	}
	OPENSSL_free(der);
	return ret;
}

/* The certificate's response in the cache says what the store says:
 * the same status, and for a revocation the same time and reason. */
static int
cached_matches(struct ocsp_cache *c, X509 *issuer,
    const struct store_cert *rec, time_t now)
{
	BIGNUM *bn = NULL;
	ASN1_INTEGER *ai = NULL;
	OCSP_CERTID *id = NULL;
	OCSP_REQUEST *r = NULL;
	OCSP_RESPONSE *resp = NULL;
	OCSP_BASICRESP *bs = NULL;
	OCSP_SINGLERESP *one;
	ASN1_GENERALIZEDTIME *revtime = NULL;
	unsigned char *req = NULL, *der = NULL;
	const unsigned char *p;
	struct ocsp_query q;
	struct hsmca_err e;
	size_t len = 0;
	int n, found = 0, status, reason = -1, want_reason, match = 0;

	if (!BN_hex2bn(&bn, rec->serial) ||
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL ||
	    (id = OCSP_cert_id_new(EVP_sha1(), X509_get_subject_name(issuer),
	    X509_get0_pubkey_bitstr(issuer), ai)) == NULL ||
	    (r = OCSP_REQUEST_new()) == NULL)
		goto out;
	if (OCSP_request_add0_id(r, id) == NULL)
		goto out;
	id = NULL;
	if ((n = i2d_OCSP_REQUEST(r, &req)) <= 0 ||
	    ocsp_answer(c, req, (size_t)n, now, &der, &len, &found, &q,
	    &e) != 0 || !found)
		goto out;
	p = der;
	if ((resp = d2i_OCSP_RESPONSE(NULL, &p, (long)len)) == NULL ||
	    (bs = OCSP_response_get1_basic(resp)) == NULL ||
	    (one = OCSP_resp_get0(bs, 0)) == NULL)
		goto out;
	status = OCSP_single_get0_status(one, &reason, &revtime, NULL, NULL);
	if (rec->status == STORE_CERT_VALID)
		match = status == V_OCSP_CERTSTATUS_GOOD;
	else if (rec->status == STORE_CERT_REVOKED) {
		want_reason = rec->revoke_reason > 0 ? rec->revoke_reason :
		    OCSP_REVOKED_STATUS_NOSTATUS;
		match = status == V_OCSP_CERTSTATUS_REVOKED &&
		    reason == want_reason && revtime != NULL &&
		    ASN1_TIME_cmp_time_t(revtime, rec->revoked_at) == 0;
	}
out:
	ERR_clear_error();
	BN_free(bn);
	ASN1_INTEGER_free(ai);
	OCSP_CERTID_free(id);
	OCSP_REQUEST_free(r);
	OCSP_RESPONSE_free(resp);
	OCSP_BASICRESP_free(bs);
	OPENSSL_free(req);
	OPENSSL_free(der);
	return match;
}

static int
gen_serves(const struct store_generation *g, time_t now)
{
	enum store_gen_status st = ca_effective_status(g, now);

	return g->kind == STORE_GEN_ISSUING && g->cert_der != NULL &&
	    (st == STORE_GEN_ACTIVE || st == STORE_GEN_INACTIVE ||
	    st == STORE_GEN_REVOKED);
}

/* SIGNER_OCSP: register every generation that answers, then pre-sign
 * (at most OCSP_BATCH) the responses that are missing, differ from the
 * store, or are due. job->more: the budget ran out first. */
static void
ocsp_job_presign(struct hsm *h, struct store *st, struct ocsp_cache *c,
    struct signer_job *job)
{
	struct store_generation *gens = NULL;
	struct issuer **iss = NULL;
	struct store_cert *certs = NULL, rec;
	struct store_cert_filter f;
	struct ocsp_due *due = NULL;
	struct ocsp_signer sg;
	struct hsmca_err e;
	size_t ngens = 0, ncerts = 0, ndue = 0, budget = OCSP_BATCH, signed_n = 0;
	time_t now = clock_now();

	err_clear(&e);
	if (store_list_generations(st, &gens, &ngens, &e) != 0 ||
	    (ngens > 0 && (iss = calloc(ngens, sizeof(*iss))) == NULL))
		goto fail;
	for (size_t i = 0; i < ngens && budget > 0; i++) {
		if (!gen_serves(&gens[i], now))
			continue;
		if (issuer_open(h, st, &gens[i], &job->rt->cfg->ca, &iss[i],
		    &e) != 0 ||
		    ocsp_cache_add_issuer(c, gens[i].id, iss[i]->cert, &e) != 0) {
			log_warnx("OCSP: generation %lld: %s",
			    (long long)gens[i].id, e.msg);
			continue;
		}
		signer_of(h, iss[i], &sg);
		memset(&f, 0, sizeof(f));
		f.issuer_id = gens[i].id;
		f.status = -1;
		f.expired = 0;
		f.now = now;
		if (store_list_certs(st, &f, &certs, &ncerts, &e) != 0)
			goto fail;
		for (size_t k = 0; k < ncerts && budget > 0; k++) {
			if ((certs[k].status != STORE_CERT_VALID &&
			    certs[k].status != STORE_CERT_REVOKED) ||
			    cached_matches(c, iss[i]->cert, &certs[k], now))
				continue;
			budget--;
			if (sign_put(&sg, c, &certs[k], NULL, now, NULL, NULL,
			    &e) != 0)
				log_warnx("OCSP: serial %s: %s",
				    certs[k].serial, e.msg);
			else
				signed_n++;
		}
		store_certs_free(certs, ncerts);
		certs = NULL;
		ncerts = 0;
	}
	/* Refresh what is due, for either CertID hash. An unknown is left
	 * to lapse: the next request for it signs it again, rate-limited. */
	if (budget > 0 && ocsp_cache_due(c, now + OCSP_REFRESH, budget, &due,
	    &ndue, &e) == 0) {
		for (size_t k = 0; k < ndue; k++) {
			size_t g;

			if (due[k].status == V_OCSP_CERTSTATUS_UNKNOWN)
				continue;
			for (g = 0; g < ngens && gens[g].id != due[k].gen_id; g++)
				;
			if (g == ngens || iss[g] == NULL)
				continue;
			memset(&rec, 0, sizeof(rec));
			if (store_get_cert(st, due[k].gen_id, due[k].serial,
			    &rec, &e) == 0) {
				signer_of(h, iss[g], &sg);
				budget--;
				if (sign_put(&sg, c, &rec, due[k].id_nid ==
				    NID_sha256 ? EVP_sha256() : NULL, now, NULL,
				    NULL, &e) == 0)
					signed_n++;
				else
					log_warnx("OCSP: serial %s: %s",
					    rec.serial, e.msg);
			}
			store_cert_free_fields(&rec);
		}
	}
	job->more = budget == 0;
	job->crl_number = (int64_t)signed_n;
	job->status = 200;
	goto out;
fail:
	job->status = 500;
	snprintf(job->reason, sizeof(job->reason), "%s", e.msg);
out:
	free(due);
	store_certs_free(certs, ncerts);
	for (size_t i = 0; iss != NULL && i < ngens; i++)
		issuer_free(iss[i]);
	free(iss);
	store_generations_free(gens, ngens);
}

/* SIGNER_OCSP_UNKNOWN: the response to a miss for (gen_id, serial):
 * the certificate's status if the store knows it (a SHA-256 CertID, a
 * certificate issued a moment ago), unknown otherwise. */
static void
ocsp_job_miss(struct hsm *h, struct store *st, struct ocsp_cache *c,
    struct signer_job *job)
{
	struct store_generation g;
	struct store_cert rec;
	struct issuer *iss = NULL;
	struct ocsp_signer sg;
	struct hsmca_err e;
	const EVP_MD *id_md = job->id_nid == NID_sha256 ? EVP_sha256() : NULL;
	unsigned char *der = NULL;
	size_t len = 0;
	time_t now = clock_now();
	int ret;

	memset(&g, 0, sizeof(g));
	memset(&rec, 0, sizeof(rec));
	err_clear(&e);
	if (store_get_generation(st, job->gen_id, &g, &e) != 0 ||
	    issuer_open(h, st, &g, &job->rt->cfg->ca, &iss, &e) != 0 ||
	    ocsp_cache_add_issuer(c, g.id, iss->cert, &e) != 0)
		goto fail;
	signer_of(h, iss, &sg);
	ret = store_get_cert(st, job->gen_id, job->serial, &rec, &e);
	if (ret == 0 && (rec.status == STORE_CERT_VALID ||
	    rec.status == STORE_CERT_REVOKED)) {
		if (sign_put(&sg, c, &rec, id_md, now, &der, &len, &e) != 0)
			goto fail;
	} else if (ret == 0 || ret == HSMCA_ERR_NOT_FOUND) {
		if (ocsp_unknown(&sg, job->serial, id_md, now, OCSP_VALIDITY,
		    &der, &len, &e) != 0 || ocsp_cache_put(c, der, len, &e) != 0)
			goto fail;
	} else
		goto fail;
	if ((job->p7_der = malloc(len)) == NULL) {
		snprintf(e.msg, sizeof(e.msg), "out of memory");
		goto fail;
	}
	memcpy(job->p7_der, der, len);
	job->p7_len = len;
	job->status = 200;
	goto out;
fail:
	job->status = 500;
	snprintf(job->reason, sizeof(job->reason), "%s", e.msg);
out:
	OPENSSL_free(der);
	issuer_free(iss);
	store_cert_free_fields(&rec);
	store_generation_free_fields(&g);
}

void
ocsp_job_run(struct hsm *h, struct store *st, struct ocsp_cache *c,
    struct signer_job *job)
{
	if (c == NULL) {
		job->status = 503;
		snprintf(job->reason, sizeof(job->reason), "no OCSP cache");
	} else if (job->op == SIGNER_OCSP)
		ocsp_job_presign(h, st, c, job);
	else
		ocsp_job_miss(h, st, c, job);
}

/* Right after issuance: the new certificate's response, one more
 * signature, so it is answered from memory at once. */
void
ocsp_issued(struct hsm *h, struct issuer *iss, struct ocsp_cache *c,
    const char *serial)
{
	struct ocsp_signer sg;
	struct store_cert rec;
	struct hsmca_err e;

	if (c == NULL)
		return;
	err_clear(&e);
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.serial, sizeof(rec.serial), "%s", serial);
	rec.status = STORE_CERT_VALID;
	rec.revoke_reason = -1;
	signer_of(h, iss, &sg);
	if (ocsp_cache_add_issuer(c, iss->gen_id, iss->cert, &e) != 0 ||
	    sign_put(&sg, c, &rec, NULL, clock_now(), NULL, NULL, &e) != 0)
		log_warnx("OCSP response for new serial %s (the next sweep "
		    "retries): %s", serial, e.msg);
}

/* ---- on the loop ---- */

static void ocsp_tick(evutil_socket_t, short, void *);

static void
presign_done(struct signer_job *job, void *arg)
{
	struct hsmcad *d = arg;

	d->ocsp_busy = 0;
	if (job->status != 200)
		log_warnx("OCSP pre-signing: %s", job->reason);
	else if (job->crl_number > 0)
		log_info("OCSP: %lld responses pre-signed, %zu held",
		    (long long)job->crl_number, ocsp_cache_count(d->ocsp));
	d->ocsp_more = job->status == 200 && job->more;
	signer_job_free(job);
	if (d->ocsp_more)
		ocsp_tick(-1, 0, d);
}

/* Certificates valid and revoked, over every generation: a change means
 * an issuance or a revocation the cache has not seen. */
static void
store_counts(struct hsmcad *d, int64_t *valid, int64_t *revoked)
{
	struct store_cert_filter f;

	memset(&f, 0, sizeof(f));
	f.expired = -1;
	f.status = STORE_CERT_VALID;
	if (store_count_certs(d->st, &f, valid, NULL) != 0)
		*valid = -1;
	f.status = STORE_CERT_REVOKED;
	if (store_count_certs(d->st, &f, revoked, NULL) != 0)
		*revoked = -1;
}

static void
ocsp_tick(evutil_socket_t fd, short what, void *arg)
{
	struct hsmcad *d = arg;
	struct signer_job *job;
	int64_t valid = -1, revoked = -1;
	time_t now = clock_now();

	if (d->draining || d->ocsp_busy)
		return;
	store_counts(d, &valid, &revoked);
	if (!d->ocsp_more && valid == d->ocsp_valid_seen &&
	    revoked == d->ocsp_revoked_seen && valid >= 0 && revoked >= 0 &&
	    now < d->ocsp_swept + OCSP_SWEEP_SEC)
		return;
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return;
	job->op = SIGNER_OCSP;
	job->rt = runtime_ref(d->rt);
	job->done = presign_done;
	job->arg = d;
	d->ocsp_busy = 1;
	d->ocsp_valid_seen = valid;
	d->ocsp_revoked_seen = revoked;
	d->ocsp_swept = now;
	signer_submit(d->signer, job);
}

int
ocsp_serve_start(struct hsmcad *d, struct hsmca_err *e)
{
	struct timeval tv = { OCSP_TICK_SEC, 0 };
	int ret;

	if ((ret = ocsp_cache_new(&d->ocsp, e)) != 0)
		return ret;
	signer_set_ocsp(d->signer, d->ocsp);
	d->ocsp_tokens = OCSP_UNKNOWN_RATE;
	clock_gettime(CLOCK_MONOTONIC, &d->ocsp_refill);
	d->ocsp_valid_seen = d->ocsp_revoked_seen = -1;
	if ((d->ocsp_ev = event_new(d->base, -1, EV_PERSIST, ocsp_tick,
	    d)) == NULL || event_add(d->ocsp_ev, &tv) != 0)
		return err_set(e, HSMCA_ERR_INTERNAL, "OCSP timer");
	ocsp_tick(-1, 0, d);	/* the first responses now */
	return 0;
}

/* After signer_stop: no worker uses the cache any more. */
void
ocsp_serve_stop(struct hsmcad *d)
{
	if (d->ocsp_ev != NULL)
		event_free(d->ocsp_ev);
	d->ocsp_ev = NULL;
	ocsp_cache_free(d->ocsp);
	d->ocsp = NULL;
}

/* One token per signature for a miss, OCSP_UNKNOWN_RATE a second. */
static int
miss_allowed(struct hsmcad *d)
{
	struct timespec now;
	double dt;

	clock_gettime(CLOCK_MONOTONIC, &now);
	dt = (double)(now.tv_sec - d->ocsp_refill.tv_sec) +
	    (double)(now.tv_nsec - d->ocsp_refill.tv_nsec) / 1e9;
	d->ocsp_refill = now;
	d->ocsp_tokens += dt * OCSP_UNKNOWN_RATE;
	if (d->ocsp_tokens > OCSP_UNKNOWN_RATE)
		d->ocsp_tokens = OCSP_UNKNOWN_RATE;
	if (d->ocsp_tokens < 1.0)
		return 0;
	d->ocsp_tokens -= 1.0;
	return 1;
}

static void
reply(struct evhttp_request *req, const unsigned char *der, size_t len,
    const char *what)
{
	struct evbuffer *body = evbuffer_new();

	if (body == NULL || evbuffer_add(body, der, len) != 0) {
		evhttp_send_error(req, 500, NULL);
		evbuffer_free(body);
		return;
	}
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "application/ocsp-response");
	evhttp_send_reply(req, 200, "OK", body);
	evbuffer_free(body);
	log_debug("client=- %s /ocsp 200 %s",
	    evhttp_request_get_command(req) == EVHTTP_REQ_GET ? "GET" : "POST",
	    what);
}

/* An unsigned error response (malformedRequest, tryLater, ...). */
static void
reply_error(struct evhttp_request *req, int status, const char *what)
{
	unsigned char *der = NULL;
	size_t len = 0;
	struct hsmca_err e;

	if (ocsp_error(status, &der, &len, &e) != 0) {
		evhttp_send_error(req, 500, NULL);
		return;
	}
	reply(req, der, len, what);
	OPENSSL_free(der);
}

static void
plain(struct evhttp_request *req, int status, const char *phrase,
    const char *text)
{
	struct evbuffer *body = evbuffer_new();

	if (body != NULL)
		evbuffer_add_printf(body, "%s\n", text);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; charset=utf-8");
	evhttp_send_reply(req, status, phrase, body);
	evbuffer_free(body);
	log_info("client=- %s /ocsp %d", evhttp_request_get_command(req) ==
	    EVHTTP_REQ_GET ? "GET" : "POST", status);
}

struct ocsp_wait {
	struct hsmcad		*d;
	struct evhttp_request	*req;
};

static void
miss_done(struct signer_job *job, void *arg)
{
	struct ocsp_wait *w = arg;

	if (job->status == 200)
		reply(w->req, job->p7_der, job->p7_len, "signed on demand");
	else {
		log_warnx("OCSP: serial %s of generation %lld: %s",
		    job->serial, (long long)job->gen_id, job->reason);
		reply_error(w->req, OCSP_RESPONSE_STATUS_INTERNALERROR,
		    "internalError");
	}
	w->d->inflight--;
	free(w);
	signer_job_free(job);
}

static void
answer(struct hsmcad *d, struct evhttp_request *req, const unsigned char *r,
    size_t rlen)
{
	unsigned char *der = NULL;
	size_t len = 0;
	struct ocsp_query q;
	struct hsmca_err e;
	struct signer_job *job;
	struct ocsp_wait *w;
	int found = 0;

	if (ocsp_answer(d->ocsp, r, rlen, clock_now(), &der, &len, &found, &q,
	    &e) != 0) {
		reply_error(req, OCSP_RESPONSE_STATUS_INTERNALERROR,
		    "internalError");
		return;
	}
	if (der != NULL) {
		reply(req, der, len, found ? "cached" : "refused");
		OPENSSL_free(der);
		return;
	}
	/* A miss for one of our generations. */
	if (d->draining || !miss_allowed(d)) {
		reply_error(req, OCSP_RESPONSE_STATUS_TRYLATER, "tryLater");
		return;
	}
	if ((job = calloc(1, sizeof(*job))) == NULL ||
	    (w = calloc(1, sizeof(*w))) == NULL) {
		free(job);
		reply_error(req, OCSP_RESPONSE_STATUS_INTERNALERROR,
		    "internalError");
		return;
	}
	w->d = d;
	w->req = req;
	job->op = SIGNER_OCSP_UNKNOWN;
	job->rt = runtime_ref(d->rt);
	job->gen_id = q.gen_id;
	job->id_nid = q.id_nid;
	snprintf(job->serial, sizeof(job->serial), "%s", q.serial);
	job->done = miss_done;
	job->arg = w;
	d->inflight++;
	signer_submit(d->signer, job);
}

/* POST /ocsp (application/ocsp-request) and GET /ocsp/<base64 DER,
 * URL-encoded> (RFC 6960 Appendix A). */
void
ocsp_handle(struct evhttp_request *req, void *arg)
{
	struct hsmcad *d = arg;
	const char *uri = evhttp_request_get_uri(req), *ct;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *in;
	unsigned char buf[OCSP_REQUEST_MAX_BYTES + 3];
	char *b64 = NULL;
	size_t n, blen;
	int dn;

	if (d->ocsp == NULL) {
		plain(req, 404, "Not Found", "no OCSP responder");
		return;
	}
	if (cmd == EVHTTP_REQ_POST && (strcmp(uri, "/ocsp") == 0 ||
	    strcmp(uri, "/ocsp/") == 0)) {
		ct = evhttp_find_header(evhttp_request_get_input_headers(req),
		    "Content-Type");
		if (ct == NULL || strncasecmp(ct, "application/ocsp-request",
		    24) != 0 || (ct[24] != '\0' && ct[24] != ';')) {
			plain(req, 415, "Unsupported Media Type",
			    "Content-Type must be application/ocsp-request");
			return;
		}
		in = evhttp_request_get_input_buffer(req);
		if ((n = evbuffer_get_length(in)) > OCSP_REQUEST_MAX_BYTES) {
			plain(req, 413, "Payload Too Large", "request too large");
			return;
		}
		evbuffer_remove(in, buf, n);
		answer(d, req, buf, n);
		return;
	}
	if (cmd == EVHTTP_REQ_GET && strncmp(uri, "/ocsp/", 6) == 0) {
		/* The whole rest is the request: base64 may hold '/'. */
		if ((b64 = evhttp_uridecode(uri + 6, 0, &blen)) == NULL) {
			reply_error(req, OCSP_RESPONSE_STATUS_INTERNALERROR,
			    "internalError");
			return;
		}
		if (blen == 0 || blen % 4 != 0 ||
		    blen / 4 * 3 > sizeof(buf) ||
		    (dn = EVP_DecodeBlock(buf, (unsigned char *)b64,
		    (int)blen)) < 0) {
			free(b64);
			reply_error(req, OCSP_RESPONSE_STATUS_MALFORMEDREQUEST,
			    "malformedRequest");
			return;
		}
		/* EVP_DecodeBlock counts the padding as data. */
		if (b64[blen - 1] == '=')
			dn--;
		if (b64[blen - 2] == '=')
			dn--;
		free(b64);
		answer(d, req, buf, (size_t)dn);
		return;
	}
	plain(req, 405, "Method Not Allowed",
	    "POST /ocsp or GET /ocsp/<base64 request>");
}
