/* sweep.c (hsmcad): the reservations issuances left behind. Every
 * issuance reserves its serial (committed) before the token signs and
 * completes its record after; one that died in between (a crash, a
 * kill, the signer giving up on a hung token at SIGTERM, an `hsmca`
 * killed while it signed) leaves its row reserved for good. The signer
 * marks failed every reservation older than SWEEP_AGE, once at start and
 * every SWEEP_INTERVAL: a timer on the signer's loop queues a SIGNER_SWEEP
 * job, and a worker does it, through the workers' shared commits, with an
 * audit record per serial in the same transaction.
 *
 * The age is a day. An issuance holds its reservation for the time of
 * one signature and two commits, milliseconds; hsmcad answers an
 * enrollment 503 after 1.5 s and gives its workers up 2 * timeout after
 * SIGTERM; a `hsmca issue` or batch on the same store has no bound but
 * its operator's patience while a token hangs. A day is far beyond any
 * of those and beyond a step of the clock, and a reservation costs
 * nothing while it waits: OCSP answers unknown and enrollment refuses it
 * whether it is reserved or failed. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "hsmca/audit.h"
#include "hsmca/clock.h"

#include "hsmcad.h"
#include "log.h"
#include "metrics.h"

#define SWEEP_AGE	(24 * 3600)	/* seconds: a reservation abandoned */
#define SWEEP_INTERVAL	3600		/* seconds between sweeps */
#define SWEEP_CHUNK	256		/* rows failed per transaction */

struct sweep {
	struct signer	*signer;
	struct event	*ev;
	int		 busy;		/* a SIGNER_SWEEP job is out */
};

/* One transaction of a sweep: reservations made before `before`. */
struct sweep_chunk {
	time_t	 before;
	size_t	 n;
};

/* The audit record of a serial marked failed, in the sweep's
 * transaction. */
static int
sweep_audit(struct store *w, const struct store_cert *c, struct hsmca_err *e)
{
	struct audit_event ev;
	char object[64], detail[AUDIT_DETAIL_MAX], at[32];

	snprintf(object, sizeof(object), "serial:%s", c->serial);
	snprintf(detail, sizeof(detail), "reserved under CA generation %lld "
	    "at %s by %s, profile %s, and never recorded: marked failed after "
	    "%dh, the serial is never used", (long long)c->issuer_id,
	    clock_format(c->created_at, at, sizeof(at)),
	    c->requester != NULL ? c->requester : "-",
	    c->profile != NULL ? c->profile : "-", SWEEP_AGE / 3600);
	memset(&ev, 0, sizeof(ev));
	ev.actor = "hsmcad";
	ev.action = AUDIT_ISSUE;
	ev.object = object;
	ev.outcome = AUDIT_FAILED;
	ev.detail = detail;
	return audit_append(w, &ev, e);
}

static int
sweep_chunk(struct store *w, void *arg, struct hsmca_err *e)
{
	struct sweep_chunk *p = arg;
	struct store_cert *v = NULL;
	size_t n = 0;
	int ret;

	p->n = 0;
	if ((ret = store_fail_reserved_before(w, p->before, SWEEP_CHUNK, &v,
	    &n, e)) != 0)
		return ret;
	for (size_t i = 0; i < n; i++)
		if ((ret = sweep_audit(w, &v[i], e)) != 0)
			goto out;
	p->n = n;
out:
	store_certs_free(v, n);
	return ret;
}

void
sweep_job_run(struct store *st, struct signer_job *job)
{
	struct sweep_chunk p;
	struct hsmca_err e;
	size_t total = 0;

	memset(&p, 0, sizeof(p));
	p.before = clock_now() - SWEEP_AGE;
	job->status = 200;
	do {
		err_clear(&e);
		if (store_write_with(st, sweep_chunk, &p, &e) != 0) {
			log_warnx("signer: reservations left behind not swept: "
			    "%s", e.msg);
			job->status = err_http_status(e.code);
			break;
		}
		total += p.n;
	} while (p.n == SWEEP_CHUNK);
	metrics_swept(total);
	if (total > 0)
		log_info("signer: %zu reservation%s older than %dh marked "
		    "failed: issuances that never completed, their serials "
		    "never used", total, total == 1 ? "" : "s",
		    SWEEP_AGE / 3600);
	else
		log_debug("signer: no reservation older than %dh",
		    SWEEP_AGE / 3600);
}

static void
sweep_done(struct signer_job *job, void *arg)
{
	struct sweep *sw = arg;

	sw->busy = 0;
	signer_job_free(job);
}

static void
sweep_tick(evutil_socket_t fd, short what, void *arg)
{
	struct sweep *sw = arg;
	struct signer_job *job;
	struct timeval tv = { SWEEP_INTERVAL, 0 };

	event_add(sw->ev, &tv);
	if (sw->busy)
		return;
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		log_warnx("signer: sweep: out of memory");
		return;
	}
	job->op = SIGNER_SWEEP;
	job->done = sweep_done;
	job->arg = sw;
	sw->busy = 1;
	signer_submit(sw->signer, job);
}

int
sweep_start(struct event_base *base, struct signer *s, struct sweep **out,
    struct hsmca_err *e)
{
	struct sweep *sw;

	*out = NULL;
	if ((sw = calloc(1, sizeof(*sw))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	sw->signer = s;
	if ((sw->ev = evtimer_new(base, sweep_tick, sw)) == NULL) {
		free(sw);
		return err_set(e, HSMCA_ERR_INTERNAL, "the sweep's timer");
	}
	sweep_tick(-1, 0, sw);	/* what the last run, or a crash, left */
	*out = sw;
	return 0;
}

void
sweep_free(struct sweep *sw)
{
	if (sw == NULL)
		return;
	event_free(sw->ev);
	free(sw);
}
