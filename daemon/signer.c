/* signer.c: the workers that sign. Each has its own store handle and
 * uses the HSM's session pool; the event loop hands them jobs and gets
 * answers back through an event, so signing never blocks the loop.
 *
 * The signer trusts nothing the front built: it re-parses the CSR,
 * re-checks the authorization facts and re-applies the profile. */
#include "config.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <openssl/bio.h>
#include <openssl/buffer.h>
#include <openssl/encoder.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include "hsmca/audit.h"
#include "hsmca/batch.h"
#include "hsmca/ca.h"
#include "hsmca/clock.h"
#include "hsmca/crl.h"
#include "hsmca/csr.h"
#include "hsmca/issue.h"

#include "hsmcad.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"

struct signer {
	struct event_base	*base;
	struct event		*done_ev;
	struct hsm		*hsm;
	char			*store_path;
	struct store_group	*group;		/* workers' writes share commits */
	int			 audits;	/* refusals waiting to be recorded */
	uint64_t		 audits_dropped;	/* over the backlog, not yet told */
	pthread_t		*threads;
	int			 nthreads;
	/* What each worker holds, BATCH_CHUNK_MAX slots per worker, and
	 * whether the recovery thread is logging in: what a stop that
	 * gives up on them says it abandoned (signer_log_held). */
	struct signer_job	**held;
	size_t			*nheld;
	int			 nstarted;	/* workers numbered as they start */
	int			 recovering;
	pthread_mutex_t		 lock;
	pthread_cond_t		 cond;
	struct signer_job	*queue, *queue_tail;
	int			 queued;	/* jobs in queue */
	int			 idle;		/* workers waiting for one */
	struct signer_job	*done;
	int			 pending;
	int			 stopping;
	pthread_rwlock_t	 issuer_lock;
	struct issuer		*issuer;	/* NULL: no active generation */
	char			 issuer_err[HSMCA_ERRMSG_MAX];
	struct ocsp_cache	*ocsp;		/* NULL: no OCSP responder */
	/* HSM faults: every job that may touch the token holds hsm_lock
	 * shared; the recovery thread takes it exclusive, never waiting. */
	pthread_rwlock_t	 hsm_lock;
	pthread_t		 recovery;
	int			 recovery_ok;
	pthread_cond_t		 recovery_cond;
	struct issuer		*keyless;	/* its key lost to a fault */
	char			*keyless_uri;	/* and where to find it again */
	int			 hsm_down_logged;
	unsigned int		 recover_tries;	/* since the last success */
	/* tls-key in the token: the front's TLS handshakes sign with it
	 * here (SIGNER_TLS_SIGN); loaded when first needed, and again
	 * after a fault. */
	char			*tls_uri;
	struct hsm_key		*tls_key;
	pthread_mutex_t		 tls_lock;
};

void
signer_job_free(struct signer_job *job)
{
	if (job == NULL)
		return;
	if (job->rt != NULL)
		runtime_unref(job->rt);
	free(job->csr_der);
	free(job->renew_subject);
	free(job->renew_san);
	free(job->p7_der);
	if (job->key_der != NULL)
		util_freezero(job->key_der, job->key_len);
	free(job->events);
	free(job);
}

static void	signer_tls_sign(struct signer *, struct signer_job *);

/* ---- the wire form of a job (privsep) ---- */

/* Bounds of what a job carries: a CSR is refused beyond CSR_MAX_SIZE by
 * the front already; names are DER subjects and SANs; a TLS signature's
 * input is a digest or one RSA block. */
#define WIRE_CSR_MAX	(16U * 1024 * 1024)
#define WIRE_NAME_MAX	(64U * 1024)

void
signer_job_pack(const struct signer_job *job, struct ipc_buf *b)
{
	char *admin = NULL;

	ipcb_u32(b, (uint32_t)job->op);
	ipcb_str(b, job->profile);
	ipcb_i64(b, job->gen_id);
	ipcb_i64(b, job->id_nid);
	ipcb_str(b, job->requester);
	ipcb_bytes(b, job->csr_der, job->csr_len);
	ipcb_str(b, job->id_cn);
	ipcb_u32(b, (uint32_t)job->cn_match);
	ipcb_bytes(b, job->renew_subject, job->renew_subject_len);
	ipcb_bytes(b, job->renew_san, job->renew_san_len);
	ipcb_str(b, job->serial);
	ipcb_i64(b, job->cursor[0]);
	ipcb_i64(b, job->cursor[1]);
	if ((job->op == SIGNER_ADMIN || job->op == SIGNER_BATCH) &&
	    (admin = admin_call_pack(job->admin)) == NULL)
		b->failed = 1;
	ipcb_str(b, admin);
	free(admin);
}

struct signer_job *
signer_job_unpack(struct ipc_rd *r)
{
	struct signer_job *job;
	const unsigned char *admin;
	size_t alen;
	uint32_t op;

	if ((job = calloc(1, sizeof(*job))) == NULL)
		return NULL;
	op = ipcr_u32(r);
	ipcr_str(r, job->profile, sizeof(job->profile));
	job->gen_id = ipcr_i64(r);
	job->id_nid = (int)ipcr_i64(r);
	ipcr_str(r, job->requester, sizeof(job->requester));
	ipcr_bytes(r, &job->csr_der, &job->csr_len, WIRE_CSR_MAX);
	ipcr_str(r, job->id_cn, sizeof(job->id_cn));
	job->cn_match = ipcr_u32(r) != 0;
	ipcr_bytes(r, &job->renew_subject, &job->renew_subject_len,
	    WIRE_NAME_MAX);
	ipcr_bytes(r, &job->renew_san, &job->renew_san_len, WIRE_NAME_MAX);
	ipcr_str(r, job->serial, sizeof(job->serial));
	job->cursor[0] = ipcr_i64(r);
	job->cursor[1] = ipcr_i64(r);
	admin = ipcr_view(r, &alen, IPC_BODY_MAX);
	/* What the signer itself sends (refusals, its own timers) never
	 * comes from the front, nor a TLS key operation: those come over
	 * keyop.c's channel, with its bounds. */
	if (ipcr_end(r) != 0 || op == SIGNER_AUDIT || op == SIGNER_TLS_SIGN ||
	    op == SIGNER_SWEEP || op >= SIGNER_OP_MAX)
		goto bad;
	job->op = (enum signer_op)op;
	if ((job->op == SIGNER_ADMIN || job->op == SIGNER_BATCH) &&
	    (job->admin = admin_call_unpack(admin, alen)) == NULL)
		goto bad;
	return job;
bad:
	signer_job_free(job);
	return NULL;
}

void
signer_answer_pack(const struct signer_job *job, struct ipc_buf *b)
{
	char *reply = NULL;
	size_t nev = job->events != NULL ? job->events->n : 0;

	ipcb_u32(b, (uint32_t)job->status);
	ipcb_str(b, job->reason);
	ipcb_str(b, job->serial);
	ipcb_bytes(b, job->p7_der, job->p7_len);
	ipcb_i64(b, job->this_update);
	ipcb_i64(b, job->next_update);
	ipcb_i64(b, job->crl_number);
	ipcb_u32(b, (uint32_t)job->more);
	ipcb_i64(b, job->cursor[0]);
	ipcb_i64(b, job->cursor[1]);
	ipcb_u32(b, (uint32_t)job->swept);
	ipcb_bytes(b, job->key_der, job->key_len);
	ipcb_u32(b, (uint32_t)nev);
	for (size_t i = 0; i < nev; i++) {
		ipcb_u32(b, (uint32_t)job->events->ev[i].kind);
		ipcb_i64(b, job->events->ev[i].gen_id);
		ipcb_str(b, job->events->ev[i].msg);
	}
	if ((job->op == SIGNER_ADMIN || job->op == SIGNER_BATCH) &&
	    job->admin != NULL)
		reply = admin_reply_pack(job->admin);
	ipcb_str(b, reply);
	free(reply);
}

int
signer_answer_unpack(struct signer_job *job, struct ipc_rd *r)
{
	const unsigned char *reply;
	size_t rlen;
	uint32_t nev;

	job->status = (int)ipcr_u32(r);
	ipcr_str(r, job->reason, sizeof(job->reason));
	ipcr_str(r, job->serial, sizeof(job->serial));
	ipcr_bytes(r, &job->p7_der, &job->p7_len, IPC_BODY_MAX);
	job->this_update = (time_t)ipcr_i64(r);
	job->next_update = (time_t)ipcr_i64(r);
	job->crl_number = ipcr_i64(r);
	job->more = ipcr_u32(r) != 0;
	job->cursor[0] = ipcr_i64(r);
	job->cursor[1] = ipcr_i64(r);
	job->swept = ipcr_u32(r) != 0;
	ipcr_bytes(r, &job->key_der, &job->key_len, WIRE_NAME_MAX);
	if ((nev = ipcr_u32(r)) > CA_EVENTS_MAX)
		return -1;
	if (nev > 0) {
		if ((job->events = calloc(1, sizeof(*job->events))) == NULL)
			return -1;
		job->events->n = nev;
		for (uint32_t i = 0; i < nev; i++) {
			job->events->ev[i].kind = (enum ca_event_kind)ipcr_u32(r);
			job->events->ev[i].gen_id = ipcr_i64(r);
			ipcr_str(r, job->events->ev[i].msg,
			    sizeof(job->events->ev[i].msg));
		}
	}
	reply = ipcr_view(r, &rlen, IPC_BODY_MAX);
	if (ipcr_end(r) != 0 || job->status < 100 || job->status > 599)
		return -1;
	if ((job->op == SIGNER_ADMIN || job->op == SIGNER_BATCH) && rlen > 0 &&
	    job->admin != NULL && admin_reply_unpack(job->admin, reply,
	    rlen) != 0)
		return -1;
	return 0;
}

static void
job_fail(struct signer_job *job, int status, const char *reason)
{
	job->status = status;
	snprintf(job->reason, sizeof(job->reason), "%s", reason);
}

static int
der_equal(const unsigned char *a, size_t alen, const unsigned char *b,
    size_t blen)
{
	return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/* The renewal rule (RFC 7030 4.2.2): the same subject and SAN. */
static int
check_renewal(struct signer_job *job, const struct csr *csr)
{
	unsigned char *der = NULL;
	GENERAL_NAMES *san;
	int len, same;

	len = i2d_X509_NAME(X509_REQ_get_subject_name(csr->req), &der);
	same = len > 0 && der_equal(der, (size_t)len, job->renew_subject,
	    job->renew_subject_len);
	OPENSSL_free(der);
	der = NULL;
	if (!same) {
		job_fail(job, 400, "renewal must keep the subject of the "
		    "current certificate");
		return -1;
	}
	san = csr_get_san(csr);
	len = san != NULL ? i2d_GENERAL_NAMES(san, &der) : 0;
	same = len >= 0 && der_equal(der, (size_t)len, job->renew_san,
	    job->renew_san_len);
	OPENSSL_free(der);
	GENERAL_NAMES_free(san);
	if (!same) {
		job_fail(job, 400, "renewal must keep the subjectAltName of the "
		    "current certificate");
		return -1;
	}
	return 0;
}

static int
check_cn(struct signer_job *job, const struct csr *csr)
{
	char cn[256];
	int n;

	/* Decoded values, whatever their string type; an empty id_cn is
	 * a client certificate without one usable CN: nothing matches. */
	n = util_name_cn(X509_REQ_get_subject_name(csr->req), cn, sizeof(cn));
	if (n != 0 || job->id_cn[0] == '\0' || strcmp(cn, job->id_cn) != 0) {
		snprintf(job->reason, sizeof(job->reason), "CSR CN '%.200s' "
		    "does not match the client certificate's CN '%.200s'",
		    n != 0 ? "" : cn, job->id_cn);
		job->status = 403;
		return -1;
	}
	return 0;
}

/* One enrollment of a chunk on its way through a worker. */
struct enrollment {
	struct signer_job	*job;
	struct csr		*csr, keyed;
	EVP_PKEY		*newkey;	/* SIGNER_SERVERKEYGEN */
	struct issue_request	 req;
};

static int
is_enrollment(const struct signer_job *job)
{
	return job->op == SIGNER_ENROLL || job->op == SIGNER_RENEW ||
	    job->op == SIGNER_SERVERKEYGEN;
}

/* The largest RSA key serverkeygen makes: an RSA-4096 key takes up to
 * seconds, one of 8192 bits up to a minute of a worker. */
#define KEYGEN_RSA_MAX_BITS	4096

/* The key pair of a server-side key generation, of the kind the request
 * asks for. RFC 7030 4.4.1: "the server MUST ignore the public key
 * values and signature in the CSR" (they are there so that clients can
 * reuse their code for requests): the values, not the algorithm and its
 * parameters, which are how a device says what key it can use. So: the
 * request's curve, or RSA of the request's modulus size. The key is a
 * software key by nature (it travels back with the certificate, RFC 7030
 * 4.4.2); EVP_PKEY_free clears its private parts. It goes through the key
 * policy like any subject key when the certificate is linted
 * (lint_presign_key). -1: refused, the job says why. */
static int
enroll_keygen(struct signer_job *job, const EVP_PKEY *asked, EVP_PKEY **out)
{
	char group[80];
	int bits;

	*out = NULL;
	switch (EVP_PKEY_get_base_id(asked)) {
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_group_name(asked, group, sizeof(group),
		    NULL)) {
			ERR_clear_error();
			job_fail(job, 400, "serverkeygen: the request's EC key "
			    "names no curve");
			return -1;
		}
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
		break;
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(asked);
		if (bits > KEYGEN_RSA_MAX_BITS) {
			snprintf(job->reason, sizeof(job->reason),
			    "serverkeygen makes RSA keys of up to %d bits; the "
			    "request's key has %d", KEYGEN_RSA_MAX_BITS, bits);
			job->status = 400;
			return -1;
		}
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
		break;
	default:
		snprintf(job->reason, sizeof(job->reason), "serverkeygen makes "
		    "EC and RSA keys; the request's key is %s",
		    EVP_PKEY_get0_type_name(asked) != NULL ?
		    EVP_PKEY_get0_type_name(asked) : "of an unknown type");
		job->status = 400;
		return -1;
	}
	if (*out == NULL) {
		ERR_clear_error();
		job_fail(job, 500, "key generation failed");
		return -1;
	}
	return 0;
}

/* Everything an enrollment needs before it is signed: the CSR parsed
 * again, the label's profile, the CN and renewal rules, the key pair of
 * a server-side key generation. -1: refused (job says why). */
static int
enroll_prepare(struct signer_job *job, struct enrollment *en)
{
	struct hsmca_err e;

	en->job = job;
	err_clear(&e);
	if (csr_parse(job->csr_der, job->csr_len, &en->csr, &e) != 0) {
		job_fail(job, 400, e.msg);
		return -1;
	}
	if ((en->req.profile = config_profile(job->rt->cfg,
	    job->profile)) == NULL) {
		job_fail(job, 500, "the label's profile is not configured");
		return -1;
	}
	if (job->cn_match && check_cn(job, en->csr) != 0)
		return -1;
	/* A renewal, with a key of its own or one made here. */
	if ((job->op == SIGNER_RENEW || job->renew_subject != NULL) &&
	    check_renewal(job, en->csr) != 0)
		return -1;
	en->req.csr = en->csr;
	if (job->op == SIGNER_SERVERKEYGEN) {
		if (enroll_keygen(job, en->csr->pubkey, &en->newkey) != 0)
			return -1;
		/* Made while the front waited: if it answered already, the
		 * key goes nowhere and nothing is issued for it. */
		if (atomic_load(&job->abandoned)) {
			job_fail(job, 503, "the request was answered before its "
			    "key was made");
			return -1;
		}
		en->keyed = *en->csr;
		en->keyed.pubkey = en->newkey;
		en->req.csr = &en->keyed;
	}
	en->req.requester = job->requester;
	en->req.now = clock_now();
	return 0;
}

/* A serverkeygen key as RFC 7030 4.4.2 sends it, a PKCS#8
 * PrivateKeyInfo, in *der (malloc'd; signer_job_free wipes it). Encoded
 * once, into a memory BIO that wipes what it outgrows and what it frees;
 * EVP_PKEY2PKCS8 would leave its own DER copy in freed memory, unwiped.
 * The encoder's scratch copies inside libcrypto are beyond our reach. */
static int
enroll_key_der(EVP_PKEY *key, unsigned char **der, size_t *len)
{
	OSSL_ENCODER_CTX *ctx = NULL;
	BIO *b = NULL;
	BUF_MEM *m = NULL;
	int ret = -1;

	*der = NULL;
	*len = 0;
	if ((ctx = OSSL_ENCODER_CTX_new_for_pkey(key, OSSL_KEYMGMT_SELECT_ALL,
	    "DER", "PrivateKeyInfo", NULL)) == NULL ||
	    OSSL_ENCODER_CTX_get_num_encoders(ctx) == 0 ||
	    (b = BIO_new(BIO_s_secmem())) == NULL ||
	    !OSSL_ENCODER_to_bio(ctx, b) ||
	    BIO_get_mem_ptr(b, &m) <= 0 || m == NULL || m->length == 0 ||
	    (*der = malloc(m->length)) == NULL)
		goto out;
	memcpy(*der, m->data, m->length);
	*len = m->length;
	ret = 0;
out:
	if (ret != 0)
		ERR_clear_error();
	BIO_free(b);
	OSSL_ENCODER_CTX_free(ctx);
	return ret;
}

/* The answer of a recorded enrollment, built here from the object in
 * hand: re-parsing the DER on the event loop would cost more than the
 * signature. */
static void
enroll_answer(struct enrollment *en, const struct issue_result *res)
{
	struct signer_job *job = en->job;
	STACK_OF(X509) *one = NULL;

	memcpy(job->serial, res->serial, sizeof(job->serial));
	if ((one = sk_X509_new_null()) == NULL || !sk_X509_push(one, res->cert) ||
	    est_certs_only(one, &job->p7_der, &job->p7_len) != 0) {
		job_fail(job, 500, "cannot encode the answer (the certificate "
		    "is recorded)");
		goto out;
	}
	if (en->newkey != NULL && enroll_key_der(en->newkey, &job->key_der,
	    &job->key_len) != 0) {
		job_fail(job, 500, "cannot encode the key (the certificate is "
		    "recorded)");
		goto out;
	}
	job->status = 200;
out:
	sk_X509_free(one);	/* the certificate itself belongs to res */
}

/* Enrollments taken from the queue together (at most BATCH_CHUNK_MAX):
 * each is checked on its own, then those still good are issued by one
 * issue_certificates call, so their serials are reserved in one commit
 * and their records written in one. A refusal is a refusal of that
 * job alone and leaves nothing in the store. */
static void
signer_process(struct signer *s, struct store *st, struct signer_job **jobs,
    size_t n)
{
	struct enrollment en[BATCH_CHUNK_MAX];
	struct issue_request reqs[BATCH_CHUNK_MAX];
	struct issue_result res[BATCH_CHUNK_MAX];
	struct hsmca_err errs[BATCH_CHUNK_MAX];
	int rets[BATCH_CHUNK_MAX], hsm_error[BATCH_CHUNK_MAX];
	size_t at[BATCH_CHUNK_MAX], m = 0, i;

	memset(en, 0, sizeof(en));
	memset(res, 0, sizeof(res));
	for (i = 0; i < n; i++)
		if (enroll_prepare(jobs[i], &en[i]) == 0) {
			reqs[m] = en[i].req;
			at[m++] = i;
		}
	if (m == 0)
		goto out;

	pthread_rwlock_rdlock(&s->issuer_lock);
	if (s->issuer == NULL) {
		for (i = 0; i < m; i++)
			job_fail(jobs[at[i]], 503, s->issuer_err);
	} else {
		struct timespec t0, t1;
		double secs;

		metrics_sign_begin();
		clock_gettime(CLOCK_MONOTONIC, &t0);
		(void)issue_certificates(s->hsm, st, s->issuer, reqs, m, res,
		    rets, errs);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		/* Each enrollment waited for the whole chunk. */
		secs = (double)(t1.tv_sec - t0.tv_sec) +
		    (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		for (i = 0; i < m; i++)
			hsm_error[i] = rets[i] == HSMCA_ERR_HSM ||
			    rets[i] == HSMCA_ERR_HSM_UNAVAILABLE;
		metrics_sign_end(secs, hsm_error, m);
		for (i = 0; i < m; i++) {
			if (rets[i] == 0)
				ocsp_issued(s->hsm, s->issuer, s->ocsp,
				    res[i].serial);
		}
		/* HSMCA_ERR_CA_STATE: the generation was revoked since this
		 * signer loaded it (the next poll reloads the generations),
		 * so the device is asked to come back, not refused. */
		for (i = 0; i < m; i++) {
			if (rets[i] != 0)
				job_fail(jobs[at[i]],
				    rets[i] == HSMCA_ERR_CA_STATE ? 503 :
				    err_http_status(rets[i]), errs[i].msg);
			else
				enroll_answer(&en[at[i]], &res[i]);
		}
	}
	pthread_rwlock_unlock(&s->issuer_lock);
out:
	for (i = 0; i < m; i++)
		issue_result_free(&res[i]);
	for (i = 0; i < n; i++) {
		EVP_PKEY_free(en[i].newkey);
		csr_free(en[i].csr);
	}
}

/* SIGNER_CRL: the generation's CRL, signed with its key in the token. */
static void
signer_crl(struct signer *s, struct store *st, struct signer_job *job)
{
	struct store_generation g;
	struct issuer *iss = NULL;
	struct crl_info info;
	struct hsmca_err e;
	unsigned char *der = NULL;
	size_t len = 0;

	memset(&g, 0, sizeof(g));
	err_clear(&e);
	if (store_get_generation(st, job->gen_id, &g, &e) != 0 ||
	    issuer_open(s->hsm, st, &g, &job->rt->cfg->ca, &iss, &e) != 0 ||
	    crl_build(s->hsm, st, iss, clock_now(),
	    job->rt->cfg->ca.crl_next_update, &der, &len, &info, &e) != 0) {
		job_fail(job, err_http_status(e.code), e.msg);
		goto out;
	}
	if ((job->p7_der = malloc(len)) == NULL) {
		job_fail(job, 500, "out of memory");
		goto out;
	}
	memcpy(job->p7_der, der, len);
	job->p7_len = len;
	job->this_update = info.this_update;
	job->next_update = info.next_update;
	job->crl_number = info.number;
	job->status = 200;
out:
	OPENSSL_free(der);
	issuer_free(iss);
	store_generation_free_fields(&g);
}

/* SIGNER_AUDIT: a refused request, appended to the chain. */
static void
signer_audit(struct signer *s, struct store *st, struct signer_job *job)
{
	struct audit_event ev;
	struct hsmca_err e;
	char detail[AUDIT_DETAIL_MAX];
	uint64_t dropped;

	pthread_mutex_lock(&s->lock);
	dropped = s->audits_dropped;
	s->audits_dropped = 0;
	pthread_mutex_unlock(&s->lock);
	if (dropped > 0)
		snprintf(detail, sizeof(detail), "%s (and %llu refusals before "
		    "it not recorded: the audit backlog was full)", job->reason,
		    (unsigned long long)dropped);
	else
		snprintf(detail, sizeof(detail), "%s", job->reason);
	memset(&ev, 0, sizeof(ev));
	ev.actor = job->requester;
	ev.action = AUDIT_REFUSE;
	ev.object = job->profile;
	ev.outcome = AUDIT_REFUSED;
	ev.detail = detail;
	err_clear(&e);
	if (audit_append(st, &ev, &e) != 0)
		log_warnx("audit: a refusal was not recorded: %s", e.msg);
	job->status = 200;
}

static void
audit_done(struct signer_job *job, void *arg)
{
	signer_job_free(job);
}

void
signer_audit_refusal(struct signer *s, const char *actor, const char *object,
    const char *detail)
{
	struct signer_job *job;

	pthread_mutex_lock(&s->lock);
	if (s->audits >= SIGNER_AUDIT_BACKLOG || s->stopping) {
		s->audits_dropped++;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	s->audits++;
	pthread_mutex_unlock(&s->lock);
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		pthread_mutex_lock(&s->lock);
		s->audits--;
		s->audits_dropped++;
		pthread_mutex_unlock(&s->lock);
		return;
	}
	job->op = SIGNER_AUDIT;
	snprintf(job->requester, sizeof(job->requester), "%s", actor);
	snprintf(job->profile, sizeof(job->profile), "%s", object);
	snprintf(job->reason, sizeof(job->reason), "%s", detail);
	job->done = audit_done;
	signer_submit(s, job);
}

/* An enrollment while the token is failing or hanging, or one the front
 * gave up on: answered 503 before anything is reserved or signed. */
static int
signer_hsm_refuse(struct signer *s, struct signer_job *job)
{
	struct hsmca_err e;

	if (job->op != SIGNER_ENROLL && job->op != SIGNER_RENEW &&
	    job->op != SIGNER_SERVERKEYGEN)
		return 0;
	if (atomic_load(&job->abandoned)) {
		job_fail(job, 503, "the request was answered before it was "
		    "signed");
		return 1;
	}
	err_clear(&e);
	if (hsm_check(s->hsm, &e) != 0) {
		job_fail(job, 503, e.msg);
		pthread_mutex_lock(&s->lock);
		if (!s->hsm_down_logged)
			log_warnx("signer: %s", e.msg);
		s->hsm_down_logged = 1;
		pthread_mutex_unlock(&s->lock);
		return 1;
	}
	return 0;
}

/* With no job in the token: close every session, log in again, load the
 * issuer's key again (its handle died with the login). */
static void
signer_recover(struct signer *s)
{
	struct hsmca_err e;
	struct issuer *iss;
	int ret = 0;

	if (pthread_rwlock_trywrlock(&s->hsm_lock) != 0)
		return;		/* a job is still inside: a hanging call */
	pthread_rwlock_wrlock(&s->issuer_lock);
	err_clear(&e);
	if ((iss = s->issuer) != NULL) {
		/* A reload (SIGHUP) since the last try: this one now. */
		issuer_free(s->keyless);
		s->keyless = iss;
		s->issuer = NULL;
		snprintf(s->issuer_err, sizeof(s->issuer_err), "the HSM is "
		    "recovering from a fault");
		free(s->keyless_uri);
		if ((s->keyless_uri = strdup(hsm_key_uri(iss->key))) == NULL)
			ret = err_set(&e, HSMCA_ERR_ALLOC, "out of memory");
		hsm_key_free(iss->key);
		iss->key = NULL;
	}
	if (ret == 0 && hsm_failed(s->hsm)) {
		/* Every key object of the old login goes with it. */
		ocsp_forget_keys();
		pthread_mutex_lock(&s->tls_lock);
		hsm_key_free(s->tls_key);
		s->tls_key = NULL;
		pthread_mutex_unlock(&s->tls_lock);
	}
	if (ret == 0 && hsm_failed(s->hsm) &&
	    (ret = hsm_recover(s->hsm, &e)) == 0)
		log_info("signer: the HSM is back: sessions re-opened, logged "
		    "in again (recovery %u)", hsm_epoch(s->hsm));
	if (ret == 0 && (iss = s->keyless) != NULL &&
	    (ret = hsm_load_signing_key(s->hsm, s->keyless_uri, &iss->key,
	    &e)) == 0) {
		s->issuer = iss;
		s->keyless = NULL;
		free(s->keyless_uri);
		s->keyless_uri = NULL;
	}
	if (ret == HSMCA_ERR_ALLOC || (ret != 0 && !hsm_failed(s->hsm))) {
		/* Not the token: give up until the next reload. */
		snprintf(s->issuer_err, sizeof(s->issuer_err), "the CA key "
		    "was not found again after an HSM fault: %.400s", e.msg);
		issuer_free(s->keyless);
		s->keyless = NULL;
	}
	/* The first failed try, then one in 40 (10 s): not a flood. */
	if (ret != 0 && s->recover_tries++ % 40 == 0)
		log_warnx("signer: the HSM is still unavailable: %s", e.msg);
	if (ret == 0) {
		s->recover_tries = 0;
		pthread_mutex_lock(&s->lock);
		s->hsm_down_logged = 0;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_rwlock_unlock(&s->issuer_lock);
	pthread_rwlock_unlock(&s->hsm_lock);
}

/* Retries the token every SIGNER_RECOVER_MS while it is failing. */
#define SIGNER_RECOVER_MS	250

static void *
signer_recovery(void *arg)
{
	struct signer *s = arg;
	struct timespec ts;
	int again;

	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		clock_gettime(CLOCK_REALTIME, &ts);
		ts.tv_nsec += SIGNER_RECOVER_MS * 1000000L;
		if (ts.tv_nsec >= 1000000000L) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000L;
		}
		(void)pthread_cond_timedwait(&s->recovery_cond, &s->lock, &ts);
		if (s->stopping)
			break;
		s->recovering = 1;
		pthread_mutex_unlock(&s->lock);
		pthread_rwlock_rdlock(&s->issuer_lock);
		again = s->keyless != NULL;
		pthread_rwlock_unlock(&s->issuer_lock);
		if (again || hsm_failed(s->hsm))
			signer_recover(s);
		pthread_mutex_lock(&s->lock);
		s->recovering = 0;
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* An enrollment that can share a chunk: not a serverkeygen, whose key
 * generation (an RSA-4096 key can take seconds) would hold the others
 * of its chunk past their deadline. */
static int
is_batchable(const struct signer_job *job)
{
	return is_enrollment(job) && job->op != SIGNER_SERVERKEYGEN;
}

/* With s->lock held and a job queued: the job at the head of the queue
 * into chunk, and if it is a batchable enrollment, those right behind
 * it too, up to this worker's share of those waiting (the idle workers,
 * this one included, split them) and BATCH_CHUNK_MAX. How many. */
static size_t
signer_take(struct signer *s, struct signer_job **chunk)
{
	struct signer_job *job;
	size_t n = 0, share;

	share = ((size_t)s->queued + (size_t)s->idle - 1) / (size_t)s->idle;
	if (share > BATCH_CHUNK_MAX)
		share = BATCH_CHUNK_MAX;
	while ((job = s->queue) != NULL && (n == 0 ||
	    (n < share && is_batchable(chunk[0]) && is_batchable(job)))) {
		s->queue = job->next;
		s->queued--;
		chunk[n++] = job;
	}
	if (s->queue == NULL)
		s->queue_tail = NULL;
	return n;
}

static void *
signer_worker(void *arg)
{
	struct signer *s = arg;
	struct store *st = NULL;
	struct signer_job *job, *chunk[BATCH_CHUNK_MAX], *take[BATCH_CHUNK_MAX];
	struct hsmca_err e;
	size_t nchunk, n, i;
	int hsm_job, failed, me;

	pthread_mutex_lock(&s->lock);
	me = s->nstarted++;
	pthread_mutex_unlock(&s->lock);
	if (store_open(s->store_path, &st, &e) != 0)
		log_warnx("signer: %s", e.msg);
	else
		store_set_group(st, s->group);
	for (;;) {
		pthread_mutex_lock(&s->lock);
		s->idle++;
		while ((job = s->queue) == NULL && !s->stopping)
			pthread_cond_wait(&s->cond, &s->lock);
		if (job == NULL) {
			/* Stopping, and the queue is drained. */
			s->idle--;
			pthread_mutex_unlock(&s->lock);
			break;
		}
		nchunk = signer_take(s, chunk);
		job = chunk[0];
		memcpy(&s->held[(size_t)me * BATCH_CHUNK_MAX], chunk,
		    nchunk * sizeof(*chunk));
		s->nheld[me] = nchunk;
		s->idle--;
		pthread_mutex_unlock(&s->lock);

		/* Jobs that never touch the token do not wait for its
		 * recovery. */
		hsm_job = job->op != SIGNER_AUDIT && job->op != SIGNER_SWEEP;
		if (hsm_job)
			pthread_rwlock_rdlock(&s->hsm_lock);
		if (st == NULL)
			for (i = 0; i < nchunk; i++)
				job_fail(chunk[i], 503,
				    "the certificate store is unavailable");
		else if (is_enrollment(job)) {
			for (i = 0, n = 0; i < nchunk; i++)
				if (!signer_hsm_refuse(s, chunk[i]))
					take[n++] = chunk[i];
			if (n > 0)
				signer_process(s, st, take, n);
		}
		else if (job->op == SIGNER_CRL)
			signer_crl(s, st, job);
		else if (job->op == SIGNER_OCSP ||
		    job->op == SIGNER_OCSP_UNKNOWN)
			ocsp_job_run(s->hsm, st, s->ocsp, job);
		else if (job->op == SIGNER_CHECKPOINT) {
			pthread_rwlock_rdlock(&s->issuer_lock);
			checkpoint_job_run(s->hsm, st, s->issuer, job);
			pthread_rwlock_unlock(&s->issuer_lock);
		}
		else if (job->op == SIGNER_ADMIN)
			admin_job_run(s->hsm, st, job);
		else if (job->op == SIGNER_BATCH) {
			pthread_rwlock_rdlock(&s->issuer_lock);
			admin_batch_run(s->hsm, st, s->issuer, job);
			pthread_rwlock_unlock(&s->issuer_lock);
		}
		else if (job->op == SIGNER_ROTATE)
			rotation_job_run(s->hsm, st, job);
		else if (job->op == SIGNER_TLS_SIGN)
			signer_tls_sign(s, job);
		else if (job->op == SIGNER_SWEEP)
			sweep_job_run(st, job);
		else if (job->op == SIGNER_AUDIT) {
			signer_audit(s, st, job);
			pthread_mutex_lock(&s->lock);
			s->audits--;
			pthread_mutex_unlock(&s->lock);
		}
		else
			job_fail(job, 500, "unknown signer job");
		if (hsm_job)
			pthread_rwlock_unlock(&s->hsm_lock);
		/* A fault: recover now rather than at the next tick. */
		failed = hsm_job && hsm_failed(s->hsm);

		pthread_mutex_lock(&s->lock);
		s->nheld[me] = 0;
		for (i = 0; i < nchunk; i++) {
			chunk[i]->next = s->done;
			s->done = chunk[i];
		}
		if (failed)
			pthread_cond_signal(&s->recovery_cond);
		pthread_mutex_unlock(&s->lock);
		event_active(s->done_ev, EV_READ, 0);
	}
	store_close(st);
	return NULL;
}

/* On the loop: hand finished jobs back to the front. */
static void
signer_done_cb(evutil_socket_t fd, short what, void *arg)
{
	struct signer *s = arg;
	struct signer_job *list, *next;

	pthread_mutex_lock(&s->lock);
	list = s->done;
	s->done = NULL;
	pthread_mutex_unlock(&s->lock);
	for (; list != NULL; list = next) {
		next = list->next;
		pthread_mutex_lock(&s->lock);
		s->pending--;
		pthread_mutex_unlock(&s->lock);
		list->done(list, list->arg);
	}
}

/* Load the active generation as the issuer every worker signs with. */
int
signer_set_issuer(struct signer *s, const struct config *cfg,
    struct hsmca_err *e)
{
	struct store *st = NULL;
	struct issuer *iss = NULL, *old;
	struct ca_ctx ctx;
	int ret;

	if ((ret = store_open(s->store_path, &st, e)) != 0)
		return ret;
	memset(&ctx, 0, sizeof(ctx));
	ctx.actor = "hsmcad";
	ctx.cfg = cfg;
	ctx.st = st;
	ctx.hsm = s->hsm;
	/* Not while the recovery thread has the token to itself. */
	pthread_rwlock_rdlock(&s->hsm_lock);
	if ((ret = ca_open_active(&ctx, &iss, e)) == 0)
		issuer_precompute(iss);
	pthread_rwlock_wrlock(&s->issuer_lock);
	old = s->issuer;
	s->issuer = iss;
	if (ret != 0)
		snprintf(s->issuer_err, sizeof(s->issuer_err), "%s", e->msg);
	pthread_rwlock_unlock(&s->issuer_lock);
	issuer_free(old);
	pthread_rwlock_unlock(&s->hsm_lock);
	store_close(st);
	return ret;
}

int
signer_start(struct event_base *base, struct hsm *h, const char *store_path,
    int workers, struct signer **out, struct hsmca_err *e)
{
	struct signer *s;

	*out = NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL ||
	    (s->store_path = strdup(store_path)) == NULL ||
	    (s->threads = calloc((size_t)workers, sizeof(pthread_t))) == NULL ||
	    (s->held = calloc((size_t)workers * BATCH_CHUNK_MAX,
	    sizeof(*s->held))) == NULL ||
	    (s->nheld = calloc((size_t)workers, sizeof(*s->nheld))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	s->base = base;
	s->hsm = h;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	pthread_rwlock_init(&s->issuer_lock, NULL);
	pthread_rwlock_init(&s->hsm_lock, NULL);
	pthread_cond_init(&s->recovery_cond, NULL);
	pthread_mutex_init(&s->tls_lock, NULL);
	snprintf(s->issuer_err, sizeof(s->issuer_err), "no active CA generation");
	if ((s->done_ev = event_new(base, -1, 0, signer_done_cb, s)) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "event_new");
	if (store_group_open(store_path, &s->group, e) != 0)
		return e->code;
	for (int i = 0; i < workers; i++) {
		if (pthread_create(&s->threads[i], NULL, signer_worker, s) != 0)
			return err_set(e, HSMCA_ERR_INTERNAL, "pthread_create");
		s->nthreads++;
	}
	if (pthread_create(&s->recovery, NULL, signer_recovery, s) != 0)
		return err_set(e, HSMCA_ERR_INTERNAL, "pthread_create");
	s->recovery_ok = 1;
	*out = s;
	return 0;
}

int
signer_set_tls_key(struct signer *s, const char *uri, struct hsmca_err *e)
{
	free(s->tls_uri);
	if ((s->tls_uri = strdup(uri)) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	return 0;
}

/* SIGNER_TLS_SIGN: the input is a digest (EC) or a block that the
 * padding id_nid (RSA_*_PADDING) applies to, as the front's key method
 * was handed it; the answer is the signature. */
static void
signer_tls_sign(struct signer *s, struct signer_job *job)
{
	struct hsmca_err e;
	EVP_PKEY_CTX *ctx = NULL;
	unsigned char *sig = NULL;
	size_t siglen = 0;

	err_clear(&e);
	pthread_mutex_lock(&s->tls_lock);
	if (s->tls_key == NULL && (s->tls_uri == NULL ||
	    hsm_load_key(s->hsm, s->tls_uri, &s->tls_key, &e) != 0)) {
		pthread_mutex_unlock(&s->tls_lock);
		job_fail(job, 503, s->tls_uri == NULL ? "tls-key is not in "
		    "the token" : e.msg);
		return;
	}
	hsm_sign_enter(s->hsm);
	if ((ctx = EVP_PKEY_CTX_new(hsm_key_private(s->tls_key), NULL)) == NULL ||
	    EVP_PKEY_sign_init(ctx) <= 0 ||
	    (EVP_PKEY_get_base_id(hsm_key_private(s->tls_key)) == EVP_PKEY_RSA &&
	    EVP_PKEY_CTX_set_rsa_padding(ctx, job->id_nid) <= 0) ||
	    EVP_PKEY_sign(ctx, NULL, &siglen, job->csr_der, job->csr_len) <= 0 ||
	    (sig = malloc(siglen)) == NULL ||
	    EVP_PKEY_sign(ctx, sig, &siglen, job->csr_der, job->csr_len) <= 0) {
		hsm_sign_leave(s->hsm);
		pthread_mutex_unlock(&s->tls_lock);
		free(sig);
		EVP_PKEY_CTX_free(ctx);
		job_fail(job, 503, "the TLS key could not sign");
		return;
	}
	hsm_sign_leave(s->hsm);
	pthread_mutex_unlock(&s->tls_lock);
	EVP_PKEY_CTX_free(ctx);
	job->p7_der = sig;
	job->p7_len = siglen;
	job->status = 200;
}

void
signer_set_ocsp(struct signer *s, struct ocsp_cache *c)
{
	pthread_mutex_lock(&s->lock);
	s->ocsp = c;
	pthread_mutex_unlock(&s->lock);
}

void
signer_submit(struct signer *s, struct signer_job *job)
{
	job->next = NULL;
	pthread_mutex_lock(&s->lock);
	if (s->queue_tail != NULL)
		s->queue_tail->next = job;
	else
		s->queue = job;
	s->queue_tail = job;
	s->queued++;
	s->pending++;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}


static const char *const signer_op_names[SIGNER_OP_MAX] = {
	[SIGNER_ENROLL] = "enrollment",
	[SIGNER_RENEW] = "renewal",
	[SIGNER_SERVERKEYGEN] = "serverkeygen enrollment",
	[SIGNER_CRL] = "CRL",
	[SIGNER_AUDIT] = "audit record of a refusal",
	[SIGNER_OCSP] = "OCSP pre-signing step",
	[SIGNER_OCSP_UNKNOWN] = "OCSP response",
	[SIGNER_CHECKPOINT] = "audit checkpoint",
	[SIGNER_ADMIN] = "admin command",
	[SIGNER_BATCH] = "batch step",
	[SIGNER_ROTATE] = "CA rotation step",
	[SIGNER_TLS_SIGN] = "TLS handshake signature",
	[SIGNER_SWEEP] = "sweep of the reservations left behind",
};

static void
signer_log_job(const struct signer_job *job, const char *how)
{
	log_warnx("signer: abandoned %s: %s%s%s%s%s", how,
	    signer_op_names[job->op], job->requester[0] != '\0' ? " by " : "",
	    job->requester, job->profile[0] != '\0' ? ", profile " : "",
	    job->profile);
}

size_t
signer_log_held(struct signer *s)
{
	const struct signer_job *job;
	size_t n = 0;

	pthread_mutex_lock(&s->lock);
	for (int w = 0; w < s->nthreads; w++)
		for (size_t i = 0; i < s->nheld[w]; i++, n++)
			signer_log_job(s->held[(size_t)w * BATCH_CHUNK_MAX + i],
			    "inside the token");
	for (job = s->queue; job != NULL; job = job->next, n++)
		signer_log_job(job, "not begun");
	if (s->recovering) {
		log_warnx("signer: abandoned inside the token: the recovery "
		    "from an HSM fault (a new login)");
		n++;
	}
	pthread_mutex_unlock(&s->lock);
	return n;
}

void
signer_stop(struct signer *s)
{
	if (s == NULL)
		return;
	pthread_mutex_lock(&s->lock);
	s->stopping = 1;
	pthread_cond_broadcast(&s->cond);
	pthread_cond_broadcast(&s->recovery_cond);
	pthread_mutex_unlock(&s->lock);
	for (int i = 0; i < s->nthreads; i++)
		pthread_join(s->threads[i], NULL);
	if (s->recovery_ok)
		pthread_join(s->recovery, NULL);
}

void
signer_free(struct signer *s)
{
	if (s == NULL)
		return;
	/* Answers the loop will never deliver now (it has stopped). */
	while (s->done != NULL) {
		struct signer_job *next = s->done->next;

		signer_job_free(s->done);
		s->done = next;
	}
	if (s->done_ev != NULL)
		event_free(s->done_ev);
	issuer_free(s->issuer);
	store_group_close(s->group);
	pthread_rwlock_destroy(&s->issuer_lock);
	pthread_rwlock_destroy(&s->hsm_lock);
	pthread_cond_destroy(&s->recovery_cond);
	issuer_free(s->keyless);
	free(s->keyless_uri);
	hsm_key_free(s->tls_key);
	free(s->tls_uri);
	pthread_mutex_destroy(&s->tls_lock);
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->cond);
	free(s->threads);
	free(s->held);
	free(s->nheld);
	free(s->store_path);
	free(s);
}
