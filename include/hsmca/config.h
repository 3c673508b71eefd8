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
	char		*crl_url;	/* "%g" is replaced by the generation id */
	char		*ocsp_url;
};

struct config {
	char			*path;	/* NULL for embedded defaults */
	struct config_hsm	 hsm;
	struct config_store	 store;
	struct config_ca	 ca;
	struct profile		*profiles;
	size_t			 nprofiles;
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

#endif
