/* cmd-est.c: hsmca est cacerts | enroll | reenroll | serverkeygen | renew,
 * the device side of EST (RFC 7030) against hsmcad or any EST server.
 *
 * renew is the flow a device runs from a timer: nothing is touched unless
 * the certificate is due; the new pair is written beside the old one,
 * checked, and only then swapped in, so a failure at any point leaves a
 * working pair on disk. */
#include "config.h"

#include <sys/file.h>
#include <sys/stat.h>

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "hsmca/clock.h"
#include "hsmca/csr.h"
#include "hsmca/issue.h"
#include "hsmca/keytype.h"
#include "hsmca/serial.h"
#include "hsmca/util.h"

#include "cli.h"
#include "est-client.h"

#define EST_CERT_MAX		(256 * 1024)
#define EST_THRESHOLD_DEFAULT	"28d"
#define EST_CT_CERTS		"application/pkcs7-mime"

/* Indexes into cmd_est_table, for usage lines. */
enum est_cmd {
	EST_CMD_CACERTS,
	EST_CMD_ENROLL,
	EST_CMD_REENROLL,
	EST_CMD_SERVERKEYGEN,
	EST_CMD_RENEW,
	EST_CMD_MAX
};

enum est_opt {
	O_SERVER = 1,
	O_CACERT,
	O_LABEL,
	O_CERT,
	O_KEY,
	O_OUT,
	O_CSR,
	O_SUBJECT,
	O_SAN,
	O_NEW_KEY,
	O_KEY_OUT,
	O_THRESHOLD,
	O_FORCE,
	O_CHAIN,
	O_KEY_TYPE,
	O_MAX
};

#define OPT(o)		(1u << (o))
#define OPTS_COMMON	(OPT(O_SERVER) | OPT(O_CACERT) | OPT(O_LABEL))
#define OPTS_SERVER	(OPT(O_SERVER) | OPT(O_CACERT))

static const struct option est_options[] = {
	{ "server", required_argument, NULL, O_SERVER },
	{ "cacert", required_argument, NULL, O_CACERT },
	{ "label", required_argument, NULL, O_LABEL },
	{ "cert", required_argument, NULL, O_CERT },
	{ "key", required_argument, NULL, O_KEY },
	{ "out", required_argument, NULL, O_OUT },
	{ "csr", required_argument, NULL, O_CSR },
	{ "subject", required_argument, NULL, O_SUBJECT },
	{ "san", required_argument, NULL, O_SAN },
	{ "new-key", required_argument, NULL, O_NEW_KEY },
	{ "key-out", required_argument, NULL, O_KEY_OUT },
	{ "threshold", required_argument, NULL, O_THRESHOLD },
	{ "force", no_argument, NULL, O_FORCE },
	{ "chain", no_argument, NULL, O_CHAIN },
	{ "key-type", required_argument, NULL, O_KEY_TYPE },
	{ NULL, 0, NULL, 0 }
};

struct est_args {
	const char	*opt[O_MAX];	/* by enum est_opt; flags: non-NULL */
};

static int
est_usage(enum est_cmd cmd)
{
	return cli_usage(&cmd_est_table[cmd]);
}

/* Parse the options a command allows; then every option in required
 * must be there. */
static int
est_parse(struct cli *c, int argc, char **argv, enum est_cmd cmd,
    unsigned int allowed, unsigned int required, struct est_args *a)
{
	struct option opts[O_MAX + 1];
	size_t n = 0;
	int ch;

	memset(a, 0, sizeof(*a));
	memset(opts, 0, sizeof(opts));
	for (size_t i = 0; est_options[i].name != NULL; i++)
		if (allowed & OPT(est_options[i].val))
			opts[n++] = est_options[i];
	while ((ch = getopt_long(argc, argv, (allowed & OPT(O_OUT)) ? "o:" :
	    "", opts, NULL)) != -1) {
		if (ch == 'o' && (allowed & OPT(O_OUT)))
			ch = O_OUT;
		if (ch <= 0 || ch >= O_MAX || !(allowed & OPT(ch)))
			return est_usage(cmd);
		a->opt[ch] = ch == O_FORCE || ch == O_CHAIN ? "yes" : optarg;
	}
	if (optind != argc)
		return est_usage(cmd);
	for (int o = 1; o < O_MAX; o++)
		if ((required & OPT(o)) && a->opt[o] == NULL) {
			for (size_t i = 0; est_options[i].name != NULL; i++)
				if (est_options[i].val == o)
					cli_errorx(c, CLI_EXIT_USAGE, "est %s "
					    "needs --%s", cmd_est_table[cmd].name,
					    est_options[i].name);
			return est_usage(cmd);
		}
	return CLI_EXIT_OK;
}

static const char *
opt_name(int o)
{
	for (size_t i = 0; est_options[i].name != NULL; i++)
		if (est_options[i].val == o)
			return est_options[i].name;
	return "?";
}

/* The same file: the same name, or (both there) the same inode. */
static int
same_file(const char *p, const char *q)
{
	struct stat ps, qs;

	return strcmp(p, q) == 0 || (stat(p, &ps) == 0 && stat(q, &qs) == 0 &&
	    ps.st_dev == qs.st_dev && ps.st_ino == qs.st_ino);
}

/* Before the server is asked to issue: the files enroll, reenroll and
 * serverkeygen write (--out, and the option keyopt when given) are
 * neither the client pair nor each other, and their directories can be
 * written; a new key over the current one would leave a pair that does
 * not match when the certificate then cannot be written. */
static int
outputs_check(struct cli *c, const struct est_args *a, int keyopt)
{
	const int outs[] = { O_OUT, keyopt }, ins[] = { O_CERT, O_KEY };
	char buf[PATH_MAX];
	const char *out, *dir;
	struct stat st;

	for (size_t i = 0; i < 2; i++) {
		if ((out = a->opt[outs[i]]) == NULL)
			continue;
		for (size_t j = 0; j < 2; j++)
			if (a->opt[ins[j]] != NULL && same_file(out,
			    a->opt[ins[j]]))
				return cli_errorx(c, CLI_EXIT_USAGE, "--%s %s is "
				    "the current --%s; to replace a pair in "
				    "place, use est renew", opt_name(outs[i]),
				    out, opt_name(ins[j]));
	}
	if (a->opt[keyopt] != NULL && a->opt[O_OUT] != NULL &&
	    same_file(a->opt[keyopt], a->opt[O_OUT]))
		return cli_errorx(c, CLI_EXIT_USAGE, "--%s and --out name the "
		    "same file", opt_name(keyopt));
	for (size_t i = 0; i < 2; i++) {
		if ((out = a->opt[outs[i]]) == NULL ||
		    (outs[i] == O_OUT && strcmp(out, "-") == 0))
			continue;
		if (stat(out, &st) == 0 && S_ISDIR(st.st_mode))
			return cli_errorx(c, CLI_EXIT_FAIL, "cannot write %s: "
			    "it is a directory", out);
		snprintf(buf, sizeof(buf), "%s", out);
		dir = dirname(buf);
		if (access(dir, W_OK | X_OK) == -1)
			return cli_errorx(c, CLI_EXIT_FAIL, "cannot write %s: "
			    "%s: %s", out, dir, strerror(errno));
	}
	return CLI_EXIT_OK;
}

/* ---- certificates, keys and requests ---- */

/* The first certificate of the PEM file at path; with more, how many
 * certificates follow it there (its chain, when the file holds one). */
static int
cert_read_more(const char *path, X509 **out, int *more, struct hsmca_err *e)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	BIO *b = NULL;
	X509 *next;
	int ret;

	*out = NULL;
	if (more != NULL)
		*more = 0;
	if ((ret = util_read_file(path, EST_CERT_MAX, &buf, &len, e)) != 0)
		return ret;
	if ((b = BIO_new_mem_buf(buf, (int)len)) == NULL ||
	    (*out = PEM_read_bio_X509(b, NULL, NULL, NULL)) == NULL)
		ret = err_set(e, HSMCA_ERR_ARG, "%s: not a PEM certificate",
		    path);
	while (ret == 0 && more != NULL &&
	    (next = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
		X509_free(next);
		(*more)++;
	}
	ERR_clear_error();
	BIO_free(b);
	free(buf);
	return ret;
}

static int
cert_read(const char *path, X509 **out, struct hsmca_err *e)
{
	return cert_read_more(path, out, NULL, e);
}

/* PEM of x, then (chain, as check_chain returns it: x first, the root
 * last) the CA certificates it chains through, the self-signed root left
 * out. */
static int
cert_pem(X509 *x, STACK_OF(X509) *chain, char **out, size_t *outlen,
    struct hsmca_err *e)
{
	BIO *b = BIO_new(BIO_s_mem());
	X509 *ca;
	int ret = HSMCA_ERR_INTERNAL, ok;

	*out = NULL;
	ok = b != NULL && PEM_write_bio_X509(b, x);
	for (int i = 1; ok && i < sk_X509_num(chain); i++) {
		ca = sk_X509_value(chain, i);
		ok = X509_self_signed(ca, 0) == 1 || PEM_write_bio_X509(b, ca);
	}
	if (!ok) {
		err_set_ssl(e, ret, "cannot encode the certificate");
		goto out;
	}
	if ((*out = util_bio_string(b, outlen)) == NULL) {
		ret = err_set(e, HSMCA_ERR_ALLOC, "out of memory");
		goto out;
	}
	ret = 0;
out:
	BIO_free(b);
	return ret;
}

static int
key_matches(X509 *x, EVP_PKEY *pk)
{
	return EVP_PKEY_eq(X509_get0_pubkey(x), pk) == 1;
}

/* Write a private key, PKCS#8 PEM, mode 0600, fsync'd. */
static int
key_write(const char *path, EVP_PKEY *pk, struct hsmca_err *e)
{
	char *pem = NULL;
	size_t len = 0;
	int ret;

	if ((ret = est_key_pem(pk, &pem, &len, e)) != 0)
		return ret;
	ret = util_write_file_atomic(path, pem, len, 0600, e);
	util_freezero(pem, len);
	return ret;
}

/* A new key pair of the same kind as cur: the same curve, or RSA of the
 * same size. */
static int
key_like(EVP_PKEY *cur, EVP_PKEY **out, struct hsmca_err *e)
{
	char group[80];
	size_t glen = 0;
	int bits;

	*out = NULL;
	switch (EVP_PKEY_get_base_id(cur)) {
	case EVP_PKEY_EC:
		if (!EVP_PKEY_get_group_name(cur, group, sizeof(group), &glen))
			return err_set_ssl(e, HSMCA_ERR_ARG, "cannot tell the "
			    "curve of the current key");
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "EC", group);
		break;
	case EVP_PKEY_RSA:
		bits = EVP_PKEY_get_bits(cur);
		*out = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
		break;
	default:
		return err_set(e, HSMCA_ERR_KEY_POLICY, "the current key is "
		    "%s; only EC and RSA keys are renewed",
		    OBJ_nid2sn(EVP_PKEY_get_base_id(cur)));
	}
	if (*out == NULL)
		return err_set_ssl(e, HSMCA_ERR_INTERNAL, "key generation "
		    "failed");
	return 0;
}

/* "DNS:a,URI:b" (openssl's syntax) as a subjectAltName extension. */
static int
san_parse(const char *san, X509_EXTENSION **out, struct hsmca_err *e)
{
	X509V3_CTX v3;

	X509V3_set_ctx(&v3, NULL, NULL, NULL, NULL, 0);
	X509V3_set_ctx_nodb(&v3);
	if ((*out = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name,
	    san)) == NULL)
		return err_set_ssl(e, HSMCA_ERR_ARG, "--san '%s': expected "
		    "TYPE:value[,TYPE:value...] (DNS, URI, IP, email)", san);
	return 0;
}

/* A request for key with subject and (if not NULL) the SAN extension
 * as it is, byte for byte. */
static int
csr_build(EVP_PKEY *key, const X509_NAME *subject, const X509_EXTENSION *san,
    X509_REQ **out, struct hsmca_err *e)
{
	STACK_OF(X509_EXTENSION) *exts = NULL;
	X509_EXTENSION *dup = NULL;
	X509_REQ *req;
	int ret = HSMCA_ERR_INTERNAL;

	*out = NULL;
	if ((req = X509_REQ_new()) == NULL ||
	    !X509_REQ_set_version(req, X509_REQ_VERSION_1) ||
	    !X509_REQ_set_subject_name(req, subject) ||
	    !X509_REQ_set_pubkey(req, key))
		goto out;
	if (san != NULL) {
		if ((exts = sk_X509_EXTENSION_new_null()) == NULL ||
		    (dup = X509_EXTENSION_dup(san)) == NULL ||
		    !sk_X509_EXTENSION_push(exts, dup))
			goto out;
		dup = NULL;	/* exts owns it */
		if (!X509_REQ_add_extensions(req, exts))
			goto out;
	}
	if (X509_REQ_sign(req, key, keytype_digest_for(key)) <= 0)
		goto out;
	*out = req;
	req = NULL;
	ret = 0;
out:
	if (ret != 0)
		err_set_ssl(e, ret, "cannot build the certificate request");
	X509_EXTENSION_free(dup);
	sk_X509_EXTENSION_pop_free(exts, X509_EXTENSION_free);
	X509_REQ_free(req);
	return ret;
}

/* The subjectAltName extension of x, or NULL. */
static const X509_EXTENSION *
cert_san(const X509 *x)
{
	int i = X509_get_ext_by_NID(x, NID_subject_alt_name, -1);

	return i < 0 ? NULL : X509_get_ext(x, i);
}

/* ---- EST exchanges ---- */

static int
est_post_csr(struct est_client *ec, const char *op, X509_REQ *req,
    struct est_reply *r, struct hsmca_err *e)
{
	unsigned char *der = NULL;
	char *b64 = NULL;
	size_t b64len = 0;
	int n, ret;

	if ((n = i2d_X509_REQ(req, &der)) <= 0)
		return err_set_ssl(e, HSMCA_ERR_INTERNAL, "cannot encode the "
		    "certificate request");
	if ((ret = util_b64_encode(der, (size_t)n, &b64, &b64len, e)) == 0)
		ret = est_client_request(ec, "POST", op, "application/pkcs10",
		    b64, b64len, r, e);
	OPENSSL_free(der);
	free(b64);
	return ret;
}

static int
ctype_is(const char *ctype, const char *want)
{
	size_t n = strlen(want);

	return strncasecmp(ctype, want, n) == 0 &&
	    (ctype[n] == '\0' || ctype[n] == ';' || ctype[n] == ' ');
}

/* The value of parameter name in a Content-Type, into out[len]: after the
 * media type, "; name=value" pairs, the value a token or a quoted-string
 * (RFC 9110 5.6.6). -1 when it is missing, malformed or too long. */
static int
ctype_param(const char *ctype, const char *name, char *out, size_t len)
{
	const char *p = strchr(ctype, ';'), *k;
	size_t klen, n;
	int match;

	while (p != NULL && *p == ';') {
		p++;
		p += strspn(p, " \t");
		k = p;
		klen = strcspn(p, "=; \t");
		p += klen;
		if (*p++ != '=')
			return -1;
		match = klen == strlen(name) && strncasecmp(k, name, klen) == 0;
		n = 0;
		if (*p == '"') {
			for (p++; *p != '"'; p++) {
				if (*p == '\\' && p[1] != '\0')
					p++;
				if (*p == '\0' || (match && n + 1 >= len))
					return -1;
				if (match)
					out[n++] = *p;
			}
			p++;
		} else {
			for (; *p != '\0' && strchr("; \t", *p) == NULL; p++) {
				if (match && n + 1 >= len)
					return -1;
				if (match)
					out[n++] = *p;
			}
		}
		if (match) {
			out[n] = '\0';
			return n > 0 ? 0 : -1;
		}
		p += strspn(p, " \t");
	}
	return -1;
}

/* The certificates of a 200 certs-only reply; a refusal otherwise. */
static int
reply_certs(const struct est_reply *r, STACK_OF(X509) **out,
    struct hsmca_err *e)
{
	*out = NULL;
	if (r->status != 200)
		return est_reply_refusal(r, e);
	if (!ctype_is(r->ctype, EST_CT_CERTS))
		return err_set(e, HSMCA_ERR_ARG, "the server answered with "
		    "Content-Type '%s', not %s", r->ctype, EST_CT_CERTS);
	return est_p7_certs(r->body, r->len, out, e);
}

/* The certificate for pub among certs (a new reference). */
static int
certs_find(STACK_OF(X509) *certs, EVP_PKEY *pub, X509 **out,
    struct hsmca_err *e)
{
	for (int i = 0; i < sk_X509_num(certs); i++) {
		X509 *x = sk_X509_value(certs, i);

		if (key_matches(x, pub) && X509_up_ref(x)) {
			*out = x;
			return 0;
		}
	}
	return err_set(e, HSMCA_ERR_VERIFY, "the server's answer holds no "
	    "certificate for the requested key");
}

static int
get_cacerts(struct est_client *ec, STACK_OF(X509) **out,
    struct hsmca_err *e)
{
	struct est_reply r;
	int ret;

	if ((ret = est_client_request(ec, "GET", "cacerts", NULL, NULL, 0,
	    &r, e)) != 0)
		return ret;
	ret = reply_certs(&r, out, e);
	est_reply_free(&r);
	return ret;
}

/* x verifies, at the injectable clock, up to a trust anchor in the
 * cacert file (--cacert); the certificates of cacerts and of more may
 * serve as intermediates, never as anchors. With chain, the path found
 * (x first, the anchor last). */
static int
check_chain(X509 *x, const char *cacert, STACK_OF(X509) *cacerts,
    STACK_OF(X509) *more, STACK_OF(X509) **chain, struct hsmca_err *e)
{
	X509_STORE *trust = X509_STORE_new();
	X509_STORE_CTX *ctx = X509_STORE_CTX_new();
	STACK_OF(X509) *untrusted = sk_X509_new_null();
	STACK_OF(X509) *from[] = { cacerts, more };
	int ret = HSMCA_ERR_ALLOC;

	if (trust == NULL || ctx == NULL || untrusted == NULL) {
		err_set(e, ret, "out of memory");
		goto out;
	}
	if (X509_STORE_load_file(trust, cacert) != 1) {
		ret = err_set_ssl(e, HSMCA_ERR_ARG, "%s: no trust anchors",
		    cacert);
		goto out;
	}
	for (size_t f = 0; f < sizeof(from) / sizeof(from[0]); f++)
		for (int i = 0; i < sk_X509_num(from[f]); i++) {
			X509 *ca = sk_X509_value(from[f], i);

			if (ca == x || X509_self_signed(ca, 0) == 1)
				continue;
			if (!sk_X509_push(untrusted, ca)) {
				err_set(e, ret, "out of memory");
				goto out;
			}
		}
	if (!X509_STORE_CTX_init(ctx, trust, x, untrusted)) {
		err_set(e, ret, "out of memory");
		goto out;
	}
	X509_STORE_CTX_set_time(ctx, 0, clock_now());
	if (X509_verify_cert(ctx) != 1) {
		ret = err_set(e, HSMCA_ERR_VERIFY, "the new certificate does "
		    "not chain to a trust anchor in %s: %s", cacert,
		    X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx)));
		goto out;
	}
	if (chain != NULL && (*chain = X509_STORE_CTX_get1_chain(ctx)) ==
	    NULL) {
		err_set(e, ret, "out of memory");
		goto out;
	}
	ret = 0;
out:
	ERR_clear_error();
	sk_X509_free(untrusted);
	X509_STORE_CTX_free(ctx);
	X509_STORE_free(trust);
	return ret;
}

/* What a certificate the server issued must be: for the subject
 * requested and, when the request had one, its subjectAltName; for
 * enroll, reenroll and renew, usable for TLS client authentication and
 * CA:FALSE, unless it renews a CA (an edge CA renews into one);
 * serverkeygen may bring a CA (an edge CA). */
struct est_want {
	const X509_NAME	*subject;
	GENERAL_NAMES	*san;		/* owned; NULL: not checked */
	int		 client;	/* for TLS client authentication */
	int		 ca;		/* may be a CA */
};

static void
want_clear(struct est_want *w)
{
	GENERAL_NAMES_free(w->san);
	memset(w, 0, sizeof(*w));
}

/* Every name of a is in b. */
static int
san_within(GENERAL_NAMES *a, GENERAL_NAMES *b)
{
	for (int i = 0; i < sk_GENERAL_NAME_num(a); i++) {
		int found = 0;

		for (int j = 0; !found && j < sk_GENERAL_NAME_num(b); j++)
			found = GENERAL_NAME_cmp(sk_GENERAL_NAME_value(a, i),
			    sk_GENERAL_NAME_value(b, j)) == 0;
		if (!found)
			return 0;
	}
	return 1;
}

/* The subject of x for a message: a server chose it, so only printable
 * characters. */
static char *
subject_text(X509 *x)
{
	char *s = util_name_string(X509_get_subject_name(x));

	for (char *p = s; p != NULL && *p != '\0'; p++)
		if (!isprint((unsigned char)*p))
			*p = '?';
	return s;
}

/* x, the certificate the server issued, is what was asked for (w) and
 * chains to --cacert (check_chain); with chain, the path found. */
static int
issued_check(X509 *x, const struct est_want *w, const char *cacert,
    STACK_OF(X509) *cacerts, STACK_OF(X509) *more, STACK_OF(X509) **chain,
    struct hsmca_err *e)
{
	GENERAL_NAMES *san = NULL;
	char *subj = NULL;
	int ret;

	if ((ret = check_chain(x, cacert, cacerts, more, chain, e)) != 0)
		return ret;
	ret = HSMCA_ERR_VERIFY;
	if (X509_NAME_cmp(X509_get_subject_name(x), w->subject) != 0) {
		subj = subject_text(x);
		err_set(e, ret, "the new certificate is for '%s', not the "
		    "subject requested", subj != NULL ? subj : "?");
		goto out;
	}
	if (w->san != NULL && ((san = X509_get_ext_d2i(x, NID_subject_alt_name,
	    NULL, NULL)) == NULL || !san_within(w->san, san) ||
	    !san_within(san, w->san))) {
		err_set(e, ret, "the new certificate's subjectAltName is not "
		    "the one requested");
		goto out;
	}
	/* CA:TRUE whatever its keyUsage (X509_check_ca alone says 0 for a
	 * CA without keyCertSign), or a CA by any other sign. */
	if (!w->ca && ((X509_get_extension_flags(x) & EXFLAG_CA) != 0 ||
	    X509_check_ca(x) != 0)) {
		err_set(e, ret, "the new certificate is a CA certificate; a "
		    "device's must be CA:FALSE");
		goto out;
	}
	if (w->client && X509_check_purpose(x, X509_PURPOSE_SSL_CLIENT,
	    0) != 1) {
		err_set(e, ret, "the new certificate is not for TLS client "
		    "authentication (its extendedKeyUsage or keyUsage)");
		goto out;
	}
	ret = 0;
out:
	if (ret != 0 && chain != NULL) {
		sk_X509_pop_free(*chain, X509_free);
		*chain = NULL;
	}
	ERR_clear_error();
	GENERAL_NAMES_free(san);
	free(subj);
	return ret;
}

/* ---- output ---- */

static json_t *
cert_json(X509 *x, const char *file, const char *key)
{
	json_t *o = json_object();
	char serial[SERIAL_HEX_MAX] = "", *subj;

	(void)serial_to_hex(X509_get0_serialNumber(x), serial);
	subj = util_name_string(X509_get_subject_name(x));
	json_object_set_new(o, "serial", json_string(serial));
	json_object_set_new(o, "subject", json_string(subj ? subj : ""));
	json_object_set_new(o, "not_after",
	    out_time(issue_asn1_time(X509_get0_notAfter(x))));
	json_object_set_new(o, "file", file ? json_string(file) : json_null());
	json_object_set_new(o, "key", key ? json_string(key) : json_null());
	free(subj);
	return o;
}

static const struct out_col cert_fields[] = {
	{ "status", "Status" }, { "serial", "Serial" },
	{ "subject", "Subject" }, { "not_after", "Not after" },
	{ "file", "Certificate" }, { "key", "Key" }, { NULL, NULL }
};

static void
print_cert(struct cli *c, X509 *x, const char *file, const char *key)
{
	json_t *o = cert_json(x, file, key);

	out_object(c, o, cert_fields);
	json_decref(o);
}

/* ---- commands ---- */

static int
est_open(struct cli *c, const struct est_args *a, const char *cert,
    const char *key, struct est_client **ec)
{
	int ret;

	if ((ret = est_client_new(a->opt[O_SERVER], a->opt[O_LABEL],
	    a->opt[O_CACERT], cert, key, ec, &c->err)) != 0)
		return cli_error(c, ret);
	return CLI_EXIT_OK;
}

static int
cmd_est_cacerts(struct cli *c, int argc, char **argv)
{
	struct est_args a;
	struct est_client *ec = NULL;
	STACK_OF(X509) *certs = NULL;
	BIO *b = NULL;
	char *data;
	long n;
	int ret;

	if ((ret = est_parse(c, argc, argv, EST_CMD_CACERTS,
	    OPTS_COMMON | OPT(O_OUT), OPTS_SERVER,
	    &a)) != CLI_EXIT_OK)
		return ret;
	if ((ret = est_open(c, &a, NULL, NULL, &ec)) != CLI_EXIT_OK)
		goto out;
	if ((ret = get_cacerts(ec, &certs, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	if ((b = BIO_new(BIO_s_mem())) == NULL) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "out of memory");
		goto out;
	}
	for (int i = 0; i < sk_X509_num(certs); i++)
		if (!PEM_write_bio_X509(b, sk_X509_value(certs, i))) {
			ret = cli_errorx(c, CLI_EXIT_FAIL, "cannot encode the "
			    "CA certificates");
			goto out;
		}
	n = BIO_get_mem_data(b, &data);
	ret = cli_write_output(c, a.opt[O_OUT], data, (size_t)n);
out:
	BIO_free(b);
	sk_X509_pop_free(certs, X509_free);
	est_client_free(ec);
	return ret;
}

/* The CA certificates, fetched before anything is issued: the new
 * certificate is checked against --cacert through them, and with --chain
 * written followed by the ones it chains through. */
static int
est_cacerts(struct cli *c, struct est_client *ec, STACK_OF(X509) **cacerts)
{
	int ret;

	if ((ret = get_cacerts(ec, cacerts, &c->err)) != 0)
		return cli_error(c, ret);
	return CLI_EXIT_OK;
}

/* x, then the CA certificates of chain (check_chain's) it chains
 * through, the root left out, written atomically. */
static int
cert_write(const char *path, X509 *x, STACK_OF(X509) *chain, int mode,
    struct hsmca_err *e)
{
	char *pem = NULL;
	size_t len = 0;
	int ret;

	if ((ret = cert_pem(x, chain, &pem, &len, e)) != 0)
		return ret;
	ret = util_write_file_atomic(path, pem, len, mode, e);
	free(pem);
	return ret;
}

/* POST req to op and write the certificate for pub to out (and newkey,
 * when there is one, to keyfile first), once it is what w asks for; with
 * chain (--chain), the CA certificates it chains through after it. */
static int
enroll_finish(struct cli *c, const struct est_args *a, struct est_client *ec,
    const char *op, X509_REQ *req, const struct est_want *w, EVP_PKEY *pub,
    EVP_PKEY *newkey, const char *keyfile, STACK_OF(X509) *cacerts)
{
	struct est_reply r;
	STACK_OF(X509) *certs = NULL, *chain = NULL;
	X509 *x = NULL;
	char *pem = NULL;
	size_t len = 0;
	int ret;

	memset(&r, 0, sizeof(r));
	if ((ret = est_post_csr(ec, op, req, &r, &c->err)) != 0 ||
	    (ret = reply_certs(&r, &certs, &c->err)) != 0 ||
	    (ret = certs_find(certs, pub, &x, &c->err)) != 0 ||
	    (ret = issued_check(x, w, a->opt[O_CACERT], cacerts, certs,
	    &chain, &c->err)) != 0 ||
	    (ret = cert_pem(x, a->opt[O_CHAIN] != NULL ? chain : NULL, &pem,
	    &len, &c->err)) != 0 ||
	    (newkey != NULL && (ret = key_write(keyfile, newkey,
	    &c->err)) != 0)) {
		ret = cli_error(c, ret);
		goto out;
	}
	if ((ret = cli_write_output(c, a->opt[O_OUT], pem, len)) != CLI_EXIT_OK)
		goto out;
	print_cert(c, x, a->opt[O_OUT], newkey != NULL ? keyfile : NULL);
	ret = CLI_EXIT_OK;
out:
	free(pem);
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(certs, X509_free);
	est_reply_free(&r);
	return ret;
}

/* A key of --key-type (default ec-p256) in *out: the device's new key
 * for est enroll, the throwaway key whose kind a serverkeygen request
 * asks the server for. */
static int
est_keygen(struct cli *c, const struct est_args *a, EVP_PKEY **out)
{
	enum key_type kt = KEY_EC_P256;

	*out = NULL;
	if (a->opt[O_KEY_TYPE] != NULL &&
	    keytype_parse(a->opt[O_KEY_TYPE], &kt) != 0)
		return err_set(&c->err, HSMCA_ERR_ARG, "--key-type %s: not "
		    "ec-p256, ec-p384, rsa-2048 or rsa-3072", a->opt[O_KEY_TYPE]);
	if ((*out = keytype_generate_soft(kt)) == NULL)
		return err_set_ssl(&c->err, HSMCA_ERR_INTERNAL, "%s key "
		    "generation failed", keytype_name(kt));
	return 0;
}

static int
cmd_est_enroll(struct cli *c, int argc, char **argv)
{
	struct est_args a;
	struct est_want w;
	struct est_client *ec = NULL;
	STACK_OF(X509) *cacerts = NULL;
	struct csr *csr = NULL;
	X509_NAME *subject = NULL;
	X509_EXTENSION *san = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *newkey = NULL;
	unsigned char *buf = NULL;
	size_t len = 0;
	int ret;

	if ((ret = est_parse(c, argc, argv, EST_CMD_ENROLL, OPTS_COMMON |
	    OPT(O_CERT) | OPT(O_KEY) | OPT(O_CSR) | OPT(O_SUBJECT) |
	    OPT(O_SAN) | OPT(O_NEW_KEY) | OPT(O_OUT) | OPT(O_CHAIN) |
	    OPT(O_KEY_TYPE), OPTS_SERVER | OPT(O_CERT) | OPT(O_KEY) |
	    OPT(O_OUT), &a)) != CLI_EXIT_OK)
		return ret;
	if ((a.opt[O_CSR] != NULL) == (a.opt[O_SUBJECT] != NULL) ||
	    (a.opt[O_SUBJECT] != NULL) != (a.opt[O_NEW_KEY] != NULL) ||
	    ((a.opt[O_SAN] != NULL || a.opt[O_KEY_TYPE] != NULL) &&
	    a.opt[O_SUBJECT] == NULL)) {
		cli_errorx(c, CLI_EXIT_USAGE, "est enroll takes either --csr, "
		    "or --subject [--san] [--key-type T] --new-key");
		return est_usage(EST_CMD_ENROLL);
	}
	if ((ret = outputs_check(c, &a, O_NEW_KEY)) != CLI_EXIT_OK)
		return ret;
	memset(&w, 0, sizeof(w));
	w.client = 1;
	if (a.opt[O_CSR] != NULL) {
		if ((ret = util_read_file(a.opt[O_CSR], CSR_MAX_SIZE, &buf,
		    &len, &c->err)) != 0 ||
		    (ret = csr_parse(buf, len, &csr, &c->err)) != 0) {
			ret = cli_error(c, ret);
			goto out;
		}
		w.subject = X509_REQ_get_subject_name(csr->req);
		w.san = csr_get_san(csr);
	} else {
		if ((ret = util_parse_name(a.opt[O_SUBJECT], &subject,
		    &c->err)) != 0 ||
		    (a.opt[O_SAN] != NULL && (ret = san_parse(a.opt[O_SAN],
		    &san, &c->err)) != 0) ||
		    (ret = est_keygen(c, &a, &newkey)) != 0 ||
		    (ret = csr_build(newkey, subject, san, &req,
		    &c->err)) != 0) {
			ret = cli_error(c, ret);
			goto out;
		}
		w.subject = subject;
		w.san = san != NULL ? X509V3_EXT_d2i(san) : NULL;
	}
	if ((ret = est_open(c, &a, a.opt[O_CERT], a.opt[O_KEY],
	    &ec)) != CLI_EXIT_OK ||
	    (ret = est_cacerts(c, ec, &cacerts)) != CLI_EXIT_OK)
		goto out;
	ret = enroll_finish(c, &a, ec, "simpleenroll", csr ? csr->req : req,
	    &w, csr ? csr->pubkey : newkey, newkey, a.opt[O_NEW_KEY], cacerts);
out:
	want_clear(&w);
	sk_X509_pop_free(cacerts, X509_free);
	est_client_free(ec);
	EVP_PKEY_free(newkey);
	X509_REQ_free(req);
	X509_EXTENSION_free(san);
	X509_NAME_free(subject);
	csr_free(csr);
	free(buf);
	return ret;
}

static int
cmd_est_reenroll(struct cli *c, int argc, char **argv)
{
	struct est_args a;
	struct est_want w;
	struct est_client *ec = NULL;
	STACK_OF(X509) *cacerts = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *cur = NULL, *newkey = NULL;
	X509 *x = NULL;
	int ret;

	memset(&w, 0, sizeof(w));
	if ((ret = est_parse(c, argc, argv, EST_CMD_REENROLL, OPTS_COMMON |
	    OPT(O_CERT) | OPT(O_KEY) | OPT(O_OUT) | OPT(O_NEW_KEY) |
	    OPT(O_CHAIN),
	    OPTS_SERVER | OPT(O_CERT) | OPT(O_KEY) |
	    OPT(O_OUT) | OPT(O_NEW_KEY), &a)) != CLI_EXIT_OK ||
	    (ret = outputs_check(c, &a, O_NEW_KEY)) != CLI_EXIT_OK)
		return ret;
	if ((ret = cert_read(a.opt[O_CERT], &x, &c->err)) != 0 ||
	    (ret = est_read_key(a.opt[O_KEY], &cur, &c->err)) != 0 ||
	    (ret = key_like(cur, &newkey, &c->err)) != 0 ||
	    (ret = csr_build(newkey, X509_get_subject_name(x), cert_san(x),
	    &req, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	/* RFC 7030 4.2.2: the subject and SAN of the certificate renewed. */
	w.subject = X509_get_subject_name(x);
	w.san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	w.client = 1;
	w.ca = X509_check_ca(x) != 0;
	if ((ret = est_open(c, &a, a.opt[O_CERT], a.opt[O_KEY],
	    &ec)) != CLI_EXIT_OK ||
	    (ret = est_cacerts(c, ec, &cacerts)) != CLI_EXIT_OK)
		goto out;
	ret = enroll_finish(c, &a, ec, "simplereenroll", req, &w, newkey,
	    newkey, a.opt[O_NEW_KEY], cacerts);
out:
	want_clear(&w);
	sk_X509_pop_free(cacerts, X509_free);
	est_client_free(ec);
	X509_REQ_free(req);
	EVP_PKEY_free(newkey);
	EVP_PKEY_free(cur);
	X509_free(x);
	return ret;
}

/* The parts of a multipart/mixed reply (RFC 7030 4.4.2): the base64 of
 * the PKCS#8 key and of the PKCS#7, pointing into r->body. */
static int
skg_parts(const struct est_reply *r, const unsigned char **key,
    size_t *keylen, const unsigned char **p7, size_t *p7len,
    struct hsmca_err *e)
{
	const unsigned char *p, *end = r->body + r->len, *next, *hend, *body;
	char b[70 + 1], delim[80];
	size_t dlen;

	*key = *p7 = NULL;
	if (!ctype_is(r->ctype, "multipart/mixed"))
		return err_set(e, HSMCA_ERR_ARG, "the server answered with "
		    "Content-Type '%s', not multipart/mixed", r->ctype);
	/* RFC 2046 5.1.1: 1 to 70 characters, not ending in a space. */
	if (ctype_param(r->ctype, "boundary", b, sizeof(b)) != 0 ||
	    b[strlen(b) - 1] == ' ')
		return err_set(e, HSMCA_ERR_ARG, "the multipart reply has no "
		    "usable boundary parameter");
	dlen = (size_t)snprintf(delim, sizeof(delim), "--%s", b);
	if ((p = memmem(r->body, r->len, delim, dlen)) == NULL)
		return err_set(e, HSMCA_ERR_ARG, "the multipart reply has no "
		    "parts");
	for (;;) {
		p += dlen;
		if (end - p >= 2 && p[0] == '-' && p[1] == '-')
			break;
		if ((p = memchr(p, '\n', (size_t)(end - p))) == NULL)
			break;
		p++;
		/* The next delimiter starts a line. */
		for (next = p; (next = memmem(next, (size_t)(end - next), delim,
		    dlen)) != NULL && next > p && next[-1] != '\n'; next++)
			;
		if (next == NULL)
			return err_set(e, HSMCA_ERR_ARG, "the multipart reply "
			    "is truncated");
		if ((hend = memmem(p, (size_t)(next - p), "\r\n\r\n", 4)) != NULL)
			body = hend + 4;
		else if ((hend = memmem(p, (size_t)(next - p), "\n\n", 2)) != NULL)
			body = hend + 2;
		else
			return err_set(e, HSMCA_ERR_ARG, "a part of the "
			    "multipart reply has no headers");
		/* The headers: only Content-Type matters. */
		for (const unsigned char *h = p; h < hend;) {
			const unsigned char *eol = memchr(h, '\n',
			    (size_t)(hend - h));
			size_t hl = eol ? (size_t)(eol - h) : (size_t)(hend - h);
			const char *want[] = { "content-type: application/pkcs8",
			    "content-type: " EST_CT_CERTS };

			for (int w = 0; w < 2; w++)
				if (hl >= strlen(want[w]) && strncasecmp(
				    (const char *)h, want[w],
				    strlen(want[w])) == 0) {
					*(w == 0 ? key : p7) = body;
					*(w == 0 ? keylen : p7len) =
					    (size_t)(next - body);
				}
			h += hl + 1;
		}
		p = next;
	}
	if (*key == NULL || *p7 == NULL)
		return err_set(e, HSMCA_ERR_ARG, "the multipart reply lacks the "
		    "%s part", *key == NULL ? "application/pkcs8" :
		    EST_CT_CERTS);
	return 0;
}

/* The key part: PKCS#8 as RFC 7030 4.4.2 says; the type-specific form
 * (SEC1, PKCS#1) that hsmcad sends today is accepted as well. */
static int
skg_key(const unsigned char *b64, size_t len, EVP_PKEY **out,
    struct hsmca_err *e)
{
	const unsigned char *p;
	unsigned char *der = NULL;
	size_t derlen = 0;
	int ret;

	*out = NULL;
	if ((ret = util_b64_decode(b64, len, &der, &derlen, e)) != 0)
		return ret;
	p = der;
	if ((*out = d2i_AutoPrivateKey(NULL, &p, (long)derlen)) == NULL) {
		ERR_clear_error();
		ret = err_set(e, HSMCA_ERR_ARG, "the key part is not a DER "
		    "private key");
	}
	util_freezero(der, derlen);
	return ret;
}

static int
cmd_est_serverkeygen(struct cli *c, int argc, char **argv)
{
	struct est_args a;
	struct est_want w;
	struct est_client *ec = NULL;
	struct est_reply r;
	STACK_OF(X509) *certs = NULL, *cacerts = NULL, *chain = NULL;
	X509_NAME *subject = NULL;
	X509_EXTENSION *san = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *tmp = NULL, *key = NULL;
	X509 *x = NULL;
	const unsigned char *k64, *c64;
	size_t k64len = 0, c64len = 0, len = 0;
	char *pem = NULL;
	int ret;

	memset(&r, 0, sizeof(r));
	memset(&w, 0, sizeof(w));
	if ((ret = est_parse(c, argc, argv, EST_CMD_SERVERKEYGEN, OPTS_COMMON |
	    OPT(O_CERT) | OPT(O_KEY) | OPT(O_SUBJECT) | OPT(O_SAN) |
	    OPT(O_OUT) | OPT(O_KEY_OUT) | OPT(O_CHAIN) | OPT(O_KEY_TYPE),
	    OPTS_SERVER |
	    OPT(O_CERT) | OPT(O_KEY) | OPT(O_SUBJECT) | OPT(O_OUT) |
	    OPT(O_KEY_OUT), &a)) != CLI_EXIT_OK ||
	    (ret = outputs_check(c, &a, O_KEY_OUT)) != CLI_EXIT_OK)
		return ret;
	/* The server makes the key; the request names the subject and is
	 * signed with a throwaway key it ignores. */
	if ((ret = util_parse_name(a.opt[O_SUBJECT], &subject, &c->err)) != 0 ||
	    (a.opt[O_SAN] != NULL && (ret = san_parse(a.opt[O_SAN], &san,
	    &c->err)) != 0) ||
	    (ret = est_keygen(c, &a, &tmp)) != 0 ||
	    (ret = csr_build(tmp, subject, san, &req, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	/* An edge CA comes this way. */
	w.subject = subject;
	w.ca = 1;
	w.san = san != NULL ? X509V3_EXT_d2i(san) : NULL;
	if ((ret = est_open(c, &a, a.opt[O_CERT], a.opt[O_KEY],
	    &ec)) != CLI_EXIT_OK ||
	    (ret = est_cacerts(c, ec, &cacerts)) != CLI_EXIT_OK)
		goto out;
	if ((ret = est_post_csr(ec, "serverkeygen", req, &r, &c->err)) != 0 ||
	    (r.status != 200 && (ret = est_reply_refusal(&r, &c->err)) != 0) ||
	    (ret = skg_parts(&r, &k64, &k64len, &c64, &c64len,
	    &c->err)) != 0 ||
	    (ret = skg_key(k64, k64len, &key, &c->err)) != 0 ||
	    (ret = est_p7_certs(c64, c64len, &certs, &c->err)) != 0 ||
	    (ret = certs_find(certs, key, &x, &c->err)) != 0 ||
	    (ret = issued_check(x, &w, a.opt[O_CACERT], cacerts, certs,
	    &chain, &c->err)) != 0 ||
	    (ret = cert_pem(x, a.opt[O_CHAIN] != NULL ? chain : NULL, &pem,
	    &len, &c->err)) != 0 ||
	    (ret = key_write(a.opt[O_KEY_OUT], key, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	if ((ret = cli_write_output(c, a.opt[O_OUT], pem, len)) != CLI_EXIT_OK)
		goto out;
	print_cert(c, x, a.opt[O_OUT], a.opt[O_KEY_OUT]);
	ret = CLI_EXIT_OK;
out:
	want_clear(&w);
	free(pem);
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(cacerts, X509_free);
	EVP_PKEY_free(key);
	EVP_PKEY_free(tmp);
	X509_REQ_free(req);
	X509_EXTENSION_free(san);
	X509_NAME_free(subject);
	est_reply_free(&r);
	est_client_free(ec);
	return ret;
}

/* ---- renew ---- */

/* A key renew writes is never more than this: never world-readable. */
#define EST_KEY_MODE_MAX	0640

/* --cert and --key with symbolic links followed: the files replaced are
 * the ones they point to, in their own directories. */
struct renew_files {
	const char	*cert_arg, *key_arg;	/* as given */
	char		 cert[PATH_MAX], key[PATH_MAX];
	char		 cert_new[PATH_MAX], key_new[PATH_MAX];
	char		 cert_old[PATH_MAX], key_old[PATH_MAX];
	struct stat	 cert_st, key_st;	/* owner and mode to keep */
	int		 cert_mode, key_mode;
};

static int
path_beside(char *dst, size_t len, const char *path, const char *suffix,
    struct hsmca_err *e)
{
	if ((size_t)snprintf(dst, len, "%s%s", path, suffix) >= len)
		return err_set(e, HSMCA_ERR_ARG, "%s: path too long", path);
	return 0;
}

/* Give path, just written, the owner and group of st and mode, synced:
 * a key the service user could read stays readable to it. */
static int
file_own_like(const char *path, const struct stat *st, int mode,
    struct hsmca_err *e)
{
	struct stat now;
	int fd, ret = HSMCA_ERR_IO;

	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC)) == -1)
		return err_set(e, ret, "%s: %s", path, strerror(errno));
	if (fstat(fd, &now) == -1) {
		err_set(e, ret, "%s: %s", path, strerror(errno));
		goto out;
	}
	if ((now.st_uid != st->st_uid || now.st_gid != st->st_gid) &&
	    fchown(fd, st->st_uid, st->st_gid) == -1) {
		err_set(e, ret, "cannot give %s the owner and group of the file "
		    "it replaces (%lu:%lu): %s", path, (unsigned long)st->st_uid,
		    (unsigned long)st->st_gid, strerror(errno));
		goto out;
	}
	if (fchmod(fd, (mode_t)mode) == -1 || fsync(fd) == -1) {
		err_set(e, ret, "%s: %s", path, strerror(errno));
		goto out;
	}
	ret = 0;
out:
	close(fd);
	return ret;
}

/* Make a rename in path's directory durable. */
static int
sync_dir(const char *path, struct hsmca_err *e)
{
	char dir[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%s", path);
	if ((fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return err_set(e, HSMCA_ERR_IO, "%s: %s", dir, strerror(errno));
	if (fsync(fd) == -1) {
		int saved = errno;

		close(fd);
		return err_set(e, HSMCA_ERR_IO, "fsync %s: %s", dir,
		    strerror(saved));
	}
	close(fd);
	return 0;
}

/* One renewal at a time per directory: a lock on the certificate's
 * directory, held until the process exits. */
static int
renew_lock(const char *cert, int *fdp, struct hsmca_err *e)
{
	char dir[PATH_MAX];
	int fd;

	snprintf(dir, sizeof(dir), "%s", cert);
	if ((fd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC)) == -1)
		return err_set(e, HSMCA_ERR_IO, "%s: %s", dir, strerror(errno));
	if (flock(fd, LOCK_EX) == -1) {
		int saved = errno;

		close(fd);
		return err_set(e, HSMCA_ERR_IO, "cannot lock %s: %s", dir,
		    strerror(saved));
	}
	*fdp = fd;
	return 0;
}

static void
remove_new(const struct renew_files *f)
{
	int gone = 0;

	gone += unlink(f->key_new) == 0;
	gone += unlink(f->cert_new) == 0;
	if (gone > 0) {
		(void)sync_dir(f->key, NULL);
		(void)sync_dir(f->cert, NULL);
	}
}

/* Before anything else: a run that stopped between the two renames left
 * KEY new and CERT.new holding its certificate; finish that swap. Any
 * other .new file is what a run that failed before the swap left:
 * removed. Sets *completed when a swap was finished. */
static int
renew_recover(const struct renew_files *f, int *completed,
    struct hsmca_err *e)
{
	X509 *x = NULL;
	EVP_PKEY *k = NULL;
	int ret = 0;

	*completed = 0;
	if (access(f->cert_new, F_OK) == 0 &&
	    cert_read(f->cert_new, &x, NULL) == 0 &&
	    est_read_key(f->key, &k, NULL) == 0 && key_matches(x, k)) {
		if (rename(f->cert_new, f->cert) == -1) {
			ret = err_set(e, HSMCA_ERR_IO, "cannot complete the "
			    "interrupted renewal: rename %s to %s: %s",
			    f->cert_new, f->cert, strerror(errno));
			goto out;
		}
		if ((ret = sync_dir(f->cert, e)) != 0)
			goto out;
		*completed = 1;
	}
	remove_new(f);
out:
	ERR_clear_error();
	EVP_PKEY_free(k);
	X509_free(x);
	return ret;
}

/* Keep a copy of path as old, with the owner of st and mode, fsync'd. */
static int
keep_old(const char *path, const char *old, const struct stat *st, int mode,
    struct hsmca_err *e)
{
	unsigned char *buf = NULL;
	size_t len = 0;
	int ret;

	if ((ret = util_read_file(path, EST_CERT_MAX, &buf, &len, e)) != 0)
		return ret;
	if ((ret = util_write_file_atomic(old, buf, len, mode & 0600,
	    e)) == 0)
		ret = file_own_like(old, st, mode, e);
	util_freezero(buf, len);
	return ret;
}

/* GET whoami with the pair cert and key: 0 when the server takes the
 * certificate for one it issued and holds valid (hsmcad answers "issued
 * SERIAL", and refuses a revoked or unknown one as it would a renewal).
 * A server without whoami (404: not hsmcad) sets *unknown: all it did was
 * complete a TLS handshake. */
static int
whoami_check(const struct est_args *a, const char *cert, const char *key,
    int *unknown, struct hsmca_err *e)
{
	struct est_client *ec = NULL;
	struct est_reply r;
	int ret;

	*unknown = 0;
	memset(&r, 0, sizeof(r));
	if ((ret = est_client_new(a->opt[O_SERVER], a->opt[O_LABEL],
	    a->opt[O_CACERT], cert, key, &ec, e)) != 0 ||
	    (ret = est_client_request(ec, "GET", "whoami", NULL, NULL, 0, &r,
	    e)) != 0)
		goto out;
	if (r.status == 404)
		*unknown = 1;
	else if (r.status != 200)
		ret = est_reply_refusal(&r, e);
	else if (r.len < 7 || strncmp((const char *)r.body, "issued ", 7) != 0)
		ret = err_set(e, HSMCA_ERR_VERIFY, "the server does not take "
		    "the certificate for one it issued");
out:
	est_reply_free(&r);
	est_client_free(ec);
	return ret;
}

/* The new pair on disk works: its certificate is for its key, chains to
 * --cacert, and the server, presented with it, takes it for a valid
 * certificate it issued (whoami); *unchecked when the server cannot
 * tell (no whoami). */
static int
renew_check(const struct est_args *a, const struct renew_files *f,
    STACK_OF(X509) *cacerts, int *unchecked, struct hsmca_err *e)
{
	EVP_PKEY *k = NULL;
	X509 *x = NULL;
	int ret;

	if ((ret = cert_read(f->cert_new, &x, e)) != 0 ||
	    (ret = est_read_key(f->key_new, &k, e)) != 0)
		goto out;
	if (!key_matches(x, k)) {
		ret = err_set(e, HSMCA_ERR_VERIFY, "%s is not the key of %s",
		    f->key_new, f->cert_new);
		goto out;
	}
	if ((ret = check_chain(x, a->opt[O_CACERT], cacerts, NULL, NULL,
	    e)) != 0)
		goto out;
	if ((ret = whoami_check(a, f->cert_new, f->key_new, unchecked,
	    e)) != 0) {
		char why[HSMCA_ERRMSG_MAX];

		snprintf(why, sizeof(why), "%s", e->msg);
		err_set(e, ret, "the new pair does not work with the server: "
		    "%s", why);
		goto out;
	}
	ret = 0;
out:
	EVP_PKEY_free(k);
	X509_free(x);
	return ret;
}

/* The server refused the current pair (revoked, say): renew does not go
 * back to the previous pair by itself, since a revocation must cut a
 * device off, not send it back to an older certificate. It says whether
 * that pair, kept as .old, still works, and what to do. */
static void
renew_refused_hint(const struct est_args *a, const struct renew_files *f)
{
	int unknown = 0;

	if (access(f->cert_old, F_OK) != 0 || access(f->key_old, F_OK) != 0)
		fprintf(stderr, "hsmca: no previous pair is kept beside %s: "
		    "enroll the device again with its bootstrap certificate "
		    "(est enroll)\n", f->cert);
	else if (whoami_check(a, f->cert_old, f->key_old, &unknown,
	    NULL) == 0 && !unknown)
		fprintf(stderr, "hsmca: the server still accepts the previous "
		    "pair, kept as %s and %s: to go back to it, move them over "
		    "%s and %s, then renew\n", f->cert_old, f->key_old,
		    f->cert, f->key);
	else
		fprintf(stderr, "hsmca: the previous pair, kept as %s and %s, "
		    "%s: enroll the device again with its bootstrap "
		    "certificate (est enroll)\n", f->cert_old, f->key_old,
		    unknown ? "may or may not be accepted (the server has no "
		    "whoami)" : "is refused too");
}

/* Copies of the old pair as .old, then KEY.new over KEY, then CERT.new
 * over CERT, each rename made durable. A crash between the two renames
 * is completed by the next run (renew_recover). */
static int
renew_swap(const struct renew_files *f, int *key_swapped, struct hsmca_err *e)
{
	int ret;

	*key_swapped = 0;
	if ((ret = keep_old(f->cert, f->cert_old, &f->cert_st, f->cert_mode,
	    e)) != 0 ||
	    (ret = keep_old(f->key, f->key_old, &f->key_st, f->key_mode,
	    e)) != 0)
		return ret;
	if (rename(f->key_new, f->key) == -1)
		return err_set(e, HSMCA_ERR_IO, "rename %s to %s: %s",
		    f->key_new, f->key, strerror(errno));
	*key_swapped = 1;
	if ((ret = sync_dir(f->key, e)) != 0)
		return ret;
	if (rename(f->cert_new, f->cert) == -1)
		return err_set(e, HSMCA_ERR_IO, "rename %s to %s: %s",
		    f->cert_new, f->cert, strerror(errno));
	return sync_dir(f->cert, e);
}

static int
renew_not_due(struct cli *c, X509 *x, const char *file, time_t from)
{
	char na[32], rf[32];
	json_t *o;

	if (c->json) {
		o = cert_json(x, file, NULL);
		json_object_set_new(o, "status", json_string("not_due"));
		json_object_set_new(o, "renew_from", out_time(from));
		out_object(c, o, NULL);
		json_decref(o);
		return CLI_EXIT_OK;
	}
	printf("not due: expires %s (renews from %s)\n",
	    clock_format(issue_asn1_time(X509_get0_notAfter(x)), na,
	    sizeof(na)), clock_format(from, rf, sizeof(rf)));
	return CLI_EXIT_OK;
}

static void
renew_print(struct cli *c, X509 *nx, const struct renew_files *f,
    const char *oldserial)
{
	char serial[SERIAL_HEX_MAX] = "", buf[32];
	json_t *o;

	if (c->json) {
		o = cert_json(nx, f->cert_arg, f->key_arg);
		json_object_set_new(o, "status", json_string("renewed"));
		json_object_set_new(o, "previous_serial",
		    json_string(oldserial));
		json_object_set_new(o, "previous_file",
		    json_string(f->cert_old));
		json_object_set_new(o, "previous_key", json_string(f->key_old));
		out_object(c, o, NULL);
		json_decref(o);
		return;
	}
	(void)serial_to_hex(X509_get0_serialNumber(nx), serial);
	printf("renewed: serial %s, expires %s; the previous pair is kept as "
	    "%s and %s\n", serial, clock_format(issue_asn1_time(
	    X509_get0_notAfter(nx)), buf, sizeof(buf)), f->cert_old,
	    f->key_old);
}

static int
cmd_est_renew(struct cli *c, int argc, char **argv)
{
	struct est_args a;
	struct est_want w;
	struct renew_files f;
	struct est_client *ec = NULL;
	struct est_reply r;
	STACK_OF(X509) *cacerts = NULL, *certs = NULL, *chain = NULL;
	X509_REQ *req = NULL;
	EVP_PKEY *cur = NULL, *newkey = NULL;
	X509 *x = NULL, *nx = NULL;
	const char *fault = getenv("HSMCA_EST_FAULT");
	char oldserial[SERIAL_HEX_MAX] = "";
	int64_t threshold;
	time_t now, na;
	int ret, lockfd = -1, completed = 0, written = 0, key_swapped = 0;
	int more = 0, unchecked = 0;

	memset(&r, 0, sizeof(r));
	memset(&w, 0, sizeof(w));
	if ((ret = est_parse(c, argc, argv, EST_CMD_RENEW, OPTS_COMMON |
	    OPT(O_CERT) | OPT(O_KEY) | OPT(O_THRESHOLD) | OPT(O_FORCE),
	    OPTS_SERVER | OPT(O_CERT) | OPT(O_KEY),
	    &a)) != CLI_EXIT_OK)
		return ret;
	if (util_parse_duration(a.opt[O_THRESHOLD] ? a.opt[O_THRESHOLD] :
	    EST_THRESHOLD_DEFAULT, &threshold) != 0)
		return cli_errorx(c, CLI_EXIT_USAGE, "--threshold '%s': expected "
		    "a duration such as 28d, 12h or 3600", a.opt[O_THRESHOLD]);
	if (fault != NULL && strcmp(fault, "after-issue") != 0) {
		fprintf(stderr, "hsmca: HSMCA_EST_FAULT=%s is not a known "
		    "fault (after-issue); ignored\n", fault);
		fault = NULL;
	}
	memset(&f, 0, sizeof(f));
	f.cert_arg = a.opt[O_CERT];
	f.key_arg = a.opt[O_KEY];
	if (realpath(f.cert_arg, f.cert) == NULL) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "%s: %s", f.cert_arg,
		    strerror(errno));
		goto out;
	}
	if (realpath(f.key_arg, f.key) == NULL) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "%s: %s", f.key_arg,
		    strerror(errno));
		goto out;
	}
	if ((ret = path_beside(f.cert_new, sizeof(f.cert_new), f.cert, ".new",
	    &c->err)) != 0 ||
	    (ret = path_beside(f.key_new, sizeof(f.key_new), f.key, ".new",
	    &c->err)) != 0 ||
	    (ret = path_beside(f.cert_old, sizeof(f.cert_old), f.cert, ".old",
	    &c->err)) != 0 ||
	    (ret = path_beside(f.key_old, sizeof(f.key_old), f.key, ".old",
	    &c->err)) != 0 ||
	    (ret = renew_lock(f.cert, &lockfd, &c->err)) != 0 ||
	    (ret = renew_recover(&f, &completed, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	if (completed)
		fprintf(stderr, "hsmca: completed an interrupted renewal: "
		    "%s now holds the certificate for %s\n", f.cert, f.key);

	if (stat(f.cert, &f.cert_st) == -1) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "%s: %s", f.cert,
		    strerror(errno));
		goto out;
	}
	if (stat(f.key, &f.key_st) == -1) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "%s: %s", f.key,
		    strerror(errno));
		goto out;
	}
	if (f.cert_st.st_dev == f.key_st.st_dev &&
	    f.cert_st.st_ino == f.key_st.st_ino) {
		ret = cli_errorx(c, CLI_EXIT_USAGE, "--cert and --key must be "
		    "separate files");
		goto out;
	}
	/* The new files get the owner, group and mode of the ones they
	 * replace. */
	f.cert_mode = (int)(f.cert_st.st_mode & 0777);
	f.key_mode = (int)(f.key_st.st_mode & EST_KEY_MODE_MAX);
	if ((ret = cert_read_more(f.cert, &x, &more, &c->err)) != 0 ||
	    (ret = est_read_key(f.key, &cur, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	if (!key_matches(x, cur)) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "%s is not the key of %s",
		    f.key, f.cert);
		goto out;
	}
	(void)serial_to_hex(X509_get0_serialNumber(x), oldserial);
	now = clock_now();
	if ((na = issue_asn1_time(X509_get0_notAfter(x))) == (time_t)-1) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "%s: unreadable notAfter",
		    f.cert);
		goto out;
	}
	if (now < na - (time_t)threshold && a.opt[O_FORCE] == NULL) {
		ret = renew_not_due(c, x, f.cert_arg, na - (time_t)threshold);
		goto out;
	}

	/* The CA certificates first: without them the new pair could not
	 * be checked, so nothing is issued. The new certificate must have
	 * the current one's subject and SAN (RFC 7030 4.2.2). */
	w.subject = X509_get_subject_name(x);
	w.san = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
	w.client = 1;
	w.ca = X509_check_ca(x) != 0;
	if ((ret = est_client_new(a.opt[O_SERVER], a.opt[O_LABEL],
	    a.opt[O_CACERT], f.cert, f.key, &ec, &c->err)) != 0 ||
	    (ret = get_cacerts(ec, &cacerts, &c->err)) != 0 ||
	    (ret = key_like(cur, &newkey, &c->err)) != 0 ||
	    (ret = csr_build(newkey, X509_get_subject_name(x), cert_san(x),
	    &req, &c->err)) != 0 ||
	    (ret = est_post_csr(ec, "simplereenroll", req, &r, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	if ((ret = reply_certs(&r, &certs, &c->err)) != 0) {
		ret = cli_error(c, ret);
		if (r.status == 401 || r.status == 403)
			renew_refused_hint(&a, &f);
		goto out;
	}
	if ((ret = certs_find(certs, newkey, &nx, &c->err)) != 0 ||
	    (ret = issued_check(nx, &w, a.opt[O_CACERT], cacerts, certs,
	    &chain, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	/* Beside the old pair: the key first, so a CERT.new always has its
	 * key somewhere on disk. A file that held the certificate's chain
	 * gets the new one's, from cacerts: the CA that issued it now (after
	 * a CA rotation, not the old one) and those above, the root left
	 * out. */
	written = 1;
	if ((ret = key_write(f.key_new, newkey, &c->err)) != 0 ||
	    (ret = file_own_like(f.key_new, &f.key_st, f.key_mode,
	    &c->err)) != 0 ||
	    (ret = cert_write(f.cert_new, nx, more > 0 ? chain : NULL,
	    f.cert_mode & 0600, &c->err)) != 0 ||
	    (ret = file_own_like(f.cert_new, &f.cert_st, f.cert_mode,
	    &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	if (fault != NULL) {
		ret = cli_errorx(c, CLI_EXIT_FAIL, "HSMCA_EST_FAULT=after-issue: "
		    "failing after the new certificate was written to %s",
		    f.cert_new);
		goto out;
	}
	if ((ret = renew_check(&a, &f, cacerts, &unchecked, &c->err)) != 0) {
		ret = cli_error(c, ret);
		goto out;
	}
	if (unchecked)
		fprintf(stderr, "hsmca: the server has no whoami (not hsmcad?): "
		    "the new pair was only seen to complete a TLS handshake\n");

	if ((ret = renew_swap(&f, &key_swapped, &c->err)) != 0) {
		if (key_swapped)
			fprintf(stderr, "hsmca: %s; run renew again to complete "
			    "the renewal\n", c->err.msg);
		else
			ret = cli_error(c, ret);
		ret = CLI_EXIT_FAIL;
		goto out;
	}

	renew_print(c, nx, &f, oldserial);
	ret = CLI_EXIT_OK;
out:
	/* Before the swap, a failure leaves the old pair alone and no
	 * .new file behind. */
	if (written && !key_swapped)
		remove_new(&f);
	if (lockfd != -1)
		close(lockfd);
	est_reply_free(&r);
	want_clear(&w);
	X509_free(nx);
	X509_free(x);
	sk_X509_pop_free(chain, X509_free);
	sk_X509_pop_free(certs, X509_free);
	sk_X509_pop_free(cacerts, X509_free);
	X509_REQ_free(req);
	EVP_PKEY_free(newkey);
	EVP_PKEY_free(cur);
	est_client_free(ec);
	return ret;
}

#define EST_HELP_COMMON \
	"  --server URL       the EST server, https://HOST[:PORT]\n" \
	"  --cacert FILE      trust anchors (PEM) for the server's certificate\n" \
	"                     (its name is checked against HOST) and for the\n" \
	"                     certificates it issues\n" \
	"  --label L          the EST label: /.well-known/est/L/ (default none)\n"
#define EST_HELP_PAIR \
	"  --cert FILE        client certificate (PEM, then its chain)\n" \
	"  --key FILE         its private key (PEM, unencrypted)\n"
#define EST_HELP_CHAIN \
	"  --chain            after the certificate, the CA certificates it\n" \
	"                     chains through (from cacerts, not the root)\n"

const struct cli_cmd cmd_est_table[] = {
	[EST_CMD_CACERTS] = { "est", "cacerts",
	  "--server URL --cacert FILE [--label L] [--out FILE]",
	  "fetch the CA certificates from an EST server, as PEM",
	  EST_HELP_COMMON
	  "  -o, --out FILE     write to FILE instead of standard output\n",
	  CLI_NO_CONFIG, cmd_est_cacerts },
	[EST_CMD_ENROLL] = { "est", "enroll",
	  "--server URL --cacert FILE [--label L] --cert FILE --key FILE\n"
	  "       (--csr FILE | --subject DN [--san SAN] [--key-type T]\n"
	  "       --new-key FILE) --out FILE [--chain]",
	  "enroll over EST (simpleenroll) with a bootstrap or issued certificate",
	  EST_HELP_COMMON EST_HELP_PAIR
	  "                     (a factory certificate, or one already issued)\n"
	  "  --csr FILE         send this request (PEM or DER), or:\n"
	  "  --subject DN       make a key and a request for DN\n"
	  "                     (\"CN=dev-1,O=Example\")\n"
	  "  --san SAN          its subjectAltName (\"DNS:a,URI:urn:b,IP:10.0.0.1\")\n"
	  "  --key-type T       the key: ec-p256 (default), ec-p384, rsa-2048,\n"
	  "                     rsa-3072\n"
	  "  --new-key FILE     where the new key goes (mode 0600)\n"
	  "  -o, --out FILE     the certificate (PEM)\n"
	  EST_HELP_CHAIN,
	  CLI_NO_CONFIG, cmd_est_enroll },
	[EST_CMD_REENROLL] = { "est", "reenroll",
	  "--server URL --cacert FILE [--label L] --cert FILE --key FILE\n"
	  "       --out FILE --new-key FILE [--chain]",
	  "renew over EST (simplereenroll): a new key, the same subject and SAN",
	  EST_HELP_COMMON EST_HELP_PAIR
	  "                     (the certificate being renewed)\n"
	  "  -o, --out FILE     the new certificate (PEM)\n"
	  "  --new-key FILE     the new key, of the same type (mode 0600)\n"
	  EST_HELP_CHAIN
	  "\nFor a device, `est renew` is the safe way to replace a pair in place.\n",
	  CLI_NO_CONFIG, cmd_est_reenroll },
	[EST_CMD_SERVERKEYGEN] = { "est", "serverkeygen",
	  "--server URL --cacert FILE [--label L] --cert FILE --key FILE\n"
	  "       --subject DN [--san SAN] [--key-type T] --out FILE --key-out FILE\n"
	  "       [--chain]",
	  "have the EST server make the key pair and its certificate",
	  EST_HELP_COMMON EST_HELP_PAIR
	  "  --subject DN       the subject of the new certificate\n"
	  "  --san SAN          its subjectAltName\n"
	  "  --key-type T       the kind of key to ask for: ec-p256 (default),\n"
	  "                     ec-p384, rsa-2048, rsa-3072\n"
	  "  -o, --out FILE     the certificate (PEM)\n"
	  "  --key-out FILE     the key the server made (PEM, mode 0600)\n"
	  EST_HELP_CHAIN,
	  CLI_NO_CONFIG, cmd_est_serverkeygen },
	[EST_CMD_RENEW] = { "est", "renew",
	  "--server URL --cacert FILE [--label L] --cert FILE --key FILE\n"
	  "       [--threshold DURATION] [--force]",
	  "renew a device's certificate and key in place when it is due",
	  EST_HELP_COMMON
	  "  --cert FILE        the current certificate, replaced when renewed\n"
	  "                     (a file that also holds its chain gets the new\n"
	  "                     certificate's chain, from cacerts)\n"
	  "  --key FILE         its key, replaced when renewed\n"
	  "                     (either may be a symbolic link: the file it\n"
	  "                     points to is replaced, in its own directory)\n"
	  "  --threshold DUR    renew when it expires within DUR (default 28d);\n"
	  "                     before that, print \"not due\" and change nothing\n"
	  "  --force            renew whatever the expiry\n"
	  "\nA new key of the same type and a request with the same subject and\n"
	  "SAN go to simplereenroll. The new pair is written beside the old one\n"
	  "(FILE.new, with FILE's owner, group and mode, a key's at most 0640)\n"
	  "and checked: the certificate is for the key, chains to --cacert, and\n"
	  "the server, asked with it (whoami), takes it for one it issued.\n"
	  "Only then are copies kept as FILE.old and the pair swapped in, the key\n"
	  "first. A renewal interrupted between the two renames is completed by\n"
	  "the next run; any other failure leaves the old pair as it was. When\n"
	  "the server refuses the current pair (revoked), renew does not go\n"
	  "back to FILE.old by itself; it says whether the server still takes it.\n"
	  "Uses HSMCA_NOW as the current time. Test hook: HSMCA_EST_FAULT=\n"
	  "after-issue fails right after the new certificate was written.\n",
	  CLI_NO_CONFIG, cmd_est_renew },
	{ NULL, NULL, NULL, NULL, NULL, 0, NULL }
};
