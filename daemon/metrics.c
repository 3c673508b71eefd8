/* metrics.c: GET /metrics on the admin listener, in the Prometheus text
 * exposition format (version 0.0.4). Counters are kept by the front and
 * the signer workers as they go; CA generations, CRLs and OCSP are read
 * at scrape time. */
#include "config.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/http.h>

#include "hsmca/ca.h"
#include "hsmca/clock.h"

#include "hsmcad.h"
#include "ipc.h"
#include "metrics.h"

#define METRICS_PROFILES	32

/* Refusals by reason, from the HTTP status of the answer. */
enum metrics_reason {
	MR_BAD_REQUEST,		/* 400: the CSR or the body */
	MR_IDENTITY,		/* 401, 403: who asked, or what */
	MR_NOT_FOUND,		/* 404: unknown label or path */
	MR_TOO_LARGE,		/* 413, 431 */
	MR_CONTENT_TYPE,	/* 415 */
	MR_UNAVAILABLE,		/* 503: HSM or store unavailable */
	MR_OTHER,
	MR_MAX
};

static const char *const reason_names[MR_MAX] = {
	"bad_request", "identity", "not_found", "too_large", "content_type",
	"unavailable", "other"
};

/* Signing latency buckets, seconds. */
static const double buckets[] = {
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5
};
#define NBUCKETS	(sizeof(buckets) / sizeof(buckets[0]))

static struct {
	pthread_mutex_t	 lock;
	char		 profile[METRICS_PROFILES][64];
	uint64_t	 issued[METRICS_PROFILES];
	uint64_t	 refused[METRICS_PROFILES][MR_MAX];
	size_t		 nprofiles;
	uint64_t	 sign_bucket[NBUCKETS];
	uint64_t	 sign_count;
	uint64_t	 sign_passes;
	double		 sign_sum;
	uint64_t	 hsm_errors;
	uint64_t	 swept;
	int		 signing;
} m = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* The slot of a profile name; the last slot takes any beyond the cap.
 * Called with the lock held. */
static size_t
profile_slot(const char *profile)
{
	size_t i;

	if (profile == NULL || *profile == '\0')
		profile = "-";
	for (i = 0; i < m.nprofiles; i++)
		if (strcmp(m.profile[i], profile) == 0)
			return i;
	if (m.nprofiles == METRICS_PROFILES)
		return METRICS_PROFILES - 1;
	snprintf(m.profile[m.nprofiles], sizeof(m.profile[0]), "%s",
	    m.nprofiles == METRICS_PROFILES - 1 ? "other" : profile);
	return m.nprofiles++;
}

static enum metrics_reason
reason_of(int status)
{
	switch (status) {
	case 400:
		return MR_BAD_REQUEST;
	case 401:
	case 403:
		return MR_IDENTITY;
	case 404:
		return MR_NOT_FOUND;
	case 413:
	case 431:
		return MR_TOO_LARGE;
	case 415:
		return MR_CONTENT_TYPE;
	case 503:
		return MR_UNAVAILABLE;
	default:
		return MR_OTHER;
	}
}

void
metrics_request(const char *profile, int status)
{
	size_t i;

	pthread_mutex_lock(&m.lock);
	i = profile_slot(profile);
	if (status == 200)
		m.issued[i]++;
	else
		m.refused[i][reason_of(status)]++;
	pthread_mutex_unlock(&m.lock);
}

void
metrics_sign_begin(void)
{
	pthread_mutex_lock(&m.lock);
	m.signing++;
	pthread_mutex_unlock(&m.lock);
}

void
metrics_sign_end(double seconds, const int *hsm_error, size_t n)
{
	pthread_mutex_lock(&m.lock);
	m.signing--;
	m.sign_passes++;
	for (size_t i = 0; i < n; i++) {
		if (hsm_error[i]) {
			m.hsm_errors++;
			continue;
		}
		for (size_t b = 0; b < NBUCKETS; b++)
			if (seconds <= buckets[b])
				m.sign_bucket[b]++;
		m.sign_count++;
		m.sign_sum += seconds;
	}
	pthread_mutex_unlock(&m.lock);
}

void
metrics_swept(size_t n)
{
	pthread_mutex_lock(&m.lock);
	m.swept += n;
	pthread_mutex_unlock(&m.lock);
}

/* Label values are escaped as the format asks: \\, \" and \n. */
static void
label_value(struct evbuffer *b, const char *s)
{
	for (; *s != '\0'; s++) {
		if (*s == '\\' || *s == '"')
			evbuffer_add_printf(b, "\\%c", *s);
		else if (*s == '\n')
			evbuffer_add(b, "\\n", 2);
		else
			evbuffer_add(b, s, 1);
	}
}

static void
counters(struct evbuffer *b)
{
	pthread_mutex_lock(&m.lock);
	evbuffer_add_printf(b, "# HELP hsmca_certificates_issued_total "
	    "Certificates issued over EST, by profile.\n"
	    "# TYPE hsmca_certificates_issued_total counter\n");
	for (size_t i = 0; i < m.nprofiles; i++) {
		evbuffer_add_printf(b, "hsmca_certificates_issued_total"
		    "{profile=\"");
		label_value(b, m.profile[i]);
		evbuffer_add_printf(b, "\"} %llu\n",
		    (unsigned long long)m.issued[i]);
	}
	evbuffer_add_printf(b, "# HELP hsmca_certificates_refused_total "
	    "EST enrollment requests refused, by profile and reason.\n"
	    "# TYPE hsmca_certificates_refused_total counter\n");
	for (size_t i = 0; i < m.nprofiles; i++)
		for (int r = 0; r < MR_MAX; r++) {
			if (m.refused[i][r] == 0)
				continue;
			evbuffer_add_printf(b, "hsmca_certificates_refused_total"
			    "{profile=\"");
			label_value(b, m.profile[i]);
			evbuffer_add_printf(b, "\",reason=\"%s\"} %llu\n",
			    reason_names[r],
			    (unsigned long long)m.refused[i][r]);
		}
	evbuffer_add_printf(b, "# HELP hsmca_signing_seconds Time to issue "
	    "a certificate on a signer worker (lint, HSM signature, "
	    "verification, durable record), its whole signing pass.\n"
	    "# TYPE hsmca_signing_seconds histogram\n");
	for (size_t i = 0; i < NBUCKETS; i++)
		evbuffer_add_printf(b, "hsmca_signing_seconds_bucket{le=\"%g\"} "
		    "%llu\n", buckets[i], (unsigned long long)m.sign_bucket[i]);
	evbuffer_add_printf(b, "hsmca_signing_seconds_bucket{le=\"+Inf\"} "
	    "%llu\nhsmca_signing_seconds_sum %.6f\n"
	    "hsmca_signing_seconds_count %llu\n",
	    (unsigned long long)m.sign_count, m.sign_sum,
	    (unsigned long long)m.sign_count);
	evbuffer_add_printf(b, "# HELP hsmca_signing_passes_total Signer "
	    "passes: enrollments waiting together are issued in one pass, "
	    "their serials reserved in one commit and their records written "
	    "in one.\n# TYPE hsmca_signing_passes_total counter\n"
	    "hsmca_signing_passes_total %llu\n",
	    (unsigned long long)m.sign_passes);
	evbuffer_add_printf(b, "# HELP hsmca_hsm_sessions_in_use HSM sessions "
	    "signing right now.\n# TYPE hsmca_hsm_sessions_in_use gauge\n"
	    "hsmca_hsm_sessions_in_use %d\n", m.signing);
	evbuffer_add_printf(b, "# HELP hsmca_hsm_errors_total Issuances that "
	    "failed in the HSM.\n# TYPE hsmca_hsm_errors_total counter\n"
	    "hsmca_hsm_errors_total %llu\n",
	    (unsigned long long)m.hsm_errors);
	evbuffer_add_printf(b, "# HELP hsmca_reservations_swept_total "
	    "Serials reserved more than a day ago and never recorded, marked "
	    "failed by the signer's sweep.\n"
	    "# TYPE hsmca_reservations_swept_total counter\n"
	    "hsmca_reservations_swept_total %llu\n",
	    (unsigned long long)m.swept);
	pthread_mutex_unlock(&m.lock);
}

static void
generations(struct hsmcad *d, struct evbuffer *b, time_t now)
{
	static const enum store_gen_status states[] = {
		STORE_GEN_PENDING, STORE_GEN_ACTIVE, STORE_GEN_INACTIVE,
		STORE_GEN_REVOKED, STORE_GEN_EXPIRED
	};
	struct store_generation *v = NULL;
	struct hsmca_err e;
	size_t n = 0;

	if (store_list_generations(d->st, &v, &n, &e) != 0) {
		evbuffer_add_printf(b, "# store unavailable: generations "
		    "omitted\n");
		return;
	}
	evbuffer_add_printf(b, "# HELP hsmca_ca_generation_status 1 for the "
	    "status each CA generation is in.\n"
	    "# TYPE hsmca_ca_generation_status gauge\n");
	for (size_t i = 0; i < n; i++) {
		enum store_gen_status s = ca_effective_status(&v[i], now);

		for (size_t k = 0; k < sizeof(states) / sizeof(states[0]); k++)
			evbuffer_add_printf(b, "hsmca_ca_generation_status{"
			    "generation=\"%lld\",kind=\"%s\",status=\"%s\"} %d\n",
			    (long long)v[i].id, store_gen_kind_name(v[i].kind),
			    store_gen_status_name(states[k]), s == states[k]);
	}
	evbuffer_add_printf(b, "# HELP hsmca_ca_generation_expiry_seconds "
	    "Seconds until each CA generation's certificate expires "
	    "(negative: expired).\n"
	    "# TYPE hsmca_ca_generation_expiry_seconds gauge\n");
	for (size_t i = 0; i < n; i++)
		if (v[i].not_after > 0)
			evbuffer_add_printf(b, "hsmca_ca_generation_expiry_seconds"
			    "{generation=\"%lld\"} %lld\n", (long long)v[i].id,
			    (long long)(v[i].not_after - now));
	store_generations_free(v, n);
}

static void
revocation(struct hsmcad *d, struct evbuffer *b, time_t now)
{
	evbuffer_add_printf(b, "# HELP hsmca_crl_age_seconds Seconds since "
	    "the thisUpdate of the CRL served for each generation.\n"
	    "# TYPE hsmca_crl_age_seconds gauge\n");
	for (size_t i = 0; i < d->ncrls; i++)
		if (d->crls[i].der != NULL)
			evbuffer_add_printf(b, "hsmca_crl_age_seconds{generation="
			    "\"%lld\"} %lld\n", (long long)d->crls[i].gen_id,
			    (long long)(now - d->crls[i].this_update));
	if (d->ocsp != NULL) {
		evbuffer_add_printf(b, "# HELP hsmca_ocsp_responses Pre-signed "
		    "OCSP responses held in memory.\n"
		    "# TYPE hsmca_ocsp_responses gauge\n"
		    "hsmca_ocsp_responses %zu\n", ocsp_cache_count(d->ocsp));
		if (d->ocsp_swept > 0)
			evbuffer_add_printf(b, "# HELP hsmca_ocsp_sweep_age_seconds "
			    "Seconds since OCSP responses were last checked and "
			    "refreshed.\n"
			    "# TYPE hsmca_ocsp_sweep_age_seconds gauge\n"
			    "hsmca_ocsp_sweep_age_seconds %lld\n",
			    (long long)(now - d->ocsp_swept));
	}
}

void
metrics_signer_pack(struct ipc_buf *b)
{
	pthread_mutex_lock(&m.lock);
	for (size_t i = 0; i < NBUCKETS; i++)
		ipcb_i64(b, (int64_t)m.sign_bucket[i]);
	ipcb_i64(b, (int64_t)m.sign_count);
	ipcb_i64(b, (int64_t)m.sign_passes);
	ipcb_i64(b, (int64_t)(m.sign_sum * 1e6));
	ipcb_i64(b, (int64_t)m.hsm_errors);
	ipcb_i64(b, (int64_t)m.swept);
	ipcb_i64(b, m.signing);
	pthread_mutex_unlock(&m.lock);
}

int
metrics_signer_unpack(struct ipc_rd *r)
{
	uint64_t bucket[NBUCKETS], count, passes, errors, swept;
	double sum;
	int64_t signing;

	for (size_t i = 0; i < NBUCKETS; i++)
		bucket[i] = (uint64_t)ipcr_i64(r);
	count = (uint64_t)ipcr_i64(r);
	passes = (uint64_t)ipcr_i64(r);
	sum = (double)ipcr_i64(r) / 1e6;
	errors = (uint64_t)ipcr_i64(r);
	swept = (uint64_t)ipcr_i64(r);
	signing = ipcr_i64(r);
	if (ipcr_end(r) != 0 || signing < 0 || signing > INT32_MAX)
		return -1;
	pthread_mutex_lock(&m.lock);
	memcpy(m.sign_bucket, bucket, sizeof(bucket));
	m.sign_count = count;
	m.sign_passes = passes;
	m.sign_sum = sum;
	m.hsm_errors = errors;
	m.swept = swept;
	m.signing = (int)signing;
	pthread_mutex_unlock(&m.lock);
	return 0;
}

void
metrics_handle(struct hsmcad *d, struct evhttp_request *req)
{
	link_metrics(d->link, req);
}

void
metrics_reply(struct hsmcad *d, struct evhttp_request *req)
{
	struct evbuffer *b = evbuffer_new();
	time_t now = clock_now();

	if (b == NULL) {
		admin_reply_error(d, req, 503, "out of memory");
		return;
	}
	counters(b);
	generations(d, b, now);
	revocation(d, b, now);
	evbuffer_add_printf(b, "# HELP hsmca_requests_in_flight Requests "
	    "not yet answered.\n# TYPE hsmca_requests_in_flight gauge\n"
	    "hsmca_requests_in_flight %d\n", d->inflight);
	listener_metrics(b);
	evhttp_add_header(evhttp_request_get_output_headers(req),
	    "Content-Type", "text/plain; version=0.0.4; charset=utf-8");
	/* A HEAD: the GET's headers, Content-Length too. */
	http_reply(req, 200, "OK", b);
	evbuffer_free(b);
}
