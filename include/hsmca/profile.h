/* profile.h: named certificate profiles. A profile decides every
 * extension and the validity; a CSR contributes its public key and the
 * names the profile allows. */
#ifndef HSMCA_PROFILE_H
#define HSMCA_PROFILE_H

#include <stdint.h>
#include <time.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

#include "hsmca/err.h"

struct csr;

/* keyUsage bits (same values as OpenSSL's KU_* so they can be compared
 * with X509_get_key_usage()). */
#define PROFILE_KU_DIGITAL_SIGNATURE	0x0080
#define PROFILE_KU_NON_REPUDIATION	0x0040
#define PROFILE_KU_KEY_ENCIPHERMENT	0x0020
#define PROFILE_KU_DATA_ENCIPHERMENT	0x0010
#define PROFILE_KU_KEY_AGREEMENT	0x0008
#define PROFILE_KU_KEY_CERT_SIGN	0x0004
#define PROFILE_KU_CRL_SIGN		0x0002

/* extendedKeyUsage bits (OpenSSL's XKU_* values). */
#define PROFILE_EKU_SERVER_AUTH		0x0001
#define PROFILE_EKU_CLIENT_AUTH		0x0002
#define PROFILE_EKU_EMAIL_PROTECTION	0x0004
#define PROFILE_EKU_CODE_SIGNING	0x0008
#define PROFILE_EKU_OCSP_SIGNING	0x0020
#define PROFILE_EKU_TIME_STAMPING	0x0040

/* Subject alternative name types a profile may copy from a CSR. */
#define PROFILE_SAN_DNS		0x01
#define PROFILE_SAN_IP		0x02
#define PROFILE_SAN_URI		0x04
#define PROFILE_SAN_EMAIL	0x08

/* Subject attributes a profile may copy from a CSR. */
#define PROFILE_SUBJ_CN		0x01
#define PROFILE_SUBJ_O		0x02
#define PROFILE_SUBJ_OU		0x04
#define PROFILE_SUBJ_C		0x08
#define PROFILE_SUBJ_ST		0x10
#define PROFILE_SUBJ_L		0x20
#define PROFILE_SUBJ_SERIAL	0x40	/* serialNumber attribute */

struct profile {
	char		*name;
	int64_t		 validity;	/* seconds */
	int64_t		 backdate;	/* notBefore = now - backdate (clock skew) */
	unsigned int	 key_usage;	/* PROFILE_KU_* */
	unsigned int	 ext_key_usage;	/* PROFILE_EKU_* */
	int		 is_ca;		/* basicConstraints cA */
	int		 pathlen;	/* -1: no pathLenConstraint */
	unsigned int	 subject_allowed;	/* PROFILE_SUBJ_*: anything else refused */
	int		 require_cn;
	unsigned int	 san_allowed;	/* PROFILE_SAN_*: anything else refused */
	int		 require_san;
	/* CA profiles: names no certificate below this CA may carry
	 * (nameConstraints, excludedSubtrees); NULL: none. The appliance's
	 * own names go here (config_load), so that a CA it issues cannot
	 * make a certificate that passes for the appliance. */
	NAME_CONSTRAINTS *excluded;
	/* Why those names are unknown (tls-cert does not read): such a
	 * profile issues nothing until it does. "": known. */
	char		 excluded_err[200];
};

/* The built-in profiles: "device", "server", "edge-ca". Config sections
 * override or add to them. */
#define PROFILE_BUILTIN_COUNT 3
void	profile_builtin(int idx, struct profile *out);	/* strdup'd name */
void	profile_free_fields(struct profile *p);
int	profile_copy(struct profile *dst, const struct profile *src);

/* Add names (DNS names and IP addresses; others are skipped) to the
 * subtrees p's certificates exclude. */
int	profile_exclude_names(struct profile *p, const GENERAL_NAMES *names,
	    struct hsmca_err *e);

/* Name <-> bit tables for the config parser and printing. Each returns 0
 * and sets *bit, or -1 for an unknown name. */
int	 profile_ku_parse(const char *name, unsigned int *bit);
int	 profile_eku_parse(const char *name, unsigned int *bit);
int	 profile_san_parse(const char *name, unsigned int *bit);
int	 profile_subj_parse(const char *name, unsigned int *bit);
/* Comma-separated names of the bits set in mask, into buf. */
char	*profile_ku_format(unsigned int mask, char *buf, size_t len);
char	*profile_eku_format(unsigned int mask, char *buf, size_t len);
char	*profile_san_format(unsigned int mask, char *buf, size_t len);
char	*profile_subj_format(unsigned int mask, char *buf, size_t len);

/* Apply the profile to cert (version, serial, issuer and public key are
 * set by the caller): subject and SAN from the CSR as the profile allows,
 * validity from now clamped to the issuer's notAfter, basicConstraints,
 * keyUsage, extendedKeyUsage, and for a CA profile with excluded names
 * a critical nameConstraints (refused, HSMCA_ERR_CONFIG, while
 * excluded_err says they are unknown). Refuses (HSMCA_ERR_POLICY, with a reason) a
 * CSR that asks for a name the profile does not allow, misses a required
 * name, or asks for CA:TRUE under a non-CA profile. The CSR's other
 * requested extensions are ignored. */
int	profile_apply(const struct profile *p, const struct csr *csr,
	    X509 *cert, const X509 *issuer, time_t now, struct hsmca_err *e);

/* Same checks as profile_apply without building anything: used to refuse
 * a request before any state is touched. */
int	profile_check_csr(const struct profile *p, const struct csr *csr,
	    struct hsmca_err *e);

#endif
