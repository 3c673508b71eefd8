/* tls.c: the TLS side of the front. TLS 1.2 and 1.3 only, modern AEAD
 * ciphers, a client certificate requested on every connection. The
 * handshake accepts any client chain and records the result; every
 * endpoint then decides against its own trust (a label's factory CA, or
 * hsmca's own generations), so a refusal is an HTTP status with a reason
 * rather than an opaque TLS alert. */
#include "config.h"

#include <stdlib.h>
#include <string.h>

#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <event2/http.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#include "hsmca/hsm.h"

#include "hsmcad.h"
#include "log.h"

static int conn_index = -1;
static int chain_index = -1;	/* a resumed session's intermediates */

/* What a session ticket carries besides the session: the intermediate
 * certificates the client sent in its full handshake, DER one after the
 * other. OpenSSL keeps only the client's own certificate in a session, so
 * a device whose certificate chains through an intermediate would be
 * refused once it resumed. */
#define TICKET_CHAIN_MAX	8192

/*
 * One accepted connection. evhttp's timeout is an idle timeout: a client
 * that sends a byte now and then never trips it (slowloris: headers, a
 * body or a TLS handshake dribbled a byte at a time). So a connection also
 * has a request deadline: a request must arrive whole within `timeout` of
 * its first byte, and a TLS connection must finish its handshake and first
 * request within `timeout` of being accepted; otherwise its socket is shut
 * down and evhttp frees its side. evhttp has no callback for either event,
 * so the connection's buffers tell: bytes added to the input while no
 * request is being timed start the clock, bytes added to the output (the
 * answer) stop it. A request being answered is never timed out: evhttp
 * reads nothing while it answers, and est.c and admin.c hold the
 * connection (tls_conn_hold) while the signer works, so the struct
 * outlives its bufferevent when the client leaves first.
 *
 * Both are allocated with the bufferevent, at the accept, and counted on
 * their listener from then on (listener.c). TLS connections are gone with
 * the SSL object (conn_free_cb), plain HTTP ones with evhttp's connection
 * (its close callback, set first thing after the accept: plain_adopt).
 */
struct tls_conn {
	struct hsmcad		*d;
	struct listener		*l;		/* counted there until gone */
	struct bufferevent	*bev;		/* NULL: the connection is gone */
	struct event		*deadline;
	struct evbuffer_cb_entry *in_cb, *out_cb;
	int			 busy;		/* requests being answered */
	int			 adopting;	/* plain: evhttp's connection
						   not yet known */
	tls_gate_fn		 gate;		/* not yet asked: its listener's */
	int			 refused;	/* the gate answered: discard */
};

static void plain_adopt(struct tls_conn *);

static void
conn_deadline_arm(struct tls_conn *c)
{
	struct timeval tv = { (time_t)c->d->rt->cfg->daemon.timeout, 0 };

	evtimer_add(c->deadline, &tv);
}

static void
conn_deadline_cb(evutil_socket_t fd, short what, void *arg)
{
	struct tls_conn *c = arg;
	evutil_socket_t sock;

	if (c->adopting) {
		plain_adopt(c);
		return;
	}
	/* Reading is off while evhttp answers a request. */
	if (c->busy > 0 || !(bufferevent_get_enabled(c->bev) & EV_READ)) {
		conn_deadline_arm(c);
		return;
	}
	/* Shut the socket down rather than free anything: evhttp sees the
	 * connection end and frees its own state (and so ours). */
	if ((sock = bufferevent_getfd(c->bev)) != -1) {
		log_debug("dropping a connection that sent no complete request "
		    "within the timeout");
		(void)shutdown(sock, SHUT_RDWR);
	}
}

/* The connection's first bytes, the handshake done: its listener's gate
 * decides on the client certificate before evhttp parses anything. 1 if
 * it refused the connection: its answer is queued, the bytes are gone. */
static int
conn_gate(struct tls_conn *c, struct evbuffer *buf)
{
	tls_gate_fn gate = c->gate;
	struct evbuffer *answer;
	SSL *ssl;

	c->gate = NULL;
	if ((ssl = bufferevent_openssl_get_ssl(c->bev)) == NULL ||
	    (answer = evbuffer_new()) == NULL) {
		/* Refuse without a word rather than serve unchecked. */
		c->refused = 1;
		evbuffer_drain(buf, evbuffer_get_length(buf));
		(void)shutdown(bufferevent_getfd(c->bev), SHUT_RDWR);
		return 1;
	}
	if (gate(c->d, ssl, buf, answer) == 0) {
		evbuffer_free(answer);
		return 0;
	}
	c->refused = 1;
	evbuffer_drain(buf, evbuffer_get_length(buf));
	bufferevent_write_buffer(c->bev, answer);
	evbuffer_free(answer);
	/* evhttp writes only once it has a request to answer. */
	bufferevent_enable(c->bev, EV_WRITE);
	/* Writing stopped the clock: the discard lasts at most `timeout`. */
	conn_deadline_arm(c);
	return 1;
}

/* The first byte of a request starts its clock. A refused connection's
 * bytes are dropped as they come: evhttp never sees them. */
static void
conn_input_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct tls_conn *c = arg;

	if (info->n_added == 0)
		return;
	if (c->gate != NULL && conn_gate(c, buf))
		return;
	if (c->refused) {
		evbuffer_drain(buf, evbuffer_get_length(buf));
		return;
	}
	if (!evtimer_pending(c->deadline, NULL))
		conn_deadline_arm(c);
}

/* A request arrived whole: stop its clock, and start the next one's if
 * its first bytes came along (pipelined). */
static void
conn_request_done(struct tls_conn *c)
{
	evtimer_del(c->deadline);
	if (evbuffer_get_length(bufferevent_get_input(c->bev)) > 0)
		conn_deadline_arm(c);
}

/* A refused connection's answer is out (in the kernel): its write side
 * is shut, so the client sees the end at once, and the discard goes on
 * until the client closes (a lingering close: closing with its bytes
 * unread would reset the connection, the answer possibly with it). */
static void
conn_output_cb(struct evbuffer *buf, const struct evbuffer_cb_info *info,
    void *arg)
{
	struct tls_conn *c = arg;

	if (info->n_added > 0)
		conn_request_done(c);
	if (c->refused && info->n_deleted > 0 && evbuffer_get_length(buf) == 0)
		(void)shutdown(bufferevent_getfd(c->bev), SHUT_WR);
}

static struct tls_conn *
conn_new(struct hsmcad *d, struct event_base *base)
{
	struct tls_conn *c;

	if ((c = calloc(1, sizeof(*c))) == NULL)
		return NULL;
	c->d = d;
	if ((c->deadline = evtimer_new(base, conn_deadline_cb, c)) == NULL) {
		free(c);
		return NULL;
	}
	return c;
}

static int
conn_attach(struct tls_conn *c, struct bufferevent *bev)
{
	c->bev = bev;
	if ((c->in_cb = evbuffer_add_cb(bufferevent_get_input(bev),
	    conn_input_cb, c)) == NULL ||
	    (c->out_cb = evbuffer_add_cb(bufferevent_get_output(bev),
	    conn_output_cb, c)) == NULL)
		return -1;
	return 0;
}

/* The connection is gone: nothing may call back into c any more. */
static void
conn_detach(struct tls_conn *c)
{
	if (c->bev != NULL) {
		if (c->in_cb != NULL)
			evbuffer_remove_cb_entry(bufferevent_get_input(c->bev),
			    c->in_cb);
		if (c->out_cb != NULL)
			evbuffer_remove_cb_entry(bufferevent_get_output(c->bev),
			    c->out_cb);
		c->bev = NULL;
	}
	if (c->deadline != NULL) {
		event_free(c->deadline);
		c->deadline = NULL;
	}
}

/* A TLS connection's SSL object goes away (with its bufferevent, or when
 * tls_bevcb fails after SSL_new): count it out, and free c unless a
 * request holds it. */
static void
conn_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx, long argl,
    void *argp)
{
	struct tls_conn *c = ptr;

	if (c == NULL)
		return;
	listener_closed(c->l);
	conn_detach(c);
	if (c->busy == 0)
		free(c);
}

static struct tls_conn *
conn_of(struct evhttp_request *req)
{
	SSL *ssl = tls_request_ssl(req);

	return ssl != NULL && conn_index != -1 ?
	    SSL_get_ex_data(ssl, conn_index) : NULL;
}

void
tls_conn_set_gate(struct bufferevent *bev, tls_gate_fn gate)
{
	SSL *ssl = bufferevent_openssl_get_ssl(bev);
	struct tls_conn *c;

	if (ssl != NULL && conn_index != -1 &&
	    (c = SSL_get_ex_data(ssl, conn_index)) != NULL)
		c->gate = gate;
}

void
tls_conn_served(struct evhttp_request *req)
{
	struct tls_conn *c = conn_of(req);

	if (c != NULL && c->bev != NULL)
		conn_request_done(c);
}

struct tls_conn *
tls_conn_hold(struct evhttp_request *req)
{
	struct tls_conn *c = conn_of(req);

	if (c != NULL) {
		if (c->bev != NULL)
			conn_request_done(c);
		c->busy++;
	}
	return c;
}

void
tls_conn_release(struct tls_conn *c)
{
	if (c == NULL)
		return;
	if (--c->busy == 0 && c->bev == NULL)
		free(c);
}

static void
chain_free_cb(void *parent, void *ptr, CRYPTO_EX_DATA *ad, int idx,
    long argl, void *argp)
{
	sk_X509_pop_free(ptr, X509_free);
}

STACK_OF(X509) *
tls_peer_chain(SSL *ssl)
{
	STACK_OF(X509) *c = NULL;

	if (chain_index != -1 && SSL_session_reused(ssl))
		c = SSL_get_ex_data(ssl, chain_index);
	return c != NULL ? c : SSL_get_peer_cert_chain(ssl);
}

/* A ticket is being made: it carries the client's intermediates, as sent
 * in the full handshake (or as the resumed session's ticket had them). A
 * chain over TICKET_CHAIN_MAX travels without them: that client resumes
 * to a refusal and makes a full handshake. */
static int
ticket_gen_cb(SSL *ssl, void *arg)
{
	STACK_OF(X509) *chain = tls_peer_chain(ssl);
	unsigned char buf[TICKET_CHAIN_MAX], *p;
	size_t len = 0;
	int i, n;

	(void)arg;
	for (i = 0; chain != NULL && i < sk_X509_num(chain); i++) {
		if ((n = i2d_X509(sk_X509_value(chain, i), NULL)) <= 0 ||
		    (size_t)n > sizeof(buf) - len) {
			len = 0;
			break;
		}
		p = buf + len;
		(void)i2d_X509(sk_X509_value(chain, i), &p);
		len += (size_t)n;
	}
	return SSL_SESSION_set1_ticket_appdata(SSL_get0_session(ssl), buf, len);
}

/* A ticket came back, decrypted and authenticated with our own ticket
 * key: its intermediates go with the connection (tls_peer_chain). A
 * ticket whose chain does not parse is ignored: a full handshake. */
static SSL_TICKET_RETURN
ticket_dec_cb(SSL *ssl, SSL_SESSION *ss, const unsigned char *keyname,
    size_t keyname_len, SSL_TICKET_STATUS status, void *arg)
{
	STACK_OF(X509) *chain = NULL;
	const unsigned char *p, *end;
	void *data = NULL;
	size_t len = 0;
	X509 *x;

	(void)keyname;
	(void)keyname_len;
	(void)arg;
	if (status == SSL_TICKET_FATAL_ERR_MALLOC ||
	    status == SSL_TICKET_FATAL_ERR_OTHER)
		return SSL_TICKET_RETURN_ABORT;
	if (status != SSL_TICKET_SUCCESS && status != SSL_TICKET_SUCCESS_RENEW)
		return SSL_TICKET_RETURN_IGNORE_RENEW;
	if (SSL_SESSION_get0_ticket_appdata(ss, &data, &len) && len > 0) {
		if ((chain = sk_X509_new_null()) == NULL)
			return SSL_TICKET_RETURN_IGNORE_RENEW;
		for (p = data, end = p + len; p < end; ) {
			if ((x = d2i_X509(NULL, &p, end - p)) == NULL ||
			    !sk_X509_push(chain, x)) {
				X509_free(x);
				sk_X509_pop_free(chain, X509_free);
				ERR_clear_error();
				return SSL_TICKET_RETURN_IGNORE_RENEW;
			}
		}
		sk_X509_pop_free(SSL_get_ex_data(ssl, chain_index), X509_free);
		if (!SSL_set_ex_data(ssl, chain_index, chain)) {
			sk_X509_pop_free(chain, X509_free);
			return SSL_TICKET_RETURN_IGNORE_RENEW;
		}
	}
	return status == SSL_TICKET_SUCCESS_RENEW ?
	    SSL_TICKET_RETURN_USE_RENEW : SSL_TICKET_RETURN_USE;
}

/* The EST listener's CertificateRequest names are the context's, set
 * from the runtime whenever it was replaced (SIGHUP, hsmcad.c; a change
 * of the generations, rotation.c): looked at on each accept, one compare.
 * On the loop, as every handshake: none is writing the old names. */
static uint64_t ca_names_of;		/* the runtime they came from */

static void
ca_names_follow(struct hsmcad *d)
{
	STACK_OF(X509_NAME) *names;

	if (ca_names_of == d->rt->id)
		return;
	/* Out of memory: the names before, until an accept with memory. */
	if ((names = SSL_dup_CA_list(d->rt->est_ca_names)) == NULL) {
		ERR_clear_error();
		return;
	}
	SSL_CTX_set_client_CA_list(d->ssl, names);
	ca_names_of = d->rt->id;
}

int
tls_conn_set_ca_names(struct bufferevent *bev,
    const STACK_OF(X509_NAME) *names)
{
	STACK_OF(X509_NAME) *dup;
	SSL *ssl;

	if ((ssl = bufferevent_openssl_get_ssl(bev)) == NULL)
		return 0;	/* closed unserved already */
	/* An empty list of its own too: the context's would name the
	 * factory CAs to an operator. */
	if ((dup = SSL_dup_CA_list(names)) == NULL) {
		ERR_clear_error();
		return -1;
	}
	SSL_set_client_CA_list(ssl, dup);
	return 0;
}

/* The handshake takes any client chain without building or verifying
 * it: est.c and admin.c verify it against the trust of the endpoint asked
 * (and remember the result across connections), so verifying it here too
 * would be a second, unused verification per handshake. */
static int
accept_any_chain(X509_STORE_CTX *ctx, void *arg)
{
	return 1;
}

static int
client_hello_cb(SSL *ssl, int *alert, void *arg)
{
	struct hsmcad *d = arg;

	/* The connection cap is the listener's, at the accept. */
	if (d->draining) {
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
	EVP_PKEY *key = NULL;

	if (conn_index == -1)
		conn_index = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    conn_free_cb);
	if (chain_index == -1)
		chain_index = SSL_get_ex_new_index(0, NULL, NULL, NULL,
		    chain_free_cb);
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
		/* The server key may live in the token too: the signer
		 * process makes its signatures. */
		if ((key = keyop_front_key(d->keyop_fd,
		    SSL_CTX_get0_certificate(ctx), e)) == NULL)
			goto out;
		if (!SSL_CTX_use_PrivateKey(ctx, key)) {
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
	SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_CLIENT_ONCE, NULL);
	SSL_CTX_set_cert_verify_callback(ctx, accept_any_chain, NULL);
	SSL_CTX_set_verify_depth(ctx, 8);
	SSL_CTX_set_client_hello_cb(ctx, client_hello_cb, d);
	SSL_CTX_set_session_id_context(ctx, (const unsigned char *)"hsmcad", 6);
	/* Resumption only when asked for (session-tickets), and then by
	 * ticket: OpenSSL 3.0 makes each ticket by encoding the session,
	 * decoding it again (the client's certificate and its key too) and
	 * encrypting it, about a sixth of the front's CPU per full
	 * handshake, and the client pays as much to keep it; devices that
	 * reconnect days apart never use one. One ticket is enough for a
	 * client that resumes. No session cache: libevent frees a
	 * connection without a close_notify, which drops its session from
	 * the cache anyway. */
	SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
	if (dc->session_tickets) {
		SSL_CTX_set_num_tickets(ctx, 1);
		if (!SSL_CTX_set_session_ticket_cb(ctx, ticket_gen_cb,
		    ticket_dec_cb, NULL))
			goto fail;
	} else {
		SSL_CTX_set_num_tickets(ctx, 0);
		SSL_CTX_set_options(ctx, SSL_OP_NO_TICKET);
	}
	/* The SSL_CTX holds its own reference to the key. */
	EVP_PKEY_free(key);
	return ctx;
fail:
	err_set_ssl(e, HSMCA_ERR_INTERNAL, "TLS setup");
out:
	EVP_PKEY_free(key);
	SSL_CTX_free(ctx);
	return NULL;
}

/* A connection that cannot be set up is never handed to evhttp without
 * TLS: listener_unserved gives the bufferevent that closes it. */
struct bufferevent *
tls_bevcb(struct event_base *base, void *arg)
{
	struct listener *l = arg;
	struct hsmcad *d = listener_daemon(l);
	struct bufferevent *bev;
	struct tls_conn *c;
	SSL *ssl;

	if ((c = conn_new(d, base)) == NULL)
		return listener_unserved(l);
	ca_names_follow(d);
	if ((ssl = SSL_new(d->ssl)) == NULL) {
		ERR_clear_error();
		conn_detach(c);
		free(c);
		return listener_unserved(l);
	}
	c->l = l;
	listener_opened(l);
	/* From here c goes with the SSL object (conn_free_cb). */
	SSL_set_ex_data(ssl, conn_index, c);
	bev = bufferevent_openssl_socket_new(base, -1, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		SSL_free(ssl);
		return listener_unserved(l);
	}
	if (conn_attach(c, bev) == -1) {
		bufferevent_free(bev);
		return listener_unserved(l);
	}
	/* The handshake and the first request. */
	conn_deadline_arm(c);
	return bev;
}

int
tls_request_drop_plain(struct evhttp_request *req)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);

	if (tls_request_ssl(req) != NULL)
		return 0;
	log_warnx("a request came without TLS on a TLS listener: closing its "
	    "connection unanswered");
	/* What evhttp does once an answer is out; nothing of evcon or req
	 * is touched after a request callback returns. */
	if (evcon != NULL)
		evhttp_connection_free(evcon);
	return 1;
}

/* evhttp frees a plain connection (NULL: it never had one). */
static void
plain_closed(struct evhttp_connection *evcon, void *arg)
{
	struct tls_conn *c = arg;

	listener_closed(c->l);
	conn_detach(c);
	free(c);
}

/* Just after the accept, on the loop's same turn: evhttp has made its
 * connection of c's bufferevent, and its close callback says when c goes.
 * evhttp owns the bufferevent's callbacks, and their argument is its
 * connection: the one way to learn it. No callbacks: evhttp let the
 * bufferevent go at once (out of memory); the reference tls_plain_bevcb
 * took kept it for this look. */
static void
plain_adopt(struct tls_conn *c)
{
	struct bufferevent *bev = c->bev;
	bufferevent_event_cb eventcb = NULL;
	void *cbarg = NULL;

	c->adopting = 0;
	bufferevent_getcb(bev, NULL, NULL, &eventcb, &cbarg);
	if (eventcb != NULL && cbarg != NULL)
		evhttp_connection_set_closecb(cbarg, plain_closed, c);
	else
		plain_closed(NULL, c);
	bufferevent_decref(bev);
}

struct bufferevent *
tls_plain_bevcb(struct event_base *base, void *arg)
{
	struct listener *l = arg;
	struct bufferevent *bev;
	struct tls_conn *c;

	if ((bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE))
	    == NULL)
		return listener_unserved(l);
	if ((c = conn_new(listener_daemon(l), base)) == NULL ||
	    conn_attach(c, bev) == -1) {
		if (c != NULL) {
			conn_detach(c);
			free(c);
		}
		bufferevent_free(bev);
		return listener_unserved(l);
	}
	c->l = l;
	listener_opened(l);
	/* A request's clock starts at its first byte (conn_input_cb); a
	 * connection that sends nothing meets evhttp's idle timeout. */
	c->adopting = 1;
	bufferevent_incref(bev);
	event_active(c->deadline, EV_TIMEOUT, 1);
	return bev;
}
