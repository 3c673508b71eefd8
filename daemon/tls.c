/* tls.c: the TLS side of the front. TLS 1.2 and 1.3 only, modern AEAD
 * ciphers, a client certificate requested on every connection. The
 * handshake accepts any client chain and records the result; every
 * endpoint then decides against its own trust (a label's factory CA, or
 * hsmca's own generations), so a refusal is an HTTP status with a reason
 * rather than an opaque TLS alert. */
#include "config.h"

#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "hsmca/hsm.h"

#include "hsmcad.h"
#include "log.h"

static int conn_index = -1;

/* Count open TLS connections: +1 when one is accepted, -1 when its SSL
 * object goes away, whether or not it ever sent a request. (evhttp's
 * timeout covers the handshake too: a client that never finishes it is
 * dropped like an idle one.) */
static void
conn_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct hsmcad *d = ptr;

	if (d != NULL)
		d->nconn--;
}

static int
accept_any_chain(int preverify_ok, X509_STORE_CTX *ctx)
{
	return 1;
}

static int
client_hello_cb(SSL *ssl, int *alert, void *arg)
{
	struct hsmcad *d = arg;

	if (d->draining || d->nconn > d->rt->cfg->daemon.max_connections) {
		*alert = SSL_AD_INTERNAL_ERROR;
		return SSL_CLIENT_HELLO_ERROR;
	}
	return SSL_CLIENT_HELLO_SUCCESS;
}

SSL_CTX *
tls_server_ctx(struct hsmcad *d, struct hsmca_err *e)
{
	const struct config_daemon *dc = &d->rt->cfg->daemon;
	SSL_CTX *ctx = NULL;
	struct hsm_key *key = NULL;

	if (conn_index == -1)
		conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    conn_free_cb);
	if (dc->tls_cert == NULL || dc->tls_key == NULL) {
		err_set(e, HSMCA_ERR_CONFIG, "[daemon] tls-cert and tls-key "
		    "are required");
		return NULL;
	}
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL)
		goto fail;
	SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
	SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
	SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION |
	    SSL_OP_NO_RENEGOTIATION | SSL_OP_CIPHER_SERVER_PREFERENCE);
	if (!SSL_CTX_set_cipher_list(ctx,
	    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
	    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
	    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"))
		goto fail;
	if (!SSL_CTX_use_certificate_chain_file(ctx, dc->tls_cert)) {
		err_set_ssl(e, HSMCA_ERR_CONFIG, "tls-cert %s", dc->tls_cert);
		goto out;
	}
	if (strncmp(dc->tls_key, "pkcs11:", 7) == 0) {
		/* The server key may live in the token too. */
		if (hsm_load_key(d->hsm, dc->tls_key, &key, e) != 0)
			goto out;
		if (!SSL_CTX_use_PrivateKey(ctx, hsm_key_private(key))) {
			err_set_ssl(e, HSMCA_ERR_CONFIG, "tls-key %s", dc->tls_key);
			goto out;
		}
	} else if (!SSL_CTX_use_PrivateKey_file(ctx, dc->tls_key,
	    SSL_FILETYPE_PEM)) {
		err_set_ssl(e, HSMCA_ERR_CONFIG, "tls-key %s", dc->tls_key);
		goto out;
	}
	if (!SSL_CTX_check_private_key(ctx)) {
		err_set_ssl(e, HSMCA_ERR_CONFIG, "tls-key does not match "
		    "tls-cert");
		goto out;
	}
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE,
	    accept_any_chain);
	SSL_CTX_set_verify_depth(ctx, 8);
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, d);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"hsmcad", 6);
	/* The SSL_CTX holds its own reference to the key. */
	hsm_key_free(key);
	return ctx;
fail:
	err_set_ssl(e, HSMCA_ERR_INTERNAL, "TLS setup");
out:
	hsm_key_free(key);
	SSL_CTX_free(ctx);
	return NULL;
}

struct bufferevent *
tls_bevcb(struct event_base *base, void *arg)
{
	struct hsmcad *d = arg;
	struct bufferevent *bev;
	SSL *ssl;

	if ((ssl = SSL_new(d->ssl)) == NULL)
		return NULL;
	d->nconn++;
	SSL_set_ex_data(ssl, conn_index, d);	/* counted down by SSL_free */
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		SSL_free(ssl);
	return bev;
}
