/* ocsp.c (hsmcad): the OCSP responder (RFC 6960, RFC 5019 profile) on
 * the plain HTTP listener, at /ocsp (POST) and /ocsp/<base64> (GET).
 * Requests are answered from the in-memory cache of pre-signed
 * responses (lib/ocsp.c) without touching the HSM. A timer on the loop
 * sends a SIGNER_OCSP job to the signer workers, which sign and put the
 * responses into the cache themselves (it is thread-safe). A miss for
 * one of our generations is signed on a worker too
 * (SIGNER_OCSP_UNKNOWN), at most OCSP_UNKNOWN_RATE a second.
 *
 * Each job does bounded work whatever the store holds: it reads the
 * certificates whose status changed since the last job (the store's
 * cert_change log: issued, revoked, held, lifted), then walks the next
 * OCSP_WALK_ROWS certificates by id from where the last job stopped,
 * signing what is missing, different or due, at most OCSP_BATCH.
 *
 * With [ca] ocsp-signer = responder, each generation's responses are
 * signed by its delegated responder certificate: made on a worker the
 * first time it is needed (its key generated in the token), recorded
 * like any certificate, renewed OCSP_RESPONDER_RENEW_BEFORE before it
 * expires (for the same key), and kept in memory for every worker. Its
 * key is destroyed once the generation has ended and nothing it signed
 * can be served (responders_retire). */
#include "config.h"

#include <pthread.h>
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

#include "hsmca/audit.h"
#include "hsmca/ca.h"
#include "hsmca/clock.h"
#include "hsmca/ocsp.h"

#include "hsmcad.h"
#include "log.h"

/* Signatures per SIGNER_OCSP job, so one job never runs for minutes;
 * the loop sends the next one as soon as it is back. */
#define OCSP_BATCH		256
/* Certificate changes read, and certificates walked, per job. */
#define OCSP_CHANGES_ROWS	4096
#define OCSP_WALK_ROWS		20000
/* How often the loop sends a job. */
#define OCSP_TICK_SEC		2
/* Signatures for cache misses (unknown serials), per second: random
 * serials must not be able to keep the HSM busy. */
#define OCSP_UNKNOWN_RATE	50.0

/* ---- delegated responders, shared by the workers ---- */

struct responder {
	int64_t		 gen_id;
	X509		*cert;
	struct hsm_key	*key;
	time_t		 not_after;
};

static pthread_mutex_t	 responders_lock = PTHREAD_MUTEX_INITIALIZER;
static struct responder	*responders;
static size_t		 nresponders;
/* [ca] ocsp-signer and ocsp-validity as the last job saw them (for
 * ocsp_issued, which has no config at hand). */
static _Atomic int	 responder_mode = CONFIG_OCSP_SIGNER_RESPONDER;
static _Atomic int64_t	 current_validity = OCSP_VALIDITY_DEFAULT;

/* The generations whose ended responder keys were looked at since the
 * token was opened (responders_retire). Under responders_lock. */
static int64_t		*retired;
static size_t		 nretired;
/* The intents left by an earlier start were resolved since the token
 * was opened (intents_resolve). Under responders_lock. */
static int		 intents_resolved;

static void	responders_free(void);
static int	gen_serves(const struct store_generation *, time_t);

void
ocsp_forget_keys(void)
{
	responders_free();
}

static void
responder_release(struct responder *r)
{
	X509_free(r->cert);
	hsm_key_free(r->key);
}

static void
responders_free(void)
{
	pthread_mutex_lock(&responders_lock);
	for (size_t i = 0; i < nresponders; i++)
		responder_release(&responders[i]);
	free(responders);
	responders = NULL;
	nresponders = 0;
	/* A token opened again is looked at again. */
	free(retired);
	retired = NULL;
	nretired = 0;
	intents_resolved = 0;
	pthread_mutex_unlock(&responders_lock);
}

/* Keep r (its cert and key now the table's) for gen_id, replacing the
 * one before; under responders_lock. */
static int
responder_keep(struct responder *r)
{
	struct responder *v;

	for (size_t i = 0; i < nresponders; i++)
		if (responders[i].gen_id == r->gen_id) {
			/* The old key object may be the same token key: the
			 * table owns one handle per entry. */
			responder_release(&responders[i]);
			responders[i] = *r;
			return 0;
		}
	if ((v = reallocarray(responders, nresponders + 1,
	    sizeof(*v))) == NULL)
		return -1;
	responders = v;
	responders[nresponders++] = *r;
	return 0;
}

/* hsmcad's ca-rotate record about generation gen's responder key. */
static int
key_audit(struct store *w, int64_t gen, enum audit_outcome outcome,
    const char *detail, struct hsmca_err *e)
{
	struct audit_event ev;
	char object[32];

	snprintf(object, sizeof(object), "gen:%lld", (long long)gen);
	memset(&ev, 0, sizeof(ev));
	ev.actor = "hsmcad";
	ev.action = AUDIT_CA_ROTATE;
	ev.object = object;
	ev.outcome = outcome;
	ev.detail = detail;
	return audit_append(w, &ev, e);
}

/* The responder row, and with it, for a key adopted (responder_key),
 * the audit record that says so, written in the transaction that
 * records the certificate (issue_finish_with): the certificate, its
 * row and its audit records commit together or not at all. */
struct responder_record {
	const char	*key_uri;
	int		 adopted;
};

static int
responder_record(struct store *w, const struct store_cert *rec, void *arg,
    struct hsmca_err *e)
{
	const struct responder_record *rr = arg;
	struct store_ocsp_responder row;
	char detail[AUDIT_DETAIL_MAX];
	int ret;

	memset(&row, 0, sizeof(row));
	row.issuer_id = rec->issuer_id;
	memcpy(row.serial, rec->serial, sizeof(row.serial));
	row.key_uri = (char *)(uintptr_t)rr->key_uri;
	row.cert_der = rec->der;
	row.cert_der_len = rec->der_len;
	row.not_after = rec->not_after;
	row.created_at = rec->created_at;
	if ((ret = store_ocsp_responder_add(w, &row, e)) != 0 ||
	    !rr->adopted)
		return ret;
	snprintf(detail, sizeof(detail), "OCSP responder key %s adopted: "
	    "generated for the generation before hsmcad stopped and not "
	    "recorded then, now recorded with responder certificate %s",
	    row.key_uri, row.serial);
	return key_audit(w, row.issuer_id, AUDIT_OK, detail, e);
}

/* A new responder certificate for the generation of iss, for key (made
 * now, adopted, or the generation's responder key already in the
 * token): issued like every certificate (lint, serial reserved, HSM
 * signature, verify), and recorded in one transaction with its audit
 * entry and its ocsp_responder row, which closes the key's intent. A
 * stop or a store failure before that commit leaves no certificate
 * recorded (the serial ends failed): none is ever valid that no
 * responder row names. *out: the certificate. */
static int
responder_issue(struct hsm *h, struct store *st, struct issuer *iss,
    struct hsm_key *key, int adopted, time_t now, X509 **out,
    struct hsmca_err *e)
{
	struct responder_record rr;
	struct issue_result res;
	struct profile prof;
	EVP_PKEY *pub;		/* borrowed from key */
	X509 *tbs = NULL;
	int ret;

	*out = NULL;
	memset(&res, 0, sizeof(res));
	if ((pub = hsm_key_public(key)) == NULL) {
		ret = err_set(e, HSMCA_ERR_HSM, "the responder key's public "
		    "half");
		goto out;
	}
	ocsp_responder_profile(&prof);
	rr.key_uri = hsm_key_uri(key);
	rr.adopted = adopted;
	if ((ret = ocsp_responder_tbs(iss->cert, pub, NULL, now, 0, &tbs,
	    e)) != 0 ||
	    (ret = issue_finish_with(h, st, iss, tbs, &prof, "hsmcad", NULL,
	    now, responder_record, &rr, &res, e)) != 0)
		goto out;
	*out = res.cert;
	res.cert = NULL;
	ret = 0;
out:
	X509_free(tbs);
	issue_result_free(&res);
	return ret;
}

/* The key of the first responder of iss's generation, in *out. A key an
 * earlier start generated and did not record (its intent still open,
 * the key in the token under its URI) is adopted (*adopted 1);
 * otherwise a new one of type kt is made (*adopted 0), its intent
 * committed before C_GenerateKeyPair, so a stop at any point leaves
 * nothing the store does not account for (intents_resolve). */
static int
responder_key(struct hsm *h, struct store *st, const struct issuer *iss,
    enum key_type kt, time_t now, struct hsm_key **out, int *adopted,
    struct hsmca_err *e)
{
	struct store_ocsp_key_intent *v = NULL;
	char label[64], why[HSMCA_ERRMSG_MAX], *uri = NULL;
	size_t n = 0;
	int named, ret;

	*out = NULL;
	*adopted = 0;
	if ((ret = store_ocsp_key_intents(st, &v, &n, e)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (v[i].issuer_id != iss->gen_id)
			continue;
		if ((ret = store_key_uri_named(st, v[i].key_uri, &named,
		    e)) != 0)
			goto out;
		if (!named && (ret = hsm_load_key(h, v[i].key_uri, out,
		    e)) == 0) {
			log_info("OCSP: responder key %s of CA generation %lld, "
			    "made before hsmcad stopped and never recorded, is "
			    "adopted", v[i].key_uri, (long long)iss->gen_id);
			*adopted = 1;
			goto out;
		}
		if (!named && ret != HSMCA_ERR_KEY_NOT_FOUND) {
			snprintf(why, sizeof(why), "%s", e->msg);
			ret = err_set(e, ret, "OCSP responder key %s, made for "
			    "CA generation %lld and never recorded, can be "
			    "neither adopted nor found gone: %s", v[i].key_uri,
			    (long long)iss->gen_id, why);
			goto out;
		}
		/* Never made, or the store names it already: nothing to
		 * adopt, and the intent is done. */
		err_clear(e);
		if ((ret = store_ocsp_key_intent_close(st, v[i].key_uri,
		    e)) != 0)
			goto out;
	}
	snprintf(label, sizeof(label), "ocsp-gen%lld", (long long)iss->gen_id);
	if ((ret = hsm_key_uri_new(h, label, &uri, e)) != 0 ||
	    (ret = store_ocsp_key_intent_add(st, iss->gen_id, uri, now,
	    e)) != 0)
		goto out;
	/* A failure leaves the intent: the next job finds no key under
	 * it and closes it. */
	ret = hsm_generate_key_at(h, kt, uri, out, e);
out:
	free(uri);
	store_ocsp_key_intents_free(v, n);
	return ret;
}

/* The responder of iss's generation, in r (borrowed from the table,
 * valid while responders_lock is held): from memory, else from the
 * store, else made now; renewed when less than
 * OCSP_RESPONDER_RENEW_BEFORE is left and a new one would last longer.
 * create 0: memory only (HSMCA_ERR_NOT_FOUND). Under responders_lock. */
static int
responder_get(struct hsm *h, struct store *st, struct issuer *iss,
    const char *key_type, time_t now, int create, struct responder **r,
    struct hsmca_err *e)
{
	struct store_ocsp_responder row;
	struct responder fresh;
	struct hsm_key *key = NULL;
	enum key_type kt;
	const unsigned char *p;
	time_t ina = issue_asn1_time(X509_get0_notAfter(iss->cert));
	size_t i;
	int made = 0, adopted = 0, ret;

	*r = NULL;
	memset(&row, 0, sizeof(row));
	memset(&fresh, 0, sizeof(fresh));
	for (i = 0; i < nresponders && responders[i].gen_id != iss->gen_id; i++)
		;
	if (i < nresponders && (responders[i].not_after - now >
	    OCSP_RESPONDER_RENEW_BEFORE || responders[i].not_after >= ina ||
	    !create) && responders[i].not_after > now) {
		*r = &responders[i];
		return 0;
	}
	if (!create)
		return err_set(e, HSMCA_ERR_NOT_FOUND, "no OCSP responder in "
		    "memory for CA generation %lld", (long long)iss->gen_id);

	fresh.gen_id = iss->gen_id;
	ret = store_ocsp_responder_latest(st, iss->gen_id, &row, e);
	if (ret != 0 && ret != HSMCA_ERR_NOT_FOUND)
		goto out;
	if (ret == 0) {
		if ((ret = hsm_load_key(h, row.key_uri, &key, e)) != 0)
			goto out;
		p = row.cert_der;
		if ((fresh.cert = d2i_X509(NULL, &p,
		    (long)row.cert_der_len)) == NULL) {
			ret = err_set_ssl(e, HSMCA_ERR_STORE, "the recorded OCSP "
			    "responder of CA generation %lld does not parse",
			    (long long)iss->gen_id);
			goto out;
		}
		fresh.not_after = row.not_after;
	} else {
		/* The first one: a key of the generation's type. */
		if (key_type == NULL || keytype_parse(key_type, &kt) != 0)
			kt = KEY_EC_P256;
		if ((ret = responder_key(h, st, iss, kt, now, &key, &adopted,
		    e)) != 0)
			goto out;
		/* An adopted key is kept if what follows fails: the next
		 * job adopts it again. */
		made = !adopted;
	}
	if (fresh.cert == NULL || (fresh.not_after - now <=
	    OCSP_RESPONDER_RENEW_BEFORE && fresh.not_after < ina) ||
	    fresh.not_after <= now) {
		X509_free(fresh.cert);
		fresh.cert = NULL;
		if ((ret = responder_issue(h, st, iss, key, adopted, now,
		    &fresh.cert, e)) != 0)
			goto out;
		fresh.not_after = issue_asn1_time(X509_get0_notAfter(
		    fresh.cert));
		log_info("OCSP: responder certificate for CA generation %lld "
		    "issued, valid until %lld", (long long)iss->gen_id,
		    (long long)fresh.not_after);
		made = 0;	/* recorded: the key is kept */
	}
	fresh.key = key;
	key = NULL;
	if (responder_keep(&fresh) != 0) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		key = fresh.key;
		goto out;
	}
	memset(&fresh, 0, sizeof(fresh));
	for (i = 0; responders[i].gen_id != iss->gen_id; i++)
		;
	*r = &responders[i];
	ret = 0;
out:
	if (key != NULL && made) {
		struct hsmca_err e2;

		/* Undo a key never used, and close its intent; a key the
		 * token keeps keeps its intent, and is adopted later. */
		err_clear(&e2);
		if (hsm_destroy_key(h, key, &e2) != 0)
			log_errorx("OCSP: responder key %s of CA generation "
			    "%lld, never used, stays in the token: %s",
			    hsm_key_uri(key), (long long)iss->gen_id, e2.msg);
		else if (store_ocsp_key_intent_close(st, hsm_key_uri(key),
		    &e2) != 0)
			log_warnx("OCSP: %s", e2.msg);
	}
	hsm_key_free(key);
	X509_free(fresh.cert);
	store_ocsp_responder_free_fields(&row);
	return ret;
}

/*
 * Responder keys past their end. A responder key signs only under a
 * responder certificate valid at the time (responder_get; signer_check
 * in lib/ocsp.c), every such certificate ends with its generation at
 * the latest, and none can be issued once the generation has ended
 * (ocsp_responder_tbs). Every response it signed has its nextUpdate at
 * or before its certificate's end (sign_status), and is served, and
 * cached downstream (Expires, max-age), only before its nextUpdate
 * (ocsp_answer). So once the generation and every certificate of the
 * key have ended, nothing signs with the key again and nothing it
 * signed is served: it is destroyed, OCSP_RETIRE_AFTER later for a
 * clock that steps back. Renewal keeps the key (responder_get), so a
 * key ends with its generation, never sooner.
 *
 * Never a CA key: the store lists only a key that no generation names
 * (store_ocsp_responder_keys_ended), and a key whose public half is
 * that of a generation's certificate or request is kept whatever its
 * name.
 */
#define OCSP_RETIRE_AFTER	OCSP_VALIDITY_MAX

/* Is k the key of one of the generations? 1 and which, or 0. What
 * cannot be compared counts as the same: it is kept. */
static int
retire_is_ca_key(const struct hsm_key *k, const struct store_generation *gens,
    size_t ngens, int64_t *gen_id)
{
	EVP_PKEY *pub = hsm_key_public(k);
	const unsigned char *p;
	X509_REQ *req;
	X509 *x;
	int eq;

	for (size_t i = 0; i < ngens; i++) {
		eq = -1;	/* key types differ: not the same */
		if ((p = gens[i].cert_der) != NULL) {
			if ((x = d2i_X509(NULL, &p,
			    (long)gens[i].cert_der_len)) == NULL)
				eq = 1;
			else
				eq = EVP_PKEY_eq(X509_get0_pubkey(x), pub);
			X509_free(x);
		} else if ((p = gens[i].csr_der) != NULL) {
			if ((req = d2i_X509_REQ(NULL, &p,
			    (long)gens[i].csr_der_len)) == NULL)
				eq = 1;
			else
				eq = EVP_PKEY_eq(X509_REQ_get0_pubkey(req),
				    pub);
			X509_REQ_free(req);
		}
		ERR_clear_error();
		if (eq == 1 || eq == -2) {
			*gen_id = gens[i].id;
			return 1;
		}
	}
	return 0;
}

/* The audit trail of a responder key's destruction: the intent first,
 * committed before C_DestroyObject, then the outcome. A destruction
 * whose outcome could not be written is completed once the key is found
 * gone (retire_pending), so the trail never misses one, and a key the
 * token kept is never recorded as destroyed. */
enum retire_step {
	RETIRE_BEGIN,		/* about to destroy */
	RETIRE_DESTROYED,	/* destroyed, and loading it finds nothing */
	RETIRE_KEPT,		/* the token refused, or kept it */
	RETIRE_FOUND_GONE,	/* begun earlier, outcome unrecorded, gone */
};

/* What follows the key's URI in each record's detail. */
#define RETIRE_BEGIN_S	": its destruction in the token begins"
#define RETIRE_GONE_S	" destroyed in the token"
#define RETIRE_KEPT_S	" kept in the token"

struct retire_audit {
	const struct store_generation	*g;
	const char			*uri;
	enum retire_step		 step;
	const char			*why;		/* RETIRE_KEPT */
	int64_t				 begun;		/* RETIRE_FOUND_GONE */
	int				 unrecorded;	/* RETIRE_UNRECORDED */
};

/* Why a key is destroyed (retire_key). */
#define RETIRE_ENDED		0	/* its generation ended */
#define RETIRE_UNRECORDED	1	/* made, never recorded, not needed */

static int
retire_audit(struct store *w, void *arg, struct hsmca_err *e)
{
	const struct retire_audit *ra = arg;
	enum audit_outcome outcome = AUDIT_OK;
	char detail[AUDIT_DETAIL_MAX], t[32];

	clock_format(ra->g->not_after, t, sizeof(t));
	switch (ra->step) {
	case RETIRE_BEGIN:
	case RETIRE_DESTROYED:
		if (ra->unrecorded)
			snprintf(detail, sizeof(detail), "OCSP responder key "
			    "%s%s: generated before hsmcad stopped and never "
			    "recorded, it signed nothing, and no responder of "
			    "the generation is to use it", ra->uri,
			    ra->step == RETIRE_BEGIN ? RETIRE_BEGIN_S :
			    RETIRE_GONE_S);
		else
			snprintf(detail, sizeof(detail), "OCSP responder key "
			    "%s%s: the generation ended at %s, and with it "
			    "every responder certificate of the key and every "
			    "response it signed", ra->uri, ra->step ==
			    RETIRE_BEGIN ? RETIRE_BEGIN_S : RETIRE_GONE_S, t);
		break;
	case RETIRE_KEPT:
		outcome = AUDIT_FAILED;
		snprintf(detail, sizeof(detail), "OCSP responder key %s"
		    RETIRE_KEPT_S ", its destruction failed: %s", ra->uri,
		    ra->why);
		break;
	case RETIRE_FOUND_GONE:
		snprintf(detail, sizeof(detail), "OCSP responder key %s"
		    RETIRE_GONE_S ": found gone after its destruction began "
		    "(audit record %lld), whose outcome was not recorded",
		    ra->uri, (long long)ra->begun);
		break;
	}
	return key_audit(w, ra->g->id, outcome, detail, e);
}

/* Write ra's record; 0 or the error, logged. */
static int
retire_record(struct store *st, struct retire_audit *ra)
{
	struct hsmca_err e;
	int ret;

	err_clear(&e);
	if ((ret = store_write_with(st, retire_audit, ra, &e)) != 0)
		log_warnx("OCSP: the audit record of the %s of responder key "
		    "%s (CA generation %lld) not written: %s",
		    ra->step == RETIRE_BEGIN ? "destruction about to begin" :
		    "destruction", ra->uri, (long long)ra->g->id, e.msg);
	return ret;
}

/* The last begun destruction of uri whose outcome is not recorded. */
struct retire_scan {
	const char	*uri;
	const char	*object;
	int64_t		 begun;
};

static int
retire_scan_one(void *arg, const struct store_audit *r)
{
	struct retire_scan *rs = arg;
	static const char pfx[] = "OCSP responder key ";
	size_t n = strlen(rs->uri);
	const char *d = r->detail;

	if (d == NULL || r->actor == NULL || strcmp(r->actor, "hsmcad") != 0 ||
	    r->object == NULL || strcmp(r->object, rs->object) != 0 ||
	    strncmp(d, pfx, sizeof(pfx) - 1) != 0 ||
	    strncmp(d + sizeof(pfx) - 1, rs->uri, n) != 0)
		return 0;
	d += sizeof(pfx) - 1 + n;
	if (strncmp(d, RETIRE_BEGIN_S, sizeof(RETIRE_BEGIN_S) - 1) == 0)
		rs->begun = r->id;
	else if (strncmp(d, RETIRE_GONE_S, sizeof(RETIRE_GONE_S) - 1) == 0 ||
	    strncmp(d, RETIRE_KEPT_S, sizeof(RETIRE_KEPT_S) - 1) == 0)
		rs->begun = 0;
	return 0;
}

/* uri is not in the token: if a destruction of it began and no outcome
 * was recorded, record it now. */
static void
retire_pending(struct store *st, const struct store_generation *g,
    const char *uri)
{
	struct store_audit_filter f;
	struct retire_scan rs;
	struct retire_audit ra;
	struct hsmca_err e;
	char object[32];

	snprintf(object, sizeof(object), "gen:%lld", (long long)g->id);
	memset(&f, 0, sizeof(f));
	f.action = audit_action_name(AUDIT_CA_ROTATE);
	memset(&rs, 0, sizeof(rs));
	rs.uri = uri;
	rs.object = object;
	err_clear(&e);
	if (store_audit_walk(st, &f, retire_scan_one, &rs, NULL, &e) != 0) {
		log_warnx("OCSP: cannot read the audit trail of responder key "
		    "%s: %s", uri, e.msg);
		return;
	}
	if (rs.begun == 0)
		return;
	memset(&ra, 0, sizeof(ra));
	ra.g = g;
	ra.uri = uri;
	ra.step = RETIRE_FOUND_GONE;
	ra.begun = rs.begun;
	if (retire_record(st, &ra) == 0)
		log_info("OCSP: responder key %s of CA generation %lld is gone "
		    "from the token: the outcome of its destruction (audit "
		    "record %lld) is recorded", uri, (long long)g->id,
		    (long long)rs.begun);
}

/* What retire_key did. */
#define RETIRE_DONE	0	/* destroyed */
#define RETIRE_ABSENT	1	/* not in the token */
#define RETIRE_KEEP	2	/* kept: a CA key, or the token kept it */

/* Destroy uri, a responder key of g that nothing needs any more (why:
 * RETIRE_ENDED or RETIRE_UNRECORDED), unless it is a CA key. Under
 * responders_lock. */
static int
retire_key(struct hsm *h, struct store *st,
    const struct store_generation *gens, size_t ngens,
    const struct store_generation *g, const char *uri, int why)
{
	struct retire_audit ra;
	struct hsm_key *k = NULL;
	struct hsmca_err e;
	int64_t ca = 0;
	int begun = 0, outcome = RETIRE_KEEP, ret;

	memset(&ra, 0, sizeof(ra));
	ra.g = g;
	ra.uri = uri;
	ra.unrecorded = why == RETIRE_UNRECORDED;
	err_clear(&e);
	/* Not found: gone already. Several keys under the URI
	 * (HSMCA_ERR_KEY_AMBIGUOUS), or a private key without its public
	 * key (HSMCA_ERR_HSM), are not gone: logged and kept. */
	if ((ret = hsm_load_key(h, uri, &k, &e)) == HSMCA_ERR_KEY_NOT_FOUND) {
		retire_pending(st, g, uri);
		return RETIRE_ABSENT;
	}
	if (ret != 0)
		goto fail;
	if (hsm_key_public(k) == NULL) {
		snprintf(e.msg, sizeof(e.msg), "its public half is unreadable");
		goto fail;
	}
	if (retire_is_ca_key(k, gens, ngens, &ca)) {
		log_warnx("OCSP: responder key %s of CA generation %lld may "
		    "be the key of CA generation %lld: kept", uri,
		    (long long)g->id, (long long)ca);
		goto out;
	}
	/* Nothing is destroyed that the audit trail does not announce. */
	ra.step = RETIRE_BEGIN;
	if (retire_record(st, &ra) != 0) {
		snprintf(e.msg, sizeof(e.msg), "its destruction could not be "
		    "recorded first");
		goto fail;
	}
	begun = 1;
	/* The table's handle on it goes first. */
	for (size_t i = 0; i < nresponders; i++)
		if (responders[i].gen_id == g->id &&
		    strcmp(hsm_key_uri(responders[i].key), uri) == 0) {
			responder_release(&responders[i]);
			responders[i] = responders[--nresponders];
			break;
		}
	if (hsm_destroy_key(h, k, &e) != 0)
		goto fail;
	hsm_key_free(k);
	k = NULL;
	err_clear(&e);
	if ((ret = hsm_load_key(h, uri, &k, &e)) != HSMCA_ERR_KEY_NOT_FOUND) {
		if (ret == 0)
			snprintf(e.msg, sizeof(e.msg), "still in the token");
		goto fail;
	}
	log_info("OCSP: responder key %s of CA generation %lld destroyed: "
	    "%s", uri, (long long)g->id, why == RETIRE_UNRECORDED ?
	    "made before hsmcad stopped and never recorded, it signed "
	    "nothing" : "the generation ended, nothing it signed is served");
	/* Not written: retire_pending() writes it once the key is found
	 * gone, at the next start. */
	ra.step = RETIRE_DESTROYED;
	(void)retire_record(st, &ra);
	outcome = RETIRE_DONE;
	goto out;
fail:
	log_warnx("OCSP: responder key %s of CA generation %lld not "
	    "destroyed (looked at again after a restart or an HSM fault): %s",
	    uri, (long long)g->id, e.msg);
	if (begun) {
		ra.step = RETIRE_KEPT;
		ra.why = e.msg;
		(void)retire_record(st, &ra);
	}
out:
	hsm_key_free(k);
	return outcome;
}

/* Retire the responder keys of the generations that ended: once each
 * generation the store lists keys for (a key that could not be
 * destroyed stays until a restart or an HSM fault: the safe way). */
static void
responders_retire(struct hsm *h, struct store *st,
    const struct store_generation *gens, size_t ngens, time_t now)
{
	struct hsmca_err e;
	time_t before = now - OCSP_RETIRE_AFTER;
	char **uris;
	size_t n, j;
	int64_t *v;

	pthread_mutex_lock(&responders_lock);
	for (size_t i = 0; i < ngens; i++) {
		if (gens[i].cert_der == NULL || gens[i].not_after >= before)
			continue;
		for (j = 0; j < nretired && retired[j] != gens[i].id; j++)
			;
		if (j < nretired)
			continue;
		err_clear(&e);
		if (store_ocsp_responder_keys_ended(st, gens[i].id, before,
		    &uris, &n, &e) != 0) {
			log_warnx("OCSP: %s", e.msg);
			continue;	/* the store: at the next job */
		}
		/* None (yet): asked again at the next job, a query of
		 * the few responder rows. */
		if (n == 0)
			continue;
		for (j = 0; j < n; j++)
			(void)retire_key(h, st, gens, ngens, &gens[i], uris[j],
			    RETIRE_ENDED);
		store_key_uris_free(uris, n);
		if ((v = reallocarray(retired, nretired + 1,
		    sizeof(*v))) != NULL) {
			retired = v;
			retired[nretired++] = gens[i].id;
		}
	}
	pthread_mutex_unlock(&responders_lock);
}

/*
 * Responder keys being made when hsmcad stopped. An intent still open
 * (responder_key) names a key that may be in the token and that no
 * store row accounts for. Once per token opened, each is resolved: a
 * key the store names by now (a generation's, or a recorded
 * responder's) is not the intent's to undo; the key of a generation
 * that serves and has no responder yet, with ocsp-signer = responder,
 * is left to responder_key, which adopts it (the same job, next);
 * any other, which signed nothing, is destroyed as retire_key destroys
 * an ended one, audited before and after, never a CA key. The intent
 * is closed once its key is accounted for, destroyed or found never
 * made; a key kept keeps it, for the next start.
 */
static void
intents_resolve(struct hsm *h, struct store *st,
    const struct store_generation *gens, size_t ngens, int mode, time_t now)
{
	struct store_ocsp_key_intent *v = NULL;
	struct store_ocsp_responder row;
	const struct store_generation *g;
	struct hsmca_err e;
	size_t n = 0, j;
	int named, ret;

	pthread_mutex_lock(&responders_lock);
	if (intents_resolved)
		goto out;
	err_clear(&e);
	if (store_ocsp_key_intents(st, &v, &n, &e) != 0) {
		log_warnx("OCSP: %s", e.msg);
		goto out;	/* the store: at the next job */
	}
	for (size_t i = 0; i < n; i++) {
		for (j = 0; j < ngens && gens[j].id != v[i].issuer_id; j++)
			;
		if (j == ngens)
			continue;	/* the store references one */
		g = &gens[j];
		err_clear(&e);
		if (store_key_uri_named(st, v[i].key_uri, &named, &e) != 0) {
			log_warnx("OCSP: %s", e.msg);
			continue;
		}
		if (!named && mode == CONFIG_OCSP_SIGNER_RESPONDER &&
		    gen_serves(g, now)) {
			ret = store_ocsp_responder_latest(st, g->id, &row, &e);
			store_ocsp_responder_free_fields(&row);
			if (ret == HSMCA_ERR_NOT_FOUND)
				continue;	/* responder_key adopts it */
			if (ret != 0) {
				log_warnx("OCSP: %s", e.msg);
				continue;
			}
		}
		if (!named) {
			ret = retire_key(h, st, gens, ngens, g, v[i].key_uri,
			    RETIRE_UNRECORDED);
			if (ret == RETIRE_KEEP)
				continue;	/* logged */
			if (ret == RETIRE_ABSENT)
				log_info("OCSP: responder key %s of CA "
				    "generation %lld, about to be made when "
				    "hsmcad stopped, is not in the token",
				    v[i].key_uri, (long long)g->id);
		}
		err_clear(&e);
		if (store_ocsp_key_intent_close(st, v[i].key_uri, &e) != 0)
			log_warnx("OCSP: %s", e.msg);
	}
	intents_resolved = 1;
out:
	pthread_mutex_unlock(&responders_lock);
	store_ocsp_key_intents_free(v, n);
}

/* ---- on a signer worker ---- */

/* Who signs for iss: its responder, or its own key. Under
 * responders_lock when a responder is used (the caller holds it for as
 * long as sg is in use). */
static void
signer_of(struct hsm *h, const struct issuer *iss,
    const struct responder *r, struct ocsp_signer *sg)
{
	memset(sg, 0, sizeof(*sg));
	sg->issuer = iss->cert;
	sg->h = h;
	if (r != NULL) {
		sg->responder_cert = r->cert;
		sg->key = hsm_key_private(r->key);
		sg->md = keytype_digest_for(sg->key);
	} else {
		sg->responder_cert = NULL;
		sg->key = hsm_key_private(iss->key);
		sg->md = iss->md;
	}
}

/* Set sg up for iss under mode; the lock is taken when a responder
 * signs (*locked 1: release it once done). A responder that cannot be
 * had leaves the CA key signing, with a warning. */
static void
signer_setup(struct hsm *h, struct store *st, struct issuer *iss,
    const char *key_type, int mode, int create, struct ocsp_signer *sg,
    int *locked)
{
	struct responder *r = NULL;
	struct hsmca_err e;

	*locked = 0;
	if (mode == CONFIG_OCSP_SIGNER_RESPONDER) {
		pthread_mutex_lock(&responders_lock);
		err_clear(&e);
		if (responder_get(h, st, iss, key_type, clock_now(), create, &r,
		    &e) == 0)
			*locked = 1;
		else {
			pthread_mutex_unlock(&responders_lock);
			if (create)
				log_warnx("OCSP: generation %lld: no responder "
				    "certificate, its CA key signs: %s",
				    (long long)iss->gen_id, e.msg);
			r = NULL;
		}
	}
	signer_of(h, iss, r, sg);
}

static void
signer_release(int locked)
{
	if (locked)
		pthread_mutex_unlock(&responders_lock);
}

/* The cache the workers fill; with privilege separation the front
 * serves from a copy of it, kept up to date through the mirror. */
static struct ocsp_mirror mirror;

void
ocsp_set_mirror(const struct ocsp_mirror *m)
{
	mirror = *m;
}

void
ocsp_configure(const struct config *cfg)
{
	responder_mode = cfg->ca.ocsp_signer;
	current_validity = cfg->ca.ocsp_validity > 0 ? cfg->ca.ocsp_validity :
	    OCSP_VALIDITY_DEFAULT;
}

static int
cache_add_issuer(struct ocsp_cache *c, int64_t gen_id, X509 *issuer,
    struct hsmca_err *e)
{
	int ret;

	if ((ret = ocsp_cache_add_issuer(c, gen_id, issuer, e)) == 0 &&
	    mirror.issuer != NULL)
		mirror.issuer(gen_id, issuer, mirror.arg);
	return ret;
}

static int
cache_put(struct ocsp_cache *c, const unsigned char *der, size_t len,
    struct hsmca_err *e)
{
	int ret;

	if ((ret = ocsp_cache_put(c, der, len, e)) == 0 && mirror.put != NULL)
		mirror.put(der, len, mirror.arg);
	return ret;
}

static size_t
cache_expire(struct ocsp_cache *c, time_t now)
{
	if (mirror.expire != NULL)
		mirror.expire(now, mirror.arg);
	return ocsp_cache_expire_unknowns(c, now);
}

static int
sign_put(const struct ocsp_signer *sg, struct ocsp_cache *c,
    const struct store_cert *rec, const EVP_MD *id_md, time_t now,
    int64_t validity, unsigned char **keep, size_t *keep_len,
    struct hsmca_err *e)
{
	unsigned char *der = NULL;
	size_t len = 0;
	int ret;

	ret = ocsp_presign(sg, rec, id_md, now, validity, &der, &len, e);
	if (ret == 0)
		ret = cache_put(c, der, len, e);
	if (ret == 0 && keep != NULL) {
		*keep = der;
		*keep_len = len;
		der = NULL;
	}
	OPENSSL_free(der);
	return ret;
}

/* A generation answers for its certificates until its own end, revoked
 * or not: none of them outlives it. */
static int
gen_serves(const struct store_generation *g, time_t now)
{
	enum store_gen_status st = ca_effective_status(g, now);

	return g->kind == STORE_GEN_ISSUING && g->cert_der != NULL &&
	    g->not_after >= now && (st == STORE_GEN_ACTIVE ||
	    st == STORE_GEN_INACTIVE || st == STORE_GEN_REVOKED);
}

/* One SIGNER_OCSP job: the generations that answer, their signers, and
 * what is left of its budget. */
struct presign {
	struct hsm		*h;
	struct ocsp_cache	*c;
	struct store_generation	*gens;
	size_t			 ngens;
	struct issuer		**iss;		/* per gens[i]; NULL: not served */
	struct ocsp_signer	*sg;
	int			*locked;
	time_t			 now;
	int64_t			 validity;
	size_t			 budget, signed_n;
};

#define PRESIGN_STOP	1	/* the budget is spent: stop the walk */

/* A certificate of the walk or the change log: sign what the cache
 * lacks or has wrong or due. */
static int
presign_one(void *arg, const struct store_cert_state *cs)
{
	struct presign *p = arg;
	struct store_cert rec;
	struct hsmca_err e;
	size_t g;
	int need, status;

	if (cs->status != STORE_CERT_VALID && cs->status != STORE_CERT_REVOKED)
		return 0;
	if (cs->not_after < p->now)
		return 0;	/* expired: RFC 6960 lets it lapse */
	for (g = 0; g < p->ngens && p->gens[g].id != cs->issuer_id; g++)
		;
	if (g == p->ngens || p->iss[g] == NULL)
		return 0;
	status = cs->status == STORE_CERT_VALID ? V_OCSP_CERTSTATUS_GOOD :
	    V_OCSP_CERTSTATUS_REVOKED;
	need = ocsp_cache_needs(p->c, cs->issuer_id, cs->serial, status,
	    cs->revoke_reason, cs->revoked_at, p->now + p->validity / 2);
	if (need == 0)
		return 0;
	if (p->budget == 0)
		return PRESIGN_STOP;
	memset(&rec, 0, sizeof(rec));
	rec.id = cs->id;
	rec.issuer_id = cs->issuer_id;
	memcpy(rec.serial, cs->serial, sizeof(rec.serial));
	rec.status = cs->status;
	rec.revoked_at = cs->revoked_at;
	rec.revoke_reason = cs->revoke_reason;
	for (int i = 0; i < 2; i++) {
		if ((need & (i == 0 ? OCSP_NEED_SHA1 : OCSP_NEED_SHA256)) == 0)
			continue;
		p->budget = p->budget > 0 ? p->budget - 1 : 0;
		err_clear(&e);
		if (sign_put(&p->sg[g], p->c, &rec, i == 0 ? NULL :
		    EVP_sha256(), p->now, p->validity, NULL, NULL, &e) != 0)
			log_warnx("OCSP: serial %s: %s", cs->serial, e.msg);
		else
			p->signed_n++;
	}
	return 0;
}

/* The changes, then the next stretch of the walk, from job's cursors
 * (moved on); job->more: the budget ran out first. */
static int
presign_steps(struct store *st, struct signer_job *job, struct presign *p,
    struct hsmca_err *e)
{
	int64_t last;
	size_t n = 0;
	int ret;

	ret = store_ocsp_changes(st, job->cursor[0], OCSP_CHANGES_ROWS,
	    presign_one, p, &last, &n, e);
	if (ret != 0 && ret != PRESIGN_STOP)
		return ret;
	job->cursor[0] = last;
	job->more = ret == PRESIGN_STOP || n == OCSP_CHANGES_ROWS;
	if (job->more)
		return 0;
	ret = store_ocsp_walk(st, job->cursor[1], OCSP_WALK_ROWS,
	    presign_one, p, &last, &n, e);
	if (ret != 0 && ret != PRESIGN_STOP)
		return ret;
	job->cursor[1] = last;
	job->more = ret == PRESIGN_STOP;
	if (ret == 0 && n < OCSP_WALK_ROWS) {
		job->cursor[1] = 0;	/* around again next time */
		job->swept = 1;
	}
	return 0;
}

/* SIGNER_OCSP: register every generation that answers (making its
 * responder if it has none), then presign_steps. */
static void
ocsp_job_presign(struct hsm *h, struct store *st, struct ocsp_cache *c,
    struct signer_job *job)
{
	const struct config_ca *ca = &job->rt->cfg->ca;
	struct presign p;
	struct hsmca_err e;
	int ret;

	memset(&p, 0, sizeof(p));
	err_clear(&e);
	p.h = h;
	p.c = c;
	p.now = clock_now();
	p.validity = ca->ocsp_validity > 0 ? ca->ocsp_validity :
	    OCSP_VALIDITY_DEFAULT;
	p.budget = OCSP_BATCH;
	responder_mode = ca->ocsp_signer;
	current_validity = p.validity;
	if (store_list_generations(st, &p.gens, &p.ngens, &e) != 0 ||
	    (p.ngens > 0 && ((p.iss = calloc(p.ngens,
	    sizeof(*p.iss))) == NULL || (p.sg = calloc(p.ngens,
	    sizeof(*p.sg))) == NULL || (p.locked = calloc(p.ngens,
	    sizeof(*p.locked))) == NULL))) {
		if (e.msg[0] == '\0')
			snprintf(e.msg, sizeof(e.msg), "out of memory");
		goto fail;
	}
	responders_retire(h, st, p.gens, p.ngens, p.now);
	intents_resolve(h, st, p.gens, p.ngens, ca->ocsp_signer, p.now);
	for (size_t i = 0; i < p.ngens; i++) {
		if (!gen_serves(&p.gens[i], p.now))
			continue;
		if (issuer_open(h, st, &p.gens[i], ca, &p.iss[i], &e) != 0 ||
		    cache_add_issuer(c, p.gens[i].id, p.iss[i]->cert,
		    &e) != 0) {
			log_warnx("OCSP: generation %lld: %s",
			    (long long)p.gens[i].id, e.msg);
			issuer_free(p.iss[i]);
			p.iss[i] = NULL;
			continue;
		}
		/* Only one generation's responder lock at a time: make or
		 * renew it now, take it again below per signature. */
		signer_setup(h, st, p.iss[i], p.gens[i].key_type,
		    ca->ocsp_signer, 1, &p.sg[i], &p.locked[i]);
		signer_release(p.locked[i]);
		p.locked[i] = 0;
	}
	/* The responders are in memory now; hold the table while signing
	 * (renewal by another worker waits for this job). */
	if (ca->ocsp_signer == CONFIG_OCSP_SIGNER_RESPONDER)
		pthread_mutex_lock(&responders_lock);
	for (size_t i = 0; i < p.ngens; i++) {
		struct responder *r = NULL;

		if (p.iss[i] == NULL)
			continue;
		if (ca->ocsp_signer == CONFIG_OCSP_SIGNER_RESPONDER &&
		    responder_get(h, st, p.iss[i], NULL, p.now, 0, &r,
		    &e) != 0)
			r = NULL;
		signer_of(h, p.iss[i], r, &p.sg[i]);
	}

	ret = presign_steps(st, job, &p, &e);
	signer_release(ca->ocsp_signer == CONFIG_OCSP_SIGNER_RESPONDER);
	if (ret != 0)
		goto fail;
	/* What was read of the change log is not needed again. */
	if (job->cursor[0] > 0 &&
	    store_ocsp_changes_forget(st, job->cursor[0], &e) != 0)
		log_warnx("OCSP: %s", e.msg);
	cache_expire(c, p.now);
	job->crl_number = (int64_t)p.signed_n;
	job->status = 200;
	goto out;
fail:
	job->status = 500;
	snprintf(job->reason, sizeof(job->reason), "%s", e.msg);
out:
	for (size_t i = 0; p.iss != NULL && i < p.ngens; i++)
		issuer_free(p.iss[i]);
	free(p.iss);
	free(p.sg);
	free(p.locked);
	store_generations_free(p.gens, p.ngens);
}

/* SIGNER_OCSP_UNKNOWN: the response to a miss for (gen_id, serial):
 * the certificate's status if the store knows it (a SHA-256 CertID, a
 * certificate issued a moment ago), unknown otherwise. */
static void
ocsp_job_miss(struct hsm *h, struct store *st, struct ocsp_cache *c,
    struct signer_job *job)
{
	const struct config_ca *ca = &job->rt->cfg->ca;
	struct store_generation g;
	struct store_cert rec;
	struct issuer *iss = NULL;
	struct ocsp_signer sg;
	struct hsmca_err e;
	const EVP_MD *id_md = job->id_nid == NID_sha256 ? EVP_sha256() : NULL;
	unsigned char *der = NULL;
	size_t len = 0;
	time_t now = clock_now();
	int64_t validity = ca->ocsp_validity > 0 ? ca->ocsp_validity :
	    OCSP_VALIDITY_DEFAULT;
	int ret, locked = 0;

	memset(&g, 0, sizeof(g));
	memset(&rec, 0, sizeof(rec));
	err_clear(&e);
	if (store_get_generation(st, job->gen_id, &g, &e) != 0)
		goto fail;
	/* Ended since the front looked (gen_ended): nothing to sign with
	 * (and no responder to make), as after a restart. */
	if (!gen_serves(&g, now)) {
		job->status = 404;
		snprintf(job->reason, sizeof(job->reason), "CA generation "
		    "%lld has ended", (long long)g.id);
		goto out;
	}
	if (issuer_open(h, st, &g, ca, &iss, &e) != 0 ||
	    cache_add_issuer(c, g.id, iss->cert, &e) != 0)
		goto fail;
	signer_setup(h, st, iss, g.key_type, ca->ocsp_signer, 1, &sg,
	    &locked);
	ret = store_get_cert(st, job->gen_id, job->serial, &rec, &e);
	if (ret == 0 && (rec.status == STORE_CERT_VALID ||
	    rec.status == STORE_CERT_REVOKED)) {
		if (sign_put(&sg, c, &rec, id_md, now, validity, &der, &len,
		    &e) != 0)
			goto fail;
	} else if (ret == 0 || ret == HSMCA_ERR_NOT_FOUND) {
		if (ocsp_unknown(&sg, job->serial, id_md, now, validity, &der,
		    &len, &e) != 0 || cache_put(c, der, len, &e) != 0)
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
	signer_release(locked);
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
 * signature, so it is answered from memory at once. The responder is
 * used if it is in memory; making one is left to the next job (an
 * enrollment does not wait for a key generation). */
void
ocsp_issued(struct hsm *h, struct issuer *iss, struct ocsp_cache *c,
    const char *serial)
{
	struct ocsp_signer sg;
	struct store_cert rec;
	struct responder *r = NULL;
	struct hsmca_err e;
	int locked = 0, mode = responder_mode;

	if (c == NULL)
		return;
	err_clear(&e);
	memset(&rec, 0, sizeof(rec));
	snprintf(rec.serial, sizeof(rec.serial), "%s", serial);
	rec.status = STORE_CERT_VALID;
	rec.revoke_reason = -1;
	if (mode == CONFIG_OCSP_SIGNER_RESPONDER) {
		/* A job holds the table while it signs: rather than wait,
		 * leave this one to the next job (the change log has it). */
		if (pthread_mutex_trylock(&responders_lock) != 0)
			return;
		if (responder_get(h, NULL, iss, NULL, clock_now(), 0, &r,
		    &e) != 0) {
			pthread_mutex_unlock(&responders_lock);
			return;	/* the next job signs it with the responder */
		}
		locked = 1;
		signer_of(h, iss, r, &sg);
	} else
		signer_of(h, iss, NULL, &sg);
	/* The validity of the last job's config (a reload waits a tick). */
	if (cache_add_issuer(c, iss->gen_id, iss->cert, &e) != 0 ||
	    sign_put(&sg, c, &rec, NULL, clock_now(), current_validity, NULL,
	    NULL, &e) != 0)
		log_warnx("OCSP response for new serial %s (the next job "
		    "retries): %s", serial, e.msg);
	signer_release(locked);
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
	else {
		if (job->crl_number > 0)
			log_info("OCSP: %lld responses pre-signed, %zu held",
			    (long long)job->crl_number,
			    ocsp_cache_count(d->ocsp));
		d->ocsp_changes_seen = job->cursor[0];
		d->ocsp_walked = job->cursor[1];
		if (job->swept)
			d->ocsp_swept = clock_now();
	}
	d->ocsp_more = job->status == 200 && job->more;
	signer_job_free(job);
	if (d->ocsp_more)
		ocsp_tick(-1, 0, d);
}

/* Every tick: a job, unless one is out. Its work is bounded (see the
 * top), so the loop never looks at the store itself. */
static void
ocsp_tick(evutil_socket_t fd, short what, void *arg)
{
	struct hsmcad *d = arg;
	struct signer_job *job;

	if (d->draining || d->ocsp_busy)
		return;
	if ((job = calloc(1, sizeof(*job))) == NULL)
		return;
	job->op = SIGNER_OCSP;
	job->rt = runtime_ref(d->rt);
	job->done = presign_done;
	job->arg = d;
	job->cursor[0] = d->ocsp_changes_seen;
	job->cursor[1] = d->ocsp_walked;
	d->ocsp_busy = 1;
	link_submit(d->link, job);
}

int
ocsp_serve_start(struct hsmcad *d, struct hsmca_err *e)
{
	struct timeval tv = { OCSP_TICK_SEC, 0 };
	int ret;

	if ((ret = ocsp_cache_new(&d->ocsp, e)) != 0)
		return ret;
	d->ocsp_tokens = OCSP_UNKNOWN_RATE;
	clock_gettime(CLOCK_MONOTONIC, &d->ocsp_refill);
	d->ocsp_changes_seen = 0;
	d->ocsp_walked = 0;
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
	free(d->ocsp_ends);
	d->ocsp_ends = NULL;
	d->nocsp_ends = 0;
	responders_free();
}

/* The end of a generation the cache answers for, read from the store
 * the first time a miss names it (it never changes). */
struct ocsp_gen_end {
	int64_t		gen_id;
	time_t		not_after;
	int		told;		/* the log said it ended */
};

/* 1 if generation gen_id has ended at now. The cache answers for every
 * generation that served since hsmcad started, a restarted hsmcad only
 * for those that serve (gen_serves): for one that ended since, the
 * running one answers as a restarted one, unauthorized (not ours), with
 * one log line per generation, rather than ask the signer for what it
 * can no longer sign. */
static int
gen_ended(struct hsmcad *d, int64_t gen_id, time_t now)
{
	struct store_generation g;
	struct ocsp_gen_end *v, *end = NULL;
	struct hsmca_err e;
	char t[32];

	for (size_t i = 0; i < d->nocsp_ends && end == NULL; i++)
		if (d->ocsp_ends[i].gen_id == gen_id)
			end = &d->ocsp_ends[i];
	if (end == NULL) {
		memset(&g, 0, sizeof(g));
		if (store_get_generation(d->st, gen_id, &g, &e) != 0 ||
		    (v = reallocarray(d->ocsp_ends, d->nocsp_ends + 1,
		    sizeof(*v))) == NULL) {
			store_generation_free_fields(&g);
			return 0;	/* the signer looks (ocsp_job_miss) */
		}
		d->ocsp_ends = v;
		end = &v[d->nocsp_ends++];
		end->gen_id = gen_id;
		end->not_after = g.not_after;
		end->told = 0;
		store_generation_free_fields(&g);
	}
	if (end->not_after >= now)
		return 0;
	if (!end->told)
		log_info("OCSP: CA generation %lld ended at %s: requests for "
		    "its certificates are answered unauthorized", (long long)
		    gen_id, clock_format(end->not_after, t, sizeof(t)));
	end->told = 1;
	return 1;
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

/* A refusal in plain text (the request is not OCSP, or no OCSP answer
 * could be made), with the reason phrase every listener gives. */
static void
plain(struct evhttp_request *req, int status, const char *text)
{
	http_text(req, status, http_status_phrase(status), text);
	log_info("client=- %s /ocsp %d: %s",
	    http_method_name(evhttp_request_get_command(req)), status, text);
}

/* A response, with RFC 5019 6.2's caching headers (made when it was
 * cached) for a pre-signed one fetched with GET (or HEAD): a cache may
 * keep it until hsmcad would sign a fresher one. */
static void
reply_cached(struct evhttp_request *req, const unsigned char *der, size_t len,
    const char *what, const struct ocsp_query *q)
{
	struct evkeyvalq *h = evhttp_request_get_output_headers(req);
	struct evbuffer *body = evbuffer_new();
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	char cc[80];
	time_t fresh;

	if (body == NULL || evbuffer_add(body, der, len) != 0) {
		if (body != NULL)
			evbuffer_free(body);
		plain(req, 500, "out of memory");
		return;
	}
	evhttp_add_header(h, "Content-Type", "application/ocsp-response");
	if (q != NULL && q->next_update > q->this_update &&
	    (cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD)) {
		fresh = q->this_update + (q->next_update - q->this_update) / 2 -
		    clock_now();
		evhttp_add_header(h, "Last-Modified", q->last_modified);
		evhttp_add_header(h, "Expires", q->expires);
		evhttp_add_header(h, "ETag", q->etag);
		snprintf(cc, sizeof(cc), "max-age=%lld, public, no-transform, "
		    "must-revalidate", (long long)(fresh > 0 ? fresh : 0));
		evhttp_add_header(h, "Cache-Control", cc);
	}
	http_reply(req, 200, "OK", body);
	evbuffer_free(body);
	log_debug("client=- %s /ocsp 200 %s", http_method_name(cmd), what);
}

static void
reply(struct evhttp_request *req, const unsigned char *der, size_t len,
    const char *what)
{
	reply_cached(req, der, len, what, NULL);
}

/* An unsigned error response (malformedRequest, tryLater, ...). */
static void
reply_error(struct evhttp_request *req, int status, const char *what)
{
	unsigned char *der = NULL;
	size_t len = 0;
	struct hsmca_err e;

	if (ocsp_error(status, &der, &len, &e) != 0) {
		plain(req, 500, e.msg);
		return;
	}
	reply(req, der, len, what);
	OPENSSL_free(der);
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
	else if (job->status == 404)
		reply_error(w->req, OCSP_RESPONSE_STATUS_UNAUTHORIZED,
		    "unauthorized: the generation ended");
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
		reply_cached(req, der, len, found ? "cached" : "refused",
		    found ? &q : NULL);
		OPENSSL_free(der);
		return;
	}
	/* A miss for one of our generations. */
	if (gen_ended(d, q.gen_id, clock_now())) {
		reply_error(req, OCSP_RESPONSE_STATUS_UNAUTHORIZED,
		    "unauthorized: the generation ended");
		return;
	}
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
	link_submit(d->link, job);
}

int
ocsp_get_request(const char *enc, unsigned char *buf, size_t size,
    size_t *n)
{
	char *b64;
	size_t blen;
	int dn;

	if ((b64 = evhttp_uridecode(enc, 0, &blen)) == NULL)
		return OCSP_RESPONSE_STATUS_INTERNALERROR;
	if (blen == 0 || blen % 4 != 0 || blen / 4 * 3 > size ||
	    (dn = EVP_DecodeBlock(buf, (unsigned char *)b64,
	    (int)blen)) < 0) {
		free(b64);
		return OCSP_RESPONSE_STATUS_MALFORMEDREQUEST;
	}
	/* EVP_DecodeBlock counts the padding as data. */
	if (b64[blen - 1] == '=')
		dn--;
	if (b64[blen - 2] == '=')
		dn--;
	free(b64);
	*n = (size_t)dn;
	return 0;
}

/* POST /ocsp (application/ocsp-request) and GET /ocsp/<base64 DER,
 * URL-encoded> (RFC 6960 Appendix A); a HEAD wherever a GET is
 * answered, any other method 405 with what the path takes. */
void
ocsp_handle(struct evhttp_request *req, void *arg)
{
	struct hsmcad *d = arg;
	const char *uri = http_target(req), *ct;
	enum evhttp_cmd_type cmd = evhttp_request_get_command(req);
	struct evbuffer *in;
	unsigned char buf[OCSP_REQUEST_MAX_BYTES + 3];
	size_t n;
	int status;

	if (d->ocsp == NULL) {
		plain(req, 404, "no OCSP responder");
		return;
	}
	if (cmd == EVHTTP_REQ_POST && (strcmp(uri, "/ocsp") == 0 ||
	    strcmp(uri, "/ocsp/") == 0)) {
		ct = evhttp_find_header(evhttp_request_get_input_headers(req),
		    "Content-Type");
		if (ct == NULL || strncasecmp(ct, "application/ocsp-request",
		    24) != 0 || (ct[24] != '\0' && ct[24] != ';')) {
			plain(req, 415,
			    "Content-Type must be application/ocsp-request");
			return;
		}
		in = evhttp_request_get_input_buffer(req);
		if ((n = evbuffer_get_length(in)) > OCSP_REQUEST_MAX_BYTES) {
			plain(req, 413, "request too large");
			return;
		}
		evbuffer_remove(in, buf, n);
		answer(d, req, buf, n);
		return;
	}
	if ((cmd == EVHTTP_REQ_GET || cmd == EVHTTP_REQ_HEAD) &&
	    strncmp(uri, "/ocsp/", 6) == 0) {
		/* The whole rest is the request: base64 may hold '/'. */
		if ((status = ocsp_get_request(uri + 6, buf, sizeof(buf),
		    &n)) != 0) {
			reply_error(req, status, status ==
			    OCSP_RESPONSE_STATUS_INTERNALERROR ?
			    "internalError" : "malformedRequest");
			return;
		}
		answer(d, req, buf, n);
		return;
	}
	http_method_refused(req, strcmp(uri, "/ocsp") == 0 ? "POST" :
	    strcmp(uri, "/ocsp/") == 0 ? "GET, HEAD, POST" : "GET, HEAD");
	plain(req, 405,
	    "POST /ocsp or GET (or HEAD) /ocsp/<base64 request>");
}
