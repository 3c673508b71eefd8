/* runtime.c: what hsmcad reloads on SIGHUP: the config, hsmca's own
 * trust (every generation a device certificate may chain to), each EST
 * label's bootstrap trust, and the cacerts answer. */
#include "config.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/pkcs7.h>

#include "hsmca/ca.h"
#include "hsmca/clock.h"

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
	char *text = NULL;
	size_t len = 0;
	FILE *fp;
	int ok;

	/* A copy of the running config, not the file again: a rotation
	 * must not pick up a half-edited file (that is SIGHUP's job). The
	 * normalized form parses back to an equal config. */
	if ((fp = open_memstream(&text, &len)) == NULL) {
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		return NULL;
	}
	ok = config_print(rt->cfg, fp) == 0;
	if (fclose(fp) != 0 || !ok) {
		free(text);
		err_set(e, HSMCA_ERR_INTERNAL, "cannot copy the running config");
		return NULL;
	}
	ok = config_parse(text, len, rt->cfg->path, &cfg, e) == 0;
	free(text);
	if (!ok)
		return NULL;
	return runtime_build(cfg, st, e);
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
	sk_X509_pop_free(rt->cacerts, X509_free);
	free(rt->cacerts_p7);
	config_free(rt->cfg);
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

struct runtime *
runtime_build(struct config *cfg, struct store *st, struct hsmca_err *e)
{
	struct runtime *rt = NULL;
	struct store_generation *v = NULL;
	size_t n = 0;
	time_t now = clock_now();

	if ((rt = calloc(1, sizeof(*rt))) == NULL) {
		config_free(cfg);
		err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		return NULL;
	}
	atomic_init(&rt->refs, 1);
	rt->cfg = cfg;
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
		    X509_STORE_load_file(rt->bootstrap[i], f) != 1) {
			err_set_ssl(e, HSMCA_ERR_CONFIG, "bootstrap-ca %s of EST "
			    "label '%s' is unreadable", f, cfg->est[i].label);
			goto fail;
		}
	}
	if (cfg->admin.client_ca != NULL &&
	    ((rt->admin_trust = X509_STORE_new()) == NULL ||
	    X509_STORE_load_file(rt->admin_trust, cfg->admin.client_ca) != 1)) {
		err_set_ssl(e, HSMCA_ERR_CONFIG, "[admin] client-ca %s is "
		    "unreadable", cfg->admin.client_ca);
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
	if (est_certs_only(rt->cacerts, &rt->cacerts_p7, &rt->cacerts_p7_len) != 0) {
		err_set_ssl(e, HSMCA_ERR_INTERNAL, "cannot build cacerts");
		goto fail;
	}
	return rt;
fail:
	runtime_unref(rt);
	return NULL;
}
