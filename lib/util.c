/* util.c: files, hex, thumbprints, durations. */
#include "config.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "hsmca/util.h"

int
util_read_file(const char *path, size_t max, unsigned char **out,
    size_t *outlen, struct hsmca_err *e)
{
	int fd, ret;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return err_set(e, HSMCA_ERR_IO, "%s: %s", path, strerror(errno));
	ret = util_read_fd(fd, path, max, out, outlen, e);
	close(fd);
	return ret;
}

int
util_read_fd(int fd, const char *path, size_t max, unsigned char **out,
    size_t *outlen, struct hsmca_err *e)
{
	unsigned char *buf = NULL;
	size_t len = 0, cap = 0;
	ssize_t r;
	int ret = HSMCA_ERR_IO;

	for (;;) {
		if (len == cap) {
			unsigned char *nb;

			cap = cap == 0 ? 4096 : cap * 2;
			if ((nb = realloc(buf, cap + 1)) == NULL) {
				ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
				goto out;
			}
			buf = nb;
		}
		r = read(fd, buf + len, cap - len);
		if (r == -1 && errno == EINTR)
			continue;
		if (r == -1) {
			err_set(e, HSMCA_ERR_IO, "%s: %s", path, strerror(errno));
			goto out;
		}
		if (r == 0)
			break;
		len += (size_t)r;
		if (len > max) {
			err_set(e, HSMCA_ERR_IO, "%s: larger than %zu bytes",
			    path, max);
			goto out;
		}
	}
	if (buf == NULL && (buf = malloc(1)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	buf[len] = '\0';
	*out = buf;
	*outlen = len;
	buf = NULL;
	ret = 0;
out:
	if (buf != NULL)
		util_freezero(buf, cap + 1);
	return ret;
}

int
util_write_file_atomic(const char *path, const void *data, size_t len,
    int mode, struct hsmca_err *e)
{
	char tmp[PATH_MAX], dir[PATH_MAX];
	const unsigned char *p = data;
	int fd = -1, dfd = -1, ret = HSMCA_ERR_IO;
	size_t off = 0;

	if (snprintf(tmp, sizeof(tmp), "%s.tmp.XXXXXX", path) >= (int)sizeof(tmp) ||
	    snprintf(dir, sizeof(dir), "%s", path) >= (int)sizeof(dir))
		return err_set(e, HSMCA_ERR_ARG, "%s: path too long", path);
	if ((fd = mkstemp(tmp)) == -1) {
		err_set(e, HSMCA_ERR_IO, "%s: %s", tmp, strerror(errno));
		return HSMCA_ERR_IO;
	}
	if (fchmod(fd, (mode_t)mode) == -1)
		goto fail;
	while (off < len) {
		ssize_t w = write(fd, p + off, len - off);

		if (w == -1 && errno == EINTR)
			continue;
		if (w == -1)
			goto fail;
		off += (size_t)w;
	}
	if (fsync(fd) == -1)
		goto fail;
	if (close(fd) == -1) {
		fd = -1;
		goto fail;
	}
	fd = -1;
	if (rename(tmp, path) == -1)
		goto fail;
	if ((dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) != -1) {
		(void)fsync(dfd);
		close(dfd);
	}
	return 0;
fail:
	err_set(e, HSMCA_ERR_IO, "%s: %s", path, strerror(errno));
	if (fd != -1)
		close(fd);
	unlink(tmp);
	return ret;
}

void
util_hex(const unsigned char *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0x0f];
	}
	out[2 * len] = '\0';
}

static int
cert_digest(const X509 *x, const EVP_MD *md, char *out)
{
	unsigned char buf[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	if (!X509_digest(x, md, buf, &n))
		return -1;
	util_hex(buf, n, out);
	return 0;
}

int
util_cert_sha1(const X509 *x, char out[UTIL_SHA1_HEX])
{
	return cert_digest(x, EVP_sha1(), out);
}

int
util_cert_sha256(const X509 *x, char out[UTIL_SHA256_HEX])
{
	return cert_digest(x, EVP_sha256(), out);
}

char *
util_bio_string(BIO *b, size_t *len)
{
	char *data, *s;
	long n;

	if ((n = BIO_get_mem_data(b, &data)) < 0)
		n = 0;
	if ((s = malloc((size_t)n + 1)) == NULL)
		return NULL;
	if (n > 0)
		memcpy(s, data, (size_t)n);
	s[n] = '\0';
	if (len != NULL)
		*len = (size_t)n;
	return s;
}

int
util_name_cn(const X509_NAME *n, char *out, size_t len)
{
	unsigned char *u = NULL;
	int i, ulen, ret = -1;

	if (len > 0)
		out[0] = '\0';
	if (n == NULL ||
	    (i = X509_NAME_get_index_by_NID(n, NID_commonName, -1)) < 0)
		return 1;
	if (X509_NAME_get_index_by_NID(n, NID_commonName, i) >= 0)
		return -1;
	ulen = ASN1_STRING_to_UTF8(&u, X509_NAME_ENTRY_get_data(
	    X509_NAME_get_entry(n, i)));
	if (ulen >= 0 && memchr(u, '\0', (size_t)ulen) == NULL &&
	    (size_t)ulen < len) {
		memcpy(out, u, (size_t)ulen);
		out[ulen] = '\0';
		ret = 0;
	}
	OPENSSL_free(u);
	return ret;
}

char *
util_name_string(const X509_NAME *n)
{
	BIO *b;
	char *s = NULL;

	if (n == NULL || (b = BIO_new(BIO_s_mem())) == NULL)
		return NULL;
	if (X509_NAME_print_ex(b, n, 0,
	    XN_FLAG_RFC2253 & ~XN_FLAG_DN_REV & ~ASN1_STRFLGS_ESC_MSB) >= 0)
		s = util_bio_string(b, NULL);
	BIO_free(b);
	return s;
}

void
util_freezero(void *p, size_t len)
{
	if (p == NULL)
		return;
	OPENSSL_cleanse(p, len);
	free(p);
}

int
util_parse_duration(const char *s, int64_t *secs)
{
	char *end;
	long long v;
	int64_t mul = 1;

	if (s == NULL || *s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoll(s, &end, 10);
	if (errno != 0 || v < 0)
		return -1;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		mul = 60;
		break;
	case 'h':
		mul = 3600;
		break;
	case 'd':
		mul = 86400;
		break;
	case 'y':
		mul = 365 * 86400;
		break;
	default:
		return -1;
	}
	if (*end != '\0' && end[1] != '\0')
		return -1;
	if (v > INT64_MAX / mul)
		return -1;
	*secs = (int64_t)v * mul;
	return 0;
}

char *
util_format_duration(int64_t secs, char *buf, size_t len)
{
	if (secs != 0 && secs % 86400 == 0)
		snprintf(buf, len, "%" PRId64 "d", secs / 86400);
	else if (secs != 0 && secs % 3600 == 0)
		snprintf(buf, len, "%" PRId64 "h", secs / 3600);
	else if (secs != 0 && secs % 60 == 0)
		snprintf(buf, len, "%" PRId64 "m", secs / 60);
	else
		snprintf(buf, len, "%" PRId64 "s", secs);
	return buf;
}

int
util_parse_name(const char *s, X509_NAME **out, struct hsmca_err *e)
{
	X509_NAME *n = NULL;
	char *buf = NULL, *field, *val;
	size_t len;
	int ret = HSMCA_ERR_ARG;

	*out = NULL;
	if (s == NULL || *s == '\0')
		return err_set(e, HSMCA_ERR_ARG, "empty distinguished name");
	len = strlen(s);
	if ((n = X509_NAME_new()) == NULL || (buf = malloc(len + 1)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	for (const char *p = s; *p != '\0';) {
		size_t j = 0;

		/* One "type=value" component, honouring "\," escapes. */
		while (*p != '\0' && *p != ',') {
			if (*p == '\\' && p[1] != '\0')
				p++;
			buf[j++] = *p++;
		}
		buf[j] = '\0';
		if (*p == ',')
			p++;
		field = buf;
		while (*field == ' ')
			field++;
		if ((val = strchr(field, '=')) == NULL || val == field) {
			err_set(e, ret, "'%s': expected TYPE=value", field);
			goto out;
		}
		*val++ = '\0';
		if (*val == '\0') {
			err_set(e, ret, "'%s' has an empty value", field);
			goto out;
		}
		if (OBJ_txt2nid(field) == NID_undef) {
			err_set(e, ret, "'%s' is not an attribute type (CN, O, "
			    "OU, C, ST, L, serialNumber ...)", field);
			goto out;
		}
		if (!X509_NAME_add_entry_by_txt(n, field, MBSTRING_UTF8,
		    (const unsigned char *)val, -1, -1, 0)) {
			err_set_ssl(e, ret, "%s=%s is not a valid value", field,
			    val);
			goto out;
		}
	}
	*out = n;
	n = NULL;
	ret = 0;
out:
	X509_NAME_free(n);
	free(buf);
	return ret;
}

int
util_copy_spki(X509_PUBKEY *dst, const X509_PUBKEY *src)
{
	const unsigned char *pk;
	const void *pval;
	unsigned char *copy = NULL;
	ASN1_OBJECT *alg = NULL;
	X509_ALGOR *a;
	void *val = NULL;
	int pklen, ptype;

	if (!X509_PUBKEY_get0_param(NULL, &pk, &pklen, &a, src))
		return -1;
	X509_ALGOR_get0((const ASN1_OBJECT **)(uintptr_t)&alg, &ptype, &pval, a);
	if ((alg = OBJ_dup(alg)) == NULL)
		return -1;
	if (ptype == V_ASN1_OBJECT)
		val = OBJ_dup(pval);
	else if (ptype == V_ASN1_SEQUENCE)
		val = ASN1_STRING_dup(pval);
	if ((ptype == V_ASN1_OBJECT || ptype == V_ASN1_SEQUENCE) && val == NULL)
		goto fail;
	if (pklen > 0 && (copy = OPENSSL_memdup(pk, (size_t)pklen)) == NULL)
		goto fail;
	/* set0 takes ownership of alg, val and copy. */
	if (!X509_PUBKEY_set0_param(dst, alg, ptype, val, copy, pklen))
		goto fail;
	return 0;
fail:
	ASN1_OBJECT_free(alg);
	if (ptype == V_ASN1_OBJECT)
		ASN1_OBJECT_free(val);
	else if (ptype == V_ASN1_SEQUENCE)
		ASN1_STRING_free(val);
	OPENSSL_free(copy);
	return -1;
}

/* What util_b64_decode makes of each byte, as EVP_DecodeUpdate reads
 * it: a 6-bit value; '='; space, tab, CR or LF, skipped anywhere; '-',
 * which ends the data (a PEM footer's first byte) and the rest is not
 * read; anything else refuses the input. */
#define B64_PAD		0x40
#define B64_SKIP	0x41
#define B64_END		0x42
#define B64_BAD		0xff
static const unsigned char b64_value[256] = {
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0x41, 0x41, 0xff, 0xff, 0x41, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0x41, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0x3e, 0xff, 0x42, 0xff, 0x3f,
	0x34, 0x35, 0x36, 0x37, 0x38, 0x39, 0x3a, 0x3b,
	0x3c, 0x3d, 0xff, 0xff, 0xff, 0x40, 0xff, 0xff,
	0xff, 0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06,
	0x07, 0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e,
	0x0f, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16,
	0x17, 0x18, 0x19, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0x1a, 0x1b, 0x1c, 0x1d, 0x1e, 0x1f, 0x20,
	0x21, 0x22, 0x23, 0x24, 0x25, 0x26, 0x27, 0x28,
	0x29, 0x2a, 0x2b, 0x2c, 0x2d, 0x2e, 0x2f, 0x30,
	0x31, 0x32, 0x33, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
	0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
};

/* One pass, no EVP_ENCODE_CTX: that keeps a copy of the last partial
 * line (of a serverkeygen key, on the device) and is freed unwiped.
 * Accepts what EVP_DecodeUpdate and EVP_DecodeFinal accepted: at most
 * two '=', only at the end of the last quad; a partial quad refused. */
int
util_b64_decode(const unsigned char *in, size_t len, unsigned char **out,
    size_t *outlen, struct hsmca_err *e)
{
	unsigned char *buf;
	size_t off = 0, i;
	uint32_t quad = 0;
	unsigned int n = 0, pad = 0, v = 0;
	int ret = HSMCA_ERR_ARG;

	*out = NULL;
	if (len > INT_MAX / 2)
		return err_set(e, ret, "base64 input too large");
	/* Three bytes a quad at most; never malloc(0). */
	if ((buf = malloc(len / 4 * 3 + 1)) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	for (i = 0; i < len; i++) {
		v = b64_value[in[i]];
		if (v >= 64) {
			if (v == B64_SKIP)
				continue;
			if (v == B64_END)
				break;
			if (v == B64_BAD) {
				err_set(e, ret, "not base64: byte %zu", i);
				goto out;
			}
			if (++pad > 2) {
				err_set(e, ret, "not base64: more than two '='");
				goto out;
			}
		} else if (pad > 0) {
			err_set(e, ret, "not base64: data after the padding");
			goto out;
		}
		quad = quad << 6 | (v & 0x3f);	/* '=' counts as 0 */
		if (++n == 4) {
			/* Only the bytes the padding leaves are written, so
			 * nothing past *outlen holds any of the data. */
			buf[off++] = (unsigned char)(quad >> 16);
			if (pad < 2)
				buf[off++] = (unsigned char)(quad >> 8);
			if (pad < 1)
				buf[off++] = (unsigned char)quad;
			quad = 0;
			n = 0;
		}
	}
	if (n != 0) {
		err_set(e, ret, "not base64: a partial group at the end");
		goto out;
	}
	if (off == 0) {
		err_set(e, ret, "not base64: no data");
		goto out;
	}
	*outlen = off;
	*out = buf;
	buf = NULL;
	ret = 0;
out:
	/* off bytes were written: nothing else in buf holds data. */
	if (buf != NULL)
		util_freezero(buf, off);
	OPENSSL_cleanse(&quad, sizeof(quad));
	OPENSSL_cleanse(&v, sizeof(v));
	return ret;
}

/* 48 bytes to a 64-column line, as EVP_EncodeUpdate writes them, but
 * with no EVP_ENCODE_CTX: that keeps the last partial line of the input
 * (a serverkeygen private key's) and is freed without being wiped. */
int
util_b64_encode(const unsigned char *in, size_t len, char **out,
    size_t *outlen, struct hsmca_err *e)
{
	char *buf;
	size_t cap, off = 0, n;

	*out = NULL;
	if (len > INT_MAX / 2)
		return err_set(e, HSMCA_ERR_ARG, "base64 input too large");
	/* Each line: 64 characters and '\n'; then the NUL. */
	cap = (len / 48 + 1) * 65 + 1;
	if ((buf = malloc(cap)) == NULL)
		return err_set(e, HSMCA_ERR_ALLOC, "out of memory");
	for (size_t i = 0; i < len; i += n) {
		n = len - i < 48 ? len - i : 48;
		off += (size_t)EVP_EncodeBlock((unsigned char *)buf + off,
		    in + i, (int)n);
		buf[off++] = '\n';
	}
	buf[off] = '\0';	/* a C string too, as EVP_EncodeFinal left it */
	*outlen = off;
	*out = buf;
	return 0;
}

