/* config.h: hsmca.conf, parsed into plain structs. */
#ifndef HSMCA_CONFIG_H
#define HSMCA_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include "hsmca/err.h"
#include "hsmca/keytype.h"
#include "hsmca/profile.h"

struct config_hsm {
	char	*module;	/* path of the PKCS#11 module */
	char	*token;		/* PKCS#11 URI naming the token: pkcs11:token=hsmca */
	char	*pin_source;	/* "file:/path" or "env:NAME" */
	int	 sessions;	/* cap on concurrent signing sessions */
};

struct config_store {
	char	*path;		/* SQLite file */
};

struct config_ca {
	char		*subject;	/* issuing CA subject, "CN=...,O=..." */
	enum key_type	 key_type;
	int64_t		 validity;	/* seconds */
	char		*root_subject;	/* root for `ca init --root hsm` */
	enum key_type	 root_key_type;
	int64_t		 root_validity;
	int64_t		 renew_before;
	int64_t		 activation_delay;
	int64_t		 crl_next_update;	/* seconds: CRL validity, at most 10d */
	char		*crl_url;	/* "%g" is replaced by the generation id */
	char		*ocsp_url;
};

/* hsmcad, the daemon. */
struct config_daemon {
	char	*listen;		/* "HOST:PORT": EST over mutual TLS */
	char	*http_listen;		/* "HOST:PORT": plain HTTP (CRL, OCSP); NULL: none */
	char	*tls_cert;		/* the server's certificate and chain (PEM) */
	char	*tls_key;		/* PEM key file, or a pkcs11: URI */
	int	 workers;		/* signer threads; 0: one per core */
	char	*user;			/* drop root to this user; NULL: stay */
	char	*pidfile;		/* NULL: none */
	int64_t	 max_body;		/* bytes */
	int64_t	 max_header_size;	/* bytes, all headers together */
	int	 max_headers;		/* header lines */
	int64_t	 timeout;		/* seconds: read, write, idle */
	int	 max_connections;
	int	 retry_after;		/* seconds, in 503 answers */
	int64_t	 crl_delay;		/* seconds from a revocation to its CRL */
	char	*log;			/* "stderr" or "syslog" */
};

/* An EST label: /.well-known/est/LABEL/ ("" is the default, no label). */
struct config_est {
	char	*label;
	char	*profile;		/* the profile it issues with */
	char	*bootstrap_ca;		/* PEM: factory CAs trusted for enrollment */
	int	 cn_match;		/* CSR CN must equal the bootstrap cert's CN */
	int	 serverkeygen;		/* allow /serverkeygen on this label */
};

struct config {
	char			*path;	/* NULL for embedded defaults */
	struct config_hsm	 hsm;
	struct config_store	 store;
	struct config_ca	 ca;
	struct config_daemon	 daemon;
	struct profile		*profiles;
	size_t			 nprofiles;
	struct config_est	*est;
	size_t			 nest;
};

/* Load path; NULL loads the embedded defaults (a demo layout under
 * $HSMCA_HOME or ./hsmca-demo). Unknown sections or keys, bad values and
 * duplicates are refused with "path:line: reason". */
int	config_load(const char *path, struct config **out, struct hsmca_err *e);
/* Parse from memory; name is used in messages. */
int	config_parse(const char *text, size_t len, const char *name,
	    struct config **out, struct hsmca_err *e);
void	config_free(struct config *cfg);

/* Print the normalized form: every key, defaults included, in a fixed
 * order; config_parse() of the output gives an equal config. */
int	config_print(const struct config *cfg, FILE *fp);

const struct profile *config_profile(const struct config *cfg,
	    const char *name);
/* The EST label ("" for the default); NULL if not configured. */
const struct config_est *config_est_label(const struct config *cfg,
	    const char *label);

#endif
