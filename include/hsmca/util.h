/* util.h: small helpers shared by lib/, the CLI and the daemon. */
#ifndef HSMCA_UTIL_H
#define HSMCA_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <openssl/x509.h>

#include "hsmca/err.h"

/* Read a whole file (at most max bytes) into a NUL-terminated buffer. */
int	util_read_file(const char *path, size_t max, unsigned char **out,
	    size_t *outlen, struct hsmca_err *e);
/* The same from an open descriptor (path names it in errors). */
int	util_read_fd(int fd, const char *path, size_t max, unsigned char **out,
	    size_t *outlen, struct hsmca_err *e);

/* Write data to path atomically: a temporary file in the same directory,
 * fsync, rename, fsync of the directory. mode applies to the new file. */
int	util_write_file_atomic(const char *path, const void *data, size_t len,
	    int mode, struct hsmca_err *e);

/* Lowercase hex of len bytes into out (2*len+1 bytes). */
void	util_hex(const unsigned char *in, size_t len, char *out);

/* SHA-1 / SHA-256 thumbprints of a certificate as lowercase hex. */
#define UTIL_SHA1_HEX	41
#define UTIL_SHA256_HEX	65
int	util_cert_sha1(const X509 *x, char out[UTIL_SHA1_HEX]);
int	util_cert_sha256(const X509 *x, char out[UTIL_SHA256_HEX]);

/* What a memory BIO holds, as a NUL-terminated string (malloc'd) and
 * its length in *len (len may be NULL); NULL if out of memory. */
char	*util_bio_string(BIO *b, size_t *len);

/* The one commonName of n, decoded to UTF-8 whatever its string type,
 * into out: 0; 1 if n has no CN; -1 if it has several, one that does
 * not decode, holds a NUL or does not fit. Names are compared this way,
 * never by their raw bytes. */
int	util_name_cn(const X509_NAME *n, char *out, size_t len);

/* X509_NAME as an RFC 2253 string (malloc'd), or NULL. */
char	*util_name_string(const X509_NAME *n);

/* Parse "CN=Device CA,O=Example" (',' inside a value escaped as "\,")
 * into a new X509_NAME; HSMCA_ERR_ARG with a reason on bad syntax. */
int	util_parse_name(const char *s, X509_NAME **out, struct hsmca_err *e);

/* Copy a SubjectPublicKeyInfo field by field (algorithm, parameters,
 * key bits): with OpenSSL 3.0, X509_set_pubkey() encodes the key again
 * and costs several signatures' worth of time. */
int	util_copy_spki(X509_PUBKEY *dst, const X509_PUBKEY *src);

/* Base64 as EST and PEM bodies carry it (space, tab, CR and LF skipped
 * and '-' ending the data when decoding, 64-column lines when
 * encoding); results are malloc'd. A decode that yields nothing is
 * refused; no copy of the data is left unwiped on any path. */
int	util_b64_decode(const unsigned char *in, size_t len,
	    unsigned char **out, size_t *outlen, struct hsmca_err *e);
int	util_b64_encode(const unsigned char *in, size_t len, char **out,
	    size_t *outlen, struct hsmca_err *e);

/* Wipe and free. */
void	util_freezero(void *p, size_t len);

/* Parse a duration "90d", "12h", "30m", "45s", "2y" (365 days) or plain
 * seconds; returns 0 or -1. */
int	util_parse_duration(const char *s, int64_t *secs);

/* Format secs back to the largest exact unit ("90d"), into buf. */
char	*util_format_duration(int64_t secs, char *buf, size_t len);

#endif
