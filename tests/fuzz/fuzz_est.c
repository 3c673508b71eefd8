/* fuzz_est.c: an EST request as hsmcad's front and signer take it
 * apart, without the TLS and the HSM: the path routed to a label and an
 * operation (est_route), the Content-Type check, the base64 body
 * (util_b64_decode, as est_enroll does), the PKCS#10 request (csr_parse,
 * as the signer does) and the label's profile (profile_check_csr).
 *
 * Input: the request path, a newline, the Content-Type value (an empty
 * line: no header), a newline, the body.
 *
 * Invariants: every refusal is a 404 with a one-line reason; a route
 * names a configured label and a known operation; a body the strict EST
 * decoder (csr_parse_base64) accepts is the same request for the
 * daemon's decoder. */
#include "config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "hsmca/config.h"
#include "hsmca/csr.h"
#include "hsmca/profile.h"
#include "hsmca/util.h"

#include "../../daemon/hsmcad.h"
#include "fuzz.h"

#define EST_OPS	6	/* est.c's enum est_op */

static const char fuzz_est_conf[] =
	"[hsm]\n"
	"module = /usr/lib/softhsm/libsofthsm2.so\n"
	"token = pkcs11:token=fuzz\n"
	"pin-source = env:HSMCA_PIN\n"
	"[store]\n"
	"path = /nonexistent/hsmca.db\n"
	"[est]\n"
	"profile = device\n"
	"cn-match = true\n"
	"[est edge]\n"
	"profile = edge-ca\n"
	"serverkeygen = true\n"
	"[est srv]\n"
	"profile = server\n";

static struct config *cfg;

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	struct hsmca_err e;

	if (config_parse(fuzz_est_conf, sizeof(fuzz_est_conf) - 1, "fuzz",
	    &cfg, &e) != 0) {
		fprintf(stderr, "fuzz_est: %s\n", e.msg);
		abort();
	}
	return 0;
}

/* The next line of the input, NUL-terminated (malloc'd). */
static char *
next_line(const uint8_t **p, const uint8_t *end)
{
	const uint8_t *nl = memchr(*p, '\n', (size_t)(end - *p));
	size_t n = nl != NULL ? (size_t)(nl - *p) : (size_t)(end - *p);
	char *s;

	FUZZ_CHECK((s = malloc(n + 1)) != NULL);
	memcpy(s, *p, n);
	s[n] = '\0';
	*p = nl != NULL ? nl + 1 : end;
	return s;
}

static void
body(const struct config_est *lb, const uint8_t *b, size_t blen)
{
	struct hsmca_err e;
	struct csr *c = NULL, *strict = NULL;
	const struct profile *p;
	unsigned char *der = NULL;
	size_t derlen = 0;
	int lenient = -1;

	/* est_enroll, then signer_process. */
	err_clear(&e);
	if (blen > 0 && util_b64_decode(b, blen, &der, &derlen, NULL) == 0) {
		lenient = csr_parse(der, derlen, &c, &e);
		if (lenient != 0)
			FUZZ_CHECK_REASON(e.msg);
	}
	if (c != NULL) {
		FUZZ_CHECK((p = config_profile(cfg, lb->profile)) != NULL);
		err_clear(&e);
		if (profile_check_csr(p, c, &e) != 0)
			FUZZ_CHECK_REASON(e.msg);
	}
	err_clear(&e);
	if (csr_parse_base64(b, blen, &strict, &e) == 0) {
		FUZZ_CHECK(lenient == 0);
		FUZZ_CHECK(memcmp(strict->fingerprint, c->fingerprint,
		    sizeof(c->fingerprint)) == 0);
	} else
		FUZZ_CHECK_REASON(e.msg);
	csr_free(strict);
	csr_free(c);
	free(der);
	ERR_clear_error();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	const uint8_t *p = data, *end = data + len;
	char *uri, *ct, path[128], why[256];
	int status, label_idx, op;

	uri = next_line(&p, end);
	ct = next_line(&p, end);
	/* est_handle: the path without the query, non-printables as '?'. */
	snprintf(path, sizeof(path), "%.*s", (int)strcspn(uri, "?"), uri);
	for (size_t i = 0; path[i] != '\0'; i++)
		if (!isprint((unsigned char)path[i]))
			path[i] = '?';
	why[0] = '\0';
	status = est_route(cfg, path, &label_idx, &op, why, sizeof(why));
	if (status != 0) {
		FUZZ_CHECK(status == 404);
		FUZZ_CHECK_REASON(why);
		FUZZ_CHECK(op == EST_OPS);
		goto out;
	}
	FUZZ_CHECK(label_idx >= 0 && (size_t)label_idx < cfg->nest);
	FUZZ_CHECK(op >= 0 && op < EST_OPS);
	if (est_content_type_is(ct[0] != '\0' ? ct : NULL,
	    "application/pkcs10"))
		body(&cfg->est[label_idx], p, (size_t)(end - p));
out:
	free(uri);
	free(ct);
	return 0;
}
