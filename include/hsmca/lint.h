/* lint.h: checks on a certificate before the HSM signs it, and on the
 * signed result before it is released. */
#ifndef HSMCA_LINT_H
#define HSMCA_LINT_H

#include <stddef.h>
#include <openssl/x509.h>

#include "hsmca/err.h"
#include "hsmca/profile.h"

struct sigcheck;

/* Before signing: version 3; serial positive, non-zero, at most 20
 * octets; issuer name equals the issuer's subject; validity inside the
 * issuer's; subject non-empty or SAN present (critical then); SKI present
 * and AKI equal to the issuer's SKI; extensions exactly as the profile
 * says (basicConstraints, keyUsage, extendedKeyUsage); no duplicate
 * extension; the public key passes the key policy. p may be NULL for a
 * CA certificate checked on its own. */
int	lint_presign(const X509 *cert, const X509 *issuer,
	    const struct profile *p, struct hsmca_err *e);
/* The same, for a certificate whose SubjectPublicKeyInfo was copied
 * byte for byte from where key was decoded (a CSR's): the key checks run
 * on key, which must be of the algorithm and curve the copy names, and
 * the copy is not decoded again. key NULL: cert's own key. */
int	lint_presign_key(const X509 *cert, const EVP_PKEY *key,
	    const X509 *issuer, const struct profile *p, struct hsmca_err *e);

/* After signing, on the re-parsed DER: tbsCertificate.signature equals
 * signatureAlgorithm, both match the issuer key type, and the signature
 * verifies with the issuer's public key (verify-after-sign). */
int	lint_postsign(const X509 *cert, const X509 *issuer,
	    struct hsmca_err *e);
/* The same on the DER itself, exactly len bytes: what is checked is
 * what is released. The subject key is not decoded again (see
 * lint_presign_key); every extension OpenSSL knows must decode. check,
 * when not NULL and made for the issuer's key and the certificate's
 * digest, verifies the signature faster (sigcheck.h). */
int	lint_postsign_der(const unsigned char *der, size_t len,
	    const X509 *issuer, const struct sigcheck *check,
	    struct hsmca_err *e);

#endif
