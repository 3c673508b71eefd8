/* test_util.c: the shared helpers: files, hex, thumbprints, names,
 * durations, the clock, error codes, key types, PKCS#11 URIs and PIN
 * sources. */
#include "config.h"

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/x509.h>

#include "hsmca/clock.h"
#include "hsmca/err.h"
#include "hsmca/fileset.h"
#include "hsmca/hsm.h"
#include "hsmca/keytype.h"
#include "hsmca/util.h"
#include "testutil.h"

/* Write len bytes to dir/name with the given mode; path receives the
 * full name. */
static void
put_file(const char *dir, const char *name, const void *data, size_t len,
    mode_t mode, char *path, size_t pathlen)
{
	FILE *fp;

	snprintf(path, pathlen, "%s/%s", dir, name);
	assert_non_null(fp = fopen(path, "w"));
	if (len > 0)
		assert_int_equal(fwrite(data, 1, len, fp), len);
	assert_int_equal(fclose(fp), 0);
	assert_int_equal(chmod(path, mode), 0);
}

/* Entries of dir other than "." and "..". */
static int
count_entries(const char *dir)
{
	DIR *d;
	struct dirent *de;
	int n = 0;

	assert_non_null(d = opendir(dir));
	while ((de = readdir(d)) != NULL)
		if (strcmp(de->d_name, ".") != 0 &&
		    strcmp(de->d_name, "..") != 0)
			n++;
	closedir(d);
	return n;
}

/* ---- util_read_file ---- */

static void
test_read_file(void **state)
{
	struct hsmca_err e;
	unsigned char *buf, *big;
	size_t len;
	char *dir, path[PATH_MAX], missing[PATH_MAX];

	(void)state;
	dir = tu_tmpdir();

	/* A missing file: an I/O error naming the path. */
	snprintf(missing, sizeof(missing), "%s/nope", dir);
	buf = NULL;
	err_clear(&e);
	assert_int_equal(util_read_file(missing, 100, &buf, &len, &e),
	    HSMCA_ERR_IO);
	assert_int_equal(e.code, HSMCA_ERR_IO);
	assert_non_null(strstr(e.msg, missing));
	assert_null(buf);

	/* Exactly max bytes is fine, one more is refused. */
	put_file(dir, "hundred", "0123456789012345678901234567890123456789"
	    "0123456789012345678901234567890123456789"
	    "01234567890123456789", 100, 0600, path, sizeof(path));
	assert_int_equal(util_read_file(path, 100, &buf, &len, &e), 0);
	assert_int_equal(len, 100);
	assert_int_equal(buf[100], '\0');
	assert_memory_equal(buf, "0123456789", 10);
	free(buf);
	buf = NULL;
	assert_int_equal(util_read_file(path, 99, &buf, &len, &e),
	    HSMCA_ERR_IO);
	assert_null(buf);
	assert_non_null(strstr(e.msg, path));
	assert_non_null(strstr(e.msg, "larger than 99"));

	/* An empty file reads as an empty, NUL-terminated buffer. */
	put_file(dir, "empty", "", 0, 0600, path, sizeof(path));
	len = 42;
	assert_int_equal(util_read_file(path, 0, &buf, &len, &e), 0);
	assert_non_null(buf);
	assert_int_equal(len, 0);
	assert_int_equal(buf[0], '\0');
	free(buf);

	/* Larger than the first chunk: the buffer grows, bytes intact. */
	assert_non_null(big = malloc(10000));
	for (size_t i = 0; i < 10000; i++)
		big[i] = (unsigned char)(i * 7 + 1);
	put_file(dir, "big", big, 10000, 0600, path, sizeof(path));
	assert_int_equal(util_read_file(path, 1 << 20, &buf, &len, &e), 0);
	assert_int_equal(len, 10000);
	assert_memory_equal(buf, big, 10000);
	assert_int_equal(buf[10000], '\0');
	free(buf);
	buf = NULL;
	assert_int_equal(util_read_file(path, 9999, &buf, &len, &e),
	    HSMCA_ERR_IO);
	assert_null(buf);
	free(big);

	/* A directory is not a file. */
	assert_int_equal(util_read_file(dir, 100, &buf, &len, &e),
	    HSMCA_ERR_IO);
	assert_null(buf);
	assert_non_null(strstr(e.msg, dir));

	/* A NULL err is tolerated. */
	assert_int_equal(util_read_file(missing, 100, &buf, &len, NULL),
	    HSMCA_ERR_IO);

	tu_rmtree(dir);
	free(dir);
}

/* ---- util_write_file_atomic ---- */

static void
test_write_file_atomic(void **state)
{
	struct hsmca_err e;
	struct stat sb;
	unsigned char *buf;
	size_t len;
	char *dir, path[PATH_MAX], bad[PATH_MAX], sub[PATH_MAX / 2];
	char *longpath;

	(void)state;
	dir = tu_tmpdir();
	snprintf(path, sizeof(path), "%s/out.pem", dir);

	assert_int_equal(util_write_file_atomic(path, "hello\n", 6, 0600, &e),
	    0);
	assert_int_equal(stat(path, &sb), 0);
	assert_true(S_ISREG(sb.st_mode));
	assert_int_equal(sb.st_mode & 07777, 0600);
	assert_int_equal(util_read_file(path, 100, &buf, &len, &e), 0);
	assert_int_equal(len, 6);
	assert_string_equal((char *)buf, "hello\n");
	free(buf);
	/* No temporary file left next to it. */
	assert_int_equal(count_entries(dir), 1);

	/* Replacing: new content, new mode (not masked by the umask). */
	assert_int_equal(util_write_file_atomic(path, "bye", 3, 0644, &e), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 07777, 0644);
	assert_int_equal(util_read_file(path, 100, &buf, &len, &e), 0);
	assert_int_equal(len, 3);
	assert_string_equal((char *)buf, "bye");
	free(buf);
	assert_int_equal(count_entries(dir), 1);

	/* Zero bytes gives an empty file. */
	assert_int_equal(util_write_file_atomic(path, "", 0, 0600, &e), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, 0);
	assert_int_equal(count_entries(dir), 1);

	/* A missing directory: a clean I/O error, nothing created. */
	snprintf(bad, sizeof(bad), "%s/missing/out.pem", dir);
	err_clear(&e);
	assert_int_equal(util_write_file_atomic(bad, "x", 1, 0600, &e),
	    HSMCA_ERR_IO);
	assert_int_equal(e.code, HSMCA_ERR_IO);
	assert_non_null(strstr(e.msg, bad));
	assert_int_equal(count_entries(dir), 1);

	/* The rename fails (the target is a directory): the temporary
	 * file is removed and the directory is untouched. */
	snprintf(sub, sizeof(sub), "%s/sub", dir);
	assert_int_equal(mkdir(sub, 0700), 0);
	snprintf(bad, sizeof(bad), "%s/victim", sub);
	assert_int_equal(mkdir(bad, 0700), 0);
	err_clear(&e);
	assert_int_equal(util_write_file_atomic(bad, "x", 1, 0600, &e),
	    HSMCA_ERR_IO);
	assert_non_null(strstr(e.msg, bad));
	assert_int_equal(count_entries(sub), 1);
	assert_int_equal(stat(bad, &sb), 0);
	assert_true(S_ISDIR(sb.st_mode));

	/* A path longer than PATH_MAX is an argument error. */
	assert_non_null(longpath = malloc(PATH_MAX + 16));
	memset(longpath, 'a', PATH_MAX + 15);
	longpath[0] = '/';
	longpath[PATH_MAX + 15] = '\0';
	assert_int_equal(util_write_file_atomic(longpath, "x", 1, 0600, NULL),
	    HSMCA_ERR_ARG);
	free(longpath);

	tu_rmtree(dir);
	free(dir);
}

/* ---- util_hex and thumbprints ---- */

static void
test_hex(void **state)
{
	static const unsigned char in[] = { 0x00, 0x0f, 0xa5, 0xff, 0x10 };
	char out[2 * sizeof(in) + 1];

	(void)state;
	memset(out, 'Z', sizeof(out));
	util_hex(in, sizeof(in), out);
	assert_string_equal(out, "000fa5ff10");
	memset(out, 'Z', sizeof(out));
	util_hex(in, 0, out);
	assert_string_equal(out, "");
}

static void
digest_hex(const X509 *x, const EVP_MD *md, char *out)
{
	unsigned char d[EVP_MAX_MD_SIZE];
	unsigned int n = 0;

	assert_true(X509_digest(x, md, d, &n));
	for (unsigned int i = 0; i < n; i++)
		snprintf(out + 2 * i, 3, "%02x", d[i]);
}

static void
test_thumbprints(void **state)
{
	EVP_PKEY *k = tu_keygen("ec:P-256");
	X509 *a, *b;
	char s1[UTIL_SHA1_HEX], s256[UTIL_SHA256_HEX];
	char want1[UTIL_SHA1_HEX], want256[UTIL_SHA256_HEX];
	char other[UTIL_SHA256_HEX];

	(void)state;
	a = tu_make_ca(k, "CN=Thumb CA,O=Example", 1700000000, 1800000000);
	b = tu_make_ca(k, "CN=Other CA", 1700000000, 1800000000);

	memset(s1, 'Z', sizeof(s1));
	memset(s256, 'Z', sizeof(s256));
	assert_int_equal(util_cert_sha1(a, s1), 0);
	assert_int_equal(util_cert_sha256(a, s256), 0);
	digest_hex(a, EVP_sha1(), want1);
	digest_hex(a, EVP_sha256(), want256);
	assert_int_equal(strlen(s1), UTIL_SHA1_HEX - 1);
	assert_int_equal(strlen(s256), UTIL_SHA256_HEX - 1);
	assert_string_equal(s1, want1);
	assert_string_equal(s256, want256);
	for (const char *p = s256; *p != '\0'; p++)
		assert_non_null(strchr("0123456789abcdef", *p));

	/* A different certificate, a different thumbprint. */
	assert_int_equal(util_cert_sha256(b, other), 0);
	assert_string_not_equal(other, s256);

	X509_free(a);
	X509_free(b);
	EVP_PKEY_free(k);
}

/* ---- names ---- */

static void
test_bio_string(void **state)
{
	BIO *b = BIO_new(BIO_s_mem());
	size_t len = 99;
	char *s;

	(void)state;
	assert_non_null(b);
	/* Empty: an empty string, not NULL. */
	assert_non_null(s = util_bio_string(b, &len));
	assert_int_equal(len, 0);
	assert_string_equal(s, "");
	free(s);
	/* Every byte, a NUL among them, and a terminating NUL after. */
	assert_int_equal(BIO_write(b, "a\0b", 3), 3);
	assert_non_null(s = util_bio_string(b, &len));
	assert_int_equal(len, 3);
	assert_memory_equal(s, "a\0b", 4);
	free(s);
	assert_non_null(s = util_bio_string(b, NULL));
	assert_string_equal(s, "a");
	free(s);
	BIO_free(b);
}

static void
test_name_cn(void **state)
{
	X509_NAME *n = X509_NAME_new();
	char cn[16];
	/* "dev-12" as the raw bytes of a BMPString: three other letters. */
	static const unsigned char bmp[] = { 0x64, 0x65, 0x76, 0x2d, 0x31,
	    0x32 };
	static const unsigned char bmp_dev1[] = { 0, 'd', 0, 'e', 0, 'v', 0,
	    '-', 0, '1' };

	(void)state;
	assert_non_null(n);
	assert_int_equal(util_name_cn(n, cn, sizeof(cn)), 1);
	assert_int_equal(X509_NAME_add_entry_by_NID(n, NID_organizationName,
	    MBSTRING_UTF8, (const unsigned char *)"Example", -1, -1, 0), 1);
	assert_int_equal(util_name_cn(n, cn, sizeof(cn)), 1);
	assert_int_equal(X509_NAME_add_entry_by_NID(n, NID_commonName,
	    V_ASN1_UTF8STRING, (const unsigned char *)"dev-1", -1, -1, 0), 1);
	assert_int_equal(util_name_cn(n, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "dev-1");
	/* Too long for the buffer. */
	assert_int_equal(util_name_cn(n, cn, 5), -1);
	/* Two CNs. */
	assert_int_equal(X509_NAME_add_entry_by_NID(n, NID_commonName,
	    V_ASN1_UTF8STRING, (const unsigned char *)"dev-2", -1, -1, 0), 1);
	assert_int_equal(util_name_cn(n, cn, sizeof(cn)), -1);
	X509_NAME_free(n);

	/* A NUL inside. */
	assert_non_null(n = X509_NAME_new());
	assert_int_equal(X509_NAME_add_entry_by_NID(n, NID_commonName,
	    V_ASN1_UTF8STRING, (const unsigned char *)"dev-1\0admin", 11, -1,
	    0), 1);
	assert_int_equal(util_name_cn(n, cn, sizeof(cn)), -1);
	X509_NAME_free(n);

	/* A BMPString is decoded, not read as bytes. */
	assert_non_null(n = X509_NAME_new());
	assert_int_equal(X509_NAME_add_entry_by_NID(n, NID_commonName,
	    V_ASN1_BMPSTRING, bmp, sizeof(bmp), -1, 0), 1);
	assert_int_equal(util_name_cn(n, cn, sizeof(cn)), 0);
	assert_string_not_equal(cn, "dev-12");
	assert_string_equal(cn, "\xe6\x91\xa5\xe7\x98\xad\xe3\x84\xb2");
	X509_NAME_free(n);
	assert_non_null(n = X509_NAME_new());
	assert_int_equal(X509_NAME_add_entry_by_NID(n, NID_commonName,
	    V_ASN1_BMPSTRING, bmp_dev1, sizeof(bmp_dev1), -1, 0), 1);
	assert_int_equal(util_name_cn(n, cn, sizeof(cn)), 0);
	assert_string_equal(cn, "dev-1");
	X509_NAME_free(n);
}

static void
test_name_string(void **state)
{
	EVP_PKEY *k = tu_keygen("ec:P-256");
	X509 *x;
	X509_NAME *n;
	struct hsmca_err e;
	char *s;

	(void)state;
	/* As given, not reversed the RFC 2253 way. */
	x = tu_make_ca(k, "CN=a,O=b", 1700000000, 1800000000);
	assert_non_null(s = util_name_string(X509_get_subject_name(x)));
	assert_string_equal(s, "CN=a,O=b");
	free(s);
	X509_free(x);

	x = tu_make_ca(k, "C=FR,O=Example,OU=PKI,CN=Device CA", 1700000000,
	    1800000000);
	assert_non_null(s = util_name_string(X509_get_subject_name(x)));
	assert_string_equal(s, "C=FR,O=Example,OU=PKI,CN=Device CA");
	free(s);
	X509_free(x);

	/* A comma inside a value is escaped; UTF-8 stays UTF-8. */
	assert_int_equal(util_parse_name("CN=Doe\\, John,O=Caf\xc3\xa9", &n,
	    &e), 0);
	assert_non_null(s = util_name_string(n));
	assert_string_equal(s, "CN=Doe\\, John,O=Caf\xc3\xa9");
	free(s);
	X509_NAME_free(n);

	/* An empty name prints as an empty string. */
	assert_non_null(n = X509_NAME_new());
	assert_non_null(s = util_name_string(n));
	assert_string_equal(s, "");
	free(s);
	X509_NAME_free(n);

	assert_null(util_name_string(NULL));
	EVP_PKEY_free(k);
}

static void
entry_is(X509_NAME *n, int idx, int nid, const char *val)
{
	X509_NAME_ENTRY *ne;
	const ASN1_STRING *d;

	assert_non_null(ne = X509_NAME_get_entry(n, idx));
	assert_int_equal(OBJ_obj2nid(X509_NAME_ENTRY_get_object(ne)), nid);
	d = X509_NAME_ENTRY_get_data(ne);
	assert_int_equal(ASN1_STRING_length(d), strlen(val));
	assert_memory_equal(ASN1_STRING_get0_data(d), val, strlen(val));
}

static void
test_parse_name(void **state)
{
	static const struct {
		const char	*in;
		const char	*why;
	} bad[] = {
		{ "CN", "expected TYPE=value" },
		{ "=x", "expected TYPE=value" },
		{ "CN=a,,O=b", "expected TYPE=value" },
		{ "CN=", "empty value" },
		{ "XX=y", "not an attribute type" },
		{ "C=FRA", "not a valid value" },
		{ "", "empty distinguished name" },
	};
	struct hsmca_err e;
	X509_NAME *n;
	char *s;

	(void)state;
	assert_int_equal(util_parse_name("CN=Device CA,O=Example", &n, &e), 0);
	assert_int_equal(X509_NAME_entry_count(n), 2);
	entry_is(n, 0, NID_commonName, "Device CA");
	entry_is(n, 1, NID_organizationName, "Example");
	X509_NAME_free(n);

	/* Escaped comma, spaces after a separator, long and short names. */
	assert_int_equal(util_parse_name("CN=a\\,b, O=c,C=FR,"
	    "organizationalUnitName=d,serialNumber=42", &n, &e), 0);
	assert_int_equal(X509_NAME_entry_count(n), 5);
	entry_is(n, 0, NID_commonName, "a,b");
	entry_is(n, 1, NID_organizationName, "c");
	entry_is(n, 2, NID_countryName, "FR");
	entry_is(n, 3, NID_organizationalUnitName, "d");
	entry_is(n, 4, NID_serialNumber, "42");
	assert_non_null(s = util_name_string(n));
	assert_string_equal(s, "CN=a\\,b,O=c,C=FR,OU=d,serialNumber=42");
	free(s);
	X509_NAME_free(n);

	/* An '=' inside a value belongs to the value. */
	assert_int_equal(util_parse_name("CN=a=b", &n, &e), 0);
	entry_is(n, 0, NID_commonName, "a=b");
	X509_NAME_free(n);

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		n = (X509_NAME *)1;
		err_clear(&e);
		assert_int_equal(util_parse_name(bad[i].in, &n, &e),
		    HSMCA_ERR_ARG);
		assert_null(n);
		assert_int_equal(e.code, HSMCA_ERR_ARG);
		if (strstr(e.msg, bad[i].why) == NULL)
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].in,
			    e.msg, bad[i].why);
	}
	/* The message names what was wrong. */
	assert_int_equal(util_parse_name("CN=x,XX=y", &n, &e), HSMCA_ERR_ARG);
	assert_non_null(strstr(e.msg, "'XX'"));
	assert_int_equal(util_parse_name("C=FRA", &n, &e), HSMCA_ERR_ARG);
	assert_non_null(strstr(e.msg, "C=FRA"));
	assert_int_equal(ERR_peek_error(), 0);
	assert_int_equal(util_parse_name(NULL, &n, NULL), HSMCA_ERR_ARG);
	assert_null(n);
}

/* ---- durations ---- */

static void
test_parse_duration(void **state)
{
	static const struct {
		const char	*in;
		int64_t		 secs;
	} good[] = {
		{ "0", 0 },
		{ "45", 45 },
		{ "45s", 45 },
		{ "30m", 1800 },
		{ "12h", 43200 },
		{ "90d", 7776000 },
		{ "2y", 63072000 },
		{ "1y", 31536000 },
		{ "0d", 0 },
		{ "9223372036854775807", INT64_MAX },
		{ "106751991167300d", INT64_C(106751991167300) * 86400 },
	};
	static const char *const bad[] = {
		"", "d", "s", "-1d", "-1", "+1d", " 1d", "1x", "1dd", "1d ",
		"1.5d", "1 d", "d1", "1D",
		"9223372036854775808",		/* > INT64_MAX */
		"106751991167301d",		/* * 86400 overflows */
		"292471208678y",
		"99999999999999999999999y",
	};
	int64_t secs;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		secs = -7;
		if (util_parse_duration(good[i].in, &secs) != 0)
			fail_msg("'%s' refused", good[i].in);
		if (secs != good[i].secs)
			fail_msg("'%s' gave %lld", good[i].in, (long long)secs);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		secs = -7;
		if (util_parse_duration(bad[i], &secs) != -1)
			fail_msg("'%s' accepted", bad[i]);
		assert_int_equal(secs, -7);
	}
	assert_int_equal(util_parse_duration(NULL, &secs), -1);
}

static void
test_format_duration(void **state)
{
	static const struct {
		int64_t		 secs;
		const char	*out;
	} cases[] = {
		{ 0, "0s" },
		{ 45, "45s" },
		{ 60, "1m" },
		{ 90, "90s" },
		{ 1800, "30m" },
		{ 3600, "1h" },
		{ 5400, "90m" },
		{ 43200, "12h" },
		{ 86400, "1d" },
		{ 7776000, "90d" },
		{ 31536000, "365d" },
		{ 90061, "90061s" },
	};
	char buf[32], small[3];
	int64_t back;

	(void)state;
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		assert_ptr_equal(util_format_duration(cases[i].secs, buf,
		    sizeof(buf)), buf);
		assert_string_equal(buf, cases[i].out);
		/* And back. */
		assert_int_equal(util_parse_duration(buf, &back), 0);
		assert_int_equal(back, cases[i].secs);
	}
	/* Round trip of the parser's own spellings. */
	for (int64_t s = 1; s < 4 * 86400; s = s * 3 + 7) {
		util_format_duration(s, buf, sizeof(buf));
		assert_int_equal(util_parse_duration(buf, &back), 0);
		assert_int_equal(back, s);
	}
	util_format_duration(INT64_MAX, buf, sizeof(buf));
	assert_int_equal(util_parse_duration(buf, &back), 0);
	assert_int_equal(back, INT64_MAX);
	/* A short buffer truncates and stays terminated. */
	util_format_duration(7776000, small, sizeof(small));
	assert_string_equal(small, "90");
}

/* ---- clock ---- */

static void
test_clock_parse(void **state)
{
	static const struct {
		const char	*in;
		time_t		 t;
	} good[] = {
		{ "1970-01-01T00:00:00Z", 0 },
		{ "2024-01-01T00:00:00Z", 1704067200 },
		{ "2023-11-14T22:13:20Z", 1700000000 },
		{ "2024-02-29T12:34:56Z", 1709210096 },
		{ "2024-02-29", 1709164800 },
		{ "2038-01-19T03:14:08Z", INT64_C(2147483648) },
		{ "2100-01-01", INT64_C(4102444800) },
		{ "1700000000", 1700000000 },
		{ "0", 0 },
	};
	static const char *const bad[] = {
		"", "now", "-1", "1700000000x", "0x10", "2024-01-01T00:00:00",
		"2024-01-01Z", "2024-01-01T00:00Z", "2024-13-01",
		"2024-01-32", "2024-01-01T25:00:00Z", "2024/01/01",
		"2024-01-01T00:00:00Z ", "99999999999999999999",
		"2023-02-29", "2024-02-30", "2024-04-31",
		"2024-01-01T23:59:60Z",
	};
	time_t t;

	(void)state;
	for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
		t = -7;
		if (clock_parse(good[i].in, &t) != 0)
			fail_msg("'%s' refused", good[i].in);
		if (t != good[i].t)
			fail_msg("'%s' gave %lld", good[i].in, (long long)t);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		if (clock_parse(bad[i], &t) != -1)
			fail_msg("'%s' accepted", bad[i]);
	assert_int_equal(clock_parse(NULL, &t), -1);
}

static void
test_clock_override(void **state)
{
	time_t before, now;

	(void)state;
	unsetenv("HSMCA_NOW");
	clock_set(0);
	before = time(NULL);
	now = clock_now();
	assert_true(now >= before && now <= time(NULL));

	clock_set(1234567890);
	assert_int_equal(clock_now(), 1234567890);
	assert_int_equal(clock_now(), 1234567890);

	/* The environment, in either spelling. */
	clock_set(0);
	assert_int_equal(setenv("HSMCA_NOW", "1500000000", 1), 0);
	assert_int_equal(clock_now(), 1500000000);
	assert_int_equal(setenv("HSMCA_NOW", "2030-06-01T00:00:00Z", 1), 0);
	assert_int_equal(clock_now(), 1906502400);
	assert_int_equal(setenv("HSMCA_NOW", "2030-06-01", 1), 0);
	assert_int_equal(clock_now(), 1906502400);

	/* clock_set wins over the environment. */
	clock_set(42);
	assert_int_equal(clock_now(), 42);
	clock_set(0);
	assert_int_equal(clock_now(), 1906502400);

	/* A malformed value falls back to the real clock. */
	assert_int_equal(setenv("HSMCA_NOW", "yesterday", 1), 0);
	before = time(NULL);
	now = clock_now();
	assert_true(now >= before && now <= time(NULL));

	assert_int_equal(unsetenv("HSMCA_NOW"), 0);
	before = time(NULL);
	now = clock_now();
	assert_true(now >= before && now <= time(NULL));
}

static void
test_clock_format(void **state)
{
	char buf[32], small[8];
	time_t t;

	(void)state;
	assert_ptr_equal(clock_format(0, buf, sizeof(buf)), buf);
	assert_string_equal(buf, "1970-01-01T00:00:00Z");
	clock_format(1700000000, buf, sizeof(buf));
	assert_string_equal(buf, "2023-11-14T22:13:20Z");
	clock_format(1709210096, buf, 21);
	assert_string_equal(buf, "2024-02-29T12:34:56Z");
	assert_int_equal(clock_parse(buf, &t), 0);
	assert_int_equal(t, 1709210096);
	clock_format(INT64_C(4102444799), buf, sizeof(buf));
	assert_string_equal(buf, "2099-12-31T23:59:59Z");
	/* Too small: a marker, never a truncated date. */
	clock_format(1700000000, small, sizeof(small));
	assert_string_equal(small, "?");
}

/* ---- errors ---- */

static void
test_err_set(void **state)
{
	struct hsmca_err e;
	char longmsg[HSMCA_ERRMSG_MAX * 2];

	(void)state;
	assert_int_equal(err_set(&e, HSMCA_ERR_CSR_PARSE, "%s at %d", "junk",
	    7), HSMCA_ERR_CSR_PARSE);
	assert_int_equal(e.code, HSMCA_ERR_CSR_PARSE);
	assert_string_equal(e.msg, "junk at 7");

	/* A message quoting input stays on one line. */
	err_set(&e, HSMCA_ERR_ARG, "bad name '%s'", "CN=x\nInjected: y\r\nz");
	assert_null(strchr(e.msg, '\n'));
	assert_null(strchr(e.msg, '\r'));
	assert_string_equal(e.msg, "bad name 'CN=x Injected: y  z'");

	/* Long messages are cut, terminated. */
	memset(longmsg, 'x', sizeof(longmsg) - 1);
	longmsg[sizeof(longmsg) - 1] = '\0';
	err_set(&e, HSMCA_ERR_IO, "%s", longmsg);
	assert_int_equal(strlen(e.msg), HSMCA_ERRMSG_MAX - 1);

	/* NULL is tolerated and the code still returned. */
	assert_int_equal(err_set(NULL, HSMCA_ERR_HSM, "x %d", 1),
	    HSMCA_ERR_HSM);
	assert_int_equal(err_set_ssl(NULL, HSMCA_ERR_HSM, "x"), HSMCA_ERR_HSM);
	err_clear(NULL);

	err_clear(&e);
	assert_int_equal(e.code, 0);
	assert_string_equal(e.msg, "");
}

static void
test_err_set_ssl(void **state)
{
	struct hsmca_err e;
	const unsigned char junk[] = { 0x30, 0x03, 0x02, 0x01 };
	const unsigned char *p = junk;

	(void)state;
	ERR_clear_error();
	/* Nothing queued: the message alone. */
	assert_int_equal(err_set_ssl(&e, HSMCA_ERR_INTERNAL, "sign"),
	    HSMCA_ERR_INTERNAL);
	assert_string_equal(e.msg, "sign");

	/* Something queued: its reason appended, the queue emptied. */
	assert_null(d2i_X509(NULL, &p, sizeof(junk)));
	assert_int_not_equal(ERR_peek_error(), 0);
	assert_int_equal(err_set_ssl(&e, HSMCA_ERR_CSR_PARSE, "parse %s", "x"),
	    HSMCA_ERR_CSR_PARSE);
	assert_int_equal(e.code, HSMCA_ERR_CSR_PARSE);
	assert_int_equal(strncmp(e.msg, "parse x: ", 9), 0);
	assert_true(strlen(e.msg) > 9);
	assert_int_equal(ERR_peek_error(), 0);
}

static void
test_strerror(void **state)
{
	const char *s, *prev = NULL;

	(void)state;
	for (int c = 0; c > HSMCA_ERR_MAX_; c--) {
		s = hsmca_strerror(c);
		assert_non_null(s);
		assert_true(*s != '\0');
		if (strcmp(s, "unknown error") == 0)
			fail_msg("code %d has no name", c);
		if (prev != NULL)
			assert_string_not_equal(s, prev);
		prev = s;
	}
	assert_string_equal(hsmca_strerror(HSMCA_OK), "success");
	assert_string_equal(hsmca_strerror(HSMCA_ERR_CSR_SIGNATURE),
	    "CSR signature invalid");
	/* An ambiguous key is never reported as a missing one. */
	assert_string_equal(hsmca_strerror(HSMCA_ERR_KEY_AMBIGUOUS),
	    "several keys match");
	assert_string_not_equal(hsmca_strerror(HSMCA_ERR_KEY_AMBIGUOUS),
	    hsmca_strerror(HSMCA_ERR_KEY_NOT_FOUND));
	assert_string_equal(hsmca_strerror(HSMCA_ERR_MAX_), "unknown error");
	assert_string_equal(hsmca_strerror(HSMCA_ERR_MAX_ - 1),
	    "unknown error");
	assert_string_equal(hsmca_strerror(1), "unknown error");
	assert_string_equal(hsmca_strerror(INT_MIN + 1), "unknown error");
	assert_string_equal(hsmca_strerror(INT_MAX), "unknown error");
}

static void
test_http_status(void **state)
{
	(void)state;
	assert_int_equal(err_http_status(HSMCA_OK), 200);
	assert_int_equal(err_http_status(HSMCA_ERR_ARG), 400);
	assert_int_equal(err_http_status(HSMCA_ERR_CSR_PARSE), 400);
	assert_int_equal(err_http_status(HSMCA_ERR_CSR_SIGNATURE), 400);
	assert_int_equal(err_http_status(HSMCA_ERR_KEY_POLICY), 400);
	assert_int_equal(err_http_status(HSMCA_ERR_POLICY), 400);
	assert_int_equal(err_http_status(HSMCA_ERR_PROFILE), 404);
	assert_int_equal(err_http_status(HSMCA_ERR_NOT_FOUND), 404);
	assert_int_equal(err_http_status(HSMCA_ERR_EXISTS), 409);
	assert_int_equal(err_http_status(HSMCA_ERR_CA_STATE), 409);
	assert_int_equal(err_http_status(HSMCA_ERR_HSM), 503);
	assert_int_equal(err_http_status(HSMCA_ERR_HSM_UNAVAILABLE), 503);
	assert_int_equal(err_http_status(HSMCA_ERR_PIN), 503);
	assert_int_equal(err_http_status(HSMCA_ERR_BUSY), 503);
	assert_int_equal(err_http_status(HSMCA_ERR_INTERNAL), 500);
	assert_int_equal(err_http_status(HSMCA_ERR_STORE), 500);
	assert_int_equal(err_http_status(HSMCA_ERR_IO), 500);
	assert_int_equal(err_http_status(-1000), 500);
	/* Every code maps to an HTTP error status (OK aside). */
	for (int c = HSMCA_ERR_INTERNAL; c > HSMCA_ERR_MAX_; c--) {
		int st = err_http_status(c);

		assert_true(st >= 400 && st <= 599);
	}
}

/* ---- key types ---- */

static void
test_keytype(void **state)
{
	enum key_type t;
	EVP_PKEY *k;
	static const struct {
		const char	*spec;
		int		 sha384;
	} keys[] = {
		{ "ec:P-256", 0 },
		{ "ec:P-384", 1 },
		{ "ec:P-521", 1 },
		{ "ec:secp256k1", 0 },
		{ "rsa:2048", 0 },
	};

	(void)state;
	for (int i = 0; i < KEY_TYPE_MAX; i++) {
		const char *name = keytype_name((enum key_type)i);

		assert_string_not_equal(name, "unknown");
		assert_int_equal(keytype_parse(name, &t), 0);
		assert_int_equal(t, i);
	}
	assert_string_equal(keytype_name(KEY_EC_P256), "ec-p256");
	assert_string_equal(keytype_name(KEY_EC_P384), "ec-p384");
	assert_string_equal(keytype_name(KEY_RSA_2048), "rsa-2048");
	assert_string_equal(keytype_name(KEY_RSA_3072), "rsa-3072");
	assert_string_equal(keytype_name(KEY_TYPE_MAX), "unknown");
	assert_string_equal(keytype_name((enum key_type)-1), "unknown");

	t = KEY_RSA_3072;
	assert_int_equal(keytype_parse("ec-p521", &t), -1);
	assert_int_equal(keytype_parse("EC-P256", &t), -1);
	assert_int_equal(keytype_parse("ec-p256 ", &t), -1);
	assert_int_equal(keytype_parse("", &t), -1);
	assert_int_equal(keytype_parse("unknown", &t), -1);
	assert_int_equal(t, KEY_RSA_3072);

	assert_ptr_equal(keytype_digest(KEY_EC_P384), EVP_sha384());
	assert_ptr_equal(keytype_digest(KEY_EC_P256), EVP_sha256());
	assert_ptr_equal(keytype_digest(KEY_RSA_2048), EVP_sha256());
	assert_ptr_equal(keytype_digest(KEY_RSA_3072), EVP_sha256());

	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
		k = tu_keygen(keys[i].spec);
		if (keytype_digest_for(k) !=
		    (keys[i].sha384 ? EVP_sha384() : EVP_sha256()))
			fail_msg("%s: wrong digest", keys[i].spec);
		EVP_PKEY_free(k);
	}
}

/* ---- PKCS#11 URIs ---- */

static void
test_uri_parse(void **state)
{
	static const unsigned char id[] = { 0x01, 0x00, 0xab, 0xff };
	struct hsm_uri u;
	struct hsmca_err e;

	(void)state;
	assert_int_equal(hsm_uri_parse("pkcs11:token=My%20CA%3Btoken;"
	    "object=ca-2024;id=%01%00%AB%ff;type=private;manufacturer=SoftHSM;"
	    "serial=1234;model=v2", &u, &e), 0);
	assert_string_equal(u.token, "My CA;token");
	assert_string_equal(u.object, "ca-2024");
	assert_string_equal(u.type, "private");
	assert_string_equal(u.manufacturer, "SoftHSM");
	assert_string_equal(u.serial, "1234");
	assert_string_equal(u.model, "v2");
	assert_int_equal(u.id_len, sizeof(id));
	assert_memory_equal(u.id, id, sizeof(id));
	hsm_uri_free(&u);
	assert_null(u.token);
	assert_null(u.id);
	assert_int_equal(u.id_len, 0);
	hsm_uri_free(&u);

	/* Token only; library-* and slot-* attributes are skipped; a
	 * query is ignored. */
	assert_int_equal(hsm_uri_parse("pkcs11:library-manufacturer=OpenSC;"
	    "token=hsmca;library-description=x;library-version=1.0;"
	    "slot-id=3;slot-description=y;slot-manufacturer=z"
	    "?module-path=/usr/lib/x.so", &u, &e), 0);
	assert_string_equal(u.token, "hsmca");
	assert_null(u.object);
	assert_null(u.id);
	assert_null(u.type);
	assert_null(u.manufacturer);
	hsm_uri_free(&u);

	/* Empty path and a repeated attribute (the last one wins). */
	assert_int_equal(hsm_uri_parse("pkcs11:", &u, &e), 0);
	assert_null(u.token);
	hsm_uri_free(&u);
	assert_int_equal(hsm_uri_parse("pkcs11:id=%01;token=a;id=%02%03;"
	    "token=b", &u, &e), 0);
	assert_string_equal(u.token, "b");
	assert_int_equal(u.id_len, 2);
	assert_memory_equal(u.id, "\x02\x03", 2);
	hsm_uri_free(&u);
}

static void
test_uri_refusals(void **state)
{
	static const struct {
		const char	*uri;
		const char	*why;
	} bad[] = {
		{ "pkcs11:token=a;frobnicate=b",
		    "unknown attribute 'frobnicate'" },
		{ "pkcs11:pin-value=1234", "unknown attribute 'pin-value'" },
		{ "pkcs11:token=a%G1", "bad percent-encoding" },
		{ "pkcs11:token=a%4", "bad percent-encoding" },
		{ "pkcs11:id=%4", "bad percent-encoding" },
		{ "pkcs11:token=%", "bad percent-encoding" },
		{ "pkcs11:token=%4;object=x", "bad percent-encoding" },
		{ "pkcs11:token=a%00b", "NUL byte" },
		{ "pkcs11:token", "without '='" },
		{ "pkcs11:token=a?pin-value=1234", "pin-value" },
		{ "pkcs11:token=a?module-name=x&pin-value=1234", "pin-value" },
		{ "file:/etc/passwd", "not a PKCS#11 URI" },
		{ "pkcs11", "not a PKCS#11 URI" },
		{ "", "not a PKCS#11 URI" },
	};
	struct hsm_uri u;
	struct hsmca_err e;

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err_clear(&e);
		memset(&u, 0x5a, sizeof(u));
		assert_int_equal(hsm_uri_parse(bad[i].uri, &u, &e),
		    HSMCA_ERR_CONFIG);
		assert_int_equal(e.code, HSMCA_ERR_CONFIG);
		if (strstr(e.msg, bad[i].why) == NULL)
			fail_msg("'%s': message '%s' lacks '%s'", bad[i].uri,
			    e.msg, bad[i].why);
		/* Nothing left allocated or dangling. */
		assert_null(u.token);
		assert_null(u.object);
		assert_null(u.id);
		assert_null(u.type);
		hsm_uri_free(&u);
	}
	/* A PIN in a URI is never echoed. */
	assert_int_equal(hsm_uri_parse("pkcs11:token=a?pin-value=s3cret", &u,
	    &e), HSMCA_ERR_CONFIG);
	assert_null(strstr(e.msg, "s3cret"));
	assert_int_equal(hsm_uri_parse("pkcs11:pin-value=s3cret", &u, &e),
	    HSMCA_ERR_CONFIG);
	assert_null(strstr(e.msg, "s3cret"));
	assert_int_equal(hsm_uri_parse("pkcs11:token=a?x=1", &u, NULL), 0);
	hsm_uri_free(&u);
}

/* ---- PIN sources ---- */

static void
test_read_pin_file(void **state)
{
	struct hsmca_err e;
	char *dir, *pin, path[PATH_MAX], src[PATH_MAX + 8];
	char longpin[300];

	(void)state;
	dir = tu_tmpdir();

	/* First line only, CR/LF stripped. */
	put_file(dir, "pin", "1234\r\n5678\n", 11, 0600, path, sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), 0);
	assert_string_equal(pin, "1234");
	util_freezero(pin, strlen(pin));

	put_file(dir, "pin2", "abcd\n", 5, 0400, path, sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), 0);
	assert_string_equal(pin, "abcd");
	util_freezero(pin, strlen(pin));

	/* No newline at all; group-readable is allowed. */
	put_file(dir, "pin3", "s3cr3t pin", 10, 0640, path, sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), 0);
	assert_string_equal(pin, "s3cr3t pin");
	util_freezero(pin, strlen(pin));

	/* Empty, or an empty first line: refused. */
	put_file(dir, "empty", "", 0, 0600, path, sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	pin = (char *)1;
	assert_int_equal(hsm_read_pin(src, &pin, &e), HSMCA_ERR_PIN);
	assert_null(pin);
	assert_non_null(strstr(e.msg, "empty"));
	put_file(dir, "nl", "\n1234\n", 6, 0600, path, sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), HSMCA_ERR_PIN);
	assert_null(pin);

	/* Readable by others: refused, and the PIN is not in the message. */
	put_file(dir, "open", "9876\n", 5, 0644, path, sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), HSMCA_ERR_PIN);
	assert_null(pin);
	assert_int_equal(e.code, HSMCA_ERR_PIN);
	assert_non_null(strstr(e.msg, "open to others"));
	assert_non_null(strstr(e.msg, path));
	assert_null(strstr(e.msg, "9876"));
	/* Writable by others or by its group: someone else's PIN. */
	put_file(dir, "ow", "9876\n", 5, 0602, path, sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), HSMCA_ERR_PIN);
	assert_non_null(strstr(e.msg, "open to others (mode 602)"));
	put_file(dir, "gw", "9876\n", 5, 0660, path, sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), HSMCA_ERR_PIN);
	assert_non_null(strstr(e.msg, "open to its group's writes"));
	/* Its group may read it (a service group). */
	put_file(dir, "gr", "9876\n", 5, 0640, path, sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), 0);
	assert_string_equal(pin, "9876");
	util_freezero(pin, strlen(pin) + 1);
	pin = NULL;

	/* Missing file. */
	snprintf(src, sizeof(src), "file:%s/none", dir);
	assert_int_equal(hsm_read_pin(src, &pin, &e), HSMCA_ERR_PIN);
	assert_null(pin);
	assert_non_null(strstr(e.msg, "/none"));

	/* Longer than any PIN: refused, from a file as from the
	 * environment. */
	memset(longpin, '7', sizeof(longpin) - 1);
	longpin[sizeof(longpin) - 1] = '\0';
	put_file(dir, "long", longpin, strlen(longpin), 0600, path,
	    sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), HSMCA_ERR_PIN);
	assert_null(pin);
	longpin[257] = '\0';
	put_file(dir, "long2", longpin, strlen(longpin), 0600, path,
	    sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), HSMCA_ERR_PIN);
	assert_null(pin);
	assert_int_equal(setenv("HSMCA_TEST_PIN", longpin, 1), 0);
	assert_int_equal(hsm_read_pin("env:HSMCA_TEST_PIN", &pin, &e),
	    HSMCA_ERR_PIN);
	assert_null(pin);
	/* 256 characters is the most a PIN may have, either way. */
	longpin[256] = '\0';
	put_file(dir, "max", longpin, strlen(longpin), 0600, path,
	    sizeof(path));
	snprintf(src, sizeof(src), "file:%s", path);
	assert_int_equal(hsm_read_pin(src, &pin, &e), 0);
	assert_int_equal(strlen(pin), 256);
	util_freezero(pin, strlen(pin));
	assert_int_equal(setenv("HSMCA_TEST_PIN", longpin, 1), 0);
	assert_int_equal(hsm_read_pin("env:HSMCA_TEST_PIN", &pin, &e), 0);
	assert_int_equal(strlen(pin), 256);
	util_freezero(pin, strlen(pin));
	assert_int_equal(unsetenv("HSMCA_TEST_PIN"), 0);

	tu_rmtree(dir);
	free(dir);
}

static void
test_read_pin_env(void **state)
{
	struct hsmca_err e;
	char *pin;

	(void)state;
	assert_int_equal(setenv("HSMCA_TEST_PIN", "424242", 1), 0);
	assert_int_equal(hsm_read_pin("env:HSMCA_TEST_PIN", &pin, &e), 0);
	assert_string_equal(pin, "424242");
	util_freezero(pin, strlen(pin));

	assert_int_equal(setenv("HSMCA_TEST_PIN", "", 1), 0);
	pin = (char *)1;
	assert_int_equal(hsm_read_pin("env:HSMCA_TEST_PIN", &pin, &e),
	    HSMCA_ERR_PIN);
	assert_null(pin);

	assert_int_equal(unsetenv("HSMCA_TEST_PIN"), 0);
	err_clear(&e);
	assert_int_equal(hsm_read_pin("env:HSMCA_TEST_PIN", &pin, &e),
	    HSMCA_ERR_PIN);
	assert_null(pin);
	assert_int_equal(e.code, HSMCA_ERR_PIN);
	assert_non_null(strstr(e.msg, "HSMCA_TEST_PIN"));
	assert_non_null(strstr(e.msg, "not set"));

	/* Unknown schemes and no source at all. */
	assert_int_equal(hsm_read_pin("1234", &pin, &e), HSMCA_ERR_PIN);
	assert_null(pin);
	assert_non_null(strstr(e.msg, "file:PATH or env:NAME"));
	assert_null(strstr(e.msg, "1234"));
	assert_int_equal(hsm_read_pin("pass:1234", &pin, &e), HSMCA_ERR_PIN);
	assert_null(pin);
	assert_null(strstr(e.msg, "1234"));
	assert_int_equal(hsm_read_pin(NULL, &pin, &e), HSMCA_ERR_PIN);
	assert_null(pin);
	assert_int_equal(hsm_read_pin("env:", &pin, NULL), HSMCA_ERR_PIN);
	assert_null(pin);
}

/* fileset: files read once, with why for those that did not read. */
static void
test_fileset(void **state)
{
	struct fileset *fs, *dup;
	struct hsmca_err e;
	const struct fileset_file *f;
	const unsigned char *data;
	unsigned char *big;
	char *dir, a[PATH_MAX], empty[PATH_MAX], large[PATH_MAX],
	    missing[PATH_MAX];
	size_t len;

	(void)state;
	dir = tu_tmpdir();
	put_file(dir, "a", "alpha\n", 6, 0600, a, sizeof(a));
	put_file(dir, "empty", "", 0, 0600, empty, sizeof(empty));
	assert_non_null(big = calloc(1, FILESET_FILE_MAX + 1));
	put_file(dir, "large", big, FILESET_FILE_MAX + 1, 0600, large,
	    sizeof(large));
	free(big);
	snprintf(missing, sizeof(missing), "%s/missing", dir);

	assert_non_null(fs = fileset_new());
	assert_int_equal(fileset_read(fs, a, &e), 0);
	assert_int_equal(fileset_read(fs, empty, &e), 0);
	assert_int_equal(fileset_read(fs, large, &e), 0);
	assert_int_equal(fileset_read(fs, missing, &e), 0);
	/* Read once: the first read stands. */
	put_file(dir, "a", "changed\n", 8, 0600, a, sizeof(a));
	assert_int_equal(fileset_read(fs, a, &e), 0);
	assert_int_equal(fs->n, 4);

	assert_int_equal(fileset_data(fs, a, &data, &len, &e), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(data, "alpha\n", 7);	/* NUL-terminated */
	assert_int_equal(fileset_data(fs, empty, &data, &len, &e), 0);
	assert_int_equal(len, 0);
	assert_string_equal((const char *)data, "");
	assert_non_null(f = fileset_get(fs, large));
	assert_null(f->data);
	assert_int_equal(fileset_data(fs, large, &data, &len, &e),
	    HSMCA_ERR_IO);
	assert_non_null(strstr(e.msg, "larger than"));
	assert_non_null(f = fileset_get(fs, missing));
	assert_int_equal(f->errnum, ENOENT);
	assert_int_equal(fileset_data(fs, missing, &data, &len, &e),
	    HSMCA_ERR_IO);
	assert_non_null(strstr(e.msg, missing));
	assert_non_null(strstr(e.msg, "No such file"));
	assert_int_equal(fileset_data(fs, "/elsewhere", &data, &len, &e),
	    HSMCA_ERR_INTERNAL);

	/* A copy is the same set, its own memory. */
	assert_non_null(dup = fileset_dup(fs));
	fileset_free(fs);
	assert_int_equal(dup->n, 4);
	assert_int_equal(fileset_data(dup, a, &data, &len, &e), 0);
	assert_memory_equal(data, "alpha\n", 7);
	assert_int_equal(fileset_get(dup, missing)->errnum, ENOENT);
	assert_non_null(strstr(fileset_get(dup, missing)->why, "No such"));
	fileset_free(dup);
	fileset_free(NULL);
	tu_rmtree(dir);
	free(dir);
}

/* util_b64_encode writes what EVP_EncodeUpdate and EVP_EncodeFinal
 * write (64-column lines, each ended, then a NUL), whatever the length,
 * and decodes back to its input. */
static void
test_b64_encode(void **state)
{
	unsigned char in[300], *back;
	unsigned char want[500];
	char *got;
	size_t glen, blen;
	int n, fin;

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + 3);
	for (size_t len = 0; len <= sizeof(in); len++) {
		EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();

		assert_non_null(ctx);
		EVP_EncodeInit(ctx);
		n = fin = 0;
		/* 0 for no input, 1 otherwise */
		assert_int_equal(EVP_EncodeUpdate(ctx, want, &n, in, (int)len),
		    len > 0);
		EVP_EncodeFinal(ctx, want + n, &fin);
		EVP_ENCODE_CTX_free(ctx);
		assert_int_equal(util_b64_encode(in, len, &got, &glen, NULL), 0);
		assert_int_equal(glen, (size_t)(n + fin));
		assert_memory_equal(got, want, glen);
		assert_int_equal(got[glen], '\0');
		if (len > 0) {
			assert_int_equal(util_b64_decode((unsigned char *)got,
			    glen, &back, &blen, NULL), 0);
			assert_int_equal(blen, len);
			assert_memory_equal(back, in, len);
			free(back);
		}
		free(got);
	}
}

/* What util_b64_decode accepted when it was EVP_DecodeUpdate and
 * EVP_DecodeFinal: the reference the table-driven decoder is held to. */
static int
b64_decode_evp(const unsigned char *in, size_t len, unsigned char *out,
    size_t *outlen)
{
	EVP_ENCODE_CTX *ctx = EVP_ENCODE_CTX_new();
	int n = 0, fin = 0, ok;

	assert_non_null(ctx);
	EVP_DecodeInit(ctx);
	ok = EVP_DecodeUpdate(ctx, out, &n, in, (int)len) >= 0 &&
	    EVP_DecodeFinal(ctx, out + n, &fin) >= 0 && n + fin > 0;
	EVP_ENCODE_CTX_free(ctx);
	*outlen = (size_t)(n + fin);
	return ok ? 0 : -1;
}

static void
b64_decode_as_evp(const char *what, const unsigned char *in, size_t len)
{
	unsigned char want[1024], *got;
	size_t wlen, glen;
	int wret, gret;

	assert_true(len <= sizeof(want));
	wret = b64_decode_evp(in, len, want, &wlen);
	gret = util_b64_decode(in, len, &got, &glen, NULL);
	if ((wret == 0) != (gret == 0))
		fail_msg("%s: EVP %s, util_b64_decode %s", what,
		    wret == 0 ? "accepts" : "refuses",
		    gret == 0 ? "accepts" : "refuses");
	if (gret != 0) {
		assert_null(got);
		return;
	}
	assert_int_equal(glen, wlen);
	assert_memory_equal(got, want, glen);
	free(got);
}

/* util_b64_decode: every length 0 to 300 round trips as one line, as
 * 64-column lines ended with LF or CRLF, and gives what EVP_DecodeBlock
 * gives less the padding; the edge cases decode as they did through
 * EVP_DecodeUpdate, and so do random strings over base64's alphabet and
 * the bytes around it. */
static void
test_b64_decode(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;	/* NULL: refused */
	} cases[] = {
		{ "QUJD", "ABC" },
		{ "QUI=", "AB" },
		{ "QQ==", "A" },
		{ "QR==", "A" },		/* unused bits not checked */
		{ "QUJDRA==", "ABCD" },
		{ " Q U\tJ D ", "ABC" },	/* space, tab anywhere */
		{ "QU\r\nJD\r\n", "ABC" },	/* CR, LF anywhere */
		{ "\n\nQQ=\r\n=\n", "A" },	/* padding across a break */
		{ "QUJD\n-----END X-----", "ABC" },	/* '-' ends it */
		{ "QQ==-not read: !*", "A" },
		{ "", NULL },
		{ "\r\n \t", NULL },		/* nothing */
		{ "-", NULL },
		{ "====", NULL },
		{ "-----BEGIN X-----\nQUJD\n", NULL },
		{ "QUJD!", NULL },		/* outside the alphabet */
		{ "QUJD\v", NULL },
		{ "QUJD\f", NULL },
		{ "QU_D", NULL },		/* base64url */
		{ "Q", NULL },			/* truncated quads */
		{ "QQ", NULL },
		{ "QUJ", NULL },
		{ "QUJDR", NULL },
		{ "QQ=", NULL },
		{ "QU-JD", NULL },
		{ "QQ===", NULL },		/* bad padding */
		{ "Q===", NULL },
		{ "=QUJ", NULL },
		{ "Q=JD", NULL },
		{ "QUI==", NULL },
		{ "QUJD=", NULL },
		{ "QUJD==", NULL },
		{ "QQ==QUJD", NULL },		/* data after padding */
		{ "QUI=\nQ", NULL },
		{ "QQ==\n=", NULL },
	};
	static const char *alphabets[] = {
		"AQg+/z=\n\r \t-", "QUJD=", "QQ==\n", "AB=\r\n -*",
	};
	unsigned char in[300], *got;
	unsigned char enc[1024], lines[1024], evp[1024];
	char what[64];
	size_t glen, elen, llen;
	uint32_t x = 2463534242U;
	int n;

	(void)state;
	for (size_t i = 0; i < sizeof(in); i++)
		in[i] = (unsigned char)(i * 7 + 3);
	for (size_t len = 0; len <= sizeof(in); len++) {
		elen = (size_t)EVP_EncodeBlock(enc, in, (int)len);
		if (len == 0) {
			/* Nothing decodes to nothing: refused. */
			got = (unsigned char *)"";
			assert_int_equal(util_b64_decode(enc, elen, &got,
			    &glen, NULL), HSMCA_ERR_ARG);
			assert_null(got);
			continue;
		}
		assert_int_equal(util_b64_decode(enc, elen, &got, &glen,
		    NULL), 0);
		assert_int_equal(glen, len);
		assert_memory_equal(got, in, len);
		free(got);
		/* EVP_DecodeBlock counts the padding's zero bytes. */
		n = EVP_DecodeBlock(evp, enc, (int)elen);
		assert_int_equal((size_t)n, (len + 2) / 3 * 3);
		assert_memory_equal(evp, in, len);
		for (int crlf = 0; crlf <= 1; crlf++) {
			llen = 0;
			for (size_t i = 0; i < elen; i += 64) {
				size_t k = elen - i < 64 ? elen - i : 64;

				memcpy(lines + llen, enc + i, k);
				llen += k;
				if (crlf)
					lines[llen++] = '\r';
				lines[llen++] = '\n';
			}
			assert_int_equal(util_b64_decode(lines, llen, &got,
			    &glen, NULL), 0);
			assert_int_equal(glen, len);
			assert_memory_equal(got, in, len);
			free(got);
		}
	}
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		const unsigned char *c = (const unsigned char *)cases[i].in;
		size_t clen = strlen(cases[i].in);
		int ret = util_b64_decode(c, clen, &got, &glen, NULL);

		if (cases[i].out == NULL) {
			if (ret != HSMCA_ERR_ARG)
				fail_msg("\"%s\" accepted", cases[i].in);
			assert_null(got);
		} else {
			if (ret != 0)
				fail_msg("\"%s\" refused", cases[i].in);
			assert_int_equal(glen, strlen(cases[i].out));
			assert_memory_equal(got, cases[i].out, glen);
			free(got);
		}
		b64_decode_as_evp(cases[i].in, c, clen);
	}
	/* Every byte value, in each place of a quad and after padding. */
	for (int b = 0; b < 256; b++) {
		static const char *frames[] = {
			"%cUJD", "Q%cJD", "QU%cD", "QUJ%c", "QQ=%c", "QQ==%c",
			"QUJD%c",
		};

		for (size_t f = 0; f < 7; f++) {
			unsigned char t[8];
			const char *p = strchr(frames[f], '%');
			size_t pre = (size_t)(p - frames[f]);

			memcpy(t, frames[f], pre);
			t[pre] = (unsigned char)b;
			memcpy(t + pre + 1, p + 2, strlen(p + 2));
			snprintf(what, sizeof(what), "byte 0x%02x in %s", b,
			    frames[f]);
			b64_decode_as_evp(what, t, strlen(frames[f]) - 1);
		}
	}
	for (int i = 0; i < 200000; i++) {
		const char *a;
		size_t alen, len;

		x ^= x << 13;
		x ^= x >> 17;
		x ^= x << 5;
		a = alphabets[x % 4];
		alen = strlen(a);
		len = (x >> 8) % 24 + (x % 5 == 0 ? (x >> 16) % 200 : 0);
		for (size_t j = 0; j < len; j++) {
			x ^= x << 13;
			x ^= x >> 17;
			x ^= x << 5;
			enc[j] = (unsigned char)a[x % alen];
		}
		snprintf(what, sizeof(what), "random string %d", i);
		b64_decode_as_evp(what, enc, len);
	}
}

/* OpenSSL's allocations go through these (set first thing in main), so
 * a test can see what a block held when OpenSSL freed it. */
#define MEM_HEAD	16
static const unsigned char *mem_watch;
static size_t mem_watch_len;
static int mem_watch_seen;

static void *
mem_malloc(size_t n, const char *file, int line)
{
	unsigned char *p;

	(void)file;
	(void)line;
	if ((p = malloc(n + MEM_HEAD)) == NULL)
		return NULL;
	memcpy(p, &n, sizeof(n));
	return p + MEM_HEAD;
}

static void *
mem_realloc(void *q, size_t n, const char *file, int line)
{
	unsigned char *p;

	if (q == NULL)
		return mem_malloc(n, file, line);
	if ((p = realloc((unsigned char *)q - MEM_HEAD, n + MEM_HEAD)) == NULL)
		return NULL;
	memcpy(p, &n, sizeof(n));
	return p + MEM_HEAD;
}

static void
mem_free(void *q, const char *file, int line)
{
	unsigned char *p;
	size_t n;

	(void)file;
	(void)line;
	if (q == NULL)
		return;
	p = (unsigned char *)q - MEM_HEAD;
	memcpy(&n, p, sizeof(n));
	if (mem_watch != NULL && memmem(q, n, mem_watch, mem_watch_len) != NULL)
		mem_watch_seen++;
	free(p);
}

/* A decode leaves no block OpenSSL frees holding the input's last line
 * (EVP_ENCODE_CTX kept it, and was freed unwiped). */
static void
test_b64_decode_wipes(void **state)
{
	unsigned char key[90], *got;
	char *enc, *last;
	size_t elen, glen;

	(void)state;
	for (size_t i = 0; i < sizeof(key); i++)
		key[i] = (unsigned char)(i * 13 + 5);
	assert_int_equal(util_b64_encode(key, sizeof(key), &enc, &elen, NULL),
	    0);
	assert_non_null(last = strchr(enc, '\n'));
	last++;					/* 42 bytes: 56 characters */
	mem_watch = (unsigned char *)last;
	mem_watch_len = 16;
	mem_watch_seen = 0;
	assert_int_equal(util_b64_decode((unsigned char *)enc, elen, &got,
	    &glen, NULL), 0);
	mem_watch = NULL;
	assert_int_equal(glen, sizeof(key));
	assert_memory_equal(got, key, glen);
	util_freezero(got, glen);
	free(enc);
	assert_int_equal(mem_watch_seen, 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_read_file),
		cmocka_unit_test(test_write_file_atomic),
		cmocka_unit_test(test_hex),
		cmocka_unit_test(test_b64_encode),
		cmocka_unit_test(test_b64_decode),
		cmocka_unit_test(test_b64_decode_wipes),
		cmocka_unit_test(test_thumbprints),
		cmocka_unit_test(test_bio_string),
		cmocka_unit_test(test_name_cn),
		cmocka_unit_test(test_name_string),
		cmocka_unit_test(test_parse_name),
		cmocka_unit_test(test_parse_duration),
		cmocka_unit_test(test_format_duration),
		cmocka_unit_test(test_clock_parse),
		cmocka_unit_test(test_clock_override),
		cmocka_unit_test(test_clock_format),
		cmocka_unit_test(test_err_set),
		cmocka_unit_test(test_err_set_ssl),
		cmocka_unit_test(test_strerror),
		cmocka_unit_test(test_http_status),
		cmocka_unit_test(test_keytype),
		cmocka_unit_test(test_uri_parse),
		cmocka_unit_test(test_uri_refusals),
		cmocka_unit_test(test_read_pin_file),
		cmocka_unit_test(test_read_pin_env),
		cmocka_unit_test(test_fileset),
	};

	if (!CRYPTO_set_mem_functions(mem_malloc, mem_realloc, mem_free))
		return 1;
	return cmocka_run_group_tests(tests, NULL, NULL);
}
