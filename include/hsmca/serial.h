/* serial.h: certificate serial numbers. */
#ifndef HSMCA_SERIAL_H
#define HSMCA_SERIAL_H

#include <stddef.h>
#include <openssl/asn1.h>

#include "hsmca/err.h"

#define SERIAL_BYTES	16	/* 128 bits from the CSPRNG */
#define SERIAL_HEX_MAX	41	/* 20 octets as hex, and the NUL */

/* A fresh positive 128-bit serial (top bit clear, never zero), as an
 * ASN1_INTEGER and as canonical hex. */
int	serial_generate(ASN1_INTEGER **out, char hex[SERIAL_HEX_MAX],
	    struct hsmca_err *e);

/* Canonical hex of an ASN1_INTEGER: lowercase, even length, no leading
 * 00 octet. */
int	serial_to_hex(const ASN1_INTEGER *ai, char hex[SERIAL_HEX_MAX]);

/* Normalize what a person types ("0x0A:1B", "0a1b", "A1B") into the
 * canonical form. Returns 0, or -1 if it is not a serial. */
int	serial_normalize(const char *in, char out[SERIAL_HEX_MAX]);

#endif
