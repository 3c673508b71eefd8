/* hsm.h: the CA keys in a PKCS#11 token. Keys are generated and imported
 * with raw PKCS#11 (sensitive, never extractable) and sign through
 * libp11's EVP_PKEY, so X509_sign, X509_CRL_sign and OCSP_basic_sign all
 * work with a key that never leaves the token. */
#ifndef HSMCA_HSM_H
#define HSMCA_HSM_H

#include <openssl/evp.h>

#include "hsmca/config.h"
#include "hsmca/err.h"
#include "hsmca/keytype.h"

struct hsm;
struct hsm_key;

/* What the token says about a private key. */
struct hsm_key_info {
	int	token;			/* CKA_TOKEN */
	int	private_;		/* CKA_PRIVATE */
	int	sensitive;		/* CKA_SENSITIVE */
	int	extractable;		/* CKA_EXTRACTABLE */
	int	always_sensitive;	/* CKA_ALWAYS_SENSITIVE */
	int	never_extractable;	/* CKA_NEVER_EXTRACTABLE */
};

/* Load the module the config names, find the token its URI names, read
 * the PIN from the pin source, log in and wipe the PIN. */
int	hsm_open(const struct config_hsm *cfg, struct hsm **out,
	    struct hsmca_err *e);
/* What hsm_open checks before it loads anything: the module the config
 * names is there and readable. */
int	hsm_check_module(const struct config_hsm *cfg, struct hsmca_err *e);
void	hsm_close(struct hsm *h);
/* Keep the PIN in h (locked in memory, wiped by hsm_close) for the
 * logins of hsm_recover(), instead of reading the pin source again:
 * for a daemon that will have dropped the rights to read it. */
int	hsm_keep_pin(struct hsm *h, struct hsmca_err *e);
const char *hsm_token_label(const struct hsm *h);

/* Initialize a free slot's token with the label in cfg->token, the SO PIN
 * from so_pin_source and the user PIN from cfg->pin_source. For demos and
 * tests on SoftHSM2; a production HSM is initialized with its own tools. */
int	hsm_init_token(const struct config_hsm *cfg, const char *so_pin_source,
	    struct hsmca_err *e);

/* Read a PIN from "file:/path" (first line) or "env:NAME". The caller
 * wipes it with util_freezero(pin, strlen(pin)). */
int	hsm_read_pin(const char *source, char **pin, struct hsmca_err *e);
/* What hsm_read_pin checks before it reads: the variable is set, or the
 * file opens for reading and is neither open to others nor writable by
 * its group. The PIN itself is not read (hsmcad -t). */
int	hsm_check_pin_source(const char *source, struct hsmca_err *e);

/* A new key pair inside the token: CKA_TOKEN, CKA_PRIVATE, CKA_SENSITIVE
 * true, CKA_EXTRACTABLE false, a random CKA_ID, the given CKA_LABEL. */
int	hsm_generate_key(struct hsm *h, enum key_type type, const char *label,
	    struct hsm_key **out, struct hsmca_err *e);
/* The URI a key about to be made with hsm_generate_key_at will have: a
 * new random CKA_ID and the given CKA_LABEL, in h's token. A caller can
 * record it before the key exists, and find the key by it after a crash. */
int	hsm_key_uri_new(struct hsm *h, const char *label, char **uri,
	    struct hsmca_err *e);
/* hsm_generate_key with the CKA_ID and CKA_LABEL of uri, from
 * hsm_key_uri_new. */
int	hsm_generate_key_at(struct hsm *h, enum key_type type, const char *uri,
	    struct hsm_key **out, struct hsmca_err *e);
/* Put an existing private key (an operator's intermediate CA key) into
 * the token as a sensitive, non-extractable object. */
int	hsm_import_key(struct hsm *h, EVP_PKEY *pk, const char *label,
	    struct hsm_key **out, struct hsmca_err *e);
/* Find a key by PKCS#11 URI (RFC 7512: id and/or object):
 * HSMCA_ERR_KEY_NOT_FOUND only if no private key matches;
 * HSMCA_ERR_KEY_AMBIGUOUS if several do (never take that for "gone"),
 * or if its public key cannot be told from another key's sharing its
 * CKA_ID (libp11's view of it must be the very pair found). */
int	hsm_load_key(struct hsm *h, const char *uri, struct hsm_key **out,
	    struct hsmca_err *e);
/* hsm_load_key for a key that will sign much (an issuing generation):
 * with [hsm] session-copy, it signs through a session copy of the key
 * in the token, made once per key and session and destroyed with the
 * key by hsm_destroy_key; the token key itself when the token will not
 * copy it. hsm_key_uri and the rest name the token key. */
int	hsm_load_signing_key(struct hsm *h, const char *uri,
	    struct hsm_key **out, struct hsmca_err *e);
/* Remove a key pair from the token, the private key first: a half
 * already gone is not an error. When the token refuses, HSMCA_ERR_HSM
 * (HSMCA_ERR_HSM_UNAVAILABLE on a fault) naming the PKCS#11 code, and
 * if it kept the private key, the public key is kept too. */
int	hsm_destroy_key(struct hsm *h, struct hsm_key *k, struct hsmca_err *e);
int	hsm_key_info(struct hsm *h, const struct hsm_key *k,
	    struct hsm_key_info *out, struct hsmca_err *e);
void	hsm_key_free(struct hsm_key *k);

/* The private key: operations go to the token. */
EVP_PKEY	*hsm_key_private(const struct hsm_key *k);
/* A software copy of the public key. */
EVP_PKEY	*hsm_key_public(const struct hsm_key *k);
/* pkcs11:token=...;id=...;object=...;type=private */
const char	*hsm_key_uri(const struct hsm_key *k);

/* Bound the sessions open on the token to cfg->sessions (sessions - 1
 * sign at once, one is for key lookups): every signature is bracketed by
 * these two calls, after ERR_clear_error(). A signature that fails marks
 * the token failed. */
void	hsm_sign_enter(struct hsm *h);
void	hsm_sign_leave(struct hsm *h);

/* A signature running longer than this (ms) means the HSM hangs. */
#define HSM_TIMEOUT_MS	1000

/* 0 if the token can be used now; HSMCA_ERR_HSM_UNAVAILABLE and why if
 * it failed and has not recovered, or a signature is hanging. Cheap:
 * call it before every request. */
int	hsm_check(struct hsm *h, struct hsmca_err *e);
/* 1 if a fault was seen and hsm_recover() has not yet succeeded. */
int	hsm_failed(struct hsm *h);
/* Close every session, list the slots again, find the token, read the
 * PIN and log in. The caller guarantees no other thread uses h and
 * every struct hsm_key loaded from it was freed (load them again after:
 * their object handles died with the login). */
int	hsm_recover(struct hsm *h, struct hsmca_err *e);
/* How many times hsm_recover() succeeded. */
unsigned int	hsm_epoch(struct hsm *h);

/* Parse an RFC 7512 URI. Fields are malloc'd or NULL; id is binary. */
struct hsm_uri {
	char		*token;
	char		*manufacturer;
	char		*serial;
	char		*model;
	char		*object;
	unsigned char	*id;
	size_t		 id_len;
	char		*type;
};
int	hsm_uri_parse(const char *uri, struct hsm_uri *out, struct hsmca_err *e);
void	hsm_uri_free(struct hsm_uri *u);

#endif
