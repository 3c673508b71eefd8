/* hsmcad.h: the daemon's shared state and the interfaces between its
 * parts: the front (event loop, TLS, HTTP, EST) and the signer (workers
 * that hold the CA keys' sessions and the store's write handle). */
#ifndef HSMCAD_H
#define HSMCAD_H

#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/resource.h>
#include <time.h>

#include <event2/event.h>
#include <event2/http.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "hsmca/config.h"
#include "hsmca/hsm.h"
#include "hsmca/issue.h"
#include "hsmca/ocsp.h"
#include "hsmca/store.h"

/* What is reloaded on SIGHUP, reference counted: a request keeps the
 * runtime it started with until it is answered. */
struct runtime {
	atomic_int		 refs;
	struct config		*cfg;
	struct fileset		*fs;		/* the bytes cfg was parsed from */
	X509_STORE		*ca_trust;	/* hsmca's own generations and roots */
	X509_STORE		**bootstrap;	/* per cfg->est[i]; NULL: none */
	X509_STORE		*admin_trust;	/* [admin] client-ca; NULL: none */
	/* What the TLS CertificateRequest names (advisory: a client picks
	 * its certificate by them; trust is checked after the handshake):
	 * the subjects of every certificate ca_trust and the bootstraps
	 * hold, and of admin_trust's (empty: none), once each. */
	STACK_OF(X509_NAME)	*est_ca_names;
	STACK_OF(X509_NAME)	*admin_ca_names;
	uint64_t		 id;		/* new per build: tls.c sees a
						   replaced runtime by it */
	STACK_OF(X509)		*cacerts;	/* every certificate a device may need */
	unsigned char		*cacerts_p7;	/* PKCS#7 certs-only, DER */
	size_t			 cacerts_p7_len;
};

/* Build a runtime from a config parsed from fs, the snapshot of the
 * files it names (it then owns both, also on failure), and the
 * generations in the store. No file is opened. */
struct runtime	*runtime_build(struct config *cfg, struct fileset *fs,
		    struct store *st, struct hsmca_err *e);
/* The same config (parsed again from the same snapshot) with the
 * generations as the store has them now: after a generation was created
 * or changed status. */
struct runtime	*runtime_rebuild(const struct runtime *rt, struct store *st,
		    struct hsmca_err *e);
struct runtime	*runtime_ref(struct runtime *rt);
void		 runtime_unref(struct runtime *rt);

/* ---- the signer ---- */

enum signer_op {
	SIGNER_ENROLL,		/* first enrollment (bootstrap identity) */
	SIGNER_RENEW,		/* renewal: same subject and SAN as the current cert */
	SIGNER_SERVERKEYGEN,	/* enrollment with a key pair made here */
	SIGNER_CRL,		/* build and sign the CRL of generation gen_id */
	SIGNER_AUDIT,		/* append a refusal to the audit log */
	SIGNER_OCSP,		/* pre-sign OCSP responses missing, stale or due */
	SIGNER_OCSP_UNKNOWN,	/* sign the response to a cache miss */
	SIGNER_CHECKPOINT,	/* sign the audit chain's head if it moved */
	SIGNER_ADMIN,		/* run an admin API command line */
	SIGNER_BATCH,		/* a step of a remote factory batch */
	SIGNER_ROTATE,		/* one CA rotation step (daemon/rotation.c) */
	SIGNER_TLS_SIGN,	/* a TLS handshake signature with tls-key */
	SIGNER_SWEEP,		/* fail the reservations left behind (sweep.c) */
	SIGNER_OP_MAX
};

/* A request as the signer sees it: facts, not objects. The signer
 * re-parses the CSR and re-applies every rule itself. */
struct signer_job {
	enum signer_op	 op;
	struct runtime	*rt;
	char		 profile[64];
	int64_t		 gen_id;		/* SIGNER_CRL, SIGNER_OCSP_UNKNOWN */
	int		 id_nid;		/* SIGNER_OCSP_UNKNOWN: CertID hash */
	char		 requester[512];	/* for the record and the log */
	unsigned char	*csr_der;
	size_t		 csr_len;
	/* authorization facts established by the front */
	char		 id_cn[256];		/* authenticating certificate's CN */
	int		 cn_match;		/* CSR CN must equal id_cn */
	unsigned char	*renew_subject;		/* DER subject the CSR must carry
						   (SIGNER_RENEW, or a renewing
						   SIGNER_SERVERKEYGEN); NULL: none */
	size_t		 renew_subject_len;
	unsigned char	*renew_san;		/* DER SAN the CSR must carry (NULL: none) */
	size_t		 renew_san_len;
	/* the answer */
	int		 status;		/* HTTP status */
	char		 reason[HSMCA_ERRMSG_MAX];
	char		 serial[SERIAL_HEX_MAX];
	unsigned char	*p7_der;		/* PKCS#7 certs-only with the certificate,
						   the DER CRL for SIGNER_CRL, or the
						   OCSPResponse for SIGNER_OCSP_UNKNOWN */
	size_t		 p7_len;
	time_t		 this_update, next_update;	/* SIGNER_CRL */
	int64_t		 crl_number;		/* SIGNER_OCSP: responses signed */
	int		 more;			/* SIGNER_OCSP: batch full, go on */
	int64_t		 cursor[2];		/* SIGNER_OCSP: changes read, cert
						   id walked (in and out) */
	int		 swept;			/* SIGNER_OCSP: the walk wrapped */
	unsigned char	*key_der;		/* PKCS#8, serverkeygen only */
	size_t		 key_len;
	/* completion, called on the event loop */
	void		(*done)(struct signer_job *, void *);
	void		*arg;
	atomic_int	 abandoned;		/* the front answered already */
	void		*admin;			/* SIGNER_ADMIN: its call */
	struct ca_events *events;		/* SIGNER_ROTATE: what changed */
	uint64_t	 ipc_id;		/* its id between the processes */
	struct signer_job *ipc_next;		/* signerd.c: jobs in flight */
	struct signer_job *next;
};

/* The wire form of a job (privsep, daemon/ipc.h): the request the front
 * sends, and the answer the signer sends back. Unpacking checks every
 * bound: NULL or -1 when the message is not a job of this shape. */
struct ipc;
struct ipc_buf;
struct ipc_rd;
void	signer_job_pack(const struct signer_job *job, struct ipc_buf *b);
struct signer_job *signer_job_unpack(struct ipc_rd *r);
void	signer_answer_pack(const struct signer_job *job, struct ipc_buf *b);
int	signer_answer_unpack(struct signer_job *job, struct ipc_rd *r);

struct signer;

int	signer_start(struct event_base *base, struct hsm *h, const char *store_path,
	    int workers, struct signer **out, struct hsmca_err *e);
/* Queue a job; its done callback runs later on the event loop. */
void	signer_submit(struct signer *s, struct signer_job *job);
/* Record a refused request in the audit log, off the event loop. At most
 * SIGNER_AUDIT_BACKLOG wait at once; beyond that they are counted, and
 * the count is recorded with the next one that fits. */
#define SIGNER_AUDIT_BACKLOG	1024
void	signer_audit_refusal(struct signer *s, const char *actor,
	    const char *object, const char *detail);
/* (Re)load the active CA generation every worker signs with; on failure
 * jobs are answered 503 with the reason until the next load. */
int	signer_set_issuer(struct signer *s, const struct config *cfg,
	    struct hsmca_err *e);
/* Stop: the workers finish what is queued and what they hold, however
 * long the token takes (signerd.c bounds the wait); then free. */
void	signer_stop(struct signer *s);
void	signer_free(struct signer *s);
/* Log each job a worker holds or that waits in the queue, and a login
 * of the recovery thread: what a stop that gives up abandons. How
 * many. */
size_t	signer_log_held(struct signer *s);
/* The OCSP cache workers fill (after issuance, SIGNER_OCSP*); set once,
 * before the loop runs. */
void	signer_set_ocsp(struct signer *s, struct ocsp_cache *c);
/* tls-key is a key in the token (uri): SIGNER_TLS_SIGN jobs sign the
 * front's handshakes with it. */
int	signer_set_tls_key(struct signer *s, const char *uri,
	    struct hsmca_err *e);
void	signer_job_free(struct signer_job *job);

/* ---- the front's end of the signer (link.c) ----
 * The signer runs in its own process; the front reaches it through
 * these, which mirror the signer's own API: a job's done callback runs on
 * the front's loop when the signer's answer arrives. */
struct link;
struct hsmcad;

struct link	*link_new(struct hsmcad *d, int fd);
void	link_free(struct link *l);
void	link_submit(struct link *l, struct signer_job *job);
/* The front answered the job's request already (503 at its deadline):
 * the signer drops it if it has not begun. */
void	link_abandon(struct link *l, struct signer_job *job);
void	link_audit_refusal(struct link *l, const char *actor,
	    const char *object, const char *detail);
/* Jobs sent and not yet answered. */
int	link_pending(struct link *l);
/* The generations changed (or, with reload, the config: SIGHUP, and
 * reload is the snapshot the front loaded): the signer rebuilds what it
 * issues with. */
void	link_set_issuer(struct link *l, const struct fileset *reload);
/* GET /metrics: the signer's counters, then metrics_reply. */
void	link_metrics(struct link *l, struct evhttp_request *req);

/* The signer process (signerd.c): never returns. fd is its end of the
 * front's channel, keyfd of the TLS key channel (-1: none). */
/* The signal mask hsmcad started with (hsmcad.c). */
extern sigset_t hsmcad_startup_mask;

void	signerd_main(const char *config_path, struct config *cfg,
	    struct fileset *fs, int fd, int keyfd) __attribute__((noreturn));
/* The front's TLS key when tls-key names a key in the token: a key whose
 * signatures are made by the signer over keyfd (keyop.c). */
EVP_PKEY *keyop_front_key(int keyfd, X509 *cert, struct hsmca_err *e);
/* In the signer: answer the front's key operations on keyfd. */
int	keyop_serve(struct event_base *base, struct signer *s, int keyfd,
	    struct hsmca_err *e);

/* Shared by the processes (hsmcad.c). */
void	daemon_drop_privileges(const char *user);
void	daemon_forget_env_pin(const struct config *cfg);
/* A listener's "HOST:PORT" or "[V6]:PORT" (no host: every address) as
 * a passive TCP address (freeaddrinfo it): 0, or -1 with why. */
struct addrinfo;
int	daemon_resolve(const char *addr, struct addrinfo **res, char *why,
	    size_t wlen);

/* ---- the front ---- */

/* The CRL of one generation, as served, and what it was built from. */
struct crl_cache {
	int64_t		 gen_id;
	unsigned char	*der;
	size_t		 len;
	time_t		 this_update, next_update;
	int64_t		 number;
	int64_t		 version_seen;	/* revocation version it reflects */
	int64_t		 version_want;	/* the version when the build began */
	int		 building;
};

struct hsmcad {
	const char		*config_path;
	struct runtime		*rt;
	struct event_base	*base;
	struct evhttp		*https;
	struct evhttp		*http;
	struct evhttp		*admin;		/* operators: JSON over mutual TLS */
	SSL_CTX			*ssl;
	struct store		*st;		/* read-only: the front writes nothing */
	struct link		*link;		/* to the signer process */
	struct ipc		*ctl;		/* from the parent: reloads */
	int			 keyop_fd;	/* tls-key in the token: its
						   signatures, from the signer */
	int			 nconn;		/* open connections, every
						   listener (listener.c) */
	int			 inflight;	/* requests not yet answered */
	int			 draining;
	struct event		*drain_ev;	/* SIGTERM: waits for in-flight work */
	struct crl_cache	*crls;
	size_t			 ncrls;
	struct event		*crl_ev;	/* rebuilds CRLs that need it */
	struct ocsp_cache	*ocsp;		/* pre-signed OCSP responses */
	struct event		*ocsp_ev;	/* pre-signs what needs it */
	int			 ocsp_busy;	/* a SIGNER_OCSP job is out */
	int			 ocsp_more;	/* it stopped at its batch size */
	time_t			 ocsp_swept;
	int64_t			 ocsp_changes_seen;	/* cert_change cursor */
	int64_t			 ocsp_walked;	/* the sweep's cert id cursor */
	double			 ocsp_tokens;	/* signatures for misses */
	struct timespec		 ocsp_refill;
	struct ocsp_gen_end	*ocsp_ends;	/* as misses met them */
	size_t			 nocsp_ends;
	struct periodic		*checkpoint;	/* signs the chain's head */
	int			 checkpoint_busy;	/* a SIGNER_CHECKPOINT job is out */
	struct rotation		*rotation;	/* daemon/rotation.c */
};

/* The front's listeners (listener.c): each connection counted from its
 * accept to its close against the listener's cap and the descriptor
 * limit; over either, a new connection is closed at once. */
enum listener_kind {
	LISTENER_EST,		/* [daemon] listen, max-connections */
	LISTENER_ADMIN,		/* [admin] listen, max-connections */
	LISTENER_HTTP,		/* [daemon] http-listen, max-http-connections */
	LISTENER_MAX
};
/* The address ("HOST:PORT") cfg has the listener of kind listen on, or
 * NULL: none. The EST listener always has one ([daemon] listen has a
 * default). What the parent binds, hsmcad -t checks and the signer
 * pre-signs OCSP for (hsmcad.c). */
const char *daemon_listen_addr(const struct config *cfg,
	    enum listener_kind kind);
struct listener;
struct evbuffer;
/* Serve http on the inherited listening socket fd. */
void	listener_start(struct hsmcad *d, enum listener_kind kind,
	    struct evhttp *http, int fd);
/* What the descriptor limit rl leaves the listeners cfg names, each
 * with its cap, and the front's own descriptors: the soft limit to run
 * with (raised to the hard limit when the caps need it, if raise), the
 * connections held at once, and a warning when the caps do not fit. 0,
 * or an error when too few are left to serve at all. The front's start
 * and hsmcad -t (preflight.c) both ask it. */
struct listener_nofile {
	rlim_t	soft;
	int	budget;
	char	warning[512];	/* "": the caps fit */
};
int	listener_nofile_plan(const struct config *cfg, const struct rlimit *rl,
	    int raise, struct listener_nofile *p, struct hsmca_err *e);
/* Once the listeners are started, before the sandbox: raise the
 * descriptor limit to the hard limit if the caps need it, and warn if
 * they do not fit even then; an error if too few are left to serve. */
int	listener_nofile_check(struct hsmcad *d, struct hsmca_err *e);
/* Stop accepting, for good (SIGTERM). */
void	listener_stop_all(void);
/* tls.c: a connection was accepted on l, and closed. */
struct hsmcad *listener_daemon(struct listener *l);
void	listener_opened(struct listener *l);
void	listener_closed(struct listener *l);
/* tls.c: a connection l accepted could not be set up. What to hand
 * evhttp for it instead of NULL (a plain connection, even on a TLS
 * port): a bufferevent that serves nothing and closes (the listener's
 * spare; NULL only if the listener had none, which it never accepts
 * without). */
struct bufferevent *listener_unserved(struct listener *l);
/* GET /metrics: connections open, refused and accept failures. */
void	listener_metrics(struct evbuffer *b);

/* HTTP answers (http.c). The reason phrase of status, every listener's
 * ("Error" for one hsmcad never answers). */
const char *http_status_phrase(int status);
/* The name of a request's method, for the log ("?": one libevent does
 * not know). */
const char *http_method_name(enum evhttp_cmd_type cmd);
/* req's target in origin form, the path and query: an absolute-form
 * target (GET http://host/crl/2.crl, which an HTTP/1.1 server must
 * take, RFC 9112 3.2.2) without its scheme and authority; "/" when it
 * has no path. Points into evhttp_request_get_uri's string. */
const char *http_target(struct evhttp_request *req);
/* 1 if libevent does not know req's method: the answer to it (a 501)
 * closes the connection, which this sets. */
int	http_method_unknown(struct evhttp_request *req);
/* Before a 405: Allow says what the path takes (allow), and the
 * connection closes after the answer. */
void	http_method_refused(struct evhttp_request *req, const char *allow);
/* evhttp_send_reply; a HEAD gets the headers a GET would, with the
 * Content-Length of body (evhttp sends none), and no body (evhttp would
 * send it), and closes the connection if it came with a body. Every
 * answer gets one Connection header, close or keep-alive, that says
 * what evhttp then does with the connection. */
void	http_reply(struct evhttp_request *req, int status, const char *phrase,
	    struct evbuffer *body);
/* http_reply with text, one line, as text/plain. */
void	http_text(struct evhttp_request *req, int status, const char *phrase,
	    const char *text);

/* The challenge every 401 carries (RFC 9110 15.5.2, was RFC 7235). HTTP
 * has no scheme for a TLS client certificate: this one is unregistered,
 * so a client that knows Basic or Digest (an EST 401 asks for those, RFC
 * 7030 3.2.3) finds none it could answer with a password, and a person
 * reads what is missing. */
#define HSMCAD_CHALLENGE(realm)	"ClientCertificate realm=\"" realm "\""

/* TLS: the server context (TLS 1.2 and 1.3 only, mutual TLS). */
SSL_CTX	*tls_server_ctx(struct hsmcad *d, struct hsmca_err *e);
/* evhttp's bufferevent callbacks, arg the listener (listener_start). */
struct bufferevent *tls_bevcb(struct event_base *base, void *arg);
/* The plain HTTP listener's connections (CRL, OCSP): no TLS, the same
 * request deadline. */
struct bufferevent *tls_plain_bevcb(struct event_base *base, void *arg);
/* The request deadline of a connection (tls.c): a request must arrive
 * whole within `timeout` of its first byte. A handler may say its request
 * is complete (tls_conn_served); one answered later holds the connection
 * until its answer (tls_conn_hold ... tls_conn_release). */
struct tls_conn;
void	tls_conn_served(struct evhttp_request *req);
struct tls_conn *tls_conn_hold(struct evhttp_request *req);
void	tls_conn_release(struct tls_conn *c);
/* A listener's gate, asked once per connection with its first bytes
 * after the handshake, before evhttp parses a request or reads a body:
 * 0, the connection goes on; otherwise the status it was refused with,
 * and answer holds the whole HTTP answer (in: the bytes so far, to be
 * looked at, not taken). A refused connection's further bytes are
 * discarded as they come, its write side is shut once the answer is
 * out, and it ends when the client closes or at its deadline. */
struct evbuffer;
typedef int (*tls_gate_fn)(struct hsmcad *d, SSL *ssl, struct evbuffer *in,
	    struct evbuffer *answer);
void	tls_conn_set_gate(struct bufferevent *bev, tls_gate_fn gate);
/* The CA names the connection's CertificateRequest sends instead of the
 * EST listener's (the admin listener's: its operator CAs; empty: none).
 * 0, or -1 out of memory: then close the connection unserved. */
int	tls_conn_set_ca_names(struct bufferevent *bev,
	    const STACK_OF(X509_NAME) *names);
/* The TLS connection a request came on (NULL: plain HTTP). */
SSL	*tls_request_ssl(struct evhttp_request *req);
/* For the handlers of TLS listeners, first thing: 1 if req came with no
 * TLS behind it (libevent's own plain connection, had a bufferevent
 * callback failed): its connection is closed, the request unanswered. */
int	tls_request_drop_plain(struct evhttp_request *req);
/* The intermediates the client sent (not its own certificate), also
 * when it resumed a session: then they come from the ticket. */
STACK_OF(X509) *tls_peer_chain(SSL *ssl);
/* Verify cert against trust at the injectable clock: 1 if it holds, and
 * *chain (if chain is not NULL) the verified chain, leaf first; 0 with
 * the reason. */
int	tls_verify_chain(X509_STORE *trust, X509 *cert,
	    STACK_OF(X509) *untrusted, STACK_OF(X509) **chain, char *reason,
	    size_t rlen);
/* 1 (and why) if a verified chain passes through a CA certificate that
 * one of hsmca's own CA certificates (cacerts) issued and that is not
 * one of them: an edge CA. Such a CA issues the certificates of its own
 * devices and vouches for no operator or factory identity. */
int	tls_chain_via_issued_ca(const struct runtime *rt,
	    STACK_OF(X509) *chain, char *why, size_t wlen);

/* CRLs: built on the signer, served over plain HTTP at /crl/GEN.crl. */
int	crl_serve_start(struct hsmcad *d, struct hsmca_err *e);
void	crl_serve_stop(struct hsmcad *d);
void	crl_handle(struct evhttp_request *req, void *arg);

/* OCSP: pre-signed on the signer, answered from memory over plain HTTP
 * at /ocsp (POST) and /ocsp/<base64> (GET). */
int	ocsp_serve_start(struct hsmcad *d, struct hsmca_err *e);
void	ocsp_serve_stop(struct hsmcad *d);
/* Drop the responder keys loaded from the token (the signer, before it
 * re-opens the token after a fault): they are loaded again when next
 * needed. */
void	ocsp_forget_keys(void);
void	ocsp_handle(struct evhttp_request *req, void *arg);
/* The DER request of GET /ocsp/<enc> (enc: URL-encoded base64) into buf
 * (size bytes), *n its length: 0, or the OCSP error status to answer
 * (malformedRequest, internalError). Pure: tests/fuzz calls it. */
int	ocsp_get_request(const char *enc, unsigned char *buf, size_t size,
	    size_t *n);
/* On a signer worker: a SIGNER_OCSP or SIGNER_OCSP_UNKNOWN job, and the
 * response of a certificate just issued by iss. */
void	ocsp_job_run(struct hsm *h, struct store *st, struct ocsp_cache *c,
	    struct signer_job *job);
void	ocsp_issued(struct hsm *h, struct issuer *iss, struct ocsp_cache *c,
	    const char *serial);
/* In the signer: every response and issuer the workers put in their
 * cache is also handed to m (which sends it to the front's copy). */
struct ocsp_mirror {
	void	(*issuer)(int64_t gen_id, X509 *issuer, void *arg);
	void	(*put)(const unsigned char *der, size_t len, void *arg);
	void	(*expire)(time_t now, void *arg);
	void	*arg;
};
void	ocsp_set_mirror(const struct ocsp_mirror *m);
/* The responder mode and validity of cfg, for responses signed before
 * the first pre-signing job. */
void	ocsp_configure(const struct config *cfg);

/* Work on a loop's timer (periodic.c): run(arg) now, then again as many
 * seconds later as it returns, until it returns 0 or periodic_free. what
 * names the work for an error. NULL with why when no timer could be
 * made. */
struct periodic;
struct periodic	*periodic_start(struct event_base *base,
		    const char *what, time_t (*run)(void *arg), void *arg,
		    struct hsmca_err *e);
void	periodic_free(struct periodic *p);

/* Signed audit checkpoints: every [daemon] audit-checkpoint-interval,
 * and once more when hsmcad stops, a SIGNER_CHECKPOINT job signs the
 * chain's head if records were appended since the last checkpoint. */
int	checkpoint_start(struct hsmcad *d, struct hsmca_err *e);
void	checkpoint_now(struct hsmcad *d);
void	checkpoint_stop(struct hsmcad *d);
/* On a signer worker: the SIGNER_CHECKPOINT job, with the active
 * generation's key (NULL: none, the job fails). */
void	checkpoint_job_run(struct hsm *h, struct store *st,
	    struct issuer *iss, struct signer_job *job);

/* Reservations left behind (sweep.c): in the signer process, at start
 * and every hour, a SIGNER_SWEEP job marks failed the serials reserved
 * more than a day ago and never recorded. */
struct sweep;
int	sweep_start(struct event_base *base, struct signer *s,
	    struct sweep **out, struct hsmca_err *e);
void	sweep_free(struct sweep *sw);
/* On a signer worker: the SIGNER_SWEEP job. */
void	sweep_job_run(struct store *st, struct signer_job *job);

/* The admin API (admin.c): the operators' listener; admin_job_run runs
 * a SIGNER_ADMIN job's command line on a signer worker. */
void	admin_handle(struct evhttp_request *req, void *arg);
/* An admin API refusal, {"error": reason} (Retry-After on a 503), with
 * no log line or audit record: for what no operator asked for (out of
 * memory, shutting down). */
void	admin_reply_error(struct hsmcad *d, struct evhttp_request *req,
	    int status, const char *reason);
/* The admin listener's connections: tls_bevcb's, with admin_gate. */
struct bufferevent *admin_bevcb(struct event_base *base, void *arg);
/* A POST /api/v1/run body: 0 and its parts (references the caller
 * drops), or 400 with why. Pure: tests/fuzz calls it. */
struct admin_request {
	struct json_t	*argv;		/* array of strings */
	struct json_t	*files;		/* {"@in:N": base64} or NULL */
	int		 json;
};
int	admin_parse_request(const char *body, size_t len,
	    struct admin_request *out, char *why, size_t wlen);
void	admin_job_run(struct hsm *h, struct store *st, struct signer_job *job);
/* A SIGNER_ADMIN or SIGNER_BATCH job's call on the wire: the front packs
 * what the operator asked (JSON text, malloc'd), the signer unpacks it
 * into a call that has no HTTP request, packs its reply, and the front
 * takes the reply into its own call. */
char	*admin_call_pack(const void *admin);
void	*admin_call_unpack(const unsigned char *json, size_t len);
char	*admin_reply_pack(const void *admin);
int	 admin_reply_unpack(void *admin, const unsigned char *json,
	    size_t len);
void	 admin_call_drop(void *admin);
void	admin_batch_run(struct hsm *h, struct store *st, struct issuer *iss,
	    struct signer_job *job);

/* CA rotation (SIGNER_ROTATE on a timer) and the expiry watch; cacerts
 * and the signer's issuer follow every change of the generations. */
int	rotation_start(struct hsmcad *d, struct hsmca_err *e);
void	rotation_stop(struct hsmcad *d);
/* Look at the generations now rather than at the next poll (an admin
 * command changed them): cacerts and the issuer follow at once. */
void	rotation_check_now(struct hsmcad *d);
void	rotation_job_run(struct hsm *h, struct store *st,
	    struct signer_job *job);

/* EST endpoints. */
void	est_handle(struct evhttp_request *req, void *arg);
/* The label (index into cfg->est) and operation a request path names:
 * 0, or the HTTP status of the refusal with its reason in why. Pure, as
 * the next one: tests/fuzz calls both. */
int	est_route(const struct config *cfg, const char *path, int *label_idx,
	    int *op, char *why, size_t whylen);
/* Is the Content-Type header ct (NULL: absent) want, parameters allowed? */
int	est_content_type_is(const char *ct, const char *want);

/* PKCS#7 certs-only, DER. */
int	est_certs_only(STACK_OF(X509) *certs, unsigned char **der, size_t *len);

#endif
