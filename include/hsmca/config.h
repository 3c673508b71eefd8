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
	int	 session_copy;	/* issuing keys sign through session copies */
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
	int		 ocsp_signer;	/* CONFIG_OCSP_SIGNER_* */
	int64_t		 ocsp_validity;	/* seconds: nextUpdate - thisUpdate */
};

/* Who signs a generation's OCSP responses ([ca] ocsp-signer). */
#define CONFIG_OCSP_SIGNER_RESPONDER	0	/* a delegated responder certificate */
#define CONFIG_OCSP_SIGNER_CA		1	/* the generation's own key */

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
	int	 max_connections;	/* open at once on listen */
	int	 max_http_connections;	/* open at once on http-listen */
	int	 session_tickets;	/* TLS 1.3 tickets, TLS 1.2 ones */
	int	 retry_after;		/* seconds, in 503 answers */
	int64_t	 crl_delay;		/* seconds from a revocation to its CRL */
	int64_t	 audit_checkpoint_interval;	/* seconds between signed
						   audit checkpoints */
	char	*log;			/* "stderr" or "syslog" */
};

/* Operators' roles on the admin listener, most powerful first: admin
 * does everything, operator issues, revokes and makes proofs of
 * possession, auditor reads. */
enum config_role {
	CONFIG_ROLE_ADMIN,
	CONFIG_ROLE_OPERATOR,
	CONFIG_ROLE_AUDITOR,
	CONFIG_ROLE_MAX,
	CONFIG_ROLE_NONE = CONFIG_ROLE_MAX
};

/* hsmcad's admin listener: JSON over mutual TLS. */
struct config_admin {
	char	*listen;		/* "HOST:PORT"; NULL: none */
	char	*client_ca;		/* PEM: operators' CA certificates */
	int	 max_connections;	/* open at once on listen */
	char	*roles[CONFIG_ROLE_MAX];	/* "CN=x, sha256:HEX"; NULL: none */
};

/* The CLI against an admin listener. */
struct config_remote {
	char	*server;		/* https://host:port; NULL: local */
	char	*cert;			/* operator certificate (PEM, with chain) */
	char	*key;			/* its key (PEM) */
	char	*ca;			/* trust for the server; NULL: system */
};

/* An EST label: /.well-known/est/LABEL/ ("" is the default, no label). */
struct config_est {
	char	*label;
	char	*profile;		/* the profile it issues with */
	char	*bootstrap_ca;		/* PEM: factory CAs trusted for enrollment */
	int	 cn_match;		/* CSR CN must equal the bootstrap cert's CN */
	int	 serverkeygen;		/* allow /serverkeygen on this label */
};

struct fileset;

struct config {
	char			*path;	/* NULL for embedded defaults */
	struct config_hsm	 hsm;
	struct config_store	 store;
	struct config_ca	 ca;
	struct config_daemon	 daemon;
	struct config_admin	 admin;
	struct config_remote	 remote;
	struct profile		*profiles;
	size_t			 nprofiles;
	struct config_est	*est;
	size_t			 nest;
};

/* Load path; NULL loads the embedded defaults (a demo layout under
 * $HSMCA_HOME or ./hsmca-demo). Unknown sections or keys, bad values and
 * duplicates are refused with "path:line: reason". */
int	config_load(const char *path, struct config **out, struct hsmca_err *e);
/* The demo directory, $HSMCA_HOME or ./hsmca-demo, made absolute
 * against the current directory once and set as $HSMCA_HOME: every later
 * load of the defaults, in this process and the ones it forks, names the
 * same files wherever they run (hsmcad, which -d moves to / and which
 * loads the defaults again at each SIGHUP). */
int	config_fix_demo_home(struct hsmca_err *e);
/* The same, and every file the configuration names (tls-cert, each EST
 * label's bootstrap-ca, the admin client-ca) read into *fs: hsmcad's
 * snapshot, which its processes parse again with config_load_fileset.
 * A named file that does not read is recorded in *fs, not refused. */
int	config_snapshot(const char *path, struct fileset **fs,
	    struct config **out, struct hsmca_err *e);
/* Load path (NULL: the defaults) from fs alone: no file is opened. */
int	config_load_fileset(const struct fileset *fs, const char *path,
	    struct config **out, struct hsmca_err *e);
/* Parse from memory; name is used in messages. */
int	config_parse(const char *text, size_t len, const char *name,
	    struct config **out, struct hsmca_err *e);
void	config_free(struct config *cfg);

/* Print the normalized form: every key, defaults included, in a fixed
 * order; config_parse() of the output gives an equal config. */
int	config_print(const struct config *cfg, FILE *fp);

const struct profile *config_profile(const struct config *cfg,
	    const char *name);
/* The most powerful role a client certificate has (by its subject CN or
 * its SHA-256 fingerprint in hex), or CONFIG_ROLE_NONE. */
enum config_role config_admin_role(const struct config *cfg, const char *cn,
	    const char *sha256);
/* The EST label ("" for the default); NULL if not configured. */
const struct config_est *config_est_label(const struct config *cfg,
	    const char *label);

/* The keys hsmcad reads only at its start whose values differ between
 * run (the configuration it started with) and next (a reload's): up to
 * max of their names ("[daemon] listen") into names, and how many
 * differ. A reload keeps the running value of each. */
size_t	config_restart_keys(const struct config *run,
	    const struct config *next, const char **names, size_t max);

#endif
