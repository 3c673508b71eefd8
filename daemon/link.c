/* link.c: the front's end of the signer. Jobs go out as IPC_JOB with an
 * id and wait here until their IPC_ANSWER; the signer also sends what
 * the front caches for serving (OCSP responses as it signs them). The
 * front never signs: it has no PKCS#11 module, no PIN and no store write
 * handle. A message that does not parse means the signer is not what it
 * should be: the front exits (the parent then stops the daemon). */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <event2/http.h>
#include <openssl/x509.h>

#include "hsmca/ocsp.h"

#include "hsmcad.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"

#define LINK_BUCKETS	256

/* One question to the signer waiting for its answer. */
struct link_wait {
	uint64_t		 id;
	struct signer_job	*job;		/* IPC_JOB */
	struct evhttp_request	*req;		/* IPC_METRICS */
	struct link_wait	*next;
};

struct link {
	struct hsmcad		*d;
	struct ipc		*ipc;
	uint64_t		 next_id;
	int			 pending;
	struct link_wait	*wait[LINK_BUCKETS];
};

static void
wait_add(struct link *l, struct link_wait *w)
{
	struct link_wait **b = &l->wait[w->id % LINK_BUCKETS];

	w->next = *b;
	*b = w;
	l->pending++;
}

static struct link_wait *
wait_take(struct link *l, uint64_t id)
{
	struct link_wait **p;
	struct link_wait *w;

	for (p = &l->wait[id % LINK_BUCKETS]; (w = *p) != NULL; p = &w->next)
		if (w->id == id) {
			*p = w->next;
			l->pending--;
			return w;
		}
	return NULL;
}

static void
link_answer(struct link *l, uint64_t id, struct ipc_rd *r)
{
	struct link_wait *w;
	struct signer_job *job;

	if ((w = wait_take(l, id)) == NULL || w->job == NULL)
		fatalx("signer: an answer to no job (%llu)",
		    (unsigned long long)id);
	job = w->job;
	free(w);
	if (signer_answer_unpack(job, r) != 0)
		fatalx("signer: an answer that does not parse (job %llu)",
		    (unsigned long long)id);
	job->done(job, job->arg);
}

static void
link_metrics_answer(struct link *l, uint64_t id, struct ipc_rd *r)
{
	struct link_wait *w;

	if ((w = wait_take(l, id)) == NULL || w->req == NULL)
		fatalx("signer: metrics nobody asked for");
	if (metrics_signer_unpack(r) != 0)
		fatalx("signer: metrics that do not parse");
	metrics_reply(l->d, w->req);
	free(w);
}

/* What the signer signed for the OCSP cache, mirrored in the front's. */
static void
link_ocsp(struct link *l, uint32_t type, struct ipc_rd *r)
{
	struct hsmca_err e;
	const unsigned char *p;
	X509 *x = NULL;
	size_t len;
	int64_t v;

	v = ipcr_i64(r);
	p = ipcr_view(r, &len, IPC_BODY_MAX);
	if (ipcr_end(r) != 0)
		fatalx("signer: an OCSP update that does not parse");
	if (l->d->ocsp == NULL)
		return;
	err_clear(&e);
	switch (type) {
	case IPC_OCSP_ISSUER:
		if ((x = d2i_X509(NULL, &p, (long)len)) == NULL ||
		    ocsp_cache_add_issuer(l->d->ocsp, v, x, &e) != 0)
			log_warnx("OCSP: an issuer was not cached: %s",
			    x == NULL ? "not a certificate" : e.msg);
		X509_free(x);
		break;
	case IPC_OCSP_PUT:
		if (ocsp_cache_put(l->d->ocsp, p, len, &e) != 0)
			log_warnx("OCSP: a response was not cached: %s", e.msg);
		break;
	case IPC_OCSP_EXPIRE:
		(void)ocsp_cache_expire_unknowns(l->d->ocsp, (time_t)v);
		break;
	}
}

static void
link_msg(struct ipc *c, uint32_t type, uint64_t id, struct ipc_rd *r,
    void *arg)
{
	struct link *l = arg;

	switch (type) {
	case IPC_ANSWER:
		link_answer(l, id, r);
		break;
	case IPC_METRICS_ANSWER:
		link_metrics_answer(l, id, r);
		break;
	case IPC_OCSP_ISSUER:
	case IPC_OCSP_PUT:
	case IPC_OCSP_EXPIRE:
		link_ocsp(l, type, r);
		break;
	default:
		fatalx("signer: unexpected message type %u", type);
	}
}

static void
link_end(struct ipc *c, const char *why, void *arg)
{
	fatalx("the signer process is gone (its channel: %s)", why);
}

struct link *
link_new(struct hsmcad *d, int fd)
{
	struct link *l;

	if ((l = calloc(1, sizeof(*l))) == NULL)
		return NULL;
	l->d = d;
	if ((l->ipc = ipc_new(d->base, fd, link_msg, link_end, l)) == NULL) {
		free(l);
		return NULL;
	}
	return l;
}

void
link_free(struct link *l)
{
	struct link_wait *w, *next;

	if (l == NULL)
		return;
	for (size_t i = 0; i < LINK_BUCKETS; i++)
		for (w = l->wait[i]; w != NULL; w = next) {
			next = w->next;
			signer_job_free(w->job);
			free(w);
		}
	ipc_free(l->ipc);
	free(l);
}

static void
link_fail_cb(evutil_socket_t fd, short what, void *arg)
{
	struct signer_job *job = arg;

	job->done(job, job->arg);
}

/* A job that cannot be sent is answered unavailable, as the signer
 * would, from the loop: never from inside link_submit, whose callers
 * (like signer_submit's) go on using what done may free. */
static void
link_fail(struct link *l, struct signer_job *job, const char *reason)
{
	struct timeval now = { 0, 0 };

	job->status = 503;
	snprintf(job->reason, sizeof(job->reason), "%s", reason);
	if (event_base_once(l->d->base, -1, EV_TIMEOUT, link_fail_cb, job,
	    &now) != 0)
		fatalx("link: cannot answer a job");
}

void
link_submit(struct link *l, struct signer_job *job)
{
	struct ipc_buf b;
	struct link_wait *w;

	memset(&b, 0, sizeof(b));
	job->ipc_id = ++l->next_id;
	signer_job_pack(job, &b);
	if (b.failed) {
		ipcb_free(&b);
		link_fail(l, job, "the request is too large for the signer");
		return;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL ||
	    ipc_send(l->ipc, IPC_JOB, job->ipc_id, &b) != 0) {
		free(w);
		ipcb_free(&b);
		link_fail(l, job, "out of memory");
		return;
	}
	ipcb_free(&b);
	w->id = job->ipc_id;
	w->job = job;
	wait_add(l, w);
}

void
link_abandon(struct link *l, struct signer_job *job)
{
	atomic_store(&job->abandoned, 1);
	(void)ipc_send(l->ipc, IPC_ABANDON, job->ipc_id, NULL);
}

void
link_audit_refusal(struct link *l, const char *actor, const char *object,
    const char *detail)
{
	struct ipc_buf b;

	memset(&b, 0, sizeof(b));
	ipcb_str(&b, actor);
	ipcb_str(&b, object);
	ipcb_str(&b, detail);
	if (ipc_send(l->ipc, IPC_AUDIT, 0, &b) != 0)
		log_warnx("audit: a refusal was not recorded (out of memory)");
	ipcb_free(&b);
}

int
link_pending(struct link *l)
{
	return l->pending;
}

static void
link_issuer_pack(void *arg, struct ipc_buf *b)
{
	const struct fileset *reload = arg;

	ipcb_u32(b, reload != NULL ? 1 : 0);
	if (reload != NULL)
		ipcb_fileset(b, reload);
}

void
link_set_issuer(struct link *l, const struct fileset *reload)
{
	/* link_issuer_pack only reads it. */
	ipc_send_packed(l->ipc, IPC_ISSUER, 0, link_issuer_pack,
	    (void *)reload, "signer: cannot send a reload");
}

void
link_metrics(struct link *l, struct evhttp_request *req)
{
	struct link_wait *w;

	if ((w = calloc(1, sizeof(*w))) == NULL) {
		admin_reply_error(l->d, req, 503, "out of memory");
		return;
	}
	w->id = ++l->next_id;
	w->req = req;
	if (ipc_send(l->ipc, IPC_METRICS, w->id, NULL) != 0) {
		free(w);
		admin_reply_error(l->d, req, 503, "out of memory");
		return;
	}
	wait_add(l, w);
}
