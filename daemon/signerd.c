/* signerd.c: the signer process. The only part of hsmcad that loads the
 * PKCS#11 module, reads the PIN, holds sessions and writes the store. It
 * takes jobs from the front over a socketpair, runs them on the signer
 * workers (signer.c) and sends the answers back. It trusts nothing the
 * front built: signer.c re-parses the CSR and re-applies the profile and
 * the authorization facts; a message that does not parse ends the
 * channel and the process. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>
#include <openssl/x509.h>

#include "hsmca/fileset.h"
#include "hsmca/ocsp.h"

#include "hsmcad.h"
#include "ipc.h"
#include "log.h"
#include "metrics.h"

#define INFLIGHT_BUCKETS	256

/* Where the signer is in its end (the stop watch). */
enum signerd_phase {
	SIGNERD_SERVING,	/* the loop runs */
	SIGNERD_STOPPING,	/* the workers finish what they hold */
	SIGNERD_CLOSING,	/* the token and the store are being closed */
	SIGNERD_DONE,
	SIGNERD_PHASE_MAX
};

struct signerd {
	const char		*config_path;
	struct event_base	*base;
	struct ipc		*ipc;
	struct signer		*signer;
	struct store		*st;		/* reads for reloads */
	struct runtime		*rt;
	struct ocsp_cache	*ocsp;
	struct sweep		*sweep;		/* reservations left behind */
	/* jobs at the workers, by id: the front may abandon one */
	struct signer_job	*inflight[INFLIGHT_BUCKETS];
	/* the stop watch */
	pthread_mutex_t		 stop_lock;
	pthread_cond_t		 stop_cond;	/* CLOCK_MONOTONIC */
	enum signerd_phase	 phase;
	int			 watch_fd;	/* the front's channel, a dup */
	int64_t			 grace;		/* seconds: [daemon] timeout */
};

static void
inflight_add(struct signerd *sd, struct signer_job *job)
{
	struct signer_job **b = &sd->inflight[job->ipc_id % INFLIGHT_BUCKETS];

	job->ipc_next = *b;
	*b = job;
}

/* Take it out (take set) or just find it. */
static struct signer_job *
inflight_find(struct signerd *sd, uint64_t id, int take)
{
	struct signer_job **p, *job;

	for (p = &sd->inflight[id % INFLIGHT_BUCKETS]; (job = *p) != NULL;
	    p = &job->ipc_next)
		if (job->ipc_id == id) {
			if (take) {
				*p = job->ipc_next;
				job->ipc_next = NULL;
			}
			return job;
		}
	return NULL;
}

/* A job's answer to the front. */
static void
signerd_pack(void *arg, struct ipc_buf *b)
{
	struct signer_job *job = arg;

	signer_answer_pack(job, b);
	if (!b->failed)
		return;
	/* Too large or out of memory: say so rather than nothing. */
	ipcb_free(b);
	free(job->p7_der);
	job->p7_der = NULL;
	job->p7_len = 0;
	if (job->admin != NULL)
		admin_call_drop(job->admin);
	job->admin = NULL;
	job->status = 503;
	snprintf(job->reason, sizeof(job->reason), "the answer is too "
	    "large to send");
	signer_answer_pack(job, b);
}

/* GET /metrics: the signer's own counters, for the front. */
static void
signerd_metrics_pack(void *arg, struct ipc_buf *b)
{
	metrics_signer_pack(b);
}

/* On the signer's loop: a job is done, its answer goes to the front. */
static void
signerd_done(struct signer_job *job, void *arg)
{
	struct signerd *sd = arg;

	ipc_send_packed(sd->ipc, IPC_ANSWER, job->ipc_id, signerd_pack, job,
	    "signer: cannot answer the front");
	if (job->admin != NULL)
		admin_call_drop(job->admin);
	job->admin = NULL;
	signer_job_free(job);
}

/* Jobs are pushed on the in-flight list before the workers get them and
 * leave it when the loop sends their answer. */
static void
signerd_job_done(struct signer_job *job, void *arg)
{
	struct signerd *sd = arg;

	(void)inflight_find(sd, job->ipc_id, 1);
	signerd_done(job, sd);
}

static void
signerd_job(struct signerd *sd, uint64_t id, struct ipc_rd *r)
{
	struct signer_job *job;

	if ((job = signer_job_unpack(r)) == NULL)
		fatalx("signer: the front sent a job that does not parse");
	if (id == 0 || inflight_find(sd, id, 0) != NULL)
		fatalx("signer: the front reused job id %llu",
		    (unsigned long long)id);
	job->ipc_id = id;
	job->rt = runtime_ref(sd->rt);
	job->done = signerd_job_done;
	job->arg = sd;
	inflight_add(sd, job);
	signer_submit(sd->signer, job);
}

/* The generations changed, or (a reload) the config did: fs is the
 * snapshot the front loaded, the very bytes it parsed. */
static void
signerd_issuer(struct signerd *sd, struct fileset *fs)
{
	struct config *cfg = NULL;
	struct runtime *rt;
	struct hsmca_err e;

	err_clear(&e);
	if (fs != NULL) {
		if (config_load_fileset(fs, sd->config_path, &cfg, &e) != 0) {
			log_warnx("signer: reload refused, keeping the running "
			    "config: %s", e.msg);
			fileset_free(fs);
			return;
		}
		rt = runtime_build(cfg, fs, sd->st, &e);
	} else
		rt = runtime_rebuild(sd->rt, sd->st, &e);
	if (rt == NULL) {
		log_warnx("signer: reload refused, keeping the running config: "
		    "%s", e.msg);
		return;
	}
	runtime_unref(sd->rt);
	sd->rt = rt;
	ocsp_configure(rt->cfg);
	if (signer_set_issuer(sd->signer, rt->cfg, &e) != 0)
		log_errorx("error: no CA generation to issue with: %s", e.msg);
}

static void
signerd_msg(struct ipc *c, uint32_t type, uint64_t id, struct ipc_rd *r,
    void *arg)
{
	struct signerd *sd = arg;
	struct signer_job *job;
	struct fileset *fs;
	char actor[512], object[256], detail[HSMCA_ERRMSG_MAX];
	uint32_t reload;

	switch (type) {
	case IPC_JOB:
		signerd_job(sd, id, r);
		break;
	case IPC_ABANDON:
		if (ipcr_end(r) != 0)
			fatalx("signer: a malformed abandon");
		/* Answered already: a job not yet begun is refused. */
		if ((job = inflight_find(sd, id, 0)) != NULL)
			atomic_store(&job->abandoned, 1);
		break;
	case IPC_AUDIT:
		ipcr_str(r, actor, sizeof(actor));
		ipcr_str(r, object, sizeof(object));
		ipcr_str(r, detail, sizeof(detail));
		if (ipcr_end(r) != 0)
			fatalx("signer: a malformed audit record");
		signer_audit_refusal(sd->signer, actor, object, detail);
		break;
	case IPC_ISSUER:
		reload = ipcr_u32(r);
		fs = NULL;
		if (reload == 1 && (fs = ipcr_fileset(r)) == NULL && !r->bad)
			fatalx("signer: out of memory for a reload");
		if (reload > 1 || ipcr_end(r) != 0)
			fatalx("signer: a malformed reload");
		signerd_issuer(sd, fs);
		break;
	case IPC_METRICS:
		if (ipcr_end(r) != 0)
			fatalx("signer: a malformed metrics request");
		ipc_send_packed(sd->ipc, IPC_METRICS_ANSWER, id,
		    signerd_metrics_pack, NULL, "signer: cannot answer the front");
		break;
	default:
		fatalx("signer: unexpected message type %u from the front",
		    type);
	}
}

/* The front is gone: it exits after draining (SIGTERM), or it failed.
 * The workers finish what they hold, then this process ends. */
static void
signerd_end(struct ipc *c, const char *why, void *arg)
{
	struct signerd *sd = arg;

	log_debug("signer: the front's channel %s", why);
	event_base_loopexit(sd->base, NULL);
}

/* ---- the stop watch ----
 * Once the front's channel closes (the front drained and exited, or it
 * died), the signer has [daemon] timeout to finish what it holds. A
 * worker, or this process's loop, stuck inside a token that never
 * answers must not keep hsmcad alive: past that time the watch logs
 * what is abandoned and ends the process at once. _exit: no atexit
 * handler, no C_Finalize, while a thread is still inside the module.
 * The store is left as a crash leaves it, every commit whole: a serial
 * reserved for an abandoned enrollment stays reserved, and nothing
 * signed but not recorded was released. */

static const char *const signerd_phase_names[SIGNERD_PHASE_MAX] = {
	[SIGNERD_SERVING] = "its event loop is still busy",
	[SIGNERD_STOPPING] = "its workers are still inside the token",
	[SIGNERD_CLOSING] = "closing the token is not done",
	[SIGNERD_DONE] = "done",
};

static void
signerd_phase(struct signerd *sd, enum signerd_phase phase)
{
	pthread_mutex_lock(&sd->stop_lock);
	sd->phase = phase;
	pthread_cond_signal(&sd->stop_cond);
	pthread_mutex_unlock(&sd->stop_lock);
}

static void *
signerd_watch(void *arg)
{
	struct signerd *sd = arg;
	struct pollfd pfd;
	struct timespec ts;
	size_t n = 0;
	int rc = 0;

	/* The loop reads the channel; this thread only waits for the
	 * front's end of it to close. */
	pfd.fd = sd->watch_fd;
	pfd.events = POLLRDHUP;
	for (;;) {
		if (poll(&pfd, 1, -1) > 0 && (pfd.revents & (POLLRDHUP |
		    POLLHUP | POLLERR | POLLNVAL)) != 0)
			break;
		if (errno != EINTR)
			sleep(1);	/* out of memory: not a reason to stop */
	}
	close(sd->watch_fd);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	ts.tv_sec += (time_t)sd->grace;
	pthread_mutex_lock(&sd->stop_lock);
	while (sd->phase != SIGNERD_DONE && rc != ETIMEDOUT)
		rc = pthread_cond_timedwait(&sd->stop_cond, &sd->stop_lock,
		    &ts);
	if (sd->phase == SIGNERD_DONE) {
		pthread_mutex_unlock(&sd->stop_lock);
		return NULL;
	}
	/* stop_lock stays held: the loop's thread frees nothing now. */
	log_warnx("signer: %llds after the front ended, %s: giving up",
	    (long long)sd->grace, signerd_phase_names[sd->phase]);
	if (sd->phase != SIGNERD_CLOSING)
		n = signer_log_held(sd->signer);
	log_warnx("signer: exiting with %zu jobs abandoned", n);
	_exit(1);
}

/* Start the watch on a copy of the front's channel (the loop closes
 * its own at the end, and the number could be reused meanwhile). */
static void
signerd_watch_start(struct signerd *sd, int fd, int64_t grace)
{
	pthread_condattr_t ca;
	pthread_t t;

	sd->grace = grace;
	if (pthread_condattr_init(&ca) != 0 ||
	    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC) != 0 ||
	    pthread_cond_init(&sd->stop_cond, &ca) != 0 ||
	    pthread_mutex_init(&sd->stop_lock, NULL) != 0)
		fatalx("signer: the stop watch's lock");
	pthread_condattr_destroy(&ca);
	if ((sd->watch_fd = fcntl(fd, F_DUPFD_CLOEXEC, 0)) == -1)
		fatal("signer: the stop watch's channel");
	if (pthread_create(&t, NULL, signerd_watch, sd) != 0 ||
	    pthread_detach(t) != 0)
		fatalx("signer: the stop watch's thread");
}

/* ---- the OCSP mirror: the front serves what the workers sign ---- */

static void
mirror_issuer(int64_t gen_id, X509 *x, void *arg)
{
	struct signerd *sd = arg;
	struct ipc_buf b;
	unsigned char *der = NULL;
	int len;

	if ((len = i2d_X509(x, &der)) <= 0)
		return;
	memset(&b, 0, sizeof(b));
	ipcb_i64(&b, gen_id);
	ipcb_bytes(&b, der, (size_t)len);
	(void)ipc_send(sd->ipc, IPC_OCSP_ISSUER, 0, &b);
	ipcb_free(&b);
	OPENSSL_free(der);
}

static void
mirror_put(const unsigned char *der, size_t len, void *arg)
{
	struct signerd *sd = arg;
	struct ipc_buf b;

	memset(&b, 0, sizeof(b));
	ipcb_i64(&b, 0);
	ipcb_bytes(&b, der, len);
	(void)ipc_send(sd->ipc, IPC_OCSP_PUT, 0, &b);
	ipcb_free(&b);
}

static void
mirror_expire(time_t now, void *arg)
{
	struct signerd *sd = arg;
	struct ipc_buf b;

	memset(&b, 0, sizeof(b));
	ipcb_i64(&b, (int64_t)now);
	ipcb_bytes(&b, NULL, 0);
	(void)ipc_send(sd->ipc, IPC_OCSP_EXPIRE, 0, &b);
	ipcb_free(&b);
}

void
signerd_main(const char *config_path, struct config *cfg, struct fileset *fs,
    int fd, int keyfd)
{
	struct signerd sd;
	struct hsm *h = NULL;
	struct hsmca_err e;
	struct ocsp_mirror m;
	struct ipc_buf hello;
	int workers;

	memset(&sd, 0, sizeof(sd));
	sd.config_path = config_path;
	(void)prctl(PR_SET_NAME, "hsmcad-signer", 0, 0, 0);
	/* The front drains first; this process ends when its channel
	 * does. A terminal's ^C or a unit's SIGTERM to every process must
	 * not end it before. */
	signal(SIGTERM, SIG_IGN);
	signal(SIGINT, SIG_IGN);
	signal(SIGHUP, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	if (sigprocmask(SIG_SETMASK, &hsmcad_startup_mask, NULL) == -1)
		fatal("sigprocmask");

	if (hsm_open(&cfg->hsm, &h, &e) != 0)
		fatalx("%s", e.msg);
	log_info("logged in to token '%s'", hsm_token_label(h));
	/* After an HSM fault the signer logs in again (hsm_recover), by
	 * then without the rights to read a root-only PIN file: the PIN
	 * stays in this process's locked memory, and nowhere else (its
	 * copy in the environment is wiped here, the parent's before it
	 * forks the front). */
	if (hsm_keep_pin(h, &e) != 0)
		fatalx("%s", e.msg);
	daemon_forget_env_pin(cfg);
	if (store_open(cfg->store.path, &sd.st, &e) != 0)
		fatalx("%s", e.msg);
	if ((sd.rt = runtime_build(cfg, fs, sd.st, &e)) == NULL)
		fatalx("%s", e.msg);
	cfg = sd.rt->cfg;
	if (evthread_use_pthreads() != 0 || (sd.base = event_base_new()) == NULL)
		fatalx("libevent setup failed");
	workers = cfg->daemon.workers > 0 ? cfg->daemon.workers :
	    (int)sysconf(_SC_NPROCESSORS_ONLN);
	if (workers < 1)
		workers = 1;

	daemon_drop_privileges(cfg->daemon.user);
	/* Not even a process of the same user may read this one's memory
	 * (the session handles, the key objects) or trace it. */
	if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) == -1)
		fatal("PR_SET_DUMPABLE");

	if (signer_start(sd.base, h, cfg->store.path, workers, &sd.signer,
	    &e) != 0)
		fatalx("%s", e.msg);
	ocsp_configure(cfg);
	if (signer_set_issuer(sd.signer, cfg, &e) != 0)
		log_warnx("no CA generation to issue with yet: %s", e.msg);
	if (strncmp(cfg->daemon.tls_key, "pkcs11:", 7) == 0 &&
	    signer_set_tls_key(sd.signer, cfg->daemon.tls_key, &e) != 0)
		fatalx("%s", e.msg);
	if (daemon_listen_addr(cfg, LISTENER_HTTP) != NULL) {
		if (ocsp_cache_new(&sd.ocsp, &e) != 0)
			fatalx("%s", e.msg);
		signer_set_ocsp(sd.signer, sd.ocsp);
		memset(&m, 0, sizeof(m));
		m.issuer = mirror_issuer;
		m.put = mirror_put;
		m.expire = mirror_expire;
		m.arg = &sd;
		ocsp_set_mirror(&m);
	}
	if (keyfd != -1 && keyop_serve(sd.base, sd.signer, keyfd, &e) != 0)
		fatalx("%s", e.msg);
	if (sweep_start(sd.base, sd.signer, &sd.sweep, &e) != 0)
		fatalx("%s", e.msg);

	/* Ready: the front may serve. */
	memset(&hello, 0, sizeof(hello));
	ipcb_u32(&hello, (uint32_t)workers);
	ipcb_str(&hello, hsm_token_label(h));
	if (ipc_send_one(fd, IPC_HELLO, &hello) != 0)
		fatalx("signer: the front is gone before it started");
	ipcb_free(&hello);
	if ((sd.ipc = ipc_new(sd.base, fd, signerd_msg, signerd_end,
	    &sd)) == NULL)
		fatalx("signer: channel setup failed");
	signerd_watch_start(&sd, fd, cfg->daemon.timeout);
	/* What fails from now on is not the start-up's (hsmcad -d). */
	log_startup_close();
	event_base_dispatch(sd.base);

	/* The workers finish what is queued; no answer can go out now. */
	signerd_phase(&sd, SIGNERD_STOPPING);
	signer_stop(sd.signer);
	signerd_phase(&sd, SIGNERD_CLOSING);
	signer_free(sd.signer);
	sweep_free(sd.sweep);
	ipc_free(sd.ipc);
	ocsp_cache_free(sd.ocsp);
	ocsp_forget_keys();	/* the responder keys, before their login */
	hsm_close(h);
	store_close(sd.st);
	runtime_unref(sd.rt);
	event_base_free(sd.base);
	signerd_phase(&sd, SIGNERD_DONE);
	log_debug("signer: exiting");
	exit(0);
}
