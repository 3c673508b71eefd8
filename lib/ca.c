/* ca.c: CA generations: creation in the token, import, chains, and
 * rotation (new generations, activation, retirement, expiry, revocation). */
#include "config.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509v3.h>

#include "hsmca/audit.h"
#include "hsmca/ca.h"
#include "hsmca/clock.h"
#include "hsmca/crl.h"
#include "hsmca/lint.h"
#include "hsmca/serial.h"
#include "hsmca/util.h"

#define CA_BACKDATE	300	/* seconds of clock skew tolerated */
#define CA_PEM_MAX	(1024 * 1024)

/* The audit record of a change to generation g, appended in the
 * transaction that makes the change. */
static int
ca_audit(struct ca_ctx *c, enum audit_action action,
    const struct store_generation *g, const char *extra, struct hsmca_err *e)
{
	struct audit_event ev;
	char object[32], detail[AUDIT_DETAIL_MAX];

	snprintf(object, sizeof(object), "gen:%lld", (long long)g->id);
	snprintf(detail, sizeof(detail), "%s %s, subject %s%s%s%s",
	    store_gen_kind_name(g->kind), store_gen_status_name(g->status),
	    g->subject != NULL ? g->subject : "",
	    g->sha256[0] != '\0' ? ", sha256 " : "", g->sha256,
	    extra != NULL ? extra : "");
	memset(&ev, 0, sizeof(ev));
	ev.actor = c->actor != NULL ? c->actor : "local";
	ev.action = action;
	ev.object = object;
	ev.outcome = AUDIT_OK;
	ev.detail = detail;
	return audit_append(c->st, &ev, e);
}

enum store_gen_status
ca_effective_status(const struct store_generation *g, time_t now)
{
	if ((g->status == STORE_GEN_ACTIVE || g->status == STORE_GEN_INACTIVE) &&
	    g->cert_der != NULL && g->not_after < now)
		return STORE_GEN_EXPIRED;
	return g->status;
}

size_t
ca_stalled_generation(const struct store_generation *v, size_t n, time_t now)
{
	size_t last = n;

	for (size_t i = 0; i < n; i++) {
		if (v[i].kind != STORE_GEN_ISSUING || v[i].cert_der == NULL)
			continue;
		if (ca_effective_status(&v[i], now) == STORE_GEN_ACTIVE)
			return n;
		if ((v[i].status == STORE_GEN_ACTIVE ||
		    v[i].status == STORE_GEN_EXPIRED) &&
		    (last == n || v[i].not_after > v[last].not_after))
			last = i;
	}
	return last;
}

/* The certificate of a stored generation; NULL if it has none or it
 * does not decode. */
static X509 *
gen_x509(const struct store_generation *g)
{
	const unsigned char *p = g->cert_der;

	if (p == NULL)
		return NULL;
	return d2i_X509(NULL, &p, (long)g->cert_der_len);
}

/* Free the fields of a generation whose key_uri and key_type point
 * into a key object and static names (issuing_new). */
static void
gen_free_borrowed(struct store_generation *g)
{
	g->key_uri = NULL;
	g->key_type = NULL;
	store_generation_free_fields(g);
}

/* Fill the certificate fields of a generation record from cert. */
static int
gen_fill_cert(struct store_generation *g, const X509 *cert,
    struct hsmca_err *e)
{
	unsigned char *der = NULL;
	int len;

	free(g->subject);
	free(g->issuer);
	free(g->cert_der);
	g->cert_der = NULL;
	g->subject = util_name_string(X509_get_subject_name(cert));
	g->issuer = util_name_string(X509_get_issuer_name(cert));
	g->not_before = issue_asn1_time(X509_get0_notBefore(cert));
	g->not_after = issue_asn1_time(X509_get0_notAfter(cert));
	if (g->subject == NULL || g->issuer == NULL ||
	    serial_to_hex(X509_get0_serialNumber(cert), g->serial) != 0 ||
	    util_cert_sha1(cert, g->sha1) != 0 ||
	    util_cert_sha256(cert, g->sha256) != 0 ||
	    (len = i2d_X509(cert, &der)) <= 0)
		return err_set(e, HSMCA_ERR_INTERNAL,
		    "cannot describe the CA certificate");
	if ((g->cert_der = malloc((size_t)len)) == NULL) {
		OPENSSL_free(der);
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	memcpy(g->cert_der, der, (size_t)len);
	g->cert_der_len = (size_t)len;
	OPENSSL_free(der);
	return 0;
}

/* A CA certificate for pub, signed by signkey (issuer NULL: self-signed).
 * pathlen -1 leaves the path length open. crl_url (NULL: none), the
 * issuer's CRL, is its CRL distribution point. */
static int
ca_make_cert(struct ca_ctx *c, const char *subject, EVP_PKEY *pub,
    EVP_PKEY *signkey, const X509 *issuer, int64_t validity, int pathlen,
    const char *crl_url, time_t now, X509 **out, struct hsmca_err *e)
{
	X509 *tbs = NULL;
	X509_NAME *name = NULL;
	ASN1_INTEGER *serial = NULL;
	X509V3_CTX v3;
	char hex[SERIAL_HEX_MAX], bc[64];
	time_t nb = now - CA_BACKDATE, na = now + (time_t)validity;
	int ret = HSMCA_ERR_INTERNAL;

	*out = NULL;
	if (issuer != NULL) {
		time_t inb = issue_asn1_time(X509_get0_notBefore(issuer));
		time_t ina = issue_asn1_time(X509_get0_notAfter(issuer));

		if (now < inb || now > ina)
			return err_set(e, HSMCA_ERR_CA_STATE,
			    "the root is not valid now");
		/* Never outlive the issuer. */
		if (na > ina)
			na = ina;
		if (nb < inb)
			nb = inb;
	}
	if ((ret = util_parse_name(subject, &name, e)) != 0)
		goto out;
	ret = HSMCA_ERR_INTERNAL;
	if ((ret = serial_generate(&serial, hex, e)) != 0)
		goto out;
	ret = HSMCA_ERR_INTERNAL;
	if ((tbs = X509_new()) == NULL ||
	    !X509_set_version(tbs, X509_VERSION_3) ||
	    !X509_set_serialNumber(tbs, serial) ||
	    !X509_set_subject_name(tbs, name) ||
	    !X509_set_issuer_name(tbs, issuer != NULL ?
	    X509_get_subject_name(issuer) : name) ||
	    X509_time_adj_ex(X509_getm_notBefore(tbs), 0, 0, &nb) == NULL ||
	    X509_time_adj_ex(X509_getm_notAfter(tbs), 0, 0, &na) == NULL ||
	    !X509_set_pubkey(tbs, pub)) {
		err_set_ssl(e, ret, "cannot build the CA certificate");
		goto out;
	}
	X509V3_set_ctx(&v3, NULL, tbs, NULL, NULL, 0);
	if (pathlen >= 0)
		snprintf(bc, sizeof(bc), "critical,CA:TRUE,pathlen:%d", pathlen);
	else
		snprintf(bc, sizeof(bc), "critical,CA:TRUE");
	/* digitalSignature lets the CA key sign OCSP responses itself. */
	if ((ret = issue_add_ext(tbs, &v3, NID_basic_constraints, bc, e)) != 0 ||
	    (ret = issue_add_ext(tbs, &v3, NID_key_usage,
	    "critical,keyCertSign,cRLSign,digitalSignature", e)) != 0)
		goto out;
	if ((ret = issue_add_identifiers(tbs, issuer, crl_url, NULL, e)) != 0)
		goto out;
	if ((ret = lint_presign(tbs, issuer != NULL ? issuer : tbs, NULL,
	    e)) != 0)
		goto out;
	ret = issue_sign(c->hsm, tbs, signkey, keytype_digest_for(signkey),
	    issuer, out, e);
out:
	X509_NAME_free(name);
	ASN1_INTEGER_free(serial);
	X509_free(tbs);
	return ret;
}

static void
key_label(char *buf, size_t len, const char *what, time_t now)
{
	char ts[32];
	unsigned char rnd[3];
	char rhex[7];
	struct tm tm;

	gmtime_r(&now, &tm);
	strftime(ts, sizeof(ts), "%Y%m%dT%H%M%SZ", &tm);
	if (RAND_bytes(rnd, sizeof(rnd)) != 1)
		memset(rnd, 0, sizeof(rnd));
	util_hex(rnd, sizeof(rnd), rhex);
	snprintf(buf, len, "hsmca-%s-%s-%s", what, ts, rhex);
}

static int
existing_issuing(struct ca_ctx *c, struct hsmca_err *e)
{
	struct store_generation *v = NULL;
	size_t n = 0;
	int ret, found = 0;

	if ((ret = store_list_generations(c->st, &v, &n, e)) != 0)
		return ret;
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == STORE_GEN_ISSUING &&
		    v[i].status != STORE_GEN_REVOKED)
			found = 1;
	store_generations_free(v, n);
	if (found)
		return err_set(e, HSMCA_ERR_EXISTS, "the CA is already "
		    "initialized (see `hsmca ca list`)");
	return 0;
}

static int
make_csr(struct ca_ctx *c, const char *subject, struct hsm_key *k,
    char **pem, unsigned char **der, size_t *der_len, struct hsmca_err *e)
{
	X509_REQ *req = NULL;
	X509_NAME *name = NULL;
	BIO *b = NULL;
	unsigned char *d = NULL;
	int len, ok, ret;

	if ((ret = util_parse_name(subject, &name, e)) != 0)
		return ret;
	ret = HSMCA_ERR_INTERNAL;
	if ((req = X509_REQ_new()) == NULL ||
	    !X509_REQ_set_version(req, 0) ||
	    !X509_REQ_set_subject_name(req, name) ||
	    !X509_REQ_set_pubkey(req, hsm_key_public(k)))
		goto out;
	hsm_sign_enter(c->hsm);
	ok = X509_REQ_sign(req, hsm_key_private(k),
	    keytype_digest_for(hsm_key_public(k)));
	hsm_sign_leave(c->hsm);
	if (ok <= 0) {
		ret = err_set_ssl(e, HSMCA_ERR_HSM, "the HSM did not sign the CSR");
		goto out;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL ||
	    !PEM_write_bio_X509_REQ(b, req) ||
	    (len = i2d_X509_REQ(req, &d)) <= 0)
		goto out;
	if ((*pem = util_bio_string(b, NULL)) == NULL ||
	    (*der = malloc((size_t)len)) == NULL)
		goto out;
	memcpy(*der, d, (size_t)len);
	*der_len = (size_t)len;
	ret = 0;
out:
	if (ret == HSMCA_ERR_INTERNAL)
		err_set_ssl(e, ret, "cannot build the CA's CSR");
	OPENSSL_free(d);
	BIO_free(b);
	X509_REQ_free(req);
	X509_NAME_free(name);
	return ret;
}

/* How a new issuing generation gets its certificate. */
enum issuing_signer {
	SIGNER_ROOT,		/* the root in the token signs */
	SIGNER_SELF,		/* self-signed */
	SIGNER_EXTERNAL,	/* a CSR for an outside root */
};

/* A new issuing generation's key in the token (*key, which the caller
 * destroys on failure), and g's kind, key and time of creation; g's
 * key_uri and key_type are borrowed (gen_free_borrowed). */
static int
issuing_key(struct ca_ctx *c, time_t now, struct hsm_key **key,
    struct store_generation *g, struct hsmca_err *e)
{
	const struct config_ca *cc = &c->cfg->ca;
	char label[96];
	int ret;

	key_label(label, sizeof(label), "ca", now);
	if ((ret = hsm_generate_key(c->hsm, cc->key_type, label, key, e)) != 0)
		return ret;
	g->kind = STORE_GEN_ISSUING;
	g->key_uri = (char *)(uintptr_t)hsm_key_uri(*key);
	g->key_type = (char *)(uintptr_t)keytype_name(cc->key_type);
	g->created_at = now;
	return 0;
}

/* g filled in with the certificate of key, signed by root (an open root
 * generation: the certificate names the root's CRL as its distribution
 * point) or by itself, or with its CSR (*csr_pem) and pending. Other
 * statuses and dates are the caller's. */
static int
issuing_cert(struct ca_ctx *c, enum issuing_signer how,
    const struct issuer *root, struct hsm_key *key, time_t now,
    struct store_generation *g, char **csr_pem, struct hsmca_err *e)
{
	const struct config_ca *cc = &c->cfg->ca;
	X509 *cert = NULL;
	int ret;

	if (how == SIGNER_EXTERNAL) {
		if ((ret = make_csr(c, cc->subject, key, csr_pem, &g->csr_der,
		    &g->csr_der_len, e)) != 0)
			return ret;
		g->status = STORE_GEN_PENDING;
		if ((g->subject = strdup(cc->subject)) == NULL)
			return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		return 0;
	}
	/* pathlen 1: edge-ca certificates (pathlen 0) sit below. */
	if (how == SIGNER_ROOT)
		ret = ca_make_cert(c, cc->subject, hsm_key_public(key),
		    hsm_key_private(root->key), root->cert, cc->validity, 1,
		    root->crl_url, now, &cert, e);
	else
		ret = ca_make_cert(c, cc->subject, hsm_key_public(key),
		    hsm_key_private(key), NULL, cc->validity, 1, NULL, now,
		    &cert, e);
	if (ret == 0)
		ret = gen_fill_cert(g, cert, e);
	X509_free(cert);
	return ret;
}

/* After a failure (e says which), a new key leaves the token again; if
 * the token keeps it, e says that too, and which key stays. */
static void
key_undo(struct ca_ctx *c, struct hsm_key *key, struct hsmca_err *e)
{
	struct hsmca_err de;
	size_t n;

	err_clear(&de);
	if (key == NULL || hsm_destroy_key(c->hsm, key, &de) == 0 || e == NULL)
		return;
	n = strlen(e->msg);
	snprintf(e->msg + n, sizeof(e->msg) - n, "; undo failed, %s", de.msg);
}

/* After a failed issuing_cert or a failure to record its generation:
 * the new key leaves the token again, and its CSR is not handed out. */
static void
issuing_undo(struct ca_ctx *c, struct hsm_key *key, char **csr_pem,
    struct hsmca_err *e)
{
	key_undo(c, key, e);
	free(*csr_pem);
	*csr_pem = NULL;
}

int
ca_init(struct ca_ctx *c, enum ca_init_mode mode, time_t now,
    struct ca_init_result *out, struct hsmca_err *e)
{
	const struct config_ca *cc = &c->cfg->ca;
	struct hsm_key *root_key = NULL, *key = NULL;
	struct issuer *root_iss = NULL;
	X509 *root = NULL;
	struct store_generation rg, g;
	enum issuing_signer how;
	char label[96];
	int ret, in_tx = 0;

	memset(out, 0, sizeof(*out));
	memset(&rg, 0, sizeof(rg));
	memset(&g, 0, sizeof(g));
	if ((ret = existing_issuing(c, e)) != 0)
		return ret;
	switch (mode) {
	case CA_INIT_ROOT_IN_HSM:
		how = SIGNER_ROOT;
		break;
	case CA_INIT_SELF_SIGNED:
		how = SIGNER_SELF;
		break;
	case CA_INIT_EXTERNAL:
		how = SIGNER_EXTERNAL;
		break;
	default:
		return err_set(e, HSMCA_ERR_ARG, "unknown init mode");
	}

	/* Keys first; the store records the generations in one transaction;
	 * on any failure the new keys leave the token again. */
	if (mode == CA_INIT_ROOT_IN_HSM) {
		key_label(label, sizeof(label), "root", now);
		if ((ret = hsm_generate_key(c->hsm, cc->root_key_type, label,
		    &root_key, e)) != 0)
			goto out;
		if ((ret = ca_make_cert(c, cc->root_subject,
		    hsm_key_public(root_key), hsm_key_private(root_key), NULL,
		    cc->root_validity, -1, NULL, now, &root, e)) != 0)
			goto out;
	}
	if ((ret = issuing_key(c, now, &key, &g, e)) != 0)
		goto out;

	if ((ret = store_begin(c->st, e)) != 0)
		goto out;
	in_tx = 1;
	if (root != NULL) {
		rg.kind = STORE_GEN_ROOT;
		rg.status = STORE_GEN_ACTIVE;
		rg.key_uri = (char *)(uintptr_t)hsm_key_uri(root_key);
		rg.key_type = (char *)(uintptr_t)keytype_name(cc->root_key_type);
		rg.created_at = now;
		rg.activate_at = now;
		/* The root's id, which its CRL's URL names, is known once
		 * it is inserted: the issuing generation's certificate is
		 * signed inside this transaction, one signature. */
		if ((ret = gen_fill_cert(&rg, root, e)) != 0 ||
		    (ret = store_insert_generation(c->st, &rg, e)) != 0 ||
		    (ret = issuer_open(c->hsm, c->st, &rg, cc, &root_iss,
		    e)) != 0)
			goto out;
		g.parent_id = rg.id;
		out->root_id = rg.id;
	}
	if ((ret = issuing_cert(c, how, root_iss, key, now, &g,
	    &out->csr_pem, e)) != 0)
		goto out;
	if (how != SIGNER_EXTERNAL) {
		g.status = STORE_GEN_ACTIVE;
		g.activate_at = now;
	}
	if ((ret = store_insert_generation(c->st, &g, e)) != 0)
		goto out;
	if (root != NULL) {
		snprintf(label, sizeof(label), ", under root gen:%lld",
		    (long long)rg.id);
		if ((ret = ca_audit(c, AUDIT_CA_INIT, &rg, NULL, e)) != 0)
			goto out;
	}
	if ((ret = ca_audit(c, AUDIT_CA_INIT, &g, root != NULL ? label :
	    NULL, e)) != 0 || (ret = store_commit(c->st, e)) != 0)
		goto out;
	in_tx = 0;
	out->gen_id = g.id;
	ret = 0;
out:
	if (in_tx)
		store_rollback(c->st);
	if (ret != 0) {
		issuing_undo(c, key, &out->csr_pem, e);
		key_undo(c, root_key, e);
	}
	issuer_free(root_iss);
	gen_free_borrowed(&rg);
	gen_free_borrowed(&g);
	X509_free(root);
	hsm_key_free(root_key);
	hsm_key_free(key);
	return ret;
}

void
ca_init_result_free(struct ca_init_result *r)
{
	free(r->csr_pem);
	r->csr_pem = NULL;
}

/* Read every certificate of a PEM text. */
static int
pem_certs(const char *pem, STACK_OF(X509) **out, struct hsmca_err *e)
{
	STACK_OF(X509) *sk = sk_X509_new_null();
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;

	*out = NULL;
	if (sk == NULL || b == NULL) {
		sk_X509_free(sk);
		BIO_free(b);
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	}
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL)
		sk_X509_push(sk, x);
	ERR_clear_error();
	BIO_free(b);
	if (sk_X509_num(sk) == 0) {
		sk_X509_free(sk);
		return err_set(e, HSMCA_ERR_ARG, "no PEM certificate found");
	}
	*out = sk;
	return 0;
}

/* cert must be a CA certificate; with a chain, it must verify up to a
 * self-signed certificate of that chain at time now. Returns the chain
 * above cert as PEM (malloc'd; NULL when empty). */
static int
check_ca_chain(const X509 *cert, STACK_OF(X509) *all, time_t now,
    char **chain_pem, struct hsmca_err *e)
{
	X509_STORE *xs = NULL;
	X509_STORE_CTX *xc = NULL;
	STACK_OF(X509) *untrusted = NULL;
	BIO *b = NULL;
	int ret = HSMCA_ERR_ARG, nroots = 0;

	*chain_pem = NULL;
	if (X509_check_ca((X509 *)(uintptr_t)cert) != 1 ||
	    !(X509_get_key_usage((X509 *)(uintptr_t)cert) & KU_KEY_CERT_SIGN))
		return err_set(e, ret, "the certificate is not a CA "
		    "certificate (needs CA:TRUE and keyCertSign)");
	if (sk_X509_num(all) <= 1) {
		/* Self-signed: it is its own chain. */
		if (X509_check_issued((X509 *)(uintptr_t)cert,
		    (X509 *)(uintptr_t)cert) != X509_V_OK)
			return err_set(e, ret, "the certificate is not "
			    "self-signed: give its chain up to the root");
		return 0;
	}
	if ((xs = X509_STORE_new()) == NULL ||
	    (untrusted = sk_X509_new_null()) == NULL ||
	    (xc = X509_STORE_CTX_new()) == NULL ||
	    (b = BIO_new(BIO_s_mem())) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	for (int i = 1; i < sk_X509_num(all); i++) {
		X509 *x = sk_X509_value(all, i);

		if (X509_check_issued(x, x) == X509_V_OK) {
			X509_STORE_add_cert(xs, x);
			nroots++;
		} else
			sk_X509_push(untrusted, x);
		PEM_write_bio_X509(b, x);
	}
	if (nroots == 0) {
		err_set(e, ret, "the chain does not end in a self-signed root");
		goto out;
	}
	if (!X509_STORE_CTX_init(xc, xs, (X509 *)(uintptr_t)cert, untrusted))
		goto out;
	X509_STORE_CTX_set_time(xc, 0, now);
	if (X509_verify_cert(xc) != 1) {
		err_set(e, ret, "the CA certificate does not verify against "
		    "its chain: %s", X509_verify_cert_error_string(
		    X509_STORE_CTX_get_error(xc)));
		goto out;
	}
	if ((*chain_pem = util_bio_string(b, NULL)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	ret = 0;
out:
	BIO_free(b);
	X509_STORE_CTX_free(xc);
	X509_STORE_free(xs);
	sk_X509_free(untrusted);
	return ret;
}

static int
has_active(struct ca_ctx *c, int *active, struct hsmca_err *e)
{
	struct store_generation g;
	int ret;

	memset(&g, 0, sizeof(g));
	ret = store_active_generation(c->st, &g, e);
	store_generation_free_fields(&g);
	if (ret == HSMCA_ERR_CA_STATE) {
		err_clear(e);
		*active = 0;
		return 0;
	}
	*active = ret == 0;
	return ret;
}

int
ca_import_cert(struct ca_ctx *c, int64_t gen_id, const char *pem, time_t now,
    int64_t *gen_out, struct hsmca_err *e)
{
	STACK_OF(X509) *all = NULL;
	struct store_generation *v = NULL, g;
	struct hsm_key *key = NULL;
	size_t n = 0;
	X509 *cert;
	char *chain = NULL;
	int ret, active = 0, found = 0;

	memset(&g, 0, sizeof(g));
	if ((ret = pem_certs(pem, &all, e)) != 0)
		return ret;
	cert = sk_X509_value(all, 0);
	if ((ret = store_list_generations(c->st, &v, &n, e)) != 0)
		goto out;
	for (size_t i = 0; i < n; i++) {
		if (v[i].status != STORE_GEN_PENDING ||
		    (gen_id != 0 && v[i].id != gen_id))
			continue;
		found++;
		g = v[i];
		memset(&v[i], 0, sizeof(v[i]));
	}
	if (found != 1) {
		ret = err_set(e, HSMCA_ERR_NOT_FOUND, found == 0 ?
		    "no pending CA generation waits for a certificate" :
		    "several generations are pending: name one");
		goto out;
	}
	if ((ret = hsm_load_key(c->hsm, g.key_uri, &key, e)) != 0)
		goto out;
	if (X509_check_private_key(cert, hsm_key_public(key)) != 1) {
		ERR_clear_error();
		ret = err_set(e, HSMCA_ERR_ARG, "the certificate is not for "
		    "generation %lld: its public key differs", (long long)g.id);
		goto out;
	}
	if ((ret = check_ca_chain(cert, all, now, &chain, e)) != 0)
		goto out;
	if ((ret = lint_presign(cert, sk_X509_num(all) > 1 ?
	    sk_X509_value(all, 1) : cert, NULL, e)) != 0 &&
	    sk_X509_num(all) > 1)
		goto out;
	err_clear(e);
	if ((ret = has_active(c, &active, e)) != 0 ||
	    (ret = gen_fill_cert(&g, cert, e)) != 0)
		goto out;
	free(g.chain_pem);
	g.chain_pem = chain;
	chain = NULL;
	g.status = active ? STORE_GEN_INACTIVE : STORE_GEN_ACTIVE;
	/* A generation `ca rotate` made (it has a planned activate_at)
	 * waits activation-delay from now: only now can relying parties
	 * register it. */
	if (!active)
		g.activate_at = now;
	else if (g.activate_at != 0)
		g.activate_at = now + (time_t)c->cfg->ca.activation_delay;
	if ((ret = store_begin(c->st, e)) != 0)
		goto out;
	if ((ret = store_update_generation(c->st, &g, e)) != 0 ||
	    (ret = ca_audit(c, AUDIT_CA_IMPORT_CERT, &g, NULL, e)) != 0 ||
	    (ret = store_commit(c->st, e)) != 0) {
		store_rollback(c->st);
		goto out;
	}
	*gen_out = g.id;
	ret = 0;
out:
	free(chain);
	hsm_key_free(key);
	store_generation_free_fields(&g);
	store_generations_free(v, n);
	sk_X509_pop_free(all, X509_free);
	return ret;
}

/* The key types hsmca keeps CA keys in; anything else is refused. */
static int
import_key_type(const EVP_PKEY *pk, enum key_type *kt, struct hsmca_err *e)
{
	int bits = EVP_PKEY_get_bits(pk);

	if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC && bits == 256)
		*kt = KEY_EC_P256;
	else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_EC && bits == 384)
		*kt = KEY_EC_P384;
	else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA && bits == 2048)
		*kt = KEY_RSA_2048;
	else if (EVP_PKEY_get_base_id(pk) == EVP_PKEY_RSA && bits == 3072)
		*kt = KEY_RSA_3072;
	else
		return err_set(e, HSMCA_ERR_KEY_POLICY, "CA key %s-%d is not "
		    "supported: ec-p256, ec-p384, rsa-2048 or rsa-3072",
		    EVP_PKEY_get0_type_name(pk), bits);
	return 0;
}

static int
pass_cb(char *buf, int size, int rwflag, void *u)
{
	size_t len = strlen(u);

	if (len > (size_t)size)
		return -1;
	memcpy(buf, u, len);
	return (int)len;
}

int
ca_import(struct ca_ctx *c, const char *key_pem, size_t key_len,
    const char *passphrase_source, const char *cert_pem, time_t now,
    int64_t *gen_out, struct hsmca_err *e)
{
	STACK_OF(X509) *all = NULL;
	EVP_PKEY *pk = NULL;
	BIO *b = NULL;
	struct hsm_key *key = NULL;
	struct store_generation g;
	char *pass = NULL, *chain = NULL, label[96];
	X509 *cert;
	int ret, active = 0;
	enum key_type kt = KEY_EC_P256;

	memset(&g, 0, sizeof(g));
	if ((ret = pem_certs(cert_pem, &all, e)) != 0)
		return ret;
	cert = sk_X509_value(all, 0);
	if (passphrase_source != NULL &&
	    (ret = hsm_read_pin(passphrase_source, &pass, e)) != 0) {
		ret = err_set(e, HSMCA_ERR_ARG, "cannot read the key "
		    "passphrase from %s", passphrase_source);
		goto out;
	}
	if ((b = BIO_new_mem_buf(key_pem, (int)key_len)) == NULL ||
	    (pk = PEM_read_bio_PrivateKey(b, NULL, pass_cb,
	    pass != NULL ? pass : (char *)(uintptr_t)"")) == NULL) {
		ret = err_set_ssl(e, HSMCA_ERR_ARG, "cannot read the CA private "
		    "key (wrong passphrase, or not a PEM key)");
		goto out;
	}
	if (X509_check_private_key(cert, pk) != 1) {
		ret = err_set_ssl(e, HSMCA_ERR_ARG,
		    "the private key does not match the certificate");
		goto out;
	}
	if ((ret = check_ca_chain(cert, all, now, &chain, e)) != 0)
		goto out;
	if ((ret = import_key_type(pk, &kt, e)) != 0)
		goto out;
	key_label(label, sizeof(label), "imported", now);
	if ((ret = hsm_import_key(c->hsm, pk, label, &key, e)) != 0)
		goto out;
	if ((ret = has_active(c, &active, e)) != 0)
		goto undo;
	g.kind = STORE_GEN_ISSUING;
	g.status = active ? STORE_GEN_INACTIVE : STORE_GEN_ACTIVE;
	g.key_uri = strdup(hsm_key_uri(key));
	g.key_type = strdup(keytype_name(kt));
	g.chain_pem = chain;
	chain = NULL;
	g.created_at = now;
	g.activate_at = active ? 0 : now;
	if (g.key_uri == NULL || g.key_type == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto undo;
	}
	if ((ret = gen_fill_cert(&g, cert, e)) != 0 ||
	    (ret = store_begin(c->st, e)) != 0)
		goto undo;
	if ((ret = store_insert_generation(c->st, &g, e)) != 0 ||
	    (ret = ca_audit(c, AUDIT_CA_IMPORT, &g, NULL, e)) != 0 ||
	    (ret = store_commit(c->st, e)) != 0) {
		store_rollback(c->st);
		goto undo;
	}
	*gen_out = g.id;
	ret = 0;
	goto out;
undo:
	key_undo(c, key, e);
out:
	if (pass != NULL)
		util_freezero(pass, strlen(pass));
	free(chain);
	EVP_PKEY_free(pk);
	BIO_free(b);
	hsm_key_free(key);
	store_generation_free_fields(&g);
	sk_X509_pop_free(all, X509_free);
	return ret;
}

int
ca_open_active(struct ca_ctx *c, struct issuer **out, struct hsmca_err *e)
{
	struct store_generation g;
	int ret;

	memset(&g, 0, sizeof(g));
	if ((ret = store_active_generation(c->st, &g, e)) != 0)
		return ret;
	if (ca_effective_status(&g, clock_now()) == STORE_GEN_EXPIRED) {
		ret = err_set(e, HSMCA_ERR_CA_STATE, "the active CA generation "
		    "%lld expired; rotate the CA", (long long)g.id);
		goto out;
	}
	ret = issuer_open(c->hsm, c->st, &g, &c->cfg->ca, out, e);
out:
	store_generation_free_fields(&g);
	return ret;
}

static int
gen_pem(struct store *st, const struct store_generation *g, int with_chain,
    char **pem, struct hsmca_err *e)
{
	BIO *b = NULL;
	X509 *x = NULL;
	int ret = HSMCA_ERR_INTERNAL;

	*pem = NULL;
	if (g->cert_der == NULL)
		return err_set(e, HSMCA_ERR_CA_STATE, "generation %lld has no "
		    "certificate yet", (long long)g->id);
	if ((b = BIO_new(BIO_s_mem())) == NULL || (x = gen_x509(g)) == NULL ||
	    !PEM_write_bio_X509(b, x))
		goto out;
	if (with_chain && g->parent_id != 0) {
		struct store_generation parent;
		X509 *px;

		memset(&parent, 0, sizeof(parent));
		if ((ret = store_get_generation(st, g->parent_id, &parent,
		    e)) != 0)
			goto out;
		px = gen_x509(&parent);
		store_generation_free_fields(&parent);
		ret = HSMCA_ERR_INTERNAL;
		if (px == NULL || !PEM_write_bio_X509(b, px)) {
			X509_free(px);
			goto out;
		}
		X509_free(px);
	} else if (with_chain && g->chain_pem != NULL)
		BIO_puts(b, g->chain_pem);
	if ((*pem = util_bio_string(b, NULL)) == NULL)
		goto out;
	ret = 0;
out:
	if (ret == HSMCA_ERR_INTERNAL)
		err_set_ssl(e, ret, "cannot encode generation %lld",
		    (long long)g->id);
	X509_free(x);
	BIO_free(b);
	return ret;
}

int
ca_pem(struct ca_ctx *c, const struct store_generation *g, int with_chain,
    char **pem, struct hsmca_err *e)
{
	return gen_pem(c->st, g, with_chain, pem, e);
}

int
ca_issuer_pem(struct store *st, int64_t gen_id, char **pem,
    struct hsmca_err *e)
{
	struct store_generation g;
	int ret;

	*pem = NULL;
	memset(&g, 0, sizeof(g));
	if ((ret = store_get_generation(st, gen_id, &g, e)) == 0)
		ret = gen_pem(st, &g, 1, pem, e);
	store_generation_free_fields(&g);
	return ret;
}

/* ---- rotation ---- */

static const char *const event_names[CA_EVENT_KIND_MAX] = {
	[CA_EVENT_CREATED] = "created",
	[CA_EVENT_PENDING] = "pending",
	[CA_EVENT_ACTIVATED] = "activated",
	[CA_EVENT_RETIRED] = "retired",
	[CA_EVENT_EXPIRED] = "expired",
};

const char *
ca_event_kind_name(enum ca_event_kind k)
{
	if ((unsigned)k >= CA_EVENT_KIND_MAX)
		return "unknown";
	return event_names[k];
}

static void event_add(struct ca_events *ev, enum ca_event_kind k,
    int64_t gen_id, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static void
event_add(struct ca_events *ev, enum ca_event_kind k, int64_t gen_id,
    const char *fmt, ...)
{
	struct ca_event *x;
	va_list ap;

	if (ev == NULL || ev->n >= CA_EVENTS_MAX)
		return;
	x = &ev->ev[ev->n++];
	x->kind = k;
	x->gen_id = gen_id;
	va_start(ap, fmt);
	vsnprintf(x->msg, sizeof(x->msg), fmt, ap);
	va_end(ap);
}

/* The stored active issuing generation, or -1. */
static int
active_of(const struct store_generation *v, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == STORE_GEN_ISSUING &&
		    v[i].status == STORE_GEN_ACTIVE)
			return (int)i;
	return -1;
}

static int
index_of(const struct store_generation *v, size_t n, int64_t id)
{
	for (size_t i = 0; i < n; i++)
		if (v[i].id == id)
			return (int)i;
	return -1;
}

/* A generation newer than gen_id waiting to take over: issuing, pending
 * or inactive, not expired. -1 if none. */
static int
successor_of(const struct store_generation *v, size_t n, int64_t gen_id,
    time_t now)
{
	for (size_t i = 0; i < n; i++) {
		enum store_gen_status s = ca_effective_status(&v[i], now);

		if (v[i].kind == STORE_GEN_ISSUING && v[i].id > gen_id &&
		    (s == STORE_GEN_PENDING || s == STORE_GEN_INACTIVE))
			return (int)i;
	}
	return -1;
}

static int
successor_err(const struct store_generation *g, struct hsmca_err *e)
{
	char t[32];

	if (g->status == STORE_GEN_PENDING)
		return err_set(e, HSMCA_ERR_EXISTS, "CA generation %lld already "
		    "waits to take over, for its certificate (`hsmca ca "
		    "import-cert --gen %lld`); revoke it to start again",
		    (long long)g->id, (long long)g->id);
	if (g->activate_at != 0)
		return err_set(e, HSMCA_ERR_EXISTS, "CA generation %lld already "
		    "waits to take over, at %s (`hsmca ca activate %lld` for "
		    "now)", (long long)g->id, clock_format(g->activate_at, t,
		    sizeof(t)), (long long)g->id);
	return err_set(e, HSMCA_ERR_EXISTS, "CA generation %lld, newer than "
	    "the active one, is inactive: activate or revoke it first",
	    (long long)g->id);
}

/* What a new generation grows from: the active one, else the newest
 * issuing generation with a certificate. -1 if none. */
static int
template_of(const struct store_generation *v, size_t n)
{
	int t = active_of(v, n);

	if (t >= 0)
		return t;
	for (size_t i = 0; i < n; i++)
		if (v[i].kind == STORE_GEN_ISSUING && v[i].cert_der != NULL &&
		    (t < 0 || v[i].id > v[t].id))
			t = (int)i;
	return t;
}

/* The new generation is made the way t was: under t's root when that
 * root is in the token (root filled in), self-signed if t is, else for
 * an outside root. */
static int
rotate_mode(struct ca_ctx *c, const struct store_generation *t, time_t now,
    enum issuing_signer *mode, struct store_generation *root,
    struct hsmca_err *e)
{
	enum store_gen_status s;
	int ret;

	if (t->parent_id != 0) {
		if ((ret = store_get_generation(c->st, t->parent_id, root,
		    e)) != 0)
			return ret;
		s = ca_effective_status(root, now);
		if (root->kind != STORE_GEN_ROOT || root->cert_der == NULL ||
		    s != STORE_GEN_ACTIVE || now < root->not_before)
			return err_set(e, HSMCA_ERR_CA_STATE, "root generation "
			    "%lld is %s: it cannot sign a new generation",
			    (long long)root->id, store_gen_status_name(s));
		*mode = SIGNER_ROOT;
	} else if (t->chain_pem == NULL && t->issuer != NULL &&
	    t->subject != NULL && strcmp(t->issuer, t->subject) == 0)
		*mode = SIGNER_SELF;
	else
		*mode = SIGNER_EXTERNAL;
	return 0;
}

/* The next generation after the template, in the token and the store. */
int
ca_rotate(struct ca_ctx *c, time_t now, struct ca_rotate_result *out,
    struct hsmca_err *e)
{
	const struct config_ca *cc = &c->cfg->ca;
	struct store_generation *v = NULL, *w = NULL, root, g;
	struct hsm_key *key = NULL;
	struct issuer *root_iss = NULL;
	enum issuing_signer mode;
	size_t n = 0, nw = 0;
	char extra[160], when[32];
	int ret, t, s, in_tx = 0;
	int64_t tmpl_id;

	memset(out, 0, sizeof(*out));
	memset(&root, 0, sizeof(root));
	memset(&g, 0, sizeof(g));
	if ((ret = store_list_generations(c->st, &v, &n, e)) != 0)
		return ret;
	if ((t = template_of(v, n)) < 0) {
		ret = err_set(e, HSMCA_ERR_CA_STATE, "there is no CA generation "
		    "to rotate (`hsmca ca init` first)");
		goto out;
	}
	tmpl_id = v[t].id;
	if ((s = successor_of(v, n, tmpl_id, now)) >= 0) {
		ret = successor_err(&v[s], e);
		goto out;
	}
	if ((ret = rotate_mode(c, &v[t], now, &mode, &root, e)) != 0)
		goto out;
	/* The root's certificate, key and CRL URL. */
	if (mode == SIGNER_ROOT && (ret = issuer_open(c->hsm, c->st, &root,
	    cc, &root_iss, e)) != 0)
		goto out;

	if ((ret = issuing_key(c, now, &key, &g, e)) != 0 ||
	    (ret = issuing_cert(c, mode, root_iss, key, now, &g,
	    &out->csr_pem, e)) != 0)
		goto out;
	if (mode == SIGNER_ROOT)
		g.parent_id = root.id;
	if (mode != SIGNER_EXTERNAL)
		g.status = STORE_GEN_INACTIVE;
	/* For a CSR, the plan; ca_import_cert counts the delay from the
	 * import, since relying parties cannot register a CSR. */
	g.activate_at = now + (time_t)cc->activation_delay;

	/* Another process (hsmcad's timer, cron's `ca tick`) may have made
	 * a successor while the key was generated: look again, under the
	 * write lock. */
	if ((ret = store_begin(c->st, e)) != 0)
		goto out;
	in_tx = 1;
	if ((ret = store_list_generations(c->st, &w, &nw, e)) != 0)
		goto out;
	if ((s = successor_of(w, nw, tmpl_id, now)) >= 0) {
		ret = successor_err(&w[s], e);
		goto out;
	}
	if ((ret = store_insert_generation(c->st, &g, e)) != 0)
		goto out;
	if (g.status == STORE_GEN_PENDING)
		snprintf(extra, sizeof(extra), ", successor of gen:%lld, CSR "
		    "for an outside root", (long long)tmpl_id);
	else
		snprintf(extra, sizeof(extra), ", successor of gen:%lld%s, "
		    "activates at %s", (long long)tmpl_id, mode == SIGNER_ROOT ?
		    ", signed by the root" : ", self-signed",
		    clock_format(g.activate_at, when, sizeof(when)));
	if ((ret = ca_audit(c, AUDIT_CA_ROTATE, &g, extra, e)) != 0 ||
	    (ret = store_commit(c->st, e)) != 0)
		goto out;
	in_tx = 0;
	out->gen_id = g.id;
	out->root_id = mode == SIGNER_ROOT ? root.id : 0;
	out->status = g.status;
	out->activate_at = g.status == STORE_GEN_PENDING ? 0 : g.activate_at;
	out->not_after = g.status == STORE_GEN_PENDING ? 0 : g.not_after;
	ret = 0;
out:
	if (in_tx)
		store_rollback(c->st);
	if (ret != 0)
		issuing_undo(c, key, &out->csr_pem, e);
	gen_free_borrowed(&g);
	store_generation_free_fields(&root);
	store_generations_free(v, n);
	store_generations_free(w, nw);
	issuer_free(root_iss);
	hsm_key_free(key);
	return ret;
}

void
ca_rotate_result_free(struct ca_rotate_result *r)
{
	free(r->csr_pem);
	r->csr_pem = NULL;
}

struct pop_scan {
	char	prefix[48];
	int	seen;
};

static int
pop_scan_cb(void *arg, const struct store_audit *r)
{
	struct pop_scan *ps = arg;

	if (r->outcome != NULL && strcmp(r->outcome, "ok") == 0 &&
	    r->detail != NULL &&
	    strncmp(r->detail, ps->prefix, strlen(ps->prefix)) == 0) {
		ps->seen = 1;
		return 1;
	}
	return 0;
}

/* Whether the audit log records a proof of possession issued under
 * gen_id (lib/issue.c writes "generation N, profile pop, ..."). */
static int
pop_seen(struct ca_ctx *c, int64_t gen_id, int *seen, struct hsmca_err *e)
{
	struct store_audit_filter f;
	struct pop_scan ps;
	int ret;

	memset(&f, 0, sizeof(f));
	memset(&ps, 0, sizeof(ps));
	f.action = audit_action_name(AUDIT_POP);
	snprintf(ps.prefix, sizeof(ps.prefix), "generation %lld,",
	    (long long)gen_id);
	ret = store_audit_walk(c->st, &f, pop_scan_cb, &ps, NULL, e);
	if (ret < 0)
		return ret;
	*seen = ps.seen;
	return 0;
}

/* Retire v[a] (inactive, or expired if it has), then activate v[i]:
 * both records and their audit entries in the caller's transaction. */
static int
switch_active(struct ca_ctx *c, struct store_generation *v, int a, int i,
    time_t now, int pop, const char *why, struct ca_events *ev,
    struct hsmca_err *e)
{
	char extra[160];
	int ret;

	if (a >= 0) {
		v[a].status = v[a].not_after < now ? STORE_GEN_EXPIRED :
		    STORE_GEN_INACTIVE;
		/* 0: not scheduled, so it never comes back on its own. */
		v[a].activate_at = 0;
		snprintf(extra, sizeof(extra), ", retired: gen:%lld takes over",
		    (long long)v[i].id);
		if ((ret = store_update_generation(c->st, &v[a], e)) != 0 ||
		    (ret = ca_audit(c, AUDIT_CA_ROTATE, &v[a], extra, e)) != 0)
			return ret;
		event_add(ev, CA_EVENT_RETIRED, v[a].id, "CA generation %lld "
		    "retired (%s): it still verifies, generation %lld issues",
		    (long long)v[a].id, store_gen_status_name(v[a].status),
		    (long long)v[i].id);
	}
	v[i].status = STORE_GEN_ACTIVE;
	v[i].activate_at = now;
	snprintf(extra, sizeof(extra), "%s%s", why != NULL ? why : "",
	    pop ? "" : ", no proof of possession was issued under it");
	if ((ret = store_update_generation(c->st, &v[i], e)) != 0 ||
	    (ret = ca_audit(c, AUDIT_CA_ACTIVATE, &v[i], extra, e)) != 0)
		return ret;
	event_add(ev, CA_EVENT_ACTIVATED, v[i].id, "CA generation %lld "
	    "activated%s%s", (long long)v[i].id, why != NULL ? why : "",
	    pop ? "" : " (no proof of possession was ever issued under it)");
	return 0;
}

int
ca_activate(struct ca_ctx *c, int64_t gen_id, time_t now, int *pop,
    int64_t *retired, struct hsmca_err *e)
{
	struct store_generation *v = NULL;
	enum store_gen_status s;
	size_t n = 0;
	int ret, i, a, in_tx = 0;

	*pop = 0;
	*retired = 0;
	if ((ret = store_begin(c->st, e)) != 0)
		return ret;
	in_tx = 1;
	if ((ret = store_list_generations(c->st, &v, &n, e)) != 0)
		goto out;
	if ((i = index_of(v, n, gen_id)) < 0) {
		ret = err_set(e, HSMCA_ERR_NOT_FOUND, "no CA generation %lld",
		    (long long)gen_id);
		goto out;
	}
	s = ca_effective_status(&v[i], now);
	if (v[i].kind != STORE_GEN_ISSUING)
		ret = err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld is a "
		    "root: only issuing generations become active",
		    (long long)gen_id);
	else if (s == STORE_GEN_ACTIVE)
		ret = err_set(e, HSMCA_ERR_EXISTS, "CA generation %lld is "
		    "already active", (long long)gen_id);
	else if (s == STORE_GEN_PENDING)
		ret = err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld has no "
		    "certificate yet (`hsmca ca import-cert --gen %lld`)",
		    (long long)gen_id, (long long)gen_id);
	else if (s != STORE_GEN_INACTIVE)
		ret = err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld is %s: "
		    "it cannot become active", (long long)gen_id,
		    store_gen_status_name(s));
	else if (now < v[i].not_before)
		ret = err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld is not "
		    "valid yet; check the clock", (long long)gen_id);
	if (ret != 0)
		goto out;
	if ((ret = pop_seen(c, gen_id, pop, e)) != 0)
		goto out;
	a = active_of(v, n);
	if ((ret = switch_active(c, v, a, i, now, *pop, " by hand", NULL,
	    e)) != 0 || (ret = store_commit(c->st, e)) != 0)
		goto out;
	in_tx = 0;
	*retired = a >= 0 ? v[a].id : 0;
out:
	if (in_tx)
		store_rollback(c->st);
	store_generations_free(v, n);
	return ret;
}

int
ca_revoke(struct ca_ctx *c, int64_t gen_id, int reason, time_t now,
    int *was_active, struct hsmca_err *e)
{
	struct store_generation g;
	enum store_gen_status s;
	char extra[64];
	int ret, in_tx = 1;

	*was_active = 0;
	memset(&g, 0, sizeof(g));
	if (reason < 0 || reason > STORE_REASON_MAX || reason == 7 ||
	    reason == 8)
		return err_set(e, HSMCA_ERR_ARG, "revocation reason %d is not "
		    "one a CA certificate is revoked with", reason);
	if ((ret = store_begin(c->st, e)) != 0)
		return ret;
	if ((ret = store_get_generation(c->st, gen_id, &g, e)) != 0)
		goto out;
	s = ca_effective_status(&g, now);
	if (g.kind != STORE_GEN_ISSUING)
		ret = err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld is a "
		    "root: distrust it where it is installed instead",
		    (long long)gen_id);
	else if (s == STORE_GEN_REVOKED)
		ret = err_set(e, HSMCA_ERR_EXISTS, "CA generation %lld is "
		    "already revoked", (long long)gen_id);
	else if (s == STORE_GEN_EXPIRED)
		ret = err_set(e, HSMCA_ERR_CA_STATE, "CA generation %lld has "
		    "expired: nothing is issued or trusted under it anyway",
		    (long long)gen_id);
	if (ret != 0)
		goto out;
	*was_active = g.status == STORE_GEN_ACTIVE;
	g.status = STORE_GEN_REVOKED;
	g.activate_at = 0;
	g.revoked_at = now;
	free(g.revoke_reason);
	if ((g.revoke_reason = strdup(crl_reason_name(reason))) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	snprintf(extra, sizeof(extra), ", reason %s", g.revoke_reason);
	if ((ret = store_update_generation(c->st, &g, e)) != 0 ||
	    (ret = ca_audit(c, AUDIT_CA_REVOKE, &g, extra, e)) != 0 ||
	    (ret = store_commit(c->st, e)) != 0)
		goto out;
	in_tx = 0;
out:
	if (in_tx)
		store_rollback(c->st);
	store_generation_free_fields(&g);
	return ret;
}

/* Activations, retirements and expiries due at now, in one transaction. */
static int
tick_status(struct ca_ctx *c, time_t now, struct ca_events *ev,
    struct hsmca_err *e)
{
	struct store_generation *v = NULL;
	size_t n = 0;
	char t[32];
	int ret, a, due = -1, pop = 0, dead, in_tx = 1;

	if ((ret = store_begin(c->st, e)) != 0)
		return ret;
	if ((ret = store_list_generations(c->st, &v, &n, e)) != 0)
		goto out;
	a = active_of(v, n);
	/* An active generation that expired issues nothing: its successor
	 * takes over at once rather than at its date. */
	dead = a >= 0 && v[a].not_after < now;
	for (size_t i = 0; i < n; i++) {
		if (v[i].kind != STORE_GEN_ISSUING ||
		    v[i].status != STORE_GEN_INACTIVE ||
		    v[i].activate_at == 0 || v[i].cert_der == NULL ||
		    now < v[i].not_before || v[i].not_after < now)
			continue;
		if ((v[i].activate_at <= now || dead) &&
		    (due < 0 || v[i].id > v[due].id))
			due = (int)i;
	}
	if (due >= 0) {
		if ((ret = pop_seen(c, v[due].id, &pop, e)) != 0 ||
		    (ret = switch_active(c, v, a, due, now, pop,
		    v[due].activate_at > now ? ", early: the active generation "
		    "expired" : NULL, ev, e)) != 0)
			goto out;
	}
	for (size_t i = 0; i < n; i++) {
		if ((v[i].status != STORE_GEN_ACTIVE &&
		    v[i].status != STORE_GEN_INACTIVE) ||
		    v[i].cert_der == NULL || v[i].not_after >= now)
			continue;
		v[i].status = STORE_GEN_EXPIRED;
		if ((ret = store_update_generation(c->st, &v[i], e)) != 0 ||
		    (ret = ca_audit(c, AUDIT_CA_ROTATE, &v[i], ", expired",
		    e)) != 0)
			goto out;
		event_add(ev, CA_EVENT_EXPIRED, v[i].id, "CA %s generation "
		    "%lld expired at %s", store_gen_kind_name(v[i].kind),
		    (long long)v[i].id, clock_format(v[i].not_after, t,
		    sizeof(t)));
	}
	if ((ret = store_commit(c->st, e)) != 0)
		goto out;
	in_tx = 0;
out:
	if (in_tx)
		store_rollback(c->st);
	store_generations_free(v, n);
	return ret;
}

int
ca_rotation_tick(struct ca_ctx *c, time_t now, struct ca_events *ev,
    struct hsmca_err *e)
{
	struct store_generation *v = NULL;
	struct ca_rotate_result r;
	size_t n = 0;
	char t[32];
	int ret, a;

	if (ev != NULL)
		memset(ev, 0, sizeof(*ev));
	if ((ret = tick_status(c, now, ev, e)) != 0)
		return ret;
	if ((ret = store_list_generations(c->st, &v, &n, e)) != 0)
		return ret;
	a = active_of(v, n);
	if (a < 0 || v[a].cert_der == NULL ||
	    now < v[a].not_after - (time_t)c->cfg->ca.renew_before ||
	    successor_of(v, n, v[a].id, now) >= 0) {
		store_generations_free(v, n);
		return 0;
	}
	store_generations_free(v, n);
	if ((ret = ca_rotate(c, now, &r, e)) != 0) {
		/* Someone else made it meanwhile: nothing to do here. */
		if (ret == HSMCA_ERR_EXISTS) {
			err_clear(e);
			return 0;
		}
		return ret;
	}
	if (r.status == STORE_GEN_PENDING)
		event_add(ev, CA_EVENT_PENDING, r.gen_id, "CA generation %lld "
		    "created, pending: get its CSR (`hsmca ca download --csr "
		    "%lld`) signed by your root, then `hsmca ca import-cert "
		    "--gen %lld`", (long long)r.gen_id, (long long)r.gen_id,
		    (long long)r.gen_id);
	else if (r.not_after <= r.activate_at) {
		char t2[32];

		event_add(ev, CA_EVENT_CREATED, r.gen_id, "CA generation %lld "
		    "created (%s), but it ends at %s with the root, before it "
		    "would become active at %s: activate it sooner (`hsmca ca "
		    "activate %lld`) and plan a new root", (long long)r.gen_id,
		    r.root_id != 0 ? "signed by the root" : "self-signed",
		    clock_format(r.not_after, t, sizeof(t)),
		    clock_format(r.activate_at, t2, sizeof(t2)),
		    (long long)r.gen_id);
	} else
		event_add(ev, CA_EVENT_CREATED, r.gen_id, "CA generation %lld "
		    "created (%s), inactive until %s", (long long)r.gen_id,
		    r.root_id != 0 ? "signed by the root" : "self-signed",
		    clock_format(r.activate_at, t, sizeof(t)));
	ca_rotate_result_free(&r);
	return 0;
}
