/* test_serial.c: serial numbers are random, positive, unique and at most
 * 20 octets; the hex form round-trips. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <openssl/asn1.h>
#include <openssl/bn.h>

#include "hsmca/serial.h"
#include "testutil.h"

#define DEFAULT_COUNT	1000000

static int
cmp16(const void *a, const void *b)
{
	return memcmp(a, b, SERIAL_BYTES);
}

/* HSMCA_TEST_SERIALS lowers the count (valgrind runs). */
static size_t
serial_count(void)
{
	const char *s = getenv("HSMCA_TEST_SERIALS");
	long n;

	if (s == NULL || (n = atol(s)) <= 0)
		return DEFAULT_COUNT;
	return (size_t)n;
}

static void
test_unique_positive(void **state)
{
	size_t count = serial_count(), i;
	unsigned char *all, *der, *p;
	char hex[SERIAL_HEX_MAX];
	ASN1_INTEGER *ai;
	struct hsmca_err e;
	int len;

	(void)state;
	all = malloc(count * SERIAL_BYTES);
	assert_non_null(all);
	for (i = 0; i < count; i++) {
		assert_int_equal(serial_generate(&ai, hex, &e), 0);
		assert_int_equal(ASN1_STRING_type(ai), V_ASN1_INTEGER);
		der = NULL;
		len = i2d_ASN1_INTEGER(ai, &der);
		/* 02 10 <16 octets>: a constant length, top bit clear. */
		assert_int_equal(len, 2 + SERIAL_BYTES);
		assert_int_equal(der[0], V_ASN1_INTEGER);
		assert_int_equal(der[1], SERIAL_BYTES);
		p = der + 2;
		assert_true(p[0] < 0x80);
		assert_true(p[0] != 0);
		assert_true(der[1] <= 20);
		assert_int_equal(strlen(hex), 2 * SERIAL_BYTES);
		memcpy(all + i * SERIAL_BYTES, p, SERIAL_BYTES);
		OPENSSL_free(der);
		ASN1_INTEGER_free(ai);
	}
	qsort(all, count, SERIAL_BYTES, cmp16);
	for (i = 1; i < count; i++)
		assert_true(memcmp(all + (i - 1) * SERIAL_BYTES,
		    all + i * SERIAL_BYTES, SERIAL_BYTES) != 0);
	free(all);
}

static void
test_hex_round_trip(void **state)
{
	char hex[SERIAL_HEX_MAX], back[SERIAL_HEX_MAX], norm[SERIAL_HEX_MAX];
	ASN1_INTEGER *ai, *ai2;
	BIGNUM *bn = NULL;
	struct hsmca_err e;

	(void)state;
	assert_int_equal(serial_generate(&ai, hex, &e), 0);
	assert_int_equal(serial_to_hex(ai, back), 0);
	assert_string_equal(hex, back);
	for (const char *c = hex; *c != '\0'; c++)
		assert_true((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f'));
	assert_int_equal(serial_normalize(hex, norm), 0);
	assert_string_equal(norm, hex);

	/* Hex back to an INTEGER gives the same value. */
	assert_true(BN_hex2bn(&bn, hex) > 0);
	ai2 = BN_to_ASN1_INTEGER(bn, NULL);
	assert_non_null(ai2);
	assert_int_equal(ASN1_INTEGER_cmp(ai, ai2), 0);
	ASN1_INTEGER_free(ai);
	ASN1_INTEGER_free(ai2);
	BN_free(bn);
}

static void
test_to_hex_forms(void **state)
{
	char hex[SERIAL_HEX_MAX];
	ASN1_INTEGER *ai = ASN1_INTEGER_new();
	unsigned char big[21];

	(void)state;
	assert_non_null(ai);
	assert_int_equal(ASN1_INTEGER_set(ai, 0x0a1b), 1);
	assert_int_equal(serial_to_hex(ai, hex), 0);
	assert_string_equal(hex, "0a1b");
	assert_int_equal(ASN1_INTEGER_set(ai, 0x80), 1);
	assert_int_equal(serial_to_hex(ai, hex), 0);
	assert_string_equal(hex, "80");
	assert_int_equal(ASN1_INTEGER_set(ai, 0), 1);
	assert_int_equal(serial_to_hex(ai, hex), 0);
	assert_string_equal(hex, "00");
	assert_int_equal(ASN1_INTEGER_set(ai, -5), 1);
	assert_int_equal(serial_to_hex(ai, hex), -1);

	/* 20 octets fit, 21 do not. */
	ASN1_INTEGER_free(ai);
	ai = ASN1_INTEGER_new();
	assert_non_null(ai);
	memset(big, 0xff, sizeof(big));
	assert_int_equal(ASN1_STRING_set(ai, big, 20), 1);
	assert_int_equal(serial_to_hex(ai, hex), 0);
	assert_int_equal(strlen(hex), 40);
	assert_int_equal(ASN1_STRING_set(ai, big, 21), 1);
	assert_int_equal(serial_to_hex(ai, hex), -1);
	assert_int_equal(serial_to_hex(NULL, hex), -1);
	ASN1_INTEGER_free(ai);
}

static void
test_normalize(void **state)
{
	static const struct {
		const char *in, *out;
	} good[] = {
		{ "0a1b", "0a1b" },
		{ "0A1B", "0a1b" },
		{ "A1B", "0a1b" },
		{ "0x0A:1B", "0a1b" },
		{ "0X0a1b", "0a1b" },
		{ "0a:1b", "0a1b" },
		{ "00:00:0a:1b", "0a1b" },
		{ "000a1b", "0a1b" },
		{ "1", "01" },
		{ "0", "00" },
		{ "7F00", "7f00" },
		{ "DEADBEEF", "deadbeef" },
		/* 20 octets, leading zero octets do not count. */
		{ "00ffffffffffffffffffffffffffffffffffffffff",
		  "ffffffffffffffffffffffffffffffffffffffff" },
	};
	static const char *const bad[] = {
		"", "0x", "xyz", "0a1g", "0a 1b", " 0a1b", "0a1b\n", ":0a",
		"0a:", "0a::1b", "0x:0a", "-1", "+1",
		/* 21 octets */
		"01ffffffffffffffffffffffffffffffffffffffff",
	};
	char out[SERIAL_HEX_MAX];

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		assert_int_equal(serial_normalize(good[i].in, out), 0);
		assert_string_equal(out, good[i].out);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (serial_normalize(bad[i], out) != -1)
			fail_msg("serial_normalize accepted \"%s\"", bad[i]);
	}
	assert_int_equal(serial_normalize(NULL, out), -1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_unique_positive),
		cmocka_unit_test(test_hex_round_trip),
		cmocka_unit_test(test_to_hex_forms),
		cmocka_unit_test(test_normalize),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
