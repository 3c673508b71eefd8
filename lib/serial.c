/* serial.c: random certificate serial numbers and their one hex form. */
#include "config.h"

#include <ctype.h>
#include <string.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>
#include <openssl/rand.h>

#include "hsmca/serial.h"
#include "hsmca/util.h"

#define SERIAL_MAX_OCTETS	((SERIAL_HEX_MAX - 1) / 2)	/* RFC 5280: 20 */

int
serial_generate(ASN1_INTEGER **out, char hex[SERIAL_HEX_MAX],
    struct hsmca_err *e)
{
	unsigned char buf[SERIAL_BYTES];
	ASN1_INTEGER *ai = NULL;
	BIGNUM *bn = NULL;
	int ret = HSMCA_ERR_INTERNAL;

	*out = NULL;
	/*
	 * Clear the top bit so the INTEGER is positive without a 00 pad, and
	 * draw again when the first octet is zero (this also excludes an
	 * all-zero serial). DER drops leading zero octets, so such a draw
	 * would yield a 15-octet serial: keeping every serial exactly 16
	 * octets (32 hex digits) means a serial's length never varies and
	 * tooling that assumes a fixed width never meets a short one. The
	 * cost is under 0.01 bit of the ~127 bits of entropy.
	 */
	do {
		if (RAND_bytes(buf, sizeof(buf)) != 1) {
			err_set_ssl(e, ret, "the random number generator "
			    "failed; no serial number drawn");
			goto out;
		}
		buf[0] &= 0x7f;
	} while (buf[0] == 0);

	if ((bn = BN_bin2bn(buf, sizeof(buf), NULL)) == NULL ||
	    (ai = BN_to_ASN1_INTEGER(bn, NULL)) == NULL) {
		ret = err_set_ssl(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	if (serial_to_hex(ai, hex) != 0) {
		err_set(e, ret, "serial number does not convert to hex");
		goto out;
	}
	*out = ai;
	ai = NULL;
	ret = 0;
out:
	ASN1_INTEGER_free(ai);
	BN_free(bn);
	return ret;
}

int
serial_to_hex(const ASN1_INTEGER *ai, char hex[SERIAL_HEX_MAX])
{
	const unsigned char *p;
	int len;

	if (ai == NULL || ASN1_STRING_type(ai) != V_ASN1_INTEGER)
		return -1;	/* negative, or not an INTEGER */
	p = ASN1_STRING_get0_data(ai);
	len = ASN1_STRING_length(ai);
	while (len > 0 && *p == 0) {
		p++;
		len--;
	}
	if (len > SERIAL_MAX_OCTETS)
		return -1;
	if (len == 0) {
		memcpy(hex, "00", 3);
		return 0;
	}
	util_hex(p, (size_t)len, hex);
	return 0;
}

int
serial_normalize(const char *in, char out[SERIAL_HEX_MAX])
{
	char digits[SERIAL_HEX_MAX];
	size_t n = 0, seen = 0;
	const char *s = in;

	if (s == NULL)
		return -1;
	if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X'))
		s += 2;
	/* Colons only between digits, as in "0a:1b"; leading zero
	 * digits dropped as they come. */
	for (; *s != '\0'; s++) {
		if (*s == ':') {
			if (s == in || s[-1] == ':' || s[-1] == 'x' ||
			    s[-1] == 'X' || s[1] == '\0')
				return -1;
			continue;
		}
		if (!isxdigit((unsigned char)*s))
			return -1;
		seen++;
		if (n == 0 && *s == '0')
			continue;
		if (n == sizeof(digits) - 1)
			return -1;	/* more than 20 octets */
		digits[n++] = (char)tolower((unsigned char)*s);
	}
	if (seen == 0)
		return -1;
	if (n == 0) {
		memcpy(out, "00", 3);
		return 0;
	}
	/* An odd count gets its leading zero nibble back. */
	if (n % 2 == 1) {
		out[0] = '0';
		memcpy(out + 1, digits, n);
		out[n + 1] = '\0';
	} else {
		memcpy(out, digits, n);
		out[n] = '\0';
	}
	return 0;
}
