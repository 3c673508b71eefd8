/* ca.h: CA generations. A CA is a sequence of generations (key in the
 * token + certificate); one is active and issues. */
#ifndef HSMCA_CA_H
#define HSMCA_CA_H

#include <stdint.h>
#include <time.h>

#include "hsmca/config.h"
#include "hsmca/err.h"
#include "hsmca/hsm.h"
#include "hsmca/issue.h"
#include "hsmca/store.h"

struct ca_ctx {
	const struct config	*cfg;
	struct store		*st;
	struct hsm		*hsm;
	const char		*actor;	/* who, for the audit log; NULL: "local" */
};

enum ca_init_mode {
	CA_INIT_ROOT_IN_HSM,	/* root key and issuing key in the same token */
	CA_INIT_SELF_SIGNED,	/* one self-signed issuing CA, for labs */
	CA_INIT_EXTERNAL,	/* issuing key in the token, CSR for an outside root */
	CA_INIT_MODE_MAX
};

struct ca_init_result {
	int64_t	 gen_id;	/* the issuing generation */
	int64_t	 root_id;	/* 0 unless CA_INIT_ROOT_IN_HSM */
	char	*csr_pem;	/* CA_INIT_EXTERNAL: the request to get signed */
};

/* Create the first issuing generation. Refused if one already exists. */
int	ca_init(struct ca_ctx *c, enum ca_init_mode mode, time_t now,
	    struct ca_init_result *out, struct hsmca_err *e);
void	ca_init_result_free(struct ca_init_result *r);

/* Import the certificate an outside root signed for a pending generation
 * (gen_id 0: the only pending one). pem holds the certificate, then its
 * chain up to a self-signed root; the chain must verify. The generation
 * becomes active if none is, inactive otherwise. */
int	ca_import_cert(struct ca_ctx *c, int64_t gen_id, const char *pem,
	    time_t now, int64_t *gen_out, struct hsmca_err *e);

/* Import an existing CA: its private key (PEM, possibly encrypted with a
 * passphrase from passphrase_source "file:"/"env:") goes into the token
 * as sensitive and non-extractable; cert_pem holds the certificate and
 * optionally its chain. */
int	ca_import(struct ca_ctx *c, const char *key_pem, size_t key_len,
	    const char *passphrase_source, const char *cert_pem, time_t now,
	    int64_t *gen_out, struct hsmca_err *e);

/* The active issuing generation, ready to sign. */
int	ca_open_active(struct ca_ctx *c, struct issuer **out,
	    struct hsmca_err *e);

/* PEM of a generation's certificate, followed by its chain when asked. */
int	ca_pem(struct ca_ctx *c, const struct store_generation *g,
	    int with_chain, char **pem, struct hsmca_err *e);

/* The status a person should see: a stored active/inactive generation
 * past its notAfter shows as expired. */
enum store_gen_status ca_effective_status(const struct store_generation *g,
	    time_t now);

#endif
