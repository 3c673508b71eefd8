/* est-client.h: a small blocking HTTPS client for EST (RFC 7030): one
 * request per connection, the server verified against a trust file and
 * its name, an optional client certificate, bounded in size and time. */
#ifndef HSMCA_EST_CLIENT_H
#define HSMCA_EST_CLIENT_H

#include <stddef.h>
#include <openssl/x509.h>

#include "hsmca/err.h"

#define EST_BODY_MAX		(1024 * 1024)
#define EST_TIMEOUT_SECS	10

struct est_client;

struct est_reply {
	int		 status;
	char		 reason[128];		/* the status line's phrase */
	char		 ctype[256];		/* Content-Type, "" if none */
	char		 cte[64];		/* Content-Transfer-Encoding */
	unsigned char	*body;			/* NUL-terminated */
	size_t		 len;
};

/* server: "https://host[:port][/]"; label may be NULL; cert and key
 * (both or neither) are PEM files: the certificate, then its chain. */
int	est_client_new(const char *server, const char *label,
	    const char *cacert, const char *cert, const char *key,
	    struct est_client **out, struct hsmca_err *e);
void	est_client_free(struct est_client *c);
/* Keep the connection open for the next request (HTTP/1.1 keep-alive),
 * reconnecting when the server closed it meanwhile. One request at a
 * time per client. */
void	est_client_keepalive(struct est_client *c);

/* One request on a fresh connection to PREFIX/op; body may be NULL for
 * GET. Fails only on transport errors: any HTTP status is a reply. */
int	est_client_request(struct est_client *c, const char *method,
	    const char *op, const char *ctype, const void *body, size_t len,
	    struct est_reply *r, struct hsmca_err *e);
void	est_reply_free(struct est_reply *r);

/* Requests go to PREFIX op rather than the EST paths (the admin API), and
 * replies may be up to body_max bytes. */
int	est_client_set_path(struct est_client *c, const char *prefix,
	    size_t body_max, struct hsmca_err *e);

/* A refusal as "server refused (STATUS): its one-line reason" into e. */
int	est_reply_refusal(const struct est_reply *r, struct hsmca_err *e);


/* The certificates of a base64 certs-only PKCS#7. */
int	est_p7_certs(const unsigned char *b64, size_t len,
	    STACK_OF(X509) **out, struct hsmca_err *e);

/* An unencrypted PEM private key from a file (never prompts); and a key
 * as PKCS#8 PEM (malloc'd; wipe with util_freezero). */
int	est_read_key(const char *path, EVP_PKEY **out, struct hsmca_err *e);
int	est_key_pem(EVP_PKEY *pk, char **out, size_t *outlen,
	    struct hsmca_err *e);

#endif
