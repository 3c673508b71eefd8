/* runtime.c: what hsmcad reloads on SIGHUP: the config, hsmca's own
 * trust (every generation a device certificate may chain to), each EST
 * label's bootstrap trust, the admin API's, the CA names the TLS
 * handshake sends for them, and the cacerts answer. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include "hsmca/ca.h"
#include "hsmca/clock.h"
#include "hsmca/fileset.h"

#include "hsmcad.h"
#include "log.h"

int
est_certs_only(STACK_OF(X509) *certs, unsigned char **der, size_t *len)
{
	PKCS7 *p7 = NULL;
	unsigned char *out = NULL;
	int n, ret = -1;

	*der = NULL;
	if ((p7 = PKCS7_new()) == NULL ||
	    !PKCS7_set_type(p7, NID_pkcs7_signed) ||
	    !PKCS7_content_new(p7, NID_pkcs7_data))
		goto out;
	for (int i = 0; i < sk_X509_num(certs); i++)
		if (!PKCS7_add_certificate(p7, sk_X509_value(certs, i)))
			goto out;
	if ((n = i2d_PKCS7(p7, &out)) <= 0 || (*der = malloc((size_t)n)) == NULL)
		goto out;
	memcpy(*der, out, (size_t)n);
	*len = (size_t)n;
	ret = 0;
out:
	OPENSSL_free(out);
	PKCS7_free(p7);
	return ret;
}

static atomic_uint_least64_t runtime_ids;

static int
x509_cmp(const X509 *const *a, const X509 *const *b)
{
	return X509_cmp(*a, *b);
}

struct runtime *
runtime_rebuild(const struct runtime *rt, struct store *st,
    struct hsmca_err *e)
{
	struct config *cfg = NULL;
	struct fileset *fs;

	/* The running config parsed again from the bytes it was read from,
	 * not the files: a rotation must not pick up a half-edited file
	 * (that is SIGHUP's job). */
	if ((fs = fileset_dup(rt->fs)) == NULL) {
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		return NULL;
	}
	if (config_load_fileset(fs, rt->cfg->path, &cfg, e) != 0) {
		fileset_free(fs);
		return NULL;
	}
	return runtime_build(cfg, fs, st, e);
}

struct runtime *
runtime_ref(struct runtime *rt)
{
	atomic_fetch_add(&rt->refs, 1);
	return rt;
}

void
runtime_unref(struct runtime *rt)
{
	if (rt == NULL || atomic_fetch_sub(&rt->refs, 1) != 1)
		return;
	for (size_t i = 0; rt->bootstrap != NULL && i < rt->cfg->nest; i++)
		X509_STORE_free(rt->bootstrap[i]);
	free(rt->bootstrap);
	X509_STORE_free(rt->ca_trust);
	X509_STORE_free(rt->admin_trust);
	sk_X509_NAME_pop_free(rt->est_ca_names, X509_NAME_free);
	sk_X509_NAME_pop_free(rt->admin_ca_names, X509_NAME_free);
	sk_X509_pop_free(rt->cacerts, X509_free);
	free(rt->cacerts_p7);
	config_free(rt->cfg);
	fileset_free(rt->fs);
	free(rt);
}

static int
add_pem_certs(STACK_OF(X509) *sk, X509_STORE *xs, const char *pem)
{
	BIO *b = BIO_new_mem_buf(pem, -1);
	X509 *x;

	if (b == NULL)
		return -1;
	while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		X509_STORE_add_cert(xs, x);
		/* Generations may share a chain: list each certificate once. */
		if (sk_X509_find(sk, x) >= 0 || !sk_X509_push(sk, x))
			X509_free(x);
	}
	ERR_clear_error();
	BIO_free(b);
	return 0;
}

/* The subjects of the certificates xs holds, each added to names unless
 * it is there already (labels may share a factory CA, a label may name
 * hsmca's own): 0, or -1 out of memory. */
static int
add_trust_names(STACK_OF(X509_NAME) *names, X509_STORE *xs)
{
	STACK_OF(X509_OBJECT) *objs;
	X509_NAME *name;
	X509 *x;
	int i, j;

	if (xs == NULL)
		return 0;
	objs = X509_STORE_get0_objects(xs);
	for (i = 0; i < sk_X509_OBJECT_num(objs); i++) {
		if ((x = X509_OBJECT_get0_X509(sk_X509_OBJECT_value(objs,
		    i))) == NULL)
			continue;	/* a CRL */
		for (j = 0; j < sk_X509_NAME_num(names); j++)
			if (X509_NAME_cmp(sk_X509_NAME_value(names, j),
			    X509_get_subject_name(x)) == 0)
				break;
		if (j < sk_X509_NAME_num(names))
			continue;
		if ((name = X509_NAME_dup(X509_get_subject_name(x))) == NULL ||
		    !sk_X509_NAME_push(names, name)) {
			X509_NAME_free(name);
			return -1;
		}
	}
	return 0;
}

/* A CertificateRequest carries its names under a 16-bit length (in TLS
 * 1.3 inside the extensions, which share it): OpenSSL fails every
 * handshake whose names do not fit. Past this, none are sent. */
#define CA_NAMES_MAX	49152

static void
ca_names_cap(STACK_OF(X509_NAME) *names, const char *what)
{
	size_t total = 0;
	int n;

	for (int i = 0; i < sk_X509_NAME_num(names); i++)
		if ((n = i2d_X509_NAME(sk_X509_NAME_value(names, i),
		    NULL)) > 0)
			total += 2 + (size_t)n;
	if (total <= CA_NAMES_MAX)
		return;
	log_warnx("the %d CA names of %s take %zu bytes, over %d: the TLS "
	    "handshake names none", sk_X509_NAME_num(names), what, total,
	    CA_NAMES_MAX);
	while (sk_X509_NAME_num(names) > 0)
		X509_NAME_free(sk_X509_NAME_pop(names));
}

/* Certificates (and CRLs) of a PEM file the snapshot holds into xs. */
static int
load_trust(X509_STORE *xs, const struct fileset *fs, const char *path,
    struct hsmca_err *e)
{
	STACK_OF(X509_INFO) *infos = NULL;
	const unsigned char *data;
	size_t len;
	BIO *b = NULL;
	int n = 0, ret = -1;

	if (fileset_data(fs, path, &data, &len, e) != 0)
		return -1;
	if ((b = BIO_new_mem_buf(data, (int)len)) == NULL ||
	    (infos = PEM_X509_INFO_read_bio(b, NULL, NULL, NULL)) == NULL) {
		err_set_ssl(e, HSMCA_ERR_CONFIG, "%s", path);
		goto out;
	}
	for (int i = 0; i < sk_X509_INFO_num(infos); i++) {
		X509_INFO *xi = sk_X509_INFO_value(infos, i);

		if ((xi->x509 != NULL && !X509_STORE_add_cert(xs, xi->x509)) ||
		    (xi->crl != NULL && !X509_STORE_add_crl(xs, xi->crl))) {
			err_set_ssl(e, HSMCA_ERR_CONFIG, "%s", path);
			goto out;
		}
		n += (xi->x509 != NULL) + (xi->crl != NULL);
	}
	if (n == 0) {
		err_set(e, HSMCA_ERR_CONFIG, "%s holds no certificate", path);
		goto out;
	}
	ret = 0;
out:
	sk_X509_INFO_pop_free(infos, X509_INFO_free);
	BIO_free(b);
	return ret;
}

struct runtime *
runtime_build(struct config *cfg, struct fileset *fs, struct store *st,
    struct hsmca_err *e)
{
	struct runtime *rt = NULL;
	struct store_generation *v = NULL;
	struct hsmca_err fe;
	size_t n = 0;
	time_t now = clock_now();

	if ((rt = calloc(1, sizeof(*rt))) == NULL) {
		config_free(cfg);
		fileset_free(fs);
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		return NULL;
	}
	atomic_init(&rt->refs, 1);
	rt->id = atomic_fetch_add(&runtime_ids, 1) + 1;
	rt->cfg = cfg;
	rt->fs = fs;
	if ((rt->ca_trust = X509_STORE_new()) == NULL ||
	    (rt->cacerts = sk_X509_new(x509_cmp)) == NULL ||
	    (rt->bootstrap = calloc(cfg->nest + 1, sizeof(X509_STORE *))) == NULL) {
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < cfg->nest; i++) {
		const char *f = cfg->est[i].bootstrap_ca;

		if (f == NULL)
			continue;
		if ((rt->bootstrap[i] = X509_STORE_new()) == NULL ||
		    load_trust(rt->bootstrap[i], fs, f, &fe) != 0) {
			err_set(e, HSMCA_ERR_CONFIG, "bootstrap-ca of EST label "
			    "'%s' is unreadable: %s", cfg->est[i].label,
			    rt->bootstrap[i] == NULL ? "out of memory" : fe.msg);
			goto fail;
		}
	}
	if (cfg->admin.client_ca != NULL &&
	    ((rt->admin_trust = X509_STORE_new()) == NULL ||
	    load_trust(rt->admin_trust, fs, cfg->admin.client_ca, &fe) != 0)) {
		err_set(e, HSMCA_ERR_CONFIG, "[admin] client-ca is unreadable: "
		    "%s", rt->admin_trust == NULL ? "out of memory" : fe.msg);
		goto fail;
	}
	if (store_list_generations(st, &v, &n, e) != 0)
		goto fail;
	/* Every generation a device may meet: active and inactive issuing
	 * generations still valid, their roots, and external chains. */
	for (size_t i = 0; i < n; i++) {
		enum store_gen_status status = ca_effective_status(&v[i], now);
		const unsigned char *p = v[i].cert_der;
		X509 *x;

		if (p == NULL || (status != STORE_GEN_ACTIVE &&
		    status != STORE_GEN_INACTIVE))
			continue;
		if ((x = d2i_X509(NULL, &p, (long)v[i].cert_der_len)) == NULL)
			continue;
		X509_STORE_add_cert(rt->ca_trust, x);
		sk_X509_push(rt->cacerts, x);
		if (v[i].chain_pem != NULL)
			add_pem_certs(rt->cacerts, rt->ca_trust, v[i].chain_pem);
	}
	store_generations_free(v, n);
	/* The names follow trust, so they are made where it is: at start,
	 * on SIGHUP and whenever the generations change. */
	if ((rt->est_ca_names = sk_X509_NAME_new_null()) == NULL ||
	    (rt->admin_ca_names = sk_X509_NAME_new_null()) == NULL ||
	    add_trust_names(rt->est_ca_names, rt->ca_trust) != 0 ||
	    add_trust_names(rt->admin_ca_names, rt->admin_trust) != 0) {
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto fail;
	}
	for (size_t i = 0; i < cfg->nest; i++)
		if (add_trust_names(rt->est_ca_names, rt->bootstrap[i]) != 0) {
			err_set(e, HSMCA_ERR_ALLOC, "out of memory");
			goto fail;
		}
	ca_names_cap(rt->est_ca_names, "hsmca's generations and the "
	    "bootstrap-ca files");
	ca_names_cap(rt->admin_ca_names, "[admin] client-ca");
	if (est_certs_only(rt->cacerts, &rt->cacerts_p7, &rt->cacerts_p7_len) != 0) {
		err_set_ssl(e, HSMCA_ERR_INTERNAL, "cannot build cacerts");
		goto fail;
	}
	return rt;
fail:
	runtime_unref(rt);
	return NULL;
}
