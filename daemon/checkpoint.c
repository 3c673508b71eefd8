/* checkpoint.c (hsmcad): signed checkpoints of the audit chain. A timer
 * on the loop only queues a SIGNER_CHECKPOINT job; a signer worker checks
 * the records appended since the last checkpoint, signs the chain's head
 * with the active generation's key in the token, records it, and logs it,
 * so a log shipped off the appliance witnesses every checkpoint too. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hsmca/audit.h"
#include "hsmca/clock.h"
#include "hsmca/util.h"

#include "hsmcad.h"
#include "log.h"

static void
checkpoint_done(struct signer_job *job, void *arg)
{
	struct hsmcad *d = arg;

	d->checkpoint_busy = 0;
	signer_job_free(job);
}

/* Queue one, unless one is already queued or running. */
void
checkpoint_now(struct hsmcad *d)
{
	struct signer_job *job;

	if (d->link == NULL || d->checkpoint_busy)
		return;
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		log_warnx("audit checkpoint: out of memory");
		return;
	}
	job->op = SIGNER_CHECKPOINT;
	job->done = checkpoint_done;
	job->arg = d;
	d->checkpoint_busy = 1;
	link_submit(d->link, job);
}

/* The timer's work (periodic.c): the seconds until the next. */
static time_t
checkpoint_tick(void *arg)
{
	struct hsmcad *d = arg;

	if (d->draining)
		return 0;
	checkpoint_now(d);
	/* Asked each time: a reload's new interval applies from the next
	 * tick on. */
	return (time_t)d->rt->cfg->daemon.audit_checkpoint_interval;
}

int
checkpoint_start(struct hsmcad *d, struct hsmca_err *e)
{
	/* The first at once: what was recorded while down. */
	if ((d->checkpoint = periodic_start(d->base, "audit checkpoint",
	    checkpoint_tick, d, e)) == NULL)
		return e->code;
	return 0;
}

void
checkpoint_stop(struct hsmcad *d)
{
	periodic_free(d->checkpoint);
	d->checkpoint = NULL;
}

void
checkpoint_job_run(struct hsm *h, struct store *st, struct issuer *iss,
    struct signer_job *job)
{
	struct audit_signer as;
	struct audit_checkpoint cp;
	struct hsmca_err e;
	char hex[2 * STORE_AUDIT_HASH_LEN + 1];

	err_clear(&e);
	if (iss == NULL) {
		job->status = 503;
		snprintf(job->reason, sizeof(job->reason), "no active CA "
		    "generation to sign with");
		log_warnx("audit checkpoint: not signed: %s", job->reason);
		return;
	}
	audit_signer_issuer(&as, h, iss);
	if (audit_checkpoint(st, &as, clock_now(), 0, &cp, &e) != 0) {
		job->status = err_http_status(e.code);
		snprintf(job->reason, sizeof(job->reason), "%s", e.msg);
		log_warnx("audit checkpoint: %s", e.msg);
		return;
	}
	job->status = 200;
	if (cp.id == 0)
		return;		/* nothing appended since the last one */
	util_hex(cp.record_hash, sizeof(cp.record_hash), hex);
	log_info("audit checkpoint %lld: record %lld, hash %s, signed by CA "
	    "generation %lld (%s)", (long long)cp.id, (long long)cp.record_id,
	    hex, (long long)cp.gen_id, cp.sig_alg);
}
