/* sigcheck.h: checking many ECDSA signatures of one public key.
 *
 * Every certificate hsmca issues is verified with its CA's public key
 * before it is released (verify-after-sign). An ECDSA verification
 * computes u1*G + u2*Q; OpenSSL keeps multiples of the curve's generator
 * G precomputed, but computes those of the key Q anew on every call,
 * which is most of a verification's time. A sigcheck precomputes Q's
 * multiples once (tens of milliseconds, about 150 KiB for P-256), so a
 * CA that verifies thousands of its own signatures pays for two
 * fixed-base multiplications each. It is ECDSA as SEC 1 (4.1.4) and
 * OpenSSL's own verify define it, on OpenSSL's arithmetic; the unit
 * tests hold it to EVP_DigestVerify's answer. */
#ifndef HSMCA_SIGCHECK_H
#define HSMCA_SIGCHECK_H

#include <stddef.h>
#include <openssl/evp.h>

struct sigcheck;

/* A checker for key's ECDSA signatures over md digests; NULL when key
 * is not an EC key on a named prime curve, or on any failure: the
 * caller verifies the usual way then. key is referenced, not copied. */
struct sigcheck	*sigcheck_new(EVP_PKEY *key, const EVP_MD *md);
void		 sigcheck_free(struct sigcheck *sc);
/* The key and digest the checker is for. */
const EVP_PKEY	*sigcheck_key(const struct sigcheck *sc);
int		 sigcheck_md_type(const struct sigcheck *sc);
/* 1 when sig (a DER ECDSA-Sig-Value, strictly encoded) is the key's
 * signature of msg, 0 when it is not, -1 when it could not be checked
 * (out of memory). */
int		 sigcheck_verify(const struct sigcheck *sc,
		    const unsigned char *msg, size_t len,
		    const unsigned char *sig, size_t siglen);

#endif
