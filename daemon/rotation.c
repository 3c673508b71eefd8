/* rotation.c (hsmcad): CA rotation and the expiry watch.
 *
 * A timer on the loop reads the generations every ROTATION_POLL_SEC.
 * When one was created or changed status (by the rotation step below,
 * or by `hsmca ca rotate | activate | revoke | tick`), the trust and
 * cacerts are rebuilt and the signer reloads the active generation. A
 * generation inside ROTATION_WARN_WITHIN of its expiry is logged once a
 * day with a warning, and with an error once it has expired.
 *
 * At start and every ROTATION_TICK_POLLS polls the rotation step,
 * ca_rotation_tick(), runs on a signer worker (SIGNER_ROTATE): it may
 * generate a key and sign in the token, which never happens on the
 * loop. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "hsmca/ca.h"
#include "hsmca/clock.h"

#include "hsmcad.h"
#include "log.h"

#define ROTATION_POLL_SEC	2
#define ROTATION_TICK_POLLS	150		/* a rotation step every 5 min */
#define ROTATION_WARN_WITHIN	(30 * 86400)	/* the expiry watch's window */
#define ROTATION_WARN_EVERY	86400		/* one line a day and generation */
#define DAY			86400

struct rotation_warned {
	int64_t		 gen_id;
	time_t		 at;		/* clock_now() of the last line */
};

struct rotation {
	struct event		*ev;
	unsigned int		 polls;
	int			 busy;		/* a SIGNER_ROTATE job is out */
	char			*seen;		/* the generations as last read */
	struct rotation_warned	*warned;
	size_t			 nwarned;
};

/* ---- on a signer worker ---- */

void
rotation_job_run(struct hsm *h, struct store *st, struct signer_job *job)
{
	struct ca_ctx ctx;
	struct hsmca_err e;

	memset(&ctx, 0, sizeof(ctx));
	ctx.cfg = job->rt->cfg;
	ctx.st = st;
	ctx.hsm = h;
	ctx.actor = "hsmcad";
	err_clear(&e);
	if ((job->events = calloc(1, sizeof(*job->events))) == NULL) {
		job->status = 500;
		snprintf(job->reason, sizeof(job->reason), "out of memory");
		return;
	}
	if (ca_rotation_tick(&ctx, clock_now(), job->events, &e) != 0) {
		job->status = err_http_status(e.code);
		snprintf(job->reason, sizeof(job->reason), "%s", e.msg);
		return;
	}
	job->status = 200;
}

/* ---- on the loop ---- */

/* What the generations look like, to notice a change: id, status,
 * certificate. NULL if out of memory. */
static char *
gens_seen(const struct store_generation *v, size_t n, time_t now)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *fp;

	if ((fp = open_memstream(&buf, &len)) == NULL)
		return NULL;
	for (size_t i = 0; i < n; i++)
		fprintf(fp, "%lld:%s:%s;", (long long)v[i].id,
		    store_gen_status_name(ca_effective_status(&v[i], now)),
		    v[i].sha256);
	if (fclose(fp) != 0) {
		free(buf);
		return NULL;
	}
	return buf;
}

/* Rebuild trust and cacerts, and reload the active generation. */
static void
rotation_reload(struct hsmcad *d, const struct store_generation *v, size_t n)
{
	struct runtime *rt;
	struct hsmca_err e;
	long long active = 0;

	if ((rt = runtime_rebuild(d->rt, d->st, &e)) == NULL) {
		log_warnx("CA generations changed, but cacerts was not "
		    "rebuilt: %s", e.msg);
		return;
	}
	runtime_unref(d->rt);
	d->rt = rt;
	link_set_issuer(d->link, NULL);
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == STORE_GEN_ISSUING &&
		    v[i].status == STORE_GEN_ACTIVE)
			active = (long long)v[i].id;
	log_info("CA generations changed: cacerts rebuilt with %d "
	    "certificates, active generation %lld", sk_X509_num(rt->cacerts),
	    active);
}

/* Once a day (of the injectable clock) per generation. */
static int
warn_due(struct rotation *r, int64_t gen_id, time_t now)
{
	struct rotation_warned *w;

	for (size_t i = 0; i < r->nwarned; i++) {
		if (r->warned[i].gen_id != gen_id)
			continue;
		if (now >= r->warned[i].at && now - r->warned[i].at <
		    ROTATION_WARN_EVERY)
			return 0;
		r->warned[i].at = now;
		return 1;
	}
	if ((w = reallocarray(r->warned, r->nwarned + 1, sizeof(*w))) == NULL)
		return 1;
	r->warned = w;
	w[r->nwarned].gen_id = gen_id;
	w[r->nwarned].at = now;
	r->nwarned++;
	return 1;
}

static int
has_successor(const struct store_generation *v, size_t n, int64_t gen_id,
    time_t now)
{
	for (size_t i = 0; i < n; i++) {
		enum store_gen_status s = ca_effective_status(&v[i], now);

		if (v[i].kind == STORE_GEN_ISSUING && v[i].id > gen_id &&
		    (s == STORE_GEN_INACTIVE || s == STORE_GEN_PENDING))
			return 1;
	}
	return 0;
}

#define ACTION_NONE_ISSUED \
	"nothing can be issued (hsmca ca rotate, then hsmca ca activate)"

/* The expiry watch: a warning a day for a generation inside
 * ROTATION_WARN_WITHIN of its notAfter, an error a day once it has
 * expired: for ROTATION_WARN_WITHIN after, and for as long as it is the
 * last active generation and none has taken over (nothing can be
 * issued), also once a rotation step has marked it expired. */
static void
rotation_watch(struct rotation *r, const struct store_generation *v,
    size_t n, time_t now)
{
	size_t stalled = ca_stalled_generation(v, n, now);
	char t[32];

	for (size_t i = 0; i < n; i++) {
		const struct store_generation *g = &v[i];
		enum store_gen_status s = ca_effective_status(g, now);
		int active = g->kind == STORE_GEN_ISSUING &&
		    (g->status == STORE_GEN_ACTIVE || i == stalled);

		if (g->cert_der == NULL || s == STORE_GEN_REVOKED ||
		    s == STORE_GEN_PENDING)
			continue;
		if (s == STORE_GEN_EXPIRED) {
			if ((now - g->not_after > ROTATION_WARN_WITHIN &&
			    !active) || !warn_due(r, g->id, now))
				continue;
			log_errorx("error: CA %s generation %lld (%s) expired "
			    "at %s%s", store_gen_kind_name(g->kind),
			    (long long)g->id, g->subject, clock_format(
			    g->not_after, t, sizeof(t)), !active ? "" :
			    g->status == STORE_GEN_ACTIVE ? ": it is the "
			    "active generation, " ACTION_NONE_ISSUED : ": it "
			    "was the last active generation and none took "
			    "over, " ACTION_NONE_ISSUED);
		} else if (g->not_after - now <= ROTATION_WARN_WITHIN) {
			if (!warn_due(r, g->id, now))
				continue;
			log_warnx("warning: CA %s generation %lld (%s) expires "
			    "in %lld days, at %s%s", store_gen_kind_name(g->kind),
			    (long long)g->id, g->subject,
			    (long long)(g->not_after - now) / DAY,
			    clock_format(g->not_after, t, sizeof(t)),
			    active && !has_successor(v, n, g->id, now) ?
			    ": it is the active generation and none waits to "
			    "take over (hsmca ca rotate)" : "");
		}
	}
}

static void
rotation_poll(struct hsmcad *d)
{
	struct rotation *r = d->rotation;
	struct store_generation *v = NULL;
	struct hsmca_err e;
	size_t n = 0;
	time_t now = clock_now();
	char *seen;

	if (store_list_generations(d->st, &v, &n, &e) != 0) {
		log_warnx("CA rotation: %s", e.msg);
		return;
	}
	if ((seen = gens_seen(v, n, now)) != NULL) {
		if (r->seen != NULL && strcmp(seen, r->seen) != 0)
			rotation_reload(d, v, n);
		free(r->seen);
		r->seen = seen;
	}
	rotation_watch(r, v, n, now);
	store_generations_free(v, n);
}

void
rotation_check_now(struct hsmcad *d)
{
	if (d->rotation != NULL)
		rotation_poll(d);
}

static void
rotation_done(struct signer_job *job, void *arg)
{
	struct hsmcad *d = arg;
	struct rotation *r = d->rotation;
	size_t nev = job->events != NULL ? job->events->n : 0;

	r->busy = 0;
	for (size_t i = 0; i < nev; i++) {
		const struct ca_event *x = &job->events->ev[i];

		/* A generation waiting for an outside root needs a person. */
		if (x->kind == CA_EVENT_PENDING)
			log_warnx("CA rotation: %s", x->msg);
		else
			log_info("CA rotation: %s", x->msg);
	}
	if (job->status != 200)
		log_warnx("CA rotation: %s", job->reason);
	else
		log_debug("CA rotation: step done, %zu changes", nev);
	signer_job_free(job);
	/* Apply what changed now rather than at the next poll. */
	if (nev > 0 && !d->draining)
		rotation_poll(d);
}

static void
rotation_submit(struct hsmcad *d)
{
	struct rotation *r = d->rotation;
	struct signer_job *job;

	if (r->busy || d->draining)
		return;
	if ((job = calloc(1, sizeof(*job))) == NULL) {
		log_warnx("CA rotation: out of memory");
		return;
	}
	job->op = SIGNER_ROTATE;
	job->rt = runtime_ref(d->rt);
	job->done = rotation_done;
	job->arg = d;
	r->busy = 1;
	link_submit(d->link, job);
}

static void
rotation_timer(evutil_socket_t fd, short what, void *arg)
{
	struct hsmcad *d = arg;
	struct rotation *r = d->rotation;

	if (d->draining)
		return;
	rotation_poll(d);
	if (++r->polls % ROTATION_TICK_POLLS == 0)
		rotation_submit(d);
}

int
rotation_start(struct hsmcad *d, struct hsmca_err *e)
{
	struct timeval tv = { ROTATION_POLL_SEC, 0 };
	struct rotation *r;

	if ((r = calloc(1, sizeof(*r))) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	d->rotation = r;
	if ((r->ev = event_new(d->base, -1, EV_PERSIST, rotation_timer,
	    d)) == NULL || event_add(r->ev, &tv) != 0)
		return err_set(e, HSMCA_ERR_INTERNAL, "rotation timer");
	rotation_poll(d);
	rotation_submit(d);	/* the first step now */
	return 0;
}

void
rotation_stop(struct hsmcad *d)
{
	struct rotation *r = d->rotation;

	if (r == NULL)
		return;
	if (r->ev != NULL)
		event_free(r->ev);
	free(r->seen);
	free(r->warned);
	free(r);
	d->rotation = NULL;
}
