/* sweep.c (hsmcad): the reservations issuances left behind. Every
 * issuance reserves its serial (committed) before the token signs and
 * completes its record after; one that died in between (a crash, a
 * kill, the signer giving up on a hung token at SIGTERM, an `hsmca`
 * killed while it signed) leaves its row reserved for good. The signer
 * marks failed every reservation older than SWEEP_AGE, once at start and
 * every SWEEP_INTERVAL: a timer on the signer's loop queues a SIGNER_SWEEP
 * job, and a worker does it (lib/issue.c, issue_sweep_reserved, as
 * `hsmca cert sweep` does), through the workers' shared commits, with an
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

#include "hsmca/clock.h"
#include "hsmca/issue.h"

#include "hsmcad.h"
#include "log.h"
#include "metrics.h"

#define SWEEP_AGE	(24 * 3600)	/* seconds: a reservation abandoned */
#define SWEEP_INTERVAL	3600		/* seconds between sweeps */

struct sweep {
	struct signer	*signer;
	struct periodic	*timer;
	int		 busy;		/* a SIGNER_SWEEP job is out */
};

void
sweep_job_run(struct store *st, struct signer_job *job)
{
	struct hsmca_err e;
	size_t total = 0;

	err_clear(&e);
	job->status = 200;
	if (issue_sweep_reserved(st, clock_now(), SWEEP_AGE, "hsmcad", NULL,
	    NULL, &total, &e) != 0) {
		log_warnx("signer: reservations left behind not swept: %s",
		    e.msg);
		job->status = err_http_status(e.code);
	}
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

/* The timer's work (periodic.c): the seconds until the next. */
static time_t
sweep_tick(void *arg)
{
	struct sweep *sw = arg;
	struct signer_job *job;

	if (sw->busy)
		return SWEEP_INTERVAL;
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		log_warnx("signer: sweep: out of memory");
		return SWEEP_INTERVAL;
	}
	job->op = SIGNER_SWEEP;
	job->done = sweep_done;
	job->arg = sw;
	sw->busy = 1;
	signer_submit(sw->signer, job);
	return SWEEP_INTERVAL;
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
	/* The first at once: what the last run, or a crash, left. */
	if ((sw->timer = periodic_start(base, "the reservations' sweep",
	    sweep_tick, sw, e)) == NULL) {
		free(sw);
		return e->code;
	}
	*out = sw;
	return 0;
}

void
sweep_free(struct sweep *sw)
{
	if (sw == NULL)
		return;
	periodic_free(sw->timer);
	free(sw);
}
