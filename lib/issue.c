/* issue.c: the flow of one certificate.
 *
 *   profile -> TBS -> pre-sign lint -> serial reserved (committed) ->
 *   HSM signs -> re-parse + post-sign lint and verify -> record (committed)
 *   -> release
 *
 * A certificate that failed verification, or whose record did not commit,
 * is never released; its reserved serial is marked failed, never reused. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "hsmca/audit.h"
#include "hsmca/clock.h"
#include "hsmca/issue.h"
#include "hsmca/lint.h"
#include "hsmca/sigcheck.h"

#define ISSUE_SERIAL_TRIES 3

time_t
issue_asn1_time(const ASN1_TIME *t)
{
	struct tm tm;

	if (t == NULL || !ASN1_TIME_to_tm(t, &tm))
		return (time_t)-1;
	return timegm(&tm);
}

char *
issue_san_string(const X509 *cert)
{
	GENERAL_NAMES *gens;
	BIO *b = BIO_new(BIO_s_mem());
	char *s;

	if (b == NULL)
		return NULL;
	gens = X509_get_ext_d2i(cert, NID_subject_alt_name, NULL, NULL);
	for (int i = 0; i < sk_GENERAL_NAME_num(gens); i++) {
		if (i > 0)
			BIO_puts(b, ",");
		GENERAL_NAME_print(b, sk_GENERAL_NAME_value(gens, i));
	}
	GENERAL_NAMES_free(gens);
	s = util_bio_string(b, NULL);
	BIO_free(b);
	return s;
}

int
issue_add_ext(X509 *cert, X509V3_CTX *ctx, int nid, const char *value,
    struct hsmca_err *e)
{
	X509_EXTENSION *ext;
	int ok;

	if ((ext = X509V3_EXT_conf_nid(NULL, ctx, nid, value)) == NULL)
		return err_set_ssl(e, HSMCA_ERR_INTERNAL, "extension %s=%s",
		    OBJ_nid2sn(nid), value);
	ok = X509_add_ext(cert, ext, -1);
	X509_EXTENSION_free(ext);
	if (!ok)
		return err_set_ssl(e, HSMCA_ERR_INTERNAL, "X509_add_ext");
	return 0;
}

int
issue_add_identifiers(X509 *cert, const X509 *issuer, const char *crl_url,
    const char *ocsp_url, struct hsmca_err *e)
{
	X509V3_CTX ctx;
	char buf[1024];
	int ret;

	/* X509V3_set_ctx takes a non-const issuer; it only reads it. */
	X509V3_set_ctx(&ctx, issuer != NULL ? (X509 *)(uintptr_t)issuer :
	    cert, cert, NULL, NULL, 0);
	if ((ret = issue_add_ext(cert, &ctx, NID_subject_key_identifier,
	    "hash", e)) != 0)
		return ret;
	if (issuer != NULL && (ret = issue_add_ext(cert, &ctx,
	    NID_authority_key_identifier, "keyid:always", e)) != 0)
		return ret;
	if (crl_url != NULL && *crl_url != '\0') {
		snprintf(buf, sizeof(buf), "URI:%s", crl_url);
		if ((ret = issue_add_ext(cert, &ctx,
		    NID_crl_distribution_points, buf, e)) != 0)
			return ret;
	}
	if (ocsp_url != NULL && *ocsp_url != '\0') {
		snprintf(buf, sizeof(buf), "OCSP;URI:%s", ocsp_url);
		if ((ret = issue_add_ext(cert, &ctx, NID_info_access, buf,
		    e)) != 0)
			return ret;
	}
	return 0;
}

/* Sign tbs and encode it once: *der (len bytes, OPENSSL_free) is what
 * the post-sign lint re-parsed and verified, and what tbs encodes to
 * from now on. */
static int
issue_sign_der(struct hsm *h, X509 *tbs, EVP_PKEY *signkey,
    const EVP_MD *md, const X509 *issuer, const struct sigcheck *check,
    unsigned char **der, int *len, struct hsmca_err *e)
{
	int ok, ret;

	*der = NULL;
	ERR_clear_error();
	/* h NULL: a software key (tests), no session bound to respect. */
	if (h != NULL)
		hsm_sign_enter(h);
	ok = X509_sign(tbs, signkey, md);
	if (h != NULL)
		hsm_sign_leave(h);
	if (ok <= 0)
		return err_set_ssl(e, HSMCA_ERR_HSM, "the HSM did not sign");
	if ((*len = i2d_X509(tbs, der)) <= 0)
		return err_set_ssl(e, HSMCA_ERR_LINT, "lint: the signed "
		    "certificate does not encode");
	/* The post-sign lint re-parses this DER and verifies it as any
	 * relying party would: what is checked is byte for byte what is
	 * released. */
	if ((ret = lint_postsign_der(*der, (size_t)*len,
	    issuer != NULL ? issuer : tbs, check, e)) != 0) {
		OPENSSL_free(*der);
		*der = NULL;
		return ret;
	}
	return 0;
}

int
issue_sign(struct hsm *h, X509 *tbs, EVP_PKEY *signkey, const EVP_MD *md,
    const X509 *issuer, X509 **out, struct hsmca_err *e)
{
	unsigned char *der = NULL;
	int len, ret;

	*out = NULL;
	if ((ret = issue_sign_der(h, tbs, signkey, md, issuer, NULL, &der,
	    &len, e)) != 0)
		return ret;
	OPENSSL_free(der);
	if (!X509_up_ref(tbs))
		return err_set(e, HSMCA_ERR_INTERNAL, "X509_up_ref");
	*out = tbs;
	return 0;
}

/* Expand "%g" to the generation id and "%%" to "%" in a URL template. */
static char *
expand_url(const char *tmpl, int64_t gen_id)
{
	char num[24], *s, *q;
	size_t n = 0;

	if (tmpl == NULL || *tmpl == '\0')
		return NULL;
	snprintf(num, sizeof(num), "%lld", (long long)gen_id);
	for (const char *p = tmpl; *p != '\0'; p++) {
		if (p[0] == '%' && (p[1] == 'g' || p[1] == '%')) {
			n += p[1] == 'g' ? strlen(num) : 1;
			p++;
		} else
			n++;
	}
	if ((s = malloc(n + 1)) == NULL)
		return NULL;
	q = s;
	for (const char *p = tmpl; *p != '\0'; p++) {
		if (p[0] == '%' && p[1] == 'g') {
			q = stpcpy(q, num);
			p++;
		} else if (p[0] == '%' && p[1] == '%') {
			*q++ = '%';
			p++;
		} else
			*q++ = *p;
	}
	*q = '\0';
	return s;
}

int
issuer_open(struct hsm *h, struct store *st, const struct store_generation *g,
    const struct config_ca *ca, struct issuer **out, struct hsmca_err *e)
{
	struct issuer *iss = NULL;
	const unsigned char *p;
	BIO *b = NULL;
	X509 *x;
	int ret = HSMCA_ERR_INTERNAL;

	*out = NULL;
	if (g->cert_der == NULL)
		return err_set(e, HSMCA_ERR_CA_STATE,
		    "CA generation %lld has no certificate yet (import it with "
		    "`hsmca ca import-cert`)", (long long)g->id);
	if ((iss = calloc(1, sizeof(*iss))) == NULL ||
	    (iss->chain = sk_X509_new_null()) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	iss->gen_id = g->id;
	p = g->cert_der;
	if ((iss->cert = d2i_X509(NULL, &p, (long)g->cert_der_len)) == NULL) {
		err_set_ssl(e, ret, "CA generation %lld: stored certificate "
		    "unreadable", (long long)g->id);
		goto out;
	}
	/* The chain above: a root in the store, or the PEM given at import. */
	if (g->parent_id != 0) {
		struct store_generation parent;

		memset(&parent, 0, sizeof(parent));
		if ((ret = store_get_generation(st, g->parent_id, &parent,
		    e)) != 0)
			goto out;
		p = parent.cert_der;
		x = p != NULL ? d2i_X509(NULL, &p, (long)parent.cert_der_len) :
		    NULL;
		store_generation_free_fields(&parent);
		if (x == NULL || !sk_X509_push(iss->chain, x)) {
			X509_free(x);
			ret = err_set(e, HSMCA_ERR_INTERNAL,
			    "cannot load the parent certificate");
			goto out;
		}
	} else if (g->chain_pem != NULL) {
		if ((b = BIO_new_mem_buf(g->chain_pem, -1)) == NULL)
			goto out;
		while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
			if (!sk_X509_push(iss->chain, x)) {
				X509_free(x);
				goto out;
			}
		ERR_clear_error();
	}
	if ((ret = hsm_load_signing_key(h, g->key_uri, &iss->key, e)) != 0)
		goto out;
	if (X509_check_private_key(iss->cert, hsm_key_public(iss->key)) != 1) {
		ret = err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld: the "
		    "key in the token does not match its certificate",
		    (long long)g->id);
		goto out;
	}
	iss->md = keytype_digest_for(hsm_key_public(iss->key));
	iss->crl_url = expand_url(ca->crl_url, g->id);
	iss->ocsp_url = expand_url(ca->ocsp_url, g->id);
	*out = iss;
	iss = NULL;
	ret = 0;
out:
	BIO_free(b);
	issuer_free(iss);
	return ret;
}

void
issuer_free(struct issuer *iss)
{
	if (iss == NULL)
		return;
	X509_free(iss->cert);
	sk_X509_pop_free(iss->chain, X509_free);
	hsm_key_free(iss->key);
	free(iss->crl_url);
	free(iss->ocsp_url);
	sigcheck_free(iss->check);
	free(iss);
}

void
issuer_precompute(struct issuer *iss)
{
	if (iss->check == NULL)
		iss->check = sigcheck_new(X509_get0_pubkey(iss->cert),
		    iss->md);
}

void
issue_result_free(struct issue_result *r)
{
	if (r == NULL)
		return;
	X509_free(r->cert);
	r->cert = NULL;
}

/* The audit record of an issuance (pop: a proof-of-possession
 * certificate) of serial, in w's transaction. */
static int
issue_audit_serial(struct store *w, const char *requester,
    const char *profile, const char *serial, enum audit_outcome outcome,
    const char *detail, struct hsmca_err *e)
{
	struct audit_event ev;
	char object[8 + SERIAL_HEX_MAX];

	snprintf(object, sizeof(object), "serial:%s", serial);
	memset(&ev, 0, sizeof(ev));
	ev.actor = requester;
	ev.action = profile != NULL && strcmp(profile, "pop") == 0 ?
	    AUDIT_POP : AUDIT_ISSUE;
	ev.object = object;
	ev.outcome = outcome;
	ev.detail = detail;
	return audit_append(w, &ev, e);
}

/* The issuance's audit record, appended in the transaction (or group
 * commit savepoint) that completes the certificate: a certificate is
 * never recorded as issued without it. */
static int
issue_audit(struct store *w, void *arg, struct hsmca_err *e)
{
	const struct store_cert *rec = arg;
	char detail[AUDIT_DETAIL_MAX];

	snprintf(detail, sizeof(detail), "generation %lld, profile %s, "
	    "subject %s, sha256 %s", (long long)rec->issuer_id,
	    rec->profile != NULL ? rec->profile : "",
	    rec->subject != NULL ? rec->subject : "", rec->sha256);
	return issue_audit_serial(w, rec->requester, rec->profile,
	    rec->serial, AUDIT_OK, detail, e);
}

/* The transaction that records a certificate: its record, its audit
 * entry, and what the caller must write with them (issue_finish_with). */
struct issue_record {
	const struct store_cert	*rec;
	issue_then_fn		*then;
	void			*arg;
};

static int
issue_record_then(struct store *w, void *arg, struct hsmca_err *e)
{
	const struct issue_record *ir = arg;
	int ret;

	if ((ret = issue_audit(w, (void *)(uintptr_t)ir->rec, e)) != 0 ||
	    ir->then == NULL)
		return ret;
	return ir->then(w, ir->rec, ir->arg, e);
}

/* An issuance that failed once its serial was reserved: the token did
 * not sign, verify-after-sign refused, or the record could not be
 * written. */
struct issue_failure {
	int64_t		 cert_id;
	int64_t		 gen_id;
	const char	*serial;
	const char	*profile;
	const char	*requester;
	const char	*reason;
};

/* Mark the serial of arg (a struct issue_failure) failed, never used
 * again, with its audit record, in w's transaction: a reserved serial
 * ends either issued or failed, and the log says which. */
static int
issue_fail_audit(struct store *w, void *arg, struct hsmca_err *e)
{
	const struct issue_failure *f = arg;
	char detail[AUDIT_DETAIL_MAX];
	int ret;

	if ((ret = store_fail_cert(w, f->cert_id, e)) != 0)
		return ret;
	snprintf(detail, sizeof(detail), "generation %lld, profile %s: %s",
	    (long long)f->gen_id, f->profile, f->reason);
	return issue_audit_serial(w, f->requester, f->profile, f->serial,
	    AUDIT_FAILED, detail, e);
}

/* issue_fail_audit in a write of its own; the serial stays burnt even
 * if that write fails (it is then left reserved, for hsmcad's sweep). */
static void
issue_fail(struct store *st, const struct issue_failure *f)
{
	struct hsmca_err e;

	err_clear(&e);
	(void)store_write_with(st, issue_fail_audit, (void *)(uintptr_t)f,
	    &e);
}

/* Reservations left behind: one transaction of issue_sweep_reserved. */
#define ISSUE_SWEEP_CHUNK	256	/* rows failed per transaction */

struct issue_sweep {
	time_t			 before;
	int64_t			 age;
	const char		*actor;
	struct store_cert	*v;	/* the chunk's rows, once committed */
	size_t			 n;
};

/* Fail the oldest reservations made before p->before, with an audit
 * record each, in w's transaction: the record names who reserved the
 * serial, when and why it ends failed. */
static int
issue_sweep_chunk(struct store *w, void *arg, struct hsmca_err *e)
{
	struct issue_sweep *p = arg;
	char detail[AUDIT_DETAIL_MAX], at[32], age[32];
	int ret;

	/* In hours, as hsmcad's records have always said it ("24h"). */
	if (p->age % 3600 == 0)
		snprintf(age, sizeof(age), "%lldh", (long long)(p->age / 3600));
	else
		util_format_duration(p->age, age, sizeof(age));
	if ((ret = store_fail_reserved_before(w, p->before, ISSUE_SWEEP_CHUNK,
	    &p->v, &p->n, e)) != 0)
		return ret;
	for (size_t i = 0; i < p->n; i++) {
		const struct store_cert *c = &p->v[i];

		snprintf(detail, sizeof(detail), "reserved under CA generation "
		    "%lld at %s by %s, profile %s, and never recorded: marked "
		    "failed after %s, the serial is never used",
		    (long long)c->issuer_id,
		    clock_format(c->created_at, at, sizeof(at)),
		    c->requester != NULL ? c->requester : "-",
		    c->profile != NULL ? c->profile : "-", age);
		if ((ret = issue_audit_serial(w, p->actor, c->profile,
		    c->serial, AUDIT_FAILED, detail, e)) != 0)
			return ret;
	}
	return 0;
}

int
issue_sweep_reserved(struct store *st, time_t now, int64_t age,
    const char *actor, void (*each)(const struct store_cert *, void *),
    void *arg, size_t *n, struct hsmca_err *e)
{
	struct issue_sweep p;
	int ret = 0;

	*n = 0;
	if (age <= 0)
		return err_set(e, HSMCA_ERR_ARG, "a sweep of reservations %lld "
		    "seconds old", (long long)age);
	memset(&p, 0, sizeof(p));
	p.before = now - (time_t)age;
	p.age = age;
	p.actor = actor;
	do {
		store_certs_free(p.v, p.n);
		p.v = NULL;
		p.n = 0;
		if ((ret = store_write_with(st, issue_sweep_chunk, &p,
		    e)) != 0)
			break;
		/* Committed: only now are they failed for anyone else. */
		for (size_t i = 0; each != NULL && i < p.n; i++)
			each(&p.v[i], arg);
		*n += p.n;
	} while (p.n == ISSUE_SWEEP_CHUNK);
	store_certs_free(p.v, p.n);
	return ret;
}

/* The record of a signed certificate: tbs as signed, der its encoding
 * (borrowed by rec), cert_id its reserved row. Free rec->subject and
 * rec->sans. */
static int
issue_describe(const struct issuer *iss, X509 *tbs, const unsigned char *der,
    int len, int64_t cert_id, const char *serial_hex,
    const struct profile *profile, const char *requester,
    const char *csr_sha256, time_t now, struct store_cert *rec,
    struct hsmca_err *e)
{
	unsigned char md[32];

	memset(rec, 0, sizeof(*rec));
	rec->id = cert_id;
	rec->issuer_id = iss->gen_id;
	snprintf(rec->serial, sizeof(rec->serial), "%s", serial_hex);
	rec->status = STORE_CERT_VALID;
	rec->subject = util_name_string(X509_get_subject_name(tbs));
	rec->sans = issue_san_string(tbs);
	rec->not_before = issue_asn1_time(X509_get0_notBefore(tbs));
	rec->not_after = issue_asn1_time(X509_get0_notAfter(tbs));
	rec->profile = profile->name;
	rec->requester = (char *)(uintptr_t)requester;
	if (csr_sha256 != NULL)
		snprintf(rec->csr_sha256, sizeof(rec->csr_sha256), "%s",
		    csr_sha256);
	rec->created_at = now;
	rec->revoke_reason = -1;
	/* The thumbprint of the DER that was checked and is stored. */
	if (rec->subject == NULL || rec->sans == NULL ||
	    !EVP_Digest(der, (size_t)len, md, NULL, EVP_sha256(), NULL))
		return err_set(e, HSMCA_ERR_INTERNAL,
		    "cannot describe the signed certificate");
	util_hex(md, sizeof(md), rec->sha256);
	rec->der = (unsigned char *)(uintptr_t)der;
	rec->der_len = (size_t)len;
	return 0;
}

/* issue_finish_with, for a TBS whose subject key is key (NULL: the one
 * tbs carries decoded; see lint_presign_key). */
static int
issue_finish_key(struct hsm *h, struct store *st, struct issuer *iss,
    int device, int64_t batch_id, X509 *tbs, const EVP_PKEY *key,
    const struct profile *profile, const char *requester,
    const char *csr_sha256, time_t now, issue_then_fn *then, void *arg,
    struct issue_result *out, struct hsmca_err *e)
{
	ASN1_INTEGER *serial = NULL;
	char serial_hex[SERIAL_HEX_MAX];
	struct issue_record ir;
	struct store_cert rec;
	unsigned char *der = NULL;
	int64_t cert_id = 0;
	int len, ret = HSMCA_ERR_INTERNAL, reserved = 0;

	memset(out, 0, sizeof(*out));
	memset(&rec, 0, sizeof(rec));

	/* Reserve a fresh serial: the intent is on disk before the HSM
	 * signs, so a crash never leaves a signed certificate unrecorded. */
	for (int tries = 0; !reserved; tries++) {
		ASN1_INTEGER_free(serial);
		serial = NULL;
		if ((ret = serial_generate(&serial, serial_hex, e)) != 0)
			goto out;
		if (!X509_set_serialNumber(tbs, serial)) {
			ret = err_set_ssl(e, HSMCA_ERR_INTERNAL, "serial");
			goto out;
		}
		/* Lint before anything is recorded: a refused certificate
		 * leaves no trace in the store. */
		if (tries == 0 && (ret = lint_presign_key(tbs, key, iss->cert,
		    profile, e)) != 0)
			goto out;
		ret = batch_id != 0 ? store_reserve_batch_serial(st,
		    iss->gen_id, batch_id, serial_hex, profile->name,
		    requester, csr_sha256, now, &cert_id, e) :
		    store_reserve_serial(st, iss->gen_id, device, serial_hex,
		    profile->name, requester, csr_sha256, now, &cert_id, e);
		if (ret == HSMCA_ERR_EXISTS && tries + 1 < ISSUE_SERIAL_TRIES)
			continue;
		if (ret != 0)
			goto out;
		reserved = 1;
	}

	if ((ret = issue_sign_der(h, tbs, hsm_key_private(iss->key), iss->md,
	    iss->cert, iss->check, &der, &len, e)) != 0)
		goto fail;

	/* The durable record, its audit entry and the caller's rows,
	 * committed together before anyone sees the result. */
	ir.rec = &rec;
	ir.then = then;
	ir.arg = arg;
	if ((ret = issue_describe(iss, tbs, der, len, cert_id, serial_hex,
	    profile, requester, csr_sha256, now, &rec, e)) != 0 ||
	    (ret = store_complete_cert_with(st, &rec, issue_record_then, &ir,
	    e)) != 0)
		goto fail;

	if (!X509_up_ref(tbs)) {
		/* Recorded, but cannot be handed out. */
		ret = err_set(e, HSMCA_ERR_INTERNAL, "X509_up_ref");
		goto out;
	}
	out->cert = tbs;
	memcpy(out->serial, serial_hex, sizeof(out->serial));
	memcpy(out->sha256, rec.sha256, sizeof(out->sha256));
	out->cert_id = cert_id;
	ret = 0;
	goto out;
fail:
	/* Keep the reason of the first failure; the serial stays burnt. */
	{
		struct issue_failure f = { cert_id, iss->gen_id, serial_hex,
		    profile->name, requester, e->msg };

		issue_fail(st, &f);
	}
out:
	free(rec.subject);
	free(rec.sans);
	OPENSSL_free(der);
	ASN1_INTEGER_free(serial);
	return ret;
}

int
issue_finish(struct hsm *h, struct store *st, struct issuer *iss, X509 *tbs,
    const struct profile *profile, const char *requester,
    const char *csr_sha256, time_t now, struct issue_result *out,
    struct hsmca_err *e)
{
	return issue_finish_key(h, st, iss, 0, 0, tbs, NULL, profile,
	    requester, csr_sha256, now, NULL, NULL, out, e);
}

int
issue_finish_with(struct hsm *h, struct store *st, struct issuer *iss,
    X509 *tbs, const struct profile *profile, const char *requester,
    const char *csr_sha256, time_t now, issue_then_fn *then, void *arg,
    struct issue_result *out, struct hsmca_err *e)
{
	return issue_finish_key(h, st, iss, 0, 0, tbs, NULL, profile,
	    requester, csr_sha256, now, then, arg, out, e);
}

/* Build the TBSCertificate of req (*out, caller frees): the profile
 * decides, the CSR only contributes its key and the names the profile
 * allows. */
static int
issue_build(struct issuer *iss, const struct issue_request *req, X509 **out,
    struct hsmca_err *e)
{
	const X509_PUBKEY *spki;
	X509 *tbs = NULL;
	int ret = HSMCA_ERR_INTERNAL;

	*out = NULL;
	/* Proof of possession: only a request whose self-signature was
	 * checked is ever issued (csr_parse_unverified is for stations). */
	if (!req->csr->verified)
		return err_set(e, HSMCA_ERR_CSR_SIGNATURE, "the request's "
		    "signature was not checked");
	if ((tbs = X509_new()) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	/* The CSR's key travels as the bytes it came in, when it is the
	 * CSR's (X509_set_pubkey() would encode it again, and decode that). */
	spki = csr_get0_spki(req->csr);
	if (!X509_set_version(tbs, X509_VERSION_3) ||
	    !X509_set_issuer_name(tbs, X509_get_subject_name(iss->cert)) ||
	    (spki != NULL ? util_copy_spki(X509_get_X509_PUBKEY(tbs),
	    spki) != 0 : !X509_set_pubkey(tbs, req->csr->pubkey))) {
		err_set_ssl(e, ret, "cannot build the certificate");
		goto out;
	}
	if ((ret = profile_apply(req->profile, req->csr, tbs, iss->cert,
	    req->now, e)) != 0)
		goto out;
	if ((ret = issue_add_identifiers(tbs, iss->cert, iss->crl_url,
	    iss->ocsp_url, e)) != 0)
		goto out;
	*out = tbs;
	tbs = NULL;
	ret = 0;
out:
	X509_free(tbs);
	return ret;
}

int
issue_certificate(struct hsm *h, struct store *st, struct issuer *iss,
    const struct issue_request *req, struct issue_result *out,
    struct hsmca_err *e)
{
	X509 *tbs = NULL;
	int ret;

	memset(out, 0, sizeof(*out));
	if ((ret = issue_build(iss, req, &tbs, e)) != 0)
		goto out;
	ret = issue_finish_key(h, st, iss, 1, req->batch_id, tbs,
	    req->csr->pubkey, req->profile, req->requester,
	    req->csr->fingerprint_hex, req->now, NULL, NULL, out, e);
out:
	X509_free(tbs);
	return ret;
}

/* ---- several certificates at once ---- */

/* One certificate of issue_certificates on its way. */
struct issue_slot {
	X509		*tbs;
	ASN1_INTEGER	*serial;
	char		 serial_hex[SERIAL_HEX_MAX];
	int64_t		 cert_id;
	int		 reserved;
	unsigned char	*der;
	int		 len;
	struct store_cert rec;
};

/* A fresh serial for slot v. */
static int
issue_slot_serial(struct issue_slot *v, struct hsmca_err *e)
{
	int ret;

	ASN1_INTEGER_free(v->serial);
	v->serial = NULL;
	if ((ret = serial_generate(&v->serial, v->serial_hex, e)) != 0)
		return ret;
	if (!X509_set_serialNumber(v->tbs, v->serial))
		return err_set_ssl(e, HSMCA_ERR_INTERNAL, "serial");
	return 0;
}

int
issue_check(struct issuer *iss, const struct issue_request *req,
    struct hsmca_err *e)
{
	struct issue_slot v;
	int ret;

	memset(&v, 0, sizeof(v));
	if ((ret = issue_build(iss, req, &v.tbs, e)) == 0 &&
	    (ret = issue_slot_serial(&v, e)) == 0)
		ret = lint_presign_key(v.tbs, req->csr->pubkey, iss->cert,
		    req->profile, e);
	ASN1_INTEGER_free(v.serial);
	X509_free(v.tbs);
	return ret;
}

/* The certificates of one issue_certificates call. */
struct issue_chunk {
	struct issuer			*iss;
	const struct issue_request	*reqs;
	struct issue_slot		*v;
	size_t				 n;
	int				*rets;
	struct hsmca_err		*errs;
};

/* Reserve the serial of every slot still good, in w's transaction. A
 * slot that cannot be reserved fails alone. */
static int
issue_reserve_slots(struct store *w, void *arg, struct hsmca_err *e)
{
	struct issue_chunk *c = arg;
	const struct issue_request *q;
	struct issue_slot *v;

	(void)e;
	for (size_t i = 0; i < c->n; i++) {
		q = &c->reqs[i];
		v = &c->v[i];
		for (int tries = 0; c->rets[i] == 0; tries++) {
			c->rets[i] = q->batch_id != 0 ?
			    store_reserve_batch_serial(w, c->iss->gen_id,
			    q->batch_id, v->serial_hex, q->profile->name,
			    q->requester, q->csr->fingerprint_hex, q->now,
			    &v->cert_id, &c->errs[i]) :
			    store_reserve_serial(w, c->iss->gen_id, 1,
			    v->serial_hex, q->profile->name, q->requester,
			    q->csr->fingerprint_hex, q->now, &v->cert_id,
			    &c->errs[i]);
			if (c->rets[i] != HSMCA_ERR_EXISTS ||
			    tries + 1 >= ISSUE_SERIAL_TRIES)
				break;
			err_clear(&c->errs[i]);
			c->rets[i] = issue_slot_serial(v, &c->errs[i]);
		}
		v->reserved = c->rets[i] == 0;
	}
	return 0;
}

/* The records of the slots signed (rets[i] 0) with their audit entries,
 * and the failures of the others reserved, in w's transaction: all or
 * nothing. */
static int
issue_record_slots(struct store *w, void *arg, struct hsmca_err *e)
{
	struct issue_chunk *c = arg;
	struct issue_slot *v;
	int ret;

	for (size_t i = 0; i < c->n; i++) {
		v = &c->v[i];
		if (!v->reserved)
			continue;
		if (c->rets[i] == 0)
			ret = store_complete_cert_with(w, &v->rec, issue_audit,
			    &v->rec, e);
		else {
			struct issue_failure f = { v->cert_id, c->iss->gen_id,
			    v->serial_hex, c->reqs[i].profile->name,
			    c->reqs[i].requester, c->errs[i].msg };

			ret = issue_fail_audit(w, &f, e);
		}
		if (ret != 0)
			return ret;
	}
	return 0;
}

int
issue_certificates(struct hsm *h, struct store *st, struct issuer *iss,
    const struct issue_request *reqs, size_t n, struct issue_result *outs,
    int *rets, struct hsmca_err *errs)
{
	struct issue_chunk c;
	struct issue_slot *v;
	struct hsmca_err e;
	size_t i;
	int ret;

	for (i = 0; i < n; i++) {
		memset(&outs[i], 0, sizeof(outs[i]));
		err_clear(&errs[i]);
		rets[i] = HSMCA_ERR_ALLOC;
	}
	if ((v = calloc(n, sizeof(*v))) == NULL) {
		for (i = 0; i < n; i++)
			err_set(&errs[i], HSMCA_ERR_ALLOC, "out of memory");
		return HSMCA_ERR_ALLOC;
	}
	/* Built, given a serial and linted, each as issue_certificate does:
	 * a refused certificate leaves no trace in the store. */
	for (i = 0; i < n; i++)
		if ((rets[i] = issue_build(iss, &reqs[i], &v[i].tbs,
		    &errs[i])) == 0 &&
		    (rets[i] = issue_slot_serial(&v[i], &errs[i])) == 0)
			rets[i] = lint_presign_key(v[i].tbs,
			    reqs[i].csr->pubkey, iss->cert, reqs[i].profile,
			    &errs[i]);

	/* Every serial reserved in one commit (with st's group, the same
	 * commit as other threads' writes) before the HSM signs. */
	c.iss = iss;
	c.reqs = reqs;
	c.v = v;
	c.n = n;
	c.rets = rets;
	c.errs = errs;
	err_clear(&e);
	if ((ret = store_write_with(st, issue_reserve_slots, &c, &e)) != 0)
		goto fail_all;

	/* Signed and verified one by one, then described for the store. */
	for (i = 0; i < n; i++)
		if (v[i].reserved &&
		    (rets[i] = issue_sign_der(h, v[i].tbs,
		    hsm_key_private(iss->key), iss->md, iss->cert, iss->check,
		    &v[i].der, &v[i].len, &errs[i])) == 0)
			rets[i] = issue_describe(iss, v[i].tbs, v[i].der,
			    v[i].len, v[i].cert_id, v[i].serial_hex,
			    reqs[i].profile, reqs[i].requester,
			    reqs[i].csr->fingerprint_hex, reqs[i].now,
			    &v[i].rec, &errs[i]);

	/* Every record and its audit entry in one commit; if that fails,
	 * each on its own, so one bad record does not take the others. */
	if (store_write_with(st, issue_record_slots, &c, &e) != 0)
		for (i = 0; i < n; i++) {
			if (!v[i].reserved)
				continue;
			if (rets[i] == 0)
				rets[i] = store_complete_cert_with(st,
				    &v[i].rec, issue_audit, &v[i].rec,
				    &errs[i]);
			/* The serial stays burnt. */
			if (rets[i] != 0) {
				struct issue_failure f = { v[i].cert_id,
				    iss->gen_id, v[i].serial_hex,
				    reqs[i].profile->name, reqs[i].requester,
				    errs[i].msg };

				issue_fail(st, &f);
			}
		}

	for (i = 0; i < n; i++) {
		if (rets[i] != 0)
			continue;
		if (!X509_up_ref(v[i].tbs)) {
			rets[i] = err_set(&errs[i], HSMCA_ERR_INTERNAL,
			    "X509_up_ref");
			continue;
		}
		outs[i].cert = v[i].tbs;
		memcpy(outs[i].serial, v[i].serial_hex,
		    sizeof(outs[i].serial));
		memcpy(outs[i].sha256, v[i].rec.sha256,
		    sizeof(outs[i].sha256));
		outs[i].cert_id = v[i].cert_id;
	}
	ret = 0;
	goto out;
fail_all:
	for (i = 0; i < n; i++)
		if (rets[i] == 0) {
			rets[i] = ret;
			errs[i] = e;
		}
out:
	for (i = 0; i < n; i++) {
		free(v[i].rec.subject);
		free(v[i].rec.sans);
		OPENSSL_free(v[i].der);
		ASN1_INTEGER_free(v[i].serial);
		X509_free(v[i].tbs);
	}
	free(v);
	return ret;
}
